//! A production relay on two blocking threads of its own, one per
//! direction (`COPYGUARD_RUNTIME=threads`), as the zero-work forwarder
//! does it: each thread sleeps in `recv` on its source, so the peer's
//! `send` wakes exactly that thread, and the kernel's synchronous wake-up
//! puts it on the sender's core. An epoll waiter serving many sessions is
//! woken asynchronously, often on the other core (a reschedule IPI), which
//! makes PostgreSQL's and the client's side of each round trip dearer (see
//! `benches/README.md`, "Profile of the production relay").

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::spawner::Spawner;
use super::{down_error, up_error, Pump, PumpError, Relay, RelayEnd};
use crate::proxy::SessionError;
use crate::wire::Stream;

/// How long a direction told to stop may take before its sockets are shut
/// down both ways (it was blocked writing to a peer that does not read);
/// also a guarded session's half on a thread of its own.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// What the relay's threads hand back to the session.
enum Report {
    /// A direction's thread ended, with its outcome and its pump.
    Ended(Direction, Result<(), PumpError>, Pump),
    /// A direction's thread could not be started (the other may run).
    NotStarted(io::Error),
}

impl Pump {
    /// Copies `from` to `to` until `from` ends (then shuts `to` down for
    /// writing) or `stop` is set; what a read returned is always written
    /// in full first, so a stopped direction ends between reads, never
    /// with bytes read and dropped.
    fn copy_blocking(
        &mut self,
        mut from: &TcpStream,
        mut to: &TcpStream,
        stop: &AtomicBool,
    ) -> Result<(), PumpError> {
        loop {
            while self.pos < self.end {
                match to.write(&self.buf[self.pos..self.end]) {
                    Ok(0) => return Err(PumpError::Write(io::ErrorKind::WriteZero.into())),
                    Ok(n) => self.pos += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(PumpError::Write(e)),
                }
            }
            if self.eof {
                return to.shutdown(Shutdown::Write).map_err(PumpError::Write);
            }
            if stop.load(Ordering::Acquire) {
                return Ok(());
            }
            self.grow_if_filled();
            let n = match from.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(PumpError::Read(e)),
            };
            (self.pos, self.end) = (0, n);
            if n == 0 {
                // A stop shuts the source down for reading: not the peer's
                // end, so the destination stays open (for `close_with`).
                if stop.load(Ordering::Acquire) {
                    return Ok(());
                }
                self.eof = true;
            } else {
                self.scan()?;
            }
        }
    }
}

impl Relay {
    /// [`Relay::run`] with each direction on a blocking thread of its own;
    /// both sides must be plain TCP. Ends when either direction does (or
    /// on `force`), then stops the other and hands the relay back on this
    /// runtime.
    pub(super) async fn run_threads(
        mut self,
        force: CancellationToken,
        spawner: &Spawner,
    ) -> (Result<RelayEnd, SessionError>, Option<Relay>) {
        if let Err(e) = self.prime() {
            return (Err(e), Some(self));
        }
        let Relay {
            client,
            server,
            up,
            down,
            ..
        } = self;
        let client = match blocking(client) {
            Ok(c) => Arc::new(c),
            Err(e) => return (Err(SessionError::Client(e.into())), None),
        };
        let server = match blocking(server) {
            Ok(s) => Arc::new(s),
            Err(e) => return (Err(SessionError::Upstream(e.into())), None),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
        let start = {
            let (client, server, stop) = (client.clone(), server.clone(), stop.clone());
            move || start_directions(up, down, client, server, stop, tx)
        };
        spawner.run(start);
        let first = tokio::select! {
            report = rx.recv() => report,
            _ = force.cancelled() => None,
        };
        stop.store(true, Ordering::Release);
        let _ = client.shutdown(Shutdown::Read);
        let _ = server.shutdown(Shutdown::Read);
        let (outcome, mut ended) = match first {
            None => (Err(SessionError::Shutdown), Vec::new()),
            Some(Report::NotStarted(e)) => {
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                return (Err(SessionError::Client(e.into())), None);
            }
            Some(Report::Ended(direction, result, pump)) => {
                let outcome = match (direction, result) {
                    (Direction::Up, Ok(())) => Ok(RelayEnd::ClientClosed),
                    (Direction::Down, Ok(())) => Ok(RelayEnd::ServerClosed),
                    (Direction::Up, Err(e)) => Err(up_error(e)),
                    (Direction::Down, Err(e)) => Err(down_error(e)),
                };
                (outcome, vec![(direction, pump)])
            }
        };
        let mut shut = false;
        while ended.len() < 2 {
            match tokio::time::timeout(STOP_GRACE, rx.recv()).await {
                Ok(Some(Report::Ended(direction, _, pump))) => ended.push((direction, pump)),
                Ok(Some(Report::NotStarted(_))) | Ok(None) => break,
                Err(_) if !shut => {
                    shut = true;
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = server.shutdown(Shutdown::Both);
                }
                Err(_) => {}
            }
        }
        let mut pumps = (None, None);
        for (direction, pump) in ended {
            match direction {
                Direction::Up => pumps.0 = Some(pump),
                Direction::Down => pumps.1 = Some(pump),
            }
        }
        let relay = (|| {
            let (up, down) = (pumps.0?, pumps.1?);
            let client = nonblocking(Arc::into_inner(client)?)?;
            let server = nonblocking(Arc::into_inner(server)?)?;
            Some(Relay {
                client,
                server,
                up,
                down,
                primed: true,
            })
        })();
        (outcome, relay)
    }
}

/// Starts a relay's two directions, each on a thread of its own that
/// reports to `tx` when it ends. Run on the [`Spawner`], so that the
/// threads inherit its wake-up history, not a runtime worker's. The
/// sockets' handles end up in the threads alone (the session gets the
/// sockets back once both have ended); if a thread cannot be started, the
/// session is told and stops the other.
fn start_directions(
    up: Pump,
    down: Pump,
    client: Arc<TcpStream>,
    server: Arc<TcpStream>,
    stop: Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<Report>,
) {
    let directions = [
        (Direction::Up, up, client.clone(), server.clone()),
        (Direction::Down, down, server, client),
    ];
    for (direction, mut pump, from, to) in directions {
        let (report, stopped) = (tx.clone(), stop.clone());
        let name = match direction {
            Direction::Up => "copyguard-up",
            Direction::Down => "copyguard-down",
        };
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // A panic ends this direction like an error, so the
                // session is told and the other direction stopped.
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    pump.copy_blocking(&from, &to, &stopped)
                }))
                .unwrap_or_else(|_| {
                    Err(PumpError::Read(io::Error::other("relay thread panicked")))
                });
                drop((from, to));
                let _ = report.send(Report::Ended(direction, result, pump));
            });
        if let Err(e) = spawned {
            let _ = tx.send(Report::NotStarted(e));
            return;
        }
    }
}

/// The plain TCP socket under `stream`, taken off the runtime, blocking.
fn blocking(stream: Stream) -> io::Result<TcpStream> {
    let plain = stream
        .into_plain()
        .ok_or_else(|| io::Error::other("not a plain TCP stream"))?;
    let std = plain.into_std()?;
    std.set_nonblocking(false)?;
    Ok(std)
}

/// `socket` registered on the current runtime again.
fn nonblocking(socket: TcpStream) -> Option<Stream> {
    socket.set_nonblocking(true).ok()?;
    tokio::net::TcpStream::from_std(socket)
        .ok()
        .map(Stream::Plain)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::super::tests::{data_rows, relays_both_ways_and_comes_back_on_force, tcp_pair};
    use super::super::{RelayPlacement, RelayThreads};
    use super::*;
    use crate::wire::{messages, WireError};

    /// Both directions relayed byte for byte, read-ahead bytes first; on
    /// `force` the relay ends and comes back, its counts intact, to send
    /// the client a last message.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relay_on_threads_relays_both_ways_and_comes_back_on_force() {
        relays_both_ways_and_comes_back_on_force(&RelayPlacement::Threads(
            RelayThreads::new(1).unwrap(),
        ))
        .await;
    }

    /// What the server sends as the relay is forced to end still reaches
    /// the client, whole, before the last message (a direction stopped
    /// while its read returns data writes it first).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_read_as_the_relay_is_forced_reach_the_client_before_the_last_message() {
        let reply = b"E\0\0\0\x0cSTIMEOUTZ\0\0\0\x05I";
        for _ in 0..100 {
            let (client, mut client_far) = tcp_pair().await;
            let (server, mut server_far) = tcp_pair().await;
            let relay = Relay::new(client, BytesMut::new(), server, BytesMut::new(), 1 << 20);
            let force = CancellationToken::new();
            let cancel = force.clone();
            let run = tokio::spawn(async move {
                relay
                    .run(
                        cancel,
                        Some(&RelayPlacement::Threads(RelayThreads::new(1).unwrap())),
                    )
                    .await
            });
            tokio::task::yield_now().await;
            server_far.write_all(reply).await.unwrap();
            force.cancel();
            let (outcome, relay) = run.await.unwrap();
            assert!(matches!(outcome, Err(SessionError::Shutdown)));
            relay.expect("comes back").close_with(b"E\0\0\0\x04").await;
            let mut got = Vec::new();
            client_far.read_to_end(&mut got).await.unwrap();
            let whole = [&reply[..], b"E\0\0\0\x04"].concat();
            assert!(
                got == whole || got == b"E\0\0\0\x04",
                "the reply cut or lost: {got:?}"
            );
            drop(server_far);
        }
    }

    /// A client that closes ends the relay at once, although the server
    /// keeps its side open: the server sees the end of the stream.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relay_on_threads_ends_when_the_client_closes() {
        let (client, mut client_far) = tcp_pair().await;
        let (server, mut server_far) = tcp_pair().await;
        let relay = Relay::new(client, BytesMut::new(), server, BytesMut::new(), 1 << 20);
        let terminate = b"X\0\0\0\x04";
        client_far.write_all(terminate).await.unwrap();
        client_far.shutdown().await.unwrap();
        let (outcome, relay) = tokio::time::timeout(
            Duration::from_secs(10),
            relay.run(
                CancellationToken::new(),
                Some(&RelayPlacement::Threads(RelayThreads::new(1).unwrap())),
            ),
        )
        .await
        .expect("the relay ends");
        assert_eq!(outcome.unwrap(), RelayEnd::ClientClosed);
        assert_eq!(relay.expect("comes back").stats().messages_up, 1);
        let mut got = Vec::new();
        server_far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, terminate);
        drop(client_far);
    }

    /// A bulk transfer: the buffers grow, the bytes stay the server's, and
    /// the relay ends when the server closes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relay_on_threads_passes_bulk_transfers_unchanged() {
        let (client, mut client_far) = tcp_pair().await;
        let (server, mut server_far) = tcp_pair().await;
        let sent = data_rows(5000);
        let expected = sent.clone();
        let relay = Relay::new(client, BytesMut::new(), server, BytesMut::new(), 1 << 20);
        let writer = tokio::spawn(async move {
            server_far.write_all(&sent).await.unwrap();
            server_far.shutdown().await.unwrap();
            server_far
        });
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client_far.read_to_end(&mut got).await.unwrap();
            (got, client_far)
        });
        let (outcome, relay) = relay
            .run(
                CancellationToken::new(),
                Some(&RelayPlacement::Threads(RelayThreads::new(1).unwrap())),
            )
            .await;
        assert_eq!(outcome.unwrap(), RelayEnd::ServerClosed);
        let (got, _client_far) = reader.await.unwrap();
        drop(writer.await.unwrap());
        assert!(got == expected, "relayed bytes differ from the server's");
        let relay = relay.expect("comes back");
        let stats = relay.stats();
        assert_eq!((stats.messages_down, stats.rows_down), (5000, 5000));
        assert!(relay.down.buf.len() > super::super::INITIAL_BUFFER_SIZE);
    }

    /// A client frame over the size limit ends the relay with the client's
    /// error, and the relay comes back to tell the client so.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relay_on_threads_refuses_an_oversized_client_frame() {
        let (client, mut client_far) = tcp_pair().await;
        let (server, _server_far) = tcp_pair().await;
        let relay = Relay::new(client, BytesMut::new(), server, BytesMut::new(), 64);
        client_far
            .write_all(&messages::query(&"x".repeat(100)))
            .await
            .unwrap();
        let (outcome, relay) = relay
            .run(
                CancellationToken::new(),
                Some(&RelayPlacement::Threads(RelayThreads::new(1).unwrap())),
            )
            .await;
        assert!(matches!(
            outcome,
            Err(SessionError::Client(WireError::TooLarge { .. }))
        ));
        relay.expect("comes back").close_with(b"E\0\0\0\x04").await;
        let mut last = Vec::new();
        client_far.read_to_end(&mut last).await.unwrap();
        assert_eq!(last, b"E\0\0\0\x04");
    }

    /// The value of the metric line starting with `series` in `text`.
    fn metric(text: &str, series: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} missing from\n{text}"))
            .parse()
            .unwrap()
    }

    /// The relay threads publish their counts lazily, yet a scrape during
    /// an idle pause sees every byte and message relayed so far, and the
    /// counters are exact once the relay has ended, with nothing counted
    /// twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_metrics_are_exact_after_an_idle_pause_and_after_the_relay_ends() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let (client, mut client_far) = tcp_pair().await;
        let (server, mut server_far) = tcp_pair().await;
        let relay = metrics::with_local_recorder(&recorder, || {
            Relay::new(client, BytesMut::new(), server, BytesMut::new(), 1 << 20)
        });
        let run = tokio::spawn(async move {
            let placement = RelayPlacement::Threads(RelayThreads::new(1).unwrap());
            relay.run(CancellationToken::new(), Some(&placement)).await
        });
        let (query, reply) = (messages::query("SELECT 1"), b"Z\0\0\0\x05IZ\0\0\0\x05I");
        let mut up = 0;
        for _ in 0..3 {
            client_far.write_all(&query).await.unwrap();
            let mut got = vec![0u8; query.len()];
            server_far.read_exact(&mut got).await.unwrap();
            server_far.write_all(reply).await.unwrap();
            let mut back = [0u8; 12];
            client_far.read_exact(&mut back).await.unwrap();
            up += query.len() as u64;
        }
        let up_bytes = "copyguard_bytes_total{direction=\"client_to_server\"}";
        let down_bytes = "copyguard_bytes_total{direction=\"server_to_client\"}";
        let up_messages = "copyguard_messages_total{direction=\"client_to_server\"}";
        let down_messages = "copyguard_messages_total{direction=\"server_to_client\"}";
        tokio::time::sleep(Duration::from_millis(50)).await;
        let idle = crate::telemetry::render(&handle);
        assert_eq!(metric(&idle, up_bytes), up);
        assert_eq!(metric(&idle, down_bytes), 36);
        assert_eq!(
            (metric(&idle, up_messages), metric(&idle, down_messages)),
            (3, 6)
        );
        let terminate = b"X\0\0\0\x04";
        client_far.write_all(terminate).await.unwrap();
        client_far.shutdown().await.unwrap();
        let (outcome, relay) = run.await.unwrap();
        assert_eq!(outcome.unwrap(), RelayEnd::ClientClosed);
        drop(relay);
        let ended = handle.render();
        assert_eq!(metric(&ended, up_bytes), up + terminate.len() as u64);
        assert_eq!(metric(&ended, down_bytes), 36);
        assert_eq!(
            (metric(&ended, up_messages), metric(&ended, down_messages)),
            (4, 6)
        );
        let again = crate::telemetry::render(&handle);
        assert_eq!(metric(&again, up_messages), 4, "nothing counted twice");
        drop(server_far);
    }

    /// Past the slots' limit a relay runs on the session's runtime and
    /// still relays; every slot is given back when its relay ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn relays_past_the_threaded_limit_stay_on_the_runtime() {
        let mut ends = Vec::new();
        let mut fars = Vec::new();
        let shared = std::sync::Arc::new(RelayPlacement::Threads(RelayThreads::new(1).unwrap()));
        for _ in 0..2 {
            let (client, client_far) = tcp_pair().await;
            let (server, server_far) = tcp_pair().await;
            let relay = Relay::new(client, BytesMut::new(), server, BytesMut::new(), 1 << 20);
            let placement = shared.clone();
            ends.push(tokio::spawn(async move {
                relay.run(CancellationToken::new(), Some(&placement)).await
            }));
            fars.push((client_far, server_far));
        }
        let RelayPlacement::Threads(threads) = &*shared else {
            panic!("a threads placement")
        };
        let slots = threads.slots();
        for (client_far, server_far) in &mut fars {
            let query = messages::query("SELECT 1");
            client_far.write_all(&query).await.unwrap();
            let mut got = vec![0u8; query.len()];
            server_far.read_exact(&mut got).await.unwrap();
            assert_eq!(got, query[..]);
        }
        assert_eq!(slots.taken(), 1, "one relay on threads, the other here");
        let (clients, _servers): (Vec<_>, Vec<_>) = fars.into_iter().unzip();
        drop(clients);
        for end in ends {
            let (outcome, _) = end.await.unwrap();
            assert_eq!(outcome.unwrap(), RelayEnd::ClientClosed);
        }
        assert_eq!(slots.taken(), 0, "the slot is given back");
    }
}
