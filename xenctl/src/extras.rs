//! xl.cfg's less common guest options, read as `xl` reads them (tools/xl/xl_parse.c, 4.17),
//! put into libxl's config, checked and written back: the CPUID policy (`cpuid`, see
//! `cpuid.rs`), alternate p2m (`altp2m`, `altp2mhvm`), `msr_relaxed`, the firmware keys
//! (`firmware`, `firmware_override`, `bios_path_override`, `smbios_firmware`,
//! `acpi_firmware`, `ms_vm_genid`), the HVM platform knobs `nx`, `acpi_laptop_slate`,
//! `vpt_align`, `mmio_hole` and `mca_caps`, the SDL window's `display` and `xauthority`, SPICE
//! (`spice.rs`) and the device model's keys (`devmodel.rs`). The fields are in
//! [`PlatformSpec`](crate::PlatformSpec), [`DisplaySpec`](crate::DisplaySpec) and
//! [`DeviceModelSpec`](crate::DeviceModelSpec); this module is where the rest of the crate calls in.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::cpuid::CpuidPolicy;
use crate::devices::set_defbool;
use crate::devmodel;
use crate::error::{Error, Result};
use crate::options::BiosKind;
use crate::raw;
use crate::spec::DomainSpec;
use crate::spice::SpiceSpec;
use crate::types::DomainKind;
use crate::xlcfg::{list, quote};
use crate::xlread::{OneOrList, Reader};

/// Where xl finds `firmware = "pvgrub64"` for a PV or PVH guest: XENFIRMWAREDIR, built into
/// xl (and libxl, which loads hvmloader from it). This is Debian's Xen 4.17, the build whose
/// libxl this crate links (vendor-headers/VERSION), as its `xl -N` shows.
pub(crate) const XEN_FIRMWARE_DIR: &str = "/usr/lib/xen-4.17/boot";

/// The MMIO hole's bounds, MiB: HVM_BELOW_4G_MMIO_LENGTH and HVM_BELOW_4G_MMIO_START of
/// Xen's public/hvm/e820.h, which xl checks it against.
const MMIO_HOLE_MIB: std::ops::RangeInclusive<u64> = 256..=3840;

/// XEN_HVM_MCA_CAP_LMCE of Xen's public/hvm/params.h, the bit `mca_caps = [ "lmce" ]` sets.
const MCA_CAP_LMCE: u64 = 1 << 0;

/// Alternate p2m mode (xl.cfg's `altp2m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Altp2mMode {
    /// Off, libxl's default.
    Disabled,
    /// Altp2m for the guest and an external monitor.
    Mixed,
    /// For an external monitor only.
    External,
    /// For the guest, with its view switches limited to VMFUNC.
    Limited,
}

impl Altp2mMode {
    const ALL: [Altp2mMode; 4] = [Altp2mMode::Disabled, Altp2mMode::Mixed, Altp2mMode::External, Altp2mMode::Limited];

    /// The xl.cfg word.
    pub fn as_str(self) -> &'static str {
        match self {
            Altp2mMode::Disabled => "disabled",
            Altp2mMode::Mixed => "mixed",
            Altp2mMode::External => "external",
            Altp2mMode::Limited => "limited",
        }
    }

    /// The xl.cfg word (in any case, as libxl compares) or its number, 0 to 3.
    pub fn from_xl(word: &str) -> Option<Altp2mMode> {
        match word.parse::<i64>() {
            Ok(n) => usize::try_from(n).ok().and_then(|n| Self::ALL.get(n).copied()),
            Err(_) => Self::ALL.into_iter().find(|m| m.as_str().eq_ignore_ascii_case(word)),
        }
    }

    fn to_libxl(self) -> xen_sys::libxl_altp2m_mode {
        match self {
            Altp2mMode::Disabled => xen_sys::LIBXL_ALTP2M_MODE_DISABLED,
            Altp2mMode::Mixed => xen_sys::LIBXL_ALTP2M_MODE_MIXED,
            Altp2mMode::External => xen_sys::LIBXL_ALTP2M_MODE_EXTERNAL,
            Altp2mMode::Limited => xen_sys::LIBXL_ALTP2M_MODE_LIMITED,
        }
    }
}

/// Reads this module's keys; runs after the platform keys (`bios` among them) and before the
/// display's.
pub(crate) fn read(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    read_cpuid(r, spec)?;
    if let Some(m) = r.string_or_number("altp2m")? {
        spec.platform.altp2m = Some(Altp2mMode::from_xl(&m).ok_or_else(|| {
            r.err("altp2m", format!("{m:?}: expected disabled, mixed, external or limited (or 0 to 3)"))
        })?);
    }
    spec.platform.msr_relaxed = r.flag("msr_relaxed")?;
    if spec.platform.msr_relaxed.is_some() {
        log::warn!("{}: msr_relaxed: Xen will remove this option (as xl warns)", r.at("msr_relaxed"));
    }
    match spec.kind {
        DomainKind::Hvm => read_hvm(r, spec)?,
        DomainKind::Pv | DomainKind::Pvh => read_pv_firmware(r, spec)?,
    }
    devmodel::read(r, spec)
}

fn read_cpuid(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    let policy = match r.string_or_list("cpuid")? {
        None => return Ok(()),
        Some(OneOrList::One(text)) => CpuidPolicy::Libxl(text),
        Some(OneOrList::List(items)) => CpuidPolicy::Xend(items),
    };
    for p in policy.problems().map_err(|e| r.err("cpuid", e.to_string()))? {
        // xl prints libxl's error and goes on without that part (see cpuid.rs).
        let e = match p.index {
            Some(i) => r.item_err("cpuid", i, format!("{:?}: {}", p.text, p.reason)),
            None => r.err("cpuid", format!("{:?}: {}", p.text, p.reason)),
        };
        log::warn!("{e}; skipped, as xl skips it");
    }
    spec.platform.cpuid = Some(policy);
    Ok(())
}

fn read_hvm(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    let p = &mut spec.platform;
    p.firmware_path = r.string("firmware_override")?;
    p.system_firmware = r.string("bios_path_override")?;
    if p.system_firmware.is_some() && !r.has("bios") {
        log::warn!("{}: bios_path_override: given without bios (as xl warns)", r.at("bios_path_override"));
    }
    p.acpi_laptop_slate = r.flag("acpi_laptop_slate")?;
    p.nx = r.flag("nx")?;
    p.vpt_align = r.flag("vpt_align")?;
    if let Some(mib) = r.number::<i64>("mmio_hole", i64::MIN)? {
        match u64::try_from(mib).ok().filter(|m| MMIO_HOLE_MIB.contains(m)) {
            Some(mib) => p.mmio_hole_mib = Some(mib),
            None => return Err(r.err("mmio_hole", format!("{mib}: must be 256 to 3840 (MiB)"))),
        }
    }
    p.altp2m_hvm = r.flag("altp2mhvm")?;
    if p.altp2m_hvm.is_some() {
        log::warn!("{}: altp2mhvm: deprecated, use altp2m (as xl warns)", r.at("altp2mhvm"));
    }
    p.smbios_firmware = r.string("smbios_firmware")?;
    p.acpi_firmware = r.string("acpi_firmware")?;
    match r.string("ms_vm_genid")?.as_deref() {
        None | Some("none") => {}
        Some("generate") => p.generate_vm_genid = true,
        Some(other) => return Err(r.err("ms_vm_genid", format!("{other:?}: expected generate or none"))),
    }
    // xl refuses a string where this list belongs ("unable to parse mca_caps").
    for (i, cap) in r.list("mca_caps")?.unwrap_or_default().iter().enumerate() {
        match cap.as_str() {
            "lmce" => p.mca_lmce = true,
            _ => return Err(r.item_err("mca_caps", i, format!("{cap:?}: not an MCA capability (lmce)"))),
        }
    }
    if let Some(fw) = r.string("firmware")? {
        firmware_for_hvm(r, spec, &fw);
    }
    spec.display.spice = SpiceSpec::read(r)?;
    Ok(())
}

/// `firmware` for an HVM guest, after `bios` and `firmware_override`: a BIOS name sets
/// `bios`, a start of "uefi" means OVMF, a start of "bios" leaves libxl's default (even the
/// empty string is a start of "uefi"), anything else is a firmware file.
fn firmware_for_hvm(r: &Reader, spec: &mut DomainSpec, fw: &str) {
    let p = &mut spec.platform;
    let old_bios = p.bios;
    if fw.eq_ignore_ascii_case("unknown") {
        // libxl's bios type names include "unknown": the default, which xl sets.
        p.bios = None;
    } else if let Some(b) = BiosKind::from_xl(fw) {
        p.bios = Some(b);
    } else if "uefi".starts_with(fw) {
        p.bios = Some(BiosKind::Ovmf);
    } else if "bios".starts_with(fw) {
        return;
    } else {
        if p.firmware_path.is_some() {
            log::warn!("{}: firmware_override: ignored in favour of firmware, as xl does", r.at("firmware_override"));
        }
        p.firmware_path = Some(fw.to_string());
        return;
    }
    if r.has("bios") && old_bios != p.bios {
        log::warn!("{}: bios: ignored in favour of firmware, as xl does", r.at("bios"));
    }
}

/// `firmware` for a PV or PVH guest: pvgrub32 or pvgrub64 (or any start of them, as xl
/// compares), from Xen's firmware directory, as the kernel.
fn read_pv_firmware(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    let Some(fw) = r.string("firmware")? else { return Ok(()) };
    if spec.kernel.is_some() {
        return Err(r.err("firmware", "the kernel is given too; give one of them"));
    }
    if !"pvgrub32".starts_with(fw.as_str()) && !"pvgrub64".starts_with(fw.as_str()) {
        return Err(r.err("firmware", format!("{fw:?}: only pvgrub32 or pvgrub64 for a {} guest", spec.kind)));
    }
    spec.kernel = Some(format!("{XEN_FIRMWARE_DIR}/{fw}.bin"));
    Ok(())
}

/// `display` and `xauthority`, which xl reads with the other SDL keys: for an HVM guest, and
/// for a PV guest's top-level framebuffer (`vnc = 1`, no `vfb` list; the caller handles that
/// and PVH).
pub(crate) fn read_sdl_display(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    let Some(key) = ["display", "xauthority"].into_iter().find(|k| r.has(k)) else { return Ok(()) };
    if spec.kind == DomainKind::Pv {
        match r.flag("vnc")? {
            Some(true) => {}
            Some(false) => {
                log::warn!("{}: {key}: ignored with vnc = 0, as xl ignores it", r.at(key));
                return Ok(());
            }
            None => return Err(r.err(key, "a PV guest's display needs vnc = 1 (or a vfb)")),
        }
    }
    spec.display.sdl_display = r.string("display")?;
    spec.display.xauthority = r.string("xauthority")?;
    Ok(())
}

/// A Microsoft VM Generation ID: random bytes, from where libxl takes them.
fn fresh_vm_genid() -> Result<[u8; 16]> {
    let mut id = [0u8; 16];
    let path = "/dev/urandom";
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut id)).map_err(|source| Error::Io {
        op: "generate a VM generation ID",
        path: path.into(),
        source,
    })?;
    Ok(id)
}

impl DomainSpec {
    /// Validation of this module's fields; part of [`DomainSpec::validate`].
    pub(crate) fn validate_extras(&self) -> Result<()> {
        let p = &self.platform;
        let d = &self.display;
        if self.kind != DomainKind::Hvm {
            let hvm_only = [
                ("platform.altp2m_hvm", p.altp2m_hvm.is_some()),
                ("platform.nx", p.nx.is_some()),
                ("platform.acpi_laptop_slate", p.acpi_laptop_slate.is_some()),
                ("platform.vpt_align", p.vpt_align.is_some()),
                ("platform.mmio_hole_mib", p.mmio_hole_mib.is_some()),
                ("platform.mca_lmce", p.mca_lmce),
                ("platform.firmware_path", p.firmware_path.is_some()),
                ("platform.system_firmware", p.system_firmware.is_some()),
                ("platform.smbios_firmware", p.smbios_firmware.is_some()),
                ("platform.acpi_firmware", p.acpi_firmware.is_some()),
                ("platform.generate_vm_genid", p.generate_vm_genid),
                ("display.spice", !d.spice.is_default()),
            ];
            if let Some((field, _)) = hvm_only.into_iter().find(|(_, set)| *set) {
                return Err(Error::invalid(field, "", format!("applies to HVM guests only, not {}", self.kind)));
            }
            if self.vnc.is_none() && (d.sdl_display.is_some() || d.xauthority.is_some()) {
                return Err(Error::invalid(
                    "display",
                    "display/xauthority",
                    "a PV or PVH guest's display is its VNC framebuffer: set vnc too",
                ));
            }
        }
        if let Some(mib) = p.mmio_hole_mib
            && !MMIO_HOLE_MIB.contains(&mib)
        {
            return Err(Error::invalid("platform.mmio_hole_mib", mib.to_string(), "must be 256 to 3840"));
        }
        self.device_model.validate(self.kind)
    }

    /// Fills what this module owns into a config `to_libxl` and `fill_options` have filled the
    /// rest of (the build info's union initialised for `self.kind`; a PV/PVH VNC framebuffer
    /// exists if `vnc`).
    pub(crate) fn fill_extras(&self, d: &mut xen_sys::libxl_domain_config) -> Result<()> {
        let p = &self.platform;
        let b = &mut d.b_info;
        if let Some(policy) = &p.cpuid {
            for problem in policy.apply(&mut b.cpuid)? {
                log::debug!("cpuid: {:?}: {}; skipped, as xl skips it", problem.text, problem.reason);
            }
        }
        if let Some(m) = p.altp2m {
            b.altp2m = m.to_libxl();
        }
        set_defbool(&mut b.arch_x86.msr_relaxed, p.msr_relaxed);
        self.device_model.fill(self.kind, b)?;
        match self.kind {
            DomainKind::Hvm => self.fill_hvm_extras(b)?,
            DomainKind::Pv | DomainKind::Pvh if self.vnc.is_some() => {
                // SAFETY: fill_vfbs made d.vfbs[0] the initialised vfb for `vnc`.
                let vfb = unsafe { &mut *d.vfbs };
                vfb.sdl.display = raw::strdup_opt("display.sdl_display", self.display.sdl_display.as_deref())?;
                vfb.sdl.xauthority = raw::strdup_opt("display.xauthority", self.display.xauthority.as_deref())?;
            }
            DomainKind::Pv | DomainKind::Pvh => {}
        }
        Ok(())
    }

    fn fill_hvm_extras(&self, b: &mut xen_sys::libxl_domain_build_info) -> Result<()> {
        let p = &self.platform;
        // SAFETY: to_libxl ran init_type(HVM), so `hvm` is the active union member.
        let hvm = unsafe { &mut b.u.hvm };
        set_defbool(&mut hvm.altp2m, p.altp2m_hvm);
        set_defbool(&mut hvm.nx, p.nx);
        set_defbool(&mut hvm.acpi_laptop_slate, p.acpi_laptop_slate);
        set_defbool(&mut hvm.vpt_align, p.vpt_align);
        if let Some(mib) = p.mmio_hole_mib {
            hvm.mmio_hole_memkb = mib * 1024; // validate() bounds it
        }
        if p.mca_lmce {
            hvm.mca_caps |= MCA_CAP_LMCE;
        }
        hvm.firmware = raw::strdup_opt("platform.firmware_path", p.firmware_path.as_deref())?;
        hvm.system_firmware = raw::strdup_opt("platform.system_firmware", p.system_firmware.as_deref())?;
        hvm.smbios_firmware = raw::strdup_opt("platform.smbios_firmware", p.smbios_firmware.as_deref())?;
        hvm.acpi_firmware = raw::strdup_opt("platform.acpi_firmware", p.acpi_firmware.as_deref())?;
        if p.generate_vm_genid {
            hvm.ms_vm_genid.bytes = fresh_vm_genid()?;
        }
        hvm.sdl.display = raw::strdup_opt("display.sdl_display", self.display.sdl_display.as_deref())?;
        hvm.sdl.xauthority = raw::strdup_opt("display.xauthority", self.display.xauthority.as_deref())?;
        self.display.spice.fill(&mut hvm.spice)
    }

    /// The xl.cfg lines of this module's fields; fields at their default write nothing. A
    /// PV/PVH guest's `display` and `xauthority` are written in its vfb (see `vfb_extras`).
    pub(crate) fn extras_xl_lines(&self) -> Vec<(&'static str, String)> {
        let p = &self.platform;
        let d = &self.display;
        let mut out = Vec::new();
        match &p.cpuid {
            None => {}
            Some(CpuidPolicy::Libxl(text)) => out.push(("cpuid", quote(text))),
            Some(CpuidPolicy::Xend(items)) => out.push(("cpuid", list(items))),
        }
        out.extend(p.altp2m.map(|m| ("altp2m", quote(m.as_str()))));
        let flags = [
            ("msr_relaxed", p.msr_relaxed),
            ("altp2mhvm", p.altp2m_hvm),
            ("nx", p.nx),
            ("acpi_laptop_slate", p.acpi_laptop_slate),
            ("vpt_align", p.vpt_align),
        ];
        out.extend(flags.into_iter().filter_map(|(key, v)| v.map(|v| (key, u8::from(v).to_string()))));
        out.extend(p.mmio_hole_mib.map(|m| ("mmio_hole", m.to_string())));
        if p.mca_lmce {
            out.push(("mca_caps", list(&["lmce".to_string()])));
        }
        // firmware_override takes any path; `firmware` would read some (a BIOS name) otherwise.
        let strings = [
            ("firmware_override", &p.firmware_path),
            ("bios_path_override", &p.system_firmware),
            ("smbios_firmware", &p.smbios_firmware),
            ("acpi_firmware", &p.acpi_firmware),
        ];
        out.extend(strings.into_iter().filter_map(|(key, v)| v.as_deref().map(|v| (key, quote(v)))));
        if p.generate_vm_genid {
            out.push(("ms_vm_genid", quote("generate")));
        }
        if self.kind == DomainKind::Hvm {
            out.extend(d.sdl_display.as_deref().map(|v| ("display", quote(v))));
            out.extend(d.xauthority.as_deref().map(|v| ("xauthority", quote(v))));
        }
        out.extend(d.spice.xl_lines());
        out.extend(self.device_model.xl_lines());
        out
    }
}

#[cfg(test)]
#[path = "extras_tests.rs"]
mod tests;
