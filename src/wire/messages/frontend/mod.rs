//! Messages the client sends (frontend): one file per message or tiny family.

mod bind;
mod check;
mod execute;
mod internal;
mod parse;
mod password;
mod query;
mod target;

pub use bind::*;
pub use check::*;
pub use execute::*;
pub use internal::*;
pub use parse::*;
pub use password::*;
pub use query::*;
pub use target::*;
