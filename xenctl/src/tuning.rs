//! [`TuningSpec`]: how a guest is run beyond its size, boot and devices. Its CPU pool and
//! scheduler parameters, its soft vCPU affinity and virtual NUMA nodes (`vnuma.rs`), its XSM
//! security labels, its per-domain limits (event channels, grant tables, trace buffers), Xen
//! feature switches (out-of-sync shadow page tables, the virtual PMU, the IOMMU mode, driver
//! domains), the PVH shim, and the ARM settings that xl also reads, and passes on, on x86.
//! This module owns their validation, how they fill libxl's config and their xl.cfg lines;
//! `xltuning.rs` reads them from an xl.cfg file.
//!
//! The pool and the labels are names, handed to libxl as xl hands them: libxl resolves them
//! when it creates the domain (an unknown pool fails the create; a label on a Xen without
//! XSM/FLASK is ignored with a warning), so a config can be read and checked without a host.
//! Every `Option` here is `None` by default, meaning libxl's default.

use serde::{Deserialize, Serialize};

use crate::convert::fill_bitmap_bits;
use crate::devices::set_defbool;
use crate::error::{Error, Result};
use crate::raw;
use crate::spec::DomainSpec;
use crate::types::DomainKind;
use crate::vnuma::VnumaNode;
use crate::xlcfg::quote;

/// Scheduler parameters beyond `cpu_weight` and `cap` (xl.cfg's `period`, `slice`, `latency`,
/// `extratime`). Xen's RTDS scheduler uses `period` and `extratime`; `slice` and `latency`
/// belonged to the removed SEDF scheduler, and libxl carries them without effect.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedParams {
    /// `period`, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<i32>,
    /// `slice`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slice: Option<i32>,
    /// `latency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<i32>,
    /// `extratime`: non-zero lets the domain run beyond its budget when CPUs are idle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extratime: Option<i32>,
}

/// Where vCPUs prefer to run (xl.cfg's `cpus_soft`): the scheduler favours these CPUs but
/// may use others, unlike the hard affinity of `cpus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SoftAffinity {
    /// `cpus_soft = "2-3"`: every vCPU prefers these CPUs.
    AllVcpus(Vec<u32>),
    /// `cpus_soft = [ "2", "3" ]`: vCPU i prefers entry i; vCPUs past the end have no
    /// preference. It may be empty: xl then sets no affinity but still turns libxl's NUMA
    /// placement off.
    PerVcpu(Vec<Vec<u32>>),
}

/// Defines a word-valued setting: a Rust enum with its xl.cfg words (which libxl compares
/// case-insensitively) and its libxl constants.
macro_rules! xl_words {
    ($(#[$meta:meta])* $name:ident: $libxl:ident, $expected:literal {
        $($(#[$vmeta:meta])* $variant:ident = $word:literal => $constant:ident,)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            const ALL: &[$name] = &[$($name::$variant,)*];
            /// What the error for another word lists.
            pub(crate) const EXPECTED: &str = $expected;

            /// The xl.cfg word.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)*
                }
            }

            /// Parses the xl.cfg word, in any case as libxl does.
            pub fn from_xl(word: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(word))
            }

            fn to_libxl(self) -> xen_sys::$libxl {
                match self {
                    $($name::$variant => xen_sys::$constant,)*
                }
            }
        }
    };
}

xl_words! {
    /// How devices passed through reach the guest's memory through the IOMMU (xl.cfg's
    /// `passthrough`; its `default` is `None`, libxl's choice from the devices given).
    Passthrough: libxl_passthrough, "default, disabled, enabled, sync_pt or share_pt" {
        /// No passthrough: devices cannot be added later either.
        Disabled = "disabled" => LIBXL_PASSTHROUGH_DISABLED,
        /// Whichever of the two modes below the platform supports.
        Enabled = "enabled" => LIBXL_PASSTHROUGH_ENABLED,
        /// IOMMU page tables kept in sync with the guest's memory map.
        SyncPt = "sync_pt" => LIBXL_PASSTHROUGH_SYNC_PT,
        /// IOMMU page tables shared with the CPU's (HAP).
        SharePt = "share_pt" => LIBXL_PASSTHROUGH_SHARE_PT,
    }
}

xl_words! {
    /// The ARM interrupt controller to emulate (xl.cfg's `gic_version`; `default` is `None`).
    GicVersion: libxl_gic_version, "default, v2 or v3" {
        /// GICv2.
        V2 = "v2" => LIBXL_GIC_VERSION_V2,
        /// GICv3.
        V3 = "v3" => LIBXL_GIC_VERSION_V3,
    }
}

xl_words! {
    /// The trusted execution environment the guest may call (xl.cfg's `tee`, ARM; `none` is
    /// `None`).
    TeeType: libxl_tee_type, "none or optee" {
        /// OP-TEE.
        Optee = "optee" => LIBXL_TEE_TYPE_OPTEE,
    }
}

xl_words! {
    /// An emulated UART for the guest's early console (xl.cfg's `vuart`, ARM; `unknown` is
    /// `None`).
    VuartType: libxl_vuart_type, "sbsa_uart" {
        /// The SBSA generic UART.
        SbsaUart = "sbsa_uart" => LIBXL_VUART_TYPE_SBSA_UART,
    }
}

/// The PVH shim: a Xen that runs a PV kernel inside a PVH guest (xl.cfg's `pvshim`,
/// `pvshim_path`, `pvshim_cmdline`, `pvshim_extra`; PVH guests only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PvShimSpec {
    /// `pvshim`: boot the kernel through the shim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable: Option<bool>,
    /// `pvshim_path`: the shim's binary, in dom0; libxl's when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `pvshim_cmdline`: the shim's command line, replacing libxl's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// `pvshim_extra`: added to the shim's command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<String>,
}

/// ARM-only settings (xl.cfg's `gic_version`, `vuart`, `tee`). xl reads them on x86 too and
/// passes them to libxl, which has no use for them there; so do we.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArmSpec {
    /// `gic_version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gic_version: Option<GicVersion>,
    /// `vuart`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vuart: Option<VuartType>,
    /// `tee`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tee: Option<TeeType>,
}

/// How a guest is run beyond its size, boot and devices; see the module documentation.
/// `Default` leaves everything to libxl.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TuningSpec {
    /// The CPU pool to create the domain in, by name (`pool`); libxl's default pool when
    /// `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Scheduler parameters.
    #[serde(skip_serializing_if = "is_default")]
    pub sched: SchedParams,
    /// Soft vCPU affinity (`cpus_soft`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soft_affinity: Option<SoftAffinity>,
    /// Virtual NUMA nodes (`vnuma`), in order: node i is the guest's node i. Their sizes add
    /// up to the maximum memory and their vCPUs are the vCPUs 0 to the maximum, each in one
    /// node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vnuma: Vec<VnumaNode>,
    /// The XSM label the domain is built with (`init_seclabel`); with it, [`seclabel`] is
    /// the label it runs with once built.
    ///
    /// [`seclabel`]: TuningSpec::seclabel
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_seclabel: Option<String>,
    /// The domain's XSM label (`seclabel`), e.g. `system_u:system_r:domU_t`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seclabel: Option<String>,
    /// Most event channels the guest may use (`max_event_channels`; libxl's default 1023).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_event_channels: Option<u32>,
    /// Most grant-table mapping frames (`max_maptrack_frames`); xl.conf's or Xen's default
    /// when `None`. At most 2^31 - 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_maptrack_frames: Option<u32>,
    /// The highest grant-table version the guest may use (`max_grant_version`); xl.conf's or
    /// Xen's default when `None`. At most 2^31 - 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_grant_version: Option<u32>,
    /// Per-vCPU processor trace buffers, KiB (`vmtrace_buf_kb`); none when `None`. At most
    /// 2^31 - 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmtrace_buf_kb: Option<u32>,
    /// Out-of-sync shadow page tables (`oos`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oos: Option<bool>,
    /// A virtual performance monitoring unit (`vpmu`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpmu: Option<bool>,
    /// The guest runs device backends for others (`driver_domain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_domain: Option<bool>,
    /// Write the suspend event channel where xend put it (`xend_suspend_evtchn_compat`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xend_suspend_evtchn_compat: Option<bool>,
    /// The IOMMU mode for devices passed through (`passthrough`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<Passthrough>,
    /// The PVH shim (PVH guests only).
    #[serde(skip_serializing_if = "is_default")]
    pub pvshim: PvShimSpec,
    /// ARM settings.
    #[serde(skip_serializing_if = "is_default")]
    pub arm: ArmSpec,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl TuningSpec {
    /// Whether everything is left to libxl (then a spec's JSON leaves it out).
    pub fn is_default(&self) -> bool {
        is_default(self)
    }
}

/// The xl.cfg key (and list index) a `tuning.*` field of [`DomainSpec`] comes from, for
/// errors about it.
pub(crate) fn xl_key_of_field(field: &str) -> Option<(&'static str, Option<usize>)> {
    let rest = field.strip_prefix("tuning.")?;
    let (name, sub) = match rest.find(['[', '.']) {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let index = sub.strip_prefix('[').and_then(|s| s.split(']').next()).and_then(|n| n.parse().ok());
    let key = match (name, sub.strip_prefix('.')) {
        ("soft_affinity", _) => "cpus_soft",
        ("sched", Some(param)) => KEYS.iter().copied().find(|k| *k == param).unwrap_or("period"),
        ("sched", None) => "period",
        ("pvshim", Some("path")) => "pvshim_path",
        ("pvshim", Some("cmdline")) => "pvshim_cmdline",
        ("pvshim", Some("extra")) => "pvshim_extra",
        ("pvshim", _) => "pvshim",
        ("arm", Some("vuart")) => "vuart",
        ("arm", Some("tee")) => "tee",
        ("arm", _) => "gic_version",
        (other, _) => KEYS.iter().copied().find(|k| *k == other)?,
    };
    Some((key, index))
}

/// The xl.cfg keys whose names are those of their fields.
const KEYS: &[&str] = &[
    "pool",
    "vnuma",
    "init_seclabel",
    "seclabel",
    "max_event_channels",
    "max_maptrack_frames",
    "max_grant_version",
    "vmtrace_buf_kb",
    "oos",
    "vpmu",
    "driver_domain",
    "xend_suspend_evtchn_compat",
    "passthrough",
    "period",
    "slice",
    "latency",
    "extratime",
];

impl DomainSpec {
    /// The maximum vCPUs as xl hands it to libxl, which is what sizes `cpus_soft` and
    /// `vnuma`: 0 for a config stating neither `vcpus` nor `maxvcpus`.
    pub(crate) fn xl_max_vcpus(&self) -> u32 {
        if self.vcpus_unstated { self.max_vcpus.unwrap_or(0) } else { self.effective_max_vcpus() }
    }

    /// Validation of [`DomainSpec::tuning`]; part of [`DomainSpec::validate`].
    pub(crate) fn validate_tuning(&self) -> Result<()> {
        let t = &self.tuning;
        match &t.soft_affinity {
            None => {}
            Some(SoftAffinity::AllVcpus(cpus)) => check_cpus("tuning.soft_affinity", cpus)?,
            Some(SoftAffinity::PerVcpu(sets)) => {
                let max = self.xl_max_vcpus();
                if sets.len() > max as usize {
                    let n = sets.len().to_string();
                    return Err(Error::invalid("tuning.soft_affinity", n, format!("more entries than vCPUs ({max})")));
                }
                for (i, cpus) in sets.iter().enumerate() {
                    check_cpus(&format!("tuning.soft_affinity[{i}]"), cpus)?;
                }
            }
        }
        for (field, n) in [
            ("tuning.max_maptrack_frames", t.max_maptrack_frames),
            ("tuning.max_grant_version", t.max_grant_version),
            ("tuning.vmtrace_buf_kb", t.vmtrace_buf_kb),
        ] {
            if let Some(n) = n.filter(|&n| i32::try_from(n).is_err()) {
                return Err(Error::invalid(field, n.to_string(), "more than 2147483647"));
            }
        }
        if self.kind != DomainKind::Pvh && !is_default(&t.pvshim) {
            return Err(Error::invalid("tuning.pvshim", "", format!("applies to PVH guests only, not {}", self.kind)));
        }
        crate::vnuma::validate(self)
    }

    /// Fills what [`DomainSpec::tuning`] says into a config `to_libxl` has filled the rest of
    /// (the vCPU count and the host's defaults from xl.conf included: a grant limit of the
    /// domain's own wins over xl.conf's, as in xl).
    pub(crate) fn fill_tuning(&self, d: &mut xen_sys::libxl_domain_config) -> Result<()> {
        let t = &self.tuning;
        let c = &mut d.c_info;
        c.pool_name = raw::strdup_opt("tuning.pool", t.pool.as_deref())?;
        // init_seclabel labels the domain while it is built and seclabel is what it runs as;
        // without init_seclabel, seclabel is its only label (xl's parse_config_data).
        let (label, exec_label) = match (&t.init_seclabel, &t.seclabel) {
            (Some(init), exec) => (Some(init), exec.as_ref()),
            (None, only) => (only.as_ref(), None),
        };
        c.ssid_label = raw::strdup_opt("tuning.seclabel", label.map(String::as_str))?;
        set_defbool(&mut c.oos, t.oos);
        set_defbool(&mut c.driver_domain, t.driver_domain);
        set_defbool(&mut c.xend_suspend_evtchn_compat, t.xend_suspend_evtchn_compat);
        if let Some(p) = t.passthrough {
            c.passthrough = p.to_libxl();
        }
        let b = &mut d.b_info;
        b.exec_ssid_label = raw::strdup_opt("tuning.seclabel", exec_label.map(String::as_str))?;
        let s = &mut b.sched_params;
        for (slot, value) in
            [(&mut s.period, t.sched.period), (&mut s.slice, t.sched.slice), (&mut s.latency, t.sched.latency)]
        {
            if let Some(v) = value {
                *slot = v;
            }
        }
        if let Some(v) = t.sched.extratime {
            s.extratime = v;
        }
        if let Some(affinity) = &t.soft_affinity {
            fill_soft_affinity(b, affinity)?;
        }
        if let Some(n) = t.max_event_channels {
            b.event_channels = n;
        }
        if let Some(n) = t.max_maptrack_frames {
            b.max_maptrack_frames = n;
        }
        // validate() bounds these to i32.
        if let Some(n) = t.max_grant_version {
            b.max_grant_version = i32::try_from(n).unwrap_or(i32::MAX);
        }
        if let Some(kb) = t.vmtrace_buf_kb {
            b.vmtrace_buf_kb = i32::try_from(kb).unwrap_or(i32::MAX);
        }
        set_defbool(&mut b.vpmu, t.vpmu);
        if self.kind == DomainKind::Pvh {
            // SAFETY: init_type(PVH) made `pvh` the active union member.
            let pvh = unsafe { &mut b.u.pvh };
            set_defbool(&mut pvh.pvshim, t.pvshim.enable);
            pvh.pvshim_path = raw::strdup_opt("tuning.pvshim.path", t.pvshim.path.as_deref())?;
            pvh.pvshim_cmdline = raw::strdup_opt("tuning.pvshim.cmdline", t.pvshim.cmdline.as_deref())?;
            pvh.pvshim_extra = raw::strdup_opt("tuning.pvshim.extra", t.pvshim.extra.as_deref())?;
        }
        if let Some(v) = t.arm.gic_version {
            b.arch_arm.gic_version = v.to_libxl();
        }
        if let Some(v) = t.arm.vuart {
            b.arch_arm.vuart = v.to_libxl();
        }
        if let Some(v) = t.arm.tee {
            b.tee = v.to_libxl();
        }
        crate::vnuma::fill_libxl(&t.vnuma, b)
    }

    /// The xl.cfg lines of [`DomainSpec::tuning`], for `to_xl_config`.
    pub(crate) fn tuning_lines(&self) -> Vec<(&'static str, String)> {
        let t = &self.tuning;
        let mut out = Vec::new();
        let mut text = |key, value: &Option<String>| {
            if let Some(v) = value {
                out.push((key, quote(v)));
            }
        };
        text("pool", &t.pool);
        text("init_seclabel", &t.init_seclabel);
        text("seclabel", &t.seclabel);
        text("pvshim_path", &t.pvshim.path);
        text("pvshim_cmdline", &t.pvshim.cmdline);
        text("pvshim_extra", &t.pvshim.extra);
        let s = &t.sched;
        for (key, v) in [("period", s.period), ("slice", s.slice), ("latency", s.latency), ("extratime", s.extratime)] {
            // libxlutil reads a bare number as digits only: a negative one goes in quotes.
            out.extend(v.map(|v| (key, if v < 0 { quote(&v.to_string()) } else { v.to_string() })));
        }
        for (key, n) in [
            ("max_event_channels", t.max_event_channels),
            ("max_maptrack_frames", t.max_maptrack_frames),
            ("max_grant_version", t.max_grant_version),
            ("vmtrace_buf_kb", t.vmtrace_buf_kb),
        ] {
            out.extend(n.map(|n| (key, n.to_string())));
        }
        for (key, flag) in [
            ("oos", t.oos),
            ("vpmu", t.vpmu),
            ("driver_domain", t.driver_domain),
            ("xend_suspend_evtchn_compat", t.xend_suspend_evtchn_compat),
            ("pvshim", t.pvshim.enable),
        ] {
            out.extend(flag.map(|f| (key, u8::from(f).to_string())));
        }
        let words = [
            ("passthrough", t.passthrough.map(Passthrough::as_str)),
            ("gic_version", t.arm.gic_version.map(GicVersion::as_str)),
            ("vuart", t.arm.vuart.map(VuartType::as_str)),
            ("tee", t.arm.tee.map(TeeType::as_str)),
        ];
        out.extend(words.into_iter().filter_map(|(key, w)| w.map(|w| (key, quote(w)))));
        match &t.soft_affinity {
            None => {}
            Some(SoftAffinity::AllVcpus(cpus)) => out.push(("cpus_soft", quote(&cpu_list(cpus)))),
            Some(SoftAffinity::PerVcpu(sets)) => {
                let items: Vec<String> = sets.iter().map(|s| quote(&cpu_list(s))).collect();
                out.push(("cpus_soft", format!("[ {} ]", items.join(", "))));
            }
        }
        if !t.vnuma.is_empty() {
            out.push(("vnuma", crate::vnuma::to_xl(&t.vnuma)));
        }
        out
    }
}

/// A CPU set as xl reads it back: sorted, once each.
fn cpu_list(cpus: &[u32]) -> String {
    let mut set = cpus.to_vec();
    set.sort_unstable();
    set.dedup();
    set.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// A CPU set to prefer: not empty, each CPU below 4096.
fn check_cpus(field: &str, cpus: &[u32]) -> Result<()> {
    if cpus.is_empty() {
        return Err(Error::invalid(field, "", "no CPU to run on"));
    }
    match cpus.iter().find(|&&c| c >= 4096) {
        Some(cpu) => Err(Error::invalid(field, cpu.to_string(), "CPU numbers go up to 4095")),
        None => Ok(()),
    }
}

/// Soft affinity as xl's parse_vcpu_affinity sets it: the one set for each of the
/// `b.max_vcpus` vCPUs, or entry i for vCPU i; libxl's NUMA placement off either way.
fn fill_soft_affinity(b: &mut xen_sys::libxl_domain_build_info, affinity: &SoftAffinity) -> Result<()> {
    let sets: Vec<&[u32]> = match affinity {
        SoftAffinity::AllVcpus(cpus) => vec![cpus.as_slice(); usize::try_from(b.max_vcpus).unwrap_or(0)],
        SoftAffinity::PerVcpu(sets) => sets.iter().map(Vec::as_slice).collect(),
    };
    b.vcpu_soft_affinity = raw::calloc_array(sets.len())?;
    b.num_vcpu_soft_affinity = i32::try_from(sets.len()).unwrap_or(i32::MAX);
    for (i, cpus) in sets.into_iter().enumerate() {
        // SAFETY: the array holds num_vcpu_soft_affinity zeroed (empty, disposable) bitmaps.
        let map = unsafe { &mut *b.vcpu_soft_affinity.add(i) };
        fill_bitmap_bits(map, cpus)?;
    }
    set_defbool(&mut b.numa_placement, Some(false));
    Ok(())
}

#[cfg(test)]
#[path = "tuning_tests.rs"]
mod tests;
