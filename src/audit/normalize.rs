//! Statement text fit for the log: every literal replaced by a numbered
//! placeholder, comments dropped, whitespace collapsed; and a fingerprint
//! that is the same for every statement differing only in literal values,
//! whitespace, comments or the case of unquoted words.
//!
//! The rule is an allowlist: a token is written back only when it is a
//! word (keyword or identifier), a bind parameter (`$1`), or made of
//! punctuation alone (operators, parentheses). Everything else (numbers,
//! every kind of string, anything the tokenizer returns that is not known
//! to be harmless) becomes `$n`. A statement the tokenizer rejects is not
//! written at all.
//!
//! A huge statement costs little more than its text: the tokens are the
//! analysis's bounded ones (long literals cut as they are read, too many
//! tokens refused), the text kept stops at [`MAX_TEXT`] and the
//! fingerprint is hashed as it goes.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Word};

/// Longest normalized text kept; longer text is cut and marked.
pub const MAX_TEXT: usize = 4096;

/// A statement as the log shows it. Only [`normalize`] builds one, so
/// raw statement text cannot reach a record by mistake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    text: String,
    fingerprint: String,
}

impl Normalized {
    /// The statement with literals replaced by `$n`, comments dropped and
    /// whitespace collapsed; `<unparseable: N bytes>` when it could not be
    /// tokenized.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// 16 hex digits of SHA-256 over the normalized tokens.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// Normalizes one statement (or a multi-statement string).
pub fn normalize(sql: &str) -> Normalized {
    let tokens: Vec<Token> = match crate::analysis::tokenize_bounded(sql) {
        Ok(tokens) => tokens.into_iter().map(|t| t.token).collect(),
        Err(_) => return unparseable(sql.len()),
    };
    let mut next_param = first_free_param(&tokens);
    let mut text = String::with_capacity(sql.len().min(MAX_TEXT));
    let mut canon = Canonical::default();
    let mut space = false;
    let mut in_literal = false;
    for token in &tokens {
        let (shown, canonical) = match token {
            Token::EOF => continue,
            Token::Whitespace(_) => {
                space = true;
                in_literal = false;
                continue;
            }
            // `123abc`, `1e`: a word glued to a number is part of the literal.
            Token::Word(_) if in_literal && !space => continue,
            Token::Word(w) if is_boolean(w) => literal(&mut next_param),
            Token::Word(w) => (word(w), canonical_word(w)),
            Token::Placeholder(p) if is_param(p) => (p.clone(), p.clone()),
            other => {
                let s = other.to_string();
                if !s.is_empty() && s.chars().all(|c| c.is_ascii_punctuation()) {
                    (s.clone(), s)
                } else {
                    let lit = literal(&mut next_param);
                    push(&mut text, &mut canon, &lit, space);
                    in_literal = matches!(other, Token::Number(..));
                    space = false;
                    continue;
                }
            }
        };
        in_literal = false;
        push(&mut text, &mut canon, &(shown, canonical), space);
        space = false;
    }
    let fingerprint = hex(&canon.hasher.finalize());
    if text.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" ...(truncated)");
    }
    Normalized { text, fingerprint }
}

/// The canonical tokens, joined by single spaces, as they go into the
/// fingerprint.
#[derive(Default)]
struct Canonical {
    hasher: Sha256,
    /// Whether anything was hashed yet.
    written: bool,
}

impl Canonical {
    fn push(&mut self, token: &str) {
        if self.written {
            self.hasher.update(b" ");
        }
        self.written |= !token.is_empty();
        self.hasher.update(token.as_bytes());
    }
}

fn push(
    text: &mut String,
    canon: &mut Canonical,
    (shown, canonical): &(String, String),
    space: bool,
) {
    if text.len() <= MAX_TEXT {
        if space && !text.is_empty() {
            text.push(' ');
        }
        text.push_str(shown);
    }
    canon.push(canonical);
}

fn literal(next: &mut u64) -> (String, String) {
    let p = format!("${next}");
    *next += 1;
    (p.clone(), p)
}

/// The first `$n` not used by the statement's own bind parameters.
fn first_free_param(tokens: &[Token]) -> u64 {
    tokens
        .iter()
        .filter_map(|t| match t {
            Token::Placeholder(p) if is_param(p) => p[1..].parse::<u64>().ok(),
            _ => None,
        })
        .max()
        .unwrap_or(0)
        + 1
}

fn is_param(p: &str) -> bool {
    p.len() > 1 && p.starts_with('$') && p[1..].bytes().all(|b| b.is_ascii_digit())
}

fn is_boolean(w: &Word) -> bool {
    w.quote_style.is_none() && matches!(w.keyword, Keyword::TRUE | Keyword::FALSE)
}

fn word(w: &Word) -> String {
    match w.quote_style {
        None => w.value.clone(),
        Some(_) => w.to_string(),
    }
}

/// Unquoted words fold to lower case, as PostgreSQL folds them.
fn canonical_word(w: &Word) -> String {
    match w.quote_style {
        None => w.value.to_lowercase(),
        Some(_) => word(w),
    }
}

fn fingerprint(canonical: &str) -> String {
    hex(&Sha256::digest(canonical.as_bytes()))
}

/// The first 8 bytes of a digest, in hex.
fn hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(16);
    for b in &digest[..8] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// What is logged for a statement the tokenizer rejects: its length only.
fn unparseable(len: usize) -> Normalized {
    Normalized {
        text: format!("<unparseable: {len} bytes>"),
        fingerprint: fingerprint("<unparseable>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(sql: &str) -> String {
        normalize(sql).text
    }

    #[test]
    fn every_kind_of_literal_is_replaced() {
        let cases = [
            ("SELECT 1", "SELECT $1"),
            ("SELECT 'a''b'", "SELECT $1"),
            (r"SELECT E'sec\'ret\n'", "SELECT $1"),
            ("SELECT U&'d\\0061ta'", "SELECT $1"),
            ("SELECT $$dollar 'x'$$", "SELECT $1"),
            ("SELECT $tag$in $$ side$tag$", "SELECT $1"),
            ("SELECT B'0101', X'1F'", "SELECT $1, $2"),
            ("SELECT DATE '2024-01-02'", "SELECT DATE $1"),
            ("SELECT interval '1 day'", "SELECT interval $1"),
            ("SELECT '12'::int + 3.5e10", "SELECT $1::int + $2"),
            ("SELECT 0x1F, 1_000_000", "SELECT $1, $2"),
            ("SELECT N'national'", "SELECT $1"),
            ("SELECT true, FALSE, NULL", "SELECT $1, $2, NULL"),
            ("SELECT 123abc", "SELECT $1"),
        ];
        for (sql, want) in cases {
            assert_eq!(text(sql), want, "{sql}");
        }
    }

    #[test]
    fn comments_dropped_and_whitespace_collapsed() {
        assert_eq!(
            text("SELECT  a -- secret 42\n FROM t /* note 'x' */ WHERE b = 7"),
            "SELECT a FROM t WHERE b = $1"
        );
    }

    #[test]
    fn bind_parameters_kept_and_literals_numbered_after_them() {
        assert_eq!(
            text("SELECT * FROM t WHERE a = $2 AND b = 'x' AND c = $1"),
            "SELECT * FROM t WHERE a = $2 AND b = $3 AND c = $1"
        );
    }

    #[test]
    fn identifiers_and_operators_kept() {
        assert_eq!(
            text(
                r#"SELECT "Weird ""Col""", u.email FROM public.users u WHERE u.tags @> ARRAY[$1]"#
            ),
            r#"SELECT "Weird ""Col""", u.email FROM public.users u WHERE u.tags @> ARRAY[$1]"#
        );
    }

    #[test]
    fn fingerprint_ignores_values_whitespace_comments_and_case() {
        let a = normalize("SELECT email FROM users WHERE id = 42");
        let b = normalize("select  EMAIL\nfrom users -- hi\n where id = 7");
        let c = normalize("SELECT email FROM users WHERE id = '7'");
        let d = normalize("SELECT email FROM users WHERE id > 7");
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.fingerprint, c.fingerprint);
        assert_ne!(a.fingerprint, d.fingerprint);
        assert_eq!(a.fingerprint.len(), 16);
    }

    #[test]
    fn unparseable_statements_are_not_written() {
        let n = normalize("SELECT 'unterminated secret");
        assert_eq!(n.text, "<unparseable: 27 bytes>");
        assert!(!n.fingerprint.contains("secret"));
        assert_eq!(
            n.fingerprint,
            normalize("SELECT $$ also unterminated").fingerprint
        );
    }

    #[test]
    fn long_text_is_cut() {
        let sql = format!("SELECT {}", vec!["col"; 3000].join(", "));
        let n = normalize(&sql);
        assert!(n.text.len() <= MAX_TEXT + 20);
        assert!(n.text.ends_with("(truncated)"));
    }

    /// A literal with a distinctive body, and how it is written in SQL.
    fn literal_strategy() -> impl Strategy<Value = (String, String)> {
        let body = "[a-z][a-z0-9]{7,12}";
        prop_oneof![
            body.prop_map(|b| (b.clone(), format!("'{b}'"))),
            body.prop_map(|b| (b.clone(), format!("'{b}''{b}'"))),
            body.prop_map(|b| (b.clone(), format!("E'{b}\\'{b}'"))),
            body.prop_map(|b| (b.clone(), format!("U&'{b}'"))),
            body.prop_map(|b| (b.clone(), format!("N'{b}'"))),
            body.prop_map(|b| (b.clone(), format!("$${b}$$"))),
            body.prop_map(|b| (b.clone(), format!("$q$ '{b}' $q$"))),
            body.prop_map(|b| (b.clone(), format!("DATE '{b}'"))),
            body.prop_map(|b| (b.clone(), format!("'{b}'::text"))),
            "[0-9a-f]{8,12}".prop_map(|h| (h.clone(), format!("X'{h}'"))),
            "[01]{10,16}".prop_map(|b| (b.clone(), format!("B'{b}'"))),
            (100_000u64..u64::MAX).prop_map(|n| (n.to_string(), n.to_string())),
            (100_000u64..1_000_000_000).prop_map(|n| (n.to_string(), format!("{n}.25e3"))),
            (100_000u64..u64::MAX).prop_map(|n| (n.to_string(), format!("-{n}"))),
        ]
    }

    fn query_strategy() -> impl Strategy<Value = (Vec<String>, String)> {
        let templates = [
            "SELECT {} FROM users WHERE id = {}",
            "SELECT * FROM orders WHERE note LIKE {} OR amount > {} -- c",
            "INSERT INTO t (a, b) VALUES ({}, {})",
            "UPDATE users SET email = {} WHERE id IN ({}, 1)",
            "SELECT f({}) /* x */, ARRAY[{}]",
            "SELECT $1, {} UNION ALL SELECT $2, {}",
            "COPY (SELECT {} AS a) TO STDOUT; SELECT {}",
        ];
        (
            proptest::sample::select(templates.to_vec()),
            literal_strategy(),
            literal_strategy(),
        )
            .prop_map(|(tpl, (b1, l1), (b2, l2))| {
                let sql = tpl.replacen("{}", &l1, 1).replacen("{}", &l2, 1);
                (vec![b1, b2], sql)
            })
    }

    proptest! {
        #[test]
        fn no_literal_survives((bodies, sql) in query_strategy()) {
            let n = normalize(&sql);
            for body in &bodies {
                prop_assert!(!n.text.contains(body.as_str()), "{} in {:?} from {:?}", body, n.text, sql);
                prop_assert!(!n.fingerprint.contains(body.as_str()));
            }
        }

        #[test]
        fn arbitrary_input_never_panics_nor_echoes_quoted_text(body in "[a-z]{10,14}", noise in ".{0,40}") {
            let sql = format!("SELECT '{body}' {noise}");
            let n = normalize(&sql);
            prop_assert!(!n.text.contains(body.as_str()));
        }
    }
}
