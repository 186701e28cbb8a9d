//! `numeric` values in text (`-12.340`, `NaN`, `Infinity`) and binary
//! (base-10000 digits, weight, sign, display scale) form.

/// A decoded `numeric`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Numeric {
    NaN,
    Infinity,
    NegInfinity,
    Finite(Decimal),
}

/// A finite decimal: ASCII digits before the point without leading zeros
/// (empty for zero) and exactly `dscale` digits after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Decimal {
    pub(crate) neg: bool,
    pub(crate) int: Vec<u8>,
    pub(crate) frac: Vec<u8>,
}

const SIGN_POS: u16 = 0x0000;
const SIGN_NEG: u16 = 0x4000;
const SIGN_NAN: u16 = 0xC000;
const SIGN_PINF: u16 = 0xD000;
const SIGN_NINF: u16 = 0xF000;
/// The largest display scale PostgreSQL stores.
const MAX_DSCALE: usize = 0x3FFF;

impl Decimal {
    /// The value as a signed integer, when it has no fractional part and
    /// fits `i64`.
    pub(crate) fn as_i64(&self) -> Option<i64> {
        if self.frac.iter().any(|&d| d != b'0') || self.int.len() > 19 {
            return None;
        }
        let mag = self
            .int
            .iter()
            .fold(0u64, |a, &d| a * 10 + u64::from(d - b'0'));
        if self.neg {
            0i64.checked_sub_unsigned(mag)
        } else {
            i64::try_from(mag).ok()
        }
    }

    /// This decimal's shape (sign, display scale) with an integer value.
    pub(crate) fn with_i64(&self, v: i64) -> Decimal {
        let int = if v == 0 {
            Vec::new()
        } else {
            v.unsigned_abs().to_string().into_bytes()
        };
        Decimal {
            neg: v < 0,
            int,
            frac: vec![b'0'; self.frac.len()],
        }
    }

    fn is_zero(&self) -> bool {
        self.int.is_empty() && self.frac.iter().all(|&d| d == b'0')
    }
}

/// Parses PostgreSQL's text output of a `numeric`.
pub(crate) fn parse_text(s: &[u8]) -> Option<Numeric> {
    match s {
        b"NaN" => return Some(Numeric::NaN),
        b"Infinity" => return Some(Numeric::Infinity),
        b"-Infinity" => return Some(Numeric::NegInfinity),
        _ => {}
    }
    let (neg, rest) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    let (int, frac) = match rest.iter().position(|&b| b == b'.') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.iter().chain(frac).all(u8::is_ascii_digit)
        || frac.len() > MAX_DSCALE
    {
        return None;
    }
    let first = int.iter().position(|&d| d != b'0').unwrap_or(int.len());
    let d = Decimal {
        neg,
        int: int[first..].to_vec(),
        frac: frac.to_vec(),
    };
    Some(Numeric::Finite(Decimal {
        neg: neg && !d.is_zero(),
        ..d
    }))
}

/// Appends the text form.
pub(crate) fn write_text(n: &Numeric, out: &mut Vec<u8>) {
    match n {
        Numeric::NaN => out.extend_from_slice(b"NaN"),
        Numeric::Infinity => out.extend_from_slice(b"Infinity"),
        Numeric::NegInfinity => out.extend_from_slice(b"-Infinity"),
        Numeric::Finite(d) => {
            if d.neg && !d.is_zero() {
                out.push(b'-');
            }
            if d.int.is_empty() {
                out.push(b'0');
            } else {
                out.extend_from_slice(&d.int);
            }
            if !d.frac.is_empty() {
                out.push(b'.');
                out.extend_from_slice(&d.frac);
            }
        }
    }
}

/// Parses the binary form.
pub(crate) fn parse_binary(b: &[u8]) -> Option<Numeric> {
    let word = |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])) };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = usize::from(word(6)?);
    if b.len() != 8 + 2 * ndigits || ndigits > 0x7fff || dscale > MAX_DSCALE {
        return None;
    }
    match sign {
        SIGN_NAN => return Some(Numeric::NaN),
        SIGN_PINF => return Some(Numeric::Infinity),
        SIGN_NINF => return Some(Numeric::NegInfinity),
        SIGN_POS | SIGN_NEG => {}
        _ => return None,
    }
    let mut digits = Vec::with_capacity(ndigits);
    for k in 0..ndigits {
        let d = word(8 + 2 * k)?;
        if d > 9999 {
            return None;
        }
        digits.push(d);
    }
    let group = |e: i32| -> u16 {
        usize::try_from(weight - e)
            .ok()
            .and_then(|k| digits.get(k).copied())
            .unwrap_or(0)
    };
    let mut int = Vec::new();
    for e in (0..=weight).rev() {
        push_group(&mut int, group(e));
    }
    let first = int.iter().position(|&d| d != b'0').unwrap_or(int.len());
    int.drain(..first);
    let mut frac = Vec::with_capacity(dscale + 4);
    let mut e = -1;
    while frac.len() < dscale {
        push_group(&mut frac, group(e));
        e -= 1;
    }
    frac.truncate(dscale);
    let d = Decimal {
        neg: sign == SIGN_NEG,
        int,
        frac,
    };
    Some(Numeric::Finite(Decimal {
        neg: d.neg && !d.is_zero(),
        ..d
    }))
}

fn push_group(out: &mut Vec<u8>, g: u16) {
    out.extend_from_slice(&[
        b'0' + (g / 1000) as u8,
        b'0' + (g / 100 % 10) as u8,
        b'0' + (g / 10 % 10) as u8,
        b'0' + (g % 10) as u8,
    ]);
}

/// Appends the binary form; `None` if the value has too many digits for
/// the binary header.
pub(crate) fn write_binary(n: &Numeric, out: &mut Vec<u8>) -> Option<()> {
    let special = |sign: u16, out: &mut Vec<u8>| {
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
    };
    let d = match n {
        Numeric::NaN => {
            special(SIGN_NAN, out);
            return Some(());
        }
        Numeric::Infinity => {
            special(SIGN_PINF, out);
            return Some(());
        }
        Numeric::NegInfinity => {
            special(SIGN_NINF, out);
            return Some(());
        }
        Numeric::Finite(d) => d,
    };
    let lead = (4 - d.int.len() % 4) % 4;
    let int_groups = (d.int.len() + lead) / 4;
    let mut padded = Vec::with_capacity(lead + d.int.len() + d.frac.len() + 3);
    padded.resize(lead, b'0');
    padded.extend_from_slice(&d.int);
    padded.extend_from_slice(&d.frac);
    padded.resize(padded.len().div_ceil(4) * 4, b'0');
    let mut groups: Vec<u16> = padded
        .chunks(4)
        .map(|c| c.iter().fold(0u16, |a, &x| a * 10 + u16::from(x - b'0')))
        .collect();
    let mut weight = int_groups as i64 - 1;
    let leading = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading);
    weight -= leading as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let ndigits = u16::try_from(groups.len()).ok().filter(|&n| n <= 0x7fff)?;
    let weight = i16::try_from(weight).ok()?;
    let sign = if d.neg && !groups.is_empty() {
        SIGN_NEG
    } else {
        SIGN_POS
    };
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(d.frac.len() as u16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(n: &Numeric) -> String {
        let mut out = Vec::new();
        write_text(n, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn binary_matches_postgres() {
        // SELECT numeric_send('-1234567.0890'::numeric)
        let pg = hex::decode("0003000140000004007b11d7037a").unwrap();
        let n = parse_binary(&pg).unwrap();
        assert_eq!(text(&n), "-1234567.0890");
        let mut out = Vec::new();
        write_binary(&n, &mut out).unwrap();
        assert_eq!(out, pg);
        // SELECT numeric_send('0.00'::numeric)
        let zero = hex::decode("0000000000000002").unwrap();
        assert_eq!(text(&parse_binary(&zero).unwrap()), "0.00");
        // SELECT numeric_send(10000::numeric)
        let big = hex::decode("0001000100000000 0001".replace(' ', "")).unwrap();
        assert_eq!(text(&parse_binary(&big).unwrap()), "10000");
    }

    #[test]
    fn specials() {
        for s in ["NaN", "Infinity", "-Infinity"] {
            let n = parse_text(s.as_bytes()).unwrap();
            assert_eq!(text(&n), s);
            let mut b = Vec::new();
            write_binary(&n, &mut b).unwrap();
            assert_eq!(parse_binary(&b), Some(n));
        }
        assert_eq!(parse_text(b"1e5"), None);
        assert_eq!(parse_text(b"-"), None);
        assert_eq!(parse_text(b"."), None);
    }

    proptest! {
        #[test]
        fn text_and_binary_round_trip(neg in any::<bool>(), int in "[1-9][0-9]{0,30}|", frac in "[0-9]{0,20}") {
            prop_assume!(!(int.is_empty() && frac.is_empty()));
            let s = format!("{}{}{}{}", if neg { "-" } else { "" }, if int.is_empty() { "0" } else { &int }, if frac.is_empty() { "" } else { "." }, frac);
            let n = parse_text(s.as_bytes()).unwrap();
            let mut b = Vec::new();
            write_binary(&n, &mut b).unwrap();
            let back = parse_binary(&b).unwrap();
            prop_assert_eq!(&back, &n);
            let zero = int.is_empty() && frac.bytes().all(|d| d == b'0');
            if !(neg && zero) {
                prop_assert_eq!(text(&back), s);
            }
        }

        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Some(n) = parse_binary(&b) {
                let mut out = Vec::new();
                write_binary(&n, &mut out);
            }
            let _ = parse_text(&b);
        }
    }
}
