//! Bounds-checked readers: a malformed frame is an error, never a panic.

use std::borrow::Cow;

use crate::wire::WireError;

/// A non-negative 16-bit count at `at`.
pub(super) fn count(body: &[u8], at: usize, what: &'static str) -> Result<usize, WireError> {
    usize::try_from(read_i16(body, at, what)?).map_err(|_| malformed(what, "negative count"))
}

/// The C string that starts `body`, borrowed when it is UTF-8 (names of
/// statements and portals, read per message without allocating; Parse's
/// SQL text, read without a copy), and the bytes after it.
pub(super) fn split_cstr_ref<'a>(
    body: &'a [u8],
    what: &'static str,
) -> Result<(Cow<'a, str>, &'a [u8]), WireError> {
    let end = body
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| malformed(what, "unterminated string"))?;
    let text = match std::str::from_utf8(&body[..end]) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(&body[..end]),
    };
    Ok((text, &body[end + 1..]))
}

/// The bytes after the C string that starts `body`, without reading the
/// string itself (no allocation).
pub(super) fn skip_cstr<'a>(body: &'a [u8], what: &'static str) -> Result<&'a [u8], WireError> {
    body.iter()
        .position(|&b| b == 0)
        .map(|end| &body[end + 1..])
        .ok_or_else(|| malformed(what, "unterminated string"))
}

pub(super) fn read_i16(body: &[u8], at: usize, what: &'static str) -> Result<i16, WireError> {
    body.get(at..at + 2)
        .map(|b| i16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| malformed(what, "message too short"))
}

pub(super) fn read_i32(body: &[u8], at: usize, what: &'static str) -> Result<i32, WireError> {
    body.get(at..at + 4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| malformed(what, "message too short"))
}

/// A list of C strings ended by an empty string.
pub(super) fn cstrings(mut body: &[u8], what: &'static str) -> Result<Vec<String>, WireError> {
    let mut out = Vec::new();
    loop {
        let end = body
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed(what, "unterminated string"))?;
        if end == 0 {
            return Ok(out);
        }
        out.push(String::from_utf8_lossy(&body[..end]).into_owned());
        body = &body[end + 1..];
    }
}

/// C strings filling `body` exactly.
pub(super) fn cstrings_n(mut body: &[u8], what: &'static str) -> Result<Vec<String>, WireError> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let end = body
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed(what, "unterminated string"))?;
        out.push(String::from_utf8_lossy(&body[..end]).into_owned());
        body = &body[end + 1..];
    }
    Ok(out)
}

pub(super) fn malformed(what: &'static str, detail: impl Into<String>) -> WireError {
    WireError::Malformed {
        what,
        detail: detail.into(),
    }
}
