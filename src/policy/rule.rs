//! Every rule id a guarded session can be refused by, in one enum: its
//! stable id string (operators alert on it: metrics label, block-log
//! field, the client's error), its SQLSTATE, what it refuses and a hint
//! that fits it. `policies/README.md` documents every id (a test checks).

use std::fmt;

/// What a hint tells the client to do instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HintKind {
    /// Classified data leaving production: the sanctioned anonymized dump.
    Data,
    /// Something a guarded class may not do at all.
    Capability,
    /// A statement copyguard could not follow: send it differently.
    Analysis,
    /// A driver or protocol detail: no data involved.
    Protocol,
    /// The operator's configuration.
    Operator,
    /// A dump grant that cannot be used as it is: ask for a new one.
    Grant,
}

macro_rules! rules {
    ($($(#[$doc:meta])* $variant:ident = $id:literal, $hint:ident, $meaning:literal;)*) => {
        /// A rule a guarded statement, result or login can be refused by.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Rule {
            $($(#[$doc])* $variant,)*
        }

        impl Rule {
            /// Every rule.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            /// The stable id, e.g. `table.forbidden`.
            pub const fn id(self) -> &'static str {
                match self {
                    $(Rule::$variant => $id,)*
                }
            }

            /// What the rule refuses, in one line.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Rule::$variant => $meaning,)*
                }
            }

            const fn hint_kind(self) -> HintKind {
                match self {
                    $(Rule::$variant => HintKind::$hint,)*
                }
            }
        }
    };
}

rules! {
    /// `SET ROLE`, `SET SESSION AUTHORIZATION`, or the same at startup.
    IdentityChange = "identity.change", Capability, "SET ROLE, SET SESSION AUTHORIZATION, role settings at startup";
    /// `set_config` whose setting name is not a constant string.
    SettingDynamic = "setting.dynamic", Analysis, "set_config with a setting name that is not a string constant";
    /// `set_config` with a value computed from classified columns.
    SettingClassified = "setting.classified", Data, "set_config with a value computed from classified columns, which SHOW or current_setting would return";
    /// A `DO` block.
    CodeDoBlock = "code.do_block", Capability, "DO blocks";
    /// `CALL` of a procedure.
    CodeCall = "code.call", Capability, "CALL of procedures";
    /// DDL of objects that run code.
    DdlCode = "ddl.code", Capability, "DDL of functions, procedures, triggers, rules, extensions, foreign servers...";
    /// DDL of roles, privileges, ownership.
    DdlSecurity = "ddl.security", Capability, "DDL of roles, privileges, ownership";
    /// Structural DDL for a class without `allow_ddl`.
    DdlNotAllowed = "ddl.not_allowed", Capability, "other DDL, unless allow_ddl";
    /// A function outside the allowlist.
    FunctionNotAllowed = "function.not_allowed", Capability, "functions outside the allowlist";
    /// A forbidden table (configured or built in).
    TableForbidden = "table.forbidden", Data, "forbidden tables, configured or built in";
    /// In a session admitted with a dump grant: rows of a table outside
    /// the grant's scope.
    GrantOutOfScope = "grant.out_of_scope", Data, "with a dump grant: rows of tables outside the grant's scope";
    /// A dump grant token that is not a copyguard grant.
    GrantMalformed = "grant.malformed", Grant, "dump grant tokens that are not copyguard grants (shape, encoding, fields, more than one)";
    /// A dump grant whose signature does not match its content.
    GrantTampered = "grant.tampered", Grant, "dump grants whose signature does not match their content";
    /// A dump grant signed with a key copyguard does not trust.
    GrantUnknownKey = "grant.unknown_key", Grant, "dump grants signed with a key not among dumps.public_keys";
    /// A dump grant while copyguard has no grant public key.
    GrantNoKeys = "grant.no_keys", Operator, "every dump grant, while no grant public key is configured";
    /// A dump grant past its expiry.
    GrantExpired = "grant.expired", Grant, "dump grants past their expiry";
    /// A dump grant listed as revoked in the policy.
    GrantRevoked = "grant.revoked", Grant, "dump grants listed in [grants] revoked";
    /// A dump grant whose allowed uses are spent.
    GrantOverused = "grant.overused", Grant, "dump grants whose allowed uses are spent";
    /// A dump grant presented by another login role than its requester.
    GrantWrongRole = "grant.wrong_role", Grant, "dump grants presented by another login role";
    /// A dump grant presented for another database.
    GrantWrongDatabase = "grant.wrong_database", Grant, "dump grants presented for another database";
    /// `COPY` to or from a server file or program.
    CopyServerSide = "copy.server_side", Capability, "COPY to or from server files and programs";
    /// A write for a class without `allow_writes`.
    WriteNotAllowed = "write.not_allowed", Capability, "writes, unless allow_writes";
    /// Classified values stored into the database.
    CopyInDbClassified = "copy_in_db.classified", Data, "storing classified values in the database";
    /// An output of a category the class blocks.
    CategoryBlocked = "category.blocked", Data, "outputs of the class's block_categories";
    /// `COPY ... TO STDOUT` of classified columns.
    CopyClassified = "copy.classified", Data, "COPY TO STDOUT of classified columns";
    /// A classified column in WHERE, JOIN, ORDER BY... without
    /// `classified_predicates`.
    PredicateClassified = "predicate.classified", Data, "classified columns in WHERE, JOIN, ORDER BY..., unless classified_predicates";
    /// A classified output for a class with `max_rows_per_statement = 0`.
    ClassifiedNotAllowed = "classified.not_allowed", Data, "classified outputs when max_rows_per_statement is 0";
    /// A classified output gathered with many others into one row.
    ClassifiedAggregated = "classified.aggregated", Data, "classified outputs gathered into one row by string_agg, array_agg, json_agg, ARRAY(...)";
    /// A value computed from a pseudonymized column where it cannot be
    /// pseudonymized as a whole.
    PseudonymDerived = "pseudonym.derived", Data, "values computed from pseudonymized columns when derived = \"block\", or in a COPY";
    /// A statement the SQL parser could not read.
    AnalysisParse = "analysis.parse", Analysis, "statements copyguard cannot parse";
    /// A statement naming relations while the session's catalog could not
    /// be checked against the server's.
    CatalogUnverified = "catalog.unverified", Analysis, "statements naming relations while copyguard cannot check its catalog against the server's (the check or the load failed on the session's connection)";
    /// A relation the catalog does not know.
    AnalysisUnknownRelation = "analysis.unknown_relation", Analysis, "statements naming a relation copyguard does not know (yet)";
    /// A column the catalog does not know.
    AnalysisUnknownColumn = "analysis.unknown_column", Analysis, "statements naming a column copyguard does not know";
    /// SQL the analysis does not follow.
    AnalysisUnsupported = "analysis.unsupported", Analysis, "SQL constructs copyguard cannot follow";
    /// A statement too large to analyze within copyguard's memory bounds.
    AnalysisTooLarge = "analysis.too_large", Analysis, "statements too large to analyze within copyguard's memory bounds";
    /// A statement after a change of how names resolve, in the same
    /// request.
    AnalysisContextChange = "analysis.context_change", Analysis, "statements after a search_path change, DDL or a transaction end in the same request";
    /// A change of a setting that changes how the server reads SQL text.
    SettingLexer = "setting.lexer", Protocol, "settings that change how the server reads SQL text (standard_conforming_strings, unsafe client encodings)";
    /// A limited statement sent with others in one query string.
    StatementLimitedNotAlone = "statement.limited_not_alone", Protocol, "statements returning classified rows sent with others in one query string";
    /// EXECUTE or Bind of a prepared statement whose relations changed
    /// since it was prepared.
    StatementChanged = "statement.changed", Protocol, "prepared statements whose relations changed since they were prepared (DDL on the server or in the session)";
    /// EXECUTE or Bind of a statement copyguard did not see prepared.
    StatementUnknown = "statement.unknown", Protocol, "prepared statements copyguard did not see (or refused)";
    /// Execute of a portal copyguard did not see bound.
    PortalUnknown = "portal.unknown", Protocol, "portals copyguard did not see (or refused)";
    /// FETCH or MOVE of a cursor copyguard did not see declared.
    CursorUnknown = "cursor.unknown", Protocol, "cursors copyguard did not see (or refused)";
    /// The FunctionCall protocol message.
    ProtocolFunctionCall = "protocol.function_call", Protocol, "the FunctionCall protocol message";
    /// A replication connection.
    ProtocolReplication = "protocol.replication", Capability, "replication connections";
    /// Rows whose description copyguard could not check.
    ResultUnchecked = "result.unchecked", Protocol, "rows whose RowDescription was not checked";
    /// A result of another shape than the analysis expected.
    ResultShapeMismatch = "result.shape_mismatch", Analysis, "results whose column count differs from the analysis";
    /// A result column of a relation the catalog does not know.
    ResultUnknownRelation = "result.unknown_relation", Analysis, "result columns of a relation copyguard does not know yet";
    /// A classified result column the analysis did not account for.
    ResultClassifiedUnexpected = "result.classified_unexpected", Data, "classified result columns the analysis did not account for";
    /// More classified rows than the statement limit.
    LimitRows = "limit.rows", Data, "results past max_rows_per_statement classified rows";
    /// More classified bytes than the statement limit.
    LimitBytes = "limit.bytes", Data, "results past max_bytes_per_statement of classified rows";
    /// The session's classified-row budget is spent.
    BudgetSession = "budget.session", Data, "classified rows past max_rows_per_session";
    /// The role's classified-row budget for the window is spent.
    BudgetRole = "budget.role", Data, "classified rows past max_rows_per_window for the role";
    /// Pseudonymization is needed but no key is configured.
    PseudonymNoKey = "pseudonym.no_key", Operator, "pseudonymized outputs when copyguard has no pseudonymization key";
    /// A COPY whose options copyguard cannot pseudonymize.
    PseudonymCopy = "pseudonym.copy", Data, "pseudonymized COPY with options or columns copyguard cannot rewrite";
    /// Rows to pseudonymize that arrived without a description.
    PseudonymUndescribed = "pseudonym.undescribed", Protocol, "pseudonymized rows that arrived before their description";
    /// A value the transform cannot handle in this type or format.
    PseudonymUnsupported = "pseudonym.unsupported", Data, "values copyguard cannot pseudonymize in their type or format";
    /// The block log cannot be written.
    AuditUnavailable = "audit.unavailable", Operator, "every guarded statement while the block log cannot be written";
}

/// The hint of data-export refusals: the sanctioned way to get data.
pub const DATA_HINT: &str = "Guarded roles cannot read or export classified production data. \
For realistic data, request a sanctioned anonymized dump: copyguard dump request.";

impl Rule {
    /// The SQLSTATE a client gets for this rule.
    pub const fn sqlstate(self) -> &'static str {
        match self {
            Rule::AuditUnavailable => "58030",
            Rule::GrantMalformed
            | Rule::GrantTampered
            | Rule::GrantUnknownKey
            | Rule::GrantNoKeys
            | Rule::GrantExpired
            | Rule::GrantRevoked
            | Rule::GrantOverused
            | Rule::GrantWrongRole
            | Rule::GrantWrongDatabase => "28000",
            Rule::AnalysisTooLarge => "54000",
            Rule::CatalogUnverified => "55000",
            // As PostgreSQL's "cached plan must not change result type".
            Rule::StatementChanged => "0A000",
            _ => "42501",
        }
    }

    /// What the client can do instead, fitted to the rule.
    pub const fn hint(self) -> &'static str {
        match self {
            Rule::AnalysisContextChange => {
                "Send the statement as a separate query, or after a Sync."
            }
            Rule::StatementChanged => {
                "Prepare the statement again (DEALLOCATE and PREPARE, or a new Parse): copyguard cannot tell which relations the server's plan reads now."
            }
            Rule::StatementLimitedNotAlone => {
                "Send the statement that returns classified rows as a query of its own."
            }
            Rule::CatalogUnverified => {
                "copyguard reads the catalog on the session's own connection: a short statement_timeout or lock_timeout, or missing rights on pg_catalog, stop it. Retry, or raise the timeout."
            }
            Rule::AnalysisUnknownRelation | Rule::ResultUnknownRelation => {
                "A relation created in the same request is not known yet: send the statements that use it separately, or retry."
            }
            Rule::SettingDynamic => {
                "Write the setting's name in set_config as a string constant, e.g. set_config('search_path', $1, false)."
            }
            Rule::SettingLexer => {
                "Keep standard_conforming_strings on and use a client encoding such as UTF8."
            }
            Rule::ProtocolReplication => "Replication is for production roles only.",
            Rule::GrantMalformed | Rule::GrantTampered => {
                "Pass the grant token exactly as copyguard dump approve printed it: PGOPTIONS='-c copyguard.grant=TOKEN', or copyguard dump run GRANT_FILE."
            }
            Rule::GrantUnknownKey => {
                "Ask security for a grant signed with a current key, or the copyguard operator to add its grant.pub to dumps.public_keys."
            }
            Rule::GrantNoKeys => {
                "The copyguard operator must configure dumps.public_keys (--dump-public-keys) before grants can be used."
            }
            Rule::GrantWrongRole | Rule::GrantWrongDatabase => {
                "Connect as the role and to the database the grant names (copyguard dump show TOKEN prints them); copyguard dump run sets both."
            }
            Rule::AuditUnavailable => {
                "The proxy's /healthz reports the block log; statements work again once it can be written."
            }
            _ => match self.hint_kind() {
                HintKind::Data => DATA_HINT,
                HintKind::Capability => {
                    "Your role class does not allow this; the policy owner can change the class (policies/README.md)."
                }
                HintKind::Analysis => {
                    "copyguard runs only statements it can analyze; write the statement more simply (copyguard explain shows what it sees)."
                }
                HintKind::Protocol => {
                    "A protocol step copyguard could not follow; it is refused without touching any data. Retry on a fresh statement or session."
                }
                HintKind::Operator => "The copyguard operator must fix its configuration.",
                HintKind::Grant => {
                    "Ask security for a new grant: copyguard dump request ..., then copyguard dump approve; copyguard dump show TOKEN prints what a grant allows."
                }
            },
        }
    }

    /// Whether the rule stops a result that ran out of its limit or budget
    /// (recorded as `budget_exceeded`, not `blocked`).
    pub const fn is_limit(self) -> bool {
        matches!(
            self,
            Rule::LimitRows | Rule::LimitBytes | Rule::BudgetSession | Rule::BudgetRole
        )
    }

    /// The rule of an id string, if any.
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.id() == id)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl PartialEq<str> for Rule {
    fn eq(&self, other: &str) -> bool {
        self.id() == other
    }
}

impl PartialEq<&str> for Rule {
    fn eq(&self, other: &&str) -> bool {
        self.id() == *other
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_rule_id_is_unique_and_documented() {
        let readme = include_str!("../../policies/README.md");
        let mut seen = BTreeSet::new();
        for rule in Rule::ALL {
            let id = rule.id();
            assert!(seen.insert(id), "{id} twice");
            assert!(
                readme.contains(&format!("`{id}`")),
                "{id} not in policies/README.md"
            );
            assert_eq!(Rule::from_id(id), Some(*rule));
            assert_eq!(rule.sqlstate().len(), 5);
            assert!(!rule.meaning().is_empty());
        }
    }

    #[test]
    fn hints_fit_the_rule() {
        assert!(Rule::TableForbidden
            .hint()
            .contains("copyguard dump request"));
        assert!(Rule::LimitRows.hint().contains("anonymized dump"));
        for internal in [
            Rule::StatementUnknown,
            Rule::StatementChanged,
            Rule::PortalUnknown,
            Rule::CursorUnknown,
            Rule::AnalysisContextChange,
            Rule::SettingLexer,
            Rule::PseudonymNoKey,
            Rule::AnalysisParse,
        ] {
            assert!(
                !internal.hint().contains("dump"),
                "{internal}: {}",
                internal.hint()
            );
        }
    }
}
