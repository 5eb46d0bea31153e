//! USB controllers and host USB devices passed through to a guest (xl.cfg's `usbctrl` and
//! `usbdev`, xl.cfg(5) "USB devices"): [`UsbCtrlSpec`] and [`UsbDevSpec`] as plain data in
//! [`DomainSpec`], read from xl.cfg as xl 4.17's `parse_usbctrl_config`/`parse_usbdev_config`
//! read them, filled into libxl's `usbctrls`/`usbdevs` and written back as xl.cfg lines. A
//! controller's id is its position in the list (xl numbers them so); a device names its
//! controller by that id, or leaves libxl to find (or add) one. The emulated HVM USB bus of
//! `usb`/`usbversion`/`usbdevice` is another thing, in `options.rs`.

use serde::{Deserialize, Serialize};

use crate::cnum::strtoul;
use crate::error::{Error, Result};
use crate::spec::DomainSpec;
use crate::xlread::Reader;

/// The kind of a USB controller (`type=` of a usbctrl spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsbCtrlKind {
    /// libxl picks: `devicemodel` for HVM guests, else `pv` if dom0's kernel has a PVUSB
    /// backend, else `qusb`.
    #[default]
    Auto,
    /// The kernel's PVUSB backend.
    Pv,
    /// A controller QEMU emulates (a PCI device in the guest).
    #[serde(rename = "devicemodel")]
    DeviceModel,
    /// QEMU's PVUSB backend.
    Qusb,
}

impl UsbCtrlKind {
    /// The word xl.cfg uses.
    pub fn as_str(self) -> &'static str {
        match self {
            UsbCtrlKind::Auto => "auto",
            UsbCtrlKind::Pv => "pv",
            UsbCtrlKind::DeviceModel => "devicemodel",
            UsbCtrlKind::Qusb => "qusb",
        }
    }

    /// The kind an xl.cfg word names, in any case (libxl compares with `strcasecmp`).
    pub fn from_xl(word: &str) -> Option<UsbCtrlKind> {
        [UsbCtrlKind::Auto, UsbCtrlKind::Pv, UsbCtrlKind::DeviceModel, UsbCtrlKind::Qusb]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(word))
    }

    fn to_libxl(self) -> xen_sys::libxl_usbctrl_type {
        match self {
            UsbCtrlKind::Auto => xen_sys::LIBXL_USBCTRL_TYPE_AUTO,
            UsbCtrlKind::Pv => xen_sys::LIBXL_USBCTRL_TYPE_PV,
            UsbCtrlKind::DeviceModel => xen_sys::LIBXL_USBCTRL_TYPE_DEVICEMODEL,
            UsbCtrlKind::Qusb => xen_sys::LIBXL_USBCTRL_TYPE_QUSB,
        }
    }
}

/// A USB controller of the guest (`usbctrl = [ "type=pv,version=2,ports=8" ]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsbCtrlSpec {
    /// Its kind.
    #[serde(default)]
    pub kind: UsbCtrlKind,
    /// USB 1 (1.1), 2 or 3 (`devicemodel` only); `None` for libxl's default, 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// How many ports; `None` for libxl's default (8, or what QEMU's USB 1 and 2 controllers
    /// have: 2 and 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<u32>,
}

impl UsbCtrlSpec {
    /// A controller of this kind with libxl's defaults.
    pub fn new(kind: UsbCtrlKind) -> UsbCtrlSpec {
        UsbCtrlSpec { kind, ..UsbCtrlSpec::default() }
    }

    /// Parses a usbctrl spec as xl does: comma-separated `type=`, `version=` and `ports=`,
    /// leading spaces ignored, a later option replacing an earlier one, `""` for all
    /// defaults. Numbers are read as xl's `atoi` reads them (0 is libxl's default); where
    /// xl would read a number from text that is not one, this refuses it.
    pub fn from_xl(spec: &str) -> std::result::Result<UsbCtrlSpec, String> {
        let mut ctrl = UsbCtrlSpec::default();
        for (key, value, option) in options(spec) {
            match key {
                "type" => {
                    ctrl.kind = UsbCtrlKind::from_xl(value)
                        .ok_or_else(|| format!("type={value}: expected auto, pv, devicemodel or qusb"))?
                }
                "version" => ctrl.version = nonzero(count_from_xl(key, value)?),
                "ports" => ctrl.ports = nonzero(count_from_xl(key, value)?),
                _ => return Err(format!("unknown option `{option}'")),
            }
        }
        Ok(ctrl)
    }
}

/// A host USB device passed through to the guest (`usbdev = [ "hostbus=1,hostaddr=3" ]`),
/// named by its bus and device number on the host (as `lsusb` prints them).
///
/// ```
/// use xenctl::{DomainSpec, UsbCtrlKind, UsbCtrlSpec, UsbDevSpec};
/// let mut spec = DomainSpec::pv("kiosk").kernel("/boot/vmlinuz");
/// spec.usb_controllers.push(UsbCtrlSpec::new(UsbCtrlKind::Pv));
/// spec.usb_host_devices.push(UsbDevSpec::host(1, 3).on(0, Some(1)));
/// spec.usb_host_devices.push(UsbDevSpec::host(2, 7)); // on a free port libxl finds
/// assert!(spec.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsbDevSpec {
    /// The host's bus number.
    pub host_bus: u8,
    /// The device's address (device number) on that bus.
    pub host_addr: u8,
    /// The guest controller (its index in `usb_controllers`); `None` for a free port on any
    /// controller, or a new controller if none has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<u32>,
    /// The port on `controller`, from 1; `None` for its first free one. Needs `controller`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// The xl.cfg item did not say `type=hostdev`: libxl takes it as a host device all the
    /// same, but its config (and so `xl -N`'s output) leaves the type, and with it the bus
    /// and address, out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub type_implied: bool,
}

impl UsbDevSpec {
    /// The host device at `bus`/`addr`, on a port libxl picks.
    pub fn host(bus: u8, addr: u8) -> UsbDevSpec {
        UsbDevSpec { host_bus: bus, host_addr: addr, controller: None, port: None, type_implied: false }
    }

    /// The same device on guest controller `controller`, at `port` (or its first free port).
    pub fn on(self, controller: u32, port: Option<u32>) -> UsbDevSpec {
        UsbDevSpec { controller: Some(controller), port, ..self }
    }

    /// Parses a usbdev spec as xl does: comma-separated `type=hostdev`, `hostbus=`,
    /// `hostaddr=`, `controller=` and `port=`. The bus and address are C numbers as xl reads
    /// them (`010` is octal 8, `0x10` hex 16); this refuses what does not fit 8 bits rather
    /// than pass through another device, as xl would. Also returns a note for a number xl
    /// reads as octal.
    pub(crate) fn from_xl(spec: &str) -> std::result::Result<(UsbDevSpec, Vec<String>), String> {
        let mut dev = UsbDevSpec::host(0, 0);
        dev.type_implied = true;
        let mut notes = Vec::new();
        for (key, value, option) in options(spec) {
            match key {
                "type" if value.eq_ignore_ascii_case("hostdev") => dev.type_implied = false,
                "type" => return Err(format!("type={value}: only hostdev is a USB device type")),
                "hostbus" => dev.host_bus = byte_from_xl(key, value, &mut notes)?,
                "hostaddr" => dev.host_addr = byte_from_xl(key, value, &mut notes)?,
                "controller" => {
                    let n = int_from_xl(key, value)?;
                    // libxl's "none" is -1.
                    dev.controller = if n == -1 { None } else { Some(non_negative(key, n)?) };
                }
                "port" => dev.port = nonzero(count_from_xl(key, value)?),
                _ => return Err(format!("unknown option `{option}'")),
            }
        }
        Ok((dev, notes))
    }
}

/// The options of a spec as xl's strtok loop sees them: split at commas, empty ones
/// skipped, leading spaces dropped; each as (key, value, the whole option). An option
/// without `=` has an empty key, which no parser knows.
fn options(spec: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    spec.split(',').map(|t| t.trim_start_matches(' ')).filter(|t| !t.is_empty()).map(|t| {
        let (key, value) = t.split_once('=').unwrap_or(("", t));
        (key, value, t)
    })
}

fn nonzero(n: u32) -> Option<u32> {
    (n != 0).then_some(n)
}

/// An integer as xl's `atoi` reads it, when the text is one: optional white space and sign,
/// decimal digits, optional white space.
fn int_from_xl(key: &str, value: &str) -> std::result::Result<i32, String> {
    let t = value.trim_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{key}={value}: not a number"));
    }
    t.trim_start_matches('+').parse::<i32>().map_err(|_| format!("{key}={value}: too large"))
}

fn non_negative(key: &str, n: i32) -> std::result::Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("{key}={n}: must not be negative"))
}

fn count_from_xl(key: &str, value: &str) -> std::result::Result<u32, String> {
    non_negative(key, int_from_xl(key, value)?)
}

/// A bus or device number as xl's `strtoul(value, NULL, 0)` reads it, which must fit 8 bits.
fn byte_from_xl(key: &str, value: &str, notes: &mut Vec<String>) -> std::result::Result<u8, String> {
    let (n, used) = strtoul(value, 0);
    if used == 0 || !value[used..].trim_end().is_empty() {
        return Err(format!("{key}={value}: not a number"));
    }
    let byte = u8::try_from(n).map_err(|_| format!("{key}={value}: more than 255"))?;
    let t = value.trim();
    if t.len() > 1 && t.starts_with('0') && !t[1..].starts_with(['x', 'X']) && t.parse::<u64>().ok() != Some(n) {
        notes.push(format!("{key}={value}: xl reads a leading 0 as octal, so this is {byte} (lsusb prints decimal)"));
    }
    Ok(byte)
}

impl DomainSpec {
    /// Validation of the USB fields; part of [`DomainSpec::validate`].
    pub(crate) fn validate_usb(&self) -> Result<()> {
        for (i, c) in self.usb_controllers.iter().enumerate() {
            for (what, n) in [("version", c.version), ("ports", c.ports)] {
                if let Some(n) = n.filter(|&n| i32::try_from(n).is_err()) {
                    return Err(Error::invalid(format!("usb_controllers[{i}].{what}"), n.to_string(), "too large"));
                }
            }
        }
        for (i, d) in self.usb_host_devices.iter().enumerate() {
            if d.port.is_some() && d.controller.is_none() {
                // libxl refuses it when it creates the domain.
                return Err(Error::invalid(format!("usb_host_devices[{i}].port"), "", "a port needs its controller"));
            }
            for (what, n) in [("controller", d.controller), ("port", d.port)] {
                if let Some(n) = n.filter(|&n| i32::try_from(n).is_err()) {
                    return Err(Error::invalid(format!("usb_host_devices[{i}].{what}"), n.to_string(), "too large"));
                }
            }
        }
        Ok(())
    }

    /// Fills the USB controllers and devices into `d`, numbering controllers by position as
    /// xl does.
    pub(crate) fn fill_usb(&self, d: &mut xen_sys::libxl_domain_config) -> Result<()> {
        d.usbctrls = crate::raw::calloc_array(self.usb_controllers.len())?;
        d.num_usbctrls = count(self.usb_controllers.len());
        for (i, c) in self.usb_controllers.iter().enumerate() {
            // SAFETY: usbctrls has num_usbctrls zeroed elements; init each once, then fill.
            let slot = unsafe { &mut *d.usbctrls.add(i) };
            // SAFETY: slot is a valid element of the array.
            unsafe { xen_sys::libxl_device_usbctrl_init(slot) };
            slot.devid = count(i);
            slot.type_ = c.kind.to_libxl();
            // validate() bounds both to i32.
            slot.version = c.version.map_or(0, |v| i32::try_from(v).unwrap_or(i32::MAX));
            slot.ports = c.ports.map_or(0, |p| i32::try_from(p).unwrap_or(i32::MAX));
        }
        d.usbdevs = crate::raw::calloc_array(self.usb_host_devices.len())?;
        d.num_usbdevs = count(self.usb_host_devices.len());
        for (i, dev) in self.usb_host_devices.iter().enumerate() {
            // SAFETY: as for the controllers.
            let slot = unsafe { &mut *d.usbdevs.add(i) };
            // SAFETY: slot is a valid element of the array.
            unsafe { xen_sys::libxl_device_usbdev_init(slot) };
            slot.ctrl = dev.controller.map_or(-1, |c| i32::try_from(c).unwrap_or(i32::MAX));
            slot.port = dev.port.map_or(0, |p| i32::try_from(p).unwrap_or(i32::MAX));
            if !dev.type_implied {
                slot.type_ = xen_sys::LIBXL_USBDEV_TYPE_HOSTDEV;
            }
            // A union of one member, plain bytes: writing it is writing the member.
            slot.u.hostdev.hostbus = dev.host_bus;
            slot.u.hostdev.hostaddr = dev.host_addr;
        }
        Ok(())
    }

    /// The USB fields as xl.cfg lines; nothing for none.
    pub(crate) fn usb_lines(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !self.usb_controllers.is_empty() {
            let items: Vec<String> = self
                .usb_controllers
                .iter()
                .map(|c| {
                    let mut parts = Vec::new();
                    if c.kind != UsbCtrlKind::Auto {
                        parts.push(format!("type={}", c.kind.as_str()));
                    }
                    parts.extend(c.version.map(|v| format!("version={v}")));
                    parts.extend(c.ports.map(|p| format!("ports={p}")));
                    parts.join(",")
                })
                .collect();
            out.push(("usbctrl", crate::xlcfg::list(&items)));
        }
        if !self.usb_host_devices.is_empty() {
            let items: Vec<String> = self
                .usb_host_devices
                .iter()
                .map(|d| {
                    let mut parts = Vec::new();
                    if !d.type_implied {
                        parts.push("type=hostdev".to_string());
                    }
                    parts.push(format!("hostbus={},hostaddr={}", d.host_bus, d.host_addr));
                    parts.extend(d.controller.map(|c| format!("controller={c}")));
                    parts.extend(d.port.map(|p| format!("port={p}")));
                    parts.join(",")
                })
                .collect();
            out.push(("usbdev", crate::xlcfg::list(&items)));
        }
        out
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Reads `usbctrl` and `usbdev`, as xl does for every guest type.
pub(crate) fn read_usb(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    for (i, item) in r.list_or_ignore("usbctrl")?.unwrap_or_default().iter().enumerate() {
        spec.usb_controllers
            .push(UsbCtrlSpec::from_xl(item).map_err(|e| r.item_err("usbctrl", i, format!("{item:?}: {e}")))?);
    }
    for (i, item) in r.list_or_ignore("usbdev")?.unwrap_or_default().iter().enumerate() {
        let (dev, notes) = UsbDevSpec::from_xl(item).map_err(|e| r.item_err("usbdev", i, format!("{item:?}: {e}")))?;
        for note in notes {
            log::warn!("{}: usbdev[{i}]: {note}", r.at("usbdev"));
        }
        spec.usb_host_devices.push(dev);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DomainSpec> {
        DomainSpec::from_xl_config_text("u.cfg", &format!("name = \"u\"\nkernel = \"/k\"\n{text}\n"))
    }

    fn json(spec: &DomainSpec) -> serde_json::Value {
        serde_json::from_str(&spec.to_libxl_json().unwrap()).unwrap()
    }

    #[test]
    fn controller_specs_parse_like_xl() {
        let ctrl = |kind, version, ports| UsbCtrlSpec { kind, version, ports };
        for (text, want) in [
            ("type=devicemodel,version=3,ports=4", ctrl(UsbCtrlKind::DeviceModel, Some(3), Some(4))),
            ("", UsbCtrlSpec::default()),
            (",,version=2,,", ctrl(UsbCtrlKind::Auto, Some(2), None)),
            ("type=DeviceModel", UsbCtrlSpec::new(UsbCtrlKind::DeviceModel)),
            ("type=pv, version=1, ports=4", ctrl(UsbCtrlKind::Pv, Some(1), Some(4))),
            ("ports= 3 ,type=qusb,type=auto", ctrl(UsbCtrlKind::Auto, None, Some(3))),
            // 0 is libxl's "default", as xl passes it.
            ("version=0,ports=+0", UsbCtrlSpec::default()),
        ] {
            assert_eq!(UsbCtrlSpec::from_xl(text), Ok(want), "{text:?}");
        }
        for (text, want) in [
            ("type=PV ", "type=PV : expected auto, pv, devicemodel or qusb"),
            ("type=bogus", "type=bogus: expected"),
            ("version = 2", "unknown option `version = 2'"),
            ("colour=red", "unknown option `colour=red'"),
            ("pv", "unknown option `pv'"),
            ("version=abc", "version=abc: not a number"),
            ("ports=4x", "ports=4x: not a number"),
            ("ports=-1", "ports=-1: must not be negative"),
            ("version=99999999999", "too large"),
        ] {
            let e = UsbCtrlSpec::from_xl(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn device_specs_parse_like_xl() {
        let (dev, notes) = UsbDevSpec::from_xl("type=hostdev,hostbus=0x2,hostaddr=010,controller=0,port=2").unwrap();
        assert_eq!(dev, UsbDevSpec::host(2, 8).on(0, Some(2)));
        assert_eq!(notes, ["hostaddr=010: xl reads a leading 0 as octal, so this is 8 (lsusb prints decimal)"]);
        let (dev, notes) = UsbDevSpec::from_xl("hostaddr=07,hostbus=3").unwrap();
        assert_eq!((dev, notes.len()), (UsbDevSpec { type_implied: true, ..UsbDevSpec::host(3, 7) }, 0));
        let (dev, _) = UsbDevSpec::from_xl("type=HOSTDEV,hostbus=1,hostaddr=2,controller=-1,port=0").unwrap();
        assert_eq!(dev, UsbDevSpec::host(1, 2));
        assert_eq!(UsbDevSpec::from_xl("").unwrap().0, UsbDevSpec { type_implied: true, ..UsbDevSpec::host(0, 0) });
        for (text, want) in [
            ("type=other", "only hostdev"),
            ("hostbus=1,speed=2", "unknown option `speed=2'"),
            ("hostbus=256", "hostbus=256: more than 255"),
            ("hostaddr=-1", "more than 255"),
            ("hostaddr=12abc", "hostaddr=12abc: not a number"),
            ("hostbus=", "not a number"),
            ("controller=x", "controller=x: not a number"),
            ("controller=-2", "must not be negative"),
            ("port=-2", "must not be negative"),
        ] {
            let e = UsbDevSpec::from_xl(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn usb_keys_read_for_every_guest_type_with_item_errors() {
        let spec = parse(
            "usbctrl = [ 'type=pv,version=2,ports=8', '' ]\nusbdev = [ 'hostbus=3,hostaddr=5,controller=1,port=3' ]",
        )
        .unwrap();
        assert_eq!(
            spec.usb_controllers,
            [UsbCtrlSpec { kind: UsbCtrlKind::Pv, version: Some(2), ports: Some(8) }, UsbCtrlSpec::default()]
        );
        assert_eq!(spec.usb_host_devices, [UsbDevSpec { type_implied: true, ..UsbDevSpec::host(3, 5).on(1, Some(3)) }]);
        let hvm = DomainSpec::from_xl_config_text(
            "h.cfg",
            "name = 'h'\ntype = 'hvm'\nusb = 1\nusbctrl = [ 'type=devicemodel' ]\n",
        )
        .unwrap();
        assert_eq!((hvm.usb, hvm.usb_controllers.len()), (Some(true), 1), "xl takes both");
        for (text, want) in [
            (
                "usbctrl = [ 'type=pv',\n            'type=bogus' ]",
                "u.cfg:4: usbctrl[1]: \"type=bogus\": type=bogus: expected",
            ),
            ("usbdev = [ 'hostbus=1,speed=2' ]", "u.cfg:3: usbdev[0]: \"hostbus=1,speed=2\": unknown option `speed=2'"),
            ("usbdev = [ 'hostbus=1,hostaddr=2,port=1' ]", "u.cfg:3: usbdev[0]: a port needs its controller"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{text}: {e}");
        }
        // A single value where xl wants a list: xl ignores it (with a warning), so do we.
        let spec = parse("usbctrl = 'type=pv'\nusbdev = 'hostbus=1,hostaddr=2'").unwrap();
        assert!(spec.usb_controllers.is_empty() && spec.usb_host_devices.is_empty());
    }

    #[test]
    fn libxl_gets_what_xl_gives() {
        let spec = parse(
            "usbctrl = [ 'type=devicemodel,version=3,ports=4', '' ]\n\
             usbdev = [ 'type=hostdev,hostbus=1,hostaddr=3,controller=0,port=1', 'hostbus=3,hostaddr=7' ]",
        )
        .unwrap();
        let j = json(&spec);
        // As `xl -N` prints them: controllers numbered by position, a device without
        // type=hostdev without its bus and address (libxl fills the type in later).
        assert_eq!(
            j["usbctrls"],
            serde_json::json!([{"type": "devicemodel", "devid": 0, "version": 3, "ports": 4}, {"devid": 1}])
        );
        assert_eq!(
            j["usbdevs"],
            serde_json::json!([{"ctrl": 0, "port": 1, "type.hostdev": {"hostbus": 1, "hostaddr": 3}}, {}])
        );
        let cfg = spec.to_libxl().unwrap();
        // SAFETY: two initialised devices.
        let devs = unsafe { std::slice::from_raw_parts(cfg.as_raw().usbdevs, 2) };
        // SAFETY: hostdev is the union's only member.
        let (bus, addr) = unsafe { (devs[1].u.hostdev.hostbus, devs[1].u.hostdev.hostaddr) };
        assert_eq!((devs[1].type_, devs[1].ctrl, bus, addr), (0, -1, 3, 7), "the device is still there for libxl");
    }

    #[test]
    fn round_trips_through_xl_config() {
        let mut spec = DomainSpec::hvm("u");
        spec.usb_controllers = vec![
            UsbCtrlSpec { kind: UsbCtrlKind::DeviceModel, version: Some(3), ports: Some(15) },
            UsbCtrlSpec::default(),
            UsbCtrlSpec::new(UsbCtrlKind::Qusb),
        ];
        spec.usb_host_devices = vec![
            UsbDevSpec::host(1, 10).on(0, Some(2)),
            UsbDevSpec::host(0, 255).on(2, None),
            UsbDevSpec { type_implied: true, ..UsbDevSpec::host(8, 9) },
        ];
        let text = spec.to_xl_config().unwrap();
        assert!(
            text.contains("usbctrl = [ \"type=devicemodel,version=3,ports=15\", \"\", \"type=qusb\" ]\n"),
            "{text}"
        );
        assert!(text.contains("\"type=hostdev,hostbus=1,hostaddr=10,controller=0,port=2\""), "{text}");
        assert_eq!(DomainSpec::from_xl_config_text("back.cfg", &text).unwrap(), spec);
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<DomainSpec>(&json).unwrap(), spec);
        assert!(json.contains("\"kind\":\"devicemodel\""), "{json}");
    }

    #[test]
    fn specs_from_rust_are_checked() {
        let mut spec = DomainSpec::pv("u").kernel("/k");
        spec.usb_host_devices.push(UsbDevSpec { port: Some(1), ..UsbDevSpec::host(1, 2) });
        let e = spec.validate().unwrap_err().to_string();
        assert_eq!(e, "invalid usb_host_devices[0].port \"\": a port needs its controller");
        spec.usb_host_devices[0].controller = Some(u32::MAX);
        assert!(spec.validate().unwrap_err().to_string().contains("too large"));
        spec.usb_host_devices.clear();
        spec.usb_controllers.push(UsbCtrlSpec { ports: Some(1 << 31), ..UsbCtrlSpec::default() });
        assert!(spec.validate().unwrap_err().to_string().starts_with("invalid usb_controllers[0].ports"));
        assert_eq!(UsbCtrlKind::from_xl("QUSB"), Some(UsbCtrlKind::Qusb));
    }
}
