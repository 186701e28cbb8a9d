//! Sanctioned dumps: the request a developer writes, the grant security
//! signs, the checks copyguard runs when a session presents the grant,
//! and what a granted session may do.
//!
//! The flow: `copyguard dump request` writes a [`DumpRequest`];
//! `copyguard dump approve` turns it into a signed [`Grant`] token; the
//! developer runs pg_dump with `PGOPTIONS='-c copyguard.grant=TOKEN'`.
//! At connect time copyguard removes the token from the startup packet
//! ([`take_grant`]), checks it ([`GrantChecker::admit`]) and gives the
//! session a class derived from its own ([`granted_class`]): limits
//! lifted, every classified column pseudonymized, rows outside the scope
//! refused.

mod error;
mod grant;
mod preflight;
mod receipt;
mod request;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

pub use error::{GrantError, RequestError};
pub use grant::{
    key_id, read_public_key, read_signing_key, unix_now, Grant, GrantKeys, MAX_TOKEN_LEN,
};
pub use preflight::{preflight, Constraints, Preflight, CONSTRAINTS_SQL};
pub use receipt::{Receipt, TableReceipt};
pub use request::{DumpRequest, Scope};

use crate::audit::{Event, SessionFields};
use crate::policy::{ClassLimits, CopyToAction, DerivedAction, Policy, RoleClass};
use crate::state::GrantUses;

/// The custom setting a grant is passed in: `-c copyguard.grant=TOKEN`.
pub const GRANT_SETTING: &str = "copyguard.grant";

/// File names `dump keygen` writes.
pub const PRIVATE_KEY_FILE: &str = "grant.key";
/// See [`PRIVATE_KEY_FILE`].
pub const PUBLIC_KEY_FILE: &str = "grant.pub";

/// The grant of a granted session, with what the session may touch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpScope {
    /// Grant id.
    pub grant_id: String,
    /// What its rows may come from.
    pub scope: Scope,
}

/// Removes every `copyguard.grant` setting from startup parameters (as a
/// parameter of its own or inside `options`), so it never reaches
/// PostgreSQL; the token, if there was exactly one. `Ok(None)`: the
/// parameters are unchanged.
pub fn take_grant(params: &mut Vec<(String, String)>) -> Result<Option<String>, GrantError> {
    let mut found = Vec::new();
    params.retain(|(k, v)| {
        let is_grant = k.eq_ignore_ascii_case(GRANT_SETTING);
        if is_grant {
            found.push(v.clone());
        }
        !is_grant
    });
    for (k, v) in params.iter_mut() {
        if k == "options" {
            let (kept, tokens) = strip_options(v);
            if !tokens.is_empty() {
                *v = kept;
                found.extend(tokens);
            }
        }
    }
    params.retain(|(k, v)| !(k == "options" && v.is_empty()));
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(GrantError::Malformed(
            "more than one copyguard.grant setting".to_owned(),
        )),
    }
}

/// Splits a backend `options` string the way PostgreSQL does; the string
/// without its `copyguard.grant` settings, and their values.
fn strip_options(options: &str) -> (String, Vec<String>) {
    let words = split_words(options);
    let mut kept: Vec<String> = Vec::new();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let (setting, used) = if w == "-c" {
            (words.get(i + 1).map(String::as_str), 2)
        } else if let Some(rest) = w.strip_prefix("--") {
            (Some(rest), 1)
        } else if let Some(rest) = w.strip_prefix("-c") {
            (Some(rest), 1)
        } else {
            (None, 1)
        };
        let grant = setting.and_then(|s| {
            let (name, value) = s.split_once('=')?;
            let name = name.trim().replace('-', "_");
            name.eq_ignore_ascii_case(GRANT_SETTING)
                .then(|| value.to_owned())
        });
        match grant {
            Some(token) => tokens.push(token),
            None => kept.extend(words[i..(i + used).min(words.len())].iter().cloned()),
        }
        i += used;
    }
    let escaped: Vec<String> = kept.iter().map(|w| escape_word(w)).collect();
    (escaped.join(" "), tokens)
}

fn split_words(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut pending = false;
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    word.push(next);
                    pending = true;
                }
            }
            c if c.is_ascii_whitespace() => {
                if pending {
                    words.push(std::mem::take(&mut word));
                    pending = false;
                }
            }
            c => {
                word.push(c);
                pending = true;
            }
        }
    }
    if pending {
        words.push(word);
    }
    words
}

fn escape_word(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if c == '\\' || c.is_ascii_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Checks grants at connect time and counts their uses.
#[derive(Debug)]
pub struct GrantChecker {
    keys: GrantKeys,
    uses: Arc<dyn GrantUses>,
}

impl GrantChecker {
    /// A checker with these keys and use counts.
    pub fn new(keys: GrantKeys, uses: Arc<dyn GrantUses>) -> GrantChecker {
        GrantChecker { keys, uses }
    }

    /// Verifies `token` for a session of `role` on `database` under
    /// `policy` (its revoked grant ids) and takes a use; the admitted
    /// session, whose use ends when it is dropped.
    ///
    /// A grant approved under another policy version is accepted: the
    /// session is enforced with the policy in force (every column it
    /// classifies now is pseudonymized, its forbidden tables stay
    /// refused, its revocations apply), and the use record names both
    /// versions for the reviewer.
    pub fn admit(
        &self,
        token: &str,
        role: &str,
        database: &str,
        policy: &Policy,
    ) -> Result<GrantedSession, GrantError> {
        let grant = self.keys.verify(token)?;
        grant.check_session(role, database, policy.revoked_grants(), unix_now())?;
        let use_number = self
            .uses
            .open(&grant.grant_id, grant.uses)
            .map_err(|allowed| GrantError::Overused {
                grant_id: grant.grant_id.clone(),
                allowed,
            })?;
        Ok(GrantedSession {
            grant: Arc::new(grant),
            use_number,
            policy_version: policy.version().to_owned(),
            uses: self.uses.clone(),
        })
    }

    /// Reads a token far enough to name its grant id in a refusal, when
    /// it can be read at all (the id of a forged token is only a claim).
    pub fn claimed_id(token: &str) -> Option<String> {
        Grant::decode_unverified(token).ok().map(|g| g.grant_id)
    }
}

/// A session admitted with a grant. Dropping it ends its part of the use.
#[derive(Debug)]
pub struct GrantedSession {
    /// The verified grant.
    pub grant: Arc<Grant>,
    /// Which use of the grant the session belongs to (from 1).
    pub use_number: u32,
    /// Version of the policy in force when the session was admitted.
    pub policy_version: String,
    uses: Arc<dyn GrantUses>,
}

impl Drop for GrantedSession {
    fn drop(&mut self) {
        self.uses.close(&self.grant.grant_id);
    }
}

/// The class a session gets with a grant: its own class with every row,
/// byte and budget limit lifted, every category pseudonymized (none
/// blocked, the class's `pseudonymize` list does not narrow it), COPY
/// pseudonymized, and the grant's scope as the limit of what rows may
/// come from. Writes, DDL and everything else stay as the class has them.
pub fn granted_class(class: &RoleClass, dump: &Arc<DumpScope>) -> RoleClass {
    let limits = ClassLimits {
        max_rows_per_statement: u64::MAX,
        max_bytes_per_statement: u64::MAX,
        max_rows_per_session: u64::MAX,
        max_rows_per_window: u64::MAX,
        copy_to: CopyToAction::Pseudonymize,
        block_categories: Default::default(),
        pseudonymize: ["*".to_owned()].into_iter().collect(),
        derived: DerivedAction::Block,
        ..class.limits.clone()
    };
    RoleClass {
        name: class.name.clone(),
        mode: class.mode,
        limits,
        dump: Some(dump.clone()),
    }
}

impl GrantedSession {
    /// The block-log record of the session's start: grant id, which use,
    /// what the grant allows and why it was requested, and the policy
    /// versions it was approved under and is enforced with.
    pub fn use_event(&self, session: &Arc<SessionFields>) -> Event {
        let g = &self.grant;
        let policy = if g.policy_version == self.policy_version {
            format!("policy {}", self.policy_version)
        } else {
            format!(
                "approved under policy {}, enforced with policy {} (changed since approval)",
                g.policy_version, self.policy_version
            )
        };
        let detail = format!(
            "use {} of {}; request {}; scope: {}; reason: {}; expires {}; {policy}",
            self.use_number,
            g.uses,
            g.request_id,
            g.scope.describe(),
            g.reason,
            g.expires_at()
        );
        Event::grant_admitted(
            session,
            &g.grant_id,
            detail,
            g.info(Some(self.use_number)),
            &self.policy_version,
        )
    }

    /// What the session may touch.
    pub fn dump_scope(&self) -> Arc<DumpScope> {
        Arc::new(DumpScope {
            grant_id: self.grant.grant_id.clone(),
            scope: self.grant.scope.clone(),
        })
    }
}

/// Writes a new grant key pair into `dir`: `grant.key` (private, mode
/// 0600) and `grant.pub`. Existing files are never overwritten. The id of
/// the new key.
pub fn keygen(dir: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let mut seed = [0u8; 32];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut seed)
        .map_err(std::io::Error::other)?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = key.verifying_key();
    write_new(&dir.join(PRIVATE_KEY_FILE), &hex::encode(seed), 0o600)?;
    write_new(
        &dir.join(PUBLIC_KEY_FILE),
        &hex::encode(public.as_bytes()),
        0o644,
    )?;
    Ok(key_id(&public))
}

fn write_new(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(format!("{text}\n").as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::LocalGrantUses;
    use std::time::Duration;

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn the_grant_is_taken_out_of_the_startup_packet() {
        let mut params = vec![
            p("user", "dev"),
            p(
                "options",
                "-c search_path=a\\ b -c copyguard.grant=cg1.x.y --statement-timeout=5",
            ),
        ];
        assert_eq!(take_grant(&mut params).unwrap().as_deref(), Some("cg1.x.y"));
        assert_eq!(
            params,
            [
                p("user", "dev"),
                p("options", "-c search_path=a\\ b --statement-timeout=5")
            ]
        );
        for opts in [
            "-ccopyguard.grant=T",
            "--copyguard.grant=T",
            "  -c   copyguard.grant=T  ",
        ] {
            let mut params = vec![p("user", "dev"), p("options", opts)];
            assert_eq!(take_grant(&mut params).unwrap().as_deref(), Some("T"));
            assert_eq!(params, [p("user", "dev")], "{opts}");
        }
        let mut params = vec![p("user", "dev"), p("copyguard.grant", "T")];
        assert_eq!(take_grant(&mut params).unwrap().as_deref(), Some("T"));
        assert_eq!(params, [p("user", "dev")]);
        let mut params = vec![
            p("copyguard.grant", "T"),
            p("options", "-c copyguard.grant=U"),
        ];
        assert!(take_grant(&mut params).is_err());
        let mut params = vec![p("user", "dev"), p("options", "-c work_mem=4MB")];
        assert_eq!(take_grant(&mut params).unwrap(), None);
        assert_eq!(params, [p("user", "dev"), p("options", "-c work_mem=4MB")]);
    }

    #[test]
    fn admission_counts_uses() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let mut keys = GrantKeys::default();
        keys.add(key.verifying_key());
        let req = DumpRequest::new("dev", "shop", Scope::default(), "why");
        let grant = Grant::approve(&req, Duration::from_secs(600), 1, "v", &key);
        let token = grant.sign(&key);
        let checker = GrantChecker::new(keys, Arc::new(LocalGrantUses::new(Duration::ZERO)));
        let policy = Policy::from_toml_str("").unwrap();
        let a = checker.admit(&token, "dev", "shop", &policy).unwrap();
        let b = checker.admit(&token, "dev", "shop", &policy).unwrap();
        assert_eq!((a.use_number, b.use_number), (1, 1));
        drop((a, b));
        std::thread::sleep(Duration::from_millis(2));
        let e = checker.admit(&token, "dev", "shop", &policy).unwrap_err();
        assert!(matches!(e, GrantError::Overused { .. }), "{e}");
        let revoking =
            Policy::from_toml_str(&format!("[grants]\nrevoked = [\"{}\"]\n", grant.grant_id))
                .unwrap();
        let e = checker.admit(&token, "dev", "shop", &revoking).unwrap_err();
        assert_eq!(e.rule(), "grant.revoked");
        assert_eq!(GrantChecker::claimed_id(&token), Some(grant.grant_id));
    }

    fn session_fields() -> Arc<SessionFields> {
        Arc::new(SessionFields {
            id: 7,
            client_addr: "10.1.2.3:5000".parse().unwrap(),
            tls: false,
            role: "dev".into(),
            database: "shop".into(),
            application_name: Some("pg_dump".into()),
            role_class: "dev".into(),
        })
    }

    #[test]
    fn the_policy_version_is_a_digest_of_the_policy_files() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let text = "[columns]\n\"public.users.email\" = \"email\"\n";
        std::fs::write(a.path().join("policy.toml"), text).unwrap();
        std::fs::write(b.path().join("policy.toml"), text).unwrap();
        let (pa, _) = Policy::load_dir(a.path()).unwrap();
        let (pb, _) = Policy::load_dir(b.path()).unwrap();
        assert_eq!(pa.version(), pb.version(), "the same files anywhere");
        assert_eq!(pa.version().len(), 16);
        assert!(pa.version().bytes().all(|c| c.is_ascii_hexdigit()));
        std::fs::write(
            b.path().join("policy.toml"),
            text.replace("email\"\n", "phone\"\n"),
        )
        .unwrap();
        let (pc, _) = Policy::load_dir(b.path()).unwrap();
        assert_ne!(pa.version(), pc.version(), "a changed classification");
        std::fs::write(b.path().join("policy.toml"), text).unwrap();
        std::fs::write(b.path().join("more.toml"), "").unwrap();
        let (pd, _) = Policy::load_dir(b.path()).unwrap();
        assert_ne!(pa.version(), pd.version(), "another file");
    }

    #[test]
    fn a_use_records_the_reason_and_both_policy_versions() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let mut keys = GrantKeys::default();
        keys.add(key.verifying_key());
        let req = DumpRequest::new("dev", "shop", Scope::default(), "bug 1234");
        let approved = Policy::from_toml_str("").unwrap();
        let grant = Grant::approve(&req, Duration::from_secs(600), 2, approved.version(), &key);
        let token = grant.sign(&key);
        let checker = GrantChecker::new(keys, Arc::new(LocalGrantUses::new(Duration::ZERO)));
        let same = checker.admit(&token, "dev", "shop", &approved).unwrap();
        let r = crate::audit::Record::from_event(&same.use_event(&session_fields()));
        let info = r.grant_info.as_deref().expect("the grant's facts");
        assert_eq!(info.reason, "bug 1234");
        assert_eq!(info.requester, "dev");
        assert_eq!(info.use_number, Some(1));
        assert_eq!(info.approved_policy, approved.version());
        assert_eq!(r.policy_version.as_deref(), Some(approved.version()));
        let detail = r.detail.as_deref().unwrap();
        assert!(
            detail.contains("reason: bug 1234"),
            "syslog and CEF carry it: {detail}"
        );
        assert!(!detail.contains("changed"), "{detail}");
        drop(same);
        std::thread::sleep(Duration::from_millis(2));
        let changed = Policy::from_toml_str("[columns]\n\"public.t.c\" = \"email\"\n").unwrap();
        let later = checker.admit(&token, "dev", "shop", &changed).unwrap();
        let r = crate::audit::Record::from_event(&later.use_event(&session_fields()));
        let detail = r.detail.unwrap();
        assert!(detail.contains(approved.version()), "{detail}");
        assert!(detail.contains(changed.version()), "{detail}");
        assert!(detail.contains("changed since approval"), "{detail}");
        assert_eq!(r.policy_version.as_deref(), Some(changed.version()));
        assert_eq!(r.grant_info.unwrap().approved_policy, approved.version());
    }

    #[test]
    fn granted_class_lifts_limits_and_pseudonymizes_everything() {
        let class = RoleClass::builtin_default();
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let req = DumpRequest::new("dev", "shop", Scope::default(), "why");
        let grant = Grant::approve(&req, Duration::from_secs(600), 1, "v", &key);
        let dump = Arc::new(DumpScope {
            grant_id: grant.grant_id.clone(),
            scope: grant.scope.clone(),
        });
        let g = granted_class(&class, &dump);
        assert!(g.limits.pseudonymizes("national_id"));
        assert_eq!(g.limits.max_rows_per_statement, u64::MAX);
        assert_eq!(g.limits.copy_to, CopyToAction::Pseudonymize);
        assert!(!g.limits.allow_writes);
        assert_eq!(g.dump.unwrap().grant_id, grant.grant_id);
    }

    #[test]
    fn keygen_writes_a_private_key_only_its_owner_reads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let id = keygen(dir.path()).unwrap();
        let private = dir.path().join(PRIVATE_KEY_FILE);
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let public = read_public_key(&dir.path().join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(key_id(&public), id);
        assert_eq!(read_signing_key(&private).unwrap().verifying_key(), public);
        assert!(keygen(dir.path()).is_err(), "never overwrites");
    }
}
