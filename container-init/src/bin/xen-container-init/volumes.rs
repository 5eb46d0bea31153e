//! The container's block volumes, as EVE's runx initrd mounts an app's volumes
//! (`mount_disk.sh`): each device of the run spec's `volumes`, once its front end has
//! connected, mounted at its directory in the root filesystem, read-only where it asks so. The
//! file system is the one on the device (ext4 first, then the others the kernel knows); a volume
//! that cannot be mounted is reported on the console and the container runs without it, as
//! EVE's script goes on. (A blank volume was given a file system in dom0 before the boot.)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::mount::MountFlags;
use xen_container_init::VolumeMount;

use crate::console::say;

/// How long a volume's device may take to appear.
const DEVICE_WAIT: Duration = Duration::from_secs(30);

/// Mounts `volumes` under `rootfs`; the mount points that were mounted, in order.
pub fn mount(rootfs: &Path, volumes: &[VolumeMount]) -> Vec<PathBuf> {
    let mut mounted = Vec::new();
    for v in volumes {
        match mount_one(rootfs, v) {
            Ok((target, fstype)) => {
                say(format!(
                    "volume {} ({fstype}, {}) mounted at {}",
                    v.device,
                    if v.read_only { "ro" } else { "rw" },
                    v.target
                ));
                mounted.push(target);
            }
            Err(e) => say(format!("volume {} not mounted at {}: {e}", v.device, v.target)),
        }
    }
    mounted
}

fn mount_one(rootfs: &Path, v: &VolumeMount) -> Result<(PathBuf, String), String> {
    let device = Path::new("/dev").join(&v.device);
    let deadline = Instant::now() + DEVICE_WAIT;
    while !device.exists() {
        if Instant::now() > deadline {
            return Err(format!("{} did not appear in {} s", device.display(), DEVICE_WAIT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let target = rootfs.join(v.target.trim_start_matches('/'));
    std::fs::create_dir_all(&target).map_err(|e| format!("create {}: {e}", target.display()))?;
    let flags = if v.read_only { MountFlags::RDONLY } else { MountFlags::empty() };
    let mut tried = Vec::new();
    for fstype in file_systems() {
        match rustix::mount::mount(&device, &target, fstype.as_str(), flags, None) {
            Ok(()) => return Ok((target, fstype)),
            Err(e) => tried.push(format!("{fstype}: {e}")),
        }
    }
    Err(format!("no file system of the kernel's mounts it ({})", tried.join("; ")))
}

/// The block file systems the kernel knows (`/proc/filesystems` without `nodev`), ext4 first.
fn file_systems() -> Vec<String> {
    let known = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let mut list: Vec<String> = known
        .lines()
        .filter(|l| !l.starts_with("nodev"))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && l != "ext4")
        .collect();
    list.insert(0, "ext4".into());
    list
}
