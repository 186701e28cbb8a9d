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
use std::ops::Range;

use sqlparser::ast::DollarQuotedString;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use literals::{backslashed, block_comment_end, escaped, find_tag, quoted, unicode};

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

/// The bytes of a word after its first: ASCII letters and digits, `_`,
/// `$` and every byte of a non-ASCII character.
const WORD_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || !b.is_ascii();
        c += 1;
    }
    table
};

/// Characters that may start or continue an operator.
fn operator_char(c: u8) -> bool {
    b"=<>+-*/%!~@#^&|?:`".contains(&c)
}

/// The tokens of plain SQL text (see [`scan`]), the same sqlparser's
/// tokenizer gives, comments dropped; `None` for anything else, and for
/// a text naming `STDIN` (after `COPY … FROM STDIN;` and a line break,
/// that tokenizer reads the data as one token): [`full`] then tokenizes it.
fn quick(sql: &str) -> Option<Vec<Tok<'_>>> {
    let mut tokens = Vec::with_capacity(sql.len() / 4 + 4);
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

/// Why [`scan`] stopped before the end of its text.
#[derive(Debug)]
enum Stop {
    /// Its `emit` said so.
    Caller,
    /// sqlparser's tokenizer refuses the token at this byte, for this
    /// reason.
    Refused(usize, &'static str),
}

/// Scans SQL text, giving each token and its bytes to `emit`. The scanner
/// reads words, numbers, `$n` placeholders, single-quoted, `E'…'`,
/// `N'…'`, `B'…'`, `X'…'`, `U&'…'` and dollar-quoted strings, quoted
/// identifiers, comments, punctuation and the operators `=`, `<>`, `!=`,
/// `<`, `>`, `<=`, `>=`, `+`, `-`, `*`, `/`, `%`, `||` and `::`, all ASCII
/// outside quotes and comments, exactly as sqlparser's tokenizer reads
/// them (a word is ASCII letters, digits, `_`, `$` and any non-ASCII
/// character). Any other token (other operators, `:`, numbers with an
/// exponent, a separator, a suffix or no digit before their point…) is
/// given as [`Tok::Foreign`] with an empty range at its first byte: `emit`
/// reads it and returns the byte after it, or `None` to stop the scan.
/// Once `line_end` is set, the next line break outside a token is given
/// as [`Tok::LineEnd`] (and `line_end` cleared): `emit` returns the byte
/// to go on from. A token sqlparser's tokenizer refuses (an unclosed quote or
/// comment, a bad escape) stops the scan with [`Stop::Refused`].
///
/// A literal whose quotes or escapes must be undone is built only up to
/// `keep` bytes (and a character): [`super::input::shortened`] cuts it the same
/// way, and the whole literal is never copied. Comments are given only
/// when `comments` is set.
fn scan<'a>(
    sql: &'a str,
    keep: usize,
    comments: bool,
    line_end: &Cell<bool>,
    mut emit: impl FnMut(Tok<'a>, Range<usize>) -> Option<usize>,
) -> Result<(), Stop> {
    let b = sql.as_bytes();
    let mut after_word = false;
    let mut i = 0;
    // A token ending at byte `$end`, and whether it is a word (`None`: a
    // comment, which changes nothing); whitespace or a comment not given;
    // a token the scanner does not read.
    macro_rules! token {
        ($token:expr, $end:expr, $word:expr $(,)?) => {{
            let (token, end): (Tok<'a>, usize) = ($token, $end);
            emit(token, i..end).ok_or(Stop::Caller)?;
            i = end;
            if let Some(word) = $word {
                after_word = word;
            }
            continue;
        }};
    }
    macro_rules! skip {
        ($end:expr) => {{
            i = $end;
            continue;
        }};
    }
    macro_rules! foreign {
        () => {{
            i = emit(Tok::Foreign, i..i).ok_or(Stop::Caller)?;
            after_word = false;
            continue;
        }};
    }
    while i < b.len() {
        let c = b[i];
        let start = i;
        let refused = |what| Stop::Refused(start, what);
        // A token that a word, number or string character follows, which
        // the scanner leaves to sqlparser's reading.
        let glued = |at: usize| {
            b.get(at).is_some_and(|c| {
                c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$') || !c.is_ascii()
            })
        };
        match c {
            b'\n' | b'\r' if line_end.get() => {
                line_end.set(false);
                i = emit(Tok::LineEnd, i..i).ok_or(Stop::Caller)?;
                after_word = false;
                continue;
            }
            b' ' | b'\t' | b'\n' | b'\r' => skip!(i + 1),
            b'e' | b'E' if b.get(i + 1) == Some(&b'\'') => {
                let (text, end) = escaped(sql, i + 1, keep).ok_or(refused(BAD_ESCAPED))?;
                token!(Tok::Escaped(text), end, Some(false))
            }
            b'n' | b'N' | b'b' | b'B' | b'x' | b'X' if b.get(i + 1) == Some(&b'\'') => {
                let (text, end) = match c {
                    b'x' | b'X' => backslashed(sql, i + 1, keep),
                    _ => quoted(sql, i + 1, keep),
                }
                .ok_or(refused(UNCLOSED_STRING))?;
                let kind = match c {
                    b'n' | b'N' => Prefixed::National,
                    b'b' | b'B' => Prefixed::Bits,
                    _ => Prefixed::Hex,
                };
                match glued(end) {
                    true => foreign!(),
                    false => token!(Tok::Prefixed(kind, text), end, Some(false)),
                }
            }
            b'u' | b'U' if b.get(i + 1) == Some(&b'&') && b.get(i + 2) == Some(&b'\'') => {
                let (text, end) = unicode(sql, i + 2, keep).ok_or(refused(BAD_UNICODE))?;
                match glued(end) {
                    true => foreign!(),
                    false => token!(Tok::Prefixed(Prefixed::Unicode, text), end, Some(false)),
                }
            }
            // Any non-ASCII character starts a word, and continues one.
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | 0x80.. => {
                let mut end = i;
                while end < b.len() && WORD_BYTES[usize::from(b[end])] {
                    end += 1;
                }
                if end < b.len() && matches!(b[end], b'\'' | b'"' | b'&') {
                    foreign!()
                } else {
                    token!(
                        Tok::Word(Cow::Borrowed(&sql[start..end]), None),
                        end,
                        Some(true),
                    )
                }
            }
            b'0'..=b'9' => {
                let mut end = i;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                if b.get(end) == Some(&b'.') {
                    end += 1;
                    while end < b.len() && b[end].is_ascii_digit() {
                        end += 1;
                    }
                }
                if glued(end) || matches!(b.get(end), Some(b'.' | b'\'' | b'"')) {
                    foreign!()
                } else {
                    token!(
                        Tok::Number(Cow::Borrowed(&sql[start..end]), false),
                        end,
                        Some(false),
                    )
                }
            }
            b'\'' => {
                let (text, end) = quoted(sql, i, keep).ok_or(refused(UNCLOSED_STRING))?;
                // A string continued after a line break, or glued to a
                // word or number, is left to sqlparser in a shape (read
                // when `comments` are given: the tokens are the same).
                let next = || {
                    b[end..]
                        .iter()
                        .find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
                };
                if !comments && (matches!(next(), Some(b'\'')) || glued(end)) {
                    foreign!()
                } else {
                    token!(Tok::Str(text), end, Some(false))
                }
            }
            b'"' => {
                let (text, end) = quoted(sql, i, keep).ok_or(refused(UNCLOSED_IDENTIFIER))?;
                match text.is_empty() {
                    true => foreign!(),
                    false => token!(Tok::Word(text, Some('"')), end, Some(true)),
                }
            }
            b'$' if b.get(i + 1) == Some(&b'$') => {
                let body = i + 2;
                let close = body + sql[body..].find("$$").ok_or(refused(UNCLOSED_DOLLAR))?;
                token!(Tok::Dollar(&sql[body..close], ""), close + 2, Some(false))
            }
            b'$' if b
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') =>
            {
                let mut end = i + 1;
                while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                    end += 1;
                }
                if b.get(end) == Some(&b'$') {
                    let tag = &sql[start + 1..end];
                    let body = end + 1;
                    let close =
                        body + find_tag(&sql[body..], tag).ok_or(refused(UNCLOSED_DOLLAR))?;
                    token!(
                        Tok::Dollar(&sql[body..close], tag),
                        close + tag.len() + 2,
                        Some(false),
                    )
                } else {
                    foreign!()
                }
            }
            b'$' => {
                let mut end = i + 1;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                if end == start + 1 || glued(end) || matches!(b.get(end), Some(b'\'' | b'"' | b'.'))
                {
                    foreign!()
                } else {
                    token!(
                        Tok::Placeholder(Cow::Borrowed(&sql[start..end])),
                        end,
                        Some(false),
                    )
                }
            }
            b'(' | b')' | b',' | b';' | b'[' | b']' => token!(
                Tok::Punct(Cow::Borrowed(&sql[start..i + 1])),
                i + 1,
                Some(false),
            ),
            b'.' if after_word
                && b.get(i + 1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, b'"' | b'*')) =>
            {
                token!(Tok::Punct(Cow::Borrowed(".")), i + 1, Some(false))
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                let mut end = i + 2;
                while end < b.len() && !matches!(b[end], b'\n' | b'\r') {
                    end += 1;
                }
                match comments {
                    true => token!(Tok::Comment(&sql[start + 2..end], true), end, None),
                    false => skip!(end),
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = block_comment_end(b, i + 2).ok_or(refused(UNCLOSED_COMMENT))?;
                match comments {
                    true => token!(Tok::Comment(&sql[start + 2..end - 2], false), end, None),
                    false => skip!(end),
                }
            }
            b':' if b.get(i + 1) == Some(&b':') => {
                token!(Tok::Punct(Cow::Borrowed("::")), i + 2, Some(false))
            }
            b'=' | b'<' | b'>' | b'+' | b'-' | b'*' | b'/' | b'%' | b'!' | b'|' => {
                let two = matches!(
                    (c, b.get(i + 1)),
                    (b'<', Some(b'=' | b'>')) | (b'>' | b'!', Some(b'=')) | (b'|', Some(b'|'))
                );
                let len = if two { 2 } else { 1 };
                if matches!(c, b'!' | b'|') && !two
                    || b.get(i + len).is_some_and(|c| operator_char(*c))
                {
                    foreign!()
                } else {
                    // sqlparser spells `!=` as `<>`.
                    let p = if c == b'!' {
                        "<>"
                    } else {
                        &sql[start..i + len]
                    };
                    token!(Tok::Punct(Cow::Borrowed(p)), i + len, Some(false))
                }
            }
            _ => foreign!(),
        }
    }
    Ok(())
}

/// Why sqlparser's tokenizer refuses a token ([`Stop::Refused`]).
const UNCLOSED_STRING: &str = "unterminated quoted string";
const UNCLOSED_IDENTIFIER: &str = "unterminated quoted identifier";
const UNCLOSED_DOLLAR: &str = "unterminated dollar-quoted string";
const UNCLOSED_COMMENT: &str = "unterminated /* comment";
const BAD_ESCAPED: &str = "unterminated string or invalid escape in an E'' string";
const BAD_UNICODE: &str = "unterminated string or invalid escape in a U&'' string";

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
