//! How a domain stops and dies: a halt we ask for (a shutdown request, the ACPI power button
//! for a guest without PV drivers, destroy when both fail or the grace runs out), a guest that
//! stops on its own (its on_poweroff/on_reboot/on_crash action), the hypervisor's events that
//! tell us (armed here), the end of a domain once it is gone, and a domain that will not die
//! (BROKEN: destroy retried until it is gone).

use xenctl::{DomId, DomainEvent, ShutdownAction, ShutdownReason};

use super::{AfterDeath, Domain, HaltStage, Phase, Retry};
use crate::eve::ErrorDescription;

impl Domain {
    pub(super) fn arm_watch(&mut self, domid: DomId) {
        match self.shared.hv.watch(domid, self.events_tx.clone()) {
            Ok(guard) => self.watch = Some(guard),
            // The safety-net poll still notices what the events would have said.
            Err(e) => log::error!("{}: cannot watch domain {domid} for events: {e}", self.name()),
        }
    }

    pub(super) fn begin_halt(&mut self, domid: DomId) {
        let settings = self.settings();
        let deadline = super::after(self.halt_timeout.take().unwrap_or(settings.shutdown_timeout));
        let halting = |stage| Phase::Halting { domid, stage, deadline, then: AfterDeath::Halted };
        match self.shared.hv.shutdown(domid) {
            Ok(()) => self.phase = halting(HaltStage::Requested),
            Err(xenctl::Error::NoPvDrivers { .. }) => match self.shared.hv.power_button(domid) {
                Ok(()) => self.phase = halting(HaltStage::PowerButton),
                Err(e) => {
                    log::warn!(
                        "{}: no PV drivers and the power button failed ({e}); destroying domain {domid}",
                        self.name()
                    );
                    self.destroy(domid, AfterDeath::Halted);
                }
            },
            Err(xenctl::Error::DomainNotFound { .. }) => self.gone(AfterDeath::Halted),
            Err(e) => {
                log::warn!("{}: shutdown request failed ({e}); destroying domain {domid}", self.name());
                self.destroy(domid, AfterDeath::Halted);
            }
        }
    }

    /// Waiting for `domid`'s death (destroyed, saved, or dying already), for at most
    /// `timer.domain.destroy` from now; then `then`.
    pub(super) fn awaiting_death(&self, domid: DomId, then: AfterDeath) -> Phase {
        Phase::Halting {
            domid,
            stage: HaltStage::Destroyed,
            deadline: super::after(self.settings().destroy_timeout),
            then,
        }
    }

    /// The halt's watchdog fired: destroys the domain, and says so in the halt's report.
    pub(super) fn destroy_overdue(&mut self, domid: DomId, then: AfterDeath, why: &str) {
        log::warn!("{}: domain {domid} did not shut down in time; destroying it{why}", self.name());
        let note = self.halt_note.take().unwrap_or_default();
        self.halt_note = Some(format!("{note} (destroyed: it did not shut down in time)"));
        self.destroy(domid, then);
    }

    pub(super) fn destroy(&mut self, domid: DomId, then: AfterDeath) {
        // Say what is happening before the (slow: device teardown runs hotplug scripts) destroy:
        // a guest that stopped on its own is reported HALTING now, HALTED once it is gone.
        self.phase = self.awaiting_death(domid, then);
        self.publish();
        log::info!("{}: destroying domain {domid}", self.name());
        match self.shared.hv.destroy(domid) {
            // The wait for its death starts when the destroy returns.
            Ok(()) => self.phase = self.awaiting_death(domid, then),
            Err(xenctl::Error::DomainNotFound { .. }) => self.gone(then),
            Err(e) => {
                log::error!("{}: destroy of domain {domid} failed: {e}", self.name());
                self.run_error =
                    Some(ErrorDescription::now(format!("destroy of domain {domid} failed: {e}"), "destroy is retried"));
                self.phase = Phase::Broken { domid, next_try: super::after(self.settings().destroy_timeout), then };
            }
        }
    }

    /// The domain no longer exists.
    pub(super) fn gone(&mut self, then: AfterDeath) {
        self.watch = None;
        self.release_native_loops();
        // A guest's own reboot that is still wanted is one run to EVE (xl restarts it under
        // the same task; zedmanager reads Activated=false as the app going down): its
        // adapters stay held for the create that follows at once.
        self.rebooting = then == AfterDeath::Reboot && self.wanted();
        if !self.rebooting {
            self.release_adapters();
            self.unmount_container_root();
        }
        self.clear_record();
        self.status.domain_id = 0;
        self.phase = Phase::Idle { halted: true };
        // DESTROY_LEFT=false holds for one halt, the host-stop's, however it ends.
        self.halt_destroy = true;
        match then {
            AfterDeath::Halted => {
                self.run_error = None;
                self.status.boot_failed = false;
            }
            // A transient domain is over when its guest stops, as `xl create`'s is; a managed
            // one is booted again after timer.boot.retry.
            AfterDeath::GuestStopped if self.source == super::Source::Transient => {
                self.retry = Retry::Never;
                self.guest_ended = true;
            }
            AfterDeath::GuestStopped => self.retry = Retry::At(super::after(self.settings().boot_retry)),
            AfterDeath::Reboot => self.retry = Retry::Now,
            AfterDeath::Saved => self.on_saved(),
            // It runs on another host: a transient domain's run here is over; a managed one
            // waits for an operator (its stop was recorded).
            AfterDeath::MigratedAway if self.source == super::Source::Transient => {
                self.retry = Retry::Never;
                self.guest_ended = true;
            }
            AfterDeath::MigratedAway => self.retry = Retry::Never,
        }
    }

    /// Gives its adapters back (it is gone, or its boot failed).
    /// An EVE container app's root filesystem, mounted from containerd at its boot, is
    /// unmounted when its domain is gone for good (container/eve.rs).
    pub(super) fn unmount_container_root(&self) {
        let volume =
            self.desired.as_ref().and_then(|d| d.translated.as_ref().ok()).and_then(|t| t.container_volume.clone());
        if let Some(volume) = volume {
            match crate::container::eve::unmount_root(&volume) {
                Ok(true) => log::info!("{}: unmounted {}/rootfs", self.name(), volume.display()),
                Ok(false) => {}
                Err(e) => log::error!("{}: cannot unmount its root filesystem: {e}", self.name()),
            }
        }
    }

    pub(super) fn release_adapters(&mut self) {
        self.shared.adapters.lock().release(self.uuid);
        self.held_adapters = crate::adapters::Reservation::default();
        self.status.io_adapter_list.clear();
    }

    pub(super) fn on_event(&mut self, ev: DomainEvent) {
        if Some(ev.domid()) != self.current_domid() {
            return; // from an earlier incarnation of this domain
        }
        match (self.phase, ev) {
            (Phase::Running { domid, .. }, DomainEvent::Shutdown { reason, .. }) => self.guest_shutdown(domid, reason),
            (Phase::Running { domid, .. }, DomainEvent::Death { .. }) => {
                log::warn!("{}: domain {domid} disappeared (destroyed outside domainmgrd)", self.name());
                self.run_error = Some(ErrorDescription::now(
                    format!("domain {domid} was destroyed outside domainmgrd"),
                    "boot retry timer",
                ));
                self.gone(AfterDeath::GuestStopped);
            }
            (Phase::Halting { domid, stage, then, .. }, DomainEvent::Shutdown { .. })
                if stage != HaltStage::Destroyed =>
            {
                self.note_exit_status(domid);
                self.destroy(domid, then)
            }
            (Phase::Halting { then, .. } | Phase::Broken { then, .. }, DomainEvent::Death { .. }) => self.gone(then),
            (Phase::Preserved { .. }, DomainEvent::Death { .. }) => self.gone(AfterDeath::Halted),
            (Phase::Suspended { domid }, DomainEvent::Death { .. }) => {
                log::info!(
                    "{}: domain {domid}, suspended by someone else, is gone: saved outside domainmgrd",
                    self.name()
                );
                self.run_error = Some(ErrorDescription::now(
                    format!("domain {domid} was saved outside domainmgrd"),
                    "reactivate or start it to boot it again",
                ));
                self.gone(AfterDeath::Saved);
            }
            _ => {}
        }
    }

    /// The guest shut down by itself (or after a request we did not make).
    /// A container's init leaves its entrypoint's exit status in the guest's own xenstore
    /// directory, gone with the domain: read as it shuts down, whoever asked (container/).
    fn note_exit_status(&mut self, domid: DomId) {
        let key = self.shared.hv.guest_key(domid, xen_container_init::EXIT_KEY).ok().flatten();
        if let Some(status) = crate::container::read_exit_status(key.as_deref()) {
            log::info!("{}: domain {domid}'s container exited with status {status}", self.name());
            self.status.exit_status = Some(status);
        } else if let Some(bad) = key {
            log::warn!("{}: domain {domid} wrote {bad:?} as its exit status: not one", self.name());
        }
    }

    pub(super) fn guest_shutdown(&mut self, domid: DomId, reason: ShutdownReason) {
        self.note_exit_status(domid);
        if reason == ShutdownReason::Suspend && !self.unwanted() {
            // Someone saves it (xl save): they destroy it once saved, or resume it if the
            // save fails. Destroying it now would ruin their save, its config known or not.
            log::info!(
                "{}: domain {domid} was suspended outside domainmgrd (a save?); waiting for it to go or resume",
                self.name()
            );
            self.phase = Phase::Suspended { domid };
            return;
        }
        let Some(spec) = self.desired.as_ref().and_then(|d| d.translated.as_ref().ok()).map(|t| &t.spec) else {
            self.destroy(domid, AfterDeath::GuestStopped);
            return;
        };
        let (on_poweroff, on_reboot, on_crash) = (spec.on_poweroff, spec.on_reboot, spec.on_crash);
        let name = self.name();
        if self.unwanted() {
            self.destroy(domid, AfterDeath::Halted);
            return;
        }
        let action = match reason {
            ShutdownReason::Poweroff => on_poweroff,
            ShutdownReason::Reboot => on_reboot,
            _ => on_crash,
        };
        let crashed = !matches!(reason, ShutdownReason::Poweroff | ShutdownReason::Reboot);
        log::info!("{name}: domain {domid} shut down ({reason}); {action}");
        match action {
            ShutdownAction::Restart
            | ShutdownAction::RestartRename
            | ShutdownAction::CoredumpRestart
            | ShutdownAction::SoftReset => self.destroy(domid, AfterDeath::Reboot),
            ShutdownAction::Preserve => {
                self.run_error = Some(ErrorDescription::now(
                    format!("domain {domid} {} and is kept for inspection (on_crash=preserve)", describe(reason)),
                    "deactivate to destroy it",
                ));
                self.phase = Phase::Preserved { domid };
            }
            ShutdownAction::Destroy | ShutdownAction::CoredumpDestroy => {
                if crashed {
                    let retry = self.settings().boot_retry;
                    self.run_error = Some(ErrorDescription::now(
                        format!("domain {domid} {}", describe(reason)),
                        format!("retry in {} s", retry.as_secs()),
                    ));
                }
                self.destroy(domid, AfterDeath::GuestStopped);
            }
        }
    }

    /// Tries again to get rid of a domain that will not die. It stays BROKEN until it is gone
    /// (its death event, or a check that finds it gone), however many tries that takes.
    pub(super) fn retry_destroy(&mut self, domid: DomId, then: AfterDeath) {
        if let Ok(None) = self.shared.hv.info(domid) {
            return self.gone(then);
        }
        log::warn!("{}: destroying domain {domid} again", self.name());
        let error = match self.shared.hv.destroy(domid) {
            Ok(()) => format!("domain {domid} did not die after destroy"),
            Err(xenctl::Error::DomainNotFound { .. }) => return self.gone(then),
            Err(e) => format!("destroy of domain {domid} failed: {e}"),
        };
        if self.run_error.as_ref().is_none_or(|e| e.error != error) {
            self.run_error = Some(ErrorDescription::now(error, "destroy is retried"));
        }
        self.phase = Phase::Broken { domid, next_try: super::after(self.settings().destroy_timeout), then };
    }
}

fn describe(reason: ShutdownReason) -> &'static str {
    match reason {
        ShutdownReason::Crash => "crashed",
        ShutdownReason::Watchdog => "was reset by its watchdog",
        ShutdownReason::SoftReset => "asked for a soft reset",
        _ => "stopped unexpectedly",
    }
}
