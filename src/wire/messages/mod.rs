//! Building and reading the few messages copyguard itself must produce or
//! understand, one file per message (or tiny family), by direction:
//! [`backend`] (server to client) and [`frontend`] (client to server).
//! Frames stay the raw bytes the peer sent, forwarded as they came; these
//! decode them on demand. Encoding goes through `pgwire`'s codecs; reading
//! is defensive (bounds-checked) because a malformed frame must never panic
//! the proxy.

use bytes::{Bytes, BytesMut};
use pgwire::messages::Message;

mod backend;
mod frontend;
mod read;

pub use backend::*;
pub use frontend::*;

fn encode(msg: &impl Message) -> Bytes {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf).expect("fixed-size message encodes");
    buf.freeze()
}

/// A tagged frame carrying `body` (used for SASL messages to the upstream).
pub fn frame(tag: u8, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(body.len() + 5);
    buf.extend_from_slice(&[tag]);
    buf.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    buf.extend_from_slice(body);
    buf.freeze()
}

#[cfg(test)]
mod tests;
