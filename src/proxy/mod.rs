//! Sessions: the accept loop, connection limits, shutdown, and the phases
//! of one connection (see [`session`]). This is the only module that wires
//! the other parts together.

mod audit;
mod auth;
mod cancel;
mod error;
mod guarded;
mod info;
pub mod relay;
mod session;
mod startups;
mod upstream;
mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use cancel::CancelRegistry;
pub use error::{SessionError, Side};
pub use info::SessionInfo;
pub use workers::SessionRuntimes;

use crate::admin::{self, Health};
use crate::audit::{AuditError, AuditLog};
use crate::catalog::CatalogCache;
use crate::config::{Config, UpstreamTlsMode};
use crate::enforce::RoleBudgets;
use crate::policy::{PolicyError, PolicyStore};
use crate::pseudonym::Pseudonymizer;
use crate::telemetry;
use crate::wire::messages::{ErrorFields, Severity};
use crate::wire::tls::{self, TlsError, UpstreamVerify};

/// A failure to start serving, naming the setting involved.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} (`{key}`): {source}")]
    Bind {
        /// Setting key.
        key: &'static str,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The policy could not be loaded.
    #[error("invalid policy (`policy`):\n{0}")]
    Policy(#[from] PolicyError),
    /// The pseudonymization settings are unusable.
    #[error("pseudonymization (`pseudonym.*`): {0}")]
    Pseudonym(String),
    /// The block log cannot be opened or resumed.
    #[error("block log (`audit.path`): {0}")]
    Audit(#[from] AuditError),
    /// TLS material could not be loaded.
    #[error("invalid TLS material (`{key}`): {source}")]
    Tls {
        /// Setting key.
        key: &'static str,
        /// Cause.
        source: TlsError,
    },
}

/// State shared by all sessions of one server.
pub(crate) struct Shared {
    pub config: Config,
    pub acceptor: Option<TlsAcceptor>,
    pub connector: Option<TlsConnector>,
    pub server_name: ServerName<'static>,
    pub cancels: Arc<CancelRegistry>,
    pub policy: Arc<PolicyStore>,
    pub catalogs: CatalogCache,
    pub budgets: RoleBudgets,
    /// The block log.
    pub audit: AuditLog,
    /// Keyed stand-ins for pseudonymized outputs (`None`: no key
    /// configured).
    pub pseudonymizer: Option<Arc<Pseudonymizer>>,
    /// Checks dump grants presented at startup and counts their uses.
    pub grants: crate::dumps::GrantChecker,
    /// Cancelled when sessions must end now (shutdown grace period over).
    /// Sessions wait on a child token of their own: polling the shared
    /// one locks a mutex every session shares, on every relay wake-up.
    pub force: CancellationToken,
    /// Where production relays move once a session is authenticated
    /// (`COPYGUARD_RUNTIME=split` or `threads`); unset, they stay on the
    /// runtime their session runs on.
    pub relay_runtimes: std::sync::OnceLock<relay::RelayPlacement>,
    /// How many guarded sessions between plain TCP sockets may run on a
    /// thread of their own (`COPYGUARD_GUARDED=threads`); unset, none do.
    pub guarded_threads: std::sync::OnceLock<relay::ThreadSlots>,
    /// The server's runtime: work that outlives a session (a catalog load
    /// other sessions wait for, a cancel request) is spawned here, never
    /// on the runtime of a session on a thread of its own.
    pub runtime: tokio::runtime::Handle,
    /// Connections still starting, per client address.
    pub startups: Arc<startups::Startups>,
    next_id: AtomicU64,
}

impl Shared {
    fn next_session_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A bound proxy, ready to [`Server::run`].
pub struct Server {
    listener: TcpListener,
    admin: Option<TcpListener>,
    shared: Arc<Shared>,
    health: Arc<Health>,
    metrics: PrometheusHandle,
    runtimes: Option<SessionRuntimes>,
}

impl Server {
    /// Loads TLS material and binds the client and admin listeners.
    ///
    /// The policy and TLS material are checked and the addresses bound
    /// before the block log is opened, so a bad policy or a taken port
    /// fails before any file (or audit key) is created.
    pub async fn bind(config: Config) -> Result<Server, ServeError> {
        let policy = Arc::new(PolicyStore::load(&config.policy)?);
        for w in policy.current().warnings() {
            warn!(warning = %w, "policy warning");
        }
        let acceptor = match &config.tls.cert_key {
            Some((cert, key)) => Some(TlsAcceptor::from(tls::server_config(cert, key).map_err(
                |source| ServeError::Tls {
                    key: "tls.cert",
                    source,
                },
            )?)),
            None => None,
        };
        let verify = match config.upstream_tls.mode {
            UpstreamTlsMode::Disable => None,
            UpstreamTlsMode::Require => Some(UpstreamVerify::None),
            UpstreamTlsMode::VerifyFull => Some(UpstreamVerify::Full {
                ca: config.upstream_tls.ca.clone().unwrap_or_default(),
            }),
        };
        let connector = match verify {
            Some(v) => Some(TlsConnector::from(tls::client_config(&v).map_err(
                |source| ServeError::Tls {
                    key: "upstream_tls.ca",
                    source,
                },
            )?)),
            None => None,
        };
        let server_name =
            ServerName::try_from(config.upstream_tls.server_name.clone()).map_err(|e| {
                ServeError::Tls {
                    key: "upstream_tls.server_name",
                    source: TlsError::Rustls(rustls::Error::General(e.to_string())),
                }
            })?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    key: "listen",
                    addr: config.listen,
                    source,
                })?;
        let admin = match config.admin {
            Some(addr) => Some(admin::bind(addr).await.map_err(|source| ServeError::Bind {
                key: "admin",
                addr,
                source,
            })?),
            None => None,
        };
        let audit = {
            let cfg = config.audit.clone();
            tokio::task::spawn_blocking(move || AuditLog::open(&cfg))
                .await
                .map_err(|e| AuditError::Unavailable {
                    reason: e.to_string(),
                })??
        };
        let catalogs = CatalogCache::new(config.limits.catalog_refresh);
        let pseudonymizer = match &config.pseudonym {
            Some(c) => {
                let p = Arc::new(
                    Pseudonymizer::new(&c.key, c.settings.clone())
                        .map_err(|e| ServeError::Pseudonym(e.to_string()))?,
                );
                let warm = p.clone();
                tokio::task::spawn_blocking(move || warm.warm_up());
                info!(
                    key_id = p.key_id(),
                    key = p.key_fingerprint(),
                    "pseudonymization key loaded"
                );
                Some(p)
            }
            None => None,
        };
        let grants = crate::dumps::GrantChecker::new(
            config.grant_keys.clone(),
            Arc::new(crate::state::LocalGrantUses::new(config.grant_use_grace)),
        );
        let shared = Arc::new(Shared {
            grants,
            config,
            acceptor,
            connector,
            server_name,
            cancels: Arc::new(CancelRegistry::default()),
            catalogs,
            policy,
            budgets: RoleBudgets::default(),
            audit: audit.clone(),
            pseudonymizer,
            force: CancellationToken::new(),
            relay_runtimes: std::sync::OnceLock::new(),
            guarded_threads: std::sync::OnceLock::new(),
            runtime: tokio::runtime::Handle::current(),
            startups: Arc::default(),
            next_id: AtomicU64::new(0),
        });
        let health = Health::new(audit).with_upstream(
            shared.config.upstream_addr(),
            shared.config.limits.connect_timeout,
        );
        Ok(Server {
            listener,
            admin,
            shared,
            health: Arc::new(health),
            metrics: telemetry::metrics_handle(),
            runtimes: None,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The policy in force, for hot reload (`PolicyStore::reload`).
    pub fn policy_store(&self) -> Arc<PolicyStore> {
        self.shared.policy.clone()
    }

    /// The block log, for records made outside sessions (policy reloads).
    pub fn audit(&self) -> AuditLog {
        self.shared.audit.clone()
    }

    /// The admin HTTP address, if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Runs sessions on `runtimes` (single-thread runtimes, one per core)
    /// instead of the runtime that calls [`Server::run`], which then only
    /// accepts, serves the admin endpoint and writes the block log.
    pub fn with_session_runtimes(mut self, runtimes: SessionRuntimes) -> Server {
        self.runtimes = Some(runtimes);
        self
    }

    /// Moves every production relay between plain TCP sockets onto
    /// `runtimes` (single-thread runtimes, one per core) once its session
    /// is authenticated; sessions themselves, guarded ones included, stay
    /// on the runtime that calls [`Server::run`].
    pub fn with_relay_runtimes(self, runtimes: SessionRuntimes) -> Server {
        let _ = self
            .shared
            .relay_runtimes
            .set(relay::RelayPlacement::Runtimes(runtimes));
        self
    }

    /// Runs each production relay between plain TCP sockets on two
    /// blocking threads of its own (one per direction) once its session
    /// is authenticated, as the zero-work forwarder does, while fewer than
    /// `threads`' limit of relays run so; the others stay on the
    /// session's runtime.
    pub fn with_relay_threads(self, threads: relay::RelayThreads) -> Server {
        let _ = self
            .shared
            .relay_runtimes
            .set(relay::RelayPlacement::Threads(threads));
        self
    }

    /// Runs each guarded session between plain TCP sockets, once it is
    /// authenticated, on two threads of its own, one per half, each with a
    /// single-thread runtime, while fewer than `max` run so; the others
    /// stay on the runtime that calls [`Server::run`]. Each thread so
    /// wakes one peer, as the relay threads do
    /// ([`Server::with_relay_threads`], a limit of its own, whose spawner
    /// starts these threads too).
    pub fn with_guarded_threads(self, max: usize) -> Server {
        let _ = self
            .shared
            .guarded_threads
            .set(relay::ThreadSlots::new(max));
        self
    }

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// sessions finish for `limits.shutdown_timeout`, and closes the rest.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            admin,
            shared,
            health,
            metrics,
            runtimes,
        } = self;
        let admin_task = admin.map(|l| tokio::spawn(admin::serve(l, metrics, health.clone())));
        let limit = Arc::new(Semaphore::new(shared.config.limits.max_connections));
        let sessions = TaskTracker::new();
        info!(
            listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            upstream = %shared.config.upstream_addr(),
            "copyguard serving"
        );
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        metrics::counter!(telemetry::CONNECTIONS).increment(1);
                        let per_client = shared.config.limits.max_startups_per_client;
                        match limit.clone().try_acquire_owned() {
                            Ok(permit) => {
                                let Some(starting) = shared.startups.take(peer.ip(), per_client) else {
                                    warn!(
                                        peer = %peer,
                                        max_startups_per_client = per_client,
                                        "connection refused: too many connections from this address still starting (53300)"
                                    );
                                    drop(permit);
                                    sessions.spawn(refuse(tcp, Refusal::StartingFromAddress));
                                    continue;
                                };
                                let shared = shared.clone();
                                let (limit, max) = (limit.clone(), shared.config.limits.max_connections);
                                let done = move || {
                                    drop(permit);
                                    if limit.available_permits() == max {
                                        tokio::task::spawn_blocking(release_memory);
                                    }
                                };
                                match &runtimes {
                                    None => {
                                        sessions.spawn(async move {
                                            session::run(shared, tcp, peer, starting).await;
                                            done();
                                        });
                                    }
                                    Some(pool) => match tcp.into_std() {
                                        Ok(std) => {
                                            let (handle, task) = pool.place(move || async move {
                                                if let Ok(tcp) = TcpStream::from_std(std) {
                                                    session::run(shared, tcp, peer, starting).await;
                                                }
                                                done();
                                            });
                                            sessions.spawn_on(task, &handle);
                                        }
                                        Err(e) => warn!(error = %e, "cannot hand the connection to a session runtime"),
                                    },
                                }
                            }
                            Err(_) => {
                                warn!(
                                    peer = %peer,
                                    max_connections = shared.config.limits.max_connections,
                                    "connection refused: too many clients (53300)"
                                );
                                sessions.spawn(refuse(tcp, Refusal::TooMany));
                            }
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        health.set_draining();
        drop(listener);
        sessions.close();
        let grace = shared.config.limits.shutdown_timeout;
        info!(
            sessions = sessions.len(),
            grace_seconds = grace.as_secs_f64(),
            "shutting down"
        );
        if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
            warn!(
                sessions = sessions.len(),
                "grace period over, cancelling queries and closing sessions"
            );
            cancel_in_flight(&shared).await;
            shared.force.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), sessions.wait()).await;
        }
        if let Some(pool) = runtimes {
            let _ = tokio::task::spawn_blocking(move || drop(pool)).await;
        }
        shared.audit.shutdown().await;
        if let Some(task) = admin_task {
            task.abort();
        }
        info!("copyguard stopped");
    }
}

/// Sends the upstream a CancelRequest for every live session, so queries
/// still running when the grace period ends stop with their sessions
/// (closing a connection alone leaves PostgreSQL running the query until
/// it next writes). Waits for the server to take them, briefly.
async fn cancel_in_flight(shared: &Arc<Shared>) {
    let keys = shared.cancels.upstream_keys();
    if keys.is_empty() {
        return;
    }
    let mut sent = tokio::task::JoinSet::new();
    for key in keys {
        let shared = shared.clone();
        sent.spawn(async move { upstream::send_cancel(&shared, &key).await });
    }
    let count = sent.len();
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        let mut failed = 0usize;
        while let Some(done) = sent.join_next().await {
            if !matches!(done, Ok(Ok(()))) {
                failed += 1;
            }
        }
        failed
    })
    .await;
    match waited {
        Ok(0) => info!(sessions = count, "in-flight queries cancelled upstream"),
        Ok(failed) => warn!(
            sessions = count,
            failed, "some cancel requests were not delivered upstream"
        ),
        Err(_) => warn!(
            sessions = count,
            "cancel requests still pending; closing anyway"
        ),
    }
}

/// Returns freed heap pages to the system once the last session has
/// closed: glibc keeps them otherwise, and a burst of sessions would hold
/// its peak memory for the life of the process.
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims glibc's own heap state,
    // under its own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Why a connection is refused at accept.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// Every connection slot is taken.
    TooMany,
    /// The client's address has its share of connections still starting.
    StartingFromAddress,
}

async fn refuse(mut tcp: TcpStream, why: Refusal) {
    use tokio::io::AsyncWriteExt;
    let (reason, message, hint) = match why {
        Refusal::TooMany => (
            "too_many",
            "sorry, too many clients already",
            "The limit is the limits.max_connections setting of copyguard.",
        ),
        Refusal::StartingFromAddress => (
            "starting_from_address",
            "sorry, too many connections from this address are still starting",
            "Connections that have not finished logging in are limited per client address by the limits.max_startups_per_client setting of copyguard.",
        ),
    };
    metrics::counter!(telemetry::CONNECTIONS_REFUSED, "reason" => reason).increment(1);
    let msg = ErrorFields::new(Severity::Fatal, "53300", message)
        .with_hint(hint)
        .encode();
    // A flood of refused connections must not pile up sockets waiting for
    // their first bytes: past a few dozen, they get the error at once.
    if DECLINING.fetch_add(1, Ordering::Relaxed) < MAX_DECLINING {
        decline_encryption(&mut tcp).await;
    }
    DECLINING.fetch_sub(1, Ordering::Relaxed);
    let _ = tcp.write_all(&msg).await;
    let _ = tcp.shutdown().await;
}

/// Refused connections waiting for an encryption request to decline.
static DECLINING: AtomicUsize = AtomicUsize::new(0);
/// At most this many refused connections wait for one at a time.
const MAX_DECLINING: usize = 64;

/// Answers an SSLRequest or GSSENCRequest the client opens with by "N",
/// waiting a moment for it, as PostgreSQL does before it refuses a login:
/// libpq shows the error sent after that, where one sent in place of the
/// answer is "server sent an error response during SSL exchange".
async fn decline_encryption(tcp: &mut TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const WAIT: Duration = Duration::from_secs(1);
    let mut first = [0u8; 8];
    let read = tokio::time::timeout(WAIT, tcp.read_exact(&mut first)).await;
    let asks_encryption = matches!(read, Ok(Ok(_)))
        && first[..4] == 8u32.to_be_bytes()
        && matches!(
            u32::from_be_bytes([first[4], first[5], first[6], first[7]]),
            crate::wire::SSL_REQUEST_CODE | crate::wire::GSSENC_REQUEST_CODE
        );
    if asks_encryption && tcp.write_all(b"N").await.is_ok() {
        let mut startup = [0u8; 8];
        let _ = tokio::time::timeout(WAIT, tcp.read(&mut startup)).await;
    }
}
