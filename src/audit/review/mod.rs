//! `audit review`: reads a log set, filters records and sums up what a
//! security reviewer wants first: refusals by role, rule and table, over
//! time, the top offenders, and the grants used.
//!
//! Review does not verify the chain (that is `audit verify`); lines that
//! are not records are counted and reported.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::event::Verdict;
use super::lines;
use super::record::{EventName, Record, Sealed};
use super::AuditError;

mod grants;

pub use grants::{GrantReview, GrantSession, TableSent};

/// Which records to show and count.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// At or after.
    pub since: Option<SystemTime>,
    /// Before.
    pub until: Option<SystemTime>,
    /// Login role.
    pub role: Option<String>,
    /// Rule id.
    pub rule: Option<String>,
    /// Verdict.
    pub verdict: Option<Verdict>,
    /// Event kind.
    pub event: Option<EventName>,
    /// Session id.
    pub session: Option<u64>,
}

impl Filter {
    /// Whether `r` passes every set criterion.
    pub fn matches(&self, r: &Record) -> bool {
        let time = r.system_time();
        self.since.is_none_or(|s| time.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| time.is_some_and(|t| t < u))
            && self
                .role
                .as_ref()
                .is_none_or(|x| r.role.as_ref() == Some(x))
            && self
                .rule
                .as_ref()
                .is_none_or(|x| r.rule.as_ref() == Some(x))
            && self.verdict.is_none_or(|v| r.verdict == Some(v))
            && self.event.is_none_or(|e| r.event == e)
            && self.session.is_none_or(|s| r.session_id == Some(s))
    }
}

/// A role and client address with their refusals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Offender {
    /// Login role.
    pub role: String,
    /// Client IP address.
    pub client: String,
    /// Blocked statements and budget stops.
    pub refused: u64,
}

/// The reviewer's summary of the matching records.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Records read.
    pub records_read: u64,
    /// Lines that are not records (run `audit verify`).
    pub unreadable_lines: u64,
    /// Records matching the filter.
    pub matching: u64,
    /// Time of the first matching record.
    pub first_time: Option<String>,
    /// Time of the last matching record.
    pub last_time: Option<String>,
    /// Matching records per event kind.
    pub by_event: BTreeMap<String, u64>,
    /// Verdict records per verdict.
    pub by_verdict: BTreeMap<String, u64>,
    /// Guarded logins refused (`session_refused`), also counted by role,
    /// rule, time and offender with the refused statements.
    pub refused_logins: u64,
    /// Refusals per role.
    pub refused_by_role: BTreeMap<String, u64>,
    /// Refusals per rule.
    pub refused_by_rule: BTreeMap<String, u64>,
    /// Refusals per relation.
    pub refused_by_table: BTreeMap<String, u64>,
    /// `hour` or `day`: the bucket of `refused_over_time`.
    pub bucket: &'static str,
    /// Refusals per bucket (UTC).
    pub refused_over_time: BTreeMap<String, u64>,
    /// Roles and clients with the most refusals, most first.
    pub top_offenders: Vec<Offender>,
    /// Dump grants: issued, used, refused, with what their sessions sent.
    pub grants: BTreeMap<String, GrantReview>,
}

/// Reads records and builds the summary.
#[derive(Debug)]
pub struct Review {
    filter: Filter,
    limit: usize,
    summary: Summary,
    offenders: BTreeMap<(String, String), u64>,
    /// The matching records kept (the latest `limit`, or all).
    pub records: VecDeque<Sealed>,
}

/// Most offenders listed.
const TOP_OFFENDERS: usize = 10;

impl Review {
    /// A review keeping the latest `limit` matching records (0: all).
    pub fn new(filter: Filter, limit: usize) -> Review {
        Review {
            filter,
            limit,
            summary: Summary::default(),
            offenders: BTreeMap::new(),
            records: VecDeque::new(),
        }
    }

    /// Reads files in chain order.
    pub fn read_files(&mut self, paths: &[PathBuf]) -> Result<(), AuditError> {
        for path in chain_order(paths)? {
            let file = File::open(&path)
                .map_err(|e| AuditError::io("cannot read the audit log", &path, e))?;
            for line in BufReader::new(file).split(b'\n') {
                let line =
                    line.map_err(|e| AuditError::io("cannot read the audit log", &path, e))?;
                self.add_line(&String::from_utf8_lossy(&line));
            }
        }
        Ok(())
    }

    /// Adds one log line.
    pub fn add_line(&mut self, line: &str) {
        match Sealed::parse(line) {
            Ok(sealed) => self.add(sealed),
            Err(_) => self.summary.unreadable_lines += 1,
        }
    }

    /// Adds one record.
    pub fn add(&mut self, sealed: Sealed) {
        self.summary.records_read += 1;
        if !self.filter.matches(&sealed.record) {
            return;
        }
        let r = &sealed.record.printable();
        let s = &mut self.summary;
        s.matching += 1;
        s.first_time.get_or_insert_with(|| r.time.clone());
        s.last_time = Some(r.time.clone());
        *s.by_event.entry(r.event.as_str().to_owned()).or_default() += 1;
        if let Some(grant) = &r.grant {
            s.grants.entry(grant.clone()).or_default().add(r);
        }
        let refused = match (r.event, r.verdict) {
            (EventName::Verdict, Some(v)) => {
                *s.by_verdict.entry(v.as_str().to_owned()).or_default() += 1;
                v.is_refusal()
            }
            (EventName::SessionRefused, _) => {
                s.refused_logins += 1;
                true
            }
            _ => false,
        };
        if refused {
            let role = r.role.clone().unwrap_or_else(|| "-".into());
            *s.refused_by_role.entry(role.clone()).or_default() += 1;
            let rule = r.rule.clone().unwrap_or_else(|| "-".into());
            *s.refused_by_rule.entry(rule).or_default() += 1;
            for table in &r.relations {
                *s.refused_by_table.entry(table.clone()).or_default() += 1;
            }
            if r.time.len() >= 13 {
                *s.refused_over_time
                    .entry(r.time[..13].to_owned())
                    .or_default() += 1;
            }
            let client = r
                .client_addr
                .as_deref()
                .map(|a| a.rsplit_once(':').map_or(a, |(ip, _)| ip).to_owned())
                .unwrap_or_else(|| "-".into());
            *self.offenders.entry((role, client)).or_default() += 1;
        }
        if self.limit > 0 && self.records.len() == self.limit {
            self.records.pop_front();
        }
        self.records.push_back(sealed);
    }

    /// The summary: hourly buckets become daily when they span more than
    /// three days.
    pub fn summary(&self) -> Summary {
        let mut s = self.summary.clone();
        let days: BTreeSet<&str> = s.refused_over_time.keys().map(|k| &k[..10]).collect();
        if days.len() > 3 {
            s.bucket = "day";
            let mut by_day = BTreeMap::new();
            for (k, n) in &s.refused_over_time {
                *by_day.entry(k[..10].to_owned()).or_default() += n;
            }
            s.refused_over_time = by_day;
        } else {
            s.bucket = "hour";
            s.refused_over_time = s
                .refused_over_time
                .iter()
                .map(|(k, n)| (format!("{k}:00Z"), *n))
                .collect();
        }
        let mut offenders: Vec<Offender> = self
            .offenders
            .iter()
            .map(|((role, client), n)| Offender {
                role: role.clone(),
                client: client.clone(),
                refused: *n,
            })
            .collect();
        offenders.sort_by(|a, b| b.refused.cmp(&a.refused).then_with(|| a.role.cmp(&b.role)));
        offenders.truncate(TOP_OFFENDERS);
        s.top_offenders = offenders;
        s
    }

    /// The readable report: summary, then the kept records.
    pub fn render_text(&self) -> String {
        let s = self.summary();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} records read, {} matching{}",
            s.records_read,
            s.matching,
            match (&s.first_time, &s.last_time) {
                (Some(a), Some(b)) => format!(", {a} .. {b}"),
                _ => String::new(),
            }
        );
        if s.unreadable_lines > 0 {
            let _ = writeln!(
                out,
                "WARNING: {} lines are not records; run `copyguard audit verify`",
                s.unreadable_lines
            );
        }
        section(&mut out, "Events", &s.by_event);
        section(&mut out, "Verdicts", &s.by_verdict);
        if s.refused_logins > 0 {
            let _ = writeln!(out, "\nRefused logins: {}", s.refused_logins);
        }
        section(&mut out, "Refused by role", &s.refused_by_role);
        section(&mut out, "Refused by rule", &s.refused_by_rule);
        section(&mut out, "Refused by table", &s.refused_by_table);
        if !s.refused_over_time.is_empty() {
            let _ = writeln!(out, "\nRefused per {} (UTC):", s.bucket);
            let max = s
                .refused_over_time
                .values()
                .copied()
                .max()
                .unwrap_or(1)
                .max(1);
            for (k, n) in &s.refused_over_time {
                let bar = "#".repeat(((n * 40).div_ceil(max)) as usize);
                let _ = writeln!(out, "  {k:<20} {n:>7}  {bar}");
            }
        }
        if !s.top_offenders.is_empty() {
            let _ = writeln!(out, "\nTop offenders (role @ client, refusals):");
            for o in &s.top_offenders {
                let _ = writeln!(
                    out,
                    "  {:<32} {:>7}",
                    format!("{} @ {}", o.role, o.client),
                    o.refused
                );
            }
        }
        if !s.grants.is_empty() {
            let _ = writeln!(out, "\nDump grants:");
            for (grant, review) in &s.grants {
                review.render(grant, &mut out);
            }
        }
        let _ = writeln!(
            out,
            "\nRecords{}:",
            if (self.records.len() as u64) < s.matching {
                format!(
                    " (latest {} of {}; --limit 0 for all)",
                    self.records.len(),
                    s.matching
                )
            } else {
                String::new()
            }
        );
        for sealed in &self.records {
            let _ = writeln!(out, "  {}", record_line(&sealed.record.printable()));
        }
        out
    }

    /// The summary and the kept records as one JSON document.
    pub fn render_json(&self) -> String {
        let records: Vec<serde_json::Value> = self
            .records
            .iter()
            .map(|s| serde_json::from_str(&s.line()).expect("a sealed line is JSON"))
            .collect();
        serde_json::json!({ "summary": self.summary(), "records": records }).to_string()
    }
}

fn section(out: &mut String, title: &str, counts: &BTreeMap<String, u64>) {
    if counts.is_empty() {
        return;
    }
    let mut sorted: Vec<_> = counts.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let _ = writeln!(out, "\n{title}:");
    for (k, n) in sorted {
        let _ = writeln!(out, "  {k:<40} {n:>7}");
    }
}

/// One record on one line for the text report.
pub fn record_line(r: &Record) -> String {
    let who = match (&r.role, &r.database) {
        (Some(role), Some(db)) => format!("{role}@{db}"),
        (Some(role), None) => role.clone(),
        _ => "-".into(),
    };
    let mut line = format!("{} #{} {} {}", r.time, r.seq, who, r.event.as_str());
    for part in [
        r.verdict.map(|v| v.as_str().to_owned()),
        r.rule.clone(),
        r.grant.clone().map(|g| format!("grant={g}")),
        r.rows.map(|n| format!("rows={n}")),
        r.statement.clone(),
        r.reason.clone().map(|x| format!("({x})")),
        r.detail.clone().map(|x| format!("({x})")),
    ]
    .into_iter()
    .flatten()
    {
        line.push(' ');
        line.push_str(&part);
    }
    line
}

/// Orders log files by their first record's seq (empty files last).
pub fn chain_order(paths: &[PathBuf]) -> Result<Vec<PathBuf>, AuditError> {
    let mut keyed = Vec::with_capacity(paths.len());
    for path in paths {
        let mut file =
            File::open(path).map_err(|e| AuditError::io("cannot read the audit log", path, e))?;
        let first = lines::first_line(&mut file)
            .map_err(|e| AuditError::io("cannot read the audit log", path, e))?;
        let seq = first
            .and_then(|l| Sealed::parse(&l).ok())
            .map_or(u64::MAX, |s| s.record.seq);
        keyed.push((seq, path.clone()));
    }
    keyed.sort();
    Ok(keyed.into_iter().map(|(_, p)| p).collect())
}

/// Parses `--since`/`--until`: RFC 3339 (`2026-11-01T10:00:00Z`), a date
/// (`2026-11-01`, UTC midnight), or a duration before `now` (`2h`, `7d`).
pub fn parse_time_arg(s: &str, now: SystemTime) -> Result<SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    if s.len() == 10 {
        if let Ok(t) = humantime::parse_rfc3339(&format!("{s}T00:00:00Z")) {
            return Ok(t);
        }
    }
    let ago: Duration = humantime::parse_duration(s).map_err(|_| {
        format!("{s:?} is not a time (2026-11-01T10:00:00Z, 2026-11-01) or a duration ago (2h, 7d)")
    })?;
    now.checked_sub(ago)
        .ok_or_else(|| format!("{s:?} is too far back"))
}

/// The files of a log set given one path: the file itself, plus the
/// rotated siblings of a live log.
pub fn with_rotated(path: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let mut out: Vec<PathBuf> = super::sink::rotated_files(path)?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    out.push(path.to_owned());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::keys::ChainKey;

    fn sealed(seq: u64, time: &str, role: &str, verdict: Verdict, rule: &str) -> Sealed {
        let mut r = Record::bare(EventName::Verdict);
        r.role = Some(role.into());
        r.client_addr = Some("10.0.0.9:4000".into());
        r.verdict = Some(verdict);
        r.rule = Some(rule.into());
        r.relations = vec!["public.users".into()];
        let t = humantime::parse_rfc3339(time).unwrap();
        r.seal(seq, t, &[0; 32], &ChainKey([1; 32]))
    }

    #[test]
    fn summary_counts_refusals_by_role_rule_table_and_hour() {
        let mut review = Review::new(Filter::default(), 2);
        review.add(sealed(
            1,
            "2026-11-01T10:05:00Z",
            "alice",
            Verdict::Blocked,
            "table.forbidden",
        ));
        review.add(sealed(
            2,
            "2026-11-01T10:06:00Z",
            "alice",
            Verdict::BudgetExceeded,
            "budget.rows",
        ));
        review.add(sealed(
            3,
            "2026-11-01T11:00:00Z",
            "bob",
            Verdict::Allowed,
            "",
        ));
        review.add(sealed(
            4,
            "2026-11-01T11:30:00Z",
            "bob",
            Verdict::Blocked,
            "table.forbidden",
        ));
        review.add_line("garbage");
        let s = review.summary();
        assert_eq!((s.records_read, s.matching, s.unreadable_lines), (4, 4, 1));
        assert_eq!(s.refused_by_role["alice"], 2);
        assert_eq!(s.refused_by_rule["table.forbidden"], 2);
        assert_eq!(s.refused_by_table["public.users"], 3);
        assert_eq!(s.bucket, "hour");
        assert_eq!(s.refused_over_time["2026-11-01T10:00Z"], 2);
        assert_eq!(s.top_offenders[0].role, "alice");
        assert_eq!(s.top_offenders[0].client, "10.0.0.9");
        assert_eq!(review.records.len(), 2, "latest two kept");
        let text = review.render_text();
        assert!(text.contains("Refused by rule:"), "{text}");
        assert!(text.contains("latest 2 of 4"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&review.render_json()).unwrap();
        assert_eq!(json["summary"]["matching"], 4);
        assert_eq!(json["records"][1]["seq"], 4);
    }

    #[test]
    fn refused_logins_count_as_refusals() {
        let mut review = Review::new(Filter::default(), 0);
        let mut r = Record::bare(EventName::SessionRefused);
        r.role = Some("carol".into());
        r.client_addr = Some("10.0.0.8:1".into());
        r.rule = Some("identity.change".into());
        let t = humantime::parse_rfc3339("2026-11-01T10:05:00Z").unwrap();
        review.add(r.seal(1, t, &[0; 32], &ChainKey([1; 32])));
        review.add(sealed(
            2,
            "2026-11-01T10:06:00Z",
            "carol",
            Verdict::Blocked,
            "table.forbidden",
        ));
        let s = review.summary();
        assert_eq!(s.refused_logins, 1);
        assert_eq!(s.refused_by_role["carol"], 2);
        assert_eq!(s.refused_by_rule["identity.change"], 1);
        assert_eq!(s.refused_by_table["public.users"], 1);
        assert!(s.by_verdict.get("blocked") == Some(&1));
        assert!(review.render_text().contains("Refused logins: 1"));
    }

    #[test]
    fn filters() {
        let mut f = Filter {
            role: Some("bob".into()),
            ..Filter::default()
        };
        let r = sealed(1, "2026-11-01T10:05:00Z", "alice", Verdict::Blocked, "x").record;
        assert!(!f.matches(&r));
        f.role = Some("alice".into());
        f.verdict = Some(Verdict::Blocked);
        f.since = Some(humantime::parse_rfc3339("2026-11-01T10:00:00Z").unwrap());
        assert!(f.matches(&r));
        f.until = Some(humantime::parse_rfc3339("2026-11-01T10:05:00Z").unwrap());
        assert!(!f.matches(&r));
    }

    #[test]
    fn time_arguments() {
        let now = humantime::parse_rfc3339("2026-11-02T00:00:00Z").unwrap();
        let day = humantime::parse_rfc3339("2026-11-01T00:00:00Z").unwrap();
        assert_eq!(parse_time_arg("2026-11-01", now), Ok(day));
        assert_eq!(parse_time_arg("2026-11-01T00:00:00Z", now), Ok(day));
        assert_eq!(parse_time_arg("1day", now), Ok(day));
        assert!(parse_time_arg("yesterday", now).is_err());
    }
}
