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

use crate::policy::{Block, Rule};
use crate::wire::messages::{ErrorFields, Severity};

/// The ErrorResponse a guarded client receives for a refused statement:
/// the rule's SQLSTATE, its id and the reason, and the rule's hint.
pub fn block_error(block: &Block) -> ErrorFields {
    ErrorFields::new(
        Severity::Error,
        block.rule.sqlstate(),
        format!(
            "copyguard: blocked by rule {}: {}",
            block.rule, block.reason
        ),
    )
    .with_hint(block.rule.hint())
}

/// A refusal by `rule` with a reason.
pub fn block(rule: Rule, reason: impl Into<String>) -> Block {
    Block::new(rule, reason)
}
