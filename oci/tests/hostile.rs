//! Hostile layers: names and links built to write or link outside the destination, and
//! images built to fill the disk. Each is refused or contained, and nothing appears outside.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use common::{Comp, Layer, oci};
use tar::EntryType;
use xen_oci::{Error, Image, Limits, Unpacked};

/// A scratch area with an `outside` directory holding a `secret` file next to the image.
struct Scene {
    tmp: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("outside")).unwrap();
        fs::write(tmp.path().join("outside/secret"), b"secret").unwrap();
        Scene { tmp }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    fn outside(&self) -> PathBuf {
        self.path().join("outside")
    }

    fn dest(&self) -> PathBuf {
        self.path().join("image/rootfs")
    }

    fn unpack_with(&self, layers: Vec<Vec<u8>>, limits: &Limits) -> Result<Unpacked, Error> {
        let layers: Vec<_> = layers.into_iter().map(|t| (t, Comp::None)).collect();
        fs::create_dir_all(self.path().join("image")).unwrap();
        oci(&layers).write_dir(&self.path().join("image/img"));
        Image::open(&self.path().join("image/img")).unwrap().unpack_with(&self.dest(), limits)
    }

    fn unpack(&self, layers: Vec<Vec<u8>>) -> Result<Unpacked, Error> {
        self.unpack_with(layers, &Limits::default())
    }

    /// Nothing new outside the image directory, and the secret is untouched.
    fn assert_outside_untouched(&self) {
        let mut names: Vec<_> = fs::read_dir(self.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["image", "outside"]);
        let names: Vec<_> = fs::read_dir(self.outside()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["secret"]);
        assert_eq!(fs::read(self.outside().join("secret")).unwrap(), b"secret");
        assert_eq!(fs::metadata(self.outside().join("secret")).unwrap().nlink(), 1);
    }

    /// The unpack failed and left nothing behind.
    fn assert_nothing_left(&self) {
        assert!(!self.dest().exists());
        assert!(!self.path().join("image/rootfs.oci-partial").exists());
    }
}

#[test]
fn dot_dot_names_are_refused() {
    let scene = Scene::new();
    let layer = Layer::new().raw(EntryType::Regular, b"../../escape", b"", b"x").finish();
    let err = scene.unpack(vec![layer]).unwrap_err();
    assert!(matches!(&err, Error::Entry { entry, .. } if entry == "../../escape"), "{err}");
    let text = err.to_string();
    assert!(text.contains("img") && text.contains("sha256:") && text.contains("../../escape"), "{text}");
    scene.assert_nothing_left();
    scene.assert_outside_untouched();
}

#[test]
fn absolute_names_stay_inside() {
    let scene = Scene::new();
    let name = format!("{}/abs", scene.outside().display());
    let layer = Layer::new().raw(EntryType::Regular, name.as_bytes(), b"", b"x").finish();
    scene.unpack(vec![layer]).unwrap();
    let inside = scene.dest().join(scene.outside().strip_prefix("/").unwrap()).join("abs");
    assert_eq!(fs::read(inside).unwrap(), b"x");
    scene.assert_outside_untouched();
}

#[test]
fn writing_through_a_planted_symlink_stays_inside() {
    let scene = Scene::new();
    let outside = scene.outside();
    let mirror = outside.strip_prefix("/").unwrap().to_str().unwrap().to_owned();
    let layer = Layer::new()
        // The link's target exists inside the root too: that is where writes through it land.
        .dir(&mirror, 0o755)
        .symlink("abs", outside.to_str().unwrap())
        .file("abs/pwned", b"x", 0o644)
        // Unconfined, this would reach the real `outside` next to the image directory.
        .dir("outside", 0o755)
        .symlink("rel", "../../outside")
        .file("rel/pwned-rel", b"y", 0o644)
        .dir("rel/made", 0o755)
        .finish();
    // A later layer goes through the same links.
    let later = Layer::new().file("abs/later", b"z", 0o644).file("abs/secret", b"overwritten", 0o644).finish();
    scene.unpack(vec![layer, later]).unwrap();
    let contained = scene.dest().join(&mirror);
    assert_eq!(fs::read(contained.join("pwned")).unwrap(), b"x");
    assert_eq!(fs::read(contained.join("later")).unwrap(), b"z");
    assert_eq!(fs::read(contained.join("secret")).unwrap(), b"overwritten");
    assert_eq!(fs::read(scene.dest().join("outside/pwned-rel")).unwrap(), b"y", "`..` in a link stops at the root");
    assert!(scene.dest().join("outside/made").is_dir());
    scene.assert_outside_untouched();
}

#[test]
fn writing_through_a_dangling_planted_symlink_is_refused() {
    let scene = Scene::new();
    let layer = Layer::new().symlink("abs", scene.outside().to_str().unwrap()).file("abs/pwned", b"x", 0o644).finish();
    let err = scene.unpack(vec![layer]).unwrap_err();
    assert!(matches!(&err, Error::EntryIo { entry, .. } if entry == "abs/pwned"), "{err}");
    scene.assert_nothing_left();
    scene.assert_outside_untouched();
}

#[test]
fn a_file_over_a_planted_symlink_replaces_the_link() {
    let scene = Scene::new();
    let target = scene.outside().join("secret");
    let layer = Layer::new().symlink("link", target.to_str().unwrap()).finish();
    let later = Layer::new().file("link", b"overwritten", 0o644).finish();
    scene.unpack(vec![layer, later]).unwrap();
    assert_eq!(fs::read(scene.dest().join("link")).unwrap(), b"overwritten");
    assert!(!fs::symlink_metadata(scene.dest().join("link")).unwrap().file_type().is_symlink());
    scene.assert_outside_untouched();
}

#[test]
fn hard_links_to_outside_are_refused() {
    let scene = Scene::new();
    let up = Layer::new().raw(EntryType::Link, b"evil", b"../outside/secret", b"").finish();
    let err = scene.unpack(vec![up]).unwrap_err();
    assert!(matches!(err, Error::Entry { .. }), "{err}");
    scene.assert_nothing_left();

    // Absolute: read inside the root, where there is no such file.
    let target = scene.outside().join("secret");
    let abs = Layer::new().raw(EntryType::Link, b"evil", target.to_str().unwrap().as_bytes(), b"").finish();
    let err = scene.unpack(vec![abs]).unwrap_err();
    assert!(matches!(err, Error::Entry { .. }), "{err}");
    scene.assert_nothing_left();

    // Through a planted symlink.
    let via = Layer::new()
        .symlink("out", scene.outside().to_str().unwrap())
        .raw(EntryType::Link, b"evil", b"out/secret", b"")
        .finish();
    assert!(scene.unpack(vec![via]).is_err());
    scene.assert_nothing_left();
    scene.assert_outside_untouched();
}

#[test]
fn whiteouts_through_a_planted_symlink_stay_inside() {
    let scene = Scene::new();
    let layer = Layer::new().symlink("out", scene.outside().to_str().unwrap()).finish();
    let later = Layer::new().file("out/.wh.secret", b"", 0).file("out/.wh..wh..opq", b"", 0).finish();
    let updir = Layer::new().symlink("up", "../..").file("up/.wh.outside", b"", 0).finish();
    scene.unpack(vec![layer, later, updir]).unwrap();
    scene.assert_outside_untouched();
}

#[test]
fn whiteout_names_that_climb_are_refused() {
    let scene = Scene::new();
    for name in [&b"d/.wh..."[..], b".wh...", b".wh.."] {
        let layer = Layer::new().dir("d", 0o755).raw(EntryType::Regular, name, b"", b"").finish();
        assert!(matches!(scene.unpack(vec![layer]), Err(Error::Entry { .. })));
        scene.assert_nothing_left();
        assert!(scene.path().join("image/img/index.json").exists());
        scene.assert_outside_untouched();
    }
}

#[test]
fn limits_on_bytes_and_entries_are_enforced() {
    let scene = Scene::new();
    let layer = Layer::new().file("a", &[0u8; 3000], 0o644).file("b", &[0u8; 3000], 0o644).finish();
    let err = scene.unpack_with(vec![layer.clone()], &Limits { max_bytes: 5000, max_entries: 100 }).unwrap_err();
    assert!(matches!(&err, Error::Limit { what: "unpacked bytes", max: 5000, entry, .. } if entry == "b"), "{err}");
    assert!(err.to_string().contains("limit of 5000 unpacked bytes"), "{err}");
    scene.assert_nothing_left();

    let err = scene.unpack_with(vec![layer.clone()], &Limits { max_bytes: 1 << 20, max_entries: 1 }).unwrap_err();
    assert!(matches!(&err, Error::Limit { what: "entries", max: 1, .. }), "{err}");
    scene.assert_nothing_left();

    scene.unpack_with(vec![layer], &Limits { max_bytes: 6000, max_entries: 2 }).unwrap();
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let scene = Scene::new();
    // uid -1 (chown's "unchanged") in a PAX header.
    let layer = Layer::new().pax(&[("uid", b"4294967295")]).file("f", b"", 0o644).finish();
    assert!(matches!(scene.unpack(vec![layer]), Err(Error::Entry { .. })));
    scene.assert_nothing_left();
    // Not a tar at all.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    assert!(matches!(scene.unpack(vec![garbage]), Err(Error::Layer { .. })));
    scene.assert_nothing_left();
    // A hard link to nothing, a hard link to the root.
    let layer = Layer::new().hard_link("a", "missing").finish();
    assert!(scene.unpack(vec![layer]).is_err());
    let layer = Layer::new().raw(EntryType::Link, b"a", b"./", b"").finish();
    assert!(scene.unpack(vec![layer]).is_err());
    scene.assert_nothing_left();
    scene.assert_outside_untouched();
}
