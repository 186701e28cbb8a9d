//! Error texts of what a guarded write sets off beyond the rows it names:
//! foreign-key actions (`ON DELETE SET NULL`, `ON UPDATE CASCADE`) that
//! change rows of a classified table, and triggers or rules, whose code
//! can read anything. The server's message then quotes rows the statement
//! never named (`Failing row contains (..., <email>)`, a trigger's `RAISE`),
//! so it is withheld like that of any statement touching classified data.

use crate::guard_fixture::*;
use crate::support::*;
use crate::tap::{find_leak, Tap};

const WITHHELD: &str = "statement failed with SQLSTATE";

/// A database of its own: `accounts` (nothing classified) whose deletes
/// and key updates reach `contacts.email` (classified) through foreign-key
/// actions, `notes` with a trigger quoting a contact's e-mail, `plain`
/// with neither.
fn side_effects_database() -> String {
    fixture();
    let db = fresh_database("side_effects");
    let secret = &secrets()[0];
    cluster()
        .db
        .psql(
            &db,
            &format!(
                "CREATE TABLE accounts (id int PRIMARY KEY);
                 CREATE TABLE contacts (id int PRIMARY KEY,
                     account_id int NOT NULL REFERENCES accounts ON DELETE SET NULL ON UPDATE CASCADE,
                     email text, CHECK (account_id < 100));
                 CREATE TABLE notes (id int PRIMARY KEY, body text);
                 CREATE TABLE plain (id int PRIMARY KEY);
                 CREATE FUNCTION check_note() RETURNS trigger LANGUAGE plpgsql AS
                   $$ BEGIN RAISE EXCEPTION 'contact % may not get notes',
                      (SELECT email FROM contacts WHERE id = NEW.id); END $$;
                 CREATE TRIGGER check_note BEFORE INSERT ON notes
                   FOR EACH ROW EXECUTE FUNCTION check_note();
                 CREATE TABLE audited (id int PRIMARY KEY);
                 CREATE FUNCTION check_audited() RETURNS trigger LANGUAGE plpgsql AS
                   $$ BEGIN RAISE EXCEPTION 'audited by %', (SELECT email FROM contacts LIMIT 1); END $$;
                 CREATE CONSTRAINT TRIGGER check_audited AFTER INSERT ON audited
                   DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION check_audited();
                 INSERT INTO accounts VALUES (1);
                 INSERT INTO plain VALUES (1);
                 INSERT INTO contacts VALUES (1, 1, '{secret}');
                 GRANT ALL ON ALL TABLES IN SCHEMA public TO {DEV};"
            ),
        )
        .expect("side-effect tables");
    db
}

/// The locked policy with `contacts.email` classified too.
fn policy() -> std::path::PathBuf {
    let locked = std::fs::read_to_string(locked_policy().join("policy.toml")).expect("policy");
    policy_dir(&locked.replace(
        "[columns]\n",
        "[columns]\n\"public.contacts.email\" = \"email\"\n",
    ))
}

/// A developer's session on the side-effect tables, through copyguard
/// (kept running while the first is held) and a tap on what it sends.
async fn developer_session() -> (TestProxy, Tap, tokio_postgres::Client) {
    let db = side_effects_database();
    let proxy = {
        let mut args = proxy_args();
        args.policy = Some(policy().display().to_string());
        TestProxy::start(args)
    };
    let tap = Tap::start(proxy.port());
    let dev = connect(tap.port, DEV, &db).await;
    (proxy, tap, dev)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_of_foreign_key_actions_and_triggers_are_scrubbed() {
    let (_proxy, tap, dev) = developer_session().await;
    let mut failures = Vec::new();
    let mut seen = 0;
    for (sql, code, withheld) in [
        // SET NULL on contacts.account_id: NOT NULL fails on the contact.
        ("DELETE FROM accounts WHERE id = 1", "23502", true),
        // The new key cascades to the contact, whose CHECK fails.
        ("UPDATE accounts SET id = 100 WHERE id = 1", "23514", true),
        // The trigger raises with the contact's e-mail.
        ("INSERT INTO notes VALUES (1, 'x')", "P0001", true),
        ("INSERT INTO notes SELECT 1, 'x'", "P0001", true),
        // Nothing beyond the table: its own message.
        ("INSERT INTO plain VALUES (1)", "23505", false),
    ] {
        let _ = dev.batch_execute("BEGIN").await;
        let got = dev.simple_query(sql).await;
        let _ = dev.batch_execute("ROLLBACK").await;
        match got.as_ref().map_err(|e| e.as_db_error()) {
            Err(Some(e))
                if e.code().code() == code && e.message().starts_with(WITHHELD) == withheld => {}
            other => failures.push(format!(
                "{sql}: wanted {code} (withheld: {withheld}), got {other:?}"
            )),
        }
        let received = tap.received();
        if let Some(leak) = find_leak(&received[seen..], secrets()) {
            failures.push(format!("LEAK {leak} after {sql}"));
        }
        seen = received.len();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A deferred constraint trigger fails at COMMIT (or at the end of the
/// implicit transaction of a query string or an extended batch): the
/// failure belongs to the transaction's writes, not to the statement that
/// happened to end it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_of_deferred_triggers_are_scrubbed_when_the_transaction_ends() {
    let (_proxy, tap, dev) = developer_session().await;
    let mut failures = Vec::new();
    let mut seen = 0;
    for steps in [
        &["BEGIN", "INSERT INTO audited VALUES (1)", "COMMIT"][..],
        &["INSERT INTO audited VALUES (2); SELECT 1"],
        &["BEGIN; INSERT INTO audited VALUES (3); COMMIT"],
    ] {
        let mut last = None;
        for sql in steps {
            last = Some(dev.simple_query(sql).await);
        }
        let _ = dev.batch_execute("ROLLBACK").await;
        match last
            .as_ref()
            .map(|r| r.as_ref().map_err(|e| e.as_db_error()))
        {
            Some(Err(Some(e)))
                if e.code().code() == "P0001" && e.message().starts_with(WITHHELD) => {}
            other => failures.push(format!("{steps:?}: wanted P0001 withheld, got {other:?}")),
        }
        let received = tap.received();
        if let Some(leak) = find_leak(&received[seen..], secrets()) {
            failures.push(format!("LEAK {leak} after {steps:?}"));
        }
        seen = received.len();
    }
    // The extended protocol: the implicit transaction ends at Sync.
    let got = dev.execute("INSERT INTO audited VALUES (4)", &[]).await;
    if !matches!(got.as_ref().map_err(|e| e.as_db_error()), Err(Some(e)) if e.code().code() == "P0001")
    {
        failures.push(format!("extended insert: {got:?}"));
    }
    if let Some(leak) = find_leak(&tap.received()[seen..], secrets()) {
        failures.push(format!("LEAK {leak} after the extended insert"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
