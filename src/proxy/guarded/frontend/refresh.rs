//! The frontend's own queries on the session's upstream connection: the
//! catalog and search path refreshed at the start of a request cycle, a
//! catalog load sent behind the client's statement, and the silent failure
//! of a transaction whose result was stopped.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::warn;

use super::{Frontend, BLOCKED_SQL};
use crate::catalog::{
    load_in_background, parse_name_array, CatalogRows, Claim, LoadTicket, LOAD_SQL,
};
use crate::proxy::guarded::exec::{Expect, InternalResult};
use crate::proxy::SessionError;
use crate::wire::messages;

/// What the search path is read with.
const SEARCH_PATH_SQL: &str = "SELECT pg_catalog.current_schemas(true)::text";

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

    /// Queues a query for copyguard itself without flushing or waiting;
    /// its answer comes on the receiver.
    async fn send_internal(&mut self, sql: &str) -> Result<InternalReply, SessionError> {
        let (expect, rx) = Expect::internal();
        self.guard.state.queue.push(expect);
        self.send(&messages::query(sql)).await?;
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
    /// one side only. A catalog that is only old is reloaded after the
    /// cycle, not before it ([`BackgroundRefresh`]); inside a transaction
    /// an old catalog is kept until the session is idle.
    pub(super) async fn refresh(&mut self) -> Result<(), SessionError> {
        self.background.give_up();
        let status = self.guard.state.status.load(Ordering::Relaxed);
        if status == b'E' {
            return Ok(());
        }
        let idle = status == b'I';
        let cache = &self.guard.shared.catalogs;
        // Only a catalog published since the last idle look can be newer
        // than the session's: the one seen then was adopted or older, and
        // the session's own loads since are newer still.
        let published = idle
            .then(|| self.background.published(cache, &self.guard.info.database))
            .flatten();
        if let Some(newer) = published {
            if newer.loaded_at > self.core.catalog.loaded_at || self.core.has_no_catalog() {
                self.core.adopt_catalog(newer);
            }
        }
        if self.core.catalog_dirty || (idle && cache.is_stale(&self.core.catalog)) {
            let database = &self.guard.info.database;
            let has_catalog = self.core.catalog.relations().next().is_some();
            // After its own DDL the session loads its own view; otherwise
            // one load per database is in flight at a time.
            let own_change = self.core.catalog_dirty && has_catalog;
            let claim = (idle && !own_change).then(|| cache.claim(database, has_catalog));
            let quiet = idle && self.guard.state.queue.lock().is_empty();
            let ticket = match claim {
                None => None,
                Some(Claim::Load(ticket)) if quiet && !self.core.catalog_dirty => {
                    self.background.defer(ticket);
                    return self.refresh_search_path().await;
                }
                Some(Claim::Load(ticket)) => Some(ticket),
                Some(Claim::Keep) => return self.refresh_search_path().await,
                Some(Claim::Wait(wait)) => {
                    let limit = self.guard.shared.config.limits.connect_timeout;
                    let _ = tokio::time::timeout(limit, wait.done()).await;
                    if let Some(loaded) = cache.get(database) {
                        self.core.set_catalog(loaded);
                        return self.refresh_search_path().await;
                    }
                    None
                }
            };
            metrics::counter!(crate::telemetry::CATALOG_LOADS, "database" => database.clone())
                .increment(1);
            match self.internal(LOAD_SQL).await? {
                Ok(sets) => match CatalogRows::from_sets(sets).and_then(|r| r.into_catalog()) {
                    Ok(catalog) => {
                        let catalog = Arc::new(catalog);
                        if idle {
                            cache.put(database, catalog.clone());
                        }
                        self.core.set_catalog(catalog);
                    }
                    Err(e) => warn!(error = %e, "catalog reload failed"),
                },
                Err(e) => warn!(error = %e, "catalog reload failed"),
            }
            drop(ticket);
        }
        self.refresh_search_path().await
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
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.guard.state.queue.push(Expect::Internal {
            reply,
            sets: Vec::new(),
            error: None,
        });
        self.send(&messages::query(LOAD_SQL)).await?;
        let database = self.guard.info.database.clone();
        metrics::counter!(crate::telemetry::CATALOG_LOADS, "database" => database.clone())
            .increment(1);
        let cache = self.guard.shared.catalogs.clone();
        // On the server's runtime: the session may end before the load
        // is published, and other sessions wait for it.
        {
            let _server = self.guard.shared.runtime.enter();
            load_in_background(cache, database, ticket, async move {
                rx.await.ok().and_then(Result::ok)
            });
        }
        Ok(())
    }

    /// Reads the session's search path again when it may have changed.
    /// The answer read at the session's start ([`Frontend::prefetch`])
    /// serves the first cycle: no client statement ran before it.
    async fn refresh_search_path(&mut self) -> Result<(), SessionError> {
        let prefetched = self.search_path_read.take();
        if self.core.search_path_dirty {
            let read = match prefetched {
                Some(rx) => internal_answer(rx).await?,
                None => self.internal(SEARCH_PATH_SQL).await?,
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

/// Where the answer of a query for copyguard itself comes.
pub(super) type InternalReply = tokio::sync::oneshot::Receiver<InternalResult>;

/// The answer of a query for copyguard itself.
async fn internal_answer(rx: InternalReply) -> Result<InternalResult, SessionError> {
    rx.await
        .map_err(|_| SessionError::UpstreamProtocol("internal query abandoned".into()))
}
