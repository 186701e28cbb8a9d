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

/// Parses a catalog-provided SELECT (a view definition), without
/// locations: a definition that does not parse falls back to the view's
/// dependencies, and its error is not shown.
pub(crate) fn parse_definition(sql: &str) -> Result<Vec<Statement>, AnalysisError> {
    parse_tokens(tokenize_at(sql, false)?).map_err(AnalysisError::Parse)
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
        Parser::new(&PostgreSqlDialect {})
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
mod tests {
    use super::{sqlparser_bounded, tokenize, AnalysisError, LONG_TOKEN, MAX_TOKENS};
    use crate::analysis::shape::{self, OWN_ERRORS_FROM};

    /// The scanner's tokens, when it reads the text itself.
    fn plain_tokens(sql: &str) -> Option<Vec<sqlparser::tokenizer::TokenWithSpan>> {
        shape::plain_tokens(sql).ok()
    }

    /// The token text of each token, spans included.
    fn spelled(tokens: &[sqlparser::tokenizer::TokenWithSpan]) -> Vec<String> {
        tokens
            .iter()
            .map(|t| format!("{:?} {:?}", t.token, t.span))
            .collect()
    }

    #[test]
    fn plain_texts_skip_sqlparsers_tokenizer_with_the_same_tokens() {
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
            "SELECT o.id FROM orders o\r\n  WHERE o.status = 'payé' AND o.id = $1 LIMIT 5",
        ] {
            let plain = plain_tokens(sql).expect("plain");
            let full = sqlparser_bounded(sql).expect("tokenizes");
            assert_eq!(spelled(&plain), spelled(&full), "{sql}");
            assert_eq!(spelled(&tokenize(sql).expect("tokenizes")), spelled(&full));
        }
    }

    #[test]
    fn the_first_parse_reads_the_same_tokens_without_locations() {
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
            "SELECT o.id -- note\r\n FROM orders o\r\n  WHERE o.status = 'payé' /* c */ AND o.id = $1",
            "COPY (SELECT 1) TO STDOUT",
            "SELECT 'unterminated",
            // Refused by the scanner itself: the same place named.
            &format!("SELECT 1;\n SELECT '{}", "x".repeat(super::shape::OWN_ERRORS_FROM)),
        ] {
            // What the first parse sees: the same tokens, no locations.
            let unlocated = super::tokenize_at(sql, false).map(|t| spelled(&super::without_locations(t)));
            let located = tokenize(sql).map(|t| spelled(&super::without_locations(t)));
            assert_eq!(format!("{unlocated:?}"), format!("{located:?}"), "{sql}");
        }
    }

    #[test]
    fn parse_errors_keep_their_location() {
        // The first parse runs without locations; the error the client
        // sees comes from the retry, which has them.
        match super::parse("SELECT 1; SELECT a b c FROM t") {
            Err(AnalysisError::Parse(m)) => assert!(m.contains("at Line: 1, Column: "), "{m}"),
            other => panic!("not a parse error: {other:?}"),
        }
    }

    #[test]
    fn copy_texts_are_read_by_the_scanner() {
        // sqlparser's tokenizer reads the lines after a `COPY ... FROM
        // STDIN;` line as the COPY's data, up to a `\.` line.
        let long = "x".repeat(5000);
        for sql in [
            "COPY t FROM STDIN; SELECT 1".to_owned(),
            "copy t from stdin;".to_owned(),
            "COPY t FROM STDIN;\n".to_owned(),
            "COPY t FROM STDIN;\n\\.".to_owned(),
            "COPY t FROM STDIN; -- c\r\na\tb\r\n\\.\r\nSELECT 1".to_owned(),
            "COPY t FROM STDIN;\r1\r\\.\r\n;".to_owned(),
            format!("COPY t FROM STDIN;\n{long}\n'\n\\.\nSELECT '{long}'"),
            format!("COPY t FROM STDIN; COPY u FROM STDIN; /* x\n */ 1\n{long}\n\\.x\n"),
            format!("COPY t (a) FROM STDIN (FORMAT csv);  \n{long}\n\\.\nCOPY t FROM STDIN;\nz\n"),
            format!("COPY t FROM STDIN;\n{}", "é".repeat(2000)),
            "select copyright from t".to_owned(),
            "copy t to stdout".to_owned(),
            "COPY t FROM STDIN /* x */".to_owned(),
            "COPY (SELECT 1 FROM stdin; SELECT 2) TO STDOUT".to_owned(),
            format!("COPY (SELECT length('{long}')) TO STDOUT; SELECT 1"),
        ] {
            assert_eq!(
                spelled(&plain_tokens(&sql).expect("plain")),
                spelled(&sqlparser_bounded(&sql).expect("tokenizes")),
                "{}",
                &sql[..40]
            );
        }
    }

    #[test]
    fn texts_with_foreign_tokens_are_read_by_the_scanner() {
        let long = "x".repeat(5000);
        for sql in [
            format!("SELECT length('{long}'), 1e3, 1.5e-3, .5, 0x1F, 1_000"),
            format!("SELECT length('{long}') WHERE 'a' ~ 'a' AND j->>'k' = '{long}'"),
            format!("SELECT N'{long}', n'it''s', B'{long}', b'01', X'{long}\\n', x'1f'"),
            format!("SELECT U&'{long}\\00e9', u&'\\+0000e9''{long}'"),
            format!("SELECT café, \"{long}\", '{long}' FROM naïve WHERE a @> b::int[]"),
            format!(
                "SELECT {}, a$b, x$$y$$, ſelect, \u{a0}x FROM t",
                "é".repeat(5000)
            ),
            format!("SELECT :x, $1, '{long}', a.b, (c).d, ''\n'{long}'"),
            format!("SELECT 'a'::text COLLATE \"C\", '{long}'#>>'{{a}}', $a$ $ $a$"),
        ] {
            let plain = plain_tokens(&sql).expect("plain");
            let full = sqlparser_bounded(&sql).expect("tokenizes");
            assert_eq!(spelled(&plain), spelled(&full), "{}", &sql[..60]);
        }
    }

    #[test]
    fn texts_over_the_token_budget_are_refused_as_the_bounded_tokenizer_refuses_them() {
        for sql in [
            format!("SELECT 1{}", " ".repeat(MAX_TOKENS + 10)),
            format!("SELECT 1{}, 2", "\n".repeat(MAX_TOKENS + 10)),
            format!("SELECT 1{}", ",1".repeat(MAX_TOKENS / 2)),
            format!("SELECT 1{}", ",é".repeat(MAX_TOKENS / 2)),
            format!(
                "COPY t FROM STDIN;\n1\n\\.\n{}",
                "1,".repeat(MAX_TOKENS / 2)
            ),
        ] {
            match shape::plain_tokens(&sql) {
                Err(Some(AnalysisError::TooLarge(m))) => assert!(m.contains("tokens"), "{m}"),
                other => panic!("not refused: {:?}", other.map(|t| t.len())),
            }
            assert!(matches!(
                sqlparser_bounded(&sql),
                Err(AnalysisError::TooLarge(_))
            ));
        }
        // Just within it, also past the tokens kept while counting.
        let within = format!("SELECT 1{}", ",1".repeat(MAX_TOKENS / 2 - 2));
        let plain = shape::plain_tokens(&within).expect("within");
        assert_eq!(plain.len(), MAX_TOKENS - 1);
        let full = sqlparser_bounded(&within).expect("within");
        assert!(spelled(&plain) == spelled(&full));
        let over = format!("{within} ");
        assert!(shape::plain_tokens(&format!("{over} ")).is_err());
        assert!(sqlparser_bounded(&format!("{over} ")).is_err());
    }

    #[test]
    fn large_bad_texts_get_the_scanners_errors() {
        let long = "x".repeat(OWN_ERRORS_FROM);
        for (sql, error) in [
            (
                format!("SELECT 1,\n  '{long}"),
                "unterminated quoted string at Line: 2, Column: 3",
            ),
            (
                format!("SELECT '{long}', E'\\0'"),
                "invalid escape in an E'' string at Line: 1, Column: 65548",
            ),
            (
                format!("SELECT 1 ~ N'{long}"),
                "unterminated quoted string at Line: 1, Column: 12",
            ),
            (
                format!("SELECT U&'\\zz{long}'"),
                "invalid escape in a U&'' string at Line: 1, Column: 8",
            ),
            (
                format!("SELECT $a${long}"),
                "unterminated dollar-quoted string at Line: 1, Column: 8",
            ),
            (
                format!("SELECT 1 /* {long} /* */"),
                "unterminated /* comment at Line: 1, Column: 10",
            ),
            (
                format!("SELECT \"{long}"),
                "unterminated quoted identifier at Line: 1, Column: 8",
            ),
        ] {
            match tokenize(&sql) {
                Err(AnalysisError::Parse(m)) => assert!(m.contains(error), "{m} / {error}"),
                other => panic!("not refused: {:?}", other.map(|t| t.len())),
            }
            assert!(sqlparser_bounded(&sql).is_err());
        }
    }

    #[test]
    fn long_plain_texts_get_the_bounded_tokenizers_cut_tokens() {
        let long = |c: &str, n: usize| c.repeat(n);
        for sql in [
            format!("SELECT {} FROM t", "a, ".repeat(400) + "a"),
            format!("SELECT length('{}')", long("x", 33 * 1024)),
            format!("SELECT '{}', 'short'", long("é", 1500)),
            format!("SELECT '{}{}'", long("x", 1023), long("é", 10)),
            format!("SELECT '{}'", long("x", 1024)),
            format!("SELECT '{}'", long("x", 1025)),
            format!("SELECT \"{}\" FROM \"{}\"", long("q", 2000), long("é", 700)),
            format!("SELECT {} FROM t WHERE a = $1", long("w", 1500)),
            format!("SELECT 1 WHERE a IN ({}1)\r\n", "1,\n".repeat(50_000)),
            format!("SELECT length(E'{}')", "ab\\n".repeat(9000)),
            format!(
                "SELECT length(E'{}\\u00e9{}')",
                long("x", 1021),
                long("é", 9)
            ),
            format!(
                "SELECT length($${}$$), $t${}$t$",
                long("x", 5000),
                long("é", 900)
            ),
            format!(
                "SELECT 42 /* {} */ -- {}\n",
                long("x", 5000),
                long("é", 900)
            ),
            format!("SELECT length('{}')::int", long("x", 5000)),
            format!("SELECT '{}''{}' || 'y'", long("x", 1023), long("x", 5000)),
            format!("SELECT '\\x{}'::bytea", long("0a", 5000)),
            format!("INSERT INTO t VALUES (1.5, 2., '{}')", long("x", 5000)),
            format!(
                "SELECT \"{}\"\"{}\"[1] != 2",
                long("q", 1020),
                long("é", 700)
            ),
        ] {
            let plain = plain_tokens(&sql).expect("plain");
            let full = sqlparser_bounded(&sql).expect("tokenizes");
            assert_eq!(
                spelled(&plain),
                spelled(&full),
                "{}",
                &sql[..60.min(sql.len())]
            );
            assert_eq!(spelled(&tokenize(&sql).expect("tokenizes")), spelled(&full));
        }
    }

    #[test]
    fn bad_literals_and_comments_get_sqlparsers_errors() {
        for sql in [
            "SELECT E'x",
            "SELECT E'\\",
            "SELECT E'\\0'",
            "SELECT E'\\xff'",
            "SELECT E'\\u12'",
            "SELECT $$x",
            "SELECT $$x$",
            "SELECT $a$x$b$",
            "SELECT /* x /* y */",
            "SELECT 'x",
            "SELECT 'x''",
            "SELECT \"x",
        ] {
            assert!(plain_tokens(sql).is_none(), "{sql}");
            let error = |r: Result<_, AnalysisError>| match r {
                Err(AnalysisError::Parse(m)) => m,
                other => panic!("{sql}: not refused: {:?}", other.map(|t: Vec<_>| t.len())),
            };
            assert_eq!(error(tokenize(sql)), error(sqlparser_bounded(sql)), "{sql}");
        }
    }

    #[test]
    fn long_plain_texts_over_budget_are_refused_as_before() {
        let number = format!("SELECT {}", "9".repeat(LONG_TOKEN + 1));
        let many = format!("SELECT {}1", "1,".repeat(MAX_TOKENS / 2));
        let operator = format!("SELECT 1 {} 1", "~".repeat(LONG_TOKEN + 1));
        let placeholder = format!("SELECT ${}", "1".repeat(LONG_TOKEN + 1));
        let named = format!("SELECT $p{}", "1".repeat(LONG_TOKEN + 1));
        // Longer than the windows sqlparser's tokenizer reads it from.
        let past_windows = format!("SELECT 1 {} 1", "<".repeat(300_000));
        for sql in [number, many, operator, placeholder, named, past_windows] {
            assert!(matches!(shape::plain_tokens(&sql), Err(Some(_))));
            let refused = |r: Result<_, AnalysisError>| match r {
                Err(AnalysisError::TooLarge(m)) => m,
                other => panic!("not refused: {:?}", other.map(|t: Vec<_>| t.len())),
            };
            // From `OWN_ERRORS_FROM` bytes on, the scanner names the place.
            let (scanned, bounded) = (refused(tokenize(&sql)), refused(sqlparser_bounded(&sql)));
            match sql.len() < OWN_ERRORS_FROM || bounded.contains("tokens") {
                true => assert_eq!(scanned, bounded),
                false => assert!(
                    scanned.starts_with(&format!("{bounded} at Line: 1")),
                    "{scanned}"
                ),
            }
        }
    }

    #[test]
    fn texts_of_more_than_max_statements_are_refused() {
        use super::{parse, Parsed, MAX_STATEMENTS};
        // Before, parsed: 250,000 of them took 4 GiB and 40 s.
        let over = "SELECT 1;".repeat(MAX_STATEMENTS + 1);
        match parse(&over) {
            Err(AnalysisError::TooLarge(m)) => assert!(m.contains("statements"), "{m}"),
            other => panic!("not refused: {:?}", other.map(|s| s.len())),
        }
        // Empty statements are not counted; a last one without `;` is.
        let within = format!("{};;\n;SELECT 2", "SELECT 1 ;".repeat(MAX_STATEMENTS - 1));
        assert_eq!(parse(&within).expect("within").len(), MAX_STATEMENTS);
        assert!(parse(&format!("{within};SELECT 3")).is_err());
        let empty = parse(&";".repeat(MAX_STATEMENTS * 3)).expect("empty");
        assert!(matches!(empty.as_slice(), [Parsed::Known(_)]));
    }

    #[test]
    fn numbers_and_placeholders_longer_than_the_last_window_are_refused_by_the_scanner() {
        // Before, sqlparser's tokenizer read each of them whole (one more
        // copy of the text) only to refuse it.
        let n = 300_000;
        let (digits, letters) = ("1".repeat(n), "a".repeat(n));
        for (sql, error) in [
            (format!("SELECT $p{digits}"), "a placeholder"),
            (format!("SELECT $1{letters}, 2"), "a placeholder"),
            (format!("SELECT 1,\n  $p{}", "é".repeat(n)), "a placeholder"),
            (format!("SELECT {digits}e3"), "a number"),
            (format!("SELECT {digits}.5e-3"), "a number"),
            (format!("SELECT .{digits}"), "a number"),
            (format!("SELECT 0x{}", "f".repeat(n)), "a number"),
        ] {
            let place = if sql.contains('\n') {
                "Line: 2, Column: 3"
            } else {
                "Line: 1, Column: 8"
            };
            let want = format!("{error} longer than {LONG_TOKEN} bytes at {place}");
            for tokens in [
                shape::plain_tokens(&sql),
                shape::plain_tokens_unlocated(&sql),
            ] {
                match tokens {
                    Err(Some(AnalysisError::TooLarge(m))) => assert_eq!(m, want),
                    other => panic!("{want}: not refused: {:?}", other.map(|t| t.len())),
                }
            }
            assert!(matches!(
                sqlparser_bounded(&sql),
                Err(AnalysisError::TooLarge(_))
            ));
            crate::analysis::shape::fuzz::check_tokens(&sql).expect("as sqlparser reads it");
        }
        // Still read whole by sqlparser's tokenizer: a number holding a
        // `_` (it refuses one not followed by a digit: 42601), a long tag
        // of a dollar quote (taken).
        for sql in [
            format!("SELECT {digits}_ FROM t"),
            format!("SELECT 1_{digits} FROM t"),
            format!("SELECT $p{}$ x $p{}$", "é".repeat(n), "é".repeat(n)),
        ] {
            assert!(matches!(shape::plain_tokens(&sql), Err(None)));
        }
    }
}
