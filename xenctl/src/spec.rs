//! [`DomainSpec`]: everything needed to create a guest, as plain Rust data with a builder, and
//! its validation. The conversion to libxl's `libxl_domain_config` is in `convert.rs` (and
//! `options.rs` for the platform, display and HVM extras); xl.cfg text in `xlcfg.rs` (out) and
//! `xlparse.rs` (in).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::devices::{DiskSpec, VifSpec, VncSpec};
use crate::devmodel::DeviceModelSpec;
use crate::error::{Error, Result};
use crate::options::{DisplaySpec, PlatformSpec};
use crate::pci::PciSpec;
use crate::pvdevices::{ChannelSpec, P9Spec, PvcallsSpec, VkbSpec, VtpmSpec};
use crate::pvmedia::{VdisplSpec, VsndSpec};
use crate::resources::HostResources;
use crate::tuning::TuningSpec;
use crate::types::{DomainKind, ShutdownAction};
use crate::usb::{UsbCtrlSpec, UsbDevSpec};
use crate::vfb::VfbSpec;
use crate::xlconf::HostDefaults;

/// The memory libxl gives a guest whose config states none, MiB (LIBXL_MEMKB_DEFAULT's
/// meaning in libxl__domain_build_info_setdefault).
pub(crate) const LIBXL_DEFAULT_MEMORY_MIB: u64 = 32;

/// How a guest keeps time (xl.cfg's `tsc_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TscMode {
    /// libxl's default: native unless that is unsafe, then emulated.
    #[default]
    Default,
    /// Always emulate the TSC.
    AlwaysEmulate,
    /// Never emulate (needed for PVH under QEMU's software emulation).
    Native,
    /// Native, with paravirtual time for PV guests.
    NativeParavirt,
}

impl TscMode {
    pub(crate) fn to_libxl(self) -> xen_sys::libxl_tsc_mode {
        match self {
            TscMode::Default => xen_sys::LIBXL_TSC_MODE_DEFAULT,
            TscMode::AlwaysEmulate => xen_sys::LIBXL_TSC_MODE_ALWAYS_EMULATE,
            TscMode::Native => xen_sys::LIBXL_TSC_MODE_NATIVE,
            TscMode::NativeParavirt => xen_sys::LIBXL_TSC_MODE_NATIVE_PARAVIRT,
        }
    }
}

/// A guest domain's configuration: what `xl create` reads from an xl.cfg file.
///
/// ```
/// use xenctl::{DiskSpec, DomainSpec, VifSpec};
/// let spec = DomainSpec::pv("web")
///     .memory_mib(256)
///     .vcpus(2)
///     .kernel("/var/lib/guests/vmlinux")
///     .ramdisk("/var/lib/guests/initrd.gz")
///     .cmdline("console=hvc0 root=/dev/xvda")
///     .disk(DiskSpec::new("/srv/web.img", "xvda"))
///     .vif(VifSpec::bridged("xenbr0"));
/// assert!(spec.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// The domain's name; unique on the host.
    pub name: String,
    /// The domain's UUID. [`DomainSpec::new`] makes a random one, as `xl` does.
    pub uuid: Uuid,
    /// PV, PVH or HVM.
    pub kind: DomainKind,
    /// Memory at boot, MiB.
    pub memory_mib: u64,
    /// Maximum memory (balloon ceiling), MiB; `memory_mib` when `None`.
    pub max_memory_mib: Option<u64>,
    /// The config leaves the start memory to libxl (an xl.cfg without `memory`): libxl starts
    /// the guest with its maximum, `max_memory_mib` or else libxl's default of 32 MiB, and, like
    /// xl's, our libxl config states no target (nor, without `max_memory_mib`, a maximum).
    /// Needs `memory_mib` to be that start value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub memory_unstated: bool,
    /// vCPUs online at boot.
    pub vcpus: u32,
    /// Maximum vCPUs (hotplug ceiling); `vcpus` when `None`.
    pub max_vcpus: Option<u32>,
    /// The config leaves the vCPU count to libxl (an xl.cfg without `vcpus`): one vCPU online
    /// by libxl's default, and, like xl's, our libxl config states neither the online set nor
    /// (without `max_vcpus`) the maximum. Needs `vcpus` = 1.
    #[serde(default)]
    pub vcpus_unstated: bool,
    /// Physical CPUs every vCPU may run on (hard affinity, xl's `cpus = "1,3"`); empty for any.
    pub cpus: Vec<u32>,
    /// Physical CPUs each vCPU may run on, vCPU by vCPU (xl's list form
    /// `cpus = [ "2", "3-5" ]`): vCPU i is pinned to entry i, vCPUs past the end are not
    /// pinned. Set this or `cpus`, not both.
    #[serde(default)]
    pub vcpu_cpus: Vec<Vec<u32>>,
    /// Guest kernel in dom0 (PV and PVH direct boot; optional for HVM).
    pub kernel: Option<String>,
    /// Initial ramdisk in dom0.
    pub ramdisk: Option<String>,
    /// Kernel command line.
    pub cmdline: Option<String>,
    /// Bootloader program run in dom0 to pick the kernel (PV and PVH), e.g. `pygrub`; libxl
    /// ignores it for HVM guests, as xl lets it.
    pub bootloader: Option<String>,
    /// Arguments for the bootloader.
    pub bootloader_args: Vec<String>,
    /// Disks, in order.
    pub disks: Vec<DiskSpec>,
    /// Network interfaces, in order; the n-th gets device id n unless it names its own.
    pub vifs: Vec<VifSpec>,
    /// PCI devices passed through.
    pub pcis: Vec<PciSpec>,
    /// Virtual channels (xl.cfg's `channel`), device ids by position.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<ChannelSpec>,
    /// Virtual TPMs (`vtpm`), device ids by position.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vtpms: Vec<VtpmSpec>,
    /// Filesystems shared over 9pfs (`p9`); libxl numbers them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p9s: Vec<P9Spec>,
    /// PV calls interfaces (`pvcalls`), device ids by position.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pvcalls: Vec<PvcallsSpec>,
    /// Virtual keyboards (`vkb`), numbered after the one a PV framebuffer brings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vkbs: Vec<VkbSpec>,
    /// Virtual displays (`vdispl`), device ids by position.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vdispls: Vec<VdisplSpec>,
    /// Virtual sound cards (`vsnd`), device ids by position.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vsnds: Vec<VsndSpec>,
    /// What the toolstack should do when the guest powers off.
    pub on_poweroff: ShutdownAction,
    /// ... when it reboots.
    pub on_reboot: ShutdownAction,
    /// ... when it crashes.
    pub on_crash: ShutdownAction,
    /// ... when its watchdog fires (xl's default: destroy).
    pub on_watchdog: ShutdownAction,
    /// ... when it asks for a soft reset (xl's default: soft-reset).
    pub on_soft_reset: ShutdownAction,
    /// HVM serial port backend, e.g. `pty` (PV and PVH guests always have a PV console).
    pub serial: Option<String>,
    /// HVM serial ports, one backend each (xl.cfg's list form `serial = [ "pty", ... ]`);
    /// use this or `serial`, not both.
    pub serial_ports: Vec<String>,
    /// HVM boot order, e.g. `cd` (disk, then CD-ROM).
    pub boot_order: Option<String>,
    /// A VNC console: an HVM guest's device model display, a PV/PVH guest's framebuffer.
    pub vnc: Option<VncSpec>,
    /// Virtual framebuffers, each with a keyboard (xl.cfg's `vfb` list), for any guest type;
    /// a PV/PVH guest sets its framebuffer here or in `vnc`, not both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vfbs: Vec<VfbSpec>,
    /// The rest of the display: SDL, keymap, graphics card, video memory.
    pub display: DisplaySpec,
    /// TSC (time stamp counter) mode.
    pub tsc_mode: TscMode,
    /// Scheduler weight relative to other domains (`cpu_weight`; credit schedulers: 1 to
    /// 65535, default 256); `None` for the scheduler's default.
    pub cpu_weight: Option<u32>,
    /// CPU cap in percent of one physical CPU (`cap`; 0 = none); `None` for the default.
    pub cpu_cap: Option<u32>,
    /// CPU pool, scheduler parameters, soft affinity, virtual NUMA, security labels, limits
    /// and Xen feature switches (see [`TuningSpec`]); libxl's defaults when unset.
    #[serde(default, skip_serializing_if = "TuningSpec::is_default")]
    pub tuning: TuningSpec,
    /// Platform and firmware knobs (ACPI, APIC, PAE, HAP, Viridian, BIOS, device model, ...).
    pub platform: PlatformSpec,
    /// An emulated USB controller (`usb`; HVM).
    pub usb: Option<bool>,
    /// The emulated USB controller's version, 1 to 3 (`usbversion`; HVM).
    pub usb_version: Option<u32>,
    /// An emulated USB device, e.g. `tablet` (`usbdevice = "tablet"`; HVM).
    pub usb_device: Option<String>,
    /// Emulated USB devices (the list form `usbdevice = [ ... ]`); this or `usb_device`.
    pub usb_devices: Vec<String>,
    /// Emulated sound hardware, e.g. `hda` (`soundhw`; HVM).
    pub soundhw: Option<String>,
    /// The device model: its binary, user, arguments, stub domain, and the HVM devices it
    /// emulates beyond the display (`device_model_override`, `hdtype`, ...).
    #[serde(default, skip_serializing_if = "DeviceModelSpec::is_default")]
    pub device_model: DeviceModelSpec,
    /// USB controllers (`usbctrl`); the n-th has id n. Not the emulated HVM bus of `usb`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usb_controllers: Vec<UsbCtrlSpec>,
    /// Host USB devices passed through (`usbdev`), each on one of `usb_controllers` or on
    /// one libxl picks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usb_host_devices: Vec<UsbDevSpec>,
    /// Host hardware the guest accesses directly: I/O ports, IRQs, I/O memory, reserved
    /// device memory, device-tree nodes.
    #[serde(default, skip_serializing_if = "HostResources::is_unset")]
    pub resources: HostResources,
    /// What xl takes from xl.conf for every domain (see [`DomainSpec::apply_xl_conf`]);
    /// unset: libxl's defaults.
    #[serde(default, skip_serializing_if = "HostDefaults::is_unset")]
    pub host_defaults: HostDefaults,
    /// The whole config as libxl JSON, used as it is instead of the fields above (which then
    /// only describe it: name, UUID, type, memory, vCPUs, shutdown actions). A domain received
    /// by migration from a host where no config file of it exists here comes with nothing else
    /// (see [`DomainSpec::from_libxl_json`]); creates then build it exactly as it ran there, as
    /// xl does on a migrated domain's reboot. Such a spec has no xl.cfg form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libxl_json: Option<String>,
}

impl DomainSpec {
    /// A spec with xl's defaults: 128 MiB, one vCPU, no devices, destroy on poweroff and crash,
    /// restart on reboot, and a random UUID.
    pub fn new(name: impl Into<String>, kind: DomainKind) -> DomainSpec {
        DomainSpec {
            name: name.into(),
            uuid: Uuid::new_v4(),
            kind,
            memory_mib: 128,
            max_memory_mib: None,
            memory_unstated: false,
            vcpus: 1,
            max_vcpus: None,
            vcpus_unstated: false,
            cpus: Vec::new(),
            vcpu_cpus: Vec::new(),
            kernel: None,
            ramdisk: None,
            cmdline: None,
            bootloader: None,
            bootloader_args: Vec::new(),
            disks: Vec::new(),
            vifs: Vec::new(),
            pcis: Vec::new(),
            channels: Vec::new(),
            vtpms: Vec::new(),
            p9s: Vec::new(),
            pvcalls: Vec::new(),
            vkbs: Vec::new(),
            vdispls: Vec::new(),
            vsnds: Vec::new(),
            on_poweroff: ShutdownAction::Destroy,
            on_reboot: ShutdownAction::Restart,
            on_crash: ShutdownAction::Destroy,
            on_watchdog: ShutdownAction::Destroy,
            on_soft_reset: ShutdownAction::SoftReset,
            serial: None,
            serial_ports: Vec::new(),
            boot_order: None,
            vnc: None,
            vfbs: Vec::new(),
            display: DisplaySpec::default(),
            tsc_mode: TscMode::Default,
            cpu_weight: None,
            cpu_cap: None,
            tuning: TuningSpec::default(),
            platform: PlatformSpec::default(),
            usb: None,
            usb_version: None,
            usb_device: None,
            usb_devices: Vec::new(),
            soundhw: None,
            device_model: DeviceModelSpec::default(),
            usb_controllers: Vec::new(),
            usb_host_devices: Vec::new(),
            resources: HostResources::default(),
            host_defaults: HostDefaults::default(),
            libxl_json: None,
        }
    }

    /// A PV guest; see [`DomainSpec::new`].
    pub fn pv(name: impl Into<String>) -> DomainSpec {
        DomainSpec::new(name, DomainKind::Pv)
    }

    /// A PVH guest; see [`DomainSpec::new`].
    pub fn pvh(name: impl Into<String>) -> DomainSpec {
        DomainSpec::new(name, DomainKind::Pvh)
    }

    /// An HVM guest; see [`DomainSpec::new`].
    pub fn hvm(name: impl Into<String>) -> DomainSpec {
        DomainSpec::new(name, DomainKind::Hvm)
    }

    /// Sets the UUID.
    pub fn uuid(mut self, uuid: Uuid) -> Self {
        self.uuid = uuid;
        self
    }
    /// Sets the boot memory, MiB.
    pub fn memory_mib(mut self, mib: u64) -> Self {
        self.memory_mib = mib;
        self
    }
    /// Sets the maximum memory, MiB.
    pub fn max_memory_mib(mut self, mib: u64) -> Self {
        self.max_memory_mib = Some(mib);
        self
    }
    /// Sets the vCPUs online at boot.
    pub fn vcpus(mut self, n: u32) -> Self {
        self.vcpus = n;
        self
    }
    /// Sets the maximum vCPUs.
    pub fn max_vcpus(mut self, n: u32) -> Self {
        self.max_vcpus = Some(n);
        self
    }
    /// Pins every vCPU to these physical CPUs.
    pub fn cpus(mut self, cpus: Vec<u32>) -> Self {
        self.cpus = cpus;
        self
    }
    /// Sets the kernel path.
    pub fn kernel(mut self, path: impl Into<String>) -> Self {
        self.kernel = Some(path.into());
        self
    }
    /// Sets the ramdisk path.
    pub fn ramdisk(mut self, path: impl Into<String>) -> Self {
        self.ramdisk = Some(path.into());
        self
    }
    /// Sets the kernel command line.
    pub fn cmdline(mut self, cmdline: impl Into<String>) -> Self {
        self.cmdline = Some(cmdline.into());
        self
    }
    /// Sets the bootloader and its arguments.
    pub fn bootloader(mut self, program: impl Into<String>, args: Vec<String>) -> Self {
        self.bootloader = Some(program.into());
        self.bootloader_args = args;
        self
    }
    /// Adds a disk.
    pub fn disk(mut self, disk: DiskSpec) -> Self {
        self.disks.push(disk);
        self
    }
    /// Adds a network interface.
    pub fn vif(mut self, vif: VifSpec) -> Self {
        self.vifs.push(vif);
        self
    }
    /// Adds a PCI device.
    pub fn pci(mut self, pci: impl Into<PciSpec>) -> Self {
        self.pcis.push(pci.into());
        self
    }
    /// Sets the poweroff, reboot and crash actions.
    pub fn on_shutdown(mut self, poweroff: ShutdownAction, reboot: ShutdownAction, crash: ShutdownAction) -> Self {
        self.on_poweroff = poweroff;
        self.on_reboot = reboot;
        self.on_crash = crash;
        self
    }
    /// Sets the HVM serial port.
    pub fn serial(mut self, serial: impl Into<String>) -> Self {
        self.serial = Some(serial.into());
        self
    }
    /// Adds a VNC console.
    pub fn vnc(mut self, vnc: VncSpec) -> Self {
        self.vnc = Some(vnc);
        self
    }
    /// Sets the TSC mode.
    pub fn tsc_mode(mut self, mode: TscMode) -> Self {
        self.tsc_mode = mode;
        self
    }

    /// The effective maximum memory, MiB.
    pub fn effective_max_memory_mib(&self) -> u64 {
        self.max_memory_mib.unwrap_or(self.memory_mib)
    }

    /// The per-vCPU pinning: entries for existing vCPUs only, each with CPUs to run on.
    fn validate_vcpu_cpus(&self, max_vcpus: u32) -> Result<()> {
        if self.vcpu_cpus.is_empty() {
            return Ok(());
        }
        if !self.cpus.is_empty() {
            return Err(Error::invalid("vcpu_cpus", "", "set cpus or vcpu_cpus, not both"));
        }
        if self.vcpu_cpus.len() > max_vcpus as usize {
            let n = self.vcpu_cpus.len().to_string();
            return Err(Error::invalid("vcpu_cpus", n, format!("more entries than vCPUs ({max_vcpus})")));
        }
        for (i, set) in self.vcpu_cpus.iter().enumerate() {
            if set.is_empty() {
                return Err(Error::invalid(format!("vcpu_cpus[{i}]"), "", "no CPU to run on"));
            }
            if let Some(&cpu) = set.iter().find(|&&c| c >= 4096) {
                return Err(Error::invalid(format!("vcpu_cpus[{i}]"), cpu.to_string(), "CPU numbers go up to 4095"));
            }
        }
        Ok(())
    }

    /// The effective maximum vCPUs.
    pub fn effective_max_vcpus(&self) -> u32 {
        self.max_vcpus.unwrap_or(self.vcpus)
    }

    /// Checks the spec for values libxl would reject late, misread or silently ignore.
    /// Every error names the field and value.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        if self.libxl_json.is_some() {
            // libxl parses and checks the JSON itself; the fields only describe it.
            return Ok(());
        }
        if self.memory_mib == 0 {
            return Err(Error::invalid("memory", "0", "a domain needs memory"));
        }
        // libxl keeps memory in KiB in a u64; stay far from overflow and from nonsense.
        const MAX_MIB: u64 = 1 << 32;
        if self.memory_mib > MAX_MIB {
            return Err(Error::invalid("memory", self.memory_mib.to_string(), "more than 4 PiB"));
        }
        let max_mem = self.effective_max_memory_mib();
        if max_mem < self.memory_mib || max_mem > MAX_MIB {
            return Err(Error::invalid(
                "maxmem",
                max_mem.to_string(),
                format!("must be at least memory ({} MiB) and at most 4 PiB", self.memory_mib),
            ));
        }
        if self.memory_unstated && self.memory_mib != self.max_memory_mib.unwrap_or(LIBXL_DEFAULT_MEMORY_MIB) {
            return Err(Error::invalid(
                "memory",
                self.memory_mib.to_string(),
                format!("unstated, so libxl's start value: maxmem, or {LIBXL_DEFAULT_MEMORY_MIB} MiB without one"),
            ));
        }
        if self.vcpus == 0 {
            return Err(Error::invalid("vcpus", "0", "a domain needs at least one vCPU"));
        }
        if self.vcpus_unstated && self.vcpus != 1 {
            return Err(Error::invalid("vcpus", self.vcpus.to_string(), "unstated, so libxl's default of 1"));
        }
        let max_vcpus = self.effective_max_vcpus();
        if max_vcpus < self.vcpus || max_vcpus > 4096 {
            return Err(Error::invalid(
                "maxvcpus",
                max_vcpus.to_string(),
                format!("must be at least vcpus ({}) and at most 4096", self.vcpus),
            ));
        }
        if let Some(&cpu) = self.cpus.iter().find(|&&c| c >= 4096) {
            return Err(Error::invalid("cpus", cpu.to_string(), "CPU numbers go up to 4095"));
        }
        self.validate_vcpu_cpus(max_vcpus)?;
        match self.kind {
            DomainKind::Pv if self.kernel.is_none() && self.bootloader.is_none() => {
                return Err(Error::invalid("kernel", "", "a PV guest needs a kernel or a bootloader"));
            }
            DomainKind::Pvh if self.kernel.is_none() => {
                return Err(Error::invalid(
                    "kernel",
                    "",
                    "a PVH guest needs a kernel (e.g. pvgrub or the guest's own)",
                ));
            }
            _ => {}
        }
        if self.ramdisk.is_some() && self.kernel.is_none() {
            return Err(Error::invalid(
                "ramdisk",
                self.ramdisk.clone().unwrap_or_default(),
                "a ramdisk needs a kernel",
            ));
        }
        if self.kind != DomainKind::Hvm {
            if let Some(serial) = &self.serial {
                return Err(Error::invalid(
                    "serial",
                    serial,
                    "serial applies to HVM guests; PV and PVH guests always have a PV console",
                ));
            }
            if let Some(boot) = &self.boot_order {
                return Err(Error::invalid("boot", boot, "a boot order applies to HVM guests only"));
            }
        }
        let mut vdevs = HashSet::new();
        for (i, disk) in self.disks.iter().enumerate() {
            let field = format!("disks[{i}]");
            disk.validate(&field)?;
            if !vdevs.insert(disk.vdev.as_str()) {
                return Err(Error::invalid(format!("{field}.vdev"), &disk.vdev, "used by an earlier disk"));
            }
        }
        let mut macs = HashSet::new();
        for (i, vif) in self.vifs.iter().enumerate() {
            let Some(mac) = vif.mac else { continue };
            if mac.0[0] & 1 == 1 {
                // As `Mac::from_str` says; a Mac built from bytes was not checked.
                return Err(Error::invalid(
                    format!("vifs[{i}].mac"),
                    mac.to_string(),
                    "a multicast address cannot name an interface",
                ));
            }
            if !macs.insert(mac) {
                return Err(Error::invalid(format!("vifs[{i}].mac"), mac.to_string(), "used by an earlier vif"));
            }
        }
        let mut bdfs = HashSet::new();
        for (i, pci) in self.pcis.iter().enumerate() {
            if !bdfs.insert(pci.bdf) {
                return Err(Error::invalid(format!("pcis[{i}]"), pci.bdf.to_string(), "listed twice"));
            }
        }
        let mut devids = HashSet::new();
        for (i, vif) in self.vifs.iter().enumerate() {
            if let Some(devid) = vif.devid
                && !devids.insert(devid)
            {
                return Err(Error::invalid(format!("vifs[{i}].devid"), devid.to_string(), "used by an earlier vif"));
            }
        }
        self.host_defaults.validate()?;
        self.validate_extras()?;
        self.validate_usb()?;
        self.resources.validate(self.kind)?;
        self.validate_pv_devices()?;
        self.validate_vfbs()?;
        self.validate_tuning()?;
        self.validate_options()
    }
}

/// Names end up in xenstore values, file names (console and device-model logs) and `xl`
/// command lines, so keep them printable, without `/`, and not all digits (xl would read a
/// numeric name as a domain id).
fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "a domain needs a name"
    } else if name.len() > 128 {
        "longer than 128 bytes"
    } else if name.chars().any(|c| c.is_control() || c == '/') {
        "contains '/' or a control character"
    } else if name.bytes().all(|b| b.is_ascii_digit()) {
        "all digits (tools would read it as a domain id)"
    } else if name.starts_with('-') {
        "starts with '-'"
    } else if name == "." || name == ".." {
        "is '.' or '..' (tools use the name as a file name)"
    } else {
        return Ok(());
    };
    Err(Error::invalid("name", name, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::Bdf;

    fn good() -> DomainSpec {
        DomainSpec::pv("guest").kernel("/k")
    }

    fn err_of(spec: DomainSpec) -> String {
        spec.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_xls() {
        let s = good();
        assert_eq!((s.memory_mib, s.vcpus, s.effective_max_memory_mib(), s.effective_max_vcpus()), (128, 1, 128, 1));
        assert_eq!(
            (s.on_poweroff, s.on_reboot, s.on_crash),
            (ShutdownAction::Destroy, ShutdownAction::Restart, ShutdownAction::Destroy)
        );
        assert!(!s.uuid.is_nil());
        assert_ne!(s.uuid, good().uuid);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn names_are_checked() {
        for (name, want) in [
            ("", "needs a name"),
            ("a/b", "'/'"),
            ("a\nb", "control"),
            ("123", "all digits"),
            ("-x", "'-'"),
            (".", "'.' or '..'"),
            ("..", "'.' or '..'"),
        ] {
            let e = err_of(DomainSpec::pv(name).kernel("/k"));
            assert!(e.starts_with(&format!("invalid name {name:?}")) && e.contains(want), "{e}");
        }
        assert!(DomainSpec::pv("web-01.example").kernel("/k").validate().is_ok());
    }

    #[test]
    fn sizes_are_checked() {
        assert_eq!(err_of(good().memory_mib(0)), "invalid memory \"0\": a domain needs memory");
        assert!(err_of(good().memory_mib(256).max_memory_mib(128)).starts_with("invalid maxmem \"128\""));
        assert_eq!(err_of(good().vcpus(0)), "invalid vcpus \"0\": a domain needs at least one vCPU");
        assert!(err_of(good().vcpus(4).max_vcpus(2)).starts_with("invalid maxvcpus \"2\""));
        assert!(good().memory_mib(256).max_memory_mib(512).vcpus(2).max_vcpus(4).validate().is_ok());
    }

    #[test]
    fn unstated_memory_is_libxls_start_value() {
        let mut s = DomainSpec::pv("g").kernel("/k").memory_mib(32);
        s.memory_unstated = true;
        assert!(s.validate().is_ok());
        s.memory_mib = 64;
        assert!(err_of(s.clone()).starts_with("invalid memory \"64\": unstated"));
        s.max_memory_mib = Some(64);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn kind_specific_rules() {
        assert!(err_of(DomainSpec::pv("g")).contains("needs a kernel or a bootloader"));
        assert!(DomainSpec::pv("g").bootloader("pygrub", vec![]).validate().is_ok());
        assert!(err_of(DomainSpec::pvh("g")).contains("PVH guest needs a kernel"));
        assert!(DomainSpec::hvm("g").validate().is_ok());
        // libxl ignores a bootloader for HVM; xl lets a file give one.
        assert!(DomainSpec::hvm("g").bootloader("pygrub", vec![]).validate().is_ok());
        assert!(err_of(good().serial("pty")).starts_with("invalid serial \"pty\""));
        assert!(DomainSpec::hvm("g").serial("pty").validate().is_ok());
        assert!(err_of(DomainSpec::pv("g").bootloader("pygrub", vec![]).ramdisk("/r")).contains("needs a kernel"));
    }

    /// A spec with every field set, away from its default.
    fn everything() -> DomainSpec {
        use crate::devices::{DiskBackend, DiskFormat, NicType};
        use crate::options::{BiosKind, DeviceModelVersion, TimerMode, VgaKind};
        let mut s = DomainSpec::hvm("all")
            .memory_mib(512)
            .max_memory_mib(1024)
            .vcpus(2)
            .max_vcpus(4)
            .cpus(vec![1, 3])
            .kernel("/k")
            .ramdisk("/r")
            .cmdline("console=ttyS0")
            .bootloader("pygrub", vec!["-q".into()])
            .disk(DiskSpec {
                format: DiskFormat::Qcow2,
                backend: DiskBackend::Qdisk,
                readonly: true,
                cdrom: true,
                script: Some("block-x".into()),
                backend_domain: Some("stor".into()),
                direct_io_safe: true,
                discard: Some(false),
                ..DiskSpec::new("/srv/a.qcow2", "hda")
            })
            .disk(DiskSpec { target: None, format: DiskFormat::Empty, ..DiskSpec::new("", "hdc") })
            .vif(VifSpec {
                bridge: Some("xenbr0".into()),
                mac: Some("00:16:3e:01:02:03".parse().unwrap()),
                vifname: Some("v0".into()),
                script: Some("vif-bridge".into()),
                rate: Some("10Mb/s".into()),
                model: Some("e1000".into()),
                ip: Some("10.0.0.2".into()),
                mtu: Some(9000),
                backend_domain: Some("net".into()),
                nic_type: Some(NicType::Ioemu),
                gatewaydev: Some("eth0".into()),
                devid: Some(3),
                trusted: Some(false),
            })
            .pci(PciSpec { permissive: true, seize: true, msitranslate: true, power_mgmt: true, ..PciSpec::new(bdf()) })
            .on_shutdown(ShutdownAction::Preserve, ShutdownAction::RestartRename, ShutdownAction::CoredumpRestart)
            .serial("pty")
            .vnc(VncSpec {
                listen: Some("0.0.0.0".into()),
                display: Some(2),
                password: Some("pw".into()),
                find_unused: Some(true),
                enable_by_default: false,
            })
            .tsc_mode(TscMode::NativeParavirt);
        s.on_watchdog = ShutdownAction::CoredumpDestroy;
        s.on_soft_reset = ShutdownAction::Restart;
        s.serial_ports = vec!["pty".into(), "/dev/ttyS1".into()];
        s.boot_order = Some("dc".into());
        s.display = DisplaySpec {
            vnc_disabled: true,
            sdl: Some(true),
            opengl: Some(false),
            keymap: Some("de".into()),
            vga: Some(VgaKind::Off),
            video_memory_mib: Some(16),
            nographic: Some(false),
            sdl_display: Some(":0".into()),
            xauthority: Some("/root/.Xauthority".into()),
            spice: crate::spice::SpiceSpec {
                enable: Some(true),
                port: Some(6000),
                tls_port: Some(-1),
                host: Some("::".into()),
                disable_ticketing: Some(false),
                password: Some("pw".into()),
                agent_mouse: Some(true),
                vdagent: Some(false),
                clipboard_sharing: Some(true),
                usb_redirection: Some(2),
                image_compression: Some("auto_glz".into()),
                streaming_video: Some("all".into()),
            },
        };
        s.cpu_weight = Some(512);
        s.cpu_cap = Some(50);
        s.tuning = everything_tuned();
        s.platform = PlatformSpec {
            acpi: Some(true),
            viridian_enlightenments: Vec::new(),
            apic: Some(false),
            pae: Some(true),
            hap: Some(false),
            nested_hvm: Some(true),
            viridian: Some(true),
            hpet: Some(false),
            xen_platform_pci: Some(true),
            localtime: Some(true),
            e820_host: Some(false),
            bios: Some(BiosKind::Ovmf),
            device_model_version: Some(DeviceModelVersion::QemuXenTraditional),
            acpi_s3: Some(false),
            acpi_s4: Some(true),
            rtc_timeoffset: Some(-3600),
            shadow_memory_mib: Some(8),
            disable_migrate: Some(true),
            timer_mode: Some(TimerMode::OneMissedTickPending),
            max_grant_frames: Some(64),
            cpuid: Some(crate::cpuid::CpuidPolicy::Xend(vec!["0x1:ecx=x".into()])),
            altp2m: Some(crate::extras::Altp2mMode::Limited),
            altp2m_hvm: Some(false),
            msr_relaxed: Some(true),
            nx: Some(false),
            acpi_laptop_slate: Some(true),
            vpt_align: Some(true),
            mmio_hole_mib: Some(512),
            mca_lmce: true,
            firmware_path: Some("/fw".into()),
            system_firmware: Some("/sys".into()),
            smbios_firmware: Some("/smbios".into()),
            acpi_firmware: Some("/acpi".into()),
            generate_vm_genid: true,
        };
        s.usb = Some(true);
        s.usb_version = Some(3);
        s.usb_device = Some("tablet".into());
        s.usb_devices = vec!["mouse".into()];
        s.soundhw = Some("hda".into());
        s.device_model = DeviceModelSpec {
            path: Some("/q".into()),
            user: Some("qemu".into()),
            restrict: Some(true),
            args: vec!["-a".into()],
            args_pv: vec!["-p".into()],
            args_hvm: vec!["-h".into()],
            stubdomain: Some(true),
            stubdomain_seclabel: Some("system_u:system_r:dm_dom_t".into()),
            stubdomain_kernel: Some("/k".into()),
            stubdomain_cmdline: Some("c".into()),
            stubdomain_ramdisk: Some("/r".into()),
            stubdomain_memory_mib: Some(64),
            hdtype: Some(crate::devmodel::HdType::Ahci),
            vendor_device: Some(crate::devmodel::VendorDevice::Xenserver),
            gfx_passthru: Some(crate::devmodel::GfxPassthru::Igd),
            vkb_device: Some(false),
        };
        s.usb_controllers =
            vec![UsbCtrlSpec { kind: crate::usb::UsbCtrlKind::DeviceModel, version: Some(3), ports: Some(4) }];
        s.usb_host_devices =
            vec![UsbDevSpec::host(1, 3).on(0, Some(1)), UsbDevSpec { type_implied: true, ..UsbDevSpec::host(2, 4) }];
        s.resources = HostResources {
            ioports: vec![crate::resources::IoportRange::new(0x2f8, 0x2ff)],
            irqs: vec![3],
            iomem: vec![crate::resources::IomemRange { start: 0xfed00, pages: 1, gfn: Some(0xc0000) }],
            rdm: Some(crate::resources::RdmSpec {
                strategy: crate::resources::RdmStrategy::Host,
                policy: Some(crate::resources::RdmPolicy::Relaxed),
            }),
            rdm_mem_boundary_mib: Some(4096),
            dtdevs: vec!["/soc/serial@1c090000".into()],
            device_tree: Some("/boot/pass.dtb".into()),
        };
        s.host_defaults = HostDefaults {
            run_hotplug_scripts: Some(false),
            claim_mode: Some(true),
            max_maptrack_frames: Some(1024),
            max_grant_version: Some(1),
            blkdev_start: Some("xvdz".into()),
        };
        s
    }

    /// Every tuning field set, consistent with `everything()`'s 1 GiB and 4 vCPUs.
    fn everything_tuned() -> TuningSpec {
        use crate::tuning::{ArmSpec, GicVersion, Passthrough, SchedParams, SoftAffinity, TeeType, VuartType};
        use crate::vnuma::VnumaNode;
        TuningSpec {
            pool: Some("rt-pool".into()),
            sched: SchedParams { period: Some(10000), slice: Some(5), latency: Some(-1), extratime: Some(1) },
            soft_affinity: Some(SoftAffinity::PerVcpu(vec![vec![0], vec![1, 2]])),
            vnuma: vec![
                VnumaNode { size_mib: 512, pnode: Some(0), vcpus: vec![0, 1], distances: vec![10, 20] },
                VnumaNode { size_mib: 512, pnode: None, vcpus: vec![2, 3], distances: Vec::new() },
            ],
            init_seclabel: Some("system_u:system_r:build_t".into()),
            seclabel: Some("system_u:system_r:domU_t".into()),
            max_event_channels: Some(2047),
            max_maptrack_frames: Some(2048),
            max_grant_version: Some(1),
            vmtrace_buf_kb: Some(64),
            oos: Some(false),
            vpmu: Some(true),
            driver_domain: Some(true),
            xend_suspend_evtchn_compat: Some(false),
            passthrough: Some(Passthrough::SyncPt),
            pvshim: Default::default(),
            arm: ArmSpec {
                gic_version: Some(GicVersion::V2),
                vuart: Some(VuartType::SbsaUart),
                tee: Some(TeeType::Optee),
            },
        }
    }

    fn bdf() -> Bdf {
        "0000:03:00.1".parse().unwrap()
    }

    fn json_round_trip(spec: &DomainSpec) -> DomainSpec {
        let json = serde_json::to_string_pretty(spec).unwrap();
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}\n{json}"))
    }

    #[test]
    fn specs_round_trip_through_json() {
        let all = everything();
        assert_eq!(json_round_trip(&all), all);
        let minimal = good();
        assert_eq!(json_round_trip(&minimal), minimal);
        // Addresses are written as people and xl write them.
        let json = serde_json::to_value(&all).unwrap();
        assert_eq!(json["vifs"][0]["mac"], "00:16:3e:01:02:03");
        assert_eq!(json["pcis"][0]["bdf"], "0000:03:00.1");
        assert_eq!(json["uuid"], all.uuid.to_string());
    }

    #[test]
    fn enums_are_written_as_their_xl_words() {
        use crate::devices::{DiskBackend, DiskFormat, NicType};
        use crate::options::{BiosKind, DeviceModelVersion, TimerMode, VgaKind};
        fn word<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: T) -> String {
            let json = serde_json::to_value(&v).unwrap();
            assert_eq!(serde_json::from_value::<T>(json.clone()).unwrap(), v);
            json.as_str().unwrap().to_string()
        }
        for a in [
            ShutdownAction::Destroy,
            ShutdownAction::Restart,
            ShutdownAction::RestartRename,
            ShutdownAction::Preserve,
            ShutdownAction::CoredumpDestroy,
            ShutdownAction::CoredumpRestart,
            ShutdownAction::SoftReset,
        ] {
            assert_eq!(word(a), a.as_str());
        }
        for k in [DomainKind::Pv, DomainKind::Pvh, DomainKind::Hvm] {
            assert_eq!(word(k), k.as_str());
        }
        use DiskFormat::{Empty, Qcow, Qcow2, Qed, Raw, Vhd};
        for f in [Raw, Qcow, Qcow2, Vhd, Qed, Empty] {
            assert_eq!(word(f), f.as_str());
        }
        for t in [NicType::Vif, NicType::Ioemu] {
            assert_eq!(word(t), t.as_str());
        }
        for b in [BiosKind::Rombios, BiosKind::Seabios, BiosKind::Ovmf] {
            assert_eq!(word(b), b.as_str());
        }
        for v in [DeviceModelVersion::QemuXen, DeviceModelVersion::QemuXenTraditional] {
            assert_eq!(word(v), v.as_str());
        }
        for v in [VgaKind::Std, VgaKind::Cirrus, VgaKind::Qxl, VgaKind::Off] {
            assert_eq!(word(v), v.as_str());
        }
        for t in [
            TimerMode::DelayForMissedTicks,
            TimerMode::NoDelayForMissedTicks,
            TimerMode::NoMissedTicksPending,
            TimerMode::OneMissedTickPending,
        ] {
            assert_eq!(word(t), t.as_str());
        }
        let tsc = [TscMode::Default, TscMode::AlwaysEmulate, TscMode::Native, TscMode::NativeParavirt];
        assert_eq!(tsc.map(word), ["default", "always_emulate", "native", "native_paravirt"]);
        let backends =
            [DiskBackend::Auto, DiskBackend::Phy, DiskBackend::Tap, DiskBackend::Qdisk, DiskBackend::Standalone];
        assert_eq!(backends.map(word), ["auto", "phy", "tap", "qdisk", "standalone"]);
    }

    #[test]
    fn json_input_is_checked() {
        let mut json = serde_json::to_value(good()).unwrap();
        json["memroy"] = 5.into();
        let e = serde_json::from_value::<DomainSpec>(json).unwrap_err().to_string();
        assert!(e.contains("unknown field `memroy`"), "{e}");
        let mut multicast = VifSpec::bridged("b");
        multicast.mac = Some(crate::devices::Mac([1, 0, 0x5e, 0, 0, 1]));
        let e = good().vif(multicast).validate().unwrap_err().to_string();
        assert_eq!(e, "invalid vifs[0].mac \"01:00:5e:00:00:01\": a multicast address cannot name an interface");
        let mut json = serde_json::to_value(good().vif(VifSpec::bridged("b"))).unwrap();
        json["vifs"][0]["mac"] = "01:00:5e:00:00:01".into();
        let e = serde_json::from_value::<DomainSpec>(json).unwrap_err().to_string();
        assert!(e.contains("multicast"), "{e}");
        let mut json = serde_json::to_value(good().pci(bdf())).unwrap();
        json["pcis"][0]["bdf"] = "0000:03:20.0".into();
        let e = serde_json::from_value::<DomainSpec>(json).unwrap_err().to_string();
        assert!(e.contains("device must be at most 1f"), "{e}");
    }

    #[test]
    fn devices_are_checked_for_duplicates() {
        let d = || DiskSpec::new("/a", "xvda");
        assert!(err_of(good().disk(d()).disk(d())).starts_with("invalid disks[1].vdev \"xvda\""));
        let mac = "00:16:3e:00:00:01".parse().unwrap();
        let vif = VifSpec { mac: Some(mac), ..VifSpec::default() };
        assert!(err_of(good().vif(vif.clone()).vif(vif)).starts_with("invalid vifs[1].mac"));
        let bdf: Bdf = "0000:00:02.0".parse().unwrap();
        assert!(err_of(good().pci(bdf).pci(bdf)).starts_with("invalid pcis[1]"));
    }
}
