//! Queries copyguard runs for itself on a session's connection, in the
//! extended protocol: a simple Query would drop the client's unnamed
//! prepared statement, which PostgreSQL keeps across Syncs until the next
//! unnamed Parse or Query, and the unnamed portal, which a client inside
//! a transaction may still be fetching from.

use bytes::{Bytes, BytesMut};

use super::{bind_message, close, describe, execute_message, parse_message};
use crate::wire::messages::frame;

/// The statement and portal name internal queries run under, closed again
/// in the same batch.
pub const INTERNAL_STATEMENT: &str = "copyguard_internal";

/// One extended-protocol batch running the `;`-separated statements of
/// `sql` (which hold no `;` of their own) in order: a Close of the portal
/// and the statement [`INTERNAL_STATEMENT`] first (a batch that failed
/// earlier skipped its own Closes, and PostgreSQL takes a Close of a name
/// it does not have), then for each statement Parse under that name, Bind
/// to the portal of that name, Describe (so every result set starts with
/// its RowDescription), Execute and both Closes; then one Sync. The
/// answers are those of a simple Query of `sql`, with ParseComplete,
/// BindComplete and CloseComplete between them.
pub fn internal_batch(sql: &str) -> Bytes {
    let mut closes = BytesMut::new();
    closes.extend_from_slice(&close(b'P', INTERNAL_STATEMENT));
    closes.extend_from_slice(&close(b'S', INTERNAL_STATEMENT));
    let describe = describe(b'P', INTERNAL_STATEMENT);
    let mut out = BytesMut::new();
    out.extend_from_slice(&closes);
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        out.extend_from_slice(&parse_message(INTERNAL_STATEMENT, statement));
        out.extend_from_slice(&bind_message(INTERNAL_STATEMENT, INTERNAL_STATEMENT));
        out.extend_from_slice(&describe);
        out.extend_from_slice(&execute_message(INTERNAL_STATEMENT, 0));
        out.extend_from_slice(&closes);
    }
    out.extend_from_slice(&frame(b'S', &[]));
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_statement_is_prepared_and_bound_named_run_and_closed_after_first_closes() {
        let batch = internal_batch("SELECT 1; SELECT 2;");
        let mut frames = Vec::new();
        let mut rest = &batch[..];
        while let [tag, a, b, c, d, ..] = rest {
            let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
            frames.push((*tag, &rest[5..1 + len]));
            rest = &rest[1 + len..];
        }
        let tags: Vec<u8> = frames.iter().map(|(tag, _)| *tag).collect();
        assert_eq!(tags, b"CCPBDECCPBDECCS");
        for (tag, body) in &frames {
            let name = match tag {
                b'B' | b'E' | b'P' => &body[..],
                b'C' | b'D' => &body[1..],
                _ => continue,
            };
            assert!(
                name.starts_with(b"copyguard_internal\0"),
                "{} names another portal or statement: {body:?}",
                *tag as char
            );
        }
        let text = String::from_utf8_lossy(&batch);
        assert!(text.contains("copyguard_internal\0SELECT 1\0"), "{text:?}");
        assert!(text.contains("copyguard_internal\0SELECT 2\0"), "{text:?}");
        assert!(!text.contains("SELECT 1;"), "{text:?}");
    }
}
