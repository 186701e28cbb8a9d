//! The integer bijection: a keyed permutation of the signed 64-bit
//! integers that keeps 0, keeps the sign, and keeps every value inside the
//! narrowest integer type that held it.
//!
//! Positive values are split into nested buckets `[1, 2^15-1]`,
//! `[2^15, 2^20-1]`, `[2^20, 2^31-1]`, `[2^31, 2^63-1]` (negative ones
//! likewise, down to `-2^15`, `-2^20`, `-2^31`, `-2^63`), and each bucket is
//! permuted on its own. So an `int2`, `int4` or `int8` column holding the
//! same id gives the same stand-in, and a primary key still joins its
//! foreign keys whatever their integer width. A `numeric(p, s)` cap (at most `p - s` digits) cuts the
//! bucket it falls in; values in the buckets below it still agree with the
//! integer types.
//!
//! The two lowest buckets (ids below about a million, the most common) are
//! permuted through rank tables built on first use (256 KiB and 8 MiB per
//! sign); the others with FF1.

use std::sync::OnceLock;

use super::permute::{Permuter, RankTable, Tweak};

/// Upper bounds (exclusive) of the magnitude offsets in each bucket, for
/// positive values (offset `v - 1`) and negative ones (offset `-v - 1`).
const EDGES: [[u64; 4]; 2] = [
    [(1 << 15) - 1, (1 << 20) - 1, (1 << 31) - 1, (1 << 63) - 1],
    [1 << 15, 1 << 20, 1 << 31, 1 << 63],
];
/// Buckets below this index use tables.
const TABLES: usize = 2;

/// The integer bijection and its cached tables, by sign and bucket.
pub(crate) struct Integers {
    tables: [[OnceLock<RankTable>; TABLES]; 2],
}

impl Integers {
    pub(crate) fn new() -> Integers {
        Integers {
            tables: Default::default(),
        }
    }

    /// Builds the tables of positive ids now rather than at first use.
    pub(crate) fn warm_up(&self, p: &Permuter) {
        let _ = self.forward(p, 1, None);
        let _ = self.forward(p, 1 << 15, None);
    }

    /// The stand-in of `v`. `cap` bounds the magnitude (`numeric` digits);
    /// `None` if `v` itself is beyond it.
    pub(crate) fn forward(&self, p: &Permuter, v: i64, cap: Option<u64>) -> Option<i64> {
        self.map(p, v, cap, true)
    }

    /// The exact inverse of [`forward`](Self::forward).
    pub(crate) fn inverse(&self, p: &Permuter, v: i64, cap: Option<u64>) -> Option<i64> {
        self.map(p, v, cap, false)
    }

    fn map(&self, p: &Permuter, v: i64, cap: Option<u64>, forward: bool) -> Option<i64> {
        if v == 0 {
            return Some(0);
        }
        let sign = usize::from(v < 0);
        let offset = if v > 0 { v as u64 - 1 } else { !(v as u64) };
        let mut lo = 0;
        for (bucket, &edge) in EDGES[sign].iter().enumerate() {
            let hi = cap.map_or(edge, |c| edge.min(c));
            if offset < hi {
                let x = offset - lo;
                let t = tweak(sign, bucket, if hi < edge { cap } else { None });
                let y = match self.tables[sign].get(bucket) {
                    Some(cell) if hi == edge => {
                        let table = cell.get_or_init(|| p.rank_table(t, hi - lo));
                        if forward {
                            table.forward(x)
                        } else {
                            table.inverse(x)
                        }
                    }
                    _ if forward => p.forward(t, hi - lo, x),
                    _ => p.inverse(t, hi - lo, x),
                }?;
                let o = lo + y;
                return Some(if sign == 0 { o as i64 + 1 } else { !(o as i64) });
            }
            if hi < edge {
                return None;
            }
            lo = edge;
        }
        None
    }
}

/// Names the domain: sign, bucket, and the digits of the cap when it
/// cuts the bucket (caps are `10^k - 1`).
fn tweak(sign: usize, bucket: usize, cap: Option<u64>) -> Tweak {
    let digits = cap.map_or(0, |c| c.checked_ilog10().map_or(1, |l| l + 1) as u8);
    [
        b'i',
        b'n',
        b't',
        sign as u8,
        bucket as u8,
        u8::from(cap.is_some()),
        digits,
        0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::LazyLock;

    static P: LazyLock<(Permuter, Integers)> =
        LazyLock::new(|| (Permuter::new(&[1; 16], &[2; 16]), Integers::new()));

    fn fwd(v: i64, cap: Option<u64>) -> Option<i64> {
        P.1.forward(&P.0, v, cap)
    }

    fn inv(v: i64, cap: Option<u64>) -> Option<i64> {
        P.1.inverse(&P.0, v, cap)
    }

    #[test]
    fn edges_stay_in_their_types() {
        for v in [
            1,
            32_767,
            32_768,
            -1,
            -32_768,
            -32_769,
            i32::MAX as i64,
            i32::MIN as i64,
            i32::MAX as i64 + 1,
            i64::MAX,
            i64::MIN,
        ] {
            let y = fwd(v, None).unwrap();
            assert_eq!(y.signum(), v.signum(), "{v}");
            if i16::try_from(v).is_ok() {
                assert!(i16::try_from(y).is_ok(), "{v} -> {y}");
            } else if i32::try_from(v).is_ok() {
                assert!(i32::try_from(y).is_ok(), "{v} -> {y}");
                assert!(i16::try_from(y).is_err(), "{v} -> {y}");
            }
            assert_eq!(inv(y, None), Some(v));
        }
        assert_eq!(fwd(0, None), Some(0));
    }

    #[test]
    fn int2_bucket_is_a_permutation() {
        let mut seen = vec![false; 1 << 15];
        for v in 1..=32_767i64 {
            let y = fwd(v, None).unwrap();
            assert!((1..=32_767).contains(&y));
            assert!(!seen[y as usize], "collision at {v}");
            seen[y as usize] = true;
        }
    }

    #[test]
    fn numeric_caps() {
        for (cap, v) in [
            (9u64, 7i64),
            (999, -500),
            (99_999, 40_000),
            (9_999_999_999, 123),
        ] {
            let y = fwd(v, Some(cap)).unwrap();
            assert!(
                y.unsigned_abs() <= cap && y.signum() == v.signum(),
                "{v} -> {y} cap {cap}"
            );
            assert_eq!(inv(y, Some(cap)), Some(v));
        }
        assert_eq!(fwd(123, Some(99_999)), fwd(123, None));
        assert_eq!(fwd(100, Some(99)), None);
    }

    proptest! {
        #[test]
        fn round_trips(v in any::<i64>()) {
            let y = fwd(v, None).unwrap();
            prop_assert_eq!(y.signum(), v.signum());
            prop_assert_eq!(inv(y, None), Some(v));
        }

        #[test]
        fn int4_values_stay_int4(v in any::<i32>()) {
            let y = fwd(i64::from(v), None).unwrap();
            prop_assert!(i32::try_from(y).is_ok());
        }
    }
}
