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

use std::collections::HashMap;
use std::ops::Range;

use sqlparser::ast::DollarQuotedString;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::{Keyword, ALL_KEYWORDS, ALL_KEYWORDS_INDEX};
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer, Whitespace, Word};

use super::input;
use literals::{block_comment_end, escaped, find_tag, quoted};

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
            // Dropped, as sqlparser's whitespace is.
            Tok::Comment(..) => continue,
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

/// Characters that may start or continue an operator.
fn operator_char(c: u8) -> bool {
    b"=<>+-*/%!~@#^&|?:`".contains(&c)
}

/// The tokens of plain SQL text (see [`scan`]), the same sqlparser's
/// tokenizer gives, comments dropped; `None` for anything else: [`full`]
/// then tokenizes it.
fn quick(sql: &str) -> Option<Vec<Tok<'_>>> {
    let mut tokens = Vec::with_capacity(sql.len() / 4 + 4);
    scan(sql, usize::MAX, false, |token, _| tokens.push(token))?;
    Some(tokens)
}

/// The tokens of plain SQL text (the texts [`scan`] accepts) as
/// sqlparser's PostgreSQL tokenizer gives them, whitespace and spans
/// included, with each literal or identifier longer than
/// [`input::LONG_TOKEN`] cut as [`input::sqlparser_bounded`] cuts it (from
/// the borrowed text, never copied whole); `None` for any other text,
/// which that tokenizer then reads, and for a text of more than
/// [`input::MAX_TOKENS`] tokens or with a long number, which it refuses.
pub(crate) fn plain_tokens(sql: &str) -> Option<Vec<TokenWithSpan>> {
    plain_tokens_at(sql, true)
}

/// [`plain_tokens`] with every span empty ([`Span::empty`]), for a parse
/// whose errors are dropped: no characters counted.
pub(crate) fn plain_tokens_unlocated(sql: &str) -> Option<Vec<TokenWithSpan>> {
    plain_tokens_at(sql, false)
}

fn plain_tokens_at(sql: &str, located: bool) -> Option<Vec<TokenWithSpan>> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity((sql.len() / 2).min(input::LONG_TOKEN));
    let mut plain = true;
    let mut at = Cursor {
        sql,
        byte: 0,
        line: 1,
        column: 1,
        located,
    };
    let long = input::long_token();
    scan(sql, long, true, |token, range| {
        if !plain {
            return;
        }
        at.whitespace_to(range.start, &mut out);
        let start = at.location();
        at.advance_to(range.end);
        let token = match token {
            Tok::Word(w, quote) => Some(word_token(w, quote)),
            Tok::Number(n, _) if n.len() > long => None,
            Tok::Number(n, long) => Some(Token::Number(n.into_owned(), long)),
            Tok::Str(s) => Some(Token::SingleQuotedString(input::shortened(
                &s,
                input::CUT_MARK,
            ))),
            Tok::Placeholder(p) => Some(Token::Placeholder(p.into_owned())),
            Tok::Punct(p) => punctuation_token(&p),
            Tok::Other(_) => None,
            Tok::Escaped(s) => Some(Token::EscapedStringLiteral(input::shortened(
                &s,
                input::CUT_MARK,
            ))),
            Tok::Dollar(value, tag) => Some(Token::DollarQuotedString(DollarQuotedString {
                value: input::shortened(value, input::CUT_MARK),
                tag: (!tag.is_empty()).then(|| tag.to_owned()),
            })),
            Tok::Comment(text, true) => Some(Token::Whitespace(Whitespace::SingleLineComment {
                comment: input::shortened(text, ""),
                prefix: "--".to_owned(),
            })),
            Tok::Comment(text, false) => Some(Token::Whitespace(Whitespace::MultiLineComment(
                input::shortened(text, ""),
            ))),
        };
        match token {
            Some(token) => out.push(TokenWithSpan::new(token, Span::new(start, at.location()))),
            None => plain = false,
        }
        if out.len() > input::MAX_TOKENS {
            plain = false;
        }
    })?;
    if !plain {
        return None;
    }
    at.whitespace_to(sql.len(), &mut out);
    (out.len() <= input::MAX_TOKENS).then_some(out)
}

/// Where [`plain_tokens`] is in the text, counted as sqlparser counts
/// (lines from 1 at `\n`, columns from 1 in characters).
struct Cursor<'a> {
    sql: &'a str,
    byte: usize,
    line: u64,
    column: u64,
    /// Whether locations are counted; when not, every one is unknown.
    located: bool,
}

impl Cursor<'_> {
    fn location(&self) -> Location {
        if !self.located {
            return Location::new(0, 0);
        }
        Location::new(self.line, self.column)
    }

    /// Moves to byte `end`, counting lines and characters.
    fn advance_to(&mut self, end: usize) {
        if !self.located {
            self.byte = end;
            return;
        }
        for c in self.sql[self.byte..end].chars() {
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
        self.byte = end;
    }

    /// The whitespace tokens up to byte `end`: one per space, tab or line
    /// break (`\r\n` is one).
    fn whitespace_to(&mut self, end: usize, out: &mut Vec<TokenWithSpan>) {
        while self.byte < end {
            let start = self.location();
            let b = self.sql.as_bytes();
            let (kind, len) = match b[self.byte] {
                b' ' => (Whitespace::Space, 1),
                b'\t' => (Whitespace::Tab, 1),
                b'\r' if b.get(self.byte + 1) == Some(&b'\n') => (Whitespace::Newline, 2),
                _ => (Whitespace::Newline, 1),
            };
            self.advance_to(self.byte + len);
            out.push(TokenWithSpan::new(
                Token::Whitespace(kind),
                Span::new(start, self.location()),
            ));
        }
    }
}

/// The word token sqlparser makes of `word` ([`Token::make_word`]), its
/// keyword found by hashing instead of a binary search of every keyword.
fn word_token(word: Cow<'_, str>, quote_style: Option<char>) -> Token {
    let keyword = match quote_style {
        Some(_) => Keyword::NoKeyword,
        None => keyword(&word),
    };
    Token::Word(Word {
        value: input::shortened(&word, ""),
        quote_style,
        keyword,
    })
}

/// The keyword `word` spells (ASCII case folded), as sqlparser's
/// tokenizer finds it in [`ALL_KEYWORDS`].
fn keyword(word: &str) -> Keyword {
    static KEYWORDS: std::sync::OnceLock<
        HashMap<&'static [u8], Keyword, foldhash::fast::FixedState>,
    > = std::sync::OnceLock::new();
    const LONGEST: usize = 64;
    let keywords = KEYWORDS.get_or_init(|| {
        ALL_KEYWORDS
            .iter()
            .zip(ALL_KEYWORDS_INDEX)
            .map(|(name, keyword)| (name.as_bytes(), *keyword))
            .collect()
    });
    if word.len() > LONGEST {
        return Keyword::NoKeyword;
    }
    let mut upper = [0u8; LONGEST];
    let upper = &mut upper[..word.len()];
    upper.copy_from_slice(word.as_bytes());
    upper.make_ascii_uppercase();
    keywords.get(&*upper).copied().unwrap_or(Keyword::NoKeyword)
}

/// The sqlparser token of an operator or punctuation [`scan`] accepts.
fn punctuation_token(p: &str) -> Option<Token> {
    Some(match p {
        "," => Token::Comma,
        "=" => Token::Eq,
        "<>" => Token::Neq,
        "<" => Token::Lt,
        ">" => Token::Gt,
        "<=" => Token::LtEq,
        ">=" => Token::GtEq,
        "+" => Token::Plus,
        "-" => Token::Minus,
        "*" => Token::Mul,
        "/" => Token::Div,
        "%" => Token::Mod,
        "(" => Token::LParen,
        ")" => Token::RParen,
        "." => Token::Period,
        ";" => Token::SemiColon,
        "||" => Token::StringConcat,
        "::" => Token::DoubleColon,
        "[" => Token::LBracket,
        "]" => Token::RBracket,
        _ => return None,
    })
}

/// Scans plain SQL text, giving each token and its bytes to `emit`;
/// `None` as soon as the text is anything else. Plain text is words,
/// numbers, `$n` placeholders, single-quoted, `E'…'` and dollar-quoted
/// strings, quoted identifiers, comments, punctuation and the operators
/// `=`, `<>`, `!=`, `<`, `>`, `<=`, `>=`, `+`, `-`, `*`, `/`, `%`, `||`
/// and `::`, all ASCII outside quotes and comments; prefixed strings
/// (`N'…'`, `X'…'`, `B'…'`, `U&'…'`), other operators, `:`, numbers with
/// an exponent, a separator, a suffix or no digit before their point are
/// not. A text sqlparser's tokenizer
/// refuses (an unclosed quote or comment, a bad escape) is not plain
/// either, so that its error comes from that tokenizer.
///
/// A literal whose quotes or escapes must be undone is built only up to
/// `keep` bytes (and a character): [`input::shortened`] cuts it the same
/// way, and the whole literal is never copied. Comments are given only
/// when `comments` is set.
fn scan<'a>(
    sql: &'a str,
    keep: usize,
    comments: bool,
    mut emit: impl FnMut(Tok<'a>, Range<usize>),
) -> Option<()> {
    let b = sql.as_bytes();
    let mut after_word = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'e' | b'E' if b.get(i + 1) == Some(&b'\'') => {
                let (text, end) = escaped(sql, i + 1, keep)?;
                i = end;
                emit(Tok::Escaped(text), start..i);
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if i < b.len() && matches!(b[i], b'$' | b'\'' | b'"' | b'&')
                    || !b.get(i).is_none_or(u8::is_ascii)
                {
                    return None;
                }
                emit(Tok::Word(Cow::Borrowed(&sql[start..i]), None), start..i);
                after_word = true;
                continue;
            }
            b'0'..=b'9' => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if b.get(i) == Some(&b'.') {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || matches!(b[i], b'_' | b'.' | b'$' | b'\'' | b'"'))
                    || !b.get(i).is_none_or(u8::is_ascii)
                {
                    return None;
                }
                emit(Tok::Number(Cow::Borrowed(&sql[start..i]), false), start..i);
            }
            b'\'' => {
                let (text, end) = quoted(sql, i, keep)?;
                i = end;
                // A string continued after a line break.
                let next = b[i..]
                    .iter()
                    .find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'));
                if matches!(next, Some(b'\''))
                    || b.get(i).is_some_and(|c| {
                        c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$' || !c.is_ascii()
                    })
                {
                    return None;
                }
                emit(Tok::Str(text), start..i);
            }
            b'"' => {
                let (text, end) = quoted(sql, i, keep)?;
                if text.is_empty() {
                    return None;
                }
                i = end;
                emit(Tok::Word(text, Some('"')), start..i);
                after_word = true;
                continue;
            }
            b'$' if b.get(i + 1) == Some(&b'$') => {
                let body = i + 2;
                let close = body + sql[body..].find("$$")?;
                i = close + 2;
                emit(Tok::Dollar(&sql[body..close], ""), start..i);
            }
            b'$' if b
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') =>
            {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if b.get(i) != Some(&b'$') {
                    return None;
                }
                let tag = &sql[start + 1..i];
                let body = i + 1;
                let close = body + find_tag(&sql[body..], tag)?;
                i = close + tag.len() + 2;
                emit(Tok::Dollar(&sql[body..close], tag), start..i);
            }
            b'$' => {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let follows = b.get(i).is_some_and(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, b'_' | b'$' | b'\'' | b'"' | b'.')
                        || !c.is_ascii()
                });
                if i == start + 1 || follows {
                    return None;
                }
                emit(Tok::Placeholder(Cow::Borrowed(&sql[start..i])), start..i);
            }
            b'(' | b')' | b',' | b';' | b'[' | b']' => {
                i += 1;
                emit(Tok::Punct(Cow::Borrowed(&sql[start..i])), start..i);
            }
            b'.' => {
                if !after_word
                    || !b
                        .get(i + 1)
                        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, b'"' | b'*'))
                {
                    return None;
                }
                i += 1;
                emit(Tok::Punct(Cow::Borrowed(".")), start..i);
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i += 2;
                while i < b.len() && !matches!(b[i], b'\n' | b'\r') {
                    i += 1;
                }
                if comments {
                    emit(Tok::Comment(&sql[start + 2..i], true), start..i);
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = block_comment_end(b, i + 2)?;
                if comments {
                    emit(Tok::Comment(&sql[start + 2..i - 2], false), start..i);
                }
                continue;
            }
            b':' if b.get(i + 1) == Some(&b':') => {
                i += 2;
                emit(Tok::Punct(Cow::Borrowed("::")), start..i);
            }
            b'=' | b'<' | b'>' | b'+' | b'-' | b'*' | b'/' | b'%' | b'!' | b'|' => {
                let two = matches!(
                    (c, b.get(i + 1)),
                    (b'<', Some(b'=' | b'>')) | (b'>' | b'!', Some(b'=')) | (b'|', Some(b'|'))
                );
                if matches!(c, b'!' | b'|') && !two {
                    return None;
                }
                let len = if two { 2 } else { 1 };
                if b.get(i + len).is_some_and(|c| operator_char(*c)) {
                    return None;
                }
                i += len;
                // sqlparser spells `!=` as `<>`.
                let p = if c == b'!' { "<>" } else { &sql[start..i] };
                emit(Tok::Punct(Cow::Borrowed(p)), start..i);
            }
            _ => return None,
        }
        after_word = false;
    }
    Some(())
}

#[path = "shape_literals.rs"]
mod literals;

#[cfg(test)]
#[path = "shape_tests.rs"]
mod tests;
