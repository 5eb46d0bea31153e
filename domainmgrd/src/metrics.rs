//! CPU and memory metrics: every `timer.metric.interval / 4` (as EVE publishes), one
//! hypervisor call for all domains plus one for the host, written as EVE's `DomainMetric` (one
//! per managed domain, and dom0 under the nil UUID) and `HostMemory` JSON, atomically. The
//! latest sample also feeds the Prometheus endpoint (`prometheus.rs`); it is updated before
//! the files are written, so a reader of the files never sees newer numbers than a scraper.
//!
//! What the numbers mean on Xen (no guest agent, so the hypervisor's view):
//! - `CPUTotalNs`: the domain's CPU time from libxl, in ns, divided by its vCPUs; `CPUScaled`
//!   is that divisor (EVE's convention). dom0's entry, as in EVE's `hypervisor/xen.go`, stands
//!   for the whole device: every domain's CPU time, divided by the host's CPUs;
//! - `AllocatedMB` and `UsedMemory`: the memory the domain holds now; `AvailableMemory`: what it
//!   may still balloon up to; `UsedMemoryPercent`: held / maximum; `MaxUsedMemory`: the highest
//!   `UsedMemory` seen. A maximum above the host's memory (dom0's is often "no limit") counts
//!   as the host's memory;
//! - a domain that is not running keeps its last CPU time and allocation, with `Activated`
//!   false and used memory zero, as EVE's domainmgr reports it;
//! - when physinfo fails, the domains are still published (scaled and bounded by the host as
//!   last seen) and the error is logged; `HostMemory` keeps its last good content.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crossbeam_channel::Receiver;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use xenctl::{DomainInfo, HostInfo};

use crate::agent::Outputs;
use crate::eve::{UuidAndVersion, go_time};
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

/// One sample: the metrics written, with what Prometheus needs besides.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// dom0 first, then the managed domains.
    pub domains: Vec<SampledDomain>,
    /// The host, as EVE's `HostMemory` (MiB); `None` when physinfo failed.
    pub host: Option<HostMemory>,
    /// The host in bytes, unrounded; `None` when physinfo failed.
    pub host_bytes: Option<HostBytes>,
}

/// The host's memory in bytes (what `HostMemory` rounds to MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostBytes {
    /// All memory Xen manages.
    pub total: u64,
    /// Memory no domain holds.
    pub free: u64,
    /// dom0's memory (EVE itself runs there).
    pub eve: u64,
    /// Physical CPUs.
    pub ncpus: u32,
}

/// A domain in a sample.
#[derive(Debug, Clone)]
pub struct SampledDomain {
    /// The app's name (`Domain-0` for dom0).
    pub name: String,
    /// Domain id (0 for dom0, and when the domain does not exist).
    pub domid: u32,
    /// Its own CPU time, ns, not divided by vCPUs; `None` when it has no domain now (a
    /// counter that ended: the last value is in the metric, scaled).
    pub cpu_ns: Option<u64>,
    /// Memory it holds now, bytes (0 when not running).
    pub memory_bytes: u64,
    /// The most it may hold, bytes, at most the host's memory ("no limit" is the host's size).
    pub max_memory_bytes: u64,
    /// The most it held while running, bytes.
    pub max_used_bytes: u64,
    /// vCPUs online.
    pub vcpus: u32,
    /// The EVE metric.
    pub metric: DomainMetric,
}

/// MiB as EVE counts them (`roundFromKbytesToMbytes`): KiB to the nearest MiB. A PVH or HVM
/// guest holds a few pages beyond its memory, which rounding up would count as a whole MiB.
fn bytes_to_mib(bytes: u64) -> u32 {
    u32::try_from(((bytes >> 10) + 512) >> 10).unwrap_or(u32::MAX)
}

/// Takes samples and writes the metric files.
pub struct Sampler {
    hv: Arc<dyn Hypervisor>,
    outputs: Arc<Outputs>,
    registry: Registry,
    previous: HashMap<Uuid, SampledDomain>,
    /// The host as last seen, for when physinfo fails.
    host: Option<HostInfo>,
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
    pub fn new(hv: Arc<dyn Hypervisor>, outputs: Arc<Outputs>, registry: Registry) -> Sampler {
        Sampler {
            hv,
            outputs,
            registry,
            previous: HashMap::new(),
            host: None,
            written: HashSet::new(),
            latest: Arc::default(),
        }
    }

    /// The latest sample, shared (for the Prometheus endpoint).
    pub fn latest(&self) -> Arc<Mutex<Sample>> {
        Arc::clone(&self.latest)
    }

    /// Samples once and writes every metric file: one `sample()` and one `host_info()` call.
    /// Fails only if the domains cannot be listed; without physinfo the domains' metrics are
    /// still published (scaled and bounded by the host as last seen), HostMemory is not.
    pub fn sample_once(&mut self) -> HvResult<()> {
        let infos = self.hv.sample()?;
        let host_now = match self.hv.host_info() {
            Ok(h) => Some(h),
            Err(e) => {
                log::error!("metrics: cannot read the host's CPUs and memory ({e}); HostMemory is not updated");
                None
            }
        };
        if let Some(h) = &host_now {
            // Capabilities too, should the start-up reading have failed (a no-op if unchanged).
            Outputs::publish(&self.outputs.capabilities, "global", &crate::agent::outputs::Capabilities::of(h));
            self.host = Some(h.clone());
        }
        let briefs: Vec<(Uuid, Brief)> = self.registry.read().iter().map(|(u, b)| (*u, b.clone())).collect();
        let sample = build(&infos, self.host.as_ref(), host_now.is_some(), &briefs, &self.previous, Utc::now());
        // Serve it before writing it: whoever sees a file can scrape the same numbers.
        *self.latest.lock() = sample.clone();
        self.write(&sample);
        Ok(())
    }

    fn write(&mut self, sample: &Sample) {
        let metrics = &self.outputs.domain_metric;
        let mut now_written = HashSet::new();
        for d in &sample.domains {
            let uuid = d.metric.uuid_and_version.uuid;
            Outputs::publish(metrics, &uuid.to_string(), &d.metric);
            now_written.insert(uuid);
            self.previous.insert(uuid, d.clone());
        }
        // Domains whose config is gone (also those an earlier daemon published): their
        // metrics go too.
        for key in metrics.keys() {
            if key.parse::<Uuid>().map_or(true, |u| !now_written.contains(&u)) {
                Outputs::unpublish(metrics, &key);
            }
        }
        for gone in self.written.difference(&now_written) {
            self.previous.remove(gone);
        }
        self.written = now_written;
        if let Some(host) = &sample.host {
            Outputs::publish(&self.outputs.host_memory, "global", host);
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

/// One running domain's memory numbers: held, ceiling (bounded by the host), percent.
fn memory_of(i: &DomainInfo, host: Option<&HostInfo>) -> (u64, u64) {
    let held = i.current_memory_kib.saturating_mul(1024);
    let max = i.max_memory_kib.saturating_mul(1024);
    // dom0's ceiling is often "no limit" (~16 TiB): what it could take is at most the host.
    let max = host.map_or(max, |h| max.min(h.total_memory_bytes)).max(held);
    (held, max)
}

/// The sample for `infos` (one list call) and `host`; `host_fresh` says whether `host` was
/// read for this sample (else HostMemory is left out).
fn build(
    infos: &[DomainInfo],
    host: Option<&HostInfo>,
    host_fresh: bool,
    briefs: &[(Uuid, Brief)],
    previous: &HashMap<Uuid, SampledDomain>,
    now: DateTime<Utc>,
) -> Sample {
    let by_domid: HashMap<u32, &DomainInfo> = infos.iter().map(|d| (d.domid.get(), d)).collect();
    let mut sample = Sample::default();

    if let Some(dom0) = by_domid.get(&0) {
        // EVE (hypervisor/xen.go): dom0's entry stands for the whole device, so it carries
        // every domain's CPU time, divided by the host's CPUs.
        let ncpus = host.map_or(1, |h| h.nr_cpus.max(1));
        let all_cpu: u64 = infos.iter().map(|d| d.cpu_time_ns).fold(0, u64::saturating_add);
        let (held, max) = memory_of(dom0, host);
        let max_used = held.max(previous.get(&Uuid::nil()).map_or(0, |p| p.max_used_bytes));
        let metric = DomainMetric {
            uuid_and_version: UuidAndVersion::default(),
            cpu_total_ns: all_cpu / u64::from(ncpus),
            cpu_scaled: ncpus,
            allocated_mb: bytes_to_mib(held),
            used_memory: bytes_to_mib(held),
            max_used_memory: bytes_to_mib(max_used),
            available_memory: bytes_to_mib(max - held),
            used_memory_percent: percent(held, max),
            last_heard: Some(now),
            activated: true,
            node_name: String::new(),
        };
        sample.domains.push(SampledDomain {
            name: "Domain-0".into(),
            domid: 0,
            cpu_ns: Some(dom0.cpu_time_ns),
            memory_bytes: held,
            max_memory_bytes: max,
            max_used_bytes: max_used,
            vcpus: dom0.vcpus_online,
            metric,
        });
        if let Some(h) = host.filter(|_| host_fresh) {
            sample.host = Some(HostMemory {
                total_memory_mb: h.total_memory_bytes >> 20,
                free_memory_mb: h.free_memory_bytes >> 20,
                used_eve_mb: u64::from(bytes_to_mib(held)),
                kmem_used_eve_mb: 0,
                ncpus: h.nr_cpus,
            });
            sample.host_bytes =
                Some(HostBytes { total: h.total_memory_bytes, free: h.free_memory_bytes, eve: held, ncpus: h.nr_cpus });
        }
    }

    for (uuid, brief) in briefs {
        let info = (brief.domain_id != 0).then(|| by_domid.get(&brief.domain_id)).flatten().filter(|i| i.uuid == *uuid);
        let previous = previous.get(uuid);
        let sampled = match info {
            Some(i) => {
                let vcpus = brief.vcpus.max(1);
                let (held, max) = memory_of(i, host);
                let running = brief.activated
                    && !matches!(i.state, xenctl::DomainState::Shutdown(_) | xenctl::DomainState::Dying);
                let max_used = if running { held.max(previous.map_or(0, |p| p.max_used_bytes)) } else { 0 };
                SampledDomain {
                    name: brief.display_name.clone(),
                    domid: i.domid.get(),
                    cpu_ns: Some(i.cpu_time_ns),
                    memory_bytes: held,
                    max_memory_bytes: max,
                    max_used_bytes: max_used,
                    vcpus: i.vcpus_online,
                    metric: DomainMetric {
                        uuid_and_version: brief.uuid_and_version.clone(),
                        cpu_total_ns: i.cpu_time_ns / u64::from(vcpus),
                        cpu_scaled: vcpus,
                        allocated_mb: bytes_to_mib(held),
                        used_memory: if running { bytes_to_mib(held) } else { 0 },
                        max_used_memory: bytes_to_mib(max_used),
                        available_memory: bytes_to_mib(max - held),
                        used_memory_percent: if running { percent(held, max) } else { 0.0 },
                        last_heard: Some(now),
                        activated: running,
                        node_name: String::new(),
                    },
                }
            }
            // Not running: EVE keeps the last CPU time and allocation, marked inactive with no
            // memory in use. Nothing here is live, so Prometheus gets only "not running".
            None => {
                let last = previous.map(|p| p.metric.clone());
                SampledDomain {
                    name: brief.display_name.clone(),
                    domid: 0,
                    cpu_ns: None,
                    memory_bytes: 0,
                    max_memory_bytes: 0,
                    max_used_bytes: 0,
                    vcpus: 0,
                    metric: DomainMetric {
                        uuid_and_version: brief.uuid_and_version.clone(),
                        used_memory: 0,
                        max_used_memory: 0,
                        used_memory_percent: 0.0,
                        activated: false,
                        ..last.unwrap_or(DomainMetric {
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
                }
            }
        };
        sample.domains.push(sampled);
    }
    sample
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenctl::{DomId, DomainState};

    fn info(domid: u32, uuid: Uuid, cpu_ns: u64, mem_mib: u64, max_kib: u64) -> DomainInfo {
        DomainInfo {
            domid: DomId::new(domid),
            name: None,
            uuid,
            kind: None,
            state: DomainState::Blocked,
            cpu_time_ns: cpu_ns,
            current_memory_kib: mem_mib * 1024,
            max_memory_kib: max_kib,
            outstanding_memory_kib: 0,
            vcpus_online: 2,
            vcpus_max: 2,
        }
    }

    fn host(total_mib: u64, free_mib: u64) -> HostInfo {
        HostInfo {
            nr_cpus: 4,
            cpu_khz: 1,
            threads_per_core: 1,
            cores_per_socket: 4,
            nr_nodes: 1,
            total_memory_bytes: total_mib << 20,
            free_memory_bytes: free_mib << 20,
            scrub_memory_bytes: 0,
            cap_hvm: false,
            cap_pv: true,
            cap_hvm_directio: false,
            xen_version: "4.17".into(),
        }
    }

    fn brief(uuid: Uuid, domid: u32) -> (Uuid, Brief) {
        let b = Brief {
            uuid_and_version: UuidAndVersion { uuid, version: "1".into() },
            display_name: "app".into(),
            domain_name: "app".into(),
            state: "RUNNING".into(),
            domain_id: domid,
            activated: domid != 0,
            vcpus: 2,
        };
        (uuid, b)
    }

    #[test]
    fn dom0_carries_every_domains_cpu_time_and_a_no_limit_ceiling_is_the_hosts_memory() {
        let app = Uuid::from_u128(1);
        let other = Uuid::from_u128(2); // not managed: its CPU time still counts for the device
        let no_limit = 16 << 30; // KiB: 16 TiB
        let infos = [
            info(0, Uuid::nil(), 4_000, 1024, no_limit),
            info(3, app, 8_000, 256, 512 * 1024),
            info(4, other, 12_000, 128, 128 * 1024),
        ];
        let h = host(4096, 2048);
        let s = build(&infos, Some(&h), true, &[brief(app, 3)], &HashMap::new(), Utc::now());
        let dom0 = &s.domains[0];
        assert_eq!((dom0.metric.cpu_total_ns, dom0.metric.cpu_scaled), (24_000 / 4, 4));
        assert_eq!(dom0.cpu_ns, Some(4_000), "its own, for Prometheus");
        assert_eq!(dom0.max_memory_bytes, 4096 << 20, "clamped to the host");
        assert_eq!((dom0.metric.available_memory, dom0.metric.used_memory_percent), (3072, 25.0));
        let app_m = &s.domains[1].metric;
        assert_eq!((app_m.cpu_total_ns, app_m.cpu_scaled, app_m.available_memory), (4_000, 2, 256));
        assert_eq!(app_m.used_memory_percent, 50.0);
        assert_eq!(s.host_bytes, Some(HostBytes { total: 4096 << 20, free: 2048 << 20, eve: 1024 << 20, ncpus: 4 }));
    }

    #[test]
    fn without_physinfo_the_domains_are_still_reported_by_the_host_last_seen() {
        let app = Uuid::from_u128(1);
        let infos = [info(0, Uuid::nil(), 4_000, 1024, 16 << 30), info(3, app, 8_000, 256, 512 * 1024)];
        let last = host(4096, 2048);
        let s = build(&infos, Some(&last), false, &[brief(app, 3)], &HashMap::new(), Utc::now());
        assert_eq!(s.domains.len(), 2);
        assert_eq!((s.domains[0].metric.cpu_scaled, s.domains[0].max_memory_bytes), (4, 4096 << 20));
        assert!(s.host.is_none() && s.host_bytes.is_none(), "no HostMemory from stale numbers");
        let s = build(&infos, None, false, &[brief(app, 3)], &HashMap::new(), Utc::now());
        assert_eq!(s.domains[0].metric.cpu_scaled, 1, "never seen: unscaled");
    }

    #[test]
    fn a_halted_domain_keeps_its_last_numbers_but_no_counter() {
        let app = Uuid::from_u128(1);
        let h = host(4096, 2048);
        let running = build(
            &[info(0, Uuid::nil(), 1, 1024, 1 << 20), info(3, app, 8_000, 256, 512 * 1024)],
            Some(&h),
            true,
            &[brief(app, 3)],
            &HashMap::new(),
            Utc::now(),
        );
        let previous: HashMap<Uuid, SampledDomain> =
            running.domains.iter().map(|d| (d.metric.uuid_and_version.uuid, d.clone())).collect();
        let s =
            build(&[info(0, Uuid::nil(), 1, 1024, 1 << 20)], Some(&h), true, &[brief(app, 0)], &previous, Utc::now());
        let d = &s.domains[1];
        assert_eq!((d.cpu_ns, d.memory_bytes, d.metric.activated), (None, 0, false));
        assert_eq!((d.metric.cpu_total_ns, d.metric.allocated_mb, d.metric.used_memory), (4_000, 256, 0));
        assert_eq!(d.metric.last_heard, running.domains[1].metric.last_heard);
    }
}
