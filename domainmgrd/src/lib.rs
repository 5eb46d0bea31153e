//! domainmgrd, the dom0 domain manager daemon, as a library: the binary (`main.rs`) is a thin
//! shell around [`supervisor::Daemon`], and tests and benchmarks drive the same code against
//! [`sim::SimHypervisor`].
//!
//! Data flow: EVE `DomainConfig` files → [`watcher`] → [`supervisor`] → one [`domain`] thread
//! per domain → hypervisor calls through the [`hypervisor::Hypervisor`] trait, and
//! `DomainStatus` files out. Safe Rust only.

#![forbid(unsafe_code)]

pub mod adapters;
pub mod agent;
pub mod cloudinit;
pub mod configfile;
pub mod console;
pub mod container;
pub mod control;
pub mod diskcopies;
pub mod diskformat;
pub mod domain;
pub mod eve;
pub mod files;
pub mod getty;
pub mod hostcfg;
pub mod hoststate;
pub mod hypervisor;
pub mod images;
pub mod metrics;
pub mod migration;
pub mod native;
pub mod prometheus;
pub mod records;
pub mod serve;
pub mod settings;
pub mod sim;
pub mod supervisor;
pub mod translate;
pub mod watcher;
pub mod xlconf;

/// Spawns `command`, trying again for a moment while its program is busy (ETXTBSY): its file
/// is open for writing somewhere for an instant: just written (a package upgrade, a test), with
/// a child of another thread of this process forked before that descriptor was closed and not
/// yet exec'd. It passes; so does a try.
pub fn spawn_when_not_busy(command: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    let mut busy_tries = 0;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error()) && busy_tries < 20 => {
                busy_tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// An error and its sources as one line: "outer: inner: innermost".
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Tests only: waits up to 10 s for `f`, failing the test with `what` if it never holds.
#[cfg(test)]
pub(crate) fn test_wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Tests only (unit and integration): helpers that must not live twice.
#[doc(hidden)]
pub mod testing {
    use std::path::Path;

    /// Writes an executable script at `path` that a test then runs (or has the daemon run).
    ///
    /// Not `fs::write` then `chmod`: while this process holds the file open for writing,
    /// another test thread may fork, and its child keeps a copy of that descriptor until it
    /// execs. Running the script meanwhile fails with ETXTBSY ("Text file busy"), as it did in
    /// CI. `install` writes the file in a process of its own, which has exited before this
    /// returns, so no descriptor open for writing is ever left in this process's children.
    pub fn write_script(path: &Path, text: &str) {
        let staged = path.with_extension("staged");
        let written = std::fs::write(&staged, text)
            .and_then(|()| std::process::Command::new("install").arg("-m755").arg(&staged).arg(path).status())
            .and_then(|status| match status.success() {
                true => std::fs::remove_file(&staged),
                false => Err(std::io::Error::other(format!("install exited with {status}"))),
            });
        if let Err(e) = written {
            panic!("cannot write the script {}: {e}", path.display());
        }
    }
}
