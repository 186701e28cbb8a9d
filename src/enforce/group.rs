//! Rows rewritten together, column by column. The caller finds the fields
//! of a group of rows in its own format and notes each planned column's
//! value; [`Group::rewrite`] then passes every planned column's values
//! through [`Pseudonymizer::apply_many`] in one call; the caller writes
//! the rows from the raw fields and the stand-ins. Transforms that run
//! many values together (FF1 in lanes) gain from it; the others cost what
//! one call per value costs.

use std::ops::Range;

use crate::pseudonym::{Format, Pseudonymizer};

use super::rewrite::{ColumnPlan, RewriteError};

/// Rows a group holds at most.
pub(crate) const GROUP_ROWS: usize = 64;

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
    pub(crate) fn clear(&mut self) {
        self.raw.clear();
        self.values.clear();
        self.decoded.clear();
        self.rows = 0;
        self.stand_ins.clear();
        self.ranges.clear();
    }

    /// Complete rows held.
    pub(crate) fn rows(&self) -> usize {
        self.rows
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

    /// Ends the row being read, which must have `columns` fields; on error
    /// the row is taken back.
    pub(crate) fn end_row(&mut self, plan: &ColumnPlan) -> Result<(), RewriteError> {
        let start = self.rows * plan.len();
        if let Err(e) = plan.check_count(self.raw.len() - start) {
            self.raw.truncate(start);
            self.values.truncate(start);
            return Err(e);
        }
        self.rows += 1;
        Ok(())
    }

    /// Takes back the row being read.
    pub(crate) fn drop_row(&mut self, plan: &ColumnPlan) {
        let start = self.rows * plan.len();
        self.raw.truncate(start);
        self.values.truncate(start);
    }

    /// The stand-ins of every planned column of the group's rows
    /// (`rows[r]` holds row `r`'s bytes), in `fmt`. Returns how many rows
    /// can be written, all of them unless a value failed: then the rows
    /// before the first failing one (in row order, then column order) and
    /// its error.
    pub(crate) fn rewrite(
        &mut self,
        plan: &ColumnPlan,
        p: &Pseudonymizer,
        fmt: Format,
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
                fmt,
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

    /// The raw bytes of row `r`'s field `i` in its row.
    pub(crate) fn raw(&self, width: usize, r: usize, i: usize) -> Range<usize> {
        self.raw[r * width + i].clone()
    }

    /// The stand-in of row `r`'s planned field `i`, `None` for NULL.
    pub(crate) fn stand_in(&self, width: usize, r: usize, i: usize) -> Option<&[u8]> {
        self.ranges[r * width + i]
            .clone()
            .map(|at| &self.stand_ins[at])
    }
}
