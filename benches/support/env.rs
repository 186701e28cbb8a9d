//! Settings the end-to-end benches take from the environment.

use anyhow::{bail, Result};

/// A positive count from the environment, or `default` when unset.
pub fn env_count(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("{name} must be a positive integer, got {v:?}"),
        },
    }
}
