//! PID 1's signals: each one it handles sets its own flag, and every one of them (and SIGCHLD)
//! also writes a byte to a socket pair, so the supervision loop sleeps in `poll` on one fd,
//! with a deadline when a stop is under way, and never misses a signal that arrives between a
//! check and the sleep.
//!
//! The requests, besides SIGTERM (stop, then power off): SIGPWR or SIGRTMIN+4 power off,
//! SIGRTMIN+5 reboots (systemd's numbers for the last two). `poweroff` and `reboot`, the
//! kernel's usermode helpers for a Xen shutdown request, send SIGPWR and SIGRTMIN+5.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::Signal;
use rustix_libc_wrappers::process::SignalExt;

/// Signals PID 1 passes on to the entrypoint as they come.
pub const FORWARDED: [Signal; 6] = [Signal::HUP, Signal::INT, Signal::QUIT, Signal::USR1, Signal::USR2, Signal::WINCH];

/// What the domain was asked to do once the container is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    PowerOff,
    Reboot,
}

/// The signal `poweroff` sends to PID 1.
pub fn poweroff_signal() -> Signal {
    Signal::POWER
}

/// The signal `reboot` sends to PID 1: SIGRTMIN+5 (falls back to SIGPWR if the C library's
/// range could not hold it, which no Linux libc does).
pub fn reboot_signal() -> Signal {
    Signal::rt(5).unwrap_or(Signal::POWER)
}

/// The registered handlers.
#[derive(Debug)]
pub struct Signals {
    wake: UnixStream,
    forwarded: Vec<(Signal, Arc<AtomicBool>)>,
    stop: Vec<(Action, Arc<AtomicBool>)>,
}

impl Signals {
    /// Installs the handlers (before anything is spawned, so nothing is lost).
    pub fn install() -> std::io::Result<Signals> {
        let (wake, wake_writer) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_writer.set_nonblocking(true)?;
        let register = |sig: Signal| -> std::io::Result<Arc<AtomicBool>> {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(sig.as_raw(), Arc::clone(&flag))?;
            signal_hook::low_level::pipe::register(sig.as_raw(), wake_writer.try_clone()?)?;
            Ok(flag)
        };
        let mut forwarded = Vec::new();
        for sig in FORWARDED {
            forwarded.push((sig, register(sig)?));
        }
        let mut stop = vec![(Action::PowerOff, register(Signal::TERM)?), (Action::PowerOff, register(Signal::POWER)?)];
        if let Some(sig) = Signal::rt(4) {
            stop.push((Action::PowerOff, register(sig)?));
        }
        stop.push((Action::Reboot, register(reboot_signal())?));
        signal_hook::low_level::pipe::register(Signal::CHILD.as_raw(), wake_writer)?;
        Ok(Signals { wake, forwarded, stop })
    }

    /// The forwarded signals that arrived since the last call.
    pub fn take_forwarded(&self) -> Vec<Signal> {
        self.forwarded.iter().filter(|(_, f)| f.swap(false, Ordering::SeqCst)).map(|(s, _)| *s).collect()
    }

    /// A stop request that arrived since the last call (a reboot wins over a power off).
    pub fn take_stop(&self) -> Option<Action> {
        let mut action = None;
        for (a, flag) in &self.stop {
            if flag.swap(false, Ordering::SeqCst) && action != Some(Action::Reboot) {
                action = Some(*a);
            }
        }
        action
    }

    /// Sleeps until a signal arrives or `timeout` passes (`None`: no deadline).
    pub fn wait(&self, timeout: Option<Duration>) {
        let ts = timeout.map(|t| Timespec { tv_sec: t.as_secs() as i64, tv_nsec: i64::from(t.subsec_nanos()) });
        let mut fds = [PollFd::new(&self.wake, PollFlags::IN)];
        let _ = rustix::event::poll(&mut fds, ts.as_ref());
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.wake).read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
}

/// `poweroff`/`reboot`: asks PID 1 to stop the container and then do `action`.
/// Only when PID 1 runs this same binary: on a host, SIGRTMIN+5 to systemd would reboot it.
pub fn request(action: Action) -> i32 {
    use std::os::unix::fs::MetadataExt;
    let ident = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    if ident("/proc/1/exe").is_none() || ident("/proc/1/exe") != ident("/proc/self/exe") {
        crate::console::say("PID 1 is not xen-container-init: not signalling it");
        return 1;
    }
    let sig = match action {
        Action::PowerOff => poweroff_signal(),
        Action::Reboot => reboot_signal(),
    };
    match rustix::process::Pid::from_raw(1).map(|init| rustix::process::kill_process(init, sig)) {
        Some(Ok(())) => 0,
        Some(Err(e)) => {
            crate::console::say(format!("signal init: {e}"));
            1
        }
        None => 1,
    }
}
