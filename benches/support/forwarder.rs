//! A zero-work forwarder: a thread-per-connection program that only copies
//! bytes between a client and PostgreSQL. It is what a proxy hop costs on
//! this machine when the proxy itself does nothing, the baseline the relay
//! is compared with.

use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// A running forwarder on 127.0.0.1; stops accepting when dropped.
pub struct Forwarder {
    /// The port clients connect to.
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Forwarder {
    /// Listens on a free port of 127.0.0.1 and forwards every connection
    /// to `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<Forwarder> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        Ok(Forwarder { port, stop })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

/// Copies `from` to `to` on a thread of its own until `from` ends.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}
