//! The [`Hypervisor`] calls of [`SimHypervisor`], answered as libxl would: what each does to
//! the simulated domains, which errors it returns, and the events it sends to watches.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;
use uuid::Uuid;
use xenctl::{
    Bdf, DomId, DomainEvent, DomainInfo, DomainKind, DomainSpec, DomainState, Error, HostCpus, HostInfo,
    LibxlErrorCode, ShutdownReason, Subject,
};

use super::injection::target;
use super::save::SIM_IMAGE;
use super::{Behaviour, HOST_MIB, Op, Shared, SimDomain, SimHypervisor, emit, failed, new_domain, not_found};
use crate::hypervisor::{HvResult, Hypervisor, SaveInProgress, WatchGuard};

fn info_of(d: &SimDomain) -> DomainInfo {
    DomainInfo {
        domid: d.domid,
        name: Some(d.spec.name.clone()),
        uuid: d.spec.uuid,
        kind: Some(d.spec.kind),
        state: d.state,
        cpu_time_ns: d.cpu_time_ns,
        current_memory_kib: d.spec.memory_mib * 1024,
        max_memory_kib: d.spec.effective_max_memory_mib() * 1024,
        outstanding_memory_kib: 0,
        vcpus_online: d.spec.vcpus,
        vcpus_max: d.spec.effective_max_vcpus(),
    }
}

struct SimWatch {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for SimWatch {
    fn drop(&mut self) {
        self.shared.state.lock().watches.remove(&self.id);
    }
}

impl Hypervisor for SimHypervisor {
    fn create_paused(&self, spec: &DomainSpec) -> HvResult<DomId> {
        spec.validate()?;
        let created = {
            let mut st = self.shared.state.lock();
            self.park_if_killed(&mut st);
            *st.calls.entry(Op::Create).or_default() += 1;
            self.count_toward_kill(&mut st, Op::Create);
            Self::maybe_panic(&mut st, spec.uuid, Op::Create);
            let subject = || Subject::Named(spec.name.clone());
            if st.domains.values().any(|d| d.spec.name == spec.name) {
                Err(Error::Libxl { op: "create", subject: subject(), code: LibxlErrorCode::ERROR_INVAL })
            } else if Self::take_fault(&mut st, spec.uuid, Op::Create) {
                Err(failed("create", subject()))
            } else if spec.pcis.iter().any(|p| {
                // As libxl: a passed-through device must be assignable (or seized: libxl
                // makes it so) and not already in use.
                let in_use = st.domains.values().any(|d| d.spec.pcis.iter().any(|q| q.bdf == p.bdf));
                !(st.pciback.contains(&p.bdf) || p.seize) || in_use
            }) {
                Err(Error::Libxl { op: "create", subject: subject(), code: LibxlErrorCode::ERROR_FAIL })
            } else {
                for p in spec.pcis.iter().filter(|p| p.seize) {
                    st.pciback.insert(p.bdf);
                }
                Ok(new_domain(&mut st, spec, DomainState::Paused))
            }
        };
        // A slow create: the domain already exists, paused, while libxl builds it.
        if created.is_ok() {
            self.delay(Op::Create);
        }
        let mut st = self.shared.state.lock();
        self.pass_gate(&mut st, spec.uuid, Op::Create);
        self.park_if_killed(&mut st);
        created
    }

    fn unpause(&self, domid: DomId) -> HvResult<()> {
        self.enter(Op::Unpause);
        let mut st = self.shared.state.lock();
        let uuid = self.target_gated(&mut st, domid, Op::Unpause, "unpause")?;
        if let Some(d) = st.domains.get_mut(&domid.get())
            && d.state == DomainState::Paused
        {
            d.state = DomainState::Blocked;
            d.ever_unpaused = true;
        }
        self.pass_gate(&mut st, uuid, Op::Unpause);
        Ok(())
    }

    fn disable_vif_offload(&self, domid: DomId, vif_count: usize) -> HvResult<()> {
        self.enter(Op::VifOffload);
        let mut st = self.shared.state.lock();
        target(&mut st, domid, Op::VifOffload, "vif offload")?;
        let d = st.domains.get_mut(&domid.get()).ok_or_else(|| not_found("vif offload", domid))?;
        if vif_count > d.spec.vifs.len() {
            return Err(Error::Xenstore {
                op: "disable vif offload",
                path: xenctl::vif_backend_path(domid, d.spec.vifs.len()),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such vif backend"),
            });
        }
        d.vif_offload_disabled = vif_count;
        self.park_if_killed(&mut st);
        Ok(())
    }

    fn vif_names(&self, domid: DomId, vif_count: usize) -> HvResult<Vec<String>> {
        let mut st = self.shared.state.lock();
        self.park_if_killed(&mut st);
        let d = st.domains.get(&domid.get()).ok_or_else(|| not_found("vif names", domid))?;
        Ok((0..vif_count)
            .map(|n| d.spec.vifs.get(n).and_then(|v| v.vifname.clone()).unwrap_or_else(|| format!("vif{domid}.{n}")))
            .collect())
    }

    fn shutdown(&self, domid: DomId) -> HvResult<()> {
        self.enter(Op::Shutdown);
        let (behaviour, uuid) = {
            let mut st = self.shared.state.lock();
            let uuid = self.target_gated(&mut st, domid, Op::Shutdown, "shutdown")?;
            (Self::behaviour(&st, uuid), uuid)
        };
        if !behaviour.pv_drivers {
            return Err(Error::NoPvDrivers { op: "shutdown", domid });
        }
        self.schedule_poweroff(domid, uuid, behaviour);
        self.pass_gate(&mut self.shared.state.lock(), uuid, Op::Shutdown);
        Ok(())
    }

    fn power_button(&self, domid: DomId) -> HvResult<()> {
        self.enter(Op::PowerButton);
        let (behaviour, uuid, kind) = {
            let st = self.shared.state.lock();
            let d = st.domains.get(&domid.get()).ok_or_else(|| not_found("power button", domid))?;
            (Self::behaviour(&st, d.spec.uuid), d.spec.uuid, d.spec.kind)
        };
        if kind != DomainKind::Hvm {
            return Err(Error::Libxl {
                op: "power button",
                subject: Subject::Domain(domid),
                code: LibxlErrorCode::ERROR_INVAL,
            });
        }
        self.schedule_poweroff(domid, uuid, behaviour);
        self.park_if_killed(&mut self.shared.state.lock());
        Ok(())
    }

    fn destroy(&self, domid: DomId) -> HvResult<()> {
        self.enter(Op::Destroy);
        let mut st = self.shared.state.lock();
        let uuid = self.target_gated(&mut st, domid, Op::Destroy, "destroy")?;
        if Self::behaviour(&st, uuid).stuck_dying {
            // Xen cannot free it: it stays, dying, and no death event comes.
            if let Some(d) = st.domains.get_mut(&domid.get()) {
                d.state = DomainState::Dying;
            }
        } else {
            st.domains.remove(&domid.get());
            st.consoles.remove(&domid.get());
            emit(&st, domid.get(), DomainEvent::Death { domid });
        }
        self.pass_gate(&mut st, uuid, Op::Destroy);
        Ok(())
    }

    fn info(&self, domid: DomId) -> HvResult<Option<DomainInfo>> {
        let mut st = self.shared.state.lock();
        self.park_if_killed(&mut st);
        Ok(st.domains.get(&domid.get()).map(info_of))
    }

    fn list(&self) -> HvResult<Vec<DomainInfo>> {
        let mut st = self.shared.state.lock();
        self.park_if_killed(&mut st);
        Ok(st.domains.values().map(info_of).collect())
    }

    fn sample(&self) -> HvResult<Vec<DomainInfo>> {
        let mut st = self.shared.state.lock();
        self.park_if_killed(&mut st);
        Ok(st.domains.values().map(|d| DomainInfo { name: None, ..info_of(d) }).collect())
    }

    fn pci_assignable_add(&self, bdf: Bdf) -> HvResult<()> {
        self.enter(Op::PciAdd);
        let mut st = self.shared.state.lock();
        if !st.pci_devices.contains(&bdf) {
            return Err(Error::Libxl {
                op: "pci-assignable-add",
                subject: Subject::Pci(bdf),
                code: LibxlErrorCode::ERROR_FAIL,
            });
        }
        st.pciback.insert(bdf);
        self.park_if_killed(&mut st);
        Ok(())
    }

    fn pci_assignable_remove(&self, bdf: Bdf, rebind: bool) -> HvResult<()> {
        self.enter(Op::PciRemove);
        let mut st = self.shared.state.lock();
        let in_use = st.domains.values().any(|d| d.spec.pcis.iter().any(|p| p.bdf == bdf));
        if in_use || !st.pciback.remove(&bdf) {
            return Err(Error::Libxl {
                op: "pci-assignable-remove",
                subject: Subject::Pci(bdf),
                code: LibxlErrorCode::ERROR_FAIL,
            });
        }
        st.pci_removals.push((bdf, rebind));
        self.park_if_killed(&mut st);
        Ok(())
    }

    fn pci_assignable_list(&self) -> HvResult<Vec<Bdf>> {
        let mut st = self.shared.state.lock();
        self.park_if_killed(&mut st);
        let mut l: Vec<Bdf> = st.pciback.iter().copied().collect();
        l.sort();
        Ok(l)
    }

    fn begin_save(&self, domid: DomId, partial: &std::path::Path) -> HvResult<Box<dyn SaveInProgress>> {
        self.sim_begin_save(domid, partial)
    }

    fn resume(&self, domid: DomId) -> HvResult<()> {
        self.sim_resume(domid)
    }

    fn migrate_send(
        &self,
        domid: DomId,
        live: bool,
        stream: xenctl::MigrationStream,
    ) -> HvResult<xenctl::MigrateOutcome> {
        self.sim_migrate_send(domid, live, stream)
    }

    fn migrate_receive(
        &self,
        stream: xenctl::MigrationStream,
        choose: crate::hypervisor::Choose<'_>,
        prepare: &mut dyn FnMut(DomId) -> HvResult<()>,
    ) -> HvResult<crate::hypervisor::Received> {
        self.sim_migrate_receive(stream, choose, prepare)
    }

    fn restore_paused(&self, spec: &DomainSpec, path: &std::path::Path) -> HvResult<DomId> {
        self.enter(Op::Restore);
        spec.validate()?;
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            op: "open save image",
            path: path.into(),
            source,
        })?;
        if !text.starts_with(SIM_IMAGE) {
            return Err(Error::BadSaveImage { path: path.into(), reason: "not a save image".into() });
        }
        let mut st = self.shared.state.lock();
        if st.domains.values().any(|d| d.spec.name == spec.name)
            || SimHypervisor::take_fault(&mut st, spec.uuid, Op::Restore)
        {
            self.park_if_killed(&mut st);
            return Err(failed("restore", Subject::Named(spec.name.clone())));
        }
        let domid = new_domain(&mut st, spec, DomainState::Paused);
        if let Some(d) = st.domains.get_mut(&domid.get()) {
            d.ever_unpaused = true; // a restored guest has run before
        }
        self.park_if_killed(&mut st);
        Ok(domid)
    }

    fn guest_key(&self, domid: DomId, key: &str) -> HvResult<Option<String>> {
        let st = self.shared.state.lock();
        let live = st.domains.contains_key(&domid.get());
        Ok(st.guest_keys.get(&(domid.get(), key.to_string())).filter(|_| live).cloned())
    }

    fn set_bios_string(&self, domid: DomId, key: &str, value: &str) -> HvResult<()> {
        self.enter(Op::BiosString);
        let mut st = self.shared.state.lock();
        target(&mut st, domid, Op::BiosString, "xenstore write")?;
        st.bios_strings.entry(domid.get()).or_default().push((key.to_string(), value.to_string()));
        self.park_if_killed(&mut st);
        Ok(())
    }

    fn sysrq(&self, domid: DomId, key: char) -> HvResult<()> {
        self.enter(Op::Sysrq);
        let mut st = self.shared.state.lock();
        target(&mut st, domid, Op::Sysrq, "sysrq")?;
        st.sysrqs.push((domid, key));
        self.park_if_killed(&mut st);
        Ok(())
    }

    fn console_tty(&self, domid: DomId) -> HvResult<std::path::PathBuf> {
        let mut st = self.shared.state.lock();
        self.park_if_killed(&mut st);
        st.domains.get(&domid.get()).ok_or_else(|| not_found("console", domid))?;
        if !st.real_consoles {
            return Ok(std::path::PathBuf::from(format!("/dev/pts/sim{domid}")));
        }
        let master = match st.consoles.entry(domid.get()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(open_pty().map_err(|e| pty_error("open a pty", e))?)
            }
        };
        let name = rustix::pty::ptsname(master, Vec::new()).map_err(|e| pty_error("name a pty", e))?;
        Ok(std::path::PathBuf::from(name.to_string_lossy().into_owned()))
    }

    fn host_cpus(&self) -> HvResult<HostCpus> {
        // One node with the 8 CPUs host_info reports.
        Ok(HostCpus { max_cpus: 8, max_nodes: 1, node_cpus: vec![(0..8).collect()] })
    }

    fn host_info(&self) -> HvResult<HostInfo> {
        let mut st = self.shared.state.lock();
        self.park_if_killed(&mut st);
        let used: u64 = st.domains.values().map(|d| d.spec.memory_mib).sum();
        Ok(HostInfo {
            nr_cpus: 8,
            cpu_khz: 2_000_000,
            threads_per_core: 2,
            cores_per_socket: 4,
            nr_nodes: 1,
            total_memory_bytes: HOST_MIB << 20,
            free_memory_bytes: HOST_MIB.saturating_sub(used) << 20,
            scrub_memory_bytes: 0,
            cap_hvm: true,
            cap_pv: true,
            cap_hvm_directio: false,
            xen_version: "4.17.7-sim".into(),
        })
    }

    fn watch(&self, domid: DomId, events: Sender<DomainEvent>) -> HvResult<Box<dyn WatchGuard>> {
        let mut st = self.shared.state.lock();
        self.park_if_killed(&mut st);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        // As libxl: a domain already shut down reports it at once; a missing one reports death.
        match st.domains.get(&domid.get()).map(|d| d.state) {
            Some(DomainState::Shutdown(reason)) => {
                let _ = events.send(DomainEvent::Shutdown { domid, reason });
            }
            Some(_) => {}
            None => {
                let _ = events.send(DomainEvent::Death { domid });
            }
        }
        st.watches.insert(id, super::Watch { domid: domid.get(), client: self.client, events });
        Ok(Box::new(SimWatch { shared: Arc::clone(&self.shared), id }))
    }
}

impl SimHypervisor {
    /// The guest powers off after its shutdown delay, if it honours requests.
    fn schedule_poweroff(&self, domid: DomId, uuid: Uuid, behaviour: Behaviour) {
        if !behaviour.honours_shutdown {
            return;
        }
        if behaviour.shutdown_delay.is_zero() {
            self.shut_down(domid.get(), ShutdownReason::Poweroff);
            return;
        }
        let sim = self.clone();
        std::thread::spawn(move || {
            std::thread::sleep(behaviour.shutdown_delay);
            // Only if it is still the same guest (ids never repeat, but be exact).
            let same = sim.shared.state.lock().domains.get(&domid.get()).is_some_and(|d| d.spec.uuid == uuid);
            if same {
                sim.shut_down(domid.get(), ShutdownReason::Poweroff);
            }
        });
    }
}

/// A new pty's master, its slave unlocked.
fn open_pty() -> rustix::io::Result<std::fs::File> {
    let master = rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    Ok(std::fs::File::from(master))
}

fn pty_error(op: &'static str, e: rustix::io::Errno) -> Error {
    Error::Io { op, path: "/dev/ptmx".into(), source: e.into() }
}
