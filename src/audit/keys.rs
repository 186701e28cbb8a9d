//! The two audit keys and their files: the chain key (HMAC-SHA-256, 32
//! bytes) and the anchor signing key (Ed25519 seed, 32 bytes) with its
//! public half. Each file holds the key as 64 hex digits and a newline.
//! Keys are never logged, and `Debug` does not show them.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::TryRngCore;

use super::AuditError;

/// File name of the chain key written by [`generate`].
pub const CHAIN_KEY_FILE: &str = "chain.key";
/// File name of the signing key written by [`generate`].
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// File name of the public key written by [`generate`].
pub const PUBLIC_KEY_FILE: &str = "signing.pub";

/// The secret key of the hash chain.
#[derive(Clone)]
pub struct ChainKey(pub(crate) [u8; 32]);

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

impl ChainKey {
    /// Reads a chain key file.
    pub fn load(path: &Path) -> Result<ChainKey, AuditError> {
        read_key(path).map(ChainKey)
    }
}

/// Reads an Ed25519 signing key (seed) file.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, AuditError> {
    read_key(path).map(|seed| SigningKey::from_bytes(&seed))
}

/// Reads an Ed25519 public key file.
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, AuditError> {
    let bytes = read_key(path)?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| AuditError::Key {
        path: path.to_owned(),
        message: format!("not an Ed25519 public key: {e}"),
    })
}

/// Paths written by [`generate`].
#[derive(Clone, Debug)]
pub struct KeyFiles {
    /// The chain key (mode 0600).
    pub chain: PathBuf,
    /// The signing key (mode 0600).
    pub signing: PathBuf,
    /// The public key (mode 0644).
    pub public: PathBuf,
}

/// Writes a fresh chain key and signing key pair into `dir` (created with
/// mode 0700 if missing). Refuses to overwrite an existing key file.
pub fn generate(dir: &Path) -> Result<KeyFiles, AuditError> {
    let files = KeyFiles {
        chain: dir.join(CHAIN_KEY_FILE),
        signing: dir.join(SIGNING_KEY_FILE),
        public: dir.join(PUBLIC_KEY_FILE),
    };
    generate_files(&files.chain, &files.signing, Some(&files.public))?;
    Ok(files)
}

/// Writes whichever of the two secret key files is missing (and the public
/// key beside the signing key when it is written). Used when `serve` runs
/// with the default key locations.
pub(crate) fn generate_files(
    chain: &Path,
    signing: &Path,
    public: Option<&Path>,
) -> Result<(), AuditError> {
    for path in [Some(chain), Some(signing), public].into_iter().flatten() {
        if path.exists() {
            return Err(AuditError::Key {
                path: path.to_owned(),
                message: "exists already; not overwritten".into(),
            });
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|e| AuditError::io("cannot create the key directory", parent, e))?;
            }
        }
    }
    write_key(chain, &random_bytes()?, 0o600)?;
    let seed = random_bytes()?;
    write_key(signing, &seed, 0o600)?;
    if let Some(public) = public {
        let key = SigningKey::from_bytes(&seed).verifying_key();
        write_key(public, key.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// The public key file conventionally next to a chain key: `signing.pub`
/// in the same directory.
pub fn public_key_beside(chain_key: &Path) -> PathBuf {
    chain_key
        .parent()
        .unwrap_or(Path::new("."))
        .join(PUBLIC_KEY_FILE)
}

fn random_bytes() -> Result<[u8; 32], AuditError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| AuditError::Key {
            path: PathBuf::new(),
            message: format!("no operating-system randomness: {e}"),
        })?;
    Ok(bytes)
}

fn write_key(path: &Path, key: &[u8; 32], mode: u32) -> Result<(), AuditError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| AuditError::io("cannot create key file", path, e))?;
    file.write_all(format!("{}\n", hex::encode(key)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| AuditError::io("cannot write key file", path, e))
}

fn read_key(path: &Path) -> Result<[u8; 32], AuditError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| AuditError::io("cannot read key", path, e))?;
    let bad = || AuditError::Key {
        path: path.to_owned(),
        message: "expected 64 hex digits (32 bytes)".into(),
    };
    let bytes = hex::decode(text.trim()).map_err(|_| bad())?;
    let key: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 && !path.ends_with(PUBLIC_KEY_FILE) {
            tracing::warn!(path = %path.display(), "audit key file is readable by other users; chmod 600 it");
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_back_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let keys = generate(&dir.path().join("k")).unwrap();
        let chain = ChainKey::load(&keys.chain).unwrap();
        let signing = load_signing_key(&keys.signing).unwrap();
        let public = load_public_key(&keys.public).unwrap();
        assert_eq!(signing.verifying_key(), public);
        assert_ne!(chain.0, signing.to_bytes());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&keys.chain), 0o600);
        assert_eq!(mode(&keys.signing), 0o600);
        assert_eq!(mode(&dir.path().join("k")), 0o700);
        assert_eq!(format!("{chain:?}"), "ChainKey(..)");
        assert!(generate(&dir.path().join("k")).is_err(), "never overwrites");
        assert_eq!(public_key_beside(&keys.chain), keys.public);
    }

    #[test]
    fn malformed_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "abcd\n").unwrap();
        let err = ChainKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
        assert!(ChainKey::load(&dir.path().join("missing")).is_err());
    }
}
