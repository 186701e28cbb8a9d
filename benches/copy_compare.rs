//! End-to-end COPY throughput: `COPY ... TO STDOUT` of a table of 8
//! columns, 4 of them classified, read straight from PostgreSQL, through
//! copyguard as a production role (relayed untouched), and through
//! copyguard as a guarded role whose class pseudonymizes those 4 columns,
//! interleaved in one run; prints MB/s of each and the ratios, and the
//! CPU time each copy took on the server (every PostgreSQL process) and in
//! this process (the client, plus copyguard when it is in the path): on a
//! machine with few cores, copyguard's CPU per row is what costs
//! throughput, and CPU time is far less noisy than wall time.
//!
//! Run with `cargo bench --bench copy_compare`. `COPYGUARD_BENCH_ROWS`
//! (default 1000000) sets the table size, `COPYGUARD_BENCH_ROUNDS` (default
//! 3) the rounds; every round copies the table in text, CSV and binary
//! through the three targets, rotating which goes first. The tables report
//! medians across rounds. For profiling, `COPYGUARD_BENCH_FORMATS` and
//! `COPYGUARD_BENCH_TARGETS` (comma lists) keep only some formats and
//! targets; the tables are printed only when all three targets run.
//! Everything started here is stopped on the way out: copyguard is shut
//! down and the throwaway cluster removed.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use futures_util::StreamExt;

#[path = "support/bench_db.rs"]
#[allow(dead_code)]
mod bench_db;
#[path = "support/env.rs"]
mod env;
#[path = "support/proxy.rs"]
mod proxy;
use bench_db::{own_cpu, People, ServerCpu};
use proxy::Proxy;

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

fn run() -> Result<()> {
    let people = People::load(DATABASE, GUARDED_USER, GUARDED_PASSWORD)?;
    let (db, rows, rounds) = (&people.db, people.rows, people.rounds);
    let policy = People::policy(POLICY);
    let proxy = Proxy::in_front_of(db, people.work.path(), &policy, Some(&people.key))?;
    let cpu = ServerCpu::of(db)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let direct = format!(
        "host={} port={} user={} dbname={DATABASE}",
        db.host(),
        db.port(),
        db.superuser()
    );
    let guarded = format!(
        "host=127.0.0.1 port={} user={GUARDED_USER} password={GUARDED_PASSWORD} dbname={DATABASE}",
        proxy.port()
    );
    let relayed = format!(
        "host=127.0.0.1 port={} user={} dbname={DATABASE}",
        proxy.port(),
        db.superuser()
    );
    let targets: Vec<(&str, &str)> = [
        ("direct", direct.as_str()),
        ("relayed", relayed.as_str()),
        ("pseudonymized", guarded.as_str()),
    ]
    .into_iter()
    .filter(|(name, _)| kept("COPYGUARD_BENCH_TARGETS", name))
    .collect();
    let formats: Vec<&str> = FORMATS
        .into_iter()
        .filter(|f| kept("COPYGUARD_BENCH_FORMATS", f))
        .collect();
    rt.block_on(async {
        for &(name, conninfo) in &targets {
            let Copied { bytes, secs, .. } = copy(conninfo, "text", &cpu).await?;
            println!("warm-up {name:<14} {:.1} MB in {secs:.2} s", bytes as f64 / 1e6);
        }
        let mut runs: Vec<Run> = Vec::new();
        for round in 1..=rounds {
            for &format in &formats {
                for i in 0..targets.len() {
                    let (target, conninfo) = targets[(i + round as usize) % targets.len()];
                    let Copied { bytes, secs, server, own } = copy(conninfo, format, &cpu).await?;
                    let mbs = bytes as f64 / 1e6 / secs;
                    println!(
                        "round {round}/{rounds}  {format:<6} {target:<14} {:>8.1} MB  {secs:>6.2} s  {mbs:>7.1} MB/s  CPU: server {server:>5.2} s, client{} {own:>5.2} s",
                        bytes as f64 / 1e6,
                        if target == "direct" { "          " } else { " + copyguard" },
                    );
                    runs.push(Run { format, target, mbs, rows_per_s: rows as f64 / secs, server, own });
                }
            }
        }
        if targets.len() < 3 {
            return Ok(());
        }
        let per_m = 1e6 / rows as f64;
        println!();
        println!("medians; the ratios are of rows per second (stand-ins are not exactly as long as the values they replace)");
        println!("format   direct MB/s   relayed MB/s   pseudonymized MB/s   relayed/direct   pseudonymized/direct");
        for &format in &formats {
            let median = |target, pick: fn(&Run) -> f64| median(&runs, format, target, pick);
            let mbs = |target| median(target, |r| r.mbs);
            let rows = |target| median(target, |r| r.rows_per_s);
            println!(
                "{format:<8} {:>11.1}   {:>12.1}   {:>18.1}   {:>14.2}   {:>20.2}",
                mbs("direct"),
                mbs("relayed"),
                mbs("pseudonymized"),
                rows("relayed") / rows("direct"),
                rows("pseudonymized") / rows("direct")
            );
        }
        println!();
        println!("medians of CPU seconds per 1M rows; copyguard's is this process's CPU less the direct copy's (the client's)");
        println!("format   server: direct   pseudonymized   copyguard: relayed   pseudonymized");
        for &format in &formats {
            let median = |target, pick: fn(&Run) -> f64| median(&runs, format, target, pick) * per_m;
            let server = |target| median(target, |r| r.server);
            let own = |target| median(target, |r| r.own);
            println!(
                "{format:<8} {:>14.2}   {:>13.2}   {:>18.2}   {:>13.2}",
                server("direct"),
                server("pseudonymized"),
                own("relayed") - own("direct"),
                own("pseudonymized") - own("direct"),
            );
        }
        Ok::<(), anyhow::Error>(())
    })?;
    drop(proxy);
    people.stop();
    Ok(())
}

/// What one copy took: bytes received, seconds, and CPU seconds of the
/// server and of this process (from just after connecting to the end of
/// the COPY, while the connection and its backend are still there).
struct Copied {
    bytes: u64,
    secs: f64,
    server: f64,
    own: f64,
}

/// Copies the table out in `format`.
async fn copy(conninfo: &str, format: &str, cpu: &ServerCpu) -> Result<Copied> {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting with {conninfo}"))?;
    tokio::spawn(connection);
    let before = (cpu.server(), own_cpu());
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
        server: cpu.server().since(&before.0),
        own: own_cpu() - before.1,
    })
}

/// One copy's figures.
struct Run<'a> {
    format: &'a str,
    target: &'a str,
    mbs: f64,
    rows_per_s: f64,
    /// CPU seconds of the server, and of this process.
    server: f64,
    own: f64,
}

/// The median of `pick` over the runs of `format` through `target`.
fn median(runs: &[Run], format: &str, target: &str, pick: fn(&Run) -> f64) -> f64 {
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
