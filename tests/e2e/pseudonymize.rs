//! Pseudonymization in flight, end to end: a guarded role whose class
//! pseudonymizes the fixture's personal data reads it through simple and
//! extended protocols (text and binary) and through COPY in text, CSV and
//! binary; no raw fixture value reaches it; the stand-ins are valid for
//! their types, deterministic (two sessions, two tables, a restart) and
//! keep keys joinable, so the copied data loads into a fresh database with
//! every primary key, unique constraint and foreign key holding.

use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::Client;

use crate::guard_fixture::*;
use crate::support::*;
use crate::tap::{find_leak, Tap};

/// The pseudonymizing policy: the fixture's classification, plus ids as
/// identifiers so keys are permuted and joins must survive.
fn pseudonymizing_policy() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        pseudonymizing_policy_with(
            10000,
            &[
                "email",
                "person_name",
                "date_of_birth",
                "phone",
                "identifier",
                "national_id",
            ],
            r#"
"public.users.id" = "identifier"
"public.users.email" = "email"
"public.users.full_name" = "person_name"
"public.users.birth_date" = "date_of_birth"
"public.users.phone" = "phone"
"public.users.ssn" = "national_id"
"public.orders.user_id" = "identifier"
"public.identity_documents.user_id" = "identifier"

[forbidden]
"public.identity_documents" = "identity documents never leave production"
"#,
        )
    })
    .clone()
}

/// A key file of its own for the test process.
fn key_file() -> PathBuf {
    static KEY: OnceLock<PathBuf> = OnceLock::new();
    KEY.get_or_init(|| {
        let base = cluster().db.data_dir();
        let path = base.parent().unwrap_or(&base).join("pseudonym.key");
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).expect("key file");
        path
    })
    .clone()
}

fn pseudonymizing_proxy() -> TestProxy {
    proxy_under(pseudonymizing_policy())
}

/// copyguard in front of the fixture under `policy`, with the test key.
fn proxy_under(policy: PathBuf) -> TestProxy {
    fixture();
    let mut args = proxy_args();
    args.policy = Some(policy.display().to_string());
    args.pseudonym_key_file = Some(key_file().display().to_string());
    TestProxy::start(args)
}

async fn text_rows(c: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    text_rows_of(
        c.simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}")),
    )
}

async fn copy_out(c: &Client, sql: &str) -> Vec<u8> {
    let stream = c
        .copy_out(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("{sql}: {e}")));
    }
    out
}

#[track_caller]
fn assert_refused_by(e: &tokio_postgres::Error, rule: &str) {
    let message = e.as_db_error().map(|d| d.message().to_owned());
    assert!(
        message.as_deref().is_some_and(|m| m.contains(rule)),
        "expected rule {rule}: {message:?}"
    );
}

const USERS_SQL: &str = "SELECT id, email, full_name, birth_date, phone, ssn, country FROM users ORDER BY country, score, email";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_pseudonymized_deterministically_in_text_and_binary() {
    let proxy = pseudonymizing_proxy();
    let tap = Tap::start(proxy.port());
    let dev = connect_to(tap.port, DEV).await;
    let direct = connect_to(cluster().db.port(), PROD).await;

    let raw = text_rows(&direct, USERS_SQL).await;
    let got = text_rows(&dev, USERS_SQL).await;
    assert_eq!(got.len(), USERS);
    let mut ids = std::collections::BTreeSet::new();
    let mut emails = std::collections::BTreeSet::new();
    let mut phones = std::collections::BTreeSet::new();
    for (g, r) in got.iter().zip(&raw) {
        for i in 0..6 {
            assert_ne!(g[i], r[i], "column {i} left as it was: {g:?}");
        }
        assert_eq!(g[6], r[6], "unclassified columns pass as they are");
        let id: i32 = g[0].as_deref().unwrap().parse().expect("an int4");
        assert!(id > 0, "positive ids stay positive");
        ids.insert(id);
        let email = g[1].as_deref().unwrap();
        assert!(email.ends_with("@example.invalid"), "{email}");
        emails.insert(email.to_owned());
        let born = g[3].as_deref().unwrap();
        assert!(
            born.len() == 10 && born.as_bytes()[4] == b'-',
            "a date: {born}"
        );
        let phone = g[4].as_deref().unwrap();
        let shape = |p: &str| {
            p.chars()
                .map(|c| if c.is_ascii_digit() { '9' } else { c })
                .collect::<String>()
        };
        assert!(phone.starts_with("+99-"), "country code kept: {phone}");
        assert_eq!(shape(phone), shape(r[4].as_deref().unwrap()), "same shape");
        phones.insert(phone.to_owned());
    }
    assert_eq!(ids.len(), USERS, "ids stay unique");
    assert_eq!(emails.len(), USERS, "emails stay unique");
    assert_eq!(phones.len(), USERS, "phones stay unique");

    // The extended protocol with binary results: tokio-postgres decodes
    // every value by its type.
    let rows = dev
        .query(
            "SELECT id, email, full_name, birth_date FROM users ORDER BY country, score, email",
            &[],
        )
        .await
        .expect("binary results");
    for (row, g) in rows.iter().zip(&got) {
        let id: i32 = row.get(0);
        let email: String = row.get(1);
        let _name: String = row.get(2);
        let _born: std::time::SystemTime = row
            .try_get::<_, chrono_free::Date>(3)
            .map(|d| d.0)
            .expect("a valid binary date");
        assert_eq!(Some(id.to_string()), g[0], "text and binary agree");
        assert_eq!(Some(email), g[1].clone());
    }

    // Same value, same stand-in: another session, and another table
    // (orders.user_id joins users.id).
    let again = connect_to(proxy.port(), DEV).await;
    assert_eq!(text_rows(&again, USERS_SQL).await, got, "another session");
    let order_users = text_rows(&again, "SELECT DISTINCT user_id FROM orders").await;
    assert_eq!(order_users.len(), USERS);
    for u in &order_users {
        let id: i32 = u[0].as_deref().unwrap().parse().unwrap();
        assert!(ids.contains(&id), "orders.user_id {id} has no users.id");
    }
    let joined = text_rows(
        &again,
        "SELECT count(*) FROM orders o JOIN users u ON u.id = o.user_id",
    )
    .await;
    assert_eq!(
        joined[0][0].as_deref(),
        Some("120"),
        "joins run on real keys"
    );

    // Derived values are refused (derived = "block"), never raw.
    let e = dev
        .simple_query("SELECT lower(email) FROM users")
        .await
        .expect_err("derived from a pseudonymized column");
    assert_refused_by(&e, "pseudonym.derived");

    drop(dev);
    drop(again);
    let received = tap.received();
    if let Some(leak) = find_leak(&received, secrets()) {
        panic!("LEAK: {leak}");
    }
    drop(proxy);

    // A restart with the same key gives the same stand-ins.
    let restarted = pseudonymizing_proxy();
    let dev = connect_to(restarted.port(), DEV).await;
    assert_eq!(text_rows(&dev, USERS_SQL).await, got, "after a restart");
}

/// A date decoded from the binary format without a date crate: days since
/// 2000-01-01 as a time.
mod chrono_free {
    use tokio_postgres::types::{FromSql, Type};

    pub struct Date(pub std::time::SystemTime);

    impl<'a> FromSql<'a> for Date {
        fn from_sql(
            _: &Type,
            raw: &'a [u8],
        ) -> Result<Date, Box<dyn std::error::Error + Sync + Send>> {
            let days = i32::from_be_bytes(raw.try_into()?);
            let epoch = std::time::UNIX_EPOCH + std::time::Duration::from_secs(946_684_800);
            let secs = i64::from(days) * 86_400;
            Ok(Date(if secs >= 0 {
                epoch + std::time::Duration::from_secs(secs as u64)
            } else {
                epoch - std::time::Duration::from_secs((-secs) as u64)
            }))
        }

        fn accepts(ty: &Type) -> bool {
            *ty == Type::DATE
        }
    }
}

/// A class with `derived = "pseudonymize"` gets a computed value as NULL.
/// The statement chooses what it computes, so any stand-in of it gave
/// something back (red-team rounds): `translate(phone, '0123456789',
/// 'abcdefghij')` came back with every raw digit as a letter (the phone
/// transform permutes digits only), `'00' || <one digit> || '1'` kept the
/// digit as a country code, a birth date scaled past the date shift's
/// window (`date '2000-01-01' + extract(doy from birth_date)::int * 400`)
/// gave the raw day back, and the deterministic email stand-in of
/// `substr(email, 1, 1)` equalled that of `substr(email, 1, 0) || 'B'`
/// exactly when the email starts with `B` (a codebook).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computed_values_carry_nothing_of_the_raw_value() {
    let proxy = proxy_under(derived_pseudonymizing_policy(
        100_000,
        &["email", "person_name", "date_of_birth", "phone"],
        USERS_PERSONAL_COLUMNS,
    ));
    let tap = Tap::start(proxy.port());
    let dev = connect_to(tap.port, DEV).await;
    let rows = text_rows(
        &dev,
        "SELECT translate(phone, '0123456789', 'abcdefghij'), \
                translate(phone, '0123456789', '!@#$%^&*()'), \
                '00' || substr(regexp_replace(phone, '\\D', '', 'g'), 7, 1) || '1', \
                date '2000-01-01' + extract(doy from birth_date)::int * 400, \
                make_date(extract(year from birth_date)::int, 7, 2), \
                birth_date + 0, \
                lower(email), upper(full_name), \
                substr(email, 1, 1), substr(email, 1, 0) || 'z' \
         FROM users WHERE birth_date IS NOT NULL AND phone IS NOT NULL ORDER BY id",
    )
    .await;
    assert!(rows.len() > 10, "{} rows", rows.len());
    for row in &rows {
        assert!(
            row.iter().all(Option::is_none),
            "computed values are NULL: {row:?}"
        );
    }
    let plain = text_rows(
        &dev,
        "SELECT email, phone FROM users WHERE phone IS NOT NULL ORDER BY id LIMIT 3",
    )
    .await;
    assert!(
        plain.iter().all(|r| r.iter().all(Option::is_some)),
        "the columns themselves get stand-ins: {plain:?}"
    );
    if let Some(leak) = find_leak(&tap.received(), secrets()) {
        panic!("raw value reached the client: {leak}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_in_every_format_load_into_a_fresh_database_with_constraints() {
    let proxy = pseudonymizing_proxy();
    let tap = Tap::start(proxy.port());
    let dev = connect_to(tap.port, DEV).await;
    let schema =
        "CREATE TABLE users (id int PRIMARY KEY, email text UNIQUE NOT NULL, full_name text,
                      birth_date date, phone text, ssn text, country text, score int);
                  CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users,
                      amount_cents int, status text);";
    for (format, options) in [
        ("text", "(FORMAT text)"),
        ("csv", "(FORMAT csv, HEADER, DELIMITER ';', NULL 'n/a')"),
        ("binary", "(FORMAT binary)"),
    ] {
        let users = copy_out(&dev, &format!("COPY users TO STDOUT {options}")).await;
        let orders = copy_out(
            &dev,
            &format!(
                "COPY (SELECT id, user_id, amount_cents, status FROM orders) TO STDOUT {options}"
            ),
        )
        .await;
        let db = fresh_database(&format!("pseudo_{format}"));
        let target = connect(cluster().db.port(), "scram_user", &db).await;
        target.batch_execute(schema).await.expect("schema");
        for (table, data) in [("users", users), ("orders", orders)] {
            let sink = target
                .copy_in::<_, Bytes>(&format!("COPY {table} FROM STDIN {options}"))
                .await
                .unwrap_or_else(|e| panic!("{format} {table}: {e}"));
            let mut sink = std::pin::pin!(sink);
            sink.send(Bytes::from(data))
                .await
                .unwrap_or_else(|e| panic!("{format} {table}: {e}"));
            let n = sink
                .as_mut()
                .finish()
                .await
                .unwrap_or_else(|e| panic!("{format} {table}: constraints must hold: {e}"));
            assert!(n > 0, "{format} {table}: rows loaded");
        }
        let rows = target
            .query_one(
                "SELECT count(*), count(DISTINCT u.id) FROM orders o JOIN users u ON u.id = o.user_id",
                &[],
            )
            .await
            .expect("join");
        assert_eq!(
            (rows.get::<_, i64>(0), rows.get::<_, i64>(1)),
            (120, USERS as i64),
            "{format}"
        );
        let emails = target
            .query_one(
                "SELECT count(*) FROM users WHERE email LIKE '%@example.invalid'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(emails.get::<_, i64>(0), USERS as i64, "{format}");
    }
    let refused = dev
        .simple_query("COPY (SELECT upper(full_name) FROM users) TO STDOUT")
        .await
        .expect_err("COPY of a derived value");
    assert_refused_by(&refused, "pseudonym.derived");
    drop(dev);
    if let Some(leak) = find_leak(&tap.received(), secrets()) {
        panic!("LEAK: {leak}");
    }
}

/// A COPY large enough to be rewritten in parallel batches: every row
/// arrives, in order, with the stand-ins a plain SELECT gives. Over the
/// statement's row limit it stops with the refusal, and no raw value got
/// through before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_copies_are_rewritten_in_parallel_batches_in_order() {
    let (_proxy, tap, dev, plain, large) = large_result().await;
    let out = String::from_utf8(copy_out(&dev, &format!("COPY ({large}) TO STDOUT")).await)
        .expect("text COPY");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), LARGE);
    for (i, line) in lines.iter().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        let user = &plain[i % USERS];
        assert_eq!(fields[0], (i / USERS + 1).to_string(), "row {i} in order");
        let want: Vec<&str> = user.iter().map(|v| v.as_deref().unwrap_or("\\N")).collect();
        assert_eq!(fields[1..], want[..], "row {i}: the stand-ins of a SELECT");
    }

    let over = "COPY (SELECT u.email, g FROM users u, generate_series(1, 400) g) TO STDOUT";
    let stream = dev.copy_out(over).await.expect("COPY starts");
    let lines = |chunk: &Bytes| chunk.iter().filter(|&&b| b == b'\n').count();
    assert_stopped_at_the_row_limit(stream, lines, &dev, &tap).await;
}

/// Rows of [`large_result`]'s SELECT.
const LARGE: usize = 9_000 / USERS * USERS;

/// A tapped guarded session through a pseudonymizing proxy (kept running
/// by the first value), the stand-ins a small SELECT of the users gives,
/// and a SELECT of [`LARGE`] rows: `g`, then those columns, in order.
async fn large_result() -> (TestProxy, Tap, Client, Vec<Vec<Option<String>>>, String) {
    let proxy = pseudonymizing_proxy();
    let tap = Tap::start(proxy.port());
    let dev = connect_to(tap.port, DEV).await;
    let plain = text_rows(&dev, "SELECT id, email, phone FROM users ORDER BY id").await;
    let large = format!(
        "SELECT g, u.id, u.email, u.phone FROM users u, generate_series(1, {}) g ORDER BY g, u.id",
        LARGE / USERS
    );
    (proxy, tap, dev, plain, large)
}

/// Reads `stream` (`rows_in` counts the rows of an item) to the refusal
/// of a result over the row limit: it comes after exactly the 10,000 rows
/// the limit allows, the session goes on, and no raw value reached the
/// client.
async fn assert_stopped_at_the_row_limit<T>(
    stream: impl futures_util::Stream<Item = Result<T, tokio_postgres::Error>>,
    rows_in: impl Fn(&T) -> usize,
    dev: &Client,
    tap: &Tap,
) {
    let mut stream = std::pin::pin!(stream);
    let mut rows = 0;
    let err = loop {
        match stream.next().await {
            Some(Ok(item)) => rows += rows_in(&item),
            Some(Err(e)) => break e,
            None => panic!("a result over the row limit must be stopped"),
        }
    };
    assert_refused_by(&err, "limit.rows");
    assert_eq!(rows, 10_000, "the rows before the limit, and not one more");
    assert_eq!(
        text_rows(dev, "SELECT 1").await.len(),
        1,
        "the session goes on"
    );
    assert_eq!(find_leak(&tap.received(), secrets()), None);
}

/// A large pseudonymized SELECT, whose DataRows are rewritten in groups:
/// in text (simple protocol) and binary (extended), every row has the
/// stand-ins a small SELECT gives, in order; a result over the row limit
/// stops after exactly the rows the limit allows; the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_selects_are_rewritten_in_groups_in_order() {
    let (_proxy, tap, dev, plain, large) = large_result().await;
    let rows = text_rows(&dev, &large).await;
    assert_eq!(rows.len(), LARGE);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(
            row[0],
            Some((i / USERS + 1).to_string()),
            "row {i} in order"
        );
        assert_eq!(
            row[1..],
            plain[i % USERS][..],
            "row {i}: the stand-ins of a small SELECT"
        );
    }
    let binary = dev.query(large.as_str(), &[]).await.expect("binary rows");
    assert_eq!(binary.len(), LARGE);
    for (i, row) in binary.iter().enumerate() {
        let email: Option<String> = row.get(2);
        assert_eq!(email, plain[i % USERS][1], "binary row {i}");
    }

    let over = "SELECT u.email, g FROM users u, generate_series(1, 400) g";
    let stream = dev
        .query_raw(over, std::iter::empty::<i32>())
        .await
        .expect("the query starts");
    assert_stopped_at_the_row_limit(stream, |_| 1, &dev, &tap).await;
}

/// Which fields of each CSV line are quoted (the values hold no comma).
fn quoting(csv: &[u8]) -> Vec<Vec<bool>> {
    String::from_utf8_lossy(csv)
        .lines()
        .map(|l| l.split(',').map(|f| f.starts_with('"')).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_quote_quotes_pseudonymized_columns_like_production() {
    let proxy = pseudonymizing_proxy();
    let dev = connect_to(proxy.port(), DEV).await;
    let direct = connect_to(cluster().db.port(), PROD).await;
    for force in ["*", "(email, country)", "(id)"] {
        let sql = format!(
            "COPY (SELECT id, email, country, score FROM users ORDER BY id) TO STDOUT (FORMAT csv, FORCE_QUOTE {force})"
        );
        let guarded = copy_out(&dev, &sql).await;
        let production = copy_out(&direct, &sql).await;
        assert_ne!(guarded, production, "{sql}: pseudonymized");
        let (g, p) = (quoting(&guarded), quoting(&production));
        assert_eq!(g.len(), USERS, "{sql}");
        assert_eq!(g, p, "{sql}: same quoting as production");
        assert!(g.iter().flatten().any(|q| *q), "{sql}: something is quoted");
    }
    let legacy = "COPY users (id, email) TO STDOUT WITH CSV FORCE QUOTE *";
    let guarded = copy_out(&dev, legacy).await;
    assert!(
        quoting(&guarded).iter().flatten().all(|q| *q),
        "{}",
        String::from_utf8_lossy(&guarded)
    );
}
