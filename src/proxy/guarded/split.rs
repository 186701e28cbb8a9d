//! A guarded session between plain TCP sockets on threads of its own: one
//! per half, each sleeping in a blocking `recv` on the socket it reads
//! ([`Blocking`]). The frontend's thread reads the client and writes the
//! server, the backend's reads the server and writes the client. Each so
//! wakes one peer only (PostgreSQL's backend, or the client), as the
//! production relay's threads do, and the scheduler wakes that peer next
//! to it; a thread running both halves wakes the two in turn, which the
//! scheduler reads as "many partners" and answers by waking them on the
//! other core (see `benches/README.md`, "Where the relay threads are
//! woken"). The halves share what they share on one runtime: the
//! [`Guard`] and its queue of the responses the server owes, behind locks
//! and atomics. The calling thread waits for the first half to end (or for
//! shutdown to force an end), then shuts both sockets down for reading so
//! the other half's `recv` returns, and both ways if it is still blocked
//! writing after [`STOP_GRACE`].

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::blocking::Blocking;
use super::{
    catalog_of, failed, finish, Backend, Delivered, Frontend, Guard, Outcome, Reader, Writer,
    CLIENT_OUT_CAPACITY,
};
use crate::proxy::relay::{RelayEnd, STOP_GRACE};
use crate::proxy::workers::session_runtime;
use crate::proxy::{SessionError, SessionInfo, Shared};
use crate::wire::{Conn, FrameWriter};

/// What [`run`] needs of the session, moved to its thread.
pub(super) struct Session {
    pub shared: Arc<Shared>,
    pub info: SessionInfo,
    pub class: Arc<crate::policy::RoleClass>,
    pub upstream_key: Option<crate::proxy::cancel::UpstreamKey>,
    pub fields: Arc<crate::audit::SessionFields>,
}

/// Runs the session's halves on two threads until either ends or shutdown
/// forces an end; then as [`super::run`]. `client` and `server` are the
/// plain sockets, with what was read ahead of each.
pub(super) fn run(
    s: Session,
    (client, client_buf): (TcpStream, BytesMut),
    (server, server_buf): (TcpStream, BytesMut),
) -> Outcome {
    let runtimes = (session_runtime(), session_runtime(), session_runtime());
    let (front_rt, back_rt, own_rt) = match runtimes {
        (Ok(f), Ok(b), Ok(o)) => (f, b, o),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return failed(SessionError::Client(e.into()))
        }
    };
    if let Err(e) = client.set_nonblocking(false) {
        return failed(SessionError::Client(e.into()));
    }
    if let Err(e) = server.set_nonblocking(false) {
        return failed(SessionError::Upstream(e.into()));
    }
    let (client, server) = (Arc::new(client), Arc::new(server));
    let reader = |s: &Arc<TcpStream>| Box::new(Blocking::new(s.clone())) as Reader;
    let writer = |s: &Arc<TcpStream>| Box::new(Blocking::new(s.clone())) as Writer;
    let max = s.shared.config.limits.max_message_size;
    let mut client_in = Conn::with_buffer(reader(&client), client_buf, max);
    let mut server_out = FrameWriter::new(writer(&server));
    let mut server_in = Conn::with_buffer(reader(&server), server_buf, usize::MAX);
    let mut client_out = FrameWriter::with_capacity(CLIENT_OUT_CAPACITY, writer(&client));
    let mut delivered = Delivered::new();
    let catalog = catalog_of(&s.shared, &s.info);
    let guard = Guard::new(&s.shared, &s.info, s.class, s.upstream_key, s.fields);
    let force = s.shared.force.child_token();
    let (front_done, back_done) = (CancellationToken::new(), CancellationToken::new());
    let (ended, mut ended_rx) = mpsc::unbounded_channel::<()>();
    // The half that ends first gives the session's outcome.
    let decided = AtomicBool::new(false);
    let first = || !decided.swap(true, Ordering::AcqRel);
    let outcome = std::thread::scope(|scope| {
        let back = std::thread::Builder::new()
            .name("copyguard-guarded-back".into())
            .spawn_scoped(scope, || {
                let r = back_rt.block_on(async {
                    tokio::select! {
                        r = Backend::new(&guard, &mut server_in, &mut client_out, &mut delivered).run() => {
                            first().then(|| r.map(|()| RelayEnd::ServerClosed))
                        }
                        _ = front_done.cancelled() => None,
                    }
                });
                back_done.cancel();
                let _ = ended.send(());
                r
            });
        let front = std::thread::Builder::new()
            .name("copyguard-guarded-front".into())
            .spawn_scoped(scope, || {
                let r = front_rt.block_on(async {
                    tokio::select! {
                        r = Frontend::new(&guard, &mut client_in, &mut server_out, catalog).run() => {
                            first().then(|| r.map(|()| RelayEnd::ClientClosed))
                        }
                        _ = back_done.cancelled() => None,
                    }
                });
                front_done.cancel();
                let _ = ended.send(());
                r
            });
        let forced = if back.is_ok() && front.is_ok() {
            own_rt.block_on(stop(&force, &mut ended_rx, (&client, &server)))
        } else {
            // A half could not start: the other must not wait for it.
            front_done.cancel();
            back_done.cancel();
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            false
        };
        let back = back.map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        let front = front.map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        match (forced, front, back) {
            (_, Err(e), _) | (_, _, Err(e)) => Err(SessionError::Client(e.into())),
            (true, _, _) => Err(SessionError::Shutdown),
            (false, Ok(front), Ok(back)) => front.or(back).unwrap_or(Err(SessionError::Shutdown)),
        }
    });
    // The session's last words to the client block no longer than a half
    // told to stop may.
    let _ = client.set_write_timeout(Some(STOP_GRACE));
    let ended = own_rt.block_on(finish(&guard, outcome, &mut client_out, delivered));
    drop((client_in, server_out, server_in, client_out));
    for rt in [front_rt, back_rt, own_rt] {
        rt.shutdown_background();
    }
    ended
}

/// Waits until the first half ends or `force` is cancelled (then returns
/// `true`), shuts both sockets down for reading so a half blocked in
/// `recv` ends, and both ways if the halves have not both ended within
/// [`STOP_GRACE`].
async fn stop(
    force: &CancellationToken,
    ended: &mut mpsc::UnboundedReceiver<()>,
    (client, server): (&TcpStream, &TcpStream),
) -> bool {
    let mut left = 2;
    let forced = tokio::select! {
        _ = ended.recv() => { left -= 1; false }
        _ = force.cancelled() => true,
    };
    let _ = client.shutdown(Shutdown::Read);
    let _ = server.shutdown(Shutdown::Read);
    let rest = tokio::time::timeout(STOP_GRACE, async {
        while left > 0 && ended.recv().await.is_some() {
            left -= 1;
        }
    });
    if rest.await.is_err() {
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
    }
    forced
}
