//! The guest options beyond memory, CPUs, boot and devices: platform and firmware knobs
//! ([`PlatformSpec`]), the display ([`DisplaySpec`]) and their xl.cfg words, how they and the
//! other xl.cfg-level fields of a [`DomainSpec`] (HVM serial lists, USB, sound, scheduler
//! weight, watchdog and soft-reset actions) fill libxl's config, and their validation.
//!
//! Every `Option` here is `None` by default, meaning "libxl's default": such a field is left
//! untouched in the libxl struct, exactly as `xl` leaves a key the file does not set.

use serde::{Deserialize, Serialize};

use crate::convert::fill_string_list;
use crate::cpuid::CpuidPolicy;
use crate::devices::set_defbool;
use crate::error::{Error, Result};
use crate::extras::Altp2mMode;
use crate::raw;
use crate::spec::DomainSpec;
use crate::spice::SpiceSpec;
use crate::types::DomainKind;

/// HVM firmware (xl.cfg's `bios`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BiosKind {
    /// The legacy ROMBIOS (qemu-xen-traditional only).
    Rombios,
    /// SeaBIOS, libxl's default with qemu-xen.
    Seabios,
    /// OVMF (UEFI).
    Ovmf,
}

impl BiosKind {
    /// The xl.cfg word.
    pub fn as_str(self) -> &'static str {
        match self {
            BiosKind::Rombios => "rombios",
            BiosKind::Seabios => "seabios",
            BiosKind::Ovmf => "ovmf",
        }
    }

    /// Parses the xl.cfg word; libxl compares these case-insensitively.
    pub fn from_xl(word: &str) -> Option<BiosKind> {
        [BiosKind::Rombios, BiosKind::Seabios, BiosKind::Ovmf]
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(word))
    }

    fn to_libxl(self) -> xen_sys::libxl_bios_type {
        match self {
            BiosKind::Rombios => xen_sys::LIBXL_BIOS_TYPE_ROMBIOS,
            BiosKind::Seabios => xen_sys::LIBXL_BIOS_TYPE_SEABIOS,
            BiosKind::Ovmf => xen_sys::LIBXL_BIOS_TYPE_OVMF,
        }
    }
}

/// Which QEMU serves as device model (xl.cfg's `device_model_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceModelVersion {
    /// Upstream QEMU (`qemu-xen`), libxl's default.
    QemuXen,
    /// The old Xen fork of QEMU (`qemu-xen-traditional`).
    QemuXenTraditional,
}

impl DeviceModelVersion {
    /// The xl.cfg word.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceModelVersion::QemuXen => "qemu-xen",
            DeviceModelVersion::QemuXenTraditional => "qemu-xen-traditional",
        }
    }

    /// Parses the xl.cfg word (xl compares exactly).
    pub fn from_xl(word: &str) -> Option<DeviceModelVersion> {
        [DeviceModelVersion::QemuXen, DeviceModelVersion::QemuXenTraditional].into_iter().find(|v| v.as_str() == word)
    }

    fn to_libxl(self) -> xen_sys::libxl_device_model_version {
        match self {
            DeviceModelVersion::QemuXen => xen_sys::LIBXL_DEVICE_MODEL_VERSION_QEMU_XEN,
            DeviceModelVersion::QemuXenTraditional => xen_sys::LIBXL_DEVICE_MODEL_VERSION_QEMU_XEN_TRADITIONAL,
        }
    }
}

/// The emulated graphics card of an HVM guest (xl.cfg's `vga`, or `stdvga`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VgaKind {
    /// Standard VGA with VESA extensions (`stdvga`).
    #[serde(rename = "stdvga")]
    Std,
    /// Cirrus Logic GD5446.
    Cirrus,
    /// QXL (SPICE's paravirtual card).
    Qxl,
    /// No graphics card (`none`).
    #[serde(rename = "none")]
    Off,
}

impl VgaKind {
    /// The xl.cfg `vga` word.
    pub fn as_str(self) -> &'static str {
        match self {
            VgaKind::Std => "stdvga",
            VgaKind::Cirrus => "cirrus",
            VgaKind::Qxl => "qxl",
            VgaKind::Off => "none",
        }
    }

    /// Parses the xl.cfg `vga` word (xl compares exactly).
    pub fn from_xl(word: &str) -> Option<VgaKind> {
        [VgaKind::Std, VgaKind::Cirrus, VgaKind::Qxl, VgaKind::Off].into_iter().find(|v| v.as_str() == word)
    }

    fn to_libxl(self) -> xen_sys::libxl_vga_interface_type {
        match self {
            VgaKind::Std => xen_sys::LIBXL_VGA_INTERFACE_TYPE_STD,
            VgaKind::Cirrus => xen_sys::LIBXL_VGA_INTERFACE_TYPE_CIRRUS,
            VgaKind::Qxl => xen_sys::LIBXL_VGA_INTERFACE_TYPE_QXL,
            VgaKind::Off => xen_sys::LIBXL_VGA_INTERFACE_TYPE_NONE,
        }
    }
}

/// How a guest's virtual timers make up for ticks it missed while not running (xl.cfg's
/// `timer_mode`; HVM and PVH guests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerMode {
    /// Ticks are delivered late, one by one (`delay_for_missed_ticks`).
    DelayForMissedTicks,
    /// Missed ticks are delivered at once, time jumps (`no_delay_for_missed_ticks`, libxl's
    /// default).
    NoDelayForMissedTicks,
    /// One tick at most is pending, the others are dropped (`no_missed_ticks_pending`).
    NoMissedTicksPending,
    /// One missed tick is delivered, then time catches up (`one_missed_tick_pending`).
    OneMissedTickPending,
}

impl TimerMode {
    const ALL: [TimerMode; 4] = [
        TimerMode::DelayForMissedTicks,
        TimerMode::NoDelayForMissedTicks,
        TimerMode::NoMissedTicksPending,
        TimerMode::OneMissedTickPending,
    ];

    /// The xl.cfg word.
    pub fn as_str(self) -> &'static str {
        match self {
            TimerMode::DelayForMissedTicks => "delay_for_missed_ticks",
            TimerMode::NoDelayForMissedTicks => "no_delay_for_missed_ticks",
            TimerMode::NoMissedTicksPending => "no_missed_ticks_pending",
            TimerMode::OneMissedTickPending => "one_missed_tick_pending",
        }
    }

    /// Parses the xl.cfg word (libxl compares case-insensitively) or the deprecated number 0-3.
    pub fn from_xl(word: &str) -> Option<TimerMode> {
        match word.parse::<usize>() {
            Ok(n) => Self::ALL.get(n).copied(),
            Err(_) => Self::ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(word)),
        }
    }

    fn to_libxl(self) -> xen_sys::libxl_timer_mode {
        match self {
            TimerMode::DelayForMissedTicks => xen_sys::LIBXL_TIMER_MODE_DELAY_FOR_MISSED_TICKS,
            TimerMode::NoDelayForMissedTicks => xen_sys::LIBXL_TIMER_MODE_NO_DELAY_FOR_MISSED_TICKS,
            TimerMode::NoMissedTicksPending => xen_sys::LIBXL_TIMER_MODE_NO_MISSED_TICKS_PENDING,
            TimerMode::OneMissedTickPending => xen_sys::LIBXL_TIMER_MODE_ONE_MISSED_TICK_PENDING,
        }
    }
}

/// Platform, firmware and virtualisation knobs. `None` everywhere is libxl's default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSpec {
    /// Expose ACPI firmware tables (`acpi`; HVM and PVH).
    pub acpi: Option<bool>,
    /// Emulate local APICs (`apic`; HVM).
    pub apic: Option<bool>,
    /// Physical address extension (`pae`; HVM).
    pub pae: Option<bool>,
    /// Hardware-assisted paging (`hap`).
    pub hap: Option<bool>,
    /// Let the guest run its own hypervisor (`nestedhvm`).
    pub nested_hvm: Option<bool>,
    /// Hyper-V enlightenments for Windows (`viridian` as a boolean; HVM).
    pub viridian: Option<bool>,
    /// The list form `viridian = [ "base", "!freq", ... ]` (HVM), applied in order as xl
    /// does: libxl's enlightenment names to enable, `!NAME` to disable, `all` for every
    /// one, `defaults` for libxl's default set. Set this or `viridian`, not both.
    #[serde(default)]
    pub viridian_enlightenments: Vec<String>,
    /// An emulated HPET (`hpet`; HVM).
    pub hpet: Option<bool>,
    /// The Xen platform PCI device PV drivers look for (`xen_platform_pci`; HVM).
    pub xen_platform_pci: Option<bool>,
    /// The emulated RTC keeps local time rather than UTC (`localtime`).
    pub localtime: Option<bool>,
    /// Give a PV guest the host's memory map (`e820_host`; PV). `None` with PCI devices on a PV
    /// guest means on, as `xl` forces it.
    pub e820_host: Option<bool>,
    /// HVM firmware (`bios`).
    pub bios: Option<BiosKind>,
    /// The device model (`device_model_version`).
    pub device_model_version: Option<DeviceModelVersion>,
    /// Offer ACPI S3, suspend to RAM (`acpi_s3`; HVM).
    pub acpi_s3: Option<bool>,
    /// Offer ACPI S4, suspend to disk (`acpi_s4`; HVM).
    pub acpi_s4: Option<bool>,
    /// Seconds the guest's clock runs ahead of dom0's, negative for behind (`rtc_timeoffset`).
    pub rtc_timeoffset: Option<i32>,
    /// Memory for shadow page tables, MiB (`shadow_memory`); libxl sizes it when `None`.
    pub shadow_memory_mib: Option<u64>,
    /// The guest may not be migrated, which lets it see an invariant TSC (`nomigrate`).
    pub disable_migrate: Option<bool>,
    /// How virtual timers make up for missed ticks (`timer_mode`; HVM and PVH).
    pub timer_mode: Option<TimerMode>,
    /// Most grant-table frames the guest may use (`max_grant_frames`); the host's default
    /// (xl.conf's, or Xen's) when `None`.
    pub max_grant_frames: Option<u32>,
    /// The guest's CPUID and MSR feature policy (`cpuid`), as xl.cfg gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuid: Option<CpuidPolicy>,
    /// Alternate p2m (`altp2m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altp2m: Option<Altp2mMode>,
    /// The deprecated HVM boolean for alternate p2m (`altp2mhvm`; HVM); libxl refuses it
    /// together with `altp2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altp2m_hvm: Option<bool>,
    /// Let the guest read and write MSRs Xen does not handle, instead of faulting
    /// (`msr_relaxed`; deprecated by Xen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msr_relaxed: Option<bool>,
    /// Show the guest the no-execute bit (`nx`; HVM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nx: Option<bool>,
    /// An ACPI laptop/slate switch device (`acpi_laptop_slate`; HVM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acpi_laptop_slate: Option<bool>,
    /// Align virtual platform timer interrupts (`vpt_align`; HVM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpt_align: Option<bool>,
    /// The MMIO hole below 4 GiB, MiB, 256 to 3840 (`mmio_hole`; HVM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mmio_hole_mib: Option<u64>,
    /// Offer local machine check exceptions (`mca_caps = [ "lmce" ]`; HVM).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mca_lmce: bool,
    /// Firmware to load instead of libxl's hvmloader (`firmware_override`, or `firmware` with
    /// a path; HVM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_path: Option<String>,
    /// The BIOS image hvmloader loads instead of its own (`bios_path_override`; HVM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_firmware: Option<String>,
    /// Extra SMBIOS tables for hvmloader, a file (`smbios_firmware`; HVM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smbios_firmware: Option<String>,
    /// Extra ACPI tables for hvmloader, a file (`acpi_firmware`; HVM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acpi_firmware: Option<String>,
    /// Give the guest a fresh Microsoft VM Generation ID each time it is built
    /// (`ms_vm_genid = "generate"`; HVM).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generate_vm_genid: bool,
}

/// The guest's display and keyboard beyond the VNC server itself ([`DomainSpec::vnc`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplaySpec {
    /// `vnc = 0` for an HVM guest: no VNC server, where libxl would otherwise start one.
    /// [`DomainSpec::vnc`] may still hold settings (`vnclisten`, ... left in a config with
    /// `vnc = 0`): xl hands them to libxl with the server off, and they do nothing.
    pub vnc_disabled: bool,
    /// An SDL window in dom0 (`sdl`; HVM, or PV/PVH with VNC, on the same framebuffer).
    pub sdl: Option<bool>,
    /// OpenGL for the SDL window (`opengl`).
    pub opengl: Option<bool>,
    /// Keyboard layout of the VNC/SDL display (`keymap`, e.g. `de`).
    pub keymap: Option<String>,
    /// The emulated graphics card (`vga` / `stdvga`; HVM).
    pub vga: Option<VgaKind>,
    /// Video memory, MiB (`videoram`).
    pub video_memory_mib: Option<u64>,
    /// No emulated graphics output at all (`nographic`; HVM).
    pub nographic: Option<bool>,
    /// The X display the SDL window opens on (`display`, e.g. `:0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdl_display: Option<String>,
    /// The X authority file for that display (`xauthority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xauthority: Option<String>,
    /// A SPICE server (`spice*`; HVM).
    #[serde(default, skip_serializing_if = "SpiceSpec::is_default")]
    pub spice: SpiceSpec,
}

impl DisplaySpec {
    fn is_default(&self) -> bool {
        *self == DisplaySpec::default()
    }
}

/// A field only HVM guests have, set on another kind: its name, for the error.
fn hvm_only_field(s: &DomainSpec) -> Option<&'static str> {
    let p = &s.platform;
    let d = &s.display;
    [
        ("platform.apic", p.apic.is_some()),
        ("platform.pae", p.pae.is_some()),
        ("platform.viridian", p.viridian.is_some()),
        ("platform.viridian_enlightenments", !p.viridian_enlightenments.is_empty()),
        ("platform.hpet", p.hpet.is_some()),
        ("platform.xen_platform_pci", p.xen_platform_pci.is_some()),
        ("platform.bios", p.bios.is_some()),
        ("platform.acpi_s3", p.acpi_s3.is_some()),
        ("platform.acpi_s4", p.acpi_s4.is_some()),
        ("display.vnc_disabled", d.vnc_disabled),
        ("display.vga", d.vga.is_some()),
        ("display.nographic", d.nographic.is_some()),
        ("serial_ports", !s.serial_ports.is_empty()),
        ("usb", s.usb.is_some()),
        ("usb_version", s.usb_version.is_some()),
        ("usb_device", s.usb_device.is_some()),
        ("usb_devices", !s.usb_devices.is_empty()),
        ("soundhw", s.soundhw.is_some()),
    ]
    .into_iter()
    .find_map(|(name, set)| set.then_some(name))
}

impl DomainSpec {
    /// Validation of the fields this module fills; part of [`DomainSpec::validate`].
    pub(crate) fn validate_options(&self) -> Result<()> {
        if self.kind != DomainKind::Hvm
            && let Some(field) = hvm_only_field(self)
        {
            return Err(Error::invalid(field, "", format!("applies to HVM guests only, not {}", self.kind)));
        }
        if self.kind != DomainKind::Pv && self.platform.e820_host.is_some() {
            return Err(Error::invalid("platform.e820_host", "", "applies to PV guests only"));
        }
        crate::viridian::validate("platform.viridian_enlightenments", &self.platform.viridian_enlightenments)?;
        if self.platform.viridian.is_some() && !self.platform.viridian_enlightenments.is_empty() {
            return Err(Error::invalid("platform.viridian_enlightenments", "", "set viridian or this list, not both"));
        }
        if self.kind == DomainKind::Pv && self.platform.timer_mode.is_some() {
            return Err(Error::invalid("platform.timer_mode", "", "applies to HVM and PVH guests only, not PV"));
        }
        if let Some(mib) = self.platform.shadow_memory_mib
            && mib > 1 << 20
        {
            return Err(Error::invalid("platform.shadow_memory_mib", mib.to_string(), "more than 1 TiB"));
        }
        if let Some(n) = self.platform.max_grant_frames
            && i32::try_from(n).is_err()
        {
            return Err(Error::invalid("platform.max_grant_frames", n.to_string(), "too large"));
        }
        if self.display.vnc_disabled && self.vnc.as_ref().is_some_and(|v| v.sets_nothing() || v.enable_by_default) {
            // Only settings left with the server off mean anything here (see vnc_disabled).
            return Err(Error::invalid("display.vnc_disabled", "true", "contradicts vnc"));
        }
        if self.kind == DomainKind::Hvm && self.vnc.as_ref().is_some_and(|v| v.enable_by_default && v.sets_nothing()) {
            // An HVM config turns VNC on without `vnc = 1` only by giving settings.
            return Err(Error::invalid("vnc.enable_by_default", "true", "with no VNC settings"));
        }
        if self.kind != DomainKind::Hvm && self.vnc.is_none() {
            let d = &self.display;
            if d.sdl.is_some() || d.opengl.is_some() || d.keymap.is_some() {
                return Err(Error::invalid(
                    "display",
                    "sdl/opengl/keymap",
                    "a PV or PVH guest's display is its VNC framebuffer: set vnc too",
                ));
            }
        }
        if self.serial.is_some() && !self.serial_ports.is_empty() {
            return Err(Error::invalid(
                "serial_ports",
                self.serial_ports.join(","),
                "set serial or serial_ports, not both",
            ));
        }
        if self.usb_device.is_some() && !self.usb_devices.is_empty() {
            return Err(Error::invalid(
                "usb_devices",
                self.usb_devices.join(","),
                "set usb_device or usb_devices, not both",
            ));
        }
        if let Some(v) = self.usb_version
            && !(1..=3).contains(&v)
        {
            return Err(Error::invalid("usb_version", v.to_string(), "must be 1, 2 or 3"));
        }
        if let Some(w) = self.cpu_weight
            && !(1..=65535).contains(&w)
        {
            return Err(Error::invalid("cpu_weight", w.to_string(), "must be 1 to 65535"));
        }
        if let Some(cap) = self.cpu_cap
            && i32::try_from(cap).is_err()
        {
            return Err(Error::invalid("cpu_cap", cap.to_string(), "too large"));
        }
        if let Some(mib) = self.display.video_memory_mib
            && mib > 1 << 20
        {
            return Err(Error::invalid("display.video_memory_mib", mib.to_string(), "more than 1 TiB"));
        }
        Ok(())
    }

    /// Fills what this module owns into a config `to_libxl` has filled the rest of (the build
    /// info's union is initialised for `self.kind`; a PV/PVH VNC framebuffer exists if `vnc`).
    pub(crate) fn fill_options(&self, d: &mut xen_sys::libxl_domain_config) -> Result<()> {
        d.on_watchdog = self.on_watchdog.to_libxl();
        d.on_soft_reset = self.on_soft_reset.to_libxl();
        let p = &self.platform;
        set_defbool(&mut d.c_info.hap, p.hap);
        let b = &mut d.b_info;
        if let Some(w) = self.cpu_weight {
            b.sched_params.weight = i32::try_from(w).unwrap_or(i32::MAX); // validate() bounds it
        }
        if let Some(cap) = self.cpu_cap {
            b.sched_params.cap = i32::try_from(cap).unwrap_or(i32::MAX); // validate() bounds it
        }
        set_defbool(&mut b.acpi, p.acpi);
        set_defbool(&mut b.apic, p.apic);
        set_defbool(&mut b.nested_hvm, p.nested_hvm);
        set_defbool(&mut b.localtime, p.localtime);
        if let Some(v) = p.device_model_version {
            b.device_model_version = v.to_libxl();
        }
        if let Some(mib) = self.display.video_memory_mib {
            b.video_memkb = mib * 1024; // validate() bounds it
        }
        if let Some(secs) = p.rtc_timeoffset {
            // libxl keeps it unsigned; a negative offset is its two's complement, as xl stores it.
            b.rtc_timeoffset = u32::from_ne_bytes(secs.to_ne_bytes());
        }
        if let Some(mib) = p.shadow_memory_mib {
            b.shadow_memkb = mib * 1024; // validate() bounds it
        }
        set_defbool(&mut b.disable_migrate, p.disable_migrate);
        if let Some(t) = p.timer_mode {
            b.timer_mode = t.to_libxl();
        }
        if let Some(n) = p.max_grant_frames {
            b.max_grant_frames = n;
        }
        match self.kind {
            DomainKind::Hvm => self.fill_hvm(b)?,
            DomainKind::Pv => {
                // xl turns e820_host on for PV guests with PCI devices; do the same unless told.
                let e820 = p.e820_host.or((!self.pcis.is_empty()).then_some(true));
                // SAFETY: init_type(PV) made `pv` the active union member.
                set_defbool(unsafe { &mut b.u.pv.e820_host }, e820);
            }
            DomainKind::Pvh => {}
        }
        if self.kind != DomainKind::Hvm && self.vnc.is_some() && !self.display.is_default() {
            // SAFETY: fill_vfbs made d.vfbs[0] the initialised vfb for `vnc` before calling us.
            let vfb = unsafe { &mut *d.vfbs };
            set_defbool(&mut vfb.sdl.enable, self.display.sdl);
            set_defbool(&mut vfb.sdl.opengl, self.display.opengl);
            vfb.keymap = raw::strdup_opt("display.keymap", self.display.keymap.as_deref())?;
        }
        Ok(())
    }

    fn fill_hvm(&self, b: &mut xen_sys::libxl_domain_build_info) -> Result<()> {
        let p = &self.platform;
        let disp = &self.display;
        // SAFETY: to_libxl ran init_type(HVM), so `hvm` is the active union member.
        let hvm = unsafe { &mut b.u.hvm };
        set_defbool(&mut hvm.pae, p.pae);
        set_defbool(&mut hvm.viridian, p.viridian);
        if !p.viridian_enlightenments.is_empty() {
            crate::viridian::fill(hvm, &p.viridian_enlightenments)?;
        }
        set_defbool(&mut hvm.hpet, p.hpet);
        set_defbool(&mut hvm.xen_platform_pci, p.xen_platform_pci);
        set_defbool(&mut hvm.acpi_s3, p.acpi_s3);
        set_defbool(&mut hvm.acpi_s4, p.acpi_s4);
        if let Some(bios) = p.bios {
            hvm.bios = bios.to_libxl();
        }
        if disp.vnc_disabled {
            set_defbool(&mut hvm.vnc.enable, Some(false));
        }
        set_defbool(&mut hvm.sdl.enable, disp.sdl);
        set_defbool(&mut hvm.sdl.opengl, disp.opengl);
        hvm.keymap = raw::strdup_opt("display.keymap", disp.keymap.as_deref())?;
        if let Some(vga) = disp.vga {
            hvm.vga.kind = vga.to_libxl();
        }
        set_defbool(&mut hvm.nographic, disp.nographic);
        fill_string_list(&mut hvm.serial_list, "serial_ports", &self.serial_ports)?;
        set_defbool(&mut hvm.usb, self.usb);
        if let Some(v) = self.usb_version {
            hvm.usbversion = i32::try_from(v).unwrap_or(i32::MAX); // validate() bounds it
        }
        hvm.usbdevice = raw::strdup_opt("usb_device", self.usb_device.as_deref())?;
        fill_string_list(&mut hvm.usbdevice_list, "usb_devices", &self.usb_devices)?;
        hvm.soundhw = raw::strdup_opt("soundhw", self.soundhw.as_deref())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{VncSpec, defbool};
    use crate::pci::{Bdf, PciSpec};
    use crate::types::ShutdownAction;

    fn s(p: *const std::ffi::c_char) -> Option<String> {
        // SAFETY: test helper over strings owned by a live config.
        unsafe { raw::string_from_c(p) }
    }

    #[test]
    fn hvm_options_fill_the_hvm_union() {
        let mut spec = DomainSpec::hvm("w");
        spec.platform = PlatformSpec {
            acpi: Some(true),
            viridian_enlightenments: Vec::new(),
            apic: Some(true),
            pae: Some(false),
            hap: Some(true),
            nested_hvm: Some(true),
            viridian: Some(true),
            hpet: Some(false),
            xen_platform_pci: Some(true),
            localtime: Some(true),
            e820_host: None,
            bios: Some(BiosKind::Ovmf),
            device_model_version: Some(DeviceModelVersion::QemuXen),
            acpi_s3: Some(false),
            acpi_s4: Some(true),
            rtc_timeoffset: Some(-3600),
            shadow_memory_mib: Some(8),
            disable_migrate: Some(true),
            timer_mode: Some(TimerMode::OneMissedTickPending),
            max_grant_frames: Some(64),
            ..PlatformSpec::default()
        };
        spec.display = DisplaySpec {
            vnc_disabled: true,
            sdl: Some(true),
            opengl: Some(false),
            keymap: Some("de".into()),
            vga: Some(VgaKind::Std),
            video_memory_mib: Some(16),
            nographic: Some(false),
            ..DisplaySpec::default()
        };
        spec.serial_ports = vec!["pty".into(), "null".into()];
        spec.usb = Some(true);
        spec.usb_version = Some(2);
        spec.usb_devices = vec!["tablet".into()];
        spec.soundhw = Some("hda".into());
        spec.cpu_weight = Some(512);
        spec.cpu_cap = Some(50);
        spec.on_watchdog = ShutdownAction::Preserve;
        let cfg = spec.to_libxl().unwrap();
        let d = cfg.as_raw();
        let b = &d.b_info;
        // SAFETY: HVM is the active member.
        let hvm = unsafe { &b.u.hvm };
        assert_eq!(defbool(d.c_info.hap), Some(true));
        assert_eq!(
            (defbool(b.acpi), defbool(b.apic), defbool(b.nested_hvm), defbool(b.localtime)),
            (Some(true), Some(true), Some(true), Some(true))
        );
        assert_eq!(
            (defbool(hvm.pae), defbool(hvm.viridian), defbool(hvm.hpet)),
            (Some(false), Some(true), Some(false))
        );
        assert_eq!(hvm.bios, xen_sys::LIBXL_BIOS_TYPE_OVMF);
        assert_eq!((defbool(hvm.acpi_s3), defbool(hvm.acpi_s4)), (Some(false), Some(true)));
        assert_eq!((b.rtc_timeoffset, b.shadow_memkb, defbool(b.disable_migrate)), (u32::MAX - 3599, 8192, Some(true)));
        assert_eq!((b.timer_mode, b.max_grant_frames), (xen_sys::LIBXL_TIMER_MODE_ONE_MISSED_TICK_PENDING, 64));
        assert_eq!(b.device_model_version, xen_sys::LIBXL_DEVICE_MODEL_VERSION_QEMU_XEN);
        assert_eq!((defbool(hvm.vnc.enable), defbool(hvm.sdl.enable)), (Some(false), Some(true)));
        assert_eq!(s(hvm.keymap).as_deref(), Some("de"));
        assert_eq!(hvm.vga.kind, xen_sys::LIBXL_VGA_INTERFACE_TYPE_STD);
        assert_eq!(b.video_memkb, 16 * 1024);
        // SAFETY: NULL-terminated lists of two and one strings.
        let serial = unsafe { std::slice::from_raw_parts(hvm.serial_list, 3) };
        assert_eq!(
            (s(serial[0]).as_deref(), s(serial[1]).as_deref(), serial[2].is_null()),
            (Some("pty"), Some("null"), true)
        );
        assert!(hvm.serial.is_null());
        assert_eq!((defbool(hvm.usb), hvm.usbversion, s(hvm.soundhw).as_deref()), (Some(true), 2, Some("hda")));
        // SAFETY: a NULL-terminated list of one string.
        assert_eq!(s(unsafe { *hvm.usbdevice_list }).as_deref(), Some("tablet"));
        assert_eq!((b.sched_params.weight, b.sched_params.cap), (512, 50));
        assert_eq!(
            (d.on_watchdog, d.on_soft_reset),
            (xen_sys::LIBXL_ACTION_ON_SHUTDOWN_PRESERVE, xen_sys::LIBXL_ACTION_ON_SHUTDOWN_SOFT_RESET)
        );
    }

    #[test]
    fn pv_with_pci_gets_e820_host_as_xl_does_unless_told() {
        let bdf: Bdf = "0000:03:00.0".parse().unwrap();
        let spec = DomainSpec::pv("p").kernel("/k").pci(PciSpec::new(bdf));
        let cfg = spec.to_libxl().unwrap();
        // SAFETY: PV is the active member.
        assert_eq!(defbool(unsafe { cfg.as_raw().b_info.u.pv.e820_host }), Some(true));
        let mut spec = spec;
        spec.platform.e820_host = Some(false);
        let cfg = spec.to_libxl().unwrap();
        // SAFETY: PV is the active member.
        assert_eq!(defbool(unsafe { cfg.as_raw().b_info.u.pv.e820_host }), Some(false));
        let cfg = DomainSpec::pv("p").kernel("/k").to_libxl().unwrap();
        // SAFETY: PV is the active member.
        assert_eq!(defbool(unsafe { cfg.as_raw().b_info.u.pv.e820_host }), None);
    }

    #[test]
    fn pv_framebuffer_gets_keymap_and_sdl() {
        let mut spec = DomainSpec::pv("p").kernel("/k").vnc(VncSpec::default());
        spec.display.keymap = Some("fr".into());
        spec.display.sdl = Some(false);
        let cfg = spec.to_libxl().unwrap();
        // SAFETY: one initialised vfb.
        let vfb = unsafe { &*cfg.as_raw().vfbs };
        assert_eq!((s(vfb.keymap).as_deref(), defbool(vfb.sdl.enable)), (Some("fr"), Some(false)));
    }

    #[test]
    fn options_are_validated() {
        let err = |spec: DomainSpec| spec.validate().unwrap_err().to_string();
        let mut pv = DomainSpec::pv("p").kernel("/k");
        pv.platform.pae = Some(true);
        assert!(err(pv).starts_with("invalid platform.pae"), "HVM only");
        let mut pvh = DomainSpec::pvh("p").kernel("/k");
        pvh.platform.e820_host = Some(true);
        assert!(err(pvh).contains("PV guests only"));
        let mut pv = DomainSpec::pv("p").kernel("/k");
        pv.display.keymap = Some("de".into());
        assert!(err(pv).contains("set vnc too"));
        let mut hvm = DomainSpec::hvm("h").vnc(VncSpec::default());
        hvm.display.vnc_disabled = true;
        assert!(err(hvm).contains("contradicts vnc"));
        let mut hvm = DomainSpec::hvm("h").vnc(VncSpec { listen: Some("::".into()), ..VncSpec::default() });
        hvm.display.vnc_disabled = true;
        assert!(hvm.validate().is_ok(), "settings kept with the server off, as xl keeps them");
        let mut hvm = DomainSpec::hvm("h").serial("pty");
        hvm.serial_ports = vec!["pty".into()];
        assert!(err(hvm).contains("not both"));
        let mut hvm = DomainSpec::hvm("h");
        hvm.usb_version = Some(4);
        assert!(err(hvm).starts_with("invalid usb_version \"4\""));
        let mut hvm = DomainSpec::hvm("h");
        hvm.cpu_weight = Some(0);
        assert!(err(hvm).starts_with("invalid cpu_weight \"0\""));
        let mut pv = DomainSpec::pv("p").kernel("/k");
        pv.platform.timer_mode = Some(TimerMode::NoMissedTicksPending);
        assert!(err(pv).contains("HVM and PVH guests only"));
        let mut pv = DomainSpec::pv("p").kernel("/k");
        pv.platform.acpi_s3 = Some(true);
        assert!(err(pv).starts_with("invalid platform.acpi_s3"));
    }

    #[test]
    fn words_parse_back() {
        for b in [BiosKind::Rombios, BiosKind::Seabios, BiosKind::Ovmf] {
            assert_eq!(BiosKind::from_xl(&b.as_str().to_uppercase()), Some(b));
        }
        for v in [DeviceModelVersion::QemuXen, DeviceModelVersion::QemuXenTraditional] {
            assert_eq!(DeviceModelVersion::from_xl(v.as_str()), Some(v));
        }
        for v in [VgaKind::Std, VgaKind::Cirrus, VgaKind::Qxl, VgaKind::Off] {
            assert_eq!(VgaKind::from_xl(v.as_str()), Some(v));
        }
        assert_eq!(VgaKind::from_xl("vmware"), None);
        for (n, t) in TimerMode::ALL.into_iter().enumerate() {
            assert_eq!(TimerMode::from_xl(t.as_str()), Some(t));
            assert_eq!(TimerMode::from_xl(&n.to_string()), Some(t));
            assert_eq!(t.to_libxl(), xen_sys::libxl_timer_mode::try_from(n).unwrap());
        }
        assert_eq!(TimerMode::from_xl("4"), None);
    }
}
