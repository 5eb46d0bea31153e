//! Small value types shared by the whole API: domain ids, guest kinds, shutdown reasons and the
//! actions a domain config names for poweroff/reboot/crash, with their libxl numbers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A Xen domain id. Domain 0 is the control domain; guests have ids from 1 up to 0x7FEF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(u32);

impl DomId {
    /// dom0, the control domain.
    pub const DOM0: DomId = DomId(0);

    /// Wraps a raw domain id.
    pub const fn new(raw: u32) -> DomId {
        DomId(raw)
    }

    /// The raw number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Whether this is dom0.
    pub const fn is_dom0(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<DomId> for u32 {
    fn from(d: DomId) -> u32 {
        d.0
    }
}

/// How a guest is virtualised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainKind {
    /// Paravirtualised: the guest kernel is Xen-aware; no device model.
    Pv,
    /// PVH: hardware-virtualised container, PV devices, no device model.
    Pvh,
    /// Fully hardware-virtualised, with a QEMU device model.
    Hvm,
}

impl DomainKind {
    pub(crate) fn to_libxl(self) -> xen_sys::libxl_domain_type {
        match self {
            DomainKind::Pv => xen_sys::LIBXL_DOMAIN_TYPE_PV,
            DomainKind::Pvh => xen_sys::LIBXL_DOMAIN_TYPE_PVH,
            DomainKind::Hvm => xen_sys::LIBXL_DOMAIN_TYPE_HVM,
        }
    }

    pub(crate) fn from_libxl(t: xen_sys::libxl_domain_type) -> Option<DomainKind> {
        match t {
            xen_sys::LIBXL_DOMAIN_TYPE_PV => Some(DomainKind::Pv),
            xen_sys::LIBXL_DOMAIN_TYPE_PVH => Some(DomainKind::Pvh),
            xen_sys::LIBXL_DOMAIN_TYPE_HVM => Some(DomainKind::Hvm),
            _ => None,
        }
    }

    /// The xl.cfg `type=` word: `pv`, `pvh` or `hvm`.
    pub fn as_str(self) -> &'static str {
        match self {
            DomainKind::Pv => "pv",
            DomainKind::Pvh => "pvh",
            DomainKind::Hvm => "hvm",
        }
    }
}

impl fmt::Display for DomainKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DomainKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "pv" => Ok(DomainKind::Pv),
            "pvh" => Ok(DomainKind::Pvh),
            "hvm" => Ok(DomainKind::Hvm),
            _ => Err(Error::invalid("type", s, "expected pv, pvh or hvm")),
        }
    }
}

/// Why a domain shut down, as Xen reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShutdownReason {
    /// The guest powered itself off (or honoured a shutdown request).
    Poweroff,
    /// The guest asked to be rebooted; the toolstack must destroy and re-create it.
    Reboot,
    /// The guest suspended itself (save or migration).
    Suspend,
    /// The guest crashed.
    Crash,
    /// The guest's watchdog fired.
    Watchdog,
    /// The guest asked for a soft reset.
    SoftReset,
    /// A reason this crate does not know (the raw libxl number).
    Unknown(i32),
}

impl ShutdownReason {
    pub(crate) fn from_libxl(r: xen_sys::libxl_shutdown_reason) -> ShutdownReason {
        match r {
            xen_sys::LIBXL_SHUTDOWN_REASON_POWEROFF => ShutdownReason::Poweroff,
            xen_sys::LIBXL_SHUTDOWN_REASON_REBOOT => ShutdownReason::Reboot,
            xen_sys::LIBXL_SHUTDOWN_REASON_SUSPEND => ShutdownReason::Suspend,
            xen_sys::LIBXL_SHUTDOWN_REASON_CRASH => ShutdownReason::Crash,
            xen_sys::LIBXL_SHUTDOWN_REASON_WATCHDOG => ShutdownReason::Watchdog,
            xen_sys::LIBXL_SHUTDOWN_REASON_SOFT_RESET => ShutdownReason::SoftReset,
            other => ShutdownReason::Unknown(other),
        }
    }
}

impl fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShutdownReason::Poweroff => f.write_str("poweroff"),
            ShutdownReason::Reboot => f.write_str("reboot"),
            ShutdownReason::Suspend => f.write_str("suspend"),
            ShutdownReason::Crash => f.write_str("crash"),
            ShutdownReason::Watchdog => f.write_str("watchdog"),
            ShutdownReason::SoftReset => f.write_str("soft_reset"),
            ShutdownReason::Unknown(n) => write!(f, "unknown({n})"),
        }
    }
}

/// What the toolstack should do when a guest powers off, reboots or crashes
/// (xl.cfg's `on_poweroff`, `on_reboot`, `on_crash`).
///
/// libxl records these in the domain's configuration but does not act on them itself: the
/// toolstack (xl's monitor process, or domainmgrd) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShutdownAction {
    /// Destroy the domain.
    Destroy,
    /// Destroy it and create it again with the same config.
    Restart,
    /// Rename the old domain, keep it, and start a new one.
    #[serde(rename = "rename-restart")]
    RestartRename,
    /// Leave the shut-down domain in place (for inspection).
    Preserve,
    /// Dump core, then destroy.
    CoredumpDestroy,
    /// Dump core, then restart.
    CoredumpRestart,
    /// Soft-reset the domain.
    SoftReset,
}

impl ShutdownAction {
    pub(crate) fn to_libxl(self) -> xen_sys::libxl_action_on_shutdown {
        match self {
            ShutdownAction::Destroy => xen_sys::LIBXL_ACTION_ON_SHUTDOWN_DESTROY,
            ShutdownAction::Restart => xen_sys::LIBXL_ACTION_ON_SHUTDOWN_RESTART,
            ShutdownAction::RestartRename => xen_sys::LIBXL_ACTION_ON_SHUTDOWN_RESTART_RENAME,
            ShutdownAction::Preserve => xen_sys::LIBXL_ACTION_ON_SHUTDOWN_PRESERVE,
            ShutdownAction::CoredumpDestroy => xen_sys::LIBXL_ACTION_ON_SHUTDOWN_COREDUMP_DESTROY,
            ShutdownAction::CoredumpRestart => xen_sys::LIBXL_ACTION_ON_SHUTDOWN_COREDUMP_RESTART,
            ShutdownAction::SoftReset => xen_sys::LIBXL_ACTION_ON_SHUTDOWN_SOFT_RESET,
        }
    }

    /// The xl.cfg word, e.g. `coredump-destroy`.
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownAction::Destroy => "destroy",
            ShutdownAction::Restart => "restart",
            ShutdownAction::RestartRename => "rename-restart",
            ShutdownAction::Preserve => "preserve",
            ShutdownAction::CoredumpDestroy => "coredump-destroy",
            ShutdownAction::CoredumpRestart => "coredump-restart",
            ShutdownAction::SoftReset => "soft-reset",
        }
    }
}

impl fmt::Display for ShutdownAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ShutdownAction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "destroy" => ShutdownAction::Destroy,
            "restart" => ShutdownAction::Restart,
            "rename-restart" => ShutdownAction::RestartRename,
            "preserve" => ShutdownAction::Preserve,
            "coredump-destroy" => ShutdownAction::CoredumpDestroy,
            "coredump-restart" => ShutdownAction::CoredumpRestart,
            "soft-reset" => ShutdownAction::SoftReset,
            _ => {
                return Err(Error::invalid(
                    "shutdown action",
                    s,
                    "expected destroy, restart, rename-restart, preserve, coredump-destroy, coredump-restart or soft-reset",
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_actions_round_trip_through_their_words() {
        for kind in [DomainKind::Pv, DomainKind::Pvh, DomainKind::Hvm] {
            assert_eq!(kind.as_str().parse::<DomainKind>().unwrap(), kind);
            assert_eq!(DomainKind::from_libxl(kind.to_libxl()), Some(kind));
        }
        assert!("xen".parse::<DomainKind>().is_err());
        for action in [
            ShutdownAction::Destroy,
            ShutdownAction::Restart,
            ShutdownAction::RestartRename,
            ShutdownAction::Preserve,
            ShutdownAction::CoredumpDestroy,
            ShutdownAction::CoredumpRestart,
            ShutdownAction::SoftReset,
        ] {
            assert_eq!(action.as_str().parse::<ShutdownAction>().unwrap(), action);
        }
        let err = "reboot".parse::<ShutdownAction>().unwrap_err();
        assert!(err.to_string().starts_with("invalid shutdown action \"reboot\""));
    }

    #[test]
    fn shutdown_reasons_map_from_libxl() {
        assert_eq!(ShutdownReason::from_libxl(xen_sys::LIBXL_SHUTDOWN_REASON_CRASH), ShutdownReason::Crash);
        assert_eq!(ShutdownReason::from_libxl(0), ShutdownReason::Poweroff);
        assert_eq!(ShutdownReason::from_libxl(42), ShutdownReason::Unknown(42));
        assert_eq!(ShutdownReason::Reboot.to_string(), "reboot");
    }
}
