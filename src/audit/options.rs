//! Settings of the block log and the file names derived from the log path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::keys::{CHAIN_KEY_FILE, PUBLIC_KEY_FILE, SIGNING_KEY_FILE};

/// When written records are forced to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// `fdatasync` before a record is acknowledged (group commit: one sync
    /// per batch of concurrent records).
    Every,
    /// Written to the operating system before a record is acknowledged (a
    /// killed copyguard loses nothing), `fdatasync` at this interval (a
    /// power loss may lose that long).
    Interval(Duration),
}

/// Settings of the block log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// The live log file; rotated files sit beside it.
    pub path: PathBuf,
    /// The anchor file.
    pub anchors: PathBuf,
    /// The chain key file (HMAC-SHA-256).
    pub chain_key_file: PathBuf,
    /// The anchor signing key file (Ed25519).
    pub signing_key_file: PathBuf,
    /// Create both key files (mode 0600) on open when neither exists.
    pub generate_keys: bool,
    /// Time between signed anchors while records arrive.
    pub anchor_interval: Duration,
    /// When records reach the disk.
    pub flush: FlushPolicy,
    /// Rotate the live file once it would grow past this many bytes.
    pub rotate_size: Option<u64>,
    /// Rotate the live file once its first record is this old.
    pub rotate_interval: Option<Duration>,
    /// Also record fingerprints of production sessions' statements.
    pub production_statements: bool,
}

/// Default live log file, relative to the working directory.
pub const DEFAULT_PATH: &str = "copyguard-audit.log";
/// Default anchor interval.
pub const DEFAULT_ANCHOR_INTERVAL: Duration = Duration::from_secs(60);
/// Default rotation size.
pub const DEFAULT_ROTATE_SIZE: u64 = 100 << 20;
/// Default rotation interval.
pub const DEFAULT_ROTATE_INTERVAL: Duration = Duration::from_secs(24 * 3600);

impl AuditConfig {
    /// Defaults for a log at `path`: anchors and generated keys beside it
    /// (see [`LogPaths`]), flush every record, anchors every minute,
    /// rotation at 100 MiB or a day.
    pub fn for_path(path: &Path) -> AuditConfig {
        let derived = LogPaths::for_log(path);
        AuditConfig {
            path: path.to_owned(),
            anchors: derived.anchors,
            chain_key_file: derived.chain_key,
            signing_key_file: derived.signing_key,
            generate_keys: true,
            anchor_interval: DEFAULT_ANCHOR_INTERVAL,
            flush: FlushPolicy::Every,
            rotate_size: Some(DEFAULT_ROTATE_SIZE),
            rotate_interval: Some(DEFAULT_ROTATE_INTERVAL),
            production_statements: false,
        }
    }

    /// Defaults for a log named `copyguard-audit.log` in `dir` (demo, tests).
    pub fn in_dir(dir: &Path) -> AuditConfig {
        AuditConfig::for_path(&dir.join(DEFAULT_PATH))
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig::for_path(Path::new(DEFAULT_PATH))
    }
}

/// The files that belong to a log, by convention: for `dir/NAME.log`,
/// anchors in `dir/NAME.anchors` and keys in `dir/NAME.keys/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPaths {
    /// Anchor file.
    pub anchors: PathBuf,
    /// Chain key.
    pub chain_key: PathBuf,
    /// Signing key.
    pub signing_key: PathBuf,
    /// Public key.
    pub public_key: PathBuf,
}

impl LogPaths {
    /// The conventional files of the log at `path` (live or rotated).
    pub fn for_log(path: &Path) -> LogPaths {
        let dir = path.parent().unwrap_or(Path::new(""));
        let base = base_name(path);
        let keys = dir.join(format!("{base}.keys"));
        LogPaths {
            anchors: dir.join(format!("{base}.anchors")),
            chain_key: keys.join(CHAIN_KEY_FILE),
            signing_key: keys.join(SIGNING_KEY_FILE),
            public_key: keys.join(PUBLIC_KEY_FILE),
        }
    }
}

/// `NAME` of `NAME.log` and of a rotated `NAME.000000000042.log`.
fn base_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, _) = split_ext(&name);
    match stem.rsplit_once('.') {
        Some((base, seq)) if !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()) => {
            base.to_owned()
        }
        _ => stem.to_owned(),
    }
}

/// Splits `name.ext` into (`name`, `Some("ext")`).
pub(crate) fn split_ext(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, Some(ext)),
        _ => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_paths() {
        let p = LogPaths::for_log(Path::new("/var/log/cg/audit.log"));
        assert_eq!(p.anchors, Path::new("/var/log/cg/audit.anchors"));
        assert_eq!(p.chain_key, Path::new("/var/log/cg/audit.keys/chain.key"));
        let rotated = LogPaths::for_log(Path::new("/var/log/cg/audit.000000000042.log"));
        assert_eq!(rotated, p);
        let bare = LogPaths::for_log(Path::new("audit"));
        assert_eq!(bare.anchors, Path::new("audit.anchors"));
        assert_eq!(
            AuditConfig::default().anchors,
            Path::new("copyguard-audit.anchors")
        );
    }
}
