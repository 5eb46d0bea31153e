//! Where an image's files live: a directory (an OCI layout, or a `docker save` archive that
//! was extracted) or a tar file holding the same tree. [`Store`] maps archive member names to
//! readers, bounded by the member's size; [`Hashing`] counts and hashes what passes through it
//! so a blob is verified as it is read, never trusted first and checked later.
//!
//! Member names come from the image itself (`manifest.json` of a docker archive names its
//! layers), so every name is normalised and refused if it would leave the image's root.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::Error;

/// How many links (symbolic or hard) between members of an image tar are followed.
const MAX_LINK_HOPS: usize = 8;

/// A member of an image tar: its data, or a link to another member.
#[derive(Debug, Clone)]
pub(crate) enum Member {
    /// Data at this offset of the tar file.
    Data { offset: u64, size: u64 },
    /// A link to another member, by its normalised name.
    Link(String),
}

/// The files of an image, by their names inside the image.
#[derive(Debug)]
pub(crate) enum Store {
    /// An image laid out in a directory.
    Dir(PathBuf),
    /// An image in a tar file: where each member's data starts and how long it is.
    Tar { file: PathBuf, members: HashMap<String, Member> },
}

impl Store {
    /// Opens the image at `path`: a directory or an (uncompressed) tar file.
    pub(crate) fn open(path: &Path) -> Result<Store, Error> {
        let read_err = |what: &str, source| Error::Read { image: path.to_owned(), what: what.to_owned(), source };
        let meta = std::fs::metadata(path).map_err(|e| read_err("the image", e))?;
        if meta.is_dir() {
            return Ok(Store::Dir(path.to_owned()));
        }
        let mut file = File::open(path).map_err(|e| read_err("the image", e))?;
        let mut magic = [0u8; 4];
        let got = read_up_to(&mut file, &mut magic).map_err(|e| read_err("the image", e))?;
        if matches!(sniff(&magic[..got]), Compression::Gzip | Compression::Zstd) {
            return Err(Error::Format {
                image: path.to_owned(),
                why: "the archive is compressed: decompress it first".to_owned(),
            });
        }
        file.seek(SeekFrom::Start(0)).map_err(|e| read_err("the image", e))?;
        let mut members = HashMap::new();
        let mut archive = tar::Archive::new(file);
        let entries = archive.entries_with_seek().map_err(|e| read_err("the archive", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| read_err("the archive", e))?;
            let Some(name) = normalise(&entry.path_bytes()) else { continue };
            let kind = entry.header().entry_type();
            let member = if kind.is_symlink() || kind.is_hard_link() {
                let Some(target) = entry.link_name_bytes() else { continue };
                let target = if kind.is_symlink() {
                    // A symbolic link is relative to the directory holding it.
                    let dir = name.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
                    resolve_relative(dir, &target)
                } else {
                    normalise(&target)
                };
                let Some(target) = target else { continue };
                Member::Link(target)
            } else if kind.is_file() || kind.is_contiguous() {
                Member::Data { offset: entry.raw_file_position(), size: entry.size() }
            } else {
                continue;
            };
            members.insert(name, member);
        }
        Ok(Store::Tar { file: path.to_owned(), members })
    }

    /// Whether the image has a member of this name.
    pub(crate) fn has(&self, name: &str) -> bool {
        match self {
            Store::Dir(dir) => normalise(name.as_bytes()).is_some_and(|name| dir.join(name).is_file()),
            Store::Tar { members, .. } => self.find(members, name).is_some(),
        }
    }

    /// Follows links from `name` to a member's data: (offset, size).
    fn find(&self, members: &HashMap<String, Member>, name: &str) -> Option<(u64, u64)> {
        let mut name = normalise(name.as_bytes())?;
        for _ in 0..=MAX_LINK_HOPS {
            match members.get(&name)? {
                Member::Data { offset, size } => return Some((*offset, *size)),
                Member::Link(target) => name = target.clone(),
            }
        }
        None
    }

    /// Opens a member for reading: a reader that stops at the member's end, and its size.
    pub(crate) fn open_member(&self, name: &str) -> io::Result<(io::Take<File>, u64)> {
        let not_found = || io::Error::new(io::ErrorKind::NotFound, "no such file in the image");
        match self {
            Store::Dir(dir) => {
                let rel = normalise(name.as_bytes()).ok_or_else(not_found)?;
                let file = File::open(dir.join(rel))?;
                let size = file.metadata()?.len();
                Ok((file.take(size), size))
            }
            Store::Tar { file, members } => {
                let (offset, size) = self.find(members, name).ok_or_else(not_found)?;
                let mut file = File::open(file)?;
                file.seek(SeekFrom::Start(offset))?;
                Ok((file.take(size), size))
            }
        }
    }

    /// Reads a small member (an index, a manifest, a config) whole, at most `max` bytes, and
    /// checks it against `expect` when given. `blob` names it in errors.
    pub(crate) fn read_small(
        &self,
        image: &Path,
        name: &str,
        blob: &str,
        expect: Option<&Expect>,
        max: u64,
    ) -> Result<Vec<u8>, Error> {
        let read_err = |source| Error::Read { image: image.to_owned(), what: blob.to_owned(), source };
        let (reader, size) = self.open_member(name).map_err(read_err)?;
        if size > max {
            return Err(Error::Format { image: image.to_owned(), why: format!("{blob} is larger than {max} bytes") });
        }
        let mut hashing = Hashing::new(reader);
        let mut data = Vec::new();
        hashing.read_to_end(&mut data).map_err(read_err)?;
        if let Some(expect) = expect {
            hashing.check(image, blob, expect)?;
        }
        Ok(data)
    }
}

/// What a blob must be: its sha256 digest (`sha256:<hex>`) and, when known, its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expect {
    /// `sha256:` and 64 lowercase hex digits.
    pub(crate) digest: String,
    /// The size in bytes, when the image says it.
    pub(crate) size: Option<u64>,
}

/// A reader that hashes (sha256) and counts everything read through it.
pub(crate) struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R> std::fmt::Debug for Hashing<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hashing").field("count", &self.count).finish_non_exhaustive()
    }
}

impl<R: Read> Hashing<R> {
    pub(crate) fn new(inner: R) -> Self {
        Hashing { inner, hasher: Sha256::new(), count: 0 }
    }

    /// Reads the rest of the stream (a tar reader stops at its end-of-archive blocks, a
    /// decompressor at its end mark; the digest covers every byte).
    pub(crate) fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }

    /// Checks what was read against `expect`; call after [`Hashing::drain`].
    pub(crate) fn check(&self, image: &Path, blob: &str, expect: &Expect) -> Result<(), Error> {
        if let Some(size) = expect.size
            && size != self.count
        {
            return Err(Error::Size {
                image: image.to_owned(),
                blob: blob.to_owned(),
                expected: size,
                actual: self.count,
            });
        }
        let actual = format!("sha256:{}", hex(&self.hasher.clone().finalize()));
        if actual != expect.digest {
            return Err(Error::Digest { image: image.to_owned(), blob: blob.to_owned(), actual });
        }
        Ok(())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let data = buf.get(..n).unwrap_or_default();
        self.hasher.update(data);
        self.count += n as u64;
        Ok(n)
    }
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// How a layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// A plain tar.
    None,
    /// gzip (one or more members).
    Gzip,
    /// zstd (one or more frames).
    Zstd,
}

/// The compression that `head` (the first bytes of a stream) starts with.
pub(crate) fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while let Some(rest) = buf.get_mut(got..) {
        if rest.is_empty() {
            break;
        }
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A member name as `a/b/c`: leading `/` and `./` stripped, empty and `.` components
/// dropped; `None` for a name with `..`, one that is not UTF-8, or the root itself.
pub(crate) fn normalise(name: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(name).ok()?;
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    if parts.is_empty() { None } else { Some(parts.join("/")) }
}

/// `target` of a symbolic link in directory `dir`, as a member name; `None` if it leaves the
/// image's root.
fn resolve_relative(dir: &str, target: &[u8]) -> Option<String> {
    let target = std::str::from_utf8(target).ok()?;
    let mut parts: Vec<&str> =
        if target.starts_with('/') { Vec::new() } else { dir.split('/').filter(|p| !p.is_empty()).collect() };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    if parts.is_empty() { None } else { Some(parts.join("/")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_kept_inside() {
        assert_eq!(normalise(b"./blobs//sha256/ab").as_deref(), Some("blobs/sha256/ab"));
        assert_eq!(normalise(b"/manifest.json").as_deref(), Some("manifest.json"));
        assert_eq!(normalise(b"a/../b"), None);
        assert_eq!(normalise(b"./"), None);
        assert_eq!(resolve_relative("abc", b"../blobs/sha256/ff").as_deref(), Some("blobs/sha256/ff"));
        assert_eq!(resolve_relative("abc", b"../../etc/passwd"), None);
        assert_eq!(resolve_relative("", b"../x"), None);
    }

    #[test]
    fn blobs_are_checked_for_size_and_digest() {
        let abc = Expect {
            digest: "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_owned(),
            size: Some(3),
        };
        let mut hashing = Hashing::new(&b"abc"[..]);
        hashing.drain().unwrap();
        hashing.check(Path::new("img"), "blob", &abc).unwrap();
        let long = Expect { size: Some(4), ..abc.clone() };
        assert!(matches!(hashing.check(Path::new("img"), "blob", &long), Err(Error::Size { actual: 3, .. })));
        let mut other = Hashing::new(&b"abd"[..]);
        other.drain().unwrap();
        assert!(matches!(other.check(Path::new("img"), "blob", &abc), Err(Error::Digest { .. })));
    }

    #[test]
    fn tar_members_are_found_through_links() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("img.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        let mut h = tar::Header::new_ustar();
        h.set_size(5);
        b.append_data(&mut h, "./blobs/sha256/aa", &b"hello"[..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "id/layer.tar", "../blobs/sha256/aa").unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "evil", "../../etc/passwd").unwrap();
        b.into_inner().unwrap();

        let store = Store::open(&path).unwrap();
        let (mut reader, size) = store.open_member("id/layer.tar").unwrap();
        let mut data = String::new();
        reader.read_to_string(&mut data).unwrap();
        assert_eq!((data.as_str(), size), ("hello", 5));
        assert!(store.has("blobs/sha256/aa"));
        assert!(!store.has("evil"));
        assert!(store.open_member("../img.tar").is_err());
    }

    #[test]
    fn compression_is_sniffed() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(sniff(b"usr/"), Compression::None);
        assert_eq!(sniff(b""), Compression::None);
    }
}
