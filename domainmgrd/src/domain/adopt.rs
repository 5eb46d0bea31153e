//! Taking over, when the thread starts, the domain the hypervisor already has with our UUID:
//! one a daemon left half-created (still paused under its `creating` marker) is destroyed to
//! be created again; any other is adopted untouched (same domid, events re-armed, adapters
//! and boot count kept), and one that shut down or began dying while no daemon watched is
//! handled at once, so it is never published as running.

use std::time::Instant;

use xenctl::{DomId, DomainInfo, DomainState};

use super::{AfterDeath, Domain, Phase, Source};
use crate::eve::VifInfo;
use crate::files::Marker;

impl Domain {
    /// Takes over the domain the hypervisor has with our UUID, if any.
    pub(super) fn adopt(&mut self, existing: Option<DomainInfo>) {
        let marker = self.shared.paths.read_marker(self.uuid);
        let Some(info) = existing else {
            if marker.is_some() {
                let _ = self.shared.paths.clear_marker(self.uuid);
            }
            return;
        };
        let domid = info.domid;
        self.status.domain_name = info.name.clone().unwrap_or_default();
        // Half-created: we marked a create and it is still paused (never unpaused by us). A
        // `creating` domain that runs was unpaused by a daemon killed before it could record
        // that; it is adopted like any other.
        if marker == Some(Marker::Creating) && info.state == DomainState::Paused {
            log::warn!(
                "{}: domain {domid} was left half-created by an earlier domainmgrd; destroying it to create it again",
                self.name()
            );
            if let Err(e) = self.shared.hv.destroy(domid) {
                log::error!("{}: destroying the half-created domain {domid}: {e}", self.name());
                self.phase = Phase::Broken {
                    domid,
                    next_try: Instant::now() + self.settings().destroy_timeout,
                    then: AfterDeath::Halted,
                };
                self.status.domain_id = domid.get();
                self.arm_watch(domid);
                return;
            }
            let _ = self.shared.paths.clear_marker(self.uuid);
            self.phase = Phase::Idle { halted: false };
            return;
        }
        self.arm_watch(domid);
        if let Some(d) = &self.desired
            && !d.config.io_adapter_list.is_empty()
        {
            self.shared.adapters.lock().adopt(self.uuid, &d.config.io_adapter_list);
        }
        // Ours from now on, and not half-created: a later pause by an operator is not a create
        // cut short.
        if marker != Some(Marker::Running(domid))
            && let Err(e) = self.shared.paths.write_marker(self.uuid, Marker::Running(domid))
        {
            log::error!("{}: cannot record that domain {domid} runs: {e}", self.name());
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
        match info.state {
            DomainState::Dying => {
                log::info!("{}: adopted domain {domid}, which is dying", self.name());
                self.phase = self.awaiting_death(domid, AfterDeath::GuestStopped);
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
