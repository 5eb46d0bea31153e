//! Per-domain writable copies of shared disk images, as EVE's domainmgr keeps them in
//! `<persist>/img`: a read-write disk whose image lives in the shared, read-only image store gets
//! its own copy `<persist>/img/<image>-<uuid>.<ext>`, made once and reused on every later boot
//! and across daemon restarts. This crate owns those files: their names ([`copy_path`]), how a
//! copy is made ([`Method`]: a reflink, a qcow2 overlay on the shared image, a sparse copy, or a
//! plain one for comparison), the guarantee that a copy interrupted in any way (process killed,
//! disk full, cancelled) leaves nothing at the final name ([`ensure_copy`] builds it under
//! `<final>.partial`, fsyncs it, renames it into place and fsyncs the directory), and listing and
//! removing them ([`list_copies`], [`remove_copy`], [`remove_partials`]). It makes no decision
//! about which disks get a copy or when one is deleted: that is the daemon's.
//!
//! # Overlays and the shared image
//!
//! A qcow2 overlay ([`Method::Overlay`]) holds only the clusters the domain writes; every other
//! read goes to the shared image, named in the overlay's header by its absolute path. So the
//! shared image must never change, move or disappear while any overlay refers to it: EVE's
//! verified images are content-addressed and never modified in place, which is what makes
//! overlays sound, but an image store that garbage-collects an image still named by an overlay
//! (see [`CopyInfo::backing`]), or a changed image, silently corrupts or breaks every overlay on
//! it. Reflinks and copies have no such tie: they share nothing the domain can observe.
//!
//! # Formats
//!
//! A reflink or a copy has the shared image's format; an overlay is always qcow2, even of a raw
//! image and even when the name's extension says otherwise. [`Outcome::format`] says which, for a
//! new copy and a reused one alike: the method is recorded in an extended attribute of the copy
//! (`user.xen-diskcopy.method`), never guessed from the content, since a guest can write a qcow2
//! header into its own raw disk.

#![forbid(unsafe_code)]

mod copies;
mod data;
mod name;
mod overlay;

#[cfg(test)]
mod testutil;

/// `n` pseudo-random bytes (xorshift64*), the same for the same seed; never long runs of zeros.
/// Test and benchmark data (the tests' images and `diskcopy-bench`'s), not part of the API.
#[doc(hidden)]
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(n);
    out
}

use std::io;
use std::path::PathBuf;

pub use copies::{ensure_copy, list_copies, remove_copy, remove_partials};
pub use name::{PARTIAL_SUFFIX, copy_path};
pub use overlay::{Qcow2Header, overlay_backing, read_qcow2_header};

/// How a copy is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `FICLONE`: the copy shares the image's extents until either is written (XFS with
    /// `reflink=1`, btrfs). Instant and takes no space; only where the filesystem can.
    Reflink,
    /// A new qcow2 file whose backing file is the shared image: instant, a few hundred KiB, but
    /// tied to the shared image for its whole life (see the crate doc).
    Overlay,
    /// The image's data extents only (`SEEK_DATA`/`SEEK_HOLE`, `copy_file_range`), holes kept,
    /// and optionally all-zero blocks left as holes too.
    Sparse,
    /// Every byte read and written, zeros included. Only for comparison.
    Plain,
}

impl Method {
    /// The word recorded in the copy's extended attribute and printed in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Reflink => "reflink",
            Method::Overlay => "overlay",
            Method::Sparse => "sparse",
            Method::Plain => "plain",
        }
    }

    /// The method a word from [`Method::as_str`] names.
    pub fn from_word(word: &str) -> Option<Method> {
        [Method::Reflink, Method::Overlay, Method::Sparse, Method::Plain].into_iter().find(|m| m.as_str() == word)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which method [`ensure_copy`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// A reflink where the filesystem can (`FICLONE` fails with `EOPNOTSUPP`, `EXDEV`, `EINVAL`
    /// or `ENOTTY` where it cannot); else an overlay if `allow_overlay` (and `qemu-img` can be
    /// run); else a sparse copy.
    Auto {
        /// Whether this disk may be an overlay on the shared image.
        allow_overlay: bool,
    },
    /// This method and no other: an error if it cannot be used (benchmarks, tests).
    Only(Method),
}

/// A disk image format, as the overlay's backing format and the copy's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskFormat {
    /// A raw image.
    Raw,
    /// A qcow2 image.
    Qcow2,
}

impl DiskFormat {
    /// The name qemu and libxl use.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

impl std::fmt::Display for DiskFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `qemu-img` that [`CopyRequest::new`] uses: found on `PATH`.
pub const QEMU_IMG: &str = "qemu-img";

/// What [`ensure_copy`] is asked to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    /// The shared image (a regular file in the read-only image store).
    pub source: PathBuf,
    /// Its format: an overlay names it as the backing format.
    pub source_format: DiskFormat,
    /// The copy's final path, normally from [`copy_path`]; its directory must exist or be
    /// creatable as one level below an existing one.
    pub dest: PathBuf,
    /// Which method to use.
    pub strategy: Strategy,
    /// For a sparse copy, whether an all-zero 1 MiB block inside a data extent is left as a
    /// hole (so an image written full of zeros comes out sparse). It costs reading the data
    /// through user space instead of `copy_file_range`.
    pub skip_zero_blocks: bool,
    /// The `qemu-img` program used for overlays.
    pub qemu_img: PathBuf,
}

impl CopyRequest {
    /// A request with [`Strategy::Auto`] without overlays, zero blocks skipped and `qemu-img`
    /// from `PATH`.
    pub fn new(source: impl Into<PathBuf>, source_format: DiskFormat, dest: impl Into<PathBuf>) -> CopyRequest {
        CopyRequest {
            source: source.into(),
            source_format,
            dest: dest.into(),
            strategy: Strategy::Auto { allow_overlay: false },
            skip_zero_blocks: true,
            qemu_img: PathBuf::from(QEMU_IMG),
        }
    }
}

/// How far a copy has come: `done` of `total` bytes of the image's length (holes count as done
/// when passed). Reported at least every [`PROGRESS_STEP`] bytes and once at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the image covered so far.
    pub done: u64,
    /// The image's length.
    pub total: u64,
}

/// The most bytes between two [`Progress`] reports.
pub const PROGRESS_STEP: u64 = 64 << 20;

/// What [`ensure_copy`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The copy (the request's `dest`).
    pub path: PathBuf,
    /// The copy existed already and was left as it was.
    pub reused: bool,
    /// How the copy was made: `None` for a reused copy without a recorded method (made by
    /// something else, or on a filesystem without extended attributes).
    pub method: Option<Method>,
    /// The copy's format, to give the disk's back end: qcow2 for an overlay, else the source's.
    pub format: DiskFormat,
    /// The copy's apparent size in bytes.
    pub size: u64,
    /// The bytes the copy takes on disk (`st_blocks * 512`).
    pub allocated: u64,
}

/// A copy found by [`list_copies`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyInfo {
    /// The file.
    pub path: PathBuf,
    /// Its apparent size in bytes.
    pub size: u64,
    /// The bytes it takes on disk (`st_blocks * 512`); a reflinked copy's shared extents count.
    pub allocated: u64,
    /// How it was made, if recorded.
    pub method: Option<Method>,
    /// For an overlay, the shared image it reads from: that image must be kept.
    pub backing: Option<PathBuf>,
}

/// Why a copy could not be made, listed or removed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A part of a copy's name is unusable.
    #[error("bad {part} {value:?} for a copy's name: {why}")]
    BadName {
        /// Which part: `image`, `uuid` or `ext`.
        part: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The filesystem holding the copy is full (`ENOSPC`) or the quota is used up (`EDQUOT`);
    /// nothing was left behind.
    #[error("no space left for {}", path.display())]
    NoSpace {
        /// The copy's final path.
        path: PathBuf,
        /// The error as the system gave it.
        #[source]
        source: io::Error,
    },
    /// The caller's cancel flag was set; nothing was left behind.
    #[error("copy to {} cancelled", path.display())]
    Cancelled {
        /// The copy's final path.
        path: PathBuf,
    },
    /// [`Strategy::Only`] asked for a method this filesystem or image cannot do.
    #[error("cannot make {} by {method}", path.display())]
    Unsupported {
        /// The method asked for.
        method: Method,
        /// The copy's final path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `qemu-img` failed; its own message says why.
    #[error("qemu-img cannot create overlay {} on {}: {status}: {stderr}", path.display(), backing.display())]
    QemuImg {
        /// The overlay being made (its temporary name).
        path: PathBuf,
        /// The shared image it was to read from.
        backing: PathBuf,
        /// How `qemu-img` ended.
        status: String,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
    /// A file read as qcow2 is not one, or is malformed.
    #[error("{} is not a usable qcow2 image: {why}", path.display())]
    NotQcow2 {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Something other than a regular file is where a copy or its source should be.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Any other system call failed.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was being done: `open`, `read`, `fsync`...
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on the copy's side: `NoSpace` for `ENOSPC` and `EDQUOT`, else `Io`.
    pub(crate) fn dest(op: &'static str, path: &std::path::Path, source: io::Error) -> Error {
        if is_no_space(&source) {
            Error::NoSpace { path: path.to_owned(), source }
        } else {
            Error::Io { op, path: path.to_owned(), source }
        }
    }

    /// An I/O error on a path.
    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: impl Into<io::Error>) -> Error {
        Error::Io { op, path: path.to_owned(), source: source.into() }
    }

    /// Whether this is the disk-full error.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::NoSpace { .. })
    }
}

/// `ENOSPC` or `EDQUOT`.
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(rustix::io::Errno::from_io_error(e), Some(rustix::io::Errno::NOSPC | rustix::io::Errno::DQUOT))
}
