//! Which adapters stay in dom0 and which go to pciback, from the adapter list, dom0's network
//! ports and `debug.enable.usb`. A pure function, applied by `adapters/apply.rs`.
//!
//! The rules (EVE's domainmgr's, reduced to what a Xen host needs):
//! - a network adapter that is one of dom0's ports (by interface name or PCI address), or that
//!   the device model marks for management only (`Usage` 5), stays in dom0; the first is
//!   marked a port; any adapter whose PCI address is a port stays too;
//! - an adapter the device model disables (`Usage` 4) stays where it is: in dom0;
//! - a USB adapter or controller stays in dom0 while `debug.enable.usb` is true;
//! - every other PCI adapter goes to pciback, ready for guests.
//!
//! Decisions are taken per *unit*, not per list entry: the entries of one assignment group,
//! and the entries naming the same PCI address, are one unit (transitively), and a unit moves
//! as one: if one member must stay, all stay. So two entries for one device never pull it
//! both ways in one pass. Entries for USB devices (a `UsbAddr` or `UsbProduct`, or EVE's
//! `IoUSBDevice` type) are forwarded by USB, not PCI: they carry their controller's address
//! but never move it (EVE skips them the same way).

use std::collections::{BTreeSet, HashMap};

use xenctl::Bdf;

use super::eve::PhysicalIoAdapter;
use crate::eve::IoType;

/// EVE's network adapter types: Ethernet, WLAN, WWAN, Ethernet PF and VF.
pub fn is_net(t: IoType) -> bool {
    matches!(t.0, 1 | 5 | 6 | 11 | 12)
}

/// EVE's USB types that are PCI devices: a USB adapter and a USB controller.
pub fn is_usb(t: IoType) -> bool {
    matches!(t.0, 2 | 13)
}

/// EVE's `PhyIoUsageDisabled`: "do not use the adapter".
pub const USAGE_DISABLED: i32 = 4;
/// EVE's `PhyIoUsageMgmtOnly`: management traffic only, never for apps.
pub const USAGE_MGMT_ONLY: i32 = 5;

/// The PCI device an entry moves: `None` for entries that are not PCI devices (serial ports,
/// USB devices, entries without a PCI address), an error for an address that does not parse.
pub fn pci_of(a: &PhysicalIoAdapter) -> Result<Option<Bdf>, String> {
    let p = &a.phyaddr;
    if !p.usb_addr.is_empty() || !p.usb_product.is_empty() || a.ptype.0 == 14 || p.pci_long.is_empty() {
        return Ok(None);
    }
    p.pci_long.parse().map(Some).map_err(|e| format!("PciLong {:?}: {e}", p.pci_long))
}

/// dom0's network ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ports {
    /// Interface names.
    pub ifnames: BTreeSet<String>,
    /// PCI addresses behind them.
    pub pcis: BTreeSet<Bdf>,
}

/// What the policy says about one adapter (the same for every member of its unit).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// It (or a member of its unit) must stay in dom0.
    pub keep_in_host: bool,
    /// It (or a member of its unit) is a dom0 network port.
    pub is_port: bool,
    /// Why it stays, when it does.
    pub reason: Option<String>,
}

/// Entries that move together, and the PCI devices they move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Indexes into the adapter list.
    pub members: Vec<usize>,
    /// Their PCI devices, each once.
    pub bdfs: BTreeSet<Bdf>,
    /// The unit's decision.
    pub decision: Decision,
}

/// The policy's answer for a whole list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// One per adapter, in order.
    pub decisions: Vec<Decision>,
    /// One per adapter: the PCI device it moves, or why its address is unusable.
    pub pcis: Vec<Result<Option<Bdf>, String>>,
    /// The units, each adapter in exactly one.
    pub units: Vec<Unit>,
    /// For each adapter, the index of its unit.
    pub unit_of: Vec<usize>,
}

fn own_decision(a: &PhysicalIoAdapter, pci: Option<Bdf>, ports: &Ports, enable_usb: bool) -> Decision {
    let ifname = &a.phyaddr.ifname;
    let named_port = !ifname.is_empty() && ports.ifnames.contains(ifname);
    let pci_port = pci.is_some_and(|p| ports.pcis.contains(&p));
    let label = if a.phylabel.is_empty() { &a.logicallabel } else { &a.phylabel };
    let keep = |is_port, why: String| Decision { keep_in_host: true, is_port, reason: Some(why) };
    if is_net(a.ptype) && (named_port || pci_port) {
        keep(true, format!("{label} is a dom0 network port"))
    } else if pci_port {
        keep(false, format!("{label}'s PCI address is a dom0 network port"))
    } else if is_net(a.ptype) && a.usage == USAGE_MGMT_ONLY {
        keep(false, format!("{label} is for management only (Usage {USAGE_MGMT_ONLY} in the device model)"))
    } else if a.usage == USAGE_DISABLED {
        keep(false, format!("{label} is disabled (Usage {USAGE_DISABLED} in the device model)"))
    } else if is_usb(a.ptype) && enable_usb {
        keep(false, format!("{label} is USB and debug.enable.usb keeps USB in dom0"))
    } else {
        Decision::default()
    }
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Decides for every adapter of `adapters`.
pub fn decide(adapters: &[PhysicalIoAdapter], ports: &Ports, enable_usb: bool) -> Verdict {
    let pcis: Vec<Result<Option<Bdf>, String>> = adapters.iter().map(pci_of).collect();
    let own: Vec<Decision> = adapters
        .iter()
        .zip(&pcis)
        .map(|(a, pci)| own_decision(a, pci.clone().ok().flatten(), ports, enable_usb))
        .collect();

    // Units: union by assignment group and by PCI address.
    let mut parent: Vec<usize> = (0..adapters.len()).collect();
    let mut first_of_group: HashMap<&str, usize> = HashMap::new();
    let mut first_of_pci: HashMap<Bdf, usize> = HashMap::new();
    for (i, a) in adapters.iter().enumerate() {
        let mut join = |j: usize| {
            let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
            parent[ri.max(rj)] = ri.min(rj);
        };
        if !a.assigngrp.is_empty() {
            join(*first_of_group.entry(a.assigngrp.as_str()).or_insert(i));
        }
        if let Ok(Some(bdf)) = &pcis[i] {
            join(*first_of_pci.entry(*bdf).or_insert(i));
        }
    }
    let mut units: Vec<Unit> = Vec::new();
    // The member whose own decision set each unit's reason.
    let mut reason_from: Vec<Option<usize>> = Vec::new();
    let mut unit_of = vec![0; adapters.len()];
    let mut index_of_root: HashMap<usize, usize> = HashMap::new();
    for i in 0..adapters.len() {
        let root = find(&mut parent, i);
        let u = *index_of_root.entry(root).or_insert_with(|| {
            units.push(Unit { members: Vec::new(), bdfs: BTreeSet::new(), decision: Decision::default() });
            reason_from.push(None);
            units.len() - 1
        });
        unit_of[i] = u;
        let unit = &mut units[u];
        unit.members.push(i);
        if let Ok(Some(bdf)) = &pcis[i] {
            unit.bdfs.insert(*bdf);
        }
        let d = &mut unit.decision;
        d.keep_in_host |= own[i].keep_in_host;
        d.is_port |= own[i].is_port;
        if d.reason.is_none() && own[i].reason.is_some() {
            d.reason.clone_from(&own[i].reason);
            reason_from[u] = Some(i);
        }
    }

    let label = |a: &PhysicalIoAdapter| if a.phylabel.is_empty() { a.logicallabel.clone() } else { a.phylabel.clone() };
    let decisions = adapters
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let u = unit_of[i];
            let unit = &units[u].decision;
            let reason = own[i].reason.clone().or_else(|| {
                let (r, from) = (unit.reason.as_ref()?, &adapters[reason_from[u]?]);
                let link = if !a.assigngrp.is_empty() && a.assigngrp == from.assigngrp {
                    format!("same assignment group {}", a.assigngrp)
                } else if matches!(pcis[i], Ok(Some(_))) && pcis[i] == pcis[reason_from[u]?] {
                    format!("same PCI device {}", a.phyaddr.pci_long)
                } else {
                    "linked by assignment groups and PCI addresses".to_string()
                };
                Some(format!("{r}; {} moves with {} ({link})", label(a), label(from)))
            });
            Decision { keep_in_host: unit.keep_in_host, is_port: unit.is_port, reason }
        })
        .collect();
    Verdict { decisions, pcis, units, unit_of }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::eve::PhysicalAddress;

    fn adapter(ptype: u8, label: &str, pci: &str, ifname: &str, group: &str) -> PhysicalIoAdapter {
        PhysicalIoAdapter {
            ptype: IoType(ptype),
            phylabel: label.into(),
            phyaddr: PhysicalAddress { pci_long: pci.into(), ifname: ifname.into(), ..PhysicalAddress::default() },
            logicallabel: label.into(),
            assigngrp: group.into(),
            usage: 1,
        }
    }

    fn ports(ifnames: &[&str], pcis: &[&str]) -> Ports {
        Ports {
            ifnames: ifnames.iter().map(|s| s.to_string()).collect(),
            pcis: pcis.iter().map(|p| p.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn ports_stay_the_rest_goes_to_pciback() {
        let list =
            [adapter(1, "eth0", "0000:00:02.0", "eth0", "eth0"), adapter(1, "eth1", "0000:00:03.0", "eth1", "eth1")];
        let v = decide(&list, &ports(&["eth0"], &[]), false);
        assert!(v.decisions[0].keep_in_host && v.decisions[0].is_port);
        assert_eq!(v.decisions[0].reason.as_deref(), Some("eth0 is a dom0 network port"));
        assert!(!v.decisions[1].keep_in_host && !v.decisions[1].is_port);
        assert_eq!(v.units.len(), 2);
    }

    #[test]
    fn a_port_is_recognised_by_its_pci_address_too() {
        // The model says eth1, the kernel named it enp0s3: the PCI address still matches.
        let list = [adapter(1, "eth1", "0000:00:03.0", "eth1", ""), adapter(9, "nvme", "0000:00:03.0", "", "")];
        let v = decide(&list, &ports(&["enp0s3"], &["0000:00:03.0"]), false);
        assert!(v.decisions[0].is_port && v.decisions[0].keep_in_host);
        assert!(v.decisions[1].keep_in_host, "a non-network adapter at a port's address stays too");
    }

    #[test]
    fn usb_stays_only_while_debug_enable_usb() {
        let list = [adapter(13, "USB", "0000:00:14.0", "", ""), adapter(2, "USB2", "0000:00:1d.0", "", "")];
        assert!(decide(&list, &Ports::default(), true).decisions.iter().all(|d| d.keep_in_host));
        assert!(decide(&list, &Ports::default(), false).decisions.iter().all(|d| !d.keep_in_host));
    }

    #[test]
    fn management_only_and_disabled_adapters_stay_in_dom0() {
        let mut mgmt = adapter(1, "eth5", "0000:05:00.0", "eth5", "eth5");
        mgmt.usage = USAGE_MGMT_ONLY;
        let mut off = adapter(4, "audio", "0000:00:1f.3", "", "audio");
        off.usage = USAGE_DISABLED;
        let v = decide(&[mgmt, off], &Ports::default(), false);
        assert!(v.decisions.iter().all(|d| d.keep_in_host && !d.is_port), "{v:?}");
        assert!(v.decisions[0].reason.as_deref().is_some_and(|r| r.contains("management only")));
    }

    #[test]
    fn a_group_moves_as_one() {
        let list = [
            adapter(1, "eth0", "0000:01:00.0", "eth0", "nicgrp"),
            adapter(1, "eth1", "0000:01:00.1", "eth1", "nicgrp"),
            adapter(13, "USB", "0000:00:14.0", "", "usbgrp"),
            adapter(3, "COM1", "0000:00:16.3", "", "usbgrp"),
        ];
        let v = decide(&list, &ports(&["eth0"], &[]), true);
        assert!(v.decisions[1].keep_in_host && v.decisions[1].is_port, "eth1 shares eth0's group");
        assert!(v.decisions[1].reason.as_deref().is_some_and(|r| r.contains("same assignment group nicgrp")));
        assert!(v.decisions[3].keep_in_host && !v.decisions[3].is_port, "COM1 shares the USB controller's group");
        assert_eq!(v.units.len(), 2);
        assert_eq!(v.units[v.unit_of[0]].bdfs.len(), 2);
        let v = decide(&list, &ports(&[], &[]), false);
        assert!(v.decisions.iter().all(|d| !d.keep_in_host), "nothing stays when no member must");
    }

    #[test]
    fn entries_at_one_pci_address_are_one_unit_even_across_groups() {
        // A controller and a function the model lists again under another group and type.
        let list = [adapter(13, "USB", "0000:00:14.0", "", "usb"), adapter(255, "other", "0000:00:14.0", "", "x")];
        let v = decide(&list, &Ports::default(), true);
        assert_eq!(v.units.len(), 1);
        assert!(v.decisions.iter().all(|d| d.keep_in_host), "{v:?}");
        assert_eq!(
            v.decisions[1].reason.as_deref(),
            Some(
                "USB is USB and debug.enable.usb keeps USB in dom0; other moves with USB (same PCI device 0000:00:14.0)"
            )
        );
    }

    #[test]
    fn usb_device_entries_never_move_their_controller() {
        let mut dev = adapter(14, "stick", "0000:00:14.0", "", "stick");
        dev.phyaddr.usb_addr = "1:2".into();
        let list = [adapter(13, "USB", "0000:00:14.0", "", "usb"), dev];
        assert_eq!(pci_of(&list[1]), Ok(None));
        let v = decide(&list, &Ports::default(), true);
        assert_eq!(v.units.len(), 2, "not joined to the controller's unit");
        assert!(v.units[v.unit_of[1]].bdfs.is_empty());
        assert!(v.decisions[0].keep_in_host);
    }

    #[test]
    fn a_bad_pci_address_is_reported_and_moves_nothing() {
        let list = [adapter(1, "eth9", "00:zz", "eth9", "")];
        let v = decide(&list, &Ports::default(), false);
        assert!(v.pcis[0].as_ref().is_err_and(|e| e.contains("PciLong \"00:zz\"")), "{:?}", v.pcis[0]);
        assert!(v.units[0].bdfs.is_empty());
    }
}
