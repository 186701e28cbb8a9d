//! A verdict applied to a result stream: the RowDescription cross-check,
//! row and byte limits and budgets, and scrubbing of side messages
//! (errors, notices, notifications). No sockets: the guarded relay calls
//! these on the frames it handles.

mod budget;
pub mod copy;
mod group;
pub mod rewrite;
mod rowcheck;
mod scrub;
mod startup;

pub use budget::RoleBudgets;
pub use group::GROUP_ROWS;
pub use rewrite::{rewrite_data_row, ColumnPlan, DataRows, PlannedColumn, RewriteError};
pub use rowcheck::check_row_description;
pub use scrub::{blank_notification, scrub_error};
pub use startup::{
    check_reported_setting, check_startup, is_lexer_setting, is_safe_client_encoding_set,
};

use crate::policy::Block;
use crate::wire::messages::{ErrorFields, Severity};

/// The hint every refusal carries: how to get data legitimately.
pub const BLOCK_HINT: &str = "Guarded roles cannot read or export classified production data. \
For realistic data, request a sanctioned anonymized dump from the security team \
(`copyguard dump request --database DB --role ROLE --reason TEXT`).";

/// The ErrorResponse a guarded client receives for a refused statement.
pub fn block_error(block: &Block) -> ErrorFields {
    ErrorFields::new(
        Severity::Error,
        "42501",
        format!(
            "copyguard: blocked by rule {}: {}",
            block.rule, block.reason
        ),
    )
    .with_hint(BLOCK_HINT)
}

/// A refusal with a rule id and a reason.
pub fn block(rule: &'static str, reason: impl Into<String>) -> Block {
    Block {
        rule,
        reason: reason.into(),
    }
}
