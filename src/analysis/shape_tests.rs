//! Tests of the statement shape and of the plain scanner against
//! sqlparser's tokenizer.

use proptest::prelude::*;

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::Tokenizer;

use super::{encode, full, plain_tokens, quick, shape};

/// Pieces of SQL text, plain and tricky, for the scanners to agree on.
const PIECES: &[&str] = &[
    "SELECT",
    "select",
    "a",
    "_b1",
    "x$",
    " ",
    "\n",
    "\t",
    "=",
    "<",
    ">",
    "<=",
    ">=",
    "<>",
    "!=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "(",
    ")",
    ",",
    ".",
    ";",
    "'x'",
    "'it''s'",
    "'a\\b'",
    "''",
    "'",
    "\"Q\"",
    "\"\"",
    "\"a\"\"b\"",
    "1",
    "42",
    "1.5",
    ".5",
    "1e5",
    "1_0",
    "0x1F",
    "--",
    "/*",
    "*/",
    "::",
    ":",
    "$1",
    "$$",
    "E'x'",
    "e",
    "N",
    "U&'x'",
    "é",
    "'é'",
    "\\",
    "AND",
    "ORDER",
    "set_config",
    "pg_settings",
    "WHERE",
    "[",
    "]",
    "@",
    "||",
    "->",
    "=>",
    "#",
    "&",
    "|",
    "~",
    "?",
    "\r\n",
    "\u{a0}",
    "INSERT",
    "FROM",
    "E'a\\nb'",
    "e'\\''",
    "E'it''s'",
    "E'\\x41\\101\\u00e9\\U0001F600'",
    "E'\\0'",
    "E'\\x'",
    "E'\\xff'",
    "E'\\400'",
    "E'\\u+0041'",
    "E'\\uZZZZ'",
    "E'\\",
    "E'",
    "$$x$$",
    "$$a$b$$",
    "$",
    "$a$",
    "$a$x$a$",
    "$_b1$ $ $_b1$",
    "$1$",
    "$é$",
    "-- c\n",
    "--\r",
    "/* c */",
    "/* /* */ */",
    "/*/",
    "x::int",
    "|",
    "!",
    "'a''b'",
    "\"a\"\"b\"",
    "'\\'",
    "U&",
    "N'x'",
    "n'it''s'",
    "B'101'",
    "b'1'",
    "X'1F'",
    "x'a\\'b'",
    "X'\\n\\Z'",
    "X'\\",
    "U&'\\0041'",
    "u&'\\+000041'",
    "U&'a''b\\\\'",
    "U&'\\zz'",
    "U&'\\12",
    "N'",
    "X'",
    "1e-3",
    "1.5E+2",
    "~",
    "->>",
    "@>",
    "café",
    ":x",
    "._",
    "COPY",
    "STDIN",
    "TO",
    "STDOUT",
    "COPY t FROM STDIN;",
    "\\.",
    "\n\\.\n",
    "\\.\r",
    "ſelect",
    "a$b",
    "é$",
    "\u{3000}",
];

/// Pieces the quick scanner accepts on their own.
const PLAIN: &[&str] = &[
    "SELECT",
    "a",
    "_b1",
    " ",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "=",
    "<",
    ">",
    "<=",
    ">=",
    "<>",
    "+",
    "-",
    "*",
    "/",
    "%",
    "(",
    ")",
    ",",
    ".",
    ";",
    "'x'",
    "'é'",
    "\"Q\"",
    "1",
    "42",
    "AND",
    "WHERE",
    "FROM",
    "$1",
    "$23",
    "LIMIT",
    "E'a\\tb''c'",
    "e'\\x41'",
    "$$x$y$$",
    "$q$x$$q$",
    "-- c\n",
    "/* c /* d */ e */",
    "::",
    "||",
    "!=",
    "[",
    "]",
    "'a''b'",
    "'\\'",
    "\"a\"\"b\"",
    "N'x'",
    "B'01'",
    "X'1F'",
    "U&'\\00e9'",
];

fn texts() -> impl Strategy<Value = String> {
    let any = prop::collection::vec(prop::sample::select(PIECES), 1..24);
    let plain = prop::collection::vec(prop::sample::select(PLAIN), 1..24);
    prop_oneof![any, plain].prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]
    #[test]
    fn the_quick_scanner_agrees_with_sqlparser(sql in texts()) {
        if let Some(tokens) = quick(&sql) {
            let expected = full(&sql);
            prop_assert!(expected.is_some(), "{sql:?}: sqlparser fails, quick gives {tokens:?}");
            let expected = expected.unwrap_or_default();
            prop_assert_eq!(
                encode(&tokens, sql.len()),
                encode(&expected, sql.len()),
                "{:?}: {:?} / {:?}", sql, tokens, expected
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]
    #[test]
    fn plain_tokens_are_sqlparsers_tokens(sql in texts()) {
        if let Ok(tokens) = plain_tokens(&sql) {
            let expected = Tokenizer::new(&PostgreSqlDialect {}, &sql).tokenize_with_location();
            prop_assert!(expected.is_ok(), "{sql:?}: sqlparser fails, plain gives {tokens:?}");
            let expected = expected.unwrap_or_default();
            let spans = |t: &[sqlparser::tokenizer::TokenWithSpan]| {
                t.iter().map(|t| (t.token.clone(), t.span)).collect::<Vec<_>>()
            };
            prop_assert_eq!(spans(&tokens), spans(&expected), "{:?}", sql);
        }
    }
}

/// Long pieces: literals and identifiers past `LONG_TOKEN`, some with a
/// character straddling the cut.
fn long_texts() -> impl Strategy<Value = String> {
    let x = "x".repeat(1023);
    let long: Vec<String> = vec![
        format!("'{x}'"),
        format!("'{x}x'"),
        format!("'{x}xx'"),
        format!("'{x}é'"),
        format!("'{x}xé'"),
        format!("\"{x}é\""),
        format!("\"{x}xx\""),
        format!("{x}xx"),
        format!("{x}"),
        format!("1{}", "0".repeat(1100)),
        format!("E'{x}\\n'"),
        format!("E'{x}x\\t\\u00e9'"),
        format!("E'{x}''x'"),
        format!("E'{}'", "\\n".repeat(1100)),
        format!("'{x}''x'"),
        format!("'{}'", "''".repeat(600)),
        format!("\"{x}\"\"é\""),
        format!("$${x}é$$"),
        format!("$t$x{x}$$t$"),
        format!("-- {x}é\n"),
        format!("/* {x} /* é */ */"),
        format!("N'{x}é'"),
        format!("b'{x}1'"),
        format!("X'{x}\\n'"),
        format!("U&'{x}\\00e9'"),
        "1e5".to_owned(),
        "~".to_owned(),
        "café".to_owned(),
        "->>".to_owned(),
        "COPY".to_owned(),
        "STDIN".to_owned(),
        "COPY t FROM STDIN;".to_owned(),
        "\n\\.\n".to_owned(),
        format!("{x}$é"),
        format!("é{}", "é".repeat(600)),
        format!("{}", "~".repeat(1100)),
        format!("${}", "1".repeat(1100)),
    ];
    let pieces: Vec<String> = PLAIN.iter().map(|p| (*p).to_owned()).chain(long).collect();
    prop::collection::vec(prop::sample::select(pieces), 1..16).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]
    #[test]
    fn long_plain_tokens_are_the_bounded_tokenizers_tokens(sql in long_texts()) {
        let expected = crate::analysis::input::sqlparser_bounded(&sql);
        match plain_tokens(&sql) {
            Ok(tokens) => {
                prop_assert!(expected.is_ok(), "{sql:?}: refused, plain gives {tokens:?}");
                let expected = expected.unwrap_or_default();
                let spans = |t: &[sqlparser::tokenizer::TokenWithSpan]| {
                    t.iter().map(|t| (t.token.clone(), t.span)).collect::<Vec<_>>()
                };
                prop_assert_eq!(spans(&tokens), spans(&expected), "{:?}", sql);
            }
            Err(Some(refused)) => {
                let expected = expected.map(|t| t.len()).map_err(|e| e.to_string());
                prop_assert_eq!(Err::<usize, String>(refused.to_string()), expected, "{:?}", sql);
            }
            Err(None) => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]
    #[test]
    fn what_the_scanner_refuses_sqlparser_refuses(sql in texts()) {
        // Past `OWN_ERRORS_FROM` bytes the scanner refuses with its own
        // message: only texts sqlparser's tokenizer refuses too.
        let padded = format!("/*{}*/ {sql}", "x".repeat(super::OWN_ERRORS_FROM));
        if let Err(Some(crate::analysis::AnalysisError::Parse(m))) = plain_tokens(&padded) {
            let tokenized = Tokenizer::new(&PostgreSqlDialect {}, &sql).tokenize();
            prop_assert!(tokenized.is_err(), "{sql:?}: refused ({m}), sqlparser reads it");
        }
    }
}

#[test]
fn keywords_are_found_as_sqlparser_finds_them() {
    use sqlparser::keywords::ALL_KEYWORDS;
    use sqlparser::tokenizer::Token;
    let mut words: Vec<String> = ALL_KEYWORDS.iter().map(|k| (*k).to_owned()).collect();
    words.extend(ALL_KEYWORDS.iter().map(|k| k.to_lowercase()));
    words.extend(ALL_KEYWORDS.iter().map(|k| format!("{k}x")));
    words.extend(ALL_KEYWORDS.iter().map(|k| k[..k.len() - 1].to_owned()));
    words.extend(["sElEcT", "orders", "é", "selecté", "_", &"a".repeat(100)].map(str::to_owned));
    for word in &words {
        for quote in [None, Some('"')] {
            assert_eq!(
                super::word_token(word.as_str().into(), quote),
                Token::make_word(word, quote),
                "{word:?} {quote:?}"
            );
        }
    }
}

#[test]
fn plain_statements_take_the_quick_path() {
    for sql in [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
        "UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 48213;",
        "SELECT o.id, u.country FROM orders o JOIN users u ON u.id = o.user_id WHERE o.status = 'paid' ORDER BY o.id DESC LIMIT 50",
        "SELECT \"orders\".\"id\" FROM \"orders\" WHERE \"orders\".\"id\" >= 10",
        "SELECT \"orders\".\"id\" FROM \"orders\" WHERE \"orders\".\"id\" = $1 LIMIT $2",
        "SELECT E'a\\n' || $$b$$ /* c */ FROM t -- d\n WHERE x::text != 'it''s' AND y[1] = $q$z$q$",
    ] {
        let tokens = quick(sql).expect("quick");
        assert_eq!(encode(&tokens, 0), encode(&full(sql).expect("full"), 0), "{sql}");
        let plain = plain_tokens(sql).expect("plain");
        let expected = Tokenizer::new(&PostgreSqlDialect {}, sql)
            .tokenize_with_location()
            .expect("tokenizes");
        let spans = |t: &[sqlparser::tokenizer::TokenWithSpan]| {
            t.iter().map(|t| (t.token.clone(), t.span)).collect::<Vec<_>>()
        };
        assert_eq!(spans(&plain), spans(&expected), "{sql}");
    }
}

fn same(a: &str, b: &str) -> bool {
    shape(a).expect("shape") == shape(b).expect("shape")
}

#[test]
fn operands_of_comparisons_are_normalized() {
    assert!(same(
        "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
        "SELECT  abalance\nFROM pgbench_accounts -- c\n WHERE aid = 7;"
    ));
    assert!(same(
        "UPDATE t SET a = a + -1234 WHERE id = 1",
        "UPDATE t SET a = a + -5 WHERE id = 99"
    ));
    assert!(same(
        "SELECT id FROM o WHERE s = 'paid' AND n > 3 ORDER BY id",
        "SELECT id FROM o WHERE s = 'open' AND n > 10 ORDER BY id"
    ));
}

#[test]
fn literals_that_can_matter_stay() {
    let differ = |a: &str, b: &str| assert!(!same(a, b), "{a} / {b}");
    differ("SELECT a FROM t ORDER BY 1", "SELECT a FROM t ORDER BY 2");
    differ("SELECT a FROM t LIMIT 1", "SELECT a FROM t LIMIT 2");
    differ(
        "SELECT 1 WHERE 1 = 'users'::regclass",
        "SELECT 1 WHERE 1 = 'orders'::regclass",
    );
    differ("SELECT nextval('a')", "SELECT nextval('b')");
    differ("SELECT current_setting('a')", "SELECT current_setting('b')");
    differ(
        "SELECT set_config('search_path', 'x', false) WHERE 1 = 1",
        "SELECT set_config('search_path', 'x', false) WHERE 1 = 2",
    );
    differ(
        "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'search_path'",
        "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'work_mem'",
    );
    differ(
        "SELECT 1 FROM \"PG_SETTINGS\" WHERE name = 'a'",
        "SELECT 1 FROM \"PG_SETTINGS\" WHERE name = 'b'",
    );
    differ("SET work_mem = 1", "SET work_mem = 2");
    differ(
        "EXPLAIN (ANALYZE = 'off') SELECT 1",
        "EXPLAIN (ANALYZE = 'on') SELECT 1",
    );
    differ(
        "COPY t TO STDOUT (DELIMITER ',')",
        "COPY t TO STDOUT (DELIMITER ';')",
    );
    differ(
        "SELECT a = 'x' COLLATE \"C\"",
        "SELECT a = 'y' COLLATE \"C\"",
    );
    differ(
        "SELECT a FROM t WHERE a = \"b\"",
        "SELECT a FROM t WHERE a = \"c\"",
    );
    differ(
        "SELECT a FROM t WHERE a = E'x'",
        "SELECT a FROM t WHERE a = E'y'",
    );
    differ("SELECT 'a' = 'b'", "SELECT 'c' = 'b'");
    differ("SELECT a FROM t WHERE a = 1", "select a from t where a = 1");
}

#[test]
fn token_boundaries_are_kept() {
    assert!(!same("SELECT \"a b\"", "SELECT a b"));
    assert!(!same("SELECT ab", "SELECT a b"));
    assert!(!same("SELECT 'a''b'", "SELECT 'a', 'b'"));
    assert!(!same("SELECT 1 = 1", "SELECT 1 = '1'"));
    assert!(shape(&"x".repeat(super::MAX_SHAPE_INPUT + 1)).is_none());
}
