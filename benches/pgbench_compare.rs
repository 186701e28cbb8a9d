//! End-to-end throughput: `pgbench -S` straight to PostgreSQL, through
//! copyguard (a production and a guarded role), through pgbouncer (session
//! mode) and through a zero-work forwarder, interleaved in one run.
//!
//! Run with `cargo bench --bench pgbench_compare` (or `benches/run-pgbench.sh`,
//! which installs pgbouncer first). `COPYGUARD_BENCH_ROUNDS` (default 3) and
//! `COPYGUARD_BENCH_SECONDS` (default 10) set the number of rounds and the
//! length of each pgbench run. Every round runs every protocol against every
//! target, rotating the order of targets from round to round, so that machine
//! noise hits all targets alike; the table reports medians across rounds.
//!
//! Everything started here is stopped on the way out, also on error:
//! pgbouncer is killed (and dies with this process), copyguard is shut down
//! and the throwaway cluster removed.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use copyguard::devdb::{DevDb, DevDbOptions};

#[path = "support/env.rs"]
mod env;
#[path = "support/forwarder.rs"]
mod forwarder;
#[path = "support/proxy.rs"]
mod proxy;
use env::env_count;
use forwarder::Forwarder;
use proxy::Proxy;

const DATABASE: &str = "bench";
const SCALE: u32 = 10;
const CLIENTS: u32 = 8;
const THREADS: u32 = 2;
const PROTOCOLS: [&str; 2] = ["simple", "prepared"];
/// Length of the untimed run through each target before the rounds.
const WARM_UP_SECONDS: u64 = 3;
/// Extra time a pgbench run gets beyond its `-T` before it is killed.
const RUN_SLACK: Duration = Duration::from_secs(60);
const INIT_TIMEOUT: Duration = Duration::from_secs(900);
const PGBOUNCER_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The role whose sessions copyguard guards in the `guarded` target.
const GUARDED_USER: &str = "bench_dev";
const GUARDED_PASSWORD: &str = "bench-dev";

/// The bench policy: the superuser is production, `bench_dev` is guarded;
/// pgbench's tables hold no classified column except the filler text, which
/// `pgbench -S` does not read.
const POLICY: &str = r#"
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

fn main() -> ExitCode {
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
    let work = tempfile::Builder::new()
        .prefix("copyguard-pgbench-")
        .tempdir()
        .context("creating a temporary directory")?;

    let db = DevDb::start(DevDbOptions {
        settings: vec![("max_connections".into(), "100".into())],
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
    println!("initialising: pgbench -i -s {SCALE}");
    bench.run(
        db.port(),
        &["-i", "-q", "-s", &SCALE.to_string()],
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
    let proxy = Proxy::in_front_of(&db, work.path(), POLICY, None)?;
    let bouncer = match PgBouncer::start(work.path(), db.port()) {
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
    println!("zero-work forwarder on 127.0.0.1:{}", forwarder.port);

    let superuser = db.superuser();
    let mut targets = vec![
        Target {
            name: "direct",
            port: db.port(),
            user: superuser,
        },
        Target {
            name: "copyguard",
            port: proxy.port(),
            user: superuser,
        },
        Target {
            name: "guarded",
            port: proxy.port(),
            user: GUARDED_USER,
        },
        Target {
            name: "forwarder",
            port: forwarder.port,
            user: superuser,
        },
    ];
    if let Some(bouncer) = &bouncer {
        targets.push(Target {
            name: "pgbouncer",
            port: bouncer.port,
            user: superuser,
        });
    }

    let warm_up = WARM_UP_SECONDS.min(seconds);
    println!("warm-up: {warm_up} s through each target");
    let mut usable = Vec::new();
    for target in targets {
        match bench.select_only(&target, "simple", warm_up) {
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
        PROTOCOLS.len(),
        targets.len()
    );
    let mut results: HashMap<(&str, &str), Vec<Measurement>> = HashMap::new();
    let mut failures: HashMap<(&str, &str), u32> = HashMap::new();
    for round in 1..=rounds {
        for protocol in PROTOCOLS {
            for i in 0..targets.len() {
                let target = &targets[(i + round as usize - 1) % targets.len()];
                let key = (protocol, target.name);
                match bench.select_only(target, protocol, seconds) {
                    Ok(m) => {
                        println!(
                            "round {round}/{rounds}  {protocol:<9} {:<10} tps {:>10.1}  latency {:.3} ms",
                            target.name, m.tps, m.latency_ms
                        );
                        results.entry(key).or_default().push(m);
                    }
                    Err(e) => {
                        println!(
                            "round {round}/{rounds}  {protocol:<9} {:<10} FAILED: {e:#}",
                            target.name
                        );
                        *failures.entry(key).or_default() += 1;
                    }
                }
            }
        }
    }

    println!();
    print_table(&targets, &results, &failures);
    Ok(())
}

/// Somewhere pgbench connects to, as which role: `guarded` is the same
/// copyguard as `copyguard`, with a role whose sessions are guarded.
struct Target<'a> {
    name: &'static str,
    port: u16,
    user: &'a str,
}

/// What one pgbench run reported.
#[derive(Clone, Copy, Debug)]
struct Measurement {
    tps: f64,
    latency_ms: f64,
}

/// Runs pgbench against `127.0.0.1:<port>/bench`.
struct Pgbench {
    bin: PathBuf,
    user: String,
}

impl Pgbench {
    fn version(&self) -> Result<String> {
        let out = run_with_timeout(
            Command::new(&self.bin).arg("--version"),
            Duration::from_secs(10),
        )?;
        Ok(out.trim().to_owned())
    }

    /// A `pgbench -S` run of `seconds` with the given query protocol.
    fn select_only(&self, target: &Target, protocol: &str, seconds: u64) -> Result<Measurement> {
        let clients = CLIENTS.to_string();
        let threads = THREADS.to_string();
        let duration = seconds.to_string();
        let out = self.run_as(
            target.port,
            target.user,
            &[
                "-S", "-n", "-c", &clients, "-j", &threads, "-T", &duration, "-M", protocol,
            ],
            Duration::from_secs(seconds) + RUN_SLACK,
        )?;
        parse_pgbench(&out).ok_or_else(|| anyhow!("no tps/latency in pgbench output:\n{out}"))
    }

    fn run(&self, port: u16, args: &[&str], timeout: Duration) -> Result<String> {
        self.run_as(port, &self.user, args, timeout)
    }

    fn run_as(&self, port: u16, user: &str, args: &[&str], timeout: Duration) -> Result<String> {
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

/// Reads `tps = ...` (excluding connection set-up when pgbench reports both)
/// and `latency average = ... ms`.
fn parse_pgbench(out: &str) -> Option<Measurement> {
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
    Some(Measurement { tps, latency_ms })
}

fn first_number(s: &str) -> Option<f64> {
    s.split_whitespace().next()?.parse().ok()
}

/// Runs `cmd` to completion and returns its stdout; kills it after `timeout`.
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let desc = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running `{desc}`"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        None => bail!("`{desc}` killed after {timeout:?}: {}", stderr.trim()),
        Some(status) if !status.success() => bail!("`{desc}` failed ({status}): {}", stderr.trim()),
        Some(_) => Ok(stdout),
    }
}

/// Reads a child's pipe to the end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// pgbouncer in session mode in front of the cluster, run as a child
/// process (as the `postgres` OS user when running as root).
struct PgBouncer {
    child: Child,
    port: u16,
    version: String,
}

impl PgBouncer {
    fn start(dir: &Path, upstream_port: u16) -> Result<PgBouncer> {
        let bin = find_pgbouncer().ok_or_else(|| {
            anyhow!("no pgbouncer on PATH or in /usr/sbin (benches/run-pgbench.sh installs it)")
        })?;
        let version =
            run_with_timeout(Command::new(&bin).arg("--version"), Duration::from_secs(10))?
                .lines()
                .next()
                .unwrap_or("pgbouncer")
                .to_owned();

        let port = free_port()?;
        let userlist = dir.join("userlist.txt");
        let ini = dir.join("pgbouncer.ini");
        let log = dir.join("pgbouncer.log");
        fs::write(&userlist, "\"postgres\" \"\"\n").context("writing userlist.txt")?;
        fs::write(
            &ini,
            format!(
                "[databases]\n\
                 {DATABASE} = host=127.0.0.1 port={upstream_port} dbname={DATABASE}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {}\n\
                 pool_mode = session\n\
                 max_client_conn = 200\n\
                 default_pool_size = 20\n",
                userlist.display()
            ),
        )
        .context("writing pgbouncer.ini")?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .context("making the pgbouncer directory readable")?;

        let log_file = fs::File::create(&log).context("creating pgbouncer.log")?;
        let mut cmd = Command::new(&bin);
        cmd.arg(&ini)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let (uid, gid) = postgres_ids()?;
            cmd.uid(uid).gid(gid);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting `{}`", describe(&cmd)))?;
        let mut bouncer = PgBouncer {
            child,
            port,
            version,
        };
        bouncer.wait_ready(&log)?;
        Ok(bouncer)
    }

    /// Waits until the port accepts connections; fails if pgbouncer exits
    /// or takes longer than [`PGBOUNCER_READY_TIMEOUT`].
    fn wait_ready(&mut self, log: &Path) -> Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + PGBOUNCER_READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "pgbouncer exited ({status}): {}",
                    fs::read_to_string(log).unwrap_or_default().trim()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "pgbouncer not listening on {addr} after {PGBOUNCER_READY_TIMEOUT:?}: {}",
                    fs::read_to_string(log).unwrap_or_default().trim()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_pgbouncer() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join("pgbouncer"))
        .find(|p| p.is_file())
}

/// Uid and gid of the `postgres` OS user.
fn postgres_ids() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = run_with_timeout(
            Command::new("id").args([flag, "postgres"]),
            Duration::from_secs(10),
        )?;
        out.trim()
            .parse()
            .with_context(|| format!("parsing `id {flag} postgres` output {out:?}"))
    };
    Ok((id("-u")?, id("-g")?))
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .context("finding a free port")?
        .port())
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

fn print_table(
    targets: &[Target],
    results: &HashMap<(&str, &str), Vec<Measurement>>,
    failures: &HashMap<(&str, &str), u32>,
) {
    let fmt = |v: Option<f64>, precision: usize| match v {
        Some(v) => format!("{v:.precision$}"),
        None => "-".to_owned(),
    };
    println!(
        "{:<9} {:<10} {:>12} {:>11} {:>16} {:>19} {:>19} {:>19} {:>5}",
        "protocol",
        "target",
        "tps(median)",
        "latency_ms",
        "ratio_vs_direct",
        "ratio_vs_forwarder",
        "ratio_vs_pgbouncer",
        "ratio_vs_copyguard",
        "runs"
    );
    for protocol in PROTOCOLS {
        let tps_of = |name: &str| {
            results
                .get(&(protocol, name))
                .and_then(|runs| median(runs.iter().map(|m| m.tps)))
        };
        let direct = tps_of("direct");
        let forwarder = tps_of("forwarder");
        let pgbouncer = tps_of("pgbouncer");
        let production = tps_of("copyguard");
        for target in targets {
            let runs = results.get(&(protocol, target.name));
            let tps = tps_of(target.name);
            let latency = runs.and_then(|r| median(r.iter().map(|m| m.latency_ms)));
            let ratio = |base: Option<f64>| tps.zip(base).map(|(t, b)| t / b);
            let failed = failures.get(&(protocol, target.name)).copied().unwrap_or(0);
            let count = runs.map_or(0, Vec::len);
            let runs = if failed > 0 {
                format!("{count} ({failed} failed)")
            } else {
                count.to_string()
            };
            println!(
                "{:<9} {:<10} {:>12} {:>11} {:>16} {:>19} {:>19} {:>19} {:>5}",
                protocol,
                target.name,
                fmt(tps, 1),
                fmt(latency, 3),
                fmt(ratio(direct), 2),
                fmt(ratio(forwarder), 2),
                fmt(ratio(pgbouncer), 2),
                fmt(ratio(production), 2),
                runs
            );
        }
    }
}
