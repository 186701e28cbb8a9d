//! Queries real clients send, against the catalog of a PostgreSQL 15
//! database (pg_catalog, information_schema, and the test tables in
//! `public` and `app`), as [`crate::catalog::LOAD_SQL`] reads it.
//! `pg15_catalog.txt` holds the five result sets in COPY text format;
//! `psql15_describe.sql` and `pgdump15_statements.sql` what psql's `\d`
//! family and pg_dump sent to that server (from its statement log).

use super::*;
use crate::analysis::StatementKind;
use crate::catalog::{CatalogRows, Row};

const FIXTURE: &str = include_str!("pg15_catalog.txt");
const PSQL_DESCRIBE: &str = include_str!("psql15_describe.sql");
const PG_DUMP: &str = include_str!("pgdump15_statements.sql");

/// A COPY text field.
fn field(raw: &str) -> Option<String> {
    if raw == "\\N" {
        return None;
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    Some(out)
}

fn pg15() -> Catalog {
    let mut sets: Vec<Vec<Row>> = Vec::new();
    for line in FIXTURE.lines() {
        if line.starts_with("\\set ") {
            sets.push(Vec::new());
        } else if let Some(set) = sets.last_mut() {
            set.push(line.split('\t').map(field).collect());
        }
    }
    CatalogRows::from_sets(sets)
        .and_then(CatalogRows::into_catalog)
        .expect("fixture catalog")
}

fn run15(sql: &str) -> Result<crate::analysis::Facts, crate::analysis::AnalysisError> {
    let catalog = pg15();
    let path = ["pg_catalog".to_owned(), "public".to_owned()];
    analyze(
        sql,
        &Context {
            catalog: &catalog,
            search_path: &path,
        },
    )
}

fn col15(catalog: &Catalog, schema: &str, table: &str, column: &str) -> ColumnId {
    let rel = catalog.lookup(schema, table).expect("relation");
    ColumnId {
        rel: rel.oid,
        attnum: rel.column(column).expect("column").attnum,
    }
}

#[test]
fn psql_describe_queries_analyze() {
    for sql in PSQL_DESCRIBE.split("\n-- next\n") {
        let facts = run15(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
        assert_eq!(facts.statements.len(), 1);
        assert_eq!(facts.statements[0].kind, StatementKind::Select);
        assert!(!facts.statements[0].outputs.is_empty(), "{sql}");
    }
}

#[test]
fn psql_list_databases_reads_pg_database() {
    let facts = run15(
        "SELECT d.datname as \"Name\", pg_catalog.pg_get_userbyid(d.datdba) as \"Owner\", \
         pg_catalog.pg_encoding_to_char(d.encoding) as \"Encoding\", \
         pg_catalog.array_to_string(d.datacl, E'\\n') AS \"Access privileges\" \
         FROM pg_catalog.pg_database d ORDER BY 1;",
    )
    .unwrap();
    let s = &facts.statements[0];
    assert_eq!(s.outputs[0].name, "Name");
    assert!(s
        .functions
        .iter()
        .all(|f| f.schema.as_deref() == Some("pg_catalog")));
}

#[test]
fn every_catalog_view_definition_expands() {
    let catalog = pg15();
    let mut views: Vec<&crate::catalog::Relation> = catalog
        .relations()
        .filter(|r| r.kind == crate::catalog::RelKind::View)
        .collect();
    views.sort_by_key(|r| r.oid);
    let path = ["pg_catalog".to_owned(), "public".to_owned()];
    let ctx = Context {
        catalog: &catalog,
        search_path: &path,
    };
    let mut analyzer = crate::analysis::analyzer::Analyzer::new(&ctx);
    for view in views {
        analyzer.reset();
        let definition = view.definition.as_deref().unwrap_or("");
        let q = crate::analysis::input::parse_definition(definition)
            .unwrap_or_else(|| panic!("{} does not parse as one query", view.qualified_name()));
        let cols = analyzer
            .query(&q)
            .unwrap_or_else(|e| panic!("{}: {e}", view.qualified_name()));
        assert_eq!(cols.len(), view.columns.len(), "{}", view.qualified_name());
    }
}

#[test]
fn information_schema_columns_lookup() {
    let facts = run15(
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
    )
    .unwrap();
    let s = &facts.statements[0];
    assert_eq!(s.outputs.len(), 4);
    let catalog = pg15();
    assert!(s.outputs[0].lineage.contains(&col15(
        &catalog,
        "pg_catalog",
        "pg_attribute",
        "attname"
    )));
    assert!(s.reads.contains(
        &catalog
            .lookup("information_schema", "columns")
            .expect("view")
            .oid
    ));
}

#[test]
fn real_view_definitions_give_lineage() {
    let catalog = pg15();
    let email = col15(&catalog, "public", "users", "email");
    let facts = run15("SELECT contact FROM v_nested").unwrap();
    assert_eq!(facts.statements[0].outputs[0].direct, Some(email));
    let facts = run15("SELECT j FROM v_rowjson").unwrap();
    assert_eq!(facts.statements[0].outputs[0].lineage.len(), 5);
    assert!(facts.statements[0].outputs[0].lineage.contains(&email));
    let facts = run15("REFRESH MATERIALIZED VIEW mv_user_orders").unwrap();
    assert!(facts.statements[0]
        .stored
        .contains(&col15(&catalog, "public", "users", "id")));
}

#[test]
fn orm_queries_analyze() {
    let catalog = pg15();
    let email = col15(&catalog, "public", "users", "email");
    for sql in [
        "SELECT \"users\".\"id\", \"users\".\"email\" FROM \"users\" WHERE \"users\".\"id\" = $1 LIMIT $2",
        "SELECT \"users\".* FROM \"users\" WHERE \"users\".\"id\" IN ($1, $2, $3)",
        "SELECT u0.\"id\", u0.\"email\" FROM \"public\".\"users\" AS u0 WHERE (u0.\"id\" = ANY($1))",
        "INSERT INTO \"users\" (\"id\",\"email\") VALUES ($1,$2) ON CONFLICT (\"id\") DO UPDATE SET \"email\" = EXCLUDED.\"email\" RETURNING *",
        "UPDATE \"users\" SET \"email\" = $1 WHERE \"users\".\"id\" = $2 RETURNING \"users\".\"id\"",
        "DELETE FROM \"orders\" WHERE \"orders\".\"user_id\" = $1",
        "SELECT COUNT(*) AS \"__count\" FROM \"orders\" WHERE \"orders\".\"status\" = $1",
        "SELECT \"users\".\"id\" FROM \"users\" ORDER BY \"users\".\"id\" DESC LIMIT 1 OFFSET $1",
        "SELECT t.typname, t.oid FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public'",
        "SELECT 1 AS one FROM users WHERE email ILIKE $1 FETCH FIRST 1 ROWS ONLY",
        "SELECT current_schema(), current_database(), version()",
        "SELECT pg_catalog.set_config('search_path', '', false)",
        "SET application_name = 'rails'",
        "SHOW TRANSACTION ISOLATION LEVEL",
        "SELECT \"public\".\"users\".\"id\", \"public\".\"users\".\"email\" FROM \"public\".\"users\" WHERE (\"public\".\"users\".\"id\" = $1 AND 1=1) LIMIT $2 OFFSET $3",
        "SELECT \"User\".\"id\" AS \"User_id\", \"User\".\"email\" AS \"User_email\" FROM \"users\" \"User\" WHERE \"User\".\"email\" = $1",
        "SELECT u1_0.id, u1_0.email FROM users u1_0 WHERE u1_0.id = $1",
    ] {
        let facts = run15(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
        assert_eq!(facts.statements.len(), 1, "{sql}");
    }
    let facts =
        run15("SELECT \"users\".\"email\" FROM \"users\" WHERE \"users\".\"id\" = $1").unwrap();
    assert_eq!(facts.statements[0].outputs[0].direct, Some(email));
}

#[test]
fn pg_dump_statements_analyze() {
    let catalog = pg15();
    let path = ["pg_catalog".to_owned()];
    let ctx = Context {
        catalog: &catalog,
        search_path: &path,
    };
    let email = col15(&catalog, "public", "users", "email");
    let mut copies = 0;
    for sql in PG_DUMP.split("\n-- next\n") {
        let facts = analyze(sql, &ctx).unwrap_or_else(|e| panic!("{e}\n{sql}"));
        for s in &facts.statements {
            if let StatementKind::CopyTo { .. } = s.kind {
                copies += 1;
                if sql.contains("public.users ") {
                    assert_eq!(s.outputs[1].direct, Some(email), "{sql}");
                }
            }
        }
    }
    assert!(copies >= 5);
}

#[test]
fn pg_dump_names_the_setting_through_pg_settings() {
    let named = |sql: &str| {
        let f = run15(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
        assert_eq!(f.statements[0].settings.len(), 1, "{sql}");
        f.statements[0].settings[0].name.clone()
    };
    let kind = Some("restrict_nonsystem_relation_kind".to_owned());
    for sql in [
        "SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings WHERE name = 'restrict_nonsystem_relation_kind'",
        "SELECT pg_catalog.set_config(s.name, 'view', false) FROM pg_catalog.pg_settings s WHERE 'restrict_nonsystem_relation_kind' = s.name",
    ] {
        assert_eq!(named(sql), kind, "{sql}");
    }
    for sql in [
        "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name LIKE 'r%'",
        "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'jit' OR true",
        "SELECT set_config(name, 'x', false) FROM pg_settings",
        "SELECT set_config(setting, 'x', false) FROM pg_settings WHERE name = 'jit'",
        "SELECT set_config(name, 'x', false) FROM pg_settings, pg_class WHERE name = 'jit'",
        "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'jit' UNION SELECT 'y'",
    ] {
        assert_eq!(named(sql), None, "{sql}");
    }
}

/// pg_dump's name-pattern lookup for `-t`/`-n`/`--exclude-table-data`.
#[test]
fn pg_dump_name_pattern_queries_analyze() {
    let sql = "SELECT c.oid\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n\n     ON n.oid OPERATOR(pg_catalog.=) c.relnamespace\nWHERE c.relkind OPERATOR(pg_catalog.=) ANY\n    (array['r', 'S', 'v', 'm', 'f', 'p'])\n  AND c.relname OPERATOR(pg_catalog.~) '^(users)$' COLLATE pg_catalog.default\n  AND n.nspname OPERATOR(pg_catalog.~) '^(public)$' COLLATE pg_catalog.default\n";
    let facts = run15(sql).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(facts.statements[0].kind, StatementKind::Select);
    assert!(run15("SELECT 1 WHERE 1 OPERATOR(public.=) ANY (array[1])").is_err());
    assert!(run15("SELECT 'OPERATOR(pg_catalog.=) ANY'").is_ok());
}

/// Every statement pg_dump 15 sends is allowed in a session with a dump
/// grant (classified columns pseudonymized, catalog reads allowed).
#[test]
fn pg_dump_statements_are_allowed_with_a_grant() {
    use crate::policy::{Policy, Verdict};
    let catalog = pg15();
    let path = ["pg_catalog".to_owned()];
    let ctx = Context {
        catalog: &catalog,
        search_path: &path,
    };
    let policy = Policy::from_toml_str(
        "[classes.dev]\nmode = \"guarded\"\nroles = [\"dev\"]\nmax_rows_per_statement = 0\n[columns]\n\"public.users.email\" = \"email\"\n",
    )
    .unwrap();
    let dump = std::sync::Arc::new(crate::dumps::DumpScope {
        grant_id: "g".into(),
        scope: Default::default(),
    });
    let class = crate::dumps::granted_class(&policy.classify_role("dev"), &dump);
    let mut refused = Vec::new();
    // The capture's own set-up, and what pg_dump reads only as a superuser.
    let not_pg_dump = ["ALTER SYSTEM", "pg_reload_conf", "FROM pg_subscription"];
    for sql in PG_DUMP.split("\n-- next\n") {
        if not_pg_dump.iter().any(|n| sql.contains(n)) {
            continue;
        }
        let facts = analyze(sql, &ctx).unwrap_or_else(|e| panic!("{e}\n{sql}"));
        for s in &facts.statements {
            if let Verdict::Block(b) = policy.decide(&class, &catalog, s) {
                refused.push(format!("{}: {}\n{sql}", b.rule, b.reason));
            }
        }
    }
    assert!(refused.is_empty(), "{}", refused.join("\n\n"));
}
