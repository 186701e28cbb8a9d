//! What the block log and `audit review` show of granted dumps: each use
//! with what the grant allows, refusals, receipts, never a token.

use crate::guard_fixture::*;
use crate::support::*;

use super::*;

#[test]
fn the_block_log_holds_uses_refusals_and_receipts_never_tokens() {
    fixture();
    let log = audit_path();
    let mut args = proxy_args();
    args.policy = Some(dump_policy().display().to_string());
    args.pseudonym_key_file = Some(work_dir().join("pseudonym.key").display().to_string());
    args.dump_public_keys = Some(work_dir().join("grant.pub").display().to_string());
    args.audit_path = Some(log.display().to_string());
    let proxy = TestProxy::start(args);
    let scope = Scope {
        tables: vec!["users".into(), "orders".into()],
        ..Scope::default()
    };
    let grant = grant_for(DEV, DB, scope.clone(), 1);
    let t = token(&grant);
    let out_file = work_dir().join("receipted.sql").display().to_string();
    let mut a = scope.pg_dump_args();
    a.extend(["-f".to_owned(), out_file]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = pg_dump(proxy.port(), Some(&t), &a);
    assert!(out.status.success(), "{:?}", text(&out));
    let mut expired = grant_for(DEV, DB, scope, 1);
    expired.expires = 1;
    let bad = token(&expired);
    assert!(!pg_dump(proxy.port(), Some(&bad), &["--schema-only"])
        .status
        .success());
    proxy.shutdown();

    let text_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text_log.contains(&t) && !text_log.contains(&bad),
        "tokens never logged"
    );
    let records: Vec<serde_json::Value> = text_log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of_grant = |r: &&serde_json::Value| r["grant"] == grant.grant_id.as_str();
    let uses: Vec<_> = records
        .iter()
        .filter(|r| r["event"] == "grant_use")
        .filter(of_grant)
        .collect();
    assert!(
        uses.iter()
            .any(|r| r["detail"].as_str().unwrap_or("").contains("use 1 of 1")),
        "{uses:?}"
    );
    let first = uses
        .iter()
        .find(|r| r["grant_info"].is_object())
        .expect("the use record holds what the grant allows");
    assert_eq!(first["grant_info"]["reason"], "e2e test");
    assert_eq!(first["grant_info"]["requester"], DEV);
    assert_eq!(first["grant_info"]["use_number"], 1);
    assert_eq!(
        first["grant_info"]["approved_policy"], "test",
        "a grant approved under another policy version is accepted"
    );
    let (running, _) = copyguard::policy::Policy::load_dir(&dump_policy()).unwrap();
    assert_eq!(
        first["policy_version"],
        running.version(),
        "and enforced with the policy in force"
    );
    let detail = first["detail"].as_str().unwrap();
    assert!(
        detail.contains("approved under policy test") && detail.contains("changed since approval"),
        "{detail}"
    );
    let summary = uses
        .iter()
        .find_map(|r| r["detail"].as_str().filter(|d| d.starts_with("receipt:")))
        .expect("a receipt line");
    assert!(summary.contains("public.users: 60 rows"), "{summary}");
    let users = records
        .iter()
        .filter(of_grant)
        .find(|r| r["event"] == "result" && r["relations"][0] == "public.users")
        .expect("a receipt record for users");
    assert_eq!(users["rows"], 60);
    assert_eq!(users["pseudonymized"]["email"], 60, "{users}");
    assert!(users["bytes"].as_u64().unwrap() > 0);
    let orders = records
        .iter()
        .filter(of_grant)
        .find(|r| r["event"] == "result" && r["relations"][0] == "public.orders")
        .expect("a receipt record for orders");
    assert_eq!(orders["rows"], (USERS * 2) as u64);
    assert!(
        records
            .iter()
            .any(|r| r["rule"] == "grant.expired" && r["grant"] == expired.grant_id.as_str()),
        "the refusal names the grant it claims"
    );
    let review = std::process::Command::new(env!("CARGO_BIN_EXE_copyguard"))
        .args(["audit", "review"])
        .arg(&log)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&review.stdout);
    for want in [
        format!("grant {}", grant.grant_id),
        format!(
            "requested by {DEV} for database {DB} (request {})",
            grant.request_id
        ),
        "reason:   e2e test".to_owned(),
        "uses:     1 of 1;".to_owned(),
        format!("by {DEV} from 127.0.0.1:"),
        format!("sent public.users: {USERS} rows,"),
        format!("sent public.orders: {} rows,", USERS * 2),
        "approved under test, enforced with ".to_owned(),
        "(changed since approval)".to_owned(),
    ] {
        assert!(shown.contains(&want), "{want:?} in\n{shown}");
    }
    let review = std::process::Command::new(env!("CARGO_BIN_EXE_copyguard"))
        .args(["audit", "review", "--json"])
        .arg(&log)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&review.stdout).unwrap();
    let g = &json["summary"]["grants"][grant.grant_id.as_str()];
    assert_eq!(g["requester"], DEV, "{g}");
    assert_eq!(g["reason"], "e2e test");
    assert_eq!(g["uses"], 1);
    assert_eq!(g["used_by"][0], format!("{DEV} @ 127.0.0.1"));
    assert_eq!(g["tables"]["public.users"]["rows"], USERS as u64);
    assert_eq!(g["tables"]["public.orders"]["rows"], (USERS * 2) as u64);
    let expired_review = &json["summary"]["grants"][expired.grant_id.as_str()];
    assert_eq!(expired_review["refused_logins"], 1, "{expired_review}");
}
