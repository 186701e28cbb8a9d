//! Statements that write rows: INSERT (with ON CONFLICT), UPDATE, DELETE,
//! MERGE and COPY.
//!
//! Writes name the target and, unless ONLY, its partitions and children
//! (rows are routed or cascaded to them); a view target also writes the
//! relations under it. Values written go to `stored`. RETURNING columns of
//! the target carry the target column and everything written into it.

use sqlparser::ast::{
    Assignment, AssignmentTarget, ConflictTarget, CopyLegacyCsvOption, CopyLegacyOption,
    CopyOption, CopySource, CopyTarget, Delete, FromTable, Insert, Merge, MergeAction,
    MergeInsertKind, MergeUpdateKind, OnConflictAction, OnInsert, OutputClause, SelectItem,
    Statement, TableFactor, TableInheritance, TableObject, Update, UpdateTableFromKind,
};

use crate::catalog::{RelKind, Relation};

use super::analyzer::Analyzer;
use super::expr::variant;
use super::names;
use super::relations::base_columns;
use super::scope::{Col, FromItem, Level, Lin, Source};
use super::{AnalysisError, CopyEndpoint, CopyForceQuote, CopyFormat, CopyOptions, StatementKind};

fn unsupported(what: impl Into<String>) -> AnalysisError {
    AnalysisError::Unsupported(what.into())
}

/// A target table named in a FROM-like position.
struct Target<'r> {
    rel: &'r Relation,
    alias: Option<sqlparser::ast::TableAlias>,
    only: bool,
}

impl<'a> Analyzer<'a> {
    /// A data-modifying statement inside a query (a WITH item): its
    /// RETURNING columns.
    pub fn data_modifying(&mut self, st: &Statement) -> Result<Vec<Col>, AnalysisError> {
        match st {
            Statement::Insert(i) => self.insert(i),
            Statement::Update(u) => self.update(u),
            Statement::Delete(d) => self.delete(d),
            Statement::Merge(m) => self.merge(m),
            other => Err(unsupported(format!(
                "statement {} in a query",
                variant(other)
            ))),
        }
    }

    /// Records the writes to a target.
    fn write_target(&mut self, rel: &Relation, only: bool) {
        self.write(rel.oid, only);
        if rel.kind == RelKind::View {
            let under = self.view(rel).acc.reads;
            self.acc.writes.extend(under);
        }
    }

    /// The columns of a target as stored, for RETURNING and EXCLUDED.
    fn target_columns(&mut self, rel: &Relation) -> Vec<Col> {
        match rel.kind {
            RelKind::View => self.view(rel).columns,
            _ => base_columns(rel),
        }
    }

    /// An INSERT; returns its RETURNING columns.
    pub fn insert(&mut self, ins: &Insert) -> Result<Vec<Col>, AnalysisError> {
        if ins.or.is_some()
            || ins.ignore
            || ins.by_name
            || ins.overwrite
            || !ins.assignments.is_empty()
            || ins.partitioned.is_some()
            || !ins.after_columns.is_empty()
            || ins.has_table_keyword
            || ins.output.is_some()
            || ins.replace_into
            || ins.priority.is_some()
            || ins.insert_alias.is_some()
            || ins.settings.is_some()
            || ins.format_clause.is_some()
            || ins.multi_table_insert_type.is_some()
            || !ins.multi_table_into_clauses.is_empty()
            || !ins.multi_table_when_clauses.is_empty()
            || ins.multi_table_else_clause.is_some()
            || !ins.optimizer_hints.is_empty()
        {
            return Err(unsupported("non-PostgreSQL INSERT clause"));
        }
        let TableObject::TableName(name) = &ins.table else {
            return Err(unsupported("INSERT into a function or subquery"));
        };
        let parts = names::parts(name)?;
        let rel = self.resolve_relation(&parts)?;
        self.write_target(rel, false);
        let positions = column_positions(rel, &ins.columns)?;
        let mut written: Vec<Lin> = vec![Lin::default(); rel.columns.len()];
        if let Some(source) = &ins.source {
            let values = self.subquery(source)?;
            for (i, value) in values.into_iter().enumerate() {
                self.acc.stored.extend(value.lin.cols.iter().copied());
                if let Some(slot) = positions.get(i).and_then(|p| written.get_mut(*p)) {
                    slot.add(value.lin);
                }
            }
        }
        let target_name = ins
            .table_alias
            .as_ref()
            .map(|a| names::fold(&a.alias))
            .unwrap_or_else(|| rel.name.clone());
        let target_schema = ins.table_alias.is_none().then(|| rel.schema.clone());
        let stored_columns = self.target_columns(rel);
        let mut target = FromItem::single(Source {
            name: target_name,
            schema: target_schema,
            columns: with_written(stored_columns.clone(), &written),
            open: None,
            system: rel.kind != RelKind::View,
        });
        match &ins.on {
            None => {}
            Some(OnInsert::OnConflict(conflict)) => {
                self.read(rel.oid, false);
                let excluded = FromItem::single(Source {
                    name: "excluded".to_owned(),
                    schema: None,
                    columns: stored_columns
                        .iter()
                        .zip(&written)
                        .map(|(c, w)| Col {
                            name: c.name.clone(),
                            lin: w.clone(),
                        })
                        .collect(),
                    open: None,
                    system: false,
                });
                self.levels.push(Level::of(vec![target.clone(), excluded]));
                let result = self.on_conflict(rel, conflict);
                self.levels.pop();
                let updates = result?;
                augment(&mut target, &updates);
            }
            Some(_) => return Err(unsupported("ON DUPLICATE KEY UPDATE")),
        }
        self.returning(ins.returning.as_deref(), vec![target])
    }

    /// ON CONFLICT: the arbiter predicate is a predicate, DO UPDATE
    /// assignments are stored; returns the columns updated.
    fn on_conflict(
        &mut self,
        rel: &Relation,
        conflict: &sqlparser::ast::OnConflict,
    ) -> Result<Vec<(String, Lin)>, AnalysisError> {
        match &conflict.conflict_target {
            Some(ConflictTarget::Columns { columns, predicate }) => {
                for c in columns {
                    check_column(rel, &names::fold(c))?;
                }
                if let Some(p) = predicate {
                    self.predicate_expr(p)?;
                }
            }
            Some(ConflictTarget::OnConstraint(_)) | None => {}
        }
        match &conflict.action {
            OnConflictAction::DoNothing => Ok(Vec::new()),
            OnConflictAction::DoUpdate(update) => {
                let updates = self.assignments(rel, &update.assignments)?;
                if let Some(selection) = &update.selection {
                    self.predicate_expr(selection)?;
                }
                Ok(updates)
            }
        }
    }

    /// SET assignments: each value is stored; returns `(column, lineage)`.
    fn assignments(
        &mut self,
        rel: &Relation,
        assignments: &[Assignment],
    ) -> Result<Vec<(String, Lin)>, AnalysisError> {
        let mut out = Vec::new();
        for a in assignments {
            let lin = self.expr(&a.value)?;
            self.acc.stored.extend(lin.cols.iter().copied());
            let targets = match &a.target {
                AssignmentTarget::ColumnName(name) => vec![name],
                AssignmentTarget::Tuple(names) => names.iter().collect(),
            };
            for target in targets {
                let column = names::parts(target)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| unsupported("empty column name"))?;
                check_column(rel, &column)?;
                out.push((column, lin.clone()));
            }
        }
        Ok(out)
    }

    /// RETURNING over `items`, in a level of its own.
    fn returning(
        &mut self,
        returning: Option<&[SelectItem]>,
        items: Vec<FromItem>,
    ) -> Result<Vec<Col>, AnalysisError> {
        let Some(select_items) = returning else {
            return Ok(Vec::new());
        };
        self.levels.push(Level::of(items));
        let result = self.select_list(select_items);
        self.levels.pop();
        result
    }

    /// A target given as a table factor.
    fn target(&self, factor: &TableFactor) -> Result<Target<'a>, AnalysisError> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            inheritance,
            sample: None,
            ..
        } = factor
        else {
            return Err(unsupported(format!("target {}", variant(factor))));
        };
        let parts = names::parts(name)?;
        let rel = self.resolve_relation(&parts)?;
        Ok(Target {
            rel,
            alias: alias.clone(),
            only: matches!(inheritance, Some(TableInheritance::Only { .. })),
        })
    }

    /// The FROM item of a target: read, expanded like any relation.
    fn target_item(&mut self, target: &Target<'a>) -> Result<FromItem, AnalysisError> {
        self.relation_item_of(target.rel, target.only, target.alias.as_ref())
    }

    /// An UPDATE; returns its RETURNING columns.
    pub fn update(&mut self, up: &Update) -> Result<Vec<Col>, AnalysisError> {
        if up.on_cluster.is_some()
            || up.output.is_some()
            || up.or.is_some()
            || !up.order_by.is_empty()
            || up.limit.is_some()
            || up.settings.is_some()
            || !up.optimizer_hints.is_empty()
            || !up.table.joins.is_empty()
        {
            return Err(unsupported("non-PostgreSQL UPDATE clause"));
        }
        let target = self.target(&up.table.relation)?;
        self.write_target(target.rel, target.only);
        self.levels.push(Level::default());
        let result = self.update_in_level(up, &target);
        self.levels.pop();
        result
    }

    fn update_in_level(
        &mut self,
        up: &Update,
        target: &Target<'a>,
    ) -> Result<Vec<Col>, AnalysisError> {
        let item = self.target_item(target)?;
        self.level().items.push(item);
        match &up.from {
            Some(UpdateTableFromKind::AfterSet(from)) => self.add_from_list(from)?,
            Some(UpdateTableFromKind::BeforeSet(_)) => {
                return Err(unsupported("UPDATE FROM before SET"))
            }
            None => {}
        }
        let updates = self.assignments(target.rel, &up.assignments)?;
        if let Some(selection) = &up.selection {
            self.predicate_expr(selection)?;
        }
        let mut items = std::mem::take(&mut self.level().items);
        if let Some(first) = items.first_mut() {
            augment(first, &updates);
        }
        self.returning(up.returning.as_deref(), items)
    }

    /// A DELETE; returns its RETURNING columns.
    pub fn delete(&mut self, del: &Delete) -> Result<Vec<Col>, AnalysisError> {
        if !del.tables.is_empty()
            || del.on_cluster.is_some()
            || del.output.is_some()
            || !del.order_by.is_empty()
            || del.limit.is_some()
            || del.settings.is_some()
            || !del.optimizer_hints.is_empty()
        {
            return Err(unsupported("non-PostgreSQL DELETE clause"));
        }
        let FromTable::WithFromKeyword(from) = &del.from else {
            return Err(unsupported("DELETE without FROM"));
        };
        let [table] = from.as_slice() else {
            return Err(unsupported("DELETE from several tables"));
        };
        if !table.joins.is_empty() {
            return Err(unsupported("DELETE from a join"));
        }
        let target = self.target(&table.relation)?;
        self.write_target(target.rel, target.only);
        self.levels.push(Level::default());
        let result = self.delete_in_level(del, &target);
        self.levels.pop();
        result
    }

    fn delete_in_level(
        &mut self,
        del: &Delete,
        target: &Target<'a>,
    ) -> Result<Vec<Col>, AnalysisError> {
        let item = self.target_item(target)?;
        self.level().items.push(item);
        if let Some(using) = &del.using {
            self.add_from_list(using)?;
        }
        if let Some(selection) = &del.selection {
            self.predicate_expr(selection)?;
        }
        let items = std::mem::take(&mut self.level().items);
        self.returning(del.returning.as_deref(), items)
    }

    /// A MERGE; returns its RETURNING columns.
    pub fn merge(&mut self, merge: &Merge) -> Result<Vec<Col>, AnalysisError> {
        if !merge.optimizer_hints.is_empty() {
            return Err(unsupported("MERGE hints"));
        }
        let target = self.target(&merge.table)?;
        self.write_target(target.rel, target.only);
        self.levels.push(Level::default());
        let result = self.merge_in_level(merge, &target);
        self.levels.pop();
        result
    }

    fn merge_in_level(
        &mut self,
        merge: &Merge,
        target: &Target<'a>,
    ) -> Result<Vec<Col>, AnalysisError> {
        let item = self.target_item(target)?;
        self.level().items.push(item);
        let source = self.factor(&merge.source)?;
        self.level().items.push(source);
        self.predicate_expr(&merge.on)?;
        let mut updates = Vec::new();
        for clause in &merge.clauses {
            if let Some(p) = &clause.predicate {
                self.predicate_expr(p)?;
            }
            match &clause.action {
                MergeAction::Update(update) => {
                    if update.update_predicate.is_some() || update.delete_predicate.is_some() {
                        return Err(unsupported("MERGE UPDATE WHERE"));
                    }
                    let MergeUpdateKind::Set(assignments) = &update.kind else {
                        return Err(unsupported("MERGE UPDATE SET *"));
                    };
                    updates.extend(self.assignments(target.rel, assignments)?);
                }
                MergeAction::Insert(insert) => {
                    if insert.insert_predicate.is_some() {
                        return Err(unsupported("MERGE INSERT WHERE"));
                    }
                    let MergeInsertKind::Values(values) = &insert.kind else {
                        return Err(unsupported("MERGE INSERT form"));
                    };
                    let positions = column_positions(target.rel, &insert.columns)?;
                    for row in &values.rows {
                        for (i, e) in row.content.iter().enumerate() {
                            let lin = self.expr(e)?;
                            self.acc.stored.extend(lin.cols.iter().copied());
                            if let Some(column) =
                                positions.get(i).and_then(|p| target.rel.columns.get(*p))
                            {
                                updates.push((column.name.clone(), lin));
                            }
                        }
                    }
                }
                MergeAction::Delete { .. } | MergeAction::DoNothing { .. } => {}
            }
        }
        let mut items = std::mem::take(&mut self.level().items);
        if let Some(first) = items.first_mut() {
            augment(first, &updates);
        }
        match &merge.output {
            None => Ok(Vec::new()),
            Some(OutputClause::Returning { select_items, .. }) => {
                self.returning(Some(select_items), items)
            }
            Some(OutputClause::Output { .. }) => Err(unsupported("MERGE OUTPUT")),
        }
    }

    /// COPY: its kind and the columns it sends.
    pub fn copy(
        &mut self,
        source: &CopySource,
        to: bool,
        target: &CopyTarget,
        options: &[CopyOption],
        legacy_options: &[CopyLegacyOption],
    ) -> Result<(StatementKind, Vec<Col>), AnalysisError> {
        let endpoint = match (target, to) {
            (CopyTarget::Stdout, true) | (CopyTarget::Stdin, false) => CopyEndpoint::Client,
            (CopyTarget::File { filename }, _) => CopyEndpoint::File(filename.clone()),
            (CopyTarget::Program { command }, _) => CopyEndpoint::Program(command.clone()),
            _ => return Err(unsupported("COPY direction and endpoint disagree")),
        };
        let (format, copy_options) = copy_format(options, legacy_options)?;
        match source {
            CopySource::Query(q) => {
                if !to {
                    return Err(unsupported("COPY (query) FROM"));
                }
                let columns = self.subquery(q)?;
                Ok((
                    StatementKind::CopyTo {
                        to: endpoint,
                        format,
                        options: copy_options,
                    },
                    columns,
                ))
            }
            CopySource::Table {
                table_name,
                columns,
            } => {
                let parts = names::parts(table_name)?;
                let rel = self.resolve_relation(&parts)?;
                let all = self.target_columns(rel);
                let chosen: Vec<Col> = if columns.is_empty() {
                    all
                } else {
                    columns
                        .iter()
                        .map(|c| {
                            let name = names::fold(c);
                            all.iter()
                                .find(|col| *col.name == *name)
                                .cloned()
                                .ok_or_else(|| {
                                    AnalysisError::UnknownColumn(format!("{}.{name}", rel.name))
                                })
                        })
                        .collect::<Result<_, _>>()?
                };
                if to {
                    self.read(rel.oid, true);
                    Ok((
                        StatementKind::CopyTo {
                            to: endpoint,
                            format,
                            options: copy_options,
                        },
                        chosen,
                    ))
                } else {
                    self.write_target(rel, false);
                    Ok((
                        StatementKind::CopyFrom {
                            from: endpoint,
                            format,
                        },
                        Vec::new(),
                    ))
                }
            }
        }
    }
}

/// The data format COPY options name, and the options that shape rows.
fn copy_format(
    options: &[CopyOption],
    legacy: &[CopyLegacyOption],
) -> Result<(CopyFormat, CopyOptions), AnalysisError> {
    let mut format = CopyFormat::Text;
    let mut shape = CopyOptions::default();
    for o in options {
        match o {
            CopyOption::Format(name) => {
                format = match name.value.to_ascii_lowercase().as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    other => return Err(unsupported(format!("COPY format {other}"))),
                };
            }
            CopyOption::Delimiter(c) => shape.delimiter = Some(*c),
            CopyOption::Null(s) => shape.null = Some(uncut(s)?),
            CopyOption::Header(h) => shape.header = *h,
            CopyOption::Quote(c) => shape.quote = Some(*c),
            CopyOption::Escape(c) => shape.escape = Some(*c),
            CopyOption::Encoding(e) => shape.encoding = Some(uncut(e)?),
            CopyOption::ForceQuote(columns) => shape.force_quote = Some(force_quote(columns)),
            CopyOption::Freeze(_) | CopyOption::ForceNotNull(_) | CopyOption::ForceNull(_) => {}
        }
    }
    for o in legacy {
        match o {
            CopyLegacyOption::Binary => format = CopyFormat::Binary,
            CopyLegacyOption::Csv(csv) => {
                format = CopyFormat::Csv;
                for c in csv {
                    match c {
                        CopyLegacyCsvOption::Header => shape.header = true,
                        CopyLegacyCsvOption::Quote(q) => shape.quote = Some(*q),
                        CopyLegacyCsvOption::Escape(e) => shape.escape = Some(*e),
                        CopyLegacyCsvOption::ForceQuote(columns) => {
                            shape.force_quote = Some(force_quote(columns))
                        }
                        CopyLegacyCsvOption::ForceNotNull(_) => {}
                    }
                }
            }
            CopyLegacyOption::Delimiter(c) => shape.delimiter = Some(*c),
            CopyLegacyOption::Null(s) => shape.null = Some(uncut(s)?),
            CopyLegacyOption::Header => shape.header = true,
            other => return Err(unsupported(format!("COPY option {}", variant(other)))),
        }
    }
    Ok((format, shape))
}

/// A COPY option's text, which shapes rows: refused when it was too long
/// to keep whole.
fn uncut(s: &str) -> Result<String, AnalysisError> {
    if super::input::is_cut(s) {
        return Err(AnalysisError::TooLarge(format!(
            "a COPY option longer than {} bytes",
            super::LONG_TOKEN
        )));
    }
    Ok(s.to_owned())
}

/// The columns of `FORCE_QUOTE`: `*` (the tokenizer's `*` turned into an
/// unquoted identifier no SQL text can spell, see
/// [`super::input`]) or names, folded as PostgreSQL folds them.
fn force_quote(columns: &[sqlparser::ast::Ident]) -> CopyForceQuote {
    if let [c] = columns {
        if c.quote_style.is_none() && c.value == "*" {
            return CopyForceQuote::All;
        }
    }
    CopyForceQuote::Columns(
        columns
            .iter()
            .map(|c| match c.quote_style {
                Some(_) => c.value.clone(),
                None => c.value.to_lowercase(),
            })
            .collect(),
    )
}

/// Target column positions (indexes into `rel.columns`) of an insert
/// column list; all columns in order when the list is empty.
fn column_positions(
    rel: &Relation,
    columns: &[sqlparser::ast::ObjectName],
) -> Result<Vec<usize>, AnalysisError> {
    if columns.is_empty() {
        return Ok((0..rel.columns.len()).collect());
    }
    columns
        .iter()
        .map(|c| {
            let name = names::parts(c)?
                .into_iter()
                .next()
                .ok_or_else(|| unsupported("empty column name"))?;
            rel.columns
                .iter()
                .position(|col| col.name == name)
                .ok_or_else(|| AnalysisError::UnknownColumn(format!("{}.{name}", rel.name)))
        })
        .collect()
}

fn check_column(rel: &Relation, name: &str) -> Result<(), AnalysisError> {
    match rel.column(name) {
        Some(_) => Ok(()),
        None => Err(AnalysisError::UnknownColumn(format!("{}.{name}", rel.name))),
    }
}

/// Target columns carrying also what was written into them.
fn with_written(mut columns: Vec<Col>, written: &[Lin]) -> Vec<Col> {
    for (c, w) in columns.iter_mut().zip(written) {
        c.lin.cols.extend(w.cols.iter().copied());
    }
    columns
}

/// Adds updated values' lineage to the named columns of a target item.
fn augment(item: &mut FromItem, updates: &[(String, Lin)]) {
    let apply = |columns: &mut Vec<Col>| {
        for c in columns.iter_mut() {
            for (name, lin) in updates {
                if *c.name == **name {
                    c.lin.cols.extend(lin.cols.iter().copied());
                }
            }
        }
    };
    apply(&mut item.columns);
    for s in &mut item.sources {
        apply(&mut s.columns);
    }
}
