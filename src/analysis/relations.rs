//! Catalog relations as FROM items: name resolution through the search
//! path, reads (with partitions and inheritance children), and views
//! expanded through their definitions.
//!
//! A view's columns take the lineage of its definition's outputs; the
//! definition is analyzed with the same search path but none of the
//! referencing query's scopes or CTEs, and what it reads and calls counts
//! for the statement. A definition that is missing, does not parse or does
//! not resolve (and a view met again while being expanded, or nested more
//! than [`MAX_VIEW_NESTING`] deep) falls back to
//! the view's `depends_on`, views in it replaced by their own dependencies:
//! every column of the view gets that whole set as lineage.
//!
//! `pg_get_viewdef` leaves names unqualified when the catalog reader's
//! search path finds them; the session's path may find other relations.
//! An expansion that uses columns of relations the view does not depend on
//! has resolved something differently: every column then also gets all of
//! `depends_on` as lineage.

use std::collections::BTreeSet;

use sqlparser::ast::TableAlias;

use crate::catalog::{ColumnId, Oid, RelKind, Relation};

use super::analyzer::{Acc, Analyzer, Expansion};
use super::colset::ColSet;
use super::names;
use super::query::aliased;
use super::scope::{Col, FromItem, Lin};
use super::AnalysisError;
use super::{definitions, input};

/// Views nested deeper than this inside one another are not expanded but
/// fall back to their dependencies (each level costs stack).
const MAX_VIEW_NESTING: usize = 16;

impl<'a> Analyzer<'a> {
    /// The relation named by folded parts (`name`, `schema.name`).
    pub fn resolve_relation(&self, parts: &[String]) -> Result<&'a Relation, AnalysisError> {
        let catalog = self.catalog;
        let found = match parts {
            [name] => catalog.resolve(None, name, &self.search_path),
            [schema, name] => catalog.resolve(Some(schema), name, &self.search_path),
            _ => {
                return Err(AnalysisError::Unsupported(format!(
                    "relation name {}",
                    names::display(parts)
                )))
            }
        };
        found.ok_or_else(|| AnalysisError::UnknownRelation(names::display(parts)))
    }

    /// The FROM item of catalog relation `rel`, read and expanded.
    pub fn relation_item_of(
        &mut self,
        rel: &Relation,
        only: bool,
        alias: Option<&TableAlias>,
    ) -> Result<FromItem, AnalysisError> {
        let columns = self.relation_columns(rel, only)?;
        let mut item = aliased(&rel.name, Some(&rel.schema), columns, alias)?;
        for s in &mut item.sources {
            s.system = rel.kind != RelKind::View;
        }
        Ok(item)
    }

    /// Records a read of `rel` and returns its columns: base columns for
    /// tables, the expansion for views.
    pub fn relation_columns(
        &mut self,
        rel: &Relation,
        only: bool,
    ) -> Result<Vec<Col>, AnalysisError> {
        self.read(rel.oid, only);
        match rel.kind {
            RelKind::View => Ok(self.view(rel).columns),
            _ => Ok(base_columns(rel)),
        }
    }

    /// A view's (or materialized view's) definition, analyzed; what it
    /// gathered is added to the statement's facts.
    pub fn view(&mut self, rel: &Relation) -> Expansion {
        let expansion = match self.expansions.get(&rel.oid) {
            Some(cached) => cached.clone(),
            None => {
                let expansion = if self.view_stack.contains(&rel.oid)
                    || self.view_stack.len() >= MAX_VIEW_NESTING
                {
                    self.fallback(rel)
                } else {
                    self.expand(rel).unwrap_or_else(|_| self.fallback(rel))
                };
                self.expansions.insert(rel.oid, expansion.clone());
                expansion
            }
        };
        self.acc.merge(&expansion.acc);
        expansion
    }

    fn expand(&mut self, rel: &Relation) -> Result<Expansion, AnalysisError> {
        let definition = rel.definition.as_deref().ok_or_else(|| {
            AnalysisError::Unsupported(format!("no definition of {}", rel.qualified_name()))
        })?;
        // Parsed once per process (`definitions`); the walk below depends
        // on the session's search path and is not kept.
        let query = definitions::shared()
            .query(definition, input::parse_definition)
            .ok_or_else(|| {
                AnalysisError::Unsupported(format!(
                    "definition of {} is not one query",
                    rel.qualified_name()
                ))
            })?;
        let levels = std::mem::take(&mut self.levels);
        let ctes = std::mem::take(&mut self.ctes);
        let acc = std::mem::take(&mut self.acc);
        let into_allowed = std::mem::replace(&mut self.into_allowed, false);
        self.view_stack.push(rel.oid);
        let result = self.query(&query);
        self.view_stack.pop();
        self.levels = levels;
        self.ctes = ctes;
        self.into_allowed = into_allowed;
        let gathered = std::mem::replace(&mut self.acc, acc);
        let outputs = result?;
        if outputs.len() != rel.columns.len() {
            return Err(AnalysisError::Unsupported(format!(
                "definition of {} has {} columns, the catalog {}",
                rel.qualified_name(),
                outputs.len(),
                rel.columns.len()
            )));
        }
        let mut columns: Vec<Col> = rel
            .columns
            .iter()
            .zip(outputs)
            .map(|(c, o)| Col {
                name: c.name.as_str().into(),
                lin: o.lin,
            })
            .collect();
        let mut views = BTreeSet::new();
        let deps = self.base_dependencies(rel, &mut views);
        let known: BTreeSet<Oid> = deps.iter().map(|c| c.rel).collect();
        let strays = columns
            .iter()
            .flat_map(|c| c.lin.cols.iter())
            .chain(gathered.predicates.iter())
            .any(|c| !known.contains(&c.rel));
        if strays {
            let deps = ColSet::from(deps);
            for c in &mut columns {
                c.lin.add(Lin::computed(deps.clone()));
            }
        }
        Ok(Expansion {
            columns,
            acc: gathered,
        })
    }

    /// Every column computed from all base columns the view depends on.
    fn fallback(&mut self, rel: &Relation) -> Expansion {
        let mut acc = Acc::default();
        let deps = self.base_dependencies(rel, &mut acc.reads);
        let tables: BTreeSet<Oid> = deps.iter().map(|c| c.rel).collect();
        for table in tables {
            acc.reads.insert(table);
            acc.scans.insert(table, 1);
            acc.reads.extend(self.descendants(table));
        }
        let deps = ColSet::from(deps);
        let columns = rel
            .columns
            .iter()
            .map(|c| Col {
                name: c.name.as_str().into(),
                lin: Lin::computed(deps.clone()),
            })
            .collect();
        Expansion { columns, acc }
    }

    /// `rel.depends_on` with the columns of views replaced by those views'
    /// dependencies, recursively, and a whole-relation dependency (column
    /// number 0) by every column; the views met go to `views`.
    fn base_dependencies(&self, rel: &Relation, views: &mut BTreeSet<Oid>) -> BTreeSet<ColumnId> {
        let mut out = BTreeSet::new();
        let mut seen = BTreeSet::from([rel.oid]);
        let mut todo: Vec<ColumnId> = rel.depends_on.iter().copied().collect();
        while let Some(col) = todo.pop() {
            match self.catalog.relation(col.rel) {
                Some(dep) if dep.kind == RelKind::View => {
                    views.insert(dep.oid);
                    if seen.insert(dep.oid) {
                        todo.extend(dep.depends_on.iter().copied());
                    }
                }
                Some(dep) if col.attnum <= 0 => {
                    out.extend(dep.columns.iter().map(|c| ColumnId {
                        rel: dep.oid,
                        attnum: c.attnum,
                    }));
                }
                _ => {
                    out.insert(col);
                }
            }
        }
        out
    }
}

/// The columns of a table-like relation, each its own base column.
pub(crate) fn base_columns(rel: &Relation) -> Vec<Col> {
    rel.columns
        .iter()
        .map(|c| Col {
            name: c.name.as_str().into(),
            lin: Lin::base(ColumnId {
                rel: rel.oid,
                attnum: c.attnum,
            }),
        })
        .collect()
}
