//! The restarted daemon's hypervisor in the chaos test: a simulator client that records every
//! call that makes a domain (create, restore) or ends one (shutdown, power button, destroy,
//! save), with the domain's UUID as it was when called, so that each of the new daemon's acts
//! can be judged on its own.

use std::sync::Arc;

use crossbeam_channel::Sender;
use domainmgrd::hypervisor::{HvResult, Hypervisor, SaveInProgress, WatchGuard};
use domainmgrd::sim::SimHypervisor;
use parking_lot::Mutex;
use uuid::Uuid;
use xenctl::{Bdf, DomId, DomainEvent, DomainInfo, DomainSpec, HostCpus, HostInfo};

/// What a recorded call does to a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Create,
    Restore,
    Shutdown,
    PowerButton,
    Destroy,
    Save,
}

impl Act {
    /// Whether it ends (or asks to end) a domain.
    pub fn stops(self) -> bool {
        matches!(self, Act::Shutdown | Act::PowerButton | Act::Destroy | Act::Save)
    }
}

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    pub act: Act,
    /// The domain's UUID (`None`: no such domain when called).
    pub uuid: Option<Uuid>,
    /// The domain (for a create or restore: the one made, if it was).
    pub domid: Option<DomId>,
}

/// The recording hypervisor; clones share the record.
#[derive(Clone)]
pub struct Recorder {
    sim: SimHypervisor,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Recorder {
    pub fn new(sim: SimHypervisor) -> Recorder {
        Recorder { sim, calls: Arc::default() }
    }

    /// The calls recorded so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().clone()
    }

    fn record_stop(&self, act: Act, domid: DomId) {
        let uuid = self.sim.info_of(domid.get()).map(|d| d.spec.uuid);
        self.calls.lock().push(Call { act, uuid, domid: Some(domid) });
    }

    fn record_make(&self, act: Act, spec: &DomainSpec, made: &HvResult<DomId>) {
        self.calls.lock().push(Call { act, uuid: Some(spec.uuid), domid: made.as_ref().ok().copied() });
    }
}

impl Hypervisor for Recorder {
    fn create_paused(&self, spec: &DomainSpec) -> HvResult<DomId> {
        let made = self.sim.create_paused(spec);
        self.record_make(Act::Create, spec, &made);
        made
    }
    fn unpause(&self, domid: DomId) -> HvResult<()> {
        self.sim.unpause(domid)
    }
    fn disable_vif_offload(&self, domid: DomId, vif_count: usize) -> HvResult<()> {
        self.sim.disable_vif_offload(domid, vif_count)
    }
    fn vif_names(&self, domid: DomId, vif_count: usize) -> HvResult<Vec<String>> {
        self.sim.vif_names(domid, vif_count)
    }
    fn set_bios_string(&self, domid: DomId, key: &str, value: &str) -> HvResult<()> {
        self.sim.set_bios_string(domid, key, value)
    }
    fn shutdown(&self, domid: DomId) -> HvResult<()> {
        self.record_stop(Act::Shutdown, domid);
        self.sim.shutdown(domid)
    }
    fn power_button(&self, domid: DomId) -> HvResult<()> {
        self.record_stop(Act::PowerButton, domid);
        self.sim.power_button(domid)
    }
    fn destroy(&self, domid: DomId) -> HvResult<()> {
        self.record_stop(Act::Destroy, domid);
        self.sim.destroy(domid)
    }
    fn info(&self, domid: DomId) -> HvResult<Option<DomainInfo>> {
        self.sim.info(domid)
    }
    fn list(&self) -> HvResult<Vec<DomainInfo>> {
        self.sim.list()
    }
    fn sample(&self) -> HvResult<Vec<DomainInfo>> {
        self.sim.sample()
    }
    fn host_info(&self) -> HvResult<HostInfo> {
        self.sim.host_info()
    }
    fn host_cpus(&self) -> HvResult<HostCpus> {
        self.sim.host_cpus()
    }
    fn pci_assignable_add(&self, bdf: Bdf) -> HvResult<()> {
        self.sim.pci_assignable_add(bdf)
    }
    fn pci_assignable_remove(&self, bdf: Bdf, rebind: bool) -> HvResult<()> {
        self.sim.pci_assignable_remove(bdf, rebind)
    }
    fn pci_assignable_list(&self) -> HvResult<Vec<Bdf>> {
        self.sim.pci_assignable_list()
    }
    fn begin_save(&self, domid: DomId, partial: &std::path::Path) -> HvResult<Box<dyn SaveInProgress>> {
        self.record_stop(Act::Save, domid);
        self.sim.begin_save(domid, partial)
    }
    fn resume(&self, domid: DomId) -> HvResult<()> {
        self.sim.resume(domid)
    }
    fn migrate_send(
        &self,
        domid: DomId,
        live: bool,
        stream: xenctl::MigrationStream,
    ) -> HvResult<xenctl::MigrateOutcome> {
        self.sim.migrate_send(domid, live, stream)
    }
    fn migrate_receive(
        &self,
        stream: xenctl::MigrationStream,
        choose: domainmgrd::hypervisor::Choose<'_>,
        prepare: &mut dyn FnMut(DomId) -> HvResult<()>,
    ) -> HvResult<domainmgrd::hypervisor::Received> {
        self.sim.migrate_receive(stream, choose, prepare)
    }
    fn restore_paused(&self, spec: &DomainSpec, path: &std::path::Path) -> HvResult<DomId> {
        let made = self.sim.restore_paused(spec, path);
        self.record_make(Act::Restore, spec, &made);
        made
    }
    fn sysrq(&self, domid: DomId, key: char) -> HvResult<()> {
        self.sim.sysrq(domid, key)
    }
    fn console_tty(&self, domid: DomId) -> HvResult<std::path::PathBuf> {
        self.sim.console_tty(domid)
    }
    fn watch(&self, domid: DomId, events: Sender<DomainEvent>) -> HvResult<Box<dyn WatchGuard>> {
        self.sim.watch(domid, events)
    }
}
