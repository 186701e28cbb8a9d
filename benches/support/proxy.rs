//! copyguard in-process for the end-to-end benches: its own runtime on its
//! own thread, shut down when dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::thread::{self, JoinHandle};

use anyhow::{anyhow, Context, Result};
use copyguard::config::{Config, ConfigArgs};
use copyguard::devdb::DevDb;
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

    /// copyguard in front of `db` with `policy` as its one policy file and
    /// its audit log, both under `work`, and the pseudonymization key file
    /// if given.
    pub fn in_front_of(
        db: &DevDb,
        work: &Path,
        policy: &str,
        pseudonym_key: Option<&Path>,
    ) -> Result<Proxy> {
        Proxy::in_front_of_with(db, work, policy, pseudonym_key, |_| {})
    }

    /// [`in_front_of`](Self::in_front_of) with settings of its own added
    /// by `more`.
    pub fn in_front_of_with(
        db: &DevDb,
        work: &Path,
        policy: &str,
        pseudonym_key: Option<&Path>,
        more: impl FnOnce(&mut ConfigArgs),
    ) -> Result<Proxy> {
        let dir = work.join("policy");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("bench.toml"), policy)?;
        let mut args = ConfigArgs {
            listen: Some("127.0.0.1:0".into()),
            upstream: Some(format!("{}:{}", db.host(), db.port())),
            policy: Some(dir.display().to_string()),
            pseudonym_key_file: pseudonym_key.map(|k| k.display().to_string()),
            audit_path: Some(work.join("audit").join("audit.log").display().to_string()),
            shutdown_timeout: Some("5s".into()),
            ..ConfigArgs::default()
        };
        more(&mut args);
        Proxy::start(Config::load(&args)?)
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
