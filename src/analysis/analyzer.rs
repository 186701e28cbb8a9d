//! The analyzer's state while it walks one SQL string: the facts gathered
//! for the current statement, the scopes and CTEs in effect, the recursion
//! budget and the views already expanded.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::catalog::{Catalog, ColumnId, Oid};

use super::scope::{Col, Level, Lin};
use super::{AnalysisError, Context, FunctionRef, SettingChange};

/// How deep analysis may recurse (expressions, subqueries, views) before
/// the statement is refused.
const MAX_DEPTH: usize = 160;

/// Facts gathered for the statement being analyzed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Acc {
    /// Relations read.
    pub reads: BTreeSet<Oid>,
    /// Scans of each relation ([`super::StatementFacts::scans`]).
    pub scans: BTreeMap<Oid, u32>,
    /// Relations written.
    pub writes: BTreeSet<Oid>,
    /// Base columns referenced outside the outputs.
    pub predicates: BTreeSet<ColumnId>,
    /// Base columns flowing into stored data.
    pub stored: BTreeSet<ColumnId>,
    /// Functions called.
    pub functions: BTreeSet<FunctionRef>,
    /// `set_config` calls.
    pub settings: Vec<SettingChange>,
    /// Whether a top-level `SELECT ... INTO` was seen.
    pub select_into: bool,
    /// Base columns some expression computes a value from (a plain column
    /// reference computes nothing): what the statement does not return is
    /// evaluated only for its effect, such as an error, a predicate.
    pub computed: BTreeSet<ColumnId>,
}

impl Acc {
    /// Adds everything `other` gathered.
    pub fn merge(&mut self, other: &Acc) {
        self.reads.extend(other.reads.iter().copied());
        add_scans(&mut self.scans, &other.scans);
        self.writes.extend(other.writes.iter().copied());
        self.predicates.extend(other.predicates.iter().copied());
        self.stored.extend(other.stored.iter().copied());
        self.functions.extend(other.functions.iter().cloned());
        self.settings.extend(other.settings.iter().cloned());
        // A view's computed columns are left out: PostgreSQL evaluates a
        // view's columns only where the statement uses them.
    }
}

/// Adds the scans of `more` to `scans`.
pub(crate) fn add_scans(scans: &mut BTreeMap<Oid, u32>, more: &BTreeMap<Oid, u32>) {
    for (&oid, &n) in more {
        add_scan(scans, oid, n);
    }
}

/// Adds `n` scans of `oid` to `scans`.
fn add_scan(scans: &mut BTreeMap<Oid, u32>, oid: Oid, n: u32) {
    let count = scans.entry(oid).or_default();
    *count = count.saturating_add(n);
}

/// A CTE in scope.
#[derive(Clone, Debug)]
pub(crate) struct CteDef {
    /// Name.
    pub name: String,
    /// Columns; meaningless while `pending`.
    pub columns: Vec<Col>,
    /// The scans of its query, counted at each reference to it, not where
    /// it is defined: `u AS (SELECT email FROM users)` read as `u a JOIN u
    /// b` scans `users` twice.
    pub scans: BTreeMap<Oid, u32>,
    /// A recursive CTE whose non-recursive term is being analyzed: it may
    /// not reference itself yet.
    pub pending: bool,
}

/// A view's columns and everything its definition reads and calls.
#[derive(Clone, Debug)]
pub(crate) struct Expansion {
    /// Columns, named as the catalog names them.
    pub columns: Vec<Col>,
    /// What analyzing the definition gathered.
    pub acc: Acc,
}

/// The walker's state.
pub(crate) struct Analyzer<'a> {
    /// The catalog.
    pub catalog: &'a Catalog,
    /// The effective search path (`pg_catalog` first when the session's
    /// path does not name it, as PostgreSQL does).
    pub search_path: Vec<String>,
    /// Facts of the statement being analyzed.
    pub acc: Acc,
    /// Query levels, outermost first.
    pub levels: Vec<Level>,
    /// CTE lists, outermost first.
    pub ctes: Vec<Vec<CteDef>>,
    /// Whether the next SELECT may have an INTO clause.
    pub into_allowed: bool,
    /// Views being expanded, to cut loops.
    pub view_stack: Vec<Oid>,
    /// Views and materialized view definitions already expanded.
    pub expansions: HashMap<Oid, Expansion>,
    /// Per SELECT being analyzed, innermost last: the scans of its FROM
    /// list and WHERE clause, which each window or aggregate call of its
    /// select list adds once more ([`Analyzer::scan_again`]).
    pub call_bases: Vec<BTreeMap<Oid, u32>>,
    depth: usize,
}

impl<'a> Analyzer<'a> {
    /// A fresh analyzer.
    pub fn new(ctx: &Context<'a>) -> Analyzer<'a> {
        let mut search_path = ctx.search_path.to_vec();
        if !search_path.iter().any(|s| s == "pg_catalog") {
            search_path.insert(0, "pg_catalog".to_owned());
        }
        Analyzer {
            catalog: ctx.catalog,
            search_path,
            acc: Acc::default(),
            levels: Vec::new(),
            ctes: Vec::new(),
            into_allowed: false,
            call_bases: Vec::new(),
            view_stack: Vec::new(),
            expansions: HashMap::new(),
            depth: 0,
        }
    }

    /// Resets the per-statement state.
    pub fn reset(&mut self) {
        self.acc = Acc::default();
        self.levels.clear();
        self.ctes.clear();
        self.into_allowed = false;
        self.call_bases.clear();
        self.depth = 0;
    }

    /// Runs `f` one level deeper, refusing input nested too deeply.
    pub fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, AnalysisError>,
    ) -> Result<T, AnalysisError> {
        if self.depth >= MAX_DEPTH {
            return Err(AnalysisError::Unsupported(
                "statement nested too deeply".into(),
            ));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    /// Records base columns used outside the outputs.
    pub fn predicate(&mut self, lin: Lin) {
        self.acc.predicates.extend(lin.cols);
    }

    /// Records a call of function `schema.name` (folded parts).
    pub fn call(&mut self, schema: Option<&str>, name: &str) {
        let user_defined = match schema {
            Some(s) => self.catalog.has_user_function(s, name),
            None => self.catalog.has_user_function_named(name),
        };
        if name == "set_config" && schema.is_none_or(|s| s == "pg_catalog") {
            // Fail closed: the caller fills in what the arguments are when
            // it understands them (`describe_setting`).
            self.acc.settings.push(SettingChange {
                name: None,
                lineage: BTreeSet::new(),
            });
        }
        self.acc.functions.insert(FunctionRef {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
            user_defined,
        });
    }

    /// Describes the `set_config` call recorded at index `slot` of the
    /// settings, if one was: its constant name and its arguments' lineage.
    pub fn describe_setting(&mut self, slot: usize, name: Option<String>, lineage: &Lin) {
        if let Some(s) = self.acc.settings.get_mut(slot) {
            s.name = name.map(|n| n.to_lowercase());
            s.lineage = lineage.cols.iter().copied().collect();
        }
    }

    /// Records the scans of every relation `lin` reads once more, as many
    /// as the FROM list of the SELECT making the call has: a window or
    /// aggregate call brings a value of another row of that FROM list into
    /// the row, and such a row may itself carry values of several rows
    /// (`x || lag(x, 4) OVER w` over a subquery whose `x` is `x || lag(x,
    /// 2)` over another: each layer doubles what one row carries).
    pub fn scan_again(&mut self, lin: &Lin) {
        let base = self.call_bases.last();
        let mut last = None;
        // The columns are sorted by relation: each relation once.
        for c in lin
            .cols
            .iter()
            .filter(|c| last.replace(c.rel) != Some(c.rel))
        {
            let n = base.and_then(|b| b.get(&c.rel)).copied().unwrap_or(1);
            add_scan(&mut self.acc.scans, c.rel, n.max(1));
        }
    }

    /// Records a read of `oid` and, unless `only`, of every descendant
    /// (partitions, inheritance children).
    pub fn read(&mut self, oid: Oid, only: bool) {
        self.acc.reads.insert(oid);
        add_scan(&mut self.acc.scans, oid, 1);
        if !only {
            let descendants = self.descendants(oid);
            self.acc.reads.extend(descendants);
        }
    }

    /// Records a write to `oid` and, unless `only`, to every descendant.
    pub fn write(&mut self, oid: Oid, only: bool) {
        self.acc.writes.insert(oid);
        if !only {
            let descendants = self.descendants(oid);
            self.acc.writes.extend(descendants);
        }
    }

    /// Every partition and inheritance child of `oid`, recursively.
    pub fn descendants(&self, oid: Oid) -> Vec<Oid> {
        let mut out: Vec<Oid> = Vec::new();
        if self.catalog.children(oid).is_empty() {
            return out;
        }
        let mut todo = vec![oid];
        while let Some(next) = todo.pop() {
            for child in self.catalog.children(next) {
                if *child != oid && !out.contains(child) {
                    out.push(*child);
                    todo.push(*child);
                }
            }
        }
        out
    }

    /// The innermost level (pushing one if there is none).
    pub fn level(&mut self) -> &mut Level {
        if self.levels.is_empty() {
            self.levels.push(Level::default());
        }
        let last = self.levels.len() - 1;
        &mut self.levels[last]
    }

    /// The CTE called `name`, innermost first.
    pub fn cte(&self, name: &str) -> Option<&CteDef> {
        self.ctes
            .iter()
            .rev()
            .flat_map(|list| list.iter().rev())
            .find(|c| c.name == name)
    }
}
