//! Analyzer tests: a small catalog built in code for the constructs, and a
//! PostgreSQL 15 catalog fixture for the queries real clients send.

mod large;
mod lineage;
mod pg15;
mod robustness;
mod settings;
mod statements;

use std::collections::BTreeSet;

use crate::analysis::{analyze, AnalysisError, Context, Facts, FunctionRef, StatementFacts};
use crate::catalog::{Catalog, Column, ColumnId, Oid, RelKind, Relation};

pub(super) const USERS: Oid = 100;
pub(super) const ORDERS: Oid = 200;
pub(super) const DOCS: Oid = 300;
pub(super) const V_USERS: Oid = 400;
pub(super) const V_BROKEN: Oid = 410;
pub(super) const V_NESTED: Oid = 420;
pub(super) const V_LOOP: Oid = 430;
pub(super) const V_UNQUALIFIED: Oid = 440;
pub(super) const V_WHOLE_ROW: Oid = 450;
pub(super) const V_LEAK: Oid = 460;
pub(super) const EVENTS: Oid = 500;
pub(super) const EVENTS_2024: Oid = 510;
pub(super) const APP_USERS: Oid = 600;
pub(super) const MV_ORDERS: Oid = 700;
pub(super) const PG_CLASS: Oid = 1259;
pub(super) const PG_NAMESPACE: Oid = 2615;

fn relation(oid: Oid, schema: &str, name: &str, kind: RelKind, columns: &[&str]) -> Relation {
    Relation {
        oid,
        schema: schema.to_owned(),
        name: name.to_owned(),
        kind,
        columns: columns
            .iter()
            .enumerate()
            .map(|(i, c)| Column {
                attnum: i16::try_from(i + 1).unwrap_or(i16::MAX),
                name: (*c).to_owned(),
                type_oid: 25,
                type_name: "text".to_owned(),
                typmod: -1,
            })
            .collect(),
        parents: Vec::new(),
        definition: None,
        depends_on: BTreeSet::new(),
    }
}

fn view(oid: Oid, name: &str, columns: &[&str], definition: &str, deps: &[ColumnId]) -> Relation {
    let mut r = relation(oid, "public", name, RelKind::View, columns);
    r.definition = Some(definition.to_owned());
    r.depends_on = deps.iter().copied().collect();
    r
}

/// `rel`'s column number `attnum`.
pub(super) fn c(rel: Oid, attnum: i16) -> ColumnId {
    ColumnId { rel, attnum }
}

/// The catalog of the construct tests.
pub(super) fn test_catalog() -> Catalog {
    let users = relation(
        USERS,
        "public",
        "users",
        RelKind::Table,
        &["id", "email", "full_name", "birth_date", "phone"],
    );
    let orders = relation(
        ORDERS,
        "public",
        "orders",
        RelKind::Table,
        &["id", "user_id", "amount_cents", "status"],
    );
    let docs = relation(
        DOCS,
        "public",
        "identity_documents",
        RelKind::Table,
        &["id", "user_id", "doc_number", "doc_type"],
    );
    let v_users = view(
        V_USERS,
        "v_users",
        &["id", "contact"],
        "SELECT u.id, u.email AS contact FROM public.users u",
        &[c(USERS, 1), c(USERS, 2)],
    );
    let v_broken = view(
        V_BROKEN,
        "v_broken",
        &["a", "b"],
        "SELECT ??? this is not SQL",
        &[c(USERS, 2), c(V_USERS, 2), c(DOCS, 3)],
    );
    let v_nested = view(
        V_NESTED,
        "v_nested",
        &["contact"],
        " SELECT v_users.contact\n   FROM v_users;",
        &[c(V_USERS, 2)],
    );
    let v_loop = view(
        V_LOOP,
        "v_loop",
        &["x"],
        "SELECT x FROM public.v_loop",
        &[c(USERS, 5)],
    );
    let v_unqualified = view(
        V_UNQUALIFIED,
        "v_unqualified",
        &["id"],
        " SELECT u.id\n   FROM users u;",
        &[c(USERS, 1)],
    );
    let v_whole_row = view(
        V_WHOLE_ROW,
        "v_whole_row",
        &["j"],
        "SELECT row_to_json(u.*) AS j FROM users u WHERE",
        &[c(USERS, 0)],
    );
    let v_leak = view(
        V_LEAK,
        "v_leak",
        &["l"],
        " SELECT leak(u.email) AS l\n   FROM users u;",
        &[c(USERS, 2)],
    );
    let events = relation(
        EVENTS,
        "public",
        "events",
        RelKind::PartitionedTable,
        &["id", "at", "payload"],
    );
    let mut events_2024 = relation(
        EVENTS_2024,
        "public",
        "events_2024",
        RelKind::Table,
        &["id", "at", "payload"],
    );
    events_2024.parents = vec![EVENTS];
    let app_users = relation(APP_USERS, "app", "users", RelKind::Table, &["id", "nick"]);
    let mut mv = relation(
        MV_ORDERS,
        "public",
        "mv_user_orders",
        RelKind::MaterializedView,
        &["id", "n"],
    );
    mv.definition = Some(
        " SELECT u.id,\n    count(o.id) AS n\n   FROM users u\n     JOIN orders o ON o.user_id = u.id\n  GROUP BY u.id;"
            .to_owned(),
    );
    mv.depends_on = [c(USERS, 1), c(ORDERS, 1), c(ORDERS, 2)].into();
    let pg_class = relation(
        PG_CLASS,
        "pg_catalog",
        "pg_class",
        RelKind::Table,
        &["oid", "relname", "relnamespace", "relkind"],
    );
    let pg_namespace = relation(
        PG_NAMESPACE,
        "pg_catalog",
        "pg_namespace",
        RelKind::Table,
        &["oid", "nspname"],
    );
    Catalog::new(
        [
            users,
            orders,
            docs,
            v_users,
            v_broken,
            v_nested,
            v_loop,
            v_unqualified,
            v_whole_row,
            v_leak,
            events,
            events_2024,
            app_users,
            mv,
            pg_class,
            pg_namespace,
        ],
        [("public".to_owned(), "leak".to_owned())],
    )
}

/// Analyzes `sql` against the test catalog with search path `public`.
pub(super) fn run(sql: &str) -> Result<Facts, AnalysisError> {
    run_with(sql, &["public"])
}

/// Analyzes `sql` against the test catalog with `path`.
pub(super) fn run_with(sql: &str, path: &[&str]) -> Result<Facts, AnalysisError> {
    let catalog = test_catalog();
    let search_path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
    analyze(
        sql,
        &Context {
            catalog: &catalog,
            search_path: &search_path,
        },
    )
}

/// The facts of a one-statement string.
#[track_caller]
pub(super) fn one(sql: &str) -> StatementFacts {
    match run(sql) {
        Ok(mut facts) if facts.statements.len() == 1 => facts.statements.remove(0),
        other => panic!("{sql}: {other:?}"),
    }
}

/// The error `sql` gives.
#[track_caller]
pub(super) fn err(sql: &str) -> AnalysisError {
    match run(sql) {
        Err(e) => e,
        Ok(f) => panic!("{sql}: expected an error, got {f:?}"),
    }
}

/// Lineage of each output, as sets.
pub(super) fn lineages(f: &StatementFacts) -> Vec<BTreeSet<ColumnId>> {
    f.outputs.iter().map(|o| o.lineage.clone()).collect()
}

/// A set of columns.
pub(super) fn set(cols: &[ColumnId]) -> BTreeSet<ColumnId> {
    cols.iter().copied().collect()
}

/// Output names.
pub(super) fn out_names(f: &StatementFacts) -> Vec<&str> {
    f.outputs.iter().map(|o| o.name.as_str()).collect()
}

/// Function names recorded.
pub(super) fn function_names(f: &StatementFacts) -> Vec<&str> {
    f.functions
        .iter()
        .map(|x: &FunctionRef| x.name.as_str())
        .collect()
}
