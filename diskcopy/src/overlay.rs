//! qcow2 overlays on a shared image: made by `qemu-img create -f qcow2 -F <fmt> -b <image>`, the
//! reference tool (present in dom0 with qemu), and read back by parsing the qcow2 header, which is
//! simple enough to need no library: magic, version, where the backing file's name is, the
//! virtual size, and the backing format in a header extension.
//!
//! Both paths given to `qemu-img` are made absolute: the backing name is stored as given and
//! resolved against the overlay's directory later, and an absolute path is also never read as a
//! protocol prefix (`nbd:`, `json:`) by qemu.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{DiskFormat, Error, Result};

/// The qcow2 magic: `QFI\xfb`.
const MAGIC: [u8; 4] = *b"QFI\xfb";
/// The header extension holding the backing file's format.
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// qemu's limit on the backing file name's length.
const MAX_BACKING_NAME: u32 = 1023;
/// Incompatible feature bit 2: the data lives in an external data file.
const INCOMPAT_DATA_FILE: u64 = 1 << 2;

/// Creates the overlay `path` on `backing` (of format `format`); its virtual size is the
/// backing image's. `path` must exist (the caller's empty temporary file) or be creatable.
pub(crate) fn create(qemu_img: &Path, backing: &Path, format: DiskFormat, path: &Path) -> Result<()> {
    let backing = std::path::absolute(backing).map_err(|e| Error::io("find", backing, e))?;
    let target = std::path::absolute(path).map_err(|e| Error::io("find", path, e))?;
    log::debug!("{} create -f qcow2 -F {format} -b {} {}", qemu_img.display(), backing.display(), target.display());
    let out = Command::new(qemu_img)
        .env("LC_ALL", "C")
        .args(["create", "-q", "-f", "qcow2", "-F", format.as_str(), "-b"])
        .arg(&backing)
        .arg(&target)
        .output()
        .map_err(|e| Error::io("run", qemu_img, e))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let status = out.status.to_string();
    if stderr.contains("No space left on device") || stderr.contains("Disk quota exceeded") {
        let source = std::io::Error::other(format!("qemu-img: {stderr}"));
        return Err(Error::NoSpace { path: path.to_owned(), source });
    }
    Err(Error::QemuImg { path: path.to_owned(), backing, status, stderr })
}

/// What a qcow2 header says, as far as this crate needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qcow2Header {
    /// 2 or 3.
    pub version: u32,
    /// The disk's size as the guest sees it.
    pub virtual_size: u64,
    /// The backing file's name as stored (absolute for overlays made here).
    pub backing_file: Option<PathBuf>,
    /// The backing file's format, if the header records it (`raw`, `qcow2`).
    pub backing_format: Option<String>,
}

/// The backing file an overlay reads from, as named in its qcow2 header; `None` for a qcow2
/// image without one.
pub fn overlay_backing(path: &Path) -> Result<Option<PathBuf>> {
    Ok(read_qcow2_header(path)?.backing_file)
}

/// Reads the qcow2 header of `path`. Fails with [`Error::NotQcow2`] for anything else, for
/// versions other than 2 and 3, for names outside the file, and for an external data file (a
/// second file the image would read from, which no overlay made here has).
pub fn read_qcow2_header(path: &Path) -> Result<Qcow2Header> {
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let len = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
    let bad = |why: String| Error::NotQcow2 { path: path.to_owned(), why };
    let mut fixed = [0u8; 104];
    let head = read_at(&file, path, &mut fixed, 0)?;
    if head < 72 || fixed[..4] != MAGIC {
        return Err(bad("no qcow2 magic".into()));
    }
    let version = be32(&fixed, 4);
    if version != 2 && version != 3 {
        return Err(bad(format!("version {version}")));
    }
    let name_offset = be64(&fixed, 8);
    let name_len = be32(&fixed, 16);
    let cluster_bits = be32(&fixed, 20);
    let virtual_size = be64(&fixed, 24);
    if !(9..=21).contains(&cluster_bits) {
        return Err(bad(format!("cluster bits {cluster_bits}")));
    }
    // Header extensions follow the header, within the first cluster.
    let ext_start = if version == 2 {
        72
    } else {
        if head < 104 {
            return Err(bad("version 3 header is truncated".into()));
        }
        if be64(&fixed, 72) & INCOMPAT_DATA_FILE != 0 {
            return Err(bad("it uses an external data file".into()));
        }
        u64::from(be32(&fixed, 100))
    };

    let backing_file = if name_offset == 0 {
        None
    } else {
        if name_len == 0 || name_len > MAX_BACKING_NAME || name_offset.saturating_add(u64::from(name_len)) > len {
            return Err(bad(format!("backing file name of {name_len} bytes at {name_offset}")));
        }
        let mut name = vec![0u8; name_len as usize];
        if read_at(&file, path, &mut name, name_offset)? != name.len() {
            return Err(bad("backing file name is truncated".into()));
        }
        if name.contains(&0) {
            return Err(bad("backing file name contains a NUL byte".into()));
        }
        Some(PathBuf::from(OsString::from_vec(name)))
    };

    let cluster = 1u64 << cluster_bits;
    let backing_format = backing_format(&file, path, ext_start, cluster.min(len))?;
    Ok(Qcow2Header { version, virtual_size, backing_file, backing_format })
}

/// Walks the header extensions from `start` to `end` for the backing format.
fn backing_format(file: &File, path: &Path, start: u64, end: u64) -> Result<Option<String>> {
    let bad = |why: &str| Error::NotQcow2 { path: path.to_owned(), why: why.to_owned() };
    let mut at = start;
    while at + 8 <= end {
        let mut head = [0u8; 8];
        if read_at(file, path, &mut head, at)? != 8 {
            return Err(bad("header extension is truncated"));
        }
        let (kind, size) = (be32(&head, 0), u64::from(be32(&head, 4)));
        if kind == 0 {
            return Ok(None);
        }
        let data = at + 8;
        if data + size > end {
            return Err(bad("header extension runs past the first cluster"));
        }
        if kind == EXT_BACKING_FORMAT {
            let mut name = vec![0u8; size as usize];
            if read_at(file, path, &mut name, data)? != name.len() {
                return Err(bad("backing format is truncated"));
            }
            return match String::from_utf8(name) {
                Ok(name) => Ok(Some(name)),
                Err(_) => Err(bad("backing format is not UTF-8")),
            };
        }
        at = data + size.div_ceil(8) * 8;
    }
    Ok(None)
}

/// Reads as much of `buf` as the file has at `offset`.
fn read_at(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", path, e)),
        }
    }
    Ok(got)
}

/// The big-endian u32 at `at` (within a buffer already checked to be long enough).
fn be32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_be_bytes(b)
}

/// The big-endian u64 at `at`.
fn be64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{MIB, have, sparse_file};

    /// `qemu-img info --output=json` of a file.
    fn qemu_info(path: &Path) -> serde_json::Value {
        let out = Command::new("qemu-img").args(["info", "--output=json"]).arg(path).output().unwrap();
        assert!(out.status.success(), "qemu-img info: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    #[test]
    fn header_of_an_overlay_matches_qemu_img_info() {
        if !have("qemu-img") {
            println!("SKIPPED header_of_an_overlay_matches_qemu_img_info: qemu-img not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // A raw image of an odd size, then a qcow2 image made from it to back a second overlay.
        let raw = dir.path().join("base.raw");
        sparse_file(&raw, 40 * MIB + 512, &[(MIB, MIB)], 9);
        let qcow = dir.path().join("base.qcow2");
        let out = Command::new("qemu-img").args(["convert", "-O", "qcow2"]).arg(&raw).arg(&qcow).output().unwrap();
        assert!(out.status.success());

        for (base, format) in [(&raw, DiskFormat::Raw), (&qcow, DiskFormat::Qcow2)] {
            // ':' in the name: an absolute path is never taken for a protocol.
            let overlay = dir.path().join(format!("over:{format}.qcow2"));
            create(Path::new("qemu-img"), base, format, &overlay).unwrap();
            let header = read_qcow2_header(&overlay).unwrap();
            assert_eq!(header.backing_file.as_deref(), Some(base.as_path()));
            assert_eq!(overlay_backing(&overlay).unwrap().as_deref(), Some(base.as_path()));
            assert_eq!(header.backing_format.as_deref(), Some(format.as_str()));
            assert_eq!(header.virtual_size, 40 * MIB + 512);

            let info = qemu_info(&overlay);
            assert_eq!(info["format"], "qcow2");
            assert_eq!(info["backing-filename"], base.to_str().unwrap());
            assert_eq!(info["backing-filename-format"], format.as_str());
            assert_eq!(info["virtual-size"], header.virtual_size);
        }
    }

    #[test]
    fn qemu_img_failure_carries_its_message() {
        if !have("qemu-img") {
            println!("SKIPPED qemu_img_failure_carries_its_message: qemu-img not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-image");
        match create(Path::new("qemu-img"), &missing, DiskFormat::Raw, &dir.path().join("o.qcow2")) {
            Err(Error::QemuImg { stderr, backing, .. }) => {
                assert_eq!(backing, missing);
                assert!(stderr.contains("No such file"), "stderr: {stderr}");
            }
            other => panic!("expected a qemu-img error, got {other:?}"),
        }
    }

    #[test]
    fn non_qcow2_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, vec![0u8; 4096]).unwrap();
        assert!(matches!(read_qcow2_header(&raw), Err(Error::NotQcow2 { .. })));
        std::fs::write(&raw, b"QFI\xfb\0\0\0\x03").unwrap();
        assert!(matches!(read_qcow2_header(&raw), Err(Error::NotQcow2 { .. })), "truncated header");

        // A version 2 header whose backing name points past the end of the file.
        let mut h = vec![0u8; 72];
        h[..4].copy_from_slice(&MAGIC);
        h[4..8].copy_from_slice(&2u32.to_be_bytes());
        h[8..16].copy_from_slice(&4096u64.to_be_bytes());
        h[16..20].copy_from_slice(&10u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        std::fs::write(&raw, &h).unwrap();
        assert!(matches!(read_qcow2_header(&raw), Err(Error::NotQcow2 { .. })), "name outside the file");
        // The same, with the name inside.
        h.extend_from_slice(&[0u8; 4096 - 72]);
        h.extend_from_slice(b"/img/base1");
        std::fs::write(&raw, &h).unwrap();
        assert_eq!(overlay_backing(&raw).unwrap(), Some(PathBuf::from("/img/base1")));
        // And with anything but the magic.
        h[3] = 0xfa;
        std::fs::write(&raw, &h).unwrap();
        assert!(matches!(read_qcow2_header(&raw), Err(Error::NotQcow2 { .. })), "wrong magic");
    }
}
