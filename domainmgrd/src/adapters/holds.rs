//! Which domain holds which adapter: reservations at boot (EVE's lookup and checks), adoption
//! of running domains (and, at daemon start, what they held before the restart), and release
//! at halt. PCI devices are held by address; every entry, PCI or not (serial ports, USB
//! devices), by its label too, so `UsedByUUID` says who has it. All of it is
//! bookkeeping under the adapters' lock; the only device move it can cause, a pending return
//! to dom0, is handed to the worker.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use uuid::Uuid;
use xenctl::{Bdf, DomainInfo};

use super::apply::Job;
use super::eve::{AssignableAdapters, PhysicalIoAdapter};
use super::policy::is_usb_controller;
use super::resources::{BundleResources, Reservation};
use super::{Adapters, Applied, Placement, read_json};
use crate::eve::{DomainConfig, IoAdapter};

/// The key a bundle is held under when it is no PCI device (and, for the record, when it is):
/// its phylabel, as EVE keys its bundles, else its logical label.
pub(super) fn bundle_key(a: &PhysicalIoAdapter) -> String {
    if a.phylabel.is_empty() { format!("logical:{}", a.logicallabel.to_lowercase()) } else { a.phylabel.to_lowercase() }
}

fn label_of(a: &PhysicalIoAdapter) -> &str {
    if a.phylabel.is_empty() { &a.logicallabel } else { &a.phylabel }
}

impl Applied {
    /// The entries `name` stands for, as EVE's `LookupIoBundleAny` finds them: the members of
    /// the assignment group of that name; else the entry of that phylabel, else of that
    /// logical label, with the rest of its group. Names compare without case; the type a
    /// domain gives with the name plays no part.
    fn lookup_any(&self, name: &str) -> Vec<usize> {
        let list = &self.list.adapter_list;
        let same = |s: &str| !s.is_empty() && s.eq_ignore_ascii_case(name);
        let group = |g: &str| -> Vec<usize> {
            (0..list.len()).filter(|&i| list[i].assigngrp.eq_ignore_ascii_case(g)).collect()
        };
        let members = group(name);
        if !name.is_empty() && !members.is_empty() {
            return members;
        }
        let found =
            list.iter().position(|a| same(&a.phylabel)).or_else(|| list.iter().position(|a| same(&a.logicallabel)));
        match found {
            Some(i) if list[i].assigngrp.is_empty() => vec![i],
            Some(i) => group(&list[i].assigngrp),
            None => Vec::new(),
        }
    }

    /// The adapters `wanted` names, with the rest of their units (entries at one PCI device
    /// move together, as EVE's `ExpandControllers` keeps them), as indexes into the list.
    fn lookup(&self, wanted: &[IoAdapter]) -> Result<Vec<usize>, String> {
        let mut chosen: Vec<usize> = Vec::new();
        for w in wanted {
            let found = self.lookup_any(&w.name);
            if found.is_empty() {
                return Err(format!(
                    "IoAdapterList: Name = {:?}: the PhysicalIOAdapterList has no adapter, assignment group or label of that name",
                    w.name
                ));
            }
            for f in found {
                for &i in &self.verdict.units[self.verdict.unit_of[f]].members {
                    if !chosen.contains(&i) {
                        chosen.push(i);
                    }
                }
            }
        }
        Ok(chosen)
    }

    /// The PCI devices of `chosen` (those that are PCI devices).
    fn bdfs(&self, chosen: &[usize]) -> BTreeSet<Bdf> {
        chosen.iter().filter_map(|&i| self.verdict.pcis[i].as_ref().ok().copied().flatten()).collect()
    }

    /// The bundle keys of `chosen`.
    fn keys(&self, chosen: &[usize]) -> Vec<String> {
        chosen.iter().map(|&i| bundle_key(&self.list.adapter_list[i])).collect()
    }
}

impl Adapters {
    /// Reserves for domain `uuid` the adapters `wanted` names (with their groups and units),
    /// as EVE's `reserveAdapters` does: every entry must be assignable (have an assignment
    /// group), not be used by another domain, not be a dom0 port, and have a usable address.
    /// Returns what they give the domain. Every reason it cannot is an error naming the
    /// adapter.
    pub fn reserve(&mut self, uuid: Uuid, wanted: &[IoAdapter]) -> Result<Reservation, String> {
        if let Some(why) = self.waiting_for() {
            let names: Vec<&str> = wanted.iter().map(|w| w.name.as_str()).collect();
            return Err(format!("IoAdapterList: adapters {} cannot be assigned yet: {why}", names.join(", ")));
        }
        let Some(applied) = &self.verdict else { return Err("IoAdapterList: no adapter policy".into()) };
        let chosen = applied.lookup(wanted)?;
        let mut bundles = Vec::new();
        for &i in &chosen {
            let a = &applied.list.adapter_list[i];
            let label = label_of(a);
            if a.assigngrp.is_empty() {
                return Err(format!(
                    "IoAdapterList: adapter {label} is not assignable: it has no assignment group (Assigngrp) in the PhysicalIOAdapterList"
                ));
            }
            if let Some(other) = self.held_bundles.get(&bundle_key(a)).filter(|u| **u != uuid) {
                return Err(format!("IoAdapterList: adapter {label} is used by domain {other}"));
            }
            let pci = match &applied.verdict.pcis[i] {
                Ok(pci) => *pci,
                Err(e) => return Err(format!("IoAdapterList: adapter {label} has an unusable address: {e}")),
            };
            let mut seize = false;
            if let Some(bdf) = pci {
                let unit = &applied.verdict.units[applied.verdict.unit_of[i]];
                let d = &applied.verdict.decisions[i];
                // An operator's move stands against the policy; else a port stays dom0's.
                match unit.bdfs.iter().find_map(|b| self.overrides.get(b)) {
                    Some((Placement::Dom0, note)) => {
                        return Err(format!(
                            "IoAdapterList: adapter {label} cannot be given to a guest: {}",
                            note.text()
                        ));
                    }
                    Some((Placement::Pciback, _)) => {}
                    None if d.is_port => {
                        return Err(format!(
                            "IoAdapterList: adapter {label} cannot be given to a guest: it is (in the group of) a dom0 network port"
                        ));
                    }
                    None => {}
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
                    if self.placement(&unit.bdfs, d.keep_in_host) == Placement::Dom0 {
                        // Kept in dom0 while unused, as EVE keeps it: the domain's create takes it.
                        seize = true;
                    } else {
                        let err = self.notes.get(&bdf).map(|e| e.text()).unwrap_or_default();
                        return Err(format!(
                            "IoAdapterList: adapter {label} ({bdf}) is not assignable{}",
                            if err.is_empty() { String::new() } else { format!(": {err}") }
                        ));
                    }
                }
            }
            bundles.push(BundleResources {
                label: label.to_string(),
                pci,
                usb_controller: is_usb_controller(a),
                seize,
                irq: a.phyaddr.irq.clone(),
                ioports: a.phyaddr.ioports.clone(),
                serial: a.phyaddr.serial.clone(),
                usb_addr: a.phyaddr.usb_addr.clone(),
            });
        }
        for key in applied.keys(&chosen) {
            self.held_bundles.insert(key, uuid);
        }
        for b in &bundles {
            if let Some(bdf) = b.pci {
                self.held.insert(bdf, uuid);
                if b.seize {
                    // In pciback once the create has seized it (the return to dom0 when the
                    // domain lets it go lists pciback again, in case the create never did).
                    self.pciback.insert(bdf);
                    self.pending_rebind.insert(bdf);
                }
            }
        }
        self.publish();
        Ok(Reservation { bundles })
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
                let (bdfs, keys) = (applied.bdfs(&chosen), applied.keys(&chosen));
                self.hold_running(uuid, &bdfs, keys);
                self.publish();
            }
            Err(e) => log::warn!("domain {uuid} runs with adapters not in the current list: {e}"),
        }
    }

    /// Marks `bdfs` held by the running domain `uuid` (unless another holds one: then warns).
    fn hold_running(&mut self, uuid: Uuid, bdfs: &BTreeSet<Bdf>, keys: Vec<String>) {
        for key in keys {
            self.held_bundles.entry(key).or_insert(uuid);
        }
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
                Ok(chosen) => self.hold_running(uuid, &applied.bdfs(&chosen), applied.keys(&chosen)),
                Err(e) => log::warn!("domain {uuid} runs with adapters not in the current list: {e}"),
            }
        }
    }

    /// Domain `uuid` is gone: its devices are free. Those the policy wants in dom0 go back
    /// there now (in the worker); nothing else moves.
    pub fn release(&mut self, uuid: Uuid) {
        let claimed = self.claims.remove(&uuid).is_some();
        let bundles_before = self.held_bundles.len();
        self.held_bundles.retain(|_, u| *u != uuid);
        let freed: Vec<Bdf> = self.held.iter().filter(|(_, u)| **u == uuid).map(|(b, _)| *b).collect();
        if freed.is_empty() {
            if claimed || self.held_bundles.len() != bundles_before {
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
                    let as_listed = PhysicalIoAdapter {
                        phylabel: b.phylabel.clone(),
                        logicallabel: b.logicallabel.clone(),
                        ..PhysicalIoAdapter::default()
                    };
                    self.held_bundles.insert(bundle_key(&as_listed), b.used_by_uuid);
                    // A USB device's bundle carries its controller's address, which it never holds.
                    let by_usb = !b.usb_addr.is_empty() || !b.usb_product.is_empty() || b.io_type.0 == 14;
                    match b.pci_long.parse::<Bdf>() {
                        Ok(bdf) if !by_usb => {
                            log::info!("{} ({bdf}) stays with running domain {}", b.phylabel, b.used_by_uuid);
                            self.held.insert(bdf, b.used_by_uuid);
                        }
                        _ => log::info!("{} stays with running domain {}", b.phylabel, b.used_by_uuid),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::eve::PhysicalIoAdapterList;
    use crate::adapters::policy::{Facts, decide};

    fn applied(json: &str) -> Applied {
        let list: PhysicalIoAdapterList = serde_json::from_str(json).unwrap();
        let verdict = decide(&list.adapter_list, &Facts::default());
        let bad_addresses = vec![None; list.adapter_list.len()];
        Applied { list, verdict, bad_addresses }
    }

    #[test]
    fn names_are_looked_up_as_eve_does_group_then_phylabel_then_logical_label() {
        let a = applied(
            r#"{"Initialized": true, "AdapterList": [
            {"Ptype": 1, "Phylabel": "eth1", "Logicallabel": "shopfloor", "Assigngrp": "nics", "Phyaddr": {"PciLong": "0000:01:00.0"}},
            {"Ptype": 1, "Phylabel": "eth2", "Logicallabel": "eth1", "Assigngrp": "nics", "Phyaddr": {"PciLong": "0000:01:00.1"}},
            {"Ptype": 3, "Phylabel": "COM1", "Logicallabel": "nics", "Assigngrp": "", "Phyaddr": {"Serial": "/dev/ttyS0"}},
            {"Ptype": 3, "Phylabel": "COM2", "Logicallabel": "console", "Assigngrp": "", "Phyaddr": {"Serial": "/dev/ttyS1"}},
            {"Ptype": 9, "Phylabel": "nvme", "Logicallabel": "NICS2", "Assigngrp": "disk", "Phyaddr": {"PciLong": "0000:04:00.0"}}
        ]}"#,
        );
        // A group name wins over a logical label; case never matters.
        assert_eq!(a.lookup_any("NICS"), [0, 1]);
        // A phylabel, with its group.
        assert_eq!(a.lookup_any("eth2"), [0, 1]);
        // A logical label, after phylabels; a singleton without group is itself.
        assert_eq!(a.lookup_any("Console"), [3]);
        assert_eq!(a.lookup_any("shopfloor"), [0, 1]);
        assert_eq!(a.lookup_any("nics2"), [4]);
        assert!(a.lookup_any("").is_empty() && a.lookup_any("eth9").is_empty());
        // The type a domain gives plays no part.
        let wanted = [IoAdapter { io_type: crate::eve::IoType(13), name: "com2".into(), ..IoAdapter::default() }];
        assert_eq!(a.lookup(&wanted), Ok(vec![3]));
    }
}
