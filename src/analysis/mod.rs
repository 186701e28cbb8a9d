//! SQL text + catalog -> [`Facts`]: statement kind, relations read and
//! written, the lineage of every output column, functions used. Pure: no
//! I/O, no policy.
//!
//! [`analyze`] parses the text with sqlparser's PostgreSQL dialect
//! (`input`, `fallback`; `dialect` skips its typed-string attempts where
//! they cannot succeed), then walks each statement (`statement`, `dml`,
//! `ddl`) through its queries (`query`, `from`), relations and views
//! (`relations`; views' parsed definitions are kept by `definitions`) and
//! expressions (`expr`, `operands`, `operators`), resolving names the way
//! PostgreSQL does (`scope`, `names`). Whatever it does not understand is
//! an error, and guarded sessions refuse the statement. `snapshot` tells
//! from a statement's leading keyword whether it takes its transaction's
//! snapshot (when copyguard may query inside the client's transaction).

mod analyzer;
mod colname;
mod colset;
mod ddl;
mod definitions;
mod dialect;
mod dml;
mod expr;
mod facts;
mod fallback;
mod from;
mod input;
mod names;
mod operands;
mod operators;
mod query;
mod relations;
mod scope;
mod set_returning;
mod settings;
pub mod shape;
mod snapshot;
mod srf;
mod statement;
#[cfg(test)]
mod tests;

pub(crate) use expr::AGGREGATES;
pub use facts::*;
pub use input::{tokenize_bounded, CUT_MARK, LONG_TOKEN, MAX_TOKENS};
pub use snapshot::{kind_takes_snapshot, kinds_take_snapshot, takes_snapshot};

use crate::catalog::Catalog;

/// What analysis needs besides the SQL text.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The database's catalog.
    pub catalog: &'a Catalog,
    /// The session's effective search path (`current_schemas(true)`).
    pub search_path: &'a [String],
}

/// Why a statement could not be analyzed. Guarded sessions refuse every
/// statement that fails analysis.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    /// The text does not parse as PostgreSQL.
    #[error("cannot parse statement: {0}")]
    Parse(String),
    /// A relation name does not resolve.
    #[error("unknown relation {0}")]
    UnknownRelation(String),
    /// A column name does not resolve.
    #[error("unknown column {0}")]
    UnknownColumn(String),
    /// A construct copyguard does not analyze.
    #[error("unsupported construct: {0}")]
    Unsupported(String),
    /// Text too large to analyze within copyguard's memory bounds.
    #[error("statement too large to analyze: {0}")]
    TooLarge(String),
}

/// Analyzes every statement of `sql`.
///
/// Text with no statement at all (empty, only comments or semicolons)
/// yields one statement of kind [`StatementKind::Empty`]. Pure and total:
/// any input gives facts or an error, never a panic.
pub fn analyze(sql: &str, ctx: &Context<'_>) -> Result<Facts, AnalysisError> {
    let parsed = input::parse(sql)?;
    let mut analyzer = analyzer::Analyzer::new(ctx);
    let mut statements = Vec::with_capacity(parsed.len());
    for p in parsed {
        statements.push(match p {
            input::Parsed::Statement(stmt) => analyzer.statement_facts(&stmt)?,
            input::Parsed::Known(kind) => analyzer.known_facts(kind),
        });
    }
    Ok(Facts { statements })
}
