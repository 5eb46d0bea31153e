//! Test fixtures: sparse images with known extents, deterministic random bytes, and small
//! filesystems mounted for one test (a size-limited tmpfs to fill, an XFS with reflink on a loop
//! device), each unmounted by a guard.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const MIB: u64 = 1 << 20;

/// Bytes a file takes on disk.
pub fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

pub use crate::random_bytes;

/// A file of `len` bytes with random data at the `(offset, length)` extents and holes elsewhere.
pub fn sparse_file(path: &Path, len: u64, extents: &[(u64, u64)], seed: u64) {
    let f = File::create(path).unwrap();
    f.set_len(len).unwrap();
    for (i, &(off, n)) in extents.iter().enumerate() {
        f.write_all_at(&random_bytes(n as usize, seed + i as u64), off).unwrap();
    }
    f.sync_all().unwrap();
}

/// Whether this process is root (mounting needs it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether a program can be run.
pub fn have(program: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().is_ok_and(|o| o.status.success())
}

/// Runs a command; its stderr if it fails.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A filesystem mounted for a test, unmounted (and its image file removed) on drop.
#[derive(Debug)]
pub struct Mounted {
    /// The mount point (a temporary directory).
    pub dir: tempfile::TempDir,
    /// The image file behind a loop mount.
    image: Option<PathBuf>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let dir = self.dir.path().to_string_lossy().into_owned();
        if run("umount", &[&dir]).is_err() {
            let _ = run("umount", &["-l", &dir]);
        }
        if let Some(image) = &self.image {
            let _ = std::fs::remove_file(image);
        }
    }
}

impl Mounted {
    /// A tmpfs of `size` bytes; why not if it cannot be had (not root, no permission).
    pub fn tmpfs(size: u64) -> Result<Mounted, String> {
        if !is_root() {
            return Err("not root: mounting a tmpfs needs root".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let opts = format!("size={size}");
        run("mount", &["-t", "tmpfs", "-o", &opts, "tmpfs", &dir.path().to_string_lossy()])?;
        Ok(Mounted { dir, image: None })
    }

    /// An XFS with reflink on a loop device over a sparse file of `size` bytes; why not if it
    /// cannot be had (not root, no `mkfs.xfs`, no loop devices).
    pub fn xfs_reflink(size: u64) -> Result<Mounted, String> {
        if !is_root() {
            return Err("not root: a loop mount needs root".into());
        }
        if !have("mkfs.xfs") {
            return Err("mkfs.xfs not installed (apt-get install xfsprogs)".into());
        }
        let image = tempfile::Builder::new().prefix("xfs-").tempfile().map_err(|e| e.to_string())?;
        let (_, image) = image.keep().map_err(|e| e.to_string())?;
        let cleanup = |why: String| {
            let _ = std::fs::remove_file(&image);
            why
        };
        File::options().write(true).open(&image).and_then(|f| f.set_len(size)).map_err(|e| cleanup(e.to_string()))?;
        let img = image.to_string_lossy().into_owned();
        run("mkfs.xfs", &["-q", "-m", "reflink=1", &img]).map_err(cleanup)?;
        let dir = tempfile::tempdir().map_err(|e| cleanup(e.to_string()))?;
        run("mount", &["-o", "loop", &img, &dir.path().to_string_lossy()]).map_err(cleanup)?;
        Ok(Mounted { dir, image: Some(image) })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}
