//! Containers as Xen guests, the guest's side: a small VM per container whose initramfs `/init`
//! is the `xen-container-init` binary of this crate. dom0 unpacks the image into
//! `<bundle>/rootfs/`, writes a [`RunSpec`] as `<bundle>/`[`SPEC_FILE`], and shares `<bundle>`
//! over 9p with the tag [`SHARE_TAG`]. The init, PID 1 in the guest, loads the 9p and netfront
//! modules, mounts the share, chroots into `rootfs`, configures the network (static or DHCP,
//! over rtnetlink), starts the entrypoint as the spec's user in a new session on the console,
//! reaps orphans, forwards signals, and stops it gracefully when the domain is asked to power
//! off (SIGTERM, then SIGKILL after [`RunSpec::stop_timeout_secs`]). When the entrypoint exits
//! it writes its status to xenstore at [`EXIT_KEY`] (read back in dom0 with
//! [`parse_exit_status`]), prints `XENCONTAINER-EXIT <status>` on the console and powers off.
//!
//! This library is what both sides share (the spec, the exit status) and the pure parts of the
//! init (user resolution, `PATH` lookup, the xenstore message), kept free of the init's
//! dependencies: dom0 uses it with `default-features = false`.

#![forbid(unsafe_code)]

mod lookup;
mod spec;
mod user;
pub mod xenstore;

pub use lookup::{DEFAULT_PATH, env_value, find_executable};
pub use spec::{MAX_SPEC_BYTES, NetConfig, RunSpec, VolumeMount, parse_cidr, parse_mac};
pub use user::{User, resolve_user};

/// The run spec's file name in the share's root.
pub const SPEC_FILE: &str = "xen-container.json";

/// The 9p tag of the share (`p9 = ['tag=share_dir,...']` in xl.cfg); the kernel command line
/// `xencontainer.tag=NAME` overrides it.
pub const SHARE_TAG: &str = "share_dir";

/// Where the guest writes the entrypoint's exit status, relative to its own
/// `/local/domain/<domid>/` (the `data/` subtree is writable by the guest). Untrusted in dom0:
/// read it with [`parse_exit_status`].
pub const EXIT_KEY: &str = "data/container-exit-status";

/// The exit status dom0 reads at [`EXIT_KEY`]: a decimal 0 to 255, whitespace around it
/// allowed; anything else (the guest wrote it) is `None`.
pub fn parse_exit_status(value: &str) -> Option<i32> {
    let v = value.trim();
    if v.is_empty() || v.len() > 3 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<i32>().ok().filter(|s| (0..=255).contains(s))
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// It called `exit` with this code.
    Exited(i32),
    /// A signal (this number) killed it.
    Signaled(i32),
}

impl Termination {
    /// The status as shells report it: the exit code (its low 8 bits), or 128 plus the signal.
    pub fn status(self) -> i32 {
        match self {
            Termination::Exited(code) => code & 0xff,
            Termination::Signaled(sig) => 128 + (sig & 0x7f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_parsing_accepts_only_a_byte() {
        assert_eq!(parse_exit_status("0"), Some(0));
        assert_eq!(parse_exit_status(" 137\n"), Some(137));
        assert_eq!(parse_exit_status("255"), Some(255));
        assert_eq!(parse_exit_status("007"), Some(7));
        for bad in ["", " ", "256", "-1", "+3", "1e2", "3 4", "0x10", "1000", "١"] {
            assert_eq!(parse_exit_status(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn termination_status_is_what_shells_report() {
        assert_eq!(Termination::Exited(3).status(), 3);
        assert_eq!(Termination::Exited(256 + 4).status(), 4);
        assert_eq!(Termination::Signaled(9).status(), 137);
        assert_eq!(Termination::Signaled(15).status(), 143);
        for t in [Termination::Exited(0), Termination::Signaled(9)] {
            assert_eq!(parse_exit_status(&t.status().to_string()), Some(t.status()));
        }
    }
}
