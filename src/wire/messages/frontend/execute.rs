//! Execute (client to server).

use crate::wire::messages::read::split_cstr;
use crate::wire::{Frame, WireError};

/// Reads the portal name of an Execute ('E') message.
pub fn parse_execute_portal(frame: &Frame) -> Result<String, WireError> {
    Ok(split_cstr(frame.body(), "Execute")?.0)
}
