//! What each request changed in the session's names (prepared statements,
//! portals, cursors), kept until the server has answered it: when the
//! server fails a message, it skips the rest of its cycle (up to Sync, or
//! the rest of a simple Query), so the failed and skipped messages'
//! changes are undone in the core too, and the names copyguard decides on
//! stay the server's. Shared by the [`Core`](super::Core), which notes
//! changes, and the [`Queue`](super::Queue), which ties them to the
//! response the server owes and hands back the ones to undo.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Core, Exec, Expect, NameMap};

/// Which of the session's names a change is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Names {
    /// Prepared statements.
    Statements,
    /// Protocol portals.
    Portals,
    /// SQL cursors.
    Cursors,
}

/// One name changed: what it stood for before and after.
#[derive(Debug)]
pub struct Change {
    /// The names changed.
    pub names: Names,
    /// The name.
    pub name: String,
    /// What it stood for before (`None`: unknown).
    pub prev: Option<Arc<Exec>>,
    /// What it stands for now (`None`: forgotten).
    pub new: Option<Arc<Exec>>,
    /// The statement whose execution made the change (a SQL `PREPARE`,
    /// `DEALLOCATE`, `DECLARE`, `CLOSE`), or `None` for a Parse, Bind or
    /// Close message.
    pub cause: Option<Arc<Exec>>,
}

impl Change {
    /// Whether this change belongs to the response `e`. A message
    /// replaced by a failing stand-in takes every change made while it
    /// was decided (a simple Query whose record failed after its
    /// statements were applied).
    fn belongs_to(&self, e: &Expect) -> bool {
        match (e, &self.cause) {
            (Expect::Refused(_), _) => true,
            (Expect::Statement(x) | Expect::Execute(x), Some(c)) => Arc::ptr_eq(x, c),
            (Expect::Parse | Expect::Bind | Expect::Close, None) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Noted by the core, not yet tied to a response.
    pending: Vec<Change>,
    /// Tied to the response with that number (see [`Journal::attach`]).
    attached: VecDeque<(u64, Change)>,
    /// To undo, latest first: the server failed or skipped them.
    undo: Vec<Change>,
}

/// The changes of requests the server has not answered yet.
///
/// Most messages change no name and find nothing to undo, so a count and
/// a flag, written under the lock, let them pass without taking it:
/// `pending` only changes on the relay's frontend half (which alone
/// notes, truncates and attaches), so that half reads it exactly; `undo`
/// is set with the changes to undo and cleared as they are taken.
#[derive(Debug, Default)]
pub struct Journal {
    inner: Mutex<Inner>,
    /// `inner.pending.len()`.
    pending: AtomicUsize,
    /// `inner.undo` is not empty.
    undo: AtomicBool,
}

impl Journal {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a change the core made.
    pub fn note(&self, change: Change) {
        let mut inner = self.lock();
        inner.pending.push(change);
        self.pending.store(inner.pending.len(), Ordering::Relaxed);
    }

    /// How many changes are noted and not yet tied to a response.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Forgets the changes noted after the first `len` (the core reverted
    /// them itself).
    pub fn truncate(&self, len: usize) {
        let mut inner = self.lock();
        inner.pending.truncate(len);
        self.pending.store(inner.pending.len(), Ordering::Relaxed);
    }

    /// Ties the pending changes that belong to `e`, response number `id`,
    /// to it; undone at once when the server skips it (`skipped`).
    /// Responses before `oldest` are answered: their changes stand (they
    /// are dropped here, or by [`Journal::failed`], which never undoes
    /// them).
    pub(super) fn attach(&self, id: u64, e: &Expect, skipped: bool, oldest: u64) {
        if self.pending() == 0 {
            return;
        }
        let mut inner = self.lock();
        while inner.attached.front().is_some_and(|(i, _)| *i < oldest) {
            inner.attached.pop_front();
        }
        // In place, in order (no allocation per response: a Bind of a
        // prepared statement leaves a change at every execution).
        let mut i = 0;
        while i < inner.pending.len() {
            if !inner.pending[i].belongs_to(e) {
                i += 1;
                continue;
            }
            let c = inner.pending.remove(i);
            if skipped {
                poison(&c);
                inner.undo.insert(0, c);
                self.undo.store(true, Ordering::Release);
            } else {
                inner.attached.push_back((id, c));
            }
        }
        self.pending.store(inner.pending.len(), Ordering::Relaxed);
    }

    /// The server failed response `from` and skips those up to `to`
    /// (exclusive): their changes are to be undone.
    pub(super) fn failed(&self, from: u64, to: u64) {
        let mut inner = self.lock();
        let mut kept = VecDeque::with_capacity(inner.attached.len());
        let mut undone = Vec::new();
        for (id, c) in inner.attached.drain(..) {
            if (from..to).contains(&id) {
                poison(&c);
                undone.push(c);
            } else if id >= from {
                kept.push_back((id, c));
            }
        }
        inner.attached = kept;
        let earlier = std::mem::take(&mut inner.undo);
        inner.undo = undone.into_iter().rev().chain(earlier).collect();
        self.undo.store(!inner.undo.is_empty(), Ordering::Release);
    }

    /// Whether there are changes to undo (one atomic load).
    #[inline]
    pub fn undo_due(&self) -> bool {
        self.undo.load(Ordering::Acquire)
    }

    /// The changes to undo, latest first.
    pub fn take_undo(&self) -> Vec<Change> {
        if !self.undo_due() {
            return Vec::new();
        }
        let mut inner = self.lock();
        self.undo.store(false, Ordering::Relaxed);
        std::mem::take(&mut inner.undo)
    }
}

/// What a failed or skipped message defined never exists on the server:
/// rows of anything derived from it are never relayed.
fn poison(c: &Change) {
    if let Some(new) = &c.new {
        new.poison();
    }
}

impl Core {
    /// Notes this session's changes to names in `journal` (the relay's
    /// [`Queue::journal`](super::Queue::journal)), so the ones the server
    /// fails or skips are undone ([`Core::settle`]).
    pub fn with_journal(mut self, journal: Arc<Journal>) -> Core {
        self.journal = Some(journal);
        self
    }

    /// The map of `names`.
    fn names(&mut self, names: Names) -> &mut NameMap<Arc<Exec>> {
        match names {
            Names::Statements => &mut self.statements,
            Names::Portals => &mut self.portals,
            Names::Cursors => &mut self.cursors,
        }
    }

    /// Makes `name` stand for `new` (`None`: forgets it), noting the
    /// change; `cause` is the statement that made it, if any.
    pub(super) fn set(
        &mut self,
        names: Names,
        name: &str,
        new: Option<Arc<Exec>>,
        cause: Option<&Arc<Exec>>,
    ) {
        let map = self.names(names);
        // A known name keeps its key: the change's copy is the one
        // allocation.
        let prev = match &new {
            Some(e) => match map.get_mut(name) {
                Some(now) => Some(std::mem::replace(now, e.clone())),
                None => map.insert(name.to_owned(), e.clone()),
            },
            None => map.remove(name),
        };
        if let Some(journal) = &self.journal {
            journal.note(Change {
                names,
                name: name.to_owned(),
                prev,
                new,
                cause: cause.cloned(),
            });
        }
    }

    /// Forgets `name` of `names` if it stands for anything (noting no
    /// change otherwise).
    pub(super) fn forget(&mut self, names: Names, name: &str, cause: Option<&Arc<Exec>>) {
        if self.names(names).contains_key(name) {
            self.set(names, name, None, cause);
        }
    }

    /// Forgets every name of `names` (SQL `DEALLOCATE ALL`, `CLOSE ALL`
    /// run by `cause`).
    pub(super) fn clear(&mut self, names: Names, cause: &Arc<Exec>) {
        let all: Vec<String> = self.names(names).keys().cloned().collect();
        for name in all {
            self.set(names, &name, None, Some(cause));
        }
    }

    /// Forgets the changes noted since the journal held `noted` (the
    /// core put the names back itself).
    pub(super) fn forget_noted(&self, noted: Option<usize>) {
        if let (Some(journal), Some(len)) = (&self.journal, noted) {
            journal.truncate(len);
        }
    }

    /// A Close message of statement (`kind` `S`) or portal `name` (which
    /// may be a SQL cursor: one namespace on the server).
    pub fn close(&mut self, kind: u8, name: &str) {
        if kind == b'S' {
            self.set(Names::Statements, name, None, None);
            return;
        }
        self.forget(Names::Cursors, name, None);
        self.set(Names::Portals, name, None, None);
    }

    /// Undoes the changes of messages the server failed or skipped, latest
    /// first, so names stand for what they stand for on the server. A
    /// name changed again since (by a message sent before the failure was
    /// known) is forgotten instead: what it stands for on the server
    /// cannot be told, so using it is refused (`statement.unknown`,
    /// `portal.unknown`, `cursor.unknown`) until it is defined again.
    /// Runs before every client message: with nothing to undo it is one
    /// atomic load.
    #[inline]
    pub fn settle(&mut self) {
        if self.journal.as_ref().is_some_and(|j| j.undo_due()) {
            self.undo_failed();
        }
    }

    /// [`Core::settle`] with changes to undo.
    #[cold]
    fn undo_failed(&mut self) {
        let undo = match &self.journal {
            Some(journal) => journal.take_undo(),
            None => return,
        };
        // A name whose latest undone change is not what it stands for now
        // was changed again since.
        let mut seen = HashSet::new();
        let mut changed_since = HashSet::new();
        for c in &undo {
            if !seen.insert((c.names, c.name.as_str())) {
                continue;
            }
            let unchanged = match (self.names(c.names).get(&c.name), &c.new) {
                (Some(now), Some(new)) => Arc::ptr_eq(now, new),
                (None, None) => true,
                _ => false,
            };
            if !unchanged {
                changed_since.insert((c.names, c.name.clone()));
            }
        }
        for c in undo {
            let contested = changed_since.contains(&(c.names, c.name.clone()));
            let map = self.names(c.names);
            let back = c.prev.filter(|p| !contested && !p.is_poisoned());
            match back {
                Some(prev) => map.insert(c.name, prev),
                None => map.remove(&c.name),
            };
        }
    }
}
