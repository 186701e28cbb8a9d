//! The tokens the shape scanner ([`super::scan`]) does not read itself
//! (operators such as `~` or `->>`, numbers with an exponent, non-ASCII
//! words, `:`…), read one at a time by sqlparser's tokenizer from a short
//! window of the text, so that a text holding one of them is not handed
//! whole to that tokenizer (which would build each of its long literals
//! before cutting it). And the `COPY … FROM STDIN;` that tokenizer reads
//! differently.

use sqlparser::dialect::PostgreSqlDialect;

use super::super::{input, AnalysisError};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

/// The first window read; each retry reads sixteen times more.
const FIRST_WINDOW: usize = 64;

/// The largest window read; a longer token makes the text go whole to
/// sqlparser's tokenizer.
const LAST_WINDOW: usize = 64 * 1024;

/// Bytes a token must end before a window's cut to be read as the whole
/// text reads it (the tokenizer looks at most three characters ahead).
const MARGIN: usize = 16;

/// The token sqlparser's tokenizer reads at byte `start` of `sql` after
/// the tokens of `before` (the text's tokens so far: the tokenizer reads
/// the last one and the last one that is not whitespace), and the byte
/// after it; `Ok(None)` when it fails there or the token is too long for
/// the last window; `Err` for one that reads on past a window's end and
/// is sure to be refused as too long ([`refused_past`]).
pub(super) fn token(
    sql: &str,
    start: usize,
    before: &[TokenWithSpan],
) -> Result<Option<(Token, usize)>, AnalysisError> {
    let context = context(before);
    let mut window = FIRST_WINDOW;
    loop {
        let mut end = start.saturating_add(window).min(sql.len());
        while !sql.is_char_boundary(end) {
            end += 1;
        }
        let piece = &sql[start..end];
        let whole = end == sql.len();
        let mut buf = context.clone();
        // An error in a later token of the window leaves the first one in
        // `buf`; an error in the first one leaves none.
        let _ =
            Tokenizer::new(&PostgreSqlDialect {}, piece).tokenize_with_location_into_buf(&mut buf);
        match buf.into_iter().nth(context.len()) {
            Some(t) => {
                let len = byte_offset(piece, t.span.end);
                if whole || len + MARGIN <= piece.len() {
                    return Ok(Some((t.token, start + len)));
                }
                if let Some(refused) = refused_past(sql, start, &t.token) {
                    return Err(refused);
                }
            }
            None if whole => return Ok(None),
            None => {}
        }
        if window >= LAST_WINDOW {
            return Ok(None);
        }
        window *= 16;
    }
}

/// The refusal the whole text gets at the token sqlparser's tokenizer
/// reads as `cut` at byte `start` from a window ending inside it, when it
/// is sure ([`input::too_long`]), so that the text is not handed whole to
/// that tokenizer only to be refused:
/// - an operator already too long reads on as one operator;
/// - a number already too long reads on as one number, or fails at a `_`
///   not followed by a digit (then not refused here: no `_` in its run of
///   letters, digits, `_`, `.`, `+` and `-`);
/// - a placeholder reads on over letters, digits and `_` (as that
///   tokenizer takes them): refused when that run is too long and no `$`
///   follows it (which makes it a dollar quote's tag).
fn refused_past(sql: &str, start: usize, cut: &Token) -> Option<AnalysisError> {
    match cut {
        Token::CustomBinaryOperator(_) => input::too_long(cut),
        Token::Number(..) => {
            let mut run = sql.as_bytes()[start..].iter().take_while(|c| {
                c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'+' | b'-')
            });
            input::too_long(cut).filter(|_| !run.any(|c| *c == b'_'))
        }
        Token::Placeholder(p) if p.starts_with('$') => {
            let name = &sql[start + 1..];
            let end = name
                .char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
                .map_or(name.len(), |(i, _)| i);
            let long = 1 + end > input::long_token();
            (long && !name[end..].starts_with('$')).then(|| input::refused_long("a placeholder"))
        }
        _ => None,
    }
}

/// The tokens of `before` the tokenizer reads: the last one that is not
/// whitespace, and the last one when it is whitespace.
fn context(before: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let space = |t: &TokenWithSpan| matches!(t.token, Token::Whitespace(_));
    let mut context = Vec::with_capacity(2);
    if let Some(t) = before.iter().rev().find(|t| !space(t)) {
        context.push(t.clone());
    }
    if let Some(t) = before.last().filter(|t| space(t)) {
        context.push(t.clone());
    }
    context
}

/// The byte of `piece` at `location`, counted as sqlparser counts (lines
/// from 1 at `\n`, columns from 1 in characters).
fn byte_offset(piece: &str, location: Location) -> usize {
    let (mut line, mut column) = (1, 1);
    for (i, c) in piece.char_indices() {
        if (line, column) == (location.line, location.column) {
            return i;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    piece.len()
}

/// Follows a text's statements as sqlparser's tokenizer does to find the
/// `;` after which it reads a `COPY … FROM STDIN` statement's inline data
/// (a token of its own the scanner does not make).
#[derive(Default)]
pub(super) struct CopyTracker {
    first_token_seen: bool,
    starts_with_copy: bool,
    prev_was_from: bool,
    from_stdin: bool,
    paren_depth: u32,
}

impl CopyTracker {
    /// Notes `token`; `false` when it is a `;` after which sqlparser's
    /// tokenizer reads COPY data.
    pub(super) fn note(&mut self, token: &Token) -> bool {
        match token {
            Token::SemiColon => {
                if self.starts_with_copy && self.from_stdin {
                    return false;
                }
                *self = CopyTracker::default();
            }
            Token::LParen => {
                self.paren_depth += 1;
                self.first_token_seen = true;
                self.prev_was_from = false;
            }
            Token::RParen => {
                self.paren_depth = self.paren_depth.saturating_sub(1);
                self.first_token_seen = true;
                self.prev_was_from = false;
            }
            Token::Whitespace(_) => {}
            Token::Word(word) => {
                if !self.first_token_seen {
                    self.first_token_seen = true;
                    self.starts_with_copy = word.keyword == Keyword::COPY;
                }
                if self.prev_was_from && word.keyword == Keyword::STDIN && self.paren_depth == 0 {
                    self.from_stdin = true;
                }
                self.prev_was_from = word.keyword == Keyword::FROM;
            }
            _ => {
                self.first_token_seen = true;
                self.prev_was_from = false;
            }
        }
        true
    }
}

/// The inline data of a `COPY … FROM STDIN;` whose line ends before byte
/// `from`, as sqlparser's tokenizer reads it: the lines up to one holding
/// only `\.` (or the end of the text), whether that line was there, and
/// the byte after it (and its line break).
pub(super) fn copy_data(sql: &str, from: usize) -> (&str, bool, usize) {
    let b = sql.as_bytes();
    let mut line = from;
    loop {
        let end = b[line..]
            .iter()
            .position(|c| matches!(c, b'\n' | b'\r'))
            .map_or(b.len(), |n| line + n);
        if &b[line..end] == b"\\." {
            let mut after = end;
            if b.get(after) == Some(&b'\r') {
                after += 1;
            }
            if b.get(after) == Some(&b'\n') {
                after += 1;
            }
            return (&sql[from..line], true, after);
        }
        line = match b.get(end) {
            None => return (&sql[from..], false, b.len()),
            Some(b'\r') if b.get(end + 1) == Some(&b'\n') => end + 2,
            Some(_) => end + 1,
        };
    }
}
