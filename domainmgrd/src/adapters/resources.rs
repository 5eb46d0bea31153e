//! What a domain's adapters give it, and how that goes into its `DomainSpec` the way EVE's
//! Xen backend (`CreateDomConfig` in pkg/pillar/hypervisor/xen.go) writes it into the xl
//! config:
//! - a PCI address: passed through (`pci`); a USB controller with `rdm_policy=relaxed`, as
//!   firmware often reserves memory for its legacy USB emulation;
//! - an IRQ and an I/O port range (ISA devices such as serial ports): for PV guests only
//!   (`irqs`, after the config's own `IRQs`, each once; `ioports`);
//! - a serial device: for HVM guests only (EVE's HVM, FML and LEGACY), as another serial
//!   port after the `pty` every HVM guest has (`serial = [ "pty", "/dev/ttyS1" ]`);
//! - a USB address: for PV, HVM and LEGACY guests (not FML), forwarded on one USB 2
//!   controller of 6 ports (`usbctrl = [ "type=auto,version=2,ports=6" ]`) with one `usbdev`
//!   per address. EVE's `UsbAddr` is a bus and a port path (`1:2.3`); libxl names a device
//!   by bus and device number, which sysfs gives for the port (`host.rs`). EVE writes the
//!   port where libxl reads a device number, and numbers the ports from 0 (which libxl reads
//!   as "any free port", so its second device asks for the port the first one got); the
//!   device the model names is forwarded here, each on its own port from 1.
//!
//! A bundle that gives a kind of resource the guest's mode cannot take gives it nothing, as
//! in EVE. A value libxl would refuse is an error naming the adapter, the field and the value.

use xenctl::{Bdf, DomainSpec, IoportRange, PciSpec, RdmPolicy, UsbCtrlKind, UsbCtrlSpec, UsbDevSpec};

use super::host::Host;
use crate::eve::VmMode;

/// What one adapter entry gives the domain that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BundleResources {
    /// Its label (phylabel, or logical label), for errors.
    pub label: String,
    /// Its PCI device, unless forwarded by USB or not a PCI device.
    pub pci: Option<Bdf>,
    /// It is a USB controller (EVE's `IsUSBController`).
    pub usb_controller: bool,
    /// The device is in dom0 (kept there by the policy): libxl binds it to pciback as it
    /// creates the domain (`seize`), and it returns to dom0 when the domain is gone.
    pub seize: bool,
    /// `Irq`, as the adapter list gives it.
    pub irq: String,
    /// `Ioports`.
    pub ioports: String,
    /// `Serial`.
    pub serial: String,
    /// `UsbAddr`.
    pub usb_addr: String,
}

/// The adapters a domain holds: what each of their entries gives, in the order its
/// `IoAdapterList` names them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reservation {
    /// One per adapter entry.
    pub bundles: Vec<BundleResources>,
}

/// How many ports EVE gives the USB controller of a guest with USB devices.
const USB_PORTS: u32 = 6;

impl Reservation {
    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.bundles.is_empty()
    }

    /// The PCI devices, each once.
    pub fn pcis(&self) -> Vec<Bdf> {
        let mut out: Vec<Bdf> = Vec::new();
        for b in self.bundles.iter().filter_map(|b| b.pci) {
            if !out.contains(&b) {
                out.push(b);
            }
        }
        out
    }

    /// Puts the resources into `spec` for a guest of `mode` (EVE's VirtualizationMode, read
    /// as EVE's domainmgr reads it: unknown numbers are PV), with `host` to find USB devices.
    pub fn fill(&self, mode: VmMode, host: &Host, spec: &mut DomainSpec) -> Result<(), String> {
        let mode = mode.or_default();
        let pv = mode == VmMode::PV;
        let hvm = matches!(mode, VmMode::HVM | VmMode::FML | VmMode::LEGACY);
        let usb = matches!(mode, VmMode::PV | VmMode::HVM | VmMode::LEGACY);
        let err = |b: &BundleResources, field: &str, value: &str, why: String| {
            format!("IoAdapterList: adapter {}: {field} = {value:?}: {why}", b.label)
        };
        let mut serials: Vec<String> = Vec::new();
        let mut usb_devices: Vec<(u8, u8)> = Vec::new();
        for b in &self.bundles {
            if let Some(bdf) = b.pci
                && !spec.pcis.iter().any(|p| p.bdf == bdf)
            {
                let mut pci = PciSpec::new(bdf);
                pci.seize = b.seize;
                if b.usb_controller {
                    pci.rdm_policy = Some(RdmPolicy::Relaxed);
                }
                spec.pcis.push(pci);
            }
            if pv && !b.irq.is_empty() {
                let irq = parse_irq(&b.irq).map_err(|why| err(b, "Irq", &b.irq, why))?;
                if !spec.resources.irqs.contains(&irq) {
                    spec.resources.irqs.push(irq);
                }
            }
            if pv && !b.ioports.is_empty() {
                let range = parse_ioports(&b.ioports).map_err(|why| err(b, "Ioports", &b.ioports, why))?;
                if !spec.resources.ioports.contains(&range) {
                    spec.resources.ioports.push(range);
                }
            }
            if hvm && !b.serial.is_empty() && !serials.contains(&b.serial) {
                if b.serial.contains(['\'', '"', ',', '\n']) {
                    return Err(err(b, "Serial", &b.serial, "not a device path a serial port can name".into()));
                }
                serials.push(b.serial.clone());
            }
            if usb && !b.usb_addr.is_empty() {
                let (bus, port) = b
                    .usb_addr
                    .split_once(':')
                    .ok_or_else(|| err(b, "UsbAddr", &b.usb_addr, "not a USB address like 1:2.3 (bus:port)".into()))?;
                let bus: u16 =
                    bus.parse().map_err(|_| err(b, "UsbAddr", &b.usb_addr, format!("bus {bus:?} is not a number")))?;
                let dev = host.usb_device_at(bus, port).map_err(|why| err(b, "UsbAddr", &b.usb_addr, why))?;
                if !usb_devices.contains(&dev) {
                    usb_devices.push(dev);
                }
            }
        }
        if !serials.is_empty() {
            // After the `pty` translate gives every HVM guest (or its own serial, else a pty).
            if spec.serial_ports.is_empty() {
                spec.serial_ports.push(spec.serial.take().unwrap_or_else(|| "pty".into()));
            }
            spec.serial_ports.append(&mut serials);
        }
        if !usb_devices.is_empty() {
            if usb_devices.len() > USB_PORTS as usize {
                let addrs: Vec<&str> =
                    self.bundles.iter().map(|b| b.usb_addr.as_str()).filter(|a| !a.is_empty()).collect();
                return Err(format!(
                    "IoAdapterList: UsbAddr = {:?}: {} USB devices, more than the {USB_PORTS} ports of the guest's USB controller",
                    addrs.join(", "),
                    usb_devices.len()
                ));
            }
            let controller = u32::try_from(spec.usb_controllers.len()).unwrap_or(u32::MAX);
            spec.usb_controllers.push(UsbCtrlSpec {
                kind: UsbCtrlKind::Auto,
                version: Some(2),
                ports: Some(USB_PORTS),
            });
            for (port, (bus, addr)) in (1..).zip(usb_devices) {
                spec.usb_host_devices.push(UsbDevSpec::host(bus, addr).on(controller, Some(port)));
            }
        }
        Ok(())
    }
}

/// An IRQ as EVE's model gives it: a decimal number (xl reads `irqs` in decimal).
fn parse_irq(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|&n| n != u32::MAX)
        .ok_or_else(|| "not an IRQ number (decimal, below 4294967295)".to_string())
}

/// An I/O port range as EVE's model gives it: `2f8-2ff` or one port `2f8`, in hex.
fn parse_ioports(text: &str) -> Result<IoportRange, String> {
    let bad = || "not an I/O port range like 2f8-2ff (hex)".to_string();
    let hex = |t: &str| {
        let t = t.trim();
        let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
        if t.is_empty() || t.len() > 4 {
            return Err(bad());
        }
        u32::from_str_radix(t, 16).map_err(|_| bad())
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (hex(a)?, hex(b)?),
        None => {
            let p = hex(text)?;
            (p, p)
        }
    };
    if last < first {
        return Err(format!("the range ends ({last:x}) before it starts ({first:x})"));
    }
    Ok(IoportRange::new(first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(label: &str) -> BundleResources {
        BundleResources { label: label.into(), ..BundleResources::default() }
    }

    fn com2() -> BundleResources {
        BundleResources { irq: "3".into(), ioports: "2f8-2ff".into(), serial: "/dev/ttyS1".into(), ..bundle("COM2") }
    }

    fn host_with_usb(dir: &std::path::Path) -> Host {
        for (port, dev) in [("1-2", "5"), ("1-3.1", "9")] {
            let d = dir.join("bus/usb/devices").join(port);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("busnum"), "1\n").unwrap();
            std::fs::write(d.join("devnum"), format!("{dev}\n")).unwrap();
        }
        Host { sysfs: dir.into(), ..Host::default() }
    }

    #[test]
    fn a_serial_port_bundle_gives_pv_its_irq_and_ports_and_hvm_its_device() {
        let r = Reservation { bundles: vec![com2()] };
        let mut pv = DomainSpec::pv("g").kernel("/k");
        pv.resources.irqs = vec![5, 3]; // the config's own IRQs come first
        r.fill(VmMode::PV, &Host::default(), &mut pv).unwrap();
        assert_eq!(pv.resources.irqs, [5, 3], "3 once");
        assert_eq!(pv.resources.ioports, [IoportRange { first: 0x2f8, count: 8 }]);
        assert!(pv.serial_ports.is_empty() && pv.serial.is_none(), "no serial for PV");
        let text = pv.to_xl_config().unwrap();
        assert!(text.contains("irqs = [ 5, 3 ]") && text.contains("ioports = [ \"2f8-2ff\" ]"), "{text}");

        for mode in [VmMode::HVM, VmMode::FML, VmMode::LEGACY] {
            let mut hvm = DomainSpec::hvm("h").serial("pty");
            r.fill(mode, &Host::default(), &mut hvm).unwrap();
            assert_eq!(hvm.serial_ports, ["pty", "/dev/ttyS1"], "{mode:?}");
            assert_eq!(hvm.serial, None);
            assert!(hvm.resources.irqs.is_empty() && hvm.resources.ioports.is_empty(), "{mode:?}: PV only");
            hvm.validate().unwrap();
        }
    }

    #[test]
    fn pci_devices_once_usb_controllers_relaxed_kept_devices_seized() {
        let bdf = |s: &str| s.parse::<Bdf>().unwrap();
        let r = Reservation {
            bundles: vec![
                BundleResources { pci: Some(bdf("0000:00:14.0")), usb_controller: true, ..bundle("USB") },
                BundleResources { pci: Some(bdf("0000:00:14.0")), ..bundle("USB-again") },
                BundleResources { pci: Some(bdf("0000:03:00.0")), seize: true, ..bundle("wlan0") },
            ],
        };
        assert_eq!(r.pcis(), [bdf("0000:00:14.0"), bdf("0000:03:00.0")]);
        let mut spec = DomainSpec::hvm("h");
        r.fill(VmMode::HVM, &Host::default(), &mut spec).unwrap();
        assert_eq!(spec.pcis.len(), 2);
        assert_eq!((spec.pcis[0].rdm_policy, spec.pcis[0].seize), (Some(RdmPolicy::Relaxed), false));
        assert_eq!((spec.pcis[1].rdm_policy, spec.pcis[1].seize), (None, true));
        let text = spec.to_xl_config().unwrap();
        assert!(text.contains("\"0000:00:14.0,rdm_policy=relaxed\", \"0000:03:00.0,seize=1\""), "{text}");
    }

    #[test]
    fn usb_devices_on_one_usb2_controller_of_six_ports_but_not_for_fml() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_with_usb(dir.path());
        let stick = BundleResources { usb_addr: "1:2".into(), ..bundle("stick") };
        let cam = BundleResources { usb_addr: "1:3.1".into(), ..bundle("cam") };
        let r = Reservation { bundles: vec![stick.clone(), cam, stick] };
        for mode in [VmMode::PV, VmMode::HVM, VmMode::LEGACY] {
            let mut spec = if mode == VmMode::PV { DomainSpec::pv("g").kernel("/k") } else { DomainSpec::hvm("h") };
            r.fill(mode, &host, &mut spec).unwrap();
            assert_eq!(
                spec.usb_controllers,
                [UsbCtrlSpec { kind: UsbCtrlKind::Auto, version: Some(2), ports: Some(6) }]
            );
            assert_eq!(
                spec.usb_host_devices,
                [UsbDevSpec::host(1, 5).on(0, Some(1)), UsbDevSpec::host(1, 9).on(0, Some(2))]
            );
            spec.validate().unwrap();
        }
        let mut fml = DomainSpec::hvm("h");
        r.fill(VmMode::FML, &host, &mut fml).unwrap();
        assert!(fml.usb_controllers.is_empty() && fml.usb_host_devices.is_empty(), "EVE forwards no USB to FML");
    }

    #[test]
    fn values_libxl_would_refuse_name_adapter_field_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_with_usb(dir.path());
        let cases = [
            (BundleResources { irq: "three".into(), ..bundle("COM2") }, "adapter COM2: Irq = \"three\": not an IRQ"),
            (
                BundleResources { ioports: "2ff-2f8".into(), ..bundle("COM2") },
                "adapter COM2: Ioports = \"2ff-2f8\": the range ends (2f8) before it starts (2ff)",
            ),
            (BundleResources { ioports: "x".into(), ..bundle("COM2") }, "Ioports = \"x\": not an I/O port range"),
            (
                BundleResources { usb_addr: "12".into(), ..bundle("stick") },
                "adapter stick: UsbAddr = \"12\": not a USB",
            ),
            (
                BundleResources { usb_addr: "1:7".into(), ..bundle("stick") },
                "UsbAddr = \"1:7\": no USB device at bus 1 port 7",
            ),
        ];
        for (b, want) in cases {
            let mut spec = DomainSpec::pv("g").kernel("/k");
            let e = Reservation { bundles: vec![b] }.fill(VmMode::PV, &host, &mut spec).unwrap_err();
            assert!(e.starts_with("IoAdapterList: ") && e.contains(want), "{e}\n  wanted: {want}");
        }
        let mut spec = DomainSpec::hvm("h");
        let b = BundleResources { serial: "/dev/ttyS1,x".into(), ..bundle("COM2") };
        let e = Reservation { bundles: vec![b] }.fill(VmMode::HVM, &host, &mut spec).unwrap_err();
        assert!(e.contains("Serial = \"/dev/ttyS1,x\""), "{e}");
    }
}
