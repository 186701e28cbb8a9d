//! BackendKeyData (server to client): the cancel key.

use crate::wire::messages::encode;
use crate::wire::messages::read::{malformed, read_i32};
use crate::wire::{Frame, WireError};
use bytes::Bytes;
use pgwire::messages::startup::{BackendKeyData, SecretKey};

/// BackendKeyData with copyguard's own process id and secret key.
pub fn backend_key_data(pid: i32, secret: &[u8]) -> Bytes {
    encode(&BackendKeyData::new(
        pid,
        SecretKey::Bytes(Bytes::copy_from_slice(secret)),
    ))
}

/// Reads BackendKeyData: process id and secret key.
pub fn parse_backend_key_data(frame: &Frame) -> Result<(i32, Bytes), WireError> {
    let body = frame.body();
    let pid = read_i32(body, 0, "BackendKeyData")?;
    let secret = &body[4..];
    if !(4..=256).contains(&secret.len()) {
        return Err(malformed(
            "BackendKeyData",
            format!("secret key of {} bytes", secret.len()),
        ));
    }
    Ok((pid, Bytes::copy_from_slice(secret)))
}
