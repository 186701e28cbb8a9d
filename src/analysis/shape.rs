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
use super::AnalysisError;
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
            Tok::Comment(..) | Tok::Foreign => continue,
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
    scan(sql, usize::MAX, false, |token, _| {
        if matches!(token, Tok::Foreign) {
            return None;
        }
        tokens.push(token);
        Some(0)
    })
    .ok()?;
    Some(tokens)
}

/// From this length on, a text sqlparser's tokenizer refuses is refused
/// with the scanner's own message (what is wrong, and where) instead of
/// that tokenizer's, which would first build the offending literal whole.
pub(crate) const OWN_ERRORS_FROM: usize = 64 * 1024;

/// Most tokens [`plain_tokens`] has sqlparser's tokenizer read one at a
/// time in a text shorter than [`OWN_ERRORS_FROM`].
const MAX_FOREIGN: usize = 16;

/// The tokens of `sql` as sqlparser's PostgreSQL tokenizer gives them,
/// whitespace and spans included, with each literal, comment or identifier
/// longer than [`input::LONG_TOKEN`] cut as [`input::sqlparser_bounded`]
/// cuts it, from the borrowed text (never copied whole): [`scan`]'s
/// tokens, and sqlparser's for the few it does not read ([`foreign`]).
///
/// `Err(Some(_))`: the text is refused, as [`input::sqlparser_bounded`]
/// refuses it (more than [`input::MAX_TOKENS`] tokens, a long number) or,
/// for a text of [`OWN_ERRORS_FROM`] bytes or more that sqlparser's
/// tokenizer refuses, with the scanner's message. `Err(None)`: read it
/// with [`input::sqlparser_bounded`] (a shorter text it refuses, a token
/// too long for [`foreign`]'s window, inline `COPY … FROM STDIN;` data).
pub(crate) fn plain_tokens(sql: &str) -> Result<Vec<TokenWithSpan>, Option<AnalysisError>> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity((sql.len() / 2).min(input::LONG_TOKEN));
    let mut failed = None;
    let mut copy = foreign::CopyTracker::default();
    let mut foreigners = 0;
    let mut at = Cursor {
        sql,
        byte: 0,
        line: 1,
        column: 1,
    };
    let long = input::long_token();
    let scanned = scan(sql, long, true, |token, range| {
        if !at.whitespace_to(range.start, &mut out) {
            failed = Some(Some(input::too_many_tokens()));
            return None;
        }
        let start = at.location();
        let (token, end) = match token {
            // Each is read from a window of its own: a short text with
            // many of them is cheaper to read whole.
            Tok::Foreign if foreigners == MAX_FOREIGN && sql.len() < OWN_ERRORS_FROM => {
                (None, range.end)
            }
            Tok::Foreign => match foreign::token(sql, range.start, &out) {
                Some((mut token, end)) => {
                    foreigners += 1;
                    input::shorten(&mut token);
                    (Some(token), end)
                }
                None => (None, range.end),
            },
            Tok::Word(w, quote) => (Some(word_token(w, quote)), range.end),
            Tok::Number(n, long) => (Some(Token::Number(n.into_owned(), long)), range.end),
            Tok::Str(s) => (
                Some(Token::SingleQuotedString(input::shortened(
                    &s,
                    input::CUT_MARK,
                ))),
                range.end,
            ),
            Tok::Placeholder(p) => (Some(Token::Placeholder(p.into_owned())), range.end),
            Tok::Punct(p) => (punctuation_token(&p), range.end),
            Tok::Other(_) => (None, range.end),
            Tok::Escaped(s) => (
                Some(Token::EscapedStringLiteral(input::shortened(
                    &s,
                    input::CUT_MARK,
                ))),
                range.end,
            ),
            Tok::Prefixed(kind, s) => (
                Some(kind.token(input::shortened(&s, input::CUT_MARK))),
                range.end,
            ),
            Tok::Dollar(value, tag) => (
                Some(Token::DollarQuotedString(DollarQuotedString {
                    value: input::shortened(value, input::CUT_MARK),
                    tag: (!tag.is_empty()).then(|| tag.to_owned()),
                })),
                range.end,
            ),
            Tok::Comment(text, true) => (
                Some(Token::Whitespace(Whitespace::SingleLineComment {
                    comment: input::shortened(text, ""),
                    prefix: "--".to_owned(),
                })),
                range.end,
            ),
            Tok::Comment(text, false) => (
                Some(Token::Whitespace(Whitespace::MultiLineComment(
                    input::shortened(text, ""),
                ))),
                range.end,
            ),
        };
        let Some(token) = token.filter(|t| copy.note(t)) else {
            failed = Some(None);
            return None;
        };
        if matches!(&token, Token::Number(n, _) if n.len() > long) {
            failed = Some(Some(input::long_number()));
            return None;
        }
        at.advance_to(end);
        out.push(TokenWithSpan::new(token, Span::new(start, at.location())));
        if out.len() > input::MAX_TOKENS {
            failed = Some(Some(input::too_many_tokens()));
            return None;
        }
        Some(end)
    });
    if let Some(failed) = failed {
        return Err(failed);
    }
    if let Err(Stop::Refused(byte, what)) = scanned {
        if sql.len() < OWN_ERRORS_FROM {
            return Err(None);
        }
        at.advance_to(byte);
        let Location { line, column } = at.location();
        return Err(Some(AnalysisError::Parse(format!(
            "{what} at Line: {line}, Column: {column}"
        ))));
    }
    if !at.whitespace_to(sql.len(), &mut out) {
        return Err(Some(input::too_many_tokens()));
    }
    Ok(out)
}

/// Where [`plain_tokens`] is in the text, counted as sqlparser counts
/// (lines from 1 at `\n`, columns from 1 in characters).
struct Cursor<'a> {
    sql: &'a str,
    byte: usize,
    line: u64,
    column: u64,
}

impl Cursor<'_> {
    fn location(&self) -> Location {
        Location::new(self.line, self.column)
    }

    /// Moves to byte `end`, counting lines and characters.
    fn advance_to(&mut self, end: usize) {
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
    /// break (`\r\n` is one); `false`, and no more of them, once `out`
    /// holds more than [`input::MAX_TOKENS`] tokens.
    fn whitespace_to(&mut self, end: usize, out: &mut Vec<TokenWithSpan>) -> bool {
        while self.byte < end {
            if out.len() > input::MAX_TOKENS {
                return false;
            }
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
        true
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
/// them. Any other token (other operators, `:`, numbers with an exponent,
/// a separator, a suffix or no digit before their point, non-ASCII words…)
/// is given as [`Tok::Foreign`] with an empty range at its first byte:
/// `emit` reads it and returns the byte after it, or `None` to stop the
/// scan. A token sqlparser's tokenizer refuses (an unclosed quote or
/// comment, a bad escape) stops the scan with [`Stop::Refused`].
///
/// A literal whose quotes or escapes must be undone is built only up to
/// `keep` bytes (and a character): [`input::shortened`] cuts it the same
/// way, and the whole literal is never copied. Comments are given only
/// when `comments` is set.
fn scan<'a>(
    sql: &'a str,
    keep: usize,
    comments: bool,
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
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let mut end = i;
                while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                    end += 1;
                }
                if end < b.len() && matches!(b[end], b'$' | b'\'' | b'"' | b'&')
                    || !b.get(end).is_none_or(u8::is_ascii)
                {
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
                // A string continued after a line break.
                let next = b[end..]
                    .iter()
                    .find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'));
                if matches!(next, Some(b'\'')) || glued(end) {
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

#[cfg(test)]
#[path = "shape_tests.rs"]
mod tests;
