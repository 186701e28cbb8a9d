//! Server errors inside guarded extended-protocol batches: the client gets
//! the error and ReadyForQuery at once, as a production role does, and the
//! session stays usable. These batches used to stall the session forever
//! when the failing message came before a statement with row limits (its
//! wait for the result was never ended), keeping the upstream backend busy
//! and its connection slot taken.

use crate::raw::{frame, Msg, Raw};
use crate::support::*;

/// `trust_user` guarded on `testdb`, `customers.email` classified and
/// readable a few rows at a time.
fn limited_trust_user() -> TestProxy {
    let policy = policy_dir(&format!(
        r#"{GUARDED_TRUST_USER_CLASS}copy_to = "block"
allow_writes = false
allow_ddl = false
classified_predicates = true

[columns]
"public.customers.email" = "email"
"#
    ));
    let mut args = proxy_args();
    args.policy = Some(policy.display().to_string());
    TestProxy::start(args)
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn parse(sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, "");
    cstr(&mut body, sql);
    body.extend_from_slice(&0i16.to_be_bytes());
    frame(b'P', &body)
}

/// A Bind of the unnamed statement with text parameters, `formats` result
/// format codes and `trailing` extra bytes after the message.
fn bind(params: &[&str], formats: &[i16], trailing: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, "");
    cstr(&mut body, "");
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for p in params {
        body.extend_from_slice(&(p.len() as i32).to_be_bytes());
        body.extend_from_slice(p.as_bytes());
    }
    body.extend_from_slice(&(formats.len() as i16).to_be_bytes());
    for f in formats {
        body.extend_from_slice(&f.to_be_bytes());
    }
    body.extend_from_slice(trailing);
    frame(b'B', &body)
}

fn describe_portal() -> Vec<u8> {
    frame(b'D', b"P\0")
}

fn execute() -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, "");
    body.extend_from_slice(&0i32.to_be_bytes());
    frame(b'E', &body)
}

fn sync() -> Vec<u8> {
    frame(b'S', &[])
}

/// Parse, Bind, Describe and Execute of one statement without parameters.
fn statement(sql: &str) -> Vec<u8> {
    [
        parse(sql),
        bind(&[], &[], &[]),
        describe_portal(),
        execute(),
    ]
    .concat()
}

/// Sends `batch`, reads up to ReadyForQuery (a stall fails the read), and
/// returns the SQLSTATEs of the errors seen.
async fn errors_of(raw: &mut Raw, batch: &[u8]) -> Vec<String> {
    raw.send(batch).await;
    let msgs: Vec<Msg> = raw.until_ready().await;
    assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{msgs:?}");
    msgs.iter().filter_map(|m| m.sqlstate()).collect()
}

/// The session still runs statements, classified ones included.
async fn still_usable(raw: &mut Raw) {
    let msgs = raw.query("SELECT count(*) FROM customers").await;
    assert!(msgs.iter().any(|m| m.tag == b'D'), "{msgs:?}");
    let msgs = raw.query("SELECT email FROM customers WHERE id = 1").await;
    assert_eq!(msgs.iter().filter(|m| m.tag == b'D').count(), 1, "{msgs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_at_bind_end_the_batch_at_once() {
    let proxy = limited_trust_user();
    let mut raw = Raw::login(proxy.port()).await;
    let sql = "SELECT email FROM customers WHERE id = $1";
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("no parameters", bind(&[], &[], &[]), "08P01"),
        ("trailing bytes", bind(&["1"], &[], &[7, 7, 7]), "08P01"),
        ("not an integer", bind(&["abc"], &[], &[]), "22P02"),
        ("three formats", bind(&["1"], &[0, 0, 0], &[]), "08P01"),
    ];
    for (what, bad_bind, code) in cases {
        let batch = [parse(sql), bad_bind, execute(), sync()].concat();
        let errors = errors_of(&mut raw, &batch).await;
        assert_eq!(errors, vec![code.to_owned()], "{what}");
        still_usable(&mut raw).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_before_limited_statements_in_a_pipeline_ends_the_batch() {
    let proxy = limited_trust_user();
    let mut raw = Raw::login(proxy.port()).await;
    let limited = "SELECT email FROM customers LIMIT 2";
    let one = [statement("SELECT 1/0"), statement(limited), sync()].concat();
    assert_eq!(errors_of(&mut raw, &one).await, vec!["22012".to_owned()]);
    still_usable(&mut raw).await;
    let two = [
        statement("SELECT 1/0"),
        statement(limited),
        statement("SELECT 1"),
        statement(limited),
        sync(),
    ]
    .concat();
    assert_eq!(errors_of(&mut raw, &two).await, vec!["22012".to_owned()]);
    still_usable(&mut raw).await;
    // The limited statement itself fails.
    let failing = [
        statement("SELECT email FROM customers WHERE id = 1/0"),
        statement(limited),
        sync(),
    ]
    .concat();
    assert_eq!(
        errors_of(&mut raw, &failing).await,
        vec!["22012".to_owned()]
    );
    still_usable(&mut raw).await;
    // Batches in separate Syncs after a failed one run as usual.
    let after = [statement("SELECT 1/0"), sync(), statement(limited), sync()].concat();
    raw.send(&after).await;
    let first = raw.until_ready().await;
    assert!(first
        .iter()
        .any(|m| m.sqlstate().as_deref() == Some("22012")));
    let second = raw.until_ready().await;
    assert_eq!(
        second.iter().filter(|m| m.tag == b'D').count(),
        2,
        "{second:?}"
    );
}
