//! `copyguard serve` configuration: a TOML file, flags and `COPYGUARD_*`
//! environment variables, merged (flag or env > file > default) and
//! validated before anything listens.
//!
//! Every setting has one dotted key (`tls.mode`), one flag (`--tls-mode`)
//! and one variable (`COPYGUARD_TLS_MODE`), declared once in one table
//! (`settings.rs`, [`SETTINGS`]); `resolve` gives each its meaning;
//! `parse.rs` holds the value parsers.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::audit::{AuditConfig, FlushPolicy};
use crate::dumps::GrantKeys;
use crate::pseudonym::{Key, Settings};

mod parse;
mod settings;
#[cfg(test)]
mod tests;

use parse::{
    parse_addr, parse_bytes, parse_dir, parse_duration, parse_file, parse_host_port,
    parse_positive_count, parse_positive_duration, parse_size,
};
use settings::FileConfig;
pub use settings::{ConfigArgs, SETTINGS};

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
    /// Connections from one client address that may be starting (not yet
    /// logged in) at once.
    pub max_startups_per_client: usize,
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
    /// How often a database's catalog stamp is probed for schema changes
    /// made outside copyguard.
    pub catalog_check: Duration,
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
                .parse("limits.max_connections", parse_positive_count)?
                .unwrap_or(1000),
            max_startups_per_client: src
                .parse("limits.max_startups_per_client", parse_positive_count)?
                .unwrap_or(100),
            startup_timeout: src
                .parse("limits.startup_timeout", parse_positive_duration)?
                .unwrap_or(Duration::from_secs(30)),
            connect_timeout: src
                .parse("limits.connect_timeout", parse_positive_duration)?
                .unwrap_or(Duration::from_secs(10)),
            max_message_size: src
                .parse("limits.max_message_size", parse_size)?
                .unwrap_or(128 << 20),
            shutdown_timeout: src
                .parse("limits.shutdown_timeout", parse_duration)?
                .unwrap_or(Duration::from_secs(30)),
            catalog_refresh: src
                .parse("limits.catalog_refresh", parse_positive_duration)?
                .unwrap_or(Duration::from_secs(300)),
            catalog_check: src
                .parse("limits.catalog_check", parse_positive_duration)?
                .unwrap_or(Duration::from_secs(1)),
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
