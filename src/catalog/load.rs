//! Reading the catalog: the queries, and turning their text rows into a
//! [`Catalog`]. The queries are plain SQL so any connection can run them.

use std::collections::{BTreeSet, HashMap};

use super::{Catalog, Column, ColumnId, Oid, RelKind, Relation, WriteEffects};

/// The catalog queries, one simple-query string with five statements whose
/// result sets, in order, make a [`CatalogRows`].
pub const LOAD_SQL: &str = "\
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
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')";

/// One text-format row (NULL is `None`).
pub type Row = Vec<Option<String>>;

/// The five result sets of [`LOAD_SQL`].
#[derive(Clone, Debug, Default)]
pub struct CatalogRows {
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
    #[error("catalog query returned {0} result sets, expected 5")]
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

impl CatalogRows {
    /// Splits five result sets, in [`LOAD_SQL`] order.
    pub fn from_sets(mut sets: Vec<Vec<Row>>) -> Result<CatalogRows, LoadError> {
        if sets.len() != 5 {
            return Err(LoadError::ResultSets(sets.len()));
        }
        let functions = sets.pop().unwrap_or_default();
        let view_deps = sets.pop().unwrap_or_default();
        let inherits = sets.pop().unwrap_or_default();
        let columns = sets.pop().unwrap_or_default();
        let relations = sets.pop().unwrap_or_default();
        Ok(CatalogRows {
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
        Ok(Catalog::new(relations.into_values(), functions).with_write_effects(write_effects))
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
