//! End-to-end COPY throughput: `COPY ... TO STDOUT` of a table of 8
//! columns, 4 of them classified, read straight from PostgreSQL, through
//! copyguard as a production role (relayed untouched), and through
//! copyguard as a guarded role whose class pseudonymizes those 4 columns,
//! interleaved in one run; prints MB/s of each and the ratios.
//!
//! Run with `cargo bench --bench copy_compare`. `COPYGUARD_BENCH_ROWS`
//! (default 1000000) sets the table size, `COPYGUARD_BENCH_ROUNDS` (default
//! 3) the rounds; every round copies the table in text, CSV and binary
//! through the three targets, rotating which goes first. The table reports
//! medians across rounds. Everything started here is stopped on the way
//! out: copyguard is shut down and the throwaway cluster removed.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use copyguard::devdb::{DevDb, DevDbOptions};
use futures_util::StreamExt;

#[path = "support/env.rs"]
mod env;
#[path = "support/proxy.rs"]
mod proxy;
use env::env_count;
use proxy::Proxy;

const DATABASE: &str = "copybench";
const GUARDED_USER: &str = "bench_tester";
const GUARDED_PASSWORD: &str = "bench-tester";
const FORMATS: [&str; 3] = ["text", "csv", "binary"];

const POLICY: &str = r#"
[classes.production]
mode = "production"
roles = ["postgres"]

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
            eprintln!("copy_compare: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let rows = env_count("COPYGUARD_BENCH_ROWS", 1_000_000)?;
    let rounds = env_count("COPYGUARD_BENCH_ROUNDS", 3)?;
    let work = tempfile::Builder::new()
        .prefix("copyguard-copy-")
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
             CREATE ROLE {GUARDED_USER} LOGIN PASSWORD '{GUARDED_PASSWORD}';
             GRANT SELECT ON people TO {GUARDED_USER};
             ANALYZE people;"
        ),
    )
    .context("loading the table")?;
    let key = work.path().join("pseudonym.key");
    std::fs::write(&key, "5f".repeat(32))?;
    let proxy = Proxy::in_front_of(&db, work.path(), POLICY, Some(&key))?;

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
    let targets = [
        ("direct", direct.as_str()),
        ("relayed", relayed.as_str()),
        ("pseudonymized", guarded.as_str()),
    ];
    rt.block_on(async {
        for (name, conninfo) in targets {
            let (bytes, secs) = copy(conninfo, "text").await?;
            println!("warm-up {name:<14} {:.1} MB in {secs:.2} s", bytes as f64 / 1e6);
        }
        // (format, target, MB/s, rows/s)
        let mut results: Vec<(&str, &str, f64, f64)> = Vec::new();
        for round in 1..=rounds {
            for format in FORMATS {
                for i in 0..targets.len() {
                    let (name, conninfo) = targets[(i + round as usize) % targets.len()];
                    let (bytes, secs) = copy(conninfo, format).await?;
                    let mbs = bytes as f64 / 1e6 / secs;
                    println!(
                        "round {round}/{rounds}  {format:<6} {name:<14} {:>8.1} MB  {secs:>6.2} s  {mbs:>7.1} MB/s",
                        bytes as f64 / 1e6
                    );
                    results.push((format, name, mbs, rows as f64 / secs));
                }
            }
        }
        println!();
        println!("medians; the ratios are of rows per second (stand-ins are not exactly as long as the values they replace)");
        println!("format   direct MB/s   relayed MB/s   pseudonymized MB/s   relayed/direct   pseudonymized/direct");
        for format in FORMATS {
            let median = |target: &str, pick: fn(&(&str, &str, f64, f64)) -> f64| {
                let mut v: Vec<f64> = results
                    .iter()
                    .filter(|r| r.0 == format && r.1 == target)
                    .map(pick)
                    .collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let mbs = |target| median(target, |r| r.2);
            let rows = |target| median(target, |r| r.3);
            println!(
                "{format:<8} {:>11.1}   {:>12.1}   {:>18.1}   {:>14.2}   {:>20.2}",
                mbs("direct"),
                mbs("relayed"),
                mbs("pseudonymized"),
                rows("relayed") / rows("direct"),
                rows("pseudonymized") / rows("direct")
            );
        }
        Ok::<(), anyhow::Error>(())
    })?;
    drop(proxy);
    db.stop();
    Ok(())
}

/// Copies the table out in `format`; bytes received and seconds taken.
async fn copy(conninfo: &str, format: &str) -> Result<(u64, f64)> {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting with {conninfo}"))?;
    tokio::spawn(connection);
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
    Ok((bytes, started.elapsed().as_secs_f64()))
}
