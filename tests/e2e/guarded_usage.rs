//! Guarded sessions as developers live them. Ordinary work (an ORM's
//! introspection, psql's `\d` commands, reads, writes rolled back) passes
//! with exactly the results a production role gets directly: false
//! positives matter as much as leaks. Classified rows are counted while
//! they stream: per statement, portal and cursor, per session, per role
//! and window; blocked categories stay blocked. Refusals and stopped
//! results leave the protocol and transaction state as PostgreSQL would.
//! The `serve` binary reloads its policy on SIGHUP; `explain` and
//! `policy check` tell people why.
//!
//! Tests marked `` assert the correct
//! behaviour of a bug found here.

use std::pin::pin;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, SimpleQueryMessage};

use crate::guard_fixture::*;
use crate::raw::{frame, startup_packet, Msg, Raw};
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_copyguard");

// ---------------------------------------------------------------------------
// Clients and results

/// A production session straight to the cluster: the reference.
async fn direct() -> Client {
    connect_to(cluster().db.port(), PROD).await
}

/// How a statement failed.
#[derive(Clone, Debug, PartialEq)]
struct Failure {
    code: String,
    message: String,
}

impl Failure {
    /// A copyguard refusal (or stop) by `rule`.
    fn is_rule(&self, rule: &str) -> bool {
        self.code == "42501"
            && self
                .message
                .starts_with(&format!("copyguard: blocked by rule {rule}:"))
    }

    fn is_refusal(&self) -> bool {
        self.code == "42501" && self.message.starts_with("copyguard:")
    }
}

fn failure(e: &tokio_postgres::Error) -> Failure {
    match e.as_db_error() {
        Some(db) => Failure {
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
        },
        None => Failure {
            code: String::new(),
            message: e.to_string(),
        },
    }
}

/// Rows as text, and the row counts of completed commands.
#[derive(Clone, Debug, Default, PartialEq)]
struct Outcome {
    rows: Vec<Vec<Option<String>>>,
    affected: Vec<u64>,
}

async fn simple(c: &Client, sql: &str) -> Result<Outcome, Failure> {
    let messages = c.simple_query(sql).await.map_err(|e| failure(&e))?;
    let mut out = Outcome::default();
    for m in messages {
        match m {
            SimpleQueryMessage::Row(r) => out
                .rows
                .push((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect()),
            SimpleQueryMessage::CommandComplete(n) => out.affected.push(n),
            _ => {}
        }
    }
    Ok(out)
}

/// A parameter of an extended-protocol step.
#[derive(Clone, Copy, Debug)]
enum Param {
    I(i32),
    L(i64),
    O(u32),
    T(&'static str),
    Is(&'static [i32]),
    Ts(&'static [&'static str]),
}

impl Param {
    fn boxed(self) -> Box<dyn ToSql + Sync + Send> {
        match self {
            Param::I(v) => Box::new(v),
            Param::L(v) => Box::new(v),
            Param::O(v) => Box::new(v),
            Param::T(v) => Box::new(v),
            Param::Is(v) => Box::new(v.to_vec()),
            Param::Ts(v) => Box::new(v.to_vec()),
        }
    }
}

fn cell(row: &Row, i: usize) -> Option<String> {
    let ty = row.columns()[i].type_();
    if *ty == Type::INT2 {
        row.get::<_, Option<i16>>(i).map(|v| v.to_string())
    } else if *ty == Type::INT4 {
        row.get::<_, Option<i32>>(i).map(|v| v.to_string())
    } else if *ty == Type::INT8 {
        row.get::<_, Option<i64>>(i).map(|v| v.to_string())
    } else if *ty == Type::OID {
        row.get::<_, Option<u32>>(i).map(|v| v.to_string())
    } else if *ty == Type::BOOL {
        row.get::<_, Option<bool>>(i).map(|v| v.to_string())
    } else if *ty == Type::FLOAT8 {
        row.get::<_, Option<f64>>(i).map(|v| v.to_string())
    } else if *ty == Type::CHAR {
        row.get::<_, Option<i8>>(i).map(|v| v.to_string())
    } else if [Type::TEXT, Type::VARCHAR, Type::NAME, Type::BPCHAR].contains(ty) {
        row.get::<_, Option<String>>(i)
    } else {
        Some(format!("<{ty}>"))
    }
}

async fn extended(c: &Client, sql: &str, params: &[Param]) -> Result<Outcome, Failure> {
    let boxed: Vec<_> = params.iter().map(|p| p.boxed()).collect();
    let refs: Vec<&(dyn ToSql + Sync)> =
        boxed.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect();
    let rows = c.query(sql, &refs).await.map_err(|e| failure(&e))?;
    Ok(Outcome {
        rows: rows
            .iter()
            .map(|r| (0..r.len()).map(|i| cell(r, i)).collect())
            .collect(),
        affected: Vec::new(),
    })
}

/// Rows an extended-protocol execution delivered before it ended, and how
/// it ended.
async fn stream_rows(
    c: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> (usize, Result<(), Failure>) {
    let st = match c.prepare(sql).await {
        Ok(st) => st,
        Err(e) => return (0, Err(failure(&e))),
    };
    drain(c.query_raw(&st, params.iter().copied()).await).await
}

async fn drain(
    stream: Result<tokio_postgres::RowStream, tokio_postgres::Error>,
) -> (usize, Result<(), Failure>) {
    let stream = match stream {
        Ok(s) => s,
        Err(e) => return (0, Err(failure(&e))),
    };
    let mut stream = pin!(stream);
    let mut n = 0;
    while let Some(item) = stream.next().await {
        match item {
            Ok(_) => n += 1,
            Err(e) => return (n, Err(failure(&e))),
        }
    }
    (n, Ok(()))
}

/// Rows a simple query delivered before it ended, and how it ended.
async fn simple_rows(c: &Client, sql: &str) -> (usize, Result<(), Failure>) {
    let stream = match c.simple_query_raw(sql).await {
        Ok(s) => s,
        Err(e) => return (0, Err(failure(&e))),
    };
    let mut stream = pin!(stream);
    let mut n = 0;
    while let Some(item) = stream.next().await {
        match item {
            Ok(SimpleQueryMessage::Row(_)) => n += 1,
            Ok(_) => {}
            Err(e) => return (n, Err(failure(&e))),
        }
    }
    (n, Ok(()))
}

#[track_caller]
fn assert_stopped(got: &(usize, Result<(), Failure>), rows: usize, rule: &str, what: &str) {
    assert_eq!(got.0, rows, "{what}: rows before the stop ({got:?})");
    match &got.1 {
        Err(f) if f.is_rule(rule) => {}
        other => panic!("{what}: expected 42501 by rule {rule}, got {other:?}"),
    }
}

async fn assert_usable(c: &Client, what: &str) {
    assert_eq!(
        simple(c, "SELECT 1").await.map(|o| o.rows),
        Ok(vec![vec![Some("1".to_owned())]]),
        "session usable after {what}"
    );
}

/// The text of a policy directory's only file.
fn policy_text(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("policy.toml")).expect("policy file")
}

/// [`limited_policy`] with other per-statement bytes.
fn limited_bytes_policy(rows: u64, bytes: &str, session: u64, window: u64) -> std::path::PathBuf {
    let text = policy_text(&limited_policy(rows, session, window)).replace(
        "max_bytes_per_statement = \"1MiB\"",
        &format!("max_bytes_per_statement = \"{bytes}\""),
    );
    policy_dir(&text)
}

// ---------------------------------------------------------------------------
// 1. Ordinary work

/// What a step's result must be, compared with the production role's.
#[derive(Clone, Copy, Debug)]
enum Check {
    /// Exactly the production result.
    Same,
    /// The production result, which has this many rows.
    Rows(usize),
    /// This many rows, values may differ (sequence values).
    Count(usize),
    /// Succeeds (time, plans).
    Succeeds,
}

/// One statement, simple protocol or extended with parameters.
#[derive(Debug)]
struct Step {
    sql: &'static str,
    params: Option<&'static [Param]>,
    check: Check,
}

const fn q(sql: &'static str) -> Step {
    Step {
        sql,
        params: None,
        check: Check::Same,
    }
}

const fn x(sql: &'static str, params: &'static [Param]) -> Step {
    Step {
        sql,
        params: Some(params),
        check: Check::Same,
    }
}

const fn with(step: Step, check: Check) -> Step {
    Step {
        sql: step.sql,
        params: step.params,
        check,
    }
}

use Param::{Is, Ts, I, L, O, T};

/// Ordinary statements of developers and ORMs, in groups run on one
/// session each (a transaction is one group): the guarded session runs a
/// group, then the production reference runs it.
const ORDINARY: &[&[Step]] = &[
    // counts, ids, lookups
    &[q("SELECT count(*) FROM users")],
    &[x("SELECT count(*) FROM orders WHERE status = $1", &[T("paid")])],
    &[q("SELECT id FROM users ORDER BY id")],
    &[x("SELECT id, country, score FROM users WHERE id = $1", &[I(7)])],
    &[x("SELECT id, country, score FROM users WHERE id = $1", &[I(42)])],
    &[x("SELECT t.typname, t.typtype FROM pg_type t WHERE t.oid = $1", &[O(23)])],
    // joins on ids, grouping, views
    &[q("SELECT o.id, o.amount_cents, o.status, u.country FROM orders o JOIN users u ON u.id = o.user_id ORDER BY o.id")],
    &[x("SELECT u.id, count(o.id) FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.country = $1 GROUP BY u.id ORDER BY u.id", &[T("FR")])],
    &[q("SELECT country, count(*), sum(score) FROM users GROUP BY country ORDER BY country")],
    &[q("SELECT country, count(*) FILTER (WHERE score > 50) FROM users GROUP BY country HAVING count(*) > 1 ORDER BY 1")],
    &[q("SELECT DISTINCT country FROM users ORDER BY 1")],
    &[q("SELECT * FROM orders")],
    &[q("SELECT * FROM v_countries")],
    &[x("SELECT * FROM v_countries WHERE country = $1 ORDER BY id", &[T("DE")])],
    &[q("SELECT * FROM app.users")],
    &[q("SELECT id, at FROM events ORDER BY id LIMIT 5")],
    &[q("SELECT count(*) FROM events_2024")],
    &[q("SELECT id, badge FROM staff ORDER BY id LIMIT 3")],
    // classified predicates (allowed to this class), a few classified rows
    &[q("SELECT count(*) FROM users WHERE email LIKE 'zq%'")],
    &[x("SELECT id FROM users WHERE lower(email) = lower($1)", &[T("ZQ0003.leak@victim.example")])],
    &[with(q("SELECT email FROM users ORDER BY id LIMIT 5"), Check::Rows(5))],
    &[with(x("SELECT full_name, country FROM users WHERE id = $1", &[I(3)]), Check::Rows(1))],
    // window functions, CTEs, subqueries, set operations
    &[q("SELECT id, score, rank() OVER (ORDER BY score DESC, id) FROM users ORDER BY id")],
    &[q("SELECT id, country, sum(score) OVER (PARTITION BY country ORDER BY id) FROM users ORDER BY id")],
    &[q("SELECT id, user_id, lag(amount_cents) OVER (PARTITION BY user_id ORDER BY id) FROM orders ORDER BY id")],
    &[q("WITH totals AS (SELECT user_id, sum(amount_cents) AS total FROM orders GROUP BY user_id) SELECT u.country, max(t.total) FROM totals t JOIN users u ON u.id = t.user_id GROUP BY u.country ORDER BY 1")],
    &[q("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT sum(i) FROM n")],
    &[q("SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.amount_cents > 2050) ORDER BY id")],
    &[q("SELECT id FROM users WHERE id IN (SELECT user_id FROM orders WHERE status = 'shipped' AND amount_cents < 2010) ORDER BY id")],
    &[x("SELECT id, score FROM users WHERE id = ANY($1) ORDER BY id", &[Is(&[1, 2, 3, 50])])],
    &[q("SELECT id, score FROM users ORDER BY score DESC, id LIMIT 10 OFFSET 20")],
    &[x("SELECT id FROM orders ORDER BY id LIMIT $1 OFFSET $2", &[L(5), L(10)])],
    &[q("SELECT u.id, o.total FROM users u CROSS JOIN LATERAL (SELECT sum(amount_cents) AS total FROM orders WHERE user_id = u.id) o ORDER BY u.id LIMIT 5")],
    &[q("SELECT id FROM users UNION SELECT user_id FROM orders ORDER BY 1 LIMIT 5")],
    &[q("SELECT id, CASE WHEN score > 50 THEN 'high' ELSE 'low' END FROM users ORDER BY id LIMIT 10")],
    &[q("SELECT json_build_object('id', id, 'country', country) FROM users ORDER BY id LIMIT 3")],
    &[q("SELECT to_char(at, 'YYYY-MM') AS month, count(*) FROM events GROUP BY 1 ORDER BY 1")],
    // session and server
    &[with(q("SELECT now()"), Check::Succeeds)],
    &[q("SELECT version()")],
    &[q("SELECT current_database(), current_schema(), current_setting('server_version_num')")],
    &[q("SHOW search_path")],
    &[
        q("SET statement_timeout = '5s'"),
        q("SHOW statement_timeout"),
        q("RESET statement_timeout"),
    ],
    &[q("SET application_name = 'orm'")],
    &[with(q("EXPLAIN SELECT * FROM orders"), Check::Succeeds)],
    // catalogs, as ORMs read them
    &[q("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'orders' ORDER BY ordinal_position")],
    &[q("SELECT table_name FROM information_schema.tables WHERE table_schema = 'app' ORDER BY 1")],
    &[x("SELECT oid, typname FROM pg_type WHERE typname = ANY($1) ORDER BY oid", &[Ts(&["int4", "text", "bool"])])],
    &[q("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname IN ('users', 'orders', 'v_countries', 'events') ORDER BY 1")],
    &[q("SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a WHERE a.attrelid = 'public.users'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum")],
    &[q("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'orders'::regclass ORDER BY 1")],
    &[q("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'users' ORDER BY 1")],
    // writes, rolled back; transaction control
    &[
        q("BEGIN"),
        with(
            q("INSERT INTO orders (user_id, amount_cents, status) VALUES (1, 5, 'test') RETURNING id"),
            Check::Count(1),
        ),
        q("SELECT count(*) FROM orders WHERE status = 'test'"),
        q("ROLLBACK"),
    ],
    &[
        q("BEGIN"),
        q("UPDATE orders SET status = 'x' WHERE id = 1"),
        q("SELECT status FROM orders WHERE id = 1"),
        q("ROLLBACK"),
    ],
    &[
        q("BEGIN"),
        x("DELETE FROM orders WHERE id = $1", &[I(2)]),
        q("SELECT count(*) FROM orders WHERE id = 2"),
        q("ROLLBACK"),
    ],
    &[
        q("BEGIN"),
        q("INSERT INTO scratch (note) VALUES ('usage')"),
        q("SAVEPOINT s1"),
        q("UPDATE orders SET amount_cents = amount_cents + 1 WHERE id = 3"),
        q("ROLLBACK TO SAVEPOINT s1"),
        q("SAVEPOINT s2"),
        q("SELECT amount_cents FROM orders WHERE id = 3"),
        q("RELEASE SAVEPOINT s2"),
        q("ROLLBACK"),
    ],
    &[
        q("BEGIN ISOLATION LEVEL REPEATABLE READ"),
        q("SELECT id FROM orders WHERE id = 5 FOR UPDATE"),
        q("SELECT count(*) FROM users"),
        q("COMMIT"),
    ],
    &[
        q("START TRANSACTION READ ONLY"),
        q("SELECT max(amount_cents) FROM orders"),
        q("COMMIT"),
    ],
    // A temporary table, once a transaction statement made copyguard
    // re-read the search path (see `temporary_tables_are_usable_right_after_create`).
    &[
        q("CREATE TEMP TABLE t0 (id int)"),
        q("BEGIN"),
        q("COMMIT"),
        q("INSERT INTO t0 VALUES (1)"),
        q("SELECT * FROM t0"),
        q("DROP TABLE t0"),
    ],
];

/// A temporary table used right after it is created, as in the
/// statement list above; unqualified and through `pg_temp`.
const TEMPORARY: &[Step] = &[
    q("CREATE TEMP TABLE t (id int)"),
    q("INSERT INTO t VALUES (1)"),
    q("SELECT * FROM t"),
    x("SELECT id FROM t WHERE id = $1", &[I(1)]),
    q("SELECT * FROM pg_temp.t"),
    q("DROP TABLE t"),
];

/// psql meta-commands run through the proxy, compared with psql run
/// directly as the production role.
const META: &[&str] = &[
    "\\d users",
    "\\d orders",
    "\\d+ orders",
    "\\d v_contacts",
    "\\d+ v_countries",
    "\\dt",
    "\\dv",
    "\\di",
    "\\ds",
    "\\l",
    "\\dn",
    "\\df",
    "\\du",
    "\\dx",
    "\\dp orders",
    "\\copy (SELECT id, user_id, status FROM orders ORDER BY id) TO STDOUT",
];

async fn run_step(c: &Client, step: &Step) -> Result<Outcome, Failure> {
    match step.params {
        None => simple(c, step.sql).await,
        Some(p) => extended(c, step.sql, p).await,
    }
}

/// The problem with one step, if any: refused, failed or different.
fn judge(
    step: &Step,
    dev: &Result<Outcome, Failure>,
    prod: &Result<Outcome, Failure>,
) -> Option<String> {
    let (dev, prod) = match (dev, prod) {
        (Err(f), _) if f.is_refusal() => {
            return Some(format!("REFUSED {}: {}", step.sql, f.message))
        }
        (Err(f), _) => return Some(format!("FAILED {}: {f:?}", step.sql)),
        (_, Err(f)) => return Some(format!("reference failed {}: {f:?}", step.sql)),
        (Ok(d), Ok(p)) => (d, p),
    };
    let ok = match step.check {
        Check::Same => dev == prod,
        Check::Rows(n) => dev == prod && dev.rows.len() == n,
        Check::Count(n) => dev.rows.len() == n && prod.rows.len() == n,
        Check::Succeeds => true,
    };
    (!ok).then(|| format!("DIFFERS {}:\n guarded {dev:?}\n direct  {prod:?}", step.sql))
}

fn psql_meta(port: u16, user: &str, meta: &str) -> (bool, String, String) {
    let out = client("psql")
        .args(["-X", "-d", &conninfo(port, user, DB, ""), "-c", meta])
        .output()
        .expect("run psql");
    let (o, e) = text(&out);
    (out.status.success(), o, e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_developer_work_passes() {
    let proxy = guarded_proxy(limited_policy(20, 200, 1000));
    let dev = connect_to(proxy.port(), DEV).await;
    let prod = direct().await;
    let mut tried = 0;
    let mut refused = 0;
    let mut problems = Vec::new();
    for group in ORDINARY {
        tried += group.len();
        // A differing result is retried once: other tests may change the
        // shared database between the two runs.
        for attempt in 0..2 {
            let mut got = Vec::new();
            for step in *group {
                got.push(run_step(&dev, step).await);
            }
            let mut reference = Vec::new();
            for step in *group {
                reference.push(run_step(&prod, step).await);
            }
            let found: Vec<String> = group
                .iter()
                .zip(got.iter().zip(&reference))
                .filter_map(|(step, (d, p))| judge(step, d, p))
                .collect();
            let retry =
                !found.is_empty() && attempt == 0 && found.iter().all(|f| f.starts_with("DIFFERS"));
            if !retry {
                refused += found.iter().filter(|f| f.starts_with("REFUSED")).count();
                problems.extend(found);
                break;
            }
        }
    }
    assert!(!dev.is_closed() && !prod.is_closed());
    for meta in META {
        tried += 1;
        let mut last = None;
        for _ in 0..2 {
            let got = psql_meta(proxy.port(), DEV, meta);
            let reference = psql_meta(cluster().db.port(), PROD, meta);
            if got.0 && got == reference {
                last = None;
                break;
            }
            last = Some((got, reference));
        }
        if let Some((got, reference)) = last {
            if got.2.contains("copyguard: blocked") {
                refused += 1;
            }
            problems.push(format!(
                "psql {meta}:\n guarded {got:?}\n direct  {reference:?}"
            ));
        }
    }
    eprintln!("ordinary statements tried: {tried}, wrongly refused: {refused}");
    assert!(tried >= 40, "{tried}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(refused, 0);
}

/// A temporary table is usable by the next statement (`allow_ddl`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn temporary_tables_are_usable_right_after_create() {
    let proxy = guarded_proxy(limited_policy(20, 200, 1000));
    let dev = connect_to(proxy.port(), DEV).await;
    let prod = direct().await;
    let mut problems = Vec::new();
    for step in TEMPORARY {
        let got = run_step(&dev, step).await;
        let reference = run_step(&prod, step).await;
        problems.extend(judge(step, &got, &reference));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// DDL followed by statements using it, in one simple query (`psql -c`,
/// some migration tools): copyguard resolves every name before the string
/// runs, so it refuses the string with a rule that says how to send it,
/// and nothing of it runs. Sent as separate queries, the same work passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_and_its_use_in_one_query_string_are_refused_clearly() {
    let proxy = guarded_proxy(limited_policy(20, 200, 1000));
    let dev = connect_to(proxy.port(), DEV).await;
    let prod = direct().await;
    for script in [
        "CREATE TEMP TABLE t (id int); INSERT INTO t VALUES (1); SELECT * FROM t",
        "BEGIN; CREATE TABLE usage_migration (id int); INSERT INTO usage_migration VALUES (1); \
         SELECT * FROM usage_migration; ROLLBACK",
        "SET search_path = public; SELECT count(*) FROM orders",
    ] {
        match simple(&dev, script).await {
            Err(f)
                if f.is_rule("analysis.context_change")
                    || (f.is_rule("analysis.unknown_relation")
                        && f.message
                            .contains("send the statements that use it separately")) => {}
            other => panic!("{script}: expected a refusal saying how to send it, got {other:?}"),
        }
        assert_usable(&dev, script).await;
    }
    let missing = "SELECT count(*) FROM pg_class WHERE relname IN ('t', 'usage_migration')";
    assert_eq!(
        simple(&dev, missing).await.map(|o| o.rows),
        Ok(vec![vec![Some("0".to_owned())]]),
        "nothing of a refused string ran"
    );
    let statements = [
        "CREATE TEMP TABLE t (id int)",
        "INSERT INTO t VALUES (1)",
        "SELECT * FROM t",
        "DROP TABLE t",
    ];
    for sql in statements {
        assert_eq!(simple(&dev, sql).await, simple(&prod, sql).await, "{sql}");
    }
}

// ---------------------------------------------------------------------------
// 2. Row and byte limits while streaming

const ALL_EMAILS: &str = "SELECT email FROM users ORDER BY id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_stop_streaming_results_and_keep_the_session() {
    let proxy = guarded_proxy(limited_policy(5, 100, 1000));
    let port = proxy.port();

    // psql: the error, then the next statement of the same session.
    let out = psql(
        &conninfo(port, DEV, DB, ""),
        &format!("{ALL_EMAILS};\nSELECT 1;\n"),
    );
    let (o, e) = text(&out);
    assert!(
        e.contains("ERROR:  42501: copyguard: blocked by rule limit.rows:"),
        "{e}"
    );
    assert_eq!(
        o, "1\n",
        "psql drops the partial result; the session goes on"
    );
    // psql fetching through a cursor prints what came before the stop.
    let out = psql(
        &conninfo(port, DEV, DB, ""),
        &format!("\\set FETCH_COUNT 2\n{ALL_EMAILS};\nSELECT 1;\n"),
    );
    let (o, e) = text(&out);
    assert!(e.contains("limit.rows"), "{e}");
    // psql ends the interrupted output without a newline.
    assert_eq!(
        o.matches("@victim.example").count(),
        4,
        "2 fetches of 2: {o}"
    );
    assert!(o.ends_with("1\n"), "SELECT 1 after the stop: {o}");

    let dev = connect_to(port, DEV).await;
    // Simple protocol: exactly 5 rows, then the stop.
    assert_stopped(
        &simple_rows(&dev, ALL_EMAILS).await,
        5,
        "limit.rows",
        "simple",
    );
    assert_usable(&dev, "a stop in the simple protocol").await;
    let err = dev.simple_query(ALL_EMAILS).await.unwrap_err();
    assert!(failure(&err).is_rule("limit.rows"), "{err:?}");
    assert_usable(&dev, "a stop in the simple protocol").await;

    // Extended protocol: every execution of a prepared statement counts
    // on its own.
    for run in 0..2 {
        assert_stopped(
            &stream_rows(&dev, ALL_EMAILS, &[]).await,
            5,
            "limit.rows",
            &format!("extended, run {run}"),
        );
        assert_usable(&dev, "a stop in the extended protocol").await;
    }
    let st = dev.prepare(ALL_EMAILS).await.unwrap();
    let err = dev.query(&st, &[]).await.unwrap_err();
    assert!(failure(&err).is_rule("limit.rows"), "{err:?}");
    assert_eq!(
        dev.query(&st, &[])
            .await
            .map_err(|e| failure(&e))
            .err()
            .map(|f| f.is_rule("limit.rows")),
        Some(true)
    );

    // A portal executed 2 rows at a time: counted across executions.
    let mut dev = dev;
    let tx = dev.transaction().await.unwrap();
    let portal = tx.bind(&st, &[]).await.unwrap();
    let mut delivered = 0;
    let mut stop = None;
    for _ in 0..10 {
        let (n, end) = drain(tx.query_portal_raw(&portal, 2).await).await;
        delivered += n;
        if let Err(f) = end {
            stop = Some(f);
            break;
        }
    }
    assert_eq!(delivered, 5, "rows delivered through the portal");
    assert!(
        stop.as_ref().is_some_and(|f| f.is_rule("limit.rows")),
        "{stop:?}"
    );
    let next = tx.simple_query("SELECT 1").await.map_err(|e| failure(&e));
    assert_eq!(
        next.err().map(|f| f.code),
        Some("25P02".to_owned()),
        "the stop failed the transaction"
    );
    tx.rollback().await.unwrap();
    assert_usable(&dev, "a stopped portal").await;

    // Inside BEGIN: the transaction is failed, ROLLBACK ends it.
    simple(&dev, "BEGIN").await.unwrap();
    assert_stopped(
        &simple_rows(&dev, ALL_EMAILS).await,
        5,
        "limit.rows",
        "in BEGIN",
    );
    let next = simple(&dev, "SELECT 1").await;
    assert_eq!(next.err().map(|f| f.code), Some("25P02".to_owned()));
    simple(&dev, "ROLLBACK").await.unwrap();
    assert_usable(&dev, "ROLLBACK of a stopped transaction").await;
    // The same with the extended protocol inside the transaction.
    simple(&dev, "BEGIN").await.unwrap();
    assert_stopped(
        &stream_rows(&dev, ALL_EMAILS, &[]).await,
        5,
        "limit.rows",
        "extended in BEGIN",
    );
    let next = dev.query("SELECT 1", &[]).await.map_err(|e| failure(&e));
    assert_eq!(next.err().map(|f| f.code), Some("25P02".to_owned()));
    simple(&dev, "ROLLBACK").await.unwrap();
    assert_usable(&dev, "ROLLBACK of a stopped extended transaction").await;

    // Results within the limit are untouched.
    assert_eq!(
        simple(&dev, "SELECT email FROM users ORDER BY id LIMIT 5")
            .await
            .map(|o| o.rows.len()),
        Ok(5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_limit_stops_wide_results() {
    let proxy = guarded_proxy(limited_bytes_policy(100, "200", 100, 1000));
    let dev = connect_to(proxy.port(), DEV).await;
    // Each full_name is 19 bytes: 200 bytes hold at most 10 of them.
    for (what, got) in [
        (
            "simple",
            simple_rows(&dev, "SELECT full_name FROM users").await,
        ),
        (
            "extended",
            stream_rows(&dev, "SELECT full_name FROM users", &[]).await,
        ),
    ] {
        assert!((1..=10).contains(&got.0), "{what}: {got:?}");
        assert!(
            got.1.as_ref().is_err_and(|f| f.is_rule("limit.bytes")),
            "{what}: {got:?}"
        );
        assert_usable(&dev, "a byte limit").await;
    }
    assert_eq!(
        simple(&dev, "SELECT full_name FROM users WHERE id <= 3")
            .await
            .map(|o| o.rows.len()),
        Ok(3)
    );
}

// ---------------------------------------------------------------------------
// 3. Cumulative budgets

const EMAILS_BETWEEN: &str = "SELECT email FROM users WHERE id BETWEEN $1 AND $2 ORDER BY id";

async fn emails_between(c: &Client, from: i32, to: i32) -> (usize, Result<(), Failure>) {
    stream_rows(c, EMAILS_BETWEEN, &[&from, &to]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_budget_stops_slow_exfiltration() {
    let proxy = guarded_proxy(limited_policy(5, 12, 1000));
    let dev = connect_to(proxy.port(), DEV).await;
    assert_eq!(emails_between(&dev, 1, 5).await, (5, Ok(())));
    assert_eq!(emails_between(&dev, 6, 10).await, (5, Ok(())));
    assert_stopped(
        &emails_between(&dev, 11, 15).await,
        2,
        "budget.session",
        "third query",
    );
    assert_usable(&dev, "budget.session").await;
    // Spent: even one more row is refused, unclassified work goes on.
    assert_stopped(
        &emails_between(&dev, 1, 1).await,
        0,
        "budget.session",
        "after the budget",
    );
    assert_eq!(
        simple(&dev, "SELECT count(*) FROM users")
            .await
            .map(|o| o.rows),
        Ok(vec![vec![Some(USERS.to_string())]])
    );
    // A new session has its own budget.
    let fresh = connect_to(proxy.port(), DEV).await;
    assert_eq!(emails_between(&fresh, 11, 15).await, (5, Ok(())));
}

/// Opens a transaction and in it cursor `c` over every email.
async fn begin_with_cursor(dev: &Client) {
    simple(dev, "BEGIN").await.unwrap();
    simple(dev, &format!("DECLARE c CURSOR FOR {ALL_EMAILS}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_loops_count_against_the_cursor() {
    let proxy = guarded_proxy(limited_policy(5, 100, 1000));
    let dev = connect_to(proxy.port(), DEV).await;
    begin_with_cursor(&dev).await;
    assert_eq!(simple_rows(&dev, "FETCH 3 FROM c").await, (3, Ok(())));
    assert_stopped(
        &simple_rows(&dev, "FETCH 3 FROM c").await,
        2,
        "limit.rows",
        "second FETCH",
    );
    assert_eq!(
        simple(&dev, "FETCH 1 FROM c").await.err().map(|f| f.code),
        Some("25P02".to_owned())
    );
    simple(&dev, "ROLLBACK").await.unwrap();

    // Simple and extended FETCHes of one cursor share its count; MOVE
    // returns no rows and counts none.
    begin_with_cursor(&dev).await;
    assert_eq!(simple_rows(&dev, "FETCH 2 FROM c").await, (2, Ok(())));
    assert_eq!(
        simple(&dev, "MOVE 10 IN c").await.map(|o| o.rows.len()),
        Ok(0)
    );
    assert_eq!(stream_rows(&dev, "FETCH 2 FROM c", &[]).await, (2, Ok(())));
    assert_stopped(
        &simple_rows(&dev, "FETCH FORWARD 5 FROM c").await,
        1,
        "limit.rows",
        "third FETCH",
    );
    simple(&dev, "ROLLBACK").await.unwrap();

    // A new cursor counts afresh.
    begin_with_cursor(&dev).await;
    assert_eq!(simple_rows(&dev, "FETCH 5 FROM c").await, (5, Ok(())));
    simple(&dev, "COMMIT").await.unwrap();
    assert_usable(&dev, "cursors").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_window_is_shared_by_all_sessions_of_the_role() {
    let proxy = guarded_proxy(limited_policy(5, 100, 12));
    let first = connect_to(proxy.port(), DEV).await;
    let second = connect_to(proxy.port(), DEV).await;
    assert_eq!(emails_between(&first, 1, 5).await, (5, Ok(())));
    assert_eq!(emails_between(&second, 6, 10).await, (5, Ok(())));
    assert_stopped(
        &emails_between(&second, 11, 15).await,
        2,
        "budget.role",
        "second session",
    );
    assert_stopped(
        &emails_between(&first, 16, 16).await,
        0,
        "budget.role",
        "first session",
    );
    let third = connect_to(proxy.port(), DEV).await;
    assert_stopped(
        &emails_between(&third, 1, 1).await,
        0,
        "budget.role",
        "a new session",
    );
    assert_usable(&third, "budget.role").await;
    assert_usable(&first, "budget.role").await;

    // The window slides: rows taken more than `window` ago are given back.
    let text =
        policy_text(&limited_policy(5, 100, 6)).replace("window = \"1h\"", "window = \"1s\"");
    let proxy = guarded_proxy(policy_dir(&text));
    let dev = connect_to(proxy.port(), DEV).await;
    assert_eq!(emails_between(&dev, 1, 5).await, (5, Ok(())));
    assert_stopped(
        &emails_between(&dev, 6, 10).await,
        1,
        "budget.role",
        "full window",
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(emails_between(&dev, 6, 10).await, (5, Ok(())));
}

// ---------------------------------------------------------------------------
// 4. Blocked categories

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_categories_are_refused_under_any_limit() {
    let proxy = guarded_proxy(limited_policy(20, 200, 1000));
    let dev = connect_to(proxy.port(), DEV).await;
    let mut tried = 0;
    for sql in [
        "SELECT ssn FROM users LIMIT 1",
        "SELECT lower(ssn) FROM users WHERE id = 1",
        "SELECT * FROM users WHERE id = 1",
        "SELECT id, (SELECT ssn FROM users u2 WHERE u2.id = u.id) FROM users u LIMIT 1",
        "WITH s AS (SELECT ssn AS x FROM users) SELECT x FROM s LIMIT 1",
    ] {
        tried += 1;
        let got = simple(&dev, sql).await;
        assert!(
            got.as_ref().is_err_and(|f| f.is_rule("category.blocked")),
            "{sql}: {got:?}"
        );
        let got = dev.prepare(sql).await.map_err(|e| failure(&e));
        assert!(
            got.as_ref().is_err_and(|f| f.is_rule("category.blocked")),
            "prepared {sql}: {:?}",
            got.err()
        );
        assert_usable(&dev, sql).await;
    }
    assert_eq!(tried, 5);
}

// ---------------------------------------------------------------------------
// 5. Hot reload of the serve binary

/// `copyguard serve` as a child process, its log collected.
struct Serve {
    served: Served,
    port: u16,
}

impl Serve {
    fn start(dir: &std::path::Path) -> Serve {
        let served = Served::start(
            serve_command(dir)
                .args(["--log-format", "json", "--shutdown-timeout", "2s"])
                .stderr(Stdio::piped()),
        );
        Serve {
            port: served.port(),
            served,
        }
    }

    fn signal(&self, sig: libc::c_int) {
        let rc = unsafe { libc::kill(self.served.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0);
    }

    fn log(&self) -> String {
        self.served.stderr()
    }

    /// Sends SIGHUP and waits for the `n`th log line holding `needle`.
    async fn reload(&self, needle: &str, n: usize) {
        self.signal(libc::SIGHUP);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log().matches(needle).count() < n {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} #{n} in\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let child = &mut self.served.child;
        if child.try_wait().ok().flatten().is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const ONE_EMAIL: &str = "SELECT email FROM users LIMIT 1";
const FIVE_EMAILS: &str = "SELECT email FROM users ORDER BY id LIMIT 5";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_policy_for_the_next_statement() {
    fixture();
    let locked = policy_text(&locked_policy());
    let five = policy_text(&limited_policy(5, 100, 1000));
    let three = policy_text(&limited_policy(3, 100, 1000));
    let dir = policy_dir(&locked);
    let file = dir.join("policy.toml");
    let serve = Serve::start(&dir);
    let dev = connect_to(serve.port, DEV).await;
    let prod = connect_to(serve.port, PROD).await;

    let got = simple(&dev, ONE_EMAIL).await;
    assert!(
        got.as_ref()
            .is_err_and(|f| f.is_rule("classified.not_allowed")),
        "{got:?}"
    );

    // DEV may read 5 rows: the open session's next statement knows it.
    std::fs::write(&file, &five).unwrap();
    serve.reload("policy reloaded", 1).await;
    assert_eq!(
        simple(&dev, ONE_EMAIL).await.map(|o| o.rows.len()),
        Ok(1),
        "the open session runs under the reloaded policy"
    );
    let prepared = dev.prepare(FIVE_EMAILS).await.unwrap();
    let no_params: [&(dyn ToSql + Sync); 0] = [];
    assert_eq!(
        drain(dev.query_raw(&prepared, no_params).await).await,
        (5, Ok(()))
    );

    // An invalid policy is refused, logged with its file, and the valid
    // one stays in force.
    let invalid = five.replace("max_rows_per_session = 100", "max_rows_per_sesion = 100");
    assert_ne!(invalid, five);
    std::fs::write(&file, &invalid).unwrap();
    serve.reload("new policy refused", 1).await;
    let log = serve.log();
    let line = log
        .lines()
        .find(|l| l.contains("new policy refused"))
        .unwrap();
    assert!(
        line.contains(&file.display().to_string()) && line.contains("max_rows_per_sesion"),
        "the refusal names the file and the key: {line}"
    );
    assert_eq!(
        simple(&dev, ONE_EMAIL).await.map(|o| o.rows.len()),
        Ok(1),
        "the previous policy stays in force"
    );

    // Fixed: 3 rows per statement, and PROD becomes guarded too.
    let fixed = three
        .replace(&format!("roles = [\"{PROD}\"]"), "roles = [\"scram_user\"]")
        .replace(
            &format!("roles = [\"{DEV}\"]"),
            &format!("roles = [\"{DEV}\", \"{PROD}\"]"),
        );
    std::fs::write(&file, &fixed).unwrap();
    serve.reload("policy reloaded", 2).await;
    assert_stopped(
        &simple_rows(&dev, FIVE_EMAILS).await,
        3,
        "limit.rows",
        "fixed policy",
    );
    // The class is fixed at login: the open production session is still
    // relayed untouched, a new one is guarded.
    assert_eq!(
        simple(&prod, "SELECT email FROM users")
            .await
            .map(|o| o.rows.len()),
        Ok(USERS),
        "a production session stays production"
    );
    let prod_new = connect_to(serve.port, PROD).await;
    assert_stopped(
        &simple_rows(&prod_new, FIVE_EMAILS).await,
        3,
        "limit.rows",
        "new PROD session",
    );

    // DEV turns production: the open guarded session stays guarded (under
    // its login class, the locked one); a new session is production.
    let swapped = five
        .replace(&format!("roles = [\"{PROD}\"]"), "roles = [\"__prod__\"]")
        .replace(
            &format!("roles = [\"{DEV}\"]"),
            &format!("roles = [\"{PROD}\"]"),
        )
        .replace("roles = [\"__prod__\"]", &format!("roles = [\"{DEV}\"]"));
    std::fs::write(&file, &swapped).unwrap();
    serve.reload("policy reloaded", 3).await;
    let got = simple_rows(&dev, FIVE_EMAILS).await;
    assert!(
        got.1.as_ref().is_err_and(|f| f.is_refusal()) && got.0 == 0,
        "an open guarded session never turns production: {got:?}"
    );
    eprintln!("open guarded session after its role turned production: {got:?}");
    let dev_new = connect_to(serve.port, DEV).await;
    assert_eq!(
        simple(&dev_new, "SELECT email FROM users")
            .await
            .map(|o| o.rows.len()),
        Ok(USERS)
    );

    drop((dev, prod, prod_new, dev_new));
    let mut serve = serve;
    serve.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = serve.served.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

// ---------------------------------------------------------------------------
// 6. Protocol and transaction state after refusals

/// SCRAM login of `user` with the byte-level client.
async fn raw_login(port: u16, user: &str) -> Raw {
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
    use postgres_protocol::message::frontend;
    let mut raw = Raw::connect(port).await;
    raw.send(&startup_packet(0, &[("user", user), ("database", DB)]))
        .await;
    let mut scram = ScramSha256::new(PASSWORD.as_bytes(), ChannelBinding::unsupported());
    while let Some(m) = raw.recv().await {
        match m.tag {
            b'R' => {
                let kind = u32::from_be_bytes([m.body[0], m.body[1], m.body[2], m.body[3]]);
                let mut buf = bytes::BytesMut::new();
                match kind {
                    10 => {
                        frontend::sasl_initial_response("SCRAM-SHA-256", scram.message(), &mut buf)
                            .unwrap();
                        raw.send(&buf).await;
                    }
                    11 => {
                        scram.update(&m.body[4..]).unwrap();
                        frontend::sasl_response(scram.message(), &mut buf).unwrap();
                        raw.send(&buf).await;
                    }
                    12 => scram.finish(&m.body[4..]).unwrap(),
                    _ => {}
                }
            }
            b'Z' => return raw,
            b'E' => panic!("login failed: {:?}", m.field(b'M')),
            _ => {}
        }
    }
    panic!("connection closed during login");
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn query_msg(sql: &str) -> Vec<u8> {
    frame(b'Q', &cstr(sql))
}

/// Parse, Bind and Execute of `sql` (unnamed statement and portal).
fn pbe(sql: &str) -> Vec<u8> {
    let mut p = cstr("");
    p.extend(cstr(sql));
    p.extend(0u16.to_be_bytes());
    let mut b = cstr("");
    b.extend(cstr(""));
    b.extend([0u8; 6]);
    let mut e = cstr("");
    e.extend(0i32.to_be_bytes());
    [frame(b'P', &p), frame(b'B', &b), frame(b'E', &e)].concat()
}

fn sync_msg() -> Vec<u8> {
    frame(b'S', &[])
}

/// Message tags, with the SQLSTATE of errors and the status of
/// ReadyForQuery: `1 2 D C E:42501 Z:I`.
fn shape(msgs: &[Msg]) -> String {
    msgs.iter()
        .map(|m| match m.tag {
            b'E' => format!("E:{}", m.sqlstate().unwrap_or_default()),
            b'Z' => format!("Z:{}", m.body[0] as char),
            t => (t as char).to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn error_message(msgs: &[Msg]) -> String {
    msgs.iter()
        .find(|m| m.tag == b'E')
        .and_then(|m| m.field(b'M'))
        .unwrap_or_default()
}

const REFUSED: &str = "SELECT ssn FROM users";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_leave_protocol_and_transaction_state_right() {
    let proxy = guarded_proxy(limited_policy(5, 100, 1000));
    let mut raw = raw_login(proxy.port(), DEV).await;

    // Simple protocol, outside and inside a transaction.
    let got = raw.query(REFUSED).await;
    assert_eq!(shape(&got), "E:42501 Z:I");
    assert!(error_message(&got).contains("category.blocked"), "{got:?}");
    assert_eq!(shape(&raw.query("SELECT 1").await), "T D C Z:I");
    assert_eq!(shape(&raw.query("BEGIN").await), "C Z:T");
    assert_eq!(shape(&raw.query(REFUSED).await), "E:42501 Z:E");
    assert_eq!(shape(&raw.query("SELECT 1").await), "E:25P02 Z:E");
    assert_eq!(shape(&raw.query("ROLLBACK").await), "C Z:I");

    // A result stopped by the row limit, outside and inside a transaction.
    let got = raw.query(ALL_EMAILS).await;
    assert_eq!(shape(&got), "T D D D D D E:42501 Z:I");
    assert!(error_message(&got).contains("limit.rows"), "{got:?}");
    assert_eq!(shape(&raw.query("SELECT 1").await), "T D C Z:I");
    assert_eq!(shape(&raw.query("BEGIN").await), "C Z:T");
    assert_eq!(
        shape(&raw.query(ALL_EMAILS).await),
        "T D D D D D E:42501 Z:E"
    );
    assert_eq!(shape(&raw.query("SELECT 1").await), "E:25P02 Z:E");
    assert_eq!(shape(&raw.query("ROLLBACK").await), "C Z:I");

    // A pipeline with a refused Parse in the middle: what came before is
    // answered, the rest is skipped up to Sync, as PostgreSQL does.
    raw.send(&[pbe("SELECT 1"), pbe(REFUSED), pbe("SELECT 2"), sync_msg()].concat())
        .await;
    let got = raw.until_ready().await;
    assert_eq!(shape(&got), "1 2 D C E:42501 Z:I");
    assert!(error_message(&got).contains("category.blocked"), "{got:?}");
    raw.send(&[pbe("SELECT 3"), sync_msg()].concat()).await;
    assert_eq!(shape(&raw.until_ready().await), "1 2 D C Z:I");

    // The same inside a transaction: it is failed.
    assert_eq!(shape(&raw.query("BEGIN").await), "C Z:T");
    raw.send(&[pbe("SELECT 1"), pbe(REFUSED), sync_msg()].concat())
        .await;
    assert_eq!(shape(&raw.until_ready().await), "1 2 D C E:42501 Z:E");
    raw.send(&[pbe("SELECT 1"), sync_msg()].concat()).await;
    assert_eq!(shape(&raw.until_ready().await), "E:25P02 Z:E");
    assert_eq!(shape(&raw.query("ROLLBACK").await), "C Z:I");

    // A result stopped in a pipeline: its rows, the stop, the rest skipped.
    raw.send(&[pbe(ALL_EMAILS), pbe("SELECT 2"), sync_msg()].concat())
        .await;
    let got = raw.until_ready().await;
    assert_eq!(shape(&got), "1 2 D D D D D E:42501 Z:I");
    assert!(error_message(&got).contains("limit.rows"), "{got:?}");
    assert_eq!(shape(&raw.query("SELECT 1").await), "T D C Z:I");

    // tokio-postgres pipelines each query in its own Sync batch: only the
    // refused one fails.
    let dev = connect_to(proxy.port(), DEV).await;
    let results = futures_util::future::join_all([
        dev.query("SELECT 1::int4", &[]),
        dev.query("SELECT count(*)::int4 FROM orders WHERE user_id = 1", &[]),
        dev.query(REFUSED, &[]),
        dev.query("SELECT 3::int4", &[]),
    ])
    .await;
    let summary: Vec<Result<i32, Failure>> = results
        .into_iter()
        .map(|r| r.map(|rows| rows[0].get(0)).map_err(|e| failure(&e)))
        .collect();
    assert_eq!(summary[0], Ok(1));
    assert_eq!(summary[1], Ok(2));
    assert!(
        summary[2]
            .as_ref()
            .is_err_and(|f| f.is_rule("category.blocked")),
        "{summary:?}"
    );
    assert_eq!(summary[3], Ok(3));
    assert_usable(&dev, "a pipelined refusal").await;
}

/// A result stopped by a limit ends the request as an error would: the
/// statements after it in the same query string or pipeline must not take
/// effect, as PostgreSQL skips them after an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn statements_after_a_stopped_result_do_not_take_effect() {
    let proxy = guarded_proxy(limited_policy(5, 100, 1000));
    let dev = connect_to(proxy.port(), DEV).await;
    let prod = direct().await;
    let tag = format!("after-stop-{}", std::process::id());
    let count = |note: String| {
        let prod = &prod;
        async move {
            let rows = prod
                .query("SELECT count(*) FROM scratch WHERE note = $1", &[&note])
                .await
                .unwrap();
            rows[0].get::<_, i64>(0)
        }
    };
    // A statement returning classified rows followed by others in one
    // query string: refused as a whole before anything runs (the server
    // would run the rest even after a stop).
    let simple_note = format!("{tag}-simple");
    let block_note = format!("{tag}-block");
    for sql in [
        format!("{ALL_EMAILS}; INSERT INTO scratch (note) VALUES ('{simple_note}')"),
        format!("BEGIN; {ALL_EMAILS}; INSERT INTO scratch (note) VALUES ('{block_note}'); COMMIT"),
    ] {
        let got = simple_rows(&dev, &sql).await;
        assert_stopped(&got, 0, "statement.limited_not_alone", &sql);
        assert_usable(&dev, "a refused query string").await;
    }
    // An extended-protocol pipeline.
    let pipe_note = format!("{tag}-pipeline");
    let mut raw = raw_login(proxy.port(), DEV).await;
    raw.send(
        &[
            pbe(ALL_EMAILS),
            pbe(&format!(
                "INSERT INTO scratch (note) VALUES ('{pipe_note}')"
            )),
            sync_msg(),
        ]
        .concat(),
    )
    .await;
    assert_eq!(shape(&raw.until_ready().await), "1 2 D D D D D E:42501 Z:I");
    let committed = [
        (count(simple_note).await, "query string"),
        (count(block_note).await, "query string with COMMIT"),
        (count(pipe_note).await, "pipeline"),
    ];
    assert_eq!(
        committed.map(|(n, _)| n),
        [0, 0, 0],
        "rows inserted after the stop: {committed:?}"
    );
}

/// The cancel copyguard sends after stopping a result must not cancel a
/// statement the client had already pipelined behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn a_stop_does_not_cancel_the_next_pipelined_statement() {
    const SLOW: &str = "SELECT count(*) FROM generate_series(1, 3000000)";
    let proxy = guarded_proxy(limited_policy(5, 100, 1000));
    let mut raw = raw_login(proxy.port(), DEV).await;
    raw.send(&[query_msg(ALL_EMAILS), query_msg(SLOW)].concat())
        .await;
    let first = raw.until_ready().await;
    let second = raw.until_ready().await;
    // Extended protocol, tokio-postgres pipelining.
    let dev = connect_to(proxy.port(), DEV).await;
    let stop = dev.prepare(ALL_EMAILS).await.unwrap();
    let slow = dev.prepare(SLOW).await.unwrap();
    let (a, b) = tokio::join!(dev.query(&stop, &[]), dev.query(&slow, &[]));
    let a = a.map(|rows| rows.len()).map_err(|e| failure(&e));
    let b = b
        .map(|rows| rows[0].get::<_, i64>(0))
        .map_err(|e| failure(&e));
    assert_eq!(shape(&first), "T D D D D D E:42501 Z:I");
    assert!(a.as_ref().is_err_and(|f| f.is_rule("limit.rows")), "{a:?}");
    assert_eq!(
        (shape(&second), b),
        ("T D C Z:I".to_owned(), Ok(3_000_000)),
        "the query after the stopped one: {:?}",
        error_message(&second)
    );
}

// ---------------------------------------------------------------------------
// 7. CLI

fn superuser_dsn() -> String {
    let db = &cluster().db;
    format!(
        "host={} port={} user={} dbname={DB}",
        db.host(),
        db.port(),
        db.superuser()
    )
}

fn explain(policy: &std::path::Path, role: &str, sql: &str) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["explain", "--policy"])
        .arg(policy)
        .args(["--role", role, "--dsn", &superuser_dsn(), sql])
        .output()
        .expect("run explain");
    let (o, e) = text(&out);
    (out.status.code(), format!("{o}{e}"))
}

fn policy_check(dir: &std::path::Path, dsn: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["policy", "check"]).arg(dir);
    if let Some(dsn) = dsn {
        cmd.args(["--dsn", dsn]);
    }
    cmd.output().expect("run policy check")
}

#[test]
fn cli_explains_decisions_and_checks_policies() {
    fixture();
    let limited = limited_policy(5, 100, 1000);
    let locked = locked_policy();
    // (policy, role, sql, exit status, what the output shows)
    let cases: &[(&std::path::Path, &str, &str, i32, &[&str])] = &[
        (
            &limited,
            DEV,
            "SELECT lower(email) FROM users",
            0,
            &[
                "public.users.email [email]",
                "verdict: ALLOW under limits (5 rows",
            ],
        ),
        (
            &locked,
            DEV,
            "SELECT lower(email) FROM users",
            1,
            &[
                "public.users.email [email]",
                "verdict: BLOCK by rule classified.not_allowed",
            ],
        ),
        (
            &limited,
            DEV,
            "SELECT ssn FROM users",
            1,
            &[
                "public.users.ssn [national_id]",
                "BLOCK by rule category.blocked",
            ],
        ),
        (
            &limited,
            DEV,
            "SELECT o.id, u.country FROM orders o JOIN users u ON u.id = o.user_id",
            0,
            &["verdict: ALLOW\n"],
        ),
        (
            &limited,
            DEV,
            "SELECT * FROM no_such_table",
            1,
            &["analysis failed", "BLOCK"],
        ),
        (
            &locked,
            PROD,
            "SELECT lower(email) FROM users",
            0,
            &["production", "ALLOW (production role)"],
        ),
    ];
    for (policy, role, sql, status, shows) in cases {
        let (code, out) = explain(policy, role, sql);
        assert_eq!(code, Some(*status), "{role} {sql}: {out}");
        for s in *shows {
            assert!(out.contains(s), "{role} {sql}: no {s:?} in\n{out}");
        }
    }

    // The demo policy of the repository is valid.
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let out = policy_check(&demo, None);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(text(&out).0.contains("policy OK:"), "{:?}", text(&out));

    // Errors: exit 1, one `FILE:LINE: KEY: MESSAGE` line each.
    let broken = policy_dir("[classes.x]\nmode = \"guarded\"\nmax_rowz = 3\n");
    let out = policy_check(&broken, None);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}{e}");
    let prefix = format!(
        "{}:3: classes.x.max_rowz: ",
        broken.join("policy.toml").display()
    );
    assert!(
        e.lines()
            .any(|l| l.contains(&prefix) && l.len() > l.find(&prefix).unwrap() + prefix.len()),
        "no {prefix:?}MESSAGE line in\n{e}"
    );
    assert!(!o.contains("policy OK"), "{o}");

    // Against the database: missing columns and tables are named, and
    // each login role's class is shown.
    let fixture_policy = policy_text(&limited).replace(
        "[columns]",
        "[columns]\n\"public.users.no_such_column\" = \"email\"\n\"public.no_such_table.x\" = \"email\"",
    );
    let dir = policy_dir(&fixture_policy);
    let out = policy_check(&dir, Some(&superuser_dsn()));
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{o}{e}");
    let warnings: Vec<&str> = e.lines().filter(|l| l.starts_with("warning:")).collect();
    for missing in ["no_such_column", "no_such_table"] {
        assert!(
            warnings.iter().any(|w| w.contains(missing)),
            "no warning about {missing}: {e}"
        );
    }
    assert!(
        o.contains(&format!("role {DEV}: class developers (guarded)")),
        "{o}"
    );
    assert!(
        o.contains(&format!("role {PROD}: class production (production)")),
        "{o}"
    );
}
