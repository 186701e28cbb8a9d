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
//!
//! Schema changes made outside copyguard (migrations run on the server,
//! DDL of other clients) are found by a probe: a session starting an idle
//! cycle reads [`super::STAMP_SQL`] before it decides unless a probe or
//! load of its database sent less than `limits.catalog_check` ago has been
//! answered ([`CatalogCache::verified_at`]; sessions deciding while one is
//! in flight probe too). A stamp other than the catalog's dates the
//! catalog ([`CatalogCache::note_stamp`]), and every session then loads or
//! waits for a newer one before it decides again. So a change committed
//! more than `catalog_check` before an idle session's decision is seen by
//! it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use super::cache::{is_dated, SeenVersion};
use super::{Catalog, CatalogCache, CatalogRows, LoadTicket, Row};
use crate::analysis::{kind_takes_snapshot, StatementKind};

/// A session's claimed refresh, waiting for the end of a cycle after
/// which the load may run without touching the client's transaction, and
/// what the session last saw of the shared cache and when it probes next.
#[derive(Debug, Default)]
pub struct BackgroundRefresh {
    claimed: Option<LoadTicket>,
    /// Every statement run since the claim leaves the server idle.
    plain: bool,
    seen: SeenVersion,
    /// A catalog published while the session was in a transaction, for
    /// its next idle cycle.
    pending: Option<Arc<Catalog>>,
    /// Catalogs asked for before this are out of date.
    dated_before: Option<Instant>,
    /// Until then the database is known verified recently enough: the
    /// session neither probes nor asks the cache, unless a probe is wanted.
    fresh_until: Option<Instant>,
    /// A probe is wanted at the next idle cycle
    /// ([`BackgroundRefresh::probe_soon`]).
    wanted: bool,
    /// The session's catalog was loaded inside a transaction: it shows that
    /// transaction's snapshot (under REPEATABLE READ, one older than the
    /// server's), so it is replaced once the session is idle again.
    transaction_view: bool,
    /// The client's transaction has run a statement that took a snapshot,
    /// so a query of copyguard's in it no longer comes before its first
    /// (which `SET TRANSACTION` must).
    snapshot_taken: bool,
    /// A probe inside the client's transaction found that it reads one
    /// snapshot (REPEATABLE READ, SERIALIZABLE): probes in it cannot see
    /// later changes.
    one_snapshot: bool,
    /// Until then the session's search path counts as read recently
    /// enough ([`BackgroundRefresh::path_check_due`]).
    path_checked_until: Option<Instant>,
}

impl BackgroundRefresh {
    /// Looks at what `database`'s cache entry got since the session's last
    /// look ([`CatalogCache::changed`], one atomic load when nothing): notes
    /// when catalogs were dated, and returns the newest catalog when the
    /// session is `idle` (kept for its next idle look otherwise).
    pub fn look(
        &mut self,
        cache: &CatalogCache,
        database: &str,
        idle: bool,
    ) -> Option<Arc<Catalog>> {
        if let Some(published) = cache.changed(database, &mut self.seen) {
            self.dated_before = self.dated_before.max(published.dated_before);
            if published.catalog.is_some() {
                self.pending = published.catalog;
            }
        }
        if idle {
            self.pending.take()
        } else {
            None
        }
    }

    /// Catalogs asked for before this are out of date.
    pub fn dated_before(&self) -> Option<Instant> {
        self.dated_before
    }

    /// Whether the session's `catalog` misses a change a probe found, or
    /// was read inside a transaction that has ended (`idle`).
    pub fn is_dated(&self, catalog: &Catalog, idle: bool) -> bool {
        is_dated(catalog, self.dated_before) || (idle && self.transaction_view)
    }

    /// Dates the session's catalogs asked for before `at` (a probe sent
    /// then found another stamp than the session's).
    pub fn date(&mut self, at: Instant) {
        self.dated_before = self.dated_before.max(Some(at));
    }

    /// Notes that the session took a new catalog, idle or inside a
    /// transaction.
    pub fn took_catalog(&mut self, idle: bool) {
        self.transaction_view = !idle;
    }

    /// Holds `ticket` until the end of the cycle starting now (the server
    /// idle, outside a transaction, nothing in flight).
    pub fn defer(&mut self, ticket: LoadTicket) {
        self.claimed = Some(ticket);
        self.plain = true;
    }

    /// At the start of an idle cycle: whether to probe now, because no
    /// probe or load of `database` sent within `every` has been answered
    /// (by any session), or a probe is wanted sooner.
    pub fn probe_due(&mut self, cache: &CatalogCache, database: &str, every: Duration) -> Probe {
        let now = Instant::now();
        if std::mem::take(&mut self.wanted) {
            return Probe::Due;
        }
        if self.fresh_until.is_some_and(|t| now < t) {
            return Probe::Fresh;
        }
        match cache.verified_at(database).map(|t| t + every) {
            Some(until) if now < until => {
                self.fresh_until = Some(until);
                Probe::FreshNow
            }
            _ => Probe::Due,
        }
    }

    /// Whether the session's search path is to be read again now, which
    /// it is every `every`: what the server searches also changes with
    /// what the catalog's stamp cannot show (a role's INHERIT, a
    /// membership the server takes in only when it next recomputes the
    /// path), and per session, since it depends on the role.
    pub fn path_check_due(&mut self, every: Duration) -> bool {
        let now = Instant::now();
        if self.path_checked_until.is_some_and(|t| now < t) {
            return false;
        }
        self.path_checked_until = Some(now + every);
        true
    }

    /// Wants a probe at the next idle cycle, whenever the last one was: a
    /// statement named a relation or column the catalog does not have, so
    /// the retry the refusal suggests finds it.
    pub fn probe_soon(&mut self) {
        self.wanted = true;
    }

    /// Notes a statement the cycle runs.
    pub fn note(&mut self, kind: &StatementKind) {
        self.plain &= leaves_server_idle(kind);
        if matches!(kind, StatementKind::Transaction { begins: true, .. }) {
            self.idle();
        } else if kind_takes_snapshot(kind) {
            self.snapshot_taken = true;
        }
    }

    /// Whether a query of copyguard's may run inside the client's
    /// transaction now without taking its first snapshot: the statement
    /// it would come before takes it anyway (`snapshot`), or one noted
    /// since the transaction began took it.
    pub fn may_query_in_transaction(&self, snapshot: bool) -> bool {
        snapshot || self.snapshot_taken
    }

    /// Whether a probe inside the client's transaction may run now
    /// ([`may_query_in_transaction`](Self::may_query_in_transaction)) and
    /// may see a change (no probe in it found that it reads one snapshot).
    pub fn probes_in_transaction(&self, snapshot: bool) -> bool {
        self.may_query_in_transaction(snapshot) && !self.one_snapshot
    }

    /// At the start of a cycle with the server idle outside a
    /// transaction, or at a statement beginning one: the next transaction
    /// has taken no snapshot.
    pub fn idle(&mut self) {
        self.snapshot_taken = false;
        self.one_snapshot = false;
    }

    /// Notes what a probe inside the client's transaction found: whether
    /// it reads the latest catalog (READ COMMITTED), so that the probe
    /// verified the catalog until `until`, or one snapshot, so that no
    /// probe in it can.
    pub fn probed_in_transaction(&mut self, reads_latest: bool, until: Instant) {
        if reads_latest {
            self.fresh_until = self.fresh_until.max(Some(until));
        } else {
            self.one_snapshot = true;
        }
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

/// What [`BackgroundRefresh::probe_due`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Probe now.
    Due,
    /// Verified recently, as the session already knew.
    Fresh,
    /// Verified recently by a probe or load another session took in since
    /// the session last looked: what it dated is to be looked at.
    FreshNow,
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

/// Waits for the result sets of a load sent in the background at
/// `asked_at` (`None` when it failed or the session ended), builds the
/// catalog and publishes it in `cache`; the load counts as in flight until
/// then.
pub fn load_in_background<F>(
    cache: CatalogCache,
    database: String,
    ticket: LoadTicket,
    asked_at: Instant,
    sets: F,
) where
    F: Future<Output = Option<Vec<Vec<Row>>>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Some(sets) = sets.await {
            match CatalogRows::from_sets(sets).and_then(|r| r.into_catalog()) {
                Ok(catalog) => cache.put(&database, Arc::new(catalog.asked_at(asked_at))),
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
        refresh.note(&StatementKind::Transaction {
            ends: false,
            begins: true,
        });
        assert!(refresh.take().is_none());
        assert!(matches!(cache.claim("db", true), Claim::Load(_)));
    }

    #[test]
    fn queries_in_a_transaction_wait_for_its_first_snapshot() {
        let mut refresh = BackgroundRefresh::default();
        let begin = StatementKind::Transaction {
            ends: false,
            begins: true,
        };
        refresh.note(&begin);
        refresh.note(&StatementKind::Set {
            name: "lock_timeout".into(),
        });
        refresh.note(&StatementKind::Show);
        assert!(
            !refresh.probes_in_transaction(false),
            "SET TRANSACTION may follow"
        );
        refresh.note(&StatementKind::Select);
        assert!(refresh.probes_in_transaction(false));
        // Savepoints keep the snapshot (red team: they turned probes off).
        for kind in [
            StatementKind::Transaction {
                ends: false,
                begins: false,
            },
            StatementKind::Transaction {
                ends: true,
                begins: false,
            },
        ] {
            refresh.note(&kind);
            assert!(refresh.probes_in_transaction(false), "{kind:?}");
        }
        refresh.probed_in_transaction(false, Instant::now());
        assert!(
            !refresh.probes_in_transaction(false),
            "a transaction reading one snapshot"
        );
        refresh.note(&StatementKind::Transaction {
            ends: true,
            begins: true,
        });
        assert!(
            !refresh.probes_in_transaction(false),
            "a chained transaction"
        );
        refresh.note(&StatementKind::Execute { name: "p".into() });
        assert!(refresh.probes_in_transaction(false));
        refresh.note(&begin);
        assert!(!refresh.probes_in_transaction(false), "a new transaction");
        refresh.note(&StatementKind::Select);
        assert!(refresh.probes_in_transaction(false));
    }

    #[test]
    fn an_unsent_claim_is_given_up_at_the_next_cycle() {
        let cache = CatalogCache::new(Duration::from_secs(1));
        let mut refresh = BackgroundRefresh::default();
        refresh.defer(ticket(&cache));
        refresh.give_up();
        assert!(matches!(cache.claim("db", true), Claim::Load(_)));
    }

    #[test]
    fn a_probe_is_due_until_one_sent_within_the_interval_is_answered() {
        let cache = CatalogCache::new(Duration::from_secs(300));
        let every = Duration::from_secs(3600);
        let (mut one, mut two) = (BackgroundRefresh::default(), BackgroundRefresh::default());
        assert_eq!(one.probe_due(&cache, "db", every), Probe::Due);
        assert_eq!(
            two.probe_due(&cache, "db", every),
            Probe::Due,
            "one in flight, not answered: the other session probes too"
        );
        cache.note_stamp("db", Instant::now(), "a");
        assert_eq!(one.probe_due(&cache, "db", every), Probe::FreshNow);
        assert_eq!(one.probe_due(&cache, "db", every), Probe::Fresh);
        assert_eq!(two.probe_due(&cache, "db", every), Probe::FreshNow);
        let mut elsewhere = BackgroundRefresh::default();
        assert_eq!(elsewhere.probe_due(&cache, "other", every), Probe::Due);
        one.probe_soon();
        assert_eq!(one.probe_due(&cache, "db", every), Probe::Due);
        assert_eq!(one.probe_due(&cache, "db", every), Probe::Fresh, "once");
    }

    #[test]
    fn a_dated_catalog_is_seen_in_a_transaction_and_a_new_one_adopted_when_idle() {
        let cache = CatalogCache::new(Duration::from_secs(300));
        let mut refresh = BackgroundRefresh::default();
        let old = Arc::new(Catalog::new(Vec::new(), Vec::new()).with_stamp(Some("a".into())));
        cache.put("db", old.clone());
        assert!(refresh.look(&cache, "db", true).is_some());
        assert!(cache.note_stamp("db", Instant::now(), "b"));
        assert!(refresh.look(&cache, "db", false).is_none());
        assert!(refresh.is_dated(&old, false));
        let new = Arc::new(Catalog::new(Vec::new(), Vec::new()).with_stamp(Some("b".into())));
        cache.put("db", new.clone());
        assert!(
            refresh.look(&cache, "db", false).is_none(),
            "not adopted in a transaction"
        );
        let adopted = refresh
            .look(&cache, "db", true)
            .expect("kept for the idle cycle");
        assert!(Arc::ptr_eq(&adopted, &new));
        assert!(!refresh.is_dated(&new, true));
    }

    #[tokio::test]
    async fn the_load_publishes_without_the_session_and_then_frees_the_claim() {
        let cache = CatalogCache::new(Duration::from_secs(1));
        let t = ticket(&cache);
        let (tx, rx) = tokio::sync::oneshot::channel::<Vec<Vec<Row>>>();
        let asked_at = Instant::now();
        load_in_background(cache.clone(), "db".into(), t, asked_at, async move {
            rx.await.ok()
        });
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
