//! Session runtimes: a pool of single-thread tokio runtimes, one per core,
//! each on a thread of its own. The accept loop hands every new session
//! to the runtime with the fewest live sessions; the session then stays on
//! that thread for its whole life, so its two relay directions never wake
//! another thread and no worker steals work from another.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One single-thread runtime and the sessions it runs.
struct Worker {
    handle: Handle,
    live: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// Runtimes sessions are spread across. Dropping the pool stops the
/// runtimes (tasks still on them are dropped) and joins their threads.
pub struct SessionRuntimes {
    workers: Vec<Worker>,
}

/// Counts a session against its runtime until dropped.
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SessionRuntimes {
    /// Starts `threads` single-thread runtimes (at least one), with I/O and
    /// timers enabled, on threads named `copyguard-N`.
    pub fn start(threads: usize) -> std::io::Result<SessionRuntimes> {
        let mut workers = Vec::with_capacity(threads.max(1));
        for n in 0..threads.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = thread::Builder::new()
                .name(format!("copyguard-{n}"))
                .spawn(move || {
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                    rt.shutdown_timeout(Duration::from_secs(1));
                })?;
            workers.push(Worker {
                handle,
                live: Arc::new(AtomicUsize::new(0)),
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(SessionRuntimes { workers })
    }

    /// How many runtimes the pool has.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Always false: a pool has at least one runtime.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Live sessions per runtime, in order.
    pub fn loads(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|w| w.live.load(Ordering::Relaxed))
            .collect()
    }

    /// The runtime with the fewest live tasks, and its count taken for one
    /// more until the [`Live`] is dropped.
    fn least_loaded(&self) -> (&Worker, Live) {
        let worker = self
            .workers
            .iter()
            .min_by_key(|w| w.live.load(Ordering::Relaxed))
            .expect("at least one runtime");
        worker.live.fetch_add(1, Ordering::Relaxed);
        (worker, Live(worker.live.clone()))
    }

    /// Picks the runtime with the fewest live sessions and wraps `make`'s
    /// session so that it counts there while it runs. `make` is called on
    /// that runtime's thread (register sockets there, not before).
    pub(crate) fn place<F, Fut>(&self, make: F) -> (Handle, impl Future<Output = ()> + Send)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let (worker, live) = self.least_loaded();
        let task = async move {
            let _live = live;
            make().await;
        };
        (worker.handle.clone(), task)
    }
}

impl SessionRuntimes {
    /// Runs the future `make` returns on the runtime with the fewest live
    /// tasks, counted there while it runs; `make` is called on that
    /// runtime's thread. The handle can be awaited from any runtime.
    pub(crate) fn spawn<F, Fut>(&self, make: F) -> JoinHandle<Fut::Output>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let (worker, live) = self.least_loaded();
        worker.handle.spawn(async move {
            let _live = live;
            make().await
        })
    }
}

impl Drop for SessionRuntimes {
    fn drop(&mut self) {
        for w in &mut self.workers {
            if let Some(stop) = w.stop.take() {
                let _ = stop.send(());
            }
        }
        for w in &mut self.workers {
            if let Some(thread) = w.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_go_to_the_least_loaded_runtime_and_stay_on_its_thread() {
        let pool = SessionRuntimes::start(2).unwrap();
        let mut releases = Vec::new();
        let (names_tx, names_rx) = std::sync::mpsc::channel();
        for _ in 0..3 {
            let (release, released) = oneshot::channel::<()>();
            releases.push(release);
            let names = names_tx.clone();
            let (handle, task) = pool.place(move || async move {
                let before = std::thread::current().name().map(str::to_owned);
                let _ = released.await;
                let after = std::thread::current().name().map(str::to_owned);
                names.send((before, after)).unwrap();
            });
            handle.spawn(task);
        }
        let mut loads = pool.loads();
        loads.sort_unstable();
        assert_eq!(loads, vec![1, 2]);
        drop(releases);
        for _ in 0..3 {
            let (before, after) = names_rx.recv().unwrap();
            assert!(before.as_deref().unwrap().starts_with("copyguard-"));
            assert_eq!(before, after);
        }
        while pool.loads().iter().any(|&n| n > 0) {
            std::thread::yield_now();
        }
        assert_eq!(pool.len(), 2);
    }
}
