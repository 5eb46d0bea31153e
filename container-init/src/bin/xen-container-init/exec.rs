//! Starting the entrypoint. PID 1 cannot run code between `fork` and `exec` without `unsafe`
//! (and std's `Command` cannot set supplementary groups or a session), so it spawns itself
//! (`/proc/self/exe --exec-entrypoint <plan>`, with the container's environment) and this
//! fresh, single-threaded process does the rest before `exec`: chroot into the container's
//! root, new session, the console as controlling terminal and standard streams, groups, gid,
//! uid, working directory. PID 1 spawns it from the real root (a dynamically linked build, as
//! in the tests, needs its loader) and the helper enters the chroot itself. Failures end it
//! with 126 (or 127 when the program is missing), as a shell would.

use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::process::{Gid, Uid};
use serde::{Deserialize, Serialize};

/// The flag that makes the binary this helper.
pub const FLAG: &str = "--exec-entrypoint";

/// What the helper does, passed as JSON in its argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecPlan {
    /// The container's root, as seen from the real root.
    pub root: String,
    pub path: String,
    pub argv: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// Make /dev/console the controlling terminal and standard streams (the guest); otherwise
    /// keep the inherited streams (test mode).
    pub console: bool,
}

impl ExecPlan {
    /// The command that runs the helper with this plan and exactly `env`.
    pub fn command(&self, env: &[String]) -> Result<Command, String> {
        let json = serde_json::to_string(self).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg0("xen-container-init").arg(FLAG).arg(json).env_clear();
        for e in env {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
        Ok(cmd)
    }
}

/// The helper's main: never returns.
pub fn run(plan_json: &str) -> ! {
    let error = match serde_json::from_str::<ExecPlan>(plan_json) {
        Ok(plan) => exec(&plan),
        Err(e) => (126, format!("bad plan: {e}")),
    };
    crate::console::say(error.1);
    std::process::exit(error.0)
}

fn exec(plan: &ExecPlan) -> (i32, String) {
    if let Err(e) = rustix::process::chroot(plan.root.as_str()).and_then(|()| rustix::process::chdir("/")) {
        return (126, format!("chroot {}: {e}", plan.root));
    }
    if let Err(e) = rustix::process::setsid() {
        return (126, format!("setsid: {e}"));
    }
    if plan.console
        && let Err(e) = take_console()
    {
        return (126, e);
    }
    let groups: Vec<Gid> = plan.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    // The raw syscalls change only this thread: this process has only one.
    if let Err(e) = rustix::thread::set_thread_groups(&groups) {
        return (126, format!("setgroups: {e}"));
    }
    if let Err(e) =
        rustix::thread::set_thread_res_gid(Gid::from_raw(plan.gid), Gid::from_raw(plan.gid), Gid::from_raw(plan.gid))
    {
        return (126, format!("setgid {}: {e}", plan.gid));
    }
    if let Err(e) =
        rustix::thread::set_thread_res_uid(Uid::from_raw(plan.uid), Uid::from_raw(plan.uid), Uid::from_raw(plan.uid))
    {
        return (126, format!("setuid {}: {e}", plan.uid));
    }
    if let Err(e) = rustix::process::chdir(plan.cwd.as_str()) {
        return (126, format!("chdir {}: {e}", plan.cwd));
    }
    let Some((argv0, args)) = plan.argv.split_first() else { return (126, "empty argv".to_string()) };
    let e = Command::new(&plan.path).arg0(argv0).args(args).exec();
    let code = if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
    (code, format!("exec {}: {e}", plan.path))
}

fn take_console() -> Result<(), String> {
    let console = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/console")
        .map_err(|e| format!("open /dev/console: {e}"))?;
    rustix::process::ioctl_tiocsctty(&console).map_err(|e| format!("console as controlling terminal: {e}"))?;
    rustix::stdio::dup2_stdin(&console).map_err(|e| e.to_string())?;
    rustix::stdio::dup2_stdout(&console).map_err(|e| e.to_string())?;
    rustix::stdio::dup2_stderr(&console).map_err(|e| e.to_string())?;
    Ok(())
}
