//! Why a dump request or grant was refused.

use thiserror::Error;

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
    /// The stable rule id, as in the block log.
    pub fn rule(&self) -> &'static str {
        match self {
            GrantError::Malformed(_) => "grant.malformed",
            GrantError::Tampered => "grant.tampered",
            GrantError::UnknownKey { .. } => "grant.unknown_key",
            GrantError::NoKeys => "grant.no_keys",
            GrantError::Expired { .. } => "grant.expired",
            GrantError::Revoked { .. } => "grant.revoked",
            GrantError::Overused { .. } => "grant.overused",
            GrantError::WrongRole { .. } => "grant.wrong_role",
            GrantError::WrongDatabase { .. } => "grant.wrong_database",
            GrantError::OutOfScope { .. } => "grant.out_of_scope",
        }
    }

    /// The SQLSTATE a client gets: `28000` (invalid authorization
    /// specification) for a grant refused at connect time, `42501`
    /// (insufficient privilege) for a statement outside the scope.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            GrantError::OutOfScope { .. } => "42501",
            _ => "28000",
        }
    }
}

/// A request document that cannot be read or written.
#[derive(Debug, Error)]
pub enum RequestError {
    /// Not a valid request document.
    #[error("not a valid dump request: {0}")]
    Invalid(String),
}
