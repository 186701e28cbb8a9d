//! Messages the server skips after its own error in an extended-protocol
//! batch (`SELECT 1/0`, then everything up to Sync) change no name in
//! copyguard either: a statement or portal re-defined by a skipped Parse,
//! Bind or Close keeps, for copyguard, what it stands for on the server.
//! Otherwise copyguard would apply a harmless statement's plan to the
//! rows of a classified one. The classified statements here come out of a
//! UNION, whose RowDescription names no table, so the description check
//! alone cannot catch the swap.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::guard_fixture::*;
use crate::raw::{frame, Msg, Raw};
use crate::support::*;
use crate::tap::{find_leak, Tap};

/// Statements of pseudonymized email, readable in bulk: the direct one
/// (its RowDescription names the column, which the description check
/// catches), and forms whose RowDescription names no classified column.
const CLASSIFIED: [&str; 4] = [
    "SELECT email FROM users",
    "SELECT contact FROM v_contacts",
    "SELECT email::varchar FROM users",
    "SELECT email FROM users UNION ALL SELECT email FROM users WHERE false",
];
/// A harmless statement of the same shape.
const HARMLESS: &str = "SELECT 'harmless'::text";

fn policy() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        pseudonymizing_policy_with(
            10000,
            &["email"],
            r#"
"public.users.email" = "email"
"public.users.full_name" = "person_name"
"#,
        )
    })
    .clone()
}

fn proxy() -> TestProxy {
    fixture();
    let mut args = proxy_args();
    args.policy = Some(policy().display().to_string());
    let key = cluster()
        .db
        .data_dir()
        .parent()
        .expect("data dir parent")
        .join("skips-pseudonym.key");
    std::fs::write(&key, format!("{}\n", "cd".repeat(32))).expect("key file");
    args.pseudonym_key_file = Some(key.display().to_string());
    TestProxy::start(args)
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, name);
    cstr(&mut body, sql);
    body.extend_from_slice(&0i16.to_be_bytes());
    frame(b'P', &body)
}

/// A Bind without parameters, with one result format code (`format`).
fn bind(portal: &str, statement: &str, format: i16) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, portal);
    cstr(&mut body, statement);
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&format.to_be_bytes());
    frame(b'B', &body)
}

fn execute(portal: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, portal);
    body.extend_from_slice(&0i32.to_be_bytes());
    frame(b'E', &body)
}

fn close(kind: u8, name: &str) -> Vec<u8> {
    let mut body = vec![kind];
    cstr(&mut body, name);
    frame(b'C', &body)
}

fn query(sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, sql);
    frame(b'Q', &body)
}

fn sync() -> Vec<u8> {
    frame(b'S', &[])
}

/// A server error in the middle of a batch: what follows is skipped.
fn failing() -> Vec<u8> {
    [
        parse("failing", "SELECT 1/0"),
        bind("", "failing", 0),
        execute(""),
    ]
    .concat()
}

async fn cycle(raw: &mut Raw, batch: &[u8]) -> Vec<Msg> {
    raw.send(batch).await;
    let msgs = raw.until_ready().await;
    assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{msgs:?}");
    msgs
}

fn errors(msgs: &[Msg]) -> Vec<String> {
    msgs.iter().filter_map(|m| m.sqlstate()).collect()
}

fn messages(msgs: &[Msg]) -> Vec<String> {
    msgs.iter().filter_map(|m| m.field(b'M')).collect()
}

/// The session still answers, and its own statements still work.
async fn still_usable(raw: &mut Raw) {
    let msgs = raw.query("SELECT count(*) FROM users").await;
    assert!(msgs.iter().any(|m| m.tag == b'D'), "{msgs:?}");
    assert!(errors(&msgs).is_empty(), "{msgs:?}");
}

fn assert_no_leak(tap: &Tap, what: &str) {
    if let Some(leak) = find_leak(&tap.received(), secrets()) {
        panic!("LEAK ({what}): {leak}");
    }
}

/// The last batch either gets pseudonymized rows of the classified
/// statement or is refused; never the raw values. `false` when copyguard
/// refused the classified statement itself (nothing to test with it).
/// The cycle `rows_at` runs the classified statement under the name that
/// kept its meaning: it gets its (pseudonymized) rows.
async fn run(raw: &mut Raw, batches: &[Vec<u8>], rows_at: usize, tap: &Tap, what: &str) -> bool {
    for (i, b) in batches.iter().enumerate() {
        let msgs = cycle(raw, b).await;
        eprintln!("{what} cycle {i}: errors {:?}", messages(&msgs));
        if i == 0 && !errors(&msgs).is_empty() {
            return false;
        }
        if i == rows_at {
            let rows = msgs.iter().filter(|m| m.tag == b'D').count();
            assert!(rows > 1 && errors(&msgs).is_empty(), "{what}: {msgs:?}");
        }
    }
    assert_no_leak(tap, what);
    still_usable(raw).await;
    assert_no_leak(tap, what);
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_statement_reparsed_by_a_skipped_parse_keeps_its_plan() {
    let proxy = proxy();
    let tap = Tap::start(proxy.port());
    let mut tried = 0;
    for (classified, format) in CLASSIFIED.iter().flat_map(|c| [(c, 0i16), (c, 1)]) {
        let mut raw = Raw::login_scram(tap.port, DEV, DB, PASSWORD).await;
        let what = format!("named statement {classified:?}, format {format}");
        let batches = [
            [parse("s1", classified), sync()].concat(),
            [failing(), close(b'S', "s1"), parse("s1", HARMLESS), sync()].concat(),
            [bind("p", "s1", format), execute("p"), sync()].concat(),
        ];
        if !run(&mut raw, &batches, 2, &tap, &what).await {
            continue;
        }
        tried += 1;
        // Sent all at once: copyguard decides the last batch before it
        // sees the server's error.
        let mut raw = Raw::login_scram(tap.port, DEV, DB, PASSWORD).await;
        let all = batches.concat();
        raw.send(&all).await;
        for _ in 0..3 {
            let msgs = raw.until_ready().await;
            assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{msgs:?}");
        }
        assert_no_leak(&tap, &format!("{what}, pipelined"));
        still_usable(&mut raw).await;
    }
    assert!(tried >= 4, "the classified statements are allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unnamed_statement_reparsed_by_a_skipped_parse_keeps_its_plan() {
    let proxy = proxy();
    let tap = Tap::start(proxy.port());
    let mut tried = 0;
    for (classified, format) in CLASSIFIED.iter().flat_map(|c| [(c, 0i16), (c, 1)]) {
        let mut raw = Raw::login_scram(tap.port, DEV, DB, PASSWORD).await;
        let what = format!("unnamed statement {classified:?}, format {format}");
        let batches = [
            [parse("", classified), sync()].concat(),
            [
                parse("failing", "SELECT 1/0"),
                bind("x", "failing", 0),
                execute("x"),
                parse("", HARMLESS),
                sync(),
            ]
            .concat(),
            [bind("", "", format), execute(""), sync()].concat(),
        ];
        tried += usize::from(run(&mut raw, &batches, 2, &tap, &what).await);
    }
    assert!(tried >= 4, "the classified statements are allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_portal_rebound_by_a_skipped_bind_keeps_its_plan() {
    let proxy = proxy();
    let tap = Tap::start(proxy.port());
    let mut tried = 0;
    for (classified, format) in CLASSIFIED.iter().flat_map(|c| [(c, 0i16), (c, 1)]) {
        let mut raw = Raw::login_scram(tap.port, DEV, DB, PASSWORD).await;
        let what = format!("named portal {classified:?}, format {format}");
        let begin = cycle(&mut raw, &query("BEGIN")).await;
        assert!(errors(&begin).is_empty(), "{begin:?}");
        let batches = [
            [
                parse("s1", classified),
                parse("s2", HARMLESS),
                bind("p", "s1", format),
                sync(),
            ]
            .concat(),
            query("SAVEPOINT a"),
            [failing(), close(b'P', "p"), bind("p", "s2", format), sync()].concat(),
            query("ROLLBACK TO SAVEPOINT a"),
            [execute("p"), sync()].concat(),
            query("ROLLBACK"),
        ];
        if run(&mut raw, &batches, 4, &tap, &what).await {
            tried += 1;
        } else {
            raw.query("ROLLBACK").await;
        }
    }
    assert!(tried >= 4, "the classified statements are allowed");
}
