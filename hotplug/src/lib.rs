//! Native device setup for Xen guests in dom0: what Xen's `vif-bridge` and `block` hotplug
//! scripts do, done in-process, without a child process.
//!
//! libxl 4.17 always runs a device's `script` when its back end is in dom0, and waits for it;
//! the upstream scripts start dozens of processes each (seconds per device on a slow dom0). A
//! toolstack that gives libxl [`NativeDevices::script`], a script that does nothing, calls
//! [`NativeDevices::attach`] once the domain is created (paused): for every back end in
//! xenstore that names that script, it does the script's work (a vif renamed, given its MTU,
//! put on its bridge and up, `hotplug-status`; a file disk on a self-clearing loop device, or a
//! block device, as `physical-device` for blkback, after the block script's sharing check across
//! every domain of the host) and checks the result before the caller unpauses. Back ends with
//! any other script (xl's domains, a config's own `script=`) are never touched.
//!
//! Teardown is mostly the kernel's: netback removes a vif with its back end, a loop device
//! attached with autoclear goes when blkback closes it. [`NativeDevices::release`] detaches the
//! loop devices blkback never opened (a create that failed half-way), and [`NativeDevices::held`]
//! re-finds a running domain's loop devices in xenstore after a restart.
//!
//! The kernel interfaces are behind three narrow traits ([`Store`], [`Links`], [`Blocks`]) so
//! the logic is tested against fakes; [`Rtnl`] (netlink, no `ip` processes) and [`LoopCtl`]
//! (`/dev/loop-control`) are the real ones.

mod links;
mod loops;
mod sharing;
mod store;
mod vbd;
mod vif;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use links::{Link, Links, Rtnl};
pub use loops::{Blocks, Kind, LoopCtl, LoopDev};
pub use store::Store;

/// A device of a domain: its kind and the back end's device id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Device {
    /// A network interface (`vif/<domid>/<devid>`).
    Vif(u32),
    /// A disk (`vbd/<domid>/<devid>`).
    Vbd(u32),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Vif(id) => write!(f, "vif {id}"),
            Device::Vbd(id) => write!(f, "vbd {id}"),
        }
    }
}

/// Why a device could not be set up; the message names the domain, the device and the cause.
#[derive(Debug, thiserror::Error)]
#[error("domain {domid}: {device}: {why}")]
pub struct Error {
    /// The domain.
    pub domid: u32,
    /// The device.
    pub device: Device,
    /// What went wrong.
    pub why: String,
}

/// A loop device this crate attached for a disk: released when the domain is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLoop {
    /// `/dev/loopN`.
    pub dev: PathBuf,
    /// The backing file as given to the back end.
    pub file: PathBuf,
    /// The backing file's identity (device, inode): the loop is only ours while it still
    /// points at this file.
    pub ident: (u64, u64),
}

/// What [`NativeDevices::attach`] did for a domain.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The devices set up, in order.
    pub devices: Vec<Device>,
    /// The loop devices attached for file disks.
    pub loops: Vec<HeldLoop>,
}

/// The native device setup of one dom0.
#[derive(Debug)]
pub struct NativeDevices<S = xenctl::Xenstore, L = Rtnl, P = LoopCtl> {
    script: PathBuf,
    store: S,
    links: L,
    blocks: P,
    /// Serialises the sharing check and the claim within this process (the block script's
    /// lock file serialises it with other toolstacks).
    claim: std::sync::Mutex<()>,
    lock_file: Option<PathBuf>,
    /// How long blkback gets to open a disk's device once told of it.
    blkback_open: std::time::Duration,
}

/// The lock file Xen's block script takes around its sharing check (`locking.sh`'s `block`
/// lock): holding it too keeps our check and xl's from interleaving.
pub const BLOCK_LOCK: &str = "/var/run/xen-hotplug/block";

impl NativeDevices {
    /// The real thing: xenstore, netlink and `/dev/loop-control`. `script` is the no-op script
    /// libxl is given for the devices handled here.
    pub fn open(script: impl Into<PathBuf>) -> std::io::Result<NativeDevices> {
        Ok(NativeDevices::with(
            script,
            xenctl::Xenstore::new(),
            Rtnl::open()?,
            LoopCtl,
            Some(PathBuf::from(BLOCK_LOCK)),
        ))
    }
}

impl<S: Store, L: Links, P: Blocks> NativeDevices<S, L, P> {
    /// Over the given interfaces; `lock_file` is the inter-process lock around the sharing
    /// check, if any.
    pub fn with(script: impl Into<PathBuf>, store: S, links: L, loops: P, lock_file: Option<PathBuf>) -> Self {
        NativeDevices {
            script: script.into(),
            store,
            links,
            blocks: loops,
            claim: std::sync::Mutex::new(()),
            lock_file,
            blkback_open: std::time::Duration::from_secs(10),
        }
    }

    /// Sets how long blkback gets to open a disk's device once told of it (10 s).
    pub fn with_blkback_wait(mut self, wait: std::time::Duration) -> Self {
        self.blkback_open = wait;
        self
    }

    /// The no-op script: devices whose back end names it are handled here.
    pub fn script(&self) -> &Path {
        &self.script
    }

    /// Sets up every device of `domid` whose back end names [`script`](Self::script), then
    /// checks each. On an error, what was set up for the failing device is undone and the
    /// loop devices of the others are in [`Error`]'s companion: call [`release`](Self::release)
    /// with the partial result (the caller destroys the domain).
    pub fn attach(&self, domid: u32) -> Result<Attached, (Error, Attached)> {
        let mut done = Attached::default();
        for devid in self.ours(domid, "vif") {
            let device = Device::Vif(devid);
            match vif::setup(self, domid, devid) {
                Ok(()) => done.devices.push(device),
                Err(why) => return Err((Error { domid, device, why }, done)),
            }
        }
        for devid in self.ours(domid, "vbd") {
            let device = Device::Vbd(devid);
            match vbd::setup(self, domid, devid) {
                Ok(held) => {
                    done.devices.push(device);
                    done.loops.extend(held);
                }
                Err(why) => return Err((Error { domid, device, why }, done)),
            }
        }
        for &device in &done.devices {
            let checked = match device {
                Device::Vif(devid) => vif::check(self, domid, devid),
                Device::Vbd(devid) => vbd::check(self, domid, devid),
            };
            if let Err(why) = checked {
                return Err((Error { domid, device, why }, done));
            }
        }
        if !done.devices.is_empty() {
            log::info!(
                "domain {domid}: set up natively: {}",
                done.devices.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            );
        }
        Ok(done)
    }

    /// The loop devices of `domid`'s disks handled here, from xenstore: what a restarted
    /// toolstack holds for a running domain it adopts.
    pub fn held(&self, domid: u32) -> Vec<HeldLoop> {
        self.ours(domid, "vbd").into_iter().filter_map(|devid| vbd::held(self, domid, devid)).collect()
    }

    /// Detaches `loops` once their domain is gone or failed: each only if it still points at
    /// its file and no disk back end of the host names it (a freed loop device may have been
    /// taken again, by another domain's disk on the same file: that happens under the same
    /// lock, so it is either not attached yet or named by its back end). A loop device still
    /// open is only marked to go when closed (the kernel's lazy detach).
    pub fn release(&self, loops: &[HeldLoop]) {
        if loops.is_empty() {
            return;
        }
        let _claim = self.claim.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Without the lock, a loop device is still only detached if it backs the same file as
        // when we attached it and no back end names it: better than leaking it.
        let _lock = match self.lock_file.as_deref().map(|l| vbd::lock(l, vbd::LOCK_WAIT)).transpose() {
            Ok(l) => l,
            Err(e) => {
                log::warn!("releasing loop devices without the block lock: {e}");
                None
            }
        };
        let named = self.named_devices();
        for l in loops {
            let devnum = self.blocks.devnum(&l.dev);
            match self.blocks.backing(&l.dev) {
                Some(ident) if ident == l.ident && !devnum.is_some_and(|d| named.contains(&d)) => {
                    match self.blocks.detach(&l.dev) {
                        Ok(()) => log::info!("{} ({}) detached", l.dev.display(), l.file.display()),
                        Err(e) => log::warn!("cannot detach {} ({}): {e}", l.dev.display(), l.file.display()),
                    }
                }
                _ => log::debug!("{} no longer holds {} for us: left alone", l.dev.display(), l.file.display()),
            }
        }
    }

    /// The `physical-device` of every vbd back end of the host.
    fn named_devices(&self) -> Vec<(u32, u32)> {
        let base = "/local/domain/0/backend/vbd";
        let mut out = Vec::new();
        for dom in self.store.list(base) {
            for dev in self.store.list(&format!("{base}/{dom}")) {
                if let Some(d) = self
                    .store
                    .get(&format!("{base}/{dom}/{dev}/physical-device"))
                    .as_deref()
                    .and_then(vbd::parse_devnum)
                {
                    out.push(d);
                }
            }
        }
        out
    }

    /// The device ids of `domid`'s back ends of `kind` in dom0 that name our script.
    fn ours(&self, domid: u32, kind: &str) -> Vec<u32> {
        let dir = format!("/local/domain/0/backend/{kind}/{domid}");
        let mut ids: Vec<u32> = self.store.list(&dir).iter().filter_map(|d| d.parse().ok()).collect();
        ids.sort_unstable();
        ids.retain(|id| self.store.get(&format!("{dir}/{id}/script")).is_some_and(|s| Path::new(&s) == self.script));
        ids
    }
}

/// The back-end directory of a device.
fn backend(kind: &str, domid: u32, devid: u32) -> String {
    format!("/local/domain/0/backend/{kind}/{domid}/{devid}")
}
