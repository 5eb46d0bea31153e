//! Applying layers, one tar stream after another, to a root filesystem being built: each entry
//! replaces what lower layers left at its path (a directory over a directory merges), `.wh.`
//! whiteouts remove lower entries and `.wh..wh..opq` empties a directory of them. Files get
//! their numeric owner, mode (setuid, setgid and sticky included, set after the owner since
//! `chown` clears them), extended attributes from PAX `SCHILY.xattr.*` records, and mtime.
//! Directories get their mode and mtime last, once nothing more is written into them.
//!
//! Names are checked here (no `..`; a leading `/` is dropped) and all writing goes through
//! [`crate::rootfs`], which keeps it inside the root.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use crate::rootfs::{self, Rootfs};
use crate::{Error, Limits, Unpacked};

/// Warnings kept in [`Unpacked::warnings`]; more are only counted (and logged).
const MAX_WARNINGS: usize = 100;
const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
const XATTR: &str = "SCHILY.xattr.";

/// Metadata of an entry, from its header and PAX records.
#[derive(Debug)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Meta {
    fn times(&self) -> Timestamps {
        Timestamps { last_access: self.mtime, last_modification: self.mtime }
    }
}

/// A directory's mode and mtime, set when all layers are in.
#[derive(Debug, Clone, Copy)]
struct DirMeta {
    mode: u32,
    mtime: Option<Timespec>,
}

/// Names an entry in errors.
struct At<'a> {
    image: &'a Path,
    layer: &'a str,
    entry: String,
}

impl At<'_> {
    fn bad(&self, why: impl Into<String>) -> Error {
        Error::Entry {
            image: self.image.to_owned(),
            layer: self.layer.to_owned(),
            entry: self.entry.clone(),
            why: why.into(),
        }
    }

    fn io(&self, op: &'static str, source: impl Into<io::Error>) -> Error {
        Error::EntryIo {
            image: self.image.to_owned(),
            layer: self.layer.to_owned(),
            entry: self.entry.clone(),
            op,
            source: source.into(),
        }
    }

    fn limit(&self, what: &'static str, max: u64) -> Error {
        Error::Limit {
            image: self.image.to_owned(),
            layer: self.layer.to_owned(),
            entry: self.entry.clone(),
            what,
            max,
        }
    }
}

/// Applies layers to a root filesystem, keeping the totals and what is left to do at the end.
pub(crate) struct Applier<'a> {
    image: &'a Path,
    rootfs: &'a Rootfs,
    limits: Limits,
    done: Unpacked,
    dirs: BTreeMap<PathBuf, DirMeta>,
    is_root: bool,
    warned_owner: bool,
    hidden_warnings: usize,
}

impl std::fmt::Debug for Applier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier").field("image", &self.image).field("done", &self.done).finish_non_exhaustive()
    }
}

impl<'a> Applier<'a> {
    pub(crate) fn new(image: &'a Path, rootfs: &'a Rootfs, limits: &Limits) -> Self {
        let mut dirs = BTreeMap::new();
        // The root is created 0700 so nothing sees it half-built; it ends 0755 unless a
        // layer says otherwise.
        dirs.insert(PathBuf::new(), DirMeta { mode: 0o755, mtime: None });
        Applier {
            image,
            rootfs,
            limits: *limits,
            done: Unpacked::default(),
            dirs,
            is_root: rustix::process::geteuid().is_root(),
            warned_owner: false,
            hidden_warnings: 0,
        }
    }

    fn warn(&mut self, warning: String) {
        log::warn!("{}: {warning}", self.image.display());
        if self.done.warnings.len() < MAX_WARNINGS {
            self.done.warnings.push(warning);
        } else {
            self.hidden_warnings += 1;
        }
    }

    /// Applies the layer `layer` (its digest, for errors) read from `stream`, an uncompressed
    /// tar.
    pub(crate) fn apply_layer(&mut self, layer: &str, stream: impl Read) -> Result<(), Error> {
        let layer_err = |source| Error::Layer { image: self.image.to_owned(), layer: layer.to_owned(), source };
        let mut archive = tar::Archive::new(stream);
        // Paths this layer wrote, with their parents: what an opaque directory keeps.
        let mut in_layer = HashSet::new();
        for entry in archive.entries().map_err(layer_err)? {
            let mut entry = entry.map_err(layer_err)?;
            let at = At { image: self.image, layer, entry: String::from_utf8_lossy(&entry.path_bytes()).into_owned() };
            self.done.entries += 1;
            if self.done.entries > self.limits.max_entries {
                return Err(at.limit("entries", self.limits.max_entries));
            }
            let rel = entry_path(&entry.path_bytes()).map_err(|why| at.bad(why))?;
            self.apply_entry(&at, &mut entry, &rel, &mut in_layer)?;
        }
        self.done.layers += 1;
        Ok(())
    }

    fn apply_entry<R: Read>(
        &mut self,
        at: &At<'_>,
        entry: &mut tar::Entry<'_, R>,
        rel: &Path,
        in_layer: &mut HashSet<PathBuf>,
    ) -> Result<(), Error> {
        if let Some(name) = rel.file_name()
            && name.as_bytes().starts_with(WHITEOUT)
        {
            return self.whiteout(at, rel, name, in_layer);
        }
        for path in rel.ancestors() {
            if path.as_os_str().is_empty() || !in_layer.insert(path.to_owned()) {
                break;
            }
        }
        let kind = entry.header().entry_type();
        let meta = meta(entry).map_err(|why| at.bad(why))?;
        let Some(name) = rel.file_name() else {
            return match kind {
                EntryType::Directory => self.root_dir(at, meta),
                _ => Err(at.bad("the root is not a directory")),
            };
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        match kind {
            EntryType::Directory => self.dir(at, rel, parent, name, meta),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let size = entry.size();
                self.file(at, rel, parent, name, meta, size, entry)
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| at.bad("a symbolic link without a target"))?;
                self.symlink(at, rel, parent, name, meta, OsStr::from_bytes(&target))
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().ok_or_else(|| at.bad("a hard link without a target"))?;
                let target = entry_path(&target).map_err(|why| at.bad(format!("hard link target: {why}")))?;
                self.hard_link(at, rel, parent, name, &target)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let file_type = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                // A FIFO has no device number; tar tools may leave the fields blank.
                let dev = if kind == EntryType::Fifo {
                    0
                } else {
                    let major = entry.header().device_major().map_err(|e| at.bad(e.to_string()))?.unwrap_or(0);
                    let minor = entry.header().device_minor().map_err(|e| at.bad(e.to_string()))?.unwrap_or(0);
                    rustix::fs::makedev(major, minor)
                };
                self.node(at, rel, parent, name, meta, file_type, dev)
            }
            EntryType::XGlobalHeader => Ok(()),
            other => {
                self.warn(format!("{}: entry type {other:?} is not supported: skipped", at.entry));
                Ok(())
            }
        }
    }

    /// `.wh.<name>` removes `<name>`; `.wh..wh..opq` removes what lower layers put in its
    /// directory.
    fn whiteout(&mut self, at: &At<'_>, rel: &Path, name: &OsStr, in_layer: &HashSet<PathBuf>) -> Result<(), Error> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir = self.rootfs.find_dir(parent).map_err(|e| at.io("open the parent directory", e))?;
        let Some(dir) = dir else { return Ok(()) };
        let name = name.as_bytes();
        if name == OPAQUE {
            return rootfs::clear_lower(&dir, parent, &|p| in_layer.contains(p))
                .map_err(|e| at.io("empty the opaque directory", e));
        }
        let Some(hidden) = name.strip_prefix(WHITEOUT) else { return Ok(()) };
        if hidden.starts_with(WHITEOUT) {
            log::debug!("{}: {}: aufs metadata skipped", self.image.display(), at.entry);
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(at.bad("a whiteout without a name"));
        }
        let hidden = OsStr::from_bytes(hidden);
        rootfs::remove_at(&dir, hidden).map_err(|e| at.io("remove the whited-out entry", e))?;
        self.forget(&parent.join(hidden));
        Ok(())
    }

    /// Makes way at `name` for a new entry: removes what is there, except a directory when a
    /// directory comes (layers merge). True if a directory was kept.
    fn make_room(
        &mut self,
        at: &At<'_>,
        dir: impl AsFd,
        rel: &Path,
        name: &OsStr,
        is_dir: bool,
    ) -> Result<bool, Error> {
        let dir = dir.as_fd();
        let Some(st) = rootfs::lstat_at(dir, name).map_err(|e| at.io("look at the existing entry", e))? else {
            return Ok(false);
        };
        if is_dir && rootfs::is_dir(&st) {
            return Ok(true);
        }
        rootfs::remove_at(dir, name).map_err(|e| at.io("replace the existing entry", e))?;
        self.forget(rel);
        Ok(false)
    }

    /// Drops the pending metadata of directories at or below `rel`, which are gone.
    fn forget(&mut self, rel: &Path) {
        let gone: Vec<PathBuf> =
            self.dirs.range(rel.to_owned()..).take_while(|(p, _)| p.starts_with(rel)).map(|(p, _)| p.clone()).collect();
        for path in gone {
            self.dirs.remove(&path);
        }
    }

    fn parent_dir(&self, at: &At<'_>, parent: &Path) -> Result<std::os::fd::OwnedFd, Error> {
        self.rootfs.make_dir(parent).map_err(|e| at.io("create the parent directories", e))
    }

    fn root_dir(&mut self, at: &At<'_>, meta: Meta) -> Result<(), Error> {
        let root = self.rootfs.root();
        let owned = rustix::fs::fchown(root, Some(uid(meta.uid)), Some(gid(meta.gid)));
        self.owner_set(at, owned)?;
        self.set_xattrs(at, root, &meta)?;
        self.dirs.insert(PathBuf::new(), DirMeta { mode: meta.mode, mtime: Some(meta.mtime) });
        Ok(())
    }

    fn dir(&mut self, at: &At<'_>, rel: &Path, parent: &Path, name: &OsStr, meta: Meta) -> Result<(), Error> {
        let dir = self.parent_dir(at, parent)?;
        if !self.make_room(at, &dir, rel, name, true)? {
            rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700))
                .map_err(|e| at.io("create the directory", e))?;
        }
        let fd = rootfs::open_dir_at(&dir, name).map_err(|e| at.io("open the directory", e))?;
        let owned = rustix::fs::fchown(&fd, Some(uid(meta.uid)), Some(gid(meta.gid)));
        self.owner_set(at, owned)?;
        self.set_xattrs(at, &fd, &meta)?;
        self.dirs.insert(rel.to_owned(), DirMeta { mode: meta.mode, mtime: Some(meta.mtime) });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn file(
        &mut self,
        at: &At<'_>,
        rel: &Path,
        parent: &Path,
        name: &OsStr,
        meta: Meta,
        size: u64,
        data: &mut impl Read,
    ) -> Result<(), Error> {
        if self.done.bytes.saturating_add(size) > self.limits.max_bytes {
            return Err(at.limit("unpacked bytes", self.limits.max_bytes));
        }
        let dir = self.parent_dir(at, parent)?;
        self.make_room(at, &dir, rel, name, false)?;
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&dir, name, flags, Mode::from_raw_mode(0o600))
            .map_err(|e| at.io("create the file", e))?;
        let mut file = File::from(fd);
        // The entry's reader stops at its size; the limit is checked again on what came.
        let copied = io::copy(&mut data.take(size), &mut file).map_err(|e| at.io("write the file", e))?;
        self.done.bytes += copied;
        let owned = rustix::fs::fchown(&file, Some(uid(meta.uid)), Some(gid(meta.gid)));
        self.owner_set(at, owned)?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode)).map_err(|e| at.io("set the mode", e))?;
        self.set_xattrs(at, &file, &meta)?;
        rustix::fs::futimens(&file, &meta.times()).map_err(|e| at.io("set the times", e))?;
        Ok(())
    }

    fn symlink(
        &mut self,
        at: &At<'_>,
        rel: &Path,
        parent: &Path,
        name: &OsStr,
        meta: Meta,
        target: &OsStr,
    ) -> Result<(), Error> {
        let dir = self.parent_dir(at, parent)?;
        self.make_room(at, &dir, rel, name, false)?;
        rustix::fs::symlinkat(target, &dir, name).map_err(|e| at.io("create the symbolic link", e))?;
        let owned =
            rustix::fs::chownat(&dir, name, Some(uid(meta.uid)), Some(gid(meta.gid)), AtFlags::SYMLINK_NOFOLLOW);
        self.owner_set(at, owned)?;
        rustix::fs::utimensat(&dir, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| at.io("set the times", e))?;
        if !meta.xattrs.is_empty() {
            self.warn(format!("{}: extended attributes of a symbolic link are not kept", at.entry));
        }
        Ok(())
    }

    fn hard_link(&mut self, at: &At<'_>, rel: &Path, parent: &Path, name: &OsStr, target: &Path) -> Result<(), Error> {
        if target == rel {
            return Ok(());
        }
        let Some(target_name) = target.file_name() else { return Err(at.bad("a hard link to the root")) };
        let target_parent = target.parent().unwrap_or(Path::new(""));
        let target_dir = self
            .rootfs
            .find_dir(target_parent)
            .map_err(|e| at.io("open the hard link target's directory", e))?
            .ok_or_else(|| at.bad(format!("hard link target {} does not exist", target.display())))?;
        let dir = self.parent_dir(at, parent)?;
        self.make_room(at, &dir, rel, name, false)?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink, as tar does.
        rustix::fs::linkat(&target_dir, target_name, &dir, name, AtFlags::empty())
            .map_err(|e| at.io("create the hard link", e))?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        at: &At<'_>,
        rel: &Path,
        parent: &Path,
        name: &OsStr,
        meta: Meta,
        file_type: FileType,
        dev: rustix::fs::Dev,
    ) -> Result<(), Error> {
        let dir = self.parent_dir(at, parent)?;
        self.make_room(at, &dir, rel, name, false)?;
        let mode = Mode::from_raw_mode(meta.mode);
        match rustix::fs::mknodat(&dir, name, file_type, mode, dev) {
            Ok(()) => {}
            Err(e) if e == Errno::PERM => {
                self.warn(format!("{}: creating a device node is not permitted here: skipped", at.entry));
                return Ok(());
            }
            Err(e) => return Err(at.io("create the node", e)),
        }
        let owned =
            rustix::fs::chownat(&dir, name, Some(uid(meta.uid)), Some(gid(meta.gid)), AtFlags::SYMLINK_NOFOLLOW);
        self.owner_set(at, owned)?;
        // mknod applied the umask; the node was just made here, so this cannot follow a link.
        rustix::fs::chmodat(&dir, name, mode, AtFlags::empty()).map_err(|e| at.io("set the mode", e))?;
        rustix::fs::utimensat(&dir, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| at.io("set the times", e))?;
        if !meta.xattrs.is_empty() {
            self.warn(format!("{}: extended attributes of a device node or FIFO are not kept", at.entry));
        }
        Ok(())
    }

    /// Ownership that could not be set: an error as root, one warning otherwise (an
    /// unprivileged unpack cannot give files away).
    fn owner_set(&mut self, at: &At<'_>, result: Result<(), Errno>) -> Result<(), Error> {
        match result {
            Ok(()) => Ok(()),
            Err(e) if e == Errno::PERM && !self.is_root => {
                if !self.warned_owner {
                    self.warned_owner = true;
                    self.warn("not running as root: file ownership is not kept".to_owned());
                }
                Ok(())
            }
            Err(e) => Err(at.io("set the owner", e)),
        }
    }

    fn set_xattrs(&mut self, at: &At<'_>, fd: impl AsFd, meta: &Meta) -> Result<(), Error> {
        for (name, value) in &meta.xattrs {
            match rustix::fs::fsetxattr(&fd, name.as_os_str(), value, XattrFlags::empty()) {
                Ok(()) => {}
                Err(e) if e == Errno::PERM || e == Errno::NOTSUP => {
                    self.warn(format!("{}: extended attribute {} not kept: {e}", at.entry, name.to_string_lossy()));
                }
                Err(e) => return Err(at.io("set an extended attribute", e)),
            }
        }
        Ok(())
    }

    /// Sets the directories' modes and mtimes, now that nothing more is written into them.
    pub(crate) fn finish(mut self) -> Result<Unpacked, Error> {
        let dest_err =
            |op, source: Errno| Error::DestIo { path: self.rootfs.path().to_owned(), op, source: source.into() };
        for (rel, meta) in &self.dirs {
            let fd = match (rel.parent(), rel.file_name()) {
                (Some(parent), Some(name)) => {
                    let Ok(Some(dir)) = self.rootfs.find_dir(parent) else { continue };
                    match rootfs::lstat_at(&dir, name) {
                        Ok(Some(st)) if rootfs::is_dir(&st) => {}
                        _ => continue,
                    }
                    match rootfs::open_dir_at(&dir, name) {
                        Ok(fd) => fd,
                        Err(_) => continue,
                    }
                }
                _ => rustix::fs::openat(
                    self.rootfs.root(),
                    ".",
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| dest_err("open the root", e))?,
            };
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))
                .map_err(|e| dest_err("set a directory's mode", e))?;
            if let Some(mtime) = meta.mtime {
                let times = Timestamps { last_access: mtime, last_modification: mtime };
                rustix::fs::futimens(&fd, &times).map_err(|e| dest_err("set a directory's times", e))?;
            }
        }
        if self.hidden_warnings > 0 {
            let more = format!("{} more warnings not shown", self.hidden_warnings);
            self.done.warnings.push(more);
        }
        Ok(self.done)
    }
}

/// An entry's name as a path inside the root: a leading `/` and `./` dropped, as tar tools
/// do; empty for the root itself; an error for a `..` component.
pub(crate) fn entry_path(name: &[u8]) -> Result<PathBuf, &'static str> {
    let mut path = PathBuf::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("the name has a `..` component"),
            part => path.push(OsStr::from_bytes(part)),
        }
    }
    Ok(path)
}

fn uid(raw: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(raw)
}

fn gid(raw: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(raw)
}

/// An entry's metadata: header fields, overridden by PAX `uid`, `gid` and `mtime`, and PAX
/// `SCHILY.xattr.*` extended attributes.
fn meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, String> {
    let header = entry.header();
    let mode = header.mode().map_err(|e| format!("bad mode: {e}"))? & 0o7777;
    let mut uid = header.uid().map_err(|e| format!("bad uid: {e}"))?;
    let mut gid = header.gid().map_err(|e| format!("bad gid: {e}"))?;
    let mut mtime = Timespec { tv_sec: clamp_secs(header.mtime().map_err(|e| format!("bad mtime: {e}"))?), tv_nsec: 0 };
    let mut xattrs = Vec::new();
    if let Some(pax) = entry.pax_extensions().map_err(|e| format!("bad PAX header: {e}"))? {
        for ext in pax {
            let ext = ext.map_err(|e| format!("bad PAX header: {e}"))?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            match key {
                "uid" => uid = parse_id(value).ok_or("bad PAX uid")?,
                "gid" => gid = parse_id(value).ok_or("bad PAX gid")?,
                "mtime" => mtime = parse_time(value).ok_or("bad PAX mtime")?,
                _ => {
                    if let Some(name) = key.strip_prefix(XATTR) {
                        xattrs.push((OsString::from(name), value.to_vec()));
                    }
                }
            }
        }
    }
    // u32::MAX is -1 to chown: "leave unchanged", never a real id.
    let uid = u32::try_from(uid).ok().filter(|&id| id != u32::MAX).ok_or_else(|| format!("uid {uid} out of range"))?;
    let gid = u32::try_from(gid).ok().filter(|&id| id != u32::MAX).ok_or_else(|| format!("gid {gid} out of range"))?;
    Ok(Meta { mode, uid, gid, mtime, xattrs })
}

fn parse_id(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// A PAX time: decimal seconds with an optional fraction (`1700000000.123456789`).
fn parse_time(value: &[u8]) -> Option<Timespec> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let mut tv_nsec: i64 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    for _ in digits.len()..9 {
        tv_nsec *= 10;
    }
    if tv_sec < 0 && tv_nsec > 0 {
        return Some(Timespec { tv_sec: tv_sec - 1, tv_nsec: 1_000_000_000 - tv_nsec });
    }
    Some(Timespec { tv_sec, tv_nsec })
}

fn clamp_secs(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_stay_inside() {
        assert_eq!(entry_path(b"./usr/bin/").unwrap(), PathBuf::from("usr/bin"));
        assert_eq!(entry_path(b"/etc/passwd").unwrap(), PathBuf::from("etc/passwd"));
        assert_eq!(entry_path(b"./").unwrap(), PathBuf::new());
        assert!(entry_path(b"../escape").is_err());
        assert!(entry_path(b"a/../../b").is_err());
    }

    #[test]
    fn pax_times_parse() {
        let t = parse_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_time(b"12").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 0));
        assert!(parse_time(b"x").is_none());
    }
}
