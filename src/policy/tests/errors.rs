//! Errors and warnings: each names file, line and dotted key.

use super::*;

#[test]
fn unknown_key() {
    assert_issue(
        "[classes.dev]\nmode = \"guarded\"\nmax_row_per_statement = 3\n",
        3,
        "classes.dev.max_row_per_statement",
        "unknown field",
    );
    assert_issue(
        "[column]\n\"a.b.c\" = \"email\"\n",
        1,
        "column",
        "unknown field",
    );
}

#[test]
fn bad_size_and_duration() {
    let text = "[classes.dev]\nmode = \"guarded\"\nmax_rows_per_statement = 1\nmax_bytes_per_statement = \"64 parsecs\"\nmax_rows_per_session = 1\nmax_rows_per_window = 1\nwindow = \"soon\"\n";
    assert_issue(text, 4, "classes.dev.max_bytes_per_statement", "parsecs");
    assert_issue(text, 7, "classes.dev.window", "duration");
}

#[test]
fn bad_regex() {
    assert_issue(
        "[classes.dev]\nmode = \"guarded\"\npatterns = [\"^dev_(\"]\n",
        3,
        "classes.dev.patterns",
        "invalid regular expression",
    );
}

#[test]
fn bad_category_and_names() {
    assert_issue(
        "[columns]\n\"public.users.email\" = \"E-mail\"\n",
        2,
        "columns.\"public.users.email\"",
        "not a category name",
    );
    assert_issue(
        "[columns]\n\"public.users\" = \"email\"\n",
        2,
        "columns.\"public.users\"",
        "schema.table.column",
    );
    assert_issue(
        "[forbidden]\n\"public.x\" = \"  \"\n",
        2,
        "forbidden.\"public.x\"",
        "reason",
    );
    assert_issue(
        "[classes.prod]\nmode = \"production\"\nroles = [\"app-prod\"]\n",
        3,
        "classes.prod.roles",
        "double-quote",
    );
    assert_issue(
        "[classes.dev]\nmode = \"guarded\"\nblock_categories = [\"Secret\"]\n",
        3,
        "classes.dev.block_categories",
        "not a category name",
    );
}

#[test]
fn duplicates_across_files_name_both_files() {
    let dir = write_dir(&[
        (
            "a.toml",
            "[classes.dev]\nmode = \"guarded\"\n\n[columns]\n\"public.users.email\" = \"email\"\n",
        ),
        (
            "b.toml",
            "\n[classes.dev]\nmode = \"guarded\"\n[columns]\n\"public.Users.email\" = \"email\"\n",
        ),
    ]);
    let err = Policy::load_dir(dir.path()).unwrap_err();
    let text = err.to_string();
    let class = err
        .issues
        .iter()
        .find(|i| i.key == "classes.dev")
        .expect(&text);
    assert!(
        class.file.ends_with("b.toml") && class.line == Some(2),
        "{text}"
    );
    assert!(class.message.contains("a.toml:1"), "{text}");
    let column = err
        .issues
        .iter()
        .find(|i| i.key.starts_with("columns."))
        .expect(&text);
    assert!(
        column.file.ends_with("b.toml") && column.message.contains("a.toml:5"),
        "{text}"
    );

    let dir = write_dir(&[
        ("a.toml", "[functions]\nallow = [\"f\"]\n"),
        ("b.toml", "[functions]\nallow = [\"g\"]\n"),
    ]);
    let err = Policy::load_dir(dir.path()).unwrap_err();
    assert!(
        err.issues[0].key == "functions.allow" && err.issues[0].message.contains("a.toml:2"),
        "{err}"
    );
}

#[test]
fn default_class_must_be_guarded_without_roles() {
    assert_issue(
        "[classes.default]\nmode = \"production\"\n",
        2,
        "classes.default.mode",
        "always guarded",
    );
    assert_issue(
        "[classes.default]\nroles = [\"x\"]\n",
        2,
        "classes.default.roles",
        "no roles",
    );
    let p = Policy::from_toml_str("[classes.default]\nmax_rows_per_statement = 0\n").unwrap();
    assert_eq!(p.classify_role("anyone").mode, ClassMode::Guarded);
}

#[test]
fn class_errors() {
    assert_issue(
        "\n[classes.dev]\nroles = [\"d\"]\n",
        2,
        "classes.dev.mode",
        "missing",
    );
    assert_issue(
        "[classes.dev]\nmode = \"maybe\"\n",
        2,
        "classes.dev.mode",
        "\"production\" or \"guarded\"",
    );
    assert_issue(
        "[classes.p]\nmode = \"production\"\nallow_writes = true\n",
        3,
        "classes.p.allow_writes",
        "production",
    );
    assert_issue(
        "[classes.a]\nmode = \"guarded\"\nroles = [\"bob\"]\n[classes.b]\nmode = \"guarded\"\nroles = [\"Bob\"]\n",
        6,
        "classes.b.roles",
        "also listed in class \"a\"",
    );
    assert_issue(
        "[classes.dev]\nmode = \"guarded\"\nmax_rows_per_statement = 5\nmax_bytes_per_statement = \"1KiB\"\nmax_rows_per_session = 0\nmax_rows_per_window = 9\n",
        5,
        "classes.dev.max_rows_per_session",
        "above 0",
    );
    assert_issue(
        "[classes.dev]\nmode = \"guarded\"\nmax_rows_per_statement = 5\nmax_rows_per_session = 9\nmax_rows_per_window = 9\n",
        1,
        "classes.dev.max_bytes_per_statement",
        "missing",
    );
    assert_issue(
        "[classes.\"a b\"]\nmode = \"guarded\"\n",
        1,
        "classes.\"a b\"",
        "class names",
    );
    assert_issue(
        "[classes.dev]\nmode = \"guarded\"\ncopy_to = \"everything\"\n",
        3,
        "classes.dev.copy_to",
        "block",
    );
    assert_issue(
        "[functions]\nallow = [\"lower\"]\ndeny = [\"pg_catalog.lower\"]\n",
        3,
        "functions.deny",
        "also in allow",
    );
}

#[test]
fn every_issue_is_reported() {
    let all = issues(
        "[classes.a]\nmode = \"guarded\"\nwindow = \"x\"\n[classes.b]\nmode = \"guarded\"\npatterns = [\"(\"]\n[columns]\n\"a.b.c\" = \"Bad\"\n",
    );
    assert_eq!(
        all.len(),
        3,
        "{}",
        PolicyError {
            issues: all.clone()
        }
    );
    let text = PolicyError { issues: all }.to_string();
    assert!(text.lines().all(|l| l.starts_with("<policy>:")), "{text}");
}

#[test]
fn warnings_name_file_and_line() {
    let w = warnings(&[(
        "p.toml",
        "[classes.prod]\nmode = \"production\"\nroles = [\"App\"]\npatterns = [\"svc\"]\n[columns]\n\"public.t.c\" = \"passport\"\n",
    )]);
    let find = |needle: &str| {
        w.iter()
            .find(|w| w.message.contains(needle))
            .unwrap_or_else(|| panic!("no warning {needle:?} in {w:?}"))
    };
    assert_eq!(find("folded").line, Some(3));
    assert_eq!(find("not anchored").line, Some(4));
    let cat = find("unknown category");
    assert_eq!(
        (cat.line, cat.key.as_str()),
        (Some(6), "columns.\"public.t.c\"")
    );
    assert!(cat.file.as_ref().unwrap().ends_with("p.toml"));

    let w = warnings(&[("p.toml", "[classes.dev]\nmode = \"guarded\"\n")]);
    assert!(
        w.iter().any(|w| w.message.contains("no class has mode")),
        "{w:?}"
    );
}

/// Issue 17: `pseudonymize = ["emial"]` loaded with a mere warning, so
/// `serve` started with a class that pseudonymized nothing it meant to. A
/// category neither known nor given to a column or table is an error; one
/// the classification declares is accepted.
#[test]
fn pseudonymize_names_a_known_or_declared_category() {
    let class = "[classes.dev]\nmode = \"guarded\"\npseudonymize = [\"emial\"]\n";
    assert_issue(
        class,
        3,
        "classes.dev.pseudonymize",
        "no [columns] or [tables] entry declares it",
    );
    let declared = format!("{class}[columns]\n\"public.users.email\" = \"emial\"\n");
    assert!(Policy::from_toml_str(&declared).is_ok());
    let known = "[classes.dev]\nmode = \"guarded\"\npseudonymize = [\"email\", \"*\"]\n";
    assert!(Policy::from_toml_str(known).is_ok());
}
