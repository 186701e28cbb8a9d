//! `copyguard explain`: the facts copyguard derives from a statement and
//! the verdict a role would get, without running it. The verdict comes
//! from the same decision core `serve` uses ([`crate::guard::Core`]), as
//! for a query string sent first thing in a fresh session.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use crate::analysis::StatementFacts;
use crate::catalog::{Catalog, ColumnId};
use crate::guard::{Core, Refusal};
use crate::policy::{ClassMode, Policy};

/// Options of `copyguard explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Directory of policy files.
    #[arg(long, env = "COPYGUARD_POLICY")]
    policy: PathBuf,
    /// Login role whose verdict to show.
    #[arg(long)]
    role: String,
    /// Database to read the catalog from (libpq DSN); without it relations
    /// cannot be resolved.
    #[arg(long, alias = "upstream")]
    dsn: Option<String>,
    /// Decide as a copyguard without a pseudonymization key
    /// (`pseudonym.key_file` unset): statements that would be
    /// pseudonymized are refused.
    #[arg(long)]
    no_pseudonym_key: bool,
    /// The SQL text.
    sql: String,
}

/// Prints facts and verdicts; exits non-zero when any statement is refused.
pub fn run(args: &ExplainArgs) -> anyhow::Result<()> {
    let (policy, _) = Policy::load_dir(&args.policy)?;
    let (catalog, search_path) = match &args.dsn {
        Some(dsn) => super::runtime()?.block_on(super::upstream::fetch_catalog(dsn))?,
        None => (
            Catalog::new(Vec::new(), Vec::new()),
            vec!["pg_catalog".to_owned(), "public".to_owned()],
        ),
    };
    let class = policy.classify_role(&args.role);
    let guarded = class.mode == ClassMode::Guarded;
    println!(
        "role {:?}: class {:?} ({})",
        args.role,
        class.name,
        if guarded {
            "guarded"
        } else {
            "production: relayed untouched"
        }
    );
    let policy = Arc::new(policy);
    let mut core = Core::new(
        args.role.clone(),
        class.clone(),
        !args.no_pseudonym_key,
        Arc::new(catalog),
    )
    .with_search_path(search_path);
    let statements = match core.analyze(&args.sql) {
        Ok(statements) => statements,
        Err(b) => {
            println!("analysis failed: {}", b.reason);
            println!("verdict: BLOCK by rule {}: {}", b.rule, b.reason);
            anyhow::bail!("statement refused");
        }
    };
    if !guarded {
        for (i, stmt) in statements.iter().enumerate() {
            print!("{}", describe(i + 1, stmt, &policy, &core.catalog));
            println!("  verdict: ALLOW (production role)");
        }
        return Ok(());
    }
    let verdict = core.decide_query_at(&args.sql, &policy);
    for (i, stmt) in statements.iter().enumerate() {
        print!("{}", describe(i + 1, stmt, &policy, &core.catalog));
        match &verdict {
            Ok(execs) => match execs.get(i).and_then(|e| e.allowance.limits) {
                Some(l) if l.row_weight > 1 => println!(
                    "  verdict: ALLOW under limits ({} rows, {} bytes per statement, each row returned counting as {}; session and role budgets apply)",
                    l.max_rows, l.max_bytes, l.row_weight
                ),
                Some(l) => println!(
                    "  verdict: ALLOW under limits ({} rows, {} bytes per statement; session and role budgets apply)",
                    l.max_rows, l.max_bytes
                ),
                None if execs.get(i).is_some_and(|e| e.allowance.pseudonymizes()) => {
                    println!("  verdict: ALLOW, pseudonymized")
                }
                None => println!("  verdict: ALLOW"),
            },
            Err(Refusal { block, at: Some(at), .. }) if *at == i => {
                println!("  verdict: BLOCK by rule {}: {}", block.rule, block.reason)
            }
            Err(Refusal { at: Some(at), .. }) => {
                println!("  verdict: not run (statement {} is refused)", at + 1)
            }
            Err(Refusal { at: None, .. }) => println!("  verdict: not run (the query is refused)"),
        }
    }
    if let Err(Refusal {
        block, at: None, ..
    }) = &verdict
    {
        println!("verdict: BLOCK by rule {}: {}", block.rule, block.reason);
    }
    if verdict.is_err() {
        anyhow::bail!("statement refused");
    }
    Ok(())
}

fn describe(n: usize, s: &StatementFacts, policy: &Policy, catalog: &Catalog) -> String {
    let rel = |oid: &u32| {
        catalog
            .relation(*oid)
            .map(|r| r.qualified_name())
            .unwrap_or_else(|| format!("oid {oid}"))
    };
    let col = |c: &ColumnId| match policy.category_of(catalog, *c) {
        Some(cat) => format!("{} [{cat}]", catalog.column_name(*c)),
        None => catalog.column_name(*c),
    };
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(", ")
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "statement {n}: {:?}", s.kind);
    let _ = writeln!(out, "  reads: {}", list(s.reads.iter().map(rel).collect()));
    let _ = writeln!(
        out,
        "  writes: {}",
        list(s.writes.iter().map(rel).collect())
    );
    for o in &s.outputs {
        let _ = writeln!(
            out,
            "  output {:?} <- {}",
            o.name,
            list(o.lineage.iter().map(col).collect())
        );
    }
    let _ = writeln!(
        out,
        "  predicates: {}",
        list(s.predicates.iter().map(col).collect())
    );
    let _ = writeln!(
        out,
        "  stored: {}",
        list(s.stored.iter().map(col).collect())
    );
    let _ = writeln!(
        out,
        "  functions: {}",
        list(
            s.functions
                .iter()
                .map(|f| match &f.schema {
                    Some(schema) => format!("{schema}.{}", f.name),
                    None => f.name.clone(),
                })
                .collect()
        )
    );
    out
}
