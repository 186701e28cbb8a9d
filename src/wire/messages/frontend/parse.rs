//! Parse (client to server).

use std::borrow::Cow;

use crate::wire::messages::frame;
use crate::wire::messages::read::split_cstr_ref;
use crate::wire::{Frame, WireError};
use bytes::Bytes;

/// A Parse message: statement name and SQL text, borrowed from the frame
/// when they are UTF-8 (a large statement is not copied to be read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseMessage<'a> {
    /// Prepared statement name ("" for the unnamed statement).
    pub name: Cow<'a, str>,
    /// SQL text.
    pub sql: Cow<'a, str>,
}

/// Reads a Parse ('P') message.
pub fn parse_parse(frame: &Frame) -> Result<ParseMessage<'_>, WireError> {
    let body = frame.body();
    let (name, rest) = split_cstr_ref(body, "Parse")?;
    let (sql, _) = split_cstr_ref(rest, "Parse")?;
    Ok(ParseMessage { name, sql })
}

/// Encodes a Parse message with no parameter types.
pub fn parse_message(name: &str, sql: &str) -> Bytes {
    let mut body = Vec::new();
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    body.extend_from_slice(sql.as_bytes());
    body.push(0);
    body.extend_from_slice(&0i16.to_be_bytes());
    frame(b'P', &body)
}
