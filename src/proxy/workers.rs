//! Session runtimes: a pool of single-thread tokio runtimes, one per core,
//! each on a thread of its own. The accept loop hands every new session
//! to the runtime with the fewest live sessions; the session then stays on
//! that thread for its whole life, so its two relay directions never wake
//! another thread and no worker steals work from another.
//! [`on_thread`] runs work on a thread of its own, [`session_runtime`]
//! builds a runtime for one session's sockets there;
//! [`detach`] and [`attach`] move a session's sockets from one runtime
//! to another.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::relay::Spawner;
use super::SessionError;
use crate::wire::Stream;

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

/// The events one `epoll_wait` of a session's own runtime takes at most:
/// it watches a few sockets, not the default 1,024 (16 KiB a runtime).
const SESSION_IO_EVENTS: usize = 16;

/// A single-thread runtime for one session's sockets (I/O and timers
/// enabled, few events per `epoll_wait`). What its tasks spawn lives on it
/// and ends with it: work that must outlive the session goes to another
/// runtime's [`Handle`].
pub(crate) fn session_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_io_events_per_tick(SESSION_IO_EVENTS)
        .build()
}

/// Runs `f` on a new thread named `name`, started by `spawner` when there
/// is one (the thread then inherits the spawner's wake-up history, not
/// the caller's: see [`Spawner`]), and hands its output back; a panic
/// there is resumed here.
pub(crate) async fn on_thread<F, T>(
    name: &str,
    spawner: Option<&Spawner>,
    f: F,
) -> std::io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let name = name.to_owned();
    let start = move || {
        let started = thread::Builder::new().name(name).spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
        });
        if let Err(e) = started {
            tracing::warn!(error = %e, "cannot start a session thread");
        }
    };
    match spawner {
        Some(spawner) => spawner.run(start),
        None => start(),
    }
    match rx.await {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => Err(std::io::Error::other(
            "the session thread could not start or ended without an outcome",
        )),
    }
}

/// A session's two plain TCP sockets, client's then server's, off any
/// runtime: what [`detach`] takes off one for [`attach`] to register on
/// another.
pub(crate) type Detached = (std::net::TcpStream, std::net::TcpStream);

/// Takes the sockets under `client` and `server`, both plain TCP (callers
/// check), off the current runtime.
pub(crate) fn detach(client: Stream, server: Stream) -> Result<Detached, SessionError> {
    let (Some(client), Some(server)) = (client.into_plain(), server.into_plain()) else {
        unreachable!("checked: both sides are plain TCP");
    };
    let client = client
        .into_std()
        .map_err(|e| SessionError::Client(e.into()))?;
    let server = server
        .into_std()
        .map_err(|e| SessionError::Upstream(e.into()))?;
    Ok((client, server))
}

/// Registers [`detach`]ed sockets on the current runtime.
pub(crate) fn attach((client, server): Detached) -> Result<(Stream, Stream), SessionError> {
    let client = tokio::net::TcpStream::from_std(client);
    let server = tokio::net::TcpStream::from_std(server);
    match (client, server) {
        (Ok(c), Ok(s)) => Ok((Stream::Plain(c), Stream::Plain(s))),
        (Err(e), _) => Err(SessionError::Client(e.into())),
        (_, Err(e)) => Err(SessionError::Upstream(e.into())),
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

    /// The future `make` returns, run on a [`session_runtime`] of its own
    /// on a thread of its own, as a guarded session's half is.
    async fn on_own_runtime<F, Fut>(name: &str, make: F) -> std::io::Result<Fut::Output>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future,
        Fut::Output: Send + 'static,
    {
        on_thread(name, None, move || {
            session_runtime().unwrap().block_on(make())
        })
        .await
    }

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

    /// Sessions placed as guarded ones are: on a thread of their own while
    /// a slot is free, here past the limit; each slot is given back when
    /// its session ends, and so is the thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sessions_run_on_threads_of_their_own_up_to_the_limit() {
        use crate::proxy::relay::ThreadSlots;
        let slots = Arc::new(ThreadSlots::new(1));
        let (release, released) = tokio::sync::watch::channel(false);
        let mut sessions = Vec::new();
        for _ in 0..2 {
            let (slots, mut released) = (slots.clone(), released.clone());
            let (ready, is_ready) = oneshot::channel();
            sessions.push(tokio::spawn(async move {
                let session = async move {
                    let _ = ready.send(());
                    let _ = released.wait_for(|r| *r).await;
                    std::thread::current().name().map(str::to_owned)
                };
                match slots.take() {
                    Some(_slot) => on_own_runtime("copyguard-guarded", || session)
                        .await
                        .unwrap(),
                    None => session.await,
                }
            }));
            is_ready.await.unwrap();
        }
        assert_eq!(slots.taken(), 1, "one session on a thread, the other here");
        release.send(true).unwrap();
        let mut names = Vec::new();
        for session in sessions {
            names.push(session.await.unwrap());
        }
        assert_eq!(names[0].as_deref(), Some("copyguard-guarded"));
        assert_ne!(names[1].as_deref(), Some("copyguard-guarded"));
        assert_eq!(slots.taken(), 0, "the slot is given back");
    }

    /// Work a session on its own thread spawns on the server's runtime (a
    /// catalog load other sessions wait for) completes after the session
    /// and its runtime are gone; what it spawns on its own runtime ends
    /// with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_spawned_on_the_server_runtime_outlives_a_session_thread() {
        let server = Handle::current();
        let (rows_tx, rows_rx) = oneshot::channel::<u32>();
        let (loaded_tx, loaded_rx) = oneshot::channel::<u32>();
        let (own_tx, own_rx) = oneshot::channel::<()>();
        on_own_runtime("copyguard-guarded", move || async move {
            {
                let _server = server.enter();
                tokio::spawn(async move {
                    let rows = rows_rx.await.unwrap();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let _ = loaded_tx.send(rows);
                });
            }
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                let _ = own_tx.send(());
            });
            rows_tx.send(7).unwrap();
        })
        .await
        .unwrap();
        assert_eq!(loaded_rx.await.unwrap(), 7, "the load is published");
        assert!(
            own_rx.await.is_err(),
            "the session's own task ended with it"
        );
    }

    /// A panic on a session's thread reaches the task that placed it.
    #[tokio::test]
    async fn a_panic_on_a_session_thread_is_resumed_where_it_was_placed() {
        let placed = tokio::spawn(on_own_runtime("copyguard-guarded", || async {
            panic!("session panicked");
        }));
        assert!(placed.await.unwrap_err().is_panic());
    }
}
