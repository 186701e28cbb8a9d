//! The process that stops a cluster and removes its directory when its
//! owner goes away.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::runner::Runner;
use super::util::{describe, io_err};
use super::Result;

pub(super) const WATCHDOG_TIMEOUT: Duration = Duration::from_secs(30);

/// Blocks until stdin reaches EOF (the owning [`DevDb`] was dropped or its process died), then
/// runs the stop command given as arguments and removes the cluster's directory.
pub(super) const WATCHDOG_SCRIPT: &str = r#"dir=$1
shift
trap '' HUP INT
while read -r line; do :; done
"$@" >/dev/null 2>&1
rm -rf -- "$dir"
"#;
/// Stops the server and removes the cluster's directory once its stdin pipe closes.
#[derive(Debug)]
pub(super) struct Watchdog {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    dir: PathBuf,
}

impl Watchdog {
    pub(super) fn spawn(runner: &Runner, bindir: &Path, dir: &Path) -> Result<Watchdog> {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("copyguard-devdb-watchdog")
            .arg(dir)
            .args(runner.argv(&bindir.join("pg_ctl")))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-m", "immediate", "-w", "-t", "20", "stop"])
            .env("LC_ALL", "C")
            .current_dir("/")
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| io_err(format!("spawning the watchdog `{}`", describe(&cmd)), e))?;
        let stdin = child.stdin.take();
        Ok(Watchdog {
            child: Some(child),
            stdin,
            dir: dir.to_path_buf(),
        })
    }

    /// Closes the pipe and waits (bounded) for the watchdog to finish cleaning up.
    pub(super) fn shutdown(&mut self) {
        drop(self.stdin.take());
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + WATCHDOG_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        "devdb watchdog still busy after {WATCHDOG_TIMEOUT:?}; not waiting longer"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        error = %e,
                        "waiting for the devdb watchdog failed"
                    );
                    return;
                }
            }
        }
    }
}
