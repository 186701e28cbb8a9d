//! Many concurrent sessions: `COPYGUARD_BENCH_SESSIONS` (default 1,000)
//! sessions open at once, straight to PostgreSQL and then through copyguard
//! (half as a production role, half as a guarded one), each running
//! `COPYGUARD_BENCH_QUERIES` (default 20) small indexed SELECTs with the
//! simple protocol once every session is connected.
//!
//! Reports how many sessions were served, query latency p50/p99/max per
//! kind against direct, the same for each session's first query apart
//! from its later ones (the first one pays for what a session sets up on
//! its first statement), and copyguard's resident memory before the
//! sessions, while all are open, and after they closed (per session).
//!
//! `cargo bench --bench sessions_compare`; copyguard runs as its own process
//! (the release binary built with the benches, or `COPYGUARD_BENCH_BIN`,
//! an older build to compare with).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::Barrier;

#[path = "support/copyguard_process.rs"]
mod copyguard_process;
#[path = "support/env.rs"]
mod env;
#[path = "support/pgbench_setup.rs"]
mod pgbench_setup;
#[path = "support/run.rs"]
mod run;
use copyguard_process::CopyguardProcess;
use env::env_count;
use pgbench_setup::{DATABASE, GUARDED_PASSWORD, GUARDED_USER, POLICY};
use run::{cpu_seconds, rss_kib};

const SCALE: u32 = 1;
/// Rows of `pgbench_accounts` at scale 1.
const ACCOUNTS: u64 = 100_000;
/// How long after the sessions closed copyguard's memory is read again.
const SETTLE: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sessions_compare: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let sessions = env_count("COPYGUARD_BENCH_SESSIONS", 1000)? as usize;
    let queries = env_count("COPYGUARD_BENCH_QUERIES", 20)? as usize;
    let work = tempfile::Builder::new()
        .prefix("copyguard-sessions-")
        .tempdir()
        .context("creating a temporary directory")?;
    let max_connections = (sessions + 50) as u32;
    let (db, bench) = pgbench_setup::start_db(max_connections, SCALE)?;
    // Every client here comes from one address, and they all log in at
    // once: the per-address cap on connections still starting must fit
    // them.
    let mut proxy_env = vec![
        (
            "COPYGUARD_MAX_CONNECTIONS".to_owned(),
            (sessions * 2).to_string(),
        ),
        (
            "COPYGUARD_MAX_STARTUPS_PER_CLIENT".to_owned(),
            sessions.to_string(),
        ),
    ];
    if let Ok(bin) = std::env::var("COPYGUARD_BENCH_BIN") {
        println!("copyguard binary: {bin}");
        proxy_env.push(("COPYGUARD_BENCH_BIN".to_owned(), bin));
    }
    let proxy = CopyguardProcess::start_with_env(work.path(), db.port(), POLICY, &proxy_env)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the client runtime")?;
    let superuser = bench.user.clone();

    println!("{sessions} sessions x {queries} queries, direct");
    let all_super = vec![Kind::Direct; sessions];
    let direct = rt.block_on(wave(db.port(), &superuser, &all_super, queries, None))?;

    let kinds: Vec<Kind> = (0..sessions)
        .map(|i| {
            if i % 2 == 0 {
                Kind::Production
            } else {
                Kind::Guarded
            }
        })
        .collect();
    let before = rss_kib(proxy.pid());
    let cpu_before = cpu_seconds(proxy.pid());
    println!(
        "{sessions} sessions x {queries} queries through copyguard (half production, half guarded)"
    );
    let proxied = rt.block_on(wave(
        proxy.port(),
        &superuser,
        &kinds,
        queries,
        Some(proxy.pid()),
    ))?;
    let cpu_after = cpu_seconds(proxy.pid());
    std::thread::sleep(SETTLE);
    let after = rss_kib(proxy.pid());

    println!();
    println!(
        "{:<11} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10} {:>12}",
        "kind", "served", "of", "p50_ms", "p99_ms", "max_ms", "p99/direct", "connect_p99"
    );
    let direct_p99 = percentile(&direct.latencies(Kind::Direct), 0.99);
    for (wave, kind) in [
        (&direct, Kind::Direct),
        (&proxied, Kind::Production),
        (&proxied, Kind::Guarded),
    ] {
        let lat = wave.latencies(kind);
        let p99 = percentile(&lat, 0.99);
        println!(
            "{:<11} {:>8} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>10} {:>12.2}",
            kind.name(),
            wave.served(kind),
            wave.total(kind),
            percentile(&lat, 0.5).unwrap_or(f64::NAN),
            p99.unwrap_or(f64::NAN),
            lat.last().copied().unwrap_or(f64::NAN),
            p99.zip(direct_p99)
                .map_or("-".to_owned(), |(p, d)| format!("{:.2}", p / d)),
            percentile(&wave.connects(kind), 0.99).unwrap_or(f64::NAN),
        );
    }
    println!();
    println!(
        "{:<11} {:>13} {:>13} {:>13} {:>13} {:>10}",
        "kind", "first_p50_ms", "first_p99_ms", "later_p50_ms", "later_p99_ms", "later/direct"
    );
    let direct_later = percentile(&direct.latencies_of(Kind::Direct, Some(false)), 0.99);
    for (wave, kind) in [
        (&direct, Kind::Direct),
        (&proxied, Kind::Production),
        (&proxied, Kind::Guarded),
    ] {
        let first = wave.latencies_of(kind, Some(true));
        let later = wave.latencies_of(kind, Some(false));
        let later_p99 = percentile(&later, 0.99);
        println!(
            "{:<11} {:>13.2} {:>13.2} {:>13.2} {:>13.2} {:>10}",
            kind.name(),
            percentile(&first, 0.5).unwrap_or(f64::NAN),
            percentile(&first, 0.99).unwrap_or(f64::NAN),
            percentile(&later, 0.5).unwrap_or(f64::NAN),
            later_p99.unwrap_or(f64::NAN),
            later_p99
                .zip(direct_later)
                .map_or("-".to_owned(), |(p, d)| format!("{:.2}", p / d)),
        );
    }
    let mib =
        |k: Option<u64>| k.map_or("-".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    let per = |k: Option<u64>| {
        k.zip(before).map_or("-".to_owned(), |(k, b)| {
            format!("{:.1} KiB/session", (k as f64 - b as f64) / sessions as f64)
        })
    };
    println!();
    println!("copyguard RSS before      {}", mib(before));
    println!(
        "copyguard RSS all open    {}  ({})",
        mib(proxied.rss_open),
        per(proxied.rss_open)
    );
    println!(
        "copyguard RSS after close {}  ({}, {SETTLE:?} after)",
        mib(after),
        per(after)
    );
    if let Some((b, a)) = cpu_before.zip(cpu_after) {
        println!(
            "copyguard CPU            {:.2} s for the wave ({:.0} us per session: connect, {queries} queries, close)",
            a - b,
            (a - b) * 1e6 / sessions as f64
        );
    }
    drop(proxy);
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Direct,
    Production,
    Guarded,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Production => "production",
            Kind::Guarded => "guarded",
        }
    }
}

/// What one session saw: its kind, connect time, query latencies (ms) and
/// whether every query succeeded.
struct SessionResult {
    kind: Kind,
    connect_ms: f64,
    latencies: Vec<f64>,
    served: bool,
}

struct Wave {
    sessions: Vec<SessionResult>,
    /// copyguard's RSS (KiB) once every session is connected and done.
    rss_open: Option<u64>,
}

impl Wave {
    fn of(&self, kind: Kind) -> impl Iterator<Item = &SessionResult> {
        self.sessions.iter().filter(move |s| s.kind == kind)
    }

    fn latencies(&self, kind: Kind) -> Vec<f64> {
        self.latencies_of(kind, None)
    }

    /// Sorted latencies of `kind`'s queries: all of them, or only each
    /// session's first (`Some(true)`) or only the later ones
    /// (`Some(false)`).
    fn latencies_of(&self, kind: Kind, first: Option<bool>) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .of(kind)
            .flat_map(|s| {
                s.latencies
                    .iter()
                    .enumerate()
                    .filter(move |(q, _)| first.is_none_or(|f| f == (*q == 0)))
                    .map(|(_, l)| *l)
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    fn connects(&self, kind: Kind) -> Vec<f64> {
        let mut v: Vec<f64> = self.of(kind).map(|s| s.connect_ms).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    fn served(&self, kind: Kind) -> usize {
        self.of(kind).filter(|s| s.served).count()
    }

    fn total(&self, kind: Kind) -> usize {
        self.of(kind).count()
    }
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

/// Opens one session per entry of `kinds` at once, waits until all are
/// connected (or failed), runs `queries` SELECTs in each, reads `pid`'s RSS
/// while all are still open, then closes them.
async fn wave(
    port: u16,
    superuser: &str,
    kinds: &[Kind],
    queries: usize,
    pid: Option<u32>,
) -> Result<Wave> {
    let connected = Arc::new(Barrier::new(kinds.len() + 1));
    let done = Arc::new(Barrier::new(kinds.len() + 1));
    let close = Arc::new(Barrier::new(kinds.len() + 1));
    let mut tasks = Vec::with_capacity(kinds.len());
    for (i, &kind) in kinds.iter().enumerate() {
        let (connected, done, close) = (connected.clone(), done.clone(), close.clone());
        let user = if kind == Kind::Guarded {
            GUARDED_USER
        } else {
            superuser
        }
        .to_owned();
        tasks.push(tokio::spawn(async move {
            session(port, &user, kind, i, queries, [connected, done, close]).await
        }));
    }
    connected.wait().await;
    done.wait().await;
    let rss_open = pid.and_then(rss_kib);
    close.wait().await;
    let mut sessions = Vec::with_capacity(tasks.len());
    for task in tasks {
        sessions.push(task.await.context("a session task panicked")?);
    }
    Ok(Wave { sessions, rss_open })
}

/// One session; always passes all three barriers, also when it fails.
async fn session(
    port: u16,
    user: &str,
    kind: Kind,
    i: usize,
    queries: usize,
    [connected, done, close]: [Arc<Barrier>; 3],
) -> SessionResult {
    let conf = format!(
        "host=127.0.0.1 port={port} user={user} password={GUARDED_PASSWORD} \
         dbname={DATABASE} sslmode=disable connect_timeout=60"
    );
    let start = Instant::now();
    let client = match tokio_postgres::connect(&conf, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            Some(client)
        }
        Err(e) => {
            if i < 3 {
                eprintln!("{} session {i}: connect failed: {e}", kind.name());
            }
            None
        }
    };
    let connect_ms = start.elapsed().as_secs_f64() * 1e3;
    connected.wait().await;
    let mut latencies = Vec::with_capacity(queries);
    let mut served = client.is_some();
    if let Some(client) = &client {
        for q in 0..queries {
            let aid = (i * queries + q) as u64 % ACCOUNTS + 1;
            let sql = format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid}");
            let t = Instant::now();
            match client.simple_query(&sql).await {
                Ok(_) => latencies.push(t.elapsed().as_secs_f64() * 1e3),
                Err(e) => {
                    if i < 3 {
                        eprintln!("{} session {i}: query failed: {e}", kind.name());
                    }
                    served = false;
                    break;
                }
            }
        }
    }
    done.wait().await;
    close.wait().await;
    drop(client);
    SessionResult {
        kind,
        connect_ms,
        latencies,
        served,
    }
}
