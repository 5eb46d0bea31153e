use super::*;

static NO_CANCEL: AtomicBool = AtomicBool::new(false);

fn disk(target: &Path, vdev: &str, format: DiskFormat, readonly: bool) -> xenctl::DiskSpec {
    xenctl::DiskSpec { format, readonly, ..xenctl::DiskSpec::new(target.to_str().unwrap(), vdev) }
}

struct Store {
    _dir: tempfile::TempDir,
    copies: DiskCopies,
    sha_image: PathBuf,
    plain_image: PathBuf,
    outside: PathBuf,
}

fn store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("verified");
    let sha = "5E0BEBE7E83EDE141C3B86B3D9E3EE9105F2E93C201F6CD5912BE9EBC965F19B";
    std::fs::create_dir_all(store.join(sha)).unwrap();
    let sha_image = store.join(sha).join("disk.img");
    std::fs::write(&sha_image, vec![7u8; 1 << 20]).unwrap();
    let plain_image = store.join("golden.raw");
    std::fs::write(&plain_image, b"golden").unwrap();
    let outside = dir.path().join("elsewhere.img");
    std::fs::write(&outside, b"own").unwrap();
    std::fs::create_dir(dir.path().join("persist")).unwrap();
    let copies = DiskCopies { store, dir: dir.path().join("persist/img"), choice: Choice::Auto, rate_mib: None };
    Store { _dir: dir, copies, sha_image, plain_image, outside }
}

#[test]
fn writable_disks_from_the_store_get_their_own_copy_made_once() {
    let s = store();
    let uuid = Uuid::from_u128(0x4a144db0_6b63_405a_b884_7760042023b1);
    let mut spec = DomainSpec::new("vm", xenctl::DomainKind::Pv);
    spec.disks = vec![
        disk(&s.sha_image, "xvda", DiskFormat::Raw, false),
        disk(&s.plain_image, "xvdb", DiskFormat::Raw, true),
        disk(&s.outside, "xvdc", DiskFormat::Raw, false),
    ];
    let mut reports = 0;
    let copies = s.copies.apply(uuid, &mut spec, &NO_CANCEL, &mut |_| reports += 1).unwrap();
    assert!(reports >= 1, "progress is reported");
    let copy =
        s.copies.dir.join(format!("5E0BEBE7E83EDE141C3B86B3D9E3EE9105F2E93C201F6CD5912BE9EBC965F19B-{uuid}.img"));
    assert_eq!(spec.disks[0].target.as_deref(), Some(copy.to_str().unwrap()));
    assert_eq!(std::fs::read(&copy).unwrap(), vec![7u8; 1 << 20]);
    // Read-only, and outside the store: in place.
    assert_eq!(spec.disks[1].target.as_deref(), Some(s.plain_image.to_str().unwrap()));
    assert_eq!(spec.disks[2].target.as_deref(), Some(s.outside.to_str().unwrap()));
    assert_eq!(copies.len(), 1);
    assert_eq!((copies[0].vdev.as_str(), copies[0].reused, copies[0].done), ("xvda", false, 1 << 20));
    assert!(["reflink", "sparse"].contains(&copies[0].method.as_str()), "{:?}", copies[0]);

    // The guest wrote to its copy; the next boot (a new spec from the same config) reuses it.
    std::fs::write(&copy, b"written by the guest").unwrap();
    let mut again = DomainSpec::new("vm", xenctl::DomainKind::Pv);
    again.disks = vec![disk(&s.sha_image, "xvda", DiskFormat::Raw, false)];
    let copies = s.copies.apply(uuid, &mut again, &NO_CANCEL, &mut |_| {}).unwrap();
    assert!(copies[0].reused);
    assert_eq!(std::fs::read(&copy).unwrap(), b"written by the guest");
    assert_eq!(std::fs::read(&s.sha_image).unwrap(), vec![7u8; 1 << 20], "the shared image is unchanged");

    // Another domain's copy of the same image is its own; deleting one leaves the other.
    let other = Uuid::from_u128(2);
    let mut spec2 = DomainSpec::new("vm2", xenctl::DomainKind::Pv);
    spec2.disks = vec![disk(&s.sha_image, "xvda", DiskFormat::Raw, false)];
    s.copies.apply(other, &mut spec2, &NO_CANCEL, &mut |_| {}).unwrap();
    assert_eq!(s.copies.list().unwrap().len(), 2);
    assert_eq!(s.copies.remove_for(uuid), vec![copy.clone()]);
    assert!(!copy.exists());
    assert_eq!(s.copies.list().unwrap().len(), 1);
}

#[test]
fn a_qcow2_image_gets_an_overlay_and_an_overlay_of_raw_is_qcow2() {
    if std::process::Command::new("qemu-img").arg("--version").output().is_err() {
        eprintln!("SKIPPED a_qcow2_image_gets_an_overlay_and_an_overlay_of_raw_is_qcow2: no qemu-img");
        return;
    }
    let s = store();
    let qcow2 = s.copies.store.join("golden.qcow2");
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&qcow2)
        .arg("64M")
        .status()
        .unwrap();
    assert!(made.success());
    let uuid = Uuid::from_u128(3);
    let mut spec = DomainSpec::new("vm", xenctl::DomainKind::Pv);
    spec.disks = vec![disk(&qcow2, "xvda", DiskFormat::Qcow2, false)];
    let copies = s.copies.apply(uuid, &mut spec, &NO_CANCEL, &mut |_| {}).unwrap();
    assert_eq!(copies[0].method, "overlay");
    let copy = PathBuf::from(spec.disks[0].target.clone().unwrap());
    assert_eq!(xen_diskcopy::overlay_backing(&copy).unwrap(), Some(qcow2.clone()));

    // Overlays asked for: a raw image's copy is qcow2, named so, served by whichever back end.
    let overlays = DiskCopies { choice: Choice::Only(Method::Overlay), ..s.copies.clone() };
    let mut spec = DomainSpec::new("vm", xenctl::DomainKind::Pv);
    spec.disks =
        vec![xenctl::DiskSpec { backend: DiskBackend::Phy, ..disk(&s.plain_image, "xvda", DiskFormat::Raw, false) }];
    overlays.apply(uuid, &mut spec, &NO_CANCEL, &mut |_| {}).unwrap();
    assert_eq!((spec.disks[0].format, spec.disks[0].backend), (DiskFormat::Qcow2, DiskBackend::Auto));
    assert!(spec.disks[0].target.as_deref().unwrap().ends_with(&format!("golden-{uuid}.qcow2")));
}

#[test]
fn a_copy_that_cannot_be_made_is_an_error_naming_the_disk_and_leaves_nothing() {
    let s = store();
    let reflinks = DiskCopies { choice: Choice::Only(Method::Reflink), ..s.copies.clone() };
    let mut spec = DomainSpec::new("vm", xenctl::DomainKind::Pv);
    spec.disks = vec![disk(&s.plain_image, "xvdb", DiskFormat::Raw, false)];
    match reflinks.apply(Uuid::from_u128(4), &mut spec, &NO_CANCEL, &mut |_| {}) {
        // A file system that can clone (XFS, btrfs) makes it; most cannot.
        Ok(c) => assert_eq!(c[0].method, "reflink"),
        Err(e) => {
            assert!(e.starts_with("disk xvdb (") && e.contains("golden.raw"), "{e}");
            assert!(s.copies.list().unwrap().is_empty());
            assert_eq!(spec.disks[0].target.as_deref(), Some(s.plain_image.to_str().unwrap()));
        }
    }
    assert_eq!(Choice::from_word("auto"), Some(Choice::Auto));
    assert_eq!(Choice::from_word("sparse"), Some(Choice::Only(Method::Sparse)));
    assert_eq!(Choice::from_word("fast"), None);
}
