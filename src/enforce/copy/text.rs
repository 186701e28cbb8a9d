//! Text format: rows split at unescaped delimiters, fields unescaped as
//! `CopyReadAttributesText` does and written back escaped as
//! `CopyAttributeOutText` does.

use super::*;
use crate::enforce::group::{Part, Value};

impl Work {
    pub(super) fn text_rows(
        &mut self,
        lines: &[&[u8]],
        delim: u8,
        null: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
        let read = |g: &mut Group, plan: &ColumnPlan, line: &[u8]| {
            let body = &line[..line.len() - 1];
            let (mut fields, mut at, plain) = plain_fields(g, plan, body, (delim, b'\\'), null)?;
            if plain {
                return Ok(());
            }
            loop {
                let end = text_field_end(body, at, delim);
                let raw = &body[at..end];
                let value = match plan.column(fields)? {
                    None => None,
                    Some(_) if raw == null => Some(Value::Null),
                    Some(_) if find2(raw, b'\\', b'\\').is_none() => Some(Value::InRow(at..end)),
                    Some(_) => Some(g.decoded(text_unescape, raw)),
                };
                g.field(end, value);
                fields += 1;
                if end == body.len() {
                    return Ok(());
                }
                at = end + 1;
            }
        };
        let plain = std::mem::take(&mut self.plain);
        let write = |row: Row<'_>, out: &mut Vec<u8>| {
            for (k, part) in row.parts().enumerate() {
                if k > 0 {
                    out.push(delim);
                }
                match part {
                    Part::Raw(run) => run.put(out),
                    Part::StandIn(_, None) => out.extend_from_slice(null),
                    Part::StandIn(i, Some(v))
                        if !plain[i] && needs_text_escape(v.bytes(), delim) =>
                    {
                        text_escape(v.bytes(), delim, out)
                    }
                    Part::StandIn(_, Some(v)) => v.put(out),
                }
            }
            out.push(b'\n');
            Ok(())
        };
        let r = self.rows(lines, Format::Text, read, write, out);
        self.plain = plain;
        r
    }
}

/// The end of the text-format field starting at `at`: the next unescaped
/// delimiter, or the end of the line.
pub(super) fn text_field_end(body: &[u8], mut at: usize, delim: u8) -> usize {
    while let Some(i) = body.get(at..).and_then(|rest| find2(rest, delim, b'\\')) {
        if body[at + i] == delim {
            return at + i;
        }
        at += i + 2;
    }
    body.len()
}

/// Appends a text-format field with its backslash escapes decoded.
pub(super) fn text_unescape(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(n) = find2(&raw[i..], b'\\', b'\\') {
        out.extend_from_slice(&raw[i..i + n]);
        i += n + 1;
        let Some(&e) = raw.get(i) else {
            out.push(b'\\');
            return;
        };
        i += 1;
        match e {
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u8;
                for _ in 0..2 {
                    match raw.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d as u8;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(v);
            }
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            other => out.push(other),
        }
    }
    out.extend_from_slice(&raw[i..]);
}

/// Whether `v` has a byte text format escapes.
pub(super) fn needs_text_escape(v: &[u8], delim: u8) -> bool {
    has_byte(v, 0x20, [b'\\', delim])
}

/// Appends a value escaped as `CopyAttributeOutText` does.
pub(super) fn text_escape(v: &[u8], delim: u8, out: &mut Vec<u8>) {
    let mut run = 0;
    for (i, &c) in v.iter().enumerate() {
        if c >= 0x20 && c != b'\\' && c != delim {
            continue;
        }
        let e = match c {
            8 => b'b',
            12 => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            11 => b'v',
            b'\\' => b'\\',
            _ if c == delim => c,
            _ => continue,
        };
        out.extend_from_slice(&v[run..i]);
        out.extend_from_slice(&[b'\\', e]);
        run = i + 1;
    }
    out.extend_from_slice(&v[run..]);
}
