//! What several copyguard instances must share, behind small interfaces
//! so that a shared store can replace the in-process default without
//! touching the code that uses it. For now: how often each dump grant has
//! been used ([`GrantUses`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long after the last session of a grant closes a new session still
/// counts as the same use (pg_dump's parallel workers connect and
/// disconnect around the leader; a restart of a failed dump right away is
/// the same use too).
pub const DEFAULT_USE_GRACE: Duration = Duration::from_secs(30);

/// Counts the uses of dump grants.
///
/// The rule: a *use* is a period in which at least one session of the
/// grant is open, extended by a grace period after the last one closes.
/// A session that starts while a use is in progress joins it (the worker
/// connections of one `pg_dump -j N`, overlapping in time, are one use);
/// one that starts later begins a new use, if the grant allows another.
pub trait GrantUses: Send + Sync + std::fmt::Debug {
    /// Opens a session of `grant_id`, which allows `allowed` uses.
    /// `Ok(n)`: the session belongs to use number `n` (from 1). `Err(n)`:
    /// refused, the `n` uses allowed are spent.
    fn open(&self, grant_id: &str, allowed: u32) -> Result<u32, u32>;
    /// Closes a session opened with [`GrantUses::open`].
    fn close(&self, grant_id: &str);
}

#[derive(Debug, Default)]
struct Entry {
    uses: u32,
    open: u32,
    last_close: Option<Instant>,
}

/// The in-process [`GrantUses`]: counts held in memory (lost on restart,
/// not shared between instances).
#[derive(Debug)]
pub struct LocalGrantUses {
    grace: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl LocalGrantUses {
    /// Counts with a grace period of `grace` after the last session.
    pub fn new(grace: Duration) -> LocalGrantUses {
        LocalGrantUses {
            grace,
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl Default for LocalGrantUses {
    fn default() -> LocalGrantUses {
        LocalGrantUses::new(DEFAULT_USE_GRACE)
    }
}

impl GrantUses for LocalGrantUses {
    fn open(&self, grant_id: &str, allowed: u32) -> Result<u32, u32> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.entry(grant_id.to_owned()).or_default();
        let in_use = entry.uses > 0
            && (entry.open > 0 || entry.last_close.is_some_and(|t| t.elapsed() <= self.grace));
        if !in_use {
            if entry.uses >= allowed {
                return Err(allowed);
            }
            entry.uses += 1;
        }
        entry.open += 1;
        Ok(entry.uses)
    }

    fn close(&self, grant_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get_mut(grant_id) {
            entry.open = entry.open.saturating_sub(1);
            if entry.open == 0 {
                entry.last_close = Some(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_sessions_are_one_use() {
        let uses = LocalGrantUses::new(Duration::ZERO);
        assert_eq!(uses.open("g", 1), Ok(1));
        assert_eq!(uses.open("g", 1), Ok(1));
        assert_eq!(uses.open("g", 1), Ok(1));
        uses.close("g");
        uses.close("g");
        assert_eq!(uses.open("g", 1), Ok(1), "one still open");
        uses.close("g");
        uses.close("g");
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(uses.open("g", 1), Err(1));
        assert_eq!(uses.open("other", 1), Ok(1));
    }

    #[test]
    fn grace_joins_and_uses_are_counted() {
        let uses = LocalGrantUses::new(Duration::from_secs(60));
        assert_eq!(uses.open("g", 2), Ok(1));
        uses.close("g");
        assert_eq!(uses.open("g", 2), Ok(1), "within the grace period");
        uses.close("g");
        let uses = LocalGrantUses::new(Duration::ZERO);
        assert_eq!(uses.open("g", 2), Ok(1));
        uses.close("g");
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(uses.open("g", 2), Ok(2));
        uses.close("g");
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(uses.open("g", 2), Err(2));
        uses.close("never-opened");
    }
}
