//! Email stand-ins: `given.token@domain`, where the token is 12 base32
//! characters (60 bits) of the keyed PRF (AES-CMAC) of the whole address,
//! so distinct addresses keep distinct stand-ins (a collision needs about
//! a billion addresses). The domain is a reserved one; nothing of the real address
//! survives.

use super::keyed::Tag;
use super::types::TextLimit;
use super::words;

/// The PRF domain of email tags.
pub(crate) const PRF_DOMAIN: u8 = b'e';
/// Token characters by default, and the fewest kept when the column is
/// too narrow for the whole address.
const TOKEN: usize = 12;
const MIN_TOKEN: usize = 8;
pub(crate) const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Appends the stand-in address, fitted to `limit`, of the value whose tag
/// (domain [`PRF_DOMAIN`]) is `tag`; `None` when even the shortest form
/// does not fit.
pub(crate) fn write_tagged(
    tag: &Tag,
    domain: &str,
    limit: TextLimit,
    out: &mut Vec<u8>,
) -> Option<()> {
    let given = words::given_name(tag, 8);
    let full = given.len() + 1 + TOKEN + 1 + domain.len();
    let (name, token) = if limit.fits_ascii(full) {
        (true, TOKEN)
    } else {
        let room = limit.max_chars.into_iter().chain(limit.max_bytes).min()?;
        let token = room.checked_sub(1 + domain.len())?.min(TOKEN);
        if token < MIN_TOKEN {
            return None;
        }
        (false, token)
    };
    if name {
        let at = out.len();
        out.extend_from_slice(given.as_bytes());
        out[at..].make_ascii_lowercase();
        out.push(b'.');
    }
    let bits = u64::from_be_bytes(tag[..8].try_into().ok()?);
    // Straight into `out`: a copy of a stack buffer written byte by byte
    // waits for those stores to retire.
    out.extend((0..token).map(|i| BASE32[((bits >> (59 - 5 * i)) & 31) as usize]));
    out.push(b'@');
    out.extend_from_slice(domain.as_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::keyed::Prf;
    use crate::pseudonym::types::ColumnType;

    fn email(value: &str, limit: TextLimit) -> Option<String> {
        let mut out = Vec::new();
        let tag = Prf::new(&[3; 32]).tag(PRF_DOMAIN, value.as_bytes());
        write_tagged(&tag, "example.invalid", limit, &mut out)?;
        Some(String::from_utf8(out).unwrap())
    }

    #[test]
    fn shapes() {
        let e = email("ada@lovelace.org", TextLimit::default()).unwrap();
        let (local, domain) = e.split_once('@').unwrap();
        assert_eq!(domain, "example.invalid");
        let (given, token) = local.split_once('.').unwrap();
        assert!(given.bytes().all(|b| b.is_ascii_lowercase()));
        assert_eq!(token.len(), TOKEN);
        let narrow = email("ada@lovelace.org", ColumnType::varchar(25).text_limit()).unwrap();
        assert_eq!(narrow.len(), 25);
        assert!(!narrow.contains('.') || narrow.ends_with("example.invalid"));
        assert_eq!(
            email("ada@lovelace.org", ColumnType::varchar(20).text_limit()),
            None
        );
        assert_ne!(email("Ada@lovelace.org", TextLimit::default()), Some(e));
    }
}
