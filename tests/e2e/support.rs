//! Shared fixtures: one throwaway cluster per test process (TLS on, every
//! authentication method), copyguard instances started in-process, and
//! helpers to run real clients.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::thread::JoinHandle;

use copyguard::config::{Config, ConfigArgs};
use copyguard::devdb::{DevDb, DevDbOptions, ServerTls};
use copyguard::proxy::Server;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

pub use crate::served::Served;

/// Password of every password-authenticated test role.
pub const PASSWORD: &str = "s3cret-pass";

/// The shared cluster and the TLS material of the test CA.
pub struct Cluster {
    pub db: DevDb,
    pub certs: Certs,
}

/// A test CA and a certificate for `localhost` / `127.0.0.1` signed by it,
/// used both by the PostgreSQL server and by copyguard's client side.
pub struct Certs {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn make_certs() -> (Certs, ServerTls) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "copyguard test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    let dir = tempfile::tempdir().expect("cert dir");
    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).expect("write pem");
        path
    };
    let certs = Certs {
        ca: write("ca.pem", &ca_cert.pem()),
        cert: write("server.pem", &cert.pem()),
        key: write("server.key", &key.serialize_pem()),
        _dir: dir,
    };
    let tls = ServerTls {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    (certs, tls)
}

/// The cluster shared by every test in this process, started on first use.
///
/// Roles: `scram_user` (scram-sha-256), `md5_user` (md5), `clear_user`
/// (password), `trust_user` (trust), all with [`PASSWORD`] and able to
/// create databases. Database `testdb` holds a few tables.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let (certs, tls) = make_certs();
        let db = DevDb::start(DevDbOptions {
            tls: Some(tls),
            hba: vec![
                "host all md5_user 127.0.0.1/32 md5".into(),
                "host all clear_user 127.0.0.1/32 password".into(),
                "host all trust_user 127.0.0.1/32 trust".into(),
            ],
            settings: vec![("max_connections".into(), "200".into())],
        })
        .expect("start the test cluster");
        db.psql(
            "postgres",
            &format!(
                "CREATE ROLE scram_user LOGIN CREATEDB PASSWORD '{PASSWORD}';
                 CREATE ROLE clear_user LOGIN CREATEDB PASSWORD '{PASSWORD}';
                 CREATE ROLE trust_user LOGIN CREATEDB;
                 SET password_encryption = 'md5';
                 CREATE ROLE md5_user LOGIN CREATEDB PASSWORD '{PASSWORD}';
                 CREATE DATABASE testdb OWNER scram_user;"
            ),
        )
        .expect("create roles");
        db.psql(
            "testdb",
            "SET ROLE scram_user;
             CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL, born date);
             INSERT INTO customers SELECT g, 'c' || g || '@example.com', date '1980-01-01' + g
               FROM generate_series(1, 500) g;
             CREATE TABLE notes (id serial PRIMARY KEY, customer_id int REFERENCES customers, body text);
             INSERT INTO notes (customer_id, body) SELECT 1 + g % 500, repeat('x', g % 50)
               FROM generate_series(1, 1000) g;
             CREATE VIEW customer_notes AS SELECT c.email, n.body FROM customers c JOIN notes n ON n.customer_id = c.id;
             GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC;",
        )
        .expect("create test tables");
        Cluster { db, certs }
    })
}

/// Creates a fresh database owned by `scram_user`; returns its name.
pub fn fresh_database(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{prefix}_{}_{n}", std::process::id());
    cluster()
        .db
        .psql(
            "postgres",
            &format!("CREATE DATABASE {name} OWNER scram_user"),
        )
        .expect("create database");
    name
}

/// The policy the transparent-proxy tests run under: every test role is a
/// production role.
pub const PRODUCTION_POLICY: &str = r#"
[classes.production]
mode = "production"
roles = ["scram_user", "md5_user", "clear_user", "trust_user"]
"#;

/// A fresh directory holding `policy` as its only policy file. It lives in
/// the shared cluster's temporary directory, so it is removed with it.
pub fn policy_dir(policy: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = cluster().db.data_dir();
    let dir = base
        .parent()
        .unwrap_or(&base)
        .join(format!("copyguard-policy-{n}"));
    std::fs::create_dir_all(&dir).expect("policy dir");
    std::fs::write(dir.join("policy.toml"), policy).expect("write policy");
    dir
}

/// A block log path of its own (one writer per log), in the shared
/// cluster's temporary directory.
pub fn audit_path() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = cluster().db.data_dir();
    base.parent()
        .unwrap_or(&base)
        .join(format!("copyguard-audit-{n}"))
        .join("audit.log")
}

/// Arguments for a proxy in front of the shared cluster, listening on a
/// free port, with a short shutdown grace period, under
/// [`PRODUCTION_POLICY`], with a block log of its own.
pub fn proxy_args() -> ConfigArgs {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let policy = DIR.get_or_init(|| policy_dir(PRODUCTION_POLICY));
    let db = &cluster().db;
    ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        upstream: Some(format!("{}:{}", db.host(), db.port())),
        shutdown_timeout: Some("2s".into()),
        policy: Some(policy.display().to_string()),
        audit_path: Some(audit_path().display().to_string()),
        ..ConfigArgs::default()
    }
}

/// Arguments for TLS on the client side with the test certificate.
pub fn with_client_tls(mut args: ConfigArgs, mode: &str) -> ConfigArgs {
    let certs = &cluster().certs;
    args.tls_mode = Some(mode.into());
    args.tls_cert = Some(certs.cert.display().to_string());
    args.tls_key = Some(certs.key.display().to_string());
    args
}

/// Arguments for verified TLS towards the upstream.
pub fn with_upstream_tls(mut args: ConfigArgs) -> ConfigArgs {
    args.upstream_tls_mode = Some("verify-full".into());
    args.upstream_tls_ca = Some(cluster().certs.ca.display().to_string());
    args.upstream_tls_server_name = Some("localhost".into());
    args
}

/// copyguard running in-process on its own runtime thread.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestProxy {
    /// Starts a proxy with `args`, its sessions placed as
    /// `COPYGUARD_TEST_RUNTIME` says.
    pub fn start(args: ConfigArgs) -> TestProxy {
        let placement = std::env::var("COPYGUARD_TEST_RUNTIME").ok();
        TestProxy::start_placed(args, placement)
    }

    /// Starts a proxy with `args` whose production relays and guarded
    /// sessions run on threads of their own, as `serve` places them with
    /// `COPYGUARD_GUARDED=threads`.
    pub fn start_threaded(args: ConfigArgs) -> TestProxy {
        TestProxy::start_placed(args, Some("threads".into()))
    }

    fn start_placed(args: ConfigArgs, placement: Option<String>) -> TestProxy {
        let config = Config::load(&args).expect("valid test configuration");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut server = Server::bind(config).await.expect("bind proxy");
                // `split`: production relays on single-thread runtimes of
                // their own, as `serve` does.
                match placement.as_deref() {
                    Some("split") => {
                        let relays =
                            copyguard::proxy::SessionRuntimes::start(2).expect("relay runtimes");
                        server = server.with_relay_runtimes(relays);
                    }
                    // Production relays on blocking threads of their own,
                    // guarded sessions on two threads each, as `serve` does
                    // with `COPYGUARD_GUARDED=threads`.
                    Some("threads") => {
                        let relays =
                            copyguard::proxy::relay::RelayThreads::new(64).expect("relay spawner");
                        server = server.with_relay_threads(relays).with_guarded_threads(64)
                    }
                    _ => {}
                }
                ready_tx
                    .send((server.local_addr(), server.admin_addr()))
                    .expect("report address");
                server
                    .run(async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let (addr, admin) = ready_rx.recv().expect("proxy started");
        TestProxy {
            addr,
            admin,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// A proxy in front of the shared cluster with default settings.
    pub fn plain() -> TestProxy {
        TestProxy::start(proxy_args())
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops accepting and waits for the server to finish.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    /// Signals shutdown without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    fn stop_and_join(&mut self) {
        self.begin_shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// A libpq connection string to `port` on 127.0.0.1.
pub fn conninfo(port: u16, user: &str, dbname: &str, extra: &str) -> String {
    format!("host=127.0.0.1 port={port} user={user} dbname={dbname} connect_timeout=10 {extra}")
}

/// Runs a real client program from the server's installation.
pub fn client(name: &str) -> Command {
    let mut cmd = Command::new(cluster().db.client_bin(name));
    cmd.env("PGPASSWORD", PASSWORD)
        .env("PGSSLMODE", "disable")
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGSERVICE")
        .env_remove("PGOPTIONS");
    cmd
}

/// Runs `psql -X -At` with `sql` on stdin against `conninfo`.
pub fn psql(conninfo: &str, sql: &str) -> Output {
    output_with_stdin(
        client("psql").args([
            "-X",
            "-At",
            "-v",
            "VERBOSITY=verbose",
            "-d",
            conninfo,
            "-f",
            "-",
        ]),
        sql,
    )
}

/// Runs `command` with `input` on its stdin and collects its output.
pub fn output_with_stdin(command: &mut Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run client");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("client output")
}

/// stdout and stderr of a finished program, for assertions.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Connects with tokio-postgres (no TLS).
/// A direct superuser connection to the test cluster's `db`, its driver
/// spawned.
pub async fn superuser(db: &str) -> tokio_postgres::Client {
    let url = cluster().db.superuser_url(db);
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("direct superuser connection");
    tokio::spawn(conn);
    client
}

pub async fn connect(port: u16, user: &str, dbname: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &conninfo(port, user, dbname, &format!("password={PASSWORD}")),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect through copyguard");
    tokio::spawn(connection);
    client
}

/// Connects with tokio-postgres (no TLS) as a listener: the client, and
/// the channel and payload of every notification it receives.
pub async fn listener(
    conninfo: &str,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
) {
    use futures_util::StreamExt;
    let (client, mut connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .expect("connect the listener");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    (client, rx)
}

/// Path of the test CA certificate.
pub fn ca_path() -> &'static Path {
    &cluster().certs.ca
}

/// `copyguard serve` (the binary) in front of the shared cluster, on a
/// port the OS picks, under `policy`, with a clean environment and a block
/// log of its own; the caller adds flags and starts it with
/// [`Served::start`], which reads the port it reports.
pub fn serve_command(policy: &Path) -> Command {
    let db = &cluster().db;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_copyguard"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--policy"])
        .arg(policy)
        .args(["--upstream", &format!("{}:{}", db.host(), db.port())])
        .env_clear()
        .env("COPYGUARD_AUDIT_PATH", audit_path());
    cmd
}

/// The rows of a simple query's messages, every value as text.
pub fn text_rows_of(messages: Vec<tokio_postgres::SimpleQueryMessage>) -> Vec<Vec<Option<String>>> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

/// `trust_user` in a guarded class of small limits (5 rows, 1 MiB a
/// statement), nothing classified: append a `[columns]` table to classify.
pub const GUARDED_TRUST_USER_CLASS: &str = r#"
[classes.developers]
mode = "guarded"
roles = ["trust_user"]
max_rows_per_statement = 5
max_bytes_per_statement = "1MiB"
max_rows_per_session = 1000
max_rows_per_window = 100000
window = "1h"
"#;

/// Polls `f` until it holds, for at most `limit`.
pub fn eventually(limit: std::time::Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Backends of `db` whose current or last statement contains `marker`.
pub fn backends_running(db: &DevDb, marker: &str) -> usize {
    db.psql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%{marker}%' \
             AND pid <> pg_backend_pid()"
        ),
    )
    .map(|out| out.trim().parse().unwrap_or(usize::MAX))
    .unwrap_or(usize::MAX)
}
