//! Data classification: categories of columns and whole tables, forbidden
//! tables (configured and built in), and how they carry over to
//! partitions and inheritance children.

use std::collections::{BTreeMap, HashMap};

use super::categories::{check_category, CategoryName};
use super::error::{Diagnostics, Loc, PolicyWarning};
use super::file::{SourceFile, Str};
use super::names::{self, dotted};
use crate::catalog::{Catalog, ColumnId, Oid, RelKind, Relation};
use crate::pseudonym::Transform;

/// Relations guarded roles may never read, whatever the policy says.
const BUILTIN_FORBIDDEN: &[(Option<&str>, &str, &str)] = &[
    (Some("pg_catalog"), "pg_statistic", STATS),
    (Some("pg_catalog"), "pg_stats", STATS),
    (Some("pg_catalog"), "pg_stats_ext", STATS),
    (Some("pg_catalog"), "pg_stats_ext_exprs", STATS),
    (Some("pg_catalog"), "pg_statistic_ext_data", STATS),
    (
        Some("pg_catalog"),
        "pg_stat_activity",
        "it shows the query texts of other sessions, which hold literal values",
    ),
    (
        None,
        "pg_stat_statements",
        "it holds the query texts of every session, which can hold literal values",
    ),
    (
        Some("pg_catalog"),
        "pg_largeobject",
        "large objects hold data outside the tables copyguard classifies",
    ),
];

const STATS: &str = "planner statistics hold samples of column values";

/// Built-in secret columns of system catalogs: a statement whose outputs,
/// predicates or stored values derive from one of them is refused. They
/// are columns, not whole tables, because views such as `pg_roles` (which
/// psql's `\d` reads) read their tables without exposing the secret.
const BUILTIN_SECRET_COLUMNS: &[(&str, &str, &str, &str)] = &[
    (
        "pg_catalog",
        "pg_authid",
        "rolpassword",
        "it holds password hashes",
    ),
    (
        "pg_catalog",
        "pg_user_mapping",
        "umoptions",
        "it holds credentials for foreign servers",
    ),
    (
        "pg_catalog",
        "pg_subscription",
        "subconninfo",
        "its connection strings can hold credentials",
    ),
];

/// Why `col` is a built-in secret column, if it is one.
pub fn builtin_secret(catalog: &Catalog, col: ColumnId) -> Option<&'static str> {
    let rel = catalog.relation(col.rel)?;
    let column = rel.column_by_num(col.attnum)?;
    BUILTIN_SECRET_COLUMNS
        .iter()
        .find(|(schema, table, name, _)| {
            rel.schema == *schema && rel.name == *table && column.name == *name
        })
        .map(|(.., why)| *why)
}

/// The built-in forbidden relations as `(schema or None for any, name, why)`.
pub fn builtin_forbidden() -> &'static [(Option<&'static str>, &'static str, &'static str)] {
    BUILTIN_FORBIDDEN
}

/// A classification or forbidden entry and where it was written.
#[derive(Clone, Debug)]
struct Entry {
    /// Category, or the reason a table is forbidden.
    value: String,
    /// The dotted key as written, for messages.
    key: String,
    loc: Loc,
}

/// What the policy says about one table.
#[derive(Clone, Debug, Default)]
struct TableRules {
    whole: Option<Entry>,
    columns: BTreeMap<String, Entry>,
}

type BySchema<T> = BTreeMap<String, BTreeMap<String, T>>;

/// Classified columns and tables, forbidden tables.
#[derive(Clone, Debug, Default)]
pub(crate) struct Classification {
    classified: BySchema<TableRules>,
    forbidden: BySchema<Entry>,
    transforms: HashMap<(String, String, String), Transform>,
}

impl Classification {
    /// Whether a `[columns]` or `[tables]` entry classifies data as
    /// `category`.
    pub fn declares(&self, category: &str) -> bool {
        self.classified
            .values()
            .flat_map(BTreeMap::values)
            .any(|t| {
                t.whole
                    .iter()
                    .chain(t.columns.values())
                    .any(|e| e.value == category)
            })
    }

    /// Adds `[columns] "schema.table.column" = "category"`.
    pub fn add_column(&mut self, key: &Str, value: &Str, src: &SourceFile, diag: &mut Diagnostics) {
        let Some((loc, dkey, parts)) =
            parse_key(key, 3, "schema.table.column", "columns", src, diag)
        else {
            return;
        };
        if !category_ok(value, &loc, &dkey, diag) {
            return;
        }
        let rules = self
            .classified
            .entry(parts[0].clone())
            .or_default()
            .entry(parts[1].clone())
            .or_default();
        insert_unique(
            &mut rules.columns,
            parts[2].clone(),
            entry(value, dkey, loc),
            diag,
        );
    }

    /// Adds `[tables] "schema.table" = "category"`.
    pub fn add_table(&mut self, key: &Str, value: &Str, src: &SourceFile, diag: &mut Diagnostics) {
        let Some((loc, dkey, parts)) = parse_key(key, 2, "schema.table", "tables", src, diag)
        else {
            return;
        };
        if !category_ok(value, &loc, &dkey, diag) {
            return;
        }
        let rules = self
            .classified
            .entry(parts[0].clone())
            .or_default()
            .entry(parts[1].clone())
            .or_default();
        match &rules.whole {
            Some(first) => diag.error(&loc, dkey, format!("already set at {}", first.loc)),
            None => rules.whole = Some(entry(value, dkey, loc)),
        }
    }

    /// Adds `[transforms] "schema.table.column" = "transform"`: the
    /// stand-in a pseudonymized column gets instead of its category's.
    pub fn add_transform(
        &mut self,
        key: &Str,
        value: &Str,
        src: &SourceFile,
        diag: &mut Diagnostics,
    ) {
        let Some((loc, dkey, parts)) =
            parse_key(key, 3, "schema.table.column", "transforms", src, diag)
        else {
            return;
        };
        match value.get_ref().parse::<Transform>() {
            Ok(t) => {
                let at = (parts[0].clone(), parts[1].clone(), parts[2].clone());
                if self.transforms.insert(at, t).is_some() {
                    diag.error(&loc, dkey, "set twice");
                }
            }
            Err(e) => diag.error(&src.loc(value.span()), dkey, e.to_string()),
        }
    }

    /// The transform the policy names for `col` (or for the same column of
    /// a partition or inheritance ancestor).
    pub fn transform_of(&self, catalog: &Catalog, col: ColumnId) -> Option<&Transform> {
        if self.transforms.is_empty() {
            return None;
        }
        let name = catalog
            .relation(col.rel)?
            .column_by_num(col.attnum)?
            .name
            .clone();
        catalog
            .lineage_of_relation(col.rel)
            .into_iter()
            .find_map(|oid| {
                let rel = catalog.relation(oid)?;
                self.transforms
                    .get(&(rel.schema.clone(), rel.name.clone(), name.clone()))
            })
    }

    /// Adds `[forbidden] "schema.table" = "reason"`.
    pub fn add_forbidden(
        &mut self,
        key: &Str,
        value: &Str,
        src: &SourceFile,
        diag: &mut Diagnostics,
    ) {
        let Some((loc, dkey, parts)) = parse_key(key, 2, "schema.table", "forbidden", src, diag)
        else {
            return;
        };
        if value.get_ref().trim().is_empty() {
            diag.error(&loc, dkey, "give the reason guarded users will be shown");
            return;
        }
        let tables = self.forbidden.entry(parts[0].clone()).or_default();
        insert_unique(tables, parts[1].clone(), entry(value, dkey, loc), diag);
    }

    /// Warns about columns classified both on their own and through their
    /// whole table.
    pub fn check_overlaps(&self, diag: &mut Diagnostics) {
        for rules in self.classified.values().flat_map(|t| t.values()) {
            let Some(whole) = &rules.whole else { continue };
            for e in rules.columns.values() {
                diag.warn(
                    &e.loc,
                    &e.key,
                    format!(
                        "its table is classified as a whole ({}) at {}; this column's own category {:?} takes precedence",
                        whole.value, whole.loc, e.value
                    ),
                );
            }
        }
    }

    /// Number of classified columns, whole tables, forbidden tables.
    pub fn counts(&self) -> (usize, usize, usize) {
        let tables = self.classified.values().flat_map(|t| t.values());
        let columns = tables.clone().map(|r| r.columns.len()).sum();
        let wholes = tables.filter(|r| r.whole.is_some()).count();
        let forbidden = self.forbidden.values().map(|t| t.len()).sum();
        (columns, wholes, forbidden)
    }

    /// The category of a column: its own, its table's, or one inherited
    /// from the same column of an ancestor or a descendant (partition or
    /// inheritance child), whose rows reading this relation returns.
    pub fn category_of<'a>(&'a self, catalog: &Catalog, col: ColumnId) -> Option<&'a str> {
        if self.classified.is_empty() {
            return None;
        }
        let rel = catalog.relation(col.rel)?;
        let name = rel.column_by_num(col.attnum).map(|c| c.name.as_str());
        let own = |rules: &'a TableRules| {
            name.and_then(|n| rules.columns.get(n))
                .or(rules.whole.as_ref())
                .map(|e| e.value.as_str())
        };
        if rel.parents.is_empty() {
            if let Some(category) = self.rules(rel).and_then(own) {
                return Some(category);
            }
        } else {
            for oid in catalog.lineage_of_relation(col.rel) {
                let rules = catalog.relation(oid).and_then(|r| self.rules(r));
                if let Some(category) = rules.and_then(own) {
                    return Some(category);
                }
            }
        }
        if catalog.children(col.rel).is_empty() {
            return None;
        }
        let name = name?;
        for (schema, tables) in &self.classified {
            for (table, rules) in tables {
                let Some(child) = catalog.lookup(schema, table) else {
                    continue;
                };
                if !is_descendant(catalog, child, col.rel) {
                    continue;
                }
                if let Some(e) = rules.columns.get(name) {
                    return Some(&e.value);
                }
                if let Some(e) = &rules.whole {
                    return Some(&e.value);
                }
            }
        }
        None
    }

    /// Whether any column of `rel` has a category ([`Self::category_of`]).
    pub fn any_column_classified(&self, catalog: &Catalog, rel: &Relation) -> bool {
        if self.classified.is_empty() {
            return false;
        }
        if rel.parents.is_empty() && catalog.children(rel.oid).is_empty() {
            return self.rules(rel).is_some_and(|rules| {
                rules.whole.is_some() && !rel.columns.is_empty()
                    || rel
                        .columns
                        .iter()
                        .any(|c| rules.columns.contains_key(&c.name))
            });
        }
        rel.columns.iter().any(|c| {
            let col = ColumnId {
                rel: rel.oid,
                attnum: c.attnum,
            };
            self.category_of(catalog, col).is_some()
        })
    }

    /// Why reading `rel` is forbidden: a built-in system relation, a
    /// forbidden table, or a relation whose ancestor or descendant is one.
    pub fn forbidden_reason(&self, catalog: &Catalog, rel: Oid) -> Option<String> {
        for oid in catalog.lineage_of_relation(rel) {
            let Some(r) = catalog.relation(oid) else {
                continue;
            };
            if let Some(why) = builtin_reason(r) {
                return Some(why.to_owned());
            }
            if let Some(e) = self.forbidden.get(&r.schema).and_then(|t| t.get(&r.name)) {
                return Some(if oid == rel {
                    e.value.clone()
                } else {
                    format!("{} (it is part of {})", e.value, display(r))
                });
            }
        }
        if catalog.children(rel).is_empty() {
            return None;
        }
        for (schema, tables) in &self.forbidden {
            for (table, e) in tables {
                if let Some(child) = catalog.lookup(schema, table) {
                    if is_descendant(catalog, child, rel) {
                        return Some(format!(
                            "{} (it includes the rows of {})",
                            e.value,
                            display(child)
                        ));
                    }
                }
            }
        }
        None
    }

    /// Entries naming relations or columns the database does not have, or
    /// views (whose columns are never base columns).
    pub fn warnings_against(&self, catalog: &Catalog) -> Vec<PolicyWarning> {
        let mut out = Vec::new();
        for (schema, tables) in &self.classified {
            for (table, rules) in tables {
                let entries = rules.whole.iter().chain(rules.columns.values());
                let Some(rel) = catalog.lookup(schema, table) else {
                    for e in entries {
                        out.push(missing_relation(catalog, schema, table, e));
                    }
                    continue;
                };
                if rel.kind == RelKind::View {
                    for e in entries {
                        out.push(PolicyWarning::at(
                            &e.loc,
                            &e.key,
                            format!(
                                "{} is a view, whose columns copyguard follows to their base tables: classify the base table's columns instead",
                                display(rel)
                            ),
                        ));
                    }
                    continue;
                }
                for (column, e) in &rules.columns {
                    if rel.column(column).is_none() {
                        let hint = rel
                            .columns
                            .iter()
                            .find(|c| c.name.eq_ignore_ascii_case(column))
                            .map(|c| format!("; did you mean {}?", names::quote(&c.name)))
                            .unwrap_or_default();
                        out.push(PolicyWarning::at(
                            &e.loc,
                            &e.key,
                            format!(
                                "{} has no column {}{hint}",
                                display(rel),
                                names::quote(column)
                            ),
                        ));
                    }
                }
            }
        }
        for (schema, tables) in &self.forbidden {
            for (table, e) in tables {
                if catalog.lookup(schema, table).is_none() {
                    out.push(missing_relation(catalog, schema, table, e));
                }
            }
        }
        out
    }

    fn rules(&self, rel: &Relation) -> Option<&TableRules> {
        self.classified.get(&rel.schema)?.get(&rel.name)
    }
}

fn builtin_reason(rel: &Relation) -> Option<&'static str> {
    BUILTIN_FORBIDDEN
        .iter()
        .find(|(schema, name, _)| *name == rel.name && schema.is_none_or(|s| s == rel.schema))
        .map(|(_, _, why)| *why)
}

/// Whether `child` is a strict descendant of `ancestor`.
fn is_descendant(catalog: &Catalog, child: &Relation, ancestor: Oid) -> bool {
    child.oid != ancestor
        && !child.parents.is_empty()
        && catalog.lineage_of_relation(child.oid).contains(&ancestor)
}

fn display(rel: &Relation) -> String {
    names::qualified(&[&rel.schema, &rel.name])
}

fn missing_relation(catalog: &Catalog, schema: &str, table: &str, e: &Entry) -> PolicyWarning {
    let hint = catalog
        .relations()
        .find(|r| r.schema.eq_ignore_ascii_case(schema) && r.name.eq_ignore_ascii_case(table))
        .map(|r| format!("; did you mean {}?", display(r)))
        .unwrap_or_default();
    PolicyWarning::at(
        &e.loc,
        &e.key,
        format!(
            "no relation {} in the database{hint}",
            names::qualified(&[schema, table])
        ),
    )
}

fn entry(value: &Str, key: String, loc: Loc) -> Entry {
    Entry {
        value: value.get_ref().clone(),
        key,
        loc,
    }
}

fn insert_unique(
    map: &mut BTreeMap<String, Entry>,
    name: String,
    new: Entry,
    diag: &mut Diagnostics,
) {
    match map.get(&name) {
        Some(first) => diag.error(
            &new.loc,
            &new.key,
            format!("{} is already set at {}", first.key, first.loc),
        ),
        None => {
            map.insert(name, new);
        }
    }
}

/// Parses a dotted-name key of `n` parts; `None` (error recorded) if bad.
fn parse_key(
    key: &Str,
    n: usize,
    shape: &str,
    section: &str,
    src: &SourceFile,
    diag: &mut Diagnostics,
) -> Option<(Loc, String, Vec<String>)> {
    let loc = src.loc(key.span());
    let dkey = dotted(&[section, key.get_ref()]);
    match names::parse_parts(key.get_ref(), n, shape) {
        Ok(parts) => {
            if parts.iter().any(|p| p.folded) {
                let written: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
                diag.warn(
                    &loc,
                    &dkey,
                    format!(
                        "unquoted names are folded to lower case like SQL identifiers: this means {}; double-quote names with capitals",
                        names::qualified(&written)
                    ),
                );
            }
            Some((loc, dkey, parts.into_iter().map(|p| p.name).collect()))
        }
        Err(message) => {
            diag.error(&loc, dkey, message);
            None
        }
    }
}

fn category_ok(value: &Str, loc: &Loc, key: &str, diag: &mut Diagnostics) -> bool {
    match check_category(value.get_ref()) {
        Ok(CategoryName::Known) => true,
        Ok(CategoryName::Unknown(message)) => {
            diag.warn(loc, key, message);
            true
        }
        Err(message) => {
            diag.error(loc, key, message);
            false
        }
    }
}
