//! SQL analysis of arbitrary text against a small catalog (tables, a view,
//! a partitioned table): facts or an error, never a panic; and the text
//! parsed through copyguard's dialect as through sqlparser's PostgreSQL
//! dialect (`fuzz::check_parse`). Runs on a 2 MiB stack like a runtime
//! worker, so deep nesting must be refused before it overflows.
#![no_main]

use std::sync::LazyLock;

use copyguard::analysis::shape::fuzz;
use copyguard::analysis::{analyze, Context};
use copyguard::catalog::Catalog;
use libfuzzer_sys::fuzz_target;

/// The same catalog as the `shape` target's.
static CATALOG: LazyLock<Catalog> = LazyLock::new(fuzz::catalog);

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
            if let Err(e) = fuzz::check_parse(&sql) {
                panic!("{e}");
            }
        })
        .expect("spawn")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
});
