//! Identifiers the way PostgreSQL reads them: unquoted names fold to lower
//! case (ASCII only, like `downcase_identifier`), quoted names stay exact,
//! and every name is truncated to `NAMEDATALEN - 1` bytes.

use std::borrow::Cow;

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

use super::AnalysisError;

/// `NAMEDATALEN - 1`: PostgreSQL truncates longer identifiers.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// The name an identifier denotes.
pub(crate) fn fold(ident: &Ident) -> String {
    fold_str(&ident.value, ident.quote_style.is_some())
}

/// [`fold`] without a copy when the identifier already is its name
/// (quoted, or without ASCII capitals, and short enough).
pub(crate) fn fold_cow(ident: &Ident) -> Cow<'_, str> {
    let value = &ident.value;
    let unchanged = value.len() <= MAX_IDENTIFIER_BYTES
        && (ident.quote_style.is_some() || !value.bytes().any(|b| b.is_ascii_uppercase()));
    if unchanged {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(fold(ident))
    }
}

/// The name denoted by `value`, written quoted or not.
pub(crate) fn fold_str(value: &str, quoted: bool) -> String {
    let mut name = if quoted {
        value.to_owned()
    } else {
        value.to_ascii_lowercase()
    };
    if name.len() > MAX_IDENTIFIER_BYTES {
        let mut end = MAX_IDENTIFIER_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// The folded parts of a dotted name.
pub(crate) fn parts(name: &ObjectName) -> Result<Vec<String>, AnalysisError> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Ok(fold(ident)),
            ObjectNamePart::Function(_) => Err(AnalysisError::Unsupported(String::from(
                "function call in a name",
            ))),
        })
        .collect()
}

/// The folded parts of a list of identifiers.
pub(crate) fn idents(idents: &[Ident]) -> Vec<String> {
    idents.iter().map(fold).collect()
}

/// Dotted display of folded parts, for messages.
pub(crate) fn display(parts: &[String]) -> String {
    parts.join(".")
}
