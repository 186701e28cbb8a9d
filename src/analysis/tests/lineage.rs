//! Lineage through each SQL construct.

use super::*;
use crate::analysis::AnalysisError;

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
const BIRTH: ColumnId = ColumnId {
    rel: USERS,
    attnum: 4,
};
const PHONE: ColumnId = ColumnId {
    rel: USERS,
    attnum: 5,
};
const O_ID: ColumnId = ColumnId {
    rel: ORDERS,
    attnum: 1,
};
const O_USER: ColumnId = ColumnId {
    rel: ORDERS,
    attnum: 2,
};
const O_AMOUNT: ColumnId = ColumnId {
    rel: ORDERS,
    attnum: 3,
};
const O_STATUS: ColumnId = ColumnId {
    rel: ORDERS,
    attnum: 4,
};
const ALL_USERS: [ColumnId; 5] = [ID, EMAIL, NAME, BIRTH, PHONE];

#[test]
fn star_expands_in_catalog_order() {
    let f = one("SELECT * FROM users");
    assert_eq!(
        out_names(&f),
        ["id", "email", "full_name", "birth_date", "phone"]
    );
    assert_eq!(f.outputs[1].direct, Some(EMAIL));
    assert_eq!(lineages(&f)[4], set(&[PHONE]));
    assert_eq!(f.reads, [USERS].into());
}

#[test]
fn qualified_star_and_schema_qualified_names() {
    let f = one(
        "SELECT o.*, public.users.email FROM public.users JOIN orders o ON o.user_id = users.id",
    );
    assert_eq!(
        out_names(&f),
        ["id", "user_id", "amount_cents", "status", "email"]
    );
    assert_eq!(f.outputs[4].direct, Some(EMAIL));
    assert_eq!(f.predicates, set(&[O_USER, ID]));
}

#[test]
fn aliases_name_outputs_and_keep_direct() {
    let f = one("SELECT u.email AS contact, u.full_name \"Full\" FROM users AS u");
    assert_eq!(out_names(&f), ["contact", "Full"]);
    assert_eq!(f.outputs[0].direct, Some(EMAIL));
    assert_eq!(f.outputs[1].lineage, set(&[NAME]));
}

#[test]
fn views_expand_to_base_columns() {
    let f = one("SELECT contact, id FROM v_users WHERE id > 3");
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL]));
    assert_eq!(f.outputs[0].direct, Some(EMAIL));
    assert_eq!(f.reads, [USERS, V_USERS].into());
    assert_eq!(f.predicates, set(&[ID]));
}

#[test]
fn functions_inside_view_definitions_are_recorded() {
    let f = one("SELECT l FROM v_leak");
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL]));
    assert!(f
        .functions
        .iter()
        .any(|x| x.name == "leak" && x.user_defined));
}

#[test]
fn nested_views_expand_through_both() {
    let f = one("SELECT * FROM v_nested");
    assert_eq!(f.outputs[0].direct, Some(EMAIL));
    assert_eq!(f.reads, [USERS, V_USERS, V_NESTED].into());
}

#[test]
fn unparsable_view_falls_back_to_dependencies() {
    let f = one("SELECT a FROM v_broken");
    // The view column of v_users in depends_on is replaced by v_users' own.
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL, ID, c(DOCS, 3)]));
    assert_eq!(f.outputs[0].direct, None);
    assert!(f.reads.contains(&V_BROKEN) && f.reads.contains(&USERS) && f.reads.contains(&DOCS));
}

#[test]
fn whole_relation_dependency_falls_back_to_every_column() {
    let f = one("SELECT j FROM v_whole_row");
    assert_eq!(f.outputs[0].lineage, set(&ALL_USERS));
}

#[test]
fn view_resolving_elsewhere_on_the_session_path_keeps_its_dependencies() {
    let f = run_with("SELECT id FROM public.v_unqualified", &["app", "public"]).unwrap();
    let lineage = &f.statements[0].outputs[0].lineage;
    assert!(lineage.contains(&ID), "{lineage:?}");
    assert_eq!(f.statements[0].outputs[0].direct, None);
    let f = one("SELECT id FROM v_unqualified");
    assert_eq!(f.outputs[0].direct, Some(ID));
}

/// A view's parsed definition is kept (`definitions`): decisions after the
/// first, in any order and under another search path, give the facts an
/// analysis that parses every definition afresh gives.
#[test]
fn views_read_again_give_the_facts_of_a_fresh_parse() {
    let statements = [
        "SELECT contact, id FROM v_users WHERE id > 3",
        "SELECT * FROM v_nested",
        "SELECT l FROM v_leak",
        "SELECT a FROM v_broken",
        "SELECT x FROM v_loop",
        "SELECT id FROM public.v_unqualified",
    ];
    let fresh = |sql, path| {
        crate::analysis::definitions::BYPASS.set(true);
        let facts = run_with(sql, path);
        crate::analysis::definitions::BYPASS.set(false);
        facts
    };
    for round in 0..2 {
        for path in [&["public"][..], &["app", "public"]] {
            for sql in statements {
                let facts = run_with(sql, path);
                assert_eq!(facts, fresh(sql, path), "round {round}, {path:?}: {sql}");
            }
        }
    }
}

#[test]
fn recursive_view_falls_back_instead_of_looping() {
    let f = one("SELECT x FROM v_loop");
    assert_eq!(f.outputs[0].lineage, set(&[PHONE]));
}

#[test]
fn cte_passes_columns_through() {
    let f = one("WITH c AS (SELECT email AS e, id FROM users) SELECT e FROM c WHERE id = 1");
    assert_eq!(f.outputs[0].direct, Some(EMAIL));
    assert_eq!(f.predicates, set(&[ID]));
}

#[test]
fn cte_column_aliases_rename() {
    let f = one("WITH c(x, y) AS (SELECT email, phone FROM users) SELECT y FROM c");
    assert_eq!(out_names(&f), ["y"]);
    assert_eq!(f.outputs[0].lineage, set(&[PHONE]));
}

#[test]
fn recursive_cte_reaches_a_fixed_point() {
    let f = one(
        "WITH RECURSIVE r(a, b) AS (SELECT id, 'x'::text FROM users \
         UNION ALL SELECT a + 1, b || email FROM r JOIN users ON users.id = r.a) \
         SELECT a, b FROM r",
    );
    assert_eq!(f.outputs[0].lineage, set(&[ID]));
    assert_eq!(f.outputs[1].lineage, set(&[EMAIL]));
    assert_eq!(f.outputs[1].direct, None);
}

#[test]
fn recursive_cte_lineage_propagates_across_rounds() {
    let f = one(
        "WITH RECURSIVE r(a, b, c) AS (SELECT 1, 2, email FROM users \
         UNION SELECT b, c, a FROM r) SELECT a FROM r",
    );
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL]));
}

#[test]
fn derived_tables() {
    let f = one("SELECT d.p FROM (SELECT phone AS p FROM users) AS d");
    assert_eq!(f.outputs[0].direct, Some(PHONE));
}

#[test]
fn lateral_subquery_sees_earlier_items() {
    let f = one("SELECT u.id, l.total FROM users u, \
         LATERAL (SELECT sum(o.amount_cents) AS total FROM orders o WHERE o.user_id = u.id) l");
    assert_eq!(f.outputs[1].lineage, set(&[O_AMOUNT]));
    assert_eq!(f.predicates, set(&[O_USER, ID]));
}

#[test]
fn lateral_on_the_right_of_a_join_sees_the_left_side() {
    let f = one(
        "SELECT e.x, s.n FROM users u JOIN LATERAL unnest(ARRAY[u.email]) AS e(x) ON true \
         LEFT JOIN LATERAL (SELECT count(*) AS n FROM orders o WHERE o.user_id = u.id) s ON true",
    );
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL]));
    assert!(f.outputs[1].lineage.is_empty());
    assert!(f.predicates.contains(&O_USER) && f.predicates.contains(&ID));
    let f = one("SELECT t.y FROM users u LEFT JOIN (orders o CROSS JOIN LATERAL (SELECT u.phone AS y) t) ON true");
    assert_eq!(f.outputs[0].lineage, set(&[PHONE]));
}

#[test]
fn non_lateral_subquery_cannot_see_siblings() {
    let e = err("SELECT * FROM users u, (SELECT u.email) d");
    assert!(matches!(e, AnalysisError::UnknownColumn(_)), "{e:?}");
}

#[test]
fn scalar_subquery_in_select_list() {
    let f = one("SELECT (SELECT max(email) FROM users) AS m");
    assert_eq!(out_names(&f), ["m"]);
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL]));
    assert_eq!(f.outputs[0].direct, None);
}

#[test]
fn exists_and_in_subqueries_are_predicates() {
    let f = one(
        "SELECT o.id FROM orders o WHERE EXISTS (SELECT u.email FROM users u WHERE u.id = o.user_id) \
         AND o.user_id IN (SELECT id FROM users WHERE phone IS NULL)",
    );
    assert_eq!(f.outputs[0].lineage, set(&[O_ID]));
    assert_eq!(f.predicates, set(&[EMAIL, ID, O_USER, PHONE]));
    let f = one("SELECT EXISTS (SELECT 1 FROM users WHERE email = 'a') AS e");
    assert!(f.outputs[0].lineage.is_empty());
    assert_eq!(f.predicates, set(&[EMAIL]));
}

#[test]
fn correlated_subquery_resolves_outer_columns() {
    let f = one(
        "SELECT (SELECT count(*) FROM orders o WHERE o.user_id = u.id) AS n, u.email FROM users u",
    );
    assert!(f.outputs[0].lineage.is_empty());
    assert_eq!(f.outputs[1].direct, Some(EMAIL));
    assert_eq!(f.predicates, set(&[O_USER, ID]));
    let f = one("SELECT (SELECT email) AS e FROM users");
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL]));
}

#[test]
fn inner_names_shadow_outer_ones() {
    let f = one("SELECT (SELECT id FROM orders LIMIT 1) FROM users");
    assert_eq!(f.outputs[0].lineage, set(&[O_ID]));
}

#[test]
fn union_merges_outputs_positionally() {
    let f = one("SELECT email, id FROM users UNION SELECT status, id FROM orders");
    assert_eq!(out_names(&f), ["email", "id"]);
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL, O_STATUS]));
    assert_eq!(f.outputs[1].lineage, set(&[ID, O_ID]));
    assert_eq!(f.outputs[0].direct, None);
    let f = one("SELECT email FROM users EXCEPT SELECT status FROM orders INTERSECT SELECT phone FROM users ORDER BY 1");
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL, O_STATUS, PHONE]));
}

#[test]
fn join_using_merges_columns_once() {
    let f = one("SELECT * FROM users u JOIN orders o USING (id)");
    assert_eq!(
        out_names(&f),
        [
            "id",
            "email",
            "full_name",
            "birth_date",
            "phone",
            "user_id",
            "amount_cents",
            "status"
        ]
    );
    assert_eq!(f.outputs[0].lineage, set(&[ID, O_ID]));
    assert_eq!(f.outputs[0].direct, Some(ID));
    let f = one("SELECT id, u.id, o.id FROM users u FULL JOIN orders o USING (id)");
    assert_eq!(f.outputs[0].direct, None);
    assert_eq!(f.outputs[1].direct, Some(ID));
    assert_eq!(f.outputs[2].direct, Some(O_ID));
}

#[test]
fn natural_join_uses_common_names() {
    let f = one("SELECT * FROM users NATURAL JOIN identity_documents");
    assert_eq!(f.outputs.len(), 5 + 3);
    assert_eq!(f.outputs[0].lineage, set(&[ID, c(DOCS, 1)]));
}

#[test]
fn join_on_sees_only_its_sides() {
    let e = err("SELECT 1 FROM users a, orders b JOIN identity_documents d ON d.user_id = a.id");
    assert!(matches!(e, AnalysisError::UnknownColumn(_)), "{e:?}");
}

#[test]
fn aliased_join_hides_inner_names() {
    let f = one("SELECT j.email FROM (users JOIN orders ON orders.user_id = users.id) AS j");
    assert_eq!(f.outputs[0].direct, Some(EMAIL));
    assert!(run("SELECT users.email FROM (users JOIN orders ON true) AS j").is_err());
}

#[test]
fn functions_and_casts_compute() {
    let f =
        one("SELECT lower(email), email::varchar(10), upper(full_name || phone) AS x FROM users");
    assert_eq!(out_names(&f), ["lower", "email", "x"]);
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL]));
    assert_eq!(f.outputs[0].direct, None);
    assert_eq!(f.outputs[1].direct, None);
    assert_eq!(f.outputs[2].lineage, set(&[NAME, PHONE]));
    assert_eq!(function_names(&f), ["lower", "upper"]);
}

#[test]
fn concatenation_and_operators() {
    let f = one("SELECT email || ' ' || full_name, id + 1, -id FROM users");
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL, NAME]));
    assert_eq!(f.outputs[1].lineage, set(&[ID]));
    assert_eq!(f.outputs[2].lineage, set(&[ID]));
    assert!(f.functions.is_empty());
}

#[test]
fn case_includes_conditions_and_results() {
    let f = one("SELECT CASE WHEN email LIKE '%@x' THEN full_name ELSE 'n/a' END FROM users");
    assert_eq!(out_names(&f), ["case"]);
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL, NAME]));
    let f = one(
        "SELECT CASE phone WHEN '1' THEN 1 END, coalesce(phone, email), nullif(id, 0) FROM users",
    );
    assert_eq!(f.outputs[0].lineage, set(&[PHONE]));
    assert_eq!(f.outputs[1].lineage, set(&[PHONE, EMAIL]));
    assert_eq!(out_names(&f)[1], "coalesce");
}

#[test]
fn whole_row_references_are_every_column() {
    for sql in [
        "SELECT u FROM users u",
        "SELECT row_to_json(u) FROM users u",
        "SELECT to_jsonb(u.*) FROM users u",
        "SELECT ROW(u.*) FROM users u",
        "SELECT u::text FROM users u",
        "SELECT json_agg(u) FROM users u",
        "SELECT count(u.*) FROM users u",
        "SELECT (u).email || (u).phone FROM users u",
        "SELECT users FROM users",
        "SELECT t FROM (SELECT * FROM users) t",
    ] {
        let f = one(sql);
        let expected: BTreeSet<ColumnId> = if sql.contains("(u).email") {
            set(&[EMAIL, PHONE])
        } else {
            set(&ALL_USERS)
        };
        assert_eq!(f.outputs[0].lineage, expected, "{sql}");
        assert_eq!(f.outputs[0].direct, None, "{sql}");
    }
}

#[test]
fn row_constructor_is_not_a_function() {
    let f = one("SELECT ROW(u.email, 1), ARRAY[u.phone] FROM users u");
    assert!(f.functions.is_empty());
    assert_eq!(out_names(&f), ["row", "array"]);
}

#[test]
fn row_to_json_through_a_view_definition() {
    let f = one("SELECT row_to_json(v) FROM v_users v");
    assert_eq!(f.outputs[0].lineage, set(&[ID, EMAIL]));
    assert_eq!(function_names(&f), ["row_to_json"]);
}

#[test]
fn aggregates_carry_their_arguments() {
    let f = one(
        "SELECT count(*), count(email), string_agg(email, ',' ORDER BY full_name), \
         array_agg(DISTINCT phone), max(birth_date) FROM users GROUP BY id HAVING count(*) > 1",
    );
    let l = lineages(&f);
    assert!(l[0].is_empty());
    assert_eq!(l[1], set(&[EMAIL]));
    assert_eq!(l[2], set(&[EMAIL]));
    assert_eq!(l[3], set(&[PHONE]));
    assert_eq!(l[4], set(&[BIRTH]));
    assert_eq!(f.predicates, set(&[NAME, ID]));
    assert_eq!(
        function_names(&f),
        ["array_agg", "count", "max", "string_agg"]
    );
}

#[test]
fn ordered_set_aggregates_return_their_ordered_values() {
    let f = one("SELECT mode() WITHIN GROUP (ORDER BY email) FROM users");
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL]));
}

#[test]
fn window_functions_partition_and_order_are_predicates() {
    let f = one(
        "SELECT lag(email) OVER (PARTITION BY full_name ORDER BY birth_date), \
         row_number() OVER w FROM users WINDOW w AS (ORDER BY phone)",
    );
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL]));
    assert!(f.outputs[1].lineage.is_empty());
    assert_eq!(f.predicates, set(&[NAME, BIRTH, PHONE]));
}

#[test]
fn filter_clause_is_a_predicate() {
    let f = one("SELECT count(*) FILTER (WHERE email LIKE 'a%'), sum(id) FILTER (WHERE phone IS NULL) FROM users");
    assert!(f.outputs[0].lineage.is_empty());
    assert_eq!(f.outputs[1].lineage, set(&[ID]));
    assert_eq!(f.predicates, set(&[EMAIL, PHONE]));
}

#[test]
fn set_returning_functions_in_from() {
    let f = one(
        "SELECT g, x.n FROM generate_series(1, 3) g, unnest(ARRAY[1]) WITH ORDINALITY AS x(v, n)",
    );
    assert_eq!(out_names(&f), ["g", "n"]);
    assert!(f.outputs[0].lineage.is_empty());
    let f = one("SELECT t.e FROM users u, LATERAL unnest(ARRAY[u.email, u.phone]) AS t(e)");
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL, PHONE]));
    let f =
        one("SELECT * FROM users u, jsonb_to_recordset(u.full_name::jsonb) AS r(a int, b text)");
    assert_eq!(f.outputs.len(), 7);
    assert_eq!(f.outputs[6].lineage, set(&[NAME]));
    let f = one("SELECT key, value FROM users u, json_each(row_to_json(u))");
    assert_eq!(f.outputs[1].lineage, set(&ALL_USERS));
    let f = one("SELECT * FROM generate_series(1, (SELECT max(id) FROM users))");
    assert_eq!(out_names(&f), ["generate_series"]);
    assert_eq!(f.outputs[0].lineage, set(&[ID]));
}

#[test]
fn unknown_table_function_columns_resolve_conservatively() {
    let f = one("SELECT r.anything FROM users u, LATERAL leak(u.email) r");
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL]));
    assert!(matches!(
        err("SELECT * FROM leak('x')"),
        AnalysisError::Unsupported(_)
    ));
    assert!(matches!(
        err("SELECT email FROM users u, leak('x') r"),
        AnalysisError::Unsupported(_)
    ));
}

#[test]
fn values_lists() {
    let f = one("SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(n, s)");
    assert_eq!(out_names(&f), ["n", "s"]);
    let f = one("VALUES (1), (2)");
    assert_eq!(out_names(&f), ["column1"]);
    let f = one("SELECT v.x FROM users u, LATERAL (VALUES (u.email), (u.phone)) v(x)");
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL, PHONE]));
}

#[test]
fn special_syntax_forms() {
    let f = one(
        "SELECT EXTRACT(year FROM birth_date), substring(email FROM 1 FOR 3), trim(both ' ' from full_name), \
         position('@' in email), email COLLATE \"C\", birth_date AT TIME ZONE 'UTC', \
         email IS DISTINCT FROM phone, id BETWEEN 1 AND 2, email ILIKE 'x', id IN (1, 2), \
         (ARRAY[email, phone])[1], full_name::jsonb -> 'a' ->> 'b', interval '1 day', DATE '2020-01-01' FROM users",
    );
    let l = lineages(&f);
    assert_eq!(l[0], set(&[BIRTH]));
    assert_eq!(l[1], set(&[EMAIL]));
    assert_eq!(l[2], set(&[NAME]));
    assert_eq!(l[3], set(&[EMAIL]));
    assert_eq!(l[4], set(&[EMAIL]));
    assert_eq!(l[6], set(&[EMAIL, PHONE]));
    assert_eq!(l[10], set(&[EMAIL, PHONE]));
    assert_eq!(l[11], set(&[NAME]));
    assert!(l[12].is_empty() && l[13].is_empty());
    assert_eq!(
        function_names(&f),
        ["btrim", "extract", "position", "substring"]
    );
    assert_eq!(f.outputs[0].name, "extract");
}

#[test]
fn parameters_have_no_lineage() {
    let f = one("SELECT $1::text, id FROM users WHERE id = ANY($2) LIMIT $3 OFFSET $4");
    assert!(f.outputs[0].lineage.is_empty());
    assert_eq!(f.predicates, set(&[ID]));
}

#[test]
fn order_group_limit_are_predicates() {
    let f = one(
        "SELECT id AS k, count(*) FROM users WHERE phone <> '' GROUP BY 1 ORDER BY k, email DESC \
         LIMIT (SELECT count(*) FROM orders WHERE status = 'x')",
    );
    assert_eq!(f.predicates, set(&[ID, PHONE, EMAIL, O_STATUS]));
    let f = one("SELECT DISTINCT ON (phone) id FROM users ORDER BY phone, id");
    assert_eq!(f.predicates, set(&[PHONE, ID]));
    let f = one("SELECT full_name AS n FROM users GROUP BY n");
    assert_eq!(f.predicates, set(&[NAME]));
}

#[test]
fn partitions_are_read_with_their_parent() {
    let f = one("SELECT payload FROM events");
    assert_eq!(f.reads, [EVENTS, EVENTS_2024].into());
    assert_eq!(f.outputs[0].direct, Some(c(EVENTS, 3)));
    let f = one("SELECT payload FROM ONLY events");
    assert_eq!(f.reads, [EVENTS].into());
}

#[test]
fn identifiers_fold_unless_quoted() {
    let f = one("SELECT EMAIL, \"U\".Phone FROM USERS \"U\"");
    assert_eq!(out_names(&f), ["email", "phone"]);
    assert_eq!(f.outputs[1].direct, Some(PHONE));
    assert!(matches!(
        err("SELECT \"Email\" FROM users"),
        AnalysisError::UnknownColumn(_)
    ));
    assert!(matches!(
        err("SELECT 1 FROM \"Users\""),
        AnalysisError::UnknownRelation(_)
    ));
    let long = format!("SELECT email AS {} FROM users", "a".repeat(80));
    assert_eq!(one(&long).outputs[0].name.len(), 63);
}

#[test]
fn search_path_resolution() {
    let f = run_with("SELECT * FROM users", &["app", "public"]).unwrap();
    assert_eq!(f.statements[0].reads, [APP_USERS].into());
    assert_eq!(f.statements[0].outputs.len(), 2);
    let f = run_with("SELECT email FROM public.users", &["app", "public"]).unwrap();
    assert_eq!(f.statements[0].outputs[0].direct, Some(EMAIL));
    let f = one("SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace");
    assert_eq!(f.reads, [PG_CLASS, PG_NAMESPACE].into());
    assert!(matches!(
        run_with("SELECT * FROM orders", &["app"]),
        Err(AnalysisError::UnknownRelation(_))
    ));
}

#[test]
fn unknown_names_are_errors() {
    assert_eq!(
        err("SELECT * FROM nope"),
        AnalysisError::UnknownRelation("nope".into())
    );
    assert_eq!(
        err("SELECT nope FROM users"),
        AnalysisError::UnknownColumn("nope".into())
    );
    assert_eq!(
        err("SELECT u.nope FROM users u"),
        AnalysisError::UnknownColumn("u.nope".into())
    );
    assert!(matches!(
        err("SELECT x.id FROM users u"),
        AnalysisError::UnknownColumn(_)
    ));
}

#[test]
fn ambiguous_references_are_errors() {
    let e = err("SELECT id FROM users, orders");
    assert!(
        matches!(&e, AnalysisError::Unsupported(m) if m.contains("ambiguous")),
        "{e:?}"
    );
    assert!(run("SELECT users.id FROM users, orders").is_ok());
}

#[test]
fn cte_shadows_tables_and_scopes_end() {
    let f = one("WITH users AS (SELECT status AS email FROM orders) SELECT email FROM users");
    assert_eq!(f.outputs[0].lineage, set(&[O_STATUS]));
    let f = one("SELECT (WITH x AS (SELECT 1 AS a) SELECT a FROM x), email FROM users");
    assert_eq!(f.outputs[1].direct, Some(EMAIL));
}

#[test]
fn matview_is_a_base_relation() {
    let f = one("SELECT n FROM mv_user_orders");
    assert_eq!(f.outputs[0].direct, Some(c(MV_ORDERS, 2)));
    assert_eq!(f.reads, [MV_ORDERS].into());
}

#[test]
fn functions_recorded_with_user_defined_flag() {
    let f =
        one("SELECT leak(email), public.leak(phone), pg_catalog.lower(email), now() FROM users");
    let refs: Vec<(Option<&str>, &str, bool)> = f
        .functions
        .iter()
        .map(|r| (r.schema.as_deref(), r.name.as_str(), r.user_defined))
        .collect();
    assert_eq!(
        refs,
        [
            (None, "leak", true),
            (None, "now", false),
            (Some("pg_catalog"), "lower", false),
            (Some("public"), "leak", true),
        ]
    );
    let f = one("SELECT LEAK(email) FROM users WHERE \"leak\"(phone) IS NULL");
    assert_eq!(f.functions.len(), 1);
}

#[test]
fn json_object_keys_are_lineage_but_parameter_names_are_not() {
    let f = one("SELECT json_object(email : phone), json_build_object('k', full_name) FROM users");
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL, PHONE]));
    assert_eq!(f.outputs[1].lineage, set(&[NAME]));
    let f = one("SELECT make_interval(days => id) FROM users");
    assert_eq!(f.outputs[0].lineage, set(&[ID]));
}

#[test]
fn system_columns_resolve_without_lineage() {
    let f = one("SELECT ctid, u.xmin, tableoid::regclass FROM users u");
    assert!(f.output_lineage().is_empty());
    assert!(run("SELECT ctid FROM v_users").is_err());
    assert!(matches!(
        err("SELECT ctid FROM users, orders"),
        AnalysisError::Unsupported(_)
    ));
}

#[test]
fn custom_operators_are_refused() {
    assert!(matches!(
        err("SELECT email <<< 'x' FROM users"),
        AnalysisError::Unsupported(_)
    ));
    assert!(matches!(
        err("SELECT 1 OPERATOR(public.+) 2"),
        AnalysisError::Unsupported(_)
    ));
    assert!(run("SELECT 1 FROM pg_class WHERE relname OPERATOR(pg_catalog.~) '^x$'").is_ok());
    assert!(run("SELECT id FROM users ORDER BY email USING <").is_ok());
    assert!(matches!(
        err("SELECT id FROM users ORDER BY email USING OPERATOR(public.<)"),
        AnalysisError::Unsupported(_)
    ));
}

/// Row counts that depend on classified values are predicates: a set-
/// returning function's arguments (in FROM or in the select list), and the
/// comparisons of DISTINCT and of every set operation but UNION ALL.
/// Without this, `count(*)` rebuilt values under
/// `classified_predicates = false`.
#[test]
fn row_counts_decided_by_classified_values_are_predicates() {
    for sql in [
        "SELECT count(*) FROM users u, generate_series(1, ascii(u.email)) g",
        "SELECT p, count(*) FROM generate_series(1, 30) p, users u, \
         generate_series(1, ascii(substr(u.email, p, 1))) g GROUP BY p",
        "SELECT count(*) FROM users u, unnest(string_to_array(u.email, NULL)) x",
        "SELECT max(o) FROM users u, regexp_split_to_table(u.email, '') WITH ORDINALITY t(x, o)",
        "SELECT count(*) FROM (SELECT generate_series(1, ascii(email)) FROM users) s",
        "SELECT count(*) FROM (SELECT pg_catalog.unnest(string_to_array(email, NULL)) FROM users) s",
        "SELECT (SELECT count(*) FROM regexp_split_to_table(email, '')) FROM users",
        "SELECT count(*) FROM (SELECT ascii(email) FROM users INTERSECT SELECT 122) s",
        "SELECT count(*) FROM (SELECT ascii(email) FROM users UNION SELECT 122) s",
        "SELECT count(*) FROM (SELECT 122 EXCEPT ALL SELECT ascii(email) FROM users) s",
        "SELECT count(*) FROM (SELECT DISTINCT ascii(email) FROM users) s",
        "WITH RECURSIVE r(x) AS (SELECT ascii(email) FROM users UNION SELECT x FROM r) \
         SELECT count(*) FROM r",
    ] {
        let f = one(sql);
        assert!(f.output_lineage().is_empty(), "{sql}");
        assert!(f.predicates.contains(&EMAIL), "{sql}: {:?}", f.predicates);
    }
    // UNION ALL keeps every row: no comparison.
    let f = one("SELECT count(*) FROM (SELECT email FROM users UNION ALL SELECT 'x') s");
    assert!(!f.predicates.contains(&EMAIL));
}

/// A value computed from a classified column and never returned is
/// evaluated only for its effect (whether the statement fails): a
/// predicate. Returned, or only explained, it is not one.
#[test]
fn computed_values_nobody_returns_are_predicates() {
    for sql in [
        "WITH x AS MATERIALIZED (SELECT 1 / (ascii(email) - 122) AS n FROM users) SELECT count(*) FROM x",
        "SELECT count(*) FROM (SELECT id, email::int AS n FROM users OFFSET 0) s",
        "SELECT count(*) FROM users u, LATERAL (SELECT u.email::int) x",
        "SELECT count(*) FROM (VALUES (1)) v, LATERAL (SELECT lower(email) FROM users) x",
        "EXPLAIN ANALYZE SELECT email::int FROM users",
        "SELECT id FROM (SELECT id, lower(email) AS e FROM users) s",
    ] {
        let f = one(sql);
        assert!(f.predicates.contains(&EMAIL), "{sql}: {:?}", f.predicates);
    }
    for sql in [
        "SELECT lower(email) FROM users",
        "SELECT e FROM (SELECT lower(email) AS e FROM users) s",
        "WITH x AS (SELECT email || '' AS e FROM users) SELECT upper(e) FROM x",
        "SELECT id FROM (SELECT id, email FROM users) s",
        "EXPLAIN SELECT lower(email) FROM users",
        "SELECT count(*) FROM v_users",
        "SELECT id FROM v_users",
    ] {
        let f = one(sql);
        assert!(!f.predicates.contains(&EMAIL), "{sql}: {:?}", f.predicates);
    }
}

/// A recursive term that computes a value from data can accumulate every
/// row into one (`acc || email`): it is recorded as the gathering
/// `array` constructor, which the row limit rule refuses with classified
/// outputs. A counter computed from constants is not.
#[test]
fn recursive_accumulation_gathers_like_array() {
    let f = one("WITH RECURSIVE r(i, acc) AS (SELECT 0, ''::text UNION ALL \
         SELECT i + 1, acc || (SELECT email FROM users WHERE id = i + 1) FROM r WHERE i < 60) \
         SELECT acc FROM r ORDER BY i DESC LIMIT 1");
    assert_eq!(f.outputs[0].lineage, set(&[EMAIL]));
    assert!(
        f.functions.iter().any(|c| c.name == "array"),
        "{:?}",
        f.functions
    );
    let f = one(
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 9) SELECT n FROM r",
    );
    assert!(!f.functions.iter().any(|c| c.name == "array"));
}

/// An arithmetic aggregate over computed inputs can pack every row into
/// one number; over a column as it is, it cannot.
#[test]
fn arithmetic_packing_gathers_like_array() {
    let f = one(
        "SELECT sum(ascii(substr(email, p, 1))::numeric * power(256::numeric, (id * 26 + p)::numeric)) \
         FROM users, generate_series(1, 26) p",
    );
    assert!(
        f.functions.iter().any(|c| c.name == "array"),
        "{:?}",
        f.functions
    );
    let f = one("SELECT bit_or(ascii(email)::bigint << id) OVER () FROM users");
    assert!(f.functions.iter().any(|c| c.name == "array"));
    let f = one("SELECT sum(id), avg(id) FROM users");
    assert!(!f.functions.iter().any(|c| c.name == "array"));
    // The statistics built on sums pack rows as well.
    for sql in [
        "SELECT regr_avgx(0, ascii(substr(email, 1, 1)) * power(256, id - 1)) FROM users",
        "SELECT var_pop(ascii(email)::numeric * power(256::numeric, id)) FROM users",
        "SELECT pg_catalog.stddev_samp(ascii(email) * 2 ^ id) FROM users",
        "SELECT covar_pop(id, ascii(email) * 2 ^ id) FROM users",
    ] {
        let f = one(sql);
        assert!(f.functions.iter().any(|c| c.name == "array"), "{sql}");
    }
    let f = one("SELECT stddev(id), var_pop(id), regr_avgx(id, id) FROM users");
    assert!(!f.functions.iter().any(|c| c.name == "array"));
}

/// One row returned can carry values of as many rows of a relation as the
/// statement scans it: each reference in FROM, each scalar subquery, each
/// reference to a CTE or view that reads it. Found by a red-team round:
/// 50 scalar subqueries in the select list made 20 rows carry 1,000
/// emails under a limit of 20 rows.
#[test]
fn scans_count_every_reference() {
    let scans = |sql: &str| one(sql).scans.get(&USERS).copied().unwrap_or(0);
    assert_eq!(scans("SELECT email FROM users"), 1);
    assert_eq!(scans("SELECT id FROM orders"), 0);
    assert_eq!(
        scans("SELECT a.email, b.email FROM users a JOIN users b ON b.id = a.id + 1"),
        2
    );
    assert_eq!(
        scans(
            "SELECT (SELECT email FROM users x WHERE x.id = g), \
                    (SELECT email FROM users x WHERE x.id = g + 1), \
                    (SELECT email FROM users x WHERE x.id = g + 2) \
             FROM generate_series(1, 20) g"
        ),
        3
    );
    assert_eq!(
        scans("WITH u AS (SELECT id, email FROM users) SELECT a.email, b.email FROM u a, u b"),
        2,
        "a CTE's scans count at each reference"
    );
    assert_eq!(
        scans("WITH u AS (SELECT email FROM users) SELECT 1"),
        0,
        "a CTE never referenced returns nothing of it"
    );
    assert_eq!(
        scans("SELECT a.contact, b.contact FROM v_users a, v_users b"),
        2,
        "a view's scans count at each reference"
    );
    assert_eq!(scans("SELECT contact FROM v_nested"), 1);
    assert!(
        scans(
            "WITH RECURSIVE r(n, e1, e2, e3) AS (SELECT 1, email, NULL, NULL FROM users WHERE id = 1 \
             UNION ALL SELECT n + 1, (SELECT email FROM users x WHERE x.id = n + 1), e1, e2 FROM r WHERE n < 9) \
             SELECT e1, e2, e3 FROM r"
        ) >= 3,
        "a recursive CTE shifting values from row to row"
    );
}

/// Window calls and aggregates (but counts) bring other rows' values into
/// the row returned: one more scan of their FROM list each.
#[test]
fn window_and_aggregate_calls_count_as_scans() {
    let scans = |sql: &str| one(sql).scans.get(&USERS).copied().unwrap_or(0);
    assert_eq!(
        scans(
            "SELECT id, lag(email, 1) OVER w, lag(email, 2) OVER w, lead(email) OVER w \
             FROM users WINDOW w AS (ORDER BY id)"
        ),
        4
    );
    assert_eq!(
        scans(
            "SELECT max(CASE WHEN id = 1 THEN email END), max(CASE WHEN id = 2 THEN email END) \
             FROM users"
        ),
        3
    );
    assert_eq!(
        scans(
            "SELECT range_intersect_agg(daterange(birth_date, birth_date, '[]')) FILTER (WHERE id = 1), \
                    range_intersect_agg(daterange(birth_date, birth_date, '[]')) FILTER (WHERE id = 2) \
             FROM users"
        ),
        3,
        "every aggregate but the counts"
    );
    assert_eq!(scans("SELECT count(*), row_number() OVER () FROM users"), 1);
    assert_eq!(scans("SELECT count(email) FROM users"), 1);
}

/// A window call over a subquery whose rows already carry values of
/// several rows brings all of them: nested layers multiply (found by a
/// red-team round: ten layers of `x || lag(x, 2^k)` put 1,024 rows into
/// one, counted as 11).
#[test]
fn nested_window_layers_multiply() {
    let scans = |sql: &str| one(sql).scans.get(&USERS).copied().unwrap_or(0);
    let mut sql = "SELECT id, email AS x FROM users".to_owned();
    for k in 0..4 {
        sql = format!(
            "SELECT id, x || coalesce(lag(x, {}) OVER (ORDER BY id), '-') AS x FROM ({sql}) s{k}",
            1 << k
        );
    }
    assert_eq!(scans(&sql), 16);
    assert_eq!(
        scans("SELECT lag(email, 1) OVER w, lag(email, 2) OVER w FROM users WINDOW w AS (ORDER BY id)"),
        3,
        "calls side by side add"
    );
}
