//! The guarded-session core, sans I/O: the decision every guarded
//! statement gets ([`Core`]: name-resolution context, prepared statements,
//! portals and cursors, and one ordered decision function), and what a
//! decision carries to the result checks ([`Exec`]), and the queue of
//! responses the server owes, which tells the relay what to do with each
//! server message ([`Queue`]). `serve`'s guarded
//! relay and `explain` call the same [`Core`], so they cannot disagree.
//! Touches no socket.

mod batch;
mod cache;
mod decide;
mod exec;
mod journal;
mod queue;
mod refusal;
mod text;

#[cfg(test)]
mod tests;

pub use batch::Step;
pub(crate) use cache::cacheable;
pub use decide::{changes_context, Core};
pub use exec::Exec;
pub use journal::{Change, Journal, Names};
pub use queue::{
    Expect, InternalResult, OnDescription, OnError, OnReady, Queue, Refused, RefusedStatement,
    Unexpected,
};
pub use refusal::{relation_names, Refusal, RefusedFacts};
pub use text::SqlText;

/// A map by client-chosen name (prepared statements, portals, cursors,
/// cached statement shapes), hashed with foldhash's seeded quality hasher:
/// several lookups per guarded message, at a fraction of SipHash's cost on
/// short keys.
pub type NameMap<V> = std::collections::HashMap<String, V, foldhash::quality::RandomState>;
