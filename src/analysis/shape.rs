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

use std::borrow::Cow;
use std::cell::Cell;

use sqlparser::ast::DollarQuotedString;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use scanner::{scan, Stop};

/// The longest text given a shape; longer statements are not cached.
pub const MAX_SHAPE_INPUT: usize = 4096;

/// Marker of a replaced number.
const NUMBER: &str = "\0n";
/// Marker of a replaced string.
const STRING: &str = "\0s";
/// Ends every token of a shape.
const END: char = '\u{1f}';

/// One token, as the shape spells it.
#[derive(Debug, PartialEq)]
enum Tok<'a> {
    /// A keyword or identifier, and its quote.
    Word(Cow<'a, str>, Option<char>),
    /// A number, and whether it had sqlparser's `L` suffix.
    Number(Cow<'a, str>, bool),
    /// A single-quoted string, its quotes undone.
    Str(Cow<'a, str>),
    /// `$1`.
    Placeholder(Cow<'a, str>),
    /// An operator or punctuation, as sqlparser writes it.
    Punct(Cow<'a, str>),
    /// Anything else, as sqlparser debugs it.
    Other(String),
    /// An `E'…'` string, its escapes undone (shaped as sqlparser debugs
    /// it).
    Escaped(Cow<'a, str>),
    /// A dollar-quoted string and its tag, empty when it has none (shaped
    /// as sqlparser debugs it).
    Dollar(&'a str, &'a str),
    /// A comment's text, and whether it is a `--` line comment rather
    /// than a `/* */` block (no part of a shape).
    Comment(&'a str, bool),
    /// An `N'…'`, `B'…'`, `X'…'` or `U&'…'` string, its quotes and
    /// escapes undone (shaped as sqlparser debugs it).
    Prefixed(Prefixed, Cow<'a, str>),
    /// A token [`scan`] leaves to sqlparser's tokenizer.
    Foreign,
    /// The first line break outside a token once [`scan`]'s `line_end`
    /// is set (the end of a `COPY … FROM STDIN;` line).
    LineEnd,
}

/// The prefix of a [`Tok::Prefixed`] string.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Prefixed {
    National,
    Bits,
    Hex,
    Unicode,
}

impl Prefixed {
    /// sqlparser's token of such a string.
    fn token(self, text: String) -> Token {
        match self {
            Prefixed::National => Token::NationalStringLiteral(text),
            Prefixed::Bits => Token::SingleQuotedByteStringLiteral(text),
            Prefixed::Hex => Token::HexStringLiteral(text),
            Prefixed::Unicode => Token::UnicodeStringLiteral(text),
        }
    }
}

/// The shape of `sql`, or `None` when it is too long or does not tokenize.
///
/// Most statements are tokenized by [`quick`], a small scanner for plain
/// SQL (words, numbers, simple strings and operators) that gives up on
/// anything else; sqlparser's tokenizer, the one analysis uses, takes the
/// rest. Both yield the same tokens for the texts `quick` accepts.
pub fn shape(sql: &str) -> Option<String> {
    if sql.len() > MAX_SHAPE_INPUT {
        return None;
    }
    match quick(sql) {
        Some(tokens) => Some(encode(&tokens, sql.len())),
        None => full(sql).map(|tokens| encode(&tokens, sql.len())),
    }
}

/// The tokens of sqlparser's PostgreSQL tokenizer, whitespace and
/// comments dropped.
fn full(sql: &str) -> Option<Vec<Tok<'static>>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    Some(
        tokens
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
            .map(|t| match t {
                Token::Word(w) => Tok::Word(Cow::Owned(w.value), w.quote_style),
                Token::Number(n, long) => Tok::Number(Cow::Owned(n), long),
                Token::SingleQuotedString(s) => Tok::Str(Cow::Owned(s)),
                Token::Placeholder(p) => Tok::Placeholder(Cow::Owned(p)),
                t if punctuation(&t) => Tok::Punct(Cow::Owned(t.to_string())),
                other => Tok::Other(format!("{other:?}")),
            })
            .collect(),
    )
}

/// The shape of `tokens`.
fn encode(tokens: &[Tok<'_>], len: usize) -> String {
    let normalize = normalizable(tokens);
    let mut out = String::with_capacity(len + 8 * tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        let replace = normalize
            && i > 0
            && after_operator(&tokens[i - 1])
            && tokens.get(i + 1).is_none_or(ends_operand);
        match token {
            Tok::Number(..) if replace => out.push_str(NUMBER),
            Tok::Str(_) if replace => out.push_str(STRING),
            Tok::Word(value, quote) => {
                prefixed(&mut out, 'w', value);
                out.push(quote.unwrap_or(' '));
                out.push_str(value);
            }
            Tok::Number(n, long) => {
                prefixed(&mut out, 'n', n);
                out.push_str(if *long { "true" } else { "false" });
                out.push_str(n);
            }
            Tok::Str(text) => {
                prefixed(&mut out, 's', text);
                out.push(':');
                out.push_str(text);
            }
            Tok::Placeholder(p) => {
                prefixed(&mut out, 'p', p);
                out.push(':');
                out.push_str(p);
            }
            Tok::Punct(p) => out.push_str(p),
            Tok::Other(debug) => out.push_str(debug),
            Tok::Escaped(s) => {
                let token = Token::EscapedStringLiteral(s.to_string());
                out.push_str(&format!("{token:?}"));
            }
            Tok::Dollar(value, tag) => {
                let token = Token::DollarQuotedString(DollarQuotedString {
                    value: (*value).to_owned(),
                    tag: (!tag.is_empty()).then(|| (*tag).to_owned()),
                });
                out.push_str(&format!("{token:?}"));
            }
            Tok::Prefixed(kind, s) => {
                out.push_str(&format!("{:?}", kind.token(s.to_string())));
            }
            // Dropped, as sqlparser's whitespace is; [`quick`] gives no
            // foreign token.
            Tok::Comment(..) | Tok::Foreign | Tok::LineEnd => continue,
        }
        out.push(END);
    }
    out
}

/// Appends `kind` and the length of `text` in decimal.
fn prefixed(out: &mut String, kind: char, text: &str) {
    out.push(kind);
    if text.len() < 10 {
        out.push(char::from(b'0' + text.len() as u8));
        return;
    }
    let mut digits = [0u8; 20];
    let (mut n, mut at) = (text.len(), digits.len());
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in &digits[at..] {
        out.push(char::from(*d));
    }
}

/// An unquoted word equal to one of `words` (ASCII case folded).
fn word_in(token: &Tok<'_>, words: &[&str]) -> bool {
    matches!(token, Tok::Word(w, None) if words.iter().any(|k| w.eq_ignore_ascii_case(k)))
}

/// Whether literals of this statement may be replaced: a data statement
/// that names no `set_config` or `pg_settings`.
fn normalizable(tokens: &[Tok<'_>]) -> bool {
    let data_statement = tokens.first().is_some_and(|t| {
        word_in(
            t,
            &["SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES"],
        )
    });
    data_statement
        && !tokens.iter().any(|t| match t {
            Tok::Word(w, _) => {
                w.eq_ignore_ascii_case("set_config") || w.eq_ignore_ascii_case("pg_settings")
            }
            _ => false,
        })
}

/// Operators after which a literal is an operand whose value analysis
/// never reads.
fn after_operator(token: &Tok<'_>) -> bool {
    matches!(token, Tok::Punct(p) if matches!(&**p, "=" | "<>" | "<" | ">" | "<=" | ">=" | "+" | "-" | "*" | "/" | "%"))
}

/// Tokens that may follow a replaced literal: the end of its operand.
fn ends_operand(token: &Tok<'_>) -> bool {
    matches!(token, Tok::Punct(p) if matches!(&**p, "," | ")" | ";"))
        || word_in(
            token,
            &[
                "AND",
                "OR",
                "ORDER",
                "GROUP",
                "LIMIT",
                "OFFSET",
                "HAVING",
                "RETURNING",
                "UNION",
                "EXCEPT",
                "INTERSECT",
                "THEN",
                "ELSE",
                "END",
                "WHEN",
                "WHERE",
                "FROM",
            ],
        )
}

/// sqlparser tokens whose text alone tells them apart.
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
            | Token::StringConcat
            | Token::LBracket
            | Token::RBracket
    )
}

/// The tokens of plain SQL text (see [`scan`]), the same sqlparser's
/// tokenizer gives, comments dropped; `None` for anything else, and for
/// a text naming `STDIN` (after `COPY … FROM STDIN;` and a line break,
/// that tokenizer reads the data as one token): [`full`] then tokenizes it.
fn quick(sql: &str) -> Option<Vec<Tok<'_>>> {
    // Room for a token per three bytes, so the vector is seldom regrown:
    // SQL of short names and `.` (`o.id = u.user_id`) has more than one
    // token per four bytes.
    let mut tokens = Vec::with_capacity(sql.len() / 3 + 8);
    scan(sql, usize::MAX, false, &Cell::new(false), |token, _| {
        // Nor the inline data of a `COPY … FROM STDIN;`.
        if matches!(token, Tok::Foreign) || word_in(&token, &["STDIN"]) {
            return None;
        }
        tokens.push(token);
        Some(0)
    })
    .ok()?;
    Some(tokens)
}

#[path = "shape_scan.rs"]
mod scanner;

#[path = "shape_literals.rs"]
mod literals;

#[path = "shape_foreign.rs"]
mod foreign;

#[path = "shape_tokens.rs"]
mod tokens;
#[cfg(test)]
use tokens::word_token;
#[cfg(test)]
pub(crate) use tokens::OWN_ERRORS_FROM;
pub(crate) use tokens::{plain_tokens, plain_tokens_unlocated};

#[doc(hidden)]
#[path = "shape_fuzz.rs"]
pub mod fuzz;

#[cfg(test)]
#[path = "shape_tests.rs"]
mod tests;
