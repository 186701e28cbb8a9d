//! The classified fixture for guarded-session tests: database `guarddb`
//! with personal data whose values are distinctive enough to be searched
//! for in everything a client receives, a guarded role and a production
//! role with the same database privileges (copyguard must not rely on
//! GRANTs), and the policies the tests run under.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::support::*;

/// The guarded role.
pub const DEV: &str = "guard_dev";
/// The production role.
pub const PROD: &str = "guard_prod";
/// The fixture database.
pub const DB: &str = "guarddb";
/// Rows in `users`.
pub const USERS: usize = 60;

/// Classification shared by the test policies.
const CLASSIFICATION: &str = r#"
[columns]
"public.users.email" = "email"
"public.users.full_name" = "person_name"
"public.users.birth_date" = "date_of_birth"
"public.users.phone" = "phone"
"public.users.ssn" = "national_id"
"public.events.detail" = "free_text"
"public.people.name" = "person_name"

[forbidden]
"public.identity_documents" = "identity documents never leave production"

[notifications]
pass_channels = ["cache_invalidate"]
"#;

/// Guarded role may not receive any classified value (the leak suite).
pub fn locked_policy() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        policy_dir(&format!(
            r#"
[classes.production]
mode = "production"
roles = ["{PROD}", "scram_user", "md5_user", "clear_user", "trust_user"]

[classes.locked]
mode = "guarded"
roles = ["{DEV}"]
max_rows_per_statement = 0
max_bytes_per_statement = 0
max_rows_per_session = 0
max_rows_per_window = 0
window = "1h"
copy_to = "block"
allow_writes = true
allow_ddl = false
classified_predicates = true
{CLASSIFICATION}"#
        ))
    })
    .clone()
}

/// [`locked_policy`] with `classified_predicates = false`: classified
/// columns may not decide which or how many rows come back either.
pub fn no_predicates_policy() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let locked =
            std::fs::read_to_string(locked_policy().join("policy.toml")).expect("locked policy");
        policy_dir(&locked.replace(
            "classified_predicates = true",
            "classified_predicates = false",
        ))
    })
    .clone()
}

/// Guarded role may read a few classified rows (the limits suite).
pub fn limited_policy(rows: u64, session: u64, window: u64) -> PathBuf {
    policy_dir(&format!(
        r#"
[classes.production]
mode = "production"
roles = ["{PROD}"]

[classes.developers]
mode = "guarded"
roles = ["{DEV}"]
max_rows_per_statement = {rows}
max_bytes_per_statement = "1MiB"
max_rows_per_session = {session}
max_rows_per_window = {window}
window = "1h"
copy_to = "block"
allow_writes = true
allow_ddl = true
classified_predicates = true
block_categories = ["national_id"]
{CLASSIFICATION}"#
    ))
}

/// The `[columns]` entries of the personal data in `users`.
pub const USERS_PERSONAL_COLUMNS: &str = r#""public.users.email" = "email"
"public.users.full_name" = "person_name"
"public.users.birth_date" = "date_of_birth"
"public.users.phone" = "phone"
"public.users.ssn" = "national_id"
"#;

/// The categories of personal data the fixtures classify.
pub const PERSONAL_CATEGORIES: &[&str] = &[
    "email",
    "person_name",
    "date_of_birth",
    "phone",
    "national_id",
    "free_text",
];

/// A policy under which the guarded role gets the listed categories
/// pseudonymized (`copy_to = "pseudonymize"`), with at most `max_rows`
/// classified rows per statement; `columns` holds the `[columns]` entries
/// and any section after them (such as `[forbidden]`).
pub fn pseudonymizing_policy_with(max_rows: u64, pseudonymize: &[&str], columns: &str) -> PathBuf {
    testers_policy(max_rows, pseudonymize, "", columns)
}

/// [`pseudonymizing_policy_with`] for a class that also gets values
/// computed from those columns (`derived = "pseudonymize"`).
pub fn derived_pseudonymizing_policy(
    max_rows: u64,
    pseudonymize: &[&str],
    columns: &str,
) -> PathBuf {
    testers_policy(
        max_rows,
        pseudonymize,
        "derived = \"pseudonymize\"\n",
        columns,
    )
}

/// The testers' policy, with `class_extra` lines added to their class.
fn testers_policy(
    max_rows: u64,
    pseudonymize: &[&str],
    class_extra: &str,
    columns: &str,
) -> PathBuf {
    policy_dir(&format!(
        r#"
[classes.production]
mode = "production"
roles = ["{PROD}"]

[classes.testers]
mode = "guarded"
roles = ["{DEV}"]
max_rows_per_statement = {max_rows}
max_bytes_per_statement = "64MiB"
max_rows_per_session = 1000000
max_rows_per_window = 1000000
window = "1h"
copy_to = "pseudonymize"
classified_predicates = true
pseudonymize = {pseudonymize:?}
{class_extra}
[columns]
{columns}"#
    ))
}

/// Every classified value of the fixture, for leak searches.
pub fn secrets() -> &'static [String] {
    static SECRETS: OnceLock<Vec<String>> = OnceLock::new();
    SECRETS.get_or_init(|| {
        fixture();
        let mut out = Vec::new();
        for i in 1..=USERS {
            out.push(email(i));
            out.push(name(i));
            out.push(phone(i));
            out.push(ssn(i));
            out.push(doc(i));
            out.push(format!("detail-zq-{i:04}-secret"));
            out.push(format!("Person Qzx{i:04}"));
        }
        out
    })
}

fn email(i: usize) -> String {
    format!("zq{i:04}.leak@victim.example")
}
fn name(i: usize) -> String {
    format!("Quenby Zorblatt{i:04}")
}
fn phone(i: usize) -> String {
    format!("+99-555-{i:07}")
}
fn ssn(i: usize) -> String {
    format!("SSN-{i:06}-QZ")
}
fn doc(i: usize) -> String {
    format!("DOC{i:08}ZQ")
}

/// Creates the fixture once per test process.
pub fn fixture() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let db = &cluster().db;
        db.psql(
            "postgres",
            &format!(
                "CREATE ROLE {DEV} LOGIN PASSWORD '{PASSWORD}';
                 CREATE ROLE {PROD} LOGIN PASSWORD '{PASSWORD}';
                 CREATE DATABASE {DB};"
            ),
        )
        .expect("fixture roles");
        let mut sql = String::from(
            "CREATE TABLE users (id int PRIMARY KEY, email text UNIQUE NOT NULL, full_name text,
                 birth_date date, phone text, ssn text, country text, score int);
             CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users, amount_cents int, status text);
             CREATE TABLE identity_documents (id int PRIMARY KEY, user_id int REFERENCES users, doc_number text);
             CREATE VIEW v_contacts AS SELECT u.id, u.email AS contact, u.country FROM users u;
             CREATE VIEW v_countries AS SELECT id, country FROM users;
             CREATE TABLE events (id int, at date NOT NULL, detail text) PARTITION BY RANGE (at);
             CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
             CREATE TABLE people (id int, name text);
             CREATE TABLE staff (badge int) INHERITS (people);
             CREATE SCHEMA app;
             CREATE TABLE app.users (id int, email text);
             INSERT INTO app.users VALUES (1, 'app-visible@example.org');
             CREATE TABLE scratch (id serial, note text);
             CREATE FUNCTION public.leak_email(int) RETURNS text LANGUAGE sql AS 'SELECT email FROM users WHERE id = $1';
             CREATE FUNCTION public.leak_all() RETURNS SETOF text LANGUAGE plpgsql AS
               $$ BEGIN RETURN QUERY EXECUTE 'SELECT email FROM users'; END $$;
            ",
        );
        for i in 1..=USERS {
            sql.push_str(&format!(
                "INSERT INTO users VALUES ({i}, '{}', '{}', date '1960-01-01' + {i} * 97, '{}', '{}', '{}', {});
                 INSERT INTO orders (user_id, amount_cents, status) VALUES ({i}, {}, 'paid'), ({i}, {}, 'shipped');
                 INSERT INTO identity_documents VALUES ({i}, {i}, '{}');
                 INSERT INTO events VALUES ({i}, date '2024-01-01' + {i}, 'detail-zq-{i:04}-secret');
                 INSERT INTO staff VALUES ({i}, 'Person Qzx{i:04}', {i});\n",
                email(i),
                name(i),
                phone(i),
                ssn(i),
                ["FR", "DE", "ES"][i % 3],
                i * 7 % 100,
                1000 + i,
                2000 + i,
                doc(i),
            ));
        }
        sql.push_str(&format!(
            "ANALYZE;
             GRANT USAGE ON SCHEMA app TO {DEV}, {PROD};
             GRANT ALL ON ALL TABLES IN SCHEMA public, app TO {DEV}, {PROD};
             GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {DEV}, {PROD};
             GRANT CREATE ON SCHEMA public TO {DEV}, {PROD};"
        ));
        db.psql(DB, &sql).expect("fixture data");
    });
}

/// A proxy in front of the shared cluster under `policy`.
pub fn guarded_proxy(policy: PathBuf) -> TestProxy {
    fixture();
    let mut args = proxy_args();
    args.policy = Some(policy.display().to_string());
    TestProxy::start(args)
}

/// A session of `user` on the fixture database through `port`.
pub async fn connect_to(port: u16, user: &str) -> tokio_postgres::Client {
    connect(port, user, DB).await
}
