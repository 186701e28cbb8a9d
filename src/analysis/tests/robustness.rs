//! Odd, truncated and deeply nested input: analysis must return, never
//! panic or overflow the stack (run on a 2 MiB thread, like a runtime
//! worker).

use super::*;

/// Runs `f` on a thread with a 2 MiB stack.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .expect("spawn");
    assert!(handle.join().is_ok(), "analysis panicked");
}

const STATEMENTS: &[&str] = &[
    "SELECT u.email, (SELECT count(*) FROM orders o WHERE o.user_id = u.id) FROM users u WHERE u.id = $1",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
    "INSERT INTO orders (status) SELECT email FROM users ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status RETURNING *",
    "UPDATE orders SET status = u.email FROM users u WHERE u.id = orders.user_id RETURNING orders.*",
    "COPY (SELECT row_to_json(u) FROM users u) TO STDOUT WITH (FORMAT csv)",
    "SELECT * FROM users u JOIN orders o USING (id) NATURAL JOIN identity_documents, LATERAL unnest(ARRAY[u.email]) x",
    "DECLARE c CURSOR FOR SELECT string_agg(email, ',' ORDER BY id) FILTER (WHERE id > 1) OVER (PARTITION BY phone) FROM users",
    "SELECT CASE WHEN a.x THEN 1 ELSE 2 END FROM (VALUES (true)) a(x) UNION SELECT 3 ORDER BY 1 LIMIT 1",
    "PREPARE p (int) AS SELECT contact, a FROM v_users JOIN v_broken ON true WHERE id = $1; EXECUTE p(1); DEALLOCATE p",
    "MERGE INTO orders o USING users u ON o.user_id = u.id WHEN MATCHED THEN UPDATE SET status = u.phone",
];

const ODD: &[&str] = &[
    "",
    ";",
    ";;;",
    "--",
    "/*",
    "/* unterminated",
    "*/",
    "'",
    "\"",
    "$$",
    "$a$ x $b$",
    "E'\\",
    "U&'\\",
    "(",
    ")",
    "((((",
    "))))",
    "SELECT",
    "SELECT (",
    "SELECT )",
    "SELECT ,",
    "SELECT *",
    "SELECT * FROM",
    "SELECT 1 FROM users WHERE",
    "SELECT 1 +",
    "SELECT - - - 1",
    "SELECT $",
    "SELECT $0",
    "SELECT $99999999999999999999",
    "SELECT 1e999999",
    "SELECT 'a' 'b'",
    "SELECT \"\"",
    "SELECT \"a\"\"b\" FROM users",
    "SELECT .1.2.3",
    "SELECT users.*.* FROM users",
    "SELECT *.* FROM users",
    "SELECT u.* FROM users",
    "SELECT a.b.c.d.e FROM users",
    "SELECT 1 FROM a.b.c.d",
    "SELECT (u).* FROM users u",
    "SELECT (1,2).f",
    "SELECT ARRAY[",
    "SELECT ARRAY[1][2]",
    "SELECT x[1:2:3] FROM users",
    "SELECT email[1] FROM users",
    "SELECT count(*)(*)",
    "SELECT f()()",
    "SELECT * FROM users JOIN",
    "SELECT * FROM users JOIN orders",
    "SELECT * FROM users JOIN orders USING (nope)",
    "SELECT * FROM users NATURAL JOIN users",
    "SELECT * FROM (SELECT 1, 2) t(a, b, c)",
    "SELECT * FROM users u(a,b,c,d,e,f)",
    "WITH x AS (SELECT 1) SELECT * FROM x, x",
    "WITH RECURSIVE x AS (SELECT * FROM x) SELECT 1",
    "WITH RECURSIVE x(a) AS (SELECT 1 UNION SELECT a, a FROM x) SELECT 1",
    "INSERT INTO",
    "INSERT INTO users",
    "INSERT INTO users VALUES",
    "INSERT INTO users SELECT",
    "UPDATE users SET",
    "UPDATE users SET nope = 1",
    "DELETE FROM",
    "COPY",
    "COPY users",
    "COPY users TO",
    "COPY users FROM STDOUT",
    "COPY users TO STDIN",
    "COPY (SELECT 1) FROM STDIN",
    "FETCH",
    "MOVE",
    "FETCH 'x'",
    "CLOSE",
    "PREPARE",
    "PREPARE p AS",
    "EXECUTE",
    "EXPLAIN",
    "EXPLAIN EXPLAIN SELECT 1",
    "SET",
    "SET x",
    "SET x =",
    "RESET",
    "SHOW",
    "BEGIN; COMMIT; ROLLBACK",
    "DO",
    "CREATE",
    "ALTER",
    "DROP",
    "CREATE OR REPLACE",
    "TABLE",
    "TABLE nope",
    "VALUES",
    "VALUES ()",
    "VALUES (1), (1, 2)",
    "SELECT 1 UNION SELECT 1, 2",
    "SELECT 1 ORDER BY 5",
    "SELECT 1 GROUP BY 0",
    "SELECT email FROM users GROUP BY -1",
    "SELECT \u{0}",
    "SELECT '\u{0}'",
    "SELECT 'ü' AS \"ü\"",
    "SELECT 1 AS \u{1F600}",
    "\u{feff}SELECT 1",
    "SELECT\t1\r\n",
    "select 1 from users where email = any(array(select 1))",
    "SELECT * FROM generate_series(1, 2) WITH ORDINALITY",
    "SELECT * FROM unnest() u",
    "SELECT * FROM ROWS FROM (generate_series(1,2))",
    "SELECT xmlelement(name foo)",
    "SELECT 1 OPERATOR(",
    "SELECT interval",
    "SELECT DATE",
    "SELECT CAST(",
    "SELECT CAST(1 AS)",
    "SELECT 1::",
    "SELECT EXTRACT(",
    "SELECT * FROM users TABLESAMPLE",
    "SELECT * FROM users FOR UPDATE OF nope",
    "LOCK",
    "TRUNCATE",
    "LISTEN",
    "NOTIFY",
    "CALL",
    "CALL p(",
    "GRANT",
    "REVOKE",
    "VACUUM (",
    "ANALYZE (",
    "CHECKPOINT x",
    "SELECT 1; DO $$ x $$; SELECT 2",
    "SELECT * FROM v_loop, v_loop l2",
    "SELECT * FROM users AS",
    "SELECT * FROM (SELECT * FROM (SELECT * FROM (SELECT 1) a) b) c",
    "SELECT (SELECT (SELECT (SELECT 1)))",
    "\\d users",
    "\\copy users to stdout",
    "@@@@",
    "###",
    "€€€",
    "SELECT 1 /* nested /* comment */ still */",
];

#[test]
fn odd_strings_never_panic() {
    on_small_stack(|| {
        for sql in ODD {
            let _ = run(sql);
        }
    });
}

#[test]
fn every_prefix_of_real_statements_returns() {
    on_small_stack(|| {
        for full in STATEMENTS {
            for (i, _) in full.char_indices() {
                let _ = run(&full[..i]);
            }
            assert!(run(full).is_ok(), "{full}");
        }
    });
}

#[test]
fn shuffled_tokens_never_panic() {
    on_small_stack(|| {
        let tokens: Vec<&str> = STATEMENTS
            .iter()
            .flat_map(|s| s.split_whitespace())
            .chain([
                "(", ")", ",", "*", ";", "'", "\"", "$$", "::", "[", "]", ".",
            ])
            .collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..600 {
            let mut sql = String::new();
            let len = (seed % 24) as usize + 1;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let pick = (seed % tokens.len() as u64) as usize;
                sql.push_str(tokens.get(pick).copied().unwrap_or(""));
                sql.push(' ');
            }
            let _ = run(&sql);
        }
    });
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    on_small_stack(|| {
        let cases = [
            format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000)),
            format!("SELECT {}", vec!["1"; 100_000].join(" + ")),
            format!(
                "SELECT email FROM users WHERE {}",
                vec!["id = 1"; 30_000].join(" OR ")
            ),
            format!("SELECT x{} FROM users", "::text".repeat(20_000)),
            format!("SELECT email{} FROM users", "[1]".repeat(20_000)),
            format!("SELECT 1{}", " UNION SELECT 1".repeat(20_000)),
            format!("SELECT {}1", "NOT ".repeat(10_000)),
            format!("SELECT {}1", "- ".repeat(10_000)),
            format!("SELECT {}1{}", "lower(".repeat(3000), ")".repeat(3000)),
            format!("SELECT {}1{}", "(SELECT ".repeat(3000), ")".repeat(3000)),
            format!(
                "SELECT * FROM {}users{}",
                "(SELECT * FROM ".repeat(3000),
                ") t".repeat(3000)
            ),
            format!(
                "SELECT {} 1 {}",
                "CASE WHEN true THEN".repeat(3000),
                " END".repeat(3000)
            ),
            format!("SELECT 1 FROM users{}", " JOIN orders ON true".repeat(3000)),
            format!("SELECT ARRAY{}1{}", "[".repeat(5000), "]".repeat(5000)),
            format!(
                "SELECT email FROM users WHERE {}",
                vec!["email LIKE 'a'"; 3000].join(" AND ")
            ),
            format!("SELECT email{} FROM users", " COLLATE \"C\"".repeat(3000)),
            format!("{}SELECT 1", "EXPLAIN ".repeat(3000)),
            format!("{}SELECT 1", "PREPARE p AS ".repeat(3000)),
            format!("{}SELECT 1", "PREPARE p AS EXPLAIN ".repeat(60)),
            format!(
                "SELECT 1 FROM {}users{}",
                "(users JOIN ".repeat(60),
                " USING (id))".repeat(60)
            ),
            format!(
                "SELECT 1 FROM {}users{}",
                "(".repeat(60),
                " JOIN orders ON true)".repeat(60)
            ),
            format!(
                "SELECT 1 FROM {}users{}",
                "(SELECT * FROM (".repeat(30),
                " JOIN orders ON true) x)".repeat(30)
            ),
            format!(
                "{}SELECT 1",
                "CREATE RULE r AS ON INSERT TO users DO ".repeat(60)
            ),
            format!(
                "{}SELECT 1{}",
                "IF true THEN ".repeat(60),
                " END IF".repeat(60)
            ),
        ];
        for sql in &cases {
            let _ = run(sql);
        }
    });
}

#[test]
fn moderate_nesting_is_analyzed() {
    on_small_stack(|| {
        let or_chain = format!(
            "SELECT email FROM users WHERE {}",
            vec!["id = $1"; 1500].join(" OR ")
        );
        assert!(run(&or_chain).is_ok());
        let unions = format!(
            "SELECT email FROM users{}",
            " UNION SELECT phone FROM users".repeat(300)
        );
        let f = run(&unions).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.statements[0].outputs.len(), 1);
        let nested = format!(
            "SELECT {}email{} FROM users",
            "lower(".repeat(20),
            ")".repeat(20)
        );
        assert!(run(&nested).is_ok());
        let in_list = format!(
            "SELECT 1 FROM users WHERE id IN ({})",
            (0..10_000)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(run(&in_list).is_ok());
    });
}

#[test]
fn tmp_stack_probe() {
    let cases = [
        format!("SELECT email{} FROM users", "::text".repeat(170)),
        format!("SELECT email{} FROM users", " COLLATE \"C\"".repeat(170)),
        format!(
            "SELECT {}email{} FROM users",
            "lower(".repeat(45),
            ")".repeat(45)
        ),
        format!(
            "SELECT * FROM {}users{}",
            "(SELECT * FROM ".repeat(20),
            ") t".repeat(20)
        ),
        format!("SELECT {}1{}", "(SELECT ".repeat(20), ")".repeat(20)),
        "SELECT x FROM v199".to_owned(),
        "SELECT x FROM v60".to_owned(),
    ];
    let kb: usize = std::env::var("PROBE_KB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    let only: usize = std::env::var("PROBE_CASE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(99);
    for (i, sql) in cases
        .iter()
        .enumerate()
        .filter(|(i, _)| only == 99 || *i == only)
    {
        let sql = sql.clone();
        let ok = std::thread::Builder::new()
            .stack_size(kb * 1024)
            .spawn(move || {
                if i >= 5 {
                    return view_chain(&sql);
                }
                run(&sql).map(|_| ()).map_err(|e| e.to_string())
            })
            .unwrap()
            .join();
        eprintln!("{kb}K case {i}: {:?}", ok.map(|r| r.err()));
    }
}

fn view_chain(sql: &str) -> Result<(), String> {
    use crate::catalog::{Column, RelKind, Relation};
    let mut rels = Vec::new();
    rels.push(Relation {
        oid: 1,
        schema: "public".into(),
        name: "t".into(),
        kind: RelKind::Table,
        columns: vec![Column {
            attnum: 1,
            name: "x".into(),
            type_oid: 25,
            type_name: "text".into(),
            typmod: -1,
        }],
        parents: vec![],
        definition: None,
        depends_on: Default::default(),
    });
    for i in 0..200u32 {
        let from = if i == 0 {
            "t".to_owned()
        } else {
            format!("v{}", i - 1)
        };
        rels.push(Relation {
            oid: 100 + i,
            schema: "public".into(),
            name: format!("v{i}"),
            kind: RelKind::View,
            columns: vec![Column {
                attnum: 1,
                name: "x".into(),
                type_oid: 25,
                type_name: "text".into(),
                typmod: -1,
            }],
            parents: vec![],
            definition: Some(format!(
                " SELECT lower({from}.x) AS x FROM {from} WHERE {from}.x <> ''::text;"
            )),
            depends_on: [ColumnId {
                rel: if i == 0 { 1 } else { 99 + i },
                attnum: 1,
            }]
            .into(),
        });
    }
    let catalog = Catalog::new(rels, Vec::<(String, String)>::new());
    let path = vec!["public".to_owned()];
    let f = analyze(
        sql,
        &Context {
            catalog: &catalog,
            search_path: &path,
        },
    )
    .map_err(|e| e.to_string())?;
    Err(format!("{:?}", f.statements[0].outputs[0].lineage))
}

/// A catalog with `t(x)` and views `v0` .. `v199`, each over the previous.
fn view_chain_catalog() -> Catalog {
    let column = || Column {
        attnum: 1,
        name: "x".to_owned(),
        type_oid: 25,
        type_name: "text".to_owned(),
        typmod: -1,
    };
    let mut rels = vec![Relation {
        oid: 1,
        schema: "public".to_owned(),
        name: "t".to_owned(),
        kind: RelKind::Table,
        columns: vec![column()],
        parents: Vec::new(),
        definition: None,
        depends_on: BTreeSet::new(),
    }];
    for i in 0..200u32 {
        let from = if i == 0 {
            "t".to_owned()
        } else {
            format!("v{}", i - 1)
        };
        rels.push(Relation {
            oid: 100 + i,
            schema: "public".to_owned(),
            name: format!("v{i}"),
            kind: RelKind::View,
            columns: vec![column()],
            parents: Vec::new(),
            definition: Some(format!(
                " SELECT lower({from}.x) AS x\n   FROM {from}\n  WHERE {from}.x <> ''::text;"
            )),
            depends_on: [ColumnId {
                rel: if i == 0 { 1 } else { 99 + i },
                attnum: 1,
            }]
            .into(),
        });
    }
    Catalog::new(rels, Vec::<(String, String)>::new())
}

#[test]
fn long_view_chains_expand_then_fall_back() {
    on_small_stack(|| {
        let catalog = view_chain_catalog();
        let path = vec!["public".to_owned()];
        let ctx = Context {
            catalog: &catalog,
            search_path: &path,
        };
        for sql in ["SELECT x FROM v10", "SELECT x FROM v199"] {
            let f = analyze(sql, &ctx).unwrap_or_else(|e| panic!("{sql}: {e}"));
            let s = &f.statements[0];
            assert_eq!(
                s.outputs[0].lineage,
                [ColumnId { rel: 1, attnum: 1 }].into()
            );
            assert!(s.reads.contains(&1), "{sql}");
        }
    });
}
