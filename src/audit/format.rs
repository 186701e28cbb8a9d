//! Renderings of a record for SIEMs: the JSON line itself (default), RFC
//! 5424 syslog and ArcSight CEF. All are one line per record.
//!
//! Syslog uses facility 13 (log audit) and the structured-data id
//! `copyguard@32473` (32473 is the enterprise number RFC 5612 reserves for
//! examples; a deployment may map it). CEF carries the copyguard fields in
//! the standard keys listed in [`cef`].

use std::fmt::Write as _;

use super::event::Verdict;
use super::record::{EventName, Record, Sealed};

/// An output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// The chained JSON line, unchanged.
    #[default]
    Json,
    /// RFC 5424 syslog.
    Syslog,
    /// ArcSight Common Event Format.
    Cef,
}

/// Renders a record in `format`. `host` is the syslog HOSTNAME.
pub fn render(sealed: &Sealed, format: OutputFormat, host: &str) -> String {
    match format {
        OutputFormat::Json => sealed.line(),
        OutputFormat::Syslog => syslog(&sealed.record.printable(), host),
        OutputFormat::Cef => cef(&sealed.record.printable()),
    }
}

/// This machine's host name, or `-`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "-".to_owned())
}

/// Syslog severity: warning for refusals (refused logins included), notice for limited or
/// pseudonymized results and log start/stop, informational otherwise.
fn syslog_severity(r: &Record) -> u8 {
    match (r.event, r.verdict) {
        (_, Some(v)) if v.is_refusal() => 4,
        (EventName::SessionRefused, _) => 4,
        (_, Some(Verdict::Pseudonymized | Verdict::AllowedLimited)) => 5,
        (EventName::LogStart | EventName::LogStop | EventName::PolicyReload, _) => 5,
        _ => 6,
    }
}

/// One RFC 5424 line.
pub fn syslog(r: &Record, host: &str) -> String {
    let pri = 13 * 8 + syslog_severity(r);
    let mut sd = String::from("[copyguard@32473");
    for (name, value) in fields(r) {
        let _ = write!(sd, " {name}=\"{}\"", sd_escape(&value));
    }
    sd.push(']');
    let msg = one_line(&summary(r));
    format!(
        "<{pri}>1 {} {host} copyguard - {} {sd} {msg}",
        r.time,
        r.event.as_str()
    )
}

/// One CEF line. Keys: `rt` time (ms), `externalId` seq, `cat` event,
/// `act` verdict, `suser` role, `src`/`spt` client,
/// `requestClientApplication` application name, `msg` reason or detail,
/// `cs1` rule, `cs2` fingerprint, `cs3` statement, `cs4` database,
/// `cs5` role class, `cs6` grant, `cn1` session id, `cn2` rows, `cn3` bytes,
/// `flexString1` relations, `flexString2` classified columns; a refused
/// login has its startup parameters in `cs3` (labelled `startup`).
pub fn cef(r: &Record) -> String {
    let severity = match r.verdict {
        _ if r.event == EventName::SessionRefused => 7,
        Some(v) if v.is_refusal() => 7,
        Some(Verdict::Pseudonymized) => 4,
        Some(Verdict::AllowedLimited) => 3,
        _ => 1,
    };
    let class = r
        .rule
        .clone()
        .unwrap_or_else(|| r.event.as_str().to_owned());
    let name = match r.verdict {
        Some(v) => format!("{} {}", r.event.as_str(), v.as_str()),
        None => r.event.as_str().to_owned(),
    };
    let mut ext: Vec<(&str, String)> = Vec::new();
    if let Some(ms) = r
        .system_time()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
    {
        ext.push(("rt", ms.as_millis().to_string()));
    }
    ext.push(("externalId", r.seq.to_string()));
    ext.push(("cat", r.event.as_str().to_owned()));
    if let Some(v) = r.verdict {
        ext.push(("act", v.as_str().to_owned()));
    }
    let mut opt = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            ext.push((k, v));
        }
    };
    opt("suser", r.role.clone());
    if let Some((ip, port)) = r.client_addr.as_deref().and_then(|a| a.rsplit_once(':')) {
        opt("src", Some(ip.trim_matches(['[', ']']).to_owned()));
        opt("spt", Some(port.to_owned()));
    }
    opt("requestClientApplication", r.application_name.clone());
    opt("msg", r.reason.clone().or_else(|| r.detail.clone()));
    for (i, (label, value)) in [
        ("rule", r.rule.clone()),
        ("fingerprint", r.fingerprint.clone()),
        match &r.statement {
            None if !r.startup.is_empty() => ("startup", Some(startup_text(r))),
            statement => ("statement", statement.clone()),
        },
        ("database", r.database.clone()),
        ("roleClass", r.role_class.clone()),
        ("grant", r.grant.clone()),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(value) = value {
            ext.push((CS_LABELS[i].0, label.to_owned()));
            ext.push((CS_LABELS[i].1, value));
        }
    }
    for (i, (label, value)) in [
        ("sessionId", r.session_id),
        ("rows", r.rows),
        ("bytes", r.bytes),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(value) = value {
            ext.push((CN_LABELS[i].0, label.to_owned()));
            ext.push((CN_LABELS[i].1, value.to_string()));
        }
    }
    if !r.relations.is_empty() {
        ext.push(("flexString1Label", "relations".into()));
        ext.push(("flexString1", r.relations.join(",")));
    }
    if !r.columns.is_empty() {
        ext.push(("flexString2Label", "columns".into()));
        ext.push(("flexString2", r.columns.join(",")));
    }
    let ext: Vec<String> = ext
        .into_iter()
        .map(|(k, v)| format!("{k}={}", cef_value(&v)))
        .collect();
    format!(
        "CEF:0|copyguard|copyguard|{}|{}|{}|{severity}|{}",
        env!("CARGO_PKG_VERSION"),
        cef_header(&class),
        cef_header(&name),
        ext.join(" ")
    )
}

const CS_LABELS: [(&str, &str); 6] = [
    ("cs1Label", "cs1"),
    ("cs2Label", "cs2"),
    ("cs3Label", "cs3"),
    ("cs4Label", "cs4"),
    ("cs5Label", "cs5"),
    ("cs6Label", "cs6"),
];

const CN_LABELS: [(&str, &str); 3] = [
    ("cn1Label", "cn1"),
    ("cn2Label", "cn2"),
    ("cn3Label", "cn3"),
];

/// The record's fields as name/value pairs (for syslog structured data).
fn fields(r: &Record) -> Vec<(&'static str, String)> {
    let mut out = vec![("seq", r.seq.to_string())];
    let mut opt = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            out.push((k, v));
        }
    };
    opt("session_id", r.session_id.map(|v| v.to_string()));
    opt("client_addr", r.client_addr.clone());
    opt("tls", r.tls.map(|v| v.to_string()));
    opt("role", r.role.clone());
    opt("database", r.database.clone());
    opt("application_name", r.application_name.clone());
    opt("role_class", r.role_class.clone());
    opt("fingerprint", r.fingerprint.clone());
    opt("verdict", r.verdict.map(|v| v.as_str().to_owned()));
    opt("rule", r.rule.clone());
    opt("reason", r.reason.clone());
    opt(
        "relations",
        (!r.relations.is_empty()).then(|| r.relations.join(",")),
    );
    opt(
        "columns",
        (!r.columns.is_empty()).then(|| r.columns.join(",")),
    );
    opt("rows", r.rows.map(|v| v.to_string()));
    opt("bytes", r.bytes.map(|v| v.to_string()));
    opt(
        "pseudonymized",
        (!r.pseudonymized.is_empty()).then(|| {
            r.pseudonymized
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(",")
        }),
    );
    opt("grant", r.grant.clone());
    opt("policy_version", r.policy_version.clone());
    opt("verdict_seq", r.verdict_seq.map(|v| v.to_string()));
    opt("duration_ms", r.duration_ms.map(|v| v.to_string()));
    opt("statements", r.statements.map(|v| v.to_string()));
    opt("refusals", r.refusals.map(|v| v.to_string()));
    opt("startup", (!r.startup.is_empty()).then(|| startup_text(r)));
    opt("detail", r.detail.clone());
    out
}

/// A refused login's startup parameters, `name=value` separated by spaces.
fn startup_text(r: &Record) -> String {
    r.startup
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The syslog MSG: the statement, else the detail, else the reason, else
/// the event.
fn summary(r: &Record) -> String {
    r.statement
        .clone()
        .or_else(|| r.detail.clone())
        .or_else(|| r.reason.clone())
        .unwrap_or_else(|| r.event.as_str().to_owned())
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn sd_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s).chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn cef_header(s: &str) -> String {
    one_line(s).replace('\\', "\\\\").replace('|', "\\|")
}

fn cef_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\r', "\\r")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked() -> Record {
        let mut r = Record::bare(EventName::Verdict);
        r.seq = 42;
        r.time = "2026-11-01T10:00:00.000001Z".into();
        r.session_id = Some(7);
        r.client_addr = Some("10.1.2.3:5000".into());
        r.role = Some("dev_\"alice\"".into());
        r.verdict = Some(Verdict::Blocked);
        r.rule = Some("table.forbidden".into());
        r.reason = Some("a=b | c]".into());
        r.statement = Some("SELECT * FROM identity_documents WHERE id = $1".into());
        r.relations = vec!["public.identity_documents".into()];
        r
    }

    #[test]
    fn refused_login_lines() {
        let mut r = Record::bare(EventName::SessionRefused);
        r.seq = 5;
        r.time = "2026-11-01T10:00:00.000001Z".into();
        r.role = Some("dev".into());
        r.rule = Some("protocol.replication".into());
        r.reason = Some("no replication".into());
        r.startup.insert("replication".into(), "database".into());
        let line = syslog(&r, "h");
        assert!(line.starts_with("<108>1 "), "warning: {line}");
        assert!(line.contains(r#"startup="replication=database""#), "{line}");
        assert!(line.ends_with("] no replication"), "{line}");
        let line = cef(&r);
        assert!(
            line.contains("|protocol.replication|session_refused|7|"),
            "{line}"
        );
        assert!(
            line.contains("cs3Label=startup cs3=replication\\=database"),
            "{line}"
        );
    }

    #[test]
    fn syslog_line() {
        let line = syslog(&blocked(), "host1");
        assert!(
            line.starts_with("<108>1 2026-11-01T10:00:00.000001Z host1 copyguard - verdict [copyguard@32473 seq=\"42\" session_id=\"7\""),
            "{line}"
        );
        assert!(line.contains(r#"role="dev_\"alice\"""#), "{line}");
        assert!(line.contains(r#"reason="a=b | c\]""#), "{line}");
        assert!(line.ends_with("] SELECT * FROM identity_documents WHERE id = $1"));
    }

    #[test]
    fn cef_line() {
        let line = cef(&blocked());
        assert!(line.starts_with("CEF:0|copyguard|copyguard|"), "{line}");
        assert!(
            line.contains("|table.forbidden|verdict blocked|7|rt="),
            "{line}"
        );
        assert!(line.contains(" externalId=42 cat=verdict act=blocked suser=dev_\"alice\" src=10.1.2.3 spt=5000 msg=a\\=b | c]"), "{line}");
        assert!(line.contains("cs1Label=rule cs1=table.forbidden"), "{line}");
        assert!(
            line.contains(
                "cs3Label=statement cs3=SELECT * FROM identity_documents WHERE id \\= $1"
            ),
            "{line}"
        );
        assert!(line.contains("flexString1=public.identity_documents"));
    }
}
