//! Client to server: every message is understood before it goes on.
//!
//! Statements are analyzed and decided whichever way they arrive (simple
//! Query, Parse, SQL PREPARE/EXECUTE, DECLARE/FETCH). A refused message is
//! replaced by one that fails on the server (`copyguard_blocked`), so the
//! server's own error handling keeps transaction state and ReadyForQuery
//! right; the backend half swaps that error for the refusal.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::exec::{Exec, Expect, Refused, RefusedStatement};
use super::Guard;
use crate::analysis::{takes_snapshot, CopyEndpoint, StatementFacts, StatementKind};
use crate::catalog::{BackgroundRefresh, Catalog};
use crate::enforce;
use crate::guard::{Core, Refusal, SqlText, Step};
use crate::policy::{Block, Rule};
use crate::proxy::SessionError;
use crate::wire::messages::{self, ErrorFields, Severity};
use crate::wire::{Conn, Frame, FrameWriter, FrontendKind, WireError};

/// SQL that fails at parse time on the server, used in place of refused
/// statements.
const BLOCKED_SQL: &str = "copyguard_blocked";
/// A statement name no client uses, for Bind/Execute that must fail.
const BLOCKED_NAME: &str = "copyguard_blocked";

mod refresh;

/// Session state only the frontend half needs: the connections, the
/// decision core, and where the protocol stands.
pub(super) struct Frontend<'a, R, W> {
    guard: &'a Guard<'a>,
    client: &'a mut Conn<R>,
    server: &'a mut FrameWriter<W>,
    /// What decides every statement (no I/O).
    core: Core,
    in_batch: bool,
    /// An Execute of COPY FROM STDIN was sent and the client has not ended
    /// the copy yet.
    copy_in: bool,
    /// A catalog refresh claimed for the end of this cycle.
    background: BackgroundRefresh,
    /// The search path read at the session's start, for the first cycle.
    search_path_read: Option<refresh::InternalReply>,
    /// Why the session's catalog could not be checked or read (it decides
    /// with an empty one meanwhile).
    unverified: Option<String>,
    /// Whether the client's transaction reads the latest committed catalog
    /// (READ COMMITTED), when a query of this cycle asked.
    reads_latest: Option<bool>,
    /// Whether the first statement of this cycle takes its transaction's
    /// snapshot.
    snapshot: bool,
    /// Bytes and messages read from the client and not counted yet
    /// ([`Guard::count_up`] at each flush and at the end).
    uncounted: (u64, u64),
}

impl<R, W> Drop for Frontend<'_, R, W> {
    fn drop(&mut self) {
        let (bytes, messages) = std::mem::take(&mut self.uncounted);
        self.guard.count_up(bytes, messages);
    }
}

impl<'a, R, W> Frontend<'a, R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    pub fn new(
        guard: &'a Guard<'a>,
        client: &'a mut Conn<R>,
        server: &'a mut FrameWriter<W>,
        catalog: Arc<Catalog>,
    ) -> Self {
        let core = Core::new(
            guard.info.user.clone(),
            guard.class.clone(),
            guard.shared.pseudonymizer.is_some(),
            catalog,
        )
        .with_journal(guard.state.queue.journal());
        Frontend {
            guard,
            client,
            server,
            core,
            in_batch: false,
            copy_in: false,
            background: BackgroundRefresh::default(),
            search_path_read: None,
            unverified: None,
            reads_latest: None,
            snapshot: false,
            uncounted: (0, 0),
        }
    }

    /// Relays client messages until the client leaves.
    pub async fn run(mut self) -> Result<(), SessionError> {
        self.prefetch().await?;
        loop {
            let Some(frame) = self
                .client
                .read_frame()
                .await
                .map_err(SessionError::Client)?
            else {
                return Ok(());
            };
            self.uncounted.0 += frame.as_bytes().len() as u64;
            self.uncounted.1 += 1;
            if let Some(cancel) = self.guard.state.take_pending_cancel() {
                self.flush().await?;
                let _ = cancel.await;
            }
            if self
                .guard
                .state
                .abort_pending
                .swap(false, Ordering::Relaxed)
            {
                self.fail_transaction().await?;
            }
            self.core.settle();
            if let Err(e) = messages::check_frontend(&frame) {
                self.malformed(&frame, e).await?;
                if self.client.buffered() == 0 {
                    self.flush().await?;
                }
                continue;
            }
            match frame.frontend() {
                FrontendKind::Query => {
                    self.simple_query(&frame).await?;
                    // The cycle is sent, allowed or refused: a catalog load
                    // claimed for it goes out behind it.
                    self.load_in_background().await?;
                }
                FrontendKind::Parse => self.parse(&frame).await?,
                FrontendKind::Bind => self.bind(&frame).await?,
                FrontendKind::Describe => self.describe(&frame).await?,
                FrontendKind::Execute => self.execute(&frame).await?,
                FrontendKind::Close => self.close(&frame).await?,
                FrontendKind::Sync if self.copy_in => {
                    self.core.batch_failed = false;
                    self.guard.state.queue.push(Expect::SyncInCopy);
                    self.send(frame.as_bytes()).await?;
                }
                FrontendKind::Sync => {
                    self.guard.state.queue.push_sync(Expect::Sync);
                    self.in_batch = false;
                    self.core.end_batch();
                    self.send(frame.as_bytes()).await?;
                    self.load_in_background().await?;
                }
                FrontendKind::Flush => {
                    self.send(frame.as_bytes()).await?;
                    self.flush().await?;
                }
                FrontendKind::CopyDone | FrontendKind::CopyFail if self.copy_in => {
                    self.copy_in = false;
                    self.guard.state.queue.push(Expect::CopyEnd);
                    self.send(frame.as_bytes()).await?;
                }
                FrontendKind::CopyData | FrontendKind::CopyDone | FrontendKind::CopyFail => {
                    self.send(frame.as_bytes()).await?
                }
                FrontendKind::FunctionCall => {
                    let b = Block::new(
                        Rule::ProtocolFunctionCall,
                        "the FunctionCall protocol message is not available to guarded roles",
                    );
                    self.refuse_cycle(&b.into(), &SqlText::from("")).await?;
                }
                FrontendKind::Terminate => {
                    self.send(frame.as_bytes()).await?;
                    self.flush().await?;
                    return Ok(());
                }
                other => {
                    return Err(SessionError::ClientProtocol(format!(
                        "unexpected message type {:?} in a guarded session",
                        other.tag() as char
                    )))
                }
            }
            if self.client.buffered() == 0 {
                self.flush().await?;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.server
            .write_frame(bytes)
            .await
            .map_err(SessionError::Upstream)
    }

    async fn flush(&mut self) -> Result<(), SessionError> {
        let (bytes, messages) = std::mem::take(&mut self.uncounted);
        self.guard.count_up(bytes, messages);
        self.server.flush().await.map_err(SessionError::Upstream)
    }

    /// A refusal of `sql`, with the relations and classified columns it
    /// was decided on, recorded when the server reaches the failing
    /// stand-in.
    fn refused(&self, r: &Refusal, sql: &SqlText) -> Refused {
        Refused::Record(Box::new(RefusedStatement {
            refusal: self.explained(r),
            sql: sql.clone(),
        }))
    }

    /// A refusal for a name the catalog lacks, said as what it is when the
    /// catalog itself could not be checked.
    fn explained(&self, r: &Refusal) -> Refusal {
        match &self.unverified {
            Some(why) if names_unknown(r) => Refusal {
                block: Block::new(
                    Rule::CatalogUnverified,
                    format!("copyguard could not check its catalog against the server's ({why}); statements naming relations are refused until it can"),
                ),
                ..r.clone()
            },
            _ => r.clone(),
        }
    }

    /// A refusal of a message of an extended-protocol batch: not even
    /// prepared for the record when the batch already failed (the server
    /// skips the message and its error never reaches the client).
    fn refused_in_batch(&mut self, r: &Refusal, sql: &SqlText) -> Refused {
        let seen = self.core.fail_batch();
        self.refused_seen(r, seen, sql)
    }

    /// A refusal the client sees (recorded), or one of a message the
    /// server skips (not recorded).
    fn refused_seen(&self, r: &Refusal, seen: bool, sql: &SqlText) -> Refused {
        if seen {
            self.refused(r, sql)
        } else {
            Refused::Error(enforce::block_error(&self.explained(r).block))
        }
    }

    /// Replaces a whole simple-query cycle with a failing statement.
    async fn refuse_cycle(&mut self, r: &Refusal, sql: &SqlText) -> Result<(), SessionError> {
        let err = self.refused(r, sql);
        self.refuse_cycle_with(err).await
    }

    /// Replaces a whole simple-query cycle with a failing statement whose
    /// error becomes `err` (nothing of the client's runs, so the server is
    /// left as it was).
    async fn refuse_cycle_with(&mut self, err: Refused) -> Result<(), SessionError> {
        self.guard.state.queue.push(Expect::Refused(err));
        self.guard.state.queue.push(Expect::QueryEnd);
        self.send(&messages::query(BLOCKED_SQL)).await
    }

    async fn simple_query(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let sql = messages::parse_query(frame).map_err(SessionError::Client)?;
        let snapshot = self.request_takes_snapshot(&sql);
        self.refresh(snapshot).await?;
        let sql = SqlText::shared(frame.bytes(), &sql);
        let policy = self.guard.shared.policy.current();
        let execs = match self.core.decide_query_text(&sql, &policy) {
            Ok(execs) => execs,
            Err(r) if names_unknown(&r) && self.catch_up(snapshot).await? => {
                match self.core.decide_query_text(&sql, &policy) {
                    Ok(execs) => execs,
                    Err(r) => return self.refuse_cycle(&r, &sql).await,
                }
            }
            Err(r) => return self.refuse_cycle(&r, &sql).await,
        };
        for exec in &execs {
            let recorded = self
                .guard
                .allowed_verdict(&sql, &exec.facts, &exec.allowance, &exec.catalog)
                .await;
            if let Err(err) = recorded {
                return self.refuse_cycle_with(Refused::Error(err)).await;
            }
        }
        if execs.is_empty() {
            let empty = StatementFacts::new(StatementKind::Empty);
            let exec = self.core.decide(empty, &policy, None).map_err(|r| {
                SessionError::ClientProtocol(format!("empty statement refused: {}", r.block.reason))
            })?;
            self.guard.state.queue.push(Expect::Statement(exec));
        }
        for exec in &execs {
            self.guard.state.queue.push(Expect::Statement(exec.clone()));
        }
        let limited = execs.iter().any(|e| e.allowance.limits.is_some());
        let held = self.guard.state.queue.push_held(Expect::QueryEnd, limited);
        self.guard.allowed.increment(execs.len().max(1) as u64);
        self.send(frame.as_bytes()).await?;
        if let Some(rx) = held {
            self.wait_held(rx).await?;
        }
        for exec in &execs {
            self.background.note(&exec.facts.kind);
        }
        Ok(())
    }

    /// Waits until the limited statement just sent has finished or been
    /// stopped (its cancel delivered); in a batch a Flush makes the server
    /// send the result without the client's Sync. After a stop inside an extended
    /// protocol batch, a failing Parse makes the server skip the rest of
    /// the batch and roll its implicit transaction back, as if the stopped
    /// Execute had failed there.
    async fn wait_held(
        &mut self,
        rx: tokio::sync::oneshot::Receiver<bool>,
    ) -> Result<(), SessionError> {
        if self.in_batch {
            self.send(&messages::frame(FrontendKind::Flush.tag(), &[]))
                .await?;
        }
        self.flush().await?;
        let stopped = rx.await.unwrap_or(false);
        if stopped && self.in_batch {
            self.core.batch_failed = true;
            self.guard.state.queue.push(Expect::Parse);
            self.send(&messages::parse_message(BLOCKED_NAME, BLOCKED_SQL))
                .await?;
        }
        Ok(())
    }

    /// Starts an extended protocol batch unless one is open; `snapshot`:
    /// whether the message starting it takes its transaction's snapshot
    /// ([`takes_snapshot`] of a Parse's or a Bind's statement; taken as
    /// so for a Describe, Execute or Close, which run what was prepared or
    /// bound before: a `SET TRANSACTION` no longer follows them).
    async fn begin_batch(&mut self, snapshot: bool) -> Result<(), SessionError> {
        if !self.in_batch {
            self.refresh(snapshot).await?;
            self.in_batch = true;
        }
        Ok(())
    }

    async fn parse(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let msg = messages::parse_parse(frame).map_err(SessionError::Client)?;
        self.begin_batch(takes_snapshot(&msg.sql)).await?;
        let policy = self.guard.shared.policy.current();
        let sql = SqlText::shared(frame.bytes(), &msg.sql);
        let refused = match self.core.parse(&msg.name, &sql, &policy) {
            Step::Refuse { refusal, seen } => {
                if names_unknown(&refusal) {
                    self.background.probe_soon();
                }
                Some(self.refused_seen(&refusal, seen, &sql))
            }
            Step::Forward { exec: None, .. } => None,
            Step::Forward {
                exec: Some(exec), ..
            } => {
                let recorded = self
                    .guard
                    .allowed_verdict(&sql, &exec.facts, &exec.allowance, &exec.catalog)
                    .await;
                match recorded {
                    Ok(()) => {
                        self.core.prepared(&msg.name, Some(exec));
                        None
                    }
                    Err(err) => {
                        self.core.batch_failed = true;
                        self.core.prepared(&msg.name, None);
                        Some(Refused::Error(err))
                    }
                }
            }
        };
        match refused {
            Some(err) => {
                self.guard.state.queue.push(Expect::Refused(err));
                self.send(&messages::parse_message(&msg.name, BLOCKED_SQL))
                    .await
            }
            None => {
                self.guard.state.queue.push(Expect::Parse);
                self.send(frame.as_bytes()).await
            }
        }
    }

    async fn bind(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let (portal, statement) =
            messages::parse_bind_names(frame).map_err(SessionError::Client)?;
        let snapshot = !self.in_batch
            && (self.core.statements.get(&*statement))
                .and_then(|s| s.sql.as_deref())
                .is_some_and(takes_snapshot);
        self.begin_batch(snapshot).await?;
        let policy = self.guard.shared.policy.current();
        let decided = match self.core.bind(&portal, &statement, &policy) {
            Step::Refuse { refusal, seen } => {
                let sql = self.statement_sql(&statement);
                Err(self.refused_seen(&refusal, seen, &sql))
            }
            Step::Forward { exec: None, .. } => Ok(None),
            Step::Forward {
                exec: Some(exec),
                new,
            } => self.bound(&exec, new, &statement, frame).await.map(Some),
        };
        match decided {
            Err(err) => {
                self.core.batch_failed = true;
                self.core.bound(&portal, None);
                self.guard.state.queue.push(Expect::Refused(err));
                self.send(&failing_bind(&portal)).await
            }
            Ok(exec) => {
                if exec.is_some() {
                    self.core.bound(&portal, exec);
                }
                self.guard.state.queue.push(Expect::Bind);
                self.send(frame.as_bytes()).await
            }
        }
    }

    /// The text of prepared statement `name` (empty when unknown), for a
    /// Bind's record.
    fn statement_sql(&self, name: &str) -> SqlText {
        self.core
            .statements
            .get(name)
            .and_then(|s| s.sql.clone())
            .unwrap_or_else(|| SqlText::from(""))
    }

    /// The portal of an allowed Bind of `exec` (of prepared statement
    /// `statement`), its verdict recorded when `new`; the error the client
    /// gets instead when the record fails or the Bind is malformed.
    async fn bound(
        &mut self,
        exec: &Arc<Exec>,
        new: bool,
        statement: &str,
        frame: &Frame,
    ) -> Result<Arc<Exec>, Refused> {
        if new {
            let sql = self.statement_sql(statement);
            self.guard
                .allowed_verdict(&sql, &exec.facts, &exec.allowance, &exec.catalog)
                .await
                .map_err(Refused::Error)?;
        }
        let mut portal = Exec::portal_of(exec);
        if exec.allowance.pseudonymizes() {
            portal.result_formats = messages::parse_bind_result_formats(frame).map_err(|e| {
                Refused::Error(ErrorFields::new(Severity::Error, "08P01", e.to_string()))
            })?;
        }
        Ok(Arc::new(portal))
    }

    async fn describe(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.begin_batch(true).await?;
        let (kind, name) = messages::parse_target(frame).map_err(SessionError::Client)?;
        let target = if kind == b'S' {
            self.core.statements.get(&*name).cloned()
        } else {
            self.core.portals.get(&*name).cloned()
        };
        if let Some(t) = &target {
            t.describe_requested.store(true, Ordering::Relaxed);
        }
        self.guard.state.queue.push(Expect::Describe {
            target,
            hidden: false,
        });
        self.send(frame.as_bytes()).await
    }

    /// A malformed message. Inside an extended-protocol batch (Parse,
    /// Bind, Describe, Execute, Close) it is refused as PostgreSQL refuses
    /// it: an `08P01` error, and the rest of the batch skipped up to the
    /// next Sync, after which the session goes on. Any other malformed
    /// message ends the session: copyguard could no longer tell which
    /// answers the server owes.
    async fn malformed(&mut self, frame: &Frame, e: WireError) -> Result<(), SessionError> {
        let in_batch = matches!(
            frame.frontend(),
            FrontendKind::Parse
                | FrontendKind::Bind
                | FrontendKind::Describe
                | FrontendKind::Execute
                | FrontendKind::Close
        );
        if !in_batch || self.copy_in {
            return Err(SessionError::Client(e));
        }
        self.begin_batch(false).await?;
        self.core.batch_failed = true;
        let err = ErrorFields::new(
            Severity::Error,
            "08P01",
            format!("invalid frontend message: {e}"),
        );
        self.guard
            .state
            .queue
            .push(Expect::Refused(Refused::Error(err)));
        self.send(&failing_execute()).await
    }

    async fn execute(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.begin_batch(true).await?;
        let portal = messages::parse_execute_portal(frame).map_err(SessionError::Client)?;
        let exec = match self.core.execute(&portal) {
            Ok(exec) => exec,
            Err(r) => {
                let err = self.refused_in_batch(&r, &SqlText::from(""));
                self.guard.state.queue.push(Expect::Refused(err));
                return self.send(&failing_execute()).await;
            }
        };
        self.copy_in |= matches!(
            exec.facts.kind,
            StatementKind::CopyFrom {
                from: CopyEndpoint::Client,
                ..
            }
        );
        if !exec.described() {
            exec.describe_requested.store(true, Ordering::Relaxed);
            self.guard.state.queue.push(Expect::Describe {
                target: Some(exec.clone()),
                hidden: true,
            });
            self.send(&messages::describe(b'P', &portal)).await?;
        }
        self.background.note(&exec.facts.kind);
        // In a batch that already failed the server skips the Execute:
        // there is no result to wait for.
        let limited = exec.allowance.limits.is_some() && !self.core.batch_failed;
        let held = self
            .guard
            .state
            .queue
            .push_held(Expect::Execute(exec), limited);
        self.send(frame.as_bytes()).await?;
        match held {
            Some(rx) => self.wait_held(rx).await,
            None => Ok(()),
        }
    }

    async fn close(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.begin_batch(true).await?;
        let (kind, name) = messages::parse_target(frame).map_err(SessionError::Client)?;
        self.core.close(kind, &name);
        self.guard.state.queue.push(Expect::Close);
        self.send(frame.as_bytes()).await
    }
}

/// A Bind of a statement that does not exist: fails on the server.
fn failing_bind(portal: &str) -> bytes::Bytes {
    messages::bind_message(portal, BLOCKED_NAME)
}

/// An Execute of a portal that does not exist: fails on the server.
fn failing_execute() -> bytes::Bytes {
    messages::execute_message(BLOCKED_NAME, 0)
}

/// Whether a refusal is for a relation or column the catalog does not
/// have, which a schema change made outside copyguard may explain.
fn names_unknown(r: &Refusal) -> bool {
    matches!(
        r.block.rule,
        Rule::AnalysisUnknownRelation | Rule::AnalysisUnknownColumn
    )
}
