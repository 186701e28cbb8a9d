//! `COPY ... TO STDOUT` stream rewriting. CopyData payloads arrive with
//! any boundaries (a row may span messages, a message may hold many rows);
//! the rewriter parses rows in the stream's format, rewrites the planned
//! columns, and emits the rewritten byte stream for the proxy to re-frame.
//!
//! Text format follows PostgreSQL's `CopyAttributeOutText` and
//! `CopyReadAttributesText`; CSV its `CopyAttributeOutCSV` quoting rules;
//! binary the `PGCOPY` file format.

use std::sync::Arc;

use crate::pseudonym::{Format, Pseudonymizer};

mod binary;
mod csv;
#[cfg(test)]
mod pinned_tests;
mod shared;
#[cfg(test)]
mod tests;
mod text;

use super::group::{Group, Row, GROUP_ROWS};
use super::rewrite::{ColumnPlan, RewriteError};
use csv::*;
use shared::*;

/// The 11-byte signature that starts a binary COPY stream.
pub const BINARY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// A COPY stream's format and options, as the statement gave them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyFormat {
    /// `FORMAT text`.
    Text {
        /// `DELIMITER`, tab by default.
        delimiter: u8,
        /// `NULL`, `\N` by default.
        null: Vec<u8>,
        /// `HEADER`: the first line is passed through.
        header: bool,
    },
    /// `FORMAT csv`.
    Csv {
        /// `DELIMITER`, comma by default.
        delimiter: u8,
        /// `QUOTE`, `"` by default.
        quote: u8,
        /// `ESCAPE`, the quote character by default.
        escape: u8,
        /// `NULL`, the empty string by default (unquoted).
        null: Vec<u8>,
        /// `HEADER`: the first line is passed through.
        header: bool,
        /// `FORCE_QUOTE`.
        force_quote: ForceQuote,
    },
    /// `FORMAT binary`.
    Binary,
}

/// CSV `FORCE_QUOTE`: which non-NULL values are always quoted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ForceQuote {
    /// Only values that need it.
    #[default]
    Off,
    /// `FORCE_QUOTE *`.
    All,
    /// These columns, by position from 0.
    Columns(Vec<usize>),
}

impl CopyFormat {
    /// Text format with PostgreSQL's defaults.
    pub fn text() -> CopyFormat {
        CopyFormat::Text {
            delimiter: b'\t',
            null: b"\\N".to_vec(),
            header: false,
        }
    }

    /// CSV format with PostgreSQL's defaults.
    pub fn csv() -> CopyFormat {
        CopyFormat::Csv {
            delimiter: b',',
            quote: b'"',
            escape: b'"',
            null: Vec::new(),
            header: false,
            force_quote: ForceQuote::Off,
        }
    }
}

/// Where a stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Text/CSV: the header line is next. Binary: the file header is.
    Header,
    Rows,
    /// Binary: after the trailer.
    Done,
}

/// Rewrites one COPY TO STDOUT stream.
pub struct CopyRewriter {
    format: CopyFormat,
    work: Work,
    stage: Stage,
    /// Bytes of an incomplete row (or binary unit).
    pending: Vec<u8>,
    /// Binary: the file header, held until the first row or the trailer
    /// so that it goes in that unit's message however the stream was cut.
    header: Vec<u8>,
    /// CSV: inside quotes / just after an escape, scanning `pending`.
    in_quote: bool,
    escaped: bool,
}

/// The plan, the group of rows being rewritten, and how the output is cut.
struct Work {
    plan: ColumnPlan,
    /// No column is rewritten.
    passthrough: bool,
    p: Arc<Pseudonymizer>,
    /// Line formats, per column: its stand-ins can hold no byte the format
    /// escapes or quotes ([`Pseudonymizer::stand_in_alphabet`]), so the
    /// writer does not look for one.
    plain: Vec<bool>,
    group: Group,
    framing: Framing,
}

/// How a rewriter's output is cut: bare bytes, or (once
/// [`CopyRewriter::framed`]) CopyData messages as PostgreSQL sends them.
#[derive(Clone, Copy, Default)]
struct Framing {
    framed: bool,
    /// Where the message being written starts: the binary file header
    /// waits in it for the first row.
    open: Option<usize>,
}

impl Framing {
    /// Starts a message unless one is open.
    fn open(&mut self, out: &mut Vec<u8>) {
        if self.framed && self.open.is_none() {
            self.open = Some(out.len());
            out.extend_from_slice(&[b'd', 0, 0, 0, 0]);
        }
    }

    /// Ends the open message, if any.
    fn close(&mut self, out: &mut [u8]) -> Result<(), RewriteError> {
        if let Some(at) = self.open.take() {
            let len = u32::try_from(out.len() - at - 1).map_err(|_| RewriteError::TooLarge)?;
            out[at + 1..at + 5].copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    /// Appends `unit` (a row, a header line, a trailer) as the end of a
    /// message.
    fn unit(&mut self, out: &mut Vec<u8>, unit: &[u8]) -> Result<(), RewriteError> {
        self.open(out);
        out.extend_from_slice(unit);
        self.close(out)
    }
}

impl CopyRewriter {
    /// A rewriter for a stream of `plan.len()` columns in `format`.
    pub fn new(plan: ColumnPlan, format: CopyFormat, p: Arc<Pseudonymizer>) -> CopyRewriter {
        let header = match &format {
            CopyFormat::Text { header, .. } | CopyFormat::Csv { header, .. } => *header,
            CopyFormat::Binary => true,
        };
        let plain = plain_columns(&plan, &format, &p);
        CopyRewriter {
            format,
            work: Work {
                passthrough: plan.is_passthrough(),
                plan,
                p,
                plain,
                group: Group::default(),
                framing: Framing::default(),
            },
            stage: if header { Stage::Header } else { Stage::Rows },
            pending: Vec::new(),
            header: Vec::new(),
            in_quote: false,
            escaped: false,
        }
    }

    /// Whether the stream stands between two rows, past any header and
    /// before any trailer: where a [`fork`](Self::fork) starts.
    pub fn at_row_boundary(&self) -> bool {
        self.stage == Stage::Rows
            && self.pending.is_empty()
            && self.header.is_empty()
            && !self.in_quote
            && !self.escaped
    }

    /// A rewriter of the same stream standing at a row boundary. Fed the
    /// bytes that follow a boundary, it gives exactly what this rewriter
    /// gives once it stands there: later parts of one stream can be
    /// rewritten on other threads and their outputs joined in order.
    pub fn fork(&self) -> CopyRewriter {
        CopyRewriter {
            format: self.format.clone(),
            work: Work {
                plan: self.work.plan.clone(),
                passthrough: self.work.passthrough,
                p: Arc::clone(&self.work.p),
                plain: self.work.plain.clone(),
                group: Group::default(),
                framing: Framing {
                    framed: self.work.framing.framed,
                    open: None,
                },
            },
            stage: Stage::Rows,
            pending: Vec::new(),
            header: Vec::new(),
            in_quote: false,
            escaped: false,
        }
    }

    /// This rewriter, writing each row, the header line and the binary
    /// trailer as a CopyData message of its own (`'d'`, length, bytes), as
    /// PostgreSQL sends them: clients read a message as one row. The binary
    /// file header goes in the message of the first row.
    pub fn framed(mut self) -> CopyRewriter {
        self.work.framing.framed = true;
        self
    }

    /// Feeds one CopyData payload (or several, joined); appends whatever
    /// rows it completes, rewritten, to `out`. After an error the stream
    /// must be abandoned (nothing of the failing row has been appended).
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        if matches!(self.format, CopyFormat::Binary) {
            self.feed_binary(chunk, out)?;
        } else {
            self.feed_lines(chunk, out)?;
        }
        self.work.framing.close(out)
    }

    /// Ends the stream: an error if a row is incomplete (or a binary
    /// stream has no trailer).
    pub fn finish(&mut self) -> Result<(), RewriteError> {
        let complete = match self.format {
            CopyFormat::Binary => self.stage == Stage::Done,
            _ => true,
        };
        if !self.pending.is_empty() || !complete {
            return Err(RewriteError::Truncated);
        }
        Ok(())
    }

    fn feed_lines(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        if !self.pending.is_empty() {
            let Some(end) = self.row_end(chunk) else {
                self.pending.extend_from_slice(chunk);
                return Ok(());
            };
            let mut row = std::mem::take(&mut self.pending);
            row.extend_from_slice(&chunk[..=end]);
            let r = self.lines(&[&row], out);
            row.clear();
            self.pending = row;
            r?;
            chunk = &chunk[end + 1..];
        }
        let mut lines = Vec::with_capacity(GROUP_ROWS);
        while !chunk.is_empty() {
            match self.row_end(chunk) {
                Some(end) => {
                    lines.push(&chunk[..=end]);
                    chunk = &chunk[end + 1..];
                    if lines.len() == GROUP_ROWS {
                        self.lines(&lines, out)?;
                        lines.clear();
                    }
                }
                None => {
                    self.pending.extend_from_slice(chunk);
                    break;
                }
            }
        }
        self.lines(&lines, out)
    }

    /// The index of the newline ending the current row in `chunk`, given
    /// the quote state left by `pending`; updates that state.
    fn row_end(&mut self, chunk: &[u8]) -> Option<usize> {
        let (quote, escape) = match self.format {
            CopyFormat::Csv { quote, escape, .. } => (quote, escape),
            _ => return find2(chunk, b'\n', b'\n'),
        };
        let mut i = 0;
        loop {
            if self.escaped {
                if i >= chunk.len() {
                    return None;
                }
                self.escaped = false;
                i += 1;
            } else if self.in_quote {
                let k = find2(chunk.get(i..)?, quote, escape)?;
                i += k + 1;
                if chunk[i - 1] == escape && escape != quote {
                    self.escaped = true;
                } else {
                    self.in_quote = false;
                }
            } else {
                let k = find2(chunk.get(i..)?, quote, b'\n')?;
                if chunk[i + k] == b'\n' {
                    return Some(i + k);
                }
                self.in_quote = true;
                i += k + 1;
            }
        }
    }

    /// Complete lines, each ending in `\n`, rewritten together.
    fn lines(&mut self, mut lines: &[&[u8]], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        if self.stage == Stage::Header {
            let Some((header, rest)) = lines.split_first() else {
                return Ok(());
            };
            self.stage = Stage::Rows;
            self.work.framing.unit(out, header)?;
            lines = rest;
        }
        if self.work.passthrough {
            return lines
                .iter()
                .try_for_each(|line| self.work.framing.unit(out, line));
        }
        match &self.format {
            CopyFormat::Text {
                delimiter, null, ..
            } => self.work.text_rows(lines, *delimiter, null, out),
            CopyFormat::Csv {
                delimiter,
                quote,
                escape,
                null,
                force_quote,
                ..
            } => {
                let opts = Csv {
                    delimiter: *delimiter,
                    quote: *quote,
                    escape: *escape,
                    null,
                    force_quote,
                };
                self.work.csv_rows(lines, &opts, out)
            }
            CopyFormat::Binary => Err(RewriteError::MalformedCopy("not a line format")),
        }
    }
}

/// Per column of a line format: whether its stand-ins never need escaping
/// (text: control bytes, backslash, the delimiter) or quoting (CSV: the
/// delimiter, the quote, line ends), whatever the value.
fn plain_columns(plan: &ColumnPlan, format: &CopyFormat, p: &Pseudonymizer) -> Vec<bool> {
    let (below, special) = match format {
        CopyFormat::Text { delimiter, .. } => (0x20, vec![b'\\', *delimiter]),
        CopyFormat::Csv {
            delimiter, quote, ..
        } => (0, vec![*delimiter, *quote, b'\n', b'\r']),
        CopyFormat::Binary => return Vec::new(),
    };
    plan.columns
        .iter()
        .map(|c| {
            c.as_ref()
                .and_then(|c| p.stand_in_alphabet(&c.transform, c.ty, Format::Text))
                .is_some_and(|set| !set.holds_any(below, &special))
        })
        .collect()
}

impl Work {
    /// [`Group::rows`] with this stream's plan and pseudonymizer, each row
    /// framed as the stream's output is.
    fn rows(
        &mut self,
        rows: &[&[u8]],
        fmt: Format,
        read: impl FnMut(&mut Group, &ColumnPlan, &[u8]) -> Result<(), RewriteError>,
        write: impl Fn(Row<'_>, &mut Vec<u8>) -> Result<(), RewriteError>,
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
        let (plan, p, framing) = (&self.plan, &*self.p, &mut self.framing);
        let framed = |row: Row<'_>, out: &mut Vec<u8>| {
            framing.open(out);
            let r = write(row, out);
            if r.is_err() {
                framing.open = None;
            }
            r.and_then(|()| framing.close(out))
        };
        self.group.rows(plan, p, Some(fmt), rows, read, framed, out)
    }
}
