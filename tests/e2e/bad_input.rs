//! Bad input gets a clear error, never a panic or a hang, and copyguard
//! keeps serving other clients.

use crate::raw::{frame, startup_packet, Raw};
use crate::support::*;

/// A good client still gets served.
async fn still_serving(port: u16) {
    let mut raw = Raw::login(port).await;
    let msgs = raw.query("SELECT 41 + 1").await;
    assert!(msgs.iter().any(|m| m.tag == b'D'), "{msgs:?}");
}

fn fatal(msgs: &[crate::raw::Msg]) -> &crate::raw::Msg {
    msgs.iter()
        .find(|m| m.tag == b'E')
        .unwrap_or_else(|| panic!("no ErrorResponse in {msgs:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_startup_packet() {
    let proxy = TestProxy::plain();
    let mut raw = Raw::connect(proxy.port()).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: db\r\n\r\n").await;
    let msgs = raw.drain().await;
    let err = fatal(&msgs);
    assert_eq!(err.sqlstate().as_deref(), Some("08P01"));
    assert_eq!(err.field(b'S').as_deref(), Some("FATAL"));
    assert!(err.field(b'M').unwrap().contains("startup packet"));
    still_serving(proxy.port()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_tiny_startup_packets() {
    let proxy = TestProxy::plain();
    for len in [20_000u32, 3] {
        let mut raw = Raw::connect(proxy.port()).await;
        let mut packet = len.to_be_bytes().to_vec();
        packet.extend_from_slice(&[0, 3, 0, 0]);
        raw.send(&packet).await;
        let msgs = raw.drain().await;
        assert_eq!(
            fatal(&msgs).sqlstate().as_deref(),
            Some("08P01"),
            "len {len}"
        );
    }
    still_serving(proxy.port()).await;
}

/// Issue 17: protocol 3.0 with no parameters and no terminator panicked
/// the session task; the client must get `08P01` instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_only_startup_packet_gets_an_error() {
    let proxy = TestProxy::plain();
    let mut raw = Raw::connect(proxy.port()).await;
    raw.send(&[0, 0, 0, 8, 0, 3, 0, 0]).await;
    let msgs = raw.drain().await;
    let err = fatal(&msgs);
    assert_eq!(err.sqlstate().as_deref(), Some("08P01"), "{msgs:?}");
    assert!(err.field(b'M').unwrap().contains("startup packet"));
    still_serving(proxy.port()).await;
}

/// PostgreSQL logs in the last of repeated `user` parameters; copyguard
/// must not classify the session by another one. Found by a red-team
/// round: `user=<production role>, user=<guarded role>` with the guarded
/// role's password gave an unguarded session. Refused before anything
/// reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_startup_parameters_are_refused() {
    let proxy = TestProxy::plain();
    for params in [
        [
            ("user", "postgres"),
            ("user", "nobody"),
            ("database", "postgres"),
        ],
        [
            ("user", "postgres"),
            ("database", "postgres"),
            ("database", "template1"),
        ],
        [
            ("user", "postgres"),
            ("replication", "false"),
            ("replication", "database"),
        ],
    ] {
        let mut raw = Raw::connect(proxy.port()).await;
        raw.send(&startup_packet(0, &params)).await;
        let msgs = raw.drain().await;
        let err = fatal(&msgs);
        assert_eq!(
            err.sqlstate().as_deref(),
            Some("08P01"),
            "{params:?}: {msgs:?}"
        );
        assert!(
            err.field(b'M').unwrap().contains("more than once"),
            "{params:?}: {msgs:?}"
        );
        assert!(!msgs.iter().any(|m| m.tag == b'R'), "{params:?}: {msgs:?}");
    }
    still_serving(proxy.port()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_or_truncated_clients_time_out() {
    let mut args = proxy_args();
    args.startup_timeout = Some("1s".into());
    let proxy = TestProxy::start(args);
    let started = std::time::Instant::now();
    let mut silent = Raw::connect(proxy.port()).await;
    let mut partial = Raw::connect(proxy.port()).await;
    partial.send(&[0, 0, 0]).await;
    assert!(silent.drain().await.is_empty());
    assert!(partial.drain().await.is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    let mut stalled_auth = Raw::connect(proxy.port()).await;
    stalled_auth
        .send(&startup_packet(
            0,
            &[("user", "scram_user"), ("database", "testdb")],
        ))
        .await;
    let msgs = stalled_auth.drain().await;
    assert_eq!(msgs.first().map(|m| m.tag), Some(b'R'), "{msgs:?}");
    assert_eq!(fatal(&msgs).sqlstate().as_deref(), Some("57014"));
    still_serving(proxy.port()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_after_authentication() {
    let mut args = proxy_args();
    args.max_message_size = Some("1MiB".into());
    let proxy = TestProxy::start(args);
    let mut raw = Raw::login(proxy.port()).await;
    let mut header = vec![b'Q'];
    header.extend_from_slice(&(4u32 << 20).to_be_bytes());
    header.extend_from_slice(b"SELECT ");
    raw.send(&header).await;
    let msgs = raw.drain().await;
    let err = fatal(&msgs);
    assert_eq!(err.sqlstate().as_deref(), Some("54000"));
    assert!(err.field(b'M').unwrap().contains("exceeds"), "{err:?}");

    let mut raw = Raw::login(proxy.port()).await;
    raw.send(&[b'Q', 0, 0, 0, 2]).await;
    assert_eq!(
        fatal(&raw.drain().await).sqlstate().as_deref(),
        Some("08P01")
    );

    let mut raw = Raw::login(proxy.port()).await;
    let big = format!("SELECT length('{}')", "y".repeat(900_000));
    let msgs = raw.query(&big).await;
    assert!(
        msgs.iter().any(|m| m.tag == b'D'),
        "a message under the limit passes"
    );
    still_serving(proxy.port()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_errors_have_postgres_sqlstates() {
    let proxy = TestProxy::plain();
    let mut raw = Raw::connect(proxy.port()).await;
    raw.send(&startup_packet(0, &[("database", "testdb")]))
        .await;
    assert_eq!(
        fatal(&raw.drain().await).sqlstate().as_deref(),
        Some("28000")
    );

    let mut raw = Raw::connect(proxy.port()).await;
    let mut v2 = 9u32.to_be_bytes().to_vec();
    v2.extend_from_slice(&[0, 2, 0, 0, 0]);
    raw.send(&v2).await;
    assert_eq!(
        fatal(&raw.drain().await).sqlstate().as_deref(),
        Some("0A000")
    );

    let mut raw = Raw::connect(proxy.port()).await;
    raw.send(&startup_packet(0, &[("user", "trust_user")]))
        .await;
    raw.send(&frame(b'Q', b"SELECT 1\0")).await;
    let msgs = raw.drain().await;
    assert_eq!(
        fatal(&msgs).sqlstate().as_deref(),
        Some("3D000"),
        "database defaults to the user name"
    );
    still_serving(proxy.port()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_cancel_key_is_dropped_silently() {
    let proxy = TestProxy::plain();
    let mut raw = Raw::connect(proxy.port()).await;
    raw.send(&[0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 42, 1, 2, 3, 4])
        .await;
    assert!(raw.drain().await.is_empty());
    still_serving(proxy.port()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gssenc_request_is_refused_then_startup_proceeds() {
    let proxy = TestProxy::plain();
    let mut raw = Raw::connect(proxy.port()).await;
    raw.send(&[0, 0, 0, 8, 4, 210, 22, 48]).await;
    assert_eq!(raw.byte().await, b'N');
    raw.send(&[0, 0, 0, 8, 4, 210, 22, 47]).await;
    assert_eq!(raw.byte().await, b'N', "no client TLS configured");
    raw.send(&startup_packet(
        0,
        &[("user", "trust_user"), ("database", "testdb")],
    ))
    .await;
    assert_eq!(raw.until_ready().await.last().map(|m| m.tag), Some(b'Z'));
    assert!(raw.query("SELECT 1").await.iter().any(|m| m.tag == b'D'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unencrypted_data_after_ssl_request_is_refused() {
    let proxy = TestProxy::start(with_client_tls(proxy_args(), "allow"));
    let mut raw = Raw::connect(proxy.port()).await;
    let mut bytes = vec![0, 0, 0, 8, 4, 210, 22, 47];
    bytes.extend_from_slice(&startup_packet(0, &[("user", "trust_user")]));
    raw.send(&bytes).await;
    let msgs = raw.drain().await;
    assert_eq!(fatal(&msgs).sqlstate().as_deref(), Some("08P01"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_protocol_and_extensions_are_negotiated_down() {
    let proxy = TestProxy::plain();
    for minor in [2u16, 9999] {
        let mut raw = Raw::connect(proxy.port()).await;
        raw.send(&startup_packet(
            minor,
            &[
                ("user", "trust_user"),
                ("database", "testdb"),
                ("_pq_.copyguard_test", "on"),
            ],
        ))
        .await;
        let msgs = raw.until_ready().await;
        let v = msgs
            .iter()
            .find(|m| m.tag == b'v')
            .unwrap_or_else(|| panic!("no NegotiateProtocolVersion: {msgs:?}"));
        let version = u32::from_be_bytes([v.body[0], v.body[1], v.body[2], v.body[3]]);
        let server_max = 0x0003_0000;
        assert!(
            version == server_max || version == 0x0003_0002,
            "{version:#x}"
        );
        assert_eq!(&v.body[4..8], &1u32.to_be_bytes());
        assert_eq!(&v.body[8..], b"_pq_.copyguard_test\0");
        let key = msgs.iter().find(|m| m.tag == b'K').expect("BackendKeyData");
        let expected_key = if version == server_max { 4 } else { 32 };
        assert_eq!(key.body.len(), 4 + expected_key);
        assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'));
        assert!(raw.query("SELECT 1").await.iter().any(|m| m.tag == b'D'));
    }
}
