//! What unpacking keeps: layer order, replacement, whiteouts, opaque directories, links,
//! modes, ownership, times, extended attributes and special files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use common::{Comp, Layer, MTIME, oci};
use xen_oci::{Image, Unpacked};

/// Unpacks an OCI layout of these layers (uncompressed); returns the root and the report.
fn unpack(tmp: &Path, layers: Vec<Vec<u8>>) -> (PathBuf, Unpacked) {
    let layers: Vec<_> = layers.into_iter().map(|t| (t, Comp::None)).collect();
    oci(&layers).write_dir(&tmp.join("img"));
    let dest = tmp.join("rootfs");
    let done = Image::open(&tmp.join("img")).unwrap().unpack(&dest).unwrap();
    (dest, done)
}

#[test]
fn later_layers_replace_files_and_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let base = Layer::new()
        .dir("a", 0o755)
        .file("a/old", b"old", 0o644)
        .file("b", b"a file", 0o644)
        .dir("keep", 0o755)
        .file("keep/x", b"x", 0o644)
        .finish();
    let top = Layer::new()
        .file("a", b"now a file", 0o644)
        .dir("b", 0o750)
        .file("b/inside", b"in", 0o644)
        .dir("keep", 0o755)
        .file("keep/y", b"y", 0o644)
        .finish();
    let (root, done) = unpack(tmp.path(), vec![base, top]);
    assert_eq!(fs::read(root.join("a")).unwrap(), b"now a file");
    assert!(root.join("b").is_dir());
    assert_eq!(fs::read(root.join("b/inside")).unwrap(), b"in");
    assert_eq!(fs::read(root.join("keep/x")).unwrap(), b"x", "directories merge");
    assert_eq!(fs::read(root.join("keep/y")).unwrap(), b"y");
    assert_eq!(done.layers, 2);
    assert_eq!(done.entries, 10);
    assert_eq!(done.bytes, 3 + 6 + 1 + 10 + 2 + 1);
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
}

#[test]
fn whiteouts_remove_lower_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let base = Layer::new()
        .file("gone", b"1", 0o644)
        .dir("gonedir", 0o755)
        .file("gonedir/f", b"2", 0o644)
        .dir("etc", 0o755)
        .file("etc/stays", b"3", 0o644)
        .finish();
    let top = Layer::new()
        .file(".wh.gone", b"", 0o644)
        .file(".wh.gonedir", b"", 0o644)
        .file("etc/.wh.nothere", b"", 0)
        .finish();
    let (root, _) = unpack(tmp.path(), vec![base, top]);
    assert!(!root.join("gone").exists());
    assert!(!root.join("gonedir").exists());
    assert!(!root.join(".wh.gone").exists(), "whiteouts are not files");
    assert!(root.join("etc/stays").exists());
    assert!(!root.join("etc/.wh.nothere").exists());
}

#[test]
fn an_opaque_directory_hides_lower_contents_and_keeps_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let base = Layer::new()
        .dir("d", 0o755)
        .file("d/lower", b"l", 0o644)
        .dir("d/sub", 0o755)
        .file("d/sub/lower", b"l", 0o644)
        .file("outside", b"o", 0o644)
        .finish();
    // This layer's own entries come both before and after the marker.
    let top = Layer::new()
        .dir("d", 0o755)
        .file("d/mine", b"m", 0o644)
        .file("d/.wh..wh..opq", b"", 0o644)
        .file("d/sub/mine", b"m", 0o644)
        .finish();
    let (root, _) = unpack(tmp.path(), vec![base, top]);
    assert!(!root.join("d/lower").exists());
    assert!(!root.join("d/sub/lower").exists());
    assert!(root.join("d/mine").exists());
    assert!(root.join("d/sub/mine").exists());
    assert!(!root.join("d/.wh..wh..opq").exists());
    assert!(root.join("outside").exists());
}

#[test]
fn symlinks_and_hard_links_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = Layer::new()
        .dir("usr/bin", 0o755)
        .file("usr/bin/busybox", b"bb", 0o755)
        .hard_link("usr/bin/sh", "usr/bin/busybox")
        .hard_link("usr/bin/ls", "/usr/bin/busybox")
        .symlink("bin", "usr/bin")
        .symlink("usr/bin/abs", "/etc/nowhere")
        .finish();
    let (root, _) = unpack(tmp.path(), vec![layer]);
    assert_eq!(fs::read_link(root.join("bin")).unwrap(), Path::new("usr/bin"));
    assert_eq!(fs::read_link(root.join("usr/bin/abs")).unwrap(), Path::new("/etc/nowhere"));
    let bb = fs::metadata(root.join("usr/bin/busybox")).unwrap();
    assert_eq!(bb.nlink(), 3);
    assert_eq!(fs::metadata(root.join("usr/bin/sh")).unwrap().ino(), bb.ino());
    assert_eq!(fs::metadata(root.join("usr/bin/ls")).unwrap().ino(), bb.ino());
}

#[test]
fn modes_with_setuid_setgid_sticky_and_times_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = Layer::new()
        .dir("usr/bin", 0o755)
        .file("usr/bin/su", b"su", 0o4755)
        .file("usr/bin/wall", b"wall", 0o2755)
        .dir("tmp", 0o1777)
        .dir("ro", 0o555)
        .file("ro/f", b"f", 0o400)
        .finish();
    let (root, _) = unpack(tmp.path(), vec![layer]);
    let mode = |p: &str| fs::symlink_metadata(root.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("usr/bin/su"), 0o4755);
    assert_eq!(mode("usr/bin/wall"), 0o2755);
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(mode("ro"), 0o555);
    assert_eq!(mode("ro/f"), 0o400);
    assert_eq!(mode(""), 0o755, "the root ends 0755");
    for p in ["usr/bin/su", "tmp", "ro", "usr/bin"] {
        assert_eq!(fs::symlink_metadata(root.join(p)).unwrap().mtime(), MTIME as i64, "{p}");
    }
}

#[test]
fn ownership_is_kept_numerically() {
    require_root!();
    let tmp = tempfile::tempdir().unwrap();
    let layer = Layer::new()
        .owned_dir("home/u", 0o700, 1000, 1000)
        .owned_file("home/u/f", b"f", 0o4750, 1000, 2000)
        .owned_symlink("home/u/l", "f", 1234, 4321)
        // PAX ids override the header's.
        .pax(&[("uid", b"70000"), ("gid", b"80000")])
        .owned_file("big", b"b", 0o644, 1, 1)
        .finish();
    let (root, done) = unpack(tmp.path(), vec![layer]);
    let ids = |p: &str| {
        let m = fs::symlink_metadata(root.join(p)).unwrap();
        (m.uid(), m.gid(), m.mode() & 0o7777)
    };
    assert_eq!(ids("home/u"), (1000, 1000, 0o700));
    assert_eq!(ids("home/u/f"), (1000, 2000, 0o4750), "setuid survives chown");
    assert_eq!(ids("home/u/l").0, 1234, "lchown, not chown of the target");
    assert_eq!(ids("home/u/l").1, 4321);
    assert_eq!(ids("big").0, 70000);
    assert_eq!(ids("big").1, 80000);
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
}

#[test]
fn extended_attributes_from_pax_headers_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    // A file capability (v2, cap_net_bind_service permitted+effective).
    let mut cap = vec![0x01, 0x00, 0x00, 0x02];
    cap.extend_from_slice(&[0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut layer = Layer::new();
    layer.pax(&[("SCHILY.xattr.user.note", b"hello")]).file("f", b"f", 0o755);
    if common::is_root() {
        layer.pax(&[("SCHILY.xattr.security.capability", &cap)]).file("ping", b"p", 0o755);
    } else {
        eprintln!("not root: security.capability is not tried");
    }
    let (root, done) = unpack(tmp.path(), vec![layer.finish()]);
    let file = fs::File::open(root.join("f")).unwrap();
    let mut buf = [0u8; 64];
    let n = rustix::fs::fgetxattr(&file, "user.note", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    if common::is_root() {
        let file = fs::File::open(root.join("ping")).unwrap();
        let n = rustix::fs::fgetxattr(&file, "security.capability", &mut buf).unwrap();
        assert_eq!(&buf[..n], cap.as_slice());
    }
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
}

#[test]
fn fifos_and_device_nodes_are_created_or_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = Layer::new().dir("dev", 0o755).fifo("dev/initctl", 0o600).char_device("dev/null", 1, 3).finish();
    let (root, done) = unpack(tmp.path(), vec![layer]);
    let fifo = fs::symlink_metadata(root.join("dev/initctl")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o600);
    match fs::symlink_metadata(root.join("dev/null")) {
        Ok(m) => {
            assert!(m.file_type().is_char_device());
            assert_eq!(m.rdev(), rustix::fs::makedev(1, 3));
            assert_eq!(m.mode() & 0o7777, 0o666, "the umask is not applied");
        }
        Err(_) => assert!(done.warnings.iter().any(|w| w.contains("dev/null")), "{:?}", done.warnings),
    }
}
