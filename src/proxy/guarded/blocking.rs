//! A session's TCP socket in blocking mode, read or written by one thread
//! of a guarded session split over two ([`super::split`]). Each half
//! sleeps in `recv` on the socket it reads, as the production relay's
//! threads do: the peer's `send` wakes exactly that thread, with no
//! `epoll_wait` in between, and a read costs one `recv`. A half blocked in
//! `recv` is ended by shutting the socket down for reading.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A blocking TCP socket behind the async traits the halves are written
/// against: every poll completes, after waiting in the kernel if it must.
pub(super) struct Blocking(Arc<TcpStream>);

impl Blocking {
    /// `socket`, shared with the session's other copies of it.
    pub fn new(socket: Arc<TcpStream>) -> Blocking {
        Blocking(socket)
    }
}

impl AsyncRead for Blocking {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: `recv` only writes bytes into the slice (it never
        // de-initialises any), and says how many.
        let unfilled = unsafe { buf.unfilled_mut() };
        loop {
            match socket2::SockRef::from(&*self.0).recv(unfilled) {
                Ok(n) => {
                    // SAFETY: `recv` initialised the first `n` bytes.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Blocking {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match (&*self.0).write(data) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                written => return Poll::Ready(written),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.shutdown(Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn pair() -> (TcpStream, Arc<TcpStream>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let far = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (near, _) = listener.accept().unwrap();
        (far, Arc::new(near))
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Bytes written through one copy arrive, bytes sent come back through
    /// another copy on another thread, and the end of the stream reads as
    /// 0.
    #[test]
    fn a_socket_read_on_one_thread_and_written_on_another() {
        let (mut far, near) = pair();
        let mut reader = Blocking::new(near.clone());
        let mut writer = Blocking::new(near);
        runtime().block_on(writer.write_all(b"hello")).unwrap();
        let mut got = [0u8; 5];
        far.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        let far_copy = far.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            let mut far = far_copy;
            far.write_all(b"back").unwrap();
            far.shutdown(Shutdown::Write).unwrap();
        });
        let mut back = Vec::new();
        runtime().block_on(reader.read_to_end(&mut back)).unwrap();
        sender.join().unwrap();
        assert_eq!(back, b"back");
        runtime().block_on(writer.shutdown()).unwrap();
        assert_eq!(far.read(&mut got).unwrap(), 0);
    }

    /// A read blocked on a silent peer ends (as the end of the stream)
    /// when the socket is shut down for reading from another thread.
    #[test]
    fn a_blocked_read_ends_when_the_socket_is_shut_for_reading() {
        let (_far, near) = pair();
        let mut reader = Blocking::new(near.clone());
        let reading = std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            runtime().block_on(reader.read(&mut buf)).unwrap()
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        near.shutdown(Shutdown::Read).unwrap();
        assert_eq!(reading.join().unwrap(), 0);
    }
}
