//! Building and reading the few messages copyguard itself must produce or
//! understand. Encoding goes through `pgwire`'s codecs; reading is defensive
//! (bounds-checked) because a malformed frame must never panic the proxy.

use bytes::{Bytes, BytesMut};
use pgwire::messages::response::{ErrorResponse, NoticeResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{
    Authentication, BackendKeyData, NegotiateProtocolVersion, SecretKey,
};
use pgwire::messages::Message;

use super::{tag, Frame, WireError};

/// Severity of an error or notice copyguard sends itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The statement failed; the session goes on.
    Error,
    /// The session ends.
    Fatal,
    /// Informational notice.
    Notice,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
            Severity::Notice => "NOTICE",
        }
    }
}

/// The fields of an ErrorResponse or NoticeResponse produced by copyguard.
#[derive(Clone, Debug)]
pub struct ErrorFields {
    /// Severity.
    pub severity: Severity,
    /// Five-character SQLSTATE.
    pub code: &'static str,
    /// Primary message.
    pub message: String,
    /// Optional detail.
    pub detail: Option<String>,
    /// Optional hint.
    pub hint: Option<String>,
}

impl ErrorFields {
    /// An error with `severity`, `code` and `message`.
    pub fn new(severity: Severity, code: &'static str, message: impl Into<String>) -> Self {
        ErrorFields {
            severity,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    fn fields(&self) -> Vec<(u8, String)> {
        let mut fields = vec![
            (b'S', self.severity.as_str().to_owned()),
            (b'V', self.severity.as_str().to_owned()),
            (b'C', self.code.to_owned()),
            (b'M', self.message.clone()),
        ];
        if let Some(d) = &self.detail {
            fields.push((b'D', d.clone()));
        }
        if let Some(h) = &self.hint {
            fields.push((b'H', h.clone()));
        }
        fields
    }

    /// Encodes an ErrorResponse (or a NoticeResponse for [`Severity::Notice`]).
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        let result = if self.severity == Severity::Notice {
            NoticeResponse::new(self.fields()).encode(&mut buf)
        } else {
            ErrorResponse::new(self.fields()).encode(&mut buf)
        };
        result.expect("error fields encode");
        buf.freeze()
    }
}

fn encode(msg: &impl Message) -> Bytes {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf).expect("fixed-size message encodes");
    buf.freeze()
}

/// BackendKeyData with copyguard's own process id and secret key.
pub fn backend_key_data(pid: i32, secret: &[u8]) -> Bytes {
    encode(&BackendKeyData::new(
        pid,
        SecretKey::Bytes(Bytes::copy_from_slice(secret)),
    ))
}

/// NegotiateProtocolVersion for protocol 3.`minor` and the options not
/// understood. The version is sent in full (major << 16 | minor), as
/// PostgreSQL servers do.
pub fn negotiate_protocol_version(minor: u16, unsupported: &[String]) -> Bytes {
    encode(&NegotiateProtocolVersion::new(
        (3 << 16) | i32::from(minor),
        unsupported.to_vec(),
    ))
}

/// AuthenticationCleartextPassword.
pub fn auth_cleartext_password() -> Bytes {
    encode(&Authentication::CleartextPassword)
}

/// AuthenticationSASL listing `mechanisms`.
pub fn auth_sasl(mechanisms: &[String]) -> Bytes {
    encode(&Authentication::SASL(mechanisms.to_vec()))
}

/// ReadyForQuery with an idle transaction status.
pub fn ready_for_query_idle() -> Bytes {
    encode(&ReadyForQuery::new(TransactionStatus::Idle))
}

/// ReadyForQuery with transaction status `status` (`I`, `T` or `E`).
pub fn ready_for_query(status: u8) -> Bytes {
    frame(b'Z', &[status])
}

/// A tagged frame carrying `body` (used for SASL messages to the upstream).
pub fn frame(tag: u8, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(body.len() + 5);
    buf.extend_from_slice(&[tag]);
    buf.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    buf.extend_from_slice(body);
    buf.freeze()
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

/// Reads ParameterStatus: name and value.
pub fn parse_parameter_status(frame: &Frame) -> Result<(String, String), WireError> {
    let mut parts = cstrings_n(frame.body(), "ParameterStatus")?.into_iter();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(k), Some(v), None) => Ok((k, v)),
        _ => Err(malformed("ParameterStatus", "expected a name and a value")),
    }
}

/// The SQLSTATE and message of an ErrorResponse or NoticeResponse.
pub fn parse_error_code(frame: &Frame) -> Option<(String, String)> {
    let mut code = None;
    let mut message = String::new();
    let mut body = frame.body();
    while let Some((&field, rest)) = body.split_first() {
        if field == 0 {
            break;
        }
        let end = rest.iter().position(|&b| b == 0)?;
        let value = String::from_utf8_lossy(&rest[..end]).into_owned();
        match field {
            b'C' => code = Some(value),
            b'M' => message = value,
            _ => {}
        }
        body = &rest[end + 1..];
    }
    code.map(|c| (c, message))
}

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

/// One field of a RowDescription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDescription {
    /// Column name.
    pub name: String,
    /// OID of the table the column comes from, 0 if it is computed.
    pub table_oid: u32,
    /// Column number in that table, 0 if computed.
    pub attnum: i16,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier.
    pub typmod: i32,
    /// Format code (0 text, 1 binary).
    pub format: i16,
}

/// Reads a RowDescription ('T').
pub fn parse_row_description(frame: &Frame) -> Result<Vec<FieldDescription>, WireError> {
    let body = frame.body();
    let count = read_i16(body, 0, "RowDescription")?;
    let mut at = 2;
    let mut fields = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        let rest = body
            .get(at..)
            .ok_or_else(|| malformed("RowDescription", "truncated"))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed("RowDescription", "unterminated name"))?;
        let name = String::from_utf8_lossy(&rest[..end]).into_owned();
        at += end + 1;
        fields.push(FieldDescription {
            name,
            table_oid: read_i32(body, at, "RowDescription")? as u32,
            attnum: read_i16(body, at + 4, "RowDescription")?,
            type_oid: read_i32(body, at + 6, "RowDescription")? as u32,
            typmod: read_i32(body, at + 12, "RowDescription")?,
            format: read_i16(body, at + 16, "RowDescription")?,
        });
        at += 18;
    }
    Ok(fields)
}

/// The fields of an ErrorResponse or NoticeResponse, in order.
pub fn parse_fields(frame: &Frame) -> Vec<(u8, String)> {
    let mut fields = Vec::new();
    let mut body = frame.body();
    while let Some((&code, rest)) = body.split_first() {
        if code == 0 {
            break;
        }
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            break;
        };
        fields.push((code, String::from_utf8_lossy(&rest[..end]).into_owned()));
        body = &rest[end + 1..];
    }
    fields
}

/// Encodes an ErrorResponse ('E') or NoticeResponse ('N') from raw fields.
pub fn encode_fields(tag: u8, fields: Vec<(u8, String)>) -> Bytes {
    let mut buf = BytesMut::new();
    let result = if tag == super::tag::NOTICE_RESPONSE {
        NoticeResponse::new(fields).encode(&mut buf)
    } else {
        ErrorResponse::new(fields).encode(&mut buf)
    };
    result.expect("error fields encode");
    buf.freeze()
}

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

/// A simple Query ('Q') message.
pub fn query(sql: &str) -> Bytes {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    frame(b'Q', &body)
}

/// Reads the SQL text of a Query ('Q') message.
pub fn parse_query(frame: &Frame) -> Result<std::borrow::Cow<'_, str>, WireError> {
    match frame.body().split_last() {
        Some((0, text)) => Ok(String::from_utf8_lossy(text)),
        _ => Err(malformed("Query", "not a terminated string")),
    }
}

/// A Parse message: statement name, SQL text and parameter type OIDs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseMessage {
    /// Prepared statement name ("" for the unnamed statement).
    pub name: String,
    /// SQL text.
    pub sql: String,
}

/// Reads a Parse ('P') message.
pub fn parse_parse(frame: &Frame) -> Result<ParseMessage, WireError> {
    let body = frame.body();
    let (name, rest) = split_cstr(body, "Parse")?;
    let (sql, _) = split_cstr(rest, "Parse")?;
    Ok(ParseMessage { name, sql })
}

/// Encodes a Parse message with no parameter types.
pub fn parse_message(name: &str, sql: &str) -> Bytes {
    let mut body = Vec::new();
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    body.extend_from_slice(sql.as_bytes());
    body.push(0);
    body.extend_from_slice(&0i16.to_be_bytes());
    frame(b'P', &body)
}

/// Reads the portal and statement names of a Bind ('B') message.
pub fn parse_bind_names(frame: &Frame) -> Result<(String, String), WireError> {
    let (portal, rest) = split_cstr(frame.body(), "Bind")?;
    let (statement, _) = split_cstr(rest, "Bind")?;
    Ok((portal, statement))
}

/// The result format codes a Bind ('B') message asks for: none (all
/// text), one (for every column) or one per column.
pub fn parse_bind_result_formats(frame: &Frame) -> Result<Vec<i16>, WireError> {
    let body = frame.body();
    let (_, rest) = split_cstr(body, "Bind")?;
    let (_, rest) = split_cstr(rest, "Bind")?;
    let mut at = body.len() - rest.len();
    let n = read_i16(body, at, "Bind")?;
    at += 2 + 2 * usize::try_from(n).map_err(|_| malformed("Bind", "negative count"))?;
    let params = read_i16(body, at, "Bind")?;
    at += 2;
    for _ in 0..params {
        let len = read_i32(body, at, "Bind")?;
        at += 4 + usize::try_from(len).unwrap_or(0);
    }
    let n = read_i16(body, at, "Bind")?;
    at += 2;
    (0..usize::try_from(n).map_err(|_| malformed("Bind", "negative count"))?)
        .map(|i| read_i16(body, at + 2 * i, "Bind"))
        .collect()
}

/// Reads a Describe ('D') or Close ('C') message: kind byte ('S' or 'P') and name.
pub fn parse_target(frame: &Frame) -> Result<(u8, String), WireError> {
    let (&kind, rest) = frame
        .body()
        .split_first()
        .ok_or_else(|| malformed("Describe/Close", "empty"))?;
    let (name, _) = split_cstr(rest, "Describe/Close")?;
    Ok((kind, name))
}

/// Reads the portal name of an Execute ('E') message.
pub fn parse_execute_portal(frame: &Frame) -> Result<String, WireError> {
    Ok(split_cstr(frame.body(), "Execute")?.0)
}

/// A Describe message for a portal or statement.
pub fn describe(kind: u8, name: &str) -> Bytes {
    let mut body = vec![kind];
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    frame(b'D', &body)
}

/// Reads a DataRow ('D') as text values (NULL is `None`).
pub fn parse_data_row(frame: &Frame) -> Result<Vec<Option<String>>, WireError> {
    let body = frame.body();
    let count = read_i16(body, 0, "DataRow")?;
    let mut at = 2;
    let mut values = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        let len = read_i32(body, at, "DataRow")?;
        at += 4;
        if len < 0 {
            values.push(None);
            continue;
        }
        let end = at + len as usize;
        let value = body
            .get(at..end)
            .ok_or_else(|| malformed("DataRow", "truncated value"))?;
        values.push(Some(String::from_utf8_lossy(value).into_owned()));
        at = end;
    }
    Ok(values)
}

/// Reads the transaction status byte of a ReadyForQuery ('Z').
pub fn parse_ready_status(frame: &Frame) -> u8 {
    frame.body().first().copied().unwrap_or(b'I')
}

fn split_cstr<'a>(body: &'a [u8], what: &'static str) -> Result<(String, &'a [u8]), WireError> {
    let end = body
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| malformed(what, "unterminated string"))?;
    Ok((
        String::from_utf8_lossy(&body[..end]).into_owned(),
        &body[end + 1..],
    ))
}

fn read_i16(body: &[u8], at: usize, what: &'static str) -> Result<i16, WireError> {
    body.get(at..at + 2)
        .map(|b| i16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| malformed(what, "message too short"))
}

fn read_i32(body: &[u8], at: usize, what: &'static str) -> Result<i32, WireError> {
    body.get(at..at + 4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| malformed(what, "message too short"))
}

/// A list of C strings ended by an empty string.
fn cstrings(mut body: &[u8], what: &'static str) -> Result<Vec<String>, WireError> {
    let mut out = Vec::new();
    loop {
        let end = body
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed(what, "unterminated string"))?;
        if end == 0 {
            return Ok(out);
        }
        out.push(String::from_utf8_lossy(&body[..end]).into_owned());
        body = &body[end + 1..];
    }
}

/// C strings filling `body` exactly.
fn cstrings_n(mut body: &[u8], what: &'static str) -> Result<Vec<String>, WireError> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let end = body
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed(what, "unterminated string"))?;
        out.push(String::from_utf8_lossy(&body[..end]).into_owned());
        body = &body[end + 1..];
    }
    Ok(out)
}

fn malformed(what: &'static str, detail: impl Into<String>) -> WireError {
    WireError::Malformed {
        what,
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_frame(bytes: Bytes) -> Frame {
        Frame::from_bytes(bytes)
    }

    #[test]
    fn bind_result_formats() {
        let mut body = b"portal\0stmt\0".to_vec();
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(&3i32.to_be_bytes());
        body.extend_from_slice(b"abc");
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        let f = as_frame(frame(b'B', &body));
        assert_eq!(parse_bind_result_formats(&f).unwrap(), [0, 1]);
        body.truncate(body.len() - 2);
        let f = as_frame(frame(b'B', &body));
        assert!(parse_bind_result_formats(&f).is_err());
    }

    #[test]
    fn sasl_round_trip() {
        let mechs = vec!["SCRAM-SHA-256-PLUS".to_owned(), "SCRAM-SHA-256".to_owned()];
        let f = as_frame(auth_sasl(&mechs));
        assert_eq!(parse_auth_request(&f).unwrap(), AuthRequest::Sasl(mechs));
    }

    #[test]
    fn error_fields_round_trip() {
        let e = ErrorFields::new(Severity::Fatal, "28000", "no").with_hint("try");
        let f = as_frame(e.encode());
        assert_eq!(f.tag(), b'E');
        assert_eq!(
            parse_error_code(&f),
            Some(("28000".to_owned(), "no".to_owned()))
        );
    }

    #[test]
    fn negotiate_version_both_forms() {
        let f = as_frame(negotiate_protocol_version(0, &["_pq_.x".to_owned()]));
        assert_eq!(
            parse_negotiate_protocol_version(&f).unwrap(),
            (0, vec!["_pq_.x".to_owned()])
        );
        let f = as_frame(frame(b'v', &[0, 0, 0, 2, 0, 0, 0, 0]));
        assert_eq!(parse_negotiate_protocol_version(&f).unwrap(), (2, vec![]));
    }

    #[test]
    fn short_frames_are_errors_not_panics() {
        let f = as_frame(frame(b'R', &[0, 0]));
        assert!(parse_auth_request(&f).is_err());
        let f = as_frame(frame(b'K', &[0, 0, 0, 1, 9]));
        assert!(parse_backend_key_data(&f).is_err());
        let f = as_frame(frame(b'E', b"Cabc"));
        assert_eq!(parse_error_code(&f), None);
        let f = as_frame(frame(b'p', b"pw"));
        assert!(parse_password(&f).is_err());
    }
}
