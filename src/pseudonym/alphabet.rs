//! The ASCII bytes a transform's stand-ins are made of, when that is known
//! before seeing a value. The COPY writers use it to skip, per column, the
//! per-value checks for bytes that need escaping or quoting: a column whose
//! stand-ins can hold none of them needs no check.

use super::email;
use super::transform::Transform;
use super::types::{ColumnType, Format, Kind};
use super::{words, Pseudonymizer};

/// A set of ASCII bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AsciiSet(u128);

impl AsciiSet {
    /// The set of `bytes`; `None` if one is not ASCII.
    pub fn of(bytes: &[u8]) -> Option<AsciiSet> {
        bytes.iter().try_fold(AsciiSet(0), |s, &b| {
            b.is_ascii().then(|| AsciiSet(s.0 | 1u128 << b))
        })
    }

    /// Both sets' bytes.
    pub fn union(self, other: AsciiSet) -> AsciiSet {
        AsciiSet(self.0 | other.0)
    }

    /// Whether `b` is in the set.
    pub fn contains(self, b: u8) -> bool {
        b.is_ascii() && self.0 >> b & 1 == 1
    }

    /// Whether the set holds a byte below `below` or one of `bytes`.
    pub fn holds_any(self, below: u8, bytes: &[u8]) -> bool {
        (0..below.min(128)).any(|b| self.contains(b)) || bytes.iter().any(|&b| self.contains(b))
    }
}

/// Every byte of every word in `lists`.
fn words_of(lists: &[&[&str]]) -> Option<AsciiSet> {
    lists
        .iter()
        .flat_map(|l| l.iter())
        .try_fold(AsciiSet::default(), |s, w| {
            Some(s.union(AsciiSet::of(w.as_bytes())?))
        })
}

impl Pseudonymizer {
    /// The ASCII bytes every text-format stand-in of `t` on `ty` is made
    /// of, whatever the value; `None` when they depend on the value (a
    /// shape permutation keeps the value's other bytes) or are not known.
    pub fn stand_in_alphabet(
        &self,
        t: &Transform,
        ty: ColumnType,
        fmt: Format,
    ) -> Option<AsciiSet> {
        if fmt != Format::Text || !ty.is_supported() {
            return None;
        }
        // `character(n)` pads with spaces.
        let text = |s: Option<AsciiSet>| s.map(|s| s.union(AsciiSet(1 << b' ')));
        match (t, ty.kind()) {
            (Transform::Email, Kind::Text) => {
                let mut fixed = b"@.".to_vec();
                fixed.extend_from_slice(email::BASE32);
                fixed.extend_from_slice(self.settings.email_domain.as_bytes());
                let given = words::GIVEN
                    .iter()
                    .map(|w| w.to_ascii_lowercase())
                    .try_fold(AsciiSet::default(), |s, w| {
                        Some(s.union(AsciiSet::of(w.as_bytes())?))
                    });
                text(Some(given?.union(AsciiSet::of(&fixed)?)))
            }
            (Transform::PersonName { .. }, Kind::Text) => {
                text(words_of(&[words::GIVEN, words::FAMILY]).map(|s| s.union(AsciiSet(1 << b' '))))
            }
            (Transform::Constant { value }, Kind::Text) => text(AsciiSet::of(value.as_bytes())),
            (
                Transform::DateShift { .. } | Transform::Year | Transform::Month,
                Kind::Date | Kind::Timestamp,
            ) => AsciiSet::of(b"0123456789-+:. BCinfty"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{sample, transforms, types};
    use super::super::*;
    use super::*;

    /// Every stand-in is made of the bytes its alphabet claims.
    #[test]
    fn stand_ins_stay_in_their_alphabet() {
        let key = Key::from_text("t", &"5c".repeat(32)).unwrap();
        let p = Pseudonymizer::new(&key, Settings::default()).unwrap();
        let mut checked = 0;
        for t in transforms() {
            for ty in types() {
                let Some(set) = p.stand_in_alphabet(&t, ty, Format::Text) else {
                    continue;
                };
                for seed in 0..2_000u64 {
                    let raw = format!("Ada{seed} Lovelace, \"x\"\t\\ é@{seed}.org");
                    let inputs = [
                        sample(ty, Format::Text, seed, &raw),
                        sample(ty, Format::Text, seed * 7_919, "a"),
                        format!(
                            "{:04}-{:02}-{:02} BC",
                            1 + seed % 4_000,
                            1 + seed % 12,
                            1 + seed % 28
                        )
                        .into_bytes(),
                        b"infinity".to_vec(),
                        b"-infinity".to_vec(),
                        format!("2024-02-29 13:45:0{}.123+01:30", seed % 10).into_bytes(),
                    ];
                    for v in inputs {
                        let mut out = Vec::new();
                        p.apply(&t, ty, Format::Text, Some(&v), &mut out).unwrap();
                        assert!(
                            out.iter().all(|&b| set.contains(b)),
                            "{t:?} on {ty:?}: {:?}",
                            String::from_utf8_lossy(&out)
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000);
    }

    #[test]
    fn sets() {
        let s = AsciiSet::of(b"ab,").unwrap();
        assert!(s.contains(b',') && !s.contains(b'\t') && !s.contains(0xe9));
        assert!(s.holds_any(0, b",") && !s.holds_any(0x20, b"\\\""));
        assert_eq!(AsciiSet::of("é".as_bytes()), None);
        assert!(AsciiSet::of(b"\x01").unwrap().holds_any(0x20, b""));
    }
}
