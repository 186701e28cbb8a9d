//! COPY TO: relayed, or rewritten through the [`CopyPipe`] when its
//! columns are pseudonymized; counted against the limits and budgets.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::rows::count;
use super::{no_key, pseudonym_block, Backend};
use crate::analysis::{CopyForceQuote, CopyFormat, StatementKind};
use crate::enforce::copy::{self, CopyRewriter};
use crate::enforce::{self, ColumnPlan, PlannedColumn, RewriteError};
use crate::policy::{Block, Rule};
use crate::proxy::guarded::copy_pipe::CopyPipe;
use crate::proxy::guarded::exec::Exec;
use crate::proxy::SessionError;
use crate::pseudonym::{ColumnType, Format, Pseudonymizer};
use crate::wire::{BackendKind, Frame, HEADER_LEN};

impl<R, W> Backend<'_, R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    pub(super) async fn copy_data(&mut self, frame: &Frame) -> Result<(), SessionError> {
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
    pub(super) async fn copy_written(
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
    pub(super) async fn drain_copy(&mut self) -> Result<(), SessionError> {
        while let Some(pipe) = self.copy_out.as_mut().filter(|p| p.is_busy()) {
            pipe.send();
            let Some(out) = pipe.next().await else { break };
            self.copy_written(out).await?;
        }
        Ok(())
    }

    /// CopyOutResponse: a COPY TO whose columns are pseudonymized gets its
    /// rewriter, shaped by the statement's format and options.
    pub(super) async fn copy_out_response(&mut self, frame: &Frame) -> Result<(), SessionError> {
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
    pub(super) async fn copy_done(&mut self, frame: &Frame) -> Result<(), SessionError> {
        if let Some(pipe) = self.copy_out.take() {
            if let Err(e) = pipe.finish() {
                return self.violation(&pseudonym_block(&e), false).await;
            }
        }
        self.write(frame.as_bytes()).await
    }
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
