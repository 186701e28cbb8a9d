//! SQL text -> parsed statements: tokenizing, the nesting guard, splitting
//! at semicolons and the fallback for statements sqlparser cannot parse.
//!
//! The whole text is parsed at once first; only when that fails is it split
//! into statements at top-level semicolons, each parsed alone or, failing
//! that, classified by its leading keywords ([`super::fallback`]).
//!
//! Memory stays bounded by the text: each literal, comment or identifier
//! longer than [`LONG_TOKEN`] bytes is cut as soon as it is tokenized
//! (literals keep a prefix and [`CUT_MARK`]; PostgreSQL reads only the
//! first 63 bytes of an identifier anyway), a longer number, placeholder
//! or operator is refused, and a text of more than [`MAX_TOKENS`] tokens
//! is refused ([`AnalysisError::TooLarge`]) without being tokenized
//! further. No verdict reads a long literal's content
//! except COPY's `NULL` and `ENCODING` options, which refuse a cut one.

use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Span, Token, TokenWithSpan, Tokenizer, Whitespace};

use super::dialect::Postgres;
use super::fallback::{self, Fallback};
use super::shape;
use super::{AnalysisError, StatementKind};

/// The longest run of operators allowed between two commas or
/// parentheses. Operator chains parse into left-deep trees whose depth
/// nothing else bounds; deep trees overflow the stack when dropped.
const MAX_OPERATOR_RUN: usize = 4000;

/// Longest literal, comment or identifier kept whole.
pub const LONG_TOKEN: usize = 1024;

/// What follows the kept prefix of a cut literal. It holds NUL, which no
/// PostgreSQL string literal can.
pub const CUT_MARK: &str = "\u{0}...(cut by copyguard)\u{0}";

/// Most tokens (whitespace included) one text may hold.
pub const MAX_TOKENS: usize = 1_000_000;

/// Most statements one text may hold. sqlparser builds some 16 KiB of
/// tree for even `SELECT 1;` (a 9-byte statement): 250,000 of them took
/// 4 GiB. This many take at most about what the largest single statement
/// within [`MAX_TOKENS`] takes (about 500 MiB).
pub const MAX_STATEMENTS: usize = 10_000;

/// One statement of the input.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A statement sqlparser understood.
    Statement(Box<Statement>),
    /// A statement recognized by its keywords only; it carries no data facts.
    Known(StatementKind),
}

/// Parses every statement of `sql`. Text without any statement yields one
/// [`StatementKind::Empty`].
pub(crate) fn parse(sql: &str) -> Result<Vec<Parsed>, AnalysisError> {
    match parse_tokens(tokenize_at(sql, false)?) {
        Ok(statements) => Ok(non_empty(
            statements
                .into_iter()
                .map(|s| Parsed::Statement(Box::new(s)))
                .collect(),
        )),
        Err(_) => {
            let statements = split(tokenize(sql)?)
                .into_iter()
                .map(parse_chunk)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(non_empty(statements))
        }
    }
}

/// `tokens` without their locations, for the whole text's first parse:
/// sqlparser formats the location into the message of every error, also
/// of the alternatives it tries and drops while parsing valid text (a
/// tenth of a fresh decision), and writes nothing for an unknown one. The
/// AST's spans are not read; when that parse fails its error is dropped
/// and the statement-by-statement retry, whose errors reach the client,
/// keeps the locations.
fn without_locations(mut tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    for t in &mut tokens {
        t.span = Span::empty();
    }
    tokens
}

/// Parses a catalog-provided SELECT (a view definition) as one query,
/// without locations; `None` when it does not parse or is not one query:
/// such a view falls back to its dependencies, and no error is shown.
pub(crate) fn parse_definition(sql: &str) -> Option<sqlparser::ast::Query> {
    let mut statements = parse_tokens(tokenize_at(sql, false).ok()?).ok()?;
    match (statements.pop(), statements.is_empty()) {
        (Some(Statement::Query(query)), true) => Some(*query),
        _ => None,
    }
}

fn non_empty(mut statements: Vec<Parsed>) -> Vec<Parsed> {
    if statements.is_empty() {
        statements.push(Parsed::Known(StatementKind::Empty));
    }
    statements
}

fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>, AnalysisError> {
    tokenize_at(sql, true)
}

/// [`tokenize`], with locations only when `located` (the scanner then
/// counts no characters; see [`without_locations`]).
fn tokenize_at(sql: &str, located: bool) -> Result<Vec<TokenWithSpan>, AnalysisError> {
    let tokens = tokenize_bounded_at(sql, located)?;
    guard_sizes(&tokens)?;
    Ok(force_quote_all(qualified_operators_before_any(tokens)))
}

/// Why tokenizing stopped early.
struct OverBudget;

#[cfg(test)]
thread_local! {
    /// Tests compare verdicts with every token kept whole.
    pub(crate) static KEEP_WHOLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The longest token kept whole.
pub(super) fn long_token() -> usize {
    #[cfg(test)]
    if KEEP_WHOLE.get() {
        return usize::MAX;
    }
    LONG_TOKEN
}

/// Tokenizes `sql` with every long token cut as it is read; refuses a text
/// of more than [`MAX_TOKENS`] tokens, or with a number, placeholder or
/// operator longer than [`LONG_TOKEN`] bytes ([`too_long`]), as soon as it
/// sees one. Texts are read by the shape scanner
/// ([`shape::plain_tokens`]), which gives sqlparser's tokens without
/// copying a long literal whole; the few it leaves (a short text
/// sqlparser's tokenizer refuses, for that tokenizer's message; a rare
/// token longer than the scanner's last window) by sqlparser's tokenizer
/// ([`sqlparser_bounded`]).
pub fn tokenize_bounded(sql: &str) -> Result<Vec<TokenWithSpan>, AnalysisError> {
    tokenize_bounded_at(sql, true)
}

/// [`tokenize_bounded`], its tokens without locations unless `located` (a
/// refusal always says where).
fn tokenize_bounded_at(sql: &str, located: bool) -> Result<Vec<TokenWithSpan>, AnalysisError> {
    let scanned = match located {
        true => shape::plain_tokens(sql),
        false => shape::plain_tokens_unlocated(sql),
    };
    match scanned {
        Ok(tokens) => Ok(tokens),
        Err(Some(refused)) => Err(refused),
        Err(None) if located => sqlparser_bounded(sql),
        Err(None) => sqlparser_bounded(sql).map(without_locations),
    }
}

/// The refusal of a number, placeholder or operator longer than
/// [`LONG_TOKEN`] bytes (PostgreSQL takes none so long: a parameter
/// number is at most 65535, an operator at most 63 bytes), which would
/// otherwise be kept whole.
pub(super) fn too_long(token: &Token) -> Option<AnalysisError> {
    let (what, text) = match token {
        Token::Number(n, _) => ("a number", n),
        Token::Placeholder(p) => ("a placeholder", p),
        Token::CustomBinaryOperator(o) => ("an operator", o),
        _ => return None,
    };
    (text.len() > long_token()).then(|| refused_long(what))
}

/// The refusal of `what` (a number, a placeholder, an operator) longer
/// than [`LONG_TOKEN`] bytes.
pub(super) fn refused_long(what: &str) -> AnalysisError {
    AnalysisError::TooLarge(format!("{what} longer than {LONG_TOKEN} bytes"))
}

/// The refusal of a text of more than [`MAX_TOKENS`] tokens.
pub(super) fn too_many_tokens() -> AnalysisError {
    AnalysisError::TooLarge(format!("more than {MAX_TOKENS} tokens in one query string"))
}

/// [`tokenize_bounded`] by sqlparser's tokenizer, which builds each token
/// whole before it is cut.
pub(crate) fn sqlparser_bounded(sql: &str) -> Result<Vec<TokenWithSpan>, AnalysisError> {
    let mut tokens = Vec::new();
    let mut count = 0usize;
    let mut long = None;
    // The tokenizer cannot be told to stop: an unwinding that runs no
    // panic hook ends it, and is caught right here.
    let tokenized = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location_into_buf_with_mapper(
            &mut tokens,
            |mut t| {
                count += 1;
                long = too_long(&t.token);
                if count > MAX_TOKENS || long.is_some() {
                    std::panic::resume_unwind(Box::new(OverBudget));
                }
                shorten(&mut t.token);
                t
            },
        )
    }));
    match tokenized {
        Ok(Ok(())) => Ok(tokens),
        Ok(Err(e)) => Err(AnalysisError::Parse(e.to_string())),
        Err(_) => Err(match long {
            Some(refused) => refused,
            None if count > MAX_TOKENS => too_many_tokens(),
            None => AnalysisError::Parse("the SQL tokenizer failed".to_owned()),
        }),
    }
}

/// Cuts a token's text when it is longer than [`LONG_TOKEN`] bytes.
pub(super) fn shorten(token: &mut Token) {
    match token {
        Token::SingleQuotedString(s)
        | Token::DoubleQuotedString(s)
        | Token::NationalStringLiteral(s)
        | Token::EscapedStringLiteral(s)
        | Token::UnicodeStringLiteral(s)
        | Token::HexStringLiteral(s)
        | Token::SingleQuotedByteStringLiteral(s)
        | Token::CopyData { data: s, .. } => cut(s, CUT_MARK),
        Token::DollarQuotedString(d) => cut(&mut d.value, CUT_MARK),
        Token::Word(w) => cut(&mut w.value, ""),
        Token::Whitespace(Whitespace::SingleLineComment { comment: s, .. })
        | Token::Whitespace(Whitespace::MultiLineComment(s)) => cut(s, ""),
        _ => {}
    }
}

/// Replaces `s` by its first [`LONG_TOKEN`] bytes and `mark` when longer.
fn cut(s: &mut String, mark: &str) {
    if s.len() > long_token() {
        *s = shortened(s, mark);
    }
}

/// `s` as [`cut`] leaves it: whole, or its first [`LONG_TOKEN`] bytes and
/// `mark` when longer.
pub(super) fn shortened(s: &str, mark: &str) -> String {
    if s.len() <= long_token() {
        return s.to_owned();
    }
    let mut end = LONG_TOKEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut short = String::with_capacity(end + mark.len());
    short.push_str(&s[..end]);
    short.push_str(mark);
    short
}

/// Whether a literal's text was cut.
pub(crate) fn is_cut(s: &str) -> bool {
    s.contains(CUT_MARK)
}

/// sqlparser reads `FORCE_QUOTE` (and the older `FORCE QUOTE`) of COPY
/// with column names only; PostgreSQL also takes `*`. In a COPY, after its
/// top-level `TO`, a `*` right after those words becomes an unquoted
/// identifier `*` (parenthesized for `FORCE_QUOTE`), which no SQL text can
/// spell (a quoted `"*"` keeps its quotes), so the analysis can tell it
/// from a column named `*`.
fn force_quote_all(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let is_word = |t: &Token, k: Keyword| matches!(t, Token::Word(w) if w.keyword == k && w.quote_style.is_none());
    let first = tokens.iter().find(|t| significant(&t.token));
    if !first.is_some_and(|t| is_word(&t.token, Keyword::COPY)) {
        return tokens;
    }
    let mut out = Vec::with_capacity(tokens.len() + 2);
    let (mut depth, mut after_to) = (0usize, false);
    let mut previous: [Option<Token>; 2] = [None, None];
    for t in tokens {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            token if depth == 0 && is_word(token, Keyword::TO) => after_to = true,
            _ => {}
        }
        if after_to && t.token == Token::Mul {
            let star = |token| TokenWithSpan {
                token,
                span: t.span,
            };
            let ident = Token::make_word("*", None);
            match &previous {
                [_, Some(p)] if is_word(p, Keyword::FORCE_QUOTE) => {
                    out.push(star(Token::LParen));
                    out.push(star(ident));
                    out.push(star(Token::RParen));
                    previous = [previous[1].take(), Some(Token::RParen)];
                    continue;
                }
                [Some(f), Some(q)] if is_word(f, Keyword::FORCE) && is_word(q, Keyword::QUOTE) => {
                    out.push(star(ident.clone()));
                    previous = [previous[1].take(), Some(ident)];
                    continue;
                }
                _ => {}
            }
        }
        if significant(&t.token) {
            previous = [previous[1].take(), Some(t.token.clone())];
        }
        out.push(t);
    }
    out
}

/// `x OPERATOR(pg_catalog.op) ANY (array)`, as pg_dump writes its name
/// patterns, read as `x op ANY (array)`: sqlparser cannot parse the
/// qualified form before ANY/ALL/SOME, and the operator is the built-in
/// one either way (the only schema accepted is `pg_catalog`).
fn qualified_operators_before_any(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let is_word =
        |t: &TokenWithSpan, k: Keyword| matches!(&t.token, Token::Word(w) if w.keyword == k);
    if !tokens.iter().any(|t| is_word(t, Keyword::OPERATOR)) {
        return tokens;
    }
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if is_word(t, Keyword::OPERATOR) && i + 5 < tokens.len() {
            let w = &tokens[i + 1..i + 6];
            let shaped = matches!(w[0].token, Token::LParen)
                && matches!(&w[1].token, Token::Word(n) if n.quote_style.is_none() && n.value.eq_ignore_ascii_case("pg_catalog"))
                && matches!(w[2].token, Token::Period)
                && matches!(w[4].token, Token::RParen);
            let next = tokens[i + 6..].iter().find(|t| significant(&t.token));
            let before_any = next.is_some_and(|n| {
                is_word(n, Keyword::ANY) || is_word(n, Keyword::ALL) || is_word(n, Keyword::SOME)
            });
            if shaped && before_any {
                out.push(w[3].clone());
                i += 6;
                continue;
            }
        }
        out.push(t.clone());
        i += 1;
    }
    out
}

/// Stack for the parser thread of unoptimized builds.
const DEBUG_PARSER_STACK: usize = 64 * 1024 * 1024;

/// Parses tokens. sqlparser's recursion limit (50 levels) keeps optimized
/// builds within a small stack, but its unoptimized frames are so large
/// (up to ~170 KiB a level) that 50 levels overflow a 2 MiB thread: debug
/// builds therefore parse on a helper thread with a large stack. A panic
/// inside sqlparser is a parse error, not a crash.
fn parse_tokens(tokens: Vec<TokenWithSpan>) -> Result<Vec<Statement>, String> {
    if cfg!(debug_assertions) {
        std::thread::Builder::new()
            .name("copyguard-sql-parser".into())
            .stack_size(DEBUG_PARSER_STACK)
            .spawn(move || parse_guarded(tokens))
            .map_err(|e| format!("cannot start the parser thread: {e}"))?
            .join()
            .unwrap_or_else(|_| Err("the SQL parser failed".to_owned()))
    } else {
        parse_guarded(tokens)
    }
}

fn parse_guarded(tokens: Vec<TokenWithSpan>) -> Result<Vec<Statement>, String> {
    std::panic::catch_unwind(move || {
        Parser::new(&Postgres::default())
            .with_tokens_with_locations(tokens)
            .parse_statements()
            .map_err(|e| e.to_string())
    })
    .unwrap_or_else(|_| Err("the SQL parser failed".to_owned()))
}

/// One statement's tokens, parsed alone or classified by keywords.
fn parse_chunk(chunk: Vec<TokenWithSpan>) -> Result<Parsed, AnalysisError> {
    let error = match parse_tokens(chunk.clone()) {
        Ok(mut statements) if statements.len() == 1 => {
            if let Some(s) = statements.pop() {
                return Ok(Parsed::Statement(Box::new(s)));
            }
            "no statement".to_owned()
        }
        Ok(statements) => format!("{} statements where one was expected", statements.len()),
        Err(e) => e,
    };
    match fallback::classify(&chunk) {
        Some(Fallback::Kind(kind)) => Ok(Parsed::Known(kind)),
        Some(Fallback::Retry(tokens)) => match parse_tokens(tokens) {
            Ok(mut statements) if statements.len() == 1 => match statements.pop() {
                Some(s) => Ok(Parsed::Statement(Box::new(s))),
                None => Err(AnalysisError::Parse(error)),
            },
            _ => Err(AnalysisError::Parse(error)),
        },
        None => Err(AnalysisError::Parse(error)),
    }
}

/// Splits tokens at semicolons, dropping chunks without a significant token.
fn split(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    for t in tokens {
        if t.token == Token::SemiColon {
            chunks.push(std::mem::take(&mut current));
        } else {
            current.push(t);
        }
    }
    chunks.push(current);
    chunks
        .into_iter()
        .filter(|c| c.iter().any(|t| significant(&t.token)))
        .collect()
}

/// Whether a token is more than whitespace or a comment.
pub(crate) fn significant(token: &Token) -> bool {
    !matches!(token, Token::Whitespace(_) | Token::EOF)
}

/// Refuses operator runs long enough to build dangerously deep trees, and
/// texts of more than [`MAX_STATEMENTS`] statements.
fn guard_sizes(tokens: &[TokenWithSpan]) -> Result<(), AnalysisError> {
    let mut runs: Vec<usize> = vec![0];
    // Statements ended so far, and whether one is under way.
    let (mut statements, mut open) = (0usize, false);
    for t in tokens {
        if !open && significant(&t.token) && t.token != Token::SemiColon {
            open = true;
            statements += 1;
            if statements > MAX_STATEMENTS {
                return Err(AnalysisError::TooLarge(format!(
                    "more than {MAX_STATEMENTS} statements in one query string"
                )));
            }
        }
        match &t.token {
            Token::LParen => runs.push(0),
            Token::RParen if runs.len() > 1 => {
                runs.pop();
            }
            Token::Comma => {
                if let Some(top) = runs.last_mut() {
                    *top = 0;
                }
            }
            Token::SemiColon => {
                runs.clear();
                runs.push(0);
                open = false;
            }
            token if adds_depth(token) => {
                if let Some(top) = runs.last_mut() {
                    *top += 1;
                    if *top > MAX_OPERATOR_RUN {
                        return Err(AnalysisError::Unsupported(format!(
                            "more than {MAX_OPERATOR_RUN} operators in one expression"
                        )));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a token can add a level to an operator chain.
fn adds_depth(token: &Token) -> bool {
    match token {
        Token::Word(w) => {
            w.quote_style.is_none()
                && matches!(
                    w.keyword,
                    Keyword::AND
                        | Keyword::OR
                        | Keyword::NOT
                        | Keyword::IS
                        | Keyword::LIKE
                        | Keyword::ILIKE
                        | Keyword::SIMILAR
                        | Keyword::BETWEEN
                        | Keyword::IN
                        | Keyword::COLLATE
                        | Keyword::AT
                        | Keyword::UNION
                        | Keyword::INTERSECT
                        | Keyword::EXCEPT
                        | Keyword::OPERATOR
                        | Keyword::OVERLAPS
                        | Keyword::ESCAPE
                )
        }
        Token::EOF
        | Token::Number(..)
        | Token::Char(_)
        | Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::NationalStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::Whitespace(_)
        | Token::Period
        | Token::RBracket
        | Token::Placeholder(_) => false,
        _ => true,
    }
}

#[cfg(test)]
#[path = "input_tests.rs"]
mod tests;
