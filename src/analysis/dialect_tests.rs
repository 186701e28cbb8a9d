//! [`super::Postgres`] parses exactly as sqlparser's PostgreSQL dialect
//! does: the same statements, spans included, and the same errors
//! ([`check_parse`], which the `sql` fuzz target also runs).

use proptest::prelude::*;
use sqlparser::parser::Parser;

use super::Postgres;
use crate::analysis::shape::fuzz::check_parse;

const PSQL_DESCRIBE: &str = include_str!("tests/psql15_describe.sql");
const PG_DUMP: &str = include_str!("tests/pgdump15_statements.sql");

/// Stack for parsing in tests: unoptimized sqlparser frames are large
/// (see `input::parse_tokens`).
const STACK: usize = 64 * 1024 * 1024;

/// [`check_parse`] on a thread with a large stack.
fn checked(sql: &str) -> Result<(), String> {
    let sql = sql.to_owned();
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || check_parse(&sql))
        .expect("spawn")
        .join()
        .expect("no panic")
}

fn assert_same(sql: &str) {
    if let Err(e) = checked(sql) {
        panic!("{e}");
    }
}

/// Expressions around a leading word: the typed strings the shortcut must
/// leave to sqlparser, and the column references it answers.
const EXPRESSIONS: &[&str] = &[
    "foo 'bar'",
    "foo.bar 'x'",
    "s.t.u 'x'",
    "foo E'x'",
    "foo U&'x'",
    "foo $$x$$",
    "foo N'x'",
    "foo B'01'",
    "foo X'1F'",
    "xml '<a/>'",
    "XML '<a/>'",
    "\"xml\" '<a/>'",
    "\"Mytype\" 'x'",
    "foo[] '{1}'",
    "foo[3] 1",
    "foo ARRAY '{1}'",
    "foo(3) 'x'",
    "foo(3, 2) 'x'",
    "foo 1",
    "foo $1",
    "foo :x",
    "foo NULL",
    "foo TRUE",
    "date '2020-01-01'",
    "interval '1 day'",
    "bool 'true'",
    "t.*",
    "t.1",
    "a.b.c",
    "\"Q\".\"R\"",
    "count(x)",
    "s.f(x)",
    "a::int",
    "a::text[]",
    "a -> 'k'",
    "a ->> 'k'",
    "a #> '{k}'",
    "a @> b",
    "a = $1",
    "a <> b",
    "a != b",
    "a || b",
    "a - 1",
    "a * b / c % d",
    "a ^ 2",
    "a[1]",
    "a[1:2]",
    "a COLLATE \"C\"",
    "a IS NULL",
    "a NOTNULL",
    "a BETWEEN 1 AND 2",
    "a IN (b, c)",
    "a LIKE 'x%'",
    "a ~ 'x'",
    "a ZEROFILL",
    "a b",
    "a AS b",
    "a, b",
    "-a",
    "(a)",
    "(a, b)",
    "CASE a WHEN b THEN c ELSE d END",
    "f(a => b)",
    "f(a := b)",
    "f(VARIADIC a)",
    "array_agg(a ORDER BY b)",
    "a FILTER (WHERE b)",
    "current_user",
    "user",
    "_latin1 'x'",
    "a OVER (PARTITION BY b ORDER BY c)",
    "EXISTS (SELECT a FROM t)",
    "a = ANY (b)",
    "a.b = c.d AND e < f",
    "count(*)",
    "count(DISTINCT a)",
    "f()",
    "f() 'x'",
    "f() E'x'",
    "f(a) 'x'",
    "f(a, 1, 'b') 'x'",
    "f(a)[1]",
    "f(3)[] '{1}'",
    "f(a) ARRAY",
    "f(a.b)",
    "s.f(a)",
    "s.f() 'x'",
    "f(a, b)::int",
    "f(g(a), h())",
    "row_number() OVER (ORDER BY a)",
    "f(a) FILTER (WHERE b)",
    "f(a => 1)",
    "f(a ORDER BY b)",
    "f(",
    "f(a",
    "f(a,",
    "f(a b",
    "xml(a)",
    "1",
    "1.5e3",
    "'x'",
    "'a' 'b'",
    "'a'\n'b'",
    "E'x'",
    "$$x$$",
    "$1",
    "N'x'",
    "X'1F'",
    "1 'x'",
    "'x'::date",
];

/// Statements each expression is tried in.
const CONTEXTS: &[&str] = &[
    "SELECT {} FROM t",
    "SELECT x FROM t WHERE {}",
    "SELECT x FROM t ORDER BY {}",
    "SELECT x FROM t GROUP BY {} HAVING {}",
    "SELECT f({}) FROM t",
    "SELECT x FROM t JOIN u ON {}",
    "INSERT INTO t VALUES ({}) RETURNING {}",
    "UPDATE t SET x = {} WHERE {}",
    "CREATE TABLE t (x int DEFAULT {})",
    "SELECT ARRAY[{}]",
    "SELECT x FROM t LIMIT {}",
];

#[test]
fn typed_strings_and_column_references_parse_as_postgresql() {
    for expression in EXPRESSIONS {
        for context in CONTEXTS {
            assert_same(&context.replace("{}", expression));
        }
    }
}

/// Places a keyword is tried in: as a name, a call, and the start of
/// every multi-word type and typed string sqlparser knows.
const KEYWORD_PLACES: &[&str] = &[
    "SELECT {} FROM t",
    "SELECT {}, {}(a), {}(*), {}(), {}.b FROM t WHERE {} = 1",
    "SELECT {}(a) OVER (ORDER BY b), {} b, {} AS b FROM t",
    "SELECT {} 'x'",
    "SELECT {}.b 'x'",
    "SELECT {}() 'x'",
    "SELECT {}(a) 'x'",
    "SELECT {}(3) 'x'",
    "SELECT {}(3, 2) 'x'",
    "SELECT {}[] 'x'",
    "SELECT {} ARRAY 'x'",
    "SELECT {} PRECISION 'x'",
    "SELECT {} VARYING 'x'",
    "SELECT {} VARYING(3) 'x'",
    "SELECT {} WITH TIME ZONE 'x'",
    "SELECT {} WITHOUT TIME ZONE 'x'",
    "SELECT {}(3) WITH TIME ZONE 'x'",
    "SELECT {} UNSIGNED 'x'",
    "SELECT {} LARGE OBJECT 'x'",
    "SELECT {} CHARACTER VARYING 'x'",
    "SELECT {} YEAR TO MONTH 'x'",
    "SELECT {} '1' DAY",
    "SELECT {} a, b",
    "SELECT {} (a)",
    "SELECT {} = 1",
    "SELECT {} $1",
    "SELECT {} 1",
    "SELECT {} TRUE",
];

#[test]
fn every_keyword_parses_as_postgresql() {
    let failures = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(|| {
            let mut failures = Vec::new();
            for keyword in sqlparser::keywords::ALL_KEYWORDS {
                for place in KEYWORD_PLACES {
                    failures.extend(check_parse(&place.replace("{}", keyword)).err());
                }
            }
            failures
        })
        .expect("spawn")
        .join()
        .expect("no panic");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn what_clients_send_parses_as_postgresql() {
    for sql in PSQL_DESCRIBE
        .split("-- next")
        .chain(PG_DUMP.split("-- next"))
    {
        assert_same(sql);
    }
}

#[test]
fn failing_nested_calls_parse_as_postgresql() {
    // Each level's call fails; sqlparser's memo of failed positions keeps
    // this linear, and the shortcut must not defeat it.
    for depth in [1, 2, 10, 40] {
        assert_same(&format!("SELECT {}x", "f(".repeat(depth)));
        assert_same(&format!("SELECT {}x,", "f(a, g(".repeat(depth)));
        assert_same(&format!("SELECT {}x)", "f(".repeat(depth)));
    }
}

#[test]
fn deep_nesting_is_still_refused() {
    for depth in [60, 200] {
        let sql = format!("SELECT {}a{}", "(".repeat(depth), ")".repeat(depth));
        let refused = std::thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || Parser::parse_sql(&Postgres::default(), &sql).is_err())
            .expect("spawn")
            .join()
            .expect("no panic");
        assert!(refused, "depth {depth}");
    }
}

/// Words, literals and punctuation that start, end and join expressions.
const PIECES: &[&str] = &[
    "a", "b.c", "\"Q\"", "xml", "date", "foo", "'x'", "E'x'", "$$x$$", "1", "$1", ":n", "NULL",
    "ARRAY", "AS", "AND", "FROM", "WHERE", "(", ")", "[", "]", ".", ",", "*", "=", "<", "-", "::",
    "||", "->", "@>", "=>", ";", "int", "text[]", "COLLATE", "f(", "count(*)", "g()", "1.5",
];

fn texts() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 1..20)
        .prop_map(|pieces| format!("SELECT {}", pieces.join(" ")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]
    #[test]
    fn any_text_parses_as_postgresql(sql in texts()) {
        prop_assert_eq!(checked(&sql), Ok(()));
    }
}
