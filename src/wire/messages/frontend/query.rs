//! Query (client to server): the simple query protocol.

use crate::wire::messages::frame;
use crate::wire::messages::read::malformed;
use crate::wire::{Frame, WireError};
use bytes::Bytes;

/// A simple Query ('Q') message.
pub fn query(sql: &str) -> Bytes {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    frame(b'Q', &body)
}

/// Reads the SQL text of a Query ('Q') message.
pub fn parse_query(frame: &Frame) -> Result<std::borrow::Cow<'_, str>, WireError> {
    match frame.body().split_last() {
        Some((0, text)) => Ok(match std::str::from_utf8(text) {
            Ok(sql) => std::borrow::Cow::Borrowed(sql),
            Err(_) => String::from_utf8_lossy(text),
        }),
        _ => Err(malformed("Query", "not a terminated string")),
    }
}
