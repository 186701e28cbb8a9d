//! NegotiateProtocolVersion (server to client).

use crate::wire::messages::encode;
use crate::wire::messages::read::{cstrings_n, malformed, read_i32};
use crate::wire::{Frame, WireError};
use bytes::Bytes;
use pgwire::messages::startup::NegotiateProtocolVersion;

/// NegotiateProtocolVersion for protocol 3.`minor` and the options not
/// understood. The version is sent in full (major << 16 | minor), as
/// PostgreSQL servers do.
pub fn negotiate_protocol_version(minor: u16, unsupported: &[String]) -> Bytes {
    encode(&NegotiateProtocolVersion::new(
        (3 << 16) | i32::from(minor),
        unsupported.to_vec(),
    ))
}

/// Reads NegotiateProtocolVersion: the newest minor version and the
/// options the server did not recognize.
pub fn parse_negotiate_protocol_version(frame: &Frame) -> Result<(u16, Vec<String>), WireError> {
    let body = frame.body();
    let version = read_i32(body, 0, "NegotiateProtocolVersion")?;
    let count = read_i32(body, 4, "NegotiateProtocolVersion")?;
    let options = cstrings_n(&body[8..], "NegotiateProtocolVersion")?;
    if usize::try_from(count).ok() != Some(options.len()) {
        return Err(malformed(
            "NegotiateProtocolVersion",
            "option count mismatch",
        ));
    }
    let minor = if version >= 1 << 16 {
        (version & 0xffff) as u16
    } else {
        version as u16
    };
    Ok((minor, options))
}
