//! A disk, as Xen's `block` script sets it up (`add`) for a `phy` back end: a block device as
//! it is, a regular file on a loop device (read-only for a read-only disk, cleared by the
//! kernel when blkback closes it), after the sharing check ([`crate::sharing`]); then
//! `physical-device` (`major:minor` in hex), which blkback waits for, `physical-device-path`,
//! and `hotplug-status = connected`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    let lock_held = nd.lock_file.as_deref().map(|l| lock(l, LOCK_WAIT)).transpose()?;
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
    let deadline = Instant::now() + nd.blkback_open;
    while !nd.blocks.backend_opened(domid, devid) {
        if Instant::now() >= deadline {
            // Its check fails the create; the caller destroys the domain and releases `held`.
            log::warn!("domain {domid}: blkback did not open {} within {:?}", dev.display(), nd.blkback_open);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
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

/// How long a wait for the block script's lock lasts. A toolstack holds it around a sharing
/// check, never long: one that holds it longer is stuck, and a domain thread must not hang
/// behind it for ever.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Takes the block script's lock file as its `claim_lock` does (Xen's `locking.sh`): open it
/// (creating it), an exclusive `flock`, and it is ours only if the file locked is still the
/// one at `path` (`release_lock` removes the file while it holds it); else again, from the
/// open. Gives up after `wait`.
pub(crate) fn lock(path: &Path, wait: Duration) -> Result<std::fs::File, String> {
    use rustix::fs::FlockOperation::NonBlockingLockExclusive;
    use rustix::io::Errno;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let deadline = Instant::now() + wait;
    let held_too_long =
        || format!("{} is still locked by another toolstack after {} s", path.display(), wait.as_secs());
    loop {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| format!("open the lock {}: {e}", path.display()))?;
        loop {
            match rustix::fs::flock(&f, NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(Errno::INTR) => {}
                Err(Errno::WOULDBLOCK) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Err(Errno::WOULDBLOCK) => return Err(held_too_long()),
                Err(e) => return Err(format!("lock {}: {e}", path.display())),
            }
        }
        let locked = rustix::fs::fstat(&f).map_err(|e| format!("lock {}: fstat: {e}", path.display()))?;
        match rustix::fs::stat(path) {
            Ok(now) if (now.st_dev, now.st_ino) == (locked.st_dev, locked.st_ino) => return Ok(f),
            // Removed (or replaced) by the holder we waited for: the lock is the new file's.
            _ if Instant::now() < deadline => {}
            _ => return Err(held_too_long()),
        }
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    fn open(path: &Path) -> std::fs::File {
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).unwrap()
    }

    #[test]
    fn a_lock_held_elsewhere_is_waited_for_then_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("block");
        let other = open(&path);
        rustix::fs::flock(&other, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let e = lock(&path, Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("still locked by another toolstack after"), "{e}");
        drop(other);
        lock(&path, Duration::from_millis(200)).unwrap();
    }

    #[test]
    fn a_lock_file_its_holder_removes_is_not_ours_the_new_file_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("block");
        let holder = open(&path);
        rustix::fs::flock(&holder, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || lock(&path, Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(100));
        // As locking.sh's release_lock: remove the file while holding it, then let go.
        std::fs::remove_file(&path).unwrap();
        drop(holder);
        let got = waiter.join().unwrap().unwrap();
        let (got, now) = (rustix::fs::fstat(&got).unwrap(), rustix::fs::stat(&path).unwrap());
        assert_eq!((got.st_dev, got.st_ino), (now.st_dev, now.st_ino), "locked the file at the path");
    }
}
