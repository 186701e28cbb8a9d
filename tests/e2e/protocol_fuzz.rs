//! A protocol fuzzer against the running proxy (the `serve` binary, so a
//! panic shows in its own output): after a real login, as a production
//! and as a guarded role, random and mutated frontend messages (lengths
//! that lie, unknown tags, malformed Parse/Bind/Execute/Describe/Close/
//! Query/CopyData/FunctionCall, random bytes). Each case must be answered
//! (its closing query's ReadyForQuery arrives) or the session closed
//! within a few seconds; after every case a fresh session must answer
//! `SELECT 1`; the proxy must never panic.
//!
//! Deterministic: case `n` of seed `s` is always the same bytes.
//! `COPYGUARD_FUZZ_CASES` sets the number of cases (default 200, also
//! bounded by 90 s), `COPYGUARD_FUZZ_SEED` the seed.

use std::fmt::Write as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::raw::{frame, startup_packet};
use crate::support::*;

/// How long one case may take to be answered or closed.
const CASE_DEADLINE: Duration = Duration::from_secs(5);
/// Cases in the normal test run.
const DEFAULT_CASES: usize = 200;
/// Time bound of the normal test run (the environment variable lifts it).
const DEFAULT_BUDGET: Duration = Duration::from_secs(90);
/// The seed of the normal run and of the 10,000-case run.
const DEFAULT_SEED: u64 = 0x00c0_ffee;
/// `--max-message-size` of the proxy under test.
const MAX_MESSAGE: usize = 1 << 20;

const POLICY: &str = r#"
[classes.production]
mode = "production"
roles = ["trust_user", "scram_user", "md5_user"]

[classes.dev]
mode = "guarded"
roles = ["clear_user"]
max_rows_per_statement = 20
max_bytes_per_statement = "64KiB"
max_rows_per_session = 1000
max_rows_per_window = 100000
window = "1h"
copy_to = "block"
allow_writes = true
allow_ddl = false
classified_predicates = true

[columns]
"public.customers.email" = "email"
"public.customers.born" = "date_of_birth"
"public.notes.body" = "free_text"
"#;

/// The statements the messages carry (and mutate).
const SQL: &[&str] = &[
    "SELECT 1",
    "SELECT id, email FROM customers ORDER BY id LIMIT 3",
    "SELECT * FROM customers",
    "SELECT count(*) FROM notes",
    "SELECT $1::int + 1",
    "SELECT email FROM customers WHERE id = $1",
    "SELECT * FROM customer_notes",
    "COPY customers TO STDOUT",
    "COPY (SELECT id FROM customers) TO STDOUT WITH (FORMAT csv)",
    "COPY (SELECT id FROM customers LIMIT 5) TO STDOUT WITH (FORMAT binary)",
    "COPY notes (customer_id, body) FROM STDIN",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT s; SELECT 1; RELEASE s",
    "DECLARE c CURSOR WITH HOLD FOR SELECT id FROM customers",
    "FETCH 2 FROM c",
    "PREPARE p AS SELECT id FROM customers WHERE id = $1",
    "EXECUTE p(1)",
    "DEALLOCATE ALL",
    "SET search_path = public",
    "RESET ALL",
    "SHOW server_version",
    "SELECT 1; SELECT 2",
    "SELECT pg_sleep(0.01)",
    "LISTEN chan",
    "NOTIFY chan, 'x'",
    "DO $$ BEGIN END $$",
    "SELEC 1",
    "SELECT 'unterminated",
    "SELECT (((((((((1)))))))))",
    "",
    ";",
];

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Up to `max - 1` random bytes.
    fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn name(rng: &mut Rng) -> String {
    rng.pick(&["", "", "s1", "p", "c", "portal_x"]).to_string()
}

/// SQL text, sometimes mutated (cut, bytes flipped, junk appended).
fn sql(rng: &mut Rng) -> Vec<u8> {
    let mut s = rng.pick(SQL).as_bytes().to_vec();
    match rng.below(6) {
        0 if !s.is_empty() => s.truncate(rng.below(s.len())),
        1 if !s.is_empty() => {
            let at = rng.below(s.len());
            s[at] = rng.next() as u8;
        }
        2 => s.extend(rng.some_bytes(8)),
        _ => {}
    }
    s.retain(|&b| b != 0);
    s
}

/// The body of one well-formed-looking message of `tag`.
fn body(rng: &mut Rng, tag: u8) -> Vec<u8> {
    let mut b = Vec::new();
    match tag {
        b'Q' => {
            b.extend(sql(rng));
            b.push(0);
        }
        b'P' => {
            cstr(&mut b, &name(rng));
            b.extend(sql(rng));
            b.push(0);
            let n = rng.below(3) as i16;
            b.extend_from_slice(&n.to_be_bytes());
            for _ in 0..n {
                b.extend_from_slice(&rng.pick(&[0u32, 23, 25, 20, 17, 999_999]).to_be_bytes());
            }
        }
        b'B' => {
            cstr(&mut b, &name(rng));
            cstr(&mut b, &name(rng));
            let formats = rng.below(3) as i16;
            b.extend_from_slice(&formats.to_be_bytes());
            for _ in 0..formats {
                b.extend_from_slice(&(rng.below(3) as i16).to_be_bytes());
            }
            let params = rng.below(3) as i16;
            b.extend_from_slice(&params.to_be_bytes());
            for _ in 0..params {
                if rng.chance(20) {
                    b.extend_from_slice(&(-1i32).to_be_bytes());
                } else {
                    let v = rng.pick(&["1", "42", "x", "", "\u{1}"]).as_bytes();
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v);
                }
            }
            let results = rng.below(3) as i16;
            b.extend_from_slice(&results.to_be_bytes());
            for _ in 0..results {
                b.extend_from_slice(&(rng.below(3) as i16).to_be_bytes());
            }
        }
        b'E' => {
            cstr(&mut b, &name(rng));
            b.extend_from_slice(&(*rng.pick(&[0i32, 1, 2, -1, 1000])).to_be_bytes());
        }
        b'D' | b'C' => {
            b.push(*rng.pick(b"SPSPX"));
            cstr(&mut b, &name(rng));
        }
        b'd' => {
            const ROWS: &[&[u8]] = &[b"1\tx\n", b"999999\t\\N\n", b"\\.\n", b"a,b\n"];
            let row: &[u8] = rng.pick::<&[u8]>(ROWS);
            b.extend_from_slice(row);
            if rng.chance(30) {
                b.extend(rng.some_bytes(16));
            }
        }
        b'f' => cstr(&mut b, "fuzz"),
        b'F' => {
            b.extend_from_slice(&(*rng.pick(&[1598u32, 0, 2_147_483_647])).to_be_bytes());
            b.extend_from_slice(&0i16.to_be_bytes());
            b.extend_from_slice(&1i16.to_be_bytes());
            b.extend_from_slice(&1i32.to_be_bytes());
            b.push(b'7');
            b.extend_from_slice(&0i16.to_be_bytes());
        }
        b'p' => cstr(&mut b, "password"),
        _ => {}
    }
    b
}

/// One message, possibly mutated.
fn message(rng: &mut Rng) -> Vec<u8> {
    const TAGS: &[u8] = b"QPBEDCSHdcfFpQPBE";
    let tag = match rng.below(20) {
        0 => rng.next() as u8,
        1 => *rng.pick(b"XvAZTKR\0\xff"),
        _ => *rng.pick(TAGS),
    };
    if tag == b'X' {
        return frame(b'X', &[]);
    }
    let mut b = body(rng, tag);
    match rng.below(10) {
        0 if !b.is_empty() => b.truncate(rng.below(b.len())),
        1 => {
            b.push(rng.next() as u8);
            b.extend(rng.some_bytes(12));
        }
        2 if !b.is_empty() => {
            let at = rng.below(b.len());
            b[at] = rng.next() as u8;
        }
        3 if b.len() >= 2 => {
            // A count or length field set to an extreme.
            let at = rng.below(b.len() - 1);
            let v = *rng.pick(&[0x7fffu16, 0xffff, 0x8000]);
            b[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
        _ => {}
    }
    let mut out = frame(tag, &b);
    match rng.below(25) {
        // A length that lies, below the minimum, or above the limit.
        0 => {
            let declared = (b.len() as i64 + 4 + [-3i64, -1, 1, 7][rng.below(4)]).max(0) as u32;
            out[1..5].copy_from_slice(&declared.to_be_bytes());
        }
        1 => out[1..5].copy_from_slice(&(*rng.pick(&[0u32, 3, 0xffff_ffff])).to_be_bytes()),
        2 => out[1..5].copy_from_slice(&((MAX_MESSAGE as u32) + 10).to_be_bytes()),
        _ => {}
    }
    out
}

/// The bytes of case `n`: a few messages, or random bytes.
fn case_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = Rng(seed ^ (n as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
    if rng.chance(8) {
        let len = rng.below(64);
        return rng.bytes(len);
    }
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(5) {
        out.extend(message(&mut rng));
    }
    if rng.chance(60) {
        out.extend(frame(b'S', &[]));
    }
    out
}

/// Whether `bytes` is a sequence of complete frames within the limit, as
/// the proxy will read it (then the closing query must be answered).
fn whole_frames(bytes: &[u8]) -> bool {
    let mut scanner = copyguard::wire::FrameScanner::new(MAX_MESSAGE);
    scanner.feed(bytes, |_, _| {}).is_ok() && scanner.at_boundary()
}

/// The end of every case: leave COPY IN and any failed transaction, then
/// a query whose answer marks the case as answered.
fn closing(marker: &str) -> Vec<u8> {
    let mut out = frame(b'S', &[]);
    for q in ["ROLLBACK".to_owned(), format!("SELECT '{marker}'")] {
        let mut b = q.into_bytes();
        b.push(0);
        out.extend(frame(b'Q', &b));
    }
    out
}

/// What a case came to.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The closing query was answered.
    Answered,
    /// The proxy closed the session.
    Closed,
    /// Neither within the deadline.
    Stalled,
}

/// Logs in as `user` (trust or cleartext password) on `testdb`.
async fn login(port: u16, user: &str) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(&startup_packet(
        0,
        &[("user", user), ("database", "testdb")],
    ))
    .await
    .map_err(|e| e.to_string())?;
    loop {
        let (tag, body) = read_message(&mut s).await?.ok_or("closed during login")?;
        match tag {
            b'R' if body.get(..4) == Some(&[0, 0, 0, 3]) => {
                let mut pw = PASSWORD.as_bytes().to_vec();
                pw.push(0);
                s.write_all(&frame(b'p', &pw))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            b'Z' => return Ok(s),
            b'E' => return Err(format!("login refused: {}", String::from_utf8_lossy(&body))),
            _ => {}
        }
    }
}

async fn read_message(s: &mut TcpStream) -> Result<Option<(u8, Vec<u8>)>, String> {
    let mut header = [0u8; 5];
    match s.read_exact(&mut header).await {
        Ok(_) => {}
        Err(_) => return Ok(None),
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len < 4 {
        return Err(format!("backend message with length {len}"));
    }
    let mut body = vec![0u8; len - 4];
    if s.read_exact(&mut body).await.is_err() {
        return Ok(None);
    }
    Ok(Some((header[0], body)))
}

/// Sends one case on a fresh session of `user` and waits for its outcome.
async fn run_case(port: u16, user: &str, bytes: &[u8], marker: &str) -> Result<Outcome, String> {
    let mut s = login(port, user).await?;
    let whole = whole_frames(bytes);
    let mut all = bytes.to_vec();
    if whole {
        all.extend(closing(marker));
    }
    // The proxy may close while we write; that is an outcome, not an error.
    let written = s.write_all(&all).await;
    if !whole || written.is_err() {
        let _ = s.shutdown().await;
    }
    let waited = tokio::time::timeout(CASE_DEADLINE, async {
        let mut seen_marker = false;
        loop {
            match read_message(&mut s).await {
                Ok(Some((b'D', body))) if whole => {
                    seen_marker |= body.windows(marker.len()).any(|w| w == marker.as_bytes());
                }
                Ok(Some((b'Z', _))) if seen_marker => return Outcome::Answered,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return Outcome::Closed,
            }
        }
    })
    .await;
    Ok(waited.unwrap_or(Outcome::Stalled))
}

/// A fresh session answers `SELECT 1`.
async fn fresh_session_answers(port: u16, user: &str) -> Result<(), String> {
    let mut s = login(port, user).await?;
    s.write_all(&frame(b'Q', b"SELECT 1\0"))
        .await
        .map_err(|e| e.to_string())?;
    let mut row = false;
    loop {
        match read_message(&mut s).await? {
            Some((b'D', _)) => row = true,
            Some((b'Z', _)) if row => return Ok(()),
            Some((b'E', body)) => return Err(String::from_utf8_lossy(&body).into_owned()),
            Some(_) => {}
            None => return Err("closed".into()),
        }
    }
}

/// The `serve` binary under the fuzz policy, logging to a file.
fn start_proxy(log: &std::path::Path) -> (Child, u16) {
    let file = std::fs::File::create(log).expect("log file");
    let Served {
        mut child, addr, ..
    } = Served::start(
        serve_command(&policy_dir(POLICY))
            .args(["--max-message-size", &MAX_MESSAGE.to_string()])
            .args(["--startup-timeout", "10s", "--shutdown-timeout", "1s"])
            .env("RUST_BACKTRACE", "1")
            .stderr(Stdio::from(file)),
    );
    if let Ok(Some(status)) = child.try_wait() {
        panic!("serve exited at once: {status}");
    }
    (child, addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_fuzz_never_panics_or_stalls() {
    let from_env = std::env::var("COPYGUARD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let cases = from_env.unwrap_or(DEFAULT_CASES);
    let budget = if from_env.is_some() {
        Duration::MAX
    } else {
        DEFAULT_BUDGET
    };
    let seed = std::env::var("COPYGUARD_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_SEED);
    cluster();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let (mut child, port) = start_proxy(&log);

    let started = Instant::now();
    // Per role (production, guarded): answered, closed.
    let mut outcomes = [[0usize; 2]; 2];
    let mut failures = String::new();
    let mut tried = 0;
    for n in 0..cases {
        if started.elapsed() > budget {
            break;
        }
        tried += 1;
        let user = if n % 2 == 0 {
            "trust_user"
        } else {
            "clear_user"
        };
        let bytes = case_bytes(seed, n);
        let marker = format!("fuzz_end_{n}");
        match run_case(port, user, &bytes, &marker).await {
            Ok(Outcome::Answered) => outcomes[n % 2][0] += 1,
            Ok(Outcome::Closed) => outcomes[n % 2][1] += 1,
            Ok(Outcome::Stalled) => {
                let _ = writeln!(failures, "case {n} ({user}) stalled: {bytes:02x?}");
            }
            Err(e) => {
                let _ = writeln!(failures, "case {n} ({user}): {e}");
            }
        }
        for check in ["trust_user", "clear_user"] {
            if n % 2 == 0 && check == "clear_user" {
                continue;
            }
            if let Err(e) = fresh_session_answers(port, check).await {
                let _ = writeln!(
                    failures,
                    "after case {n} ({user}), a fresh {check} session failed: {e}: {bytes:02x?}"
                );
            }
        }
        if failures.lines().count() > 20 {
            break;
        }
    }
    let alive = child.try_wait().expect("wait").is_none();
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let panics = output.matches("panicked").count();
    let [[prod_answered, prod_closed], [dev_answered, dev_closed]] = outcomes;
    eprintln!(
        "protocol fuzz: seed {seed}, {tried} cases in {:.1} s: production {prod_answered} answered, \
         {prod_closed} closed; guarded {dev_answered} answered, {dev_closed} closed; \
         {} failures, {panics} panics",
        started.elapsed().as_secs_f64(),
        failures.lines().count()
    );
    assert!(alive, "the proxy exited:\n{output}");
    assert_eq!(panics, 0, "the proxy panicked:\n{output}");
    assert!(failures.is_empty(), "{failures}");
    assert!(
        outcomes.iter().flatten().all(|&n| n > 0),
        "both outcomes for both roles: {outcomes:?}"
    );
}

/// The cases of the 10,000-case run that stalled guarded sessions: a
/// Flush, Sync, Execute or CopyFail with bytes after its end drew a server
/// error no bookkeeping expected, and the next internal query (search path
/// refresh) waited forever. Such messages are now refused (`08P01`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_that_stalled_guarded_sessions_stay_fixed() {
    const STALLED: &[usize] = &[
        1665, 1725, 2529, 2915, 3497, 3817, 6835, 6873, 7063, 7167, 7523, 7957, 9295, 9433,
    ];
    cluster();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let (mut child, port) = start_proxy(&log);
    let mut failures = String::new();
    for &n in STALLED {
        let bytes = case_bytes(DEFAULT_SEED, n);
        match run_case(port, "clear_user", &bytes, &format!("fuzz_end_{n}")).await {
            Ok(Outcome::Answered | Outcome::Closed) => {}
            other => {
                let _ = writeln!(failures, "case {n}: {other:?}");
            }
        }
        if let Err(e) = fresh_session_answers(port, "clear_user").await {
            let _ = writeln!(failures, "after case {n}: {e}");
        }
    }
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
    assert!(failures.is_empty(), "{failures}");
}
