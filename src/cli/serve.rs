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
    super::runtime()?.block_on(async {
        let server = Server::bind(config).await.context("cannot start")?;
        let reloader = tokio::spawn(reload_on_sighup(server.policy_store(), server.audit()));
        server.run(super::shutdown_signal()).await;
        reloader.abort();
        Ok(())
    })
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
