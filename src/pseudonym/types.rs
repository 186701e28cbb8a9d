//! Column types as RowDescription reports them (type OID and typmod), the
//! wire formats, and what a typmod allows.

/// A result column's type: the OID and typmod from RowDescription (for a
/// domain, PostgreSQL reports its base type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ColumnType {
    /// Type OID.
    pub oid: u32,
    /// Type modifier, -1 when there is none.
    pub typmod: i32,
}

impl ColumnType {
    /// A type without a modifier.
    pub const fn plain(oid: u32) -> ColumnType {
        ColumnType { oid, typmod: -1 }
    }

    /// `varchar(n)`.
    pub const fn varchar(n: i32) -> ColumnType {
        ColumnType {
            oid: oid::VARCHAR,
            typmod: n + 4,
        }
    }

    /// `char(n)` (bpchar).
    pub const fn bpchar(n: i32) -> ColumnType {
        ColumnType {
            oid: oid::BPCHAR,
            typmod: n + 4,
        }
    }

    /// `numeric(precision, scale)`.
    pub const fn numeric(precision: i32, scale: i32) -> ColumnType {
        ColumnType {
            oid: oid::NUMERIC,
            typmod: ((precision << 16) | (scale & 0x7ff)) + 4,
        }
    }

    /// Whether copyguard can read and write values of this type.
    pub fn is_supported(&self) -> bool {
        self.kind() != Kind::Other
    }

    pub(crate) fn kind(&self) -> Kind {
        match self.oid {
            oid::INT2 => Kind::Int(IntWidth::I2),
            oid::INT4 => Kind::Int(IntWidth::I4),
            oid::INT8 => Kind::Int(IntWidth::I8),
            oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME => Kind::Text,
            oid::UUID => Kind::Uuid,
            oid::DATE => Kind::Date,
            oid::TIMESTAMP | oid::TIMESTAMPTZ => Kind::Timestamp,
            oid::NUMERIC => Kind::Numeric,
            oid::BOOL => Kind::Bool,
            oid::BYTEA => Kind::Bytea,
            oid::JSON => Kind::Json,
            oid::JSONB => Kind::Jsonb,
            _ => Kind::Other,
        }
    }

    /// The length rules of a character type: at most `max_chars`
    /// characters (`varchar(n)`, `char(n)`), at most `max_bytes` bytes
    /// (`name`), padded with spaces to `max_chars` (`char(n)`).
    pub(crate) fn text_limit(&self) -> TextLimit {
        let n = usize::try_from(self.typmod - 4).ok();
        match self.oid {
            oid::VARCHAR => TextLimit {
                max_chars: n,
                max_bytes: None,
                pad: false,
            },
            oid::BPCHAR => TextLimit {
                max_chars: n,
                max_bytes: None,
                pad: n.is_some(),
            },
            oid::NAME => TextLimit {
                max_chars: None,
                max_bytes: Some(63),
                pad: false,
            },
            _ => TextLimit::default(),
        }
    }

    /// `numeric(p, s)`: the number of digits allowed before the decimal
    /// point and the scale, when the typmod sets them.
    pub(crate) fn numeric_limits(&self) -> Option<(i32, i32)> {
        if self.oid != oid::NUMERIC || self.typmod < 4 {
            return None;
        }
        let t = self.typmod - 4;
        let precision = (t >> 16) & 0xffff;
        let scale = ((t & 0x7ff) ^ 1024) - 1024;
        Some((precision - scale, scale))
    }
}

/// A wire format code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Format code 0.
    Text,
    /// Format code 1.
    Binary,
}

impl Format {
    /// The format of a RowDescription or Bind format code.
    pub fn from_code(code: i16) -> Option<Format> {
        match code {
            0 => Some(Format::Text),
            1 => Some(Format::Binary),
            _ => None,
        }
    }
}

/// The type OIDs copyguard reads and writes.
pub mod oid {
    /// `bool`.
    pub const BOOL: u32 = 16;
    /// `bytea`.
    pub const BYTEA: u32 = 17;
    /// `name`.
    pub const NAME: u32 = 19;
    /// `int8`.
    pub const INT8: u32 = 20;
    /// `int2`.
    pub const INT2: u32 = 21;
    /// `int4`.
    pub const INT4: u32 = 23;
    /// `text`.
    pub const TEXT: u32 = 25;
    /// `json`.
    pub const JSON: u32 = 114;
    /// `bpchar` (`char(n)`).
    pub const BPCHAR: u32 = 1042;
    /// `varchar`.
    pub const VARCHAR: u32 = 1043;
    /// `date`.
    pub const DATE: u32 = 1082;
    /// `timestamp`.
    pub const TIMESTAMP: u32 = 1114;
    /// `timestamptz`.
    pub const TIMESTAMPTZ: u32 = 1184;
    /// `numeric`.
    pub const NUMERIC: u32 = 1700;
    /// `uuid`.
    pub const UUID: u32 = 2950;
    /// `jsonb`.
    pub const JSONB: u32 = 3802;
}

/// The families of types the transforms know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Int(IntWidth),
    Text,
    Uuid,
    Date,
    Timestamp,
    Numeric,
    Bool,
    Bytea,
    Json,
    Jsonb,
    Other,
}

/// The width of an integer type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntWidth {
    I2,
    I4,
    I8,
}

impl IntWidth {
    pub(crate) fn contains(self, v: i64) -> bool {
        match self {
            IntWidth::I2 => i16::try_from(v).is_ok(),
            IntWidth::I4 => i32::try_from(v).is_ok(),
            IntWidth::I8 => true,
        }
    }
}

/// What a character type's typmod allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TextLimit {
    pub(crate) max_chars: Option<usize>,
    pub(crate) max_bytes: Option<usize>,
    pub(crate) pad: bool,
}

impl TextLimit {
    /// Whether `len` more ASCII characters fit.
    pub(crate) fn fits_ascii(&self, len: usize) -> bool {
        self.max_chars.is_none_or(|n| len <= n) && self.max_bytes.is_none_or(|n| len <= n)
    }

    /// Cuts what was appended to `out` since `start` to the limit (at a
    /// character boundary) and pads it when the type pads. `false` when
    /// that tail is not UTF-8.
    #[inline]
    pub(crate) fn fit_tail(&self, out: &mut Vec<u8>, start: usize) -> bool {
        let tail = &out[start..];
        if *self == TextLimit::default() {
            return tail.is_ascii() || std::str::from_utf8(tail).is_ok();
        }
        if tail.is_ascii() {
            let len = tail.len();
            let keep = self
                .max_chars
                .into_iter()
                .chain(self.max_bytes)
                .fold(len, usize::min);
            out.truncate(start + keep);
            if let (true, Some(n)) = (self.pad, self.max_chars) {
                out.resize(start + n, b' ');
            }
            return true;
        }
        let Ok(s) = std::str::from_utf8(tail) else {
            return false;
        };
        let mut end = s.len();
        let mut chars = None;
        if let Some(n) = self.max_chars {
            let mut count = 0;
            for (i, _) in s.char_indices() {
                if count == n {
                    end = i;
                    break;
                }
                count += 1;
            }
            chars = Some(count);
        }
        if let Some(n) = self.max_bytes {
            while end > n || !s.is_char_boundary(end) {
                end -= 1;
            }
        }
        out.truncate(start + end);
        if let (true, Some(n), Some(have)) = (self.pad, self.max_chars, chars) {
            out.resize(out.len() + n.saturating_sub(have), b' ');
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typmods() {
        assert_eq!(
            ColumnType::varchar(5).text_limit(),
            TextLimit {
                max_chars: Some(5),
                max_bytes: None,
                pad: false
            }
        );
        assert!(ColumnType::bpchar(3).text_limit().pad);
        assert!(!ColumnType::plain(oid::BPCHAR).text_limit().pad);
        assert_eq!(ColumnType::numeric(10, 2).numeric_limits(), Some((8, 2)));
        assert_eq!(ColumnType::numeric(3, -2).numeric_limits(), Some((5, -2)));
        assert_eq!(ColumnType::plain(oid::NUMERIC).numeric_limits(), None);
    }

    #[test]
    fn writes_within_limits() {
        let fit = |ty: ColumnType, s: &str| {
            let mut out = b"x".to_vec();
            out.extend_from_slice(s.as_bytes());
            assert!(ty.text_limit().fit_tail(&mut out, 1));
            String::from_utf8(out[1..].to_vec()).unwrap()
        };
        assert_eq!(fit(ColumnType::varchar(3), "héllo"), "hél");
        assert_eq!(fit(ColumnType::varchar(3), "hé"), "hé");
        assert_eq!(fit(ColumnType::bpchar(4), "ab"), "ab  ");
        assert_eq!(fit(ColumnType::bpchar(2), "abc"), "ab");
        assert_eq!(fit(ColumnType::plain(oid::NAME), &"é".repeat(40)).len(), 62);
        let mut bad = vec![0xff];
        assert!(!ColumnType::varchar(3).text_limit().fit_tail(&mut bad, 0));
    }
}
