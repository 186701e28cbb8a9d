//! Schema changes made on the server while a guarded session is inside a
//! transaction: probes under a savepoint, before a statement that takes
//! the transaction's snapshot, a READ COMMITTED transaction reading the
//! catalog again, one reading a single snapshot refusing, and the
//! client's transaction (settings, portals, `SET TRANSACTION`) left as it
//! was.

use std::time::Duration;

use crate::catalog_changes::*;
use crate::raw::{bind_msg, execute_rows, parse_msg, startup_packet, sync_msg, Raw};
use crate::support::*;

/// Red team: a session inside a REPEATABLE READ transaction reloaded the
/// dated catalog in its old snapshot (while the server resolves names in
/// the current one), kept that view after the transaction, and returned
/// every email from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_read_inside_a_transaction_is_replaced_after_it() {
    let (db, proxy) = swap_fixture("catalog_snapshot");
    let a = connect(proxy.port(), "trust_user", &db).await;
    assert_eq!(computed_notes(&a).await.expect("unclassified").len(), 20);
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .await
        .expect("a snapshot taken before the change");
    on_server(&db, SWAP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = connect(proxy.port(), "trust_user", &db).await;
    assert_no_email("another session", computed_notes(&b).await);
    assert_no_email(
        "inside the transaction, once another session found the change",
        computed_notes(&a).await,
    );
    a.batch_execute("ROLLBACK")
        .await
        .expect("the transaction ends");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_no_email("after the transaction", computed_notes(&a).await);
}

/// Red team: a READ COMMITTED transaction begun before a change, with no
/// other session probing, kept deciding with the old catalog and returned
/// every email. The session probes inside its transaction too and, since
/// each statement there reads the latest catalog, loads the new one in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_committed_transaction_sees_a_change_made_during_it() {
    let (db, proxy) = swap_fixture("catalog_read_committed");
    let a = connect(proxy.port(), "trust_user", &db).await;
    a.batch_execute("BEGIN").await.expect("begin");
    assert_counts_users(&a, "a snapshot taken before the change").await;
    on_server(&db, SWAP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_counts_users(&a, "the transaction goes on with the catalog read in it").await;
    assert_no_email("inside the transaction", computed_notes(&a).await);
}

/// A probe due inside a transaction waits for the client's first
/// statement that takes a snapshot, so `SET TRANSACTION` (pg_dump's second
/// statement) still comes first; a probe in a transaction that reads one
/// snapshot finds nothing to refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_transaction_still_comes_first_in_a_transaction() {
    let (db, proxy) = swap_fixture("catalog_set_transaction");
    let a = connect(proxy.port(), "trust_user", &db).await;
    a.batch_execute("BEGIN").await.expect("begin");
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .expect("the first statement of its transaction");
    for _ in 0..2 {
        assert_eq!(computed_notes(&a).await.expect("unclassified").len(), 20);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    a.batch_execute("COMMIT").await.expect("commit");
    // And with a statement behind it in the same request.
    a.batch_execute("BEGIN").await.expect("begin");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows = cells_of(
        &a,
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SELECT count(*) FROM cc_notes",
    )
    .await
    .expect("SET TRANSACTION first in its request");
    assert_eq!(rows, ["20"]);
    a.batch_execute("COMMIT").await.expect("commit");
}

/// A probe inside the client's transaction that fails (here on the
/// session's own `lock_timeout`) runs under a savepoint: the transaction
/// goes on, and once the catalog can be read again the change is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_failing_inside_a_transaction_leaves_it_going() {
    let (db, proxy) = swap_fixture("catalog_probe_savepoint");
    let a = connect(proxy.port(), "trust_user", &db).await;
    a.batch_execute("BEGIN; SET LOCAL lock_timeout = '50ms'")
        .await
        .expect("begin");
    assert_counts_users(&a, "a snapshot taken before the change").await;
    let locker = swap_holding_the_catalog(&db).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let plain = cells_of(&a, "SELECT 2")
        .await
        .expect("the transaction survives the failed probe");
    assert_eq!(plain, ["2"]);
    locker.batch_execute("COMMIT").await.expect("unlock");
    assert_counts_users(&a, "the catalog is read again in the transaction").await;
    assert_no_email("after the lock", computed_notes(&a).await);
}

/// A probe inside a REPEATABLE READ transaction reads that transaction's
/// snapshot: it verifies nothing committed after it, so the first
/// statement after the transaction probes again (it was taken as a check
/// of the latest catalog, and a change made during the transaction went
/// unseen for another interval).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_inside_a_snapshot_verifies_nothing_after_it() {
    let (db, proxy) = swap_fixture_every("catalog_snapshot_probe", "500ms");
    let a = connect(proxy.port(), "trust_user", &db).await;
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .await
        .expect("a snapshot taken before the change");
    on_server(&db, SWAP);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let plain = cells_of(&a, "SELECT 2")
        .await
        .expect("a probe in the snapshot");
    assert_eq!(plain, ["2"]);
    a.batch_execute("COMMIT").await.expect("commit");
    assert_no_email("right after the transaction", computed_notes(&a).await);
}

/// Red team: a transaction whose last statement was a transaction control
/// one (BEGIN, SAVEPOINT, ROLLBACK TO, COMMIT AND CHAIN) or took no
/// snapshot (SHOW) was never probed, so its next statement was decided on
/// the old catalog. A statement that takes the snapshot anyway is probed
/// before, whatever came before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shape_of_transaction_sees_a_change_made_during_it() {
    let (db, proxy) = swap_fixture("catalog_transaction_shapes");
    for opening in [
        "BEGIN",
        "BEGIN; SELECT 1; SAVEPOINT a",
        "BEGIN; SELECT 1; SAVEPOINT a; SELECT 2; ROLLBACK TO a",
        "BEGIN; SELECT 1; COMMIT AND CHAIN",
        "BEGIN; SHOW work_mem",
        "BEGIN; SET TRANSACTION READ ONLY",
    ] {
        swapped_after(&proxy, &db, opening, COMPUTED, opening).await;
    }
}

/// In a new session: `opening`, then the swap on the server, then
/// `request` once a probe is due, which must bring no raw email back
/// (`what` says which case); the notes table is put back after.
async fn swapped_after(proxy: &TestProxy, db: &str, opening: &str, request: &str, what: &str) {
    let a = connect(proxy.port(), "trust_user", db).await;
    a.batch_execute(opening).await.expect(opening);
    on_server(db, SWAP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_no_email(what, cells_of(&a, request).await);
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    on_server(db, UNSWAP);
}

/// Red team: the probe ran its query through the unnamed portal, which a
/// client inside a transaction was still fetching from: the client's next
/// Execute failed (55000) and its transaction with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_leaves_the_clients_unnamed_portal_alone() {
    let (db, proxy) = swap_fixture("catalog_portal");
    let mut raw = Raw::connect(proxy.port()).await;
    raw.send(&startup_packet(
        0,
        &[("user", "trust_user"), ("database", &db)],
    ))
    .await;
    raw.until_ready().await;
    raw.query("BEGIN").await;
    let fetch = [execute_rows("", 1), sync_msg()].concat();
    let first = [
        parse_msg("", "SELECT id FROM cc_notes ORDER BY id"),
        bind_msg("", ""),
        fetch.clone(),
    ]
    .concat();
    raw.send(&first).await;
    let rows = |msgs: &[crate::raw::Msg]| -> Vec<u8> { msgs.iter().map(|m| m.tag).collect() };
    let answer = raw.until_ready().await;
    assert_eq!(rows(&answer), b"12DsZ", "{answer:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    raw.send(&fetch).await;
    let answer = raw.until_ready().await;
    assert_eq!(rows(&answer), b"DsZ", "the portal goes on: {answer:?}");
    assert!(answer[0].body.ends_with(b"2"), "the second row: {answer:?}");
}

/// Red team: a `statement_timeout` the client set for its own statements
/// failed the probe inside its transaction, and the refusal that followed
/// aborted the transaction. The probe runs without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_statement_timeout_does_not_fail_the_probe() {
    let (db, proxy) = swap_fixture("catalog_statement_timeout");
    let a = connect(proxy.port(), "trust_user", &db).await;
    a.batch_execute("BEGIN; SELECT 1; SET LOCAL statement_timeout = '1ms'")
        .await
        .expect("begin");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let users = cells_of(&a, "SELECT id FROM cc_users WHERE id = 1")
        .await
        .expect("the statement runs after the probe");
    assert_eq!(users, ["1"]);
    let timeout = cells_of(&a, "SHOW statement_timeout")
        .await
        .expect("the client's setting");
    assert_eq!(timeout, ["1ms"]);
    a.batch_execute("COMMIT").await.expect("commit");
}

/// Red team: a savepoint turned the in-transaction probe off until a
/// statement that took a snapshot, so a request starting with one that
/// takes none (`SET LOCAL ...; SELECT ...`) after it was decided on the
/// old catalog; and `PREPARE`, `DEALLOCATE`, `DISCARD` and `CLOSE` were
/// taken as taking none, though PostgreSQL takes the snapshot for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_after_savepoints_or_prepare_see_a_change() {
    let (db, proxy) = swap_fixture("catalog_after_savepoints");
    for (opening, payload) in [
        ("BEGIN; SELECT 1; SAVEPOINT a", "SET LOCAL work_mem = '8MB'"),
        ("BEGIN; SELECT 1; SAVEPOINT a; RELEASE a", "SHOW work_mem"),
        (
            "BEGIN; SELECT 1; SAVEPOINT a; ROLLBACK TO a",
            "LOCK TABLE cc_users",
        ),
        (
            "BEGIN",
            "PREPARE x AS SELECT note || '' FROM cc_notes; EXECUTE x",
        ),
        ("BEGIN", "DEALLOCATE ALL"),
        ("BEGIN", "CLOSE ALL"),
        // A transaction that has taken no snapshot yet (red team, third
        // round): the request's statements say whether it takes one.
        ("BEGIN", "SET LOCAL work_mem = '8MB'"),
        ("BEGIN; SELECT 1; COMMIT AND CHAIN", "SHOW work_mem"),
    ] {
        let request = format!("{payload}; {COMPUTED}");
        swapped_after(&proxy, &db, opening, &request, &request).await;
    }
}
