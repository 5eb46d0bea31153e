//! Where the daemon's files live, and how they are written.
//!
//! Every file another program reads (status, generated xl configs) is written to a temporary
//! file in the same directory, flushed, and renamed over the target, so a reader sees the old
//! file or the new one, never half of one. The temporary file is created exclusively under an
//! unpredictable name, never through a symlink. Persistent state (the state directory, image
//! records) is written durably: the directory is flushed after the rename, and after a removal,
//! so that a power loss cannot bring an old file back. Files that may hold a secret (a VNC
//! password) are written with mode 0600.
//!
//! What the daemon records of each domain's life, for the next daemon, is in `records.rs`.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use uuid::Uuid;

/// The daemon's directories.
#[derive(Debug, Clone)]
pub struct Paths {
    /// EVE's zedmanager output: `DomainConfig/<uuid>.json` lives under it.
    pub config_dir: PathBuf,
    /// EVE's domainmgr output: `DomainStatus/`, `xen/`.
    pub status_dir: PathBuf,
    /// Private state: the lock and the lifecycle markers (tmpfs: forgotten at reboot).
    pub run_dir: PathBuf,
    /// Persistent state: what operators said (kept across reboots).
    pub state_dir: PathBuf,
}

impl Paths {
    /// All four directories under one root, named as on an EVE node: `zedmanager/`,
    /// `domainmgr/`, `run/` and `state/`. For a self-contained instance: tests, benchmarks, a
    /// second daemon beside the system's.
    pub fn under(root: &Path) -> Paths {
        Paths {
            config_dir: root.join("zedmanager"),
            status_dir: root.join("domainmgr"),
            run_dir: root.join("run"),
            state_dir: root.join("state"),
        }
    }

    /// `<config-dir>/DomainConfig`.
    pub fn domain_config_dir(&self) -> PathBuf {
        self.config_dir.join("DomainConfig")
    }
    /// `<status-dir>/DomainStatus`.
    pub fn domain_status_dir(&self) -> PathBuf {
        self.status_dir.join("DomainStatus")
    }
    /// `<status-dir>/DomainStatus/<key>.json`.
    pub fn status_file(&self, key: &str) -> PathBuf {
        self.domain_status_dir().join(format!("{key}.json"))
    }
    /// `<status-dir>/xen`, where the xl configs we asked libxl for are.
    pub fn xl_cfg_dir(&self) -> PathBuf {
        self.status_dir.join("xen")
    }
    /// `<status-dir>/xen/xen<AppNum>.cfg`, the xl config we asked libxl for an EVE domain
    /// (unless another domain has that name: see `domain/bookkeeping.rs`).
    pub fn xl_cfg_file(&self, app_num: i64) -> PathBuf {
        self.xl_cfg_dir().join(format!("xen{app_num}.cfg"))
    }
    /// `<run-dir>/domainmgrd.lock`.
    pub fn lock_file(&self) -> PathBuf {
        self.run_dir.join("domainmgrd.lock")
    }
    fn stopped_marker(&self, uuid: Uuid) -> PathBuf {
        self.state_dir.join("stopped").join(uuid.to_string())
    }

    /// Whether an operator stopped the domain of `uuid` (it stays stopped, across host reboots,
    /// until started again).
    pub fn operator_stopped(&self, uuid: Uuid) -> bool {
        self.stopped_marker(uuid).exists()
    }

    /// Records or forgets an operator's stop.
    pub fn set_operator_stopped(&self, uuid: Uuid, stopped: bool) -> io::Result<()> {
        let marker = self.stopped_marker(uuid);
        if stopped {
            write_durable_in_new_dir(&marker, format!("stopped by an operator at {}\n", chrono::Utc::now()).as_bytes())
        } else {
            remove_durable(&marker)
        }
    }

    /// Creates every directory the daemon writes or watches. The status directory is an EVE
    /// agent's directory, created 0700 as EVE creates it (its checkpoints, xl configs and
    /// sockets are root's); one that exists is left as it is.
    pub fn create_all(&self) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(self.domain_status_dir())?;
        for dir in [self.domain_config_dir(), self.xl_cfg_dir()] {
            std::fs::create_dir_all(&dir)?;
        }
        crate::records::create_dir(self)
    }
}

/// Writes `bytes` to `path` atomically (a temporary file in the same directory, fsync,
/// rename), mode 0644: for files on tmpfs that other programs read (statuses).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file(path, bytes, 0o644, false)
}

/// [`write_atomic`] with mode 0600: for files that may hold a secret.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file(path, bytes, 0o600, false)
}

/// [`write_private`], and the directory flushed after the rename: for persistent state, which
/// must not come back older after a power loss.
pub fn write_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file(path, bytes, 0o600, true)
}

/// [`write_durable`], creating the file's directory first if need be.
pub fn write_durable_in_new_dir(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_durable(path, bytes)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    let dir = parent(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Unpredictable and created exclusively: nobody can plant a file or symlink there first.
    let tmp = dir.join(format!(".{name}.tmp-{}", Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if durable { sync_dir(dir) } else { Ok(()) }
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Flushes a directory, so that the renames and removals made in it last.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(test)]
    DIR_SYNCS.with(|n| n.set(n.get() + 1));
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
thread_local! {
    /// How many directories this thread flushed (tests of durability count them).
    pub(crate) static DIR_SYNCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many directory flushes `f` made (for tests).
#[cfg(test)]
pub(crate) fn dir_syncs_in(f: impl FnOnce()) -> usize {
    let before = DIR_SYNCS.with(|n| n.get());
    f();
    DIR_SYNCS.with(|n| n.get()) - before
}

/// Removes a file durably (the directory flushed after); a missing file is fine.
pub fn remove_durable(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(parent(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes a file; a missing file is fine.
/// The identity (device, inode) of the file at `path`, not following a symlink: a server keeps
/// its socket's, to remove on drop that socket and nothing put at the path since.
pub fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

pub fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.json");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(write_atomic(&dir.path().join("missing/x"), b"").is_err());
        remove_if_exists(&f).unwrap();
        remove_if_exists(&f).unwrap();
    }

    #[test]
    fn temp_files_are_exclusive_and_modes_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.json");
        write_private(&f, b"secret").unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        write_durable(&f, b"kept").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"kept");
        // Symlinks planted where predictable temp names would be (pid and counter) are never
        // written through.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        for n in 0..1000 {
            let name = format!(".s.json.tmp-{}-{n}", std::process::id());
            std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
        }
        write_atomic(&f, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
        remove_durable(&f).unwrap();
        remove_durable(&f).unwrap();
        assert!(!f.exists());
    }

    #[test]
    fn operator_stops_persist() {
        let dir = tempfile::tempdir().unwrap();
        let p = Paths::under(dir.path());
        p.create_all().unwrap();
        let u = Uuid::new_v4();
        assert!(!p.operator_stopped(u));
        assert_eq!(dir_syncs_in(|| p.set_operator_stopped(u, true).unwrap()), 1, "durable");
        assert!(p.operator_stopped(u));
        assert_eq!(dir_syncs_in(|| p.set_operator_stopped(u, false).unwrap()), 1, "durable");
        assert!(!p.operator_stopped(u));
    }
}
