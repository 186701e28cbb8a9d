//! The receipt of a dump session: what left, table by table.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::analysis::StatementFacts;
use crate::catalog::Catalog;
use crate::policy::Allowance;

/// What one table gave a dump session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableReceipt {
    /// Rows sent.
    pub rows: u64,
    /// Bytes of those rows as the server sent them (before stand-ins
    /// replaced values).
    pub bytes: u64,
    /// Values pseudonymized, per category (every row of each
    /// pseudonymized column, NULLs included).
    pub pseudonymized: BTreeMap<String, u64>,
}

/// The running receipt of one granted session.
#[derive(Debug, Default)]
pub struct Receipt {
    tables: Mutex<BTreeMap<String, TableReceipt>>,
}

impl Receipt {
    /// Adds `rows` rows of `bytes` bytes sent by a statement with these
    /// facts and allowance.
    pub fn add(
        &self,
        facts: &StatementFacts,
        allowance: &Allowance,
        catalog: &Catalog,
        rows: u64,
        bytes: u64,
    ) {
        if rows == 0 && bytes == 0 {
            return;
        }
        let mut names: Vec<String> = facts
            .reads
            .iter()
            .filter_map(|oid| catalog.relation(*oid))
            .filter(|r| !matches!(r.schema.as_str(), "pg_catalog" | "information_schema"))
            .map(|r| r.qualified_name())
            .collect();
        if names.is_empty() {
            return;
        }
        names.sort();
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let t = tables.entry(names.join(" + ")).or_default();
        t.rows += rows;
        t.bytes += bytes;
        for p in allowance.pseudonymize.iter().flatten() {
            *t.pseudonymized.entry(p.category.clone()).or_default() += rows;
        }
    }

    /// The receipt so far, by table.
    pub fn tables(&self) -> BTreeMap<String, TableReceipt> {
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One line for the block log: every table with its rows, bytes and
    /// pseudonymized values.
    pub fn summary(&self) -> String {
        let tables = self.tables();
        if tables.is_empty() {
            return "receipt: no table data".to_owned();
        }
        let parts: Vec<String> = tables
            .iter()
            .map(|(name, t)| {
                let cats: Vec<String> = t
                    .pseudonymized
                    .iter()
                    .map(|(c, n)| format!("{c}={n}"))
                    .collect();
                let cats = if cats.is_empty() {
                    "none pseudonymized".to_owned()
                } else {
                    format!("pseudonymized {}", cats.join(","))
                };
                format!("{name}: {} rows, {} bytes, {cats}", t.rows, t.bytes)
            })
            .collect();
        format!("receipt: {}", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::StatementKind;
    use crate::catalog::text_table;
    use crate::policy::OutputPseudonym;

    #[test]
    fn receipts_add_up_per_table() {
        let rel = text_table(10, "users", &["email"]);
        let catalog = Catalog::new(vec![rel], Vec::new());
        let mut facts = StatementFacts::new(StatementKind::Select);
        facts.reads.insert(10);
        let allowance = Allowance {
            classified_outputs: Default::default(),
            limits: None,
            touches_classified: true,
            pseudonymize: vec![
                Some(OutputPseudonym {
                    category: "email".into(),
                    column: None,
                    transform: crate::pseudonym::default_transform("email"),
                }),
                None,
            ],
        };
        let r = Receipt::default();
        r.add(&facts, &allowance, &catalog, 3, 300);
        r.add(&facts, &allowance, &catalog, 2, 200);
        r.add(&facts, &allowance, &catalog, 0, 0);
        let t = &r.tables()["public.users"];
        assert_eq!((t.rows, t.bytes), (5, 500));
        assert_eq!(t.pseudonymized["email"], 5);
        assert!(r
            .summary()
            .contains("public.users: 5 rows, 500 bytes, pseudonymized email=5"));
        assert_eq!(Receipt::default().summary(), "receipt: no table data");
    }
}
