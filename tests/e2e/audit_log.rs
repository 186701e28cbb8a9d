//! The block log through a running copyguard: guarded verdicts are
//! recorded before the client sees them, with normalized statements that
//! hold no literal and no classified value; the log verifies; a log that
//! cannot be written refuses guarded statements (and `/healthz` says so)
//! until it can again; a SIGKILL loses no verdict a client saw.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::guard_fixture::*;
use crate::support::*;
use crate::tap::find_leak;

const BIN: &str = env!("CARGO_BIN_EXE_copyguard");

/// A guarded proxy under `policy` writing its block log to `log`.
fn proxy_logging_to(policy: PathBuf, log: &Path) -> TestProxy {
    fixture();
    let mut args = proxy_args();
    args.policy = Some(policy.display().to_string());
    args.audit_path = Some(log.display().to_string());
    args.admin = Some("127.0.0.1:0".into());
    TestProxy::start(args)
}

fn records(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

fn verdicts(log: &Path) -> Vec<Value> {
    records(log)
        .into_iter()
        .filter(|r| r["event"] == "verdict")
        .collect()
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("admin");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Runs `audit verify` on `log` and asserts that it passes.
#[track_caller]
fn assert_verifies(log: &Path, extra: &[&str]) {
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(log)
        .args(extra)
        .output()
        .expect("run audit verify");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_are_recorded_without_literals_and_the_log_verifies() {
    let log = audit_path();
    let proxy = proxy_logging_to(limited_policy(5, 100, 1000), &log);
    let client = connect_to(proxy.port(), DEV).await;
    let literals = [
        "zq0007.leak@victim.example",
        "Quenby Zorblatt0003",
        "4242424242",
        "secret-literal-77",
    ];
    let blocked = [
        "SELECT * FROM identity_documents WHERE doc_number = 'secret-literal-77'",
        "COPY (SELECT email FROM users WHERE email <> 'zq0007.leak@victim.example') TO STDOUT",
        "SELECT ssn FROM users WHERE id = 4242424242",
    ];
    for sql in blocked {
        let e = client.simple_query(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&e), "42501", "{sql}");
    }
    let limited =
        "SELECT email FROM users WHERE full_name <> 'Quenby Zorblatt0003' ORDER BY id LIMIT 3";
    assert_eq!(client.query(limited, &[]).await.expect(limited).len(), 3);
    let stopped = client
        .simple_query("SELECT email FROM users ORDER BY id")
        .await
        .expect_err("stopped at the row limit");
    assert_eq!(sqlstate(&stopped), "42501");
    client
        .simple_query("SELECT count(*) FROM orders")
        .await
        .expect("ordinary work");
    drop(client);
    proxy.shutdown();

    let all = records(&log);
    let text = std::fs::read_to_string(&log).unwrap();
    for literal in literals {
        assert!(
            !text.contains(literal),
            "literal {literal} in the block log"
        );
    }
    if let Some(leak) = find_leak(text.as_bytes(), secrets()) {
        panic!("classified value {leak} in the block log");
    }
    let got = verdicts(&log);
    let by_rule = |rule: &str| got.iter().filter(|r| r["rule"] == rule).count();
    assert_eq!(by_rule("table.forbidden"), 1, "{got:#?}");
    assert_eq!(by_rule("copy.classified"), 1, "{got:#?}");
    assert_eq!(by_rule("category.blocked"), 1, "{got:#?}");
    assert_eq!(by_rule("limit.rows"), 1, "{got:#?}");
    let stop = got.iter().find(|r| r["rule"] == "limit.rows").unwrap();
    assert_eq!(stop["verdict"], "budget_exceeded");
    assert_eq!(stop["rows"], 6, "rows counted up to the stop: {stop}");
    let limited = got
        .iter()
        .find(|r| r["verdict"] == "allowed_limited")
        .expect("the limited statement is recorded");
    assert_eq!(limited["relations"], serde_json::json!(["public.users"]));
    assert_eq!(
        limited["columns"],
        serde_json::json!(["public.users.email"])
    );
    assert!(
        limited["statement"]
            .as_str()
            .is_some_and(|s| s.contains("<> $1")),
        "{limited}"
    );
    assert!(
        !got.iter().any(|r| r["verdict"] == "allowed"),
        "plain statements need no record"
    );
    for r in &got {
        assert_eq!(r["role"], DEV);
        assert_eq!(r["database"], DB);
        assert_eq!(r["role_class"], "developers");
        assert!(r["fingerprint"].as_str().is_some_and(|f| f.len() == 16));
    }
    let events: Vec<&str> = all.iter().filter_map(|r| r["event"].as_str()).collect();
    assert!(events.contains(&"session_start") && events.contains(&"session_end"));
    assert_eq!(events.last(), Some(&"log_stop"));
    let seqs: Vec<u64> = all.iter().filter_map(|r| r["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gap-free: {seqs:?}"
    );
    assert_verifies(&log, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_block_log_refuses_guarded_statements_until_it_recovers() {
    let log = audit_path();
    let dir = log.parent().unwrap().to_owned();
    let proxy = proxy_logging_to(locked_policy(), &log);
    let admin = proxy.admin.expect("admin address");
    let client = connect_to(proxy.port(), DEV).await;
    client
        .simple_query("SELECT count(*) FROM orders")
        .await
        .expect("works while the log is writable");
    assert!(http_get(admin, "/healthz").starts_with("HTTP/1.1 200"));

    std::fs::remove_dir_all(&dir).expect("take the log away");
    let refused = client
        .simple_query("SELECT id FROM identity_documents")
        .await
        .expect_err("a refusal needs its record");
    assert_eq!(sqlstate(&refused), "58030", "{refused}");
    let plain = client
        .simple_query("SELECT count(*) FROM orders")
        .await
        .expect_err("guarded statements fail closed while the log is down");
    assert_eq!(sqlstate(&plain), "58030");
    let health = http_get(admin, "/healthz");
    assert!(
        health.starts_with("HTTP/1.1 503") && health.contains("block log"),
        "{health}"
    );
    let prod = {
        let (c, conn) = tokio_postgres::connect(
            &conninfo(proxy.port(), PROD, DB, &format!("password={PASSWORD}")),
            tokio_postgres::NoTls,
        )
        .await
        .expect("production sessions do not wait for the block log");
        tokio::spawn(conn);
        c
    };
    prod.simple_query("SELECT count(*) FROM users")
        .await
        .expect("production traffic is not guarded");

    std::fs::create_dir_all(&dir).expect("give the log back");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.simple_query("SELECT count(*) FROM orders").await {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(sqlstate(&e), "58030");
                assert!(Instant::now() < deadline, "did not recover: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let refused = client
        .simple_query("SELECT id FROM identity_documents")
        .await
        .expect_err("refused again, with a record");
    assert_eq!(sqlstate(&refused), "42501");
    assert!(http_get(admin, "/healthz").starts_with("HTTP/1.1 200"));
    drop(client);
    drop(prod);
    proxy.shutdown();
    assert!(
        verdicts(&log)
            .iter()
            .any(|r| r["rule"] == "table.forbidden"),
        "the refusal after recovery is recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_loses_no_verdict_a_client_saw() {
    fixture();
    let log = audit_path();
    let Served {
        mut child, addr, ..
    } = Served::start(
        serve_command(&locked_policy())
            .args(["--audit-flush", "50ms"])
            .arg("--audit-path")
            .arg(&log)
            .stderr(Stdio::piped()),
    );
    let client = connect_to(addr.port(), DEV).await;
    let mut seen = 0;
    for i in 0..40 {
        let sql = format!("SELECT doc_number FROM identity_documents WHERE id = {i}");
        let e = client.simple_query(&sql).await.expect_err("refused");
        assert_eq!(sqlstate(&e), "42501");
        seen += 1;
    }
    let _ = child.kill();
    let _ = child.wait();
    let recorded = verdicts(&log)
        .iter()
        .filter(|r| r["rule"] == "table.forbidden")
        .count();
    assert_eq!(recorded, seen, "every refusal the client saw is in the log");
    assert_verifies(&log, &["--live"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_sessions_get_session_records_and_optional_fingerprints() {
    fixture();
    let log = audit_path();
    let mut args = proxy_args();
    args.policy = Some(locked_policy().display().to_string());
    args.audit_path = Some(log.display().to_string());
    args.audit_production_statements = Some("true".into());
    let proxy = TestProxy::start(args);
    let (prod, conn) = tokio_postgres::connect(
        &conninfo(proxy.port(), PROD, DB, &format!("password={PASSWORD}")),
        tokio_postgres::NoTls,
    )
    .await
    .expect("production session");
    tokio::spawn(conn);
    let rows = prod
        .simple_query("SELECT email FROM users WHERE email = 'zq0001.leak@victim.example'")
        .await
        .expect("production reads everything");
    assert!(rows.len() > 1);
    prod.query("SELECT full_name FROM users WHERE id = $1", &[&1i32])
        .await
        .expect("extended protocol");
    drop(prod);
    proxy.shutdown();
    let all = records(&log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        find_leak(text.as_bytes(), secrets()).is_none(),
        "no value in the log"
    );
    let statements: Vec<&str> = all
        .iter()
        .filter(|r| r["event"] == "statement")
        .filter_map(|r| r["statement"].as_str())
        .collect();
    assert!(
        statements.contains(&"SELECT email FROM users WHERE email = $1"),
        "{statements:?}"
    );
    assert!(
        statements
            .iter()
            .any(|s| s.starts_with("SELECT full_name FROM users WHERE id = $1")),
        "{statements:?}"
    );
    let sessions = all
        .iter()
        .filter(|r| r["event"] == "session_start" && r["role"] == PROD)
        .count();
    assert_eq!(sessions, 1);
    assert!(all
        .iter()
        .any(|r| r["event"] == "session_end" && r["role_class"] == "production"));
}
