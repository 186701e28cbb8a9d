//! `copyguard audit ...`: verify, review and follow the block log; create
//! its keys.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};

use crate::audit::format::{self, OutputFormat};
use crate::audit::keys::{self, ChainKey};
use crate::audit::review::{self, Filter, Review};
use crate::audit::verify::{self, VerifyError, VerifyOptions};
use crate::audit::{follow, EventName, LogPaths, Sealed, Verdict};

/// Options of `copyguard audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

/// Subcommands of `copyguard audit`.
#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Check a log set (every file, any order) against its keys and
    /// anchors; exit 1 naming the first bad record.
    Verify(VerifyArgs),
    /// Summarize refusals for a reviewer and list the matching records.
    Review(ReviewArgs),
    /// Print the last records of a live log and follow it across rotation.
    Tail(TailArgs),
    /// Write a new chain key, signing key and public key into DIR.
    Keygen {
        /// Directory for chain.key, signing.key (mode 0600) and signing.pub.
        dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Log files: the live file and every rotated file (e.g.
    /// copyguard-audit*.log).
    #[arg(required = true)]
    logs: Vec<PathBuf>,
    /// Anchor file [NAME.anchors beside the first log].
    #[arg(long)]
    anchors: Option<PathBuf>,
    /// Chain key file [NAME.keys/chain.key beside the first log].
    #[arg(long)]
    key: Option<PathBuf>,
    /// Public key of the anchor signer [signing.pub beside the chain key].
    #[arg(long)]
    pubkey: Option<PathBuf>,
    /// The log is still being written: accept records after the last
    /// anchor (reported) instead of requiring a clean stop.
    #[arg(long)]
    live: bool,
    /// Accept a set whose oldest files were retired, when its first record
    /// follows an anchored one.
    #[arg(long)]
    from_anchor: bool,
}

#[derive(Debug, clap::Args)]
struct ReviewArgs {
    /// Log files (any order).
    #[arg(required = true)]
    logs: Vec<PathBuf>,
    /// Records at or after: 2026-11-01T10:00:00Z, 2026-11-01, or 24h (ago).
    #[arg(long)]
    since: Option<String>,
    /// Records before (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Only this login role.
    #[arg(long)]
    role: Option<String>,
    /// Only this rule id.
    #[arg(long)]
    rule: Option<String>,
    /// Only this verdict: allowed, allowed_limited, pseudonymized, blocked,
    /// budget_exceeded.
    #[arg(long)]
    verdict: Option<String>,
    /// Only this event: session_start, session_end, session_refused,
    /// verdict, result, statement, policy_reload, grant_use,
    /// grant_issued, log_start, log_stop.
    #[arg(long)]
    event: Option<String>,
    /// Only this session id.
    #[arg(long)]
    session: Option<u64>,
    /// Summary and records as one JSON document.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Only the matching records, in a SIEM format.
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// Records listed: the latest N (0: all) [100 in the text report, else
    /// all].
    #[arg(long)]
    limit: Option<usize>,
    /// Write to this file instead of stdout (appended).
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct TailArgs {
    /// The live log file.
    log: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    format: OutputFormat,
    /// Records printed before following.
    #[arg(short = 'n', long, default_value_t = 10)]
    lines: usize,
    /// Print what is there and exit instead of following.
    #[arg(long)]
    no_follow: bool,
    /// Write to this file instead of stdout (appended).
    #[arg(long)]
    output: Option<PathBuf>,
}

/// Runs `copyguard audit ...`.
pub fn run(args: &AuditArgs) -> anyhow::Result<()> {
    match &args.command {
        AuditCommand::Verify(a) => verify(a),
        AuditCommand::Review(a) => review(a),
        AuditCommand::Tail(a) => tail(a),
        AuditCommand::Keygen { dir } => keygen(dir),
    }
}

fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    let derived = LogPaths::for_log(&args.logs[0]);
    let anchors = args.anchors.clone().unwrap_or(derived.anchors);
    let key_path = args.key.clone().unwrap_or(derived.chain_key);
    let pub_path = args
        .pubkey
        .clone()
        .unwrap_or_else(|| keys::public_key_beside(&key_path));
    let key = ChainKey::load(&key_path)?;
    let public = keys::load_public_key(&pub_path)?;
    let opts = VerifyOptions {
        live: args.live,
        from_anchor: args.from_anchor,
    };
    match verify::verify(&args.logs, &anchors, &key, &public, opts) {
        Ok(report) => {
            println!(
                "OK: {} records, seq {}..{}, {} .. {}",
                report.records,
                report.first_seq,
                report.last_seq,
                report.first_time,
                report.last_time
            );
            for f in &report.files {
                println!("  {}: seq {}..{}", f.path.display(), f.first, f.last);
            }
            let last = report
                .last_anchor
                .map(|(n, kind, seq)| format!("; last #{n} ({}) at seq {seq}", kind.as_str()))
                .unwrap_or_default();
            println!(
                "  anchors: {} in {}, {} matched a record{last}",
                report.anchors,
                anchors.display(),
                report.anchors_matched
            );
            if report.unanchored > 0 {
                println!(
                    "  live: {} record(s) after the last anchor (not yet anchored)",
                    report.unanchored
                );
            }
            for note in &report.notes {
                println!("  note: {note}");
            }
            Ok(())
        }
        Err(VerifyError::Failed(failure)) => {
            bail!("audit log verification FAILED: {failure}")
        }
        Err(VerifyError::Io(e)) => Err(e).context("audit log verification failed"),
    }
}

fn review(args: &ReviewArgs) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let time = |s: &Option<String>, flag: &str| -> anyhow::Result<Option<SystemTime>> {
        s.as_deref()
            .map(|s| review::parse_time_arg(s, now))
            .transpose()
            .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
    };
    let verdict = match &args.verdict {
        None => None,
        Some(v) => Some(Verdict::parse(v).with_context(|| {
            format!(
                "--verdict: unknown verdict {v:?}; one of {}",
                Verdict::ALL.map(Verdict::as_str).join(", ")
            )
        })?),
    };
    let event = match &args.event {
        None => None,
        Some(e) => Some(
            serde_json::from_value::<EventName>(serde_json::Value::String(e.clone()))
                .with_context(|| format!("--event: unknown event {e:?}"))?,
        ),
    };
    let filter = Filter {
        since: time(&args.since, "--since")?,
        until: time(&args.until, "--until")?,
        role: args.role.clone(),
        rule: args.rule.clone(),
        verdict,
        event,
        session: args.session,
    };
    let text_report = !args.json && args.format.is_none();
    let limit = args.limit.unwrap_or(if text_report { 100 } else { 0 });
    let mut review = Review::new(filter, limit);
    review.read_files(&args.logs)?;
    let mut out = output(args.output.as_deref())?;
    if args.json {
        writeln!(out, "{}", review.render_json())?;
    } else if let Some(fmt) = args.format {
        let host = format::hostname();
        for sealed in &review.records {
            writeln!(out, "{}", format::render(sealed, fmt, &host))?;
        }
    } else {
        write!(out, "{}", review.render_text())?;
    }
    out.flush()?;
    Ok(())
}

fn tail(args: &TailArgs) -> anyhow::Result<()> {
    if !args.log.exists() {
        if args.no_follow {
            bail!("cannot read {}: no such file", args.log.display());
        }
        eprintln!(
            "copyguard: {} does not exist yet; waiting for it",
            args.log.display()
        );
    }
    let mut follower = follow::Follower::new(&args.log, args.lines)
        .with_context(|| format!("cannot read {}", args.log.display()))?;
    let mut out = output(args.output.as_deref())?;
    let host = format::hostname();
    loop {
        let lines = follower
            .poll()
            .with_context(|| format!("cannot read {}", args.log.display()))?;
        for line in &lines {
            match (args.format, Sealed::parse(line)) {
                (OutputFormat::Json, _) => writeln!(out, "{line}")?,
                (fmt, Ok(sealed)) => writeln!(out, "{}", format::render(&sealed, fmt, &host))?,
                (_, Err(_)) => eprintln!(
                    "copyguard: a line of the log is not a record; run `copyguard audit verify`"
                ),
            }
        }
        out.flush()?;
        if args.no_follow {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn keygen(dir: &Path) -> anyhow::Result<()> {
    let files = keys::generate(dir)?;
    println!(
        "wrote {} and {} (mode 0600) and {}\n\nserve with:\n  audit.chain_key_file = {:?}\n  audit.signing_key_file = {:?}\nverify with:\n  copyguard audit verify LOG... --key {} --pubkey {}",
        files.chain.display(),
        files.signing.display(),
        files.public.display(),
        files.chain.display(),
        files.signing.display(),
        files.chain.display(),
        files.public.display(),
    );
    Ok(())
}

fn output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
        Some(p) => Box::new(std::io::BufWriter::new(
            File::options()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open {}", p.display()))?,
        )),
    })
}
