//! Category names: the known ones, and what makes a name valid.

/// The categories copyguard knows, with what they cover.
pub const KNOWN_CATEGORIES: &[(&str, &str)] = &[
    ("email", "e-mail addresses"),
    ("phone", "telephone numbers"),
    ("person_name", "names of people"),
    ("date_of_birth", "dates of birth"),
    (
        "national_id",
        "national identity, passport, tax or social security numbers",
    ),
    ("address", "postal addresses and precise locations"),
    (
        "free_text",
        "free text people typed: comments, notes, messages",
    ),
    (
        "identifier",
        "other identifiers of a person: usernames, device ids, IP addresses",
    ),
    ("secret", "passwords, tokens, keys"),
    ("health", "health data"),
    ("financial", "bank accounts, card numbers, income"),
    (
        "special_category",
        "religion, ethnicity, politics, sexual orientation, union membership",
    ),
];

/// How a category name checks out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CategoryName {
    /// One of [`KNOWN_CATEGORIES`].
    Known,
    /// Well-formed but not known: the warning to give.
    Unknown(String),
}

/// Checks a category name: `[a-z][a-z0-9_]*`.
pub(crate) fn check_category(name: &str) -> Result<CategoryName, String> {
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63;
    if !well_formed {
        return Err(format!(
            "{name:?} is not a category name: lower-case letters, digits and _, starting with a letter"
        ));
    }
    if KNOWN_CATEGORIES.iter().any(|(k, _)| *k == name) {
        Ok(CategoryName::Known)
    } else {
        let known: Vec<&str> = KNOWN_CATEGORIES.iter().map(|(k, _)| *k).collect();
        Ok(CategoryName::Unknown(format!(
            "unknown category {name:?} (a typo?); known categories: {}",
            known.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_names() {
        assert_eq!(check_category("email"), Ok(CategoryName::Known));
        assert!(matches!(
            check_category("loyalty_tier2"),
            Ok(CategoryName::Unknown(_))
        ));
        for bad in ["", "Email", "2fa", "e-mail", "_x", &"x".repeat(64)] {
            assert!(check_category(bad).is_err(), "{bad:?}");
        }
    }
}
