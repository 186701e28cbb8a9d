//! The guarded-session core, sans I/O: the decision every guarded
//! statement gets ([`Core`]: name-resolution context, prepared statements,
//! portals and cursors, and one ordered decision function), and what a
//! decision carries to the result checks ([`Exec`]). `serve`'s guarded
//! relay and `explain` call the same [`Core`], so they cannot disagree.
//! Touches no socket.

mod cache;
mod decide;
mod exec;

#[cfg(test)]
mod tests;

pub use decide::{changes_context, Core, Refusal};
pub use exec::Exec;
