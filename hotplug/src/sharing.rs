//! The block script's sharing rule, over every disk back end of the host (ours, xl's, any
//! toolstack's; blkback's `vbd` and QEMU's `qdisk`): a disk given read-write must not be in use
//! by another domain at all, and one given read-only not read-write, unless both domains are
//! the same VM (a local migration's two halves). "The same disk" is the same block device, or
//! the same file (device and inode), directly or through a loop device.

use std::path::Path;

use crate::vbd::{parse_devnum, writable};
use crate::{Blocks, Kind, Links, NativeDevices, Store};

/// What a disk is, for comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ident {
    Block(u32, u32),
    File(u64, u64),
}

fn ident_of(kind: Kind) -> Option<Ident> {
    match kind {
        Kind::Block { major, minor } => Some(Ident::Block(major, minor)),
        Kind::File { dev, ino } => Some(Ident::File(dev, ino)),
        Kind::Other => None,
    }
}

pub(crate) fn check<S: Store, L: Links, P: Blocks>(
    nd: &NativeDevices<S, L, P>,
    domid: u32,
    devid: u32,
    params: &str,
    kind: Kind,
    write: bool,
) -> Result<(), String> {
    let Some(mine) = ident_of(kind) else { return Ok(()) };
    let my_vm = nd.store.get(&format!("/local/domain/{domid}/vm"));
    for backend_kind in ["vbd", "qdisk"] {
        let base = format!("/local/domain/0/backend/{backend_kind}");
        for dom in nd.store.list(&base) {
            let Ok(other_dom) = dom.parse::<u32>() else { continue };
            for dev in nd.store.list(&format!("{base}/{dom}")) {
                if other_dom == domid && backend_kind == "vbd" && dev.parse() == Ok(devid) {
                    continue;
                }
                let dir = format!("{base}/{dom}/{dev}");
                let other_write = writable(nd.store.get(&format!("{dir}/mode")).as_deref());
                if !write && !other_write {
                    continue;
                }
                if other_ident(nd, &dir, backend_kind) != Some(mine) {
                    continue;
                }
                if other_dom == domid
                    || (my_vm.is_some() && nd.store.get(&format!("/local/domain/{other_dom}/vm")) == my_vm)
                {
                    continue;
                }
                let who = nd
                    .store
                    .get(&format!("/local/domain/{other_dom}/name"))
                    .map_or_else(|| format!("domain {other_dom}"), |n| format!("domain {other_dom} ({n})"));
                let how = if other_write { "read-write" } else { "read-only" };
                let why = if write { "a disk given read-write is not shared" } else { "it cannot be shared read-only" };
                return Err(format!("{params} is in use {how} by {who} ({backend_kind} {dev}): {why}"));
            }
        }
    }
    Ok(())
}

/// What another back end's disk is: its device as set up, else its path.
fn other_ident<S: Store, L: Links, P: Blocks>(nd: &NativeDevices<S, L, P>, dir: &str, kind: &str) -> Option<Ident> {
    if kind == "vbd"
        && let Some((major, minor)) = nd.store.get(&format!("{dir}/physical-device")).as_deref().and_then(parse_devnum)
    {
        return Some(match nd.blocks.backing_of(major, minor) {
            Some((dev, ino)) => Ident::File(dev, ino),
            None => Ident::Block(major, minor),
        });
    }
    let params = nd.store.get(&format!("{dir}/params"))?;
    // QEMU's back end takes `format:path` (`aio:`, `qcow2:`...).
    let path = match params.split_once(':') {
        Some((format, path)) if kind == "qdisk" && !format.contains('/') => path,
        _ => params.as_str(),
    };
    ident_of(nd.blocks.kind(Path::new(path)).ok()?)
}
