//! The crate's one error type, and `LibxlErrorCode`, libxl's integer error codes with names.
//!
//! Every failure a caller can see is an [`Error`] variant that says what was being done (the
//! operation), to what (domain id, domain name, PCI device, path) and, for libxl failures, libxl's
//! own error code. Messages are short and do not repeat their source; print the chain once.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::DomId;
use crate::pci::Bdf;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A libxl error code (the negative `ERROR_*` values of `libxl_error`), named where libxl names
/// it and shown raw otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LibxlErrorCode(pub i32);

macro_rules! libxl_error_names {
    ($($name:ident),* $(,)?) => {
        impl LibxlErrorCode {
            $(
                #[doc = concat!("libxl's `", stringify!($name), "`.")]
                pub const $name: LibxlErrorCode = LibxlErrorCode(xen_sys::$name);
            )*

            /// libxl's name for this code (`"ERROR_FAIL"`), or `None` for a code this crate
            /// was not built to know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $(xen_sys::$name => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

libxl_error_names!(
    ERROR_NONSPECIFIC,
    ERROR_VERSION,
    ERROR_FAIL,
    ERROR_NI,
    ERROR_NOMEM,
    ERROR_INVAL,
    ERROR_BADFAIL,
    ERROR_GUEST_TIMEDOUT,
    ERROR_TIMEDOUT,
    ERROR_NOPARAVIRT,
    ERROR_NOT_READY,
    ERROR_OSEVENT_REG_FAIL,
    ERROR_BUFFERFULL,
    ERROR_UNKNOWN_CHILD,
    ERROR_LOCK_FAIL,
    ERROR_JSON_CONFIG_EMPTY,
    ERROR_DEVICE_EXISTS,
    ERROR_CHECKPOINT_DEVOPS_DOES_NOT_MATCH,
    ERROR_CHECKPOINT_DEVICE_NOT_SUPPORTED,
    ERROR_VNUMA_CONFIG_INVALID,
    ERROR_DOMAIN_NOTFOUND,
    ERROR_ABORTED,
    ERROR_NOTFOUND,
    ERROR_DOMAIN_DESTROYED,
    ERROR_FEATURE_REMOVED,
    ERROR_PROTOCOL_ERROR_QMP,
    ERROR_UNKNOWN_QMP_ERROR,
    ERROR_QMP_GENERIC_ERROR,
    ERROR_QMP_COMMAND_NOT_FOUND,
    ERROR_QMP_DEVICE_NOT_ACTIVE,
    ERROR_QMP_DEVICE_NOT_FOUND,
    ERROR_QEMU_API,
);

impl fmt::Display for LibxlErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "libxl error {}", self.0),
        }
    }
}

/// What an operation was applied to, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A domain by id.
    Domain(DomId),
    /// A domain by name, before it has an id (create, restore).
    Named(String),
    /// A PCI device.
    Pci(Bdf),
    /// The host as a whole (physinfo, lists).
    Host,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Domain(domid) => write!(f, "domain {domid}"),
            Subject::Named(name) => write!(f, "domain '{name}'"),
            Subject::Pci(bdf) => write!(f, "PCI device {bdf}"),
            Subject::Host => f.write_str("the host"),
        }
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The machine is not running on Xen at all.
    #[error("Xen is not running on this machine ({reason}); run this in dom0 of a Xen host")]
    XenNotRunning {
        /// What was checked and found missing.
        reason: String,
    },

    /// Xen is running but this is not the control domain.
    #[error("this is not Xen's control domain ({reason}); run this in dom0")]
    NotDom0 {
        /// What was checked.
        reason: String,
    },

    /// The loaded library or the hypervisor is not the Xen version the bindings were made for.
    #[error("{component} is Xen {found}, but xenctl was built for Xen {expected} (vendor-headers/VERSION)")]
    VersionMismatch {
        /// `"libxenlight"` or `"the hypervisor"`.
        component: &'static str,
        /// The version found at run time.
        found: String,
        /// The vendored headers' version.
        expected: String,
    },

    /// A libxl call failed.
    #[error("{op} of {subject} failed: {code}")]
    Libxl {
        /// The operation, e.g. `"create"`, `"unpause"`.
        op: &'static str,
        /// What it was applied to.
        subject: Subject,
        /// libxl's error code.
        code: LibxlErrorCode,
    },

    /// The domain does not exist (libxl said `ERROR_DOMAIN_NOTFOUND` or equivalent).
    #[error("{op}: domain {domid} does not exist")]
    DomainNotFound {
        /// The operation.
        op: &'static str,
        /// The domain id asked for.
        domid: DomId,
    },

    /// A graceful request (shutdown, reboot) needs PV drivers in the guest, and it has none.
    /// Use [`Context::power_button`](crate::Context::power_button) (ACPI) or destroy instead.
    #[error("{op} of domain {domid} needs PV drivers in the guest and it has none")]
    NoPvDrivers {
        /// `"shutdown"` or `"reboot"`.
        op: &'static str,
        /// The domain.
        domid: DomId,
    },

    /// The guest was asked to shut down and did not within the time given.
    #[error("domain {domid} did not honour the shutdown request within {timeout:?}")]
    ShutdownTimedOut {
        /// The domain.
        domid: DomId,
        /// How long we waited.
        timeout: Duration,
    },

    /// An operation that is never right on dom0 (destroy, shutdown, pause...) was asked for it.
    #[error("refusing to {op} dom0")]
    Dom0Refused {
        /// The operation.
        op: &'static str,
    },

    /// A [`DomainSpec`](crate::DomainSpec) or device spec field has a value we cannot use.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidSpec {
        /// The field, e.g. `"name"`, `"disks[1]"`, `"vifs[0].mac"`.
        field: String,
        /// The offending value.
        value: String,
        /// Why it is invalid.
        reason: String,
    },

    /// An xl.cfg(5) file does not parse, or has a key or value xenctl cannot use. Shown as
    /// `FILE:LINE: KEY: REASON`, the way compilers and xl itself point at a config line.
    #[error("{}", xl_config_message(file, *line, key.as_deref(), reason))]
    XlConfig {
        /// The file (or the source name given with the text).
        file: String,
        /// The 1-based line of the offending assignment or list item, when there is one (a
        /// required key that is missing has none).
        line: Option<u32>,
        /// The key, e.g. `memory`, or a list item such as `disk[1]`; `None` for syntax errors.
        key: Option<String>,
        /// What is wrong.
        reason: String,
    },

    /// A xenstore operation failed.
    #[error("xenstore {op} {path}")]
    Xenstore {
        /// `"read"`, `"write"`, `"rm"`, `"directory"`, `"open"`.
        op: &'static str,
        /// The xenstore path.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A file operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done, e.g. `"open save image"`.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A save image is not one we can restore.
    #[error("save image {}: {reason}", path.display())]
    BadSaveImage {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// libxl reported an unrecoverable event-handling failure ("disaster"); the context can no
    /// longer deliver events reliably and should be re-opened.
    #[error("libxl's event machinery failed ({reason}); re-open the context")]
    ContextBroken {
        /// libxl's message.
        reason: String,
    },

    /// A C allocation failed.
    #[error("out of memory during {op}")]
    OutOfMemory {
        /// The operation.
        op: &'static str,
    },

    /// The caller refused what was asked of it (a migration receiver that will not take the
    /// domain that is coming: no config of it here, or it runs here already).
    #[error("{reason}")]
    Refused {
        /// Why, for people.
        reason: String,
    },

    /// A thread or OS resource the context needs could not be set up.
    #[error("cannot {op}")]
    Os {
        /// What was being set up.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Maps a non-zero libxl return code to the most specific error variant.
    pub(crate) fn from_libxl(op: &'static str, subject: Subject, rc: i32) -> Error {
        let code = LibxlErrorCode(rc);
        match (code, &subject) {
            (LibxlErrorCode::ERROR_DOMAIN_NOTFOUND, Subject::Domain(domid)) => {
                Error::DomainNotFound { op, domid: *domid }
            }
            (LibxlErrorCode::ERROR_NOPARAVIRT, Subject::Domain(domid)) => Error::NoPvDrivers { op, domid: *domid },
            _ => Error::Libxl { op, subject, code },
        }
    }

    /// The libxl error code, when this error came from libxl.
    pub fn libxl_code(&self) -> Option<LibxlErrorCode> {
        match self {
            Error::Libxl { code, .. } => Some(*code),
            Error::DomainNotFound { .. } => Some(LibxlErrorCode::ERROR_DOMAIN_NOTFOUND),
            Error::NoPvDrivers { .. } => Some(LibxlErrorCode::ERROR_NOPARAVIRT),
            _ => None,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, value: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidSpec { field: field.into(), value: value.into(), reason: reason.into() }
    }
}

fn xl_config_message(file: &str, line: Option<u32>, key: Option<&str>, reason: &str) -> String {
    let at = line.map_or_else(|| file.to_string(), |l| format!("{file}:{l}"));
    match key {
        Some(key) => format!("{at}: {key}: {reason}"),
        None => format!("{at}: {reason}"),
    }
}

/// Turns a libxl return code into a `Result`.
pub(crate) fn check(rc: i32, op: &'static str, subject: impl FnOnce() -> Subject) -> Result<()> {
    if rc == 0 { Ok(()) } else { Err(Error::from_libxl(op, subject(), rc)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_are_named_and_unknown_ones_raw() {
        assert_eq!(LibxlErrorCode(-3).to_string(), "ERROR_FAIL (-3)");
        assert_eq!(LibxlErrorCode::ERROR_NOPARAVIRT.name(), Some("ERROR_NOPARAVIRT"));
        assert_eq!(LibxlErrorCode(-9999).name(), None);
        assert_eq!(LibxlErrorCode(-9999).to_string(), "libxl error -9999");
    }

    #[test]
    fn libxl_codes_map_to_specific_variants() {
        let domid = DomId::new(7);
        let err = Error::from_libxl("info", Subject::Domain(domid), xen_sys::ERROR_DOMAIN_NOTFOUND);
        assert!(matches!(err, Error::DomainNotFound { op: "info", domid: d } if d == domid));
        assert_eq!(err.to_string(), "info: domain 7 does not exist");

        let err = Error::from_libxl("shutdown", Subject::Domain(domid), xen_sys::ERROR_NOPARAVIRT);
        assert!(matches!(err, Error::NoPvDrivers { op: "shutdown", .. }));
        assert_eq!(err.libxl_code(), Some(LibxlErrorCode::ERROR_NOPARAVIRT));

        let err = Error::from_libxl("create", Subject::Named("web".into()), xen_sys::ERROR_FAIL);
        assert_eq!(err.to_string(), "create of domain 'web' failed: ERROR_FAIL (-3)");
        assert_eq!(err.libxl_code(), Some(LibxlErrorCode::ERROR_FAIL));

        // A "not found" without a domain id stays a plain libxl error naming its subject.
        let bdf: Bdf = "0000:03:00.0".parse().unwrap();
        let err = Error::from_libxl("pci-assignable-add", Subject::Pci(bdf), xen_sys::ERROR_NOTFOUND);
        assert_eq!(err.to_string(), "pci-assignable-add of PCI device 0000:03:00.0 failed: ERROR_NOTFOUND (-23)");
    }

    #[test]
    fn check_passes_zero_and_maps_the_rest() {
        assert!(check(0, "pause", || Subject::Host).is_ok());
        let err = check(-6, "pause", || Subject::Domain(DomId::new(3))).unwrap_err();
        assert_eq!(err.to_string(), "pause of domain 3 failed: ERROR_INVAL (-6)");
    }
}
