//! A byte-level PostgreSQL client for tests that must send what no real
//! client would (garbage, oversized frames, odd protocol versions).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Time any single read may take before the test fails (no hangs).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A backend message: type byte and body.
#[derive(Debug)]
pub struct Msg {
    pub tag: u8,
    pub body: Vec<u8>,
}

impl Msg {
    /// The SQLSTATE of an ErrorResponse / NoticeResponse.
    pub fn sqlstate(&self) -> Option<String> {
        self.field(b'C')
    }

    /// A field of an ErrorResponse / NoticeResponse.
    pub fn field(&self, code: u8) -> Option<String> {
        let mut rest = &self.body[..];
        while let Some((&f, tail)) = rest.split_first() {
            if f == 0 {
                break;
            }
            let end = tail.iter().position(|&b| b == 0)?;
            if f == code {
                return Some(String::from_utf8_lossy(&tail[..end]).into_owned());
            }
            rest = &tail[end + 1..];
        }
        None
    }
}

pub struct Raw {
    pub stream: TcpStream,
}

/// A startup packet for protocol 3.`minor` with `params`.
pub fn startup_packet(minor: u16, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&3u16.to_be_bytes());
    body.extend_from_slice(&minor.to_be_bytes());
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// A tagged frontend message.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

impl Raw {
    pub async fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to copyguard");
        Raw { stream }
    }

    /// Connects from the loopback address `from` (any of 127.0.0.0/8).
    pub async fn connect_from(from: std::net::Ipv4Addr, port: u16) -> Raw {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind((from, 0).into())
            .expect("bind to a loopback address");
        let stream = socket
            .connect(([127, 0, 0, 1], port).into())
            .await
            .expect("connect to copyguard");
        Raw { stream }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Reads one byte (SSL/GSS answers).
    pub async fn byte(&mut self) -> u8 {
        tokio::time::timeout(READ_TIMEOUT, self.stream.read_u8())
            .await
            .expect("answer in time")
            .expect("one byte")
    }

    /// Reads one backend message; `None` on EOF.
    pub async fn recv(&mut self) -> Option<Msg> {
        tokio::time::timeout(READ_TIMEOUT, async {
            let mut header = [0u8; 5];
            if self.stream.read_exact(&mut header).await.is_err() {
                return None;
            }
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            let mut body = vec![0u8; len - 4];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(Msg {
                tag: header[0],
                body,
            })
        })
        .await
        .expect("message or EOF in time (no hang)")
    }

    /// Reads until EOF, returning the messages seen.
    pub async fn drain(&mut self) -> Vec<Msg> {
        let mut seen = Vec::new();
        while let Some(m) = self.recv().await {
            seen.push(m);
        }
        seen
    }

    /// Reads until ReadyForQuery (returned last) or EOF.
    pub async fn until_ready(&mut self) -> Vec<Msg> {
        let mut seen = Vec::new();
        while let Some(m) = self.recv().await {
            let done = m.tag == b'Z';
            seen.push(m);
            if done {
                break;
            }
        }
        seen
    }

    /// Opens a session as `trust_user` on `testdb` (no password needed).
    pub async fn login(port: u16) -> Raw {
        let mut raw = Raw::connect(port).await;
        raw.send(&startup_packet(
            0,
            &[("user", "trust_user"), ("database", "testdb")],
        ))
        .await;
        let msgs = raw.until_ready().await;
        assert_eq!(msgs.last().map(|m| m.tag), Some(b'Z'), "{msgs:?}");
        raw
    }

    /// Opens a session as `user` on `database` with SCRAM and `password`.
    pub async fn login_scram(port: u16, user: &str, database: &str, password: &str) -> Raw {
        use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
        use postgres_protocol::message::frontend;
        let mut raw = Raw::connect(port).await;
        raw.send(&startup_packet(
            0,
            &[("user", user), ("database", database)],
        ))
        .await;
        let mut scram = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        while let Some(m) = raw.recv().await {
            let mut buf = bytes::BytesMut::new();
            match (m.tag, m.body.get(..4)) {
                (b'R', Some([0, 0, 0, 10])) => {
                    frontend::sasl_initial_response("SCRAM-SHA-256", scram.message(), &mut buf)
                        .expect("SASL message");
                    raw.send(&buf).await;
                }
                (b'R', Some([0, 0, 0, 11])) => {
                    scram.update(&m.body[4..]).expect("SCRAM continue");
                    frontend::sasl_response(scram.message(), &mut buf).expect("SASL message");
                    raw.send(&buf).await;
                }
                (b'R', Some([0, 0, 0, 12])) => scram.finish(&m.body[4..]).expect("SCRAM final"),
                (b'Z', _) => return raw,
                (b'E', _) => panic!("login failed: {:?}", m.field(b'M')),
                _ => {}
            }
        }
        panic!("connection closed during login");
    }

    /// Runs a simple query; returns the messages up to ReadyForQuery.
    pub async fn query(&mut self, sql: &str) -> Vec<Msg> {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        self.send(&frame(b'Q', &body)).await;
        self.until_ready().await
    }
}

/// `s` as a C string.
pub fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// A Parse of `sql` as statement `name`, no parameter types.
pub fn parse_msg(name: &str, sql: &str) -> Vec<u8> {
    let mut b = cstr(name);
    b.extend(cstr(sql));
    b.extend(0u16.to_be_bytes());
    frame(b'P', &b)
}

/// A Bind of `statement` to `portal`, no parameters, text results.
pub fn bind_msg(portal: &str, statement: &str) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend(cstr(statement));
    b.extend([0u8; 6]);
    frame(b'B', &b)
}

/// An Execute of `portal`, every row.
pub fn execute_msg(portal: &str) -> Vec<u8> {
    execute_rows(portal, 0)
}

/// An Execute of `portal`, at most `max_rows` rows (0: every row).
pub fn execute_rows(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend(max_rows.to_be_bytes());
    frame(b'E', &b)
}

/// A Sync.
pub fn sync_msg() -> Vec<u8> {
    frame(b'S', &[])
}
