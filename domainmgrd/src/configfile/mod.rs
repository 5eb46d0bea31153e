//! Config files from outside the daemon, which it must survive whatever they hold: reading them
//! ([`read`]: regular files only, never blocking on a FIFO or a device, at most a cap per kind of
//! file, read once) and parsing xl.cfg bytes ([`XlParser`]) in a child process,
//! `domainmgrd-xlparse`, with memory, CPU-time and wall-clock limits, so that libxlutil aborting
//! (it asserts on a NUL byte inside a quoted string) or blowing up (`key += [...]` copies the
//! list at every line: a 1.6 MB file took 14 GB) ends that child, not the daemon, and comes back
//! as an error naming the file. [`parse_xl_config`] is what the child runs, in-process (also for
//! fuzzing); it refuses up front what is known to abort libxlutil, which is defence in depth:
//! the child is what makes a parse safe.
//!
//! Caps: an xl.cfg file may have [`XL_CFG`]'s 1 MiB (real ones are a few KiB; the largest, with
//! every disk, PCI device and comment, stay far below 100 KiB), an EVE DomainConfig
//! [`DOMAIN_CONFIG`]'s 8 MiB (EVE bounds a "large" field such as the cloud-init user data to
//! 1 MiB, and the rest of a config is a few KiB; JSON is parsed in-process by serde, whose memory
//! stays a small multiple of the input). The child's limits are in [`LIMITS`].

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

mod xlchild;
mod xlhelper;

pub use xlchild::{XlParseError, XlParser, default_helper};
pub use xlhelper::{
    DRY_RUN_ARG, HELPER_NAME, LIMITS, Limits, MEMORY_ENV, helper_main, parse_xl_config, parse_xl_config_on,
};

/// A kind of config file: what it is called in errors and how large it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKind {
    /// What it is, for errors: "an xl.cfg file".
    pub what: &'static str,
    /// The most bytes it may have.
    pub max_bytes: u64,
}

/// xl.cfg files: the autostart directory's, `domainctl create`'s.
pub const XL_CFG: FileKind = FileKind { what: "an xl.cfg file", max_bytes: 1 << 20 };

/// EVE DomainConfig JSON files (and `domainctl create` of one).
pub const DOMAIN_CONFIG: FileKind = FileKind { what: "an EVE DomainConfig file", max_bytes: 8 << 20 };

/// The record beside a save image (`<image>.domainmgr.json`): the domain's xl.cfg text and a
/// few fields, so a few KiB; `domainctl restore` takes any path.
pub const IMAGE_RECORD: FileKind = FileKind { what: "a save image's record", max_bytes: 4 << 20 };

/// Why a config file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening, checking or reading it failed.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is a directory, FIFO, socket or device.
    #[error("{}: not a regular file but a {kind}", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// It is larger than its kind may be.
    #[error("{}: {size} bytes, more than the {} {what} may have", path.display(), Size(*max))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least; it may have grown while read).
        size: u64,
        /// Its kind's cap.
        max: u64,
        /// Its kind.
        what: &'static str,
    },
}

impl ReadError {
    /// Whether the file does not exist (then it is gone, not broken).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// A size in bytes as people say it: "1 MiB", "512 KiB", "100 bytes".
#[derive(Debug, Clone, Copy)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n >= 1 << 20 && n % (1 << 20) == 0 => write!(f, "{} MiB", n >> 20),
            n if n >= 1 << 10 && n % (1 << 10) == 0 => write!(f, "{} KiB", n >> 10),
            n => write!(f, "{n} bytes"),
        }
    }
}

/// Reads a whole config file of `kind`, once: a regular file (or a symlink to one: autostart
/// directories are symlink farms) of at most `kind.max_bytes`.
///
/// It is checked with `stat` before it is opened, so a device is not even opened, and with
/// `fstat` on the open file, which is what is read; it is opened with `O_NONBLOCK`, so a FIFO
/// or device put in its place meanwhile cannot block the read. (A file on a hung network
/// mount still blocks in the kernel: callers that must never block read on another thread.)
pub fn read(path: &Path, kind: &FileKind) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io { path: path.to_path_buf(), source };
    check(path, &std::fs::metadata(path).map_err(io)?, kind)?;
    let file = std::fs::File::options()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32)
        .open(path)
        .map_err(io)?;
    check(path, &file.metadata().map_err(io)?, kind)?;
    let mut bytes = Vec::new();
    file.take(kind.max_bytes + 1).read_to_end(&mut bytes).map_err(io)?;
    let size = bytes.len() as u64;
    if size > kind.max_bytes {
        return Err(ReadError::TooLarge { path: path.to_path_buf(), size, max: kind.max_bytes, what: kind.what });
    }
    Ok(bytes)
}

fn check(path: &Path, meta: &std::fs::Metadata, kind: &FileKind) -> Result<(), ReadError> {
    let t = meta.file_type();
    let not = |kind| Err(ReadError::NotRegular { path: path.to_path_buf(), kind });
    if t.is_dir() {
        return not("directory");
    } else if t.is_fifo() {
        return not("FIFO");
    } else if t.is_socket() {
        return not("socket");
    } else if t.is_block_device() {
        return not("block device");
    } else if t.is_char_device() {
        return not("character device");
    } else if !t.is_file() {
        return not("special file");
    }
    if meta.len() > kind.max_bytes {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            max: kind.max_bytes,
            what: kind.what,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    const SMALL: FileKind = FileKind { what: "a test file", max_bytes: 16 };

    #[test]
    fn a_regular_file_and_a_symlink_to_one_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.cfg");
        std::fs::write(&file, "name = 'a'\n").unwrap();
        assert_eq!(read(&file, &SMALL).unwrap(), b"name = 'a'\n");
        let link = dir.path().join("link.cfg");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read(&link, &SMALL).unwrap(), b"name = 'a'\n");
        // Exactly the cap is fine.
        std::fs::write(&file, [b'#'; 16]).unwrap();
        assert_eq!(read(&link, &SMALL).unwrap().len(), 16);
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.cfg");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        let started = Instant::now();
        let e = read(&fifo, &SMALL).unwrap_err();
        assert_eq!(e.to_string(), format!("{}: not a regular file but a FIFO", fifo.display()));
        // Also behind a symlink. (No writer ever opens it: a blocking open would never return.)
        let link = dir.path().join("link.cfg");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        assert!(read(&link, &SMALL).unwrap_err().to_string().ends_with("not a regular file but a FIFO"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn directories_devices_and_oversize_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path(), &SMALL).unwrap_err();
        assert_eq!(e.to_string(), format!("{}: not a regular file but a directory", dir.path().display()));
        let e = read(Path::new("/dev/null"), &SMALL).unwrap_err();
        assert_eq!(e.to_string(), "/dev/null: not a regular file but a character device");

        let big = dir.path().join("big.cfg");
        std::fs::write(&big, [b'#'; 17]).unwrap();
        let e = read(&big, &SMALL).unwrap_err();
        assert_eq!(e.to_string(), format!("{}: 17 bytes, more than the 16 bytes a test file may have", big.display()));
        std::fs::write(&big, vec![b'#'; (1 << 20) + 1]).unwrap();
        let e = read(&big, &XL_CFG).unwrap_err();
        assert!(e.to_string().ends_with("1048577 bytes, more than the 1 MiB an xl.cfg file may have"), "{e}");
    }

    #[test]
    fn a_missing_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(&dir.path().join("gone.json"), &DOMAIN_CONFIG).unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(
            crate::error_chain(&e),
            format!("cannot read {}: No such file or directory (os error 2)", dir.path().join("gone.json").display())
        );
        // A dangling symlink is a missing file too.
        let link = dir.path().join("dangling.json");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        assert!(read(&link, &DOMAIN_CONFIG).unwrap_err().is_not_found());
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(Size(1 << 20).to_string(), "1 MiB");
        assert_eq!(Size(8 << 20).to_string(), "8 MiB");
        assert_eq!(Size(512 << 10).to_string(), "512 KiB");
        assert_eq!(Size(1000).to_string(), "1000 bytes");
    }
}
