//! Every kind of tampering is caught by verify, at the right place.

use super::*;
use crate::audit::anchor::AnchorWriter;
use crate::audit::chain::GENESIS;
use crate::audit::verify::Location;
use crate::audit::{AuditLog, Record, Sealed};

/// A cleanly closed log of 20 records: log_start, 18 verdicts, log_stop.
fn sample(dir: &Path) -> AuditConfig {
    let cfg = config(dir);
    write_verdicts(&cfg, 18);
    verify_all(&cfg).unwrap();
    cfg
}

#[track_caller]
fn fails_at(cfg: &AuditConfig, line: usize, seq: Option<u64>, words: &str) {
    let err = verify_all(cfg).unwrap_err();
    assert_eq!(
        err.location,
        Location::Log {
            path: cfg.path.clone(),
            line
        },
        "{err}"
    );
    assert_eq!(err.seq, seq, "{err}");
    assert!(err.problem.contains(words), "{err}");
}

#[test]
fn an_edited_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sample(dir.path());
    let mut lines = read_lines(&cfg.path);
    lines[6] = lines[6].replace("dev_alice", "dev_bobby");
    write_lines(&cfg.path, &lines);
    fails_at(&cfg, 7, Some(7), "modified or forged");
}

#[test]
fn a_deleted_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sample(dir.path());
    let mut lines = read_lines(&cfg.path);
    lines.remove(4);
    write_lines(&cfg.path, &lines);
    fails_at(&cfg, 5, Some(6), "record 5 was deleted");
}

#[test]
fn an_inserted_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sample(dir.path());
    let mut lines = read_lines(&cfg.path);
    lines.insert(5, "{\"seq\":6,\"note\":\"hello\"}".into());
    write_lines(&cfg.path, &lines);
    fails_at(&cfg, 6, None, "without a chain entry");

    let mut lines = read_lines(&dir.path().join("copyguard-audit.log"));
    lines.remove(5);
    let copy = lines[3].clone();
    lines.insert(5, copy);
    write_lines(&cfg.path, &lines);
    fails_at(&cfg, 6, Some(4), "out of order");
}

#[test]
fn two_lines_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sample(dir.path());
    let mut lines = read_lines(&cfg.path);
    lines.swap(8, 9);
    write_lines(&cfg.path, &lines);
    fails_at(&cfg, 9, Some(10), "seq 9 expected");
}

#[test]
fn a_truncated_tail() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sample(dir.path());
    let lines = read_lines(&cfg.path);

    write_lines(&cfg.path, &lines[..17]);
    let err = verify_all(&cfg).unwrap_err();
    assert_eq!(err.seq, Some(17), "{err}");
    assert!(err.problem.contains("truncated"), "{err}");
    assert!(err.problem.contains("covers seq 20"), "{err}");

    // Cutting the stop anchor too leaves a log without a clean end.
    let anchors = read_lines(&cfg.anchors);
    write_lines(&cfg.anchors, &anchors[..1]);
    let err = verify_all(&cfg).unwrap_err();
    assert_eq!(err.location, Location::End, "{err}");
    assert!(err.problem.contains("no clean end"), "{err}");

    // A line cut in the middle.
    write_lines(&cfg.anchors, &anchors);
    let mut text = lines.join("\n");
    text.truncate(text.len() - 10);
    std::fs::write(&cfg.path, text).unwrap();
    fails_at(&cfg, 20, None, "incomplete line");
}

#[test]
fn a_rotated_file_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AuditConfig {
        rotate_size: Some(4096),
        ..config(dir.path())
    };
    write_verdicts(&cfg, 40);
    let files = log_files(&cfg);
    assert!(files.len() >= 3);

    // Renaming files does not matter: order comes from the records.
    let (a, b) = (&files[0], &files[1]);
    let tmp = dir.path().join("tmp");
    std::fs::rename(a, &tmp).unwrap();
    std::fs::rename(b, a).unwrap();
    std::fs::rename(&tmp, b).unwrap();
    verify_all(&cfg).unwrap();
    std::fs::rename(a, &tmp).unwrap();
    std::fs::rename(b, a).unwrap();
    std::fs::rename(&tmp, b).unwrap();

    // A file replaced by a copy of another is caught.
    let original = std::fs::read(&files[1]).unwrap();
    std::fs::copy(&files[0], &files[1]).unwrap();
    let err = verify_all(&cfg).unwrap_err();
    assert!(err.problem.contains("same record"), "{err}");

    // So is a file replaced by one from another log.
    std::fs::write(&files[1], original).unwrap();
    let other = tempfile::tempdir().unwrap();
    let other_cfg = AuditConfig {
        rotate_size: Some(4096),
        ..config(other.path())
    };
    let other_log = AuditLog::open(&other_cfg).unwrap();
    let s = session(1, "dev_alice");
    for _ in 0..3 {
        other_log.record_blocking(Event::session_start(&s)).unwrap();
    }
    for i in 0..40 {
        other_log
            .record_blocking(blocked(&s, &format!("SELECT {i}")))
            .unwrap();
    }
    other_log.shutdown_blocking();
    let other_files = log_files(&other_cfg);
    std::fs::copy(&other_files[1], &files[1]).unwrap();
    let err = verify_all(&cfg).unwrap_err();
    assert!(err.problem.contains("modified or forged"), "{err}");
}

#[test]
fn forged_removed_and_reordered_anchors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sample(dir.path());
    let anchors = read_lines(&cfg.anchors);
    assert_eq!(anchors.len(), 2, "start and stop");

    let forged = anchors[1].replace("\"seq\":20", "\"seq\":19");
    write_lines(&cfg.anchors, &[anchors[0].clone(), forged]);
    let err = verify_all(&cfg).unwrap_err();
    assert!(
        matches!(err.location, Location::Anchors { line: 2, .. }),
        "{err}"
    );
    assert!(err.problem.contains("bad signature"), "{err}");

    // An anchor signed with another key.
    std::fs::remove_file(&cfg.anchors).unwrap();
    let mut w = AnchorWriter::open(
        &cfg.anchors,
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    )
    .unwrap();
    w.write(
        crate::audit::anchor::AnchorKind::Stop,
        20,
        &[0; 32],
        "x",
        std::time::SystemTime::now(),
    )
    .unwrap();
    let err = verify_all(&cfg).unwrap_err();
    assert!(err.problem.contains("bad signature"), "{err}");

    write_lines(&cfg.anchors, &[anchors[1].clone(), anchors[0].clone()]);
    let err = verify_all(&cfg).unwrap_err();
    assert!(err.problem.contains("anchor number"), "{err}");
}

#[test]
fn a_chain_rebuilt_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sample(dir.path());
    let forger = ChainKey([42; 32]);
    let mut prev = GENESIS;
    let lines: Vec<String> = read_lines(&cfg.path)
        .iter()
        .map(|l| {
            let r: Record = Sealed::parse(l).unwrap().record;
            let time = r.system_time().unwrap();
            let sealed = r.clone().seal(r.seq, time, &prev, &forger);
            prev = sealed.hash;
            sealed.line()
        })
        .collect();
    write_lines(&cfg.path, &lines);
    fails_at(&cfg, 1, Some(1), "modified or forged");
}

#[test]
fn a_chain_rebuilt_with_the_chain_key_is_caught_by_the_anchors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sample(dir.path());
    let key = ChainKey::load(&cfg.chain_key_file).unwrap();
    let mut prev = GENESIS;
    let lines: Vec<String> = read_lines(&cfg.path)
        .iter()
        .map(|l| {
            let mut r: Record = Sealed::parse(l).unwrap().record;
            if r.seq == 10 {
                r.role = Some("someone_else".into());
            }
            let time = r.system_time().unwrap();
            let sealed = r.clone().seal(r.seq, time, &prev, &key);
            prev = sealed.hash;
            sealed.line()
        })
        .collect();
    write_lines(&cfg.path, &lines);
    fails_at(&cfg, 20, Some(20), "does not match anchor #2");
}
