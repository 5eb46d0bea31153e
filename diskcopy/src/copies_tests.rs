//! Tests of making, reusing, listing and removing copies, on the test machine's own filesystem,
//! a full tmpfs and a reflink-capable XFS (the last two as root only).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::testutil::{MIB, Mounted, have, random_bytes, sparse_file};
use crate::{copy_path, overlay_backing};

/// Runs `ensure_copy` without a progress callback or cancellation.
fn ensure(req: &CopyRequest) -> Result<Outcome> {
    ensure_copy(req, &mut |_| {}, &AtomicBool::new(false))
}

/// The names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Whether `dir`'s filesystem can reflink, tried directly (not through the crate).
fn can_reflink(dir: &Path) -> bool {
    let a = dir.join("probe-a");
    let b = dir.join("probe-b");
    std::fs::write(&a, vec![1u8; 4096]).unwrap();
    let ok = rustix::fs::ioctl_ficlone(File::create(&b).unwrap(), File::open(&a).unwrap()).is_ok();
    std::fs::remove_file(&a).unwrap();
    std::fs::remove_file(&b).unwrap();
    ok
}

/// A store with one sparse raw image and an img dir beside it.
struct Fixture {
    root: tempfile::TempDir,
}

impl Fixture {
    fn new(len: u64, extents: &[(u64, u64)]) -> Fixture {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("store")).unwrap();
        sparse_file(&root.path().join("store/base.raw"), len, extents, 11);
        Fixture { root }
    }
    fn source(&self) -> PathBuf {
        self.root.path().join("store/base.raw")
    }
    fn img(&self) -> PathBuf {
        self.root.path().join("img")
    }
    fn request(&self, strategy: Strategy) -> CopyRequest {
        let dest = copy_path(&self.img(), "base", "0b7e1a3c-4f4e-4a8e-9d0b-5a5c2f6e7d81", "img").unwrap();
        CopyRequest { strategy, ..CopyRequest::new(self.source(), DiskFormat::Raw, dest) }
    }
}

#[test]
fn auto_falls_back_to_a_sparse_copy_where_reflink_cannot() {
    let fx = Fixture::new(32 * MIB, &[(4 * MIB, 4 * MIB), (20 * MIB, 2 * MIB)]);
    if can_reflink(fx.root.path()) {
        println!("SKIPPED auto_falls_back_to_a_sparse_copy_where_reflink_cannot: the test filesystem can reflink");
        return;
    }
    let req = fx.request(Strategy::Only(Method::Reflink));
    match ensure(&req) {
        Err(Error::Unsupported { method: Method::Reflink, .. }) => {}
        other => panic!("forced reflink on a filesystem without it gave {other:?}"),
    }
    assert_eq!(names(&fx.img()), Vec::<String>::new(), "nothing left after the refusal");

    let out = ensure(&fx.request(Strategy::Auto { allow_overlay: false })).unwrap();
    println!("auto on this filesystem: {:?}", out.method);
    assert_eq!(out.method, Some(Method::Sparse));
    assert_eq!((out.reused, out.format, out.size), (false, DiskFormat::Raw, 32 * MIB));
    assert!(out.allocated <= 6 * MIB + MIB / 4, "sparse: {} allocated", out.allocated);
    assert_eq!(std::fs::read(&out.path).unwrap(), std::fs::read(fx.source()).unwrap());
    assert_eq!(names(&fx.img()), vec!["base-0b7e1a3c-4f4e-4a8e-9d0b-5a5c2f6e7d81.img"]);
}

#[test]
fn auto_makes_an_overlay_when_allowed_and_remembers_it() {
    if !have("qemu-img") {
        println!("SKIPPED auto_makes_an_overlay_when_allowed_and_remembers_it: qemu-img not installed");
        return;
    }
    let fx = Fixture::new(32 * MIB, &[(0, MIB)]);
    if can_reflink(fx.root.path()) {
        println!("SKIPPED auto_makes_an_overlay_when_allowed_and_remembers_it: the test filesystem can reflink");
        return;
    }
    let req = fx.request(Strategy::Auto { allow_overlay: true });
    let out = ensure(&req).unwrap();
    assert_eq!((out.method, out.format, out.reused), (Some(Method::Overlay), DiskFormat::Qcow2, false));
    assert_eq!(overlay_backing(&out.path).unwrap(), Some(fx.source()));
    assert!(out.allocated < MIB, "an overlay is small: {}", out.allocated);

    // A later boot: the same copy, still known as a qcow2 overlay of a raw image.
    let again = ensure(&req).unwrap();
    assert_eq!((again.method, again.format, again.reused), (Some(Method::Overlay), DiskFormat::Qcow2, true));
    let listed = list_copies(&fx.img()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].backing.as_deref(), Some(fx.source().as_path()), "the image an overlay needs is listed");
}

#[test]
fn a_second_call_reuses_the_copy_without_touching_it() {
    let fx = Fixture::new(16 * MIB, &[(MIB, 3 * MIB)]);
    let req = fx.request(Strategy::Only(Method::Sparse));
    let first = ensure(&req).unwrap();
    let before = std::fs::metadata(&first.path).unwrap();
    // The domain writes to its copy.
    std::fs::OpenOptions::new().write(true).open(&first.path).unwrap().set_len(17 * MIB).unwrap();
    let written = std::fs::metadata(&first.path).unwrap();

    let second = ensure(&req).unwrap();
    assert!(second.reused);
    assert_eq!(second.method, Some(Method::Sparse), "the recorded method");
    let after = std::fs::metadata(&second.path).unwrap();
    assert_eq!(after.ino(), before.ino(), "same file");
    assert_eq!((after.mtime(), after.mtime_nsec()), (written.mtime(), written.mtime_nsec()), "not rewritten");
    assert_eq!(after.len(), 17 * MIB, "the domain's change kept");
}

#[test]
fn a_stale_partial_is_removed_and_never_used() {
    let fx = Fixture::new(8 * MIB, &[(2 * MIB, MIB)]);
    let req = fx.request(Strategy::Only(Method::Sparse));
    std::fs::create_dir(fx.img()).unwrap();
    let partial = fx.img().join(format!("{}{PARTIAL_SUFFIX}", req.dest.file_name().unwrap().to_string_lossy()));
    // What a killed run left: the right length, wrong content where the image has holes.
    std::fs::write(&partial, vec![0xAAu8; 8 * MIB as usize]).unwrap();
    assert!(list_copies(&fx.img()).unwrap().is_empty(), "a partial is not a copy");

    let out = ensure(&req).unwrap();
    assert!(!out.reused, "a partial is never taken for the copy");
    assert_eq!(std::fs::read(&out.path).unwrap(), std::fs::read(fx.source()).unwrap());
    assert!(!partial.exists());

    // A .partial that is a symbolic link is removed, not written through.
    let victim = fx.root.path().join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    remove_copy(&out.path).unwrap();
    std::os::unix::fs::symlink(&victim, &partial).unwrap();
    ensure(&req).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert!(std::fs::symlink_metadata(&partial).is_err());
}

#[test]
fn cancel_mid_copy_leaves_neither_copy_nor_partial() {
    // 200 MiB with data throughout, so the first report (after 64 MiB) comes well before the end.
    let extents: Vec<(u64, u64)> = (0..10).map(|i| (i * 20 * MIB, 12 * MIB)).collect();
    let fx = Fixture::new(200 * MIB, &extents);
    for method in [Method::Sparse, Method::Plain] {
        let req = fx.request(Strategy::Only(method));
        let cancel = AtomicBool::new(false);
        let mut seen = Vec::new();
        let result = ensure_copy(
            &req,
            &mut |p| {
                seen.push(p);
                cancel.store(true, Ordering::Relaxed);
            },
            &cancel,
        );
        assert!(matches!(result, Err(Error::Cancelled { .. })), "{method}: {result:?}");
        assert!(seen.first().is_some_and(|p| p.done < p.total), "{method}: cancelled part-way: {seen:?}");
        assert_eq!(names(&fx.img()), Vec::<String>::new(), "{method}: nothing left");
    }
}

#[test]
fn a_full_disk_is_reported_as_such_and_leaves_nothing() {
    let fs = match Mounted::tmpfs(4 * MIB) {
        Ok(fs) => fs,
        Err(why) => {
            println!("SKIPPED a_full_disk_is_reported_as_such_and_leaves_nothing: {why}");
            return;
        }
    };
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("big.raw");
    std::fs::write(&src, random_bytes(16 * MIB as usize, 4)).unwrap();
    let img = fs.path().join("img");
    for strategy in [Strategy::Auto { allow_overlay: false }, Strategy::Only(Method::Plain)] {
        let dest = copy_path(&img, "big", "u1", "img").unwrap();
        let req = CopyRequest { strategy, ..CopyRequest::new(&src, DiskFormat::Raw, &dest) };
        match ensure(&req) {
            Err(Error::NoSpace { path, .. }) => assert_eq!(path, dest, "{strategy:?}: names the copy"),
            other => panic!("{strategy:?}: expected no space, got {other:?}"),
        }
        assert_eq!(names(&img), Vec::<String>::new(), "{strategy:?}: nothing left");
    }
    // The space is free again: a copy that fits works.
    std::fs::write(&src, random_bytes(MIB as usize, 5)).unwrap();
    let dest = copy_path(&img, "small", "u1", "img").unwrap();
    assert!(ensure(&CopyRequest::new(&src, DiskFormat::Raw, &dest)).is_ok());
}

#[test]
fn reflink_on_xfs_shares_the_extents() {
    let fs = match Mounted::xfs_reflink(300 * MIB) {
        Ok(fs) => fs,
        Err(why) => {
            println!("SKIPPED reflink_on_xfs_shares_the_extents: {why}");
            return;
        }
    };
    let src = fs.path().join("base.raw");
    std::fs::write(&src, random_bytes(64 * MIB as usize, 6)).unwrap();
    File::open(&src).unwrap().sync_all().unwrap();
    let free = || {
        let s = rustix::fs::statvfs(fs.path()).unwrap();
        s.f_bavail * s.f_frsize
    };
    let before = free();
    let dest = copy_path(&fs.path().join("img"), "base", "u1", "img").unwrap();
    let out = ensure(&CopyRequest::new(&src, DiskFormat::Raw, &dest)).unwrap();
    assert_eq!(out.method, Some(Method::Reflink));
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&src).unwrap());
    let used = before.saturating_sub(free());
    assert!(used < 2 * MIB, "a reflink takes no data space: {used} bytes used for 64 MiB");
    if have("filefrag") {
        let out = std::process::Command::new("filefrag").arg("-v").arg(&dest).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("shared"), "filefrag shows shared extents:\n{text}");
    }
}

#[test]
fn list_and_remove() {
    let fx = Fixture::new(4 * MIB, &[(0, MIB)]);
    let a = copy_path(&fx.img(), "base", "a", "img").unwrap();
    let b = copy_path(&fx.img(), "base", "b", "img").unwrap();
    for dest in [&a, &b] {
        ensure(&CopyRequest {
            strategy: Strategy::Only(Method::Plain),
            ..CopyRequest::new(fx.source(), DiskFormat::Raw, dest)
        })
        .unwrap();
    }
    let partial = fx.img().join("base-c.img.partial");
    std::fs::write(&partial, b"cut short").unwrap();

    let listed = list_copies(&fx.img()).unwrap();
    let paths: Vec<_> = listed.iter().map(|c| c.path.clone()).collect();
    assert_eq!(paths, vec![a.clone(), b.clone()]);
    assert!(listed.iter().all(|c| c.size == 4 * MIB && c.allocated >= 4 * MIB && c.method == Some(Method::Plain)));

    assert_eq!(remove_partials(&fx.img()).unwrap(), vec![partial.clone()]);
    assert!(!partial.exists());
    remove_copy(&a).unwrap();
    remove_copy(&a).unwrap();
    assert_eq!(names(&fx.img()), vec!["base-b.img"]);
}

#[test]
fn something_else_at_the_final_name_is_an_error() {
    let fx = Fixture::new(MIB, &[(0, MIB)]);
    let req = fx.request(Strategy::Only(Method::Sparse));
    std::fs::create_dir_all(&req.dest).unwrap();
    assert!(matches!(ensure(&req), Err(Error::NotAFile { .. })));
    std::fs::remove_dir(&req.dest).unwrap();
    std::os::unix::fs::symlink(fx.source(), &req.dest).unwrap();
    assert!(matches!(ensure(&req), Err(Error::NotAFile { .. })), "a symbolic link is not followed");
}
