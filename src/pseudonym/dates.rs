//! Date transforms: a keyed shift of 1 to N days either way, or
//! generalization to the first day of the year or month. Infinities stay.
//!
//! The shift is keyed by the day alone, so the same day moves by the same
//! amount in a `date`, a `timestamp` or a text column, and timestamps keep
//! their time of day. It comes from AES-128 of the day (one block, used as
//! a pseudorandom function) under the date subkey.

use aes::cipher::BlockEncrypt;
use aes::{Aes128Enc, Block};

use super::binary;
use super::calendar::{self, IsoText, DATE_END, DATE_MIN, TS_END, TS_MIN, USECS_PER_DAY};
use super::ff1::LANES;
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
    let mut block = day_block(days);
    key.encrypt_block(&mut block);
    shift_in(&block, window)
}

/// The AES input block of a day's shift.
fn day_block(days: i64) -> Block {
    let mut block = [0u8; 16];
    block[..4].copy_from_slice(b"day:");
    block[8..].copy_from_slice(&days.to_be_bytes());
    block.into()
}

/// The shift a day's encrypted block gives: 1 to `window` days, either
/// way.
fn shift_in(block: &Block, window: u32) -> i64 {
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
    moved(op, days, range, |w| shift_of(prf, days, w))
}

/// The new day, inside `range`, a shift's days given by `shift`.
fn moved(op: DateOp, days: i64, range: Range, shift: impl FnOnce(u32) -> i64) -> Option<i64> {
    let r = range.days();
    let d = match op {
        DateOp::Shift(w) => {
            let s = shift(w);
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
    match parse_text(s, range)? {
        Parsed::Infinity => out.extend_from_slice(s),
        Parsed::Iso(iso) => write_text(op, new_day(prf, op, iso.days, range)?, &iso, out),
    }
    Some(())
}

/// [`text_value`] of many values (`None` for NULL), the shifts' AES
/// blocks of up to [`LANES`] days encrypted together: the same stand-ins.
/// Appends each to `out` and pushes its range, `None` for NULL or a value
/// it cannot handle.
pub(crate) fn text_values(
    prf: &Aes128Enc,
    op: DateOp,
    values: &[Option<&[u8]>],
    range: Range,
    out: &mut Vec<u8>,
    stand_ins: &mut Vec<Option<std::ops::Range<usize>>>,
) {
    for group in values.chunks(LANES) {
        let mut parsed: [Option<Parsed<'_>>; LANES] = Default::default();
        let mut blocks = [Block::default(); LANES];
        for ((p, b), v) in parsed.iter_mut().zip(&mut blocks).zip(group) {
            *p = v.and_then(|s| parse_text(s, range));
            if let Some(Parsed::Iso(iso)) = p {
                *b = day_block(iso.days);
            }
        }
        if matches!(op, DateOp::Shift(_)) {
            prf.encrypt_blocks(&mut blocks[..group.len()]);
        }
        for ((p, b), v) in parsed.iter().zip(&blocks).zip(group) {
            let start = out.len();
            let written = match (p, v) {
                (None, _) | (_, None) => None,
                (Some(Parsed::Infinity), Some(s)) => {
                    out.extend_from_slice(s);
                    Some(())
                }
                (Some(Parsed::Iso(iso)), _) => moved(op, iso.days, range, |w| shift_in(b, w))
                    .map(|d| write_text(op, d, iso, out)),
            };
            stand_ins.push(written.map(|()| start..out.len()));
        }
    }
}

/// A date or timestamp in ISO text form, read.
enum Parsed<'a> {
    /// `infinity` or `-infinity`: the stand-in is the value.
    Infinity,
    /// A value in `range`.
    Iso(IsoText<'a>),
}

/// Reads an ISO value in `range`; `None` for anything else.
fn parse_text(s: &[u8], range: Range) -> Option<Parsed<'_>> {
    if text::parse_infinity(s).is_some() {
        return Some(Parsed::Infinity);
    }
    let iso = calendar::parse_iso(s)?;
    range.days().contains(&iso.days).then_some(Parsed::Iso(iso))
}

/// Appends the stand-in of `iso` moved to day `d`.
fn write_text(op: DateOp, d: i64, iso: &IsoText<'_>, out: &mut Vec<u8>) {
    match op {
        DateOp::Shift(_) => calendar::write_iso(d, iso.time, out),
        DateOp::Year | DateOp::Month if iso.time.is_empty() => calendar::write_iso(d, b"", out),
        DateOp::Year | DateOp::Month => {
            let mut time = b" 00:00:00".to_vec();
            time.extend_from_slice(&iso.time[iso.offset_at..]);
            calendar::write_iso(d, &time, out);
        }
    }
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
