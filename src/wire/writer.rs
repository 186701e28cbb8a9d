use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use super::WireError;

/// The one writer of a connection side: owns the write buffer and knows
/// whether a frame is half written, so a last message (a FATAL before
/// closing) is only ever sent between frames.
///
/// A write that fails or is cancelled part way leaves the writer inside a
/// frame for good: nothing written after it could be read as a frame.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: BufWriter<W>,
    in_frame: bool,
}

impl<W: AsyncWrite> FrameWriter<W> {
    /// Buffers writes to `w` with the default buffer size.
    pub fn new(w: W) -> FrameWriter<W> {
        FrameWriter {
            inner: BufWriter::new(w),
            in_frame: false,
        }
    }

    /// Buffers writes to `w` in a buffer of `capacity` bytes.
    pub fn with_capacity(capacity: usize, w: W) -> FrameWriter<W> {
        FrameWriter {
            inner: BufWriter::with_capacity(capacity, w),
            in_frame: false,
        }
    }

    /// Whether every write so far completed, so the next byte written
    /// starts a frame.
    pub fn between_frames(&self) -> bool {
        !self.in_frame
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        self.inner.get_ref()
    }
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Writes one or more complete frames into the buffer (and to the
    /// stream when the buffer fills); not flushed.
    pub async fn write_frame(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.in_frame = true;
        self.inner.write_all(bytes).await?;
        self.in_frame = false;
        Ok(())
    }

    /// Sends everything buffered.
    pub async fn flush(&mut self) -> Result<(), WireError> {
        self.inner.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn buffers_until_flushed() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut w = FrameWriter::new(a);
        w.write_frame(b"Z\0\0\0\x05I").await.unwrap();
        w.write_frame(b"Z\0\0\0\x05T").await.unwrap();
        assert!(w.between_frames());
        let mut buf = [0; 12];
        let pending = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            b.read_exact(&mut buf[..1]),
        );
        assert!(
            pending.await.is_err(),
            "nothing reaches the peer before flush"
        );
        w.flush().await.unwrap();
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"Z\0\0\0\x05IZ\0\0\0\x05T");
    }

    #[tokio::test]
    async fn large_writes_pass_the_buffer() {
        let mut w = FrameWriter::with_capacity(8, Vec::new());
        w.write_frame(b"d\0\0\0\x04").await.unwrap();
        let frame: Vec<u8> = b"d\0\0\0\x0e0123456789".to_vec();
        w.write_frame(&frame).await.unwrap();
        w.flush().await.unwrap();
        assert_eq!(w.get_ref()[..5], *b"d\0\0\0\x04");
        assert_eq!(w.get_ref()[5..], frame[..]);
    }

    /// Takes `room` bytes, then fails every write.
    struct Failing {
        room: usize,
    }

    impl AsyncWrite for Failing {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.room == 0 {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_failed_write_leaves_a_half_written_frame() {
        let mut w = FrameWriter::with_capacity(4, Failing { room: 6 });
        w.write_frame(b"Z\0\0\0\x05I").await.unwrap();
        assert!(w.between_frames());
        let err = w.write_frame(b"C\0\0\0\x0bSELECT\0").await.unwrap_err();
        assert!(matches!(err, WireError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe));
        assert!(!w.between_frames());
    }

    #[tokio::test]
    async fn a_failed_flush_is_an_io_error() {
        let mut w = FrameWriter::new(Failing { room: 2 });
        w.write_frame(b"Z\0\0\0\x05I").await.unwrap();
        assert!(matches!(w.flush().await, Err(WireError::Io(_))));
    }

    #[tokio::test]
    async fn a_cancelled_write_leaves_a_half_written_frame() {
        let (a, _b) = tokio::io::duplex(4);
        let mut w = FrameWriter::with_capacity(2, a);
        let big = [b'd'; 64];
        let cancelled =
            tokio::time::timeout(std::time::Duration::from_millis(20), w.write_frame(&big));
        assert!(cancelled.await.is_err(), "the peer never reads");
        assert!(!w.between_frames());
    }
}
