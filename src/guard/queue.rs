//! The responses the server owes a guarded session ([`Expect`]), in the
//! order the requests were sent, each judged by the decision it answers,
//! and what the relay does with each server message ([`Queue`]'s
//! methods). No I/O: the relay's frontend half pushes entries as it
//! forwards requests, its backend half asks the queue what to do with
//! each response and does it.
//!
//! The invariant that keeps a session from stalling: every request cycle
//! ends with an entry a ReadyForQuery answers ([`Expect::ends_cycle`]), an
//! ErrorResponse drops only the entries the server skips up to that end
//! ([`Queue::error`]), and a ReadyForQuery always reaches the client
//! unless copyguard sent the cycle itself ([`Queue::ready`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::{Exec, Journal, Refusal, SqlText};
use crate::catalog::Row;
use crate::wire::messages::ErrorFields;

/// Result sets of an internal query, or the server's error message.
pub type InternalResult = Result<Vec<Vec<Row>>, String>;

/// A refused statement, to be recorded when the server reaches its
/// failing stand-in: the refusal and the statement's text.
#[derive(Debug)]
pub struct RefusedStatement {
    /// The refusal, with the facts it was decided on.
    pub refusal: Refusal,
    /// The refused statement's text (empty when there is none), sharing
    /// a large one's frame rather than copying it.
    pub sql: SqlText,
}

/// What the client gets for a message copyguard refused, once the server
/// reaches its failing stand-in: an error, or a refusal recorded then
/// (a stand-in the server skips after an earlier error leaves no record).
#[derive(Debug)]
pub enum Refused {
    /// An error sent as it is (no record).
    Error(ErrorFields),
    /// A refusal recorded just before the client gets it.
    Record(Box<RefusedStatement>),
}

/// A response the server owes, in request order.
#[derive(Debug)]
pub enum Expect {
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
        /// The statement or portal described, when copyguard knows it.
        target: Option<Arc<Exec>>,
        /// Copyguard asked for it: the client does not see it.
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
        /// Where the results go.
        reply: oneshot::Sender<InternalResult>,
        /// The result sets so far.
        sets: Vec<Vec<Row>>,
        /// The server's error, if it failed.
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

    /// An internal query's entry, and the receiver of its results.
    pub fn internal() -> (Expect, oneshot::Receiver<InternalResult>) {
        let (reply, rx) = oneshot::channel();
        let e = Expect::Internal {
            reply,
            sets: Vec::new(),
            error: None,
        };
        (e, rx)
    }
}

/// A server message no entry of the queue expects: the session cannot
/// tell what it answers and ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unexpected;

/// What to do with an ErrorResponse ([`Queue::error`]).
#[derive(Debug)]
pub struct OnError {
    /// The refusal that replaces the server's error (the message failed
    /// because copyguard replaced it); `None`: relay the server's error.
    pub replacement: Option<Refused>,
    /// The server's error is relayed scrubbed (its statement touched
    /// classified data).
    pub scrub: bool,
    /// A COPY IN's end was among the entries the server skips.
    pub copy_ended: bool,
}

/// What to do with a ReadyForQuery ([`Queue::ready`]).
#[derive(Debug)]
pub enum OnReady {
    /// Relay it to the client.
    Relay,
    /// It ended copyguard's own query: hand over the result, relay
    /// nothing.
    Internal(oneshot::Sender<InternalResult>, InternalResult),
}

/// What to do with a RowDescription ([`Queue::row_description`]).
#[derive(Debug)]
pub struct OnDescription {
    /// The statement or portal it describes, to be checked.
    pub target: Option<Arc<Exec>>,
    /// Copyguard asked for it: the client does not see it.
    pub hidden: bool,
    /// It answered a Describe (not a statement of a simple Query).
    pub described: bool,
}

/// The queue of responses the server owes, shared by both halves of a
/// guarded relay, and the frontend's wait for a limited statement. Locks
/// are held briefly and never across an await.
#[derive(Debug, Default)]
pub struct Queue {
    queue: Mutex<VecDeque<Expect>>,
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
    /// How many entries were ever queued: the next entry's number (the
    /// front's is this minus the queue's length). Written under the
    /// queue's lock.
    pushed: AtomicU64,
    /// The core's changes to names, tied to the entries they answer.
    journal: Arc<Journal>,
}

impl Queue {
    /// Queues a response the server owes.
    pub fn push(&self, e: Expect) {
        let mut queue = self.lock();
        self.enqueue(&mut queue, e);
    }

    /// The journal the session's core notes its changes to names in
    /// ([`super::Core::with_journal`]).
    pub fn journal(&self) -> Arc<Journal> {
        self.journal.clone()
    }

    /// Queues `e` (the lock held), with the core's changes it answers.
    fn enqueue(&self, queue: &mut VecDeque<Expect>, e: Expect) {
        let id = self.pushed.fetch_add(1, Ordering::Relaxed);
        let oldest = id - queue.len() as u64;
        let skipped = self.skipping.load(Ordering::Relaxed);
        self.journal.attach(id, &e, skipped, oldest);
        queue.push_back(e);
    }

    /// The queue itself, locked.
    pub fn lock(&self) -> MutexGuard<'_, VecDeque<Expect>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
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
        self.enqueue(&mut queue, e);
        rx
    }

    /// Queues the entry for a Sync: the server answers it even after an
    /// error, so the batch is no longer skipped.
    pub fn push_sync(&self, e: Expect) {
        let mut queue = self.lock();
        self.skipping.store(false, Ordering::Relaxed);
        self.enqueue(&mut queue, e);
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

    /// The statement whose results come now (a simple Query's statement
    /// or an Execute).
    pub fn head_exec(&self) -> Option<Arc<Exec>> {
        match self.lock().front() {
            Some(Expect::Statement(e)) | Some(Expect::Execute(e)) => Some(e.clone()),
            _ => None,
        }
    }

    /// Whether what comes now answers copyguard's own query.
    pub fn head_is_internal(&self) -> bool {
        matches!(self.lock().front(), Some(Expect::Internal { .. }))
    }

    /// Whether a CopyInResponse now answers an Execute (extended
    /// protocol: the client's Syncs until it ends the copy get no answer).
    pub fn copy_in_is_extended(&self) -> bool {
        matches!(self.lock().front(), Some(Expect::Execute(_)))
    }

    /// A ParseComplete, BindComplete or CloseComplete: the entry it
    /// answers (`expected`) is done.
    pub fn complete(&self, expected: impl Fn(&Expect) -> bool) -> Result<(), Unexpected> {
        let mut queue = self.lock();
        match queue.front() {
            Some(e) if expected(e) => {
                queue.pop_front();
                Ok(())
            }
            _ => Err(Unexpected),
        }
    }

    /// A ParameterDescription: whether it is hidden from the client.
    pub fn parameter_description(&self) -> Result<bool, Unexpected> {
        match self.lock().front() {
            Some(Expect::Describe { hidden, .. }) => Ok(*hidden),
            _ => Err(Unexpected),
        }
    }

    /// A RowDescription: what it describes (a Describe's entry is done).
    pub fn row_description(&self) -> Result<OnDescription, Unexpected> {
        let mut queue = self.lock();
        match queue.front() {
            Some(Expect::Statement(e)) => Ok(OnDescription {
                target: Some(e.clone()),
                hidden: false,
                described: false,
            }),
            Some(Expect::Describe { .. }) => match queue.pop_front() {
                Some(Expect::Describe { target, hidden }) => Ok(OnDescription {
                    target,
                    hidden,
                    described: true,
                }),
                _ => Err(Unexpected),
            },
            _ => Err(Unexpected),
        }
    }

    /// A NoData: the Describe it answers is done; what it described and
    /// whether it is hidden from the client.
    pub fn no_data(&self) -> Result<(Option<Arc<Exec>>, bool), Unexpected> {
        match self.lock().pop_front() {
            Some(Expect::Describe { target, hidden }) => Ok((target, hidden)),
            _ => Err(Unexpected),
        }
    }

    /// A CommandComplete, EmptyQueryResponse or PortalSuspended: the
    /// statement it ends (the frontend's wait for it is over).
    pub fn completion(&self) -> Result<Arc<Exec>, Unexpected> {
        match self.lock().pop_front() {
            Some(Expect::Statement(e)) | Some(Expect::Execute(e)) => {
                if e.allowance.limits.is_some() {
                    self.release(false);
                }
                Ok(e)
            }
            _ => Err(Unexpected),
        }
    }

    /// An ErrorResponse: the refusal that replaces it when copyguard made
    /// the message fail, whether the server's own error is scrubbed, and
    /// the entries the server now skips dropped.
    pub fn error(&self) -> OnError {
        let mut queue = self.lock();
        let pushed = self.pushed.load(Ordering::Relaxed);
        let failed = pushed - queue.len() as u64;
        let replacement = match queue.front() {
            Some(Expect::Refused(_)) => match queue.pop_front() {
                Some(Expect::Refused(r)) => Some(r),
                _ => None,
            },
            _ => None,
        };
        // At a cycle's end (after a query string's last statement, at a
        // Sync) only the implicit transaction's commit can fail: deferred
        // triggers and constraints of its writes, whose rows its error can
        // quote.
        let scrub = matches!(
            queue.front(),
            Some(Expect::Statement(e)) | Some(Expect::Execute(e)) if e.scrub
        ) || matches!(queue.front(), Some(Expect::QueryEnd | Expect::Sync));
        let copy_ended = self.skip_failed_cycle(&mut queue);
        self.journal.failed(failed, pushed - queue.len() as u64);
        OnError {
            replacement,
            scrub,
            copy_ended,
        }
    }

    /// A ReadyForQuery: the cycle it ends is done, with whatever the
    /// server skipped before it. `copy_in` (the server is in COPY IN for an
    /// Execute) is cleared when the copy's end is passed; while it is set,
    /// a Sync sent inside the copy is not what the ReadyForQuery answers.
    pub fn ready(&self, copy_in: &mut bool) -> Result<OnReady, Unexpected> {
        let mut queue = self.lock();
        while let Some(e) = queue.pop_front() {
            match e {
                Expect::CopyEnd => *copy_in = false,
                Expect::SyncInCopy if *copy_in => {}
                Expect::Internal { reply, sets, error } => {
                    let result = match error {
                        Some(e) => Err(e),
                        None => Ok(sets),
                    };
                    return Ok(OnReady::Internal(reply, result));
                }
                e if e.ends_cycle() => return Ok(OnReady::Relay),
                _ => {}
            }
        }
        Err(Unexpected)
    }
}
