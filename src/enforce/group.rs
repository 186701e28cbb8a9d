//! Rows rewritten together, column by column ([`Group::rows`]): the
//! caller's reader finds the fields of each row of a group in its format
//! (COPY text, CSV or binary, DataRow) and notes each planned column's
//! value; every planned column's values then go through
//! [`Pseudonymizer::apply_many`] in one call; the caller's writer writes
//! each row from its raw fields and the stand-ins. Transforms that run
//! many values side by side (FF1, CMAC tags) gain from it; the others
//! cost what one call per value costs.

use std::ops::Range;

use crate::pseudonym::{Format, Pseudonymizer};

use super::rewrite::{read_value, ColumnPlan, PlannedColumn, RewriteError};

/// Rows a group holds at most.
pub const GROUP_ROWS: usize = 64;

/// Where a planned column's value is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    /// These bytes of its row.
    InRow(Range<usize>),
    /// Decoded (unescaped, unquoted) into the group's own buffer.
    Decoded(Range<usize>),
}

/// The fields of a group of rows and, once rewritten, their stand-ins.
#[derive(Default)]
pub(crate) struct Group {
    /// Per row, column after column: where the field's raw bytes end in
    /// its row.
    ends: Vec<usize>,
    /// Where a row's first field starts, and how many bytes lie between a
    /// field's end and the next one's start: a line format's delimiter,
    /// none between length-prefixed values (their prefixes are part of
    /// their raw bytes).
    first: usize,
    gap: usize,
    /// The planned columns, in order.
    planned: Vec<usize>,
    /// Per column: where the run of unplanned columns from it on ends
    /// (the next planned column, or the row's width).
    run_end: Vec<usize>,
    /// Per row, planned column after planned column: the value.
    values: Vec<Value>,
    decoded: Vec<u8>,
    /// Complete rows.
    rows: usize,
    stand_ins: Vec<u8>,
    /// Per row, column after column: the stand-in's bytes, `None` for NULL.
    ranges: Vec<Option<Range<usize>>>,
    column: Vec<Option<Range<usize>>>,
}

impl Group {
    /// Empties the group for the next rows.
    fn clear(&mut self) {
        self.ends.clear();
        self.values.clear();
        self.decoded.clear();
        self.rows = 0;
        self.stand_ins.clear();
        self.ranges.clear();
    }

    /// Starts a row whose first field starts at `first`, each next one
    /// `gap` bytes after the end of the one before.
    pub(crate) fn fields_at(&mut self, first: usize, gap: usize) {
        self.first = first;
        self.gap = gap;
    }

    /// Adds a field of the row being read, ending at `end`, with its value
    /// if its column is planned.
    #[inline]
    pub(crate) fn field(&mut self, end: usize, value: Option<Value>) {
        self.ends.push(end);
        if let Some(value) = value {
            self.values.push(value);
        }
    }

    /// Adds the fields of a line-format row (`body`, without its newline)
    /// that the ends `find` appends to its vector end (and `body`'s last
    /// when `find` says the row is plain throughout), each NULL when it is
    /// the `null` string; returns how many, where the next field starts,
    /// and whether the row was plain.
    pub(crate) fn line_fields(
        &mut self,
        body: &[u8],
        null: &[u8],
        find: impl FnOnce(&mut Vec<usize>) -> bool,
    ) -> (usize, usize, bool) {
        self.fields_at(0, 1);
        let Group {
            ends,
            planned,
            values,
            ..
        } = self;
        let row = ends.len();
        let plain = find(ends);
        let next = ends[row..].last().map_or(0, |end| end + 1);
        if plain {
            ends.push(body.len());
        }
        let ends = &ends[row..];
        for &i in planned.iter() {
            let Some(&end) = ends.get(i) else { break };
            let start = match i {
                0 => 0,
                _ => ends[i - 1] + 1,
            };
            values.push(match &body[start..end] {
                raw if raw == null => Value::Null,
                _ => Value::InRow(start..end),
            });
        }
        (ends.len(), next, plain)
    }

    /// A value decoded by `decode` into the group's buffer.
    pub(crate) fn decoded(
        &mut self,
        decode: impl FnOnce(&[u8], &mut Vec<u8>),
        raw: &[u8],
    ) -> Value {
        let start = self.decoded.len();
        decode(raw, &mut self.decoded);
        Value::Decoded(start..self.decoded.len())
    }

    /// Ends the row being read, which must have as many fields as the plan
    /// has columns.
    fn end_row(&mut self, plan: &ColumnPlan) -> Result<(), RewriteError> {
        plan.check_count(self.ends.len() - self.rows * plan.len())?;
        self.rows += 1;
        Ok(())
    }

    /// Takes back the row being read.
    fn drop_row(&mut self, plan: &ColumnPlan) {
        self.ends.truncate(self.rows * plan.len());
        self.values.truncate(self.rows * self.planned.len());
    }

    /// Rewrites `rows` together: `read` notes each row's fields, the
    /// planned columns' values are pseudonymized column by column (in
    /// `fmt`, or each column's own format), and `write` appends each row to
    /// `out`. The rows before a failing one are written, nothing of it, and
    /// its error is returned.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn rows(
        &mut self,
        plan: &ColumnPlan,
        p: &Pseudonymizer,
        fmt: Option<Format>,
        rows: &[&[u8]],
        mut read: impl FnMut(&mut Group, &ColumnPlan, &[u8]) -> Result<(), RewriteError>,
        mut write: impl FnMut(Row<'_>, &mut Vec<u8>) -> Result<(), RewriteError>,
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
        self.clear();
        self.planned.clear();
        let planned = plan.columns.iter().enumerate().filter(|(_, c)| c.is_some());
        self.planned.extend(planned.map(|(i, _)| i));
        let width = plan.len();
        self.run_end.clear();
        self.run_end.resize(width, width);
        for &i in self.planned.iter().rev() {
            self.run_end[..i].fill(i);
        }
        let mut unread = None;
        for row in rows {
            let r = read(self, plan, row).and_then(|()| self.end_row(plan));
            if let Err(e) = r {
                self.drop_row(plan);
                unread = Some(e);
                break;
            }
        }
        let (n, failed) = self.rewrite(plan, p, fmt, &rows[..self.rows]);
        for (index, bytes) in rows[..n].iter().enumerate() {
            let start = out.len();
            let row = Row {
                plan,
                group: self,
                index,
                bytes,
            };
            if let Err(e) = write(row, out) {
                out.truncate(start);
                return Err(e);
            }
        }
        failed.or(unread).map_or(Ok(()), Err)
    }

    /// The stand-ins of every planned column of the group's rows
    /// (`rows[r]` holds row `r`'s bytes). Returns how many rows can be
    /// written, all of them unless a value failed: then the rows before the
    /// first failing one (in row order, then column order) and its error.
    fn rewrite(
        &mut self,
        plan: &ColumnPlan,
        p: &Pseudonymizer,
        fmt: Option<Format>,
        rows: &[&[u8]],
    ) -> (usize, Option<RewriteError>) {
        let width = plan.len();
        let (mut n, mut failed) = (self.rows, None);
        let Group {
            planned,
            values,
            decoded,
            stand_ins,
            ranges,
            column,
            ..
        } = self;
        ranges.clear();
        ranges.resize(n * width, None);
        let np = planned.len();
        for (j, &i) in planned.iter().enumerate() {
            let Some(c) = &plan.columns[i] else { continue };
            let values: Vec<Option<&[u8]>> = (0..n)
                .map(|r| match &values[r * np + j] {
                    Value::Null => None,
                    Value::InRow(at) => Some(&rows[r][at.clone()]),
                    Value::Decoded(at) => Some(&decoded[at.clone()]),
                })
                .collect();
            column.clear();
            let r = p.apply_many(
                &c.transform,
                c.ty,
                fmt.unwrap_or(c.format),
                &values,
                stand_ins,
                column,
            );
            if let Err(e) = r {
                n = column.len();
                failed = Some(e.into());
            }
            for (r, range) in column.drain(..).enumerate().take(n) {
                ranges[r * width + i] = range;
            }
        }
        (n, failed)
    }
}

/// One row of a rewritten group, as its writer sees it.
pub(crate) struct Row<'a> {
    plan: &'a ColumnPlan,
    group: &'a Group,
    /// The row's index in the group, and its bytes.
    index: usize,
    bytes: &'a [u8],
}

impl<'a> Row<'a> {
    /// The row as it came.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The row's fields in order: each run of unplanned columns as one
    /// stretch of the row as it came (with the separators inside it), each
    /// planned column as its stand-in. Writers put a separator between
    /// two parts.
    #[inline]
    pub(crate) fn parts(&self) -> Parts<'a> {
        Parts {
            columns: &self.plan.columns,
            base: self.index * self.plan.len(),
            group: self.group,
            bytes: self.bytes,
            i: 0,
        }
    }

    /// Appends every field as a length-prefixed value (DataRow and binary
    /// COPY layout): as it came, or its stand-in (-1 for NULL).
    pub(crate) fn write_prefixed(&self, out: &mut Vec<u8>) -> Result<(), RewriteError> {
        for part in self.parts() {
            match part {
                Part::Raw(run) => run.put(out),
                Part::StandIn(_, None) => out.extend_from_slice(&(-1i32).to_be_bytes()),
                Part::StandIn(_, Some(v)) => {
                    let n = i32::try_from(v.len).map_err(|_| RewriteError::TooLarge)?;
                    out.extend_from_slice(&n.to_be_bytes());
                    v.put(out);
                }
            }
        }
        Ok(())
    }
}

/// The parts of a row ([`Row::parts`]).
pub(crate) struct Parts<'a> {
    columns: &'a [Option<PlannedColumn>],
    /// Where the row's fields start in the group's per-field vectors.
    base: usize,
    group: &'a Group,
    bytes: &'a [u8],
    /// The next column.
    i: usize,
}

impl<'a> Iterator for Parts<'a> {
    type Item = Part<'a>;

    #[inline]
    fn next(&mut self) -> Option<Part<'a>> {
        let (columns, group, base, i) = (self.columns, self.group, self.base, self.i);
        let column = columns.get(i)?;
        let part = if column.is_some() {
            self.i += 1;
            let stand_in = group.ranges[base + i].clone();
            Part::StandIn(i, stand_in.map(|at| Piece::new(&group.stand_ins, at)))
        } else {
            let end = group.run_end[i];
            let start = match i {
                0 => group.first,
                _ => group.ends[base + i - 1] + group.gap,
            };
            self.i = end;
            Part::Raw(Piece::new(self.bytes, start..group.ends[base + end - 1]))
        };
        Some(part)
    }
}

/// A part of a row as [`Row::parts`] gives it.
pub(crate) enum Part<'a> {
    /// Unplanned columns as they came.
    Raw(Piece<'a>),
    /// Planned column `i`'s stand-in, `None` for NULL.
    StandIn(usize, Option<Piece<'a>>),
}

/// Bytes of a row or a stand-in, and the bytes after them in their
/// buffer: a short piece is appended as one 16-byte copy ([`Piece::put`]).
#[derive(Clone, Copy)]
pub(crate) struct Piece<'a> {
    /// The piece and what follows it.
    from: &'a [u8],
    len: usize,
}

impl<'a> Piece<'a> {
    #[inline]
    fn new(buf: &'a [u8], at: Range<usize>) -> Piece<'a> {
        let len = buf[at.clone()].len();
        Piece {
            from: &buf[at.start..],
            len,
        }
    }

    /// The piece's bytes.
    #[inline]
    pub(crate) fn bytes(&self) -> &'a [u8] {
        &self.from[..self.len]
    }

    /// Appends the piece to `out`: when it is at most 16 bytes long and 16
    /// bytes follow its start, as those 16 bytes, cut back to the piece.
    #[inline(always)]
    pub(crate) fn put(&self, out: &mut Vec<u8>) {
        match self.from.first_chunk::<16>() {
            Some(window) if self.len <= 16 => {
                let end = out.len() + self.len;
                out.extend_from_slice(window);
                out.truncate(end);
            }
            _ => out.extend_from_slice(self.bytes()),
        }
    }
}

/// Notes the row's `plan.len()` length-prefixed values (DataRow and
/// binary COPY layout) from `at` on; returns where they end.
pub(crate) fn read_prefixed(
    g: &mut Group,
    plan: &ColumnPlan,
    row: &[u8],
    mut at: usize,
) -> Result<usize, RewriteError> {
    g.fields_at(at, 0);
    for column in &plan.columns {
        let (value, next) = read_value(row, at)?;
        let value = column.as_ref().map(|_| match value {
            Some(_) => Value::InRow(at + 4..next),
            None => Value::Null,
        });
        g.field(next, value);
        at = next;
    }
    Ok(at)
}
