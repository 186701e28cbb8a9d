//! View definitions parsed once per process. A fresh decision that reads a
//! view walks the view's definition (`relations`); the parse is a pure
//! function of the definition's text, so it is kept here, shared by every
//! session and every catalog (a system view's text is the same in every
//! database and catalog version, a user view's changes only with DDL).
//!
//! Bounded by the text held: a parsed query takes about a hundred times
//! its text's bytes (parsing the 144 view definitions of a PostgreSQL 15
//! catalog, 154 KiB of text, grew a test's resident set by 17 MiB), so a
//! definition over [`MAX_DEFINITION`] is parsed at every use, as before,
//! and past [`BUDGET`] of text the least recently used are dropped.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use sqlparser::ast::Query;

/// Text of the definitions kept, at most (about 7 MiB parsed).
const BUDGET: usize = 64 * 1024;
/// The longest definition kept (`information_schema.columns` is 7 KiB).
const MAX_DEFINITION: usize = 8 * 1024;

/// Parsed definitions by their text, least recently used dropped past a
/// budget of text bytes.
pub(crate) struct Definitions {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry, foldhash::quality::RandomState>,
    /// Bytes of the texts kept.
    text: usize,
    /// Use counter, for eviction.
    tick: u64,
}

struct Entry {
    /// `None`: the text is not one query.
    query: Option<Arc<Query>>,
    used: u64,
}

#[cfg(test)]
thread_local! {
    /// Tests compare analyses with every definition parsed afresh.
    pub(crate) static BYPASS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread parses every definition afresh (tests only).
fn bypassed() -> bool {
    #[cfg(test)]
    return BYPASS.get();
    #[cfg(not(test))]
    false
}

/// The process's definitions.
pub(crate) fn shared() -> &'static Definitions {
    static SHARED: LazyLock<Definitions> = LazyLock::new(|| Definitions::new(BUDGET));
    &SHARED
}

impl Definitions {
    /// An empty cache holding at most `budget` bytes of text.
    pub(crate) fn new(budget: usize) -> Definitions {
        Definitions {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// `text` as one query: `parse`'s answer the first time, kept while it
    /// fits the budget. `None` when `parse` gave none.
    pub(crate) fn query(
        &self,
        text: &str,
        parse: impl FnOnce(&str) -> Option<Query>,
    ) -> Option<Arc<Query>> {
        if text.len() > MAX_DEFINITION.min(self.budget) || bypassed() {
            return parse(text).map(Arc::new);
        }
        if let Some(kept) = self.lock().get(text) {
            return kept;
        }
        // Parsed outside the lock: sessions reading other views do not
        // wait, and two that race on one view both parse it once.
        let query = parse(text).map(Arc::new);
        self.lock().put(text, query.clone(), self.budget);
        query
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn get(&mut self, text: &str) -> Option<Option<Arc<Query>>> {
        self.tick += 1;
        let entry = self.entries.get_mut(text)?;
        entry.used = self.tick;
        Some(entry.query.clone())
    }

    fn put(&mut self, text: &str, query: Option<Arc<Query>>, budget: usize) {
        if self.entries.contains_key(text) {
            return;
        }
        while self.text + text.len() > budget {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(t, _)| t.clone())
            else {
                break;
            };
            self.entries.remove(&oldest);
            self.text -= oldest.len();
        }
        self.tick += 1;
        self.text += text.len();
        let used = self.tick;
        self.entries.insert(text.to_owned(), Entry { query, used });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// `text` parsed as one query, counted in `parses`.
    fn one_query(text: &str, parses: &AtomicUsize) -> Option<Query> {
        parses.fetch_add(1, Ordering::Relaxed);
        crate::analysis::input::parse_definition(text)
    }

    #[test]
    fn a_definition_is_parsed_once() {
        let cache = Definitions::new(BUDGET);
        let parses = AtomicUsize::new(0);
        let parse = |text: &str| one_query(text, &parses);
        let first = cache.query(" SELECT 1;", parse).expect("parsed");
        let again = std::thread::scope(|s| s.spawn(|| cache.query(" SELECT 1;", parse)).join())
            .expect("thread")
            .expect("parsed");
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same query, from another thread"
        );
        assert_eq!(parses.load(Ordering::Relaxed), 1);
        for _ in 0..2 {
            assert!(cache.query("SELEC", parse).is_none(), "does not parse");
            assert!(cache.query("SELECT 1; SELECT 2", parse).is_none(), "two");
        }
        assert_eq!(parses.load(Ordering::Relaxed), 3, "nor parsed again");
    }

    #[test]
    fn the_text_kept_stays_within_the_budget() {
        let text = |n: usize| format!("SELECT {n:>10}");
        let len = text(0).len();
        let cache = Definitions::new(3 * len);
        let parses = AtomicUsize::new(0);
        let parse = |t: &str| one_query(t, &parses);
        for n in 0..3 {
            cache.query(&text(n), parse);
        }
        cache.query(&text(0), parse);
        cache.query(&text(3), parse);
        assert_eq!(cache.lock().text, 3 * len);
        assert_eq!(parses.load(Ordering::Relaxed), 4);
        cache.query(&text(0), parse);
        cache.query(&text(2), parse);
        assert_eq!(parses.load(Ordering::Relaxed), 4, "0 and 2 kept");
        cache.query(&text(1), parse);
        assert_eq!(
            parses.load(Ordering::Relaxed),
            5,
            "1 was the least recently used"
        );
        let long = format!("SELECT 1 AS \"{}\"", "x".repeat(MAX_DEFINITION));
        for _ in 0..2 {
            assert!(cache.query(&long, parse).is_some());
        }
        assert_eq!(parses.load(Ordering::Relaxed), 7, "too long to keep");
        assert_eq!(cache.lock().text, 3 * len);
    }
}
