//! Execute (client to server).

use bytes::Bytes;

use crate::wire::messages::frame;
use std::borrow::Cow;

use crate::wire::messages::read::split_cstr_ref;
use crate::wire::{Frame, WireError};

/// Encodes an Execute of `portal` returning at most `max_rows` rows (0:
/// all).
pub fn execute_message(portal: &str, max_rows: i32) -> Bytes {
    let mut body = Vec::with_capacity(portal.len() + 5);
    body.extend_from_slice(portal.as_bytes());
    body.push(0);
    body.extend_from_slice(&max_rows.to_be_bytes());
    frame(b'E', &body)
}

/// Reads the portal name of an Execute ('E') message.
pub fn parse_execute_portal(frame: &Frame) -> Result<Cow<'_, str>, WireError> {
    Ok(split_cstr_ref(frame.body(), "Execute")?.0)
}
