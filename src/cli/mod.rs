//! Command-line entry points, one file per subcommand. This is the only
//! place `anyhow` is used.

mod audit;
mod demo;
mod dump;
mod explain;
mod policy;
mod serve;
mod upstream;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ConfigArgs, ConfigError};
use crate::proxy::ServeError;

/// copyguard: a PostgreSQL proxy that keeps production data out of
/// non-production hands.
#[derive(Debug, Parser)]
#[command(name = "copyguard", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy in front of a PostgreSQL server.
    Serve(Box<ConfigArgs>),
    /// Start a throwaway PostgreSQL with sample data and copyguard in front
    /// of it, and print what to try.
    Demo(demo::DemoArgs),
    /// Show what copyguard understands of a statement and the verdict a role
    /// would get, without running it.
    Explain(explain::ExplainArgs),
    /// Policy tools: `policy check DIR [--dsn DSN]`.
    Policy(policy::PolicyArgs),
    /// Block log tools: `audit verify|review|tail|keygen`.
    Audit(audit::AuditArgs),
    /// Sanctioned dumps: `dump request|keygen|approve|show|run`.
    Dump(dump::DumpArgs),
}

impl Cli {
    /// Runs the chosen subcommand; configuration errors (settings, policy,
    /// block log, TLS material, addresses that cannot be bound) exit with
    /// 2, other failures with 1. The message is printed once.
    pub fn run(self) -> ExitCode {
        let result = match self.command {
            Command::Serve(args) => serve::run(&args),
            Command::Demo(args) => demo::run(&args),
            Command::Explain(args) => explain::run(&args),
            Command::Policy(args) => policy::run(&args),
            Command::Audit(args) => audit::run(&args),
            Command::Dump(args) => dump::run(&args),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("copyguard: {}", error_message(&e));
                let configuration = e
                    .chain()
                    .any(|c| c.is::<ConfigError>() || c.is::<ServeError>());
                if configuration {
                    ExitCode::from(2)
                } else {
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// An error and its causes on one line, each said once: a cause whose
/// text its wrapper already quotes is not repeated.
fn error_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Resolves when the process receives SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("copyguard")
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17: causes their wrappers already quote were printed again
    /// (an unwritable block log gave its message three times).
    #[test]
    fn error_message_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied");
        let audit = crate::audit::AuditError::Io {
            context: "cannot create",
            path: "/x/audit.log".into(),
            source: io,
        };
        let e = anyhow::Error::new(ServeError::Audit(audit)).context("cannot start");
        let text = error_message(&e);
        assert_eq!(text.matches("Permission denied").count(), 1, "{text}");
        assert!(
            text.starts_with("cannot start: block log (`audit.path`): cannot create /x/audit.log"),
            "{text}"
        );
    }
}
