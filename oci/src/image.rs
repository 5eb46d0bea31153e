//! Opening an image: telling an OCI layout (`index.json`) from a `docker save` archive
//! (`manifest.json`), walking indexes (nested ones too) to the linux/amd64 manifest, and
//! reading its config and the list of layers to apply. Every index, manifest and config read
//! through a digest is verified; layers are verified later, as they are unpacked.

use std::path::{Path, PathBuf};

use oci_spec::image::{
    Arch, Descriptor, DigestAlgorithm, ImageConfiguration, ImageIndex, ImageManifest, MediaType, Os,
};
use serde::Deserialize;

use crate::config::RunConfig;
use crate::store::{Compression, Expect, Store};
use crate::{Error, Limits, Unpacked};

/// The most bytes read of an index, a manifest or a config (all JSON documents).
const MAX_JSON: u64 = 16 << 20;
/// How deep indexes may nest.
const MAX_INDEX_DEPTH: usize = 4;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ATTESTATION: &str = "attestation-manifest";

/// A container image, opened and checked, ready to unpack.
#[derive(Debug)]
pub struct Image {
    path: PathBuf,
    store: Store,
    config: RunConfig,
    layers: Vec<LayerRef>,
}

/// One layer to apply: where it is and how to check and decode it.
#[derive(Debug, Clone)]
pub(crate) struct LayerRef {
    /// The member of the image holding it.
    pub(crate) member: String,
    /// How it names itself in errors: its digest (the diff id for a legacy docker layer).
    pub(crate) id: String,
    /// The digest and size of the blob as stored, when the image gives them.
    pub(crate) stored: Option<Expect>,
    /// The digest of the uncompressed tar (a docker archive's diff id), when checked.
    pub(crate) diff_id: Option<Expect>,
    /// The compression, or `None` to sniff it from the first bytes.
    pub(crate) compression: Option<Compression>,
}

impl Image {
    /// Opens the image at `path`: an OCI image layout directory, the same as a tar file, or a
    /// `docker save` archive. Picks the linux/amd64 image of a multi-platform index.
    pub fn open(path: &Path) -> Result<Image, Error> {
        let store = Store::open(path)?;
        let (config, layers) = if store.has("index.json") {
            open_oci(path, &store)?
        } else if store.has("manifest.json") {
            open_docker(path, &store)?
        } else {
            return Err(format_err(
                path,
                "neither an OCI image layout (index.json) nor a docker save archive (manifest.json)",
            ));
        };
        log::debug!("{}: {} layers", path.display(), layers.len());
        Ok(Image { path: path.to_owned(), store, config: RunConfig::from_image(&config), layers })
    }

    /// How the image asks to be run.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Unpacks the root filesystem into `dest`, which must not exist, with the default
    /// [`Limits`]. See [`Image::unpack_with`].
    pub fn unpack(&self, dest: &Path) -> Result<Unpacked, Error> {
        self.unpack_with(dest, &Limits::default())
    }

    /// Unpacks the root filesystem into `dest`, which must not exist: the layers are applied
    /// in order into `dest` + `.oci-partial` (a stale one from an earlier crash is removed
    /// first), synced, and renamed to `dest` only when complete. On error nothing is left.
    /// Two unpacks to the same destination at once are not supported: the caller serialises
    /// them (the second would take the first's partial directory for a stale one).
    pub fn unpack_with(&self, dest: &Path, limits: &Limits) -> Result<Unpacked, Error> {
        crate::unpack::unpack(&self.path, &self.store, &self.layers, dest, limits)
    }
}

fn format_err(image: &Path, why: impl Into<String>) -> Error {
    Error::Format { image: image.to_owned(), why: why.into() }
}

/// What a descriptor promises: its digest (sha256 only) and size, and the member holding it.
fn expect_of(image: &Path, desc: &Descriptor) -> Result<(String, Expect), Error> {
    let digest = desc.digest();
    if *digest.algorithm() != DigestAlgorithm::Sha256 {
        return Err(format_err(image, format!("blob {digest}: unsupported digest algorithm")));
    }
    let member = format!("blobs/sha256/{}", digest.digest());
    Ok((member, Expect { digest: digest.to_string(), size: Some(desc.size()) }))
}

/// Reads and verifies the blob a descriptor points to.
fn read_blob(image: &Path, store: &Store, desc: &Descriptor) -> Result<Vec<u8>, Error> {
    let (member, expect) = expect_of(image, desc)?;
    store.read_small(image, &member, &expect.digest, Some(&expect), MAX_JSON)
}

fn is_linux_amd64(os: &Os, arch: &Arch) -> bool {
    *os == Os::Linux && *arch == Arch::Amd64
}

fn platform_name(os: &Os, arch: &Arch, variant: Option<&String>) -> String {
    match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}

/// An OCI layout: `index.json`, then (nested) indexes down to the linux/amd64 manifest.
fn open_oci(image: &Path, store: &Store) -> Result<(ImageConfiguration, Vec<LayerRef>), Error> {
    if store.has("oci-layout") {
        let layout = store.read_small(image, "oci-layout", "oci-layout", None, MAX_JSON)?;
        let layout: serde_json::Value =
            serde_json::from_slice(&layout).map_err(|e| format_err(image, format!("oci-layout: {e}")))?;
        let version = layout.get("imageLayoutVersion").and_then(|v| v.as_str()).unwrap_or_default();
        if !version.starts_with("1.") {
            return Err(format_err(image, format!("oci-layout: unsupported image layout version {version:?}")));
        }
    }
    let index = store.read_small(image, "index.json", "index.json", None, MAX_JSON)?;
    let index = ImageIndex::from_reader(index.as_slice()).map_err(|e| format_err(image, format!("index.json: {e}")))?;
    let mut manifests = Vec::new();
    collect_manifests(image, store, &index, 0, &mut manifests)?;

    let mut found = Vec::new();
    for desc in manifests {
        if let Some(p) = desc.platform()
            && !is_linux_amd64(p.os(), p.architecture())
        {
            found.push(platform_name(p.os(), p.architecture(), p.variant().as_ref()));
            continue;
        }
        let manifest = read_blob(image, store, &desc)?;
        let manifest = ImageManifest::from_reader(manifest.as_slice())
            .map_err(|e| format_err(image, format!("manifest {}: {e}", desc.digest())))?;
        let config = read_blob(image, store, manifest.config())?;
        let config = ImageConfiguration::from_reader(config.as_slice())
            .map_err(|e| format_err(image, format!("config {}: {e}", manifest.config().digest())))?;
        if !is_linux_amd64(config.os(), config.architecture()) {
            found.push(platform_name(config.os(), config.architecture(), config.variant().as_ref()));
            continue;
        }
        let layers = manifest.layers().iter().map(|l| oci_layer(image, l)).collect::<Result<Vec<_>, _>>()?;
        return Ok((config, layers));
    }
    Err(Error::Platform { image: image.to_owned(), found })
}

/// The image manifests an index leads to, in order, following nested indexes.
fn collect_manifests(
    image: &Path,
    store: &Store,
    index: &ImageIndex,
    depth: usize,
    out: &mut Vec<Descriptor>,
) -> Result<(), Error> {
    for desc in index.manifests() {
        let is_attestation = desc
            .annotations()
            .as_ref()
            .and_then(|a| a.get("vnd.docker.reference.type"))
            .is_some_and(|t| t == ATTESTATION);
        match desc.media_type() {
            _ if is_attestation => {}
            MediaType::ImageManifest => out.push(desc.clone()),
            MediaType::Other(t) if t == DOCKER_MANIFEST => out.push(desc.clone()),
            MediaType::ImageIndex => nested(image, store, desc, depth, out)?,
            MediaType::Other(t) if t == DOCKER_MANIFEST_LIST => nested(image, store, desc, depth, out)?,
            other => log::debug!("{}: skipping {} ({other})", image.display(), desc.digest()),
        }
    }
    Ok(())
}

fn nested(
    image: &Path,
    store: &Store,
    desc: &Descriptor,
    depth: usize,
    out: &mut Vec<Descriptor>,
) -> Result<(), Error> {
    if depth >= MAX_INDEX_DEPTH {
        return Err(format_err(image, format!("index {}: indexes nest deeper than {MAX_INDEX_DEPTH}", desc.digest())));
    }
    let index = read_blob(image, store, desc)?;
    let index = ImageIndex::from_reader(index.as_slice())
        .map_err(|e| format_err(image, format!("index {}: {e}", desc.digest())))?;
    collect_manifests(image, store, &index, depth + 1, out)
}

/// A layer of an OCI manifest; its media type says how it is compressed.
fn oci_layer(image: &Path, desc: &Descriptor) -> Result<LayerRef, Error> {
    let (member, stored) = expect_of(image, desc)?;
    let compression = match desc.media_type() {
        MediaType::ImageLayer | MediaType::ImageLayerNonDistributable => Compression::None,
        MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip => Compression::Gzip,
        MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd => Compression::Zstd,
        // Docker's own types, as in manifests copied from a registry.
        MediaType::Other(t) if t.starts_with("application/vnd.docker.image.rootfs.") && t.ends_with(".tar.gzip") => {
            Compression::Gzip
        }
        MediaType::Other(t) if t.starts_with("application/vnd.docker.image.rootfs.") && t.ends_with(".tar.zstd") => {
            Compression::Zstd
        }
        other => return Err(format_err(image, format!("layer {}: unsupported media type {other}", desc.digest()))),
    };
    Ok(LayerRef {
        member,
        id: stored.digest.clone(),
        stored: Some(stored),
        diff_id: None,
        compression: Some(compression),
    })
}

/// One image of a docker archive's `manifest.json` (other fields are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerImage {
    config: String,
    layers: Vec<String>,
}

/// A `docker save` archive: `manifest.json` names a config and layer tars per image; the
/// config's `rootfs.diff_ids` are the digests of the uncompressed layers.
fn open_docker(image: &Path, store: &Store) -> Result<(ImageConfiguration, Vec<LayerRef>), Error> {
    let manifest = store.read_small(image, "manifest.json", "manifest.json", None, MAX_JSON)?;
    let images: Vec<DockerImage> =
        serde_json::from_slice(&manifest).map_err(|e| format_err(image, format!("manifest.json: {e}")))?;
    let mut found = Vec::new();
    for entry in images {
        let expect = digest_in_name(&entry.config).map(|digest| Expect { digest, size: None });
        let config = store.read_small(image, &entry.config, &entry.config, expect.as_ref(), MAX_JSON)?;
        let config = ImageConfiguration::from_reader(config.as_slice())
            .map_err(|e| format_err(image, format!("config {}: {e}", entry.config)))?;
        if !is_linux_amd64(config.os(), config.architecture()) {
            found.push(platform_name(config.os(), config.architecture(), config.variant().as_ref()));
            continue;
        }
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != entry.layers.len() {
            return Err(format_err(
                image,
                format!(
                    "config {}: {} diff ids for {} layers in manifest.json",
                    entry.config,
                    diff_ids.len(),
                    entry.layers.len()
                ),
            ));
        }
        let mut layers = Vec::new();
        for (member, diff_id) in entry.layers.iter().zip(diff_ids) {
            if !diff_id.starts_with("sha256:") {
                return Err(format_err(image, format!("layer {member}: unsupported diff id {diff_id}")));
            }
            let stored = digest_in_name(member).map(|digest| Expect { digest, size: None });
            layers.push(LayerRef {
                member: member.clone(),
                id: diff_id.clone(),
                stored,
                diff_id: Some(Expect { digest: diff_id.clone(), size: None }),
                compression: None,
            });
        }
        return Ok((config, layers));
    }
    Err(Error::Platform { image: image.to_owned(), found })
}

/// The sha256 digest a docker archive's member name carries: `blobs/sha256/<hex>` or
/// `<hex>.json` (a legacy config).
fn digest_in_name(name: &str) -> Option<String> {
    let name = name.trim_start_matches("./");
    let hex = name.strip_prefix("blobs/sha256/").or_else(|| name.strip_suffix(".json"))?;
    let is_hex = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    is_hex.then(|| format!("sha256:{hex}"))
}
