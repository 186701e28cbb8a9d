//! NotificationResponse (server to client).

use crate::wire::messages::frame;
use crate::wire::messages::read::{cstrings_n, malformed, read_i32};
use crate::wire::{Frame, WireError};
use bytes::Bytes;

/// Reads a NotificationResponse ('A'): process id, channel, payload.
pub fn parse_notification(frame: &Frame) -> Result<(i32, String, String), WireError> {
    let body = frame.body();
    let pid = read_i32(body, 0, "NotificationResponse")?;
    let mut parts = cstrings_n(&body[4..], "NotificationResponse")?.into_iter();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(channel), Some(payload), None) => Ok((pid, channel, payload)),
        _ => Err(malformed(
            "NotificationResponse",
            "expected channel and payload",
        )),
    }
}

/// Encodes a NotificationResponse.
pub fn notification(pid: i32, channel: &str, payload: &str) -> Bytes {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend_from_slice(channel.as_bytes());
    body.push(0);
    body.extend_from_slice(payload.as_bytes());
    body.push(0);
    frame(b'A', &body)
}
