//! One value through one transform: decode by type and format, replace,
//! encode in the same type and format within the typmod. Every function
//! here returns `None` for "cannot handle", which the caller turns into
//! SQL NULL: a value is never passed through as it came.

use std::cell::RefCell;

use aes::cipher::{BlockDecrypt, BlockEncrypt};

use super::dates::{self, DateOp, Range};
use super::keyed::{Prf, Tag};
use super::numeric::{self, Decimal, Numeric};
use super::permute::Walk;
use super::shape::{self, Classes};
use super::transform::Transform;
use super::types::{oid, ColumnType, Format, IntWidth, Kind, TextLimit};
use super::{binary, calendar, email, json, mask, phone, text, words, Pseudonymizer};

/// Direction of a bijection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Forward,
    Inverse,
}

/// Writes the stand-in of a non-NULL value; `None` means redact.
pub(crate) fn value(
    p: &Pseudonymizer,
    t: &Transform,
    ty: ColumnType,
    fmt: Format,
    v: &[u8],
    out: &mut Vec<u8>,
) -> Option<()> {
    if let Transform::Constant { value } = t {
        return constant(value, ty, fmt, out);
    }
    match ty.kind() {
        Kind::Int(w) => int(p, t, w, fmt, v, Dir::Forward, out),
        Kind::Numeric => numeric(p, t, ty, fmt, v, Dir::Forward, out),
        Kind::Uuid => uuid(p, t, fmt, v, Dir::Forward, out),
        Kind::Text => text_value(p, t, ty, v, Dir::Forward, out),
        Kind::Date | Kind::Timestamp => date(p, t, ty, fmt, v, out),
        Kind::Bytea => bytea(p, t, fmt, v, out),
        Kind::Json | Kind::Jsonb => json_value(p, t, ty, fmt, v, out),
        Kind::Bool | Kind::Other => None,
    }
}

/// Undoes a bijective transform; `None` if the value is not a stand-in
/// this transform can produce.
pub(crate) fn inverse(
    p: &Pseudonymizer,
    t: &Transform,
    ty: ColumnType,
    fmt: Format,
    v: &[u8],
    out: &mut Vec<u8>,
) -> Option<()> {
    match ty.kind() {
        Kind::Int(w) => int(p, t, w, fmt, v, Dir::Inverse, out),
        Kind::Numeric => numeric(p, t, ty, fmt, v, Dir::Inverse, out),
        Kind::Uuid => uuid(p, t, fmt, v, Dir::Inverse, out),
        Kind::Text => text_value(p, t, ty, v, Dir::Inverse, out),
        _ => None,
    }
}

/// Whether `t` is a permutation on values of type `ty`.
pub(crate) fn is_bijective(t: &Transform, ty: ColumnType) -> bool {
    match ty.kind() {
        Kind::Int(_) | Kind::Numeric | Kind::Text => permutes(t),
        Kind::Uuid => matches!(t, Transform::Bijection | Transform::Token),
        _ => false,
    }
}

/// The transforms that replace integers, numerics and text by a keyed
/// permutation of them.
fn permutes(t: &Transform) -> bool {
    matches!(
        t,
        Transform::Bijection | Transform::Token | Transform::Phone
    )
}

fn int(
    p: &Pseudonymizer,
    t: &Transform,
    w: IntWidth,
    fmt: Format,
    v: &[u8],
    dir: Dir,
    out: &mut Vec<u8>,
) -> Option<()> {
    if !permutes(t) {
        return None;
    }
    let x = match fmt {
        Format::Text => text::parse_int(v)?,
        Format::Binary => binary::read_int(w, v)?,
    };
    if !w.contains(x) {
        return None;
    }
    let y = map_int(p, x, None, dir)?;
    match fmt {
        Format::Text => text::write_int(y, out),
        Format::Binary => binary::write_int(w, y, out)?,
    }
    Some(())
}

fn numeric(
    p: &Pseudonymizer,
    t: &Transform,
    ty: ColumnType,
    fmt: Format,
    v: &[u8],
    dir: Dir,
    out: &mut Vec<u8>,
) -> Option<()> {
    if !permutes(t) {
        return None;
    }
    let n = match fmt {
        Format::Text => numeric::parse_text(v)?,
        Format::Binary => numeric::parse_binary(v)?,
    };
    let n = match n {
        Numeric::Finite(d) => Numeric::Finite(match d.as_i64() {
            Some(i) => {
                let cap = numeric_cap(ty)?;
                d.with_i64(map_int(p, i, cap, dir)?)
            }
            None if *t == Transform::Token && dir == Dir::Forward => keyed_digits(p, &d),
            None => return None,
        }),
        special => special,
    };
    match fmt {
        Format::Text => numeric::write_text(&n, out),
        Format::Binary => numeric::write_binary(&n, out)?,
    }
    Some(())
}

/// The integer bijection of `x` (magnitude bounded by `cap`) in `dir`.
fn map_int(p: &Pseudonymizer, x: i64, cap: Option<u64>, dir: Dir) -> Option<i64> {
    match dir {
        Dir::Forward => p.ints.forward(&p.keys.permuter, x, cap),
        Dir::Inverse => p.ints.inverse(&p.keys.permuter, x, cap),
    }
}

/// The largest magnitude an integral `numeric(p, s)` may hold: `Some(None)`
/// for no limit, `None` when the type cannot be honored (negative scale).
fn numeric_cap(ty: ColumnType) -> Option<Option<u64>> {
    match ty.numeric_limits() {
        None => Some(None),
        Some((_, scale)) if scale < 0 => None,
        Some((digits, _)) if digits >= 19 => Some(None),
        Some((digits, _)) => Some(Some(10u64.pow(digits.max(0) as u32) - 1)),
    }
}

/// A fractional `numeric` token: keyed digits in the same places.
fn keyed_digits(p: &Pseudonymizer, d: &Decimal) -> Decimal {
    let mut canonical = Vec::with_capacity(d.int.len() + d.frac.len() + 2);
    numeric::write_text(&Numeric::Finite(d.clone()), &mut canonical);
    let mut tag = p.keys.token.tag(b'n', &canonical);
    let mut at = 0;
    let mut next = |modulus: u8| {
        if at == tag.len() {
            tag = p.keys.token.tag(b'n', &tag);
            at = 0;
        }
        at += 1;
        tag[at - 1] % modulus
    };
    let int = (0..d.int.len())
        .map(|i| {
            if i == 0 {
                b'1' + next(9)
            } else {
                b'0' + next(10)
            }
        })
        .collect();
    let frac = (0..d.frac.len()).map(|_| b'0' + next(10)).collect();
    Decimal {
        neg: d.neg,
        int,
        frac,
    }
}

fn uuid(
    p: &Pseudonymizer,
    t: &Transform,
    fmt: Format,
    v: &[u8],
    dir: Dir,
    out: &mut Vec<u8>,
) -> Option<()> {
    if !matches!(t, Transform::Bijection | Transform::Token) {
        return None;
    }
    let u = match fmt {
        Format::Text => text::parse_uuid(v)?,
        Format::Binary => binary::read_uuid(v)?,
    };
    let mut block = u.into();
    match dir {
        Dir::Forward => p.keys.uuid.encrypt_block(&mut block),
        Dir::Inverse => p.keys.uuid.decrypt_block(&mut block),
    }
    let u: [u8; 16] = block.into();
    match fmt {
        Format::Text => text::write_uuid(&u, out),
        Format::Binary => out.extend_from_slice(&u),
    }
    Some(())
}

fn text_value(
    p: &Pseudonymizer,
    t: &Transform,
    ty: ColumnType,
    v: &[u8],
    dir: Dir,
    out: &mut Vec<u8>,
) -> Option<()> {
    let v = unpadded(ty, v);
    let limit = ty.text_limit();
    let start = out.len();
    let k = &p.keys;
    let forward = dir == Dir::Forward;
    match t {
        Transform::Bijection | Transform::Token => {
            shape::permute(&k.permuter, &k.token, v, 0, Classes::Alnum, forward, out)?
        }
        Transform::Phone => phone::permute(&k.permuter, &k.token, v, forward, out)?,
        _ if !forward => return None,
        Transform::Email | Transform::PersonName { .. } => {
            let (prf, domain) = tagging(p, t)?;
            tagged(p, t, &prf.tag(domain, v), v, limit, out)?
        }
        Transform::Address => words::address(&k.words, v, out),
        Transform::Replace => {
            let chars = std::str::from_utf8(v).map_or(v.len(), |s| s.chars().count());
            words::filler(&k.words, v, chars, out)
        }
        Transform::Partial { keep } => mask::partial(std::str::from_utf8(v).ok()?, *keep, out),
        Transform::DateShift { .. } | Transform::Year | Transform::Month => {
            dates::text_value(&k.date, date_op(p, t)?, v, Range::Timestamp, out)?
        }
        Transform::Json { keys } => json::rewrite(p, keys, v, out)?,
        Transform::Constant { .. } | Transform::Redact => return None,
    }
    limit.fit_tail(out, start).then_some(())
}

/// A text value without the padding its type adds (`character(n)`).
fn unpadded(ty: ColumnType, v: &[u8]) -> &[u8] {
    if ty.oid == oid::BPCHAR {
        let end = v.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        &v[..end]
    } else {
        v
    }
}

/// Whether [`text_shapes`] takes values of `ty` through `t` (text types
/// are the same bytes in either format).
pub(crate) fn shapes_text(t: &Transform, ty: ColumnType) -> bool {
    ty.kind() == Kind::Text && permutes(t)
}

/// [`text_value`] forward of many values through a shape permutation
/// (`phone`, or `bijection` and `token` on text): every value laid out
/// first, then all their chunks permuted together. Appends each stand-in
/// to `out` and pushes its range, `None` for NULL.
pub(crate) fn text_shapes(
    p: &Pseudonymizer,
    t: &Transform,
    ty: ColumnType,
    values: &[Option<&[u8]>],
    out: &mut Vec<u8>,
    stand_ins: &mut Vec<Option<std::ops::Range<usize>>>,
) {
    with_scratch(|sc| {
        let Scratch {
            layouts,
            bytes,
            laid,
            images,
            walk,
            ..
        } = sc;
        let k = &p.keys;
        layouts.clear();
        bytes.clear();
        laid.clear();
        for v in values {
            laid.push(v.map(|v| {
                let v = unpadded(ty, v);
                let (keep, classes) = match t {
                    Transform::Phone => (phone::kept_prefix(v), Classes::Digits),
                    _ => (0, Classes::Alnum),
                };
                let (start, first) = (bytes.len(), layouts.chunks());
                let ascii = layouts.add(&k.token, v, keep, classes, bytes);
                (start..bytes.len(), first..layouts.chunks(), ascii)
            }));
        }
        k.permuter.forward_many(layouts.jobs(), images, walk);
        let limit = ty.text_limit();
        for l in laid.drain(..) {
            let stand_in = l.and_then(|(at, chunks, ascii)| {
                layouts.fill(chunks, bytes, |c| images[c])?;
                fitted(limit, ascii, out, |out| {
                    out.extend_from_slice(&bytes[at]);
                    Some(())
                })
            });
            stand_ins.push(stand_in);
        }
    })
}

/// Buffers the many-value paths reuse, one set per thread: rewriting group
/// after group then allocates nothing once warm. Each call starts by
/// clearing what it uses.
#[derive(Default)]
struct Scratch {
    layouts: shape::Layouts,
    /// Laid-out strings, permuted in place.
    bytes: Vec<u8>,
    /// Per value: its bytes in `bytes`, its chunks and whether it is
    /// ASCII, `None` for NULL.
    laid: Vec<Option<Laid>>,
    images: Vec<Option<u64>>,
    walk: Walk,
    tags: Vec<Tag>,
}

/// A value laid out by [`text_shapes`]: its bytes in the scratch bytes,
/// its chunks, and whether it is ASCII.
type Laid = (std::ops::Range<usize>, std::ops::Range<usize>, bool);

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Runs `f` on this thread's scratch buffers (fresh ones if they are in
/// use further up the stack).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// The PRF and domain byte of the tag of the whole value a text transform
/// starts from, if it does.
fn tagging<'a>(p: &'a Pseudonymizer, t: &Transform) -> Option<(&'a Prf, u8)> {
    match t {
        Transform::Email => Some((&p.keys.email, email::PRF_DOMAIN)),
        Transform::PersonName { .. } => Some((&p.keys.words, words::NAME_DOMAIN)),
        _ => None,
    }
}

/// The stand-in of a value of a [`tagging`] transform, from its tag.
fn tagged(
    p: &Pseudonymizer,
    t: &Transform,
    tag: &Tag,
    v: &[u8],
    limit: TextLimit,
    out: &mut Vec<u8>,
) -> Option<()> {
    match t {
        Transform::Email => email::write_tagged(tag, &p.settings.email_domain, limit, out),
        Transform::PersonName { part } => {
            words::person_name_tagged(tag, v, *part, out);
            Some(())
        }
        _ => None,
    }
}

/// Whether [`text_tagged`] takes values of `ty` through `t`.
pub(crate) fn tags_text(p: &Pseudonymizer, t: &Transform, ty: ColumnType) -> bool {
    ty.kind() == Kind::Text && tagging(p, t).is_some()
}

/// [`text_value`] of many values through a [`tagging`] transform (email,
/// person_name): the tags of every value first, computed side by side
/// ([`Prf::tags`]), then each stand-in. Appends each to `out` and pushes
/// its range, `None` for NULL.
pub(crate) fn text_tagged(
    p: &Pseudonymizer,
    t: &Transform,
    ty: ColumnType,
    values: &[Option<&[u8]>],
    out: &mut Vec<u8>,
    stand_ins: &mut Vec<Option<std::ops::Range<usize>>>,
) {
    let Some((prf, domain)) = tagging(p, t) else {
        stand_ins.extend(values.iter().map(|_| None));
        return;
    };
    let mut plain = Vec::with_capacity(values.len());
    plain.extend(values.iter().flatten().map(|v| unpadded(ty, v)));
    with_scratch(|sc| {
        let tags = &mut sc.tags;
        tags.clear();
        prf.tags(domain, &plain, tags);
        let limit = ty.text_limit();
        let mut tagged_values = tags.iter().zip(plain);
        for v in values {
            let stand_in = v.and_then(|_| {
                let (tag, v) = tagged_values.next()?;
                fitted(limit, true, out, |out| tagged(p, t, tag, v, limit, out))
            });
            stand_ins.push(stand_in);
        }
    })
}

/// Runs `write` at the end of `out` and fits what it wrote to `limit`: its
/// range, or `None` (nothing left appended) if it wrote no stand-in.
/// `utf8`: `write` writes valid UTF-8 by construction (email and name
/// stand-ins are made of `str` words, base32 and the checked domain; a
/// shape permutation of an ASCII value is ASCII), so with no limit there
/// is nothing to check.
#[inline]
fn fitted(
    limit: TextLimit,
    utf8: bool,
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Option<()>,
) -> Option<std::ops::Range<usize>> {
    let start = out.len();
    let unlimited = utf8 && limit == TextLimit::default();
    if write(out).is_some() && (unlimited || limit.fit_tail(out, start)) {
        Some(start..out.len())
    } else {
        out.truncate(start);
        None
    }
}

/// The operation and range of a `date` or `timestamp` column in text
/// format through a date transform: [`dates::text_values`] rewrites many
/// of its values at a time.
pub(crate) fn dates_text(
    p: &Pseudonymizer,
    t: &Transform,
    ty: ColumnType,
    fmt: Format,
) -> Option<(DateOp, Range)> {
    let range = match (ty.kind(), fmt) {
        (Kind::Date, Format::Text) => Range::Date,
        (Kind::Timestamp, Format::Text) => Range::Timestamp,
        _ => return None,
    };
    Some((date_op(p, t)?, range))
}

fn date_op(p: &Pseudonymizer, t: &Transform) -> Option<DateOp> {
    match t {
        Transform::DateShift { days } => {
            Some(DateOp::Shift(days.unwrap_or(p.settings.date_shift_days)))
        }
        Transform::Year => Some(DateOp::Year),
        Transform::Month => Some(DateOp::Month),
        _ => None,
    }
}

fn date(
    p: &Pseudonymizer,
    t: &Transform,
    ty: ColumnType,
    fmt: Format,
    v: &[u8],
    out: &mut Vec<u8>,
) -> Option<()> {
    let op = date_op(p, t)?;
    let prf = &p.keys.date;
    match (ty.kind(), fmt) {
        (Kind::Date, Format::Text) => dates::text_value(prf, op, v, Range::Date, out),
        (Kind::Date, Format::Binary) => dates::binary_date(prf, op, v, out),
        (_, Format::Text) => dates::text_value(prf, op, v, Range::Timestamp, out),
        (_, Format::Binary) => dates::binary_timestamp(prf, op, v, out),
    }
}

fn bytea(p: &Pseudonymizer, t: &Transform, fmt: Format, v: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if *t != Transform::Token {
        return None;
    }
    let tag = match fmt {
        Format::Text => p.keys.token.tag(b'b', &text::parse_bytea(v)?),
        Format::Binary => p.keys.token.tag(b'b', v),
    };
    match fmt {
        Format::Text => text::write_bytea(&tag, out),
        Format::Binary => out.extend_from_slice(&tag),
    }
    Some(())
}

fn json_value(
    p: &Pseudonymizer,
    t: &Transform,
    ty: ColumnType,
    fmt: Format,
    v: &[u8],
    out: &mut Vec<u8>,
) -> Option<()> {
    let Transform::Json { keys } = t else {
        return None;
    };
    let jsonb_binary = ty.kind() == Kind::Jsonb && fmt == Format::Binary;
    let doc = if jsonb_binary {
        let (&version, rest) = v.split_first()?;
        if version != binary::JSONB_VERSION {
            return None;
        }
        out.push(version);
        rest
    } else {
        v
    };
    json::rewrite(p, keys, doc, out)
}

/// A policy constant, parsed as the column's type and written in `fmt`.
fn constant(value: &str, ty: ColumnType, fmt: Format, out: &mut Vec<u8>) -> Option<()> {
    let v = value.as_bytes();
    match ty.kind() {
        Kind::Text => {
            let start = out.len();
            out.extend_from_slice(v);
            ty.text_limit().fit_tail(out, start).then_some(())
        }
        Kind::Int(w) => {
            let x = text::parse_int(v).filter(|&x| w.contains(x))?;
            match fmt {
                Format::Text => text::write_int(x, out),
                Format::Binary => binary::write_int(w, x, out)?,
            }
            Some(())
        }
        Kind::Numeric => {
            let n = numeric::parse_text(v)?;
            if let (Numeric::Finite(d), Some((digits, scale))) = (&n, ty.numeric_limits()) {
                if d.int.len() as i64 > i64::from(digits)
                    || d.frac.len() as i64 > i64::from(scale.max(0))
                {
                    return None;
                }
            }
            match fmt {
                Format::Text => numeric::write_text(&n, out),
                Format::Binary => numeric::write_binary(&n, out)?,
            }
            Some(())
        }
        Kind::Uuid => {
            let u = text::parse_uuid(v)?;
            match fmt {
                Format::Text => text::write_uuid(&u, out),
                Format::Binary => out.extend_from_slice(&u),
            }
            Some(())
        }
        Kind::Bool => {
            let b = text::parse_bool(v)?;
            out.push(match fmt {
                Format::Text if b => b't',
                Format::Text => b'f',
                Format::Binary => u8::from(b),
            });
            Some(())
        }
        Kind::Bytea => {
            let b = text::parse_bytea(v)?;
            match fmt {
                Format::Text => text::write_bytea(&b, out),
                Format::Binary => out.extend_from_slice(&b),
            }
            Some(())
        }
        Kind::Date | Kind::Timestamp => constant_date(v, ty, fmt, out),
        Kind::Json | Kind::Jsonb => {
            let doc: serde_json::Value = serde_json::from_slice(v).ok()?;
            if ty.kind() == Kind::Jsonb && fmt == Format::Binary {
                out.push(binary::JSONB_VERSION);
            }
            serde_json::to_writer(out, &doc).ok()
        }
        Kind::Other => None,
    }
}

fn constant_date(v: &[u8], ty: ColumnType, fmt: Format, out: &mut Vec<u8>) -> Option<()> {
    let is_date = ty.kind() == Kind::Date;
    if let Some(positive) = text::parse_infinity(v) {
        match (fmt, is_date) {
            (Format::Text, _) => out.extend_from_slice(v),
            (Format::Binary, true) => {
                out.extend_from_slice(&if positive { i32::MAX } else { i32::MIN }.to_be_bytes())
            }
            (Format::Binary, false) => {
                out.extend_from_slice(&if positive { i64::MAX } else { i64::MIN }.to_be_bytes())
            }
        }
        return Some(());
    }
    let iso = calendar::parse_iso(v)?;
    if is_date && !iso.time.is_empty() {
        return None;
    }
    match (fmt, is_date) {
        (Format::Text, _) => out.extend_from_slice(v),
        (Format::Binary, true) => {
            out.extend_from_slice(&i32::try_from(iso.days).ok()?.to_be_bytes())
        }
        (Format::Binary, false) => {
            let us = calendar::iso_micros(&iso)
                .filter(|us| (calendar::TS_MIN..calendar::TS_END).contains(us))?;
            out.extend_from_slice(&us.to_be_bytes());
        }
    }
    Some(())
}
