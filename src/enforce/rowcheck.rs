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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::*;
    use crate::analysis::{OutputColumn, StatementKind};
    use crate::catalog::{text_table, Oid};
    use crate::policy::{OutputPseudonym, RoleClass, StatementLimits};
    use crate::pseudonym::Transform;

    const USERS: Oid = 100;
    const DOCS: Oid = 102;
    const ID: ColumnId = ColumnId {
        rel: USERS,
        attnum: 1,
    };
    const EMAIL: ColumnId = ColumnId {
        rel: USERS,
        attnum: 2,
    };
    const NAME: ColumnId = ColumnId {
        rel: USERS,
        attnum: 3,
    };

    const POLICY: &str = r#"
[classes.devs]
mode = "guarded"
roles = ["dev"]
max_rows_per_statement = 10
max_bytes_per_statement = "1MiB"
max_rows_per_session = 100
max_rows_per_window = 1000
window = "1h"
pseudonymize = ["person_name"]

[columns]
"public.users.email" = "email"
"public.users.full_name" = "person_name"

[forbidden]
"public.docs" = "documents stay in production"
"#;

    struct Fixture {
        policy: Policy,
        catalog: Catalog,
        class: Arc<RoleClass>,
    }

    fn fixture() -> Fixture {
        let policy = Policy::from_toml_str(POLICY).unwrap_or_else(|e| panic!("{e}"));
        let catalog = Catalog::new(
            [
                text_table(USERS, "users", &["id", "email", "full_name", "country"]),
                text_table(DOCS, "docs", &["id", "doc_number"]),
            ],
            Vec::new(),
        );
        let class = policy.classify_role("dev");
        Fixture {
            policy,
            catalog,
            class,
        }
    }

    fn field(name: &str, table_oid: u32, attnum: i16) -> FieldDescription {
        FieldDescription {
            name: name.into(),
            table_oid,
            attnum,
            type_oid: 25,
            typmod: -1,
            format: 0,
        }
    }

    fn output(name: &str, lineage: &[ColumnId]) -> OutputColumn {
        OutputColumn {
            name: name.into(),
            lineage: lineage.iter().copied().collect(),
            direct: lineage.first().copied().filter(|_| lineage.len() == 1),
        }
    }

    fn facts(outputs: Vec<OutputColumn>) -> StatementFacts {
        let mut f = StatementFacts::new(StatementKind::Select);
        f.reads.insert(USERS);
        f.outputs = outputs;
        f
    }

    fn plain() -> Allowance {
        Allowance {
            classified_outputs: BTreeSet::new(),
            limits: None,
            touches_classified: false,
            pseudonymize: Vec::new(),
        }
    }

    fn limited(classified: &[ColumnId]) -> Allowance {
        Allowance {
            classified_outputs: classified.iter().copied().collect(),
            limits: Some(StatementLimits {
                max_rows: 10,
                max_bytes: 1 << 20,
                row_weight: 1,
            }),
            touches_classified: true,
            pseudonymize: Vec::new(),
        }
    }

    fn check(
        fx: &Fixture,
        facts: &StatementFacts,
        allowance: &Allowance,
        fields: &[FieldDescription],
    ) -> Result<(), &'static str> {
        check_row_description(
            &fx.policy,
            &fx.catalog,
            facts,
            allowance,
            &fx.class.limits,
            fields,
        )
        .map_err(|b| b.rule.id())
    }

    #[test]
    fn unclassified_and_computed_columns_pass() {
        let fx = fixture();
        let f = facts(vec![
            output("id", &[ID]),
            output("n", &[]),
            output("country", &[]),
        ]);
        let fields = [
            field("id", USERS, 1),
            field("n", 0, 0),
            field("country", USERS, 4),
        ];
        assert_eq!(check(&fx, &f, &plain(), &fields), Ok(()));
        let no_outputs = facts(Vec::new());
        assert_eq!(
            check(&fx, &no_outputs, &plain(), &fields),
            Ok(()),
            "statements whose outputs analysis does not list (SHOW, EXPLAIN...) are checked column by column"
        );
    }

    #[test]
    fn a_result_of_another_shape_is_refused() {
        let fx = fixture();
        let f = facts(vec![output("id", &[ID])]);
        let fields = [field("id", USERS, 1), field("email", USERS, 2)];
        assert_eq!(
            check(&fx, &f, &plain(), &fields),
            Err("result.shape_mismatch")
        );
    }

    #[test]
    fn unknown_and_forbidden_relations_are_refused() {
        let fx = fixture();
        let f = facts(vec![output("x", &[])]);
        assert_eq!(
            check(&fx, &f, &plain(), &[field("x", 999, 1)]),
            Err("result.unknown_relation")
        );
        assert_eq!(
            check(&fx, &f, &plain(), &[field("doc_number", DOCS, 2)]),
            Err("table.forbidden")
        );
    }

    #[test]
    fn classified_columns_must_be_accounted_for() {
        let fx = fixture();
        let f = facts(vec![output("e", &[])]);
        let email = [field("e", USERS, 2)];
        assert_eq!(
            check(&fx, &f, &plain(), &email),
            Err("result.classified_unexpected"),
            "analysis saw a computed value, the server a classified column"
        );
        assert_eq!(
            check(&fx, &f, &limited(&[]), &email),
            Err("result.classified_unexpected"),
            "limited, but not for this column"
        );
        assert_eq!(check(&fx, &f, &limited(&[EMAIL]), &email), Ok(()));
        let traced = facts(vec![output("e", &[EMAIL])]);
        assert_eq!(
            check(&fx, &traced, &limited(&[]), &email),
            Ok(()),
            "in the output's lineage"
        );
        assert_eq!(
            check(&fx, &traced, &plain(), &email),
            Err("result.classified_unexpected"),
            "in the lineage but without limits"
        );
    }

    #[test]
    fn pseudonymized_categories_must_be_planned_at_their_position() {
        let fx = fixture();
        let f = facts(vec![output("id", &[ID]), output("full_name", &[NAME])]);
        let fields = [field("id", USERS, 1), field("full_name", USERS, 3)];
        let mut allowance = limited(&[NAME]);
        assert_eq!(
            check(&fx, &f, &allowance, &fields),
            Err("result.classified_unexpected"),
            "not planned"
        );
        let planned = OutputPseudonym {
            category: "person_name".into(),
            column: Some(NAME),
            transform: Transform::Bijection,
        };
        allowance.pseudonymize = vec![Some(planned.clone()), None];
        assert_eq!(
            check(&fx, &f, &allowance, &fields),
            Err("result.classified_unexpected"),
            "planned at another position"
        );
        allowance.pseudonymize = vec![None, Some(planned)];
        assert_eq!(check(&fx, &f, &allowance, &fields), Ok(()));
    }
}
