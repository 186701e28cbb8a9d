//! `copyguard policy check DIR [--dsn DSN]`: validates a policy directory
//! and, given a database, checks it against that database's catalog.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::policy::{ClassMode, Policy, PolicyWarning};

/// Options of `copyguard policy`.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

/// Subcommands of `copyguard policy`.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy directory; exit 1 on errors (warnings are allowed).
    Check {
        /// Directory of policy files (every *.toml file is merged).
        dir: PathBuf,
        /// Database (libpq DSN) whose catalog the policy is checked
        /// against: missing tables and columns, login roles' classes.
        #[arg(long)]
        dsn: Option<String>,
    },
}

/// Runs `copyguard policy ...`.
pub fn run(args: &PolicyArgs) -> anyhow::Result<()> {
    match &args.command {
        PolicyCommand::Check { dir, dsn } => check(dir, dsn.as_deref()),
    }
}

fn check(dir: &Path, dsn: Option<&str>) -> anyhow::Result<()> {
    let (policy, mut warnings) = match Policy::load_dir(dir) {
        Ok(loaded) => loaded,
        Err(e) => {
            for issue in &e.issues {
                eprintln!("error: {issue}");
            }
            anyhow::bail!(
                "policy {} is invalid: {} error(s)",
                dir.display(),
                e.issues.len()
            );
        }
    };
    if let Some(dsn) = dsn {
        let upstream = super::runtime()?.block_on(upstream_checks(&policy, dsn))?;
        warnings.extend(upstream);
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let s = policy.summary();
    let tables = match s.classified_tables {
        0 => String::new(),
        n => format!(", {n} classified tables"),
    };
    println!(
        "policy OK: {} classes, {} classified columns, {} forbidden tables{tables}",
        s.classes, s.classified_columns, s.forbidden_tables
    );
    Ok(())
}

/// Warnings from the database: classified or forbidden relations and
/// columns it lacks, listed roles it lacks. Prints each login role's class.
async fn upstream_checks(policy: &Policy, dsn: &str) -> anyhow::Result<Vec<PolicyWarning>> {
    let (catalog, _) = super::upstream::fetch_catalog(dsn).await?;
    let mut warnings = policy.warnings_against(&catalog);
    let roles = login_roles(dsn).await?;
    for role in &roles {
        let class = policy.classify_role(role);
        let mode = match class.mode {
            ClassMode::Production => "production",
            ClassMode::Guarded => "guarded",
        };
        println!("role {role}: class {} ({mode})", class.name);
    }
    let mut listed: Vec<_> = policy.listed_roles().collect();
    listed.sort_by_key(|(role, _)| *role);
    for (role, class) in listed {
        if !roles.iter().any(|r| r == role) {
            warnings.push(PolicyWarning {
                file: None,
                line: None,
                key: format!("classes.{}.roles", class.name),
                message: format!("no login role {role:?} in the database"),
            });
        }
    }
    Ok(warnings)
}

async fn login_roles(dsn: &str) -> anyhow::Result<Vec<String>> {
    let (client, connection) = tokio_postgres::connect(dsn, NoTls)
        .await
        .context("cannot connect to the database given by --dsn")?;
    let driver = tokio::spawn(connection);
    let rows = client
        .simple_query("SELECT rolname FROM pg_catalog.pg_roles WHERE rolcanlogin ORDER BY 1")
        .await
        .context("cannot list login roles")?;
    drop(client);
    driver.abort();
    Ok(rows
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect())
}
