//! What an expression is computed from: the operands of every expression
//! syntax the analysis follows, and the function PostgreSQL calls for the
//! special syntaxes (`EXTRACT`, `SUBSTRING`, `TRIM`...).

use sqlparser::ast::{CastKind, Expr, TrimWhereField};

use super::expr::variant;
use super::names;
use super::AnalysisError;

fn unsupported(what: impl Into<String>) -> AnalysisError {
    AnalysisError::Unsupported(what.into())
}

/// The operands of an expression computed from them, and the function
/// its syntax calls, if any.
pub(crate) fn operands(e: &Expr) -> Result<(Option<&'static str>, Vec<&Expr>), AnalysisError> {
    let mut out: Vec<&Expr> = Vec::new();
    let function = match e {
        Expr::IsFalse(x)
        | Expr::IsNotFalse(x)
        | Expr::IsTrue(x)
        | Expr::IsNotTrue(x)
        | Expr::IsNull(x)
        | Expr::IsNotNull(x)
        | Expr::IsUnknown(x)
        | Expr::IsNotUnknown(x)
        | Expr::IsJson { expr: x, .. }
        | Expr::IsNormalized { expr: x, .. }
        | Expr::Collate { expr: x, .. }
        | Expr::UnaryOp { expr: x, .. } => {
            out.push(x);
            None
        }
        Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
            out.extend([&**a, &**b]);
            None
        }
        Expr::AtTimeZone {
            timestamp,
            time_zone,
        } => {
            out.extend([&**timestamp, &**time_zone]);
            None
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            out.extend([&**expr, &**low, &**high]);
            None
        }
        Expr::Like {
            expr,
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            expr,
            pattern,
            escape_char,
            ..
        }
        | Expr::SimilarTo {
            expr,
            pattern,
            escape_char,
            ..
        } => {
            out.extend([&**expr, &**pattern]);
            out.extend(escape_char.as_deref());
            None
        }
        Expr::Cast {
            kind, expr, format, ..
        } => {
            if format.is_some() || !matches!(kind, CastKind::Cast | CastKind::DoubleColon) {
                return Err(unsupported(format!("cast {}", variant(kind))));
            }
            out.push(expr);
            None
        }
        Expr::Extract { expr, .. } => {
            out.push(expr);
            Some("extract")
        }
        Expr::Ceil { expr, .. } => {
            out.push(expr);
            Some("ceil")
        }
        Expr::Floor { expr, .. } => {
            out.push(expr);
            Some("floor")
        }
        Expr::Position { expr, r#in } => {
            out.extend([&**expr, &**r#in]);
            Some("position")
        }
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            out.push(expr);
            out.extend(substring_from.as_deref());
            out.extend(substring_for.as_deref());
            Some("substring")
        }
        Expr::Trim {
            trim_where,
            trim_what,
            expr,
            trim_characters,
        } => {
            out.push(expr);
            out.extend(trim_what.as_deref());
            out.extend(trim_characters.iter().flatten());
            Some(match trim_where {
                Some(TrimWhereField::Leading) => "ltrim",
                Some(TrimWhereField::Trailing) => "rtrim",
                _ => "btrim",
            })
        }
        Expr::Overlay {
            expr,
            overlay_what,
            overlay_from,
            overlay_for,
        } => {
            out.extend([&**expr, &**overlay_what, &**overlay_from]);
            out.extend(overlay_for.as_deref());
            Some("overlay")
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            out.extend(operand.as_deref());
            for w in conditions {
                out.extend([&w.condition, &w.result]);
            }
            out.extend(else_result.as_deref());
            None
        }
        Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
            out.extend(sets.iter().flatten());
            None
        }
        Expr::Tuple(items) => {
            out.extend(items);
            None
        }
        Expr::Array(array) => {
            out.extend(&array.elem);
            None
        }
        Expr::Interval(interval) => {
            out.push(&interval.value);
            None
        }
        other => return Err(unsupported(format!("expression {}", variant(other)))),
    };
    Ok((function, out))
}

/// The folded name parts of an identifier expression.
pub(crate) fn root_parts(e: &Expr) -> Option<Vec<String>> {
    match e {
        Expr::Identifier(id) => Some(vec![names::fold(id)]),
        Expr::CompoundIdentifier(ids) => Some(names::idents(ids)),
        _ => None,
    }
}
