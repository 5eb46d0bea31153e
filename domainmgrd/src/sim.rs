//! [`SimHypervisor`]: an in-memory hypervisor faithful to libxl's semantics, for driving the
//! real daemon code in tests and benchmarks without Xen.
//!
//! What it models, as libxl and Xen behave: domain ids only grow; a created domain is paused;
//! names are unique; a shutdown request is only a request (the guest may take time, ignore it,
//! or have no PV drivers to receive it); a shut-down domain stays until destroyed; events
//! (shutdown with reason, then death) go to every watch of the domain, and a watch on a domain
//! already shut down or gone reports that at once; guests reboot and crash on their own.
//!
//! What tests can inject: per-guest behaviour ([`Behaviour`]), failing calls ([`Fault`]), slow
//! calls ([`SimHypervisor::set_delay`]), calls held until the test lets them go
//! ([`SimHypervisor::hold`]), and killed clients ([`SimHypervisor::kill_client`]):
//! every call of a killed client blocks forever, the way a daemon killed with SIGKILL in the
//! middle of a call never continues, while what the hypervisor already did stays done.
//!
//! What tests can synchronise on, instead of sleeping: [`Gate`]s ([`SimHypervisor::gate`]) hold
//! a guest's calls of one kind just before they return, after their effect (a slow libxl call
//! whose work is done but whose caller has not heard yet), until the test opens them, and say
//! how many calls they hold; [`SimHypervisor::parked_calls`] counts the calls of killed clients
//! that are parked for good. Tests can also lose a domain's events
//! ([`SimHypervisor::lose_events`]), as a missed event would, and make a call panic in the
//! caller's thread ([`SimHypervisor::inject_panic`]), as a bug in the daemon would.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};
use uuid::Uuid;
use xenctl::{
    Bdf, DomId, DomainEvent, DomainInfo, DomainKind, DomainSpec, DomainState, Error, HostInfo, LibxlErrorCode,
    ShutdownReason, Subject,
};

use crate::hypervisor::{HvResult, Hypervisor, WatchGuard};

/// How a simulated guest reacts to requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// Whether it has PV drivers (without them a shutdown request fails with `NoPvDrivers`).
    pub pv_drivers: bool,
    /// Whether it honours a shutdown request (or the ACPI power button).
    pub honours_shutdown: bool,
    /// How long it takes to power off once asked.
    pub shutdown_delay: Duration,
    /// Whether a destroy leaves it dying for good (a domain Xen cannot free, e.g. held by a
    /// stuck backend): it stays listed as dying and no death event comes, until a destroy made
    /// after this is set back to false.
    pub stuck_dying: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour { pv_drivers: true, honours_shutdown: true, shutdown_delay: Duration::ZERO, stuck_dying: false }
    }
}

/// A call that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `create_paused`.
    Create,
    /// `unpause`.
    Unpause,
    /// `disable_vif_offload`.
    VifOffload,
    /// `shutdown`.
    Shutdown,
    /// `power_button`.
    PowerButton,
    /// `pci_assignable_add`.
    PciAdd,
    /// `pci_assignable_remove`.
    PciRemove,
    /// `save`.
    Save,
    /// `restore_paused`.
    Restore,
    /// `sysrq`.
    Sysrq,
    /// `destroy`.
    Destroy,
}

/// An injected failure: the next `count` calls of `op` for the guest fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Which call.
    pub op: Op,
    /// How many times.
    pub count: u32,
}

/// A simulated domain, as tests see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimDomain {
    /// Its id.
    pub domid: DomId,
    /// The spec it was created from.
    pub spec: DomainSpec,
    /// Its state.
    pub state: DomainState,
    /// vifs whose offloads were disabled.
    pub vif_offload_disabled: usize,
    /// CPU time, ns (tests set it).
    pub cpu_time_ns: u64,
    /// Whether it was ever unpaused.
    pub ever_unpaused: bool,
}

#[derive(Default)]
struct State {
    next_domid: u32,
    domains: BTreeMap<u32, SimDomain>,
    behaviours: HashMap<Uuid, Behaviour>,
    faults: HashMap<(Uuid, Op), u32>,
    delays: HashMap<Op, Duration>,
    watches: HashMap<u64, (u32, Sender<DomainEvent>)>,
    killed: HashSet<u64>,
    calls: HashMap<Op, u64>,
    in_flight: HashMap<Op, u64>,
    peak: HashMap<Op, u64>,
    pci_devices: HashSet<Bdf>,
    pciback: HashSet<Bdf>,
    /// Devices taken back from pciback, in order, with whether their dom0 driver was rebound.
    pci_removals: Vec<(Bdf, bool)>,
    sysrqs: Vec<(DomId, char)>,
    gates: HashMap<(Uuid, Op), GateState>,
    /// Per-op gates ([`SimHypervisor::hold`]): every guest's calls of the op.
    op_gates: HashMap<Op, OpGate>,
    /// Calls of killed clients parked for good.
    parked: usize,
    /// Domains whose events are lost.
    lost_events: HashSet<u32>,
    /// Calls that panic in the caller's thread.
    panics: HashSet<(Uuid, Op)>,
}

/// A gate's state: while closed, the guest's calls of its kind wait before returning.
#[derive(Debug, Default)]
struct GateState {
    open: bool,
    /// Calls waiting at it now.
    held: usize,
}

/// Calls of one op held in their middle until the test lets them through.
#[derive(Debug, Default)]
struct OpGate {
    /// Calls are held (else they pass).
    closed: bool,
    /// How many more may pass while it is closed.
    passes: u64,
    /// How many are held now.
    held: u64,
}

/// The first line of a simulated save image.
const SIM_IMAGE: &str = "domainmgrd simulated save image";

struct Shared {
    state: Mutex<State>,
    /// Parks the calls of killed clients (never notified for them).
    parked: Condvar,
    /// Wakes the calls held at gates, and the tests waiting for them.
    gates: Condvar,
    next_id: AtomicU64,
}

/// The simulated hypervisor. Clones share one hypervisor; each [`client`](Self::client) is a
/// separate connection that can be killed.
#[derive(Clone)]
pub struct SimHypervisor {
    shared: Arc<Shared>,
    client: u64,
}

impl std::fmt::Debug for SimHypervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHypervisor").field("client", &self.client).finish_non_exhaustive()
    }
}

impl Default for SimHypervisor {
    fn default() -> Self {
        SimHypervisor::new()
    }
}

/// dom0's memory in the simulated host, MiB.
const DOM0_MIB: u64 = 1024;
/// The simulated host's memory, MiB.
const HOST_MIB: u64 = 1 << 20;

impl SimHypervisor {
    /// A hypervisor with only dom0.
    pub fn new() -> SimHypervisor {
        let mut state = State { next_domid: 1, ..State::default() };
        let dom0 = DomainSpec::pv("Domain-0").uuid(Uuid::nil()).memory_mib(DOM0_MIB).kernel("/boot/vmlinuz");
        state.domains.insert(
            0,
            SimDomain {
                domid: DomId::DOM0,
                spec: dom0,
                state: DomainState::Running,
                vif_offload_disabled: 0,
                cpu_time_ns: 0,
                ever_unpaused: true,
            },
        );
        SimHypervisor {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                parked: Condvar::new(),
                gates: Condvar::new(),
                next_id: AtomicU64::new(1),
            }),
            client: 0,
        }
    }

    /// A new connection to the same hypervisor (a new daemon process, say).
    pub fn client(&self) -> SimHypervisor {
        SimHypervisor { shared: Arc::clone(&self.shared), client: self.shared.next_id.fetch_add(1, Ordering::Relaxed) }
    }

    /// This connection's id.
    pub fn client_id(&self) -> u64 {
        self.client
    }

    /// Kills a connection: its calls in flight and all later ones block forever.
    pub fn kill_client(&self, client: u64) {
        self.shared.state.lock().killed.insert(client);
    }

    /// How many calls of killed clients are parked for good (they never return).
    pub fn parked_calls(&self) -> usize {
        self.shared.state.lock().parked
    }

    /// Closes a gate on the calls of `op` for the guest with `uuid` (`Create`, `Unpause`,
    /// `Shutdown`, `Destroy` or `Save`): each such call does its work (or fails), then waits
    /// before returning until the gate opens. The gate opens when dropped.
    pub fn gate(&self, uuid: Uuid, op: Op) -> Gate {
        self.shared.state.lock().gates.insert((uuid, op), GateState::default());
        Gate { shared: Arc::clone(&self.shared), key: (uuid, op) }
    }

    /// Loses every event of the domain `domid` from now on (as a missed event would be).
    pub fn lose_events(&self, domid: DomId) {
        self.shared.state.lock().lost_events.insert(domid.get());
    }

    /// Makes the next call of `op` for the guest with `uuid` panic in the caller's thread
    /// before doing anything (`Create` and the calls on an existing domain that take faults).
    pub fn inject_panic(&self, uuid: Uuid, op: Op) {
        self.shared.state.lock().panics.insert((uuid, op));
    }

    /// Sets how the guest with `uuid` behaves (before or after it is created).
    pub fn set_behaviour(&self, uuid: Uuid, behaviour: Behaviour) {
        self.shared.state.lock().behaviours.insert(uuid, behaviour);
    }

    /// Makes the next `fault.count` calls of `fault.op` for the guest with `uuid` fail.
    pub fn inject(&self, uuid: Uuid, fault: Fault) {
        self.shared.state.lock().faults.insert((uuid, fault.op), fault.count);
    }

    /// Makes every call of `op` take `delay` (the domain exists during a slow create).
    pub fn set_delay(&self, op: Op, delay: Duration) {
        self.shared.state.lock().delays.insert(op, delay);
    }

    /// Holds every later call of `op` in its middle (where [`set_delay`](Self::set_delay)
    /// sleeps: a create holds with its domain made and paused, a save before it saves) until
    /// [`release`](Self::release)d or [`open`](Self::open)ed: a gate, so a test can catch calls
    /// in flight without racing a timer.
    pub fn hold(&self, op: Op) {
        self.shared.state.lock().op_gates.entry(op).or_default().closed = true;
    }

    /// Lets `n` calls of `op` through the closed gate (those held now first, then later ones).
    pub fn release(&self, op: Op, n: u64) {
        self.shared.state.lock().op_gates.entry(op).or_default().passes += n;
        self.shared.parked.notify_all();
    }

    /// Stops holding calls of `op`; the held ones go on.
    pub fn open(&self, op: Op) {
        self.shared.state.lock().op_gates.remove(&op);
        self.shared.parked.notify_all();
    }

    /// How many calls of `op` the gate holds now.
    pub fn held(&self, op: Op) -> u64 {
        self.shared.state.lock().op_gates.get(&op).map_or(0, |g| g.held)
    }

    /// How many times `op` was called.
    pub fn calls(&self, op: Op) -> u64 {
        self.shared.state.lock().calls.get(&op).copied().unwrap_or(0)
    }

    /// Every domain but dom0.
    pub fn domains(&self) -> Vec<SimDomain> {
        self.shared.state.lock().domains.values().filter(|d| !d.domid.is_dom0()).cloned().collect()
    }

    /// The domains created from `uuid`.
    pub fn domains_of(&self, uuid: Uuid) -> Vec<SimDomain> {
        self.domains().into_iter().filter(|d| d.spec.uuid == uuid).collect()
    }

    /// The most calls of `op` that were in their delay (see [`set_delay`](Self::set_delay)) or
    /// held at its gate (see [`hold`](Self::hold)) at the same time.
    pub fn peak(&self, op: Op) -> u64 {
        self.shared.state.lock().peak.get(&op).copied().unwrap_or(0)
    }

    /// Adds a PCI device to the simulated host (bound to a dom0 driver).
    pub fn add_pci_device(&self, bdf: Bdf) {
        self.shared.state.lock().pci_devices.insert(bdf);
    }

    /// The devices bound to pciback.
    pub fn pciback(&self) -> HashSet<Bdf> {
        self.shared.state.lock().pciback.clone()
    }

    /// The devices taken back from pciback, in order, each with whether its dom0 driver was
    /// rebound (`pci_assignable_remove`'s `rebind`).
    pub fn pci_removals(&self) -> Vec<(Bdf, bool)> {
        self.shared.state.lock().pci_removals.clone()
    }

    /// The SysRq keys sent, in order.
    pub fn sysrqs(&self) -> Vec<(DomId, char)> {
        self.shared.state.lock().sysrqs.clone()
    }

    /// The domain with id `domid`, if it exists.
    pub fn info_of(&self, domid: u32) -> Option<SimDomain> {
        self.shared.state.lock().domains.get(&domid).cloned()
    }

    /// An operator pauses the domain (`xl pause`).
    pub fn operator_pause(&self, domid: DomId) {
        if let Some(d) = self.shared.state.lock().domains.get_mut(&domid.get())
            && d.state.is_live()
        {
            d.state = DomainState::Paused;
        }
    }

    /// Sets a domain's CPU time.
    pub fn set_cpu_time(&self, domid: DomId, ns: u64) {
        if let Some(d) = self.shared.state.lock().domains.get_mut(&domid.get()) {
            d.cpu_time_ns = ns;
        }
    }

    /// The guest powers itself off.
    pub fn guest_poweroff(&self, domid: DomId) {
        self.shut_down(domid.get(), ShutdownReason::Poweroff);
    }

    /// The guest reboots itself.
    pub fn guest_reboot(&self, domid: DomId) {
        self.shut_down(domid.get(), ShutdownReason::Reboot);
    }

    /// The guest crashes.
    pub fn guest_crash(&self, domid: DomId) {
        self.shut_down(domid.get(), ShutdownReason::Crash);
    }

    /// Someone else (an operator with `xl destroy`) destroys the domain (which a guest stuck
    /// dying survives, dying).
    pub fn external_destroy(&self, domid: DomId) {
        let mut st = self.shared.state.lock();
        let Some(uuid) = st.domains.get(&domid.get()).map(|d| d.spec.uuid) else { return };
        if Self::behaviour(&st, uuid).stuck_dying {
            if let Some(d) = st.domains.get_mut(&domid.get()) {
                d.state = DomainState::Dying;
            }
        } else if st.domains.remove(&domid.get()).is_some() {
            emit(&st, domid.get(), DomainEvent::Death { domid });
        }
    }

    /// Someone else creates a domain (not through the daemon); it runs at once.
    pub fn external_create(&self, spec: &DomainSpec) -> DomId {
        new_domain(&mut self.shared.state.lock(), spec, DomainState::Blocked)
    }

    fn shut_down(&self, domid: u32, reason: ShutdownReason) {
        let mut st = self.shared.state.lock();
        if let Some(d) = st.domains.get_mut(&domid) {
            if matches!(d.state, DomainState::Shutdown(_) | DomainState::Dying) {
                return;
            }
            d.state = DomainState::Shutdown(reason);
            emit(&st, domid, DomainEvent::Shutdown { domid: DomId::new(domid), reason });
        }
    }

    /// Blocks forever if this client was killed; sleeps for the op's delay; counts the call.
    fn enter(&self, op: Op) {
        {
            let mut st = self.shared.state.lock();
            self.park_if_killed(&mut st);
            *st.calls.entry(op).or_default() += 1;
        }
        self.delay(op);
    }

    /// Sleeps for the op's delay, if it has one, counting the calls that sleep at once; then
    /// blocks forever if this client was killed meanwhile.
    fn delay(&self, op: Op) {
        self.pass_op_gate(op);
        let delay = {
            let mut st = self.shared.state.lock();
            let delay = st.delays.get(&op).copied();
            if delay.is_some() {
                let now = {
                    let n = st.in_flight.entry(op).or_default();
                    *n += 1;
                    *n
                };
                let peak = st.peak.entry(op).or_default();
                *peak = (*peak).max(now);
            }
            delay
        };
        if let Some(delay) = delay {
            std::thread::sleep(delay);
            let mut st = self.shared.state.lock();
            *st.in_flight.entry(op).or_default() -= 1;
            self.park_if_killed(&mut st);
        }
    }

    /// Holds the call while `op`'s gate is closed and has no pass for it, counting it in flight.
    fn pass_op_gate(&self, op: Op) {
        let mut st = self.shared.state.lock();
        if !st.op_gates.get(&op).is_some_and(|g| g.closed) {
            return;
        }
        let now = {
            let n = st.in_flight.entry(op).or_default();
            *n += 1;
            *n
        };
        let peak = st.peak.entry(op).or_default();
        *peak = (*peak).max(now);
        st.op_gates.entry(op).or_default().held += 1;
        while st.op_gates.get(&op).is_some_and(|g| g.closed && g.passes == 0) {
            self.shared.parked.wait(&mut st);
        }
        if let Some(gate) = st.op_gates.get_mut(&op) {
            gate.held -= 1;
            gate.passes = gate.passes.saturating_sub(1);
        }
        *st.in_flight.entry(op).or_default() -= 1;
    }

    fn park_if_killed(&self, st: &mut parking_lot::MutexGuard<'_, State>) {
        if !st.killed.contains(&self.client) {
            return;
        }
        st.parked += 1;
        while st.killed.contains(&self.client) {
            self.shared.parked.wait(st);
        }
    }

    /// Waits at the gate on `op` for `uuid`, if one is closed; then parks if killed meanwhile.
    fn pass_gate(&self, st: &mut parking_lot::MutexGuard<'_, State>, uuid: Uuid, op: Op) {
        let key = (uuid, op);
        if st.gates.get(&key).is_some_and(|g| !g.open) {
            if let Some(g) = st.gates.get_mut(&key) {
                g.held += 1;
            }
            self.shared.gates.notify_all();
            while st.gates.get(&key).is_some_and(|g| !g.open) {
                self.shared.gates.wait(st);
            }
            if let Some(g) = st.gates.get_mut(&key) {
                g.held -= 1;
            }
            self.shared.gates.notify_all();
        }
        self.park_if_killed(st);
    }

    /// [`target`], except that a call an injected fault fails waits at its gate too.
    fn target_gated(
        &self,
        st: &mut parking_lot::MutexGuard<'_, State>,
        domid: DomId,
        op: Op,
        name: &'static str,
    ) -> HvResult<Uuid> {
        let uuid = st.domains.get(&domid.get()).map(|d| d.spec.uuid);
        let result = target(st, domid, op, name);
        if let (Err(_), Some(uuid)) = (&result, uuid) {
            self.pass_gate(st, uuid, op);
        }
        result
    }

    /// Panics if a panic was injected for this call.
    fn maybe_panic(st: &mut State, uuid: Uuid, op: Op) {
        if st.panics.remove(&(uuid, op)) {
            panic!("injected panic in {op:?} of {uuid}");
        }
    }

    fn take_fault(st: &mut State, uuid: Uuid, op: Op) -> bool {
        match st.faults.get_mut(&(uuid, op)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    fn behaviour(st: &State, uuid: Uuid) -> Behaviour {
        st.behaviours.get(&uuid).cloned().unwrap_or_default()
    }
}

/// Adds a domain with the next domid (they only grow).
fn new_domain(st: &mut State, spec: &DomainSpec, state: DomainState) -> DomId {
    let domid = DomId::new(st.next_domid);
    st.next_domid += 1;
    let d = SimDomain {
        domid,
        spec: spec.clone(),
        state,
        vif_offload_disabled: 0,
        cpu_time_ns: 0,
        ever_unpaused: state != DomainState::Paused,
    };
    st.domains.insert(domid.get(), d);
    domid
}

/// The UUID of an existing domain that `op` is called on, after any injected fault.
fn target(st: &mut State, domid: DomId, op: Op, name: &'static str) -> HvResult<Uuid> {
    let uuid = st.domains.get(&domid.get()).map(|d| d.spec.uuid).ok_or_else(|| not_found(name, domid))?;
    SimHypervisor::maybe_panic(st, uuid, op);
    if SimHypervisor::take_fault(st, uuid, op) {
        return Err(failed(name, Subject::Domain(domid)));
    }
    Ok(uuid)
}

fn emit(st: &State, domid: u32, event: DomainEvent) {
    if st.lost_events.contains(&domid) {
        return;
    }
    for (watched, tx) in st.watches.values() {
        if *watched == domid {
            // Unbounded channel: never blocks; a gone receiver is fine.
            let _ = tx.send(event);
        }
    }
}

fn failed(op: &'static str, subject: Subject) -> Error {
    Error::Libxl { op, subject, code: LibxlErrorCode::ERROR_FAIL }
}

fn not_found(op: &'static str, domid: DomId) -> Error {
    Error::DomainNotFound { op, domid }
}

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

/// A closed gate on one guest's calls of one kind (see [`SimHypervisor::gate`]); opens when
/// dropped.
pub struct Gate {
    shared: Arc<Shared>,
    key: (Uuid, Op),
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("uuid", &self.key.0).field("op", &self.key.1).finish()
    }
}

impl Gate {
    /// How many calls wait at the gate now.
    pub fn held(&self) -> usize {
        self.shared.state.lock().gates.get(&self.key).map_or(0, |g| g.held)
    }

    /// Waits until at least `n` calls wait at the gate; false if that did not happen within
    /// `timeout`.
    pub fn wait_held(&self, n: usize, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut st = self.shared.state.lock();
        while st.gates.get(&self.key).map_or(0, |g| g.held) < n {
            if self.shared.gates.wait_until(&mut st, deadline).timed_out() {
                return st.gates.get(&self.key).map_or(0, |g| g.held) >= n;
            }
        }
        true
    }

    /// Lets the held calls and all later ones through.
    pub fn open(&self) {
        if let Some(g) = self.shared.state.lock().gates.get_mut(&self.key) {
            g.open = true;
        }
        self.shared.gates.notify_all();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.shared.state.lock().gates.remove(&self.key);
        self.shared.gates.notify_all();
    }
}

impl Hypervisor for SimHypervisor {
    fn create_paused(&self, spec: &DomainSpec) -> HvResult<DomId> {
        spec.validate()?;
        let created = {
            let mut st = self.shared.state.lock();
            self.park_if_killed(&mut st);
            *st.calls.entry(Op::Create).or_default() += 1;
            Self::maybe_panic(&mut st, spec.uuid, Op::Create);
            let subject = || Subject::Named(spec.name.clone());
            if st.domains.values().any(|d| d.spec.name == spec.name) {
                Err(Error::Libxl { op: "create", subject: subject(), code: LibxlErrorCode::ERROR_INVAL })
            } else if Self::take_fault(&mut st, spec.uuid, Op::Create) {
                Err(failed("create", subject()))
            } else if spec.pcis.iter().any(|p| {
                // As libxl: a passed-through device must be assignable and not already in use.
                let in_use = st.domains.values().any(|d| d.spec.pcis.iter().any(|q| q.bdf == p.bdf));
                !st.pciback.contains(&p.bdf) || in_use
            }) {
                Err(Error::Libxl { op: "create", subject: subject(), code: LibxlErrorCode::ERROR_FAIL })
            } else {
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
        Ok(())
    }

    fn vif_names(&self, domid: DomId, vif_count: usize) -> HvResult<Vec<String>> {
        let st = self.shared.state.lock();
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
            emit(&st, domid.get(), DomainEvent::Death { domid });
        }
        self.pass_gate(&mut st, uuid, Op::Destroy);
        Ok(())
    }

    fn info(&self, domid: DomId) -> HvResult<Option<DomainInfo>> {
        let st = self.shared.state.lock();
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
        Ok(())
    }

    fn pci_assignable_list(&self) -> HvResult<Vec<Bdf>> {
        let mut l: Vec<Bdf> = self.shared.state.lock().pciback.iter().copied().collect();
        l.sort();
        Ok(l)
    }

    fn save(&self, domid: DomId, path: &std::path::Path) -> HvResult<()> {
        self.enter(Op::Save);
        let mut st = self.shared.state.lock();
        let uuid = self.target_gated(&mut st, domid, Op::Save, "save")?;
        let text = format!("{SIM_IMAGE}\n{uuid}\n");
        std::fs::write(path, text).map_err(|source| Error::Io { op: "write save image", path: path.into(), source })?;
        // As xl save: suspended, then destroyed.
        emit(&st, domid.get(), DomainEvent::Shutdown { domid, reason: ShutdownReason::Suspend });
        st.domains.remove(&domid.get());
        emit(&st, domid.get(), DomainEvent::Death { domid });
        self.pass_gate(&mut st, uuid, Op::Save);
        Ok(())
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
            return Err(failed("restore", Subject::Named(spec.name.clone())));
        }
        let domid = new_domain(&mut st, spec, DomainState::Paused);
        if let Some(d) = st.domains.get_mut(&domid.get()) {
            d.ever_unpaused = true; // a restored guest has run before
        }
        Ok(domid)
    }

    fn sysrq(&self, domid: DomId, key: char) -> HvResult<()> {
        self.enter(Op::Sysrq);
        let mut st = self.shared.state.lock();
        target(&mut st, domid, Op::Sysrq, "sysrq")?;
        st.sysrqs.push((domid, key));
        Ok(())
    }

    fn console_tty(&self, domid: DomId) -> HvResult<std::path::PathBuf> {
        let st = self.shared.state.lock();
        st.domains.get(&domid.get()).ok_or_else(|| not_found("console", domid))?;
        Ok(std::path::PathBuf::from(format!("/dev/pts/sim{domid}")))
    }

    fn host_info(&self) -> HvResult<HostInfo> {
        let st = self.shared.state.lock();
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
        st.watches.insert(id, (domid.get(), events));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> DomainSpec {
        DomainSpec::pv(name).kernel("/k")
    }

    #[test]
    fn domids_grow_and_domains_start_paused() {
        let sim = SimHypervisor::new();
        let a = sim.create_paused(&spec("a")).unwrap();
        sim.destroy(a).unwrap();
        let b = sim.create_paused(&spec("a")).unwrap();
        assert!(b > a, "domids only grow");
        assert_eq!(sim.info(b).unwrap().unwrap().state, DomainState::Paused);
        sim.unpause(b).unwrap();
        assert!(sim.info(b).unwrap().unwrap().state.is_live());
        assert!(sim.create_paused(&spec("a")).is_err(), "names are unique");
    }

    #[test]
    fn shutdown_is_a_request_and_events_follow() {
        let sim = SimHypervisor::new();
        let s = spec("g");
        let d = sim.create_paused(&s).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let _w = sim.watch(d, tx).unwrap();
        sim.shutdown(d).unwrap();
        assert_eq!(rx.try_recv(), Ok(DomainEvent::Shutdown { domid: d, reason: ShutdownReason::Poweroff }));
        assert!(sim.info(d).unwrap().is_some(), "a shut-down domain stays until destroyed");
        sim.destroy(d).unwrap();
        assert_eq!(rx.try_recv(), Ok(DomainEvent::Death { domid: d }));

        let s2 = spec("stubborn");
        sim.set_behaviour(s2.uuid, Behaviour { honours_shutdown: false, ..Behaviour::default() });
        let d2 = sim.create_paused(&s2).unwrap();
        sim.shutdown(d2).unwrap();
        assert!(sim.info(d2).unwrap().unwrap().state == DomainState::Paused);

        let s3 = spec("nopv");
        sim.set_behaviour(s3.uuid, Behaviour { pv_drivers: false, ..Behaviour::default() });
        let d3 = sim.create_paused(&s3).unwrap();
        assert!(matches!(sim.shutdown(d3), Err(Error::NoPvDrivers { .. })));
    }

    #[test]
    fn watches_report_past_shutdowns_and_missing_domains() {
        let sim = SimHypervisor::new();
        let d = sim.create_paused(&spec("g")).unwrap();
        sim.guest_crash(d);
        let (tx, rx) = crossbeam_channel::unbounded();
        let _w = sim.watch(d, tx.clone()).unwrap();
        assert_eq!(rx.try_recv(), Ok(DomainEvent::Shutdown { domid: d, reason: ShutdownReason::Crash }));
        let _w2 = sim.watch(DomId::new(999), tx).unwrap();
        assert_eq!(rx.try_recv(), Ok(DomainEvent::Death { domid: DomId::new(999) }));
    }

    #[test]
    fn faults_fail_the_named_calls_only() {
        let sim = SimHypervisor::new();
        let s = spec("f");
        sim.inject(s.uuid, Fault { op: Op::Create, count: 1 });
        assert!(sim.create_paused(&s).is_err());
        assert!(sim.create_paused(&s).is_ok());
        assert_eq!(sim.calls(Op::Create), 2);
    }

    #[test]
    fn a_gate_holds_calls_until_released() {
        let sim = SimHypervisor::new();
        sim.hold(Op::Create);
        let calls: Vec<_> = ["g1", "g2", "g3"]
            .into_iter()
            .map(|n| {
                let sim = sim.clone();
                std::thread::spawn(move || sim.create_paused(&spec(n)))
            })
            .collect();
        while sim.held(Op::Create) < 3 {
            std::thread::yield_now();
        }
        assert_eq!(sim.domains().len(), 3, "a held create has made its paused domain");
        sim.release(Op::Create, 1);
        while sim.held(Op::Create) != 2 {
            std::thread::yield_now();
        }
        sim.open(Op::Create);
        for c in calls {
            assert!(c.join().unwrap().is_ok());
        }
        assert_eq!((sim.held(Op::Create), sim.peak(Op::Create)), (0, 3));
        assert!(sim.create_paused(&spec("g4")).is_ok(), "an open gate holds nothing");
    }

    #[test]
    fn a_killed_client_never_returns_but_its_work_stays_done() {
        let sim = SimHypervisor::new();
        let client = sim.client();
        let s = spec("half");
        let gate = sim.gate(s.uuid, Op::Create);
        let (tx, rx) = crossbeam_channel::unbounded();
        let c = client.clone();
        let s2 = s.clone();
        std::thread::spawn(move || {
            let _ = tx.send(c.create_paused(&s2));
        });
        // The create is in flight: the domain exists, the call has not returned. Kill the
        // client, then let the call go on: it parks for good instead of returning.
        assert!(gate.wait_held(1, Duration::from_secs(20)));
        sim.kill_client(client.client_id());
        gate.open();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while sim.parked_calls() == 0 {
            assert!(std::time::Instant::now() < deadline, "the killed call never parked");
            std::thread::yield_now();
        }
        assert!(rx.try_recv().is_err(), "the killed call must not return");
        let left = sim.domains_of(s.uuid);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].state, DomainState::Paused);
        assert!(!left[0].ever_unpaused);
    }

    #[test]
    fn a_gate_holds_calls_after_their_effect_until_opened() {
        let sim = SimHypervisor::new();
        let s = spec("gated");
        let d = sim.create_paused(&s).unwrap();
        let gate = sim.gate(s.uuid, Op::Destroy);
        let (tx, rx) = crossbeam_channel::unbounded();
        let _w = sim.watch(d, tx).unwrap();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let s2 = sim.clone();
        std::thread::spawn(move || {
            let _ = done_tx.send(s2.destroy(d));
        });
        assert!(gate.wait_held(1, Duration::from_secs(20)));
        assert_eq!(gate.held(), 1);
        // Its work is done (the domain is gone and its death reported), the caller waits.
        assert!(sim.info_of(d.get()).is_none());
        assert_eq!(rx.try_recv(), Ok(DomainEvent::Death { domid: d }));
        assert!(done_rx.try_recv().is_err());
        gate.open();
        assert!(done_rx.recv_timeout(Duration::from_secs(20)).unwrap().is_ok());
        assert_eq!(gate.held(), 0);
    }

    #[test]
    fn a_domain_stuck_dying_stays_until_a_later_destroy() {
        let sim = SimHypervisor::new();
        let s = spec("zombie");
        sim.set_behaviour(s.uuid, Behaviour { stuck_dying: true, ..Behaviour::default() });
        let d = sim.create_paused(&s).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let _w = sim.watch(d, tx).unwrap();
        sim.destroy(d).unwrap();
        assert_eq!(sim.info(d).unwrap().map(|i| i.state), Some(DomainState::Dying));
        assert!(rx.try_recv().is_err(), "no death event");
        sim.set_behaviour(s.uuid, Behaviour::default());
        sim.destroy(d).unwrap();
        assert_eq!(sim.info(d).unwrap(), None);
        assert_eq!(rx.try_recv(), Ok(DomainEvent::Death { domid: d }));
    }

    #[test]
    fn lost_events_are_not_delivered_and_injected_panics_panic_once() {
        let sim = SimHypervisor::new();
        let s = spec("quiet");
        let d = sim.create_paused(&s).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let _w = sim.watch(d, tx).unwrap();
        sim.lose_events(d);
        sim.guest_poweroff(d);
        assert_eq!(sim.info(d).unwrap().map(|i| i.state), Some(DomainState::Shutdown(ShutdownReason::Poweroff)));
        assert!(rx.try_recv().is_err());

        sim.inject_panic(s.uuid, Op::Sysrq);
        let s2 = sim.clone();
        assert!(std::thread::spawn(move || s2.sysrq(d, 's')).join().is_err(), "the call panics");
        assert!(sim.sysrq(d, 's').is_ok(), "once");
    }
}
