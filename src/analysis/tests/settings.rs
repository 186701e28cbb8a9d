//! `set_config` calls: recorded as settings changes with their constant
//! name and the lineage of their arguments, wherever they are written.

use super::*;
use crate::analysis::SettingChange;

const EMAIL: ColumnId = ColumnId {
    rel: USERS,
    attnum: 2,
};
const NAME: ColumnId = ColumnId {
    rel: USERS,
    attnum: 3,
};

fn change(name: Option<&str>, lineage: &[ColumnId]) -> SettingChange {
    SettingChange {
        name: name.map(str::to_owned),
        lineage: set(lineage),
    }
}

#[test]
fn constant_names_are_recorded_lower_case() {
    for (sql, name) in [
        ("SELECT set_config('jit', 'off', false)", "jit"),
        (
            "SELECT pg_catalog.set_config('search_path', '', false)",
            "search_path",
        ),
        (
            "SELECT set_config('Search_Path'::text, 'x', true)",
            "search_path",
        ),
        (
            "SELECT set_config($$myapp.Tenant$$, $1, false)",
            "myapp.tenant",
        ),
        ("SELECT * FROM set_config('jit', 'off', false)", "jit"),
    ] {
        let f = one(sql);
        assert_eq!(f.settings, vec![change(Some(name), &[])], "{sql}");
        assert!(function_names(&f).contains(&"set_config"), "{sql}");
    }
    let asyncpg =
        one("SELECT current_setting('jit') AS cur, set_config('jit', 'off', false) AS new");
    assert_eq!(asyncpg.settings, vec![change(Some("jit"), &[])]);
    assert_eq!(out_names(&asyncpg), vec!["cur", "new"]);
}

#[test]
fn computed_names_are_unknown() {
    for sql in [
        "SELECT set_config($1, 'x', false)",
        "SELECT set_config('ro' || 'le', 'x', false)",
        "SELECT set_config(full_name, 'x', false) FROM users",
        "SELECT set_config((SELECT 'role'), 'x', false)",
        "SELECT set_config(E'role', 'x', false)",
    ] {
        let f = one(sql);
        assert_eq!(f.settings.len(), 1, "{sql}");
        assert_eq!(f.settings[0].name, None, "{sql}");
    }
}

#[test]
fn values_carry_their_lineage() {
    let f = one("SELECT set_config('myapp.x', email, false) FROM users");
    assert_eq!(f.settings, vec![change(Some("myapp.x"), &[EMAIL])]);
    let f = one("SELECT 1 FROM users WHERE set_config('myapp.x', lower(email), false) <> ''");
    assert_eq!(f.settings, vec![change(Some("myapp.x"), &[EMAIL])]);
    let f = one("SELECT set_config('myapp.x', (SELECT max(full_name) FROM users), false)");
    assert_eq!(f.settings, vec![change(Some("myapp.x"), &[NAME])]);
    let f = one("SELECT x FROM users, LATERAL set_config('myapp.x', email, false) AS x");
    assert_eq!(f.settings, vec![change(Some("myapp.x"), &[EMAIL])]);
}

#[test]
fn nested_calls_are_each_recorded() {
    let f = one("SELECT concat('jit', set_config('role', 'x', false))");
    assert_eq!(f.settings, vec![change(Some("role"), &[])]);
    let f = one("SELECT set_config('jit', set_config('role', 'x', false), false)");
    assert_eq!(
        f.settings,
        vec![change(Some("jit"), &[]), change(Some("role"), &[])]
    );
}

#[test]
fn search_path_changes_are_known() {
    assert!(one("SELECT set_config('search_path', 'x', false)").sets_search_path());
    assert!(one("SELECT set_config($1, 'x', false)").sets_search_path());
    assert!(one("SET search_path = x").sets_search_path());
    assert!(one("RESET ALL").sets_search_path());
    assert!(!one("SELECT set_config('jit', 'off', false)").sets_search_path());
    assert!(!one("SET jit = off").sets_search_path());
}
