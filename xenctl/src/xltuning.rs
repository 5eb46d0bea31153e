//! Reading the keys of [`TuningSpec`](crate::tuning::TuningSpec) from an xl.cfg file, as xl
//! 4.17's parse_config_data reads them: `pool`, `seclabel`, `init_seclabel`, `period`,
//! `slice`, `latency`, `extratime`, `cpus_soft`, `vnuma`, `max_event_channels`,
//! `max_maptrack_frames`, `max_grant_version`, `vmtrace_buf_kb`, `oos`, `vpmu`,
//! `driver_domain`, `xend_suspend_evtchn_compat`, `passthrough`, the PVH shim's `pvshim*`,
//! the ARM keys `gic_version`, `vuart` and `tee`, and `vif2`, which xl only warns about.

use crate::error::Result;
use crate::spec::DomainSpec;
use crate::tuning::{GicVersion, Passthrough, SoftAffinity, TeeType, VuartType};
use crate::types::DomainKind;
use crate::xlread::{OneOrList, Reader};
use crate::xlu::ListItem;

/// Reads the tuning keys into `spec.tuning`; `vnuma` also sets the maximum memory and vCPUs,
/// so this runs after the sizes are read.
pub(crate) fn read_tuning(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    let t = &mut spec.tuning;
    t.pool = r.string("pool")?;
    t.init_seclabel = r.string("init_seclabel")?;
    t.seclabel = r.string("seclabel")?;
    t.oos = r.flag("oos")?;
    if spec.kind == DomainKind::Pvh {
        t.pvshim.enable = r.flag("pvshim")?;
        t.pvshim.path = r.string("pvshim_path")?;
        t.pvshim.cmdline = r.string("pvshim_cmdline")?;
        t.pvshim.extra = r.string("pvshim_extra")?;
    }
    // xl stores any number in libxl's int fields.
    let s = &mut t.sched;
    for (key, slot) in [
        ("period", &mut s.period),
        ("slice", &mut s.slice),
        ("latency", &mut s.latency),
        ("extratime", &mut s.extratime),
    ] {
        *slot = r.number::<i32>(key, i64::from(i32::MIN))?;
    }
    // xl keeps it in a long and libxl in a uint32_t: "-1" is 2^32 - 1.
    t.max_event_channels = r
        .number::<i64>("max_event_channels", -(1 << 31))?
        .map(wrap_u32)
        .transpose()
        .map_err(|n| r.err("max_event_channels", format!("{n}: too large")))?;
    t.max_maptrack_frames = grant_limit(r, "max_maptrack_frames")?;
    t.max_grant_version = grant_limit(r, "max_grant_version")?;
    // xl leaves 0 as libxl's default, which is no buffer.
    t.vmtrace_buf_kb = grant_limit(r, "vmtrace_buf_kb")?.filter(|&kb| kb != 0);
    t.vpmu = r.flag("vpmu")?;
    t.driver_domain = r.flag("driver_domain")?;
    t.xend_suspend_evtchn_compat = r.flag("xend_suspend_evtchn_compat")?;
    // The default words are libxl's defaults, which the spec says with None.
    t.passthrough = word(r, "passthrough", "default", Passthrough::from_xl, Passthrough::EXPECTED)?;
    t.arm.gic_version = word(r, "gic_version", "default", GicVersion::from_xl, GicVersion::EXPECTED)?;
    t.arm.tee = word(r, "tee", "none", TeeType::from_xl, TeeType::EXPECTED)?;
    t.arm.vuart = word(r, "vuart", "unknown", VuartType::from_xl, VuartType::EXPECTED)?;
    if r.has("vif2") {
        log::warn!("{}: vif2: netchannel2 is deprecated and not supported by xl; ignored", r.at("vif2"));
    }
    // The nodes may set the maximum vCPUs, which sizes cpus_soft.
    read_vnuma(r, spec)?;
    read_soft_affinity(r, spec)
}

/// A C long stored in a uint32_t, as C converts it, or `Err` with it where it does not fit
/// 32 bits at all.
fn wrap_u32(n: i64) -> std::result::Result<u32, i64> {
    match u32::try_from(n) {
        Ok(u) => Ok(u),
        Err(_) => i32::try_from(n).map(|i| u32::from_ne_bytes(i.to_ne_bytes())).map_err(|_| n),
    }
}

/// A number xl bounds to 0..=INT_MAX (and exits on without a word otherwise).
fn grant_limit(r: &mut Reader, key: &str) -> Result<Option<u32>> {
    let n = r.number::<u32>(key, 0)?;
    if let Some(n) = n.filter(|&n| i32::try_from(n).is_err()) {
        return Err(r.err(key, format!("{n}: more than 2147483647, which xl refuses")));
    }
    Ok(n)
}

/// A word libxl parses (in any case); `default` is libxl's own, `None`.
fn word<T>(
    r: &mut Reader,
    key: &str,
    default: &str,
    from_xl: fn(&str) -> Option<T>,
    expected: &str,
) -> Result<Option<T>> {
    match r.string(key)? {
        None => Ok(None),
        Some(w) if w.eq_ignore_ascii_case(default) => Ok(None),
        Some(w) => from_xl(&w).map(Some).ok_or_else(|| r.err(key, format!("{w:?}: expected {expected}"))),
    }
}

/// `cpus_soft`, one CPU list for every vCPU or a list per vCPU, as `cpus` is read.
fn read_soft_affinity(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    const KEY: &str = "cpus_soft";
    const ALL: &str = "`all' needs the host's CPUs, which are not known here \
                       (every CPU is where a vCPU may run anyway)";
    spec.tuning.soft_affinity = match r.string_or_list(KEY)? {
        None => None,
        Some(OneOrList::One(text)) => {
            let cpus = r.cpu_list(KEY, None, &text)?;
            if cpus.is_empty() {
                return Err(r.err(KEY, ALL));
            }
            Some(SoftAffinity::AllVcpus(cpus))
        }
        Some(OneOrList::List(items)) => {
            // xl ignores entries past the last vCPU (parse_vcpu_affinity).
            let max = spec.xl_max_vcpus() as usize;
            if items.len() > max {
                log::warn!(
                    "{}: {KEY}: {} entries for {max} vCPUs; the rest are ignored, as xl ignores them",
                    r.at(KEY),
                    items.len()
                );
            }
            let mut sets = Vec::new();
            for (i, item) in items.iter().take(max).enumerate() {
                let cpus = r.cpu_list(KEY, Some(i), item)?;
                if cpus.is_empty() {
                    return Err(r.item_err(KEY, i, ALL));
                }
                sets.push(cpus);
            }
            Some(SoftAffinity::PerVcpu(sets))
        }
    };
    Ok(())
}

/// `vnuma`: its nodes, and from them the maximum vCPUs and memory, which `maxvcpus` and
/// `maxmem`, if the file gives them, must match (xl's parse_vnuma_config).
fn read_vnuma(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    const KEY: &str = "vnuma";
    let Some(items) = r.list_of_lists(KEY)? else { return Ok(()) };
    let mut nodes = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Some(options) = item else {
            return Err(r.item_err(KEY, i, "a string, where xl expects a node's list [ \"size=...\", ... ]"));
        };
        let mut texts = Vec::new();
        for option in options {
            match option {
                ListItem::Text(t) => texts.push(t),
                ListItem::List => log::warn!("{}: {KEY}[{i}]: a nested list, which xl ignores; ignored", r.at(KEY)),
            }
        }
        let (node, unknown) = crate::vnuma::node_from_xl(&texts).map_err(|e| r.item_err(KEY, i, e))?;
        for name in unknown {
            log::warn!(
                "{}: {KEY}[{i}]: {name}: not a node option (pnode, size, vcpus, vdistances); ignored, as xl ignores it",
                r.at(KEY)
            );
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Ok(());
    }
    let vcpus = nodes.iter().map(|n| n.vcpus.len()).sum::<usize>();
    let vcpus = u32::try_from(vcpus).map_err(|_| r.err(KEY, "too many vCPUs"))?;
    if vcpus == 0 {
        return Err(r.err(KEY, "no node lists its vcpus=; libxl needs every vCPU in a node"));
    }
    if let Some(max) = r.number::<u32>("maxvcpus", 1)?
        && max != vcpus
    {
        return Err(r.err(KEY, format!("its nodes have {vcpus} vCPUs, and maxvcpus is {max}; xl needs them equal")));
    }
    if !spec.vcpus_unstated && vcpus < spec.vcpus {
        return Err(r.err(KEY, format!("its nodes have {vcpus} vCPUs, fewer than vcpus ({})", spec.vcpus)));
    }
    spec.max_vcpus = (spec.vcpus_unstated || vcpus != spec.vcpus).then_some(vcpus);
    let size = nodes.iter().try_fold(0u64, |sum, n| sum.checked_add(n.size_mib));
    let size = size.ok_or_else(|| r.err(KEY, "the nodes' sizes add up to more than 2^64 MiB"))?;
    if let Some(max) = r.number::<u64>("maxmem", 1)?
        && max != size
    {
        return Err(r.err(KEY, format!("its nodes have {size} MiB, and maxmem is {max} MiB; xl needs them equal")));
    }
    if !r.has("memory") {
        // libxl starts a guest without `memory` at its maximum.
        spec.memory_mib = size;
    } else if spec.memory_mib > size {
        let memory = spec.memory_mib;
        return Err(r.err(KEY, format!("its nodes have {size} MiB, less than memory ({memory} MiB)")));
    }
    spec.max_memory_mib = Some(size).filter(|&s| s != spec.memory_mib);
    spec.tuning.vnuma = nodes;
    Ok(())
}
