//! A statement's shape: its tokens as analysis sees them, as written (case
//! and quoting kept; whitespace and comments dropped), with the literals
//! that cannot change its facts replaced by a marker. Two texts of one shape analyze to the same facts,
//! so a decision can be cached under the shape ([`crate::guard`]).
//!
//! A literal is replaced only where analysis never reads its value: a
//! number or single-quoted string right after a comparison or arithmetic
//! operator (`aid = 48213`, `x > 'a'`, `- 5`), not followed by anything
//! that could make its value matter (a `::` cast such as `'t'::regclass`,
//! a subscript, `COLLATE`), in a SELECT, INSERT, UPDATE, DELETE, WITH or
//! VALUES statement that mentions neither `set_config` nor `pg_settings`
//! (whose constant setting names are facts). Every other literal stays in
//! the shape as written: ORDER BY positions, function arguments
//! (`nextval('seq')`, `current_setting('x')`), LIMIT and FETCH counts,
//! COPY and EXPLAIN options, SET values.

use std::fmt::Write;

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

/// The longest text given a shape; longer statements are not cached.
pub const MAX_SHAPE_INPUT: usize = 4096;

/// Marker of a replaced number.
const NUMBER: &str = "\0n";
/// Marker of a replaced string.
const STRING: &str = "\0s";
/// Ends every token of a shape.
const END: char = '\u{1f}';

/// The shape of `sql`, or `None` when it is too long or does not tokenize.
pub fn shape(sql: &str) -> Option<String> {
    if sql.len() > MAX_SHAPE_INPUT {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let tokens: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
        .collect();
    let normalize = normalizable(&tokens);
    let mut out = String::with_capacity(sql.len() + 16);
    for (i, token) in tokens.iter().enumerate() {
        let replace = normalize
            && i > 0
            && after_operator(tokens[i - 1])
            && tokens.get(i + 1).is_none_or(|next| ends_operand(next));
        match token {
            Token::Number(..) if replace => out.push_str(NUMBER),
            Token::SingleQuotedString(_) if replace => out.push_str(STRING),
            Token::Word(w) => {
                let quote = w.quote_style.unwrap_or(' ');
                let _ = write!(out, "w{}{quote}{}", w.value.len(), w.value);
            }
            Token::Number(n, long) => {
                let _ = write!(out, "n{}{long}{n}", n.len());
            }
            Token::SingleQuotedString(s) => {
                let _ = write!(out, "s{}:{s}", s.len());
            }
            Token::Placeholder(p) => {
                let _ = write!(out, "p{}:{p}", p.len());
            }
            t if punctuation(t) => {
                let _ = write!(out, "{t}");
            }
            other => {
                let _ = write!(out, "{other:?}");
            }
        }
        out.push(END);
    }
    Some(out)
}

/// Whether literals of this statement may be replaced: a data statement
/// that names no `set_config` or `pg_settings`.
fn normalizable(tokens: &[&Token]) -> bool {
    let data_statement = matches!(
        tokens.first(),
        Some(Token::Word(w)) if w.quote_style.is_none()
            && matches!(
                w.keyword,
                Keyword::SELECT
                    | Keyword::INSERT
                    | Keyword::UPDATE
                    | Keyword::DELETE
                    | Keyword::WITH
                    | Keyword::VALUES
            )
    );
    data_statement
        && !tokens.iter().any(|t| match t {
            Token::Word(w) => {
                w.value.eq_ignore_ascii_case("set_config")
                    || w.value.eq_ignore_ascii_case("pg_settings")
            }
            _ => false,
        })
}

/// Operators after which a literal is an operand whose value analysis
/// never reads.
fn after_operator(token: &Token) -> bool {
    matches!(
        token,
        Token::Eq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
    )
}

/// Tokens that may follow a replaced literal: the end of its operand.
fn ends_operand(token: &Token) -> bool {
    match token {
        Token::Comma | Token::RParen | Token::SemiColon => true,
        Token::Word(w) => {
            w.quote_style.is_none()
                && matches!(
                    w.keyword,
                    Keyword::AND
                        | Keyword::OR
                        | Keyword::ORDER
                        | Keyword::GROUP
                        | Keyword::LIMIT
                        | Keyword::OFFSET
                        | Keyword::HAVING
                        | Keyword::RETURNING
                        | Keyword::UNION
                        | Keyword::EXCEPT
                        | Keyword::INTERSECT
                        | Keyword::THEN
                        | Keyword::ELSE
                        | Keyword::END
                        | Keyword::WHEN
                        | Keyword::WHERE
                        | Keyword::FROM
                )
        }
        _ => false,
    }
}

/// Tokens whose text alone tells them apart.
fn punctuation(token: &Token) -> bool {
    matches!(
        token,
        Token::Comma
            | Token::Eq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::LParen
            | Token::RParen
            | Token::Period
            | Token::SemiColon
            | Token::DoubleColon
            | Token::LBracket
            | Token::RBracket
    )
}

#[cfg(test)]
mod tests {
    use super::shape;

    fn same(a: &str, b: &str) -> bool {
        shape(a).expect("shape") == shape(b).expect("shape")
    }

    #[test]
    fn operands_of_comparisons_are_normalized() {
        assert!(same(
            "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
            "SELECT  abalance\nFROM pgbench_accounts -- c\n WHERE aid = 7;"
        ));
        assert!(same(
            "UPDATE t SET a = a + -1234 WHERE id = 1",
            "UPDATE t SET a = a + -5 WHERE id = 99"
        ));
        assert!(same(
            "SELECT id FROM o WHERE s = 'paid' AND n > 3 ORDER BY id",
            "SELECT id FROM o WHERE s = 'open' AND n > 10 ORDER BY id"
        ));
    }

    #[test]
    fn literals_that_can_matter_stay() {
        let differ = |a: &str, b: &str| assert!(!same(a, b), "{a} / {b}");
        differ("SELECT a FROM t ORDER BY 1", "SELECT a FROM t ORDER BY 2");
        differ("SELECT a FROM t LIMIT 1", "SELECT a FROM t LIMIT 2");
        differ(
            "SELECT 1 WHERE 1 = 'users'::regclass",
            "SELECT 1 WHERE 1 = 'orders'::regclass",
        );
        differ("SELECT nextval('a')", "SELECT nextval('b')");
        differ("SELECT current_setting('a')", "SELECT current_setting('b')");
        differ(
            "SELECT set_config('search_path', 'x', false) WHERE 1 = 1",
            "SELECT set_config('search_path', 'x', false) WHERE 1 = 2",
        );
        differ(
            "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'search_path'",
            "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'work_mem'",
        );
        differ(
            "SELECT 1 FROM \"PG_SETTINGS\" WHERE name = 'a'",
            "SELECT 1 FROM \"PG_SETTINGS\" WHERE name = 'b'",
        );
        differ("SET work_mem = 1", "SET work_mem = 2");
        differ(
            "EXPLAIN (ANALYZE = 'off') SELECT 1",
            "EXPLAIN (ANALYZE = 'on') SELECT 1",
        );
        differ(
            "COPY t TO STDOUT (DELIMITER ',')",
            "COPY t TO STDOUT (DELIMITER ';')",
        );
        differ(
            "SELECT a = 'x' COLLATE \"C\"",
            "SELECT a = 'y' COLLATE \"C\"",
        );
        differ(
            "SELECT a FROM t WHERE a = \"b\"",
            "SELECT a FROM t WHERE a = \"c\"",
        );
        differ(
            "SELECT a FROM t WHERE a = E'x'",
            "SELECT a FROM t WHERE a = E'y'",
        );
        differ("SELECT 'a' = 'b'", "SELECT 'c' = 'b'");
        differ("SELECT a FROM t WHERE a = 1", "select a from t where a = 1");
    }

    #[test]
    fn token_boundaries_are_kept() {
        assert!(!same("SELECT \"a b\"", "SELECT a b"));
        assert!(!same("SELECT ab", "SELECT a b"));
        assert!(!same("SELECT 'a''b'", "SELECT 'a', 'b'"));
        assert!(!same("SELECT 1 = 1", "SELECT 1 = '1'"));
        assert!(shape(&"x".repeat(super::MAX_SHAPE_INPUT + 1)).is_none());
    }
}
