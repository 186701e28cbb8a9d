//! The policy in force, swapped atomically on reload.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::{Policy, PolicyError, PolicyWarning};

/// Holds the current policy of a directory; sessions take a cheap
/// snapshot with [`PolicyStore::current`].
#[derive(Debug)]
pub struct PolicyStore {
    dir: PathBuf,
    current: RwLock<Arc<Policy>>,
}

impl PolicyStore {
    /// Loads the policy files of `dir`.
    pub fn load(dir: &Path) -> Result<PolicyStore, PolicyError> {
        let (policy, _) = Policy::load_dir(dir)?;
        Ok(PolicyStore {
            dir: dir.to_owned(),
            current: RwLock::new(Arc::new(policy)),
        })
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Re-reads the directory; on success swaps the policy in and returns
    /// its warnings; on error keeps the old one.
    pub fn reload(&self) -> Result<Vec<PolicyWarning>, PolicyError> {
        let (policy, warnings) = Policy::load_dir(&self.dir)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(policy);
        Ok(warnings)
    }

    /// The policy directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "[classes.prod]\nmode = \"production\"\nroles = [\"app_prod\"]\n";

    #[test]
    fn reload_swaps_or_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, GOOD).unwrap();
        let store = PolicyStore::load(dir.path()).unwrap();
        assert_eq!(store.dir(), dir.path());
        let before = store.current();
        assert_eq!(before.classify_role("app_ops").name, "default");

        std::fs::write(&path, "[classes.prod]\nmode = \"sideways\"\n").unwrap();
        let err = store.reload().unwrap_err();
        assert!(err.to_string().contains("classes.prod.mode"), "{err}");
        assert!(Arc::ptr_eq(&before, &store.current()));

        std::fs::write(
            &path,
            format!("{GOOD}[classes.ops]\nmode = \"production\"\nroles = [\"app_ops\"]\n"),
        )
        .unwrap();
        store.reload().unwrap();
        assert_eq!(store.current().classify_role("app_ops").name, "ops");
        assert_eq!(before.classify_role("app_ops").name, "default");
    }

    #[test]
    fn revoked_grants_are_read_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grants.toml");
        std::fs::write(&path, "[grants]\nrevoked = []\n").unwrap();
        let store = PolicyStore::load(dir.path()).unwrap();
        assert!(store.current().revoked_grants().is_empty());
        let id = "0123456789abcdef0123456789ABCDEF";
        std::fs::write(&path, format!("[grants]\nrevoked = [\"{id}\"]\n")).unwrap();
        store.reload().unwrap();
        assert_eq!(store.current().revoked_grants(), [id.to_ascii_lowercase()]);
        std::fs::write(&path, "[grants]\nrevoked = [\"nope\"]\n").unwrap();
        let err = store.reload().unwrap_err().to_string();
        assert!(err.contains("grants.revoked"), "{err}");
    }

    #[test]
    fn load_refuses_a_bad_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(PolicyStore::load(dir.path()).is_err());
    }
}
