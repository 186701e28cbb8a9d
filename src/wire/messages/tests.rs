//! Round trips and malformed frames.

use super::*;
use crate::wire::Frame;
use bytes::Bytes;

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

/// Issue 17 (protocol fuzzer): a Flush, Sync or Execute with bytes
/// after its end drew a server error no guarded-session bookkeeping
/// expected, and the session stalled. Such messages are refused.
#[test]
fn frontend_messages_are_checked_exactly() {
    let ok: Vec<Bytes> = vec![
        query("SELECT 1"),
        frame(b'Q', b"\0"),
        parse_message("s", "SELECT $1"),
        frame(b'P', b"s\0SELECT $1\0\0\x01\0\0\0\x17"),
        frame(
            b'B',
            b"\0s\0\0\x01\0\x01\0\x02\0\0\0\x0242\xff\xff\xff\xff\0\x01\0\0",
        ),
        frame(b'E', b"\0\0\0\0\0"),
        execute_message("p", 10),
        bind_message("p", "s"),
        describe(b'P', ""),
        frame(b'C', b"Sname\0"),
        frame(b'S', b""),
        frame(b'H', b""),
        frame(b'c', b""),
        frame(b'f', b"why\0"),
        frame(b'd', b"anything"),
    ];
    for f in ok {
        check_frontend(&as_frame(f.clone())).unwrap_or_else(|e| panic!("{f:?}: {e}"));
    }
    let bad: Vec<Bytes> = vec![
        frame(b'H', b"\x01"),
        frame(b'S', b"\0"),
        frame(b'c', b"x"),
        frame(b'E', b"\0\0\0\0\0\x01"),
        frame(b'E', b"\0\0\0"),
        frame(b'Q', b"SELECT 1\0x\0"),
        frame(b'Q', b"SELECT 1"),
        frame(b'Q', b""),
        frame(b'Q', b"a\0\0"),
        frame(b'Q', b"\0a\0"),
        frame(b'D', b"X\0"),
        frame(b'C', b"S\0\0"),
        frame(b'f', b"a\0b"),
        frame(b'P', b"s\0SELECT 1\0\0\x02\0\0\0\x17"),
        frame(b'P', b"s\0SELECT 1\0\xff\xff"),
        frame(b'B', b"\0s\0\0\0\0\x01\0\0\0\x05ab\0\0"),
        frame(b'B', b"\0s\0\0\0\0\x01\xff\xff\xff\xfe\0\0"),
        frame(b'B', b"\0s\0\0\0\0\0\0\0\x01"),
    ];
    for f in bad {
        assert!(check_frontend(&as_frame(f.clone())).is_err(), "{f:?}");
    }
}

/// Query text is borrowed when it is UTF-8, and read lossily when not.
#[test]
fn query_text() {
    let f = as_frame(query("SELECT 'é'"));
    let sql = parse_query(&f).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(sql, std::borrow::Cow::Borrowed("SELECT 'é'")));
    let f = as_frame(frame(b'Q', b"SELECT '\xff'\0"));
    let sql = parse_query(&f).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sql, "SELECT '\u{fffd}'");
    assert!(parse_query(&as_frame(frame(b'Q', b"SELECT 1"))).is_err());
}

/// Statement and portal names are borrowed from the frame (no allocation
/// per message), and read lossily when not UTF-8.
#[test]
fn names_are_borrowed() {
    let f = as_frame(bind_message("p", "s1"));
    let (portal, statement) = parse_bind_names(&f).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(portal, std::borrow::Cow::Borrowed("p")));
    assert!(matches!(statement, std::borrow::Cow::Borrowed("s1")));
    let f = as_frame(execute_message("portal", 0));
    let portal = parse_execute_portal(&f).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(portal, std::borrow::Cow::Borrowed("portal")));
    let f = as_frame(describe(b'S', "s\u{e9}"));
    let (kind, name) = parse_target(&f).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((kind, name.as_ref()), (b'S', "s\u{e9}"));
    let f = as_frame(frame(b'C', b"P\xff\0"));
    let (_, name) = parse_target(&f).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(name, "\u{fffd}");
    assert!(parse_execute_portal(&as_frame(frame(b'E', b"p"))).is_err());
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
