//! The tokens of a statement as sqlparser's tokenizer gives them, read by
//! the shape scanner ([`super::scan`]) with spans, cut long tokens and
//! the token budget of [`input`].

use std::borrow::Cow;
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
/// refuses it (more than [`input::MAX_TOKENS`] tokens, a long number) or,
/// for a text of [`OWN_ERRORS_FROM`] bytes or more that sqlparser's
/// tokenizer refuses, with the scanner's message. `Err(None)`: read it
/// with [`input::sqlparser_bounded`] (a shorter text it refuses, a token
/// too long for [`foreign`]'s window, inline `COPY … FROM STDIN;` data).
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
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity((sql.len() / 2).min(input::LONG_TOKEN));
    let mut failed = None;
    let mut copy = foreign::CopyTracker::default();
    let mut foreigners = 0;
    let mut at = Cursor::start(sql, located);
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
