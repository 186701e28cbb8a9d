//! `copyguard serve`.

use std::sync::Arc;

use anyhow::Context;
use tracing::{info, warn};

use crate::audit::{AuditLog, Event};
use crate::config::{Config, ConfigArgs};
use crate::policy::PolicyStore;
use crate::proxy::relay::RelayThreads;
use crate::proxy::{Server, SessionRuntimes};
use crate::telemetry;

/// Loads and validates the configuration, then serves until SIGTERM/SIGINT;
/// SIGHUP reloads the policy.
pub fn run(args: &ConfigArgs) -> anyhow::Result<()> {
    let config = Config::load(args)?;
    telemetry::init_logging(config.log_format, &config.log_level);
    let shape = Shape::from_env()?;
    let guarded = GuardedShape::from_env()?;
    // Started first, from a thread that has woken no other yet: the relay
    // threads inherit the spawner's wake-up history (`Spawner`).
    let mut relay_threads = match shape {
        Shape::RelayThreads(max) => {
            Some(RelayThreads::new(max).context("cannot start the relay spawner")?)
        }
        _ => None,
    };
    shape.runtime()?.block_on(async {
        let mut server = Server::bind(config).await.context("cannot start")?;
        match shape {
            Shape::PerCore(threads) => {
                let pool =
                    SessionRuntimes::start(threads).context("cannot start session runtimes")?;
                info!(
                    threads,
                    "sessions spread over one single-thread runtime per core"
                );
                server = server.with_session_runtimes(pool);
            }
            Shape::Split(threads) => {
                let pool =
                    SessionRuntimes::start(threads).context("cannot start relay runtimes")?;
                info!(
                    threads,
                    "production relays spread over one single-thread runtime per core"
                );
                server = server.with_relay_runtimes(pool);
            }
            Shape::RelayThreads(max) => {
                info!(
                    max,
                    "production relays on two blocking threads each, up to max at once"
                );
                if let Some(threads) = relay_threads.take() {
                    server = server.with_relay_threads(threads);
                }
            }
            Shape::MultiThread | Shape::CurrentThread => {}
        }
        if matches!(
            shape,
            Shape::MultiThread | Shape::Split(_) | Shape::RelayThreads(_)
        ) {
            match guarded {
                GuardedShape::Threads(max) => {
                    info!(max, "guarded sessions on a thread each, up to max at once");
                    server = server.with_guarded_threads(max);
                }
                GuardedShape::Shared => {}
            }
        }
        let reloader = tokio::spawn(reload_on_sighup(server.policy_store(), server.audit()));
        report_addresses(&server);
        server.run(super::shutdown_signal()).await;
        reloader.abort();
        Ok(())
    })
}

/// Prints where `server` listens on stdout, once both addresses are bound
/// and before the first accept: `admin listening on ADDR` (with an admin
/// endpoint), then `listening on ADDR`. With port 0 the OS picks the port;
/// these lines say which (README, "Running it"). A closed stdout is no error.
fn report_addresses(server: &Server) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Some(admin) = server.admin_addr() {
        let _ = writeln!(out, "admin listening on {admin}");
    }
    let _ = writeln!(out, "listening on {}", server.local_addr());
    let _ = out.flush();
}

/// The serving runtime's shape, from `COPYGUARD_RUNTIME`:
/// `threads` (the default: sessions on tokio's work-stealing scheduler,
/// one worker per core, `TOKIO_WORKER_THREADS=N` read by tokio; each
/// production relay between plain TCP sockets, once authenticated, on two
/// blocking threads of its own, one per direction, as the zero-work
/// forwarder), `multi_thread` (the same without the relay threads: every
/// relay on the work-stealing runtime), `current_thread` (every session
/// on one thread), `per_core` (one single-thread runtime per core, each
/// session on one of them for its whole life, the least loaded at accept;
/// `TOKIO_WORKER_THREADS=N` sets how many) or `split` (as `threads`, but
/// each such relay on one of N single-thread runtimes, N as for
/// `per_core`, `COPYGUARD_RELAY_THREADS=N` overrides). With `threads`, at
/// most `COPYGUARD_THREADED_RELAYS=N` relays (default
/// [`THREADED_PER_CORE`] per core) run on threads at once; the others stay on the
/// work-stealing runtime. Guarded sessions: [`GuardedShape`].
/// `COPYGUARD_EVENT_INTERVAL=N` sets the scheduler ticks
/// between I/O polls. See `benches/README.md`, "Profile".
#[derive(Clone, Copy)]
enum Shape {
    MultiThread,
    CurrentThread,
    PerCore(usize),
    Split(usize),
    RelayThreads(usize),
}

/// Where guarded sessions between plain TCP sockets run once
/// authenticated (with `threads`, `multi_thread` or `split`), from
/// `COPYGUARD_GUARDED`: `shared` (the default: on the work-stealing
/// runtime, with the sessions' other work) or `threads` (each on two
/// threads of its own, one per half, at most
/// `COPYGUARD_THREADED_GUARDED=N` at once, default [`THREADED_PER_CORE`]
/// per core; the others shared). See `benches/README.md`, "Guarded
/// sessions on two threads".
enum GuardedShape {
    Shared,
    Threads(usize),
}

impl GuardedShape {
    fn from_env() -> anyhow::Result<GuardedShape> {
        Ok(match std::env::var("COPYGUARD_GUARDED").as_deref() {
            Ok("shared") | Err(_) => GuardedShape::Shared,
            Ok("threads") => {
                GuardedShape::Threads(count("COPYGUARD_THREADED_GUARDED", threaded_default())?)
            }
            Ok(other) => {
                anyhow::bail!("COPYGUARD_GUARDED must be shared or threads, got {other:?}")
            }
        })
    }
}

/// How many production relays or guarded sessions (two threads each) run on
/// threads of their own at once by default, per core. A thread of its own
/// wins while few sessions are busy on each core; hundreds of them share
/// the cores with the runtime's workers as equals and starve the sessions
/// those serve (1,000 sessions on 2 cores: query p99 median 470 ms with 256
/// threaded relays, 367 ms with 16, 396 ms with none; `benches/README.md`,
/// "sessions_compare").
const THREADED_PER_CORE: usize = 8;

/// [`THREADED_PER_CORE`] times the cores.
fn threaded_default() -> usize {
    THREADED_PER_CORE * cores()
}

/// The cores this process may run on (1 when unknown).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Shape {
    fn from_env() -> anyhow::Result<Shape> {
        Ok(match std::env::var("COPYGUARD_RUNTIME").as_deref() {
            Ok("current_thread") => Shape::CurrentThread,
            Ok("multi_thread") => Shape::MultiThread,
            Ok("per_core") => Shape::PerCore(threads("TOKIO_WORKER_THREADS")?),
            Ok("split") => Shape::Split(threads("COPYGUARD_RELAY_THREADS")?),
            Ok("threads") | Err(_) => {
                Shape::RelayThreads(count("COPYGUARD_THREADED_RELAYS", threaded_default())?)
            }
            Ok(other) => anyhow::bail!(
                "COPYGUARD_RUNTIME must be threads, multi_thread, current_thread, per_core or split, got {other:?}"
            ),
        })
    }

    /// The runtime `serve` runs on: with `per_core`, a single-thread one
    /// that accepts, serves the admin endpoint and writes the block log.
    fn runtime(&self) -> anyhow::Result<tokio::runtime::Runtime> {
        let mut builder = match self {
            Shape::MultiThread | Shape::Split(_) | Shape::RelayThreads(_) => {
                tokio::runtime::Builder::new_multi_thread()
            }
            Shape::CurrentThread | Shape::PerCore(_) => {
                tokio::runtime::Builder::new_current_thread()
            }
        };
        if let Ok(n) = std::env::var("COPYGUARD_EVENT_INTERVAL") {
            let n = n
                .parse()
                .with_context(|| format!("COPYGUARD_EVENT_INTERVAL must be a count, got {n:?}"))?;
            builder.event_interval(n);
        }
        Ok(builder.enable_all().thread_name("copyguard").build()?)
    }
}

/// A count of threads from the environment variable `var`, else one per
/// core.
fn threads(var: &str) -> anyhow::Result<usize> {
    Ok(match std::env::var(var) {
        Ok(n) => n
            .parse()
            .ok()
            .filter(|&n: &usize| n > 0)
            .with_context(|| format!("{var} must be a positive count, got {n:?}"))?,
        Err(_) => cores(),
    })
}

/// A count from the environment variable `var` (0 allowed), else
/// `default`.
fn count(var: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(var) {
        Ok(n) => n
            .parse()
            .with_context(|| format!("{var} must be a count, got {n:?}")),
        Err(_) => Ok(default),
    }
}

/// Reloads the policy on every SIGHUP. An invalid policy is refused and
/// logged; the one in force stays.
pub async fn reload_on_sighup(store: Arc<PolicyStore>, audit: AuditLog) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        warn!("cannot listen for SIGHUP; policy hot reload disabled");
        return;
    };
    while hup.recv().await.is_some() {
        reload(&store, &audit).await;
    }
}

/// Reloads the policy once, logging the outcome and recording it in the
/// block log.
pub async fn reload(store: &PolicyStore, audit: &AuditLog) {
    let outcome = store.reload();
    let detail = outcome.as_ref().err().map(|e| e.to_string());
    if let Err(e) = audit
        .record(Event::policy_reload(
            outcome.is_ok(),
            Some(store.current().version().to_owned()),
            detail,
        ))
        .await
    {
        warn!(error = %e, "policy reload not recorded in the block log");
    }
    match outcome {
        Ok(warnings) => {
            metrics::counter!(telemetry::POLICY_RELOADS, "outcome" => "ok").increment(1);
            for w in &warnings {
                warn!(warning = %w, "policy warning");
            }
            info!(dir = %store.dir().display(), "policy reloaded");
        }
        Err(e) => {
            metrics::counter!(telemetry::POLICY_RELOADS, "outcome" => "refused").increment(1);
            warn!(dir = %store.dir().display(), error = %e, "new policy refused; the previous one stays in force");
        }
    }
}
