//! Sanctioned dumps end to end: grants presented in `PGOPTIONS` are taken
//! out of the startup packet, checked at connect time (every kind of bad
//! grant refused with its reason), and a granted guarded role runs the
//! real pg_dump through copyguard: every classified value pseudonymized,
//! no raw fixture value in any dump, and the dump restores. The leak scan
//! is in [`scan`], the block log and `audit review` in [`receipts`], the
//! agreement of stand-ins between dumps and live sessions in
//! [`agreement`].

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use copyguard::dumps::{DumpRequest, Grant, Scope};
use ed25519_dalek::SigningKey;

use crate::guard_fixture::*;
use crate::support::*;
use crate::tap::find_leak;

mod agreement;
mod receipts;
mod scan;

use scan::{dump_files, leaks_in, restored_sql};

/// The grant signing key of the tests.
fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn work_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = cluster().db.data_dir();
        let dir = base.parent().unwrap_or(&base).join("dumps");
        std::fs::create_dir_all(&dir).expect("dumps dir");
        std::fs::write(
            dir.join("grant.pub"),
            hex::encode(signing_key().verifying_key().as_bytes()),
        )
        .expect("public key");
        std::fs::write(dir.join("pseudonym.key"), format!("{}\n", "cd".repeat(32)))
            .expect("pseudonym key");
        dir
    })
    .clone()
}

/// The locked policy plus a revoked grant id; the classification of the
/// guard fixture.
fn dump_policy() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = locked_policy();
        let copy = policy_dir("");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
        std::fs::write(
            copy.join("grants.toml"),
            format!("[grants]\nrevoked = [\"{REVOKED}\"]\n"),
        )
        .unwrap();
        copy
    })
    .clone()
}

const REVOKED: &str = "deadbeefdeadbeefdeadbeefdeadbeef";

fn dump_proxy(keys: bool) -> TestProxy {
    fixture();
    let mut args = proxy_args();
    args.policy = Some(dump_policy().display().to_string());
    args.pseudonym_key_file = Some(work_dir().join("pseudonym.key").display().to_string());
    args.dump_use_grace = Some("1s".into());
    if keys {
        args.dump_public_keys = Some(work_dir().join("grant.pub").display().to_string());
    }
    TestProxy::start(args)
}

fn grant_for(role: &str, database: &str, scope: Scope, uses: u32) -> Grant {
    let req = DumpRequest::new(role, database, scope, "e2e test");
    Grant::approve(
        &req,
        Duration::from_secs(3600),
        uses,
        "test",
        &signing_key(),
    )
}

fn token(grant: &Grant) -> String {
    grant.sign(&signing_key())
}

/// psql as `user` with `PGOPTIONS` holding the grant.
fn psql_granted(port: u16, user: &str, token: &str, sql: &str) -> Output {
    output_with_stdin(
        client("psql")
            .env("PGOPTIONS", format!("-c copyguard.grant={token}"))
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(conninfo(port, user, DB, ""))
            .args(["-f", "-"]),
        sql,
    )
}

#[track_caller]
fn assert_refused(out: &Output, rule: &str, needle: &str) {
    let (stdout, stderr) = text(out);
    assert!(
        !out.status.success(),
        "expected a refusal: {stdout}{stderr}"
    );
    assert!(stderr.contains(rule), "{rule}: {stderr}");
    assert!(stderr.contains(needle), "{needle}: {stderr}");
}

#[test]
fn bad_grants_are_refused_at_connect_time_with_their_reason() {
    let proxy = dump_proxy(true);
    let port = proxy.port();
    let scope = Scope::default();
    let good = grant_for(DEV, DB, scope.clone(), 100);

    let mut expired = good.clone();
    expired.expires = expired.issued.saturating_sub(10);
    expired.issued = expired.expires.saturating_sub(10);
    let out = psql_granted(port, DEV, &token(&expired), "SELECT 1");
    assert_refused(&out, "grant.expired", "expired at");
    assert_refused(&out, "grant.expired", "HINT:  Ask security for a new grant");

    let t = token(&good);
    let (head, sig) = t.rsplit_once('.').unwrap();
    let mut forged = good.clone();
    forged.uses = 1_000_000;
    let forged_head = token(&forged).rsplit_once('.').unwrap().0.to_owned();
    assert_refused(
        &psql_granted(port, DEV, &format!("{forged_head}.{sig}"), "SELECT 1"),
        "grant.tampered",
        "altered",
    );
    let _ = head;

    let mut revoked = good.clone();
    revoked.grant_id = REVOKED.into();
    assert_refused(
        &psql_granted(port, DEV, &token(&revoked), "SELECT 1"),
        "grant.revoked",
        REVOKED,
    );

    let other = SigningKey::from_bytes(&[7; 32]);
    let req = DumpRequest::new(DEV, DB, scope.clone(), "x");
    let foreign = Grant::approve(&req, Duration::from_secs(60), 1, "t", &other).sign(&other);
    assert_refused(
        &psql_granted(port, DEV, &foreign, "SELECT 1"),
        "grant.unknown_key",
        "dumps.public_keys",
    );

    let bobs = grant_for("someone_else", DB, scope.clone(), 1);
    let out = psql_granted(port, DEV, &token(&bobs), "SELECT 1");
    assert_refused(&out, "grant.wrong_role", "someone_else");
    assert_refused(&out, "grant.wrong_role", "HINT:  Connect as the role");
    let elsewhere = grant_for(DEV, "postgres", scope.clone(), 1);
    assert_refused(
        &psql_granted(port, DEV, &token(&elsewhere), "SELECT 1"),
        "grant.wrong_database",
        "postgres",
    );
    assert_refused(
        &psql_granted(port, DEV, "cg1.nonsense", "SELECT 1"),
        "grant.",
        "grant",
    );

    let once = grant_for(DEV, DB, scope, 1);
    let out = psql_granted(port, DEV, &token(&once), "SELECT 1");
    assert!(out.status.success(), "{:?}", text(&out));
    std::thread::sleep(Duration::from_millis(1500));
    assert_refused(
        &psql_granted(port, DEV, &token(&once), "SELECT 1"),
        "grant.overused",
        "1 use",
    );

    let proxy = dump_proxy(false);
    assert_refused(
        &psql_granted(proxy.port(), DEV, &token(&good), "SELECT 1"),
        "grant.no_keys",
        "dumps.public_keys",
    );
}

#[test]
fn the_grant_never_reaches_postgresql() {
    let proxy = dump_proxy(true);
    let good = token(&grant_for(DEV, DB, Scope::default(), 100));
    for user in [DEV, PROD] {
        let out = psql_granted(
            proxy.port(),
            user,
            &good,
            "SELECT count(*) FROM pg_catalog.pg_settings WHERE name LIKE 'copyguard%';",
        );
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{user}: {stderr}");
        assert_eq!(stdout.trim(), "0", "{user}");
    }
}

/// Runs pg_dump as the guarded role with `token` (if any) and `args`.
fn pg_dump(port: u16, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = client("pg_dump");
    if let Some(t) = token {
        cmd.env("PGOPTIONS", format!("-c copyguard.grant={t}"));
    }
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        DEV,
        "-d",
        DB,
    ])
    .args(args)
    .output()
    .expect("run pg_dump")
}

#[test]
fn granted_pg_dump_plain_and_custom_hold_no_raw_value_and_restore() {
    let proxy = dump_proxy(true);
    let scope = Scope {
        exclude_tables: vec!["public.identity_documents".into()],
        ..Scope::default()
    };
    let grant = token(&grant_for(DEV, DB, scope.clone(), 100));
    let dir = work_dir();
    let excluded = scope.pg_dump_args();
    let mut args: Vec<&str> = excluded.iter().map(String::as_str).collect();
    args.extend(["--no-owner", "--no-privileges", "-N", "app"]);
    for (format, file) in [
        ("p", "dump.sql"),
        ("c", "dump.custom"),
        ("t", "dump.tar"),
        ("d", "dump.dir"),
    ] {
        let path = dir.join(file);
        let path_s = path.display().to_string();
        let mut a = args.clone();
        a.extend(["-F", format, "-f", &path_s]);
        if format == "d" {
            a.extend(["-j", "4"]);
        }
        if format == "c" || format == "d" {
            a.extend(["-Z", "0"]);
        }
        let out = pg_dump(proxy.port(), Some(&grant), &a);
        assert!(out.status.success(), "pg_dump -F{format}: {:?}", text(&out));
        assert_eq!(leaks_in(&path), Vec::<String>::new(), "-F{format}");
        if format != "p" {
            if format == "t" || format == "d" {
                let members = dump_files(&path).len();
                assert!(
                    members > 2,
                    "-F{format}: every file of the dump is scanned ({members})"
                );
            }
            let sql = restored_sql(&path);
            assert_eq!(find_leak(&sql, secrets()), None, "-F{format} as SQL");
        }
        let target = fresh_database(&format!("restore_{format}"));
        let restore = if format == "p" {
            client("psql")
                .args(["-X", "-v", "ON_ERROR_STOP=1", "-q", "-f", &path_s, "-d"])
                .arg(cluster().db.superuser_url(&target))
                .output()
                .unwrap()
        } else {
            let jobs = if format == "d" { "4" } else { "1" };
            client("pg_restore")
                .args(["--exit-on-error", "--no-owner", "-j", jobs, "-d"])
                .arg(cluster().db.superuser_url(&target))
                .arg(&path_s)
                .output()
                .unwrap()
        };
        assert!(
            restore.status.success(),
            "restore -F{format}: {:?}",
            text(&restore)
        );
        let count = cluster()
            .db
            .psql(
                &target,
                "SELECT count(*) FROM users JOIN orders ON orders.user_id = users.id",
            )
            .unwrap();
        assert_eq!(count.trim(), (USERS * 2).to_string(), "-F{format}");
        let restored = cluster()
            .db
            .psql(&target, "SELECT string_agg(u::text, ' ') FROM users u")
            .unwrap();
        assert_eq!(
            find_leak(restored.to_lowercase().as_bytes(), secrets()),
            None,
            "-F{format} restored"
        );
        assert_eq!(
            find_leak(restored.as_bytes(), secrets()),
            None,
            "-F{format} restored"
        );
    }
}

#[test]
fn a_parallel_dump_is_one_use() {
    let proxy = dump_proxy(true);
    let scope = Scope {
        exclude_tables: vec!["public.identity_documents".into()],
        ..Scope::default()
    };
    let grant = token(&grant_for(DEV, DB, scope.clone(), 1));
    let path = work_dir().join("once.dir");
    let path_s = path.display().to_string();
    let mut args: Vec<String> = scope.pg_dump_args();
    args.extend(["-N", "app", "-Fd", "-j", "4", "-f", &path_s].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = pg_dump(proxy.port(), Some(&grant), &args);
    assert!(out.status.success(), "{:?}", text(&out));
    std::thread::sleep(Duration::from_millis(1500));
    let again = work_dir().join("twice.sql").display().to_string();
    let out = pg_dump(proxy.port(), Some(&grant), &["-f", &again]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("grant.overused"), "{stderr}");
}

#[test]
fn two_granted_dumps_at_once() {
    let proxy = dump_proxy(true);
    let scope = Scope {
        tables: vec!["users".into(), "orders".into()],
        ..Scope::default()
    };
    let a = token(&grant_for(DEV, DB, scope.clone(), 1));
    let b = token(&grant_for(DEV, DB, scope.clone(), 1));
    let port = proxy.port();
    let handles: Vec<_> = [a, b]
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let scope = scope.clone();
            std::thread::spawn(move || {
                let path = work_dir().join(format!("concurrent-{i}.custom"));
                let path_s = path.display().to_string();
                let mut args = scope.pg_dump_args();
                args.extend(["-Fc", "-f", &path_s].map(String::from));
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                (pg_dump(port, Some(&t), &args), path)
            })
        })
        .collect();
    let mut outputs = Vec::new();
    for h in handles {
        let (out, path) = h.join().unwrap();
        assert!(out.status.success(), "{:?}", text(&out));
        assert_eq!(leaks_in(&path), Vec::<String>::new());
        outputs.push(path);
    }
    let restored: Vec<Vec<String>> = outputs
        .iter()
        .map(|p| {
            let out = client("pg_restore")
                .args(["-f", "-", "--data-only", "-t", "users"])
                .arg(p)
                .output()
                .unwrap();
            let rows: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
                .map(str::to_owned)
                .collect();
            assert_eq!(rows.len(), USERS);
            rows
        })
        .collect();
    assert_eq!(
        restored[0], restored[1],
        "the same key maps the same value to the same stand-in"
    );
}

#[test]
fn out_of_scope_rows_are_refused_in_a_granted_session() {
    let proxy = dump_proxy(true);
    let scope = Scope {
        tables: vec!["users".into()],
        ..Scope::default()
    };
    let grant = token(&grant_for(DEV, DB, scope, 100));
    let out = psql_granted(proxy.port(), DEV, &grant, "SELECT count(*) FROM orders;");
    assert_refused(&out, "grant.out_of_scope", "public.orders");
    let out = psql_granted(
        proxy.port(),
        DEV,
        &grant,
        "COPY users (id, email) TO STDOUT;",
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), USERS, "{stdout}");
    assert_eq!(find_leak(stdout.as_bytes(), secrets()), None);
}

#[test]
fn guarded_pg_dump_without_a_grant() {
    let proxy = dump_proxy(true);
    let port = proxy.port();
    let out = pg_dump(port, None, &["--schema-only"]);
    let (schema, stderr) = text(&out);
    assert!(out.status.success(), "schema-only: {stderr}");
    assert!(schema.contains("CREATE TABLE public.users"), "{schema}");
    let out = pg_dump(port, None, &["-t", "orders"]);
    let (orders, stderr) = text(&out);
    assert!(out.status.success(), "unclassified table: {stderr}");
    assert!(orders.contains("COPY public.orders"), "{orders}");
    let out = pg_dump(port, None, &["-t", "users"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("public.users"), "{stderr}");
    assert!(stderr.contains("copyguard dump request"), "{stderr}");
    let out = pg_dump(port, None, &["-t", "users", "--inserts"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "--inserts is refused like COPY");
    assert!(stderr.contains("copyguard"), "{stderr}");
}

#[test]
fn dump_run_wraps_pg_dump_with_the_grant_and_its_scope() {
    let proxy = dump_proxy(true);
    let scope = Scope {
        tables: vec!["users".into()],
        ..Scope::default()
    };
    let grant_file = work_dir().join("run-grant.txt");
    std::fs::write(&grant_file, token(&grant_for(DEV, DB, scope, 1))).unwrap();
    let out_file = work_dir().join("run.sql");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_copyguard"))
        .args(["dump", "run"])
        .arg(&grant_file)
        .arg("--pg-dump")
        .arg(cluster().db.client_bin("pg_dump"))
        .args([
            "--",
            "-h",
            "127.0.0.1",
            "-p",
            &proxy.port().to_string(),
            "-f",
        ])
        .arg(&out_file)
        .env("PGPASSWORD", PASSWORD)
        .env("PGSSLMODE", "disable")
        .env_remove("PGOPTIONS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let dump = std::fs::read_to_string(&out_file).unwrap();
    assert!(dump.contains("COPY public.users"), "{dump}");
    assert!(
        !dump.contains("COPY public.orders"),
        "the scope's -t was added"
    );
    assert_eq!(leaks_in(&out_file), Vec::<String>::new());
}

#[test]
fn preflight_reports_per_table_and_refuses_what_could_not_restore() {
    fixture();
    let run = |policy: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_copyguard"))
            .args([
                "dump",
                "request",
                "--database",
                DB,
                "--role",
                DEV,
                "--reason",
                "e2e",
                "--dsn",
            ])
            .arg(cluster().db.superuser_url(DB))
            .arg("--policy")
            .arg(policy)
            .output()
            .unwrap()
    };
    let out = run(&dump_policy());
    let (doc, report) = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("public.users\n"), "{report}");
    assert!(
        report.contains("email: pseudonymized (email, email)"),
        "{report}"
    );
    assert!(report.contains("country: copied as it is"), "{report}");
    assert!(
        report.contains("public.identity_documents\n  schema only: forbidden"),
        "{report}"
    );
    assert!(report.contains("the dump can restore"), "{report}");
    assert!(
        doc.contains("public.identity_documents"),
        "forbidden tables are schema only: {doc}"
    );

    let bad = policy_dir(&format!(
        "[classes.dev]\nmode = \"guarded\"\nroles = [\"{DEV}\"]\n[columns]\n\"public.users.email\" = \"person_name\"\n"
    ));
    let out = run(&bad);
    let (doc, report) = text(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        doc.is_empty(),
        "no request for a dump that could not restore"
    );
    assert!(
        report.contains("public.users.email is under a primary key"),
        "{report}"
    );
}
