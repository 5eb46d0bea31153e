//! Which adapters stay in dom0 and which go to pciback, from the adapter list, dom0's network
//! ports and `debug.enable.usb`. A pure function, applied by `adapters/mod.rs`.
//!
//! The rules (EVE's domainmgr's, reduced to what a Xen host needs):
//! - a network adapter that is one of dom0's ports (by interface name or PCI address) stays in
//!   dom0 and is marked a port; any adapter whose PCI address is a port stays too;
//! - a USB adapter or controller stays in dom0 while `debug.enable.usb` is true;
//! - every other adapter goes to pciback, ready for guests;
//! - an assignment group moves as one: if one member stays, all stay.

use std::collections::{HashMap, HashSet};

use xenctl::Bdf;

use super::eve::PhysicalIoAdapter;
use crate::eve::IoType;

/// EVE's network adapter types: Ethernet, WLAN, WWAN, Ethernet PF and VF.
pub fn is_net(t: IoType) -> bool {
    matches!(t.0, 1 | 5 | 6 | 11 | 12)
}

/// EVE's USB types: a USB adapter and a USB controller.
pub fn is_usb(t: IoType) -> bool {
    matches!(t.0, 2 | 13)
}

/// dom0's network ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ports {
    /// Interface names.
    pub ifnames: HashSet<String>,
    /// PCI addresses behind them.
    pub pcis: HashSet<Bdf>,
}

/// What the policy says about one adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// It (or a member of its group) must stay in dom0.
    pub keep_in_host: bool,
    /// It (or a member of its group) is a dom0 network port.
    pub is_port: bool,
    /// Why it stays, when it does.
    pub reason: Option<String>,
}

/// One decision per adapter, in order.
pub fn decide(adapters: &[PhysicalIoAdapter], ports: &Ports, enable_usb: bool) -> Vec<Decision> {
    let own: Vec<Decision> = adapters
        .iter()
        .map(|a| {
            let pci = a.phyaddr.pci_long.parse::<Bdf>().ok();
            let ifname = &a.phyaddr.ifname;
            let named_port = !ifname.is_empty() && ports.ifnames.contains(ifname);
            let pci_port = pci.is_some_and(|p| ports.pcis.contains(&p));
            let label = if a.phylabel.is_empty() { &a.logicallabel } else { &a.phylabel };
            if is_net(a.ptype) && (named_port || pci_port) {
                Decision { keep_in_host: true, is_port: true, reason: Some(format!("{label} is a dom0 network port")) }
            } else if pci_port {
                Decision {
                    keep_in_host: true,
                    is_port: false,
                    reason: Some(format!("{label}'s PCI address is a dom0 network port")),
                }
            } else if is_usb(a.ptype) && enable_usb {
                Decision {
                    keep_in_host: true,
                    is_port: false,
                    reason: Some(format!("{label} is USB and debug.enable.usb keeps USB in dom0")),
                }
            } else {
                Decision { keep_in_host: false, is_port: false, reason: None }
            }
        })
        .collect();

    // Fold each assignment group: one member staying keeps them all.
    let mut groups: HashMap<&str, Decision> = HashMap::new();
    for (a, d) in adapters.iter().zip(&own) {
        if a.assigngrp.is_empty() {
            continue;
        }
        let g = groups.entry(a.assigngrp.as_str()).or_insert(Decision {
            keep_in_host: false,
            is_port: false,
            reason: None,
        });
        g.keep_in_host |= d.keep_in_host;
        g.is_port |= d.is_port;
        if g.reason.is_none() {
            g.reason.clone_from(&d.reason);
        }
    }
    adapters
        .iter()
        .zip(own)
        .map(|(a, d)| match groups.get(a.assigngrp.as_str()) {
            Some(g) if !a.assigngrp.is_empty() => {
                let reason = d
                    .reason
                    .or_else(|| g.reason.as_ref().map(|r| format!("{r} (same assignment group {})", a.assigngrp)));
                Decision { keep_in_host: g.keep_in_host, is_port: g.is_port, reason }
            }
            _ => d,
        })
        .collect()
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
            usage: 0,
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
        let d = decide(&list, &ports(&["eth0"], &[]), false);
        assert!(d[0].keep_in_host && d[0].is_port);
        assert_eq!(d[0].reason.as_deref(), Some("eth0 is a dom0 network port"));
        assert!(!d[1].keep_in_host && !d[1].is_port);
    }

    #[test]
    fn a_port_is_recognised_by_its_pci_address_too() {
        // The model says eth1, the kernel named it enp0s3: the PCI address still matches.
        let list = [adapter(1, "eth1", "0000:00:03.0", "eth1", ""), adapter(9, "nvme", "0000:00:03.0", "", "")];
        let d = decide(&list, &ports(&["enp0s3"], &["0000:00:03.0"]), false);
        assert!(d[0].is_port && d[0].keep_in_host);
        assert!(d[1].keep_in_host && !d[1].is_port, "a non-network adapter at a port's address stays too");
    }

    #[test]
    fn usb_stays_only_while_debug_enable_usb() {
        let list = [adapter(13, "USB", "0000:00:14.0", "", ""), adapter(2, "USB2", "0000:00:1d.0", "", "")];
        assert!(decide(&list, &Ports::default(), true).iter().all(|d| d.keep_in_host));
        assert!(decide(&list, &Ports::default(), false).iter().all(|d| !d.keep_in_host));
    }

    #[test]
    fn a_group_moves_as_one() {
        let list = [
            adapter(1, "eth0", "0000:01:00.0", "eth0", "nicgrp"),
            adapter(1, "eth1", "0000:01:00.1", "eth1", "nicgrp"),
            adapter(13, "USB", "0000:00:14.0", "", "usbgrp"),
            adapter(3, "COM1", "0000:00:16.3", "", "usbgrp"),
        ];
        let d = decide(&list, &ports(&["eth0"], &[]), true);
        assert!(d[1].keep_in_host && d[1].is_port, "eth1 shares eth0's group");
        assert!(d[1].reason.as_deref().is_some_and(|r| r.contains("same assignment group nicgrp")));
        assert!(d[3].keep_in_host && !d[3].is_port, "COM1 shares the USB controller's group");
        let d = decide(&list, &ports(&[], &[]), false);
        assert!(d.iter().all(|d| !d.keep_in_host), "nothing stays when no member must");
    }
}
