//! A pseudonymized `COPY ... TO STDOUT` spread over threads. The stream's
//! CopyData payloads are gathered into batches (up to 256 KiB, or what the
//! server sent before its stream paused); every batch is rewritten on the
//! blocking pool, as one stretch of the stream so that its rows are
//! rewritten in groups, and the outputs go to the client in stream order,
//! one CopyData message per row as PostgreSQL sends them, so one large
//! COPY uses the cores copyguard has instead of one.
//!
//! The first batch in flight takes the stream's own [`CopyRewriter`]. A
//! batch sent while others are still in flight starts from a
//! [`CopyRewriter::fork`], on the guess that the stream stands at a row
//! boundary where the batch begins (PostgreSQL sends one row per
//! CopyData). The guess is checked when the batch's turn comes: if the
//! rewriter of everything before it does not stand at a boundary, the
//! batch is rewritten again from that state. Whatever the message
//! boundaries, the client gets what one sequential rewriter would give.

use std::collections::VecDeque;
use std::sync::OnceLock;

use tokio::task::JoinHandle;

use crate::enforce::copy::CopyRewriter;
use crate::enforce::RewriteError;

/// Gathered payload bytes at which a batch is sent off without waiting for
/// the server's buffer to run dry. Larger batches mean fewer thread hops
/// and fewer, larger writes to the client: on two cores shared with the
/// server and the client, 256 KiB relayed about 10% more than 64 KiB.
const BATCH_BYTES: usize = 256 * 1024;
/// Room past [`BATCH_BYTES`] in a batch's buffer: the payload that
/// crosses the mark still fits without growing it.
const SPARE_SLACK: usize = 64 * 1024;
/// A batch this small, with nothing else in flight, is rewritten on the
/// session's own task: a thread hop costs more than it saves.
const INLINE_BYTES: usize = 4 * 1024;
/// Batches in flight per core: with some waiting, every core stays busy
/// while the server and the client take their turns on them.
const IN_FLIGHT_PER_CORE: usize = 4;
/// Batches in flight at most, whatever the cores (bounds a stream's memory).
const MAX_IN_FLIGHT: usize = 16;

/// CopyData payloads, concatenated.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    payloads: usize,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.payloads == 0
    }

    /// Rewrites the batch's payloads with `rw` (a framed rewriter: one
    /// CopyData message per row), fed as one stretch of the stream so that
    /// rows of many payloads are rewritten together.
    fn rewrite(&self, rw: &mut CopyRewriter) -> Result<Vec<u8>, RewriteError> {
        let mut out = Vec::with_capacity(self.bytes.len() + self.bytes.len() / 2 + 64);
        rw.feed(&self.bytes, &mut out)?;
        Ok(out)
    }
}

/// A rewritten batch, with the rewriter as the batch left it.
struct Done {
    rewriter: CopyRewriter,
    out: Result<Vec<u8>, RewriteError>,
    batch: Batch,
}

fn run(mut rewriter: CopyRewriter, batch: Batch) -> Done {
    let out = batch.rewrite(&mut rewriter);
    Done {
        rewriter,
        out,
        batch,
    }
}

enum Task {
    Ready(Box<Done>),
    Running(JoinHandle<Done>),
}

struct InFlight {
    /// Started from a fork: valid only if the stream stands at a row
    /// boundary when its turn comes.
    forked: bool,
    task: Task,
}

/// One COPY TO stream being rewritten: its state, the batch being
/// gathered, and the batches in flight, oldest first.
pub(super) struct CopyPipe {
    /// The rewriter after every batch taken out so far; `None` while it is
    /// out with the oldest batch in flight.
    state: Option<CopyRewriter>,
    /// What forks are made from.
    template: CopyRewriter,
    gathering: Batch,
    in_flight: VecDeque<InFlight>,
    /// Buffers of batches taken out, emptied, for the next batches: a
    /// batch gathers into memory already allocated and touched.
    spare: Vec<Vec<u8>>,
}

impl CopyPipe {
    pub(super) fn new(rewriter: CopyRewriter) -> CopyPipe {
        let rewriter = rewriter.framed();
        CopyPipe {
            template: rewriter.fork(),
            state: Some(rewriter),
            gathering: Batch::default(),
            in_flight: VecDeque::new(),
            spare: Vec::new(),
        }
    }

    /// Adds one CopyData payload; sends the batch off when it is large.
    pub(super) fn push(&mut self, payload: &[u8]) {
        if self.gathering.bytes.capacity() == 0 {
            self.gathering.bytes = self
                .spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(BATCH_BYTES + SPARE_SLACK));
        }
        self.gathering.bytes.extend_from_slice(payload);
        self.gathering.payloads += 1;
        if self.gathering.bytes.len() >= BATCH_BYTES {
            self.send();
        }
    }

    /// Sends the gathered batch off to be rewritten.
    pub(super) fn send(&mut self) {
        if self.gathering.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.gathering);
        let (rewriter, forked) = match self.state.take() {
            Some(own) if self.in_flight.is_empty() => (own, false),
            own => {
                self.state = own;
                (self.template.fork(), true)
            }
        };
        let task = if !forked && batch.bytes.len() <= INLINE_BYTES {
            Task::Ready(Box::new(run(rewriter, batch)))
        } else {
            Task::Running(tokio::task::spawn_blocking(move || run(rewriter, batch)))
        };
        self.in_flight.push_back(InFlight { forked, task });
    }

    /// Whether as many batches are in flight as may be.
    pub(super) fn is_full(&self) -> bool {
        self.in_flight.len() >= max_in_flight()
    }

    /// Whether anything is gathered or in flight.
    pub(super) fn is_busy(&self) -> bool {
        !self.gathering.is_empty() || !self.in_flight.is_empty()
    }

    /// Whether a batch is in flight.
    pub(super) fn in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// The oldest batch's framed output, once it is rewritten; `None` when
    /// nothing is in flight. Cancel-safe: dropped before it completes, the
    /// batch stays in flight.
    pub(super) async fn next(&mut self) -> Option<Result<Vec<u8>, RewriteError>> {
        let head = self.in_flight.front_mut()?;
        let done = match &mut head.task {
            Task::Ready(_) => None,
            Task::Running(handle) => Some(handle.await),
        };
        let head = self.in_flight.pop_front()?;
        let done = match (head.task, done) {
            (Task::Ready(done), _) => *done,
            (Task::Running(_), Some(Ok(done))) => done,
            (Task::Running(_), _) => return Some(Err(RewriteError::Aborted)),
        };
        let Done {
            rewriter,
            out,
            batch,
        } = done;
        let out = if !head.forked {
            self.state = Some(rewriter);
            out
        } else {
            let Some(mut before) = self.state.take() else {
                return Some(Err(RewriteError::Aborted));
            };
            if before.at_row_boundary() {
                self.state = Some(rewriter);
                out
            } else {
                let out = batch.rewrite(&mut before);
                self.state = Some(before);
                out
            }
        };
        self.keep(batch.bytes);
        Some(out)
    }

    /// Keeps a batch's buffer for a later batch, unless enough are kept
    /// or it grew past a batch's usual size (one large row).
    fn keep(&mut self, mut bytes: Vec<u8>) {
        if self.spare.len() < max_in_flight() && bytes.capacity() <= BATCH_BYTES + SPARE_SLACK {
            bytes.clear();
            self.spare.push(bytes);
        }
    }

    /// Ends the stream once everything is taken out: an error if it stops
    /// inside a row.
    pub(super) fn finish(mut self) -> Result<(), RewriteError> {
        if self.is_busy() {
            return Err(RewriteError::Truncated);
        }
        self.state
            .as_mut()
            .map_or(Err(RewriteError::Truncated), CopyRewriter::finish)
    }
}

/// Batches one stream may have in flight: [`IN_FLIGHT_PER_CORE`] per core
/// (counting at least two), at most [`MAX_IN_FLIGHT`].
fn max_in_flight() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2);
        (IN_FLIGHT_PER_CORE * cores).min(MAX_IN_FLIGHT)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, LazyLock};

    use proptest::prelude::*;

    use super::*;
    use crate::enforce::copy::{CopyFormat, BINARY_SIGNATURE};
    use crate::enforce::{ColumnPlan, PlannedColumn};
    use crate::pseudonym::{oid, ColumnType, Format, Key, Pseudonymizer, Settings, Transform};

    static P: LazyLock<Arc<Pseudonymizer>> = LazyLock::new(|| {
        let key = Key::from_text("t", &"33".repeat(32)).unwrap();
        Arc::new(Pseudonymizer::new(&key, Settings::default()).unwrap())
    });

    fn rewriter(format: &CopyFormat) -> CopyRewriter {
        let format_of = if matches!(format, CopyFormat::Binary) {
            Format::Binary
        } else {
            Format::Text
        };
        let col = |transform, oid| {
            Some(PlannedColumn {
                transform,
                ty: ColumnType::plain(oid),
                format: format_of,
            })
        };
        let plan = ColumnPlan::new(vec![
            col(Transform::Bijection, oid::INT8),
            None,
            col(Transform::Email, oid::TEXT),
        ]);
        CopyRewriter::new(plan, format.clone(), Arc::clone(&P))
    }

    /// `rows` rows of (id, note, email) in `format`; CSV notes hold quoted
    /// newlines, so a row may span lines.
    fn stream(format: &CopyFormat, rows: usize) -> Vec<u8> {
        let mut s = Vec::new();
        match format {
            CopyFormat::Binary => {
                s.extend_from_slice(BINARY_SIGNATURE);
                s.extend_from_slice(&[0; 8]);
                for i in 0..rows {
                    s.extend_from_slice(&3i16.to_be_bytes());
                    let id = (i as i64 * 7919).to_be_bytes();
                    let note = format!("note {i}");
                    let email = format!("user{i}@mail.example.com");
                    for v in [&id[..], note.as_bytes(), email.as_bytes()] {
                        s.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        s.extend_from_slice(v);
                    }
                }
                s.extend_from_slice(&(-1i16).to_be_bytes());
            }
            CopyFormat::Csv { .. } => {
                s.extend_from_slice(b"id,note,email\n");
                for i in 0..rows {
                    s.extend_from_slice(
                        format!(
                            "{},\"line {i}\nnext, \"\"q\"\"\",user{i}@mail.example.com\n",
                            i * 13
                        )
                        .as_bytes(),
                    );
                }
            }
            CopyFormat::Text { .. } => {
                for i in 0..rows {
                    s.extend_from_slice(
                        format!("{}\tnote\\t{i}\tuser{i}@mail.example.com\n", i * 13).as_bytes(),
                    );
                }
            }
        }
        s
    }

    fn formats() -> [CopyFormat; 3] {
        let mut csv = CopyFormat::csv();
        if let CopyFormat::Csv { header, .. } = &mut csv {
            *header = true;
        }
        [CopyFormat::text(), csv, CopyFormat::Binary]
    }

    /// What one sequential rewriter (framed or not) fed payload by payload
    /// gives.
    fn sequential(rw: CopyRewriter, payloads: &[&[u8]]) -> Vec<u8> {
        let mut rw = rw;
        let mut out = Vec::new();
        for p in payloads {
            rw.feed(p, &mut out).unwrap();
        }
        rw.finish().unwrap();
        out
    }

    /// The payloads of well-framed, non-empty CopyData messages, joined.
    fn unframed(mut framed: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !framed.is_empty() {
            assert_eq!(framed[0], b'd');
            let len = u32::from_be_bytes(framed[1..5].try_into().unwrap()) as usize;
            assert!(len > 4, "an empty CopyData");
            out.extend_from_slice(&framed[5..1 + len]);
            framed = &framed[1 + len..];
        }
        out
    }

    /// Through the pipe, sending a batch after every payload `send_after`
    /// marks, taking outputs out only when the pipe is full or at the end;
    /// the messages it gives.
    async fn piped(format: &CopyFormat, payloads: &[&[u8]], send_after: &[bool]) -> Vec<u8> {
        let mut pipe = CopyPipe::new(rewriter(format));
        let mut out = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            pipe.push(p);
            if send_after.get(i).copied().unwrap_or(false) {
                pipe.send();
            }
            while pipe.is_full() {
                out.extend(pipe.next().await.unwrap().unwrap());
            }
        }
        while pipe.is_busy() {
            pipe.send();
            out.extend(pipe.next().await.unwrap().unwrap());
        }
        pipe.finish().unwrap();
        out
    }

    fn cut<'a>(input: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        at.sort_unstable();
        at.push(input.len());
        let mut prev = 0;
        at.into_iter()
            .map(|c| {
                let p = &input[prev..c];
                prev = c;
                p
            })
            .collect()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap()
    }

    #[test]
    fn one_row_per_payload_in_parallel_batches() {
        let rt = runtime();
        for format in formats() {
            let input = stream(&format, 3000);
            let payloads: Vec<&[u8]> = match format {
                CopyFormat::Binary => vec![&input[..]],
                _ => input.split_inclusive(|&b| b == b'\n').collect(),
            };
            let sends: Vec<bool> = (0..payloads.len()).map(|i| i % 50 == 49).collect();
            let want = sequential(rewriter(&format).framed(), &payloads);
            let got = rt.block_on(piped(&format, &payloads, &sends));
            assert_eq!(got, want, "one message per row, as rewritten one by one");
            if format == CopyFormat::text() {
                let mut rest = &got[..];
                while !rest.is_empty() {
                    let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
                    let lines = rest[5..1 + len].iter().filter(|&&b| b == b'\n').count();
                    assert_eq!(lines, 1, "a message holds one row");
                    rest = &rest[1 + len..];
                }
            }
        }
    }

    #[test]
    fn a_failing_batch_is_an_error_in_its_turn() {
        let rt = runtime();
        let format = CopyFormat::text();
        rt.block_on(async {
            let mut pipe = CopyPipe::new(rewriter(&format));
            pipe.push(b"1\ta\tx@y.org\n");
            pipe.send();
            pipe.push(b"2\tonly two columns\n");
            pipe.send();
            assert!(pipe.next().await.unwrap().is_ok());
            assert!(pipe.next().await.unwrap().is_err());
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Cut anywhere, rows spanning payloads and batches: the bytes of
        /// one sequential rewriter.
        #[test]
        fn any_cuts_give_the_sequential_output(
            which in 0..3usize,
            rows in 0..40usize,
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..60),
            sends in proptest::collection::vec(any::<bool>(), 0..60),
        ) {
            let format = formats()[which].clone();
            let input = stream(&format, rows);
            let payloads = cut(&input, &cuts);
            let want = sequential(rewriter(&format), &payloads);
            prop_assert_eq!(unframed(&runtime().block_on(piped(&format, &payloads, &sends))), want);
        }
    }
}
