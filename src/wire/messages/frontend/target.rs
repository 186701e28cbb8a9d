//! Describe and Close (client to server): a statement or portal by name.

use crate::wire::messages::frame;
use std::borrow::Cow;

use crate::wire::messages::read::{malformed, split_cstr_ref};
use crate::wire::{Frame, WireError};
use bytes::Bytes;

/// Reads a Describe ('D') or Close ('C') message: kind byte ('S' or 'P') and name.
pub fn parse_target(frame: &Frame) -> Result<(u8, Cow<'_, str>), WireError> {
    let (&kind, rest) = frame
        .body()
        .split_first()
        .ok_or_else(|| malformed("Describe/Close", "empty"))?;
    let (name, _) = split_cstr_ref(rest, "Describe/Close")?;
    Ok((kind, name))
}

/// A Describe message for a portal or statement.
pub fn describe(kind: u8, name: &str) -> Bytes {
    target(b'D', kind, name)
}

/// A Close message for a portal or statement.
pub fn close(kind: u8, name: &str) -> Bytes {
    target(b'C', kind, name)
}

/// A Describe or Close (`tag`) of the portal or statement (`kind`) `name`.
fn target(tag: u8, kind: u8, name: &str) -> Bytes {
    let mut body = vec![kind];
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    frame(tag, &body)
}
