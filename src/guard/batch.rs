//! The messages of an extended-protocol batch as the core takes them:
//! Parse and Bind become a [`Step`] the relay carries out, so which
//! refusal the client sees (and the block log records) and what is kept
//! under which name are decided here, not in the relay.

use std::sync::Arc;

use super::{Core, Exec, Refusal, SqlText};
use crate::policy::Policy;

/// What the relay does with a Parse or a Bind.
#[derive(Debug)]
pub enum Step {
    /// Forward the message. `exec`: the decision, recorded first (when it
    /// needs a record and `new`), then stored under the message's name
    /// ([`Core::prepared`], [`Core::bound`]); `None` when nothing is
    /// stored (the server refuses or skips the message).
    Forward {
        /// The decision to store.
        exec: Option<Arc<Exec>>,
        /// The decision is new: record it.
        new: bool,
    },
    /// Replace the message by a stand-in that fails on the server.
    /// `seen`: the client gets this refusal, so it is recorded; not when
    /// the batch had already failed (the server skips the stand-in).
    Refuse {
        /// The refusal.
        refusal: Refusal,
        /// Whether the client sees it.
        seen: bool,
    },
}

impl Core {
    /// A Parse of `sql` as statement `name`. A message of a batch that
    /// already failed is skipped by the server: nothing of it runs or is
    /// recorded, and what the name stands for does not change (on the
    /// server either).
    pub fn parse(&mut self, name: &str, sql: &SqlText, policy: &Arc<Policy>) -> Step {
        let skipped = Step::Forward {
            exec: None,
            new: false,
        };
        match self.decide_parse(sql, policy) {
            Err(refusal) => {
                self.prepared(name, None);
                let seen = self.fail_batch();
                Step::Refuse { refusal, seen }
            }
            Ok(_) if self.batch_failed => skipped,
            Ok(Some(exec)) => Step::Forward {
                exec: Some(exec),
                new: true,
            },
            Ok(None) => {
                // Several statements: the server refuses the Parse.
                self.batch_failed = true;
                self.prepared(name, None);
                skipped
            }
        }
    }

    /// A Bind of prepared statement `statement` to `portal`; as
    /// [`Core::parse`] for a batch that already failed (the portal keeps
    /// what it stood for). A decision made again (the context or the
    /// policy changed) is `new`.
    pub fn bind(&mut self, portal: &str, statement: &str, policy: &Arc<Policy>) -> Step {
        match self.decide_bind(statement, policy) {
            Err(refusal) => {
                self.bound(portal, None);
                let seen = self.fail_batch();
                Step::Refuse { refusal, seen }
            }
            Ok(_) if self.batch_failed => Step::Forward {
                exec: None,
                new: false,
            },
            Ok((exec, new)) => Step::Forward {
                exec: Some(exec),
                new,
            },
        }
    }
}
