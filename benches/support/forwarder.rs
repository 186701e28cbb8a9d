//! The zero-work forwarder: a thread-per-connection program that only copies
//! bytes between a client and PostgreSQL. It is what a proxy hop costs on
//! this machine when the proxy itself does nothing, the baseline the relay
//! is compared with.
//!
//! It runs as a process of its own: the bench binary re-executes itself
//! with `--forwarder LISTEN UPSTREAM` ([`serve_if_asked`] handles that
//! before anything else), so it competes with the bench no more than
//! copyguard or pgbouncer do.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};

const FLAG: &str = "--forwarder";

/// If this process was started as the forwarder, serves until killed and
/// never returns; otherwise returns at once.
pub fn serve_if_asked() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(FLAG) {
        return;
    }
    let (Some(listen), Some(upstream)) = (args.get(2), args.get(3)) else {
        eprintln!("usage: {FLAG} LISTEN UPSTREAM");
        std::process::exit(2);
    };
    let code = match serve(listen, upstream) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("forwarder: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn serve(listen: &str, upstream: &str) -> Result<()> {
    let upstream: SocketAddr = upstream.parse().context("parsing UPSTREAM")?;
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    // SAFETY: prctl has no memory-safety preconditions.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(upstream) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        pipe(&client, &server);
        pipe(&server, &client);
    }
    Ok(())
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

/// A forwarder child process on 127.0.0.1; killed when dropped.
pub struct Forwarder {
    child: Child,
    /// The port clients connect to.
    pub port: u16,
}

impl Forwarder {
    /// Starts `current_exe --forwarder 127.0.0.1:PORT upstream` and waits
    /// until it accepts connections.
    pub fn start(upstream: SocketAddr) -> Result<Forwarder> {
        let port = super::run::free_port()?;
        let exe = std::env::current_exe().context("finding the bench executable")?;
        let child = Command::new(exe)
            .args([FLAG, &format!("127.0.0.1:{port}"), &upstream.to_string()])
            .stdin(Stdio::null())
            .spawn()
            .context("starting the forwarder process")?;
        let mut forwarder = Forwarder { child, port };
        super::run::wait_listening(&mut forwarder.child, port, Duration::from_secs(10))?;
        Ok(forwarder)
    }

    /// The forwarder's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
