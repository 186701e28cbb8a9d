//! Loading the demo and README policies and reading every setting.

use super::*;

#[test]
fn demo_policy_loads_and_classifies_the_demo_schema() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let (p, warnings) = Policy::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(p.classify_role("app_prod").mode, ClassMode::Production);
    assert_eq!(p.classify_role("dev_alice").name, "developers");
    assert_eq!(p.classify_role("dev_bob").name, "developers");
    assert_eq!(p.classify_role("intern").name, "default");
    assert_eq!(p.classify_role("intern").mode, ClassMode::Guarded);
    let dev = p.classify_role("dev_alice");
    assert_eq!(dev.limits.max_rows_per_statement, 20);
    assert_eq!(dev.limits.max_bytes_per_statement, 64 * 1024);
    assert_eq!(dev.limits.window, Duration::from_secs(3600));
    let qa = p.classify_role("qa_bob");
    assert_eq!(qa.name, "testers");
    assert!(qa.limits.pseudonymizes("email") && !qa.limits.pseudonymizes("national_id"));
    assert_eq!(
        p.summary(),
        PolicySummary {
            classes: 4,
            classified_columns: 4,
            classified_tables: 0,
            forbidden_tables: 1,
        }
    );
    use RelKind::Table;
    let demo = Catalog::new(
        [
            rel(
                1,
                "public",
                "users",
                Table,
                &[
                    "id",
                    "email",
                    "full_name",
                    "birth_date",
                    "phone",
                    "country",
                    "created_at",
                ],
                &[],
            ),
            rel(
                2,
                "public",
                "orders",
                Table,
                &["id", "user_id", "amount_cents", "status", "created_at"],
                &[],
            ),
            rel(
                3,
                "public",
                "identity_documents",
                Table,
                &["id", "user_id", "doc_type", "doc_number"],
                &[],
            ),
        ],
        [],
    );
    let classified: Vec<_> = (1..=7)
        .filter_map(|a| p.category_of(&demo, col(1, a)))
        .collect();
    assert_eq!(
        classified,
        ["email", "person_name", "date_of_birth", "phone"]
    );
    assert!((1..=5).all(|a| p.category_of(&demo, col(2, a)).is_none()));
    assert!(p.forbidden_reason(&demo, 3).is_some());
    assert!(p.warnings_against(&demo).is_empty());
    assert!(p.notification_passes("cache_invalidate"));
}

#[test]
fn readme_example_is_valid() {
    let readme = include_str!("../../../policies/README.md");
    let start = readme
        .find("```toml\n")
        .expect("a toml block in the README")
        + 8;
    let end = start + readme[start..].find("```").unwrap();
    let p = Policy::from_toml_str(&readme[start..end]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.classify_role("app_prod").mode, ClassMode::Production);
    assert_eq!(p.classify_role("dev_carol").name, "developers");
}

#[test]
fn test_policy_values() {
    let p = policy();
    let dev = p.classify_role("dev_x");
    assert!(dev.limits.allow_writes && dev.limits.allow_ddl && dev.limits.classified_predicates);
    assert_eq!(
        dev.limits.block_categories,
        ["national_id", "secret"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let ro = p.classify_role("ro_x");
    assert_eq!(ro.limits.window, Duration::from_secs(1800));
    assert_eq!(ro.limits.max_bytes_per_statement, 4096);
    assert!(!ro.limits.allow_writes && !ro.limits.classified_predicates);
    assert_eq!(ro.limits.copy_to, CopyToAction::Block);
    assert!(p.notification_passes("Jobs"));
    assert!(!p.notification_passes("jobs"));
    assert!(!p.notification_passes("orders"));
    assert_eq!(p.classes().count(), 3);
}
