//! Throwaway local PostgreSQL clusters for the demo, tests and benches.
//!
//! [`DevDb::start`] runs `initdb` into a fresh temporary directory and starts a server listening on
//! a free port of 127.0.0.1. A watchdog shell process stops the server and deletes the directory
//! once the [`DevDb`] is dropped or its owning process dies for any reason (panic, `SIGKILL`, a
//! `static` that is never dropped). When running as root, the server programs run as the
//! `postgres` OS user through `runuser`, because `initdb` refuses to run as root.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod bindir;
mod runner;
mod util;
mod watchdog;

pub use bindir::find_bindir;
use bindir::{is_executable, which};
use runner::Runner;
use util::{
    check, command_output, create_temp_dir, describe, free_port, io_err, percent_encode, read_from,
    run, tail, write_file, write_new_file,
};
use watchdog::Watchdog;

const HOST: &str = "127.0.0.1";
const SUPERUSER: &str = "postgres";
const SERVER_OS_USER: &str = "postgres";
const START_ATTEMPTS: u32 = 3;
const LOG_TAIL_LINES: usize = 40;
/// Longest Unix-domain socket path Linux accepts (`sun_path` minus the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Settings that [`DevDb`] controls itself; overriding them would break `host()`/`port()`.
const RESERVED_SETTINGS: [&str; 3] = ["port", "listen_addresses", "unix_socket_directories"];

/// Errors from starting or using a throwaway cluster.
#[derive(Debug, thiserror::Error)]
pub enum DevDbError {
    /// No directory holding both `initdb` and `pg_ctl` was found.
    #[error("PostgreSQL server binaries (initdb and pg_ctl) not found; searched: {searched}")]
    BinariesNotFound {
        /// The locations that were tried.
        searched: String,
    },
    /// A file-system or process-spawning operation failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation, naming the path or command involved.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A command ran but exited unsuccessfully.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// How the command ended.
        status: String,
        /// What the command wrote to stderr (or stdout when stderr was empty).
        stderr: String,
    },
    /// The server did not start.
    #[error(
        "PostgreSQL did not start: `{cmd}` failed ({status}): {output}\nend of {}:\n{log_tail}",
        log.display()
    )]
    NotReady {
        /// The `pg_ctl start` command line.
        cmd: String,
        /// How `pg_ctl` ended.
        status: String,
        /// What `pg_ctl` printed.
        output: String,
        /// The server log file.
        log: PathBuf,
        /// The end of the server log.
        log_tail: String,
    },
    /// Running as root, but the unprivileged OS user for the server is unusable.
    #[error("running as root, but cannot run the server as OS user `{user}`: {reason}")]
    ServerUser {
        /// The OS user name.
        user: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A [`DevDbOptions`] entry is invalid.
    #[error("invalid {what}: {reason}")]
    InvalidOption {
        /// The offending option.
        what: String,
        /// Why it was rejected.
        reason: String,
    },
}

type Result<T, E = DevDbError> = std::result::Result<T, E>;

/// TLS material for the server (PEM strings).
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// The server certificate (chain), PEM encoded.
    pub cert_pem: String,
    /// The certificate's private key, PEM encoded and unencrypted.
    pub key_pem: String,
}

/// How to configure a [`DevDb`].
#[derive(Clone, Debug, Default)]
pub struct DevDbOptions {
    /// Enables `ssl = on` with this certificate and key.
    pub tls: Option<ServerTls>,
    /// Extra pg_hba.conf lines inserted BEFORE the defaults (first match wins).
    pub hba: Vec<String>,
    /// Extra postgresql.conf settings, e.g. ("max_connections", "200"); values are quoted for you.
    pub settings: Vec<(String, String)>,
}

/// A running throwaway PostgreSQL cluster; stopped and deleted on drop.
#[derive(Debug)]
pub struct DevDb {
    port: u16,
    bindir: PathBuf,
    dir: PathBuf,
    watchdog: Watchdog,
}

impl DevDb {
    /// Creates a cluster in a fresh temporary directory and starts it on a free port.
    pub fn start(opts: DevDbOptions) -> Result<DevDb> {
        validate(&opts)?;
        let bindir = find_bindir()?;
        let runner = Runner::detect()?;
        let dir = create_temp_dir()?;
        let watchdog = match Watchdog::spawn(&runner, &bindir, &dir) {
            Ok(watchdog) => watchdog,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        // From here on, dropping `db` (also on error) stops the server and removes `dir`.
        let mut db = DevDb {
            port: 0,
            bindir,
            dir,
            watchdog,
        };
        db.init(&runner, &opts)?;
        tracing::debug!(port = db.port, dir = %db.dir.display(), "started throwaway PostgreSQL");
        Ok(db)
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on: `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The superuser role name: `postgres`.
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// The directory holding `initdb`, `pg_ctl` and `postgres` of the server used.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The cluster's data directory (inside the temporary directory removed on drop).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server log file.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Path of a client program (psql, pg_dump, pgbench, pg_restore...): prefer the one in
    /// bindir, else PATH.
    pub fn client_bin(&self, name: &str) -> PathBuf {
        if name.is_empty() || name.contains('/') {
            return PathBuf::from(name);
        }
        let local = self.bindir.join(name);
        if is_executable(&local) {
            return local;
        }
        which(name).unwrap_or_else(|| PathBuf::from(name))
    }

    /// Runs SQL as the superuser with `psql -X -q -v ON_ERROR_STOP=1 -At` over TCP; returns stdout.
    ///
    /// The SQL is fed on stdin, so it may hold several statements.
    pub fn psql(&self, dbname: &str, sql: &str) -> Result<String> {
        let port = self.port.to_string();
        let mut cmd = Command::new(self.client_bin("psql"));
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", HOST, "-p"])
            .arg(&port)
            .args(["-U", SUPERUSER, "-d", dbname, "-f", "-"])
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGSSLMODE", "disable")
            .env_remove("PGSERVICE")
            .env_remove("PGOPTIONS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let desc = describe(&cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| io_err(format!("running `{desc}`"), e))?;
        let output = std::thread::scope(|scope| {
            if let Some(mut stdin) = child.stdin.take() {
                // psql may exit early (e.g. cannot connect); its exit status tells why.
                std::thread::Builder::new()
                    .name("devdb-psql-stdin".into())
                    .spawn_scoped(scope, move || {
                        let _ = stdin.write_all(sql.as_bytes());
                    })?;
            }
            child.wait_with_output()
        })
        .map_err(|e| io_err(format!("running `{desc}`"), e))?;
        check(&desc, output).map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB` style connection string for the superuser.
    pub fn superuser_url(&self, dbname: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@{HOST}:{}/{}",
            self.port,
            percent_encode(dbname)
        )
    }

    /// Kills the server as a crash would (`pg_ctl stop -m immediate`:
    /// every backend ends at once, no checkpoint); the files stay, and
    /// [`DevDb::start_again`] brings it back on the same port. For fault
    /// tests.
    pub fn kill(&self) -> Result<()> {
        let runner = Runner::detect()?;
        let mut stop = runner.command(&self.bindir.join("pg_ctl"));
        stop.arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .current_dir(&self.dir);
        run(&mut stop).map(drop)
    }

    /// Starts a server stopped by [`DevDb::kill`] again (crash recovery
    /// included), on the same port, waiting until it accepts connections.
    pub fn start_again(&self) -> Result<()> {
        let runner = Runner::detect()?;
        let mut start = runner.command(&self.bindir.join("pg_ctl"));
        start
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "60", "start"])
            .current_dir(&self.dir);
        run(&mut start).map(drop)
    }

    /// Stops the server and removes its files (also done on Drop).
    pub fn stop(self) {
        drop(self);
    }

    fn init(&mut self, runner: &Runner, opts: &DevDbOptions) -> Result<()> {
        runner.chown(&self.dir)?;
        let data = self.data_dir();
        let mut initdb = runner.command(&self.bindir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ])
            .current_dir(&self.dir);
        run(&mut initdb)?;

        let mut tls_files = None;
        if let Some(tls) = &opts.tls {
            let cert = self.dir.join("server.crt");
            let key = self.dir.join("server.key");
            write_new_file(&cert, &tls.cert_pem, 0o644)?;
            write_new_file(&key, &tls.key_pem, 0o600)?;
            runner.chown(&cert)?;
            runner.chown(&key)?;
            tls_files = Some((cert, key));
        }

        let hba_path = data.join("pg_hba.conf");
        let mut hba = String::from("# Written by copyguard devdb.\n");
        for line in &opts.hba {
            hba.push_str(line);
            hba.push('\n');
        }
        hba.push_str("local all all trust\n");
        hba.push_str(&format!("host all {SUPERUSER} {HOST}/32 trust\n"));
        hba.push_str(&format!("host all all {HOST}/32 scram-sha-256\n"));
        write_file(&hba_path, &hba)?;
        runner.chown(&hba_path)?;

        let conf_path = data.join("postgresql.conf");
        let base_conf = fs::read_to_string(&conf_path)
            .map_err(|e| io_err(format!("reading {}", conf_path.display()), e))?;
        let log = self.log_file();
        let pg_ctl = self.bindir.join("pg_ctl");

        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()?;
            let conf = format!(
                "{base_conf}\n{}",
                conf_block(&self.dir, port, tls_files.as_ref(), &opts.settings)
            );
            write_file(&conf_path, &conf)?;
            runner.chown(&conf_path)?;

            let log_offset = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            let mut start = runner.command(&pg_ctl);
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "start"])
                .current_dir(&self.dir);
            let desc = describe(&start);
            let out = start
                .stdin(Stdio::null())
                .output()
                .map_err(|e| io_err(format!("running `{desc}`"), e))?;
            if out.status.success() {
                self.port = port;
                return Ok(());
            }
            let fresh_log = read_from(&log, log_offset);
            let port_clash = [
                "Address already in use",
                "could not bind",
                "could not create any TCP/IP sockets",
            ]
            .iter()
            .any(|needle| fresh_log.contains(needle));
            if port_clash && attempt < START_ATTEMPTS {
                tracing::debug!(port, "port taken while starting PostgreSQL; retrying");
                continue;
            }
            return Err(DevDbError::NotReady {
                cmd: desc,
                status: out.status.to_string(),
                output: command_output(&out),
                log,
                log_tail: tail(&fresh_log, LOG_TAIL_LINES),
            });
        }
    }
}

impl Drop for DevDb {
    fn drop(&mut self) {
        self.watchdog.shutdown();
    }
}

/// Where the PostgreSQL server binaries are: `initdb` on PATH, else `pg_config --bindir`, else
/// the newest `/usr/lib/postgresql/*/bin`.
///
/// A directory counts only if it holds both `initdb` and `pg_ctl`. When `initdb` on PATH is a
/// symlink, the directory of its target is preferred, so that matching client programs are used.
fn validate(opts: &DevDbOptions) -> Result<()> {
    for (name, value) in &opts.settings {
        let invalid = |reason: &str| DevDbError::InvalidOption {
            what: format!("setting `{name}`"),
            reason: reason.to_owned(),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(invalid(
                "names may only contain ASCII letters, digits, `_` and `.`",
            ));
        }
        if RESERVED_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(invalid("it is managed by DevDb"));
        }
        if value.contains(['\n', '\r', '\0']) {
            return Err(invalid("the value may not contain line breaks or NUL"));
        }
    }
    for line in &opts.hba {
        if line.contains(['\n', '\r', '\0']) {
            return Err(DevDbError::InvalidOption {
                what: format!("pg_hba.conf line {line:?}"),
                reason: "each entry must be a single line without NUL".to_owned(),
            });
        }
    }
    Ok(())
}

/// The postgresql.conf lines appended to initdb's defaults.
fn conf_block(
    dir: &Path,
    port: u16,
    tls: Option<&(PathBuf, PathBuf)>,
    extra: &[(String, String)],
) -> String {
    let socket_dir = dir.to_string_lossy();
    // Too long a socket path is fatal for the server; TCP alone is enough then.
    let socket_dir = if socket_dir.len() + "/.s.PGSQL.65535".len() > MAX_SOCKET_PATH {
        String::new()
    } else {
        socket_dir.into_owned()
    };
    let mut settings: Vec<(String, String)> = [
        ("listen_addresses", HOST.to_owned()),
        ("port", port.to_string()),
        ("unix_socket_directories", socket_dir),
        ("fsync", "off".to_owned()),
        ("synchronous_commit", "off".to_owned()),
        ("full_page_writes", "off".to_owned()),
        ("max_connections", "100".to_owned()),
        ("shared_buffers", "128MB".to_owned()),
        ("log_min_messages", "warning".to_owned()),
        ("password_encryption", "scram-sha-256".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    if let Some((cert, key)) = tls {
        settings.push(("ssl".to_owned(), "on".to_owned()));
        settings.push((
            "ssl_cert_file".to_owned(),
            cert.to_string_lossy().into_owned(),
        ));
        settings.push((
            "ssl_key_file".to_owned(),
            key.to_string_lossy().into_owned(),
        ));
    }
    settings.retain(|(name, _)| !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)));
    settings.extend(extra.iter().cloned());

    let mut block = String::from("# Added by copyguard devdb.\n");
    for (name, value) in &settings {
        let quoted = value.replace('\\', "\\\\").replace('\'', "''");
        block.push_str(&format!("{name} = '{quoted}'\n"));
    }
    block
}
