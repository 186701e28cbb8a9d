//! Child processes for the end-to-end benches: running a command with a
//! timeout, waiting for a listener, and what `/proc` says about a process
//! (CPU time, resident memory).

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Runs `cmd` to completion and returns its stdout; kills it after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let desc = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running `{desc}`"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        None => bail!("`{desc}` killed after {timeout:?}: {}", stderr.trim()),
        Some(status) if !status.success() => bail!("`{desc}` failed ({status}): {}", stderr.trim()),
        Some(_) => Ok(stdout),
    }
}

/// Reads a child's pipe to the end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

/// The command line of `cmd`, for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A port of 127.0.0.1 free at the time of asking.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .context("finding a free port")?
        .port())
}

/// Waits until 127.0.0.1:`port` accepts connections; fails if `child`
/// exits first or `timeout` passes.
pub fn wait_listening(child: &mut Child, port: u16, timeout: Duration) -> Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("process {} exited ({status}) before listening", child.id());
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("nothing listening on {addr} after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// User plus system CPU time `pid` has used so far (all its threads), in
/// seconds; `None` if `/proc` cannot tell.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}

/// Resident memory of `pid` in KiB (`VmRSS`).
#[allow(dead_code)] // not every bench reads memory
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time (user + system) of this process's waited-for children so far
/// (`getrusage(RUSAGE_CHILDREN)`), in seconds: a pgbench run's own CPU,
/// read before and after it.
#[allow(dead_code)] // not every bench reads it
pub fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The whole machine's counters from `/proc/stat`: busy and total CPU
/// time in seconds (all cores) and context switches so far.
#[allow(dead_code)] // not every bench reads it
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineStat {
    /// CPU time not idle nor waiting for I/O, summed over all cores.
    pub busy: f64,
    /// All CPU time, summed over all cores.
    pub total: f64,
    /// Context switches since boot.
    pub ctxt: u64,
}

/// Reads `/proc/stat`; `None` if it cannot be read.
#[allow(dead_code)] // not every bench reads it
pub fn machine_stat() -> Option<MachineStat> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))?
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let total: u64 = cpu.iter().take(8).sum();
    let idle = cpu.get(3)? + cpu.get(4)?;
    let ctxt = stat
        .lines()
        .find_map(|l| l.strip_prefix("ctxt "))?
        .trim()
        .parse()
        .ok()?;
    Some(MachineStat {
        busy: (total - idle) as f64 / hz,
        total: total as f64 / hz,
        ctxt,
    })
}

/// CPU time `pid` and all its children have used so far, in seconds: its
/// own, that of the children it has reaped (cutime + cstime) and that of
/// the live ones. For the postmaster: PostgreSQL's whole CPU, exited and
/// pooled (long-lived) backends alike.
#[allow(dead_code)] // not every bench reads it
pub fn cpu_with_children(pid: u32) -> Option<f64> {
    let live: f64 = child_pids(pid).into_iter().filter_map(cpu_seconds).sum();
    Some(cpu_with_reaped_children(pid)? + live)
}

/// The processes whose parent is `parent`.
fn child_pids(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// CPU time `pid` has used plus that of its children it has reaped
/// (utime + stime + cutime + cstime from `/proc/PID/stat`), in seconds.
fn cpu_with_reaped_children(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11..15]
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}

/// Voluntary plus involuntary context switches of all threads of `pid`.
#[allow(dead_code)] // not every bench reads it
pub fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}
