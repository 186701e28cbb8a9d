//! Keyed primitives with their key schedules prepared once: HMAC-SHA-256
//! with the inner and outer states precomputed, and the set of per-purpose
//! subkeys a [`Pseudonymizer`](super::Pseudonymizer) works with.

use aes::cipher::KeyInit;
use aes::{Aes128, Aes128Enc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::key::{subkey, Key};
use super::permute::Permuter;

/// HMAC-SHA-256 under one subkey. Cloning the prepared state per message
/// skips the key setup: a short message costs two SHA-256 compressions.
#[derive(Clone)]
pub(crate) struct Prf(Hmac<Sha256>);

impl Prf {
    pub(crate) fn new(key: &[u8; 32]) -> Prf {
        Prf(<Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts 32-byte keys"))
    }

    /// The tag of `domain` (a one-byte label separating uses of this key)
    /// followed by `data`.
    pub(crate) fn tag(&self, domain: u8, data: &[u8]) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(&[domain]);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// A fresh HMAC state for messages fed in pieces.
    pub(crate) fn start(&self, domain: u8) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(&[domain]);
        mac
    }
}

/// Every subkey, derived once per key.
pub(crate) struct Keyring {
    /// Format-preserving permutations: integers, shapes, digits.
    pub(crate) permuter: Permuter,
    /// AES-128 over the 128 bits of a uuid.
    pub(crate) uuid: Aes128,
    /// Tokens and the tweaks of shape permutations.
    pub(crate) token: Prf,
    /// Email local parts.
    pub(crate) email: Prf,
    /// Person names, addresses and replacement text.
    pub(crate) words: Prf,
    /// Date shifts (AES-128 of the day).
    pub(crate) date: Aes128Enc,
}

impl Keyring {
    pub(crate) fn new(key: &Key) -> Keyring {
        let s = key.secret();
        let ff1 = subkey(s, "ff1");
        let rank = subkey(s, "rank");
        let uuid = subkey(s, "uuid");
        Keyring {
            permuter: Permuter::new(&first16(&ff1), &first16(&rank)),
            uuid: Aes128::new(&first16(&uuid).into()),
            token: Prf::new(&subkey(s, "token")),
            email: Prf::new(&subkey(s, "email")),
            words: Prf::new(&subkey(s, "words")),
            date: Aes128Enc::new(&first16(&subkey(s, "date")).into()),
        }
    }
}

fn first16(k: &[u8; 32]) -> [u8; 16] {
    let mut out = [0; 16];
    out.copy_from_slice(&k[..16]);
    out
}
