//! Which adapters stay in dom0 and which go to pciback, from the adapter list, dom0's network
//! ports, the `debug.enable.usb`/`debug.enable.vga` settings and a few host facts. A pure
//! function, applied by `adapters/apply.rs`.
//!
//! The rules are EVE's domainmgr's (`updatePortAndPciBackIoBundle`): an adapter stays in dom0
//! ("keep in host") when
//! - it is a network adapter (Ethernet, WLAN, WWAN, Ethernet PF; not a VF) that is one of
//!   dom0's ports, by interface name or PCI address: it is then also a *port*, which no domain
//!   may have; or any adapter whose PCI address is a port;
//! - it is a WLAN or WWAN adapter (EVE turns unused radios off itself);
//! - it is an Ethernet PF (its VFs are made in dom0) or a CAN or virtual CAN bus;
//! - it is USB (adapter or controller) while `debug.enable.usb` is true;
//! - it is the boot VGA display (`IoHDMI` whose sysfs `boot_vga` is 1) while
//!   `debug.enable.vga` is true;
//! - it is an NVMe drive (`IoNVME`, 255) holding dom0's storage (mounted, swap, under dm/md,
//!   in a ZFS pool: `host.rs` finds out);
//! - it is a USB controller a USB device entry depends on: the controllers of its
//!   `Parentassigngrp`, or every USB controller when a USB device entry names no parent
//!   (EVE's `usbControllersWithoutPCIReserve`: the device is forwarded by USB, so its
//!   controller must stay in dom0);
//! - beyond EVE's rules, kept from this daemon's earlier policy: the device model marks it
//!   for management only (`Usage` 5) or disabled (`Usage` 4).
//!
//! Ethernet VFs are never ports and never kept (EVE binds them to pciback whatever happens).
//! Keeping in host is not refusing: EVE lets a domain have a kept adapter that is not a port,
//! which then goes to pciback when that domain boots and back to dom0 when it halts
//! (`holds.rs`); a port stays with dom0.
//!
//! Decisions are taken per *unit*, not per list entry: the entries of one assignment group,
//! and the entries naming the same PCI address, are one unit (transitively), and a unit moves
//! as one: if one member must stay, all stay. So two entries for one device never pull it
//! both ways in one pass. Entries for USB devices (a `UsbAddr` or `UsbProduct`, or EVE's
//! `IoUSBDevice` type) are forwarded by USB, not PCI: they carry their controller's address
//! but never move it (EVE skips them the same way).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use xenctl::Bdf;

use super::eve::PhysicalIoAdapter;
use crate::eve::IoType;

/// EVE's network adapter types (`IsNet`): Ethernet, WLAN, WWAN and Ethernet PF. Not VFs:
/// EVE never makes one a port nor keeps one in dom0.
pub fn is_net(t: IoType) -> bool {
    matches!(t.0, IO_NET_ETH | IO_NET_WLAN | IO_NET_WWAN | IO_NET_ETH_PF)
}

/// EVE's `IoType` numbers (pkg/pillar/types/assignableadapters.go) the policy looks at.
pub const IO_NET_ETH: u8 = 1;
/// A USB adapter (EVE's deprecated `IoUSB`: a controller when it has no USB address).
pub const IO_USB: u8 = 2;
/// A WLAN adapter.
pub const IO_NET_WLAN: u8 = 5;
/// A WWAN (cellular) adapter.
pub const IO_NET_WWAN: u8 = 6;
/// A display adapter (`IoHDMI`).
pub const IO_HDMI: u8 = 7;
/// An SR-IOV physical function.
pub const IO_NET_ETH_PF: u8 = 11;
/// A USB controller.
pub const IO_USB_CONTROLLER: u8 = 13;
/// A USB device, forwarded by USB.
pub const IO_USB_DEVICE: u8 = 14;
/// A CAN bus.
pub const IO_CAN: u8 = 15;
/// A virtual CAN bus.
pub const IO_VCAN: u8 = 16;
/// An NVMe drive (`IoNVME`, the same number as `IoOther`).
pub const IO_NVME: u8 = 255;

/// Whether the entry is a USB controller (EVE's `IsUSBController`): of that type, or the old
/// USB type without a USB address or product.
pub fn is_usb_controller(a: &PhysicalIoAdapter) -> bool {
    a.ptype.0 == IO_USB_CONTROLLER
        || (a.ptype.0 == IO_USB && a.phyaddr.usb_addr.is_empty() && a.phyaddr.usb_product.is_empty())
}

/// Whether the entry is a USB device, forwarded by USB rather than PCI.
pub fn is_usb_device(a: &PhysicalIoAdapter) -> bool {
    !a.phyaddr.usb_addr.is_empty() || !a.phyaddr.usb_product.is_empty() || a.ptype.0 == IO_USB_DEVICE
}

/// EVE's USB types that are PCI devices: a USB adapter and a USB controller.
pub fn is_usb(t: IoType) -> bool {
    matches!(t.0, IO_USB | IO_USB_CONTROLLER)
}

/// EVE's `PhyIoUsageDisabled`: "do not use the adapter".
pub const USAGE_DISABLED: i32 = 4;
/// EVE's `PhyIoUsageMgmtOnly`: management traffic only, never for apps.
pub const USAGE_MGMT_ONLY: i32 = 5;

/// The PCI device an entry moves: `None` for entries that are not PCI devices (serial ports,
/// USB devices, entries without a PCI address), an error for an address that does not parse.
pub fn pci_of(a: &PhysicalIoAdapter) -> Result<Option<Bdf>, String> {
    let p = &a.phyaddr;
    if is_usb_device(a) || p.pci_long.is_empty() {
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

/// Everything the policy decides from besides the list itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// dom0's network ports.
    pub ports: Ports,
    /// `debug.enable.usb`.
    pub enable_usb: bool,
    /// `debug.enable.vga`.
    pub enable_vga: bool,
    /// The listed display adapters that are the boot VGA.
    pub boot_vga: BTreeSet<Bdf>,
    /// The listed NVMe drives that hold dom0's storage, and how.
    pub nvme_in_use: BTreeMap<Bdf, String>,
}

/// The host facts `decide` needs for `adapters`, asked of `vga` (is this the boot VGA?) and
/// `nvme` (does this drive hold dom0's storage?), only for the entries they concern.
pub fn host_facts(
    adapters: &[PhysicalIoAdapter],
    enable_vga: bool,
    vga: impl Fn(Bdf) -> bool,
    nvme: impl Fn(Bdf) -> Option<String>,
) -> (BTreeSet<Bdf>, BTreeMap<Bdf, String>) {
    let (mut boot_vga, mut nvme_in_use) = (BTreeSet::new(), BTreeMap::new());
    for a in adapters {
        let Ok(Some(bdf)) = pci_of(a) else { continue };
        if a.ptype.0 == IO_HDMI && enable_vga && vga(bdf) {
            boot_vga.insert(bdf);
        }
        if a.ptype.0 == IO_NVME
            && let Some(why) = nvme(bdf)
        {
            nvme_in_use.insert(bdf, why);
        }
    }
    (boot_vga, nvme_in_use)
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

fn own_decision(a: &PhysicalIoAdapter, pci: Option<Bdf>, facts: &Facts, usb_kept: &BTreeSet<String>) -> Decision {
    let ports = &facts.ports;
    let ifname = &a.phyaddr.ifname;
    let named_port = !ifname.is_empty() && ports.ifnames.contains(ifname);
    let pci_port = pci.is_some_and(|p| ports.pcis.contains(&p));
    let label = if a.phylabel.is_empty() { &a.logicallabel } else { &a.phylabel };
    let keep = |is_port, why: String| Decision { keep_in_host: true, is_port, reason: Some(why) };
    let t = a.ptype.0;
    if is_net(a.ptype) && (named_port || pci_port) {
        keep(true, format!("{label} is a dom0 network port"))
    } else if pci_port {
        keep(false, format!("{label}'s PCI address is a dom0 network port"))
    } else if t == IO_NET_WLAN || t == IO_NET_WWAN {
        keep(
            false,
            format!("{label} is a wireless adapter, which dom0 manages (and turns off) while no domain uses it"),
        )
    } else if t == IO_NET_ETH_PF {
        keep(false, format!("{label} is an SR-IOV physical function, whose VFs dom0 makes"))
    } else if t == IO_CAN || t == IO_VCAN {
        keep(false, format!("{label} is a CAN bus, which dom0 sets up"))
    } else if is_usb(a.ptype) && facts.enable_usb {
        keep(false, format!("{label} is USB and debug.enable.usb keeps USB in dom0"))
    } else if t == IO_HDMI && pci.is_some_and(|p| facts.boot_vga.contains(&p)) {
        keep(false, format!("{label} is the boot VGA and debug.enable.vga keeps dom0's console on it"))
    } else if let Some(why) = pci.filter(|_| t == IO_NVME).and_then(|p| facts.nvme_in_use.get(&p)) {
        keep(false, format!("{label} holds dom0's storage ({why})"))
    } else if is_usb_controller(a) && !a.phyaddr.pci_long.is_empty() && usb_kept.contains(&a.phyaddr.pci_long) {
        keep(false, format!("{label} is the controller of a USB device that is forwarded by USB"))
    } else if is_net(a.ptype) && a.usage == USAGE_MGMT_ONLY {
        keep(false, format!("{label} is for management only (Usage {USAGE_MGMT_ONLY} in the device model)"))
    } else if a.usage == USAGE_DISABLED {
        keep(false, format!("{label} is disabled (Usage {USAGE_DISABLED} in the device model)"))
    } else {
        Decision::default()
    }
}

/// The PCI addresses of the USB controllers that must stay in dom0 because a USB device entry
/// is forwarded from them (EVE's `usbControllersWithoutPCIReserve`): those of the device's
/// parent group, or every USB controller as soon as one USB device entry names no parent.
fn usb_controllers_kept(adapters: &[PhysicalIoAdapter]) -> BTreeSet<String> {
    let controllers = adapters.iter().filter(|a| is_usb_controller(a));
    let mut kept = BTreeSet::new();
    for dev in adapters.iter().filter(|a| is_usb_device(a)) {
        if dev.parentassigngrp.is_empty() {
            return controllers.map(|c| c.phyaddr.pci_long.clone()).collect();
        }
        kept.extend(
            controllers.clone().filter(|c| c.assigngrp == dev.parentassigngrp).map(|c| c.phyaddr.pci_long.clone()),
        );
    }
    kept
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Decides for every adapter of `adapters`.
pub fn decide(adapters: &[PhysicalIoAdapter], facts: &Facts) -> Verdict {
    let pcis: Vec<Result<Option<Bdf>, String>> = adapters.iter().map(pci_of).collect();
    let usb_kept = usb_controllers_kept(adapters);
    let own: Vec<Decision> = adapters
        .iter()
        .zip(&pcis)
        .map(|(a, pci)| own_decision(a, pci.clone().ok().flatten(), facts, &usb_kept))
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
            ..PhysicalIoAdapter::default()
        }
    }

    fn facts(ports: Ports, enable_usb: bool) -> Facts {
        Facts { ports, enable_usb, ..Facts::default() }
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
        let v = decide(&list, &facts(ports(&["eth0"], &[]), false));
        assert!(v.decisions[0].keep_in_host && v.decisions[0].is_port);
        assert_eq!(v.decisions[0].reason.as_deref(), Some("eth0 is a dom0 network port"));
        assert!(!v.decisions[1].keep_in_host && !v.decisions[1].is_port);
        assert_eq!(v.units.len(), 2);
    }

    #[test]
    fn a_port_is_recognised_by_its_pci_address_too() {
        // The model says eth1, the kernel named it enp0s3: the PCI address still matches.
        let list = [adapter(1, "eth1", "0000:00:03.0", "eth1", ""), adapter(9, "nvme", "0000:00:03.0", "", "")];
        let v = decide(&list, &facts(ports(&["enp0s3"], &["0000:00:03.0"]), false));
        assert!(v.decisions[0].is_port && v.decisions[0].keep_in_host);
        assert!(v.decisions[1].keep_in_host, "a non-network adapter at a port's address stays too");
    }

    #[test]
    fn usb_stays_only_while_debug_enable_usb() {
        let list = [adapter(13, "USB", "0000:00:14.0", "", ""), adapter(2, "USB2", "0000:00:1d.0", "", "")];
        assert!(decide(&list, &facts(Ports::default(), true)).decisions.iter().all(|d| d.keep_in_host));
        assert!(decide(&list, &facts(Ports::default(), false)).decisions.iter().all(|d| !d.keep_in_host));
    }

    #[test]
    fn management_only_and_disabled_adapters_stay_in_dom0() {
        let mut mgmt = adapter(1, "eth5", "0000:05:00.0", "eth5", "eth5");
        mgmt.usage = USAGE_MGMT_ONLY;
        let mut off = adapter(4, "audio", "0000:00:1f.3", "", "audio");
        off.usage = USAGE_DISABLED;
        let v = decide(&[mgmt, off], &facts(Ports::default(), false));
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
        let v = decide(&list, &facts(ports(&["eth0"], &[]), true));
        assert!(v.decisions[1].keep_in_host && v.decisions[1].is_port, "eth1 shares eth0's group");
        assert!(v.decisions[1].reason.as_deref().is_some_and(|r| r.contains("same assignment group nicgrp")));
        assert!(v.decisions[3].keep_in_host && !v.decisions[3].is_port, "COM1 shares the USB controller's group");
        assert_eq!(v.units.len(), 2);
        assert_eq!(v.units[v.unit_of[0]].bdfs.len(), 2);
        let v = decide(&list, &facts(ports(&[], &[]), false));
        assert!(v.decisions.iter().all(|d| !d.keep_in_host), "nothing stays when no member must");
    }

    #[test]
    fn entries_at_one_pci_address_are_one_unit_even_across_groups() {
        // A controller and a function the model lists again under another group and type.
        let list = [adapter(13, "USB", "0000:00:14.0", "", "usb"), adapter(255, "other", "0000:00:14.0", "", "x")];
        let v = decide(&list, &facts(Ports::default(), true));
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
        let v = decide(&list, &facts(Ports::default(), true));
        assert_eq!(v.units.len(), 2, "not joined to the controller's unit");
        assert!(v.units[v.unit_of[1]].bdfs.is_empty());
        assert!(v.decisions[0].keep_in_host);
    }

    #[test]
    fn a_bad_pci_address_is_reported_and_moves_nothing() {
        let list = [adapter(1, "eth9", "00:zz", "eth9", "")];
        let v = decide(&list, &facts(Ports::default(), false));
        assert!(v.pcis[0].as_ref().is_err_and(|e| e.contains("PciLong \"00:zz\"")), "{:?}", v.pcis[0]);
        assert!(v.units[0].bdfs.is_empty());
    }
    /// A PhysicalIOAdapterList's entries, as zedagent writes them.
    fn eve_list(json: &str) -> Vec<PhysicalIoAdapter> {
        serde_json::from_str::<crate::adapters::eve::PhysicalIoAdapterList>(json).unwrap().adapter_list
    }

    fn kept(v: &Verdict) -> Vec<bool> {
        v.decisions.iter().map(|d| d.keep_in_host).collect()
    }

    #[test]
    fn radios_pfs_and_can_buses_stay_in_dom0_vfs_never_do() {
        let list = eve_list(
            r#"{"Initialized": true, "AdapterList": [
            {"Ptype": 5, "Phylabel": "wlan0", "Logicallabel": "wlan0", "Assigngrp": "wlan0", "Phyaddr": {"PciLong": "0000:03:00.0", "Ifname": "wlan0"}, "Usage": 2},
            {"Ptype": 6, "Phylabel": "wwan0", "Logicallabel": "wwan0", "Assigngrp": "wwan0", "Phyaddr": {"PciLong": "0000:04:00.0", "Ifname": "wwan0"}, "Usage": 2},
            {"Ptype": 11, "Phylabel": "eth2", "Logicallabel": "eth2", "Assigngrp": "eth2", "Phyaddr": {"PciLong": "0000:05:00.0", "Ifname": "eth2"}, "Usage": 2,
             "Vfs": {"Count": 2, "Data": null}},
            {"Ptype": 12, "Phylabel": "eth2vf0", "Logicallabel": "eth2vf0", "Assigngrp": "eth2vf0", "Phyaddr": {"PciLong": "0000:05:10.0", "Ifname": "eth0"}, "Usage": 2},
            {"Ptype": 15, "Phylabel": "can0", "Logicallabel": "can0", "Assigngrp": "can0", "Phyaddr": {"PciLong": "0000:06:00.0", "Ifname": "can0"}, "Usage": 2},
            {"Ptype": 16, "Phylabel": "vcan0", "Logicallabel": "vcan0", "Assigngrp": "vcan0", "Phyaddr": {"Ifname": "vcan0"}, "Usage": 2},
            {"Ptype": 1, "Phylabel": "eth1", "Logicallabel": "eth1", "Assigngrp": "eth1", "Phyaddr": {"PciLong": "0000:07:00.0", "Ifname": "eth1"}, "Usage": 2}
        ]}"#,
        );
        // Even a VF named like dom0's port is no port: EVE's IsNet leaves VFs out.
        let v = decide(&list, &facts(ports(&["eth0"], &[]), false));
        assert_eq!(kept(&v), [true, true, true, false, true, true, false]);
        assert!(v.decisions.iter().all(|d| !d.is_port), "{v:?}");
        assert!(v.decisions[0].reason.as_deref().is_some_and(|r| r.contains("wireless")));
        assert!(v.decisions[2].reason.as_deref().is_some_and(|r| r.contains("SR-IOV physical function")));
        assert!(v.decisions[4].reason.as_deref().is_some_and(|r| r.contains("CAN bus")));
    }

    #[test]
    fn the_boot_vga_stays_while_debug_enable_vga_and_a_used_nvme_drive_stays() {
        let list = eve_list(
            r#"{"Initialized": true, "AdapterList": [
            {"Ptype": 7, "Phylabel": "VGA", "Logicallabel": "VGA", "Assigngrp": "VGA", "Phyaddr": {"PciLong": "0000:00:02.0"}, "Usage": 2},
            {"Ptype": 7, "Phylabel": "GPU", "Logicallabel": "GPU", "Assigngrp": "GPU", "Phyaddr": {"PciLong": "0000:01:00.0"}, "Usage": 2},
            {"Ptype": 255, "Phylabel": "nvme0", "Logicallabel": "nvme0", "Assigngrp": "nvme0", "Phyaddr": {"PciLong": "0000:04:00.0"}, "Usage": 2},
            {"Ptype": 255, "Phylabel": "nvme1", "Logicallabel": "nvme1", "Assigngrp": "nvme1", "Phyaddr": {"PciLong": "0000:05:00.0"}, "Usage": 2}
        ]}"#,
        );
        let bdf = |s: &str| s.parse::<Bdf>().unwrap();
        let vga = |b: Bdf| b == bdf("0000:00:02.0");
        let nvme = |b: Bdf| (b == bdf("0000:04:00.0")).then(|| "/dev/nvme0n1p1 is in /proc/mounts".to_string());
        for enable_vga in [true, false] {
            let (boot_vga, nvme_in_use) = host_facts(&list, enable_vga, vga, nvme);
            let f = Facts { enable_vga, boot_vga, nvme_in_use, ..Facts::default() };
            let v = decide(&list, &f);
            assert_eq!(kept(&v), [enable_vga, false, true, false], "debug.enable.vga {enable_vga}");
            assert_eq!(
                v.decisions[2].reason.as_deref(),
                Some("nvme0 holds dom0's storage (/dev/nvme0n1p1 is in /proc/mounts)")
            );
        }
    }

    #[test]
    fn usb_controllers_stay_for_the_usb_devices_forwarded_from_them() {
        let list = |stick_parent: &str| {
            eve_list(&format!(
                r#"{{"Initialized": true, "AdapterList": [
                {{"Ptype": 13, "Phylabel": "USB1", "Logicallabel": "USB1", "Assigngrp": "USB1", "Phyaddr": {{"PciLong": "0000:00:14.0"}}, "Usage": 2}},
                {{"Ptype": 2, "Phylabel": "USB2", "Logicallabel": "USB2", "Assigngrp": "USB2", "Phyaddr": {{"PciLong": "0000:00:1d.0"}}, "Usage": 2}},
                {{"Ptype": 14, "Phylabel": "stick", "Logicallabel": "stick", "Assigngrp": "stick", "Parentassigngrp": "{stick_parent}",
                  "Phyaddr": {{"UsbAddr": "1:2", "PciLong": "0000:00:14.0"}}, "Usage": 2}}
            ]}}"#
            ))
        };
        // With a parent, only that group's controllers; without, every USB controller.
        let v = decide(&list("USB2"), &facts(Ports::default(), false));
        assert_eq!(kept(&v), [false, true, false]);
        assert!(v.decisions[1].reason.as_deref().is_some_and(|r| r.contains("forwarded by USB")));
        let v = decide(&list(""), &facts(Ports::default(), false));
        assert_eq!(kept(&v), [true, true, false]);
        // Without a USB device entry, they go to pciback.
        let v = decide(&list("USB2")[..2], &facts(Ports::default(), false));
        assert_eq!(kept(&v), [false, false]);
    }
}
