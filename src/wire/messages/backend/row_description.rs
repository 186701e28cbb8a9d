//! RowDescription (server to client): the result's fields.

use crate::wire::messages::read::{malformed, read_i16, read_i32};
use crate::wire::{Frame, WireError};

/// One field of a RowDescription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDescription {
    /// Column name.
    pub name: String,
    /// OID of the table the column comes from, 0 if it is computed.
    pub table_oid: u32,
    /// Column number in that table, 0 if computed.
    pub attnum: i16,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier.
    pub typmod: i32,
    /// Format code (0 text, 1 binary).
    pub format: i16,
}

/// Reads a RowDescription ('T').
pub fn parse_row_description(frame: &Frame) -> Result<Vec<FieldDescription>, WireError> {
    let body = frame.body();
    let count = read_i16(body, 0, "RowDescription")?;
    let mut at = 2;
    let mut fields = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        let rest = body
            .get(at..)
            .ok_or_else(|| malformed("RowDescription", "truncated"))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed("RowDescription", "unterminated name"))?;
        let name = String::from_utf8_lossy(&rest[..end]).into_owned();
        at += end + 1;
        fields.push(FieldDescription {
            name,
            table_oid: read_i32(body, at, "RowDescription")? as u32,
            attnum: read_i16(body, at + 4, "RowDescription")?,
            type_oid: read_i32(body, at + 6, "RowDescription")? as u32,
            typmod: read_i32(body, at + 12, "RowDescription")?,
            format: read_i16(body, at + 16, "RowDescription")?,
        });
        at += 18;
    }
    Ok(fields)
}
