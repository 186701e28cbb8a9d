use bytes::Bytes;

use crate::wire::messages::{encode_fields, notification, parse_fields, parse_notification};
use crate::wire::Frame;

/// Fields of an error or notice that describe where it happened, never
/// what data caused it: severity, SQLSTATE, schema, table, column, type,
/// constraint names and the server source location.
const KEPT: &[u8] = b"SVCstcdnFLR";

/// Rewrites an ErrorResponse or NoticeResponse so it cannot quote data:
/// the message is replaced by a generic one and detail, hint, context,
/// position and internal query are dropped. The SQLSTATE stays.
pub fn scrub_error(frame: &Frame) -> Bytes {
    let fields = parse_fields(frame);
    let code = fields
        .iter()
        .find(|(f, _)| *f == b'C')
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "XX000".to_owned());
    let mut out: Vec<(u8, String)> = Vec::with_capacity(fields.len());
    for (f, v) in fields {
        if KEPT.contains(&f) {
            out.push((f, v));
        }
        if f == b'C' {
            out.push((
                b'M',
                format!(
                    "statement failed with SQLSTATE {code}; the server's message was withheld by copyguard because the statement touched classified data"
                ),
            ));
        }
    }
    encode_fields(frame.tag(), out)
}

/// A NotificationResponse with its payload removed.
pub fn blank_notification(frame: &Frame) -> Option<Bytes> {
    let (pid, channel, _) = parse_notification(frame).ok()?;
    Some(notification(pid, &channel, ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::{frame, parse_error_code};

    #[test]
    fn scrubbed_errors_keep_the_code_and_lose_the_values() {
        let mut body = Vec::new();
        for (f, v) in [
            (b'S', "ERROR"),
            (b'C', "23505"),
            (b'M', "duplicate key value violates unique constraint"),
            (b'D', "Key (email)=(alice@example.com) already exists."),
            (b't', "users"),
            (b'n', "users_email_key"),
        ] {
            body.push(f);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let f = Frame::from_bytes(frame(b'E', &body));
        let scrubbed = Frame::from_bytes(scrub_error(&f));
        let text = String::from_utf8_lossy(scrubbed.as_bytes()).into_owned();
        assert!(!text.contains("alice"));
        assert!(text.contains("users_email_key"));
        assert_eq!(parse_error_code(&scrubbed).unwrap().0, "23505");
    }

    #[test]
    fn notification_payload_is_blanked() {
        let f = Frame::from_bytes(notification(7, "chan", "alice@example.com"));
        let out = Frame::from_bytes(blank_notification(&f).unwrap());
        assert_eq!(
            parse_notification(&out).unwrap(),
            (7, "chan".to_owned(), String::new())
        );
    }
}
