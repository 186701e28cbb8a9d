//! The decision core against scripted sessions, without PostgreSQL: what
//! the guarded relay asks it, in the order a client's messages would.

mod session;

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Core, Exec, Refusal};
use crate::catalog::{Catalog, Column, Oid, RelKind, Relation};
use crate::policy::{Block, Policy, Rule};

const USERS: Oid = 100;
const ORDERS: Oid = 200;
const OTHER_USERS: Oid = 300;

const POLICY: &str = r#"
[classes.production]
mode = "production"
roles = ["app"]

[classes.developers]
mode = "guarded"
roles = ["dev"]
max_rows_per_statement = 5
max_bytes_per_statement = "64KiB"
max_rows_per_session = 100
max_rows_per_window = 1000
classified_predicates = true
block_categories = ["national_id"]

[classes.testers]
mode = "guarded"
roles = ["qa"]
max_rows_per_statement = 5
max_bytes_per_statement = "64KiB"
max_rows_per_session = 100
max_rows_per_window = 1000
pseudonymize = ["email"]

[columns]
"public.users.email" = "email"
"public.users.ssn" = "national_id"
"other.users.email" = "email"

[forbidden]
"public.orders" = "orders stay in production"
"#;

fn relation(oid: Oid, schema: &str, name: &str, columns: &[&str]) -> Relation {
    Relation {
        oid,
        schema: schema.to_owned(),
        name: name.to_owned(),
        kind: RelKind::Table,
        columns: columns
            .iter()
            .zip(1..)
            .map(|(c, attnum)| Column {
                attnum,
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

fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::new(
        [
            relation(USERS, "public", "users", &["id", "email", "ssn", "country"]),
            relation(ORDERS, "public", "orders", &["id", "user_id"]),
            relation(OTHER_USERS, "other", "users", &["id", "email"]),
        ],
        Vec::new(),
    ))
}

fn policy() -> Arc<Policy> {
    Arc::new(Policy::from_toml_str(POLICY).expect("test policy"))
}

/// A session of `role` whose search path is `pg_catalog, public`.
fn session(role: &str, policy: &Policy, has_key: bool) -> Core {
    Core::new(role, policy.classify_role(role), has_key, catalog())
        .with_search_path(vec!["pg_catalog".into(), "public".into()])
}

fn dev() -> (Core, Arc<Policy>) {
    let p = policy();
    (session("dev", &p, true), p)
}

#[track_caller]
fn refused<E: Into<Block>>(r: Result<impl std::fmt::Debug, E>, rule: Rule) {
    match r.map_err(Into::into) {
        Err(b) => assert_eq!(b.rule, rule, "{}", b.reason),
        Ok(v) => panic!("expected {rule}, allowed: {v:?}"),
    }
}

/// A Parse then a Bind of it, as the relay does: the portal's decision.
fn parse_bind(core: &mut Core, p: &Arc<Policy>, name: &str, sql: &str) -> Result<(), Block> {
    let decided = core.decide_parse(&crate::guard::SqlText::from(sql), p);
    let exec = match decided {
        Ok(exec) => exec,
        Err(r) => {
            core.prepared(name, None);
            return Err(r.into());
        }
    };
    core.prepared(name, exec);
    let (exec, _) = core.decide_bind(name, p)?;
    core.bound(name, Some(Arc::new(Exec::portal_of(&exec))));
    Ok(())
}

#[test]
fn session_rules_come_with_the_policy() {
    let (mut core, p) = dev();
    for (sql, rule) in [
        ("SET standard_conforming_strings = off", Rule::SettingLexer),
        ("SET client_encoding = 'SJIS'", Rule::SettingLexer),
        (
            "SELECT 1; SET search_path = other; SELECT 2",
            Rule::AnalysisContextChange,
        ),
        ("CREATE TEMP TABLE t (a int); SELECT 1", Rule::DdlNotAllowed),
        (
            "SELECT email FROM users; SELECT 1",
            Rule::StatementLimitedNotAlone,
        ),
        ("SELECT FROM WHERE", Rule::AnalysisParse),
        ("SELECT * FROM no_such_table", Rule::AnalysisUnknownRelation),
        ("SELECT nope FROM users", Rule::AnalysisUnknownColumn),
        ("SELECT ssn FROM users", Rule::CategoryBlocked),
        ("SELECT id FROM orders", Rule::TableForbidden),
        ("EXECUTE nothing", Rule::StatementUnknown),
        ("FETCH 1 FROM nothing", Rule::CursorUnknown),
    ] {
        refused(core.decide_query(sql, &p), rule);
    }
    let execs = core.decide_query("SELECT email FROM users", &p).unwrap();
    assert!(execs[0].allowance.limits.is_some());
    let execs = core
        .decide_query("BEGIN; SET search_path = other; COMMIT", &p)
        .unwrap();
    assert_eq!(execs.len(), 3);
    assert!(core.search_path_dirty);
}

#[test]
fn the_refused_statement_is_named() {
    let (mut core, p) = dev();
    let r = core.decide_query_at("SELECT 1; SELECT ssn FROM users; SELECT 2", &p);
    assert!(matches!(
        r,
        Err(Refusal {
            at: Some(1),
            block: Block {
                rule: Rule::CategoryBlocked,
                ..
            },
            ..
        })
    ));
    let r = core.decide_query_at("SELECT email FROM users; SELECT 1", &p);
    assert!(matches!(r, Err(Refusal { at: None, .. })), "{r:?}");
}

#[test]
fn pseudonymized_outputs_need_a_key() {
    let p = policy();
    let mut without = session("qa", &p, false);
    refused(
        without.decide_query("SELECT email FROM users", &p),
        Rule::PseudonymNoKey,
    );
    let mut with = session("qa", &p, true);
    let execs = with.decide_query("SELECT email FROM users", &p).unwrap();
    assert!(execs[0].allowance.pseudonymizes());
}

#[test]
fn a_refusal_inside_a_transaction_changes_nothing() {
    let (mut core, p) = dev();
    core.decide_query("BEGIN", &p).unwrap();
    core.decide_query("DECLARE c CURSOR FOR SELECT id FROM users", &p)
        .unwrap();
    refused(
        core.decide_query(
            "DECLARE d CURSOR FOR SELECT id FROM users; SELECT ssn FROM users",
            &p,
        ),
        Rule::CategoryBlocked,
    );
    assert!(core.cursors.contains_key("c"));
    assert!(!core.cursors.contains_key("d"));
    refused(core.decide_query("FETCH 1 FROM d", &p), Rule::CursorUnknown);
    core.decide_query("FETCH 1 FROM c", &p).unwrap();
    core.decide_query("ROLLBACK", &p).unwrap();
}

#[test]
fn cursors_are_decided_at_fetch_and_counted_on_the_cursor() {
    let (mut core, p) = dev();
    let declared = core
        .decide_query("DECLARE c CURSOR FOR SELECT email FROM users", &p)
        .unwrap();
    assert_eq!(declared[0].allowance.limits, None);
    let fetch = core.decide_query("FETCH 2 FROM c", &p).unwrap();
    assert!(fetch[0].allowance.limits.is_some());
    assert!(Arc::ptr_eq(
        fetch[0].counted_by.as_ref().unwrap(),
        &core.cursors["c"]
    ));
    fetch[0].count_row(10);
    assert_eq!(core.cursors["c"].counted(), (1, 10));
    let moved = core.decide_query("MOVE 2 IN c", &p).unwrap();
    assert_eq!(moved[0].allowance.limits, None);
    core.decide_query("CLOSE c", &p).unwrap();
    refused(core.decide_query("FETCH 1 FROM c", &p), Rule::CursorUnknown);
    refused(
        core.decide_query("DECLARE s CURSOR FOR SELECT ssn FROM users", &p),
        Rule::CategoryBlocked,
    );
}

#[test]
fn prepared_statements_are_decided_at_execute() {
    let (mut core, p) = dev();
    let prepared = core
        .decide_query("PREPARE q AS SELECT email FROM users WHERE id = $1", &p)
        .unwrap();
    assert_eq!(prepared[0].allowance.limits, None);
    let run = core.decide_query("EXECUTE q(1)", &p).unwrap();
    assert!(run[0].allowance.limits.is_some());
    core.decide_query("DEALLOCATE q", &p).unwrap();
    refused(
        core.decide_query("EXECUTE q(1)", &p),
        Rule::StatementUnknown,
    );
}

#[test]
fn a_failed_parse_leaves_nothing_to_bind_or_execute() {
    let (mut core, p) = dev();
    parse_bind(&mut core, &p, "s1", "SELECT id FROM users").unwrap();
    refused(
        parse_bind(&mut core, &p, "s1", "SELECT ssn FROM users"),
        Rule::CategoryBlocked,
    );
    refused(core.decide_bind("s1", &p), Rule::StatementUnknown);
    // The relay forgets a portal whose Bind was refused.
    core.bound("s1", None);
    refused(core.execute("s1"), Rule::PortalUnknown);
    refused(core.execute("never"), Rule::PortalUnknown);
}

#[test]
fn portals_carry_their_statement_s_decision() {
    let (mut core, p) = dev();
    parse_bind(&mut core, &p, "", "SELECT email FROM users").unwrap();
    let exec = core.execute("").unwrap();
    assert!(exec.allowance.limits.is_some());
    assert!(Arc::ptr_eq(
        exec.described_by.as_ref().unwrap(),
        &core.statements[""]
    ));
    // Several statements in one Parse: the server refuses it; copyguard
    // keeps no decision under its name.
    assert!(matches!(
        core.decide_parse(&crate::guard::SqlText::from("SELECT 1; SELECT 2"), &p),
        Ok(None)
    ));
}

#[test]
fn a_context_change_in_a_batch_stops_analysis_until_sync() {
    let (mut core, p) = dev();
    parse_bind(&mut core, &p, "", "SET search_path = other").unwrap();
    core.execute("").unwrap();
    assert!(core.batch_changed && core.search_path_dirty);
    refused(
        parse_bind(&mut core, &p, "a", "SELECT id FROM users"),
        Rule::AnalysisContextChange,
    );
    core.end_batch();
    parse_bind(&mut core, &p, "a", "SELECT id FROM users").unwrap();
}

#[test]
fn statements_are_analyzed_again_in_a_new_context() {
    let (mut core, p) = dev();
    parse_bind(&mut core, &p, "s", "SELECT email FROM users").unwrap();
    let before = core.statements["s"].clone();
    assert!(before.facts.reads.contains(&USERS));
    let (same, new) = core.decide_bind("s", &p).unwrap();
    assert!(!new && Arc::ptr_eq(&same, &before));
    core.set_search_path(vec!["pg_catalog".into(), "other".into()]);
    let (again, new) = core.decide_bind("s", &p).unwrap();
    assert!(new);
    assert!(
        again.facts.reads.contains(&OTHER_USERS),
        "{:?}",
        again.facts
    );
    // A statement without its own text cannot be analyzed again.
    core.decide_query("PREPARE q AS SELECT 1; SELECT 2", &p)
        .unwrap();
    core.set_catalog(catalog());
    refused(
        core.decide_query("EXECUTE q", &p),
        Rule::AnalysisContextChange,
    );
}

#[test]
fn a_prepared_statement_whose_relations_changed_is_refused_as_such() {
    let (mut core, p) = dev();
    parse_bind(&mut core, &p, "s", "SELECT country FROM users").unwrap();
    // `users` replaced on the server by a relation of another oid.
    core.set_catalog(Arc::new(Catalog::new(
        [relation(
            OTHER_USERS + 1000,
            "public",
            "users",
            &["id", "email", "ssn", "country"],
        )],
        Vec::new(),
    )));
    refused(core.decide_bind("s", &p), Rule::StatementChanged);
    // An unrelated change leaves it as it was.
    core.set_catalog(catalog());
    parse_bind(&mut core, &p, "t", "SELECT country FROM users").unwrap();
    core.set_catalog(Arc::new(Catalog::new(
        [
            relation(USERS, "public", "users", &["id", "email", "ssn", "country"]),
            relation(ORDERS + 1000, "public", "invoices", &["id"]),
        ],
        Vec::new(),
    )));
    assert!(core.decide_bind("t", &p).is_ok());
}

#[test]
fn a_reloaded_policy_applies_to_prepared_statements() {
    let (mut core, p) = dev();
    parse_bind(&mut core, &p, "s", "SELECT country FROM users").unwrap();
    let stricter = Arc::new(
        Policy::from_toml_str(&POLICY.replace(
            "[forbidden]",
            "[forbidden]\n\"public.users\" = \"no longer readable\"",
        ))
        .unwrap(),
    );
    refused(core.decide_bind("s", &stricter), Rule::TableForbidden);
    assert!(core.decide_bind("s", &p).is_ok());
}

#[test]
fn a_role_that_became_production_stays_guarded() {
    let p = policy();
    let core = session("dev", &p, true);
    let promoted = Policy::from_toml_str(
        &POLICY
            .replace("roles = [\"dev\"]", "roles = []")
            .replace("roles = [\"app\"]", "roles = [\"app\", \"dev\"]"),
    )
    .unwrap();
    assert_eq!(promoted.classify_role("dev").name, "production");
    assert_eq!(core.class(&promoted).name, "developers");
}

#[test]
fn sql_fetch_and_move_reach_protocol_portals() {
    let (mut core, p) = dev();
    parse_bind(
        &mut core,
        &p,
        "__asyncpg_portal_1__",
        "SELECT email FROM users",
    )
    .unwrap();
    let portal = core.execute("__asyncpg_portal_1__").unwrap();
    let fetch = core
        .decide_query("FETCH 2 FROM \"__asyncpg_portal_1__\"", &p)
        .unwrap();
    assert!(fetch[0].allowance.limits.is_some());
    assert!(Arc::ptr_eq(fetch[0].counted_by.as_ref().unwrap(), &portal));
    fetch[0].count_row(10);
    assert_eq!(portal.counted(), (1, 10));
    let moved = core
        .decide_query("MOVE FORWARD 3 \"__asyncpg_portal_1__\"", &p)
        .unwrap();
    assert_eq!(moved[0].allowance.limits, None);
    core.decide_query("CLOSE \"__asyncpg_portal_1__\"", &p)
        .unwrap();
    // Names are exact: a quoted name keeps its case.
    refused(
        core.decide_query("FETCH 1 FROM \"__ASYNCPG_PORTAL_1__\"", &p),
        Rule::CursorUnknown,
    );
}

#[test]
fn set_config_is_a_settings_change() {
    let (mut core, p) = dev();
    core.search_path_dirty = false;
    core.decide_query(
        "SELECT current_setting('jit'), set_config('jit', 'off', false)",
        &p,
    )
    .unwrap();
    assert!(!core.search_path_dirty);
    core.decide_query("SELECT pg_catalog.set_config('search_path', '', false)", &p)
        .unwrap();
    assert!(core.search_path_dirty);
    refused(
        core.decide_query(
            "SELECT set_config('search_path', 'other', false); SELECT id FROM users",
            &p,
        ),
        Rule::AnalysisContextChange,
    );
    parse_bind(
        &mut core,
        &p,
        "",
        "SELECT set_config('search_path', $1, true)",
    )
    .unwrap();
    core.execute("").unwrap();
    assert!(core.batch_changed);
    core.end_batch();
    for (sql, rule) in [
        (
            "SELECT set_config('role', 'app', false)",
            Rule::IdentityChange,
        ),
        (
            "SELECT set_config('client_encoding', 'SJIS', false)",
            Rule::SettingLexer,
        ),
        ("SELECT set_config($1, 'x', false)", Rule::SettingDynamic),
        (
            "SELECT set_config('a.b', email, false) FROM users",
            Rule::SettingClassified,
        ),
    ] {
        refused(core.decide_query(sql, &p), rule);
    }
    // EXECUTE arguments are part of the statement that runs.
    core.decide_query("PREPARE q(text) AS SELECT $1", &p)
        .unwrap();
    refused(
        core.decide_query("EXECUTE q(set_config('role', 'app', false))", &p),
        Rule::IdentityChange,
    );
}

#[test]
fn a_refusal_carries_the_facts_it_was_decided_on() {
    let (mut core, p) = dev();
    let r = core
        .decide_query_at("SELECT 1; SELECT ssn, email FROM users WHERE ssn = 'x'", &p)
        .unwrap_err();
    assert_eq!((r.block.rule, r.at), (Rule::CategoryBlocked, Some(1)));
    let facts = r.facts.expect("a policy refusal has facts");
    assert_eq!(facts.relations, ["public.users"]);
    assert_eq!(facts.columns, ["public.users.email", "public.users.ssn"]);
    // Refused at Parse and, after a policy reload, at Bind.
    let r = core
        .decide_parse(&crate::guard::SqlText::from("SELECT id FROM orders"), &p)
        .unwrap_err();
    assert_eq!(r.block.rule, Rule::TableForbidden);
    assert_eq!(r.facts.unwrap().relations, ["public.orders"]);
    parse_bind(&mut core, &p, "s", "SELECT email FROM users").unwrap();
    let stricter = Arc::new(
        Policy::from_toml_str(&POLICY.replace(
            "[forbidden]",
            "[forbidden]\n\"public.users\" = \"no longer readable\"",
        ))
        .unwrap(),
    );
    let r = core.decide_bind("s", &stricter).unwrap_err();
    let facts = r.facts.unwrap();
    assert_eq!(facts.relations, ["public.users"]);
    assert_eq!(facts.columns, ["public.users.email"]);
    // A statement among others that returns classified rows: the string's
    // facts taken together.
    let r = core
        .decide_query_at("SELECT email FROM users; SELECT id FROM other.users", &p)
        .unwrap_err();
    assert_eq!(r.block.rule, Rule::StatementLimitedNotAlone);
    assert_eq!(r.facts.unwrap().relations, ["other.users", "public.users"]);
    // No facts when analysis itself failed, or for an unknown name.
    let r = core.decide_query_at("SELECT FROM WHERE", &p).unwrap_err();
    assert_eq!((r.block.rule, r.facts), (Rule::AnalysisParse, None));
    // The literal a parse error stops at stays out of the reason (found by
    // a red-team round: the block log's record quoted it).
    for sql in [
        "SELECT id FROM users WHERE id = 1 'Bruno.Durand1@Example.com'",
        "SELECT id FROM users WHERE id = 1 E'Bruno'",
        "SELECT id FROM users WHERE id = 1 $$Bruno$$",
        "SELECT id FROM users 4242",
    ] {
        let r = core.decide_query_at(sql, &p).unwrap_err();
        assert_eq!(r.block.rule, Rule::AnalysisParse, "{sql}");
        assert!(
            !r.block.reason.contains("Bruno") && !r.block.reason.contains("4242"),
            "{sql}: {}",
            r.block.reason
        );
        assert!(
            r.block.reason.contains("found: a literal"),
            "{}",
            r.block.reason
        );
    }
    let r = core.decide_query_at("EXECUTE nothing", &p).unwrap_err();
    assert_eq!(r.facts, None);
}

#[test]
fn a_shared_catalog_ends_the_need_for_a_first_load_but_not_for_a_reload_after_ddl() {
    let p = policy();
    let empty = Arc::new(Catalog::new(Vec::new(), Vec::new()));
    let mut core = Core::new("dev", p.classify_role("dev"), true, empty);
    assert!(core.catalog_dirty && core.has_no_catalog());
    let shared = catalog();
    core.adopt_catalog(shared.clone());
    assert!(!core.catalog_dirty && !core.has_no_catalog());
    assert!(Arc::ptr_eq(&core.catalog, &shared));
    let context = core.context;
    core.adopt_catalog(shared);
    assert_eq!(
        core.context, context,
        "the same catalog again changes nothing"
    );

    let p = Arc::new(
        Policy::from_toml_str(
            &POLICY.replace("roles = [\"dev\"]", "roles = [\"dev\"]\nallow_ddl = true"),
        )
        .expect("policy"),
    );
    core.decide_query("CREATE TABLE t (id int)", &p)
        .expect("DDL is allowed");
    assert!(core.catalog_dirty && !core.has_no_catalog());
    core.adopt_catalog(catalog());
    assert!(
        core.catalog_dirty,
        "after its own DDL the session loads its own view"
    );
}
