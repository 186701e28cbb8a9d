//! The shape scanner against sqlparser's tokenizer, and the decision
//! cache's key against analysis: for any text (a control byte first), the
//! scanner's tokens are sqlparser's (or both refuse the text), and texts
//! of one shape analyze to the same facts whenever one of them would be
//! cached (`copyguard::analysis::shape::fuzz`). Each text is compared with
//! a variant of its own (other literals and whitespace) and with the last
//! text seen of its shape. Runs on a 2 MiB stack like a runtime worker.
#![no_main]

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use copyguard::analysis::shape::{self, fuzz};
use copyguard::catalog::Catalog;
use libfuzzer_sys::fuzz_target;

static CATALOG: LazyLock<Catalog> = LazyLock::new(fuzz::catalog);

/// The last text seen of each shape (bounded), to compare texts of one
/// shape found apart. A finding names both texts: replay it with
/// `fuzz::check_same_shape`.
static SEEN: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Mutex::default);
const MAX_SEEN: usize = 20_000;

fuzz_target!(|data: &[u8]| {
    let data = data.to_vec();
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            if let Err(e) = fuzz::check(&data, &CATALOG) {
                panic!("{e}");
            }
            let Ok(sql) = std::str::from_utf8(data.get(1..).unwrap_or_default()) else {
                return;
            };
            let Some(key) = shape::shape(sql) else {
                return;
            };
            let before = {
                let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
                if seen.len() >= MAX_SEEN {
                    seen.clear();
                }
                seen.insert(key, sql.to_owned())
            };
            if let Some(before) = before.filter(|b| b != sql) {
                if let Err(e) = fuzz::check_same_shape(&before, sql, &CATALOG) {
                    panic!("{e}");
                }
            }
        })
        .expect("spawn")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
});
