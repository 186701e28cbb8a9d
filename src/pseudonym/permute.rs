//! Keyed permutations of `[0, m)`, the engine behind every bijection.
//!
//! - `m >= RANK_LIMIT`: NIST SP 800-38G FF1 (the `fpe` crate) with AES-128
//!   over the smallest binary domain of at least 20 bits (the standard's
//!   minimum of a million values) holding `m`, with cycle-walking: encrypt
//!   again until the result falls inside `[0, m)`. Fewer than two encryptions
//!   on average once `m >= 2^20`. A power of ten whose walk would be long
//!   (ten digits: 1.72 encryptions) is taken as decimal numerals instead.
//!   The 8-byte tweak fits in FF1's per-round block, so it costs nothing;
//!   callers derive it so that it also determines `m`.
//! - `m < RANK_LIMIT`: the rank permutation. Every `i < m` gets the AES
//!   tag of `(tweak, m, i)` (AES-CBC-MAC over two fixed-length blocks) and
//!   `x` maps to the rank of its tag among them (ties, which need a 64-bit
//!   collision, broken by index): a keyed uniform permutation for small
//!   domains, where cycle-walking would take too long. It is computed once
//!   per domain as a [`RankTable`] and kept in a small cache (a column of
//!   short codes reuses one table); the integer bijection keeps its own
//!   tables of up to 2^20 values.
//!
//! The numerals FF1 works on are held in a `u128` ([`Numerals`]): `fpe`
//! runs the algorithm, this file only supplies the numeral arithmetic the
//! crate's `NumeralString` trait asks for, without big integers. `fpe`
//! clones its cipher for every round; [`SharedAes`] makes that clone a
//! reference-count increment, and each thread keeps its own FF1 instance
//! per key so no count is shared between threads.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aes::cipher::consts::U16;
use aes::cipher::{BlockCipher, BlockClosure, BlockEncrypt, BlockSizeUser, KeyInit, KeySizeUser};
use aes::Aes128Enc;
use fpe::ff1::{NumeralString, Operations, FF1};

/// Below this domain size the rank permutation is used.
pub(crate) const RANK_LIMIT: u64 = 1 << 16;
/// Rank tables of small domains kept at once (at most 512 KiB each).
const CACHED_TABLES: usize = 16;
/// FF1's smallest binary domain: 2^20 >= 1,000,000 (SP 800-38G Rev. 1).
const MIN_BITS: u32 = 20;

/// A tweak: separates the permutations of different domains under one key.
pub(crate) type Tweak = [u8; 8];

/// AES-128 (encryption only) behind a thread-local reference count: the
/// cipher `fpe` clones each round. Only the `aes` crate encrypts.
#[derive(Clone)]
pub(crate) struct SharedAes(Rc<Aes128Enc>);

impl BlockSizeUser for SharedAes {
    type BlockSize = U16;
}

impl BlockCipher for SharedAes {}

impl BlockEncrypt for SharedAes {
    fn encrypt_with_backend(&self, f: impl BlockClosure<BlockSize = U16>) {
        self.0.encrypt_with_backend(f)
    }
}

impl KeySizeUser for SharedAes {
    type KeySize = U16;
}

impl KeyInit for SharedAes {
    fn new(key: &aes::cipher::Key<Self>) -> SharedAes {
        SharedAes(Rc::new(Aes128Enc::new(key)))
    }
}

/// FF1 instances a thread keeps, by permuter id and radix.
const THREAD_CACHE: usize = 8;

/// A thread's FF1 instance of one permuter key and radix.
type CachedFf1 = ((u64, u32), Rc<FF1<SharedAes>>);

thread_local! {
    static FF1S: RefCell<Vec<CachedFf1>> = const { RefCell::new(Vec::new()) };
}

/// Ids telling permuters apart in the thread caches.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Keyed permutations of integer ranges.
pub(crate) struct Permuter {
    id: u64,
    ff1_key: [u8; 16],
    rank: Aes128Enc,
    tables: Mutex<HashMap<(Tweak, u64), Arc<RankTable>>>,
}

impl Permuter {
    pub(crate) fn new(ff1_key: &[u8; 16], rank_key: &[u8; 16]) -> Permuter {
        Permuter {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            ff1_key: *ff1_key,
            rank: Aes128Enc::new(rank_key.into()),
            tables: Mutex::new(HashMap::new()),
        }
    }

    /// This thread's FF1 instance for this permuter's key and `radix`.
    fn ff1(&self, radix: u32) -> Rc<FF1<SharedAes>> {
        FF1S.with(|cache| {
            let mut cache = cache.borrow_mut();
            let key = (self.id, radix);
            if let Some((_, f)) = cache.iter().find(|(k, _)| *k == key) {
                return Rc::clone(f);
            }
            let f =
                Rc::new(FF1::new(&self.ff1_key, radix).expect("radix 2 and 10 are valid for FF1"));
            if cache.len() == THREAD_CACHE {
                cache.remove(0);
            }
            cache.push((key, Rc::clone(&f)));
            f
        })
    }

    /// The image of `x` under the permutation of `[0, m)` named by `tweak`;
    /// `None` if `x >= m`.
    pub(crate) fn forward(&self, tweak: Tweak, m: u64, x: u64) -> Option<u64> {
        self.walk(tweak, m, x, true)
    }

    /// The exact inverse of [`forward`](Self::forward).
    pub(crate) fn inverse(&self, tweak: Tweak, m: u64, y: u64) -> Option<u64> {
        self.walk(tweak, m, y, false)
    }

    fn walk(&self, tweak: Tweak, m: u64, x: u64, forward: bool) -> Option<u64> {
        if x >= m {
            return None;
        }
        if m == 1 {
            return Some(0);
        }
        if m < RANK_LIMIT {
            let table = self.small_table(tweak, m);
            return if forward {
                table.forward(x)
            } else {
                table.inverse(x)
            };
        }
        let (radix, len) = ff1_domain(m);
        let ff1 = self.ff1(radix);
        let mut v = x;
        loop {
            let n = Numerals::new(u128::from(v), len, radix)?;
            let r = if forward {
                ff1.encrypt(&tweak, &n)
            } else {
                ff1.decrypt(&tweak, &n)
            };
            v = u64::try_from(r.ok()?.value).ok()?;
            if v < m {
                return Some(v);
            }
        }
    }

    /// The sort keys of `0..m` in index order: the high 64 bits of each
    /// index's AES tag, then the index.
    fn rank_keys(&self, tweak: Tweak, m: u64) -> Vec<u128> {
        let mut base = [0u8; 16];
        base[..8].copy_from_slice(&tweak);
        base[8..].copy_from_slice(&m.to_be_bytes());
        let mut base = base.into();
        self.rank.encrypt_block(&mut base);
        let base = u128::from_be_bytes(base.into());
        let mut keys = Vec::with_capacity(usize::try_from(m).unwrap_or(0));
        let mut blocks = [[0u8; 16].into(); 64];
        let mut i = 0u64;
        while i < m {
            let n = (m - i).min(64) as usize;
            for (j, b) in blocks[..n].iter_mut().enumerate() {
                *b = (base ^ u128::from(i + j as u64)).to_be_bytes().into();
            }
            self.rank.encrypt_blocks(&mut blocks[..n]);
            for (j, b) in blocks[..n].iter().enumerate() {
                let tag = u128::from_be_bytes((*b).into());
                keys.push((tag >> 64) << 64 | u128::from(i + j as u64));
            }
            i += n as u64;
        }
        keys
    }

    /// The cached rank table of a small domain.
    fn small_table(&self, tweak: Tweak, m: u64) -> Arc<RankTable> {
        let cached = |t: &Mutex<HashMap<_, Arc<RankTable>>>| {
            t.lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(tweak, m))
                .cloned()
        };
        if let Some(t) = cached(&self.tables) {
            return t;
        }
        let table = Arc::new(self.rank_table(tweak, m));
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if tables.len() >= CACHED_TABLES {
            tables.clear();
        }
        tables.insert((tweak, m), Arc::clone(&table));
        table
    }

    /// The rank permutation of `[0, m)` for `m <= 2^20`, as lookup tables.
    pub(crate) fn rank_table(&self, tweak: Tweak, m: u64) -> RankTable {
        let mut keys = self.rank_keys(tweak, m.min(1 << 20));
        keys.sort_unstable();
        let inv: Vec<u32> = keys.iter().map(|&k| k as u32).collect();
        drop(keys);
        let mut fwd = vec![0u32; inv.len()];
        for (r, &i) in inv.iter().enumerate() {
            fwd[i as usize] = r as u32;
        }
        RankTable { fwd, inv }
    }
}

/// How FF1 numbers a domain of `m >= RANK_LIMIT` values: `(radix,
/// numerals)`. Binary, the smallest width of at least [`MIN_BITS`] bits
/// holding `m`, unless `m` is a power of ten of at least a million (the
/// digits of a phone number, a code) whose binary walk would take 1.3 or
/// more encryptions on average: then decimal, exactly `m` values, no walk
/// (a decimal encryption costs about 1.3 binary ones: its numerals need
/// divisions).
fn ff1_domain(m: u64) -> (u32, u32) {
    let bits = (64 - (m - 1).leading_zeros()).max(MIN_BITS);
    let decimal = (m.trailing_zeros() >= 6)
        .then(|| POW10[6..20].iter().position(|&p| p == u128::from(m)))
        .flatten();
    match decimal {
        Some(k) if (1u128 << bits) * 10 >= u128::from(m) * 13 => (10, k as u32 + 6),
        _ => (2, bits),
    }
}

/// The rank permutation of one domain, computed once.
pub(crate) struct RankTable {
    fwd: Vec<u32>,
    inv: Vec<u32>,
}

impl RankTable {
    pub(crate) fn forward(&self, x: u64) -> Option<u64> {
        self.fwd
            .get(usize::try_from(x).ok()?)
            .map(|&v| u64::from(v))
    }

    pub(crate) fn inverse(&self, y: u64) -> Option<u64> {
        self.inv
            .get(usize::try_from(y).ok()?)
            .map(|&v| u64::from(v))
    }
}

/// A numeral string of `len` numerals in base `radix`, most significant
/// first, held as its value. `radix^len` must stay below 2^120.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Numerals {
    pub(crate) value: u128,
    len: u32,
    radix: u32,
}

impl Numerals {
    /// `None` when `value` has more than `len` numerals or the domain is
    /// too large for `u128` arithmetic.
    pub(crate) fn new(value: u128, len: u32, radix: u32) -> Option<Numerals> {
        let limit = pow(radix, len)?;
        if limit > 1 << 120 || value >= limit {
            return None;
        }
        Some(Numerals { value, len, radix })
    }
}

/// `radix^n`, `None` on overflow.
fn pow(radix: u32, n: u32) -> Option<u128> {
    if radix.is_power_of_two() {
        let bits = radix.trailing_zeros().checked_mul(n)?;
        return 1u128.checked_shl(bits).filter(|_| bits < 128);
    }
    if radix == 10 {
        if let Some(&p) = POW10.get(n as usize) {
            return Some(p);
        }
    }
    (0..n).try_fold(1u128, |acc, _| acc.checked_mul(u128::from(radix)))
}

/// `radix^n` for numeral strings already checked by [`Numerals::new`].
#[inline]
fn modulus(radix: u32, n: usize) -> u128 {
    pow(radix, n as u32).unwrap_or(u128::MAX)
}

/// `10^n` for every `n` a [`Numerals`] may hold.
static POW10: [u128; 37] = {
    let mut t = [1u128; 37];
    let mut i = 1;
    while i < t.len() {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// `a mod md`, without a division when `a` is already reduced and with a
/// 64-bit one when both fit.
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

/// Up to 16 big-endian bytes.
pub(crate) struct BeBytes {
    buf: [u8; 16],
    start: usize,
}

impl AsRef<[u8]> for BeBytes {
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

impl Operations for Numerals {
    type Bytes = BeBytes;

    fn numeral_count(&self) -> usize {
        self.len as usize
    }

    fn to_be_bytes(&self, _radix: u32, b: usize) -> BeBytes {
        BeBytes {
            buf: self.value.to_be_bytes(),
            start: 16 - b.min(16),
        }
    }

    fn add_mod_exp(self, other: impl Iterator<Item = u8>, radix: u32, m: usize) -> Self {
        let md = modulus(radix, m);
        let y = reduce(other, md, radix);
        Numerals {
            value: add_mod(rem(self.value, md), y, md),
            len: m as u32,
            radix,
        }
    }

    fn sub_mod_exp(self, other: impl Iterator<Item = u8>, radix: u32, m: usize) -> Self {
        let md = modulus(radix, m);
        let y = reduce(other, md, radix);
        Numerals {
            value: add_mod(rem(self.value, md), md - y, md),
            len: m as u32,
            radix,
        }
    }
}

/// `(a + b) mod md` for `a, b <= md`.
fn add_mod(a: u128, b: u128, md: u128) -> u128 {
    let s = a + b;
    if s >= md {
        s - md
    } else {
        s
    }
}

/// NUM(bytes) mod `md`, big-endian.
#[inline(always)]
fn reduce(bytes: impl Iterator<Item = u8>, md: u128, radix: u32) -> u128 {
    if radix.is_power_of_two() {
        if let Ok(mask) = u64::try_from(md - 1) {
            return u128::from(bytes.fold(0u64, |acc, b| (acc << 8) | u64::from(b)) & mask);
        }
        let mask = md - 1;
        bytes.fold(0u128, |acc, b| ((acc << 8) | u128::from(b)) & mask)
    } else {
        let acc = bytes.fold(0u128, |acc, b| {
            let acc = if acc >> 120 == 0 { acc } else { rem(acc, md) };
            (acc << 8) | u128::from(b)
        });
        rem(acc, md)
    }
}

impl NumeralString for Numerals {
    type Ops = Numerals;

    fn is_valid(&self, radix: u32) -> bool {
        radix == self.radix && pow(radix, self.len).is_some_and(|l| self.value < l)
    }

    fn numeral_count(&self) -> usize {
        self.len as usize
    }

    fn split(&self) -> (Numerals, Numerals) {
        let u = self.len / 2;
        let v = self.len - u;
        let low = modulus(self.radix, v as usize);
        (
            Numerals {
                value: quot(self.value, low),
                len: u,
                radix: self.radix,
            },
            Numerals {
                value: rem(self.value, low),
                len: v,
                radix: self.radix,
            },
        )
    }

    fn concat(a: Numerals, b: Numerals) -> Numerals {
        Numerals {
            value: a.value * modulus(a.radix, b.len as usize) + b.value,
            len: a.len + b.len,
            radix: a.radix,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fpe::ff1::{BinaryNumeralString, FlexibleNumeralString};
    use proptest::prelude::*;

    fn permuter() -> Permuter {
        Permuter::new(&[7; 16], &[9; 16])
    }

    fn digits(v: &[u16]) -> u128 {
        v.iter().fold(0u128, |a, &d| a * 10 + u128::from(d))
    }

    /// NIST SP 800-38G FF1 samples 1 and 2 (AES-128, radix 10).
    #[test]
    fn nist_vectors() {
        let key = hex::decode("2B7E151628AED2A6ABF7158809CF4F3C").unwrap();
        let ff1 = FF1::<Aes128Enc>::new(&key, 10).unwrap();
        let pt = Numerals::new(123456789, 10, 10).unwrap();
        assert_eq!(ff1.encrypt(&[], &pt).unwrap().value, 2433477484);
        let tweak = hex::decode("39383736353433323130").unwrap();
        let ct = ff1.encrypt(&tweak, &pt).unwrap();
        assert_eq!(ct.value, 6124200773);
        assert_eq!(ff1.decrypt(&tweak, &ct).unwrap(), pt);
    }

    proptest! {
        /// Our numerals give exactly what fpe's own big-integer numeral
        /// strings give: fpe runs FF1, we only hold the numbers.
        #[test]
        fn matches_fpe_radix10(ds in proptest::collection::vec(0u16..10, 6..30), tweak in any::<[u8; 5]>()) {
            let key = [3u8; 16];
            let ff1 = FF1::<Aes128Enc>::new(&key, 10).unwrap();
            let theirs: Vec<u16> = ff1.encrypt(&tweak, &FlexibleNumeralString::from(ds.clone())).unwrap().into();
            let ours = ff1.encrypt(&tweak, &Numerals::new(digits(&ds), ds.len() as u32, 10).unwrap()).unwrap();
            prop_assert_eq!(ours.value, digits(&theirs));
        }

        #[test]
        fn matches_fpe_radix2(bytes in any::<[u8; 8]>(), tweak in any::<[u8; 16]>()) {
            let ff1 = FF1::<Aes128Enc>::new(&[5u8; 16], 2).unwrap();
            let theirs = ff1.encrypt(&tweak, &BinaryNumeralString::from_bytes_le(&bytes)).unwrap().to_bytes_le();
            // BinaryNumeralString orders numerals by little-endian bit order per byte.
            let bits = |bs: &[u8]| bs.iter().flat_map(|b| (0..8).map(move |i| (b >> i) & 1)).fold(0u128, |a, bit| (a << 1) | u128::from(bit));
            let ours = ff1.encrypt(&tweak, &Numerals::new(bits(&bytes), 64, 2).unwrap()).unwrap();
            prop_assert_eq!(ours.value, bits(&theirs));
            let shared = FF1::<SharedAes>::new(&[5u8; 16], 2).unwrap();
            let again = shared.encrypt(&tweak, &Numerals::new(bits(&bytes), 64, 2).unwrap()).unwrap();
            prop_assert_eq!(again, ours);
        }

        #[test]
        fn decimal_ranges_round_trip(k in 6u32..20, x in any::<u64>(), tweak in any::<[u8; 8]>()) {
            let p = permuter();
            let m = 10u64.pow(k);
            let x = x % m;
            let y = p.forward(tweak, m, x).unwrap();
            prop_assert!(y < m);
            prop_assert_eq!(p.inverse(tweak, m, y), Some(x));
        }

        #[test]
        fn ranges_round_trip(m in 2u64..u64::MAX, x in any::<u64>(), tweak in any::<[u8; 8]>()) {
            let p = permuter();
            let x = x % m;
            let y = p.forward(tweak, m, x).unwrap();
            prop_assert!(y < m);
            prop_assert_eq!(p.inverse(tweak, m, y), Some(x));
        }
    }

    #[test]
    fn decimal_domains_when_the_binary_walk_is_long() {
        assert_eq!(ff1_domain(10_000_000_000), (10, 10));
        assert_eq!(ff1_domain(10_000_000), (10, 7));
        assert_eq!(ff1_domain(1_000_000_000), (2, 30));
        assert_eq!(ff1_domain(1_000_000_000_000), (2, 40));
        assert_eq!(ff1_domain(100_000), (2, 20));
        assert_eq!(ff1_domain(20_000_000_000), (2, 35));
        assert_eq!(ff1_domain(1 << 40), (2, 40));
    }

    #[test]
    fn small_domains_are_permutations() {
        let p = permuter();
        for m in [2u64, 3, 10, 100, 999, 4095, 4096, 5000] {
            let mut seen = vec![false; m as usize];
            let limit = if m <= 100 { m } else { 4 };
            for x in 0..limit {
                let y = p.forward(*b"tiny....", m, x).unwrap();
                assert!(!seen[y as usize], "collision in [0,{m})");
                seen[y as usize] = true;
                assert_eq!(p.inverse(*b"tiny....", m, y), Some(x));
            }
            if m <= 100 {
                assert!(seen.iter().all(|&s| s));
            }
        }
        assert_eq!(p.forward(*b"tiny....", 10, 10), None);
    }

    #[test]
    fn rank_tables_rank_the_tags() {
        let p = permuter();
        let keys = p.rank_keys(*b"table...", 300);
        let t = p.rank_table(*b"table...", 300);
        for x in 0..300u64 {
            let r = keys.iter().filter(|&&k| k < keys[x as usize]).count() as u64;
            assert_eq!(t.forward(x), Some(r));
            assert_eq!(t.inverse(r), Some(x));
        }
        for m in 2..(2 + CACHED_TABLES as u64 + 3) {
            let y = p.forward(*b"evict...", m, 1).unwrap();
            assert_eq!(p.inverse(*b"evict...", m, y), Some(1));
        }
        assert!(p.tables.lock().unwrap().len() <= CACHED_TABLES);
    }
}
