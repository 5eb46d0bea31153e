//! Against a real containerd (Debian's, as `scripts/setup.sh` installs it), started privately
//! for the test: an image layer committed, a container's writable snapshot prepared on it in
//! EVE's namespace, as EVE's volume manager does, then found and mounted as EVE's domainmgr
//! does, and removed.

use xen_ctrd::testing::{GC_ROOT, PrivateContainerd, commit_layer};
use xen_ctrd::{DEFAULT_NAMESPACE, SnapshotKind, mounted, unmount};

fn start_or_skip(test: &str) -> Option<PrivateContainerd> {
    match PrivateContainerd::start() {
        Ok(c) => Some(c),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

#[test]
fn a_containers_snapshot_is_found_mounted_written_and_removed_as_eve_does() {
    let Some(ctrd) = start_or_skip("a_containers_snapshot_is_found_mounted_written_and_removed_as_eve_does") else {
        return;
    };
    let snaps = ctrd.snapshots(DEFAULT_NAMESPACE);
    let work = tempfile::tempdir().unwrap();

    // An image layer, committed as an image's unpack leaves it.
    let chain = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    commit_layer(&snaps, chain, |root| {
        std::fs::create_dir(root.join("bin"))?;
        std::fs::write(root.join("bin/app"), "#!/bin/sh\necho hello\n")?;
        std::fs::write(root.join("etc-hostname"), "image\n")
    })
    .unwrap();
    assert_eq!(snaps.stat(chain).unwrap().0, SnapshotKind::Committed);

    // EVE's volume manager: a writable snapshot named after the volume.
    let key = "7a3bd6c3-2b8d-4a39-9f62-0d3f2ec8b9a1#0.container";
    snaps.prepare(key, chain, &[GC_ROOT]).unwrap();
    assert_eq!(snaps.stat(key).unwrap(), (SnapshotKind::Active, chain.to_string()));

    // EVE's domainmgr: its mounts, the first mounted at <volume>/rootfs.
    let mounts = snaps.mounts(key).unwrap();
    assert_eq!(mounts[0].kind, "overlay", "{mounts:?}");
    let rootfs = work.path().join(key).join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    mounts[0].mount_at(&rootfs).unwrap();
    assert!(mounted(&rootfs).unwrap());
    assert_eq!(std::fs::read_to_string(rootfs.join("etc-hostname")).unwrap(), "image\n");
    std::fs::write(rootfs.join("written-by-the-app"), "kept").unwrap();
    assert!(unmount(&rootfs).unwrap());
    assert!(!mounted(&rootfs).unwrap());
    assert!(!rootfs.join("etc-hostname").exists(), "the image is gone with the mount");

    // A second mount (the next boot) sees what the app wrote.
    snaps.mounts(key).unwrap()[0].mount_at(&rootfs).unwrap();
    assert_eq!(std::fs::read_to_string(rootfs.join("written-by-the-app")).unwrap(), "kept");
    assert!(unmount(&rootfs).unwrap());

    // A committed snapshot has no mounts; an unknown key, or another namespace's, is NotFound.
    let e = snaps.mounts(chain).unwrap_err();
    assert!(!e.is_not_found() && e.to_string().contains("FailedPrecondition"), "{e}");
    assert!(snaps.mounts("no-such-volume#0.container").unwrap_err().is_not_found());
    assert!(ctrd.snapshots("default").mounts(key).unwrap_err().is_not_found());

    // A read-only view of the layer.
    let view = snaps.view("a-view", chain, &[GC_ROOT]).unwrap();
    let at = work.path().join("view");
    std::fs::create_dir(&at).unwrap();
    view[0].mount_at(&at).unwrap();
    assert!(std::fs::write(at.join("x"), "x").is_err(), "a view is read-only");
    assert!(unmount(&at).unwrap());

    // Removed: the active snapshot and the view, then the layer they stood on.
    snaps.remove(key).unwrap();
    snaps.remove("a-view").unwrap();
    snaps.remove(chain).unwrap();
    assert!(snaps.stat(key).unwrap_err().is_not_found());
}
