//! Facts -> verdict for a guarded role class: the rules, in order, each
//! refusal with a stable rule id and a reason that names what to change
//! but never a data value.

mod outputs;

use std::collections::BTreeSet;

use super::functions::FunctionCheck;
use super::{
    Allowance, Block, ClassLimits, ClassMode, Policy, RoleClass, Rule, StatementLimits, Verdict,
};
use crate::analysis::{CopyEndpoint, DdlKind, StatementFacts, StatementKind};
use crate::catalog::{Catalog, ColumnId, Oid};

/// `SET ROLE`, `SET SESSION AUTHORIZATION` or their settings (also by
/// `set_config`).
pub const IDENTITY_CHANGE: Rule = Rule::IdentityChange;
/// `set_config` of a setting that changes how the server reads SQL text.
pub const SETTING_LEXER: Rule = Rule::SettingLexer;
/// `set_config` whose setting name is not a constant string.
pub const SETTING_DYNAMIC: Rule = Rule::SettingDynamic;
/// `set_config` with a value computed from classified columns.
pub const SETTING_CLASSIFIED: Rule = Rule::SettingClassified;
/// A `DO` block.
pub const CODE_DO_BLOCK: Rule = Rule::CodeDoBlock;
/// `CALL` of a procedure.
pub const CODE_CALL: Rule = Rule::CodeCall;
/// DDL of objects that run code (functions, triggers, extensions...).
pub const DDL_CODE: Rule = Rule::DdlCode;
/// DDL of roles, privileges, ownership.
pub const DDL_SECURITY: Rule = Rule::DdlSecurity;
/// Structural DDL for a class without `allow_ddl`.
pub const DDL_NOT_ALLOWED: Rule = Rule::DdlNotAllowed;
/// A function outside the allowlist.
pub const FUNCTION_NOT_ALLOWED: Rule = Rule::FunctionNotAllowed;
/// A forbidden table (configured or built in).
pub const TABLE_FORBIDDEN: Rule = Rule::TableForbidden;
/// `COPY` to or from a server file or program.
pub const COPY_SERVER_SIDE: Rule = Rule::CopyServerSide;
/// A write for a class without `allow_writes`.
pub const WRITE_NOT_ALLOWED: Rule = Rule::WriteNotAllowed;
/// Classified values stored into the database.
pub const COPY_IN_DB_CLASSIFIED: Rule = Rule::CopyInDbClassified;
/// An output of a category the class blocks.
pub const CATEGORY_BLOCKED: Rule = Rule::CategoryBlocked;
/// `COPY ... TO STDOUT` of classified columns.
pub const COPY_CLASSIFIED: Rule = Rule::CopyClassified;
/// A classified column in WHERE, JOIN, ORDER BY... without
/// `classified_predicates`.
pub const PREDICATE_CLASSIFIED: Rule = Rule::PredicateClassified;
/// A classified output for a class with `max_rows_per_statement = 0`.
pub const CLASSIFIED_NOT_ALLOWED: Rule = Rule::ClassifiedNotAllowed;

/// In a session admitted with a dump grant: rows of a table outside the
/// grant's scope.
pub const GRANT_OUT_OF_SCOPE: Rule = Rule::GrantOutOfScope;

/// A classified output in a statement that collects many values into one
/// row (`string_agg`, `array_agg`, `json_agg`, `ARRAY(subquery)`...): the
/// per-statement row limit would not see them.
pub const CLASSIFIED_AGGREGATED: Rule = Rule::ClassifiedAggregated;

/// A value computed from a pseudonymized column, for a class whose
/// `derived` is `block` (or in a COPY, whose column types copyguard must
/// know).
pub const PSEUDONYM_DERIVED: Rule = Rule::PseudonymDerived;

/// Aggregates and constructors that gather any number of values into one
/// row (`percentile_disc(ARRAY[0.001, 0.002, ...]) WITHIN GROUP (ORDER BY
/// email)` returns a value per fraction).
const COLLECTING: &[&str] = &[
    "array",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "json_agg_strict",
    "jsonb_agg_strict",
    "json_object_agg",
    "jsonb_object_agg",
    "json_object_agg_strict",
    "jsonb_object_agg_strict",
    "json_object_agg_unique",
    "jsonb_object_agg_unique",
    "json_object_agg_unique_strict",
    "jsonb_object_agg_unique_strict",
    "json_arrayagg",
    "json_objectagg",
    "xmlagg",
    "range_agg",
    // with an array of fractions, one value per fraction
    "percentile_disc",
    "percentile_cont",
];

/// Every rule decide() uses, in the order the rules apply.
pub const RULES: &[Rule] = &[
    IDENTITY_CHANGE,
    SETTING_LEXER,
    SETTING_DYNAMIC,
    SETTING_CLASSIFIED,
    CODE_DO_BLOCK,
    CODE_CALL,
    DDL_CODE,
    DDL_SECURITY,
    DDL_NOT_ALLOWED,
    FUNCTION_NOT_ALLOWED,
    TABLE_FORBIDDEN,
    GRANT_OUT_OF_SCOPE,
    COPY_SERVER_SIDE,
    WRITE_NOT_ALLOWED,
    COPY_IN_DB_CLASSIFIED,
    CATEGORY_BLOCKED,
    COPY_CLASSIFIED,
    PREDICATE_CLASSIFIED,
    CLASSIFIED_NOT_ALLOWED,
    CLASSIFIED_AGGREGATED,
    PSEUDONYM_DERIVED,
];

/// `pg_export_snapshot()`: the leader of a parallel pg_dump (`-j N`)
/// shares its snapshot with its workers; allowed with a dump grant (the
/// workers are sessions of the same grant, decided the same way).
fn is_dump_snapshot(f: &crate::analysis::FunctionRef) -> bool {
    !f.user_defined
        && f.schema.as_deref().is_none_or(|s| s == "pg_catalog")
        && f.name == "pg_export_snapshot"
}

/// Decides one statement for a role class.
pub(crate) fn decide(
    policy: &Policy,
    class: &RoleClass,
    catalog: &Catalog,
    facts: &StatementFacts,
) -> Verdict {
    if class.mode == ClassMode::Production {
        return Verdict::Allow(Allowance {
            classified_outputs: BTreeSet::new(),
            limits: None,
            touches_classified: false,
            pseudonymize: Vec::new(),
        });
    }
    let check = Check {
        policy,
        class,
        limits: &class.limits,
        catalog,
        facts,
    };
    match check.run() {
        Ok(allowance) => Verdict::Allow(allowance),
        Err(block) => Verdict::Block(block),
    }
}

struct Check<'a> {
    policy: &'a Policy,
    class: &'a RoleClass,
    limits: &'a ClassLimits,
    catalog: &'a Catalog,
    facts: &'a StatementFacts,
}

fn block(rule: Rule, reason: String) -> Block {
    Block { rule, reason }
}

impl Check<'_> {
    fn run(&self) -> Result<Allowance, Block> {
        let kind = match &self.facts.kind {
            StatementKind::Prepare { inner, .. } => inner.as_ref(),
            other => other,
        };
        self.identity(kind)?;
        self.settings()?;
        self.code_and_ddl(kind)?;
        let sequence_write = self.functions()?;
        self.forbidden()?;
        self.dump_scope()?;
        self.server_side_copy(kind)?;
        let explain = matches!(kind, StatementKind::Explain { .. });
        let executes = !matches!(kind, StatementKind::Explain { analyze: false });
        if executes {
            self.writes(kind, sequence_write)?;
            self.stored(sequence_write)?;
        }
        let outputs = self.classified_outputs();
        let mut plan = Vec::new();
        if !explain {
            self.blocked_categories()?;
            plan = self.pseudonym_plan(kind)?;
            self.copy_to(kind, &outputs, &plan)?;
        }
        self.predicates()?;
        if !explain {
            self.classified_allowed(&outputs)?;
            self.aggregated(&outputs, &plan)?;
        }
        let rows_flow_later = matches!(
            self.facts.kind,
            StatementKind::Prepare { .. } | StatementKind::Declare { .. }
        );
        let limits =
            (!explain && !rows_flow_later && !outputs.is_empty()).then_some(StatementLimits {
                max_rows: self.limits.max_rows_per_statement,
                max_bytes: self.limits.max_bytes_per_statement,
                row_weight: self.row_weight(&outputs),
            });
        Ok(Allowance {
            touches_classified: !outputs.is_empty() || self.touches_classified(),
            classified_outputs: if explain { BTreeSet::new() } else { outputs },
            limits,
            pseudonymize: plan,
        })
    }

    /// [`StatementLimits::row_weight`] of a statement returning the
    /// classified columns `outputs`: the most scans of one of their
    /// relations, at least 1.
    fn row_weight(&self, outputs: &BTreeSet<ColumnId>) -> u64 {
        outputs
            .iter()
            .filter_map(|c| self.facts.scans.get(&c.rel))
            .max()
            .map_or(1, |&n| u64::from(n).max(1))
    }

    /// Rule 1.
    fn identity(&self, kind: &StatementKind) -> Result<(), Block> {
        let changes = match kind {
            StatementKind::SetRole | StatementKind::SetSessionAuthorization => true,
            StatementKind::Set { name } => is_identity_setting(name),
            _ => false,
        } || self
            .facts
            .settings
            .iter()
            .any(|s| s.name.as_deref().is_some_and(is_identity_setting));
        if changes {
            return Err(block(
                IDENTITY_CHANGE,
                "changing the role or session authorization is not allowed: a guarded session keeps the role it logged in with".to_owned(),
            ));
        }
        Ok(())
    }

    /// Rule 1b: `set_config` calls, decided like `SET` (rule 1 has
    /// refused identity settings): the setting must be named by a
    /// constant, may not change how SQL text is read, and may not be given
    /// a value computed from classified data, which `SHOW` or
    /// `current_setting` would return.
    fn settings(&self) -> Result<(), Block> {
        for s in &self.facts.settings {
            let Some(name) = &s.name else {
                return Err(block(
                    SETTING_DYNAMIC,
                    "set_config is allowed only with the setting's name written as a string constant, so copyguard knows which setting changes".to_owned(),
                ));
            };
            if crate::enforce::is_lexer_setting(name) {
                return Err(block(
                    SETTING_LEXER,
                    format!("guarded sessions cannot change {name}: it changes how the server reads SQL text"),
                ));
            }
            if let Some((col, category)) = self.first_classified(s.lineage.iter().copied()) {
                return Err(block(
                    SETTING_CLASSIFIED,
                    format!(
                        "set_config of {name} would store a value computed from classified column {} ({category}) in a setting, which SHOW or current_setting would return unprotected",
                        self.catalog.column_name(col)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Rule 2.
    fn code_and_ddl(&self, kind: &StatementKind) -> Result<(), Block> {
        match kind {
            StatementKind::Do => Err(block(
                CODE_DO_BLOCK,
                "DO blocks run code copyguard cannot check; run the statements one by one".to_owned(),
            )),
            StatementKind::Call => Err(block(
                CODE_CALL,
                "CALL runs procedure code copyguard cannot check".to_owned(),
            )),
            StatementKind::Ddl(DdlKind::Code(what)) => Err(block(
                DDL_CODE,
                format!("{what} creates or changes code that runs on its own, which copyguard cannot check"),
            )),
            StatementKind::Ddl(DdlKind::Security(what)) => Err(block(
                DDL_SECURITY,
                format!("{what} changes roles, privileges or ownership, which guarded roles may not do"),
            )),
            StatementKind::Ddl(DdlKind::Structure(what)) if !self.limits.allow_ddl => Err(block(
                DDL_NOT_ALLOWED,
                format!("{what} changes the schema, which role class {} may not do; schema changes go through migrations", self.class.name),
            )),
            _ => Ok(()),
        }
    }

    /// Rule 3; whether a sequence is advanced or set (a write).
    fn functions(&self) -> Result<bool, Block> {
        let mut sequence_write = false;
        for f in &self.facts.functions {
            if self.class.dump.is_some() && is_dump_snapshot(f) {
                continue;
            }
            match self.policy.functions.check(f, self.limits.allow_writes) {
                FunctionCheck::Allowed => {}
                // Decided by rule 1b on the call's facts; a call without
                // them is not understood.
                FunctionCheck::Setting if !self.facts.settings.is_empty() => {}
                FunctionCheck::Setting => {
                    return Err(block(
                        SETTING_DYNAMIC,
                        "copyguard could not tell which setting this set_config call changes"
                            .to_owned(),
                    ))
                }
                FunctionCheck::SequenceWrite => sequence_write = true,
                FunctionCheck::Refused(reason) => return Err(block(FUNCTION_NOT_ALLOWED, reason)),
            }
        }
        Ok(sequence_write)
    }

    /// Rule 4: relations read or written, and the relations of every
    /// column the statement uses.
    fn forbidden(&self) -> Result<(), Block> {
        let f = self.facts;
        let used = || {
            f.output_columns()
                .chain(f.predicates.iter().copied())
                .chain(f.stored.iter().copied())
        };
        // The smallest such column: the first in the order of a set.
        let secret = used()
            .filter_map(|col| super::classify::builtin_secret(self.catalog, col).map(|w| (col, w)))
            .min_by_key(|(col, _)| *col);
        if let Some((col, why)) = secret {
            return Err(block(
                TABLE_FORBIDDEN,
                format!(
                    "{} is off limits to guarded roles: {why}",
                    self.catalog.column_name(col)
                ),
            ));
        }
        // Sorted and without duplicates, as a set would give them, in one
        // allocation.
        let mut rels: Vec<Oid> = f
            .reads
            .iter()
            .chain(&f.writes)
            .copied()
            .chain(used().map(|c| c.rel))
            .collect();
        rels.sort_unstable();
        rels.dedup();
        for rel in rels {
            if let Some(reason) = self.policy.forbidden_reason(self.catalog, rel) {
                let name = self
                    .catalog
                    .relation(rel)
                    .map_or_else(|| format!("relation {rel}"), |r| r.qualified_name());
                return Err(block(
                    TABLE_FORBIDDEN,
                    format!("{name} is off limits to guarded roles: {reason}"),
                ));
            }
        }
        Ok(())
    }

    /// Rule 4b: with a dump grant, rows only from tables in its scope
    /// (the system catalogs are not rows of the database's data).
    fn dump_scope(&self) -> Result<(), Block> {
        let Some(dump) = &self.class.dump else {
            return Ok(());
        };
        let f = self.facts;
        let rels: BTreeSet<_> = f
            .reads
            .iter()
            .copied()
            .chain(f.output_columns().map(|c| c.rel))
            .chain(f.predicates.iter().map(|c| c.rel))
            .collect();
        for rel in rels {
            let Some(r) = self.catalog.relation(rel) else {
                continue;
            };
            let system = matches!(
                r.schema.as_str(),
                "pg_catalog" | "information_schema" | "pg_toast"
            );
            if system || r.kind == crate::catalog::RelKind::Sequence {
                continue;
            }
            if !dump.scope.includes(&r.schema, &r.name) {
                let name = r.qualified_name();
                return Err(block(
                    GRANT_OUT_OF_SCOPE,
                    format!(
                        "{name} is outside the scope of grant {}; only its schema may be dumped (pg_dump --exclude-table-data={name})",
                        dump.grant_id
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Rule 5.
    fn server_side_copy(&self, kind: &StatementKind) -> Result<(), Block> {
        let endpoint = match kind {
            StatementKind::CopyTo { to, .. } => to,
            StatementKind::CopyFrom { from, .. } => from,
            _ => return Ok(()),
        };
        if matches!(endpoint, CopyEndpoint::File(_) | CopyEndpoint::Program(_)) {
            return Err(block(
                COPY_SERVER_SIDE,
                "COPY to or from a server-side file or program is not allowed; use COPY ... TO STDOUT / FROM STDIN (psql's \\copy)".to_owned(),
            ));
        }
        Ok(())
    }

    /// Rule 6.
    fn writes(&self, kind: &StatementKind, sequence_write: bool) -> Result<(), Block> {
        let write_kind = matches!(
            kind,
            StatementKind::Insert
                | StatementKind::Update
                | StatementKind::Delete
                | StatementKind::Merge
                | StatementKind::Truncate
                | StatementKind::CopyFrom { .. }
                | StatementKind::CreateTableAs
                | StatementKind::MaterializedView
        );
        if (write_kind || !self.facts.writes.is_empty() || sequence_write)
            && !self.limits.allow_writes
        {
            return Err(block(
                WRITE_NOT_ALLOWED,
                format!(
                    "role class {} may not write to this database (including nextval/setval); it is read-only",
                    self.class.name
                ),
            ));
        }
        Ok(())
    }

    /// Rule 7.
    /// A sequence set in a statement that uses classified columns anywhere
    /// may hold a value derived from them (`setval(..., f(email))`), read
    /// back later with `currval`: treated as stored.
    fn stored(&self, sequence_write: bool) -> Result<(), Block> {
        let f = self.facts;
        let stored: Vec<ColumnId> = if sequence_write {
            f.stored
                .iter()
                .chain(&f.predicates)
                .copied()
                .chain(f.output_lineage())
                .collect()
        } else {
            f.stored.iter().copied().collect()
        };
        if let Some((col, category)) = self.first_classified(stored.into_iter()) {
            return Err(block(
                COPY_IN_DB_CLASSIFIED,
                format!(
                    "the statement would store values derived from classified column {} ({category}) in the database, where guarded roles could read them later",
                    self.catalog.column_name(col)
                ),
            ));
        }
        Ok(())
    }
}

/// Settings that change who the session acts as.
fn is_identity_setting(name: &str) -> bool {
    name == "role" || name == "session_authorization"
}
