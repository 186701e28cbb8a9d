//! The client matrix: popular drivers, each driven by a small script
//! (`tests/clients/`), against the fixture through copyguard. For every
//! client: (a) the production role gets through copyguard exactly what it
//! gets directly; (b) the guarded role reads unclassified data as it does
//! directly; (c) the guarded role gets, for classified columns, the same
//! stand-ins as psql through copyguard in every format the client uses,
//! and no real value reaches it (a tap searches every byte); (d) a refusal
//! is the client's ordinary error with SQLSTATE 42501, and the connection
//! (and the driver's pool, where it has one) stays usable, inside and
//! after a failed transaction. A client that is not installed fails its
//! test (`.ci/run` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::guard_fixture::*;
use crate::support::*;
use crate::tap::{find_leak, Tap};

/// The statement every script runs for (c), as psql runs it.
const CLASSIFIED: &str =
    "SELECT id, email, full_name, birth_date, phone FROM users WHERE id <= 5 ORDER BY id";

/// Steps of the refusal scenario without a pool, and with one.
const STEPS: &[&str] = &["42501", "ok", "42501", "25P02", "ok"];
const POOL_STEPS: &[&str] = &["42501", "ok", "42501", "ok"];

/// Testers get personal data pseudonymized; identity documents are
/// forbidden (the refusal every client meets).
fn matrix_policy() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        pseudonymizing_policy_with(
            10000,
            PERSONAL_CATEGORIES,
            &format!(
                r#"{USERS_PERSONAL_COLUMNS}"public.events.detail" = "free_text"
"public.people.name" = "person_name"

[forbidden]
"public.identity_documents" = "identity documents never leave production"
"#
            ),
        )
    })
    .clone()
}

fn matrix_proxy() -> TestProxy {
    static KEY: OnceLock<PathBuf> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let base = cluster().db.data_dir();
        let path = base.parent().unwrap_or(&base).join("matrix-pseudonym.key");
        std::fs::write(&path, format!("{}\n", "cd".repeat(32))).expect("key file");
        path
    });
    fixture();
    let mut args = proxy_args();
    args.policy = Some(matrix_policy().display().to_string());
    args.pseudonym_key_file = Some(key.display().to_string());
    TestProxy::start(args)
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// The Python with the matrix's packages: `tests/clients/.venv` (made by
/// `.ci/run`), else `python3`.
fn python() -> Command {
    let venv = clients_dir().join(".venv/bin/python");
    let mut cmd = Command::new(if venv.exists() {
        venv.into_os_string()
    } else {
        "python3".into()
    });
    cmd.current_dir(clients_dir().join("python"));
    cmd
}

/// The JDBC jar Debian's `libpostgresql-jdbc-java` installs.
const JDBC_JAR: &str = "/usr/share/java/postgresql.jar";

/// `PgJdbc.java` compiled once per test process.
fn java_classes() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = cluster().db.data_dir();
        let dir = base.parent().unwrap_or(&base).join("matrix-java");
        std::fs::create_dir_all(&dir).expect("class dir");
        let out = Command::new("javac")
            .args(["-d"])
            .arg(&dir)
            .args(["-cp", JDBC_JAR])
            .arg(clients_dir().join("java/PgJdbc.java"))
            .output()
            .unwrap_or_else(|e| panic!("javac (apt-get install default-jdk-headless): {e}"));
        assert!(
            out.status.success(),
            "javac failed (is libpostgresql-jdbc-java installed?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// `pgx_client.go` built once per test process, in GOPATH mode against
/// Debian's `golang-github-jackc-pgx-v4-dev` (no module proxy).
fn pgx_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let base = cluster().db.data_dir();
        let dir = base.parent().unwrap_or(&base).join("matrix-go");
        std::fs::create_dir_all(&dir).expect("go dir");
        let package = Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", "golang-github-jackc-pgx-v4-dev"])
            .output()
            .expect("dpkg-query");
        let version = String::from_utf8_lossy(&package.stdout);
        let version = version.split('-').next().unwrap_or("4");
        let bin = dir.join("pgx_client");
        let out = Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg(format!("-ldflags=-X main.pgxVersion={version}"))
            .arg(clients_dir().join("go/pgx_client.go"))
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOCACHE", dir.join("cache"))
            .env("GOPROXY", "off")
            .env("GOFLAGS", "")
            .output()
            .unwrap_or_else(|e| panic!("go (apt-get install golang-go): {e}"));
        assert!(
            out.status.success(),
            "go build failed (is golang-github-jackc-pgx-v4-dev installed?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    })
}

/// Runs a client script against `proxy` and the tap in front of it;
/// returns its JSON result and what went through the tap.
fn run(client: &str, mut cmd: Command, proxy: &TestProxy) -> (Value, Vec<u8>) {
    let tap = Tap::start(proxy.port());
    let out = cmd
        .env("CG_HOST", "127.0.0.1")
        .env("CG_DIRECT", cluster().db.port().to_string())
        .env("CG_PROXY", proxy.port().to_string())
        .env("CG_TAP", tap.port.to_string())
        .env("CG_PROD", PROD)
        .env("CG_DEV", DEV)
        .env("CG_PASSWORD", PASSWORD)
        .env("CG_DB", DB)
        .output()
        .unwrap_or_else(|e| panic!("{client}: cannot run ({e}); .ci/run installs it"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{client} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{client}: bad output ({e}): {stdout}"));
    (result, tap.received())
}

/// The stand-ins psql gets through copyguard for [`CLASSIFIED`].
fn psql_standins(proxy: &TestProxy) -> Value {
    let out = client("psql")
        .args([
            "-X",
            "-At",
            "-F",
            "\t",
            "-d",
            &conninfo(proxy.port(), DEV, DB, ""),
            "-c",
        ])
        .arg(CLASSIFIED)
        .output()
        .expect("run psql");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    Value::from(
        stdout
            .lines()
            .map(|l| Value::from(l.split('\t').collect::<Vec<_>>()))
            .collect::<Vec<_>>(),
    )
}

/// Checks the four scenarios of one client's result.
fn check(
    client: &str,
    result: &Value,
    received: &[u8],
    reference: &Value,
    error: &str,
    pool: bool,
) {
    let version = result["version"].as_str().unwrap_or("?");
    let a = &result["a_direct"];
    assert!(
        a.as_array().is_some_and(|v| !v.is_empty()),
        "{client}: {result}"
    );
    assert_eq!(
        a, &result["a_proxy"],
        "{client} {version}: (a) production differs"
    );
    let b = &result["b_direct"];
    assert!(
        b.as_array().is_some_and(|v| !v.is_empty()),
        "{client}: {result}"
    );
    assert_eq!(
        b, &result["b_guarded"],
        "{client} {version}: (b) unclassified differs"
    );
    let formats = result["c"].as_object().expect("c");
    assert!(!formats.is_empty());
    for (format, rows) in formats {
        assert_eq!(
            rows, reference,
            "{client} {version}: (c) {format} stand-ins differ from psql's"
        );
    }
    assert_eq!(
        find_leak(received, secrets()),
        None,
        "{client} {version}: (c) a real value reached the guarded client"
    );
    let mut steps = STEPS.to_vec();
    if pool {
        steps.extend(POOL_STEPS);
    }
    assert_eq!(
        result["d"]["steps"],
        Value::from(steps),
        "{client} {version}: (d)"
    );
    assert_eq!(
        result["d"]["error_type"], error,
        "{client} {version}: (d) error type"
    );
    eprintln!(
        "client matrix: {client} {version}: (a) ok (b) ok (c) ok: {} formats (d) ok: {error}{}",
        formats.len(),
        if pool { ", pool" } else { "" }
    );
}

fn matrix(client: &str, cmd: Command, error: &str, pool: bool) {
    let proxy = matrix_proxy();
    let reference = psql_standins(&proxy);
    assert_eq!(reference.as_array().map(Vec::len), Some(5), "{reference}");
    let (result, received) = run(client, cmd, &proxy);
    check(client, &result, &received, &reference, error, pool);
}

#[test]
fn matrix_psycopg() {
    let mut cmd = python();
    cmd.arg("psycopg_client.py");
    matrix("psycopg", cmd, "InsufficientPrivilege", true);
}

/// Also the three asyncpg failures of issue 14: type introspection
/// (`ANY($1::int[])`, after `set_config('jit', ...)`), `Cursor.forward`
/// (`MOVE` on a protocol portal) and the pool's reset on release.
#[test]
fn matrix_asyncpg() {
    let mut cmd = python();
    cmd.arg("asyncpg_client.py");
    matrix("asyncpg", cmd, "InsufficientPrivilegeError", true);
}

#[test]
fn matrix_sqlalchemy() {
    let mut cmd = python();
    cmd.arg("sqlalchemy_client.py");
    matrix("sqlalchemy", cmd, "ProgrammingError", true);
}

#[test]
fn matrix_node_postgres() {
    let mut cmd = Command::new("node");
    cmd.arg(clients_dir().join("node/client.js"));
    matrix("node-postgres", cmd, "DatabaseError", true);
}

#[test]
fn matrix_pgjdbc() {
    let classes = java_classes();
    let mut cmd = Command::new("java");
    cmd.args(["-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp"])
        .arg(format!("{}:{JDBC_JAR}", classes.display()))
        .arg("PgJdbc");
    matrix("pgjdbc", cmd, "PSQLException", false);
}

#[test]
fn matrix_pgx() {
    let cmd = Command::new(pgx_binary());
    matrix("pgx", cmd, "PgError", true);
}
