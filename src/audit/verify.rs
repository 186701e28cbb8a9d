//! `audit verify`: checks a set of log files against the chain key and the
//! signed anchors, and names the first thing wrong.
//!
//! Files are put in chain order by their first record, so their names do
//! not matter. Every line must be a sealed record whose hash verifies
//! under the chain key, whose seq is the previous seq + 1 and whose `prev`
//! is the previous record's hash; the chain must begin at seq 1 (or, with
//! `from_anchor`, right after an anchored record). Every anchor must be
//! signed, numbered without gaps and chained; every record it covers must
//! be in the log with the anchored hash, so a log cut short of its latest
//! anchor fails. Finally the last anchor must be a clean `stop` at the
//! last record, unless the log is still being written (`live`).

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use super::anchor::{read_anchors, AnchorKind, SignedAnchor};
use super::chain::{Hash, GENESIS};
use super::keys::ChainKey;
use super::lines;
use super::record::{EventName, LineError, Sealed};
use super::AuditError;

/// Verification options.
#[derive(Clone, Copy, Debug, Default)]
pub struct VerifyOptions {
    /// The log may still be written: records after the last anchor and an
    /// incomplete final line are reported, not failed.
    pub live: bool,
    /// The set may start after seq 1 (older files removed by retention),
    /// provided its first record follows an anchored one.
    pub from_anchor: bool,
}

/// The seq range of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRange {
    /// The file.
    pub path: PathBuf,
    /// First seq.
    pub first: u64,
    /// Last seq.
    pub last: u64,
}

/// What a successful verification found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Records checked.
    pub records: u64,
    /// First seq.
    pub first_seq: u64,
    /// Last seq.
    pub last_seq: u64,
    /// Time of the first record.
    pub first_time: String,
    /// Time of the last record.
    pub last_time: String,
    /// Files in chain order.
    pub files: Vec<FileRange>,
    /// Anchors in the anchor file.
    pub anchors: usize,
    /// Anchors matched against a record.
    pub anchors_matched: usize,
    /// The last anchor: number, kind, seq.
    pub last_anchor: Option<(u64, AnchorKind, u64)>,
    /// Records after the last anchor (only with `live`).
    pub unanchored: u64,
    /// Things a reviewer should know that are not failures.
    pub notes: Vec<String>,
}

/// Where a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A line of a log file.
    Log {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
    },
    /// A line of the anchor file.
    Anchors {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
    },
    /// The end of the log set.
    End,
}

/// The first problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Where.
    pub location: Location,
    /// The record's seq, when known.
    pub seq: Option<u64>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::Log { path, line } => write!(f, "{}:{line}: ", path.display())?,
            Location::Anchors { path, line } => write!(f, "{}:{line} (anchors): ", path.display())?,
            Location::End => write!(f, "end of log: ")?,
        }
        if let Some(seq) = self.seq {
            write!(f, "record seq {seq}: ")?;
        }
        f.write_str(&self.problem)
    }
}

/// Why verification did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] AuditError),
    /// The log or anchors are not intact.
    #[error("{0}")]
    Failed(Failure),
}

/// Verifies log files (any order) against an anchor file.
pub fn verify(
    logs: &[PathBuf],
    anchors_path: &Path,
    key: &ChainKey,
    public: &VerifyingKey,
    opts: VerifyOptions,
) -> Result<Report, VerifyError> {
    let fail = |location: Location, seq: Option<u64>, problem: String| {
        VerifyError::Failed(Failure {
            location,
            seq,
            problem,
        })
    };
    let anchors = read_anchors(anchors_path, public)?.map_err(|(line, p)| {
        fail(
            Location::Anchors {
                path: anchors_path.to_owned(),
                line,
            },
            None,
            p.to_string(),
        )
    })?;
    let mut report = Report {
        anchors: anchors.len(),
        last_anchor: anchors
            .last()
            .map(|(_, a)| (a.anchor.anchor, a.anchor.kind, a.anchor.seq)),
        ..Report::default()
    };
    let files = order_files(logs, &mut report)?;
    let mut state = Walk {
        key,
        anchors: &anchors,
        anchors_path,
        next_anchor: 0,
        matched: 0,
        expected: None,
        prev: GENESIS,
        opts,
        last_location: Location::End,
    };
    for (i, path) in files.iter().enumerate() {
        let last_file = i + 1 == files.len();
        let range = state.walk_file(path, last_file, &mut report)?;
        report.files.extend(range);
    }
    report.anchors_matched = state.matched;
    if report.records == 0 {
        return Err(fail(Location::End, None, "no records".into()));
    }
    if let Some((line, a)) = anchors.get(state.next_anchor) {
        return Err(fail(
            state.last_location.clone(),
            Some(report.last_seq),
            format!(
                "the log ends here, but anchor #{} ({}, anchors line {line}) covers seq {}: records were removed from the end (truncated)",
                a.anchor.anchor,
                a.anchor.kind.as_str(),
                a.anchor.seq
            ),
        ));
    }
    let Some((line, last)) = anchors.last() else {
        return Err(fail(
            Location::Anchors {
                path: anchors_path.to_owned(),
                line: 1,
            },
            None,
            "no anchors: truncation cannot be ruled out".into(),
        ));
    };
    let clean = last.anchor.kind == AnchorKind::Stop && last.anchor.seq == report.last_seq;
    if !clean {
        report.unanchored = report.last_seq.saturating_sub(last.anchor.seq);
        if !opts.live {
            return Err(fail(
                Location::End,
                Some(report.last_seq),
                format!(
                    "no clean end: the last anchor (#{}, {}, anchors line {line}) covers seq {}, and no stop anchor covers the last record; {} record(s) after it are unanchored. copyguard is still running or did not stop cleanly, or the log's end and its stop anchor were cut; use --live for a log still being written",
                    last.anchor.anchor,
                    last.anchor.kind.as_str(),
                    last.anchor.seq,
                    report.unanchored
                ),
            ));
        }
    }
    Ok(report)
}

/// Puts files in chain order by their first record; empty files are noted.
fn order_files(logs: &[PathBuf], report: &mut Report) -> Result<Vec<PathBuf>, VerifyError> {
    let mut firsts = Vec::new();
    for path in logs {
        let mut file =
            File::open(path).map_err(|e| AuditError::io("cannot read the audit log", path, e))?;
        let first = lines::first_line(&mut file)
            .map_err(|e| AuditError::io("cannot read the audit log", path, e))?;
        let Some(first) = first else {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if len == 0 {
                report.notes.push(format!("{}: empty", path.display()));
                continue;
            }
            firsts.push((0, path.clone()));
            continue;
        };
        let seq = Sealed::parse(&first).map(|s| s.record.seq).unwrap_or(0);
        firsts.push((seq, path.clone()));
    }
    firsts.sort();
    for pair in firsts.windows(2) {
        if pair[0].0 == pair[1].0 && pair[0].0 != 0 {
            return Err(VerifyError::Failed(Failure {
                location: Location::Log {
                    path: pair[1].1.clone(),
                    line: 1,
                },
                seq: Some(pair[1].0),
                problem: format!(
                    "{} starts with the same record: a file was copied or replaced",
                    pair[0].1.display()
                ),
            }));
        }
    }
    Ok(firsts.into_iter().map(|(_, p)| p).collect())
}

struct Walk<'a> {
    key: &'a ChainKey,
    anchors: &'a [(usize, SignedAnchor)],
    anchors_path: &'a Path,
    next_anchor: usize,
    matched: usize,
    expected: Option<u64>,
    prev: Hash,
    opts: VerifyOptions,
    last_location: Location,
}

impl Walk<'_> {
    fn walk_file(
        &mut self,
        path: &Path,
        last_file: bool,
        report: &mut Report,
    ) -> Result<Option<FileRange>, VerifyError> {
        let file =
            File::open(path).map_err(|e| AuditError::io("cannot read the audit log", path, e))?;
        let mut reader = BufReader::new(file);
        let mut range: Option<FileRange> = None;
        let mut buf = Vec::new();
        let mut n = 0;
        loop {
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| AuditError::io("cannot read the audit log", path, e))?;
            if read == 0 {
                break;
            }
            n += 1;
            let location = Location::Log {
                path: path.to_owned(),
                line: n,
            };
            let fail = |seq: Option<u64>, problem: String| {
                VerifyError::Failed(Failure {
                    location: location.clone(),
                    seq,
                    problem,
                })
            };
            if buf.last() != Some(&b'\n') {
                let mut at_end = [0u8; 1];
                let more = std::io::Read::read(&mut reader, &mut at_end).unwrap_or(0) > 0;
                if self.opts.live && last_file && !more {
                    report.notes.push(format!(
                        "{}:{n}: incomplete final line (being written)",
                        path.display()
                    ));
                    break;
                }
                return Err(fail(
                    None,
                    "incomplete line (no newline): the end of the file was cut".into(),
                ));
            }
            buf.pop();
            let Ok(line) = std::str::from_utf8(&buf) else {
                return Err(fail(
                    None,
                    "line is not UTF-8: not a copyguard record".into(),
                ));
            };
            let sealed = match Sealed::parse(line) {
                Ok(s) => s,
                Err(LineError::NoChainEntry) => {
                    return Err(fail(
                        None,
                        "line without a chain entry: inserted or altered".into(),
                    ))
                }
                Err(LineError::Malformed(e)) => {
                    return Err(fail(None, format!("not a valid record ({e}): altered")))
                }
            };
            let seq = sealed.record.seq;
            if !self.key.check(sealed.canonical.as_bytes(), &sealed.hash) {
                return Err(fail(
                    Some(seq),
                    "hash does not match the record under the chain key: record modified or forged"
                        .into(),
                ));
            }
            self.check_position(&sealed, &location)?;
            self.check_anchors(&sealed, &location)?;
            self.prev = sealed.hash;
            self.expected = Some(seq + 1);
            self.last_location = location;
            report.records += 1;
            if report.records == 1 {
                report.first_seq = seq;
                report.first_time = sealed.record.time.clone();
            }
            report.last_seq = seq;
            report.last_time = sealed.record.time.clone();
            if sealed.record.event == EventName::LogStart {
                let detail = sealed.record.detail.as_deref().unwrap_or("");
                if detail.contains("; ") {
                    report.notes.push(format!("seq {seq}: restart: {detail}"));
                }
            }
            match &mut range {
                Some(r) => r.last = seq,
                None => {
                    range = Some(FileRange {
                        path: path.to_owned(),
                        first: seq,
                        last: seq,
                    })
                }
            }
        }
        Ok(range)
    }

    fn check_position(&self, sealed: &Sealed, location: &Location) -> Result<(), VerifyError> {
        let seq = sealed.record.seq;
        let fail = |problem: String| {
            VerifyError::Failed(Failure {
                location: location.clone(),
                seq: Some(seq),
                problem,
            })
        };
        let prev = &sealed.record.prev;
        match self.expected {
            None if seq == 1 => {
                if *prev != hex::encode(GENESIS) {
                    return Err(fail("the first record does not start the chain".into()));
                }
            }
            None => {
                let anchored = self
                    .anchors
                    .iter()
                    .any(|(_, a)| a.anchor.seq + 1 == seq && hex::encode(a.hash) == *prev);
                if !self.opts.from_anchor {
                    return Err(fail(format!(
                        "the chain starts at seq {seq}, not 1: earlier records or files are missing (pass every rotated file, or --from-anchor if old files were retired)"
                    )));
                }
                if !anchored {
                    return Err(fail(format!(
                        "the chain starts at seq {seq}, and no anchor covers seq {}: the start cannot be trusted",
                        seq - 1
                    )));
                }
            }
            Some(expected) if seq > expected => {
                return Err(fail(format!(
                "seq {expected} expected here: record{} deleted or moved (or a file is missing)",
                if seq - 1 > expected {
                    format!("s {expected}..{} were", seq - 1)
                } else {
                    format!(" {expected} was")
                }
            )))
            }
            Some(expected) if seq < expected => {
                return Err(fail(format!(
                    "out of order: seq {expected} expected here (records reordered or duplicated)"
                )))
            }
            Some(_) => {
                if *prev != hex::encode(self.prev) {
                    return Err(fail(
                        "`prev` is not the previous record's hash: chain broken (record replaced or from another log)"
                            .into(),
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_anchors(&mut self, sealed: &Sealed, location: &Location) -> Result<(), VerifyError> {
        let seq = sealed.record.seq;
        while let Some((line, a)) = self.anchors.get(self.next_anchor) {
            if a.anchor.seq > seq {
                break;
            }
            if a.anchor.seq == seq && a.hash != sealed.hash {
                return Err(VerifyError::Failed(Failure {
                    location: location.clone(),
                    seq: Some(seq),
                    problem: format!(
                        "does not match anchor #{} ({} line {line}): the log was rewritten",
                        a.anchor.anchor,
                        self.anchors_path.display()
                    ),
                }));
            }
            if a.anchor.seq == seq {
                self.matched += 1;
            }
            self.next_anchor += 1;
        }
        Ok(())
    }
}
