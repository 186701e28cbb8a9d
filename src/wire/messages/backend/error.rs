//! ErrorResponse and NoticeResponse (server to client): the fields
//! copyguard sends, and reading, scrubbing and re-encoding the server's.

use crate::wire::{tag, Frame};
use bytes::{Bytes, BytesMut};
use pgwire::messages::response::{ErrorResponse, NoticeResponse};
use pgwire::messages::Message;

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
    let result = if tag == tag::NOTICE_RESPONSE {
        NoticeResponse::new(fields).encode(&mut buf)
    } else {
        ErrorResponse::new(fields).encode(&mut buf)
    };
    result.expect("error fields encode");
    buf.freeze()
}
