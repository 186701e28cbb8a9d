//! The startup phase after the StartupMessage: protocol negotiation and
//! authentication relayed between client and server, up to the first
//! ReadyForQuery.
//!
//! Authentication is the server's: copyguard relays cleartext, md5 and
//! SCRAM exchanges untouched, with two adjustments. It never offers
//! `SCRAM-SHA-256-PLUS` to the client, because channel binding ties the
//! exchange to a TLS connection copyguard terminates. And when both legs
//! are TLS, a relayed SCRAM exchange cannot succeed (the client, seeing no
//! PLUS mechanism over TLS, declares "I could bind but you can't", which a
//! TLS-enabled server rejects as a downgrade); in that case copyguard asks
//! the client for its password over the encrypted client connection and
//! runs SCRAM-SHA-256 with the server itself.

use bytes::{Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;

use super::cancel::{Registration, UpstreamKey};
use super::{SessionError, SessionInfo, Shared};
use crate::telemetry;
use crate::wire::messages::{self, AuthRequest};
use crate::wire::{tag, Conn, Frame, StartupMessage, Stream};

/// Highest protocol minor version copyguard speaks (3.2).
pub const MAX_MINOR: u16 = 2;

const SCRAM_PLUS: &str = "SCRAM-SHA-256-PLUS";

/// What the server is sent at startup, and what was held back.
#[derive(Debug)]
pub(crate) struct ProtocolPlan {
    requested_minor: u16,
    sent_minor: u16,
    unsupported: Vec<String>,
    /// The StartupMessage to send upstream: the client's own bytes when
    /// nothing had to change.
    pub startup: Bytes,
}

impl ProtocolPlan {
    /// Caps the minor version at [`MAX_MINOR`] and withholds every `_pq_.`
    /// protocol extension, which copyguard does not implement.
    pub fn new(msg: &StartupMessage) -> ProtocolPlan {
        let unsupported: Vec<String> = msg
            .params
            .iter()
            .filter(|(k, _)| k.starts_with("_pq_."))
            .map(|(k, _)| k.clone())
            .collect();
        let sent_minor = msg.minor.min(MAX_MINOR);
        let startup = if unsupported.is_empty() && sent_minor == msg.minor {
            msg.raw.clone()
        } else {
            let kept: Vec<(String, String)> = msg
                .params
                .iter()
                .filter(|(k, _)| !k.starts_with("_pq_."))
                .cloned()
                .collect();
            StartupMessage::encode(sent_minor, &kept)
        };
        ProtocolPlan {
            requested_minor: msg.minor,
            sent_minor,
            unsupported,
            startup,
        }
    }
}

/// The outcome of a successful startup.
#[derive(Debug)]
pub(crate) struct Started {
    /// The client's cancel key (absent if the server issued none).
    pub cancel: Option<Registration>,
    /// The upstream backend's own key, for cancels copyguard sends itself.
    pub upstream_key: Option<UpstreamKey>,
}

/// Relays negotiation and authentication until the server's first
/// ReadyForQuery has been passed to the client. A `guarded` session whose
/// server settings would make the server read SQL text differently from
/// the analysis (`setting.lexer`) is refused before that ReadyForQuery:
/// [`SessionError::Policy`], which the client is told.
pub(crate) async fn relay_startup(
    shared: &Shared,
    client: &mut Conn<Stream>,
    upstream: &mut Conn<Stream>,
    plan: &ProtocolPlan,
    info: &mut SessionInfo,
    guarded: bool,
) -> Result<Started, SessionError> {
    let mut first = true;
    let mut cancel = None;
    let mut upstream_key = None;
    loop {
        let frame = upstream
            .expect_frame()
            .await
            .map_err(SessionError::Upstream)?;
        if first {
            first = false;
            let negotiated = if frame.tag() == tag::NEGOTIATE_PROTOCOL_VERSION {
                Some(
                    messages::parse_negotiate_protocol_version(&frame)
                        .map_err(SessionError::Upstream)?,
                )
            } else {
                None
            };
            negotiate_with_client(client, plan, negotiated.as_ref(), info).await?;
            if negotiated.is_some() {
                continue;
            }
        }
        match frame.tag() {
            tag::AUTHENTICATION => {
                authenticate_step(client, upstream, &frame, info).await?;
            }
            tag::BACKEND_KEY_DATA => {
                let (pid, secret) =
                    messages::parse_backend_key_data(&frame).map_err(SessionError::Upstream)?;
                let len = if info.protocol_minor >= 2 { 32 } else { 4 };
                let key = UpstreamKey { pid, secret };
                upstream_key = Some(key.clone());
                let reg = shared.cancels.register(key, len);
                to_client(client, &messages::backend_key_data(reg.pid(), reg.secret())).await?;
                cancel = Some(reg);
            }
            tag::PARAMETER_STATUS => {
                let param =
                    messages::parse_parameter_status(&frame).map_err(SessionError::Upstream)?;
                info.server_params.push(param);
                to_client(client, frame.as_bytes()).await?;
            }
            tag::NOTICE_RESPONSE => to_client(client, frame.as_bytes()).await?,
            tag::ERROR_RESPONSE => return Err(refused(client, &frame).await),
            tag::READY_FOR_QUERY => {
                if guarded {
                    for (name, value) in &info.server_params {
                        if let Err(b) = crate::enforce::check_reported_setting(name, value) {
                            return Err(SessionError::Policy {
                                rule: b.rule,
                                reason: b.reason,
                            });
                        }
                    }
                }
                to_client(client, frame.as_bytes()).await?;
                client.flush().await.map_err(SessionError::Client)?;
                return Ok(Started {
                    cancel,
                    upstream_key,
                });
            }
            other => {
                return Err(SessionError::UpstreamProtocol(format!(
                    "unexpected message {:?} during startup",
                    other as char
                )))
            }
        }
    }
}

/// Tells the client what was negotiated, if it differs from its request.
async fn negotiate_with_client(
    client: &mut Conn<Stream>,
    plan: &ProtocolPlan,
    server: Option<&(u16, Vec<String>)>,
    info: &mut SessionInfo,
) -> Result<(), SessionError> {
    let mut minor = plan.sent_minor;
    let mut unsupported = plan.unsupported.clone();
    if let Some((server_minor, server_unsupported)) = server {
        minor = minor.min(*server_minor);
        unsupported.extend(server_unsupported.iter().cloned());
    }
    info.protocol_minor = minor;
    if minor != plan.requested_minor || !unsupported.is_empty() {
        to_client(
            client,
            &messages::negotiate_protocol_version(minor, &unsupported),
        )
        .await?;
    }
    Ok(())
}

/// Handles one Authentication message from the server.
async fn authenticate_step(
    client: &mut Conn<Stream>,
    upstream: &mut Conn<Stream>,
    frame: &Frame,
    info: &SessionInfo,
) -> Result<(), SessionError> {
    match messages::parse_auth_request(frame).map_err(SessionError::Upstream)? {
        AuthRequest::Ok | AuthRequest::SaslFinal(_) => to_client(client, frame.as_bytes()).await,
        AuthRequest::Sasl(mechanisms) => {
            let both_tls = info.tls && upstream.get_ref().is_tls();
            if both_tls && mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                scram_for_client(client, upstream).await
            } else {
                let offered: Vec<String> =
                    mechanisms.into_iter().filter(|m| m != SCRAM_PLUS).collect();
                to_client(client, &messages::auth_sasl(&offered)).await?;
                answer_from_client(client, upstream).await
            }
        }
        AuthRequest::SaslContinue(_) | AuthRequest::Other(_) => {
            to_client(client, frame.as_bytes()).await?;
            answer_from_client(client, upstream).await
        }
    }
}

/// Reads the client's PasswordMessage-family answer and relays it.
async fn answer_from_client(
    client: &mut Conn<Stream>,
    upstream: &mut Conn<Stream>,
) -> Result<(), SessionError> {
    client.flush().await.map_err(SessionError::Client)?;
    let answer = client.expect_frame().await.map_err(SessionError::Client)?;
    if answer.tag() != tag::PASSWORD {
        return Err(SessionError::ClientProtocol(format!(
            "expected a password message, got message type {:?}",
            answer.tag() as char
        )));
    }
    upstream
        .send(answer.as_bytes())
        .await
        .map_err(SessionError::Upstream)
}

/// SCRAM-SHA-256 with the server on the client's behalf, with the password
/// the client sent over its encrypted connection.
async fn scram_for_client(
    client: &mut Conn<Stream>,
    upstream: &mut Conn<Stream>,
) -> Result<(), SessionError> {
    to_client(client, &messages::auth_cleartext_password()).await?;
    client.flush().await.map_err(SessionError::Client)?;
    let answer = client.expect_frame().await.map_err(SessionError::Client)?;
    let password = messages::parse_password(&answer).map_err(SessionError::Client)?;

    let mut scram = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
    let mut buf = BytesMut::new();
    frontend::sasl_initial_response(SCRAM_SHA_256, scram.message(), &mut buf)
        .map_err(|e| SessionError::UpstreamProtocol(e.to_string()))?;
    upstream.send(&buf).await.map_err(SessionError::Upstream)?;

    let server_first = sasl_reply(client, upstream).await?;
    let AuthRequest::SaslContinue(data) = server_first else {
        return Err(SessionError::UpstreamProtocol(
            "expected SASLContinue".into(),
        ));
    };
    scram
        .update(&data)
        .map_err(|e| SessionError::UpstreamProtocol(format!("SCRAM: {e}")))?;
    buf.clear();
    frontend::sasl_response(scram.message(), &mut buf)
        .map_err(|e| SessionError::UpstreamProtocol(e.to_string()))?;
    upstream.send(&buf).await.map_err(SessionError::Upstream)?;

    let server_final = sasl_reply(client, upstream).await?;
    let AuthRequest::SaslFinal(data) = server_final else {
        return Err(SessionError::UpstreamProtocol("expected SASLFinal".into()));
    };
    scram
        .finish(&data)
        .map_err(|e| SessionError::UpstreamProtocol(format!("SCRAM server signature: {e}")))
}

/// The server's next SASL message; an ErrorResponse is relayed and ends
/// the session.
async fn sasl_reply(
    client: &mut Conn<Stream>,
    upstream: &mut Conn<Stream>,
) -> Result<AuthRequest, SessionError> {
    let frame = upstream
        .expect_frame()
        .await
        .map_err(SessionError::Upstream)?;
    match frame.tag() {
        tag::AUTHENTICATION => messages::parse_auth_request(&frame).map_err(SessionError::Upstream),
        tag::ERROR_RESPONSE => Err(refused(client, &frame).await),
        other => Err(SessionError::UpstreamProtocol(format!(
            "unexpected message {:?} during SCRAM",
            other as char
        ))),
    }
}

/// Relays the server's ErrorResponse and describes it.
async fn refused(client: &mut Conn<Stream>, frame: &Frame) -> SessionError {
    let _ = client.send(frame.as_bytes()).await;
    let (code, message) = messages::parse_error_code(frame).unwrap_or_default();
    if code.starts_with("28") {
        metrics::counter!(telemetry::AUTH_FAILURES).increment(1);
    }
    SessionError::Refused { code, message }
}

async fn to_client(client: &mut Conn<Stream>, bytes: &[u8]) -> Result<(), SessionError> {
    client.write(bytes).await.map_err(SessionError::Client)
}
