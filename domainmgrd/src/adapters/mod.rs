//! Physical I/O adapters: which stay in dom0 and which are bound to pciback for guests, which
//! domain uses which, and the `AssignableAdapters` status that says so.
//!
//! Inputs: EVE's `PhysicalIOAdapterList` and `DeviceNetworkStatus` files and the
//! `debug.enable.usb` setting. The policy (`policy.rs`) is applied when an input arrives or
//! changes, and only then; moving a device costs a driver unbind/bind, so nothing is moved
//! twice. A domain reserves the adapters its `IoAdapterList` names when it boots (all members
//! of their assignment groups) and releases them when it halts; an adapter kept in dom0, not in
//! pciback, or used by another domain is an error for the domain, never a silent skip.

pub mod eve;
pub mod host;
pub mod policy;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;
use xenctl::Bdf;

use self::eve::{AssignableAdapters, DeviceNetworkStatus, IoBundle, IoBundleError, PhysicalIoAdapterList};
use self::host::Host;
use self::policy::Ports;
use crate::eve::IoAdapter;
use crate::files;
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

/// The adapters' state; shared by the supervisor and the domain threads behind a mutex.
pub struct Adapters {
    hv: Arc<dyn Hypervisor>,
    sources: Sources,
    status_file: PathBuf,
    list: Option<PhysicalIoAdapterList>,
    network: DeviceNetworkStatus,
    enable_usb: bool,
    bundles: Vec<IoBundle>,
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

fn read_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<Option<T>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

impl Adapters {
    /// Adapter state with nothing read yet; publishes to `<status_dir>/AssignableAdapters/global.json`.
    pub fn new(hv: Arc<dyn Hypervisor>, sources: Sources, status_dir: &Path, enable_usb: bool) -> Adapters {
        Adapters {
            hv,
            sources,
            status_file: status_dir.join("AssignableAdapters/global.json"),
            list: None,
            network: DeviceNetworkStatus::default(),
            enable_usb,
            bundles: Vec::new(),
            written: None,
        }
    }

    /// The input files, for the watcher.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Re-reads the input files; true if either changed (then call [`apply`](Self::apply)).
    /// A file that cannot be read keeps its last good content.
    pub fn reload(&mut self) -> bool {
        let mut changed = false;
        match read_json::<PhysicalIoAdapterList>(&self.sources.adapter_list) {
            Ok(list) => {
                changed |= list != self.list;
                self.list = list;
            }
            Err(e) => log::error!("keeping the last adapter list: {e}"),
        }
        match read_json::<DeviceNetworkStatus>(&self.sources.network_status) {
            Ok(net) => {
                let net = net.unwrap_or_default();
                changed |= net != self.network;
                self.network = net;
            }
            Err(e) => log::error!("keeping the last network port list: {e}"),
        }
        changed
    }

    /// `debug.enable.usb` changed: give the USB controllers back to dom0 and load the USB
    /// modules, or unload them and hand the controllers to pciback.
    pub fn set_enable_usb(&mut self, enable: bool) {
        if enable == self.enable_usb {
            return;
        }
        self.enable_usb = enable;
        log::info!("debug.enable.usb is now {enable}");
        if enable {
            self.apply();
            if let Err(e) = self.sources.host.usb_modules(true) {
                log::error!("{e}");
            }
        } else {
            if let Err(e) = self.sources.host.usb_modules(false) {
                log::error!("{e}");
            }
            self.apply();
        }
    }

    /// dom0's network ports: by name, and by PCI address (reported, or looked up in sysfs).
    fn ports(&self) -> Ports {
        let mut ports = Ports::default();
        for p in &self.network.ports {
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

    /// Applies the policy: binds to pciback what may go to guests, gives back to dom0 what must
    /// stay, and publishes the result.
    pub fn apply(&mut self) {
        let Some(list) = self.list.clone() else {
            self.publish();
            return;
        };
        let decisions = policy::decide(&list.adapter_list, &self.ports(), self.enable_usb);
        let assignable: HashSet<Bdf> = match self.hv.pci_assignable_list() {
            Ok(l) => l.into_iter().collect(),
            Err(e) => {
                log::error!("cannot list the assignable PCI devices: {e}");
                HashSet::new()
            }
        };
        let used: HashMap<(String, String), Uuid> =
            self.bundles.iter().map(|b| ((b.phylabel.clone(), b.pci_long.clone()), b.used_by_uuid)).collect();

        let mut bundles = Vec::with_capacity(list.adapter_list.len());
        for (a, d) in list.adapter_list.iter().zip(decisions) {
            let mut b = IoBundle {
                io_type: a.ptype,
                phylabel: a.phylabel.clone(),
                logicallabel: a.logicallabel.clone(),
                assignment_group: a.assigngrp.clone(),
                usage: a.usage,
                ifname: a.phyaddr.ifname.clone(),
                pci_long: a.phyaddr.pci_long.clone(),
                serial: a.phyaddr.serial.clone(),
                usb_addr: a.phyaddr.usb_addr.clone(),
                usb_product: a.phyaddr.usb_product.clone(),
                used_by_uuid: used.get(&(a.phylabel.clone(), a.phyaddr.pci_long.clone())).copied().unwrap_or_default(),
                is_pci_back: false,
                is_port: d.is_port,
                keep_in_host: d.keep_in_host,
                error: IoBundleError::default(),
            };
            if b.pci_long.is_empty() {
                bundles.push(b);
                continue;
            }
            let bdf = match b.pci_long.parse::<Bdf>() {
                Ok(bdf) => bdf,
                Err(e) => {
                    b.error = IoBundleError::now(e.to_string());
                    bundles.push(b);
                    continue;
                }
            };
            let mut in_pciback = assignable.contains(&bdf);
            if !d.keep_in_host && !in_pciback {
                match self.hv.pci_assignable_add(bdf) {
                    Ok(()) => in_pciback = true,
                    Err(e) => b.error = IoBundleError::now(format!("cannot assign {bdf} to pciback: {e}")),
                }
            } else if d.keep_in_host && in_pciback {
                let why = d.reason.unwrap_or_default();
                if !b.used_by_uuid.is_nil() {
                    b.error = IoBundleError::now(format!(
                        "{why}, but domain {} uses it; it returns to dom0 when that domain halts",
                        b.used_by_uuid
                    ));
                } else {
                    match self.hv.pci_assignable_remove(bdf, true) {
                        Ok(()) => {
                            in_pciback = false;
                            log::info!("{} ({bdf}) returned to dom0: {why}", b.phylabel);
                        }
                        Err(e) => b.error = IoBundleError::now(format!("cannot return {bdf} to dom0: {e}")),
                    }
                }
            }
            b.is_pci_back = in_pciback;
            bundles.push(b);
        }
        self.bundles = bundles;
        self.publish();
    }

    /// Bundles matching what a domain's `IoAdapterList` names, with their assignment groups.
    fn lookup(&self, wanted: &[IoAdapter]) -> Result<Vec<usize>, String> {
        let mut chosen = Vec::new();
        for w in wanted {
            let Some(first) = self
                .bundles
                .iter()
                .position(|b| b.io_type == w.io_type && (b.phylabel == w.name || b.logicallabel == w.name))
            else {
                return Err(match &self.list {
                    None => format!(
                        "IoAdapterList: adapter {} cannot be found: no PhysicalIOAdapterList has been received",
                        w.name
                    ),
                    Some(_) => format!(
                        "IoAdapterList: the PhysicalIOAdapterList has no adapter {} of type {}",
                        w.name, w.io_type.0
                    ),
                });
            };
            let group = &self.bundles[first].assignment_group;
            for (i, b) in self.bundles.iter().enumerate() {
                let member = i == first || (!group.is_empty() && &b.assignment_group == group);
                if member && !chosen.contains(&i) {
                    chosen.push(i);
                }
            }
        }
        Ok(chosen)
    }

    /// Reserves for domain `uuid` the adapters `wanted` names; their PCI devices, to pass through.
    pub fn reserve(&mut self, uuid: Uuid, wanted: &[IoAdapter]) -> Result<Vec<Bdf>, String> {
        let chosen = self.lookup(wanted)?;
        let mut bdfs = Vec::new();
        for &i in &chosen {
            let b = &self.bundles[i];
            let label = if b.phylabel.is_empty() { &b.logicallabel } else { &b.phylabel };
            if b.keep_in_host {
                let why = if b.is_port { "it is (in the group of) a dom0 network port" } else { "it is kept in dom0" };
                return Err(format!("IoAdapterList: adapter {label} cannot be given to a guest: {why}"));
            }
            if !b.used_by_uuid.is_nil() && b.used_by_uuid != uuid {
                return Err(format!("IoAdapterList: adapter {label} is used by domain {}", b.used_by_uuid));
            }
            let bdf = b.pci_long.parse::<Bdf>().map_err(|_| {
                format!("IoAdapterList: adapter {label} is not a PCI device; only PCI passthrough is supported")
            })?;
            if !b.is_pci_back {
                let err = b.error.text();
                return Err(format!(
                    "IoAdapterList: adapter {label} ({bdf}) is not assignable{}",
                    if err.is_empty() { String::new() } else { format!(": {err}") }
                ));
            }
            if !bdfs.contains(&bdf) {
                bdfs.push(bdf);
            }
        }
        for &i in &chosen {
            self.bundles[i].used_by_uuid = uuid;
        }
        self.publish();
        Ok(bdfs)
    }

    /// Records that domain `uuid` (found running at start) has the adapters `wanted` names.
    pub fn adopt(&mut self, uuid: Uuid, wanted: &[IoAdapter]) {
        match self.lookup(wanted) {
            Ok(chosen) => {
                for i in chosen {
                    self.bundles[i].used_by_uuid = uuid;
                }
                self.publish();
            }
            Err(e) => log::warn!("domain {uuid} runs with adapters not in the current list: {e}"),
        }
    }

    /// Domain `uuid` halted: its adapters are free (and any that must return to dom0 do now).
    pub fn release(&mut self, uuid: Uuid) {
        let mut any = false;
        for b in self.bundles.iter_mut().filter(|b| b.used_by_uuid == uuid) {
            b.used_by_uuid = Uuid::nil();
            any = true;
        }
        if !any {
            return;
        }
        if self.bundles.iter().any(|b| b.keep_in_host && b.is_pci_back && b.used_by_uuid.is_nil()) {
            self.apply();
        } else {
            self.publish();
        }
    }

    /// What is published.
    pub fn snapshot(&self) -> AssignableAdapters {
        AssignableAdapters { initialized: self.list.is_some(), io_bundle_list: self.bundles.clone() }
    }

    fn publish(&mut self) {
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
        if let Some(dir) = self.status_file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match files::write_atomic(&self.status_file, &bytes) {
            Ok(()) => self.written = Some(bytes),
            Err(e) => log::error!("cannot write {}: {e}", self.status_file.display()),
        }
    }
}
