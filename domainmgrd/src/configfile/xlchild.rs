//! The daemon's side of parsing xl.cfg bytes: [`XlParser::parse`] runs the helper binary
//! (`domainmgrd-xlparse`, see `xlhelper.rs`) on them and reads its JSON answer. The helper
//! limits its own memory and CPU time; this side bounds the wall-clock time (killing and
//! reaping a helper that takes longer) and how much of its output it keeps, and turns a
//! crash, a kill by a limit or a timeout into an error naming the file and what happened.
//!
//! One helper per file, so no parse ever sees another's state. The daemon keeps one started
//! ahead ([`XlParser::with_spare`]): a helper's start (loading libxenlight and the Xen
//! libraries under it) was a third of a create's time in a dom0 under load, and a spare has
//! done it before the file comes. The spare waits on its stdin, using no CPU; should the
//! daemon die, its stdin closes and it exits.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xenctl::{HostCpus, XlConfigFile};

use super::xlhelper::{HELPER_NAME, HOST_CPUS_ARG, LIMITS, Reply};
use super::{Size, XL_CFG};

/// The most of the helper's reply kept: a spec's JSON is a few KiB. (A file at the size cap
/// made of nothing but tens of thousands of tiny disk specs could describe more: it is
/// refused rather than read.)
const MAX_REPLY_BYTES: u64 = 16 << 20;

/// How much of the helper's stderr (an assertion message, a panic) goes into an error.
const MAX_STDERR_BYTES: u64 = 4 << 10;

/// Where the helper is installed by the Debian package.
const PACKAGED_HELPER: &str = "/usr/libexec/domainmgrd/domainmgrd-xlparse";

/// The helper beside the running executable (a build tree, or binaries copied together),
/// else the packaged one.
pub fn default_helper() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(HELPER_NAME)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(PACKAGED_HELPER))
}

/// Parses xl.cfg bytes in a child process, the helper binary.
#[derive(Debug, Clone)]
pub struct XlParser {
    helper: PathBuf,
    timeout: Duration,
    host: Option<HostCpus>,
    /// With [`with_spare`](Self::with_spare): the helper started ahead, shared by the clones.
    spare: Option<Arc<Spare>>,
}

/// A helper started ahead of its file, waiting on its stdin. Killed (and reaped) when the
/// last parser that could use it goes.
#[derive(Debug, Default)]
struct Spare(parking_lot::Mutex<Option<Child>>);

impl Drop for Spare {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.get_mut().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Default for XlParser {
    /// The [`default_helper`], 10 s.
    fn default() -> XlParser {
        XlParser::new(default_helper())
    }
}

impl XlParser {
    /// A parser that runs `helper`, allowing it 10 s of wall-clock time (its CPU-time limit is
    /// 2 s: the rest is room for a loaded host).
    pub fn new(helper: impl Into<PathBuf>) -> XlParser {
        XlParser { helper: helper.into(), timeout: Duration::from_secs(10), host: None, spare: None }
    }

    /// The same, reading CPU lists on this host (`cpus = "all"`, `nodes:N`) as xl reads them
    /// there; without it `all` is no pinning and node lists are refused. (A spare started
    /// for another host is not used.)
    pub fn with_host(self, host: Option<HostCpus>) -> XlParser {
        let spare = self.spare.as_ref().map(|_| Arc::default());
        XlParser { host, spare, ..self }
    }

    /// The same, keeping one helper started ahead of the next file (and starting it now), so
    /// that a parse does not wait for a helper's start. The daemon's parser.
    pub fn with_spare(self) -> XlParser {
        let parser = XlParser { spare: Some(Arc::default()), ..self };
        parser.refill_spare();
        parser
    }

    /// The same, with another wall-clock limit.
    pub fn with_timeout(self, timeout: Duration) -> XlParser {
        XlParser { timeout, ..self }
    }

    /// The helper it runs.
    pub fn helper(&self) -> &Path {
        &self.helper
    }

    /// Parses the bytes of an xl.cfg file (see [`parse_xl_config`](super::parse_xl_config)),
    /// in a child; `source` names it in errors. xenctl's warnings are logged here.
    pub fn parse(&self, source: &str, bytes: &[u8]) -> Result<XlConfigFile, String> {
        self.try_parse(source, bytes).map_err(|e| e.to_string())
    }

    /// [`parse`](Self::parse), telling the file's own errors (the same bytes always give them)
    /// from the helper's failures (it could not run, crashed, hit a limit or the deadline),
    /// which a later try may not repeat.
    pub fn try_parse(&self, source: &str, bytes: &[u8]) -> Result<XlConfigFile, XlParseError> {
        if bytes.len() as u64 > XL_CFG.max_bytes {
            // The helper would refuse it too; no need to start one.
            return super::parse_xl_config_on(source, bytes, self.host.as_ref()).map_err(XlParseError::File);
        }
        let reply = self.run(source, bytes);
        self.refill_spare();
        let reply = reply.map_err(|e| XlParseError::Helper(format!("{source}: {e}")))?;
        for warning in &reply.warnings {
            log::warn!("{warning}");
        }
        reply.result.map_err(XlParseError::File)
    }

    /// A started helper: the spare if there is a live one, else a new one. (The next spare
    /// starts once this parse is done: its start would compete with the parse.)
    fn helper_child(&self) -> Result<Child, String> {
        // One that has exited already (killed, or the helper was broken when it started) is
        // reaped here and not used.
        let spare = self.spare.as_ref().and_then(|spare| spare.0.lock().take());
        let live = spare.and_then(|mut child| matches!(child.try_wait(), Ok(None)).then_some(child));
        live.map_or_else(|| self.start(), Ok)
    }

    fn refill_spare(&self) {
        let Some(spare) = &self.spare else { return };
        let mut slot = spare.0.lock();
        if slot.is_none() {
            match self.start() {
                Ok(child) => *slot = Some(child),
                Err(e) => log::debug!("no spare xl.cfg parser: {e}"),
            }
        }
    }

    fn start(&self) -> Result<Child, String> {
        let mut command = Command::new(&self.helper);
        if let Some(host) = &self.host {
            let json = serde_json::to_string(host).map_err(|e| format!("the host's CPUs as JSON: {e}"))?;
            command.arg(format!("{HOST_CPUS_ARG}{json}"));
        }
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        crate::spawn_when_not_busy(&mut command)
            .map_err(|e| format!("cannot run the xl.cfg parser {}: {e}", self.helper.display()))
    }

    fn run(&self, source: &str, bytes: &[u8]) -> Result<Reply, String> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut child = self.helper_child()?;
        // Each pipe has its own thread: the helper may stop reading, or never write.
        let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        // The source, a NUL, the file (a source name cannot hold a NUL; a record's name might).
        let mut input = source.replace('\0', "\\0").into_bytes();
        input.push(0);
        input.extend_from_slice(bytes);
        spawn_detached("xlparse-in", move || {
            if let Some(mut stdin) = stdin {
                // A helper that dies first closes the pipe: its exit status says why.
                let _ = stdin.write_all(&input);
            }
        });
        let out = read_in_thread("xlparse-out", stdout, MAX_REPLY_BYTES + 1);
        let err = read_in_thread("xlparse-err", stderr, MAX_STDERR_BYTES);

        let reply = out.recv_deadline(deadline).ok();
        let too_long = reply.as_ref().is_some_and(|r| r.len() as u64 > MAX_REPLY_BYTES);
        if too_long {
            let _ = child.kill();
        }
        let (status, killed) = wait_until(&mut child, deadline)?;
        log::debug!("{source}: xl.cfg parser done in {:.1?}: {status}", started.elapsed());
        let stderr = err.recv_timeout(Duration::from_millis(100)).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
        let said = if stderr.is_empty() { String::new() } else { format!(": {stderr}") };
        if too_long {
            return Err(format!("the xl.cfg parser's answer is larger than {}", Size(MAX_REPLY_BYTES)));
        }
        if killed {
            return Err(format!(
                "the xl.cfg parser took longer than {:?} and was killed (its limits: {}){said}",
                self.timeout,
                LIMITS.describe()
            ));
        }
        if let Some(signal) = status.signal() {
            let name = signal_name(signal).map(|n| format!(" ({n})")).unwrap_or_default();
            let why = if signal == rustix::process::Signal::XCPU.as_raw() {
                format!(": it used up its {} s of CPU time", LIMITS.cpu_seconds)
            } else {
                format!(" (its limits: {})", LIMITS.describe())
            };
            return Err(format!("the xl.cfg parser was killed by signal {signal}{name}{why}{said}"));
        }
        if !status.success() {
            return Err(format!("the xl.cfg parser failed ({status}, its limits: {}){said}", LIMITS.describe()));
        }
        let reply = reply.unwrap_or_default();
        serde_json::from_slice(&reply).map_err(|e| format!("the xl.cfg parser's answer is not one ({e}){said}"))
    }
}

/// Why [`XlParser::try_parse`] gave no config. Each names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XlParseError {
    /// The file is not a usable xl.cfg: the parse said so (the same bytes always give this).
    #[error("{0}")]
    File(String),
    /// The helper failed: it could not run, crashed, hit a limit or the deadline.
    #[error("{0}")]
    Helper(String),
}

/// Waits for the child until `deadline`, then kills it: its status, and whether it was killed.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<(ExitStatus, bool), String> {
    let reap_error = |e| format!("cannot wait for the xl.cfg parser: {e}");
    let mut pause = Duration::from_micros(50);
    loop {
        if let Some(status) = child.try_wait().map_err(reap_error)? {
            return Ok((status, false));
        }
        if Instant::now() >= deadline {
            // Kill, then reap: no zombie is left behind, whatever it was doing.
            let _ = child.kill();
            return child.wait().map(|s| (s, true)).map_err(reap_error);
        }
        // Its output is complete when we get here, so it is exiting: it is reaped within
        // microseconds, unless something is wrong (then the pauses grow, up to 10 ms).
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

fn spawn_detached(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(f) {
        log::error!("cannot start a thread for the xl.cfg parser: {e}");
    }
}

/// Reads up to `max` bytes of `pipe` in a thread and sends them on the channel once it has
/// them all (at the end of the pipe, or `max`), then drains the rest, so that the writer
/// never blocks on it.
fn read_in_thread(
    name: &str,
    pipe: Option<impl Read + Send + 'static>,
    max: u64,
) -> crossbeam_channel::Receiver<Vec<u8>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    spawn_detached(name, move || {
        let mut kept = Vec::new();
        if let Some(pipe) = pipe {
            let mut pipe = pipe.take(max);
            let _ = pipe.read_to_end(&mut kept);
            let _ = tx.send(kept);
            let _ = std::io::copy(&mut pipe.into_inner(), &mut std::io::sink());
        }
    });
    rx
}

/// The name of a signal that ends a process, e.g. `SIGABRT`.
fn signal_name(raw: i32) -> Option<&'static str> {
    use rustix::process::Signal;
    [
        (Signal::ABORT, "SIGABRT"),
        (Signal::KILL, "SIGKILL"),
        (Signal::SEGV, "SIGSEGV"),
        (Signal::BUS, "SIGBUS"),
        (Signal::ILL, "SIGILL"),
        (Signal::FPE, "SIGFPE"),
        (Signal::TRAP, "SIGTRAP"),
        (Signal::XCPU, "SIGXCPU"),
        (Signal::XFSZ, "SIGXFSZ"),
        (Signal::PIPE, "SIGPIPE"),
        (Signal::TERM, "SIGTERM"),
        (Signal::INT, "SIGINT"),
        (Signal::HUP, "SIGHUP"),
        (Signal::SYS, "SIGSYS"),
    ]
    .into_iter()
    .find(|(s, _)| s.as_raw() == raw)
    .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_have_their_names() {
        assert_eq!(signal_name(6), Some("SIGABRT"));
        assert_eq!(signal_name(9), Some("SIGKILL"));
        assert_eq!(signal_name(rustix::process::Signal::XCPU.as_raw()), Some("SIGXCPU"));
        assert_eq!(signal_name(1000), None);
    }

    #[test]
    fn a_missing_helper_is_an_error_naming_the_file_and_the_helper() {
        let e = XlParser::new("/nonexistent/domainmgrd-xlparse").parse("g.cfg", b"name = 'g'\n").unwrap_err();
        assert_eq!(
            e,
            "g.cfg: cannot run the xl.cfg parser /nonexistent/domainmgrd-xlparse: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn a_helper_that_hangs_is_killed_at_the_deadline() {
        // A stand-in that never answers (a shell that ignores its input and waits).
        let dir = tempfile::tempdir().unwrap();
        let hang = dir.path().join("hang");
        crate::testing::write_script(&hang, "#!/bin/sh\nexec sleep 3600\n");
        let parser = XlParser::new(&hang).with_timeout(Duration::from_millis(200));
        let e = parser.parse("g.cfg", b"name = 'g'\n").unwrap_err();
        assert!(e.starts_with("g.cfg: the xl.cfg parser took longer than 200ms and was killed"), "{e}");
    }

    #[test]
    fn a_helper_that_crashes_or_babbles_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let path = dir.path().join(name);
            crate::testing::write_script(&path, &format!("#!/bin/sh\n{body}\n"));
            XlParser::new(path)
        };
        let e = script("abort", "echo 'it went wrong' >&2; kill -ABRT $$").parse("g.cfg", b"").unwrap_err();
        assert!(e.starts_with("g.cfg: the xl.cfg parser was killed by signal 6 (SIGABRT) (its limits: "), "{e}");
        assert!(e.ends_with(": it went wrong"), "{e}");
        let e = script("xcpu", "kill -XCPU $$").parse("g.cfg", b"").unwrap_err();
        let xcpu = rustix::process::Signal::XCPU.as_raw();
        assert_eq!(
            e,
            format!("g.cfg: the xl.cfg parser was killed by signal {xcpu} (SIGXCPU): it used up its 8 s of CPU time")
        );
        let e = script("fail", "exit 7").parse("g.cfg", b"").unwrap_err();
        assert!(e.starts_with("g.cfg: the xl.cfg parser failed (exit status: 7"), "{e}");
        let e = script("babble", "cat /dev/zero").parse("g.cfg", b"").unwrap_err();
        assert_eq!(e, "g.cfg: the xl.cfg parser's answer is larger than 16 MiB");
        let e = script("nonsense", "echo '{}'").parse("g.cfg", b"").unwrap_err();
        assert!(e.starts_with("g.cfg: the xl.cfg parser's answer is not one (missing field"), "{e}");
    }
}
