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

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::warn;

use super::copy_pipe::CopyPipe;
use super::exec::{Exec, Expect, Refused};
use super::Guard;
use crate::analysis::{CopyForceQuote, CopyFormat, StatementKind};
use crate::enforce::copy::{self, CopyRewriter};
use crate::enforce::{
    self, blank_notification, check_row_description, scrub_error, ColumnPlan, DataRows,
    PlannedColumn, RewriteError,
};
use crate::policy::{Block, Rule};
use crate::proxy::{upstream, SessionError};
use crate::pseudonym::{ColumnType, Format, Pseudonymizer};
use crate::telemetry;
use crate::wire::messages;
use crate::wire::{BackendKind, Conn, Frame, FrameScanner, FrameWriter, HEADER_LEN};

/// What the client received, counted from the frames written to it: the
/// totals of the session's record and the relay metrics.
pub(super) struct Delivered {
    /// Follows frame boundaries to count messages and rows (DataRow and
    /// CopyData) by their tags.
    scanner: FrameScanner,
    pub bytes: u64,
    pub messages: u64,
    pub rows: u64,
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
            bytes_metric: metrics::counter!(telemetry::BYTES, "direction" => telemetry::SERVER_TO_CLIENT),
            messages_metric: metrics::counter!(telemetry::MESSAGES, "direction" => telemetry::SERVER_TO_CLIENT),
        }
    }

    /// Counts bytes written to the client.
    pub fn count(&mut self, bytes: &[u8]) {
        let mut rows = 0;
        let messages = self
            .scanner
            .feed(bytes, |tag, _| {
                rows += u64::from(matches!(
                    BackendKind::of(tag),
                    BackendKind::DataRow | BackendKind::CopyData
                ))
            })
            .unwrap_or(0);
        self.rows += rows;
        self.bytes += bytes.len() as u64;
        self.messages += messages;
        self.bytes_metric.increment(bytes.len() as u64);
        self.messages_metric.increment(messages);
    }
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
}

/// Rows a stream takes from its role's budget at a time.
const ROLE_CHUNK: u64 = 256;

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
        self.client.flush().await.map_err(SessionError::Client)
    }

    fn head_exec(&self) -> Option<Arc<Exec>> {
        match self.guard.state.lock().front() {
            Some(Expect::Statement(e)) | Some(Expect::Execute(e)) => Some(e.clone()),
            _ => None,
        }
    }

    fn head_is_internal(&self) -> bool {
        matches!(
            self.guard.state.lock().front(),
            Some(Expect::Internal { .. })
        )
    }

    async fn handle(&mut self, frame: Frame) -> Result<(), SessionError> {
        if frame.backend() != BackendKind::CopyData {
            self.drain_copy().await?;
        }
        match frame.backend() {
            BackendKind::NotificationResponse => return self.notification(&frame).await,
            BackendKind::ParameterStatus => return self.parameter_status(&frame).await,
            BackendKind::ReadyForQuery => return self.ready(&frame).await,
            _ => {}
        }
        if self.head_is_internal() {
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
                self.copy_in |= matches!(self.guard.state.lock().front(), Some(Expect::Execute(_)));
                self.write(frame.as_bytes()).await
            }
            BackendKind::CopyOutResponse => self.copy_out_response(&frame).await,
            BackendKind::CopyDone => self.copy_done(&frame).await,
            _ => Err(anomaly(&frame)),
        }
    }

    async fn parameter_description(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let hidden = match self.guard.state.lock().front() {
            Some(Expect::Describe { hidden, .. }) => *hidden,
            _ => return Err(anomaly(frame)),
        };
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
        {
            let mut queue = self.guard.state.lock();
            match queue.front() {
                Some(e) if expected(e) => {
                    queue.pop_front();
                }
                _ => return Err(anomaly(frame)),
            }
        }
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
        let internal = {
            let mut queue = self.guard.state.lock();
            let mut finished = None;
            while let Some(e) = queue.pop_front() {
                match e {
                    Expect::CopyEnd => self.copy_in = false,
                    Expect::SyncInCopy if self.copy_in => {}
                    e if e.ends_cycle() => {
                        finished = Some(e);
                        break;
                    }
                    _ => {}
                }
            }
            match finished {
                Some(Expect::Internal { reply, sets, error }) => Some((reply, sets, error)),
                Some(_) => None,
                None => return Err(anomaly(frame)),
            }
        };
        if let Some((reply, sets, error)) = internal {
            let _ = reply.send(match error {
                Some(e) => Err(e),
                None => Ok(sets),
            });
            return Ok(());
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
        let mut queue = self.guard.state.lock();
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
            BackendKind::NoticeResponse | BackendKind::EmptyQueryResponse => {}
            _ => return Err(anomaly(frame)),
        }
        Ok(())
    }

    async fn error(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.end_result();
        let (replacement, scrub) = {
            let mut queue = self.guard.state.lock();
            let replacement = match queue.front() {
                Some(Expect::Refused(_)) => match queue.pop_front() {
                    Some(Expect::Refused(r)) => Some(r),
                    _ => None,
                },
                _ => None,
            };
            let scrub = matches!(
                queue.front(),
                Some(Expect::Statement(e)) | Some(Expect::Execute(e)) if e.scrub
            );
            if self.guard.state.skip_failed_cycle(&mut queue) {
                self.copy_in = false;
            }
            (replacement, scrub)
        };
        let replacement = match replacement {
            Some(Refused::Error(err)) => Some(err),
            Some(Refused::Record(p)) => Some(self.guard.commit_refusal(*p).await),
            None => None,
        };
        match replacement {
            Some(err) => self.write(&err.encode()).await,
            None => self.forward_scrubbed(frame, scrub).await,
        }
    }

    async fn row_description(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let (target, hidden, pop) = match self.guard.state.lock().front() {
            Some(Expect::Statement(e)) => (Some(e.clone()), false, false),
            Some(Expect::Describe { target, hidden }) => (target.clone(), *hidden, true),
            _ => return Err(anomaly(frame)),
        };
        if pop {
            self.guard.state.lock().pop_front();
        }
        if let Some(exec) = &target {
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
                    exec.mark_checked();
                    exec.keep_fields(fields);
                }
                Err(b) => {
                    exec.poison();
                    return self.violation(&b, pop).await;
                }
            }
        }
        if hidden {
            Ok(())
        } else {
            self.write(frame.as_bytes()).await
        }
    }

    async fn no_data(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let (target, hidden) = match self.guard.state.lock().pop_front() {
            Some(Expect::Describe { target, hidden }) => (target, hidden),
            _ => return Err(anomaly(frame)),
        };
        if let Some(exec) = target {
            exec.mark_checked();
        }
        if hidden {
            Ok(())
        } else {
            self.write(frame.as_bytes()).await
        }
    }

    async fn data_row(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let Some(exec) = self.head_exec() else {
            return Err(anomaly(frame));
        };
        if !exec.rows_allowed() {
            let b = enforce::block(
                Rule::ResultUnchecked,
                "rows arrived whose description copyguard could not check",
            );
            return self.violation(&b, false).await;
        }
        if let Some(b) = self.count(&exec, frame.as_bytes().len()) {
            return self.violation(&b, false).await;
        }
        if !exec.allowance.pseudonymizes() {
            return self.write(frame.as_bytes()).await;
        }
        let (plan, p) = match (exec.row_plan(), self.guard.shared.pseudonymizer.clone()) {
            (Ok(plan), Some(p)) => (plan, p),
            (Err(b), _) => return self.violation(&b, false).await,
            (_, None) => return self.violation(&no_key(), false).await,
        };
        let stop = self.take_buffered_data_rows(frame, &exec);
        let frames: Vec<&[u8]> = self
            .row_ends
            .iter()
            .scan(0, |start, &end| {
                let f = &self.rows[*start..end];
                *start = end;
                Some(f)
            })
            .collect();
        let mut out = std::mem::take(&mut self.rewritten);
        out.clear();
        let rewritten = self.data_rows.rewrite(&plan, &p, &frames, &mut out);
        let r = if out.is_empty() {
            Ok(())
        } else {
            self.write(&out).await
        };
        self.rewritten = out;
        r?;
        match (rewritten, stop) {
            (Err(e), _) => self.violation(&pseudonym_block(&e), false).await,
            (Ok(()), Some(b)) => self.violation(&b, false).await,
            (Ok(()), None) => Ok(()),
        }
    }

    /// Gathers `frame` and the DataRows of its result already read after
    /// it, up to a group of them, each counted against the limits as
    /// `handle` counted the first: nothing but the server's next message
    /// can change the checks made for it. The refusal when one passes a
    /// limit (it is not gathered).
    fn take_buffered_data_rows(&mut self, frame: &Frame, exec: &Exec) -> Option<Block> {
        self.rows.clear();
        self.row_ends.clear();
        self.rows.extend_from_slice(frame.as_bytes());
        self.row_ends.push(self.rows.len());
        let mut stop = None;
        let (rows, ends) = (&mut self.rows, &mut self.row_ends);
        self.server
            .take_buffered(BackendKind::DataRow.tag(), |frame| {
                stop = count(self.guard, &mut self.role_reserve, exec, frame.len());
                if stop.is_some() {
                    return false;
                }
                rows.extend_from_slice(frame);
                ends.push(rows.len());
                ends.len() < enforce::GROUP_ROWS
            });
        stop
    }

    async fn copy_data(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let exec = self.head_exec();
        if let Some(exec) = &exec {
            if let Some(b) = self.count(exec, frame.as_bytes().len()) {
                return self.copy_stop(&b).await;
            }
        }
        let Some(pipe) = self.copy_out.as_mut() else {
            return self.write(frame.as_bytes()).await;
        };
        pipe.push(frame.body());
        if let Some(b) = exec.and_then(|exec| self.take_buffered_copy_data(&exec)) {
            return self.copy_stop(&b).await;
        }
        while let Some(pipe) = self.copy_out.as_mut().filter(|p| p.is_full()) {
            let Some(out) = pipe.next().await else { break };
            self.copy_written(out).await?;
        }
        Ok(())
    }

    /// Takes the CopyData messages of a pseudonymized COPY that are already
    /// read, one after the other, into the pipe: the checks `handle` made
    /// for the first hold for all of them, as nothing but the server's
    /// next message can change them. Stops when the pipe is full; the
    /// refusal when a message passes a limit.
    fn take_buffered_copy_data(&mut self, exec: &Exec) -> Option<Block> {
        let pipe = self.copy_out.as_mut().filter(|p| !p.is_full())?;
        let mut stop = None;
        self.server
            .take_buffered(BackendKind::CopyData.tag(), |frame| {
                stop = count(self.guard, &mut self.role_reserve, exec, frame.len());
                if stop.is_some() {
                    return false;
                }
                pipe.push(&frame[HEADER_LEN..]);
                !pipe.is_full()
            });
        stop
    }

    /// Stops a COPY at a limit: the rows before it are written, then the
    /// refusal.
    async fn copy_stop(&mut self, b: &Block) -> Result<(), SessionError> {
        self.drain_copy().await?;
        if self.discarding {
            return Ok(());
        }
        self.violation(b, false).await
    }

    /// Writes a rewritten COPY batch, or stops the statement when it could
    /// not be rewritten.
    async fn copy_written(
        &mut self,
        out: Result<Vec<u8>, RewriteError>,
    ) -> Result<(), SessionError> {
        match out {
            Ok(out) => self.write(&out).await,
            Err(e) => {
                self.copy_out = None;
                self.violation(&pseudonym_block(&e), false).await
            }
        }
    }

    /// Writes everything of the COPY stream gathered or in flight.
    async fn drain_copy(&mut self) -> Result<(), SessionError> {
        while let Some(pipe) = self.copy_out.as_mut().filter(|p| p.is_busy()) {
            pipe.send();
            let Some(out) = pipe.next().await else { break };
            self.copy_written(out).await?;
        }
        Ok(())
    }

    /// CopyOutResponse: a COPY TO whose columns are pseudonymized gets its
    /// rewriter, shaped by the statement's format and options.
    async fn copy_out_response(&mut self, frame: &Frame) -> Result<(), SessionError> {
        self.copy_out = None;
        if let Some(exec) = self.head_exec().filter(|e| e.allowance.pseudonymizes()) {
            let binary = frame.body().first() == Some(&1);
            let rewriter = match self.guard.shared.pseudonymizer.clone() {
                Some(p) => copy_rewriter(&exec, binary, p),
                None => Err(no_key()),
            };
            match rewriter {
                Ok(r) => self.copy_out = Some(CopyPipe::new(r)),
                Err(b) => return self.violation(&b, false).await,
            }
        }
        self.write(frame.as_bytes()).await
    }

    /// CopyDone: the rewriter must have ended on a row boundary.
    async fn copy_done(&mut self, frame: &Frame) -> Result<(), SessionError> {
        if let Some(pipe) = self.copy_out.take() {
            if let Err(e) = pipe.finish() {
                return self.violation(&pseudonym_block(&e), false).await;
            }
        }
        self.write(frame.as_bytes()).await
    }

    /// Counts a row of classified data; the refusal when a limit is passed.
    fn count(&mut self, exec: &Exec, bytes: usize) -> Option<Block> {
        count(self.guard, &mut self.role_reserve, exec, bytes)
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
        match self.guard.state.lock().pop_front() {
            Some(Expect::Statement(e)) | Some(Expect::Execute(e)) => {
                if e.allowance.limits.is_some() {
                    self.guard.state.release(false);
                }
            }
            _ => return Err(anomaly(frame)),
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
            .map(|e| (&*e.facts, &*e.catalog, &*e.policy));
        let err = self
            .guard
            .refusal(
                b,
                "result stopped",
                sql.as_deref().unwrap_or(""),
                facts,
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
                    .set_pending_cancel(tokio::spawn(async move {
                        if let Err(e) = upstream::send_cancel(&shared, &key).await {
                            warn!(error = %e, "cancel after a limit was not delivered");
                        }
                        state.release(true);
                    }));
            }
            None => self.guard.state.release(true),
        }
        Ok(())
    }
}

/// Counts a row of classified data; the refusal when a limit is passed.
fn count(guard: &Guard, role_reserve: &mut u64, exec: &Exec, bytes: usize) -> Option<Block> {
    let limits = exec.allowance.limits.as_ref()?;
    let class = &exec.class.limits;
    let (rows, total) = exec.count_row(bytes);
    guard
        .state
        .session_bytes
        .fetch_add(bytes as u64, Ordering::Relaxed);
    if rows > limits.max_rows {
        return Some(enforce::block(
            Rule::LimitRows,
            format!(
                "the result holds more than {} rows of classified data",
                limits.max_rows
            ),
        ));
    }
    if total > limits.max_bytes {
        return Some(enforce::block(
            Rule::LimitBytes,
            format!(
                "the result holds more than {} bytes of classified data",
                limits.max_bytes
            ),
        ));
    }
    let session = guard.state.session_rows.fetch_add(1, Ordering::Relaxed) + 1;
    if session > class.max_rows_per_session {
        return Some(enforce::block(
            Rule::BudgetSession,
            format!(
                "this session already received {} rows of classified data",
                class.max_rows_per_session
            ),
        ));
    }
    if *role_reserve == 0 {
        let budgets = &guard.shared.budgets;
        let user = &guard.info.user;
        let (limit, window) = (class.max_rows_per_window, class.window);
        if budgets.try_take(user, ROLE_CHUNK, limit, window) {
            *role_reserve = ROLE_CHUNK;
        } else if budgets.try_take(user, 1, limit, window) {
            *role_reserve = 1;
        }
    }
    if let Some(left) = role_reserve.checked_sub(1) {
        *role_reserve = left;
    } else {
        return Some(enforce::block(
            Rule::BudgetRole,
            format!(
                "role {} already received {} rows of classified data in the last {}",
                guard.info.user,
                class.max_rows_per_window,
                humantime::format_duration(class.window)
            ),
        ));
    }
    None
}

/// The rewriter for a COPY TO of `exec`: its planned columns by position,
/// typed from the catalog (COPY sends no description), in the statement's
/// format. COPY options copyguard cannot follow refuse the statement.
fn copy_rewriter(exec: &Exec, binary: bool, p: Arc<Pseudonymizer>) -> Result<CopyRewriter, Block> {
    let StatementKind::CopyTo {
        format, options, ..
    } = &exec.facts.kind
    else {
        return Err(enforce::block(
            Rule::PseudonymCopy,
            "only COPY ... TO STDOUT can be pseudonymized",
        ));
    };
    if options.encoding.is_some() {
        return Err(enforce::block(
            Rule::PseudonymCopy,
            "COPY with ENCODING cannot be pseudonymized; leave the option out",
        ));
    }
    let byte = |c: Option<char>, default: u8| match c {
        None => Ok(default),
        Some(c) if c.is_ascii() => Ok(c as u8),
        Some(_) => Err(enforce::block(
            Rule::PseudonymCopy,
            "COPY delimiters, quotes and escapes must be ASCII to be pseudonymized",
        )),
    };
    let shape = match (format, binary) {
        (_, true) | (CopyFormat::Binary, _) => copy::CopyFormat::Binary,
        (CopyFormat::Text, false) => copy::CopyFormat::Text {
            delimiter: byte(options.delimiter, b'\t')?,
            null: options
                .null
                .clone()
                .unwrap_or_else(|| "\\N".into())
                .into_bytes(),
            header: options.header,
        },
        (CopyFormat::Csv, false) => {
            let quote = byte(options.quote, b'"')?;
            copy::CopyFormat::Csv {
                delimiter: byte(options.delimiter, b',')?,
                quote,
                escape: byte(options.escape, quote)?,
                null: options.null.clone().unwrap_or_default().into_bytes(),
                header: options.header,
                force_quote: force_quote(exec, options.force_quote.as_ref())?,
            }
        }
    };
    let format = if binary { Format::Binary } else { Format::Text };
    let mut columns = Vec::with_capacity(exec.facts.outputs.len());
    for i in 0..exec.facts.outputs.len() {
        let Some(planned) = exec.allowance.pseudonymize.get(i).cloned().flatten() else {
            columns.push(None);
            continue;
        };
        let column = planned
            .column
            .and_then(|c| exec.catalog.relation(c.rel)?.column_by_num(c.attnum))
            .ok_or_else(|| {
                enforce::block(
                    Rule::PseudonymCopy,
                    "COPY can only pseudonymize columns copied as they are",
                )
            })?;
        columns.push(Some(PlannedColumn {
            transform: planned.transform,
            ty: ColumnType {
                oid: column.type_oid,
                typmod: column.typmod,
            },
            format,
        }));
    }
    Ok(CopyRewriter::new(ColumnPlan::new(columns), shape, p))
}

/// CSV `FORCE_QUOTE` of a COPY TO: the named columns by their position in
/// the statement's outputs. A name copyguard cannot place refuses the
/// statement (the server would refuse it too).
fn force_quote(exec: &Exec, option: Option<&CopyForceQuote>) -> Result<copy::ForceQuote, Block> {
    let names = match option {
        None => return Ok(copy::ForceQuote::Off),
        Some(CopyForceQuote::All) => return Ok(copy::ForceQuote::All),
        Some(CopyForceQuote::Columns(names)) => names,
    };
    names
        .iter()
        .map(|name| {
            exec.facts
                .outputs
                .iter()
                .position(|o| o.name == *name)
                .ok_or_else(|| {
                    enforce::block(
                        Rule::PseudonymCopy,
                        format!("FORCE_QUOTE names {name:?}, which is not a column of the COPY"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(copy::ForceQuote::Columns)
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
