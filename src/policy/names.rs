//! Names written in policy files, read by PostgreSQL identifier rules:
//! unquoted names are folded to lower case, double-quoted names are exact
//! (`""` stands for one `"`), parts of a qualified name are joined by `.`.

/// The longest name PostgreSQL keeps (NAMEDATALEN - 1 bytes).
const MAX_NAME_BYTES: usize = 63;

/// One identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ident {
    /// The name as PostgreSQL stores it.
    pub name: String,
    /// Whether folding changed it (unquoted, with upper-case letters).
    pub folded: bool,
}

/// Parses a single identifier, e.g. a role name.
pub(crate) fn parse_name(text: &str) -> Result<Ident, String> {
    let mut parts = parse_qualified(text)?;
    if parts.len() != 1 {
        return Err(format!(
            "{text:?} has {} dot-separated parts; double-quote a name that contains a dot",
            parts.len()
        ));
    }
    Ok(parts.remove(0))
}

/// Parses a name of `n` dot-separated parts, e.g. 3 for `schema.table.column`.
pub(crate) fn parse_parts(text: &str, n: usize, shape: &str) -> Result<Vec<Ident>, String> {
    let parts = parse_qualified(text)?;
    if parts.len() != n {
        return Err(format!(
            "{text:?} is not of the form {shape} ({} parts instead of {n}); double-quote a name that contains a dot",
            parts.len()
        ));
    }
    Ok(parts)
}

/// Parses a possibly qualified name into its parts.
pub(crate) fn parse_qualified(text: &str) -> Result<Vec<Ident>, String> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let ident = match chars.peek().copied() {
            Some('"') => {
                chars.next();
                let mut name = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated quoted name in {text:?}")),
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            name.push('"');
                        }
                        Some('"') => break,
                        Some('\0') => return Err(format!("NUL character in {text:?}")),
                        Some(c) => name.push(c),
                    }
                }
                if name.is_empty() {
                    return Err(format!("empty quoted name \"\" in {text:?}"));
                }
                Ident {
                    name,
                    folded: false,
                }
            }
            Some(c) if is_start(c) => {
                let mut raw = String::new();
                while let Some(c) = chars.peek().copied().filter(|c| is_part(*c)) {
                    raw.push(c);
                    chars.next();
                }
                let name = raw.to_ascii_lowercase();
                Ident {
                    folded: name != raw,
                    name,
                }
            }
            Some(c) => {
                return Err(format!(
                    "unexpected {c:?} in {text:?}: an unquoted name starts with a letter or _ and holds letters, digits, _ and $; double-quote any other name"
                ))
            }
            None if parts.is_empty() => return Err("empty name".to_owned()),
            None => return Err(format!("{text:?} ends with a dot")),
        };
        if ident.name.len() > MAX_NAME_BYTES {
            return Err(format!(
                "name {:?} is longer than {MAX_NAME_BYTES} bytes, which PostgreSQL would truncate",
                ident.name
            ));
        }
        parts.push(ident);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => {}
            Some(c) => {
                return Err(format!(
                    "unexpected {c:?} in {text:?}: double-quote a name with spaces or punctuation"
                ))
            }
        }
    }
}

/// A name as SQL would write it: bare when that reads back the same,
/// double-quoted otherwise.
pub(crate) fn quote(name: &str) -> String {
    let mut chars = name.chars();
    let bare = chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_lowercase())
        && chars.all(|c| c == '_' || c == '$' || c.is_ascii_lowercase() || c.is_ascii_digit());
    if bare {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Parts joined by dots, each quoted when needed.
pub(crate) fn qualified(parts: &[&str]) -> String {
    parts.iter().map(|p| quote(p)).collect::<Vec<_>>().join(".")
}

/// A TOML key as written in a dotted path: bare when it can be, quoted
/// otherwise.
pub(crate) fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// A dotted TOML key from its parts.
pub(crate) fn dotted(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| quote_key(p))
        .collect::<Vec<_>>()
        .join(".")
}

fn is_start(c: char) -> bool {
    c == '_' || c.is_alphabetic() || !c.is_ascii()
}

fn is_part(c: char) -> bool {
    is_start(c) || c == '$' || c.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        parse_qualified(text)
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect()
    }

    #[test]
    fn folding_and_quoting() {
        assert_eq!(names("App_Prod"), ["app_prod"]);
        assert!(parse_name("App_Prod").unwrap().folded);
        assert!(!parse_name("app_prod").unwrap().folded);
        assert_eq!(names("\"ETL_Prod\""), ["ETL_Prod"]);
        assert_eq!(names("\"a\"\"b\""), ["a\"b"]);
        assert_eq!(
            names("public.\"My Table\".col$1"),
            ["public", "My Table", "col$1"]
        );
        assert_eq!(names("\"a.b\".c"), ["a.b", "c"]);
        assert_eq!(names("Ünïcode"), ["Ünïcode"]);
    }

    #[test]
    fn rejects_malformed_names() {
        for bad in [
            "", "a.", ".a", "a..b", "app-prod", "1abc", "\"\"", "\"open", "a b", " a", "a.\"b\"c",
        ] {
            assert!(parse_qualified(bad).is_err(), "{bad:?}");
        }
        assert!(parse_name("a.b").is_err());
        assert!(parse_parts("public.users", 3, "schema.table.column").is_err());
        assert!(parse_name(&"x".repeat(64)).is_err());
        assert!(parse_name(&"x".repeat(63)).is_ok());
    }

    #[test]
    fn quoting_round_trips() {
        for name in ["users", "My Table", "a\"b", "9lives", "ok$1"] {
            assert_eq!(names(&quote(name)), [name]);
        }
        assert_eq!(
            qualified(&["public", "Users", "email"]),
            "public.\"Users\".email"
        );
    }
}
