//! The last RowDescription that passed the second check, with everything
//! the check read. A repeated statement shape comes from the decision
//! cache with the same facts, policy and catalog, and the server describes
//! its result with the same bytes: that description passes again without
//! being decoded or checked ([`crate::enforce::check_row_description`] is a pure
//! function of exactly these inputs).

use std::sync::Arc;

use crate::analysis::StatementFacts;
use crate::catalog::Catalog;
use crate::guard::Exec;
use crate::policy::{Allowance, Policy, RoleClass};
use crate::wire::Frame;

/// One description that passed, and the inputs it passed with: every
/// argument of [`crate::enforce::check_row_description`] (the fields decoded
/// from `frame`). The `Arc`s are held, so an address compared is never
/// one reused by another value.
#[derive(Debug)]
struct Passed {
    frame: Vec<u8>,
    facts: Arc<StatementFacts>,
    policy: Arc<Policy>,
    catalog: Arc<Catalog>,
    allowance: Allowance,
    class: Arc<RoleClass>,
}

/// The session's last description that passed (one: a new one replaces
/// it, so an old catalog is held no longer than the next check).
#[derive(Debug, Default)]
pub(super) struct CheckedDescription {
    last: Option<Passed>,
}

impl CheckedDescription {
    /// Whether `frame` describes a result of `exec` exactly as the last
    /// description that passed did, with the same inputs to the check.
    /// Results that are pseudonymized never match: their fields are kept
    /// for the rewrite ([`Exec::keep_fields`]), so they are decoded.
    pub fn passed_before(&self, exec: &Exec, frame: &Frame) -> bool {
        let Some(p) = &self.last else {
            return false;
        };
        !exec.allowance.pseudonymizes()
            && Arc::ptr_eq(&p.facts, &exec.facts)
            && Arc::ptr_eq(&p.policy, &exec.policy)
            && Arc::ptr_eq(&p.catalog, &exec.catalog)
            && p.frame == frame.as_bytes()
            && p.allowance == exec.allowance
            && (Arc::ptr_eq(&p.class, &exec.class) || p.class.limits == exec.class.limits)
    }

    /// Remembers that `frame` passed the check for `exec`.
    pub fn passed(&mut self, exec: &Exec, frame: &Frame) {
        if exec.allowance.pseudonymizes() {
            return;
        }
        let mut bytes = match self.last.take() {
            Some(p) => p.frame,
            None => Vec::new(),
        };
        bytes.clear();
        bytes.extend_from_slice(frame.as_bytes());
        self.last = Some(Passed {
            frame: bytes,
            facts: exec.facts.clone(),
            policy: exec.policy.clone(),
            catalog: exec.catalog.clone(),
            allowance: exec.allowance.clone(),
            class: exec.class.clone(),
        });
    }

    /// Forgets the description (a check failed).
    pub fn forget(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::analysis::StatementKind;
    use crate::catalog::text_table;
    use crate::policy::OutputPseudonym;
    use crate::pseudonym::Transform;
    use crate::wire::messages;

    const POLICY: &str = r#"
[classes.devs]
mode = "guarded"
roles = ["dev"]

[columns]
"public.users.email" = "email"
"#;

    fn allowance() -> Allowance {
        Allowance {
            classified_outputs: BTreeSet::new(),
            limits: None,
            touches_classified: false,
            pseudonymize: Vec::new(),
        }
    }

    fn exec(policy: &Arc<Policy>, catalog: &Arc<Catalog>, facts: &Arc<StatementFacts>) -> Exec {
        Exec::new(
            facts.clone(),
            allowance(),
            false,
            policy.clone(),
            catalog.clone(),
            policy.classify_role("dev"),
        )
    }

    /// A RowDescription of one text column `name` of table `oid`.
    fn description(name: &str, oid: u32, attnum: i16) -> Frame {
        let mut body = 1i16.to_be_bytes().to_vec();
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(&oid.to_be_bytes());
        body.extend_from_slice(&attnum.to_be_bytes());
        body.extend_from_slice(&25u32.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
        Frame::from_bytes(messages::frame(b'T', &body))
    }

    fn setup() -> (Arc<Policy>, Arc<Catalog>, Arc<StatementFacts>) {
        let policy = Arc::new(Policy::from_toml_str(POLICY).unwrap_or_else(|e| panic!("{e}")));
        let catalog = Arc::new(Catalog::new(
            [text_table(100, "users", &["id", "email"])],
            Vec::new(),
        ));
        let facts = Arc::new(StatementFacts::new(StatementKind::Select));
        (policy, catalog, facts)
    }

    #[test]
    fn only_the_same_description_of_the_same_decision_passes_again() {
        let (policy, catalog, facts) = setup();
        let id = description("id", 100, 1);
        let a = exec(&policy, &catalog, &facts);
        let mut memo = CheckedDescription::default();
        assert!(!memo.passed_before(&a, &id), "nothing passed yet");
        memo.passed(&a, &id);
        assert!(memo.passed_before(&a, &id));
        let again = exec(&policy, &catalog, &facts);
        assert!(memo.passed_before(&again, &id), "a cache hit shares facts");

        let email = description("id", 100, 2);
        assert!(!memo.passed_before(&a, &email), "other bytes");
        let other_facts = Arc::new(StatementFacts::new(StatementKind::Select));
        assert!(!memo.passed_before(&exec(&policy, &catalog, &other_facts), &id));
        let same_catalog = Arc::new(Catalog::new(
            [text_table(100, "users", &["id", "email"])],
            Vec::new(),
        ));
        assert!(
            !memo.passed_before(&exec(&policy, &same_catalog, &facts), &id),
            "another catalog, even an equal one"
        );
        let reloaded = Arc::new(Policy::from_toml_str(POLICY).unwrap_or_else(|e| panic!("{e}")));
        assert!(!memo.passed_before(&exec(&reloaded, &catalog, &facts), &id));
        let mut limited = exec(&policy, &catalog, &facts);
        limited.allowance.touches_classified = true;
        assert!(!memo.passed_before(&limited, &id), "another allowance");

        memo.forget();
        assert!(!memo.passed_before(&a, &id));
    }

    #[test]
    fn pseudonymized_results_are_always_decoded() {
        let (policy, catalog, facts) = setup();
        let email = description("email", 100, 2);
        let mut e = exec(&policy, &catalog, &facts);
        e.allowance.pseudonymize = vec![Some(OutputPseudonym {
            category: "email".into(),
            column: None,
            transform: Transform::Email,
        })];
        let mut memo = CheckedDescription::default();
        memo.passed(&e, &email);
        assert!(!memo.passed_before(&e, &email));
    }
}
