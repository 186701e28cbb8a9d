//! A refusal as the core decided it: the rule and reason, which statement
//! of a query string it refused, and the facts it was decided on
//! (relations and classified columns), so the block-log record needs no
//! second analysis.

use crate::analysis::StatementFacts;
use crate::catalog::Catalog;
use crate::policy::{Block, Policy};

/// A refusal of a statement or query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The refusal.
    pub block: Block,
    /// The refused statement's position in the query string (`None`: the
    /// string as a whole, or a message of the extended protocol).
    pub at: Option<usize>,
    /// What the refusal was decided on; `None` when there were no facts
    /// (analysis itself failed, an unknown name).
    pub facts: Option<RefusedFacts>,
}

impl Refusal {
    /// The refusal `block`, decided on `facts` (in `catalog`, under
    /// `policy`).
    pub fn on(block: Block, facts: &StatementFacts, catalog: &Catalog, policy: &Policy) -> Refusal {
        Refusal {
            block,
            at: None,
            facts: Some(RefusedFacts::new([facts], catalog, policy)),
        }
    }

    /// The same refusal, of statement `at` of the query string.
    pub fn at(mut self, at: usize) -> Refusal {
        self.at = Some(at);
        self
    }
}

impl From<Block> for Refusal {
    /// A refusal decided on no facts.
    fn from(block: Block) -> Refusal {
        Refusal {
            block,
            at: None,
            facts: None,
        }
    }
}

impl From<Refusal> for Block {
    fn from(r: Refusal) -> Block {
        r.block
    }
}

/// What a refused statement touches, as the block log records it: the
/// relations it reads or writes and the classified columns it returns,
/// filters on or stores.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefusedFacts {
    /// `schema.table`, sorted.
    pub relations: Vec<String>,
    /// `schema.table.column`, sorted.
    pub columns: Vec<String>,
}

impl RefusedFacts {
    /// The relations and classified columns of `statements` taken
    /// together.
    pub fn new<'f>(
        statements: impl IntoIterator<Item = &'f StatementFacts>,
        catalog: &Catalog,
        policy: &Policy,
    ) -> RefusedFacts {
        let mut out = RefusedFacts::default();
        for facts in statements {
            out.relations.extend(relation_names(facts, catalog));
            out.columns.extend(
                facts
                    .output_lineage()
                    .into_iter()
                    .chain(facts.predicates.iter().copied())
                    .chain(facts.stored.iter().copied())
                    .filter(|c| policy.category_of(catalog, *c).is_some())
                    .map(|c| catalog.column_name(c)),
            );
        }
        out.relations.sort();
        out.relations.dedup();
        out.columns.sort();
        out.columns.dedup();
        out
    }
}

/// The relations a statement reads or writes, `schema.table`, sorted.
pub fn relation_names(facts: &StatementFacts, catalog: &Catalog) -> Vec<String> {
    let mut relations: Vec<String> = facts
        .reads
        .iter()
        .chain(&facts.writes)
        .filter_map(|oid| catalog.relation(*oid))
        .map(|r| r.qualified_name())
        .collect();
    relations.sort();
    relations.dedup();
    relations
}
