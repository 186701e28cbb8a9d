//! The decision cache gives exactly the decisions of a fresh analysis: the
//! agreement corpus (session rules, the core, quoting and leak suites'
//! statements) is decided by guarded cores over the fixture database's
//! real catalog, under the locked and the limited policy, with the cache
//! off and on: each statement in a fresh session, then all of them in one
//! long session, twice (the second time from the cache), and again with
//! the literals after every operator changed (same shape, other values).

use std::sync::Arc;

use copyguard::catalog::{parse_name_array, Catalog, CatalogRows, LOAD_SQL};
use copyguard::guard::{Core, Exec, Refusal};
use copyguard::policy::Policy;
use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::guard_fixture::*;
use crate::support::*;

/// What a decision is, everything a caller reads from it.
type Decision = Result<Vec<String>, Refusal>;

fn summary(decided: Result<Vec<Arc<Exec>>, Refusal>) -> Decision {
    decided.map(|execs| {
        execs
            .iter()
            .map(|e| {
                format!(
                    "{:?} {:?} scrub={} class={:?} sql={:?} context={} counted_by={}",
                    e.facts,
                    e.allowance,
                    e.scrub,
                    e.class,
                    e.sql,
                    e.context,
                    e.counted_by.is_some()
                )
            })
            .collect()
    })
}

/// The catalog and search path the guarded role's sessions see.
async fn catalog() -> (Arc<Catalog>, Vec<String>) {
    let db = &cluster().db;
    let dsn = format!(
        "host={} port={} user={} dbname={DB}",
        db.host(),
        db.port(),
        db.superuser()
    );
    let (client, connection) = tokio_postgres::connect(&dsn, NoTls).await.expect("connect");
    let driver = tokio::spawn(connection);
    let mut sets = Vec::new();
    let mut current = Vec::new();
    for message in client.simple_query(LOAD_SQL).await.expect("catalog") {
        match message {
            SimpleQueryMessage::Row(row) => current.push(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            SimpleQueryMessage::CommandComplete(_) => sets.push(std::mem::take(&mut current)),
            _ => {}
        }
    }
    let catalog = CatalogRows::from_sets(sets)
        .expect("rows")
        .into_catalog()
        .expect("catalog");
    let path: String = client
        .query_one("SELECT pg_catalog.current_schemas(true)::text", &[])
        .await
        .expect("search path")
        .get(0);
    driver.abort();
    (
        Arc::new(catalog),
        parse_name_array(&path).expect("search path"),
    )
}

/// `sql` with every literal right after an operator given another value.
fn other_literals(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut after_operator = false;
    for c in sql.chars() {
        out.push(c);
        match c {
            '=' | '<' | '>' | '+' | '-' | '*' | '/' | '%' => after_operator = true,
            ' ' if after_operator => {}
            '\'' if after_operator => {
                out.push_str("zz");
                after_operator = false;
            }
            d if d.is_ascii_digit() && after_operator => {
                out.push('7');
                after_operator = false;
            }
            _ => after_operator = false,
        }
    }
    out
}

fn core(policy: &Policy, catalog: &Arc<Catalog>, path: &[String], cache: bool) -> Core {
    let mut core = Core::new(DEV, policy.classify_role(DEV), false, catalog.clone())
        .with_search_path(path.to_vec());
    core.set_decision_cache(cache);
    core
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_decisions_are_fresh_decisions() {
    fixture();
    let (catalog, path) = catalog().await;
    let mut corpus: Vec<String> = Vec::new();
    for sql in crate::guard_agreement::SESSION_RULES
        .iter()
        .chain(crate::guarded_core::ATTACKS)
        .chain(crate::guarded_core::QUOTING_ERRORS)
        .chain(crate::guarded_core::ORDINARY)
        .chain(crate::guarded_leaks::ATTACKS.iter().map(|(sql, _)| sql))
    {
        for text in [sql.to_string(), other_literals(sql)] {
            if !corpus.contains(&text) {
                corpus.push(text);
            }
        }
    }
    let mut disagreements = Vec::new();
    let (mut hits, mut allowed) = (0, 0);
    for dir in [locked_policy(), limited_policy(5, 1000, 100_000)] {
        let policy = Arc::new(Policy::load_dir(&dir).expect("policy").0);
        let mut long_off = core(&policy, &catalog, &path, false);
        let mut long_on = core(&policy, &catalog, &path, true);
        for _round in 0..2 {
            for sql in &corpus {
                let fresh =
                    summary(core(&policy, &catalog, &path, false).decide_query_at(sql, &policy));
                let mut on = core(&policy, &catalog, &path, true);
                let first = on.decide_query_at(sql, &policy);
                let second = on.decide_query_at(sql, &policy);
                if let (Ok([a]), Ok([b])) = (first.as_deref(), second.as_deref()) {
                    hits += usize::from(Arc::ptr_eq(&a.facts, &b.facts));
                }
                let (first, second) = (summary(first), summary(second));
                let variant = other_literals(sql);
                let variant_fresh = summary(
                    core(&policy, &catalog, &path, false).decide_query_at(&variant, &policy),
                );
                let variant_cached = summary(on.decide_query_at(&variant, &policy));
                let parse_fresh = core(&policy, &catalog, &path, false)
                    .decide_parse(&copyguard::guard::SqlText::from(sql.as_str()), &policy)
                    .map(|e| summary(Ok(e.into_iter().collect())));
                let parse_cached = on
                    .decide_parse(&copyguard::guard::SqlText::from(sql.as_str()), &policy)
                    .map(|e| summary(Ok(e.into_iter().collect())));
                let off = summary(long_off.decide_query_at(sql, &policy));
                let cached = summary(long_on.decide_query_at(sql, &policy));
                allowed += usize::from(fresh.is_ok());
                for (what, got, want) in [
                    ("first", &first, &fresh),
                    ("repeated", &second, &fresh),
                    ("other literals", &variant_cached, &variant_fresh),
                    ("long session", &cached, &off),
                ] {
                    if got != want {
                        disagreements.push(format!("{sql:?} ({what}): {got:?} != {want:?}"));
                    }
                }
                if parse_cached != parse_fresh {
                    disagreements.push(format!(
                        "{sql:?} (Parse): {parse_cached:?} != {parse_fresh:?}"
                    ));
                }
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "the cache changed {} decisions:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(
        allowed > 50 && hits > 50,
        "{allowed} allowed, {hits} cached"
    );
    eprintln!(
        "{} statements x 2 policies x 2 rounds: {allowed} allowed, {hits} from the cache, all agree",
        corpus.len()
    );
}
