//! FF1 (NIST SP 800-38G Rev. 1, algorithms 7 and 8) with AES-128, for
//! numeral strings of at most 2^120 values: the format-preserving cipher
//! behind every large bijection.
//!
//! The rounds are the standard's, step for step, and the block cipher is
//! the `aes` crate's; nothing here is a cipher of its own. What differs
//! from a general implementation is only how things are held:
//! - a numeral string is its value (`u128`), so splitting it, NUM and STR
//!   are a division, a remainder and nothing;
//! - everything that depends on the domain alone (radix, length, tweak
//!   length) is a [`Domain`], prepared once per key, including the CBC-MAC
//!   state after the block `P`;
//! - a round's `Q` ends in one block holding `[i] || NUM(B)` (`b` is at most
//!   10 bytes here), so each round is one AES block, and `S` is the first
//!   `d <= 16` bytes of that block's output, so it needs no more.
//!
//! No allocation, no big integers. The tests hold it to NIST's AES-128
//! samples and to the `fpe` crate's output on random keys, tweaks, radices
//! and lengths.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes128Enc, Block};

/// Values [`Ff1::encrypt_lanes`] takes at once: AES-NI keeps about this
/// many blocks in flight.
pub(crate) const LANES: usize = 8;
/// Feistel rounds (FF1 has ten).
const ROUNDS: u8 = 10;
/// The standard's smallest domain: radix^n >= 1,000,000.
const MIN_DOMAIN: u128 = 1_000_000;
/// The largest domain held here.
const MAX_DOMAIN: u128 = 1 << 120;

/// FF1 under one AES-128 key.
pub(crate) struct Ff1 {
    aes: Aes128Enc,
}

/// A domain of numeral strings (radix, length) for tweaks of one length,
/// with what FF1 derives from them under one key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Domain {
    /// radix^n: every value is below it.
    size: u128,
    /// radix^u and radix^v, the moduli of the two halves (u = n/2, v = n-u).
    mod_u: u128,
    mod_v: u128,
    /// Bytes of NUM(B) in Q.
    b: u32,
    /// Bytes of S.
    d: u32,
    /// Tweak length in bytes.
    t: usize,
    /// Length of Q in bytes (a multiple of 16).
    q_len: usize,
    /// The radix is a power of two, and so is every modulus.
    pow2: bool,
    /// CIPH_K(P): the CBC-MAC state after P.
    after_p: u128,
}

impl Ff1 {
    pub(crate) fn new(key: &[u8; 16]) -> Ff1 {
        Ff1 {
            aes: Aes128Enc::new(key.into()),
        }
    }

    /// The domain of `n` numerals in base `radix` for tweaks of `t` bytes;
    /// `None` where the standard or this implementation does not reach
    /// (radix outside 2..=2^16, fewer than a million values, more than
    /// 2^120).
    pub(crate) fn domain(&self, radix: u32, n: u32, t: usize) -> Option<Domain> {
        if !(2..=1 << 16).contains(&radix) || n < 2 {
            return None;
        }
        let size = pow(radix, n).filter(|&s| (MIN_DOMAIN..=MAX_DOMAIN).contains(&s))?;
        let u = n / 2;
        let v = n - u;
        let (mod_u, mod_v) = (pow(radix, u)?, pow(radix, v)?);
        // b = ceil(ceil(v * log2(radix)) / 8), and ceil(log2(N)) is the
        // bit length of N - 1.
        let b = (128 - (mod_v - 1).leading_zeros()).div_ceil(8);
        let d = 4 * b.div_ceil(4) + 4;
        let tlen = u32::try_from(t).ok()?;
        // Q = T || [0]^((-t-b-1) mod 16) || [i] || [NUM(B)]^b.
        let q_len = (t + 1 + b as usize).div_ceil(16) * 16;
        let mut p = [1, 2, 1, 0, 0, 0, 10, u as u8, 0, 0, 0, 0, 0, 0, 0, 0];
        p[3..6].copy_from_slice(&radix.to_be_bytes()[1..]);
        p[8..12].copy_from_slice(&n.to_be_bytes());
        p[12..16].copy_from_slice(&tlen.to_be_bytes());
        let after_p = self.ciph(u128::from_be_bytes(p));
        Some(Domain {
            size,
            mod_u,
            mod_v,
            b,
            d,
            t,
            q_len,
            pow2: radix.is_power_of_two(),
            after_p,
        })
        .filter(|dom| dom.d <= 16)
    }

    /// FF1.Encrypt of the numeral string whose value is `x`; `None` if `x`
    /// or the tweak does not fit the domain.
    pub(crate) fn encrypt(&self, dom: &Domain, tweak: &[u8], x: u128) -> Option<u128> {
        let (state, last) = self.start(dom, tweak, x)?;
        let (mut a, mut b) = split(dom, x);
        for i in 0..ROUNDS {
            let c = dom.add_round(i, a, self.ciph(q(dom, state, last, i, b)));
            a = b;
            b = c;
        }
        Some(a * dom.mod_v + b)
    }

    /// [`encrypt`](Self::encrypt) of up to [`LANES`] values, each with its
    /// domain and tweak, into `out`: the same results, with the AES blocks
    /// of one round of every value encrypted together, so the cipher's
    /// pipeline stays full instead of waiting on one value's rounds.
    pub(crate) fn encrypt_lanes(&self, jobs: &[(&Domain, &[u8], u128)], out: &mut [Option<u128>]) {
        let n = jobs.len().min(out.len()).min(LANES);
        let (jobs, out) = (&jobs[..n], &mut out[..n]);
        if let Some(&(dom, ..)) = jobs.first() {
            if dom.is_narrow() && jobs.iter().all(|j| std::ptr::eq(j.0, dom)) {
                return self.encrypt_lanes_narrow(dom, jobs, out);
            }
        }
        let mut lanes = [Lane::default(); LANES];
        for ((lane, &(dom, tweak, x)), y) in lanes.iter_mut().zip(jobs).zip(out.iter_mut()) {
            *y = self.start(dom, tweak, x).map(|(state, last)| {
                let (a, b) = split(dom, x);
                *lane = Lane { state, last, a, b };
                x
            });
        }
        let mut blocks = [Block::default(); LANES];
        for i in 0..ROUNDS {
            for ((block, lane), job) in blocks.iter_mut().zip(&lanes).zip(jobs) {
                *block = q(job.0, lane.state, lane.last, i, lane.b)
                    .to_be_bytes()
                    .into();
            }
            self.aes.encrypt_blocks(&mut blocks[..n]);
            for ((block, lane), job) in blocks.iter().zip(&mut lanes).zip(jobs) {
                let c = job
                    .0
                    .add_round(i, lane.a, u128::from_be_bytes((*block).into()));
                lane.a = lane.b;
                lane.b = c;
            }
        }
        for ((y, lane), job) in out.iter_mut().zip(&lanes).zip(jobs) {
            if y.is_some() {
                *y = Some(lane.a * job.0.mod_v + lane.b);
            }
        }
    }

    /// [`encrypt_lanes`](Self::encrypt_lanes) of values of one narrow
    /// domain ([`Domain::is_narrow`]), the common case (a column of values
    /// of one shape): the halves are 64-bit numbers, NUM(S) is the first
    /// half of a round's output block, and a round's block differs from
    /// the value's fixed part only in its low 64 bits.
    fn encrypt_lanes_narrow(
        &self,
        dom: &Domain,
        jobs: &[(&Domain, &[u8], u128)],
        out: &mut [Option<u128>],
    ) {
        let n = jobs.len();
        let (mut fixed, mut a, mut b) = ([0u128; LANES], [0u64; LANES], [0u64; LANES]);
        for (k, (&(_, tweak, x), y)) in jobs.iter().zip(out.iter_mut()).enumerate() {
            *y = self.start(dom, tweak, x).map(|(state, last)| {
                // Q's last block holds zeros where [i] || NUM(B) go, so
                // OR-ing them in is XOR-ing them in.
                fixed[k] = state ^ last;
                let (xa, xb) = split(dom, x);
                (a[k], b[k]) = (xa as u64, xb as u64);
                x
            });
        }
        let moduli = [dom.mod_u as u64, dom.mod_v as u64];
        let round_shift = 8 * dom.b;
        let mut blocks = [Block::default(); LANES];
        for i in 0..ROUNDS {
            let m = moduli[usize::from(i % 2)];
            for k in 0..n {
                let num = u128::from(u64::from(i) << round_shift | b[k]);
                blocks[k] = (fixed[k] ^ num).to_be_bytes().into();
            }
            self.aes.encrypt_blocks(&mut blocks[..n]);
            for k in 0..n {
                let head: [u8; 8] = blocks[k][..8].try_into().unwrap_or_default();
                let y = u64::from_be_bytes(head);
                let y = if dom.pow2 { y & (m - 1) } else { y % m };
                // a < m and y < m, with m <= 2^32: no overflow.
                let c = a[k] + y;
                let c = if c >= m { c - m } else { c };
                (a[k], b[k]) = (b[k], c);
            }
        }
        for (k, y) in out.iter_mut().enumerate() {
            if y.is_some() {
                *y = Some(u128::from(a[k]) * u128::from(moduli[1]) + u128::from(b[k]));
            }
        }
    }

    /// FF1.Decrypt: the exact inverse of [`encrypt`](Self::encrypt).
    pub(crate) fn decrypt(&self, dom: &Domain, tweak: &[u8], x: u128) -> Option<u128> {
        let (state, last) = self.start(dom, tweak, x)?;
        let (mut a, mut b) = split(dom, x);
        for i in (0..ROUNDS).rev() {
            let y = num_s(dom, self.ciph(q(dom, state, last, i, a)));
            let m = modulus(dom, i);
            let c = add_mod(b, m - dom.reduce(y, m), m);
            b = a;
            a = c;
        }
        Some(a * dom.mod_v + b)
    }

    /// The CBC-MAC state before Q's last block and that block's bytes
    /// taken from T and the padding: the same in all ten rounds.
    fn start(&self, dom: &Domain, tweak: &[u8], x: u128) -> Option<(u128, u128)> {
        if tweak.len() != dom.t || x >= dom.size {
            return None;
        }
        // The permuter's 8-byte tweaks: Q is one block, T its first half.
        if let (16, Ok(t)) = (dom.q_len, <[u8; 8]>::try_from(tweak)) {
            return Some((dom.after_p, u128::from(u64::from_be_bytes(t)) << 64));
        }
        // Q's 16 bytes from `from` on: T, then zeros.
        let block = |from: usize| {
            let mut b = [0; 16];
            if let Some(t) = tweak.get(from..) {
                let n = t.len().min(16);
                b[..n].copy_from_slice(&t[..n]);
            }
            u128::from_be_bytes(b)
        };
        let mut state = dom.after_p;
        for from in (0..dom.q_len - 16).step_by(16) {
            state = self.ciph(state ^ block(from));
        }
        // The last block's low 1 + b bytes, zero here, take [i] || NUM(B)
        // in each round; the bytes above them come from T or are padding.
        Some((state, block(dom.q_len - 16)))
    }

    /// CIPH_K of one block, as a big-endian number.
    #[inline]
    fn ciph(&self, block: u128) -> u128 {
        let mut b = block.to_be_bytes().into();
        self.aes.encrypt_block(&mut b);
        u128::from_be_bytes(b.into())
    }
}

impl Domain {
    /// Whether every value fits 64 bits (so each half fits 32) and S is 8
    /// bytes (b <= 4): every domain of [`super::permute`] but 19 digits.
    fn is_narrow(&self) -> bool {
        self.size <= 1 << 64 && self.d == 8
    }

    /// Round `i` of FF1.Encrypt: C = (NUM(A) + NUM(S)) mod radix^m, with S
    /// taken from the round's AES output `r`.
    #[inline]
    fn add_round(&self, i: u8, a: u128, r: u128) -> u128 {
        let m = modulus(self, i);
        add_mod(a, self.reduce(num_s(self, r), m), m)
    }

    /// `y mod m` for `m` a power of the radix: a mask for binary domains.
    #[inline]
    fn reduce(&self, y: u128, m: u128) -> u128 {
        if self.pow2 {
            y & (m - 1)
        } else {
            rem(y, m)
        }
    }
}

/// One value's FF1.Encrypt under way in [`Ff1::encrypt_lanes`].
#[derive(Clone, Copy, Default)]
struct Lane {
    state: u128,
    last: u128,
    a: u128,
    b: u128,
}

/// The block round `i` encrypts: the CBC-MAC `state` XOR Q's last block,
/// which ends in `[i] || [NUM(B)]^b` (`num` is NUM(B) or, decrypting,
/// NUM(A)).
#[inline]
fn q(dom: &Domain, state: u128, last: u128, i: u8, num: u128) -> u128 {
    state ^ (last | u128::from(i) << (8 * dom.b) | num)
}

/// NUM(S): the first `d` bytes of the round's output `r`.
#[inline]
fn num_s(dom: &Domain, r: u128) -> u128 {
    r >> (8 * (16 - dom.d))
}

/// `(NUM(A), NUM(B))` of the numeral string whose value is `x`.
#[inline]
fn split(dom: &Domain, x: u128) -> (u128, u128) {
    (quot(x, dom.mod_v), rem(x, dom.mod_v))
}

/// radix^m of round `i`: m = u in even rounds, v in odd ones.
#[inline]
fn modulus(dom: &Domain, i: u8) -> u128 {
    if i % 2 == 0 {
        dom.mod_u
    } else {
        dom.mod_v
    }
}

/// `radix^n`, `None` on overflow.
pub(crate) fn pow(radix: u32, n: u32) -> Option<u128> {
    (0..n).try_fold(1u128, |acc, _| acc.checked_mul(u128::from(radix)))
}

/// `(a + b) mod md` for `a, b <= md`.
#[inline]
fn add_mod(a: u128, b: u128, md: u128) -> u128 {
    let s = a + b;
    if s >= md {
        s - md
    } else {
        s
    }
}

/// `a mod md`, without a division when `a` is already reduced or `md` is a
/// power of two, and with a 64-bit one when both fit.
#[inline]
fn rem(a: u128, md: u128) -> u128 {
    if a < md {
        a
    } else if md.is_power_of_two() {
        a & (md - 1)
    } else if let (Ok(a), Ok(m)) = (u64::try_from(a), u64::try_from(md)) {
        u128::from(a % m)
    } else {
        a % md
    }
}

/// `a / d`, with a shift or a 64-bit division when possible.
#[inline]
fn quot(a: u128, d: u128) -> u128 {
    if d.is_power_of_two() {
        a >> d.trailing_zeros()
    } else if let (Ok(a), Ok(d)) = (u64::try_from(a), u64::try_from(d)) {
        u128::from(a / d)
    } else {
        a / d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fpe::ff1::{BinaryNumeralString, FlexibleNumeralString, FF1};
    use proptest::prelude::*;

    const NIST_KEY: &str = "2B7E151628AED2A6ABF7158809CF4F3C";

    fn value(numerals: &[u16], radix: u32) -> u128 {
        numerals
            .iter()
            .fold(0u128, |a, &d| a * u128::from(radix) + u128::from(d))
    }

    /// NIST SP 800-38G FF1 samples 1 to 3 (AES-128): radix 10 without and
    /// with a tweak, and radix 36 with an 11-byte tweak (Q of two blocks).
    #[test]
    fn nist_samples() {
        let key: [u8; 16] = hex::decode(NIST_KEY).unwrap().try_into().unwrap();
        let ff1 = Ff1::new(&key);
        let cases: [(u32, &str, &str, &str); 3] = [
            (10, "", "0123456789", "2433477484"),
            (10, "39383736353433323130", "0123456789", "6124200773"),
            (
                36,
                "3737373770717273373737",
                "0123456789abcdefghi",
                "a9tv40mll9kdu509eum",
            ),
        ];
        for (radix, tweak, pt, ct) in cases {
            let tweak = hex::decode(tweak).unwrap();
            let num = |s: &str| {
                s.chars().fold(0u128, |a, c| {
                    a * u128::from(radix) + u128::from(c.to_digit(36).unwrap())
                })
            };
            let dom = ff1.domain(radix, pt.len() as u32, tweak.len()).unwrap();
            assert_eq!(
                ff1.encrypt(&dom, &tweak, num(pt)),
                Some(num(ct)),
                "radix {radix}"
            );
            assert_eq!(ff1.decrypt(&dom, &tweak, num(ct)), Some(num(pt)));
        }
    }

    #[test]
    fn out_of_reach() {
        let ff1 = Ff1::new(&[1; 16]);
        assert!(ff1.domain(10, 5, 8).is_none(), "under a million values");
        assert!(ff1.domain(2, 19, 8).is_none());
        assert!(ff1.domain(2, 20, 8).is_some());
        assert!(ff1.domain(2, 121, 8).is_none(), "over 2^120");
        assert!(ff1.domain(1, 40, 8).is_none());
        assert!(ff1.domain(1 << 17, 4, 8).is_none());
        let dom = ff1.domain(10, 6, 8).unwrap();
        assert_eq!(ff1.encrypt(&dom, &[0; 8], 1_000_000), None);
        assert_eq!(ff1.encrypt(&dom, &[0; 7], 5), None, "wrong tweak length");
    }

    /// A radix and a length whose domain FF1 and this module both take.
    fn radix_and_len() -> impl Strategy<Value = (u32, u32)> {
        prop_oneof![
            Just(2u32),
            Just(10),
            Just(26),
            Just(36),
            Just(62),
            Just(256),
            Just(1000),
            Just(65536)
        ]
        .prop_flat_map(|radix| {
            let min = (2..)
                .find(|&n| pow(radix, n).unwrap() >= MIN_DOMAIN)
                .unwrap();
            let max = (min..)
                .take_while(|&n| pow(radix, n).is_some_and(|s| s <= MAX_DOMAIN))
                .last()
                .unwrap();
            (Just(radix), min..=max)
        })
    }

    proptest! {
        /// The same ciphertext as `fpe` for any radix, length and tweak.
        #[test]
        fn matches_fpe(
            key in any::<[u8; 16]>(),
            (radix, n) in radix_and_len(),
            seed in any::<u128>(),
            tweak in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let ours = Ff1::new(&key);
            let dom = ours.domain(radix, n, tweak.len()).unwrap();
            let x = seed % pow(radix, n).unwrap();
            let numerals: Vec<u16> = (0..n)
                .rev()
                .map(|k| ((x / pow(radix, k).unwrap()) % u128::from(radix)) as u16)
                .collect();
            let theirs = FF1::<Aes128Enc>::new(&key, radix).unwrap();
            let ct: Vec<u16> = theirs.encrypt(&tweak, &FlexibleNumeralString::from(numerals)).unwrap().into();
            let y = ours.encrypt(&dom, &tweak, x).unwrap();
            prop_assert_eq!(y, value(&ct, radix));
            prop_assert_eq!(ours.decrypt(&dom, &tweak, y), Some(x));
        }

        /// Values encrypted side by side give what they give one at a time:
        /// each in its own domain, or (`shared`) all in the first one's,
        /// which for a domain like the permuter's takes the narrow path;
        /// each with its own tweak, some out of their domain.
        #[test]
        fn lanes_as_one_at_a_time(
            key in any::<[u8; 16]>(),
            shared in any::<bool>(),
            jobs in proptest::collection::vec((
                prop_oneof![radix_and_len(), (20..=64u32).prop_map(|n| (2, n)), (6..=19u32).prop_map(|n| (10, n))],
                any::<u128>(),
                any::<[u8; 8]>(),
                any::<bool>(),
            ), 0..=LANES),
        ) {
            let ff1 = Ff1::new(&key);
            let doms: Vec<Domain> = jobs.iter().map(|&((radix, n), ..)| ff1.domain(radix, n, 8).unwrap()).collect();
            let lanes: Vec<(&Domain, &[u8], u128)> = jobs
                .iter()
                .enumerate()
                .map(|(k, (_, seed, tweak, inside))| {
                    let dom = if shared { &doms[0] } else { &doms[k] };
                    (dom, &tweak[..], if *inside { seed % dom.size } else { dom.size + seed % 7 })
                })
                .collect();
            let mut out = [Some(0); LANES];
            ff1.encrypt_lanes(&lanes, &mut out);
            for (&(dom, tweak, x), y) in lanes.iter().zip(out) {
                prop_assert_eq!(y, ff1.encrypt(dom, tweak, x));
            }
        }

        /// The same as `fpe`'s binary numeral strings, over the widths the
        /// bijections use (an 8-byte tweak).
        #[test]
        fn matches_fpe_binary(key in any::<[u8; 16]>(), bytes in any::<[u8; 8]>(), tweak in any::<[u8; 8]>()) {
            let theirs = FF1::<Aes128Enc>::new(&key, 2).unwrap();
            let ct = theirs.encrypt(&tweak, &BinaryNumeralString::from_bytes_le(&bytes)).unwrap().to_bytes_le();
            // BinaryNumeralString orders a byte's numerals from its low bit.
            let bits = |bs: &[u8]| bs.iter().flat_map(|b| (0..8).map(move |i| (b >> i) & 1)).fold(0u128, |a, bit| (a << 1) | u128::from(bit));
            let ours = Ff1::new(&key);
            let dom = ours.domain(2, 64, 8).unwrap();
            prop_assert_eq!(ours.encrypt(&dom, &tweak, bits(&bytes)), Some(bits(&ct)));
        }
    }
}
