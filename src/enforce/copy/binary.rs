//! Binary format: the `PGCOPY` file header, tuples of length-prefixed
//! fields, the trailer.

use super::*;
use crate::enforce::group;

impl CopyRewriter {
    pub(super) fn feed_binary(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
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
    pub(super) fn binary_units(
        &mut self,
        buf: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, RewriteError> {
        let mut tuples = Vec::with_capacity(GROUP_ROWS);
        let r = self.binary_scan(buf, &mut tuples, out);
        self.binary_tuples(&tuples, out)?;
        r
    }

    /// [`binary_units`](Self::binary_units) but for the last tuples, left
    /// in `tuples`.
    pub(super) fn binary_scan<'a>(
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
                    self.work.framing.open(out);
                    out.extend_from_slice(&rest[..len]);
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

    /// Complete tuples, rewritten together.
    pub(super) fn binary_tuples(
        &mut self,
        tuples: &[&[u8]],
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
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

/// The length of the binary file header at the start of `b`, `None` if
/// incomplete.
pub(super) fn binary_header_len(b: &[u8]) -> Result<Option<usize>, RewriteError> {
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
pub(super) fn binary_tuple_len(b: &[u8], count: usize) -> Result<Option<usize>, RewriteError> {
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
