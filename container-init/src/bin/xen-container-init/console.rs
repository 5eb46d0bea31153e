//! The init's own output: short progress lines prefixed `xen-container-init: ` on standard
//! error, which PID 1 points at `/dev/console` (hvc0) as soon as `/dev` is mounted. Writes never
//! fail loudly: an init with no console still has to run the container.

use std::io::Write;

/// Prints one progress or error line.
pub fn say(msg: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "xen-container-init: {msg}");
}

/// Prints a line as it is (the `XENCONTAINER-EXIT` marker, which dom0 may scan for).
pub fn raw(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
