//! What host boot and shutdown must remember across daemon restarts and host reboots, kept in
//! the persistent state directory (beside the operators' stops, see [`Paths::operator_stopped`]):
//!
//! - `host-stopped`: a host-stop ran and no host-start since. While it is there nothing boots or
//!   restarts on its own, not even after the daemon restarts (by hand, or systemd's
//!   `Restart=on-failure`), so a domain saved at host-stop is not booted afresh from its disks
//!   while its image waits in the save directory.
//! - `boot/<uuid>`: a random id drawn at every fresh boot of the domain (a create from its
//!   config, never a restore). A save image records the id of the run it was taken from; an
//!   image whose id is not the current one was taken before the domain last booted afresh, so
//!   its memory no longer matches its disks, and it is stale. Random ids and not times: a clock
//!   that is wrong at boot (no RTC, NTP not yet synced) cannot make an old image look new.
//! - `saved/<uuid>`: the domain was saved (by domainctl save, by host-stop, or outside
//!   domainmgrd) and must not boot afresh on its own until an operator starts it, it is
//!   restored, or host-start decides (see `domain/operator.rs`). Holds the image's path, if known.

use std::io;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::files::{self, Paths};

fn host_stopped_file(paths: &Paths) -> PathBuf {
    paths.state_dir.join("host-stopped")
}

fn boot_file(paths: &Paths, uuid: Uuid) -> PathBuf {
    paths.state_dir.join("boot").join(uuid.to_string())
}

fn saved_file(paths: &Paths, uuid: Uuid) -> PathBuf {
    paths.state_dir.join("saved").join(uuid.to_string())
}

fn write(path: &Path, text: &str) -> io::Result<()> {
    files::write_durable_in_new_dir(path, text.as_bytes())
}

/// Whether a host-stop is in effect (it ran, and no host-start since).
pub fn host_stopped(paths: &Paths) -> bool {
    host_stopped_file(paths).exists()
}

/// Records that a host-stop is in effect, or (at host-start) that it no longer is.
pub fn set_host_stopped(paths: &Paths, stopped: bool) -> io::Result<()> {
    let path = host_stopped_file(paths);
    if stopped {
        write(&path, &format!("host-stop at {}; no domain boots on its own until host-start\n", chrono::Utc::now()))
    } else {
        files::remove_durable(&path)
    }
}

/// The id of the domain's current run from a fresh boot, if one was recorded.
pub fn boot_id(paths: &Paths, uuid: Uuid) -> Option<Uuid> {
    std::fs::read_to_string(boot_file(paths, uuid)).ok()?.trim().parse().ok()
}

/// Records a fresh boot of the domain: a new run id, which makes every image saved before stale.
pub fn record_fresh_boot(paths: &Paths, uuid: Uuid) -> io::Result<Uuid> {
    let id = Uuid::new_v4();
    write(&boot_file(paths, uuid), &format!("{id}\n"))?;
    Ok(id)
}

/// Forgets the domain's run id (a transient domain that is gone and has no image to judge).
pub fn forget_boot(paths: &Paths, uuid: Uuid) -> io::Result<()> {
    files::remove_durable(&boot_file(paths, uuid))
}

/// Whether the domain was saved and waits to be restored or started, and where its image is
/// (`Some(None)`: saved, image unknown, e.g. by `xl save` outside domainmgrd).
pub fn saved(paths: &Paths, uuid: Uuid) -> Option<Option<PathBuf>> {
    let text = std::fs::read_to_string(saved_file(paths, uuid)).ok()?;
    let image = text.lines().find_map(|l| l.strip_prefix("image ")).map(PathBuf::from);
    Some(image)
}

/// Records that the domain was saved (to `image`, when known), or forgets it (`None`).
pub fn set_saved(paths: &Paths, uuid: Uuid, saved: Option<Option<&Path>>) -> io::Result<()> {
    let path = saved_file(paths, uuid);
    match saved {
        None => files::remove_durable(&path),
        Some(image) => {
            let mut text = format!("saved at {}\n", chrono::Utc::now());
            if let Some(image) = image {
                text.push_str(&format!("image {}\n", image.display()));
            }
            write(&path, &text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let p = Paths::under(dir.path());
        let u = Uuid::new_v4();
        use files::dir_syncs_in as syncs;
        assert_eq!(syncs(|| set_host_stopped(&p, true).unwrap()), 1);
        assert_eq!(syncs(|| set_host_stopped(&p, false).unwrap()), 1);
        assert_eq!(
            syncs(|| {
                record_fresh_boot(&p, u).unwrap();
            }),
            1
        );
        assert_eq!(syncs(|| forget_boot(&p, u).unwrap()), 1);
        assert_eq!(syncs(|| set_saved(&p, u, Some(None)).unwrap()), 1);
        assert_eq!(syncs(|| set_saved(&p, u, None).unwrap()), 1);
    }

    #[test]
    fn host_stop_boot_ids_and_saves_persist_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let p = Paths::under(dir.path());
        let u = Uuid::new_v4();
        assert!(!host_stopped(&p));
        set_host_stopped(&p, true).unwrap();
        assert!(host_stopped(&p));
        set_host_stopped(&p, false).unwrap();
        set_host_stopped(&p, false).unwrap();
        assert!(!host_stopped(&p));

        assert_eq!(boot_id(&p, u), None);
        let one = record_fresh_boot(&p, u).unwrap();
        assert_eq!(boot_id(&p, u), Some(one));
        let two = record_fresh_boot(&p, u).unwrap();
        assert_ne!(one, two, "every fresh boot has its own id");
        assert_eq!(boot_id(&p, u), Some(two));
        forget_boot(&p, u).unwrap();
        assert_eq!(boot_id(&p, u), None);

        assert_eq!(saved(&p, u), None);
        set_saved(&p, u, Some(Some(Path::new("/var/lib/xen/save/web")))).unwrap();
        assert_eq!(saved(&p, u), Some(Some(PathBuf::from("/var/lib/xen/save/web"))));
        set_saved(&p, u, Some(None)).unwrap();
        assert_eq!(saved(&p, u), Some(None));
        set_saved(&p, u, None).unwrap();
        assert_eq!(saved(&p, u), None);
    }
}
