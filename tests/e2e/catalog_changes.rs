//! Schema changes made on the server, outside copyguard, reach guarded
//! decisions: a probe of the catalog's stamp at most every
//! `limits.catalog_check` dates a catalog the server has moved past, and
//! a statement naming a relation the catalog lacks probes at once. The
//! fixtures here serve `catalog_transactions` too.

use std::time::Duration;

use crate::support::*;

/// `trust_user` guarded, `cc_users.email` classified.
pub(crate) fn policy() -> String {
    format!("{GUARDED_TRUST_USER_CLASS}\n[columns]\n\"public.cc_users.email\" = \"email\"\n")
}

/// The text of every cell of a result.
pub(crate) fn cells(rows: &[Vec<Option<String>>]) -> Vec<String> {
    rows.iter().flatten().flatten().cloned().collect()
}

/// Runs `sql` directly on the test database as the superuser.
pub(crate) fn on_server(db: &str, sql: &str) {
    cluster().db.psql(db, sql).expect("DDL on the server");
}

/// A result that carries no raw email: refused by copyguard, or rows
/// without one.
pub(crate) fn assert_no_email(what: &str, result: Result<Vec<String>, tokio_postgres::Error>) {
    match result {
        Ok(values) => assert!(
            values.iter().all(|v| !v.contains("@example.com")),
            "{what}: raw emails came back: {values:?}"
        ),
        Err(e) => {
            let db = e.as_db_error().unwrap_or_else(|| panic!("{what}: {e}"));
            assert!(
                db.message().starts_with("copyguard:"),
                "{what}: refused by the server, not by copyguard: {db:?}"
            );
            assert_ne!(
                db.code().code(),
                "42P01",
                "{what}: the relation must be known"
            );
        }
    }
}

/// The notes table and the users whose emails are classified, behind a
/// proxy probing every 200 ms: the database's name, the proxy and the
/// DDL that swaps the notes table for a view over the emails.
pub(crate) fn swap_fixture(name: &str) -> (String, TestProxy) {
    swap_fixture_every(name, "200ms")
}

/// [`swap_fixture`] with a proxy probing `every` so often.
pub(crate) fn swap_fixture_every(name: &str, every: &str) -> (String, TestProxy) {
    let db = fresh_database(name);
    on_server(
        &db,
        "CREATE TABLE cc_users (id int, email text);
         INSERT INTO cc_users SELECT g, 'secret' || g || '@example.com' FROM generate_series(1, 20) g;
         CREATE TABLE cc_notes (id int, note text);
         INSERT INTO cc_notes SELECT g, 'note ' || g FROM generate_series(1, 20) g;
         GRANT SELECT ON cc_users, cc_notes TO PUBLIC;",
    );
    (db, proxy_checking_every(every))
}

/// A proxy under [`policy`] probing the catalog's stamp `every` so often.
pub(crate) fn proxy_checking_every(every: &str) -> TestProxy {
    let mut args = proxy_args();
    args.policy = Some(policy_dir(&policy()).display().to_string());
    args.catalog_check = Some(every.into());
    TestProxy::start(args)
}

pub(crate) const SWAP: &str = "ALTER TABLE cc_notes RENAME TO cc_notes_old;
     CREATE VIEW cc_notes AS SELECT id, email AS note FROM cc_users;
     GRANT SELECT ON cc_notes TO PUBLIC;";
/// The DDL that puts the notes table back.
pub(crate) const UNSWAP: &str = "DROP VIEW cc_notes; ALTER TABLE cc_notes_old RENAME TO cc_notes;";

/// The computed read of the notes.
pub(crate) const COMPUTED: &str = "SELECT note || '' FROM cc_notes";

/// The cells of `sql`'s result, by the simple protocol.
pub(crate) async fn cells_of(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(cells(&text_rows_of(client.simple_query(sql).await?)))
}

/// Asserts that the session counts the 20 users (a plain read, allowed
/// whatever the notes are), `what` saying when.
pub(crate) async fn assert_counts_users(client: &tokio_postgres::Client, what: &str) {
    let users = cells_of(client, "SELECT count(*) FROM cc_users")
        .await
        .expect(what);
    assert_eq!(users, ["20"], "{what}");
}

/// Swaps the notes table for the view over the emails, then holds a
/// catalog table locked (so probes wait on it) until the returned
/// superuser session commits.
pub(crate) async fn swap_holding_the_catalog(db: &str) -> tokio_postgres::Client {
    let locker = superuser(db).await;
    locker
        .batch_execute(&format!(
            "{SWAP} BEGIN; LOCK TABLE pg_catalog.pg_rewrite IN ACCESS EXCLUSIVE MODE;"
        ))
        .await
        .expect("swap, then hold a catalog lock");
    locker
}

/// A schema named after the guarded role, which `"$user"` puts first in
/// its search path, with a view named like the notes table over the
/// emails; nobody but its owner may use the schema yet.
const USER_SCHEMA_VIEW: &str = "CREATE SCHEMA trust_user;
     CREATE VIEW trust_user.cc_notes AS SELECT id, email AS note FROM public.cc_users;
     GRANT SELECT ON trust_user.cc_notes TO PUBLIC;";

/// Asserts that neither the computed nor the plain read of the notes
/// brings a raw email back.
async fn assert_notes_hidden(client: &tokio_postgres::Client) {
    assert_no_email("computed", computed_notes(client).await);
    assert_no_email("plain", cells_of(client, "SELECT note FROM cc_notes").await);
}

/// The cells of the computed read of the notes.
pub(crate) async fn computed_notes(
    client: &tokio_postgres::Client,
) -> Result<Vec<String>, tokio_postgres::Error> {
    cells_of(client, COMPUTED).await
}

/// The reported case: a table replaced on the server by a view over a
/// classified column was judged as the old unclassified table until the
/// five-minute refresh, and a computed value of it returned every email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_replaced_on_the_server_is_judged_as_what_replaced_it() {
    let (db, proxy) = swap_fixture("catalog_changes");
    let guarded = connect(proxy.port(), "trust_user", &db).await;
    let extended = || {
        let guarded = &guarded;
        async move {
            let rows = guarded.query(COMPUTED, &[]).await?;
            Ok::<_, tokio_postgres::Error>(
                rows.iter()
                    .filter_map(|r| r.get::<_, Option<String>>(0))
                    .collect::<Vec<_>>(),
            )
        }
    };
    let before = computed_notes(&guarded)
        .await
        .expect("an unclassified table");
    assert_eq!(before.len(), 20);

    let to_view = SWAP;
    let to_table = UNSWAP;
    on_server(&db, to_view);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_no_email(
        "simple protocol after the change",
        computed_notes(&guarded).await,
    );
    assert_no_email("extended protocol after the change", extended().await);

    on_server(&db, to_table);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let back = extended().await.expect("the table is back");
    assert_eq!(back.len(), 20, "{back:?}");
    on_server(&db, to_view);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_no_email(
        "extended protocol after the second change",
        extended().await,
    );

    let fresh = connect(proxy.port(), "trust_user", &db).await;
    assert_no_email("a new session", computed_notes(&fresh).await);
}

/// A table created on the server is usable by the very next statement
/// that names it, whatever the probe interval: the unknown name makes the
/// session probe before it refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_created_on_the_server_is_usable_at_once() {
    let db = fresh_database("catalog_new_table");
    on_server(
        &db,
        "CREATE TABLE cc_users (id int, email text); GRANT SELECT ON cc_users TO PUBLIC;",
    );
    let proxy = proxy_checking_every("1h");
    let guarded = connect(proxy.port(), "trust_user", &db).await;
    guarded
        .simple_query("SELECT count(*) FROM cc_users")
        .await
        .expect("first statement");
    on_server(
        &db,
        "CREATE TABLE cc_fresh (id int); INSERT INTO cc_fresh VALUES (7);
         GRANT SELECT ON cc_fresh TO PUBLIC;",
    );
    let rows = cells_of(&guarded, "SELECT id FROM cc_fresh")
        .await
        .expect("a table created outside copyguard is known at once");
    assert_eq!(rows, ["7"]);
    let missing = guarded
        .simple_query("SELECT id FROM cc_nowhere")
        .await
        .expect_err("a relation that does not exist");
    let missing = missing.as_db_error().expect("an error response");
    assert!(
        missing.message().contains("analysis.unknown_relation")
            || missing.message().contains("does not know"),
        "{missing:?}"
    );
}

/// Red team: a new session's first statement was never probed (the search
/// path read at its start was still in flight), so with no other session
/// busy, a client opening a connection per query kept the old catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_statement_of_a_new_session_sees_a_change() {
    let (db, proxy) = swap_fixture("catalog_first");
    let first = connect(proxy.port(), "trust_user", &db).await;
    assert_eq!(
        computed_notes(&first).await.expect("unclassified").len(),
        20
    );
    on_server(&db, SWAP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let next = connect(proxy.port(), "trust_user", &db).await;
    assert_no_email(
        "a new session's first statement",
        computed_notes(&next).await,
    );
}

/// Red team: a probe the guarded session itself made fail (a short
/// `lock_timeout` or `statement_timeout`, revoked rights) left the old
/// catalog in use. Now the session's statements naming relations are
/// refused (`catalog.unverified`) until a probe succeeds again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_fails_refuses_rather_than_guesses() {
    let (db, proxy) = swap_fixture("catalog_unverified");
    let guarded = connect(proxy.port(), "trust_user", &db).await;
    assert_eq!(
        computed_notes(&guarded).await.expect("unclassified").len(),
        20
    );
    guarded
        .batch_execute("SET lock_timeout = '50ms'")
        .await
        .expect("a setting of the session's own");
    let locker = swap_holding_the_catalog(&db).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = computed_notes(&guarded)
        .await
        .expect_err("the catalog cannot be checked");
    let refused = refused.as_db_error().expect("an error response");
    assert_eq!(refused.code().code(), "55000", "{refused:?}");
    assert!(
        refused.message().contains("catalog.unverified"),
        "{refused:?}"
    );
    let plain = cells_of(&guarded, "SELECT 1")
        .await
        .expect("statements naming no relation still run");
    assert_eq!(plain, ["1"]);
    locker.batch_execute("COMMIT").await.expect("unlock");
    assert_no_email("after the lock", computed_notes(&guarded).await);
    assert_counts_users(&guarded, "the catalog is read again").await;
}

/// Red team: sessions deciding while another session's probe was in
/// flight skipped the check and used the old catalog (seven of eight
/// concurrent statements returned every email).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_decided_while_a_probe_is_in_flight_wait_for_one() {
    let (db, proxy) = swap_fixture("catalog_concurrent");
    let mut sessions = Vec::new();
    for _ in 0..6 {
        let s = connect(proxy.port(), "trust_user", &db).await;
        assert_eq!(computed_notes(&s).await.expect("unclassified").len(), 20);
        sessions.push(s);
    }
    on_server(&db, SWAP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let results = futures_util::future::join_all(sessions.iter().map(computed_notes)).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_no_email(&format!("concurrent session {i}"), result);
    }
}

/// Red team: a probe that failed after its Parse left copyguard's internal
/// statement prepared, and every later probe failed on it (42P05): the
/// session stayed refused for good. A statement of that name the client
/// made itself shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leftover_internal_statement_does_not_block_the_next_probe() {
    let (db, proxy) = swap_fixture("catalog_leftover");
    let guarded = connect(proxy.port(), "trust_user", &db).await;
    guarded
        .batch_execute("PREPARE copyguard_internal AS SELECT 1")
        .await
        .expect("a statement of the internal name");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_counts_users(&guarded, "the probe runs").await;
}

/// Red team: a schema created on the server in the session's search path
/// (`"$user"`) was never seen: the search path was read again only after
/// the session's own changes, so a view there over classified columns,
/// named like a public table, was judged as that table. A catalog change
/// now reads the search path again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_created_in_the_search_path_is_seen() {
    let (db, proxy) = swap_fixture("catalog_user_schema");
    let a = connect(proxy.port(), "trust_user", &db).await;
    assert_eq!(computed_notes(&a).await.expect("unclassified").len(), 20);
    on_server(
        &db,
        &format!("{USER_SCHEMA_VIEW} GRANT USAGE ON SCHEMA trust_user TO PUBLIC;"),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_notes_hidden(&a).await;
}

/// A short `statement_timeout` the client set for its session does not
/// fail the probe or the catalog load outside a transaction either: its
/// statements are not refused for a check it made impossible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_statement_timeout_does_not_fail_the_probe() {
    let (db, proxy) = swap_fixture("catalog_session_timeout");
    let a = connect(proxy.port(), "trust_user", &db).await;
    a.batch_execute("SET statement_timeout = '1ms'")
        .await
        .expect("a setting of the session's own");
    on_server(&db, SWAP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The client's own statements may time out on a busy machine; none
    // is refused by copyguard.
    for _ in 0..20 {
        match cells_of(&a, "SELECT count(*) FROM cc_users").await {
            Ok(count) => {
                assert_eq!(count, ["20"]);
                return;
            }
            Err(e) => {
                let db = e.as_db_error().expect("an error response");
                assert_eq!(
                    db.code().code(),
                    "57014",
                    "only the client's timeout: {db:?}"
                );
            }
        }
    }
    panic!("every statement timed out");
}

/// Red team: USAGE granted on a schema already in the session's search
/// path (`"$user"`) changed which relation a name resolves to, but not the
/// catalog's stamp, so the session kept resolving it to the public table
/// for good. Schema rights and role memberships are part of the stamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_the_session_may_use_later_is_seen() {
    let (db, proxy) = swap_fixture("catalog_schema_usage");
    on_server(&db, USER_SCHEMA_VIEW);
    let a = connect(proxy.port(), "trust_user", &db).await;
    assert_eq!(
        computed_notes(&a).await.expect("the public table").len(),
        20
    );
    on_server(&db, "GRANT USAGE ON SCHEMA trust_user TO PUBLIC;");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_notes_hidden(&a).await;
}

/// Red team: what the server searches also changes with what the stamp
/// cannot show: a role membership it takes in only when it next
/// recomputes the search path (here at a change of another schema's
/// owner). The session now reads its search path again every interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_path_the_server_recomputes_is_read_again() {
    let (db, proxy) = swap_fixture("catalog_path_recomputed");
    on_server(
        &db,
        &format!(
            "{USER_SCHEMA_VIEW}
         CREATE SCHEMA cc_other;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cc_schema_users') THEN
             CREATE ROLE cc_schema_users;
           END IF;
         END $$;
         GRANT USAGE ON SCHEMA trust_user TO cc_schema_users;"
        ),
    );
    let a = connect(proxy.port(), "trust_user", &db).await;
    assert_eq!(
        computed_notes(&a).await.expect("the public table").len(),
        20
    );
    on_server(&db, "GRANT cc_schema_users TO trust_user;");
    tokio::time::sleep(Duration::from_millis(300)).await;
    computed_notes(&a).await.ok();
    on_server(&db, "ALTER SCHEMA cc_other OWNER TO cc_schema_users;");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_notes_hidden(&a).await;
}
