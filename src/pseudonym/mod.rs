//! Keyed, deterministic, type-valid stand-ins for classified values. Pure:
//! no sockets, no files, no environment.
//!
//! A [`Pseudonymizer`] holds the subkeys derived from one [`Key`] and the
//! [`Settings`]; [`Pseudonymizer::apply`] turns one wire value (text or
//! binary format, any supported type and typmod) into its stand-in. The
//! same key and input give the same stand-in everywhere; a value a
//! transform cannot handle becomes NULL, never itself; a binary value of a
//! type copyguard cannot write is an error the proxy turns into a refusal.
//!
//! # Layout
//!
//! - `key`: [`Key`] (id + secret, parsed from hex or base64; never shown)
//!   and subkey derivation (HMAC-SHA-256).
//! - `keyed`: the prepared per-purpose primitives (AES-CMAC PRFs, one tag
//!   or many side by side; AES keys).
//! - `ff1`: FF1 (NIST SP 800-38G) over AES-128 for numeral strings held
//!   as integers.
//! - `permute`: keyed permutations of `[0, m)`: FF1 with cycle-walking, or
//!   a rank permutation for small domains.
//! - `integer`, `shape`, `phone`, `email`, `words`, `dates`, `mask`,
//!   `json`: one transform family each.
//! - `transform`: the [`Transform`] enum, its policy spelling, and
//!   [`default_transform`] per category; `settings`: [`Settings`].
//! - `types`: [`ColumnType`], [`Format`] and typmod rules; `text`,
//!   `binary`, `numeric`, `calendar`: the wire codecs.
//! - `apply`: one value through one transform, by type and format, and
//!   the many-value paths of [`Pseudonymizer::apply_many`].

mod alphabet;
mod apply;
mod binary;
mod calendar;
mod dates;
mod email;
mod ff1;
mod integer;
mod json;
mod key;
mod keyed;
mod mask;
mod numeric;
mod permute;
mod phone;
mod settings;
mod shape;
mod text;
mod transform;
mod types;
mod words;

#[cfg(test)]
mod pinned_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::ops::Range;

pub use alphabet::AsciiSet;
pub use key::{Key, KeyError, MIN_SECRET_LEN};
pub use settings::{
    Settings, SettingsError, DEFAULT_DATE_SHIFT_DAYS, DEFAULT_EMAIL_DOMAIN, MAX_DATE_SHIFT_DAYS,
};
pub use transform::{
    default_transform, for_computed, NamePart, Transform, TransformError, DEFAULT_PARTIAL_KEEP,
};
pub use types::{oid, ColumnType, Format};

use integer::Integers;
use keyed::Keyring;

/// What [`Pseudonymizer::apply`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A stand-in value was appended to the output.
    Value,
    /// The stand-in is SQL NULL; nothing was appended.
    Null,
}

/// Runs `write` on `out`: [`Outcome::Value`] when it wrote a stand-in,
/// else [`Outcome::Null`] with whatever it appended taken back off.
fn written(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>) -> Option<()>) -> Outcome {
    let start = out.len();
    match write(out) {
        Some(()) => Outcome::Value,
        None => {
            out.truncate(start);
            Outcome::Null
        }
    }
}

/// A value copyguard must not send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PseudonymError {
    /// A classified column in binary format of a type copyguard cannot
    /// write: the statement must be refused.
    #[error("copyguard cannot pseudonymize ({transform}) a binary value of type OID {oid}; request text format for this column")]
    BinaryUnsupported {
        /// The column's type OID.
        oid: u32,
        /// The transform's policy name.
        transform: &'static str,
    },
    /// [`Pseudonymizer::invert`] of a transform that is not a permutation
    /// for this type.
    #[error("transform {transform} is not invertible for type OID {oid}")]
    NotInvertible {
        /// The column's type OID.
        oid: u32,
        /// The transform's policy name.
        transform: &'static str,
    },
}

/// Keyed stand-ins under one key. Cheap to share (`Arc`): every method
/// takes `&self`.
pub struct Pseudonymizer {
    key_id: String,
    fingerprint: String,
    settings: Settings,
    keys: Keyring,
    ints: Integers,
}

impl Pseudonymizer {
    /// Derives every subkey once. The settings are checked first.
    pub fn new(key: &Key, settings: Settings) -> Result<Pseudonymizer, SettingsError> {
        settings.validate()?;
        Ok(Pseudonymizer {
            key_id: key.id().to_owned(),
            fingerprint: key.fingerprint(),
            settings,
            keys: Keyring::new(key),
            ints: Integers::new(),
        })
    }

    /// Builds the lookup tables of the integer bijection for positive ids
    /// below 2^20 (about 8 MiB, tens of milliseconds) now instead of at the
    /// first such id. Optional; call it off the async runtime.
    pub fn warm_up(&self) {
        self.ints.warm_up(&self.keys.permuter);
    }

    /// The id of the key in use (for the audit log).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The fingerprint of the key in use (see [`Key::fingerprint`]).
    pub fn key_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Appends to `out` the stand-in for `value` (`None` is SQL NULL, and
    /// stays NULL), a value of type `ty` in format `fmt`, and says whether
    /// it is a value or NULL. On NULL or error nothing is appended.
    pub fn apply(
        &self,
        t: &Transform,
        ty: ColumnType,
        fmt: Format,
        value: Option<&[u8]>,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, PseudonymError> {
        let Some(v) = value else {
            return Ok(Outcome::Null);
        };
        if *t == Transform::Redact {
            return Ok(Outcome::Null);
        }
        if !ty.is_supported() {
            return match fmt {
                Format::Binary => Err(PseudonymError::BinaryUnsupported {
                    oid: ty.oid,
                    transform: t.name(),
                }),
                Format::Text => Ok(Outcome::Null),
            };
        }
        Ok(written(out, |out| apply::value(self, t, ty, fmt, v, out)))
    }

    /// [`apply`](Self::apply) to many values of one column: the same
    /// stand-ins and errors, in order. Each stand-in is appended to `out`
    /// and its range pushed to `stand_ins` (`None` for NULL); on the first
    /// error the values after it are left alone. Shape permutations of text
    /// (`phone`, `bijection` and `token`) lay out every value first and run
    /// their FF1 encryptions side by side; `email` and `person_name` compute
    /// their values' CMAC tags side by side. Both are much faster per value
    /// than one [`apply`](Self::apply) each.
    pub fn apply_many(
        &self,
        t: &Transform,
        ty: ColumnType,
        fmt: Format,
        values: &[Option<&[u8]>],
        out: &mut Vec<u8>,
        stand_ins: &mut Vec<Option<Range<usize>>>,
    ) -> Result<(), PseudonymError> {
        if ty.is_supported() && apply::shapes_text(t, ty) {
            apply::text_shapes(self, t, ty, values, out, stand_ins);
            return Ok(());
        }
        if ty.is_supported() && apply::tags_text(self, t, ty) {
            apply::text_tagged(self, t, ty, values, out, stand_ins);
            return Ok(());
        }
        if let Some((op, range)) = apply::dates_text(self, t, ty, fmt) {
            dates::text_values(&self.keys.date, op, values, range, out, stand_ins);
            return Ok(());
        }
        for &v in values {
            let start = out.len();
            let stand_in = match self.apply(t, ty, fmt, v, out)? {
                Outcome::Value => Some(start..out.len()),
                Outcome::Null => None,
            };
            stand_ins.push(stand_in);
        }
        Ok(())
    }

    /// The exact inverse of [`apply`](Self::apply) for transforms that are
    /// permutations on the type (`bijection`, `token`, `phone` on
    /// integers, integral `numeric`, `uuid` and text). For tests and for
    /// reviewers holding the key; the proxy never calls it.
    pub fn invert(
        &self,
        t: &Transform,
        ty: ColumnType,
        fmt: Format,
        stand_in: Option<&[u8]>,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, PseudonymError> {
        if !apply::is_bijective(t, ty) {
            return Err(PseudonymError::NotInvertible {
                oid: ty.oid,
                transform: t.name(),
            });
        }
        let Some(v) = stand_in else {
            return Ok(Outcome::Null);
        };
        Ok(written(out, |out| apply::inverse(self, t, ty, fmt, v, out)))
    }
}

impl fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pseudonymizer")
            .field("key_id", &self.key_id)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
