//! Connections still starting (from accept to the first ReadyForQuery or
//! the end), counted per client address: one address may hold at most
//! `limits.max_startups_per_client` of them, so idle or slow connections
//! that never authenticate cannot take every connection slot from the
//! clients of other addresses for the startup timeout.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The count of starting connections per client address.
#[derive(Debug, Default)]
pub(crate) struct Startups {
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One starting connection's place; dropping it ends the startup.
#[derive(Debug)]
pub(crate) struct StartupSlot {
    startups: Arc<Startups>,
    address: IpAddr,
}

impl Startups {
    /// A place for a connection from `address` when it holds fewer than
    /// `max` starting connections.
    pub fn take(self: &Arc<Self>, address: IpAddr, max: usize) -> Option<StartupSlot> {
        let mut counts = self.lock();
        let count = counts.entry(address).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(StartupSlot {
            startups: self.clone(),
            address,
        })
    }

    /// Starting connections from `address`.
    #[cfg(test)]
    fn of(&self, address: IpAddr) -> usize {
        self.lock().get(&address).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.by_address.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for StartupSlot {
    fn drop(&mut self) {
        let mut counts = self.startups.lock();
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let startups = Arc::new(Startups::default());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = startups.take(a, 2).expect("first");
        let second = startups.take(a, 2).expect("second");
        assert!(
            startups.take(a, 2).is_none(),
            "a third from the same address"
        );
        let other = startups.take(b, 2).expect("another address is not held up");
        drop(first);
        let third = startups.take(a, 2).expect("a place freed");
        drop((second, third, other));
        assert_eq!(startups.of(a), 0);
        assert!(
            startups.lock().is_empty(),
            "no entry kept for idle addresses"
        );
    }
}
