//! Role matching, categories through partitions and inheritance,
//! forbidden relations, warnings against a catalog.

use super::*;

#[test]
fn role_matching() {
    let p = policy();
    let class = |r: &str| p.classify_role(r).name.clone();
    assert_eq!(class("app_prod"), "production");
    assert_eq!(class("App_Prod"), "default");
    assert_eq!(class("ETL_Prod"), "production");
    assert_eq!(class("etl_prod"), "default");
    assert_eq!(class("svc_billing"), "production");
    assert_eq!(class("svc_Billing"), "default");
    assert_eq!(class("svc_billing2"), "default");
    assert_eq!(class("dev_alice"), "developers");
    assert_eq!(class("dev_"), "developers");
    assert_eq!(class("ro_bi"), "readers");
    assert_eq!(class(""), "default");
    let unmatched = p.classify_role("someone");
    assert_eq!(unmatched.mode, ClassMode::Guarded);
    assert_eq!(unmatched.limits, ClassLimits::strict());
}

#[test]
fn exact_names_before_patterns_and_patterns_in_file_order() {
    let dir = write_dir(&[
        (
            "a.toml",
            "[classes.z_first]\nmode = \"guarded\"\npatterns = [\"^dev_\"]\n[classes.a_second]\nmode = \"guarded\"\npatterns = [\"^dev_b\"]\n",
        ),
        (
            "b.toml",
            "[classes.prod]\nmode = \"production\"\nroles = [\"dev_bob\"]\npatterns = [\"^d\"]\n",
        ),
    ]);
    let (p, _) = Policy::load_dir(dir.path()).unwrap();
    assert_eq!(p.classify_role("dev_bob").name, "prod");
    assert_eq!(p.classify_role("dev_bill").name, "z_first");
    assert_eq!(p.classify_role("dave").name, "prod");
}

#[test]
fn categories_follow_partitions_and_inheritance() {
    let p = policy();
    let c = catalog();
    assert_eq!(p.category_of(&c, EMAIL), Some("email"));
    assert_eq!(p.category_of(&c, COUNTRY), None);
    assert_eq!(p.category_of(&c, col(EVENTS, 3)), Some("free_text"));
    assert_eq!(p.category_of(&c, col(EVENTS_2024, 3)), Some("free_text"));
    assert_eq!(p.category_of(&c, col(EVENTS_2024, 2)), None);
    assert_eq!(p.category_of(&c, col(STAFF, 2)), Some("person_name"));
    assert_eq!(p.category_of(&c, col(STAFF, 3)), None);
    // Classified only in a partition: reading the parent returns its rows.
    assert_eq!(p.category_of(&c, col(LOGS, 2)), Some("free_text"));
    assert_eq!(p.category_of(&c, col(LOGS, 1)), None);
    assert_eq!(p.category_of(&c, col(MEDICAL, 1)), Some("health"));
    assert_eq!(p.category_of(&c, col(MEDICAL, 2)), Some("health"));
    assert_eq!(p.category_of(&c, col(9999, 1)), None);
}

#[test]
fn forbidden_relations() {
    let p = policy();
    let c = catalog();
    let reason = |oid| p.forbidden_reason(&c, oid);
    assert_eq!(
        reason(ID_DOCS).as_deref(),
        Some("identity documents never leave production")
    );
    assert!(reason(DOCS).is_some());
    assert!(reason(DOCS_P1)
        .unwrap()
        .contains("documents stay in production"));
    assert!(reason(ARCHIVE).unwrap().contains("sealed archive"));
    assert!(reason(PG_STATS).unwrap().contains("statistics"));
    assert!(reason(PG_STATISTIC).is_some());
    assert!(reason(PG_STAT_STATEMENTS).unwrap().contains("query texts"));
    assert_eq!(reason(USERS), None);
    assert_eq!(reason(V_CONTACTS), None);
}

#[test]
fn warnings_against_a_catalog() {
    let p = Policy::from_toml_str(
        "[columns]\n\"public.users.emial\" = \"email\"\n\"public.Users.email\" = \"email\"\n\"public.v_contacts.contact\" = \"email\"\n[tables]\n\"public.gone\" = \"health\"\n[forbidden]\n\"public.identity_documents\" = \"no\"\n\"public.nope\" = \"no\"\n",
    )
    .unwrap();
    let w = p.warnings_against(&catalog());
    let text: Vec<String> = w.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 4, "{text:#?}");
    assert!(
        text.iter()
            .any(|t| t.contains(":2:") && t.contains("no column emial")),
        "{text:#?}"
    );
    assert!(text.iter().any(|t| t.contains("is a view")), "{text:#?}");
    assert!(text.iter().any(|t| t.contains("public.gone")), "{text:#?}");
    assert!(text.iter().any(|t| t.contains("public.nope")), "{text:#?}");
}
