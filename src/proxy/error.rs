use std::io;

use crate::wire::messages::{ErrorFields, Severity};
use crate::wire::WireError;

/// Which side of the proxy a failure came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client connection or what the client sent.
    Client,
    /// The upstream server connection or what it sent.
    Upstream,
    /// copyguard itself (limits, shutdown, configuration).
    Proxy,
}

impl Side {
    /// Label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
            Side::Proxy => "proxy",
        }
    }
}

/// Why a session ended abnormally. Each variant knows which side failed
/// and what, if anything, the client should be told.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Reading from or writing to the client failed, or the client sent a
    /// malformed or oversized message.
    #[error("client: {0}")]
    Client(#[source] WireError),
    /// Reading from or writing to the upstream failed, or it sent something
    /// malformed.
    #[error("upstream: {0}")]
    Upstream(#[source] WireError),
    /// The upstream could not be reached.
    #[error("cannot connect to upstream {addr}: {source}")]
    Connect {
        /// Upstream address.
        addr: String,
        /// Cause.
        source: io::Error,
    },
    /// TLS towards the upstream failed.
    #[error("upstream TLS: {0}")]
    UpstreamTls(String),
    /// The client's TLS handshake failed.
    #[error("client TLS handshake: {0}")]
    ClientTls(io::Error),
    /// The client did not use TLS although it is required.
    #[error("client did not use TLS, which is required")]
    TlsRequired,
    /// The startup packet names no user.
    #[error("no user name in startup packet")]
    NoUser,
    /// The client sent something the protocol does not allow here.
    #[error("protocol violation by client: {0}")]
    ClientProtocol(String),
    /// The upstream sent something the protocol does not allow here.
    #[error("protocol violation by upstream: {0}")]
    UpstreamProtocol(String),
    /// The upstream refused the session (its ErrorResponse was relayed).
    #[error("upstream refused the session: {code} {message}")]
    Refused {
        /// SQLSTATE.
        code: String,
        /// Message.
        message: String,
    },
    /// The policy refuses the session itself (identity-changing startup
    /// options, replication for a guarded role).
    #[error("refused by policy rule {rule}: {reason}")]
    Policy {
        /// The rule.
        rule: crate::policy::Rule,
        /// Reason.
        reason: String,
    },
    /// A dump grant presented at startup was refused.
    #[error("dump grant refused: {0}")]
    Grant(#[from] crate::dumps::GrantError),
    /// A guarded session was closed because it stepped outside its guard
    /// (its identity or privileges changed).
    #[error("guard violation: {0}")]
    Guard(String),
    /// Startup (negotiation and authentication) took too long.
    #[error("startup timed out")]
    StartupTimeout,
    /// copyguard is shutting down.
    #[error("shutting down")]
    Shutdown,
}

impl SessionError {
    /// The side that failed.
    pub fn side(&self) -> Side {
        match self {
            SessionError::Client(_)
            | SessionError::ClientTls(_)
            | SessionError::TlsRequired
            | SessionError::NoUser
            | SessionError::ClientProtocol(_)
            | SessionError::Policy { .. }
            | SessionError::Grant(_)
            | SessionError::StartupTimeout => Side::Client,
            SessionError::Upstream(_)
            | SessionError::Connect { .. }
            | SessionError::UpstreamTls(_)
            | SessionError::UpstreamProtocol(_)
            | SessionError::Refused { .. } => Side::Upstream,
            SessionError::Shutdown | SessionError::Guard(_) => Side::Proxy,
        }
    }

    /// The FATAL error to send the client, if one can and should be sent.
    pub fn to_client(&self) -> Option<ErrorFields> {
        let fatal = |code, msg: String| Some(ErrorFields::new(Severity::Fatal, code, msg));
        match self {
            SessionError::Client(WireError::Io(_))
            | SessionError::Client(WireError::UnexpectedEof)
            | SessionError::ClientTls(_)
            | SessionError::Refused { .. } => None,
            SessionError::Client(WireError::TooLarge { len, max }) => fatal(
                "54000",
                format!("message of {len} bytes exceeds copyguard's limit of {max} bytes"),
            )
            .map(|e| e.with_hint("The limit is the limits.max_message_size setting.")),
            SessionError::Client(e @ WireError::UnsupportedProtocol { .. }) => {
                fatal("0A000", e.to_string())
            }
            SessionError::Client(e) => fatal("08P01", format!("invalid frontend message: {e}")),
            SessionError::ClientProtocol(m) => fatal("08P01", m.clone()),
            SessionError::UpstreamProtocol(_) => fatal(
                "08P01",
                "copyguard received an unexpected message from the database server".to_owned(),
            )
            .map(|e| e.with_hint("The proxy log has the cause.")),
            SessionError::Upstream(_)
            | SessionError::Connect { .. }
            | SessionError::UpstreamTls(_) => fatal(
                "08006",
                "copyguard could not establish a connection to the database server".to_owned(),
            )
            .map(|e| e.with_hint("The proxy log has the cause.")),
            SessionError::TlsRequired => fatal(
                "28000",
                "copyguard requires an encrypted connection".to_owned(),
            )
            .map(|e| e.with_hint("Connect with sslmode=require (or verify-full).")),
            SessionError::NoUser => fatal(
                "28000",
                "no PostgreSQL user name specified in startup packet".to_owned(),
            ),
            SessionError::Policy { rule, reason } => fatal(
                rule.sqlstate(),
                format!("copyguard: refused by rule {rule}: {reason}"),
            )
            .map(|e| e.with_hint(rule.hint())),
            SessionError::Grant(e) => fatal(
                e.sqlstate(),
                format!("copyguard: grant refused by rule {}: {e}", e.rule()),
            )
            .map(|err| err.with_hint(e.hint())),
            SessionError::Guard(reason) => fatal("42501", format!("copyguard: {reason}")),
            SessionError::StartupTimeout => fatal(
                "57014",
                "canceling authentication due to timeout".to_owned(),
            ),
            SessionError::Shutdown => fatal(
                "57P01",
                "terminating connection because copyguard is shutting down".to_owned(),
            ),
        }
    }
}
