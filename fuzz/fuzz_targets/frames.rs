//! Frame scanning in both directions: the relay's [`FrameScanner`] fed in
//! arbitrary chunks and the framed reader ([`Conn`]) must agree on every
//! frame boundary and on where the stream goes wrong; every frame read is
//! then given to the decoders of its direction.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use copyguard::wire::{messages, Conn, Frame, FrameScanner, WireError};
use libfuzzer_sys::fuzz_target;

/// Polls a future that never waits (its reader is in memory) to the end.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn frontend(frame: &Frame) {
    let _ = messages::parse_query(frame);
    let _ = messages::parse_parse(frame);
    let _ = messages::parse_bind_names(frame);
    let _ = messages::parse_bind_result_formats(frame);
    let _ = messages::parse_target(frame);
    let _ = messages::parse_execute_portal(frame);
    let _ = messages::parse_password(frame);
}

fn backend(frame: &Frame) {
    let _ = messages::parse_auth_request(frame);
    let _ = messages::parse_backend_key_data(frame);
    let _ = messages::parse_negotiate_protocol_version(frame);
    let _ = messages::parse_parameter_status(frame);
    let _ = messages::parse_error_code(frame);
    let _ = messages::parse_row_description(frame);
    let _ = messages::parse_fields(frame);
    let _ = messages::parse_notification(frame);
    let _ = messages::parse_data_row(frame);
    let _ = messages::parse_ready_status(frame);
    let _ = copyguard::enforce::scrub_error(frame);
    let _ = copyguard::enforce::blank_notification(frame);
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let from_backend = control & 1 == 1;
    let chunk = 1 + usize::from(control >> 1) % 64;
    let max = [64, 1024, 1 << 20][usize::from(control >> 7) + usize::from(control & 2 == 2)];

    let mut scanner = FrameScanner::new(max);
    let mut scanned = Vec::new();
    let mut scan_error = None;
    for part in stream.chunks(chunk) {
        if let Err(e) = scanner.feed(part, |tag, len| scanned.push((tag, len))) {
            scan_error = Some(e);
            break;
        }
    }

    let mut conn = Conn::with_buffer(tokio::io::empty(), BytesMut::from(stream), max);
    let mut read = Vec::new();
    let end = loop {
        match run(conn.read_frame()) {
            Ok(Some(frame)) => {
                read.push((frame.tag(), frame.as_bytes().len()));
                if from_backend {
                    backend(&frame);
                } else {
                    frontend(&frame);
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    match end {
        None => {
            assert!(scan_error.is_none(), "{scan_error:?}");
            assert!(scanner.at_boundary());
            assert_eq!(scanned, read);
        }
        Some(WireError::UnexpectedEof) => {
            assert!(scan_error.is_none(), "{scan_error:?}");
            assert!(!scanner.at_boundary());
            assert_eq!(&scanned[..read.len()], &read[..]);
            assert!(scanned.len() <= read.len() + 1);
        }
        Some(WireError::InvalidLength(_) | WireError::TooLarge { .. }) => {
            assert!(scan_error.is_some(), "the scanner accepted a bad length");
            assert_eq!(scanned, read);
        }
        Some(other) => panic!("unexpected reader error {other}"),
    }

    let mut conn = Conn::with_buffer(tokio::io::empty(), BytesMut::from(stream), max);
    let mut taken = 0;
    let tag = stream.first().copied().unwrap_or(b'd');
    conn.take_buffered(tag, |f| {
        assert_eq!(Some(&(f[0], f.len())), read.get(taken));
        taken += 1;
        true
    });
    assert_eq!(conn.buffered(), stream.len() - read[..taken].iter().map(|r| r.1).sum::<usize>());
});
