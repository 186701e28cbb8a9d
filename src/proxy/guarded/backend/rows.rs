//! DataRows: counted against the limits and budgets, grouped and
//! pseudonymized.

use std::sync::atomic::Ordering;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{anomaly, no_key, pseudonym_block, Backend};
use crate::enforce;
use crate::policy::{Block, Rule};
use crate::proxy::guarded::exec::Exec;
use crate::proxy::guarded::Guard;
use crate::proxy::SessionError;
use crate::wire::{BackendKind, Frame};

/// Rows a stream takes from its role's budget at a time.
const ROLE_CHUNK: u64 = 256;

impl<R, W> Backend<'_, R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    pub(super) async fn data_row(&mut self, frame: &Frame) -> Result<(), SessionError> {
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

    /// Counts a row of classified data; the refusal when a limit is passed.
    pub(super) fn count(&mut self, exec: &Exec, bytes: usize) -> Option<Block> {
        count(self.guard, &mut self.role_reserve, exec, bytes)
    }
}

/// What a refusal adds when each row returned counts as `weight` rows.
fn weighed(weight: u64) -> String {
    match weight {
        1 => String::new(),
        _ => format!(
            " (each row returned counts as {weight}: it holds values of {weight} rows of one table, read by a self-join or by subqueries in the select list)"
        ),
    }
}

/// Counts a row of classified data; the refusal when a limit is passed.
pub(super) fn count(
    guard: &Guard,
    role_reserve: &mut u64,
    exec: &Exec,
    bytes: usize,
) -> Option<Block> {
    if exec.class.dump.is_some() {
        exec.count_row(bytes);
        return None;
    }
    let limits = exec.allowance.limits.as_ref()?;
    let class = &exec.class.limits;
    let weight = limits.row_weight.max(1);
    let (rows, total) = exec.count_rows(weight, bytes);
    if rows > limits.max_rows {
        return Some(enforce::block(
            Rule::LimitRows,
            format!(
                "the result holds more than {} rows of classified data{}",
                limits.max_rows,
                weighed(weight)
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
    let session = guard
        .state
        .session_rows
        .fetch_add(weight, Ordering::Relaxed)
        + weight;
    if session > class.max_rows_per_session {
        return Some(enforce::block(
            Rule::BudgetSession,
            format!(
                "this session already received {} rows of classified data",
                class.max_rows_per_session
            ),
        ));
    }
    if *role_reserve < weight {
        let budgets = &guard.shared.budgets;
        let user = &guard.info.user;
        let (limit, window) = (class.max_rows_per_window, class.window);
        let short = weight - *role_reserve;
        let chunk = ROLE_CHUNK.max(short);
        if budgets.try_take(user, chunk, limit, window) {
            *role_reserve += chunk;
        } else if budgets.try_take(user, short, limit, window) {
            *role_reserve += short;
        }
    }
    if let Some(left) = role_reserve.checked_sub(weight) {
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
