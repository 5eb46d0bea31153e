//! Moving an image's bytes into an open, empty copy: a reflink (`FICLONE`), a sparse copy
//! (data extents found with `SEEK_DATA`/`SEEK_HOLE`, moved with `copy_file_range` or, to leave
//! all-zero blocks as holes, through a buffer) and a plain read/write of everything. Progress,
//! cancellation and the disk-full error are handled here, chunk by chunk; making the file and
//! putting it in place are `copies`'s.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::SeekFrom;
use rustix::io::Errno;

use crate::{Error, PROGRESS_STEP, Progress, Result};

/// The unit of a buffered copy and of zero detection: 1 MiB, aligned to the image's offsets, so
/// a skipped block is a whole number of filesystem blocks.
pub(crate) const BLOCK: u64 = 1 << 20;

/// The most one `copy_file_range` call is asked for: small enough that cancellation is checked
/// often, large enough that the calls cost nothing.
const CFR_CHUNK: u64 = 8 << 20;

/// One copy under way: the two files, the image's length, and the caller's progress callback
/// and cancel flag.
pub(crate) struct Copying<'a> {
    /// The shared image.
    pub src: &'a File,
    /// Its path, for messages.
    pub src_path: &'a Path,
    /// The copy being made (an empty file).
    pub dst: &'a File,
    /// The copy's final path, for messages.
    pub dest: &'a Path,
    /// The image's length.
    pub len: u64,
    /// Called with the progress.
    pub progress: &'a mut dyn FnMut(Progress),
    /// Set by the caller to stop.
    pub cancel: &'a AtomicBool,
    /// `done` at the last report.
    reported: u64,
}

impl<'a> Copying<'a> {
    /// A copy of `len` bytes from `src` into `dst`.
    pub(crate) fn new(
        src: (&'a File, &'a Path),
        dst: (&'a File, &'a Path),
        len: u64,
        progress: &'a mut dyn FnMut(Progress),
        cancel: &'a AtomicBool,
    ) -> Copying<'a> {
        Copying { src: src.0, src_path: src.1, dst: dst.0, dest: dst.1, len, progress, cancel, reported: 0 }
    }

    /// Between two chunks: stops if cancelled, reports if a step has passed since the last
    /// report.
    fn step(&mut self, done: u64) -> Result<()> {
        self.check_cancel()?;
        if done >= self.reported + PROGRESS_STEP {
            self.reported = done;
            (self.progress)(Progress { done, total: self.len });
        }
        Ok(())
    }

    /// [`Error::Cancelled`] if the caller's flag is set.
    pub(crate) fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled { path: self.dest.to_owned() });
        }
        Ok(())
    }

    /// The last report: everything done.
    pub(crate) fn finish(&mut self) {
        self.reported = self.len;
        (self.progress)(Progress { done: self.len, total: self.len });
    }

    /// An error reading the image.
    fn read_error(&self, e: impl Into<io::Error>) -> Error {
        Error::io("read", self.src_path, e)
    }

    /// An error writing the copy (disk full gets its own variant).
    fn write_error(&self, op: &'static str, e: impl Into<io::Error>) -> Error {
        Error::dest(op, self.dest, e.into())
    }
}

/// Clones the whole of `src` into `dst` (`FICLONE`). The raw error is returned so the caller
/// can tell "cannot here" ([`reflink_unsupported`]) from a real failure.
pub(crate) fn reflink(src: &File, dst: &File) -> io::Result<()> {
    rustix::fs::ioctl_ficlone(dst, src).map_err(io::Error::from)
}

/// Whether a `FICLONE` error means this filesystem (or this pair of files) cannot reflink:
/// `EOPNOTSUPP` (no reflink support, e.g. ext4), `EXDEV` (different filesystems), `EINVAL`
/// (e.g. XFS without `reflink=1`), `ENOTTY` (a filesystem without the ioctl).
pub(crate) fn reflink_unsupported(e: &io::Error) -> bool {
    matches!(Errno::from_io_error(e), Some(Errno::OPNOTSUPP | Errno::XDEV | Errno::INVAL | Errno::NOTTY))
}

/// Copies the image's data extents only, leaving its holes (and, with `skip_zero_blocks`,
/// all-zero 1 MiB blocks) as holes in the copy.
pub(crate) fn sparse(c: &mut Copying<'_>, skip_zero_blocks: bool) -> Result<()> {
    // The length first: every extent not written below stays a hole, the trailing one included.
    rustix::fs::ftruncate(c.dst, c.len).map_err(|e| c.write_error("set the length of", e))?;
    let mut in_kernel = !skip_zero_blocks;
    let mut buf = Vec::new();
    let mut pos = 0;
    c.step(0)?;
    while pos < c.len {
        let data = match rustix::fs::seek(c.src, SeekFrom::Data(pos)) {
            Ok(data) => data,
            // No data at or after `pos`: the rest is a hole.
            Err(Errno::NXIO) => break,
            Err(e) => return Err(c.read_error(e)),
        };
        if data >= c.len {
            break;
        }
        let hole = match rustix::fs::seek(c.src, SeekFrom::Hole(data)) {
            Ok(hole) => hole.min(c.len),
            Err(Errno::NXIO) => c.len,
            Err(e) => return Err(c.read_error(e)),
        };
        if hole <= data {
            // Only if the image changes under us; never loop on it.
            return Err(c.read_error(io::Error::other("the image changed while being copied")));
        }
        log::debug!("{}: data {data}..{hole}", c.src_path.display());
        let mut at = data;
        while at < hole {
            c.step(at)?;
            if in_kernel {
                match copy_range(c, at, (hole - at).min(CFR_CHUNK)) {
                    Ok(n) => {
                        at += n;
                        continue;
                    }
                    Err(CfrError::Unsupported(e)) => {
                        log::debug!("{}: copy_file_range: {e}; reading and writing", c.dest.display());
                        in_kernel = false;
                    }
                    Err(CfrError::Failed(e)) => return Err(e),
                }
            }
            // Up to the next block boundary, so zero blocks line up with the image's offsets.
            let end = ((at / BLOCK + 1) * BLOCK).min(hole);
            copy_block(c, at, end, skip_zero_blocks, &mut buf)?;
            at = end;
        }
        pos = hole;
        c.step(pos)?;
    }
    c.finish();
    Ok(())
}

/// Copies every byte of the image, zeros included, through a buffer.
pub(crate) fn plain(c: &mut Copying<'_>) -> Result<()> {
    let mut buf = Vec::new();
    let mut at = 0;
    while at < c.len {
        c.step(at)?;
        let end = (at + BLOCK).min(c.len);
        copy_block(c, at, end, false, &mut buf)?;
        at = end;
    }
    c.finish();
    Ok(())
}

/// Why `copy_file_range` did not copy.
enum CfrError {
    /// Not between these files: fall back to reading and writing.
    Unsupported(Errno),
    /// A real failure.
    Failed(Error),
}

/// One `copy_file_range` call from `at` for up to `len` bytes; how many it copied.
fn copy_range(c: &Copying<'_>, at: u64, len: u64) -> Result<u64, CfrError> {
    let (mut off_in, mut off_out) = (at, at);
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    match rustix::fs::copy_file_range(c.src, Some(&mut off_in), c.dst, Some(&mut off_out), len) {
        Ok(0) => Err(CfrError::Failed(c.read_error(io::Error::from(io::ErrorKind::UnexpectedEof)))),
        Ok(n) => Ok(n as u64),
        Err(e @ (Errno::XDEV | Errno::NOSYS | Errno::OPNOTSUPP | Errno::INVAL)) => Err(CfrError::Unsupported(e)),
        Err(e) => Err(CfrError::Failed(c.write_error("copy into", e))),
    }
}

/// Copies `start..end` (at most one [`BLOCK`]) through `buf`; an all-zero block is not written
/// when `skip_zeros` (the copy has a hole there already).
fn copy_block(c: &Copying<'_>, start: u64, end: u64, skip_zeros: bool, buf: &mut Vec<u8>) -> Result<()> {
    let n = usize::try_from(end - start).unwrap_or(usize::MAX);
    buf.resize(n, 0);
    let mut got = 0;
    while got < n {
        match rustix::io::pread(c.src, &mut buf[got..], start + got as u64) {
            Ok(0) => return Err(c.read_error(io::Error::from(io::ErrorKind::UnexpectedEof))),
            Ok(k) => got += k,
            Err(Errno::INTR) => {}
            Err(e) => return Err(c.read_error(e)),
        }
    }
    if skip_zeros && is_zero(buf) {
        return Ok(());
    }
    let mut put = 0;
    while put < n {
        match rustix::io::pwrite(c.dst, &buf[put..], start + put as u64) {
            Ok(0) => return Err(c.write_error("write", io::Error::from(io::ErrorKind::WriteZero))),
            Ok(k) => put += k,
            Err(Errno::INTR) => {}
            Err(e) => return Err(c.write_error("write", e)),
        }
    }
    Ok(())
}

/// Whether every byte is zero. ORs 512-byte runs so the inner loop vectorises.
fn is_zero(buf: &[u8]) -> bool {
    buf.chunks(512).all(|run| run.iter().fold(0u8, |acc, b| acc | b) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{MIB, allocated, random_bytes, sparse_file};

    /// Runs `f` over a copy of `src` into a new file; returns the copy's path.
    fn copy_with(src: &Path, dir: &Path, f: impl FnOnce(&mut Copying<'_>) -> Result<()>) -> std::path::PathBuf {
        let dst_path = dir.join("copy");
        let src_file = File::open(src).unwrap();
        let dst = File::create(&dst_path).unwrap();
        let len = src_file.metadata().unwrap().len();
        let cancel = AtomicBool::new(false);
        let mut reports = Vec::new();
        let mut progress = |p: Progress| reports.push(p);
        f(&mut Copying::new((&src_file, src), (&dst, &dst_path), len, &mut progress, &cancel)).unwrap();
        assert_eq!(reports.last(), Some(&Progress { done: len, total: len }), "a final report");
        dst_path
    }

    #[test]
    fn sparse_copy_keeps_holes_at_start_middle_and_end() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        // 64 MiB: hole 0..8, data 8..16, hole 16..40, data 40..44, hole 44..64.
        let extents = [(8 * MIB, 8 * MIB), (40 * MIB, 4 * MIB)];
        sparse_file(&src, 64 * MIB, &extents, 1);
        let data: u64 = extents.iter().map(|e| e.1).sum();
        for skip in [false, true] {
            let sub = tempfile::tempdir_in(dir.path()).unwrap();
            let copy = copy_with(&src, sub.path(), |c| sparse(c, skip));
            assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&src).unwrap(), "same content (skip {skip})");
            let got = allocated(&copy);
            // The data, give or take a few filesystem blocks of metadata.
            assert!(
                got >= data && got <= data + MIB / 4,
                "copy allocates {got} bytes for {data} of data (skip {skip})"
            );
        }
    }

    #[test]
    fn zero_blocks_become_holes_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        // 16 MiB all written: 4 MiB random, 8 MiB of written zeros, 4 MiB random.
        let mut content = random_bytes(16 * MIB as usize, 7);
        content[4 * MIB as usize..12 * MIB as usize].fill(0);
        std::fs::write(&src, &content).unwrap();
        assert!(allocated(&src) >= 16 * MIB, "the source is fully allocated");

        let sub = tempfile::tempdir_in(dir.path()).unwrap();
        let skipped = copy_with(&src, sub.path(), |c| sparse(c, true));
        assert_eq!(std::fs::read(&skipped).unwrap(), content);
        let got = allocated(&skipped);
        assert!(got <= 8 * MIB + MIB / 4, "zero blocks skipped: {got} bytes allocated");

        let sub = tempfile::tempdir_in(dir.path()).unwrap();
        let kept = copy_with(&src, sub.path(), |c| sparse(c, false));
        assert_eq!(std::fs::read(&kept).unwrap(), content);
        assert!(allocated(&kept) >= 16 * MIB, "without skipping, the zeros are copied");
    }

    #[test]
    fn plain_copy_allocates_everything() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        sparse_file(&src, 16 * MIB, &[(MIB, MIB)], 3);
        let copy = copy_with(&src, dir.path(), plain);
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&src).unwrap());
        assert!(allocated(&copy) >= 16 * MIB, "holes written as zeros");
    }

    #[test]
    fn progress_comes_at_least_every_step() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        // 300 MiB: six data extents of 44 MiB, 4 MiB holes between them, a 16 MiB hole at the end.
        let extents: Vec<(u64, u64)> = (0..6).map(|i| (i * 48 * MIB, 44 * MIB)).collect();
        sparse_file(&src, 300 * MIB, &extents, 5);
        for method in ["sparse", "plain"] {
            let sub = tempfile::tempdir_in(dir.path()).unwrap();
            let src_file = File::open(&src).unwrap();
            let dst_path = sub.path().join("copy");
            let dst = File::create(&dst_path).unwrap();
            let cancel = AtomicBool::new(false);
            let mut reports = Vec::new();
            let mut progress = |p: Progress| reports.push(p);
            let mut c = Copying::new((&src_file, &src), (&dst, &dst_path), 300 * MIB, &mut progress, &cancel);
            match method {
                "sparse" => sparse(&mut c, false).unwrap(),
                _ => plain(&mut c).unwrap(),
            }
            // A report comes once a step has passed, at the end of a chunk (8 MiB at most) or
            // of a hole (16 MiB at most here).
            let slack = if method == "sparse" { CFR_CHUNK + 16 * MIB } else { BLOCK };
            let mut last = 0;
            for p in &reports {
                assert_eq!(p.total, 300 * MIB);
                assert!(p.done > last, "{method}: progress goes forward");
                assert!(p.done - last <= PROGRESS_STEP + slack, "{method}: {} after {last}", p.done);
                last = p.done;
            }
            assert!(reports.len() >= 4, "{method}: {} reports for 300 MiB", reports.len());
            assert_eq!(reports.last().map(|p| p.done), Some(300 * MIB));
        }
    }
}
