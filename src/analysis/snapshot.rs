//! Whether a statement takes its transaction's snapshot, told from its
//! leading keyword alone or from its kind: copyguard may run a query of
//! its own inside the client's transaction before such a statement, since
//! `SET TRANSACTION` (which must come before the first snapshot) can no
//! longer follow it.

use super::StatementKind;

/// Statements that run without a snapshot (PostgreSQL's
/// `PlannedStmtRequiresSnapshot` and transaction control), by leading
/// keyword: `SET TRANSACTION` may still follow them. (`PREPARE`,
/// `DEALLOCATE`, `DISCARD` and `CLOSE` take one.)
const WITHOUT_SNAPSHOT: [&str; 12] = [
    "begin",
    "checkpoint",
    "fetch",
    "listen",
    "lock",
    "move",
    "notify",
    "reset",
    "set",
    "show",
    "start",
    "unlisten",
];

/// Whether the first statement of `sql` takes the transaction's snapshot
/// (or ends the transaction): anything but the statements above, an
/// empty text, or one that is only comments.
pub fn takes_snapshot(sql: &str) -> bool {
    match leading_keyword(sql) {
        Some(word) => !WITHOUT_SNAPSHOT
            .iter()
            .any(|k| word.eq_ignore_ascii_case(k)),
        None => false,
    }
}

/// Whether a statement of `kind` takes its transaction's snapshot (those
/// that read or write data, prepare or run statements).
pub fn kind_takes_snapshot(kind: &StatementKind) -> bool {
    matches!(
        kind,
        StatementKind::Select
            | StatementKind::Insert
            | StatementKind::Update
            | StatementKind::Delete
            | StatementKind::Merge
            | StatementKind::CopyTo { .. }
            | StatementKind::CopyFrom { .. }
            | StatementKind::CreateTableAs
            | StatementKind::Declare { .. }
            | StatementKind::Execute { .. }
            | StatementKind::Prepare { .. }
            | StatementKind::Call
            | StatementKind::Explain { .. }
    )
}

/// Whether statements of `kinds`, run in order, take the transaction's
/// snapshot before any transaction statement (`SET TRANSACTION` among
/// them) could need to come first.
pub fn kinds_take_snapshot<'a>(kinds: impl IntoIterator<Item = &'a StatementKind>) -> bool {
    for kind in kinds {
        if kind_takes_snapshot(kind) {
            return true;
        }
        if matches!(kind, StatementKind::Transaction { .. }) {
            return false;
        }
    }
    false
}

/// The first word of `sql` after whitespace, comments and opening
/// parentheses, `None` when it starts with something else.
fn leading_keyword(sql: &str) -> Option<&str> {
    let mut rest = sql;
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(after) = trimmed.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, next)| next);
        } else if trimmed.starts_with("/*") {
            rest = skip_block_comment(trimmed)?;
        } else {
            rest = trimmed;
            break;
        }
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// What follows the (nested) block comment `text` starts with; `None`
/// when it does not end.
fn skip_block_comment(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i + 1 < bytes.len() {
        match &bytes[i..i + 2] {
            b"/*" => {
                depth += 1;
                i += 2;
            }
            b"*/" => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(&text[i..]);
                }
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_reading_data_take_the_snapshot() {
        for sql in [
            "SELECT 1",
            "  (select 1)",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "-- a comment\nEXECUTE p",
            "/* a /* nested */ comment */ insert into t values (1)",
            "TABLE t",
            "values (1)",
            "CALL p()",
            "COPY t TO STDOUT",
            "DECLARE c CURSOR FOR SELECT 1",
            "EXPLAIN SELECT 1",
            "CREATE TABLE t AS SELECT 1",
            "SAVEPOINT a",
            "COMMIT",
            // Red team: PostgreSQL takes the snapshot for these.
            "PREPARE x AS SELECT 1",
            "DEALLOCATE ALL",
            "DISCARD PLANS",
            "CLOSE ALL",
        ] {
            assert!(takes_snapshot(sql), "{sql}");
        }
    }

    #[test]
    fn a_request_takes_the_snapshot_unless_a_transaction_statement_comes_first() {
        let set = StatementKind::Set {
            name: "work_mem".into(),
        };
        let set_transaction = StatementKind::Transaction {
            ends: false,
            begins: false,
        };
        assert!(kinds_take_snapshot([&set, &StatementKind::Select]));
        assert!(!kinds_take_snapshot([
            &set_transaction,
            &StatementKind::Select
        ]));
        assert!(!kinds_take_snapshot([&set, &StatementKind::Show]));
    }

    #[test]
    fn what_may_come_before_set_transaction_does_not() {
        for sql in [
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "set local statement_timeout = 0; SELECT 1",
            "SHOW work_mem",
            "BEGIN",
            "START TRANSACTION",
            "LOCK TABLE t",
            "RESET ALL",
            "FETCH 10 FROM c",
            "",
            "   ",
            "-- only a comment",
            "/* unended",
            ";",
        ] {
            assert!(!takes_snapshot(sql), "{sql:?}");
        }
    }
}
