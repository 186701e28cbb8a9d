//! What sessions tell the block log: the session's fixed fields, a
//! statement's verdict with the relations and classified columns it
//! touches, and the error a guarded client gets when the log cannot be
//! written. Statement text reaches the log only normalized (every literal
//! replaced) by [`crate::audit`].

use std::sync::Arc;

use crate::analysis::StatementFacts;
use crate::audit::{AuditError, SessionFields, StatementEvent, Verdict};
use crate::catalog::Catalog;
use crate::guard::{relation_names, RefusedFacts};
use crate::policy::{Allowance, Block, RoleClass, Rule};
use crate::wire::messages::{ErrorFields, Severity};

use super::SessionInfo;

/// The rule of a statement refused because its verdict could not be
/// recorded.
pub(crate) const AUDIT_UNAVAILABLE: Rule = Rule::AuditUnavailable;

/// The fixed fields of a session's records.
pub(crate) fn session_fields(info: &SessionInfo, class: &RoleClass) -> Arc<SessionFields> {
    Arc::new(SessionFields {
        id: info.id,
        client_addr: info.client_addr,
        tls: info.tls,
        role: info.user.clone(),
        database: info.database.clone(),
        application_name: info.application_name.clone(),
        role_class: class.name.clone(),
    })
}

/// The verdict an allowed statement is recorded with, if it needs a record
/// (it returns classified data, limited or pseudonymized).
pub(crate) fn allowed_verdict(allowance: &Allowance) -> Option<Verdict> {
    if allowance.pseudonymizes() {
        Some(Verdict::Pseudonymized)
    } else if allowance.limits.is_some() {
        Some(Verdict::AllowedLimited)
    } else {
        None
    }
}

/// The verdict a refusal is recorded with: a stop while rows streamed is
/// a limit or budget running out, anything else a block.
pub(crate) fn refusal_verdict(b: &Block) -> Verdict {
    if b.rule.is_limit() {
        Verdict::BudgetExceeded
    } else {
        Verdict::Blocked
    }
}

/// A statement event: `sql` (normalized by the event), the verdict, the
/// refusal's rule and reason, and what the facts say the statement reads,
/// writes and returns of classified data.
pub(crate) fn statement_event(
    sql: &str,
    verdict: Verdict,
    block: Option<&Block>,
    facts: Option<(&StatementFacts, &Allowance, &Catalog)>,
) -> StatementEvent {
    let mut ev = StatementEvent::new(sql, verdict);
    if let Some(b) = block {
        ev.rule = Some(b.rule.id().to_owned());
        ev.reason = Some(b.reason.clone());
    }
    if let Some((facts, allowance, catalog)) = facts {
        ev.relations = relation_names(facts, catalog);
        ev.columns = allowance
            .classified_outputs
            .iter()
            .map(|c| catalog.column_name(*c))
            .collect();
    }
    ev
}

/// A refusal's event: `sql`, the rule and reason, and the relations and
/// classified columns the refusal was decided on (none when it was
/// decided on no facts).
pub(crate) fn refusal_event(
    sql: &str,
    block: &Block,
    facts: Option<&RefusedFacts>,
) -> StatementEvent {
    let mut ev = statement_event(sql, refusal_verdict(block), Some(block), None);
    if let Some(facts) = facts {
        ev.relations = facts.relations.clone();
        ev.columns = facts.columns.clone();
    }
    ev
}

/// The error a guarded client gets for a statement whose verdict could not
/// be recorded.
pub(crate) fn unavailable(e: &AuditError) -> ErrorFields {
    ErrorFields::new(
        Severity::Error,
        AUDIT_UNAVAILABLE.sqlstate(),
        format!("copyguard: the block log cannot be written ({e}); guarded statements are refused until it can (rule {AUDIT_UNAVAILABLE})"),
    )
    .with_hint(AUDIT_UNAVAILABLE.hint())
}

/// Writes the receipt of a session with a dump grant: one result record
/// per table (rows, bytes, pseudonymized values per category, the grant
/// id), then the grant's summary line.
pub(crate) async fn dump_receipt(
    log: &crate::audit::AuditLog,
    session: &std::sync::Arc<crate::audit::SessionFields>,
    dump: &crate::dumps::DumpScope,
    receipt: &crate::dumps::Receipt,
) {
    use crate::audit::{Event, StatementEvent};
    for (table, t) in receipt.tables() {
        let verdict = if t.pseudonymized.is_empty() {
            crate::audit::Verdict::Allowed
        } else {
            crate::audit::Verdict::Pseudonymized
        };
        let mut ev = StatementEvent::new("dump receipt", verdict);
        ev.relations = vec![table];
        ev.rows = Some(t.rows);
        ev.bytes = Some(t.bytes);
        ev.pseudonymized = t.pseudonymized;
        ev.grant = Some(dump.grant_id.clone());
        if let Err(e) = log.record(Event::result(session, ev)).await {
            tracing::warn!(error = %e, "dump receipt not recorded in the block log");
        }
    }
    let ev = Event::grant_use(session, &dump.grant_id, Some(receipt.summary()));
    if let Err(e) = log.record(ev).await {
        tracing::warn!(error = %e, "dump receipt not recorded in the block log");
    }
}
