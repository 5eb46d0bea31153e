//! Everything between power on and the chroot: the initramfs's own mounts, the console, the
//! kernel modules, the 9p share, the run spec, the container's mounts and the chroot itself.
//! Each step returns a message naming what failed; PID 1 prints it and powers off.

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags};

use crate::console::say;
use xen_container_init::{MAX_SPEC_BYTES, RunSpec, SHARE_TAG, SPEC_FILE};

/// Where the guest mounts the share.
pub const SHARE_MOUNT: &str = "/mnt";

/// One filesystem to mount: source, target (relative to a root), type, flags, options.
struct Fs(&'static str, &'static str, &'static str, MountFlags, &'static str);

fn pseudo_filesystems(dev_is_bind: bool) -> Vec<Fs> {
    let safe = MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV;
    let mut list = vec![Fs("proc", "proc", "proc", safe, ""), Fs("sysfs", "sys", "sysfs", safe, "")];
    if dev_is_bind {
        list.push(Fs("/dev", "dev", "", MountFlags::BIND, ""));
    } else {
        list.push(Fs("devtmpfs", "dev", "devtmpfs", MountFlags::NOSUID, "mode=0755"));
    }
    list.extend([
        Fs(
            "devpts",
            "dev/pts",
            "devpts",
            MountFlags::NOSUID | MountFlags::NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
        Fs("shm", "dev/shm", "tmpfs", safe, "mode=1777"),
        Fs("tmpfs", "run", "tmpfs", MountFlags::NOSUID | MountFlags::NODEV, "mode=0755"),
    ]);
    list
}

/// Mounts /proc, /sys, /dev (devtmpfs, with pts and shm) and /run under `root`, creating the
/// mount points. `dev_is_bind`: bind the caller's /dev instead of a devtmpfs (test mode, where
/// a devtmpfs would be the host's).
pub fn mount_pseudo_filesystems(root: &Path, dev_is_bind: bool) -> Result<(), String> {
    for Fs(source, target, fstype, flags, data) in pseudo_filesystems(dev_is_bind) {
        let target = root.join(target);
        fs::create_dir_all(&target).map_err(|e| format!("create {}: {e}", target.display()))?;
        let data = std::ffi::CString::new(data).map_err(|e| e.to_string())?;
        let data = (!data.is_empty()).then_some(data.as_c_str());
        rustix::mount::mount(source, &target, fstype, flags, data)
            .map_err(|e| format!("mount {fstype} {source} on {}: {e}", target.display()))?;
    }
    Ok(())
}

/// The mount points of [`mount_pseudo_filesystems`] under `root`, innermost first, for the
/// unmount at the end.
pub fn pseudo_mount_points(root: &Path) -> Vec<std::path::PathBuf> {
    pseudo_filesystems(false).iter().rev().map(|f| root.join(f.1)).collect()
}

/// Points standard input, output and error at /dev/console, for PID 1's own messages.
pub fn open_console() -> Result<(), String> {
    let console =
        File::options().read(true).write(true).open("/dev/console").map_err(|e| format!("open /dev/console: {e}"))?;
    rustix::stdio::dup2_stdin(&console).map_err(|e| e.to_string())?;
    rustix::stdio::dup2_stdout(&console).map_err(|e| e.to_string())?;
    rustix::stdio::dup2_stderr(&console).map_err(|e| e.to_string())?;
    Ok(())
}

/// The modules the block volumes need (the block front end, their file systems), loaded only
/// when the run spec has volumes.
pub const VOLUME_MODULES_LIST: &str = "modules.volumes";

/// Loads the modules listed in /lib/modules/modules.order, in order. A module already there
/// (or built in) is fine; other failures are printed and the next module is tried: the share's
/// mount tells clearly if something it needs is missing.
pub fn load_modules() {
    load_modules_from("modules.order");
}

/// Loads the modules listed in /lib/modules/`list`, as [`load_modules`] does.
pub fn load_modules_from(list: &str) {
    let dir = Path::new("/lib/modules");
    let order = match fs::read_to_string(dir.join(list)) {
        Ok(o) => o,
        Err(e) => {
            say(format!("no module list ({e}), loading none"));
            return;
        }
    };
    for name in order.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        // Entries may carry the kernel's directories (kernel/fs/9p/9p.ko); files are flat here.
        let file = dir.join(Path::new(name).file_name().unwrap_or_default());
        let image = match fs::read(&file) {
            Ok(i) => i,
            Err(e) => {
                say(format!("module {}: {e}", file.display()));
                continue;
            }
        };
        match rustix::system::init_module(&image, c"") {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => say(format!("module {name}: {e}")),
        }
    }
}

/// The share's tag: `xencontainer.tag=` on the kernel command line, or [`SHARE_TAG`].
pub fn share_tag(cmdline: &str) -> String {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("xencontainer.tag="))
        .filter(|t| !t.is_empty())
        .unwrap_or(SHARE_TAG)
        .to_string()
}

/// The block device holding the bundle instead of the 9p share: `xencontainer.disk=/dev/xvda`
/// on the kernel command line (an ext4 filesystem with the spec file and `rootfs/`, as the share
/// would have them: the same image booted from a disk, for comparison), or `None`.
pub fn bundle_disk(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("xencontainer.disk="))
        .filter(|d| d.starts_with("/dev/") && !d.contains(".."))
        .map(str::to_string)
}

/// Mounts the bundle on [`SHARE_MOUNT`]: the 9p share, or the disk [`bundle_disk`] names (once
/// its front end has connected: up to 30 s).
pub fn mount_share() -> Result<(), String> {
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if let Some(disk) = bundle_disk(&cmdline) {
        fs::create_dir_all(SHARE_MOUNT).map_err(|e| format!("create {SHARE_MOUNT}: {e}"))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !Path::new(&disk).exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        return rustix::mount::mount(disk.as_str(), SHARE_MOUNT, "ext4", MountFlags::empty(), None)
            .map_err(|e| format!("mount {disk} (ext4) on {SHARE_MOUNT}: {e}"));
    }
    let tag = share_tag(&cmdline);
    fs::create_dir_all(SHARE_MOUNT).map_err(|e| format!("create {SHARE_MOUNT}: {e}"))?;
    rustix::mount::mount(tag.as_str(), SHARE_MOUNT, "9p", MountFlags::empty(), Some(c"trans=xen,version=9p2000.L"))
        .map_err(|e| format!("mount 9p share {tag:?} on {SHARE_MOUNT}: {e}"))
}

/// Reads and validates the run spec in `share`.
pub fn read_spec(share: &Path) -> Result<RunSpec, String> {
    let path = share.join(SPEC_FILE);
    let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_SPEC_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    RunSpec::from_json(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Makes every mount private, so nothing this namespace mounts shows up elsewhere (test mode).
pub fn make_mounts_private() -> Result<(), String> {
    rustix::mount::mount_change("/", MountPropagationFlags::REC | MountPropagationFlags::PRIVATE)
        .map_err(|e| format!("make / private: {e}"))
}

/// A directory kept open across the chroot (the real root, to come back to at the end).
pub fn open_dir(path: &Path) -> Result<OwnedFd, String> {
    rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("open {}: {e}", path.display()))
}

/// Makes `rootfs` the root directory.
pub fn chroot(rootfs: &Path) -> Result<(), String> {
    rustix::process::chdir(rootfs).map_err(|e| format!("chdir {}: {e}", rootfs.display()))?;
    rustix::process::chroot(".").map_err(|e| format!("chroot {}: {e}", rootfs.display()))?;
    rustix::process::chdir("/").map_err(|e| format!("chdir /: {e}"))
}

/// Goes back to the root kept open with [`open_dir`] (PID 1 is root; its chroot is no jail).
pub fn unchroot(root: &OwnedFd) -> Result<(), String> {
    rustix::process::fchdir(root).map_err(|e| format!("fchdir: {e}"))?;
    rustix::process::chroot(".").map_err(|e| format!("chroot back: {e}"))?;
    rustix::process::chdir("/").map_err(|e| format!("chdir /: {e}"))
}

/// Writes /etc/resolv.conf (inside the chroot, so a symlink there stays inside the rootfs).
pub fn write_resolv_conf(servers: &[String]) -> Result<(), String> {
    let text: String = servers.iter().map(|s| format!("nameserver {s}\n")).collect();
    let path = Path::new("/etc/resolv.conf");
    let _ = fs::create_dir_all("/etc");
    if fs::write(path, &text).is_err() {
        // A dangling symlink (to /run/systemd/resolve/...): replace it with a file.
        let _ = fs::remove_file(path);
        fs::write(path, &text).map_err(|e| format!("write /etc/resolv.conf: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_disk_from_cmdline() {
        assert_eq!(bundle_disk("console=hvc0 xencontainer.disk=/dev/xvda quiet").as_deref(), Some("/dev/xvda"));
        assert_eq!(bundle_disk("console=hvc0"), None);
        assert_eq!(bundle_disk("xencontainer.disk=xvda xencontainer.disk=/dev/../x"), None);
    }

    #[test]
    fn share_tag_from_cmdline() {
        assert_eq!(share_tag("console=hvc0 quiet"), "share_dir");
        assert_eq!(share_tag("console=hvc0 xencontainer.tag=bundle7 ro"), "bundle7");
        assert_eq!(share_tag("xencontainer.tag= x"), "share_dir");
    }
}
