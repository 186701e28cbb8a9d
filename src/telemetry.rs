//! Logging and metrics set-up. Every metric name copyguard exports is
//! declared here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use metrics::{describe_counter, describe_gauge, describe_histogram, Counter, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::config::LogFormat;

/// Client connections accepted.
pub const CONNECTIONS: &str = "copyguard_connections_total";
/// Client connections refused (label `reason`).
pub const CONNECTIONS_REFUSED: &str = "copyguard_connections_refused_total";
/// Sessions currently open.
pub const SESSIONS_ACTIVE: &str = "copyguard_sessions_active";
/// Session length in seconds.
pub const SESSION_DURATION: &str = "copyguard_session_duration_seconds";
/// Bytes relayed (label `direction`: `client_to_server` or `server_to_client`).
pub const BYTES: &str = "copyguard_bytes_total";
/// Protocol messages relayed (label `direction`).
pub const MESSAGES: &str = "copyguard_messages_total";
/// Authentications the upstream refused.
pub const AUTH_FAILURES: &str = "copyguard_auth_failures_total";
/// Cancel requests received (label `outcome`: `forwarded`, `unknown_key`, `failed`).
pub const CANCEL_REQUESTS: &str = "copyguard_cancel_requests_total";
/// Sessions that ended with an error (label `side`: `client`, `upstream`, `proxy`).
pub const SESSION_ERRORS: &str = "copyguard_session_errors_total";

/// Catalog loads run for guarded sessions, one per database at a time
/// (label `database`).
pub const CATALOG_LOADS: &str = "copyguard_catalog_loads_total";
/// Schema changes made outside copyguard that a probe found, each dating
/// the database's catalog (label `database`).
pub const CATALOG_CHANGES: &str = "copyguard_catalog_changes_total";

/// Verdicts on guarded statements (labels `verdict`, `rule`).
pub const VERDICTS: &str = "copyguard_verdicts_total";
/// Policy reloads (label `outcome`: `ok` or `refused`).
pub const POLICY_RELOADS: &str = "copyguard_policy_reloads_total";

/// Audit records written (label `event`).
pub const AUDIT_RECORDS: &str = "copyguard_audit_records_total";
/// Verdicts written to the audit log (labels `verdict`, `rule`, `role_class`).
pub const AUDIT_VERDICTS: &str = "copyguard_audit_verdicts_total";
/// Audit failures (label `stage`: `write`, `sync`, `rotate`, `anchor`, `dropped`).
pub const AUDIT_FAILURES: &str = "copyguard_audit_failures_total";
/// 1 while the audit log and anchor file are writable, else 0.
pub const AUDIT_HEALTHY: &str = "copyguard_audit_healthy";

/// Direction label value: client to server.
pub const CLIENT_TO_SERVER: &str = "client_to_server";
/// Direction label value: server to client.
pub const SERVER_TO_CLIENT: &str = "server_to_client";

/// Counts a record written to the audit log.
pub fn audit_record(event: &'static str) {
    metrics::counter!(AUDIT_RECORDS, "event" => event).increment(1);
}

/// Counts a verdict written to the audit log.
pub fn audit_verdict(verdict: &'static str, rule: &str, role_class: &str) {
    metrics::counter!(
        AUDIT_VERDICTS,
        "verdict" => verdict,
        "rule" => rule.to_owned(),
        "role_class" => role_class.to_owned()
    )
    .increment(1);
}

/// Counts an audit failure at `stage`.
pub fn audit_failure(stage: &'static str) {
    metrics::counter!(AUDIT_FAILURES, "stage" => stage).increment(1);
}

/// Sets the audit health gauge.
pub fn audit_healthy(healthy: bool) {
    metrics::gauge!(AUDIT_HEALTHY).set(if healthy { 1.0 } else { 0.0 });
}

/// One production relay direction's [`BYTES`] and [`MESSAGES`], published
/// lazily. The relay thread only stores its running totals in cells no
/// other thread writes (two plain stores per read, where incrementing the
/// shared counters cost four atomic read-modify-writes on cache lines all
/// relay threads share); what is not yet published is added to the
/// counters by every [`render`] and when the tally is dropped (its relay
/// ended). A scrape therefore always sees exact counts, busy or idle.
pub struct RelayTally {
    cells: Arc<TallyCells>,
    id: u64,
}

/// Aligned to two cache lines: the cells of a session's two directions,
/// written per read by threads on different cores, share no line.
#[derive(Default)]
#[repr(align(128))]
struct TallyCells {
    bytes: AtomicU64,
    messages: AtomicU64,
}

/// A live tally as the registry sees it: its totals already added to the
/// counters.
struct Published {
    cells: Arc<TallyCells>,
    bytes: u64,
    messages: u64,
    bytes_metric: Counter,
    messages_metric: Counter,
}

impl Published {
    fn publish(&mut self) {
        let bytes = self.cells.bytes.load(Ordering::Relaxed);
        let messages = self.cells.messages.load(Ordering::Relaxed);
        self.bytes_metric
            .increment(bytes.saturating_sub(self.bytes));
        self.messages_metric
            .increment(messages.saturating_sub(self.messages));
        (self.bytes, self.messages) = (bytes, messages);
    }
}

/// The live tallies, by id.
fn live_tallies() -> MutexGuard<'static, BTreeMap<u64, Published>> {
    static LIVE: Mutex<BTreeMap<u64, Published>> = Mutex::new(BTreeMap::new());
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RelayTally {
    /// A tally for `direction` ([`CLIENT_TO_SERVER`] or
    /// [`SERVER_TO_CLIENT`]), counting into the recorder current here.
    pub fn new(direction: &'static str) -> RelayTally {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let cells = Arc::new(TallyCells::default());
        let published = Published {
            cells: cells.clone(),
            bytes: 0,
            messages: 0,
            bytes_metric: metrics::counter!(BYTES, "direction" => direction),
            messages_metric: metrics::counter!(MESSAGES, "direction" => direction),
        };
        live_tallies().insert(id, published);
        RelayTally { cells, id }
    }

    /// Records this direction's running totals (only ever growing; called
    /// by the one thread relaying it).
    pub fn set(&self, bytes: u64, messages: u64) {
        self.cells.bytes.store(bytes, Ordering::Relaxed);
        self.cells.messages.store(messages, Ordering::Relaxed);
    }
}

impl Drop for RelayTally {
    fn drop(&mut self) {
        let removed = live_tallies().remove(&self.id);
        if let Some(mut published) = removed {
            published.publish();
        }
    }
}

/// Adds what the live relays counted since the last call to [`BYTES`] and
/// [`MESSAGES`].
pub fn publish_relay_counts() {
    for published in live_tallies().values_mut() {
        published.publish();
    }
}

/// The metrics in Prometheus text format, the relays' counts brought up to
/// date first.
pub fn render(handle: &PrometheusHandle) -> String {
    publish_relay_counts();
    handle.render()
}

/// Installs the global tracing subscriber (idempotent: a second call is a
/// no-op, which tests rely on).
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = match PrometheusBuilder::new().install_recorder() {
                Ok(handle) => handle,
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(CONNECTIONS, "Client connections accepted");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Client connections refused before relaying"
    );
    describe_gauge!(SESSIONS_ACTIVE, "Sessions currently relaying");
    describe_histogram!(SESSION_DURATION, Unit::Seconds, "Session length");
    describe_counter!(BYTES, Unit::Bytes, "Bytes relayed after authentication");
    describe_counter!(MESSAGES, "Protocol messages relayed after authentication");
    describe_counter!(AUTH_FAILURES, "Authentications refused by the upstream");
    describe_counter!(CANCEL_REQUESTS, "Cancel requests received");
    describe_counter!(SESSION_ERRORS, "Sessions ended by an error");
    describe_counter!(VERDICTS, "Verdicts on guarded statements");
    describe_counter!(
        CATALOG_LOADS,
        "Catalog loads for guarded sessions (label `database`)"
    );
    describe_counter!(
        CATALOG_CHANGES,
        "Schema changes made outside copyguard found by a catalog probe (label `database`)"
    );
    describe_counter!(POLICY_RELOADS, "Policy reloads");
    describe_counter!(AUDIT_RECORDS, "Records written to the audit log");
    describe_counter!(
        AUDIT_VERDICTS,
        "Verdicts written to the audit log, by rule and role class"
    );
    describe_counter!(
        AUDIT_FAILURES,
        "Audit log write, sync, rotation and anchor failures"
    );
    describe_gauge!(AUDIT_HEALTHY, "1 while the audit log is writable");
}
