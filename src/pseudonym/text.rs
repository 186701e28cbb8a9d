//! Text-format codecs of the scalar types (what `*_out` functions print and
//! `*_in` functions accept): integers, uuid, bool, bytea, date and
//! timestamp specials. Characters, numeric and ISO dates have their own
//! files.

/// Parses a decimal integer as PostgreSQL prints it (`-` sign, digits).
pub(crate) fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut mag: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        mag = mag * 10 + u64::from(d - b'0');
    }
    if neg {
        0i64.checked_sub_unsigned(mag)
    } else {
        i64::try_from(mag).ok()
    }
}

/// Appends a decimal integer without allocating.
pub(crate) fn write_int(v: i64, out: &mut Vec<u8>) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(v.unsigned_abs(), out);
}

/// Appends an unsigned decimal integer.
pub(crate) fn write_u64(mut m: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Parses a uuid: 32 hex digits, with the usual hyphens, optional braces.
pub(crate) fn parse_uuid(s: &[u8]) -> Option<[u8; 16]> {
    let s = s
        .strip_prefix(b"{")
        .and_then(|r| r.strip_suffix(b"}"))
        .unwrap_or(s);
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut high = None;
    for (i, &c) in s.iter().enumerate() {
        if c == b'-' && high.is_none() && n > 0 && n < 16 && i + 1 < s.len() {
            continue;
        }
        let v = hex_value(c)?;
        match high.take() {
            None => high = Some(v),
            Some(h) => {
                *out.get_mut(n)? = (h << 4) | v;
                n += 1;
            }
        }
    }
    (n == 16 && high.is_none()).then_some(out)
}

/// Appends the canonical `8-4-4-4-12` lower-case form.
pub(crate) fn write_uuid(u: &[u8; 16], out: &mut Vec<u8>) {
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.extend_from_slice(&hex_pair(*b));
    }
}

/// Parses bytea text: hex (`\x0a1b`) or escape format.
pub(crate) fn parse_bytea(s: &[u8]) -> Option<Vec<u8>> {
    if let Some(hex) = s.strip_prefix(b"\\x") {
        let digits: Vec<u8> = hex
            .iter()
            .copied()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        if digits.len() % 2 != 0 {
            return None;
        }
        return digits
            .chunks(2)
            .map(|p| Some((hex_value(p[0])? << 4) | hex_value(p[1])?))
            .collect();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' {
            out.push(s[i]);
            i += 1;
        } else if s.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let o = s.get(i + 1..i + 4)?;
            if !(b'0'..=b'3').contains(&o[0]) || !o[1..].iter().all(|c| (b'0'..=b'7').contains(c)) {
                return None;
            }
            out.push(((o[0] - b'0') << 6) | ((o[1] - b'0') << 3) | (o[2] - b'0'));
            i += 4;
        }
    }
    Some(out)
}

/// Appends bytea in hex format.
pub(crate) fn write_bytea(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"\\x");
    for &x in b {
        out.extend_from_slice(&hex_pair(x));
    }
}

/// Parses `t`/`f` and the other spellings `boolin` accepts.
pub(crate) fn parse_bool(s: &[u8]) -> Option<bool> {
    match s.to_ascii_lowercase().as_slice() {
        b"t" | b"true" | b"y" | b"yes" | b"on" | b"1" => Some(true),
        b"f" | b"false" | b"n" | b"no" | b"off" | b"0" => Some(false),
        _ => None,
    }
}

/// `infinity` / `-infinity` of dates and timestamps: `Some(true)` for
/// the positive one.
pub(crate) fn parse_infinity(s: &[u8]) -> Option<bool> {
    match s {
        b"infinity" => Some(true),
        b"-infinity" => Some(false),
        _ => None,
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex_pair(b: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integers() {
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"9223372036854775808"), None);
        assert_eq!(parse_int(b""), None);
        assert_eq!(parse_int(b"-"), None);
        assert_eq!(parse_int(b"1 "), None);
        let mut out = Vec::new();
        write_int(i64::MIN, &mut out);
        assert_eq!(out, b"-9223372036854775808");
    }

    #[test]
    fn uuids() {
        let u = parse_uuid(b"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").unwrap();
        let mut out = Vec::new();
        write_uuid(&u, &mut out);
        assert_eq!(out, b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        assert_eq!(parse_uuid(b"{a0eebc999c0b4ef8bb6d6bb9bd380a11}"), Some(u));
        assert_eq!(parse_uuid(b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"), None);
        assert_eq!(parse_uuid(b"-a0eebc999c0b4ef8bb6d6bb9bd380a11"), None);
    }

    #[test]
    fn byteas() {
        assert_eq!(parse_bytea(b"\\x00ff41"), Some(vec![0, 255, 0x41]));
        assert_eq!(parse_bytea(b"a\\\\b\\001"), Some(b"a\\b\x01".to_vec()));
        assert_eq!(parse_bytea(b"\\x0"), None);
        assert_eq!(parse_bytea(b"\\9"), None);
        let mut out = Vec::new();
        write_bytea(&[0, 0xab], &mut out);
        assert_eq!(out, b"\\x00ab");
    }

    proptest! {
        #[test]
        fn int_round_trip(v in any::<i64>()) {
            let mut out = Vec::new();
            write_int(v, &mut out);
            prop_assert_eq!(parse_int(&out), Some(v));
            prop_assert_eq!(out, v.to_string().into_bytes());
        }

        #[test]
        fn random_text_never_panics(s in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = (parse_int(&s), parse_uuid(&s), parse_bytea(&s), parse_bool(&s));
        }
    }
}
