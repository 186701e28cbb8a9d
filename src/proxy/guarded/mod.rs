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

use tokio::io::BufWriter;

use super::cancel::UpstreamKey;
use super::relay::RelayEnd;
use super::{SessionError, SessionInfo, Shared};
use crate::catalog::Catalog;
use crate::policy::RoleClass;
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
    state: SessionState,
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
    let max = shared.config.limits.max_message_size;
    let (client_stream, client_buf) = client.into_parts();
    let (server_stream, server_buf) = upstream.into_parts();
    let (client_r, client_w) = tokio::io::split(client_stream);
    let (server_r, server_w) = tokio::io::split(server_stream);
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
        state: SessionState::new(),
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
