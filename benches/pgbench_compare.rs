//! End-to-end throughput: `pgbench -S` straight to PostgreSQL, through
//! copyguard (a production and a guarded role), through pgbouncer (session
//! mode) and through a zero-work forwarder, interleaved in one run.
//!
//! Run with `cargo bench --bench pgbench_compare` (or `benches/run-pgbench.sh`,
//! which installs pgbouncer first). `COPYGUARD_BENCH_ROUNDS` (default 3) and
//! `COPYGUARD_BENCH_SECONDS` (default 10) set the number of rounds and the
//! length of each pgbench run; `COPYGUARD_BENCH_TARGETS` (comma-separated)
//! and `COPYGUARD_BENCH_PROTOCOLS` narrow the run; `COPYGUARD_BENCH_ALT_ENV`
//! (`K=V,K=V`) adds a second copyguard process, targets `alt` and
//! `alt-guarded`, started with those environment variables, for A/B
//! comparisons of runtime settings (`COPYGUARD_BENCH_ALT2_ENV`: a third,
//! `alt2` and `alt2-guarded`).
//! Every round runs every protocol against every target, rotating the order
//! of targets from round to round, so that machine noise hits all targets
//! alike; the table reports medians across rounds.
//!
//! copyguard (the release binary), pgbouncer and the forwarder each run as
//! a process of their own; for each the table gives the CPU time the
//! process used per transaction (utime + stime from `/proc/PID/stat`), a
//! figure the machine's other load does not change much.
//!
//! Everything started here is stopped on the way out, also on error.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

#[path = "support/copyguard_process.rs"]
mod copyguard_process;
#[path = "support/env.rs"]
mod env;
#[path = "support/forwarder.rs"]
mod forwarder;
#[path = "support/pgbench_setup.rs"]
mod pgbench_setup;
#[path = "support/pgbouncer.rs"]
mod pgbouncer;
#[path = "support/run.rs"]
mod run;
use copyguard_process::CopyguardProcess;
use env::env_count;
use forwarder::Forwarder;
use pgbench_setup::{Pgbench, DATABASE, GUARDED_USER, POLICY};
use pgbouncer::PgBouncer;
use run::{children_cpu_seconds, context_switches, cpu_seconds, cpu_with_children, machine_stat};

const SCALE: u32 = 10;
const CLIENTS: u32 = 8;
const THREADS: u32 = 2;
const PROTOCOLS: [&str; 2] = ["simple", "prepared"];
/// Length of the untimed run through each target before the rounds.
const WARM_UP_SECONDS: u64 = 3;
/// Extra time a pgbench run gets beyond its `-T` before it is killed.
const RUN_SLACK: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    forwarder::serve_if_asked();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgbench_compare: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let rounds = env_count("COPYGUARD_BENCH_ROUNDS", 3)?;
    let seconds = env_count("COPYGUARD_BENCH_SECONDS", 10)?;
    let wanted = env_list("COPYGUARD_BENCH_TARGETS");
    let protocols: Vec<&str> = match env_list("COPYGUARD_BENCH_PROTOCOLS") {
        Some(list) => PROTOCOLS
            .into_iter()
            .filter(|p| list.iter().any(|w| w == p))
            .collect(),
        None => PROTOCOLS.to_vec(),
    };
    let work = tempfile::Builder::new()
        .prefix("copyguard-pgbench-")
        .tempdir()
        .context("creating a temporary directory")?;

    let (db, bench) = pgbench_setup::start_db(100, SCALE)?;
    let postmaster = std::fs::read_to_string(db.data_dir().join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next()?.trim().parse::<u32>().ok());
    let proxy = CopyguardProcess::start(&work.path().join("copyguard"), db.port(), POLICY)?;
    let alt = alt_process(&work, db.port(), "alt", "COPYGUARD_BENCH_ALT_ENV")?;
    let alt2 = alt_process(&work, db.port(), "alt2", "COPYGUARD_BENCH_ALT2_ENV")?;
    let bouncer = match PgBouncer::start(work.path(), db.port(), DATABASE, 200) {
        Ok(bouncer) => {
            println!("{} on 127.0.0.1:{}", bouncer.version, bouncer.port);
            Some(bouncer)
        }
        Err(e) => {
            println!("pgbouncer skipped: {e:#}");
            None
        }
    };
    let forwarder = Forwarder::start(SocketAddr::from((Ipv4Addr::LOCALHOST, db.port())))
        .context("starting the zero-work forwarder")?;
    println!(
        "zero-work forwarder (process {}) on 127.0.0.1:{}",
        forwarder.pid(),
        forwarder.port
    );

    let superuser = bench.user.as_str();
    let mut targets = vec![
        Target::new("direct", db.port(), superuser, None),
        Target::new("copyguard", proxy.port(), superuser, Some(proxy.pid())),
        Target::new("guarded", proxy.port(), GUARDED_USER, Some(proxy.pid())),
        Target::new(
            "forwarder",
            forwarder.port,
            superuser,
            Some(forwarder.pid()),
        ),
    ];
    if let Some(bouncer) = &bouncer {
        targets.push(Target::new(
            "pgbouncer",
            bouncer.port,
            superuser,
            Some(bouncer.pid()),
        ));
    }
    for (alt, name, guarded) in [
        (&alt, "alt", "alt-guarded"),
        (&alt2, "alt2", "alt2-guarded"),
    ] {
        if let Some(alt) = alt {
            targets.push(Target::new(name, alt.port(), superuser, Some(alt.pid())));
            targets.push(Target::new(
                guarded,
                alt.port(),
                GUARDED_USER,
                Some(alt.pid()),
            ));
        }
    }
    if let Some(wanted) = &wanted {
        targets.retain(|t| wanted.iter().any(|w| w == t.name));
    }

    let warm_up = WARM_UP_SECONDS.min(seconds);
    println!("warm-up: {warm_up} s through each target");
    let mut usable = Vec::new();
    for target in targets {
        match select_only(&bench, &target, "simple", warm_up, postmaster) {
            Ok(_) => usable.push(target),
            Err(e) if target.name == "pgbouncer" => {
                println!("pgbouncer skipped: warm-up failed: {e:#}");
            }
            Err(e) => return Err(e.context(format!("warm-up through {}", target.name))),
        }
    }
    let targets = usable;

    println!(
        "{rounds} round(s) x {} protocols x {} targets x {seconds} s \
         (pgbench -S -c {CLIENTS} -j {THREADS} -n, scale {SCALE})",
        protocols.len(),
        targets.len()
    );
    let mut results = Results::default();
    for round in 1..=rounds {
        for &protocol in &protocols {
            for i in 0..targets.len() {
                let target = &targets[(i + round as usize - 1) % targets.len()];
                let key = (protocol, target.name);
                match select_only(&bench, target, protocol, seconds, postmaster) {
                    Ok(m) => {
                        println!(
                            "round {round}/{rounds}  {protocol:<9} {:<10} tps {:>10.1}  latency {:.3} ms  cpu {} us/txn  \
                             postgres {} pgbench {} us/txn  machine busy {}%  cs/txn {} (proxy {})",
                            target.name,
                            m.tps,
                            m.latency_ms,
                            fmt(m.cpu_us, 1),
                            fmt(m.postgres_us, 1),
                            fmt(Some(m.pgbench_us), 1),
                            fmt(m.busy.map(|b| b * 100.0), 0),
                            fmt(m.switches, 1),
                            fmt(m.proxy_switches, 2),
                        );
                        results.runs.entry(key).or_default().push(m);
                    }
                    Err(e) => {
                        println!(
                            "round {round}/{rounds}  {protocol:<9} {:<10} FAILED: {e:#}",
                            target.name
                        );
                        *results.failures.entry(key).or_default() += 1;
                    }
                }
            }
        }
    }

    println!();
    print_table(&protocols, &targets, &results);
    println!();
    print_ratios(&protocols, &results);
    Ok(())
}

/// A second copyguard process (`name`) started with the environment
/// variables `var` lists (`K=V,K=V`), if it is set.
fn alt_process(
    work: &tempfile::TempDir,
    upstream: u16,
    name: &str,
    var: &str,
) -> Result<Option<CopyguardProcess>> {
    let Ok(vars) = std::env::var(var) else {
        return Ok(None);
    };
    let vars: Vec<(String, String)> = vars
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    println!("{name}: copyguard with {vars:?}");
    CopyguardProcess::start_with_env(&work.path().join(name), upstream, POLICY, &vars).map(Some)
}

/// A comma-separated list from the environment.
fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
}

/// Somewhere pgbench connects to, as which role, and the process whose CPU
/// time it costs: `guarded` is the same copyguard as `copyguard`, with a
/// role whose sessions are guarded.
struct Target<'a> {
    name: &'static str,
    port: u16,
    user: &'a str,
    pid: Option<u32>,
}

impl<'a> Target<'a> {
    fn new(name: &'static str, port: u16, user: &'a str, pid: Option<u32>) -> Target<'a> {
        Target {
            name,
            port,
            user,
            pid,
        }
    }
}

/// What one pgbench run reported.
#[derive(Clone, Copy, Debug)]
struct Measurement {
    tps: f64,
    latency_ms: f64,
    /// CPU time of the target's process per transaction, in microseconds.
    cpu_us: Option<f64>,
    /// CPU time of PostgreSQL (postmaster and its reaped backends) per
    /// transaction, in microseconds.
    postgres_us: Option<f64>,
    /// CPU time of pgbench per transaction, in microseconds.
    pgbench_us: f64,
    /// Share of the machine's CPU time (all cores) that was busy.
    busy: Option<f64>,
    /// Context switches on the whole machine per transaction.
    switches: Option<f64>,
    /// Context switches of the proxy's threads per transaction (not for
    /// the forwarder, whose threads end with their connections).
    proxy_switches: Option<f64>,
}

impl Measurement {
    /// CPU time of every process in the transaction's path (the proxy,
    /// when there is one, PostgreSQL and pgbench) per transaction, in
    /// microseconds.
    fn all_cpu_us(&self) -> Option<f64> {
        Some(self.cpu_us.unwrap_or(0.0) + self.postgres_us? + self.pgbench_us)
    }
}

#[derive(Default)]
struct Results<'a> {
    runs: HashMap<(&'a str, &'a str), Vec<Measurement>>,
    failures: HashMap<(&'a str, &'a str), u32>,
}

impl Results<'_> {
    fn median_of(
        &self,
        protocol: &str,
        target: &str,
        f: impl Fn(&Measurement) -> Option<f64>,
    ) -> Option<f64> {
        self.runs
            .get(&(protocol, target))
            .and_then(|runs| median(runs.iter().filter_map(&f)))
    }
}

/// A `pgbench -S` run of `seconds` with the given query protocol, with the
/// CPU time the target's process used meanwhile.
fn select_only(
    bench: &Pgbench,
    target: &Target,
    protocol: &str,
    seconds: u64,
    postmaster: Option<u32>,
) -> Result<Measurement> {
    let clients = CLIENTS.to_string();
    let threads = THREADS.to_string();
    let duration = seconds.to_string();
    let counted_switches = target.pid.filter(|_| target.name != "forwarder");
    let switches_before = counted_switches.map(context_switches);
    let postgres_before = postmaster.and_then(cpu_with_children);
    let pgbench_before = children_cpu_seconds();
    let machine_before = machine_stat();
    let cpu_before = target.pid.and_then(cpu_seconds);
    let out = bench.run_as(
        target.port,
        target.user,
        &[
            "-S", "-n", "-c", &clients, "-j", &threads, "-T", &duration, "-M", protocol,
        ],
        Duration::from_secs(seconds) + RUN_SLACK,
    )?;
    let cpu_after = target.pid.and_then(cpu_seconds);
    let machine_after = machine_stat();
    let pgbench_after = children_cpu_seconds();
    let switches_after = counted_switches.map(context_switches);
    // The postmaster reaps the backends just after pgbench disconnects.
    std::thread::sleep(Duration::from_millis(300));
    let postgres_after = postmaster.and_then(cpu_with_children);
    let (tps, latency_ms, transactions) =
        parse_pgbench(&out).ok_or_else(|| anyhow!("no tps/latency in pgbench output:\n{out}"))?;
    let per_txn = |b: Option<f64>, a: Option<f64>| {
        b.zip(a)
            .filter(|_| transactions > 0.0)
            .map(|(b, a)| (a - b) * 1e6 / transactions)
    };
    let machine = machine_before.zip(machine_after);
    Ok(Measurement {
        tps,
        latency_ms,
        cpu_us: per_txn(cpu_before, cpu_after),
        postgres_us: per_txn(postgres_before, postgres_after),
        pgbench_us: (pgbench_after - pgbench_before) * 1e6 / transactions.max(1.0),
        busy: machine.map(|(b, a)| (a.busy - b.busy) / (a.total - b.total).max(1e-9)),
        switches: machine.map(|(b, a)| (a.ctxt - b.ctxt) as f64 / transactions.max(1.0)),
        proxy_switches: switches_before
            .zip(switches_after)
            .map(|(b, a)| a.saturating_sub(b) as f64 / transactions.max(1.0)),
    })
}

/// Reads `tps = ...` (excluding connection set-up when pgbench reports
/// both), `latency average = ... ms` and the number of transactions.
fn parse_pgbench(out: &str) -> Option<(f64, f64, f64)> {
    let tps_lines: Vec<&str> = out.lines().filter(|l| l.starts_with("tps = ")).collect();
    let tps_line = tps_lines
        .iter()
        .find(|l| l.contains("without initial connection time") || l.contains("excluding"))
        .or_else(|| tps_lines.first())?;
    let tps = first_number(tps_line.strip_prefix("tps = ")?)?;
    let latency_ms = out
        .lines()
        .find_map(|l| l.strip_prefix("latency average = "))
        .and_then(first_number)?;
    let transactions = out
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|s| first_number(s.split('/').next()?))?;
    Some((tps, latency_ms, transactions))
}

fn first_number(s: &str) -> Option<f64> {
    s.split_whitespace().next()?.parse().ok()
}

fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

fn fmt(v: Option<f64>, precision: usize) -> String {
    match v {
        Some(v) => format!("{v:.precision$}"),
        None => "-".to_owned(),
    }
}

fn print_table(protocols: &[&str], targets: &[Target], results: &Results) {
    println!(
        "{:<9} {:<10} {:>12} {:>11} {:>12} {:>8} {:>8} {:>6} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>5}",
        "protocol",
        "target",
        "tps(median)",
        "latency_ms",
        "cpu_us/txn",
        "pg_us",
        "pgb_us",
        "busy%",
        "cs/txn",
        "proxy_cs",
        "/direct",
        "/forward",
        "/pgbounce",
        "/copygrd",
        "runs"
    );
    for &protocol in protocols {
        let tps_of = |name: &str| results.median_of(protocol, name, |m| Some(m.tps));
        let direct = tps_of("direct");
        let forwarder = tps_of("forwarder");
        let pgbouncer = tps_of("pgbouncer");
        let production = tps_of("copyguard");
        for target in targets {
            let tps = tps_of(target.name);
            let latency = results.median_of(protocol, target.name, |m| Some(m.latency_ms));
            let cpu = results.median_of(protocol, target.name, |m| m.cpu_us);
            let postgres = results.median_of(protocol, target.name, |m| m.postgres_us);
            let pgbench = results.median_of(protocol, target.name, |m| Some(m.pgbench_us));
            let busy = results.median_of(protocol, target.name, |m| m.busy.map(|b| b * 100.0));
            let switches = results.median_of(protocol, target.name, |m| m.switches);
            let proxy_switches = results.median_of(protocol, target.name, |m| m.proxy_switches);
            let ratio = |base: Option<f64>| tps.zip(base).map(|(t, b)| t / b);
            let key = (protocol, target.name);
            let failed = results.failures.get(&key).copied().unwrap_or(0);
            let count = results.runs.get(&key).map_or(0, Vec::len);
            let runs = if failed > 0 {
                format!("{count} ({failed} failed)")
            } else {
                count.to_string()
            };
            println!(
                "{:<9} {:<10} {:>12} {:>11} {:>12} {:>8} {:>8} {:>6} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>5}",
                protocol,
                target.name,
                fmt(tps, 1),
                fmt(latency, 3),
                fmt(cpu, 1),
                fmt(postgres, 1),
                fmt(pgbench, 1),
                fmt(busy, 0),
                fmt(switches, 1),
                fmt(proxy_switches, 2),
                fmt(ratio(direct), 2),
                fmt(ratio(forwarder), 2),
                fmt(ratio(pgbouncer), 2),
                fmt(ratio(production), 2),
                runs
            );
        }
    }
}

/// The goals as ratios of median TPS, and the same ratios of CPU
/// time per transaction, inverted (higher is better for copyguard): of
/// the proxy's process alone, and of all processes (proxy, PostgreSQL,
/// pgbench). On a machine the benchmark saturates, TPS is the cores over
/// all processes' CPU per transaction, so the last column is the ratio
/// the two would have if both kept the cores equally busy; where the TPS
/// ratio falls short of it, the cores idled more behind the first.
fn print_ratios(protocols: &[&str], results: &Results) {
    let goals = [
        ("copyguard", "forwarder", 0.95),
        ("copyguard", "pgbouncer", 1.2),
        ("guarded", "copyguard", 0.9),
    ];
    println!(
        "{:<9} {:<24} {:>8} {:>6} {:>16} {:>20}",
        "protocol", "ratio", "tps", "goal", "cpu/txn inverse", "all cpu/txn inverse"
    );
    for &protocol in protocols {
        for (a, b, goal) in goals {
            let tps = |n| results.median_of(protocol, n, |m| Some(m.tps));
            let cpu = |n| results.median_of(protocol, n, |m| m.cpu_us);
            let ratio = tps(a).zip(tps(b)).map(|(a, b)| a / b);
            let cpu_ratio = cpu(b).zip(cpu(a)).map(|(b, a)| b / a);
            let all = |n| results.median_of(protocol, n, Measurement::all_cpu_us);
            let all_ratio = all(b).zip(all(a)).map(|(b, a)| b / a);
            println!(
                "{:<9} {:<24} {:>8} {:>6} {:>16} {:>20}",
                protocol,
                format!("{a}/{b}"),
                fmt(ratio, 2),
                format!(">={goal}"),
                fmt(cpu_ratio, 2),
                fmt(all_ratio, 2)
            );
        }
    }
}
