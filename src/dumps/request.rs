//! The dump request: who wants a dump of what, and why. A small TOML
//! document that can travel through a ticket and is approved as it is.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::error::RequestError;

/// What a dump covers. Empty `schemas` and `tables`: the whole database.
/// Names are `schema.table` (a bare table name means `public.table`),
/// matched exactly as stored in the catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Schemas whose tables are included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// Tables included, besides those of `schemas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// Tables whose data is left out (schema only), even if included above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tables: Vec<String>,
}

impl Scope {
    /// A scope with every table name qualified (`public.` when bare).
    pub fn normalized(mut self) -> Scope {
        for t in self.tables.iter_mut().chain(self.exclude_tables.iter_mut()) {
            *t = qualify(t);
        }
        self
    }

    /// Whether the rows of `schema.table` are in the scope.
    pub fn includes(&self, schema: &str, table: &str) -> bool {
        let name = format!("{schema}.{table}");
        if self.exclude_tables.iter().any(|t| qualify(t) == name) {
            return false;
        }
        if self.schemas.is_empty() && self.tables.is_empty() {
            return true;
        }
        self.schemas.iter().any(|s| s == schema) || self.tables.iter().any(|t| qualify(t) == name)
    }

    /// A one-line description: `whole database`, or the lists.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.schemas.is_empty() && self.tables.is_empty() {
            parts.push("whole database".to_owned());
        }
        if !self.schemas.is_empty() {
            parts.push(format!("schemas {}", self.schemas.join(", ")));
        }
        if !self.tables.is_empty() {
            parts.push(format!("tables {}", self.tables.join(", ")));
        }
        if !self.exclude_tables.is_empty() {
            parts.push(format!(
                "schema only for {}",
                self.exclude_tables.join(", ")
            ));
        }
        parts.join("; ")
    }

    /// pg_dump arguments that keep a dump inside this scope: `-n`/`-t`
    /// for the included schemas and tables, `--exclude-table-data` for
    /// the excluded ones.
    pub fn pg_dump_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for s in &self.schemas {
            args.push(format!("--schema={s}"));
        }
        for t in &self.tables {
            args.push(format!("--table={}", qualify(t)));
        }
        for t in &self.exclude_tables {
            args.push(format!("--exclude-table-data={}", qualify(t)));
        }
        args
    }
}

fn qualify(name: &str) -> String {
    if name.contains('.') {
        name.to_owned()
    } else {
        format!("public.{name}")
    }
}

/// A request for a sanctioned dump.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpRequest {
    /// Unique id (random, 32 hex digits).
    pub id: String,
    /// When it was written, RFC 3339.
    pub created: String,
    /// The login role that will run the dump.
    pub role: String,
    /// The database to dump.
    pub database: String,
    /// Why the dump is needed.
    pub reason: String,
    /// What it covers.
    #[serde(default)]
    pub scope: Scope,
}

impl DumpRequest {
    /// A new request with a fresh id and the current time.
    pub fn new(role: &str, database: &str, scope: Scope, reason: &str) -> DumpRequest {
        DumpRequest {
            id: hex::encode(rand::random::<[u8; 16]>()),
            created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            role: role.to_owned(),
            database: database.to_owned(),
            reason: reason.to_owned(),
            scope: scope.normalized(),
        }
    }

    /// The document's text (TOML).
    pub fn to_text(&self) -> String {
        let body = toml::to_string(self).expect("a dump request serializes");
        format!("# copyguard dump request: approve with `copyguard dump approve FILE ...`\n{body}")
    }

    /// Reads a request document, checking that every field makes sense.
    pub fn parse(text: &str) -> Result<DumpRequest, RequestError> {
        let req: DumpRequest =
            toml::from_str(text).map_err(|e| RequestError::Invalid(e.message().to_owned()))?;
        let bad = |what: &str| Err(RequestError::Invalid(what.to_owned()));
        if req.id.len() != 32 || !req.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad("id must be 32 hex digits");
        }
        if humantime::parse_rfc3339(&req.created).is_err() {
            return bad("created must be an RFC 3339 time");
        }
        if req.role.is_empty() || req.database.is_empty() {
            return bad("role and database must not be empty");
        }
        if req.reason.trim().is_empty() {
            return bad("a reason is required");
        }
        Ok(DumpRequest {
            scope: req.scope.clone().normalized(),
            ..req
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        let scope = Scope {
            schemas: vec![],
            tables: vec!["users".into(), "shop.orders".into()],
            exclude_tables: vec!["audit_trail".into()],
        };
        let req = DumpRequest::new("dev_alice", "shop", scope, "reproduce bug 1234");
        let text = req.to_text();
        assert!(text.contains("role = \"dev_alice\""), "{text}");
        let back = DumpRequest::parse(&text).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.scope.tables, ["public.users", "shop.orders"]);
        assert!(DumpRequest::parse("role = 1").is_err());
        let no_reason = text.replace("reproduce bug 1234", " ");
        assert!(DumpRequest::parse(&no_reason).is_err());
    }

    #[test]
    fn scope_inclusion() {
        let all = Scope::default();
        assert!(all.includes("public", "users"));
        let some = Scope {
            schemas: vec!["shop".into()],
            tables: vec!["users".into()],
            exclude_tables: vec!["shop.secrets".into()],
        };
        assert!(some.includes("public", "users"));
        assert!(some.includes("shop", "orders"));
        assert!(!some.includes("shop", "secrets"));
        assert!(!some.includes("public", "orders"));
        assert_eq!(
            some.pg_dump_args(),
            [
                "--schema=shop",
                "--table=public.users",
                "--exclude-table-data=shop.secrets"
            ]
        );
        assert_eq!(all.describe(), "whole database");
    }
}
