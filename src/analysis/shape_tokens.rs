//! The tokens of a statement as sqlparser's tokenizer gives them, read by
//! the shape scanner ([`super::scan`]) with spans, cut long tokens and
//! the token budget of [`input`].

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::ops::Range;

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

    /// Adds `token`, which spans `span` ([`Sink::budget`]). The token is
    /// written straight into room already made: a whole `TokenWithSpan`
    /// built on the stack and copied in would be read back in 16-byte
    /// loads right after its fields' narrower stores, which waits for
    /// them (`benches/README.md`, "Tokens written in place").
    #[inline(always)]
    fn push(&mut self, token: Token, span: Span) -> Result<(), Halt> {
        if self.out.len() >= self.keep {
            self.drop_kept();
        }
        if self.out.len() == self.out.capacity() {
            self.grow();
        }
        let slot = self.out.spare_capacity_mut()[0].as_mut_ptr();
        // SAFETY: `slot` is the first element of the room just made, one
        // past the last token; both fields are written before the length
        // counts it.
        unsafe {
            std::ptr::addr_of_mut!((*slot).span).write(span);
            std::ptr::addr_of_mut!((*slot).token).write(token);
            self.out.set_len(self.out.len() + 1);
        }
        self.budget()
    }

    /// Past `keep` tokens: counts those kept so far and keeps only the
    /// last two (the last significant one and the one after it).
    #[cold]
    #[inline(never)]
    fn drop_kept(&mut self) {
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

    /// Doubles the room for tokens, out of [`Sink::push`]'s line.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        self.out.reserve(self.out.capacity().max(16));
    }

    /// Inserts `token` before the one at `at` (counts it when tokens
    /// were dropped; [`Sink::budget`]).
    fn insert(&mut self, at: usize, token: TokenWithSpan) -> Result<(), Halt> {
        match self.dropped {
            0 => self.out.insert(at, token),
            _ => self.dropped += 1,
        }
        self.budget()
    }

    /// The refusal of a text once it has more than [`input::MAX_TOKENS`]
    /// tokens.
    #[inline]
    fn budget(&self) -> Result<(), Halt> {
        match self.len() <= input::MAX_TOKENS {
            true => Ok(()),
            false => Err(Halt::Refused(input::too_many_tokens())),
        }
    }
}

/// Why [`read`] stopped before the end of its text.
enum Halt {
    /// The text is refused.
    Refused(AnalysisError),
    /// The text is to be read by [`input::sqlparser_bounded`].
    Fallback,
}

impl From<Halt> for Option<AnalysisError> {
    fn from(halt: Halt) -> Self {
        match halt {
            Halt::Refused(refused) => Some(refused),
            Halt::Fallback => None,
        }
    }
}

/// [`plain_tokens`], keeping at most `keep` tokens (see [`Sink`]).
fn read(sql: &str, located: bool, keep: usize) -> Result<Sink, Option<AnalysisError>> {
    let line_end = Cell::new(false);
    let mut reader = Reader {
        sql,
        sink: Sink {
            // A text read in a window of `keep` tokens gets the window at
            // once: growing it by doubling would hold the old room and the
            // new one together, 1.5 times the window at its peak.
            out: Vec::with_capacity(match keep {
                usize::MAX => (sql.len() / 2).min(input::LONG_TOKEN),
                window => window + 2,
            }),
            dropped: 0,
            keep,
        },
        at: Cursor::start(sql, located),
        line_end: &line_end,
        copy: foreign::CopyTracker::default(),
        copy_semicolon: None,
        deferred: None,
        foreigners: 0,
    };
    let mut halted = None;
    let scanned = scan(sql, input::long_token(), true, &line_end, |token, range| {
        reader
            .step(token, range)
            .map_err(|halt| halted = Some(halt))
            .ok()
    });
    if let Some(halt) = halted {
        return Err(halt.into());
    }
    if let Err(Stop::Refused(byte, what)) = scanned {
        if sql.len() < OWN_ERRORS_FROM {
            return Err(None);
        }
        return Err(Some(
            reader.placed(AnalysisError::Parse(what.to_owned()), byte),
        ));
    }
    if let Some(refused) = reader.deferred {
        return Err(Some(refused));
    }
    reader.at.whitespace_to(sql.len(), &mut reader.sink)?;
    Ok(reader.sink)
}

/// What [`read`] keeps between the tokens [`scan`] gives it.
struct Reader<'a, 'c> {
    sql: &'a str,
    sink: Sink,
    at: Cursor<'a>,
    /// [`scan`]'s `line_end`: set while the rest of a `COPY … FROM
    /// STDIN;` line is read.
    line_end: &'c Cell<bool>,
    copy: foreign::CopyTracker,
    /// The `;` of a `COPY … FROM STDIN;` whose line has not ended: its
    /// inline data, read when it does, goes before it.
    copy_semicolon: Option<usize>,
    /// A refusal in the rest of that line, unless it holds an error.
    deferred: Option<AnalysisError>,
    /// Tokens read by [`foreign`] so far.
    foreigners: usize,
}

impl Reader<'_, '_> {
    /// Reads the whitespace before `token` and `token`, which ends at
    /// `range.end` unless [`scan`] leaves it to `self`; returns the byte
    /// to go on from.
    #[inline]
    fn step(&mut self, token: Tok<'_>, range: Range<usize>) -> Result<usize, Halt> {
        self.at.whitespace_to(range.start, &mut self.sink)?;
        let (token, end) = match token {
            Tok::LineEnd => return self.copy_line_end(range.start),
            Tok::Foreign => self.foreign(range)?,
            token => (sqlparser_token(token).ok_or(Halt::Fallback)?, range.end),
        };
        self.keep(token, end)?;
        Ok(end)
    }

    /// The end of a `COPY … FROM STDIN;` line at byte `at`: a refusal
    /// deferred in it, else the COPY's inline data, read as one token
    /// put before the `;`.
    fn copy_line_end(&mut self, at: usize) -> Result<usize, Halt> {
        if let Some(refused) = self.deferred.take() {
            return Err(Halt::Refused(refused));
        }
        if let Some(semicolon) = self.copy_semicolon.take() {
            let b = self.sql.as_bytes();
            let crlf = b[at] == b'\r' && b.get(at + 1) == Some(&b'\n');
            let from = at + if crlf { 2 } else { 1 };
            self.at.whitespace_to(from, &mut self.sink)?;
            let (data, terminated, after) = foreign::copy_data(self.sql, from);
            if !data.is_empty() || terminated {
                let start = self.at.location();
                self.at.advance_to(after);
                let token = Token::CopyData {
                    data: input::shortened(data, input::CUT_MARK),
                    terminated,
                };
                let span = Span::new(start, self.at.location());
                self.sink
                    .insert(semicolon, TokenWithSpan::new(token, span))?;
            }
        }
        Ok(self.at.byte)
    }

    /// The token sqlparser's tokenizer reads at `range.start`, and the
    /// byte after it.
    fn foreign(&mut self, range: Range<usize>) -> Result<(Token, usize), Halt> {
        // Each is read from a window of its own: a short text with many
        // of them is cheaper to read whole.
        if self.foreigners == MAX_FOREIGN && self.sql.len() < OWN_ERRORS_FROM {
            return Err(Halt::Fallback);
        }
        match foreign::token(self.sql, range.start, &self.sink.out) {
            Ok(Some((mut token, end))) => {
                self.foreigners += 1;
                input::shorten(&mut token);
                Ok((token, end))
            }
            Err(refused) if !self.line_end.get() => {
                Err(Halt::Refused(self.placed(refused, range.start)))
            }
            Ok(None) | Err(_) => Err(Halt::Fallback),
        }
    }

    /// Keeps `token`, which ends at byte `end`: notes it for COPY, and
    /// refuses it when too long ([`input::too_long`]).
    #[inline]
    fn keep(&mut self, token: Token, end: usize) -> Result<(), Halt> {
        if !self.copy.note(&token) {
            // sqlparser's tokenizer reads the rest of this line, then the
            // COPY's data (a `;` in that rest starts no more data).
            self.copy = foreign::CopyTracker::default();
            if !self.line_end.get() {
                self.copy_semicolon = Some(self.sink.out.len());
                self.line_end.set(true);
            }
        }
        if let Some(refused) = input::too_long(&token) {
            // sqlparser's tokenizer reads the rest of a COPY's line before
            // it looks at its tokens: an error in it comes first.
            if !self.line_end.get() {
                return Err(Halt::Refused(self.placed(refused, self.at.byte)));
            }
            if self.deferred.is_none() {
                self.deferred = Some(self.placed(refused, self.at.byte));
            }
        }
        let start = self.at.location();
        self.at.advance_to(end);
        let span = Span::new(start, self.at.location());
        self.sink.push(token, span)
    }

    /// `refused`, for a text of [`OWN_ERRORS_FROM`] bytes or more naming
    /// the place of byte `byte` (not before the cursor) as the scanner's
    /// own errors do, counted also when the tokens have no locations.
    fn placed(&self, refused: AnalysisError, byte: usize) -> AnalysisError {
        if self.sql.len() < OWN_ERRORS_FROM {
            return refused;
        }
        let mut at = match self.at.located {
            true => self.at.clone(),
            false => Cursor::start(self.sql, true),
        };
        at.advance_to(byte);
        let Location { line, column } = at.location();
        let place = |what: String| format!("{what} at Line: {line}, Column: {column}");
        match refused {
            AnalysisError::Parse(what) => AnalysisError::Parse(place(what)),
            AnalysisError::TooLarge(what) => AnalysisError::TooLarge(place(what)),
            other => other,
        }
    }
}

/// The sqlparser token of one [`scan`] reads itself, each literal,
/// comment or identifier cut as [`input::shortened`] cuts it; `None` for
/// one it has no token for.
#[inline]
fn sqlparser_token(token: Tok<'_>) -> Option<Token> {
    let cut = |s: &str| input::shortened(s, input::CUT_MARK);
    Some(match token {
        Tok::Word(w, quote) => word_token(w, quote),
        Tok::Number(n, long) => Token::Number(n.into_owned(), long),
        Tok::Str(s) => Token::SingleQuotedString(cut(&s)),
        Tok::Placeholder(p) => Token::Placeholder(p.into_owned()),
        Tok::Punct(p) => return punctuation_token(&p),
        Tok::Escaped(s) => Token::EscapedStringLiteral(cut(&s)),
        Tok::Prefixed(kind, s) => kind.token(cut(&s)),
        Tok::Dollar(value, tag) => Token::DollarQuotedString(DollarQuotedString {
            value: cut(value),
            tag: (!tag.is_empty()).then(|| tag.to_owned()),
        }),
        Tok::Comment(text, true) => Token::Whitespace(Whitespace::SingleLineComment {
            comment: input::shortened(text, ""),
            prefix: "--".to_owned(),
        }),
        Tok::Comment(text, false) => {
            Token::Whitespace(Whitespace::MultiLineComment(input::shortened(text, "")))
        }
        Tok::Other(_) | Tok::Foreign | Tok::LineEnd => return None,
    })
}

/// Where [`plain_tokens`] is in the text, counted as sqlparser counts
/// (lines from 1 at `\n`, columns from 1 in characters).
#[derive(Clone)]
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
    /// break (`\r\n` is one); no more of them once `sink` is over its
    /// budget.
    fn whitespace_to(&mut self, end: usize, sink: &mut Sink) -> Result<(), Halt> {
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
            sink.push(Token::Whitespace(kind), Span::new(start, self.location()))?;
        }
        Ok(())
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
