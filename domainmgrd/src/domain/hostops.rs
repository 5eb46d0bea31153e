//! Restoring one domain, and its part of host boot and shutdown (saving is in `save.rs`).
//!
//! A restore is refused as stale unless the image's record matches the domain's current config
//! and the run it was taken from is still the domain's latest fresh boot (see `hoststate.rs`).
//!
//! At host-start, what an operator said wins over what the save directory holds: an image of a
//! domain an operator stopped is kept but not restored (they restore it, or start the domain
//! afresh, which makes the image stale), and an autostart domain an operator saved elsewhere
//! (`domainctl save NAME FILE`) waits for that image instead of booting afresh.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use xenctl::DomId;

use super::operator::{Permits, Report, Waiter, Want};
use super::save::{SaveEnd, SaveWatch};
use super::{AfterDeath, Domain, Phase, Retry, Source};
use crate::hoststate;
use crate::images;
use crate::records::Step;

/// Host-stop's settings for one domain.
#[derive(Debug, Clone, Copy)]
pub(super) struct HostStop<'a> {
    /// Save here instead of shutting down.
    pub save_dir: Option<&'a Path>,
    /// SysRq keys to send first.
    pub sysrq: &'a [char],
    /// The watchdog.
    pub maxwait: Duration,
    /// Destroy it if the watchdog fires.
    pub destroy_left: bool,
}

impl Domain {
    /// Whether `image` may be restored into this domain now: its config, for the restore.
    /// An error starting with "stale" means the image must never be restored.
    fn check_image(&self, image: &Path) -> Result<xenctl::DomainSpec, String> {
        if let Some(domid) = self.current_domid() {
            return Err(format!("stale: the domain runs already (domain {domid})"));
        }
        let spec = self.spec().ok_or("its config cannot be used")?;
        let record = images::read_record(image).map_err(|e| format!("stale: {e}"))?;
        if record.uuid != self.uuid {
            return Err(format!("stale: the image is of domain {}, not {}", record.uuid, self.uuid));
        }
        let now = images::recorded_config(&spec)?;
        if now != (record.xl_config, record.libxl_json) {
            return Err(format!("stale: its config changed since the save at {}", record.saved_at));
        }
        if record.boot_id != hoststate::boot_id(&self.shared.paths, self.uuid) {
            return Err(format!(
                "stale: the domain was booted afresh since the save at {}, so its disks moved on from this memory image",
                record.saved_at
            ));
        }
        Ok(spec)
    }

    /// Restores from `image` if [`check_image`](Self::check_image) allows it.
    pub(super) fn restore_checked(&mut self, image: &Path) -> Result<DomId, String> {
        let mut spec = self.check_image(image)?;
        // After the check: the image's record holds the domain's own config, without xl.conf.
        crate::xlconf::apply(self.shared.xl_conf.as_deref(), &mut spec)?;
        self.prepare_native(&mut spec);
        self.phase = Phase::Booting;
        self.publish();
        self.status.domain_name = spec.name.clone();
        if let Err(e) = self.record(Step::Creating) {
            self.phase = Phase::Idle { halted: true };
            return Err(format!("cannot record the restore in {}: {e}", self.shared.paths.run_dir.display()));
        }
        let domid = match self.shared.hv.restore_paused(&spec, image) {
            Ok(d) => d,
            Err(e) => {
                self.clear_record();
                self.phase = Phase::Idle { halted: true };
                return Err(format!("restore failed: {e}"));
            }
        };
        if let Err(e) = self.run_paused(domid, &spec) {
            self.gone(AfterDeath::Halted);
            return Err(format!("restored, but could not be started: {e}"));
        }
        self.set_active(true);
        self.operator_stopped = false;
        let _ = self.shared.paths.set_operator_stopped(self.uuid, false);
        self.forget_saved();
        self.retry = Retry::Now;
        images::remove(image);
        log::info!("{}: restored from {} as domain {domid}", self.name(), image.display());
        // Published before anyone hears of it, so that a status asked next says RUNNING.
        self.publish();
        Ok(domid)
    }

    /// Moves a stale image aside; the note for the report.
    fn set_aside(&self, image: &Path, why: &str) -> String {
        let moved = images::set_aside_noted(image);
        log::warn!("{}: {} {why}; {moved}", self.name(), image.display());
        format!("{} {why} ({moved})", image.display())
    }

    /// Whether host-start leaves it to run afresh (an autostart domain, or an EVE one whose
    /// config says Activate), no operator having stopped it.
    fn runs_after_host_start(&self) -> bool {
        !self.operator_stopped
            && self.desired.as_ref().is_some_and(|d| match d.source {
                Source::Auto(_) => true,
                Source::Eve => d.config.activate,
                Source::Transient => false,
            })
    }

    pub(super) fn host_start(
        &mut self,
        image: Option<&Path>,
        restore: bool,
        permits: &Arc<Permits>,
        reply: &Sender<Report>,
        since: Instant,
    ) {
        let transient = self.desired.as_ref().is_some_and(|d| d.source == Source::Transient);
        let mut notes = Vec::new();
        let mut ok = true;
        if let Some(image) = image {
            if self.operator_stopped {
                // An operator's stop holds over a saved image too; a stale one goes, though.
                return match self.check_image(image) {
                    Err(e) if e.starts_with("stale") => {
                        let note = self.set_aside(image, &e);
                        self.report(reply, since, false, format!("left stopped (an operator stopped it); refused {note}"))
                    }
                    _ => self.report(
                        reply,
                        since,
                        true,
                        format!(
                            "left stopped (an operator stopped it); its image {} is kept: `domainctl restore` it, or `domainctl start` boots it afresh",
                            image.display()
                        ),
                    ),
                };
            }
            let eve_inactive = self.desired.as_ref().is_some_and(|d| d.source == Source::Eve && !d.config.activate);
            if restore && eve_inactive {
                return self.report(
                    reply,
                    since,
                    true,
                    format!("not restored: its EVE config says Activate=false; {} is kept", image.display()),
                );
            }
            if restore {
                let _permit = permits.acquire();
                match self.restore_checked(image) {
                    Ok(domid) => {
                        return self.report(
                            reply,
                            since,
                            true,
                            format!("restored from {} as domain {domid}", image.display()),
                        );
                    }
                    Err(e) if e.starts_with("stale") => {
                        notes.push(format!("refused {}", self.set_aside(image, &e)));
                        ok = false;
                        self.forget_saved();
                    }
                    Err(e) => {
                        // Kept for another try; a transient domain is gone with the failure.
                        self.ever_ran |= transient;
                        return self.report(reply, since, false, format!("{e}; {} is kept", image.display()));
                    }
                }
            } else if self.runs_after_host_start() && self.current_domid().is_none() {
                // It boots afresh now, which is what makes an image stale.
                notes.push(format!(
                    "not restored (RESTORE=false): {}",
                    self.set_aside(image, "is stale once it boots afresh")
                ));
                self.forget_saved();
            } else {
                notes.push(format!("{} not restored (RESTORE=false)", image.display()));
            }
        }
        let note = if notes.is_empty() { String::new() } else { format!("; {}", notes.join("; ")) };
        if transient {
            self.ever_ran = true; // it has no config to run from without its image
            return self.report(reply, since, ok, format!("transient domain, not restored{note}"));
        }
        if !matches!(self.desired.as_ref().map(|d| &d.source), Some(Source::Auto(_))) {
            return self.report(reply, since, ok, format!("not an autostart domain{note}"));
        }
        if let Some(domid) = self.current_domid() {
            return self.report(reply, since, ok, format!("already running as domain {domid}{note}"));
        }
        if self.operator_stopped {
            return self.report(reply, since, ok, format!("left stopped (an operator stopped it){note}"));
        }
        if let Some(Some(saved)) = hoststate::saved(&self.shared.paths, self.uuid)
            && saved.exists()
        {
            return self.report(
                reply,
                since,
                ok,
                format!(
                    "left stopped: it was saved to {} (`domainctl restore` it, or `domainctl start` boots it afresh){note}",
                    saved.display()
                ),
            );
        }
        self.set_active(true);
        self.retry = Retry::Now;
        let _permit = permits.acquire();
        self.boot();
        self.publish();
        match self.phase {
            Phase::Running { domid, .. } => self.report(reply, since, ok, format!("started as domain {domid}{note}")),
            _ => {
                let err = self.run_error.as_ref().map_or(String::new(), |e| e.error.clone());
                self.report(reply, since, false, format!("failed to start: {err}{note}"))
            }
        }
    }

    pub(super) fn host_stop(
        &mut self,
        stop: &HostStop<'_>,
        migrate: Option<&(super::MigrateTo, Arc<Permits>)>,
        reply: Sender<Report>,
        since: Instant,
    ) {
        let HostStop { save_dir, sysrq, maxwait, destroy_left } = *stop;
        let Some(domid) = self.running_domid() else {
            return self.report(&reply, since, true, "not running");
        };
        let deadline = since.checked_add(maxwait).unwrap_or_else(|| super::after(maxwait));
        // MIGRATE first, as xendomains: what does not go is saved or shut down.
        if let Some((to, permits)) = migrate {
            let _permit = permits.acquire();
            match self.migrate_out(to, Some(deadline)) {
                super::migrate::Left::Migrated => {
                    let verb = format!("migrated to {}", to.host);
                    return self
                        .waiters
                        .push(Waiter { host_stop: true, ..Waiter::new(Want::Gone, reply, since, verb) });
                }
                super::migrate::Left::Stuck(e) => return self.report(&reply, since, false, e),
                super::migrate::Left::Stayed(e) => {
                    log::warn!(
                        "{}: not migrated to {} ({e}); {}",
                        self.name(),
                        to.host,
                        if save_dir.is_some() { "saving it" } else { "shutting it down" }
                    );
                    self.halt_note = Some(format!(" (not migrated to {}: {e})", to.host));
                    if Instant::now() >= deadline {
                        // The watchdog fired during the migration: what xendomains does next.
                        self.halt_timeout = Some(Duration::from_millis(1));
                        self.halt_destroy = destroy_left;
                        self.begin_halt(domid);
                        return self
                            .waiters
                            .push(Waiter { host_stop: true, ..Waiter::new(Want::Gone, reply, since, "shut down") });
                    }
                }
            }
        }
        for &key in sysrq {
            if let Err(e) = self.shared.hv.sysrq(domid, key) {
                log::warn!("{}: sysrq {key}: {e}", self.name());
            }
        }
        if let Some(dir) = save_dir {
            let path = dir.join(self.image_name());
            let watch = SaveWatch { deadline, maxwait, destroy_left, reply: &reply, since };
            match self.save_to(&path, Some(watch)) {
                Ok(SaveEnd::Saved) => {
                    let verb = format!("saved to {}", path.display());
                    return self
                        .waiters
                        .push(Waiter { host_stop: true, ..Waiter::new(Want::Gone, reply, since, verb) });
                }
                Ok(SaveEnd::Watchdog) => return,
                Err(e) => {
                    log::warn!("{}: {e}; shutting it down instead", self.name());
                    let before = self.halt_note.take().unwrap_or_default();
                    self.halt_note = Some(format!("{before} (save failed: {e})"));
                }
            }
        }
        // The watchdog covers the whole stop: a failed save leaves the shutdown what remains.
        self.halt_timeout = Some(deadline.saturating_duration_since(Instant::now()));
        self.halt_destroy = destroy_left;
        self.begin_halt(domid);
        self.waiters.push(Waiter { host_stop: true, ..Waiter::new(Want::Gone, reply, since, "shut down") });
    }
}
