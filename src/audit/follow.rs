//! Following a live log as it grows and rotates (`audit tail`).
//!
//! The follower keeps the open file; when the live path names another file
//! (rotation renamed the old one aside), it reads what is left of the old
//! file and then moves to the new one from its start. Records carry their
//! seq, so a record is never shown twice, and when the next record shown
//! would skip some (several rotations between two polls), the missing
//! ones are read from the rotated files first.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Bytes read back from the end for the initial lines.
const BACKLOG_BYTES: u64 = 1 << 20;

/// Reads complete lines from a live log.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: Option<(File, (u64, u64))>,
    partial: Vec<u8>,
    last_seq: Option<u64>,
}

#[derive(serde::Deserialize)]
struct SeqOnly {
    seq: u64,
}

fn seq_of(line: &str) -> Option<u64> {
    serde_json::from_str::<SeqOnly>(line).ok().map(|s| s.seq)
}

impl Follower {
    /// Starts following `path`, positioned so that the first
    /// [`Follower::poll`] returns the last `last` complete lines.
    pub fn new(path: &Path, last: usize) -> io::Result<Follower> {
        let mut f = Follower {
            path: path.to_owned(),
            file: None,
            partial: Vec::new(),
            last_seq: None,
        };
        if let Some((mut file, id)) = f.open_live()? {
            let len = file.metadata()?.len();
            let start = len.saturating_sub(BACKLOG_BYTES);
            file.seek(SeekFrom::Start(start))?;
            let mut buf = Vec::new();
            (&mut file).take(len - start).read_to_end(&mut buf)?;
            let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            let mut begin = complete;
            let mut seen = 0;
            while begin > 0 && seen < last {
                begin = buf[..begin - 1]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1);
                seen += 1;
            }
            if start > 0 && begin == 0 {
                begin = buf.iter().position(|b| *b == b'\n').map_or(0, |p| p + 1);
            }
            f.last_seq = if begin > 0 {
                let before = buf[..begin - 1]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1);
                seq_of(&String::from_utf8_lossy(&buf[before..begin - 1]))
            } else {
                let end = buf.iter().position(|b| *b == b'\n').unwrap_or(0);
                seq_of(&String::from_utf8_lossy(&buf[..end])).map(|s| s.saturating_sub(1))
            };
            file.seek(SeekFrom::Start(start + begin as u64))?;
            f.file = Some((file, id));
        }
        Ok(f)
    }

    /// Returns the complete lines written since the last call (without
    /// newlines), following rotation.
    pub fn poll(&mut self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        loop {
            self.drain(&mut out)?;
            let current = match std::fs::metadata(&self.path) {
                Ok(m) => Some((m.dev(), m.ino())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            let open = self.file.as_ref().map(|(_, id)| *id);
            if current.is_none() || current == open {
                return Ok(out);
            }
            if open.is_some() {
                // Rotated: what was written before the rename, then switch.
                self.drain(&mut out)?;
                self.partial.clear();
            }
            self.file = self.open_live()?;
            if self.file.is_none() {
                return Ok(out);
            }
        }
    }

    /// Reads the open file to its end, collecting complete lines.
    fn drain(&mut self, out: &mut Vec<String>) -> io::Result<()> {
        let Some((file, _)) = &mut self.file else {
            return Ok(());
        };
        file.read_to_end(&mut self.partial)?;
        let mut lines = Vec::new();
        let mut begin = 0;
        while let Some(p) = self.partial[begin..].iter().position(|b| *b == b'\n') {
            lines.push(String::from_utf8_lossy(&self.partial[begin..begin + p]).into_owned());
            begin += p + 1;
        }
        self.partial.drain(..begin);
        for line in lines {
            self.emit(line, out)?;
        }
        Ok(())
    }

    /// Shows a line unless its record was shown already; fills a gap
    /// before it from the rotated files.
    fn emit(&mut self, line: String, out: &mut Vec<String>) -> io::Result<()> {
        let Some(seq) = seq_of(&line) else {
            out.push(line);
            return Ok(());
        };
        if let Some(last) = self.last_seq {
            if seq <= last {
                return Ok(());
            }
            if seq > last + 1 {
                self.catch_up(seq, out)?;
            }
        }
        out.push(line);
        self.last_seq = Some(seq);
        Ok(())
    }

    /// Shows records after the last one shown and before `before` from
    /// the rotated files.
    fn catch_up(&mut self, before: u64, out: &mut Vec<String>) -> io::Result<()> {
        let rotated = super::sink::rotated_files(&self.path).map_err(io::Error::other)?;
        for (i, (first, path)) in rotated.iter().enumerate() {
            let last = self.last_seq.unwrap_or(0);
            let next_first = rotated.get(i + 1).map_or(u64::MAX, |(f, _)| *f);
            if *first >= before || next_first <= last + 1 {
                continue;
            }
            for line in std::fs::read_to_string(path)?.lines() {
                if let Some(seq) = seq_of(line) {
                    if seq > self.last_seq.unwrap_or(0) && seq < before {
                        out.push(line.to_owned());
                        self.last_seq = Some(seq);
                    }
                }
            }
        }
        Ok(())
    }

    fn open_live(&self) -> io::Result<Option<(File, (u64, u64))>> {
        match File::open(&self.path) {
            Ok(file) => {
                let m = file.metadata()?;
                Ok(Some((file, (m.dev(), m.ino()))))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn follows_growth_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "1\n2\n3\n").unwrap();
        let mut f = Follower::new(&path, 2).unwrap();
        assert_eq!(f.poll().unwrap(), vec!["2", "3"]);
        let mut w = File::options().append(true).open(&path).unwrap();
        w.write_all(b"4\n5").unwrap();
        assert_eq!(f.poll().unwrap(), vec!["4"]);
        w.write_all(b"\n").unwrap();
        std::fs::rename(&path, dir.path().join("a.000000000001.log")).unwrap();
        assert_eq!(f.poll().unwrap(), vec!["5"]);
        std::fs::write(&path, "6\n").unwrap();
        assert_eq!(f.poll().unwrap(), vec!["6"]);
        assert!(f.poll().unwrap().is_empty());
    }

    #[test]
    fn several_rotations_between_polls_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let rec = |seq: u64| format!("{{\"seq\":{seq}}}\n");
        std::fs::write(&path, rec(1) + &rec(2)).unwrap();
        let mut f = Follower::new(&path, 10).unwrap();
        assert_eq!(f.poll().unwrap().len(), 2);
        std::fs::rename(&path, dir.path().join("a.000000000001.log")).unwrap();
        std::fs::write(&path, rec(3)).unwrap();
        std::fs::rename(&path, dir.path().join("a.000000000003.log")).unwrap();
        std::fs::write(&path, rec(4) + &rec(5)).unwrap();
        let lines = f.poll().unwrap();
        assert_eq!(
            lines,
            [rec(3), rec(4), rec(5)]
                .iter()
                .map(|l| l.trim().to_owned())
                .collect::<Vec<_>>()
        );
        std::fs::write(&path, rec(4) + &rec(5) + &rec(6)).unwrap();
        assert_eq!(f.poll().unwrap(), vec![rec(6).trim().to_owned()]);
    }

    #[test]
    fn waits_for_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = Follower::new(&path, 10).unwrap();
        assert!(f.poll().unwrap().is_empty());
        std::fs::write(&path, "x\n").unwrap();
        assert_eq!(f.poll().unwrap(), vec!["x"]);
    }
}
