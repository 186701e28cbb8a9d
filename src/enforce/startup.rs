use crate::policy::{Block, Rule};

use super::block;

/// Settings that change who the session acts as.
const IDENTITY_SETTINGS: &[&str] = &["role", "session_authorization"];

/// Client encodings in which a multi-byte character can end in a byte
/// that looks like `\` or `'`: the server would split such text
/// differently from the analysis (PostgreSQL refuses them as server
/// encodings for the same reason).
const UNSAFE_CLIENT_ENCODINGS: &[&str] = &[
    "SJIS",
    "SHIFT_JIS_2004",
    "BIG5",
    "GBK",
    "GB18030",
    "UHC",
    "JOHAB",
];

/// Checks a setting the server reports (ParameterStatus) for a guarded
/// session: the server must lex SQL the way the analysis does.
pub fn check_reported_setting(name: &str, value: &str) -> Result<(), Block> {
    let unsafe_setting = match name {
        "standard_conforming_strings" => value != "on",
        "client_encoding" => UNSAFE_CLIENT_ENCODINGS
            .iter()
            .any(|e| e.eq_ignore_ascii_case(value)),
        _ => false,
    };
    if unsafe_setting {
        return Err(block(
            Rule::SettingLexer,
            format!("guarded sessions require the server to read SQL as copyguard does; {name} = {value} is not supported"),
        ));
    }
    Ok(())
}

/// Whether a SET of `name` could change how the server splits SQL text.
pub fn is_lexer_setting(name: &str) -> bool {
    matches!(
        name,
        "standard_conforming_strings" | "backslash_quote" | "client_encoding"
    )
}

/// Whether `sql` is exactly the statement libpq's `PQsetClientEncoding`
/// sends (`set client_encoding to 'NAME'`, as pg_dump's parallel workers
/// do) with an encoding in which SQL text splits as copyguard reads it.
pub fn is_safe_client_encoding_set(sql: &str) -> bool {
    let sql = sql.trim().trim_end_matches(';').trim_end();
    let Some(head) = sql.get(..23) else {
        return false;
    };
    if !head.eq_ignore_ascii_case("set client_encoding to ") {
        return false;
    }
    let Some(name) = sql[23..]
        .strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
    else {
        return false;
    };
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && check_reported_setting("client_encoding", name).is_ok()
}

/// Checks the startup packet of a guarded session: no replication, and no
/// identity-changing setting, whether as a startup parameter or inside
/// `options` (`-c role=x`, `--role=x`, `-crole=x`).
pub fn check_startup(params: &[(String, String)], replication: bool) -> Result<(), Block> {
    if replication {
        return Err(block(
            Rule::ProtocolReplication,
            "replication connections are not available to guarded roles",
        ));
    }
    for (name, value) in params {
        check_startup_setting(name)?;
        if name == "options" {
            for setting in option_settings(value) {
                check_startup_setting(&setting)?;
            }
        }
    }
    Ok(())
}

/// One setting named at startup: no identity change, and no
/// `backslash_quote` (refused by `SET` too; the server never reports it,
/// so [`check_reported_setting`] cannot see it).
fn check_startup_setting(name: &str) -> Result<(), Block> {
    if is_identity(name) {
        return Err(identity_block(name));
    }
    if normalized(name) == "backslash_quote" {
        return Err(block(
            Rule::SettingLexer,
            format!("guarded sessions cannot set {name:?} at startup: it changes how the server reads SQL text"),
        ));
    }
    Ok(())
}

/// A setting name as PostgreSQL reads it in `options`: case folded,
/// dashes as underscores.
fn normalized(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('-', "_")
}

fn identity_block(name: &str) -> Block {
    block(
        Rule::IdentityChange,
        format!(
            "guarded sessions cannot set {name:?} at startup: the guard follows the login role"
        ),
    )
}

fn is_identity(name: &str) -> bool {
    IDENTITY_SETTINGS.contains(&normalized(name).as_str())
}

/// Names of the settings in a backend `options` string, split the way
/// PostgreSQL splits it (whitespace, backslash escapes).
fn option_settings(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut names = Vec::new();
    let mut iter = words.into_iter();
    while let Some(w) = iter.next() {
        let setting = if w == "-c" {
            iter.next()
        } else if let Some(rest) = w.strip_prefix("--") {
            Some(rest.to_owned())
        } else {
            w.strip_prefix("-c").map(str::to_owned)
        };
        if let Some(s) = setting {
            names.push(s.split('=').next().unwrap_or_default().to_owned());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn identity_changes_at_startup_are_refused() {
        assert!(check_startup(&[p("user", "dev")], false).is_ok());
        assert!(check_startup(&[p("user", "dev")], true).is_err());
        assert!(check_startup(&[p("ROLE", "app")], false).is_err());
        for opts in [
            "-c role=app",
            "--role=app",
            "-crole=app",
            "-c search_path=x -c Session_Authorization=app",
            "--session-authorization=app",
        ] {
            assert!(
                check_startup(&[p("options", opts)], false).is_err(),
                "{opts}"
            );
        }
        assert!(check_startup(
            &[p("options", "-c search_path=a\\ b -c statement_timeout=5")],
            false
        )
        .is_ok());
    }
    /// `backslash_quote` at startup was let through although `SET
    /// backslash_quote` is refused.
    #[test]
    fn backslash_quote_at_startup_is_refused() {
        assert!(check_startup(&[p("backslash_quote", "on")], false).is_err());
        for opts in [
            "-c backslash_quote=on",
            "--backslash-quote=on",
            "-cBACKSLASH_QUOTE=on",
            "-c search_path=x -c backslash-quote=off",
        ] {
            let got = check_startup(&[p("options", opts)], false);
            assert!(
                got.as_ref().is_err_and(|b| b.rule == Rule::SettingLexer),
                "{opts}: {got:?}"
            );
        }
    }

    #[test]
    fn lexer_settings() {
        assert!(check_reported_setting("standard_conforming_strings", "on").is_ok());
        assert!(check_reported_setting("standard_conforming_strings", "off").is_err());
        assert!(check_reported_setting("client_encoding", "UTF8").is_ok());
        assert!(check_reported_setting("client_encoding", "sjis").is_err());
        assert!(is_lexer_setting("standard_conforming_strings"));
        assert!(is_safe_client_encoding_set("set client_encoding to 'UTF8'"));
        assert!(is_safe_client_encoding_set(
            "SET client_encoding TO 'LATIN1';"
        ));
        assert!(!is_safe_client_encoding_set(
            "set client_encoding to 'SJIS'"
        ));
        assert!(!is_safe_client_encoding_set(
            "set client_encoding to 'UTF8'; select 1"
        ));
        assert!(!is_safe_client_encoding_set(
            "set client_encoding to default"
        ));
        assert!(!is_lexer_setting("search_path"));
    }
}
