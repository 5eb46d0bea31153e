//! A hypervisor for tests that need to see or hold calls the simulator does not: it forwards
//! everything to a [`SimHypervisor`], counts `pci_assignable_list` calls (one per adapter
//! policy pass), can hold one device's `pci_assignable_add` at a gate until the test opens it
//! (a slow sysfs bind, made deterministic), and can make `host_info` fail.

// Test support: a failed step panics, which is how a test fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use domainmgrd::hypervisor::{HvResult, Hypervisor, SaveInProgress, WatchGuard};
use domainmgrd::sim::SimHypervisor;
use parking_lot::Mutex;
use xenctl::{Bdf, DomId, DomainEvent, DomainInfo, DomainSpec, HostCpus, HostInfo, LibxlErrorCode, Subject};

#[derive(Default)]
struct State {
    lists: AtomicU64,
    host_fails: AtomicBool,
    gate: Mutex<Option<Gate>>,
}

struct Gate {
    bdf: Bdf,
    entered: Sender<()>,
    open: Receiver<()>,
}

/// The probe; clones share it.
#[derive(Clone)]
pub struct Probe {
    pub sim: SimHypervisor,
    state: Arc<State>,
}

/// Holds a device's bind until dropped or opened; dropping opens it, so a failing test never
/// leaves the daemon stuck in the call.
pub struct GateHandle {
    entered: Receiver<()>,
    open: Option<Sender<()>>,
}

impl GateHandle {
    /// Waits until the gated call has started (it is then held).
    pub fn wait_entered(&self) {
        self.entered.recv_timeout(Duration::from_secs(20)).expect("the gated pci_assignable_add to start");
    }

    /// Lets the held call go on.
    pub fn open(&mut self) {
        self.open.take();
    }
}

impl Drop for GateHandle {
    fn drop(&mut self) {
        self.open();
    }
}

impl Probe {
    /// A probe over a new connection to `sim`.
    pub fn new(sim: &SimHypervisor) -> Probe {
        Probe { sim: sim.client(), state: Arc::default() }
    }

    /// `pci_assignable_list` calls so far.
    pub fn lists(&self) -> u64 {
        self.state.lists.load(Ordering::SeqCst)
    }

    /// Makes `host_info` fail (or work again).
    pub fn fail_host_info(&self, fail: bool) {
        self.state.host_fails.store(fail, Ordering::SeqCst);
    }

    /// Holds the next `pci_assignable_add` of `bdf` until the handle is opened or dropped.
    pub fn gate(&self, bdf: Bdf) -> GateHandle {
        let (entered_tx, entered_rx) = crossbeam_channel::unbounded();
        let (open_tx, open_rx) = crossbeam_channel::bounded(0);
        *self.state.gate.lock() = Some(Gate { bdf, entered: entered_tx, open: open_rx });
        GateHandle { entered: entered_rx, open: Some(open_tx) }
    }
}

impl Hypervisor for Probe {
    fn create_paused(&self, spec: &DomainSpec) -> HvResult<DomId> {
        self.sim.create_paused(spec)
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
        self.sim.shutdown(domid)
    }
    fn power_button(&self, domid: DomId) -> HvResult<()> {
        self.sim.power_button(domid)
    }
    fn destroy(&self, domid: DomId) -> HvResult<()> {
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
        if self.state.host_fails.load(Ordering::SeqCst) {
            return Err(xenctl::Error::Libxl {
                op: "physinfo",
                subject: Subject::Host,
                code: LibxlErrorCode::ERROR_FAIL,
            });
        }
        self.sim.host_info()
    }
    fn host_cpus(&self) -> HvResult<HostCpus> {
        self.sim.host_cpus()
    }
    fn pci_assignable_add(&self, bdf: Bdf) -> HvResult<()> {
        let gate = {
            let mut g = self.state.gate.lock();
            if g.as_ref().is_some_and(|g| g.bdf == bdf) { g.take() } else { None }
        };
        if let Some(g) = gate {
            let _ = g.entered.send(());
            let _ = g.open.recv(); // returns when the handle opens (or is dropped)
        }
        self.sim.pci_assignable_add(bdf)
    }
    fn pci_assignable_remove(&self, bdf: Bdf, rebind: bool) -> HvResult<()> {
        self.sim.pci_assignable_remove(bdf, rebind)
    }
    fn pci_assignable_list(&self) -> HvResult<Vec<Bdf>> {
        self.state.lists.fetch_add(1, Ordering::SeqCst);
        self.sim.pci_assignable_list()
    }
    fn begin_save(&self, domid: DomId, partial: &std::path::Path) -> HvResult<Box<dyn SaveInProgress>> {
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
        self.sim.restore_paused(spec, path)
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
