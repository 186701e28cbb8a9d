//! Running the server programs, as the `postgres` OS user when root.

use std::ffi::{CString, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::bindir::{is_executable, which};
use super::util::io_err;
use super::{DevDbError, Result, SERVER_OS_USER};

/// Runs programs directly, or as the `postgres` OS user through `runuser` when we are root.
pub(super) struct Runner {
    user: Option<OsUser>,
}

struct OsUser {
    name: &'static str,
    uid: u32,
    gid: u32,
    runuser: PathBuf,
}

impl Runner {
    pub(super) fn detect() -> Result<Runner> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(Runner { user: None });
        }
        let (uid, gid) = lookup_user(SERVER_OS_USER)?;
        let runuser = which("runuser")
            .or_else(|| {
                ["/usr/sbin/runuser", "/sbin/runuser"]
                    .into_iter()
                    .map(PathBuf::from)
                    .find(|p| is_executable(p))
            })
            .ok_or_else(|| DevDbError::ServerUser {
                user: SERVER_OS_USER.to_owned(),
                reason: "`runuser` not found on PATH, /usr/sbin or /sbin".to_owned(),
            })?;
        Ok(Runner {
            user: Some(OsUser {
                name: SERVER_OS_USER,
                uid,
                gid,
                runuser,
            }),
        })
    }

    /// The argument vector running `program` as the server's OS user.
    pub(super) fn argv(&self, program: &Path) -> Vec<OsString> {
        match &self.user {
            Some(user) => vec![
                user.runuser.clone().into(),
                "-u".into(),
                user.name.into(),
                "--".into(),
                program.into(),
            ],
            None => vec![program.into()],
        }
    }

    pub(super) fn command(&self, program: &Path) -> Command {
        let argv = self.argv(program);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).env("LC_ALL", "C");
        cmd
    }

    pub(super) fn chown(&self, path: &Path) -> Result<()> {
        match &self.user {
            Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                .map_err(|e| io_err(format!("chown {} to {}", path.display(), user.name), e)),
            None => Ok(()),
        }
    }
}

/// The uid and gid of OS user `name`.
pub(super) fn lookup_user(name: &str) -> Result<(u32, u32)> {
    let unusable = |reason: String| DevDbError::ServerUser {
        user: name.to_owned(),
        reason,
    };
    let c_name = CString::new(name).map_err(|_| unusable("the name contains NUL".to_owned()))?;
    let mut buf_len = 1024;
    loop {
        let mut buf: Vec<libc::c_char> = vec![0; buf_len];
        // SAFETY: passwd is a plain C struct for which all-zero bytes are a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to live memory of the advertised size; `pwd` only borrows
        // from `buf`, and we copy the ids out before either goes away.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf_len < 1 << 20 {
            buf_len *= 4;
            continue;
        }
        if rc != 0 {
            return Err(unusable(format!(
                "looking it up failed: {}",
                io::Error::from_raw_os_error(rc)
            )));
        }
        if result.is_null() {
            return Err(unusable(
                "no such user (install the `postgresql` package or create it)".to_owned(),
            ));
        }
        return Ok((pwd.pw_uid, pwd.pw_gid));
    }
}
