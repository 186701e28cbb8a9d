//! The block log tells the exact truth: one record per refusal a client
//! saw (a refused extended-protocol statement, executemany, pipelines of
//! the raw protocol, tokio-postgres and pgbench), refusal records with
//! their relations and classified columns (so `audit review` counts per
//! table what clients saw), session totals that match what was received,
//! refused logins as `session_refused` records, and guarded traffic in the
//! byte and message metrics and the `session ended` line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio_postgres::types::Type;

use crate::guard_fixture::*;
use crate::raw::{frame, startup_packet, Msg, Raw};
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_copyguard");

/// `trust_user` (no password: the raw client can log in) is guarded on
/// `testdb`, whose `customers.email` is classified.
fn trust_guarded_policy() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        policy_dir(
            r#"
[classes.production]
mode = "production"
roles = ["scram_user"]

[classes.locked]
mode = "guarded"
roles = ["trust_user"]
max_rows_per_statement = 0
max_bytes_per_statement = 0
max_rows_per_session = 0
max_rows_per_window = 0
window = "1h"
copy_to = "block"
allow_writes = false
allow_ddl = false
classified_predicates = true

[columns]
"public.customers.email" = "email"
"#,
        )
    })
    .clone()
}

fn proxy_logging_to(policy: PathBuf, log: &Path) -> TestProxy {
    fixture();
    let mut args = proxy_args();
    args.policy = Some(policy.display().to_string());
    args.audit_path = Some(log.display().to_string());
    TestProxy::start(args)
}

fn records(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

fn refusals(log: &Path) -> Vec<Value> {
    records(log)
        .into_iter()
        .filter(|r| r["event"] == "verdict" && r["verdict"] == "blocked")
        .collect()
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut body = cstr(name);
    body.extend(cstr(sql));
    body.extend(0i16.to_be_bytes());
    frame(b'P', &body)
}

/// A Bind of text parameters, text results.
fn bind(portal: &str, statement: &str, params: &[&str]) -> Vec<u8> {
    let mut body = cstr(portal);
    body.extend(cstr(statement));
    body.extend(0i16.to_be_bytes());
    body.extend((params.len() as i16).to_be_bytes());
    for p in params {
        body.extend((p.len() as i32).to_be_bytes());
        body.extend(p.as_bytes());
    }
    body.extend(0i16.to_be_bytes());
    frame(b'B', &body)
}

fn describe_portal(portal: &str) -> Vec<u8> {
    let mut body = vec![b'P'];
    body.extend(cstr(portal));
    frame(b'D', &body)
}

fn execute(portal: &str) -> Vec<u8> {
    let mut body = cstr(portal);
    body.extend(0i32.to_be_bytes());
    frame(b'E', &body)
}

fn sync() -> Vec<u8> {
    frame(b'S', &[])
}

/// Sends one batch and reads up to its ReadyForQuery; the errors seen.
async fn batch(raw: &mut Raw, messages: &[Vec<u8>]) -> Vec<Msg> {
    raw.send(&messages.concat()).await;
    let msgs = raw.until_ready().await;
    assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{msgs:?}");
    msgs.into_iter().filter(|m| m.tag == b'E').collect()
}

const REFUSED: &str = "SELECT email FROM customers WHERE id = $1";

/// What psycopg sends for `conn.execute(sql, params)`, for
/// `executemany` (one Parse, a Bind and Execute per row, one Sync) and for
/// a pipeline of several statements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_extended_statement_is_recorded_once_with_its_facts() {
    let log = audit_path();
    let proxy = proxy_logging_to(trust_guarded_policy(), &log);
    let mut raw = Raw::login(proxy.port()).await;
    let mut seen = 0;

    let errors = batch(
        &mut raw,
        &[
            parse("", REFUSED),
            bind("", "", &["1"]),
            describe_portal(""),
            execute(""),
            sync(),
        ],
    )
    .await;
    assert_eq!(errors.len(), 1, "one error for the client");
    assert_eq!(errors[0].sqlstate().as_deref(), Some("42501"));
    seen += errors.len();
    assert_eq!(refusals(&log).len(), seen, "{:#?}", refusals(&log));

    let mut many = vec![parse("", REFUSED)];
    for i in 1..=5 {
        many.push(bind("", "", &[&i.to_string()]));
        many.push(describe_portal(""));
        many.push(execute(""));
    }
    many.push(sync());
    let errors = batch(&mut raw, &many).await;
    assert_eq!(errors.len(), 1, "executemany: one error");
    seen += errors.len();
    assert_eq!(refusals(&log).len(), seen, "{:#?}", refusals(&log));

    let mut pipeline = Vec::new();
    for (name, sql) in [
        ("a", "SELECT count(*) FROM customers WHERE id > $1"),
        ("b", REFUSED),
        ("c", "SELECT email FROM customer_notes WHERE body = $1"),
    ] {
        pipeline.push(parse(name, sql));
        pipeline.push(bind(name, name, &["1"]));
        pipeline.push(execute(name));
    }
    pipeline.push(sync());
    raw.send(&pipeline.concat()).await;
    let msgs = raw.until_ready().await;
    assert!(
        msgs.iter().any(|m| m.tag == b'D'),
        "the first statement ran"
    );
    let errors = msgs.iter().filter(|m| m.tag == b'E').count();
    assert_eq!(errors, 1, "pipeline: one error");
    seen += errors;
    assert_eq!(refusals(&log).len(), seen, "{:#?}", refusals(&log));

    let errors = batch(&mut raw, &[bind("", "b", &["1"]), execute(""), sync()]).await;
    assert_eq!(errors.len(), 1, "a refused statement of an earlier batch");
    seen += errors.len();
    let got = refusals(&log);
    assert_eq!(got.len(), seen, "{got:#?}");
    assert_eq!(got.last().unwrap()["rule"], "statement.unknown");
    for r in &got[..3] {
        assert_eq!(r["relations"], serde_json::json!(["public.customers"]));
        assert_eq!(r["columns"], serde_json::json!(["public.customers.email"]));
        assert!(r["statement"].as_str().is_some_and(|s| !s.is_empty()));
    }
    raw.send(&frame(b'X', &[])).await;
    drop(raw);
    drop(proxy);
    let ends: Vec<Value> = records(&log)
        .into_iter()
        .filter(|r| r["event"] == "session_end")
        .collect();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0]["refusals"], seen, "{}", ends[0]);
    assert!(ends[0]["statements"].as_u64().unwrap() > seen as u64);
    assert_eq!(ends[0]["rows"], 1, "one row received: {}", ends[0]);
}

/// tokio-postgres: `query_typed` sends Parse, Bind, Describe, Execute and
/// Sync at once, like psycopg; several of them pipelined. pgbench: a
/// pipeline of refused statements under one Sync. Then `audit review`
/// counts per table what the clients saw, and CEF names the relations and
/// columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_pipelines_leave_one_record_per_refusal_seen() {
    let log = audit_path();
    let proxy = proxy_logging_to(trust_guarded_policy(), &log);
    let client = connect(proxy.port(), "trust_user", "testdb").await;
    let mut seen = 0;
    let e = client
        .query_typed(REFUSED, &[(&1i32, Type::INT4)])
        .await
        .expect_err("refused");
    assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{e}");
    seen += 1;
    assert_eq!(refusals(&log).len(), seen);

    let ids = [1i32, 2, 3, 4];
    let params: Vec<[(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1]> =
        ids.iter().map(|id| [(id as _, Type::INT4)]).collect();
    let futures = params.iter().map(|p| client.query_typed(REFUSED, p));
    let results = futures_util::future::join_all(futures).await;
    let errors = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(errors, ids.len(), "each pipelined query fails");
    seen += errors;
    let prepared = client.prepare(REFUSED).await.expect_err("prepare refused");
    assert_eq!(prepared.code().map(|c| c.code()), Some("42501"));
    seen += 1;
    assert_eq!(refusals(&log).len(), seen, "{:#?}", refusals(&log));
    drop(client);

    let script = log.with_file_name("pipeline.sql");
    std::fs::write(
        &script,
        "\\startpipeline\nSELECT email FROM customers WHERE id = 1;\nSELECT email FROM customers WHERE id = 2;\nSELECT email FROM customers WHERE id = 3;\n\\endpipeline\n",
    )
    .unwrap();
    let out = client_cmd_pgbench(proxy.port(), &script);
    let (stdout, stderr) = text(&out);
    let pgbench_errors =
        stderr.matches("42501").count() + stderr.matches("copyguard: blocked").count();
    assert!(
        pgbench_errors >= 1,
        "pgbench saw the refusal: {stdout}{stderr}"
    );
    seen += 1;
    let got = refusals(&log);
    assert_eq!(
        got.len(),
        seen,
        "one record for the pipeline: {got:#?}\n{stderr}"
    );
    drop(proxy);

    let out = Command::new(BIN)
        .args(["audit", "review", "--json"])
        .arg(&log)
        .output()
        .expect("audit review");
    let json: Value = serde_json::from_slice(&out.stdout).expect("review JSON");
    assert_eq!(
        json["summary"]["refused_by_table"]["public.customers"], seen,
        "{}",
        json["summary"]
    );
    assert_eq!(json["summary"]["refused_by_role"]["trust_user"], seen);
    let out = Command::new(BIN)
        .args(["audit", "review"])
        .arg(&log)
        .output()
        .expect("audit review");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("Refused by table:"), "{report}");
    let out = Command::new(BIN)
        .args(["audit", "review", "--verdict", "blocked", "--format", "cef"])
        .arg(&log)
        .output()
        .expect("audit review");
    let cef = String::from_utf8_lossy(&out.stdout);
    assert_eq!(cef.lines().count(), seen, "{cef}");
    assert!(
        cef.lines()
            .all(|l| l.contains("flexString1=public.customers")
                && l.contains("flexString2=public.customers.email")),
        "{cef}"
    );
}

fn client_cmd_pgbench(port: u16, script: &Path) -> std::process::Output {
    client("pgbench")
        .args(["-n", "-M", "extended", "-t", "1", "-f"])
        .arg(script)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "trust_user",
            "testdb",
        ])
        .output()
        .expect("run pgbench")
}

/// Totals of a guarded and a production session: rows and bytes received
/// (plain, limited and refused statements), statements and refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_totals_match_what_clients_received() {
    let log = audit_path();
    let proxy = proxy_logging_to(limited_policy(5, 100, 1000), &log);
    let dev = connect_to(proxy.port(), DEV).await;
    let mut rows = 0;
    rows += dev
        .query("SELECT id FROM orders", &[])
        .await
        .expect("plain rows")
        .len();
    rows += dev
        .query("SELECT email FROM users ORDER BY id LIMIT 3", &[])
        .await
        .expect("limited rows")
        .len();
    rows += text_rows_of(
        dev.simple_query("SELECT full_name FROM users ORDER BY id LIMIT 2")
            .await
            .expect("limited rows"),
    )
    .len();
    dev.simple_query("SELECT * FROM identity_documents")
        .await
        .expect_err("refused");
    drop(dev);

    let prod = connect_to(proxy.port(), PROD).await;
    let mut prod_rows = prod
        .query("SELECT email FROM users", &[])
        .await
        .expect("production")
        .len();
    let stream = prod
        .copy_out("COPY (SELECT id FROM orders) TO STDOUT")
        .await
        .expect("copy");
    let mut stream = std::pin::pin!(stream);
    let mut copied = Vec::new();
    while let Some(chunk) = stream.next().await {
        copied.extend_from_slice(&chunk.expect("copy data"));
    }
    prod_rows += copied
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    drop(prod);
    proxy.shutdown();

    let ends: Vec<Value> = records(&log)
        .into_iter()
        .filter(|r| r["event"] == "session_end")
        .collect();
    let dev_end = ends.iter().find(|r| r["role"] == DEV).expect("guarded end");
    assert_eq!(dev_end["rows"], rows, "{dev_end}");
    assert!(dev_end["bytes"].as_u64().unwrap() > 0, "{dev_end}");
    assert_eq!(dev_end["refusals"], 1, "{dev_end}");
    assert_eq!(
        dev_end["statements"], 4,
        "refused statements count: {dev_end}"
    );
    let prod_end = ends
        .iter()
        .find(|r| r["role"] == PROD)
        .expect("production end");
    assert_eq!(prod_end["rows"], prod_rows, "{prod_end}");
    assert!(prod_end["bytes"].as_u64().unwrap() > 0, "{prod_end}");
}

/// Logins refused by startup `options` (`role`), replication or a lexer
/// setting are `session_refused` records with the rule, the reason and
/// the startup parameters, no statement; the client gets the FATAL; the
/// log verifies and `audit review` counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins_are_session_refused_records() {
    let log = audit_path();
    let proxy = proxy_logging_to(trust_guarded_policy(), &log);
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("options", "-c role=scram_user")], "identity.change"),
        (&[("replication", "database")], "protocol.replication"),
        (&[("client_encoding", "SJIS")], "setting.lexer"),
    ];
    for (extra, rule) in cases {
        let mut params = vec![("user", "trust_user"), ("database", "testdb")];
        params.extend_from_slice(extra);
        let mut raw = Raw::connect(proxy.port()).await;
        raw.send(&startup_packet(0, &params)).await;
        let msgs = raw.drain().await;
        let fatal = msgs
            .iter()
            .find(|m| m.tag == b'E')
            .unwrap_or_else(|| panic!("{rule}: no error in {msgs:?}"));
        assert_eq!(fatal.field(b'S').as_deref(), Some("FATAL"), "{rule}");
        assert_eq!(fatal.sqlstate().as_deref(), Some("42501"), "{rule}");
        assert!(
            fatal.field(b'M').is_some_and(|m| m.contains(rule)),
            "{rule}: {:?}",
            fatal.field(b'M')
        );
    }
    drop(proxy);
    let all = records(&log);
    let refused: Vec<&Value> = all
        .iter()
        .filter(|r| r["event"] == "session_refused")
        .collect();
    assert_eq!(refused.len(), 3, "{all:#?}");
    for ((extra, rule), r) in cases.iter().zip(&refused) {
        assert_eq!(r["rule"], *rule, "{r}");
        assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
        assert!(
            r.get("statement").is_none() && r.get("fingerprint").is_none(),
            "{r}"
        );
        assert!(r.get("verdict").is_none(), "{r}");
        let (k, v) = extra[0];
        assert_eq!(r["startup"][k], v, "{r}");
        assert_eq!(r["role"], "trust_user");
    }
    let ids: Vec<&Value> = refused.iter().map(|r| &r["session_id"]).collect();
    assert!(
        !all.iter().any(|r| r["event"] != "session_refused"
            && r.get("session_id").is_some_and(|id| ids.contains(&id))),
        "no session start, end or verdict for a refused login: {all:#?}"
    );
    assert!(
        !all.iter().any(|r| r["event"] == "verdict"),
        "no verdict for a login: {all:#?}"
    );
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(&log)
        .output()
        .expect("audit verify");
    assert!(out.status.success(), "{:?}", text(&out));
    let out = Command::new(BIN)
        .args(["audit", "review", "--json"])
        .arg(&log)
        .output()
        .expect("audit review");
    let json: Value = serde_json::from_slice(&out.stdout).expect("review JSON");
    assert_eq!(json["summary"]["refused_logins"], 3, "{}", json["summary"]);
    assert_eq!(json["summary"]["refused_by_rule"]["setting.lexer"], 1);
    let out = Command::new(BIN)
        .args([
            "audit",
            "review",
            "--event",
            "session_refused",
            "--format",
            "cef",
        ])
        .arg(&log)
        .output()
        .expect("audit review");
    let cef = String::from_utf8_lossy(&out.stdout);
    assert_eq!(cef.lines().count(), 3, "{cef}");
    assert!(
        cef.contains("cs3Label=startup cs3=options\\=-c role\\=scram_user"),
        "{cef}"
    );
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("admin");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn metric(text: &str, name: &str, direction: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(&format!("direction=\"{direction}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// A guarded session's traffic shows in `copyguard_bytes_total`,
/// `copyguard_messages_total` and the `session ended` line, equal to its
/// session_end record (one session in a process of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_traffic_is_in_the_metrics_and_the_session_ended_line() {
    fixture();
    let log = audit_path();
    let served = Served::start(
        serve_command(&limited_policy(5, 100, 1000))
            .args(["--admin", "127.0.0.1:0", "--log-format", "json"])
            .arg("--audit-path")
            .arg(&log)
            .stderr(Stdio::piped()),
    );
    let admin = served.admin.expect("admin address").to_string();
    let dev = connect_to(served.port(), DEV).await;
    let rows = dev
        .query("SELECT id, status FROM orders", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2 * USERS);
    drop(dev);
    let deadline = Instant::now() + Duration::from_secs(10);
    let end = loop {
        if let Some(end) = records(&log)
            .into_iter()
            .find(|r| r["event"] == "session_end")
        {
            break end;
        }
        assert!(Instant::now() < deadline, "no session_end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let metrics = http_get(&admin, "/metrics");
    // SAFETY: signals the child this test started.
    unsafe { libc::kill(served.child.id() as i32, libc::SIGTERM) };
    let (_, stderr) = served.finish();
    let bytes = end["bytes"].as_u64().unwrap();
    assert_eq!(end["rows"], 2 * USERS, "{end}");
    assert_eq!(
        metric(&metrics, "copyguard_bytes_total", "server_to_client"),
        bytes,
        "{metrics}"
    );
    assert!(metric(&metrics, "copyguard_messages_total", "server_to_client") > 2 * USERS as u64);
    assert!(metric(&metrics, "copyguard_bytes_total", "client_to_server") > 0);
    assert!(metric(&metrics, "copyguard_messages_total", "client_to_server") >= 4);
    let ended: Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "session ended")
        .unwrap_or_else(|| panic!("no session ended line in {stderr}"));
    assert_eq!(ended["bytes_down"], bytes, "{ended}");
    assert!(
        ended["messages_down"].as_u64().unwrap() > 2 * USERS as u64,
        "{ended}"
    );
    assert!(ended["bytes_up"].as_u64().unwrap() > 0, "{ended}");
}

/// A refusal the server never reaches (its batch already failed on the
/// server: a division by zero before it) is not a refusal the client saw:
/// no record; the same refusal in the next batch is recorded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_after_a_server_error_in_its_batch_leaves_no_record() {
    let log = audit_path();
    let proxy = proxy_logging_to(trust_guarded_policy(), &log);
    let mut raw = Raw::login(proxy.port()).await;
    let errors = batch(
        &mut raw,
        &[
            parse("", "SELECT 1 / $1::int"),
            bind("", "", &["0"]),
            execute(""),
            parse("", REFUSED),
            bind("", "", &["1"]),
            execute(""),
            sync(),
        ],
    )
    .await;
    assert_eq!(errors.len(), 1, "one error for the client");
    assert_eq!(errors[0].sqlstate().as_deref(), Some("22012"));
    assert_eq!(refusals(&log).len(), 0, "{:#?}", refusals(&log));
    let errors = batch(
        &mut raw,
        &[
            parse("", REFUSED),
            bind("", "", &["1"]),
            execute(""),
            sync(),
        ],
    )
    .await;
    assert_eq!(errors[0].sqlstate().as_deref(), Some("42501"));
    assert_eq!(refusals(&log).len(), 1, "{:#?}", refusals(&log));
}
