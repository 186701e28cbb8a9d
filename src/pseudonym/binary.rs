//! Binary-format codecs of the fixed-size types (big-endian, as the
//! `*_send` functions write them). `numeric` has its own file; character
//! types, `bytea` and `json` are their bytes, `jsonb` is a version byte
//! then its text.

use super::types::IntWidth;

/// The `jsonb` binary format version.
pub(crate) const JSONB_VERSION: u8 = 1;

/// Reads an `int2`/`int4`/`int8` of exactly its width.
pub(crate) fn read_int(w: IntWidth, b: &[u8]) -> Option<i64> {
    Some(match w {
        IntWidth::I2 => i64::from(i16::from_be_bytes(b.try_into().ok()?)),
        IntWidth::I4 => i64::from(i32::from_be_bytes(b.try_into().ok()?)),
        IntWidth::I8 => i64::from_be_bytes(b.try_into().ok()?),
    })
}

/// Writes an integer at the width; `None` if it does not fit.
pub(crate) fn write_int(w: IntWidth, v: i64, out: &mut Vec<u8>) -> Option<()> {
    match w {
        IntWidth::I2 => out.extend_from_slice(&i16::try_from(v).ok()?.to_be_bytes()),
        IntWidth::I4 => out.extend_from_slice(&i32::try_from(v).ok()?.to_be_bytes()),
        IntWidth::I8 => out.extend_from_slice(&v.to_be_bytes()),
    }
    Some(())
}

/// Reads a `date` (days since 2000-01-01; `i32::MIN`/`MAX` are
/// `-infinity`/`infinity`).
pub(crate) fn read_date(b: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(b.try_into().ok()?))
}

/// Reads a `timestamp`/`timestamptz` (microseconds since 2000-01-01
/// 00:00, UTC for `timestamptz`; `i64::MIN`/`MAX` are the infinities).
pub(crate) fn read_timestamp(b: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(b.try_into().ok()?))
}

/// Reads a `uuid`.
pub(crate) fn read_uuid(b: &[u8]) -> Option<[u8; 16]> {
    b.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths() {
        assert_eq!(read_int(IntWidth::I2, &[0xff, 0xfe]), Some(-2));
        assert_eq!(read_int(IntWidth::I4, &[0, 0, 1]), None);
        let mut out = Vec::new();
        assert_eq!(write_int(IntWidth::I2, 70_000, &mut out), None);
        write_int(IntWidth::I4, -1, &mut out).unwrap();
        assert_eq!(out, [0xff; 4]);
        assert_eq!(read_date(&[0, 0, 0, 1]), Some(1));
    }
}
