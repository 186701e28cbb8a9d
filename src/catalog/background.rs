//! Catalog refreshes no client waits for.
//!
//! When a session's catalog is only old (not changed by its own DDL), the
//! session that claims the database's load keeps deciding with the catalog
//! it has and sends [`super::LOAD_SQL`] right after the request cycle it is
//! serving, once that cycle is known to leave the server idle outside a
//! transaction. The client gets its answer before the load runs; the rows
//! are turned into a catalog and published off the session's task
//! ([`load_in_background`]), and every session adopts it at its next idle
//! cycle start.

use std::future::Future;
use std::sync::Arc;

use tracing::warn;

use super::cache::SeenVersion;
use super::{Catalog, CatalogCache, CatalogRows, LoadTicket, Row};
use crate::analysis::StatementKind;

/// A session's claimed refresh, waiting for the end of a cycle after
/// which the load may run without touching the client's transaction, and
/// the shared cache's version the session last looked at.
#[derive(Debug, Default)]
pub struct BackgroundRefresh {
    claimed: Option<LoadTicket>,
    /// Every statement run since the claim leaves the server idle.
    plain: bool,
    seen: SeenVersion,
}

impl BackgroundRefresh {
    /// `database`'s shared catalog when one was published since the
    /// session's last look ([`CatalogCache::changed`]); `None` otherwise,
    /// at the cost of one atomic load.
    pub fn published(&mut self, cache: &CatalogCache, database: &str) -> Option<Arc<Catalog>> {
        cache.changed(database, &mut self.seen)
    }

    /// Holds `ticket` until the end of the cycle starting now (the server
    /// idle, outside a transaction, nothing in flight).
    pub fn defer(&mut self, ticket: LoadTicket) {
        self.claimed = Some(ticket);
        self.plain = true;
    }

    /// Notes a statement the cycle runs.
    pub fn note(&mut self, kind: &StatementKind) {
        self.plain &= leaves_server_idle(kind);
    }

    /// At the start of a cycle: a claim not sent in the previous cycle is
    /// given up, so that another session may load.
    pub fn give_up(&mut self) {
        self.claimed = None;
    }

    /// At the end of a cycle: the ticket when the load may be sent now;
    /// otherwise the claim is given up.
    pub fn take(&mut self) -> Option<LoadTicket> {
        let ticket = self.claimed.take();
        ticket.filter(|_| self.plain)
    }

    /// Whether a load is claimed and not sent yet.
    pub fn is_claimed(&self) -> bool {
        self.claimed.is_some()
    }
}

/// Whether a statement run from an idle server outside a transaction
/// leaves it that way at the end of its cycle (no transaction block opened
/// or closed, no COPY in progress, no session state a catalog load could
/// disturb).
fn leaves_server_idle(kind: &StatementKind) -> bool {
    matches!(
        kind,
        StatementKind::Select
            | StatementKind::Insert
            | StatementKind::Update
            | StatementKind::Delete
            | StatementKind::Merge
            | StatementKind::Set { .. }
            | StatementKind::Show
            | StatementKind::Prepare { .. }
            | StatementKind::Execute { .. }
            | StatementKind::Deallocate { .. }
            | StatementKind::Explain { .. }
            | StatementKind::Empty
    )
}

/// Waits for the result sets of a load sent in the background (`None`
/// when it failed or the session ended), builds the catalog and publishes
/// it in `cache`; the load counts as in flight until then.
pub fn load_in_background<F>(cache: CatalogCache, database: String, ticket: LoadTicket, sets: F)
where
    F: Future<Output = Option<Vec<Vec<Row>>>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Some(sets) = sets.await {
            match CatalogRows::from_sets(sets).and_then(|r| r.into_catalog()) {
                Ok(catalog) => cache.put(&database, Arc::new(catalog)),
                Err(e) => warn!(error = %e, "catalog reload failed"),
            }
        }
        drop(ticket);
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::catalog::Claim;

    fn ticket(cache: &CatalogCache) -> LoadTicket {
        match cache.claim("db", true) {
            Claim::Load(t) => t,
            other => panic!("expected a load, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_cycle_releases_the_ticket_for_sending() {
        let cache = CatalogCache::new(Duration::from_secs(1));
        let mut refresh = BackgroundRefresh::default();
        refresh.defer(ticket(&cache));
        refresh.note(&StatementKind::Select);
        assert!(refresh.take().is_some());
        assert!(!refresh.is_claimed());
    }

    #[test]
    fn a_cycle_touching_transactions_or_copy_gives_the_claim_up() {
        let cache = CatalogCache::new(Duration::from_secs(1));
        let mut refresh = BackgroundRefresh::default();
        refresh.defer(ticket(&cache));
        assert!(matches!(cache.claim("db", true), Claim::Keep));
        refresh.note(&StatementKind::Select);
        refresh.note(&StatementKind::Transaction { ends: false });
        assert!(refresh.take().is_none());
        assert!(matches!(cache.claim("db", true), Claim::Load(_)));
    }

    #[test]
    fn an_unsent_claim_is_given_up_at_the_next_cycle() {
        let cache = CatalogCache::new(Duration::from_secs(1));
        let mut refresh = BackgroundRefresh::default();
        refresh.defer(ticket(&cache));
        refresh.give_up();
        assert!(matches!(cache.claim("db", true), Claim::Load(_)));
    }

    #[tokio::test]
    async fn the_load_publishes_without_the_session_and_then_frees_the_claim() {
        let cache = CatalogCache::new(Duration::from_secs(1));
        let t = ticket(&cache);
        let (tx, rx) = tokio::sync::oneshot::channel::<Vec<Vec<Row>>>();
        load_in_background(cache.clone(), "db".into(), t, async move { rx.await.ok() });
        assert!(matches!(cache.claim("db", true), Claim::Keep));
        tx.send(vec![Vec::new(); 5]).unwrap();
        for _ in 0..100 {
            if cache.get("db").is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(cache.get("db").is_some());
        for _ in 0..100 {
            if matches!(cache.claim("db", true), Claim::Load(_)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the claim stayed taken after the load ended");
    }
}
