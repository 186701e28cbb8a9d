//! Files, ports and child processes.

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::{DevDbError, Result};

/// Creates `<temp>/copyguard-devdb-<pid>-<counter>-<random>` with mode 0700.
pub(super) fn create_temp_dir() -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    let base = std::path::absolute(&base).map_err(|e| {
        io_err(
            format!("resolving temporary directory {}", base.display()),
            e,
        )
    })?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!(
            "copyguard-devdb-{}-{n}-{:08x}",
            std::process::id(),
            random_u32()
        ));
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => continue,
            Err(e) => {
                return Err(io_err(
                    format!("creating temporary directory {}", path.display()),
                    e,
                ))
            }
        }
    }
}

pub(super) fn random_u32() -> u32 {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    hasher.finish() as u32
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub(super) fn free_port() -> Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| io_err("finding a free TCP port on 127.0.0.1".to_owned(), e))
}

/// Writes a file that must not exist yet, with the given mode.
pub(super) fn write_new_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .map_err(|e| io_err(format!("writing {}", path.display()), e))
}

pub(super) fn write_file(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).map_err(|e| io_err(format!("writing {}", path.display()), e))
}

/// The contents of `path` from byte `offset` on, or "" when unreadable.
pub(super) fn read_from(path: &Path, offset: u64) -> String {
    let mut bytes = Vec::new();
    let _ = fs::File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(offset))?;
        file.read_to_end(&mut bytes)
    });
    String::from_utf8_lossy(&bytes).into_owned()
}

pub(super) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub(super) fn run(cmd: &mut Command) -> Result<Output> {
    let desc = describe(cmd);
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io_err(format!("running `{desc}`"), e))?;
    check(&desc, output)
}

pub(super) fn check(desc: &str, output: Output) -> Result<Output> {
    if output.status.success() {
        return Ok(output);
    }
    Err(DevDbError::Command {
        cmd: desc.to_owned(),
        status: output.status.to_string(),
        stderr: command_output(&output),
    })
}

/// stderr of a finished command, or its stdout when stderr is empty.
pub(super) fn command_output(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.trim().is_empty() {
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    } else {
        stderr.trim().to_owned()
    }
}

/// A readable, shell-like rendering of a command line.
pub(super) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c))
            {
                arg.into_owned()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub(super) fn io_err(what: String, source: io::Error) -> DevDbError {
    DevDbError::Io { what, source }
}
