//! Connections to the upstream PostgreSQL server: TCP, the SSLRequest
//! exchange and TLS, and forwarding cancel requests.

use std::time::Duration;

use bytes::BytesMut;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use pgwire::messages::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::cancel::UpstreamKey;
use super::{SessionError, Shared};
use crate::wire::Stream;

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 4, 210, 22, 47];

/// Opens a connection to the upstream, with TLS when configured.
pub(crate) async fn connect(shared: &Shared) -> Result<Stream, SessionError> {
    let addr = shared.config.upstream_addr();
    let connect_error = |source| SessionError::Connect {
        addr: addr.clone(),
        source,
    };
    let tcp = tokio::time::timeout(
        shared.config.limits.connect_timeout,
        TcpStream::connect(&addr),
    )
    .await
    .map_err(|_| connect_error(std::io::ErrorKind::TimedOut.into()))?
    .map_err(connect_error)?;
    let _ = tcp.set_nodelay(true);
    let Some(connector) = &shared.connector else {
        return Ok(Stream::Plain(tcp));
    };
    let mut tcp = tcp;
    tcp.write_all(&SSL_REQUEST).await.map_err(connect_error)?;
    // Exactly one byte: anything the server sent after it would be
    // unencrypted data injected ahead of the handshake.
    let answer = tcp.read_u8().await.map_err(connect_error)?;
    match answer {
        b'S' => {}
        b'N' => {
            return Err(SessionError::UpstreamTls(
                "the server does not accept TLS connections".into(),
            ))
        }
        other => {
            return Err(SessionError::UpstreamTls(format!(
                "unexpected answer {other:#04x} to SSLRequest"
            )))
        }
    }
    let tls = connector
        .connect(shared.server_name.clone(), tcp)
        .await
        .map_err(|e| SessionError::UpstreamTls(e.to_string()))?;
    Ok(Stream::ClientTls(Box::new(tls)))
}

/// Sends a CancelRequest for `key` to the upstream and waits (briefly) for
/// the server to close the connection, as PostgreSQL does once it has
/// processed the request.
pub(crate) async fn send_cancel(shared: &Shared, key: &UpstreamKey) -> Result<(), SessionError> {
    let mut stream = connect(shared).await?;
    let mut buf = BytesMut::new();
    CancelRequest::new(key.pid, SecretKey::Bytes(key.secret.clone()))
        .encode(&mut buf)
        .map_err(|e| SessionError::UpstreamProtocol(e.to_string()))?;
    let io = |e: std::io::Error| SessionError::Upstream(e.into());
    stream.write_all(&buf).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while stream.read(&mut sink).await.map(|n| n > 0).unwrap_or(false) {}
    })
    .await;
    Ok(())
}
