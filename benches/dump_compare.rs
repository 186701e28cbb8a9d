//! Sanctioned dump cost: `pg_dump -Fc` of a table of 8 columns, 4 of them
//! classified, straight from PostgreSQL and through copyguard with a dump
//! grant (every classified column pseudonymized), interleaved in one run;
//! then the same with `-Fd -j 2`. Prints the seconds of each run, the
//! medians and the ratio granted/direct.
//!
//! Run with `cargo bench --bench dump_compare`. `COPYGUARD_BENCH_ROWS`
//! (default 1000000) sets the table size, `COPYGUARD_BENCH_ROUNDS`
//! (default 3) the rounds. Everything started here is stopped on the way
//! out: copyguard is shut down and the throwaway cluster removed.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use copyguard::dumps::{DumpRequest, Grant, Scope};

#[path = "support/bench_db.rs"]
mod bench_db;
#[path = "support/env.rs"]
mod env;
#[path = "support/proxy.rs"]
#[allow(dead_code)]
mod proxy;
use bench_db::{children_cpu, median, own_cpu, People, ServerCpu};
use proxy::Proxy;

const DATABASE: &str = "dumpbench";
const USER: &str = "bench_dev";
const PASSWORD: &str = "bench-dev";

/// The guarded class; [`People::policy`] adds the production class and
/// the classified columns.
const POLICY: &str = r#"
[classes.developers]
mode = "guarded"
roles = ["bench_dev"]
max_rows_per_statement = 0
"#;

fn main() -> ExitCode {
    bench_db::main_of("dump_compare", run)
}

fn run() -> Result<()> {
    let people = People::load(DATABASE, USER, PASSWORD)?;
    let (db, work, rows, rounds) = (&people.db, people.work.path(), people.rows, people.rounds);
    let signing = ed25519_dalek::SigningKey::from_bytes(&[11; 32]);
    let public = work.join("grant.pub");
    std::fs::write(&public, hex::encode(signing.verifying_key().as_bytes()))?;
    let policy = People::policy(POLICY);
    let proxy = Proxy::in_front_of_with(db, work, &policy, Some(&people.key), |args| {
        args.dump_public_keys = Some(public.display().to_string());
    })?;
    let request = DumpRequest::new(USER, DATABASE, Scope::default(), "benchmark");
    let uses = u32::try_from(rounds * 4 + 4).unwrap_or(u32::MAX);
    let token = Grant::approve(
        &request,
        Duration::from_secs(86_400),
        uses,
        "bench",
        &signing,
    )
    .sign(&signing);
    let pg_dump = db.client_bin("pg_dump");
    let server_cpu = ServerCpu::of(db)?;
    let dump = |granted: bool, extra: &[&str], name: &str| -> Result<Dumped> {
        let out = work.join(name);
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_file(&out);
        let mut cmd = Command::new(&pg_dump);
        cmd.env_remove("PGOPTIONS").env("PGSSLMODE", "disable");
        if granted {
            cmd.env("PGOPTIONS", format!("-c copyguard.grant={token}"))
                .env("PGPASSWORD", PASSWORD)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &proxy.port().to_string(),
                    "-U",
                    USER,
                ]);
        } else {
            cmd.args([
                "-h",
                db.host(),
                "-p",
                &db.port().to_string(),
                "-U",
                db.superuser(),
            ]);
        }
        cmd.args(["-d", DATABASE, "-t", "public.people", "-f"])
            .arg(&out)
            .args(extra);
        let before = (server_cpu.server(), children_cpu(), own_cpu());
        let start = Instant::now();
        let status = cmd.output().context("running pg_dump")?;
        let secs = start.elapsed().as_secs_f64();
        if !status.status.success() {
            bail!(
                "pg_dump failed: {}",
                String::from_utf8_lossy(&status.stderr)
            );
        }
        Ok(Dumped {
            secs,
            server: server_cpu.server().since(&before.0),
            pg_dump: children_cpu() - before.1,
            copyguard: own_cpu() - before.2,
        })
    };
    for (label, extra) in [("-Fc", &["-Fc"][..]), ("-Fd -j 2", &["-Fd", "-j", "2"][..])] {
        dump(false, extra, "warm")?;
        dump(true, extra, "warm")?;
        let (mut direct, mut granted) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let order = if round % 2 == 1 {
                [false, true]
            } else {
                [true, false]
            };
            for g in order {
                let run = dump(g, extra, if g { "granted" } else { "direct" })?;
                println!(
                    "round {round}/{rounds}  {label:<9} {:<8} {:>7.2} s  CPU: server {:>5.2} s, pg_dump {:>5.2} s, copyguard {:>5.2} s",
                    if g { "granted" } else { "direct" },
                    run.secs,
                    run.server,
                    run.pg_dump,
                    run.copyguard,
                );
                if g {
                    granted.push(run);
                } else {
                    direct.push(run);
                }
            }
        }
        let of =
            |runs: &[Dumped], pick: fn(&Dumped) -> f64| median(runs.iter().map(pick).collect());
        let (d, g) = (of(&direct, |r| r.secs), of(&granted, |r| r.secs));
        println!(
            "{label}, {rows} rows: median direct {d:.2} s, granted through copyguard {g:.2} s, ratio {:.2}",
            g / d
        );
        let cpu = |r: &Dumped| r.server + r.pg_dump + r.copyguard;
        println!(
            "{label}: median CPU s direct {:.2} (server {:.2}, pg_dump {:.2}), granted {:.2} (server {:.2}, pg_dump {:.2}, copyguard {:.2}), ratio {:.2}",
            of(&direct, cpu),
            of(&direct, |r| r.server),
            of(&direct, |r| r.pg_dump),
            of(&granted, cpu),
            of(&granted, |r| r.server),
            of(&granted, |r| r.pg_dump),
            of(&granted, |r| r.copyguard),
            of(&granted, cpu) / of(&direct, cpu),
        );
    }
    drop(proxy);
    people.stop();
    Ok(())
}

/// What one dump took: seconds, and CPU seconds of the server (every
/// PostgreSQL process), of pg_dump (with its workers) and of copyguard
/// (this process, which does nothing else meanwhile).
struct Dumped {
    secs: f64,
    server: f64,
    pg_dump: f64,
    copyguard: f64,
}
