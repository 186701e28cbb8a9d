//! Throwaway local PostgreSQL clusters for the demo, tests and benches.
//!
//! [`DevDb::start`] runs `initdb` into a fresh temporary directory and starts a server listening on
//! a free port of 127.0.0.1. A watchdog shell process stops the server and deletes the directory
//! once the [`DevDb`] is dropped or its owning process dies for any reason (panic, `SIGKILL`, a
//! `static` that is never dropped). When running as root, the server programs run as the
//! `postgres` OS user through `runuser`, because `initdb` refuses to run as root.

use std::collections::hash_map::RandomState;
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

const HOST: &str = "127.0.0.1";
const SUPERUSER: &str = "postgres";
const SERVER_OS_USER: &str = "postgres";
const START_ATTEMPTS: u32 = 3;
const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_TAIL_LINES: usize = 40;
/// Longest Unix-domain socket path Linux accepts (`sun_path` minus the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Settings that [`DevDb`] controls itself; overriding them would break `host()`/`port()`.
const RESERVED_SETTINGS: [&str; 3] = ["port", "listen_addresses", "unix_socket_directories"];

/// Blocks until stdin reaches EOF (the owning [`DevDb`] was dropped or its process died), then
/// runs the stop command given as arguments and removes the cluster's directory.
const WATCHDOG_SCRIPT: &str = r#"dir=$1
shift
trap '' HUP INT
while read -r line; do :; done
"$@" >/dev/null 2>&1
rm -rf -- "$dir"
"#;

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
pub fn find_bindir() -> Result<PathBuf> {
    let mut searched = Vec::new();

    match which("initdb") {
        Some(initdb) => {
            let on_path = initdb.parent().map(Path::to_path_buf);
            let resolved = fs::canonicalize(&initdb)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf));
            for dir in [resolved, on_path.clone()].into_iter().flatten() {
                if is_server_bindir(&dir) {
                    return Ok(dir);
                }
            }
            let shown = on_path.unwrap_or_default();
            searched.push(format!(
                "{} (initdb on PATH, but no pg_ctl)",
                shown.display()
            ));
        }
        None => searched.push("PATH (no initdb)".to_owned()),
    }

    match Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => {
            let dir = PathBuf::from(OsStr::from_bytes(out.stdout.trim_ascii()));
            if is_server_bindir(&dir) {
                return Ok(dir);
            }
            searched.push(format!("{} (pg_config --bindir)", dir.display()));
        }
        _ => searched.push("pg_config --bindir (unavailable)".to_owned()),
    }

    let root = Path::new("/usr/lib/postgresql");
    if let Some(dir) = newest_versioned_bindir(root) {
        return Ok(dir);
    }
    searched.push(format!("{}/*/bin", root.display()));

    Err(DevDbError::BinariesNotFound {
        searched: searched.join("; "),
    })
}

/// The `bin` directory of the highest numeric version under `root` that holds the server programs.
fn newest_versioned_bindir(root: &Path) -> Option<PathBuf> {
    fs::read_dir(root)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            is_server_bindir(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

fn is_server_bindir(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("pg_ctl"))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds `name` on PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

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

/// Runs programs directly, or as the `postgres` OS user through `runuser` when we are root.
struct Runner {
    user: Option<OsUser>,
}

struct OsUser {
    name: &'static str,
    uid: u32,
    gid: u32,
    runuser: PathBuf,
}

impl Runner {
    fn detect() -> Result<Runner> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(Runner { user: None });
        }
        let (uid, gid) = lookup_user(SERVER_OS_USER)?;
        let runuser = which("runuser")
            .or_else(|| {
                ["/usr/sbin/runuser", "/sbin/runuser"]
                    .into_iter()
                    .map(PathBuf::from)
                    .find(|p| is_executable(p))
            })
            .ok_or_else(|| DevDbError::ServerUser {
                user: SERVER_OS_USER.to_owned(),
                reason: "`runuser` not found on PATH, /usr/sbin or /sbin".to_owned(),
            })?;
        Ok(Runner {
            user: Some(OsUser {
                name: SERVER_OS_USER,
                uid,
                gid,
                runuser,
            }),
        })
    }

    /// The argument vector running `program` as the server's OS user.
    fn argv(&self, program: &Path) -> Vec<OsString> {
        match &self.user {
            Some(user) => vec![
                user.runuser.clone().into(),
                "-u".into(),
                user.name.into(),
                "--".into(),
                program.into(),
            ],
            None => vec![program.into()],
        }
    }

    fn command(&self, program: &Path) -> Command {
        let argv = self.argv(program);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).env("LC_ALL", "C");
        cmd
    }

    fn chown(&self, path: &Path) -> Result<()> {
        match &self.user {
            Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                .map_err(|e| io_err(format!("chown {} to {}", path.display(), user.name), e)),
            None => Ok(()),
        }
    }
}

/// The uid and gid of OS user `name`.
fn lookup_user(name: &str) -> Result<(u32, u32)> {
    let unusable = |reason: String| DevDbError::ServerUser {
        user: name.to_owned(),
        reason,
    };
    let c_name = CString::new(name).map_err(|_| unusable("the name contains NUL".to_owned()))?;
    let mut buf_len = 1024;
    loop {
        let mut buf: Vec<libc::c_char> = vec![0; buf_len];
        // SAFETY: passwd is a plain C struct for which all-zero bytes are a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to live memory of the advertised size; `pwd` only borrows
        // from `buf`, and we copy the ids out before either goes away.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf_len < 1 << 20 {
            buf_len *= 4;
            continue;
        }
        if rc != 0 {
            return Err(unusable(format!(
                "looking it up failed: {}",
                io::Error::from_raw_os_error(rc)
            )));
        }
        if result.is_null() {
            return Err(unusable(
                "no such user (install the `postgresql` package or create it)".to_owned(),
            ));
        }
        return Ok((pwd.pw_uid, pwd.pw_gid));
    }
}

/// Stops the server and removes the cluster's directory once its stdin pipe closes.
#[derive(Debug)]
struct Watchdog {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    dir: PathBuf,
}

impl Watchdog {
    fn spawn(runner: &Runner, bindir: &Path, dir: &Path) -> Result<Watchdog> {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("copyguard-devdb-watchdog")
            .arg(dir)
            .args(runner.argv(&bindir.join("pg_ctl")))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-m", "immediate", "-w", "-t", "20", "stop"])
            .env("LC_ALL", "C")
            .current_dir("/")
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| io_err(format!("spawning the watchdog `{}`", describe(&cmd)), e))?;
        let stdin = child.stdin.take();
        Ok(Watchdog {
            child: Some(child),
            stdin,
            dir: dir.to_path_buf(),
        })
    }

    /// Closes the pipe and waits (bounded) for the watchdog to finish cleaning up.
    fn shutdown(&mut self) {
        drop(self.stdin.take());
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + WATCHDOG_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        "devdb watchdog still busy after {WATCHDOG_TIMEOUT:?}; not waiting longer"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        error = %e,
                        "waiting for the devdb watchdog failed"
                    );
                    return;
                }
            }
        }
    }
}

/// Creates `<temp>/copyguard-devdb-<pid>-<counter>-<random>` with mode 0700.
fn create_temp_dir() -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    let base = std::path::absolute(&base).map_err(|e| {
        io_err(
            format!("resolving temporary directory {}", base.display()),
            e,
        )
    })?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!(
            "copyguard-devdb-{}-{n}-{:08x}",
            std::process::id(),
            random_u32()
        ));
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => continue,
            Err(e) => {
                return Err(io_err(
                    format!("creating temporary directory {}", path.display()),
                    e,
                ))
            }
        }
    }
}

fn random_u32() -> u32 {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    hasher.finish() as u32
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| io_err("finding a free TCP port on 127.0.0.1".to_owned(), e))
}

/// Writes a file that must not exist yet, with the given mode.
fn write_new_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .map_err(|e| io_err(format!("writing {}", path.display()), e))
}

fn write_file(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).map_err(|e| io_err(format!("writing {}", path.display()), e))
}

/// The contents of `path` from byte `offset` on, or "" when unreadable.
fn read_from(path: &Path, offset: u64) -> String {
    let mut bytes = Vec::new();
    let _ = fs::File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(offset))?;
        file.read_to_end(&mut bytes)
    });
    String::from_utf8_lossy(&bytes).into_owned()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn run(cmd: &mut Command) -> Result<Output> {
    let desc = describe(cmd);
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io_err(format!("running `{desc}`"), e))?;
    check(&desc, output)
}

fn check(desc: &str, output: Output) -> Result<Output> {
    if output.status.success() {
        return Ok(output);
    }
    Err(DevDbError::Command {
        cmd: desc.to_owned(),
        status: output.status.to_string(),
        stderr: command_output(&output),
    })
}

/// stderr of a finished command, or its stdout when stderr is empty.
fn command_output(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.trim().is_empty() {
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    } else {
        stderr.trim().to_owned()
    }
}

/// A readable, shell-like rendering of a command line.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c))
            {
                arg.into_owned()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn io_err(what: String, source: io::Error) -> DevDbError {
    DevDbError::Io { what, source }
}
