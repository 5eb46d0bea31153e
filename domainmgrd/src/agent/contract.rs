//! EVE's agent contract outside pubsub: the pid file `<run-root>/domainmgr.pid` (the pid in
//! decimal, mode 0644, as EVE's `pidfile` package writes it) and the touch file
//! `<run-root>/domainmgr.touch`, whose modification time EVE's watchdog checks (it warns after
//! 40 s without a touch and reboots the node much later). The supervisor's loop touches it, so
//! a touch means the loop is alive, not merely that some timer fired.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// EVE's agent name for the domain manager.
pub const AGENT: &str = "domainmgr";

/// How often the touch file is refreshed: well within EVE's 40 s warning.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(10);

/// The agent's files in the run root.
#[derive(Debug)]
pub struct AgentFiles {
    touch: PathBuf,
    pid: PathBuf,
    last_touch: Option<Instant>,
}

impl AgentFiles {
    /// The files `<run_root>/domainmgr.{pid,touch}`.
    pub fn new(run_root: &Path) -> AgentFiles {
        AgentFiles {
            touch: run_root.join(format!("{AGENT}.touch")),
            pid: run_root.join(format!("{AGENT}.pid")),
            last_touch: None,
        }
    }

    /// Writes the pid file (the daemon holds its lock: any earlier pid file is stale).
    pub fn write_pid(&self) -> io::Result<()> {
        crate::files::write_atomic(&self.pid, std::process::id().to_string().as_bytes())
    }

    /// Refreshes the touch file if [`TOUCH_INTERVAL`] has passed since the last time.
    pub fn touch_if_due(&mut self) {
        if self.last_touch.is_some_and(|t| t.elapsed() < TOUCH_INTERVAL) {
            return;
        }
        self.last_touch = Some(Instant::now());
        if let Err(e) = touch(&self.touch) {
            log::error!("cannot touch {} (EVE's watchdog reads it): {e}", self.touch.display());
        }
    }

    /// The touch file's path.
    pub fn touch_path(&self) -> &Path {
        &self.touch
    }
}

fn touch(path: &Path) -> io::Result<()> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    file.set_modified(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_and_touch_files_are_where_eve_looks() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = AgentFiles::new(dir.path());
        files.write_pid().unwrap();
        let pid = std::fs::read_to_string(dir.path().join("domainmgr.pid")).unwrap();
        assert_eq!(pid, std::process::id().to_string(), "decimal, no newline (EVE's strconv.Atoi)");
        files.touch_if_due();
        let first = std::fs::metadata(dir.path().join("domainmgr.touch")).unwrap().modified().unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options().write(true).open(files.touch_path()).unwrap().set_modified(old).unwrap();
        files.touch_if_due(); // not due yet: left alone
        let kept = std::fs::metadata(files.touch_path()).unwrap().modified().unwrap();
        assert_eq!(kept, old);
        files.last_touch = Some(Instant::now() - TOUCH_INTERVAL);
        files.touch_if_due();
        let again = std::fs::metadata(files.touch_path()).unwrap().modified().unwrap();
        assert!(again >= first, "touched again once due");
    }
}
