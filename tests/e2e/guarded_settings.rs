//! What drivers, poolers and dump tools send besides queries, through a
//! guarded session: `set_config` decided like `SET` (and a `search_path`
//! change followed), lock releases, statistics views.

use tokio_postgres::Client;

use crate::guard_fixture::*;
use crate::support::*;

/// SQLSTATE and message of a failed statement.
fn failure(e: &tokio_postgres::Error) -> (String, String) {
    match e.as_db_error() {
        Some(db) => (db.code().code().to_owned(), db.message().to_owned()),
        None => (String::new(), e.to_string()),
    }
}

/// Rows as text of a simple query.
async fn rows(c: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, (String, String)> {
    let messages = c.simple_query(sql).await.map_err(|e| failure(&e))?;
    Ok(text_rows_of(messages))
}

/// Rows of a simple query that must pass.
async fn ok(c: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    rows(c, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: refused {e:?}"))
}

/// Asserts `sql` is refused by `rule` and the session still works.
async fn refused(c: &Client, sql: &str, rule: &str) {
    match rows(c, sql).await {
        Err((code, message)) => {
            assert_eq!(code, "42501", "{sql}: {message}");
            assert!(
                message.starts_with(&format!("copyguard: blocked by rule {rule}:")),
                "{sql}: {message}"
            );
        }
        Ok(r) => panic!("{sql}: expected {rule}, got {r:?}"),
    }
    assert_eq!(ok(c, "SELECT 1").await, vec![vec![Some("1".to_owned())]]);
}

fn one(value: &str) -> Vec<Vec<Option<String>>> {
    vec![vec![Some(value.to_owned())]]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_config_is_decided_like_set() {
    let proxy = guarded_proxy(limited_policy(20, 200, 1000));
    let dev = connect_to(proxy.port(), DEV).await;

    // asyncpg's first introspection statement, and pg_dump's first.
    assert_eq!(
        ok(
            &dev,
            "SELECT current_setting('jit') AS cur, set_config('jit', 'off', false) AS new"
        )
        .await[0][1],
        Some("off".to_owned())
    );
    assert_eq!(ok(&dev, "SHOW jit").await, one("off"));
    let extended = dev
        .query("SELECT set_config('jit', $1, false)", &[&"on"])
        .await
        .expect("set_config with a parameter value");
    assert_eq!(extended[0].get::<_, String>(0), "on");

    // A search_path change is followed: names resolve on the new path.
    ok(
        &dev,
        "SELECT pg_catalog.set_config('search_path', 'app', false)",
    )
    .await;
    assert_eq!(
        ok(&dev, "SELECT email FROM users").await,
        one("app-visible@example.org")
    );
    ok(&dev, "SELECT set_config('search_path', 'public', true)").await;
    assert_eq!(ok(&dev, "SELECT count(*) FROM users").await, one("1"));
    // Extended protocol, then the transaction-local form.
    dev.execute("SELECT set_config('search_path', 'public', false)", &[])
        .await
        .unwrap();
    assert_eq!(
        ok(&dev, "SELECT count(*) FROM users").await,
        one(&USERS.to_string())
    );
    ok(&dev, "BEGIN").await;
    ok(&dev, "SELECT set_config('search_path', 'app', true)").await;
    assert_eq!(ok(&dev, "SELECT count(*) FROM users").await, one("1"));
    ok(&dev, "COMMIT").await;
    assert_eq!(
        ok(&dev, "SELECT count(*) FROM users").await,
        one(&USERS.to_string())
    );
    // Changed then used in one string: refused, as after SET.
    refused(
        &dev,
        "SELECT set_config('search_path', 'app', false); SELECT email FROM users",
        "analysis.context_change",
    )
    .await;
    assert_eq!(ok(&dev, "SHOW search_path").await, one("public"));

    refused(
        &dev,
        "SELECT set_config('role', 'guard_prod', false)",
        "identity.change",
    )
    .await;
    refused(
        &dev,
        "SELECT set_config('session_authorization', 'guard_prod', true)",
        "identity.change",
    )
    .await;
    refused(
        &dev,
        "SELECT set_config('standard_conforming_strings', 'off', false)",
        "setting.lexer",
    )
    .await;
    refused(
        &dev,
        "SELECT set_config('ro' || 'le', 'guard_prod', false)",
        "setting.dynamic",
    )
    .await;
    let dynamic = dev
        .query("SELECT set_config($1, 'guard_prod', false)", &[&"role"])
        .await
        .expect_err("a parameter as the name");
    assert_eq!(failure(&dynamic).0, "42501");
    for sql in [
        "SELECT set_config('myapp.x', email, false) FROM users WHERE id = 1",
        "SELECT set_config('myapp.x', (SELECT full_name FROM users WHERE id = 1), false)",
        "SELECT id FROM users WHERE set_config('myapp.x', phone, false) IS NOT NULL",
        "SELECT set_config('myapp.x', lower(email), false), id FROM users WHERE id = 2",
    ] {
        refused(&dev, sql, "setting.classified").await;
    }
    // Unclassified values may go into a setting and back.
    ok(
        &dev,
        "SELECT set_config('myapp.x', country, false) FROM users WHERE id = 1",
    )
    .await;
    assert_eq!(
        ok(&dev, "SELECT current_setting('myapp.x')").await,
        ok(&dev, "SELECT country FROM users WHERE id = 1").await
    );
    let whoami = ok(&dev, "SELECT current_user").await;
    assert_eq!(whoami, one(DEV));
    assert!(!dev.is_closed());
}

/// pg_dump's settings statements (the dump itself is issue 15's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_settings_statements_pass() {
    let proxy = guarded_proxy(limited_policy(20, 200, 1000));
    let dev = connect_to(proxy.port(), DEV).await;
    ok(
        &dev,
        "SELECT pg_catalog.set_config('search_path', '', false)",
    )
    .await;
    assert_eq!(ok(&dev, "SHOW search_path").await, one(""));
    assert_eq!(
        ok(&dev, "SELECT count(*) FROM public.users").await,
        one(&USERS.to_string())
    );
    refused(
        &dev,
        "SELECT count(*) FROM users",
        "analysis.unknown_relation",
    )
    .await;
    let version: i32 = ok(&dev, "SHOW server_version_num").await[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let restrict = "SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings WHERE name = 'restrict_nonsystem_relation_kind'";
    if version >= 150008 {
        ok(&dev, restrict).await;
    }
    refused(
        &dev,
        "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name LIKE 'role%'",
        "setting.dynamic",
    )
    .await;
}

/// What connection pools send when a connection is returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_reset_statements_pass() {
    let proxy = guarded_proxy(limited_policy(20, 200, 1000));
    let dev = connect_to(proxy.port(), DEV).await;
    ok(&dev, "SELECT set_config('search_path', 'app', false)").await;
    ok(
        &dev,
        "BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT id FROM public.orders; COMMIT",
    )
    .await;
    ok(&dev, "LISTEN some_channel").await;
    // asyncpg's reset query, as one simple query.
    ok(
        &dev,
        "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;",
    )
    .await;
    assert_eq!(ok(&dev, "SHOW search_path").await, one("\"$user\", public"));
    assert_eq!(
        ok(&dev, "SELECT count(*) FROM users").await,
        one(&USERS.to_string())
    );
    for sql in [
        "SELECT pg_advisory_unlock(1)",
        "SELECT pg_advisory_unlock_shared(1, 2)",
        "DISCARD ALL",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
    ] {
        ok(&dev, sql).await;
    }
    for sql in [
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_advisory_xact_lock(1)",
        "SELECT pg_try_advisory_lock(1)",
        "SELECT pg_advisory_lock_shared(1)",
    ] {
        refused(&dev, sql, "function.not_allowed").await;
    }
}
