//! What a domain and the host look like right now: [`DomainInfo`] (state, CPU time, memory,
//! vCPUs) from `libxl_domain_info` / `libxl_list_domain`, and [`HostInfo`] from
//! `libxl_get_physinfo`.

use std::fmt;

use uuid::Uuid;

use crate::context::Context;
use crate::error::{Error, LibxlErrorCode, Result, Subject, check};
use crate::raw::{MallocString, Owned};
use crate::types::{DomId, DomainKind, ShutdownReason};

/// A domain's run state, summarised the way `xl list` prints it (one of r, b, p, s, c, d).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainState {
    /// On a CPU now (`r`).
    Running,
    /// Runnable but idle, waiting for an event (`b`). A healthy guest is usually here.
    Blocked,
    /// Paused by the toolstack (`p`).
    Paused,
    /// Shut down and waiting for the toolstack to destroy it (`s`, or `c` for a crash).
    Shutdown(ShutdownReason),
    /// Being destroyed (`d`): its resources are still being released.
    Dying,
}

impl DomainState {
    /// `xl list`'s one-letter code.
    pub fn letter(self) -> char {
        match self {
            DomainState::Running => 'r',
            DomainState::Blocked => 'b',
            DomainState::Paused => 'p',
            DomainState::Shutdown(ShutdownReason::Crash) => 'c',
            DomainState::Shutdown(_) => 's',
            DomainState::Dying => 'd',
        }
    }

    /// Whether the guest can run (running or blocked, not paused, shut down or dying).
    pub fn is_live(self) -> bool {
        matches!(self, DomainState::Running | DomainState::Blocked)
    }
}

impl fmt::Display for DomainState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainState::Running => f.write_str("running"),
            DomainState::Blocked => f.write_str("blocked"),
            DomainState::Paused => f.write_str("paused"),
            DomainState::Shutdown(reason) => write!(f, "shutdown ({reason})"),
            DomainState::Dying => f.write_str("dying"),
        }
    }
}

/// A snapshot of one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInfo {
    /// Domain id.
    pub domid: DomId,
    /// Name, from xenstore; `None` if it has none (a domain being built or torn down).
    pub name: Option<String>,
    /// UUID.
    pub uuid: Uuid,
    /// PV, PVH or HVM (`None` for a type this crate does not know).
    pub kind: Option<DomainKind>,
    /// Running, blocked, paused, shut down (with the reason) or dying.
    pub state: DomainState,
    /// Total CPU time used by all its vCPUs, nanoseconds.
    pub cpu_time_ns: u64,
    /// Memory it has now, KiB.
    pub current_memory_kib: u64,
    /// Its memory ceiling, KiB.
    pub max_memory_kib: u64,
    /// Memory claimed but not yet allocated, KiB.
    pub outstanding_memory_kib: u64,
    /// vCPUs online.
    pub vcpus_online: u32,
    /// vCPUs it may have (highest vCPU id + 1).
    pub vcpus_max: u32,
}

impl DomainInfo {
    /// Reads an initialised `libxl_dominfo` (the name is looked up separately).
    pub(crate) fn from_libxl(d: &xen_sys::libxl_dominfo, name: Option<String>) -> DomainInfo {
        let state = if d.dying {
            DomainState::Dying
        } else if d.shutdown {
            DomainState::Shutdown(ShutdownReason::from_libxl(d.shutdown_reason))
        } else if d.paused {
            DomainState::Paused
        } else if d.running {
            DomainState::Running
        } else {
            DomainState::Blocked
        };
        DomainInfo {
            domid: DomId::new(d.domid),
            name,
            uuid: Uuid::from_bytes(d.uuid.uuid),
            kind: DomainKind::from_libxl(d.domain_type),
            state,
            cpu_time_ns: d.cpu_time,
            current_memory_kib: d.current_memkb,
            max_memory_kib: d.max_memkb,
            outstanding_memory_kib: d.outstanding_memkb,
            vcpus_online: d.vcpu_online,
            vcpus_max: d.vcpu_max_id.saturating_add(1),
        }
    }
}

/// The host's CPUs and memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// Physical CPUs (threads) Xen runs on.
    pub nr_cpus: u32,
    /// CPU clock, kHz.
    pub cpu_khz: u32,
    /// Threads per core.
    pub threads_per_core: u32,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// NUMA nodes.
    pub nr_nodes: u32,
    /// All memory Xen manages, bytes.
    pub total_memory_bytes: u64,
    /// Memory not allocated to any domain, bytes.
    pub free_memory_bytes: u64,
    /// Memory waiting to be scrubbed before reuse, bytes.
    pub scrub_memory_bytes: u64,
    /// Whether the host can run HVM guests.
    pub cap_hvm: bool,
    /// Whether the host can run PV guests.
    pub cap_pv: bool,
    /// Whether the host has an IOMMU Xen uses (PCI passthrough to HVM/PVH guests; Xen's
    /// "I/O virtualisation enabled").
    pub cap_hvm_directio: bool,
    /// The hypervisor's version, e.g. `4.17.7`.
    pub xen_version: String,
}

/// Xen's page size on x86, in which physinfo counts memory.
const PAGE_SIZE: u64 = 4096;

impl Context {
    /// A snapshot of one domain.
    pub fn info(&self, domid: DomId) -> Result<DomainInfo> {
        let mut info = Owned::<xen_sys::libxl_dominfo>::new();
        // SAFETY: ctx is live; info is initialised and outlives the call.
        let rc = unsafe { xen_sys::libxl_domain_info(self.raw(), info.as_mut_ptr(), domid.get()) };
        check(rc, "info", || Subject::Domain(domid))?;
        Ok(DomainInfo::from_libxl(&info, self.domain_name(domid)))
    }

    /// Every domain, dom0 included, in domid order, with names. Reads all domains in one libxl
    /// call, plus one xenstore read per domain for its name.
    pub fn list(&self) -> Result<Vec<DomainInfo>> {
        let mut domains = self.list_without_names()?;
        for d in &mut domains {
            d.name = self.domain_name(d.domid);
        }
        Ok(domains)
    }

    /// Every domain without their names: one libxl call, no xenstore reads. For samplers that
    /// already know the names (metrics).
    pub fn list_without_names(&self) -> Result<Vec<DomainInfo>> {
        let mut n: i32 = 0;
        // SAFETY: ctx is live; n is a valid out-pointer.
        let list = unsafe { xen_sys::libxl_list_domain(self.raw(), &mut n) };
        if list.is_null() {
            return Err(Error::Libxl { op: "list domains", subject: Subject::Host, code: LibxlErrorCode::ERROR_FAIL });
        }
        let guard = DominfoList { list, n };
        let len = usize::try_from(n).unwrap_or(0);
        // SAFETY: libxl returned n initialised entries at list, owned by guard.
        let entries = unsafe { std::slice::from_raw_parts(guard.list, len) };
        Ok(entries.iter().map(|d| DomainInfo::from_libxl(d, None)).collect())
    }

    /// The domain's name, or `None` if it has none or does not exist.
    pub fn domain_name(&self, domid: DomId) -> Option<String> {
        // SAFETY: ctx is live; the result is malloc'd (or null) and ours.
        let p = unsafe { xen_sys::libxl_domid_to_name(self.raw(), domid.get()) };
        // SAFETY: p is null or a malloc'd NUL-terminated string we now own.
        unsafe { MallocString::from_raw(p) }.map(|s| s.to_string_lossy())
    }

    /// The id of the domain called `name`, if one exists.
    ///
    /// `Ok(None)` only when no domain has that name; a failure to list the domains is an error.
    pub fn domid_of(&self, name: &str) -> Result<Option<DomId>> {
        let name_c = crate::raw::c_string("name", name)?;
        let mut domid: u32 = 0;
        // SAFETY: ctx is live; name_c is a valid C string; domid a valid out-pointer.
        let rc = unsafe { xen_sys::libxl_name_to_domid(self.raw(), name_c.as_ptr(), &mut domid) };
        // libxl_name_to_domid answers ERROR_INVAL for "no such name" and other codes when it
        // could not list the domains.
        if rc == xen_sys::ERROR_INVAL {
            return Ok(None);
        }
        check(rc, "find domain by name", || Subject::Named(name.to_string()))?;
        Ok(Some(DomId::new(domid)))
    }

    /// The host's CPUs and memory.
    pub fn host_info(&self) -> Result<HostInfo> {
        let mut p = Owned::<xen_sys::libxl_physinfo>::new();
        // SAFETY: ctx is live; p is initialised and outlives the call.
        let rc = unsafe { xen_sys::libxl_get_physinfo(self.raw(), p.as_mut_ptr()) };
        check(rc, "physinfo", || Subject::Host)?;
        Ok(HostInfo {
            nr_cpus: p.nr_cpus,
            cpu_khz: p.cpu_khz,
            threads_per_core: p.threads_per_core,
            cores_per_socket: p.cores_per_socket,
            nr_nodes: p.nr_nodes,
            total_memory_bytes: p.total_pages * PAGE_SIZE,
            free_memory_bytes: p.free_pages * PAGE_SIZE,
            scrub_memory_bytes: p.scrub_pages * PAGE_SIZE,
            cap_hvm: p.cap_hvm,
            cap_pv: p.cap_pv,
            cap_hvm_directio: p.cap_hvm_directio,
            xen_version: self.versions().hypervisor.clone(),
        })
    }
}

struct DominfoList {
    list: *mut xen_sys::libxl_dominfo,
    n: i32,
}

impl Drop for DominfoList {
    fn drop(&mut self) {
        // SAFETY: list/n came from libxl_list_domain; freed once with the function libxl.h names.
        unsafe { xen_sys::libxl_dominfo_list_free(self.list, self.n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dominfo() -> Owned<xen_sys::libxl_dominfo> {
        let mut d = Owned::<xen_sys::libxl_dominfo>::new();
        d.domid = 4;
        d.uuid.uuid = [7; 16];
        d.cpu_time = 1_500_000_000;
        d.current_memkb = 131072;
        d.max_memkb = 262144;
        d.vcpu_online = 1;
        d.vcpu_max_id = 1;
        d.domain_type = xen_sys::LIBXL_DOMAIN_TYPE_PV;
        d
    }

    #[test]
    fn dominfo_converts_field_by_field() {
        let mut d = dominfo();
        d.running = true;
        let info = DomainInfo::from_libxl(&d, Some("web".into()));
        assert_eq!(info.domid, DomId::new(4));
        assert_eq!(info.name.as_deref(), Some("web"));
        assert_eq!(info.uuid, Uuid::from_bytes([7; 16]));
        assert_eq!(info.kind, Some(DomainKind::Pv));
        assert_eq!(info.state, DomainState::Running);
        assert_eq!((info.cpu_time_ns, info.current_memory_kib, info.max_memory_kib), (1_500_000_000, 131072, 262144));
        assert_eq!((info.vcpus_online, info.vcpus_max), (1, 2));
    }

    #[test]
    fn state_priority_is_dying_shutdown_paused_running_blocked() {
        let mut d = dominfo();
        assert_eq!(DomainInfo::from_libxl(&d, None).state, DomainState::Blocked);
        d.paused = true;
        assert_eq!(DomainInfo::from_libxl(&d, None).state, DomainState::Paused);
        d.shutdown = true;
        d.shutdown_reason = xen_sys::LIBXL_SHUTDOWN_REASON_CRASH;
        let state = DomainInfo::from_libxl(&d, None).state;
        assert_eq!((state, state.letter()), (DomainState::Shutdown(ShutdownReason::Crash), 'c'));
        d.dying = true;
        assert_eq!(DomainInfo::from_libxl(&d, None).state.letter(), 'd');
        assert!(DomainState::Blocked.is_live() && !DomainState::Paused.is_live());
    }
}
