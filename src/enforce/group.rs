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
    /// Per row, column after column: the field's raw bytes in its row.
    raw: Vec<Range<usize>>,
    /// Per row, column after column: the value (`Null` where unplanned).
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
        self.raw.clear();
        self.values.clear();
        self.decoded.clear();
        self.rows = 0;
        self.stand_ins.clear();
        self.ranges.clear();
    }

    /// Adds a field of the row being read.
    pub(crate) fn field(&mut self, raw: Range<usize>, value: Value) {
        self.raw.push(raw);
        self.values.push(value);
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
        plan.check_count(self.raw.len() - self.rows * plan.len())?;
        self.rows += 1;
        Ok(())
    }

    /// Takes back the row being read.
    fn drop_row(&mut self, plan: &ColumnPlan) {
        let start = self.rows * plan.len();
        self.raw.truncate(start);
        self.values.truncate(start);
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
        self.ranges.clear();
        self.ranges.resize(n * width, None);
        for (i, column) in plan.columns.iter().enumerate() {
            let Some(c) = column else { continue };
            let values: Vec<Option<&[u8]>> = (0..n)
                .map(|r| match &self.values[r * width + i] {
                    Value::Null => None,
                    Value::InRow(at) => Some(&rows[r][at.clone()]),
                    Value::Decoded(at) => Some(&self.decoded[at.clone()]),
                })
                .collect();
            self.column.clear();
            let r = p.apply_many(
                &c.transform,
                c.ty,
                fmt.unwrap_or(c.format),
                &values,
                &mut self.stand_ins,
                &mut self.column,
            );
            if let Err(e) = r {
                n = self.column.len();
                failed = Some(e.into());
            }
            for (r, range) in self.column.drain(..).enumerate().take(n) {
                self.ranges[r * width + i] = range;
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
                Part::Raw(run) => out.extend_from_slice(run),
                Part::StandIn(_, None) => out.extend_from_slice(&(-1i32).to_be_bytes()),
                Part::StandIn(_, Some(v)) => {
                    let n = i32::try_from(v.len()).map_err(|_| RewriteError::TooLarge)?;
                    out.extend_from_slice(&n.to_be_bytes());
                    out.extend_from_slice(v);
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
            Part::StandIn(i, stand_in.map(|at| &group.stand_ins[at]))
        } else {
            let width = columns.len();
            let end = (i..width).find(|&k| columns[k].is_some()).unwrap_or(width);
            let run = group.raw[base + i].start..group.raw[base + end - 1].end;
            self.i = end;
            Part::Raw(&self.bytes[run])
        };
        Some(part)
    }
}

/// A part of a row as [`Row::parts`] gives it.
pub(crate) enum Part<'a> {
    /// Unplanned columns as they came.
    Raw(&'a [u8]),
    /// Planned column `i`'s stand-in, `None` for NULL.
    StandIn(usize, Option<&'a [u8]>),
}

/// Notes the row's `plan.len()` length-prefixed values (DataRow and
/// binary COPY layout) from `at` on; returns where they end.
pub(crate) fn read_prefixed(
    g: &mut Group,
    plan: &ColumnPlan,
    row: &[u8],
    mut at: usize,
) -> Result<usize, RewriteError> {
    for column in &plan.columns {
        let (value, next) = read_value(row, at)?;
        let value = match (column, value) {
            (Some(_), Some(_)) => Value::InRow(at + 4..next),
            _ => Value::Null,
        };
        g.field(at..next, value);
        at = next;
    }
    Ok(at)
}
