use std::net::SocketAddr;
use std::time::SystemTime;

use crate::wire::StartupMessage;

/// What copyguard knows about a session once the client has started it:
/// who connected, from where, and how. Later phases (classification,
/// policy, audit) read it; nothing a session does after startup changes it.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    /// Process-unique session id.
    pub id: u64,
    /// Client address.
    pub client_addr: SocketAddr,
    /// Whether the client connection is encrypted.
    pub tls: bool,
    /// Login role, as sent in the startup packet (case preserved).
    pub user: String,
    /// Database (defaults to the user name, as in PostgreSQL).
    pub database: String,
    /// `application_name` given at startup.
    pub application_name: Option<String>,
    /// `replication` parameter (`true`, `database`, ...), if any.
    pub replication: Option<String>,
    /// Raw `options` parameter (command-line options for the backend).
    pub options: Option<String>,
    /// Every startup parameter, in the order sent.
    pub startup_params: Vec<(String, String)>,
    /// Protocol minor version in use after negotiation (3.x).
    pub protocol_minor: u16,
    /// ParameterStatus values the server reported at startup.
    pub server_params: Vec<(String, String)>,
    /// When the client connected.
    pub started_at: SystemTime,
}

impl SessionInfo {
    /// Builds the record from a startup message. `None` when it names no user.
    pub fn from_startup(
        id: u64,
        client_addr: SocketAddr,
        tls: bool,
        startup: &StartupMessage,
    ) -> Option<SessionInfo> {
        let user = startup.param("user").filter(|u| !u.is_empty())?.to_owned();
        let database = startup
            .param("database")
            .filter(|d| !d.is_empty())
            .unwrap_or(&user)
            .to_owned();
        let owned = |name: &str| startup.param(name).map(str::to_owned);
        Some(SessionInfo {
            id,
            client_addr,
            tls,
            database,
            application_name: owned("application_name"),
            replication: owned("replication").filter(|r| {
                !matches!(
                    r.to_ascii_lowercase().as_str(),
                    "false" | "off" | "no" | "0"
                )
            }),
            options: owned("options"),
            startup_params: startup.params.clone(),
            protocol_minor: startup.minor,
            server_params: Vec::new(),
            started_at: SystemTime::now(),
            user,
        })
    }
}
