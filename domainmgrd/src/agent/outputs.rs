//! What the daemon publishes, as EVE's domainmgr does: one `evepubsub` publication per topic
//! under the status directory (EVE's `/run/domainmgr`): its socket `<Topic>.sock` for
//! subscribers, and its checkpoint files `<Topic>/<key>.json`, which the next daemon loads
//! first (so subscribers see the last statuses at once, and what is gone is unpublished once
//! the daemon knows it is gone).
//!
//! Topics and keys, as EVE's: `DomainStatus` and `DomainMetric` by app UUID (dom0's metric
//! under the nil UUID), `HostMemory`, `AssignableAdapters` and `Capabilities` under `global`.
//! EVE's domainmgr also publishes ProcessMetric (dom0's processes), CipherBlockStatus and
//! CipherMetrics; no EVE agent waits for those, and this daemon does not decrypt, so they are
//! not published.

use std::path::{Path, PathBuf};

use evepubsub::{Publication, PublicationOptions};
use serde::{Deserialize, Serialize};

/// The publications.
#[derive(Debug)]
pub struct Outputs {
    /// `DomainStatus`, by app UUID.
    pub domain_status: Publication,
    /// `DomainMetric`, by app UUID (dom0: the nil UUID).
    pub domain_metric: Publication,
    /// `HostMemory`, `global`.
    pub host_memory: Publication,
    /// `AssignableAdapters`, `global`.
    pub assignable_adapters: Publication,
    /// `Capabilities`, `global`.
    pub capabilities: Publication,
}

/// A publication that cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot publish {topic} in {}", dir.display())]
pub struct OpenError {
    /// The agent directory.
    pub dir: PathBuf,
    /// The topic.
    pub topic: String,
    /// Why.
    #[source]
    pub source: evepubsub::Error,
}

impl Outputs {
    /// Opens every publication in `agent_dir`, loading the checkpoints an earlier daemon
    /// left. The daemon holds its instance lock: a socket that still answers belongs to an
    /// abandoned instance of ours, and is taken over.
    pub fn open(agent_dir: &Path, large_root: Option<&Path>) -> Result<Outputs, OpenError> {
        let open = |topic: &str| {
            let options = PublicationOptions {
                persistent: false,
                large_root: large_root.map(Path::to_path_buf),
                max_subscribers: 0,
            };
            let result = match Publication::open(agent_dir, topic, options.clone()) {
                Err(evepubsub::Error::InUse(sock)) => {
                    log::warn!("{}: still answered; taking it over (this daemon holds the lock)", sock.display());
                    let _ = std::fs::remove_file(&sock);
                    Publication::open(agent_dir, topic, options)
                }
                other => other,
            };
            result.map_err(|source| OpenError { dir: agent_dir.to_path_buf(), topic: topic.to_string(), source })
        };
        let outputs = Outputs {
            domain_status: open("DomainStatus")?,
            domain_metric: open("DomainMetric")?,
            host_memory: open("HostMemory")?,
            assignable_adapters: open("AssignableAdapters")?,
            capabilities: open("Capabilities")?,
        };
        // As EVE's domainmgr does at start: DomainStatus says "restarted" only once
        // zedmanager's configs are handled again.
        for p in [&outputs.domain_status, &outputs.host_memory] {
            if let Err(e) = p.clear_restarted() {
                log::error!("{}: cannot clear its restarted counter: {e}", p.topic());
            }
        }
        Ok(outputs)
    }

    /// Publishes `value` as JSON under `key`; errors are logged (a publication that fails
    /// keeps its last value, and the next change tries again).
    pub fn publish<T: Serialize>(publication: &Publication, key: &str, value: &T) -> bool {
        let bytes = match serde_json::to_vec(value) {
            Ok(b) => b,
            Err(e) => {
                log::error!("{}/{key}: cannot serialise: {e}", publication.topic());
                return false;
            }
        };
        match publication.publish(key, &bytes) {
            Ok(()) => true,
            Err(e) => {
                log::error!("{}/{key}: cannot publish: {e}", publication.topic());
                false
            }
        }
    }

    /// Unpublishes `key`; errors are logged.
    pub fn unpublish(publication: &Publication, key: &str) {
        if let Err(e) = publication.unpublish(key) {
            log::error!("{}/{key}: cannot unpublish: {e}", publication.topic());
        }
    }

    /// Stops serving every topic (checkpoints stay for the next daemon).
    pub fn close(self) {
        for p in [self.domain_status, self.domain_metric, self.host_memory, self.assignable_adapters, self.capabilities]
        {
            p.close();
        }
    }
}

/// EVE's `Capabilities`, as its Xen backend reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// VMX/SVM: EVE's Xen backend looks for "VMX enabled"/"SVM enabled" in Xen's boot log;
    /// physinfo's `cap_hvm` is what Xen sets from the same detection.
    #[serde(rename = "HWAssistedVirtualization")]
    pub hw_assisted_virtualization: bool,
    /// An IOMMU in use: EVE looks for "I/O virtualisation enabled"; physinfo's
    /// `cap_hvm_directio` is the same fact.
    #[serde(rename = "IOVirtualization")]
    pub io_virtualization: bool,
    /// EVE's Xen backend reports no CPU pinning support.
    #[serde(rename = "CPUPinning")]
    pub cpu_pinning: bool,
    /// vhost is KVM's; never on Xen.
    #[serde(rename = "UseVHost")]
    pub use_vhost: bool,
}

impl Capabilities {
    /// What a host with this physinfo offers.
    pub fn of(host: &xenctl::HostInfo) -> Capabilities {
        Capabilities {
            hw_assisted_virtualization: host.cap_hvm,
            io_virtualization: host.cap_hvm_directio,
            cpu_pinning: false,
            use_vhost: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_have_eves_shape() {
        let c = Capabilities {
            hw_assisted_virtualization: true,
            io_virtualization: false,
            cpu_pinning: false,
            use_vhost: false,
        };
        let v = serde_json::to_value(c).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"HWAssistedVirtualization": true, "IOVirtualization": false, "CPUPinning": false, "UseVHost": false})
        );
    }
}
