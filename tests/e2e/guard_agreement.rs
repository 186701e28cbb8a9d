//! `serve` and `explain` decide through the same core, so they agree: a
//! corpus of statements (the leak and usage suites' statements, and the
//! session rules) is run as the guarded role through a proxy and through
//! `copyguard explain`, and the rule each refuses by is compared. Also:
//! a guarded login the server would lex differently is refused with a
//! FATAL that names the rule, not a bare close.

use tokio_postgres::Client;

use crate::guard_fixture::*;
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_copyguard");

/// Statements decided by the session rules of the core rather than by
/// the policy, and strings of several statements.
const SESSION_RULES: &[&str] = &[
    "SET standard_conforming_strings = off",
    "SET client_encoding = 'SJIS'",
    "SET backslash_quote = on",
    "SELECT 1; SET search_path = app; SELECT 2",
    "SET search_path = app; SELECT count(*) FROM users",
    "SELECT email FROM users; SELECT 1",
    "SELECT id FROM users; SELECT email FROM users",
    "SELECT 1; SELECT ssn FROM users",
    "EXECUTE nothing",
    "FETCH 1 FROM nothing",
    "MOVE 1 IN nothing",
    "DECLARE c CURSOR FOR SELECT email FROM users; FETCH 2 FROM c",
    "PREPARE q AS SELECT email FROM users; EXECUTE q",
    "SELECT FROM WHERE",
    "SELECT * FROM no_such_table",
    "SELECT no_such_column FROM users",
    "CREATE TEMP TABLE t2 (a int); SELECT * FROM t2",
    "",
    ";",
];

/// Rules that stop a result while it streams: the statement was allowed
/// to run, which is what `explain` says.
fn stops_a_result(rule: &str) -> bool {
    rule.starts_with("result.")
        || rule.starts_with("limit.")
        || rule.starts_with("budget.")
        || matches!(
            rule,
            "pseudonym.copy" | "pseudonym.undescribed" | "pseudonym.unsupported"
        )
}

/// The rule copyguard refused `sql` by, in a fresh guarded session
/// (inside a transaction rolled back after); `None` when it let the
/// statement run (whatever the server then said).
async fn serve_verdict(port: u16, sql: &str) -> Option<String> {
    let client: Client = connect_to(port, DEV).await;
    client.batch_execute("BEGIN").await.expect("BEGIN");
    let rule = match client.simple_query(sql).await {
        Ok(_) => None,
        Err(e) => e.as_db_error().and_then(|db| {
            let rest = db.message().strip_prefix("copyguard: blocked by rule ")?;
            let rule = rest.split(':').next()?.to_owned();
            (!stops_a_result(&rule)).then_some(rule)
        }),
    };
    let _ = client.batch_execute("ROLLBACK").await;
    rule
}

/// The rule `copyguard explain` prints for `sql`, if it refuses it.
fn explain_verdict(policy: &std::path::Path, dsn: &str, sql: &str) -> Option<String> {
    let out = std::process::Command::new(BIN)
        .args(["explain", "--no-pseudonym-key", "--policy"])
        .arg(policy)
        .args(["--role", DEV, "--dsn", dsn, sql])
        .output()
        .expect("run explain");
    let (stdout, stderr) = text(&out);
    let rule = stdout
        .split("BLOCK by rule ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .map(str::to_owned);
    assert_eq!(
        out.status.success(),
        rule.is_none(),
        "{sql}: {stdout}{stderr}"
    );
    rule
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_explain_give_the_same_verdicts() {
    fixture();
    let db = &cluster().db;
    let dsn = format!(
        "host={} port={} user={} dbname={DB}",
        db.host(),
        db.port(),
        db.superuser()
    );
    let corpus: Vec<&str> = SESSION_RULES
        .iter()
        .copied()
        .chain(crate::guarded_core::ATTACKS.iter().copied())
        .chain(crate::guarded_core::QUOTING_ERRORS.iter().copied())
        .chain(crate::guarded_core::ORDINARY.iter().copied())
        .chain(crate::guarded_leaks::ATTACKS.iter().map(|(sql, _)| *sql))
        .collect();
    let mut disagreements = Vec::new();
    let mut refused = 0;
    for policy in [locked_policy(), limited_policy(5, 1000, 100_000)] {
        let proxy = guarded_proxy(policy.clone());
        for sql in &corpus {
            let served = serve_verdict(proxy.port(), sql).await;
            let explained = explain_verdict(&policy, &dsn, sql);
            refused += usize::from(served.is_some());
            if served != explained {
                disagreements.push(format!("{sql:?}: serve {served:?}, explain {explained:?}"));
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "serve and explain disagree:\n{}",
        disagreements.join("\n")
    );
    assert!(refused > corpus.len() / 2, "{refused} refusals");
    eprintln!(
        "{} statements x 2 policies, {refused} refused, all agreed",
        corpus.len()
    );
}

#[test]
fn refused_logins_are_told_why() {
    let proxy = guarded_proxy(locked_policy());
    for extra in [
        "client_encoding=SJIS",
        "client_encoding=BIG5",
        "client_encoding=GBK",
        "options='-c standard_conforming_strings=off'",
    ] {
        let info = conninfo(
            proxy.port(),
            DEV,
            DB,
            &format!("password={PASSWORD} {extra}"),
        );
        let out = psql(&info, "SELECT 1");
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{extra}: {stdout}");
        assert!(
            stderr.contains("FATAL") && stderr.contains("copyguard: refused by rule setting.lexer"),
            "{extra}: {stderr}"
        );
        assert!(
            !stderr.contains("closed the connection unexpectedly"),
            "{stderr}"
        );
    }
    // The production role's sessions are relayed as they are.
    let info = conninfo(
        proxy.port(),
        PROD,
        DB,
        &format!("password={PASSWORD} options='-c standard_conforming_strings=off'"),
    );
    let out = psql(&info, "SHOW standard_conforming_strings");
    assert_eq!(text(&out).0.trim(), "off", "{:?}", text(&out));
}
