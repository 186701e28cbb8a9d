//! `partial`: mask every letter and digit with `*` except the last few
//! (never more than half of them), keeping separators, so
//! `4111 1111 1111 1234` becomes `**** **** **** 1234`.

/// Appends the masked form of `s`.
pub(crate) fn partial(s: &str, keep: u16, out: &mut Vec<u8>) {
    let alnum = s.chars().filter(|c| c.is_alphanumeric()).count();
    let kept = usize::from(keep).min(alnum / 2);
    let mut seen = 0;
    let mut buf = [0u8; 4];
    for c in s.chars() {
        if c.is_alphanumeric() {
            seen += 1;
            if seen <= alnum - kept {
                out.push(b'*');
                continue;
            }
        }
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(s: &str, keep: u16) -> String {
        let mut out = Vec::new();
        partial(s, keep, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn masks() {
        assert_eq!(mask("4111 1111 1111 1234", 4), "**** **** **** 1234");
        assert_eq!(
            mask("DE89 3704 0044 0532 0130 00", 4),
            "**** **** **** **** **30 00"
        );
        assert_eq!(mask("1234", 4), "**34");
        assert_eq!(mask("7", 4), "*");
        assert_eq!(mask("Zürich", 0), "******");
        assert_eq!(mask("", 4), "");
    }
}
