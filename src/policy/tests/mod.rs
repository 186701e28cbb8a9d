//! Tests of the policy as a whole, with shared fixtures: a test policy, a
//! catalog with partitions, inheritance, views and system relations, and
//! helpers to build statement facts.

mod classification;
mod decide;
mod errors;
mod loading;

pub(super) use std::collections::BTreeSet;
pub(super) use std::path::Path;
pub(super) use std::time::Duration;

pub(super) use super::*;
pub(super) use crate::analysis::{
    CopyEndpoint, CopyFormat, DdlKind, FunctionRef, OutputColumn, SettingChange, StatementFacts,
    StatementKind,
};
pub(super) use crate::catalog::{Column, RelKind, Relation};

pub(super) const POLICY: &str = r#"
[classes.production]
mode = "production"
roles = ["app_prod", "\"ETL_Prod\""]
patterns = ["^svc_[a-z]+$"]

[classes.developers]
mode = "guarded"
roles = ["dev_alice"]
patterns = ["^dev_"]
max_rows_per_statement = 20
max_bytes_per_statement = "64KiB"
max_rows_per_session = 200
max_rows_per_window = 1000
window = "1h"
copy_to = "block"
allow_writes = true
allow_ddl = true
classified_predicates = true
block_categories = ["national_id", "secret"]

[classes.readers]
mode = "guarded"
patterns = ["^ro_"]
max_rows_per_statement = 5
max_bytes_per_statement = 4096
max_rows_per_session = 50
max_rows_per_window = 100
window = "30m"

[columns]
"public.users.email" = "email"
"public.users.full_name" = "person_name"
"public.users.national_no" = "national_id"
"public.people.name" = "person_name"
"public.events.detail" = "free_text"
"public.logs_2024.message" = "free_text"

[tables]
"public.medical_notes" = "health"

[forbidden]
"public.identity_documents" = "identity documents never leave production"
"public.docs" = "documents stay in production"
"public.archive_secret" = "sealed archive"

[functions]
allow = ["public.my_pure_fn"]
deny = ["pg_catalog.md5"]

[notifications]
pass_channels = ["cache_invalidate", "\"Jobs\""]
"#;

pub(super) fn policy() -> Policy {
    Policy::from_toml_str(POLICY).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn rel(
    oid: Oid,
    schema: &str,
    name: &str,
    kind: RelKind,
    cols: &[&str],
    parents: &[Oid],
) -> Relation {
    Relation {
        oid,
        schema: schema.to_owned(),
        name: name.to_owned(),
        kind,
        columns: cols
            .iter()
            .enumerate()
            .map(|(i, c)| Column {
                attnum: i as i16 + 1,
                name: (*c).to_owned(),
                type_oid: 25,
                type_name: "text".to_owned(),
                typmod: -1,
            })
            .collect(),
        parents: parents.to_vec(),
        definition: None,
        depends_on: BTreeSet::new(),
    }
}

pub(super) const USERS: Oid = 100;
pub(super) const ORDERS: Oid = 101;
pub(super) const ID_DOCS: Oid = 102;
pub(super) const EVENTS: Oid = 200;
pub(super) const EVENTS_2024: Oid = 201;
pub(super) const PEOPLE: Oid = 300;
pub(super) const STAFF: Oid = 301;
pub(super) const LOGS: Oid = 400;
pub(super) const LOGS_2024: Oid = 401;
pub(super) const DOCS: Oid = 500;
pub(super) const DOCS_P1: Oid = 501;
pub(super) const ARCHIVE: Oid = 600;
pub(super) const ARCHIVE_SECRET: Oid = 601;
pub(super) const V_CONTACTS: Oid = 700;
pub(super) const MEDICAL: Oid = 800;
pub(super) const PG_STATS: Oid = 900;
pub(super) const PG_STATISTIC: Oid = 901;
pub(super) const PG_STAT_STATEMENTS: Oid = 902;

pub(super) fn catalog() -> Catalog {
    use RelKind::*;
    Catalog::new(
        [
            rel(
                USERS,
                "public",
                "users",
                Table,
                &["id", "email", "full_name", "country", "national_no"],
                &[],
            ),
            rel(
                ORDERS,
                "public",
                "orders",
                Table,
                &["id", "user_id", "amount_cents"],
                &[],
            ),
            rel(
                ID_DOCS,
                "public",
                "identity_documents",
                Table,
                &["id", "doc_number"],
                &[],
            ),
            rel(
                EVENTS,
                "public",
                "events",
                PartitionedTable,
                &["id", "at", "detail"],
                &[],
            ),
            rel(
                EVENTS_2024,
                "public",
                "events_2024",
                Table,
                &["id", "at", "detail"],
                &[EVENTS],
            ),
            rel(PEOPLE, "public", "people", Table, &["id", "name"], &[]),
            rel(
                STAFF,
                "public",
                "staff",
                Table,
                &["id", "name", "badge"],
                &[PEOPLE],
            ),
            rel(
                LOGS,
                "public",
                "logs",
                PartitionedTable,
                &["id", "message"],
                &[],
            ),
            rel(
                LOGS_2024,
                "public",
                "logs_2024",
                Table,
                &["id", "message"],
                &[LOGS],
            ),
            rel(
                DOCS,
                "public",
                "docs",
                PartitionedTable,
                &["id", "body"],
                &[],
            ),
            rel(
                DOCS_P1,
                "public",
                "docs_p1",
                Table,
                &["id", "body"],
                &[DOCS],
            ),
            rel(ARCHIVE, "public", "archive", Table, &["id", "body"], &[]),
            rel(
                ARCHIVE_SECRET,
                "public",
                "archive_secret",
                Table,
                &["id", "body"],
                &[ARCHIVE],
            ),
            rel(
                V_CONTACTS,
                "public",
                "v_contacts",
                View,
                &["id", "contact"],
                &[],
            ),
            rel(
                MEDICAL,
                "public",
                "medical_notes",
                Table,
                &["id", "note"],
                &[],
            ),
            rel(
                PG_STATS,
                "pg_catalog",
                "pg_stats",
                View,
                &["tablename", "most_common_vals"],
                &[],
            ),
            rel(
                PG_STATISTIC,
                "pg_catalog",
                "pg_statistic",
                Table,
                &["starelid"],
                &[],
            ),
            rel(
                PG_STAT_STATEMENTS,
                "ext",
                "pg_stat_statements",
                View,
                &["query"],
                &[],
            ),
        ],
        [
            ("public".to_owned(), "my_pure_fn".to_owned()),
            ("public".to_owned(), "leak_email".to_owned()),
        ],
    )
}

pub(super) fn col(rel: Oid, attnum: i16) -> ColumnId {
    ColumnId { rel, attnum }
}

pub(super) const EMAIL: ColumnId = ColumnId {
    rel: USERS,
    attnum: 2,
};
pub(super) const COUNTRY: ColumnId = ColumnId {
    rel: USERS,
    attnum: 4,
};
pub(super) const NATIONAL_NO: ColumnId = ColumnId {
    rel: USERS,
    attnum: 5,
};
pub(super) const AMOUNT: ColumnId = ColumnId {
    rel: ORDERS,
    attnum: 3,
};

pub(super) fn output(name: &str, lineage: &[ColumnId]) -> OutputColumn {
    OutputColumn {
        name: name.to_owned(),
        lineage: lineage.iter().copied().collect(),
        direct: (lineage.len() == 1).then(|| lineage[0]),
    }
}

pub(super) fn select(outputs: &[(&str, &[ColumnId])]) -> StatementFacts {
    let mut f = StatementFacts::new(StatementKind::Select);
    f.outputs = outputs.iter().map(|(n, l)| output(n, l)).collect();
    f.reads = f.output_lineage().iter().map(|c| c.rel).collect();
    f
}

pub(super) fn call(schema: Option<&str>, name: &str, user_defined: bool) -> FunctionRef {
    FunctionRef {
        schema: schema.map(str::to_owned),
        name: name.to_owned(),
        user_defined,
    }
}

pub(super) fn decide_as(role: &str, facts: &StatementFacts) -> Verdict {
    let p = policy();
    let class = p.classify_role(role);
    p.decide(&class, &catalog(), facts)
}

#[track_caller]
pub(super) fn assert_blocked(role: &str, facts: &StatementFacts, rule: &str) -> String {
    match decide_as(role, facts) {
        Verdict::Block(b) => {
            assert_eq!(b.rule, rule, "{}", b.reason);
            assert!(!b.reason.is_empty());
            b.reason
        }
        Verdict::Allow(a) => panic!("expected {rule}, allowed: {a:?}"),
    }
}

#[track_caller]
pub(super) fn assert_allowed(role: &str, facts: &StatementFacts) -> Allowance {
    match decide_as(role, facts) {
        Verdict::Allow(a) => a,
        Verdict::Block(b) => panic!("expected allow, blocked: {b:?}"),
    }
}

pub(super) fn write_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

pub(super) fn issues(text: &str) -> Vec<PolicyIssue> {
    match Policy::from_toml_str(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.issues,
    }
}

#[track_caller]
pub(super) fn assert_issue(text: &str, line: usize, key: &str, needle: &str) {
    let all = issues(text);
    assert!(
        all.iter().any(|i| i.line == Some(line)
            && i.key == key
            && i.message.contains(needle)
            && i.file == Path::new("<policy>")),
        "no issue at line {line} key {key} containing {needle:?} in:\n{}",
        PolicyError {
            issues: all.clone()
        }
    );
}

pub(super) fn warnings(files: &[(&str, &str)]) -> Vec<PolicyWarning> {
    let dir = write_dir(files);
    Policy::load_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .1
}
