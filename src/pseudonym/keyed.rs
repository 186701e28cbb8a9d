//! Keyed primitives with their key schedules prepared once: AES-CMAC
//! (NIST SP 800-38B) as the PRF behind tokens, words and tweaks, and the
//! set of per-purpose subkeys a [`Pseudonymizer`](super::Pseudonymizer)
//! works with. One tag comes from the `cmac` crate; many at once
//! ([`Prf::tags`]) run the same algorithm over several messages side by
//! side on the `aes` crate, held to the crate and to RFC 4493 by the tests.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes128, Aes128Enc, Block};
use cmac::{Cmac, Mac};

use super::ff1::LANES;
use super::key::{subkey, Key};
use super::permute::Permuter;

/// A PRF output: one AES block.
pub(crate) type Tag = [u8; 16];

/// Prepared CMAC states a thread keeps, by PRF id.
const THREAD_CACHE: usize = 8;

/// A thread's prepared state of one PRF, and the last input it tagged
/// through [`Prf::tag_repeated`].
struct Prepared {
    id: u64,
    mac: Cmac<Aes128Enc>,
    last: Option<(u8, Vec<u8>, Tag)>,
}

thread_local! {
    static MACS: RefCell<Vec<Prepared>> = const { RefCell::new(Vec::new()) };
}

/// Ids telling PRFs apart in the thread caches.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// AES-128-CMAC under one subkey. Each thread keeps its own prepared state
/// (key schedule and CMAC subkeys) per PRF and resets it per message, so a
/// tag costs one AES block per 16 bytes of input and no copy of the state:
/// with AES-NI several times cheaper than HMAC-SHA-256 on the short values
/// pseudonymized row by row.
pub(crate) struct Prf {
    id: u64,
    mac: Cmac<Aes128Enc>,
    /// The same key for [`tags`](Self::tags), with CMAC's subkeys K1, K2.
    aes: Aes128Enc,
    k1: u128,
    k2: u128,
}

impl Prf {
    /// Keyed with the first 16 bytes of a 32-byte subkey.
    pub(crate) fn new(key: &[u8; 32]) -> Prf {
        let aes = Aes128Enc::new(&first16(key).into());
        let mut l = [0u8; 16].into();
        aes.encrypt_block(&mut l);
        // RFC 4493 2.3: K1 = dbl(AES_K(0)), K2 = dbl(K1).
        let dbl = |x: u128| (x << 1) ^ if x >> 127 == 1 { 0x87 } else { 0 };
        let k1 = dbl(u128::from_be_bytes(l.into()));
        Prf {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            mac: <Cmac<Aes128Enc> as KeyInit>::new(&first16(key).into()),
            aes,
            k1,
            k2: dbl(k1),
        }
    }

    /// [`tag`](Self::tag) of `domain` and each of `values`, in order, into
    /// `out`: the same tags, with the AES blocks of [`LANES`] messages
    /// encrypted side by side (AES-CMAC as RFC 4493 computes it; the tests
    /// hold it to the `cmac` crate).
    pub(crate) fn tags(&self, domain: u8, values: &[&[u8]], out: &mut Vec<Tag>) {
        for group in values.chunks(LANES) {
            // CMAC's message is `domain || value`: n blocks, the last one
            // padded (10*) and XORed with K2 unless it is full (K1).
            let blocks = |v: &[u8]| (v.len() + 1).div_ceil(16);
            let steps = group.iter().map(|v| blocks(v)).max().unwrap_or(0);
            let mut state = [0u128; LANES];
            let mut buf = [Block::default(); LANES];
            for step in 0..steps {
                for ((b, x), v) in buf.iter_mut().zip(&state).zip(group) {
                    let n = blocks(v);
                    let m = message_block(domain, v, step.min(n - 1));
                    let m = match step + 1 {
                        s if s < n => m,
                        s if s > n => 0,
                        _ if (v.len() + 1) % 16 == 0 => m ^ self.k1,
                        _ => m ^ 0x80 << (8 * (15 - (v.len() + 1) % 16)) ^ self.k2,
                    };
                    *b = (x ^ m).to_be_bytes().into();
                }
                self.aes.encrypt_blocks(&mut buf[..group.len()]);
                for ((x, b), v) in state.iter_mut().zip(&buf).zip(group) {
                    if step < blocks(v) {
                        *x = u128::from_be_bytes((*b).into());
                    }
                }
            }
            out.extend(state.iter().take(group.len()).map(|x| x.to_be_bytes()));
        }
    }

    /// The tag of `domain` (a one-byte label separating uses of this key)
    /// followed by `data`.
    pub(crate) fn tag(&self, domain: u8, data: &[u8]) -> Tag {
        self.with(|p| compute(&mut p.mac, domain, data))
    }

    /// [`tag`](Self::tag) for inputs that mostly repeat (the layout of a
    /// column's values): the thread remembers the last one.
    pub(crate) fn tag_repeated(&self, domain: u8, data: &[u8]) -> Tag {
        self.with(|p| match &mut p.last {
            Some((d, last, tag)) if *d == domain && last == data => *tag,
            last => {
                let tag = compute(&mut p.mac, domain, data);
                let (d, buf, t) = last.get_or_insert_with(|| (domain, Vec::new(), tag));
                *d = domain;
                buf.clear();
                buf.extend_from_slice(data);
                *t = tag;
                tag
            }
        })
    }

    /// Runs `f` on this thread's prepared state of this PRF.
    fn with<R>(&self, f: impl FnOnce(&mut Prepared) -> R) -> R {
        MACS.with(|cache| {
            let mut cache = cache.borrow_mut();
            let at = match cache.iter().position(|p| p.id == self.id) {
                Some(at) => at,
                None => {
                    if cache.len() == THREAD_CACHE {
                        cache.remove(0);
                    }
                    cache.push(Prepared {
                        id: self.id,
                        mac: self.mac.clone(),
                        last: None,
                    });
                    cache.len() - 1
                }
            };
            f(&mut cache[at])
        })
    }
}

/// Block `i` of the message `domain || v`, zero-filled past its end.
fn message_block(domain: u8, v: &[u8], i: usize) -> u128 {
    if i == 0 {
        return u128::from(domain) << 120 | be_block(&v[..v.len().min(15)]) >> 8;
    }
    match v.get(16 * i - 1..) {
        Some(rest) => be_block(&rest[..rest.len().min(16)]),
        None => 0,
    }
}

/// `s` (at most 16 bytes) zero-filled to a block, read big-endian.
///
/// Read from `s` itself in two overlapping loads, not copied into a zeroed
/// block on the stack first: a wide load of bytes just stored narrower
/// waits for the stores to retire (about 40% of the CMAC tags' own time
/// went there).
#[inline]
fn be_block(s: &[u8]) -> u128 {
    let n = s.len();
    // The head is the block's first bytes; the tail, the last bytes of
    // `s`, moves to where they are in the block. Bytes both loads hold are
    // the same, so OR-ing them keeps them.
    let tail_shift = 8 * 16u32.saturating_sub(n as u32);
    match n {
        8..=16 => {
            let head = u64::from_be_bytes(s[..8].try_into().unwrap_or_default());
            let tail = u64::from_be_bytes(s[n - 8..].try_into().unwrap_or_default());
            u128::from(head) << 64 | u128::from(tail) << tail_shift
        }
        4..=7 => {
            let head = u32::from_be_bytes(s[..4].try_into().unwrap_or_default());
            let tail = u32::from_be_bytes(s[n - 4..].try_into().unwrap_or_default());
            u128::from(head) << 96 | u128::from(tail) << tail_shift
        }
        1..=3 => {
            let byte = |j: usize| u128::from(s[j]) << (8 * (15 - j as u32));
            byte(0) | byte(n / 2) | byte(n - 1)
        }
        _ => 0,
    }
}

/// CMAC of `domain || data` with a prepared state, left ready for reuse.
fn compute(mac: &mut Cmac<Aes128Enc>, domain: u8, data: &[u8]) -> Tag {
    Mac::reset(mac);
    Mac::update(mac, &[domain]);
    Mac::update(mac, data);
    mac.finalize_reset().into_bytes().into()
}

/// Every subkey, derived once per key.
pub(crate) struct Keyring {
    /// Format-preserving permutations: integers, shapes, digits.
    pub(crate) permuter: Permuter,
    /// AES-128 over the 128 bits of a uuid.
    pub(crate) uuid: Aes128,
    /// Tokens and the tweaks of shape permutations.
    pub(crate) token: Prf,
    /// Email local parts.
    pub(crate) email: Prf,
    /// Person names, addresses and replacement text.
    pub(crate) words: Prf,
    /// Date shifts (AES-128 of the day).
    pub(crate) date: Aes128Enc,
}

impl Keyring {
    pub(crate) fn new(key: &Key) -> Keyring {
        let s = key.secret();
        let ff1 = subkey(s, "ff1");
        let rank = subkey(s, "rank");
        let uuid = subkey(s, "uuid");
        Keyring {
            permuter: Permuter::new(&first16(&ff1), &first16(&rank)),
            uuid: Aes128::new(&first16(&uuid).into()),
            token: Prf::new(&subkey(s, "token")),
            email: Prf::new(&subkey(s, "email")),
            words: Prf::new(&subkey(s, "words")),
            date: Aes128Enc::new(&first16(&subkey(s, "date")).into()),
        }
    }
}

fn first16(k: &[u8; 32]) -> [u8; 16] {
    let mut out = [0; 16];
    out.copy_from_slice(&k[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4493 example 2: the domain byte is the message's first byte.
    #[test]
    fn is_aes_cmac() {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap());
        let msg = hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap();
        let tag = Prf::new(&key).tag(msg[0], &msg[1..]);
        assert_eq!(hex::encode(tag), "070a16b46b4d4144f79bdd9dd04a287c");
    }

    proptest::proptest! {
        /// Many tags at once are the `cmac` crate's, whatever the lengths.
        #[test]
        fn many_tags_are_the_tags(
            key in proptest::prelude::any::<[u8; 32]>(),
            domain in proptest::prelude::any::<u8>(),
            values in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..70), 0..20),
        ) {
            let prf = Prf::new(&key);
            let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let mut tags = Vec::new();
            prf.tags(domain, &values, &mut tags);
            let one_each: Vec<Tag> = values.iter().map(|v| prf.tag(domain, v)).collect();
            proptest::prop_assert_eq!(tags, one_each);
        }
    }

    proptest::proptest! {
        /// A block read in overlapping loads is the bytes zero-filled.
        #[test]
        fn blocks_are_the_bytes_zero_filled(s in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=16)) {
            let mut b = [0u8; 16];
            b[..s.len()].copy_from_slice(&s);
            proptest::prop_assert_eq!(be_block(&s), u128::from_be_bytes(b));
        }
    }

    /// RFC 4493 examples 1 to 4, the domain byte as the message's first.
    #[test]
    fn many_tags_are_aes_cmac() {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap());
        let msg = hex::decode(concat!(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51",
            "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
        ))
        .unwrap();
        let prf = Prf::new(&key);
        let mut tags = Vec::new();
        prf.tags(msg[0], &[&msg[1..16], &msg[1..40], &msg[1..]], &mut tags);
        let want = [
            "070a16b46b4d4144f79bdd9dd04a287c",
            "dfa66747de9ae63030ca32611497c827",
            "51f0bebf7e3b9d92fc49741779363cfe",
        ];
        assert_eq!(tags.iter().map(hex::encode).collect::<Vec<_>>(), want);
    }

    #[test]
    fn remembered_tags_are_the_tags() {
        let (a, b) = (Prf::new(&[1; 32]), Prf::new(&[2; 32]));
        let inputs: [(u8, &[u8]); 5] = [
            (b's', b"x"),
            (b's', b"x"),
            (b't', b"x"),
            (b's', b""),
            (b's', b"x"),
        ];
        for (domain, data) in inputs {
            assert_eq!(a.tag_repeated(domain, data), a.tag(domain, data));
            assert_eq!(b.tag_repeated(domain, data), b.tag(domain, data));
            assert_ne!(a.tag(domain, data), b.tag(domain, data));
        }
        assert_ne!(a.tag(b's', b"x"), a.tag(b't', b"x"));
    }
}
