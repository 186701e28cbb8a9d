//! Policy files -> model; role classes; statement facts -> verdict.
//!
//! A policy is a directory of TOML files (format: `policies/README.md`):
//! role classes with their limits, classified columns and tables,
//! forbidden tables, function allow/deny lists, notification channels.
//! [`Policy`] is immutable; [`PolicyStore`] holds the one in force and
//! swaps it on reload. Nothing here does I/O except reading the policy
//! files.

mod allowlist;
mod build;
mod categories;
mod classes;
mod classify;
mod decide;
mod error;
mod file;
mod functions;
mod names;
mod rule;
mod store;
mod units;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::analysis::StatementFacts;
use crate::catalog::{Catalog, ColumnId, Oid};
use crate::pseudonym::{default_transform, Transform};

pub use allowlist::{builtin_allowlist, NOT_ALLOWED};
pub use categories::KNOWN_CATEGORIES;
pub use classes::DEFAULT_CLASS;
pub use classify::builtin_forbidden;
pub use decide::*;
pub use error::{PolicyError, PolicyIssue, PolicyWarning};
pub use rule::{Rule, DATA_HINT};
pub use store::PolicyStore;

/// How sessions of a role class are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassMode {
    /// Relayed unchanged.
    Production,
    /// Every statement analyzed and decided.
    Guarded,
}

/// What `COPY ... TO STDOUT` of classified columns does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyToAction {
    /// Refused.
    Block,
    /// Allowed when every classified column copied is pseudonymized for
    /// the class.
    Pseudonymize,
}

/// What happens to a value computed from a pseudonymized column by an
/// expression (`lower(email)`, `email || 'x'`, an aggregate, a whole row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DerivedAction {
    /// The statement is refused.
    Block,
    /// The computed value is pseudonymized as a whole, by the category of
    /// the column it comes from.
    Pseudonymize,
}

/// Limits and permissions of a guarded class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassLimits {
    /// Rows of classified data one statement may return (0: none at all).
    pub max_rows_per_statement: u64,
    /// Bytes of classified rows one statement may return.
    pub max_bytes_per_statement: u64,
    /// Rows of classified data one session may receive.
    pub max_rows_per_session: u64,
    /// Rows of classified data a role may receive per `window`.
    pub max_rows_per_window: u64,
    /// The sliding window of `max_rows_per_window`.
    pub window: Duration,
    /// `COPY ... TO STDOUT` of classified columns.
    pub copy_to: CopyToAction,
    /// INSERT, UPDATE, DELETE, MERGE, TRUNCATE, COPY FROM, CREATE TABLE
    /// AS, nextval/setval.
    pub allow_writes: bool,
    /// Structural DDL (tables, indexes, views...).
    pub allow_ddl: bool,
    /// Whether classified columns may appear in WHERE, JOIN, GROUP BY,
    /// ORDER BY...
    pub classified_predicates: bool,
    /// Categories whose values are never returned.
    pub block_categories: BTreeSet<String>,
    /// Categories whose values are replaced by stand-ins in flight (`*`:
    /// every category not blocked).
    pub pseudonymize: BTreeSet<String>,
    /// Values computed from pseudonymized columns.
    pub derived: DerivedAction,
}

impl ClassLimits {
    /// Whether values of `category` are pseudonymized for the class.
    pub fn pseudonymizes(&self, category: &str) -> bool {
        !self.block_categories.contains(category)
            && (self.pseudonymize.contains(category) || self.pseudonymize.contains("*"))
    }
}

impl ClassLimits {
    /// No classified output, no writes, no DDL, no classified predicates.
    pub fn strict() -> ClassLimits {
        ClassLimits {
            max_rows_per_statement: 0,
            max_bytes_per_statement: 0,
            max_rows_per_session: 0,
            max_rows_per_window: 0,
            window: Duration::from_secs(3600),
            copy_to: CopyToAction::Block,
            allow_writes: false,
            allow_ddl: false,
            classified_predicates: false,
            block_categories: BTreeSet::new(),
            pseudonymize: BTreeSet::new(),
            derived: DerivedAction::Block,
        }
    }
}

/// A role class: what a login role is, for copyguard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleClass {
    /// Class name from the policy (`default` for unmatched roles).
    pub name: String,
    /// Production or guarded.
    pub mode: ClassMode,
    /// Limits (guarded classes only; strict for production classes).
    pub limits: ClassLimits,
    /// For a session admitted with a dump grant: the grant and its scope
    /// (see [`crate::dumps::granted_class`]).
    pub dump: Option<Arc<crate::dumps::DumpScope>>,
}

impl RoleClass {
    /// The class of unmatched roles when the policy declares none.
    pub fn builtin_default() -> RoleClass {
        RoleClass {
            name: DEFAULT_CLASS.to_owned(),
            mode: ClassMode::Guarded,
            limits: ClassLimits::strict(),
            dump: None,
        }
    }
}

/// The verdict on one statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Run it, within these bounds.
    Allow(Allowance),
    /// Refuse it.
    Block(Block),
}

/// What an allowed statement may return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowance {
    /// Classified base columns in the output lineage.
    pub classified_outputs: BTreeSet<ColumnId>,
    /// Per-statement limits, set when an output derives from classified
    /// data and rows are returned now (not at PREPARE or DECLARE).
    pub limits: Option<StatementLimits>,
    /// Whether any classified column is in the outputs, predicates, stored
    /// values or written tables: side messages must be scrubbed.
    pub touches_classified: bool,
    /// Per output column (in order; empty when none is): the stand-in that
    /// replaces its values.
    pub pseudonymize: Vec<Option<OutputPseudonym>>,
}

/// How one output column is pseudonymized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputPseudonym {
    /// The category whose transform applies.
    pub category: String,
    /// The classified base column, when the output is that column itself
    /// (not a value computed from it).
    pub column: Option<ColumnId>,
    /// The stand-in written in its place.
    pub transform: Transform,
}

impl Allowance {
    /// Whether any output is pseudonymized.
    pub fn pseudonymizes(&self) -> bool {
        self.pseudonymize.iter().any(Option::is_some)
    }
}

/// Per-statement limits on classified rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatementLimits {
    /// Rows.
    pub max_rows: u64,
    /// Bytes.
    pub max_bytes: u64,
    /// Rows of classified data each row returned counts as, against these
    /// limits and the budgets: the most scans of one relation whose
    /// classified columns the outputs return
    /// ([`crate::analysis::StatementFacts::scans`]). A self-join or
    /// scalar subqueries in the select list put values of several rows of
    /// a table into one row returned; counted as one, a row limit of 20
    /// would let 20 rows carry a whole table.
    pub row_weight: u64,
}

/// A refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The rule, e.g. [`Rule::TableForbidden`] (`table.forbidden`).
    pub rule: Rule,
    /// What was refused and what to do instead; never a data value.
    pub reason: String,
}

impl Block {
    /// A refusal by `rule` with a reason (never a data value).
    pub fn new(rule: Rule, reason: impl Into<String>) -> Block {
        Block {
            rule,
            reason: reason.into(),
        }
    }
}

/// Counts for `policy check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicySummary {
    /// Classes declared in the files.
    pub classes: usize,
    /// `[columns]` entries.
    pub classified_columns: usize,
    /// `[tables]` entries.
    pub classified_tables: usize,
    /// `[forbidden]` entries.
    pub forbidden_tables: usize,
}

/// A loaded policy. Immutable; share it in an `Arc`.
#[derive(Clone, Debug)]
pub struct Policy {
    classes: classes::ClassSet,
    data: classify::Classification,
    functions: functions::FunctionRules,
    pass_channels: HashSet<String>,
    revoked_grants: Vec<String>,
    warnings: Vec<PolicyWarning>,
    version: String,
}

impl Policy {
    /// Loads and merges every `*.toml` file of `dir`.
    pub fn load_dir(dir: &Path) -> Result<(Policy, Vec<PolicyWarning>), PolicyError> {
        build::build(file::read_dir(dir)?)
    }

    /// A policy from the text of one file.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        let source = file::SourceFile::new(PathBuf::from("<policy>"), text.to_owned());
        build::build(vec![source]).map(|(policy, _)| policy)
    }

    /// The class of a login role (exact, case-sensitive name); the default
    /// class (guarded) when nothing matches.
    pub fn classify_role(&self, role: &str) -> Arc<RoleClass> {
        self.classes.classify(role)
    }

    /// The category of a column: its own, its table's, or inherited from
    /// partition or inheritance ancestors (or descendants, whose rows
    /// reading the relation returns).
    pub fn category_of(&self, catalog: &Catalog, col: ColumnId) -> Option<&str> {
        self.data.category_of(catalog, col)
    }

    /// The stand-in `col`'s values get when pseudonymized: the policy's
    /// `[transforms]` entry for it, else its category's default.
    pub fn transform_for(&self, catalog: &Catalog, col: ColumnId, category: &str) -> Transform {
        self.data
            .transform_of(catalog, col)
            .cloned()
            .unwrap_or_else(|| default_transform(category))
    }

    /// Why guarded roles may not read `rel`, if they may not.
    pub fn forbidden_reason(&self, catalog: &Catalog, rel: Oid) -> Option<String> {
        self.data.forbidden_reason(catalog, rel)
    }

    /// Decides one statement of a session of `class`.
    pub fn decide(&self, class: &RoleClass, catalog: &Catalog, facts: &StatementFacts) -> Verdict {
        decide::decide(self, class, catalog, facts)
    }

    /// Whether notifications on `channel` reach guarded sessions with
    /// their payload.
    pub fn notification_passes(&self, channel: &str) -> bool {
        self.pass_channels.contains(channel)
    }

    /// The policy's version: a digest of its files (names and texts), the
    /// same for the same files in any directory. Dump grants name the
    /// version they were approved under.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Ids of dump grants revoked by `[grants] revoked`.
    pub fn revoked_grants(&self) -> &[String] {
        &self.revoked_grants
    }

    /// Classified columns and tables and forbidden tables the database
    /// does not have (or that are views).
    pub fn warnings_against(&self, catalog: &Catalog) -> Vec<PolicyWarning> {
        self.data.warnings_against(catalog)
    }

    /// The warnings found when the policy was loaded.
    pub fn warnings(&self) -> &[PolicyWarning] {
        &self.warnings
    }

    /// The classes declared in the files, in file order.
    pub fn classes(&self) -> impl Iterator<Item = &RoleClass> {
        self.classes.declared()
    }

    /// Role names listed exactly, with their class.
    pub fn listed_roles(&self) -> impl Iterator<Item = (&str, &RoleClass)> {
        self.classes.listed_roles()
    }

    /// Counts of classes and entries.
    pub fn summary(&self) -> PolicySummary {
        let (classified_columns, classified_tables, forbidden_tables) = self.data.counts();
        PolicySummary {
            classes: self.classes.declared().count(),
            classified_columns,
            classified_tables,
            forbidden_tables,
        }
    }
}
