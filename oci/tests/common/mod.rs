//! Images built at test time: layer tars written with the `tar` crate (raw headers where a
//! hostile name is needed), compressed with gzip or zstd, and wrapped as an OCI layout (a
//! directory or a tar), or a `docker save` archive of either flavour.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Whether the tests run as root (ownership, device nodes and `security.*` need it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Skips the calling test, saying why, when not root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            eprintln!("SKIPPED: this test needs root (run the tests as root, as CI does)");
            return;
        }
    };
}

pub fn sha256(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A layer tar under construction. Times are fixed so results are predictable.
pub struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

pub const MTIME: u64 = 1_600_000_000;

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// A PAX extended header's data: `<len> <key>=<value>\n` records.
fn pax_records(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let body_len = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = body_len + 1;
        while len != body_len + len.to_string().len() {
            len = body_len + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer { builder: tar::Builder::new(Vec::new()) }
    }

    fn append(&mut self, mut h: tar::Header, path: &str, data: &[u8]) -> &mut Self {
        h.set_path(path).unwrap();
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
        self
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.append(header(tar::EntryType::Directory, mode, 0), path, b"")
    }

    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> &mut Self {
        self.append(header(tar::EntryType::Regular, mode, data.len() as u64), path, data)
    }

    /// A file owned by `uid:gid`, with `root` as the owner's names: only the numbers count.
    pub fn owned_file(&mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_username("root").unwrap();
        h.set_groupname("root").unwrap();
        self.append(h, path, data)
    }

    pub fn owned_dir(&mut self, path: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        h.set_uid(uid);
        h.set_gid(gid);
        self.append(h, path, b"")
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        h.set_link_name_literal(target).unwrap();
        self.append(h, path, b"")
    }

    pub fn owned_symlink(&mut self, path: &str, target: &str, uid: u64, gid: u64) -> &mut Self {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        h.set_link_name_literal(target).unwrap();
        h.set_uid(uid);
        h.set_gid(gid);
        self.append(h, path, b"")
    }

    pub fn hard_link(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = header(tar::EntryType::Link, 0o644, 0);
        h.set_link_name_literal(target).unwrap();
        self.append(h, path, b"")
    }

    pub fn fifo(&mut self, path: &str, mode: u32) -> &mut Self {
        self.append(header(tar::EntryType::Fifo, mode, 0), path, b"")
    }

    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = header(tar::EntryType::Char, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.append(h, path, b"")
    }

    /// A PAX extended header applying to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let data = pax_records(records);
        self.append(header(tar::EntryType::XHeader, 0o644, data.len() as u64), "PaxHeaders/next", &data)
    }

    /// An entry whose name (and link name) are written verbatim, bypassing the `tar` crate's
    /// checks: for hostile names.
    pub fn raw(&mut self, kind: tar::EntryType, name: &[u8], link: &[u8], data: &[u8]) -> &mut Self {
        let mut h = header(kind, 0o644, data.len() as u64);
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let builder = std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()));
        builder.into_inner().unwrap()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

impl Comp {
    pub fn media_type(self) -> &'static str {
        match self {
            Comp::None => "application/vnd.oci.image.layer.v1.tar",
            Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    pub fn apply(self, tar: &[u8]) -> Vec<u8> {
        match self {
            Comp::None => tar.to_vec(),
            Comp::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(tar).unwrap();
                enc.finish().unwrap()
            }
            Comp::Zstd => zstd::encode_all(tar, 3).unwrap(),
        }
    }
}

/// The files of an image, by name.
#[derive(Default, Clone)]
pub struct Files(pub BTreeMap<String, Vec<u8>>);

impl Files {
    pub fn put(&mut self, name: &str, data: Vec<u8>) {
        self.0.insert(name.to_owned(), data);
    }

    /// Stores a blob under `blobs/sha256/`; returns its descriptor.
    pub fn blob(&mut self, media_type: &str, data: Vec<u8>) -> Value {
        let hex = sha256(&data);
        let desc = json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": data.len()});
        self.put(&format!("blobs/sha256/{hex}"), data);
        desc
    }

    pub fn write_dir(&self, dir: &Path) {
        for (name, data) in &self.0 {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, data).unwrap();
        }
    }

    pub fn write_tar(&self, path: &Path) {
        let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
        for (name, data) in &self.0 {
            let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
            h.set_path(name).unwrap();
            h.set_cksum();
            b.append(&h, data.as_slice()).unwrap();
        }
        b.into_inner().unwrap().sync_all().unwrap();
    }
}

/// The `config` section used by the test images.
pub fn run_section() -> Value {
    json!({
        "Entrypoint": ["/bin/app"],
        "Cmd": ["--serve"],
        "Env": ["PATH=/usr/bin:/bin", "MODE=test"],
        "WorkingDir": "/srv",
        "User": "1000:1000"
    })
}

/// An image config for `os/arch` with these layer tars (uncompressed) as diff ids.
pub fn image_config(os: &str, arch: &str, tars: &[Vec<u8>]) -> Vec<u8> {
    let diff_ids: Vec<String> = tars.iter().map(|t| format!("sha256:{}", sha256(t))).collect();
    serde_json::to_vec(&json!({
        "architecture": arch,
        "os": os,
        "config": run_section(),
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap()
}

/// Adds a manifest for `os/arch` with these layers to `files`; returns its descriptor.
pub fn add_manifest(files: &mut Files, os: &str, arch: &str, layers: &[(Vec<u8>, Comp)]) -> Value {
    let tars: Vec<Vec<u8>> = layers.iter().map(|(t, _)| t.clone()).collect();
    let config = files.blob("application/vnd.oci.image.config.v1+json", image_config(os, arch, &tars));
    let layer_descs: Vec<Value> = layers.iter().map(|(t, c)| files.blob(c.media_type(), c.apply(t))).collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layer_descs
    });
    files.blob("application/vnd.oci.image.manifest.v1+json", serde_json::to_vec(&manifest).unwrap())
}

pub fn write_index(files: &mut Files, manifests: Vec<Value>) {
    let index =
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    files.put("index.json", serde_json::to_vec(&index).unwrap());
    files.put("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec());
}

/// An OCI layout with one linux/amd64 image of these layers.
pub fn oci(layers: &[(Vec<u8>, Comp)]) -> Files {
    let mut files = Files::default();
    let manifest = add_manifest(&mut files, "linux", "amd64", layers);
    write_index(&mut files, vec![manifest]);
    files
}

/// A legacy `docker save` archive: `<id>/layer.tar`, `<hex>.json`, `manifest.json`.
pub fn docker_legacy(tars: &[Vec<u8>]) -> Files {
    let mut files = Files::default();
    let config = image_config("linux", "amd64", tars);
    let config_name = format!("{}.json", sha256(&config));
    files.put(&config_name, config);
    let mut names = Vec::new();
    for (i, tar) in tars.iter().enumerate() {
        let name = format!("{:064x}/layer.tar", i + 1);
        files.put(&name, tar.clone());
        files.put(&format!("{:064x}/VERSION", i + 1), b"1.0".to_vec());
        names.push(name);
    }
    let manifest = json!([{"Config": config_name, "RepoTags": ["test:latest"], "Layers": names}]);
    files.put("manifest.json", serde_json::to_vec(&manifest).unwrap());
    files
}

/// A newer `docker save` archive: config and layers as `blobs/sha256/` blobs named by
/// `manifest.json` (without `index.json`, so the docker path is the one taken).
pub fn docker_blobs(layers: &[(Vec<u8>, Comp)]) -> Files {
    let mut files = Files::default();
    let tars: Vec<Vec<u8>> = layers.iter().map(|(t, _)| t.clone()).collect();
    let config = files.blob("application/vnd.oci.image.config.v1+json", image_config("linux", "amd64", &tars));
    let names: Vec<String> = layers
        .iter()
        .map(|(t, c)| {
            let d = files.blob(c.media_type(), c.apply(t));
            format!("blobs/sha256/{}", d["digest"].as_str().unwrap().trim_start_matches("sha256:"))
        })
        .collect();
    let config_name = format!("blobs/sha256/{}", config["digest"].as_str().unwrap().trim_start_matches("sha256:"));
    let manifest = json!([{"Config": config_name, "RepoTags": ["test:latest"], "Layers": names, "LayerSources": {}}]);
    files.put("manifest.json", serde_json::to_vec(&manifest).unwrap());
    files
}

/// A two-layer sample: a base and an update.
pub fn sample_layers() -> Vec<Vec<u8>> {
    let base = Layer::new()
        .dir("bin", 0o755)
        .file("bin/app", b"#!/bin/sh\necho base\n", 0o755)
        .dir("etc", 0o755)
        .file("etc/hostname", b"base\n", 0o644)
        .finish();
    let update = Layer::new().dir("etc", 0o755).file("etc/hostname", b"update\n", 0o644).finish();
    vec![base, update]
}
