//! Micro-benchmarks of copyguard's per-byte and per-frame work.
//!
//! - `scan`: [`FrameScanner::feed`], the relay's only per-byte work, over
//!   64 KiB of frames fed in 32 KiB chunks as the relay reads them.
//! - `read_frame`: [`Conn::read_frame`] decoding every frame of the same
//!   buffers from an in-memory reader (the startup phase's framing).
//! - `startup`: parsing a StartupMessage, reading Authentication requests,
//!   encoding an ErrorResponse.
//! - `relay`: the production [`Relay`] moving 16 MiB over loopback TCP in
//!   each direction, next to the same transfer without a relay.
//!
//! Run with `cargo bench --bench frames`; the whole file takes under a
//! minute.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use copyguard::proxy::relay::Relay;
use copyguard::telemetry;
use copyguard::wire::messages::{self, ErrorFields, Severity};
use copyguard::wire::{Conn, Frame, FrameScanner, InitialPacket, StartupMessage, Stream};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// Size of the buffers scanned and decoded.
const SCAN_BYTES: usize = 64 * 1024;
/// The relay's read buffer size.
const CHUNK: usize = 32 * 1024;
/// Bytes pushed through the relay per iteration.
const RELAY_BYTES: usize = 16 * 1024 * 1024;
/// copyguard's default `limits.max_message_size`.
const MAX_MESSAGE: usize = 128 * 1024 * 1024;

/// Appends one tagged frame.
fn push_frame(buf: &mut Vec<u8>, tag: u8, body: &[u8]) {
    buf.push(tag);
    buf.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    buf.extend_from_slice(body);
}

/// A DataRow of `columns` text values of `width` bytes each.
fn data_row(columns: usize, width: usize) -> Vec<u8> {
    let mut body = (columns as i16).to_be_bytes().to_vec();
    for c in 0..columns {
        body.extend_from_slice(&(width as i32).to_be_bytes());
        body.extend(std::iter::repeat_n(b'a' + c as u8, width));
    }
    let mut frame = Vec::new();
    push_frame(&mut frame, b'D', &body);
    frame
}

/// Repeats `unit` until the buffer holds at least `len` bytes.
fn repeat_to(unit: &[u8], len: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(len + unit.len());
    while buf.len() < len {
        buf.extend_from_slice(unit);
    }
    buf
}

/// Result rows of ~100 bytes (4 columns of 20 bytes): a large SELECT.
fn data_rows(len: usize) -> Vec<u8> {
    repeat_to(&data_row(4, 20), len)
}

/// What the server answers to one `pgbench -S -M prepared` transaction:
/// BindComplete, DataRow, CommandComplete, ReadyForQuery.
fn pgbench_replies(len: usize) -> Vec<u8> {
    let mut unit = Vec::new();
    push_frame(&mut unit, b'2', b"");
    unit.extend_from_slice(&data_row(1, 4));
    push_frame(&mut unit, b'C', b"SELECT 1\0");
    push_frame(&mut unit, b'Z', b"I");
    repeat_to(&unit, len)
}

/// CopyData frames of ~100 bytes: a `COPY ... FROM STDIN` upload.
fn copy_data(len: usize) -> Vec<u8> {
    let mut unit = Vec::new();
    let mut line = vec![b'x'; 94];
    line[93] = b'\n';
    push_frame(&mut unit, b'd', &line);
    repeat_to(&unit, len)
}

fn count_frames(buf: &[u8]) -> u64 {
    let mut scanner = FrameScanner::new(MAX_MESSAGE);
    scanner.feed(buf, |_, _| {}).expect("valid frames")
}

fn quick(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .nresamples(20_000);
}

fn scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("scan");
    quick(&mut group);
    for (name, buf) in [
        ("datarow_100B", data_rows(SCAN_BYTES)),
        ("pgbench_replies", pgbench_replies(SCAN_BYTES)),
    ] {
        group.throughput(Throughput::Bytes(buf.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut scanner = FrameScanner::new(MAX_MESSAGE);
                let mut frames = 0;
                for chunk in black_box(&buf[..]).chunks(CHUNK) {
                    frames += scanner.feed(chunk, |_, _| {}).expect("valid frames");
                }
                black_box(frames)
            })
        });
    }
    group.finish();
}

fn read_frame(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("read_frame");
    quick(&mut group);
    for (name, buf) in [
        ("datarow_100B", data_rows(SCAN_BYTES)),
        ("pgbench_replies", pgbench_replies(SCAN_BYTES)),
    ] {
        let frames = count_frames(&buf);
        group.throughput(Throughput::Elements(frames));
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let io = tokio::io::join(black_box(&buf[..]), tokio::io::sink());
                    let mut conn = Conn::new(io, MAX_MESSAGE);
                    let mut n = 0u64;
                    while let Some(frame) = conn.read_frame().await.expect("valid frames") {
                        black_box(frame.tag());
                        n += 1;
                    }
                    assert_eq!(n, frames);
                })
            })
        });
    }
    group.finish();
}

fn startup(c: &mut Criterion) {
    let mut group = c.benchmark_group("startup");
    quick(&mut group);

    let params: Vec<(String, String)> = [
        ("user", "app_user"),
        ("database", "shop"),
        ("application_name", "psql"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("options", "-c search_path=public"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let packet = StartupMessage::encode(0, &params);
    group.bench_function("parse_startup_message", |b| {
        b.iter(|| InitialPacket::parse(black_box(packet.clone())).expect("valid startup"))
    });

    let sasl = Frame::from_bytes(messages::auth_sasl(&[
        "SCRAM-SHA-256-PLUS".to_owned(),
        "SCRAM-SHA-256".to_owned(),
    ]));
    group.bench_function("parse_auth_sasl", |b| {
        b.iter(|| messages::parse_auth_request(black_box(&sasl)).expect("valid request"))
    });
    let ok = Frame::from_bytes(Bytes::from_static(b"R\0\0\0\x08\0\0\0\0"));
    group.bench_function("parse_auth_ok", |b| {
        b.iter(|| messages::parse_auth_request(black_box(&ok)).expect("valid request"))
    });

    let error = ErrorFields::new(Severity::Fatal, "53300", "sorry, too many clients already")
        .with_hint("The limit is the limits.max_connections setting of copyguard.");
    group.bench_function("encode_error_response", |b| {
        b.iter(|| black_box(&error).encode())
    });
    group.finish();
}

/// A connected loopback pair: (the side that connected, the side that accepted).
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let connected = connected.expect("connect");
    let (accepted, _) = accepted.expect("accept");
    connected.set_nodelay(true).expect("nodelay");
    accepted.set_nodelay(true).expect("nodelay");
    (connected, accepted)
}

/// Writes `payload` into `from` while reading as many bytes from `to`.
async fn transfer(from: &mut TcpStream, to: &mut TcpStream, payload: &[u8], buf: &mut [u8]) {
    let write = async {
        from.write_all(payload).await.expect("write");
    };
    let read = async {
        let mut got = 0;
        while got < payload.len() {
            let n = to.read(buf).await.expect("read");
            assert!(n > 0, "relay closed early");
            got += n;
        }
    };
    tokio::join!(write, read);
}

/// Times `iters` transfers of `payload` from `from` to `to`.
fn time_transfers(
    rt: &Runtime,
    from: &mut TcpStream,
    to: &mut TcpStream,
    payload: &[u8],
    iters: u64,
) -> Duration {
    let mut buf = vec![0u8; 64 * 1024];
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            transfer(from, to, payload, &mut buf).await;
        }
        start.elapsed()
    })
}

fn relay(c: &mut Criterion) {
    // The relay updates Prometheus counters per chunk in production too.
    telemetry::metrics_handle();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let (mut client, mut server) = rt.block_on(async {
        let (client, proxy_client) = tcp_pair().await;
        let (proxy_server, server) = tcp_pair().await;
        let relay = Relay::new(
            Stream::Plain(proxy_client),
            BytesMut::new(),
            Stream::Plain(proxy_server),
            BytesMut::new(),
            MAX_MESSAGE,
        );
        tokio::spawn(relay);
        (client, server)
    });
    let (mut near, mut far) = rt.block_on(tcp_pair());

    let up = copy_data(RELAY_BYTES);
    let down = data_rows(RELAY_BYTES);

    let mut group = c.benchmark_group("relay_16MiB");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .nresamples(20_000);
    group.throughput(Throughput::Bytes(down.len() as u64));
    group.bench_function("loopback_without_relay", |b| {
        b.iter_custom(|iters| time_transfers(&rt, &mut far, &mut near, &down, iters))
    });
    group.bench_function("server_to_client_datarow", |b| {
        b.iter_custom(|iters| time_transfers(&rt, &mut server, &mut client, &down, iters))
    });
    group.throughput(Throughput::Bytes(up.len() as u64));
    group.bench_function("client_to_server_copydata", |b| {
        b.iter_custom(|iters| time_transfers(&rt, &mut client, &mut server, &up, iters))
    });
    group.finish();
}

criterion_group!(benches, scan, read_frame, startup, relay);
criterion_main!(benches);
