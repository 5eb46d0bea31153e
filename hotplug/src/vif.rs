//! A vif, as Xen's `vif-bridge` script sets it up (`online`): netback's `vif<domid>.<devid>`
//! renamed to the config's `vifname`, given the dummy MAC `fe:ff:ff:ff:ff:ff` (so the bridge
//! never takes it for its own), the back end's MTU or else the bridge's (written to the front
//! end, at the device's real path: the script's own path is wrong for a custom `vifname`), made
//! a port of its bridge and up; then `hotplug-status = connected`, which netback waits for.
//! An HVM guest's emulated NIC (`type = vif_ioemu`) also has QEMU's tap, which libxl names
//! `vif<domid>.<devid>-emu`: renamed to `<vifname>-emu` and plugged the same way.

use crate::{Blocks, Links, NativeDevices, Store, backend};

/// The MAC the scripts give the dom0 end of a vif.
const DUMMY_MAC: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];

/// The dom0 name of the vif: the config's `vifname`, else netback's.
fn name<S: Store, L: Links, P: Blocks>(nd: &NativeDevices<S, L, P>, domid: u32, devid: u32) -> String {
    nd.store
        .get(&format!("{}/vifname", backend("vif", domid, devid)))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("vif{domid}.{devid}"))
}

pub(crate) fn setup<S: Store, L: Links, P: Blocks>(
    nd: &NativeDevices<S, L, P>,
    domid: u32,
    devid: u32,
) -> Result<(), String> {
    let dir = backend("vif", domid, devid);
    let netback = format!("vif{domid}.{devid}");
    let want = name(nd, domid, devid);
    let link = named(nd, &netback, &want)?.ok_or_else(|| format!("netback made no interface {netback}"))?;
    let mtu = plug(nd, &dir, link.index, &want)?;
    nd.store.put(&format!("/local/domain/{domid}/device/vif/{devid}/mtu"), &mtu.to_string())?;
    if nd.store.get(&format!("{dir}/type")).as_deref() == Some("vif_ioemu") {
        // libxl names QEMU's tap after netback's interface; the script renames it too.
        match named(nd, &format!("{netback}-emu"), &format!("{want}-emu"))? {
            Some(tap) => {
                plug(nd, &dir, tap.index, &tap.name)?;
            }
            None => log::debug!("domain {domid}: no {netback}-emu in dom0 (no device model here)"),
        }
    }
    nd.store.put(&format!("{dir}/hotplug-status"), "connected")
}

/// The interface made as `made`, renamed to `want` (down, as a rename needs): found under
/// either name (a setup a previous daemon began may have renamed it already); `None` if
/// neither exists.
fn named<S: Store, L: Links, P: Blocks>(
    nd: &NativeDevices<S, L, P>,
    made: &str,
    want: &str,
) -> Result<Option<crate::Link>, String> {
    let Some(mut link) = nd.links.get(made)? else { return nd.links.get(want) };
    if link.name != want {
        if nd.links.get(want)?.is_some() {
            return Err(format!("cannot rename {made} to {want}: an interface of that name exists"));
        }
        nd.links.set_up(link.index, false)?;
        nd.links.rename(link.index, want).map_err(|e| format!("rename {made} to {want}: {e}"))?;
        link.name = want.to_string();
    }
    Ok(Some(link))
}

/// Puts interface `index` (`name`) on the back end's bridge, with the back end's MTU or the
/// bridge's, and up; the MTU given.
fn plug<S: Store, L: Links, P: Blocks>(
    nd: &NativeDevices<S, L, P>,
    dir: &str,
    index: u32,
    name: &str,
) -> Result<u32, String> {
    let bridge_name = nd.store.get(&format!("{dir}/bridge")).filter(|b| !b.is_empty()).ok_or("no bridge given")?;
    let bridge =
        nd.links.get(&bridge_name)?.ok_or_else(|| format!("{name}: the bridge {bridge_name} does not exist"))?;
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(format!(
            "{name}: {bridge_name} is not a Linux bridge ({}); native setup plugs vifs into Linux bridges only: \
             give this vif its script (for openvswitch, script=vif-openvswitch)",
            bridge.kind.as_deref().unwrap_or("no kind")
        ));
    }
    let mtu = match nd.store.get(&format!("{dir}/mtu")) {
        Some(m) => m.trim().parse().map_err(|_| format!("{dir}/mtu: {m:?} is not an MTU"))?,
        None => bridge.mtu,
    };
    nd.links.set_mac(index, DUMMY_MAC).map_err(|e| format!("{name}: set its MAC: {e}"))?;
    if mtu > 0 {
        nd.links.set_mtu(index, mtu).map_err(|e| format!("{name}: set MTU {mtu}: {e}"))?;
    }
    nd.links.set_master(index, bridge.index).map_err(|e| format!("{name}: add to bridge {bridge_name}: {e}"))?;
    nd.links.set_up(index, true).map_err(|e| format!("{name}: set up: {e}"))?;
    Ok(mtu)
}

/// The vif is on its bridge and up, and netback was told.
pub(crate) fn check<S: Store, L: Links, P: Blocks>(
    nd: &NativeDevices<S, L, P>,
    domid: u32,
    devid: u32,
) -> Result<(), String> {
    let dir = backend("vif", domid, devid);
    let want = name(nd, domid, devid);
    let link = nd.links.get(&want)?.ok_or_else(|| format!("{want} is gone"))?;
    let bridge_name = nd.store.get(&format!("{dir}/bridge")).unwrap_or_default();
    let bridge = nd.links.get(&bridge_name)?.ok_or_else(|| format!("the bridge {bridge_name} is gone"))?;
    if link.master != Some(bridge.index) || !link.up {
        return Err(format!("{want} is not up on {bridge_name}"));
    }
    match nd.store.get(&format!("{dir}/hotplug-status")).as_deref() {
        Some("connected") => Ok(()),
        other => Err(format!("hotplug-status is {other:?}")),
    }
}
