//! A mount as containerd describes one (type, source, options), and mounting it the way
//! containerd's Go client does on Linux: each option that is a mount flag (`ro`, `nosuid`,
//! `rbind`, ...) becomes one, a propagation option (`rprivate`, ...) is applied after the mount,
//! and the rest go to the file system as its data. A read-only bind mount is remounted read-only
//! (the kernel ignores `MS_RDONLY` on the first `MS_BIND`). mount(2) takes one page of data; an
//! overlay with many layers can have more, so its directories are then opened and named by
//! their `/proc/self/fd` links for the call. Also: whether a path is a mount point (from
//! `/proc/self/mountinfo`), and unmounting.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use crate::{Error, Result, proto};

/// What mount(2) takes as data: one page, its last byte the NUL.
const DATA_LIMIT: usize = 4095;
/// The overlay options that name directories.
const OVERLAY_DIRS: [&str; 3] = ["lowerdir", "upperdir", "workdir"];

/// A mount as containerd returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The file system type (`overlay`, `bind`, ...).
    pub kind: String,
    /// What is mounted.
    pub source: String,
    /// Where, relative to the target (empty: at the target; containerd 1.x always says so).
    pub target: String,
    /// The options, flags and data alike.
    pub options: Vec<String>,
}

impl From<proto::Mount> for Mount {
    fn from(m: proto::Mount) -> Mount {
        Mount { kind: m.r#type, source: m.source, target: m.target, options: m.options }
    }
}

/// The options split as mount(2) takes them.
#[derive(Debug, PartialEq)]
struct Parsed {
    flags: MountFlags,
    propagation: MountPropagationFlags,
    data: Vec<String>,
}

/// containerd's table (mount/mount_linux.go): an option sets or clears a flag, or is a
/// propagation type, or else is data.
fn parse(options: &[String]) -> Parsed {
    let mut p = Parsed { flags: MountFlags::empty(), propagation: MountPropagationFlags::empty(), data: Vec::new() };
    for option in options {
        let (clear, flag) = match option.as_str() {
            "async" => (true, MountFlags::SYNCHRONOUS),
            "atime" => (true, MountFlags::NOATIME),
            "bind" => (false, MountFlags::BIND),
            "defaults" => (false, MountFlags::empty()),
            "dev" => (true, MountFlags::NODEV),
            "diratime" => (true, MountFlags::NODIRATIME),
            "dirsync" => (false, MountFlags::DIRSYNC),
            "exec" => (true, MountFlags::NOEXEC),
            "mand" => (false, MountFlags::PERMIT_MANDATORY_FILE_LOCKING),
            "noatime" => (false, MountFlags::NOATIME),
            "nodev" => (false, MountFlags::NODEV),
            "nodiratime" => (false, MountFlags::NODIRATIME),
            "noexec" => (false, MountFlags::NOEXEC),
            "nomand" => (true, MountFlags::PERMIT_MANDATORY_FILE_LOCKING),
            "norelatime" => (true, MountFlags::RELATIME),
            "nostrictatime" => (true, MountFlags::STRICTATIME),
            "nosuid" => (false, MountFlags::NOSUID),
            "rbind" => (false, MountFlags::BIND | MountFlags::REC),
            "relatime" => (false, MountFlags::RELATIME),
            "ro" => (false, MountFlags::RDONLY),
            "rw" => (true, MountFlags::RDONLY),
            "strictatime" => (false, MountFlags::STRICTATIME),
            "suid" => (true, MountFlags::NOSUID),
            "sync" => (false, MountFlags::SYNCHRONOUS),
            other => {
                let propagation = match other {
                    "private" => Some(MountPropagationFlags::PRIVATE),
                    "rprivate" => Some(MountPropagationFlags::PRIVATE | MountPropagationFlags::REC),
                    "shared" => Some(MountPropagationFlags::SHARED),
                    "rshared" => Some(MountPropagationFlags::SHARED | MountPropagationFlags::REC),
                    "slave" => Some(MountPropagationFlags::DOWNSTREAM),
                    "rslave" => Some(MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC),
                    "unbindable" => Some(MountPropagationFlags::UNBINDABLE),
                    "runbindable" => Some(MountPropagationFlags::UNBINDABLE | MountPropagationFlags::REC),
                    _ => None,
                };
                match propagation {
                    Some(prop) => p.propagation |= prop,
                    None => p.data.push(other.to_string()),
                }
                continue;
            }
        };
        if clear {
            p.flags.remove(flag);
        } else {
            p.flags.insert(flag);
        }
    }
    p
}

/// An overlay's data with each directory of `lowerdir`, `upperdir` and `workdir` opened and
/// named by its `/proc/self/fd` link; the descriptors must stay open until the mount is done.
fn shorten_overlay_dirs(data: &[String]) -> std::io::Result<(Vec<String>, Vec<OwnedFd>)> {
    let mut fds = Vec::new();
    let mut out = Vec::new();
    for option in data {
        let Some((name, value)) = option.split_once('=').filter(|(n, _)| OVERLAY_DIRS.contains(n)) else {
            out.push(option.clone());
            continue;
        };
        let mut links = Vec::new();
        for dir in value.split(':') {
            let fd = rustix::fs::open(
                dir,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?;
            links.push(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            fds.push(fd);
        }
        out.push(format!("{name}={}", links.join(":")));
    }
    Ok((out, fds))
}

impl Mount {
    /// Mounts it at `target` (which must exist).
    pub fn mount_at(&self, target: &Path) -> Result<()> {
        let fail = |op, source: std::io::Error| Error::Mount { op, target: target.into(), source };
        let parsed = parse(&self.options);
        let mut data = parsed.data.join(",");
        let mut _held = Vec::new();
        if data.len() > DATA_LIMIT && self.kind == "overlay" {
            let (short, fds) = shorten_overlay_dirs(&parsed.data).map_err(|e| fail("open the layers for", e))?;
            log::debug!("overlay at {}: {} bytes of options, layers named by descriptor", target.display(), data.len());
            data = short.join(",");
            _held = fds;
        }
        if data.len() > DATA_LIMIT {
            return Err(Error::OptionsTooLong {
                kind: self.kind.clone(),
                target: target.into(),
                len: data.len(),
                limit: DATA_LIMIT,
            });
        }
        let data = CString::new(data).map_err(|e| Error::Nul {
            what: "a mount option",
            value: String::from_utf8_lossy(&e.into_vec()).into_owned(),
        })?;
        let kind = if self.kind == "bind" { "none" } else { self.kind.as_str() };
        rustix::mount::mount(self.source.as_str(), target, kind, parsed.flags, data.as_c_str())
            .map_err(|e| fail("mount", e.into()))?;
        if parsed.flags.contains(MountFlags::BIND | MountFlags::RDONLY) {
            let flags = parsed.flags
                & (MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC);
            if let Err(e) = rustix::mount::mount_remount(target, flags, "") {
                let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
                return Err(fail("remount read-only", e.into()));
            }
        }
        if !parsed.propagation.is_empty()
            && let Err(e) = rustix::mount::mount_change(target, parsed.propagation)
        {
            let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
            return Err(fail("set the propagation of", e.into()));
        }
        Ok(())
    }
}

/// Whether `path` is a mount point in this process's mount namespace.
pub fn mounted(path: &Path) -> Result<bool> {
    let path = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(Error::Mount { op: "resolve", target: path.into(), source }),
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| Error::Mount {
        op: "read /proc/self/mountinfo for",
        target: path.clone(),
        source,
    })?;
    Ok(mount_points(&info).any(|p| p == path))
}

/// The mount points `/proc/self/mountinfo` lists (its fifth field, octal escapes undone).
fn mount_points(info: &str) -> impl Iterator<Item = PathBuf> + '_ {
    info.lines().filter_map(|line| line.split(' ').nth(4)).map(|field| PathBuf::from(unescape(field)))
}

/// mountinfo's `\NNN` octal escapes (space, tab, newline, backslash).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts what is mounted at `target`; a mount still busy is detached (it goes when its last
/// user lets go). Whether something was mounted there.
pub fn unmount(target: &Path) -> Result<bool> {
    if !mounted(target)? {
        return Ok(false);
    }
    match rustix::mount::unmount(target, UnmountFlags::NOFOLLOW) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::BUSY) => {
            log::warn!("{} is busy: detached, it is unmounted when its last user closes it", target.display());
            rustix::mount::unmount(target, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW)
                .map(|()| true)
                .map_err(|e| Error::Mount { op: "detach", target: target.into(), source: e.into() })
        }
        Err(e) => Err(Error::Mount { op: "unmount", target: target.into(), source: e.into() }),
    }
}

#[cfg(test)]
mod tests;
