//! The proxy as an operator sees it: graceful shutdown, connection limits,
//! the admin endpoint, the `serve` binary's configuration errors and
//! signals, and `copyguard demo`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::raw::Raw;
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_copyguard");

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("admin connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn signal(pid: u32, sig: libc::c_int) {
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill {pid}");
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_sessions_finish() {
    let mut args = proxy_args();
    args.shutdown_timeout = Some("20s".into());
    let mut proxy = TestProxy::start(args);
    let port = proxy.port();
    let client = connect(port, "scram_user", "testdb").await;
    proxy.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "no new connections while draining"
    );
    let row = client
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 500);
    drop(client);
    let started = Instant::now();
    tokio::task::spawn_blocking(move || proxy.shutdown())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stops once sessions end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_past_the_grace_period_are_told_and_closed() {
    let mut args = proxy_args();
    args.shutdown_timeout = Some("1s".into());
    let mut proxy = TestProxy::start(args);
    let mut raw = Raw::login(proxy.port()).await;
    proxy.begin_shutdown();
    let msgs = raw.drain().await;
    let err = msgs
        .iter()
        .find(|m| m.tag == b'E')
        .expect("a FATAL before close");
    assert_eq!(err.sqlstate().as_deref(), Some("57P01"));
    tokio::task::spawn_blocking(move || proxy.shutdown())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_with_53300() {
    let mut args = proxy_args();
    args.max_connections = Some("1".into());
    let proxy = TestProxy::start(args);
    let held = Raw::login(proxy.port()).await;
    let mut refused = Raw::connect(proxy.port()).await;
    let msgs = refused.drain().await;
    assert_eq!(
        msgs.first().and_then(|m| m.sqlstate()).as_deref(),
        Some("53300")
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut raw = Raw::connect(proxy.port()).await;
        raw.send(&crate::raw::startup_packet(
            0,
            &[("user", "trust_user"), ("database", "testdb")],
        ))
        .await;
        let msgs = raw.until_ready().await;
        if msgs.last().map(|m| m.tag) == Some(b'Z') {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slot freed after the session ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Connections that never log in hold at most
/// `limits.max_startups_per_client` slots per client address: past that
/// they are refused with 53300 (after an SSLRequest is declined, so libpq
/// shows the message), and clients of other addresses, and the same
/// address once a startup ends, still log in (red team: 1,500 idle TCP
/// connections used to hold every slot for the startup timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_hold_at_most_their_address_share() {
    use std::net::Ipv4Addr;
    let mut args = proxy_args();
    args.max_connections = Some("8".into());
    args.max_startups_per_client = Some("5".into());
    let proxy = TestProxy::start(args);
    let port = proxy.port();
    let attacker = Ipv4Addr::new(127, 0, 0, 1);
    let mut idle = Vec::new();
    for _ in 0..5 {
        idle.push(Raw::connect_from(attacker, port).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let mut refused = Raw::connect_from(attacker, port).await;
        let msgs = refused.drain().await;
        let first = msgs.first().expect("an answer");
        assert_eq!(first.sqlstate().as_deref(), Some("53300"), "{msgs:?}");
        let hint = String::from_utf8_lossy(&first.body).into_owned();
        assert!(hint.contains("limits.max_startups_per_client"), "{hint}");
    }
    let libpq = tokio::task::spawn_blocking(move || {
        psql(
            &conninfo(port, "trust_user", "testdb", "sslmode=prefer"),
            "SELECT 1",
        )
    })
    .await
    .expect("psql");
    let (_, stderr) = text(&libpq);
    assert!(
        stderr.contains("too many connections from this address"),
        "libpq shows the refusal, not an error in its SSL exchange: {stderr}"
    );
    let login = |from: Ipv4Addr| async move {
        let mut raw = Raw::connect_from(from, port).await;
        raw.send(&crate::raw::startup_packet(
            0,
            &[("user", "trust_user"), ("database", "testdb")],
        ))
        .await;
        let msgs = raw.until_ready().await;
        assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{from}: {msgs:?}");
        raw
    };
    let other = login(Ipv4Addr::new(127, 0, 0, 2)).await;
    drop(idle.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let same = login(attacker).await;
    idle.push(Raw::connect_from(attacker, port).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = Raw::connect_from(attacker, port).await;
    let msgs = refused.drain().await;
    let first = msgs.first().expect("an answer");
    assert_eq!(first.sqlstate().as_deref(), Some("53300"), "{msgs:?}");
    assert!(
        String::from_utf8_lossy(&first.body).contains("max_startups_per_client"),
        "a logged-in session no longer counts as starting, the new idle one does"
    );
    drop((other, same, idle));
}

#[test]
fn admin_endpoint_serves_metrics_and_health() {
    let mut args = proxy_args();
    args.admin = Some("127.0.0.1:0".into());
    let proxy = TestProxy::start(args);
    let out = psql(
        &conninfo(proxy.port(), "scram_user", "testdb", ""),
        "SELECT 1;",
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let admin = proxy.admin.expect("admin address");
    let health = http_get(admin, "/healthz");
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    // psql has exited, but the session's end (and its duration) is
    // recorded by copyguard a moment later: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = http_get(admin, "/metrics");
        if metrics.contains("copyguard_session_duration_seconds") || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for name in [
        "copyguard_connections_total",
        "copyguard_bytes_total{direction=\"client_to_server\"}",
        "copyguard_messages_total{direction=\"server_to_client\"}",
        "copyguard_session_duration_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    assert!(http_get(admin, "/nope").starts_with("HTTP/1.1 404"));
}

#[test]
fn serve_reports_configuration_errors_with_the_key() {
    let policy = policy_dir(PRODUCTION_POLICY);
    let out = Command::new(BIN)
        .args([
            "serve",
            "--upstream",
            "127.0.0.1:5432",
            "--tls-mode",
            "require",
            "--policy",
        ])
        .arg(&policy)
        .env_clear()
        .env("COPYGUARD_AUDIT_PATH", audit_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`tls.cert`"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copyguard.toml");
    std::fs::write(
        &file,
        format!(
            "upstream = \"127.0.0.1:5432\"\npolicy = {:?}\n[limits]\nstartup_timeout = \"soon\"\n",
            policy.display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&file)
        .env_clear()
        .env("COPYGUARD_AUDIT_PATH", audit_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("limits.startup_timeout") && err.contains("line 4"),
        "{err}"
    );

    let out = Command::new(BIN)
        .args(["serve"])
        .env_clear()
        .env("COPYGUARD_AUDIT_PATH", audit_path())
        .env("COPYGUARD_UPSTREAM", "nohost")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("COPYGUARD_UPSTREAM"));

    let out = Command::new(BIN)
        .args(["serve", "--upstream", "127.0.0.1:5432"])
        .env_clear()
        .env("COPYGUARD_AUDIT_PATH", audit_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`policy`"));

    std::fs::write(
        policy.join("broken.toml"),
        "[classes.x]\nmode = \"sometimes\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--upstream", "127.0.0.1:5432", "--policy"])
        .arg(&policy)
        .env_clear()
        .env("COPYGUARD_AUDIT_PATH", audit_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.toml"),
        "policy errors name the file: {err}"
    );
}

#[test]
fn serve_binary_relays_and_stops_on_sigterm() {
    let db = &cluster().db;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copyguard.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\npolicy = {:?}\n[limits]\nshutdown_timeout = \"5s\"\n[log]\nformat = \"json\"\n",
            policy_dir(PRODUCTION_POLICY).display().to_string()
        ),
    )
    .unwrap();
    let mut served = Served::start(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&file)
            .env_clear()
            .env("COPYGUARD_AUDIT_PATH", audit_path())
            .env("COPYGUARD_UPSTREAM", format!("{}:{}", db.host(), db.port()))
            .stderr(Stdio::piped()),
    );
    let port = served.port();
    let out = psql(
        &conninfo(port, "md5_user", "testdb", ""),
        "SELECT current_user;",
    );
    assert_eq!(text(&out).0.trim(), "md5_user", "{:?}", text(&out));
    signal(served.child.id(), libc::SIGTERM);
    let status = wait_exit(&mut served.child, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    let (_, log) = served.finish();
    let started = log
        .lines()
        .find(|l| l.contains("session started"))
        .unwrap_or_else(|| panic!("no session record in\n{log}"));
    for field in [
        "\"user\":\"md5_user\"",
        "\"database\":\"testdb\"",
        "\"tls\":false",
        "\"peer\"",
    ] {
        assert!(started.contains(field), "{field} missing: {started}");
    }
}

#[test]
fn demo_starts_serves_and_cleans_up() {
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            if line.starts_with("copyguard demo ready:") {
                let _ = tx.send((line, all.clone()));
            }
        }
    });
    let (ready, printed) = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("demo ready");
    let listen = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .expect("listen address");
    let port: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert!(printed.contains("user=app_prod") && printed.contains("user=dev_alice"));
    for (user, password) in [("app_prod", "prod-secret"), ("dev_alice", "dev-secret")] {
        let out = client("psql")
            .env("PGPASSWORD", password)
            .args(["-X", "-At", "-d", &conninfo(port, user, "shop", ""), "-c"])
            .arg("SELECT count(*) FROM users")
            .output()
            .unwrap();
        assert_eq!(text(&out).0.trim(), "1000", "{user}: {:?}", text(&out));
    }
    assert!(printed.contains("user=qa_bob"));
    let out = client("psql")
        .env("PGPASSWORD", "qa-secret")
        .args([
            "-X",
            "-At",
            "-d",
            &conninfo(port, "qa_bob", "shop", ""),
            "-c",
        ])
        .arg("SELECT email FROM users ORDER BY id LIMIT 3")
        .output()
        .unwrap();
    let emails = text(&out).0;
    assert_eq!(emails.lines().count(), 3, "{:?}", text(&out));
    assert!(
        emails.lines().all(|e| e.ends_with("@example.invalid")),
        "the tester gets stand-ins: {emails}"
    );
    crate::demo_lines::check_printed_lines(&printed);
    demo_dump_walkthrough(&printed);
    signal(child.id(), libc::SIGINT);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    assert!(
        std::net::TcpStream::connect(listen).is_err(),
        "demo stopped listening"
    );
}

/// Runs the demo's dump walk-through exactly as printed, line by line,
/// with copyguard and the PostgreSQL clients on PATH.
fn demo_dump_walkthrough(printed: &str) {
    let lines: Vec<&str> = printed
        .lines()
        .skip_while(|l| !l.starts_with("Take a sanctioned"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(lines.len(), 7, "{printed}");
    let bin_dir = std::path::Path::new(BIN).parent().unwrap().to_owned();
    let pg_dir = cluster().db.client_bin("psql").parent().unwrap().to_owned();
    let path = format!(
        "{}:{}:{}",
        bin_dir.display(),
        pg_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut last = String::new();
    for line in &lines {
        let out = Command::new("sh")
            .args(["-c", line])
            .env("PATH", &path)
            .env_remove("PGOPTIONS")
            .env("PGSSLMODE", "disable")
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}: {:?}", text(&out));
        last = text(&out).0;
    }
    assert_eq!(last.matches("@example.invalid").count(), 5, "{last}");
}
