//! Where records are written: the live log file, its rotation, and finding
//! where an existing log set ends.
//!
//! The live file keeps the configured name. Rotation renames it to
//! `NAME.<first seq, 12 digits>.EXT` (e.g. `copyguard-audit.000000000001.log`)
//! and starts a new live file; names sort in chain order, and `verify`
//! orders files by their first record anyway. A batch is appended with one
//! `write`; if that (or the sync) fails, the file is cut back to where the
//! batch began, so a failed batch leaves nothing behind.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::lines;
use super::options::split_ext;
use super::record::Sealed;
use super::AuditError;

/// The writer's storage. [`FileSink`] is the real one; tests wrap it to
/// emulate a full disk.
pub(crate) trait Sink: Send {
    /// Appends complete lines, then syncs them when `sync`. All or nothing.
    /// `first` is the seq and time of the batch's first record.
    fn append(&mut self, batch: &[u8], first: (u64, SystemTime), sync: bool) -> io::Result<()>;
    /// Forces written lines to disk.
    fn sync(&mut self) -> io::Result<()>;
    /// Whether the live file should be rotated before `incoming` more bytes.
    fn rotation_due(&self, now: SystemTime, incoming: usize) -> bool;
    /// Renames the live file aside; returns the new name of the old file.
    fn rotate(&mut self) -> io::Result<String>;
    /// Name of the live file, for anchors.
    fn live_name(&self) -> String;
}

/// How an existing log set ends, found when the log is opened.
#[derive(Debug)]
pub(crate) struct Resume {
    /// The last record, if there is one.
    pub tail: Option<Sealed>,
    /// The file holding it.
    pub tail_file: PathBuf,
    /// Bytes of an incomplete final line that were cut off.
    pub discarded: u64,
}

/// The live log file and its rotation.
pub(crate) struct FileSink {
    path: PathBuf,
    file: Option<File>,
    id: Option<(u64, u64)>,
    len: u64,
    first: Option<(u64, SystemTime)>,
    rotate_size: Option<u64>,
    rotate_interval: Option<Duration>,
}

impl FileSink {
    /// Opens the live file (creating it and its directory if needed) and
    /// finds the last record of the log set.
    pub fn open(
        path: &Path,
        rotate_size: Option<u64>,
        rotate_interval: Option<Duration>,
    ) -> Result<(FileSink, Resume), AuditError> {
        let ctx = |what: &'static str| move |e| AuditError::io(what, path, e);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| AuditError::io("cannot create the log directory", parent, e))?;
        }
        let mut sink = FileSink {
            path: path.to_owned(),
            file: None,
            id: None,
            len: 0,
            first: None,
            rotate_size,
            rotate_interval,
        };
        sink.reopen().map_err(ctx("cannot open the audit log"))?;
        let file = sink.file.as_mut().expect("opened");
        let discarded = lines::drop_torn_tail(file).map_err(ctx("cannot read the audit log"))?;
        sink.len = file
            .metadata()
            .map_err(ctx("cannot read the audit log"))?
            .len();
        let mut tail_file = path.to_owned();
        let mut tail_line = lines::last_line(file)
            .map_err(ctx("cannot read the audit log"))?
            .map(|(l, _)| l);
        if let Some(first) = lines::first_line(file).map_err(ctx("cannot read the audit log"))? {
            let first = parse_line(&first, path)?;
            let time = first.record.system_time().unwrap_or_else(SystemTime::now);
            sink.first = Some((first.record.seq, time));
        } else if let Some((_, rotated)) = rotated_files(path)?.pop() {
            let mut f = File::open(&rotated)
                .map_err(|e| AuditError::io("cannot read the last rotated log", &rotated, e))?;
            tail_line = lines::last_line(&mut f)
                .map_err(|e| AuditError::io("cannot read the last rotated log", &rotated, e))?
                .map(|(l, _)| l);
            tail_file = rotated;
        }
        let tail = match tail_line {
            Some(line) => Some(parse_line(&line, &tail_file)?),
            None => None,
        };
        Ok((
            sink,
            Resume {
                tail,
                tail_file,
                discarded,
            },
        ))
    }

    /// Makes sure the handle writes to the file now at `path`: a live file
    /// that was removed or renamed is replaced by a new one (the chain goes
    /// on in it); one replaced by a non-empty foreign file is an error.
    fn ensure_open(&mut self) -> io::Result<()> {
        let current = match std::fs::metadata(&self.path) {
            Ok(meta) => Some((meta.dev(), meta.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if self.file.is_some() && current.is_some() && current == self.id {
            return Ok(());
        }
        if self.file.is_some() {
            tracing::warn!(path = %self.path.display(), "the live audit log was moved or removed; continuing the chain in a new file");
        }
        self.reopen()
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.file = None;
        let existed = self.path.exists();
        let file = File::options()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&self.path)?;
        let meta = file.metadata()?;
        let id = (meta.dev(), meta.ino());
        if self.id == Some(id) {
            if meta.len() > self.len {
                file.set_len(self.len)?;
            } else if meta.len() < self.len {
                tracing::error!(path = %self.path.display(), "the live audit log was truncated by someone else");
                self.len = meta.len();
            }
        } else if self.id.is_some() {
            if meta.len() > 0 && meta.is_file() {
                return Err(io::Error::other(
                    "the live audit log was replaced by another, non-empty file",
                ));
            }
            self.len = 0;
            self.first = None;
        } else {
            self.len = meta.len();
        }
        if !existed {
            sync_dir(&self.path);
        }
        self.id = Some(id);
        self.file = Some(file);
        Ok(())
    }

    fn rotated_name(&self, first_seq: u64) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rotated = match split_ext(&name) {
            (stem, Some(ext)) => format!("{stem}.{first_seq:012}.{ext}"),
            (stem, None) => format!("{stem}.{first_seq:012}"),
        };
        self.path.with_file_name(rotated)
    }
}

impl Sink for FileSink {
    fn append(&mut self, batch: &[u8], first: (u64, SystemTime), sync: bool) -> io::Result<()> {
        self.ensure_open()?;
        let file = self.file.as_mut().expect("opened above");
        let written = file
            .write_all(batch)
            .and_then(|()| if sync { file.sync_data() } else { Ok(()) });
        match written {
            Ok(()) => {
                self.len += batch.len() as u64;
                self.first.get_or_insert(first);
                Ok(())
            }
            Err(e) => {
                let _ = file.set_len(self.len);
                self.file = None;
                Err(e)
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match &self.file {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }

    fn rotation_due(&self, now: SystemTime, incoming: usize) -> bool {
        let Some((_, started)) = self.first else {
            return false;
        };
        let by_size = self
            .rotate_size
            .is_some_and(|max| self.len + incoming as u64 > max);
        let by_time = self
            .rotate_interval
            .is_some_and(|every| now.duration_since(started).is_ok_and(|age| age >= every));
        self.len > 0 && (by_size || by_time)
    }

    fn rotate(&mut self) -> io::Result<String> {
        let Some((first_seq, _)) = self.first else {
            return Err(io::Error::other("nothing to rotate"));
        };
        self.ensure_open()?;
        self.sync()?;
        let target = self.rotated_name(first_seq);
        if target.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists already", target.display()),
            ));
        }
        std::fs::rename(&self.path, &target)?;
        sync_dir(&self.path);
        self.file = None;
        self.id = None;
        self.len = 0;
        self.first = None;
        Ok(target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default())
    }

    fn live_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Rotated files of the live log at `path`, by first seq.
pub fn rotated_files(path: &Path) -> Result<Vec<(u64, PathBuf)>, AuditError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = split_ext(&name);
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| AuditError::io("cannot list the log directory", &dir, e))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name
            .strip_prefix(stem)
            .and_then(|r| r.strip_prefix('.'))
        else {
            continue;
        };
        let digits = match ext {
            Some(ext) => rest.strip_suffix(ext).and_then(|r| r.strip_suffix('.')),
            None => Some(rest),
        };
        if let Some(seq) = digits
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u64>().ok())
        {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn parse_line(line: &str, file: &Path) -> Result<Sealed, AuditError> {
    Sealed::parse(line).map_err(|e| AuditError::Resume {
        message: format!(
            "{}: a line at the end of the log is not a copyguard record ({e:?}); run `copyguard audit verify`",
            file.display()
        ),
    })
}

/// Makes a new or renamed directory entry durable (best effort).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_names_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let (mut sink, resume) = FileSink::open(&path, Some(10), None).unwrap();
        assert!(resume.tail.is_none());
        let now = SystemTime::now();
        sink.append(b"aaaa\n", (1, now), true).unwrap();
        assert!(!sink.rotation_due(now, 5));
        assert!(sink.rotation_due(now, 6));
        assert_eq!(sink.rotate().unwrap(), "audit.000000000001.log");
        sink.append(b"bbbb\n", (2, now), false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"bbbb\n");
        std::fs::write(dir.path().join("audit.000000000001.txt"), "").unwrap();
        std::fs::write(dir.path().join("audit.x.log"), "").unwrap();
        let rotated = rotated_files(&path).unwrap();
        assert_eq!(rotated.len(), 1);
        assert_eq!(rotated[0].0, 1);
    }

    #[test]
    fn rotation_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let (mut sink, _) = FileSink::open(&path, None, Some(Duration::from_secs(60))).unwrap();
        let t0 = SystemTime::now();
        assert!(!sink.rotation_due(t0, 1), "an empty file never rotates");
        sink.append(b"x\n", (1, t0), false).unwrap();
        assert!(!sink.rotation_due(t0 + Duration::from_secs(59), 1));
        assert!(sink.rotation_due(t0 + Duration::from_secs(60), 1));
    }

    #[test]
    fn a_removed_live_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let (mut sink, _) = FileSink::open(&path, None, None).unwrap();
        let now = SystemTime::now();
        sink.append(b"one\n", (1, now), false).unwrap();
        std::fs::remove_file(&path).unwrap();
        sink.append(b"two\n", (2, now), false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "foreign\n").unwrap();
        assert!(sink.append(b"three\n", (3, now), false).is_err());
    }
}
