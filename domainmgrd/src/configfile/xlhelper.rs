//! The child's side of parsing xl.cfg bytes: [`helper_main`], the whole of the
//! `domainmgrd-xlparse` binary (limit itself, read the bytes on stdin, parse, answer in JSON
//! on stdout), and [`parse_xl_config`], the parse it runs, which is also callable in-process.
//!
//! What is known to abort libxlutil, read from its sources (tools/libs/util, Xen 4.17): a NUL
//! byte inside a quoted string, which `xlu__cfgl_dequote` asserts cannot happen (it measures
//! the token with `strlen`). Its other asserts hold for every input: the lexer only makes
//! quoted tokens that start and end with their quote, an escape's digits cannot run past the
//! closing quote, every error path sets the error before asserting it, and a nesting deeper
//! than bison's stack is a "memory exhausted" parse error. Out of memory, libxlutil and flex
//! mostly fail cleanly, but flex exits the process and Rust aborts it: in the child, either is
//! an error for that file.

use std::io::{Read, Write};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use xenctl::{DomainSpec, HostCpus, XlConfigFile};

use super::{Size, XL_CFG};
use crate::error_chain;

/// The helper binary's file name.
pub const HELPER_NAME: &str = "domainmgrd-xlparse";

/// The helper's first argument for its other job, `domainctl create --dry-run`:
/// `domainmgrd-xlparse --dry-run FILE XL_CONF` prints the libxl JSON of FILE (see the binary).
pub const DRY_RUN_ARG: &str = "--dry-run";

/// The helper's optional argument: the host's CPUs ([`HostCpus`] as JSON), for CPU lists
/// such as `cpus = "all"` that xl reads against the host.
pub(crate) const HOST_CPUS_ARG: &str = "--host-cpus=";

/// The limits the helper puts on itself before it reads a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Address space, bytes (`RLIMIT_AS`): the helper maps 7 MiB before it reads a byte, and
    /// a file at the size cap takes 6 to 10 MiB more to parse (measured with comments, a long
    /// string, 17,000 disks); a `+=` bomb reaches the limit in a fraction of a second.
    pub memory_bytes: u64,
    /// CPU time, seconds (`RLIMIT_CPU`; `SIGXCPU` then, `SIGKILL` a second later): a file at
    /// the size cap parses in tens of milliseconds, but a dom0 whose vCPUs wait for the
    /// hypervisor charges the waits too: in two Xen boxes under emulation sharing two cores, a
    /// small file's parse was killed at 2 s. The daemon's 10 s wall-clock kill bounds a loop.
    pub cpu_seconds: u64,
}

/// The helper's limits.
pub const LIMITS: Limits = Limits { memory_bytes: 128 << 20, cpu_seconds: 8 };

impl Limits {
    /// "256 MiB of memory, 8 s of CPU time", for errors.
    pub(crate) fn describe(&self) -> String {
        format!("{} of memory, {} s of CPU time", Size(self.memory_bytes), self.cpu_seconds)
    }
}

/// What the helper writes on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reply {
    /// The parse's result.
    pub result: Result<XlConfigFile, String>,
    /// What xenctl warned about meanwhile (keys ignored as xl ignores them, ...).
    pub warnings: Vec<String>,
}

/// Parses the bytes of an xl.cfg file as xenctl does ([`DomainSpec::read_xl_config_bytes`]);
/// `source` names it in errors. Refuses first, with a clear error, what is known to abort
/// libxlutil (a NUL byte) and a file over [`XL_CFG`]'s cap. In-process, this is only as safe
/// as libxlutil: the daemon calls it through [`XlParser`](super::XlParser), in a child.
pub fn parse_xl_config(source: &str, bytes: &[u8]) -> Result<XlConfigFile, String> {
    parse_xl_config_on(source, bytes, None)
}

/// [`parse_xl_config`] on a known host: its CPU lists read as xl reads them there
/// ([`DomainSpec::read_xl_config_bytes_on`]).
pub fn parse_xl_config_on(source: &str, bytes: &[u8], host: Option<&HostCpus>) -> Result<XlConfigFile, String> {
    if bytes.len() as u64 > XL_CFG.max_bytes {
        return Err(format!(
            "{source}: {} bytes, more than the {} {} may have",
            bytes.len(),
            Size(XL_CFG.max_bytes),
            XL_CFG.what
        ));
    }
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(format!("{source}:{line}: a NUL byte: xl.cfg files are text (libxlutil cannot read one)"));
    }
    DomainSpec::read_xl_config_bytes_on(source, bytes, host).map_err(|e| match e {
        xenctl::Error::OutOfMemory { .. } => {
            let limit = match rustix::process::getrlimit(rustix::process::Resource::As).current {
                Some(bytes) => format!(" (its limit is {})", Size(bytes)),
                None => String::new(),
            };
            format!("{source}: the xl.cfg parser ran out of memory{limit}")
        }
        e => error_chain(&e),
    })
}

/// The `domainmgrd-xlparse` binary: `domainmgrd-xlparse [--host-cpus=JSON]`, its stdin
/// SOURCE, a NUL byte, then the file's bytes. Puts [`LIMITS`] on itself, no core dumps and no
/// file writes, before it reads a byte (so a helper may be started ahead of its file, and
/// wait for it: see [`XlParser`](super::XlParser)); reads at most [`XL_CFG`]'s cap, parses it
/// with [`parse_xl_config`] (SOURCE names the file in errors) and writes a JSON reply on
/// stdout. Exit status 0 whenever it could answer, parse errors included.
pub fn helper_main() -> ExitCode {
    if let Err(e) = limit_self(&lowered(LIMITS, std::env::var(MEMORY_ENV).ok().as_deref())) {
        eprintln!("{HELPER_NAME}: cannot limit itself, so it does not parse: {e}");
        return ExitCode::from(3);
    }
    let host = match std::env::args_os().nth(1).map(|a| a.to_string_lossy().into_owned()) {
        None => None,
        Some(arg) => match arg.strip_prefix(HOST_CPUS_ARG).map(serde_json::from_str::<HostCpus>) {
            Some(Ok(host)) => Some(host),
            _ => {
                eprintln!(
                    "usage: {HELPER_NAME} [{HOST_CPUS_ARG}JSON] < SOURCE NUL FILE (the daemon runs it; SOURCE names FILE in errors)"
                );
                return ExitCode::from(2);
            }
        },
    };
    if log::set_logger(&WARNINGS).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let mut input = Vec::new();
    let cap = MAX_SOURCE_BYTES + 1 + XL_CFG.max_bytes + 1;
    if let Err(e) = std::io::stdin().lock().take(cap).read_to_end(&mut input) {
        eprintln!("{HELPER_NAME}: reading stdin: {e}");
        return ExitCode::from(1);
    }
    let Some(nul) = input.iter().take(MAX_SOURCE_BYTES as usize + 1).position(|&b| b == 0) else {
        // The daemon went away (an empty stdin) or this is not the daemon.
        eprintln!("{HELPER_NAME}: stdin does not start with a source name and a NUL byte");
        return ExitCode::from(2);
    };
    let source = String::from_utf8_lossy(&input[..nul]).into_owned();
    let bytes = &input[nul + 1..];
    let result = parse_xl_config_on(&source, bytes, host.as_ref());
    let reply = Reply { result, warnings: std::mem::take(&mut *WARNINGS.0.lock()) };
    let mut out = std::io::stdout().lock();
    match serde_json::to_writer(&mut out, &reply).map_err(std::io::Error::from).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{HELPER_NAME}: writing the reply: {e}");
            ExitCode::from(1)
        }
    }
}

/// The longest source name the helper reads (a path, `PATH_MAX`).
pub(crate) const MAX_SOURCE_BYTES: u64 = 4096;

/// An environment variable that lowers (never raises) the helper's memory limit, in MiB: for
/// tests of the limit itself, and hosts that want it tighter.
pub const MEMORY_ENV: &str = "DOMAINMGRD_XLPARSE_MEMORY_MIB";

/// `limits`, with the memory limit lowered to `mib` MiB if that is a number below it.
fn lowered(limits: Limits, mib: Option<&str>) -> Limits {
    match mib.and_then(|m| m.trim().parse::<u64>().ok()).map(|m| m << 20) {
        Some(bytes) if bytes > 0 && bytes < limits.memory_bytes => Limits { memory_bytes: bytes, ..limits },
        _ => limits,
    }
}

/// Limits this process: address space and CPU time, no core dump, no file growth.
fn limit_self(limits: &Limits) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let exactly = |n| Rlimit { current: Some(n), maximum: Some(n) };
    setrlimit(Resource::Core, exactly(0))?;
    setrlimit(Resource::Fsize, exactly(0))?;
    setrlimit(Resource::As, exactly(limits.memory_bytes))?;
    // SIGXCPU at the soft limit; the kernel sends SIGKILL at the hard one, should it be caught.
    setrlimit(Resource::Cpu, Rlimit { current: Some(limits.cpu_seconds), maximum: Some(limits.cpu_seconds + 1) })?;
    Ok(())
}

/// Collects xenctl's warnings for the reply (the daemon logs them).
struct Warnings(parking_lot::Mutex<Vec<String>>);

static WARNINGS: Warnings = Warnings(parking_lot::const_mutex(Vec::new()));

impl log::Log for Warnings {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.lock().push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_byte_is_refused_with_its_line_before_libxlutil_sees_it() {
        let e = parse_xl_config("g.cfg", b"name = 'g'\nkernel = '/k\0'\n").unwrap_err();
        assert_eq!(e, "g.cfg:2: a NUL byte: xl.cfg files are text (libxlutil cannot read one)");
        let e = parse_xl_config("g.cfg", b"\0").unwrap_err();
        assert!(e.starts_with("g.cfg:1: a NUL byte"), "{e}");
    }

    #[test]
    fn a_file_over_the_cap_is_refused_unparsed() {
        let mut text = b"name = 'g'\nkernel = '/k'\n".to_vec();
        text.resize((1 << 20) + 1, b'#');
        let e = parse_xl_config("g.cfg", &text).unwrap_err();
        assert_eq!(e, "g.cfg: 1048577 bytes, more than the 1 MiB an xl.cfg file may have");
    }

    #[test]
    fn a_good_file_parses_as_xenctl_parses_it() {
        let text = "name = 'g'\nkernel = '/k'\nmemory = 256\n";
        let file = parse_xl_config("g.cfg", text.as_bytes()).unwrap();
        assert_eq!(
            file,
            DomainSpec::read_xl_config_text("g.cfg", text)
                .map(|mut f| {
                    f.spec.uuid = file.spec.uuid; // a file without uuid gets a random one each time
                    f
                })
                .unwrap()
        );
        let e = parse_xl_config("g.cfg", b"name = 'g'\nmemroy = 256\n").unwrap_err();
        assert_eq!(e, "g.cfg:2: memroy: not an xl.cfg key");
    }

    #[test]
    fn limits_read_as_people_say_them() {
        assert_eq!(LIMITS.describe(), "128 MiB of memory, 8 s of CPU time");
    }
}
