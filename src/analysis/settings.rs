//! What a `set_config` call changes, when its arguments say so: a
//! constant name, or pg_dump's idiom that takes the name from the one
//! `pg_settings` row a `WHERE name = '...'` selects.

use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    Query, SelectItem, SetExpr, TableFactor, Value,
};

use super::names;
use super::StatementFacts;
use crate::catalog::Catalog;

/// The text of a positional argument written as a constant string
/// (`'name'`, `$$name$$`, or either cast to `text`).
pub(crate) fn constant_string(arg: &FunctionArg) -> Option<String> {
    let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg else {
        return None;
    };
    constant_expr(e)
}

fn constant_expr(e: &Expr) -> Option<String> {
    match e {
        Expr::Nested(inner) => constant_expr(inner),
        Expr::Cast {
            kind: CastKind::DoubleColon | CastKind::Cast,
            expr,
            data_type: DataType::Text,
            format: None,
            ..
        } => constant_expr(expr),
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            Value::DollarQuotedString(d) => Some(d.value.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Names the one `set_config` call of `SELECT set_config(name, ...) FROM
/// pg_settings WHERE name = 'x'` (what pg_dump sends for
/// `restrict_nonsystem_relation_kind`): it can only change setting `x`.
/// The statement must read `pg_catalog.pg_settings` and nothing else.
pub(crate) fn name_from_pg_settings(q: &Query, catalog: &Catalog, facts: &mut StatementFacts) {
    let [setting] = facts.settings.as_mut_slice() else {
        return;
    };
    if setting.name.is_some() || q.with.is_some() || facts.reads.is_empty() {
        return;
    }
    let only_pg_settings = facts.reads.iter().all(|oid| {
        catalog
            .relation(*oid)
            .is_some_and(|r| r.schema == "pg_catalog" && r.name == "pg_settings")
    });
    let SetExpr::Select(select) = &*q.body else {
        return;
    };
    let [from] = select.from.as_slice() else {
        return;
    };
    let from_pg_settings =
        from.joins.is_empty() && matches!(&from.relation, TableFactor::Table { args: None, .. });
    let call_takes_name = match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(Expr::Function(f))
        | SelectItem::ExprWithAlias {
            expr: Expr::Function(f),
            ..
        }] => match &f.args {
            FunctionArguments::List(list) => matches!(
                list.args.first(),
                Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) if is_name_column(e)
            ),
            _ => false,
        },
        _ => false,
    };
    let selected = match &select.selection {
        Some(Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        }) if is_name_column(left) => constant_expr(right),
        Some(Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        }) if is_name_column(right) => constant_expr(left),
        _ => None,
    };
    if only_pg_settings && from_pg_settings && call_takes_name {
        if let Some(name) = selected {
            setting.name = Some(name.to_lowercase());
        }
    }
}

/// `name` or `alias.name`: with `pg_settings` the only relation, its
/// `name` column.
fn is_name_column(e: &Expr) -> bool {
    let parts = match e {
        Expr::Identifier(id) => vec![names::fold(id)],
        Expr::CompoundIdentifier(ids) if ids.len() == 2 => names::idents(ids),
        _ => return false,
    };
    parts.last().is_some_and(|p| p == "name")
}
