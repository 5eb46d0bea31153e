//! Which domain holds which device: reservations at boot, adoption of running domains (and,
//! at daemon start, what they held before the restart), and release at halt. All of it is
//! bookkeeping under the adapters' lock; the only device move it can cause, a pending return
//! to dom0, is handed to the worker.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use uuid::Uuid;
use xenctl::{Bdf, DomainInfo};

use super::apply::Job;
use super::eve::AssignableAdapters;
use super::{Adapters, Applied, Placement, read_json};
use crate::eve::{DomainConfig, IoAdapter};

/// What an adapter entry is, for the "not a PCI device" error.
fn kind_of(a: &super::eve::PhysicalIoAdapter) -> String {
    let p = &a.phyaddr;
    if !p.usb_addr.is_empty() || !p.usb_product.is_empty() || a.ptype.0 == 14 {
        "a USB device".into()
    } else if !p.serial.is_empty() {
        format!("the serial port {}", p.serial)
    } else if !p.ifname.is_empty() {
        format!("the interface {} without a PCI address", p.ifname)
    } else {
        "without a PCI address".into()
    }
}

impl Applied {
    /// The adapters `wanted` names, with the rest of their units, as indexes into the list.
    fn lookup(&self, wanted: &[IoAdapter]) -> Result<Vec<usize>, String> {
        let mut chosen: Vec<usize> = Vec::new();
        for w in wanted {
            let Some(first) = self
                .list
                .adapter_list
                .iter()
                .position(|a| a.ptype == w.io_type && (a.phylabel == w.name || a.logicallabel == w.name))
            else {
                return Err(format!(
                    "IoAdapterList: the PhysicalIOAdapterList has no adapter {} of type {}",
                    w.name, w.io_type.0
                ));
            };
            for &i in &self.verdict.units[self.verdict.unit_of[first]].members {
                if !chosen.contains(&i) {
                    chosen.push(i);
                }
            }
        }
        Ok(chosen)
    }

    /// The PCI devices of `chosen` (those that are PCI devices).
    fn bdfs(&self, chosen: &[usize]) -> BTreeSet<Bdf> {
        chosen.iter().filter_map(|&i| self.verdict.pcis[i].as_ref().ok().copied().flatten()).collect()
    }
}

impl Adapters {
    /// Reserves for domain `uuid` the adapters `wanted` names (with their units); returns their
    /// PCI devices, to pass through. Every reason it cannot is an error naming the adapter.
    pub fn reserve(&mut self, uuid: Uuid, wanted: &[IoAdapter]) -> Result<Vec<Bdf>, String> {
        if let Some(why) = self.waiting_for() {
            let names: Vec<&str> = wanted.iter().map(|w| w.name.as_str()).collect();
            return Err(format!("IoAdapterList: adapters {} cannot be assigned yet: {why}", names.join(", ")));
        }
        let Some(applied) = &self.verdict else { return Err("IoAdapterList: no adapter policy".into()) };
        let chosen = applied.lookup(wanted)?;
        let mut bdfs = Vec::new();
        for &i in &chosen {
            let a = &applied.list.adapter_list[i];
            let label = if a.phylabel.is_empty() { &a.logicallabel } else { &a.phylabel };
            let bdf = match &applied.verdict.pcis[i] {
                Ok(Some(bdf)) => *bdf,
                Ok(None) => {
                    return Err(format!(
                        "IoAdapterList: adapter {label} is {}, not a PCI device; only PCI passthrough is supported",
                        kind_of(a)
                    ));
                }
                Err(e) => return Err(format!("IoAdapterList: adapter {label} has an unusable address: {e}")),
            };
            let unit = &applied.verdict.units[applied.verdict.unit_of[i]];
            let d = &applied.verdict.decisions[i];
            if self.placement(&unit.bdfs, d.keep_in_host) == Placement::Dom0 {
                let why = if d.is_port {
                    "it is (in the group of) a dom0 network port".to_string()
                } else {
                    format!("it is kept in dom0: {}", d.reason.as_deref().unwrap_or("by an operator"))
                };
                return Err(format!("IoAdapterList: adapter {label} cannot be given to a guest: {why}"));
            }
            if let Some(other) = self.held.get(&bdf).filter(|u| **u != uuid) {
                return Err(format!("IoAdapterList: adapter {label} is used by domain {other}"));
            }
            if let Some(to) = self.moving.get(&bdf) {
                return Err(format!(
                    "IoAdapterList: adapter {label} ({bdf}) is being moved to {}; try again",
                    to.name()
                ));
            }
            if !self.pciback.contains(&bdf) {
                let err = self.notes.get(&bdf).map(|e| e.text()).unwrap_or_default();
                return Err(format!(
                    "IoAdapterList: adapter {label} ({bdf}) is not assignable{}",
                    if err.is_empty() { String::new() } else { format!(": {err}") }
                ));
            }
            if !bdfs.contains(&bdf) {
                bdfs.push(bdf);
            }
        }
        for &bdf in &bdfs {
            self.held.insert(bdf, uuid);
        }
        self.publish();
        Ok(bdfs)
    }

    /// Records that domain `uuid` (found running at start) has the adapters `wanted` names.
    pub fn adopt(&mut self, uuid: Uuid, wanted: &[IoAdapter]) {
        let Some(applied) = &self.verdict else {
            // Resolved when a policy pass first has a list.
            self.claims.insert(uuid, wanted.to_vec());
            return;
        };
        match applied.lookup(wanted) {
            Ok(chosen) => {
                let bdfs = applied.bdfs(&chosen);
                self.hold_running(uuid, &bdfs);
                self.publish();
            }
            Err(e) => log::warn!("domain {uuid} runs with adapters not in the current list: {e}"),
        }
    }

    /// Marks `bdfs` held by the running domain `uuid` (unless another holds one: then warns).
    fn hold_running(&mut self, uuid: Uuid, bdfs: &BTreeSet<Bdf>) {
        for bdf in bdfs {
            match self.held.get(bdf) {
                Some(other) if *other != uuid => {
                    log::warn!("domain {uuid} runs with {bdf}, which domain {other} holds; leaving it to {other}")
                }
                _ => {
                    self.held.insert(*bdf, uuid);
                }
            }
        }
    }

    /// Resolves the adopted adapters that came before any list (called by a policy pass).
    pub(super) fn resolve_claims(&mut self) {
        let Some(applied) = self.verdict.clone() else { return };
        for (uuid, wanted) in std::mem::take(&mut self.claims) {
            match applied.lookup(&wanted) {
                Ok(chosen) => self.hold_running(uuid, &applied.bdfs(&chosen)),
                Err(e) => log::warn!("domain {uuid} runs with adapters not in the current list: {e}"),
            }
        }
    }

    /// Domain `uuid` is gone: its devices are free. Those the policy wants in dom0 go back
    /// there now (in the worker); nothing else moves.
    pub fn release(&mut self, uuid: Uuid) {
        let claimed = self.claims.remove(&uuid).is_some();
        let freed: Vec<Bdf> = self.held.iter().filter(|(_, u)| **u == uuid).map(|(b, _)| *b).collect();
        if freed.is_empty() {
            if claimed {
                self.publish();
            }
            return;
        }
        for bdf in &freed {
            self.held.remove(bdf);
        }
        self.publish();
        if freed.iter().any(|b| self.pending_rebind.contains(b)) {
            self.submit(Job::Rebind);
        }
    }

    /// At daemon start, before anything moves: the devices the `running` domains hold, from
    /// what the previous daemon published and from the running domains' configs.
    pub(super) fn recover(&mut self, running: &[DomainInfo], config_dir: &Path) {
        let live: HashSet<Uuid> =
            running.iter().filter(|d| !d.domid.is_dom0() && !d.uuid.is_nil()).map(|d| d.uuid).collect();
        let previous = self.outputs.assignable_adapters.get("global");
        match previous.map(|b| serde_json::from_slice::<AssignableAdapters>(&b)).transpose().map_err(|e| e.to_string())
        {
            Ok(Some(previous)) => {
                for b in previous.io_bundle_list.iter().filter(|b| live.contains(&b.used_by_uuid)) {
                    if let Ok(bdf) = b.pci_long.parse::<Bdf>() {
                        log::info!("{} ({bdf}) stays with running domain {}", b.phylabel, b.used_by_uuid);
                        self.held.insert(bdf, b.used_by_uuid);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => log::warn!("cannot read what the previous daemon published: {e}"),
        }
        // With EVE's pubsub these are zedmanager's checkpoint files: an early hint, before its
        // snapshot arrives over the socket (the domain threads claim again from that).
        for uuid in &live {
            let path = config_dir.join(format!("{uuid}.json"));
            match read_json::<DomainConfig>(&crate::agent::Input::File(path)) {
                Ok(Some(config)) if !config.io_adapter_list.is_empty() => {
                    self.claims.insert(*uuid, config.io_adapter_list);
                }
                Ok(_) => {}
                Err(e) => log::warn!("{e}"),
            }
        }
    }
}
