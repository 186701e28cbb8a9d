use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Catalog;

/// The newest catalog of each database, shared by the guarded sessions of
/// a proxy. A catalog is loaded on a session's own upstream connection
/// (copyguard has no credentials of its own), but at most one load per
/// database is in flight: the other sessions wait for it when they have no
/// catalog yet, and keep using the one they have when it is only old.
/// Sessions that ran DDL load their own view (see [`CatalogCache::claim`]).
/// A probe ([`super::STAMP_SQL`]) that finds a catalog's stamp changed
/// dates it: no session decides with it again ([`Published::dated_before`]).
/// Clones share the same entries.
#[derive(Clone, Debug)]
pub struct CatalogCache {
    entries: Arc<Mutex<HashMap<String, Slot>>>,
    /// Bumped, under the lock, each time a catalog is published or dated:
    /// a session that saw this version has nothing newer to look at.
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
    /// Catalogs asked for before this miss a change a probe found.
    dated_before: Option<Instant>,
    /// When the last probe or load whose stamp was taken in (the shared
    /// catalog dated by it, or confirmed) was sent.
    verified_at: Option<Instant>,
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

/// What was published for a database since a session last looked.
#[derive(Debug, Default)]
pub struct Published {
    /// The newest catalog, if any.
    pub catalog: Option<Arc<Catalog>>,
    /// Catalogs asked for before this are out of date.
    pub dated_before: Option<Instant>,
}

/// Whether `catalog` is out of date by `dated_before`.
pub fn is_dated(catalog: &Catalog, dated_before: Option<Instant>) -> bool {
    dated_before.is_some_and(|t| catalog.loaded_at < t)
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

    /// What `database` has when a catalog was published or dated since
    /// `seen`, which it updates; `None` without taking the lock when
    /// nothing was (the common case: one atomic load). A change for another
    /// database also counts, so the answer may be what was already seen.
    pub fn changed(&self, database: &str, seen: &mut SeenVersion) -> Option<Published> {
        let version = self.version.load(Ordering::Acquire);
        if version == seen.0 {
            return None;
        }
        let published = self
            .lock()
            .get(database)
            .map_or_else(Published::default, |s| Published {
                catalog: s.catalog.clone(),
                dated_before: s.dated_before,
            });
        // A change made between the load and the lock is read here
        // already and looked at once more next time.
        seen.0 = version;
        Some(published)
    }

    /// When the last probe or published load of `database` whose answer
    /// was taken in was sent: a change committed before then is known.
    pub fn verified_at(&self, database: &str) -> Option<Instant> {
        self.lock().get(database).and_then(|s| s.verified_at)
    }

    /// Takes a probe's answer: the stamp `database` had when the probe was
    /// sent at `asked_at`. When the shared catalog was asked for before
    /// that with another stamp, every catalog asked for before `asked_at`
    /// is dated (published before the probe counts as verified); returns
    /// whether it was.
    pub fn note_stamp(&self, database: &str, asked_at: Instant, stamp: &str) -> bool {
        let mut entries = self.lock();
        let slot = entries.entry(database.to_owned()).or_default();
        let dated = slot
            .catalog
            .as_ref()
            .is_some_and(|c| c.loaded_at < asked_at && c.stamp.as_deref() != Some(stamp));
        if dated && slot.dated_before.is_none_or(|t| t < asked_at) {
            slot.dated_before = Some(asked_at);
            self.version.fetch_add(1, Ordering::Release);
        }
        slot.verified_at = slot.verified_at.max(Some(asked_at));
        dated
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

    /// Publishes a freshly loaded catalog unless a newer one is there or
    /// it is already dated; its load counts as the database's last probe.
    pub fn put(&self, database: &str, catalog: Arc<Catalog>) {
        let mut entries = self.lock();
        let slot = entries.entry(database.to_owned()).or_default();
        let newer = slot
            .catalog
            .as_ref()
            .is_some_and(|c| c.loaded_at > catalog.loaded_at);
        if !newer && !is_dated(&catalog, slot.dated_before) {
            // A load reads the stamp too: it counts as a probe.
            slot.verified_at = slot.verified_at.max(Some(catalog.loaded_at));
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

    /// The newest catalog a look finds.
    fn newest(cache: &CatalogCache, seen: &mut SeenVersion) -> Arc<Catalog> {
        let published = cache.changed("db", seen).expect("a change");
        published.catalog.expect("a catalog")
    }

    fn stamped(stamp: &str, asked_at: Instant) -> Arc<Catalog> {
        let catalog = Catalog::new(Vec::new(), Vec::new());
        Arc::new(catalog.with_stamp(Some(stamp.into())).asked_at(asked_at))
    }

    #[test]
    fn a_probe_finding_another_stamp_dates_what_was_asked_for_before_it() {
        let cache = CatalogCache::new(Duration::from_secs(300));
        let t0 = Instant::now();
        let (t1, t2) = (t0 + Duration::from_secs(1), t0 + Duration::from_secs(2));
        assert!(
            !cache.note_stamp("db", t1, "b"),
            "no catalog, nothing to date"
        );
        let first = stamped("a", t0);
        cache.put("db", first.clone());
        let mut seen = SeenVersion::default();
        assert!(cache
            .changed("db", &mut seen)
            .unwrap()
            .dated_before
            .is_none());
        assert!(!cache.note_stamp("db", t1, "a"), "the same stamp");
        assert!(cache.changed("db", &mut seen).is_none());
        assert!(
            !cache.note_stamp("db", t0, "b"),
            "a probe older than the catalog"
        );
        assert!(cache.note_stamp("db", t1, "b"));
        let published = cache.changed("db", &mut seen).expect("dating is a change");
        assert_eq!(published.dated_before, Some(t1));
        assert!(is_dated(&first, published.dated_before));
        cache.put("db", stamped("a", t0 + Duration::from_millis(500)));
        assert!(
            Arc::ptr_eq(&cache.get("db").unwrap(), &first),
            "a load asked for before the probe is not published"
        );
        let second = stamped("b", t2);
        cache.put("db", second.clone());
        assert!(!is_dated(&second, Some(t1)));
        assert!(Arc::ptr_eq(&newest(&cache, &mut seen), &second));
        assert!(!cache.note_stamp("db", t2 + Duration::from_secs(1), "b"));
    }

    #[test]
    fn probes_and_published_loads_verify_the_database_as_of_their_sending() {
        let cache = CatalogCache::new(Duration::from_secs(300));
        let t0 = Instant::now();
        assert_eq!(cache.verified_at("db"), None);
        cache.note_stamp("db", t0, "a");
        assert_eq!(
            cache.verified_at("db"),
            Some(t0),
            "a probe with no catalog yet"
        );
        let t1 = t0 + Duration::from_secs(1);
        cache.put("db", stamped("a", t1));
        assert_eq!(
            cache.verified_at("db"),
            Some(t1),
            "a load reads the stamp too"
        );
        cache.note_stamp("db", t0, "a");
        assert_eq!(
            cache.verified_at("db"),
            Some(t1),
            "an older answer does not go back"
        );
        assert_eq!(cache.verified_at("other"), None);
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
        assert!(Arc::ptr_eq(&newest(&cache, &mut seen), &first));
        assert!(cache.changed("db", &mut seen).is_none());
        let mut late = SeenVersion::default();
        assert!(Arc::ptr_eq(&newest(&cache, &mut late), &first));
        cache.put("other", catalog());
        assert!(Arc::ptr_eq(&newest(&cache, &mut seen), &first));
        assert!(cache.changed("db", &mut seen).is_none());
        let older = Arc::new(Catalog::new(Vec::new(), Vec::new()));
        let second = catalog();
        cache.put("db", second.clone());
        cache.put("db", older);
        assert!(Arc::ptr_eq(&newest(&cache, &mut seen), &second));
        assert!(
            cache.changed("db", &mut seen).is_none(),
            "an older catalog is not published"
        );
        let clone = cache.clone();
        let third = catalog();
        clone.put("db", third.clone());
        assert!(Arc::ptr_eq(&newest(&cache, &mut seen), &third));
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
