//! ParameterStatus (server to client).

use crate::wire::messages::read::{cstrings_n, malformed};
use crate::wire::{Frame, WireError};

/// Reads ParameterStatus: name and value.
pub fn parse_parameter_status(frame: &Frame) -> Result<(String, String), WireError> {
    let mut parts = cstrings_n(frame.body(), "ParameterStatus")?.into_iter();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(k), Some(v), None) => Ok((k, v)),
        _ => Err(malformed("ParameterStatus", "expected a name and a value")),
    }
}
