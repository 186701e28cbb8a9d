//! What the two halves of a guarded relay share: the queue of responses
//! the server owes ([`Expect`]), in the order the requests were sent, each
//! judged by the decision it answers ([`Exec`], from the guarded core).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::catalog::Row;
pub(super) use crate::guard::Exec;
use crate::wire::messages::ErrorFields;

/// Result sets of an internal query, or the server's error message.
pub(super) type InternalResult = Result<Vec<Vec<Row>>, String>;

/// A response the server owes, in request order.
#[derive(Debug)]
pub(super) enum Expect {
    /// One statement of a simple Query.
    Statement(Arc<Exec>),
    /// The ReadyForQuery that ends a simple Query or FunctionCall.
    QueryEnd,
    /// A message copyguard replaced by a deliberately failing one: the
    /// ErrorResponse it causes is replaced by this refusal.
    Refused(ErrorFields),
    /// ParseComplete.
    Parse,
    /// BindComplete.
    Bind,
    /// CloseComplete.
    Close,
    /// A description (ParameterDescription and RowDescription / NoData).
    /// `hidden` when copyguard asked for it itself.
    Describe {
        target: Option<Arc<Exec>>,
        hidden: bool,
    },
    /// The rows and completion of an Execute.
    Execute(Arc<Exec>),
    /// The ReadyForQuery that answers a Sync.
    Sync,
    /// A Sync sent after an Execute of COPY FROM STDIN and before its
    /// CopyDone/CopyFail: the server ignores it if it entered COPY IN
    /// mode, and answers it if the COPY failed first.
    SyncInCopy,
    /// The client ended a COPY IN of the extended protocol (CopyDone or
    /// CopyFail): no response; closes the span of [`Expect::SyncInCopy`].
    CopyEnd,
    /// A query copyguard runs for itself; its results go to the sender.
    Internal {
        reply: oneshot::Sender<InternalResult>,
        sets: Vec<Vec<Row>>,
        error: Option<String>,
    },
}

impl Expect {
    /// Whether a ReadyForQuery answers this entry.
    pub fn ends_cycle(&self) -> bool {
        matches!(
            self,
            Expect::QueryEnd | Expect::Sync | Expect::SyncInCopy | Expect::Internal { .. }
        )
    }
}

/// State both halves of a guarded relay touch. Locks are held briefly and
/// never across an await.
#[derive(Debug, Default)]
pub(super) struct SessionState {
    queue: Mutex<VecDeque<Expect>>,
    /// Transaction status of the last ReadyForQuery.
    pub status: AtomicU8,
    /// A cancel sent after a limit was hit; the next client message waits
    /// for it so it cannot hit a later statement.
    pub pending_cancel: Mutex<Option<JoinHandle<()>>>,
    /// Classified rows relayed in this session.
    pub session_rows: AtomicU64,
    /// Bytes of classified rows relayed in this session.
    pub session_bytes: AtomicU64,
    /// Statements decided in this session.
    pub statements: AtomicU64,
    /// A result was stopped inside a transaction the server still considers
    /// healthy: the client was told it failed, so the server transaction
    /// must be failed too before the next client message.
    pub abort_pending: AtomicBool,
    /// Set by the frontend after it sent a statement whose rows are counted
    /// against limits: it forwards nothing more until the backend answers
    /// here (`true`: the result was stopped and the cancel delivered), so a
    /// cancel can never hit a later statement and nothing after a stop
    /// takes effect.
    hold: Mutex<Option<oneshot::Sender<bool>>>,
}

impl SessionState {
    pub fn new() -> SessionState {
        let s = SessionState::default();
        s.status.store(b'I', Ordering::Relaxed);
        s
    }

    pub fn push(&self, e: Expect) {
        self.lock().push_back(e);
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Expect>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn take_pending_cancel(&self) -> Option<JoinHandle<()>> {
        self.pending_cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Registers the frontend's wait for the limited statement just sent.
    pub fn hold(&self) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        *self.hold.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    /// Ends the frontend's wait, if any.
    pub fn release(&self, stopped: bool) {
        if let Some(tx) = self.hold.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(stopped);
        }
    }

    pub fn set_pending_cancel(&self, handle: JoinHandle<()>) {
        *self
            .pending_cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }
}
