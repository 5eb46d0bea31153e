//! EVE's `debug.enable.console` (its `ConsoleAccess`, default true): a login on the host's
//! console while it is true, none while false, as EVE's domainmgr starts and stops its getty
//! script. The getty is the operator's command (`--getty-command`, run with `sh -c`; on EVE,
//! its `rungetty.sh` in the host's root); without one the setting changes nothing. As in EVE,
//! a getty the host's init started (`getty` on the kernel command line) is left alone.
//!
//! The command runs in a process group of its own; stopping it sends that group SIGUSR1, the
//! signal EVE's script takes as "stop" (a plain getty dies of it). A thread reaps it.

use std::process::Command;

/// The console getty as the setting wants it.
#[derive(Debug)]
pub struct Getty {
    command: Option<String>,
    by_init: bool,
    /// The running command's process group, if we started it.
    group: Option<rustix::process::Pid>,
}

impl Getty {
    /// A getty run by `command` (none: the setting is only accepted), on a host booted with
    /// the kernel command line `cmdline` (`/proc/cmdline`).
    pub fn new(command: Option<String>, cmdline: &str) -> Getty {
        let by_init = cmdline.split_whitespace().any(|w| w == "getty");
        Getty { command, by_init, group: None }
    }

    /// The host's own kernel command line.
    pub fn host_cmdline() -> String {
        std::fs::read_to_string("/proc/cmdline").unwrap_or_default()
    }

    /// Starts or stops the getty as `enable` (the setting's value) says.
    pub fn apply(&mut self, enable: bool) {
        let Some(command) = &self.command else { return };
        if self.by_init {
            log::debug!("debug.enable.console = {enable}: the host's init runs the console getty");
            return;
        }
        if self.group.is_some_and(|g| !alive(g)) {
            self.group = None;
        }
        match (enable, self.group) {
            (true, None) => {
                use std::os::unix::process::CommandExt;
                match Command::new("sh").arg("-c").arg(command).process_group(0).spawn() {
                    Ok(mut child) => {
                        self.group = rustix::process::Pid::from_raw(child.id() as i32);
                        log::info!("debug.enable.console: the console getty runs ({command})");
                        let _ = std::thread::Builder::new().name("getty-reaper".into()).spawn(move || child.wait());
                    }
                    Err(e) => log::error!("debug.enable.console: cannot run {command:?}: {e}"),
                }
            }
            (false, Some(group)) => {
                match rustix::process::kill_process_group(group, rustix::process::Signal::USR1) {
                    Ok(()) => log::info!("debug.enable.console = false: the console getty is stopped"),
                    Err(e) => log::error!("debug.enable.console = false: cannot stop the console getty: {e}"),
                }
                self.group = None;
            }
            _ => {}
        }
    }
}

/// Whether a process group still has a member.
fn alive(group: rustix::process::Pid) -> bool {
    rustix::process::test_kill_process_group(group).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_wait_for as wait_for;
    use std::time::Duration;

    #[test]
    fn the_getty_runs_while_the_setting_is_true_and_stops_on_usr1() {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("runs");
        let script = format!("trap 'rm -f {0}; exit 0' USR1; touch {0}; while :; do sleep 0.05; done", mark.display());
        let mut g = Getty::new(Some(script.clone()), "root=/dev/sda1 quiet");
        g.apply(true);
        wait_for("the getty to start", || mark.exists());
        g.apply(true); // already running: not a second one
        assert!(g.group.is_some());
        g.apply(false);
        wait_for("the getty to stop", || !mark.exists());
        g.apply(true);
        wait_for("the getty to start again", || mark.exists());
        g.apply(false);
        wait_for("the getty to stop again", || !mark.exists());

        // One the host's init runs is left alone; without a command nothing runs.
        let mut by_init = Getty::new(Some(script), "root=/dev/sda1 getty");
        by_init.apply(true);
        std::thread::sleep(Duration::from_millis(200));
        assert!(!mark.exists() && by_init.group.is_none());
        let mut none = Getty::new(None, "");
        none.apply(true);
        assert!(none.group.is_none());
    }
}
