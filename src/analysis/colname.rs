//! The name PostgreSQL gives an unaliased select-list expression
//! (`FigureColname`): the column or function name, `case`, `exists`...,
//! and `?column?` when nothing better applies.

use sqlparser::ast::{AccessExpr, DataType, Expr, FunctionArguments, TrimWhereField};

use super::names;

/// The output name of `e`.
pub(crate) fn of(e: &Expr) -> String {
    figure(e).unwrap_or_else(|| "?column?".to_owned())
}

/// Looks through casts, parentheses, COLLATE and subscripts (in a loop:
/// chains of them can be long) to the expression that names the column;
/// failing a name there, the outermost cast's type names it.
fn figure(e: &Expr) -> Option<String> {
    let mut current = e;
    let mut cast: Option<&DataType> = None;
    loop {
        match current {
            Expr::Cast {
                expr, data_type, ..
            } => {
                cast = cast.or(Some(data_type));
                current = expr;
            }
            Expr::Nested(inner) | Expr::Collate { expr: inner, .. } => current = inner,
            Expr::CompoundFieldAccess { root, access_chain } => {
                match access_chain.iter().rev().find_map(|a| match a {
                    AccessExpr::Dot(Expr::Identifier(id)) => Some(names::fold(id)),
                    _ => None,
                }) {
                    Some(name) => return Some(name),
                    None => current = root,
                }
            }
            _ => break,
        }
    }
    named(current).or_else(|| cast.map(type_name))
}

fn named(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id) => Some(names::fold(id)),
        Expr::CompoundIdentifier(ids) => ids.last().map(names::fold),
        Expr::Function(f) => {
            let name = f.name.0.last()?.as_ident().map(names::fold)?;
            let lower = name.as_str();
            match (lower, &f.args) {
                ("array", FunctionArguments::Subquery(_)) => Some("array".into()),
                _ => Some(name),
            }
        }
        Expr::Case { .. } => Some("case".into()),
        Expr::Exists { .. } => Some("exists".into()),
        Expr::Subquery(q) => match &*q.body {
            sqlparser::ast::SetExpr::Select(s) => match s.projection.first()? {
                sqlparser::ast::SelectItem::UnnamedExpr(e) => figure(e),
                sqlparser::ast::SelectItem::ExprWithAlias { alias, .. } => Some(names::fold(alias)),
                _ => None,
            },
            _ => None,
        },
        Expr::Array(_) => Some("array".into()),
        Expr::Tuple(_) => Some("row".into()),
        Expr::Extract { .. } => Some("extract".into()),
        Expr::Substring { .. } => Some("substring".into()),
        Expr::Position { .. } => Some("position".into()),
        Expr::Overlay { .. } => Some("overlay".into()),
        Expr::Ceil { .. } => Some("ceil".into()),
        Expr::Floor { .. } => Some("floor".into()),
        Expr::Trim { trim_where, .. } => Some(
            match trim_where {
                Some(TrimWhereField::Leading) => "ltrim",
                Some(TrimWhereField::Trailing) => "rtrim",
                _ => "btrim",
            }
            .into(),
        ),
        Expr::AtTimeZone { .. } => Some("timezone".into()),
        Expr::Interval(_) => Some("interval".into()),
        Expr::TypedString(t) => Some(type_name(&t.data_type)),
        Expr::GroupingSets(_) | Expr::Cube(_) | Expr::Rollup(_) => None,
        _ => None,
    }
}

/// The name PostgreSQL prints for a type in a column heading.
fn type_name(t: &DataType) -> String {
    let text = t.to_string().to_ascii_lowercase();
    let base = text.split('(').next().unwrap_or("").trim();
    let base = base.rsplit('.').next().unwrap_or(base).trim_matches('"');
    match base {
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "boolean" | "bool" => "bool",
        "real" | "float4" => "float4",
        "double precision" | "float" | "float8" => "float8",
        "character varying" | "varchar" => "varchar",
        "character" | "char" => "bpchar",
        "decimal" | "numeric" => "numeric",
        "timestamp with time zone" | "timestamptz" => "timestamptz",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "time with time zone" | "timetz" => "timetz",
        "time" | "time without time zone" => "time",
        other => other,
    }
    .to_owned()
}
