//! Real clients through copyguard's production relay: `psql`, `pg_dump`
//! and `pgbench` output compared with the same programs run directly
//! against the cluster, and `tokio-postgres` exercising the extended
//! protocol (binary results, pipelining), COPY both ways, asynchronous
//! messages (notifications, notices, parameter changes), cancel routing
//! and very large values.

use std::error::Error as StdError;
use std::process::Output;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::join_all;
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio::sync::{mpsc, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{AsyncMessage, Client, NoTls, Row, SimpleQueryMessage};

use crate::support::*;

/// How long a test waits for something that should take milliseconds.
const WAIT: Duration = Duration::from_secs(10);

/// stdout and stderr of a client run against `port`, with the port (which
/// differs between direct and proxied runs) replaced, should it appear.
fn normalized(out: &Output, port: u16) -> (String, String) {
    let (stdout, stderr) = text(out);
    let port = port.to_string();
    let scrub = |s: String| {
        s.replace(&format!("port={port}"), "port=PORT")
            .replace(&format!("port {port}"), "port PORT")
            .replace(&format!("127.0.0.1:{port}"), "127.0.0.1:PORT")
    };
    (scrub(stdout), scrub(stderr))
}

/// `psql -c sql`: the whole string is sent as one simple Query message.
fn psql_c(conninfo: &str, sql: &str) -> Output {
    client("psql")
        .args([
            "-X",
            "-At",
            "-v",
            "VERBOSITY=verbose",
            "-d",
            conninfo,
            "-c",
            sql,
        ])
        .output()
        .expect("run psql -c")
}

#[test]
fn psql_queries_errors_and_multi_statement_strings() {
    let proxy = TestProxy::plain();
    let direct_port = cluster().db.port();
    let both = |run: &dyn Fn(&str) -> Output| {
        let direct = run(&conninfo(direct_port, "scram_user", "testdb", ""));
        let proxied = run(&conninfo(proxy.port(), "scram_user", "testdb", ""));
        let direct_text = normalized(&direct, direct_port);
        let proxied_text = normalized(&proxied, proxy.port());
        assert_eq!(
            proxied_text, direct_text,
            "proxied (left) and direct (right) runs differ"
        );
        assert_eq!(proxied.status.code(), direct.status.code());
        proxied_text
    };

    let (out, err) = both(&|c| {
        psql(
            c,
            "SELECT id, email, born FROM customers ORDER BY id;
             SELECT count(*), sum(length(body)) FROM customer_notes;",
        )
    });
    assert_eq!(err, "");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 501, "{out}");
    assert_eq!(lines[0], "1|c1@example.com|1980-01-02");
    assert_eq!(lines[500], "1000|24500");

    let (_, err) = both(&|c| psql(c, "SELECT 1/0;"));
    assert!(err.contains("ERROR:  22012: division by zero"), "{err}");
    let (_, err) = both(&|c| psql(c, "SELECT * FROM no_such_table;"));
    assert!(
        err.contains("ERROR:  42P01: relation \"no_such_table\" does not exist"),
        "{err}"
    );

    let (out, err) = both(&|c| psql_c(c, "select 1; select 2"));
    assert_eq!((out.as_str(), err.as_str()), ("1\n2\n", ""));
    let (out, err) = both(&|c| psql_c(c, "select 1; select 1/0; select 3"));
    assert!(!out.contains('3'), "{out}");
    assert!(err.contains("22012"), "{err}");
    let (out, err) = both(&|c| {
        psql_c(
            c,
            "create temp table t (x int); insert into t values (1); \
             select x / 0 from t; insert into t values (2)",
        )
    });
    assert_eq!(out, "CREATE TABLE\nINSERT 0 1\n");
    assert!(err.contains("22012"), "{err}");

    // A script: statements sent one by one, and `\;`-joined statements sent
    // as one string, failing in the middle inside and outside a transaction.
    let script = r"
        CREATE TEMP TABLE t (x int);
        INSERT INTO t VALUES (1);
        SELECT 1/0;
        INSERT INTO t VALUES (2);
        BEGIN;
        INSERT INTO t VALUES (3);
        SELECT * FROM missing_table;
        INSERT INTO t VALUES (4);
        ROLLBACK;
        SELECT 'after rollback', count(*) FROM t;
        INSERT INTO t VALUES (5) \; SELECT x / 0 FROM t \; INSERT INTO t VALUES (6);
        BEGIN \; INSERT INTO t VALUES (7) \; SELECT 1/0 \; COMMIT;
        SELECT 'in failed transaction';
        COMMIT;
        BEGIN;
        INSERT INTO t VALUES (8) \; SELECT 'multi in transaction' \; INSERT INTO t VALUES (9);
        COMMIT;
        SELECT string_agg(x::text, ',' ORDER BY x) FROM t;
    ";
    let (out, err) = both(&|c| psql(c, script));
    let expected = [
        "CREATE TABLE",
        "INSERT 0 1",
        "INSERT 0 1",
        "BEGIN",
        "INSERT 0 1",
        "ROLLBACK",
        "after rollback|2",
        "INSERT 0 1",
        "BEGIN",
        "INSERT 0 1",
        "ROLLBACK",
        "BEGIN",
        "INSERT 0 1",
        "multi in transaction",
        "INSERT 0 1",
        "COMMIT",
        "1,2,8,9",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "stderr: {err}");
    let codes: Vec<&str> = err
        .lines()
        .filter_map(|l| l.split("ERROR:  ").nth(1))
        .map(|l| &l[..5])
        .collect();
    assert_eq!(
        codes,
        ["22012", "42P01", "25P02", "22012", "22012", "25P02"],
        "{err}"
    );
}

/// Tables of many types, a sequence, a view, indexes and a foreign key.
const DUMP_SCHEMA: &str = r#"
SET ROLE scram_user;
CREATE SEQUENCE invoice_no START 1000 INCREMENT 7;
CREATE TABLE accounts (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    small smallint,
    balance numeric(12,2),
    flags boolean[],
    tags text[],
    opened timestamptz NOT NULL,
    photo bytea,
    profile jsonb
);
CREATE TABLE invoices (
    no int PRIMARY KEY DEFAULT nextval('invoice_no'),
    account_id bigint NOT NULL REFERENCES accounts (id),
    amounts numeric[],
    issued date,
    note text
);
CREATE INDEX invoices_account_idx ON invoices (account_id, issued DESC);
CREATE UNIQUE INDEX accounts_lower_name ON accounts (lower(name));
CREATE VIEW account_totals AS
    SELECT a.id, a.name, sum(i.amounts[1]) AS total
    FROM accounts a LEFT JOIN invoices i ON i.account_id = a.id
    GROUP BY a.id, a.name;
COMMENT ON TABLE accounts IS 'customer accounts';
INSERT INTO accounts (name, small, balance, flags, tags, opened, photo, profile)
SELECT 'account ' || g || E'\twith tab ' || repeat('ü', g % 5),
       (g % 300)::smallint,
       g * 12.34,
       ARRAY[g % 2 = 0, NULL],
       ARRAY['t' || g, 'quote"' || g, NULL],
       timestamptz '2020-01-01 00:00:00+00' + g * interval '1 hour 3 minutes',
       decode(md5(g::text), 'hex'),
       jsonb_build_object('n', g, 'nested', jsonb_build_object('list', jsonb_build_array(g, 'x', NULL)))
FROM generate_series(1, 300) g;
INSERT INTO invoices (account_id, amounts, issued, note)
SELECT 1 + g % 300, ARRAY[g * 1.5, g], date '2021-01-01' + g,
       CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || g END
FROM generate_series(1, 600) g;
"#;

#[test]
fn pg_dump_output_is_byte_identical() {
    let db = fresh_database("dump");
    cluster()
        .db
        .psql(&db, DUMP_SCHEMA)
        .expect("create dump schema");
    let proxy = TestProxy::plain();
    let dump = |port: u16| {
        let out = client("pg_dump")
            .args(["-d", &conninfo(port, "scram_user", &db, "")])
            .output()
            .expect("run pg_dump");
        assert!(out.status.success(), "pg_dump failed: {:?}", text(&out));
        without_restrict_keys(out.stdout)
    };
    let direct = dump(cluster().db.port());
    let proxied = dump(proxy.port());
    // A plain dump names neither host nor port; only the random
    // `\restrict` keys are filtered (see `without_restrict_keys`).
    assert!(
        proxied == direct,
        "plain dumps differ:\n{}",
        first_difference(&direct, &proxied)
    );
    let plain = String::from_utf8_lossy(&proxied);
    for needle in [
        "CREATE TABLE public.accounts",
        "CREATE SEQUENCE public.invoice_no",
        "CREATE VIEW public.account_totals",
        "CREATE INDEX invoices_account_idx",
        "FOREIGN KEY (account_id) REFERENCES public.accounts(id)",
        "COPY public.invoices (no, account_id, amounts, issued, note) FROM stdin;",
    ] {
        assert!(plain.contains(needle), "dump lacks {needle:?}");
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let archive = dir.path().join("dump.custom");
    let out = client("pg_dump")
        .args(["-Fc", "-f"])
        .arg(&archive)
        .args(["-d", &conninfo(proxy.port(), "scram_user", &db, "")])
        .output()
        .expect("run pg_dump -Fc");
    assert!(out.status.success(), "pg_dump -Fc failed: {:?}", text(&out));
    let out = client("pg_restore")
        .arg("--list")
        .arg(&archive)
        .output()
        .expect("run pg_restore");
    assert!(out.status.success(), "pg_restore failed: {:?}", text(&out));
    let (list, _) = text(&out);
    for needle in [
        "TABLE DATA public accounts",
        "TABLE DATA public invoices",
        "SEQUENCE public invoice_no",
        "VIEW public account_totals",
        "FK CONSTRAINT public invoices invoices_account_id_fkey",
    ] {
        assert!(list.contains(needle), "archive lacks {needle:?}:\n{list}");
    }
}

/// A plain dump without its `\restrict KEY` / `\unrestrict KEY` lines:
/// pg_dump 15.14 and later pick a random key per run (CVE-2025-8714), so
/// those two lines differ between any two runs, proxied or not.
fn without_restrict_keys(dump: Vec<u8>) -> Vec<u8> {
    dump.split_inclusive(|&b| b == b'\n')
        .filter(|line| !line.starts_with(b"\\restrict ") && !line.starts_with(b"\\unrestrict "))
        .flatten()
        .copied()
        .collect()
}

/// The first differing line of two dumps, for a readable failure.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    let mut left = a.lines();
    let mut right = b.lines();
    for n in 1.. {
        match (left.next(), right.next()) {
            (None, None) => return "same lines, different line endings".into(),
            (l, r) if l != r => return format!("line {n}: direct {l:?}, proxied {r:?}"),
            _ => {}
        }
    }
    unreachable!()
}

#[test]
fn pgbench_simple_extended_prepared() {
    let db = fresh_database("bench");
    let proxy = TestProxy::plain();
    let port = proxy.port().to_string();
    let pgbench = |args: &[&str]| {
        let out = client("pgbench")
            .args(args)
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "scram_user", &db])
            .output()
            .expect("run pgbench");
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "pgbench {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    };
    pgbench(&["-i", "-s", "1", "-q"]);
    for mode in ["simple", "extended", "prepared"] {
        let out = pgbench(&["-M", mode, "-c", "4", "-j", "2", "-t", "100"]);
        assert!(
            out.contains("number of transactions actually processed: 400/400"),
            "{mode}: {out}"
        );
        assert!(
            out.contains("number of failed transactions: 0 "),
            "{mode}: {out}"
        );
    }
}

/// A column's value exactly as the server sent it (binary format), or
/// `None` for NULL, whatever its type.
#[derive(Debug, PartialEq)]
struct RawValue(Option<Vec<u8>>);

impl<'a> FromSql<'a> for RawValue {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawValue(Some(raw.to_vec())))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawValue(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Column names, types and raw values of `rows`.
fn raw_rows(rows: &[Row]) -> Vec<Vec<(String, Type, RawValue)>> {
    rows.iter()
        .map(|row| {
            row.columns()
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name().to_owned(), c.type_().clone(), row.get(i)))
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_with_binary_results() {
    let proxy = TestProxy::plain();
    let proxied = connect(proxy.port(), "scram_user", "testdb").await;
    let direct = connect(cluster().db.port(), "scram_user", "testdb").await;

    let by_id = "SELECT id, email, born FROM customers WHERE id = $1";
    let stmt = proxied.prepare(by_id).await.expect("prepare");
    let direct_stmt = direct.prepare(by_id).await.expect("prepare directly");
    assert_eq!(stmt.params(), &[Type::INT4]);
    for id in [1i32, 42, 500, 501] {
        let rows = proxied.query(&stmt, &[&id]).await.expect("query");
        let expected = direct.query(&direct_stmt, &[&id]).await.expect("query");
        assert_eq!(raw_rows(&rows), raw_rows(&expected), "id {id}");
        assert_eq!(rows.len(), usize::from(id <= 500));
        if let Some(row) = rows.first() {
            assert_eq!(row.get::<_, i32>("id"), id);
            assert_eq!(row.get::<_, &str>("email"), format!("c{id}@example.com"));
        }
    }
    let range = "SELECT c.*, n.id AS note_id, n.body FROM customers c \
                 JOIN notes n ON n.customer_id = c.id WHERE c.id BETWEEN $1 AND $2 ORDER BY n.id";
    let rows = proxied
        .query(range, &[&10i32, &60i32])
        .await
        .expect("query");
    let expected = direct.query(range, &[&10i32, &60i32]).await.expect("query");
    assert_eq!(rows.len(), 102);
    assert_eq!(raw_rows(&rows), raw_rows(&expected));

    let typed = "SELECT $1::int2 AS i2, $2::int4 AS i4, $3::int8 AS i8, $4::float8 AS f8, \
                 $5::text::numeric(30,10)::text AS num, $6::bool AS b, $7::bytea AS bin, \
                 $8::text[] AS arr, $9::timestamptz AS ts, $10::int4 AS nothing, $11::text AS txt";
    let stmt = proxied.prepare(typed).await.expect("prepare");
    let direct_stmt = direct.prepare(typed).await.expect("prepare directly");
    let ts = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
    let bin: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    let arr = vec![
        Some("plain".to_owned()),
        Some("with \"quote\", comma".to_owned()),
        None,
        Some(String::new()),
        Some("ü€".to_owned()),
    ];
    let num = "12345678901234567890.0123456789";
    let txt = "line\nbreak\ttab \\ backslash";
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 11] = [
        &i16::MIN,
        &i32::MAX,
        &i64::MIN,
        &-1.5e300f64,
        &num,
        &true,
        &bin,
        &arr,
        &ts,
        &None::<i32>,
        &txt,
    ];
    for _ in 0..3 {
        let row = proxied.query_one(&stmt, &params).await.expect("query_one");
        let expected = direct
            .query_one(&direct_stmt, &params)
            .await
            .expect("query_one");
        assert_eq!(raw_rows(std::slice::from_ref(&row)), raw_rows(&[expected]));
        assert_eq!(row.get::<_, i16>("i2"), i16::MIN);
        assert_eq!(row.get::<_, i32>("i4"), i32::MAX);
        assert_eq!(row.get::<_, i64>("i8"), i64::MIN);
        assert_eq!(row.get::<_, f64>("f8"), -1.5e300);
        assert_eq!(row.get::<_, &str>("num"), num);
        assert!(row.get::<_, bool>("b"));
        assert_eq!(row.get::<_, Vec<u8>>("bin"), bin);
        assert_eq!(row.get::<_, Vec<Option<String>>>("arr"), arr);
        assert_eq!(row.get::<_, SystemTime>("ts"), ts);
        assert_eq!(row.get::<_, Option<i32>>("nothing"), None);
        assert_eq!(row.get::<_, &str>("txt"), txt);
    }

    let uuid: String = proxied
        .query_one("SELECT gen_random_uuid()::text", &[])
        .await
        .expect("uuid")
        .get(0);
    assert_eq!(uuid.len(), 36, "{uuid}");
    assert_eq!(uuid.matches('-').count(), 4, "{uuid}");

    let err = proxied
        .query_one(
            &stmt,
            &[
                &1i16,
                &1i32,
                &1i64,
                &1f64,
                &"not a number",
                &true,
                &bin,
                &arr,
                &ts,
                &None::<i32>,
                &txt,
            ],
        )
        .await
        .expect_err("invalid numeric");
    assert_eq!(err.code(), Some(&SqlState::INVALID_TEXT_REPRESENTATION));
    let row = proxied
        .query_one("SELECT 41 + $1::int4", &[&1i32])
        .await
        .expect("after error");
    assert_eq!(row.get::<_, i32>(0), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_and_batches() {
    let proxy = TestProxy::plain();
    let client = connect(proxy.port(), "scram_user", "testdb").await;

    let stmt = client
        .prepare("SELECT $1::int4 * 2 AS doubled, repeat('x', $1) AS xs")
        .await
        .expect("prepare");
    let client = &client;
    let stmt = &stmt;
    let results = join_all((0..50i32).map(|i| async move {
        match i % 5 {
            0 => {
                let msgs = client
                    .simple_query(&format!("SELECT {i} * 3"))
                    .await
                    .map_err(|e| (i, e))?;
                let value = msgs.iter().find_map(|m| match m {
                    SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                    _ => None,
                });
                assert_eq!(value, Some((i * 3).to_string()), "query {i}");
            }
            1 if i == 21 => {
                let err = client
                    .query_one("SELECT 1 / ($1::int4 - 21)", &[&i])
                    .await
                    .expect_err("division by zero");
                assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
            }
            1 => {
                let row = client
                    .query_one("SELECT 1 / ($1::int4 - 21), $1::text", &[&i])
                    .await
                    .map_err(|e| (i, e))?;
                assert_eq!(row.get::<_, &str>(1), i.to_string());
            }
            _ => {
                let row = client.query_one(stmt, &[&i]).await.map_err(|e| (i, e))?;
                assert_eq!(row.get::<_, i32>("doubled"), i * 2);
                assert_eq!(row.get::<_, &str>("xs"), "x".repeat(i as usize));
            }
        }
        Ok::<i32, (i32, tokio_postgres::Error)>(i)
    }))
    .await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.expect("pipelined query"), i as i32);
    }

    let mut batch = String::from("CREATE TEMP TABLE batch (x int);");
    for i in 1..=200 {
        batch.push_str(&format!(" INSERT INTO batch VALUES ({i});"));
    }
    client.batch_execute(&batch).await.expect("batch");
    let sum: i64 = client
        .query_one("SELECT sum(x) FROM batch", &[])
        .await
        .expect("sum")
        .get(0);
    assert_eq!(sum, 20_100);

    let err = client
        .batch_execute(
            "INSERT INTO batch VALUES (1000); SELECT 1/0; INSERT INTO batch VALUES (2000)",
        )
        .await
        .expect_err("failing batch");
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
    let count: i64 = client
        .query_one("SELECT count(*) FROM batch WHERE x >= 1000", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 0, "a failed implicit transaction is rolled back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out() {
    let db = fresh_database("copy");
    let proxy = TestProxy::plain();
    let client = connect(proxy.port(), "scram_user", &db).await;
    client
        .batch_execute("CREATE TABLE t (id int, name text, note text, amount numeric)")
        .await
        .expect("create table");

    let mut input = String::new();
    for i in 0..10_000 {
        let note = if i % 7 == 0 {
            "\\N".to_owned()
        } else {
            format!("n\\t{i}\\\\ü")
        };
        input.push_str(&format!("{i}\tname {i}\t{note}\t{i}.25\n"));
    }
    let sink = client
        .copy_in::<_, Bytes>("COPY t FROM STDIN")
        .await
        .expect("copy in");
    futures_util::pin_mut!(sink);
    let bytes = input.as_bytes();
    let cuts = [0, 1, 4_000, 65_536, 100_000, 100_001, 200_000, bytes.len()];
    for pair in cuts.windows(2) {
        sink.send(Bytes::copy_from_slice(&bytes[pair[0]..pair[1]]))
            .await
            .expect("send copy data");
    }
    assert_eq!(sink.finish().await.expect("finish copy"), 10_000);

    let out = copy_out(&client, "COPY (SELECT * FROM t ORDER BY id) TO STDOUT").await;
    assert!(
        out == input.as_bytes(),
        "COPY TO STDOUT differs from the input"
    );

    let binary = "COPY (SELECT * FROM t ORDER BY id) TO STDOUT (FORMAT binary)";
    let direct = connect(cluster().db.port(), "scram_user", &db).await;
    let proxied_binary = copy_out(&client, binary).await;
    let direct_binary = copy_out(&direct, binary).await;
    assert!(proxied_binary.starts_with(b"PGCOPY\n\xff\r\n\0"));
    assert!(
        proxied_binary == direct_binary,
        "binary COPY differs: {} bytes proxied, {} direct",
        proxied_binary.len(),
        direct_binary.len()
    );

    let sink = client
        .copy_in::<_, Bytes>("COPY t FROM STDIN")
        .await
        .expect("copy in");
    futures_util::pin_mut!(sink);
    sink.send(Bytes::from_static(b"1\tx\t\\N\tnot a number\n"))
        .await
        .expect("send copy data");
    let err = sink.finish().await.expect_err("bad copy data");
    assert_eq!(err.code(), Some(&SqlState::INVALID_TEXT_REPRESENTATION));
    let count: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count after failed copy")
        .get(0);
    assert_eq!(count, 10_000);
}

/// Everything `sql` (a `COPY ... TO STDOUT`) sends, concatenated.
async fn copy_out(client: &Client, sql: &str) -> Vec<u8> {
    let stream = client.copy_out(sql).await.expect("copy out");
    let chunks: Vec<Bytes> = stream.try_collect().await.expect("copy out data");
    chunks.concat()
}

/// A client whose connection is polled here, so that asynchronous messages
/// and parameter changes can be observed.
struct Observed {
    client: Client,
    messages: mpsc::UnboundedReceiver<AsyncMessage>,
    application_name: watch::Receiver<Option<String>>,
}

async fn connect_observed(port: u16, dbname: &str) -> Observed {
    let (client, mut connection) = tokio_postgres::connect(
        &conninfo(port, "scram_user", dbname, &format!("password={PASSWORD}")),
        NoTls,
    )
    .await
    .expect("connect through copyguard");
    let (tx, messages) = mpsc::unbounded_channel();
    let (name_tx, application_name) =
        watch::channel(connection.parameter("application_name").map(str::to_owned));
    let mut stream = futures_util::stream::poll_fn(move |cx| {
        let polled = connection.poll_message(cx);
        let now = connection.parameter("application_name").map(str::to_owned);
        name_tx.send_if_modified(|name| {
            let changed = *name != now;
            *name = now;
            changed
        });
        polled
    });
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let _ = tx.send(message);
        }
    });
    Observed {
        client,
        messages,
        application_name,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_notify() {
    let proxy = TestProxy::plain();
    let mut listener = connect_observed(proxy.port(), "testdb").await;
    let channel = format!("clients_test_{}", std::process::id());
    listener
        .client
        .batch_execute(&format!("LISTEN {channel}"))
        .await
        .expect("listen");

    let notifier = connect(proxy.port(), "scram_user", "testdb").await;
    notifier
        .batch_execute(&format!("NOTIFY {channel}, 'first payload'"))
        .await
        .expect("notify");
    notifier
        .query_one("SELECT pg_notify($1, $2)", &[&channel, &"second, ü"])
        .await
        .expect("pg_notify");

    let mut received = Vec::new();
    while received.len() < 2 {
        let message = tokio::time::timeout(WAIT, listener.messages.recv())
            .await
            .expect("notification within the timeout")
            .expect("connection alive");
        if let AsyncMessage::Notification(n) = message {
            received.push((n.channel().to_owned(), n.payload().to_owned()));
        }
    }
    assert_eq!(
        received,
        [
            (channel.clone(), "first payload".to_owned()),
            (channel.clone(), "second, ü".to_owned()),
        ]
    );
    let one: i32 = listener
        .client
        .query_one("SELECT 1", &[])
        .await
        .expect("listener still usable")
        .get(0);
    assert_eq!(one, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_is_routed_to_the_backend() {
    let proxy = TestProxy::plain();
    let client = connect(proxy.port(), "scram_user", "testdb").await;
    let watcher = connect(cluster().db.port(), "scram_user", "testdb").await;
    let marker = format!("cancel_me_{}", std::process::id());
    let sleep = format!("SELECT pg_sleep(30) /* {marker} */");
    let token = client.cancel_token();

    // pg_sleep(30) ending within WAIT proves the cancel took effect.
    let (result, ()) = tokio::time::timeout(WAIT, async {
        tokio::join!(client.query(&sleep, &[]), async {
            // Cancel only once the query runs: a cancel reaching an idle
            // backend is ignored.
            loop {
                let active: i64 = watcher
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
                         AND pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'",
                        &[&marker],
                    )
                    .await
                    .expect("pg_stat_activity")
                    .get(0);
                if active > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            token.cancel_query(NoTls).await.expect("send cancel");
        })
    })
    .await
    .expect("the cancelled query ended in time");
    let err = result.expect_err("the query was cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");

    let row = client
        .query_one("SELECT 7", &[])
        .await
        .expect("usable after cancel");
    assert_eq!(row.get::<_, i32>(0), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_and_parameter_status() {
    let proxy = TestProxy::plain();
    let mut observed = connect_observed(proxy.port(), "testdb").await;
    observed
        .client
        .batch_execute("DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$")
        .await
        .expect("raise notice");
    let notice = loop {
        let message = tokio::time::timeout(WAIT, observed.messages.recv())
            .await
            .expect("notice within the timeout")
            .expect("connection alive");
        if let AsyncMessage::Notice(notice) = message {
            break notice;
        }
    };
    assert_eq!(notice.severity(), "NOTICE");
    assert_eq!(notice.code(), &SqlState::SUCCESSFUL_COMPLETION);
    assert_eq!(notice.message(), "hello 42");

    observed
        .client
        .batch_execute("SET application_name = 'x'")
        .await
        .expect("set application_name");
    tokio::time::timeout(
        WAIT,
        observed
            .application_name
            .wait_for(|name| name.as_deref() == Some("x")),
    )
    .await
    .expect("ParameterStatus within the timeout")
    .expect("connection alive");
    let shown: String = observed
        .client
        .query_one("SHOW application_name", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(shown, "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_round_trip() {
    let db = fresh_database("large");
    let proxy = TestProxy::plain();
    let client = connect(proxy.port(), "scram_user", &db).await;
    client
        .batch_execute("CREATE TABLE big (id int PRIMARY KEY, v text)")
        .await
        .expect("create table");

    let pattern = "0123456789abcdefghijklmnopqrstuvwxyz ü€\n";
    let value: String = pattern.repeat(20 * 1024 * 1024 / pattern.len() + 1);
    assert!(value.len() >= 20 * 1024 * 1024);
    let inserted = client
        .execute("INSERT INTO big VALUES (1, $1)", &[&value])
        .await
        .expect("insert 20 MB");
    assert_eq!(inserted, 1);

    let row = client
        .query_one("SELECT v, octet_length(v) FROM big WHERE id = 1", &[])
        .await
        .expect("select 20 MB");
    assert_eq!(row.get::<_, i32>(1) as usize, value.len());
    let back: &str = row.get(0);
    assert!(back == value, "the 20 MB value came back changed");
}
