//! One log record: its fields, its canonical JSON form and the sealed line
//! written to the log.
//!
//! Fields appear in the order of [`Record`]; empty optional fields are
//! left out. The canonical form (what the chain hashes) is that JSON object
//! ending with `prev`; the line adds `hash` last (see
//! [`chain`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::chain::{self, Hash};
use super::event::{Event, EventKind, GrantInfo, StatementEvent, Verdict};
use super::keys::ChainKey;

/// The kind of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventName {
    /// The log was opened by a copyguard process.
    LogStart,
    /// The log was closed cleanly.
    LogStop,
    /// A session started.
    SessionStart,
    /// A session ended.
    SessionEnd,
    /// A guarded login refused before the session started.
    SessionRefused,
    /// A guarded verdict.
    Verdict,
    /// What a statement sent.
    Result,
    /// A production statement's fingerprint.
    Statement,
    /// A policy reload.
    PolicyReload,
    /// A dump grant used.
    GrantUse,
    /// A dump grant issued (`copyguard dump approve --log`).
    GrantIssued,
}

impl EventName {
    /// The name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::LogStart => "log_start",
            EventName::LogStop => "log_stop",
            EventName::SessionStart => "session_start",
            EventName::SessionEnd => "session_end",
            EventName::SessionRefused => "session_refused",
            EventName::Verdict => "verdict",
            EventName::Result => "result",
            EventName::Statement => "statement",
            EventName::PolicyReload => "policy_reload",
            EventName::GrantUse => "grant_use",
            EventName::GrantIssued => "grant_issued",
        }
    }
}

/// One record, as stored (without its `hash`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Gap-free sequence number, from 1.
    pub seq: u64,
    /// UTC, RFC 3339 with microseconds.
    pub time: String,
    /// What happened.
    pub event: EventName,
    /// Session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<u64>,
    /// Client address, `ip:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    /// Whether the client connection is encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// Login role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// `application_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
    /// Role class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_class: Option<String>,
    /// Statement fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Normalized statement (literals replaced by `$n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// Verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Rule id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Relations touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relations: Vec<String>,
    /// Classified columns touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Rows sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Bytes sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Pseudonymized values per category.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pseudonymized: BTreeMap<String, u64>,
    /// Dump grant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// Policy version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// The verdict a result follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict_seq: Option<u64>,
    /// Session length in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Statements decided in a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statements: Option<u64>,
    /// Statements refused and results stopped in a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusals: Option<u64>,
    /// Startup parameters of a refused login (other than user and
    /// database).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub startup: BTreeMap<String, String>,
    /// What a dump grant allows (grant issued, and a granted session's
    /// start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_info: Option<Box<GrantInfo>>,
    /// Free text for reviewers (log start, reloads, grants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The previous record's hash, hex.
    pub prev: String,
}

/// A record read back from a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The record.
    pub record: Record,
    /// Its canonical form.
    pub canonical: String,
    /// Its chain hash.
    pub hash: Hash,
}

/// Why a line is not a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// No `hash` field where it must be.
    NoChainEntry,
    /// Sealed, but the JSON is not a record.
    Malformed(String),
}

impl Sealed {
    /// Reads a line (without its newline). The hash is not checked here.
    pub fn parse(line: &str) -> Result<Sealed, LineError> {
        let (canonical, hash) = chain::unseal(line, "hash", 32).ok_or(LineError::NoChainEntry)?;
        let hash: Hash = hash.try_into().map_err(|_| LineError::NoChainEntry)?;
        let record: Record =
            serde_json::from_str(&canonical).map_err(|e| LineError::Malformed(e.to_string()))?;
        if chain::parse_hash(&record.prev).is_none() {
            return Err(LineError::Malformed("`prev` is not a hash".into()));
        }
        Ok(Sealed {
            record,
            canonical,
            hash,
        })
    }

    /// The line, as written (without newline).
    pub fn line(&self) -> String {
        chain::seal(&self.canonical, "hash", &self.hash)
    }
}

impl Record {
    /// This record with every control character of its text (line breaks,
    /// escape sequences) written as an escape (`\n`, `\u{1b}`), for the
    /// renderings a person reads: a client chooses some of that text (its
    /// role and application name, a grant token's claimed fields), and a
    /// line break or terminal sequence in it must not forge report lines
    /// or drive the reviewer's terminal. The JSON line escapes them itself.
    pub fn printable(&self) -> Record {
        fn clean(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::String(s) if s.chars().any(char::is_control) => {
                    *s = s
                        .chars()
                        .map(|c| match c.is_control() {
                            true => c.escape_default().to_string(),
                            false => c.to_string(),
                        })
                        .collect();
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(clean),
                serde_json::Value::Object(fields) => fields.values_mut().for_each(clean),
                _ => {}
            }
        }
        let Ok(mut v) = serde_json::to_value(self) else {
            return self.clone();
        };
        clean(&mut v);
        serde_json::from_value(v).unwrap_or_else(|_| self.clone())
    }

    /// A record of `event` with `seq`, `time` and `prev` still to be set.
    pub fn from_event(event: &Event) -> Record {
        let mut r = Record::bare(EventName::SessionStart);
        if let Some(s) = &event.session {
            r.session_id = Some(s.id);
            r.client_addr = Some(s.client_addr.to_string());
            r.tls = Some(s.tls);
            r.role = Some(s.role.clone());
            r.database = Some(s.database.clone());
            r.application_name = s.application_name.clone();
            r.role_class = Some(s.role_class.clone());
        }
        match &event.kind {
            EventKind::SessionStart => r.event = EventName::SessionStart,
            EventKind::SessionEnd(t) => {
                r.event = EventName::SessionEnd;
                r.duration_ms = Some(u64::try_from(t.duration.as_millis()).unwrap_or(u64::MAX));
                r.statements = Some(t.statements);
                r.refusals = Some(t.refusals);
                r.rows = Some(t.rows);
                r.bytes = Some(t.bytes);
            }
            EventKind::SessionRefused {
                rule,
                reason,
                startup,
                grant,
            } => {
                r.event = EventName::SessionRefused;
                r.rule = Some(rule.clone());
                r.reason = Some(reason.clone());
                r.startup = startup.clone();
                r.grant = grant.clone();
            }
            EventKind::Verdict(s) => r.set_statement(EventName::Verdict, s),
            EventKind::Result(s) => r.set_statement(EventName::Result, s),
            EventKind::Statement(n) => {
                r.event = EventName::Statement;
                r.fingerprint = Some(n.fingerprint().to_owned());
                r.statement = Some(n.text().to_owned());
            }
            EventKind::PolicyReload {
                ok,
                version,
                detail,
            } => {
                r.event = EventName::PolicyReload;
                r.rule = Some(if *ok { "reloaded" } else { "refused" }.to_owned());
                r.policy_version = version.clone();
                r.detail = detail.clone();
            }
            EventKind::GrantUse {
                grant,
                detail,
                info,
                policy_version,
            } => {
                r.event = EventName::GrantUse;
                r.grant = Some(grant.clone());
                r.detail = detail.clone();
                r.grant_info = info.clone();
                r.policy_version = policy_version.clone();
            }
            EventKind::GrantIssued { grant, info } => {
                r.event = EventName::GrantIssued;
                r.grant = Some(grant.clone());
                r.role = Some(info.requester.clone());
                r.database = Some(info.database.clone());
                r.policy_version = Some(info.approved_policy.clone());
                r.detail = Some(format!(
                    "request {}; scope: {}; reason: {}; expires {}; uses {}",
                    info.request, info.scope, info.reason, info.expires, info.uses_allowed
                ));
                r.grant_info = Some(info.clone());
            }
        }
        r
    }

    /// A record of `event` with every other field empty.
    pub fn bare(event: EventName) -> Record {
        Record {
            seq: 0,
            time: String::new(),
            event,
            session_id: None,
            client_addr: None,
            tls: None,
            role: None,
            database: None,
            application_name: None,
            role_class: None,
            fingerprint: None,
            statement: None,
            verdict: None,
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
            duration_ms: None,
            statements: None,
            refusals: None,
            startup: BTreeMap::new(),
            grant_info: None,
            detail: None,
            prev: String::new(),
        }
    }

    fn set_statement(&mut self, name: EventName, s: &StatementEvent) {
        self.event = name;
        self.fingerprint = Some(s.statement.fingerprint().to_owned());
        self.statement = Some(s.statement.text().to_owned());
        self.verdict = Some(s.verdict);
        self.rule = s.rule.clone();
        self.reason = s.reason.clone();
        self.relations = s.relations.clone();
        self.columns = s.columns.clone();
        self.rows = s.rows;
        self.bytes = s.bytes;
        self.pseudonymized = s.pseudonymized.clone();
        self.grant = s.grant.clone();
        self.policy_version = s.policy_version.clone();
        self.verdict_seq = s.verdict_seq;
    }

    /// Sets `seq`, `time` and `prev`, and seals the record under `key`.
    pub fn seal(mut self, seq: u64, time: SystemTime, prev: &Hash, key: &ChainKey) -> Sealed {
        self.seq = seq;
        self.time = format_time(time);
        self.prev = hex::encode(prev);
        let canonical = serde_json::to_string(&self).expect("a record serializes");
        let hash = key.mac(canonical.as_bytes());
        Sealed {
            record: self,
            canonical,
            hash,
        }
    }

    /// The record's time, if it parses.
    pub fn system_time(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.time).ok()
    }
}

/// UTC, RFC 3339, microseconds.
pub fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::audit::event::SessionFields;

    fn session() -> Arc<SessionFields> {
        Arc::new(SessionFields {
            id: 7,
            client_addr: "10.0.0.5:51234".parse().unwrap(),
            tls: true,
            role: "dev_alice".into(),
            database: "shop".into(),
            application_name: Some("psql".into()),
            role_class: "developers".into(),
        })
    }

    #[test]
    fn verdict_record_has_fixed_field_order_and_no_literals() {
        let mut s = StatementEvent::new(
            "SELECT email FROM users WHERE email = 'alice@example.com'",
            Verdict::Blocked,
        );
        s.rule = Some("table.forbidden".into());
        s.relations = vec!["public.users".into()];
        s.columns = vec!["public.users.email".into()];
        let key = ChainKey([9; 32]);
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let sealed = Record::from_event(&Event::verdict(&session(), s)).seal(1, t, &[0; 32], &key);
        let line = sealed.line();
        assert!(!line.contains("alice@example"), "{line}");
        assert!(line.starts_with(
            r#"{"seq":1,"time":"2023-11-14T22:13:20.123456Z","event":"verdict","session_id":7,"client_addr":"10.0.0.5:51234","tls":true,"role":"dev_alice","database":"shop","application_name":"psql","role_class":"developers","fingerprint":""#
        ), "{line}");
        assert!(line.contains(r#""statement":"SELECT email FROM users WHERE email = $1","verdict":"blocked","rule":"table.forbidden","relations":["public.users"],"columns":["public.users.email"],"prev":"0000"#), "{line}");
        let back = Sealed::parse(&line).unwrap();
        assert_eq!(back, sealed);
        assert!(key.check(back.canonical.as_bytes(), &back.hash));
    }

    #[test]
    fn refused_login_record_has_rule_reason_and_startup_but_no_statement() {
        let startup = [
            ("user".to_owned(), "dev_alice".to_owned()),
            ("database".to_owned(), "shop".to_owned()),
            ("options".to_owned(), "-c role=app".to_owned()),
        ];
        let ev = Event::session_refused(&session(), "identity.change", "no role", &startup);
        let key = ChainKey([9; 32]);
        let sealed = Record::from_event(&ev).seal(3, SystemTime::UNIX_EPOCH, &[0; 32], &key);
        let r = &sealed.record;
        assert_eq!(r.event, EventName::SessionRefused);
        assert_eq!(r.rule.as_deref(), Some("identity.change"));
        assert_eq!(r.reason.as_deref(), Some("no role"));
        assert_eq!(
            r.startup.iter().collect::<Vec<_>>(),
            [(&"options".to_owned(), &"-c role=app".to_owned())]
        );
        assert_eq!(
            (&r.statement, &r.fingerprint, r.verdict),
            (&None, &None, None)
        );
        let line = sealed.line();
        assert!(line.contains(r#""event":"session_refused""#), "{line}");
        assert!(
            line.contains(r#""startup":{"options":"-c role=app"}"#),
            "{line}"
        );
        assert_eq!(Sealed::parse(&line).unwrap(), sealed);
    }

    #[test]
    fn lines_that_are_not_records() {
        assert_eq!(Sealed::parse("hello"), Err(LineError::NoChainEntry));
        let fake = chain::seal(r#"{"seq":1,"bogus":2}"#, "hash", &[0; 32]);
        assert!(matches!(Sealed::parse(&fake), Err(LineError::Malformed(_))));
    }

    #[test]
    fn session_end_and_reload_records() {
        let totals = crate::audit::event::SessionTotals {
            duration: Duration::from_millis(1500),
            statements: 3,
            refusals: 1,
            rows: 10,
            bytes: 200,
        };
        let r = Record::from_event(&Event::session_end(&session(), totals));
        assert_eq!(
            (r.event, r.duration_ms, r.statements, r.rows),
            (EventName::SessionEnd, Some(1500), Some(3), Some(10))
        );
        let r = Record::from_event(&Event::policy_reload(false, None, Some("bad key".into())));
        assert_eq!(r.event, EventName::PolicyReload);
        assert_eq!(r.rule.as_deref(), Some("refused"));
        assert_eq!(r.session_id, None);
    }
}
