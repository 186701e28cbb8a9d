//! Why a dump request or grant was refused.

use thiserror::Error;

use crate::policy::Rule;

/// A grant or request that cannot be used, with the reason. Messages name
/// the grant by its id, never by its token.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GrantError {
    /// Not a grant token at all (wrong shape, bad encoding, bad fields).
    #[error("the grant is not a valid copyguard grant token: {0}")]
    Malformed(String),
    /// The signature does not match the content.
    #[error("the grant's signature does not match its content: it was altered or damaged")]
    Tampered,
    /// Signed by a key copyguard is not configured with.
    #[error("the grant is signed with key {key_id}, which is not among the configured dumps.public_keys")]
    UnknownKey {
        /// Key id named in the grant.
        key_id: String,
    },
    /// copyguard has no grant public key at all.
    #[error("copyguard accepts no grants: no grant public key is configured (dumps.public_keys)")]
    NoKeys,
    /// Past its expiry.
    #[error("grant {grant_id} expired at {expired_at}")]
    Expired {
        /// Grant id.
        grant_id: String,
        /// Expiry, RFC 3339.
        expired_at: String,
    },
    /// Listed as revoked in the policy.
    #[error("grant {grant_id} has been revoked")]
    Revoked {
        /// Grant id.
        grant_id: String,
    },
    /// Every allowed use is spent.
    #[error("grant {grant_id} has been used up: it allows {allowed} use(s)")]
    Overused {
        /// Grant id.
        grant_id: String,
        /// Uses allowed.
        allowed: u32,
    },
    /// Presented by another login role than the one it was issued to.
    #[error("grant {grant_id} was issued to role {expected:?}, not {actual:?}")]
    WrongRole {
        /// Grant id.
        grant_id: String,
        /// Role in the grant.
        expected: String,
        /// Login role.
        actual: String,
    },
    /// Presented for another database.
    #[error("grant {grant_id} is for database {expected:?}, not {actual:?}")]
    WrongDatabase {
        /// Grant id.
        grant_id: String,
        /// Database in the grant.
        expected: String,
        /// Database connected to.
        actual: String,
    },
    /// A table read outside the granted scope.
    #[error("{relation} is outside the scope of grant {grant_id}; only its schema may be dumped (pg_dump --exclude-table-data={relation})")]
    OutOfScope {
        /// Grant id.
        grant_id: String,
        /// `schema.table`.
        relation: String,
    },
}

impl GrantError {
    /// The rule the grant is refused by.
    pub fn as_rule(&self) -> Rule {
        match self {
            GrantError::Malformed(_) => Rule::GrantMalformed,
            GrantError::Tampered => Rule::GrantTampered,
            GrantError::UnknownKey { .. } => Rule::GrantUnknownKey,
            GrantError::NoKeys => Rule::GrantNoKeys,
            GrantError::Expired { .. } => Rule::GrantExpired,
            GrantError::Revoked { .. } => Rule::GrantRevoked,
            GrantError::Overused { .. } => Rule::GrantOverused,
            GrantError::WrongRole { .. } => Rule::GrantWrongRole,
            GrantError::WrongDatabase { .. } => Rule::GrantWrongDatabase,
            GrantError::OutOfScope { .. } => Rule::GrantOutOfScope,
        }
    }

    /// The stable rule id, as in the block log.
    pub fn rule(&self) -> &'static str {
        self.as_rule().id()
    }

    /// The SQLSTATE a client gets: `28000` (invalid authorization
    /// specification) for a grant refused at connect time, `42501`
    /// (insufficient privilege) for a statement outside the scope.
    pub fn sqlstate(&self) -> &'static str {
        self.as_rule().sqlstate()
    }

    /// What the client can do instead.
    pub fn hint(&self) -> &'static str {
        self.as_rule().hint()
    }
}

/// A request document that cannot be read or written.
#[derive(Debug, Error)]
pub enum RequestError {
    /// Not a valid request document.
    #[error("not a valid dump request: {0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grant_refusal_is_a_rule_with_its_sqlstate_and_hint() {
        let id = || "0123".to_owned();
        let all = [
            GrantError::Malformed("x".into()),
            GrantError::Tampered,
            GrantError::UnknownKey { key_id: id() },
            GrantError::NoKeys,
            GrantError::Expired {
                grant_id: id(),
                expired_at: id(),
            },
            GrantError::Revoked { grant_id: id() },
            GrantError::Overused {
                grant_id: id(),
                allowed: 1,
            },
            GrantError::WrongRole {
                grant_id: id(),
                expected: id(),
                actual: id(),
            },
            GrantError::WrongDatabase {
                grant_id: id(),
                expected: id(),
                actual: id(),
            },
            GrantError::OutOfScope {
                grant_id: id(),
                relation: id(),
            },
        ];
        let mut rules = std::collections::BTreeSet::new();
        for e in &all {
            let rule = e.as_rule();
            assert!(rules.insert(rule), "{rule} twice");
            assert_eq!(Rule::from_id(e.rule()), Some(rule));
            assert!(e.rule().starts_with("grant."));
            let connect_time = !matches!(e, GrantError::OutOfScope { .. });
            assert_eq!(
                e.sqlstate(),
                if connect_time { "28000" } else { "42501" },
                "{rule}"
            );
            assert!(!e.hint().is_empty());
        }
        assert!(GrantError::Expired {
            grant_id: id(),
            expired_at: id()
        }
        .hint()
        .contains("copyguard dump request"));
        assert!(GrantError::NoKeys.hint().contains("dumps.public_keys"));
        assert!(GrantError::WrongRole {
            grant_id: id(),
            expected: id(),
            actual: id()
        }
        .hint()
        .contains("copyguard dump show"));
    }
}
