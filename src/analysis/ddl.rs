//! DDL: which group a statement belongs to ([`DdlKind`]), and the parts
//! that still run over data: a CREATE VIEW's query (its reads and
//! functions are recorded; a view stores nothing), index expressions and
//! predicates, and ALTER COLUMN ... TYPE ... USING expressions (their
//! functions are recorded and their columns count as predicates).

use sqlparser::ast::{
    AlterColumnOperation, AlterFunctionOperation, AlterSchemaOperation, AlterTable,
    AlterTableOperation, CreateIndex, ObjectType, Statement,
};

use super::analyzer::Analyzer;
use super::expr::variant;
use super::names;
use super::scope::Level;
use super::{AnalysisError, DdlKind};

fn structure(what: &str) -> DdlKind {
    DdlKind::Structure(what.to_owned())
}

fn code(what: &str) -> DdlKind {
    DdlKind::Code(what.to_owned())
}

fn security(what: &str) -> DdlKind {
    DdlKind::Security(what.to_owned())
}

impl Analyzer<'_> {
    /// The DDL kind of a statement; anything else is unsupported.
    pub fn ddl(&mut self, stmt: &Statement) -> Result<DdlKind, AnalysisError> {
        Ok(match stmt {
            Statement::CreateTable(_) => structure("CREATE TABLE"),
            Statement::CreateView(view) => {
                self.subquery(&view.query)?;
                structure("CREATE VIEW")
            }
            Statement::CreateIndex(index) => {
                self.create_index(index)?;
                structure("CREATE INDEX")
            }
            Statement::CreateSchema { .. } => structure("CREATE SCHEMA"),
            Statement::CreateSequence { .. } => structure("CREATE SEQUENCE"),
            Statement::CreateType { .. } => structure("CREATE TYPE"),
            Statement::CreateDomain(_) => structure("CREATE DOMAIN"),
            Statement::CreateCollation(_) => structure("CREATE COLLATION"),
            Statement::Comment { .. } => structure("COMMENT"),
            Statement::AlterTable(alter) => self.alter_table(alter)?,
            Statement::AlterSchema(alter) => {
                if alter
                    .operations
                    .iter()
                    .any(|o| matches!(o, AlterSchemaOperation::OwnerTo { .. }))
                {
                    security("ALTER SCHEMA OWNER")
                } else {
                    structure("ALTER SCHEMA")
                }
            }
            Statement::AlterIndex { .. } => structure("ALTER INDEX"),
            Statement::AlterView(_) => structure("ALTER VIEW"),
            Statement::AlterType(_) => structure("ALTER TYPE"),
            Statement::AlterCollation(_) => structure("ALTER COLLATION"),
            Statement::Drop { object_type, .. } => {
                let what = format!("DROP {object_type}");
                match object_type {
                    ObjectType::Table
                    | ObjectType::View
                    | ObjectType::MaterializedView
                    | ObjectType::Index
                    | ObjectType::Schema
                    | ObjectType::Sequence
                    | ObjectType::Type
                    | ObjectType::Collation => structure(&what),
                    ObjectType::ForeignTable => code(&what),
                    ObjectType::Database
                    | ObjectType::Role
                    | ObjectType::User
                    | ObjectType::Group => security(&what),
                    other => {
                        return Err(AnalysisError::Unsupported(format!("DROP {other}")));
                    }
                }
            }
            Statement::DropDomain(_) => structure("DROP DOMAIN"),
            Statement::CreateFunction(_) => code("CREATE FUNCTION"),
            Statement::CreateProcedure { .. } => code("CREATE PROCEDURE"),
            Statement::CreateTrigger(_) => code("CREATE TRIGGER"),
            Statement::DropTrigger(_) => code("DROP TRIGGER"),
            Statement::AlterTrigger(_) => code("ALTER TRIGGER"),
            Statement::CreateRule(_) => code("CREATE RULE"),
            Statement::DropRule(_) => code("DROP RULE"),
            Statement::CreateExtension(_) => code("CREATE EXTENSION"),
            Statement::DropExtension(_) => code("DROP EXTENSION"),
            Statement::CreateServer(_) => code("CREATE SERVER"),
            Statement::CreateForeignTable(_) => code("CREATE FOREIGN TABLE"),
            Statement::CreateForeignDataWrapper(_) => code("CREATE FOREIGN DATA WRAPPER"),
            Statement::CreateUserMapping(_) => code("CREATE USER MAPPING"),
            Statement::CreatePolicy(_) => code("CREATE POLICY"),
            Statement::AlterPolicy(_) => code("ALTER POLICY"),
            Statement::DropPolicy(_) => code("DROP POLICY"),
            Statement::CreateOperator(_)
            | Statement::CreateOperatorFamily(_)
            | Statement::CreateOperatorClass(_) => code("CREATE OPERATOR"),
            Statement::AlterOperator(_)
            | Statement::AlterOperatorFamily(_)
            | Statement::AlterOperatorClass(_) => code("ALTER OPERATOR"),
            Statement::DropOperator(_)
            | Statement::DropOperatorFamily(_)
            | Statement::DropOperatorClass(_) => code("DROP OPERATOR"),
            Statement::CreateAggregate(_) => code("CREATE AGGREGATE"),
            Statement::CreateTextSearch(_) => code("CREATE TEXT SEARCH"),
            Statement::AlterTextSearch(_) => code("ALTER TEXT SEARCH"),
            Statement::AlterFunction(alter) => match alter.operation {
                AlterFunctionOperation::OwnerTo(_) => security("ALTER FUNCTION OWNER"),
                _ => code("ALTER FUNCTION"),
            },
            Statement::DropFunction(_) => code("DROP FUNCTION"),
            Statement::DropProcedure { .. } => code("DROP PROCEDURE"),
            Statement::Load { .. } => code("LOAD"),
            Statement::CreateRole(_) => security("CREATE ROLE"),
            Statement::CreateUser(_) => security("CREATE USER"),
            Statement::AlterRole { .. } => security("ALTER ROLE"),
            Statement::AlterUser(_) => security("ALTER USER"),
            Statement::Grant(_) | Statement::GrantRole(_) => security("GRANT"),
            Statement::Revoke(_) | Statement::RevokeRole(_) => security("REVOKE"),
            Statement::AlterDefaultPrivileges(_) => security("ALTER DEFAULT PRIVILEGES"),
            Statement::CreateDatabase { .. } => security("CREATE DATABASE"),
            other => {
                return Err(AnalysisError::Unsupported(format!(
                    "statement {}",
                    variant(other)
                )))
            }
        })
    }

    /// Index expressions and predicates run over every row of the table.
    fn create_index(&mut self, index: &CreateIndex) -> Result<(), AnalysisError> {
        let parts = names::parts(&index.table_name)?;
        let rel = self.resolve_relation(&parts)?;
        let item = self.relation_item_of(rel, false, None)?;
        self.levels.push(Level::of(vec![item]));
        let result = index
            .columns
            .iter()
            .map(|c| &c.column.expr)
            .chain(&index.predicate)
            .try_for_each(|e| self.predicate_expr(e));
        self.levels.pop();
        result
    }

    /// ALTER TABLE: ownership is security, row level security, triggers
    /// and rules are code, the rest structure. `TYPE ... USING` expressions
    /// and new defaults are analyzed over the table.
    fn alter_table(&mut self, alter: &AlterTable) -> Result<DdlKind, AnalysisError> {
        let mut kind = structure("ALTER TABLE");
        let mut exprs = Vec::new();
        for op in &alter.operations {
            match op {
                AlterTableOperation::OwnerTo { .. } => return Ok(security("ALTER TABLE OWNER")),
                AlterTableOperation::EnableRowLevelSecurity
                | AlterTableOperation::DisableRowLevelSecurity
                | AlterTableOperation::ForceRowLevelSecurity
                | AlterTableOperation::NoForceRowLevelSecurity => {
                    kind = code("ALTER TABLE ROW LEVEL SECURITY");
                }
                AlterTableOperation::EnableTrigger { .. }
                | AlterTableOperation::DisableTrigger { .. }
                | AlterTableOperation::EnableAlwaysTrigger { .. }
                | AlterTableOperation::EnableReplicaTrigger { .. } => {
                    kind = code("ALTER TABLE TRIGGER");
                }
                AlterTableOperation::EnableRule { .. }
                | AlterTableOperation::DisableRule { .. }
                | AlterTableOperation::EnableAlwaysRule { .. }
                | AlterTableOperation::EnableReplicaRule { .. } => {
                    kind = code("ALTER TABLE RULE");
                }
                AlterTableOperation::AlterColumn {
                    op:
                        AlterColumnOperation::SetDataType { using: Some(e), .. }
                        | AlterColumnOperation::SetDefault { value: e },
                    ..
                } => exprs.push(e),
                _ => {}
            }
        }
        if !exprs.is_empty() {
            let parts = names::parts(&alter.name)?;
            let rel = self.resolve_relation(&parts)?;
            let item = self.relation_item_of(rel, alter.only, None)?;
            self.levels.push(Level::of(vec![item]));
            let result = exprs.into_iter().try_for_each(|e| self.predicate_expr(e));
            self.levels.pop();
            result?;
        }
        Ok(kind)
    }
}
