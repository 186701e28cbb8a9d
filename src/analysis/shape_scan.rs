//! The shape scanner: SQL text read token by token exactly as sqlparser's
//! PostgreSQL tokenizer reads it, for shapes ([`super::quick`]) and for
//! analysis ([`super::tokens`]), leaving rare tokens to that tokenizer.

use std::borrow::Cow;
use std::cell::Cell;
use std::ops::Range;

use super::literals::{backslashed, block_comment_end, escaped, find_tag, quoted, unicode};
use super::{Prefixed, Tok};

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

/// Why [`scan`] stopped before the end of its text.
#[derive(Debug)]
pub(super) enum Stop {
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
pub(super) fn scan<'a>(
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
                // sqlparser's tokenizer reads a word's first character, then
                // the next one, for a prefix (`E'`, `U&'`…: read above); only
                // `b"` then starts something else (a byte string), however
                // long the word.
                if end == start + 1 && matches!(c, b'b' | b'B') && b.get(end) == Some(&b'"') {
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
