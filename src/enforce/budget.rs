use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rows of classified data each role received over a sliding window,
/// shared by all sessions of a proxy (in memory: a restart resets it).
#[derive(Debug, Default)]
pub struct RoleBudgets {
    taken: Mutex<HashMap<String, VecDeque<(Instant, u64)>>>,
}

impl RoleBudgets {
    /// Takes `rows` from `role`'s budget of `limit` rows per `window`.
    /// Returns false (and takes nothing) when that would exceed the limit.
    pub fn try_take(&self, role: &str, rows: u64, limit: u64, window: Duration) -> bool {
        let now = Instant::now();
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        let entries = taken.entry(role.to_owned()).or_default();
        while entries
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > window)
        {
            entries.pop_front();
        }
        let used: u64 = entries.iter().map(|(_, n)| n).sum();
        if used.saturating_add(rows) > limit {
            return false;
        }
        match entries.back_mut() {
            Some((at, n)) if *at == now => *n += rows,
            _ => entries.push_back((now, rows)),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_limits_per_role() {
        let b = RoleBudgets::default();
        let w = Duration::from_secs(3600);
        assert!(b.try_take("dev", 5, 10, w));
        assert!(b.try_take("dev", 5, 10, w));
        assert!(!b.try_take("dev", 1, 10, w));
        assert!(b.try_take("other", 10, 10, w));
        let short = Duration::from_millis(1);
        let b = RoleBudgets::default();
        assert!(b.try_take("dev", 10, 10, short));
        std::thread::sleep(Duration::from_millis(5));
        assert!(b.try_take("dev", 10, 10, short));
    }
}
