//! Byte scanning shared by the line formats: finding delimiters and
//! special bytes eight bytes at a time, and the fields before the first
//! special byte.

use super::*;
use crate::enforce::group::Value;

/// The first index of `a` or `b` in `hay`, eight bytes at a time.
pub(super) fn find2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let (ra, rb) = (LO * u64::from(a), LO * u64::from(b));
    let words = hay.chunks_exact(8);
    let tail = words.remainder();
    for (k, w) in words.enumerate() {
        let w = <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes);
        let hit = zero(w ^ ra) | zero(w ^ rb);
        if hit != 0 {
            return Some(k * 8 + (hit.trailing_zeros() / 8) as usize);
        }
    }
    let base = hay.len() - tail.len();
    tail.iter()
        .position(|&c| c == a || c == b)
        .map(|i| base + i)
}

/// The delimiters of a row before its first `special` byte (a text-format
/// backslash, a CSV quote), in order, into `out`, found in one pass, eight
/// bytes at a time; whether the row has no such byte. The fields before
/// that byte are their bytes as they are (so is every field of a row
/// without one), and the delimiters found end them.
pub(super) fn plain_delimiters(body: &[u8], delim: u8, special: u8, out: &mut Vec<usize>) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // 0x80 in each byte of `w` equal to the byte `splat` repeats, exactly
    // (no carry crosses a byte, unlike the find-first test).
    let equal = |w: u64, splat: u64| {
        let x = w ^ splat;
        !(((x & !HI) + !HI) | x) & HI
    };
    let (d, sp) = (LO * u64::from(delim), LO * u64::from(special));
    out.clear();
    let words = body.chunks_exact(8);
    let tail = words.remainder();
    for (k, w) in words.enumerate() {
        let w = <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes);
        if equal(w, sp) != 0 {
            return false;
        }
        let mut hits = equal(w, d);
        while hits != 0 {
            out.push(8 * k + (hits.trailing_zeros() / 8) as usize);
            hits &= hits - 1;
        }
    }
    let base = body.len() - tail.len();
    for (i, &c) in tail.iter().enumerate() {
        if c == special {
            return false;
        }
        if c == delim {
            out.push(base + i);
        }
    }
    true
}

/// Notes the fields of a row that [`plain_delimiters`] ends, each its
/// bytes or NULL when they are the `null` string, and the last field too
/// when the row is `plain` throughout; the fields noted and where the next
/// one starts.
pub(super) fn plain_fields(
    g: &mut Group,
    plan: &ColumnPlan,
    body: &[u8],
    delims: &[usize],
    null: &[u8],
    plain: bool,
) -> Result<(usize, usize), RewriteError> {
    let fields = delims.len() + usize::from(plain);
    if fields > plan.len() {
        // What reading field `plan.len()` gives.
        return Err(RewriteError::ColumnCount {
            got: plan.len() + 1,
            expected: plan.len(),
        });
    }
    let mut at = 0;
    let last = plain.then_some(body.len());
    let ends = delims.iter().copied().chain(last);
    for (end, column) in ends.zip(&plan.columns) {
        let value = match column {
            Some(_) if body[at..end] != *null => Value::InRow(at..end),
            _ => Value::Null,
        };
        g.field(at..end, value);
        at = end + 1;
    }
    Ok((fields, at))
}

/// Whether `v` has a byte below `below` (at most 128) or in `set`, eight
/// bytes at a time (the last eight overlapping the words before them).
#[inline]
pub(super) fn has_byte<const N: usize>(v: &[u8], below: u8, set: [u8; N]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    if v.len() < 8 {
        return v.iter().any(|&c| c < below || set.contains(&c));
    }
    let splats = set.map(|b| LO * u64::from(b));
    let under = LO * u64::from(below);
    let hit = |at: usize| {
        let w = <[u8; 8]>::try_from(&v[at..at + 8]).map_or(0, u64::from_le_bytes);
        let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
        let found = splats.iter().fold(0, |h, &s| h | zero(w ^ s));
        (w.wrapping_sub(under) & !w & HI) | found != 0
    };
    (0..v.len() / 8).any(|k| hit(8 * k)) || hit(v.len() - 8)
}
