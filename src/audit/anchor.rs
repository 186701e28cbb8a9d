//! Signed checkpoints of the chain, kept in a separate anchor file.
//!
//! An anchor states "record `seq` has hash `hash`" at `time`, signed with
//! the Ed25519 signing key. Anchors are numbered without gaps and each
//! carries the previous anchor's signature, so they form a chain of their
//! own. Kinds: `start` (a process opened the log), `interval`, `rotate`
//! (the last record of a file that was just rotated), and `stop` (clean
//! shutdown: the end of the log). Someone who can rewrite the log but does
//! not hold the chain key cannot produce records that match the anchors;
//! one who deletes the log's tail leaves anchors pointing past its end.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::chain::{self, Hash};
use super::lines;
use super::record::format_time;
use super::AuditError;

/// Why an anchor was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnchorKind {
    /// A process opened the log (after its `log_start` record).
    Start,
    /// The anchor interval elapsed.
    Interval,
    /// A log file was rotated; `seq` is its last record.
    Rotate,
    /// Clean shutdown: `seq` is the last record of the log.
    Stop,
}

impl AnchorKind {
    /// The name used in the anchor file.
    pub fn as_str(self) -> &'static str {
        match self {
            AnchorKind::Start => "start",
            AnchorKind::Interval => "interval",
            AnchorKind::Rotate => "rotate",
            AnchorKind::Stop => "stop",
        }
    }
}

/// One anchor, as stored (without its `sig`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// Anchor number, from 1, without gaps.
    pub anchor: u64,
    /// UTC, RFC 3339 with microseconds.
    pub time: String,
    /// Why it was written.
    pub kind: AnchorKind,
    /// The last record covered.
    pub seq: u64,
    /// That record's chain hash, hex.
    pub hash: String,
    /// Name of the log file that held the record when anchored.
    pub file: String,
    /// Public key of the signer, hex.
    pub key: String,
    /// The previous anchor's signature, hex (zeros for the first).
    pub prev: String,
}

/// An anchor read back from the anchor file, signature checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedAnchor {
    /// The anchor.
    pub anchor: Anchor,
    /// Its signature.
    pub sig: [u8; 64],
    /// The record hash it covers.
    pub hash: Hash,
}

/// Why an anchor line is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnchorProblem {
    /// No `sig` field where it must be, or not an anchor.
    #[error("not a signed anchor")]
    NotAnchor,
    /// The signature does not verify with the public key.
    #[error("bad signature (forged or altered anchor, or another key)")]
    BadSignature,
    /// Out of order, or an anchor is missing before it.
    #[error("anchor number {found} where {expected} was expected (anchor deleted, inserted or reordered)")]
    Number {
        /// Expected number.
        expected: u64,
        /// Number found.
        found: u64,
    },
    /// `prev` does not match the previous anchor's signature.
    #[error("does not follow the previous anchor (anchor replaced or reordered)")]
    Chain,
    /// Covers an earlier record than the previous anchor.
    #[error("covers seq {seq}, before the previous anchor's seq {previous}")]
    Backwards {
        /// Its seq.
        seq: u64,
        /// The previous anchor's seq.
        previous: u64,
    },
}

/// Parses and checks one anchor line against `key`.
pub fn parse_anchor(line: &str, key: &VerifyingKey) -> Result<SignedAnchor, AnchorProblem> {
    let (canonical, sig) = chain::unseal(line, "sig", 64).ok_or(AnchorProblem::NotAnchor)?;
    let sig: [u8; 64] = sig.try_into().map_err(|_| AnchorProblem::NotAnchor)?;
    let anchor: Anchor = serde_json::from_str(&canonical).map_err(|_| AnchorProblem::NotAnchor)?;
    let hash = chain::parse_hash(&anchor.hash).ok_or(AnchorProblem::NotAnchor)?;
    key.verify_strict(canonical.as_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| AnchorProblem::BadSignature)?;
    Ok(SignedAnchor { anchor, sig, hash })
}

/// Checks that `next` follows `previous` (or is the first anchor).
pub fn check_order(
    previous: Option<&SignedAnchor>,
    next: &SignedAnchor,
) -> Result<(), AnchorProblem> {
    let (expected, prev_sig, prev_seq) = match previous {
        None => (1, [0u8; 64], 0),
        Some(p) => (p.anchor.anchor + 1, p.sig, p.anchor.seq),
    };
    if next.anchor.anchor != expected {
        return Err(AnchorProblem::Number {
            expected,
            found: next.anchor.anchor,
        });
    }
    if next.anchor.prev != hex::encode(prev_sig) {
        return Err(AnchorProblem::Chain);
    }
    if next.anchor.seq < prev_seq {
        return Err(AnchorProblem::Backwards {
            seq: next.anchor.seq,
            previous: prev_seq,
        });
    }
    Ok(())
}

/// Anchors with their line numbers.
pub type Anchors = Vec<(usize, SignedAnchor)>;

/// The first bad line of an anchor file and its problem.
pub type BadAnchor = (usize, AnchorProblem);

/// Reads every anchor of a file, checking signatures and order. Returns the
/// anchors with their line numbers, or the first bad line and its problem.
pub fn read_anchors(
    path: &Path,
    key: &VerifyingKey,
) -> Result<Result<Anchors, BadAnchor>, AuditError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| AuditError::io("cannot read the anchor file", path, e))?;
    let mut out: Anchors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let anchor = match parse_anchor(line, key) {
            Ok(a) => a,
            Err(p) => return Ok(Err((n, p))),
        };
        if let Err(p) = check_order(out.last().map(|(_, a)| a), &anchor) {
            return Ok(Err((n, p)));
        }
        out.push((n, anchor));
    }
    if !text.is_empty() && !text.ends_with('\n') {
        return Ok(Err((text.lines().count(), AnchorProblem::NotAnchor)));
    }
    Ok(Ok(out))
}

/// The writer's side of the anchor file.
pub(crate) struct AnchorWriter {
    path: PathBuf,
    key: SigningKey,
    file: Option<File>,
    id: Option<(u64, u64)>,
    len: u64,
    last: Option<SignedAnchor>,
}

impl AnchorWriter {
    /// Opens (or creates) the anchor file and reads its last anchor, which
    /// must be signed by `key`. An incomplete final line is cut off.
    pub fn open(path: &Path, key: SigningKey) -> Result<AnchorWriter, AuditError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| AuditError::io("cannot create the anchor directory", parent, e))?;
        }
        let mut file = open_append(path)
            .map_err(|e| AuditError::io("cannot open the anchor file", path, e))?;
        lines::drop_torn_tail(&mut file)
            .map_err(|e| AuditError::io("cannot read the anchor file", path, e))?;
        let last = match lines::last_line(&mut file)
            .map_err(|e| AuditError::io("cannot read the anchor file", path, e))?
        {
            None => None,
            Some((line, _)) => {
                let public = key.verifying_key();
                Some(
                    parse_anchor(&line, &public).map_err(|p| AuditError::Resume {
                        message: format!(
                            "the last anchor in {} is not valid for the configured signing key: {p}",
                            path.display()
                        ),
                    })?,
                )
            }
        };
        let meta = file
            .metadata()
            .map_err(|e| AuditError::io("cannot read the anchor file", path, e))?;
        Ok(AnchorWriter {
            path: path.to_owned(),
            key,
            file: Some(file),
            id: Some((meta.dev(), meta.ino())),
            len: meta.len(),
            last,
        })
    }

    /// The last anchor written.
    pub fn last(&self) -> Option<&SignedAnchor> {
        self.last.as_ref()
    }

    /// Signs and appends an anchor, durably. On failure nothing is left
    /// half-written and the next call reopens the file.
    pub fn write(
        &mut self,
        kind: AnchorKind,
        seq: u64,
        hash: &Hash,
        log_file: &str,
        now: SystemTime,
    ) -> io::Result<()> {
        let anchor = Anchor {
            anchor: self.last.as_ref().map_or(1, |a| a.anchor.anchor + 1),
            time: format_time(now),
            kind,
            seq,
            hash: hex::encode(hash),
            file: log_file.to_owned(),
            key: hex::encode(self.key.verifying_key().as_bytes()),
            prev: hex::encode(self.last.as_ref().map_or([0u8; 64], |a| a.sig)),
        };
        let canonical = serde_json::to_string(&anchor).expect("an anchor serializes");
        let sig = self.key.sign(canonical.as_bytes()).to_bytes();
        let mut line = chain::seal(&canonical, "sig", &sig);
        line.push('\n');
        let current = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if current != self.id {
            self.file = None;
        }
        if self.file.is_none() {
            let file = open_append(&self.path)?;
            let meta = file.metadata()?;
            let id = (meta.dev(), meta.ino());
            if self.id == Some(id) {
                file.set_len(self.len)?;
            } else {
                tracing::error!(path = %self.path.display(), "the anchor file was moved or removed; continuing in a new file");
                self.len = meta.len();
                self.id = Some(id);
            }
            self.file = Some(file);
        }
        let file = self.file.as_mut().expect("opened above");
        let written = file
            .write_all(line.as_bytes())
            .and_then(|()| file.sync_data());
        match written {
            Ok(()) => {
                self.len += line.len() as u64;
                self.last = Some(SignedAnchor {
                    anchor,
                    sig,
                    hash: *hash,
                });
                Ok(())
            }
            Err(e) => {
                let _ = file.set_len(self.len);
                self.file = None;
                Err(e)
            }
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn anchors_chain_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.anchors");
        let mut w = AnchorWriter::open(&path, key(1)).unwrap();
        let now = SystemTime::now();
        w.write(AnchorKind::Start, 1, &[1; 32], "log", now).unwrap();
        w.write(AnchorKind::Interval, 5, &[5; 32], "log", now)
            .unwrap();
        drop(w);
        let w = AnchorWriter::open(&path, key(1)).unwrap();
        assert_eq!(w.last().unwrap().anchor.anchor, 2);
        let anchors = read_anchors(&path, &key(1).verifying_key())
            .unwrap()
            .unwrap();
        assert_eq!(anchors.len(), 2);
        assert_eq!(anchors[1].1.hash, [5; 32]);
        assert_eq!(anchors[1].1.anchor.kind, AnchorKind::Interval);

        let other = read_anchors(&path, &key(2).verifying_key()).unwrap();
        assert_eq!(other, Err((1, AnchorProblem::BadSignature)));
        assert!(AnchorWriter::open(&path, key(2)).is_err());
    }

    #[test]
    fn removed_or_reordered_anchors_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.anchors");
        let mut w = AnchorWriter::open(&path, key(1)).unwrap();
        for seq in 1..=3 {
            w.write(
                AnchorKind::Interval,
                seq,
                &[seq as u8; 32],
                "log",
                SystemTime::now(),
            )
            .unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let public = key(1).verifying_key();

        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert_eq!(
            read_anchors(&path, &public).unwrap(),
            Err((
                2,
                AnchorProblem::Number {
                    expected: 2,
                    found: 3
                }
            ))
        );
        std::fs::write(&path, format!("{}\n{}\n", lines[1], lines[0])).unwrap();
        assert!(matches!(
            read_anchors(&path, &public).unwrap(),
            Err((1, AnchorProblem::Number { .. }))
        ));
        let forged = lines[2].replace("\"seq\":3", "\"seq\":4");
        std::fs::write(&path, format!("{}\n{}\n{forged}\n", lines[0], lines[1])).unwrap();
        assert_eq!(
            read_anchors(&path, &public).unwrap(),
            Err((3, AnchorProblem::BadSignature))
        );
    }
}
