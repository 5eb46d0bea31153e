//! What operators (domainctl) and host boot and shutdown ask of one domain thread, the report
//! each request gets back when it is done, and what the thread remembers of them across
//! restarts (`hoststate.rs`: the run id of each fresh boot, and whether it waits saved).
//!
//! Quick requests report at once. Requests that take time (a stop waits for the guest, a start
//! for the boot) leave a waiter that `check_waiters` resolves when the domain gets there, so the
//! thread keeps serving events and timers meanwhile. Saving, restoring and host start and stop
//! are in `hostops.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use xenctl::DomId;

use super::{AfterDeath, Domain, Phase, Retry, Source};
use crate::hoststate;

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
    /// Migrate it to another host (it runs there, and stays stopped here).
    Migrate(Box<super::MigrateTo>),
    /// Host boot: restore it from `image` if `restore` and the image is not stale, else start
    /// it if it is an autostart domain; at most as many at once as `permits` allows.
    HostStart {
        /// A saved image of it, in the save directory.
        image: Option<PathBuf>,
        /// Restore saved images (`RESTORE`).
        restore: bool,
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
        /// Migrate it here first (`MIGRATE`), at most as many at once as the permits allow.
        migrate: Option<Box<(super::MigrateTo, Arc<Permits>)>>,
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
    /// Reported when it gets what it waits for, e.g. "stopped".
    pub verb: String,
    /// Whether getting there is a success (a domain destroyed instead of saved is not).
    pub ok: bool,
    /// It is host-stop's: the one that `DESTROY_LEFT=false` concerns.
    pub host_stop: bool,
}

impl Waiter {
    pub(super) fn new(want: Want, reply: Sender<Report>, since: Instant, verb: impl Into<String>) -> Waiter {
        Waiter { want, reply, since, verb: verb.into(), ok: true, host_stop: false }
    }
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

    pub(super) fn running_domid(&self) -> Option<DomId> {
        match self.phase {
            Phase::Running { domid, .. } => Some(domid),
            _ => None,
        }
    }

    /// Sets whether a domain that is not driven by an EVE config should run.
    pub(super) fn set_active(&mut self, active: bool) {
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
                self.waiters.push(Waiter::new(Want::Running { not: None }, reply, since, "started"));
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
                    self.waiters.push(Waiter::new(Want::Running { not: Some(domid) }, reply, since, "restarted"));
                }
                None => self.report(&reply, since, false, "not running"),
            },
            Operator::Save { path } => match self.save_to(&path, None) {
                // Reported once the domain is gone, as `xl save` returns.
                Ok(_) => {
                    self.waiters.push(Waiter::new(Want::Gone, reply, since, format!("saved to {}", path.display())))
                }
                Err(e) => self.report(&reply, since, false, e),
            },
            Operator::Restore { image } => match self.restore_checked(&image) {
                Ok(domid) => self.report(&reply, since, true, format!("restored as domain {domid}")),
                Err(e) => self.report(&reply, since, false, e),
            },
            Operator::Migrate(to) => self.migrate_for(*to, reply, since),
            Operator::HostStart { image, restore, permits } => {
                self.host_start(image.as_deref(), restore, &permits, &reply, since)
            }
            Operator::HostStop { save_dir, sysrq, maxwait, destroy_left, migrate } => {
                let stop =
                    super::hostops::HostStop { save_dir: save_dir.as_deref(), sysrq: &sysrq, maxwait, destroy_left };
                self.host_stop(&stop, migrate.as_deref(), reply, since)
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
        self.waiters.push(Waiter::new(Want::Gone, reply, since, verb));
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
                    Some((w.ok, format!("{}{note}", w.verb)))
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

    /// The watchdog of a halt fired and host-stop said not to destroy (`DESTROY_LEFT=false`):
    /// host-stop hears that the domain was left running. Anyone else waiting on the halt (an
    /// operator's stop or restart) did not say so: for them it goes on to destroy, as usual.
    pub(super) fn watchdog_without_destroy(&mut self, domid: DomId, then: AfterDeath) {
        self.halt_destroy = true;
        let (host_stop, others): (Vec<Waiter>, Vec<Waiter>) =
            std::mem::take(&mut self.waiters).into_iter().partition(|w| w.host_stop);
        for w in host_stop {
            self.report(
                &w.reply,
                w.since,
                false,
                "still running when the watchdog fired; left running (DESTROY_LEFT=false)",
            );
        }
        self.waiters = others;
        if !self.waiters.is_empty() {
            self.destroy_overdue(domid, then, ", as its stop asks");
        } else {
            log::warn!("{}: domain {domid} is still running when its watchdog fired; left running", self.name());
            self.phase = Phase::Running { domid, paused: false };
        }
    }

    /// At thread start: a domain saved earlier does not boot afresh on its own (see `hoststate`).
    pub(super) fn load_saved_intent(&mut self) {
        if hoststate::saved(&self.shared.paths, self.uuid).is_some() {
            self.retry = Retry::Never;
        }
    }

    /// The domain was saved (by us or outside domainmgrd): it is not booted again on its own,
    /// across daemon restarts too, until an operator starts it or it is restored.
    pub(super) fn on_saved(&mut self) {
        self.retry = Retry::Never;
        if hoststate::saved(&self.shared.paths, self.uuid).is_none()
            && let Err(e) = hoststate::set_saved(&self.shared.paths, self.uuid, Some(None))
        {
            log::error!("{}: cannot record that it was saved: {e}", self.name());
        }
    }

    /// Before every fresh create: a new run id, so that no image saved before this boot is ever
    /// restored over the disks it is about to change. A boot whose id cannot be recorded fails.
    pub(super) fn record_fresh_boot(&mut self) -> Result<(), String> {
        let paths = &self.shared.paths;
        if let Some(Some(image)) = hoststate::saved(paths, self.uuid)
            && image.exists()
        {
            log::warn!(
                "{}: booting afresh; its saved image {} is stale from now on and will not be restored",
                self.name(),
                image.display()
            );
        }
        hoststate::record_fresh_boot(paths, self.uuid)
            .map_err(|e| format!("cannot record the fresh boot in {}: {e}", paths.state_dir.display()))?;
        self.forget_saved();
        Ok(())
    }

    /// It runs again (booted or restored), or its image was set aside: no longer saved.
    pub(super) fn forget_saved(&mut self) {
        if self.retry == Retry::Never {
            self.retry = Retry::Now;
        }
        if let Err(e) = hoststate::set_saved(&self.shared.paths, self.uuid, None) {
            log::error!("{}: cannot forget that it was saved: {e}", self.name());
        }
    }

    /// A container's run is over: its exit is recorded in its bundle (`domainctl status NAME`
    /// reads it once the domain is gone) and its root filesystem goes, unless a saved image of
    /// the domain waits to be restored (which needs it).
    pub(super) fn end_container_run(&mut self, bundle: &std::path::Path) {
        if hoststate::saved(&self.shared.paths, self.uuid).is_some() {
            return;
        }
        let exited = crate::container::Exited {
            name: self.domain_name(),
            uuid: self.uuid,
            exit_status: self.status.exit_status,
            at: chrono::Utc::now().to_rfc3339(),
        };
        if let Err(e) = exited.record(&crate::container::containers_dir(&self.shared.paths.state_dir)) {
            log::error!("{}: cannot record its container's exit: {e}", self.name());
        }
        match crate::container::end_run(bundle) {
            Ok(()) => log::info!("{}: its run is over; its root filesystem is removed", self.name()),
            Err(e) => log::error!("{}: cannot remove its root filesystem under {}: {e}", self.name(), bundle.display()),
        }
        let containers = crate::container::containers_dir(&self.shared.paths.state_dir);
        for old in crate::container::prune_exited(&containers, crate::container::KEEP_EXITED) {
            log::info!("removed the bundle of an older finished container, {}", old.display());
        }
    }

    /// A transient domain that ends without an image waiting to be restored leaves nothing
    /// behind (its run id only mattered for judging such an image).
    pub(super) fn forget_transient_run(&mut self) {
        let transient = self.desired.as_ref().is_some_and(|d| d.source == Source::Transient);
        if transient && !self.forget && hoststate::saved(&self.shared.paths, self.uuid).is_none() {
            let _ = hoststate::forget_boot(&self.shared.paths, self.uuid);
        }
    }
}
