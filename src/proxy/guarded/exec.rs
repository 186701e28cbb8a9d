//! What the two halves of a guarded relay share: the queue of responses
//! the server owes (moved to the guarded core: [`crate::guard::Queue`]),
//! the session's counters and the transaction status.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use tokio::task::JoinHandle;

pub(super) use crate::guard::{Exec, Expect, InternalResult, Queue, Refused, RefusedStatement};

/// State both halves of a guarded relay touch. Locks are held briefly and
/// never across an await.
#[derive(Debug, Default)]
pub(super) struct SessionState {
    /// The responses the server owes.
    pub queue: Queue,
    /// Transaction status of the last ReadyForQuery.
    pub status: AtomicU8,
    /// A cancel sent after a limit was hit; the next client message waits
    /// for it so it cannot hit a later statement.
    pub pending_cancel: Mutex<Option<JoinHandle<()>>>,
    /// Classified rows relayed in this session.
    pub session_rows: AtomicU64,
    /// Statements decided in this session, refused ones included.
    pub statements: AtomicU64,
    /// Statements refused and results stopped in this session.
    pub refusals: AtomicU64,
    /// Bytes and messages the client sent.
    pub bytes_up: AtomicU64,
    pub messages_up: AtomicU64,
    /// What a session with a dump grant sent, table by table.
    pub receipt: crate::dumps::Receipt,
    /// A result was stopped inside a transaction the server still considers
    /// healthy: the client was told it failed, so the server transaction
    /// must be failed too before the next client message.
    pub abort_pending: AtomicBool,
    /// A result named a relation the session's catalog lacks: the next
    /// idle cycle probes the catalog's stamp.
    pub probe_wanted: AtomicBool,
}

impl SessionState {
    pub fn new() -> SessionState {
        let s = SessionState::default();
        s.status.store(b'I', Ordering::Relaxed);
        s
    }

    pub fn take_pending_cancel(&self) -> Option<JoinHandle<()>> {
        self.pending_cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    pub fn set_pending_cancel(&self, handle: JoinHandle<()>) {
        *self
            .pending_cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }
}
