//! What the upstream database holds: relations with their columns and
//! types, view definitions and the base columns views depend on,
//! partitions and inheritance children, user-defined functions, OIDs.
//!
//! A [`Catalog`] is built from the rows of [`LOAD_SQL`] (run by the proxy
//! on a session's own upstream connection, or by the CLI through a DSN)
//! and shared read-only by every guarded session of that database.

mod background;
mod cache;
mod load;

use std::collections::BTreeSet;
use std::time::Instant;

pub use background::{load_in_background, BackgroundRefresh, Probe};
pub use cache::{is_dated, parse_name_array, CatalogCache, Claim, LoadTicket, Published};
pub use load::{stamp_of, CatalogRows, LoadError, Row, LOAD_SQL, STAMP_SQL};

/// The catalog's indices hash with foldhash: several lookups per analyzed
/// statement, where std's SipHash cost more than the lookups themselves.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// A PostgreSQL object identifier.
pub type Oid = u32;

/// One column of one relation: the relation's OID and the column number
/// (`attnum`, from 1), as RowDescription reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ColumnId {
    /// Relation OID.
    pub rel: Oid,
    /// Column number.
    pub attnum: i16,
}

/// The kind of a relation (`pg_class.relkind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelKind {
    /// Ordinary table (`r`).
    Table,
    /// Partitioned table (`p`).
    PartitionedTable,
    /// View (`v`).
    View,
    /// Materialized view (`m`).
    MaterializedView,
    /// Foreign table (`f`).
    ForeignTable,
    /// Sequence (`S`): read by pg_dump (`SELECT last_value, is_called`).
    Sequence,
}

impl RelKind {
    /// From `pg_class.relkind`.
    pub fn from_code(code: &str) -> Option<RelKind> {
        Some(match code {
            "r" => RelKind::Table,
            "p" => RelKind::PartitionedTable,
            "v" => RelKind::View,
            "m" => RelKind::MaterializedView,
            "f" => RelKind::ForeignTable,
            "S" => RelKind::Sequence,
            _ => return None,
        })
    }
}

/// A column of a relation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Column number (from 1).
    pub attnum: i16,
    /// Column name, exactly as stored.
    pub name: String,
    /// Type OID.
    pub type_oid: Oid,
    /// Type as `format_type` prints it, e.g. `character varying(80)`.
    pub type_name: String,
    /// Type modifier (`atttypmod`: -1 when none; varchar(n) is n + 4).
    pub typmod: i32,
}

/// A relation: table, partitioned table, view, materialized view or
/// foreign table.
#[derive(Clone, Debug)]
pub struct Relation {
    /// OID.
    pub oid: Oid,
    /// Schema name, exactly as stored.
    pub schema: String,
    /// Relation name, exactly as stored.
    pub name: String,
    /// Kind.
    pub kind: RelKind,
    /// Columns in attnum order.
    pub columns: Vec<Column>,
    /// Parents (partitioned parent or inheritance parents).
    pub parents: Vec<Oid>,
    /// For views and materialized views: the definition
    /// (`pg_get_viewdef`), a SELECT statement.
    pub definition: Option<String>,
    /// For views and materialized views: every base column the definition
    /// depends on (from `pg_depend`), a conservative fallback lineage.
    pub depends_on: BTreeSet<ColumnId>,
}

impl Relation {
    /// The column called `name` (exact match).
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column with number `attnum`.
    pub fn column_by_num(&self, attnum: i16) -> Option<&Column> {
        self.columns.iter().find(|c| c.attnum == attnum)
    }

    /// `schema.name`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// The catalog of one database.
#[derive(Clone, Debug)]
pub struct Catalog {
    relations: HashMap<Oid, Relation>,
    /// Schema -> relation name -> OID: looked up by `&str`, no allocation.
    by_name: HashMap<String, HashMap<String, Oid>>,
    /// Partitions and inheritance children of each relation that has any.
    children: HashMap<Oid, Vec<Oid>>,
    /// Function name -> the schemas holding a user-defined function of
    /// that name.
    user_functions: HashMap<String, HashSet<String>>,
    /// What writes to a relation set off beyond its own rows, for the
    /// relations where it is anything.
    write_effects: HashMap<Oid, WriteEffects>,
    /// When the rows were asked for (the load sent).
    pub loaded_at: Instant,
    /// The stamp read with the rows ([`STAMP_SQL`]), if any.
    pub stamp: Option<String>,
}

/// What a write to a relation sets off beyond the rows it names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteEffects {
    /// Relations whose rows the foreign-key actions on this relation's keys
    /// change (`ON DELETE`/`ON UPDATE` `CASCADE`, `SET NULL`, `SET DEFAULT`).
    pub cascades_to: Vec<Oid>,
    /// Whether user triggers or rules run on writes to it.
    pub runs_code: bool,
}

impl Catalog {
    /// Builds a catalog from relations and user-defined function names
    /// (`(schema, name)`, functions outside `pg_catalog` and
    /// `information_schema`).
    pub fn new(
        relations: impl IntoIterator<Item = Relation>,
        user_functions: impl IntoIterator<Item = (String, String)>,
    ) -> Catalog {
        let relations: HashMap<Oid, Relation> = relations.into_iter().map(|r| (r.oid, r)).collect();
        let mut by_name: HashMap<String, HashMap<String, Oid>> = HashMap::default();
        let mut children: HashMap<Oid, Vec<Oid>> = HashMap::default();
        for r in relations.values() {
            by_name
                .entry(r.schema.clone())
                .or_default()
                .insert(r.name.clone(), r.oid);
            for parent in &r.parents {
                children.entry(*parent).or_default().push(r.oid);
            }
        }
        for list in children.values_mut() {
            list.sort_unstable();
        }
        Catalog {
            relations,
            by_name,
            children,
            user_functions: user_functions.into_iter().fold(
                HashMap::default(),
                |mut by_name: HashMap<String, HashSet<String>>, (schema, name)| {
                    by_name.entry(name).or_default().insert(schema);
                    by_name
                },
            ),
            write_effects: HashMap::default(),
            loaded_at: Instant::now(),
            stamp: None,
        }
    }

    /// Sets the stamp the rows were read with.
    pub fn with_stamp(mut self, stamp: Option<String>) -> Catalog {
        self.stamp = stamp;
        self
    }

    /// Dates the catalog to when its load was sent: a change the server
    /// committed before then is in it.
    pub fn asked_at(mut self, at: Instant) -> Catalog {
        self.loaded_at = at;
        self
    }

    /// Sets what writes to each relation set off.
    pub fn with_write_effects(
        mut self,
        effects: impl IntoIterator<Item = (Oid, WriteEffects)>,
    ) -> Catalog {
        self.write_effects = effects.into_iter().collect();
        self
    }

    /// Every relation a write to `written` may change (`written` and what
    /// foreign-key actions reach from it, transitively), and whether user
    /// code (triggers, rules) runs on any of them.
    pub fn write_reach(&self, written: impl IntoIterator<Item = Oid>) -> (BTreeSet<Oid>, bool) {
        let mut reach = BTreeSet::new();
        let mut runs_code = false;
        let mut todo: Vec<Oid> = written.into_iter().collect();
        while let Some(oid) = todo.pop() {
            if !reach.insert(oid) {
                continue;
            }
            if let Some(effects) = self.write_effects.get(&oid) {
                runs_code |= effects.runs_code;
                todo.extend(effects.cascades_to.iter().copied());
            }
        }
        (reach, runs_code)
    }

    /// The relation with `oid`.
    pub fn relation(&self, oid: Oid) -> Option<&Relation> {
        self.relations.get(&oid)
    }

    /// All relations.
    pub fn relations(&self) -> impl Iterator<Item = &Relation> {
        self.relations.values()
    }

    /// The relation `schema.name` (exact, case-sensitive names).
    pub fn lookup(&self, schema: &str, name: &str) -> Option<&Relation> {
        self.by_name
            .get(schema)?
            .get(name)
            .and_then(|oid| self.relations.get(oid))
    }

    /// The partitions and inheritance children of `oid` (not their own
    /// children), in OID order.
    pub fn children(&self, oid: Oid) -> &[Oid] {
        self.children.get(&oid).map_or(&[], Vec::as_slice)
    }

    /// Resolves a possibly unqualified relation name the way PostgreSQL
    /// does: a qualified name directly, an unqualified one through
    /// `search_path` (the effective path, as `current_schemas(true)`
    /// returns it: temporary and system schemas included). `pg_temp` names
    /// the session's own temporary schema, as in PostgreSQL.
    pub fn resolve(
        &self,
        schema: Option<&str>,
        name: &str,
        search_path: &[String],
    ) -> Option<&Relation> {
        match schema {
            Some("pg_temp") => search_path
                .iter()
                .find(|s| s.starts_with("pg_temp_"))
                .and_then(|s| self.lookup(s, name)),
            Some(s) => self.lookup(s, name),
            None => search_path.iter().find_map(|s| self.lookup(s, name)),
        }
    }

    /// `oid` and all its ancestors (partition parents, inheritance
    /// parents, recursively), `oid` first.
    pub fn lineage_of_relation(&self, oid: Oid) -> Vec<Oid> {
        let mut out = vec![oid];
        let mut i = 0;
        while i < out.len() {
            if let Some(rel) = self.relations.get(&out[i]) {
                for p in &rel.parents {
                    if !out.contains(p) {
                        out.push(*p);
                    }
                }
            }
            i += 1;
        }
        out
    }

    /// The column of an ancestor that `col` inherits from (same name),
    /// for every ancestor of its relation, `col` itself first.
    pub fn inherited_columns(&self, col: ColumnId) -> Vec<ColumnId> {
        let Some(name) = self
            .relations
            .get(&col.rel)
            .and_then(|r| r.column_by_num(col.attnum))
            .map(|c| c.name.clone())
        else {
            return vec![col];
        };
        self.lineage_of_relation(col.rel)
            .into_iter()
            .filter_map(|rel| {
                let r = self.relations.get(&rel)?;
                r.column(&name).map(|c| ColumnId {
                    rel,
                    attnum: c.attnum,
                })
            })
            .collect()
    }

    /// Whether a user-defined function `name` exists in `schema`.
    pub fn has_user_function(&self, schema: &str, name: &str) -> bool {
        self.user_functions
            .get(name)
            .is_some_and(|schemas| schemas.contains(schema))
    }

    /// Whether a user-defined function called `name` exists in any schema.
    pub fn has_user_function_named(&self, name: &str) -> bool {
        self.user_functions.contains_key(name)
    }

    /// `schema.relation.column` for a column id, for messages.
    pub fn column_name(&self, col: ColumnId) -> String {
        match self.relations.get(&col.rel) {
            Some(r) => match r.column_by_num(col.attnum) {
                Some(c) => format!("{}.{}.{}", r.schema, r.name, c.name),
                None => format!("{}.{}.#{}", r.schema, r.name, col.attnum),
            },
            None => format!("oid {}.#{}", col.rel, col.attnum),
        }
    }
}

/// A plain table in `public` whose columns are all `text`, numbered from 1
/// (for tests).
#[cfg(test)]
pub(crate) fn text_table(oid: Oid, name: &str, columns: &[&str]) -> Relation {
    Relation {
        oid,
        schema: "public".into(),
        name: name.into(),
        kind: RelKind::Table,
        columns: columns
            .iter()
            .enumerate()
            .map(|(i, c)| Column {
                attnum: i as i16 + 1,
                name: (*c).into(),
                type_oid: 25,
                type_name: "text".into(),
                typmod: -1,
            })
            .collect(),
        parents: Vec::new(),
        definition: None,
        depends_on: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(oid: Oid, schema: &str, name: &str) -> Relation {
        Relation {
            oid,
            schema: schema.to_owned(),
            name: name.to_owned(),
            kind: RelKind::Table,
            columns: Vec::new(),
            parents: Vec::new(),
            definition: None,
            depends_on: BTreeSet::new(),
        }
    }

    #[test]
    fn names_resolve_as_postgres_resolves_them() {
        let catalog = Catalog::new(
            [
                table(1, "public", "users"),
                table(2, "pg_temp_3", "users"),
                table(3, "pg_temp_4", "other_session"),
            ],
            [],
        );
        let path: Vec<String> = ["pg_temp_3", "pg_catalog", "public"]
            .map(str::to_owned)
            .to_vec();
        let oid = |schema: Option<&str>, name: &str, path: &[String]| {
            catalog.resolve(schema, name, path).map(|r| r.oid)
        };
        assert_eq!(oid(None, "users", &path), Some(2), "temporary first");
        assert_eq!(oid(Some("pg_temp"), "users", &path), Some(2));
        assert_eq!(oid(Some("public"), "users", &path), Some(1));
        assert_eq!(oid(Some("pg_temp"), "other_session", &path), None);
        let no_temp = &path[1..];
        assert_eq!(oid(None, "users", no_temp), Some(1));
        assert_eq!(oid(Some("pg_temp"), "users", no_temp), None);
        assert_eq!(oid(None, "Users", no_temp), None, "case-sensitive");
    }

    #[test]
    fn children_and_user_functions_are_indexed_once() {
        let child = |oid, parent| Relation {
            parents: vec![parent],
            ..table(oid, "public", &format!("part_{oid}"))
        };
        let catalog = Catalog::new(
            [
                table(1, "public", "events"),
                child(3, 1),
                child(2, 1),
                child(4, 3),
            ],
            [
                ("app".to_owned(), "score".to_owned()),
                ("util".to_owned(), "score".to_owned()),
            ],
        );
        assert_eq!(catalog.children(1), &[2, 3]);
        assert_eq!(catalog.children(3), &[4]);
        assert!(catalog.children(4).is_empty());
        assert!(catalog.children(99).is_empty());
        assert!(catalog.has_user_function("app", "score"));
        assert!(catalog.has_user_function("util", "score"));
        assert!(!catalog.has_user_function("public", "score"));
        assert!(catalog.has_user_function_named("score"));
        assert!(!catalog.has_user_function_named("app"));
    }

    /// Relation rows' write effects: foreign-key actions followed
    /// transitively (cycles included), user code flagged, and rows of an
    /// older shape (five columns) without effects.
    #[test]
    fn writes_reach_what_foreign_key_actions_change() {
        let row = |oid: &str, cascades: Option<&str>, code: &str| -> Row {
            [
                Some(oid),
                Some("public"),
                Some(oid),
                Some("r"),
                None,
                cascades,
                Some(code),
            ]
            .into_iter()
            .map(|v| v.map(str::to_owned))
            .collect()
        };
        let rows = CatalogRows {
            relations: vec![
                row("1", Some("{2}"), "false"),
                row("2", Some("{3,1}"), "false"),
                row("3", None, "true"),
                row("4", None, "false"),
                vec![
                    Some("5".into()),
                    Some("public".into()),
                    Some("old".into()),
                    Some("r".into()),
                    None,
                ],
            ],
            ..CatalogRows::default()
        };
        let catalog = rows.into_catalog().expect("catalog");
        assert_eq!(catalog.write_reach([1]), (BTreeSet::from([1, 2, 3]), true));
        assert_eq!(catalog.write_reach([4, 5]), (BTreeSet::from([4, 5]), false));
        let bad = CatalogRows {
            relations: vec![row("1", Some("2"), "false")],
            ..CatalogRows::default()
        };
        assert!(bad.into_catalog().is_err());
    }
}
