//! The copies in `<persist>/img` as files: making one so that only a whole copy ever has the
//! final name, reusing one that exists, recording how it was made, listing and removing them.
//!
//! A copy is made in `<final>.partial`, created exclusively after removing any stale one, then
//! fsynced, renamed into place (without replacing anything) and the directory fsynced:
//!
//! ```text
//!   (none) --create .partial--> partial --fill, fsync--> complete --rename, fsync dir--> final
//!                                  |                        |
//!                                  +---- error, cancel, ----+--> .partial removed (a guard's
//!                                        disk full, panic         Drop; a killed process leaves
//!                                                                 it for the next run to remove)
//! ```
//!
//! One caller per copy at a time: the daemon makes a domain's copies from the domain's own
//! thread. Two callers on the same copy would remove each other's `.partial`.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use rustix::fs::{Mode, OFlags, RenameFlags, XattrFlags};
use rustix::io::Errno;

use crate::data::{self, Copying};
use crate::name::PARTIAL_SUFFIX;
use crate::{CopyInfo, CopyRequest, DiskFormat, Error, Method, Outcome, Progress, Result, Strategy, overlay};

/// The extended attribute recording how a copy was made ([`Method::as_str`]).
const METHOD_XATTR: &str = "user.xen-diskcopy.method";

/// The copy of `req.source` at `req.dest`: the existing one if there is one (left untouched),
/// else a new one made by the request's strategy. `progress` is called at least every
/// [`PROGRESS_STEP`](crate::PROGRESS_STEP) bytes and at the end; `cancel` is checked between
/// chunks. On any error nothing is left at `req.dest` or its `.partial`.
pub fn ensure_copy(req: &CopyRequest, progress: &mut dyn FnMut(Progress), cancel: &AtomicBool) -> Result<Outcome> {
    let dest = req.dest.as_path();
    let (dir, partial) = partial_of(dest)?;
    if let Some(outcome) = existing(req)? {
        log::debug!("{}: reused ({})", dest.display(), outcome.method.map_or("method not recorded", Method::as_str));
        return Ok(outcome);
    }
    if let Err(e) = std::fs::create_dir(&dir)
        && e.kind() != io::ErrorKind::AlreadyExists
    {
        return Err(Error::io("create directory", &dir, e));
    }

    let src = File::open(&req.source).map_err(|e| Error::io("open", &req.source, e))?;
    let meta = src.metadata().map_err(|e| Error::io("stat", &req.source, e))?;
    if !meta.is_file() {
        return Err(Error::NotAFile { path: req.source.clone() });
    }
    let len = meta.len();

    match std::fs::remove_file(&partial) {
        Ok(()) => log::warn!("{}: removed a copy left unfinished by an earlier run", partial.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove", &partial, e)),
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(&partial, flags, Mode::from_raw_mode(0o600)).map_err(|e| match e {
        Errno::NOSPC | Errno::DQUOT => Error::NoSpace { path: dest.to_owned(), source: e.into() },
        e => Error::io("create", &partial, e),
    })?;
    let mut guard = PartialGuard { path: partial.clone(), keep: false };
    let file = File::from(fd);

    let method = fill(req, &mut Copying::new((&src, &req.source), (&file, dest), len, progress, cancel), &partial)?;

    // Recorded before the fsync so it is as durable as the data. Only a raw image's overlay
    // depends on it (its format cannot be told from the name or the source's format).
    if let Err(e) = rustix::fs::fsetxattr(&file, METHOD_XATTR, method.as_str().as_bytes(), XattrFlags::empty()) {
        if method == Method::Overlay && req.source_format == DiskFormat::Raw {
            return Err(Error::dest("record the method of", dest, e.into()));
        }
        log::debug!("{}: method not recorded: {e}", dest.display());
    }
    file.sync_all().map_err(|e| Error::dest("fsync", dest, e))?;
    let stat = file.metadata().map_err(|e| Error::io("stat", &partial, e))?;
    drop(file);
    // Cut short after the last chunk (while the caller's last progress report ran): still
    // nothing at the final name.
    if cancel.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Error::Cancelled { path: dest.to_owned() });
    }

    if !rename_into_place(&partial, dest)? {
        // Made meanwhile by someone else: theirs is whole, ours goes with the guard.
        log::warn!("{}: appeared while being made; keeping the existing one", dest.display());
        return existing(req)?.ok_or_else(|| Error::NotAFile { path: dest.to_owned() });
    }
    guard.keep = true;
    sync_dir(&dir)?;

    let format = if method == Method::Overlay { DiskFormat::Qcow2 } else { req.source_format };
    log::info!(
        "{}: made by {method} from {} ({} bytes, {} allocated)",
        dest.display(),
        req.source.display(),
        stat.len(),
        stat.blocks() * 512
    );
    Ok(Outcome {
        path: dest.to_owned(),
        reused: false,
        method: Some(method),
        format,
        size: stat.len(),
        allocated: stat.blocks() * 512,
    })
}

/// Fills the empty `.partial` by the request's strategy; the method used.
fn fill(req: &CopyRequest, c: &mut Copying<'_>, partial: &Path) -> Result<Method> {
    let unsupported = |method, source| Error::Unsupported { method, path: req.dest.clone(), source };
    let allow_overlay = match req.strategy {
        Strategy::Only(Method::Reflink) => {
            data::reflink(c.src, c.dst).map_err(|e| {
                if data::reflink_unsupported(&e) {
                    unsupported(Method::Reflink, e)
                } else {
                    Error::dest("clone into", c.dest, e)
                }
            })?;
            c.finish();
            return Ok(Method::Reflink);
        }
        Strategy::Only(Method::Overlay) => {
            c.check_cancel()?;
            overlay::create(&req.qemu_img, &req.source, req.source_format, partial)?;
            check_same_file(c.dst, partial)?;
            c.finish();
            return Ok(Method::Overlay);
        }
        Strategy::Only(Method::Sparse) => {
            data::sparse(c, req.skip_zero_blocks)?;
            return Ok(Method::Sparse);
        }
        Strategy::Only(Method::Plain) => {
            data::plain(c)?;
            return Ok(Method::Plain);
        }
        Strategy::Auto { allow_overlay } => allow_overlay,
    };

    match data::reflink(c.src, c.dst) {
        Ok(()) => {
            c.finish();
            return Ok(Method::Reflink);
        }
        Err(e) if data::reflink_unsupported(&e) => log::debug!("{}: no reflink here: {e}", c.dest.display()),
        Err(e) => return Err(Error::dest("clone into", c.dest, e)),
    }
    if allow_overlay {
        c.check_cancel()?;
        match overlay::create(&req.qemu_img, &req.source, req.source_format, partial) {
            Ok(()) => {
                check_same_file(c.dst, partial)?;
                c.finish();
                return Ok(Method::Overlay);
            }
            // No qemu-img to run: a full copy still gives the domain its disk.
            Err(Error::Io { op: "run", source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                log::warn!("{}: {} not found; making a sparse copy instead", c.dest.display(), req.qemu_img.display());
            }
            Err(e) => return Err(e),
        }
    }
    data::sparse(c, req.skip_zero_blocks)?;
    Ok(Method::Sparse)
}

/// Checks that `qemu-img` wrote into the file this crate created (and will fsync and rename),
/// not into a new file at the same name.
fn check_same_file(file: &File, path: &Path) -> Result<()> {
    let ours = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    let named = std::fs::symlink_metadata(path).map_err(|e| Error::io("stat", path, e))?;
    if (ours.dev(), ours.ino()) != (named.dev(), named.ino()) {
        return Err(Error::io("keep", path, io::Error::other("qemu-img replaced the file")));
    }
    Ok(())
}

/// The outcome for the copy at `req.dest` if it exists; not following a symbolic link.
fn existing(req: &CopyRequest) -> Result<Option<Outcome>> {
    let meta = match std::fs::symlink_metadata(&req.dest) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("stat", &req.dest, e)),
    };
    if !meta.is_file() {
        return Err(Error::NotAFile { path: req.dest.clone() });
    }
    let method = recorded_method(&req.dest);
    let format = if method == Some(Method::Overlay) { DiskFormat::Qcow2 } else { req.source_format };
    Ok(Some(Outcome {
        path: req.dest.clone(),
        reused: true,
        method,
        format,
        size: meta.len(),
        allocated: meta.blocks() * 512,
    }))
}

/// The method recorded on a copy, if any (not following a symbolic link).
fn recorded_method(path: &Path) -> Option<Method> {
    let mut buf = [0u8; 32];
    let n = rustix::fs::lgetxattr(path, METHOD_XATTR, &mut buf).ok()?;
    std::str::from_utf8(&buf[..n]).ok().and_then(Method::from_word)
}

/// The directory of `dest` and its `.partial` path.
fn partial_of(dest: &Path) -> Result<(PathBuf, PathBuf)> {
    let bad = |why| Error::BadName { part: "path", value: dest.display().to_string(), why };
    let name = dest.file_name().ok_or_else(|| bad("it has no file name"))?;
    let dir = match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut partial = name.to_owned();
    partial.push(PARTIAL_SUFFIX);
    Ok((dir.clone(), dir.join(partial)))
}

/// Renames `partial` to `dest` unless `dest` exists; false if it does.
fn rename_into_place(partial: &Path, dest: &Path) -> Result<bool> {
    let cwd = rustix::fs::CWD;
    match rustix::fs::renameat_with(cwd, partial, cwd, dest, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(Errno::EXIST) => Ok(false),
        // A filesystem without RENAME_NOREPLACE: check, then rename (one caller per copy).
        Err(Errno::INVAL) => {
            if std::fs::symlink_metadata(dest).is_ok() {
                return Ok(false);
            }
            std::fs::rename(partial, dest).map_err(|e| Error::io("rename into place", dest, e))?;
            Ok(true)
        }
        Err(e) => Err(Error::io("rename into place", dest, e)),
    }
}

/// fsyncs a directory, so a rename or removal in it survives a crash.
fn sync_dir(dir: &Path) -> Result<()> {
    let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open", dir, e))?;
    rustix::fs::fsync(&fd).map_err(|e| Error::io("fsync", dir, e))
}

/// Removes the `.partial` on drop unless the copy was put in place.
struct PartialGuard {
    path: PathBuf,
    keep: bool,
}

impl Drop for PartialGuard {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => log::debug!("{}: removed", self.path.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::error!("{}: cannot remove an unfinished copy: {e}", self.path.display()),
        }
    }
}

/// The copies in `dir`: its regular files, without `.partial` ones, sorted by path.
pub fn list_copies(dir: &Path) -> Result<Vec<CopyInfo>> {
    let mut copies = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let path = entry.path();
        if entry.file_name().as_encoded_bytes().ends_with(PARTIAL_SUFFIX.as_bytes()) {
            continue;
        }
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => continue,
            // Removed meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat", &path, e)),
        };
        let method = recorded_method(&path);
        let backing = if method == Some(Method::Overlay) { overlay::overlay_backing(&path)? } else { None };
        copies.push(CopyInfo { path, size: meta.len(), allocated: meta.blocks() * 512, method, backing });
    }
    copies.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(copies)
}

/// Removes a copy and any unfinished `.partial` of it; fine if neither exists.
pub fn remove_copy(path: &Path) -> Result<()> {
    let (dir, partial) = partial_of(path)?;
    let mut removed = false;
    for p in [path, partial.as_path()] {
        match std::fs::remove_file(p) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", p, e)),
        }
    }
    if removed {
        log::info!("{}: removed", path.display());
        sync_dir(&dir)?;
    }
    Ok(())
}

/// Removes every `.partial` file in `dir` (copies cut short by a crash or a kill), for start-up
/// before any copy is being made; the paths removed.
pub fn remove_partials(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        if !entry.file_name().as_encoded_bytes().ends_with(PARTIAL_SUFFIX.as_bytes()) {
            continue;
        }
        let path = entry.path();
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat", &path, e)),
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                log::warn!("{}: removed a copy left unfinished", path.display());
                removed.push(path);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &path, e)),
        }
    }
    if !removed.is_empty() {
        sync_dir(dir)?;
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
#[path = "copies_tests.rs"]
mod tests;
