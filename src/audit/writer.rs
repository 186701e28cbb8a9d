//! [`AuditLog`]: the handle sessions record through, and the one writer
//! thread behind it.
//!
//! Callers send an event with a reply channel. The writer takes every
//! event waiting (group commit), gives each the next `seq`, chains and
//! seals them, appends the batch with one `write` (and one `fdatasync`
//! under `flush = every`), and only then answers each caller with its seq.
//! If the batch cannot be written, every caller gets an error, the file is
//! cut back, and neither seq nor chain advance: the chain stays gap-free
//! and nothing answered `Ok` is missing. The next record retries (reopening
//! the file), so the log recovers by itself once the disk does.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ed25519_dalek::SigningKey;
use tokio::sync::oneshot;

use super::anchor::{AnchorKind, AnchorWriter};
use super::chain::{Hash, GENESIS};
use super::event::{Event, EventKind, SessionFields};
use super::keys::{self, ChainKey};
use super::normalize::normalize;
use super::options::{AuditConfig, FlushPolicy};
use super::record::{EventName, Record};
use super::sink::{FileSink, Sink};
use super::AuditError;
use crate::telemetry;

/// Most records written with one `write`.
const MAX_BATCH: usize = 512;
/// Production statement records waiting before new ones are dropped.
const MAX_PENDING_PRODUCTION: usize = 10_000;
/// Retry delay of a failed anchor.
const ANCHOR_RETRY: Duration = Duration::from_secs(1);

type Reply = oneshot::Sender<Result<u64, AuditError>>;

enum Msg {
    Record(Event, Option<Reply>),
    Production(Arc<SessionFields>, String),
    Shutdown(oneshot::Sender<()>),
}

/// Health of the log, shared with the handle.
#[derive(Debug, Default)]
struct Health {
    log_failing: AtomicBool,
    anchors_failing: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Health {
    fn set_log(&self, error: Option<String>) {
        self.log_failing.store(error.is_some(), Ordering::Relaxed);
        self.update(error);
    }

    fn set_anchors(&self, error: Option<String>) {
        self.anchors_failing
            .store(error.is_some(), Ordering::Relaxed);
        self.update(error);
    }

    fn update(&self, error: Option<String>) {
        let healthy = !self.log_failing.load(Ordering::Relaxed)
            && !self.anchors_failing.load(Ordering::Relaxed);
        telemetry::audit_healthy(healthy);
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        if error.is_some() || healthy {
            *last = error;
        }
    }
}

struct Shared {
    tx: mpsc::Sender<Msg>,
    health: Arc<Health>,
    production_statements: bool,
    pending_production: Arc<AtomicUsize>,
}

/// The block log. Cheap to clone; every clone writes to the same log.
#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("healthy", &self.healthy())
            .finish()
    }
}

impl AuditLog {
    /// Opens the log: loads (or, with `generate_keys`, creates) the keys,
    /// resumes the chain from the last record of an existing log (which
    /// must verify with the chain key and reach the last anchor), writes a
    /// `log_start` record and a `start` anchor, and starts the writer.
    /// Blocking file I/O; call it at start-up.
    pub fn open(cfg: &AuditConfig) -> Result<AuditLog, AuditError> {
        let (chain_key, signing_key) = load_keys(cfg)?;
        let (sink, resume) = FileSink::open(&cfg.path, cfg.rotate_size, cfg.rotate_interval)?;
        let mut detail = Vec::new();
        let (seq, hash) = match &resume.tail {
            None => {
                detail.push("new log".to_owned());
                (0, GENESIS)
            }
            Some(tail) => {
                if !chain_key.check(tail.canonical.as_bytes(), &tail.hash) {
                    return Err(AuditError::Resume {
                        message: format!(
                            "the last record (seq {}) of {} does not verify with the chain key {}: wrong key, or the log was altered",
                            tail.record.seq,
                            resume.tail_file.display(),
                            cfg.chain_key_file.display()
                        ),
                    });
                }
                detail.push(format!("resumed after seq {}", tail.record.seq));
                (tail.record.seq, tail.hash)
            }
        };
        let anchors = AnchorWriter::open(&cfg.anchors, signing_key)?;
        if let Some(last) = anchors.last() {
            let a = &last.anchor;
            if seq < a.seq || (seq == a.seq && hash != last.hash) {
                return Err(AuditError::Resume {
                    message: format!(
                        "the log ends at seq {seq} but anchor #{} in {} covers seq {}: records are missing (log truncated, replaced or moved); move the log and anchors aside to start a new chain",
                        a.anchor,
                        cfg.anchors.display(),
                        a.seq
                    ),
                });
            }
            if !(a.kind == AnchorKind::Stop && a.seq == seq) {
                detail.push("the previous run did not stop cleanly".to_owned());
            }
        } else if seq > 0 {
            detail.push("the anchor file was empty or missing".to_owned());
        }
        if resume.discarded > 0 {
            detail.push(format!(
                "cut {} bytes of an incomplete final line",
                resume.discarded
            ));
        }
        let writer = Writer::new(cfg, chain_key, Box::new(sink), anchors, (seq, hash));
        AuditLog::start(writer, &detail.join("; "), cfg.production_statements)
    }

    /// Writes the `log_start` record and `start` anchor, then hands the
    /// writer to its thread.
    fn start(
        mut writer: Writer,
        detail: &str,
        production_statements: bool,
    ) -> Result<AuditLog, AuditError> {
        writer.begin(detail.to_owned())?;
        let health = writer.health.clone();
        let (tx, rx) = mpsc::channel();
        let pending_production = Arc::new(AtomicUsize::new(0));
        let pending = pending_production.clone();
        std::thread::Builder::new()
            .name("copyguard-audit".into())
            .spawn(move || writer.run(rx, pending))
            .map_err(|e| AuditError::Unavailable {
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        telemetry::audit_healthy(true);
        Ok(AuditLog {
            shared: Arc::new(Shared {
                tx,
                health,
                production_statements,
                pending_production,
            }),
        })
    }

    /// Records an event. Returns its seq once it is written (and synced
    /// under `flush = every`); an error when the log cannot take it, in
    /// which case the caller must refuse what it was about to allow.
    pub async fn record(&self, event: Event) -> Result<u64, AuditError> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .tx
            .send(Msg::Record(event, Some(tx)))
            .map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// [`AuditLog::record`] for code outside an async runtime.
    pub fn record_blocking(&self, event: Event) -> Result<u64, AuditError> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .tx
            .send(Msg::Record(event, Some(tx)))
            .map_err(|_| AuditError::Closed)?;
        rx.blocking_recv().map_err(|_| AuditError::Closed)?
    }

    /// Queues an event without waiting for it (best effort: a failure is
    /// only counted).
    pub fn submit(&self, event: Event) {
        let _ = self.shared.tx.send(Msg::Record(event, None));
    }

    /// Whether fingerprints of production statements are recorded
    /// (`audit.production_statements`).
    pub fn records_production_statements(&self) -> bool {
        self.shared.production_statements
    }

    /// Queues a production session's statement when
    /// `audit.production_statements` is on: normalized by the writer, not
    /// the caller, and never waited for. Dropped (and counted) when the
    /// writer is far behind. Returns whether it was queued.
    pub fn production_statement(&self, session: &Arc<SessionFields>, sql: &str) -> bool {
        if !self.shared.production_statements {
            return false;
        }
        let pending = &self.shared.pending_production;
        if pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_PRODUCTION {
            pending.fetch_sub(1, Ordering::Relaxed);
            telemetry::audit_failure("dropped");
            return false;
        }
        let sent = self
            .shared
            .tx
            .send(Msg::Production(session.clone(), sql.to_owned()))
            .is_ok();
        if !sent {
            pending.fetch_sub(1, Ordering::Relaxed);
        }
        sent
    }

    /// Whether the log and the anchor file are being written (`/healthz`).
    pub fn healthy(&self) -> bool {
        let h = &self.shared.health;
        !h.log_failing.load(Ordering::Relaxed) && !h.anchors_failing.load(Ordering::Relaxed)
    }

    /// The latest write error while unhealthy.
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .health
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Writes a `log_stop` record and a `stop` anchor (the clean end of the
    /// log), then stops the writer. Later records fail with
    /// [`AuditError::Closed`].
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.tx.send(Msg::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// [`AuditLog::shutdown`] for code outside an async runtime.
    pub fn shutdown_blocking(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.tx.send(Msg::Shutdown(tx)).is_ok() {
            let _ = rx.blocking_recv();
        }
    }

    #[cfg(test)]
    pub(crate) fn open_with_sink(
        cfg: &AuditConfig,
        sink: Box<dyn Sink>,
    ) -> Result<AuditLog, AuditError> {
        let (chain_key, signing_key) = load_keys(cfg)?;
        let anchors = AnchorWriter::open(&cfg.anchors, signing_key)?;
        let writer = Writer::new(cfg, chain_key, sink, anchors, (0, GENESIS));
        AuditLog::start(writer, "new log", cfg.production_statements)
    }
}

fn load_keys(cfg: &AuditConfig) -> Result<(ChainKey, SigningKey), AuditError> {
    let chain_exists = cfg.chain_key_file.exists();
    let signing_exists = cfg.signing_key_file.exists();
    if cfg.generate_keys && !chain_exists && !signing_exists {
        let public = cfg.signing_key_file.with_file_name(keys::PUBLIC_KEY_FILE);
        let public = (!public.exists()).then_some(public);
        keys::generate_files(
            &cfg.chain_key_file,
            &cfg.signing_key_file,
            public.as_deref(),
        )?;
        tracing::warn!(
            chain_key = %cfg.chain_key_file.display(),
            signing_key = %cfg.signing_key_file.display(),
            "generated new audit keys; keep them out of reach of whoever can write the log"
        );
    }
    Ok((
        ChainKey::load(&cfg.chain_key_file)?,
        keys::load_signing_key(&cfg.signing_key_file)?,
    ))
}

struct Writer {
    key: ChainKey,
    sink: Box<dyn Sink>,
    anchors: AnchorWriter,
    flush: FlushPolicy,
    anchor_interval: Duration,
    seq: u64,
    hash: Hash,
    dirty: bool,
    flush_due: Option<Instant>,
    anchor_due: Instant,
    health: Arc<Health>,
}

/// One record of a batch, with the caller to answer.
struct Pending {
    record: Record,
    reply: Option<Reply>,
}

impl Writer {
    fn new(
        cfg: &AuditConfig,
        key: ChainKey,
        sink: Box<dyn Sink>,
        anchors: AnchorWriter,
        (seq, hash): (u64, Hash),
    ) -> Writer {
        Writer {
            key,
            sink,
            anchors,
            flush: cfg.flush,
            anchor_interval: cfg.anchor_interval,
            seq,
            hash,
            dirty: false,
            flush_due: None,
            anchor_due: Instant::now() + cfg.anchor_interval,
            health: Arc::new(Health::default()),
        }
    }

    /// Writes the `log_start` record and the `start` anchor; start-up fails
    /// if either cannot be written.
    fn begin(&mut self, detail: String) -> Result<(), AuditError> {
        let mut record = Record::bare(EventName::LogStart);
        record.detail = Some(detail);
        self.write_batch(vec![record])
            .map_err(|reason| AuditError::Unavailable { reason })?;
        self.sink.sync().map_err(|e| AuditError::Unavailable {
            reason: e.to_string(),
        })?;
        self.dirty = false;
        let name = self.sink.live_name();
        self.anchors
            .write(
                AnchorKind::Start,
                self.seq,
                &self.hash,
                &name,
                SystemTime::now(),
            )
            .map_err(|e| AuditError::Unavailable {
                reason: format!("cannot write the anchor file: {e}"),
            })
    }

    fn run(mut self, rx: mpsc::Receiver<Msg>, pending_production: Arc<AtomicUsize>) {
        loop {
            let now = Instant::now();
            let deadline = match self.flush_due {
                Some(f) if self.dirty => f.min(self.anchor_due),
                _ => self.anchor_due,
            };
            let first = match rx.recv_timeout(deadline.saturating_duration_since(now)) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.sync();
                    return;
                }
            };
            let mut batch = Vec::new();
            let mut stop = None;
            let mut next = first;
            while let Some(msg) = next {
                match msg {
                    Msg::Record(event, reply) => batch.push(Pending {
                        record: Record::from_event(&event),
                        reply,
                    }),
                    Msg::Production(session, sql) => {
                        pending_production.fetch_sub(1, Ordering::Relaxed);
                        let event = Event {
                            session: Some(session),
                            kind: EventKind::Statement(normalize(&sql)),
                        };
                        batch.push(Pending {
                            record: Record::from_event(&event),
                            reply: None,
                        });
                    }
                    Msg::Shutdown(reply) => {
                        stop = Some(reply);
                        break;
                    }
                }
                next = if batch.len() < MAX_BATCH {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            if !batch.is_empty() {
                self.commit(batch);
            }
            if let Some(reply) = stop {
                self.stop();
                let _ = reply.send(());
                return;
            }
            self.timers();
        }
    }

    /// Writes a batch and answers its callers.
    fn commit(&mut self, batch: Vec<Pending>) {
        let first_seq = self.seq + 1;
        let (records, replies): (Vec<Record>, Vec<Option<Reply>>) =
            batch.into_iter().map(|p| (p.record, p.reply)).unzip();
        let labels: Vec<_> = records
            .iter()
            .map(|r| (r.event, r.verdict, r.rule.clone(), r.role_class.clone()))
            .collect();
        match self.write_batch(records) {
            Ok(()) => {
                for (i, reply) in replies.into_iter().enumerate() {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(first_seq + i as u64));
                    }
                }
                for (event, verdict, rule, class) in labels {
                    telemetry::audit_record(event.as_str());
                    if let Some(v) = verdict {
                        telemetry::audit_verdict(
                            v.as_str(),
                            rule.as_deref().unwrap_or(""),
                            class.as_deref().unwrap_or(""),
                        );
                    }
                }
            }
            Err(reason) => {
                for reply in replies.into_iter().flatten() {
                    let _ = reply.send(Err(AuditError::Unavailable {
                        reason: reason.clone(),
                    }));
                }
            }
        }
    }

    /// Seals and appends records; on success the chain advances. On
    /// failure nothing changes and the health and metrics say why.
    fn write_batch(&mut self, records: Vec<Record>) -> Result<(), String> {
        let mut buf = Vec::with_capacity(records.len() * 512);
        let (mut seq, mut hash) = (self.seq, self.hash);
        let mut first_time = None;
        for record in records {
            seq += 1;
            let now = SystemTime::now();
            first_time.get_or_insert(now);
            let sealed = record.seal(seq, now, &hash, &self.key);
            hash = sealed.hash;
            buf.extend_from_slice(sealed.line().as_bytes());
            buf.push(b'\n');
        }
        let first_time = first_time.unwrap_or_else(SystemTime::now);
        if self.sink.rotation_due(first_time, buf.len()) {
            self.rotate(first_time);
        }
        let sync = self.flush == FlushPolicy::Every;
        match self.sink.append(&buf, (self.seq + 1, first_time), sync) {
            Ok(()) => {
                self.seq = seq;
                self.hash = hash;
                if !sync && !self.dirty {
                    self.dirty = true;
                    if let FlushPolicy::Interval(every) = self.flush {
                        self.flush_due = Some(Instant::now() + every);
                    }
                }
                if self.health.log_failing.load(Ordering::Relaxed) {
                    tracing::info!("audit log writable again");
                    self.health.set_log(None);
                }
                Ok(())
            }
            Err(e) => {
                let reason = format!("cannot write the audit log: {e}");
                if !self.health.log_failing.load(Ordering::Relaxed) {
                    tracing::error!(error = %e, "audit log write failed; guarded statements are refused until it recovers");
                }
                telemetry::audit_failure("write");
                self.health.set_log(Some(reason.clone()));
                Err(reason)
            }
        }
    }

    /// Rotates the live file and anchors its last record. A failed
    /// rotation keeps writing to the current file.
    fn rotate(&mut self, now: SystemTime) {
        match self.sink.rotate() {
            Ok(name) => {
                self.dirty = false;
                self.anchor(AnchorKind::Rotate, &name, now);
            }
            Err(e) => {
                tracing::warn!(error = %e, "audit log rotation failed; the current file grows on");
                telemetry::audit_failure("rotate");
            }
        }
    }

    fn anchor(&mut self, kind: AnchorKind, file: &str, now: SystemTime) -> bool {
        match self.anchors.write(kind, self.seq, &self.hash, file, now) {
            Ok(()) => {
                if self.health.anchors_failing.load(Ordering::Relaxed) {
                    self.health.set_anchors(None);
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot write an audit anchor");
                telemetry::audit_failure("anchor");
                self.health
                    .set_anchors(Some(format!("cannot write the anchor file: {e}")));
                false
            }
        }
    }

    fn sync(&mut self) -> bool {
        if !self.dirty {
            return true;
        }
        match self.sink.sync() {
            Ok(()) => {
                self.dirty = false;
                self.flush_due = None;
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "audit log sync failed");
                telemetry::audit_failure("sync");
                self.health
                    .set_log(Some(format!("cannot sync the audit log: {e}")));
                self.flush_due = Some(Instant::now() + ANCHOR_RETRY);
                false
            }
        }
    }

    /// Periodic sync under `flush = <interval>` and periodic anchors.
    fn timers(&mut self) {
        let now = Instant::now();
        if self.dirty && self.flush_due.is_some_and(|due| due <= now) {
            self.sync();
        }
        if self.anchor_due <= now {
            let behind = self.anchors.last().is_none_or(|a| a.anchor.seq < self.seq);
            let ok = !behind || {
                let name = self.sink.live_name();
                self.sync() && self.anchor(AnchorKind::Interval, &name, SystemTime::now())
            };
            self.anchor_due = now
                + if ok {
                    self.anchor_interval
                } else {
                    ANCHOR_RETRY
                };
        }
    }

    /// Clean shutdown: a `log_stop` record, synced, and a `stop` anchor.
    fn stop(&mut self) {
        let stopped = self.write_batch(vec![Record::bare(EventName::LogStop)]);
        if stopped.is_ok() && self.sink.sync().is_ok() {
            self.dirty = false;
            let name = self.sink.live_name();
            self.anchor(AnchorKind::Stop, &name, SystemTime::now());
        } else {
            tracing::error!("the audit log could not be closed cleanly; verify will report it");
        }
    }
}
