//! Parsers of setting values: addresses, files, durations, sizes.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(super) fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("{s:?} is not a HOST:PORT address: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

pub(super) fn parse_host_port(s: &str) -> Result<(String, u16), String> {
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

pub(super) fn parse_file(s: &str) -> Result<PathBuf, String> {
    let path = Path::new(s);
    std::fs::File::open(path)
        .map(|_| path.to_owned())
        .map_err(|e| format!("cannot read {s:?}: {e}"))
}

pub(super) fn parse_dir(s: &str) -> Result<PathBuf, String> {
    let path = Path::new(s);
    if path.is_dir() {
        Ok(path.to_owned())
    } else {
        Err(format!("{s:?} is not a directory"))
    }
}

/// A count that must be more than zero.
pub(super) fn parse_positive_count(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected a positive number, got {s:?}"))
}

/// A duration that must be more than zero: a zero timeout would fail
/// every login, a zero refresh reload the catalog for every statement.
pub(super) fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).and_then(|d| {
        if d.is_zero() {
            Err(format!("{s:?}: must be more than 0"))
        } else {
            Ok(d)
        }
    })
}

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 30s or 500ms: {e}"))
}

pub(super) fn parse_size(s: &str) -> Result<usize, String> {
    let size = parse_bytes(s)?;
    if !(1024..=(1 << 30)).contains(&size) {
        return Err(format!("{s:?} must be between 1KiB and 1GiB"));
    }
    Ok(size as usize)
}

/// A byte count with an optional unit (B, KiB, MiB, GiB, TiB).
pub(super) fn parse_bytes(s: &str) -> Result<u64, String> {
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
