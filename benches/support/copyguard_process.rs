//! copyguard as a process of its own for the end-to-end benches: the
//! release binary built with the benches (`CARGO_BIN_EXE_copyguard`),
//! serving on a free port of 127.0.0.1, stopped (SIGTERM, then SIGKILL)
//! when dropped. A process of its own competes with the bench's clients no
//! more than pgbouncer does, and its CPU time and memory can be read from
//! `/proc`. `COPYGUARD_BENCH_WRAPPER` (e.g. `valgrind --tool=callgrind`)
//! runs it under a profiler.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// A running copyguard child process.
pub struct CopyguardProcess {
    child: Child,
    port: u16,
}

impl CopyguardProcess {
    /// `copyguard serve` in front of `upstream_port` with `policy` as its
    /// one policy file, its block log and its stderr under `work`.
    #[allow(dead_code)] // not every bench uses it
    pub fn start(work: &Path, upstream_port: u16, policy: &str) -> Result<CopyguardProcess> {
        CopyguardProcess::start_with_env(work, upstream_port, policy, &[])
    }

    /// The same with extra environment variables (runtime settings);
    /// `COPYGUARD_BENCH_BIN` among them runs that binary instead (an older
    /// build, for before/after comparisons in one run).
    pub fn start_with_env(
        work: &Path,
        upstream_port: u16,
        policy: &str,
        env: &[(String, String)],
    ) -> Result<CopyguardProcess> {
        let dir = work.join("policy");
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("bench.toml"), policy)?;
        let port = super::run::free_port()?;
        let log = fs::File::create(work.join("copyguard.log")).context("creating copyguard.log")?;
        let bin = env
            .iter()
            .find(|(k, _)| k == "COPYGUARD_BENCH_BIN")
            .map_or(env!("CARGO_BIN_EXE_copyguard"), |(_, v)| v.as_str());
        let mut cmd = match std::env::var("COPYGUARD_BENCH_WRAPPER") {
            Ok(wrapper) if !wrapper.trim().is_empty() => {
                let mut words = wrapper.split_whitespace();
                let mut cmd = Command::new(words.next().unwrap_or_default());
                cmd.args(words).arg(bin);
                cmd
            }
            _ => Command::new(bin),
        };
        cmd.arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--upstream", &format!("127.0.0.1:{upstream_port}")])
            .args(["--policy", &dir.display().to_string()])
            .args([
                "--audit-path",
                &work.join("audit").join("audit.log").display().to_string(),
            ])
            .args(["--shutdown-timeout", "5s", "--log-level", "warn"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting `{}`", super::run::describe(&cmd)))?;
        let mut proxy = CopyguardProcess { child, port };
        super::run::wait_listening(&mut proxy.child, port, Duration::from_secs(120)).with_context(
            || {
                format!(
                    "copyguard did not start: {}",
                    fs::read_to_string(work.join("copyguard.log")).unwrap_or_default()
                )
            },
        )?;
        println!("copyguard (process {}) on 127.0.0.1:{port}", proxy.pid());
        Ok(proxy)
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for CopyguardProcess {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our
        // own child, not yet waited for.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
