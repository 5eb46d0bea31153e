//! What operators (domainctl) and host boot and shutdown ask of one domain thread, and the
//! report each request gets back when it is done.
//!
//! Quick requests report at once. Requests that take time (a stop waits for the guest, a start
//! for the boot) leave a waiter that `check_waiters` resolves when the domain gets there, so the
//! thread keeps serving events and timers meanwhile.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use xenctl::DomId;

use super::{AfterDeath, Domain, HaltStage, Phase, Retry, Source};
use crate::files::Marker;
use crate::images::{self, ImageRecord};

/// A request to a domain thread.
#[derive(Debug, Clone)]
pub enum Operator {
    /// Run it, and forget an operator's stop.
    Start,
    /// Stop it and keep it stopped (across reboots) until started: graceful unless `force`.
    Stop {
        /// Destroy at once.
        force: bool,
        /// Grace before destroy (default timer.domain.shutdown).
        timeout: Option<Duration>,
    },
    /// Stop it (gracefully) and start it again.
    Restart {
        /// Grace before destroy.
        timeout: Option<Duration>,
    },
    /// Save it to `path` (it stops; it is not restarted until started or restored).
    Save {
        /// The image file.
        path: PathBuf,
    },
    /// Restore it from `image` (a domainctl restore); refused if the image is stale.
    Restore {
        /// The image file.
        image: PathBuf,
    },
    /// Host boot: restore it from `restore` if given and not stale, else start it if it is an
    /// autostart domain; at most as many at once as `permits` allows.
    HostStart {
        /// A saved image of it.
        restore: Option<PathBuf>,
        /// Shared bound on parallel creates.
        permits: Arc<Permits>,
    },
    /// Host shutdown: SysRq keys, then save to `save_dir` or shut down, within `maxwait`.
    HostStop {
        /// Save here instead of shutting down.
        save_dir: Option<PathBuf>,
        /// SysRq keys to send first.
        sysrq: Vec<char>,
        /// The watchdog.
        maxwait: Duration,
        /// Destroy it if the watchdog fires.
        destroy_left: bool,
    },
}

/// How a request ended, for one domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The domain's name.
    pub name: String,
    /// Its config key (UUID).
    pub key: String,
    /// Whether it did what was asked.
    pub ok: bool,
    /// What happened, in a few words.
    pub outcome: String,
    /// How long it took, seconds.
    pub seconds: f64,
}

/// A counting semaphore bounding how many domains are created at once.
#[derive(Debug)]
pub struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Permits {
    /// `n` permits (at least one).
    pub fn new(n: usize) -> Arc<Permits> {
        Arc::new(Permits { free: Mutex::new(n.max(1)), freed: Condvar::new() })
    }

    /// Waits for a permit; it is returned when the guard drops.
    pub fn acquire(self: &Arc<Self>) -> PermitGuard {
        let mut free = self.free.lock();
        while *free == 0 {
            self.freed.wait(&mut free);
        }
        *free -= 1;
        PermitGuard(Arc::clone(self))
    }
}

/// A held permit.
#[derive(Debug)]
pub struct PermitGuard(Arc<Permits>);

impl Drop for PermitGuard {
    fn drop(&mut self) {
        *self.0.free.lock() += 1;
        self.0.freed.notify_one();
    }
}

/// What a waiting request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// Running, under a domid other than `not`.
    Running { not: Option<DomId> },
    /// Gone.
    Gone,
}

/// A request that reports later.
#[derive(Debug)]
pub(super) struct Waiter {
    pub want: Want,
    pub reply: Sender<Report>,
    pub since: Instant,
    /// Reported when it ends well, e.g. "stopped".
    pub verb: &'static str,
}

impl Domain {
    pub(super) fn report(&self, reply: &Sender<Report>, since: Instant, ok: bool, outcome: impl Into<String>) {
        let _ = reply.send(Report {
            name: self.name(),
            key: self.key.clone(),
            ok,
            outcome: outcome.into(),
            seconds: since.elapsed().as_secs_f64(),
        });
    }

    fn running_domid(&self) -> Option<DomId> {
        match self.phase {
            Phase::Running { domid, .. } => Some(domid),
            _ => None,
        }
    }

    /// Sets whether a domain that is not driven by an EVE config should run.
    fn set_active(&mut self, active: bool) {
        if let Some(d) = self.desired.as_mut().filter(|d| d.source != Source::Eve) {
            d.config.activate = active;
        }
    }

    pub(super) fn on_operator(&mut self, op: Operator, reply: Sender<Report>) {
        let since = Instant::now();
        match op {
            Operator::Start => {
                self.operator_stopped = false;
                let _ = self.shared.paths.set_operator_stopped(self.uuid, false);
                self.set_active(true);
                if self.desired.as_ref().is_some_and(|d| d.source == Source::Eve && !d.config.activate) {
                    return self.report(&reply, since, false, "its EVE config says Activate=false");
                }
                if let Some(domid) = self.running_domid() {
                    return self.report(&reply, since, true, format!("already running as domain {domid}"));
                }
                self.retry = Retry::Now;
                self.waiters.push(Waiter { want: Want::Running { not: None }, reply, since, verb: "started" });
            }
            Operator::Stop { force, timeout } => {
                self.operator_stopped = true;
                if let Err(e) = self.shared.paths.set_operator_stopped(self.uuid, true) {
                    log::error!("{}: cannot record the operator's stop: {e}", self.name());
                }
                self.set_active(false);
                log::info!("{}: stopped by an operator{}", self.name(), if force { " (forced)" } else { "" });
                self.halt_for(reply, since, force, timeout, "stopped");
            }
            Operator::Restart { timeout } => match self.running_domid() {
                Some(domid) => {
                    self.halt_timeout = timeout;
                    self.begin_halt(domid);
                    self.waiters.push(Waiter {
                        want: Want::Running { not: Some(domid) },
                        reply,
                        since,
                        verb: "restarted",
                    });
                }
                None => self.report(&reply, since, false, "not running"),
            },
            Operator::Save { path } => match self.save_to(&path) {
                Ok(()) => self.report(&reply, since, true, format!("saved to {}", path.display())),
                Err(e) => self.report(&reply, since, false, e),
            },
            Operator::Restore { image } => match self.restore_checked(&image) {
                Ok(domid) => self.report(&reply, since, true, format!("restored as domain {domid}")),
                Err(e) => self.report(&reply, since, false, e),
            },
            Operator::HostStart { restore, permits } => self.host_start(restore, &permits, &reply, since),
            Operator::HostStop { save_dir, sysrq, maxwait, destroy_left } => {
                self.host_stop(save_dir, &sysrq, maxwait, destroy_left, reply, since)
            }
        }
    }

    /// Halts a running domain for a request, reporting when it is gone.
    fn halt_for(
        &mut self,
        reply: Sender<Report>,
        since: Instant,
        force: bool,
        timeout: Option<Duration>,
        verb: &'static str,
    ) {
        let Some(domid) = self.current_domid() else {
            return self.report(&reply, since, true, "not running");
        };
        if force {
            self.destroy(domid, AfterDeath::Halted);
        } else if matches!(self.phase, Phase::Running { .. }) {
            self.halt_timeout = timeout;
            self.begin_halt(domid);
        }
        self.waiters.push(Waiter { want: Want::Gone, reply, since, verb });
    }

    /// Resolves the waiters whose condition is met.
    pub(super) fn check_waiters(&mut self) {
        let waiters = std::mem::take(&mut self.waiters);
        for w in waiters {
            let outcome = match (w.want, self.phase) {
                (Want::Running { not }, Phase::Running { domid, .. }) if Some(domid) != not => {
                    Some((true, format!("{} as domain {domid}", w.verb)))
                }
                (Want::Running { .. }, Phase::Idle { .. }) if self.status.boot_failed => {
                    Some((false, format!("boot failed: {}", self.run_error.as_ref().map_or("", |e| e.error.as_str()))))
                }
                (Want::Running { .. }, Phase::Idle { .. })
                    if !self.wanted() && w.since.elapsed() > Duration::from_millis(1) =>
                {
                    Some((false, "not started (stopped by an operator, deactivated, or host stopped)".to_string()))
                }
                (Want::Gone, Phase::Idle { .. }) => {
                    let note = self.halt_note.clone().unwrap_or_default();
                    Some((true, format!("{}{note}", w.verb)))
                }
                (Want::Gone, Phase::Broken { domid, .. }) => Some((false, format!("domain {domid} will not die"))),
                _ => None,
            };
            match outcome {
                Some((ok, text)) => self.report(&w.reply, w.since, ok, text),
                None => self.waiters.push(w),
            }
        }
        if self.waiters.is_empty() {
            self.halt_note = None;
        }
    }

    /// Saves the running domain to `path`, with its record beside it.
    fn save_to(&mut self, path: &Path) -> Result<(), String> {
        let Some(domid) = self.running_domid() else {
            return Err("not running".into());
        };
        let spec = self.desired.as_ref().and_then(|d| d.translated.as_ref().ok()).map(|t| t.spec.clone());
        let spec = spec.ok_or("its config cannot be used, so the image could not be matched to it")?;
        let xl_config = spec.to_xl_config().map_err(|e| format!("its config has no xl form to record: {e}"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        // The domain goes away during the save: expect its suspend and death events.
        self.phase = Phase::Halting {
            domid,
            stage: HaltStage::Destroyed,
            deadline: Instant::now() + self.settings().destroy_timeout,
            then: AfterDeath::Saved,
        };
        self.publish();
        self.shared.hv.save(domid, path).map_err(|e| {
            // A failed save resumes the guest.
            self.phase = Phase::Running { domid, paused: false };
            format!("save failed: {e}")
        })?;
        let record = ImageRecord { uuid: self.uuid, name: spec.name.clone(), xl_config, saved_at: Utc::now() };
        if let Err(e) = images::write_record(path, &record) {
            log::error!("{}: saved, but its image record could not be written: {e}", self.name());
        }
        log::info!("{}: saved to {}", self.name(), path.display());
        self.gone(AfterDeath::Saved);
        Ok(())
    }

    /// Restores from `image` if it matches the current config and the domain is not running.
    fn restore_checked(&mut self, image: &Path) -> Result<DomId, String> {
        if let Some(domid) = self.current_domid() {
            return Err(format!("stale: the domain runs already (domain {domid})"));
        }
        let spec = self
            .desired
            .as_ref()
            .and_then(|d| d.translated.as_ref().ok())
            .map(|t| t.spec.clone())
            .ok_or("its config cannot be used")?;
        let record = images::read_record(image).map_err(|e| format!("stale: {e}"))?;
        if record.uuid != self.uuid {
            return Err(format!("stale: the image is of domain {}, not {}", record.uuid, self.uuid));
        }
        let now = spec.to_xl_config().map_err(|e| e.to_string())?;
        if now != record.xl_config {
            return Err(format!("stale: its config changed since the save at {}", record.saved_at));
        }
        self.phase = Phase::Booting;
        self.publish();
        let _ = self.shared.paths.write_marker(self.uuid, Marker::Creating);
        let domid = match self.shared.hv.restore_paused(&spec, image) {
            Ok(d) => d,
            Err(e) => {
                let _ = self.shared.paths.clear_marker(self.uuid);
                self.phase = Phase::Idle { halted: true };
                return Err(format!("restore failed: {e}"));
            }
        };
        self.arm_watch(domid);
        let hv = &self.shared.hv;
        if let Err(e) = hv.disable_vif_offload(domid, spec.vifs.len()).and_then(|()| hv.unpause(domid)) {
            let _ = self.shared.hv.destroy(domid);
            self.gone(AfterDeath::Halted);
            return Err(format!("restored, but could not be started: {e}"));
        }
        let _ = self.shared.paths.write_marker(self.uuid, Marker::Running(domid));
        self.set_active(true);
        self.operator_stopped = false;
        let _ = self.shared.paths.set_operator_stopped(self.uuid, false);
        self.retry = Retry::Now;
        self.status.domain_id = domid.get();
        self.status.boot_time = Some(Utc::now());
        self.ever_ran = true;
        self.phase = Phase::Running { domid, paused: false };
        images::remove(image);
        log::info!("{}: restored from {} as domain {domid}", self.name(), image.display());
        Ok(domid)
    }

    fn host_start(&mut self, restore: Option<PathBuf>, permits: &Arc<Permits>, reply: &Sender<Report>, since: Instant) {
        let mut notes = Vec::new();
        if let Some(image) = restore {
            let _permit = permits.acquire();
            match self.restore_checked(&image) {
                Ok(domid) => {
                    return self.report(
                        reply,
                        since,
                        true,
                        format!("restored from {} as domain {domid}", image.display()),
                    );
                }
                Err(e) if e.starts_with("stale") => {
                    let moved =
                        images::set_aside(&image).map(|p| p.display().to_string()).unwrap_or_else(|m| m.to_string());
                    log::warn!("{}: refused to restore {}: {e}; moved to {moved}", self.name(), image.display());
                    notes.push(format!("refused {}: {e} (moved to {moved})", image.display()));
                }
                Err(e) => return self.report(reply, since, false, e),
            }
        }
        let autostart = self.desired.as_ref().is_some_and(|d| matches!(d.source, Source::Auto(_)));
        let note = if notes.is_empty() { String::new() } else { format!("; {}", notes.join("; ")) };
        if !autostart {
            return self.report(reply, since, notes.is_empty(), format!("not an autostart domain{note}"));
        }
        if let Some(domid) = self.current_domid() {
            return self.report(reply, since, notes.is_empty(), format!("already running as domain {domid}{note}"));
        }
        if self.operator_stopped {
            return self.report(reply, since, notes.is_empty(), format!("left stopped (an operator stopped it){note}"));
        }
        self.set_active(true);
        self.retry = Retry::Now;
        let _permit = permits.acquire();
        self.boot();
        match self.phase {
            Phase::Running { domid, .. } => {
                self.report(reply, since, notes.is_empty(), format!("started as domain {domid}{note}"))
            }
            _ => {
                let err = self.run_error.as_ref().map_or(String::new(), |e| e.error.clone());
                self.report(reply, since, false, format!("failed to start: {err}{note}"))
            }
        }
    }

    fn host_stop(
        &mut self,
        save_dir: Option<PathBuf>,
        sysrq: &[char],
        maxwait: Duration,
        destroy_left: bool,
        reply: Sender<Report>,
        since: Instant,
    ) {
        let Some(domid) = self.running_domid() else {
            return self.report(&reply, since, true, "not running");
        };
        for &key in sysrq {
            if let Err(e) = self.shared.hv.sysrq(domid, key) {
                log::warn!("{}: sysrq {key}: {e}", self.name());
            }
        }
        if let Some(dir) = save_dir {
            let path = dir.join(self.status.domain_name.clone());
            match self.save_to(&path) {
                Ok(()) => return self.report(&reply, since, true, format!("saved to {}", path.display())),
                Err(e) => {
                    log::warn!("{}: {e}; shutting it down instead", self.name());
                    self.halt_note = Some(format!(" (save failed: {e})"));
                }
            }
        }
        self.halt_timeout = Some(maxwait);
        self.halt_destroy = destroy_left;
        self.begin_halt(domid);
        self.waiters.push(Waiter { want: Want::Gone, reply, since, verb: "shut down" });
    }
}
