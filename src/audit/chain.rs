//! The keyed hash chain and the sealed line format shared by records and
//! anchors.
//!
//! A record's canonical form is its JSON object, fields in a fixed order,
//! ending with `"prev":"<hex>"` (the previous record's hash; 64 zeros for
//! the first record). Its hash is HMAC-SHA-256 under the chain key over
//! exactly those bytes. The line written to the log is the canonical form
//! with `,"hash":"<hex>"` inserted before the closing brace, so a verifier
//! recovers the hashed bytes by cutting that suffix off: no
//! re-serialization, no ambiguity.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::keys::ChainKey;

/// A chain hash.
pub type Hash = [u8; 32];

/// The `prev` of the first record.
pub const GENESIS: Hash = [0; 32];

type HmacSha256 = Hmac<Sha256>;

impl ChainKey {
    /// The chain hash of a canonical record.
    pub fn mac(&self, canonical: &[u8]) -> Hash {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(canonical);
        mac.finalize().into_bytes().into()
    }

    /// Whether `hash` is the chain hash of `canonical` (constant time).
    pub fn check(&self, canonical: &[u8], hash: &[u8]) -> bool {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(canonical);
        mac.verify_slice(hash).is_ok()
    }
}

/// Appends `"name":"<hex of value>"` to a canonical JSON object, giving the
/// sealed line (without newline).
pub fn seal(canonical: &str, name: &str, value: &[u8]) -> String {
    debug_assert!(canonical.ends_with('}'));
    let body = &canonical[..canonical.len() - 1];
    let sep = if body.ends_with('{') { "" } else { "," };
    format!("{body}{sep}\"{name}\":\"{}\"}}", hex::encode(value))
}

/// Splits a sealed line into its canonical form and the sealed value of
/// `len` bytes. `None` when the line does not end with such a field.
pub fn unseal(line: &str, name: &str, len: usize) -> Option<(String, Vec<u8>)> {
    let suffix_len = name.len() + 5 + 2 * len + 2;
    if line.len() < suffix_len + 1 || !line.is_char_boundary(line.len() - suffix_len) {
        return None;
    }
    let (body, suffix) = line.split_at(line.len() - suffix_len);
    let rest = suffix
        .strip_prefix(",\"")?
        .strip_prefix(name)?
        .strip_prefix("\":\"")?
        .strip_suffix("\"}")?;
    if rest.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let value = hex::decode(rest).ok()?;
    Some((format!("{body}}}"), value))
}

/// Parses a lowercase hex hash.
pub fn parse_hash(s: &str) -> Option<Hash> {
    if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(s).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_unseal_round_trip() {
        let canonical = r#"{"seq":1,"prev":"00"}"#;
        let line = seal(canonical, "hash", &[0xab; 32]);
        assert!(line.starts_with(r#"{"seq":1,"prev":"00","hash":"abab"#));
        assert!(line.ends_with("\"}"));
        let (back, value) = unseal(&line, "hash", 32).unwrap();
        assert_eq!(back, canonical);
        assert_eq!(value, vec![0xab; 32]);
        assert!(unseal(&line, "sig", 32).is_none());
        assert!(unseal(&line[..line.len() - 1], "hash", 32).is_none());
        assert!(unseal(&line.to_uppercase(), "hash", 32).is_none());
        assert!(unseal("not json at all", "hash", 32).is_none());
    }

    #[test]
    fn mac_depends_on_key_and_every_byte() {
        let k1 = ChainKey([1; 32]);
        let k2 = ChainKey([2; 32]);
        let h = k1.mac(b"{\"seq\":1}");
        assert!(k1.check(b"{\"seq\":1}", &h));
        assert!(!k1.check(b"{\"seq\":2}", &h));
        assert!(!k2.check(b"{\"seq\":1}", &h));
        assert_eq!(parse_hash(&hex::encode(h)), Some(h));
        assert_eq!(parse_hash("00"), None);
    }
}
