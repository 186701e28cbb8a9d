//! The facts analysis produces about SQL text: what each statement is,
//! what it reads and writes, and where every value it returns or stores
//! comes from. Policy decides on these facts alone.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{ColumnId, Oid};

/// Facts about every statement of one SQL string, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// One entry per statement.
    pub statements: Vec<StatementFacts>,
}

/// Facts about one statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementFacts {
    /// What kind of statement it is.
    pub kind: StatementKind,
    /// Every relation read, views and the relations under them included.
    pub reads: BTreeSet<Oid>,
    /// How many times each relation is scanned: once per reference in
    /// FROM, a view's or CTE's relations once per reference to the view or
    /// CTE (a recursive CTE's once per round of its analysis), and, for
    /// each window or aggregate call over its columns (`lag`, `max`), as
    /// many times again as the calling SELECT's FROM list scans it (nested
    /// layers multiply). One output row can carry values of that many rows
    /// of the relation (a self-join, scalar subqueries in the select list,
    /// `lag(email, k)` for many `k`).
    pub scans: BTreeMap<Oid, u32>,
    /// Every relation written (INSERT, UPDATE, DELETE, MERGE, COPY FROM,
    /// TRUNCATE targets, tables created by CREATE TABLE AS / SELECT INTO).
    pub writes: BTreeSet<Oid>,
    /// The columns the statement returns to the client (select list,
    /// RETURNING, COPY TO columns), in order; empty when it returns no rows.
    pub outputs: Vec<OutputColumn>,
    /// Base columns referenced anywhere outside the outputs: WHERE, JOIN
    /// conditions, GROUP BY, HAVING, ORDER BY, window PARTITION/ORDER,
    /// LIMIT expressions.
    pub predicates: BTreeSet<ColumnId>,
    /// Base columns whose values flow into stored data: INSERT ... SELECT,
    /// UPDATE ... SET, MERGE, CREATE TABLE AS, SELECT INTO, materialized
    /// views.
    pub stored: BTreeSet<ColumnId>,
    /// Every function called, including aggregates and window functions.
    pub functions: BTreeSet<FunctionRef>,
    /// Every `set_config(name, value, is_local)` call: settings changes,
    /// decided like `SET`.
    pub settings: Vec<SettingChange>,
}

impl StatementFacts {
    /// Facts for a statement that touches no data.
    pub fn new(kind: StatementKind) -> StatementFacts {
        StatementFacts {
            kind,
            reads: BTreeSet::new(),
            scans: BTreeMap::new(),
            writes: BTreeSet::new(),
            outputs: Vec::new(),
            predicates: BTreeSet::new(),
            stored: BTreeSet::new(),
            functions: BTreeSet::new(),
            settings: Vec::new(),
        }
    }

    /// Every base column the outputs are computed from.
    pub fn output_lineage(&self) -> BTreeSet<ColumnId> {
        self.output_columns().collect()
    }

    /// The base columns of each output's lineage in turn, in output order
    /// (a column may come more than once): [`Self::output_lineage`]
    /// without building a set.
    pub fn output_columns(&self) -> impl Iterator<Item = ColumnId> + '_ {
        self.outputs.iter().flat_map(|o| o.lineage.iter().copied())
    }

    /// Whether running the statement may change the search path: `SET`
    /// or `RESET` of it (or `RESET ALL`), or `set_config` of it or of a
    /// name not known in advance.
    pub fn sets_search_path(&self) -> bool {
        matches!(&self.kind, StatementKind::Set { name } if name == "search_path" || name == "all")
            || self
                .settings
                .iter()
                .any(|s| s.name.as_deref().is_none_or(|n| n == "search_path"))
    }
}

/// A call of `set_config(name, value, is_local)` (built in, or a name that
/// may resolve to it): a settings change like `SET` (`SET LOCAL` when
/// `is_local`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingChange {
    /// The setting, lower case, when `name` is a constant string; `None`
    /// when it is computed, a parameter, or the call form is not
    /// understood.
    pub name: Option<String>,
    /// Every base column the arguments are computed from: a value derived
    /// from them could be read back with `SHOW` or `current_setting`.
    pub lineage: BTreeSet<ColumnId>,
}

/// One output column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputColumn {
    /// Column name as the client will see it.
    pub name: String,
    /// Every base column (of a table, partition, materialized view or
    /// foreign table, never of a view) the value is computed from.
    pub lineage: BTreeSet<ColumnId>,
    /// `Some(col)` when the output is that base column's value unchanged
    /// (a plain column reference, possibly through views, CTEs, subqueries
    /// and aliases); `None` when computed.
    pub direct: Option<ColumnId>,
}

/// A function call.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionRef {
    /// Schema as written (folded like an identifier), `None` if unqualified.
    pub schema: Option<String>,
    /// Function name (folded like an identifier).
    pub name: String,
    /// Whether a user-defined function of that name exists where this call
    /// could resolve (in the schema written, or in any schema when
    /// unqualified), so the call may not be the built-in one.
    pub user_defined: bool,
}

/// COPY data format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyFormat {
    /// Text.
    Text,
    /// CSV.
    Csv,
    /// Binary.
    Binary,
}

/// COPY options that shape text and CSV rows (`None`: PostgreSQL's
/// default for the format).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// DELIMITER.
    pub delimiter: Option<char>,
    /// NULL string.
    pub null: Option<String>,
    /// HEADER.
    pub header: bool,
    /// QUOTE (CSV).
    pub quote: Option<char>,
    /// ESCAPE (CSV).
    pub escape: Option<char>,
    /// ENCODING, when not the client's.
    pub encoding: Option<String>,
    /// FORCE_QUOTE (CSV).
    pub force_quote: Option<CopyForceQuote>,
}

/// CSV `FORCE_QUOTE`: which non-NULL values are always quoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyForceQuote {
    /// `FORCE_QUOTE *`.
    All,
    /// These columns, by name (case-folded unless quoted).
    Columns(Vec<String>),
}

/// Where COPY reads or writes on the server side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyEndpoint {
    /// STDIN / STDOUT: the client connection.
    Client,
    /// A server-side file.
    File(String),
    /// A server-side program.
    Program(String),
}

/// DDL kinds, grouped by how dangerous they are for a guarded role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DdlKind {
    /// CREATE/ALTER/DROP of tables, indexes, sequences, views, types,
    /// schemas, comments: structure only.
    Structure(String),
    /// Objects that run code or move data on their own: functions,
    /// procedures, triggers, rules, event triggers, extensions, foreign
    /// servers and tables, publications, subscriptions, languages.
    Code(String),
    /// Roles, privileges, ownership, database-level settings.
    Security(String),
}

/// What kind of statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatementKind {
    /// SELECT / VALUES / TABLE (also WITH ... SELECT).
    Select,
    /// INSERT (possibly ... SELECT, possibly RETURNING).
    Insert,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// MERGE.
    Merge,
    /// TRUNCATE.
    Truncate,
    /// COPY ... TO.
    CopyTo {
        /// Destination.
        to: CopyEndpoint,
        /// Format.
        format: CopyFormat,
        /// The options that shape text and CSV rows.
        options: CopyOptions,
    },
    /// COPY ... FROM.
    CopyFrom {
        /// Source.
        from: CopyEndpoint,
        /// Format.
        format: CopyFormat,
    },
    /// CREATE TABLE ... AS, SELECT ... INTO.
    CreateTableAs,
    /// CREATE MATERIALIZED VIEW ... AS / REFRESH MATERIALIZED VIEW.
    MaterializedView,
    /// Other DDL.
    Ddl(DdlKind),
    /// BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK, ABORT, SAVEPOINT,
    /// RELEASE, ROLLBACK TO, SET TRANSACTION.
    Transaction {
        /// COMMIT, END, ROLLBACK, ABORT, ROLLBACK TO: ends a transaction
        /// or subtransaction, so `SET LOCAL`, uncommitted DDL and `ON COMMIT DROP` tables may
        /// change how names resolve afterwards.
        ends: bool,
        /// BEGIN, START TRANSACTION, COMMIT or ROLLBACK AND CHAIN: a
        /// transaction begins that has taken no snapshot yet.
        begins: bool,
    },
    /// SET / SET LOCAL / RESET of a setting (not role or authorization).
    Set {
        /// Setting name, lower case (`search_path`, `all` for RESET ALL).
        name: String,
    },
    /// SET ROLE / RESET ROLE.
    SetRole,
    /// SET SESSION AUTHORIZATION / RESET SESSION AUTHORIZATION.
    SetSessionAuthorization,
    /// SHOW.
    Show,
    /// PREPARE name AS stmt: the facts are the inner statement's.
    Prepare {
        /// Statement name (folded).
        name: String,
        /// Kind of the prepared statement.
        inner: Box<StatementKind>,
    },
    /// EXECUTE name: the prepared statement's facts decide.
    Execute {
        /// Statement name (folded).
        name: String,
    },
    /// DEALLOCATE [ALL | name].
    Deallocate {
        /// Statement name, `None` for ALL.
        name: Option<String>,
    },
    /// DECLARE name CURSOR FOR query: the facts are the query's.
    Declare {
        /// Cursor name (folded).
        name: String,
    },
    /// FETCH / MOVE: the cursor's query decides what comes back.
    Fetch {
        /// Cursor name (folded).
        name: String,
        /// MOVE (returns no rows) rather than FETCH.
        is_move: bool,
    },
    /// CLOSE [ALL | name].
    CloseCursor {
        /// Cursor name, `None` for ALL.
        name: Option<String>,
    },
    /// EXPLAIN [ANALYZE] stmt: the facts (reads, functions) are the inner
    /// statement's, but no rows of it are returned.
    Explain {
        /// Whether the statement is executed (ANALYZE).
        analyze: bool,
    },
    /// LISTEN / UNLISTEN.
    Listen,
    /// NOTIFY.
    Notify,
    /// DISCARD.
    Discard,
    /// DO block: runs code the proxy cannot see.
    Do,
    /// CALL procedure.
    Call,
    /// VACUUM / ANALYZE / CLUSTER / REINDEX / CHECKPOINT.
    Maintenance,
    /// LOCK.
    Lock,
    /// An empty statement (only comments or whitespace).
    Empty,
}
