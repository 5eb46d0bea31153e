//! Saving one domain to an image, so that nothing a crash, a watchdog or a failure cuts short
//! is ever taken for a saved domain:
//!
//! 1. whatever was at the image's path goes (the save replaces it, and an old image must never
//!    meet the new record), and the save is recorded (`saving`, with the image's path) before
//!    it starts;
//! 2. libxl writes the image to `<image>.partial` while the guest is suspended (HALTING);
//! 3. complete: its record goes beside the image's path, the image is renamed into place (both
//!    durably), then the domain is destroyed: saved. Failed or aborted: the partial image is
//!    gone and the guest runs again, resumed.
//!
//! A daemon killed anywhere in between leaves a `saving` record that the next daemon finishes
//! from (`adopt.rs`): an image in place with its record is a finished save; anything else is
//! undone and the guest resumed.
//!
//! Host-stop's watchdog (`STOP_MAXWAIT`) bounds a save. When it fires with `DESTROY_LEFT` (the
//! default) the save is aborted (libxl kills its save helper) and the domain destroyed, not
//! saved; unless the save completed just as it fired, and then it is saved. With
//! `DESTROY_LEFT=false` the save is left to finish. Either way the report says what happened,
//! and it is one of two things: a complete image with its record, or no image.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use crossbeam_channel::Sender;
use xenctl::DomId;

use super::operator::{Report, Waiter, Want};
use super::{AfterDeath, Domain, Phase, Source};
use crate::hypervisor::SaveInProgress;
use crate::images::{self, ImageKind, ImageRecord};
use crate::records::Step;
use crate::{files, hoststate};

/// Host-stop's watchdog over a save.
pub(super) struct SaveWatch<'a> {
    /// When it fires.
    pub deadline: Instant,
    /// STOP_MAXWAIT, for the report.
    pub maxwait: Duration,
    /// Destroy the domain when it fires (else the save is left to finish).
    pub destroy_left: bool,
    /// Where host-stop's report goes.
    pub reply: &'a Sender<Report>,
    /// When host-stop asked.
    pub since: Instant,
}

/// How a save that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SaveEnd {
    /// Saved: the image and its record are in place, and the domain is being destroyed.
    Saved,
    /// The watchdog fired first; host-stop has its report (or a waiter that will give it).
    Watchdog,
}

impl Domain {
    /// Saves the running domain to `path`, with its record beside it. `Err`: not saved, and
    /// the domain runs on.
    pub(super) fn save_to(&mut self, path: &Path, watch: Option<SaveWatch<'_>>) -> Result<SaveEnd, String> {
        let Some(domid) = self.running_domid() else {
            return Err("not running".into());
        };
        let spec = self.spec().ok_or("its config cannot be used, so the image could not be matched to it")?;
        let (xl_config, libxl_json) =
            images::recorded_config(&spec).map_err(|e| format!("its config cannot be recorded: {e}"))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let record = ImageRecord {
            uuid: self.uuid,
            name: spec.name.clone(),
            xl_config,
            libxl_json,
            saved_at: Utc::now(),
            boot_id: hoststate::boot_id(&self.shared.paths, self.uuid),
            kind: if self.source == Source::Transient { ImageKind::Transient } else { ImageKind::Managed },
        };
        let partial = xenctl::partial_path(path);
        for old in [partial.as_path(), path, &images::record_path(path)] {
            files::remove_durable(old).map_err(|e| format!("cannot replace {}: {e}", old.display()))?;
        }
        self.record(Step::Saving { domid: domid.get(), image: path.to_path_buf() })
            .map_err(|e| format!("cannot record the save in {}: {e}", self.shared.paths.run_dir.display()))?;
        self.phase = self.awaiting_death(domid, AfterDeath::Saved);
        self.publish();
        let mut job = match self.shared.hv.begin_save(domid, &partial) {
            Ok(job) => job,
            Err(e) => {
                self.save_undone(domid);
                return Err(format!("save failed: {e}"));
            }
        };
        let ended = match &watch {
            None => job.wait(),
            Some(w) => match job.wait_until(w.deadline) {
                Some(end) => end,
                None => {
                    self.save_overran(domid, path, record, job, w);
                    return Ok(SaveEnd::Watchdog);
                }
            },
        };
        match ended {
            Ok(()) => self.commit_save(domid, path, record).map(|()| SaveEnd::Saved),
            Err(e) => {
                self.save_undone(domid);
                Err(format!("save failed: {e}"))
            }
        }
    }

    /// The save did not happen: the guest runs on (libxl resumed it).
    fn save_undone(&mut self, domid: DomId) {
        self.phase = Phase::Running { domid, paused: false };
        self.record_or_log(Step::Running { domid: domid.get() });
    }

    /// The image at `<path>.partial` is complete: its record beside `path`, the image renamed
    /// into place, then the domain destroyed. `Err`: not saved, the guest resumed.
    fn commit_save(&mut self, domid: DomId, path: &Path, mut record: ImageRecord) -> Result<(), String> {
        let partial = xenctl::partial_path(path);
        record.saved_at = Utc::now();
        let placed = images::write_record(path, &record)
            .and_then(|()| std::fs::rename(&partial, path))
            .and_then(|()| files::sync_dir(path.parent().unwrap_or(Path::new("."))));
        if let Err(e) = placed {
            let _ = files::remove_durable(&partial);
            let _ = files::remove_durable(&images::record_path(path));
            if let Err(r) = self.shared.hv.resume(domid) {
                log::error!("{}: resuming domain {domid} after its save could not be put in place: {r}", self.name());
            }
            self.save_undone(domid);
            return Err(format!("save failed: cannot put the image in place at {}: {e}", path.display()));
        }
        log::info!("{}: saved to {}", self.name(), path.display());
        // Recorded before `gone`, whose `on_saved` records a save without a place only when
        // none is recorded yet.
        if let Err(e) = hoststate::set_saved(&self.shared.paths, self.uuid, Some(Some(path))) {
            log::error!("{}: cannot record where it was saved: {e}", self.name());
        }
        self.destroy(domid, AfterDeath::Saved);
        Ok(())
    }

    /// Host-stop's watchdog fired during the save to `path`.
    fn save_overran(
        &mut self,
        domid: DomId,
        path: &Path,
        record: ImageRecord,
        mut job: Box<dyn SaveInProgress>,
        w: &SaveWatch<'_>,
    ) {
        let what =
            format!("its save to {} did not finish within {} s (STOP_MAXWAIT)", path.display(), w.maxwait.as_secs());
        if !w.destroy_left {
            log::warn!("{}: {what}; left to finish (DESTROY_LEFT=false)", self.name());
            self.report(w.reply, w.since, false, format!("{what}; left to finish (DESTROY_LEFT=false)"));
            // Nothing else can be done with the domain meanwhile: wait for the save, as xl would.
            match job.wait() {
                Ok(()) => {
                    if let Err(e) = self.commit_save(domid, path, record) {
                        log::error!("{}: {e}", self.name());
                    }
                }
                Err(e) => {
                    log::error!("{}: save failed after the watchdog fired: {e}", self.name());
                    self.save_undone(domid);
                }
            }
            return;
        }
        log::warn!("{}: {what}; aborting it", self.name());
        job.abort();
        let aborted = job.wait_until(super::after(self.settings().destroy_timeout));
        if let Some(Ok(())) = aborted {
            // It completed just as the watchdog fired: a whole image, so it is saved.
            match self.commit_save(domid, path, record) {
                Ok(()) => {
                    let verb = format!("saved to {} (as the watchdog fired)", path.display());
                    self.waiters
                        .push(Waiter { host_stop: true, ..Waiter::new(Want::Gone, w.reply.clone(), w.since, verb) });
                    return;
                }
                Err(e) => log::error!("{}: {e}", self.name()),
            }
        } else if aborted.is_none() {
            // libxl did not stop it. Wait for its end here (nothing else can be done with the
            // domain meanwhile), then throw away whatever it wrote: the report says not saved.
            log::error!("{}: {what}, and it did not stop when aborted; waiting for it", self.name());
            let _ = job.wait();
            let _ = files::remove_durable(&xenctl::partial_path(path));
        }
        // Not saved (aborted, failed, or thrown away): no image; the guest is destroyed.
        self.save_undone(domid);
        self.halt_note = Some(format!(": {what}; not saved"));
        self.destroy(domid, AfterDeath::Halted);
        self.waiters.push(Waiter {
            ok: false,
            host_stop: true,
            ..Waiter::new(Want::Gone, w.reply.clone(), w.since, "destroyed")
        });
    }
}
