//! [`DeviceModelSpec`]: how the guest's device model (QEMU) runs and what it emulates beyond
//! the display: xl.cfg's `device_model_override`, `device_model_user`, `dm_restrict`,
//! `device_model_args*`, the stub domain keys (`device_model_stubdomain_override`,
//! `device_model_stubdomain_seclabel`, `stubdomain_*`), and for HVM guests `hdtype`,
//! `vendor_device`, `gfx_passthru` and `vkb_device`. Reading them as xl does
//! (tools/xl/xl_parse.c), filling libxl's build info, and writing them back as xl.cfg lines.

use serde::{Deserialize, Serialize};

use crate::convert::fill_string_list;
use crate::devices::set_defbool;
use crate::error::{Error, Result};
use crate::raw;
use crate::spec::DomainSpec;
use crate::types::DomainKind;
use crate::xlcfg::{list, quote};
use crate::xlread::Reader;

/// The emulated disk controller of an HVM guest (`hdtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HdType {
    /// IDE, libxl's default.
    Ide,
    /// AHCI (SATA).
    Ahci,
}

/// The Xen platform PCI device variant QEMU offers an HVM guest (`vendor_device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VendorDevice {
    /// None, libxl's default.
    None,
    /// XenServer's, which Windows Update's XenServer PV drivers look for.
    Xenserver,
}

/// Graphics passthrough for an HVM guest (`gfx_passthru`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GfxPassthru {
    /// Off (`gfx_passthru = 0`).
    Off,
    /// On, of the kind libxl picks (`gfx_passthru = 1` or `"default"`).
    On,
    /// On, for an Intel IGD (`gfx_passthru = "igd"`).
    Igd,
}

/// The device model's own settings. `None` or empty everywhere is libxl's default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceModelSpec {
    /// Another device model binary (`device_model_override`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The user it runs as (`device_model_user`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Restrict what it may do once running (`dm_restrict`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restrict: Option<bool>,
    /// Extra arguments for it, whatever the guest type (`device_model_args`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra arguments for a PV guest's (`device_model_args_pv`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args_pv: Vec<String>,
    /// Extra arguments for an HVM guest's (`device_model_args_hvm`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args_hvm: Vec<String>,
    /// Run it in a stub domain (`device_model_stubdomain_override`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stubdomain: Option<bool>,
    /// The stub domain's XSM label (`device_model_stubdomain_seclabel`); libxl looks it up
    /// when it creates the domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stubdomain_seclabel: Option<String>,
    /// The stub domain's kernel (`stubdomain_kernel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stubdomain_kernel: Option<String>,
    /// The stub domain's kernel command line (`stubdomain_cmdline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stubdomain_cmdline: Option<String>,
    /// The stub domain's ramdisk (`stubdomain_ramdisk`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stubdomain_ramdisk: Option<String>,
    /// The stub domain's memory, MiB (`stubdomain_memory`); libxl sizes it when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stubdomain_memory_mib: Option<u64>,
    /// The emulated disk controller (`hdtype`; HVM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hdtype: Option<HdType>,
    /// The platform device variant (`vendor_device`; HVM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_device: Option<VendorDevice>,
    /// Graphics passthrough (`gfx_passthru`; HVM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gfx_passthru: Option<GfxPassthru>,
    /// A PV keyboard and mouse served by the device model (`vkb_device`; HVM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vkb_device: Option<bool>,
}

/// The most stub domain memory accepted, MiB (far above any real one; keeps KiB in range).
const MAX_STUBDOMAIN_MIB: u64 = 1 << 20;

impl DeviceModelSpec {
    /// Whether nothing is set.
    pub fn is_default(&self) -> bool {
        *self == DeviceModelSpec::default()
    }

    /// The field set that only HVM guests have, if any.
    fn hvm_only_field(&self) -> Option<&'static str> {
        [
            ("device_model.hdtype", self.hdtype.is_some()),
            ("device_model.vendor_device", self.vendor_device.is_some()),
            ("device_model.gfx_passthru", self.gfx_passthru.is_some()),
            ("device_model.vkb_device", self.vkb_device.is_some()),
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    }

    pub(crate) fn validate(&self, kind: DomainKind) -> Result<()> {
        if kind != DomainKind::Hvm
            && let Some(field) = self.hvm_only_field()
        {
            return Err(Error::invalid(field, "", format!("applies to HVM guests only, not {kind}")));
        }
        if let Some(mib) = self.stubdomain_memory_mib
            && mib > MAX_STUBDOMAIN_MIB
        {
            return Err(Error::invalid("device_model.stubdomain_memory_mib", mib.to_string(), "more than 1 TiB"));
        }
        Ok(())
    }

    /// Fills the build info (its union initialised for `kind`).
    pub(crate) fn fill(&self, kind: DomainKind, b: &mut xen_sys::libxl_domain_build_info) -> Result<()> {
        b.device_model = raw::strdup_opt("device_model.path", self.path.as_deref())?;
        b.device_model_user = raw::strdup_opt("device_model.user", self.user.as_deref())?;
        set_defbool(&mut b.dm_restrict, self.restrict);
        fill_string_list(&mut b.extra, "device_model.args", &self.args)?;
        fill_string_list(&mut b.extra_pv, "device_model.args_pv", &self.args_pv)?;
        fill_string_list(&mut b.extra_hvm, "device_model.args_hvm", &self.args_hvm)?;
        set_defbool(&mut b.device_model_stubdomain, self.stubdomain);
        b.device_model_ssid_label =
            raw::strdup_opt("device_model.stubdomain_seclabel", self.stubdomain_seclabel.as_deref())?;
        b.stubdomain_kernel = raw::strdup_opt("device_model.stubdomain_kernel", self.stubdomain_kernel.as_deref())?;
        b.stubdomain_cmdline = raw::strdup_opt("device_model.stubdomain_cmdline", self.stubdomain_cmdline.as_deref())?;
        b.stubdomain_ramdisk = raw::strdup_opt("device_model.stubdomain_ramdisk", self.stubdomain_ramdisk.as_deref())?;
        if let Some(mib) = self.stubdomain_memory_mib {
            b.stubdomain_memkb = mib * 1024; // validate() bounds it
        }
        if kind == DomainKind::Hvm {
            // SAFETY: to_libxl ran init_type(HVM), so `hvm` is the active union member.
            let hvm = unsafe { &mut b.u.hvm };
            if let Some(t) = self.hdtype {
                hvm.hdtype = match t {
                    HdType::Ide => xen_sys::LIBXL_HDTYPE_IDE,
                    HdType::Ahci => xen_sys::LIBXL_HDTYPE_AHCI,
                };
            }
            if let Some(v) = self.vendor_device {
                hvm.vendor_device = match v {
                    VendorDevice::None => xen_sys::LIBXL_VENDOR_DEVICE_NONE,
                    VendorDevice::Xenserver => xen_sys::LIBXL_VENDOR_DEVICE_XENSERVER,
                };
            }
            match self.gfx_passthru {
                None => {}
                Some(GfxPassthru::Off) => set_defbool(&mut hvm.gfx_passthru, Some(false)),
                Some(GfxPassthru::On) => set_defbool(&mut hvm.gfx_passthru, Some(true)),
                Some(GfxPassthru::Igd) => {
                    set_defbool(&mut hvm.gfx_passthru, Some(true));
                    hvm.gfx_passthru_kind = xen_sys::LIBXL_GFX_PASSTHRU_KIND_IGD;
                }
            }
            set_defbool(&mut hvm.vkb_device, self.vkb_device);
        }
        Ok(())
    }

    /// The xl.cfg lines that say this.
    pub(crate) fn xl_lines(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let flag = |v: bool| u8::from(v).to_string();
        let strings = [
            ("device_model_override", &self.path),
            ("device_model_user", &self.user),
            ("device_model_stubdomain_seclabel", &self.stubdomain_seclabel),
            ("stubdomain_kernel", &self.stubdomain_kernel),
            ("stubdomain_cmdline", &self.stubdomain_cmdline),
            ("stubdomain_ramdisk", &self.stubdomain_ramdisk),
        ];
        out.extend(strings.into_iter().filter_map(|(key, v)| v.as_deref().map(|v| (key, quote(v)))));
        let flags = [
            ("dm_restrict", self.restrict),
            ("device_model_stubdomain_override", self.stubdomain),
            ("vkb_device", self.vkb_device),
        ];
        out.extend(flags.into_iter().filter_map(|(key, v)| v.map(|v| (key, flag(v)))));
        out.extend(self.stubdomain_memory_mib.map(|m| ("stubdomain_memory", m.to_string())));
        for (key, args) in [
            ("device_model_args", &self.args),
            ("device_model_args_pv", &self.args_pv),
            ("device_model_args_hvm", &self.args_hvm),
        ] {
            if !args.is_empty() {
                out.push((key, list(args)));
            }
        }
        out.extend(self.hdtype.map(|t| ("hdtype", quote(t.as_str()))));
        out.extend(self.vendor_device.map(|v| ("vendor_device", quote(v.as_str()))));
        out.extend(self.gfx_passthru.map(|g| {
            let value = match g {
                GfxPassthru::Off => "0".to_string(),
                GfxPassthru::On => "1".to_string(),
                GfxPassthru::Igd => quote("igd"),
            };
            ("gfx_passthru", value)
        }));
        out
    }
}

impl HdType {
    /// The xl.cfg word.
    pub fn as_str(self) -> &'static str {
        match self {
            HdType::Ide => "ide",
            HdType::Ahci => "ahci",
        }
    }

    /// The xl.cfg word, in any case (libxl compares case-insensitively).
    pub fn from_xl(word: &str) -> Option<HdType> {
        [HdType::Ide, HdType::Ahci].into_iter().find(|t| t.as_str().eq_ignore_ascii_case(word))
    }
}

impl VendorDevice {
    /// The xl.cfg word.
    pub fn as_str(self) -> &'static str {
        match self {
            VendorDevice::None => "none",
            VendorDevice::Xenserver => "xenserver",
        }
    }

    /// The xl.cfg word, in any case (libxl compares case-insensitively).
    pub fn from_xl(word: &str) -> Option<VendorDevice> {
        [VendorDevice::None, VendorDevice::Xenserver].into_iter().find(|v| v.as_str().eq_ignore_ascii_case(word))
    }
}

/// Reads the device model keys of an xl.cfg file, as xl reads them for `spec.kind`.
pub(crate) fn read(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    let dm = &mut spec.device_model;
    dm.path = r.string("device_model_override")?;
    if dm.path.is_some() && spec.platform.device_model_version.is_none() {
        log::warn!(
            "{}: device_model_override: given without device_model_version (libxl assumes its default)",
            r.at("device_model_override")
        );
    }
    dm.stubdomain = r.flag("device_model_stubdomain_override")?;
    dm.stubdomain_seclabel = r.string("device_model_stubdomain_seclabel")?;
    dm.user = r.string("device_model_user")?;
    dm.stubdomain_kernel = r.string("stubdomain_kernel")?;
    dm.stubdomain_cmdline = r.string("stubdomain_cmdline")?;
    dm.stubdomain_ramdisk = r.string("stubdomain_ramdisk")?;
    dm.stubdomain_memory_mib = r.number::<u64>("stubdomain_memory", 0)?;
    if let Some(mib) = dm.stubdomain_memory_mib
        && mib > MAX_STUBDOMAIN_MIB
    {
        return Err(r.err("stubdomain_memory", format!("{mib}: more than 1 TiB")));
    }
    // xl refuses a string where these lists belong ("Unable to parse device_model_args").
    dm.args = r.list("device_model_args")?.unwrap_or_default();
    dm.args_pv = r.list("device_model_args_pv")?.unwrap_or_default();
    dm.args_hvm = r.list("device_model_args_hvm")?.unwrap_or_default();
    dm.restrict = r.flag("dm_restrict")?;
    if spec.kind != DomainKind::Hvm {
        return Ok(());
    }
    if let Some(t) = r.string("hdtype")? {
        dm.hdtype = Some(HdType::from_xl(&t).ok_or_else(|| r.err("hdtype", format!("{t:?}: expected ide or ahci")))?);
    }
    if let Some(v) = r.string("vendor_device")? {
        dm.vendor_device = Some(
            VendorDevice::from_xl(&v)
                .ok_or_else(|| r.err("vendor_device", format!("{v:?}: expected none or xenserver")))?,
        );
    }
    if let Some(g) = r.string_or_number("gfx_passthru")? {
        // A number is the boolean (any non-zero is on); a word names the kind, and turns it on.
        dm.gfx_passthru = Some(match g.parse::<i64>() {
            Ok(0) => GfxPassthru::Off,
            Ok(_) => GfxPassthru::On,
            Err(_) if g.eq_ignore_ascii_case("default") => GfxPassthru::On,
            Err(_) if g.eq_ignore_ascii_case("igd") => GfxPassthru::Igd,
            Err(_) => return Err(r.err("gfx_passthru", format!("{g:?}: expected 0, 1, default or igd"))),
        });
    }
    dm.vkb_device = r.flag("vkb_device")?;
    Ok(())
}
