//! copyguard in-process for the end-to-end benches: its own runtime on its
//! own thread, shut down when dropped.

use std::net::SocketAddr;
use std::thread::{self, JoinHandle};

use anyhow::{anyhow, Context, Result};
use copyguard::config::Config;
use copyguard::proxy::Server;

/// A running in-process copyguard.
pub struct Proxy {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Binds and serves `config` on a thread of its own.
    pub fn start(config: Config) -> Result<Proxy> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = thread::Builder::new()
            .name("copyguard".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .thread_name("copyguard")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow!("building a runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let server = match Server::bind(config).await {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(server.local_addr()));
                    server
                        .run(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
            })
            .context("spawning the copyguard thread")?;
        let addr = ready_rx
            .recv()
            .map_err(|_| anyhow!("copyguard thread ended before serving"))?
            .context("starting copyguard")?;
        println!("copyguard (in-process) on {addr}");
        Ok(Proxy {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
