//! Giving freed heap memory back to the system once the last session has
//! closed. glibc's heap is trimmed at once; mimalloc (the binary's global
//! allocator) keeps freed pages per thread until that thread collects, so
//! every runtime worker collects once, the next time it parks, after each
//! release is asked for.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many releases have been asked for.
static RELEASES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The last release this thread collected for.
    static COLLECTED: Cell<u64> = const { Cell::new(0) };
}

/// Returns what this thread's allocator holds free to the system, and asks
/// every runtime worker to do the same when it next parks.
pub(crate) fn release() {
    RELEASES.fetch_add(1, Ordering::AcqRel);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims glibc's own heap state,
    // under its own locks.
    unsafe {
        libc::malloc_trim(0);
    }
    collect_if_asked();
    // Wake the workers (idle ones are parked already): each collects when
    // it runs one of these, or parks again.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        for _ in 0..WAKE_TASKS {
            runtime.spawn(async {
                collect_if_asked();
            });
        }
    }
}

/// Tasks spawned by [`release`] to wake every runtime worker.
const WAKE_TASKS: usize = 64;

/// The runtime's `on_thread_park` hook: one atomic load, and a collection
/// only when a release was asked for since this thread's last one.
pub fn on_park() {
    collect_if_asked();
}

/// Collects this thread's free memory if a release was asked for since its
/// last collection; whether it did.
fn collect_if_asked() -> bool {
    let asked = RELEASES.load(Ordering::Acquire);
    COLLECTED.with(|done| {
        if done.get() == asked {
            return false;
        }
        done.set(asked);
        // SAFETY: mi_collect frees and purges only the calling thread's
        // own mimalloc heap and abandoned segments, under mimalloc's rules;
        // it takes no pointer.
        unsafe { libmimalloc_sys::mi_collect(true) };
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parked thread collects once per release asked for, not on every
    /// park.
    #[test]
    fn each_release_is_collected_once_per_thread() {
        std::thread::spawn(|| {
            collect_if_asked();
            assert!(!collect_if_asked(), "nothing asked since");
            release();
            assert!(!collect_if_asked(), "release collected here already");
            RELEASES.fetch_add(1, Ordering::AcqRel);
            assert!(collect_if_asked(), "a release asked elsewhere");
            assert!(!collect_if_asked(), "and only once");
        })
        .join()
        .unwrap();
    }
}
