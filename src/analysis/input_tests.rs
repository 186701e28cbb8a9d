//! Tests of [`super`]: the scanner's tokens against sqlparser's, the
//! bounds (tokens, statements, long tokens) and the errors of bad texts.

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
        &format!(
            "SELECT 1;\n SELECT '{}",
            "x".repeat(super::shape::OWN_ERRORS_FROM)
        ),
    ] {
        // What the first parse sees: the same tokens, no locations.
        let unlocated =
            super::tokenize_at(sql, false).map(|t| spelled(&super::without_locations(t)));
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
        // Words glued to a quote or `&`, one longer than every window.
        format!(
            "SELECT abc'x', ab\"y\", u&\"z\", é'v', a&1, e\"w\", {}'x', b\"q\"",
            "a".repeat(300_000)
        ),
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
