//! Taking over, when the thread starts, the domain the hypervisor already has with our UUID,
//! and finishing what a daemon that died left half done, as its record says (`records.rs`):
//! - a domain left half-created (still paused under `creating`) is destroyed and created
//!   again (an EVE one if its config still says so);
//! - a domain left suspended by a save cut short (`saving`) is resumed and the partial image
//!   removed; if the image had already been put in place, the save is finished instead (the
//!   domain is destroyed, saved);
//! - a domain left suspended by a migration cut short (`migrating`) is resumed, unless it was
//!   already renamed for the target's last step: then it is left suspended, in doubt
//!   (`migrate.rs`);
//! - any other is adopted untouched (same domid, events re-armed, adapters and boot count
//!   kept); one that shut down or began dying while no daemon watched is handled at once, so
//!   it is never published as running, and one suspended by someone else (`xl save`) is
//!   watched until it is destroyed or resumed.

use std::path::Path;

use xenctl::{DomId, DomainInfo, DomainState, ShutdownReason};

use super::{AfterDeath, Domain, Phase, Source};
use crate::eve::{ErrorDescription, VifInfo};
use crate::records::{self, Step};
use crate::{hoststate, images};

impl Domain {
    /// Takes over the domain the hypervisor has with our UUID, if any.
    pub(super) fn adopt(&mut self, existing: Option<DomainInfo>) {
        let record = records::read(&self.shared.paths, self.uuid);
        let Some(info) = existing else {
            // Nothing runs, so nothing holds adapters, whatever the previous status listed.
            self.status.io_adapter_list.clear();
            if let Some(record) = &record
                && let Err(e) = records::forget_gone(&self.shared.paths, self.uuid, record)
            {
                log::warn!("{}: cannot remove its record: {e}", self.name());
            }
            return;
        };
        let domid = info.domid;
        self.status.domain_name = info.name.clone().unwrap_or_default();
        let step = record.as_ref().map(|r| r.step.clone());
        // Half-created: we recorded a create and it is still paused (never unpaused by us). A
        // `creating` domain that runs was unpaused by a daemon killed before it could record
        // that; it is adopted like any other.
        if step == Some(Step::Creating) && info.state == DomainState::Paused {
            return self.destroy_half_created(domid);
        }
        self.arm_watch(domid);
        // The loop devices its disks hold, re-found in xenstore (native.rs).
        self.native_loops = self.shared.native.as_ref().map(|n| n.held(domid.get())).unwrap_or_default();
        if let Some(d) = &self.desired
            && !d.config.io_adapter_list.is_empty()
        {
            self.shared.adapters.lock().adopt(self.uuid, &d.config.io_adapter_list);
            self.status.io_adapter_list = d.config.io_adapter_list.clone();
        }
        if let Some(d) = self.desired.as_mut().filter(|d| d.source != Source::Eve && info.state != DomainState::Dying) {
            d.config.activate = true;
        }
        self.ever_ran = true;
        if let Some(tries) = self.previous_tries {
            self.status.tried_count = tries;
        }
        self.describe_adopted(domid);
        self.status.domain_id = domid.get();
        if let Some(Step::Saving { domid: saving, image }) = &step
            && *saving == domid.get()
        {
            return self.finish_interrupted_save(info, image);
        }
        if let Some(Step::Migrating { domid: migrating, to }) = &step
            && *migrating == domid.get()
        {
            return self.finish_interrupted_migration(info, to);
        }
        // Ours from now on, and not half-created: a later pause by an operator is not a create
        // cut short.
        if step != Some(Step::Running { domid: domid.get() }) || record.is_some_and(|r| r.origin != self.origin()) {
            self.record_or_log(Step::Running { domid: domid.get() });
        }
        self.take_state(info);
    }

    /// Follows an adopted domain from the state it is found in.
    fn take_state(&mut self, info: DomainInfo) {
        let domid = info.domid;
        match info.state {
            DomainState::Dying => {
                log::info!("{}: adopted domain {domid}, which is dying", self.name());
                self.phase = self.awaiting_death(domid, AfterDeath::GuestStopped);
            }
            DomainState::Shutdown(ShutdownReason::Suspend) => {
                log::info!("{}: adopted domain {domid}, suspended by someone else (a save?)", self.name());
                self.phase = Phase::Suspended { domid };
            }
            // It stopped while no daemon watched: handle that now, so it is never published
            // as running (the watch just armed reports the same shutdown; it is ignored then).
            DomainState::Shutdown(reason) => {
                log::info!("{}: adopted domain {domid}, which shut down ({reason}) meanwhile", self.name());
                self.phase = Phase::Running { domid, paused: false };
                self.guest_shutdown(domid, reason);
            }
            state => {
                log::info!("{}: adopted running domain {domid} ({state}), left untouched", self.name());
                self.phase = Phase::Running { domid, paused: state == DomainState::Paused };
            }
        }
    }

    fn destroy_half_created(&mut self, domid: DomId) {
        // Its disks' loop devices, to release once it is gone.
        self.native_loops = self.shared.native.as_ref().map(|n| n.held(domid.get())).unwrap_or_default();
        log::warn!(
            "{}: domain {domid} was left half-created by an earlier domainmgrd; destroying it to create it again",
            self.name()
        );
        if let Err(e) = self.shared.hv.destroy(domid) {
            log::error!("{}: destroying the half-created domain {domid}: {e}", self.name());
            self.phase = Phase::Broken {
                domid,
                next_try: super::after(self.settings().destroy_timeout),
                then: AfterDeath::Halted,
            };
            self.status.domain_id = domid.get();
            self.arm_watch(domid);
            return;
        }
        self.clear_record();
        self.release_native_loops();
        self.phase = Phase::Idle { halted: false };
        // It was being created because it was wanted: an EVE domain is created again if its
        // config still says so; an autostart or transient one (whose create host-start or an
        // operator asked for) is, too.
        self.set_active(true);
    }

    /// The daemon that drove this domain died while saving it to `image`.
    fn finish_interrupted_save(&mut self, info: DomainInfo, image: &Path) {
        let domid = info.domid;
        let suspended = info.state == DomainState::Shutdown(ShutdownReason::Suspend);
        let committed = !xenctl::partial_path(image).exists() && image.exists() && images::read_record(image).is_ok();
        if committed && suspended {
            // The image and its record were in place: only the destroy was left to do.
            log::info!(
                "{}: its save to {} was complete when domainmgrd stopped; finishing it (destroying domain {domid})",
                self.name(),
                image.display()
            );
            if let Err(e) = hoststate::set_saved(&self.shared.paths, self.uuid, Some(Some(image))) {
                log::error!("{}: cannot record where it was saved: {e}", self.name());
            }
            self.phase = Phase::Running { domid, paused: false };
            return self.destroy(domid, AfterDeath::Saved);
        }
        images::discard_partial(image);
        if suspended {
            match self.shared.hv.resume(domid) {
                Ok(()) => {
                    log::warn!(
                        "{}: domain {domid} was left suspended by a save cut short ({}); resumed it",
                        self.name(),
                        image.display()
                    );
                    // The watch armed above reported the suspend it found: stale now. A new
                    // watch reports the domain as it is.
                    self.watch = None;
                    while self.events_rx.try_recv().is_ok() {}
                    self.arm_watch(domid);
                }
                Err(e) => {
                    log::error!(
                        "{}: domain {domid} was left suspended by a save cut short; resume failed: {e}",
                        self.name()
                    );
                    self.run_error = Some(ErrorDescription::now(
                        format!("domain {domid} was left suspended by a save cut short, and resuming it failed: {e}"),
                        "destroy or restart it",
                    ));
                    self.record_or_log(Step::Running { domid: domid.get() });
                    self.phase = Phase::Suspended { domid };
                    return;
                }
            }
        } else {
            log::warn!("{}: its save to {} was cut short before the guest was suspended", self.name(), image.display());
        }
        self.record_or_log(Step::Running { domid: domid.get() });
        let state = if suspended { DomainState::Running } else { info.state };
        self.take_state(DomainInfo { state, ..info });
    }

    /// An adopted domain's disks and vifs as the status reports them: from its config and the
    /// names the hypervisor gave its vifs; what the previous daemon reported where the config
    /// is not known or cannot be used.
    fn describe_adopted(&mut self, domid: DomId) {
        let Some(d) = &self.desired else { return };
        let Ok(translated) = &d.translated else { return };
        self.status.disk_status_list = translated.disks.clone();
        match self.shared.hv.vif_names(domid, translated.spec.vifs.len()) {
            Ok(names) => {
                self.status.vif_list = d
                    .config
                    .vif_list
                    .iter()
                    .cloned()
                    .zip(names)
                    .map(|(config, vif_used)| VifInfo { config, vif_used })
                    .collect();
            }
            Err(e) => log::warn!("{}: cannot read the vif names of domain {domid}: {e}", self.name()),
        }
    }
}
