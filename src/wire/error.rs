use std::io;

/// A failure to read or write PostgreSQL frames.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a message")]
    UnexpectedEof,
    /// A frame declares a length above the configured maximum.
    #[error("message of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// A frame declares a length that cannot be valid.
    #[error("invalid message length {0}")]
    InvalidLength(i64),
    /// The client asked for a protocol major version other than 3.
    #[error("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.2")]
    UnsupportedProtocol {
        /// Requested major version.
        major: u16,
        /// Requested minor version.
        minor: u16,
    },
    /// A startup-phase packet is malformed.
    #[error("invalid startup packet: {0}")]
    InvalidStartup(String),
    /// A frame's content could not be decoded.
    #[error("malformed {what} message: {detail}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}
