//! `copyguard serve` refusing bad configuration: exit status 2, one clear
//! message, and no side effect (no block log, no audit keys) before the
//! refusal. No PostgreSQL needed: each case fails, or is stopped, before
//! the upstream is reached.

mod served;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use served::Served;

const BIN: &str = env!("CARGO_BIN_EXE_copyguard");

const POLICY: &str = r#"
[classes.production]
mode = "production"
roles = ["app"]

[classes.dev]
mode = "guarded"
roles = ["dev"]
pseudonymize = ["email"]
"#;

/// A directory holding `policy.toml` with `text`, and room for a block log.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(policy: &str) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("policy")).unwrap();
        std::fs::write(dir.path().join("policy/policy.toml"), policy).unwrap();
        Setup { dir }
    }

    fn audit_path(&self) -> PathBuf {
        self.dir.path().join("log/audit.log")
    }

    /// `copyguard serve` with a clean environment, this policy, a block
    /// log in the setup directory, a free listen port, and `args`.
    fn command(&self, args: &[&str]) -> Command {
        std::fs::create_dir_all(self.dir.path().join("log")).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--upstream", "127.0.0.1:1", "--policy"])
            .arg(self.dir.path().join("policy"))
            .args(args)
            .env_clear()
            .env("COPYGUARD_LISTEN", "127.0.0.1:0")
            .env("COPYGUARD_AUDIT_PATH", self.audit_path());
        cmd
    }

    /// Runs `serve` with `args`; one that is still serving after 20 s
    /// (it accepted what it should have refused) is killed.
    fn run(&self, args: &[&str]) -> Output {
        spawn_bounded(self.command(args))
    }

    /// Whether the block log or its keys were created.
    fn side_effects(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path().join("log"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }
}

/// The output of `cmd`, killed if it has not exited within 20 s.
fn spawn_bounded(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("copyguard runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().expect("output")
}

/// Exit status 2, and `needle` said exactly once on stderr.
fn refused_once(out: &Output, needle: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.matches(needle).count(), 1, "{needle:?} once in:\n{err}");
    err
}

fn key_file(dir: &Path, bytes: usize) -> PathBuf {
    let path = dir.join(format!("key-{bytes}"));
    std::fs::write(&path, format!("{}\n", "ab".repeat(bytes))).unwrap();
    path
}

#[test]
fn policy_errors_exit_2_with_the_message_once() {
    let s = Setup::new("[classes.x]\nmode = \"sometimes\"\n");
    let out = s.run(&[]);
    let err = refused_once(&out, "sometimes");
    assert!(err.contains("policy.toml"), "{err}");
    assert!(s.side_effects().is_empty(), "{:?}", s.side_effects());
}

#[test]
fn unwritable_audit_path_exits_2_with_one_message() {
    let s = Setup::new(POLICY);
    let blocker = s.dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let mut cmd = s.command(&[]);
    cmd.env("COPYGUARD_AUDIT_PATH", blocker.join("audit.log"));
    let out = spawn_bounded(cmd);
    let err = refused_once(&out, "Not a directory");
    assert!(err.contains("audit.path"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn zero_startup_timeout_is_refused() {
    let s = Setup::new(POLICY);
    let out = s.run(&["--startup-timeout", "0s"]);
    let err = refused_once(&out, "--startup-timeout");
    assert!(err.contains("more than 0"), "{err}");
    let out = s.run(&["--connect-timeout", "0"]);
    refused_once(&out, "--connect-timeout");
}

#[test]
fn short_pseudonym_key_is_refused() {
    let s = Setup::new(POLICY);
    let short = key_file(s.dir.path(), 16);
    let out = s.run(&["--pseudonym-key-file", short.to_str().unwrap()]);
    let err = refused_once(&out, "at least 32");
    assert!(err.contains("pseudonym.key_file"), "{err}");
}

#[test]
fn pseudonymize_of_an_unknown_category_is_refused() {
    let s = Setup::new(&POLICY.replace("[\"email\"]", "[\"emial\"]"));
    let out = s.run(&[]);
    let err = refused_once(&out, "unknown category \"emial\"");
    assert!(err.contains("classes.dev.pseudonymize"), "{err}");
}

#[test]
fn taken_addresses_fail_before_any_side_effect() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for flag in ["--listen", "--admin"] {
        let s = Setup::new(POLICY);
        let out = s.run(&[flag, &addr]);
        let key = flag.trim_start_matches("--");
        let err = refused_once(&out, &format!("(`{key}`)"));
        assert!(err.contains("in use"), "{err}");
        assert!(
            s.side_effects().is_empty(),
            "{flag}: created {:?} before failing",
            s.side_effects()
        );
    }
}

/// `serve` logs what `policy check` warns about, then serves.
#[test]
fn serve_logs_the_policy_warnings_at_start() {
    let policy = format!("{POLICY}\n[columns]\n\"public.users.note\" = \"loyalty_tier\"\n");
    let s = Setup::new(&policy);
    let check = Command::new(BIN)
        .args(["policy", "check"])
        .arg(s.dir.path().join("policy"))
        .output()
        .unwrap();
    let check_err = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{check_err}");
    assert!(
        check_err.contains("unknown category \"loyalty_tier\""),
        "{check_err}"
    );

    let mut served = Served::start(s.command(&[]).stderr(Stdio::piped()));
    // The warnings are logged before the address is bound: once it is
    // reported they are written.
    served.child.kill().unwrap();
    let (_, log) = served.finish();
    let warning = log
        .lines()
        .find(|l| l.contains("policy warning"))
        .unwrap_or_else(|| panic!("no policy warning logged:\n{log}"));
    assert!(warning.contains("loyalty_tier"), "{warning}");
}

/// With port 0 the OS picks the ports; `serve` reports on stdout where it
/// listens (`listening on ADDR`) and where its admin endpoint is (`admin
/// listening on ADDR`), and both answer there.
#[test]
fn serve_on_port_0_reports_the_addresses_it_bound() {
    let s = Setup::new(POLICY);
    let mut served = Served::start(
        s.command(&["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .stderr(Stdio::null()),
    );
    assert_ne!(served.port(), 0);
    let mut client =
        std::net::TcpStream::connect(served.addr).expect("connect to the reported port");
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // SSLRequest: copyguard without TLS material answers `N`.
    client.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).unwrap();
    let mut answer = [0u8; 1];
    client
        .read_exact(&mut answer)
        .expect("an answer to SSLRequest");
    assert_eq!(&answer, b"N");

    let admin = served.admin.expect("admin address reported");
    assert_ne!(admin.port(), 0);
    let mut http = std::net::TcpStream::connect(admin).expect("connect to the admin port");
    http.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(http, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    let _ = http.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    served.child.kill().unwrap();
    let _ = served.finish();
}
