use std::future::Future;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{frame_len, WireError, HEADER_LEN};

/// One tagged protocol frame, kept exactly as it was received: type byte,
/// length and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    bytes: Bytes,
}

/// Room made in the buffer beyond the frame being read: many small frames
/// then cost one read, not one each.
const READ_CHUNK: usize = 32 * 1024;

impl Frame {
    /// Wraps complete frame bytes (header included). The caller guarantees
    /// the header is consistent with the length of `bytes`.
    pub fn from_bytes(bytes: Bytes) -> Frame {
        debug_assert!(bytes.len() >= HEADER_LEN);
        Frame { bytes }
    }

    /// The message type byte.
    pub fn tag(&self) -> u8 {
        self.bytes[0]
    }

    /// The message body, after the length field.
    pub fn body(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..]
    }

    /// The whole frame as received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The whole frame, shared (no copy).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The whole frame as a `BytesMut`, for `pgwire` decoders.
    pub fn to_bytes_mut(&self) -> BytesMut {
        BytesMut::from(&self.bytes[..])
    }
}

/// A byte stream with PostgreSQL framing on top, owning its read buffer.
///
/// Reads never consume more than they return except into the internal
/// buffer; [`Conn::into_parts`] hands back that buffer so no byte is lost
/// when the stream changes hands (TLS upgrade, relay).
#[derive(Debug)]
pub struct Conn<S> {
    stream: S,
    buf: BytesMut,
    max_message_size: usize,
}

impl<S> Conn<S> {
    /// Frames `stream`, refusing frames longer than `max_message_size`.
    pub fn new(stream: S, max_message_size: usize) -> Conn<S> {
        Conn::with_buffer(stream, BytesMut::with_capacity(8 * 1024), max_message_size)
    }

    /// Frames `stream` whose first bytes were already read into `buf`.
    pub fn with_buffer(stream: S, buf: BytesMut, max_message_size: usize) -> Conn<S> {
        Conn {
            stream,
            buf,
            max_message_size,
        }
    }

    /// Number of bytes read from the stream but not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream and the bytes read ahead of the last returned frame.
    pub fn into_parts(self) -> (S, BytesMut) {
        (self.stream, self.buf)
    }
}

impl<S: AsyncRead + Unpin> Conn<S> {
    /// Reads one untagged startup-phase packet (StartupMessage, SSLRequest,
    /// GSSENCRequest, CancelRequest): the whole packet, length included.
    /// `Ok(None)` when the peer closed before sending anything.
    pub async fn read_untagged(&mut self, max_len: usize) -> Result<Option<Bytes>, WireError> {
        if !self.fill(4).await? {
            return Ok(None);
        }
        let len = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if len < 8 {
            return Err(WireError::InvalidLength(len.into()));
        }
        let len = len as usize;
        if len > max_len {
            return Err(WireError::TooLarge { len, max: max_len });
        }
        if !self.fill(len).await? {
            return Err(WireError::UnexpectedEof);
        }
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Reads one tagged frame. `Ok(None)` on a clean close between frames.
    /// Cancel-safe: bytes read before the future is dropped stay buffered.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, WireError> {
        std::future::poll_fn(|cx| self.poll_frame(cx)).await
    }

    /// One poll of [`Conn::read_frame`]: a whole frame already buffered
    /// (several often come in one read) is split off without touching the
    /// stream; otherwise reads until one is, in one state machine.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Frame>, WireError>> {
        loop {
            let need = if self.buf.len() >= HEADER_LEN {
                let len = frame_len(&self.buf, self.max_message_size)?;
                if self.buf.len() >= len {
                    return Poll::Ready(Ok(Some(Frame::from_bytes(
                        self.buf.split_to(len).freeze(),
                    ))));
                }
                len
            } else {
                HEADER_LEN
            };
            self.make_room(need);
            let read = std::pin::pin!(self.stream.read_buf(&mut self.buf));
            if ready!(read.poll(cx))? == 0 {
                return Poll::Ready(if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(WireError::UnexpectedEof)
                });
            }
        }
    }

    /// Hands `take` each complete, well-formed frame tagged `tag` already
    /// in the buffer, in order, without reading from the stream. Stops at
    /// the first frame that is not one of them (left for
    /// [`Conn::read_frame`]) or once `take` returns `false` (that frame
    /// is consumed). A stream of small frames is then handled in one go.
    pub fn take_buffered(&mut self, tag: u8, mut take: impl FnMut(&[u8]) -> bool) {
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            if rest.len() < HEADER_LEN || rest[0] != tag {
                break;
            }
            let Ok(len) = frame_len(rest, self.max_message_size) else {
                break;
            };
            if rest.len() < len {
                break;
            }
            at += len;
            if !take(&rest[..len]) {
                break;
            }
        }
        self.buf.advance(at);
    }

    /// Like [`Conn::read_frame`], but a close is an error.
    pub async fn expect_frame(&mut self) -> Result<Frame, WireError> {
        self.read_frame().await?.ok_or(WireError::UnexpectedEof)
    }

    /// Reads exactly one byte (used for the SSL/GSS negotiation answer,
    /// which must not be read ahead of).
    pub async fn read_byte(&mut self) -> Result<u8, WireError> {
        if !self.buf.is_empty() {
            return Ok(self.buf.get_u8());
        }
        match self.stream.read_u8().await {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(WireError::UnexpectedEof)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Makes room to read up to `need` buffered bytes and a read chunk
    /// beyond them. Room for a frame is made once, when its length is
    /// read: the later reads of a large frame that arrives in pieces find
    /// it, and never grow the buffer (a growth copies every byte read so
    /// far).
    fn make_room(&mut self, need: usize) {
        self.buf.reserve(need - self.buf.len() + READ_CHUNK);
    }

    /// Ensures `n` bytes are buffered. `Ok(false)` on EOF with nothing
    /// buffered; EOF with a partial frame is an error.
    async fn fill(&mut self, n: usize) -> Result<bool, WireError> {
        while self.buf.len() < n {
            self.make_room(n);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(false)
                } else {
                    Err(WireError::UnexpectedEof)
                };
            }
        }
        Ok(true)
    }
}

/// Writes while the stream is still whole (negotiation, startup,
/// authentication). Once a guarded relay splits the stream, each side
/// writes through its own [`super::FrameWriter`].
impl<S: AsyncWrite + Unpin> Conn<S> {
    /// Writes `bytes` and flushes them.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Writes `bytes` without flushing.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Flushes buffered writes.
    pub async fn flush(&mut self) -> Result<(), WireError> {
        self.stream.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_frames_across_partial_reads() {
        let (mut a, b) = tokio::io::duplex(3);
        tokio::spawn(async move {
            a.write_all(b"Q\0\0\0\x09abcd\0X\0\0\0\x04").await.unwrap();
        });
        let mut conn = Conn::new(b, 1024);
        let f = conn.read_frame().await.unwrap().unwrap();
        assert_eq!(f.tag(), b'Q');
        assert_eq!(f.body(), b"abcd\0");
        let f = conn.read_frame().await.unwrap().unwrap();
        assert_eq!(f.tag(), b'X');
        assert!(conn.read_frame().await.unwrap().is_none());
    }

    /// A large frame whose last bytes come in a read of their own, smaller
    /// than a read chunk, is still read into the one allocation made for
    /// it when its length was read (before: the buffer was grown to twice
    /// the frame for that last read, copying every byte read so far).
    #[tokio::test]
    async fn a_large_frame_arriving_slowly_is_read_into_one_allocation() {
        const LEN: usize = 1 << 20;
        let mut frame = vec![b'Q'];
        frame.extend_from_slice(&(LEN as u32 - 1).to_be_bytes());
        frame.resize(LEN, b'x');
        let (mut a, b) = tokio::io::duplex(2 * LEN);
        let (first, last) = frame.split_at(LEN - 100);
        let (first, last) = (first.to_vec(), last.to_vec());
        let writer = tokio::spawn(async move {
            a.write_all(&first).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            a.write_all(&last).await.unwrap();
            a
        });
        let mut conn = Conn::new(b, 2 * LEN);
        let read = conn.read_frame().await.unwrap().unwrap();
        assert_eq!(read.as_bytes(), &frame[..]);
        assert!(
            conn.buf.capacity() <= READ_CHUNK,
            "{} bytes of room left behind a {LEN}-byte frame",
            conn.buf.capacity()
        );
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn refuses_oversized_and_invalid_lengths() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"Q\x10\0\0\0").await.unwrap();
        let mut conn = Conn::new(b, 1024);
        assert!(matches!(
            conn.read_frame().await,
            Err(WireError::TooLarge { .. })
        ));
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"Q\0\0\0\x02").await.unwrap();
        let mut conn = Conn::new(b, 1024);
        assert!(matches!(
            conn.read_frame().await,
            Err(WireError::InvalidLength(2))
        ));
    }

    #[tokio::test]
    async fn takes_buffered_frames_of_one_tag_only() {
        let bytes: &[u8] = b"d\0\0\0\x05ad\0\0\0\x05bd\0\0\0\x05cc\0\0\0\x04d\0\0\0\x05e";
        let conn_with = |max| Conn::with_buffer(tokio::io::empty(), BytesMut::from(bytes), max);
        let mut conn = conn_with(1024);
        let mut seen = Vec::new();
        conn.take_buffered(b'd', |f| {
            seen.push(f.to_vec());
            true
        });
        assert_eq!(seen, [b"d\0\0\0\x05a", b"d\0\0\0\x05b", b"d\0\0\0\x05c"]);
        assert_eq!(conn.read_frame().await.unwrap().unwrap().tag(), b'c');
        let mut conn = conn_with(1024);
        let mut n = 0;
        conn.take_buffered(b'd', |_| {
            n += 1;
            n < 2
        });
        assert_eq!(n, 2);
        assert_eq!(conn.read_frame().await.unwrap().unwrap().body(), b"c");
        let mut conn = Conn::with_buffer(tokio::io::empty(), BytesMut::from(&bytes[..8]), 1024);
        conn.take_buffered(b'd', |_| true);
        assert_eq!(conn.buffered(), 2);
        let mut conn = conn_with(5);
        conn.take_buffered(b'd', |_| unreachable!("too long for the limit"));
        assert!(matches!(
            conn.read_frame().await,
            Err(WireError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn frames_already_buffered_come_without_a_read() {
        let bytes: &[u8] = b"Q\0\0\0\x05aX\0\0\0\x04Q\0\0\0\x09ab";
        let (mut a, b) = tokio::io::duplex(64);
        let mut conn = Conn::with_buffer(b, BytesMut::from(bytes), 1024);
        assert_eq!(conn.read_frame().await.unwrap().unwrap().body(), b"a");
        assert_eq!(conn.read_frame().await.unwrap().unwrap().tag(), b'X');
        assert_eq!(conn.buffered(), 7);
        a.write_all(b"cd\0").await.unwrap();
        assert_eq!(conn.read_frame().await.unwrap().unwrap().body(), b"abcd\0");
        drop(a);
        assert!(conn.read_frame().await.unwrap().is_none());
        let buffered =
            |bytes: &[u8], max| Conn::with_buffer(tokio::io::empty(), BytesMut::from(bytes), max);
        let mut conn = buffered(b"X\0\0\0\x04Q\0\0\0\x03", 1024);
        assert!(conn.read_frame().await.unwrap().is_some());
        assert!(matches!(
            conn.read_frame().await,
            Err(WireError::InvalidLength(3))
        ));
        let mut conn = buffered(b"X\0\0\0\x04Q\0\0\0\x09abcd\0", 5);
        assert!(conn.read_frame().await.unwrap().is_some());
        assert!(matches!(
            conn.read_frame().await,
            Err(WireError::TooLarge { len: 10, max: 5 })
        ));
        let mut conn = buffered(b"X\0\0\0\x04Q\0\0", 1024);
        assert!(conn.read_frame().await.unwrap().is_some());
        assert!(matches!(
            conn.read_frame().await,
            Err(WireError::UnexpectedEof)
        ));
    }

    #[tokio::test]
    async fn eof_inside_frame_is_an_error() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"Q\0\0\0\x09ab").await.unwrap();
        drop(a);
        let mut conn = Conn::new(b, 1024);
        assert!(matches!(
            conn.read_frame().await,
            Err(WireError::UnexpectedEof)
        ));
    }
}
