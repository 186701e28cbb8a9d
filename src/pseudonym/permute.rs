//! Keyed permutations of `[0, m)`, the engine behind every bijection.
//!
//! - `m >= RANK_LIMIT`: NIST SP 800-38G FF1 ([`super::ff1`]) with AES-128
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
//!   A permuter prepares every FF1 domain its ranges can use once, at
//!   construction.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128Enc;

use super::ff1::{Domain, Ff1, LANES};

/// Below this domain size the rank permutation is used.
pub(crate) const RANK_LIMIT: u64 = 1 << 16;
/// Rank tables of small domains kept at once (at most 512 KiB each).
const CACHED_TABLES: usize = 16;
/// FF1's smallest binary domain: 2^20 >= 1,000,000 (SP 800-38G Rev. 1).
const MIN_BITS: u32 = 20;
/// The decimal domains: 10^6 to 10^19 values.
const MIN_DIGITS: u32 = 6;
const MAX_DIGITS: u32 = 19;

/// A tweak: separates the permutations of different domains under one key.
pub(crate) type Tweak = [u8; 8];

/// Scratch space of [`Permuter::forward_many`]: the values still walking
/// (index in the jobs, domain, current value), this pass and the next.
#[derive(Default)]
pub(crate) struct Walk {
    walking: Vec<(usize, usize, u128)>,
    next: Vec<(usize, usize, u128)>,
}

/// Keyed permutations of integer ranges.
pub(crate) struct Permuter {
    ff1: Ff1,
    /// FF1 domains of 8-byte tweaks: binary from 20 to 64 bits, then decimal
    /// from 6 to 19 digits.
    domains: Vec<Domain>,
    rank: Aes128Enc,
    tables: Mutex<HashMap<(Tweak, u64), Arc<RankTable>>>,
}

impl Permuter {
    pub(crate) fn new(ff1_key: &[u8; 16], rank_key: &[u8; 16]) -> Permuter {
        let ff1 = Ff1::new(ff1_key);
        let shapes = (MIN_BITS..=64)
            .map(|n| (2, n))
            .chain((MIN_DIGITS..=MAX_DIGITS).map(|n| (10, n)));
        let domains = shapes
            .map(|(radix, n)| {
                ff1.domain(radix, n, std::mem::size_of::<Tweak>())
                    .expect("binary and decimal domains of u64 values suit FF1")
            })
            .collect();
        Permuter {
            ff1,
            domains,
            rank: Aes128Enc::new(rank_key.into()),
            tables: Mutex::new(HashMap::new()),
        }
    }

    /// The prepared FF1 domain for `(radix, n)` from [`ff1_domain`].
    fn domain(&self, shape: (u32, u32)) -> &Domain {
        &self.domains[domain_index(shape)]
    }

    /// The image of `x` under the permutation of `[0, m)` named by `tweak`;
    /// `None` if `x >= m`.
    pub(crate) fn forward(&self, tweak: Tweak, m: u64, x: u64) -> Option<u64> {
        self.walk(tweak, m, x, true)
    }

    /// [`forward`](Self::forward) of every `(tweak, m, x)` of `jobs`, in
    /// order, into `out`: the same images, with the FF1 encryptions of
    /// [`LANES`] values run together (a value whose walk goes on takes
    /// another lane in the next pass). `walk` is scratch space.
    pub(crate) fn forward_many(
        &self,
        jobs: &[(Tweak, u64, u64)],
        out: &mut Vec<Option<u64>>,
        walk: &mut Walk,
    ) {
        out.clear();
        let Walk { walking, next } = walk;
        walking.clear();
        // Values of one column mostly share a domain: the last one's index.
        let mut last = (0, 0);
        for (i, &(tweak, m, x)) in jobs.iter().enumerate() {
            if m < RANK_LIMIT || x >= m {
                out.push(self.forward(tweak, m, x));
            } else {
                out.push(None);
                if last.0 != m {
                    last = (m, domain_index(ff1_domain(m)));
                }
                walking.push((i, last.1, u128::from(x)));
            }
        }
        let mut ys = [None; LANES];
        while !walking.is_empty() {
            next.clear();
            for group in walking.chunks(LANES) {
                let mut lanes = [(&self.domains[0], &[][..], 0); LANES];
                for (lane, &(i, dom, v)) in lanes.iter_mut().zip(group) {
                    *lane = (&self.domains[dom], &jobs[i].0[..], v);
                }
                self.ff1.encrypt_lanes(&lanes[..group.len()], &mut ys);
                for (&(i, dom, _), y) in group.iter().zip(ys) {
                    match y {
                        Some(v) if v < u128::from(jobs[i].1) => out[i] = u64::try_from(v).ok(),
                        Some(v) => next.push((i, dom, v)),
                        None => {}
                    }
                }
            }
            std::mem::swap(walking, next);
        }
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
        let dom = self.domain(ff1_domain(m));
        let mut v = u128::from(x);
        loop {
            v = if forward {
                self.ff1.encrypt(dom, &tweak, v)?
            } else {
                self.ff1.decrypt(dom, &tweak, v)?
            };
            if v < u128::from(m) {
                return u64::try_from(v).ok();
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
/// more encryptions on average: then decimal, exactly `m` values, no walk.
/// The choice fixes the stand-ins a key gives, so it stays as it is.
fn ff1_domain(m: u64) -> (u32, u32) {
    let bits = (64 - (m - 1).leading_zeros()).max(MIN_BITS);
    let decimal = (m.trailing_zeros() >= MIN_DIGITS)
        .then(|| (MIN_DIGITS..=MAX_DIGITS).find(|&k| 10u64.pow(k) == m))
        .flatten();
    match decimal {
        Some(k) if (1u128 << bits) * 10 >= u128::from(m) * 13 => (10, k),
        _ => (2, bits),
    }
}

/// Where the domain `(radix, n)` of [`ff1_domain`] is among a permuter's
/// prepared domains.
fn domain_index((radix, n): (u32, u32)) -> usize {
    let at = if radix == 2 {
        n - MIN_BITS
    } else {
        65 - MIN_BITS + n - MIN_DIGITS
    };
    at as usize
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

#[cfg(test)]
mod tests {
    use super::super::ff1::pow;
    use super::*;
    use fpe::ff1::{FlexibleNumeralString, FF1};
    use proptest::prelude::*;

    fn permuter() -> Permuter {
        Permuter::new(&[7; 16], &[9; 16])
    }

    /// The walk as it was first written, on the `fpe` crate's FF1 and its
    /// own numeral strings: the stand-ins every key has given since.
    fn walk_with_fpe(key: &[u8; 16], tweak: Tweak, m: u64, x: u64) -> u64 {
        let (radix, n) = ff1_domain(m);
        let ff1 = FF1::<Aes128Enc>::new(key, radix).unwrap();
        let mut v = u128::from(x);
        loop {
            let numerals: Vec<u16> = (0..n)
                .rev()
                .map(|k| ((v / pow(radix, k).unwrap()) % u128::from(radix)) as u16)
                .collect();
            let ct: Vec<u16> = ff1
                .encrypt(&tweak, &FlexibleNumeralString::from(numerals))
                .unwrap()
                .into();
            v = ct
                .iter()
                .fold(0, |a, &d| a * u128::from(radix) + u128::from(d));
            if v < u128::from(m) {
                return v as u64;
            }
        }
    }

    proptest! {
        /// Same stand-ins as the `fpe` walk, binary and decimal domains.
        #[test]
        fn walks_as_fpe(
            m in prop_oneof![RANK_LIMIT..u64::MAX, (6u32..20).prop_map(|k| 10u64.pow(k))],
            x in any::<u64>(),
            tweak in any::<[u8; 8]>(),
        ) {
            let x = x % m;
            prop_assert_eq!(permuter().forward(tweak, m, x), Some(walk_with_fpe(&[7; 16], tweak, m, x)));
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
