//! File system operations confined to a root directory being built. Every path is relative to
//! the root and free of `..` (the caller normalised it); its parent directories are resolved
//! with `openat2(RESOLVE_IN_ROOT)`, so symbolic links planted by earlier entries resolve as if
//! the root were `/` and never lead outside it; the last component is only ever acted on with
//! `*at` calls that do not follow it (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `unlinkat`).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

/// How often `openat2` is retried when the kernel reports a concurrent rename (`EAGAIN`).
const RESOLVE_RETRIES: usize = 8;

/// The root directory being filled.
#[derive(Debug)]
pub(crate) struct Rootfs {
    root: OwnedFd,
    path: PathBuf,
}

impl Rootfs {
    /// Opens the directory `dir` (not following a symlink there).
    pub(crate) fn open(dir: &Path) -> io::Result<Rootfs> {
        let root = rustix::fs::open(
            dir,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Rootfs { root, path: dir.to_owned() })
    }

    /// Where the root is, for errors.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The root's own descriptor.
    pub(crate) fn root(&self) -> &OwnedFd {
        &self.root
    }

    /// Opens the directory at `rel` (resolved inside the root). `Ok(None)` if it does not
    /// exist, or something other than a directory is there.
    pub(crate) fn find_dir(&self, rel: &Path) -> io::Result<Option<OwnedFd>> {
        match self.resolve(rel) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e == Errno::NOENT || e == Errno::NOTDIR || e == Errno::LOOP => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the directory at `rel`, creating it and any missing parents (mode 0755, as tar
    /// tools do for directories an archive does not list).
    pub(crate) fn make_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        match self.resolve(rel) {
            Ok(fd) => return Ok(fd),
            Err(e) if e == Errno::NOENT => {}
            Err(e) => return Err(e.into()),
        }
        let mut dir = self.resolve(Path::new(""))?;
        let mut prefix = PathBuf::new();
        for part in rel.components() {
            let Component::Normal(name) = part else { continue };
            prefix.push(name);
            match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(e) if e == Errno::EXIST => {}
                Err(e) => return Err(e.into()),
            }
            // Resolved again from the root: `name` may be a symlink within the root.
            dir = self.resolve(&prefix)?;
        }
        Ok(dir)
    }

    /// Writes `content` as the file `rel` (its parents made as [`Rootfs::make_dir`] makes
    /// them), mode `mode`: written aside and renamed into place; where a symlink is, through
    /// it, resolved inside the root; a directory there is an error.
    pub(crate) fn write_file(&self, rel: &Path, content: &[u8], mode: u32) -> io::Result<()> {
        use std::io::Write;
        let name = rel.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let dir = self.make_dir(rel.parent().unwrap_or(Path::new("")))?;
        let mode = Mode::from_raw_mode(mode & 0o7777);
        let write = |fd: OwnedFd| -> io::Result<()> {
            let mut file = std::fs::File::from(fd);
            file.write_all(content)?;
            rustix::fs::fchmod(&file, mode)?;
            file.sync_all()
        };
        match lstat_at(&dir, name)? {
            Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC;
                let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
                write(rustix::fs::openat2(&self.root, rel, flags, mode, resolve)?)
            }
            Some(st) if is_dir(&st) => Err(io::Error::new(io::ErrorKind::IsADirectory, "a directory is there")),
            _ => {
                let mut tmp = std::ffi::OsString::from(".");
                tmp.push(name);
                tmp.push(".xen-tmp");
                remove_at(&dir, &tmp)?;
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let written = rustix::fs::openat(&dir, tmp.as_os_str(), flags, mode)
                    .map_err(io::Error::from)
                    .and_then(write)
                    .and_then(|()| Ok(rustix::fs::renameat(&dir, tmp.as_os_str(), &dir, name)?));
                if written.is_err() {
                    let _ = remove_at(&dir, &tmp);
                }
                written
            }
        }
    }

    /// `openat2(root, rel, O_DIRECTORY, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`.
    fn resolve(&self, rel: &Path) -> Result<OwnedFd, Errno> {
        let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&self.root, rel, flags, Mode::empty(), resolve) {
                Err(e) if e == Errno::AGAIN && tries < RESOLVE_RETRIES => tries += 1,
                Err(e) if e == Errno::NOSYS => {
                    log::error!("openat2 is not available: Linux 5.6 or later is needed to unpack images safely");
                    return Err(e);
                }
                other => return other,
            }
        }
    }
}

/// What is at `name` in `dir`, not following a symlink; `None` if nothing.
pub(crate) fn lstat_at(dir: impl AsFd, name: &OsStr) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(e) if e == Errno::NOENT => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether a stat is of a directory.
pub(crate) fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// Opens the directory `name` in `dir`, refusing a symlink there.
pub(crate) fn open_dir_at(dir: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

/// Removes `name` from `dir`, with everything below it if it is a directory; never follows a
/// symlink. Nothing there is not an error.
pub(crate) fn remove_at(dir: impl AsFd, name: &OsStr) -> io::Result<()> {
    let dir = dir.as_fd();
    let Some(st) = lstat_at(dir, name)? else { return Ok(()) };
    if is_dir(&st) {
        let sub = open_dir_at(dir, name)?;
        for child in children(&sub)? {
            remove_at(&sub, &child)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}

/// The names in a directory, without `.` and `..`.
pub(crate) fn children(dir: &OwnedFd) -> io::Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt as _;
    let mut names = Vec::new();
    let mut reader = rustix::fs::Dir::read_from(dir)?;
    while let Some(entry) = reader.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(names)
}

/// Removes what a layer's opaque directory `dir` (at `rel`) holds from lower layers: every
/// child whose path `keep` rejects, recursively; kept directories are searched in turn, since
/// lower layers' files inside them are gone too.
pub(crate) fn clear_lower(dir: &OwnedFd, rel: &Path, keep: &dyn Fn(&Path) -> bool) -> io::Result<()> {
    for child in children(dir)? {
        let path = rel.join(&child);
        if !keep(&path) {
            remove_at(dir, &child)?;
        } else if lstat_at(dir, &child)?.is_some_and(|st| is_dir(&st)) {
            let sub = open_dir_at(dir, &child)?;
            clear_lower(&sub, &path, keep)?;
        }
    }
    Ok(())
}
