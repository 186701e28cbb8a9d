//! A guarded session between plain TCP sockets on two threads of its own,
//! one per half: the frontend's thread reads the client and writes the
//! server, the backend's reads the server and writes the client, each on
//! a single-thread runtime whose `epoll_wait` watches its own copies of
//! the two sockets. Each thread so wakes one peer only (PostgreSQL's
//! backend, or the client), as the production relay's threads do, and
//! the scheduler wakes that peer next to it; a thread running both halves
//! wakes the two in turn, which the scheduler reads as "many partners"
//! and answers by waking them on the other core (see `benches/README.md`,
//! "Where the relay threads are woken"). The halves share what they
//! share on one runtime: the [`Guard`] and its queue of the responses the
//! server owes, behind locks and atomics.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use tokio_util::sync::CancellationToken;

use super::one_way::OneWay;
use super::{
    catalog_of, failed, finish, Backend, Delivered, Frontend, Guard, Outcome, Reader, Writer,
    CLIENT_OUT_CAPACITY,
};
use crate::proxy::relay::RelayEnd;
use crate::proxy::workers::session_runtime;
use crate::proxy::{SessionError, SessionInfo, Shared};
use crate::wire::{Conn, FrameWriter};

/// What [`run`] needs of the session, moved to its thread.
pub(super) struct Session {
    pub shared: std::sync::Arc<Shared>,
    pub info: SessionInfo,
    pub class: std::sync::Arc<crate::policy::RoleClass>,
    pub upstream_key: Option<crate::proxy::cancel::UpstreamKey>,
    pub fields: std::sync::Arc<crate::audit::SessionFields>,
}

/// Runs the session on this thread (its frontend) and a second one (its
/// backend) until either half ends or shutdown forces an end; then as
/// [`super::run`]. `client` and `server` are the plain sockets, with what
/// was read ahead of each.
pub(super) fn run(
    s: Session,
    (client, client_buf): (TcpStream, BytesMut),
    (server, server_buf): (TcpStream, BytesMut),
) -> Outcome {
    let front_rt = match session_runtime() {
        Ok(rt) => rt,
        Err(e) => return failed(SessionError::Client(e.into())),
    };
    let back_rt = match session_runtime() {
        Ok(rt) => rt,
        Err(e) => return failed(SessionError::Client(e.into())),
    };
    let copies = client
        .try_clone()
        .map_err(|e| SessionError::Client(e.into()))
        .and_then(|c| {
            let s = server
                .try_clone()
                .map_err(|e| SessionError::Upstream(e.into()))?;
            Ok((c, s))
        });
    let (client_copy, server_copy) = match copies {
        Ok(copies) => copies,
        Err(e) => return failed(e),
    };
    let front_side = register(&front_rt, client, server);
    let back_side = register(&back_rt, server_copy, client_copy);
    let ((client_r, server_w), (server_r, client_w)) = match (front_side, back_side) {
        (Ok(front), Ok(back)) => (front, back),
        (Err(e), _) | (_, Err(e)) => return failed(e),
    };
    let max = s.shared.config.limits.max_message_size;
    let mut client_in = Conn::with_buffer(Box::new(client_r) as Reader, client_buf, max);
    let mut server_out = FrameWriter::new(Box::new(server_w) as Writer);
    let mut server_in = Conn::with_buffer(Box::new(server_r) as Reader, server_buf, usize::MAX);
    let mut client_out =
        FrameWriter::with_capacity(CLIENT_OUT_CAPACITY, Box::new(client_w) as Writer);
    let mut delivered = Delivered::new();
    let catalog = catalog_of(&s.shared, &s.info);
    let guard = Guard::new(&s.shared, &s.info, s.class, s.upstream_key, s.fields);
    let force = s.shared.force.child_token();
    let (front_done, back_done) = (CancellationToken::new(), CancellationToken::new());
    // The half that ends first gives the session's outcome.
    let decided = AtomicBool::new(false);
    let first = || !decided.swap(true, Ordering::AcqRel);
    let outcome = std::thread::scope(|scope| {
        let back = std::thread::Builder::new()
            .name("copyguard-guarded-back".into())
            .spawn_scoped(scope, || {
                let ended = back_rt.block_on(async {
                    tokio::select! {
                        r = Backend::new(&guard, &mut server_in, &mut client_out, &mut delivered).run() => {
                            first().then(|| r.map(|()| RelayEnd::ServerClosed))
                        }
                        _ = force.cancelled() => first().then_some(Err(SessionError::Shutdown)),
                        _ = front_done.cancelled() => None,
                    }
                });
                back_done.cancel();
                ended
            });
        let back = match back {
            Ok(back) => back,
            Err(e) => return Err(SessionError::Client(e.into())),
        };
        let front = front_rt.block_on(async {
            tokio::select! {
                r = Frontend::new(&guard, &mut client_in, &mut server_out, catalog).run() => {
                    first().then(|| r.map(|()| RelayEnd::ClientClosed))
                }
                _ = force.cancelled() => first().then_some(Err(SessionError::Shutdown)),
                _ = back_done.cancelled() => None,
            }
        });
        front_done.cancel();
        let back = back
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        front.or(back).unwrap_or(Err(SessionError::Shutdown))
    });
    let ended = back_rt.block_on(finish(&guard, outcome, &mut client_out, delivered));
    drop((client_in, server_out, server_in, client_out));
    front_rt.shutdown_background();
    back_rt.shutdown_background();
    ended
}

/// Registers `from` on `rt` for reading and `to` for writing. A failure
/// (the runtime cannot watch another descriptor) ends the session before
/// anything was relayed; it is reported as the client's.
fn register(
    rt: &tokio::runtime::Runtime,
    from: TcpStream,
    to: TcpStream,
) -> Result<(OneWay, OneWay), SessionError> {
    let _on = rt.enter();
    let from = OneWay::reader(from).map_err(|e| SessionError::Client(e.into()))?;
    let to = OneWay::writer(to).map_err(|e| SessionError::Client(e.into()))?;
    Ok((from, to))
}
