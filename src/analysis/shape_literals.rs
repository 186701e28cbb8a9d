//! The literals and comments of the shape scanner ([`super::scan`]), read
//! exactly as sqlparser's PostgreSQL tokenizer reads them: quoted text
//! with doubled quotes, `E'…'` escapes, dollar-quote tags and nested
//! block comments. A literal that must be rebuilt is kept only up to a
//! given length, so that a huge one is never copied whole.

use std::borrow::Cow;

/// A literal's text with its quotes or escapes undone, kept up to `keep`
/// bytes and the rest of the character that crosses it.
struct Undone {
    text: String,
    keep: usize,
}

impl Undone {
    fn new(keep: usize) -> Undone {
        Undone {
            text: String::new(),
            keep,
        }
    }

    fn push_str(&mut self, s: &str) {
        if self.text.len() > self.keep {
            return;
        }
        let room = (self.keep - self.text.len()).saturating_add(1);
        let mut end = room.min(s.len());
        while !s.is_char_boundary(end) {
            end += 1;
        }
        self.text.push_str(&s[..end]);
    }

    fn push(&mut self, c: char) {
        if self.text.len() <= self.keep {
            self.text.push(c);
        }
    }
}

/// The text of the string or quoted identifier whose opening quote is at
/// byte `at` (a doubled quote inside read as one, as sqlparser reads it)
/// and the byte after its closing quote; `None` when it is not closed.
#[inline(always)]
pub(super) fn quoted(sql: &str, at: usize, keep: usize) -> Option<(Cow<'_, str>, usize)> {
    let b = sql.as_bytes();
    let quote = b[at];
    let mut close = at + 1;
    while *b.get(close)? != quote {
        close += 1;
    }
    if b.get(close + 1) != Some(&quote) {
        return Some((Cow::Borrowed(&sql[at + 1..close]), close + 1));
    }
    undo_quotes(sql, at, keep)
}

/// [`quoted`] for a text with a doubled quote.
#[cold]
fn undo_quotes(sql: &str, at: usize, keep: usize) -> Option<(Cow<'_, str>, usize)> {
    let b = sql.as_bytes();
    let quote = b[at];
    let mut from = at + 1;
    let mut undone: Option<Undone> = None;
    loop {
        let close = from + b[from..].iter().position(|&c| c == quote)?;
        if b.get(close + 1) != Some(&quote) {
            let text = match undone {
                None => Cow::Borrowed(&sql[from..close]),
                Some(mut undone) => {
                    undone.push_str(&sql[from..close]);
                    Cow::Owned(undone.text)
                }
            };
            return Some((text, close + 1));
        }
        undone
            .get_or_insert_with(|| Undone::new(keep))
            .push_str(&sql[from..=close]);
        from = close + 2;
    }
}

/// Where `$tag$` first starts in `text`.
pub(super) fn find_tag(text: &str, tag: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut from = 0;
    loop {
        let at = from + text[from..].find('$')?;
        let rest = &b[at + 1..];
        if rest.starts_with(tag.as_bytes()) && rest.get(tag.len()) == Some(&b'$') {
            return Some(at);
        }
        from = at + 1;
    }
}

/// The byte after the `*/` closing the block comment whose text starts at
/// byte `from`, nested comments counted as sqlparser counts them.
pub(super) fn block_comment_end(b: &[u8], mut from: usize) -> Option<usize> {
    let mut depth = 1usize;
    loop {
        match (b.get(from)?, b.get(from + 1)) {
            (b'/', Some(b'*')) => {
                depth += 1;
                from += 2;
            }
            (b'*', Some(b'/')) => {
                depth -= 1;
                from += 2;
                if depth == 0 {
                    return Some(from);
                }
            }
            _ => from += 1,
        }
    }
}

/// The text of the `E'…'` string whose quote is at byte `at`, its escapes
/// undone exactly as sqlparser's tokenizer undoes them, and the byte after
/// its closing quote; `None` where that tokenizer fails (not closed, a
/// bad or NUL escape).
pub(super) fn escaped(sql: &str, at: usize, keep: usize) -> Option<(Cow<'_, str>, usize)> {
    let mut chars = sql[at + 1..].char_indices().peekable();
    let mut text = Undone::new(keep);
    while let Some((_, c)) = chars.next() {
        if c == '\'' {
            if chars.next_if(|&(_, c)| c == '\'').is_some() {
                text.push('\'');
                continue;
            }
            let end = chars.peek().map_or(sql.len(), |&(i, _)| at + 1 + i);
            return Some((Cow::Owned(text.text), end));
        }
        if c != '\\' {
            text.push(c);
            continue;
        }
        let c = match chars.next()?.1 {
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => unicode_escape(&mut chars, 4)?,
            'U' => unicode_escape(&mut chars, 8)?,
            'x' => {
                let digits = escape_digits(&mut chars, 2, |c| c.is_ascii_hexdigit());
                if digits.is_empty() {
                    'x'
                } else {
                    byte_escape(&digits, 16)?
                }
            }
            c if c.is_digit(8) => {
                let mut digits = String::from(c);
                digits.push_str(&escape_digits(&mut chars, 2, |c| c.is_digit(8)));
                byte_escape(&digits, 8)?
            }
            c => c,
        };
        if c == '\0' {
            return None;
        }
        text.push(c);
    }
    None
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// Up to `most` characters that are `digit`.
fn escape_digits(chars: &mut Chars<'_>, most: usize, digit: impl Fn(char) -> bool) -> String {
    let mut digits = String::new();
    while digits.len() < most {
        match chars.next_if(|&(_, c)| digit(c)) {
            Some((_, c)) => digits.push(c),
            None => break,
        }
    }
    digits
}

/// `\xhh` or `\ooo`: the byte's low 8 bits, ASCII only.
fn byte_escape(digits: &str, radix: u32) -> Option<char> {
    let n = u32::from_str_radix(digits, radix).ok()? & 0xFF;
    if n <= 127 {
        char::from_u32(n)
    } else {
        None
    }
}

/// `\uxxxx` or `\Uxxxxxxxx`: the next `len` characters, whatever they are,
/// read as a hexadecimal code point.
fn unicode_escape(chars: &mut Chars<'_>, len: usize) -> Option<char> {
    let mut digits = String::new();
    for _ in 0..len {
        digits.push(chars.next()?.1);
    }
    char::from_u32(u32::from_str_radix(&digits, 16).ok()?)
}

/// The text of the `X'…'` string whose quote is at byte `at`, read as
/// sqlparser's tokenizer reads it (a doubled quote as one quote, a
/// backslash and the character after it as `\0 \a \b \f \n \r \t \Z` or
/// that character), and the byte after its closing quote; `None` when it
/// is not closed.
pub(super) fn backslashed(sql: &str, at: usize, keep: usize) -> Option<(Cow<'_, str>, usize)> {
    with_escapes(sql, at, keep, |chars| {
        Some(match chars.next()?.1 {
            '0' => '\0',
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'Z' => '\u{1a}',
            c => c,
        })
    })
}

/// The text of the `U&'…'` string whose quote is at byte `at`, its
/// escapes undone as sqlparser's tokenizer undoes them (`''`, `\\`,
/// `\xxxx`, `\+xxxxxx`), and the byte after its closing quote; `None`
/// where that tokenizer fails (not closed, a bad escape).
pub(super) fn unicode(sql: &str, at: usize, keep: usize) -> Option<(Cow<'_, str>, usize)> {
    with_escapes(sql, at, keep, |chars| {
        if chars.next_if(|&(_, c)| c == '\\').is_some() {
            Some('\\')
        } else if chars.next_if(|&(_, c)| c == '+').is_some() {
            hex_char(chars, 6)
        } else {
            hex_char(chars, 4)
        }
    })
}

/// The text of the string whose quote is at byte `at`, a doubled quote
/// read as one quote and each backslash as `escape` reads what follows it
/// (`None`: the tokenizer fails there), and the byte after its closing
/// quote; `None` when it is not closed or an escape fails.
fn with_escapes(
    sql: &str,
    at: usize,
    keep: usize,
    escape: impl Fn(&mut Chars<'_>) -> Option<char>,
) -> Option<(Cow<'_, str>, usize)> {
    let mut chars = sql[at + 1..].char_indices().peekable();
    let mut text = Undone::new(keep);
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' => {
                if chars.next_if(|&(_, c)| c == '\'').is_some() {
                    text.push('\'');
                    continue;
                }
                return Some((Cow::Owned(text.text), at + 2 + i));
            }
            '\\' => text.push(escape(&mut chars)?),
            c => text.push(c),
        }
    }
    None
}

/// The character of the next `len` hexadecimal digits.
fn hex_char(chars: &mut Chars<'_>, len: usize) -> Option<char> {
    let mut code = 0u32;
    for _ in 0..len {
        code = code * 16 + chars.next()?.1.to_digit(16)?;
    }
    char::from_u32(code)
}
