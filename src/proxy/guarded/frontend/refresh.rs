//! The frontend's own queries on the session's upstream connection: the
//! catalog and search path refreshed at the start of a request cycle, a
//! catalog load sent behind the client's statement, and the silent failure
//! of a transaction whose result was stopped. Inside the client's
//! transaction they run under a savepoint, so a failing one leaves that
//! transaction as it was.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

use super::{Frontend, BLOCKED_SQL};
use crate::analysis::{kinds_take_snapshot, takes_snapshot};
use crate::catalog::{
    is_dated, load_in_background, parse_name_array, stamp_of, Catalog, CatalogRows, Claim,
    LoadTicket, Probe, LOAD_SQL, STAMP_SQL,
};
use crate::proxy::guarded::exec::{Expect, InternalResult};
use crate::proxy::SessionError;
use crate::wire::messages;

/// What the search path is read with.
const SEARCH_PATH_SQL: &str = "SELECT pg_catalog.current_schemas(true)::text";
/// What the client's transaction's isolation level is read with.
const ISOLATION_SQL: &str = "SELECT pg_catalog.current_setting('transaction_isolation')";
/// Before a query for copyguard inside the client's transaction: a
/// savepoint, and no `statement_timeout` of the client's.
const SAVEPOINT_SQL: &str = "SAVEPOINT copyguard_internal; SET LOCAL statement_timeout = 0";
/// After it, answered or failed: the transaction back to where it was.
const UNDO_SQL: &str =
    "ROLLBACK TO SAVEPOINT copyguard_internal; RELEASE SAVEPOINT copyguard_internal";
/// Before a query for copyguard outside a transaction block: no
/// `statement_timeout` of the client's until the batch's Sync ends its
/// implicit transaction.
const UNTIMED_SQL: &str = "SELECT pg_catalog.set_config('statement_timeout', '0', true)";

impl<R, W> Frontend<'_, R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    /// Runs a query for copyguard itself, after everything sent so far.
    pub(super) async fn internal(&mut self, sql: &str) -> Result<InternalResult, SessionError> {
        let rx = self.send_internal(sql).await?;
        self.flush().await?;
        internal_answer(rx).await
    }

    /// [`internal`](Self::internal) of a query that only reads, run
    /// without the client's `statement_timeout` (set for its own
    /// statements, it would fail the check and then refuse them) and
    /// leaving the client's transaction, when the server is in one (not
    /// `idle`), as it was: there the query runs under a savepoint, rolled
    /// back to after it.
    async fn internal_kept(
        &mut self,
        sql: &str,
        idle: bool,
    ) -> Result<InternalResult, SessionError> {
        if idle {
            let answer = self.internal(&format!("{UNTIMED_SQL}; {sql}")).await?;
            return Ok(answer.map(without_first));
        }
        let wrapped = format!("{SAVEPOINT_SQL}; {sql}; {UNDO_SQL}");
        match self.internal(&wrapped).await? {
            // The savepoint's completion opened an empty set.
            Ok(sets) => Ok(Ok(without_first(sets))),
            Err(e) => {
                if let Err(undo) = self.internal(UNDO_SQL).await? {
                    warn!(error = %undo, "a failed query of copyguard's could not be rolled back: the client's transaction is aborted");
                }
                Ok(Err(e))
            }
        }
    }

    /// Queues a query for copyguard itself without flushing or waiting,
    /// in the extended protocol (the client's unnamed statement survives
    /// it); its answer comes on the receiver.
    async fn send_internal(&mut self, sql: &str) -> Result<InternalReply, SessionError> {
        let (expect, rx) = Expect::internal();
        self.guard.state.queue.push(expect);
        self.send(&messages::internal_batch(sql)).await?;
        Ok(rx)
    }

    /// Puts the server's transaction into the failed state (after a result
    /// was stopped inside it), silently: the failing statement's error and
    /// ReadyForQuery go nowhere.
    pub(super) async fn fail_transaction(&mut self) -> Result<(), SessionError> {
        self.send_internal(BLOCKED_SQL).await.map(drop)
    }

    /// Refreshes the catalog and the search path when they may have
    /// changed, at the start of a request cycle (never inside an extended
    /// protocol batch, never in a failed transaction). Inside a
    /// transaction block the session keeps its own view: it neither adopts
    /// nor publishes a shared catalog, since uncommitted DDL is visible to
    /// one side only, and replaces that view once idle again. A catalog
    /// that is only old is reloaded after the cycle, not before it
    /// ([`BackgroundRefresh`]); inside a transaction an old catalog is kept
    /// until the session is idle. A catalog a probe dated is never decided
    /// with again: the session loads a newer one or waits for the load in
    /// flight; inside a READ COMMITTED transaction it loads one in it,
    /// inside a transaction reading one snapshot it refuses statements
    /// naming relations until the transaction ends. A cycle with nothing
    /// in flight then probes the stamp when the database's probe is due,
    /// inside a transaction too when the cycle's first statement takes
    /// the transaction's snapshot (`snapshot`,
    /// [`crate::analysis::takes_snapshot`]) or one before it did. The
    /// search path is read again when the catalog changed, and every
    /// `limits.catalog_check` anyway.
    pub(super) async fn refresh(&mut self, snapshot: bool) -> Result<(), SessionError> {
        self.background.give_up();
        self.reads_latest = None;
        if self.guard.state.probe_wanted.swap(false, Ordering::Relaxed) {
            self.background.probe_soon();
        }
        let status = self.guard.state.status.load(Ordering::Relaxed);
        if status == b'E' {
            return Ok(());
        }
        let idle = status == b'I';
        if idle {
            self.background.idle();
        }
        self.snapshot = snapshot;
        let every = self.guard.shared.config.limits.catalog_check;
        let may_query =
            self.settled() && (idle || self.background.may_query_in_transaction(snapshot));
        if may_query && self.background.path_check_due(every) {
            self.core.search_path_dirty = true;
        }
        let updated = self.update_catalog(idle).await?;
        self.refresh_search_path(idle).await?;
        // Settled asked again: at a session's first cycle the loads sent at
        // its start were in flight above and are answered by now.
        if !updated && self.settled() && (idle || self.background.probes_in_transaction(snapshot)) {
            let cache = &self.guard.shared.catalogs;
            let again = match self
                .background
                .probe_due(cache, &self.guard.info.database, every)
            {
                Probe::Due => self.probe(idle).await?,
                // What the probe that verified the database dated was
                // published before it counted: look once more.
                Probe::FreshNow => true,
                Probe::Fresh => false,
            };
            if again {
                self.update_catalog(idle).await?;
                self.refresh_search_path(idle).await?;
            }
        }
        Ok(())
    }

    /// Whether the simple Query `sql` takes its transaction's snapshot
    /// before a transaction statement could need to come first, so that
    /// copyguard may probe inside the transaction before it: told from the
    /// leading keyword, and only where it matters (inside a transaction
    /// that has taken none, a request such as `SET LOCAL ...; SELECT ...`)
    /// from the kinds of all its statements.
    pub(super) fn request_takes_snapshot(&self, sql: &str) -> bool {
        if takes_snapshot(sql) {
            return true;
        }
        let in_transaction = self.guard.state.status.load(Ordering::Relaxed) == b'T';
        in_transaction
            && !self.background.may_query_in_transaction(false)
            && self
                .core
                .analyze(sql)
                .is_ok_and(|statements| kinds_take_snapshot(statements.iter().map(|s| &s.kind)))
    }

    /// Whether the server is idle outside a transaction with nothing of
    /// the session's in flight: a query for copyguard may run now without
    /// touching a transaction of the client's.
    fn quiet(&self, idle: bool) -> bool {
        idle && self.settled()
    }

    /// Whether nothing of the session's is in flight and no extended
    /// protocol batch is open: a query for copyguard may run now, inside
    /// the client's transaction if the server is in one.
    fn settled(&self) -> bool {
        !self.in_batch && self.guard.state.queue.lock().is_empty()
    }

    /// Whether the client's transaction reads the latest committed catalog
    /// (READ COMMITTED: each statement takes a new snapshot), so that a
    /// catalog read in it is the one the server resolves names with. Asked
    /// when no probe of this cycle told; `false` when a probe in the
    /// transaction found it reads one snapshot, and while something is in
    /// flight or before the transaction's first snapshot (asking would
    /// take it).
    async fn reads_latest(&mut self) -> Result<bool, SessionError> {
        if let Some(latest) = self.reads_latest {
            return Ok(latest);
        }
        if !self.settled() || !self.background.probes_in_transaction(self.snapshot) {
            return Ok(false);
        }
        let latest = match self.internal_kept(ISOLATION_SQL, false).await? {
            Ok(sets) => sets.first().is_some_and(|set| is_read_committed(set)),
            Err(_) => false,
        };
        self.reads_latest = Some(latest);
        Ok(latest)
    }

    /// Adopts, loads or claims a newer catalog when the session's may be
    /// out of date; returns whether it needed one.
    async fn update_catalog(&mut self, idle: bool) -> Result<bool, SessionError> {
        let cache = &self.guard.shared.catalogs;
        // Only a catalog published since the last idle look can be newer
        // than the session's: the one seen then was adopted or older, and
        // the session's own loads since are newer still.
        let published = self.background.look(cache, &self.guard.info.database, idle);
        if let Some(newer) = published {
            if newer.loaded_at > self.core.catalog.loaded_at || self.core.has_no_catalog() {
                self.core.adopt_catalog(newer);
            }
        }
        let dated = self.background.is_dated(&self.core.catalog, idle);
        if !(self.core.catalog_dirty || dated || (idle && cache.is_stale(&self.core.catalog))) {
            return Ok(false);
        }
        if dated && !idle && !self.core.catalog_dirty && !self.reads_latest().await? {
            // A catalog read now would show the transaction's snapshot
            // (under REPEATABLE READ, one from before the change), while
            // the server resolves names in the current one; before the
            // first snapshot, reading would take it (SET TRANSACTION may
            // still come).
            self.distrust(
                "the schema changed on the server during this transaction; end it to go on"
                    .to_owned(),
            );
            return Ok(true);
        }
        let database = &self.guard.info.database;
        let has_catalog = self.core.catalog.relations().next().is_some() && !dated;
        // After its own DDL the session loads its own view; otherwise one
        // load per database is in flight at a time.
        let own_change = self.core.catalog_dirty && has_catalog;
        let claim = (idle && !own_change).then(|| cache.claim(database, has_catalog));
        let quiet = self.quiet(idle);
        let ticket = match claim {
            None => None,
            Some(Claim::Load(ticket)) if quiet && has_catalog && !self.core.catalog_dirty => {
                self.background.defer(ticket);
                return Ok(true);
            }
            Some(Claim::Load(ticket)) => Some(ticket),
            Some(Claim::Keep) => return Ok(true),
            Some(Claim::Wait(wait)) => {
                let limit = self.guard.shared.config.limits.connect_timeout;
                let _ = tokio::time::timeout(limit, wait.done()).await;
                let dated_before = self.background.dated_before();
                let loaded = cache.get(database).filter(|c| !is_dated(c, dated_before));
                if let Some(loaded) = loaded {
                    self.take_catalog(loaded, idle);
                    return Ok(true);
                }
                None
            }
        };
        metrics::counter!(crate::telemetry::CATALOG_LOADS, "database" => database.clone())
            .increment(1);
        let asked_at = Instant::now();
        let loaded = match self.internal_kept(LOAD_SQL, idle).await? {
            Ok(sets) => CatalogRows::from_sets(sets)
                .and_then(|r| r.into_catalog())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match loaded {
            Ok(catalog) => {
                let catalog = Arc::new(catalog.asked_at(asked_at));
                if idle {
                    self.guard.shared.catalogs.put(database, catalog.clone());
                }
                self.take_catalog(catalog, idle);
            }
            Err(e) => self.distrust(format!("catalog load failed: {e}")),
        }
        drop(ticket);
        Ok(true)
    }

    /// Decides with `catalog` from now on.
    fn take_catalog(&mut self, catalog: Arc<Catalog>, idle: bool) {
        self.core.set_catalog(catalog);
        self.background.took_catalog(idle);
        self.unverified = None;
    }

    /// The catalog could not be checked or read: the session decides with
    /// an empty one (statements naming relations are refused, prepared
    /// ones analyzed again) until a probe and a load succeed, which the
    /// next cycle tries.
    fn distrust(&mut self, reason: String) {
        warn!(error = %reason, "catalog unverified: statements naming relations are refused until it is read again");
        self.core
            .set_catalog(Arc::new(Catalog::new(Vec::new(), Vec::new())));
        self.unverified = Some(reason);
        self.background.probe_soon();
    }

    /// Reads the catalog's stamp now; returns whether the session's
    /// catalog is dated by it (a schema change made outside copyguard, or
    /// a catalog read in an older snapshot). An `idle` probe gives the
    /// stamp to the cache; one inside the client's transaction also reads
    /// its isolation level and keeps what it saw to the session, since the
    /// transaction's own uncommitted changes show in it. A probe that
    /// fails leaves the session without a trusted catalog.
    async fn probe(&mut self, idle: bool) -> Result<bool, SessionError> {
        let asked_at = Instant::now();
        let sql = if idle {
            STAMP_SQL.to_owned()
        } else {
            format!("{ISOLATION_SQL}; {STAMP_SQL}")
        };
        let stamp = match self.internal_kept(&sql, idle).await? {
            Ok(sets) => {
                let (isolation, stamp) = match &sets[..] {
                    [stamp] if idle => (None, Some(stamp)),
                    [isolation, stamp] if !idle => (Some(isolation), Some(stamp)),
                    _ => (None, None),
                };
                self.reads_latest = isolation.map(|set| is_read_committed(set));
                match stamp {
                    Some(set) => stamp_of(set).map_err(|e| e.to_string()),
                    None => Err(format!("{} result sets", sets.len())),
                }
            }
            Err(e) => Err(e),
        };
        let stamp = match stamp {
            Ok(stamp) => stamp,
            Err(e) => {
                self.distrust(format!("catalog check failed: {e}"));
                return Ok(false);
            }
        };
        let database = &self.guard.info.database;
        if !idle {
            let every = self.guard.shared.config.limits.catalog_check;
            let latest = self.reads_latest == Some(true);
            self.background
                .probed_in_transaction(latest, asked_at + every);
        } else if self
            .guard
            .shared
            .catalogs
            .note_stamp(database, asked_at, &stamp)
        {
            metrics::counter!(crate::telemetry::CATALOG_CHANGES, "database" => database.clone())
                .increment(1);
            info!(database = %database, "the schema changed outside copyguard: reloading the catalog before deciding");
        }
        let own = self.core.catalog.stamp.as_deref() != Some(stamp.as_str());
        if own {
            self.background.date(asked_at);
        }
        Ok(own)
    }

    /// After a statement named a relation or column the catalog does not
    /// have: when nothing is in flight, probes the stamp now and, when the
    /// schema changed since the catalog was read, loads the new one
    /// (otherwise the next cycle probes). Returns whether the catalog
    /// changed, so the statement is decided again: a migration's new table
    /// is usable at once.
    pub(super) async fn catch_up(&mut self, snapshot: bool) -> Result<bool, SessionError> {
        let status = self.guard.state.status.load(Ordering::Relaxed);
        let idle = status == b'I';
        if !self.settled()
            || !(idle || status == b'T' && self.background.probes_in_transaction(snapshot))
        {
            self.background.probe_soon();
            return Ok(false);
        }
        let before = self.core.context;
        if self.probe(idle).await? {
            self.update_catalog(idle).await?;
            self.refresh_search_path(idle).await?;
        }
        Ok(self.core.context != before && self.unverified.is_none())
    }

    /// At the start of the session, before the client's first message
    /// (the server idle, outside a transaction): sends the database's
    /// catalog load when no catalog is cached and no load is in flight,
    /// and the search path query, without waiting for either, so both
    /// overlap the client's startup. The first request cycle takes their
    /// answers.
    pub(super) async fn prefetch(&mut self) -> Result<(), SessionError> {
        let cache = &self.guard.shared.catalogs;
        let database = &self.guard.info.database;
        if let Some(shared) = cache.get(database) {
            self.core.adopt_catalog(shared);
        } else if let Claim::Load(ticket) = cache.claim(database, false) {
            self.send_load(ticket).await?;
        }
        if self.core.search_path_dirty {
            self.search_path_read = Some(self.send_internal(SEARCH_PATH_SQL).await?);
        }
        self.flush().await
    }

    /// Sends the load claimed at the start of this cycle, if the cycle
    /// leaves the server idle, without waiting for it.
    pub(super) async fn load_in_background(&mut self) -> Result<(), SessionError> {
        let Some(ticket) = self.background.take() else {
            return Ok(());
        };
        self.send_load(ticket).await
    }

    /// Sends a catalog load whose result is published off the session's
    /// task, the load in flight until then.
    async fn send_load(&mut self, ticket: LoadTicket) -> Result<(), SessionError> {
        let asked_at = Instant::now();
        let rx = self
            .send_internal(&format!("{UNTIMED_SQL}; {LOAD_SQL}"))
            .await?;
        let database = self.guard.info.database.clone();
        metrics::counter!(crate::telemetry::CATALOG_LOADS, "database" => database.clone())
            .increment(1);
        let cache = self.guard.shared.catalogs.clone();
        // On the server's runtime: the session may end before the load
        // is published, and other sessions wait for it.
        {
            let _server = self.guard.shared.runtime.enter();
            load_in_background(cache, database, ticket, asked_at, async move {
                rx.await.ok().and_then(Result::ok).map(without_first)
            });
        }
        Ok(())
    }

    /// Reads the session's search path again when it may have changed.
    /// The answer read at the session's start ([`Frontend::prefetch`])
    /// serves the first cycle: no client statement ran before it. Inside
    /// a transaction that has taken no snapshot it waits for a statement
    /// that takes one (`SET TRANSACTION` may still come; the statements
    /// before it name no data).
    async fn refresh_search_path(&mut self, idle: bool) -> Result<(), SessionError> {
        let prefetched = self.search_path_read.take();
        let may_query = idle || self.background.may_query_in_transaction(self.snapshot);
        if self.core.search_path_dirty && (may_query || prefetched.is_some()) {
            let read = match prefetched {
                Some(rx) => internal_answer(rx).await?,
                None => self.internal_kept(SEARCH_PATH_SQL, idle).await?,
            };
            if let Ok(sets) = read {
                let path = sets
                    .first()
                    .and_then(|rows| rows.first())
                    .and_then(|row| row.first().cloned().flatten())
                    .and_then(|text| parse_name_array(&text));
                if let Some(path) = path {
                    self.core.set_search_path(path);
                }
            }
        }
        Ok(())
    }
}

/// Whether an isolation level's result set says READ COMMITTED (or READ
/// UNCOMMITTED, the same in PostgreSQL).
fn is_read_committed(set: &[crate::catalog::Row]) -> bool {
    matches!(
        set,
        [row] if matches!(
            row.first().and_then(|v| v.as_deref()),
            Some("read committed" | "read uncommitted")
        )
    )
}

/// The result sets of an internal query after the first, which answered
/// the statement put before the query ([`UNTIMED_SQL`], [`SAVEPOINT_SQL`]).
fn without_first(mut sets: Vec<Vec<crate::catalog::Row>>) -> Vec<Vec<crate::catalog::Row>> {
    if !sets.is_empty() {
        sets.remove(0);
    }
    sets
}

/// Where the answer of a query for copyguard itself comes.
pub(super) type InternalReply = tokio::sync::oneshot::Receiver<InternalResult>;

/// The answer of a query for copyguard itself.
async fn internal_answer(rx: InternalReply) -> Result<InternalResult, SessionError> {
    rx.await
        .map_err(|_| SessionError::UpstreamProtocol("internal query abandoned".into()))
}
