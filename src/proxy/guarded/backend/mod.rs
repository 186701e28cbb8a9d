//! Server to client: every response is matched to the request it answers
//! (the [`Expect`] queue), checked, counted and scrubbed.
//!
//! - RowDescription: the second check (table OID and column number of
//!   every plain column against the policy).
//! - DataRow and CopyData: row and byte limits per statement, budgets per
//!   session and per role. At the first row over a limit, relaying stops,
//!   the upstream query is cancelled, the client gets the refusal, and
//!   everything up to the next ReadyForQuery is discarded.
//! - ErrorResponse / NoticeResponse of statements that touched classified
//!   data are scrubbed; NotificationResponse payloads are blanked unless
//!   the channel is allowed; errors of deliberately failed messages are
//!   replaced by the refusal.
//!
//! This file holds the loop, the dispatch by message kind and the matching
//! of responses to the queue; [`rows`] counts and pseudonymizes DataRows,
//! [`copy`] relays and rewrites COPY TO data.

mod checked;
mod copy;
mod rows;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::warn;

use super::copy_pipe::CopyPipe;
use super::exec::{Exec, Expect, Refused};
use super::Guard;
use crate::enforce::{
    self, blank_notification, check_row_description, scrub_error, DataRows, RewriteError,
};
use crate::guard::RefusedFacts;
use crate::guard::{OnDescription, OnError, OnReady};
use crate::policy::{Block, Rule};
use crate::proxy::{upstream, SessionError};
use crate::telemetry;
use crate::wire::messages;
use crate::wire::{frame_len, BackendKind, Conn, Frame, FrameScanner, FrameWriter, HEADER_LEN};
use checked::CheckedDescription;

/// What the client received, counted from the frames written to it: the
/// totals of the session's record and the relay metrics.
pub(super) struct Delivered {
    /// Follows frame boundaries to count messages and rows (DataRow and
    /// CopyData) by their tags.
    scanner: FrameScanner,
    pub bytes: u64,
    pub messages: u64,
    pub rows: u64,
    /// Bytes and messages already added to the metrics: they are
    /// published once per flush ([`Delivered::publish`]), not per message.
    published: (u64, u64),
    bytes_metric: metrics::Counter,
    messages_metric: metrics::Counter,
}

impl Delivered {
    pub fn new() -> Self {
        Delivered {
            scanner: FrameScanner::new(usize::MAX),
            bytes: 0,
            messages: 0,
            rows: 0,
            published: (0, 0),
            bytes_metric: metrics::counter!(telemetry::BYTES, "direction" => telemetry::SERVER_TO_CLIENT),
            messages_metric: metrics::counter!(telemetry::MESSAGES, "direction" => telemetry::SERVER_TO_CLIENT),
        }
    }

    /// Counts complete frames written to the client.
    pub fn count(&mut self, bytes: &[u8]) {
        if let Some(tag) = single_frame(bytes).filter(|_| self.scanner.at_boundary()) {
            self.rows += u64::from(is_row(tag));
            self.bytes += bytes.len() as u64;
            self.messages += 1;
            return;
        }
        let mut rows = 0;
        let messages = self
            .scanner
            .feed(bytes, |tag, _| rows += u64::from(is_row(tag)))
            .unwrap_or(0);
        self.rows += rows;
        self.bytes += bytes.len() as u64;
        self.messages += messages;
    }

    /// Adds what was counted since the last call to the relay metrics.
    pub fn publish(&mut self) {
        let (bytes, messages) = self.published;
        if self.bytes > bytes {
            self.bytes_metric.increment(self.bytes - bytes);
        }
        if self.messages > messages {
            self.messages_metric.increment(self.messages - messages);
        }
        self.published = (self.bytes, self.messages);
    }
}

/// Whether a message of type `tag` is a row (DataRow, CopyData).
fn is_row(tag: u8) -> bool {
    matches!(
        BackendKind::of(tag),
        BackendKind::DataRow | BackendKind::CopyData
    )
}

/// The type of the one whole frame `bytes` holds, if it holds exactly one
/// (a message forwarded as received): counted without the scanner.
fn single_frame(bytes: &[u8]) -> Option<u8> {
    let len = frame_len(bytes.get(..HEADER_LEN)?, usize::MAX).ok()?;
    (len == bytes.len()).then_some(bytes[0])
}

pub(super) struct Backend<'a, R, W> {
    guard: &'a Guard<'a>,
    server: &'a mut Conn<R>,
    client: &'a mut FrameWriter<W>,
    delivered: &'a mut Delivered,
    /// After a violation: drop everything up to the next ReadyForQuery.
    discarding: bool,
    /// The server entered COPY IN for an Execute: the Syncs the client sent
    /// until it ended the copy get no answer.
    copy_in: bool,
    /// The rewriting of a COPY TO whose columns are pseudonymized.
    copy_out: Option<CopyPipe>,
    /// DataRows of a pseudonymized result taken together, one after the
    /// other, with where each ends; their rewriter; the rewritten rows.
    rows: Vec<u8>,
    row_ends: Vec<usize>,
    data_rows: DataRows,
    rewritten: Vec<u8>,
    /// Rows already taken from the role's budget for the current result:
    /// a stream takes them in chunks, not one lock per row, and gives back
    /// what it did not use when the result ends.
    role_reserve: u64,
    /// The last RowDescription that passed the check.
    checked: CheckedDescription,
}

impl<'a, R, W> Backend<'a, R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    pub fn new(
        guard: &'a Guard<'a>,
        server: &'a mut Conn<R>,
        client: &'a mut FrameWriter<W>,
        delivered: &'a mut Delivered,
    ) -> Self {
        Backend {
            guard,
            server,
            client,
            delivered,
            discarding: false,
            copy_in: false,
            copy_out: None,
            rows: Vec::new(),
            row_ends: Vec::new(),
            data_rows: DataRows::default(),
            rewritten: Vec::new(),
            role_reserve: 0,
            checked: CheckedDescription::default(),
        }
    }

    /// Relays server messages until the server closes.
    pub async fn run(mut self) -> Result<(), SessionError> {
        loop {
            let frame = match self.copy_out.as_mut().filter(|p| p.in_flight()) {
                Some(pipe) => tokio::select! {
                    biased;
                    Some(out) = pipe.next() => {
                        self.copy_written(out).await?;
                        if self.server.buffered() == 0 {
                            self.flush().await?;
                        }
                        continue;
                    }
                    frame = self.server.read_frame() => frame,
                },
                None => self.server.read_frame().await,
            };
            let Some(frame) = frame.map_err(SessionError::Upstream)? else {
                self.flush().await?;
                return Ok(());
            };
            self.handle(frame).await?;
            if self.server.buffered() == 0 {
                if let Some(pipe) = self.copy_out.as_mut() {
                    pipe.send();
                }
                self.flush().await?;
            }
        }
    }

    /// Writes complete frames to the client and counts them.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.client
            .write_frame(bytes)
            .await
            .map_err(SessionError::Client)?;
        self.delivered.count(bytes);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SessionError> {
        self.delivered.publish();
        self.client.flush().await.map_err(SessionError::Client)
    }

    fn head_exec(&self) -> Option<Arc<Exec>> {
        self.guard.state.queue.head_exec()
    }

    async fn handle(&mut self, frame: Frame) -> Result<(), SessionError> {
        if self.copy_out.is_some() && frame.backend() != BackendKind::CopyData {
            self.drain_copy().await?;
        }
        match frame.backend() {
            BackendKind::NotificationResponse => return self.notification(&frame).await,
            BackendKind::ParameterStatus => return self.parameter_status(&frame).await,
            BackendKind::ReadyForQuery => return self.ready(&frame).await,
            _ => {}
        }
        if self.guard.state.queue.head_is_internal() {
            return self.internal(&frame);
        }
        if self.discarding {
            return Ok(());
        }
        match frame.backend() {
            BackendKind::ErrorResponse => self.error(&frame).await,
            BackendKind::NoticeResponse => {
                let scrub = self.head_exec().is_some_and(|e| e.scrub);
                self.forward_scrubbed(&frame, scrub).await
            }
            BackendKind::ParseComplete => {
                self.pop_expected(&frame, |e| matches!(e, Expect::Parse))
                    .await
            }
            BackendKind::BindComplete => {
                self.pop_expected(&frame, |e| matches!(e, Expect::Bind))
                    .await
            }
            BackendKind::CloseComplete => {
                self.pop_expected(&frame, |e| matches!(e, Expect::Close))
                    .await
            }
            BackendKind::ParameterDescription => self.parameter_description(&frame).await,
            BackendKind::RowDescription => self.row_description(&frame).await,
            BackendKind::NoData => self.no_data(&frame).await,
            BackendKind::DataRow => self.data_row(&frame).await,
            BackendKind::CopyData => self.copy_data(&frame).await,
            BackendKind::CommandComplete
            | BackendKind::EmptyQueryResponse
            | BackendKind::PortalSuspended => self.completion(&frame).await,
            BackendKind::CopyInResponse => {
                self.copy_in |= self.guard.state.queue.copy_in_is_extended();
                self.write(frame.as_bytes()).await
            }
            BackendKind::CopyOutResponse => self.copy_out_response(&frame).await,
            BackendKind::CopyDone => self.copy_done(&frame).await,
            _ => Err(anomaly(&frame)),
        }
    }

    async fn parameter_description(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let hidden = self
            .guard
            .state
            .queue
            .parameter_description()
            .map_err(|_| anomaly(frame))?;
        if hidden {
            Ok(())
        } else {
            self.write(frame.as_bytes()).await
        }
    }

    async fn pop_expected(
        &mut self,
        frame: &Frame,
        expected: impl Fn(&Expect) -> bool,
    ) -> Result<(), SessionError> {
        self.guard
            .state
            .queue
            .complete(expected)
            .map_err(|_| anomaly(frame))?;
        self.write(frame.as_bytes()).await
    }

    async fn forward_scrubbed(&mut self, frame: &Frame, scrub: bool) -> Result<(), SessionError> {
        if scrub {
            self.write(&scrub_error(frame)).await
        } else {
            self.write(frame.as_bytes()).await
        }
    }

    async fn notification(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let policy = self.guard.shared.policy.current();
        let passes = messages::parse_notification(frame)
            .map(|(_, channel, _)| policy.notification_passes(&channel))
            .unwrap_or(false);
        if passes {
            self.write(frame.as_bytes()).await
        } else {
            match blank_notification(frame) {
                Some(blanked) => self.write(&blanked).await,
                None => Ok(()),
            }
        }
    }

    async fn parameter_status(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let (name, value) =
            messages::parse_parameter_status(frame).map_err(SessionError::Upstream)?;
        if let Err(b) = enforce::check_reported_setting(&name, &value) {
            return Err(SessionError::Guard(b.reason));
        }
        if name == "session_authorization" && value != self.guard.info.user {
            return Err(SessionError::Guard(
                "the session's identity changed; guarded sessions keep their login role".into(),
            ));
        }
        if name == "is_superuser" && value == "on" {
            let was = self
                .guard
                .info
                .server_params
                .iter()
                .any(|(k, v)| k == "is_superuser" && v == "on");
            if !was {
                return Err(SessionError::Guard(
                    "the session gained superuser rights; guarded sessions keep their login role"
                        .into(),
                ));
            }
        }
        self.write(frame.as_bytes()).await
    }

    async fn ready(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.end_result();
        self.guard
            .state
            .status
            .store(messages::parse_ready_status(frame), Ordering::Relaxed);
        let ready = self.guard.state.queue.ready(&mut self.copy_in);
        match ready.map_err(|_| anomaly(frame))? {
            OnReady::Internal(reply, result) => {
                let _ = reply.send(result);
                return Ok(());
            }
            OnReady::Relay => {}
        }
        if std::mem::take(&mut self.discarding) && messages::parse_ready_status(frame) == b'T' {
            self.guard
                .state
                .abort_pending
                .store(true, Ordering::Relaxed);
            self.guard.state.status.store(b'E', Ordering::Relaxed);
            return self.write(&messages::ready_for_query(b'E')).await;
        }
        self.write(frame.as_bytes()).await
    }

    /// Collects the results of an internal query.
    fn internal(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let mut queue = self.guard.state.queue.lock();
        let Some(Expect::Internal { sets, error, .. }) = queue.front_mut() else {
            return Err(anomaly(frame));
        };
        match frame.backend() {
            BackendKind::RowDescription => sets.push(Vec::new()),
            BackendKind::DataRow => {
                let row = messages::parse_data_row(frame).map_err(SessionError::Upstream)?;
                match sets.last_mut() {
                    Some(set) => set.push(row),
                    None => return Err(anomaly(frame)),
                }
            }
            BackendKind::CommandComplete => {
                if sets.is_empty() {
                    sets.push(Vec::new());
                }
            }
            BackendKind::ErrorResponse => {
                *error = Some(
                    messages::parse_error_code(frame)
                        .map(|(code, msg)| format!("{code}: {msg}"))
                        .unwrap_or_default(),
                )
            }
            BackendKind::NoticeResponse
            | BackendKind::EmptyQueryResponse
            | BackendKind::ParseComplete
            | BackendKind::BindComplete
            | BackendKind::CloseComplete
            | BackendKind::NoData => {}
            _ => return Err(anomaly(frame)),
        }
        Ok(())
    }

    async fn error(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.end_result();
        let OnError {
            replacement,
            scrub,
            copy_ended,
        } = self.guard.state.queue.error();
        if copy_ended {
            self.copy_in = false;
        }
        let replacement = match replacement {
            Some(Refused::Error(err)) => Some(err),
            Some(Refused::Record(r)) => Some(self.guard.record_refused(*r).await),
            None => None,
        };
        match replacement {
            Some(err) => self.write(&err.encode()).await,
            None => self.forward_scrubbed(frame, scrub).await,
        }
    }

    async fn row_description(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let OnDescription {
            target,
            hidden,
            described: pop,
        } = self
            .guard
            .state
            .queue
            .row_description()
            .map_err(|_| anomaly(frame))?;
        if let Some(exec) = target
            .as_ref()
            .filter(|e| !self.checked.passed_before(e, frame))
        {
            let fields = messages::parse_row_description(frame).map_err(SessionError::Upstream)?;
            let checked = check_row_description(
                &exec.policy,
                &exec.catalog,
                &exec.facts,
                &exec.allowance,
                &exec.class.limits,
                &fields,
            );
            match checked {
                Ok(()) => {
                    self.checked.passed(exec, frame);
                    exec.keep_fields(fields);
                }
                Err(b) => {
                    self.checked.forget();
                    exec.poison();
                    if b.rule == Rule::ResultUnknownRelation {
                        self.guard.state.probe_wanted.store(true, Ordering::Relaxed);
                    }
                    return self.violation(&b, pop).await;
                }
            }
        }
        if let Some(exec) = &target {
            exec.mark_checked();
        }
        if hidden {
            Ok(())
        } else {
            self.write(frame.as_bytes()).await
        }
    }

    async fn no_data(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let (target, hidden) = self
            .guard
            .state
            .queue
            .no_data()
            .map_err(|_| anomaly(frame))?;
        if let Some(exec) = target {
            exec.mark_checked();
        }
        if hidden {
            Ok(())
        } else {
            self.write(frame.as_bytes()).await
        }
    }
    /// Gives back the role budget a finished result did not use.
    fn end_result(&mut self) {
        self.copy_out = None;
        let unused = std::mem::take(&mut self.role_reserve);
        if unused > 0 {
            self.guard
                .shared
                .budgets
                .give_back(&self.guard.info.user, unused);
        }
    }

    async fn completion(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.end_result();
        let e = self
            .guard
            .state
            .queue
            .completion()
            .map_err(|_| anomaly(frame))?;
        if e.class.dump.is_some() {
            let (rows, bytes) = e.take_unreceipted();
            let owner = e.counted_by.as_deref().unwrap_or(&e);
            self.guard.state.receipt.add(
                &owner.facts,
                &owner.allowance,
                &owner.catalog,
                rows,
                bytes,
            );
        }
        self.write(frame.as_bytes()).await
    }

    /// Stops the current result: the refusal goes to the client, the
    /// running query is cancelled (unless `idle`: nothing runs yet), and
    /// everything up to the next ReadyForQuery is discarded.
    async fn violation(&mut self, b: &Block, idle: bool) -> Result<(), SessionError> {
        let head = self.head_exec();
        let sql = head.as_ref().and_then(|e| e.sql.clone());
        let counted = head.as_ref().map(|e| e.counted());
        let facts = head
            .as_deref()
            .map(|e| RefusedFacts::new([&*e.facts], &e.catalog, &e.policy));
        let err = self
            .guard
            .refusal(
                b,
                "result stopped",
                sql.as_deref().unwrap_or(""),
                facts.as_ref(),
                counted,
            )
            .await;
        self.write(&err.encode()).await?;
        self.discarding = true;
        self.end_result();
        let key = self.guard.upstream_key.clone().filter(|_| !idle);
        match key {
            Some(key) => {
                let shared = self.guard.shared_arc.clone();
                let state = self.guard.state.clone();
                self.guard
                    .state
                    .set_pending_cancel(self.guard.shared.runtime.spawn(async move {
                        if let Err(e) = upstream::send_cancel(&shared, &key).await {
                            warn!(error = %e, "cancel after a limit was not delivered");
                        }
                        state.queue.release(true);
                    }));
            }
            None => self.guard.state.queue.release(true),
        }
        Ok(())
    }
}

/// The refusal when a value cannot be pseudonymized.
fn pseudonym_block(e: &RewriteError) -> Block {
    enforce::block(Rule::PseudonymUnsupported, e.to_string())
}

/// The refusal when no key is configured.
fn no_key() -> Block {
    enforce::block(
        Rule::PseudonymNoKey,
        "copyguard has no pseudonymization key (pseudonym.key_file)",
    )
}

fn anomaly(frame: &Frame) -> SessionError {
    SessionError::UpstreamProtocol(format!(
        "unexpected message {:?} from the server in a guarded session",
        frame.tag() as char
    ))
}
