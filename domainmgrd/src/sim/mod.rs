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
//! ([`SimHypervisor::hold`]), and killed clients ([`SimHypervisor::kill_client`], or
//! [`SimHypervisor::kill_client_at`] one of its calls): every call of a killed client blocks
//! forever and its watches hear nothing more, the way a daemon killed with SIGKILL in the
//! middle of a call never continues, while what the hypervisor already did stays done.
//!
//! What tests can synchronise on, instead of sleeping: [`Gate`]s ([`SimHypervisor::gate`]) hold
//! a guest's calls of one kind just before they return, after their effect (a slow libxl call
//! whose work is done but whose caller has not heard yet), until the test opens them, and say
//! how many calls they hold; [`SimHypervisor::parked_calls`] counts the calls of killed clients
//! that are parked for good. Tests can also lose a domain's events
//! ([`SimHypervisor::lose_events`]), as a missed event would, and make a call panic in the
//! caller's thread ([`SimHypervisor::inject_panic`]), as a bug in the daemon would.
//!
//! The code: this file holds the types tests use, the shared state behind every client, and
//! the test API; `injection.rs` the machinery each call passes through (kills, delays, gates,
//! faults, panics); `calls.rs` the [`Hypervisor`](crate::hypervisor::Hypervisor) calls
//! themselves; `tests.rs` the simulator's own tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};
use uuid::Uuid;
use xenctl::{Bdf, DomId, DomainEvent, DomainSpec, DomainState, Error, LibxlErrorCode, ShutdownReason, Subject};

mod calls;
mod injection;
mod migrate;
mod save;
#[cfg(test)]
mod tests;

pub use injection::{Gate, KillMoment};

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
    /// `begin_save` (its end waits at the op's hold and the guest's gate).
    Save,
    /// `resume`.
    Resume,
    /// `restore_paused`.
    Restore,
    /// `sysrq`.
    Sysrq,
    /// `set_bios_string`.
    BiosString,
    /// `destroy`.
    Destroy,
    /// `migrate_send` (a fault fails it before anything is sent).
    Migrate,
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
    watches: HashMap<u64, Watch>,
    killed: HashSet<u64>,
    /// Kills armed by [`SimHypervisor::kill_client_at`], by client.
    kill_points: HashMap<u64, injection::KillPoint>,
    /// Threads whose client dies in the middle or at the return of their call.
    doomed: HashSet<(std::thread::ThreadId, KillMoment)>,
    calls: HashMap<Op, u64>,
    in_flight: HashMap<Op, u64>,
    peak: HashMap<Op, u64>,
    pci_devices: HashSet<Bdf>,
    pciback: HashSet<Bdf>,
    /// Devices taken back from pciback, in order, with whether their dom0 driver was rebound.
    pci_removals: Vec<(Bdf, bool)>,
    sysrqs: Vec<(DomId, char)>,
    /// SMBIOS strings set, by domain: (key, value).
    bios_strings: HashMap<u32, Vec<(String, String)>>,
    /// Keys the guests wrote in their own xenstore directories (domid, key).
    guest_keys: HashMap<(u32, String), String>,
    /// Whether consoles are real ptys ([`SimHypervisor::real_consoles`]).
    real_consoles: bool,
    /// Each domain's console: the pty's master (the guest's side, xenconsoled's in Xen).
    consoles: HashMap<u32, std::fs::File>,
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

/// A watch on one domain's events, for one client.
struct Watch {
    domid: u32,
    /// The client that armed it: a killed one hears nothing more.
    client: u64,
    events: Sender<DomainEvent>,
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

    /// Kills a connection: its calls in flight and all later ones block forever, and its
    /// watches get no more events.
    pub fn kill_client(&self, client: u64) {
        self.shared.state.lock().killed.insert(client);
    }

    /// Kills `client` as [`kill_client`](Self::kill_client) does, at its `nth` call of `op`
    /// from now on (1: the next one): at [`KillMoment::Entry`] before the call does anything,
    /// at [`KillMoment::Middle`] of a save with the guest suspended and half its image
    /// written, at [`KillMoment::Return`] once the call has done its work (or failed), before
    /// it returns: a create has made its paused domain, a save has written its image and the
    /// domain is gone, and the caller never hears of it. The calls counted are those [`Op`]
    /// names, from every thread of the client. Replaces an earlier kill point of the client.
    /// A test sees that it fired when [`parked_calls`](Self::parked_calls) counts the call.
    pub fn kill_client_at(&self, client: u64, op: Op, nth: u64, moment: KillMoment) {
        let point = injection::KillPoint { op, left: nth.max(1), moment };
        self.shared.state.lock().kill_points.insert(client, point);
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
        self.shared.gates.notify_all();
    }

    /// Stops holding calls of `op`; the held ones go on.
    pub fn open(&self, op: Op) {
        self.shared.state.lock().op_gates.remove(&op);
        self.shared.gates.notify_all();
    }

    /// How many calls of `op` the gate holds now.
    pub fn held(&self, op: Op) -> u64 {
        self.shared.state.lock().op_gates.get(&op).map_or(0, |g| g.held)
    }

    /// Waits until `op`'s gate holds exactly `n` calls; false if that did not happen within
    /// `timeout`.
    pub fn wait_held(&self, op: Op, n: u64, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let held = |st: &State| st.op_gates.get(&op).map_or(0, |g| g.held);
        let mut st = self.shared.state.lock();
        while held(&st) != n {
            if self.shared.gates.wait_until(&mut st, deadline).timed_out() {
                return held(&st) == n;
            }
        }
        true
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

    /// The SMBIOS strings set for domain `domid` (key, value), in order.
    pub fn bios_strings(&self, domid: DomId) -> Vec<(String, String)> {
        self.shared.state.lock().bios_strings.get(&domid.get()).cloned().unwrap_or_default()
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

    /// The guest writes `key` in its own xenstore directory (gone with the domain).
    pub fn guest_write(&self, domid: DomId, key: &str, value: &str) {
        self.shared.state.lock().guest_keys.insert((domid.get(), key.to_string()), value.to_string());
    }

    /// Gives each domain a real console from now on: a pty whose other side
    /// [`guest_print`](Self::guest_print) writes, closed as the domain goes (as xenconsoled
    /// closes it). Without, `console_tty` names a tty that does not exist.
    pub fn real_consoles(&self) {
        self.shared.state.lock().real_consoles = true;
    }

    /// The guest writes `text` on its console (see [`real_consoles`](Self::real_consoles)).
    pub fn guest_print(&self, domid: DomId, text: &str) {
        let mut st = self.shared.state.lock();
        if let Some(master) = st.consoles.get_mut(&domid.get()) {
            let _ = std::io::Write::write_all(master, text.as_bytes());
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
            st.consoles.remove(&domid.get());
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

fn emit(st: &State, domid: u32, event: DomainEvent) {
    if st.lost_events.contains(&domid) {
        return;
    }
    for watch in st.watches.values() {
        if watch.domid == domid && !st.killed.contains(&watch.client) {
            // Unbounded channel: never blocks; a gone receiver is fine.
            let _ = watch.events.send(event);
        }
    }
}

fn failed(op: &'static str, subject: Subject) -> Error {
    Error::Libxl { op, subject, code: LibxlErrorCode::ERROR_FAIL }
}

fn not_found(op: &'static str, domid: DomId) -> Error {
    Error::DomainNotFound { op, domid }
}
