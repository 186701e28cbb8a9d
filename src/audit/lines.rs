//! Line-level file helpers shared by the log and the anchor file: the first
//! and last complete line of a file, and cutting off an incomplete final
//! line left by a crash mid-write.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// Longest line looked for at either end of a file.
const MAX_LINE: u64 = 1 << 20;

/// The first line of `file` (without newline), if it has a complete one.
pub fn first_line(file: &mut File) -> io::Result<Option<String>> {
    file.seek(SeekFrom::Start(0))?;
    let len = file.metadata()?.len();
    let mut buf = Vec::new();
    file.take(MAX_LINE.min(len)).read_to_end(&mut buf)?;
    Ok(buf
        .iter()
        .position(|b| *b == b'\n')
        .map(|end| String::from_utf8_lossy(&buf[..end]).into_owned()))
}

/// The last complete line of `file` (without newline) and the length of
/// the file up to the end of that line. Bytes after the last newline (an
/// incomplete line) are not part of it.
pub fn last_line(file: &mut File) -> io::Result<Option<(String, u64)>> {
    let len = file.metadata()?.len();
    let start = len.saturating_sub(MAX_LINE);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    file.take(len - start).read_to_end(&mut buf)?;
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
        return Ok(None);
    };
    let begin = buf[..end]
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    if begin == 0 && start > 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "last line longer than 1 MiB",
        ));
    }
    let line = String::from_utf8_lossy(&buf[begin..end]).into_owned();
    Ok(Some((line, start + end as u64 + 1)))
}

/// Cuts an incomplete final line (no newline) off `file`; returns how many
/// bytes were removed.
pub fn drop_torn_tail(file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let keep = last_line(file)?.map(|(_, end)| end).unwrap_or(0);
    if keep < len {
        file.set_len(keep)?;
        file.sync_data()?;
    }
    Ok(len - keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn first_last_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = File::options()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .unwrap();
        assert_eq!(first_line(&mut f).unwrap(), None);
        assert_eq!(last_line(&mut f).unwrap(), None);
        f.write_all(b"one\ntwo\nthr").unwrap();
        assert_eq!(first_line(&mut f).unwrap().as_deref(), Some("one"));
        assert_eq!(last_line(&mut f).unwrap(), Some(("two".into(), 8)));
        assert_eq!(drop_torn_tail(&mut f).unwrap(), 3);
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\n");
        assert_eq!(drop_torn_tail(&mut f).unwrap(), 0);
        f.write_all(b"three\n").unwrap();
        assert_eq!(last_line(&mut f).unwrap(), Some(("three".into(), 14)));
    }
}
