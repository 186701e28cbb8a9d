//! ReadyForQuery (server to client): the end of a request cycle and the
//! transaction status.

use crate::wire::messages::{encode, frame};
use crate::wire::Frame;
use bytes::Bytes;
use pgwire::messages::response::{ReadyForQuery, TransactionStatus};

/// ReadyForQuery with an idle transaction status.
pub fn ready_for_query_idle() -> Bytes {
    encode(&ReadyForQuery::new(TransactionStatus::Idle))
}

/// ReadyForQuery with transaction status `status` (`I`, `T` or `E`).
pub fn ready_for_query(status: u8) -> Bytes {
    frame(b'Z', &[status])
}

/// Reads the transaction status byte of a ReadyForQuery ('Z').
pub fn parse_ready_status(frame: &Frame) -> u8 {
    frame.body().first().copied().unwrap_or(b'I')
}
