//! Writable disks from shared images: EVE's domainmgr gave each guest its own copy of a
//! read-write disk whose image sits in the shared, read-only image store
//! (`/persist/img/<image sha>-<app uuid>.qcow2`). [`DiskCopies::apply`] does the same for any
//! domain before its create: each writable, non-CD-ROM disk whose image is a file under the
//! store gets `<persist>/img/<image>-<uuid>.<ext>` in its place, made once (xen-diskcopy: a
//! reflink where the file system can, a qcow2 overlay on a qcow2 image, else a sparse copy)
//! and reused on every later boot and across daemon restarts; read-only disks use the image
//! in place. `<image>` is the image's directory name in EVE's verified layout
//! (`<store>/<sha256>/<file>`), else the file's name without its extension. The copy is made
//! on the domain's own thread, so other domains boot, stop and report meanwhile; its progress
//! goes to the domain's status ([`DiskCopyStatus`], `DiskCopies`, ours: EVE has no such
//! field) and log. A copy goes when its domain's config is deleted ([`DiskCopies::remove_for`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use uuid::Uuid;
use xen_diskcopy::{CopyRequest, Method, Strategy};
use xenctl::{DiskBackend, DiskFormat, DomainSpec};

/// How often a copy waiting for its rate looks at its cancel flag.
const CANCEL_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// EVE's verified images (its domainmgr's `appImg.obj/verified/<sha>/<file>`).
pub const EVE_IMAGE_STORE: &str = "/persist/downloads/appImg.obj/verified";
/// EVE's persistent partition: copies go to its `img/`.
pub const EVE_PERSIST: &str = "/persist";

/// Which way copies are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The fastest faithful one: a reflink where the file system can, an overlay on a qcow2
    /// image, else a sparse copy.
    Auto,
    /// That method, or the boot fails saying why it cannot be used.
    Only(Method),
}

impl Choice {
    /// `auto`, `reflink`, `overlay`, `sparse` or `plain`.
    pub fn from_word(word: &str) -> Option<Choice> {
        if word == "auto" { Some(Choice::Auto) } else { Method::from_word(word).map(Choice::Only) }
    }
}

/// Where the shared images are and where the copies go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskCopies {
    /// The shared, read-only image store.
    pub store: PathBuf,
    /// The copies' directory, `<persist>/img`.
    pub dir: PathBuf,
    /// How copies are made.
    pub choice: Choice,
    /// At most this many MiB a second per copy (`None`: as fast as the disks go), so a large
    /// copy leaves the running guests some of the disk's bandwidth. It is kept at each
    /// progress report (every 64 MiB): the copy waits when it is ahead.
    pub rate_mib: Option<u64>,
}

/// A domain's copy of a shared image, as its status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DiskCopyStatus {
    /// The guest's device (`xvda`).
    #[serde(rename = "Vdev")]
    pub vdev: String,
    /// The shared image.
    #[serde(rename = "Image")]
    pub image: String,
    /// The domain's copy.
    #[serde(rename = "Copy")]
    pub copy: String,
    /// How it was made (`reflink`, `overlay`, `sparse`); empty while it is being made.
    #[serde(rename = "Method")]
    pub method: String,
    /// Bytes of the image copied so far.
    #[serde(rename = "Done")]
    pub done: u64,
    /// The image's size.
    #[serde(rename = "Total")]
    pub total: u64,
    /// It existed and was used as it was.
    #[serde(rename = "Reused")]
    pub reused: bool,
}

impl DiskCopies {
    /// EVE's: its verified images, copies in `/persist/img`, made the fastest faithful way.
    pub fn eve() -> DiskCopies {
        DiskCopies {
            store: EVE_IMAGE_STORE.into(),
            dir: Path::new(EVE_PERSIST).join("img"),
            choice: Choice::Auto,
            rate_mib: None,
        }
    }

    /// The shared image of `disk` if it gets a copy (it is under `store`, the store's
    /// canonical path), with the name its copy takes it by.
    fn source_of(store: &Path, disk: &xenctl::DiskSpec) -> Option<(PathBuf, String)> {
        if disk.readonly || disk.cdrom {
            return None;
        }
        let target = std::fs::canonicalize(disk.target.as_deref()?).ok()?;
        let rel = target.strip_prefix(store).ok()?;
        if !std::fs::metadata(&target).is_ok_and(|m| m.is_file()) {
            return None;
        }
        let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
        let is_sha = first.len() == 64 && first.bytes().all(|b| b.is_ascii_hexdigit()) && rel.components().count() > 1;
        let name = if is_sha {
            first
        } else {
            target.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
        };
        let name: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
        Some((target, name))
    }

    /// Gives each writable disk of `spec` whose image is in the store the domain's own copy
    /// (made now if it is not there), its format the copy's. `progress` hears of each copy as
    /// it goes. The copies, for the status; an error names the disk and the image.
    pub fn apply(
        &self,
        uuid: Uuid,
        spec: &mut DomainSpec,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&[DiskCopyStatus]),
    ) -> Result<Vec<DiskCopyStatus>, String> {
        let mut done: Vec<DiskCopyStatus> = Vec::new();
        // No store (not there, or not mounted yet): every disk uses its image in place.
        let Ok(store) = std::fs::canonicalize(&self.store) else { return Ok(done) };
        for disk in spec.disks.iter_mut() {
            let Some((source, image)) = Self::source_of(&store, disk) else { continue };
            let source_format = match disk.format {
                DiskFormat::Qcow2 => xen_diskcopy::DiskFormat::Qcow2,
                _ => xen_diskcopy::DiskFormat::Raw,
            };
            let fail = |e: &str| format!("disk {} ({}): own copy: {e}", disk.vdev, source.display());
            let strategy = match self.choice {
                // An overlay where the disk is qcow2 already: the same back end serves it.
                Choice::Auto => Strategy::Auto { allow_overlay: disk.format == DiskFormat::Qcow2 },
                Choice::Only(Method::Overlay) if !matches!(disk.format, DiskFormat::Raw | DiskFormat::Qcow2) => {
                    return Err(fail("an overlay needs a raw or qcow2 image"));
                }
                Choice::Only(m) => Strategy::Only(m),
            };
            let ext = match (self.choice, source.extension()) {
                (Choice::Only(Method::Overlay), _) => "qcow2".to_string(),
                (_, Some(ext)) => ext.to_string_lossy().into_owned(),
                (_, None) => source_format.as_str().to_string(),
            };
            let dest = xen_diskcopy::copy_path(&self.dir, &image, &uuid.to_string(), &ext)
                .map_err(|e| fail(&crate::error_chain(&e)))?;
            let request = CopyRequest { strategy, ..CopyRequest::new(&source, source_format, &dest) };
            let mut status = DiskCopyStatus {
                vdev: disk.vdev.clone(),
                image: source.display().to_string(),
                copy: dest.display().to_string(),
                ..DiskCopyStatus::default()
            };
            let started = std::time::Instant::now();
            let outcome = {
                let mut report = |p: xen_diskcopy::Progress| {
                    status.done = p.done;
                    status.total = p.total;
                    let mut all = done.clone();
                    all.push(status.clone());
                    progress(&all);
                    if let Some(rate) = self.rate_mib.filter(|r| *r > 0) {
                        let due = std::time::Duration::from_secs_f64(p.done as f64 / (rate as f64 * 1048576.0));
                        // Ahead of the rate: wait, a little at a time, unless cut short.
                        while started.elapsed() < due && !cancel.load(Ordering::SeqCst) {
                            std::thread::sleep(due.saturating_sub(started.elapsed()).min(CANCEL_POLL));
                        }
                    }
                };
                xen_diskcopy::ensure_copy(&request, &mut report, cancel).map_err(|e| fail(&crate::error_chain(&e)))?
            };
            status.reused = outcome.reused;
            status.method = outcome.method.map(|m| m.as_str().to_string()).unwrap_or_default();
            status.total = outcome.size;
            status.done = outcome.size;
            disk.target = Some(dest.display().to_string());
            if outcome.format == xen_diskcopy::DiskFormat::Qcow2 && disk.format != DiskFormat::Qcow2 {
                disk.format = DiskFormat::Qcow2;
                // blkback serves raw only: the copy goes to whichever back end libxl picks.
                disk.backend = DiskBackend::Auto;
            }
            done.push(status);
        }
        Ok(done)
    }

    /// Removes `uuid`'s copies (its config was deleted); the ones removed.
    pub fn remove_for(&self, uuid: Uuid) -> Vec<PathBuf> {
        let mark = format!("-{uuid}.");
        let copies = match xen_diskcopy::list_copies(&self.dir) {
            Ok(c) => c,
            Err(e) => {
                log::error!("cannot list the disk copies in {}: {e}", self.dir.display());
                return Vec::new();
            }
        };
        let mut removed = Vec::new();
        for c in copies {
            let ours = c.path.file_name().is_some_and(|n| n.to_string_lossy().contains(&mark));
            if !ours {
                continue;
            }
            match xen_diskcopy::remove_copy(&c.path) {
                Ok(()) => removed.push(c.path),
                Err(e) => log::error!("cannot remove disk copy {}: {e}", c.path.display()),
            }
        }
        removed
    }

    /// The copies there are.
    pub fn list(&self) -> Result<Vec<xen_diskcopy::CopyInfo>, String> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        xen_diskcopy::list_copies(&self.dir).map_err(|e| e.to_string())
    }

    /// At the daemon's start: what a killed daemon left half made is removed.
    pub fn remove_partials(&self) {
        if !self.dir.exists() {
            return;
        }
        match xen_diskcopy::remove_partials(&self.dir) {
            Ok(gone) => {
                for p in gone {
                    log::warn!("removed {}: a disk copy left unfinished by an earlier run", p.display());
                }
            }
            Err(e) => log::error!("cannot clean {}: {e}", self.dir.display()),
        }
    }
}

#[cfg(test)]
mod tests;
