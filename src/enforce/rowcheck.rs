use crate::analysis::StatementFacts;
use crate::catalog::{Catalog, ColumnId};
use crate::policy::{Allowance, Block, ClassLimits, Policy, Rule};
use crate::wire::messages::FieldDescription;

use super::block;

/// The second, parser-independent check: every result column that
/// PostgreSQL reports as a plain column of a table is looked up in the
/// policy. A classified or forbidden column the analysis did not account
/// for, an unknown table, or a result whose shape differs from the analysis
/// refuses the statement. A column of a category the class gets
/// pseudonymized must be planned for pseudonymization at its position.
pub fn check_row_description(
    policy: &Policy,
    catalog: &Catalog,
    facts: &StatementFacts,
    allowance: &Allowance,
    class: &ClassLimits,
    fields: &[FieldDescription],
) -> Result<(), Block> {
    if !facts.outputs.is_empty() && facts.outputs.len() != fields.len() {
        return Err(block(
            Rule::ResultShapeMismatch,
            format!(
                "the result has {} columns where analysis expected {}",
                fields.len(),
                facts.outputs.len()
            ),
        ));
    }
    for (i, field) in fields.iter().enumerate() {
        if field.table_oid == 0 {
            continue;
        }
        let Some(rel) = catalog.relation(field.table_oid) else {
            return Err(block(
                Rule::ResultUnknownRelation,
                format!(
                    "result column {:?} comes from a relation copyguard does not know yet; retry once its catalog is refreshed",
                    field.name
                ),
            ));
        };
        if let Some(reason) = policy.forbidden_reason(catalog, rel.oid) {
            return Err(block(
                Rule::TableForbidden,
                format!("{}: {reason}", rel.qualified_name()),
            ));
        }
        let col = ColumnId {
            rel: field.table_oid,
            attnum: field.attnum,
        };
        let Some(category) = policy.category_of(catalog, col) else {
            continue;
        };
        let planned = allowance.pseudonymize.get(i).is_some_and(Option::is_some);
        if class.pseudonymizes(category) && !planned {
            return Err(block(
                Rule::ResultClassifiedUnexpected,
                format!(
                    "result column {:?} is classified ({}) and must be pseudonymized, but analysis did not plan it",
                    field.name,
                    catalog.column_name(col)
                ),
            ));
        }
        let accounted = allowance.limits.is_some()
            && (allowance.classified_outputs.contains(&col)
                || facts
                    .outputs
                    .get(i)
                    .is_some_and(|o| o.lineage.contains(&col)));
        if !accounted {
            return Err(block(
                Rule::ResultClassifiedUnexpected,
                format!(
                    "result column {:?} is classified ({}) but analysis did not account for it",
                    field.name,
                    catalog.column_name(col)
                ),
            ));
        }
    }
    Ok(())
}
