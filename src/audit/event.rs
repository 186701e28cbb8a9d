//! What the proxy reports to the log: sessions, verdicts, results, policy
//! reloads and grant use. These types hold no raw statement text: a
//! statement enters only through [`normalize`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::normalize::{normalize, Normalized};

/// The fixed facts of one session, shared by all its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionFields {
    /// Process-unique session id.
    pub id: u64,
    /// Client address.
    pub client_addr: SocketAddr,
    /// Whether the client connection is encrypted.
    pub tls: bool,
    /// Login role.
    pub role: String,
    /// Database.
    pub database: String,
    /// `application_name` given at startup.
    pub application_name: Option<String>,
    /// The role class the session was put in at login.
    pub role_class: String,
}

/// The outcome of a guarded statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Runs; touches no classified output.
    Allowed,
    /// Runs within per-statement row and byte limits.
    AllowedLimited,
    /// Runs with classified outputs replaced by pseudonyms.
    Pseudonymized,
    /// Refused before it reached the server.
    Blocked,
    /// Stopped while its results streamed: a limit or budget ran out.
    BudgetExceeded,
}

impl Verdict {
    /// Every verdict.
    pub const ALL: [Verdict; 5] = [
        Verdict::Allowed,
        Verdict::AllowedLimited,
        Verdict::Pseudonymized,
        Verdict::Blocked,
        Verdict::BudgetExceeded,
    ];

    /// The name used in records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::AllowedLimited => "allowed_limited",
            Verdict::Pseudonymized => "pseudonymized",
            Verdict::Blocked => "blocked",
            Verdict::BudgetExceeded => "budget_exceeded",
        }
    }

    /// Parses [`Verdict::as_str`].
    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether a reviewer counts it as a refusal.
    pub fn is_refusal(self) -> bool {
        matches!(self, Verdict::Blocked | Verdict::BudgetExceeded)
    }
}

/// A statement's verdict (before it runs) or result (after its rows were
/// sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementEvent {
    /// The normalized statement.
    pub statement: Normalized,
    /// The verdict.
    pub verdict: Verdict,
    /// Stable rule id for refusals and limits, e.g. `table.forbidden`.
    pub rule: Option<String>,
    /// Why, for a reviewer. Must never contain a value from the data or
    /// from the statement.
    pub reason: Option<String>,
    /// Relations read or written, `schema.table`.
    pub relations: Vec<String>,
    /// Classified columns touched, `schema.table.column`.
    pub columns: Vec<String>,
    /// Rows sent to the client (results and budget stops).
    pub rows: Option<u64>,
    /// Bytes sent to the client (results and budget stops).
    pub bytes: Option<u64>,
    /// Pseudonymized values per category (results).
    pub pseudonymized: BTreeMap<String, u64>,
    /// Grant id of a sanctioned dump.
    pub grant: Option<String>,
    /// Version of the policy that decided.
    pub policy_version: Option<String>,
    /// For a result: the `seq` of the verdict it follows.
    pub verdict_seq: Option<u64>,
}

impl StatementEvent {
    /// A statement event with the statement normalized and every other
    /// field empty.
    pub fn new(sql: &str, verdict: Verdict) -> StatementEvent {
        StatementEvent {
            statement: normalize(sql),
            verdict,
            rule: None,
            reason: None,
            relations: Vec::new(),
            columns: Vec::new(),
            rows: None,
            bytes: None,
            pseudonymized: BTreeMap::new(),
            grant: None,
            policy_version: None,
            verdict_seq: None,
        }
    }
}

/// Totals of a session, for its end record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionTotals {
    /// How long the session lasted.
    pub duration: Duration,
    /// Statements decided (guarded, refused ones included), or Query and
    /// Execute messages relayed (production).
    pub statements: u64,
    /// Statements refused and results stopped (guarded).
    pub refusals: u64,
    /// Rows sent to the client.
    pub rows: u64,
    /// Bytes sent to the client.
    pub bytes: u64,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A session was classified and starts relaying.
    SessionStart,
    /// A session ended.
    SessionEnd(SessionTotals),
    /// A guarded login was refused before the session started (replication,
    /// an identity or lexer setting at startup).
    SessionRefused {
        /// Rule id.
        rule: String,
        /// Why, for a reviewer.
        reason: String,
        /// The startup parameters other than `user` and `database` (which
        /// the session fields hold).
        startup: BTreeMap<String, String>,
        /// The id of the dump grant the login presented, when it was
        /// refused for its grant (never the token).
        grant: Option<String>,
    },
    /// A verdict, written before the client sees it.
    Verdict(Box<StatementEvent>),
    /// What a statement sent once its results were streamed.
    Result(Box<StatementEvent>),
    /// A production session's statement fingerprint (best effort).
    Statement(Normalized),
    /// The policy was reloaded (`ok`) or a new one was refused.
    PolicyReload {
        /// Whether the new policy is in force.
        ok: bool,
        /// Version of the policy in force afterwards.
        version: Option<String>,
        /// Outcome for a reviewer (file and key of an error).
        detail: Option<String>,
    },
    /// A signed dump grant was used.
    GrantUse {
        /// The grant id.
        grant: String,
        /// What it was used for.
        detail: Option<String>,
        /// What the grant allows and which use this is (the record of a
        /// granted session's start; receipts have none).
        info: Option<Box<GrantInfo>>,
        /// Version of the policy in force when the session started.
        policy_version: Option<String>,
    },
    /// A dump grant was issued (`copyguard dump approve --log`).
    GrantIssued {
        /// The grant id.
        grant: String,
        /// What it allows.
        info: Box<GrantInfo>,
    },
}

/// What a dump grant allows, as the block log records it when the grant
/// is issued and each time a session uses it (never the token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantInfo {
    /// Id of the request the grant approves.
    pub request: String,
    /// The role that requested it (and alone may use it).
    pub requester: String,
    /// Database.
    pub database: String,
    /// Why the dump was requested.
    pub reason: String,
    /// What the dump covers, for people.
    pub scope: String,
    /// Expiry, RFC 3339.
    pub expires: String,
    /// Uses allowed.
    pub uses_allowed: u32,
    /// Version of the policy the grant was approved under.
    pub approved_policy: String,
    /// For a use: which use of the grant the session belongs to (from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_number: Option<u32>,
}

/// One event for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The session it belongs to, if any.
    pub session: Option<Arc<SessionFields>>,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// A session starts.
    pub fn session_start(session: &Arc<SessionFields>) -> Event {
        Event::of(session, EventKind::SessionStart)
    }

    /// A session ends.
    pub fn session_end(session: &Arc<SessionFields>, totals: SessionTotals) -> Event {
        Event::of(session, EventKind::SessionEnd(totals))
    }

    /// A guarded login refused by `rule` for `reason`, with the startup
    /// parameters the client sent.
    pub fn session_refused(
        session: &Arc<SessionFields>,
        rule: &str,
        reason: &str,
        startup: &[(String, String)],
    ) -> Event {
        let startup = startup
            .iter()
            .filter(|(k, _)| k != "user" && k != "database")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Event::of(
            session,
            EventKind::SessionRefused {
                rule: rule.to_owned(),
                reason: reason.to_owned(),
                startup,
                grant: None,
            },
        )
    }

    /// A login refused for the dump grant it presented (`grant`: the id
    /// the token claims, when it could be read).
    pub fn grant_refused(
        session: &Arc<SessionFields>,
        rule: &str,
        reason: &str,
        startup: &[(String, String)],
        grant: Option<String>,
    ) -> Event {
        let mut ev = Event::session_refused(session, rule, reason, startup);
        if let EventKind::SessionRefused { grant: g, .. } = &mut ev.kind {
            *g = grant;
        }
        ev
    }

    /// A verdict on a statement.
    pub fn verdict(session: &Arc<SessionFields>, statement: StatementEvent) -> Event {
        Event::of(session, EventKind::Verdict(Box::new(statement)))
    }

    /// The result of a statement that ran.
    pub fn result(session: &Arc<SessionFields>, statement: StatementEvent) -> Event {
        Event::of(session, EventKind::Result(Box::new(statement)))
    }

    /// A production statement's fingerprint.
    pub fn production_statement(session: &Arc<SessionFields>, sql: &str) -> Event {
        Event::of(session, EventKind::Statement(normalize(sql)))
    }

    /// A policy reload.
    pub fn policy_reload(ok: bool, version: Option<String>, detail: Option<String>) -> Event {
        Event {
            session: None,
            kind: EventKind::PolicyReload {
                ok,
                version,
                detail,
            },
        }
    }

    /// A dump grant used by a session.
    pub fn grant_use(session: &Arc<SessionFields>, grant: &str, detail: Option<String>) -> Event {
        Event::of(
            session,
            EventKind::GrantUse {
                grant: grant.to_owned(),
                detail,
                info: None,
                policy_version: None,
            },
        )
    }

    /// A session admitted with a dump grant: the grant, what it allows and
    /// which use this is (`info.use_number`), under `policy_version` (the
    /// policy in force).
    pub fn grant_admitted(
        session: &Arc<SessionFields>,
        grant: &str,
        detail: String,
        info: GrantInfo,
        policy_version: &str,
    ) -> Event {
        Event {
            session: Some(session.clone()),
            kind: EventKind::GrantUse {
                grant: grant.to_owned(),
                detail: Some(detail),
                info: Some(Box::new(info)),
                policy_version: Some(policy_version.to_owned()),
            },
        }
    }

    /// A dump grant issued by `copyguard dump approve`.
    pub fn grant_issued(grant: &str, info: GrantInfo) -> Event {
        Event {
            session: None,
            kind: EventKind::GrantIssued {
                grant: grant.to_owned(),
                info: Box::new(info),
            },
        }
    }

    fn of(session: &Arc<SessionFields>, kind: EventKind) -> Event {
        Event {
            session: Some(session.clone()),
            kind,
        }
    }
}
