//! Signed dump grants.
//!
//! A grant token is one line of URL-safe characters, safe inside
//! `PGOPTIONS`: `cg1.` + base64url(JSON payload) + `.` +
//! base64url(Ed25519 signature of the payload part, as written). The
//! payload names the grant, the request it answers, the scope, the role
//! and database, the expiry, the uses allowed, the policy version and the
//! id of the signing key (the first 16 hex digits of the SHA-256 of the
//! public key), so keys can rotate.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::GrantError;
use super::request::{DumpRequest, Scope};
use crate::audit::GrantInfo;

const PREFIX: &str = "cg1.";
/// Longest token accepted (a startup packet holds at most 10000 bytes).
pub const MAX_TOKEN_LEN: usize = 8000;

/// What a grant allows. Signed as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Grant id (random, 32 hex digits): what the block log and
    /// revocation lists name.
    pub grant_id: String,
    /// Id of the request it approves.
    pub request_id: String,
    /// Login role that may use it.
    pub role: String,
    /// Database it is for.
    pub database: String,
    /// What the dump covers.
    pub scope: Scope,
    /// Why the dump was requested (the request's reason), so every use
    /// of the grant can say what it is for.
    #[serde(default)]
    pub reason: String,
    /// When it was issued (seconds since the Unix epoch).
    pub issued: u64,
    /// When it expires (seconds since the Unix epoch).
    pub expires: u64,
    /// How many dumps it allows (see [`crate::state::GrantUses`]).
    pub uses: u32,
    /// Version of the policy it was approved under
    /// ([`crate::policy::Policy::version`]).
    pub policy_version: String,
    /// Id of the signing key.
    pub key_id: String,
}

impl Grant {
    /// A grant approving `req` for `valid_for` from now.
    pub fn approve(
        req: &DumpRequest,
        valid_for: Duration,
        uses: u32,
        policy_version: &str,
        key: &SigningKey,
    ) -> Grant {
        let now = unix_now();
        Grant {
            grant_id: hex::encode(rand::random::<[u8; 16]>()),
            request_id: req.id.clone(),
            role: req.role.clone(),
            database: req.database.clone(),
            scope: req.scope.clone(),
            reason: req.reason.clone(),
            issued: now,
            expires: now.saturating_add(valid_for.as_secs()),
            uses,
            policy_version: policy_version.to_owned(),
            key_id: key_id(&key.verifying_key()),
        }
    }

    /// The signed token.
    pub fn sign(&self, key: &SigningKey) -> String {
        let json = serde_json::to_vec(self).expect("a grant serializes");
        let payload = URL_SAFE_NO_PAD.encode(json);
        let signature = key.sign(payload.as_bytes());
        format!(
            "{PREFIX}{payload}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// Reads a token's payload without checking its signature (for
    /// `dump show`; never for access decisions).
    pub fn decode_unverified(token: &str) -> Result<Grant, GrantError> {
        split(token).and_then(|(payload, _)| decode_payload(payload))
    }

    /// Expiry as RFC 3339.
    pub fn expires_at(&self) -> String {
        rfc3339(self.expires)
    }

    /// Issue time as RFC 3339.
    pub fn issued_at(&self) -> String {
        rfc3339(self.issued)
    }

    /// Checks the grant for a session of `role` on `database` at `now`,
    /// with the grant ids in `revoked`. Uses are counted separately.
    pub fn check_session(
        &self,
        role: &str,
        database: &str,
        revoked: &[String],
        now: u64,
    ) -> Result<(), GrantError> {
        let grant_id = self.grant_id.clone();
        if revoked.iter().any(|r| r == &self.grant_id) {
            return Err(GrantError::Revoked { grant_id });
        }
        if now >= self.expires {
            return Err(GrantError::Expired {
                grant_id,
                expired_at: self.expires_at(),
            });
        }
        if self.role != role {
            return Err(GrantError::WrongRole {
                grant_id,
                expected: self.role.clone(),
                actual: role.to_owned(),
            });
        }
        if self.database != database {
            return Err(GrantError::WrongDatabase {
                grant_id,
                expected: self.database.clone(),
                actual: database.to_owned(),
            });
        }
        Ok(())
    }

    /// What the grant allows, as the block log records it (`use_number`:
    /// which use of it a session belongs to).
    pub fn info(&self, use_number: Option<u32>) -> GrantInfo {
        GrantInfo {
            request: self.request_id.clone(),
            requester: self.role.clone(),
            database: self.database.clone(),
            reason: self.reason.clone(),
            scope: self.scope.describe(),
            expires: self.expires_at(),
            uses_allowed: self.uses,
            approved_policy: self.policy_version.clone(),
            use_number,
        }
    }

    /// What the grant allows, for people.
    pub fn describe(&self) -> String {
        format!(
            "grant {}\n  request:  {}\n  role:     {}\n  database: {}\n  scope:    {}\n  reason:   {}\n  issued:   {}\n  expires:  {}\n  uses:     {}\n  policy:   {}\n  key:      {}\n  data:     every classified column pseudonymized; row, byte and budget limits lifted inside the scope\n",
            self.grant_id,
            self.request_id,
            self.role,
            self.database,
            self.scope.describe(),
            self.reason,
            self.issued_at(),
            self.expires_at(),
            self.uses,
            self.policy_version,
            self.key_id,
        )
    }
}

/// The public keys copyguard accepts grants from, by key id.
#[derive(Clone, Debug, Default)]
pub struct GrantKeys {
    keys: HashMap<String, VerifyingKey>,
}

impl GrantKeys {
    /// Keys from public key files (`dump keygen`'s `grant.pub`).
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<GrantKeys, String> {
        let mut keys = GrantKeys::default();
        for path in paths {
            let path = path.as_ref();
            let key = read_public_key(path).map_err(|e| format!("{}: {e}", path.display()))?;
            keys.add(key);
        }
        Ok(keys)
    }

    /// Adds a key.
    pub fn add(&mut self, key: VerifyingKey) {
        self.keys.insert(key_id(&key), key);
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a token's shape and signature; the grant it holds.
    pub fn verify(&self, token: &str) -> Result<Grant, GrantError> {
        if self.keys.is_empty() {
            return Err(GrantError::NoKeys);
        }
        let (payload, signature) = split(token)?;
        let grant = decode_payload(payload)?;
        let key = self
            .keys
            .get(&grant.key_id)
            .ok_or_else(|| GrantError::UnknownKey {
                key_id: grant.key_id.clone(),
            })?;
        let sig = URL_SAFE_NO_PAD
            .decode(signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or(GrantError::Tampered)?;
        key.verify(payload.as_bytes(), &sig)
            .map_err(|_| GrantError::Tampered)?;
        Ok(grant)
    }
}

/// The id of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Reads a hex-encoded Ed25519 private key (32-byte seed).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, String> {
    let bytes = read_hex32(path)?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Reads a hex-encoded Ed25519 public key.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, String> {
    let bytes = read_hex32(path)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not an Ed25519 public key".to_owned())
}

fn read_hex32(path: &Path) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let bytes = hex::decode(text.trim()).map_err(|_| "not a hex-encoded key".to_owned())?;
    bytes
        .try_into()
        .map_err(|_| "a key is 32 bytes (64 hex digits)".to_owned())
}

fn split(token: &str) -> Result<(&str, &str), GrantError> {
    let malformed = |m: &str| Err(GrantError::Malformed(m.to_owned()));
    if token.len() > MAX_TOKEN_LEN {
        return malformed("too long");
    }
    let Some(rest) = token.trim().strip_prefix(PREFIX) else {
        return malformed("it does not start with cg1.");
    };
    match rest.split_once('.') {
        Some((payload, sig)) if !payload.is_empty() && !sig.is_empty() && !sig.contains('.') => {
            Ok((payload, sig))
        }
        _ => malformed("expected cg1.PAYLOAD.SIGNATURE"),
    }
}

/// The grant a token's payload holds. Its ids must have the form copyguard
/// gives them (hex digits) and its times must be dates: an unverified
/// token's claimed grant id and key id reach the block log and error
/// messages, where a forged one could carry line breaks or terminal
/// sequences, and a time past year 9999 has no date to print.
fn decode_payload(payload: &str) -> Result<Grant, GrantError> {
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| GrantError::Tampered)?;
    let grant: Grant = serde_json::from_slice(&json).map_err(|_| GrantError::Tampered)?;
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let dated = |secs: u64| secs <= LATEST;
    match hex(&grant.grant_id, 32)
        && hex(&grant.key_id, 16)
        && dated(grant.issued)
        && dated(grant.expires)
    {
        true => Ok(grant),
        false => Err(GrantError::Malformed(
            "its grant id or key id is not copyguard's hex, or a time is past year 9999".into(),
        )),
    }
}

/// 9999-12-31T23:59:59Z, the latest time RFC 3339 can write.
const LATEST: u64 = 253_402_300_799;

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `secs` as an RFC 3339 time; times past year 9999 as its last second.
fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs.min(LATEST)))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (SigningKey, GrantKeys, DumpRequest) {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut keys = GrantKeys::default();
        keys.add(key.verifying_key());
        let req = DumpRequest::new("dev_alice", "shop", Scope::default(), "bug 1");
        (key, keys, req)
    }

    #[test]
    fn a_signed_grant_verifies_and_is_pgoptions_safe() {
        let (key, keys, req) = fixture();
        let grant = Grant::approve(&req, Duration::from_secs(3600), 2, "v1", &key);
        let token = grant.sign(&key);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        let back = keys.verify(&token).unwrap();
        assert_eq!(back, grant);
        assert_eq!(back.key_id, key_id(&key.verifying_key()));
        assert_eq!(Grant::decode_unverified(&token).unwrap(), grant);
        assert!(grant.describe().contains("dev_alice"));
    }

    #[test]
    fn tampered_malformed_and_unknown_key() {
        let (key, keys, req) = fixture();
        let grant = Grant::approve(&req, Duration::from_secs(3600), 1, "v1", &key);
        let token = grant.sign(&key);
        let mut forged = grant.clone();
        forged.uses = 1000;
        let forged_payload = forged.sign(&SigningKey::from_bytes(&[9; 32]));
        let (_, sig) = token.rsplit_once('.').unwrap();
        let (head, _) = forged_payload.rsplit_once('.').unwrap();
        let spliced = format!("{head}.{sig}");
        assert_eq!(keys.verify(&spliced), Err(GrantError::Tampered));
        let mut bytes = token.clone().into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(keys.verify(&flipped), Err(GrantError::Tampered));
        for bad in ["", "cg1.", "xyz", "cg1.a.b.c", "cg1.!!!.x"] {
            let e = keys.verify(bad).unwrap_err();
            assert!(
                matches!(e, GrantError::Malformed(_) | GrantError::Tampered),
                "{bad}: {e}"
            );
        }
        let other = SigningKey::from_bytes(&[8; 32]);
        let foreign = Grant::approve(&req, Duration::from_secs(60), 1, "v1", &other).sign(&other);
        assert!(matches!(
            keys.verify(&foreign),
            Err(GrantError::UnknownKey { .. })
        ));
        assert_eq!(GrantKeys::default().verify(&token), Err(GrantError::NoKeys));
    }

    #[test]
    fn session_checks() {
        let (key, _, req) = fixture();
        let grant = Grant::approve(&req, Duration::from_secs(3600), 1, "v1", &key);
        let now = unix_now();
        assert!(grant.check_session("dev_alice", "shop", &[], now).is_ok());
        let e = grant
            .check_session("dev_alice", "shop", &[], now + 7200)
            .unwrap_err();
        assert!(matches!(e, GrantError::Expired { .. }));
        assert_eq!(e.rule(), "grant.expired");
        let e = grant
            .check_session(
                "dev_alice",
                "shop",
                std::slice::from_ref(&grant.grant_id),
                now,
            )
            .unwrap_err();
        assert!(matches!(e, GrantError::Revoked { .. }));
        let e = grant
            .check_session("dev_bob", "shop", &[], now)
            .unwrap_err();
        assert!(matches!(e, GrantError::WrongRole { .. }));
        assert!(e.to_string().contains("dev_bob"));
        let e = grant
            .check_session("dev_alice", "other", &[], now)
            .unwrap_err();
        assert!(matches!(e, GrantError::WrongDatabase { .. }));
        assert_eq!(e.sqlstate(), "28000");
    }

    #[test]
    fn keys_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[3; 32]);
        let path = dir.path().join("grant.pub");
        std::fs::write(&path, hex::encode(key.verifying_key().as_bytes())).unwrap();
        let keys = GrantKeys::load(&[&path]).unwrap();
        assert!(!keys.is_empty());
        std::fs::write(&path, "zz").unwrap();
        assert!(GrantKeys::load(&[&path]).is_err());
        let skey = dir.path().join("grant.key");
        std::fs::write(&skey, hex::encode([3; 32])).unwrap();
        assert_eq!(read_signing_key(&skey).unwrap().to_bytes(), key.to_bytes());
    }
}
