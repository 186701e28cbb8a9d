//! Long literals are cut as they are tokenized: the facts are those of
//! the whole text (but for the cut literal itself), and what cannot be
//! decided within bounds is refused as too large.

use super::*;
use crate::analysis::input::KEEP_WHOLE;
use crate::analysis::{CUT_MARK, LONG_TOKEN, MAX_TOKENS};

const LONG: usize = 3 * LONG_TOKEN + 7;

/// Analyzes `sql` with every token kept whole.
fn run_whole(sql: &str) -> Result<Facts, AnalysisError> {
    KEEP_WHOLE.set(true);
    let whole = run(sql);
    KEEP_WHOLE.set(false);
    whole
}

/// `template` with `@` replaced by a long run of `x`: the facts (or the
/// error) of the cut analysis are those of the whole one, the long run
/// read as its cut form.
#[track_caller]
fn same_as_whole(template: &str) {
    let long = "x".repeat(LONG);
    let sql = template.replace('@', &long);
    let whole = format!("{:?}", run_whole(&sql));
    let cut = format!("{:?}", run(&sql));
    let kept = "x".repeat(LONG_TOKEN);
    let as_literal = format!("{kept}{}", CUT_MARK.escape_debug());
    let expected = whole.replace(&long, &as_literal);
    let expected_word = whole.replace(&long, &kept);
    assert!(
        cut == expected || cut == expected_word,
        "{template}:\n whole {whole:.300}\n cut   {cut:.300}"
    );
}

#[test]
fn long_literals_give_the_facts_of_the_whole_text() {
    for template in [
        "SELECT length('@')",
        "SELECT email FROM users WHERE email = '@' OR phone = E'@'",
        "SELECT set_config('@', 'v', false)",
        "SELECT set_config('app.x', '@', false)",
        "SELECT set_config('search_path', '@', false)",
        "SELECT current_setting('@')",
        "SELECT '@'::regclass",
        "SELECT nextval('@')",
        "SELECT $$@$$, $q$@$q$, U&'@', X'@', N'@'",
        "SELECT 1 /* @ */ -- @",
        "SELECT \"@\" FROM users",
        "SELECT email FROM @",
        "EXPLAIN (ANALYZE '@') SELECT email FROM users",
        "INSERT INTO orders (status) VALUES ('@') RETURNING id",
        "COPY (SELECT '@' FROM users) TO STDOUT",
        "COPY users TO STDOUT WITH (DELIMITER ',', QUOTE '\"')",
        "SET application_name = '@'",
        "PREPARE p AS SELECT '@'; EXECUTE p",
        "SELECT '@' FROM v_users",
    ] {
        same_as_whole(template);
    }
}

#[test]
fn what_would_read_a_cut_literal_is_too_large() {
    let long = "x".repeat(LONG);
    for sql in [
        format!("COPY users TO STDOUT WITH (NULL '{long}')"),
        format!("COPY users TO STDOUT WITH (ENCODING '{long}')"),
        format!("COPY users TO STDOUT NULL '{long}'"),
        format!("SELECT 1{}", "0".repeat(LONG)),
    ] {
        assert!(
            matches!(run(&sql), Err(AnalysisError::TooLarge(_))),
            "{sql:.80}: {:?}",
            run(&sql)
        );
    }
}

#[test]
fn too_many_tokens_are_refused_before_they_are_all_read() {
    let sql = format!("SELECT {}1", "1,".repeat(MAX_TOKENS / 2 + 1));
    assert!(matches!(run(&sql), Err(AnalysisError::TooLarge(_))));
    let fits = format!("SELECT {}1", "1,".repeat(1000));
    assert!(run(&fits).is_ok());
}
