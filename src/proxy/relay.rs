//! The production relay: bytes in both directions, unchanged.
//!
//! Each direction reads into a buffer, lets a [`FrameScanner`] follow the
//! frame boundaries (to count messages and enforce the client message size
//! limit) and writes the same bytes out. No frame is decoded, copied into a
//! message or re-encoded, so what the client receives is exactly what the
//! server sent.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use tokio_util::sync::CancellationToken;

use super::workers::{attach, detach};
use super::{SessionError, SessionRuntimes};
use crate::telemetry;
use crate::wire::{BackendKind, FrameScanner, FrontendKind, Stream, WireError};

mod spawner;
mod threads;

pub use spawner::Spawner;
pub(crate) use threads::STOP_GRACE;

/// Each direction's buffer starts at this size, enough for the small
/// messages of an interactive session, and doubles whenever a read fills
/// it, up to [`MAX_BUFFER_SIZE`] (bulk transfers: result sets, COPY).
const INITIAL_BUFFER_SIZE: usize = 4 * 1024;
/// The largest a direction's buffer grows to.
const MAX_BUFFER_SIZE: usize = 64 * 1024;

/// Where a production relay between plain TCP sockets runs once its
/// session is authenticated (unset: on the session's own runtime).
pub enum RelayPlacement {
    /// On the least loaded of these single-thread runtimes
    /// (`COPYGUARD_RUNTIME=split`).
    Runtimes(SessionRuntimes),
    /// On two blocking threads of its own, one per direction, as the
    /// zero-work forwarder (`COPYGUARD_RUNTIME=threads`), while fewer
    /// than the slots' limit run so; past it, on the session's runtime.
    Threads(RelayThreads),
}

/// Where relays on threads of their own come from: the slots that bound
/// how many run at once, and the [`Spawner`] that starts their threads.
pub struct RelayThreads {
    slots: ThreadSlots,
    spawner: Spawner,
}

impl RelayThreads {
    /// At most `max` relays on threads at once; starts the spawner's
    /// thread (call it at start-up, see [`Spawner::start`]).
    pub fn new(max: usize) -> std::io::Result<RelayThreads> {
        Ok(RelayThreads {
            slots: ThreadSlots::new(max),
            spawner: Spawner::start()?,
        })
    }

    /// The slots: how many relays run on threads now.
    pub fn slots(&self) -> &ThreadSlots {
        &self.slots
    }

    /// The thread that starts relay threads (and guarded sessions' ones).
    pub(crate) fn spawner(&self) -> &Spawner {
        &self.spawner
    }
}

/// How many sessions may run on threads of their own at once (production
/// relays: two threads each; guarded sessions: one, see
/// `Server::with_guarded_threads`): past the limit a session stays on the
/// shared runtime, whose cost does not grow with the sessions.
pub struct ThreadSlots {
    max: usize,
    taken: std::sync::atomic::AtomicUsize,
}

impl ThreadSlots {
    /// At most `max` sessions on threads at once.
    pub fn new(max: usize) -> ThreadSlots {
        ThreadSlots {
            max,
            taken: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// How many sessions run on threads now.
    pub fn taken(&self) -> usize {
        self.taken.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A slot, held until the guard is dropped, or `None` when all are taken.
    pub(crate) fn take(&self) -> Option<ThreadSlot<'_>> {
        use std::sync::atomic::Ordering;
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| ThreadSlot(self))
    }
}

/// One taken [`ThreadSlots`] slot, given back on drop.
pub(crate) struct ThreadSlot<'a>(&'a ThreadSlots);

impl Drop for ThreadSlot<'_> {
    fn drop(&mut self) {
        self.0
            .taken
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Byte and message counts of one relay, per direction.
#[derive(Clone, Copy, Debug, Default)]
pub struct RelayStats {
    /// Bytes from client to server.
    pub bytes_up: u64,
    /// Bytes from server to client.
    pub bytes_down: u64,
    /// Messages from client to server.
    pub messages_up: u64,
    /// Messages from server to client.
    pub messages_down: u64,
    /// Rows from server to client: DataRow and CopyData messages.
    pub rows_down: u64,
    /// Statements from client to server: Query and Execute messages.
    pub statements_up: u64,
}

/// How a relay ended without error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayEnd {
    /// The client closed its connection.
    ClientClosed,
    /// The server closed its connection.
    ServerClosed,
}

enum PumpError {
    Read(io::Error),
    Write(io::Error),
    Frame(WireError),
}

/// One direction of the relay. Aligned to two cache lines, so that the
/// fields each direction's thread writes per read share no line with the
/// other direction's (or anything else's) when they run on two cores.
#[repr(align(128))]
struct Pump {
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    eof: bool,
    need_flush: bool,
    scanner: FrameScanner,
    bytes: u64,
    messages: u64,
    /// Messages whose tag is one of `counted_tags`.
    tagged: u64,
    /// The tags counted in `tagged` (rows one way, statements the other).
    counted_tags: [u8; 2],
    /// `bytes` and `messages`, for the metrics.
    tally: telemetry::RelayTally,
    /// Called with the SQL of each Query and Parse that arrives whole in
    /// one read starting at a frame boundary (best effort; off unless set).
    statements: Option<StatementSink>,
}

/// Receives the SQL text of statements a production client sends.
pub type StatementSink = Box<dyn FnMut(&str) + Send>;

impl Pump {
    fn new(
        leftover: BytesMut,
        max_message_size: usize,
        direction: &'static str,
        counted_tags: [u8; 2],
    ) -> Pump {
        let mut buf = vec![0u8; INITIAL_BUFFER_SIZE.max(leftover.len())].into_boxed_slice();
        buf[..leftover.len()].copy_from_slice(&leftover);
        Pump {
            buf,
            pos: 0,
            end: leftover.len(),
            eof: false,
            need_flush: false,
            scanner: FrameScanner::new(max_message_size),
            bytes: 0,
            messages: 0,
            tagged: 0,
            counted_tags,
            tally: telemetry::RelayTally::new(direction),
            statements: None,
        }
    }

    /// Accounts for `buf[pos..end]`, which is about to be written.
    fn scan(&mut self) -> Result<(), PumpError> {
        let chunk = &self.buf[self.pos..self.end];
        if let Some(sink) = self.statements.as_mut() {
            if self.scanner.at_boundary() {
                whole_statements(chunk, sink);
            }
        }
        let (tags, mut tagged) = (self.counted_tags, 0);
        let frames = self
            .scanner
            .feed(chunk, |tag, _| {
                tagged += u64::from(tag == tags[0] || tag == tags[1])
            })
            .map_err(PumpError::Frame)?;
        self.tagged += tagged;
        self.bytes += chunk.len() as u64;
        self.messages += frames;
        self.tally.set(self.bytes, self.messages);
        Ok(())
    }

    /// Doubles the buffer (up to [`MAX_BUFFER_SIZE`]) when the last read
    /// filled it: the peer is sending more than fits. Only called once
    /// everything read has been written, so nothing is copied.
    fn grow_if_filled(&mut self) {
        let len = self.buf.len();
        if self.end == len && len < MAX_BUFFER_SIZE {
            self.buf = vec![0u8; (len * 2).min(MAX_BUFFER_SIZE)].into_boxed_slice();
            self.end = 0;
            self.pos = 0;
        }
    }

    /// Whether everything read so far has been written and ends on a frame
    /// boundary.
    fn idle_at_boundary(&self) -> bool {
        self.pos == self.end && self.scanner.at_boundary()
    }

    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<Result<(), PumpError>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            while self.pos < self.end {
                let n = ready!(writer
                    .as_mut()
                    .poll_write(cx, &self.buf[self.pos..self.end]))
                .map_err(PumpError::Write)?;
                if n == 0 {
                    return Poll::Ready(Err(PumpError::Write(io::ErrorKind::WriteZero.into())));
                }
                self.pos += n;
                self.need_flush = true;
            }
            if self.eof {
                ready!(writer.as_mut().poll_flush(cx)).map_err(PumpError::Write)?;
                ready!(writer.as_mut().poll_shutdown(cx)).map_err(PumpError::Write)?;
                return Poll::Ready(Ok(()));
            }
            self.grow_if_filled();
            let mut read_buf = ReadBuf::new(&mut self.buf);
            match reader.as_mut().poll_read(cx, &mut read_buf) {
                Poll::Ready(Ok(())) => {
                    let n = read_buf.filled().len();
                    self.pos = 0;
                    self.end = n;
                    if n == 0 {
                        self.eof = true;
                    } else {
                        self.scan()?;
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(PumpError::Read(e))),
                Poll::Pending => {
                    if self.need_flush {
                        ready!(writer.as_mut().poll_flush(cx)).map_err(PumpError::Write)?;
                        self.need_flush = false;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Both directions of a production session.
pub struct Relay {
    client: Stream,
    server: Stream,
    up: Pump,
    down: Pump,
    primed: bool,
}

impl Relay {
    /// A relay between `client` and `server`; `*_leftover` are bytes each
    /// side already sent that were read ahead during startup.
    pub fn new(
        client: Stream,
        client_leftover: BytesMut,
        server: Stream,
        server_leftover: BytesMut,
        max_message_size: usize,
    ) -> Relay {
        Relay {
            client,
            server,
            up: Pump::new(
                client_leftover,
                max_message_size,
                telemetry::CLIENT_TO_SERVER,
                [FrontendKind::Query.tag(), FrontendKind::Execute.tag()],
            ),
            down: Pump::new(
                server_leftover,
                usize::MAX,
                telemetry::SERVER_TO_CLIENT,
                [BackendKind::DataRow.tag(), BackendKind::CopyData.tag()],
            ),
            primed: false,
        }
    }

    /// Hands the SQL of the client's Query and Parse messages to `sink`,
    /// as far as they arrive whole in one read (for the block log's
    /// production statement fingerprints). Off by default: the relay then
    /// does no work per statement.
    pub fn with_statements(mut self, sink: StatementSink) -> Relay {
        self.up.statements = Some(sink);
        self
    }

    /// Counts so far.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            bytes_up: self.up.bytes,
            bytes_down: self.down.bytes,
            messages_up: self.up.messages,
            messages_down: self.down.messages,
            rows_down: self.down.tagged,
            statements_up: self.up.tagged,
        }
    }

    /// Relays until either side closes or `force` is cancelled; hands the
    /// relay back (for [`Relay::close_with`]) unless it was lost on the
    /// way. With a `placement`, a relay whose both sides are plain TCP
    /// leaves the session's runtime: to the least loaded of single-thread
    /// runtimes, its sockets registered there (each message then wakes
    /// that one thread, never a second worker come to steal the task), or
    /// to two blocking threads of its own (each message wakes the thread
    /// sleeping in `recv` on that socket, on the sender's core). See
    /// `benches/README.md`, "Profile of the production relay".
    pub async fn run(
        self,
        force: CancellationToken,
        placement: Option<&RelayPlacement>,
    ) -> (Result<RelayEnd, SessionError>, Option<Relay>) {
        let Some(placement) = placement.filter(|_| !self.client.is_tls() && !self.server.is_tls())
        else {
            return self.run_here(force).await;
        };
        let runtimes = match placement {
            RelayPlacement::Threads(threads) => {
                return match threads.slots.take() {
                    Some(_slot) => self.run_threads(force, &threads.spawner).await,
                    None => self.run_here(force).await,
                };
            }
            RelayPlacement::Runtimes(runtimes) => runtimes,
        };
        let Relay {
            client,
            server,
            up,
            down,
            primed,
        } = self;
        let sockets = match detach(client, server) {
            Ok(sockets) => sockets,
            Err(e) => return (Err(e), None),
        };
        let moved = runtimes.spawn(move || async move {
            let (client, server) = match attach(sockets) {
                Ok(streams) => streams,
                Err(e) => return (Err(e), None),
            };
            let relay = Relay {
                client,
                server,
                up,
                down,
                primed,
            };
            relay.run_here(force).await
        });
        match moved.await {
            Ok(done) => done,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => (Err(SessionError::Shutdown), None),
        }
    }

    /// [`Relay::run`] on the current runtime.
    async fn run_here(
        mut self,
        force: CancellationToken,
    ) -> (Result<RelayEnd, SessionError>, Option<Relay>) {
        let outcome = tokio::select! {
            r = &mut self => r,
            _ = force.cancelled() => Err(SessionError::Shutdown),
        };
        (outcome, Some(self))
    }

    /// Accounts once for the bytes read ahead during startup.
    fn prime(&mut self) -> Result<(), SessionError> {
        if !self.primed {
            self.primed = true;
            self.up.scan().map_err(up_error)?;
            self.down.scan().map_err(down_error)?;
        }
        Ok(())
    }

    /// Sends the client a final message if the server-to-client stream is at
    /// a frame boundary (so the message cannot corrupt a frame in flight),
    /// then closes both connections.
    pub async fn close_with(mut self, message: &[u8]) {
        if self.down.idle_at_boundary() {
            let _ = self.client.write_all(message).await;
            let _ = self.client.flush().await;
        }
        let _ = self.client.shutdown().await;
        let _ = self.server.shutdown().await;
    }
}

impl Future for Relay {
    type Output = Result<RelayEnd, SessionError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Err(e) = this.prime() {
            return Poll::Ready(Err(e));
        }
        match this
            .up
            .poll_copy(cx, Pin::new(&mut this.client), Pin::new(&mut this.server))
        {
            Poll::Ready(Ok(())) => return Poll::Ready(Ok(RelayEnd::ClientClosed)),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(up_error(e))),
            Poll::Pending => {}
        }
        match this
            .down
            .poll_copy(cx, Pin::new(&mut this.server), Pin::new(&mut this.client))
        {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(RelayEnd::ServerClosed)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(down_error(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Calls `sink` with the SQL of every whole Query or Parse frame at the
/// start of `chunk`, which begins at a frame boundary; stops at the first
/// frame that does not end inside it.
fn whole_statements(chunk: &[u8], sink: &mut StatementSink) {
    let mut at = 0;
    while let Some(header) = chunk.get(at..at + 5) {
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let Some(end) = usize::try_from(len)
            .ok()
            .filter(|l| *l >= 4)
            .map(|l| at + 1 + l)
            .filter(|e| *e <= chunk.len())
        else {
            return;
        };
        let body = &chunk[at + 5..end];
        let cstr = |b: &[u8]| b.iter().position(|c| *c == 0).map(|n| n + 1);
        let sql = match FrontendKind::of(header[0]) {
            FrontendKind::Query => Some(body),
            FrontendKind::Parse => cstr(body).map(|n| &body[n..]),
            _ => None,
        };
        if let Some(sql) = sql.and_then(|b| cstr(b).map(|n| &b[..n - 1])) {
            sink(&String::from_utf8_lossy(sql));
        }
        at = end;
    }
}

fn up_error(e: PumpError) -> SessionError {
    match e {
        PumpError::Read(e) => SessionError::Client(e.into()),
        PumpError::Write(e) => SessionError::Upstream(e.into()),
        PumpError::Frame(e) => SessionError::Client(e),
    }
}

fn down_error(e: PumpError) -> SessionError {
    match e {
        PumpError::Read(e) => SessionError::Upstream(e.into()),
        PumpError::Write(e) => SessionError::Client(e.into()),
        PumpError::Frame(e) => SessionError::Upstream(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages;

    /// A connected pair of plain TCP streams on 127.0.0.1.
    pub(super) async fn tcp_pair() -> (Stream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (near, far) = tokio::join!(listener.accept(), tokio::net::TcpStream::connect(addr));
        (Stream::Plain(near.unwrap().0), far.unwrap())
    }

    /// `n` DataRow-tagged frames of 100 to 399 bytes, a bulk transfer.
    pub(super) fn data_rows(n: u32) -> Vec<u8> {
        let mut sent = Vec::new();
        for i in 0..n {
            let body = vec![b'a' + (i % 26) as u8; 100 + (i as usize * 7) % 300];
            sent.push(b'D');
            sent.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
            sent.extend_from_slice(&body);
        }
        sent
    }

    /// The buffers start small and grow while a bulk transfer fills them;
    /// the bytes stay exactly the server's, frames cut anywhere.
    #[tokio::test]
    async fn buffers_grow_under_bulk_transfer_and_bytes_stay_identical() {
        use tokio::io::AsyncReadExt;
        let (client, mut client_far) = tcp_pair().await;
        let (server, mut server_far) = tcp_pair().await;
        let sent = data_rows(2000);
        let mut relay = Relay::new(client, BytesMut::new(), server, BytesMut::new(), 1 << 20);
        let expected = sent.clone();
        let writer = tokio::spawn(async move {
            server_far.write_all(&sent).await.unwrap();
            server_far.shutdown().await.unwrap();
            server_far
        });
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client_far.read_to_end(&mut got).await.unwrap();
            got
        });
        assert_eq!((&mut relay).await.unwrap(), RelayEnd::ServerClosed);
        let got = reader.await.unwrap();
        drop(writer.await.unwrap());
        assert!(got == expected, "relayed bytes differ from the server's");
        let stats = relay.stats();
        assert_eq!((stats.messages_down, stats.rows_down), (2000, 2000));
        assert_eq!(stats.bytes_down, expected.len() as u64);
        assert!(relay.down.buf.len() > INITIAL_BUFFER_SIZE);
        assert!(relay.down.buf.len() <= MAX_BUFFER_SIZE);
        assert_eq!(relay.up.buf.len(), INITIAL_BUFFER_SIZE, "nothing came up");
    }

    /// Relays both directions byte for byte through `placement`, the
    /// read-ahead bytes first; on `force` the relay ends and comes back,
    /// its counts intact, to send the client a last message.
    pub(super) async fn relays_both_ways_and_comes_back_on_force(placement: &RelayPlacement) {
        use tokio::io::AsyncReadExt;
        let (client, mut client_far) = tcp_pair().await;
        let (server, mut server_far) = tcp_pair().await;
        let query = messages::query("SELECT 1");
        let relay = Relay::new(
            client,
            BytesMut::from(&query[..]),
            server,
            BytesMut::new(),
            1 << 20,
        );
        let force = CancellationToken::new();
        let cancel = force.clone();
        let far = tokio::spawn(async move {
            let mut got = vec![0u8; query.len()];
            server_far.read_exact(&mut got).await.unwrap();
            assert_eq!(got, query[..], "the read-ahead bytes go first");
            server_far.write_all(b"Z\0\0\0\x05I").await.unwrap();
            let mut back = [0u8; 6];
            client_far.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"Z\0\0\0\x05I");
            let second = messages::query("SELECT 2");
            client_far.write_all(&second).await.unwrap();
            let mut got = vec![0u8; second.len()];
            server_far.read_exact(&mut got).await.unwrap();
            assert_eq!(got, second[..]);
            cancel.cancel();
            (client_far, server_far)
        });
        let (outcome, relay) = relay.run(force, Some(placement)).await;
        assert!(matches!(outcome, Err(SessionError::Shutdown)));
        let relay = relay.expect("the relay comes back");
        let stats = relay.stats();
        assert_eq!((stats.messages_up, stats.statements_up), (2, 2));
        assert_eq!((stats.messages_down, stats.bytes_down), (1, 6));
        let (mut client_far, _server_far) = far.await.unwrap();
        relay.close_with(b"E\0\0\0\x04").await;
        let mut last = Vec::new();
        client_far.read_to_end(&mut last).await.unwrap();
        assert_eq!(last, b"E\0\0\0\x04");
    }

    /// A relay handed to a single-thread runtime of its own keeps every
    /// byte and count, comes back for `close_with`, and ends on force.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relay_moved_to_its_own_runtime_relays_both_ways() {
        let runtimes = RelayPlacement::Runtimes(SessionRuntimes::start(1).unwrap());
        relays_both_ways_and_comes_back_on_force(&runtimes).await;
        tokio::task::spawn_blocking(move || drop(runtimes))
            .await
            .unwrap();
    }

    #[test]
    fn whole_statements_are_found_at_frame_boundaries() {
        let mut chunk = messages::query("SELECT 1").to_vec();
        chunk.extend_from_slice(&messages::parse_message("s1", "SELECT $1::int"));
        chunk.extend_from_slice(&messages::describe(b'S', "s1"));
        let cut = messages::query("SELECT 'cut in two'");
        chunk.extend_from_slice(&cut[..cut.len() - 3]);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = seen.clone();
        let mut sink: StatementSink =
            Box::new(move |sql| into.lock().unwrap().push(sql.to_owned()));
        whole_statements(&chunk, &mut sink);
        assert_eq!(*seen.lock().unwrap(), ["SELECT 1", "SELECT $1::int"]);
        whole_statements(&[b'Q', 0xff, 0xff, 0xff, 0xff, 0], &mut sink);
        whole_statements(&[b'Q', 0, 0, 0, 1], &mut sink);
        assert_eq!(seen.lock().unwrap().len(), 2, "bad lengths are skipped");
    }
}
