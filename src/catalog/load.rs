//! Reading the catalog: the queries, and turning their text rows into a
//! [`Catalog`]. The queries are plain SQL so any connection can run them.

use std::collections::{BTreeSet, HashMap};

use super::{Catalog, Column, ColumnId, Oid, RelKind, Relation, WriteEffects};

/// The stamp of what the catalog load reads, one row of one text value
/// that changes with every committed change to it: relations, their
/// columns, views' rules, inheritance, user functions' names, schemas and
/// who may use them (a schema's USAGE, role memberships: they decide which
/// schemas of the search path count), foreign keys and triggers. It
/// hashes the fields that matter rather than row versions, so GRANT on
/// tables, VACUUM FULL or TRUNCATE do not change it, and
/// leaves temporary relations and schemas out (a session's own are seen
/// through its DDL). Objects initdb made (OIDs below 16384) do not change,
/// so the indexes skip them: the stamp costs well under a millisecond on
/// a small database.
macro_rules! stamp_sql {
    () => {
        "SELECT pg_catalog.concat_ws(' ', \
 (SELECT pg_catalog.count(*) || ':' || pg_catalog.sum(pg_catalog.hashtext(\
 c.oid || ' ' || c.relnamespace || ' ' || c.relname || ' ' || c.relkind::text || ' ' || c.relhasrules)) \
 FROM pg_catalog.pg_class c WHERE c.oid >= 16384 AND c.relpersistence <> 't' \
 AND c.relkind IN ('r','p','v','m','f','S')), \
 (SELECT pg_catalog.count(*) || ':' || pg_catalog.sum(pg_catalog.hashtext(\
 a.attrelid || ' ' || a.attnum || ' ' || a.attname || ' ' || a.atttypid || ' ' || a.atttypmod || ' ' || a.attisdropped)) \
 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
 WHERE a.attrelid >= 16384 AND a.attnum > 0 AND c.relpersistence <> 't' \
 AND c.relkind IN ('r','p','v','m','f','S')), \
 (SELECT pg_catalog.count(*) || ':' || pg_catalog.sum(r.xmin::text::int8) FROM pg_catalog.pg_rewrite r \
 WHERE r.ev_class >= 16384), \
 (SELECT pg_catalog.count(*) || ':' || pg_catalog.sum(pg_catalog.hashtext(i.inhrelid || ' ' || i.inhparent || ' ' || i.inhseqno)) \
 FROM pg_catalog.pg_inherits i), \
 (SELECT pg_catalog.count(*) || ':' || pg_catalog.sum(pg_catalog.hashtext(p.pronamespace || ' ' || p.proname)) \
 FROM pg_catalog.pg_proc p WHERE p.oid >= 16384), \
 (SELECT pg_catalog.count(*) || ':' || pg_catalog.sum(pg_catalog.hashtext(\
 n.oid || ' ' || n.nspname || ' ' || COALESCE(n.nspacl::text, ''))) \
 FROM pg_catalog.pg_namespace n WHERE n.nspname !~ '^pg_(toast_)?temp_'), \
 (SELECT pg_catalog.count(*) || ':' || pg_catalog.sum(pg_catalog.hashtext(m.roleid || ' ' || m.member)) \
 FROM pg_catalog.pg_auth_members m), \
 (SELECT pg_catalog.count(*) || ':' || pg_catalog.sum(pg_catalog.hashtext(\
 k.conrelid || ' ' || k.confrelid || ' ' || k.confdeltype::text || ' ' || k.confupdtype::text)) \
 FROM pg_catalog.pg_constraint k WHERE k.contype = 'f'), \
 (SELECT pg_catalog.count(*) || ':' || pg_catalog.sum(pg_catalog.hashtext(t.tgrelid || ' ' || t.tgname)) \
 FROM pg_catalog.pg_trigger t WHERE NOT t.tgisinternal))"
    };
}

/// The catalog's stamp alone: what sessions probe with, now and then, to
/// see whether a schema change made outside copyguard dated the catalog.
pub const STAMP_SQL: &str = stamp_sql!();

/// The catalog queries, one simple-query string with six statements whose
/// result sets, in order, make a [`CatalogRows`]: the stamp first, so any
/// change after it is caught by the next probe.
pub const LOAD_SQL: &str = concat!(
    stamp_sql!(),
    "; \
SELECT c.oid::int8, n.nspname, c.relname, c.relkind::text, \
 CASE WHEN c.relkind IN ('v','m') THEN pg_catalog.pg_get_viewdef(c.oid, true) END, \
 f.cascades, (c.relkind IN ('r','p') AND c.relhasrules OR t.tgrelid IS NOT NULL)::text \
 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
 LEFT JOIN (SELECT confrelid, pg_catalog.array_agg(conrelid::int8)::text AS cascades \
 FROM pg_catalog.pg_constraint WHERE contype = 'f' \
 AND (confdeltype IN ('c','n','d') OR confupdtype IN ('c','n','d')) GROUP BY confrelid) f \
 ON f.confrelid = c.oid \
 LEFT JOIN (SELECT DISTINCT tgrelid FROM pg_catalog.pg_trigger WHERE NOT tgisinternal) t \
 ON t.tgrelid = c.oid \
 WHERE c.relkind IN ('r','p','v','m','f','S'); \
SELECT a.attrelid::int8, a.attnum::int4, a.attname, a.atttypid::int8, \
 pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypmod::int4 \
 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r','p','v','m','f','S') \
 ORDER BY 1, 2; \
SELECT inhrelid::int8, inhparent::int8 FROM pg_catalog.pg_inherits ORDER BY inhseqno; \
SELECT DISTINCT r.ev_class::int8, d.refobjid::int8, d.refobjsubid::int4 \
 FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_depend d \
 ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid \
 WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
 AND d.refobjsubid >= 0 AND d.refobjid <> r.ev_class; \
SELECT DISTINCT n.nspname, p.proname FROM pg_catalog.pg_proc p \
 JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
);

/// One text-format row (NULL is `None`).
pub type Row = Vec<Option<String>>;

/// The result sets of [`LOAD_SQL`].
#[derive(Clone, Debug, Default)]
pub struct CatalogRows {
    /// The stamp ([`STAMP_SQL`]), when the rows came with one.
    pub stamp: Option<String>,
    /// oid, schema, name, relkind, definition, the relations foreign-key
    /// actions on its keys change (`{oid,...}`), whether user triggers or
    /// rules run on writes (`true`/`false`); the last two may be absent.
    pub relations: Vec<Row>,
    /// relation oid, attnum, name, type oid, type name, type modifier.
    pub columns: Vec<Row>,
    /// child oid, parent oid.
    pub inherits: Vec<Row>,
    /// view oid, base relation oid, base attnum (0: the whole row, every
    /// column).
    pub view_deps: Vec<Row>,
    /// schema, function name.
    pub functions: Vec<Row>,
}

/// Catalog rows that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A row has the wrong shape.
    #[error("unexpected catalog row in {set}: {row:?}")]
    BadRow {
        /// Which result set.
        set: &'static str,
        /// The row.
        row: Row,
    },
    /// The query returned a different number of result sets.
    #[error("catalog query returned {0} result sets, expected 6")]
    ResultSets(usize),
    /// The query failed upstream.
    #[error("catalog query failed: {0}")]
    Query(String),
}

fn field<'a>(row: &'a Row, i: usize, set: &'static str) -> Result<&'a str, LoadError> {
    row.get(i)
        .and_then(|v| v.as_deref())
        .ok_or_else(|| LoadError::BadRow {
            set,
            row: row.clone(),
        })
}

fn num<T: std::str::FromStr>(row: &Row, i: usize, set: &'static str) -> Result<T, LoadError> {
    field(row, i, set)?.parse().map_err(|_| LoadError::BadRow {
        set,
        row: row.clone(),
    })
}

/// The stamp in the one-row, one-value result of [`STAMP_SQL`].
pub fn stamp_of(set: &[Row]) -> Result<String, LoadError> {
    match set {
        [row] => field(row, 0, "stamp").map(str::to_owned),
        _ => Err(LoadError::BadRow {
            set: "stamp",
            row: set.first().cloned().unwrap_or_default(),
        }),
    }
}

impl CatalogRows {
    /// Splits the result sets, in [`LOAD_SQL`] order: six, or the five
    /// without the stamp.
    pub fn from_sets(mut sets: Vec<Vec<Row>>) -> Result<CatalogRows, LoadError> {
        let stamp = match sets.len() {
            5 => None,
            6 => Some(stamp_of(&sets.remove(0))?),
            n => return Err(LoadError::ResultSets(n)),
        };
        let functions = sets.pop().unwrap_or_default();
        let view_deps = sets.pop().unwrap_or_default();
        let inherits = sets.pop().unwrap_or_default();
        let columns = sets.pop().unwrap_or_default();
        let relations = sets.pop().unwrap_or_default();
        Ok(CatalogRows {
            stamp,
            relations,
            columns,
            inherits,
            view_deps,
            functions,
        })
    }

    /// Builds the catalog.
    pub fn into_catalog(self) -> Result<Catalog, LoadError> {
        let mut relations: HashMap<Oid, Relation> = HashMap::new();
        let mut write_effects: HashMap<Oid, WriteEffects> = HashMap::new();
        for row in &self.relations {
            let oid: Oid = num::<i64>(row, 0, "relations")? as Oid;
            let Some(kind) = RelKind::from_code(field(row, 3, "relations")?) else {
                continue;
            };
            let effects = write_effects_of(row)?;
            if effects != WriteEffects::default() {
                write_effects.insert(oid, effects);
            }
            relations.insert(
                oid,
                Relation {
                    oid,
                    schema: field(row, 1, "relations")?.to_owned(),
                    name: field(row, 2, "relations")?.to_owned(),
                    kind,
                    columns: Vec::new(),
                    parents: Vec::new(),
                    definition: row.get(4).cloned().flatten(),
                    depends_on: BTreeSet::new(),
                },
            );
        }
        for row in &self.columns {
            let rel = num::<i64>(row, 0, "columns")? as Oid;
            let column = Column {
                attnum: num(row, 1, "columns")?,
                name: field(row, 2, "columns")?.to_owned(),
                type_oid: num::<i64>(row, 3, "columns")? as Oid,
                type_name: field(row, 4, "columns")?.to_owned(),
                typmod: match row.get(5) {
                    Some(_) => num(row, 5, "columns")?,
                    None => -1,
                },
            };
            if let Some(r) = relations.get_mut(&rel) {
                r.columns.push(column);
            }
        }
        for row in &self.inherits {
            let child = num::<i64>(row, 0, "inherits")? as Oid;
            let parent = num::<i64>(row, 1, "inherits")? as Oid;
            if let Some(r) = relations.get_mut(&child) {
                r.parents.push(parent);
            }
        }
        for row in &self.view_deps {
            let view = num::<i64>(row, 0, "view_deps")? as Oid;
            let col = ColumnId {
                rel: num::<i64>(row, 1, "view_deps")? as Oid,
                attnum: num(row, 2, "view_deps")?,
            };
            if let Some(r) = relations.get_mut(&view) {
                r.depends_on.insert(col);
            }
        }
        let mut functions = Vec::new();
        for row in &self.functions {
            functions.push((
                field(row, 0, "functions")?.to_owned(),
                field(row, 1, "functions")?.to_owned(),
            ));
        }
        Ok(Catalog::new(relations.into_values(), functions)
            .with_write_effects(write_effects)
            .with_stamp(self.stamp))
    }
}

/// Columns 5 and 6 of a relation row: the relations foreign-key actions
/// reach, as an array of OIDs, and whether user code runs on writes.
fn write_effects_of(row: &Row) -> Result<WriteEffects, LoadError> {
    let bad = || LoadError::BadRow {
        set: "relations",
        row: row.clone(),
    };
    let mut effects = WriteEffects::default();
    if let Some(Some(array)) = row.get(5) {
        let inner = array
            .strip_prefix('{')
            .and_then(|a| a.strip_suffix('}'))
            .ok_or_else(bad)?;
        for oid in inner.split(',').filter(|o| !o.is_empty()) {
            let oid: i64 = oid.parse().map_err(|_| bad())?;
            effects.cascades_to.push(oid as Oid);
        }
    }
    effects.runs_code = match row.get(6) {
        Some(Some(flag)) => match flag.as_str() {
            "true" | "t" => true,
            "false" | "f" => false,
            _ => return Err(bad()),
        },
        _ => false,
    };
    Ok(effects)
}
