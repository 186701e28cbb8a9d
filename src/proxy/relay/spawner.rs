//! The thread that starts relay threads.
//!
//! Linux copies a thread's wake-up history to the threads it creates: the
//! count of how often it switched between the threads it woke
//! (`wakee_flips`), which the scheduler halves at most once a second and
//! only when the thread wakes another. A runtime worker that has served
//! guarded sessions (each statement wakes the block log's writer,
//! PostgreSQL's backend and the client in turn) holds a count in the
//! thousands. Relay threads started from it inherited it, and their
//! wake-ups of PostgreSQL's backend passed the scheduler's "many partners"
//! test (`wake_wide`), so the backend was not woken next to them: 99% of
//! those wake-ups, against none behind the zero-work forwarder, and 20,650
//! TPS against 32,000 (see `benches/README.md`, "Where the relay threads
//! are woken").
//!
//! The [`Spawner`] starts them from a thread of its own that wakes no one
//! but, for its first seconds, a partner thread once a second: each such
//! wake-up halves the count it inherited itself (from whoever started
//! copyguard), until it is down to one. The relay threads it starts begin
//! with that count, as the forwarder's do.

use std::io;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// Work the spawner runs: starting a relay's two threads, or a guarded
/// session's thread.
type Job = Box<dyn FnOnce() + Send>;

/// How often the spawner wakes its partner: the scheduler halves a
/// thread's count at most once a second.
const SETTLE_EVERY: Duration = Duration::from_millis(1100);
/// How many times: enough to bring any inherited count down to one.
const SETTLE_ROUNDS: u32 = 24;

/// A thread of its own that runs [`Spawner::run`]'s jobs one after the
/// other; it ends when the spawner is dropped.
pub struct Spawner {
    jobs: mpsc::Sender<Job>,
}

impl Spawner {
    /// Starts the spawner's thread, `copyguard-spawn`, and its partner.
    pub fn start() -> io::Result<Spawner> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (nudge, nudged) = mpsc::channel::<()>();
        thread::Builder::new()
            .name("copyguard-spawn-partner".into())
            .spawn(move || while nudged.recv().is_ok() {})?;
        thread::Builder::new()
            .name("copyguard-spawn".into())
            .spawn(move || serve(queue, nudge, SETTLE_EVERY, SETTLE_ROUNDS))?;
        Ok(Spawner { jobs })
    }

    /// Runs `job` on the spawner's thread, or here if that thread is gone.
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) {
        if let Err(unsent) = self.jobs.send(Box::new(job)) {
            (unsent.0)();
        }
    }
}

/// The spawner's loop: runs jobs as they come, and wakes the partner
/// (`nudge`) every `every`, `rounds` times, then lets it go.
fn serve(queue: mpsc::Receiver<Job>, nudge: mpsc::Sender<()>, every: Duration, rounds: u32) {
    let mut settling = (rounds > 0).then_some((nudge, rounds));
    let mut due = Instant::now() + every;
    loop {
        let next = match &mut settling {
            None => queue.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some((nudge, left)) => {
                if Instant::now() >= due {
                    let _ = nudge.send(());
                    *left -= 1;
                    due = Instant::now() + every;
                    if *left == 0 {
                        settling = None;
                    }
                    continue;
                }
                queue.recv_timeout(due.saturating_duration_since(Instant::now()))
            }
        };
        match next {
            Ok(job) => job(),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs run on the spawner's thread, in the order they came.
    #[test]
    fn jobs_run_on_the_spawner_thread_in_order() {
        let spawner = Spawner::start().unwrap();
        let (tx, rx) = mpsc::channel();
        for n in 0..3 {
            let tx = tx.clone();
            spawner.run(move || {
                let name = thread::current().name().map(str::to_owned);
                tx.send((n, name)).unwrap();
            });
        }
        for n in 0..3 {
            assert_eq!(rx.recv().unwrap(), (n, Some("copyguard-spawn".into())));
        }
    }

    /// The partner is woken the given number of times, jobs run in
    /// between, and the partner is let go after the last.
    #[test]
    fn the_partner_is_nudged_a_set_number_of_times_then_let_go() {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (nudge, nudged) = mpsc::channel::<()>();
        let spawner = thread::spawn(move || serve(queue, nudge, Duration::from_millis(5), 4));
        let (tx, rx) = mpsc::channel();
        jobs.send(Box::new(move || tx.send(7).unwrap())).unwrap();
        assert_eq!(rx.recv().unwrap(), 7);
        let mut nudges = 0;
        while nudged.recv().is_ok() {
            nudges += 1;
        }
        assert_eq!(nudges, 4, "then the partner's channel is closed");
        drop(jobs);
        spawner.join().unwrap();
    }
}
