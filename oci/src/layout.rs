//! Writing an OCI image layout directory: uncompressed tar layers and a run configuration
//! become `oci-layout`, `index.json` and the blobs (config, manifest, layers) under
//! `blobs/sha256/`, for linux/amd64. For tools that make images from what they have (a root
//! filesystem as a tar), and for tests that need an image [`Image::open`](crate::Image::open)
//! reads as any other.

use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::RunConfig;

/// A layer being written: an uncompressed tar of entries owned by root, dated 0.
pub struct Layer(tar::Builder<Vec<u8>>);

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer").finish_non_exhaustive()
    }
}

impl Default for Layer {
    fn default() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Layer {
        Layer::default()
    }

    fn add(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        mode: u32,
        data: &[u8],
        link: Option<&str>,
    ) -> std::io::Result<&mut Self> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        if let Some(target) = link {
            h.set_link_name(target)?;
        }
        h.set_cksum();
        self.0.append_data(&mut h, path, data)?;
        Ok(self)
    }

    /// A directory.
    pub fn dir(&mut self, path: &str, mode: u32) -> std::io::Result<&mut Self> {
        self.add(path, tar::EntryType::Directory, mode, &[], None)
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> std::io::Result<&mut Self> {
        self.add(path, tar::EntryType::Regular, mode, data, None)
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> std::io::Result<&mut Self> {
        self.add(path, tar::EntryType::Symlink, 0o777, &[], Some(target))
    }

    /// The tar archive.
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        self.0.into_inner()
    }
}

/// Writes a blob; its descriptor.
fn blob(dir: &Path, media_type: &str, data: &[u8]) -> std::io::Result<Value> {
    let hex = format!("{:x}", Sha256::digest(data));
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    std::fs::write(blobs.join(&hex), data)?;
    Ok(json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": data.len()}))
}

/// Writes an image layout into `dir` (created if missing): `layers` are uncompressed tar
/// archives, lowest first; `run` is the image's run configuration.
pub fn write_layout(dir: &Path, layers: &[Vec<u8>], run: &RunConfig) -> std::io::Result<()> {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let d = blob(dir, "application/vnd.oci.image.layer.v1.tar", layer)?;
        diff_ids.push(d["digest"].clone());
        descs.push(d);
    }
    let opt = |v: &[String]| if v.is_empty() { Value::Null } else { json!(v) };
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": opt(&run.entrypoint),
            "Cmd": opt(&run.cmd),
            "Env": run.env,
            "WorkingDir": run.working_dir,
            "User": run.user,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = blob(dir, "application/vnd.oci.image.config.v1+json", &serde_json::to_vec(&config)?)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": descs,
    });
    let mut manifest = blob(dir, "application/vnd.oci.image.manifest.v1+json", &serde_json::to_vec(&manifest)?)?;
    manifest["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let index =
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [manifest]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_layout_opens_and_unpacks_with_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut layer = Layer::new();
        layer.dir("bin", 0o755).unwrap().file("bin/app", b"hi\n", 0o755).unwrap().symlink("bin/sh", "app").unwrap();
        let layer = layer.finish().unwrap();
        let run = RunConfig {
            entrypoint: vec!["/bin/app".into()],
            cmd: vec!["x".into()],
            env: vec!["A=1".into()],
            working_dir: "/srv".into(),
            user: "1:2".into(),
        };
        write_layout(&dir.path().join("img"), &[layer], &run).unwrap();
        let image = crate::Image::open(&dir.path().join("img")).unwrap();
        assert_eq!(image.config(), &run);
        image.unpack(&dir.path().join("root")).unwrap();
        assert_eq!(std::fs::read(dir.path().join("root/bin/app")).unwrap(), b"hi\n");
        assert_eq!(std::fs::read_link(dir.path().join("root/bin/sh")).unwrap(), Path::new("app"));
    }
}
