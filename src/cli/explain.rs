//! `copyguard explain`: the facts copyguard derives from a statement and
//! the verdict a role would get, without running it.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::analysis::{self, Context, StatementFacts};
use crate::catalog::{Catalog, ColumnId};
use crate::policy::{ClassMode, Policy, Verdict};

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
    let ctx = Context {
        catalog: &catalog,
        search_path: &search_path,
    };
    let facts = match analysis::analyze(&args.sql, &ctx) {
        Ok(f) => f,
        Err(e) => {
            println!("analysis failed: {e}");
            println!("verdict: BLOCK (guarded sessions run only statements copyguard understands)");
            anyhow::bail!("statement refused");
        }
    };
    let mut refused = false;
    for (i, stmt) in facts.statements.iter().enumerate() {
        print!("{}", describe(i + 1, stmt, &policy, &catalog));
        if !guarded {
            println!("  verdict: ALLOW (production role)");
            continue;
        }
        match policy.decide(&class, &catalog, stmt) {
            Verdict::Allow(a) => match a.limits {
                Some(l) => println!(
                    "  verdict: ALLOW under limits ({} rows, {} bytes per statement; session and role budgets apply)",
                    l.max_rows, l.max_bytes
                ),
                None => println!("  verdict: ALLOW"),
            },
            Verdict::Block(b) => {
                refused = true;
                println!("  verdict: BLOCK by rule {}: {}", b.rule, b.reason);
            }
        }
    }
    if refused {
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
