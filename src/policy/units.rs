//! Sizes (`"64KiB"`, or a number of bytes) and durations (`"1h"`, or a
//! number of seconds) in policy files.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A setting written as a TOML integer or a string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IntOrStr {
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
}

impl<'de> Deserialize<'de> for IntOrStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IntOrStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string such as \"64KiB\" or \"1h\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrStr, E> {
                Ok(IntOrStr::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrStr, E> {
                i64::try_from(v)
                    .map(IntOrStr::Int)
                    .map_err(|_| E::custom("number too large"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrStr, E> {
                Ok(IntOrStr::Str(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes: an integer, or a number with a unit (`B`, `KiB`,
/// `MiB`, `GiB`, `TiB`; `kB`, `MB`, `GB`, `TB` mean the same, as in
/// `postgresql.conf`).
pub(crate) fn parse_size(value: &IntOrStr) -> Result<u64, String> {
    let text = match value {
        IntOrStr::Int(n) => {
            return u64::try_from(*n).map_err(|_| format!("{n} is negative: sizes are >= 0"))
        }
        IntOrStr::Str(s) => s.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size like \"64KiB\" or a number of bytes"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" | "kB" => 10,
        "MiB" | "MB" => 20,
        "GiB" | "GB" => 30,
        "TiB" | "TB" => 40,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?}: use B, KiB, MiB, GiB or TiB"
            ))
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A duration: an integer number of seconds, or text like `"1h"`,
/// `"30m"`, `"1h 30m"`, `"90s"`.
pub(crate) fn parse_duration(value: &IntOrStr) -> Result<Duration, String> {
    match value {
        IntOrStr::Int(n) => u64::try_from(*n)
            .map(Duration::from_secs)
            .map_err(|_| format!("{n} is negative: durations are >= 0")),
        IntOrStr::Str(s) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("{s:?} is not a duration like \"1h\" or \"30m\": {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> IntOrStr {
        IntOrStr::Str(text.to_owned())
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&s("64KiB")), Ok(65536));
        assert_eq!(parse_size(&s("1 MiB")), Ok(1 << 20));
        assert_eq!(parse_size(&s("2GB")), Ok(2 << 30));
        assert_eq!(parse_size(&s("100")), Ok(100));
        assert_eq!(parse_size(&IntOrStr::Int(4096)), Ok(4096));
        for bad in ["", "KiB", "12 parsecs", "-1", "1.5MiB", "99999999999999TiB"] {
            assert!(parse_size(&s(bad)).is_err(), "{bad:?}");
        }
        assert!(parse_size(&IntOrStr::Int(-1)).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration(&s("1h")), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(&s("1h 30m")), Ok(Duration::from_secs(5400)));
        assert_eq!(
            parse_duration(&IntOrStr::Int(90)),
            Ok(Duration::from_secs(90))
        );
        assert!(parse_duration(&s("soon")).is_err());
        assert!(parse_duration(&IntOrStr::Int(-5)).is_err());
    }
}
