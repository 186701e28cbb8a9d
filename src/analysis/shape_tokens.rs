//! The tokens of a statement as sqlparser's tokenizer gives them, read by
//! the shape scanner ([`super::scan`]) with spans, cut long tokens and
//! the token budget of [`input`].

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;

use sqlparser::ast::DollarQuotedString;
use sqlparser::keywords::{Keyword, ALL_KEYWORDS, ALL_KEYWORDS_INDEX};
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Whitespace, Word};

use super::super::{input, AnalysisError};
use super::{foreign, scan, Stop, Tok};

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
/// refuses it (more than [`input::MAX_TOKENS`] tokens, a long number,
/// placeholder or operator) or, for a text of [`OWN_ERRORS_FROM`] bytes or
/// more that sqlparser's tokenizer refuses, with the scanner's message.
/// `Err(None)`: read it with [`input::sqlparser_bounded`] (a shorter text
/// it refuses, a token too long for [`foreign`]'s window). A text longer
/// than the budget is refused for its tokens having built at most
/// [`COUNT_PAST`] of them. One divergence: the rest of a `COPY … FROM
/// STDIN;` line holding more than the budget is refused for it, where
/// sqlparser's tokenizer would build it all before counting.
pub(crate) fn plain_tokens(sql: &str) -> Result<Vec<TokenWithSpan>, Option<AnalysisError>> {
    plain_tokens_at(sql, true)
}

/// [`plain_tokens`] with every span empty ([`Span::empty`]), for a parse
/// whose errors are dropped: no characters counted (a refusal still says
/// where).
pub(crate) fn plain_tokens_unlocated(
    sql: &str,
) -> Result<Vec<TokenWithSpan>, Option<AnalysisError>> {
    plain_tokens_at(sql, false)
}

fn plain_tokens_at(sql: &str, located: bool) -> Result<Vec<TokenWithSpan>, Option<AnalysisError>> {
    // A text longer than the budget may hold more tokens than it: past
    // its first [`COUNT_PAST`] tokens they are only counted, and read
    // again once the count is known to be within the budget.
    if sql.len() <= input::MAX_TOKENS {
        return read(sql, located, usize::MAX).map(|sink| sink.out);
    }
    match read(sql, located, COUNT_PAST)? {
        Sink {
            out, dropped: 0, ..
        } => Ok(out),
        _ => read(sql, located, usize::MAX).map(|sink| sink.out),
    }
}

/// Most tokens a text longer than [`input::MAX_TOKENS`] bytes has built
/// before the budget is known to hold them all.
const COUNT_PAST: usize = 64 * 1024;

/// The tokens read so far: all of them, or, past `keep` of them, only
/// their number and the last two (the context of a foreign token).
struct Sink {
    out: Vec<TokenWithSpan>,
    dropped: usize,
    keep: usize,
}

impl Sink {
    fn len(&self) -> usize {
        self.dropped + self.out.len()
    }

    /// Adds `token`; `false` once there are more than
    /// [`input::MAX_TOKENS`].
    fn push(&mut self, token: TokenWithSpan) -> bool {
        if self.out.len() >= self.keep {
            let last = self.out.pop();
            let word = self
                .out
                .iter()
                .rposition(|t| !matches!(t.token, Token::Whitespace(_)))
                .map(|j| self.out.swap_remove(j));
            self.dropped += self.out.len();
            self.out.clear();
            self.out.extend(word);
            self.out.extend(last);
        }
        self.out.push(token);
        self.len() <= input::MAX_TOKENS
    }

    /// Inserts `token` before the one at `at` (counts it when tokens
    /// were dropped); `false` once there are more than
    /// [`input::MAX_TOKENS`].
    fn insert(&mut self, at: usize, token: TokenWithSpan) -> bool {
        match self.dropped {
            0 => self.out.insert(at, token),
            _ => self.dropped += 1,
        }
        self.len() <= input::MAX_TOKENS
    }
}

/// [`plain_tokens`], keeping at most `keep` tokens (see [`Sink`]).
fn read(sql: &str, located: bool, keep: usize) -> Result<Sink, Option<AnalysisError>> {
    let mut sink = Sink {
        out: Vec::with_capacity((sql.len() / 2).min(input::LONG_TOKEN)),
        dropped: 0,
        keep,
    };
    let mut failed = None;
    let mut copy = foreign::CopyTracker::default();
    // The `;` of a `COPY … FROM STDIN;` whose line has not ended: its
    // inline data, read when it does, goes before it.
    let mut copy_semicolon: Option<usize> = None;
    let line_end = Cell::new(false);
    // A refusal in the rest of that line, unless it holds an error.
    let mut deferred = None;
    let mut foreigners = 0;
    let mut at = Cursor::start(sql, located);
    let long = input::long_token();
    let scanned = scan(sql, long, true, &line_end, |token, range| {
        if !at.whitespace_to(range.start, &mut sink) {
            failed = Some(Some(input::too_many_tokens()));
            return None;
        }
        let start = at.location();
        let (token, end) = match token {
            Tok::LineEnd => {
                if let Some(refused) = deferred.take() {
                    failed = Some(Some(refused));
                    return None;
                }
                let data = copy_semicolon.take().and_then(|semicolon| {
                    let b = sql.as_bytes();
                    let crlf = b[range.start] == b'\r' && b.get(range.start + 1) == Some(&b'\n');
                    let from = range.start + if crlf { 2 } else { 1 };
                    if !at.whitespace_to(from, &mut sink) {
                        return Some(false);
                    }
                    let (data, terminated, after) = foreign::copy_data(sql, from);
                    if data.is_empty() && !terminated {
                        return None;
                    }
                    let start = at.location();
                    at.advance_to(after);
                    let token = Token::CopyData {
                        data: input::shortened(data, input::CUT_MARK),
                        terminated,
                    };
                    let token = TokenWithSpan::new(token, Span::new(start, at.location()));
                    Some(sink.insert(semicolon, token))
                });
                if data == Some(false) {
                    failed = Some(Some(input::too_many_tokens()));
                    return None;
                }
                return Some(at.byte);
            }
            // Each is read from a window of its own: a short text with
            // many of them is cheaper to read whole.
            Tok::Foreign if foreigners == MAX_FOREIGN && sql.len() < OWN_ERRORS_FROM => {
                (None, range.end)
            }
            Tok::Foreign => match foreign::token(sql, range.start, &sink.out) {
                Ok(Some((mut token, end))) => {
                    foreigners += 1;
                    input::shorten(&mut token);
                    (Some(token), end)
                }
                Err(refused) if !line_end.get() => {
                    failed = Some(Some(refused));
                    return None;
                }
                Ok(None) | Err(_) => (None, range.end),
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
        let Some(token) = token else {
            failed = Some(None);
            return None;
        };
        if !copy.note(&token) {
            // sqlparser's tokenizer reads the rest of this line, then the
            // COPY's data (a `;` in that rest starts no more data).
            copy = foreign::CopyTracker::default();
            if !line_end.get() {
                copy_semicolon = Some(sink.out.len());
                line_end.set(true);
            }
        }
        if let Some(refused) = input::too_long(&token) {
            // sqlparser's tokenizer reads the rest of a COPY's line before
            // it looks at its tokens: an error in it comes first.
            if !line_end.get() {
                failed = Some(Some(refused));
                return None;
            }
            deferred.get_or_insert(refused);
        }
        at.advance_to(end);
        if !sink.push(TokenWithSpan::new(token, Span::new(start, at.location()))) {
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
        // A refusal names its place also when the tokens have none.
        if !located {
            at = Cursor::start(sql, true);
        }
        at.advance_to(byte);
        let Location { line, column } = at.location();
        return Err(Some(AnalysisError::Parse(format!(
            "{what} at Line: {line}, Column: {column}"
        ))));
    }
    if let Some(refused) = deferred {
        return Err(Some(refused));
    }
    if !at.whitespace_to(sql.len(), &mut sink) {
        return Err(Some(input::too_many_tokens()));
    }
    Ok(sink)
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

impl<'a> Cursor<'a> {
    /// At the start of `sql`, counting locations when `located`.
    fn start(sql: &'a str, located: bool) -> Cursor<'a> {
        Cursor {
            sql,
            byte: 0,
            line: 1,
            column: 1,
            located,
        }
    }

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
    /// break (`\r\n` is one); `false`, and no more of them, once `out`
    /// holds more than [`input::MAX_TOKENS`] tokens.
    fn whitespace_to(&mut self, end: usize, sink: &mut Sink) -> bool {
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
            let token =
                TokenWithSpan::new(Token::Whitespace(kind), Span::new(start, self.location()));
            if !sink.push(token) {
                return false;
            }
        }
        true
    }
}

/// The word token sqlparser makes of `word` ([`Token::make_word`]), its
/// keyword found by hashing instead of a binary search of every keyword.
pub(super) fn word_token(word: Cow<'_, str>, quote_style: Option<char>) -> Token {
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
