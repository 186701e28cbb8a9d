//! The output columns of queries: SELECT lists with `*` expansion, set
//! operations, VALUES, CTEs (recursive ones iterated to a fixed point),
//! and the clauses that only filter or order (WHERE, GROUP BY, HAVING,
//! WINDOW, DISTINCT ON, ORDER BY, LIMIT, OFFSET, FETCH), which become
//! predicates.

use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, LimitClause, NamedWindowDefinition, NamedWindowExpr, OrderBy,
    OrderByExpr, OrderByKind, Query, Select, SelectFlavor, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, SetOperator, SetQuantifier, Table, Value, Values,
    WildcardAdditionalOptions, With,
};

use super::analyzer::{Analyzer, CteDef};
use super::colname;
use super::names;
use super::operators::check_sort;
use super::scope::{self, Col, FromItem, Level, Lin, Source};
use super::AnalysisError;

/// Iterations allowed for a recursive CTE's lineage to reach its fixed
/// point (it grows monotonically, so this is only a safety net).
const MAX_RECURSIVE_ROUNDS: usize = 64;

fn unsupported(what: impl Into<String>) -> AnalysisError {
    AnalysisError::Unsupported(what.into())
}

impl Analyzer<'_> {
    /// The output columns of `q`. Only the top-level statement calls this
    /// directly; nested queries go through [`Analyzer::subquery`].
    pub fn query(&mut self, q: &Query) -> Result<Vec<Col>, AnalysisError> {
        self.nested(|a| a.query_inner(q))
    }

    fn query_inner(&mut self, q: &Query) -> Result<Vec<Col>, AnalysisError> {
        if q.for_clause.is_some()
            || q.settings.is_some()
            || q.format_clause.is_some()
            || !q.pipe_operators.is_empty()
        {
            return Err(unsupported("non-PostgreSQL query clause"));
        }
        match &q.with {
            Some(with) => {
                self.ctes.push(Vec::new());
                let result = self.with_clause(with).and_then(|()| self.query_body(q));
                self.ctes.pop();
                result
            }
            None => self.query_body(q),
        }
    }

    fn query_body(&mut self, q: &Query) -> Result<Vec<Col>, AnalysisError> {
        let cols = match &*q.body {
            SetExpr::Select(s) => self.select(s, q.order_by.as_ref())?,
            body => {
                let cols = self.set_expr(body)?;
                if let Some(order_by) = &q.order_by {
                    self.order_by_outputs(order_by, &cols)?;
                }
                cols
            }
        };
        self.limits(q)?;
        Ok(cols)
    }

    /// LIMIT, OFFSET and FETCH: predicates.
    fn limits(&mut self, q: &Query) -> Result<(), AnalysisError> {
        match &q.limit_clause {
            None => {}
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if !limit_by.is_empty() {
                    return Err(unsupported("LIMIT BY"));
                }
                if let Some(limit) = limit {
                    self.predicate_expr(limit)?;
                }
                if let Some(offset) = offset {
                    self.predicate_expr(&offset.value)?;
                }
            }
            Some(LimitClause::OffsetCommaLimit { .. }) => return Err(unsupported("LIMIT a, b")),
        }
        if let Some(quantity) = q.fetch.as_ref().and_then(|f| f.quantity.as_ref()) {
            self.predicate_expr(quantity)?;
        }
        Ok(())
    }

    /// The output columns of a query body.
    pub fn set_expr(&mut self, body: &SetExpr) -> Result<Vec<Col>, AnalysisError> {
        match body {
            SetExpr::Select(s) => self.select(s, None),
            SetExpr::Query(q) => self.query(q),
            SetExpr::SetOperation { .. } => self.set_operation(body),
            SetExpr::Values(v) => self.values(v),
            SetExpr::Insert(st)
            | SetExpr::Update(st)
            | SetExpr::Delete(st)
            | SetExpr::Merge(st) => self.data_modifying(st),
            SetExpr::Table(t) => self.table_command(t),
        }
    }

    /// UNION / INTERSECT / EXCEPT: output i is computed from every
    /// branch's output i.
    fn set_operation(&mut self, body: &SetExpr) -> Result<Vec<Col>, AnalysisError> {
        let mut branches = Vec::new();
        let mut current = body;
        while let SetExpr::SetOperation {
            left,
            op,
            set_quantifier,
            right,
        } = current
        {
            if matches!(op, SetOperator::Minus)
                || !matches!(
                    set_quantifier,
                    SetQuantifier::All | SetQuantifier::Distinct | SetQuantifier::None
                )
            {
                return Err(unsupported(format!("set operation {op} {set_quantifier}")));
            }
            branches.push(&**right);
            current = left;
        }
        branches.push(current);
        let compares = compares_values(body);
        let mut out: Option<Vec<Col>> = None;
        for branch in branches.into_iter().rev() {
            let cols = self.nested(|a| a.set_expr(branch))?;
            match &mut out {
                None => {
                    out = Some(
                        cols.into_iter()
                            .map(|c| Col {
                                name: c.name,
                                lin: c.lin.into_computed(),
                            })
                            .collect(),
                    )
                }
                Some(acc) => {
                    if acc.len() != cols.len() {
                        return Err(unsupported(
                            "set operation branches with different column counts",
                        ));
                    }
                    for (a, c) in acc.iter_mut().zip(cols) {
                        a.lin.add(c.lin);
                    }
                }
            }
        }
        let out = out.unwrap_or_default();
        if compares {
            // Removing duplicates or matching rows compares the values:
            // how many rows come out tells what they are, as a WHERE would.
            for c in &out {
                self.predicate(c.lin.clone());
            }
        }
        Ok(out)
    }

    /// VALUES: column i is computed from every row's expression i.
    fn values(&mut self, values: &Values) -> Result<Vec<Col>, AnalysisError> {
        let mut out: Vec<Col> = Vec::new();
        for (i, row) in values.rows.iter().enumerate() {
            let row = &row.content;
            if i == 0 {
                out = (1..=row.len())
                    .map(|n| Col {
                        name: format!("column{n}").into(),
                        lin: Lin::default(),
                    })
                    .collect();
            } else if row.len() != out.len() {
                return Err(unsupported("VALUES lists of different lengths"));
            }
            for (col, e) in out.iter_mut().zip(row) {
                let lin = self.expr(e)?;
                col.lin.add(lin);
            }
        }
        Ok(out)
    }

    /// `TABLE name` inside a query.
    fn table_command(&mut self, t: &Table) -> Result<Vec<Col>, AnalysisError> {
        let mut parts = Vec::new();
        if let Some(schema) = &t.schema_name {
            parts.push(names::fold(schema));
        }
        match &t.table_name {
            Some(name) => parts.push(names::fold(name)),
            None => return Err(unsupported("TABLE without a name")),
        }
        let item = self.relation_item(&parts, None, false)?;
        Ok(item.columns)
    }

    fn select(
        &mut self,
        s: &Select,
        order_by: Option<&OrderBy>,
    ) -> Result<Vec<Col>, AnalysisError> {
        if !s.optimizer_hints.is_empty()
            || s.select_modifiers.is_some()
            || s.top.is_some()
            || s.exclude.is_some()
            || !s.lateral_views.is_empty()
            || s.prewhere.is_some()
            || !s.connect_by.is_empty()
            || !s.cluster_by.is_empty()
            || !s.distribute_by.is_empty()
            || !s.sort_by.is_empty()
            || s.qualify.is_some()
            || s.value_table_mode.is_some()
            || s.flavor != SelectFlavor::Standard
        {
            return Err(unsupported("non-PostgreSQL SELECT clause"));
        }
        if s.into.is_some() {
            if !self.into_allowed {
                return Err(unsupported("SELECT INTO outside a top-level SELECT"));
            }
            self.acc.select_into = true;
        }
        self.into_allowed = false;
        self.levels.push(Level::default());
        let result = self.select_in_level(s, order_by);
        self.levels.pop();
        result
    }

    fn select_in_level(
        &mut self,
        s: &Select,
        order_by: Option<&OrderBy>,
    ) -> Result<Vec<Col>, AnalysisError> {
        self.add_from_list(&s.from)?;
        if let Some(selection) = &s.selection {
            self.predicate_expr(selection)?;
        }
        self.call_bases.push(self.acc.scans.clone());
        let outputs = self.select_rest(s, order_by);
        self.call_bases.pop();
        outputs
    }

    /// The select list and the clauses after it, with the scans of the
    /// FROM list on [`Analyzer::call_bases`].
    fn select_rest(
        &mut self,
        s: &Select,
        order_by: Option<&OrderBy>,
    ) -> Result<Vec<Col>, AnalysisError> {
        let outputs = self.select_list(&s.projection)?;
        match &s.group_by {
            GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => {
                for e in exprs {
                    self.group_by_expr(e, &outputs)?;
                }
            }
            _ => return Err(unsupported("GROUP BY form")),
        }
        if let Some(having) = &s.having {
            self.predicate_expr(having)?;
        }
        for NamedWindowDefinition(_, def) in &s.named_window {
            if let NamedWindowExpr::WindowSpec(spec) = def {
                self.window_spec(spec)?;
            }
        }
        match &s.distinct {
            Some(Distinct::On(exprs)) => {
                for e in exprs {
                    self.sort_expr(e, &outputs)?;
                }
            }
            // Removing duplicates compares the outputs (`count(*)` over a
            // `SELECT DISTINCT` tells whether two values are equal).
            Some(Distinct::Distinct) => {
                for c in &outputs {
                    self.predicate(c.lin.clone());
                }
            }
            Some(Distinct::All) | None => {}
        }
        if let Some(order_by) = order_by {
            for o in order_by_exprs(order_by)? {
                self.sort_expr(&o.expr, &outputs)?;
            }
        }
        Ok(outputs)
    }

    /// A select list (or RETURNING list) over the innermost level.
    pub fn select_list(&mut self, items: &[SelectItem]) -> Result<Vec<Col>, AnalysisError> {
        let mut outputs = Vec::new();
        for item in items {
            self.select_item(item, &mut outputs)?;
        }
        Ok(outputs)
    }

    fn select_item(
        &mut self,
        item: &SelectItem,
        outputs: &mut Vec<Col>,
    ) -> Result<(), AnalysisError> {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let lin = self.expr(e)?;
                outputs.push(Col {
                    name: colname::of(e).into(),
                    lin,
                });
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                let lin = self.expr(expr)?;
                outputs.push(Col {
                    name: names::fold(alias).into(),
                    lin,
                });
            }
            SelectItem::Wildcard(options) => {
                check_wildcard(options)?;
                outputs.extend(scope::star(&self.levels)?);
            }
            SelectItem::QualifiedWildcard(
                SelectItemQualifiedWildcardKind::ObjectName(name),
                options,
            ) => {
                check_wildcard(options)?;
                outputs.extend(scope::qualified_star(&self.levels, &names::parts(name)?)?);
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::Expr(_), _) => {
                return Err(unsupported("(expression).*"));
            }
            SelectItem::ExprWithAliases { .. } => return Err(unsupported("multiple aliases")),
        }
        Ok(())
    }

    /// An ORDER BY or DISTINCT ON item: an output position, an output
    /// name, or an expression over the input.
    fn sort_expr(&mut self, e: &Expr, outputs: &[Col]) -> Result<(), AnalysisError> {
        if let Some(lin) = output_position(e, outputs)? {
            self.predicate(lin);
            return Ok(());
        }
        if let Expr::Identifier(id) = e {
            let name = names::fold(id);
            let matching: Vec<&Col> = outputs.iter().filter(|c| *c.name == *name).collect();
            if !matching.is_empty() {
                for c in matching {
                    self.predicate(c.lin.clone());
                }
                return Ok(());
            }
        }
        self.predicate_expr(e)
    }

    /// A GROUP BY item: an output position, an input expression, or
    /// failing that an output name.
    fn group_by_expr(&mut self, e: &Expr, outputs: &[Col]) -> Result<(), AnalysisError> {
        if let Some(lin) = output_position(e, outputs)? {
            self.predicate(lin);
            return Ok(());
        }
        match (self.predicate_expr(e), e) {
            (Err(AnalysisError::UnknownColumn(missing)), Expr::Identifier(id)) => {
                let name = names::fold(id);
                let matching: Vec<&Col> = outputs.iter().filter(|c| *c.name == *name).collect();
                if matching.is_empty() {
                    return Err(AnalysisError::UnknownColumn(missing));
                }
                for c in matching {
                    self.predicate(c.lin.clone());
                }
                Ok(())
            }
            (result, _) => result,
        }
    }

    /// ORDER BY of a set operation or VALUES: over the output columns.
    pub fn order_by_outputs(
        &mut self,
        order_by: &OrderBy,
        cols: &[Col],
    ) -> Result<(), AnalysisError> {
        let exprs = order_by_exprs(order_by)?;
        self.levels.push(Level::of(vec![FromItem {
            columns: cols.to_vec(),
            sources: Vec::new(),
            open: None,
        }]));
        let result = exprs.iter().try_for_each(|o| self.sort_expr(&o.expr, cols));
        self.levels.pop();
        result
    }

    /// Defines the CTEs of a WITH clause in the innermost CTE list.
    fn with_clause(&mut self, with: &With) -> Result<(), AnalysisError> {
        for cte in &with.cte_tables {
            if cte.from.is_some() {
                return Err(unsupported("CTE FROM"));
            }
            let name = names::fold(&cte.alias.name);
            let aliases: Vec<String> = cte
                .alias
                .columns
                .iter()
                .map(|c| names::fold(&c.name))
                .collect();
            let outside = std::mem::take(&mut self.acc.scans);
            let columns = if with.recursive {
                self.recursive_cte(&name, &aliases, &cte.query)
            } else {
                self.subquery(&cte.query)
            };
            let scans = std::mem::replace(&mut self.acc.scans, outside);
            let columns = columns?;
            let columns = scope::rename(columns, &aliases, format_args!("WITH query {name}"))?;
            self.define_cte(CteDef {
                name,
                columns,
                pending: false,
                scans,
            });
        }
        Ok(())
    }

    fn define_cte(&mut self, def: CteDef) {
        if let Some(list) = self.ctes.last_mut() {
            list.retain(|c| c.name != def.name);
            list.push(def);
        }
    }

    /// A CTE of a WITH RECURSIVE list. In the form `base UNION [ALL]
    /// recursive`, the recursive term is analyzed with the CTE's columns
    /// bound to the lineage found so far until nothing changes.
    fn recursive_cte(
        &mut self,
        name: &str,
        aliases: &[String],
        q: &Query,
    ) -> Result<Vec<Col>, AnalysisError> {
        self.define_cte(CteDef {
            name: name.to_owned(),
            columns: Vec::new(),
            pending: true,
            scans: Default::default(),
        });
        let (base, recursive, distinct) = match &*q.body {
            SetExpr::SetOperation {
                left,
                op: SetOperator::Union,
                right,
                set_quantifier:
                    quantifier @ (SetQuantifier::All | SetQuantifier::Distinct | SetQuantifier::None),
            } if q.with.is_none() => (left, right, !matches!(quantifier, SetQuantifier::All)),
            _ => return self.subquery(q),
        };
        let into_allowed = std::mem::replace(&mut self.into_allowed, false);
        let result = self.recursive_rounds(name, aliases, q, base, recursive);
        self.into_allowed = into_allowed;
        if let (Ok(cols), true) = (&result, distinct) {
            // UNION without ALL compares the rows, as in `set_operation`.
            for c in cols {
                self.predicate(c.lin.clone());
            }
        }
        result
    }

    fn recursive_rounds(
        &mut self,
        name: &str,
        aliases: &[String],
        q: &Query,
        base: &SetExpr,
        recursive: &SetExpr,
    ) -> Result<Vec<Col>, AnalysisError> {
        let first = self.nested(|a| a.set_expr(base))?;
        let mut current = scope::rename(
            first
                .into_iter()
                .map(|c| Col {
                    name: c.name,
                    lin: c.lin.into_computed(),
                })
                .collect(),
            aliases,
            format_args!("WITH query {name}"),
        )?;
        let mut gathers = false;
        for _ in 0..MAX_RECURSIVE_ROUNDS {
            self.define_cte(CteDef {
                name: name.to_owned(),
                columns: current.clone(),
                pending: false,
                scans: Default::default(),
            });
            let round = self.nested(|a| a.set_expr(recursive))?;
            if round.len() != current.len() {
                return Err(unsupported(format!(
                    "recursive query {name}: terms with different column counts"
                )));
            }
            let mut next = current.clone();
            for (n, r) in next.iter_mut().zip(round) {
                gathers |= r.lin.direct.is_none() && !r.lin.cols.is_empty();
                n.lin.add(r.lin);
            }
            if next == current {
                if gathers {
                    // A value computed from data in each round can carry
                    // the previous rounds' values (`acc || email`): one row
                    // gathering many, as `ARRAY(subquery)` does.
                    self.call(None, "array");
                }
                if let Some(order_by) = &q.order_by {
                    self.order_by_outputs(order_by, &next)?;
                }
                self.limits(q)?;
                return Ok(next);
            }
            current = next;
        }
        Err(unsupported(format!(
            "recursive query {name} does not converge"
        )))
    }

    /// The FROM item for a CTE or catalog relation named by folded parts.
    pub fn relation_item(
        &mut self,
        parts: &[String],
        alias: Option<&sqlparser::ast::TableAlias>,
        only: bool,
    ) -> Result<FromItem, AnalysisError> {
        if let [name] = parts {
            if let Some(cte) = self.cte(name) {
                if cte.pending {
                    return Err(unsupported(format!(
                        "recursive reference to {name} outside a recursive term"
                    )));
                }
                let columns = cte.columns.clone();
                let scans = cte.scans.clone();
                super::analyzer::add_scans(&mut self.acc.scans, &scans);
                return aliased(name, None, columns, alias);
            }
        }
        let rel = self.resolve_relation(parts)?;
        self.relation_item_of(rel, only, alias)
    }
}

/// A source named by its alias (with renamed columns) or, unaliased, by
/// its own name.
pub(crate) fn aliased(
    name: &str,
    schema: Option<&str>,
    columns: Vec<Col>,
    alias: Option<&sqlparser::ast::TableAlias>,
) -> Result<FromItem, AnalysisError> {
    let source = match alias {
        Some(alias) => {
            let alias_name = names::fold(&alias.name);
            let renames: Vec<String> = alias.columns.iter().map(|c| names::fold(&c.name)).collect();
            Source {
                columns: scope::rename(columns, &renames, &alias_name)?,
                name: alias_name,
                schema: None,
                open: None,
                system: false,
            }
        }
        None => Source {
            name: name.to_owned(),
            schema: schema.map(str::to_owned),
            columns,
            open: None,
            system: false,
        },
    };
    Ok(FromItem::single(source))
}

fn order_by_exprs(order_by: &OrderBy) -> Result<&[OrderByExpr], AnalysisError> {
    if order_by.interpolate.is_some() {
        return Err(unsupported("INTERPOLATE"));
    }
    match &order_by.kind {
        OrderByKind::Expressions(exprs) => {
            exprs.iter().try_for_each(check_sort)?;
            Ok(exprs)
        }
        OrderByKind::All(_) => Err(unsupported("ORDER BY ALL")),
    }
}

/// `ORDER BY 2`: the lineage of output 2.
fn output_position(e: &Expr, outputs: &[Col]) -> Result<Option<Lin>, AnalysisError> {
    let Expr::Value(v) = e else {
        return Ok(None);
    };
    let Value::Number(n, _) = &v.value else {
        return Ok(None);
    };
    let Ok(position) = n.parse::<usize>() else {
        return Ok(None);
    };
    match position.checked_sub(1).and_then(|i| outputs.get(i)) {
        Some(col) => Ok(Some(col.lin.clone())),
        None => Err(unsupported(format!(
            "position {position} is not in the select list"
        ))),
    }
}

fn check_wildcard(options: &WildcardAdditionalOptions) -> Result<(), AnalysisError> {
    if options.opt_ilike.is_some()
        || options.opt_exclude.is_some()
        || options.opt_except.is_some()
        || options.opt_replace.is_some()
        || options.opt_rename.is_some()
        || options.opt_alias.is_some()
    {
        return Err(unsupported("wildcard options"));
    }
    Ok(())
}

/// Whether a set operation compares rows of its branches: every operation
/// but `UNION ALL` removes duplicates or matches rows.
fn compares_values(body: &SetExpr) -> bool {
    match body {
        SetExpr::SetOperation {
            left,
            op,
            set_quantifier,
            right,
        } => {
            !(matches!(op, SetOperator::Union) && matches!(set_quantifier, SetQuantifier::All))
                || compares_values(left)
                || compares_values(right)
        }
        _ => false,
    }
}
