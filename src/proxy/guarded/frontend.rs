//! Client to server: every message is understood before it goes on.
//!
//! Statements are analyzed and decided whichever way they arrive (simple
//! Query, Parse, SQL PREPARE/EXECUTE, DECLARE/FETCH). A refused message is
//! replaced by one that fails on the server (`copyguard_blocked`), so the
//! server's own error handling keeps transaction state and ReadyForQuery
//! right; the backend half swaps that error for the refusal.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, BufWriter};
use tracing::warn;

use super::exec::{Exec, Expect, InternalResult};
use super::Guard;
use crate::analysis::{self, AnalysisError, Context, CopyEndpoint, StatementFacts, StatementKind};
use crate::catalog::{parse_name_array, Catalog, CatalogRows, LOAD_SQL};
use crate::enforce;
use crate::policy::{Block, ClassMode, Policy, RoleClass, Verdict};
use crate::proxy::SessionError;
use crate::wire::messages::{self, ErrorFields, Severity};
use crate::wire::{Conn, Frame};

/// SQL that fails at parse time on the server, used in place of refused
/// statements.
const BLOCKED_SQL: &str = "copyguard_blocked";
/// A statement name no client uses, for Bind/Execute that must fail.
const BLOCKED_NAME: &str = "copyguard_blocked";

/// Session state only the frontend half needs.
pub(super) struct Frontend<'a, R, W> {
    guard: &'a Guard<'a>,
    client: &'a mut Conn<R>,
    server: &'a mut BufWriter<W>,
    catalog: Arc<Catalog>,
    search_path: Vec<String>,
    search_path_dirty: bool,
    catalog_dirty: bool,
    /// Bumped whenever the search path or the catalog changes: decisions
    /// made in an older context are analyzed again before they run.
    context: u64,
    /// The session ran DDL: ending a transaction or DISCARD may then drop
    /// or revert relations, so the catalog is reloaded.
    ddl_seen: bool,
    in_batch: bool,
    /// A statement executed in this extended-protocol batch changed how
    /// names resolve; nothing more is analyzed until the next Sync.
    batch_changed: bool,
    /// An Execute of COPY FROM STDIN was sent and the client has not ended
    /// the copy yet.
    copy_in: bool,
    statements: HashMap<String, Arc<Exec>>,
    portals: HashMap<String, Arc<Exec>>,
    cursors: HashMap<String, Arc<Exec>>,
}

impl<'a, R, W> Frontend<'a, R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    pub fn new(
        guard: &'a Guard<'a>,
        client: &'a mut Conn<R>,
        server: &'a mut BufWriter<W>,
        catalog: Arc<Catalog>,
    ) -> Self {
        let catalog_dirty = catalog.relations().next().is_none();
        Frontend {
            guard,
            client,
            server,
            catalog,
            search_path: vec!["pg_catalog".to_owned(), "public".to_owned()],
            search_path_dirty: true,
            catalog_dirty,
            context: 0,
            ddl_seen: false,
            in_batch: false,
            batch_changed: false,
            copy_in: false,
            statements: HashMap::new(),
            portals: HashMap::new(),
            cursors: HashMap::new(),
        }
    }

    /// Relays client messages until the client leaves.
    pub async fn run(mut self) -> Result<(), SessionError> {
        loop {
            let Some(frame) = self
                .client
                .read_frame()
                .await
                .map_err(SessionError::Client)?
            else {
                return Ok(());
            };
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
            match frame.tag() {
                b'Q' => self.simple_query(&frame).await?,
                b'P' => self.parse(&frame).await?,
                b'B' => self.bind(&frame).await?,
                b'D' => self.describe(&frame).await?,
                b'E' => self.execute(&frame).await?,
                b'C' => self.close(&frame).await?,
                b'S' if self.copy_in => {
                    self.guard.state.push(Expect::SyncInCopy);
                    self.send(frame.as_bytes()).await?;
                }
                b'S' => {
                    self.guard.state.push(Expect::Sync);
                    self.in_batch = false;
                    self.batch_changed = false;
                    self.send(frame.as_bytes()).await?;
                }
                b'H' => {
                    self.send(frame.as_bytes()).await?;
                    self.flush().await?;
                }
                b'c' | b'f' if self.copy_in => {
                    self.copy_in = false;
                    self.guard.state.push(Expect::CopyEnd);
                    self.send(frame.as_bytes()).await?;
                }
                b'd' | b'c' | b'f' => self.send(frame.as_bytes()).await?,
                b'F' => {
                    let b = enforce::block(
                        "protocol.function_call",
                        "the FunctionCall protocol message is not available to guarded roles",
                    );
                    self.refuse_cycle(&b, "").await?;
                }
                b'X' => {
                    self.send(frame.as_bytes()).await?;
                    self.flush().await?;
                    return Ok(());
                }
                other => {
                    return Err(SessionError::ClientProtocol(format!(
                        "unexpected message type {:?} in a guarded session",
                        other as char
                    )))
                }
            }
            if self.client.buffered() == 0 {
                self.flush().await?;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        use tokio::io::AsyncWriteExt;
        self.server
            .write_all(bytes)
            .await
            .map_err(|e| SessionError::Upstream(e.into()))
    }

    async fn flush(&mut self) -> Result<(), SessionError> {
        use tokio::io::AsyncWriteExt;
        self.server
            .flush()
            .await
            .map_err(|e| SessionError::Upstream(e.into()))
    }

    /// Runs a query for copyguard itself, after everything sent so far.
    async fn internal(&mut self, sql: &str) -> Result<InternalResult, SessionError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.guard.state.push(Expect::Internal {
            reply,
            sets: Vec::new(),
            error: None,
        });
        self.send(&messages::query(sql)).await?;
        self.flush().await?;
        rx.await
            .map_err(|_| SessionError::UpstreamProtocol("internal query abandoned".into()))
    }

    /// Puts the server's transaction into the failed state (after a result
    /// was stopped inside it), silently: the failing statement's error and
    /// ReadyForQuery go nowhere.
    async fn fail_transaction(&mut self) -> Result<(), SessionError> {
        let (reply, _ignored) = tokio::sync::oneshot::channel();
        self.guard.state.push(Expect::Internal {
            reply,
            sets: Vec::new(),
            error: None,
        });
        self.send(&messages::query(BLOCKED_SQL)).await
    }

    /// Refreshes the catalog and the search path when they may have
    /// changed, at the start of a request cycle (never inside an extended
    /// protocol batch, never in a failed transaction). Inside a
    /// transaction block the session keeps its own view: it neither adopts
    /// nor publishes a shared catalog, since uncommitted DDL is visible to
    /// one side only.
    async fn refresh(&mut self) -> Result<(), SessionError> {
        let status = self.guard.state.status.load(Ordering::Relaxed);
        if status == b'E' {
            return Ok(());
        }
        let idle = status == b'I';
        let cache = &self.guard.shared.catalogs;
        if let Some(newer) = cache.get(&self.guard.info.database).filter(|_| idle) {
            if newer.loaded_at > self.catalog.loaded_at {
                self.catalog = newer;
                self.context += 1;
            }
        }
        if self.catalog_dirty || cache.is_stale(&self.catalog) {
            match self.internal(LOAD_SQL).await? {
                Ok(sets) => match CatalogRows::from_sets(sets).and_then(|r| r.into_catalog()) {
                    Ok(catalog) => {
                        let catalog = Arc::new(catalog);
                        if idle {
                            cache.put(&self.guard.info.database, catalog.clone());
                        }
                        self.catalog = catalog;
                        self.catalog_dirty = false;
                        self.context += 1;
                    }
                    Err(e) => warn!(error = %e, "catalog reload failed"),
                },
                Err(e) => warn!(error = %e, "catalog reload failed"),
            }
        }
        if self.search_path_dirty {
            if let Ok(sets) = self
                .internal("SELECT pg_catalog.current_schemas(true)::text")
                .await?
            {
                let path = sets
                    .first()
                    .and_then(|rows| rows.first())
                    .and_then(|row| row.first().cloned().flatten())
                    .and_then(|text| parse_name_array(&text));
                if let Some(path) = path {
                    if path != self.search_path {
                        self.context += 1;
                    }
                    self.search_path = path;
                    self.search_path_dirty = false;
                }
            }
        }
        Ok(())
    }

    fn analyze(&self, sql: &str) -> Result<Vec<StatementFacts>, Block> {
        let ctx = Context {
            catalog: &self.catalog,
            search_path: &self.search_path,
        };
        analysis::analyze(sql, &ctx)
            .map(|f| f.statements)
            .map_err(|e| analysis_block(&e))
    }

    /// `stmt`'s decision as it stands now: analyzed again from its text when
    /// the search path or catalog changed since (PostgreSQL re-plans it
    /// too), decided again when the policy changed.
    fn redecide(&self, stmt: &Arc<Exec>, policy: &Arc<Policy>) -> Result<Arc<Exec>, Block> {
        if stmt.context != self.context {
            let Some(sql) = &stmt.sql else {
                return Err(context_change_block());
            };
            let mut statements = self.analyze(sql)?;
            if statements.len() != 1 {
                return Err(context_change_block());
            }
            return self.decide(statements.remove(0), policy, Some(sql.clone()));
        }
        if Arc::ptr_eq(&stmt.policy, policy) {
            return Ok(stmt.clone());
        }
        self.decide((*stmt.facts).clone(), policy, stmt.sql.clone())
    }

    /// Decides one statement, substituting what EXECUTE and FETCH refer to.
    /// `sql` is the statement's own text when it came alone.
    fn decide(
        &self,
        facts: StatementFacts,
        policy: &Arc<Policy>,
        sql: Option<Arc<str>>,
    ) -> Result<Arc<Exec>, Block> {
        let mut counted_by = None;
        let facts = match &facts.kind {
            StatementKind::Execute { name } => {
                let prepared = self.statements.get(name).ok_or_else(|| {
                    enforce::block(
                        "statement.unknown",
                        format!("no prepared statement {name:?} known to copyguard"),
                    )
                })?;
                let prepared = self.redecide(prepared, policy)?;
                let mut inner = (*prepared.facts).clone();
                inner.kind = facts.kind.clone();
                inner.functions.extend(facts.functions.iter().cloned());
                inner.settings.extend(facts.settings.iter().cloned());
                inner.predicates.extend(facts.predicates.iter().copied());
                inner
            }
            StatementKind::Fetch { name, is_move } => {
                let cursor = self.cursors.get(name).ok_or_else(|| {
                    enforce::block(
                        "cursor.unknown",
                        format!("no cursor {name:?} known to copyguard"),
                    )
                })?;
                let mut inner = (*cursor.facts).clone();
                inner.kind = facts.kind.clone();
                if *is_move {
                    inner.outputs.clear();
                }
                counted_by = Some(cursor.clone());
                inner
            }
            StatementKind::Set { name }
                if enforce::is_lexer_setting(name)
                    && !sql
                        .as_deref()
                        .is_some_and(enforce::is_safe_client_encoding_set) =>
            {
                return Err(enforce::block(
                    "setting.lexer",
                    format!("guarded sessions cannot change {name}: it changes how the server reads SQL text"),
                ));
            }
            _ => facts,
        };
        let class = self.class(policy);
        match policy.decide(&class, &self.catalog, &facts) {
            Verdict::Block(b) => Err(b),
            Verdict::Allow(a) if a.pseudonymizes() && self.guard.shared.pseudonymizer.is_none() => {
                Err(enforce::block(
                    "pseudonym.no_key",
                    "role class gets these columns pseudonymized, but copyguard has no pseudonymization key (pseudonym.key_file)",
                ))
            }
            Verdict::Allow(allowance) => {
                let scrub = allowance.touches_classified;
                let mut exec = Exec::new(
                    Arc::new(facts),
                    allowance,
                    scrub,
                    policy.clone(),
                    self.catalog.clone(),
                    class,
                );
                exec.counted_by = counted_by;
                exec.sql = sql;
                exec.context = self.context;
                Ok(Arc::new(exec))
            }
        }
    }

    /// The session's role class under `policy`: membership is re-read so a
    /// reloaded policy's limits apply at the next statement, but a guarded
    /// session never becomes unguarded (a role that is production in the new
    /// policy keeps its login class).
    /// A session admitted with a dump grant keeps it (see
    /// [`crate::dumps::granted_class`]).
    fn class(&self, policy: &Policy) -> Arc<RoleClass> {
        let class = policy.classify_role(&self.guard.info.user);
        let class = if class.mode == ClassMode::Guarded {
            class
        } else {
            self.guard.class.clone()
        };
        match &self.guard.class.dump {
            Some(dump) => Arc::new(crate::dumps::granted_class(&class, dump)),
            None => class,
        }
    }

    /// Applies what an allowed statement changes in the session.
    fn apply(&mut self, exec: &Arc<Exec>) {
        match &exec.facts.kind {
            StatementKind::Prepare { name, .. } => {
                self.statements.insert(name.clone(), exec.clone());
            }
            StatementKind::Deallocate { name: Some(name) } => {
                self.statements.remove(name);
            }
            StatementKind::Deallocate { name: None } => self.statements.clear(),
            StatementKind::Declare { name } => {
                self.cursors.insert(name.clone(), exec.clone());
            }
            StatementKind::CloseCursor { name: Some(name) } => {
                self.cursors.remove(name);
            }
            StatementKind::CloseCursor { name: None } => self.cursors.clear(),
            _ if exec.facts.sets_search_path() => self.search_path_dirty = true,
            StatementKind::Transaction { ends: true } | StatementKind::Discard => {
                self.search_path_dirty = true;
                self.catalog_dirty |= self.ddl_seen;
            }
            StatementKind::Ddl(_)
            | StatementKind::CreateTableAs
            | StatementKind::MaterializedView => {
                self.catalog_dirty = true;
                self.search_path_dirty = true;
                self.ddl_seen = true;
            }
            _ => {}
        }
    }

    /// Records a refusal of `sql`; the error the client gets.
    async fn refused(&mut self, b: &Block, sql: &str) -> ErrorFields {
        self.guard.refusal(b, "statement refused", sql, None).await
    }

    /// Replaces a whole simple-query cycle with a failing statement.
    async fn refuse_cycle(&mut self, b: &Block, sql: &str) -> Result<(), SessionError> {
        let err = self.refused(b, sql).await;
        self.refuse_cycle_with(err).await
    }

    /// Replaces a whole simple-query cycle with a failing statement whose
    /// error becomes `err`.
    async fn refuse_cycle_with(&mut self, err: ErrorFields) -> Result<(), SessionError> {
        self.guard.state.push(Expect::Refused(err));
        self.guard.state.push(Expect::QueryEnd);
        self.send(&messages::query(BLOCKED_SQL)).await
    }

    async fn simple_query(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.refresh().await?;
        let sql = messages::parse_query(frame).map_err(SessionError::Client)?;
        let policy = self.guard.shared.policy.current();
        let execs = match self.decide_query(&sql, &policy) {
            Ok(execs) => execs,
            Err(b) => return self.refuse_cycle(&b, &sql).await,
        };
        for exec in &execs {
            let recorded = self
                .guard
                .allowed_verdict(&sql, &exec.facts, &exec.allowance, &exec.catalog)
                .await;
            if let Err(err) = recorded {
                return self.refuse_cycle_with(err).await;
            }
        }
        if execs.is_empty() {
            let empty = StatementFacts::new(StatementKind::Empty);
            let exec = self.decide(empty, &policy, None).map_err(|b| {
                SessionError::ClientProtocol(format!("empty statement refused: {}", b.reason))
            })?;
            self.guard.state.push(Expect::Statement(exec));
        }
        for exec in &execs {
            self.guard.state.push(Expect::Statement(exec.clone()));
        }
        self.guard.state.push(Expect::QueryEnd);
        self.guard.allowed.increment(execs.len().max(1) as u64);
        let held = execs
            .iter()
            .any(|e| e.allowance.limits.is_some())
            .then(|| self.guard.state.hold());
        self.send(frame.as_bytes()).await?;
        match held {
            Some(rx) => self.wait_held(rx).await,
            None => Ok(()),
        }
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
            self.send(&messages::frame(b'H', &[])).await?;
        }
        self.flush().await?;
        let stopped = rx.await.unwrap_or(false);
        if stopped && self.in_batch {
            self.guard.state.push(Expect::Parse);
            self.send(&messages::parse_message(BLOCKED_NAME, BLOCKED_SQL))
                .await?;
        }
        Ok(())
    }

    /// Analyzes and decides the statements of a simple Query in order,
    /// applying each one's effect on the session before deciding the next
    /// (a DECLARE then its FETCH). After a statement that changes how names
    /// resolve, the rest of the string could resolve differently on the
    /// server than here, so only statements that name no relation may
    /// follow. On a refusal the session's statements and cursors are as
    /// before.
    fn decide_query(&mut self, sql: &str, policy: &Arc<Policy>) -> Result<Vec<Arc<Exec>>, Block> {
        let statements = self.analyze(sql)?;
        let alone = (statements.len() == 1).then(|| Arc::<str>::from(sql));
        let saved = (self.statements.clone(), self.cursors.clone());
        let mut changed = false;
        let mut execs = Vec::with_capacity(statements.len());
        for facts in statements {
            let decided = if changed && !names_no_relation(&facts.kind) {
                Err(context_change_block())
            } else {
                self.decide(facts, policy, alone.clone())
            };
            match decided {
                Ok(exec) => {
                    changed |= changes_context(&exec.facts);
                    self.apply(&exec);
                    execs.push(exec);
                }
                Err(b) => {
                    (self.statements, self.cursors) = saved;
                    return Err(b);
                }
            }
        }
        if execs.len() > 1 && execs.iter().any(|e| e.allowance.limits.is_some()) {
            (self.statements, self.cursors) = saved;
            return Err(enforce::block(
                "statement.limited_not_alone",
                "a statement returning classified rows must be sent as a query of its own: copyguard stops it at its limits, and statements after it in the same query string would still run",
            ));
        }
        Ok(execs)
    }

    async fn begin_batch(&mut self) -> Result<(), SessionError> {
        if !self.in_batch {
            self.refresh().await?;
            self.in_batch = true;
        }
        Ok(())
    }

    async fn parse(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.begin_batch().await?;
        let msg = messages::parse_parse(frame).map_err(SessionError::Client)?;
        let policy = self.guard.shared.policy.current();
        let sql: Arc<str> = Arc::from(msg.sql.as_str());
        let decided = if self.batch_changed {
            Err(context_change_block())
        } else {
            self.analyze(&sql)
                .and_then(|mut statements| match statements.len() {
                    0 => self
                        .decide(StatementFacts::new(StatementKind::Empty), &policy, None)
                        .map(Some),
                    1 => self
                        .decide(statements.remove(0), &policy, Some(sql.clone()))
                        .map(Some),
                    _ => Ok(None),
                })
        };
        let decided = match decided {
            Err(b) => Err(self.refused(&b, &sql).await),
            Ok(Some(exec)) => self
                .guard
                .allowed_verdict(&sql, &exec.facts, &exec.allowance, &exec.catalog)
                .await
                .map(|()| Some(exec)),
            Ok(None) => Ok(None),
        };
        match decided {
            Err(err) => {
                self.statements.remove(&msg.name);
                self.guard.state.push(Expect::Refused(err));
                self.send(&messages::parse_message(&msg.name, BLOCKED_SQL))
                    .await
            }
            Ok(exec) => {
                match exec {
                    Some(exec) => {
                        self.statements.insert(msg.name.clone(), exec);
                    }
                    None => {
                        self.statements.remove(&msg.name);
                    }
                }
                self.guard.state.push(Expect::Parse);
                self.send(frame.as_bytes()).await
            }
        }
    }

    async fn bind(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.begin_batch().await?;
        let (portal, statement) =
            messages::parse_bind_names(frame).map_err(SessionError::Client)?;
        let policy = self.guard.shared.policy.current();
        let stored = self.statements.get(&statement).cloned();
        let sql = stored.as_ref().and_then(|s| s.sql.clone());
        let sql = sql.as_deref().unwrap_or("");
        let decided = match stored {
            _ if self.batch_changed => Err(context_change_block()),
            None => Err(enforce::block(
                "statement.unknown",
                format!("no prepared statement {statement:?} known to copyguard"),
            )),
            Some(stmt) => self
                .redecide(&stmt, &policy)
                .map(|exec| (exec.clone(), !Arc::ptr_eq(&exec, &stmt))),
        };
        let decided = match decided {
            Err(b) => Err(self.refused(&b, sql).await),
            Ok((exec, true)) => self
                .guard
                .allowed_verdict(sql, &exec.facts, &exec.allowance, &exec.catalog)
                .await
                .map(|()| exec),
            Ok((exec, false)) => Ok(exec),
        };
        let decided = decided.and_then(|exec| {
            let mut portal = Exec::portal_of(&exec);
            if exec.allowance.pseudonymizes() {
                portal.result_formats = messages::parse_bind_result_formats(frame)
                    .map_err(|e| ErrorFields::new(Severity::Error, "08P01", e.to_string()))?;
            }
            Ok(Arc::new(portal))
        });
        match decided {
            Err(err) => {
                self.portals.remove(&portal);
                self.guard.state.push(Expect::Refused(err));
                self.send(&failing_bind(&portal)).await
            }
            Ok(exec) => {
                self.portals.insert(portal, exec);
                self.guard.state.push(Expect::Bind);
                self.send(frame.as_bytes()).await
            }
        }
    }

    async fn describe(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.begin_batch().await?;
        let (kind, name) = messages::parse_target(frame).map_err(SessionError::Client)?;
        let target = if kind == b'S' {
            self.statements.get(&name).cloned()
        } else {
            self.portals.get(&name).cloned()
        };
        if let Some(t) = &target {
            t.describe_requested.store(true, Ordering::Relaxed);
        }
        self.guard.state.push(Expect::Describe {
            target,
            hidden: false,
        });
        self.send(frame.as_bytes()).await
    }

    async fn execute(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.begin_batch().await?;
        let portal = messages::parse_execute_portal(frame).map_err(SessionError::Client)?;
        let Some(exec) = self.portals.get(&portal).cloned() else {
            let b = enforce::block(
                "portal.unknown",
                format!("no portal {portal:?} known to copyguard"),
            );
            let err = self.refused(&b, "").await;
            self.guard.state.push(Expect::Refused(err));
            return self.send(&failing_execute()).await;
        };
        self.apply(&exec);
        self.batch_changed |= changes_context(&exec.facts);
        self.copy_in |= matches!(
            exec.facts.kind,
            StatementKind::CopyFrom {
                from: CopyEndpoint::Client,
                ..
            }
        );
        if !exec.described() {
            exec.describe_requested.store(true, Ordering::Relaxed);
            self.guard.state.push(Expect::Describe {
                target: Some(exec.clone()),
                hidden: true,
            });
            self.send(&messages::describe(b'P', &portal)).await?;
        }
        let held = exec
            .allowance
            .limits
            .is_some()
            .then(|| self.guard.state.hold());
        self.guard.state.push(Expect::Execute(exec));
        self.send(frame.as_bytes()).await?;
        match held {
            Some(rx) => self.wait_held(rx).await,
            None => Ok(()),
        }
    }

    async fn close(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.begin_batch().await?;
        let (kind, name) = messages::parse_target(frame).map_err(SessionError::Client)?;
        if kind == b'S' {
            self.statements.remove(&name);
        } else {
            self.portals.remove(&name);
        }
        self.guard.state.push(Expect::Close);
        self.send(frame.as_bytes()).await
    }
}

/// A Bind of a statement that does not exist: fails on the server.
fn failing_bind(portal: &str) -> bytes::Bytes {
    let mut body = Vec::new();
    body.extend_from_slice(portal.as_bytes());
    body.push(0);
    body.extend_from_slice(BLOCKED_NAME.as_bytes());
    body.push(0);
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    messages::frame(b'B', &body)
}

/// An Execute of a portal that does not exist: fails on the server.
fn failing_execute() -> bytes::Bytes {
    let mut body = BLOCKED_NAME.as_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(&0i32.to_be_bytes());
    messages::frame(b'E', &body)
}

/// Whether running a statement of `kind` may change how later names
/// resolve: the search path, the relations that exist (DDL, and the end of
/// a transaction or DISCARD undoing or dropping some).
fn changes_context(facts: &StatementFacts) -> bool {
    match &facts.kind {
        _ if facts.sets_search_path() => true,
        StatementKind::Transaction { ends } => *ends,
        StatementKind::Discard
        | StatementKind::Ddl(_)
        | StatementKind::CreateTableAs
        | StatementKind::MaterializedView => true,
        _ => false,
    }
}

/// Statements that name no relation and may follow a context change in
/// the same query string.
fn names_no_relation(kind: &StatementKind) -> bool {
    matches!(
        kind,
        StatementKind::Transaction { .. }
            | StatementKind::Set { .. }
            | StatementKind::Show
            | StatementKind::Listen
            | StatementKind::Discard
            | StatementKind::Deallocate { .. }
            | StatementKind::CloseCursor { .. }
            | StatementKind::Empty
    )
}

/// The refusal for a statement that would run in a context copyguard has
/// not seen yet.
fn context_change_block() -> Block {
    enforce::block(
        "analysis.context_change",
        "this statement follows a change of search_path, DDL or the end of a transaction in the same request, so copyguard cannot know how its names will resolve; send it as a separate query (or after a Sync)",
    )
}

/// The refusal for a statement analysis could not understand.
fn analysis_block(e: &AnalysisError) -> Block {
    let rule = match e {
        AnalysisError::Parse(_) => "analysis.parse",
        AnalysisError::UnknownRelation(_) => "analysis.unknown_relation",
        AnalysisError::UnknownColumn(_) => "analysis.unknown_column",
        AnalysisError::Unsupported(_) => "analysis.unsupported",
    };
    let hint = match e {
        AnalysisError::UnknownRelation(_) => {
            " (a relation created earlier in the same request is not known yet: send the statements that use it separately)"
        }
        _ => "",
    };
    enforce::block(
        rule,
        format!("copyguard could not analyze the statement ({e}){hint}; guarded sessions run only statements it understands"),
    )
}
