//! PCI devices: the [`Bdf`] address type, [`PciSpec`] (a device to pass through to a guest), and
//! the pciback "assignable" operations on [`Context`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::context::Context;
use crate::error::{Error, Result, Subject, check};
use crate::raw::Owned;

/// A PCI address: segment (domain), bus, device and function, written `0000:03:00.0`.
///
/// Parsing also accepts the short form `03:00.0` (segment 0), as `xl` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// PCI segment ("domain"), 0..=0xffff.
    pub segment: u16,
    /// Bus, 0..=0xff.
    pub bus: u8,
    /// Device (slot), 0..=0x1f.
    pub device: u8,
    /// Function, 0..=7.
    pub function: u8,
}

impl Bdf {
    /// Builds a BDF, checking the device and function ranges.
    pub fn new(segment: u16, bus: u8, device: u8, function: u8) -> Result<Bdf> {
        if device > 0x1f || function > 7 {
            return Err(Error::invalid(
                "PCI address",
                format!("{segment:04x}:{bus:02x}:{device:02x}.{function}"),
                "device must be at most 1f and function at most 7",
            ));
        }
        Ok(Bdf { segment, bus, device, function })
    }

    pub(crate) fn to_libxl(self, pci: &mut xen_sys::libxl_device_pci) {
        pci.domain = i32::from(self.segment);
        pci.bus = self.bus;
        pci.dev = self.device;
        pci.func = self.function;
    }

    pub(crate) fn from_libxl(pci: &xen_sys::libxl_device_pci) -> Option<Bdf> {
        let segment = u16::try_from(pci.domain).ok()?;
        Bdf::new(segment, pci.bus, pci.dev, pci.func).ok()
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:02x}:{:02x}.{:x}", self.segment, self.bus, self.device, self.function)
    }
}

impl FromStr for Bdf {
    type Err = Error;

    fn from_str(s: &str) -> Result<Bdf> {
        let bad = |reason: &str| Error::invalid("PCI address", s, reason.to_string());
        let hex = |part: &str, digits: usize, what: &str| -> Result<u32> {
            if part.is_empty() || part.len() > digits || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(&format!("{what} must be 1 to {digits} hex digits")));
            }
            u32::from_str_radix(part, 16).map_err(|_| bad(&format!("bad {what}")))
        };
        let (front, function) =
            s.rsplit_once('.').ok_or_else(|| bad("expected SEGMENT:BUS:DEVICE.FUNCTION, e.g. 0000:03:00.0"))?;
        let parts: Vec<&str> = front.split(':').collect();
        let (segment, bus, device) = match parts.as_slice() {
            [seg, bus, dev] => (hex(seg, 4, "segment")?, hex(bus, 2, "bus")?, hex(dev, 2, "device")?),
            [bus, dev] => (0, hex(bus, 2, "bus")?, hex(dev, 2, "device")?),
            _ => return Err(bad("expected SEGMENT:BUS:DEVICE.FUNCTION, e.g. 0000:03:00.0")),
        };
        let function = hex(function, 1, "function")?;
        // The hex() widths bound segment to 16 bits and bus/device to 8.
        let (segment, bus, device, function) = (segment as u16, bus as u8, device as u8, function as u8);
        Bdf::new(segment, bus, device, function).map_err(|_| bad("device must be at most 1f and function at most 7"))
    }
}

/// As its text, `0000:03:00.0`, checked as [`Bdf::from_str`] checks it.
impl Serialize for Bdf {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bdf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Bdf, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A PCI device to pass through to a guest, with xl.cfg's per-device options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PciSpec {
    /// The host device. It must be assignable (see [`Context::pci_assignable_add`]).
    pub bdf: Bdf,
    /// Allow the guest to write any config-space register (`permissive=1`).
    pub permissive: bool,
    /// Make the device assignable first if it is not (`seize=1`).
    pub seize: bool,
    /// Translate MSIs to INTx in the device model (`msitranslate=1`, HVM).
    pub msitranslate: bool,
    /// Let the guest manage the device's power state (`power_mgmt=1`, HVM).
    pub power_mgmt: bool,
    /// What libxl does when the device's reserved memory overlaps guest RAM
    /// (`rdm_policy=`, HVM); `None`: the guest's `rdm` policy, as xl gives it. EVE passes USB
    /// controllers `relaxed`: firmware often reserves memory for their legacy emulation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdm_policy: Option<crate::resources::RdmPolicy>,
}

impl PciSpec {
    /// A device with every option off.
    pub fn new(bdf: Bdf) -> PciSpec {
        PciSpec { bdf, permissive: false, seize: false, msitranslate: false, power_mgmt: false, rdm_policy: None }
    }
}

impl From<Bdf> for PciSpec {
    fn from(bdf: Bdf) -> PciSpec {
        PciSpec::new(bdf)
    }
}

/// The pciback side of PCI passthrough: making host devices assignable to guests and back.
impl Context {
    /// Makes a host PCI device assignable to guests: unbinds it from its dom0 driver and binds
    /// it to pciback. libxl remembers the original driver so that
    /// [`pci_assignable_remove`](Context::pci_assignable_remove) with `rebind` can restore it.
    pub fn pci_assignable_add(&self, bdf: Bdf) -> Result<()> {
        let mut pci = Owned::<xen_sys::libxl_device_pci>::new();
        bdf.to_libxl(&mut pci);
        // SAFETY: ctx is live; pci is an initialised struct that outlives the call.
        let rc = unsafe { xen_sys::libxl_device_pci_assignable_add(self.raw(), pci.as_mut_ptr(), 1) };
        check(rc, "pci-assignable-add", || Subject::Pci(bdf))?;
        log::info!("PCI device {bdf} is now assignable (bound to pciback)");
        Ok(())
    }

    /// Takes a device back from pciback. With `rebind`, it is bound again to the dom0 driver it
    /// had before [`pci_assignable_add`](Context::pci_assignable_add).
    pub fn pci_assignable_remove(&self, bdf: Bdf, rebind: bool) -> Result<()> {
        let mut pci = Owned::<xen_sys::libxl_device_pci>::new();
        bdf.to_libxl(&mut pci);
        // SAFETY: ctx is live; pci is an initialised struct that outlives the call.
        let rc =
            unsafe { xen_sys::libxl_device_pci_assignable_remove(self.raw(), pci.as_mut_ptr(), i32::from(rebind)) };
        check(rc, "pci-assignable-remove", || Subject::Pci(bdf))?;
        log::info!("PCI device {bdf} released from pciback{}", if rebind { " and rebound" } else { "" });
        Ok(())
    }

    /// The devices currently assignable (bound to pciback), in libxl's order.
    pub fn pci_assignable_list(&self) -> Result<Vec<Bdf>> {
        let mut num: i32 = 0;
        // SAFETY: ctx is live; num is a valid out-pointer.
        let list = unsafe { xen_sys::libxl_device_pci_assignable_list(self.raw(), &mut num) };
        if list.is_null() {
            // libxl returns NULL both for "none" and for failure: the only failure is that it
            // cannot read pciback's sysfs directory (the driver is not loaded), so tell that
            // apart rather than answer "none".
            return match std::fs::metadata(PCIBACK_SYSFS) {
                Ok(_) => Ok(Vec::new()),
                Err(source) => Err(Error::Os {
                    op: "list assignable PCI devices: the pciback driver is not loaded (no /sys/bus/pci/drivers/pciback; modprobe xen-pciback)",
                    source,
                }),
            };
        }
        let guard = AssignableList { list, num };
        let len = usize::try_from(num).unwrap_or(0);
        // SAFETY: libxl returned `num` initialised entries at `list`, owned by guard.
        let entries = unsafe { std::slice::from_raw_parts(guard.list, len) };
        Ok(entries.iter().filter_map(Bdf::from_libxl).collect())
    }
}

/// Where libxl looks for the devices bound to pciback.
const PCIBACK_SYSFS: &str = "/sys/bus/pci/drivers/pciback";

struct AssignableList {
    list: *mut xen_sys::libxl_device_pci,
    num: i32,
}

impl Drop for AssignableList {
    fn drop(&mut self) {
        // SAFETY: list/num came from libxl_device_pci_assignable_list; freed once here with the
        // function libxl.h names for it.
        unsafe { xen_sys::libxl_device_pci_assignable_list_free(self.list, self.num) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_long_and_short_forms() {
        let bdf: Bdf = "0000:03:00.0".parse().unwrap();
        assert_eq!(bdf, Bdf { segment: 0, bus: 3, device: 0, function: 0 });
        assert_eq!(bdf.to_string(), "0000:03:00.0");
        assert_eq!("00:1f.7".parse::<Bdf>().unwrap().to_string(), "0000:00:1f.7");
        assert_eq!("ABCD:ff:1F.3".parse::<Bdf>().unwrap().to_string(), "abcd:ff:1f.3");
    }

    #[test]
    fn rejects_bad_addresses_with_the_value() {
        for bad in [
            "",
            "0000:03:00",
            "0000:03:20.0",
            "0000:03:00.8",
            "00000:03:00.0",
            "0000:003:00.0",
            "x:03:00.0",
            "1:2:3:4.0",
            "0000:03:00.",
            "0000:03:00.0 ",
        ] {
            let err = bad.parse::<Bdf>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{bad:?} -> {err}");
        }
    }

    #[test]
    fn converts_to_and_from_libxl() {
        let bdf: Bdf = "0001:82:1e.5".parse().unwrap();
        let mut pci = Owned::<xen_sys::libxl_device_pci>::new();
        bdf.to_libxl(&mut pci);
        assert_eq!((pci.domain, pci.bus, pci.dev, pci.func), (1, 0x82, 0x1e, 5));
        assert_eq!(Bdf::from_libxl(&pci), Some(bdf));
    }
}
