//! `copyguard serve` as a child process listening where the OS chose
//! (`--listen 127.0.0.1:0`): the addresses it reports on stdout
//! (`listening on ADDR`, after `admin listening on ADDR` when it has an
//! admin endpoint) are read with a timeout, and its piped output is drained
//! for its whole life so it never blocks on a full pipe. No port is picked
//! and released first, so no other test can take it in between. Shared by
//! the e2e suite and `serve_cli`.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long `serve` may take to report its address.
const REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// A started `copyguard serve` and the addresses it reported.
pub struct Served {
    pub child: Child,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The admin endpoint, when one was asked for.
    pub admin: Option<SocketAddr>,
    stdout: Drain,
    stderr: Option<Drain>,
}

impl Served {
    /// Spawns `cmd` (a `serve` command) with stdout piped and waits until it
    /// reports where it listens. Stderr is the caller's choice; piped, it is
    /// collected here ([`Served::stderr`], [`Served::finish`]). Panics, with
    /// what the child printed, if it exits or stays silent for 30 s.
    pub fn start(cmd: &mut Command) -> Served {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("start copyguard serve");
        let (lines, reported) = mpsc::channel();
        let stdout = Drain::start(child.stdout.take().expect("stdout"), Some(lines));
        let stderr = child.stderr.take().map(|e| Drain::start(e, None));
        let mut served = Served {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: None,
            stdout,
            stderr,
        };
        let deadline = Instant::now() + REPORT_TIMEOUT;
        loop {
            match reported.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(admin) = line.strip_prefix("admin listening on ") {
                        served.admin = Some(served.parse(admin));
                    } else if let Some(addr) = line.strip_prefix("listening on ") {
                        served.addr = served.parse(addr);
                        return served;
                    }
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = served.child.try_wait() {
                        served.fail(&format!("exited ({status})"));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    served.fail(&format!("reported nothing within {REPORT_TIMEOUT:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => served.fail("closed its stdout"),
            }
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// What the child wrote on a piped stderr so far (empty otherwise).
    pub fn stderr(&self) -> String {
        self.stderr.as_ref().map(Drain::text).unwrap_or_default()
    }

    /// Waits for the child to exit, then returns its status and all it
    /// wrote on a piped stderr.
    pub fn finish(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().expect("wait for copyguard serve");
        self.stdout.join();
        let stderr = self.stderr.map(Drain::finish).unwrap_or_default();
        (status, stderr)
    }

    fn parse(&mut self, addr: &str) -> SocketAddr {
        match addr.trim().parse() {
            Ok(addr) => addr,
            Err(e) => self.fail(&format!("reported an unreadable address {addr:?}: {e}")),
        }
    }

    /// Kills the child (it may be half started) and panics with `what`
    /// happened and what it printed.
    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdout.join();
        if let Some(stderr) = &mut self.stderr {
            stderr.join();
        }
        panic!(
            "copyguard serve did not report `listening on ADDR`: it {what}\n\
             --- its stdout ---\n{}\n--- its stderr (when piped) ---\n{}",
            self.stdout.text(),
            self.stderr()
        );
    }
}

/// A thread reading one of the child's pipes to its end, keeping the text
/// and passing each line on to `lines` while someone listens.
struct Drain {
    text: Arc<Mutex<String>>,
    thread: Option<JoinHandle<()>>,
}

impl Drain {
    fn start(pipe: impl Read + Send + 'static, lines: Option<mpsc::Sender<String>>) -> Drain {
        let text = Arc::new(Mutex::new(String::new()));
        let sink = text.clone();
        let thread = std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let got = String::from_utf8_lossy(&line).into_owned();
                sink.lock().unwrap().push_str(&got);
                if let Some(lines) = &lines {
                    let _ = lines.send(got.trim_end().to_owned());
                }
                line.clear();
            }
        });
        Drain {
            text,
            thread: Some(thread),
        }
    }

    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn finish(mut self) -> String {
        self.join();
        self.text()
    }
}
