//! SQL analysis of arbitrary text against a small catalog (tables, a view,
//! a partitioned table): facts or an error, never a panic. Runs on a
//! 2 MiB stack like a runtime worker, so deep nesting must be refused
//! before it overflows.
#![no_main]

use std::collections::BTreeSet;
use std::sync::LazyLock;

use copyguard::analysis::{analyze, Context};
use copyguard::catalog::{Catalog, Column, ColumnId, RelKind, Relation};
use libfuzzer_sys::fuzz_target;

fn relation(oid: u32, name: &str, kind: RelKind, columns: &[(&str, u32, &str)]) -> Relation {
    Relation {
        oid,
        schema: "public".to_owned(),
        name: name.to_owned(),
        kind,
        columns: columns
            .iter()
            .enumerate()
            .map(|(i, (c, ty, ty_name))| Column {
                attnum: i16::try_from(i + 1).unwrap_or(i16::MAX),
                name: (*c).to_owned(),
                type_oid: *ty,
                type_name: (*ty_name).to_owned(),
                typmod: -1,
            })
            .collect(),
        parents: Vec::new(),
        definition: None,
        depends_on: BTreeSet::new(),
    }
}

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    let users = relation(
        100,
        "users",
        RelKind::Table,
        &[
            ("id", 20, "bigint"),
            ("email", 25, "text"),
            ("full_name", 25, "text"),
            ("birth_date", 1082, "date"),
            ("phone", 25, "text"),
        ],
    );
    let orders = relation(
        200,
        "orders",
        RelKind::Table,
        &[
            ("id", 20, "bigint"),
            ("user_id", 20, "bigint"),
            ("amount_cents", 23, "integer"),
            ("status", 25, "text"),
        ],
    );
    let mut v = relation(
        300,
        "v_users",
        RelKind::View,
        &[("id", 20, "bigint"), ("contact", 25, "text")],
    );
    v.definition = Some(" SELECT users.id, users.email AS contact FROM users;".to_owned());
    v.depends_on = [ColumnId { rel: 100, attnum: 1 }, ColumnId { rel: 100, attnum: 2 }]
        .into_iter()
        .collect();
    let events = relation(
        400,
        "events",
        RelKind::PartitionedTable,
        &[("id", 20, "bigint"), ("payload", 3802, "jsonb")],
    );
    let mut events_2024 = relation(
        410,
        "events_2024",
        RelKind::Table,
        &[("id", 20, "bigint"), ("payload", 3802, "jsonb")],
    );
    events_2024.parents = vec![400];
    Catalog::new(vec![users, orders, v, events, events_2024], Vec::new())
});

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let sql = sql.to_owned();
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let search_path = ["pg_catalog".to_owned(), "public".to_owned()];
            let ctx = Context {
                catalog: &CATALOG,
                search_path: &search_path,
            };
            let _ = analyze(&sql, &ctx);
        })
        .expect("spawn")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
});
