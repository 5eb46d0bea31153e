//! A disk, as Xen's `block` script sets it up (`add`) for a `phy` back end: a block device as
//! it is, a regular file on a loop device (read-only for a read-only disk, cleared by the
//! kernel when blkback closes it), after the sharing check ([`crate::sharing`]); then
//! `physical-device` (`major:minor` in hex), which blkback waits for, `physical-device-path`,
//! and `hotplug-status = connected`.

use std::path::{Path, PathBuf};

use crate::{Blocks, HeldLoop, Kind, Links, NativeDevices, Store, backend, sharing};

pub(crate) fn setup<S: Store, L: Links, P: Blocks>(
    nd: &NativeDevices<S, L, P>,
    domid: u32,
    devid: u32,
) -> Result<Option<HeldLoop>, String> {
    let dir = backend("vbd", domid, devid);
    let get = |k: &str| nd.store.get(&format!("{dir}/{k}"));
    if get("physical-device").is_some() {
        // Set up already, by a daemon that died before it could unpause the domain.
        return Ok(held(nd, domid, devid));
    }
    let params = get("params").filter(|p| !p.is_empty()).ok_or("no disk path (params) in its back end")?;
    let write = writable(get("mode").as_deref());
    let path = Path::new(&params);
    let claim = nd.claim.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let lock_held = nd.lock_file.as_deref().map(lock).transpose()?;
    let kind = nd.blocks.kind(path)?;
    sharing::check(nd, domid, devid, &params, kind, write)?;
    // The loop device stays open (`_open`) until blkback has it: see `LoopDev::open`.
    let (major, minor, dev, held, _open) = match kind {
        Kind::Block { major, minor } => {
            if write && nd.blocks.mounted(major, minor) {
                return Err(format!("{params} is mounted in dom0, and so cannot be given to a guest read-write"));
            }
            (major, minor, PathBuf::from(&params), None, None)
        }
        Kind::File { dev, ino } => {
            let l = nd.blocks.attach(path, !write)?;
            let held = HeldLoop { dev: l.path.clone(), file: PathBuf::from(&params), ident: (dev, ino) };
            (l.major, l.minor, l.path, Some(held), l.open)
        }
        Kind::Other => return Err(format!("{params} is neither a block device nor a regular file")),
    };
    let written = nd
        .store
        .put(&format!("{dir}/physical-device-path"), &dev.display().to_string())
        .and_then(|()| nd.store.put(&format!("{dir}/physical-device"), &format!("{major:x}:{minor:x}")))
        .and_then(|()| nd.store.put(&format!("{dir}/hotplug-status"), "connected"));
    if let Err(e) = written {
        if let Some(h) = &held
            && let Err(d) = nd.blocks.detach(&h.dev)
        {
            log::warn!("cannot detach {}: {d}", h.dev.display());
        }
        return Err(format!("write its back end: {e}"));
    }
    // The claim is in xenstore now, where every later sharing check sees it: the locks go
    // before the wait for blkback (as the block script releases its lock once it has
    // written), so other domains' disks are not held up behind this one.
    drop(lock_held);
    drop(claim);
    // blkback opens the device as it sees `physical-device` (a watch: milliseconds).
    let deadline = std::time::Instant::now() + nd.blkback_open;
    while !nd.blocks.backend_opened(domid, devid) {
        if std::time::Instant::now() >= deadline {
            // Its check fails the create; the caller destroys the domain and releases `held`.
            log::warn!("domain {domid}: blkback did not open {} within {:?}", dev.display(), nd.blkback_open);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(held)
}

/// blkback took the device: no error reported for it, it opened it, and its back end is not
/// closing.
pub(crate) fn check<S: Store, L: Links, P: Blocks>(
    nd: &NativeDevices<S, L, P>,
    domid: u32,
    devid: u32,
) -> Result<(), String> {
    let dir = backend("vbd", domid, devid);
    if let Some(e) = nd.store.get(&format!("/local/domain/0/error{}/error", dir.trim_start_matches("/local/domain/0")))
    {
        return Err(format!("blkback: {e}"));
    }
    if !nd.blocks.backend_opened(domid, devid) {
        return Err("blkback did not open its device".into());
    }
    match nd.store.get(&format!("{dir}/state")).as_deref() {
        Some("5" | "6") => Err("blkback closed it".into()),
        None => Err("its back end is gone".into()),
        _ => Ok(()),
    }
}

/// The loop device a disk of ours holds, from its back end.
pub(crate) fn held<S: Store, L: Links, P: Blocks>(
    nd: &NativeDevices<S, L, P>,
    domid: u32,
    devid: u32,
) -> Option<HeldLoop> {
    let dir = backend("vbd", domid, devid);
    let (major, minor) = parse_devnum(&nd.store.get(&format!("{dir}/physical-device"))?)?;
    let ident = nd.blocks.backing_of(major, minor)?;
    let dev = PathBuf::from(nd.store.get(&format!("{dir}/physical-device-path"))?);
    let file = PathBuf::from(nd.store.get(&format!("{dir}/params"))?);
    Some(HeldLoop { dev, file, ident })
}

/// `physical-device`'s `major:minor` in hex.
pub(crate) fn parse_devnum(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once(':')?;
    Some((u32::from_str_radix(a, 16).ok()?, u32::from_str_radix(b, 16).ok()?))
}

/// A back end's `mode`: read-write unless it says `r` (the block script's reading).
pub(crate) fn writable(mode: Option<&str>) -> bool {
    !mode.is_some_and(|m| m.starts_with('r'))
}

/// Takes the block script's lock file (an exclusive `flock`), creating it if needed.
pub(crate) fn lock(path: &Path) -> Result<std::fs::File, String> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("open the lock {}: {e}", path.display()))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| format!("lock {}: {e}", path.display()))?;
    Ok(f)
}
