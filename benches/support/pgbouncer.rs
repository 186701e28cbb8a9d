//! pgbouncer in session mode as a child process of the end-to-end benches.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use super::run::{describe, free_port, run_with_timeout, wait_listening};

const PGBOUNCER_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// pgbouncer in session mode in front of the cluster, run as a child
/// process (as the `postgres` OS user when running as root).
pub struct PgBouncer {
    child: Child,
    /// The port clients connect to.
    pub port: u16,
    /// What `pgbouncer --version` says.
    pub version: String,
}

impl PgBouncer {
    /// Starts pgbouncer for `database` on `upstream_port`, its files under `dir`.
    pub fn start(
        dir: &Path,
        upstream_port: u16,
        database: &str,
        max_clients: u32,
    ) -> Result<PgBouncer> {
        let bin = find_pgbouncer().ok_or_else(|| {
            anyhow!("no pgbouncer on PATH or in /usr/sbin (benches/run-pgbench.sh installs it)")
        })?;
        let version =
            run_with_timeout(Command::new(&bin).arg("--version"), Duration::from_secs(10))?
                .lines()
                .next()
                .unwrap_or("pgbouncer")
                .to_owned();

        let port = free_port()?;
        let userlist = dir.join("userlist.txt");
        let ini = dir.join("pgbouncer.ini");
        let log = dir.join("pgbouncer.log");
        fs::write(&userlist, "\"postgres\" \"\"\n").context("writing userlist.txt")?;
        fs::write(
            &ini,
            format!(
                "[databases]\n\
                 {database} = host=127.0.0.1 port={upstream_port} dbname={database}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {}\n\
                 pool_mode = session\n\
                 max_client_conn = {max_clients}\n\
                 default_pool_size = 20\n",
                userlist.display()
            ),
        )
        .context("writing pgbouncer.ini")?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .context("making the pgbouncer directory readable")?;

        let log_file = fs::File::create(&log).context("creating pgbouncer.log")?;
        let mut cmd = Command::new(&bin);
        cmd.arg(&ini)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let (uid, gid) = postgres_ids()?;
            cmd.uid(uid).gid(gid);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting `{}`", describe(&cmd)))?;
        let mut bouncer = PgBouncer {
            child,
            port,
            version,
        };
        bouncer.wait_ready(&log)?;
        Ok(bouncer)
    }

    fn wait_ready(&mut self, log: &Path) -> Result<()> {
        wait_listening(&mut self.child, self.port, PGBOUNCER_READY_TIMEOUT).with_context(|| {
            format!(
                "pgbouncer not ready: {}",
                fs::read_to_string(log).unwrap_or_default().trim()
            )
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_pgbouncer() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join("pgbouncer"))
        .find(|p| p.is_file())
}

/// Uid and gid of the `postgres` OS user.
fn postgres_ids() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = run_with_timeout(
            Command::new("id").args([flag, "postgres"]),
            Duration::from_secs(10),
        )?;
        out.trim()
            .parse()
            .with_context(|| format!("parsing `id {flag} postgres` output {out:?}"))
    };
    Ok((id("-u")?, id("-g")?))
}
