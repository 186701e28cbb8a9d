//! A session's cache of allowed decisions, by statement shape
//! ([`crate::analysis::shape`]): a repeated statement of a known shape is
//! neither parsed nor decided again.
//!
//! An entry keeps everything the decision depended on besides the shape:
//! the catalog and policy (held, and compared by identity), the search path
//! and, through the session it lives in, the login role, its class and
//! dump grant, and whether there is a pseudonymization key. It is used only
//! when all of them are the same as now. Only single statements whose
//! decision depends on nothing else the session holds are cached (not
//! `EXECUTE`, `FETCH`, `SET`, `PREPARE` or `DECLARE`), and only allowed
//! ones: refusals are decided afresh, with their own message. A hit builds
//! a fresh [`Exec`] (its own counters, the statement's real text).

use std::sync::Arc;

use super::{Exec, NameMap};
use crate::analysis::{shape, StatementFacts, StatementKind};
use crate::catalog::Catalog;
use crate::policy::{Allowance, Policy, RoleClass};

/// Entries per session.
const CAPACITY: usize = 256;

/// Set to `off` to decide every statement afresh (to compare, or to rule
/// the cache out when investigating a verdict).
pub const DISABLE_ENV: &str = "COPYGUARD_DECISION_CACHE";

/// Whether the environment turned the cache off (read once).
fn disabled_by_env() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OFF.get_or_init(|| std::env::var(DISABLE_ENV).is_ok_and(|v| v == "off"))
}

/// Allowed decisions by statement shape, least recently used evicted.
pub(crate) struct DecisionCache {
    entries: NameMap<Entry>,
    /// Use counter, for eviction.
    tick: u64,
    /// Whether lookups and stores are skipped.
    off: bool,
}

/// One allowed decision and what it was made with.
struct Entry {
    catalog: Arc<Catalog>,
    policy: Arc<Policy>,
    search_path: Vec<String>,
    facts: Arc<StatementFacts>,
    allowance: Allowance,
    scrub: bool,
    class: Arc<RoleClass>,
    used: u64,
}

/// What a lookup needs besides the text.
pub(crate) struct Now<'a> {
    pub catalog: &'a Arc<Catalog>,
    pub policy: &'a Arc<Policy>,
    pub search_path: &'a [String],
}

impl Default for DecisionCache {
    fn default() -> DecisionCache {
        DecisionCache {
            entries: NameMap::default(),
            tick: 0,
            off: disabled_by_env(),
        }
    }
}

impl DecisionCache {
    /// Turns the cache off (every statement analyzed afresh) or on.
    pub fn set_enabled(&mut self, on: bool) {
        self.off = !on;
        self.entries.clear();
    }

    /// The shape `sql` is cached under, when it may be cached at all.
    pub fn key(&self, sql: &str) -> Option<String> {
        if self.off {
            return None;
        }
        shape::shape(sql)
    }

    /// The decision cached under `key` in context `now`, as a fresh
    /// [`Exec`] (its text and context still to be set).
    pub fn get(&mut self, key: &str, now: &Now<'_>) -> Option<Exec> {
        self.tick += 1;
        let e = self.entries.get_mut(key)?;
        if !Arc::ptr_eq(&e.catalog, now.catalog)
            || !Arc::ptr_eq(&e.policy, now.policy)
            || e.search_path != now.search_path
        {
            return None;
        }
        e.used = self.tick;
        Some(Exec::new(
            e.facts.clone(),
            e.allowance.clone(),
            e.scrub,
            e.policy.clone(),
            e.catalog.clone(),
            e.class.clone(),
        ))
    }

    /// Keeps `exec`, decided for the text of shape `key` with
    /// `search_path`, if it may be reused.
    pub fn put(&mut self, key: String, exec: &Exec, search_path: &[String]) {
        if !cacheable(&exec.facts.kind) || exec.counted_by.is_some() {
            return;
        }
        if self.entries.len() >= CAPACITY && !self.entries.contains_key(&key) {
            self.evict();
        }
        self.tick += 1;
        self.entries.insert(
            key,
            Entry {
                catalog: exec.catalog.clone(),
                policy: exec.policy.clone(),
                search_path: search_path.to_vec(),
                facts: exec.facts.clone(),
                allowance: exec.allowance.clone(),
                scrub: exec.scrub,
                class: exec.class.clone(),
                used: self.tick,
            },
        );
    }

    /// Drops the least recently used quarter.
    fn evict(&mut self) {
        let mut used: Vec<u64> = self.entries.values().map(|e| e.used).collect();
        used.sort_unstable();
        let cut = used[used.len() / 4];
        self.entries.retain(|_, e| e.used > cut);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

impl std::fmt::Debug for DecisionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionCache")
            .field("entries", &self.entries.len())
            .field("off", &self.off)
            .finish()
    }
}

/// Kinds whose decision depends on the statement and its context alone:
/// the only ones the cache keeps.
pub(crate) fn cacheable(kind: &StatementKind) -> bool {
    matches!(
        kind,
        StatementKind::Select
            | StatementKind::Insert
            | StatementKind::Update
            | StatementKind::Delete
            | StatementKind::Show
            | StatementKind::Transaction { .. }
    )
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
