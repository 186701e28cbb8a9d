use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Slices of a window that rows taken close together share: the window
/// slides in steps of `window / SLICES` (expiring rows at most one slice
/// late, which only makes it stricter), and a role's bookkeeping stays
/// small however many rows it takes.
const SLICES: u32 = 64;

/// Rows of classified data each role received over a sliding window,
/// shared by all sessions of a proxy (in memory: a restart resets it).
#[derive(Debug, Default)]
pub struct RoleBudgets {
    taken: Mutex<HashMap<String, Taken>>,
}

/// One role's rows per slice, oldest first, and their sum.
#[derive(Debug, Default)]
struct Taken {
    slices: VecDeque<(Instant, u64)>,
    total: u64,
}

impl RoleBudgets {
    /// Takes `rows` from `role`'s budget of `limit` rows per `window`.
    /// Returns false (and takes nothing) when that would exceed the limit.
    /// Constant time per call: it runs for every classified row streamed.
    pub fn try_take(&self, role: &str, rows: u64, limit: u64, window: Duration) -> bool {
        let now = Instant::now();
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        let t = match taken.get_mut(role) {
            Some(t) => t,
            None => taken.entry(role.to_owned()).or_default(),
        };
        while let Some(&(at, n)) = t.slices.front() {
            if now.duration_since(at) <= window {
                break;
            }
            t.total -= n;
            t.slices.pop_front();
        }
        if t.total.saturating_add(rows) > limit {
            return false;
        }
        let slice = (window / SLICES).max(Duration::from_millis(1));
        match t.slices.back_mut() {
            Some((at, n)) if now.duration_since(*at) < slice => *n += rows,
            _ => t.slices.push_back((now, rows)),
        }
        t.total += rows;
        true
    }

    /// Returns rows taken ahead but not used (a stream took its rows in
    /// chunks and ended early).
    pub fn give_back(&self, role: &str, rows: u64) {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = taken.get_mut(role) else {
            return;
        };
        let mut left = rows.min(t.total);
        t.total -= left;
        while left > 0 {
            let Some((_, n)) = t.slices.back_mut() else {
                break;
            };
            let k = left.min(*n);
            *n -= k;
            left -= k;
            if *n == 0 {
                t.slices.pop_back();
            }
        }
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

    #[test]
    fn many_rows_keep_the_books_small() {
        let b = RoleBudgets::default();
        let w = Duration::from_secs(3600);
        for _ in 0..200_000 {
            assert!(b.try_take("dev", 1, 1_000_000, w));
        }
        assert!(!b.try_take("dev", 800_001, 1_000_000, w));
        let taken = b.taken.lock().unwrap();
        assert!(
            taken["dev"].slices.len() <= 2,
            "{}",
            taken["dev"].slices.len()
        );
        assert_eq!(taken["dev"].total, 200_000);
    }
}
