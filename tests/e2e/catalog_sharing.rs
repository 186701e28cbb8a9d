//! Guarded sessions share one catalog load per database: sessions opened
//! together wait for the load in flight instead of each sending their own.

use crate::raw::{startup_packet, Raw};
use crate::support::*;

/// `GET path` on the admin endpoint.
fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("admin");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guarded_sessions_load_the_catalog_once() {
    let db = fresh_database("catalog_once");
    cluster()
        .db
        .psql(
            &db,
            "CREATE TABLE shared_t (id int, email text);
             INSERT INTO shared_t SELECT g, 'x' || g FROM generate_series(1, 3) g;
             GRANT SELECT ON shared_t TO PUBLIC;",
        )
        .expect("fixture");
    let policy = policy_dir(
        r#"
[classes.developers]
mode = "guarded"
roles = ["trust_user"]
max_rows_per_statement = 5
max_bytes_per_statement = "1MiB"
max_rows_per_session = 1000
max_rows_per_window = 100000
window = "1h"

[columns]
"public.shared_t.email" = "email"
"#,
    );
    let mut args = proxy_args();
    args.policy = Some(policy.display().to_string());
    args.admin = Some("127.0.0.1:0".into());
    let proxy = TestProxy::start(args);
    let port = proxy.port();
    let sessions = (0..30).map(|_| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut raw = Raw::connect(port).await;
            raw.send(&startup_packet(
                0,
                &[("user", "trust_user"), ("database", &db)],
            ))
            .await;
            let login = raw.until_ready().await;
            assert_eq!(login.last().map(|m| m.tag), Some(b'Z'), "{login:?}");
            let msgs = raw.query("SELECT count(*) FROM shared_t").await;
            assert!(msgs.iter().any(|m| m.tag == b'D'), "{msgs:?}");
        })
    });
    for s in futures_util::future::join_all(sessions).await {
        s.expect("session");
    }
    let metrics = http_get(proxy.admin.expect("admin"), "/metrics");
    let line = format!("copyguard_catalog_loads_total{{database=\"{db}\"}} ");
    let loads = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("{line} missing from\n{metrics}"));
    assert_eq!(loads.trim(), "1", "30 sessions opened together");
}
