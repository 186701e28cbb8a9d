//! A recording TCP relay placed between a client and copyguard: every byte
//! the client receives is kept, so tests can prove that no classified
//! value reached it by any path (rows, COPY data, errors, notices,
//! notifications, parameter statuses).

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use base64::Engine as _;
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A recording relay to `127.0.0.1:target`.
pub struct Tap {
    pub port: u16,
    received: Arc<Mutex<Vec<u8>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Tap {
    pub fn start(target: u16) -> Tap {
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tap runtime");
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("tap bind");
                port_tx
                    .send(listener.local_addr().expect("tap addr").port())
                    .expect("tap port");
                let accept = async {
                    while let Ok((client, _)) = listener.accept().await {
                        let sink = sink.clone();
                        tokio::spawn(relay(client, target, sink));
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stop_rx => {}
                }
            });
        });
        Tap {
            port: port_rx.recv().expect("tap started"),
            received,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Everything clients of this tap received so far.
    pub fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn relay(client: TcpStream, target: u16, sink: Arc<Mutex<Vec<u8>>>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    sink.lock().unwrap().extend_from_slice(&buf[..n]);
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Every form of `value` a leak could take that a test can recognize: as
/// is, upper and lower case, reversed, its md5 (hex), base64 and hex.
pub fn forms(value: &str) -> Vec<(&'static str, Vec<u8>)> {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let md5 = hex(&Md5::digest(value.as_bytes()));
    vec![
        ("as is", value.as_bytes().to_vec()),
        ("upper case", value.to_uppercase().into_bytes()),
        ("lower case", value.to_lowercase().into_bytes()),
        (
            "reversed",
            value.chars().rev().collect::<String>().into_bytes(),
        ),
        ("md5", md5.into_bytes()),
        (
            "base64",
            base64::engine::general_purpose::STANDARD
                .encode(value.as_bytes())
                .trim_end_matches('=')
                .as_bytes()
                .to_vec(),
        ),
        ("hex", hex(value.as_bytes()).into_bytes()),
        (
            "hex upper",
            hex(value.as_bytes()).to_uppercase().into_bytes(),
        ),
    ]
}

/// A secret found in `received`, in any of its [`forms`] (the leftmost).
pub fn find_leak(received: &[u8], secrets: &[String]) -> Option<String> {
    let (names, needles): (Vec<String>, Vec<Vec<u8>>) = secrets
        .iter()
        .flat_map(|secret| {
            forms(secret)
                .into_iter()
                .filter(|(_, needle)| !needle.is_empty())
                .map(move |(form, needle)| (format!("{secret:?} ({form})"), needle))
        })
        .unzip();
    let found = aho_corasick::AhoCorasick::new(&needles)
        .expect("secrets make a searcher")
        .find(received)?;
    Some(names[found.pattern().as_usize()].clone())
}
