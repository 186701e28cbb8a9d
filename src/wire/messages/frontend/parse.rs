//! Parse (client to server).

use crate::wire::messages::frame;
use crate::wire::messages::read::split_cstr;
use crate::wire::{Frame, WireError};
use bytes::Bytes;

/// A Parse message: statement name, SQL text and parameter type OIDs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseMessage {
    /// Prepared statement name ("" for the unnamed statement).
    pub name: String,
    /// SQL text.
    pub sql: String,
}

/// Reads a Parse ('P') message.
pub fn parse_parse(frame: &Frame) -> Result<ParseMessage, WireError> {
    let body = frame.body();
    let (name, rest) = split_cstr(body, "Parse")?;
    let (sql, _) = split_cstr(rest, "Parse")?;
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
