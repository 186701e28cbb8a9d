//! Statements sqlparser cannot parse, recognized by their leading keywords.
//!
//! Only statements that return no rows and carry no expressions the proxy
//! would need to see are recognized here (`DO`, `CHECKPOINT`, `MOVE`,
//! DDL of code and security objects...); their facts are the kind alone.
//! `TABLE name` is rewritten to `SELECT * FROM name` and parsed again.
//! Anything else stays a parse error.

use sqlparser::tokenizer::{Token, TokenWithSpan, Word};

use super::input::significant;
use super::names;
use super::{DdlKind, StatementKind};

/// What the keywords say.
pub(crate) enum Fallback {
    /// The statement's kind.
    Kind(StatementKind),
    /// Tokens to parse instead.
    Retry(Vec<TokenWithSpan>),
}

/// Classifies one statement's tokens, `None` when not recognized.
pub(crate) fn classify(tokens: &[TokenWithSpan]) -> Option<Fallback> {
    let sig: Vec<&TokenWithSpan> = tokens.iter().filter(|t| significant(&t.token)).collect();
    let words: Vec<String> = sig
        .iter()
        .map(|t| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            _ => String::new(),
        })
        .collect();
    let first = words.first()?.as_str();
    let kind = match first {
        "DO" => StatementKind::Do,
        "CHECKPOINT" | "CLUSTER" | "REINDEX" | "VACUUM" | "ANALYZE" | "ANALYSE" => {
            StatementKind::Maintenance
        }
        "FETCH" | "MOVE" => {
            let name = match &sig.last()?.token {
                Token::Word(w) if sig.len() >= 2 => word_name(w),
                _ => return None,
            };
            StatementKind::Fetch {
                name,
                is_move: first == "MOVE",
            }
        }
        "TABLE" => return Some(Fallback::Retry(table_as_select(tokens))),
        // `SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY,
        // DEFERRABLE` (`pg_dump --serializable-deferrable`): sqlparser
        // reads no DEFERRABLE. Transaction modes only, nothing else.
        "SET" | "BEGIN" | "START" if transaction_modes(&sig, &words) => {
            StatementKind::Transaction {
                ends: false,
                begins: first != "SET",
            }
        }
        "IMPORT" => StatementKind::Ddl(DdlKind::Code("IMPORT FOREIGN SCHEMA".into())),
        "LOAD" => StatementKind::Ddl(DdlKind::Code("LOAD".into())),
        "REASSIGN" => StatementKind::Ddl(DdlKind::Security("REASSIGN OWNED".into())),
        "SECURITY" => StatementKind::Ddl(DdlKind::Security("SECURITY LABEL".into())),
        "GRANT" | "REVOKE" => StatementKind::Ddl(DdlKind::Security(first.into())),
        "COMMENT" if plain(&sig, &words) => {
            StatementKind::Ddl(DdlKind::Structure("COMMENT".into()))
        }
        "CREATE" | "ALTER" | "DROP" => match object_ddl(&words)? {
            DdlKind::Structure(_) if !plain(&sig, &words) => return None,
            kind => StatementKind::Ddl(kind),
        },
        _ => return None,
    };
    Some(Fallback::Kind(kind))
}

/// Whether a statement is `SET [SESSION CHARACTERISTICS AS] TRANSACTION`,
/// `START TRANSACTION` or `BEGIN [WORK | TRANSACTION]` followed by
/// transaction modes alone (words of them and commas; PostgreSQL also
/// takes them without commas).
fn transaction_modes(sig: &[&TokenWithSpan], words: &[String]) -> bool {
    let modes = match words {
        [b, w, rest @ ..] if b == "BEGIN" && (w == "WORK" || w == "TRANSACTION") => rest,
        [b, rest @ ..] if b == "BEGIN" => rest,
        [_, t, rest @ ..] if t == "TRANSACTION" => rest,
        [_, s, c, a, t, rest @ ..]
            if s == "SESSION" && c == "CHARACTERISTICS" && a == "AS" && t == "TRANSACTION" =>
        {
            rest
        }
        _ => return false,
    };
    let mode_word = |w: &str| {
        matches!(
            w,
            "ISOLATION"
                | "LEVEL"
                | "SERIALIZABLE"
                | "REPEATABLE"
                | "READ"
                | "COMMITTED"
                | "UNCOMMITTED"
                | "ONLY"
                | "WRITE"
                | "NOT"
                | "DEFERRABLE"
        )
    };
    !modes.is_empty()
        && sig
            .iter()
            .zip(words)
            .skip(words.len() - modes.len())
            .all(|(t, w)| t.token == Token::Comma || mode_word(w))
}

/// Whether a statement has no parentheses and none of the keywords that
/// introduce a query or an expression run over data (`CREATE TABLE ... AS
/// EXECUTE`, `ALTER ... USING`, defaults): only such structure DDL may be
/// recognized without being parsed.
fn plain(sig: &[&TokenWithSpan], words: &[String]) -> bool {
    !sig.iter().any(|t| t.token == Token::LParen)
        && !words.iter().any(|w| {
            matches!(
                w.as_str(),
                "AS" | "SELECT" | "VALUES" | "EXECUTE" | "USING" | "DEFAULT"
            )
        })
}

fn word_name(w: &Word) -> String {
    names::fold_str(&w.value, w.quote_style.is_some())
}

/// `TABLE name ...` as `SELECT * FROM name ...`.
fn table_as_select(tokens: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(tokens.len() + 4);
    let mut replaced = false;
    for t in tokens {
        if !replaced && significant(&t.token) {
            replaced = true;
            for token in [
                Token::make_keyword("SELECT"),
                Token::Whitespace(sqlparser::tokenizer::Whitespace::Space),
                Token::Mul,
                Token::Whitespace(sqlparser::tokenizer::Whitespace::Space),
                Token::make_keyword("FROM"),
            ] {
                out.push(TokenWithSpan {
                    token,
                    span: t.span,
                });
            }
        } else {
            out.push(t.clone());
        }
    }
    out
}

/// Words that may stand between CREATE/ALTER/DROP and the object type.
const MODIFIERS: &[&str] = &[
    "OR",
    "REPLACE",
    "TEMP",
    "TEMPORARY",
    "UNLOGGED",
    "GLOBAL",
    "LOCAL",
    "TRUSTED",
    "PROCEDURAL",
    "CONSTRAINT",
    "UNIQUE",
    "RECURSIVE",
    "DEFAULT",
];

/// Object types whose name takes a second word.
const TWO_WORD_OBJECTS: &[&str] = &[
    "EVENT",
    "FOREIGN",
    "MATERIALIZED",
    "ACCESS",
    "TEXT",
    "LARGE",
    "USER",
    "OWNED",
];

fn object_ddl(words: &[String]) -> Option<DdlKind> {
    let verb = words.first()?;
    let mut i = 1;
    while i < words.len() && MODIFIERS.contains(&words[i].as_str()) {
        // `ALTER DEFAULT PRIVILEGES` names an object, not a modifier.
        if words[i] == "DEFAULT" && words.get(i + 1).is_some_and(|w| w == "PRIVILEGES") {
            break;
        }
        i += 1;
    }
    let object = words.get(i)?.as_str();
    let mut what = format!("{verb} {object}");
    let second = words.get(i + 1).map(String::as_str).unwrap_or("");
    if TWO_WORD_OBJECTS.contains(&object)
        && !second.is_empty()
        && (object != "USER" || second == "MAPPING")
    {
        what = format!("{what} {second}");
    }
    let rest = &words[i..];
    let mentions = |seq: &[&str]| rest.windows(seq.len()).any(|w| w.iter().eq(seq.iter()));
    Some(match object {
        "FUNCTION" | "PROCEDURE" | "ROUTINE" | "TRIGGER" | "EVENT" | "RULE" | "EXTENSION"
        | "SERVER" | "FOREIGN" | "LANGUAGE" | "PUBLICATION" | "SUBSCRIPTION" | "CAST"
        | "OPERATOR" | "AGGREGATE" | "TRANSFORM" | "CONVERSION" | "ACCESS" | "POLICY" | "TEXT" => {
            if mentions(&["OWNER", "TO"]) {
                DdlKind::Security(format!("{what} OWNER"))
            } else {
                DdlKind::Code(what)
            }
        }
        "USER" if second == "MAPPING" => DdlKind::Code(what),
        "ROLE" | "USER" | "GROUP" | "DATABASE" | "SYSTEM" | "DEFAULT" | "OWNED" | "TABLESPACE"
        | "LARGE" => DdlKind::Security(what),
        "TABLE" | "INDEX" | "SEQUENCE" | "VIEW" | "MATERIALIZED" | "TYPE" | "SCHEMA" | "DOMAIN"
        | "COLLATION" | "STATISTICS" => {
            if mentions(&["OWNER", "TO"]) {
                DdlKind::Security(format!("{what} OWNER"))
            } else if mentions(&["ROW", "LEVEL", "SECURITY"])
                || mentions(&["TRIGGER"])
                || mentions(&["RULE"])
                || mentions(&["POLICY"])
            {
                DdlKind::Code(what)
            } else {
                DdlKind::Structure(what)
            }
        }
        _ => return None,
    })
}
