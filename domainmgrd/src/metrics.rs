//! CPU and memory metrics: every `timer.metric.interval / 4` (as EVE publishes), one
//! hypervisor call for all domains plus one for the host, written as EVE's `DomainMetric` (one
//! per managed domain, and dom0 under the nil UUID) and `HostMemory` JSON, atomically. The
//! latest sample also feeds the Prometheus endpoint (`prometheus.rs`).
//!
//! What the numbers mean on Xen (no guest agent, so the hypervisor's view):
//! - `CPUTotalNs`: the domain's CPU time from libxl, in ns, divided by its vCPUs; `CPUScaled`
//!   is that divisor (EVE's convention; dom0 is scaled by the host's CPUs);
//! - `AllocatedMB` and `UsedMemory`: the memory the domain holds now; `AvailableMemory`: what it
//!   may still balloon up to; `UsedMemoryPercent`: held / maximum; `MaxUsedMemory`: the highest
//!   `UsedMemory` seen;
//! - a domain that is not running keeps its last CPU time and allocation, with `Activated`
//!   false and used memory zero, as EVE's domainmgr reports it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crossbeam_channel::Receiver;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use xenctl::DomainInfo;

use crate::eve::{UuidAndVersion, go_time};
use crate::files::{self, Paths};
use crate::hypervisor::{HvResult, Hypervisor};
use crate::settings::Settings;

/// What the sampler knows of a managed domain (kept current by its domain thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brief {
    /// Identity.
    pub uuid_and_version: UuidAndVersion,
    /// The app's name.
    pub display_name: String,
    /// The Xen domain's name.
    pub domain_name: String,
    /// EVE's name for its state (`RUNNING`, `HALTED`, ...).
    pub state: String,
    /// The Xen domain's id; 0 when there is none.
    pub domain_id: u32,
    /// Whether it runs under its current config.
    pub activated: bool,
    /// Its configured vCPUs (the CPU time divisor).
    pub vcpus: u32,
}

/// The managed domains, by UUID.
pub type Registry = Arc<RwLock<HashMap<Uuid, Brief>>>;

/// EVE's `DomainMetric`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainMetric {
    /// Identity (nil UUID for dom0).
    #[serde(rename = "UUIDandVersion")]
    pub uuid_and_version: UuidAndVersion,
    /// CPU time in ns divided by `CPUScaled`.
    #[serde(rename = "CPUTotalNs")]
    pub cpu_total_ns: u64,
    /// The divisor applied to `CPUTotalNs`.
    #[serde(rename = "CPUScaled")]
    pub cpu_scaled: u32,
    /// Memory held, MiB.
    #[serde(rename = "AllocatedMB")]
    pub allocated_mb: u32,
    /// Memory in use, MiB (= held, on Xen without a guest agent).
    #[serde(rename = "UsedMemory")]
    pub used_memory: u32,
    /// The highest `UsedMemory` seen, MiB.
    #[serde(rename = "MaxUsedMemory")]
    pub max_used_memory: u32,
    /// Memory it may still take (up to its maximum), MiB.
    #[serde(rename = "AvailableMemory")]
    pub available_memory: u32,
    /// Used / maximum, percent.
    #[serde(rename = "UsedMemoryPercent")]
    pub used_memory_percent: f64,
    /// When it was sampled.
    #[serde(rename = "LastHeard", with = "go_time")]
    pub last_heard: Option<DateTime<Utc>>,
    /// Whether it runs.
    #[serde(rename = "Activated")]
    pub activated: bool,
    /// Kubernetes node (always empty here).
    #[serde(rename = "NodeName")]
    pub node_name: String,
}

/// EVE's `HostMemory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostMemory {
    /// All memory Xen manages, MiB.
    #[serde(rename = "TotalMemoryMB")]
    pub total_memory_mb: u64,
    /// Memory no domain holds, MiB.
    #[serde(rename = "FreeMemoryMB")]
    pub free_memory_mb: u64,
    /// dom0's memory (EVE itself runs there), MiB.
    #[serde(rename = "UsedEveMB")]
    pub used_eve_mb: u64,
    /// Kernel memory of EVE (not measured here; 0).
    #[serde(rename = "KmemUsedEveMB")]
    pub kmem_used_eve_mb: u64,
    /// Physical CPUs.
    #[serde(rename = "Ncpus")]
    pub ncpus: u32,
}

/// One sample: the metrics written, with each domain's name and domid for Prometheus.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Managed domains and dom0: (display name, domid, unscaled CPU ns, max memory KiB, metric).
    pub domains: Vec<SampledDomain>,
    /// The host.
    pub host: Option<HostMemory>,
}

/// A domain in a sample.
#[derive(Debug, Clone)]
pub struct SampledDomain {
    /// The app's name (`Domain-0` for dom0).
    pub name: String,
    /// Domain id (0 for dom0 and for halted domains).
    pub domid: u32,
    /// CPU time, ns, not divided by vCPUs.
    pub cpu_ns: u64,
    /// Maximum memory, bytes.
    pub max_memory_bytes: u64,
    /// vCPUs online.
    pub vcpus: u32,
    /// The EVE metric.
    pub metric: DomainMetric,
}

fn kib_to_mib(kib: u64) -> u32 {
    u32::try_from(kib.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// Takes samples and writes the metric files.
pub struct Sampler {
    hv: Arc<dyn Hypervisor>,
    paths: Arc<Paths>,
    registry: Registry,
    previous: HashMap<Uuid, DomainMetric>,
    written: HashSet<Uuid>,
    latest: Arc<Mutex<Sample>>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler").field("written", &self.written.len()).finish_non_exhaustive()
    }
}

impl Sampler {
    /// A sampler over `registry`'s domains.
    pub fn new(hv: Arc<dyn Hypervisor>, paths: Arc<Paths>, registry: Registry) -> Sampler {
        Sampler { hv, paths, registry, previous: HashMap::new(), written: HashSet::new(), latest: Arc::default() }
    }

    /// The latest sample, shared (for the Prometheus endpoint).
    pub fn latest(&self) -> Arc<Mutex<Sample>> {
        Arc::clone(&self.latest)
    }

    /// Samples once and writes every metric file: one `sample()` and one `host_info()` call.
    pub fn sample_once(&mut self) -> HvResult<()> {
        let infos = self.hv.sample()?;
        let host = self.hv.host_info()?;
        let now = Some(Utc::now());
        let by_domid: HashMap<u32, &DomainInfo> = infos.iter().map(|d| (d.domid.get(), d)).collect();
        let mut sample = Sample::default();

        if let Some(dom0) = by_domid.get(&0) {
            let ncpus = host.nr_cpus.max(1);
            let held = kib_to_mib(dom0.current_memory_kib);
            let metric = DomainMetric {
                uuid_and_version: UuidAndVersion::default(),
                cpu_total_ns: dom0.cpu_time_ns / u64::from(ncpus),
                cpu_scaled: ncpus,
                allocated_mb: held,
                used_memory: held,
                max_used_memory: held.max(self.previous.get(&Uuid::nil()).map_or(0, |m| m.max_used_memory)),
                available_memory: kib_to_mib(dom0.max_memory_kib.saturating_sub(dom0.current_memory_kib)),
                used_memory_percent: percent(dom0.current_memory_kib, dom0.max_memory_kib),
                last_heard: now,
                activated: true,
                node_name: String::new(),
            };
            sample.domains.push(SampledDomain {
                name: "Domain-0".into(),
                domid: 0,
                cpu_ns: dom0.cpu_time_ns,
                max_memory_bytes: dom0.max_memory_kib * 1024,
                vcpus: dom0.vcpus_online,
                metric,
            });
            sample.host = Some(HostMemory {
                total_memory_mb: host.total_memory_bytes >> 20,
                free_memory_mb: host.free_memory_bytes >> 20,
                used_eve_mb: u64::from(held),
                kmem_used_eve_mb: 0,
                ncpus: host.nr_cpus,
            });
        }

        let briefs: Vec<(Uuid, Brief)> = self.registry.read().iter().map(|(u, b)| (*u, b.clone())).collect();
        for (uuid, brief) in &briefs {
            let info =
                (brief.domain_id != 0).then(|| by_domid.get(&brief.domain_id)).flatten().filter(|i| i.uuid == *uuid);
            let previous = self.previous.get(uuid);
            let metric = match info {
                Some(i) => {
                    let vcpus = brief.vcpus.max(1);
                    let held = kib_to_mib(i.current_memory_kib);
                    let running = brief.activated
                        && !matches!(i.state, xenctl::DomainState::Shutdown(_) | xenctl::DomainState::Dying);
                    DomainMetric {
                        uuid_and_version: brief.uuid_and_version.clone(),
                        cpu_total_ns: i.cpu_time_ns / u64::from(vcpus),
                        cpu_scaled: vcpus,
                        allocated_mb: held,
                        used_memory: if running { held } else { 0 },
                        max_used_memory: if running { held.max(previous.map_or(0, |m| m.max_used_memory)) } else { 0 },
                        available_memory: kib_to_mib(i.max_memory_kib.saturating_sub(i.current_memory_kib)),
                        used_memory_percent: if running {
                            percent(i.current_memory_kib, i.max_memory_kib)
                        } else {
                            0.0
                        },
                        last_heard: now,
                        activated: running,
                        node_name: String::new(),
                    }
                }
                // Not running: keep the last numbers, marked inactive with no memory in use.
                None => DomainMetric {
                    uuid_and_version: brief.uuid_and_version.clone(),
                    used_memory: 0,
                    max_used_memory: 0,
                    used_memory_percent: 0.0,
                    activated: false,
                    last_heard: previous.and_then(|p| p.last_heard),
                    ..previous.cloned().unwrap_or(DomainMetric {
                        uuid_and_version: brief.uuid_and_version.clone(),
                        cpu_total_ns: 0,
                        cpu_scaled: brief.vcpus.max(1),
                        allocated_mb: 0,
                        used_memory: 0,
                        max_used_memory: 0,
                        available_memory: 0,
                        used_memory_percent: 0.0,
                        last_heard: None,
                        activated: false,
                        node_name: String::new(),
                    })
                },
            };
            sample.domains.push(SampledDomain {
                name: brief.display_name.clone(),
                domid: info.map_or(0, |i| i.domid.get()),
                cpu_ns: info.map_or(metric.cpu_total_ns * u64::from(metric.cpu_scaled), |i| i.cpu_time_ns),
                max_memory_bytes: info.map_or(0, |i| i.max_memory_kib * 1024),
                vcpus: info.map_or(0, |i| i.vcpus_online),
                metric,
            });
        }

        self.write(&sample);
        *self.latest.lock() = sample;
        Ok(())
    }

    fn write(&mut self, sample: &Sample) {
        let dir = self.paths.status_dir.join("DomainMetric");
        let _ = std::fs::create_dir_all(&dir);
        let mut now_written = HashSet::new();
        for d in &sample.domains {
            let uuid = d.metric.uuid_and_version.uuid;
            match serde_json::to_vec_pretty(&d.metric) {
                Ok(bytes) => {
                    if let Err(e) = files::write_atomic(&dir.join(format!("{uuid}.json")), &bytes) {
                        log::error!("cannot write the metrics of {uuid}: {e}");
                    }
                }
                Err(e) => log::error!("cannot serialise the metrics of {uuid}: {e}"),
            }
            now_written.insert(uuid);
            self.previous.insert(uuid, d.metric.clone());
        }
        // Domains whose config is gone: their metrics go too.
        for gone in self.written.difference(&now_written) {
            let _ = files::remove_if_exists(&dir.join(format!("{gone}.json")));
            self.previous.remove(gone);
        }
        self.written = now_written;
        if let Some(host) = &sample.host {
            let path = self.paths.status_dir.join("HostMemory/global.json");
            let _ = std::fs::create_dir_all(self.paths.status_dir.join("HostMemory"));
            if let Ok(bytes) = serde_json::to_vec_pretty(host)
                && let Err(e) = files::write_atomic(&path, &bytes)
            {
                log::error!("cannot write {}: {e}", path.display());
            }
        }
    }

    /// The sampling loop: every `timer.metric.interval / 4` until `stop` says so.
    pub fn run(mut self, settings: Arc<RwLock<Settings>>, stop: Receiver<()>) {
        loop {
            let started = std::time::Instant::now();
            if let Err(e) = self.sample_once() {
                log::error!("metrics sample failed: {e}");
            }
            log::debug!("metrics sample took {:?}", started.elapsed());
            let period = (settings.read().metric_interval / 4).max(Duration::from_secs(1));
            match stop.recv_timeout(period.saturating_sub(started.elapsed())) {
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                // Asked to stop, or the daemon is gone.
                _ => return,
            }
        }
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}
