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

use super::group::{self, Group, Part, Row, Value, GROUP_ROWS};
use super::rewrite::{ColumnPlan, RewriteError};

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
        CopyRewriter {
            format,
            work: Work {
                passthrough: plan.is_passthrough(),
                plan,
                p,
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

    fn feed_binary(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        if self.pending.is_empty() {
            let used = self.binary_units(chunk, out)?;
            self.pending.extend_from_slice(&chunk[used..]);
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(chunk);
        let r = self.binary_units(&buf, out);
        if let Ok(used) = r {
            buf.drain(..used);
        }
        self.pending = buf;
        r.map(|_| ())
    }

    /// Rewrites every complete unit (file header, tuple, trailer) at the
    /// start of `buf`; returns the bytes used. Tuples are rewritten in
    /// groups; those before a failing unit are written before its error.
    fn binary_units(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Result<usize, RewriteError> {
        let mut tuples = Vec::with_capacity(GROUP_ROWS);
        let r = self.binary_scan(buf, &mut tuples, out);
        self.binary_tuples(&tuples, out)?;
        r
    }

    /// [`binary_units`](Self::binary_units) but for the last tuples, left
    /// in `tuples`.
    fn binary_scan<'a>(
        &mut self,
        buf: &'a [u8],
        tuples: &mut Vec<&'a [u8]>,
        out: &mut Vec<u8>,
    ) -> Result<usize, RewriteError> {
        let mut at = 0;
        loop {
            let rest = &buf[at..];
            match self.stage {
                Stage::Done if rest.is_empty() => return Ok(at),
                Stage::Done => {
                    return Err(RewriteError::MalformedCopy("data after the binary trailer"))
                }
                Stage::Header => {
                    let Some(len) = binary_header_len(rest)? else {
                        return Ok(at);
                    };
                    self.header = rest[..len].to_vec();
                    self.stage = Stage::Rows;
                    at += len;
                }
                Stage::Rows => {
                    let Some(count) = rest.get(..2) else {
                        return Ok(at);
                    };
                    let count = i16::from_be_bytes([count[0], count[1]]);
                    if count == -1 {
                        let flushed = self.binary_tuples(tuples, out);
                        tuples.clear();
                        flushed?;
                        self.release_header(out);
                        self.work.framing.unit(out, &rest[..2])?;
                        self.stage = Stage::Done;
                        at += 2;
                        continue;
                    }
                    let count = usize::try_from(count)
                        .map_err(|_| RewriteError::MalformedCopy("negative field count"))?;
                    self.work.plan.check_count(count)?;
                    let Some(len) = binary_tuple_len(rest, count)? else {
                        return Ok(at);
                    };
                    tuples.push(&rest[..len]);
                    if tuples.len() == GROUP_ROWS {
                        let flushed = self.binary_tuples(tuples, out);
                        tuples.clear();
                        flushed?;
                    }
                    at += len;
                }
            }
        }
    }

    /// Writes the held binary file header, opening the message of the unit
    /// that follows it.
    fn release_header(&mut self, out: &mut Vec<u8>) {
        if !self.header.is_empty() {
            self.work.framing.open(out);
            out.append(&mut self.header);
        }
    }

    /// Complete tuples, rewritten together.
    fn binary_tuples(&mut self, tuples: &[&[u8]], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        if tuples.is_empty() {
            return Ok(());
        }
        self.release_header(out);
        if self.work.passthrough {
            return tuples
                .iter()
                .try_for_each(|t| self.work.framing.unit(out, t));
        }
        let read = |g: &mut Group, plan: &ColumnPlan, tuple: &[u8]| {
            group::read_prefixed(g, plan, tuple, 2).map(|_| ())
        };
        let write = |row: Row<'_>, out: &mut Vec<u8>| {
            out.extend_from_slice(&row.bytes()[..2]);
            row.write_prefixed(out)
        };
        self.work.rows(tuples, Format::Binary, read, write, out)
    }
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

    fn text_rows(
        &mut self,
        lines: &[&[u8]],
        delim: u8,
        null: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
        let mut delims = Vec::with_capacity(self.plan.len());
        let read = |g: &mut Group, plan: &ColumnPlan, line: &[u8]| {
            let body = &line[..line.len() - 1];
            let plain = plain_delimiters(body, delim, b'\\', &mut delims);
            let (mut fields, mut at) = plain_fields(g, plan, body, &delims, null, plain)?;
            if plain {
                return Ok(());
            }
            loop {
                let end = text_field_end(body, at, delim);
                let raw = &body[at..end];
                let value = match plan.column(fields)? {
                    None => Value::Null,
                    Some(_) if raw == null => Value::Null,
                    Some(_) if find2(raw, b'\\', b'\\').is_none() => Value::InRow(at..end),
                    Some(_) => g.decoded(text_unescape, raw),
                };
                g.field(at..end, value);
                fields += 1;
                if end == body.len() {
                    return Ok(());
                }
                at = end + 1;
            }
        };
        let write = |row: Row<'_>, out: &mut Vec<u8>| {
            for (k, part) in row.parts().enumerate() {
                if k > 0 {
                    out.push(delim);
                }
                match part {
                    Part::Raw(run) => out.extend_from_slice(run),
                    Part::StandIn(_, None) => out.extend_from_slice(null),
                    Part::StandIn(_, Some(v)) if needs_text_escape(v, delim) => {
                        text_escape(v, delim, out)
                    }
                    Part::StandIn(_, Some(v)) => out.extend_from_slice(v),
                }
            }
            out.push(b'\n');
            Ok(())
        };
        self.rows(lines, Format::Text, read, write, out)
    }

    fn csv_rows(
        &mut self,
        lines: &[&[u8]],
        opts: &Csv<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
        let mut delims = Vec::with_capacity(self.plan.len());
        let read = |g: &mut Group, plan: &ColumnPlan, line: &[u8]| {
            let body = &line[..line.len() - 1];
            let plain = plain_delimiters(body, opts.delimiter, opts.quote, &mut delims);
            let (mut fields, mut at) = plain_fields(g, plan, body, &delims, opts.null, plain)?;
            if plain {
                return Ok(());
            }
            loop {
                let (end, quoted) = opts.field_end(body, at)?;
                let raw = &body[at..end];
                let value = match plan.column(fields)? {
                    None => Value::Null,
                    Some(_) if !quoted && raw == opts.null => Value::Null,
                    Some(_) if !quoted => Value::InRow(at..end),
                    Some(_) => g.decoded(|raw, out| opts.unquote(raw, out), raw),
                };
                g.field(at..end, value);
                fields += 1;
                if end == body.len() {
                    return Ok(());
                }
                if body[end] != opts.delimiter {
                    return Err(RewriteError::MalformedCopy("text after a closing quote"));
                }
                at = end + 1;
            }
        };
        let single = self.plan.len() == 1;
        let write = |row: Row<'_>, out: &mut Vec<u8>| {
            for (k, part) in row.parts().enumerate() {
                if k > 0 {
                    out.push(opts.delimiter);
                }
                match part {
                    Part::Raw(run) => out.extend_from_slice(run),
                    Part::StandIn(_, None) => out.extend_from_slice(opts.null),
                    Part::StandIn(i, Some(v)) => {
                        let force = match opts.force_quote {
                            ForceQuote::Off => false,
                            ForceQuote::All => true,
                            ForceQuote::Columns(cols) => cols.contains(&i),
                        };
                        if opts.needs_quotes(v, force, single) {
                            opts.write_quoted(v, out);
                        } else {
                            out.extend_from_slice(v);
                        }
                    }
                }
            }
            out.push(b'\n');
            Ok(())
        };
        self.rows(lines, Format::Text, read, write, out)
    }
}

/// The first index of `a` or `b` in `hay`, eight bytes at a time.
fn find2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let (ra, rb) = (LO * u64::from(a), LO * u64::from(b));
    let words = hay.chunks_exact(8);
    let tail = words.remainder();
    for (k, w) in words.enumerate() {
        let w = <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes);
        let hit = zero(w ^ ra) | zero(w ^ rb);
        if hit != 0 {
            return Some(k * 8 + (hit.trailing_zeros() / 8) as usize);
        }
    }
    let base = hay.len() - tail.len();
    tail.iter()
        .position(|&c| c == a || c == b)
        .map(|i| base + i)
}

/// The delimiters of a row before its first `special` byte (a text-format
/// backslash, a CSV quote), in order, into `out`, found in one pass, eight
/// bytes at a time; whether the row has no such byte. The fields before
/// that byte are their bytes as they are (so is every field of a row
/// without one), and the delimiters found end them.
fn plain_delimiters(body: &[u8], delim: u8, special: u8, out: &mut Vec<usize>) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // 0x80 in each byte of `w` equal to the byte `splat` repeats, exactly
    // (no carry crosses a byte, unlike the find-first test).
    let equal = |w: u64, splat: u64| {
        let x = w ^ splat;
        !(((x & !HI) + !HI) | x) & HI
    };
    let (d, sp) = (LO * u64::from(delim), LO * u64::from(special));
    out.clear();
    let words = body.chunks_exact(8);
    let tail = words.remainder();
    for (k, w) in words.enumerate() {
        let w = <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes);
        if equal(w, sp) != 0 {
            return false;
        }
        let mut hits = equal(w, d);
        while hits != 0 {
            out.push(8 * k + (hits.trailing_zeros() / 8) as usize);
            hits &= hits - 1;
        }
    }
    let base = body.len() - tail.len();
    for (i, &c) in tail.iter().enumerate() {
        if c == special {
            return false;
        }
        if c == delim {
            out.push(base + i);
        }
    }
    true
}

/// Notes the fields of a row that [`plain_delimiters`] ends, each its
/// bytes or NULL when they are the `null` string, and the last field too
/// when the row is `plain` throughout; the fields noted and where the next
/// one starts.
fn plain_fields(
    g: &mut Group,
    plan: &ColumnPlan,
    body: &[u8],
    delims: &[usize],
    null: &[u8],
    plain: bool,
) -> Result<(usize, usize), RewriteError> {
    let mut at = 0;
    let last = plain.then_some(body.len());
    let ends = delims.iter().copied().chain(last);
    let mut fields = 0;
    for end in ends {
        let value = match plan.column(fields)? {
            Some(_) if body[at..end] != *null => Value::InRow(at..end),
            _ => Value::Null,
        };
        g.field(at..end, value);
        fields += 1;
        at = end + 1;
    }
    Ok((fields, at))
}

/// The end of the text-format field starting at `at`: the next unescaped
/// delimiter, or the end of the line.
fn text_field_end(body: &[u8], mut at: usize, delim: u8) -> usize {
    while let Some(i) = body.get(at..).and_then(|rest| find2(rest, delim, b'\\')) {
        if body[at + i] == delim {
            return at + i;
        }
        at += i + 2;
    }
    body.len()
}

/// Appends a text-format field with its backslash escapes decoded.
fn text_unescape(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(n) = find2(&raw[i..], b'\\', b'\\') {
        out.extend_from_slice(&raw[i..i + n]);
        i += n + 1;
        let Some(&e) = raw.get(i) else {
            out.push(b'\\');
            return;
        };
        i += 1;
        match e {
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u8;
                for _ in 0..2 {
                    match raw.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d as u8;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(v);
            }
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            other => out.push(other),
        }
    }
    out.extend_from_slice(&raw[i..]);
}

/// Whether `v` has a byte text format escapes.
fn needs_text_escape(v: &[u8], delim: u8) -> bool {
    has_byte(v, 0x20, [b'\\', delim])
}

/// Whether `v` has a byte below `below` (at most 128) or in `set`, eight
/// bytes at a time (the last eight overlapping the words before them).
#[inline]
fn has_byte<const N: usize>(v: &[u8], below: u8, set: [u8; N]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    if v.len() < 8 {
        return v.iter().any(|&c| c < below || set.contains(&c));
    }
    let splats = set.map(|b| LO * u64::from(b));
    let under = LO * u64::from(below);
    let hit = |at: usize| {
        let w = <[u8; 8]>::try_from(&v[at..at + 8]).map_or(0, u64::from_le_bytes);
        let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
        let found = splats.iter().fold(0, |h, &s| h | zero(w ^ s));
        (w.wrapping_sub(under) & !w & HI) | found != 0
    };
    (0..v.len() / 8).any(|k| hit(8 * k)) || hit(v.len() - 8)
}

/// Appends a value escaped as `CopyAttributeOutText` does.
fn text_escape(v: &[u8], delim: u8, out: &mut Vec<u8>) {
    let mut run = 0;
    for (i, &c) in v.iter().enumerate() {
        if c >= 0x20 && c != b'\\' && c != delim {
            continue;
        }
        let e = match c {
            8 => b'b',
            12 => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            11 => b'v',
            b'\\' => b'\\',
            _ if c == delim => c,
            _ => continue,
        };
        out.extend_from_slice(&v[run..i]);
        out.extend_from_slice(&[b'\\', e]);
        run = i + 1;
    }
    out.extend_from_slice(&v[run..]);
}

/// CSV options.
struct Csv<'a> {
    delimiter: u8,
    quote: u8,
    escape: u8,
    null: &'a [u8],
    force_quote: &'a ForceQuote,
}

impl Csv<'_> {
    /// The end of the field starting at `at` and whether it is quoted.
    fn field_end(&self, body: &[u8], at: usize) -> Result<(usize, bool), RewriteError> {
        if body.get(at) != Some(&self.quote) {
            let rest = &body[at..];
            return match find2(rest, self.delimiter, self.quote) {
                Some(i) if rest[i] == self.quote => Err(RewriteError::MalformedCopy(
                    "quote inside an unquoted CSV field",
                )),
                Some(i) => Ok((at + i, false)),
                None => Ok((body.len(), false)),
            };
        }
        let mut i = at + 1;
        while let Some(k) = find2(&body[i..], self.quote, self.escape) {
            i += k;
            let escaped_pair = if self.escape == self.quote {
                body.get(i + 1) == Some(&self.quote)
            } else {
                body[i] == self.escape
            };
            if !escaped_pair {
                return Ok((i + 1, true));
            }
            i += 2;
            if i > body.len() {
                break;
            }
        }
        Err(RewriteError::MalformedCopy("unterminated CSV quote"))
    }

    /// Appends a quoted field's content, decoded.
    fn unquote(&self, raw: &[u8], out: &mut Vec<u8>) {
        let inner = &raw[1..raw.len() - 1];
        let mut i = 0;
        while let Some(k) = find2(&inner[i..], self.escape, self.escape) {
            let at = i + k;
            match inner.get(at + 1) {
                Some(&n) if n == self.quote || n == self.escape => {
                    out.extend_from_slice(&inner[i..at]);
                    out.push(n);
                    i = at + 2;
                }
                _ => {
                    out.extend_from_slice(&inner[i..=at]);
                    i = at + 1;
                }
            }
        }
        out.extend_from_slice(&inner[i..]);
    }

    /// Whether `CopyAttributeOutCSV` would quote `v`.
    fn needs_quotes(&self, v: &[u8], force: bool, single: bool) -> bool {
        force
            || v == self.null
            || (single && v == b"\\.")
            || has_byte(v, 0, [self.delimiter, self.quote, b'\n', b'\r'])
    }

    /// Appends `v` quoted, escaping quote and escape characters.
    fn write_quoted(&self, v: &[u8], out: &mut Vec<u8>) {
        out.push(self.quote);
        let mut run = 0;
        for (i, &c) in v.iter().enumerate() {
            if c == self.quote || c == self.escape {
                out.extend_from_slice(&v[run..i]);
                out.push(self.escape);
                run = i;
            }
        }
        out.extend_from_slice(&v[run..]);
        out.push(self.quote);
    }
}

/// The length of the binary file header at the start of `b`, `None` if
/// incomplete.
fn binary_header_len(b: &[u8]) -> Result<Option<usize>, RewriteError> {
    let n = b.len().min(BINARY_SIGNATURE.len());
    if b[..n] != BINARY_SIGNATURE[..n] {
        return Err(RewriteError::MalformedCopy("missing the PGCOPY signature"));
    }
    let Some(fixed) = b.get(11..19) else {
        return Ok(None);
    };
    let flags = u32::from_be_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]);
    if flags & 0xffff_0000 != 0 {
        return Err(RewriteError::MalformedCopy(
            "binary COPY with OIDs or unknown critical flags",
        ));
    }
    let ext = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]) as usize;
    let len = 19 + ext;
    Ok((b.len() >= len).then_some(len))
}

/// The length of the tuple of `count` fields at the start of `b`, `None`
/// if incomplete.
fn binary_tuple_len(b: &[u8], count: usize) -> Result<Option<usize>, RewriteError> {
    let mut at = 2;
    for _ in 0..count {
        let Some(len) = b.get(at..at + 4) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        at += 4;
        if len == -1 {
            continue;
        }
        at += usize::try_from(len)
            .map_err(|_| RewriteError::MalformedCopy("negative field length"))?;
        if at > b.len() {
            return Ok(None);
        }
    }
    Ok(Some(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::rewrite::PlannedColumn;
    use crate::pseudonym::{oid, ColumnType, Key, Outcome, Settings, Transform};
    use proptest::prelude::*;
    use std::sync::LazyLock;

    static P: LazyLock<Arc<Pseudonymizer>> = LazyLock::new(|| {
        let key = Key::from_text("t", &"22".repeat(32)).unwrap();
        Arc::new(Pseudonymizer::new(&key, Settings::default()).unwrap())
    });

    fn col(t: Transform, oid: u32) -> Option<PlannedColumn> {
        Some(PlannedColumn {
            transform: t,
            ty: ColumnType::plain(oid),
            format: Format::Text,
        })
    }

    fn constant(v: &str) -> Transform {
        Transform::Constant { value: v.into() }
    }

    /// id (bijection), kept text, a constant needing escapes, an email.
    fn plan() -> ColumnPlan {
        ColumnPlan::new(vec![
            col(Transform::Bijection, oid::INT8),
            None,
            col(constant("a\tb\\c\n\"q\",d"), oid::TEXT),
            col(Transform::Email, oid::TEXT),
        ])
    }

    fn run(
        format: &CopyFormat,
        plan: &ColumnPlan,
        chunks: &[&[u8]],
    ) -> Result<Vec<u8>, RewriteError> {
        let mut r = CopyRewriter::new(plan.clone(), format.clone(), Arc::clone(&P));
        let mut out = Vec::new();
        for c in chunks {
            r.feed(c, &mut out)?;
        }
        r.finish()?;
        Ok(out)
    }

    /// Issue 17 (fuzz target `copy`): a framed binary stream cut between
    /// its file header and what follows sent the header in a message of
    /// its own; whole, it went with the next unit. The header now always
    /// goes in the message of the first row (or of the trailer, for no
    /// rows), as PostgreSQL sends it, however the stream is cut.
    #[test]
    fn framed_binary_header_goes_with_the_next_unit_however_cut() {
        let header = [&BINARY_SIGNATURE[..], &[0; 8]].concat();
        let mut one_row = header.clone();
        one_row.extend_from_slice(&1i16.to_be_bytes());
        one_row.extend_from_slice(&8i32.to_be_bytes());
        one_row.extend_from_slice(&42i64.to_be_bytes());
        one_row.extend_from_slice(&(-1i16).to_be_bytes());
        let mut no_rows = header.clone();
        no_rows.extend_from_slice(&(-1i16).to_be_bytes());
        let plan = ColumnPlan::new(vec![col(Transform::Bijection, oid::INT8)]);
        for stream in [&no_rows, &one_row] {
            let framed = |cut: usize| {
                let mut r =
                    CopyRewriter::new(plan.clone(), CopyFormat::Binary, Arc::clone(&P)).framed();
                let mut out = Vec::new();
                r.feed(&stream[..cut], &mut out).unwrap();
                r.feed(&stream[cut..], &mut out).unwrap();
                r.finish().unwrap();
                out
            };
            let whole = framed(stream.len());
            for cut in 0..stream.len() {
                assert_eq!(framed(cut), whole, "cut at {cut}");
            }
            assert!(whole[5..].starts_with(BINARY_SIGNATURE));
            let first = u32::from_be_bytes(whole[1..5].try_into().unwrap()) as usize;
            assert!(first > header.len() + 4, "the header shares its message");
        }
    }

    /// The same output whether the stream comes whole, byte by byte, or
    /// split in two at every position.
    fn assert_split_invariant(format: &CopyFormat, plan: &ColumnPlan, input: &[u8]) -> Vec<u8> {
        let whole = run(format, plan, &[input]).unwrap();
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(format, plan, &bytes).unwrap(), whole);
        for i in 0..=input.len() {
            assert_eq!(
                run(format, plan, &[&input[..i], &input[i..]]).unwrap(),
                whole,
                "split at {i}"
            );
        }
        whole
    }

    fn text_fields(line: &str) -> Vec<&str> {
        line.split('\t').collect()
    }

    #[test]
    fn text_rows() {
        let input = b"id\tnote\tx\temail\n42\tkeep\\tthis\tsecret\tada@x.org\n\\N\t\\N\t\\N\t\\N\n7\t\xc3\xa9\tz\tbob\\\\@x.org\n";
        let format = CopyFormat::Text {
            delimiter: b'\t',
            null: b"\\N".to_vec(),
            header: true,
        };
        let out = assert_split_invariant(&format, &plan(), input);
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "id\tnote\tx\temail");
        let row = text_fields(lines[1]);
        assert_ne!(row[0], "42");
        assert!(row[0].parse::<i64>().unwrap() > 0);
        assert_eq!(row[1], "keep\\tthis");
        assert_eq!(row[2], "a\\tb\\\\c\\n\"q\",d");
        assert!(row[3].ends_with("@example.invalid"));
        assert_eq!(lines[2], "\\N\t\\N\t\\N\t\\N");
        assert_eq!(text_fields(lines[3])[1], "é");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn text_custom_delimiter_and_null() {
        let format = CopyFormat::Text {
            delimiter: b'|',
            null: b"NULL".to_vec(),
            header: false,
        };
        let plan = ColumnPlan::new(vec![None, col(constant("x|y"), oid::TEXT)]);
        let out = run(&format, &plan, &[b"a\\|b|c\nNULL|NULL\n"]).unwrap();
        assert_eq!(out, b"a\\|b|x\\|y\nNULL|NULL\n");
    }

    #[test]
    fn csv_rows() {
        let input = b"id,note,x,email\n42,\"multi\nline, \"\"quoted\"\"\",s,ada@x.org\n,,,\n7,\"\",\"\",\"\"\n";
        let mut format = CopyFormat::csv();
        if let CopyFormat::Csv { header, .. } = &mut format {
            *header = true;
        }
        let out = assert_split_invariant(&format, &plan(), input);
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("id,note,x,email\n"));
        assert!(
            out.contains(",\"multi\nline, \"\"quoted\"\"\",\"a\tb\\c\n\"\"q\"\",d\","),
            "{out}"
        );
        assert!(out.contains("\n,,,\n"), "{out}");
        let (_, last) = out.rsplit_once("\n,,,\n").unwrap();
        assert!(last.contains(",\"\",\"a\tb\\c\n\"\"q\"\",d\","), "{last}");
        assert!(last.ends_with("@example.invalid\n"), "{last}");
    }

    #[test]
    fn csv_options() {
        let format = CopyFormat::Csv {
            delimiter: b';',
            quote: b'\'',
            escape: b'\\',
            null: b"NULL".to_vec(),
            header: false,
            force_quote: ForceQuote::Columns(vec![1]),
        };
        let plan = ColumnPlan::new(vec![
            None,
            col(constant("it's"), oid::TEXT),
            col(constant("NULL"), oid::TEXT),
        ]);
        let out = run(&format, &plan, &[b"'a\\'b;c';x;y\nNULL;NULL;NULL\n"]).unwrap();
        assert_eq!(out, b"'a\\'b;c';'it\\'s';'NULL'\nNULL;NULL;NULL\n");
        let split: Vec<&[u8]> = b"'a\\'b\nc';x;y\n".chunks(1).collect();
        assert_eq!(
            run(&format, &plan, &split).unwrap(),
            b"'a\\'b\nc';'it\\'s';'NULL'\n"
        );
    }

    fn binary_stream(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let mut s = BINARY_SIGNATURE.to_vec();
        s.extend_from_slice(&0u32.to_be_bytes());
        s.extend_from_slice(&3u32.to_be_bytes());
        s.extend_from_slice(b"ext");
        for row in rows {
            s.extend_from_slice(&(row.len() as i16).to_be_bytes());
            for v in row {
                match v {
                    None => s.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(b) => {
                        s.extend_from_slice(&(b.len() as i32).to_be_bytes());
                        s.extend_from_slice(b);
                    }
                }
            }
        }
        s.extend_from_slice(&(-1i16).to_be_bytes());
        s
    }

    #[test]
    fn binary_rows() {
        let plan = ColumnPlan::new(vec![
            col(Transform::Bijection, oid::INT8),
            None,
            col(Transform::Redact, oid::TEXT),
        ]);
        let input = binary_stream(&[
            vec![
                Some(42i64.to_be_bytes().to_vec()),
                Some(b"keep".to_vec()),
                Some(b"secret".to_vec()),
            ],
            vec![None, None, None],
        ]);
        let out = assert_split_invariant(&CopyFormat::Binary, &plan, &input);
        let expected_id = {
            let mut v = Vec::new();
            P.apply(
                &Transform::Bijection,
                ColumnType::plain(oid::INT8),
                Format::Binary,
                Some(&42i64.to_be_bytes()),
                &mut v,
            )
            .unwrap();
            v
        };
        let expected = binary_stream(&[
            vec![Some(expected_id), Some(b"keep".to_vec()), None],
            vec![None, None, None],
        ]);
        assert_eq!(out, expected);
    }

    /// The stand-in `apply` gives one value (text format), `None` for NULL.
    fn one(t: &Transform, v: &str) -> Option<String> {
        let mut out = Vec::new();
        let ty = ColumnType::plain(oid::TEXT);
        match P
            .apply(t, ty, Format::Text, Some(v.as_bytes()), &mut out)
            .unwrap()
        {
            Outcome::Value => Some(String::from_utf8(out).unwrap()),
            Outcome::Null => None,
        }
    }

    /// Streams of more rows than a group: every row gets what `apply`
    /// gives its values one by one, in text, CSV and binary; a bad row
    /// stops the stream after exactly the rows before it.
    #[test]
    fn groups_give_what_each_value_gets() {
        let plan = ColumnPlan::new(vec![
            col(Transform::Phone, oid::TEXT),
            None,
            col(Transform::Email, oid::TEXT),
        ]);
        let rows: Vec<[String; 3]> = (0..150)
            .map(|i| {
                [
                    format!("+44 20 7946 {:04}", i * 7),
                    format!("kept {i}"),
                    format!("user{i}@mail.example.com"),
                ]
            })
            .collect();
        let expected: Vec<[String; 3]> = rows
            .iter()
            .map(|[phone, kept, email]| {
                [
                    one(&Transform::Phone, phone).unwrap(),
                    kept.clone(),
                    one(&Transform::Email, email).unwrap(),
                ]
            })
            .collect();
        let text: String = rows.iter().map(|r| r.join("\t") + "\n").collect();
        let csv: String = rows.iter().map(|r| r.join(",") + "\n").collect();
        let want_text: String = expected.iter().map(|r| r.join("\t") + "\n").collect();
        let want_csv: String = expected.iter().map(|r| r.join(",") + "\n").collect();
        for (format, input, want, delim) in [
            (CopyFormat::text(), &text, &want_text, "\t"),
            (CopyFormat::csv(), &csv, &want_csv, ","),
        ] {
            let out = run(&format, &plan, &[input.as_bytes()]).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), *want);
            let mut r = CopyRewriter::new(plan.clone(), format, Arc::clone(&P));
            let mut out = Vec::new();
            let bad = input.replacen("kept 100", &format!("kept{delim}100"), 1);
            assert!(r.feed(bad.as_bytes(), &mut out).is_err());
            let kept: usize = want.lines().take(100).map(|l| l.len() + 1).sum();
            assert_eq!(out, want.as_bytes()[..kept]);
        }
        let binary = |rows: &[[String; 3]]| {
            let rows: Vec<Vec<Option<Vec<u8>>>> = rows
                .iter()
                .map(|r| r.iter().map(|v| Some(v.clone().into_bytes())).collect())
                .collect();
            binary_stream(&rows)
        };
        let out = run(&CopyFormat::Binary, &plan, &[&binary(&rows)]).unwrap();
        assert_eq!(out, binary(&expected));
    }

    /// The messages of framed output, each checked for its tag and length.
    fn messages(mut framed: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !framed.is_empty() {
            assert_eq!(framed[0], b'd');
            let len = u32::from_be_bytes(framed[1..5].try_into().unwrap()) as usize;
            out.push(&framed[5..1 + len]);
            framed = &framed[1 + len..];
        }
        out
    }

    /// Framed, the output is one CopyData message per row as PostgreSQL
    /// sends them: the header line alone, the binary file header with the
    /// first row, the trailer alone (with the header when there is no row).
    #[test]
    fn framed_output_is_one_message_per_row() {
        let plan = ColumnPlan::new(vec![col(Transform::Phone, oid::TEXT), None]);
        let mut csv = CopyFormat::csv();
        if let CopyFormat::Csv { header, .. } = &mut csv {
            *header = true;
        }
        let input = "phone,note\n+44 20 7946 0001,a\n+44 20 7946 0002,b\n";
        let framed = CopyRewriter::new(plan.clone(), csv.clone(), Arc::clone(&P)).framed();
        let mut out = Vec::new();
        let mut rw = framed;
        rw.feed(input.as_bytes(), &mut out).unwrap();
        let bare = run(&csv, &plan, &[input.as_bytes()]).unwrap();
        let lines: Vec<&[u8]> = bare.split_inclusive(|&b| b == b'\n').collect();
        assert_eq!(messages(&out), lines);

        let rows = |n: usize| -> Vec<Vec<Option<Vec<u8>>>> {
            (0..n)
                .map(|i| vec![Some(format!("+44 20 7946 {i:04}").into_bytes()), None])
                .collect()
        };
        for n in [0, 3] {
            let stream = binary_stream(&rows(n));
            let mut rw =
                CopyRewriter::new(plan.clone(), CopyFormat::Binary, Arc::clone(&P)).framed();
            let mut out = Vec::new();
            rw.feed(&stream, &mut out).unwrap();
            let bare = run(&CopyFormat::Binary, &plan, &[&stream]).unwrap();
            let got = messages(&out);
            assert_eq!(got.concat(), bare);
            assert_eq!(got.len(), n.max(1) + usize::from(n > 0), "{n} rows");
            assert!(got[0].starts_with(BINARY_SIGNATURE));
            let trailer = &(-1i16).to_be_bytes()[..];
            assert!(
                got.last().unwrap().ends_with(trailer),
                "the trailer ends it"
            );
            assert_eq!(got.last().unwrap().len() == 2, n > 0, "alone after rows");
        }
    }

    /// A failing binary value stops the stream after exactly the rows
    /// before it, written once, whether its group was full or ended by the
    /// trailer.
    #[test]
    fn binary_rows_before_a_failure_are_written_once() {
        let plan = ColumnPlan::new(vec![Some(PlannedColumn {
            transform: Transform::Phone,
            ty: ColumnType::plain(600),
            format: Format::Binary,
        })]);
        for (rows, bad) in [(64, 5), (6, 3)] {
            let values: Vec<Vec<Option<Vec<u8>>>> = (0..rows)
                .map(|i| vec![(i >= bad).then(|| vec![1u8; 16])])
                .collect();
            let mut rw = CopyRewriter::new(plan.clone(), CopyFormat::Binary, Arc::clone(&P));
            let mut out = Vec::new();
            assert!(rw.feed(&binary_stream(&values), &mut out).is_err());
            let header = 19 + 3;
            let null_row = 2 + 4;
            assert_eq!(
                out.len(),
                header + bad * null_row,
                "{rows} rows, failing at {bad}"
            );
        }
    }

    #[test]
    fn errors() {
        let text = CopyFormat::text();
        assert_eq!(
            run(&text, &plan(), &[b"1\t2\t3\t4\n5\t6"]),
            Err(RewriteError::Truncated)
        );
        assert!(matches!(
            run(&text, &plan(), &[b"1\t2\n"]),
            Err(RewriteError::ColumnCount {
                got: 2,
                expected: 4
            })
        ));
        assert!(matches!(
            run(&text, &plan(), &[b"1\t2\t3\t4\t5\n"]),
            Err(RewriteError::ColumnCount {
                got: 5,
                expected: 4
            })
        ));
        assert!(run(&CopyFormat::csv(), &plan(), &[b"1,\"open,3,4\n"]).is_err());
        assert!(run(&CopyFormat::Binary, &plan(), &[b"PGCOPZ"]).is_err());
        let no_trailer = binary_stream(&[]);
        assert_eq!(
            run(
                &CopyFormat::Binary,
                &plan(),
                &[&no_trailer[..no_trailer.len() - 2]]
            ),
            Err(RewriteError::Truncated)
        );
        let mut after = binary_stream(&[]);
        after.push(0);
        assert!(run(&CopyFormat::Binary, &plan(), &[&after]).is_err());
        let unknown = ColumnPlan::new(vec![Some(PlannedColumn {
            transform: Transform::Email,
            ty: ColumnType::plain(600),
            format: Format::Binary,
        })]);
        let one = binary_stream(&[vec![Some(b"x".to_vec())]]);
        assert!(matches!(
            run(&CopyFormat::Binary, &unknown, &[&one]),
            Err(RewriteError::Pseudonym(_))
        ));
    }

    #[test]
    fn passthrough_copies_bytes() {
        let plan = ColumnPlan::new(vec![None, None]);
        let input = b"a\tb\nc\td\n";
        assert_eq!(run(&CopyFormat::text(), &plan, &[input]).unwrap(), input);
    }

    /// `input` cut at the positions `cuts` pick.
    fn split_at<'a>(input: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        at.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for c in at {
            chunks.push(&input[prev..c]);
            prev = c;
        }
        chunks.push(&input[prev..]);
        chunks
    }

    proptest! {
        #[test]
        fn plain_delimiters_are_those_before_a_special_byte(
            v in prop_oneof![proptest::collection::vec(any::<u8>(), 0..40), proptest::collection::vec(prop_oneof![Just(b'\t'), Just(b'a'), Just(0x89u8), Just(b'\\')], 0..40)],
            delim in prop_oneof![Just(b'\t'), any::<u8>()],
        ) {
            let mut got = vec![99];
            let plain = plain_delimiters(&v, delim, b'\\', &mut got);
            let first = v.iter().position(|&c| c == b'\\');
            prop_assert_eq!(plain, first.is_none());
            let want: Vec<usize> = (0..first.unwrap_or(v.len())).filter(|&i| v[i] == delim).collect();
            if plain {
                prop_assert_eq!(got, want);
            } else {
                prop_assert!(want.starts_with(&got), "{:?} begins {:?}", want, got);
            }
        }

        #[test]
        fn find2_finds_the_first(hay in proptest::collection::vec(any::<u8>(), 0..40), a in any::<u8>(), b in any::<u8>()) {
            prop_assert_eq!(find2(&hay, a, b), hay.iter().position(|&c| c == a || c == b));
        }

        #[test]
        fn has_byte_is_any(
            v in prop_oneof![proptest::collection::vec(any::<u8>(), 0..40), proptest::collection::vec(b'0'..=b'z', 0..40)],
            below in prop_oneof![Just(0u8), Just(0x20), 0u8..=128],
            set in prop_oneof![any::<[u8; 4]>(), Just([b',', b'"', b'\n', b'\r'])],
        ) {
            prop_assert_eq!(has_byte(&v, below, set), v.iter().any(|&c| c < below || set.contains(&c)));
            let two = [set[0], set[1]];
            prop_assert_eq!(has_byte(&v, below, two), v.iter().any(|&c| c < below || two.contains(&c)));
        }

        #[test]
        fn text_escapes_round_trip(v in proptest::collection::vec(any::<u8>(), 0..40), delim in prop_oneof![Just(b'\t'), Just(b','), Just(b'|')]) {
            let mut escaped = Vec::new();
            text_escape(&v, delim, &mut escaped);
            prop_assert!(!escaped.contains(&b'\n'));
            prop_assert_eq!(text_field_end(&escaped, 0, delim), escaped.len());
            let mut back = Vec::new();
            text_unescape(&escaped, &mut back);
            prop_assert_eq!(back, v);
        }

        #[test]
        fn csv_quoting_round_trips(v in proptest::collection::vec(any::<u8>(), 0..40), escape in prop_oneof![Just(b'"'), Just(b'\\')]) {
            let force = ForceQuote::Off;
            let opts = Csv { delimiter: b',', quote: b'"', escape, null: b"", force_quote: &force };
            let mut out = Vec::new();
            if opts.needs_quotes(&v, false, false) {
                opts.write_quoted(&v, &mut out);
            } else {
                out.extend_from_slice(&v);
            }
            let (end, quoted) = opts.field_end(&out, 0).unwrap();
            prop_assert_eq!(end, out.len());
            prop_assert!(quoted || (!v.is_empty() && out == v));
            let mut back = Vec::new();
            if quoted {
                opts.unquote(&out, &mut back);
            } else {
                back.extend_from_slice(&out);
            }
            prop_assert_eq!(back, v);
        }

        #[test]
        fn csv_rows_split_anywhere(
            rows in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..12), proptest::collection::vec(any::<u8>(), 0..12)), 1..6),
            escape in prop_oneof![Just(b'"'), Just(b'\\')],
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let format = CopyFormat::Csv {
                delimiter: b',',
                quote: b'"',
                escape,
                null: Vec::new(),
                header: false,
                force_quote: ForceQuote::Off,
            };
            let force = ForceQuote::Off;
            let opts = Csv { delimiter: b',', quote: b'"', escape, null: b"", force_quote: &force };
            let field = |v: &[u8], out: &mut Vec<u8>| {
                if opts.needs_quotes(v, false, false) {
                    opts.write_quoted(v, out);
                } else {
                    out.extend_from_slice(v);
                }
            };
            let (mut input, mut expected) = (Vec::new(), Vec::new());
            for (a, b) in &rows {
                field(a, &mut input);
                input.push(b',');
                field(b, &mut input);
                input.push(b'\n');
                field(a, &mut expected);
                expected.extend_from_slice(b",k\n");
            }
            let chunks = split_at(&input, &cuts);
            let plan = ColumnPlan::new(vec![None, col(constant("k"), oid::TEXT)]);
            prop_assert_eq!(run(&format, &plan, &chunks).unwrap(), expected);
        }

        #[test]
        fn text_rows_split_anywhere(
            rows in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..12), proptest::collection::vec(any::<u8>(), 0..12)), 1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let (mut input, mut expected) = (Vec::new(), Vec::new());
            for (a, b) in &rows {
                text_escape(a, b'\t', &mut input);
                input.push(b'\t');
                text_escape(b, b'\t', &mut input);
                input.push(b'\n');
                text_escape(a, b'\t', &mut expected);
                expected.extend_from_slice(b"\tk\n");
            }
            let chunks = split_at(&input, &cuts);
            let plan = ColumnPlan::new(vec![None, col(constant("k"), oid::TEXT)]);
            prop_assert_eq!(run(&CopyFormat::text(), &plan, &chunks).unwrap(), expected);
        }

        #[test]
        fn random_streams_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 0..5), which in 0..3usize) {
            let format = [CopyFormat::text(), CopyFormat::csv(), CopyFormat::Binary][which].clone();
            let mut r = CopyRewriter::new(plan(), format, Arc::clone(&P));
            let mut out = Vec::new();
            for c in &chunks {
                if r.feed(c, &mut out).is_err() {
                    break;
                }
            }
            let _ = r.finish();
        }
    }
}
