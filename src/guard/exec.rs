//! A statement, portal or cursor as decided ([`Exec`]): the facts, the
//! allowance and the policy, catalog and class the decision was made
//! with, and the meter its results are counted and checked with.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::analysis::StatementFacts;
use crate::catalog::Catalog;
use crate::enforce::{self, ColumnPlan, PlannedColumn};
use crate::policy::{Allowance, Block, Policy, RoleClass, Rule};
use crate::pseudonym::{ColumnType, Format};
use crate::wire::messages::FieldDescription;

use super::SqlText;

/// A statement, portal or cursor as analyzed and decided, with the
/// counters its results are checked against.
#[derive(Debug)]
pub struct Exec {
    pub facts: Arc<StatementFacts>,
    pub allowance: Allowance,
    /// Errors and notices of this statement must be scrubbed.
    pub scrub: bool,
    /// The policy and catalog the decision was made with; the result
    /// checks use the same.
    pub policy: Arc<Policy>,
    pub catalog: Arc<Catalog>,
    /// The role class the decision was made for (its budgets apply).
    pub class: Arc<RoleClass>,
    /// Where a row description may already have been checked (a portal's
    /// statement).
    pub described_by: Option<Arc<Exec>>,
    /// Where rows are counted when not here (a FETCH's cursor).
    pub counted_by: Option<Arc<Exec>>,
    /// The statement's text when it can be analyzed again on its own (a
    /// Parse, or a PREPARE sent alone): PostgreSQL re-plans prepared
    /// statements when the search path or the tables change, so must
    /// copyguard.
    pub sql: Option<SqlText>,
    /// The session's name-resolution context (search path and catalog)
    /// the decision was made in; see [`Core`](super::Core).
    pub context: u64,
    /// The session's search path version the decision was made with.
    pub path_version: u64,
    /// Result format codes the client asked for at Bind (portals).
    pub result_formats: Vec<i16>,
    /// The result's fields, kept when outputs are pseudonymized.
    fields: Mutex<Option<Arc<Vec<FieldDescription>>>>,
    /// The DataRow rewrite plan, built at the first row.
    plan: OnceLock<Result<Arc<ColumnPlan>, Block>>,
    /// The client asked for a description (Describe) of this exec.
    pub describe_requested: AtomicBool,
    checked: AtomicBool,
    poisoned: AtomicBool,
    rows: AtomicU64,
    bytes: AtomicU64,
    /// Rows and bytes already on a dump session's receipt.
    receipted: Mutex<(u64, u64)>,
}

impl Exec {
    pub fn new(
        facts: Arc<StatementFacts>,
        allowance: Allowance,
        scrub: bool,
        policy: Arc<Policy>,
        catalog: Arc<Catalog>,
        class: Arc<RoleClass>,
    ) -> Exec {
        Exec {
            facts,
            allowance,
            scrub,
            policy,
            catalog,
            class,
            described_by: None,
            counted_by: None,
            sql: None,
            context: 0,
            path_version: 0,
            result_formats: Vec::new(),
            fields: Mutex::new(None),
            plan: OnceLock::new(),
            describe_requested: AtomicBool::new(false),
            checked: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            receipted: Mutex::new((0, 0)),
        }
    }

    /// Records that a row description of this exec passed the check.
    pub fn mark_checked(&self) {
        if !self.poisoned.load(Ordering::Relaxed) {
            self.checked.store(true, Ordering::Relaxed);
        }
    }

    /// Records a failed check: rows of this exec are never relayed.
    pub fn poison(&self) {
        self.poisoned.store(true, Ordering::Relaxed);
        self.checked.store(false, Ordering::Relaxed);
    }

    /// Whether rows of this exec may be relayed: its description (or its
    /// statement's) passed the check.
    pub fn rows_allowed(&self) -> bool {
        if self.is_poisoned() {
            return false;
        }
        self.checked.load(Ordering::Relaxed)
            || self.described_by.as_ref().is_some_and(|s| s.rows_allowed())
    }

    /// Whether rows of this exec, or of the statement it is a portal of,
    /// are never relayed (a failed check, or a definition the server
    /// skipped).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed)
            || self.described_by.as_ref().is_some_and(|s| s.is_poisoned())
    }

    /// Whether the client or copyguard asked for a description.
    pub fn described(&self) -> bool {
        self.describe_requested.load(Ordering::Relaxed)
            || self
                .described_by
                .as_ref()
                .is_some_and(|s| s.describe_requested.load(Ordering::Relaxed))
    }

    /// A fresh exec for another use of the same decision (a portal of a
    /// prepared statement): shares facts and allowance, counts on its own,
    /// and may rely on `self`'s checked description.
    pub fn portal_of(statement: &Arc<Exec>) -> Exec {
        let mut exec = Exec::new(
            statement.facts.clone(),
            statement.allowance.clone(),
            statement.scrub,
            statement.policy.clone(),
            statement.catalog.clone(),
            statement.class.clone(),
        );
        exec.counted_by = statement.counted_by.clone();
        exec.described_by = Some(statement.clone());
        exec.sql = statement.sql.clone();
        exec.context = statement.context;
        exec.path_version = statement.path_version;
        exec
    }

    /// Keeps the result's fields for the rewrite plan (outputs that are
    /// pseudonymized only).
    pub fn keep_fields(&self, fields: Vec<FieldDescription>) {
        if self.allowance.pseudonymizes() {
            *self.fields.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(fields));
        }
    }

    fn kept_fields(&self) -> Option<Arc<Vec<FieldDescription>>> {
        self.fields
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .or_else(|| self.described_by.as_ref().and_then(|s| s.kept_fields()))
    }

    /// How DataRows of this exec are rewritten: each pseudonymized output
    /// with its transform, the type RowDescription reported and the format
    /// the client asked for at Bind (or RowDescription's).
    pub fn row_plan(&self) -> Result<Arc<ColumnPlan>, Block> {
        self.plan
            .get_or_init(|| {
                let fields = self.kept_fields().ok_or_else(|| {
                    enforce::block(
                        Rule::PseudonymUndescribed,
                        "rows arrived before a description copyguard could plan their pseudonymization from",
                    )
                })?;
                let formats = &self.result_formats;
                let columns = fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let planned = self.allowance.pseudonymize.get(i).cloned().flatten()?;
                        let code = match formats.len() {
                            0 => f.format,
                            1 => formats[0],
                            _ => formats.get(i).copied().unwrap_or(0),
                        };
                        Some(PlannedColumn {
                            transform: planned.transform,
                            ty: ColumnType {
                                oid: f.type_oid,
                                typmod: f.typmod,
                            },
                            format: Format::from_code(code).unwrap_or(Format::Text),
                        })
                    })
                    .collect();
                Ok(Arc::new(ColumnPlan::new(columns)))
            })
            .clone()
    }

    /// Rows and bytes counted so far (on the exec that counts them).
    pub fn counted(&self) -> (u64, u64) {
        let owner = self.counted_by.as_deref().unwrap_or(self);
        (
            owner.rows.load(Ordering::Relaxed),
            owner.bytes.load(Ordering::Relaxed),
        )
    }

    /// Rows and bytes counted since the last call (a cursor's FETCHes
    /// count on the cursor), for a dump session's receipt.
    pub fn take_unreceipted(&self) -> (u64, u64) {
        let owner = self.counted_by.as_deref().unwrap_or(self);
        let (rows, bytes) = owner.counted();
        let mut done = owner.receipted.lock().unwrap_or_else(|p| p.into_inner());
        let delta = (rows - done.0.min(rows), bytes - done.1.min(bytes));
        *done = (rows, bytes);
        delta
    }

    /// Counts one row of `bytes`; returns the totals so far.
    pub fn count_row(&self, bytes: usize) -> (u64, u64) {
        self.count_rows(1, bytes)
    }

    /// Counts one row of `bytes` as `rows` rows
    /// ([`crate::policy::StatementLimits::row_weight`]); returns the
    /// totals so far.
    pub fn count_rows(&self, rows: u64, bytes: usize) -> (u64, u64) {
        let owner = self.counted_by.as_deref().unwrap_or(self);
        let rows = owner.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        let total = owner.bytes.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        (rows, total)
    }
}
