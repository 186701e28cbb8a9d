//! Phone numbers: the prefix that says where a number is (`+CC`, `00CC`,
//! or a national trunk `0`) stays, separators stay, every other digit is
//! permuted (a bijection on the digits for a given layout).

use super::keyed::Prf;
use super::permute::Permuter;
use super::shape::{self, Classes};

/// Appends the stand-in (or, with `forward = false`, the original) of a
/// phone number.
pub(crate) fn permute(
    perm: &Permuter,
    prf: &Prf,
    s: &[u8],
    forward: bool,
    out: &mut Vec<u8>,
) -> Option<()> {
    shape::permute(perm, prf, s, kept_prefix(s), Classes::Digits, forward, out)
}

/// How many leading bytes name the country or trunk.
pub(crate) fn kept_prefix(s: &[u8]) -> usize {
    let lead = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let rest = &s[lead..];
    let (intl, after) = if let Some(r) = rest.strip_prefix(b"+") {
        (
            true,
            lead + 1 + r.iter().take_while(|b| **b == b' ').count(),
        )
    } else if rest.starts_with(b"00") {
        (
            true,
            lead + 2 + rest[2..].iter().take_while(|b| **b == b' ').count(),
        )
    } else {
        (false, lead)
    };
    if !intl {
        return lead + rest.iter().take_while(|&&b| b == b'0').count();
    }
    let digits = &s[after..];
    let cc = country_code_len(digits);
    after + cc.min(digits.iter().take_while(|b| b.is_ascii_digit()).count())
}

/// The length of the ITU-T E.164 country code at the start of `d`.
fn country_code_len(d: &[u8]) -> usize {
    let second = d.get(1).copied().unwrap_or(b'x');
    let two = match d.first() {
        Some(b'1' | b'7') => return 1,
        Some(b'2') => matches!(second, b'0' | b'7'),
        Some(b'3') => matches!(second, b'0'..=b'4' | b'6' | b'9'),
        Some(b'4') => second != b'2',
        Some(b'5') => matches!(second, b'1'..=b'8'),
        Some(b'6') => matches!(second, b'0'..=b'6'),
        Some(b'8') => matches!(second, b'1' | b'2' | b'4' | b'6'),
        Some(b'9') => matches!(second, b'0'..=b'5' | b'8'),
        _ => return 0,
    };
    if two {
        2
    } else {
        3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(kept_prefix(b"+44 20 7946 0958"), 3);
        assert_eq!(kept_prefix(b"+1 (555) 123-4567"), 2);
        assert_eq!(kept_prefix(b"+353 1 234 5678"), 4);
        assert_eq!(kept_prefix(b"0044 20 7946 0958"), 4);
        assert_eq!(kept_prefix(b"020 7946 0958"), 1);
        assert_eq!(kept_prefix(b"(555) 123-4567"), 0);
        assert_eq!(kept_prefix(b"+"), 1);
        assert_eq!(kept_prefix(b""), 0);
    }
}
