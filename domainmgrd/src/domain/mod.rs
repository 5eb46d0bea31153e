//! One domain's life: a thread that owns the domain's state machine and is the only writer of
//! its status file. It never waits on another domain: creates, shutdowns and retries happen here.
//!
//! ```text
//!                    activate                 create paused, offloads, unpause
//!   INSTALLED/HALTED ─────────> (BOOTING) ───────────────────────────────────> RUNNING
//!        ^   ^  failure: HALTED + BootFailed + error, retry after timer.boot.retry │
//!        │   └────────────────────────────────────────────────────────────────────┤
//!        │      guest poweroff / crash (on_crash=destroy): HALTED, then destroy;  │
//!        │      retried after timer.boot.retry while still wanted                 │
//!        │      guest reboot (on_reboot=restart): destroy → create again ─────────┤
//!        │      deactivate / delete: shutdown request (or ACPI power button)      │
//!        │                                                                        v
//!        └─────── death ─────── destroy after timer.domain.shutdown ───────── HALTING
//!                 (BROKEN if the domain will not die; destroy retried)
//! ```
//!
//! Inputs are commands from the supervisor (new config, delete, stop), domain events from the
//! hypervisor (shutdown with reason, death), and timers (boot retry, halt deadlines, the
//! safety-net poll). `Stop` leaves the domain exactly as it is: stopping the daemon never stops
//! a domain. Only a delete, an operator's stop or a config saying `Activate=false` halts a
//! running domain; a config that cannot be read or used leaves it running, with the error in
//! its status. `Activated` is true from the end of a boot until the domain is gone (EVE's
//! meaning: through HALTING and BROKEN).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use crossbeam_channel::{Receiver, Sender, select};
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;
use xenctl::{DomId, DomainEvent, DomainInfo, DomainState, ShutdownAction, ShutdownReason};

use crate::adapters::Adapters;
use crate::eve::{DomainConfig, DomainStatus, ErrorDescription, SwState, VifInfo};
use crate::files::{self, Marker, Paths};
use crate::hypervisor::{Hypervisor, WatchGuard};
use crate::metrics::Registry;
use crate::settings::Settings;
use crate::translate::{ConfigError, Translated};

mod hostops;
mod operator;
mod status;
use operator::Waiter;
pub use operator::{Operator, Permits, Report};
pub use status::{empty_status, read_status};

/// Where a domain's config comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An EVE DomainConfig file: its `Activate` says whether the domain runs.
    Eve,
    /// An xl.cfg file in the autostart directory: started at host start, by operators, or
    /// because it runs already; stopped by operators and host stop.
    Auto(PathBuf),
    /// Created or restored by an operator; forgotten once it stops.
    Transient,
}

/// A config as loaded from its file.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The parsed config (for non-EVE sources, made up from the spec).
    pub config: DomainConfig,
    /// What it translates to, or why it cannot be used.
    pub translated: Result<Translated, ConfigError>,
    /// Where it comes from.
    pub source: Source,
}

/// What the supervisor tells a domain thread.
#[derive(Debug)]
pub enum Command {
    /// A new or changed config.
    Config(Box<Loaded>),
    /// The config file changed but cannot be read; keep the last good one.
    ConfigUnreadable(String),
    /// The config is gone: halt the domain, remove its status, and end.
    Delete,
    /// The daemon is stopping: leave the domain as it is and end.
    Stop,
    /// Stop managing it (its autostart file went away): leave the domain as it is, remove its
    /// status, and end.
    Forget,
    /// An operator's or the host's request, reported on the sender when done.
    Operator(Operator, Sender<Report>),
    /// Host-start ended a host stop without a request for this domain: boot it now if it is
    /// wanted (an EVE domain with `Activate=true`), not after the retry timer.
    HostStarted,
}

/// What every domain thread shares.
#[derive(Clone)]
pub struct Shared {
    /// The hypervisor.
    pub hv: Arc<dyn Hypervisor>,
    /// Current settings (reloaded by the supervisor).
    pub settings: Arc<RwLock<Settings>>,
    /// The daemon's directories.
    pub paths: Arc<Paths>,
    /// Physical adapters: pciback state and reservations.
    pub adapters: Arc<Mutex<Adapters>>,
    /// What the metrics sampler knows of each domain.
    pub registry: Registry,
    /// Host stop is in effect: nothing boots or restarts until host start.
    pub host_stopped: Arc<AtomicBool>,
}

/// Where the domain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No domain. `halted`: it ran or failed (HALTED); otherwise it never ran (INSTALLED).
    Idle { halted: bool },
    /// Being created and started (published as BOOTING while libxl works).
    Booting,
    /// The domain runs (or an operator paused it).
    Running { domid: DomId, paused: bool },
    /// Getting rid of the domain.
    Halting { domid: DomId, stage: HaltStage, deadline: Instant, then: AfterDeath },
    /// Crashed and kept for inspection (on_crash=preserve).
    Preserved { domid: DomId },
    /// It will not die; destroy is retried.
    Broken { domid: DomId, next_try: Instant, then: AfterDeath },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HaltStage {
    /// A graceful shutdown was requested.
    Requested,
    /// The ACPI power button was pressed (no PV drivers).
    PowerButton,
    /// Destroyed; waiting for the death event.
    Destroyed,
}

/// What to do once the domain is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterDeath {
    /// A halt we asked for: HALTED, no error.
    Halted,
    /// The guest stopped on its own: HALTED, boot again after timer.boot.retry if wanted.
    GuestStopped,
    /// The guest rebooted: create it again at once.
    Reboot,
    /// Someone saved (suspended) it: HALTED, not restarted by us.
    Saved,
}

/// When an idle, wanted domain boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// As soon as it is idle.
    Now,
    /// Not before this instant (timer.boot.retry after a failure or a guest stop).
    At(Instant),
    /// Not until it is activated again (it was saved by someone else).
    Never,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("paths", &self.paths).finish_non_exhaustive()
    }
}

/// The domain thread's state.
pub struct Domain {
    shared: Shared,
    key: String,
    uuid: Uuid,
    desired: Option<Loaded>,
    phase: Phase,
    status: DomainStatus,
    deleting: bool,
    events_tx: Sender<DomainEvent>,
    events_rx: Receiver<DomainEvent>,
    watch: Option<Box<dyn WatchGuard>>,
    retry: Retry,
    /// Errors by source; the status shows the first present.
    unreadable_error: Option<ErrorDescription>,
    config_error: Option<ErrorDescription>,
    run_error: Option<ErrorDescription>,
    next_poll: Instant,
    written: Option<Vec<u8>>,
    logged_state: Option<(SwState, u32)>,
    finished: bool,
    /// An operator stopped it: it stays stopped (across reboots) until started.
    operator_stopped: bool,
    /// The grace of the next halt, when a request gave one.
    halt_timeout: Option<Duration>,
    /// Whether the next halt may destroy the domain when its grace runs out.
    halt_destroy: bool,
    /// Appended to the report of the halt in progress.
    halt_note: Option<String>,
    /// Requests reporting later.
    waiters: Vec<Waiter>,
    /// It has run under this thread (a transient domain is forgotten once it stops).
    ever_ran: bool,
    /// Told to forget it: end without touching it.
    forget: bool,
    /// The boot attempts the previous daemon reported (an adopted domain keeps counting).
    previous_tries: Option<u32>,
    /// Told once its first status is written (the daemon's start waits for that).
    first_published: Option<Sender<()>>,
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domain").field("key", &self.key).field("phase", &self.phase).finish_non_exhaustive()
    }
}

impl Domain {
    /// A domain thread's state for `key` (the config file's stem, the UUID).
    pub fn new(shared: Shared, key: String, uuid: Uuid, desired: Option<Loaded>) -> Domain {
        let (events_tx, events_rx) = crossbeam_channel::unbounded();
        let poll = shared.settings.read().poll_interval;
        let mut status = empty_status(uuid);
        // Keep what the previous daemon reported (boot time, tries, the vifs and disks it gave
        // the domain), to be overwritten as we learn.
        let previous = read_status(&shared.paths, &key);
        if let Some(previous) = &previous {
            status.boot_time = previous.boot_time;
            status.tried_count = previous.tried_count;
            status.vif_list = previous.vif_list.clone();
            status.disk_status_list = previous.disk_status_list.clone();
        }
        let mut domain = Domain {
            shared,
            key,
            uuid,
            desired: None,
            phase: Phase::Idle { halted: false },
            status,
            deleting: false,
            events_tx,
            events_rx,
            watch: None,
            retry: Retry::Now,
            unreadable_error: None,
            config_error: None,
            run_error: None,
            next_poll: Instant::now() + poll,
            written: None,
            logged_state: None,
            finished: false,
            operator_stopped: false,
            halt_timeout: None,
            halt_destroy: true,
            halt_note: None,
            waiters: Vec::new(),
            ever_ran: false,
            forget: false,
            previous_tries: previous.map(|p| p.tried_count),
            first_published: None,
        };
        domain.operator_stopped = domain.shared.paths.operator_stopped(uuid);
        if let Some(loaded) = desired {
            domain.set_desired(loaded);
        }
        domain.load_saved_intent();
        domain
    }

    /// Marks the domain for removal from the start (a config deleted while the daemon was down).
    pub fn delete_on_start(&mut self) {
        self.deleting = true;
    }

    /// Where its config comes from (an EVE config until one is known).
    pub fn source(&self) -> Source {
        self.desired.as_ref().map_or(Source::Eve, |d| d.source.clone())
    }

    /// Its config file exists but cannot be read or parsed: say so, and keep what is known (the
    /// last good config, if any; a running domain is left running either way).
    pub fn config_unreadable(&mut self, reason: String) {
        log::error!("{}: {reason}", self.name());
        self.unreadable_error =
            Some(ErrorDescription::now(reason, "the config file is fixed; the last good config stays in force"));
    }

    /// Asks to be told (on `tx`) once its first status is written.
    pub fn tell_first_status(&mut self, tx: Sender<()>) {
        self.first_published = Some(tx);
    }

    /// The thread body: take over `existing` (the hypervisor's domain with our UUID, if any),
    /// then follow commands, events and timers until deleted or stopped. The supervisor keeps
    /// `commands` open until the thread's end is recorded (a panic's included), so it never
    /// starts a second thread for the domain meanwhile.
    pub fn run(mut self, commands: &Receiver<Command>, existing: Option<DomainInfo>) {
        self.adopt(existing);
        self.reconcile();
        self.publish();
        while !self.finished {
            let timeout = self.next_deadline().saturating_duration_since(Instant::now());
            select! {
                recv(commands) -> cmd => match cmd {
                    Ok(Command::Stop) | Err(_) => return,
                    Ok(Command::Forget) => {
                        self.forget = true;
                        break;
                    }
                    Ok(Command::Operator(op, reply)) => self.on_operator(op, reply),
                    Ok(cmd) => self.on_command(cmd),
                },
                recv(self.events_rx) -> ev => {
                    if let Ok(ev) = ev {
                        self.on_event(ev);
                    }
                }
                default(timeout) => self.on_timer(),
            }
            self.reconcile();
            self.publish();
            self.check_waiters();
        }
        self.finish();
    }

    fn settings(&self) -> Settings {
        self.shared.settings.read().clone()
    }

    fn name(&self) -> String {
        self.desired.as_ref().map_or_else(|| self.key.clone(), |d| d.config.display_name.clone())
    }

    fn domain_name(&self) -> String {
        self.desired.as_ref().map_or_else(|| self.status.domain_name.clone(), |d| d.config.domain_name())
    }

    /// Whether a domain should run now.
    fn wanted(&self) -> bool {
        !self.deleting
            && !self.operator_stopped
            && !self.shared.host_stopped.load(Ordering::SeqCst)
            && self.desired.as_ref().is_some_and(|d| d.config.activate && d.translated.is_ok())
    }

    /// Whether the domain must go: deleted, stopped by an operator, or deactivated by a config
    /// that says `Activate=false`. A config that cannot be read, parsed or translated says
    /// nothing: a running domain is left alone (and the error is in its status), whether it
    /// was like that when the daemon started (no config known yet) or became so later.
    fn unwanted(&self) -> bool {
        self.deleting || self.operator_stopped || self.desired.as_ref().is_some_and(|d| !d.config.activate)
    }

    fn set_desired(&mut self, mut loaded: Loaded) {
        // A config that comes back while its domain is being removed wins.
        self.deleting = false;
        // Only EVE configs say whether to run; for the others that is the thread's own state.
        if loaded.source != Source::Eve {
            loaded.config.activate = self.desired.as_ref().is_some_and(|d| d.config.activate);
        }
        let was_active = self.desired.as_ref().is_some_and(|d| d.config.activate);
        if loaded.config.activate && !was_active && !matches!(self.phase, Phase::Running { .. }) {
            // A fresh activation: count tries anew and boot at once. (A running domain whose
            // config was unknown, e.g. unreadable when the daemon started, was not activated
            // now: it keeps its count.)
            self.status.tried_count = 0;
            self.retry = Retry::Now;
        }
        self.unreadable_error = None;
        self.config_error = match &loaded.translated {
            Ok(_) => None,
            Err(e) => {
                log::error!("{}: {e}", loaded.config.display_name);
                Some(ErrorDescription::now(e.to_string(), "the config file is fixed"))
            }
        };
        if let (Some(old), Ok(new)) = (&self.desired, &loaded.translated) {
            let running = matches!(self.phase, Phase::Running { .. });
            if running && old.translated.as_ref().is_ok_and(|t| t.spec != new.spec) {
                log::info!(
                    "{}: config changed; it takes effect when the domain next boots",
                    loaded.config.display_name
                );
            }
        }
        self.desired = Some(loaded);
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Config(loaded) => self.set_desired(*loaded),
            Command::ConfigUnreadable(reason) => self.config_unreadable(reason),
            Command::Delete => {
                log::info!("{}: config deleted", self.name());
                self.deleting = true;
            }
            Command::HostStarted => {
                if matches!(self.retry, Retry::At(_)) {
                    self.retry = Retry::Now;
                }
            }
            Command::Stop | Command::Forget | Command::Operator(..) => {}
        }
    }

    /// Takes over the domain the hypervisor has with our UUID, if any.
    fn adopt(&mut self, existing: Option<DomainInfo>) {
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
                self.phase = Phase::Halting {
                    domid,
                    stage: HaltStage::Destroyed,
                    deadline: Instant::now() + self.settings().destroy_timeout,
                    then: AfterDeath::GuestStopped,
                };
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

    /// Acts on the difference between what is wanted and where the domain is.
    fn reconcile(&mut self) {
        match self.phase {
            Phase::Idle { .. } if self.wanted() => {
                let due = match self.retry {
                    Retry::Now => true,
                    Retry::At(at) => Instant::now() >= at,
                    Retry::Never => false,
                };
                if due {
                    self.boot();
                }
            }
            Phase::Idle { .. } if self.deleting => self.finished = true,
            Phase::Idle { .. }
                if self.ever_ran && self.desired.as_ref().is_some_and(|d| d.source == Source::Transient) =>
            {
                self.finished = true
            }
            Phase::Running { domid, .. } if self.unwanted() => self.begin_halt(domid),
            Phase::Preserved { domid } if self.unwanted() => self.destroy(domid, AfterDeath::Halted),
            _ => {}
        }
    }

    fn boot(&mut self) {
        let Some(Ok(translated)) = self.desired.as_ref().map(|d| d.translated.clone()) else {
            return;
        };
        let mut spec = translated.spec;
        let name = self.name();
        self.retry = Retry::Now;
        self.status.tried_count += 1;
        self.phase = Phase::Booting;
        self.status.domain_name = spec.name.clone();
        self.status.disk_status_list = translated.disks;
        self.publish();

        let wanted = self.desired.as_ref().map(|d| d.config.io_adapter_list.clone()).unwrap_or_default();
        if !wanted.is_empty() {
            // Bound first: the guard must be gone before boot_failed locks again.
            let reserved = self.shared.adapters.lock().reserve(self.uuid, &wanted);
            match reserved {
                Ok(bdfs) => {
                    self.status.adapters_failed = false;
                    spec.pcis = bdfs.into_iter().map(xenctl::PciSpec::new).collect();
                }
                Err(e) => {
                    self.status.adapters_failed = true;
                    self.boot_failed(e);
                    return;
                }
            }
        }
        // Exactly what libxl is asked for, the reserved devices included.
        let app_num = self.desired.as_ref().map_or(0, |d| d.config.app_num);
        match spec.to_xl_config() {
            Ok(text) => {
                let header = format!("# Generated by domainmgrd for {name} ({}); what it asked libxl for.\n", self.key);
                if let Err(e) =
                    files::write_atomic(&self.shared.paths.xl_cfg_file(app_num), format!("{header}{text}").as_bytes())
                {
                    log::warn!("{name}: cannot write its xl config: {e}");
                }
            }
            Err(e) => log::warn!("{name}: its config has no xl.cfg form: {e}"),
        }
        if let Err(e) = self.record_fresh_boot() {
            self.boot_failed(e);
            return;
        }
        if let Err(e) = self.shared.paths.write_marker(self.uuid, Marker::Creating) {
            self.boot_failed(format!("cannot record the create in {}: {e}", self.shared.paths.run_dir.display()));
            return;
        }
        let started = Instant::now();
        let domid = match self.shared.hv.create_paused(&spec) {
            Ok(domid) => domid,
            Err(e) => {
                let _ = self.shared.paths.clear_marker(self.uuid);
                self.boot_failed(e.to_string());
                return;
            }
        };
        self.arm_watch(domid);
        let hv = &self.shared.hv;
        let prepared = hv
            .disable_vif_offload(domid, spec.vifs.len())
            .and_then(|()| hv.vif_names(domid, spec.vifs.len()))
            .and_then(|names| hv.unpause(domid).map(|()| names));
        let names = match prepared {
            Ok(names) => names,
            Err(e) => {
                if let Err(d) = self.shared.hv.destroy(domid) {
                    log::error!("{name}: destroying domain {domid} after a failed boot: {d}");
                }
                self.watch = None;
                let _ = self.shared.paths.clear_marker(self.uuid);
                self.boot_failed(e.to_string());
                return;
            }
        };
        let _ = self.shared.paths.write_marker(self.uuid, Marker::Running(domid));
        self.status.vif_list = self
            .desired
            .as_ref()
            .map(|d| d.config.vif_list.clone())
            .unwrap_or_default()
            .into_iter()
            .zip(names)
            .map(|(config, vif_used)| VifInfo { config, vif_used })
            .collect();
        self.status.domain_id = domid.get();
        self.status.boot_time = Some(Utc::now());
        self.status.boot_failed = false;
        self.run_error = None;
        self.ever_ran = true;
        self.phase = Phase::Running { domid, paused: false };
        log::debug!("{name}: domain {domid} booted in {:?}", started.elapsed());
    }

    fn boot_failed(&mut self, error: String) {
        self.shared.adapters.lock().release(self.uuid);
        let retry = self.settings().boot_retry;
        log::error!("{}: boot failed: {error}; retrying in {}s", self.name(), retry.as_secs());
        self.status.boot_failed = true;
        self.run_error = Some(ErrorDescription::now(error, format!("retry in {} s", retry.as_secs())));
        self.status.domain_id = 0;
        self.phase = Phase::Idle { halted: true };
        self.retry = Retry::At(Instant::now() + retry);
    }

    fn arm_watch(&mut self, domid: DomId) {
        match self.shared.hv.watch(domid, self.events_tx.clone()) {
            Ok(guard) => self.watch = Some(guard),
            // The safety-net poll still notices what the events would have said.
            Err(e) => log::error!("{}: cannot watch domain {domid} for events: {e}", self.name()),
        }
    }

    fn begin_halt(&mut self, domid: DomId) {
        let settings = self.settings();
        let deadline = Instant::now() + self.halt_timeout.take().unwrap_or(settings.shutdown_timeout);
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

    fn destroy(&mut self, domid: DomId, then: AfterDeath) {
        let settings = self.settings();
        // Say what is happening before the (slow: device teardown runs hotplug scripts) destroy:
        // a guest that stopped on its own is reported HALTED now, not when the teardown ends.
        self.phase = Phase::Halting {
            domid,
            stage: HaltStage::Destroyed,
            deadline: Instant::now() + settings.destroy_timeout,
            then,
        };
        self.publish();
        match self.shared.hv.destroy(domid) {
            Ok(()) => {
                self.phase = Phase::Halting {
                    domid,
                    stage: HaltStage::Destroyed,
                    deadline: Instant::now() + settings.destroy_timeout,
                    then,
                }
            }
            Err(xenctl::Error::DomainNotFound { .. }) => self.gone(then),
            Err(e) => {
                log::error!("{}: destroy of domain {domid} failed: {e}", self.name());
                self.run_error =
                    Some(ErrorDescription::now(format!("destroy of domain {domid} failed: {e}"), "destroy is retried"));
                self.phase = Phase::Broken { domid, next_try: Instant::now() + settings.destroy_timeout, then };
            }
        }
    }

    /// The domain no longer exists.
    fn gone(&mut self, then: AfterDeath) {
        self.watch = None;
        self.shared.adapters.lock().release(self.uuid);
        let _ = self.shared.paths.clear_marker(self.uuid);
        self.status.domain_id = 0;
        self.phase = Phase::Idle { halted: true };
        // DESTROY_LEFT=false holds for one halt, the host-stop's, however it ends.
        self.halt_destroy = true;
        match then {
            AfterDeath::Halted => {
                self.run_error = None;
                self.status.boot_failed = false;
            }
            AfterDeath::GuestStopped => self.retry = Retry::At(Instant::now() + self.settings().boot_retry),
            AfterDeath::Reboot => self.retry = Retry::Now,
            AfterDeath::Saved => self.on_saved(),
        }
    }

    fn current_domid(&self) -> Option<DomId> {
        match self.phase {
            Phase::Idle { .. } | Phase::Booting => None,
            Phase::Running { domid, .. }
            | Phase::Halting { domid, .. }
            | Phase::Preserved { domid }
            | Phase::Broken { domid, .. } => Some(domid),
        }
    }

    fn on_event(&mut self, ev: DomainEvent) {
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
                self.destroy(domid, then)
            }
            (Phase::Halting { then, .. } | Phase::Broken { then, .. }, DomainEvent::Death { .. }) => self.gone(then),
            (Phase::Preserved { .. }, DomainEvent::Death { .. }) => self.gone(AfterDeath::Halted),
            _ => {}
        }
    }

    /// The guest shut down by itself (or after a request we did not make).
    fn guest_shutdown(&mut self, domid: DomId, reason: ShutdownReason) {
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
            ShutdownReason::Suspend => {
                log::info!("{name}: domain {domid} suspended (saved) outside domainmgrd; not restarting it");
                self.run_error = Some(ErrorDescription::now(
                    format!("domain {domid} was saved outside domainmgrd"),
                    "reactivate to boot it again",
                ));
                self.destroy(domid, AfterDeath::Saved);
                return;
            }
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

    fn on_timer(&mut self) {
        let now = Instant::now();
        match self.phase {
            Phase::Halting { domid, stage, deadline, then } if now >= deadline => match stage {
                HaltStage::Requested | HaltStage::PowerButton if !self.halt_destroy => {
                    // Asked not to destroy (host stop without DESTROY_LEFT).
                    self.watchdog_without_destroy(domid, then);
                }
                HaltStage::Requested | HaltStage::PowerButton => {
                    log::warn!("{}: domain {domid} did not shut down in time; destroying it", self.name());
                    let note = self.halt_note.take().unwrap_or_default();
                    self.halt_note = Some(format!("{note} (destroyed: it did not shut down in time)"));
                    self.destroy(domid, then);
                }
                HaltStage::Destroyed => match self.shared.hv.info(domid) {
                    Ok(None) => self.gone(then),
                    _ => {
                        log::error!("{}: domain {domid} did not die after destroy", self.name());
                        self.run_error = Some(ErrorDescription::now(
                            format!("domain {domid} did not die after destroy"),
                            "destroy is retried",
                        ));
                        self.phase = Phase::Broken { domid, next_try: now + self.settings().destroy_timeout, then };
                    }
                },
            },
            Phase::Broken { domid, next_try, then } if now >= next_try => self.retry_destroy(domid, then),
            _ => {}
        }
        if now >= self.next_poll {
            self.next_poll = now + self.settings().poll_interval;
            self.safety_net_poll();
        }
    }

    /// Tries again to get rid of a domain that will not die. It stays BROKEN until it is gone
    /// (its death event, or a check that finds it gone), however many tries that takes.
    fn retry_destroy(&mut self, domid: DomId, then: AfterDeath) {
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
        self.phase = Phase::Broken { domid, next_try: Instant::now() + self.settings().destroy_timeout, then };
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
                    self.phase = Phase::Halting {
                        domid,
                        stage: HaltStage::Destroyed,
                        deadline: Instant::now() + self.settings().destroy_timeout,
                        then: AfterDeath::GuestStopped,
                    };
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

    fn next_deadline(&self) -> Instant {
        let mut at = self.next_poll;
        if let (Retry::At(r), Phase::Idle { .. }) = (self.retry, self.phase) {
            at = at.min(r);
        }
        match self.phase {
            Phase::Halting { deadline, .. } => at.min(deadline),
            Phase::Broken { next_try, .. } => at.min(next_try),
            _ => at,
        }
    }

    /// Deleted and gone (or forgotten): remove what we published about it.
    /// The status file goes last: to its readers (zedmanager) its removal means everything
    /// else about the domain is gone too; the waiting requests hear of it after that.
    fn finish(&mut self) {
        self.forget_transient_run();
        let paths = &self.shared.paths;
        if let Some(d) = &self.desired {
            let _ = files::remove_if_exists(&paths.xl_cfg_file(d.config.app_num));
        }
        let _ = paths.clear_marker(self.uuid);
        self.shared.registry.write().remove(&self.uuid);
        let _ = files::remove_if_exists(&paths.status_file(&self.key));
        for w in std::mem::take(&mut self.waiters) {
            self.report(&w.reply, w.since, !self.forget, "removed");
        }
        log::info!("{} ({}): removed", self.name(), self.domain_name());
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
