//! The block log: one JSON line per event (sessions, verdicts, results,
//! policy reloads, grant use), chained with a keyed hash, checkpointed by
//! signed anchors, and readable by security reviewers and SIEMs.
//!
//! No value from a query ever reaches a record: statements enter only
//! through [`normalize()`], which replaces every literal by a placeholder.
//!
//! # Layout
//!
//! - [`event`]: what the proxy reports ([`Event`], [`StatementEvent`],
//!   [`SessionFields`], [`Verdict`]).
//! - [`mod@normalize`]: statement text with literals replaced, and its
//!   fingerprint.
//! - [`record`]: the stored record, its canonical form and its line.
//! - [`chain`]: the HMAC-SHA-256 chain and the sealed-line format.
//! - [`anchor`]: signed Ed25519 checkpoints in a separate file.
//! - [`keys`]: key files; `copyguard audit keygen`.
//! - [`options`]: [`AuditConfig`] and the file names derived from the log.
//! - [`lines`]: first, last and torn lines of a file.
//! - [`sink`]: the live file, rotation, resuming an existing log.
//! - [`writer`]: [`AuditLog`], the handle, and its group-commit writer
//!   thread.
//! - [`verify`]: checks a log set against its anchors and keys.
//! - [`review`]: filters and the reviewer's summary.
//! - [`mod@format`]: JSON lines, RFC 5424 syslog and CEF renderings.
//! - [`follow`]: reading a live log across rotation (`audit tail`).
//!
//! # Files
//!
//! For a log at `dir/NAME.log`: rotated files `dir/NAME.<seq>.log`, anchors
//! `dir/NAME.anchors`, and (by default, created on first open) keys in
//! `dir/NAME.keys/` (`chain.key`, `signing.key`, `signing.pub`).

pub mod anchor;
pub mod chain;
pub mod event;
pub mod follow;
pub mod format;
pub mod keys;
pub mod lines;
pub mod normalize;
pub mod options;
pub mod record;
pub mod review;
pub mod sink;
pub mod verify;
pub mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use event::{
    Event, EventKind, GrantInfo, SessionFields, SessionTotals, StatementEvent, Verdict,
};
pub use normalize::{normalize, Normalized};
pub use options::{AuditConfig, FlushPolicy, LogPaths};
pub use record::{EventName, Record, Sealed};
pub use writer::AuditLog;

/// What can go wrong with the block log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file could not be read or written.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file is not usable.
    #[error("audit key {}: {message}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The existing log cannot be continued.
    #[error("cannot continue the audit log: {message}")]
    Resume {
        /// Why.
        message: String,
    },
    /// The log cannot take records now; the statement must be refused.
    #[error("the audit log is unavailable ({reason})")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The log was shut down.
    #[error("the audit log is closed")]
    Closed,
}

impl AuditError {
    pub(crate) fn io(context: &'static str, path: &Path, source: std::io::Error) -> AuditError {
        AuditError::Io {
            context,
            path: path.to_owned(),
            source,
        }
    }
}
