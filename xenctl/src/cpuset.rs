//! xl's CPU lists (`cpus` and `cpus_soft` in xl.cfg: `"0-3,^2"`, `"nodes:1,^8"`, `"all"`), read
//! as xl 4.17's parse_cpurange reads them, and the host facts some of them need ([`HostCpus`]).
//!
//! xl builds each list into a bitmap sized for the host (libxl_cpu_bitmap_alloc: the host's
//! CPU count rounded up to whole bytes): `all` sets every bit of it, `nodes:N` the CPUs of NUMA
//! node N, and a CPU past its end is dropped without a word. So what a list means depends on
//! the host, and with [`HostCpus`] it is read exactly so. Without them (a dry run away from
//! Xen, or a library user who has none) a plain list is taken as written, `all` as no pinning
//! (the same placement as every CPU), and a node list is an error.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::error::{Error, LibxlErrorCode, Result, Subject};

/// The highest CPU number a list may name when the host is not known (Xen's own limit is
/// 4095 on x86).
const MAX_CPU: u32 = 4095;

/// The host's CPUs as xl's CPU lists see them: how many bits its CPU and node bitmaps have, and
/// which CPUs each NUMA node has. [`Context::host_cpus`] reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostCpus {
    /// The number of CPU slots (libxl_get_max_cpus: Xen's highest possible CPU id + 1).
    pub max_cpus: u32,
    /// The number of NUMA node slots (libxl_get_max_nodes).
    pub max_nodes: u32,
    /// For each NUMA node by number, its CPUs (libxl_get_cpu_topology; offline CPUs have none).
    pub node_cpus: Vec<Vec<u32>>,
}

impl HostCpus {
    /// Bits in one of xl's CPU bitmaps: the CPU slots rounded up to whole bytes.
    fn cpu_bits(&self) -> u32 {
        self.max_cpus.div_ceil(8).saturating_mul(8)
    }

    /// Bits in a node bitmap, rounded up as the CPU map is.
    fn node_bits(&self) -> u32 {
        self.max_nodes.div_ceil(8).saturating_mul(8)
    }

    /// The CPUs of `node` as libxl_node_to_cpumap gives them: none for a node past the node
    /// bitmap or without CPUs.
    fn cpus_of_node(&self, node: u32) -> &[u32] {
        if node >= self.node_bits() {
            return &[];
        }
        self.node_cpus.get(node as usize).map_or(&[], Vec::as_slice)
    }
}

/// A CPU list as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CpuList {
    /// The CPUs, ascending; empty only for `all` read without the host (no pinning).
    pub cpus: Vec<u32>,
    /// CPUs the list named that the host has no slot for: xl drops them silently.
    pub dropped: Vec<u32>,
}

/// Reads an xl CPU list: comma-separated items applied in order, each a CPU or range (`2`,
/// `2-5`) or a node or node range (`node:1`, `nodes:0-1`), or `all`, and each but `all` may
/// start with `^` to take its CPUs away.
pub(crate) fn parse(text: &str, host: Option<&HostCpus>) -> std::result::Result<CpuList, String> {
    let mut set = BTreeSet::new();
    let mut dropped = BTreeSet::new();
    let limit = host.map_or(MAX_CPU + 1, HostCpus::cpu_bits);
    let mut unpinned = false;
    // xl splits with strtok: empty items vanish.
    for item in text.split(',').filter(|p| !p.is_empty()) {
        let (remove, rest) = match item.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        let (nodes, range) = match rest.strip_prefix("node:").or_else(|| rest.strip_prefix("nodes:")) {
            Some(range) => (true, range),
            None => (false, rest),
        };
        if range == "all" {
            if remove {
                return Err(format!("`{item}': `^' and `all' cannot go together"));
            }
            match host {
                Some(h) => set.extend(0..h.cpu_bits()),
                None if text.split(',').all(|p| p.is_empty() || p == "all") => unpinned = true,
                None => return Err(format!("`{text}': `all' stands alone where the host's CPUs are not known")),
            }
            continue;
        }
        let (a, b) = parse_range(range).ok_or_else(|| format!("`{item}' is not a CPU number or range like 2-5"))?;
        let cpus: Vec<u32> = if nodes {
            let Some(h) = host else {
                return Err(format!("`{item}': NUMA node lists need the host's topology; list the CPUs"));
            };
            let last = b.min(u64::from(h.node_bits()));
            (a..=last).flat_map(|n| h.cpus_of_node(n as u32).iter().copied()).collect()
        } else {
            if b > u64::from(MAX_CPU) {
                return Err(format!("`{item}': CPU numbers go up to {MAX_CPU}"));
            }
            (a as u32..=b as u32).collect()
        };
        for cpu in cpus {
            if cpu >= limit {
                dropped.insert(cpu);
            } else if remove {
                set.remove(&cpu);
            } else {
                set.insert(cpu);
            }
        }
    }
    if set.is_empty() && !unpinned {
        return Err("no CPU left to run on".into());
    }
    Ok(CpuList { cpus: set.into_iter().collect(), dropped: dropped.into_iter().collect() })
}

/// `A` or `A-B` as xl's parse_range reads them (decimal, B not below A, nothing after).
fn parse_range(s: &str) -> Option<(u64, u64)> {
    let number = |t: &str| -> Option<u64> {
        let t = t.trim_start();
        let t = t.strip_prefix('+').unwrap_or(t);
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok()).flatten()
    };
    match s.split_once('-') {
        None => number(s).map(|a| (a, a)),
        Some((a, b)) => match (number(a), number(b)) {
            (Some(a), Some(b)) if a <= b => Some((a, b)),
            _ => None,
        },
    }
}

/// A short text for CPUs a list named that the host has no slot for.
pub(crate) fn dropped_note(list: &CpuList, host: Option<&HostCpus>) -> Option<String> {
    let (first, host) = (list.dropped.first()?, host?);
    Some(format!(
        "CPU {first}{} past this host's {} CPU slots; left out, as xl leaves them out",
        if list.dropped.len() > 1 { format!(" and {} more", list.dropped.len() - 1) } else { String::new() },
        host.cpu_bits()
    ))
}

impl Context {
    /// The host's CPU and NUMA node slots and which CPUs each node has, for reading xl's CPU
    /// lists as xl reads them on this host.
    pub fn host_cpus(&self) -> Result<HostCpus> {
        // SAFETY: ctx is live; plain queries.
        let (max_cpus, max_nodes) =
            unsafe { (xen_sys::libxl_get_max_cpus(self.raw()), xen_sys::libxl_get_max_nodes(self.raw())) };
        let fail = |op| Error::Libxl { op, subject: Subject::Host, code: LibxlErrorCode::ERROR_FAIL };
        let max_cpus = u32::try_from(max_cpus).map_err(|_| fail("count the host's CPUs"))?;
        let max_nodes = u32::try_from(max_nodes).map_err(|_| fail("count the host's NUMA nodes"))?;
        let mut n: i32 = 0;
        // SAFETY: ctx is live; n is a valid out-pointer. The result is null or n entries that
        // libxl_cputopology_list_free releases.
        let list = unsafe { xen_sys::libxl_get_cpu_topology(self.raw(), &mut n) };
        if list.is_null() {
            return Err(fail("read the host's CPU topology"));
        }
        let len = usize::try_from(n).unwrap_or(0);
        // SAFETY: list holds len initialised entries until freed below.
        let entries = unsafe { std::slice::from_raw_parts(list, len) };
        let mut node_cpus: Vec<Vec<u32>> = Vec::new();
        for (cpu, t) in entries.iter().enumerate() {
            // LIBXL_CPUTOPOLOGY_INVALID_ENTRY (~0) marks an offline CPU.
            if t.node == u32::MAX || t.node >= max_nodes.max(1) {
                continue;
            }
            let node = t.node as usize;
            if node_cpus.len() <= node {
                node_cpus.resize(node + 1, Vec::new());
            }
            node_cpus[node].push(u32::try_from(cpu).unwrap_or(u32::MAX));
        }
        // SAFETY: list came from libxl_get_cpu_topology with n entries; freed once.
        unsafe { xen_sys::libxl_cputopology_list_free(list, n) };
        Ok(HostCpus { max_cpus, max_nodes, node_cpus })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 12 CPU slots (two bytes of bitmap: 16 bits) on two nodes, CPUs 0-5 and 6-11.
    fn host() -> HostCpus {
        HostCpus { max_cpus: 12, max_nodes: 2, node_cpus: vec![(0..6).collect(), (6..12).collect()] }
    }

    fn cpus(text: &str, host: Option<&HostCpus>) -> Vec<u32> {
        parse(text, host).unwrap_or_else(|e| panic!("{text}: {e}")).cpus
    }

    #[test]
    fn plain_lists_read_the_same_with_or_without_the_host() {
        for h in [None, Some(&host())] {
            assert_eq!(cpus("0-3,^2,6", h), [0, 1, 3, 6]);
            assert_eq!(cpus("1", h), [1]);
            assert_eq!(cpus("0,,0,1", h), [0, 1]);
            assert_eq!(cpus(" 2- 3", h), [2, 3], "strtoul skips blanks");
        }
    }

    #[test]
    fn all_and_nodes_follow_the_host_as_xl_does() {
        let h = host();
        assert_eq!(cpus("all", Some(&h)), (0..16).collect::<Vec<_>>(), "every bit of the byte-rounded map");
        assert_eq!(cpus("all,^0-13", Some(&h)), [14, 15]);
        assert_eq!(cpus("nodes:1", Some(&h)), (6..12).collect::<Vec<_>>());
        assert_eq!(cpus("node:0-1,^nodes:0,^7", Some(&h)), [6, 8, 9, 10, 11]);
        assert_eq!(cpus("nodes:all", Some(&h)), (0..16).collect::<Vec<_>>());
        // A CPU past the map is dropped, and said.
        let l = parse("14-20", Some(&h)).unwrap();
        assert_eq!((l.cpus, l.dropped.len()), (vec![14, 15], 5));
        let note = dropped_note(&parse("1,16", Some(&h)).unwrap(), Some(&h)).unwrap();
        assert_eq!(note, "CPU 16 past this host's 16 CPU slots; left out, as xl leaves them out");
        // A node the host has not gives no CPUs.
        assert_eq!(parse("nodes:5", Some(&h)).unwrap_err(), "no CPU left to run on");
        assert_eq!(cpus("0,nodes:3-4000000000", Some(&h)), [0]);
    }

    #[test]
    fn without_the_host_all_is_no_pinning_and_nodes_are_refused() {
        assert_eq!(cpus("all", None), Vec::<u32>::new());
        for (text, want) in [
            ("all,^1", "stands alone"),
            ("^all", "cannot go together"),
            ("node:0", "NUMA node lists need the host's topology"),
            ("3-1", "not a CPU number"),
            ("x", "not a CPU number"),
            ("1-2x", "not a CPU number"),
            ("", "no CPU left"),
            ("1,^1", "no CPU left"),
            ("4096", "4095"),
        ] {
            let err = parse(text, None).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
