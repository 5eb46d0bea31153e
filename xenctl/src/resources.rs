//! Host hardware handed to a guest directly, outside any device model: x86 I/O port ranges
//! (xl.cfg's `ioports`), physical IRQs (`irqs`), machine memory pages (`iomem`), reserved
//! device memory (`rdm`, `rdm_mem_boundary`) and device-tree passthrough (`dtdev`,
//! `device_tree`). [`HostResources`] is the plain-data part of [`DomainSpec`]; this module reads
//! it from xl.cfg the way xl 4.17 does (C's `strtoul`/`sscanf` number syntax, libxlutil's own
//! `xlu_rdm_parse`), fills it into libxl's domain config and writes it back as xl.cfg lines.

use serde::{Deserialize, Serialize};

use crate::cnum::strtoul;
use crate::error::{Error, Result};
use crate::raw;
use crate::spec::DomainSpec;
use crate::types::DomainKind;
use crate::xlread::Reader;
use crate::xlu::XluConfig;

/// A range of x86 I/O ports the guest may access (`ioports = [ "2f8-2ff" ]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoportRange {
    /// The first port.
    pub first: u32,
    /// How many ports, from `first` on; at least 1.
    pub count: u32,
}

impl IoportRange {
    /// The ports `first` to `last`, both included.
    pub fn new(first: u32, last: u32) -> IoportRange {
        IoportRange { first, count: last.wrapping_sub(first).wrapping_add(1) }
    }
}

/// Machine memory pages the guest may map (`iomem = [ "fed00,1@fed00" ]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IomemRange {
    /// The first machine frame number (page number).
    pub start: u64,
    /// How many pages.
    pub pages: u64,
    /// The guest frame the range starts at; `None` maps it 1:1 (at `start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gfn: Option<u64>,
}

impl IomemRange {
    /// Reads a range as xl reads an `iomem` item: `START,PAGES[@GFN]`, in hex.
    pub fn from_xl(text: &str) -> std::result::Result<IomemRange, String> {
        iomem_from_xl(text)
    }
}

/// Which reserved device memory (RDM) regions libxl keeps out of an HVM guest's RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RdmStrategy {
    /// Only those of the guest's PCI devices (libxl's default).
    Ignore,
    /// Every region the host reports (`strategy=host`).
    Host,
}

/// What libxl does when a reserved region overlaps guest RAM (`policy=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RdmPolicy {
    /// Fail the domain's creation.
    Strict,
    /// Warn and leave the region out of the guest's memory map.
    Relaxed,
    /// What xl 4.17 leaves: its libxlutil never stores a policy it reads (a valid `policy=`
    /// makes it give up on the whole setting), so every `rdm` setting xl applies carries
    /// uninitialised memory, which libxl takes for neither policy: RDM conflicts are let
    /// through, and assigning a PCI device fails ("unknown rdm check flag"). Kept so that
    /// such an xl.cfg file builds here the domain it builds with xl.
    XlUndefined,
}

/// The `rdm` setting: reserved device memory, for PCI passthrough to HVM guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdmSpec {
    /// Which regions to reserve.
    pub strategy: RdmStrategy,
    /// What to do on a conflict; `None` for libxl's default (relaxed). xl also gives it to
    /// every PCI device of the guest, whatever the guest's type.
    pub policy: Option<RdmPolicy>,
}

/// A value of libxl's RDM policy enum that is none of its values, standing for xl's
/// uninitialised one ([`RdmPolicy::XlUndefined`]); libxl's JSON prints it as `null`.
const XL_UNDEFINED_RDM_POLICY: xen_sys::libxl_rdm_reserve_policy = 0x7fff_0000;

impl RdmPolicy {
    pub(crate) fn to_libxl(policy: Option<RdmPolicy>) -> xen_sys::libxl_rdm_reserve_policy {
        match policy {
            None => xen_sys::LIBXL_RDM_RESERVE_POLICY_INVALID,
            Some(RdmPolicy::Strict) => xen_sys::LIBXL_RDM_RESERVE_POLICY_STRICT,
            Some(RdmPolicy::Relaxed) => xen_sys::LIBXL_RDM_RESERVE_POLICY_RELAXED,
            Some(RdmPolicy::XlUndefined) => XL_UNDEFINED_RDM_POLICY,
        }
    }
}

/// Host hardware a guest gets direct access to. Every list is empty and every option `None`
/// by default: nothing beyond its devices.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostResources {
    /// x86 I/O port ranges (`ioports`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ioports: Vec<IoportRange>,
    /// Physical IRQs (`irqs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub irqs: Vec<u32>,
    /// Machine memory ranges (`iomem`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iomem: Vec<IomemRange>,
    /// Reserved device memory (`rdm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdm: Option<RdmSpec>,
    /// Where RDM conflicts below it are handled by the policy and those above by moving the
    /// end of low memory, MiB (`rdm_mem_boundary`; HVM; libxl's default 2048).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdm_mem_boundary_mib: Option<u64>,
    /// Host device-tree nodes to pass through, by path (`dtdev`; Arm: libxl on x86 takes them
    /// but cannot assign them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dtdevs: Vec<String>,
    /// A partial device tree whose `/passthrough` node is copied into the guest's
    /// (`device_tree`; Arm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_tree: Option<String>,
}

impl HostResources {
    /// Whether nothing is set.
    pub fn is_unset(&self) -> bool {
        *self == HostResources::default()
    }

    /// Checks what libxl would refuse late or misread; errors name the field (under
    /// `resources.`) and the value.
    pub(crate) fn validate(&self, kind: DomainKind) -> Result<()> {
        for (i, r) in self.ioports.iter().enumerate() {
            let end = u64::from(r.first) + u64::from(r.count);
            if r.count == 0 || end > u64::from(u32::MAX) {
                return Err(Error::invalid(
                    format!("resources.ioports[{i}]"),
                    format!("{:x}+{}", r.first, r.count),
                    "needs at least one port, all below ffffffff",
                ));
            }
        }
        if let Some((i, irq)) = self.irqs.iter().enumerate().find(|(_, irq)| **irq == u32::MAX) {
            return Err(Error::invalid(format!("resources.irqs[{i}]"), irq.to_string(), "too big (xl's limit)"));
        }
        if let Some(i) = self.iomem.iter().position(|m| m.gfn == Some(u64::MAX)) {
            return Err(Error::invalid(
                format!("resources.iomem[{i}].gfn"),
                "ffffffffffffffff",
                "is libxl's \"no GFN\"; use None for a 1:1 mapping",
            ));
        }
        if let Some(mib) = self.rdm_mem_boundary_mib {
            if kind != DomainKind::Hvm {
                return Err(Error::invalid("resources.rdm_mem_boundary_mib", "", "applies to HVM guests only"));
            }
            if mib > MAX_BOUNDARY_MIB {
                return Err(Error::invalid("resources.rdm_mem_boundary_mib", mib.to_string(), "more than 4 PiB"));
            }
        }
        for (i, path) in self.dtdevs.iter().enumerate() {
            if path.is_empty() {
                return Err(Error::invalid(format!("resources.dtdevs[{i}]"), "", "an empty device-tree path"));
            }
        }
        Ok(())
    }

    /// Fills these resources into `d`, whose build info is initialised for `kind` and whose
    /// PCI devices are filled: an `rdm` policy goes to each of them, as xl gives it.
    pub(crate) fn fill_libxl(&self, kind: DomainKind, d: &mut xen_sys::libxl_domain_config) -> Result<()> {
        let b = &mut d.b_info;
        b.ioports = raw::calloc_array(self.ioports.len())?;
        b.num_ioports = count(self.ioports.len());
        for (i, r) in self.ioports.iter().enumerate() {
            // SAFETY: ioports has num_ioports zeroed elements (a plain struct of two numbers).
            let slot = unsafe { &mut *b.ioports.add(i) };
            slot.first = r.first;
            slot.number = r.count;
        }
        b.irqs = raw::calloc_array(self.irqs.len())?;
        b.num_irqs = count(self.irqs.len());
        for (i, irq) in self.irqs.iter().enumerate() {
            // SAFETY: irqs has num_irqs elements.
            unsafe { *b.irqs.add(i) = *irq };
        }
        b.iomem = raw::calloc_array(self.iomem.len())?;
        b.num_iomem = count(self.iomem.len());
        for (i, m) in self.iomem.iter().enumerate() {
            // SAFETY: iomem has num_iomem zeroed elements; init sets gfn to libxl's "none".
            let slot = unsafe { &mut *b.iomem.add(i) };
            // SAFETY: slot is a valid element of the array.
            unsafe { xen_sys::libxl_iomem_range_init(slot) };
            slot.start = m.start;
            slot.number = m.pages;
            if let Some(gfn) = m.gfn {
                slot.gfn = gfn;
            }
        }
        b.device_tree = raw::strdup_opt("resources.device_tree", self.device_tree.as_deref())?;
        if kind == DomainKind::Hvm {
            // SAFETY: to_libxl ran init_type(HVM), so `hvm` is the active union member.
            let hvm = unsafe { &mut b.u.hvm };
            if let Some(mib) = self.rdm_mem_boundary_mib {
                hvm.rdm_mem_boundary_memkb = mib * 1024; // validate() bounds it
            }
            if let Some(rdm) = self.rdm {
                hvm.rdm.strategy = match rdm.strategy {
                    RdmStrategy::Ignore => xen_sys::LIBXL_RDM_RESERVE_STRATEGY_IGNORE,
                    RdmStrategy::Host => xen_sys::LIBXL_RDM_RESERVE_STRATEGY_HOST,
                };
                hvm.rdm.policy = RdmPolicy::to_libxl(rdm.policy);
            }
        }
        if let Some(rdm) = self.rdm {
            // xl starts every PCI device from the global policy (for PV and PVH guests too,
            // where it is meaningless). A device's own policy, had it one, would differ from
            // the value to_libxl leaves for the guest type, and is kept.
            let untouched = match kind {
                DomainKind::Hvm => xen_sys::LIBXL_RDM_RESERVE_POLICY_INVALID,
                _ => xen_sys::LIBXL_RDM_RESERVE_POLICY_STRICT,
            };
            for i in 0..usize::try_from(d.num_pcidevs).unwrap_or(0) {
                // SAFETY: pcidevs has num_pcidevs initialised elements.
                let pci = unsafe { &mut *d.pcidevs.add(i) };
                if pci.rdm_policy == untouched {
                    pci.rdm_policy = RdmPolicy::to_libxl(rdm.policy);
                }
            }
        }
        d.dtdevs = raw::calloc_array(self.dtdevs.len())?;
        d.num_dtdevs = count(self.dtdevs.len());
        for (i, path) in self.dtdevs.iter().enumerate() {
            // SAFETY: dtdevs has num_dtdevs zeroed elements; init each once before filling it.
            let slot = unsafe { &mut *d.dtdevs.add(i) };
            // SAFETY: slot is a valid element of the array.
            unsafe { xen_sys::libxl_device_dtdev_init(slot) };
            slot.path = raw::strdup(&format!("resources.dtdevs[{i}]"), path)?;
        }
        Ok(())
    }

    /// These resources as xl.cfg lines; nothing for what is unset.
    pub(crate) fn xl_lines(&self) -> Result<Vec<(&'static str, String)>> {
        let mut out = Vec::new();
        let list = |items: Vec<String>| crate::xlcfg::list(&items);
        if !self.ioports.is_empty() {
            let ranges = self.ioports.iter().map(|r| match r.count {
                1 => format!("{:x}", r.first),
                n => format!("{:x}-{:x}", r.first, r.first.wrapping_add(n - 1)),
            });
            out.push(("ioports", list(ranges.collect())));
        }
        if !self.irqs.is_empty() {
            out.push(("irqs", format!("[ {} ]", self.irqs.iter().map(u32::to_string).collect::<Vec<_>>().join(", "))));
        }
        if !self.iomem.is_empty() {
            let ranges = self.iomem.iter().map(|m| match m.gfn {
                Some(gfn) => format!("{:x},{:x}@{gfn:x}", m.start, m.pages),
                None => format!("{:x},{:x}", m.start, m.pages),
            });
            out.push(("iomem", list(ranges.collect())));
        }
        if let Some(rdm) = self.rdm {
            out.push(("rdm", format!("\"{}\"", rdm_xl_text(rdm)?)));
        }
        if let Some(mib) = self.rdm_mem_boundary_mib {
            out.push(("rdm_mem_boundary", mib.to_string()));
        }
        if !self.dtdevs.is_empty() {
            out.push(("dtdev", crate::xlcfg::list(&self.dtdevs)));
        }
        if let Some(dt) = &self.device_tree {
            out.push(("device_tree", crate::xlcfg::quote(dt)));
        }
        Ok(out)
    }
}

/// The `rdm` text xl reads as `rdm`. xl 4.17 can say only what its libxlutil leaves: the host
/// strategy, with the policy undefined.
fn rdm_xl_text(rdm: RdmSpec) -> Result<&'static str> {
    match (rdm.strategy, rdm.policy) {
        (RdmStrategy::Host, Some(RdmPolicy::XlUndefined)) => Ok("strategy=host"),
        (strategy, policy) => Err(Error::invalid(
            "resources.rdm",
            format!("{strategy:?}/{policy:?}"),
            "xl 4.17 cannot say this: it ignores an rdm setting with a valid policy, and leaves the policy undefined otherwise",
        )),
    }
}

/// 4 PiB, as memory is bounded: far from overflowing libxl's KiB.
const MAX_BOUNDARY_MIB: u64 = 1 << 32;

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// An I/O port range as xl reads one: `START[-END]` in hex (with `strtoul`), each below
/// ffffffff. Text after a lone port xl complains about and skips: `Ok` with that complaint.
pub(crate) fn ioport_from_xl(text: &str) -> std::result::Result<(IoportRange, Option<String>), String> {
    let (first, n) = strtoul(text, 16);
    if n == 0 {
        return Err("not an I/O port range like 2f8-2ff (hex)".into());
    }
    if first >= u64::from(u32::MAX) {
        return Err(format!("port {first:x} too big"));
    }
    let first = first as u32; // just checked
    let rest = &text[n..];
    let Some(end_text) = rest.strip_prefix('-') else {
        let note = (!rest.is_empty()).then(|| format!("xl reads the port {first:x} and skips {rest:?}"));
        return Ok((IoportRange { first, count: 1 }, note));
    };
    let (last, m) = strtoul(end_text, 16);
    if m == 0 || m != end_text.len() {
        return Err("not an I/O port range like 2f8-2ff (hex)".into());
    }
    if last >= u64::from(u32::MAX) {
        return Err(format!("port {last:x} too big"));
    }
    if last < u64::from(first) {
        // xl 4.17 compares before it reads the end, and makes a range that wraps around,
        // which Xen refuses when the domain is built.
        return Err(format!("ends at {last:x}, before it starts"));
    }
    Ok((IoportRange::new(first, last as u32), None))
}

/// An IRQ as xl reads one: a decimal number (with `strtoul`) below 4294967295.
pub(crate) fn irq_from_xl(text: &str) -> std::result::Result<u32, String> {
    let (irq, n) = strtoul(text, 10);
    if n == 0 || n != text.len() {
        return Err("not an IRQ number".into());
    }
    u32::try_from(irq).ok().filter(|&i| i != u32::MAX).ok_or_else(|| format!("irq {irq:x} too big"))
}

/// An I/O memory range as xl reads one (`sscanf` of `%x,%x` and an optional `@%x`):
/// `START,PAGES[@GFN]`, in hex.
pub(crate) fn iomem_from_xl(text: &str) -> std::result::Result<IomemRange, String> {
    let bad = || "not an I/O memory range like fed00,1 or fed00,1@fed00 (hex)".to_string();
    let (start, n) = strtoul(text, 16);
    let rest = text[n..].strip_prefix(',').filter(|_| n > 0).ok_or_else(bad)?;
    let (pages, m) = strtoul(rest, 16);
    if m == 0 {
        return Err(bad());
    }
    let gfn = match &rest[m..] {
        "" => None,
        tail => {
            let gfn_text = tail.strip_prefix('@').ok_or_else(bad)?;
            let (gfn, k) = strtoul(gfn_text, 16);
            if k == 0 || k != gfn_text.len() {
                return Err(bad());
            }
            // libxl's "no GFN": the same as none given.
            (gfn != u64::MAX).then_some(gfn)
        }
    };
    Ok(IomemRange { start, pages, gfn })
}

/// What xl makes of an `rdm` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RdmOutcome {
    /// xl applies it; libxlutil may have complained about part of it all the same.
    Applied(RdmSpec, Option<String>),
    /// xl ignores it, for this reason (libxlutil's complaint, if it made one).
    Ignored(String),
}

/// What xl makes of an `rdm` string, read by libxlutil's own `xlu_rdm_parse`. An error for
/// what xl would take from uninitialised memory and we cannot mirror.
pub(crate) fn rdm_from_xl(text: &str) -> Result<RdmOutcome> {
    let text_c = raw::c_string("rdm", text)?;
    let mut xlu = XluConfig::new("rdm")?;
    // xl hands the parser an uninitialised struct, and keeps what it does not set. Marks
    // show what the parser set.
    const UNSET_STRATEGY: xen_sys::libxl_rdm_reserve_strategy = 0x7fff_0000;
    let mut rdm = xen_sys::libxl_rdm_reserve { strategy: UNSET_STRATEGY, policy: XL_UNDEFINED_RDM_POLICY };
    // SAFETY: xlu is live, rdm a valid struct of plain numbers, text_c a C string; the parser
    // reads the string and writes only the two numbers.
    let rc = unsafe { xen_sys::xlu_rdm_parse(xlu.as_ptr(), &mut rdm, text_c.as_ptr()) };
    let said = xlu.take_report().trim().to_string();
    if rc != 0 {
        return Ok(RdmOutcome::Ignored(if said.is_empty() { "its parser refuses it".into() } else { said }));
    }
    let strategy = match rdm.strategy {
        xen_sys::LIBXL_RDM_RESERVE_STRATEGY_HOST => RdmStrategy::Host,
        xen_sys::LIBXL_RDM_RESERVE_STRATEGY_IGNORE => RdmStrategy::Ignore,
        _ => {
            return Err(Error::invalid(
                "rdm",
                text,
                "without strategy=host, xl 4.17 takes the strategy from uninitialised memory; give strategy=host",
            ));
        }
    };
    let policy = match rdm.policy {
        xen_sys::LIBXL_RDM_RESERVE_POLICY_STRICT => Some(RdmPolicy::Strict),
        xen_sys::LIBXL_RDM_RESERVE_POLICY_RELAXED => Some(RdmPolicy::Relaxed),
        xen_sys::LIBXL_RDM_RESERVE_POLICY_INVALID => None,
        _ => Some(RdmPolicy::XlUndefined),
    };
    Ok(RdmOutcome::Applied(RdmSpec { strategy, policy }, (!said.is_empty()).then_some(said)))
}

/// Reads `ioports`, `irqs`, `iomem`, `rdm`, `rdm_mem_boundary` (HVM), `dtdev` and
/// `device_tree`, as xl does for every guest type. A value of the wrong shape (one value
/// where xl wants a list, or the reverse) xl ignores with a warning; so does this.
pub(crate) fn read_resources(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    let res = &mut spec.resources;
    for (i, item) in r.list_or_ignore("ioports")?.unwrap_or_default().iter().enumerate() {
        let (range, note) = ioport_from_xl(item).map_err(|e| r.item_err("ioports", i, format!("{item:?}: {e}")))?;
        if let Some(note) = note {
            log::warn!("{}: ioports[{i}]: {item:?}: {note}", r.at("ioports"));
        }
        res.ioports.push(range);
    }
    for (i, item) in r.list_or_ignore("irqs")?.unwrap_or_default().iter().enumerate() {
        res.irqs.push(irq_from_xl(item).map_err(|e| r.item_err("irqs", i, format!("{item:?}: {e}")))?);
    }
    for (i, item) in r.list_or_ignore("iomem")?.unwrap_or_default().iter().enumerate() {
        res.iomem.push(iomem_from_xl(item).map_err(|e| r.item_err("iomem", i, format!("{item:?}: {e}")))?);
    }
    if let Some(text) = r.string_or_ignore("rdm")? {
        match rdm_from_xl(&text).map_err(|e| r.err("rdm", crate::xlspecs::reason_of(e)))? {
            RdmOutcome::Applied(rdm, note) => {
                if let Some(note) = note {
                    log::warn!("{}: rdm: {text:?}: {note}; xl goes on without it", r.at("rdm"));
                }
                res.rdm = Some(rdm);
            }
            RdmOutcome::Ignored(why) => log::warn!("{}: rdm: {text:?}: ignored, as xl ignores it ({why})", r.at("rdm")),
        }
    }
    if spec.kind == DomainKind::Hvm
        && let Some(text) = r.string_or_ignore("rdm_mem_boundary")?
    {
        match r.string_or_number("rdm_mem_boundary")?.and_then(|n| n.parse::<i64>().ok()) {
            None => log::warn!(
                "{}: rdm_mem_boundary: {text:?} is not a number; ignored, as xl ignores it",
                r.at("rdm_mem_boundary")
            ),
            Some(mib) => {
                let mib = u64::try_from(mib)
                    .ok()
                    .filter(|&m| m <= MAX_BOUNDARY_MIB)
                    .ok_or_else(|| r.err("rdm_mem_boundary", format!("{mib}: must be 0 to {MAX_BOUNDARY_MIB} MiB")))?;
                res.rdm_mem_boundary_mib = Some(mib);
            }
        }
    }
    for (i, path) in r.list_or_ignore("dtdev")?.unwrap_or_default().into_iter().enumerate() {
        if path.is_empty() {
            return Err(r.item_err("dtdev", i, "an empty device-tree path"));
        }
        res.dtdevs.push(path);
    }
    res.device_tree = r.string_or_ignore("device_tree")?;
    Ok(())
}

#[cfg(test)]
#[path = "resources_tests.rs"]
mod tests;
