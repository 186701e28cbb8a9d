//! The guarded relay: a session of a non-production role. Two halves run
//! concurrently: the [`frontend`] (client to server: analyze, decide,
//! forward or refuse) and the [`backend`] (server to client: check, count,
//! scrub). They share the queue of responses the server owes
//! ([`exec::Expect`]), so each response is judged by the request it
//! answers, and so copyguard can run its own catalog queries in between.

mod backend;
mod exec;
mod frontend;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, BufWriter};

use super::cancel::UpstreamKey;
use super::relay::RelayEnd;
use super::{SessionError, SessionInfo, Shared};
use crate::catalog::Catalog;
use crate::policy::{Block, RoleClass};
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
    state: Arc<SessionState>,
}

impl Guard<'_> {
    /// Records a refusal: statement refused before it ran, or result
    /// stopped while it streamed (`what`). Reasons never hold data values.
    pub fn record_refusal(&self, b: &Block, what: &'static str) {
        tracing::warn!(
            user = %self.info.user,
            database = %self.info.database,
            rule = b.rule,
            reason = %b.reason,
            "{what}"
        );
        metrics::counter!(crate::telemetry::VERDICTS, "verdict" => "block", "rule" => b.rule)
            .increment(1);
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
) -> Result<RelayEnd, SessionError> {
    for (name, value) in &info.server_params {
        if let Err(b) = crate::enforce::check_reported_setting(name, value) {
            return Err(SessionError::Policy {
                rule: b.rule,
                reason: b.reason,
            });
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
        writer: BufWriter::new(client_w),
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
    outcome
}
