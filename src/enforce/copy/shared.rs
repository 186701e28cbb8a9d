//! Byte scanning shared by the line formats: finding delimiters and
//! special bytes sixteen bytes at a time (SSE2 on x86-64), and the
//! fields before the first special byte.

use super::*;

/// The first index of `a` or `b` in `hay`, sixteen bytes at a time.
pub(super) fn find2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    let hit = |w: &[u8; 16]| eq_mask(w, a) | eq_mask(w, b);
    let (words, tail) = words(hay);
    for (k, w) in words.enumerate() {
        let m = hit(w);
        if m != 0 {
            return Some(16 * k + m.trailing_zeros() as usize);
        }
    }
    let m = Tail::of(hay, tail).mask(hit);
    (m != 0).then(|| hay.len() - tail + m.trailing_zeros() as usize)
}

/// The delimiters of a row before its first `special` byte (a text-format
/// backslash, a CSV quote), in order, appended to `out`, found in one pass,
/// sixteen bytes at a time; whether the row has no such byte. The fields
/// before that byte are their bytes as they are (so is every field of a
/// row without one), and the delimiters found end them (those of the
/// sixteen bytes holding it may be left out: its field is read the slow
/// way anyway).
pub(super) fn plain_delimiters(body: &[u8], delim: u8, special: u8, out: &mut Vec<usize>) -> bool {
    // The bits of the window `w`'s masks that stand for bytes from `at`
    // on: all of a whole word's, a tail's own.
    let mut take = |at: usize, w: &[u8; 16], t: &Tail| {
        if t.keep(eq_mask(w, special)) != 0 {
            return false;
        }
        let mut hits = t.keep(eq_mask(w, delim));
        while hits != 0 {
            out.push(at + hits.trailing_zeros() as usize);
            hits &= hits - 1;
        }
        true
    };
    let (words, tail) = words(body);
    for (k, w) in words.enumerate() {
        if !take(16 * k, w, &Tail::WHOLE) {
            return false;
        }
    }
    let t = Tail::of(body, tail);
    take(body.len() - tail, &t.window, &t)
}

/// The whole 16-byte words of `hay`, and how many bytes follow them.
#[inline]
fn words(hay: &[u8]) -> (impl Iterator<Item = &[u8; 16]>, usize) {
    let chunks = hay.chunks_exact(16);
    let tail = chunks.remainder().len();
    (chunks.map(|w| w.try_into().unwrap_or(&[0; 16])), tail)
}

/// The last `len` bytes of a slice (fewer than 16) as one 16-byte window
/// and how to keep only their bits of a mask of it (or, as
/// [`Tail::WHOLE`], all bits of a whole word's mask): the window is the
/// slice's last 16 bytes when it has them, else the bytes zero-padded.
struct Tail {
    window: [u8; 16],
    shift: u32,
    len: usize,
}

impl Tail {
    /// What keeps every bit of a whole word's masks.
    const WHOLE: Tail = Tail {
        window: [0; 16],
        shift: 0,
        len: 16,
    };

    #[inline]
    fn of(hay: &[u8], len: usize) -> Tail {
        match hay.len().checked_sub(16) {
            Some(at) => Tail {
                window: hay[at..].try_into().unwrap_or([0; 16]),
                shift: (16 - len) as u32,
                len,
            },
            None => {
                let mut window = [0; 16];
                window[..len].copy_from_slice(&hay[hay.len() - len..]);
                Tail {
                    window,
                    shift: 0,
                    len,
                }
            }
        }
    }

    /// The bits of `m` (a mask of the window) for the tail's bytes, the
    /// first of them as bit 0.
    #[inline]
    fn keep(&self, m: u32) -> u32 {
        (m >> self.shift) & ((1 << self.len) - 1)
    }

    #[inline]
    fn mask(&self, f: impl Fn(&[u8; 16]) -> u32) -> u32 {
        if self.len == 0 {
            return 0;
        }
        self.keep(f(&self.window))
    }
}

/// Bit `j` set where `w[j] == a`.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn eq_mask(w: &[u8; 16], a: u8) -> u32 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    // SAFETY: SSE2 is enabled (the cfg above); the load reads the 16 bytes
    // of `w`, unaligned loads allowed.
    unsafe {
        let v = _mm_loadu_si128(w.as_ptr().cast());
        _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(a as i8))) as u32
    }
}

/// Bit `j` set where `w[j] < below` (`below` at most 128).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn lt_mask(w: &[u8; 16], below: u8) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let Some(max) = below.checked_sub(1) else {
        return 0;
    };
    // SAFETY: as in `eq_mask`. A byte is below `below` when it is its own
    // minimum with `below - 1`.
    unsafe {
        let v = _mm_loadu_si128(w.as_ptr().cast());
        _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(max as i8)), v)) as u32
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn eq_mask(w: &[u8; 16], a: u8) -> u32 {
    (0..16).fold(0, |m, j| m | (u32::from(w[j] == a) << j))
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn lt_mask(w: &[u8; 16], below: u8) -> u32 {
    (0..16).fold(0, |m, j| m | (u32::from(w[j] < below) << j))
}

/// Notes the fields of a row that [`plain_delimiters`] (of `delim`
/// before the first `special` byte) ends, each its bytes or NULL when they
/// are the `null` string, and the last field too when the row has no
/// special byte; the fields noted, where the next one starts, and whether
/// the row had no special byte.
pub(super) fn plain_fields(
    g: &mut Group,
    plan: &ColumnPlan,
    body: &[u8],
    (delim, special): (u8, u8),
    null: &[u8],
) -> Result<(usize, usize, bool), RewriteError> {
    let found = g.line_fields(body, null, |ends| {
        plain_delimiters(body, delim, special, ends)
    });
    if found.0 > plan.len() {
        // What reading field `plan.len()` gives.
        return Err(RewriteError::ColumnCount {
            got: plan.len() + 1,
            expected: plan.len(),
        });
    }
    Ok(found)
}

/// Whether `v` has a byte below `below` (at most 128) or in `set`,
/// sixteen bytes at a time.
#[inline]
pub(super) fn has_byte<const N: usize>(v: &[u8], below: u8, set: [u8; N]) -> bool {
    if v.len() < 16 {
        return short_has_byte(v, below, set);
    }
    let hit = |w: &[u8; 16]| {
        set.iter()
            .fold(lt_mask(w, below), |m, &s| m | eq_mask(w, s))
    };
    let (mut words, tail) = words(v);
    words.any(|w| hit(w) != 0) || Tail::of(v, tail).mask(hit) != 0
}

/// [`has_byte`] of fewer than 16 bytes (most stand-ins), eight bytes at a
/// time in words read from `v` itself: the first eight and the last eight
/// bytes, or one [`short_word`]. A zero-padded 16-byte copy of them, as
/// [`Tail::of`] makes, costs a stack copy and a wide load that waits for
/// its narrower stores to retire.
#[inline]
fn short_has_byte<const N: usize>(v: &[u8], below: u8, set: [u8; N]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    // Whether a byte of `x` is below `n` (at most 128), exactly.
    let less = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS != 0;
    let hit = |x: u64| less(x, below) || set.iter().any(|&s| less(x ^ (ONES * u64::from(s)), 1));
    let word = |at: usize| u64::from_ne_bytes(v[at..at + 8].try_into().unwrap_or_default());
    match v.len() {
        0 => false,
        1..=7 => hit(short_word(v)),
        n => hit(word(0)) || hit(word(n - 8)),
    }
}

/// A word whose bytes are all bytes of `v` (1 to 7 bytes), some of them
/// twice, and which holds every byte of `v`: enough to tell whether `v`
/// has a byte.
#[inline]
fn short_word(v: &[u8]) -> u64 {
    let n = v.len();
    let half = |at: usize| {
        u64::from(u32::from_ne_bytes(
            v[at..at + 4].try_into().unwrap_or_default(),
        ))
    };
    match n {
        4.. => half(0) << 32 | half(n - 4),
        _ => u64::from_ne_bytes([v[0], v[n / 2], v[n - 1], v[0], v[0], v[0], v[0], v[0]]),
    }
}
