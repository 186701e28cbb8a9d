//! The guarded relay: a session of a non-production role. Two halves run
//! concurrently: the [`frontend`] (client to server: analyze, decide,
//! forward or refuse) and the [`backend`] (server to client: check, count,
//! scrub). They share the queue of responses the server owes
//! ([`exec::Expect`]), so each response is judged by the request it
//! answers, and so copyguard can run its own catalog queries in between.
//! A pseudonymized COPY TO is rewritten in batches on the blocking pool
//! ([`copy_pipe`]), its outputs relayed in order. [`run_placed`] runs a
//! session between plain TCP sockets on two threads of its own, one per
//! half, when the server says so ([`Shared::guarded_threads`]).

mod backend;
mod blocking;
mod copy_pipe;
mod exec;
mod frontend;
mod race;
mod split;

use std::pin::pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::cancel::UpstreamKey;
use super::relay::{RelayEnd, RelayStats};
use super::{audit, SessionError, SessionInfo, Shared};
use crate::analysis::StatementFacts;
use crate::audit::{Event, SessionFields, SessionTotals, StatementEvent, Verdict};
use crate::catalog::Catalog;
use crate::enforce::block_error;
use crate::guard::RefusedFacts;
use crate::policy::{Allowance, Block, RoleClass};
use crate::wire::messages::ErrorFields;
use crate::wire::{Conn, FrameWriter, Stream};

use backend::{Backend, Delivered};
use exec::{RefusedStatement, SessionState};
use frontend::Frontend;
use race::{race, First};

/// A refusal about to be recorded: the rule, what was refused (for the
/// log) and its block-log event.
#[derive(Debug)]
struct PendingRefusal {
    block: Block,
    what: &'static str,
    event: StatementEvent,
}

impl PendingRefusal {
    /// The refusal of `sql` by `b` (`what` for the log), with the
    /// relations and classified columns of the `facts` it was decided on.
    fn new(
        b: &Block,
        what: &'static str,
        sql: &str,
        facts: Option<&RefusedFacts>,
    ) -> PendingRefusal {
        PendingRefusal {
            block: b.clone(),
            what,
            event: audit::refusal_event(sql, b, facts),
        }
    }
}

/// What both halves of one guarded session read.
pub(crate) struct Guard<'a> {
    pub shared: &'a Shared,
    pub shared_arc: Arc<Shared>,
    pub info: &'a SessionInfo,
    pub class: Arc<RoleClass>,
    pub upstream_key: Option<UpstreamKey>,
    /// Allowed-statement counter (a handle, not a registry lookup per
    /// statement).
    pub allowed: metrics::Counter,
    /// The session's fixed fields in the block log.
    pub session: Arc<SessionFields>,
    /// Client-to-server byte and message counters.
    up_bytes: metrics::Counter,
    up_messages: metrics::Counter,
    state: Arc<SessionState>,
}

impl Guard<'_> {
    /// Records a refusal (statement refused before it ran, or result
    /// stopped while it streamed: `what`, with the rows and bytes sent
    /// before the stop) in the log, the metrics and the block log, with
    /// the relations and classified columns of the `facts` it was decided
    /// on, and returns the error the client gets: the refusal, or, when
    /// the block log cannot take the record, that error. Reasons never
    /// hold data values.
    pub async fn refusal(
        &self,
        b: &Block,
        what: &'static str,
        sql: &str,
        facts: Option<&RefusedFacts>,
        rows: Option<(u64, u64)>,
    ) -> ErrorFields {
        let mut pending = PendingRefusal::new(b, what, sql, facts);
        if let Some((rows, bytes)) = rows {
            pending.event.rows = Some(rows);
            pending.event.bytes = Some(bytes);
        }
        self.commit_refusal(pending).await
    }

    /// Records a statement refused before it ran, when the server reached
    /// its failing stand-in; the error the client gets.
    pub async fn record_refused(&self, r: RefusedStatement) -> ErrorFields {
        let facts = r.refusal.facts.as_ref();
        let p = PendingRefusal::new(&r.refusal.block, "statement refused", &r.sql, facts);
        self.commit_refusal(p).await
    }

    /// Records a refusal decided earlier ([`Guard::refusal`]); the error
    /// the client gets.
    async fn commit_refusal(&self, p: PendingRefusal) -> ErrorFields {
        let b = &p.block;
        tracing::warn!(
            user = %self.info.user,
            database = %self.info.database,
            rule = b.rule.id(),
            reason = %b.reason,
            "{}",
            p.what
        );
        metrics::counter!(crate::telemetry::VERDICTS, "verdict" => "block", "rule" => b.rule.id())
            .increment(1);
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        self.state.refusals.fetch_add(1, relaxed);
        if p.event.rows.is_none() {
            self.state.statements.fetch_add(1, relaxed);
        }
        match self.record(p.event).await {
            Ok(()) => block_error(b),
            Err(e) => e,
        }
    }

    /// Records an allowed statement's verdict when it needs a record (it
    /// returns classified data), or when the block log is failing (so the
    /// statement fails closed and the log's recovery is noticed). The
    /// error is what the client gets instead of running the statement.
    pub async fn allowed_verdict(
        &self,
        sql: &str,
        facts: &StatementFacts,
        allowance: &Allowance,
        catalog: &Catalog,
    ) -> Result<(), ErrorFields> {
        self.state
            .statements
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let verdict = match audit::allowed_verdict(allowance) {
            Some(v) => v,
            None if self.shared.audit.healthy() => return Ok(()),
            None => Verdict::Allowed,
        };
        let ev = audit::statement_event(sql, verdict, None, Some((facts, allowance, catalog)));
        self.record(ev).await
    }

    /// Counts `messages` messages of `bytes` bytes in all the client sent
    /// (the frontend adds them up and counts them once per batch).
    pub fn count_up(&self, bytes: u64, messages: u64) {
        if messages == 0 {
            return;
        }
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        self.state.bytes_up.fetch_add(bytes, relaxed);
        self.state.messages_up.fetch_add(messages, relaxed);
        self.up_bytes.increment(bytes);
        self.up_messages.increment(messages);
    }

    /// Writes a verdict to the block log; the error the client gets when
    /// it cannot be written.
    async fn record(&self, ev: StatementEvent) -> Result<(), ErrorFields> {
        self.shared
            .audit
            .record(Event::verdict(&self.session, ev))
            .await
            .map(drop)
            .map_err(|e| audit::unavailable(&e))
    }
}

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Splits a stream into independently usable halves: owned halves for
/// plain TCP (no lock), `tokio::io::split` under TLS.
fn split(stream: Stream) -> (Reader, Writer) {
    match stream {
        Stream::Plain(tcp) => {
            let (r, w) = tcp.into_split();
            (Box::new(r), Box::new(w))
        }
        tls => {
            let (r, w) = tokio::io::split(tls);
            (Box::new(r), Box::new(w))
        }
    }
}

/// How a guarded session ended, what it did, and what it relayed.
pub(crate) type Outcome = (Result<RelayEnd, SessionError>, SessionTotals, RelayStats);

/// The outcome of a session that ended with `e` before relaying anything.
fn failed(e: SessionError) -> Outcome {
    (Err(e), SessionTotals::default(), RelayStats::default())
}

/// The session on two threads of its own, one per half ([`split`]), when
/// the server places guarded sessions so (`COPYGUARD_GUARDED=threads`),
/// both sides are plain TCP and one of [`Shared::guarded_threads`]' slots
/// is free; otherwise [`run`] here. What outlives the session is spawned
/// on [`Shared::runtime`].
pub(crate) async fn run_placed(
    shared: Arc<Shared>,
    client: Conn<Stream>,
    upstream: Conn<Stream>,
    info: &SessionInfo,
    class: Arc<RoleClass>,
    upstream_key: Option<UpstreamKey>,
    session: Arc<SessionFields>,
) -> Outcome {
    let placed = shared.clone();
    let plain = !client.get_ref().is_tls() && !upstream.get_ref().is_tls();
    let slot = placed
        .guarded_threads
        .get()
        .filter(|_| plain)
        .and_then(|slots| slots.take());
    let Some(_slot) = slot else {
        return run(shared, client, upstream, info, class, upstream_key, session).await;
    };
    let (client, client_buf) = client.into_parts();
    let (server, server_buf) = upstream.into_parts();
    let (client, server) = match super::workers::detach(client, server) {
        Ok(sockets) => sockets,
        Err(e) => return failed(e),
    };
    let spawner = match placed.relay_runtimes.get() {
        Some(super::relay::RelayPlacement::Threads(threads)) => Some(threads.spawner()),
        _ => None,
    };
    let session = split::Session {
        shared,
        info: info.clone(),
        class,
        upstream_key,
        fields: session,
    };
    let run = move || split::run(session, (client, client_buf), (server, server_buf));
    super::workers::on_thread("copyguard-guarded", spawner, run)
        .await
        .unwrap_or_else(|e| failed(SessionError::Client(e.into())))
}

/// Runs a guarded session until either side closes or shutdown forces an
/// end. A fatal error is reported to the client between frames.
pub(crate) async fn run(
    shared: Arc<Shared>,
    client: Conn<Stream>,
    upstream: Conn<Stream>,
    info: &SessionInfo,
    class: Arc<RoleClass>,
    upstream_key: Option<UpstreamKey>,
    session: Arc<SessionFields>,
) -> Outcome {
    let max = shared.config.limits.max_message_size;
    let (client_stream, client_buf) = client.into_parts();
    let (server_stream, server_buf) = upstream.into_parts();
    let (client_r, client_w) = split(client_stream);
    let (server_r, server_w) = split(server_stream);
    let mut client_in = Conn::with_buffer(client_r, client_buf, max);
    let mut server_in = Conn::with_buffer(server_r, server_buf, usize::MAX);
    let mut server_out = FrameWriter::new(server_w);
    let mut client_out = FrameWriter::with_capacity(CLIENT_OUT_CAPACITY, client_w);
    let mut delivered = Delivered::new();
    let catalog = catalog_of(&shared, info);
    let guard = Guard::new(&shared, info, class, upstream_key, session);
    let force = shared.force.child_token();
    let outcome = {
        let front = pin!(Frontend::new(&guard, &mut client_in, &mut server_out, catalog).run());
        let back =
            pin!(Backend::new(&guard, &mut server_in, &mut client_out, &mut delivered).run());
        let forced = pin!(force.cancelled());
        // Each half polled only when woken (`race`), not at every wake-up
        // of the other.
        match race(front, race(back, forced)).await {
            First::Left(r) => r.map(|()| RelayEnd::ClientClosed),
            First::Right(First::Left(r)) => r.map(|()| RelayEnd::ServerClosed),
            First::Right(First::Right(())) => Err(SessionError::Shutdown),
        }
    };
    finish(&guard, outcome, &mut client_out, delivered).await
}

/// The client's write buffer of a guarded session.
const CLIENT_OUT_CAPACITY: usize = 32 * 1024;

/// The catalog the session's statements are decided against (an empty one
/// until the database's first load).
fn catalog_of(shared: &Shared, info: &SessionInfo) -> Arc<Catalog> {
    shared
        .catalogs
        .get(&info.database)
        .unwrap_or_else(|| Arc::new(Catalog::new(Vec::new(), Vec::new())))
}

impl<'a> Guard<'a> {
    /// What both halves of the session of `info` read.
    fn new(
        shared: &'a Arc<Shared>,
        info: &'a SessionInfo,
        class: Arc<RoleClass>,
        upstream_key: Option<UpstreamKey>,
        session: Arc<SessionFields>,
    ) -> Guard<'a> {
        Guard {
            shared,
            shared_arc: shared.clone(),
            info,
            class,
            upstream_key,
            allowed: metrics::counter!(crate::telemetry::VERDICTS, "verdict" => "allow", "rule" => ""),
            session,
            up_bytes: metrics::counter!(crate::telemetry::BYTES, "direction" => crate::telemetry::CLIENT_TO_SERVER),
            up_messages: metrics::counter!(crate::telemetry::MESSAGES, "direction" => crate::telemetry::CLIENT_TO_SERVER),
            state: Arc::new(SessionState::new()),
        }
    }
}

/// Ends a session whose halves have stopped with `outcome`: tells the
/// client a fatal error between frames, flushes, publishes the counts and
/// a dump's receipt, and sums up what the session did.
async fn finish<W: AsyncWrite + Unpin>(
    guard: &Guard<'_>,
    outcome: Result<RelayEnd, SessionError>,
    client_out: &mut FrameWriter<W>,
    mut delivered: Delivered,
) -> Outcome {
    if let Err(err) = &outcome {
        if let Some(fields) = err.to_client() {
            let bytes = fields.encode();
            if client_out.between_frames() && client_out.write_frame(&bytes).await.is_ok() {
                delivered.count(&bytes);
            }
        }
    }
    let _ = client_out.flush().await;
    delivered.publish();
    if let Some(dump) = &guard.class.dump {
        audit::dump_receipt(
            &guard.shared.audit,
            &guard.session,
            dump,
            &guard.state.receipt,
        )
        .await;
    }
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let totals = SessionTotals {
        statements: guard.state.statements.load(relaxed),
        refusals: guard.state.refusals.load(relaxed),
        rows: delivered.rows,
        bytes: delivered.bytes,
        ..SessionTotals::default()
    };
    let stats = RelayStats {
        bytes_up: guard.state.bytes_up.load(relaxed),
        bytes_down: delivered.bytes,
        messages_up: guard.state.messages_up.load(relaxed),
        messages_down: delivered.messages,
        rows_down: delivered.rows,
        statements_up: 0,
    };
    (outcome, totals, stats)
}
