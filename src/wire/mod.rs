//! The PostgreSQL wire protocol: raw frames over TCP or TLS.
//!
//! This module knows the shape of the protocol (startup packets, tagged
//! frames, the SSL/GSS negotiation, cancel keys) and nothing of policy.
//! Frames are kept as the raw bytes the peer sent; `pgwire` codecs decode a
//! frame only where its content matters.

mod conn;
mod error;
mod kind;
pub mod messages;
mod scan;
mod startup;
mod stream;
pub mod tls;
mod writer;

pub use conn::{Conn, Frame};
pub use error::WireError;
pub use kind::{BackendKind, FrontendKind};
pub(crate) use scan::frame_len;
pub use scan::FrameScanner;
pub use startup::{
    InitialPacket, StartupMessage, GSSENC_REQUEST_CODE, MAX_STARTUP_PACKET_LEN, SSL_REQUEST_CODE,
};
pub use stream::Stream;
pub use writer::FrameWriter;

/// Length of a tagged frame header: one type byte and a 4-byte length.
pub const HEADER_LEN: usize = 5;

/// Message type bytes used by copyguard.
pub mod tag {
    /// Authentication request (backend).
    pub const AUTHENTICATION: u8 = b'R';
    /// BackendKeyData (backend).
    pub const BACKEND_KEY_DATA: u8 = b'K';
    /// ErrorResponse (backend).
    pub const ERROR_RESPONSE: u8 = b'E';
    /// NoticeResponse (backend).
    pub const NOTICE_RESPONSE: u8 = b'N';
    /// NegotiateProtocolVersion (backend).
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
    /// ParameterStatus (backend).
    pub const PARAMETER_STATUS: u8 = b'S';
    /// ReadyForQuery (backend).
    pub const READY_FOR_QUERY: u8 = b'Z';
    /// PasswordMessage, SASLInitialResponse and SASLResponse (frontend).
    pub const PASSWORD: u8 = b'p';
    /// Terminate (frontend).
    pub const TERMINATE: u8 = b'X';
}
