//! CSV format: fields split and quoted by `CopyAttributeOutCSV`'s rules.

use super::*;
use crate::enforce::group::{Part, Value};

impl Work {
    pub(super) fn csv_rows(
        &mut self,
        lines: &[&[u8]],
        opts: &Csv<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RewriteError> {
        let read = |g: &mut Group, plan: &ColumnPlan, line: &[u8]| {
            let body = &line[..line.len() - 1];
            let special = (opts.delimiter, opts.quote);
            let (mut fields, mut at, plain) = plain_fields(g, plan, body, special, opts.null)?;
            if plain {
                return Ok(());
            }
            loop {
                let (end, quoted) = opts.field_end(body, at)?;
                let raw = &body[at..end];
                let value = match plan.column(fields)? {
                    None => None,
                    Some(_) if !quoted && raw == opts.null => Some(Value::Null),
                    Some(_) if !quoted => Some(Value::InRow(at..end)),
                    Some(_) => Some(g.decoded(|raw, out| opts.unquote(raw, out), raw)),
                };
                g.field(end, value);
                fields += 1;
                if end == body.len() {
                    return Ok(());
                }
                if body[end] != opts.delimiter {
                    return Err(RewriteError::MalformedCopy("text after a closing quote"));
                }
                at = end + 1;
            }
        };
        let single = self.plan.len() == 1;
        let plain = std::mem::take(&mut self.plain);
        let write = |row: Row<'_>, out: &mut Vec<u8>| {
            for (k, part) in row.parts().enumerate() {
                if k > 0 {
                    out.push(opts.delimiter);
                }
                match part {
                    Part::Raw(run) => run.put(out),
                    Part::StandIn(_, None) => out.extend_from_slice(opts.null),
                    Part::StandIn(i, Some(v)) => {
                        let force = match opts.force_quote {
                            ForceQuote::Off => false,
                            ForceQuote::All => true,
                            ForceQuote::Columns(cols) => cols.contains(&i),
                        };
                        if opts.needs_quotes(v.bytes(), force, single, plain[i]) {
                            opts.write_quoted(v.bytes(), out);
                        } else {
                            v.put(out);
                        }
                    }
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

/// CSV options.
pub(super) struct Csv<'a> {
    pub(super) delimiter: u8,
    pub(super) quote: u8,
    pub(super) escape: u8,
    pub(super) null: &'a [u8],
    pub(super) force_quote: &'a ForceQuote,
}

impl Csv<'_> {
    /// The end of the field starting at `at` and whether it is quoted.
    pub(super) fn field_end(&self, body: &[u8], at: usize) -> Result<(usize, bool), RewriteError> {
        if body.get(at) != Some(&self.quote) {
            let rest = &body[at..];
            return match find2(rest, self.delimiter, self.quote) {
                Some(i) if rest[i] == self.quote => Err(RewriteError::MalformedCopy(
                    "quote inside an unquoted CSV field",
                )),
                Some(i) => Ok((at + i, false)),
                None => Ok((body.len(), false)),
            };
        }
        let mut i = at + 1;
        while let Some(k) = find2(&body[i..], self.quote, self.escape) {
            i += k;
            let escaped_pair = if self.escape == self.quote {
                body.get(i + 1) == Some(&self.quote)
            } else {
                body[i] == self.escape
            };
            if !escaped_pair {
                return Ok((i + 1, true));
            }
            i += 2;
            if i > body.len() {
                break;
            }
        }
        Err(RewriteError::MalformedCopy("unterminated CSV quote"))
    }

    /// Appends a quoted field's content, decoded.
    pub(super) fn unquote(&self, raw: &[u8], out: &mut Vec<u8>) {
        let inner = &raw[1..raw.len() - 1];
        let mut i = 0;
        while let Some(k) = find2(&inner[i..], self.escape, self.escape) {
            let at = i + k;
            match inner.get(at + 1) {
                Some(&n) if n == self.quote || n == self.escape => {
                    out.extend_from_slice(&inner[i..at]);
                    out.push(n);
                    i = at + 2;
                }
                _ => {
                    out.extend_from_slice(&inner[i..=at]);
                    i = at + 1;
                }
            }
        }
        out.extend_from_slice(&inner[i..]);
    }

    /// Whether `CopyAttributeOutCSV` would quote `v`; `plain`: `v` holds
    /// no delimiter, quote or line end (known without looking).
    pub(super) fn needs_quotes(&self, v: &[u8], force: bool, single: bool, plain: bool) -> bool {
        force
            || v == self.null
            || (single && v == b"\\.")
            || (!plain && has_byte(v, 0, [self.delimiter, self.quote, b'\n', b'\r']))
    }

    /// Appends `v` quoted, escaping quote and escape characters.
    pub(super) fn write_quoted(&self, v: &[u8], out: &mut Vec<u8>) {
        out.push(self.quote);
        let mut run = 0;
        for (i, &c) in v.iter().enumerate() {
            if c == self.quote || c == self.escape {
                out.extend_from_slice(&v[run..i]);
                out.push(self.escape);
                run = i;
            }
        }
        out.extend_from_slice(&v[run..]);
        out.push(self.quote);
    }
}
