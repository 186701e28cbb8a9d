//! A statement's text as kept with its decision ([`SqlText`]): large texts
//! share the bytes of the frame they came in, small ones are copied.

use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;

/// Shorter texts are copied rather than shared: a small frame's bytes may
/// share one allocation with the rest of a read buffer, which a kept slice
/// would pin. A large frame has a buffer of its own.
const SHARE_FROM: usize = 64 * 1024;

/// Statement text: UTF-8 checked when made, cheap to clone.
#[derive(Clone, Debug)]
pub struct SqlText(Text);

/// Small texts as `str`, read without a check; large ones as the bytes
/// they came in, checked again on each read (a pass over the text, as
/// every reader of it makes anyway).
#[derive(Clone, Debug)]
enum Text {
    Small(Arc<str>),
    Large(Bytes),
}

impl SqlText {
    /// `sql`, sharing `within`'s bytes when `sql` lies inside them and is
    /// large; a copy otherwise.
    pub fn shared(within: &Bytes, sql: &str) -> SqlText {
        let (base, at) = (within.as_ptr() as usize, sql.as_ptr() as usize);
        let inside = at >= base && at + sql.len() <= base + within.len();
        if inside && sql.len() >= SHARE_FROM {
            SqlText(Text::Large(within.slice_ref(sql.as_bytes())))
        } else {
            SqlText::from(sql)
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Text::Small(s) => s,
            // Checked UTF-8 when made: this never falls back.
            Text::Large(b) => std::str::from_utf8(b).unwrap_or_default(),
        }
    }
}

impl From<&str> for SqlText {
    fn from(sql: &str) -> SqlText {
        SqlText(Text::Small(Arc::from(sql)))
    }
}

impl From<String> for SqlText {
    /// Large texts keep the `String`'s buffer (no copy).
    fn from(sql: String) -> SqlText {
        if sql.len() >= SHARE_FROM {
            SqlText(Text::Large(Bytes::from(sql)))
        } else {
            SqlText(Text::Small(Arc::from(sql)))
        }
    }
}

impl PartialEq for SqlText {
    fn eq(&self, other: &SqlText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SqlText {}

impl Deref for SqlText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::{SqlText, SHARE_FROM};
    use bytes::Bytes;

    #[test]
    fn large_texts_share_the_frame_small_ones_are_copied() {
        let mut frame = b"Q\0\0\0\0".to_vec();
        frame.extend(std::iter::repeat_n(b'x', SHARE_FROM));
        frame.push(0);
        let frame = Bytes::from(frame);
        let sql = std::str::from_utf8(&frame[5..frame.len() - 1]).expect("utf-8");
        let text = SqlText::shared(&frame, sql);
        assert_eq!(&*text, sql);
        assert_eq!(text.as_ptr(), sql.as_ptr());
        let small = SqlText::shared(&frame, &sql[..10]);
        assert_eq!(&*small, &sql[..10]);
        assert_ne!(small.as_ptr(), sql.as_ptr());
        let elsewhere = "y".repeat(SHARE_FROM);
        let copied = SqlText::shared(&frame, &elsewhere);
        assert_eq!(&*copied, elsewhere);
        assert_ne!(copied.as_ptr(), elsewhere.as_ptr());
    }
}
