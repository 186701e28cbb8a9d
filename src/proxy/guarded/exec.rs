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

/// What the client gets for a message copyguard refused, once the server
/// reaches its failing stand-in: an error, or a refusal recorded then
/// (a stand-in the server skips after an earlier error leaves no record).
#[derive(Debug)]
pub(super) enum Refused {
    Error(ErrorFields),
    Record(Box<super::PendingRefusal>),
}

/// A response the server owes, in request order.
#[derive(Debug)]
pub(super) enum Expect {
    /// One statement of a simple Query.
    Statement(Arc<Exec>),
    /// The ReadyForQuery that ends a simple Query or FunctionCall.
    QueryEnd,
    /// A message copyguard replaced by a deliberately failing one: the
    /// ErrorResponse it causes is replaced by this refusal.
    Refused(Refused),
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
    /// Set by the frontend after it sent a statement whose rows are counted
    /// against limits: it forwards nothing more until the backend answers
    /// here (`true`: the result was stopped and the cancel delivered), so a
    /// cancel can never hit a later statement and nothing after a stop
    /// takes effect.
    hold: Mutex<Option<oneshot::Sender<bool>>>,
    /// The server reported an error inside an extended-protocol batch
    /// whose Sync has not been queued yet: it skips every message until
    /// that Sync, so nothing sent meanwhile gets a response. Read and
    /// written under the queue's lock.
    skipping: AtomicBool,
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

    /// Queues `e`; when `limited`, also registers the frontend's wait for
    /// it, unless the server is skipping to the next Sync (then the
    /// statement never runs and there is nothing to wait for). Both happen
    /// under the queue's lock, so the backend either sees the entry with
    /// its wait or has already marked the batch as skipped.
    pub fn push_held(&self, e: Expect, limited: bool) -> Option<oneshot::Receiver<bool>> {
        let mut queue = self.lock();
        let rx = (limited && !self.skipping.load(Ordering::Relaxed)).then(|| {
            let (tx, rx) = oneshot::channel();
            *self.hold.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
            rx
        });
        queue.push_back(e);
        rx
    }

    /// Queues the entry for a Sync: the server answers it even after an
    /// error, so the batch is no longer skipped.
    pub fn push_sync(&self, e: Expect) {
        let mut queue = self.lock();
        self.skipping.store(false, Ordering::Relaxed);
        queue.push_back(e);
    }

    /// Drops the entries of the request cycle an ErrorResponse ended: the
    /// server skips the rest of a simple Query, or every extended-protocol
    /// message up to the next Sync. Ends the frontend's wait when the
    /// statement it waits for is among them (it will never run), and marks
    /// the batch skipped when its Sync is not queued yet. Returns whether a
    /// COPY IN's end was among the entries dropped.
    pub fn skip_failed_cycle(&self, queue: &mut VecDeque<Expect>) -> bool {
        let mut copy_ended = false;
        while queue.front().is_some_and(|e| !e.ends_cycle()) {
            match queue.pop_front() {
                Some(Expect::CopyEnd) => copy_ended = true,
                Some(Expect::Statement(e)) | Some(Expect::Execute(e))
                    if e.allowance.limits.is_some() =>
                {
                    self.release(false)
                }
                _ => {}
            }
        }
        if queue.is_empty() {
            self.skipping.store(true, Ordering::Relaxed);
        }
        copy_ended
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
