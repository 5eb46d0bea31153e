//! Physical I/O adapters: which stay in dom0 and which are bound to pciback for guests, which
//! domain uses which, and the `AssignableAdapters` status that says so.
//!
//! Inputs: EVE's `PhysicalIOAdapterList` and `DeviceNetworkStatus` files and the
//! `debug.enable.usb` setting. Nothing moves before both files have arrived and the network
//! status names at least one dom0 port (EVE waits the same way): until nim has said which
//! NICs dom0 uses, any NIC could be the one dom0 needs. A network status that later vanishes
//! or lists no port keeps the last known ports; losing dom0's connectivity to a missing file
//! would be worse than a stale list.
//!
//! The policy (`policy.rs`) is applied when an input arrives or changes, and only then; moving
//! a device costs a driver unbind/bind, so nothing is moved twice. A domain reserves the
//! adapters its `IoAdapterList` names when it boots, found as EVE finds them (assignment
//! group, then phylabel, then logical label; whole units: groups and devices listed twice),
//! and releases them when it halts; what they give the guest (PCI devices, IRQs, I/O ports,
//! serial ports, USB devices) goes into its spec by EVE's mode rules (`resources.rs`). A
//! device the policy keeps in dom0 but that is no port is seized for the domain at its create
//! (EVE's assignments take precedence over keeping in host); a released device the policy
//! wants back in dom0 is then rebound to its dom0 driver, and nothing else moves. An adapter
//! that is a dom0 port, has no assignment group, an unusable address, or is used by another
//! domain is an error for the domain, never a silent skip. Operators (`domainctl pci assign|release`) move devices
//! through the same path; their choice stands against the policy until they change it.
//!
//! Concurrency: the state lives behind one mutex that is never held across a hypervisor call
//! or a modprobe run. Those happen in one worker thread (`apply.rs`), one job at a time, so
//! policy passes and operator moves never interleave; devices in flight are marked so a
//! domain never reserves one mid-move. Reserving and releasing are quick bookkeeping.

mod apply;
pub mod eve;
mod holds;
pub mod host;
pub mod policy;
pub mod resources;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use uuid::Uuid;
use xenctl::{Bdf, DomainInfo};

use self::apply::Job;
pub use self::apply::{OperatorDone, OperatorReply};
use self::eve::{
    AssignableAdapters, DeviceNetworkStatus, IoBundle, IoBundleError, IoBundleErrorEntry, PhysicalIoAdapterList,
};
use self::host::Host;
use self::policy::{Ports, Verdict};
pub use self::resources::{BundleResources, Reservation};
use crate::agent::{Input, Outputs};
use crate::eve::IoAdapter;
use crate::hypervisor::Hypervisor;

/// Where the adapter inputs come from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// EVE's `PhysicalIOAdapterList/global.json` (zedagent's output).
    pub adapter_list: PathBuf,
    /// EVE's `DeviceNetworkStatus/global.json` (nim's output).
    pub network_status: PathBuf,
    /// dom0's sysfs and modprobe.
    pub host: Host,
}

impl Sources {
    /// EVE's default locations: `/run/zedagent`, `/run/nim`, `/sys`, `modprobe`.
    pub fn eve_defaults() -> Sources {
        Sources {
            adapter_list: PathBuf::from("/run/zedagent/PhysicalIOAdapterList/global.json"),
            network_status: PathBuf::from("/run/nim/DeviceNetworkStatus/global.json"),
            host: Host::default(),
        }
    }
}

/// Where a device belongs: dom0 (its own driver) or pciback (assignable to guests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    Dom0,
    Pciback,
}

impl Placement {
    fn name(self) -> &'static str {
        match self {
            Placement::Dom0 => "dom0",
            Placement::Pciback => "pciback",
        }
    }
}

/// A policy pass's result, for the published bundles and for reservations.
#[derive(Debug, Clone)]
struct Applied {
    list: PhysicalIoAdapterList,
    verdict: Verdict,
    /// Per adapter: its unusable PCI address, as an error (timed when first seen).
    bad_addresses: Vec<Option<IoBundleError>>,
}

/// The adapters' state, shared by the supervisor, the domain threads and the worker.
pub struct Adapters {
    hv: Arc<dyn Hypervisor>,
    sources: Sources,
    /// Where AssignableAdapters is published.
    outputs: Arc<Outputs>,
    /// The inputs as read: the files of `sources`, or EVE's topics (see `use_inputs`).
    list_input: Input,
    network_input: Input,
    /// The adapter list as last read.
    list: Option<PhysicalIoAdapterList>,
    /// dom0's ports as last accepted (a status with at least one port).
    network: Option<DeviceNetworkStatus>,
    enable_usb: bool,
    /// `debug.enable.vga`.
    enable_vga: bool,
    /// An input changed since the policy last ran.
    stale: bool,
    /// What modprobe was last asked to do with the USB modules (`None`: nothing yet).
    usb_loaded: Option<bool>,
    /// The list the policy last ran on, and its verdict.
    verdict: Option<Applied>,
    /// The devices in pciback, as last seen and moved.
    pciback: BTreeSet<Bdf>,
    /// Devices reserved by domains.
    held: BTreeMap<Bdf, Uuid>,
    /// Entries reserved by domains, PCI or not, by `holds::bundle_key`.
    held_bundles: BTreeMap<String, Uuid>,
    /// Adapters that running domains have, by name, before any list could resolve them.
    claims: HashMap<Uuid, Vec<IoAdapter>>,
    /// Devices that go back to dom0 when the domain holding them releases them.
    pending_rebind: BTreeSet<Bdf>,
    /// Where operators put devices against the policy, and the note that says so.
    overrides: BTreeMap<Bdf, (Placement, IoBundleError)>,
    /// Devices the worker is moving now, and to where.
    moving: BTreeMap<Bdf, Placement>,
    /// Failed moves and deferred returns, by device.
    notes: BTreeMap<Bdf, IoBundleError>,
    bundles: Vec<IoBundle>,
    jobs: Sender<Job>,
    /// Jobs go here until the worker runs (set by `start`).
    jobs_rx: Option<crossbeam_channel::Receiver<Job>>,
    written: Option<Vec<u8>>,
}

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapters")
            .field("sources", &self.sources)
            .field("bundles", &self.bundles.len())
            .finish_non_exhaustive()
    }
}

fn read_json<T: serde::de::DeserializeOwned>(input: &Input) -> Result<Option<T>, String> {
    match input.read()? {
        Some(bytes) => {
            serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("{}: {e}", input.origin().display()))
        }
        None => Ok(None),
    }
}

impl Adapters {
    /// Adapter state with nothing read yet, reading the files of `sources`; publishes
    /// AssignableAdapters through `outputs`.
    pub fn new(hv: Arc<dyn Hypervisor>, sources: Sources, outputs: Arc<Outputs>, enable_usb: bool) -> Adapters {
        let (list_input, network_input) =
            (Input::File(sources.adapter_list.clone()), Input::File(sources.network_status.clone()));
        let (jobs, jobs_rx) = crossbeam_channel::unbounded();
        Adapters {
            hv,
            sources,
            outputs,
            list_input,
            network_input,
            list: None,
            network: None,
            enable_usb,
            enable_vga: true,
            stale: true,
            usb_loaded: None,
            verdict: None,
            pciback: BTreeSet::new(),
            held: BTreeMap::new(),
            held_bundles: BTreeMap::new(),
            claims: HashMap::new(),
            pending_rebind: BTreeSet::new(),
            overrides: BTreeMap::new(),
            moving: BTreeMap::new(),
            notes: BTreeMap::new(),
            bundles: Vec::new(),
            jobs,
            jobs_rx: Some(jobs_rx),
            written: None,
        }
    }

    /// Takes over at daemon start: learns which devices the `running` domains hold (from the
    /// previous daemon's `AssignableAdapters` and the configs in `config_dir`), reads the
    /// inputs, reconciles the USB modules and applies the policy (if its inputs are here), all
    /// before returning, so that no domain thread ever sees a half-applied policy. Then starts
    /// the worker for later changes.
    pub fn start(mut self, running: &[DomainInfo], config_dir: &Path) -> std::io::Result<Arc<Mutex<Adapters>>> {
        self.recover(running, config_dir);
        self.reload();
        let hv = Arc::clone(&self.hv);
        let rx = self.jobs_rx.take();
        let shared = Arc::new(Mutex::new(self));
        apply::reconcile(&shared, hv.as_ref());
        if let Some(rx) = rx {
            apply::spawn(&shared, rx, hv)?;
        }
        Ok(shared)
    }

    /// Reads the adapter list and dom0's ports from these inputs (EVE's topics) instead of
    /// the files of the sources.
    pub fn use_inputs(&mut self, list: Input, network: Input) {
        self.list_input = list;
        self.network_input = network;
    }

    /// The input files, for the watcher.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Re-reads the input files; true if either changed (then call [`apply`](Self::apply)).
    /// A file that cannot be read or parsed, or is gone, keeps its last good content; so does
    /// a network status without a DevicePortConfig key or without any port.
    pub fn reload(&mut self) -> bool {
        let mut changed = false;
        let list_path = self.list_input.origin().display().to_string();
        match read_json::<PhysicalIoAdapterList>(&self.list_input) {
            Ok(Some(list)) => {
                changed |= self.list.as_ref() != Some(&list);
                self.list = Some(list);
            }
            Ok(None) if self.list.is_some() => log::warn!("{list_path} is gone; keeping the last adapter list"),
            Ok(None) => {}
            Err(e) => log::error!("keeping the last adapter list: {e}"),
        }
        let net_path = self.network_input.origin().display().to_string();
        let keeping = if self.network.is_some() {
            "keeping the last known ports"
        } else {
            "no adapter moves until one names dom0's ports"
        };
        match read_json::<DeviceNetworkStatus>(&self.network_input) {
            Ok(Some(net)) if net.dpc_key.as_deref() == Some("") => {
                log::info!("{net_path}: nim has no port config yet (empty DPCKey); {keeping}")
            }
            Ok(Some(net)) if net.ports.is_empty() => log::warn!("{net_path} lists no network port; {keeping}"),
            Ok(Some(net)) => {
                if self.network.as_ref().map(|n| &n.ports) != Some(&net.ports) {
                    changed = true;
                    self.network = Some(net);
                }
            }
            Ok(None) if self.network.is_some() => log::warn!("{net_path} is gone; {keeping}"),
            Ok(None) => {}
            Err(e) => log::error!("{e}; {keeping}"),
        }
        self.stale |= changed;
        changed
    }

    /// Applies the policy, in the worker, if an input changed since it last ran.
    pub fn apply(&mut self) {
        if self.stale {
            self.submit(Job::Reconcile);
        }
    }

    /// `debug.enable.usb` changed: give the USB controllers back to dom0 and load the USB
    /// modules, or unload them and hand the controllers to pciback (in the worker).
    pub fn set_enable_usb(&mut self, enable: bool) {
        if enable == self.enable_usb {
            return;
        }
        self.enable_usb = enable;
        self.stale = true;
        log::info!("debug.enable.usb is now {enable}");
        self.submit(Job::Reconcile);
    }

    /// `debug.enable.vga` changed: the boot VGA adapter stays in dom0 (when true) or goes to
    /// pciback, in the worker.
    pub fn set_enable_vga(&mut self, enable: bool) {
        if enable == self.enable_vga {
            return;
        }
        self.enable_vga = enable;
        self.stale = true;
        log::info!("debug.enable.vga is now {enable}");
        self.submit(Job::Reconcile);
    }

    /// The same adapters, with `debug.enable.vga` as given (at start, before anything moves).
    pub fn with_enable_vga(mut self, enable: bool) -> Adapters {
        self.enable_vga = enable;
        self
    }

    /// An operator moves `bdf` (and the rest of its unit) to pciback (`assign`) or back to
    /// dom0; `force` overrides the policy's keeping it in dom0. `reply` gets the outcome once
    /// the worker has done it.
    pub fn operator(&mut self, bdf: Bdf, assign: bool, force: bool, reply: OperatorReply) {
        let to = if assign { Placement::Pciback } else { Placement::Dom0 };
        self.submit(Job::Operator { bdf, to, force, reply });
    }

    fn submit(&mut self, job: Job) {
        if let Err(e) = self.jobs.send(job) {
            log::error!("the adapter worker is gone; dropping a request ({e})");
        }
    }

    /// Whether the policy may run: the list and dom0's ports are known.
    fn ready(&self) -> bool {
        self.list.is_some() && self.network.is_some()
    }

    /// Why no adapter can be reserved yet, while the inputs have not arrived (nim has not
    /// named dom0's ports, or no adapter list came): a domain that needs adapters waits for
    /// them, which is no failed boot.
    pub fn waiting_for(&self) -> Option<String> {
        if self.verdict.is_some() {
            None
        } else if self.list.is_none() {
            Some("no PhysicalIOAdapterList has been received".into())
        } else if self.network.is_none() {
            Some(
                "DeviceNetworkStatus has not yet named dom0's network ports; no adapter is assigned before it does"
                    .into(),
            )
        } else {
            Some("the adapter policy is being applied".into())
        }
    }

    /// dom0's network ports: by name, and by PCI address (reported, or looked up in sysfs).
    fn ports(&self) -> Ports {
        let mut ports = Ports::default();
        for p in self.network.iter().flat_map(|n| &n.ports) {
            if !p.if_name.is_empty() {
                ports.ifnames.insert(p.if_name.clone());
                if let Some(bdf) = self.sources.host.pci_of_ifname(&p.if_name) {
                    ports.pcis.insert(bdf);
                }
            }
            if let Ok(bdf) = p.pci_long.parse::<Bdf>() {
                ports.pcis.insert(bdf);
            }
        }
        ports
    }

    /// Where the unit holding `bdfs` belongs: an operator's choice, else the policy's.
    fn placement(&self, bdfs: &BTreeSet<Bdf>, keep_in_host: bool) -> Placement {
        bdfs.iter().find_map(|b| self.overrides.get(b).map(|(p, _)| *p)).unwrap_or(if keep_in_host {
            Placement::Dom0
        } else {
            Placement::Pciback
        })
    }

    /// Rebuilds the published bundles from the verdict and the devices' state.
    fn rebuild(&mut self) {
        let Some(applied) = &self.verdict else {
            self.bundles.clear();
            return;
        };
        let (list, verdict) = (&applied.list, &applied.verdict);
        let mut bundles = Vec::with_capacity(list.adapter_list.len());
        for (i, a) in list.adapter_list.iter().enumerate() {
            let d = &verdict.decisions[i];
            let pci = verdict.pcis[i].as_ref().ok().copied().flatten();
            let mut errors: Vec<&IoBundleError> = applied.bad_addresses[i].iter().collect();
            if let Some(bdf) = pci {
                errors.extend(self.notes.get(&bdf));
                errors.extend(self.overrides.get(&bdf).map(|(_, note)| note));
            }
            bundles.push(IoBundle {
                io_type: a.ptype,
                phylabel: a.phylabel.clone(),
                logicallabel: a.logicallabel.clone(),
                assignment_group: a.assigngrp.clone(),
                parent_assignment_group: a.parentassigngrp.clone(),
                usage: a.usage,
                ifname: a.phyaddr.ifname.clone(),
                pci_long: a.phyaddr.pci_long.clone(),
                irq: a.phyaddr.irq.clone(),
                ioports: a.phyaddr.ioports.clone(),
                serial: a.phyaddr.serial.clone(),
                usb_addr: a.phyaddr.usb_addr.clone(),
                usb_product: a.phyaddr.usb_product.clone(),
                used_by_uuid: pci
                    .and_then(|b| self.held.get(&b))
                    .or_else(|| self.held_bundles.get(&holds::bundle_key(a)))
                    .copied()
                    .unwrap_or_default(),
                is_pci_back: pci.is_some_and(|b| self.pciback.contains(&b)),
                is_port: d.is_port,
                keep_in_host: d.keep_in_host,
                error: merge(&errors),
            });
        }
        self.bundles = bundles;
    }

    /// What is published.
    pub fn snapshot(&self) -> AssignableAdapters {
        AssignableAdapters { initialized: self.verdict.is_some(), io_bundle_list: self.bundles.clone() }
    }

    /// Rebuilds and writes `AssignableAdapters` if it changed.
    fn publish(&mut self) {
        self.rebuild();
        let bytes = match serde_json::to_vec_pretty(&self.snapshot()) {
            Ok(b) => b,
            Err(e) => {
                log::error!("cannot serialise AssignableAdapters: {e}");
                return;
            }
        };
        if self.written.as_deref() == Some(&bytes) {
            return;
        }
        match self.outputs.assignable_adapters.publish("global", &bytes) {
            Ok(()) => self.written = Some(bytes),
            Err(e) => log::error!("cannot publish AssignableAdapters: {e}"),
        }
    }
}

/// Several errors as one `IOBundleError`, timed by the latest.
fn merge(errors: &[&IoBundleError]) -> IoBundleError {
    IoBundleError {
        errors: errors.iter().flat_map(|e| e.errors.iter().cloned()).collect::<Vec<IoBundleErrorEntry>>(),
        time_of_error: errors.iter().filter_map(|e| e.time_of_error).max(),
    }
}

#[cfg(test)]
mod tests;
