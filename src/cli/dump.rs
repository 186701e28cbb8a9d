//! `copyguard dump ...`: sanctioned dumps. A developer writes a request,
//! security approves it into a signed grant, the developer runs the real
//! pg_dump through copyguard with the grant.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::audit::{AuditConfig, AuditLog, Event};
use crate::dumps::{self, DumpRequest, Grant, Scope};

/// The longest a grant may be valid for.
const MAX_GRANT_LIFE: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);

/// Options of `copyguard dump`.
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    #[command(subcommand)]
    command: DumpCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DumpCommand {
    /// Write a dump request (a small TOML document) for security to approve.
    Request(RequestArgs),
    /// Write a new grant key pair into DIR: grant.key (private, mode 0600,
    /// for security) and grant.pub (for copyguard's dumps.public_keys).
    Keygen {
        /// Directory for grant.key and grant.pub.
        dir: PathBuf,
    },
    /// Approve a request: print (or write) a signed grant token.
    Approve(ApproveArgs),
    /// Print what a grant allows (its signature is not checked here).
    Show {
        /// The grant token, or a file holding it.
        grant: String,
    },
    /// Run pg_dump through copyguard with a grant: sets PGOPTIONS, the
    /// role, the database and the scope's -n/-t/--exclude-table-data.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RequestArgs {
    /// Database to dump.
    #[arg(long)]
    database: String,
    /// Login role that will run the dump.
    #[arg(long)]
    role: String,
    /// Include the tables of this schema (repeatable).
    #[arg(long = "schema")]
    schemas: Vec<String>,
    /// Include this table, `schema.table` or `table` (repeatable).
    #[arg(long = "table")]
    tables: Vec<String>,
    /// Dump only the schema of this table, not its rows (repeatable).
    #[arg(long = "exclude-table")]
    exclude_tables: Vec<String>,
    /// Why the dump is needed (for the reviewer).
    #[arg(long)]
    reason: String,
    /// Write the request here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Pre-flight against this database (libpq DSN): print what the dump
    /// will hold per table, refuse a request that could not restore.
    #[arg(long, requires = "policy")]
    dsn: Option<String>,
    /// The policy directory copyguard runs with (for the pre-flight).
    #[arg(long, requires = "dsn")]
    policy: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ApproveArgs {
    /// The request document.
    request: PathBuf,
    /// The grant private key (grant.key from `dump keygen`).
    #[arg(long)]
    signing_key: PathBuf,
    /// How long the grant is valid, e.g. 24h, 7d.
    #[arg(long)]
    expires: String,
    /// How many dumps it allows (the connections of one parallel dump
    /// count as one).
    #[arg(long, default_value_t = 1)]
    uses: u32,
    /// The policy directory copyguard runs with: the grant records its
    /// version (a digest of its files), and every use of the grant names
    /// it beside the version then in force.
    #[arg(long)]
    policy: PathBuf,
    /// Write the token here (mode 0600) instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Record the grant (never its token) in this log of issued grants: a
    /// `grant_issued` record in a hash-chained block log, with anchors and
    /// keys beside it (created on first use), checked by `copyguard audit
    /// verify` and summed up by `copyguard audit review`.
    #[arg(long)]
    log: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The grant token, or a file holding it.
    grant: String,
    /// pg_dump to run [pg_dump on PATH or in the PostgreSQL bin directory].
    #[arg(long)]
    pg_dump: Option<PathBuf>,
    /// Arguments for pg_dump (after `--`): host, port, format, file...
    #[arg(last = true)]
    args: Vec<String>,
}

/// Runs `copyguard dump ...`.
pub fn run(args: &DumpArgs) -> anyhow::Result<()> {
    match &args.command {
        DumpCommand::Request(a) => request(a),
        DumpCommand::Keygen { dir } => {
            let id = dumps::keygen(dir)
                .with_context(|| format!("cannot write grant keys into {}", dir.display()))?;
            println!(
                "wrote {} (private: for approving, keep it with security) and {} (for copyguard: dumps.public_keys); key id {id}",
                dir.join(dumps::PRIVATE_KEY_FILE).display(),
                dir.join(dumps::PUBLIC_KEY_FILE).display()
            );
            Ok(())
        }
        DumpCommand::Approve(a) => approve(a),
        DumpCommand::Show { grant } => {
            let grant = Grant::decode_unverified(&read_token(grant)?)?;
            print!("{}", grant.describe());
            Ok(())
        }
        DumpCommand::Run(a) => run_pg_dump(a),
    }
}

fn request(a: &RequestArgs) -> anyhow::Result<()> {
    let mut scope = Scope {
        schemas: a.schemas.clone(),
        tables: a.tables.clone(),
        exclude_tables: a.exclude_tables.clone(),
    }
    .normalized();
    if a.reason.trim().is_empty() {
        bail!("--reason must say why the dump is needed");
    }
    if let (Some(dsn), Some(dir)) = (&a.dsn, &a.policy) {
        let (policy, _) = crate::policy::Policy::load_dir(dir)?;
        let rt = super::runtime()?;
        let (catalog, _) = rt.block_on(super::upstream::fetch_catalog(dsn))?;
        let rows = rt.block_on(super::upstream::fetch_rows(dsn, dumps::CONSTRAINTS_SQL))?;
        let constraints = dumps::Constraints::from_rows(&rows);
        let pre = dumps::preflight(&policy, &catalog, &constraints, &scope);
        eprint!("{}", pre.report());
        if !pre.problems.is_empty() {
            bail!(
                "the request is refused: the dump could not restore ({} problem(s) above)",
                pre.problems.len()
            );
        }
        for t in pre.forbidden {
            eprintln!("{t}: added to the tables dumped schema only (forbidden)");
            scope.exclude_tables.push(t);
        }
    }
    let req = DumpRequest::new(&a.role, &a.database, scope, &a.reason);
    write_out(a.output.as_deref(), &req.to_text(), 0o644)?;
    if let Some(path) = &a.output {
        eprintln!(
            "wrote dump request {} to {}; security approves it with `copyguard dump approve {} --signing-key grant.key --expires 24h`",
            req.id,
            path.display(),
            path.display()
        );
    }
    Ok(())
}

fn approve(a: &ApproveArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.request)
        .with_context(|| format!("cannot read {}", a.request.display()))?;
    let req = DumpRequest::parse(&text).with_context(|| a.request.display().to_string())?;
    let key = dumps::read_signing_key(&a.signing_key)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.signing_key.display()))?;
    let valid_for = humantime::parse_duration(a.expires.trim())
        .with_context(|| format!("--expires {:?}: e.g. 24h or 7d", a.expires))?;
    if valid_for.is_zero() {
        bail!("--expires must be longer than zero");
    }
    if valid_for > MAX_GRANT_LIFE {
        bail!("--expires must be at most 366d: a grant is for one dump, not a standing permission");
    }
    if a.uses == 0 {
        bail!("--uses must be at least 1");
    }
    let (policy, _) = crate::policy::Policy::load_dir(&a.policy)
        .with_context(|| format!("--policy {}", a.policy.display()))?;
    let grant = Grant::approve(&req, valid_for, a.uses, policy.version(), &key);
    let token = grant.sign(&key);
    if token.len() > dumps::MAX_TOKEN_LEN {
        bail!(
            "the grant would be {} bytes, more than a startup packet carries ({}): shorten the request's reason or scope",
            token.len(),
            dumps::MAX_TOKEN_LEN
        );
    }
    if let Some(log) = &a.log {
        record_issued(log, &grant)?;
    }
    write_out(a.output.as_deref(), &format!("{token}\n"), 0o600)?;
    eprint!("{}", grant.describe());
    Ok(())
}

/// Appends a `grant_issued` record to the hash-chained log at `path`.
fn record_issued(path: &Path, grant: &Grant) -> anyhow::Result<()> {
    let log = AuditLog::open(&AuditConfig::for_path(path))
        .with_context(|| format!("cannot open the log of issued grants {}", path.display()))?;
    let recorded = log.record_blocking(Event::grant_issued(&grant.grant_id, grant.info(None)));
    log.shutdown_blocking();
    recorded
        .map(|_| ())
        .with_context(|| format!("cannot record the grant in {}", path.display()))
}

fn run_pg_dump(a: &RunArgs) -> anyhow::Result<()> {
    let token = read_token(&a.grant)?;
    let grant = Grant::decode_unverified(&token)?;
    let pg_dump = match &a.pg_dump {
        Some(p) => p.clone(),
        None => find_pg_dump(),
    };
    let mut options = std::env::var("PGOPTIONS").unwrap_or_default();
    if !options.is_empty() {
        options.push(' ');
    }
    options.push_str(&format!("-c {}={token}", dumps::GRANT_SETTING));
    let mut cmd = Command::new(&pg_dump);
    cmd.env("PGOPTIONS", options)
        .arg(format!("--username={}", grant.role))
        .arg(format!("--dbname={}", grant.database))
        .args(grant.scope.pg_dump_args())
        .args(&a.args);
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", pg_dump.display()))?;
    if !status.success() {
        bail!("pg_dump failed ({status})");
    }
    Ok(())
}

fn find_pg_dump() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join("pg_dump").is_file()));
    if on_path {
        return PathBuf::from("pg_dump");
    }
    crate::devdb::find_bindir()
        .map(|d| d.join("pg_dump"))
        .unwrap_or_else(|_| PathBuf::from("pg_dump"))
}

/// A token given on the command line, or the first line of the file it
/// names.
fn read_token(arg: &str) -> anyhow::Result<String> {
    if arg.starts_with("cg1.") {
        return Ok(arg.to_owned());
    }
    let text = std::fs::read_to_string(arg).with_context(|| {
        format!("{arg:?} is neither a grant token (cg1....) nor a readable file")
    })?;
    Ok(text.trim().to_owned())
}

fn write_out(path: Option<&Path>, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match path {
        None => {
            print!("{text}");
            Ok(())
        }
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            file.write_all(text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))
        }
    }
}
