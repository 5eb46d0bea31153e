//! Unpacking as a whole: the temporary sibling directory (`<dest>.oci-partial`), each layer's
//! stream (stored blob -> sha256 check -> decompressor -> diff-id check -> tar), and the
//! rename into place once everything is in and synced. A crash leaves only the temporary
//! directory, which the next unpack to the same destination removes first.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use crate::image::LayerRef;
use crate::layer::Applier;
use crate::rootfs::Rootfs;
use crate::store::{Compression, Hashing, Store, sniff};
use crate::{Error, Limits, Unpacked};

/// What is appended to the destination's name for the directory being filled.
const PARTIAL: &str = ".oci-partial";

fn dest_io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::DestIo { path: path.to_owned(), op, source }
}

/// The temporary sibling `dest` is built in.
fn partial_of(dest: &Path) -> Result<PathBuf, Error> {
    let name = dest
        .file_name()
        .ok_or_else(|| Error::Dest { path: dest.to_owned(), why: "the destination has no file name".to_owned() })?;
    let mut partial = OsString::from(name);
    partial.push(PARTIAL);
    Ok(dest.with_file_name(partial))
}

pub(crate) fn unpack(
    image: &Path,
    store: &Store,
    layers: &[LayerRef],
    dest: &Path,
    limits: &Limits,
) -> Result<Unpacked, Error> {
    match dest.symlink_metadata() {
        Ok(_) => return Err(Error::Dest { path: dest.to_owned(), why: "already exists".to_owned() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(dest_io(dest, "look for the destination")(e)),
    }
    let partial = partial_of(dest)?;
    let stale = match partial.symlink_metadata() {
        Ok(meta) => {
            log::warn!("{}: removing a partial unpack left by an earlier run", partial.display());
            // remove_dir_all does not follow symlinks inside the tree.
            let removed = if meta.is_dir() { fs::remove_dir_all(&partial) } else { fs::remove_file(&partial) };
            removed.map_err(dest_io(&partial, "remove the stale partial unpack"))?;
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(dest_io(&partial, "look for a stale partial unpack")(e)),
    };
    DirBuilder::new().mode(0o700).create(&partial).map_err(dest_io(&partial, "create the directory"))?;

    let filled = fill(image, store, layers, &partial, limits);
    let mut done = match filled {
        Ok(done) => done,
        Err(e) => {
            if let Err(rm) = fs::remove_dir_all(&partial) {
                log::warn!("{}: cannot remove the partial unpack: {rm}", partial.display());
            }
            return Err(e);
        }
    };
    rustix::fs::renameat_with(rustix::fs::CWD, &partial, rustix::fs::CWD, dest, rustix::fs::RenameFlags::NOREPLACE)
        .map_err(|e| dest_io(dest, "rename the unpacked root filesystem into place")(e.into()))?;
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(parent).and_then(|d| d.sync_all()).map_err(dest_io(parent, "sync the directory"))?;
    if stale {
        done.warnings.insert(0, format!("removed a partial unpack left by an earlier run at {}", partial.display()));
    }
    log::info!(
        "{}: unpacked {} layers, {} entries, {} bytes into {}",
        image.display(),
        done.layers,
        done.entries,
        done.bytes,
        dest.display()
    );
    Ok(done)
}

/// Applies every layer into `dir` and syncs its file system.
fn fill(image: &Path, store: &Store, layers: &[LayerRef], dir: &Path, limits: &Limits) -> Result<Unpacked, Error> {
    let rootfs = Rootfs::open(dir).map_err(dest_io(dir, "open the directory"))?;
    let mut applier = Applier::new(image, &rootfs, limits);
    for layer in layers {
        log::debug!("{}: applying layer {}", image.display(), layer.id);
        apply(image, store, layer, &mut applier)?;
    }
    let done = applier.finish()?;
    rustix::fs::syncfs(rootfs.root()).map_err(|e| dest_io(dir, "sync the file system")(e.into()))?;
    Ok(done)
}

/// Streams one layer into the applier, verifying the stored blob and the uncompressed tar
/// against the digests the image gives.
fn apply(image: &Path, store: &Store, layer: &LayerRef, applier: &mut Applier<'_>) -> Result<(), Error> {
    let layer_err = |source| Error::Layer { image: image.to_owned(), layer: layer.id.clone(), source };
    let (mut reader, _) = store.open_member(&layer.member).map_err(|source| Error::Read {
        image: image.to_owned(),
        what: format!("layer {}", layer.id),
        source,
    })?;
    // One byte past the promised size is enough to know the blob is not the one promised.
    if let Some(size) = layer.stored.as_ref().and_then(|s| s.size) {
        reader.set_limit(reader.limit().min(size.saturating_add(1)));
    }
    let mut stored = Hashing::new(reader);
    let applied = (|| {
        let mut buffered = BufReader::with_capacity(1 << 16, &mut stored);
        let compression = match layer.compression {
            Some(c) => c,
            None => sniff(buffered.fill_buf().map_err(layer_err)?),
        };
        let decoded: Box<dyn Read + '_> = match compression {
            Compression::None => Box::new(buffered),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
            Compression::Zstd => Box::new(zstd::Decoder::with_buffer(buffered).map_err(layer_err)?),
        };
        let mut tar = Hashing::new(decoded);
        applier.apply_layer(&layer.id, &mut tar)?;
        tar.drain().map_err(layer_err)?;
        match &layer.diff_id {
            Some(expect) => tar.check(image, &layer.id, expect),
            None => Ok(()),
        }
    })();
    // The stored blob's digest is judged first: a corrupt blob is reported as such even when
    // the corruption also broke the decompressor or the tar framing.
    if let Some(expect) = &layer.stored {
        match stored.drain() {
            Ok(()) => stored.check(image, &layer.id, expect)?,
            Err(e) if applied.is_ok() => return Err(layer_err(e)),
            Err(_) => {}
        }
    }
    applied
}
