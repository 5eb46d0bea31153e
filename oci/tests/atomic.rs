//! The destination appears complete or not at all: a stale partial unpack from a crash is
//! never taken for a root filesystem and is cleared by the next unpack.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;

use common::{Comp, oci, sample_layers};
use xen_oci::{Error, Image};

fn image(tmp: &std::path::Path) -> Image {
    let layers: Vec<_> = sample_layers().into_iter().map(|t| (t, Comp::Gzip)).collect();
    oci(&layers).write_dir(&tmp.join("img"));
    Image::open(&tmp.join("img")).unwrap()
}

#[test]
fn a_stale_partial_unpack_is_not_complete_and_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let image = image(tmp.path());
    let dest = tmp.path().join("rootfs");
    let partial = tmp.path().join("rootfs.oci-partial");
    // What a crash half-way leaves: part of a tree, and a link a hostile layer planted.
    fs::create_dir_all(partial.join("etc")).unwrap();
    fs::write(partial.join("etc/half"), b"half").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("img"), partial.join("link")).unwrap();
    assert!(!dest.exists(), "a crashed unpack leaves no destination");

    let done = image.unpack(&dest).unwrap();
    assert!(done.warnings.iter().any(|w| w.contains("partial unpack")), "{:?}", done.warnings);
    assert!(!partial.exists());
    assert!(!dest.join("etc/half").exists());
    assert!(!dest.join("link").exists());
    assert_eq!(fs::read(dest.join("etc/hostname")).unwrap(), b"update\n");
    assert!(tmp.path().join("img/index.json").exists(), "removal did not follow the link");
}

#[test]
fn an_existing_destination_is_refused_and_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let image = image(tmp.path());
    let dest = tmp.path().join("rootfs");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("mine"), b"mine").unwrap();
    let err = image.unpack(&dest).unwrap_err();
    assert!(matches!(err, Error::Dest { .. }), "{err}");
    assert_eq!(fs::read(dest.join("mine")).unwrap(), b"mine");
    assert!(!tmp.path().join("rootfs.oci-partial").exists());
}

#[test]
fn unpacking_twice_gives_the_same_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let image = image(tmp.path());
    let a = image.unpack(&tmp.path().join("a")).unwrap();
    let b = image.unpack(&tmp.path().join("b")).unwrap();
    assert_eq!(a, b);
    assert_eq!(fs::read(tmp.path().join("a/bin/app")).unwrap(), fs::read(tmp.path().join("b/bin/app")).unwrap());
}
