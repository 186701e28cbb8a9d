//! The lineage of expressions.
//!
//! A value's lineage is the union of the lineage of everything it is
//! computed from: operands, function arguments, CASE conditions and
//! results, array and row elements, scalar subquery outputs. Subqueries
//! that only filter (EXISTS, IN, ANY/ALL) add their outputs to the
//! predicates instead, as do FILTER clauses, aggregate ORDER BY and window
//! PARTITION BY/ORDER BY. Only a plain column reference (possibly in
//! parentheses) keeps `direct`.
//!
//! Functions: every call written with call syntax is recorded under its
//! folded name, aggregates and window functions included, and so are the
//! keyword forms `COALESCE`, `NULLIF`, `GREATEST`, `LEAST`, `ARRAY(query)`
//! and the SQL value functions (`current_user`, `current_date`...), which
//! sqlparser parses as calls; `ROW(...)` only constructs a row and is not
//! recorded. The special syntaxes that PostgreSQL turns
//! into function calls are recorded under the name of the function
//! PostgreSQL calls: `EXTRACT` as `extract`, `SUBSTRING` as `substring`,
//! `POSITION` as `position`, `OVERLAY` as `overlay`, `TRIM` as `btrim`,
//! `ltrim` or `rtrim`, `CEIL`/`FLOOR` as `ceil`/`floor`. Operators, casts,
//! `AT TIME ZONE`, `COLLATE`, `LIKE`, `IN`, `BETWEEN`, `IS ...` and literals
//! record nothing. Operators outside PostgreSQL's built-in set (custom
//! operators could run any function) are refused, except
//! `OPERATOR(pg_catalog.op)`.

use smallvec::SmallVec;
use sqlparser::ast::{
    AccessExpr, BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgOperator,
    FunctionArgumentClause, FunctionArguments, Ident, InTarget, ObjectName, Query, Subscript,
    WindowFrameBound, WindowSpec, WindowType,
};

use super::analyzer::Analyzer;
use super::names;
use super::operands::{operands, root_parts};
use super::operators::{check_operator, check_sort};
use super::scope::{self, Col, Lin};
use super::AnalysisError;

/// SQL value functions: keywords PostgreSQL evaluates as functions, never
/// as column names.
const SQL_VALUE_FUNCTIONS: &[&str] = &[
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "localtime",
    "localtimestamp",
    "session_user",
    "system_user",
    "user",
];

fn unsupported(what: impl Into<String>) -> AnalysisError {
    AnalysisError::Unsupported(what.into())
}

impl Analyzer<'_> {
    /// The lineage of `e` in the current scopes.
    pub fn expr(&mut self, e: &Expr) -> Result<Lin, AnalysisError> {
        let lin = self.nested(|a| a.expr_inner(e))?;
        if lin.direct.is_none() {
            self.acc.computed.extend(lin.cols.iter().copied());
        }
        Ok(lin)
    }

    /// The lineage of `e`, added to the predicates.
    pub fn predicate_expr(&mut self, e: &Expr) -> Result<(), AnalysisError> {
        let lin = self.expr(e)?;
        self.predicate(lin);
        Ok(())
    }

    /// The union of the lineage of `exprs`, computed.
    pub fn exprs<'e>(
        &mut self,
        exprs: impl IntoIterator<Item = &'e Expr>,
    ) -> Result<Lin, AnalysisError> {
        let mut lin = Lin::default();
        for e in exprs {
            lin.add(self.expr(e)?);
        }
        Ok(lin.into_computed())
    }

    /// The output columns of a subquery evaluated in the current scopes.
    pub fn subquery(&mut self, q: &Query) -> Result<Vec<Col>, AnalysisError> {
        let into_allowed = std::mem::replace(&mut self.into_allowed, false);
        let result = self.query(q);
        self.into_allowed = into_allowed;
        result
    }

    /// A subquery whose outputs only filter: they become predicates.
    fn filtering_subquery(&mut self, q: &Query) -> Result<(), AnalysisError> {
        for c in self.subquery(q)? {
            self.predicate(c.lin);
        }
        Ok(())
    }

    /// Dispatch only: each case is its own function, so that the frames
    /// on the recursion path stay small.
    fn expr_inner(&mut self, e: &Expr) -> Result<Lin, AnalysisError> {
        match e {
            Expr::Identifier(id) => self.identifier(id),
            Expr::CompoundIdentifier(ids) => self.compound_identifier(ids),
            Expr::CompoundFieldAccess { root, access_chain } => {
                self.field_access(root, access_chain)
            }
            Expr::Nested(x) => self.expr(x),
            Expr::Value(_) | Expr::TypedString(_) => Ok(Lin::default()),
            Expr::Function(f) => self.function(f),
            Expr::BinaryOp { .. } => self.binary_chain(e),
            Expr::In {
                expr,
                target,
                global,
                ..
            } => self.in_expr(expr, target, *global),
            Expr::AnyOp {
                left,
                compare_op,
                right,
                ..
            }
            | Expr::AllOp {
                left,
                compare_op,
                right,
            } => self.quantified(left, compare_op, right),
            Expr::Exists { subquery, .. } => self.exists(subquery),
            Expr::Subquery(q) => self.scalar_subquery(q),
            Expr::QualifiedWildcard(name, _) => self.qualified_whole_row(name),
            _ => self.composite(e),
        }
    }

    fn compound_identifier(&mut self, ids: &[Ident]) -> Result<Lin, AnalysisError> {
        // Inline: a column reference has at most four parts.
        let parts: SmallVec<[_; 4]> = ids.iter().map(names::fold_cow).collect();
        scope::resolve(&self.levels, &parts)
    }

    fn qualified_whole_row(&mut self, name: &ObjectName) -> Result<Lin, AnalysisError> {
        scope::whole_row(&self.levels, &names::parts(name)?)
    }

    /// `x IN (list)`, `x IN (subquery)`: the subquery only filters.
    fn in_expr(
        &mut self,
        expr: &Expr,
        target: &InTarget,
        global: bool,
    ) -> Result<Lin, AnalysisError> {
        if global {
            return Err(unsupported("GLOBAL IN"));
        }
        let mut lin = self.expr(expr)?;
        match target {
            InTarget::List(list) => lin.add(self.exprs(list)?),
            InTarget::Subquery(q) => self.filtering_subquery(q)?,
            InTarget::Unnest(x) => lin.add(self.expr(x)?),
            InTarget::Table { .. } => return Err(unsupported("IN table")),
        }
        Ok(lin.into_computed())
    }

    /// `x op ANY/ALL (array or subquery)`: a subquery only filters.
    fn quantified(
        &mut self,
        left: &Expr,
        op: &BinaryOperator,
        right: &Expr,
    ) -> Result<Lin, AnalysisError> {
        check_operator(op)?;
        let mut lin = self.expr(left)?;
        match right {
            Expr::Subquery(q) => self.filtering_subquery(q)?,
            other => lin.add(self.expr(other)?),
        }
        Ok(lin.into_computed())
    }

    fn exists(&mut self, q: &Query) -> Result<Lin, AnalysisError> {
        self.filtering_subquery(q)?;
        Ok(Lin::default())
    }

    fn scalar_subquery(&mut self, q: &Query) -> Result<Lin, AnalysisError> {
        let mut lin = Lin::default();
        for c in self.subquery(q)? {
            lin.add(c.lin);
        }
        Ok(lin.into_computed())
    }

    /// A value computed from its operands (recording the function a
    /// special syntax calls).
    fn composite(&mut self, e: &Expr) -> Result<Lin, AnalysisError> {
        let (function, operands) = operands(e)?;
        if let Some(name) = function {
            self.call(None, name);
        }
        self.exprs(operands)
    }

    fn identifier(&mut self, id: &Ident) -> Result<Lin, AnalysisError> {
        // Folded, a name longer than `NAMEDATALEN - 1` is cut; none of
        // these keywords is that long, so the cut changes no comparison.
        let name = names::fold_cow(id);
        if id.quote_style.is_none() {
            if SQL_VALUE_FUNCTIONS.contains(&&*name) {
                self.call(None, &name);
                return Ok(Lin::default());
            }
            if name == "default" {
                return Ok(Lin::default());
            }
        }
        scope::resolve(&self.levels, &[name])
    }

    /// `root.a.b[i]...`: leading field names that extend a column reference
    /// resolve as one name; what follows selects from the value.
    fn field_access(&mut self, root: &Expr, chain: &[AccessExpr]) -> Result<Lin, AnalysisError> {
        let mut rest = chain;
        let mut lin = match root_parts(root) {
            Some(mut parts) => {
                while let Some((AccessExpr::Dot(Expr::Identifier(id)), tail)) = rest.split_first() {
                    parts.push(names::fold(id));
                    rest = tail;
                }
                scope::resolve(&self.levels, &parts)?
            }
            None => self.parenthesized_field(root, &mut rest)?,
        };
        for access in rest {
            match access {
                AccessExpr::Dot(Expr::Identifier(_)) => {}
                AccessExpr::Dot(other) => lin.add(self.expr(other)?),
                AccessExpr::Subscript(Subscript::Index { index }) => lin.add(self.expr(index)?),
                AccessExpr::Subscript(Subscript::Slice {
                    lower_bound,
                    upper_bound,
                    stride,
                }) => {
                    for bound in [lower_bound, upper_bound, stride].into_iter().flatten() {
                        lin.add(self.expr(bound)?);
                    }
                }
            }
        }
        if !chain.is_empty() {
            lin = lin.into_computed();
        }
        Ok(lin)
    }

    /// `(rel).col` selects one column of a whole-row value: its lineage is
    /// that column's. Anything else is the root's whole lineage.
    fn parenthesized_field(
        &mut self,
        root: &Expr,
        rest: &mut &[AccessExpr],
    ) -> Result<Lin, AnalysisError> {
        if let (Expr::Nested(inner), Some((AccessExpr::Dot(Expr::Identifier(field)), tail))) =
            (root, rest.split_first())
        {
            if let Expr::Identifier(id) = &**inner {
                let name = names::fold(id);
                if scope::unqualified(&self.levels, &name)?.is_none() {
                    if let Some(source) = scope::find_source(&self.levels, None, &name)? {
                        let field = names::fold(field);
                        let lin = source
                            .columns
                            .iter()
                            .find(|c| *c.name == *field)
                            .map(|c| c.lin.clone())
                            .or_else(|| source.open.clone())
                            .ok_or_else(|| {
                                AnalysisError::UnknownColumn(format!("{name}.{field}"))
                            })?;
                        *rest = tail;
                        return Ok(lin.into_computed());
                    }
                }
            }
        }
        self.expr(root)
    }

    fn binary_chain(&mut self, e: &Expr) -> Result<Lin, AnalysisError> {
        let mut operands = Vec::new();
        let mut current = e;
        while let Expr::BinaryOp { left, op, right } = current {
            check_operator(op)?;
            operands.push(&**right);
            current = left;
        }
        operands.push(current);
        let mut lin = Lin::default();
        for operand in operands.into_iter().rev() {
            lin.add(self.expr(operand)?);
        }
        Ok(lin.into_computed())
    }

    /// A function call: recorded, its value computed from its arguments
    /// (and WITHIN GROUP columns); ordering, FILTER and window clauses are
    /// predicates.
    pub fn function(&mut self, f: &Function) -> Result<Lin, AnalysisError> {
        if f.uses_odbc_syntax || !matches!(f.parameters, FunctionArguments::None) {
            return Err(unsupported(format!("function syntax {}", f.name)));
        }
        let parts = names::parts(&f.name)?;
        let setting = self.acc.settings.len();
        // `ROW(...)` constructs a row; no function runs.
        if !matches!(parts.as_slice(), [name] if name == "row") {
            self.record_call(&parts)?;
        }
        let is_setting = self.acc.settings.len() > setting;
        let mut lin = Lin::default();
        let mut setting_name = None;
        // Whether an argument is computed from data (not a column as it is).
        let mut computed_arg = false;
        match &f.args {
            FunctionArguments::None => {}
            FunctionArguments::Subquery(q) => {
                for c in self.subquery(q)? {
                    computed_arg |= !c.lin.cols.is_empty();
                    lin.add(c.lin);
                }
            }
            FunctionArguments::List(list) => {
                setting_name = list.args.first().and_then(super::settings::constant_string);
                for arg in &list.args {
                    let arg = self.function_arg(arg)?;
                    computed_arg |= arg.direct.is_none() && !arg.cols.is_empty();
                    lin.add(arg);
                }
                for clause in &list.clauses {
                    match clause {
                        FunctionArgumentClause::OrderBy(order) => {
                            for o in order {
                                check_sort(o)?;
                                self.predicate_expr(&o.expr)?;
                            }
                        }
                        FunctionArgumentClause::Limit(e) => self.predicate_expr(e)?,
                        FunctionArgumentClause::IgnoreOrRespectNulls(_) => {}
                        _ => return Err(unsupported(format!("argument clause in {}", f.name))),
                    }
                }
            }
        }
        for o in &f.within_group {
            check_sort(o)?;
            lin.add(self.expr(&o.expr)?);
        }
        if let Some(filter) = &f.filter {
            self.predicate_expr(filter)?;
        }
        match &f.over {
            Some(WindowType::WindowSpec(spec)) => self.window_spec(spec)?,
            Some(WindowType::NamedWindow(_)) | None => {}
        }
        let set_returning = match parts.as_slice() {
            [name] => super::set_returning::is_set_returning(name),
            [schema, name] => {
                schema == "pg_catalog" && super::set_returning::is_set_returning(name)
            }
            _ => false,
        };
        if set_returning {
            // `count(*)` over `generate_series(1, ascii(email))` counts
            // the value: the arguments decide how many rows there are.
            self.predicate(lin.clone());
        }
        let aggregate = f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty();
        if aggregate || keeps_row_values(&parts) {
            // `lag(email, 5) OVER w`, `max(CASE WHEN id = 5 THEN email
            // END)`, `range_intersect_agg(...) FILTER (WHERE id = 5)`:
            // each call puts a value of another row into the row returned,
            // as one more scan of its relations would.
            self.scan_again(&lin);
        }
        if packs_rows(&parts) && computed_arg {
            // `sum(ascii(substr(email, p, 1)) * 256 ^ (id * 26 + p))` packs
            // every row into one number: recorded as the gathering `array`
            // constructor, which the row limit rule refuses like
            // `string_agg`. Summing a column as it is packs nothing.
            self.call(None, "array");
        }
        let plain = f.filter.is_none() && f.over.is_none() && f.within_group.is_empty();
        if is_setting {
            self.describe_setting(setting, setting_name.filter(|_| plain), &lin);
        }
        Ok(lin.into_computed())
    }

    /// Records a call of a function named by folded parts.
    pub fn record_call(&mut self, parts: &[String]) -> Result<(), AnalysisError> {
        match parts {
            [name] => self.call(None, name),
            [schema, name] => self.call(Some(schema), name),
            _ => {
                return Err(unsupported(format!(
                    "function name {}",
                    names::display(parts)
                )))
            }
        }
        Ok(())
    }

    /// The lineage of one function argument (`t.*` is the whole row, `*`
    /// nothing).
    pub fn function_arg(&mut self, arg: &FunctionArg) -> Result<Lin, AnalysisError> {
        let mut lin = Lin::default();
        let arg = match arg {
            FunctionArg::Named { arg, .. } | FunctionArg::Unnamed(arg) => arg,
            FunctionArg::ExprNamed {
                name,
                arg,
                operator,
            } => {
                // `key : value` and `KEY k VALUE v` (JSON_OBJECT) compute
                // keys from data; `name => value` names a parameter.
                if matches!(
                    operator,
                    FunctionArgOperator::Colon | FunctionArgOperator::Value
                ) {
                    lin.add(self.expr(name)?);
                }
                arg
            }
        };
        let value = match arg {
            FunctionArgExpr::Expr(e) => self.expr(e),
            FunctionArgExpr::QualifiedWildcard(name) => {
                scope::whole_row(&self.levels, &names::parts(name)?)
            }
            FunctionArgExpr::Wildcard => Ok(Lin::default()),
            FunctionArgExpr::WildcardWithOptions(_) => Err(unsupported("* with options")),
        }?;
        if lin.cols.is_empty() {
            return Ok(value);
        }
        lin.add(value);
        Ok(lin)
    }

    /// Window PARTITION BY, ORDER BY and frame bounds: predicates.
    pub fn window_spec(&mut self, spec: &WindowSpec) -> Result<(), AnalysisError> {
        for e in &spec.partition_by {
            self.predicate_expr(e)?;
        }
        for o in &spec.order_by {
            check_sort(o)?;
            self.predicate_expr(&o.expr)?;
        }
        if let Some(frame) = &spec.window_frame {
            for bound in [Some(&frame.start_bound), frame.end_bound.as_ref()]
                .into_iter()
                .flatten()
            {
                if let WindowFrameBound::Preceding(Some(e)) | WindowFrameBound::Following(Some(e)) =
                    bound
                {
                    self.predicate_expr(e)?;
                }
            }
        }
        Ok(())
    }
}

/// The name of an enum variant from its Debug form, without formatting
/// more than the name (the rest of a deep tree is never visited).
pub(crate) fn variant(value: &impl std::fmt::Debug) -> String {
    struct Prefix(String);
    impl std::fmt::Write for Prefix {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for ch in s.chars() {
                if ch.is_alphanumeric() || ch == '_' {
                    self.0.push(ch);
                } else if !self.0.is_empty() {
                    return Err(std::fmt::Error);
                }
            }
            Ok(())
        }
    }
    let mut out = Prefix(String::new());
    let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{value:?}"));
    out.0
}

/// The built-in aggregates guarded statements may call (the policy's
/// allowlist takes them from here).
#[rustfmt::skip]
pub(crate) const AGGREGATES: &[&str] = &[
    "count", "sum", "avg", "min", "max", "bool_and", "bool_or", "every", "bit_and", "bit_or",
    "bit_xor", "string_agg", "array_agg", "json_agg", "jsonb_agg", "json_agg_strict",
    "jsonb_agg_strict", "json_object_agg", "jsonb_object_agg", "json_object_agg_strict",
    "jsonb_object_agg_strict", "json_object_agg_unique", "jsonb_object_agg_unique",
    "json_object_agg_unique_strict", "jsonb_object_agg_unique_strict", "json_arrayagg",
    "json_objectagg", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp",
    "corr", "covar_pop", "covar_samp", "regr_avgx", "regr_avgy", "regr_count", "regr_intercept",
    "regr_r2", "regr_slope", "regr_sxx", "regr_sxy", "regr_syy", "mode", "percentile_cont",
    "percentile_disc", "any_value", "range_agg", "range_intersect_agg",
];

/// Aggregates whose value carries values of the rows they read: every
/// built-in one but the counts. Each call puts values of other rows than
/// the one returned into it.
fn keeps_row_values(parts: &[String]) -> bool {
    let name = match parts {
        [name] => name,
        [schema, name] if schema == "pg_catalog" => name,
        _ => return false,
    };
    !matches!(name.as_str(), "count" | "regr_count") && AGGREGATES.contains(&name.as_str())
}

/// Arithmetic aggregates that can pack many rows into one value when each
/// row's input is computed (scaled by a per-row factor): sums, and the
/// statistics built on sums (`regr_avgx` is an average, `var_pop` of
/// numeric inputs keeps every digit of the sums of values and squares).
fn packs_rows(parts: &[String]) -> bool {
    let name = match parts {
        [name] => name,
        [schema, name] if schema == "pg_catalog" => name,
        _ => return false,
    };
    matches!(
        name.as_str(),
        "sum"
            | "avg"
            | "bit_or"
            | "bit_and"
            | "bit_xor"
            | "stddev"
            | "stddev_pop"
            | "stddev_samp"
            | "variance"
            | "var_pop"
            | "var_samp"
            | "corr"
            | "covar_pop"
            | "covar_samp"
            | "regr_avgx"
            | "regr_avgy"
            | "regr_intercept"
            | "regr_r2"
            | "regr_slope"
            | "regr_sxx"
            | "regr_sxy"
            | "regr_syy"
    )
}
