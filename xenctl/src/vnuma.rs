//! A guest's virtual NUMA nodes ([`VnumaNode`], xl.cfg's `vnuma`): their xl.cfg syntax, the
//! checks libxl makes of them when it builds the domain (made here, where the file and key can
//! be named), and how they fill libxl's `vnuma_nodes`.
//!
//! xl.cfg gives each node as a list of `OPTION=VALUE` strings:
//! `vnuma = [ [ "pnode=0", "size=512", "vcpus=0-1", "vdistances=10,20" ], [ ... ] ]`.
//! xl itself checks little more than the syntax (and that `pnode` is a host node, which needs
//! the host, so libxl's own check at create time is left to do it); libxl then refuses a
//! layout where a node lacks its size, the sizes do not add up to the maximum memory, a vCPU
//! is in no node or in two, or a node is nearer to another than to itself. Such layouts are
//! refused here already.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::convert::fill_bitmap_bits;
use crate::devices::set_defbool;
use crate::error::{Error, Result};
use crate::raw;
use crate::spec::DomainSpec;
use crate::xlcfg::quote;

/// One virtual NUMA node of a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VnumaNode {
    /// The node's memory, MiB (`size=`).
    pub size_mib: u64,
    /// The host NUMA node its memory and vCPUs come from (`pnode=`); libxl chooses when
    /// `None`. Giving one for any node turns libxl's automatic NUMA placement off, as xl does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pnode: Option<u32>,
    /// The vCPUs in this node (`vcpus=`), each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vcpus: Vec<u32>,
    /// The distance from this node to node j, at j (`vdistances=`); nodes past the end are at
    /// distance 0, as xl leaves them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distances: Vec<u32>,
}

/// The options of one node, `[ "size=512", ... ]`, as xl reads them: `OPTION=VALUE` with blanks
/// around either trimmed. Returns the node and the names of options xl does not know (which
/// it ignores).
pub(crate) fn node_from_xl(options: &[String]) -> std::result::Result<(VnumaNode, Vec<String>), String> {
    let mut node = VnumaNode { size_mib: 0, pnode: None, vcpus: Vec::new(), distances: Vec::new() };
    let mut seen = BTreeSet::new();
    let mut unknown = Vec::new();
    for option in options {
        // xl splits with strtok: empty fields vanish, and a third field is dropped.
        let mut fields = option.split('=').filter(|f| !f.is_empty());
        let (Some(name), Some(value)) = (fields.next(), fields.next()) else {
            return Err(format!("{option:?}: expected OPTION=VALUE"));
        };
        let (name, value) = (trim_c(name), trim_c(value));
        if !["pnode", "size", "vcpus", "vdistances"].contains(&name) {
            unknown.push(name.to_string());
            continue;
        }
        if !seen.insert(name) {
            return Err(format!("{name}: given twice"));
        }
        let bad = |why: &str| format!("{option:?}: {why}");
        match name {
            "pnode" => node.pnode = Some(number(value).ok_or_else(|| bad("not a host node number"))?),
            "size" => node.size_mib = number(value).ok_or_else(|| bad("not a size in MiB"))?,
            "vcpus" => {
                for part in value.split(',').filter(|p| !p.is_empty()) {
                    let (a, b) = part.split_once('-').unwrap_or((part, part));
                    let (a, b): (u32, u32) = match (number(a), number(b)) {
                        (Some(a), Some(b)) if a <= b => (a, b),
                        _ => return Err(bad(&format!("`{part}' is not a vCPU number or range like 0-3"))),
                    };
                    if b >= 4096 {
                        return Err(bad(&format!("`{part}': vCPU numbers go up to 4095")));
                    }
                    for vcpu in a..=b {
                        if node.vcpus.contains(&vcpu) {
                            return Err(bad(&format!("vCPU {vcpu} is listed twice")));
                        }
                        node.vcpus.push(vcpu);
                    }
                }
                if node.vcpus.is_empty() {
                    return Err(bad("no vCPU listed"));
                }
            }
            _ => {
                for part in value.split(',').filter(|p| !p.is_empty()) {
                    node.distances.push(number(part).ok_or_else(|| bad(&format!("`{part}' is not a distance")))?);
                }
                if node.distances.is_empty() {
                    return Err(bad("no distance listed"));
                }
            }
        }
    }
    node.vcpus.sort_unstable();
    if !seen.contains("size") {
        return Err("no size=: libxl needs the memory of every node".into());
    }
    Ok((node, unknown))
}

/// `s` without the blanks C's isspace() finds at either end.
fn trim_c(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r'])
}

/// A decimal number (xl's strtoul would also take a sign or junk after it; those are refused).
fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The checks libxl's vNUMA check makes without the host (it also checks each `pnode` is
/// a host node), against the spec's maximum memory and vCPUs.
pub(crate) fn validate(spec: &DomainSpec) -> Result<()> {
    let nodes = &spec.tuning.vnuma;
    if nodes.is_empty() {
        return Ok(());
    }
    let mut total: u64 = 0;
    let mut vcpus = BTreeSet::new();
    let max_vcpus = spec.xl_max_vcpus();
    for (i, node) in nodes.iter().enumerate() {
        let field = |what: &str| format!("tuning.vnuma[{i}].{what}");
        if node.size_mib > 1 << 32 {
            return Err(Error::invalid(field("size_mib"), node.size_mib.to_string(), "more than 4 PiB"));
        }
        total += node.size_mib;
        if node.distances.len() > nodes.len() {
            let n = node.distances.len().to_string();
            return Err(Error::invalid(field("distances"), n, format!("more distances than nodes ({})", nodes.len())));
        }
        let distance = |j: usize| node.distances.get(j).copied().unwrap_or(0);
        if let Some(j) = (0..nodes.len()).find(|&j| distance(j) < distance(i)) {
            return Err(Error::invalid(
                field("distances"),
                distances_text(&node.distances),
                format!("node {j} is nearer than the node itself, which libxl refuses"),
            ));
        }
        for &vcpu in &node.vcpus {
            if vcpu >= max_vcpus {
                let why = format!("the domain has {max_vcpus} vCPUs, numbered from 0");
                return Err(Error::invalid(field("vcpus"), vcpu.to_string(), why));
            }
            if !vcpus.insert(vcpu) {
                return Err(Error::invalid(field("vcpus"), vcpu.to_string(), "in another node too"));
            }
        }
    }
    if let Some(missing) = (0..max_vcpus).find(|v| !vcpus.contains(v)) {
        return Err(Error::invalid(
            "tuning.vnuma",
            "",
            format!("vCPU {missing} is in no node; libxl needs every vCPU in one"),
        ));
    }
    let max_mem = spec.effective_max_memory_mib();
    if total != max_mem {
        return Err(Error::invalid(
            "tuning.vnuma",
            "",
            format!("the nodes have {total} MiB, and the maximum memory is {max_mem} MiB; libxl needs them equal"),
        ));
    }
    Ok(())
}

fn distances_text(distances: &[u32]) -> String {
    distances.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Fills `b.vnuma_nodes` as xl does: every node with a distance to every node (0 where none
/// is given), and NUMA placement off if any node names its host node.
pub(crate) fn fill_libxl(nodes: &[VnumaNode], b: &mut xen_sys::libxl_domain_build_info) -> Result<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    let n = nodes.len();
    b.vnuma_nodes = raw::calloc_array(n)?;
    b.num_vnuma_nodes = i32::try_from(n).unwrap_or(i32::MAX);
    for (i, node) in nodes.iter().enumerate() {
        // SAFETY: vnuma_nodes holds n zeroed elements (zeroed is disposable), counted in
        // num_vnuma_nodes; each is initialised once before it is filled.
        let slot = unsafe { &mut *b.vnuma_nodes.add(i) };
        // SAFETY: slot is a valid element of the array.
        unsafe { xen_sys::libxl_vnode_info_init(slot) };
        slot.memkb = node.size_mib * 1024; // validate() bounds it
        slot.distances = raw::calloc_array(n)?;
        slot.num_distances = i32::try_from(n).unwrap_or(i32::MAX);
        for (j, &d) in node.distances.iter().take(n).enumerate() {
            // SAFETY: j < n, inside the array just allocated.
            unsafe { *slot.distances.add(j) = d };
        }
        if let Some(p) = node.pnode {
            slot.pnode = p;
        }
        if !node.vcpus.is_empty() {
            fill_bitmap_bits(&mut slot.vcpus, &node.vcpus)?;
        }
    }
    if nodes.iter().any(|n| n.pnode.is_some()) {
        set_defbool(&mut b.numa_placement, Some(false));
    }
    Ok(())
}

/// The nodes as xl.cfg's `vnuma` value.
pub(crate) fn to_xl(nodes: &[VnumaNode]) -> String {
    let list = |items: Vec<String>| format!("[ {} ]", items.join(", "));
    let nodes = nodes
        .iter()
        .map(|node| {
            let mut options = Vec::new();
            if let Some(p) = node.pnode {
                options.push(format!("pnode={p}"));
            }
            options.push(format!("size={}", node.size_mib));
            if !node.vcpus.is_empty() {
                let vcpus: Vec<String> = node.vcpus.iter().map(u32::to_string).collect();
                options.push(format!("vcpus={}", vcpus.join(",")));
            }
            if !node.distances.is_empty() {
                options.push(format!("vdistances={}", distances_text(&node.distances)));
            }
            list(options.iter().map(|o| quote(o)).collect())
        })
        .collect();
    list(nodes)
}
