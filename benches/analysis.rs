//! Criterion bench of a guarded statement's decision: parse + lineage
//! (`analysis::analyze`) + verdict (`Policy::decide`), per statement, over
//! a corpus of realistic queries (pgbench, ORM-style, joins, CTEs,
//! aggregates, catalog lookups, refused exports); and the same through a
//! guarded session's [`Core`] with its decision cache off (`fresh/*`) and
//! on, the statement's literals changing at every iteration (`hit/*`).
//!
//! With `COPYGUARD_BENCH_IR=<iterations>` set it runs no criterion group:
//! for each corpus entry and pass (`Parse`, sqlparser alone; `Fresh`;
//! `Hit`) it calls [`ir_pass`] once, `<iterations>` decisions after a
//! warm-up, and prints `<pass> <entry> <iterations>`; with
//! `COPYGUARD_BENCH_IR_ONLY="<pass> <entry>"` only that one. Under
//! `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='*ir_pass*'` the total collected divided by the
//! iterations is the instructions of one decision (`benches/README.md`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use copyguard::analysis::{analyze, Context};
use copyguard::catalog::{Catalog, Column, RelKind, Relation};
use copyguard::guard::Core;
use copyguard::policy::{Policy, Verdict};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// The allocator the `copyguard` binary runs with (`src/main.rs`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CORPUS: &[(&str, &str)] = &[
    ("pgbench_select", "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;"),
    (
        "pgbench_update",
        "UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 48213;",
    ),
    (
        "orm_by_id",
        "SELECT \"orders\".\"id\", \"orders\".\"user_id\", \"orders\".\"amount_cents\", \"orders\".\"status\" FROM \"orders\" WHERE \"orders\".\"id\" = $1 LIMIT $2",
    ),
    (
        "join_unclassified",
        "SELECT o.id, o.amount_cents, u.country FROM orders o JOIN users u ON u.id = o.user_id WHERE o.status = 'paid' ORDER BY o.id DESC LIMIT 50",
    ),
    (
        "group_by",
        "SELECT country, count(*), avg(o.amount_cents) FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY country HAVING count(*) > 10 ORDER BY 2 DESC",
    ),
    (
        "cte_window",
        "WITH recent AS (SELECT user_id, amount_cents, row_number() OVER (PARTITION BY user_id ORDER BY created_at DESC) AS rn FROM orders) SELECT user_id, sum(amount_cents) FROM recent WHERE rn <= 3 GROUP BY user_id",
    ),
    (
        "classified_limited",
        "SELECT id, email, full_name FROM users WHERE id = 42",
    ),
    (
        "view",
        "SELECT * FROM v_contacts WHERE country = 'FR' LIMIT 10",
    ),
    (
        "refused_copy",
        "COPY (SELECT u.email, lower(u.full_name) FROM users u) TO STDOUT WITH (FORMAT csv)",
    ),
    (
        "refused_whole_row",
        "SELECT row_to_json(u) FROM users u JOIN orders o ON o.user_id = u.id",
    ),
];

fn relation(
    oid: u32,
    name: &str,
    kind: RelKind,
    cols: &[(&str, u32, &str)],
    def: Option<&str>,
) -> Relation {
    Relation {
        oid,
        schema: "public".into(),
        name: name.into(),
        kind,
        columns: cols
            .iter()
            .enumerate()
            .map(|(i, (n, t, tn))| Column {
                attnum: i as i16 + 1,
                name: (*n).into(),
                type_oid: *t,
                type_name: (*tn).into(),
                typmod: -1,
            })
            .collect(),
        parents: Vec::new(),
        definition: def.map(str::to_owned),
        depends_on: BTreeSet::new(),
    }
}

fn catalog() -> Catalog {
    const INT8: (u32, &str) = (20, "bigint");
    const INT4: (u32, &str) = (23, "integer");
    const TEXT: (u32, &str) = (25, "text");
    let c = |n, (t, tn): (u32, &'static str)| (n, t, tn);
    Catalog::new(
        vec![
            relation(
                16384,
                "users",
                RelKind::Table,
                &[
                    c("id", INT8),
                    c("email", TEXT),
                    c("full_name", TEXT),
                    c("birth_date", (1082, "date")),
                    c("phone", TEXT),
                    c("country", TEXT),
                    c("created_at", (1184, "timestamptz")),
                ],
                None,
            ),
            relation(
                16391,
                "orders",
                RelKind::Table,
                &[
                    c("id", INT8),
                    c("user_id", INT8),
                    c("amount_cents", INT4),
                    c("status", TEXT),
                    c("created_at", (1184, "timestamptz")),
                ],
                None,
            ),
            relation(
                16401,
                "v_contacts",
                RelKind::View,
                &[c("id", INT8), c("contact", TEXT), c("country", TEXT)],
                Some(" SELECT u.id, u.email AS contact, u.country FROM users u;"),
            ),
            relation(
                16410,
                "pgbench_accounts",
                RelKind::Table,
                &[
                    c("aid", INT4),
                    c("bid", INT4),
                    c("abalance", INT4),
                    c("filler", TEXT),
                ],
                None,
            ),
        ],
        Vec::new(),
    )
}

fn bench(c: &mut Criterion) {
    if let Some(iterations) = std::env::var("COPYGUARD_BENCH_IR")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        instruction_counts(iterations);
        std::process::exit(0);
    }
    let policy = demo_policy();
    let class = policy.classify_role("dev_alice");
    let catalog = catalog();
    let search_path = vec!["pg_catalog".to_owned(), "public".to_owned()];
    let ctx = Context {
        catalog: &catalog,
        search_path: &search_path,
    };
    let mut group = c.benchmark_group("guarded_statement");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for (name, sql) in CORPUS {
        assert!(analyze(sql, &ctx).is_ok(), "{name} analyzes");
        group.bench_with_input(BenchmarkId::from_parameter(name), sql, |b, sql| {
            b.iter(|| {
                let facts = analyze(sql, &ctx).expect("analyzes");
                facts
                    .statements
                    .iter()
                    .filter(|s| matches!(policy.decide(&class, &catalog, s), Verdict::Block(_)))
                    .count()
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("parse_only");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for (name, sql) in CORPUS {
        group.bench_with_input(BenchmarkId::from_parameter(name), sql, |b, sql| {
            b.iter(|| {
                sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
                    .map(|s| s.len())
            })
        });
    }
    group.finish();
    decisions(c, &Arc::new(policy), Arc::new(catalog));
}

/// `sql` with every number after `=` or `>` replaced by `n` plus its own
/// digits: the same shape, other values.
fn variant(sql: &str, n: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut after_operator = false;
    for c in sql.chars() {
        if after_operator && c.is_ascii_digit() {
            out.push_str(&n.to_string());
            after_operator = false;
        } else if c != ' ' {
            after_operator = c == '=' || c == '>';
        }
        out.push(c);
    }
    out
}

/// A guarded session's whole decision (`Core::decide_query`): fresh, and
/// from the decision cache with other literal values each time.
fn decisions(c: &mut Criterion, policy: &Arc<Policy>, catalog: Arc<Catalog>) {
    for (group_name, cache) in [("fresh", false), ("hit", true)] {
        let mut group = c.benchmark_group(group_name);
        group.measurement_time(Duration::from_secs(3));
        group.warm_up_time(Duration::from_secs(1));
        group.throughput(Throughput::Elements(1));
        for (name, sql) in CORPUS {
            let texts: Vec<String> = (0..64).map(|n| variant(sql, n)).collect();
            let mut core = session(policy, &catalog, cache);
            if cache && core.decide_query(&texts[0], policy).is_err() {
                continue;
            }
            let mut i = 0;
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    i = (i + 1) % texts.len();
                    core.decide_query(&texts[i], policy).is_ok()
                })
            });
        }
        group.finish();
    }
}

/// The demo policy the corpus is decided under.
fn demo_policy() -> Policy {
    Policy::from_toml_str(&format!(
        "{}\n{}",
        include_str!("../policies/roles.toml"),
        include_str!("../policies/classification.toml")
    ))
    .expect("demo policy")
}

/// A guarded session of `dev_alice`, its decision cache on or off.
fn session(policy: &Policy, catalog: &Arc<Catalog>, cache: bool) -> Core {
    let mut core = Core::new(
        "dev_alice",
        policy.classify_role("dev_alice"),
        true,
        catalog.clone(),
    )
    .with_search_path(vec!["pg_catalog".to_owned(), "public".to_owned()]);
    core.set_decision_cache(cache);
    core
}

/// What one [`ir_pass`] runs.
#[derive(Clone, Copy, Debug)]
enum Pass {
    /// sqlparser alone.
    Parse,
    /// `Core::decide_query`, cache off.
    Fresh,
    /// `Core::decide_query`, cache on, other literals each time.
    Hit,
}

/// `iterations` runs of `pass` over `texts` (the unit callgrind counts).
#[inline(never)]
fn ir_pass(pass: Pass, core: &mut Core, policy: &Arc<Policy>, texts: &[String], iterations: usize) {
    for i in 0..iterations {
        let sql = &texts[i % texts.len()];
        match pass {
            Pass::Parse => {
                std::hint::black_box(
                    sqlparser::parser::Parser::parse_sql(
                        &sqlparser::dialect::PostgreSqlDialect {},
                        sql,
                    )
                    .map(|s| s.len())
                    .ok(),
                );
            }
            Pass::Fresh | Pass::Hit => {
                std::hint::black_box(core.decide_query(sql, policy).is_ok());
            }
        }
    }
}

/// One [`ir_pass`] per corpus entry and pass, in the order printed.
fn instruction_counts(iterations: usize) {
    let policy = Arc::new(demo_policy());
    let catalog = Arc::new(catalog());
    let only = std::env::var("COPYGUARD_BENCH_IR_ONLY").ok();
    for (name, sql) in CORPUS {
        let texts: Vec<String> = (0..64).map(|n| variant(sql, n)).collect();
        for pass in [Pass::Parse, Pass::Fresh, Pass::Hit] {
            if only
                .as_ref()
                .is_some_and(|o| *o != format!("{pass:?} {name}"))
            {
                continue;
            }
            let mut core = session(&policy, &catalog, matches!(pass, Pass::Hit));
            if matches!(pass, Pass::Hit) && core.decide_query(&texts[0], &policy).is_err() {
                continue;
            }
            for sql in &texts[..16] {
                std::hint::black_box(core.decide_query(sql, &policy).is_ok());
            }
            ir_pass(pass, &mut core, &policy, &texts, iterations);
            println!("{pass:?} {name} {iterations}");
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
