//! Dates and timestamps: PostgreSQL's ranges, the proleptic Gregorian
//! calendar, and the ISO text forms (`DateStyle = ISO`), e.g.
//! `1990-05-17`, `0044-03-15 BC`, `2024-02-29 13:45:00.123+01`.

/// First valid date, 4714-11-24 BC, in days since 2000-01-01.
pub(crate) const DATE_MIN: i64 = -2_451_545;
/// One past the last valid date (5874897-12-31).
pub(crate) const DATE_END: i64 = 2_147_483_494 - 2_451_545;
/// First valid timestamp, in microseconds since 2000-01-01 00:00.
pub(crate) const TS_MIN: i64 = -211_813_488_000_000_000;
/// One past the last valid timestamp (294277-01-01 00:00).
pub(crate) const TS_END: i64 = 9_223_371_331_200_000_000;
/// Microseconds in a day.
pub(crate) const USECS_PER_DAY: i64 = 86_400_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const UNIX_TO_PG: i64 = 10_957;

/// Days since 2000-01-01 of a proleptic Gregorian date (astronomical
/// year: 0 is 1 BC).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468 - UNIX_TO_PG
}

/// The date of a day number since 2000-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + UNIX_TO_PG + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if y.rem_euclid(4) == 0 && (y.rem_euclid(100) != 0 || y.rem_euclid(400) == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A date or timestamp in ISO text form, split into the parts a transform
/// touches: the day, the rest (time of day and zone offset, verbatim) and
/// the era.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IsoText<'a> {
    /// Days since 2000-01-01.
    pub(crate) days: i64,
    /// Everything between the date and the era: empty for a date,
    /// ` HH:MM:SS[.ffffff][±HH[:MM[:SS]]]` for a timestamp.
    pub(crate) time: &'a [u8],
    /// Where the zone offset starts inside `time` (`time.len()` if none).
    pub(crate) offset_at: usize,
}

/// Parses `YYYY-MM-DD[ time][ BC]`; `None` for anything else, including
/// `infinity` (callers handle it first) and other DateStyles.
pub(crate) fn parse_iso(s: &[u8]) -> Option<IsoText<'_>> {
    parse_plain_date(s).or_else(|| parse_general(s))
}

/// [`parse_iso`] without its fast path.
fn parse_general(s: &[u8]) -> Option<IsoText<'_>> {
    let (s, bc) = match s.strip_suffix(b" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    let ylen = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(4..=7).contains(&ylen) {
        return None;
    }
    let year = digits(&s[..ylen])?;
    let rest = &s[ylen..];
    if rest.len() < 6 || rest[0] != b'-' || rest[3] != b'-' {
        return None;
    }
    let month = u32::try_from(digits(&rest[1..3])?).ok()?;
    let day = u32::try_from(digits(&rest[4..6])?).ok()?;
    let y = if bc { 1 - year } else { year };
    if bc && year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(y, month) {
        return None;
    }
    let days = days_from_civil(y, month, day);
    if !(DATE_MIN..DATE_END).contains(&days) {
        return None;
    }
    let time = &rest[6..];
    let offset_at = check_time(time)?;
    Some(IsoText {
        days,
        time,
        offset_at,
    })
}

/// [`parse_iso`] of the common form, a date of exactly `YYYY-MM-DD`, in
/// one step; `None` for anything else (which the general parse then
/// reads, or refuses).
#[inline]
fn parse_plain_date(s: &[u8]) -> Option<IsoText<'_>> {
    let &[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = s else {
        return None;
    };
    let digit = |c: u8| c.is_ascii_digit().then(|| u32::from(c - b'0'));
    let year = ((digit(y0)? * 10 + digit(y1)?) * 10 + digit(y2)?) * 10 + digit(y3)?;
    let (month, day) = (digit(m0)? * 10 + digit(m1)?, digit(d0)? * 10 + digit(d1)?);
    let y = i64::from(year);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(y, month) {
        return None;
    }
    Some(IsoText {
        days: days_from_civil(y, month, day),
        time: &s[10..],
        offset_at: 0,
    })
}

/// Checks ` HH:MM:SS[.f+][±HH[:MM[:SS]]]` (or nothing); returns where the
/// offset starts.
fn check_time(t: &[u8]) -> Option<usize> {
    if t.is_empty() {
        return Some(0);
    }
    let clock = |p: &[u8]| {
        p.len() == 8
            && p[2] == b':'
            && p[5] == b':'
            && two(&p[0..2])
            && two(&p[3..5])
            && two(&p[6..8])
    };
    if t[0] != b' ' || t.len() < 9 || !clock(&t[1..9]) {
        return None;
    }
    let mut i = 9;
    if t.get(i) == Some(&b'.') {
        let n = t[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        i += 1 + n;
    }
    let offset_at = i;
    if i < t.len() {
        let off = &t[i..];
        let ok = matches!(off[0], b'+' | b'-')
            && match off.len() {
                3 => two(&off[1..3]),
                6 => two(&off[1..3]) && off[3] == b':' && two(&off[4..6]),
                9 => {
                    two(&off[1..3])
                        && off[3] == b':'
                        && two(&off[4..6])
                        && off[6] == b':'
                        && two(&off[7..9])
                }
                _ => false,
            };
        if !ok {
            return None;
        }
    }
    Some(offset_at)
}

fn two(p: &[u8]) -> bool {
    p.len() == 2 && p.iter().all(u8::is_ascii_digit)
}

fn digits(p: &[u8]) -> Option<i64> {
    if p.is_empty() || !p.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(p.iter().fold(0i64, |a, &d| a * 10 + i64::from(d - b'0')))
}

/// Appends `YYYY-MM-DD` (at least four year digits, BC years counted from
/// 1) and returns whether the date is BC.
pub(crate) fn write_ymd(days: i64, out: &mut Vec<u8>) -> bool {
    let (y, m, d) = civil_from_days(days);
    if !(1000..=9999).contains(&y) {
        return write_ymd_general(y, m, d, out);
    }
    let (y, m, d) = (y as u32, m as u8, d as u8);
    out.extend_from_slice(&[
        b'0' + (y / 1000) as u8,
        b'0' + (y / 100 % 10) as u8,
        b'0' + (y / 10 % 10) as u8,
        b'0' + (y % 10) as u8,
        b'-',
        b'0' + m / 10,
        b'0' + m % 10,
        b'-',
        b'0' + d / 10,
        b'0' + d % 10,
    ]);
    false
}

/// [`write_ymd`] of any year.
fn write_ymd_general(y: i64, m: u32, d: u32, out: &mut Vec<u8>) -> bool {
    let bc = y <= 0;
    let year = (if bc { 1 - y } else { y }).unsigned_abs();
    if year < 1000 {
        out.extend_from_slice(&[b'0', b'0', b'0'][..4 - digit_count(year)]);
    }
    super::text::write_u64(year, out);
    out.extend_from_slice(&[
        b'-',
        b'0' + (m / 10) as u8,
        b'0' + (m % 10) as u8,
        b'-',
        b'0' + (d / 10) as u8,
        b'0' + (d % 10) as u8,
    ]);
    bc
}

fn digit_count(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// Appends a whole ISO value: the day, `time`, then ` BC` when needed.
pub(crate) fn write_iso(days: i64, time: &[u8], out: &mut Vec<u8>) {
    let bc = write_ymd(days, out);
    if !time.is_empty() {
        out.extend_from_slice(time);
    }
    if bc {
        out.extend_from_slice(b" BC");
    }
}

/// Microseconds since 2000-01-01 00:00 UTC of an ISO value (midnight
/// for a date; the zone offset, if any, is applied).
pub(crate) fn iso_micros(iso: &IsoText<'_>) -> Option<i64> {
    let t = iso.time;
    let mut us = iso.days.checked_mul(USECS_PER_DAY)?;
    if t.is_empty() {
        return Some(us);
    }
    let num = |p: &[u8]| digits(p).unwrap_or(0);
    let (h, m, s) = (num(&t[1..3]), num(&t[4..6]), num(&t[7..9]));
    if h > 24 || m > 59 || s > 60 || (h == 24 && (m, s) != (0, 0)) {
        return None;
    }
    us += ((h * 60 + m) * 60 + s) * 1_000_000;
    if t.get(9) == Some(&b'.') {
        let frac = &t[10..iso.offset_at];
        let six: i64 = (0..6)
            .map(|i| frac.get(i).map_or(0, |&d| i64::from(d - b'0')))
            .fold(0, |a, d| a * 10 + d);
        us += six;
    }
    let off = &t[iso.offset_at..];
    if let Some((&sign, rest)) = off.split_first() {
        let part = |i: usize| rest.get(i..i + 2).map_or(0, num);
        let secs = (part(0) * 60 + part(3)) * 60 + part(6);
        us -= if sign == b'-' { -secs } else { secs } * 1_000_000;
    }
    Some(us)
}

/// The first day of the year or month holding `days`.
pub(crate) fn truncate_days(days: i64, to_month: bool) -> i64 {
    let (y, m, _) = civil_from_days(days);
    days_from_civil(y, if to_month { m } else { 1 }, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn iso(days: i64, time: &[u8]) -> String {
        let mut out = Vec::new();
        write_iso(days, time, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(2000, 1, 1), 0);
        assert_eq!(days_from_civil(1970, 1, 1), -10_957);
        assert_eq!(days_from_civil(-4713, 11, 24), DATE_MIN);
        assert_eq!(days_from_civil(5_874_898, 1, 1), DATE_END);
        assert_eq!(iso(DATE_MIN, b""), "4714-11-24 BC");
        assert_eq!(parse_iso(b"4714-11-24 BC").unwrap().days, DATE_MIN);
        assert_eq!(parse_iso(b"4714-11-23 BC"), None);
        assert_eq!(
            parse_iso(b"0001-01-01 BC").unwrap().days,
            days_from_civil(0, 1, 1)
        );
        assert_eq!(parse_iso(b"1990-02-29"), None);
        assert_eq!(parse_iso(b"2000-02-29").unwrap().days, 59);
        assert_eq!(parse_iso(b"17/05/1990"), None);
        assert_eq!(parse_iso(b"infinity"), None);
    }

    #[test]
    fn timestamps() {
        let t = parse_iso(b"2024-02-29 13:45:00.123+05:30").unwrap();
        assert_eq!(t.time, b" 13:45:00.123+05:30");
        assert_eq!(&t.time[t.offset_at..], b"+05:30");
        let t = parse_iso(b"0044-03-15 12:00:00-00:19:32 BC").unwrap();
        assert_eq!(iso(t.days, t.time), "0044-03-15 12:00:00-00:19:32 BC");
        assert_eq!(parse_iso(b"2024-01-01 25:00"), None);
        assert_eq!(parse_iso(b"2024-01-01 12:00:00 secret"), None);
        let t = parse_iso(b"2000-01-02 01:00:00.5+01:30").unwrap();
        assert_eq!(
            iso_micros(&t),
            Some(USECS_PER_DAY - 1_800_000_000 + 500_000)
        );
        assert_eq!(iso_micros(&parse_iso(b"2000-01-01").unwrap()), Some(0));
    }

    proptest! {
        #[test]
        fn civil_round_trip(days in DATE_MIN..DATE_END) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
            let mut out = Vec::new();
            write_iso(days, b"", &mut out);
            prop_assert_eq!(parse_iso(&out).map(|p| p.days), Some(days));
        }

        #[test]
        fn fast_paths_agree(days in DATE_MIN..DATE_END, noise in any::<[u8; 10]>(), pick in any::<u16>()) {
            let (y, m, d) = civil_from_days(days);
            let (mut fast, mut general) = (Vec::new(), Vec::new());
            let bc = write_ymd(days, &mut fast);
            prop_assert_eq!(bc, write_ymd_general(y, m, d, &mut general));
            prop_assert_eq!(&fast, &general);
            // Dates of exactly ten bytes, valid or not, with digits and
            // dashes moved about.
            let mut s = format!("{:04}-{:02}-{:02}", y.rem_euclid(10_000), m + u32::from(pick % 3 == 0) * 11, d + u32::from(pick % 5 == 0) * 20).into_bytes();
            s.truncate(10);
            if pick % 7 == 0 {
                let at = usize::from(pick >> 8) % s.len();
                s[at] = noise[0] % 64;
            }
            prop_assert_eq!(parse_plain_date(&s).or_else(|| parse_general(&s)), parse_general(&s));
            prop_assert_eq!(parse_plain_date(&noise).or_else(|| parse_general(&noise)), parse_general(&noise));
        }

        #[test]
        fn parse_never_panics(s in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_iso(&s);
        }
    }
}
