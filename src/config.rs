//! `copyguard serve` configuration: a TOML file, flags and `COPYGUARD_*`
//! environment variables, merged (flag or env > file > default) and
//! validated before anything listens.
//!
//! Every setting has one dotted key (`tls.mode`), one flag (`--tls-mode`)
//! and one variable (`COPYGUARD_TLS_MODE`); see [`SETTINGS`].

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::audit::{AuditConfig, FlushPolicy};
use crate::dumps::GrantKeys;
use crate::pseudonym::{Key, Settings};

/// Every setting: dotted key in the file, flag, environment variable, help.
pub const SETTINGS: &[(&str, &str, &str, &str)] = &[
    (
        "listen",
        "--listen",
        "COPYGUARD_LISTEN",
        "address clients connect to [127.0.0.1:6432]",
    ),
    (
        "upstream",
        "--upstream",
        "COPYGUARD_UPSTREAM",
        "PostgreSQL server HOST:PORT (required)",
    ),
    (
        "admin",
        "--admin",
        "COPYGUARD_ADMIN",
        "HTTP address for /metrics and /healthz [off]",
    ),
    (
        "policy",
        "--policy",
        "COPYGUARD_POLICY",
        "directory of policy files (required)",
    ),
    (
        "tls.mode",
        "--tls-mode",
        "COPYGUARD_TLS_MODE",
        "client TLS: disable | allow | require [allow with a certificate, else disable]",
    ),
    (
        "tls.cert",
        "--tls-cert",
        "COPYGUARD_TLS_CERT",
        "PEM certificate chain presented to clients",
    ),
    (
        "tls.key",
        "--tls-key",
        "COPYGUARD_TLS_KEY",
        "PEM private key of that certificate",
    ),
    (
        "upstream_tls.mode",
        "--upstream-tls-mode",
        "COPYGUARD_UPSTREAM_TLS_MODE",
        "upstream TLS: disable | require | verify-full [disable]",
    ),
    (
        "upstream_tls.ca",
        "--upstream-tls-ca",
        "COPYGUARD_UPSTREAM_TLS_CA",
        "PEM CA certificates for verify-full",
    ),
    (
        "upstream_tls.server_name",
        "--upstream-tls-server-name",
        "COPYGUARD_UPSTREAM_TLS_SERVER_NAME",
        "name checked in the server certificate [upstream host]",
    ),
    (
        "limits.max_connections",
        "--max-connections",
        "COPYGUARD_MAX_CONNECTIONS",
        "concurrent client connections [1000]",
    ),
    (
        "limits.startup_timeout",
        "--startup-timeout",
        "COPYGUARD_STARTUP_TIMEOUT",
        "time from connect to ready-for-query [30s]",
    ),
    (
        "limits.connect_timeout",
        "--connect-timeout",
        "COPYGUARD_CONNECT_TIMEOUT",
        "time to reach the upstream [10s]",
    ),
    (
        "limits.max_message_size",
        "--max-message-size",
        "COPYGUARD_MAX_MESSAGE_SIZE",
        "largest client message [128MiB]",
    ),
    (
        "limits.shutdown_timeout",
        "--shutdown-timeout",
        "COPYGUARD_SHUTDOWN_TIMEOUT",
        "grace period for sessions on SIGTERM/SIGINT [30s]",
    ),
    (
        "limits.catalog_refresh",
        "--catalog-refresh",
        "COPYGUARD_CATALOG_REFRESH",
        "reload a database's catalog after this long [5m]",
    ),
    (
        "log.format",
        "--log-format",
        "COPYGUARD_LOG_FORMAT",
        "text | json [text]",
    ),
    (
        "log.level",
        "--log-level",
        "COPYGUARD_LOG_LEVEL",
        "tracing filter, e.g. info or copyguard=debug [info]",
    ),
    (
        "audit.path",
        "--audit-path",
        "COPYGUARD_AUDIT_PATH",
        "block log file; rotated files sit beside it [copyguard-audit.log]",
    ),
    (
        "audit.anchors",
        "--audit-anchors",
        "COPYGUARD_AUDIT_ANCHORS",
        "signed anchor file [NAME.anchors beside the log]",
    ),
    (
        "audit.chain_key_file",
        "--audit-chain-key-file",
        "COPYGUARD_AUDIT_CHAIN_KEY_FILE",
        "HMAC chain key (`audit keygen`) [NAME.keys/chain.key, created if both keys are unset]",
    ),
    (
        "audit.signing_key_file",
        "--audit-signing-key-file",
        "COPYGUARD_AUDIT_SIGNING_KEY_FILE",
        "Ed25519 anchor signing key (`audit keygen`) [NAME.keys/signing.key]",
    ),
    (
        "audit.anchor_interval",
        "--audit-anchor-interval",
        "COPYGUARD_AUDIT_ANCHOR_INTERVAL",
        "time between signed anchors [60s]",
    ),
    (
        "audit.flush",
        "--audit-flush",
        "COPYGUARD_AUDIT_FLUSH",
        "every (fdatasync per record batch) | a sync interval like 5ms [every]",
    ),
    (
        "audit.rotate_size",
        "--audit-rotate-size",
        "COPYGUARD_AUDIT_ROTATE_SIZE",
        "rotate the log at this size, or off [100MiB]",
    ),
    (
        "audit.rotate_interval",
        "--audit-rotate-interval",
        "COPYGUARD_AUDIT_ROTATE_INTERVAL",
        "rotate the log when its first record is this old, or off [1d]",
    ),
    (
        "audit.production_statements",
        "--audit-production-statements",
        "COPYGUARD_AUDIT_PRODUCTION_STATEMENTS",
        "also record fingerprints of production statements: true | false [false]",
    ),
    (
        "pseudonym.key_file",
        "--pseudonym-key-file",
        "COPYGUARD_PSEUDONYM_KEY_FILE",
        "secret of the pseudonymization key, hex or base64, at least 32 bytes [none: nothing is pseudonymized]",
    ),
    (
        "pseudonym.key_id",
        "--pseudonym-key-id",
        "COPYGUARD_PSEUDONYM_KEY_ID",
        "id of that key, recorded in the block log [k1]",
    ),
    (
        "pseudonym.email_domain",
        "--pseudonym-email-domain",
        "COPYGUARD_PSEUDONYM_EMAIL_DOMAIN",
        "domain of stand-in email addresses [example.invalid]",
    ),
    (
        "pseudonym.date_shift_days",
        "--pseudonym-date-shift-days",
        "COPYGUARD_PSEUDONYM_DATE_SHIFT_DAYS",
        "largest shift of date_shift, in days either way [180]",
    ),
    (
        "dumps.public_keys",
        "--dump-public-keys",
        "COPYGUARD_DUMP_PUBLIC_KEYS",
        "grant public key files (grant.pub), comma-separated [none: grants are refused]",
    ),
    (
        "dumps.use_grace",
        "--dump-use-grace",
        "COPYGUARD_DUMP_USE_GRACE",
        "a grant session starting this long after the last one ended is the same use [30s]",
    ),
];

/// Flags and environment variables of `copyguard serve`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "COPYGUARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address clients connect to [127.0.0.1:6432].
    #[arg(long, env = "COPYGUARD_LISTEN")]
    pub listen: Option<String>,
    /// PostgreSQL server HOST:PORT.
    #[arg(long, env = "COPYGUARD_UPSTREAM")]
    pub upstream: Option<String>,
    /// HTTP address serving /metrics and /healthz.
    #[arg(long, env = "COPYGUARD_ADMIN")]
    pub admin: Option<String>,
    /// Directory of policy files.
    #[arg(long, env = "COPYGUARD_POLICY")]
    pub policy: Option<String>,
    /// Client TLS: disable | allow | require.
    #[arg(long, env = "COPYGUARD_TLS_MODE")]
    pub tls_mode: Option<String>,
    /// PEM certificate chain presented to clients.
    #[arg(long, env = "COPYGUARD_TLS_CERT")]
    pub tls_cert: Option<String>,
    /// PEM private key of the client-facing certificate.
    #[arg(long, env = "COPYGUARD_TLS_KEY")]
    pub tls_key: Option<String>,
    /// Upstream TLS: disable | require | verify-full.
    #[arg(long, env = "COPYGUARD_UPSTREAM_TLS_MODE")]
    pub upstream_tls_mode: Option<String>,
    /// PEM CA certificates trusted for verify-full.
    #[arg(long, env = "COPYGUARD_UPSTREAM_TLS_CA")]
    pub upstream_tls_ca: Option<String>,
    /// Name checked in the upstream certificate.
    #[arg(long, env = "COPYGUARD_UPSTREAM_TLS_SERVER_NAME")]
    pub upstream_tls_server_name: Option<String>,
    /// Concurrent client connections.
    #[arg(long, env = "COPYGUARD_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// Time from connect to ready-for-query, e.g. 30s.
    #[arg(long, env = "COPYGUARD_STARTUP_TIMEOUT")]
    pub startup_timeout: Option<String>,
    /// Time allowed to reach the upstream, e.g. 10s.
    #[arg(long, env = "COPYGUARD_CONNECT_TIMEOUT")]
    pub connect_timeout: Option<String>,
    /// Largest message a client may send, e.g. 128MiB.
    #[arg(long, env = "COPYGUARD_MAX_MESSAGE_SIZE")]
    pub max_message_size: Option<String>,
    /// Grace period for sessions on SIGTERM/SIGINT, e.g. 30s.
    #[arg(long, env = "COPYGUARD_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<String>,
    /// Reload a database's catalog after this long, e.g. 5m.
    #[arg(long, env = "COPYGUARD_CATALOG_REFRESH")]
    pub catalog_refresh: Option<String>,
    /// Log format: text | json.
    #[arg(long, env = "COPYGUARD_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or copyguard=debug.
    #[arg(long, env = "COPYGUARD_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Block log file [copyguard-audit.log].
    #[arg(long, env = "COPYGUARD_AUDIT_PATH")]
    pub audit_path: Option<String>,
    /// Signed anchor file [NAME.anchors beside the log].
    #[arg(long, env = "COPYGUARD_AUDIT_ANCHORS")]
    pub audit_anchors: Option<String>,
    /// HMAC chain key file (see `copyguard audit keygen`).
    #[arg(long, env = "COPYGUARD_AUDIT_CHAIN_KEY_FILE")]
    pub audit_chain_key_file: Option<String>,
    /// Ed25519 anchor signing key file (see `copyguard audit keygen`).
    #[arg(long, env = "COPYGUARD_AUDIT_SIGNING_KEY_FILE")]
    pub audit_signing_key_file: Option<String>,
    /// Time between signed anchors, e.g. 60s.
    #[arg(long, env = "COPYGUARD_AUDIT_ANCHOR_INTERVAL")]
    pub audit_anchor_interval: Option<String>,
    /// `every`, or a sync interval like 5ms.
    #[arg(long, env = "COPYGUARD_AUDIT_FLUSH")]
    pub audit_flush: Option<String>,
    /// Rotate the log at this size (e.g. 100MiB), or off.
    #[arg(long, env = "COPYGUARD_AUDIT_ROTATE_SIZE")]
    pub audit_rotate_size: Option<String>,
    /// Rotate the log when its first record is this old (e.g. 1d), or off.
    #[arg(long, env = "COPYGUARD_AUDIT_ROTATE_INTERVAL")]
    pub audit_rotate_interval: Option<String>,
    /// Also record fingerprints of production statements: true | false.
    #[arg(long, env = "COPYGUARD_AUDIT_PRODUCTION_STATEMENTS")]
    pub audit_production_statements: Option<String>,
    /// File holding the pseudonymization key's secret (hex or base64).
    #[arg(long, env = "COPYGUARD_PSEUDONYM_KEY_FILE")]
    pub pseudonym_key_file: Option<String>,
    /// Id of the pseudonymization key [k1].
    #[arg(long, env = "COPYGUARD_PSEUDONYM_KEY_ID")]
    pub pseudonym_key_id: Option<String>,
    /// Domain of stand-in email addresses [example.invalid].
    #[arg(long, env = "COPYGUARD_PSEUDONYM_EMAIL_DOMAIN")]
    pub pseudonym_email_domain: Option<String>,
    /// Largest shift of date_shift, in days either way [180].
    #[arg(long, env = "COPYGUARD_PSEUDONYM_DATE_SHIFT_DAYS")]
    pub pseudonym_date_shift_days: Option<String>,
    /// Grant public key files (grant.pub), comma-separated [none: grants
    /// are refused].
    #[arg(long, env = "COPYGUARD_DUMP_PUBLIC_KEYS")]
    pub dump_public_keys: Option<String>,
    /// A grant session starting this long after the last one of the same
    /// grant ended still belongs to the same use [30s].
    #[arg(long, env = "COPYGUARD_DUMP_USE_GRACE")]
    pub dump_use_grace: Option<String>,
}

impl ConfigArgs {
    fn get(&self, key: &str) -> Option<&String> {
        match key {
            "listen" => self.listen.as_ref(),
            "upstream" => self.upstream.as_ref(),
            "admin" => self.admin.as_ref(),
            "policy" => self.policy.as_ref(),
            "tls.mode" => self.tls_mode.as_ref(),
            "tls.cert" => self.tls_cert.as_ref(),
            "tls.key" => self.tls_key.as_ref(),
            "upstream_tls.mode" => self.upstream_tls_mode.as_ref(),
            "upstream_tls.ca" => self.upstream_tls_ca.as_ref(),
            "upstream_tls.server_name" => self.upstream_tls_server_name.as_ref(),
            "limits.max_connections" => self.max_connections.as_ref(),
            "limits.startup_timeout" => self.startup_timeout.as_ref(),
            "limits.connect_timeout" => self.connect_timeout.as_ref(),
            "limits.max_message_size" => self.max_message_size.as_ref(),
            "limits.shutdown_timeout" => self.shutdown_timeout.as_ref(),
            "limits.catalog_refresh" => self.catalog_refresh.as_ref(),
            "log.format" => self.log_format.as_ref(),
            "log.level" => self.log_level.as_ref(),
            "audit.path" => self.audit_path.as_ref(),
            "audit.anchors" => self.audit_anchors.as_ref(),
            "audit.chain_key_file" => self.audit_chain_key_file.as_ref(),
            "audit.signing_key_file" => self.audit_signing_key_file.as_ref(),
            "audit.anchor_interval" => self.audit_anchor_interval.as_ref(),
            "audit.flush" => self.audit_flush.as_ref(),
            "audit.rotate_size" => self.audit_rotate_size.as_ref(),
            "audit.rotate_interval" => self.audit_rotate_interval.as_ref(),
            "audit.production_statements" => self.audit_production_statements.as_ref(),
            "pseudonym.key_file" => self.pseudonym_key_file.as_ref(),
            "pseudonym.key_id" => self.pseudonym_key_id.as_ref(),
            "pseudonym.email_domain" => self.pseudonym_email_domain.as_ref(),
            "pseudonym.date_shift_days" => self.pseudonym_date_shift_days.as_ref(),
            "dumps.public_keys" => self.dump_public_keys.as_ref(),
            "dumps.use_grace" => self.dump_use_grace.as_ref(),
            _ => None,
        }
    }
}

/// A scalar in the configuration file: written as a string, a number or a
/// boolean.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Raw {
    Str(String),
    Int(i64),
    Bool(bool),
    /// A list of strings (`dumps.public_keys`), read as one comma-separated value.
    List(Vec<String>),
}

impl Raw {
    fn text(&self) -> String {
        match self {
            Raw::Str(s) => s.clone(),
            Raw::Int(i) => i.to_string(),
            Raw::Bool(b) => b.to_string(),
            Raw::List(items) => items.join(","),
        }
    }
}

type Field = Option<Spanned<Raw>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Field,
    upstream: Field,
    admin: Field,
    policy: Field,
    #[serde(default)]
    tls: TlsSection,
    #[serde(default)]
    upstream_tls: UpstreamTlsSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    log: LogSection,
    #[serde(default)]
    audit: AuditSection,
    #[serde(default)]
    pseudonym: PseudonymSection,
    #[serde(default)]
    dumps: DumpsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DumpsSection {
    public_keys: Field,
    use_grace: Field,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PseudonymSection {
    key_file: Field,
    key_id: Field,
    email_domain: Field,
    date_shift_days: Field,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    mode: Field,
    cert: Field,
    key: Field,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamTlsSection {
    mode: Field,
    ca: Field,
    server_name: Field,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    max_connections: Field,
    startup_timeout: Field,
    connect_timeout: Field,
    max_message_size: Field,
    shutdown_timeout: Field,
    catalog_refresh: Field,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    format: Field,
    level: Field,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditSection {
    path: Field,
    anchors: Field,
    chain_key_file: Field,
    signing_key_file: Field,
    anchor_interval: Field,
    flush: Field,
    rotate_size: Field,
    rotate_interval: Field,
    production_statements: Field,
}

impl FileConfig {
    fn get(&self, key: &str) -> Option<&Spanned<Raw>> {
        match key {
            "listen" => self.listen.as_ref(),
            "upstream" => self.upstream.as_ref(),
            "admin" => self.admin.as_ref(),
            "policy" => self.policy.as_ref(),
            "tls.mode" => self.tls.mode.as_ref(),
            "tls.cert" => self.tls.cert.as_ref(),
            "tls.key" => self.tls.key.as_ref(),
            "upstream_tls.mode" => self.upstream_tls.mode.as_ref(),
            "upstream_tls.ca" => self.upstream_tls.ca.as_ref(),
            "upstream_tls.server_name" => self.upstream_tls.server_name.as_ref(),
            "limits.max_connections" => self.limits.max_connections.as_ref(),
            "limits.startup_timeout" => self.limits.startup_timeout.as_ref(),
            "limits.connect_timeout" => self.limits.connect_timeout.as_ref(),
            "limits.max_message_size" => self.limits.max_message_size.as_ref(),
            "limits.shutdown_timeout" => self.limits.shutdown_timeout.as_ref(),
            "limits.catalog_refresh" => self.limits.catalog_refresh.as_ref(),
            "log.format" => self.log.format.as_ref(),
            "log.level" => self.log.level.as_ref(),
            "audit.path" => self.audit.path.as_ref(),
            "audit.anchors" => self.audit.anchors.as_ref(),
            "audit.chain_key_file" => self.audit.chain_key_file.as_ref(),
            "audit.signing_key_file" => self.audit.signing_key_file.as_ref(),
            "audit.anchor_interval" => self.audit.anchor_interval.as_ref(),
            "audit.flush" => self.audit.flush.as_ref(),
            "audit.rotate_size" => self.audit.rotate_size.as_ref(),
            "audit.rotate_interval" => self.audit.rotate_interval.as_ref(),
            "audit.production_statements" => self.audit.production_statements.as_ref(),
            "pseudonym.key_file" => self.pseudonym.key_file.as_ref(),
            "pseudonym.key_id" => self.pseudonym.key_id.as_ref(),
            "pseudonym.email_domain" => self.pseudonym.email_domain.as_ref(),
            "pseudonym.date_shift_days" => self.pseudonym.date_shift_days.as_ref(),
            "dumps.public_keys" => self.dumps.public_keys.as_ref(),
            "dumps.use_grace" => self.dumps.use_grace.as_ref(),
            _ => None,
        }
    }
}

/// A configuration error, naming the setting and where its value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A setting has an invalid value or is missing.
    #[error("invalid setting `{key}` ({origin}): {message}")]
    Invalid {
        /// Dotted key, e.g. `tls.mode`.
        key: &'static str,
        /// Where the value came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// Client-facing TLS mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientTlsMode {
    /// SSLRequest is answered `N`.
    Disable,
    /// TLS when the client asks for it.
    Allow,
    /// Plaintext clients are refused.
    Require,
}

/// Upstream TLS mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamTlsMode {
    /// Plain TCP.
    Disable,
    /// Encrypted, certificate not checked.
    Require,
    /// Encrypted, chain and host name checked against a CA file.
    VerifyFull,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Client-facing TLS settings.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// Mode.
    pub mode: ClientTlsMode,
    /// Certificate chain and key (PEM), set unless the mode is `disable`.
    pub cert_key: Option<(PathBuf, PathBuf)>,
}

/// Upstream TLS settings.
#[derive(Clone, Debug)]
pub struct UpstreamTls {
    /// Mode.
    pub mode: UpstreamTlsMode,
    /// CA certificates (PEM) for verify-full.
    pub ca: Option<PathBuf>,
    /// Name checked in the server certificate.
    pub server_name: String,
}

/// Resource limits and timeouts.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Concurrent client connections.
    pub max_connections: usize,
    /// From accept to the first ReadyForQuery.
    pub startup_timeout: Duration,
    /// To open the upstream TCP connection.
    pub connect_timeout: Duration,
    /// Largest frame a client may send.
    pub max_message_size: usize,
    /// Grace period on shutdown.
    pub shutdown_timeout: Duration,
    /// Age after which a database's catalog is reloaded.
    pub catalog_refresh: Duration,
}

/// A validated `serve` configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Client listen address.
    pub listen: SocketAddr,
    /// Upstream host.
    pub upstream_host: String,
    /// Upstream port.
    pub upstream_port: u16,
    /// Admin HTTP address.
    pub admin: Option<SocketAddr>,
    /// Directory of policy files.
    pub policy: PathBuf,
    /// Client-facing TLS.
    pub tls: ClientTls,
    /// Upstream TLS.
    pub upstream_tls: UpstreamTls,
    /// Limits.
    pub limits: Limits,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// The block log.
    pub audit: AuditConfig,
    /// The pseudonymization key and settings (`None`: no key configured;
    /// statements the policy would pseudonymize are refused).
    pub pseudonym: Option<PseudonymConfig>,
    /// Public keys dump grants are accepted from (empty: grants are
    /// refused).
    pub grant_keys: GrantKeys,
    /// How long after the last session of a grant a new one still
    /// belongs to the same use.
    pub grant_use_grace: Duration,
}

/// The pseudonymization key and the transform settings.
#[derive(Clone, Debug)]
pub struct PseudonymConfig {
    /// The key (its secret never shows in Debug output).
    pub key: Key,
    /// Email domain and date-shift window.
    pub settings: Settings,
}

#[derive(Clone, Debug)]
enum Origin {
    Arg(&'static str, &'static str),
    File(PathBuf, usize),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Arg(flag, env) => write!(f, "from {flag} or {env}"),
            Origin::File(path, line) => write!(f, "{}, line {line}", path.display()),
        }
    }
}

struct Sources<'a> {
    args: &'a ConfigArgs,
    file: FileConfig,
    path: Option<PathBuf>,
    text: String,
}

impl Sources<'_> {
    fn lookup(&self, key: &'static str) -> Option<(String, Origin)> {
        let (flag, env) = flag_and_env(key);
        if let Some(v) = self.args.get(key) {
            return Some((v.clone(), Origin::Arg(flag, env)));
        }
        let field = self.file.get(key)?;
        let line = self.text[..field.span().start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        let path = self.path.clone().unwrap_or_default();
        Some((field.get_ref().text(), Origin::File(path, line)))
    }

    fn parse<T>(
        &self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.lookup(key) {
            None => Ok(None),
            Some((text, origin)) => {
                parse(text.trim())
                    .map(Some)
                    .map_err(|message| ConfigError::Invalid {
                        key,
                        origin: origin.to_string(),
                        message,
                    })
            }
        }
    }

    fn missing(&self, key: &'static str, message: &str) -> ConfigError {
        let (flag, env) = flag_and_env(key);
        ConfigError::Invalid {
            key,
            origin: Origin::Arg(flag, env).to_string(),
            message: message.to_owned(),
        }
    }
}

impl Config {
    /// Loads the file named by `args.config` (if any), applies flags and
    /// environment variables, and validates the result.
    pub fn load(args: &ConfigArgs) -> Result<Config, ConfigError> {
        let (file, text) = match &args.config {
            None => (FileConfig::default(), String::new()),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let file =
                    toml::from_str(&text).map_err(|e: toml::de::Error| ConfigError::Syntax {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                (file, text)
            }
        };
        let src = Sources {
            args,
            file,
            path: args.config.clone(),
            text,
        };
        Config::resolve(&src)
    }

    fn resolve(src: &Sources<'_>) -> Result<Config, ConfigError> {
        let listen = src
            .parse("listen", parse_addr)?
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 6432)));
        let (upstream_host, upstream_port) = src
            .parse("upstream", parse_host_port)?
            .ok_or_else(|| src.missing("upstream", "required: the PostgreSQL server, HOST:PORT"))?;
        let admin = src.parse("admin", parse_addr)?;
        let policy = src
            .parse("policy", parse_dir)?
            .ok_or_else(|| src.missing("policy", "required: the directory of policy files"))?;

        let cert = src.parse("tls.cert", parse_file)?;
        let key = src.parse("tls.key", parse_file)?;
        let default_mode = if cert.is_some() {
            ClientTlsMode::Allow
        } else {
            ClientTlsMode::Disable
        };
        let tls_mode = src
            .parse("tls.mode", |s| match s {
                "disable" => Ok(ClientTlsMode::Disable),
                "allow" => Ok(ClientTlsMode::Allow),
                "require" => Ok(ClientTlsMode::Require),
                _ => Err(format!("expected disable, allow or require, got {s:?}")),
            })?
            .unwrap_or(default_mode);
        let cert_key = match (tls_mode, cert, key) {
            (ClientTlsMode::Disable, _, _) => None,
            (_, Some(c), Some(k)) => Some((c, k)),
            (_, None, _) => {
                return Err(src.missing("tls.cert", "required when tls.mode is not disable"))
            }
            (_, _, None) => {
                return Err(src.missing("tls.key", "required when tls.mode is not disable"))
            }
        };

        let upstream_mode = src
            .parse("upstream_tls.mode", |s| match s {
                "disable" => Ok(UpstreamTlsMode::Disable),
                "require" => Ok(UpstreamTlsMode::Require),
                "verify-full" => Ok(UpstreamTlsMode::VerifyFull),
                _ => Err(format!(
                    "expected disable, require or verify-full, got {s:?}"
                )),
            })?
            .unwrap_or(UpstreamTlsMode::Disable);
        let ca = src.parse("upstream_tls.ca", parse_file)?;
        if upstream_mode == UpstreamTlsMode::VerifyFull && ca.is_none() {
            return Err(src.missing(
                "upstream_tls.ca",
                "required when upstream_tls.mode is verify-full",
            ));
        }
        let server_name = src
            .parse("upstream_tls.server_name", |s| {
                rustls_pki_types::ServerName::try_from(s.to_owned())
                    .map(|_| s.to_owned())
                    .map_err(|e| e.to_string())
            })?
            .unwrap_or_else(|| upstream_host.clone());

        let limits = Limits {
            max_connections: src
                .parse("limits.max_connections", |s| {
                    s.parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("expected a positive number, got {s:?}"))
                })?
                .unwrap_or(1000),
            startup_timeout: src
                .parse("limits.startup_timeout", parse_duration)?
                .unwrap_or(Duration::from_secs(30)),
            connect_timeout: src
                .parse("limits.connect_timeout", parse_duration)?
                .unwrap_or(Duration::from_secs(10)),
            max_message_size: src
                .parse("limits.max_message_size", parse_size)?
                .unwrap_or(128 << 20),
            shutdown_timeout: src
                .parse("limits.shutdown_timeout", parse_duration)?
                .unwrap_or(Duration::from_secs(30)),
            catalog_refresh: src
                .parse("limits.catalog_refresh", parse_duration)?
                .unwrap_or(Duration::from_secs(300)),
        };
        let log_format = src
            .parse("log.format", |s| match s {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err(format!("expected text or json, got {s:?}")),
            })?
            .unwrap_or(LogFormat::Text);
        let log_level = src
            .parse("log.level", |s| {
                tracing_subscriber::EnvFilter::try_new(s)
                    .map(|_| s.to_owned())
                    .map_err(|e| e.to_string())
            })?
            .unwrap_or_else(|| "info".to_owned());
        let audit = resolve_audit(src)?;
        let pseudonym = resolve_pseudonym(src)?;
        let grant_keys = src
            .parse("dumps.public_keys", |s| {
                let paths: Vec<&str> = s
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .collect();
                GrantKeys::load(&paths)
            })?
            .unwrap_or_default();
        let grant_use_grace = src
            .parse("dumps.use_grace", parse_duration)?
            .unwrap_or(crate::state::DEFAULT_USE_GRACE);

        Ok(Config {
            listen,
            upstream_host,
            upstream_port,
            admin,
            policy,
            tls: ClientTls {
                mode: tls_mode,
                cert_key,
            },
            upstream_tls: UpstreamTls {
                mode: upstream_mode,
                ca,
                server_name,
            },
            limits,
            log_format,
            log_level,
            audit,
            pseudonym,
            grant_keys,
            grant_use_grace,
        })
    }

    /// The upstream as `host:port`.
    pub fn upstream_addr(&self) -> String {
        format!("{}:{}", self.upstream_host, self.upstream_port)
    }
}

/// The `pseudonym.*` settings: the key from its file (never echoed), and
/// the transform settings, validated.
fn resolve_pseudonym(src: &Sources<'_>) -> Result<Option<PseudonymConfig>, ConfigError> {
    let mut settings = Settings::default();
    let checked = |s: Settings| s.validate().map(|()| s).map_err(|e| e.to_string());
    if let Some(with) = src.parse("pseudonym.email_domain", |s| {
        checked(Settings {
            email_domain: s.to_owned(),
            ..Settings::default()
        })
    })? {
        settings.email_domain = with.email_domain;
    }
    if let Some(with) = src.parse("pseudonym.date_shift_days", |s| {
        let days = s.parse::<u32>().map_err(|e| format!("{s:?}: {e}"))?;
        checked(Settings {
            date_shift_days: days,
            ..Settings::default()
        })
    })? {
        settings.date_shift_days = with.date_shift_days;
    }
    let id = src
        .parse("pseudonym.key_id", |s| Ok(s.to_owned()))?
        .unwrap_or_else(|| "k1".to_owned());
    let key = src.parse("pseudonym.key_file", |s| {
        let text = std::fs::read_to_string(s).map_err(|e| format!("cannot read {s:?}: {e}"))?;
        Key::from_text(&id, &text).map_err(|e| format!("{s:?}: {e}"))
    })?;
    Ok(key.map(|key| PseudonymConfig { key, settings }))
}

/// The `audit.*` settings. Key files given explicitly must exist; when
/// neither is given, both default to `NAME.keys/` beside the log and are
/// created on first start.
fn resolve_audit(src: &Sources<'_>) -> Result<AuditConfig, ConfigError> {
    let path = src
        .parse("audit.path", |s| {
            if s.is_empty() || s.ends_with('/') {
                Err(format!("{s:?} is not a file name"))
            } else {
                Ok(PathBuf::from(s))
            }
        })?
        .unwrap_or_else(|| PathBuf::from(crate::audit::options::DEFAULT_PATH));
    let mut audit = AuditConfig::for_path(&path);
    if let Some(anchors) = src.parse("audit.anchors", |s| {
        if s.is_empty() {
            Err("empty file name".to_owned())
        } else {
            Ok(PathBuf::from(s))
        }
    })? {
        audit.anchors = anchors;
    }
    let chain = src.parse("audit.chain_key_file", parse_file)?;
    let signing = src.parse("audit.signing_key_file", parse_file)?;
    match (chain, signing) {
        (None, None) => {}
        (Some(chain), Some(signing)) => {
            audit.chain_key_file = chain;
            audit.signing_key_file = signing;
            audit.generate_keys = false;
        }
        (Some(_), None) => {
            return Err(src.missing(
                "audit.signing_key_file",
                "required when audit.chain_key_file is set (see `copyguard audit keygen`)",
            ))
        }
        (None, Some(_)) => {
            return Err(src.missing(
                "audit.chain_key_file",
                "required when audit.signing_key_file is set (see `copyguard audit keygen`)",
            ))
        }
    }
    if audit.anchors == audit.path {
        return Err(src.missing("audit.anchors", "must differ from audit.path"));
    }
    if let Some(every) = src.parse("audit.anchor_interval", |s| {
        parse_duration(s).and_then(|d| {
            if d.is_zero() {
                Err("must be more than 0".to_owned())
            } else {
                Ok(d)
            }
        })
    })? {
        audit.anchor_interval = every;
    }
    if let Some(flush) = src.parse("audit.flush", |s| match s {
        "every" => Ok(FlushPolicy::Every),
        _ => parse_duration(s)
            .ok()
            .filter(|d| !d.is_zero() && *d <= Duration::from_secs(10))
            .map(FlushPolicy::Interval)
            .ok_or_else(|| format!("expected every or a duration from 1ms to 10s, got {s:?}")),
    })? {
        audit.flush = flush;
    }
    if let Some(size) = src.parse("audit.rotate_size", |s| {
        if s == "off" {
            return Ok(None);
        }
        let n = parse_bytes(s)?;
        if n < 4096 {
            return Err(format!("{s:?} is below 4KiB; use off to disable"));
        }
        Ok(Some(n))
    })? {
        audit.rotate_size = size;
    }
    if let Some(every) = src.parse("audit.rotate_interval", |s| {
        if s == "off" {
            return Ok(None);
        }
        let d = parse_duration(s)?;
        if d < Duration::from_secs(1) {
            return Err(format!("{s:?} is below 1s; use off to disable"));
        }
        Ok(Some(d))
    })? {
        audit.rotate_interval = every;
    }
    if let Some(on) = src.parse("audit.production_statements", |s| match s {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(format!("expected true or false, got {s:?}")),
    })? {
        audit.production_statements = on;
    }
    Ok(audit)
}

/// The flag and environment variable of a setting.
fn flag_and_env(key: &str) -> (&'static str, &'static str) {
    SETTINGS
        .iter()
        .find(|(k, ..)| *k == key)
        .map(|(_, flag, env, _)| (*flag, *env))
        .unwrap_or(("a flag", "an environment variable"))
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("{s:?} is not a HOST:PORT address: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected HOST:PORT, got {s:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port in {s:?}"))?;
    if host.is_empty() {
        return Err(format!("missing host in {s:?}"));
    }
    Ok((host.to_owned(), port))
}

fn parse_file(s: &str) -> Result<PathBuf, String> {
    let path = Path::new(s);
    std::fs::File::open(path)
        .map(|_| path.to_owned())
        .map_err(|e| format!("cannot read {s:?}: {e}"))
}

fn parse_dir(s: &str) -> Result<PathBuf, String> {
    let path = Path::new(s);
    if path.is_dir() {
        Ok(path.to_owned())
    } else {
        Err(format!("{s:?} is not a directory"))
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 30s or 500ms: {e}"))
}

fn parse_size(s: &str) -> Result<usize, String> {
    let size = parse_bytes(s)?;
    if !(1024..=(1 << 30)).contains(&size) {
        return Err(format!("{s:?} must be between 1KiB and 1GiB"));
    }
    Ok(size as usize)
}

/// A byte count with an optional unit (B, KiB, MiB, GiB, TiB).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 64MiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "kB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        "TiB" | "TB" | "T" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_toml(text: &str, args: ConfigArgs) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!(
            "cg-config-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("copyguard.toml");
        std::fs::write(&path, text).unwrap();
        let args = ConfigArgs {
            config: Some(path.clone()),
            policy: args.policy.or_else(|| Some(dir.display().to_string())),
            ..args
        };
        let result = Config::load(&args);
        std::fs::remove_dir_all(&dir).unwrap();
        result
    }

    #[test]
    fn dump_public_keys_from_file_flag_or_nowhere() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.pub");
        let b = dir.path().join("b.pub");
        for (path, seed) in [(&a, 1u8), (&b, 2u8)] {
            let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
            std::fs::write(path, hex::encode(key.verifying_key().as_bytes())).unwrap();
        }
        let c = load_toml("upstream = \"db:5432\"\n", ConfigArgs::default()).unwrap();
        assert!(c.grant_keys.is_empty());
        let text = format!(
            "upstream = \"db:5432\"\n[dumps]\npublic_keys = [{:?}, {:?}]\n",
            a.display().to_string(),
            b.display().to_string()
        );
        let c = load_toml(&text, ConfigArgs::default()).unwrap();
        assert!(!c.grant_keys.is_empty());
        let args = ConfigArgs {
            dump_public_keys: Some(format!("{},{}", a.display(), b.display())),
            ..ConfigArgs::default()
        };
        assert!(!load_toml("upstream = \"db:5432\"\n", args)
            .unwrap()
            .grant_keys
            .is_empty());
        let args = ConfigArgs {
            dump_public_keys: Some("/nonexistent/grant.pub".into()),
            ..ConfigArgs::default()
        };
        let e = load_toml("upstream = \"db:5432\"\n", args)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`dumps.public_keys`"), "{e}");
        assert!(e.contains("--dump-public-keys"), "{e}");
    }

    #[test]
    fn defaults_and_file_values() {
        let c = load_toml(
            "upstream = \"db.internal:5433\"\n[limits]\nstartup_timeout = \"5s\"\nmax_message_size = \"1MiB\"\n",
            ConfigArgs::default(),
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:6432".parse().unwrap());
        assert_eq!(
            (c.upstream_host.as_str(), c.upstream_port),
            ("db.internal", 5433)
        );
        assert_eq!(c.limits.startup_timeout, Duration::from_secs(5));
        assert_eq!(c.limits.max_message_size, 1 << 20);
        assert_eq!(c.tls.mode, ClientTlsMode::Disable);
        assert_eq!(c.upstream_tls.server_name, "db.internal");
    }

    #[test]
    fn flags_override_file() {
        let args = ConfigArgs {
            upstream: Some("127.0.0.1:1".into()),
            ..Default::default()
        };
        let c = load_toml("upstream = \"db:5432\"\n", args).unwrap();
        assert_eq!(c.upstream_port, 1);
    }

    #[test]
    fn errors_name_key_and_line() {
        let err = load_toml(
            "upstream = \"db:5432\"\n\n[tls]\nmode = \"maybe\"\n",
            ConfigArgs::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`tls.mode`"), "{err}");
        assert!(err.contains("line 4"), "{err}");

        let err = load_toml(
            "upstream = \"db:5432\"\nlisten_addr = 1\n",
            ConfigArgs::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("listen_addr"), "{err}");

        let err = Config::load(&ConfigArgs::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`upstream`") && err.contains("COPYGUARD_UPSTREAM"),
            "{err}"
        );

        let args = ConfigArgs {
            upstream: Some("db:5432".into()),
            tls_mode: Some("require".into()),
            policy: Some(std::env::temp_dir().display().to_string()),
            ..Default::default()
        };
        let err = Config::load(&args).unwrap_err().to_string();
        assert!(err.contains("`tls.cert`"), "{err}");
    }

    #[test]
    fn every_listed_setting_has_a_flag_and_a_file_key() {
        let mut sections: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for (key, flag, env, _) in SETTINGS {
            let args = ConfigArgs::default();
            assert!(args.get(key).is_none());
            assert!(flag.starts_with("--"), "{key}");
            assert!(env.starts_with("COPYGUARD_"), "{key}");
            let (section, name) = key.split_once('.').unwrap_or(("", key));
            sections
                .entry(section)
                .or_default()
                .push(format!("{name} = \"x\""));
        }
        let mut text = sections.remove("").unwrap_or_default().join("\n");
        for (section, lines) in sections {
            text.push_str(&format!("\n[{section}]\n{}", lines.join("\n")));
        }
        let file: FileConfig = toml::from_str(&text).expect("every listed key is a file key");
        for (key, ..) in SETTINGS {
            assert!(file.get(key).is_some(), "{key} not read from the file");
        }
    }

    #[test]
    fn audit_defaults_and_settings() {
        let c = load_toml("upstream = \"db:5432\"\n", ConfigArgs::default()).unwrap();
        assert_eq!(c.audit, AuditConfig::default());
        assert!(c.audit.generate_keys);

        let c = load_toml(
            "upstream = \"db:5432\"\n[audit]\npath = \"/var/log/cg/audit.log\"\nflush = \"5ms\"\nrotate_size = \"off\"\nrotate_interval = \"1h\"\nanchor_interval = 10\nproduction_statements = true\n",
            ConfigArgs::default(),
        )
        .unwrap();
        assert_eq!(c.audit.path, Path::new("/var/log/cg/audit.log"));
        assert_eq!(c.audit.anchors, Path::new("/var/log/cg/audit.anchors"));
        assert_eq!(
            c.audit.chain_key_file,
            Path::new("/var/log/cg/audit.keys/chain.key")
        );
        assert_eq!(
            c.audit.flush,
            FlushPolicy::Interval(Duration::from_millis(5))
        );
        assert_eq!(c.audit.rotate_size, None);
        assert_eq!(c.audit.rotate_interval, Some(Duration::from_secs(3600)));
        assert_eq!(c.audit.anchor_interval, Duration::from_secs(10));
        assert!(c.audit.production_statements);

        let args = ConfigArgs {
            audit_rotate_size: Some("1GiB".into()),
            audit_flush: Some("every".into()),
            ..Default::default()
        };
        let c = load_toml("upstream = \"db:5432\"\n", args).unwrap();
        assert_eq!(c.audit.rotate_size, Some(1 << 30));
        assert_eq!(c.audit.flush, FlushPolicy::Every);
    }

    #[test]
    fn audit_errors_name_the_key() {
        let err = |text: &str, args: ConfigArgs| load_toml(text, args).unwrap_err().to_string();
        let e = err(
            "upstream = \"db:5432\"\n[audit]\nflush = \"sometimes\"\n",
            ConfigArgs::default(),
        );
        assert!(e.contains("`audit.flush`") && e.contains("line 3"), "{e}");
        let e = err(
            "upstream = \"db:5432\"\n[audit]\nchain_key_file = \"/nonexistent/chain.key\"\n",
            ConfigArgs::default(),
        );
        assert!(e.contains("`audit.chain_key_file`"), "{e}");
        let key = std::env::temp_dir().join(format!("cg-key-{}", std::process::id()));
        std::fs::write(&key, "00").unwrap();
        let args = ConfigArgs {
            audit_chain_key_file: Some(key.display().to_string()),
            ..Default::default()
        };
        let e = err("upstream = \"db:5432\"\n", args);
        std::fs::remove_file(&key).unwrap();
        assert!(
            e.contains("`audit.signing_key_file`")
                && e.contains("COPYGUARD_AUDIT_SIGNING_KEY_FILE"),
            "{e}"
        );
        let args = ConfigArgs {
            audit_production_statements: Some("maybe".into()),
            ..Default::default()
        };
        let e = err("upstream = \"db:5432\"\n", args);
        assert!(e.contains("`audit.production_statements`"), "{e}");
        let e = err(
            "upstream = \"db:5432\"\n[audit]\nrotate_size = \"12\"\n",
            ConfigArgs::default(),
        );
        assert!(e.contains("`audit.rotate_size`"), "{e}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("2GiB").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
    }
}
