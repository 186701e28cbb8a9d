//! Format-preserving permutation of strings: ASCII digits stay digits,
//! letters stay letters of the same case, every other byte stays where it
//! is (so multi-byte UTF-8 characters pass through whole).
//!
//! The layout (which position holds which class, and the bytes kept) is
//! the *skeleton*. The permuted characters, read as one mixed-radix number
//! (base 10 for digits, 26 for letters), go through the keyed permutation
//! of their domain, tweaked by a keyed hash of the skeleton. For one
//! skeleton this is a bijection, and different skeletons give different
//! outputs, so distinct inputs always give distinct stand-ins; the inverse
//! is exact. Strings with more than 12 such characters are cut into chunks
//! of 6 to 12, each permuted with its own tweak.

use super::keyed::Prf;
use super::permute::{Permuter, Tweak};

/// Which characters are permuted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Classes {
    /// ASCII digits and letters.
    Alnum,
    /// ASCII digits only (letters are kept).
    Digits,
}

const CHUNK: usize = 12;
/// PRF domain of skeleton tweaks.
const DOMAIN: u8 = b's';

/// Appends the permuted (or, with `forward = false`, un-permuted) form of
/// `s`; the first `keep` bytes are kept as they are.
pub(crate) fn permute(
    perm: &Permuter,
    prf: &Prf,
    s: &[u8],
    keep: usize,
    classes: Classes,
    forward: bool,
    out: &mut Vec<u8>,
) -> Option<()> {
    let mut layouts = Layouts::default();
    layouts.add(prf, s, keep, classes, out);
    let jobs = layouts.jobs();
    layouts.fill(0..jobs.len(), out, |k| {
        let (tweak, m, x) = jobs[k];
        if forward {
            perm.forward(tweak, m, x)
        } else {
            perm.inverse(tweak, m, x)
        }
    })
}

/// Strings laid out for their permutation, one after the other: where
/// their permuted characters are, and the `(tweak, m, x)` each chunk of
/// them goes through. Laying out many strings first lets their
/// permutations run together ([`Permuter::forward_many`]).
#[derive(Default)]
pub(crate) struct Layouts {
    /// Positions in the output of the permuted characters of long
    /// strings' chunks ([`Places::List`]).
    positions: Vec<usize>,
    /// Per chunk: where its permuted characters are.
    places: Vec<Places>,
    jobs: Vec<(Tweak, u64, u64)>,
    /// The skeleton of a long string being laid out.
    skel: Vec<u8>,
}

/// Where a chunk's permuted characters are in the output.
#[derive(Clone, Copy)]
enum Places {
    /// Bit `j` set: byte `base + j` (a string of at most [`SHORT`] bytes).
    Mask { base: usize, mask: u64 },
    /// The same, every one of them a digit ([`Classes::Digits`]).
    Digits { base: usize, mask: u64 },
    /// These entries of [`Layouts::positions`].
    List { from: usize, to: usize },
}

/// Strings up to this long are laid out as bit masks, their skeletons
/// built on the stack.
const SHORT: usize = 64;

impl Layouts {
    /// Empties the layouts, to lay out strings anew.
    pub(crate) fn clear(&mut self) {
        self.positions.clear();
        self.places.clear();
        self.jobs.clear();
    }

    /// Chunks laid out so far.
    pub(crate) fn chunks(&self) -> usize {
        self.jobs.len()
    }

    /// Every chunk's `(tweak, m, x)`, in order.
    pub(crate) fn jobs(&self) -> &[(Tweak, u64, u64)] {
        &self.jobs
    }

    /// Appends `s` to `out` and lays out its chunks (the first `keep` bytes
    /// kept as they are); whether `s` is ASCII (so is its image then).
    pub(crate) fn add(
        &mut self,
        prf: &Prf,
        s: &[u8],
        keep: usize,
        classes: Classes,
        out: &mut Vec<u8>,
    ) -> bool {
        let start = out.len();
        out.extend_from_slice(s);
        let keep = keep.min(s.len());
        if s.len() <= SHORT {
            match classes {
                Classes::Digits => self.add_short::<false>(prf, s, keep, start),
                Classes::Alnum => self.add_short::<true>(prf, s, keep, start),
            }
        } else {
            self.add_long(prf, s, keep, classes, start);
            s.is_ascii()
        }
    }

    /// [`add`](Self::add) of a string of at most [`SHORT`] bytes, now at
    /// `start` in the output: its permuted characters as a bit mask, its
    /// skeleton on the stack, one pass over its bytes. `ALNUM`: letters
    /// are permuted too ([`Classes::Alnum`]).
    fn add_short<const ALNUM: bool>(
        &mut self,
        prf: &Prf,
        s: &[u8],
        keep: usize,
        start: usize,
    ) -> bool {
        // A permuted character is a zero and its class's marker, NUL two
        // zeros: the zeros are already there.
        let mut skel = [0u8; 2 * SHORT];
        let mut len = 0;
        for &b in &s[..keep] {
            if b != 0 {
                skel[len] = b;
                len += 1;
            } else {
                len += 2;
            }
        }
        // One chunk (the common case) is read off in the same pass; the
        // wrapping sums are dropped when there are more.
        let (mut mask, mut m, mut x) = (0u64, 1u64, 0u64);
        for (i, &b) in s.iter().enumerate().skip(keep) {
            let class = if b.wrapping_sub(b'0') < 10 {
                Some(Class::Digit)
            } else if ALNUM {
                class_of(b, Classes::Alnum)
            } else {
                None
            };
            match class {
                Some(c) => {
                    mask |= 1 << i;
                    skel[len + 1] = c.marker();
                    len += 2;
                    m = m.wrapping_mul(c.radix());
                    x = x.wrapping_mul(c.radix()).wrapping_add(c.value(b));
                }
                None if b == 0 => len += 2,
                None => {
                    skel[len] = b;
                    len += 1;
                }
            }
        }
        let base = tweak_base(prf, &skel[..len]);
        let places = |mask| match ALNUM {
            true => Places::Mask { base: start, mask },
            false => Places::Digits { base: start, mask },
        };
        let n = mask.count_ones() as usize;
        if n <= CHUNK {
            self.places.push(places(mask));
            self.jobs.push((base.to_be_bytes(), m, x));
            return s.is_ascii();
        }
        let chunks = n.div_ceil(CHUNK);
        for j in 0..chunks {
            let count = (j + 1) * n / chunks - j * n / chunks;
            let (mut m, mut x, mut taken) = (1u64, 0u64, 0u64);
            for _ in 0..count {
                let at = mask.trailing_zeros() as usize;
                let bit = 1 << at;
                mask ^= bit;
                taken |= bit;
                let c = class(s[at]);
                m *= c.radix();
                x = x * c.radix() + c.value(s[at]);
            }
            self.places.push(places(taken));
            self.jobs
                .push((base.wrapping_add(j as u64).to_be_bytes(), m, x));
        }
        s.is_ascii()
    }

    /// [`add`](Self::add) of a longer string, now at `start` in `out`.
    fn add_long(&mut self, prf: &Prf, s: &[u8], keep: usize, classes: Classes, start: usize) {
        let first = self.positions.len();
        self.positions.reserve(s.len());
        self.skel.clear();
        self.skel.reserve(2 * s.len());
        for &b in &s[..keep] {
            self.skel_byte(b);
        }
        let (mut m, mut x) = (1u64, 0u64);
        for (i, &b) in s.iter().enumerate().skip(keep) {
            match class_of(b, classes) {
                Some(c) => {
                    self.positions.push(start + i);
                    self.skel.extend_from_slice(&[0, c.marker()]);
                    m = m.wrapping_mul(c.radix());
                    x = x.wrapping_mul(c.radix()).wrapping_add(c.value(b));
                }
                None => self.skel_byte(b),
            }
        }
        let base = tweak_base(prf, &self.skel);
        let n = self.positions.len() - first;
        if n <= CHUNK {
            self.places.push(Places::List {
                from: first,
                to: first + n,
            });
            self.jobs.push((base.to_be_bytes(), m, x));
            return;
        }
        let chunks = n.div_ceil(CHUNK);
        for j in 0..chunks {
            let (from, to) = (first + j * n / chunks, first + (j + 1) * n / chunks);
            let mut m: u64 = 1;
            let mut x: u64 = 0;
            for &at in &self.positions[from..to] {
                let b = s[at - start];
                let c = class(b);
                m *= c.radix();
                x = x * c.radix() + c.value(b);
            }
            self.places.push(Places::List { from, to });
            self.jobs
                .push((base.wrapping_add(j as u64).to_be_bytes(), m, x));
        }
    }

    /// Adds a byte that is not permuted to the skeleton (NUL as two zeros,
    /// since a permuted character is a zero and its class's marker).
    fn skel_byte(&mut self, b: u8) {
        if b == 0 {
            self.skel.extend_from_slice(&[0, 0]);
        } else {
            self.skel.push(b);
        }
    }

    /// Writes into `out` the images `image(k)` of chunks `chunks`, the
    /// chunks of one string; `None` if one has none.
    pub(crate) fn fill(
        &self,
        chunks: std::ops::Range<usize>,
        out: &mut [u8],
        image: impl Fn(usize) -> Option<u64>,
    ) -> Option<()> {
        for k in chunks {
            let mut y = image(k)?;
            // The last character takes the lowest numeral.
            let mut put = |at: usize| {
                // Constant divisors: the compiler multiplies instead.
                let (c, digit, rest) = match class(out[at]) {
                    Class::Digit => (Class::Digit, y % 10, y / 10),
                    c => (c, y % 26, y / 26),
                };
                out[at] = c.symbol(digit);
                y = rest;
            };
            match self.places[k] {
                Places::Mask { base, mut mask } => {
                    while mask != 0 {
                        let j = 63 - mask.leading_zeros();
                        mask ^= 1 << j;
                        put(base + j as usize);
                    }
                }
                Places::Digits { base, mut mask } => {
                    // The numerals first, lowest first and two per
                    // division, then the places from the first on: each
                    // loop's chain (the divisions, the mask's next bit)
                    // is half of what one loop of bit scans and divisions
                    // by ten made.
                    let n = mask.count_ones() as usize;
                    let mut numerals = [b'0'; 64];
                    for pair in numerals.chunks_exact_mut(2).take(n.div_ceil(2)) {
                        let r = y % 100;
                        y /= 100;
                        pair[0] = b'0' + (r % 10) as u8;
                        pair[1] = b'0' + (r / 10) as u8;
                    }
                    for &numeral in numerals[..n].iter().rev() {
                        out[base + mask.trailing_zeros() as usize] = numeral;
                        mask &= mask - 1;
                    }
                }
                Places::List { from, to } => {
                    for &at in self.positions[from..to].iter().rev() {
                        put(at);
                    }
                }
            }
        }
        Some(())
    }
}

/// The tweak base of a skeleton: the first 8 bytes of its tag.
fn tweak_base(prf: &Prf, skel: &[u8]) -> u64 {
    let tag = prf.tag_repeated(DOMAIN, skel);
    let mut base = [0; 8];
    base.copy_from_slice(&tag[..8]);
    u64::from_be_bytes(base)
}

#[derive(Clone, Copy)]
enum Class {
    Digit,
    Lower,
    Upper,
}

/// The class of a byte laid out as permuted (a digit or a letter).
fn class(b: u8) -> Class {
    match b {
        b'0'..=b'9' => Class::Digit,
        b'a'..=b'z' => Class::Lower,
        _ => Class::Upper,
    }
}

fn class_of(b: u8, classes: Classes) -> Option<Class> {
    match b {
        b'0'..=b'9' => Some(Class::Digit),
        b'a'..=b'z' if classes == Classes::Alnum => Some(Class::Lower),
        b'A'..=b'Z' if classes == Classes::Alnum => Some(Class::Upper),
        _ => None,
    }
}

impl Class {
    fn marker(self) -> u8 {
        match self {
            Class::Digit => b'd',
            Class::Lower => b'l',
            Class::Upper => b'u',
        }
    }

    fn radix(self) -> u64 {
        match self {
            Class::Digit => 10,
            Class::Lower | Class::Upper => 26,
        }
    }

    fn value(self, b: u8) -> u64 {
        u64::from(match self {
            Class::Digit => b - b'0',
            Class::Lower => b - b'a',
            Class::Upper => b - b'A',
        })
    }

    fn symbol(self, v: u64) -> u8 {
        let v = v as u8;
        match self {
            Class::Digit => b'0' + v,
            Class::Lower => b'a' + v,
            Class::Upper => b'A' + v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::tests::shape;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::sync::LazyLock;

    static K: LazyLock<(Permuter, Prf)> =
        LazyLock::new(|| (Permuter::new(&[4; 16], &[5; 16]), Prf::new(&[6; 32])));

    fn run(s: &str, keep: usize, classes: Classes, forward: bool) -> String {
        let mut out = b"pre".to_vec();
        permute(&K.0, &K.1, s.as_bytes(), keep, classes, forward, &mut out).unwrap();
        String::from_utf8(out[3..].to_vec()).unwrap()
    }

    #[test]
    fn keeps_the_layout() {
        let t = run("AB-123-cd é 4567890", 0, Classes::Alnum, true);
        assert_eq!(shape(&t), shape("AB-123-cd é 4567890"));
        assert_ne!(t, "AB-123-cd é 4567890");
        assert_eq!(run(&t, 0, Classes::Alnum, false), "AB-123-cd é 4567890");
        let p = run("+44 20 7946 0958 ext", 3, Classes::Digits, true);
        assert!(p.starts_with("+44 ") && p.ends_with(" ext"));
    }

    #[test]
    fn short_strings_are_permutations_too() {
        let outs: HashSet<String> = (0..100)
            .map(|i| run(&format!("{i:02}"), 0, Classes::Alnum, true))
            .collect();
        assert_eq!(outs.len(), 100);
    }

    proptest! {
        /// Strings of up to [`SHORT`] bytes laid out as bit masks give
        /// the layout of the general path: the same jobs, the same images.
        #[test]
        fn short_layouts_are_long_ones(
            s in "[a-zA-Z0-9 .\\x00é+-]{0,40}",
            keep in 0..6usize,
            alnum in any::<bool>(),
        ) {
            let s = s.as_bytes();
            prop_assume!(s.len() <= SHORT);
            let (mut a, mut b) = (Layouts::default(), Layouts::default());
            let keep = keep.min(s.len());
            let (classes, ascii) = if alnum {
                (Classes::Alnum, a.add_short::<true>(&K.1, s, keep, 2))
            } else {
                (Classes::Digits, a.add_short::<false>(&K.1, s, keep, 2))
            };
            b.add_long(&K.1, s, keep, classes, 2);
            prop_assert_eq!(ascii, s.is_ascii());
            prop_assert_eq!(a.jobs(), b.jobs());
            let images: Vec<u64> = a.jobs().iter().map(|&(t, m, x)| K.0.forward(t, m, x).unwrap()).collect();
            let (mut out_a, mut out_b) = ([b"..", s].concat(), [b"..", s].concat());
            a.fill(0..a.chunks(), &mut out_a, |k| Some(images[k])).unwrap();
            b.fill(0..b.chunks(), &mut out_b, |k| Some(images[k])).unwrap();
            prop_assert_eq!(out_a, out_b);
        }

        #[test]
        fn round_trips(s in "[a-zA-Z0-9 ._@+-]{0,90}") {
            let t = run(&s, 0, Classes::Alnum, true);
            prop_assert_eq!(t.len(), s.len());
            prop_assert_eq!(run(&t, 0, Classes::Alnum, false), s);
        }

        #[test]
        fn distinct_inputs_stay_distinct(a in "[a-z0-9-]{1,10}", b in "[a-z0-9-]{1,10}") {
            prop_assume!(a != b);
            prop_assert_ne!(run(&a, 0, Classes::Alnum, true), run(&b, 0, Classes::Alnum, true));
        }
    }
}
