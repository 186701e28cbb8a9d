use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use super::*;
use crate::audit::anchor::{read_anchors, AnchorKind};
use crate::audit::sink::{FileSink, Sink};
use crate::audit::{AuditError, AuditLog, EventName, FlushPolicy, Sealed};

fn records(path: &Path) -> Vec<Sealed> {
    read_lines(path)
        .iter()
        .map(|l| Sealed::parse(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_records_get_gap_free_seqs_and_a_clean_end() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let log = AuditLog::open(&cfg).unwrap();
    let s = session(1, "dev_alice");
    let mut tasks = Vec::new();
    for i in 0..64 {
        let log = log.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            log.record(blocked(
                &s,
                &format!("SELECT * FROM identity_documents WHERE id = {i}"),
            ))
            .await
            .unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (2..66).collect::<Vec<u64>>(), "seq 1 is log_start");
    assert!(log.healthy());
    log.shutdown().await;
    assert!(matches!(
        log.record(Event::session_start(&s)).await,
        Err(AuditError::Closed)
    ));
    let recs = records(&cfg.path);
    assert_eq!(recs.len(), 66);
    assert_eq!(recs[0].record.event, EventName::LogStart);
    assert_eq!(recs[0].record.detail.as_deref(), Some("new log"));
    assert_eq!(recs[65].record.event, EventName::LogStop);
    let report = verify_all(&cfg).unwrap();
    assert_eq!((report.records, report.last_seq), (66, 66));
    assert_eq!(report.last_anchor.map(|a| a.1), Some(AnchorKind::Stop));
}

#[test]
fn the_chain_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let s = session(1, "dev_alice");
    for round in 0..3 {
        let log = AuditLog::open(&cfg).unwrap();
        for _ in 0..3 {
            log.record_blocking(Event::session_start(&s)).unwrap();
        }
        log.shutdown_blocking();
        let report = verify_all(&cfg).unwrap();
        assert_eq!(report.last_seq, 5 * (round + 1));
    }
    let recs = records(&cfg.path);
    assert_eq!(
        recs[5].record.detail.as_deref(),
        Some("resumed after seq 5")
    );
}

#[test]
fn a_crash_is_reported_then_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let s = session(1, "dev_alice");
    let log = AuditLog::open(&cfg).unwrap();
    log.record_blocking(Event::session_start(&s)).unwrap();
    drop(log);
    std::thread::sleep(Duration::from_millis(50));

    let err = verify_all(&cfg).unwrap_err();
    assert!(err.problem.contains("no clean end"), "{err}");
    let live = verify_with(
        &cfg,
        &log_files(&cfg),
        VerifyOptions {
            live: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(live.unanchored, 1);

    // A torn final line (a crash mid-write) is cut off on restart.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&cfg.path)
        .unwrap();
    let mut text = std::fs::read(&cfg.path).unwrap();
    text.extend_from_slice(b"{\"seq\":3,\"ti");
    std::fs::write(&cfg.path, text).unwrap();

    let log = AuditLog::open(&cfg).unwrap();
    log.shutdown_blocking();
    let recs = records(&cfg.path);
    let detail = recs[2].record.detail.clone().unwrap();
    assert!(detail.contains("did not stop cleanly"), "{detail}");
    assert!(detail.contains("cut 12 bytes"), "{detail}");
    let report = verify_all(&cfg).unwrap();
    assert!(
        report.notes.iter().any(|n| n.contains("restart")),
        "{:?}",
        report.notes
    );
}

#[test]
fn a_log_cut_short_of_its_anchor_or_keyed_differently_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let log = AuditLog::open(&cfg).unwrap();
    for _ in 0..3 {
        log.record_blocking(Event::session_start(&session(1, "a")))
            .unwrap();
    }
    log.shutdown_blocking();
    let lines = read_lines(&cfg.path);
    write_lines(&cfg.path, &lines[..3]);
    let err = AuditLog::open(&cfg).unwrap_err().to_string();
    assert!(err.contains("covers seq 5"), "{err}");

    write_lines(&cfg.path, &lines);
    let other = tempfile::tempdir().unwrap();
    let keys = keys::generate(other.path()).unwrap();
    let wrong = AuditConfig {
        chain_key_file: keys.chain,
        signing_key_file: keys.signing,
        generate_keys: false,
        ..cfg.clone()
    };
    let err = AuditLog::open(&wrong).unwrap_err().to_string();
    assert!(err.contains("does not verify with the chain key"), "{err}");

    // Anchors removed: the log goes on, and says so.
    std::fs::remove_file(&cfg.anchors).unwrap();
    let log = AuditLog::open(&cfg).unwrap();
    log.shutdown_blocking();
    let report = verify_all(&cfg).unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("anchor file was empty")),
        "{:?}",
        report.notes
    );
}

#[test]
fn rotation_by_size_keeps_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AuditConfig {
        rotate_size: Some(4096),
        ..config(dir.path())
    };
    write_verdicts(&cfg, 60);
    let mut files = log_files(&cfg);
    assert!(files.len() >= 4, "{files:?}");
    for f in &files {
        assert!(std::fs::metadata(f).unwrap().len() <= 4096, "{f:?}");
    }
    files.reverse();
    let report = verify_with(&cfg, &files, VerifyOptions::default()).unwrap();
    assert_eq!(report.last_seq, 62);
    assert_eq!(report.files.len(), files.len());
    let public = keys::load_public_key(&keys::public_key_beside(&cfg.chain_key_file)).unwrap();
    let anchors = read_anchors(&cfg.anchors, &public).unwrap().unwrap();
    let rotations = anchors
        .iter()
        .filter(|(_, a)| a.anchor.kind == AnchorKind::Rotate)
        .count();
    assert_eq!(rotations, files.len() - 1);

    // Without the oldest file the chain has no start...
    let newest = vec![files[0].clone()];
    let err = verify_with(&cfg, &newest, VerifyOptions::default()).unwrap_err();
    assert!(err.problem.contains("not 1"), "{err}");
    // ...unless the set is accepted from its anchored rotation point.
    let opts = VerifyOptions {
        from_anchor: true,
        ..Default::default()
    };
    verify_with(&cfg, &newest, opts).unwrap();
}

/// Rotation by time, with assertions that hold however slowly the
/// machine runs: with a 100 ms interval, any pause of 100 ms (a loaded
/// machine) between two writes rotates once more, so the number of files
/// and where each starts are not fixed. What is fixed: a record written
/// 150 ms after the previous one always starts a new file, and the log set
/// verifies after a crash between a rename and the next write.
#[test]
fn rotation_by_time_and_resume_from_a_rotated_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AuditConfig {
        rotate_interval: Some(Duration::from_millis(100)),
        ..config(dir.path())
    };
    let s = session(1, "dev_alice");
    let log = AuditLog::open(&cfg).unwrap();
    log.record_blocking(Event::session_start(&s)).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let third = log.record_blocking(Event::session_start(&s)).unwrap();
    log.shutdown_blocking();
    assert_eq!(third, 3);
    let files = log_files(&cfg);
    assert!(files.len() >= 2, "{files:?}");
    let starts: Vec<u64> = files.iter().map(|f| records(f)[0].record.seq).collect();
    assert!(
        starts.contains(&3),
        "the record written after the interval starts a new file: {starts:?}"
    );

    // A crash between renaming the live file and writing the next one.
    let live_first = records(&cfg.path)[0].record.seq;
    let rotated = cfg
        .path
        .with_file_name(format!("copyguard-audit.{live_first:012}.log"));
    std::fs::rename(&cfg.path, &rotated).unwrap();
    let log = AuditLog::open(&cfg).unwrap();
    log.shutdown_blocking();
    let report = verify_all(&cfg).unwrap();
    assert_eq!(report.last_seq, 6);
    assert!(report.files.len() > files.len(), "{:?}", report.files);
}

/// A sink that fails every write while `fail` is set, as a full disk does.
struct FullDisk {
    inner: FileSink,
    fail: Arc<AtomicBool>,
}

impl Sink for FullDisk {
    fn append(&mut self, batch: &[u8], first: (u64, SystemTime), sync: bool) -> io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.inner.append(batch, first, sync)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
    fn rotation_due(&self, now: SystemTime, incoming: usize) -> bool {
        self.inner.rotation_due(now, incoming)
    }
    fn rotate(&mut self) -> io::Result<String> {
        self.inner.rotate()
    }
    fn live_name(&self) -> String {
        self.inner.live_name()
    }
}

#[tokio::test]
async fn a_full_disk_refuses_records_then_recovers_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let fail = Arc::new(AtomicBool::new(false));
    let (inner, _) = FileSink::open(&cfg.path, None, None).unwrap();
    let sink = FullDisk {
        inner,
        fail: fail.clone(),
    };
    let log = AuditLog::open_with_sink(&cfg, Box::new(sink)).unwrap();
    let s = session(1, "dev_alice");
    assert_eq!(log.record(Event::session_start(&s)).await.unwrap(), 2);
    fail.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let err = log.record(blocked(&s, "SELECT 1")).await.unwrap_err();
        assert!(matches!(err, AuditError::Unavailable { .. }), "{err}");
        assert!(err.to_string().contains("No space left"), "{err}");
    }
    assert!(!log.healthy());
    assert!(log.last_error().unwrap().contains("No space left"));
    fail.store(false, Ordering::SeqCst);
    assert_eq!(log.record(blocked(&s, "SELECT 1")).await.unwrap(), 3);
    assert!(log.healthy());
    assert_eq!(log.last_error(), None);
    log.shutdown().await;
    let report = verify_all(&cfg).unwrap();
    assert_eq!(report.last_seq, 4);
}

#[tokio::test]
async fn an_unopenable_log_path_fails_closed_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let cfg = AuditConfig {
        path: logs.join("audit.log"),
        ..config(dir.path())
    };
    let log = AuditLog::open(&cfg).unwrap();
    let s = session(1, "dev_alice");
    log.record(Event::session_start(&s)).await.unwrap();

    // The log directory disappears: nothing can be opened there.
    std::fs::remove_dir_all(&logs).unwrap();
    let err = log.record(Event::session_start(&s)).await.unwrap_err();
    assert!(matches!(err, AuditError::Unavailable { .. }), "{err}");
    assert!(!log.healthy());

    // It comes back: the chain goes on (the lost records stay lost, and
    // verify says so).
    std::fs::create_dir(&logs).unwrap();
    assert_eq!(log.record(Event::session_start(&s)).await.unwrap(), 3);
    assert!(log.healthy());
    log.shutdown().await;
    let err = verify_all(&cfg).unwrap_err();
    assert!(err.problem.contains("starts at seq 3"), "{err}");

    // A live path that turns into /dev/full: writes fail, then recover
    // once it is a file again.
    let log = AuditLog::open(&AuditConfig {
        path: dir.path().join("b.log"),
        anchors: dir.path().join("b.anchors"),
        ..cfg.clone()
    })
    .unwrap();
    std::fs::remove_file(dir.path().join("b.log")).unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.path().join("b.log")).unwrap();
    assert!(log.record(Event::session_start(&s)).await.is_err());
    std::fs::remove_file(dir.path().join("b.log")).unwrap();
    assert!(log.record(Event::session_start(&s)).await.is_ok());
    log.shutdown().await;
}

#[test]
fn a_log_that_cannot_be_written_at_start_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::os::unix::fs::symlink("/dev/full", &path).unwrap();
    let cfg = AuditConfig {
        path,
        ..config(dir.path())
    };
    let err = AuditLog::open(&cfg).unwrap_err();
    assert!(matches!(err, AuditError::Unavailable { .. }), "{err}");
}

#[test]
fn interval_flush_and_interval_anchors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AuditConfig {
        flush: FlushPolicy::Interval(Duration::from_millis(5)),
        anchor_interval: Duration::from_millis(50),
        ..AuditConfig::in_dir(dir.path())
    };
    let log = AuditLog::open(&cfg).unwrap();
    let s = session(1, "dev_alice");
    log.record_blocking(Event::session_start(&s)).unwrap();
    // Written to the OS before the answer: readable at once.
    assert_eq!(records(&cfg.path).len(), 2);
    let public = keys::load_public_key(&keys::public_key_beside(&cfg.chain_key_file)).unwrap();
    let started = std::time::Instant::now();
    let anchors = loop {
        let anchors = read_anchors(&cfg.anchors, &public).unwrap().unwrap();
        if anchors.len() > 1 || started.elapsed() > Duration::from_secs(10) {
            break anchors;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let last = &anchors.last().unwrap().1.anchor;
    assert_eq!((last.kind, last.seq), (AnchorKind::Interval, 2));
    std::thread::sleep(Duration::from_millis(100));
    let again = read_anchors(&cfg.anchors, &public).unwrap().unwrap();
    assert_eq!(
        again.len(),
        anchors.len(),
        "no new anchor without new records"
    );
    log.shutdown_blocking();
    verify_all(&cfg).unwrap();
}

#[test]
fn production_statements_are_queued_only_when_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(1, "app_prod");
    let log = AuditLog::open(&config(dir.path())).unwrap();
    assert!(!log.production_statement(&s, "SELECT 1"));
    log.shutdown_blocking();
    let cfg = AuditConfig {
        production_statements: true,
        ..config(dir.path())
    };
    let log = AuditLog::open(&cfg).unwrap();
    assert!(log.production_statement(&s, "SELECT * FROM users WHERE email = 'x@y.z'"));
    log.shutdown_blocking();
    let recs = records(&cfg.path);
    let stmt = recs
        .iter()
        .find(|r| r.record.event == EventName::Statement)
        .unwrap();
    assert_eq!(
        stmt.record.statement.as_deref(),
        Some("SELECT * FROM users WHERE email = $1")
    );
    assert_eq!(stmt.record.role.as_deref(), Some("app_prod"));
}
