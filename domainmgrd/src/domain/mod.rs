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
//!
//!   RUNNING ── save: record `saving`, suspend to <image>.partial ──> HALTING (saving)
//!        ^        complete: record, rename into place, destroy ──> death ──> HALTED (saved)
//!        └──────── failed, aborted (watchdog), or cut short by a daemon crash: resumed
//!   RUNNING ── suspended by someone else (xl save) ──> HALTING (suspended) ──> death: HALTED
//!        ^                                                  │
//!        └──────────────────── resumed ────────────────────┘
//! ```
//!
//! Inputs are commands from the supervisor (new config, delete, stop), domain events from the
//! hypervisor (shutdown with reason, death), and timers (boot retry, halt deadlines, the
//! safety-net poll). `Stop` leaves the domain exactly as it is: stopping the daemon never stops
//! a domain. Only a delete, an operator's stop or a config saying `Activate=false` halts a
//! running domain; a config that cannot be read or used leaves it running, with the error in
//! its status. `Activated` is true from the end of a boot until the domain is gone (EVE's
//! meaning: through HALTING and BROKEN), and through a guest's own reboot (destroy and
//! create again: BOOTING meanwhile), which EVE never sees as the end of a run.
//!
//! This file holds the machine's types and the thread's loop; the transitions live beside it:
//! `adopt.rs` takes over a domain found running (and finishes what a daemon that died left half
//! done: a create, a save), `boot.rs` boots one, `halt.rs` halts it and
//! follows it to its death (events, guest shutdowns, destroys that fail), `timers.rs` fires the
//! deadlines and the safety-net poll, `operator.rs` and `hostops.rs` serve operators' and the
//! host's requests, and `status.rs` publishes the result.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;
use xenctl::{DomId, DomainEvent, DomainInfo};

use crate::adapters::Adapters;
use crate::agent::Outputs;
use crate::eve::{DomainConfig, DomainStatus, ErrorDescription, SwState};
use crate::files::Paths;
use crate::hypervisor::{Hypervisor, WatchGuard};
use crate::metrics::Registry;
use crate::settings::Settings;
use crate::translate::{ConfigError, Translated};

mod adopt;
mod bookkeeping;
mod boot;
mod halt;
mod hostops;
mod migrate;
mod operator;
mod save;
mod status;
mod timers;
pub use migrate::MigrateTo;
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

impl Source {
    /// The name `domainctl list` shows, and that a receiver hears.
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Eve => "eve",
            Source::Auto(_) => "auto",
            Source::Transient => "transient",
        }
    }
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
    /// It migrated in and runs here (`info`); `from` is the sender, if known.
    MigratedIn {
        /// The received domain.
        info: Box<DomainInfo>,
        /// The sending host.
        from: Option<String>,
    },
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
    /// What the daemon publishes (DomainStatus and the rest, over EVE's pubsub).
    pub outputs: Arc<Outputs>,
    /// Host stop is in effect: nothing boots or restarts until host start.
    pub host_stopped: Arc<AtomicBool>,
    /// The xl config files the domains wrote (`<status-dir>/xen/`), by the domain that wrote
    /// each: two domains never share one.
    pub xl_cfg_files: Arc<Mutex<std::collections::HashMap<PathBuf, Uuid>>>,
    /// xl.conf, applied to every spec before libxl sees it (`None`: xl's defaults).
    pub xl_conf: Option<PathBuf>,
    /// How an EVE app's disk images are checked against their formats before a boot.
    pub disk_probe: crate::diskformat::Probe,
    /// The keys that decrypt EVE apps' encrypted cloud-init user data.
    pub cipher_keys: crate::cloudinit::CipherKeys,
    /// The daemon's own device setup (native.rs); `None`: Xen's hotplug scripts do it all.
    pub native: Option<Arc<xen_hotplug::NativeDevices>>,
    /// How containers boot: their kernel and init (EVE's container apps too).
    pub containers: Arc<crate::container::Containers>,
    /// The domains' own copies of shared images; `None`: disks use their images in place.
    pub disk_copies: Option<Arc<crate::diskcopies::DiskCopies>>,
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
    /// Suspended by someone else (a save outside domainmgrd): it is either destroyed once
    /// saved, or resumed; watched closely until then.
    Suspended { domid: DomId },
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
    /// It migrated to another host: HALTED, not restarted here (migrate.rs).
    MigratedAway,
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

/// The instant `d` from now; far in the future when `d` is too long to add, so that no
/// timeout from a settings file or the command line can make a thread panic.
pub(crate) fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
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
    /// Where its config comes from (known before the config itself, for a domain adopted
    /// without one).
    source: Source,
    /// The xl config file it wrote, if any.
    xl_cfg_written: Option<PathBuf>,
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
    /// A transient domain whose guest stopped by itself: its run is over, as `xl create`'s.
    guest_ended: bool,
    /// Told to forget it: end without touching it.
    forget: bool,
    /// The boot attempts the previous daemon reported (an adopted domain keeps counting).
    previous_tries: Option<u32>,
    /// Told once its first status is written (the daemon's start waits for that).
    first_published: Option<Sender<()>>,
    /// The guest rebooted and is being created again: to EVE that is one run (xl's own
    /// restart keeps the task), so it stays activated, keeps its adapters and boot time.
    rebooting: bool,
    /// What its adapters resolved to at its boot (PCI devices, IRQs, I/O ports, serial ports,
    /// USB devices), which a reboot gives it again.
    held_adapters: crate::adapters::Reservation,
    /// Set by the supervisor to cut short a disk copy under way (diskcopies.rs).
    copy_cancel: Arc<AtomicBool>,
    /// The loop devices its disks hold (native.rs): released when the domain is gone.
    native_loops: Vec<xen_hotplug::HeldLoop>,
    /// An EVE app's console hub while it runs (see console.rs), or the domain whose console
    /// could not be opened (said once).
    console: Option<(DomId, Option<crate::console::Hub>)>,
    /// A container's bundle (container/), when the domain runs one: its console is collected
    /// into the bundle, and its exit is recorded there.
    container: Option<PathBuf>,
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
        let container = crate::container::bundle_of(&crate::container::containers_dir(&shared.paths.state_dir), uuid);
        let mut status = empty_status(uuid);
        // Keep what the previous daemon reported (boot time, tries, the vifs and disks it gave
        // the domain), to be overwritten as we learn.
        let previous = read_status(&shared.outputs, &key);
        if let Some(previous) = &previous {
            status.boot_time = previous.boot_time;
            status.tried_count = previous.tried_count;
            status.vif_list = previous.vif_list.clone();
            status.disk_status_list = previous.disk_status_list.clone();
            // Until its config is read (or while it is away, within the removal grace), the
            // domain is still the one the previous status described.
            status.uuid_and_version = previous.uuid_and_version.clone();
            status.display_name = previous.display_name.clone();
            status.app_num = previous.app_num;
            status.io_adapter_list = previous.io_adapter_list.clone();
            status.vm = previous.vm.clone();
            status.migration = previous.migration.clone();
        }
        let mut domain = Domain {
            shared,
            key,
            uuid,
            desired: None,
            source: Source::Eve,
            xl_cfg_written: None,
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
            next_poll: after(poll),
            written: None,
            logged_state: None,
            finished: false,
            operator_stopped: false,
            halt_timeout: None,
            halt_destroy: true,
            halt_note: None,
            waiters: Vec::new(),
            ever_ran: false,
            guest_ended: false,
            forget: false,
            previous_tries: previous.map(|p| p.tried_count),
            first_published: None,
            rebooting: false,
            held_adapters: crate::adapters::Reservation::default(),
            native_loops: Vec::new(),
            copy_cancel: Arc::default(),
            console: None,
            container,
        };
        domain.operator_stopped = domain.shared.paths.operator_stopped(uuid);
        if let Some(loaded) = desired {
            domain.set_desired(loaded);
        }
        domain.load_saved_intent();
        domain
    }

    /// Where its config comes from (an EVE config unless a config or the supervisor said).
    /// The flag that cuts short a disk copy this domain's thread is making.
    pub fn copy_cancel(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.copy_cancel)
    }

    pub fn source(&self) -> Source {
        self.source.clone()
    }

    /// Says where its config comes from before any config is known: a domain adopted from its
    /// record, whose autostart file cannot be read or whose EVE config is not back yet.
    pub fn set_source(&mut self, source: Source) {
        self.source = source;
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
            // A thread that ends tells its waiters once its clean-up is done (finish): who
            // heard that its domain is gone finds the thread gone too (host-start restoring the
            // transient domain host-stop just saved spawns a new one).
            if !self.finished {
                self.check_waiters();
            }
        }
        self.finish();
    }

    fn settings(&self) -> Settings {
        self.shared.settings.read().clone()
    }

    fn name(&self) -> String {
        self.desired.as_ref().map_or_else(|| self.key.clone(), |d| d.config.display_name.clone())
    }

    /// The Xen domain's name: its spec's (EVE's `<UUID>.<Version>.<AppNum>` for an EVE config,
    /// the xl.cfg's `name` for the others), else the name it was found with.
    fn domain_name(&self) -> String {
        let spec = self.desired.as_ref().and_then(|d| d.translated.as_ref().ok()).map(|t| &t.spec);
        spec.map_or_else(|| self.status.domain_name.clone(), |spec| spec.name.clone())
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
        self.copy_cancel.store(false, Ordering::SeqCst);
        // Only EVE configs say whether to run; for the others that is the thread's own state.
        // A domain adopted running before its config was known is active.
        if loaded.source != Source::Eve {
            loaded.config.activate =
                self.desired.as_ref().map_or(self.current_domid().is_some(), |d| d.config.activate);
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
        self.source = loaded.source.clone();
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
            Command::MigratedIn { info, from } => self.migrated_in(*info, from),
            Command::Stop | Command::Forget | Command::Operator(..) => {}
        }
    }

    /// Acts on the difference between what is wanted and where the domain is.
    fn reconcile(&mut self) {
        match self.phase {
            Phase::Idle { .. } if self.guest_ended => self.finished = true,
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
            Phase::Preserved { domid } | Phase::Suspended { domid } if self.unwanted() => {
                self.destroy(domid, AfterDeath::Halted)
            }
            _ => {}
        }
    }

    fn current_domid(&self) -> Option<DomId> {
        match self.phase {
            Phase::Idle { .. } | Phase::Booting => None,
            Phase::Running { domid, .. }
            | Phase::Halting { domid, .. }
            | Phase::Preserved { domid }
            | Phase::Suspended { domid }
            | Phase::Broken { domid, .. } => Some(domid),
        }
    }

    /// Deleted and gone (or forgotten): remove what we published about it.
    /// The status file goes last: to its readers (zedmanager) its removal means everything
    /// else about the domain is gone too; the waiting requests hear of it after that.
    fn finish(&mut self) {
        if let Some(bundle) = self.container.clone().filter(|_| self.source == Source::Transient && !self.forget) {
            self.end_container_run(&bundle);
        }
        self.forget_transient_run();
        // A deleted container app that never ran, or whose boot failed, may hold its mount.
        if !self.forget && self.current_domid().is_none() {
            self.unmount_container_root();
        }
        // Its own copies of shared images go with its config (not with a forget).
        if let Some(copies) = self.shared.disk_copies.as_ref().filter(|_| !self.forget) {
            for path in copies.remove_for(self.uuid) {
                log::info!("{}: removed its disk copy {}", self.name(), path.display());
            }
        }
        self.release_xl_cfg();
        crate::cloudinit::remove(&self.shared.paths.status_dir, self.uuid);
        self.clear_record();
        self.shared.registry.write().remove(&self.uuid);
        Outputs::unpublish(&self.shared.outputs.domain_status, &self.key);
        if !self.forget {
            self.check_waiters();
        }
        for w in std::mem::take(&mut self.waiters) {
            self.report(&w.reply, w.since, !self.forget, "removed");
        }
        log::info!("{} ({}): removed", self.name(), self.domain_name());
    }
}
