//! Differential checks of the shape scanner, for the `shape` fuzz target
//! (`fuzz/`) and the regression tests of what it found; not an API.
//!
//! Two properties: the scanner reads a text as sqlparser's tokenizer does
//! (the same tokens and spans, or both refuse it), and two texts of one
//! shape analyze to the same facts whenever one of them would be cached
//! (`guard/cache.rs`: an allowed single statement of a cacheable kind),
//! so a cached decision is the one a fresh analysis gives. For the `sql`
//! target, a third: copyguard's dialect parses as sqlparser's PostgreSQL
//! dialect ([`check_parse`]).

use std::collections::BTreeSet;

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer, Whitespace};

use super::super::dialect::Postgres;
use super::super::{analyze, input, AnalysisError, Context, Facts};
use super::tokens::{plain_tokens, plain_tokens_unlocated, OWN_ERRORS_FROM};
use super::{encode, full, quick, shape, MAX_SHAPE_INPUT};
use crate::catalog::{Catalog, Column, ColumnId, RelKind, Relation};

/// Runs every check on one fuzz input: a control byte, then the text.
/// The control byte picks the literals and whitespace of the variant
/// compared with the text, and (high bit) whether the text is also read
/// after a comment that takes it past [`OWN_ERRORS_FROM`].
pub fn check(data: &[u8], catalog: &Catalog) -> Result<(), String> {
    let Some((&control, text)) = data.split_first() else {
        return Ok(());
    };
    let Ok(sql) = std::str::from_utf8(text) else {
        return Ok(());
    };
    check_tokens(sql)?;
    if control & 0x80 != 0 {
        let padded = format!("/*{}*/ {sql}", "x".repeat(OWN_ERRORS_FROM));
        check_tokens(&padded)?;
    }
    if let Some(other) = variant(sql, control) {
        check_same_shape(sql, &other, catalog)?;
    }
    Ok(())
}

/// The tokens with their spans, which `TokenWithSpan`'s `==` ignores.
fn spanned(tokens: &[TokenWithSpan]) -> Vec<(&Token, Span)> {
    tokens.iter().map(|t| (&t.token, t.span)).collect()
}

/// Checks that the scanner reads `sql` as sqlparser's tokenizer does:
/// the same tokens and spans (long ones cut alike) or a refusal both
/// make; the same tokens without locations; and the quick scanner's
/// shape equal to the one of sqlparser's tokens.
pub fn check_tokens(sql: &str) -> Result<(), String> {
    let expected = input::sqlparser_bounded(sql);
    let plain = plain_tokens(sql);
    match (&plain, &expected) {
        (Ok(tokens), Ok(expected)) if spanned(tokens) != spanned(expected) => {
            return Err(format!(
                "{sql:?}: the scanner reads {:?}, sqlparser {:?}",
                spanned(tokens),
                spanned(expected)
            ));
        }
        (Ok(tokens), Err(e)) => {
            return Err(format!(
                "{sql:?}: sqlparser refuses ({e}), the scanner reads {:?}",
                spanned(tokens)
            ));
        }
        (Err(Some(refused)), Ok(_)) => {
            return Err(format!(
                "{sql:?}: the scanner refuses ({refused}), sqlparser reads it"
            ));
        }
        _ => {}
    }
    let unlocated = plain_tokens_unlocated(sql);
    let cleared = plain.map(|mut tokens| {
        tokens.iter_mut().for_each(|t| t.span = Span::empty());
        tokens
    });
    let same = match (&unlocated, &cleared) {
        (Ok(a), Ok(b)) => spanned(a) == spanned(b),
        (Err(a), Err(b)) => a == b,
        _ => false,
    };
    if !same {
        return Err(format!(
            "{sql:?}: without locations {unlocated:?}, with them {cleared:?}"
        ));
    }
    if let Some(tokens) = quick(sql) {
        let Some(expected) = full(sql) else {
            return Err(format!(
                "{sql:?}: quick reads {tokens:?}, sqlparser refuses"
            ));
        };
        let (got, want) = (encode(&tokens, 0), encode(&expected, 0));
        if got != want {
            return Err(format!(
                "{sql:?}: quick's shape {got:?}, sqlparser's {want:?}"
            ));
        }
    }
    Ok(())
}

/// Checks that `a` and `b`, when of one shape, analyze alike if either
/// would be cached: the same facts, never an error for one of them.
pub fn check_same_shape(a: &str, b: &str, catalog: &Catalog) -> Result<(), String> {
    let (Some(sa), Some(sb)) = (shape(a), shape(b)) else {
        return Ok(());
    };
    if sa != sb {
        return Ok(());
    }
    let search_path = ["pg_catalog".to_owned(), "public".to_owned()];
    let ctx = Context {
        catalog,
        search_path: &search_path,
    };
    let (fa, fb) = (analyze(a, &ctx), analyze(b, &ctx));
    if !(cached(&fa) || cached(&fb)) {
        return Ok(());
    }
    match (&fa, &fb) {
        (Ok(x), Ok(y)) if x == y => Ok(()),
        _ => Err(format!(
            "{a:?} and {b:?} have one shape {sa:?} but analyze to {fa:?} and {fb:?}"
        )),
    }
}

/// Checks that `sql` parses through copyguard's dialect
/// (`analysis/dialect.rs`) as through sqlparser's PostgreSQL dialect: the
/// same statements, spans included, or the same error. Where either
/// meets sqlparser's nesting limit the two may differ by a level, and are
/// not compared.
pub fn check_parse(sql: &str) -> Result<(), String> {
    let ours = Parser::parse_sql(&Postgres::default(), sql);
    let theirs = Parser::parse_sql(&PostgreSqlDialect {}, sql);
    let at_limit = |r: &Result<_, _>| matches!(r, Err(ParserError::RecursionLimitExceeded));
    if at_limit(&ours) || at_limit(&theirs) {
        return Ok(());
    }
    let shown = |r: Result<_, ParserError>| match r {
        Ok(statements) => format!("{statements:?}"),
        Err(e) => format!("error: {e}"),
    };
    let (ours, theirs) = (shown(ours), shown(theirs));
    if ours == theirs {
        Ok(())
    } else {
        Err(format!(
            "{sql:?}: copyguard's dialect parses {ours}, PostgreSQL's {theirs}"
        ))
    }
}

/// Whether the decision cache may keep a decision on these facts: one
/// statement of a kind the cache keeps ([`crate::guard::cacheable`]).
fn cached(facts: &Result<Facts, AnalysisError>) -> bool {
    let Ok(facts) = facts else {
        return false;
    };
    matches!(facts.statements.as_slice(), [s] if crate::guard::cacheable(&s.kind))
}

/// Numbers and strings a variant writes in place of the text's.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "42",
    "007",
    "1.5",
    "1e3",
    ".5",
    "99999999999999999999",
    "2147483648",
    "-1",
];
const STRINGS: &[&str] = &[
    "''",
    "'x'",
    "'users'",
    "'public.users'",
    "'search_path'",
    "'it''s'",
    "'1'",
    "'t'",
    "E'\\n'",
    "$$x$$",
    "'email'",
];
const SPACES: &[&str] = &[" ", "\n", "\t", "  ", "/* c */", "-- c\n", "\r\n", "/**/"];

/// `sql` with other numbers, strings and whitespace in place of its own,
/// chosen by `control`; `None` when sqlparser's tokenizer refuses it or
/// it is too long to have a shape.
fn variant(sql: &str, control: u8) -> Option<String> {
    if sql.len() > MAX_SHAPE_INPUT {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let mut bytes = Bytes::new(sql);
    let mut out = String::with_capacity(sql.len() + 16);
    let pick = |table: &[&'static str], i: usize| {
        table[(usize::from(control & 0x7f) * 7 + i * 3) % table.len()]
    };
    for (i, t) in tokens.iter().enumerate() {
        let (start, end) = (bytes.at(t.span.start), bytes.at(t.span.end));
        let written = &sql[start..end];
        out.push_str(match &t.token {
            Token::Number(..) => pick(NUMBERS, i),
            Token::SingleQuotedString(_) if control & 0x40 == 0 => pick(STRINGS, i),
            Token::Whitespace(Whitespace::SingleLineComment { .. }) => "\n",
            Token::Whitespace(_) => pick(SPACES, i),
            _ => written,
        });
    }
    Some(out)
}

/// Byte offsets of sqlparser's locations, read in increasing order.
struct Bytes<'a> {
    sql: &'a str,
    byte: usize,
    at: Location,
}

impl<'a> Bytes<'a> {
    fn new(sql: &'a str) -> Bytes<'a> {
        Bytes {
            sql,
            byte: 0,
            at: Location::new(1, 1),
        }
    }

    /// The byte at `location` (the text's end when past it).
    fn at(&mut self, location: Location) -> usize {
        let mut chars = self.sql[self.byte..].chars();
        while (self.at.line, self.at.column) < (location.line, location.column) {
            let Some(c) = chars.next() else {
                break;
            };
            self.byte += c.len_utf8();
            if c == '\n' {
                self.at = Location::new(self.at.line + 1, 1);
            } else {
                self.at = Location::new(self.at.line, self.at.column + 1);
            }
        }
        self.byte
    }
}

/// The `sql` and `shape` fuzz targets' catalog: tables with the columns
/// a policy classifies (`users.email`, `users.full_name`…), a view over
/// one, a partitioned table and its partition.
pub fn catalog() -> Catalog {
    let users = relation(
        100,
        "users",
        RelKind::Table,
        &[
            ("id", 20, "bigint"),
            ("email", 25, "text"),
            ("full_name", 25, "text"),
            ("birth_date", 1082, "date"),
            ("phone", 25, "text"),
        ],
    );
    let orders = relation(
        200,
        "orders",
        RelKind::Table,
        &[
            ("id", 20, "bigint"),
            ("user_id", 20, "bigint"),
            ("amount_cents", 23, "integer"),
            ("status", 25, "text"),
        ],
    );
    let mut v = relation(
        300,
        "v_users",
        RelKind::View,
        &[("id", 20, "bigint"), ("contact", 25, "text")],
    );
    v.definition = Some(" SELECT users.id, users.email AS contact FROM users;".to_owned());
    v.depends_on = [
        ColumnId {
            rel: 100,
            attnum: 1,
        },
        ColumnId {
            rel: 100,
            attnum: 2,
        },
    ]
    .into_iter()
    .collect();
    let events = relation(
        400,
        "events",
        RelKind::PartitionedTable,
        &[("id", 20, "bigint"), ("payload", 3802, "jsonb")],
    );
    let mut events_2024 = relation(
        410,
        "events_2024",
        RelKind::Table,
        &[("id", 20, "bigint"), ("payload", 3802, "jsonb")],
    );
    events_2024.parents = vec![400];
    Catalog::new(vec![users, orders, v, events, events_2024], Vec::new())
}

fn relation(oid: u32, name: &str, kind: RelKind, columns: &[(&str, u32, &str)]) -> Relation {
    Relation {
        oid,
        schema: "public".to_owned(),
        name: name.to_owned(),
        kind,
        columns: columns
            .iter()
            .enumerate()
            .map(|(i, (c, ty, ty_name))| Column {
                attnum: i16::try_from(i + 1).unwrap_or(i16::MAX),
                name: (*c).to_owned(),
                type_oid: *ty,
                type_name: (*ty_name).to_owned(),
                typmod: -1,
            })
            .collect(),
        parents: Vec::new(),
        definition: None,
        depends_on: BTreeSet::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::{catalog, check, check_same_shape, variant};

    #[test]
    fn a_variant_keeps_the_shape_of_plain_statements() {
        let sql = "SELECT email FROM users WHERE id = 42 AND status = 'x'";
        let other = variant(sql, 3).expect("variant");
        assert_ne!(other, sql);
        assert_eq!(super::shape(&other), super::shape(sql), "{other}");
        check_same_shape(sql, &other, &catalog()).expect("same facts");
    }

    #[test]
    fn inputs_the_fuzz_target_found_pass() {
        let catalog = catalog();
        for input in REGRESSIONS {
            check(input, &catalog).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Minimized inputs of the `shape` fuzz target (a control byte, then
    /// the text).
    const REGRESSIONS: &[&[u8]] = &[
        b"\x00SELECT 1",
        // The quick scanner read the data after `COPY … FROM STDIN;` as
        // SQL, sqlparser's tokenizer as one token.
        b"\x00COPY t FROM STDIN;\n1",
        b"\x00SELECT 2; copy t from stdin; 3\r\\.\n",
    ];
}
