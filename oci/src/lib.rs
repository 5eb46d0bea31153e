//! Container images turned into root filesystems for Xen guests: [`Image::open`] reads an OCI
//! image layout (a directory or the same as a tar file) or a `docker save` archive (either
//! flavour: `<id>/layer.tar` or OCI blobs), picks the linux/amd64 image, and verifies every
//! blob's sha256 as it is read; [`Image::config`] is its run configuration, with Docker's
//! rules for overriding the command line in [`RunConfig::argv`]; [`Image::unpack`] applies the
//! layers in order into a new directory, keeping modes, numeric ownership, times, links,
//! device nodes and extended attributes, and honouring whiteouts. A guest's init later mounts
//! that directory over 9p and runs the entrypoint.
//!
//! Images are untrusted input. Entry names with `..` are refused, leading `/` stripped;
//! parent directories are resolved inside the root as if chrooted (`openat2` with
//! `RESOLVE_IN_ROOT`), and the last component of a name is never followed, so a symlink
//! planted by one entry cannot carry a later entry out of the root; hard links only reach
//! inside it; totals are capped by [`Limits`]. The root filesystem is built in a sibling
//! directory and renamed into place only when complete, so a crash never leaves half of one at
//! the destination.

#![forbid(unsafe_code)]

mod config;
mod image;
mod layer;
pub mod layout;
mod rootfs;
mod store;
mod unpack;

use std::path::PathBuf;

pub use config::RunConfig;
pub use image::Image;

/// Writes `content` as the file `rel` (relative, without `..`) of the root filesystem `root`,
/// mode `mode`, as a process chrooted there would: symlinks on the way, and one at `rel`
/// itself, resolve inside the root and never lead out of it; missing parents are made (0755).
/// The file is written aside and renamed into place (through a symlink, written in place).
pub fn write_file_in_root(
    root: &std::path::Path,
    rel: &std::path::Path,
    content: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not a plain relative path", rel.display()),
        ));
    }
    rootfs::Rootfs::open(root)?.write_file(rel, content, mode)
}

/// Caps on what unpacking an image may write, against images built to fill the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes of file content, over all layers.
    pub max_bytes: u64,
    /// The most tar entries, over all layers (whiteouts and directories count).
    pub max_entries: u64,
}

impl Default for Limits {
    /// 32 GiB and two million entries: far above any real image, far below a full disk.
    fn default() -> Self {
        Limits { max_bytes: 32 << 30, max_entries: 2_000_000 }
    }
}

/// What [`Image::unpack`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Layers applied.
    pub layers: usize,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Tar entries processed, whiteouts included.
    pub entries: u64,
    /// What could not be kept and was skipped (a device node without the right to create it,
    /// ownership when not root, an unknown entry type), one sentence each.
    pub warnings: Vec<String>,
}

/// Why an image could not be opened or unpacked. Messages name the image file and, for a
/// layer, its digest and the entry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file of the image could not be read.
    #[error("{}: cannot read {what}", image.display())]
    Read {
        /// The image file or directory.
        image: PathBuf,
        /// What was being read: `index.json`, a blob's digest, a member's name.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The image is malformed or uses something this crate does not support.
    #[error("{}: {why}", image.display())]
    Format {
        /// The image file or directory.
        image: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The image has no linux/amd64 variant.
    #[error("{}: no linux/amd64 image; found {}", image.display(), if found.is_empty() { "none".to_owned() } else { found.join(", ") })]
    Platform {
        /// The image file or directory.
        image: PathBuf,
        /// The platforms it has, as `os/arch[/variant]`.
        found: Vec<String>,
    },
    /// A blob's content does not match its digest.
    #[error("{}: blob {blob} does not match its digest (its content hashes to {actual})", image.display())]
    Digest {
        /// The image file or directory.
        image: PathBuf,
        /// The blob, by the digest it should have.
        blob: String,
        /// The digest of what was read.
        actual: String,
    },
    /// A blob's size is not the one its descriptor gives.
    #[error("{}: blob {blob} is {actual} bytes, its descriptor says {expected}", image.display())]
    Size {
        /// The image file or directory.
        image: PathBuf,
        /// The blob, by its digest.
        blob: String,
        /// The size the descriptor gives.
        expected: u64,
        /// The size read.
        actual: u64,
    },
    /// A layer could not be read (corrupt compression or tar framing).
    #[error("{}: layer {layer}: cannot read the layer", image.display())]
    Layer {
        /// The image file or directory.
        image: PathBuf,
        /// The layer's digest.
        layer: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An entry of a layer is refused (it would leave the root, or is malformed).
    #[error("{}: layer {layer}: {entry}: {why}", image.display())]
    Entry {
        /// The image file or directory.
        image: PathBuf,
        /// The layer's digest.
        layer: String,
        /// The entry's name as the tar gives it.
        entry: String,
        /// Why.
        why: String,
    },
    /// An entry of a layer could not be written.
    #[error("{}: layer {layer}: {entry}: cannot {op}", image.display())]
    EntryIo {
        /// The image file or directory.
        image: PathBuf,
        /// The layer's digest.
        layer: String,
        /// The entry's name as the tar gives it.
        entry: String,
        /// The operation: `create the file`, `set the owner`, ...
        op: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Unpacking would go over a [`Limits`] cap.
    #[error("{}: layer {layer}: {entry}: the image exceeds the limit of {max} {what}", image.display())]
    Limit {
        /// The image file or directory.
        image: PathBuf,
        /// The layer's digest.
        layer: String,
        /// The entry that went over.
        entry: String,
        /// Which limit: `unpacked bytes` or `entries`.
        what: &'static str,
        /// The limit.
        max: u64,
    },
    /// The destination cannot be used or completed.
    #[error("{}: {why}", path.display())]
    Dest {
        /// The destination or its temporary sibling.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// An operation on the destination failed.
    #[error("{}: cannot {op}", path.display())]
    DestIo {
        /// The destination or its temporary sibling.
        path: PathBuf,
        /// The operation.
        op: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The command line is empty: no entrypoint or cmd in the image or the overrides.
    #[error("the image has no entrypoint or cmd, and none was given")]
    NoCommand,
}
