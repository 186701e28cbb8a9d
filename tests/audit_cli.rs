//! `copyguard audit ...` as a user runs it, on logs written by the library;
//! and a writer killed with SIGKILL loses no acknowledged record. No
//! PostgreSQL needed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use copyguard::audit::{
    AuditConfig, AuditLog, Event, FlushPolicy, Sealed, SessionFields, StatementEvent, Verdict,
};

fn copyguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_copyguard"))
        .args(args)
        .output()
        .expect("copyguard runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn session(role: &str) -> Arc<SessionFields> {
    Arc::new(SessionFields {
        id: 11,
        client_addr: "192.0.2.7:40000".parse().unwrap(),
        tls: true,
        role: role.into(),
        database: "shop".into(),
        application_name: None,
        role_class: "developers".into(),
    })
}

fn config(dir: &Path) -> AuditConfig {
    AuditConfig {
        anchor_interval: Duration::from_secs(3600),
        ..AuditConfig::in_dir(dir)
    }
}

/// A closed log: 2 sessions, blocked and pseudonymized statements, a grant.
fn sample(dir: &Path) -> AuditConfig {
    let cfg = config(dir);
    let log = AuditLog::open(&cfg).unwrap();
    let alice = session("dev_alice");
    let bob = session("dev_bob");
    for s in [&alice, &bob] {
        log.record_blocking(Event::session_start(s)).unwrap();
    }
    for i in 0..3 {
        let mut ev = StatementEvent::new(
            &format!("SELECT * FROM identity_documents WHERE doc_no = 'X{i}93'"),
            Verdict::Blocked,
        );
        ev.rule = Some("table.forbidden".into());
        ev.relations = vec!["public.identity_documents".into()];
        log.record_blocking(Event::verdict(&alice, ev)).unwrap();
    }
    let mut ev = StatementEvent::new("COPY users TO STDOUT", Verdict::Blocked);
    ev.rule = Some("copy.classified".into());
    ev.relations = vec!["public.users".into()];
    log.record_blocking(Event::verdict(&bob, ev)).unwrap();
    let mut ev = StatementEvent::new("SELECT email FROM users LIMIT 5", Verdict::Pseudonymized);
    ev.rows = Some(5);
    ev.pseudonymized.insert("email".into(), 5);
    log.record_blocking(Event::result(&bob, ev)).unwrap();
    log.record_blocking(Event::grant_use(&bob, "grant-2026-001", None))
        .unwrap();
    log.shutdown_blocking();
    cfg
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn keygen_writes_keys_once() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let out = copyguard(&["audit", "keygen", path(&keys)]);
    assert!(out.status.success(), "{}", text(&out));
    for f in ["chain.key", "signing.key", "signing.pub"] {
        assert!(keys.join(f).exists(), "{f}");
    }
    let out = copyguard(&["audit", "keygen", path(&keys)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not overwritten"), "{}", text(&out));
}

#[test]
fn verify_passes_a_clean_log_and_names_the_first_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sample(dir.path());
    let log = path(&cfg.path);
    let out = copyguard(&["audit", "verify", log]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).starts_with("OK: 10 records, seq 1..10"),
        "{}",
        text(&out)
    );

    let explicit = copyguard(&[
        "audit",
        "verify",
        log,
        "--anchors",
        path(&cfg.anchors),
        "--key",
        path(&cfg.chain_key_file),
        "--pubkey",
        path(&cfg.signing_key_file.with_file_name("signing.pub")),
    ]);
    assert!(explicit.status.success(), "{}", text(&explicit));

    let original = std::fs::read_to_string(&cfg.path).unwrap();
    std::fs::write(&cfg.path, original.replacen("dev_bob", "dev_eve", 1)).unwrap();
    let out = copyguard(&["audit", "verify", log]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("copyguard-audit.log:3: record seq 3"), "{msg}");
    assert!(msg.contains("modified or forged"), "{msg}");

    let lines: Vec<&str> = original.lines().collect();
    std::fs::write(&cfg.path, format!("{}\n", lines[..8].join("\n"))).unwrap();
    let out = copyguard(&["audit", "verify", log]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("truncated"), "{}", text(&out));
}

#[test]
fn review_summarizes_for_a_reviewer() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sample(dir.path());
    let log = path(&cfg.path);
    let out = copyguard(&["audit", "review", log]);
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    for want in [
        "Refused by role:",
        "dev_alice                                      3",
        "table.forbidden",
        "public.identity_documents",
        "Refused per hour (UTC):",
        "Top offenders",
        "dev_alice @ 192.0.2.7",
        "grant-2026-001",
        "SELECT * FROM identity_documents WHERE doc_no = $1",
    ] {
        assert!(report.contains(want), "{want:?} missing in\n{report}");
    }
    assert!(!report.contains("X093"), "{report}");

    let out = copyguard(&["audit", "review", log, "--json", "--role", "dev_bob"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["summary"]["refused_by_role"]["dev_bob"], 1);
    assert!(json["summary"]["refused_by_role"]
        .get("dev_alice")
        .is_none());
    assert_eq!(json["records"].as_array().unwrap().len(), 4);

    let out = copyguard(&[
        "audit",
        "review",
        log,
        "--verdict",
        "blocked",
        "--format",
        "cef",
    ]);
    let cef = String::from_utf8(out.stdout).unwrap();
    assert_eq!(cef.lines().count(), 4, "{cef}");
    assert!(cef.lines().all(|l| l.starts_with("CEF:0|copyguard|")));

    let out = copyguard(&["audit", "review", log, "--verdict", "maybe"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("unknown verdict"));
}

#[test]
fn tail_prints_and_follows_across_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sample(dir.path());
    let out = copyguard(&[
        "audit",
        "tail",
        path(&cfg.path),
        "-n",
        "3",
        "--format",
        "syslog",
        "--no-follow",
    ]);
    let lines = String::from_utf8(out.stdout).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(
        lines.lines().last().unwrap().contains(" log_stop "),
        "{lines}"
    );
    assert!(lines.starts_with("<"), "{lines}");

    let cfg = AuditConfig {
        rotate_size: Some(4096),
        ..cfg
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_copyguard"))
        .args(["audit", "tail", path(&cfg.path), "-n", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let log = AuditLog::open(&cfg).unwrap();
    let s = session("dev_alice");
    for i in 0..40 {
        log.record_blocking(Event::verdict(
            &s,
            StatementEvent::new(&format!("SELECT {i}"), Verdict::Allowed),
        ))
        .unwrap();
    }
    log.shutdown_blocking();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut seqs = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        seqs.push(Sealed::parse(&line).unwrap().record.seq);
        if seqs.len() == 42 {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(seqs, (11..53).collect::<Vec<u64>>());
    let rotated = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("copyguard-audit.0") && name.ends_with(".log")
        })
        .count();
    assert!(rotated >= 2, "the log rotated while followed");
}

/// The child side of the SIGKILL tests: writes records and reports each
/// acknowledged seq, until killed.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var("CG_AUDIT_CHILD_DIR") else {
        return;
    };
    let mut cfg = config(Path::new(&dir));
    cfg.rotate_size = Some(16 << 10);
    if std::env::var("CG_AUDIT_CHILD_FLUSH").as_deref() == Ok("5ms") {
        cfg.flush = FlushPolicy::Interval(Duration::from_millis(5));
    }
    let log = AuditLog::open(&cfg).unwrap();
    let s = session("dev_alice");
    for i in 0..1_000_000 {
        let seq = log
            .record_blocking(Event::verdict(
                &s,
                StatementEvent::new(&format!("SELECT {i}"), Verdict::Blocked),
            ))
            .unwrap();
        println!("acked {seq}");
    }
}

fn kill_mid_stream(flush: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env("CG_AUDIT_CHILD_DIR", dir.path())
        .env("CG_AUDIT_CHILD_FLUSH", flush)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = 0;
    let started = Instant::now();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while acked < 300 && started.elapsed() < Duration::from_secs(60) {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(seq) = line.trim().strip_prefix("acked ") {
            acked = seq.parse().unwrap();
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(acked >= 300, "the child acknowledged {acked} records");

    let cfg = config(dir.path());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    let mut seqs = Vec::new();
    for f in &files {
        for l in std::fs::read_to_string(f).unwrap().lines() {
            seqs.push(Sealed::parse(l).unwrap().record.seq);
        }
    }
    seqs.sort();
    assert!(
        seqs.len() as u64 >= acked && seqs.iter().copied().eq(1..=seqs.len() as u64),
        "acknowledged up to {acked}, the log holds {} records",
        seqs.len()
    );
    let args: Vec<&str> = ["audit", "verify", "--live"]
        .into_iter()
        .chain(files.iter().map(|f| path(f)))
        .collect();
    let out = copyguard(&args);
    assert!(out.status.success(), "{}", text(&out));
    let out = copyguard(
        &args[..2]
            .iter()
            .chain(&args[3..])
            .copied()
            .collect::<Vec<_>>(),
    );
    assert!(!out.status.success(), "no clean end without --live");

    let log = AuditLog::open(&cfg).unwrap();
    log.shutdown_blocking();
    let files: Vec<String> = copyguard::audit::review::with_rotated(&cfg.path)
        .unwrap()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let args: Vec<&str> = ["audit", "verify"]
        .into_iter()
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = copyguard(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("did not stop cleanly"),
        "{}",
        text(&out)
    );
}

#[test]
fn sigkill_loses_no_acknowledged_record_flush_every() {
    kill_mid_stream("every");
}

#[test]
fn sigkill_loses_no_acknowledged_record_flush_interval() {
    kill_mid_stream("5ms");
}

/// Text a client chooses (its role name here; a grant token's claimed id
/// in a red-team round) is written escaped in the readable renderings: a
/// line break in it cannot forge report lines, an escape sequence cannot
/// drive the reviewer's terminal.
#[test]
fn client_chosen_text_is_escaped_for_readers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let log = AuditLog::open(&cfg).unwrap();
    let evil = session("mallory\nDump grants:\n  grant 0000 by security_lead\u{1b}[2J");
    log.record_blocking(Event::session_start(&evil)).unwrap();
    let mut ev = StatementEvent::new("SELECT 1", Verdict::Blocked);
    ev.rule = Some("table.forbidden".into());
    log.record_blocking(Event::verdict(&evil, ev)).unwrap();
    log.shutdown_blocking();
    for args in [
        vec!["audit", "review", path(&cfg.path)],
        vec!["audit", "review", path(&cfg.path), "--format", "cef"],
        vec![
            "audit",
            "tail",
            path(&cfg.path),
            "--no-follow",
            "--format",
            "syslog",
        ],
    ] {
        let out = copyguard(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        let shown = String::from_utf8(out.stdout).unwrap();
        assert!(!shown.contains('\u{1b}'), "{args:?}: {shown}");
        assert!(
            !shown
                .lines()
                .any(|l| l.trim_start().starts_with("grant 0000")),
            "{args:?}: {shown}"
        );
        assert!(shown.contains("mallory\\"), "{args:?}: {shown}");
    }
}

#[test]
fn tail_of_a_missing_log_is_an_error_without_follow() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.log");
    let out = copyguard(&["audit", "tail", path(&missing), "-n", "3", "--no-follow"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no such file"), "{}", text(&out));
}
