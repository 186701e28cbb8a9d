//! DataRow rewriting by a column plan: the planned columns of each row are
//! decoded and replaced by their stand-ins, every other byte is copied as
//! it came, and the message length is recomputed. Rows already read go
//! together, column by column ([`DataRows`]).

use crate::pseudonym::{ColumnType, Format, PseudonymError, Pseudonymizer, Transform};
use crate::wire::messages::FieldDescription;

use super::group::{self, Group, Row};

/// How one result column is pseudonymized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedColumn {
    /// The stand-in to write.
    pub transform: Transform,
    /// The column's type, from RowDescription.
    pub ty: ColumnType,
    /// The column's wire format, from RowDescription (COPY streams use
    /// their own format instead).
    pub format: Format,
}

impl PlannedColumn {
    /// The plan of one RowDescription field: its type, typmod and format
    /// (a format code other than 0 or 1 counts as binary, so a value that
    /// cannot be read is redacted or refused, never passed).
    pub fn for_field(transform: Transform, field: &FieldDescription) -> PlannedColumn {
        PlannedColumn {
            transform,
            ty: ColumnType {
                oid: field.type_oid,
                typmod: field.typmod,
            },
            format: Format::from_code(field.format).unwrap_or(Format::Binary),
        }
    }
}

/// One entry per result column (RowDescription field, or COPY column by
/// position): `None` passes the column through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnPlan {
    /// Per column, in order.
    pub columns: Vec<Option<PlannedColumn>>,
}

impl ColumnPlan {
    /// A plan over these columns.
    pub fn new(columns: Vec<Option<PlannedColumn>>) -> ColumnPlan {
        ColumnPlan { columns }
    }

    /// Whether no column is rewritten.
    pub fn is_passthrough(&self) -> bool {
        self.columns.iter().all(Option::is_none)
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Column `i` of a row being read; an error when the row has more
    /// columns than the plan.
    pub fn column(&self, i: usize) -> Result<Option<&PlannedColumn>, RewriteError> {
        self.columns
            .get(i)
            .map(Option::as_ref)
            .ok_or(RewriteError::ColumnCount {
                got: i + 1,
                expected: self.columns.len(),
            })
    }

    /// Checks that a row had as many columns as the plan.
    pub fn check_count(&self, got: usize) -> Result<(), RewriteError> {
        if got == self.columns.len() {
            Ok(())
        } else {
            Err(RewriteError::ColumnCount {
                got,
                expected: self.columns.len(),
            })
        }
    }

    /// Whether the plan has no columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

impl From<Vec<Option<PlannedColumn>>> for ColumnPlan {
    fn from(columns: Vec<Option<PlannedColumn>>) -> ColumnPlan {
        ColumnPlan { columns }
    }
}

/// Why a row or stream could not be rewritten. The proxy stops the
/// statement: nothing of the row has been sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// A DataRow that does not parse.
    #[error("malformed DataRow: {0}")]
    MalformedRow(&'static str),
    /// A row whose column count differs from the plan.
    #[error("a row has {got} columns where the result has {expected}")]
    ColumnCount {
        /// Columns in the row.
        got: usize,
        /// Columns in the plan.
        expected: usize,
    },
    /// COPY data that does not parse in the announced format.
    #[error("malformed COPY data: {0}")]
    MalformedCopy(&'static str),
    /// The COPY stream ended inside a row (or, for binary, before its
    /// trailer).
    #[error("COPY data ended in the middle of a row")]
    Truncated,
    /// The rewriting of part of a COPY stream did not complete (its thread
    /// failed).
    #[error("rewriting COPY data failed")]
    Aborted,
    /// A rewritten row longer than a message can be.
    #[error("a rewritten row exceeds the protocol's message size")]
    TooLarge,
    /// A value copyguard cannot pseudonymize.
    #[error(transparent)]
    Pseudonym(#[from] PseudonymError),
}

/// Appends the rewritten DataRow `frame` (`'D'`, length, column count,
/// then per column a length, -1 for NULL, and the bytes) to `out`. On
/// error nothing is appended.
pub fn rewrite_data_row(
    plan: &ColumnPlan,
    p: &Pseudonymizer,
    frame: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), RewriteError> {
    DataRows::default().rewrite(plan, p, &[frame], out)
}

/// Rewrites the DataRows of a result in groups, column by column (see
/// `group`), keeping its buffers from one call to the next.
#[derive(Default)]
pub struct DataRows {
    group: Group,
}

impl DataRows {
    /// Appends the rewritten `frames` (whole DataRows, in order) to `out`.
    /// On error the rows before the failing one have been appended, and
    /// nothing of it.
    pub fn rewrite(
        &mut self,
        plan: &ColumnPlan,
        p: &Pseudonymizer,
        frames: &[&[u8]],
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
        if plan.is_passthrough() {
            for frame in frames {
                check_header(plan, frame)?;
                let mut at = 7;
                for _ in &plan.columns {
                    at = read_value(frame, at)?.1;
                }
                if at != frame.len() {
                    return Err(RewriteError::MalformedRow("bytes after the last column"));
                }
                out.extend_from_slice(frame);
            }
            return Ok(());
        }
        let read = |g: &mut Group, plan: &ColumnPlan, frame: &[u8]| {
            check_header(plan, frame)?;
            if group::read_prefixed(g, plan, frame, 7)? != frame.len() {
                return Err(RewriteError::MalformedRow("bytes after the last column"));
            }
            Ok(())
        };
        let write = |row: Row<'_>, out: &mut Vec<u8>| {
            let start = out.len();
            out.extend_from_slice(&row.bytes()[..7]);
            row.write_prefixed(out)?;
            let len = i32::try_from(out.len() - start - 1).map_err(|_| RewriteError::TooLarge)?;
            out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
            Ok(())
        };
        self.group.rows(plan, p, None, frames, read, write, out)
    }
}

/// Checks a DataRow's tag, length and column count (against the plan).
fn check_header(plan: &ColumnPlan, frame: &[u8]) -> Result<(), RewriteError> {
    if frame.len() < 7 || frame[0] != b'D' {
        return Err(RewriteError::MalformedRow("not a DataRow"));
    }
    let declared = i32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]);
    if usize::try_from(declared).ok() != Some(frame.len() - 1) {
        return Err(RewriteError::MalformedRow(
            "length does not match the frame",
        ));
    }
    let count = i16::from_be_bytes([frame[5], frame[6]]);
    let count =
        usize::try_from(count).map_err(|_| RewriteError::MalformedRow("negative column count"))?;
    plan.check_count(count)
}

/// The value at `at` (`None` for NULL) and where the next one starts.
pub(crate) fn read_value(frame: &[u8], at: usize) -> Result<(Option<&[u8]>, usize), RewriteError> {
    let len = frame
        .get(at..at + 4)
        .ok_or(RewriteError::MalformedRow("truncated column length"))?;
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    if len == -1 {
        return Ok((None, at + 4));
    }
    let len =
        usize::try_from(len).map_err(|_| RewriteError::MalformedRow("negative column length"))?;
    let end = at + 4 + len;
    let value = frame
        .get(at + 4..end)
        .ok_or(RewriteError::MalformedRow("column value past the end"))?;
    Ok((Some(value), end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::{oid, Key, Settings};
    use proptest::prelude::*;
    use std::sync::LazyLock;

    static P: LazyLock<Pseudonymizer> = LazyLock::new(|| {
        let key = Key::from_text("t", &"11".repeat(32)).unwrap();
        Pseudonymizer::new(&key, Settings::default()).unwrap()
    });

    fn frame(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut f = vec![b'D', 0, 0, 0, 0];
        f.extend_from_slice(&(values.len() as i16).to_be_bytes());
        for v in values {
            match v {
                None => f.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    f.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    f.extend_from_slice(b);
                }
            }
        }
        let len = (f.len() - 1) as i32;
        f[1..5].copy_from_slice(&len.to_be_bytes());
        f
    }

    fn values(f: &[u8]) -> Vec<Option<Vec<u8>>> {
        let n = i16::from_be_bytes([f[5], f[6]]) as usize;
        let mut at = 7;
        (0..n)
            .map(|_| {
                let (v, next) = read_value(f, at).unwrap();
                at = next;
                v.map(<[u8]>::to_vec)
            })
            .collect()
    }

    fn plan() -> ColumnPlan {
        ColumnPlan::new(vec![
            Some(PlannedColumn {
                transform: Transform::Bijection,
                ty: ColumnType::plain(oid::INT8),
                format: Format::Binary,
            }),
            None,
            Some(PlannedColumn {
                transform: Transform::Email,
                ty: ColumnType::varchar(100),
                format: Format::Text,
            }),
            Some(PlannedColumn {
                transform: Transform::Redact,
                ty: ColumnType::plain(oid::TEXT),
                format: Format::Text,
            }),
        ])
    }

    #[test]
    fn rewrites_only_planned_columns() {
        let id = 42i64.to_be_bytes();
        let f = frame(&[
            Some(&id),
            Some(b"keep me"),
            Some(b"ada@lovelace.org"),
            Some(b"secret"),
        ]);
        let mut out = b"before".to_vec();
        rewrite_data_row(&plan(), &P, &f, &mut out).unwrap();
        let row = &out[6..];
        assert_eq!(
            i32::from_be_bytes(row[1..5].try_into().unwrap()) as usize,
            row.len() - 1
        );
        let v = values(row);
        assert_ne!(v[0].as_deref(), Some(&id[..]));
        assert_eq!(v[1].as_deref(), Some(&b"keep me"[..]));
        let email = String::from_utf8(v[2].clone().unwrap()).unwrap();
        assert!(email.ends_with("@example.invalid"), "{email}");
        assert_eq!(v[3], None);
        let nulls = frame(&[None, None, None, None]);
        let mut out = Vec::new();
        rewrite_data_row(&plan(), &P, &nulls, &mut out).unwrap();
        assert_eq!(out, nulls);
    }

    /// Rows rewritten together are the rows rewritten one by one; a bad
    /// row stops the group after exactly the rows before it.
    #[test]
    fn groups_are_rows_one_by_one() {
        let rows: Vec<Vec<u8>> = (0..150i64)
            .map(|i| {
                let email = format!("user{i}@mail.example.com");
                frame(&[
                    Some(&(i * 7919).to_be_bytes()),
                    Some(b"kept"),
                    Some(email.as_bytes()),
                    (i % 3 == 0).then_some(&b"x"[..]),
                ])
            })
            .collect();
        let mut one_by_one = Vec::new();
        for r in &rows {
            rewrite_data_row(&plan(), &P, r, &mut one_by_one).unwrap();
        }
        let frames: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        let (mut grouped, mut data_rows) = (Vec::new(), DataRows::default());
        for group in frames.chunks(64) {
            data_rows.rewrite(&plan(), &P, group, &mut grouped).unwrap();
        }
        assert_eq!(grouped, one_by_one);

        let bad = frame(&[None, None]);
        let mut with_bad = frames[..10].to_vec();
        with_bad.insert(5, &bad);
        let mut out = Vec::new();
        let err = data_rows.rewrite(&plan(), &P, &with_bad, &mut out);
        assert!(matches!(err, Err(RewriteError::ColumnCount { got: 2, .. })));
        let five: usize = frames[..5]
            .iter()
            .map(|f| {
                let mut o = Vec::new();
                rewrite_data_row(&plan(), &P, f, &mut o).unwrap();
                o.len()
            })
            .sum();
        assert_eq!(out, one_by_one[..five]);
    }

    #[test]
    fn passthrough_and_errors() {
        let f = frame(&[Some(b"a"), None]);
        let pass = ColumnPlan::new(vec![None, None]);
        let mut out = Vec::new();
        rewrite_data_row(&pass, &P, &f, &mut out).unwrap();
        assert_eq!(out, f);
        out.clear();
        assert_eq!(
            rewrite_data_row(&plan(), &P, &f, &mut out),
            Err(RewriteError::ColumnCount {
                got: 2,
                expected: 4
            })
        );
        let mut bad = f.clone();
        bad.push(0);
        assert!(rewrite_data_row(&pass, &P, &bad, &mut out).is_err());
        let binary_unknown = ColumnPlan::new(vec![
            Some(PlannedColumn {
                transform: Transform::Email,
                ty: ColumnType::plain(600),
                format: Format::Binary,
            }),
            None,
        ]);
        assert!(matches!(
            rewrite_data_row(&binary_unknown, &P, &f, &mut out),
            Err(RewriteError::Pseudonym(PseudonymError::BinaryUnsupported {
                oid: 600,
                ..
            }))
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn plans_from_row_description_fields() {
        let field = FieldDescription {
            name: "email".into(),
            table_oid: 16384,
            attnum: 2,
            type_oid: oid::VARCHAR,
            typmod: 104,
            format: 0,
        };
        let c = PlannedColumn::for_field(Transform::Email, &field);
        assert_eq!(c.ty, ColumnType::varchar(100));
        assert_eq!(c.format, Format::Text);
        let odd = FieldDescription { format: 7, ..field };
        assert_eq!(
            PlannedColumn::for_field(Transform::Email, &odd).format,
            Format::Binary
        );
    }

    proptest! {
        #[test]
        fn random_frames_never_panic(mut f in proptest::collection::vec(any::<u8>(), 0..64), fix in any::<bool>()) {
            if fix && f.len() >= 7 {
                f[0] = b'D';
                let len = (f.len() - 1) as i32;
                f[1..5].copy_from_slice(&len.to_be_bytes());
                f[5..7].copy_from_slice(&4i16.to_be_bytes());
            }
            let mut out = Vec::new();
            if rewrite_data_row(&plan(), &P, &f, &mut out).is_err() {
                prop_assert!(out.is_empty());
            }
        }
    }
}
