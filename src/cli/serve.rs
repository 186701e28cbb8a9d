//! `copyguard serve`.

use std::sync::Arc;

use anyhow::Context;
use tracing::{info, warn};

use crate::audit::{AuditLog, Event};
use crate::config::{Config, ConfigArgs};
use crate::policy::PolicyStore;
use crate::proxy::Server;
use crate::telemetry;

/// Loads and validates the configuration, then serves until SIGTERM/SIGINT;
/// SIGHUP reloads the policy.
pub fn run(args: &ConfigArgs) -> anyhow::Result<()> {
    let config = Config::load(args)?;
    telemetry::init_logging(config.log_format, &config.log_level);
    runtime()?.block_on(async {
        let server = Server::bind(config).await.context("cannot start")?;
        let reloader = tokio::spawn(reload_on_sighup(server.policy_store(), server.audit()));
        server.run(super::shutdown_signal()).await;
        reloader.abort();
        Ok(())
    })
}

/// The serving runtime: tokio's multi-thread scheduler, one worker per
/// core. Its shape can be changed: `TOKIO_WORKER_THREADS=N` (read by
/// tokio) sets the number of workers, `COPYGUARD_RUNTIME=current_thread`
/// runs every session on one thread, `COPYGUARD_EVENT_INTERVAL=N` sets the
/// scheduler ticks between I/O polls. One worker spends less CPU per
/// production round trip (no worker wakes another to steal work) but
/// makes relays wait behind guarded sessions' analysis; see
/// `benches/README.md`, "Profile".
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = match std::env::var("COPYGUARD_RUNTIME").as_deref() {
        Ok("current_thread") => tokio::runtime::Builder::new_current_thread(),
        Ok("multi_thread") | Err(_) => tokio::runtime::Builder::new_multi_thread(),
        Ok(other) => {
            anyhow::bail!("COPYGUARD_RUNTIME must be current_thread or multi_thread, got {other:?}")
        }
    };
    if let Ok(n) = std::env::var("COPYGUARD_EVENT_INTERVAL") {
        let n = n
            .parse()
            .with_context(|| format!("COPYGUARD_EVENT_INTERVAL must be a count, got {n:?}"))?;
        builder.event_interval(n);
    }
    Ok(builder.enable_all().thread_name("copyguard").build()?)
}

/// Reloads the policy on every SIGHUP. An invalid policy is refused and
/// logged; the one in force stays.
pub async fn reload_on_sighup(store: Arc<PolicyStore>, audit: AuditLog) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        warn!("cannot listen for SIGHUP; policy hot reload disabled");
        return;
    };
    while hup.recv().await.is_some() {
        reload(&store, &audit).await;
    }
}

/// Reloads the policy once, logging the outcome and recording it in the
/// block log.
pub async fn reload(store: &PolicyStore, audit: &AuditLog) {
    let outcome = store.reload();
    let detail = outcome.as_ref().err().map(|e| e.to_string());
    if let Err(e) = audit
        .record(Event::policy_reload(
            outcome.is_ok(),
            Some(store.current().version().to_owned()),
            detail,
        ))
        .await
    {
        warn!(error = %e, "policy reload not recorded in the block log");
    }
    match outcome {
        Ok(warnings) => {
            metrics::counter!(telemetry::POLICY_RELOADS, "outcome" => "ok").increment(1);
            for w in &warnings {
                warn!(warning = %w, "policy warning");
            }
            info!(dir = %store.dir().display(), "policy reloaded");
        }
        Err(e) => {
            metrics::counter!(telemetry::POLICY_RELOADS, "outcome" => "refused").increment(1);
            warn!(dir = %store.dir().display(), error = %e, "new policy refused; the previous one stays in force");
        }
    }
}
