//! Operators and sort orders PostgreSQL runs as built-ins: anything else
//! could call a user-defined function over the data and is refused.

use sqlparser::ast::{BinaryOperator, OrderByExpr, OrderBySort};

use super::AnalysisError;

fn unsupported(what: impl Into<String>) -> AnalysisError {
    AnalysisError::Unsupported(what.into())
}

/// Refuses `ORDER BY ... USING op` with an operator that may not be a
/// built-in comparison (it would run its function over the data), and
/// non-PostgreSQL ordering options.
pub(crate) fn check_sort(o: &OrderByExpr) -> Result<(), AnalysisError> {
    if o.with_fill.is_some() {
        return Err(unsupported("WITH FILL"));
    }
    if let Some(OrderBySort::Using(op)) = &o.options.sort {
        let parts: Vec<String> = op.0.iter().map(|p| p.to_string()).collect();
        let comparison = |op: &str| {
            matches!(
                op,
                "<" | ">" | "<=" | ">=" | "~<~" | "~>~" | "~<=~" | "~>=~"
            )
        };
        let builtin = match parts.as_slice() {
            [op] => comparison(op),
            [schema, op] => schema == "pg_catalog" && comparison(op),
            _ => false,
        };
        if !builtin {
            return Err(unsupported(format!("ORDER BY USING {op}")));
        }
    }
    Ok(())
}

/// Refuses operators that are not PostgreSQL built-ins.
pub(crate) fn check_operator(op: &BinaryOperator) -> Result<(), AnalysisError> {
    use BinaryOperator as B;
    match op {
        B::PGCustomBinaryOperator(parts)
            if parts.len() == 2 && parts.first().is_some_and(|s| s == "pg_catalog") =>
        {
            Ok(())
        }
        B::Plus
        | B::Minus
        | B::Multiply
        | B::Divide
        | B::Modulo
        | B::StringConcat
        | B::Gt
        | B::Lt
        | B::GtEq
        | B::LtEq
        | B::Eq
        | B::NotEq
        | B::And
        | B::Or
        | B::BitwiseOr
        | B::BitwiseAnd
        | B::PGBitwiseXor
        | B::PGBitwiseShiftLeft
        | B::PGBitwiseShiftRight
        | B::PGExp
        | B::PGOverlap
        | B::PGRegexMatch
        | B::PGRegexIMatch
        | B::PGRegexNotMatch
        | B::PGRegexNotIMatch
        | B::PGLikeMatch
        | B::PGILikeMatch
        | B::PGNotLikeMatch
        | B::PGNotILikeMatch
        | B::PGStartsWith
        | B::Arrow
        | B::LongArrow
        | B::HashArrow
        | B::HashLongArrow
        | B::AtAt
        | B::AtArrow
        | B::ArrowAt
        | B::HashMinus
        | B::AtQuestion
        | B::Question
        | B::QuestionAnd
        | B::QuestionPipe
        | B::Overlaps
        | B::DoubleHash
        | B::LtDashGt
        | B::AndLt
        | B::AndGt
        | B::LtLtPipe
        | B::PipeGtGt
        | B::AndLtPipe
        | B::PipeAndGt
        | B::LtCaret
        | B::GtCaret
        | B::QuestionHash
        | B::QuestionDash
        | B::QuestionDashPipe
        | B::QuestionDoublePipe
        | B::TildeEq => Ok(()),
        other => Err(unsupported(format!("operator {other}"))),
    }
}
