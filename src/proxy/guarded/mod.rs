//! The guarded relay: a session of a non-production role. Two halves run
//! concurrently: the [`frontend`] (client to server: analyze, decide,
//! forward or refuse) and the [`backend`] (server to client: check, count,
//! scrub). They share the queue of responses the server owes
//! ([`exec::Expect`]), so each response is judged by the request it
//! answers, and so copyguard can run its own catalog queries in between.
//! A pseudonymized COPY TO is rewritten in batches on the blocking pool
//! ([`copy_pipe`]), its outputs relayed in order.

mod backend;
mod copy_pipe;
mod exec;
mod frontend;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, BufWriter};

use super::cancel::UpstreamKey;
use super::relay::RelayEnd;
use super::{audit, SessionError, SessionInfo, Shared};
use crate::analysis::StatementFacts;
use crate::audit::{Event, SessionFields, SessionTotals, StatementEvent, Verdict};
use crate::catalog::Catalog;
use crate::enforce::block_error;
use crate::policy::{Allowance, Block, RoleClass};
use crate::wire::messages::ErrorFields;
use crate::wire::{Conn, Stream};

use backend::{Backend, ClientOut};
use exec::SessionState;
use frontend::Frontend;

/// What both halves of one guarded session read.
pub(crate) struct Guard<'a> {
    pub shared: &'a Shared,
    pub shared_arc: Arc<Shared>,
    pub info: &'a SessionInfo,
    pub class: Arc<RoleClass>,
    pub upstream_key: Option<UpstreamKey>,
    /// Allowed-statement counter (a handle, not a registry lookup per
    /// statement).
    pub allowed: metrics::Counter,
    /// The session's fixed fields in the block log.
    pub session: Arc<SessionFields>,
    state: Arc<SessionState>,
}

impl Guard<'_> {
    /// Records a refusal (statement refused before it ran, or result
    /// stopped while it streamed: `what`) in the log, the metrics and the
    /// block log, and returns the error the client gets: the refusal, or,
    /// when the block log cannot take the record, that error. Reasons
    /// never hold data values.
    pub async fn refusal(
        &self,
        b: &Block,
        what: &'static str,
        sql: &str,
        rows: Option<(u64, u64)>,
    ) -> ErrorFields {
        tracing::warn!(
            user = %self.info.user,
            database = %self.info.database,
            rule = b.rule,
            reason = %b.reason,
            "{what}"
        );
        metrics::counter!(crate::telemetry::VERDICTS, "verdict" => "block", "rule" => b.rule)
            .increment(1);
        let mut ev = audit::statement_event(sql, audit::refusal_verdict(b), Some(b), None);
        if let Some((rows, bytes)) = rows {
            ev.rows = Some(rows);
            ev.bytes = Some(bytes);
        }
        match self.record(ev).await {
            Ok(()) => block_error(b),
            Err(e) => e,
        }
    }

    /// Records an allowed statement's verdict when it needs a record (it
    /// returns classified data), or when the block log is failing (so the
    /// statement fails closed and the log's recovery is noticed). The
    /// error is what the client gets instead of running the statement.
    pub async fn allowed_verdict(
        &self,
        sql: &str,
        facts: &StatementFacts,
        allowance: &Allowance,
        catalog: &Catalog,
    ) -> Result<(), ErrorFields> {
        self.state
            .statements
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let verdict = match audit::allowed_verdict(allowance) {
            Some(v) => v,
            None if self.shared.audit.healthy() => return Ok(()),
            None => Verdict::Allowed,
        };
        let ev = audit::statement_event(sql, verdict, None, Some((facts, allowance, catalog)));
        self.record(ev).await
    }

    /// Writes a verdict to the block log; the error the client gets when
    /// it cannot be written.
    async fn record(&self, ev: StatementEvent) -> Result<(), ErrorFields> {
        self.shared
            .audit
            .record(Event::verdict(&self.session, ev))
            .await
            .map(drop)
            .map_err(|e| audit::unavailable(&e))
    }
}

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Splits a stream into independently usable halves: owned halves for
/// plain TCP (no lock), `tokio::io::split` under TLS.
fn split(stream: Stream) -> (Reader, Writer) {
    match stream {
        Stream::Plain(tcp) => {
            let (r, w) = tcp.into_split();
            (Box::new(r), Box::new(w))
        }
        tls => {
            let (r, w) = tokio::io::split(tls);
            (Box::new(r), Box::new(w))
        }
    }
}

/// Runs a guarded session until either side closes or shutdown forces an
/// end. A fatal error is reported to the client between frames.
pub(crate) async fn run(
    shared: Arc<Shared>,
    client: Conn<Stream>,
    upstream: Conn<Stream>,
    info: &SessionInfo,
    class: Arc<RoleClass>,
    upstream_key: Option<UpstreamKey>,
    session: Arc<SessionFields>,
) -> (Result<RelayEnd, SessionError>, SessionTotals) {
    for (name, value) in &info.server_params {
        if let Err(b) = crate::enforce::check_reported_setting(name, value) {
            let err = SessionError::Policy {
                rule: b.rule,
                reason: b.reason,
            };
            return (Err(err), SessionTotals::default());
        }
    }
    let max = shared.config.limits.max_message_size;
    let (client_stream, client_buf) = client.into_parts();
    let (server_stream, server_buf) = upstream.into_parts();
    let (client_r, client_w) = split(client_stream);
    let (server_r, server_w) = split(server_stream);
    let mut client_in = Conn::with_buffer(client_r, client_buf, max);
    let mut server_in = Conn::with_buffer(server_r, server_buf, usize::MAX);
    let mut server_out = BufWriter::new(server_w);
    let mut client_out = ClientOut {
        writer: BufWriter::with_capacity(32 * 1024, client_w),
        in_frame: false,
    };
    let catalog = shared
        .catalogs
        .get(&info.database)
        .unwrap_or_else(|| Arc::new(Catalog::new(Vec::new(), Vec::new())));
    let guard = Guard {
        shared: &shared,
        shared_arc: shared.clone(),
        info,
        class,
        upstream_key,
        allowed: metrics::counter!(crate::telemetry::VERDICTS, "verdict" => "allow", "rule" => ""),
        session,
        state: Arc::new(SessionState::new()),
    };
    let outcome = {
        let front = Frontend::new(&guard, &mut client_in, &mut server_out, catalog).run();
        let back = Backend::new(&guard, &mut server_in, &mut client_out).run();
        tokio::select! {
            r = front => r.map(|()| RelayEnd::ClientClosed),
            r = back => r.map(|()| RelayEnd::ServerClosed),
            _ = shared.force.cancelled() => Err(SessionError::Shutdown),
        }
    };
    if let Err(err) = &outcome {
        if let Some(fields) = err.to_client() {
            if !client_out.in_frame {
                let _ = client_out.write(&fields.encode()).await;
            }
        }
    }
    let _ = client_out.flush().await;
    if let Some(dump) = &guard.class.dump {
        audit::dump_receipt(&shared.audit, &guard.session, dump, &guard.state.receipt).await;
    }
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let totals = SessionTotals {
        statements: guard.state.statements.load(relaxed),
        rows: guard.state.session_rows.load(relaxed),
        bytes: guard.state.session_bytes.load(relaxed),
        ..SessionTotals::default()
    };
    (outcome, totals)
}
