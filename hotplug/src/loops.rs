//! [`Blocks`]: what a disk needs of dom0's block layer (what a path is, loop devices, mounts),
//! and [`LoopCtl`], the real one: `stat`, `/dev/loop-control` through the `loopdev-3` crate,
//! sysfs and `/proc/self/mountinfo`.

use std::path::{Path, PathBuf};

use rustix::fs::FileType;

/// What a disk's path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A block device.
    Block {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A regular file: its device and inode.
    File {
        /// The device holding it.
        dev: u64,
        /// Its inode.
        ino: u64,
    },
    /// Anything else (a directory, a socket...).
    Other,
}

/// A loop device attached to a file.
#[derive(Debug)]
pub struct LoopDev {
    /// `/dev/loopN`.
    pub path: PathBuf,
    /// Major number (7).
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Holds the device open: attached with autoclear, it is cleared the moment its last
    /// opener closes it, so it must stay open until blkback has opened it.
    pub open: Option<std::fs::File>,
}

/// dom0's block layer.
pub trait Blocks {
    /// What `path` is (following symbolic links).
    fn kind(&self, path: &Path) -> Result<Kind, String>;
    /// Attaches `file` to a free loop device, read-only if asked, cleared when last closed.
    fn attach(&self, file: &Path, read_only: bool) -> Result<LoopDev, String>;
    /// Detaches a loop device (lazily if it is still open).
    fn detach(&self, dev: &Path) -> Result<(), String>;
    /// The identity (device, inode) of the file behind loop device `dev`, if it is attached.
    fn backing(&self, dev: &Path) -> Option<(u64, u64)>;
    /// The device number of `dev`, if it is a block device.
    fn devnum(&self, dev: &Path) -> Option<(u32, u32)>;
    /// The identity of the file behind the loop device numbered `major:minor`, if it is one.
    fn backing_of(&self, major: u32, minor: u32) -> Option<(u64, u64)>;
    /// Whether the block device `major:minor` is mounted in dom0.
    fn mounted(&self, major: u32, minor: u32) -> bool;
    /// Whether blkback opened the device of vbd `devid` of `domid` (it then lists it in sysfs:
    /// `/sys/bus/xen-backend/devices/vbd-<domid>-<devid>/physical_device`).
    fn backend_opened(&self, domid: u32, devid: u32) -> bool;
}

/// The real block layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopCtl;

/// The Linux loop device major number.
const LOOP_MAJOR: u32 = 7;

fn ident(path: &Path) -> Option<(u64, u64)> {
    let st = rustix::fs::stat(path).ok()?;
    Some((st.st_dev, st.st_ino))
}

impl Blocks for LoopCtl {
    fn kind(&self, path: &Path) -> Result<Kind, String> {
        let st = rustix::fs::stat(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(match FileType::from_raw_mode(st.st_mode) {
            FileType::BlockDevice => {
                Kind::Block { major: rustix::fs::major(st.st_rdev), minor: rustix::fs::minor(st.st_rdev) }
            }
            FileType::RegularFile => Kind::File { dev: st.st_dev, ino: st.st_ino },
            _ => Kind::Other,
        })
    }

    fn attach(&self, file: &Path, read_only: bool) -> Result<LoopDev, String> {
        let control = loopdev::LoopControl::open().map_err(|e| format!("/dev/loop-control: {e}"))?;
        // Another program may take the free device between our look-up and our attach.
        let mut last = String::new();
        for _ in 0..8 {
            let dev = control.next_free().map_err(|e| format!("no free loop device: {e}"))?;
            match dev.with().read_only(read_only).autoclear(true).attach(file) {
                Ok(()) => {
                    let path = dev.path().ok_or("a loop device without a path")?;
                    let (major, minor) = (dev.major().unwrap_or(LOOP_MAJOR), dev.minor().map_err(|e| e.to_string())?);
                    let open = std::fs::File::open(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
                    return Ok(LoopDev { path, major, minor, open: Some(open) });
                }
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => last = e.to_string(),
                Err(e) => return Err(format!("attach {} to a loop device: {e}", file.display())),
            }
        }
        Err(format!("attach {} to a loop device: every free one was taken meanwhile ({last})", file.display()))
    }

    fn detach(&self, dev: &Path) -> Result<(), String> {
        loopdev::LoopDevice::open(dev).and_then(|d| d.detach()).map_err(|e| e.to_string())
    }

    fn backing(&self, dev: &Path) -> Option<(u64, u64)> {
        let (major, minor) = self.devnum(dev)?;
        self.backing_of(major, minor)
    }

    fn devnum(&self, dev: &Path) -> Option<(u32, u32)> {
        match self.kind(dev).ok()? {
            Kind::Block { major, minor } => Some((major, minor)),
            _ => None,
        }
    }

    fn backing_of(&self, major: u32, minor: u32) -> Option<(u64, u64)> {
        if major != LOOP_MAJOR {
            return None;
        }
        let file = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/loop/backing_file")).ok()?;
        // A deleted backing file reads as "<path> (deleted)": no longer any path's identity.
        ident(Path::new(file.trim_end_matches('\n')))
    }

    fn backend_opened(&self, domid: u32, devid: u32) -> bool {
        Path::new(&format!("/sys/bus/xen-backend/devices/vbd-{domid}-{devid}/physical_device")).exists()
    }

    fn mounted(&self, major: u32, minor: u32) -> bool {
        let want = format!("{major}:{minor}");
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|m| m.lines().any(|l| l.split(' ').nth(2) == Some(want.as_str())))
            .unwrap_or(false)
    }
}
