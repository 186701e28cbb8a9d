//! FROM lists: tables, views, CTE references, derived tables, table
//! functions, joins (USING/NATURAL columns once, with both sides'
//! lineage) and LATERAL visibility.
//!
//! A non-LATERAL subquery in FROM cannot see the other items of its level;
//! a LATERAL one (and every function in FROM, which PostgreSQL treats as
//! LATERAL) sees the items before it, including the left sides of the
//! joins it is on the right of. A JOIN's ON condition sees only the two
//! sides of that join (and outer query levels).

use sqlparser::ast::{
    Expr, FunctionArg, Join, JoinConstraint, JoinOperator, ObjectName, Query, TableAlias,
    TableFactor, TableInheritance, TableSampleKind, TableWithJoins, XmlTableColumnOption,
};

use super::analyzer::Analyzer;
use super::expr::variant;
use super::names;
use super::query::aliased;
use super::scope::{self, Col, FromItem, Lin, Source, View};
use super::srf;
use super::AnalysisError;

fn unsupported(what: impl Into<String>) -> AnalysisError {
    AnalysisError::Unsupported(what.into())
}

/// How a join combines the rows of its sides.
#[derive(Clone, Copy, PartialEq, Eq)]
enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

/// What a table function's result looks like.
enum Shape {
    /// One column named after the alias (or the function).
    Scalar,
    /// Columns with these names.
    Named(Vec<String>),
    /// Unknown columns.
    Open,
}

impl Analyzer<'_> {
    /// Adds the items of a FROM list to the innermost level.
    pub fn add_from_list(&mut self, from: &[TableWithJoins]) -> Result<(), AnalysisError> {
        for twj in from {
            let item = self.table_with_joins(twj)?;
            self.level().items.push(item);
        }
        Ok(())
    }

    /// One FROM entry with its joins, as one item.
    pub fn table_with_joins(&mut self, twj: &TableWithJoins) -> Result<FromItem, AnalysisError> {
        let mut left = self.factor(&twj.relation)?;
        for join in &twj.joins {
            left = self.join(left, join)?;
        }
        Ok(left)
    }

    fn join(&mut self, left: FromItem, join: &Join) -> Result<FromItem, AnalysisError> {
        if join.global {
            return Err(unsupported("GLOBAL JOIN"));
        }
        let (kind, constraint) = match &join.join_operator {
            JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinKind::Inner, c),
            JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (JoinKind::Left, c),
            JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (JoinKind::Right, c),
            JoinOperator::FullOuter(c) => (JoinKind::Full, c),
            JoinOperator::CrossJoin(c @ JoinConstraint::None) => (JoinKind::Inner, c),
            other => return Err(unsupported(format!("join {}", variant(other)))),
        };
        self.level().pending.push(left);
        let right = self.factor(&join.relation);
        let left = self.level().pending.pop().unwrap_or_default();
        let right = right?;
        match constraint {
            JoinConstraint::On(e) => {
                self.level().pending.push(concat(left, right));
                let result = self.with_view(View::JoinCondition, |a| a.predicate_expr(e));
                let joined = self.level().pending.pop().unwrap_or_default();
                result.map(|()| joined)
            }
            JoinConstraint::Using(cols) => {
                let cols = using_names(cols)?;
                using_join(left, right, &cols, kind, None)
            }
            JoinConstraint::UsingAlias(cols, alias) => {
                let cols = using_names(cols)?;
                using_join(left, right, &cols, kind, Some(names::fold(alias)))
            }
            JoinConstraint::Natural => {
                if left.open.is_some() || right.open.is_some() {
                    return Err(unsupported(
                        "NATURAL JOIN with a function of unknown columns",
                    ));
                }
                let mut common: Vec<String> = Vec::new();
                for c in &left.columns {
                    if right.columns.iter().any(|r| r.name == c.name)
                        && !common.iter().any(|n| **n == *c.name)
                    {
                        common.push(c.name.to_string());
                    }
                }
                using_join(left, right, &common, kind, None)
            }
            JoinConstraint::None => Ok(concat(left, right)),
        }
    }

    /// Runs `f` with the innermost level seen as `view`.
    fn with_view<T>(
        &mut self,
        view: View,
        f: impl FnOnce(&mut Self) -> Result<T, AnalysisError>,
    ) -> Result<T, AnalysisError> {
        let was = std::mem::replace(&mut self.level().view, view);
        let result = f(self);
        self.level().view = was;
        result
    }

    /// Runs `f` seeing the finished items and the left sides of the joins
    /// being built (a LATERAL item).
    fn lateral<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, AnalysisError>,
    ) -> Result<T, AnalysisError> {
        self.with_view(View::Lateral, f)
    }

    /// Runs `f` without seeing the innermost level (a non-LATERAL
    /// subquery in FROM).
    fn hidden<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, AnalysisError>,
    ) -> Result<T, AnalysisError> {
        self.with_view(View::Hidden, f)
    }

    /// One FROM item.
    pub fn factor(&mut self, factor: &TableFactor) -> Result<FromItem, AnalysisError> {
        self.nested(|a| a.factor_inner(factor))
    }

    /// Dispatch only, to keep the frames on the recursion path small.
    fn factor_inner(&mut self, factor: &TableFactor) -> Result<FromItem, AnalysisError> {
        match factor {
            TableFactor::Table { .. } => self.table_factor(factor),
            TableFactor::Function {
                name,
                args,
                with_ordinality,
                alias,
                ..
            } => self.lateral(|a| a.table_function(name, args, alias.as_ref(), *with_ordinality)),
            TableFactor::UNNEST {
                alias,
                array_exprs,
                with_offset,
                with_offset_alias,
                with_ordinality,
            } => {
                if *with_offset || with_offset_alias.is_some() {
                    return Err(unsupported("UNNEST WITH OFFSET"));
                }
                self.lateral(|a| a.unnest(array_exprs, alias.as_ref(), *with_ordinality))
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                sample,
            } => {
                if sample.is_some() {
                    return Err(unsupported("TABLESAMPLE on a subquery"));
                }
                self.derived(*lateral, subquery, alias.as_ref())
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => self.nested_join(table_with_joins, alias.as_ref()),
            TableFactor::XmlTable { .. } => self.lateral(|a| a.xml_table(factor)),
            other => Err(unsupported(format!("FROM item {}", variant(other)))),
        }
    }

    /// A table, view, CTE reference, or function written as a table.
    fn table_factor(&mut self, factor: &TableFactor) -> Result<FromItem, AnalysisError> {
        let TableFactor::Table {
            name,
            alias,
            args,
            with_hints,
            version,
            with_ordinality,
            partitions,
            json_path,
            sample,
            index_directives,
            inheritance,
        } = factor
        else {
            return Err(unsupported("FROM item"));
        };
        if !with_hints.is_empty()
            || version.is_some()
            || !partitions.is_empty()
            || json_path.is_some()
            || !index_directives.is_empty()
        {
            return Err(unsupported("non-PostgreSQL table options"));
        }
        let item = match args {
            Some(args) => {
                if args.settings.is_some() || inheritance.is_some() {
                    return Err(unsupported("table function options"));
                }
                self.lateral(|a| {
                    a.table_function(name, &args.args, alias.as_ref(), *with_ordinality)
                })?
            }
            None => {
                if *with_ordinality {
                    return Err(unsupported("WITH ORDINALITY on a table"));
                }
                let only = matches!(inheritance, Some(TableInheritance::Only { .. }));
                self.relation_item(&names::parts(name)?, alias.as_ref(), only)?
            }
        };
        if let Some(sample) = sample {
            let (TableSampleKind::BeforeTableAlias(sample)
            | TableSampleKind::AfterTableAlias(sample)) = sample;
            if sample.bucket.is_some() || sample.offset.is_some() {
                return Err(unsupported("TABLESAMPLE form"));
            }
            if let Some(quantity) = &sample.quantity {
                self.predicate_expr(&quantity.value)?;
            }
        }
        Ok(item)
    }

    /// A subquery in FROM.
    fn derived(
        &mut self,
        lateral: bool,
        subquery: &Query,
        alias: Option<&TableAlias>,
    ) -> Result<FromItem, AnalysisError> {
        let columns = if lateral {
            self.lateral(|a| a.subquery(subquery))?
        } else {
            self.hidden(|a| a.subquery(subquery))?
        };
        match alias {
            Some(alias) => aliased("", None, columns, Some(alias)),
            None => Ok(FromItem {
                columns,
                sources: Vec::new(),
                open: None,
            }),
        }
    }

    /// A parenthesized join; an alias hides the names inside.
    fn nested_join(
        &mut self,
        twj: &TableWithJoins,
        alias: Option<&TableAlias>,
    ) -> Result<FromItem, AnalysisError> {
        let item = self.table_with_joins(twj)?;
        match alias {
            None => Ok(item),
            Some(alias) => {
                if item.open.is_some() {
                    return Err(unsupported(
                        "aliased join with a function of unknown columns",
                    ));
                }
                aliased("", None, item.columns, Some(alias))
            }
        }
    }

    /// XMLTABLE: its columns are computed from the document, the row
    /// expression and the column paths and defaults.
    fn xml_table(&mut self, factor: &TableFactor) -> Result<FromItem, AnalysisError> {
        let TableFactor::XmlTable {
            namespaces,
            row_expression,
            passing,
            columns,
            alias,
        } = factor
        else {
            return Err(unsupported("FROM item"));
        };
        if !namespaces.is_empty() {
            return Err(unsupported("XMLNAMESPACES"));
        }
        self.call(None, "xmltable");
        let mut lin = self.expr(row_expression)?;
        for arg in &passing.arguments {
            lin.add(self.expr(&arg.expr)?);
        }
        for c in columns {
            if let XmlTableColumnOption::NamedInfo { path, default, .. } = &c.option {
                for e in [path, default].into_iter().flatten() {
                    lin.add(self.expr(e)?);
                }
            }
        }
        self.predicate(lin.clone());
        let names: Vec<String> = columns.iter().map(|c| names::fold(&c.name)).collect();
        function_item("xmltable", Shape::Named(names), lin, alias.as_ref(), false)
    }

    /// A function in FROM.
    fn table_function(
        &mut self,
        name: &ObjectName,
        args: &[FunctionArg],
        alias: Option<&TableAlias>,
        ordinality: bool,
    ) -> Result<FromItem, AnalysisError> {
        let parts = names::parts(name)?;
        let setting = self.acc.settings.len();
        self.record_call(&parts)?;
        let is_setting = self.acc.settings.len() > setting;
        let mut lin = Lin::default();
        for arg in args {
            lin.add(self.function_arg(arg)?);
        }
        // How many rows a function in FROM yields depends on its
        // arguments (`generate_series(1, ascii(email))`): they filter.
        self.predicate(lin.clone());
        if is_setting {
            let setting_name = args.first().and_then(super::settings::constant_string);
            self.describe_setting(setting, setting_name, &lin);
        }
        let fname = parts.last().cloned().unwrap_or_default();
        let builtin = match parts.as_slice() {
            [name] => !self.catalog.has_user_function_named(name),
            [schema, _] => schema == "pg_catalog" || schema == "information_schema",
            _ => false,
        };
        let shape = match alias.filter(|a| a.columns.iter().any(|c| c.data_type.is_some())) {
            Some(alias) => {
                Shape::Named(alias.columns.iter().map(|c| names::fold(&c.name)).collect())
            }
            None if builtin => self.builtin_shape(&fname, args)?,
            None => Shape::Open,
        };
        function_item(&fname, shape, lin, alias, ordinality)
    }

    /// `UNNEST(a, b...)` in FROM.
    fn unnest(
        &mut self,
        exprs: &[Expr],
        alias: Option<&TableAlias>,
        ordinality: bool,
    ) -> Result<FromItem, AnalysisError> {
        self.call(None, "unnest");
        let lin = self.exprs(exprs)?;
        self.predicate(lin.clone());
        let shape = match exprs.len() {
            1 => Shape::Scalar,
            n => Shape::Named(vec!["unnest".to_owned(); n]),
        };
        function_item("unnest", shape, lin, alias, ordinality)
    }

    /// The result columns of a built-in function: its OUT parameters, the
    /// row type of a `NULL::rel` argument for the `populate_record`
    /// family, or one column.
    fn builtin_shape(&mut self, name: &str, args: &[FunctionArg]) -> Result<Shape, AnalysisError> {
        if let Some(cols) = srf::record_columns(name) {
            return Ok(Shape::Named(cols.iter().map(|c| (*c).to_owned()).collect()));
        }
        Ok(match name {
            "unnest" if args.len() > 1 => Shape::Named(vec!["unnest".to_owned(); args.len()]),
            "json_populate_record"
            | "jsonb_populate_record"
            | "json_populate_recordset"
            | "jsonb_populate_recordset" => match self.record_type_columns(args.first())? {
                Some(cols) => Shape::Named(cols),
                None => Shape::Open,
            },
            "json_to_record" | "json_to_recordset" | "jsonb_to_record" | "jsonb_to_recordset"
            | "record_in" | "record_recv" => Shape::Open,
            _ => Shape::Scalar,
        })
    }

    /// The column names of the relation a `NULL::rel` argument names.
    fn record_type_columns(
        &mut self,
        arg: Option<&FunctionArg>,
    ) -> Result<Option<Vec<String>>, AnalysisError> {
        let Some(FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(Expr::Cast {
            data_type: sqlparser::ast::DataType::Custom(type_name, modifiers),
            ..
        }))) = arg
        else {
            return Ok(None);
        };
        if !modifiers.is_empty() {
            return Ok(None);
        }
        let parts = names::parts(type_name)?;
        Ok(self
            .resolve_relation(&parts)
            .ok()
            .map(|rel| rel.columns.iter().map(|c| c.name.clone()).collect()))
    }
}

/// The FROM item of a function result.
fn function_item(
    fname: &str,
    shape: Shape,
    lin: Lin,
    alias: Option<&TableAlias>,
    ordinality: bool,
) -> Result<FromItem, AnalysisError> {
    let alias_name = alias.map(|a| names::fold(&a.name));
    let renames: Vec<String> = alias
        .map(|a| a.columns.iter().map(|c| names::fold(&c.name)).collect())
        .unwrap_or_default();
    let col = |name: String| Col {
        name: name.into(),
        lin: lin.clone(),
    };
    let (mut columns, open) = match shape {
        Shape::Scalar => (
            vec![col(alias_name.clone().unwrap_or_else(|| fname.to_owned()))],
            None,
        ),
        Shape::Named(names) => (names.into_iter().map(col).collect(), None),
        Shape::Open => (
            renames.iter().cloned().map(col).collect(),
            Some(lin.clone()),
        ),
    };
    if open.is_none() {
        if ordinality {
            columns.push(Col {
                name: "ordinality".into(),
                lin: Lin::default(),
            });
        }
        columns = scope::rename(columns, &renames, fname)?;
    }
    Ok(FromItem::single(Source {
        name: alias_name.unwrap_or_else(|| fname.to_owned()),
        schema: None,
        columns,
        open,
        system: false,
    }))
}

fn using_names(cols: &[ObjectName]) -> Result<Vec<String>, AnalysisError> {
    cols.iter()
        .map(|c| match names::parts(c)?.as_slice() {
            [name] => Ok(name.clone()),
            _ => Err(unsupported(format!("USING column {c}"))),
        })
        .collect()
}

fn concat(left: FromItem, right: FromItem) -> FromItem {
    let open = match (left.open, right.open) {
        (None, None) => None,
        (Some(l), None) | (None, Some(l)) => Some(l),
        (Some(mut l), Some(r)) => {
            l.add(r);
            Some(l)
        }
    };
    let mut columns = left.columns;
    columns.extend(right.columns);
    let mut sources = left.sources;
    sources.extend(right.sources);
    FromItem {
        columns,
        sources,
        open,
    }
}

/// The one column of `cols` called `name`.
fn unique_index(cols: &[Col], name: &str, side: &str) -> Result<usize, AnalysisError> {
    let mut found = cols.iter().enumerate().filter(|(_, c)| *c.name == *name);
    match (found.next(), found.next()) {
        (Some((i, _)), None) => Ok(i),
        (Some(_), Some(_)) => Err(unsupported(format!(
            "ambiguous reference: common column {name} appears more than once in the {side} table"
        ))),
        (None, _) => Err(AnalysisError::UnknownColumn(name.to_owned())),
    }
}

/// A USING / NATURAL join: the common columns first, once, computed from
/// both sides; then the other columns of the left and right sides.
fn using_join(
    left: FromItem,
    right: FromItem,
    common: &[String],
    kind: JoinKind,
    alias: Option<String>,
) -> Result<FromItem, AnalysisError> {
    if left.open.is_some() || right.open.is_some() {
        return Err(unsupported("USING join with a function of unknown columns"));
    }
    let mut left_used = vec![false; left.columns.len()];
    let mut right_used = vec![false; right.columns.len()];
    let mut merged = Vec::new();
    for name in common {
        let li = unique_index(&left.columns, name, "left")?;
        let ri = unique_index(&right.columns, name, "right")?;
        if let (Some(l), Some(r)) = (left.columns.get(li), right.columns.get(ri)) {
            let mut lin = l.lin.clone();
            lin.cols.extend(r.lin.cols.iter().copied());
            lin.direct = match kind {
                JoinKind::Inner | JoinKind::Left => l.lin.direct,
                JoinKind::Right => r.lin.direct,
                JoinKind::Full => None,
            };
            merged.push(Col {
                name: name.as_str().into(),
                lin,
            });
        }
        if let Some(u) = left_used.get_mut(li) {
            *u = true;
        }
        if let Some(u) = right_used.get_mut(ri) {
            *u = true;
        }
    }
    let mut columns = merged.clone();
    columns.extend(
        left.columns
            .into_iter()
            .zip(&left_used)
            .filter(|(_, used)| !**used)
            .map(|(c, _)| c),
    );
    columns.extend(
        right
            .columns
            .into_iter()
            .zip(&right_used)
            .filter(|(_, used)| !**used)
            .map(|(c, _)| c),
    );
    let mut sources = left.sources;
    sources.extend(right.sources);
    if let Some(alias) = alias {
        sources.push(Source {
            name: alias,
            schema: None,
            columns: merged,
            open: None,
            system: false,
        });
    }
    Ok(FromItem {
        columns,
        sources,
        open: None,
    })
}
