//! Bind (client to server).

use std::borrow::Cow;

use bytes::Bytes;

use crate::wire::messages::frame;
use crate::wire::messages::read::{malformed, read_i16, read_i32, skip_cstr, split_cstr_ref};
use crate::wire::{Frame, WireError};

/// Encodes a Bind of `statement` to `portal` with no parameters and
/// text results.
pub fn bind_message(portal: &str, statement: &str) -> Bytes {
    let mut body = Vec::with_capacity(portal.len() + statement.len() + 8);
    body.extend_from_slice(portal.as_bytes());
    body.push(0);
    body.extend_from_slice(statement.as_bytes());
    body.push(0);
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    frame(b'B', &body)
}

/// Reads the portal and statement names of a Bind ('B') message.
pub fn parse_bind_names(frame: &Frame) -> Result<(Cow<'_, str>, Cow<'_, str>), WireError> {
    let (portal, rest) = split_cstr_ref(frame.body(), "Bind")?;
    let (statement, _) = split_cstr_ref(rest, "Bind")?;
    Ok((portal, statement))
}

/// The result format codes a Bind ('B') message asks for: none (all
/// text), one (for every column) or one per column.
pub fn parse_bind_result_formats(frame: &Frame) -> Result<Vec<i16>, WireError> {
    let body = frame.body();
    let rest = skip_cstr(body, "Bind")?;
    let rest = skip_cstr(rest, "Bind")?;
    let mut at = body.len() - rest.len();
    let n = read_i16(body, at, "Bind")?;
    at += 2 + 2 * usize::try_from(n).map_err(|_| malformed("Bind", "negative count"))?;
    let params = read_i16(body, at, "Bind")?;
    at += 2;
    for _ in 0..params {
        let len = read_i32(body, at, "Bind")?;
        at += 4 + usize::try_from(len).unwrap_or(0);
    }
    let n = read_i16(body, at, "Bind")?;
    at += 2;
    (0..usize::try_from(n).map_err(|_| malformed("Bind", "negative count"))?)
        .map(|i| read_i16(body, at + 2 * i, "Bind"))
        .collect()
}
