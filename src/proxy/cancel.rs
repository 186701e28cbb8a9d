//! Cancel keys. Clients get copyguard's own BackendKeyData; a CancelRequest
//! carrying one of those keys is forwarded to the right upstream backend
//! with that backend's real key. Unknown keys are dropped silently, as
//! PostgreSQL does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rand::RngCore;

/// The upstream backend a client key stands for.
#[derive(Clone, Debug)]
pub struct UpstreamKey {
    /// Upstream backend process id.
    pub pid: i32,
    /// Upstream secret key.
    pub secret: Bytes,
}

/// Live sessions' cancel keys.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    keys: Mutex<HashMap<(i32, Bytes), UpstreamKey>>,
}

/// A key handed to a client; removed from the registry when dropped.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<CancelRegistry>,
    key: (i32, Bytes),
}

impl Registration {
    /// Process id given to the client.
    pub fn pid(&self) -> i32 {
        self.key.0
    }

    /// Secret key given to the client.
    pub fn secret(&self) -> &[u8] {
        &self.key.1
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.key);
    }
}

impl CancelRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(i32, Bytes), UpstreamKey>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues a fresh random key (`secret_len` bytes) for `upstream`.
    pub fn register(self: &Arc<Self>, upstream: UpstreamKey, secret_len: usize) -> Registration {
        let mut rng = rand::rng();
        let mut keys = self.lock();
        loop {
            let pid = (rng.next_u32() & 0x7fff_ffff).max(1) as i32;
            let mut secret = vec![0u8; secret_len];
            rng.fill_bytes(&mut secret);
            let key = (pid, Bytes::from(secret));
            if let std::collections::hash_map::Entry::Vacant(slot) = keys.entry(key.clone()) {
                slot.insert(upstream);
                return Registration {
                    registry: self.clone(),
                    key,
                };
            }
        }
    }

    /// The upstream key behind a client key, if it is live.
    pub fn lookup(&self, pid: i32, secret: &Bytes) -> Option<UpstreamKey> {
        self.lock().get(&(pid, secret.clone())).cloned()
    }

    /// The upstream keys of every live session (for cancelling their
    /// queries at shutdown).
    pub fn upstream_keys(&self) -> Vec<UpstreamKey> {
        self.lock().values().cloned().collect()
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_lookup_and_release() {
        let reg = Arc::new(CancelRegistry::default());
        let upstream = UpstreamKey {
            pid: 42,
            secret: Bytes::from_static(&[9; 4]),
        };
        let r = reg.register(upstream, 32);
        assert_eq!(r.secret().len(), 32);
        let secret = Bytes::copy_from_slice(r.secret());
        assert_eq!(reg.lookup(r.pid(), &secret).unwrap().pid, 42);
        assert_eq!(reg.upstream_keys().len(), 1);
        assert!(reg.lookup(r.pid(), &Bytes::from_static(&[0; 32])).is_none());
        drop(r);
        assert!(reg.is_empty());
    }
}
