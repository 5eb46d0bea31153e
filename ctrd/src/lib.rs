//! containerd's snapshot service, as a dom0 tool needs it to reach a container's root
//! filesystem: EVE's volume manager unpacks an app's image into containerd (namespace
//! `eve-user-apps`, snapshotter `overlayfs`) and prepares a writable snapshot for each container
//! volume; EVE's domainmgr asks containerd for that snapshot's mounts and mounts the first at
//! `<volume>/rootfs` before the guest boots, and unmounts it when the app stops. [`Snapshots`]
//! talks to containerd's gRPC socket (the `containerd.services.snapshots.v1.Snapshots` service:
//! Prepare, View, Mounts, Commit, Remove, Stat) with blocking calls, each under a deadline;
//! [`Mount`] carries what containerd returns and mounts it as containerd's own Go client does
//! (option words to mount flags, the rest as data, a read-only bind remounted read-only, a
//! propagation change after); [`mounted`] and [`unmount`] read and undo a mount, since
//! containerd keeps no record of who mounted what.
//!
//! The messages are declared here by hand from containerd's `.proto` files (api/types/mount.proto,
//! api/services/snapshots/v1/snapshots.proto), so building needs no protoc.

#![forbid(unsafe_code)]

mod client;
mod mount;
mod proto;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::{DEFAULT_NAMESPACE, DEFAULT_SNAPSHOTTER, EVE_USER_SOCKET, SnapshotKind, Snapshots};
pub use mount::{Mount, mounted, unmount};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// containerd's socket cannot be reached.
    #[error("cannot reach containerd at {socket}: {reason}")]
    Connect {
        /// The socket.
        socket: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// containerd answered a call with an error.
    #[error("containerd {op} of snapshot {key:?}: {code:?}: {message}")]
    Call {
        /// The call (`Mounts`, `Prepare`, ...).
        op: &'static str,
        /// The snapshot's key.
        key: String,
        /// gRPC's status code.
        code: tonic::Code,
        /// containerd's message.
        message: String,
    },
    /// containerd did not answer in time.
    #[error("containerd {op} of snapshot {key:?}: no answer in {seconds} s")]
    Timeout {
        /// The call.
        op: &'static str,
        /// The snapshot's key.
        key: String,
        /// The deadline.
        seconds: u64,
    },
    /// The snapshot has no mounts (containerd returned none).
    #[error("containerd returned no mounts for snapshot {key:?}")]
    NoMounts {
        /// The snapshot's key.
        key: String,
    },
    /// A mount(2) or umount(2) failed.
    #[error("{op} {target}: {source}")]
    Mount {
        /// `mount`, `unmount`, `remount read-only`, ...
        op: &'static str,
        /// Where.
        target: std::path::PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A mount's options do not fit in mount(2)'s one page even with its directories shortened.
    #[error("the options of the {kind} mount at {target} are {len} bytes, more than mount(2) takes ({limit})")]
    OptionsTooLong {
        /// The file system type.
        kind: String,
        /// Where.
        target: std::path::PathBuf,
        /// Their length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A string from containerd or the caller holds a NUL byte.
    #[error("{what} holds a NUL byte: {value:?}")]
    Nul {
        /// What it is.
        what: &'static str,
        /// The value.
        value: String,
    },
}

impl Error {
    /// Whether containerd said the snapshot does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Call { code: tonic::Code::NotFound, .. })
    }
}

/// This crate's results.
pub type Result<T> = std::result::Result<T, Error>;
