//! The admin HTTP endpoint: `GET /metrics` (Prometheus text format),
//! `GET /healthz` (liveness: the process serves and can write its block
//! log) and `GET /readyz` (readiness: also the upstream server answers).
//! Deliberately tiny: one request per connection, GET only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::audit::AuditLog;

/// How long a readiness probe's answer is reused: a burst of `/readyz`
/// requests costs one connection to the upstream.
const PROBE_CACHE: Duration = Duration::from_secs(1);
/// The longest a readiness probe waits for the upstream.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Shared health state reported by `/healthz` and `/readyz`.
#[derive(Debug)]
pub struct Health {
    draining: AtomicBool,
    audit: AuditLog,
    upstream: Option<String>,
    probe_timeout: Duration,
    last_probe: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Health {
    /// Health that also reports whether the block log can be written.
    pub fn new(audit: AuditLog) -> Health {
        Health {
            draining: AtomicBool::new(false),
            audit,
            upstream: None,
            probe_timeout: PROBE_TIMEOUT,
            last_probe: tokio::sync::Mutex::new(None),
        }
    }

    /// Readiness also requires the PostgreSQL server at `addr`
    /// (`host:port`) to answer, probed within `timeout` (at most 2 s).
    pub fn with_upstream(mut self, addr: String, timeout: Duration) -> Health {
        self.upstream = Some(addr);
        self.probe_timeout = timeout.min(PROBE_TIMEOUT);
        self
    }

    /// Marks the proxy as shutting down: `/healthz` answers 503.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    fn status(&self) -> (u16, String) {
        if self.draining.load(Ordering::Relaxed) {
            (503, "draining\n".to_owned())
        } else if !self.audit.healthy() {
            let why = self.audit.last_error().unwrap_or_default();
            (
                503,
                format!("block log unavailable, guarded statements refused: {why}\n"),
            )
        } else {
            (200, "ok\n".to_owned())
        }
    }

    /// `/readyz`: live, and the upstream answers a probe (answers are
    /// cached for a second).
    async fn readiness(&self) -> (u16, String) {
        let (code, body) = self.status();
        if code != 200 {
            return (code, body);
        }
        let Some(addr) = &self.upstream else {
            return (200, "ready\n".to_owned());
        };
        let mut last = self.last_probe.lock().await;
        let outcome = match &*last {
            Some((at, outcome)) if at.elapsed() < PROBE_CACHE => outcome.clone(),
            _ => {
                let outcome = probe(addr, self.probe_timeout).await;
                *last = Some((Instant::now(), outcome.clone()));
                outcome
            }
        };
        match outcome {
            Ok(()) => (200, "ready\n".to_owned()),
            Err(why) => (503, format!("upstream {addr} unreachable: {why}\n")),
        }
    }
}

/// Whether a PostgreSQL server answers at `addr`: a TCP connection and an
/// SSLRequest answered `S` or `N`, then closed before any startup packet
/// (the server logs nothing for it and starts no session).
async fn probe(addr: &str, timeout: Duration) -> Result<(), String> {
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 4, 210, 22, 47];
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(&SSL_REQUEST).await?;
        let answer = tcp.read_u8().await?;
        Ok::<u8, std::io::Error>(answer)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(b'S' | b'N')) => Ok(()),
        Ok(Ok(other)) => Err(format!("not a PostgreSQL server (answered {other:#04x})")),
    }
}

/// Serves the admin endpoint on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: PrometheusHandle, health: Arc<Health>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let handled =
                tokio::time::timeout(Duration::from_secs(10), respond(stream, &metrics, &health))
                    .await;
            if !matches!(handled, Ok(Ok(()))) {
                tracing::debug!(%peer, "admin request failed");
            }
        });
    }
}

async fn respond(
    mut stream: TcpStream,
    metrics: &PrometheusHandle,
    health: &Health,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
        if n == buf.len() {
            return reply(&mut stream, 431, "text/plain", "request too large\n").await;
        }
        let read = stream.read(&mut buf[n..]).await?;
        if read == 0 {
            return Ok(());
        }
        n += read;
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let body = crate::telemetry::render(metrics);
            reply(&mut stream, 200, "text/plain; version=0.0.4", &body).await
        }
        ("GET", "/healthz") => {
            let (code, body) = health.status();
            reply(&mut stream, code, "text/plain", &body).await
        }
        ("GET", "/readyz") => {
            let (code, body) = health.readiness().await;
            reply(&mut stream, code, "text/plain", &body).await
        }
        ("GET", _) => reply(&mut stream, 404, "text/plain", "not found\n").await,
        _ => reply(&mut stream, 405, "text/plain", "method not allowed\n").await,
    }
}

async fn reply(stream: &mut TcpStream, code: u16, ctype: &str, body: &str) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
