//! One client connection, as a sequence of phases:
//!
//! 1. **negotiate**: SSLRequest / GSSENCRequest answered, TLS accepted, up
//!    to a StartupMessage or a CancelRequest;
//! 2. **establish**: the session recorded ([`SessionInfo`]), the upstream
//!    connected, negotiation and authentication relayed;
//! 3. **relay**: the production relay until either side closes.
//!
//! Startup phases run under `limits.startup_timeout`; an error in them is
//! reported to the client as a FATAL ErrorResponse with its SQLSTATE.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpStream;
use tracing::{info, warn, Instrument};

use super::auth::{self, ProtocolPlan, Started};
use super::relay::{Relay, RelayEnd};
use super::startups::StartupSlot;
use super::{audit, guarded, upstream, SessionError, SessionInfo, Shared};
use crate::audit::{Event, SessionTotals};
use crate::config::ClientTlsMode;
use crate::dumps::{self, GrantedSession};
use crate::enforce;
use crate::policy::{Block, ClassMode, RoleClass};
use crate::telemetry;
use crate::wire::{Conn, InitialPacket, StartupMessage, Stream, WireError, MAX_STARTUP_PACKET_LEN};

/// What the client opened the connection for.
enum Opening {
    Startup(StartupMessage),
    Cancel { pid: i32, secret: bytes::Bytes },
}

/// Runs a client connection to its end; `starting` is held until the
/// session is established or fails to be.
pub(crate) async fn run(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    starting: StartupSlot,
) {
    let _ = tcp.set_nodelay(true);
    let id = shared.next_session_id();
    let span = tracing::info_span!("session", id, %peer);
    async move {
        let deadline = tokio::time::Instant::now() + shared.config.limits.startup_timeout;
        let negotiated = tokio::time::timeout_at(deadline, negotiate(&shared, tcp)).await;
        let (mut client, opening) = match negotiated {
            Ok(Some(pair)) => pair,
            Ok(None) => return,
            Err(_) => {
                warn!("startup packet not received in time");
                return;
            }
        };
        let startup = match opening {
            Opening::Cancel { pid, secret } => return cancel(&shared, pid, secret).await,
            Opening::Startup(startup) => startup,
        };
        let established =
            tokio::time::timeout_at(deadline, establish(&shared, &mut client, peer, id, startup))
                .await
                .unwrap_or(Err(SessionError::StartupTimeout));
        drop(starting);
        match established {
            Ok(session) => relay(&shared, client, session).await,
            Err(err) => fail(&mut client, err).await,
        }
    }
    .instrument(span)
    .await
}

/// Phase 1: SSL/GSS negotiation up to a StartupMessage or CancelRequest.
/// Reports its own errors; `None` means the connection is over.
async fn negotiate(shared: &Shared, tcp: TcpStream) -> Option<(Conn<Stream>, Opening)> {
    let max = shared.config.limits.max_message_size;
    let mut conn = Conn::new(Stream::Plain(tcp), max);
    let mut ssl_answered = false;
    let mut gss_answered = false;
    loop {
        let packet = match conn.read_untagged(MAX_STARTUP_PACKET_LEN).await {
            Ok(Some(p)) => p,
            Ok(None) => return None,
            Err(e) => {
                fail(&mut conn, startup_error(e)).await;
                return None;
            }
        };
        let packet = match InitialPacket::parse(packet) {
            Ok(p) => p,
            Err(e) => {
                fail(&mut conn, SessionError::Client(e)).await;
                return None;
            }
        };
        match packet {
            InitialPacket::SslRequest if !ssl_answered && !conn.get_ref().is_tls() => {
                ssl_answered = true;
                let Some(acceptor) = &shared.acceptor else {
                    conn.send(b"N").await.ok()?;
                    continue;
                };
                if conn.buffered() > 0 {
                    let err = SessionError::ClientProtocol(
                        "received unencrypted data after SSL request".into(),
                    );
                    fail(&mut conn, err).await;
                    return None;
                }
                conn.send(b"S").await.ok()?;
                let (stream, _) = conn.into_parts();
                let tcp = stream.into_plain()?;
                match acceptor.accept(tcp).await {
                    Ok(tls) => conn = Conn::new(Stream::ServerTls(Box::new(tls)), max),
                    Err(e) => {
                        warn!(error = %SessionError::ClientTls(e), "session failed");
                        return None;
                    }
                }
            }
            InitialPacket::GssEncRequest if !gss_answered && !conn.get_ref().is_tls() => {
                gss_answered = true;
                conn.send(b"N").await.ok()?;
            }
            InitialPacket::SslRequest | InitialPacket::GssEncRequest => {
                let err = SessionError::ClientProtocol("repeated encryption request".into());
                fail(&mut conn, err).await;
                return None;
            }
            InitialPacket::Cancel { pid, secret } => {
                return Some((conn, Opening::Cancel { pid, secret }))
            }
            InitialPacket::Startup(s) => return Some((conn, Opening::Startup(s))),
        }
    }
}

/// Errors while reading a startup-phase packet: an oversized one is a
/// protocol violation like in PostgreSQL, not a configured-limit error.
fn startup_error(e: WireError) -> SessionError {
    match e {
        WireError::TooLarge { len, .. } => {
            SessionError::ClientProtocol(format!("invalid length of startup packet: {len}"))
        }
        WireError::InvalidLength(len) => {
            SessionError::ClientProtocol(format!("invalid length of startup packet: {len}"))
        }
        other => SessionError::Client(other),
    }
}

/// Records a guarded login refused by `b` in the block log (a
/// `session_refused` record: the rule, the reason, the startup parameters,
/// no statement); the error the client is told (a FATAL with the rule and
/// the reason).
async fn refuse_login(
    shared: &Shared,
    info: &SessionInfo,
    class: &RoleClass,
    b: Block,
) -> SessionError {
    let rule = b.rule.id();
    warn!(user = %info.user, rule, reason = %b.reason, "guarded login refused");
    metrics::counter!(telemetry::VERDICTS, "verdict" => "block", "rule" => rule).increment(1);
    let fields = audit::session_fields(info, class);
    let ev = Event::session_refused(&fields, rule, &b.reason, &info.startup_params);
    if let Err(e) = shared.audit.record(ev).await {
        warn!(error = %e, "refused session not recorded in the block log");
    }
    SessionError::Policy {
        rule: b.rule,
        reason: b.reason,
    }
}

/// A session ready to relay.
struct Established {
    info: SessionInfo,
    class: Arc<RoleClass>,
    upstream: Conn<Stream>,
    started: Started,
    /// The dump grant the session was admitted with; its use ends when
    /// this is dropped.
    granted: Option<GrantedSession>,
}

/// Phase 2: record the session, classify its role, connect upstream,
/// relay authentication.
async fn establish(
    shared: &Shared,
    client: &mut Conn<Stream>,
    peer: SocketAddr,
    id: u64,
    mut startup: StartupMessage,
) -> Result<Established, SessionError> {
    let tls = client.get_ref().is_tls();
    if shared.config.tls.mode == ClientTlsMode::Require && !tls {
        return Err(SessionError::TlsRequired);
    }
    let token = dumps::take_grant(&mut startup.params);
    if !matches!(token, Ok(None)) {
        startup.raw = StartupMessage::encode(startup.minor, &startup.params);
    }
    let mut info =
        SessionInfo::from_startup(id, peer, tls, &startup).ok_or(SessionError::NoUser)?;
    let policy = shared.policy.current();
    let mut class = policy.classify_role(&info.user);
    let mut granted = None;
    if class.mode == ClassMode::Guarded {
        let admitted = match token {
            Ok(None) => Ok(None),
            Ok(Some(t)) => shared
                .grants
                .admit(&t, &info.user, &info.database, &policy)
                .map(Some)
                .map_err(|e| (e, dumps::GrantChecker::claimed_id(&t))),
            Err(e) => Err((e, None)),
        };
        match admitted {
            Ok(Some(session)) => {
                class = Arc::new(dumps::granted_class(&class, &session.dump_scope()));
                granted = Some(session);
            }
            Ok(None) => {}
            Err((e, claimed)) => {
                let (rule, reason) = (e.rule(), e.to_string());
                warn!(user = %info.user, rule, %reason, "dump grant refused");
                metrics::counter!(telemetry::VERDICTS, "verdict" => "block", "rule" => rule)
                    .increment(1);
                let fields = audit::session_fields(&info, &class);
                let ev =
                    Event::grant_refused(&fields, rule, &reason, &info.startup_params, claimed);
                if let Err(e) = shared.audit.record(ev).await {
                    warn!(error = %e, "refused grant not recorded in the block log");
                }
                return Err(SessionError::Grant(e));
            }
        }
    }
    let guarded = class.mode == ClassMode::Guarded;
    if guarded {
        if let Err(b) = enforce::check_startup(&info.startup_params, info.replication.is_some()) {
            return Err(refuse_login(shared, &info, &class, b).await);
        }
    }
    let plan = ProtocolPlan::new(&startup);
    let stream = upstream::connect(shared).await?;
    let mut upstream = Conn::new(stream, usize::MAX);
    upstream
        .send(&plan.startup)
        .await
        .map_err(SessionError::Upstream)?;
    let started =
        match auth::relay_startup(shared, client, &mut upstream, &plan, &mut info, guarded).await {
            Err(SessionError::Policy { rule, reason }) => {
                let b = Block::new(rule, reason);
                return Err(refuse_login(shared, &info, &class, b).await);
            }
            started => started?,
        };
    Ok(Established {
        info,
        class,
        upstream,
        started,
        granted,
    })
}

/// Phase 3: relay until either side closes or shutdown forces an end:
/// production roles through the raw relay, every other role through the
/// guarded relay.
async fn relay(shared: &Arc<Shared>, mut client: Conn<Stream>, session: Established) {
    let Established {
        info,
        class,
        upstream,
        started,
        granted,
    } = session;
    let guarded = class.mode == ClassMode::Guarded;
    info!(
        class = %class.name,
        guarded,
        user = %info.user,
        database = %info.database,
        application_name = info.application_name.as_deref().unwrap_or(""),
        tls = info.tls,
        replication = info.replication.as_deref().unwrap_or(""),
        protocol = %format_args!("3.{}", info.protocol_minor),
        "session started"
    );
    let since = Instant::now();
    let fields = audit::session_fields(&info, &class);
    if guarded {
        if let Err(e) = shared.audit.record(Event::session_start(&fields)).await {
            warn!(error = %e, "guarded session refused: the block log cannot be written");
            let mut err = audit::unavailable(&e);
            err.severity = crate::wire::messages::Severity::Fatal;
            let _ = client.send(&err.encode()).await;
            return;
        }
    } else {
        shared.audit.submit(Event::session_start(&fields));
    }
    if let Some(g) = &granted {
        let ev = g.use_event(&fields);
        if let Err(e) = shared.audit.record(ev).await {
            warn!(error = %e, "granted session refused: the block log cannot be written");
            let mut err = audit::unavailable(&e);
            err.severity = crate::wire::messages::Severity::Fatal;
            let _ = client.send(&err.encode()).await;
            return;
        }
    }
    metrics::gauge!(telemetry::SESSIONS_ACTIVE).increment(1.0);
    let (outcome, stats, relay, totals) = if guarded {
        let (outcome, totals, stats) = guarded::run_placed(
            shared.clone(),
            client,
            upstream,
            &info,
            class.clone(),
            started.upstream_key.clone(),
            fields.clone(),
        )
        .await;
        (outcome, stats, None, totals)
    } else {
        let max = shared.config.limits.max_message_size;
        let (client, client_buf) = client.into_parts();
        let (server, server_buf) = upstream.into_parts();
        let mut relay = Relay::new(client, client_buf, server, server_buf, max);
        if shared.audit.records_production_statements() {
            let (audit, fields) = (shared.audit.clone(), fields.clone());
            relay = relay.with_statements(Box::new(move |sql| {
                audit.production_statement(&fields, sql);
            }));
        }
        let (outcome, relay) = relay
            .run(shared.force.child_token(), shared.relay_runtimes.get())
            .await;
        let stats = relay.as_ref().map(Relay::stats).unwrap_or_default();
        let totals = SessionTotals {
            statements: stats.statements_up,
            rows: stats.rows_down,
            bytes: stats.bytes_down,
            ..SessionTotals::default()
        };
        (outcome, stats, relay, totals)
    };
    let totals = SessionTotals {
        duration: since.elapsed(),
        ..totals
    };
    if guarded {
        if let Err(e) = shared
            .audit
            .record(Event::session_end(&fields, totals))
            .await
        {
            warn!(error = %e, "session end not recorded in the block log");
        }
    } else {
        shared.audit.submit(Event::session_end(&fields, totals));
    }
    let secs = since.elapsed().as_secs_f64();
    metrics::gauge!(telemetry::SESSIONS_ACTIVE).decrement(1.0);
    metrics::histogram!(telemetry::SESSION_DURATION).record(secs);
    drop(started.cancel);
    drop(granted);
    let end = match &outcome {
        Ok(RelayEnd::ClientClosed) => "client closed".to_owned(),
        Ok(RelayEnd::ServerClosed) => "server closed".to_owned(),
        Err(e) => e.to_string(),
    };
    info!(
        seconds = secs,
        bytes_up = stats.bytes_up,
        bytes_down = stats.bytes_down,
        messages_up = stats.messages_up,
        messages_down = stats.messages_down,
        end = %end,
        "session ended"
    );
    if let Err(err) = outcome {
        metrics::counter!(telemetry::SESSION_ERRORS, "side" => err.side().as_str()).increment(1);
        if let Some(relay) = relay {
            match err.to_client() {
                Some(fields) => relay.close_with(&fields.encode()).await,
                None => relay.close_with(&[]).await,
            }
        }
    }
}

/// Forwards a cancel request whose key is live; drops it silently otherwise.
async fn cancel(shared: &Shared, pid: i32, secret: bytes::Bytes) {
    let Some(key) = shared.cancels.lookup(pid, &secret) else {
        metrics::counter!(telemetry::CANCEL_REQUESTS, "outcome" => "unknown_key").increment(1);
        return;
    };
    match upstream::send_cancel(shared, &key).await {
        Ok(()) => {
            metrics::counter!(telemetry::CANCEL_REQUESTS, "outcome" => "forwarded").increment(1)
        }
        Err(e) => {
            metrics::counter!(telemetry::CANCEL_REQUESTS, "outcome" => "failed").increment(1);
            warn!(error = %e, "cancel request not delivered");
        }
    }
}

/// Logs a failed startup and tells the client why, when it can be told.
async fn fail(client: &mut Conn<Stream>, err: SessionError) {
    metrics::counter!(telemetry::SESSION_ERRORS, "side" => err.side().as_str()).increment(1);
    if let SessionError::Refused { code, message } = &err {
        info!(code = %code, message = %message, "upstream refused the session");
    } else {
        warn!(side = err.side().as_str(), error = %err, "session failed");
    }
    if let Some(fields) = err.to_client() {
        let _ = client.send(&fields.encode()).await;
    }
}
