//! `copyguard dump ...` as people run it: keygen, request, approve, show.
//! No PostgreSQL needed (the end-to-end dumps are in tests/e2e/dumps.rs).

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn copyguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_copyguard"))
        .args(args)
        .output()
        .expect("copyguard runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn request_approve_show() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).display().to_string();
    let out = copyguard(&["dump", "keygen", &d("keys")]);
    assert!(out.status.success(), "{}", text(&out));
    let mode = std::fs::metadata(dir.path().join("keys/grant.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(dir.path().join("keys/grant.pub").is_file());

    let out = copyguard(&[
        "dump",
        "request",
        "--database",
        "shop",
        "--role",
        "dev_alice",
        "--table",
        "users",
        "--exclude-table",
        "orders",
        "--reason",
        "bug 4711",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let doc = String::from_utf8(out.stdout).unwrap();
    assert!(doc.contains("role = \"dev_alice\""), "{doc}");
    assert!(doc.contains("public.users"), "{doc}");
    std::fs::write(d("req.toml"), &doc).unwrap();

    let out = copyguard(&[
        "dump",
        "approve",
        &d("req.toml"),
        "--signing-key",
        &d("keys/grant.key"),
        "--expires",
        "2h",
        "--uses",
        "2",
        "--log",
        &d("issued.log"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("cg1."), "{token}");
    assert!(!token.contains(' '));
    let issued = std::fs::read_to_string(d("issued.log")).unwrap();
    assert!(issued.contains("\"grant_issued\""), "{issued}");
    assert!(
        !issued.contains(&token),
        "the log names the grant, never its token"
    );

    let out = copyguard(&["dump", "show", &token]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    for needle in [
        "dev_alice",
        "shop",
        "public.users",
        "schema only for public.orders",
        "uses:     2",
    ] {
        assert!(shown.contains(needle), "{needle}: {shown}");
    }

    let out = copyguard(&[
        "dump",
        "approve",
        &d("req.toml"),
        "--signing-key",
        &d("keys/grant.key"),
        "--expires",
        "2h",
        "--output",
        &d("grant.txt"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let mode = std::fs::metadata(d("grant.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = copyguard(&["dump", "show", &d("grant.txt")]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn bad_input_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(d("req.toml"), "role = \"x\"\n").unwrap();
    std::fs::write(d("grant.key"), "00".repeat(32)).unwrap();
    let out = copyguard(&[
        "dump",
        "approve",
        &d("req.toml"),
        "--signing-key",
        &d("grant.key"),
        "--expires",
        "1h",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not a valid dump request"),
        "{}",
        text(&out)
    );
    let out = copyguard(&["dump", "show", "cg1.garbage"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("grant"), "{}", text(&out));
    let out = copyguard(&["dump", "keygen", &d("k")]);
    assert!(out.status.success());
    let out = copyguard(&["dump", "keygen", &d("k")]);
    assert!(!out.status.success(), "never overwrites a key");
}
