//! The thread's timers: when it next has to wake, the halt deadlines (destroy a guest that
//! did not shut down in time; a domain that did not die after destroy is BROKEN), the destroy
//! retries, the watch over a domain someone else suspended, and the safety-net poll that
//! catches whatever the events missed.

use std::time::{Duration, Instant};

use xenctl::{DomId, DomainEvent, DomainState};

use super::{AfterDeath, Domain, HaltStage, Phase, Retry};
use crate::eve::ErrorDescription;

/// How often a domain suspended by someone else is looked at (its resume sends no event).
const SUSPENDED_CHECK: Duration = Duration::from_secs(2);

impl Domain {
    pub(super) fn on_timer(&mut self) {
        let now = Instant::now();
        match self.phase {
            Phase::Halting { domid, stage, deadline, then } if now >= deadline => match stage {
                HaltStage::Requested | HaltStage::PowerButton if !self.halt_destroy => {
                    // Asked not to destroy (host stop without DESTROY_LEFT).
                    self.watchdog_without_destroy(domid, then);
                }
                HaltStage::Requested | HaltStage::PowerButton => {
                    self.destroy_overdue(domid, then, "");
                }
                HaltStage::Destroyed => match self.shared.hv.info(domid) {
                    Ok(None) => self.gone(then),
                    _ => {
                        log::error!("{}: domain {domid} did not die after destroy", self.name());
                        self.run_error = Some(ErrorDescription::now(
                            format!("domain {domid} did not die after destroy"),
                            "destroy is retried",
                        ));
                        self.phase =
                            Phase::Broken { domid, next_try: super::after(self.settings().destroy_timeout), then };
                    }
                },
            },
            Phase::Broken { domid, next_try, then } if now >= next_try => self.retry_destroy(domid, then),
            Phase::Suspended { domid } => self.check_suspended(domid),
            _ => {}
        }
        if now >= self.next_poll {
            self.next_poll = super::after(self.settings().poll_interval);
            self.safety_net_poll();
        }
    }

    /// Catches anything the events missed.
    fn safety_net_poll(&mut self) {
        let Some(domid) = self.current_domid() else { return };
        match self.shared.hv.info(domid) {
            Ok(None) => self.on_event(DomainEvent::Death { domid }),
            Ok(Some(info)) => match (self.phase, info.state) {
                (Phase::Running { .. }, DomainState::Shutdown(reason)) => {
                    log::warn!("{}: missed the shutdown event of domain {domid}", self.name());
                    self.guest_shutdown(domid, reason);
                }
                (Phase::Running { .. }, DomainState::Dying) => {
                    log::warn!("{}: domain {domid} is being destroyed outside domainmgrd", self.name());
                    self.run_error = Some(ErrorDescription::now(
                        format!("domain {domid} was destroyed outside domainmgrd"),
                        "boot retry timer",
                    ));
                    self.phase = self.awaiting_death(domid, AfterDeath::GuestStopped);
                }
                (Phase::Running { .. }, state) => {
                    self.phase = Phase::Running { domid, paused: state == DomainState::Paused }
                }
                // The guest did what we asked, but its shutdown event was missed.
                (
                    Phase::Halting { stage: HaltStage::Requested | HaltStage::PowerButton, then, .. },
                    DomainState::Shutdown(_),
                ) => {
                    log::warn!("{}: missed the shutdown event of domain {domid}", self.name());
                    self.destroy(domid, then);
                }
                _ => {}
            },
            Err(e) => log::warn!("{}: checking domain {domid}: {e}", self.name()),
        }
    }

    /// A domain suspended by someone else: gone (saved) or resumed yet? Its death comes as an
    /// event; a resume does not, so it is looked at every [`SUSPENDED_CHECK`].
    fn check_suspended(&mut self, domid: DomId) {
        match self.shared.hv.info(domid) {
            Ok(None) => self.on_event(DomainEvent::Death { domid }),
            Ok(Some(info))
                if matches!(info.state, DomainState::Running | DomainState::Blocked | DomainState::Paused) =>
            {
                log::info!("{}: domain {domid} was resumed after its suspend", self.name());
                self.run_error = None;
                self.phase = Phase::Running { domid, paused: info.state == DomainState::Paused };
            }
            Ok(Some(_)) => {}
            Err(e) => log::warn!("{}: checking suspended domain {domid}: {e}", self.name()),
        }
    }

    pub(super) fn next_deadline(&self) -> Instant {
        let mut at = self.next_poll;
        // A retry counts only while the domain is wanted: reconcile boots nothing otherwise, so
        // a passed retry time would wake the thread at once, again and again. What makes it
        // wanted again (a config, an operator's start, host-start) arrives as a command.
        if let (Retry::At(r), Phase::Idle { .. }, true) = (self.retry, self.phase, self.wanted()) {
            at = at.min(r);
        }
        match self.phase {
            Phase::Halting { deadline, .. } => at.min(deadline),
            Phase::Broken { next_try, .. } => at.min(next_try),
            Phase::Suspended { .. } => at.min(super::after(SUSPENDED_CHECK)),
            _ => at,
        }
    }
}
