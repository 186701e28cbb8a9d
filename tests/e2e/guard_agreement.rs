//! `serve` and `explain` decide through the same core, so they agree: a
//! corpus of statements (the leak and usage suites' statements, and the
//! session rules) is run as the guarded role through a proxy (as a simple
//! Query, and single statements as a Parse too) and through `copyguard
//! explain`, and the rule each refuses by is compared. Also:
//! a guarded login the server would lex differently is refused with a
//! FATAL that names the rule, not a bare close.

use futures_util::StreamExt;
use tokio_postgres::Client;

use crate::guard_fixture::*;
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_copyguard");

/// Statements decided by the session rules of the core rather than by
/// the policy, and strings of several statements.
pub(crate) const SESSION_RULES: &[&str] = &[
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

/// The rule of a copyguard refusal, unless it stopped a running result.
fn refusal_rule(e: &tokio_postgres::Error) -> Option<String> {
    let rest = e
        .as_db_error()?
        .message()
        .strip_prefix("copyguard: blocked by rule ")?;
    let rule = rest.split(':').next()?.to_owned();
    (!stops_a_result(&rule)).then_some(rule)
}

/// The rules copyguard refused `sql` by in a fresh guarded session: as a
/// simple Query (inside a transaction rolled back after), and, for a
/// single statement, as a Parse (the extended protocol); `None` when it
/// let the statement run (whatever the server then said).
async fn serve_verdict(port: u16, sql: &str) -> (Option<String>, Option<Option<String>>) {
    let client: Client = connect_to(port, DEV).await;
    let extended = if sql.contains(';') {
        None
    } else {
        Some(
            client
                .prepare(sql)
                .await
                .err()
                .and_then(|e| refusal_rule(&e)),
        )
    };
    client.batch_execute("BEGIN").await.expect("BEGIN");
    let simple = client
        .simple_query(sql)
        .await
        .err()
        .and_then(|e| refusal_rule(&e));
    let _ = client.batch_execute("ROLLBACK").await;
    (simple, extended)
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
    let mut corpus: Vec<&'static str> = Vec::new();
    for sql in SESSION_RULES
        .iter()
        .chain(crate::guarded_core::ATTACKS)
        .chain(crate::guarded_core::QUOTING_ERRORS)
        .chain(crate::guarded_core::ORDINARY)
        .chain(crate::guarded_leaks::ATTACKS.iter().map(|(sql, _)| sql))
    {
        if !corpus.contains(sql) {
            corpus.push(sql);
        }
    }
    // The locked policy over everything; the limited one (classified rows
    // allowed under limits, DDL allowed) over the session rules and the
    // main export paths.
    let limited_part = SESSION_RULES.len()
        + crate::guarded_core::ATTACKS.len()
        + crate::guarded_core::ORDINARY.len();
    let runs = [
        (locked_policy(), corpus.clone()),
        (
            limited_policy(5, 1000, 100_000),
            corpus[..limited_part.min(corpus.len())].to_vec(),
        ),
    ];
    let mut disagreements = Vec::new();
    let (mut refused, mut total) = (0, 0);
    for (policy, statements) in runs {
        let proxy = guarded_proxy(policy.clone());
        let port = proxy.port();
        let verdicts: Vec<_> = futures_util::stream::iter(statements)
            .map(|sql| {
                let (policy, dsn) = (policy.clone(), dsn.clone());
                async move {
                    let explained =
                        tokio::task::spawn_blocking(move || explain_verdict(&policy, &dsn, sql));
                    let served = serve_verdict(port, sql).await;
                    (sql, served, explained.await.expect("explain"))
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        for (sql, (served, extended), explained) in verdicts {
            total += 1;
            refused += usize::from(served.is_some());
            if served != explained {
                disagreements.push(format!("{sql:?}: serve {served:?}, explain {explained:?}"));
            }
            if let Some(extended) = extended.filter(|e| *e != explained) {
                disagreements.push(format!(
                    "{sql:?}: serve (Parse) {extended:?}, explain {explained:?}"
                ));
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "serve and explain disagree:\n{}",
        disagreements.join("\n")
    );
    assert!(refused > total / 2, "{refused} refusals of {total}");
    eprintln!("{total} verdicts compared, {refused} refusals, all agreed");
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
