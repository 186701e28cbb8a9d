//! Authentication and TLS through the proxy: every authentication method,
//! every combination of TLS on the client and upstream legs, refusals with
//! PostgreSQL's SQLSTATEs, and channel binding never offered to clients.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use crate::raw::{startup_packet, Raw};
use crate::support::*;

/// Roles whose password the server checks, one per method.
const PASSWORD_ROLES: [&str; 3] = ["scram_user", "md5_user", "clear_user"];

/// The query of the TLS matrix: who we are and whether the server's end
/// of the session is encrypted.
const WHO_AND_SSL: &str =
    "SELECT current_user, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid());\n\\conninfo\n";

/// libpq options for a verified TLS client leg.
fn verify_full() -> String {
    format!("sslmode=verify-full sslrootcert={}", ca_path().display())
}

/// Runs `sql` with psql as `user` on `testdb` through `port`.
fn run(port: u16, user: &str, extra: &str, sql: &str) -> Output {
    psql(&conninfo(port, user, "testdb", extra), sql)
}

/// Like [`run`], but the session must succeed; returns stdout.
fn ok(port: u16, user: &str, extra: &str, sql: &str) -> String {
    let out = run(port, user, extra, sql);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "{user} with {extra:?} failed: {stderr}{stdout}"
    );
    stdout
}

/// A connection that must be refused; returns psql's stderr.
fn refused(port: u16, user: &str, dbname: &str, extra: &str) -> String {
    let out = psql(&conninfo(port, user, dbname, extra), "SELECT 1;");
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "{user}@{dbname} with {extra:?} was accepted: {stdout}"
    );
    stderr
}

/// The proxy still serves a good connection.
fn still_serving(port: u16, extra: &str) {
    assert_eq!(ok(port, "scram_user", extra, "SELECT 42;").trim(), "42");
}

/// SQLSTATE and message of the FATAL a plaintext tokio-postgres client
/// gets when connecting to `port`; the connection must fail.
fn sqlstate(port: u16, user: &str, dbname: &str, password: &str) -> (String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let info = conninfo(port, user, dbname, &format!("password={password}"));
        match tokio_postgres::connect(&info, tokio_postgres::NoTls).await {
            Ok(_) => panic!("{user}@{dbname} on port {port} was accepted"),
            Err(e) => {
                let db = e
                    .as_db_error()
                    .unwrap_or_else(|| panic!("no ErrorResponse from port {port}: {e}"));
                (db.code().code().to_owned(), db.message().to_owned())
            }
        }
    })
}

/// `GET /metrics` on the admin endpoint.
fn metrics(admin: SocketAddr) -> String {
    let mut s = std::net::TcpStream::connect(admin).expect("admin connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// The value of an unlabelled counter (0 before its first increment).
fn counter(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse::<f64>().expect("counter value"))
        })
        .unwrap_or(0.0)
}

#[test]
fn auth_methods_through_plain_proxy() {
    let proxy = TestProxy::plain();
    for user in PASSWORD_ROLES.into_iter().chain(["trust_user"]) {
        assert_eq!(
            ok(proxy.port(), user, "", "SELECT current_user;").trim(),
            user
        );
    }
}

/// One cell of the TLS matrix: every password role logs in, the server's
/// end is encrypted exactly when the upstream leg is, and the client's end
/// exactly when the client leg is.
fn tls_matrix_cell(client_tls: bool, upstream_tls: bool) {
    let mut args = proxy_args();
    if client_tls {
        args = with_client_tls(args, "allow");
    }
    if upstream_tls {
        args = with_upstream_tls(args);
    }
    let proxy = TestProxy::start(args);
    let sslmode = if client_tls {
        verify_full()
    } else {
        "sslmode=disable".to_owned()
    };
    for user in PASSWORD_ROLES {
        let out = ok(proxy.port(), user, &sslmode, WHO_AND_SSL);
        let mut lines = out.lines();
        let expected = format!("{user}|{}", if upstream_tls { "t" } else { "f" });
        assert_eq!(lines.next(), Some(expected.as_str()), "{out}");
        let conninfo = lines.collect::<Vec<_>>().join("\n");
        assert_eq!(
            conninfo.contains("SSL connection"),
            client_tls,
            "client leg of {user}: {conninfo}"
        );
    }
}

#[test]
fn tls_matrix_client_plain_upstream_plain() {
    tls_matrix_cell(false, false);
}

#[test]
fn tls_matrix_client_plain_upstream_tls() {
    tls_matrix_cell(false, true);
}

#[test]
fn tls_matrix_client_tls_upstream_plain() {
    tls_matrix_cell(true, false);
}

#[test]
fn tls_matrix_client_tls_upstream_tls() {
    tls_matrix_cell(true, true);
}

/// libpq's defaults (`channel_binding=prefer`) with TLS on both legs: the
/// case where a relayed SCRAM exchange would be rejected as a downgrade.
#[test]
fn libpq_defaults_with_both_legs_tls() {
    let proxy = TestProxy::start(with_upstream_tls(with_client_tls(proxy_args(), "allow")));
    for sslmode in ["sslmode=require", "sslmode=prefer"] {
        let out = ok(proxy.port(), "scram_user", sslmode, WHO_AND_SSL);
        assert!(out.starts_with("scram_user|t\n"), "{sslmode}: {out}");
        assert!(out.contains("SSL connection"), "{sslmode}: {out}");
    }
}

#[test]
fn tls_required_refuses_plaintext() {
    let proxy = TestProxy::start(with_client_tls(proxy_args(), "require"));
    let port = proxy.port();
    let stderr = refused(port, "scram_user", "testdb", "sslmode=disable");
    assert!(stderr.contains("FATAL"), "{stderr}");
    assert!(stderr.contains("encrypted connection"), "{stderr}");
    let (code, message) = sqlstate(port, "scram_user", "testdb", PASSWORD);
    assert_eq!(code, "28000", "{message}");
    assert!(message.contains("encrypted"), "{message}");

    let out = ok(port, "scram_user", "sslmode=require", WHO_AND_SSL);
    assert!(out.contains("SSL connection"), "{out}");
    still_serving(port, &verify_full());
    still_serving(port, "sslmode=prefer");
}

#[test]
fn tls_disabled_answers_n() {
    let proxy = TestProxy::plain();
    let port = proxy.port();
    let stderr = refused(port, "scram_user", "testdb", "sslmode=require");
    assert!(stderr.contains("server does not support SSL"), "{stderr}");
    let out = ok(port, "scram_user", "sslmode=prefer", WHO_AND_SSL);
    assert!(out.starts_with("scram_user|f\n"), "{out}");
    assert!(!out.contains("SSL connection"), "{out}");
}

#[test]
fn wrong_password_and_unknown_database() {
    const FAILURES: &str = "copyguard_auth_failures_total";
    let mut args = proxy_args();
    args.admin = Some("127.0.0.1:0".into());
    let proxy = TestProxy::start(args);
    let port = proxy.port();
    let admin = proxy.admin.expect("admin address");
    let before = counter(&metrics(admin), FAILURES);
    let mut caused = 0.0;

    for user in PASSWORD_ROLES {
        let stderr = refused(port, user, "testdb", "password=wrong-pass");
        assert!(
            stderr.contains(&format!(
                "password authentication failed for user \"{user}\""
            )),
            "{stderr}"
        );
        let (code, message) = sqlstate(port, user, "testdb", "wrong-pass");
        assert_eq!(code, "28P01", "{user}: {message}");
        caused += 2.0;
        still_serving(port, "");
    }

    let stderr = refused(port, "scram_user", "no_such_db", "");
    assert!(stderr.contains("\"no_such_db\" does not exist"), "{stderr}");
    let (code, message) = sqlstate(port, "scram_user", "no_such_db", PASSWORD);
    assert_eq!(code, "3D000", "{message}");
    still_serving(port, "");

    let db = &cluster().db;
    let (direct_code, direct_message) = sqlstate(db.port(), "no_such_role", "testdb", PASSWORD);
    assert!(
        direct_code == "28P01" || direct_code == "28000",
        "{direct_code} {direct_message}"
    );
    let (code, message) = sqlstate(port, "no_such_role", "testdb", PASSWORD);
    assert_eq!(
        (code.as_str(), message.as_str()),
        (direct_code.as_str(), direct_message.as_str())
    );
    caused += 1.0;
    still_serving(port, "");

    let after = counter(&metrics(admin), FAILURES);
    assert!(
        after - before >= caused,
        "{FAILURES} went from {before} to {after}, {caused} failures caused"
    );
}

/// With both legs TLS copyguard runs SCRAM itself; a wrong password must
/// still come back as the server's 28P01.
#[test]
fn wrong_password_with_both_legs_tls() {
    let proxy = TestProxy::start(with_upstream_tls(with_client_tls(proxy_args(), "allow")));
    let port = proxy.port();
    let extra = format!("{} password=wrong-pass", verify_full());
    let stderr = refused(port, "scram_user", "testdb", &extra);
    assert!(
        stderr.contains("password authentication failed for user \"scram_user\""),
        "{stderr}"
    );
    still_serving(port, &verify_full());
}

/// The mechanisms of the AuthenticationSASL message a raw plaintext client
/// receives for `scram_user`.
async fn sasl_mechanisms(port: u16) -> Vec<String> {
    let mut raw = Raw::connect(port).await;
    raw.send(&startup_packet(
        0,
        &[("user", "scram_user"), ("database", "testdb")],
    ))
    .await;
    let msg = raw.recv().await.expect("an authentication request");
    assert_eq!(msg.tag, b'R', "{msg:?}");
    assert_eq!(msg.body[..4], 10u32.to_be_bytes(), "AuthenticationSASL");
    msg.body[4..]
        .split(|&b| b == 0)
        .take_while(|m| !m.is_empty())
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect()
}

/// The server offers `SCRAM-SHA-256-PLUS` over its TLS connection; the
/// client must only ever see `SCRAM-SHA-256` (libpq 15 refuses a PLUS offer
/// over plaintext). With both legs TLS copyguard asks for a cleartext
/// password, which `channel_binding=require` rightly refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_plus_is_never_offered() {
    let proxy = TestProxy::start(with_upstream_tls(proxy_args()));
    let port = proxy.port();
    assert_eq!(sasl_mechanisms(port).await, ["SCRAM-SHA-256"]);

    let stderr = refused(
        port,
        "scram_user",
        "testdb",
        "sslmode=disable channel_binding=require",
    );
    assert!(stderr.contains("channel binding"), "{stderr}");
    still_serving(port, "sslmode=disable channel_binding=disable");
    still_serving(port, "sslmode=disable channel_binding=prefer");

    let both = TestProxy::start(with_upstream_tls(with_client_tls(proxy_args(), "allow")));
    let extra = format!("{} channel_binding=require", verify_full());
    let stderr = refused(both.port(), "scram_user", "testdb", &extra);
    assert!(stderr.contains("channel binding"), "{stderr}");
    still_serving(
        both.port(),
        &format!("{} channel_binding=disable", verify_full()),
    );
}

#[test]
fn upstream_verify_full_rejects_wrong_name() {
    let mut args = with_upstream_tls(proxy_args());
    args.upstream_tls_server_name = Some("wrong.example".into());
    let proxy = TestProxy::start(args.clone());
    let stderr = refused(proxy.port(), "scram_user", "testdb", "");
    assert!(stderr.contains("FATAL"), "{stderr}");
    let (code, message) = sqlstate(proxy.port(), "scram_user", "testdb", PASSWORD);
    assert_eq!(code, "08006", "{message}");
    drop(proxy);

    args.upstream_tls_mode = Some("require".into());
    let proxy = TestProxy::start(args);
    let out = ok(proxy.port(), "scram_user", "", WHO_AND_SSL);
    assert!(out.starts_with("scram_user|t\n"), "{out}");
}
