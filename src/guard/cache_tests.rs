//! The decision cache inside a guarded core: hits for one shape, misses
//! whenever anything the decision depends on changed.

use std::sync::Arc;

use crate::catalog::{text_table, Catalog};
use crate::guard::{Core, Exec};
use crate::policy::{Policy, Rule};

const POLICY: &str = r#"
[classes.developers]
mode = "guarded"
roles = ["dev"]
max_rows_per_statement = 5
max_bytes_per_statement = "64KiB"
max_rows_per_session = 100
max_rows_per_window = 1000

[columns]
"public.users.email" = "email"
"#;

fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::new(
        [
            text_table(100, "users", &["id", "email", "country"]),
            text_table(200, "orders", &["id", "user_id"]),
        ],
        Vec::new(),
    ))
}

fn policy() -> Arc<Policy> {
    Arc::new(Policy::from_toml_str(POLICY).expect("test policy"))
}

fn session(policy: &Policy) -> Core {
    Core::new("dev", policy.classify_role("dev"), true, catalog())
        .with_search_path(vec!["pg_catalog".into(), "public".into()])
}

fn one(core: &mut Core, sql: &str, policy: &Arc<Policy>) -> Arc<Exec> {
    let mut execs = core.decide_query(sql, policy).expect("allowed");
    assert_eq!(execs.len(), 1);
    execs.remove(0)
}

#[test]
fn a_repeated_shape_is_decided_from_the_cache_with_its_own_text() {
    let p = policy();
    let mut core = session(&p);
    let first = one(
        &mut core,
        "SELECT country FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = '7'",
        &p,
    );
    let again = one(
        &mut core,
        "SELECT country FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = '9'",
        &p,
    );
    assert!(Arc::ptr_eq(&first.facts, &again.facts), "a hit");
    assert_eq!(
        again.sql.as_deref(),
        Some("SELECT country FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = '9'")
    );
    assert_eq!(again.allowance, first.allowance);
    assert_eq!(again.context, core.context);
    let limited = one(&mut core, "SELECT email FROM users WHERE id = '1'", &p);
    let limited_again = one(&mut core, "SELECT email FROM users WHERE id = '2'", &p);
    assert!(limited_again.allowance.limits.is_some());
    assert!(!std::ptr::eq(&*limited, &*limited_again), "fresh counters");
    assert_eq!(core.cached_decisions(), 2);
}

#[test]
fn a_change_of_context_policy_or_catalog_is_a_miss() {
    let p = policy();
    let mut core = session(&p);
    let sql = "SELECT id FROM users WHERE id = '1'";
    let first = one(&mut core, sql, &p);
    core.set_search_path(vec!["pg_catalog".into()]);
    let refused = core
        .decide_query(sql, &p)
        .expect_err("no users on this path");
    assert_eq!(refused.rule, Rule::AnalysisUnknownRelation);
    core.set_search_path(vec!["pg_catalog".into(), "public".into()]);
    let back = one(&mut core, sql, &p);
    assert_eq!(back.facts, first.facts);
    assert_eq!(back.context, core.context);

    let reloaded = policy();
    let under_new = one(&mut core, sql, &reloaded);
    assert!(Arc::ptr_eq(&under_new.policy, &reloaded));
    assert!(!Arc::ptr_eq(&under_new.facts, &back.facts));

    core.set_catalog(catalog());
    let new_catalog = one(&mut core, sql, &reloaded);
    assert!(Arc::ptr_eq(&new_catalog.catalog, &core.catalog));
    assert!(!Arc::ptr_eq(&new_catalog.facts, &under_new.facts));
}

#[test]
fn only_allowed_self_contained_statements_are_kept() {
    let p = policy();
    let mut core = session(&p);
    for sql in [
        "SELECT id FROM nowhere WHERE id = 1",
        "COPY users TO '/tmp/users'",
        "SELECT 1; SELECT 2",
        "SET work_mem = '64MB'",
        "PREPARE q AS SELECT id FROM users",
        "EXECUTE q",
        "DECLARE c CURSOR FOR SELECT id FROM users",
        "FETCH 1 FROM c",
        "",
    ] {
        let _ = core.decide_query(sql, &p);
        let _ = core.decide_query(sql, &p);
    }
    assert_eq!(core.cached_decisions(), 0);
    let refused = core
        .decide_query("COPY users TO '/tmp/users'", &p)
        .expect_err("refused");
    assert_eq!(refused.rule, Rule::CopyServerSide);
}

#[test]
fn the_cache_stays_bounded_and_can_be_turned_off() {
    let p = policy();
    let mut core = session(&p);
    for n in 0..1000 {
        one(
            &mut core,
            &format!("SELECT id AS c{n} FROM users WHERE id = '1'"),
            &p,
        );
    }
    assert!(core.cached_decisions() <= super::CAPACITY);
    core.set_decision_cache(false);
    one(&mut core, "SELECT id FROM users WHERE id = '1'", &p);
    assert_eq!(core.cached_decisions(), 0);
}
