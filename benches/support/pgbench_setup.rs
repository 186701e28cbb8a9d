//! The database the relay benches run against: a throwaway PostgreSQL with
//! `bench` initialised by `pgbench -i`, a guarded role, and the policy that
//! makes the superuser production and that role guarded.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use copyguard::devdb::{DevDb, DevDbOptions};

use super::run::run_with_timeout;

/// The database pgbench initialises and the benches query.
pub const DATABASE: &str = "bench";
/// The role whose sessions copyguard guards.
pub const GUARDED_USER: &str = "bench_dev";
/// Its password (copyguard passes authentication through to PostgreSQL).
pub const GUARDED_PASSWORD: &str = "bench-dev";
const INIT_TIMEOUT: Duration = Duration::from_secs(900);

/// The bench policy: the superuser is production, `bench_dev` is guarded;
/// pgbench's tables hold no classified column except the filler text, which
/// `pgbench -S` does not read.
pub const POLICY: &str = r#"
[classes.production]
mode = "production"
roles = ["postgres"]

[classes.developers]
mode = "guarded"
roles = ["bench_dev"]
max_rows_per_statement = 100
max_bytes_per_statement = "1MiB"
max_rows_per_session = 1000000000
max_rows_per_window = 1000000000
window = "1h"

[columns]
"public.pgbench_accounts.filler" = "free_text"
"#;

/// Starts a cluster with `max_connections`, creates and initialises
/// `bench` at `scale`, and creates the guarded role.
pub fn start_db(max_connections: u32, scale: u32) -> Result<(DevDb, Pgbench)> {
    let db = DevDb::start(DevDbOptions {
        settings: vec![("max_connections".into(), max_connections.to_string())],
        ..DevDbOptions::default()
    })
    .context("starting a throwaway PostgreSQL")?;
    let bench = Pgbench {
        bin: db.client_bin("pgbench"),
        user: db.superuser().to_owned(),
    };
    println!(
        "PostgreSQL on 127.0.0.1:{} ({})",
        db.port(),
        bench
            .version()
            .unwrap_or_else(|e| format!("pgbench: {e:#}"))
    );
    db.psql("postgres", &format!("CREATE DATABASE {DATABASE};"))
        .context("creating the bench database")?;
    println!("initialising: pgbench -i -s {scale}");
    bench.run_as(
        db.port(),
        &bench.user,
        &["-i", "-q", "-s", &scale.to_string()],
        INIT_TIMEOUT,
    )?;
    db.psql(
        DATABASE,
        &format!(
            "CREATE ROLE {GUARDED_USER} LOGIN PASSWORD '{GUARDED_PASSWORD}';
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {GUARDED_USER};"
        ),
    )
    .context("creating the guarded role")?;
    Ok((db, bench))
}

/// Runs pgbench against `127.0.0.1:<port>/bench`.
pub struct Pgbench {
    bin: PathBuf,
    /// The superuser, production for copyguard.
    pub user: String,
}

impl Pgbench {
    fn version(&self) -> Result<String> {
        let out = run_with_timeout(
            Command::new(&self.bin).arg("--version"),
            Duration::from_secs(10),
        )?;
        Ok(out.trim().to_owned())
    }

    /// Runs pgbench with `args` as `user` against `port`; its stdout.
    pub fn run_as(
        &self,
        port: u16,
        user: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<String> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", user])
            .arg(DATABASE)
            .env("PGPASSWORD", GUARDED_PASSWORD)
            .env("PGSSLMODE", "disable")
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGSERVICE")
            .env_remove("PGOPTIONS");
        run_with_timeout(&mut cmd, timeout)
    }
}
