//! A copy of a session's TCP socket registered on a runtime for one
//! direction only. A guarded session split over two threads ([`super::split`])
//! reads the client's socket on one and writes it on the other: registered
//! for both directions, as a tokio `TcpStream` always is, every message the
//! client sends would also wake the thread that only writes to it. A read
//! that returns less than it asked for takes the socket's readiness with
//! it, so each message costs one `recv`, not a second one ending in
//! EAGAIN.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// A nonblocking TCP socket the current runtime watches for reading only
/// ([`OneWay::reader`]) or writing only ([`OneWay::writer`]).
pub(super) struct OneWay(AsyncFd<TcpStream>);

impl OneWay {
    /// `socket`, registered on the current runtime for reading.
    pub fn reader(socket: TcpStream) -> io::Result<OneWay> {
        OneWay::new(socket, Interest::READABLE)
    }

    /// `socket`, registered on the current runtime for writing.
    pub fn writer(socket: TcpStream) -> io::Result<OneWay> {
        OneWay::new(socket, Interest::WRITABLE)
    }

    fn new(socket: TcpStream, interest: Interest) -> io::Result<OneWay> {
        socket.set_nonblocking(true)?;
        // SAFETY: a `TcpStream` owns its descriptor, open until it is
        // dropped, and always returns the same one; the `AsyncFd` owns the
        // stream for its whole life.
        Ok(OneWay(unsafe {
            AsyncFd::register_with_interest(socket, interest)?
        }))
    }
}

impl AsyncRead for OneWay {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut ready = ready!(self.0.poll_read_ready(cx))?;
            // SAFETY: `recv` only writes bytes into the slice (it never
            // de-initialises any), and says how many.
            let unfilled = unsafe { buf.unfilled_mut() };
            let asked = unfilled.len();
            match ready.try_io(|socket| socket2::SockRef::from(socket.get_ref()).recv(unfilled)) {
                Ok(Ok(n)) => {
                    // A short read drained the socket (epoll(7)): wait for
                    // the next edge rather than find out with a read that
                    // ends in EAGAIN. Readiness that arrived meanwhile is
                    // kept (the guard's tick no longer matches it).
                    if n > 0 && n < asked {
                        ready.clear_ready();
                    }
                    // SAFETY: `recv` initialised the first `n` bytes.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for OneWay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut ready = ready!(self.0.poll_write_ready(cx))?;
            match ready.try_io(|socket| {
                let mut socket: &TcpStream = socket.get_ref();
                socket.write(data)
            }) {
                Ok(written) => return Poll::Ready(written),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.get_ref().shutdown(Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Bytes written through a writer copy arrive, and bytes sent come back
    /// through a reader copy of the same socket, on another runtime; the
    /// end of the stream reads as 0.
    #[test]
    fn a_socket_read_on_one_runtime_and_written_on_another() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut far = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (near, _) = listener.accept().unwrap();
        let copy = near.try_clone().unwrap();
        let reading = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let writing = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut reader = reading.block_on(async { OneWay::reader(near) }).unwrap();
        let mut writer = writing.block_on(async { OneWay::writer(copy) }).unwrap();
        writing.block_on(writer.write_all(b"hello")).unwrap();
        let mut got = [0u8; 5];
        std::io::Read::read_exact(&mut far, &mut got).unwrap();
        assert_eq!(&got, b"hello");
        far.write_all(b"back").unwrap();
        far.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        reading.block_on(reader.read_to_end(&mut back)).unwrap();
        assert_eq!(back, b"back");
        writing.block_on(writer.shutdown()).unwrap();
        assert_eq!(std::io::Read::read(&mut far, &mut got).unwrap(), 0);
    }
}
