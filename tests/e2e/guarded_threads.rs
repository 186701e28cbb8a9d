//! Guarded sessions on two threads of their own (`COPYGUARD_GUARDED=threads`,
//! `proxy/guarded/split.rs`), each half asleep in a blocking `recv` on the
//! socket it reads: whichever side goes away, the other half is woken and
//! the session's server connection closed; shutdown past its grace period
//! reaches a session asleep in `recv`.

use std::time::Duration;

use crate::guard_fixture::*;
use crate::raw::Raw;
use crate::support::*;

/// A proxy placing guarded sessions on threads, under the locked policy.
fn threaded_proxy(grace: &str) -> TestProxy {
    fixture();
    let mut args = proxy_args();
    args.policy = Some(locked_policy().display().to_string());
    args.shutdown_timeout = Some(grace.into());
    TestProxy::start_threaded(args)
}

/// A guarded session that ran a statement marked `marker` and is idle.
async fn idle_guarded_session(port: u16, marker: &str) -> Raw {
    let mut raw = Raw::login_scram(port, DEV, DB, PASSWORD).await;
    let msgs = raw
        .query(&format!("SELECT count(*) FROM orders /* {marker} */"))
        .await;
    assert!(msgs.iter().any(|m| m.tag == b'D'), "{msgs:?}");
    eventually(Duration::from_secs(10), "the session's backend", || {
        backends_running(&cluster().db, marker) == 1
    });
    raw
}

/// Reads the session to its end: the client was told `57P01`, then closed.
async fn told_and_closed(raw: &mut Raw) {
    let msgs = raw.drain().await;
    let fatal = msgs.iter().find(|m| m.tag == b'E');
    assert_eq!(
        fatal.and_then(|m| m.sqlstate()).as_deref(),
        Some("57P01"),
        "{msgs:?}"
    );
}

/// The client vanishes without a Terminate: the frontend's thread reads
/// the end of its stream, and the backend's, asleep in `recv` on the
/// server, is woken, so the server connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_client_frees_the_server_connection() {
    let proxy = threaded_proxy("2s");
    let raw = idle_guarded_session(proxy.port(), "threads_client_gone").await;
    drop(raw);
    eventually(Duration::from_secs(5), "the backend closed", || {
        backends_running(&cluster().db, "threads_client_gone") == 0
    });
}

/// The server ends the session: the client gets its FATAL error, and the
/// frontend's thread, asleep in `recv` on the silent client, is woken, so
/// the client's connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_server_ends_closes_the_clients_connection() {
    let proxy = threaded_proxy("2s");
    let mut raw = idle_guarded_session(proxy.port(), "threads_server_gone").await;
    cluster()
        .db
        .psql(
            "postgres",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE '%threads_server_gone%' AND pid <> pg_backend_pid()",
        )
        .expect("terminate the backend");
    told_and_closed(&mut raw).await;
    drop(proxy);
}

/// Shutdown past its grace period reaches an idle session whose halves
/// both sleep in `recv`: the client is told (`57P01`) and closed, the
/// server connection too, and the proxy stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_past_the_grace_period_reaches_a_session_asleep() {
    let mut proxy = threaded_proxy("1s");
    let mut raw = idle_guarded_session(proxy.port(), "threads_shutdown").await;
    proxy.begin_shutdown();
    told_and_closed(&mut raw).await;
    tokio::task::spawn_blocking(move || proxy.shutdown())
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "the backend closed", || {
        backends_running(&cluster().db, "threads_shutdown") == 0
    });
}
