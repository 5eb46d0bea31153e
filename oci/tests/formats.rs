//! Opening every supported image format, picking the platform, and refusing blobs that do
//! not match their digests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;

use common::{Comp, Files, Layer, add_manifest, docker_blobs, docker_legacy, oci, sample_layers, write_index};
use serde_json::json;
use xen_oci::{Error, Image};

fn check_sample(image: &Image, dest: &Path) {
    let config = image.config();
    assert_eq!(config.entrypoint, ["/bin/app"]);
    assert_eq!(config.cmd, ["--serve"]);
    assert_eq!(config.env, ["PATH=/usr/bin:/bin", "MODE=test"]);
    assert_eq!(config.working_dir, "/srv");
    assert_eq!(config.user, "1000:1000");
    let done = image.unpack(dest).unwrap();
    assert_eq!(done.layers, 2);
    assert_eq!(fs::read(dest.join("etc/hostname")).unwrap(), b"update\n");
    assert_eq!(fs::read(dest.join("bin/app")).unwrap(), b"#!/bin/sh\necho base\n");
}

fn with_comp(tars: Vec<Vec<u8>>, comps: &[Comp]) -> Vec<(Vec<u8>, Comp)> {
    tars.into_iter().zip(comps.iter().copied()).collect()
}

#[test]
fn oci_layout_directory() {
    let tmp = tempfile::tempdir().unwrap();
    oci(&with_comp(sample_layers(), &[Comp::None, Comp::None])).write_dir(&tmp.path().join("img"));
    let image = Image::open(&tmp.path().join("img")).unwrap();
    check_sample(&image, &tmp.path().join("rootfs"));
}

#[test]
fn oci_layout_tar_with_gzip_and_zstd_layers() {
    let tmp = tempfile::tempdir().unwrap();
    oci(&with_comp(sample_layers(), &[Comp::Gzip, Comp::Zstd])).write_tar(&tmp.path().join("img.tar"));
    let image = Image::open(&tmp.path().join("img.tar")).unwrap();
    check_sample(&image, &tmp.path().join("rootfs"));
}

#[test]
fn docker_save_legacy_archive() {
    let tmp = tempfile::tempdir().unwrap();
    docker_legacy(&sample_layers()).write_tar(&tmp.path().join("img.tar"));
    let image = Image::open(&tmp.path().join("img.tar")).unwrap();
    check_sample(&image, &tmp.path().join("rootfs"));
}

#[test]
fn docker_save_blob_archive_sniffs_compression() {
    let tmp = tempfile::tempdir().unwrap();
    docker_blobs(&with_comp(sample_layers(), &[Comp::Zstd, Comp::Gzip])).write_tar(&tmp.path().join("img.tar"));
    let image = Image::open(&tmp.path().join("img.tar")).unwrap();
    check_sample(&image, &tmp.path().join("rootfs"));
}

fn marker_layer(text: &str) -> Vec<(Vec<u8>, Comp)> {
    vec![(Layer::new().file("platform", text.as_bytes(), 0o644).finish(), Comp::Gzip)]
}

fn platform(os: &str, arch: &str) -> serde_json::Value {
    json!({"os": os, "architecture": arch})
}

#[test]
fn index_with_two_platforms_picks_linux_amd64() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Files::default();
    let mut arm = add_manifest(&mut files, "linux", "arm64", &marker_layer("arm64"));
    arm["platform"] = platform("linux", "arm64");
    let mut amd = add_manifest(&mut files, "linux", "amd64", &marker_layer("amd64"));
    amd["platform"] = platform("linux", "amd64");
    write_index(&mut files, vec![arm, amd]);
    files.write_dir(&tmp.path().join("img"));
    let image = Image::open(&tmp.path().join("img")).unwrap();
    image.unpack(&tmp.path().join("rootfs")).unwrap();
    assert_eq!(fs::read(tmp.path().join("rootfs/platform")).unwrap(), b"amd64");
}

#[test]
fn nested_index_without_platforms_is_decided_by_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Files::default();
    let arm = add_manifest(&mut files, "linux", "arm64", &marker_layer("arm64"));
    let amd = add_manifest(&mut files, "linux", "amd64", &marker_layer("amd64"));
    let inner =
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [arm, amd]});
    let inner = files.blob("application/vnd.oci.image.index.v1+json", serde_json::to_vec(&inner).unwrap());
    write_index(&mut files, vec![inner]);
    files.write_tar(&tmp.path().join("img.tar"));
    let image = Image::open(&tmp.path().join("img.tar")).unwrap();
    image.unpack(&tmp.path().join("rootfs")).unwrap();
    assert_eq!(fs::read(tmp.path().join("rootfs/platform")).unwrap(), b"amd64");
}

#[test]
fn an_image_for_other_platforms_only_is_refused_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Files::default();
    let mut arm = add_manifest(&mut files, "linux", "arm64", &marker_layer("arm64"));
    arm["platform"] = platform("linux", "arm64");
    // No platform in the index: the config tells.
    let ppc = add_manifest(&mut files, "linux", "ppc64le", &marker_layer("ppc"));
    write_index(&mut files, vec![arm, ppc]);
    files.write_dir(&tmp.path().join("img"));
    let err = Image::open(&tmp.path().join("img")).unwrap_err();
    assert!(matches!(&err, Error::Platform { found, .. } if found == &["linux/arm64", "linux/ppc64le"]), "{err}");
    assert!(err.to_string().contains("linux/arm64, linux/ppc64le"), "{err}");
}

/// Finds the blob holding `data` (compressed as stored) and flips its last content byte.
fn corrupt_layer(files: &mut Files, stored: &[u8]) -> String {
    let hex = common::sha256(stored);
    let blob = files.0.get_mut(&format!("blobs/sha256/{hex}")).unwrap();
    let pos = blob.windows(4).position(|w| w == b"base").unwrap();
    blob[pos] = b'B';
    format!("sha256:{hex}")
}

#[test]
fn a_layer_that_does_not_match_its_digest_is_refused_and_nothing_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let tars = sample_layers();
    let mut files = oci(&with_comp(tars.clone(), &[Comp::None, Comp::None]));
    let digest = corrupt_layer(&mut files, &tars[0]);
    files.write_tar(&tmp.path().join("img.tar"));
    let image = Image::open(&tmp.path().join("img.tar")).unwrap();
    let dest = tmp.path().join("rootfs");
    let err = image.unpack(&dest).unwrap_err();
    assert!(matches!(&err, Error::Digest { blob, .. } if *blob == digest), "{err}");
    assert!(err.to_string().contains(&digest), "{err}");
    assert!(err.to_string().contains("img.tar"), "{err}");
    assert!(!dest.exists());
    assert!(!tmp.path().join("rootfs.oci-partial").exists());
}

#[test]
fn a_docker_layer_that_does_not_match_its_diff_id_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let tars = sample_layers();
    let mut files = docker_legacy(&tars);
    let name = format!("{:064x}/layer.tar", 1);
    let blob = files.0.get_mut(&name).unwrap();
    let pos = blob.windows(4).position(|w| w == b"base").unwrap();
    blob[pos] = b'B';
    files.write_tar(&tmp.path().join("img.tar"));
    let image = Image::open(&tmp.path().join("img.tar")).unwrap();
    let err = image.unpack(&tmp.path().join("rootfs")).unwrap_err();
    let diff_id = format!("sha256:{}", common::sha256(&tars[0]));
    assert!(matches!(&err, Error::Digest { blob, .. } if *blob == diff_id), "{err}");
    assert!(!tmp.path().join("rootfs").exists());
}

#[test]
fn a_config_that_does_not_match_its_digest_is_refused_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = oci(&with_comp(sample_layers(), &[Comp::None, Comp::None]));
    let config = files.0.iter_mut().find(|(_, d)| d.starts_with(b"{\"architecture\"")).unwrap().1;
    let pos = config.windows(5).position(|w| w == b"serve").unwrap();
    config[pos] = b'S';
    files.write_dir(&tmp.path().join("img"));
    let err = Image::open(&tmp.path().join("img")).unwrap_err();
    assert!(matches!(err, Error::Digest { .. }), "{err}");
}

#[test]
fn neither_layout_nor_archive_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("junk"), b"not a tar at all, just text that is long enough").unwrap();
    assert!(Image::open(&tmp.path().join("junk")).is_err());
    assert!(Image::open(tmp.path()).is_err());
}
