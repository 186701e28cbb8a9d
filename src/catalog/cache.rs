use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::Catalog;

/// The newest catalog of each database, shared by the guarded sessions of
/// a proxy. A catalog is loaded on a session's own upstream connection
/// (copyguard has no credentials of its own), but at most one load per
/// database is in flight: the other sessions wait for it when they have no
/// catalog yet, and keep using the one they have when it is only old.
/// Sessions that ran DDL load their own view (see [`CatalogCache::claim`]).
/// Clones share the same entries.
#[derive(Clone, Debug)]
pub struct CatalogCache {
    entries: Arc<Mutex<HashMap<String, Slot>>>,
    /// Bumped, under the lock, each time a catalog is published: a session
    /// that saw this version has nothing newer to look at.
    version: Arc<AtomicU64>,
    max_age: Duration,
}

/// The cache's version a session last looked at ([`CatalogCache::changed`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeenVersion(u64);

#[derive(Debug, Default)]
struct Slot {
    catalog: Option<Arc<Catalog>>,
    /// The load in flight: its sender is dropped when it ends, published
    /// or not.
    loading: Option<watch::Receiver<()>>,
}

impl Slot {
    fn load_in_flight(&self) -> Option<watch::Receiver<()>> {
        self.loading
            .as_ref()
            .filter(|rx| rx.has_changed().is_ok())
            .cloned()
    }
}

/// What a session that needs a newer catalog does.
#[derive(Debug)]
pub enum Claim {
    /// Load it: no other load is in flight. The load counts as in flight
    /// until the ticket is dropped.
    Load(LoadTicket),
    /// Wait for the load in flight ([`LoadWait::done`]), then take the
    /// cache's catalog.
    Wait(LoadWait),
    /// Keep the catalog it has: another session is loading a newer one.
    Keep,
}

/// The right to load a database's catalog; dropping it ends the load.
#[derive(Debug)]
pub struct LoadTicket {
    _done: watch::Sender<()>,
}

/// A wait for another session's load.
#[derive(Debug)]
pub struct LoadWait {
    rx: watch::Receiver<()>,
}

impl LoadWait {
    /// Returns when the load has ended, whether or not it published a
    /// catalog.
    pub async fn done(mut self) {
        while self.rx.changed().await.is_ok() {}
    }
}

impl CatalogCache {
    /// A cache whose entries are stale after `max_age`.
    pub fn new(max_age: Duration) -> CatalogCache {
        CatalogCache {
            entries: Arc::new(Mutex::new(HashMap::new())),
            version: Arc::new(AtomicU64::new(0)),
            max_age,
        }
    }

    /// The newest catalog of `database`, if any.
    pub fn get(&self, database: &str) -> Option<Arc<Catalog>> {
        self.lock().get(database).and_then(|s| s.catalog.clone())
    }

    /// The newest catalog of `database` when a catalog was published
    /// since `seen`, which it updates; `None` without taking the lock when
    /// nothing was (the common case: one atomic load). A catalog published
    /// for another database also counts as a change, so the answer may be
    /// the catalog already seen.
    pub fn changed(&self, database: &str, seen: &mut SeenVersion) -> Option<Arc<Catalog>> {
        let version = self.version.load(Ordering::Acquire);
        if version == seen.0 {
            return None;
        }
        let catalog = self.get(database);
        // A catalog published between the load and the lock is read
        // here already and looked at once more next time.
        seen.0 = version;
        catalog
    }

    /// Whether `catalog` is older than the cache's maximum age.
    pub fn is_stale(&self, catalog: &Catalog) -> bool {
        catalog.loaded_at.elapsed() > self.max_age
    }

    /// Decides who loads `database`'s catalog: the caller when no load is
    /// in flight; otherwise it waits when it has no catalog yet
    /// (`has_catalog` false), or keeps its own.
    pub fn claim(&self, database: &str, has_catalog: bool) -> Claim {
        let mut entries = self.lock();
        let slot = entries.entry(database.to_owned()).or_default();
        match slot.load_in_flight() {
            Some(rx) if has_catalog => {
                drop(rx);
                Claim::Keep
            }
            Some(rx) => Claim::Wait(LoadWait { rx }),
            None => {
                let (tx, rx) = watch::channel(());
                slot.loading = Some(rx);
                Claim::Load(LoadTicket { _done: tx })
            }
        }
    }

    /// Publishes a freshly loaded catalog unless a newer one is there.
    pub fn put(&self, database: &str, catalog: Arc<Catalog>) {
        let mut entries = self.lock();
        let slot = entries.entry(database.to_owned()).or_default();
        let newer = slot
            .catalog
            .as_ref()
            .is_some_and(|c| c.loaded_at > catalog.loaded_at);
        if !newer {
            slot.catalog = Some(catalog);
            self.version.fetch_add(1, Ordering::Release);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Parses a one-dimensional text array of names as PostgreSQL prints it,
/// e.g. `{pg_catalog,public,"My Schema"}`.
pub fn parse_name_array(text: &str) -> Option<Vec<String>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
        }
        out.push(item);
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_arrays() {
        assert_eq!(
            parse_name_array("{pg_catalog,public}").unwrap(),
            vec!["pg_catalog", "public"]
        );
        assert_eq!(
            parse_name_array(r#"{pg_temp_3,"My \"Schema\"",x}"#).unwrap(),
            vec!["pg_temp_3", "My \"Schema\"", "x"]
        );
        assert_eq!(parse_name_array("{}").unwrap(), Vec::<String>::new());
        assert!(parse_name_array("pg_catalog").is_none());
    }

    fn catalog() -> Arc<Catalog> {
        Arc::new(Catalog::new(Vec::new(), Vec::new()))
    }

    #[tokio::test]
    async fn one_load_per_database_is_in_flight() {
        let cache = CatalogCache::new(Duration::from_secs(300));
        let Claim::Load(ticket) = cache.claim("db", false) else {
            panic!("the first session loads");
        };
        assert!(matches!(cache.claim("db", true), Claim::Keep));
        assert!(matches!(cache.claim("other", false), Claim::Load(_)));
        let Claim::Wait(wait) = cache.claim("db", false) else {
            panic!("a session without a catalog waits");
        };
        let waiter = tokio::spawn(wait.done());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        cache.put("db", catalog());
        drop(ticket);
        waiter.await.unwrap();
        assert!(cache.get("db").is_some());
        assert!(matches!(cache.claim("db", true), Claim::Load(_)));
    }

    #[tokio::test]
    async fn an_abandoned_load_frees_the_claim() {
        let cache = CatalogCache::new(Duration::from_secs(300));
        let Claim::Load(ticket) = cache.claim("db", false) else {
            panic!("the first session loads");
        };
        let Claim::Wait(wait) = cache.claim("db", false) else {
            panic!("waits");
        };
        drop(ticket);
        wait.done().await;
        assert!(cache.get("db").is_none());
        assert!(matches!(cache.claim("db", false), Claim::Load(_)));
    }

    #[test]
    fn a_session_looks_again_only_after_a_publication() {
        let cache = CatalogCache::new(Duration::from_secs(300));
        let mut seen = SeenVersion::default();
        assert!(cache.changed("db", &mut seen).is_none());
        let first = catalog();
        cache.put("db", first.clone());
        assert!(Arc::ptr_eq(
            &cache.changed("db", &mut seen).unwrap(),
            &first
        ));
        assert!(cache.changed("db", &mut seen).is_none());
        let mut late = SeenVersion::default();
        assert!(Arc::ptr_eq(
            &cache.changed("db", &mut late).unwrap(),
            &first
        ));
        cache.put("other", catalog());
        assert!(Arc::ptr_eq(
            &cache.changed("db", &mut seen).unwrap(),
            &first
        ));
        assert!(cache.changed("db", &mut seen).is_none());
        let older = Arc::new(Catalog::new(Vec::new(), Vec::new()));
        let second = catalog();
        cache.put("db", second.clone());
        cache.put("db", older);
        assert!(Arc::ptr_eq(
            &cache.changed("db", &mut seen).unwrap(),
            &second
        ));
        assert!(
            cache.changed("db", &mut seen).is_none(),
            "an older catalog is not published"
        );
        let clone = cache.clone();
        let third = catalog();
        clone.put("db", third.clone());
        assert!(Arc::ptr_eq(
            &cache.changed("db", &mut seen).unwrap(),
            &third
        ));
    }

    #[test]
    fn an_older_catalog_does_not_replace_a_newer_one() {
        let cache = CatalogCache::new(Duration::from_secs(300));
        let old = catalog();
        let new = catalog();
        cache.put("db", new.clone());
        cache.put("db", old);
        assert!(Arc::ptr_eq(&cache.get("db").unwrap(), &new));
    }
}
