//! Stand-ins agree: pg_dump's `--inserts` cursors are pseudonymized like
//! COPY, two dumps with one key are the same, and a pseudonymizing live
//! session shows what the dumps hold, so they join.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::guard_fixture::*;
use crate::support::*;
use crate::tap::find_leak;

use super::*;

/// A class that pseudonymizes the fixture's personal data, without a grant.
fn pseudonymizing_policy() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        pseudonymizing_policy_with(100000, PERSONAL_CATEGORIES, USERS_PERSONAL_COLUMNS)
    })
    .clone()
}

#[test]
fn inserts_are_pseudonymized_like_copy() {
    fixture();
    let mut args = proxy_args();
    args.policy = Some(pseudonymizing_policy().display().to_string());
    args.pseudonym_key_file = Some(work_dir().join("pseudonym.key").display().to_string());
    let proxy = TestProxy::start(args);
    let mut rows = Vec::new();
    for extra in [&[][..], &["--inserts"][..], &["--column-inserts"][..]] {
        let mut a = vec!["-t", "users", "--data-only"];
        a.extend(extra);
        let out = pg_dump(proxy.port(), None, &a);
        let (dump, stderr) = text(&out);
        assert!(out.status.success(), "{extra:?}: {stderr}");
        assert_eq!(find_leak(dump.as_bytes(), secrets()), None, "{extra:?}");
        rows.push(
            dump.lines()
                .filter(|l| l.starts_with("INSERT") || l.starts_with(|c: char| c.is_ascii_digit()))
                .count(),
        );
    }
    assert_eq!(rows, [USERS, USERS, USERS]);
}

/// The rows of `public.users` in a plain dump, by id: the fields of its
/// COPY block.
fn dumped_users(dump: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut lines = dump
        .lines()
        .skip_while(|l| !l.starts_with("COPY public.users "));
    let header = lines.next().expect("a COPY block of users");
    assert!(
        header.starts_with("COPY public.users (id, email, full_name, birth_date, phone, ssn,"),
        "{header}"
    );
    lines
        .take_while(|l| *l != "\\.")
        .map(|l| {
            let fields: Vec<String> = l.split('\t').map(str::to_owned).collect();
            (fields[0].clone(), fields)
        })
        .collect()
}

#[test]
fn dumps_agree_with_each_other_and_with_pseudonymizing_sessions() {
    let scope = Scope {
        tables: vec!["users".into()],
        ..Scope::default()
    };
    let mut dumps = Vec::new();
    for i in 0..2 {
        let proxy = dump_proxy(true);
        let grant = token(&grant_for(DEV, DB, scope.clone(), 1));
        let out = pg_dump(proxy.port(), Some(&grant), &["-t", "users", "--data-only"]);
        let (dump, stderr) = text(&out);
        assert!(out.status.success(), "dump {i}: {stderr}");
        dumps.push(dumped_users(&dump));
    }
    assert_eq!(dumps[0].len(), USERS);
    assert_eq!(
        dumps[0], dumps[1],
        "two dumps (two copyguard processes, one key) map each value to the same stand-in"
    );

    let mut args = proxy_args();
    args.policy = Some(pseudonymizing_policy().display().to_string());
    args.pseudonym_key_file = Some(work_dir().join("pseudonym.key").display().to_string());
    let live = TestProxy::start(args);
    let select = client("psql")
        .args(["-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(conninfo(live.port(), DEV, DB, ""))
        .args([
            "-c",
            "SELECT id, email, full_name, birth_date, phone, ssn FROM users ORDER BY id",
        ])
        .output()
        .unwrap();
    let (rows, stderr) = text(&select);
    assert!(select.status.success(), "{stderr}");
    let copy = client("psql")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(conninfo(live.port(), DEV, DB, ""))
        .args(["-c", "COPY users TO STDOUT"])
        .output()
        .unwrap();
    let (copied, stderr) = text(&copy);
    assert!(copy.status.success(), "{stderr}");
    let mut seen = 0;
    for row in rows.lines() {
        let live: Vec<&str> = row.split('\t').collect();
        let dumped = &dumps[0][live[0]];
        assert_eq!(
            live[..],
            dumped[..6],
            "a pseudonymizing SELECT shows what the dump holds"
        );
        seen += 1;
    }
    assert_eq!(seen, USERS);
    for line in copied.lines() {
        let live: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            live[..],
            dumps[0][live[0]][..],
            "a pseudonymizing COPY shows what the dump holds"
        );
    }
    assert_eq!(copied.lines().count(), USERS);
}
