//! Statements: their kinds, and the facts of each.
//!
//! Queries return their outputs; SELECT INTO, CREATE TABLE AS and
//! materialized views store them instead. PREPARE, DECLARE and EXPLAIN
//! carry the facts of the statement inside (EXPLAIN without outputs).
//! Session, transaction and utility statements carry their kind alone.

use sqlparser::ast::{
    CloseCursor, DeclareType, DescribeAlias, Expr, Reset, ResetStatement, Set, SetExpr, Statement,
    UtilityOption, Value,
};

use super::analyzer::Analyzer;
use super::expr::variant;
use super::names;
use super::scope::Col;
use super::{AnalysisError, OutputColumn, StatementFacts, StatementKind};

fn unsupported(what: impl Into<String>) -> AnalysisError {
    AnalysisError::Unsupported(what.into())
}

impl Analyzer<'_> {
    /// Facts about one statement.
    pub fn statement_facts(&mut self, stmt: &Statement) -> Result<StatementFacts, AnalysisError> {
        self.reset();
        let (kind, outputs) = self.statement(stmt)?;
        let mut facts = self.facts(kind, outputs);
        if let Statement::Query(q) = stmt {
            super::settings::name_from_pg_settings(q, self.catalog, &mut facts);
        }
        Ok(facts)
    }

    /// Facts about a statement recognized by its keywords only.
    pub fn known_facts(&mut self, kind: StatementKind) -> StatementFacts {
        self.reset();
        self.facts(kind, Vec::new())
    }

    fn facts(&mut self, kind: StatementKind, outputs: Vec<Col>) -> StatementFacts {
        let mut acc = std::mem::take(&mut self.acc);
        // A value computed from a column and never returned (a column of a
        // materialized CTE nobody selects, `1 / (ascii(email) - 122)`) is
        // evaluated only for its effect: whether the statement fails, which
        // decides whether rows come back, like a predicate.
        for c in &outputs {
            for col in c.lin.cols.iter() {
                acc.computed.remove(col);
            }
        }
        acc.predicates.append(&mut acc.computed);
        StatementFacts {
            kind,
            reads: acc.reads,
            scans: acc.scans,
            writes: acc.writes,
            outputs: outputs
                .into_iter()
                .map(|c| OutputColumn {
                    name: c.name.to_string(),
                    lineage: c.lin.cols.into(),
                    direct: c.lin.direct,
                })
                .collect(),
            predicates: acc.predicates,
            stored: acc.stored,
            functions: acc.functions,
            settings: acc.settings,
        }
    }

    /// Everything `cols` are computed from flows into stored data.
    fn store(&mut self, cols: &[Col]) {
        for c in cols {
            self.acc.stored.extend(c.lin.cols.iter().copied());
        }
    }

    /// The kind and outputs of a statement; everything else is gathered.
    fn statement(&mut self, stmt: &Statement) -> Result<(StatementKind, Vec<Col>), AnalysisError> {
        self.nested(|a| a.statement_inner(stmt))
    }

    fn statement_inner(
        &mut self,
        stmt: &Statement,
    ) -> Result<(StatementKind, Vec<Col>), AnalysisError> {
        use StatementKind as K;
        let none = Vec::new;
        Ok(match stmt {
            Statement::Query(q) => {
                self.into_allowed = true;
                let cols = self.query(q);
                self.into_allowed = false;
                let cols = cols?;
                if self.acc.select_into {
                    self.store(&cols);
                    (K::CreateTableAs, none())
                } else {
                    let kind = match &*q.body {
                        SetExpr::Insert(_) => K::Insert,
                        SetExpr::Update(_) => K::Update,
                        SetExpr::Delete(_) => K::Delete,
                        SetExpr::Merge(_) => K::Merge,
                        _ => K::Select,
                    };
                    (kind, cols)
                }
            }
            Statement::Insert(i) => (K::Insert, self.insert(i)?),
            Statement::Update(u) => (K::Update, self.update(u)?),
            Statement::Delete(d) => (K::Delete, self.delete(d)?),
            Statement::Merge(m) => (K::Merge, self.merge(m)?),
            Statement::Truncate(t) => {
                if t.partitions.is_some() || t.on_cluster.is_some() {
                    return Err(unsupported("non-PostgreSQL TRUNCATE clause"));
                }
                for target in &t.table_names {
                    let rel = self.resolve_relation(&names::parts(&target.name)?)?;
                    self.write(rel.oid, target.only);
                }
                (K::Truncate, none())
            }
            Statement::Copy {
                source,
                to,
                target,
                options,
                legacy_options,
                ..
            } => self.copy(source, *to, target, options, legacy_options)?,
            Statement::CreateTable(ct) if ct.query.is_some() => {
                if let Some(q) = &ct.query {
                    let cols = self.subquery(q)?;
                    self.store(&cols);
                }
                (K::CreateTableAs, none())
            }
            Statement::CreateView(cv) if cv.materialized => {
                let cols = self.subquery(&cv.query)?;
                self.store(&cols);
                (K::MaterializedView, none())
            }
            Statement::RefreshMaterializedView(refresh) => {
                let rel = self.resolve_relation(&names::parts(&refresh.name)?)?;
                if rel.kind != crate::catalog::RelKind::MaterializedView {
                    return Err(unsupported(format!(
                        "{} is not a materialized view",
                        rel.qualified_name()
                    )));
                }
                self.acc.writes.insert(rel.oid);
                if refresh.with_data != Some(false) {
                    let cols = self.view(rel).columns;
                    self.store(&cols);
                }
                (K::MaterializedView, none())
            }
            Statement::Prepare {
                name, statement, ..
            } => {
                if !preparable(statement) {
                    return Err(unsupported(format!("PREPARE of {}", variant(&**statement))));
                }
                let (inner, cols) = self.statement(statement)?;
                (
                    K::Prepare {
                        name: names::fold(name),
                        inner: Box::new(inner),
                    },
                    cols,
                )
            }
            Statement::Execute {
                name: Some(name),
                parameters,
                immediate: false,
                into,
                using,
                output: false,
                default: false,
                ..
            } if into.is_empty() && using.is_empty() => {
                for p in parameters {
                    self.predicate_expr(p)?;
                }
                let name = match names::parts(name)?.as_slice() {
                    [n] => n.clone(),
                    _ => return Err(unsupported(format!("EXECUTE {name}"))),
                };
                (K::Execute { name }, none())
            }
            Statement::Declare { stmts, .. } => {
                let [d] = stmts.as_slice() else {
                    return Err(unsupported("DECLARE of several names"));
                };
                let ([name], Some(q), Some(DeclareType::Cursor), None, None) = (
                    d.names.as_slice(),
                    d.for_query.as_ref(),
                    d.declare_type.as_ref(),
                    d.data_type.as_ref(),
                    d.assignment.as_ref(),
                ) else {
                    return Err(unsupported("DECLARE other than a cursor"));
                };
                let cols = self.subquery(q)?;
                (
                    K::Declare {
                        name: names::fold(name),
                    },
                    cols,
                )
            }
            Statement::Fetch { name, into, .. } => {
                if into.is_some() {
                    return Err(unsupported("FETCH INTO"));
                }
                (
                    K::Fetch {
                        name: names::fold(name),
                        is_move: false,
                    },
                    none(),
                )
            }
            Statement::Close { cursor } => (
                K::CloseCursor {
                    name: match cursor {
                        CloseCursor::All => None,
                        CloseCursor::Specific { name } => Some(names::fold(name)),
                    },
                },
                none(),
            ),
            Statement::Explain {
                describe_alias: DescribeAlias::Explain,
                analyze,
                statement,
                query_plan: false,
                estimate: false,
                options,
                ..
            } => {
                if !explainable(statement) {
                    return Err(unsupported(format!("EXPLAIN of {}", variant(&**statement))));
                }
                let analyze = *analyze || options.as_deref().is_some_and(explain_analyze);
                self.statement(statement)?;
                if !analyze {
                    // Nothing runs: no computed value can fail.
                    self.acc.computed.clear();
                }
                (K::Explain { analyze }, none())
            }
            Statement::Set(set) => (set_kind(set)?, none()),
            Statement::Reset(ResetStatement { reset }) => (
                match reset {
                    Reset::ALL => K::Set { name: "all".into() },
                    Reset::SessionAuthorization => K::SetSessionAuthorization,
                    Reset::ConfigurationParameter(name) => setting_kind(&setting_name(name)?),
                },
                none(),
            ),
            Statement::ShowVariable { .. } => (K::Show, none()),
            Statement::StartTransaction {
                statements,
                exception,
                ..
            } => {
                if !statements.is_empty() || exception.is_some() {
                    return Err(unsupported("BEGIN ... END block"));
                }
                let begins = true;
                (
                    K::Transaction {
                        ends: false,
                        begins,
                    },
                    none(),
                )
            }
            Statement::Commit { chain, .. } => (
                K::Transaction {
                    ends: true,
                    begins: *chain,
                },
                none(),
            ),
            Statement::Rollback { chain, savepoint } => (
                K::Transaction {
                    ends: true,
                    begins: *chain && savepoint.is_none(),
                },
                none(),
            ),
            Statement::Savepoint { .. } | Statement::ReleaseSavepoint { .. } => (
                K::Transaction {
                    ends: false,
                    begins: false,
                },
                none(),
            ),
            Statement::LISTEN { .. } | Statement::UNLISTEN { .. } => (K::Listen, none()),
            Statement::NOTIFY { .. } => (K::Notify, none()),
            Statement::Discard { .. } => (K::Discard, none()),
            Statement::Call(f) => {
                if let sqlparser::ast::FunctionArguments::List(list) = &f.args {
                    for arg in &list.args {
                        let lin = self.function_arg(arg)?;
                        self.predicate(lin);
                    }
                }
                (K::Call, none())
            }
            Statement::Lock(_) => (K::Lock, none()),
            Statement::Analyze(_) | Statement::Vacuum(_) => (K::Maintenance, none()),
            Statement::Deallocate { name, .. } => (
                K::Deallocate {
                    name: if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
                        None
                    } else {
                        Some(names::fold(name))
                    },
                },
                none(),
            ),
            other => (K::Ddl(self.ddl(other)?), none()),
        })
    }
}

/// What PREPARE accepts (PostgreSQL's preparable statements).
fn preparable(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_)
            | Statement::Merge(_)
    )
}

/// What EXPLAIN accepts, EXECUTE excepted: the facts of the prepared
/// statement are not known here.
fn explainable(stmt: &Statement) -> bool {
    preparable(stmt)
        || matches!(stmt, Statement::Declare { .. })
        || matches!(stmt, Statement::CreateTable(t) if t.query.is_some())
        || matches!(stmt, Statement::CreateView(v) if v.materialized)
}

/// Whether EXPLAIN options turn ANALYZE on (a value that is not clearly
/// false counts as on).
fn explain_analyze(options: &[UtilityOption]) -> bool {
    options
        .iter()
        .filter(|o| o.name.value.eq_ignore_ascii_case("analyze"))
        .any(|o| match &o.arg {
            None => true,
            Some(Expr::Identifier(id)) => !is_false(&id.value),
            Some(Expr::Value(v)) => match &v.value {
                Value::Boolean(b) => *b,
                Value::Number(n, _) => n != "0",
                Value::SingleQuotedString(s) => !is_false(s),
                _ => true,
            },
            Some(_) => true,
        })
}

fn is_false(word: &str) -> bool {
    matches!(
        word.to_ascii_lowercase().as_str(),
        "false" | "off" | "0" | "no"
    )
}

/// A setting name, lower case, dotted for custom settings.
fn setting_name(name: &sqlparser::ast::ObjectName) -> Result<String, AnalysisError> {
    Ok(names::parts(name)?
        .iter()
        .map(|p| p.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("."))
}

/// SET/RESET of `name`: role and session authorization are their own
/// kinds whichever syntax names them.
fn setting_kind(name: &str) -> StatementKind {
    match name {
        "role" => StatementKind::SetRole,
        "session_authorization" => StatementKind::SetSessionAuthorization,
        _ => StatementKind::Set {
            name: name.to_owned(),
        },
    }
}

fn set_kind(set: &Set) -> Result<StatementKind, AnalysisError> {
    Ok(match set {
        Set::SingleAssignment {
            hivevar: false,
            variable,
            ..
        } => setting_kind(&setting_name(variable)?),
        Set::SetRole { .. } => StatementKind::SetRole,
        Set::SetSessionAuthorization(_) => StatementKind::SetSessionAuthorization,
        Set::SetTimeZone { .. } => setting_kind("timezone"),
        Set::SetNames { .. } => setting_kind("client_encoding"),
        Set::SetTransaction { .. } => StatementKind::Transaction {
            ends: false,
            begins: false,
        },
        other => return Err(unsupported(format!("SET form {}", variant(other)))),
    })
}
