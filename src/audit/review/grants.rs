//! The grants part of `audit review`: per dump grant, who requested it
//! and why, what it allows, who used it from where and when, and what its
//! sessions sent (the receipts: rows and bytes per table).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::audit::record::{EventName, Record};

/// A session admitted with a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GrantSession {
    /// When it started.
    pub time: String,
    /// Login role.
    pub role: String,
    /// Client address, `ip:port`.
    pub client: String,
    /// Which use of the grant it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_number: Option<u32>,
    /// Session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<u64>,
}

/// What a grant's sessions sent from one table (its receipts).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableSent {
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// Values pseudonymized, every category.
    pub pseudonymized: u64,
}

/// One dump grant as the matching records show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GrantReview {
    /// The role that requested it (and alone may use it).
    pub requester: Option<String>,
    /// Database.
    pub database: Option<String>,
    /// Id of the request it approves.
    pub request: Option<String>,
    /// Why the dump was requested.
    pub reason: Option<String>,
    /// What the dump covers.
    pub scope: Option<String>,
    /// Uses allowed.
    pub uses_allowed: Option<u32>,
    /// Expiry.
    pub expires: Option<String>,
    /// Version of the policy it was approved under.
    pub approved_policy: Option<String>,
    /// Versions of the policy its sessions were enforced with.
    pub enforced_policies: BTreeSet<String>,
    /// When it was issued (a `grant_issued` record).
    pub issued: Option<String>,
    /// Uses seen (the sessions of one parallel dump are one use).
    pub uses: u64,
    /// Sessions admitted with it.
    pub sessions: Vec<GrantSession>,
    /// Who used it: `role @ client ip`.
    pub used_by: BTreeSet<String>,
    /// Rows and bytes sent per table.
    pub tables: BTreeMap<String, TableSent>,
    /// Logins refused for it.
    pub refused_logins: u64,
    /// Records naming it.
    pub records: u64,
    #[serde(skip)]
    use_numbers: BTreeSet<u32>,
}

impl GrantReview {
    /// Adds a record naming the grant.
    pub fn add(&mut self, r: &Record) {
        self.records += 1;
        if let Some(info) = &r.grant_info {
            let set = |field: &mut Option<String>, value: &str| {
                field.get_or_insert_with(|| value.to_owned());
            };
            set(&mut self.requester, &info.requester);
            set(&mut self.database, &info.database);
            set(&mut self.request, &info.request);
            set(&mut self.reason, &info.reason);
            set(&mut self.scope, &info.scope);
            set(&mut self.expires, &info.expires);
            set(&mut self.approved_policy, &info.approved_policy);
            self.uses_allowed.get_or_insert(info.uses_allowed);
        }
        match r.event {
            EventName::GrantIssued => self.issued = Some(r.time.clone()),
            EventName::GrantUse if !is_receipt(r) => {
                let use_number = r.grant_info.as_ref().and_then(|i| i.use_number);
                let client = r.client_addr.clone().unwrap_or_else(|| "-".into());
                let role = r.role.clone().unwrap_or_else(|| "-".into());
                let ip = client
                    .rsplit_once(':')
                    .map_or(client.as_str(), |(ip, _)| ip);
                self.used_by.insert(format!("{role} @ {ip}"));
                match use_number {
                    Some(n) => {
                        if self.use_numbers.insert(n) {
                            self.uses += 1;
                        }
                    }
                    None => self.uses += 1,
                }
                self.enforced_policies.extend(r.policy_version.clone());
                self.sessions.push(GrantSession {
                    time: r.time.clone(),
                    role,
                    client,
                    use_number,
                    session_id: r.session_id,
                });
            }
            EventName::Result => {
                for table in &r.relations {
                    let t = self.tables.entry(table.clone()).or_default();
                    t.rows += r.rows.unwrap_or(0);
                    t.bytes += r.bytes.unwrap_or(0);
                    t.pseudonymized += r.pseudonymized.values().sum::<u64>();
                }
            }
            EventName::SessionRefused => self.refused_logins += 1,
            _ => {}
        }
    }

    /// The grant's part of the text report.
    pub fn render(&self, grant: &str, out: &mut String) {
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let _ = writeln!(out, "  grant {grant}");
        let _ = writeln!(
            out,
            "    requested by {} for database {} (request {})",
            or_dash(&self.requester),
            or_dash(&self.database),
            or_dash(&self.request)
        );
        let _ = writeln!(out, "    reason:   {}", or_dash(&self.reason));
        let _ = writeln!(out, "    scope:    {}", or_dash(&self.scope));
        if let Some(issued) = &self.issued {
            let _ = writeln!(out, "    issued:   {issued}");
        }
        let allowed = self
            .uses_allowed
            .map_or_else(|| "?".to_owned(), |n| n.to_string());
        let _ = writeln!(
            out,
            "    uses:     {} of {allowed}; {} session(s); expires {}",
            self.uses,
            self.sessions.len(),
            or_dash(&self.expires)
        );
        let enforced: Vec<&str> = self.enforced_policies.iter().map(String::as_str).collect();
        let changed = match &self.approved_policy {
            Some(a) if self.enforced_policies.iter().any(|e| e != a) => " (changed since approval)",
            _ => "",
        };
        let enforced = if enforced.is_empty() {
            String::new()
        } else {
            format!(", enforced with {}", enforced.join(", "))
        };
        let _ = writeln!(
            out,
            "    policy:   approved under {}{enforced}{changed}",
            or_dash(&self.approved_policy),
        );
        for s in &self.sessions {
            let _ = writeln!(
                out,
                "    used {} by {} from {}{}",
                s.time,
                s.role,
                s.client,
                s.use_number
                    .map(|n| format!(" (use {n})"))
                    .unwrap_or_default()
            );
        }
        for (table, t) in &self.tables {
            let _ = writeln!(
                out,
                "    sent {table}: {} rows, {} bytes, {} values pseudonymized",
                t.rows, t.bytes, t.pseudonymized
            );
        }
        if self.refused_logins > 0 {
            let _ = writeln!(out, "    refused logins: {}", self.refused_logins);
        }
    }
}

/// Whether a `grant_use` record is a session's closing receipt line.
fn is_receipt(r: &Record) -> bool {
    r.grant_info.is_none()
        && r.detail
            .as_deref()
            .is_some_and(|d| d.starts_with("receipt:"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::audit::event::{Event, GrantInfo, SessionFields, StatementEvent, Verdict};
    use crate::audit::keys::ChainKey;
    use crate::audit::record::Record;
    use crate::audit::review::{Filter, Review};

    const GRANT: &str = "0123456789abcdef0123456789abcdef";

    fn info(use_number: Option<u32>) -> GrantInfo {
        GrantInfo {
            request: "req-1".into(),
            requester: "dev_alice".into(),
            database: "shop".into(),
            reason: "reproduce bug 4711".into(),
            scope: "tables public.users".into(),
            expires: "2026-11-02T10:00:00Z".into(),
            uses_allowed: 2,
            approved_policy: "aaaa".into(),
            use_number,
        }
    }

    fn session(id: u64, port: u16) -> Arc<SessionFields> {
        Arc::new(SessionFields {
            id,
            client_addr: format!("10.0.0.5:{port}").parse().unwrap(),
            tls: true,
            role: "dev_alice".into(),
            database: "shop".into(),
            application_name: Some("pg_dump".into()),
            role_class: "developers".into(),
        })
    }

    fn add(review: &mut Review, seq: u64, event: Event) {
        let t = humantime::parse_rfc3339("2026-11-01T10:00:00Z").unwrap()
            + std::time::Duration::from_secs(seq);
        review.add(Record::from_event(&event).seal(seq, t, &[0; 32], &ChainKey([1; 32])));
    }

    fn receipt(s: &Arc<SessionFields>, table: &str, rows: u64) -> Event {
        let mut ev = StatementEvent::new("dump receipt", Verdict::Pseudonymized);
        ev.relations = vec![table.into()];
        ev.rows = Some(rows);
        ev.bytes = Some(rows * 10);
        ev.pseudonymized = [("email".to_owned(), rows)].into_iter().collect();
        ev.grant = Some(GRANT.into());
        Event::result(s, ev)
    }

    #[test]
    fn review_shows_each_grant_its_users_reason_uses_and_receipts() {
        let mut review = Review::new(Filter::default(), 0);
        add(&mut review, 1, Event::grant_issued(GRANT, info(None)));
        let (leader, worker) = (session(1, 4001), session(2, 4002));
        for (seq, s) in [(2, &leader), (3, &worker)] {
            let ev = Event::grant_admitted(s, GRANT, "use 1 of 2".into(), info(Some(1)), "bbbb");
            add(&mut review, seq, ev);
        }
        add(&mut review, 4, receipt(&leader, "public.users", 60));
        add(&mut review, 5, receipt(&worker, "public.users", 40));
        add(
            &mut review,
            6,
            Event::grant_use(
                &leader,
                GRANT,
                Some("receipt: public.users: 100 rows".into()),
            ),
        );
        add(
            &mut review,
            7,
            Event::grant_refused(
                &session(3, 4003),
                "grant.overused",
                "used up",
                &[],
                Some(GRANT.into()),
            ),
        );
        let s = review.summary();
        let g = &s.grants[GRANT];
        assert_eq!(g.requester.as_deref(), Some("dev_alice"));
        assert_eq!(g.reason.as_deref(), Some("reproduce bug 4711"));
        assert_eq!(g.issued.as_deref(), Some("2026-11-01T10:00:01.000000Z"));
        assert_eq!(
            (g.uses, g.sessions.len()),
            (1, 2),
            "a parallel dump is one use"
        );
        assert_eq!(
            g.used_by.iter().collect::<Vec<_>>(),
            ["dev_alice @ 10.0.0.5"]
        );
        assert_eq!(g.tables["public.users"].rows, 100);
        assert_eq!(g.tables["public.users"].bytes, 1000);
        assert_eq!(g.refused_logins, 1);
        assert_eq!(g.approved_policy.as_deref(), Some("aaaa"));
        assert!(g.enforced_policies.contains("bbbb"));

        let text = review.render_text();
        for want in [
            &format!("grant {GRANT}"),
            "requested by dev_alice for database shop (request req-1)",
            "reason:   reproduce bug 4711",
            "scope:    tables public.users",
            "uses:     1 of 2; 2 session(s)",
            "approved under aaaa, enforced with bbbb (changed since approval)",
            "by dev_alice from 10.0.0.5:4001 (use 1)",
            "sent public.users: 100 rows, 1000 bytes, 100 values pseudonymized",
            "refused logins: 1",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
        let json: serde_json::Value = serde_json::from_str(&review.render_json()).unwrap();
        let g = &json["summary"]["grants"][GRANT];
        assert_eq!(g["requester"], "dev_alice");
        assert_eq!(g["reason"], "reproduce bug 4711");
        assert_eq!(g["uses"], 1);
        assert_eq!(g["sessions"][1]["client"], "10.0.0.5:4002");
        assert_eq!(g["tables"]["public.users"]["rows"], 100);
        assert_eq!(g["used_by"][0], "dev_alice @ 10.0.0.5");
    }
}
