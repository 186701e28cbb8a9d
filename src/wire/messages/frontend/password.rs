//! PasswordMessage (client to server).

use crate::wire::messages::read::malformed;
use crate::wire::{tag, Frame, WireError};

/// Reads a PasswordMessage ('p') holding a cleartext password.
pub fn parse_password(frame: &Frame) -> Result<String, WireError> {
    if frame.tag() != tag::PASSWORD {
        return Err(malformed("PasswordMessage", "wrong message type"));
    }
    let body = frame.body();
    match body.split_last() {
        Some((0, pw)) if !pw.contains(&0) => String::from_utf8(pw.to_vec())
            .map_err(|_| malformed("PasswordMessage", "password is not UTF-8")),
        _ => Err(malformed("PasswordMessage", "not a single string")),
    }
}
