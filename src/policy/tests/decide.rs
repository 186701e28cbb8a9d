//! decide(): one test per rule, in rule order, then the kinds that carry
//! no data or return rows later.

use super::*;

#[test]
fn rule_identity_change() {
    for kind in [
        StatementKind::SetRole,
        StatementKind::SetSessionAuthorization,
        StatementKind::Set {
            name: "role".into(),
        },
        StatementKind::Set {
            name: "session_authorization".into(),
        },
    ] {
        assert_blocked("dev_alice", &StatementFacts::new(kind), IDENTITY_CHANGE);
    }
    assert_allowed(
        "dev_alice",
        &StatementFacts::new(StatementKind::Set {
            name: "search_path".into(),
        }),
    );
}

fn set_config(name: Option<&str>, lineage: &[ColumnId]) -> StatementFacts {
    let mut f = select(&[("set_config", lineage)]);
    f.functions
        .insert(call(Some("pg_catalog"), "set_config", false));
    f.settings.push(SettingChange {
        name: name.map(str::to_owned),
        lineage: lineage.iter().copied().collect(),
    });
    f
}

#[test]
fn rule_settings_by_set_config() {
    for role in ["dev_alice", "ro_x"] {
        assert_allowed(role, &set_config(Some("jit"), &[]));
        assert_allowed(role, &set_config(Some("search_path"), &[]));
        assert_allowed(role, &set_config(Some("myapp.tenant"), &[AMOUNT]));
        for identity in ["role", "session_authorization"] {
            assert_blocked(role, &set_config(Some(identity), &[]), IDENTITY_CHANGE);
        }
        for lexer in [
            "standard_conforming_strings",
            "client_encoding",
            "backslash_quote",
        ] {
            assert_blocked(role, &set_config(Some(lexer), &[]), SETTING_LEXER);
        }
        assert_blocked(role, &set_config(None, &[]), SETTING_DYNAMIC);
        let reason = assert_blocked(
            role,
            &set_config(Some("myapp.x"), &[AMOUNT, EMAIL]),
            SETTING_CLASSIFIED,
        );
        assert!(reason.contains("users.email"), "{reason}");
    }
    // A call analysis did not describe is not understood.
    let mut bare = select(&[("n", &[AMOUNT])]);
    bare.functions.insert(call(None, "set_config", false));
    assert_blocked("dev_alice", &bare, SETTING_DYNAMIC);
    // A user-defined set_config is a user-defined function.
    let mut udf = set_config(Some("jit"), &[]);
    udf.functions.clear();
    udf.functions.insert(call(None, "set_config", true));
    assert_blocked("dev_alice", &udf, FUNCTION_NOT_ALLOWED);
    // Production is relayed as it is.
    assert_allowed("app_prod", &set_config(Some("role"), &[EMAIL]));
}

#[test]
fn rule_code_and_ddl() {
    let f = StatementFacts::new;
    assert_blocked("dev_alice", &f(StatementKind::Do), CODE_DO_BLOCK);
    assert_blocked("dev_alice", &f(StatementKind::Call), CODE_CALL);
    assert_blocked(
        "dev_alice",
        &f(StatementKind::Ddl(DdlKind::Code("CREATE FUNCTION".into()))),
        DDL_CODE,
    );
    assert_blocked(
        "dev_alice",
        &f(StatementKind::Ddl(DdlKind::Security("GRANT".into()))),
        DDL_SECURITY,
    );
    let create = f(StatementKind::Ddl(DdlKind::Structure(
        "CREATE TABLE".into(),
    )));
    assert_blocked("ro_x", &create, DDL_NOT_ALLOWED);
    assert_allowed("dev_alice", &create);
}

#[test]
fn rule_function_not_allowed() {
    let mut f = select(&[("n", &[AMOUNT])]);
    f.functions.insert(call(None, "lower", false));
    f.functions.insert(call(Some("public"), "my_pure_fn", true));
    assert_allowed("dev_alice", &f);
    for bad in [
        call(None, "query_to_xml", false),
        call(None, "dblink", false),
        call(None, "leak_email", true),
        call(None, "md5", false),
        call(Some("public"), "lower", false),
    ] {
        let mut g = f.clone();
        g.functions.insert(bad.clone());
        let reason = assert_blocked("dev_alice", &g, FUNCTION_NOT_ALLOWED);
        assert!(reason.contains(&bad.name), "{reason}");
    }
}

#[test]
fn rule_table_forbidden() {
    let mut f = StatementFacts::new(StatementKind::Select);
    f.reads.insert(ID_DOCS);
    let reason = assert_blocked("dev_alice", &f, TABLE_FORBIDDEN);
    assert!(reason.contains("public.identity_documents"), "{reason}");
    assert!(
        reason.contains("identity documents never leave production"),
        "{reason}"
    );
    for oid in [DOCS_P1, ARCHIVE, PG_STATS] {
        let mut f = StatementFacts::new(StatementKind::Select);
        f.reads.insert(oid);
        assert_blocked("dev_alice", &f, TABLE_FORBIDDEN);
    }
    let mut f = StatementFacts::new(StatementKind::Delete);
    f.writes.insert(ID_DOCS);
    assert_blocked("dev_alice", &f, TABLE_FORBIDDEN);
}

#[test]
fn rule_copy_server_side() {
    let to_file = StatementKind::CopyTo {
        to: CopyEndpoint::File("/tmp/x".into()),
        format: CopyFormat::Csv,
        options: Default::default(),
    };
    let from_program = StatementKind::CopyFrom {
        from: CopyEndpoint::Program("curl".into()),
        format: CopyFormat::Text,
    };
    assert_blocked("dev_alice", &StatementFacts::new(to_file), COPY_SERVER_SIDE);
    assert_blocked(
        "dev_alice",
        &StatementFacts::new(from_program),
        COPY_SERVER_SIDE,
    );
}

#[test]
fn rule_write_not_allowed() {
    let copy_in = StatementKind::CopyFrom {
        from: CopyEndpoint::Client,
        format: CopyFormat::Text,
    };
    for kind in [
        StatementKind::Insert,
        StatementKind::Update,
        StatementKind::Delete,
        StatementKind::Merge,
        StatementKind::Truncate,
        copy_in,
        StatementKind::CreateTableAs,
        StatementKind::MaterializedView,
        StatementKind::Prepare {
            name: "p".into(),
            inner: Box::new(StatementKind::Insert),
        },
    ] {
        let mut f = StatementFacts::new(kind);
        f.writes.insert(ORDERS);
        assert_blocked("ro_x", &f, WRITE_NOT_ALLOWED);
        assert_allowed("dev_alice", &f);
    }
    let mut seq = StatementFacts::new(StatementKind::Select);
    seq.functions.insert(call(None, "nextval", false));
    assert_blocked("ro_x", &seq, WRITE_NOT_ALLOWED);
    assert_allowed("dev_alice", &seq);
    let mut execute = StatementFacts::new(StatementKind::Execute { name: "p".into() });
    execute.writes.insert(ORDERS);
    assert_blocked("ro_x", &execute, WRITE_NOT_ALLOWED);
    let mut explain = StatementFacts::new(StatementKind::Explain { analyze: false });
    explain.writes.insert(ORDERS);
    assert_allowed("ro_x", &explain);
    explain.kind = StatementKind::Explain { analyze: true };
    assert_blocked("ro_x", &explain, WRITE_NOT_ALLOWED);
}

#[test]
fn rule_copy_in_db_classified() {
    for kind in [
        StatementKind::Insert,
        StatementKind::Update,
        StatementKind::CreateTableAs,
    ] {
        let mut f = StatementFacts::new(kind);
        f.writes.insert(ORDERS);
        f.stored.insert(EMAIL);
        let reason = assert_blocked("dev_alice", &f, COPY_IN_DB_CLASSIFIED);
        assert!(reason.contains("public.users.email"), "{reason}");
    }
    let mut f = StatementFacts::new(StatementKind::Insert);
    f.stored.insert(AMOUNT);
    assert_allowed("dev_alice", &f);
}

#[test]
fn setting_a_sequence_next_to_classified_columns_counts_as_storing_them() {
    let mut f = StatementFacts::new(StatementKind::Select);
    f.functions.insert(call(None, "setval", false));
    f.predicates.insert(EMAIL);
    assert_blocked("dev_alice", &f, COPY_IN_DB_CLASSIFIED);
    let mut f = select(&[("s", &[EMAIL])]);
    f.functions.insert(call(None, "setval", false));
    assert_blocked("dev_alice", &f, COPY_IN_DB_CLASSIFIED);
    let mut f = select(&[("s", &[AMOUNT])]);
    f.functions.insert(call(None, "setval", false));
    assert_allowed("dev_alice", &f);
}

#[test]
fn rule_category_blocked() {
    let f = select(&[("id", &[col(USERS, 1)]), ("n", &[NATIONAL_NO, COUNTRY])]);
    let reason = assert_blocked("dev_alice", &f, CATEGORY_BLOCKED);
    assert!(
        reason.contains("national_id") && reason.contains("\"n\""),
        "{reason}"
    );
    assert!(assert_allowed("ro_x", &f).limits.is_some());
}

#[test]
fn rule_copy_classified() {
    let copy_out = StatementKind::CopyTo {
        to: CopyEndpoint::Client,
        format: CopyFormat::Csv,
        options: Default::default(),
    };
    let mut f = select(&[("email", &[EMAIL])]);
    f.kind = copy_out.clone();
    assert_blocked("dev_alice", &f, COPY_CLASSIFIED);
    let mut g = select(&[("amount_cents", &[AMOUNT])]);
    g.kind = copy_out;
    let a = assert_allowed("dev_alice", &g);
    assert_eq!(a.limits, None);
}

#[test]
fn rule_predicate_classified() {
    let mut f = select(&[("id", &[col(USERS, 1)])]);
    f.predicates.insert(EMAIL);
    let reason = assert_blocked("ro_x", &f, PREDICATE_CLASSIFIED);
    assert!(reason.contains("public.users.email"), "{reason}");
    let a = assert_allowed("dev_alice", &f);
    assert!(a.touches_classified && a.limits.is_none());
    let mut explain = StatementFacts::new(StatementKind::Explain { analyze: false });
    explain.predicates.insert(EMAIL);
    assert_blocked("ro_x", &explain, PREDICATE_CLASSIFIED);
}

#[test]
fn rule_classified_not_allowed() {
    let f = select(&[("id", &[col(USERS, 1)]), ("contact", &[EMAIL])]);
    let reason = assert_blocked("intern", &f, CLASSIFIED_NOT_ALLOWED);
    assert!(
        reason.contains("\"contact\"") && reason.contains("public.users.email"),
        "{reason}"
    );
    assert_allowed("intern", &select(&[("country", &[COUNTRY])]));
}

#[test]
fn rule_classified_aggregated() {
    let mut f = select(&[("emails", &[EMAIL])]);
    f.functions.insert(FunctionRef {
        schema: None,
        name: "string_agg".into(),
        user_defined: false,
    });
    let reason = assert_blocked("dev_alice", &f, CLASSIFIED_AGGREGATED);
    assert!(reason.contains("string_agg"), "{reason}");
    // `percentile_disc(ARRAY[...]) WITHIN GROUP (ORDER BY email)`: a value
    // per fraction, a whole table in one row (found by a red-team round).
    for name in ["percentile_disc", "percentile_cont"] {
        let mut f = select(&[("emails", &[EMAIL])]);
        f.functions.insert(FunctionRef {
            schema: None,
            name: name.into(),
            user_defined: false,
        });
        assert_blocked("dev_alice", &f, CLASSIFIED_AGGREGATED);
    }
    let mut counts = select(&[("n", &[COUNTRY])]);
    counts.functions.insert(FunctionRef {
        schema: None,
        name: "array_agg".into(),
        user_defined: false,
    });
    assert_allowed("dev_alice", &counts);
}

#[test]
fn rule_allow_with_limits() {
    let a = assert_allowed(
        "dev_alice",
        &select(&[("email", &[EMAIL]), ("amount", &[AMOUNT])]),
    );
    assert_eq!(a.classified_outputs, [EMAIL].into_iter().collect());
    assert_eq!(
        a.limits,
        Some(StatementLimits {
            max_rows: 20,
            max_bytes: 65536,
            row_weight: 1,
        })
    );
    assert!(a.touches_classified);
    let plain = assert_allowed("dev_alice", &select(&[("amount", &[AMOUNT])]));
    assert_eq!(plain.limits, None);
    assert!(!plain.touches_classified && plain.classified_outputs.is_empty());
    let mut update = StatementFacts::new(StatementKind::Update);
    update.writes.insert(USERS);
    assert!(assert_allowed("dev_alice", &update).touches_classified);
}

#[test]
fn rows_flow_at_execute_and_fetch() {
    for kind in [
        StatementKind::Prepare {
            name: "p".into(),
            inner: Box::new(StatementKind::Select),
        },
        StatementKind::Declare { name: "c".into() },
    ] {
        let mut f = select(&[("email", &[EMAIL])]);
        f.kind = kind;
        let a = assert_allowed("dev_alice", &f);
        assert_eq!((a.limits, a.classified_outputs.len()), (None, 1));
        assert_blocked("intern", &f, CLASSIFIED_NOT_ALLOWED);
    }
    for kind in [
        StatementKind::Execute { name: "p".into() },
        StatementKind::Fetch {
            name: "c".into(),
            is_move: false,
        },
    ] {
        let mut f = select(&[("email", &[EMAIL])]);
        f.kind = kind;
        assert!(assert_allowed("dev_alice", &f).limits.is_some());
        assert_blocked("intern", &f, CLASSIFIED_NOT_ALLOWED);
    }
    let mut explain = select(&[("email", &[EMAIL])]);
    explain.kind = StatementKind::Explain { analyze: true };
    let a = assert_allowed("intern", &explain);
    assert!(a.limits.is_none() && a.classified_outputs.is_empty() && a.touches_classified);
}

#[test]
fn statements_without_data_pass() {
    for kind in [
        StatementKind::Transaction {
            ends: true,
            begins: false,
        },
        StatementKind::Show,
        StatementKind::Listen,
        StatementKind::Notify,
        StatementKind::Discard,
        StatementKind::Empty,
        StatementKind::Maintenance,
        StatementKind::Lock,
        StatementKind::Deallocate { name: None },
        StatementKind::CloseCursor { name: None },
        StatementKind::Set { name: "all".into() },
    ] {
        let a = assert_allowed("intern", &StatementFacts::new(kind));
        assert_eq!(a.limits, None);
    }
}

#[test]
fn production_is_always_allowed() {
    let mut f = StatementFacts::new(StatementKind::Do);
    f.reads.insert(ID_DOCS);
    let a = assert_allowed("app_prod", &f);
    assert!(!a.touches_classified && a.limits.is_none());
}

#[test]
fn rule_ids_are_unique_and_documented() {
    let readme = include_str!("../../../policies/README.md");
    let mut seen = BTreeSet::new();
    for rule in RULES {
        let id = rule.id();
        assert!(seen.insert(id), "{id} twice");
        assert!(
            readme.contains(&format!("`{id}`")),
            "{id} not in policies/README.md"
        );
    }
}

const PSEUDONYMIZING: &str = r#"
[classes.qa]
mode = "guarded"
roles = ["qa"]
max_rows_per_statement = 100
max_bytes_per_statement = "1MiB"
max_rows_per_session = 1000
max_rows_per_window = 1000
classified_predicates = true
pseudonymize = ["email", "person_name"]
copy_to = "pseudonymize"

[classes.qa_derived]
mode = "guarded"
roles = ["qa_derived"]
max_rows_per_statement = 100
max_bytes_per_statement = "1MiB"
max_rows_per_session = 1000
max_rows_per_window = 1000
pseudonymize = ["*"]
block_categories = ["national_id"]
derived = "pseudonymize"

[columns]
"public.users.email" = "email"
"public.users.full_name" = "person_name"
"public.users.national_no" = "national_id"
"public.users.country" = "address"

[transforms]
"public.users.full_name" = "token"
"#;

fn decide_pseudonymizing(role: &str, facts: &StatementFacts) -> Verdict {
    let p = Policy::from_toml_str(PSEUDONYMIZING).unwrap_or_else(|e| panic!("{e}"));
    let class = p.classify_role(role);
    p.decide(&class, &catalog(), facts)
}

#[test]
fn pseudonymized_columns_are_planned_by_position_and_still_limited() {
    let f = select(&[
        ("id", &[col(USERS, 1)]),
        ("email", &[EMAIL]),
        ("c", &[COUNTRY]),
    ]);
    let Verdict::Allow(a) = decide_pseudonymizing("qa", &f) else {
        panic!("refused")
    };
    assert_eq!(
        a.pseudonymize,
        [
            None,
            Some(OutputPseudonym {
                category: "email".into(),
                column: Some(EMAIL),
                transform: crate::pseudonym::Transform::Email,
            }),
            None
        ]
    );
    assert!(a.limits.is_some(), "bulk limits still apply");
    let plain = select(&[("id", &[col(USERS, 1)])]);
    let Verdict::Allow(a) = decide_pseudonymizing("qa", &plain) else {
        panic!("refused")
    };
    assert!(a.pseudonymize.is_empty() && !a.pseudonymizes());
}

#[test]
fn derived_values_are_refused_or_pseudonymized_as_a_whole() {
    let mut lower = select(&[("l", &[EMAIL])]);
    lower.outputs[0].direct = None;
    match decide_pseudonymizing("qa", &lower) {
        Verdict::Block(b) => assert_eq!(b.rule, PSEUDONYM_DERIVED),
        other => panic!("{other:?}"),
    }
    let Verdict::Allow(a) = decide_pseudonymizing("qa_derived", &lower) else {
        panic!("refused")
    };
    assert_eq!(
        a.pseudonymize,
        [Some(OutputPseudonym {
            category: "email".into(),
            column: None,
            transform: crate::pseudonym::Transform::Redact,
        })]
    );
    let mut copy = lower.clone();
    copy.kind = StatementKind::CopyTo {
        to: CopyEndpoint::Client,
        format: CopyFormat::Text,
        options: Default::default(),
    };
    match decide_pseudonymizing("qa_derived", &copy) {
        Verdict::Block(b) => assert_eq!(b.rule, PSEUDONYM_DERIVED),
        other => panic!("{other:?}"),
    }
    let mut agg = select(&[("all", &[EMAIL])]);
    agg.outputs[0].direct = None;
    agg.functions.insert(call(None, "string_agg", false));
    assert!(matches!(
        decide_pseudonymizing("qa_derived", &agg),
        Verdict::Allow(_)
    ));
    let blocked = select(&[("n", &[NATIONAL_NO])]);
    match decide_pseudonymizing("qa_derived", &blocked) {
        Verdict::Block(b) => assert_eq!(b.rule, CATEGORY_BLOCKED),
        other => panic!("{other:?}"),
    }
}

/// A computed value is NULL whatever its category: a transform that
/// keeps part of its input keeps what the statement moved there, and a
/// deterministic stand-in of the whole value is a codebook the statement
/// can build itself (red-team rounds: `translate(phone, ...)`, a scaled
/// birth date, `substr(email, 1, 1)` against `substr(email, 1, 0) ||
/// 'B'`).
#[test]
fn computed_values_keep_nothing_of_their_input() {
    let computed = |c: ColumnId| {
        let mut f = select(&[("x", &[c])]);
        f.outputs[0].direct = None;
        f
    };
    let transform = |c: ColumnId| {
        let Verdict::Allow(a) = decide_pseudonymizing("qa_derived", &computed(c)) else {
            panic!("refused")
        };
        a.pseudonymize[0].as_ref().map(|p| p.transform.clone())
    };
    use crate::pseudonym::Transform;
    for c in [EMAIL, col(USERS, 3), COUNTRY] {
        assert_eq!(transform(c), Some(Transform::Redact), "{c:?}");
    }
    let Verdict::Allow(a) = decide_pseudonymizing("qa_derived", &select(&[("c", &[COUNTRY])]))
    else {
        panic!("refused")
    };
    assert_eq!(
        a.pseudonymize[0].as_ref().map(|p| &p.transform),
        Some(&Transform::Address),
        "the column itself keeps its transform"
    );
}

#[test]
fn copy_is_allowed_only_when_every_classified_column_is_pseudonymized() {
    let copy = |outputs: &[(&str, &[ColumnId])]| {
        let mut f = select(outputs);
        f.kind = StatementKind::CopyTo {
            to: CopyEndpoint::Client,
            format: CopyFormat::Csv,
            options: Default::default(),
        };
        f
    };
    assert!(matches!(
        decide_pseudonymizing(
            "qa",
            &copy(&[("id", &[col(USERS, 1)]), ("email", &[EMAIL])])
        ),
        Verdict::Allow(_)
    ));
    match decide_pseudonymizing("qa", &copy(&[("email", &[EMAIL]), ("c", &[COUNTRY])])) {
        Verdict::Block(b) => assert_eq!(b.rule, COPY_CLASSIFIED),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_column_can_name_its_own_transform() {
    let f = select(&[("n", &[col(USERS, 3)])]);
    let Verdict::Allow(a) = decide_pseudonymizing("qa", &f) else {
        panic!("refused")
    };
    assert_eq!(
        a.pseudonymize[0].as_ref().map(|p| &p.transform),
        Some(&crate::pseudonym::Transform::Token)
    );
    let bad = PSEUDONYMIZING.replace("= \"token\"", "= \"rot13\"");
    let err = Policy::from_toml_str(&bad).unwrap_err().to_string();
    assert!(
        err.contains("transforms.") && err.contains("rot13"),
        "{err}"
    );
}

#[test]
fn a_category_cannot_be_both_blocked_and_pseudonymized() {
    let text = PSEUDONYMIZING.replace(
        "pseudonymize = [\"email\", \"person_name\"]",
        "pseudonymize = [\"email\"]\nblock_categories = [\"email\"]",
    );
    let err = Policy::from_toml_str(&text).unwrap_err().to_string();
    assert!(err.contains("pseudonymize"), "{err}");
}

#[test]
fn a_dump_grant_pseudonymizes_every_category_inside_its_scope_only() {
    let p = policy();
    let class = p.classify_role("dev_alice");
    let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let scope = crate::dumps::Scope {
        tables: vec!["users".into()],
        ..Default::default()
    };
    let req = crate::dumps::DumpRequest::new("dev_alice", "shop", scope, "why");
    let grant =
        crate::dumps::Grant::approve(&req, std::time::Duration::from_secs(60), 1, "v", &key);
    let dump = std::sync::Arc::new(crate::dumps::DumpScope {
        grant_id: grant.grant_id.clone(),
        scope: grant.scope.clone(),
    });
    let granted = crate::dumps::granted_class(&class, &dump);
    let mut copy = select(&[("email", &[EMAIL]), ("national_no", &[NATIONAL_NO])]);
    copy.kind = StatementKind::CopyTo {
        to: CopyEndpoint::Client,
        format: CopyFormat::Text,
        options: Default::default(),
    };
    assert!(matches!(
        p.decide(&class, &catalog(), &copy),
        Verdict::Block(_)
    ));
    let Verdict::Allow(a) = p.decide(&granted, &catalog(), &copy) else {
        panic!("a granted COPY of an in-scope table is allowed");
    };
    assert!(a.pseudonymize.iter().all(Option::is_some), "{a:?}");
    assert_eq!(a.limits.unwrap().max_rows, u64::MAX);
    let orders = select(&[("amount", &[AMOUNT])]);
    match p.decide(&granted, &catalog(), &orders) {
        Verdict::Block(b) => {
            assert_eq!(b.rule, GRANT_OUT_OF_SCOPE);
            assert!(b.reason.contains("public.orders"), "{}", b.reason);
        }
        other => panic!("{other:?}"),
    }
    let mut catalog_read = StatementFacts::new(StatementKind::Select);
    catalog_read.reads.insert(PG_STATS);
    assert!(matches!(
        p.decide(&granted, &catalog(), &catalog_read),
        Verdict::Block(b) if b.rule == TABLE_FORBIDDEN
    ));
}

/// Each row returned counts as many rows of classified data as the
/// statement scans the classified columns' relation.
#[test]
fn rows_weigh_as_many_scans_as_their_classified_relation() {
    let mut f = select(&[("e1", &[EMAIL]), ("e2", &[EMAIL]), ("amount", &[AMOUNT])]);
    let weight = |f: &StatementFacts| assert_allowed("dev_alice", f).limits.map(|l| l.row_weight);
    assert_eq!(weight(&f), Some(1), "no scans known: one row");
    f.scans.insert(EMAIL.rel, 50);
    f.scans.insert(AMOUNT.rel, 70);
    assert_eq!(
        weight(&f),
        Some(50),
        "an unclassified relation's scans do not count"
    );
}
