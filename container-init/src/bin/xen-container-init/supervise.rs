//! PID 1 while the container runs, and the end of it:
//!
//! ```text
//!   Running --(stop request: SIGTERM, SIGPWR, SIGRTMIN+4/+5)--> Stopping --(stop_timeout)--> Killed
//!      |                                                           |                           |
//!      +---------------------- entrypoint reaped -----------------+---------------------------+--> Exited(status)
//! ```
//!
//! Every wake-up reaps every child (orphans are reparented to PID 1), forwards the signals in
//! [`FORWARDED`](crate::signals::FORWARDED) to the entrypoint, and acts on stop requests: the
//! first sends the entrypoint SIGTERM, and SIGKILL follows when `stop_timeout_secs` have passed.
//! Once the entrypoint is gone, [`kill_everything`] ends what is left.

use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};

use crate::console::say;
use crate::signals::{Action, Signals};
use xen_container_init::Termination;

/// Where the stop stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    Stopping { kill_at: Instant },
    Killed,
}

/// How the container ended and what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub termination: Termination,
    pub action: Action,
}

/// Supervises the entrypoint `child` until it is reaped.
pub fn supervise(signals: &Signals, child: Pid, stop_timeout: Duration) -> Outcome {
    let mut stop = Stop::Running;
    let mut action = Action::PowerOff;
    loop {
        if let Some(termination) = reap(Some(child)) {
            return Outcome { termination, action };
        }
        for sig in signals.take_forwarded() {
            let _ = rustix::process::kill_process(child, sig);
        }
        if let Some(requested) = signals.take_stop() {
            if requested == Action::Reboot {
                action = Action::Reboot;
            }
            if stop == Stop::Running {
                say(format!("stopping the container (SIGTERM, SIGKILL after {}s)", stop_timeout.as_secs()));
                let _ = rustix::process::kill_process(child, Signal::TERM);
                stop = Stop::Stopping { kill_at: Instant::now() + stop_timeout };
            }
        }
        let mut timeout = None;
        if let Stop::Stopping { kill_at } = stop {
            let now = Instant::now();
            if now >= kill_at {
                say("stop timeout: SIGKILL");
                let _ = rustix::process::kill_process(child, Signal::KILL);
                stop = Stop::Killed;
            } else {
                timeout = Some(kill_at - now);
            }
        }
        signals.wait(timeout);
    }
}

/// Reaps every child that has ended; returns how `watched` ended if it was among them.
fn reap(watched: Option<Pid>) -> Option<Termination> {
    let mut found = None;
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                if Some(pid) == watched {
                    found = Some(termination(status));
                }
            }
            Ok(None) | Err(Errno::CHILD) => return found,
            Err(Errno::INTR) => {}
            Err(e) => {
                say(format!("waitpid: {e}"));
                return found;
            }
        }
    }
}

fn termination(status: WaitStatus) -> Termination {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => Termination::Exited(code),
        (None, Some(sig)) => Termination::Signaled(sig),
        (None, None) => Termination::Exited(255),
    }
}

/// Whether PID 1 has any child left.
fn has_children() -> bool {
    !matches!(rustix::process::wait(WaitOptions::NOHANG), Err(Errno::CHILD))
}

/// Ends every other process: SIGTERM, up to `grace` for them to go, then SIGKILL (and a little
/// longer to reap them). Every process is PID 1's descendant, so "no children left" is "all
/// gone".
pub fn kill_everything(signals: &Signals, grace: Duration) {
    for (sig, wait) in [(Signal::TERM, grace), (Signal::KILL, Duration::from_secs(5))] {
        let _ = nix_kill_all(sig);
        let deadline = Instant::now() + wait;
        loop {
            reap(None);
            if !has_children() {
                return;
            }
            match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => signals.wait(Some(left)),
                _ => break,
            }
        }
    }
    say("processes left after SIGKILL");
}

/// kill(-1, sig): every process but PID 1 (in PID 1's namespace).
fn nix_kill_all(sig: Signal) -> Result<(), String> {
    let sig = nix::sys::signal::Signal::try_from(sig.as_raw()).map_err(|e| e.to_string())?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(-1), sig).map_err(|e| e.to_string())
}
