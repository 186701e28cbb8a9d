//! The transforms a policy can name, their spelling, and the default one
//! for each classification category.
//!
//! In a policy a transform is either a name (`"email"`) or a table with a
//! `kind` and its options (`{ kind = "partial", keep = 4 }`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::settings::MAX_DATE_SHIFT_DAYS;

/// Characters `partial` keeps by default.
pub const DEFAULT_PARTIAL_KEEP: u16 = 4;

/// How a classified value is replaced. Which types each applies to is
/// documented per variant; on any other type the value is redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transform {
    /// `bijection`: a keyed permutation. Integers (and integral `numeric`)
    /// stay in the type's range and keep their sign, so keys and the
    /// foreign keys pointing at them still join; `uuid` by AES-128 over
    /// all 128 bits; text as [`Transform::Token`].
    Bijection,
    /// `email`: a valid address at the configured reserved domain whose
    /// local part is a keyed token. Text types.
    Email,
    /// `person_name`: a plausible name from a built-in list. Text types.
    PersonName {
        /// Which parts of a name to write.
        part: NamePart,
    },
    /// `phone`: the same shape, the leading `+CC`/`00CC` country code or
    /// trunk `0` kept, the other digits permuted (unique stays unique).
    /// Text types; integers as `bijection`.
    Phone,
    /// `date_shift`: moves dates and timestamps by a keyed 1 to `days`
    /// days either way (the settings' window when unset).
    DateShift {
        /// The window, overriding the settings.
        days: Option<u32>,
    },
    /// `year`: the first day of the value's year.
    Year,
    /// `month`: the first day of the value's month.
    Month,
    /// `address`: a plausible street address. Text types.
    Address,
    /// `replace`: filler words of about the same length. Text types.
    Replace,
    /// `token`: a keyed, format-preserving stand-in: digits stay digits,
    /// letters stay letters of the same case, other characters stay; a
    /// permutation for a given layout, so unique stays unique. Integers,
    /// integral `numeric` and `uuid` as `bijection`; other `numeric`
    /// values get keyed digits of the same shape; `bytea` a keyed hash.
    Token,
    /// `partial`: masks all letters and digits with `*` but the last
    /// `keep` (never more than half of them). Text types.
    Partial {
        /// How many trailing letters and digits stay.
        keep: u16,
    },
    /// `json`: in a `json`/`jsonb` document (or text holding one), the
    /// values under the listed keys (at any depth) get their transform;
    /// every other scalar becomes `null`, and keys that do not look like
    /// identifiers are replaced by tokens.
    Json {
        /// Transform per object key.
        keys: BTreeMap<String, Transform>,
    },
    /// `constant`: this value (its text form), for any type it parses as.
    Constant {
        /// The text form of the constant.
        value: String,
    },
    /// `redact` (or `null`): SQL NULL.
    Redact,
}

/// Which parts of a name `person_name` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamePart {
    /// A given name for one word, given and family name otherwise.
    #[default]
    Auto,
    /// Always a given and a family name.
    Full,
    /// A given name.
    Given,
    /// A family name.
    Family,
}

/// A transform spelling that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The name is not a transform.
    #[error("unknown transform {0:?}; known: {KNOWN}")]
    Unknown(String),
    /// The transform needs options given as a table.
    #[error("transform {kind:?} needs {field:?}: write {{ kind = {kind:?}, {field} = ... }}")]
    Missing {
        /// Transform name.
        kind: String,
        /// The missing option.
        field: &'static str,
    },
    /// `days` outside 1 to 36525.
    #[error("date_shift days must be between 1 and {MAX_DATE_SHIFT_DAYS}, not {0}")]
    Days(u32),
    /// An option the transform does not take.
    #[error("transform {kind:?} does not take {field:?}")]
    Unexpected {
        /// Transform name.
        kind: String,
        /// The option given.
        field: &'static str,
    },
}

const KNOWN: &str = "bijection, email, person_name, phone, date_shift, year, month, address, \
replace, token, partial, json, constant, redact, null";

impl Transform {
    /// The policy name of this transform.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Bijection => "bijection",
            Transform::Email => "email",
            Transform::PersonName { .. } => "person_name",
            Transform::Phone => "phone",
            Transform::DateShift { .. } => "date_shift",
            Transform::Year => "year",
            Transform::Month => "month",
            Transform::Address => "address",
            Transform::Replace => "replace",
            Transform::Token => "token",
            Transform::Partial { .. } => "partial",
            Transform::Json { .. } => "json",
            Transform::Constant { .. } => "constant",
            Transform::Redact => "redact",
        }
    }
}

/// The transform of a value computed from a classified column (`derived =
/// "pseudonymize"`), in place of its category's `t`: SQL NULL, valid for
/// every type, unless `t` is a constant (or NULL already). The statement
/// chooses what it computes, so any stand-in of a computed value gives
/// something back. A transform that keeps part of its input keeps what the
/// statement moved there (`translate(phone, '0123456789', 'abcdefghij')`
/// through the phone's digits-only permutation, a birth date scaled past
/// the shift's window). A deterministic stand-in of the whole value (an
/// email or name made from its keyed tag) is a codebook: the stand-in of
/// `substr(email, 1, 1)` equals that of `substr(email, 1, 0) || 'B'` exactly
/// when the email starts with `B`, so two statements rebuild every value.
pub fn for_computed(t: Transform) -> Transform {
    match t {
        Transform::Constant { .. } | Transform::Redact => t,
        _ => Transform::Redact,
    }
}

/// The transform a classification category gets unless the policy names
/// one: unknown categories are redacted.
pub fn default_transform(category: &str) -> Transform {
    match category {
        "email" => Transform::Email,
        "phone" => Transform::Phone,
        "person_name" => Transform::PersonName {
            part: NamePart::Auto,
        },
        "date_of_birth" => Transform::DateShift { days: None },
        "national_id" => Transform::Token,
        "address" => Transform::Address,
        "free_text" => Transform::Replace,
        "identifier" => Transform::Bijection,
        "financial" => Transform::Partial {
            keep: DEFAULT_PARTIAL_KEEP,
        },
        _ => Transform::Redact,
    }
}

impl FromStr for Transform {
    type Err = TransformError;

    /// A transform by name, with default options.
    fn from_str(name: &str) -> Result<Transform, TransformError> {
        Ok(match name {
            "bijection" => Transform::Bijection,
            "email" => Transform::Email,
            "person_name" => Transform::PersonName {
                part: NamePart::Auto,
            },
            "phone" => Transform::Phone,
            "date_shift" => Transform::DateShift { days: None },
            "year" => Transform::Year,
            "month" => Transform::Month,
            "address" => Transform::Address,
            "replace" => Transform::Replace,
            "token" => Transform::Token,
            "partial" => Transform::Partial {
                keep: DEFAULT_PARTIAL_KEEP,
            },
            "json" => Transform::Json {
                keys: BTreeMap::new(),
            },
            "redact" | "null" => Transform::Redact,
            "constant" => {
                return Err(TransformError::Missing {
                    kind: name.into(),
                    field: "value",
                })
            }
            _ => return Err(TransformError::Unknown(name.into())),
        })
    }
}

impl fmt::Display for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            Transform::PersonName { part } if *part != NamePart::Auto => {
                write!(f, "(part={part:?})")
            }
            Transform::DateShift { days: Some(d) } => write!(f, "(days={d})"),
            Transform::Partial { keep } => write!(f, "(keep={keep})"),
            Transform::Json { keys } => {
                f.write_str("(")?;
                for (i, (k, t)) in keys.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?}={t}")?;
                }
                f.write_str(")")
            }
            Transform::Constant { .. } => f.write_str("(...)"),
            _ => Ok(()),
        }
    }
}

/// The table form, before checking which options the kind takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    kind: String,
    part: Option<NamePart>,
    days: Option<u32>,
    keep: Option<u16>,
    keys: Option<BTreeMap<String, Transform>>,
    value: Option<String>,
}

impl Table {
    fn build(self) -> Result<Transform, TransformError> {
        let Table {
            kind,
            part,
            days,
            keep,
            keys,
            value,
        } = self;
        let mut t = match kind.as_str() {
            "constant" => Transform::Constant {
                value: value.clone().ok_or_else(|| TransformError::Missing {
                    kind: kind.clone(),
                    field: "value",
                })?,
            },
            other => other.parse()?,
        };
        if let Some(d) = days.filter(|d| !(1..=MAX_DATE_SHIFT_DAYS).contains(d)) {
            return Err(TransformError::Days(d));
        }
        let unexpected = |field| TransformError::Unexpected {
            kind: kind.clone(),
            field,
        };
        match &mut t {
            Transform::PersonName { part: p } => *p = part.unwrap_or_default(),
            Transform::DateShift { days: d } => *d = days,
            Transform::Partial { keep: k } => *k = keep.unwrap_or(DEFAULT_PARTIAL_KEEP),
            Transform::Json { keys: k } => *k = keys.clone().unwrap_or_default(),
            _ => {}
        }
        let takes = |field: &str| match field {
            "part" => matches!(t, Transform::PersonName { .. }),
            "days" => matches!(t, Transform::DateShift { .. }),
            "keep" => matches!(t, Transform::Partial { .. }),
            "keys" => matches!(t, Transform::Json { .. }),
            _ => matches!(t, Transform::Constant { .. }),
        };
        for (field, given) in [
            ("part", part.is_some()),
            ("days", days.is_some()),
            ("keep", keep.is_some()),
            ("keys", keys.is_some()),
            ("value", value.is_some()),
        ] {
            if given && !takes(field) {
                return Err(unexpected(field));
            }
        }
        Ok(t)
    }
}

impl<'de> Deserialize<'de> for Transform {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Transform, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Transform;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a transform name or a table with `kind`")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Transform, E> {
                s.parse().map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Transform, A::Error> {
                Table::deserialize(de::value::MapAccessDeserializer::new(map))?
                    .build()
                    .map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Transform {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let options = match self {
            Transform::PersonName { part } if *part != NamePart::Auto => 1,
            Transform::DateShift { days: Some(_) }
            | Transform::Partial { .. }
            | Transform::Json { .. }
            | Transform::Constant { .. } => 1,
            _ => 0,
        };
        if options == 0 {
            return s.serialize_str(self.name());
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("kind", self.name())?;
        match self {
            Transform::PersonName { part } => m.serialize_entry("part", part)?,
            Transform::DateShift { days } => m.serialize_entry("days", days)?,
            Transform::Partial { keep } => m.serialize_entry("keep", keep)?,
            Transform::Json { keys } => m.serialize_entry("keys", keys)?,
            Transform::Constant { value } => m.serialize_entry("value", value)?,
            _ => {}
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize, Debug, PartialEq)]
    struct Col {
        transform: Transform,
    }

    fn parse(toml_text: &str) -> Result<Transform, String> {
        toml::from_str::<Col>(toml_text)
            .map(|c| c.transform)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn names_and_tables() {
        assert_eq!(parse(r#"transform = "email""#), Ok(Transform::Email));
        assert_eq!(parse(r#"transform = "null""#), Ok(Transform::Redact));
        assert_eq!(
            parse(r#"transform = { kind = "partial", keep = 6 }"#),
            Ok(Transform::Partial { keep: 6 })
        );
        assert_eq!(
            parse(r#"transform = { kind = "person_name", part = "family" }"#),
            Ok(Transform::PersonName {
                part: NamePart::Family
            })
        );
        let json = parse(
            r#"transform = { kind = "json", keys = { email = "email", card = { kind = "partial", keep = 2 } } }"#,
        )
        .unwrap();
        let Transform::Json { keys } = &json else {
            panic!("{json:?}")
        };
        assert_eq!(keys["card"], Transform::Partial { keep: 2 });
        let back = toml::to_string(&Col {
            transform: json.clone(),
        })
        .unwrap();
        assert_eq!(parse(&back), Ok(json));
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(parse(r#"transform = "emial""#)
            .unwrap_err()
            .contains("unknown transform \"emial\""));
        assert!(parse(r#"transform = "constant""#)
            .unwrap_err()
            .contains("needs \"value\""));
        assert!(parse(r#"transform = { kind = "email", keep = 3 }"#)
            .unwrap_err()
            .contains("does not take \"keep\""));
        assert!(parse(r#"transform = { kind = "email", colour = 3 }"#).is_err());
        assert!(parse(r#"transform = { kind = "date_shift", days = 0 }"#)
            .unwrap_err()
            .contains("between 1 and"));
    }

    #[test]
    fn defaults_per_category() {
        assert_eq!(default_transform("email"), Transform::Email);
        assert_eq!(default_transform("identifier"), Transform::Bijection);
        assert_eq!(default_transform("secret"), Transform::Redact);
        assert_eq!(default_transform("loyalty_tier"), Transform::Redact);
        assert_eq!(
            default_transform("financial").to_string(),
            "partial(keep=4)"
        );
    }
}
