//! DataRow (server to client).

use crate::wire::messages::read::{malformed, read_i16, read_i32};
use crate::wire::{Frame, WireError};

/// Reads a DataRow ('D') as text values (NULL is `None`).
pub fn parse_data_row(frame: &Frame) -> Result<Vec<Option<String>>, WireError> {
    let body = frame.body();
    let count = read_i16(body, 0, "DataRow")?;
    let mut at = 2;
    let mut values = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        let len = read_i32(body, at, "DataRow")?;
        at += 4;
        if len < 0 {
            values.push(None);
            continue;
        }
        let end = at + len as usize;
        let value = body
            .get(at..end)
            .ok_or_else(|| malformed("DataRow", "truncated value"))?;
        values.push(Some(String::from_utf8_lossy(value).into_owned()));
        at = end;
    }
    Ok(values)
}
