//! Tests of the log as a whole: writing, restarting, rotating, failing
//! sinks, tampering, and literals never reaching a record.

mod durability;
mod literals;
mod tamper;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::keys::{self, ChainKey};
use super::verify::{self, Failure, Report, VerifyError, VerifyOptions};
use super::{AuditConfig, Event, SessionFields, StatementEvent, Verdict};

/// A config for a log in `dir`: sync every record, no interval anchors.
fn config(dir: &Path) -> AuditConfig {
    AuditConfig {
        anchor_interval: Duration::from_secs(3600),
        ..AuditConfig::in_dir(dir)
    }
}

fn session(id: u64, role: &str) -> Arc<SessionFields> {
    Arc::new(SessionFields {
        id,
        client_addr: "10.0.0.5:51234".parse().unwrap(),
        tls: false,
        role: role.into(),
        database: "shop".into(),
        application_name: Some("psql".into()),
        role_class: "developers".into(),
    })
}

fn blocked(session: &Arc<SessionFields>, sql: &str) -> Event {
    let mut s = StatementEvent::new(sql, Verdict::Blocked);
    s.rule = Some("table.forbidden".into());
    s.reason = Some("identity_documents may not be read".into());
    s.relations = vec!["public.identity_documents".into()];
    Event::verdict(session, s)
}

/// Writes `n` blocked verdicts of one session (`SELECT 0`, `SELECT 1`, ...)
/// to a new log of `cfg` and closes it cleanly.
fn write_verdicts(cfg: &AuditConfig, n: usize) {
    let log = super::AuditLog::open(cfg).unwrap();
    let s = session(1, "dev_alice");
    for i in 0..n {
        log.record_blocking(blocked(&s, &format!("SELECT {i}")))
            .unwrap();
    }
    log.shutdown_blocking();
}

/// Every log file of the set at `cfg.path`, newest last.
fn log_files(cfg: &AuditConfig) -> Vec<PathBuf> {
    super::review::with_rotated(&cfg.path).unwrap()
}

fn verify_with(
    cfg: &AuditConfig,
    files: &[PathBuf],
    opts: VerifyOptions,
) -> Result<Report, Failure> {
    let key = ChainKey::load(&cfg.chain_key_file).unwrap();
    let public = keys::load_public_key(&keys::public_key_beside(&cfg.chain_key_file)).unwrap();
    match verify::verify(files, &cfg.anchors, &key, &public, opts) {
        Ok(r) => Ok(r),
        Err(VerifyError::Failed(f)) => Err(f),
        Err(VerifyError::Io(e)) => panic!("{e}"),
    }
}

fn verify_all(cfg: &AuditConfig) -> Result<Report, Failure> {
    verify_with(cfg, &log_files(cfg), VerifyOptions::default())
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}
