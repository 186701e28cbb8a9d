//! End-to-end COPY throughput: `COPY ... TO STDOUT` of a table of 8
//! columns, 4 of them classified, read straight from PostgreSQL, through
//! copyguard as a production role (relayed untouched), and through
//! copyguard as a guarded role whose class pseudonymizes those 4 columns,
//! interleaved in one run; prints MB/s of each and the ratios, the CPU
//! time each copy took on the server (every PostgreSQL process), in
//! copyguard and in the client (this process), and copyguard's context
//! switches per MiB copied: on a machine with few cores, copyguard's CPU
//! per row is what costs throughput, and CPU time is far less noisy than
//! wall time. Next to each ratio it prints the ratio the CPU allows
//! ([`cpu_bound`]).
//!
//! Run with `cargo bench --bench copy_compare`. `COPYGUARD_BENCH_ROWS`
//! (default 1000000) sets the table size, `COPYGUARD_BENCH_ROUNDS` (default
//! 3) the rounds; every round copies the table in text, CSV and binary
//! through the targets, rotating which goes first. The tables report
//! medians across rounds. copyguard is the release binary in a process of
//! its own; `COPYGUARD_BENCH_ALT_ENV` (`K=V,K=V`) adds a second one started
//! with those variables (`COPYGUARD_BENCH_BIN=/path` runs an older build)
//! and the target `alt-pseudonymized`, for before/after comparisons in one
//! run. For profiling, `COPYGUARD_BENCH_FORMATS` and
//! `COPYGUARD_BENCH_TARGETS` (comma lists) keep only some formats and
//! targets; the ratio tables are printed only when `direct` runs.
//! Everything started here is stopped on the way out: copyguard is shut
//! down and the throwaway cluster removed.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use futures_util::StreamExt;

#[path = "support/bench_db.rs"]
#[allow(dead_code)]
mod bench_db;
#[path = "support/copyguard_process.rs"]
mod copyguard_process;
#[path = "support/env.rs"]
#[allow(dead_code)]
mod env;
#[path = "support/run.rs"]
#[allow(dead_code)]
mod run;
use bench_db::{People, ServerCpu};
use copyguard_process::CopyguardProcess;

const DATABASE: &str = "copybench";
const GUARDED_USER: &str = "bench_tester";
const GUARDED_PASSWORD: &str = "bench-tester";
const FORMATS: [&str; 3] = ["text", "csv", "binary"];

/// The guarded class; [`People::policy`] adds the production class and
/// the classified columns.
const POLICY: &str = r#"
[classes.testers]
mode = "guarded"
roles = ["bench_tester"]
max_rows_per_statement = 1000000000
max_bytes_per_statement = "1TiB"
max_rows_per_session = 1000000000
max_rows_per_window = 1000000000
window = "1h"
copy_to = "pseudonymize"
pseudonymize = ["email", "person_name", "date_of_birth", "phone"]
"#;

fn main() -> ExitCode {
    bench_db::main_of("copy_compare", run)
}

/// Where a copy goes: its connection string and the copyguard process on
/// the way, if any.
struct Target {
    name: &'static str,
    conninfo: String,
    proxy: Option<u32>,
}

fn run() -> Result<()> {
    let people = People::load(DATABASE, GUARDED_USER, GUARDED_PASSWORD)?;
    let (db, rows, rounds) = (&people.db, people.rows, people.rounds);
    let policy = People::policy(POLICY);
    let key = (
        "COPYGUARD_PSEUDONYM_KEY_FILE".to_owned(),
        people.key.display().to_string(),
    );
    let work = people.work.path();
    let proxy = CopyguardProcess::start_with_env(
        &work.join("copyguard"),
        db.port(),
        &policy,
        std::slice::from_ref(&key),
    )?;
    let alt = match std::env::var("COPYGUARD_BENCH_ALT_ENV") {
        Ok(vars) => {
            let mut vars: Vec<(String, String)> = vars
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect();
            println!("alt: copyguard with {vars:?}");
            vars.push(key);
            Some(CopyguardProcess::start_with_env(
                &work.join("alt"),
                db.port(),
                &policy,
                &vars,
            )?)
        }
        Err(_) => None,
    };
    let cpu = ServerCpu::of(db)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let through = |p: &CopyguardProcess, login: &str| {
        format!("host=127.0.0.1 port={} {login} dbname={DATABASE}", p.port())
    };
    let guarded = format!("user={GUARDED_USER} password={GUARDED_PASSWORD}");
    let mut targets = vec![
        Target {
            name: "direct",
            conninfo: format!(
                "host={} port={} user={} dbname={DATABASE}",
                db.host(),
                db.port(),
                db.superuser()
            ),
            proxy: None,
        },
        Target {
            name: "relayed",
            conninfo: through(&proxy, &format!("user={}", db.superuser())),
            proxy: Some(proxy.pid()),
        },
        Target {
            name: "pseudonymized",
            conninfo: through(&proxy, &guarded),
            proxy: Some(proxy.pid()),
        },
    ];
    if let Some(alt) = &alt {
        targets.push(Target {
            name: "alt-pseudonymized",
            conninfo: through(alt, &guarded),
            proxy: Some(alt.pid()),
        });
    }
    targets.retain(|t| kept("COPYGUARD_BENCH_TARGETS", t.name));
    let formats: Vec<&str> = FORMATS
        .into_iter()
        .filter(|f| kept("COPYGUARD_BENCH_FORMATS", f))
        .collect();
    rt.block_on(async {
        for t in &targets {
            let Copied { bytes, secs, .. } = copy(t, "text", &cpu).await?;
            println!("warm-up {:<18} {:.1} MB in {secs:.2} s", t.name, bytes as f64 / 1e6);
        }
        let mut runs: Vec<Run> = Vec::new();
        for round in 1..=rounds {
            for &format in &formats {
                for i in 0..targets.len() {
                    let t = &targets[(i + round as usize) % targets.len()];
                    let c = copy(t, format, &cpu).await?;
                    let mbs = c.bytes as f64 / 1e6 / c.secs;
                    println!(
                        "round {round}/{rounds}  {format:<6} {:<18} {:>8.1} MB  {:>6.2} s  {mbs:>7.1} MB/s  CPU: server {:>5.2} s, copyguard {:>5.2} s, client {:>5.2} s",
                        t.name,
                        c.bytes as f64 / 1e6,
                        c.secs,
                        c.server,
                        c.proxy.cpu,
                        c.client,
                    );
                    runs.push(Run { format, target: t.name, mbs, rows_per_s: rows as f64 / c.secs, copied: c });
                }
            }
        }
        let has = |name| targets.iter().any(|t| t.name == name);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_m = 1e6 / rows as f64;
        let shown: Vec<&str> = targets.iter().map(|t| t.name).collect();
        if has("direct") {
            println!();
            println!("medians; MB/s, and the ratios to direct of rows per second (stand-ins are not exactly as long as the values they replace),");
            println!("each with (in brackets) the most the CPU allows on {cores} cores: 2 x direct's server CPU / the target's total CPU (server + copyguard + client)");
            print!("format  ");
            for name in &shown {
                print!(" {name:>18}");
            }
            for name in shown.iter().filter(|n| **n != "direct") {
                print!(" {:>33}", format!("{name}/direct (bound)"));
            }
            println!();
            for &format in &formats {
                let median = |target, pick: fn(&Run) -> f64| median(&runs, format, target, pick);
                print!("{format:<8}");
                for name in &shown {
                    print!(" {:>18.1}", median(name, |r| r.mbs));
                }
                let direct = median("direct", |r| r.rows_per_s);
                let direct_server = median("direct", |r| r.copied.server);
                for name in shown.iter().filter(|n| **n != "direct") {
                    let total = median(name, |r| r.copied.total());
                    print!(
                        " {:>25.2} ({:.2})",
                        median(name, |r| r.rows_per_s) / direct,
                        cpu_bound(cores, direct_server, total),
                    );
                }
                println!();
            }
        }
        println!();
        println!("medians per 1M rows: CPU seconds of the server, of copyguard and of the client, and seconds of wall time; per MiB received by the client: copyguard's context switches");
        println!("format   target             server CPU s   copyguard CPU s   client CPU s   wall s   switches/MiB");
        for &format in &formats {
            for name in &shown {
                let median = |pick: &dyn Fn(&Run) -> f64| median(&runs, format, name, pick);
                let per_mib = |pick: fn(&Proc) -> f64| {
                    median(&|r: &Run| pick(&r.copied.proxy) / (r.copied.bytes as f64 / 1048576.0))
                };
                println!(
                    "{format:<8} {name:<18} {:>12.2}   {:>15.2}   {:>12.2}   {:>6.2}   {:>12.1}",
                    median(&|r: &Run| r.copied.server) * per_m,
                    median(&|r: &Run| r.copied.proxy.cpu) * per_m,
                    median(&|r: &Run| r.copied.client) * per_m,
                    median(&|r: &Run| r.copied.secs) * per_m,
                    per_mib(|p| p.switches),
                );
            }
        }
        Ok::<(), anyhow::Error>(())
    })?;
    drop(alt);
    drop(proxy);
    people.stop();
    Ok(())
}

/// What one copy took: bytes received, seconds, and CPU seconds of the
/// server (from just after connecting to the end of the COPY, while the
/// connection and its backend are still there; processes alive at the end
/// only, so the backend of the copy before, exiting meanwhile, does not
/// count whole in this one), copyguard's counters and
/// the client's CPU seconds (this whole process: the runtime's worker
/// reading the stream, and this thread) over the same time.
struct Copied {
    bytes: u64,
    secs: f64,
    server: f64,
    proxy: Proc,
    client: f64,
}

impl Copied {
    /// CPU seconds of every process the copy ran through.
    fn total(&self) -> f64 {
        self.server + self.proxy.cpu + self.client
    }
}

/// The most a target's rows per second can be, as a share of direct's,
/// given the CPU each needs: the direct copy takes at least its server's
/// CPU time (one backend runs it, on one core), and then is about that
/// long (PostgreSQL's backend is the slowest part); the target's copy
/// takes at least its total CPU time spread over every core. So the ratio
/// is at most `cores x direct's server CPU / the target's total CPU`
/// (capped at 1 when there is CPU to spare).
fn cpu_bound(cores: usize, direct_server: f64, total: f64) -> f64 {
    (cores as f64 * direct_server / total).min(1.0)
}

/// A copyguard process's counters (all zero without one): CPU seconds,
/// context switches of all its threads (socket calls are not in
/// `/proc/PID/io`: see the README for `strace -c`).
#[derive(Clone, Copy, Default)]
struct Proc {
    cpu: f64,
    switches: f64,
}

impl Proc {
    fn of(pid: Option<u32>) -> Proc {
        let Some(pid) = pid else {
            return Proc::default();
        };
        Proc {
            cpu: run::cpu_seconds(pid).unwrap_or(0.0),
            switches: run::context_switches(pid) as f64,
        }
    }

    fn since(self, before: Proc) -> Proc {
        Proc {
            cpu: self.cpu - before.cpu,
            switches: self.switches - before.switches,
        }
    }
}

/// Copies the table out in `format` through `target`.
async fn copy(target: &Target, format: &str, cpu: &ServerCpu) -> Result<Copied> {
    let conninfo = &target.conninfo;
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting with {conninfo}"))?;
    tokio::spawn(connection);
    let before = (cpu.live(), Proc::of(target.proxy), bench_db::own_cpu());
    let started = Instant::now();
    let stream = client
        .copy_out(&format!("COPY people TO STDOUT (FORMAT {format})"))
        .await
        .context("COPY")?;
    let mut stream = std::pin::pin!(stream);
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        bytes += chunk.context("COPY data")?.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Copied {
        bytes,
        secs,
        server: cpu.live().since(&before.0),
        proxy: Proc::of(target.proxy).since(before.1),
        client: bench_db::own_cpu() - before.2,
    })
}

/// One copy's figures.
struct Run<'a> {
    format: &'a str,
    target: &'a str,
    mbs: f64,
    rows_per_s: f64,
    copied: Copied,
}

/// The median of `pick` over the runs of `format` through `target`.
fn median(runs: &[Run], format: &str, target: &str, pick: impl Fn(&Run) -> f64) -> f64 {
    bench_db::median(
        runs.iter()
            .filter(|r| r.format == format && r.target == target)
            .map(pick)
            .collect(),
    )
}

/// Whether `name` is in the comma list of `var` (everything is when unset).
fn kept(var: &str, name: &str) -> bool {
    std::env::var(var).map_or(true, |list| list.split(',').any(|n| n.trim() == name))
}
