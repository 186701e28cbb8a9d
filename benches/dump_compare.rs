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
use copyguard::config::{Config, ConfigArgs};
use copyguard::devdb::{DevDb, DevDbOptions};
use copyguard::dumps::{DumpRequest, Grant, Scope};

#[path = "support/env.rs"]
mod env;
#[path = "support/proxy.rs"]
#[allow(dead_code)]
mod proxy;
use env::env_count;
use proxy::Proxy;

const DATABASE: &str = "dumpbench";
const USER: &str = "bench_dev";
const PASSWORD: &str = "bench-dev";

const POLICY: &str = r#"
[classes.production]
mode = "production"
roles = ["postgres"]

[classes.developers]
mode = "guarded"
roles = ["bench_dev"]
max_rows_per_statement = 0

[columns]
"public.people.email" = "email"
"public.people.full_name" = "person_name"
"public.people.birth_date" = "date_of_birth"
"public.people.phone" = "phone"
"#;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dump_compare: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let rows = env_count("COPYGUARD_BENCH_ROWS", 1_000_000)?;
    let rounds = env_count("COPYGUARD_BENCH_ROUNDS", 3)?;
    let work = tempfile::Builder::new()
        .prefix("copyguard-dump-")
        .tempdir()
        .context("creating a temporary directory")?;
    let db = DevDb::start(DevDbOptions::default()).context("starting a throwaway PostgreSQL")?;
    db.psql("postgres", &format!("CREATE DATABASE {DATABASE};"))?;
    println!("loading {rows} rows of 8 columns (4 classified)");
    db.psql(
        DATABASE,
        &format!(
            "CREATE TABLE people (id int8 PRIMARY KEY, email text NOT NULL, full_name text,
                 birth_date date, phone text, country text, score int4, note text);
             INSERT INTO people SELECT g, 'user' || g || '@mail.example.com',
                 (ARRAY['Ada','Grace','Alan','Edsger','Barbara'])[1 + g % 5] || ' Lovelace' || (g % 997),
                 date '1950-01-01' + (g % 20000), '+33-6-' || lpad((g % 100000000)::text, 8, '0'),
                 (ARRAY['FR','DE','ES','IT'])[1 + g % 4], (g * 7) % 1000, 'order note ' || (g % 313)
               FROM generate_series(1, {rows}) g;
             CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}';
             GRANT SELECT ON people TO {USER};
             ANALYZE people;"
        ),
    )
    .context("loading the table")?;
    let key = work.path().join("pseudonym.key");
    std::fs::write(&key, "5f".repeat(32))?;
    let signing = ed25519_dalek::SigningKey::from_bytes(&[11; 32]);
    let public = work.path().join("grant.pub");
    std::fs::write(&public, hex::encode(signing.verifying_key().as_bytes()))?;
    let policy = work.path().join("policy");
    std::fs::create_dir_all(&policy)?;
    std::fs::write(policy.join("bench.toml"), POLICY)?;
    let proxy = Proxy::start(Config::load(&ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        upstream: Some(format!("{}:{}", db.host(), db.port())),
        policy: Some(policy.display().to_string()),
        pseudonym_key_file: Some(key.display().to_string()),
        dump_public_keys: Some(public.display().to_string()),
        audit_path: Some(work.path().join("audit/audit.log").display().to_string()),
        shutdown_timeout: Some("5s".into()),
        ..ConfigArgs::default()
    })?)?;
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
    let dump = |granted: bool, extra: &[&str], name: &str| -> Result<f64> {
        let out = work.path().join(name);
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
        let start = Instant::now();
        let status = cmd.output().context("running pg_dump")?;
        let secs = start.elapsed().as_secs_f64();
        if !status.status.success() {
            bail!(
                "pg_dump failed: {}",
                String::from_utf8_lossy(&status.stderr)
            );
        }
        Ok(secs)
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
                let secs = dump(g, extra, if g { "granted" } else { "direct" })?;
                println!(
                    "round {round}/{rounds}  {label:<9} {:<8} {secs:>7.2} s",
                    if g { "granted" } else { "direct" }
                );
                if g {
                    granted.push(secs);
                } else {
                    direct.push(secs);
                }
            }
        }
        let (d, g) = (median(&mut direct), median(&mut granted));
        println!(
            "{label}: median direct {d:.2} s, granted through copyguard {g:.2} s, ratio {:.2}",
            g / d
        );
    }
    drop(proxy);
    db.stop();
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
