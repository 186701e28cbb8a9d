//! Scripted sessions through the core and the queue, without PostgreSQL:
//! the client's messages go in as the relay hands them over (refused ones
//! replaced by failing stand-ins), the server's answers come back as it
//! would send them, and the test checks what the client gets and what the
//! block log records.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{dev, policy, session};
use crate::guard::{Core, Expect, OnReady, Queue, Refused, Step};
use crate::policy::{Policy, Rule};

/// One guarded session: the core, the queue, and what the client saw.
struct Script {
    core: Core,
    queue: Queue,
    policy: Arc<Policy>,
    /// Refusals recorded in the block log (and seen by the client).
    recorded: Vec<Rule>,
    /// Errors the client received, refusals and the server's own.
    errors: usize,
    /// ReadyForQuery messages relayed to the client.
    ready: usize,
}

impl Script {
    fn new((core, policy): (Core, Arc<Policy>)) -> Script {
        let queue = Queue::default();
        Script {
            core: core.with_journal(queue.journal()),
            queue,
            policy,
            recorded: Vec::new(),
            errors: 0,
            ready: 0,
        }
    }

    fn refuse(&mut self, refusal: crate::guard::Refusal, seen: bool) {
        let refused = if seen {
            Refused::Record(Box::new(crate::guard::RefusedStatement {
                refusal,
                sql: crate::guard::SqlText::from(""),
            }))
        } else {
            Refused::Error(crate::enforce::block_error(&refusal.block))
        };
        self.queue.push(Expect::Refused(refused));
    }

    /// A simple Query, as the relay sends it.
    fn query(&mut self, sql: &str) -> Option<oneshot::Receiver<bool>> {
        self.core.settle();
        match self.core.decide_query_at(sql, &self.policy) {
            Ok(execs) => {
                let limited = execs.iter().any(|e| e.allowance.limits.is_some());
                for e in execs {
                    self.queue.push(Expect::Statement(e));
                }
                self.queue.push_held(Expect::QueryEnd, limited)
            }
            Err(r) => {
                self.refuse(r, true);
                self.queue.push(Expect::QueryEnd);
                None
            }
        }
    }

    fn parse(&mut self, name: &str, sql: &str) {
        self.core.settle();
        let sql = crate::guard::SqlText::from(sql);
        match self.core.parse(name, &sql, &self.policy) {
            Step::Refuse { refusal, seen } => self.refuse(refusal, seen),
            Step::Forward { exec, .. } => {
                if exec.is_some() {
                    self.core.prepared(name, exec);
                }
                self.queue.push(Expect::Parse);
            }
        }
    }

    fn bind(&mut self, portal: &str, statement: &str) {
        self.core.settle();
        match self.core.bind(portal, statement, &self.policy) {
            Step::Refuse { refusal, seen } => self.refuse(refusal, seen),
            Step::Forward { exec, .. } => {
                if let Some(exec) = exec {
                    self.core
                        .bound(portal, Some(Arc::new(crate::guard::Exec::portal_of(&exec))));
                }
                self.queue.push(Expect::Bind);
            }
        }
    }

    fn execute(&mut self, portal: &str) -> Option<oneshot::Receiver<bool>> {
        self.core.settle();
        match self.core.execute(portal) {
            Ok(exec) => {
                let limited = exec.allowance.limits.is_some();
                self.queue.push_held(Expect::Execute(exec), limited)
            }
            Err(refusal) => {
                let seen = self.core.fail_batch();
                self.refuse(refusal, seen);
                None
            }
        }
    }

    fn close(&mut self, kind: u8, name: &str) {
        self.core.settle();
        self.core.close(kind, name);
        self.queue.push(Expect::Close);
    }

    fn sync(&mut self) {
        self.core.settle();
        self.core.end_batch();
        self.queue.push_sync(Expect::Sync);
    }

    /// The server's ErrorResponse.
    fn server_error(&mut self) {
        let on = self.queue.error();
        if let Some(Refused::Record(r)) = &on.replacement {
            self.recorded.push(r.refusal.block.rule);
        }
        self.errors += 1;
    }

    /// The server's ReadyForQuery; whether the client gets it.
    fn server_ready(&mut self) -> bool {
        let mut copy_in = false;
        match self.queue.ready(&mut copy_in).expect("a cycle to end") {
            OnReady::Relay => {
                self.ready += 1;
                true
            }
            OnReady::Internal(reply, result) => {
                let _ = reply.send(result);
                false
            }
        }
    }

    fn idle(&self) -> bool {
        self.queue.lock().is_empty()
    }
}

#[test]
fn a_server_error_in_the_middle_of_a_batch_still_ends_it() {
    // psycopg: SELECT email FROM customers WHERE id = %s::int with 'abc':
    // ParseComplete, then the server's error at Bind, then ReadyForQuery.
    let mut s = Script::new(dev());
    s.parse("", "SELECT email FROM users WHERE id = $1");
    s.bind("", "");
    s.queue.push(Expect::Describe {
        target: None,
        hidden: true,
    });
    let held = s.execute("");
    assert!(held.is_some(), "a limited statement is waited for");
    s.sync();
    s.queue.complete(|e| matches!(e, Expect::Parse)).unwrap();
    s.server_error();
    let mut held = held.unwrap();
    assert_eq!(held.try_recv(), Ok(false), "the wait ends: it never runs");
    assert!(s.server_ready());
    assert!(s.idle());
    assert!(s.recorded.is_empty(), "the server's error is no refusal");
}

#[test]
fn a_server_error_before_the_sync_is_sent_skips_until_it() {
    // A pipeline: the error arrives before the client's Sync is queued;
    // what is sent meanwhile gets no response and is not waited for.
    let mut s = Script::new(dev());
    s.parse("", "SELECT 1/0");
    s.bind("", "");
    s.execute("");
    s.queue.complete(|e| matches!(e, Expect::Parse)).unwrap();
    s.queue.complete(|e| matches!(e, Expect::Bind)).unwrap();
    s.server_error();
    s.parse("", "SELECT email FROM users LIMIT 2");
    s.bind("", "");
    assert!(s.execute("").is_none(), "the server skips it: no wait");
    s.sync();
    assert!(s.server_ready());
    assert!(s.idle() && s.recorded.is_empty());
    assert_eq!((s.errors, s.ready), (1, 1));
}

#[test]
fn a_refused_parse_is_one_refusal_with_its_facts() {
    // psycopg conn.execute("SELECT ssn FROM users WHERE id = %s", (1,)):
    // Parse refused, its Bind and Execute skipped by the server.
    let mut s = Script::new(dev());
    s.parse("", "SELECT ssn FROM users WHERE id = $1");
    s.bind("", "");
    s.queue.push(Expect::Describe {
        target: None,
        hidden: false,
    });
    s.execute("");
    s.sync();
    match s.queue.lock().front() {
        Some(Expect::Refused(Refused::Record(r))) => {
            let facts = r.refusal.facts.as_ref().unwrap();
            assert_eq!(facts.relations, ["public.users"]);
            assert_eq!(facts.columns, ["public.users.ssn"]);
        }
        other => panic!("expected a recorded refusal, got {other:?}"),
    }
    s.server_error();
    assert!(s.server_ready());
    assert_eq!(s.recorded, [Rule::CategoryBlocked]);
    assert!(s.idle());
    // The session goes on.
    s.parse("", "SELECT id FROM users");
    s.bind("", "");
    s.execute("");
    s.sync();
    assert!(s.core.portals.contains_key(""));
}

#[test]
fn a_pipeline_of_refused_statements_records_what_the_client_saw() {
    // executemany: each statement its own Sync, each one refusal.
    let mut s = Script::new(dev());
    for _ in 0..3 {
        s.parse("", "SELECT ssn FROM users WHERE id = $1");
        s.bind("", "");
        s.execute("");
        s.sync();
    }
    for _ in 0..3 {
        s.server_error();
        assert!(s.server_ready());
    }
    assert_eq!(s.recorded.len(), 3);
    assert!(s.idle());
    // One batch, three refused statements: the client sees the first.
    let mut s = Script::new(dev());
    for _ in 0..3 {
        s.parse("", "SELECT id FROM orders");
        s.bind("", "");
        s.execute("");
    }
    s.sync();
    s.server_error();
    assert!(s.server_ready());
    assert_eq!(s.recorded, [Rule::TableForbidden]);
}

#[test]
fn what_follows_a_refusal_in_its_batch_never_runs_and_is_not_kept() {
    let mut s = Script::new(dev());
    s.parse("", "SELECT id FROM users");
    s.sync();
    let before = s.core.statements[""].clone();
    s.parse("a", "SELECT id FROM orders");
    match s.core.parse(
        "b",
        &crate::guard::SqlText::from("SELECT email FROM users"),
        &s.policy,
    ) {
        Step::Forward { exec: None, .. } => {}
        other => panic!("an allowed Parse after a refusal is skipped, got {other:?}"),
    }
    assert!(!s.core.statements.contains_key("b"));
    // The server skips a Parse of the unnamed statement: the one before
    // stays, here as there.
    s.core.parse(
        "",
        &crate::guard::SqlText::from("SELECT email FROM users"),
        &s.policy,
    );
    assert!(Arc::ptr_eq(&s.core.statements[""], &before));
    match s.core.bind("p", "a", &s.policy) {
        Step::Refuse { seen: false, .. } => {}
        other => panic!("a second refusal in the batch is not seen, got {other:?}"),
    }
    s.core.end_batch();
    match s.core.parse(
        "b",
        &crate::guard::SqlText::from("SELECT email FROM users"),
        &s.policy,
    ) {
        Step::Forward {
            exec: Some(e),
            new: true,
        } => assert!(e.allowance.limits.is_some()),
        other => panic!("after Sync the statement is decided, got {other:?}"),
    }
}

#[test]
fn a_refusal_inside_a_transaction_keeps_the_cycle_whole() {
    let mut s = Script::new(dev());
    s.query("BEGIN");
    s.queue.completion().unwrap();
    assert!(s.server_ready());
    s.query("DECLARE c CURSOR FOR SELECT email FROM users");
    s.queue.completion().unwrap();
    assert!(s.server_ready());
    s.query("SELECT 1; SELECT ssn FROM users");
    s.server_error();
    assert!(s.server_ready());
    assert_eq!(s.recorded, [Rule::CategoryBlocked]);
    // The cursor is still known; a FETCH from it is limited and waited for.
    let mut held = s.query("FETCH 10 FROM c").expect("limited");
    let fetch = s.queue.head_exec().unwrap();
    assert!(Arc::ptr_eq(
        fetch.counted_by.as_ref().unwrap(),
        &s.core.cursors["c"]
    ));
    s.queue.completion().unwrap();
    assert_eq!(held.try_recv(), Ok(false));
    assert!(s.server_ready() && s.idle());
}

#[test]
fn a_portal_row_limit_suspends_and_resumes() {
    // Execute with a row count: PortalSuspended ends each Execute; both
    // count on the same portal.
    let mut s = Script::new(dev());
    s.parse("", "SELECT email FROM users");
    s.bind("p", "");
    let mut first = s.execute("p").expect("limited");
    s.queue.complete(|e| matches!(e, Expect::Parse)).unwrap();
    s.queue.complete(|e| matches!(e, Expect::Bind)).unwrap();
    let exec = s.queue.head_exec().unwrap();
    exec.count_row(10);
    s.queue.completion().unwrap();
    assert_eq!(first.try_recv(), Ok(false));
    let mut second = s.execute("p").expect("limited");
    let again = s.queue.head_exec().unwrap();
    assert!(Arc::ptr_eq(&exec, &again));
    again.count_row(10);
    assert_eq!(again.counted(), (2, 20));
    s.queue.completion().unwrap();
    assert_eq!(second.try_recv(), Ok(false));
    s.sync();
    assert!(s.server_ready() && s.idle());
}

#[test]
fn an_extended_copy_in_ends_at_the_sync_after_its_end() {
    // Execute of COPY FROM STDIN, a Sync inside the copy, CopyDone, Sync.
    let writer = Arc::new(
        Policy::from_toml_str(&super::POLICY.replace(
            "classified_predicates = true",
            "classified_predicates = true\nallow_writes = true",
        ))
        .unwrap(),
    );
    let mut s = Script::new((session("dev", &writer, true), writer));
    s.parse("", "COPY users (id) FROM STDIN");
    s.bind("", "");
    s.execute("");
    s.queue.push(Expect::SyncInCopy);
    s.queue.push(Expect::CopyEnd);
    s.sync();
    s.queue.complete(|e| matches!(e, Expect::Parse)).unwrap();
    s.queue.complete(|e| matches!(e, Expect::Bind)).unwrap();
    let mut copy_in = s.queue.copy_in_is_extended();
    assert!(copy_in, "a CopyInResponse answers the Execute");
    s.queue.completion().unwrap();
    // One ReadyForQuery: for the Sync after CopyDone, not the one inside.
    assert!(matches!(s.queue.ready(&mut copy_in), Ok(OnReady::Relay)));
    assert!(!copy_in && s.idle());
    // The COPY fails before copy mode: the Sync inside answers, then the
    // one after CopyDone.
    s.parse("", "COPY users (id) FROM STDIN");
    s.bind("", "");
    s.execute("");
    s.queue.push(Expect::SyncInCopy);
    s.queue.push(Expect::CopyEnd);
    s.sync();
    s.queue.complete(|e| matches!(e, Expect::Parse)).unwrap();
    s.queue.complete(|e| matches!(e, Expect::Bind)).unwrap();
    s.server_error();
    assert!(s.server_ready());
    assert!(s.server_ready());
    assert!(s.idle());
}

#[test]
fn a_catalog_refresh_runs_between_cycles_unseen() {
    let mut s = Script::new(dev());
    parse_then_refresh(&mut s);
    let (internal, mut rx) = Expect::internal();
    s.queue.push(internal);
    assert!(s.queue.head_is_internal());
    assert!(!s.server_ready(), "the client never sees copyguard's query");
    assert_eq!(rx.try_recv().unwrap(), Ok(Vec::new()));
    // Decisions made in the older catalog are made again.
    s.core.set_catalog(super::catalog());
    match s.core.bind("", "s", &s.policy) {
        Step::Forward {
            exec: Some(_),
            new: true,
        } => {}
        other => panic!("a statement of an older catalog is decided again, got {other:?}"),
    }
}

fn parse_then_refresh(s: &mut Script) {
    s.parse("s", "SELECT email FROM users");
    s.sync();
    s.queue.complete(|e| matches!(e, Expect::Parse)).unwrap();
    assert!(s.server_ready());
}

#[test]
fn an_unexpected_answer_is_reported() {
    let (core, p) = (session("dev", &policy(), true), policy());
    let s = Script::new((core, p));
    assert!(s.queue.completion().is_err());
    assert!(s.queue.complete(|e| matches!(e, Expect::Bind)).is_err());
    let mut copy_in = false;
    assert!(s.queue.ready(&mut copy_in).is_err());
}

/// Batch 1 of the skip scripts: `s1` the classified statement, answered.
fn classified_s1(s: &mut Script) -> Arc<crate::guard::Exec> {
    s.parse("s1", "SELECT email FROM users");
    s.sync();
    s.queue.complete(|e| matches!(e, Expect::Parse)).unwrap();
    assert!(s.server_ready());
    s.core.statements["s1"].clone()
}

/// A server error in the middle of a batch: `SELECT 1/0` fails at Execute.
fn failing_execute(s: &mut Script) {
    s.parse("failing", "SELECT 1/0");
    s.bind("", "failing");
    s.execute("");
}

/// The server's answers to [`failing_execute`]'s batch.
fn answer_failing(s: &mut Script) {
    s.queue.complete(|e| matches!(e, Expect::Parse)).unwrap();
    s.queue.complete(|e| matches!(e, Expect::Bind)).unwrap();
    s.server_error();
}

#[test]
fn names_changed_by_messages_the_server_skips_keep_their_server_meaning() {
    let mut s = Script::new(dev());
    let email = classified_s1(&mut s);
    failing_execute(&mut s);
    s.close(b'S', "s1");
    s.parse("s1", "SELECT 1");
    s.sync();
    answer_failing(&mut s);
    assert!(s.server_ready());
    s.bind("p", "s1");
    let now = s.core.statements["s1"].clone();
    assert!(Arc::ptr_eq(&now, &email), "s1 is the email statement again");
    let portal = s.core.portals["p"].clone();
    assert!(Arc::ptr_eq(portal.described_by.as_ref().unwrap(), &email));
    s.sync();
    s.queue.complete(|e| matches!(e, Expect::Bind)).unwrap();
    assert!(s.server_ready());

    // The unnamed statement, and a named portal.
    s.parse("", "SELECT email FROM users");
    s.bind("q", "");
    s.sync();
    s.queue.complete(|e| matches!(e, Expect::Parse)).unwrap();
    s.queue.complete(|e| matches!(e, Expect::Bind)).unwrap();
    assert!(s.server_ready());
    let unnamed = s.core.statements[""].clone();
    let q = s.core.portals["q"].clone();
    failing_execute(&mut s);
    s.parse("", "SELECT 1");
    s.close(b'P', "q");
    s.parse("harmless", "SELECT 1");
    s.bind("q", "harmless");
    s.sync();
    answer_failing(&mut s);
    assert!(s.server_ready());
    s.execute("q");
    assert!(Arc::ptr_eq(&s.core.statements[""], &unnamed));
    assert!(Arc::ptr_eq(&s.core.portals["q"], &q));
    assert!(!s.core.statements.contains_key("harmless"), "never parsed");
}

#[test]
fn a_pipelined_use_of_a_name_the_server_skipped_gets_no_rows() {
    // The whole pipeline is decided before the server's error arrives.
    let mut s = Script::new(dev());
    let email = classified_s1(&mut s);
    failing_execute(&mut s);
    s.close(b'S', "s1");
    s.parse("s1", "SELECT 1");
    s.sync();
    s.bind("p", "s1");
    s.execute("p");
    s.sync();
    let harmless = s.core.portals["p"].clone();
    answer_failing(&mut s);
    assert!(s.server_ready());
    assert!(
        harmless.is_poisoned(),
        "rows of the skipped plan never relayed"
    );
    s.queue.complete(|e| matches!(e, Expect::Bind)).unwrap();
    s.parse("later", "SELECT 1");
    assert!(Arc::ptr_eq(&s.core.statements["s1"], &email));
    assert!(!s.core.portals["p"].rows_allowed());
}

#[test]
fn a_name_changed_again_before_the_failure_was_known_is_forgotten() {
    // Sent before the server's error arrived: s1 closed and parsed again
    // in the next batch. Copyguard cannot tell which s1 the server has.
    let mut s = Script::new(dev());
    classified_s1(&mut s);
    failing_execute(&mut s);
    s.close(b'S', "s1");
    s.parse("s1", "SELECT 1");
    s.sync();
    s.close(b'S', "s1");
    s.parse("s1", "SELECT 2");
    s.sync();
    answer_failing(&mut s);
    assert!(s.server_ready());
    s.execute("nothing");
    assert!(!s.core.statements.contains_key("s1"));
    let r = s.core.decide_bind("s1", &s.policy.clone());
    assert_eq!(r.unwrap_err().block.rule, Rule::StatementUnknown);
}

#[test]
fn a_refused_message_the_server_skips_leaves_the_name_as_it_was() {
    // A refused Parse after the server's error: its stand-in is skipped,
    // so the name keeps its meaning on the server, and in copyguard.
    let mut s = Script::new(dev());
    let email = classified_s1(&mut s);
    failing_execute(&mut s);
    answer_failing(&mut s);
    s.parse("s1", "SELECT ssn FROM users");
    s.sync();
    assert!(s.server_ready());
    s.bind("p", "s1");
    assert!(Arc::ptr_eq(&s.core.statements["s1"], &email));
}

#[test]
fn a_simple_query_replaced_by_its_stand_in_changes_no_name() {
    // The statements were applied, then their record failed: the cycle
    // is replaced by a failing stand-in, so nothing of it happened.
    let mut s = Script::new(dev());
    let email = classified_s1(&mut s);
    let execs = s
        .core
        .decide_query_at("DEALLOCATE s1", &s.policy.clone())
        .unwrap();
    assert_eq!(execs.len(), 1);
    s.refuse(
        crate::guard::Refusal::from(crate::enforce::block(Rule::AuditUnavailable, "down")),
        true,
    );
    s.queue.push(Expect::QueryEnd);
    s.server_error();
    assert!(s.server_ready());
    s.parse("later", "SELECT 1");
    assert!(Arc::ptr_eq(&s.core.statements["s1"], &email));
}

#[test]
fn an_answered_bind_stands_when_a_later_message_of_its_session_fails() {
    // The Bind is answered; Execute and Sync note no change, so the
    // journal still holds the Bind's when the Execute fails.
    let mut s = Script::new(dev());
    let email = classified_s1(&mut s);
    s.bind("p", "s1");
    s.sync();
    s.queue.complete(|e| matches!(e, Expect::Bind)).unwrap();
    assert!(s.server_ready());
    let p = s.core.portals["p"].clone();
    let _ = s.execute("p");
    s.sync();
    s.server_error();
    assert!(s.server_ready());
    s.parse("later", "SELECT 1");
    assert!(Arc::ptr_eq(&s.core.portals["p"], &p), "p stays bound");
    assert!(Arc::ptr_eq(&s.core.statements["s1"], &email));
    assert!(!p.is_poisoned());
}
