//! Date transforms: a keyed shift of 1 to N days either way, or
//! generalization to the first day of the year or month. Infinities stay.
//!
//! The shift is keyed by the day alone, so the same day moves by the same
//! amount in a `date`, a `timestamp` or a text column, and timestamps keep
//! their time of day. It comes from AES-128 of the day (one block, used as
//! a pseudorandom function) under the date subkey.

use aes::cipher::BlockEncrypt;
use aes::Aes128Enc;

use super::binary;
use super::calendar::{self, DATE_END, DATE_MIN, TS_END, TS_MIN, USECS_PER_DAY};
use super::text;

/// What happens to the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DateOp {
    /// Shift within this many days either way.
    Shift(u32),
    Year,
    Month,
}

/// Days a value can hold: `date` or `timestamp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Range {
    Date,
    Timestamp,
}

impl Range {
    fn days(self) -> std::ops::Range<i64> {
        match self {
            Range::Date => DATE_MIN..DATE_END,
            Range::Timestamp => TS_MIN / USECS_PER_DAY..TS_END / USECS_PER_DAY,
        }
    }
}

/// The keyed shift of a day: 1 to `window` days, either way.
pub(crate) fn shift_of(key: &Aes128Enc, days: i64, window: u32) -> i64 {
    let mut block = [0u8; 16];
    block[..4].copy_from_slice(b"day:");
    block[8..].copy_from_slice(&days.to_be_bytes());
    let mut block = block.into();
    key.encrypt_block(&mut block);
    let w = u64::from(window.max(1));
    let r = u64::from_be_bytes([
        block[0], block[1], block[2], block[3], block[4], block[5], block[6], block[7],
    ]) % (2 * w);
    if r < w {
        -(r as i64) - 1
    } else {
        (r - w) as i64 + 1
    }
}

/// The new day, inside `range`.
fn new_day(prf: &Aes128Enc, op: DateOp, days: i64, range: Range) -> Option<i64> {
    let r = range.days();
    let d = match op {
        DateOp::Shift(w) => {
            let s = shift_of(prf, days, w);
            if r.contains(&(days + s)) {
                days + s
            } else {
                days - s
            }
        }
        DateOp::Year => calendar::truncate_days(days, false),
        DateOp::Month => calendar::truncate_days(days, true),
    };
    r.contains(&d).then_some(d)
}

/// A date or timestamp in ISO text form (a `date`, `timestamp(tz)` or text
/// column in text format).
pub(crate) fn text_value(
    prf: &Aes128Enc,
    op: DateOp,
    s: &[u8],
    range: Range,
    out: &mut Vec<u8>,
) -> Option<()> {
    if text::parse_infinity(s).is_some() {
        out.extend_from_slice(s);
        return Some(());
    }
    let iso = calendar::parse_iso(s)?;
    if !range.days().contains(&iso.days) {
        return None;
    }
    let d = new_day(prf, op, iso.days, range)?;
    match op {
        DateOp::Shift(_) => calendar::write_iso(d, iso.time, out),
        DateOp::Year | DateOp::Month if iso.time.is_empty() => calendar::write_iso(d, b"", out),
        DateOp::Year | DateOp::Month => {
            let mut time = b" 00:00:00".to_vec();
            time.extend_from_slice(&iso.time[iso.offset_at..]);
            calendar::write_iso(d, &time, out);
        }
    }
    Some(())
}

/// A binary `date`.
pub(crate) fn binary_date(prf: &Aes128Enc, op: DateOp, b: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let v = binary::read_date(b)?;
    let n = if v == i32::MAX || v == i32::MIN {
        v
    } else {
        i32::try_from(new_day(prf, op, i64::from(v), Range::Date)?).ok()?
    };
    out.extend_from_slice(&n.to_be_bytes());
    Some(())
}

/// A binary `timestamp` or `timestamptz`.
pub(crate) fn binary_timestamp(
    prf: &Aes128Enc,
    op: DateOp,
    b: &[u8],
    out: &mut Vec<u8>,
) -> Option<()> {
    let v = binary::read_timestamp(b)?;
    if v == i64::MAX || v == i64::MIN {
        out.extend_from_slice(b);
        return Some(());
    }
    if !(TS_MIN..TS_END).contains(&v) {
        return None;
    }
    let days = v.div_euclid(USECS_PER_DAY);
    let time = v.rem_euclid(USECS_PER_DAY);
    let d = new_day(prf, op, days, Range::Timestamp)?;
    let n = match op {
        DateOp::Shift(_) => d * USECS_PER_DAY + time,
        DateOp::Year | DateOp::Month => d * USECS_PER_DAY,
    };
    if !(TS_MIN..TS_END).contains(&n) {
        return None;
    }
    out.extend_from_slice(&n.to_be_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn prf() -> Aes128Enc {
        use aes::cipher::KeyInit;
        Aes128Enc::new(&[2; 16].into())
    }

    fn text(op: DateOp, s: &str) -> Option<String> {
        let mut out = Vec::new();
        text_value(&prf(), op, s.as_bytes(), Range::Timestamp, &mut out)?;
        Some(String::from_utf8(out).unwrap())
    }

    #[test]
    fn generalizes() {
        assert_eq!(
            text(DateOp::Year, "1990-05-17").as_deref(),
            Some("1990-01-01")
        );
        assert_eq!(
            text(DateOp::Month, "1990-05-17 13:45:12.5+02").as_deref(),
            Some("1990-05-01 00:00:00+02")
        );
        assert_eq!(text(DateOp::Year, "infinity").as_deref(), Some("infinity"));
        assert_eq!(text(DateOp::Year, "17.05.1990"), None);
    }

    #[test]
    fn shift_keeps_time_and_agrees_across_types() {
        let d = text(DateOp::Shift(30), "1990-05-17").unwrap();
        let t = text(DateOp::Shift(30), "1990-05-17 08:30:00").unwrap();
        assert_eq!(t, format!("{d} 08:30:00"));
        assert_ne!(d, "1990-05-17");
        let days = calendar::parse_iso(b"1990-05-17").unwrap().days;
        let mut b = Vec::new();
        binary_date(
            &prf(),
            DateOp::Shift(30),
            &(days as i32).to_be_bytes(),
            &mut b,
        )
        .unwrap();
        let shifted = i64::from(i32::from_be_bytes(b[..].try_into().unwrap()));
        assert_eq!(calendar::parse_iso(d.as_bytes()).unwrap().days, shifted);
    }

    proptest! {
        #[test]
        fn shifts_stay_in_window_and_range(days in DATE_MIN..DATE_END, w in 1u32..400) {
            let s = shift_of(&prf(), days, w);
            prop_assert!(s != 0 && s.unsigned_abs() <= u64::from(w));
            let mut out = Vec::new();
            binary_date(&prf(), DateOp::Shift(w), &(days as i32).to_be_bytes(), &mut out).unwrap();
            let n = i64::from(i32::from_be_bytes(out[..].try_into().unwrap()));
            prop_assert!((DATE_MIN..DATE_END).contains(&n));
            prop_assert_eq!((n - days).unsigned_abs(), s.unsigned_abs());
        }

        #[test]
        fn timestamps_stay_valid(us in TS_MIN..TS_END, op in prop_oneof![Just(DateOp::Year), Just(DateOp::Month), Just(DateOp::Shift(365))]) {
            let mut out = Vec::new();
            if binary_timestamp(&prf(), op, &us.to_be_bytes(), &mut out).is_some() {
                let n = i64::from_be_bytes(out[..].try_into().unwrap());
                prop_assert!((TS_MIN..TS_END).contains(&n));
            }
        }
    }
}
