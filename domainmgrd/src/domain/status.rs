//! A domain thread's published face: the DomainStatus file (written atomically, only when it
//! changed), one log line per state transition, and the entry the metrics sampler reads.

use uuid::Uuid;

use super::{AfterDeath, Domain, Phase};
use crate::agent::Outputs;
use crate::eve::{DomainStatus, ErrorDescription, SwState, UuidAndVersion};
use crate::metrics::Brief;

impl Domain {
    /// Writes the status file if it changed; logs each state transition once.
    pub(super) fn publish(&mut self) {
        self.status.state = match self.phase {
            Phase::Idle { halted: false } => SwState::INSTALLED,
            Phase::Booting => SwState::BOOTING,
            Phase::Idle { halted: true } | Phase::Preserved { .. } => SwState::HALTED,
            // On its way out while it still exists: being saved (by us or someone else).
            Phase::Suspended { .. } | Phase::Halting { then: AfterDeath::Saved, .. } => SwState::HALTING,
            Phase::Running { paused: false, .. } => SwState::RUNNING,
            Phase::Running { paused: true, .. } => SwState::PAUSED,
            // Until the domain is gone it is HALTING (never HALTED while it exists), whether we
            // asked for the halt or the guest stopped on its own; one that rebooted is BOOTING.
            Phase::Halting {
                then: AfterDeath::Halted | AfterDeath::GuestStopped | AfterDeath::MigratedAway, ..
            } => SwState::HALTING,
            Phase::Halting { then: AfterDeath::Reboot, .. } => SwState::BOOTING,
            Phase::Broken { .. } => SwState::BROKEN,
        };
        // EVE's meaning: activated from the boot's end until the domain is gone; so through
        // HALTING, and still when a halt fails (BROKEN); and through a guest's own reboot,
        // which EVE's xl restarts under the same task (its State stays RUNNING there; ours
        // says BOOTING while no domain exists, and zedmanager reads both as up). zedmanager tears down the domain's
        // networks and volumes only once this is false.
        self.status.activated = self.current_domid().is_some() || self.rebooting;
        self.status.config_failed = self.config_error.is_some();
        self.status.error = [&self.unreadable_error, &self.config_error, &self.run_error]
            .into_iter()
            .find_map(|e| e.clone())
            .unwrap_or_default();
        self.sync_console();
        self.write_status();
    }

    /// Keeps an EVE app's console hub running while the domain runs, as EVE's `xen-start`
    /// keeps `xl console` on it, and a container's (its log in its bundle, `domainctl logs`);
    /// none for other domains (their consoles stay `xl console`'s).
    fn sync_console(&mut self) {
        // Its console lasts as long as the domain: its shutdown is on it too.
        let collected = self.source == super::Source::Eve || self.container.is_some();
        let running = self.current_domid().filter(|_| collected);
        let Some(domid) = running else {
            self.console = None;
            return;
        };
        if let Some((d, hub)) = &self.console
            && *d == domid
            && hub.as_ref().is_none_or(crate::console::Hub::is_running)
        {
            return;
        }
        self.console = None; // the old hub goes first: it owns the socket's name
        let run_dir = &self.shared.paths.run_dir;
        let socket = crate::console::paths(run_dir, &self.key).1;
        let log = crate::console::log_path(run_dir, &self.key, self.container.as_deref());
        // An EVE app's lines go to the daemon's log too (EVE's log collector takes them from
        // there) unless it says `DisableLogs`; a container's only to its own log.
        let to_daemon_log =
            self.source == super::Source::Eve && !self.desired.as_ref().is_some_and(|d| d.config.disable_logs);
        let name = self.name();
        let hub = self.shared.hv.console_tty(domid).map_err(|e| e.to_string()).and_then(|tty| {
            let config = crate::console::HubConfig { name: name.clone(), tty, log, socket, to_daemon_log };
            crate::console::Hub::start(config).map_err(|e| e.to_string())
        });
        match hub {
            Ok(hub) => self.console = Some((domid, Some(hub))),
            Err(e) => {
                log::warn!("{name}: its console is not collected: {e}");
                self.console = Some((domid, None));
            }
        }
    }

    pub(super) fn write_status(&mut self) {
        if self.status.domain_name.is_empty() {
            self.status.domain_name = self.domain_name();
        }
        let s = &mut self.status;
        if let Some(d) = &self.desired {
            s.uuid_and_version = d.config.uuid_and_version.clone();
            s.display_name = d.config.display_name.clone();
            s.app_num = d.config.app_num;
            s.disable_logs = d.config.disable_logs;
            s.vm = d.config.vm.clone();
            // The mode it runs in, as EVE's status says it.
            s.vm.virtualization_mode = s.vm.virtualization_mode.or_default();
            // The status goes to every subscriber: the VNC password stays in the 0600 files that need
            // it (the xl config, the image records).
            if !s.vm.vnc_passwd.is_empty() {
                s.vm.vnc_passwd = String::new();
            }
        }
        s.state_name = s.state.to_string();
        let brief = Brief {
            uuid_and_version: s.uuid_and_version.clone(),
            display_name: s.display_name.clone(),
            domain_name: s.domain_name.clone(),
            state: s.state_name.clone(),
            domain_id: s.domain_id,
            activated: s.activated,
            vcpus: u32::try_from(s.vm.vcpus).unwrap_or(1).max(1),
        };
        self.shared.registry.write().insert(self.uuid, brief);
        if self.logged_state != Some((s.state, s.domain_id)) {
            let domid = if s.domain_id == 0 { String::new() } else { format!(", domain {}", s.domain_id) };
            log::info!("{} ({}{domid}): {}", s.display_name, self.key, s.state);
            self.logged_state = Some((s.state, s.domain_id));
        }
        let bytes = match serde_json::to_vec(&self.status) {
            Ok(b) => b,
            Err(e) => {
                log::error!("{}: cannot serialise its status: {e}", self.key);
                return;
            }
        };
        if self.written.as_deref() != Some(&bytes) {
            match self.shared.outputs.domain_status.publish(&self.key, &bytes) {
                Ok(()) => self.written = Some(bytes),
                Err(e) => log::error!("{}: cannot publish its status: {e}", self.key),
            }
        }
        if let Some(tx) = self.first_published.take() {
            let _ = tx.send(());
        }
    }
}

/// A status for a domain we know only by UUID so far.
pub fn empty_status(uuid: Uuid) -> DomainStatus {
    DomainStatus {
        uuid_and_version: UuidAndVersion { uuid, version: String::new() },
        display_name: String::new(),
        state: SwState::INSTALLED,
        state_name: SwState::INSTALLED.to_string(),
        activated: false,
        app_num: 0,
        pending_add: false,
        pending_modify: false,
        pending_delete: false,
        domain_name: String::new(),
        domain_id: 0,
        boot_time: None,
        disk_status_list: Vec::new(),
        vif_list: Vec::new(),
        io_adapter_list: Vec::new(),
        tried_count: 0,
        error: ErrorDescription::default(),
        config_failed: false,
        boot_failed: false,
        adapters_failed: false,
        boot_note: String::new(),
        exit_status: None,
        oci_config_dir: String::new(),
        env_variables: None,
        disk_copies: Vec::new(),
        migration: None,
        disable_logs: false,
        vm: Default::default(),
    }
}

/// The published status of `key` (loaded from its checkpoint at start), if it parses.
pub fn read_status(outputs: &Outputs, key: &str) -> Option<DomainStatus> {
    let bytes = outputs.domain_status.get(key)?;
    serde_json::from_slice(&bytes).ok()
}
