//! Faults: the upstream killed and restarted mid-query (on a throwaway
//! cluster of its own), clients vanishing mid-COPY and mid-result, and
//! shutdown with queries still running. After each, no backend is left
//! behind in `pg_stat_activity` and `sessions_active` is back to 0. Also
//! the operator's view of them: `/readyz` and the log of `53300`
//! refusals.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use copyguard::devdb::{DevDb, DevDbOptions};
use tokio::io::AsyncReadExt;

use crate::raw::{frame, startup_packet, Raw};
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_copyguard");

fn http_get(addr: &str, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = write!(s, "GET {path} HTTP/1.0\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A port on 127.0.0.1 where nothing listens, held (bound, never
/// listening) for as long as the socket lives, so no other test can start
/// listening there meanwhile: connections to it are refused.
fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind("127.0.0.1:0".parse().unwrap())
        .expect("bind a free port");
    let port = socket.local_addr().expect("bound").port();
    (socket, port)
}

/// The value of the `copyguard_sessions_active` gauge.
fn sessions_active(admin: &str) -> Option<f64> {
    http_get(admin, "/metrics")
        .lines()
        .find(|l| l.starts_with("copyguard_sessions_active"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

/// `copyguard serve` as its own process (so its metrics are its own), its
/// stderr kept in a temporary log; SIGTERMed when dropped.
struct OwnServe {
    child: Child,
    port: u16,
    admin: String,
    log: std::path::PathBuf,
    signalled: bool,
    _dir: tempfile::TempDir,
}

impl OwnServe {
    /// Serves in front of `db` under `policy`, with an admin port.
    fn start(db: &DevDb, policy: &Path, extra: &[&str]) -> OwnServe {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let served = Served::start(
            Command::new(BIN)
                .args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
                .args(["--upstream", &format!("{}:{}", db.host(), db.port())])
                .arg("--policy")
                .arg(policy)
                .args(extra)
                .env_clear()
                .env("COPYGUARD_AUDIT_PATH", audit_path())
                .stderr(Stdio::from(std::fs::File::create(&log).unwrap())),
        );
        OwnServe {
            port: served.port(),
            admin: served.admin.expect("admin address").to_string(),
            child: served.child,
            log,
            signalled: false,
            _dir: dir,
        }
    }

    /// SIGTERM once; later calls do nothing.
    fn sigterm(&mut self) {
        if !std::mem::replace(&mut self.signalled, true) {
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        }
    }

    /// SIGTERM, wait for the exit, and its log, which must hold no panic.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        self.sigterm();
        let status = self.child.wait().unwrap();
        let output = std::fs::read_to_string(&self.log).unwrap();
        assert!(!output.contains("panicked"), "{output}");
        (status, output)
    }
}

impl Drop for OwnServe {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.sigterm();
            let _ = self.child.wait();
        }
    }
}

/// Logs in as `user` on `db` (trust or cleartext password).
async fn login(port: u16, user: &str, db: &str) -> Raw {
    let mut raw = Raw::connect(port).await;
    raw.send(&startup_packet(0, &[("user", user), ("database", db)]))
        .await;
    loop {
        let m = raw.recv().await.expect("login answered");
        match m.tag {
            b'R' if m.body[..4] == [0, 0, 0, 3] => {
                let mut pw = PASSWORD.as_bytes().to_vec();
                pw.push(0);
                raw.send(&frame(b'p', &pw)).await;
            }
            b'Z' => return raw,
            b'E' => panic!("login as {user} refused: {m:?}"),
            _ => {}
        }
    }
}

fn query_frame(sql: &str) -> Vec<u8> {
    let mut b = sql.as_bytes().to_vec();
    b.push(0);
    frame(b'Q', &b)
}

const GUARD_POLICY: &str = r#"
[classes.production]
mode = "production"
roles = ["trust_user", "scram_user"]

[classes.dev]
mode = "guarded"
roles = ["clear_user"]
max_rows_per_statement = 1000000
max_bytes_per_statement = "1GiB"
max_rows_per_session = 1000000
max_rows_per_window = 1000000
window = "1h"
copy_to = "block"
allow_writes = true
allow_ddl = false
classified_predicates = true

[columns]
"public.customers.email" = "email"
"#;

/// A client that reads a little of a big COPY or result and vanishes
/// leaves no backend behind and no session counted, production and
/// guarded alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_vanishing_mid_copy_and_mid_result_leave_nothing_behind() {
    let db = &cluster().db;
    let served = OwnServe::start(db, &policy_dir(GUARD_POLICY), &[]);
    let (port, admin) = (served.port, served.admin.clone());
    let cases = [
        ("trust_user", "COPY (SELECT g, repeat('x', 200) FROM generate_series(1, 3000000) g) TO STDOUT /* vanish_copy_prod */"),
        ("trust_user", "SELECT g, repeat('x', 200) FROM generate_series(1, 3000000) g /* vanish_rows_prod */"),
        ("clear_user", "COPY (SELECT g, repeat('x', 200) FROM generate_series(1, 3000000) g) TO STDOUT /* vanish_copy_dev */"),
        ("clear_user", "SELECT g, repeat('x', 200) FROM generate_series(1, 3000000) g /* vanish_rows_dev */"),
    ];
    for (user, sql) in cases {
        let marker = sql.rsplit("/* ").next().unwrap().trim_end_matches(" */");
        let mut raw = login(port, user, "testdb").await;
        raw.send(&query_frame(sql)).await;
        let mut got = 0;
        let mut buf = [0u8; 16 * 1024];
        while got < 256 * 1024 {
            let n = tokio::time::timeout(Duration::from_secs(20), raw.stream.read(&mut buf))
                .await
                .expect("data flows")
                .expect("read");
            assert!(n > 0, "{user}: closed before streaming: {sql}");
            got += n;
        }
        drop(raw);
        let vanished = Instant::now();
        eventually(Duration::from_secs(15), marker, || {
            backends_running(db, marker) == 0
        });
        eprintln!(
            "{marker}: backend gone {:?} after the client",
            vanished.elapsed()
        );
        eventually(Duration::from_secs(10), "sessions_active back to 0", || {
            sessions_active(&admin) == Some(0.0)
        });
    }
    // A client vanishing mid-COPY FROM STDIN, halfway through a row.
    let mut raw = login(port, "trust_user", "testdb").await;
    raw.send(&query_frame(
        "COPY notes (customer_id, body) FROM STDIN /* vanish_copy_in */",
    ))
    .await;
    let m = raw.recv().await.expect("CopyInResponse");
    assert_eq!(m.tag, b'G', "{m:?}");
    raw.send(&frame(b'd', b"1\tpartial row without its end"))
        .await;
    drop(raw);
    eventually(Duration::from_secs(15), "vanish_copy_in", || {
        backends_running(db, "vanish_copy_in") == 0
    });
    eventually(Duration::from_secs(10), "sessions_active back to 0", || {
        sessions_active(&admin) == Some(0.0)
    });
    served.stop();
}

/// SIGTERM with queries running past the grace period: the sessions are
/// told (`57P01`) and their queries cancelled upstream, not left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_queries_still_running() {
    let db = &cluster().db;
    let mut served = OwnServe::start(db, &policy_dir(GUARD_POLICY), &["--shutdown-timeout", "1s"]);
    let port = served.port;
    let mut sessions = Vec::new();
    for (user, marker) in [
        ("trust_user", "shutdown_sleep_prod"),
        ("clear_user", "shutdown_sleep_dev"),
    ] {
        let mut raw = login(port, user, "testdb").await;
        // Minutes of work (pg_sleep is not for guarded roles).
        raw.send(&query_frame(&format!(
            "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b /* {marker} */"
        )))
        .await;
        sessions.push((raw, marker));
    }
    eventually(Duration::from_secs(10), "both queries running", || {
        backends_running(db, "shutdown_sleep_") == 2
    });
    let signalled = Instant::now();
    served.sigterm();
    for (raw, marker) in &mut sessions {
        let msgs = raw.drain().await;
        assert!(
            msgs.iter()
                .any(|m| m.tag == b'E' && m.sqlstate().as_deref() == Some("57P01")),
            "{marker}: {msgs:?}"
        );
    }
    eventually(Duration::from_secs(5), "queries cancelled", || {
        backends_running(db, "shutdown_sleep_") == 0
    });
    eprintln!(
        "queries gone {:?} after SIGTERM (grace 1 s)",
        signalled.elapsed()
    );
    let (status, output) = served.stop();
    assert!(status.success(), "{status:?}");
    assert!(
        output.contains("in-flight queries cancelled upstream"),
        "{output}"
    );
}

/// PostgreSQL killed under a running query, then restarted: the session
/// ends with an error (no hang), `/readyz` says 503 while the server is
/// down and `/healthz` still 200, logins fail cleanly, and once it is back
/// everything works again with no session left counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_killed_and_restarted_mid_query() {
    cluster();
    let db = DevDb::start(DevDbOptions::default()).expect("a throwaway cluster");
    let policy =
        policy_dir("[classes.production]\nmode = \"production\"\nroles = [\"postgres\"]\n");
    let served = OwnServe::start(&db, &policy, &["--connect-timeout", "2s"]);
    let (port, admin) = (served.port, served.admin.clone());
    assert!(http_get(&admin, "/readyz").starts_with("HTTP/1.1 200"));

    let mut raw = login(port, "postgres", "postgres").await;
    raw.send(&query_frame("SELECT pg_sleep(60) /* killed_mid_query */"))
        .await;
    eventually(Duration::from_secs(10), "query running", || {
        backends_running(&db, "killed_mid_query") == 1
    });
    db.kill().expect("kill the server");
    let msgs = tokio::time::timeout(Duration::from_secs(15), raw.drain())
        .await
        .expect("the session ends, no hang");
    eprintln!("the killed session ended with {msgs:?}");

    eventually(Duration::from_secs(5), "/readyz 503 while down", || {
        http_get(&admin, "/readyz").starts_with("HTTP/1.1 503")
    });
    assert!(http_get(&admin, "/healthz").starts_with("HTTP/1.1 200"));
    let mut refused = Raw::connect(port).await;
    refused
        .send(&startup_packet(
            0,
            &[("user", "postgres"), ("database", "postgres")],
        ))
        .await;
    let msgs = tokio::time::timeout(Duration::from_secs(15), refused.drain())
        .await
        .expect("a login while the server is down is answered");
    assert!(msgs.iter().any(|m| m.tag == b'E'), "{msgs:?}");

    db.start_again().expect("restart the server");
    eventually(Duration::from_secs(10), "/readyz 200 once back", || {
        http_get(&admin, "/readyz").starts_with("HTTP/1.1 200")
    });
    let mut again = login(port, "postgres", "postgres").await;
    let msgs = again.query("SELECT 1").await;
    assert!(msgs.iter().any(|m| m.tag == b'D'), "{msgs:?}");
    drop(again);
    eventually(Duration::from_secs(10), "sessions_active back to 0", || {
        sessions_active(&admin) == Some(0.0)
    });
    served.stop();
}

/// A connection refused for the limit is logged with the peer address,
/// not only counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_for_the_connection_limit_are_logged() {
    let db = &cluster().db;
    let served = OwnServe::start(
        db,
        &policy_dir(PRODUCTION_POLICY),
        &["--max-connections", "1", "--log-format", "json"],
    );
    let port = served.port;
    // The first session takes the only slot (retried until served).
    let deadline = Instant::now() + Duration::from_secs(10);
    let held = loop {
        let mut raw = Raw::connect(port).await;
        raw.send(&startup_packet(
            0,
            &[("user", "trust_user"), ("database", "testdb")],
        ))
        .await;
        if raw.until_ready().await.last().map(|m| m.tag) == Some(b'Z') {
            break raw;
        }
        assert!(Instant::now() < deadline, "no slot for the first session");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut refused = Raw::connect(port).await;
    let local = refused.stream.local_addr().unwrap();
    let msgs = refused.drain().await;
    assert_eq!(
        msgs.first().and_then(|m| m.sqlstate()).as_deref(),
        Some("53300")
    );
    drop(held);
    let (_, output) = served.stop();
    let line = output
        .lines()
        .find(|l| l.contains("too many clients") && l.contains(&local.to_string()))
        .unwrap_or_else(|| panic!("no refusal of {local} logged:\n{output}"));
    assert!(line.contains("WARN"), "{line}");
}

/// `/readyz` in front of an address where nothing listens: 503 with the
/// reason, while `/healthz` (liveness) stays 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_an_unreachable_upstream() {
    let (_held, closed) = refusing_port();
    let mut args = proxy_args();
    args.upstream = Some(format!("127.0.0.1:{closed}"));
    args.admin = Some("127.0.0.1:0".into());
    let proxy = TestProxy::start(args);
    let admin = proxy.admin.unwrap().to_string();
    let ready = http_get(&admin, "/readyz");
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.contains("unreachable"), "{ready}");
    assert!(http_get(&admin, "/healthz").starts_with("HTTP/1.1 200"));

    let proxy = TestProxy::start({
        let mut args = proxy_args();
        args.admin = Some("127.0.0.1:0".into());
        args
    });
    let admin = proxy.admin.unwrap().to_string();
    let ready = http_get(&admin, "/readyz");
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.ends_with("ready\n"),
        "{ready}"
    );
}
