use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Catalog;

/// The newest catalog of each database, shared by the guarded sessions of
/// a proxy. Sessions reload a catalog on their own upstream connection
/// when it is older than `max_age` or after they ran DDL, and publish it
/// here for the others.
#[derive(Debug)]
pub struct CatalogCache {
    entries: Mutex<HashMap<String, Arc<Catalog>>>,
    max_age: Duration,
}

impl CatalogCache {
    /// A cache whose entries are stale after `max_age`.
    pub fn new(max_age: Duration) -> CatalogCache {
        CatalogCache {
            entries: Mutex::new(HashMap::new()),
            max_age,
        }
    }

    /// The newest catalog of `database`, if any.
    pub fn get(&self, database: &str) -> Option<Arc<Catalog>> {
        self.lock().get(database).cloned()
    }

    /// Whether `catalog` is older than the cache's maximum age.
    pub fn is_stale(&self, catalog: &Catalog) -> bool {
        catalog.loaded_at.elapsed() > self.max_age
    }

    /// Publishes a freshly loaded catalog unless a newer one is there.
    pub fn put(&self, database: &str, catalog: Arc<Catalog>) {
        let mut entries = self.lock();
        let newer = entries
            .get(database)
            .is_some_and(|c| c.loaded_at > catalog.loaded_at);
        if !newer {
            entries.insert(database.to_owned(), catalog);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Catalog>>> {
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
}
