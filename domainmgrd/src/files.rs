//! Where the daemon's files live, atomic writes, and the per-domain lifecycle markers.
//!
//! Every file another program reads (status, generated xl configs) is written to a temporary
//! file in the same directory, flushed, and renamed over the target, so a reader sees the old
//! file or the new one, never half of one.
//!
//! Lifecycle markers (`<run-dir>/domains/<uuid>`) record what this daemon did to a domain, so a
//! restarted daemon knows it: `creating` is written *before* asking libxl to create the domain,
//! `running <domid>` once it has been unpaused. A domain found paused with a `creating` marker
//! was left half-created by a daemon that died mid-create and is destroyed and created again;
//! a domain without a marker was not created by us. The run directory is on tmpfs, like
//! xenstore: both forget everything at a host reboot, together with the domains.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;
use xenctl::DomId;

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
    /// `<status-dir>/xen/xen<AppNum>.cfg`, the xl config we asked libxl for.
    pub fn xl_cfg_file(&self, app_num: i64) -> PathBuf {
        self.status_dir.join("xen").join(format!("xen{app_num}.cfg"))
    }
    /// `<run-dir>/domainmgrd.lock`.
    pub fn lock_file(&self) -> PathBuf {
        self.run_dir.join("domainmgrd.lock")
    }
    fn markers_dir(&self) -> PathBuf {
        self.run_dir.join("domains")
    }
    fn marker(&self, uuid: Uuid) -> PathBuf {
        self.markers_dir().join(uuid.to_string())
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
            write_atomic_in_new_dir(&marker, format!("stopped by an operator at {}\n", chrono::Utc::now()).as_bytes())
        } else {
            remove_if_exists(&marker)
        }
    }

    /// Creates every directory the daemon writes or watches.
    pub fn create_all(&self) -> io::Result<()> {
        for dir in [self.domain_config_dir(), self.domain_status_dir(), self.status_dir.join("xen"), self.markers_dir()]
        {
            std::fs::create_dir_all(&dir)?;
        }
        Ok(())
    }

    /// What this daemon last did to the domain of `uuid`.
    pub fn read_marker(&self, uuid: Uuid) -> Option<Marker> {
        let text = std::fs::read_to_string(self.marker(uuid)).ok()?;
        let mut words = text.split_whitespace();
        match (words.next(), words.next().and_then(|d| d.parse().ok())) {
            (Some("creating"), _) => Some(Marker::Creating),
            (Some("running"), Some(domid)) => Some(Marker::Running(DomId::new(domid))),
            _ => None,
        }
    }

    /// Records a lifecycle step.
    pub fn write_marker(&self, uuid: Uuid, marker: Marker) -> io::Result<()> {
        let text = match marker {
            Marker::Creating => "creating\n".to_string(),
            Marker::Running(domid) => format!("running {domid}\n"),
        };
        write_atomic(&self.marker(uuid), text.as_bytes())
    }

    /// Forgets the domain of `uuid` (it is gone).
    pub fn clear_marker(&self, uuid: Uuid) -> io::Result<()> {
        remove_if_exists(&self.marker(uuid))
    }

    /// Every UUID with a marker.
    pub fn marked_uuids(&self) -> Vec<Uuid> {
        let Ok(entries) = std::fs::read_dir(self.markers_dir()) else {
            return Vec::new();
        };
        entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
    }
}

/// A lifecycle marker's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A create was started and had not finished (with the unpause).
    Creating,
    /// We created and unpaused this domain.
    Running(DomId),
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// [`write_atomic`], creating the file's directory first if need be.
pub fn write_atomic_in_new_dir(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_atomic(path, bytes)
}

/// Removes a file; a missing file is fine.
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
    fn markers_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = Paths::under(dir.path());
        p.create_all().unwrap();
        let u = Uuid::new_v4();
        assert_eq!(p.read_marker(u), None);
        p.write_marker(u, Marker::Creating).unwrap();
        assert_eq!(p.read_marker(u), Some(Marker::Creating));
        p.write_marker(u, Marker::Running(DomId::new(12))).unwrap();
        assert_eq!(p.read_marker(u), Some(Marker::Running(DomId::new(12))));
        assert_eq!(p.marked_uuids(), vec![u]);
        p.clear_marker(u).unwrap();
        assert_eq!(p.read_marker(u), None);

        assert!(!p.operator_stopped(u));
        p.set_operator_stopped(u, true).unwrap();
        assert!(p.operator_stopped(u));
        p.set_operator_stopped(u, false).unwrap();
        assert!(!p.operator_stopped(u));
    }
}
