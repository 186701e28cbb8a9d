//! The rules on what a statement returns: blocked categories, the
//! pseudonymization plan, COPY TO, classified predicates and outputs,
//! aggregates that collect classified values into one row.

use std::collections::BTreeSet;

use super::{
    block, Check, CATEGORY_BLOCKED, CLASSIFIED_AGGREGATED, CLASSIFIED_NOT_ALLOWED, COLLECTING,
    COPY_CLASSIFIED, PREDICATE_CLASSIFIED, PSEUDONYM_DERIVED,
};
use crate::analysis::StatementKind;
use crate::catalog::ColumnId;
use crate::policy::{Block, CopyToAction, DerivedAction, OutputPseudonym};
use crate::pseudonym;

impl Check<'_> {
    /// Rule 8.
    pub(super) fn blocked_categories(&self) -> Result<(), Block> {
        if self.limits.block_categories.is_empty() {
            return Ok(());
        }
        for output in &self.facts.outputs {
            for col in &output.lineage {
                let Some(category) = self.policy.category_of(self.catalog, *col) else {
                    continue;
                };
                if self.limits.block_categories.contains(category) {
                    return Err(block(
                        CATEGORY_BLOCKED,
                        format!(
                            "output column {:?} derives from {} ({category}), a category role class {} may never read; leave it out of the select list",
                            output.name,
                            self.catalog.column_name(*col),
                            self.class.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Rule 8b: which outputs are pseudonymized. An output whose lineage
    /// holds a pseudonymized category is replaced as a whole: by the
    /// column's transform when it is that column itself, else (a computed
    /// value) by NULL when `derived = "pseudonymize"`
    /// ([`pseudonym::for_computed`]), or refused.
    pub(super) fn pseudonym_plan(
        &self,
        kind: &StatementKind,
    ) -> Result<Vec<Option<OutputPseudonym>>, Block> {
        if self.limits.pseudonymize.is_empty() {
            return Ok(Vec::new());
        }
        let copy = matches!(kind, StatementKind::CopyTo { .. });
        let mut plan = Vec::with_capacity(self.facts.outputs.len());
        for output in &self.facts.outputs {
            let pseudonymized = output.lineage.iter().find_map(|col| {
                let category = self.policy.category_of(self.catalog, *col)?;
                self.limits
                    .pseudonymizes(category)
                    .then(|| (*col, category.to_owned()))
            });
            let Some((col, category)) = pseudonymized else {
                plan.push(None);
                continue;
            };
            let plain = output.direct == Some(col) && output.lineage.len() == 1;
            if plain {
                plan.push(Some(OutputPseudonym {
                    transform: self.policy.transform_for(self.catalog, col, &category),
                    category,
                    column: Some(col),
                }));
                continue;
            }
            if self.limits.derived == DerivedAction::Block || copy {
                let why = if copy {
                    "COPY can only pseudonymize columns copied as they are"
                } else {
                    "role class gets such values pseudonymized only as the column itself (derived = \"block\")"
                };
                return Err(block(
                    PSEUDONYM_DERIVED,
                    format!(
                        "output column {:?} is computed from classified column {} ({category}); {why}: select the column itself",
                        output.name,
                        self.catalog.column_name(col),
                    ),
                ));
            }
            plan.push(Some(OutputPseudonym {
                transform: pseudonym::for_computed(pseudonym::default_transform(&category)),
                category,
                column: None,
            }));
        }
        if plan.iter().all(Option::is_none) {
            plan.clear();
        }
        Ok(plan)
    }

    /// Rule 9.
    pub(super) fn copy_to(
        &self,
        kind: &StatementKind,
        outputs: &BTreeSet<ColumnId>,
        plan: &[Option<OutputPseudonym>],
    ) -> Result<(), Block> {
        let StatementKind::CopyTo { .. } = kind else {
            return Ok(());
        };
        let raw = self.first_raw_classified(outputs, plan);
        let Some(col) = outputs
            .iter()
            .next()
            .filter(|_| self.limits.copy_to == CopyToAction::Block)
            .or(raw)
        else {
            return Ok(());
        };
        match self.limits.copy_to {
            CopyToAction::Pseudonymize => Err(block(
                COPY_CLASSIFIED,
                format!(
                    "COPY would export classified column {} ({}), which role class {} does not get pseudonymized; COPY only pseudonymized or unclassified columns",
                    self.catalog.column_name(*col),
                    self.policy.category_of(self.catalog, *col).unwrap_or("classified"),
                    self.class.name
                ),
            )),
            CopyToAction::Block => Err(block(
                COPY_CLASSIFIED,
                format!(
                    "COPY would export classified column {} ({}); COPY only the columns that are not classified",
                    self.catalog.column_name(*col),
                    self.policy.category_of(self.catalog, *col).unwrap_or("classified")
                ),
            )),
        }
    }

    /// Rule 10.
    pub(super) fn predicates(&self) -> Result<(), Block> {
        if self.limits.classified_predicates {
            return Ok(());
        }
        if let Some((col, category)) = self.first_classified(self.facts.predicates.iter().copied())
        {
            return Err(block(
                PREDICATE_CLASSIFIED,
                format!(
                    "the statement filters, joins, groups or sorts on classified column {} ({category}), which role class {} may not do; use a column that is not classified, such as an id",
                    self.catalog.column_name(col),
                    self.class.name
                ),
            ));
        }
        Ok(())
    }

    /// Rule 11.
    pub(super) fn classified_allowed(&self, outputs: &BTreeSet<ColumnId>) -> Result<(), Block> {
        if self.limits.max_rows_per_statement > 0 || outputs.is_empty() {
            return Ok(());
        }
        let found = self.facts.outputs.iter().find_map(|o| {
            o.lineage
                .iter()
                .find(|c| outputs.contains(c))
                .map(|c| (o.name.as_str(), *c))
        });
        let Some((name, col)) = found else {
            return Ok(());
        };
        Err(block(
            CLASSIFIED_NOT_ALLOWED,
            format!(
                "output column {name:?} derives from classified column {} ({}), which role class {} may not read; select only columns that are not classified",
                self.catalog.column_name(col),
                self.policy.category_of(self.catalog, col).unwrap_or("classified"),
                self.class.name
            ),
        ))
    }

    /// Rule 12.
    pub(super) fn aggregated(
        &self,
        outputs: &BTreeSet<ColumnId>,
        plan: &[Option<OutputPseudonym>],
    ) -> Result<(), Block> {
        if self.first_raw_classified(outputs, plan).is_none() {
            return Ok(());
        }
        let Some(f) = self.facts.functions.iter().find(|f| {
            f.schema.as_deref().is_none_or(|s| s == "pg_catalog")
                && COLLECTING.contains(&f.name.as_str())
        }) else {
            return Ok(());
        };
        Err(block(
            CLASSIFIED_AGGREGATED,
            format!(
                "{}() gathers many values into one row, which the row limit cannot count; it cannot be used in a statement that returns classified data",
                f.name
            ),
        ))
    }

    /// The first classified column an output returns as it is (not
    /// pseudonymized).
    pub(super) fn first_raw_classified<'c>(
        &self,
        outputs: &'c BTreeSet<ColumnId>,
        plan: &[Option<OutputPseudonym>],
    ) -> Option<&'c ColumnId> {
        self.facts
            .outputs
            .iter()
            .enumerate()
            .filter(|(i, _)| plan.get(*i).is_none_or(Option::is_none))
            .find_map(|(_, o)| outputs.iter().find(|c| o.lineage.contains(c)))
    }

    /// Classified base columns in the output lineage.
    pub(super) fn classified_outputs(&self) -> BTreeSet<ColumnId> {
        // Inserted one by one: `collect` would gather and sort them in a
        // `Vec` first, an allocation more.
        let mut out = BTreeSet::new();
        for c in self.facts.output_columns() {
            if self.policy.category_of(self.catalog, c).is_some() {
                out.insert(c);
            }
        }
        out
    }

    /// Whether any relation read or written (foreign-key actions
    /// included) has classified columns, or a write runs user code: an
    /// error or notice could then quote a classified value, even one
    /// computed in a subquery output nobody selects.
    pub(super) fn touches_classified(&self) -> bool {
        let f = self.facts;
        if self
            .first_classified(f.predicates.iter().chain(&f.stored).copied())
            .is_some()
        {
            return true;
        }
        // A write also changes the rows foreign-key actions reach, and
        // triggers and rules run code that can read anything: their
        // errors quote rows the statement never named.
        let (written, runs_code) = self.catalog.write_reach(f.writes.iter().copied());
        runs_code
            || f.reads.iter().chain(&written).any(|rel| {
                self.catalog
                    .relation(*rel)
                    .is_some_and(|r| self.policy.data.any_column_classified(self.catalog, r))
            })
    }

    pub(super) fn first_classified(
        &self,
        cols: impl Iterator<Item = ColumnId>,
    ) -> Option<(ColumnId, String)> {
        cols.into_iter().find_map(|c| {
            self.policy
                .category_of(self.catalog, c)
                .map(|cat| (c, cat.to_owned()))
        })
    }
}
