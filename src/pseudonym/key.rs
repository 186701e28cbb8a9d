//! The pseudonymization key: an id (so keys can rotate) and a secret.
//! Neither `Debug` nor `Display` shows the secret, and no error quotes it.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The shortest secret accepted, in bytes (256 bits, as the README
/// documents).
pub const MIN_SECRET_LEN: usize = 32;
/// The longest key id accepted, in characters.
pub const MAX_ID_LEN: usize = 64;

/// Why a key could not be built. Never contains secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The id is empty, too long, or has characters outside
    /// `[A-Za-z0-9._-]`.
    #[error("key id must be 1 to {MAX_ID_LEN} letters, digits, '.', '_' or '-'")]
    InvalidId,
    /// Key text without the `ID:` part.
    #[error("key text must be ID:SECRET (the id names the key so it can rotate)")]
    MissingId,
    /// The secret is neither hex nor base64.
    #[error("key secret is neither hex nor base64")]
    InvalidEncoding,
    /// The secret decodes to too few bytes.
    #[error("key secret has {len} bytes; at least {MIN_SECRET_LEN} are required (64 hex digits)")]
    TooShort {
        /// Decoded length.
        len: usize,
    },
}

/// A pseudonymization key. Same key and same input give the same stand-in
/// everywhere: across sessions, tables, restarts and replicas.
#[derive(Clone)]
pub struct Key {
    id: String,
    secret: Vec<u8>,
}

impl Key {
    /// A key from an id and raw secret bytes.
    pub fn new(id: &str, secret: Vec<u8>) -> Result<Key, KeyError> {
        check_id(id)?;
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::TooShort { len: secret.len() });
        }
        Ok(Key {
            id: id.to_owned(),
            secret,
        })
    }

    /// A key from an id and the secret as text: hex (an even number of hex
    /// digits) or base64 (standard or URL-safe alphabet, padding optional).
    /// Surrounding whitespace is ignored, so key files may end in a newline.
    pub fn from_text(id: &str, secret: &str) -> Result<Key, KeyError> {
        check_id(id)?;
        let secret = secret.trim();
        let bytes = if !secret.is_empty()
            && secret.len() % 2 == 0
            && secret.bytes().all(|b| b.is_ascii_hexdigit())
        {
            hex::decode(secret).map_err(|_| KeyError::InvalidEncoding)?
        } else {
            decode_base64(secret).ok_or(KeyError::InvalidEncoding)?
        };
        Key::new(id, bytes)
    }

    /// The key id, safe to log.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A short fingerprint of the secret (16 hex digits of a keyed hash of
    /// a fixed label), safe to log: it tells two keys apart without
    /// revealing either.
    pub fn fingerprint(&self) -> String {
        hex::encode(&subkey(&self.secret, "fingerprint")[..8])
    }

    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl FromStr for Key {
    type Err = KeyError;

    /// Parses `ID:SECRET`, the secret in hex or base64.
    fn from_str(text: &str) -> Result<Key, KeyError> {
        let (id, secret) = text.trim().split_once(':').ok_or(KeyError::MissingId)?;
        Key::from_text(id, secret)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// Derives the 32-byte subkey for one purpose: HMAC-SHA-256 of a
/// versioned label under the secret.
pub(crate) fn subkey(secret: &[u8], purpose: &str) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(b"copyguard/pseudonym/v1/");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

fn check_id(id: &str) -> Result<(), KeyError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::InvalidId)
    }
}

/// Decodes base64, standard or URL-safe alphabet, with or without padding.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in body.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn parses_hex_and_base64() {
        let k: Key = format!("k1:{HEX}\n").parse().unwrap();
        assert_eq!(k.id(), "k1");
        assert_eq!(k.secret(), (0u8..32).collect::<Vec<_>>());
        let b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let k2 = Key::from_text("k2", b64).unwrap();
        assert_eq!(k2.secret(), k.secret());
        let k3 = Key::from_text("k3", b64.trim_end_matches('=')).unwrap();
        assert_eq!(k3.secret(), k.secret());
        assert_eq!(k.fingerprint(), k2.fingerprint());
    }

    #[test]
    fn rejects_bad_keys() {
        assert_eq!("nokey".parse::<Key>().unwrap_err(), KeyError::MissingId);
        assert_eq!(
            Key::from_text("k", "00ff").unwrap_err(),
            KeyError::TooShort { len: 2 }
        );
        assert_eq!(
            Key::from_text("k", &"ab".repeat(16)).unwrap_err(),
            KeyError::TooShort { len: 16 },
            "issue 17: the README's minimum is 32 bytes"
        );
        assert!(Key::from_text("k", &"ab".repeat(32)).is_ok());
        assert_eq!(
            Key::from_text("k", "not base64 at all!").unwrap_err(),
            KeyError::InvalidEncoding
        );
        assert_eq!(Key::from_text("", HEX).unwrap_err(), KeyError::InvalidId);
        assert_eq!(Key::from_text("a b", HEX).unwrap_err(), KeyError::InvalidId);
    }

    #[test]
    fn never_shows_the_secret() {
        let k = Key::from_text("prod-2024", HEX).unwrap();
        let shown = format!("{k:?} {k}");
        assert!(shown.contains("prod-2024"));
        assert!(!shown.contains("0a0b0c"));
        assert!(!shown.contains("[0, 1, 2"));
    }
}
