//! `diskcopy-bench [SCRATCH_DIR]`: how long each method takes to make a domain's copy of a 1 GiB
//! image, and what the copy takes on disk. Two images: "sparse" (256 MiB of random data in eight
//! 32 MiB extents, holes between) and "full" (the same bytes with the holes written as zeros, so
//! every block is allocated). Each method runs three times on the scratch directory's filesystem
//! (and, as root with `mkfs.xfs`, on an XFS with reflink on a loop device made in it); the median
//! is printed. As root, the page cache is dropped before each run so the image is read from disk.
//! Every run ends with the copy fsynced, as `ensure_copy` does.

#![forbid(unsafe_code)]

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use xen_diskcopy::{CopyRequest, DiskFormat, Error, Method, Strategy, copy_path, ensure_copy, remove_copy};

const MIB: u64 = 1 << 20;
const IMAGE: u64 = 1024 * MIB;
const RUNS: usize = 3;

/// One way of making a copy, as the table names it.
struct Variant {
    label: &'static str,
    method: Method,
    skip_zero_blocks: bool,
}

const VARIANTS: [Variant; 5] = [
    Variant { label: "reflink", method: Method::Reflink, skip_zero_blocks: false },
    Variant { label: "overlay", method: Method::Overlay, skip_zero_blocks: false },
    Variant { label: "sparse (copy_file_range)", method: Method::Sparse, skip_zero_blocks: false },
    Variant { label: "sparse + zero-skip", method: Method::Sparse, skip_zero_blocks: true },
    Variant { label: "plain", method: Method::Plain, skip_zero_blocks: false },
];

fn main() -> ExitCode {
    let scratch = std::env::args_os().nth(1).map_or_else(|| PathBuf::from("/var/tmp/diskcopy-bench"), PathBuf::from);
    match run(&scratch) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("diskcopy-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(scratch: &Path) -> Result<(), String> {
    let root = rustix::process::geteuid().is_root();
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let store = scratch.join("store");
    std::fs::create_dir_all(&store).map_err(|e| e.to_string())?;
    let sparse = store.join("sparse.raw");
    let full = store.join("full.raw");
    make_images(&sparse, &full).map_err(|e| format!("making the images: {e}"))?;
    if !root {
        println!("note: not root, so the page cache is not dropped between runs and XFS is skipped");
    }
    println!(
        "{:<5} {:<6} {:<25} {:>10} {:>10} {:>10} {:>11} {:>9}",
        "fs", "image", "method", "median", "min", "max", "allocated", "fs used"
    );
    bench_fs(fs_name(scratch), scratch, &[("sparse", &sparse), ("full", &full)], root, false)?;

    if root && have("mkfs.xfs") {
        let xfs = Xfs::make(scratch, 4096 * MIB)?;
        // Bring the images in without filling their holes: the crate's own sparse and plain copies.
        let xsparse = xfs.dir().join("sparse.raw");
        let xfull = xfs.dir().join("full.raw");
        copy_into(&sparse, &xsparse, Method::Sparse)?;
        copy_into(&full, &xfull, Method::Plain)?;
        bench_fs("xfs", xfs.dir(), &[("sparse", &xsparse), ("full", &xfull)], root, true)?;
    } else {
        println!("xfs   -      SKIPPED: needs root and mkfs.xfs (apt-get install xfsprogs)");
    }
    let _ = std::fs::remove_dir_all(&store);
    Ok(())
}

/// Benchmarks every method on one filesystem. On an `isolated` one (nothing else writes to it)
/// the space used is also measured with `statvfs`: the truth for reflinks, whose `st_blocks`
/// counts the shared extents, and for XFS's speculative preallocation past the end of a file.
fn bench_fs(fs: &str, dir: &Path, images: &[(&str, &Path)], drop_caches: bool, isolated: bool) -> Result<(), String> {
    let img = dir.join("img");
    for (image, source) in images {
        for v in &VARIANTS {
            let dest = copy_path(&img, image, "bench", "img").map_err(|e| e.to_string())?;
            let mut req = CopyRequest::new(*source, DiskFormat::Raw, &dest);
            req.strategy = Strategy::Only(v.method);
            req.skip_zero_blocks = v.skip_zero_blocks;
            let mut times = Vec::new();
            let mut space = String::new();
            for _ in 0..RUNS {
                remove_copy(&dest).map_err(|e| e.to_string())?;
                rustix::fs::sync();
                if drop_caches {
                    std::fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| format!("drop_caches: {e}"))?;
                }
                let free_before = free(dir);
                let start = Instant::now();
                match ensure_copy(&req, &mut |_| {}, &AtomicBool::new(false)) {
                    Ok(out) => {
                        times.push(start.elapsed());
                        rustix::fs::sync();
                        let used = free_before.saturating_sub(free(dir));
                        let used = if isolated { size(used) } else { "-".to_owned() };
                        space = format!("{:>11} {used:>9}", size(out.allocated));
                    }
                    Err(Error::Unsupported { source, .. }) => {
                        space = format!("unsupported: {source}");
                        break;
                    }
                    Err(e) => return Err(format!("{fs} {image} {}: {e}", v.label)),
                }
            }
            remove_copy(&dest).map_err(|e| e.to_string())?;
            let row = if times.is_empty() {
                format!("{fs:<5} {image:<6} {:<25} {:>10} {:>10} {:>10}   {space}", v.label, "-", "-", "-")
            } else {
                times.sort();
                format!(
                    "{fs:<5} {image:<6} {:<25} {:>10} {:>10} {:>10} {space}",
                    v.label,
                    ms(times[times.len() / 2]),
                    ms(times[0]),
                    ms(times[times.len() - 1])
                )
            };
            println!("{row}");
        }
    }
    Ok(())
}

/// Milliseconds, for the table.
fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The type of `dir`'s filesystem, for the table.
fn fs_name(dir: &Path) -> &'static str {
    match rustix::fs::statfs(dir).map(|s| s.f_type) {
        Ok(0xEF53) => "ext4",
        Ok(0x5846_5342) => "xfs",
        Ok(0x9123_683E) => "btrfs",
        Ok(0x0102_1994) => "tmpfs",
        _ => "other",
    }
}

/// Bytes in MiB, or KiB below one MiB.
fn size(bytes: u64) -> String {
    if bytes < MIB { format!("{} KiB", bytes / 1024) } else { format!("{} MiB", bytes / MIB) }
}

/// Free bytes on `dir`'s filesystem.
fn free(dir: &Path) -> u64 {
    rustix::fs::statvfs(dir).map_or(0, |s| s.f_bavail * s.f_frsize)
}

/// The two 1 GiB images, unless they are there already.
fn make_images(sparse: &Path, full: &Path) -> std::io::Result<()> {
    let extents: Vec<u64> = (0..8).map(|i| i * 128 * MIB + 16 * MIB).collect();
    for (path, fill_holes) in [(sparse, false), (full, true)] {
        if std::fs::metadata(path).is_ok_and(|m| m.len() == IMAGE) {
            continue;
        }
        let f = std::fs::File::create(path)?;
        f.set_len(IMAGE)?;
        let zeros = vec![0u8; MIB as usize];
        for block in 0..IMAGE / MIB {
            let at = block * MIB;
            if extents.iter().any(|&e| at >= e && at < e + 32 * MIB) {
                f.write_all_at(&xen_diskcopy::random_bytes(MIB as usize, block + 1), at)?;
            } else if fill_holes {
                f.write_all_at(&zeros, at)?;
            }
        }
        f.sync_all()?;
        let m = f.metadata()?;
        println!("image {}: {} MiB, {} MiB allocated", path.display(), m.len() / MIB, m.blocks() * 512 / MIB);
    }
    Ok(())
}

/// Copies an image to `dest` with the crate (keeping holes), replacing what is there.
fn copy_into(source: &Path, dest: &Path, method: Method) -> Result<(), String> {
    let _ = std::fs::remove_file(dest);
    let mut req = CopyRequest::new(source, DiskFormat::Raw, dest);
    req.strategy = Strategy::Only(method);
    req.skip_zero_blocks = false;
    ensure_copy(&req, &mut |_| {}, &AtomicBool::new(false)).map(drop).map_err(|e| e.to_string())
}

/// Whether a program can be run.
fn have(program: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().is_ok_and(|o| o.status.success())
}

/// Runs a command; its stderr if it fails.
fn sh(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// An XFS with reflink on a loop device over a sparse file in the scratch directory; unmounted
/// and removed on drop.
struct Xfs {
    image: PathBuf,
    mount: PathBuf,
}

impl Xfs {
    fn make(scratch: &Path, size: u64) -> Result<Xfs, String> {
        let image = scratch.join("xfs.img");
        let mount = scratch.join("xfs");
        let _ = sh("umount", &[&mount.to_string_lossy()]);
        let f = std::fs::File::create(&image).map_err(|e| e.to_string())?;
        f.set_len(size).map_err(|e| e.to_string())?;
        drop(f);
        std::fs::create_dir_all(&mount).map_err(|e| e.to_string())?;
        sh("mkfs.xfs", &["-q", "-f", "-m", "reflink=1", &image.to_string_lossy()])?;
        sh("mount", &["-o", "loop", &image.to_string_lossy(), &mount.to_string_lossy()])?;
        Ok(Xfs { image, mount })
    }

    fn dir(&self) -> &Path {
        &self.mount
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        if sh("umount", &[&self.mount.to_string_lossy()]).is_err() {
            let _ = sh("umount", &["-l", &self.mount.to_string_lossy()]);
        }
        let _ = std::fs::remove_dir(&self.mount);
        let _ = std::fs::remove_file(&self.image);
    }
}
