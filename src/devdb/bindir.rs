//! Finding the PostgreSQL server programs.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{DevDbError, Result};

pub fn find_bindir() -> Result<PathBuf> {
    let mut searched = Vec::new();

    match which("initdb") {
        Some(initdb) => {
            let on_path = initdb.parent().map(Path::to_path_buf);
            let resolved = fs::canonicalize(&initdb)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf));
            for dir in [resolved, on_path.clone()].into_iter().flatten() {
                if is_server_bindir(&dir) {
                    return Ok(dir);
                }
            }
            let shown = on_path.unwrap_or_default();
            searched.push(format!(
                "{} (initdb on PATH, but no pg_ctl)",
                shown.display()
            ));
        }
        None => searched.push("PATH (no initdb)".to_owned()),
    }

    match Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => {
            let dir = PathBuf::from(OsStr::from_bytes(out.stdout.trim_ascii()));
            if is_server_bindir(&dir) {
                return Ok(dir);
            }
            searched.push(format!("{} (pg_config --bindir)", dir.display()));
        }
        _ => searched.push("pg_config --bindir (unavailable)".to_owned()),
    }

    let root = Path::new("/usr/lib/postgresql");
    if let Some(dir) = newest_versioned_bindir(root) {
        return Ok(dir);
    }
    searched.push(format!("{}/*/bin", root.display()));

    Err(DevDbError::BinariesNotFound {
        searched: searched.join("; "),
    })
}

/// The `bin` directory of the highest numeric version under `root` that holds the server programs.
pub(super) fn newest_versioned_bindir(root: &Path) -> Option<PathBuf> {
    fs::read_dir(root)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            is_server_bindir(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

pub(super) fn is_server_bindir(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("pg_ctl"))
}

pub(super) fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds `name` on PATH.
pub(super) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}
