//! The leak scan of dumps: every file of every format (the directory's
//! files, the tar's members) searched for every fixture value in every
//! encoding the leak suite uses ([`find_leak`]).

use std::path::Path;

use crate::guard_fixture::*;
use crate::support::*;
use crate::tap::{find_leak, forms};

use super::work_dir;

/// Every fixture secret found in a dump at `path`, in every form the leak
/// suite searches for ([`find_leak`]: as is, upper and lower case,
/// reversed, md5, base64, hex) and in any case: the file itself, every
/// file under a directory, and every member of a tar archive (the custom
/// and directory formats are written uncompressed, `-Z 0`).
pub(super) fn leaks_in(path: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (name, bytes) in dump_files(path) {
        if let Some(leak) = find_leak(&bytes, secrets()) {
            found.push(format!("{name}: {leak}"));
        }
        let lower = bytes.to_ascii_lowercase();
        for s in secrets() {
            let needle = s.to_ascii_lowercase();
            if lower.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(format!("{name}: {s} (any case)"));
            }
        }
    }
    found
}

/// The files of a dump, by name: `path` itself or every file under it,
/// and the members of every tar archive among them.
pub(super) fn dump_files(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            out.extend(dump_files(&entry.unwrap().path()));
        }
        return out;
    }
    let bytes = std::fs::read(path).unwrap();
    let name = path.display().to_string();
    for (member, data) in tar_members(&bytes) {
        out.push((format!("{name}:{member}"), data));
    }
    out.push((name, bytes));
    out
}

/// The members of a ustar archive (what `pg_dump -Ft` writes); none when
/// `bytes` is not one.
fn tar_members(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut members = Vec::new();
    let mut at = 0;
    while at + 512 <= bytes.len() {
        let header = &bytes[at..at + 512];
        if header.iter().all(|&b| b == 0) || &header[257..262] != b"ustar" {
            break;
        }
        let field = |r: std::ops::Range<usize>| {
            String::from_utf8_lossy(&header[r])
                .trim_matches(|c: char| c == '\0' || c == ' ')
                .to_owned()
        };
        let name = field(0..100);
        let Ok(size) = usize::from_str_radix(&field(124..136), 8) else {
            break;
        };
        let start = at + 512;
        let end = (start + size).min(bytes.len());
        members.push((name, bytes[start..end].to_vec()));
        at = start + size.div_ceil(512) * 512;
    }
    members
}

#[test]
fn the_dump_leak_scan_finds_every_encoding_in_every_file() {
    let secret = &secrets()[0];
    let dir = work_dir().join("scan-control");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("inner")).unwrap();
    std::fs::write(dir.join("clean.dat"), "nothing here").unwrap();
    assert_eq!(leaks_in(&dir), Vec::<String>::new());
    for (form, needle) in forms(secret) {
        let file = dir.join("inner").join("1234.dat");
        let mut data = b"prefix ".to_vec();
        data.extend(&needle);
        std::fs::write(&file, &data).unwrap();
        assert!(!leaks_in(&dir).is_empty(), "{form} under a directory");
        let tar = dir.join("dump.tar");
        let out = std::process::Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(dir.join("inner"))
            .arg("1234.dat")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        std::fs::remove_file(&file).unwrap();
        let found = leaks_in(&tar);
        assert!(
            found.iter().any(|f| f.contains("dump.tar:1234.dat")),
            "{form} in a tar member: {found:?}"
        );
        std::fs::remove_file(&tar).unwrap();
    }
}

/// The dump as SQL, through pg_restore (any format but plain), so that
/// what a restore would run is scanned too.
pub(super) fn restored_sql(path: &Path) -> Vec<u8> {
    let out = client("pg_restore")
        .args(["-f", "-"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_restore -f -: {:?}", text(&out));
    out.stdout
}
