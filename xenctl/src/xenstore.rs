//! xenstore access (read, write, rm, directory) through the pure-Rust xenstore-rs client, and
//! the one write dom0 tools commonly need before a guest runs: disabling vif offloads.
//!
//! The connection (xenstored's unix socket, else /dev/xen/xenbus) opens on first use and
//! re-opens after an I/O failure; a mutex serialises requests, as the protocol is one request
//! in flight per connection.

use std::io;

use parking_lot::Mutex;
use xenstore_rs::Xs;
use xenstore_rs::unix::XsUnix;

use crate::error::{Error, Result};
use crate::types::DomId;

/// The netback features EVE's domainmgr turns off for every vif before the guest connects
/// (scatter-gather, TSO for IPv4 and IPv6, IPv6 checksum offload): with them on, some guests
/// and some physical NICs mishandle large or offloaded packets on the bridge.
pub const VIF_OFFLOAD_FEATURES: [&str; 4] =
    ["feature-sg", "feature-gso-tcpv4", "feature-gso-tcpv6", "feature-ipv6-csum-offload"];

/// A xenstore client.
pub struct Xenstore {
    conn: Mutex<Option<XsUnix>>,
}

impl std::fmt::Debug for Xenstore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xenstore").field("connected", &self.conn.lock().is_some()).finish()
    }
}

impl Default for Xenstore {
    fn default() -> Self {
        Xenstore::new()
    }
}

impl Xenstore {
    /// A client that connects on first use.
    pub fn new() -> Xenstore {
        Xenstore { conn: Mutex::new(None) }
    }

    fn with<T>(&self, op: &'static str, path: &str, f: impl Fn(&XsUnix) -> io::Result<T>) -> Result<T> {
        let mut conn = self.conn.lock();
        let xs = match &mut *conn {
            Some(xs) => xs,
            slot @ None => {
                let opened =
                    XsUnix::new().map_err(|source| Error::Xenstore { op: "open", path: path.into(), source })?;
                slot.insert(opened)
            }
        };
        let result = f(xs);
        if let Err(err) = &result {
            // A xenstore-level error (ENOENT, EACCES...) leaves the connection usable; an I/O
            // failure may leave it mid-message, so start afresh next time.
            if !is_xenstore_error(err) {
                *conn = None;
            }
        }
        result.map_err(|source| Error::Xenstore { op, path: path.into(), source })
    }

    /// Reads a node.
    pub fn read(&self, path: &str) -> Result<String> {
        self.with("read", path, |xs| xs.read(path).map(String::from))
    }

    /// Reads a node, `None` if it does not exist.
    pub fn read_opt(&self, path: &str) -> Result<Option<String>> {
        match self.read(path) {
            Ok(v) => Ok(Some(v)),
            Err(Error::Xenstore { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a node, creating it (and its parents) if needed.
    pub fn write(&self, path: &str, value: &str) -> Result<()> {
        self.with("write", path, |xs| xs.write(path, value))
    }

    /// Removes a node and everything under it. Removing a missing node is not an error.
    pub fn rm(&self, path: &str) -> Result<()> {
        match self.with("rm", path, |xs| xs.rm(path)) {
            Err(Error::Xenstore { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Lists a node's children (names, not paths).
    pub fn directory(&self, path: &str) -> Result<Vec<String>> {
        self.with("directory", path, |xs| xs.directory(path).map(|v| v.into_iter().map(String::from).collect()))
    }

    /// Turns off scatter-gather, TSO and IPv6 checksum offload on the dom0 side of each of
    /// `vif_count` vifs of `domid` (device ids 0..vif_count), by writing `0` to the
    /// [`VIF_OFFLOAD_FEATURES`] keys under `/local/domain/0/backend/vif/<domid>/<n>/`.
    ///
    /// Call it after [`create_paused`](crate::Context::create_paused) and before
    /// [`unpause`](crate::Context::unpause), so the guest's netfront sees the features off when
    /// it connects. A vif whose backend directory is missing is an error (not silently skipped).
    pub fn disable_vif_offload(&self, domid: DomId, vif_count: usize) -> Result<()> {
        for n in 0..vif_count {
            let dir = vif_backend_path(domid, n);
            if self.read_opt(&format!("{dir}/frontend-id"))?.is_none() {
                return Err(Error::Xenstore {
                    op: "disable vif offload",
                    path: dir,
                    source: io::Error::new(io::ErrorKind::NotFound, "no such vif backend"),
                });
            }
            for key in VIF_OFFLOAD_FEATURES {
                self.write(&format!("{dir}/{key}"), "0")?;
            }
        }
        log::debug!("domain {domid}: offloads disabled on {vif_count} vif(s)");
        Ok(())
    }
}

/// The xenstore directory of vif `n` of `domid` on the dom0 side.
pub fn vif_backend_path(domid: DomId, n: usize) -> String {
    format!("/local/domain/0/backend/vif/{domid}/{n}")
}

/// Errors xenstored returned (as opposed to a broken connection).
fn is_xenstore_error(err: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(err.kind(), NotFound | PermissionDenied | InvalidInput | AlreadyExists | Unsupported | WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_paths_and_features() {
        assert_eq!(vif_backend_path(DomId::new(12), 1), "/local/domain/0/backend/vif/12/1");
        assert_eq!(VIF_OFFLOAD_FEATURES.len(), 4);
    }

    #[test]
    fn without_xenstored_every_call_fails_with_the_path() {
        // Only meaningful where no xenstored runs (the build host): then the open fails.
        if std::path::Path::new("/run/xenstored/socket").exists() || std::path::Path::new("/dev/xen/xenbus").exists() {
            return;
        }
        let xs = Xenstore::new();
        let err = xs.read("/local/domain/0/name").unwrap_err();
        assert!(matches!(err, Error::Xenstore { op: "open", .. }));
        assert_eq!(err.to_string(), "xenstore open /local/domain/0/name");
        assert!(xs.disable_vif_offload(DomId::new(3), 1).is_err());
    }
}
