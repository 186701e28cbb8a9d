//! Which functions a guarded statement may call: the built-in allowlist
//! (`allowlist.rs`) changed by the policy's `[functions]` allow and deny
//! lists.

use std::collections::HashSet;

use super::allowlist::{
    is_builtin, not_allowed_reason, QUALIFIED, SEQUENCE_READS, SEQUENCE_WRITES,
};
use super::error::{Diagnostics, Loc};
use super::file::{SourceFile, StrList};
use super::names::{self, dotted};
use crate::analysis::FunctionRef;

/// The allowlist in force: built-ins plus `[functions].allow`, minus
/// `[functions].deny`.
#[derive(Clone, Debug, Default)]
pub(crate) struct FunctionRules {
    allow: HashSet<(String, String)>,
    deny: HashSet<(String, String)>,
}

/// What the rules say about one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FunctionCheck {
    /// The call may run.
    Allowed,
    /// `nextval`/`setval`: allowed, but the statement writes.
    SequenceWrite,
    /// `set_config`: a settings change, decided like `SET` by the
    /// settings rules.
    Setting,
    /// Refused, with why.
    Refused(String),
}

impl FunctionRules {
    /// Adds `[functions].allow` entries.
    pub fn add_allow(&mut self, list: &StrList, src: &SourceFile, diag: &mut Diagnostics) {
        for (loc, key) in parse_list(list, "allow", src, diag) {
            let shown = names::qualified(&[&key.0, &key.1]);
            if self.deny.contains(&key) {
                diag.error(&loc, "functions.allow", format!("{shown} is also in deny"));
            }
            if let Some(why) = not_allowed_reason(&key.1).filter(|_| key.0 == "pg_catalog") {
                diag.warn(
                    &loc,
                    "functions.allow",
                    format!("{shown} is allowed here although {why}"),
                );
            }
            self.allow.insert(key);
        }
    }

    /// Adds `[functions].deny` entries.
    pub fn add_deny(&mut self, list: &StrList, src: &SourceFile, diag: &mut Diagnostics) {
        for (loc, key) in parse_list(list, "deny", src, diag) {
            if self.allow.contains(&key) {
                let shown = names::qualified(&[&key.0, &key.1]);
                diag.error(&loc, "functions.deny", format!("{shown} is also in allow"));
            }
            self.deny.insert(key);
        }
    }

    /// Whether a call may run for a class that may or may not write.
    pub fn check(&self, f: &FunctionRef, allow_writes: bool) -> FunctionCheck {
        let schema = f.schema.as_deref().unwrap_or("pg_catalog");
        let listed = |set: &HashSet<(String, String)>| {
            !set.is_empty() && set.contains(&(schema.to_owned(), f.name.clone()))
        };
        let shown = || match &f.schema {
            Some(s) => names::qualified(&[s, &f.name]),
            None => names::quote(&f.name),
        };
        if listed(&self.deny) {
            return FunctionCheck::Refused(format!(
                "function {} is denied by this policy",
                shown()
            ));
        }
        if f.user_defined {
            let vouched = match &f.schema {
                Some(_) => listed(&self.allow),
                None => self
                    .allow
                    .iter()
                    .any(|(s, n)| *n == f.name && s != "pg_catalog"),
            };
            return if vouched {
                FunctionCheck::Allowed
            } else {
                FunctionCheck::Refused(format!(
                    "function {} is (or may resolve to) a user-defined function, whose code copyguard cannot see; if it only computes values, ask the policy owner to list it schema-qualified in [functions].allow",
                    shown()
                ))
            };
        }
        if schema == "pg_catalog" && f.name == "set_config" {
            return FunctionCheck::Setting;
        }
        if listed(&self.allow) {
            return FunctionCheck::Allowed;
        }
        if schema == "pg_catalog" {
            if SEQUENCE_WRITES.contains(&f.name.as_str()) {
                return FunctionCheck::SequenceWrite;
            }
            if SEQUENCE_READS.contains(&f.name.as_str()) {
                return if allow_writes {
                    FunctionCheck::Allowed
                } else {
                    FunctionCheck::Refused(format!(
                        "function {} is only for role classes that may write",
                        shown()
                    ))
                };
            }
            if is_builtin(&f.name) {
                return FunctionCheck::Allowed;
            }
        } else if QUALIFIED.contains(&(schema, f.name.as_str())) {
            return FunctionCheck::Allowed;
        }
        let why = not_allowed_reason(&f.name)
            .map(|w| format!(": {w}"))
            .unwrap_or_else(|| {
                ": it is not on copyguard's list of functions known to be free of side effects and SQL execution".to_owned()
            });
        FunctionCheck::Refused(format!("function {} is not allowed{why}", shown()))
    }
}

fn parse_list(
    list: &StrList,
    field: &str,
    src: &SourceFile,
    diag: &mut Diagnostics,
) -> Vec<(Loc, (String, String))> {
    let mut out = Vec::new();
    for item in list.get_ref() {
        let loc = src.loc(item.span());
        let parsed =
            names::parse_qualified(item.get_ref()).and_then(|parts| match parts.as_slice() {
                [name] => Ok(("pg_catalog".to_owned(), name.name.clone())),
                [schema, name] => Ok((schema.name.clone(), name.name.clone())),
                _ => Err(format!(
                    "{:?} is not a function name: write name or schema.name",
                    item.get_ref()
                )),
            });
        match parsed {
            Ok(key) => out.push((loc, key)),
            Err(message) => diag.error(&loc, dotted(&["functions", field]), message),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(schema: Option<&str>, name: &str, user_defined: bool) -> FunctionRef {
        FunctionRef {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
            user_defined,
        }
    }

    fn rules(allow: &[(&str, &str)], deny: &[(&str, &str)]) -> FunctionRules {
        let set = |l: &[(&str, &str)]| {
            l.iter()
                .map(|(s, n)| (s.to_string(), n.to_string()))
                .collect()
        };
        FunctionRules {
            allow: set(allow),
            deny: set(deny),
        }
    }

    #[test]
    fn builtins_and_qualification() {
        let r = FunctionRules::default();
        assert_eq!(
            r.check(&call(None, "lower", false), false),
            FunctionCheck::Allowed
        );
        assert_eq!(
            r.check(&call(Some("pg_catalog"), "format_type", false), false),
            FunctionCheck::Allowed
        );
        assert_eq!(
            r.check(
                &call(Some("information_schema"), "_pg_expandarray", false),
                false
            ),
            FunctionCheck::Allowed
        );
        assert!(matches!(
            r.check(&call(Some("public"), "lower", false), false),
            FunctionCheck::Refused(_)
        ));
        assert!(matches!(
            r.check(&call(None, "lower", true), false),
            FunctionCheck::Refused(_)
        ));
    }

    #[test]
    fn dangerous_functions_say_why() {
        let r = FunctionRules::default();
        for (name, needle) in [
            ("query_to_xml", "SQL text"),
            ("dblink_exec", "other servers"),
            ("pg_read_file", "files"),
            ("lo_export", "large objects"),
            ("pg_sleep_for", "idle"),
            ("pg_advisory_lock", "locks"),
            ("txid_current", "transaction id"),
            ("pg_stat_statements_reset", "query texts"),
        ] {
            match r.check(&call(None, name, false), true) {
                FunctionCheck::Refused(why) => {
                    assert!(why.contains(name) && why.contains(needle), "{why}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn set_config_is_a_setting_unless_denied() {
        let r = FunctionRules::default();
        for schema in [None, Some("pg_catalog")] {
            assert_eq!(
                r.check(&call(schema, "set_config", false), false),
                FunctionCheck::Setting
            );
        }
        assert!(matches!(
            r.check(&call(None, "set_config", true), false),
            FunctionCheck::Refused(_)
        ));
        let denied = rules(&[], &[("pg_catalog", "set_config")]);
        assert!(matches!(
            denied.check(&call(None, "set_config", false), false),
            FunctionCheck::Refused(_)
        ));
        let allowed = rules(&[("pg_catalog", "set_config")], &[]);
        assert_eq!(
            allowed.check(&call(None, "set_config", false), false),
            FunctionCheck::Setting
        );
    }

    #[test]
    fn sequences_depend_on_writes() {
        let r = FunctionRules::default();
        assert_eq!(
            r.check(&call(None, "nextval", false), false),
            FunctionCheck::SequenceWrite
        );
        assert_eq!(
            r.check(&call(None, "currval", false), true),
            FunctionCheck::Allowed
        );
        assert!(matches!(
            r.check(&call(None, "currval", false), false),
            FunctionCheck::Refused(_)
        ));
    }

    #[test]
    fn allow_and_deny_lists() {
        let r = rules(
            &[("public", "my_pure_fn"), ("pg_catalog", "pg_get_keywords")],
            &[("pg_catalog", "lower")],
        );
        assert_eq!(
            r.check(&call(Some("public"), "my_pure_fn", true), false),
            FunctionCheck::Allowed
        );
        assert_eq!(
            r.check(&call(None, "my_pure_fn", true), false),
            FunctionCheck::Allowed
        );
        assert!(matches!(
            r.check(&call(Some("other"), "my_pure_fn", true), false),
            FunctionCheck::Refused(_)
        ));
        assert!(matches!(
            r.check(&call(None, "lower", false), false),
            FunctionCheck::Refused(_)
        ));
        assert!(matches!(
            r.check(&call(Some("pg_catalog"), "lower", false), false),
            FunctionCheck::Refused(_)
        ));
    }
}
