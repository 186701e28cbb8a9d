//! The whole guarded verdict, made once, by one ordered function: what
//! `serve` runs for every statement of a guarded session and what
//! `explain` prints. No sockets: the proxy feeds it statements and runs
//! what it decides.
//!
//! For one statement, in order ([`Core::decide`]):
//! 1. analysis errors become `analysis.*` refusals ([`Core::analyze`]);
//! 2. a statement after a change of how names resolve, in the same
//!    request, is refused (`analysis.context_change`);
//! 3. `EXECUTE` and `FETCH` are decided on what they run (the prepared
//!    statement decided again in the current context, the cursor's query):
//!    `statement.unknown`, `cursor.unknown`;
//! 4. a `SET` of a setting that changes how the server reads SQL text is
//!    refused (`setting.lexer`);
//! 5. the policy's rules ([`Policy::decide`]);
//! 6. pseudonymized outputs need a key (`pseudonym.no_key`);
//!
//! and for a query string as a whole ([`Core::decide_query`]): a statement
//! returning classified rows must come alone
//! (`statement.limited_not_alone`).

use std::sync::{Arc, Mutex};

use super::cache::{DecisionCache, Now};
use super::journal::Names;
use super::{Exec, Journal, NameMap, Refusal, RefusedFacts, SqlText};
use crate::analysis::{self, AnalysisError, Context, StatementFacts, StatementKind};
use crate::catalog::Catalog;
use crate::enforce;
use crate::policy::{Block, ClassMode, Policy, RoleClass, Rule, Verdict};

/// One guarded session's decision state: the name-resolution context and
/// what the session has prepared, bound and declared, as copyguard saw it.
#[derive(Debug)]
pub struct Core {
    /// The login role; its class is re-read under each policy.
    user: String,
    /// The class the session was given at login.
    login_class: Arc<RoleClass>,
    /// Whether copyguard has a pseudonymization key.
    has_key: bool,
    /// The catalog names are resolved against.
    pub catalog: Arc<Catalog>,
    /// The search path names are resolved with.
    pub search_path: Vec<String>,
    /// The search path may have changed on the server: read it again
    /// before the next request.
    pub search_path_dirty: bool,
    /// The relations may have changed: reload the catalog before the next
    /// request.
    pub catalog_dirty: bool,
    /// Bumped whenever the search path or the catalog changes: decisions
    /// made in an older context are analyzed again before they run.
    pub context: u64,
    /// Bumped whenever the search path changes (PostgreSQL analyzes
    /// prepared statements again then).
    path_version: u64,
    /// The session ran DDL: ending a transaction or DISCARD may then drop
    /// or revert relations, so the catalog is reloaded.
    ddl_seen: bool,
    /// A statement executed in this extended-protocol batch changed how
    /// names resolve; nothing more is analyzed until the next Sync.
    pub batch_changed: bool,
    /// This extended-protocol batch already failed on the server (a
    /// refused message, a Parse the server rejects, a stopped result): the
    /// server skips everything up to the next Sync, so what is refused
    /// after it is refused silently (the client sees one error, the block
    /// log holds one record), and what is allowed after it never runs.
    pub batch_failed: bool,
    /// Prepared statements (Parse and SQL PREPARE), by name.
    pub statements: NameMap<Arc<Exec>>,
    /// Bound portals, by name.
    pub portals: NameMap<Arc<Exec>>,
    /// Declared cursors, by name.
    pub cursors: NameMap<Arc<Exec>>,
    /// Allowed decisions by statement shape.
    cache: Mutex<DecisionCache>,
    /// Where changes to those names are noted until the server answers
    /// (undone when it fails or skips the message), when a relay runs.
    pub(super) journal: Option<Arc<Journal>>,
}

impl Core {
    /// A fresh session of `user` (given `login_class` at login): search
    /// path `pg_catalog, public` until the server's is read, the catalog
    /// reloaded first when it is empty.
    pub fn new(
        user: impl Into<String>,
        login_class: Arc<RoleClass>,
        has_key: bool,
        catalog: Arc<Catalog>,
    ) -> Core {
        let catalog_dirty = catalog.relations().next().is_none();
        Core {
            user: user.into(),
            login_class,
            has_key,
            catalog,
            search_path: vec!["pg_catalog".to_owned(), "public".to_owned()],
            search_path_dirty: true,
            catalog_dirty,
            context: 0,
            path_version: 0,
            ddl_seen: false,
            batch_changed: false,
            batch_failed: false,
            statements: NameMap::default(),
            portals: NameMap::default(),
            cursors: NameMap::default(),
            cache: Mutex::default(),
            journal: None,
        }
    }

    /// Turns the decision cache on (the default) or off: every statement
    /// then analyzed and decided afresh.
    pub fn set_decision_cache(&mut self, on: bool) {
        self.cache_mut().set_enabled(on);
    }

    /// Decisions held by the decision cache.
    pub fn cached_decisions(&self) -> usize {
        self.cache_mut().len()
    }

    fn cache_mut(&self) -> std::sync::MutexGuard<'_, DecisionCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shape `sql` is cached under, and the decision cached for it in
    /// the current context, with `sql` as its text.
    fn cached(&self, sql: &SqlText, policy: &Arc<Policy>) -> (Option<String>, Option<Arc<Exec>>) {
        let mut cache = self.cache_mut();
        let Some(key) = cache.key(sql) else {
            return (None, None);
        };
        let now = Now {
            catalog: &self.catalog,
            policy,
            search_path: &self.search_path,
        };
        let hit = cache.get(&key, &now).map(|mut exec| {
            exec.sql = Some(sql.clone());
            exec.context = self.context;
            exec.path_version = self.path_version;
            Arc::new(exec)
        });
        (Some(key), hit)
    }

    /// Keeps the decision of the single statement of shape `key`.
    fn remember(&self, key: Option<String>, execs: &[Arc<Exec>]) {
        if let (Some(key), [exec]) = (key, execs) {
            self.cache_mut().put(key, exec, &self.search_path);
        }
    }

    /// The same core with a search path known to be the server's.
    pub fn with_search_path(mut self, search_path: Vec<String>) -> Core {
        self.search_path = search_path;
        self.search_path_dirty = false;
        self
    }

    /// Adopts a newer catalog: decisions made before are made again.
    pub fn set_catalog(&mut self, catalog: Arc<Catalog>) {
        self.note_schemas(&catalog);
        self.catalog = catalog;
        self.catalog_dirty = false;
        self.context += 1;
    }

    /// Adopts the database's shared catalog, loaded by another session: a
    /// session that has run no DDL then needs no load of its own.
    pub fn adopt_catalog(&mut self, catalog: Arc<Catalog>) {
        if Arc::ptr_eq(&self.catalog, &catalog) {
            return;
        }
        self.note_schemas(&catalog);
        self.catalog = catalog;
        self.catalog_dirty &= self.ddl_seen;
        self.context += 1;
    }

    /// Before `catalog` replaces the session's: when the schema changed
    /// between them (another stamp), the search path is read again, since
    /// schemas it names may have come or gone (`"$user"` among them).
    fn note_schemas(&mut self, catalog: &Catalog) {
        if catalog.stamp != self.catalog.stamp {
            self.search_path_dirty = true;
        }
    }

    /// Whether the session has had no catalog yet (it started before its
    /// database's first load ended).
    pub fn has_no_catalog(&self) -> bool {
        self.catalog_dirty && !self.ddl_seen
    }

    /// Adopts the server's search path as read.
    pub fn set_search_path(&mut self, path: Vec<String>) {
        if path != self.search_path {
            self.context += 1;
            self.path_version += 1;
        }
        self.search_path = path;
        self.search_path_dirty = false;
    }

    /// Analyzes SQL text in the session's context; an analysis error is a
    /// refusal.
    pub fn analyze(&self, sql: &str) -> Result<Vec<StatementFacts>, Block> {
        let ctx = Context {
            catalog: &self.catalog,
            search_path: &self.search_path,
        };
        analysis::analyze(sql, &ctx)
            .map(|f| f.statements)
            .map_err(|e| analysis_block(&e))
    }

    /// `stmt`'s decision as it stands now: analyzed again from its text when
    /// the search path or catalog changed since (PostgreSQL re-plans it
    /// too), decided again when the policy changed.
    pub fn redecide(&self, stmt: &Arc<Exec>, policy: &Arc<Policy>) -> Result<Arc<Exec>, Refusal> {
        if stmt.context != self.context {
            let unknown =
                || Refusal::on(context_change_block(), &stmt.facts, &self.catalog, policy);
            let Some(sql) = &stmt.sql else {
                return Err(unknown());
            };
            let mut statements = self.analyze(sql)?;
            if statements.len() != 1 {
                return Err(unknown());
            }
            let fresh = statements.remove(0);
            // With the same search path PostgreSQL keeps the plan unless a
            // relation it uses changed: a relation created to shadow one
            // leaves it reading the old one. Which is the case cannot be
            // told, so facts that changed are refused.
            if stmt.path_version == self.path_version && fresh != *stmt.facts {
                return Err(Refusal::on(
                    enforce::block(
                        Rule::StatementChanged,
                        "the relations this prepared statement reads changed since it was prepared, so copyguard cannot tell which of them the server's plan reads now",
                    ),
                    &stmt.facts,
                    &self.catalog,
                    policy,
                ));
            }
            return self.decide(fresh, policy, Some(sql.clone()));
        }
        if Arc::ptr_eq(&stmt.policy, policy) {
            return Ok(stmt.clone());
        }
        self.decide((*stmt.facts).clone(), policy, stmt.sql.clone())
    }

    /// Decides one statement, substituting what EXECUTE and FETCH refer to.
    /// `sql` is the statement's own text when it came alone.
    pub fn decide(
        &self,
        facts: StatementFacts,
        policy: &Arc<Policy>,
        sql: Option<SqlText>,
    ) -> Result<Arc<Exec>, Refusal> {
        self.decide_scrubbing(facts, policy, sql, false)
    }

    /// [`Core::decide`], the server's errors and notices scrubbed anyway
    /// when `scrub`.
    fn decide_scrubbing(
        &self,
        facts: StatementFacts,
        policy: &Arc<Policy>,
        sql: Option<SqlText>,
        scrub: bool,
    ) -> Result<Arc<Exec>, Refusal> {
        let mut counted_by = None;
        let facts = match &facts.kind {
            StatementKind::Execute { name } => {
                let prepared = self.statements.get(name).ok_or_else(|| {
                    Refusal::from(enforce::block(
                        Rule::StatementUnknown,
                        format!("no prepared statement {name:?} known to copyguard"),
                    ))
                })?;
                let prepared = self.redecide(prepared, policy)?;
                let mut inner = (*prepared.facts).clone();
                inner.kind = facts.kind.clone();
                inner.functions.extend(facts.functions.iter().cloned());
                inner.settings.extend(facts.settings.iter().cloned());
                inner.predicates.extend(facts.predicates.iter().copied());
                inner
            }
            StatementKind::Fetch { name, is_move } => {
                // A SQL cursor, or a protocol portal (asyncpg's `MOVE
                // FORWARD n "__asyncpg_portal_1__"`), counted where its
                // own rows are.
                let portal = || {
                    self.portals
                        .get(name)
                        .map(|p| p.counted_by.as_ref().unwrap_or(p))
                };
                let cursor = self.cursors.get(name).or_else(portal).ok_or_else(|| {
                    Refusal::from(enforce::block(
                        Rule::CursorUnknown,
                        format!("no cursor {name:?} known to copyguard"),
                    ))
                })?;
                let mut inner = (*cursor.facts).clone();
                inner.kind = facts.kind.clone();
                if *is_move {
                    inner.outputs.clear();
                }
                counted_by = Some(cursor.clone());
                inner
            }
            StatementKind::Set { name }
                if enforce::is_lexer_setting(name)
                    && !sql
                        .as_deref()
                        .is_some_and(enforce::is_safe_client_encoding_set) =>
            {
                let b = enforce::block(
                    Rule::SettingLexer,
                    format!("guarded sessions cannot change {name}: it changes how the server reads SQL text"),
                );
                return Err(Refusal::on(b, &facts, &self.catalog, policy));
            }
            _ => facts,
        };
        let class = self.class(policy);
        match policy.decide(&class, &self.catalog, &facts) {
            Verdict::Block(b) => Err(Refusal::on(b, &facts, &self.catalog, policy)),
            Verdict::Allow(a) if a.pseudonymizes() && !self.has_key => {
                let b = enforce::block(
                    Rule::PseudonymNoKey,
                    "role class gets these columns pseudonymized, but copyguard has no pseudonymization key (pseudonym.key_file)",
                );
                Err(Refusal::on(b, &facts, &self.catalog, policy))
            }
            Verdict::Allow(allowance) => {
                // Deferred triggers and constraints of the transaction's
                // writes fail at COMMIT: its error can quote their rows.
                let scrub = scrub
                    || allowance.touches_classified
                    || matches!(facts.kind, StatementKind::Transaction { ends: true, .. });
                let mut exec = Exec::new(
                    Arc::new(facts),
                    allowance,
                    scrub,
                    policy.clone(),
                    self.catalog.clone(),
                    class,
                );
                exec.counted_by = counted_by;
                exec.sql = sql;
                exec.context = self.context;
                exec.path_version = self.path_version;
                Ok(Arc::new(exec))
            }
        }
    }

    /// The session's role class under `policy`: membership is re-read so a
    /// reloaded policy's limits apply at the next statement, but a guarded
    /// session never becomes unguarded (a role that is production in the new
    /// policy keeps its login class).
    /// A session admitted with a dump grant keeps it (see
    /// [`crate::dumps::granted_class`]).
    pub fn class(&self, policy: &Policy) -> Arc<RoleClass> {
        let class = policy.classify_role(&self.user);
        let class = if class.mode == ClassMode::Guarded {
            class
        } else {
            self.login_class.clone()
        };
        match &self.login_class.dump {
            Some(dump) => Arc::new(crate::dumps::granted_class(&class, dump)),
            None => class,
        }
    }

    /// Applies what an allowed statement changes in the session.
    pub fn apply(&mut self, exec: &Arc<Exec>) {
        let cause = Some(exec);
        match &exec.facts.kind {
            StatementKind::Prepare { name, .. } => {
                self.set(Names::Statements, name, Some(exec.clone()), cause);
            }
            StatementKind::Deallocate { name: Some(name) } => {
                self.set(Names::Statements, name, None, cause);
            }
            StatementKind::Deallocate { name: None } => self.clear(Names::Statements, exec),
            // Cursors and protocol portals are one namespace on the
            // server: a cursor replaces a portal of its name, CLOSE closes
            // either.
            StatementKind::Declare { name } => {
                self.forget(Names::Portals, name, cause);
                self.set(Names::Cursors, name, Some(exec.clone()), cause);
            }
            StatementKind::CloseCursor { name: Some(name) } => {
                self.forget(Names::Portals, name, cause);
                self.set(Names::Cursors, name, None, cause);
            }
            StatementKind::CloseCursor { name: None } => {
                self.clear(Names::Portals, exec);
                self.clear(Names::Cursors, exec);
            }
            _ if exec.facts.sets_search_path() => self.search_path_dirty = true,
            StatementKind::Transaction { ends: true, .. } | StatementKind::Discard => {
                self.search_path_dirty = true;
                self.catalog_dirty |= self.ddl_seen;
            }
            StatementKind::Ddl(_)
            | StatementKind::CreateTableAs
            | StatementKind::MaterializedView => {
                self.catalog_dirty = true;
                self.search_path_dirty = true;
                self.ddl_seen = true;
            }
            _ => {}
        }
    }

    /// Analyzes and decides the statements of a simple Query in order,
    /// applying each one's effect on the session before deciding the next
    /// (a DECLARE then its FETCH). After a statement that changes how names
    /// resolve, the rest of the string could resolve differently on the
    /// server than here, so only statements that name no relation may
    /// follow. On a refusal the session's statements and cursors are as
    /// before.
    pub fn decide_query(
        &mut self,
        sql: &str,
        policy: &Arc<Policy>,
    ) -> Result<Vec<Arc<Exec>>, Block> {
        self.decide_query_at(sql, policy).map_err(|r| r.block)
    }

    /// [`Core::decide_query`], telling which statement was refused.
    pub fn decide_query_at(
        &mut self,
        sql: &str,
        policy: &Arc<Policy>,
    ) -> Result<Vec<Arc<Exec>>, Refusal> {
        self.decide_query_text(&SqlText::from(sql), policy)
    }

    /// [`Core::decide_query_at`] of a text the decisions keep (shared, not
    /// copied).
    pub fn decide_query_text(
        &mut self,
        sql: &SqlText,
        policy: &Arc<Policy>,
    ) -> Result<Vec<Arc<Exec>>, Refusal> {
        let (key, hit) = self.cached(sql, policy);
        if let Some(exec) = hit {
            self.apply(&exec);
            return Ok(vec![exec]);
        }
        let statements = self.analyze(sql)?;
        let alone = (statements.len() == 1).then(|| sql.clone());
        let saved = (self.statements.clone(), self.cursors.clone());
        let noted = self.journal.as_ref().map(|j| j.pending());
        let mut changed = false;
        let count = statements.len();
        let mut execs = Vec::with_capacity(count);
        for (at, facts) in statements.into_iter().enumerate() {
            // Outside a transaction block the string's statements commit
            // together, before the last one completes: deferred triggers
            // and constraints of the earlier ones fail as the last one.
            let scrub = at + 1 == count && execs.iter().any(|e: &Arc<Exec>| e.scrub);
            let decided = if changed && !names_no_relation(&facts.kind) {
                Err(Refusal::on(
                    context_change_block(),
                    &facts,
                    &self.catalog,
                    policy,
                ))
            } else {
                self.decide_scrubbing(facts, policy, alone.clone(), scrub)
            };
            match decided {
                Ok(exec) => {
                    changed |= changes_context(&exec.facts);
                    self.apply(&exec);
                    execs.push(exec);
                }
                Err(refusal) => {
                    (self.statements, self.cursors) = saved;
                    self.forget_noted(noted);
                    return Err(refusal.at(at));
                }
            }
        }
        if execs.len() > 1 && execs.iter().any(|e| e.allowance.limits.is_some()) {
            (self.statements, self.cursors) = saved;
            self.forget_noted(noted);
            let facts = RefusedFacts::new(execs.iter().map(|e| &*e.facts), &self.catalog, policy);
            return Err(Refusal {
                facts: Some(facts),
                ..Refusal::from(enforce::block(
                    Rule::StatementLimitedNotAlone,
                    "a statement returning classified rows must be sent as a query of its own: copyguard stops it at its limits, and statements after it in the same query string would still run",
                ))
            });
        }
        self.remember(key, &execs);
        Ok(execs)
    }

    /// Decides the statement of a Parse: `None` for several statements
    /// (the server refuses those in a Parse itself). The caller stores an
    /// allowed decision under the statement's name once it is recorded.
    pub fn decide_parse(
        &self,
        sql: &SqlText,
        policy: &Arc<Policy>,
    ) -> Result<Option<Arc<Exec>>, Refusal> {
        if self.batch_changed {
            let statements = self.analyze(sql).unwrap_or_default();
            return Err(Refusal {
                facts: Some(RefusedFacts::new(&statements, &self.catalog, policy)),
                ..Refusal::from(context_change_block())
            });
        }
        let (key, hit) = self.cached(sql, policy);
        if let Some(exec) = hit {
            return Ok(Some(exec));
        }
        let mut statements = self.analyze(sql)?;
        match statements.len() {
            0 => self
                .decide(StatementFacts::new(StatementKind::Empty), policy, None)
                .map(Some),
            1 => {
                let exec = self.decide(statements.remove(0), policy, Some(sql.clone()))?;
                self.remember(key, std::slice::from_ref(&exec));
                Ok(Some(exec))
            }
            _ => Ok(None),
        }
    }

    /// Decides a Bind of prepared statement `statement`: its decision as
    /// it stands now, and whether that is a new decision (to be recorded).
    pub fn decide_bind(
        &self,
        statement: &str,
        policy: &Arc<Policy>,
    ) -> Result<(Arc<Exec>, bool), Refusal> {
        let stored = self.statements.get(statement);
        if self.batch_changed {
            return Err(match stored {
                Some(s) => Refusal::on(context_change_block(), &s.facts, &self.catalog, policy),
                None => Refusal::from(context_change_block()),
            });
        }
        let Some(stmt) = stored else {
            return Err(Refusal::from(enforce::block(
                Rule::StatementUnknown,
                format!("no prepared statement {statement:?} known to copyguard"),
            )));
        };
        self.redecide(stmt, policy).map(|exec| {
            let new = !Arc::ptr_eq(&exec, stmt);
            (exec, new)
        })
    }

    /// An Execute of `portal`: the portal's decision, applied to the
    /// session.
    pub fn execute(&mut self, portal: &str) -> Result<Arc<Exec>, Refusal> {
        let Some(exec) = self.portals.get(portal).cloned() else {
            return Err(Refusal::from(enforce::block(
                Rule::PortalUnknown,
                format!("no portal {portal:?} known to copyguard"),
            )));
        };
        self.apply(&exec);
        self.batch_changed |= changes_context(&exec.facts);
        Ok(exec)
    }

    /// Stores the decision of a Parse under `name`, or forgets the name
    /// (a refused Parse, or one of several statements, which the server
    /// refuses).
    pub fn prepared(&mut self, name: &str, exec: Option<Arc<Exec>>) {
        self.set(Names::Statements, name, exec, None);
    }

    /// Stores the decision of a Bind under `portal`, or forgets the name
    /// (a refused Bind).
    pub fn bound(&mut self, portal: &str, exec: Option<Arc<Exec>>) {
        // One namespace with cursors: a cursor of the name is gone (the
        // end of its transaction closed it), or the Bind fails and the
        // change is undone.
        self.forget(Names::Cursors, portal, None);
        self.set(Names::Portals, portal, exec, None);
    }

    /// A Sync ended the extended-protocol batch.
    pub fn end_batch(&mut self) {
        self.batch_changed = false;
        self.batch_failed = false;
    }

    /// A message of an extended-protocol batch is refused (or fails on
    /// the server for a reason copyguard knows): whether the client sees
    /// this refusal, so it is recorded. Not when the batch had already
    /// failed: the server skips the message and its error never reaches
    /// the client.
    pub fn fail_batch(&mut self) -> bool {
        !std::mem::replace(&mut self.batch_failed, true)
    }
}

/// Whether running a statement may change how later names resolve: the
/// search path (`SET`, `RESET`, `set_config`), the relations that exist
/// (DDL, and the end of a transaction or DISCARD undoing or dropping
/// some).
pub fn changes_context(facts: &StatementFacts) -> bool {
    match &facts.kind {
        _ if facts.sets_search_path() => true,
        StatementKind::Transaction { ends, .. } => *ends,
        StatementKind::Discard
        | StatementKind::Ddl(_)
        | StatementKind::CreateTableAs
        | StatementKind::MaterializedView => true,
        _ => false,
    }
}

/// Statements that name no relation and may follow a context change in
/// the same query string.
fn names_no_relation(kind: &StatementKind) -> bool {
    matches!(
        kind,
        StatementKind::Transaction { .. }
            | StatementKind::Set { .. }
            | StatementKind::Show
            | StatementKind::Listen
            | StatementKind::Discard
            | StatementKind::Deallocate { .. }
            | StatementKind::CloseCursor { .. }
            | StatementKind::Empty
    )
}

/// The refusal for a statement that would run in a context copyguard has
/// not seen yet.
fn context_change_block() -> Block {
    enforce::block(
        Rule::AnalysisContextChange,
        "this statement follows a change of search_path, DDL or the end of a transaction in the same request, so copyguard cannot know how its names will resolve; send it as a separate query (or after a Sync)",
    )
}

/// The refusal for a statement analysis could not understand.
fn analysis_block(e: &AnalysisError) -> Block {
    let rule = match e {
        AnalysisError::Parse(_) => Rule::AnalysisParse,
        AnalysisError::UnknownRelation(_) => Rule::AnalysisUnknownRelation,
        AnalysisError::UnknownColumn(_) => Rule::AnalysisUnknownColumn,
        AnalysisError::Unsupported(_) => Rule::AnalysisUnsupported,
        AnalysisError::TooLarge(_) => Rule::AnalysisTooLarge,
    };
    let hint = match e {
        AnalysisError::UnknownRelation(_) => {
            " (a relation created earlier in the same request is not known yet: send the statements that use it separately)"
        }
        _ => "",
    };
    let what = match e {
        AnalysisError::Parse(_) => without_literal(&e.to_string()),
        _ => e.to_string(),
    };
    enforce::block(
        rule,
        format!("copyguard could not analyze the statement ({what}){hint}; guarded sessions run only statements it understands"),
    )
}

/// A parse error's message without the literal it quotes (sqlparser's
/// `found: 'Bruno.Durand1@Example.com'`): reasons reach the block log,
/// which holds no data values.
fn without_literal(message: &str) -> String {
    const FOUND: &str = "found: ";
    let Some(at) = message.find(FOUND) else {
        return message.to_owned();
    };
    let start = at + FOUND.len();
    let rest = &message[start..];
    let end = rest.find(" at Line: ").unwrap_or(rest.len());
    let token = &rest[..end];
    let quoted = [
        "'", "$", "E'", "e'", "N'", "n'", "X'", "x'", "B'", "b'", "U&'", "u&'",
    ];
    let literal = token.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || quoted.iter().any(|p| token.starts_with(p));
    match literal {
        true => format!("{}a literal{}", &message[..start], &rest[end..]),
        false => message.to_owned(),
    }
}
