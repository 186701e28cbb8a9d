//! Name resolution: the FROM items visible at each query level and how
//! column references, `t.*` and whole-row references resolve against them,
//! following PostgreSQL's scoping rules.

use smol_str::SmolStr;

use crate::catalog::ColumnId;

use super::colset::ColSet;
use super::AnalysisError;

/// Where a value comes from: the base columns it is computed from, and the
/// one base column it is an unchanged copy of, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lin {
    /// Base columns.
    pub cols: ColSet,
    /// The base column the value is, unchanged.
    pub direct: Option<ColumnId>,
}

impl Lin {
    /// The value of base column `col`.
    pub fn base(col: ColumnId) -> Lin {
        Lin {
            cols: ColSet::one(col),
            direct: Some(col),
        }
    }

    /// A value computed from `cols`.
    pub fn computed(cols: ColSet) -> Lin {
        Lin { cols, direct: None }
    }

    /// Adds `other`'s columns; the result is computed.
    pub fn add(&mut self, other: Lin) {
        self.cols.union(other.cols);
        self.direct = None;
    }

    /// The same columns, computed.
    pub fn into_computed(self) -> Lin {
        Lin::computed(self.cols)
    }
}

/// A named column of a FROM item or query result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Col {
    /// Name, as PostgreSQL reports it (inline up to 23 bytes, shared
    /// beyond: columns are copied from relation to FROM item to output
    /// without allocating).
    pub name: SmolStr,
    /// Lineage.
    pub lin: Lin,
}

/// A relation name that qualified references can use: a table alias, an
/// unaliased table, a CTE or subquery alias.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    /// The name references use.
    pub name: String,
    /// The schema, for an unaliased catalog relation (`schema.t.col`).
    pub schema: Option<String>,
    /// Its columns.
    pub columns: Vec<Col>,
    /// For a function whose result columns are not known: every column
    /// name resolves, to this lineage.
    pub open: Option<Lin>,
    /// A table-like catalog relation, which also has system columns.
    pub system: bool,
}

/// System columns of tables: metadata, not data.
const SYSTEM_COLUMNS: &[&str] = &["tableoid", "ctid", "xmin", "xmax", "cmin", "cmax"];

fn is_system_column(name: &str) -> bool {
    SYSTEM_COLUMNS.contains(&name)
}

impl Source {
    /// The whole row as one value.
    pub fn whole_row(&self) -> Lin {
        let mut lin = Lin::default();
        for c in &self.columns {
            lin.add(c.lin.clone());
        }
        if let Some(open) = &self.open {
            lin.add(open.clone());
        }
        lin.into_computed()
    }

    /// Column `name` of this source.
    fn column(&self, name: &str) -> Result<Option<Lin>, AnalysisError> {
        let mut found = self.columns.iter().filter(|c| *c.name == *name);
        match (found.next(), found.next()) {
            (Some(c), None) => Ok(Some(c.lin.clone())),
            (Some(_), Some(_)) => Err(ambiguous(&format!("{}.{name}", self.name))),
            (None, _) if self.system && is_system_column(name) => Ok(Some(Lin::default())),
            (None, _) => Ok(self.open.as_ref().map(|l| l.clone().into_computed())),
        }
    }
}

/// One entry of a FROM list, after joins: the columns `*` expands to (also
/// the columns unqualified names resolve against) and the sources inside.
#[derive(Clone, Debug, Default)]
pub(crate) struct FromItem {
    /// Columns in `*` order (USING/NATURAL join columns once).
    pub columns: Vec<Col>,
    /// Names usable as qualifiers.
    pub sources: Vec<Source>,
    /// Lineage of columns of functions with unknown result columns.
    pub open: Option<Lin>,
}

impl FromItem {
    /// An item made of one source.
    pub fn single(source: Source) -> FromItem {
        FromItem {
            columns: source.columns.clone(),
            open: source.open.clone(),
            sources: vec![source],
        }
    }

    /// Unqualified matches of `name` in this item, in order: its columns,
    /// the open lineage of functions with unknown columns, the system
    /// columns of its table-like sources. Nothing is cloned until the one
    /// match is taken ([`Match::lin`]).
    fn matches<'s>(&'s self, name: &'s str) -> impl Iterator<Item = Match<'s>> + 's {
        let system_name = is_system_column(name);
        let columns = self
            .columns
            .iter()
            .filter(move |c| *c.name == *name)
            .map(|c| Match::Column(&c.lin));
        let open = self.open.iter().map(Match::Open);
        let system = self
            .sources
            .iter()
            .filter(move |s| system_name && s.system && !s.columns.iter().any(|c| *c.name == *name))
            .map(|_| Match::System);
        columns.chain(open).chain(system)
    }
}

/// One unqualified match of a name in a FROM item.
enum Match<'s> {
    /// A column, with its lineage.
    Column(&'s Lin),
    /// Any column of a function whose result columns are unknown.
    Open(&'s Lin),
    /// A system column: metadata, no lineage.
    System,
}

impl Match<'_> {
    /// The lineage of the matched value.
    fn lin(self) -> Lin {
        match self {
            Match::Column(lin) => lin.clone(),
            Match::Open(lin) => lin.clone().into_computed(),
            Match::System => Lin::default(),
        }
    }
}

/// What references see of a level while its FROM list is being built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum View {
    /// The finished items.
    #[default]
    Items,
    /// Nothing (inside a non-LATERAL subquery in this FROM list).
    Hidden,
    /// The finished items and the left sides of the joins being built
    /// (inside a LATERAL item).
    Lateral,
    /// Only the join being built (its ON condition).
    JoinCondition,
}

/// The FROM items of one query level.
#[derive(Clone, Debug, Default)]
pub(crate) struct Level {
    /// Finished items.
    pub items: Vec<FromItem>,
    /// Left sides of the joins being built, innermost last.
    pub pending: Vec<FromItem>,
    /// What is visible now.
    pub view: View,
}

impl Level {
    /// A level of finished items.
    pub fn of(items: Vec<FromItem>) -> Level {
        Level {
            items,
            ..Level::default()
        }
    }

    /// The items references can see now.
    fn visible(&self) -> impl Iterator<Item = &FromItem> {
        let (items, pending): (&[FromItem], &[FromItem]) = match self.view {
            View::Items => (&self.items, &[]),
            View::Hidden => (&[], &[]),
            View::Lateral => (&self.items, &self.pending),
            View::JoinCondition => (
                &[],
                self.pending.last().map(std::slice::from_ref).unwrap_or(&[]),
            ),
        };
        items.iter().chain(pending)
    }
}

fn ambiguous(name: &str) -> AnalysisError {
    AnalysisError::Unsupported(format!("ambiguous reference {name}"))
}

fn unknown<S: AsRef<str>>(parts: &[S]) -> AnalysisError {
    let parts: Vec<&str> = parts.iter().map(AsRef::as_ref).collect();
    AnalysisError::UnknownColumn(parts.join("."))
}

fn visible(levels: &[Level]) -> impl Iterator<Item = &Level> {
    levels.iter().rev().filter(|l| l.view != View::Hidden)
}

/// The innermost source called `name` (in `schema`, when given).
pub(crate) fn find_source<'a>(
    levels: &'a [Level],
    schema: Option<&str>,
    name: &str,
) -> Result<Option<&'a Source>, AnalysisError> {
    for level in visible(levels) {
        let mut found = level.visible().flat_map(|i| i.sources.iter()).filter(|s| {
            s.name == name && schema.is_none_or(|sch| s.schema.as_deref() == Some(sch))
        });
        match (found.next(), found.next()) {
            (Some(s), None) => return Ok(Some(s)),
            (Some(_), Some(_)) => return Err(ambiguous(name)),
            (None, _) => {}
        }
    }
    Ok(None)
}

/// The column an unqualified `name` denotes, innermost level first.
pub(crate) fn unqualified(levels: &[Level], name: &str) -> Result<Option<Lin>, AnalysisError> {
    for level in visible(levels) {
        let mut found = level.visible().flat_map(|i| i.matches(name));
        match (found.next(), found.next()) {
            (None, _) => {}
            (Some(one), None) => return Ok(Some(one.lin())),
            (Some(_), Some(_)) => return Err(ambiguous(name)),
        }
    }
    Ok(None)
}

/// Resolves a column reference of one to four folded parts. A name that is
/// no column but a relation is a whole-row reference. A name with more
/// parts than relation and column selects a field of a composite column:
/// it carries the whole column's lineage.
pub(crate) fn resolve<S: AsRef<str>>(levels: &[Level], parts: &[S]) -> Result<Lin, AnalysisError> {
    match parts {
        [name] => {
            let name = name.as_ref();
            if let Some(lin) = unqualified(levels, name)? {
                return Ok(lin);
            }
            match find_source(levels, None, name)? {
                Some(source) => Ok(source.whole_row()),
                None => Err(unknown(parts)),
            }
        }
        [rel, col] => {
            let (rel, col) = (rel.as_ref(), col.as_ref());
            if let Some(source) = find_source(levels, None, rel)? {
                return source.column(col)?.ok_or_else(|| unknown(parts));
            }
            unqualified(levels, rel)?
                .map(Lin::into_computed)
                .ok_or_else(|| unknown(parts))
        }
        [schema, rel, col] => {
            let (schema, rel, col) = (schema.as_ref(), rel.as_ref(), col.as_ref());
            if let Some(source) = find_source(levels, Some(schema), rel)? {
                return source.column(col)?.ok_or_else(|| unknown(parts));
            }
            if let Some(source) = find_source(levels, None, schema)? {
                return source
                    .column(rel)?
                    .map(Lin::into_computed)
                    .ok_or_else(|| unknown(parts));
            }
            Err(unknown(parts))
        }
        [first, second, third, _] => {
            let (first, second, third) = (first.as_ref(), second.as_ref(), third.as_ref());
            if let Some(source) = find_source(levels, Some(first), second)? {
                return source
                    .column(third)?
                    .map(Lin::into_computed)
                    .ok_or_else(|| unknown(parts));
            }
            let rest = &parts[1..];
            resolve(levels, rest).map_err(|_| unknown(parts))
        }
        _ => Err(AnalysisError::Unsupported(format!(
            "column reference with {} parts",
            parts.len()
        ))),
    }
}

/// The columns `*` expands to at the innermost level.
pub(crate) fn star(levels: &[Level]) -> Result<Vec<Col>, AnalysisError> {
    let level = levels
        .last()
        .filter(|l| !l.items.is_empty())
        .ok_or_else(|| AnalysisError::Unsupported("* without a FROM clause".into()))?;
    let mut out = Vec::new();
    for item in &level.items {
        if item.open.is_some() {
            return Err(AnalysisError::Unsupported(
                "* over a function whose result columns are unknown".into(),
            ));
        }
        out.extend(item.columns.iter().cloned());
    }
    Ok(out)
}

/// The columns `rel.*` (or `schema.rel.*`) expands to.
pub(crate) fn qualified_star(
    levels: &[Level],
    parts: &[String],
) -> Result<Vec<Col>, AnalysisError> {
    let source = match parts {
        [rel] => find_source(levels, None, rel)?,
        [schema, rel] => find_source(levels, Some(schema), rel)?,
        _ => None,
    }
    .ok_or_else(|| AnalysisError::UnknownRelation(parts.join(".")))?;
    if source.open.is_some() {
        return Err(AnalysisError::Unsupported(format!(
            "{}.* over a function whose result columns are unknown",
            source.name
        )));
    }
    Ok(source.columns.clone())
}

/// The whole-row value of `rel` (`rel.*` used as a value).
pub(crate) fn whole_row(levels: &[Level], parts: &[String]) -> Result<Lin, AnalysisError> {
    let source = match parts {
        [rel] => find_source(levels, None, rel)?,
        [schema, rel] => find_source(levels, Some(schema), rel)?,
        _ => None,
    }
    .ok_or_else(|| AnalysisError::UnknownRelation(parts.join(".")))?;
    Ok(source.whole_row())
}

/// Renames the first columns after an alias column list; more aliases
/// than columns is an error.
pub(crate) fn rename(
    mut columns: Vec<Col>,
    aliases: &[String],
    what: impl std::fmt::Display,
) -> Result<Vec<Col>, AnalysisError> {
    if aliases.len() > columns.len() {
        return Err(AnalysisError::Unsupported(format!(
            "{what} has {} columns but {} aliases",
            columns.len(),
            aliases.len()
        )));
    }
    for (c, a) in columns.iter_mut().zip(aliases) {
        c.name = a.as_str().into();
    }
    Ok(columns)
}
