//! Guarded sessions share one catalog load per database: sessions opened
//! together wait for the load in flight instead of each sending their own.

use crate::raw::{startup_packet, Raw};
use crate::support::*;

/// `trust_user` guarded, `shared_t.email` classified.
fn guarded_trust_user() -> String {
    format!("{GUARDED_TRUST_USER_CLASS}\n[columns]\n\"public.shared_t.email\" = \"email\"\n")
}

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

/// A fresh database named after `name` with a small `shared_t` readable by
/// all, behind a copyguard with `trust_user` guarded and the admin
/// endpoint on (for the catalog load counter).
fn shared_table_behind_proxy(name: &str) -> (String, TestProxy) {
    let db = fresh_database(name);
    cluster()
        .db
        .psql(
            &db,
            "CREATE TABLE shared_t (id int, email text);
             INSERT INTO shared_t SELECT g, 'x' || g FROM generate_series(1, 3) g;
             GRANT SELECT ON shared_t TO PUBLIC;",
        )
        .expect("fixture");
    let mut args = proxy_args();
    args.policy = Some(policy_dir(&guarded_trust_user()).display().to_string());
    args.admin = Some("127.0.0.1:0".into());
    (db, TestProxy::start(args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guarded_sessions_load_the_catalog_once() {
    let (db, proxy) = shared_table_behind_proxy("catalog_once");
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

/// The `copyguard_catalog_loads_total` count of `db`.
fn catalog_loads(proxy: &TestProxy, db: &str) -> u64 {
    let metrics = http_get(proxy.admin.expect("admin"), "/metrics");
    let line = format!("copyguard_catalog_loads_total{{database=\"{db}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0, |n| n.trim().parse().expect("count"))
}

/// The first guarded session of a database sends the catalog load as soon
/// as it is connected, before any statement; a session opened before that
/// load ended adopts it at its first statement instead of loading its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_loads_when_the_first_session_opens() {
    use std::time::Duration;
    let (db, proxy) = shared_table_behind_proxy("catalog_at_open");
    let first = connect(proxy.port(), "trust_user", &db).await;
    let second = connect(proxy.port(), "trust_user", &db).await;
    let mut loads = 0;
    for _ in 0..100 {
        loads = catalog_loads(&proxy, &db);
        if loads > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(loads, 1, "loaded at login, before any statement");
    for session in [&first, &second] {
        let rows = session
            .simple_query("SELECT count(*) FROM shared_t")
            .await
            .expect("first statement");
        assert!(!rows.is_empty());
    }
    assert_eq!(catalog_loads(&proxy, &db), 1, "both sessions use that load");
}

/// A refresh of an old catalog runs after the statement that found it old,
/// not before it: the statement is answered while the load is blocked on
/// the server (`pg_get_viewdef` waits for a lock another session holds on
/// a view that reads no table), and the session picks the new catalog up once it is in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_refresh_does_not_delay_the_statement() {
    use std::time::Duration;
    let db = fresh_database("catalog_background");
    cluster()
        .db
        .psql(
            &db,
            "CREATE TABLE bg_t (id int);
             INSERT INTO bg_t VALUES (1), (2);
             CREATE VIEW bg_v AS SELECT 1 AS one;
             GRANT SELECT ON bg_t, bg_v TO PUBLIC;",
        )
        .expect("fixture");
    let mut args = proxy_args();
    args.policy = Some(policy_dir(&guarded_trust_user()).display().to_string());
    args.admin = Some("127.0.0.1:0".into());
    args.catalog_refresh = Some("1s".into());
    let proxy = TestProxy::start(args);
    let guarded = connect(proxy.port(), "trust_user", &db).await;
    guarded
        .simple_query("SELECT count(*) FROM bg_t")
        .await
        .expect("first statement");
    let loads = catalog_loads(&proxy, &db);

    let locker = superuser(&db).await;
    locker
        .batch_execute(
            "CREATE TABLE bg_new (id int); GRANT SELECT ON bg_new TO PUBLIC;
             BEGIN; LOCK TABLE bg_v IN ACCESS EXCLUSIVE MODE;",
        )
        .await
        .expect("lock");
    let probe = superuser(&db).await;
    let blocked = probe
        .batch_execute("SET statement_timeout = '300ms'; SELECT pg_get_viewdef('bg_v'::regclass)")
        .await;
    assert!(blocked.is_err(), "the lock must hold a catalog load up");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        guarded.simple_query("SELECT count(*) FROM bg_t"),
    )
    .await;
    let answered = answered.expect("the statement waited for the catalog load");
    answered.expect("statement after the catalog went old");
    assert_eq!(
        catalog_loads(&proxy, &db),
        loads + 1,
        "one load, sent after the statement"
    );

    locker.batch_execute("COMMIT").await.expect("unlock");
    let mut seen = false;
    for _ in 0..50 {
        if guarded
            .simple_query("SELECT count(*) FROM bg_new")
            .await
            .is_ok()
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen,
        "the session adopts the catalog loaded in the background"
    );
}

/// The search path a session reads at its start is the one its role's
/// settings give, and its first statement resolves names with it; a
/// change of it before the first statement is read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_path_read_at_start_is_the_role_s() {
    let db = fresh_database("catalog_start_path");
    cluster()
        .db
        .psql(
            &db,
            &format!(
                "CREATE SCHEMA hidden;
                 CREATE TABLE hidden.people (id int);
                 CREATE TABLE public.people (id int);
                 GRANT USAGE ON SCHEMA hidden TO PUBLIC;
                 GRANT SELECT ON hidden.people, public.people TO PUBLIC;
                 ALTER ROLE trust_user IN DATABASE {db} SET search_path = hidden, public;"
            ),
        )
        .expect("fixture");
    let policy =
        format!("{GUARDED_TRUST_USER_CLASS}\n[forbidden]\n\"hidden.people\" = \"stays hidden\"\n");
    let mut args = proxy_args();
    args.policy = Some(policy_dir(&policy).display().to_string());
    let proxy = TestProxy::start(args);

    let first = connect(proxy.port(), "trust_user", &db).await;
    let refused = first
        .simple_query("SELECT count(*) FROM people")
        .await
        .expect_err("people is hidden.people on this role's path");
    let refused = refused.as_db_error().expect("a refusal");
    assert!(refused.message().contains("stays hidden"), "{refused:?}");
    first
        .simple_query("SELECT count(*) FROM public.people")
        .await
        .expect("public.people");

    let second = connect(proxy.port(), "trust_user", &db).await;
    second
        .simple_query("SET search_path = public")
        .await
        .expect("set");
    second
        .simple_query("SELECT count(*) FROM people")
        .await
        .expect("people is public.people now");
}
