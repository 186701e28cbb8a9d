//! Authentication requests (server to client).

use crate::wire::messages::encode;
use crate::wire::messages::read::{cstrings, read_i32};
use crate::wire::{Frame, WireError};
use bytes::Bytes;
use pgwire::messages::startup::Authentication;

/// AuthenticationCleartextPassword.
pub fn auth_cleartext_password() -> Bytes {
    encode(&Authentication::CleartextPassword)
}

/// AuthenticationSASL listing `mechanisms`.
pub fn auth_sasl(mechanisms: &[String]) -> Bytes {
    encode(&Authentication::SASL(mechanisms.to_vec()))
}

/// What an Authentication request from the server asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthRequest {
    /// AuthenticationOk.
    Ok,
    /// AuthenticationSASL with these mechanisms.
    Sasl(Vec<String>),
    /// AuthenticationSASLContinue.
    SaslContinue(Bytes),
    /// AuthenticationSASLFinal.
    SaslFinal(Bytes),
    /// Any other request that expects a PasswordMessage-family answer
    /// (cleartext, md5, GSS, SSPI), identified by its code.
    Other(i32),
}

/// Reads an Authentication ('R') frame.
pub fn parse_auth_request(frame: &Frame) -> Result<AuthRequest, WireError> {
    let body = frame.body();
    let code = read_i32(body, 0, "Authentication")?;
    let rest = &body[4..];
    Ok(match code {
        0 => AuthRequest::Ok,
        10 => AuthRequest::Sasl(cstrings(rest, "AuthenticationSASL")?),
        11 => AuthRequest::SaslContinue(Bytes::copy_from_slice(rest)),
        12 => AuthRequest::SaslFinal(Bytes::copy_from_slice(rest)),
        other => AuthRequest::Other(other),
    })
}
