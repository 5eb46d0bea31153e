//! The supervisor: starts the daemon (one instance at a time), takes over the domains that
//! already run, starts one thread per configured domain, and routes config changes to them.
//!
//! At start it lists the hypervisor's domains once and gives each domain thread the domain with
//! its UUID, if there is one: a running domain is adopted untouched (same domid, events
//! re-armed); a domain left half-created by a daemon that died mid-create is destroyed and
//! created again; a domain whose UUID matches no config and that we have no record of creating
//! is never touched. Stopping the daemon stops no domain. Later, a domain thread started for a
//! config that appears (or comes back, or after a thread's panic) looks up the hypervisor's
//! domain with its UUID the same way and adopts it: there is never a second domain for a UUID.
//!
//! Nothing is touched before the daemon holds its lock and its control socket: a start that
//! fails leaves every domain and file as it was.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select};
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;
use xenctl::DomainInfo;

use crate::adapters::{Adapters, Sources};
use crate::control::{self, ControlMsg};
use crate::domain::{self, Command, Domain, Loaded, Shared, Source};
use crate::eve::DomainConfig;
use crate::files::{self, Paths};
use crate::hostcfg::HostConfig;
use crate::hypervisor::Hypervisor;
use crate::metrics::{Sample, Sampler};
use crate::prometheus::{self, Listen};
use crate::settings::{Settings, SettingsError};
use crate::translate;
use crate::watcher::{self, Change, Watcher};

/// How the daemon is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directories.
    pub paths: Paths,
    /// The settings file, if any.
    pub settings_file: Option<PathBuf>,
    /// `--config=key:value` flags.
    pub config_flags: Vec<String>,
    /// How often the config directory is rescanned in case inotify missed something.
    pub rescan_interval: Duration,
    /// How long a removed config file must stay away before its domain is halted.
    pub removal_grace: Duration,
    /// Where the physical adapter inputs are, and dom0's sysfs and modprobe.
    pub adapter_sources: Sources,
    /// Serve Prometheus metrics here (off when `None`).
    pub metrics_listen: Option<Listen>,
    /// Host boot/shutdown settings (xendomains' meanings); the autostart directory is there.
    pub host_config: PathBuf,
}

impl Options {
    /// Options with EVE's default directories.
    pub fn new(paths: Paths) -> Options {
        Options {
            paths,
            settings_file: None,
            config_flags: Vec::new(),
            rescan_interval: Duration::from_secs(60),
            removal_grace: Duration::from_secs(2),
            adapter_sources: Sources::eve_defaults(),
            metrics_listen: None,
            host_config: PathBuf::from("/etc/default/domainmgr"),
        }
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another instance holds the lock.
    #[error("another domainmgrd is running (it holds {})", .0.display())]
    Locked(PathBuf),
    /// A directory or the lock file could not be made.
    #[error("cannot set up {}", path.display())]
    Setup {
        /// What.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The settings are invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The hypervisor could not list its domains.
    #[error("cannot list the hypervisor's domains")]
    Hypervisor(#[source] xenctl::Error),
    /// The host settings file is invalid.
    #[error(transparent)]
    HostConfig(#[from] crate::hostcfg::HostConfigError),
}

/// A running daemon.
pub struct Daemon {
    stop_tx: Sender<()>,
    thread: Option<JoinHandle<()>>,
    metrics: Option<(Sender<()>, JoinHandle<()>)>,
    prometheus: Option<prometheus::Server>,
    control: Option<control::Server>,
    lock: Option<File>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").finish_non_exhaustive()
    }
}

struct DomainHandle {
    tx: Sender<Command>,
    thread: JoinHandle<Ended>,
    /// The config file's bytes last sent, to skip unchanged rescans.
    last_bytes: Option<Vec<u8>>,
    /// Where its config comes from.
    source: Source,
}

struct Supervisor {
    shared: Shared,
    options: Options,
    domains: HashMap<String, DomainHandle>,
    pending_removals: HashMap<String, Instant>,
    next_rescan: Instant,
    /// Host boot/shutdown settings as last read.
    host: HostConfig,
    /// Autostart files and their domains' keys.
    auto_keys: HashMap<PathBuf, String>,
    /// Autostart files that could not be read, and why.
    auto_errors: HashMap<PathBuf, String>,
    /// Autostart files that went away, and when their domains are forgotten.
    pending_auto_removals: HashMap<PathBuf, Instant>,
    /// The latest metrics sample.
    latest: Arc<Mutex<Sample>>,
    /// A host-start or host-stop is running.
    host_op: Arc<std::sync::atomic::AtomicBool>,
    /// The start-up take-over is done: from now on a new domain thread looks up the
    /// hypervisor's domain with its UUID itself.
    taken_over: bool,
    /// Until the start is over: told when each domain found at start has written its status.
    first_statuses: Vec<Receiver<()>>,
}

/// How a domain thread ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// It returned (deleted, forgotten, stopped, or a transient domain that stopped).
    Normally,
    /// It panicked (its status says so).
    Panicked,
}

mod autostart;
pub use dispatch::{ListRow, load_domain_file, xl_letters};
mod dispatch;
mod host;

impl Daemon {
    /// Starts the daemon on `hv`: takes the lock, loads settings, adopts what runs, starts the
    /// domain threads and the config watcher. Returns once every domain thread is started.
    pub fn start(options: Options, hv: Arc<dyn Hypervisor>) -> Result<Daemon, StartError> {
        let paths = &options.paths;
        paths.create_all().map_err(|source| StartError::Setup { path: paths.status_dir.clone(), source })?;
        let lock_path = paths.lock_file();
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StartError::Setup { path: lock_path.clone(), source })?;
        // The lock belongs to an open file, and a child forked an instant ago (modprobe for the
        // USB modules, libxl's hotplug scripts) carries its descriptor until it execs: a lock
        // held for a moment is waited for; one held on is another daemon.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(std::fs::TryLockError::WouldBlock) => return Err(StartError::Locked(lock_path)),
                Err(std::fs::TryLockError::Error(source)) => return Err(StartError::Setup { path: lock_path, source }),
            }
        }
        let settings = Settings::load(options.settings_file.as_deref(), &options.config_flags)?;
        log::info!("settings: {settings:?}");
        let host = HostConfig::load(&options.host_config)?;
        // The socket before any domain is touched: a start that fails here changes nothing.
        // Requests wait in the channel until the supervisor runs.
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        let socket = paths.run_dir.join("domainmgrd.sock");
        let control = control::Server::start(&socket, control_tx)
            .map_err(|source| StartError::Setup { path: socket.clone(), source })?;
        let domains_now = hv.list().map_err(StartError::Hypervisor)?;

        // The adapter inputs "arrive" now. Before anything moves, learn which devices the
        // running guests hold (a restart must not take one from a live guest); then reconcile
        // the USB modules and apply the policy (once nim has named dom0's ports), all before any
        // domain thread runs.
        let adapters =
            Adapters::new(Arc::clone(&hv), options.adapter_sources.clone(), &paths.status_dir, settings.enable_usb)
                .start(&domains_now, &paths.domain_config_dir())
                .map_err(|source| StartError::Setup { path: PathBuf::from("adapters thread"), source })?;

        let (change_tx, change_rx) = crossbeam_channel::unbounded();
        let config_dir = paths.domain_config_dir();
        let mut others = vec![
            (options.adapter_sources.adapter_list.clone(), Change::Adapters),
            (options.adapter_sources.network_status.clone(), Change::Adapters),
        ];
        if let Some(file) = &options.settings_file {
            others.push((file.clone(), Change::Settings));
        }
        let watcher =
            match Watcher::start(&config_dir, Some(&host.auto_dir), &others, &paths.run_dir.join("wake"), change_tx) {
                Ok(w) => Some(w),
                Err(e) => {
                    log::error!("cannot watch {}: {e}; relying on periodic rescans", config_dir.display());
                    None
                }
            };
        let shared = Shared {
            hv,
            settings: Arc::new(RwLock::new(settings)),
            paths: Arc::new(paths.clone()),
            adapters,
            registry: Arc::default(),
            // A host-stop holds until host-start, across daemon restarts (see hoststate.rs).
            host_stopped: Arc::new(crate::hoststate::host_stopped(paths).into()),
        };
        let sampler = Sampler::new(Arc::clone(&shared.hv), Arc::clone(&shared.paths), Arc::clone(&shared.registry));
        let sampler_latest = sampler.latest();
        let prometheus = match &options.metrics_listen {
            Some(listen) => Some(
                prometheus::Server::start(listen.clone(), sampler.latest())
                    .map_err(|source| StartError::Setup { path: PathBuf::from(format!("{listen:?}")), source })?,
            ),
            None => None,
        };
        let (metrics_stop, metrics_rx) = crossbeam_channel::bounded(1);
        let metrics_settings = Arc::clone(&shared.settings);
        let metrics_thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || sampler.run(metrics_settings, metrics_rx))
            .map_err(|source| StartError::Setup { path: PathBuf::from("metrics thread"), source })?;
        let mut sup = Supervisor {
            shared,
            next_rescan: Instant::now() + options.rescan_interval,
            options,
            domains: HashMap::new(),
            pending_removals: HashMap::new(),
            host,
            auto_keys: HashMap::new(),
            auto_errors: HashMap::new(),
            pending_auto_removals: HashMap::new(),
            latest: sampler_latest,
            host_op: Arc::default(),
            taken_over: false,
            first_statuses: Vec::new(),
        };
        sup.take_over(domains_now);
        // Ready only once every domain it found has a status: a `domainctl status` (or EVE's
        // zedmanager) asking right after the start gets the truth, not "unknown".
        let deadline = Instant::now() + Duration::from_secs(30);
        let pending = std::mem::take(&mut sup.first_statuses);
        let late = pending.iter().filter(|rx| rx.recv_deadline(deadline) == Err(RecvTimeoutError::Timeout)).count();
        if late > 0 {
            log::warn!("{late} domain(s) had not written their status 30 s into the start; going on");
        }

        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || sup.run(change_rx, control_rx, stop_rx, watcher))
            .map_err(|source| StartError::Setup { path: PathBuf::from("supervisor thread"), source })?;
        Ok(Daemon {
            stop_tx,
            thread: Some(thread),
            metrics: Some((metrics_stop, metrics_thread)),
            prometheus,
            control: Some(control),
            lock: Some(lock),
        })
    }

    /// Stops the daemon: every thread ends, every domain is left exactly as it is.
    pub fn stop(mut self) {
        drop(self.control.take());
        let _ = self.stop_tx.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some((stop, t)) = self.metrics.take() {
            let _ = stop.send(());
            let _ = t.join();
        }
        drop(self.prometheus.take());
        drop(self.lock.take());
    }

    /// Waits until the daemon stops on its own (it does not, unless its supervisor fails).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Simulates the process dying (for tests of restart safety): releases the lock and asks
    /// every thread to stop without waiting for them. Threads stuck in a hypervisor call stay
    /// stuck, as they would in a killed process.
    pub fn abandon(mut self) {
        drop(self.control.take());
        let _ = self.stop_tx.send(());
        if let Some((stop, _)) = self.metrics.take() {
            let _ = stop.send(());
        }
        drop(self.prometheus.take());
        drop(self.lock.take());
        drop(self.thread.take());
    }
}

impl Supervisor {
    /// Starts a thread for every config and for every domain we were managing, given the
    /// hypervisor's current domains.
    fn take_over(&mut self, domains_now: Vec<DomainInfo>) {
        let mut by_uuid: HashMap<Uuid, DomainInfo> = HashMap::new();
        for d in domains_now.into_iter().filter(|d| !d.domid.is_dom0() && !d.uuid.is_nil()) {
            if let Some(other) = by_uuid.insert(d.uuid, d.clone()) {
                log::warn!("domains {} and {} share the UUID {}; managing {}", other.domid, d.domid, d.uuid, d.domid);
            }
        }
        for key in self.list_config_keys() {
            let existing = key.parse::<Uuid>().ok().and_then(|u| by_uuid.remove(&u));
            self.on_config_file(&key, existing);
        }
        for path in self.list_auto_files() {
            self.on_auto_file(&path, &mut by_uuid);
        }
        // A domain we created whose config vanished while we were down: halt it, as a delete.
        for uuid in self.shared.paths.marked_uuids() {
            let key = uuid.to_string();
            if self.domains.contains_key(&key) {
                continue;
            }
            match by_uuid.remove(&uuid) {
                Some(info) => {
                    log::info!("domain {} ({uuid}) lost its config while domainmgrd was down; halting it", info.domid);
                    self.spawn(key, uuid, None, Some(info), true);
                }
                None => {
                    let _ = self.shared.paths.clear_marker(uuid);
                }
            }
        }
        for d in by_uuid.values() {
            log::info!(
                "leaving domain {} ({}) alone: no config has its UUID {}",
                d.domid,
                d.name.as_deref().unwrap_or("no name"),
                d.uuid
            );
        }
        // Status files of configs that are gone (and whose domains are gone) are stale.
        if let Ok(entries) = std::fs::read_dir(self.shared.paths.domain_status_dir()) {
            for entry in entries.flatten() {
                if let Some(key) = watcher::config_key(&entry.file_name())
                    && !self.domains.contains_key(&key)
                {
                    let _ = files::remove_if_exists(&entry.path());
                }
            }
        }
        self.taken_over = true;
    }

    fn run(
        mut self,
        changes: Receiver<Change>,
        control: Receiver<ControlMsg>,
        stop: Receiver<()>,
        watcher: Option<Watcher>,
    ) {
        let tick = Duration::from_millis(250);
        loop {
            let timeout = self.next_wakeup().saturating_duration_since(Instant::now()).min(tick);
            select! {
                recv(stop) -> _ => break,
                recv(changes) -> change => match change {
                    Ok(change) => self.on_change(change),
                    Err(_) => std::thread::sleep(timeout), // the watcher died; rescans carry on
                },
                recv(control) -> msg => {
                    if let Ok(msg) = msg {
                        self.on_control(msg);
                    }
                }
                default(timeout) => {}
            }
            self.settle_removals();
            if Instant::now() >= self.next_rescan {
                self.next_rescan = Instant::now() + self.options.rescan_interval;
                self.rescan();
            }
            self.reap_finished();
        }
        if let Some(w) = watcher {
            w.stop();
        }
        self.stop_domains();
    }

    /// Joins the domain threads that ended. A thread that ended on its own (a delete or a
    /// forget done) may have been sent a config it never read, written again just as it
    /// ended: its file, if there is one now, is read again at once. After a panic the next
    /// rescan starts it again, so a panic that repeats does not spin.
    fn reap_finished(&mut self) {
        let done: Vec<String> =
            self.domains.iter().filter(|(_, h)| h.thread.is_finished()).map(|(k, _)| k.clone()).collect();
        for key in done {
            let Some(h) = self.domains.remove(&key) else { continue };
            if h.thread.join().unwrap_or(Ended::Panicked) != Ended::Normally {
                continue;
            }
            match h.source {
                Source::Eve => self.on_config_file(&key, None),
                Source::Auto(path) if path.exists() => self.on_auto_file(&path, &mut HashMap::new()),
                Source::Auto(_) | Source::Transient => {}
            }
        }
    }

    fn next_wakeup(&self) -> Instant {
        self.pending_removals.values().copied().min().unwrap_or(self.next_rescan).min(self.next_rescan)
    }

    fn on_change(&mut self, change: Change) {
        match change {
            Change::Config(key) => {
                self.pending_removals.remove(&key);
                self.on_config_file(&key, None);
            }
            Change::ConfigGone(key) => {
                self.pending_removals.insert(key, Instant::now() + self.options.removal_grace);
            }
            Change::Settings => self.reload_settings(),
            Change::AutoFile(path) => {
                self.pending_auto_removals.remove(&path);
                self.on_auto_file(&path, &mut HashMap::new());
            }
            Change::AutoGone(path) => {
                self.pending_auto_removals.insert(path, Instant::now() + self.options.removal_grace);
            }
            Change::Adapters => {
                let mut adapters = self.shared.adapters.lock();
                if adapters.reload() {
                    log::info!("adapter inputs changed; applying the policy");
                    adapters.apply();
                }
            }
            Change::Rescan => self.rescan(),
        }
    }

    fn reload_settings(&mut self) {
        match Settings::load(self.options.settings_file.as_deref(), &self.options.config_flags) {
            Ok(s) => {
                log::info!("settings reloaded: {s:?}");
                let usb = s.enable_usb;
                *self.shared.settings.write() = s;
                self.shared.adapters.lock().set_enable_usb(usb);
            }
            Err(e) => log::error!("keeping the current settings: {e}"),
        }
    }

    fn settle_removals(&mut self) {
        self.settle_auto_removals();
        let now = Instant::now();
        let due: Vec<String> =
            self.pending_removals.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        for key in due {
            self.pending_removals.remove(&key);
            if self.config_path(&key).exists() {
                self.on_config_file(&key, None); // it was replaced, not removed
            } else if let Some(h) = self.domains.get_mut(&key) {
                h.last_bytes = None;
                let _ = h.tx.send(Command::Delete);
            }
        }
    }

    fn rescan(&mut self) {
        self.rescan_auto();
        let present = self.list_config_keys();
        for key in &present {
            self.on_config_file(key, None);
        }
        let gone: Vec<String> = self
            .domains
            .iter()
            .filter(|(k, h)| h.source == Source::Eve && !present.contains(k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            if self.domains.get(&key).is_some_and(|h| h.last_bytes.is_some()) {
                self.pending_removals.entry(key).or_insert_with(Instant::now);
            }
        }
    }

    fn list_config_keys(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.shared.paths.domain_config_dir()) else {
            return Vec::new();
        };
        let mut keys: Vec<String> = entries.flatten().filter_map(|e| watcher::config_key(&e.file_name())).collect();
        keys.sort();
        keys
    }

    fn config_path(&self, key: &str) -> PathBuf {
        self.shared.paths.domain_config_dir().join(format!("{key}.json"))
    }

    /// The config file of `key` was written (or found): parse it and hand it to its thread.
    fn on_config_file(&mut self, key: &str, existing: Option<DomainInfo>) {
        let Ok(uuid) = key.parse::<Uuid>() else { return };
        let path = self.config_path(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.send_or_spawn(
                    key,
                    uuid,
                    Command::ConfigUnreadable(format!("cannot read {}: {e}", path.display())),
                    existing,
                );
                return;
            }
        };
        if self.domains.get(key).is_some_and(|h| h.last_bytes.as_deref() == Some(&bytes)) {
            return;
        }
        let command = match load(&path, uuid, &bytes) {
            Ok(loaded) => Command::Config(Box::new(loaded)),
            Err(reason) => Command::ConfigUnreadable(reason),
        };
        self.send_or_spawn(key, uuid, command, existing);
        if let Some(h) = self.domains.get_mut(key) {
            h.last_bytes = Some(bytes);
        }
    }

    fn send_or_spawn(&mut self, key: &str, uuid: Uuid, command: Command, existing: Option<DomainInfo>) {
        let command = match self.domains.get(key) {
            Some(h) => match h.tx.send(command) {
                Ok(()) => return,
                Err(e) => e.into_inner(), // the thread ended (a delete finished): start anew
            },
            None => command,
        };
        // After the take-over a new thread finds its running domain itself.
        let existing = match existing {
            Some(info) => Some(info),
            None if self.taken_over => self.running_domain(uuid),
            None => None,
        };
        let domain = match command {
            Command::Config(loaded) => Domain::new(self.shared.clone(), key.to_string(), uuid, Some(*loaded)),
            Command::ConfigUnreadable(reason) => {
                let mut d = Domain::new(self.shared.clone(), key.to_string(), uuid, None);
                d.config_unreadable(reason);
                d
            }
            other => {
                log::error!("{key}: {other:?} for a domain without a thread; ignored");
                return;
            }
        };
        self.start_thread(key.to_string(), domain, existing);
    }

    /// The hypervisor's domain with `uuid`, if there is one (one list call).
    fn running_domain(&self, uuid: Uuid) -> Option<DomainInfo> {
        match self.shared.hv.list() {
            Ok(domains) => domains.into_iter().filter(|d| !d.domid.is_dom0()).find(|d| d.uuid == uuid),
            Err(e) => {
                log::error!("cannot list the hypervisor's domains to find {uuid}'s: {e}");
                None
            }
        }
    }

    fn spawn(&mut self, key: String, uuid: Uuid, loaded: Option<Loaded>, existing: Option<DomainInfo>, delete: bool) {
        let mut domain = Domain::new(self.shared.clone(), key.clone(), uuid, loaded);
        if delete {
            domain.delete_on_start();
        }
        self.start_thread(key, domain, existing);
    }

    /// Runs `domain` in its own thread, which takes over `existing` first.
    fn start_thread(&mut self, key: String, mut domain: Domain, existing: Option<DomainInfo>) {
        if !self.taken_over {
            let (tx, rx) = crossbeam_channel::bounded(1);
            domain.tell_first_status(tx);
            self.first_statuses.push(rx);
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let source = domain.source();
        let paths = Arc::clone(&self.shared.paths);
        let registry = Arc::clone(&self.shared.registry);
        let thread_key = key.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("domain-{}", &key[..key.len().min(8)]))
            .stack_size(512 * 1024)
            .spawn(move || {
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| domain.run(&rx, existing)));
                match run {
                    Ok(()) => Ended::Normally,
                    Err(panic) => {
                        record_panic(&paths, &registry, &thread_key, panic.as_ref());
                        Ended::Panicked
                    }
                }
                // `rx` closes only now, after the panic is recorded.
            });
        match spawned {
            Ok(thread) => {
                self.domains.insert(key, DomainHandle { tx, thread, last_bytes: None, source });
            }
            Err(e) => log::error!("{key}: cannot start its thread: {e}"),
        }
    }

    /// Tells every domain thread to stop and waits (boundedly) for them: a thread in the middle
    /// of a slow hypervisor call finishes that call first; its domain is left as it is.
    fn stop_domains(&mut self) {
        for h in self.domains.values() {
            let _ = h.tx.send(Command::Stop);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (key, h) in self.domains.drain() {
            while !h.thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if h.thread.is_finished() {
                let _ = h.thread.join();
            } else {
                log::warn!("{key}: its thread is still in a hypervisor call; leaving it");
            }
        }
    }
}

/// Parses and translates a config file's bytes.
fn load(path: &Path, uuid: Uuid, bytes: &[u8]) -> Result<Loaded, String> {
    let config: DomainConfig =
        serde_json::from_slice(bytes).map_err(|e| format!("{}: not a valid DomainConfig: {e}", path.display()))?;
    if config.uuid_and_version.uuid != uuid {
        return Err(format!(
            "{}: UUIDandVersion.UUID = {}: does not match the file name",
            path.display(),
            config.uuid_and_version.uuid
        ));
    }
    let translated = translate::translate(&config, path);
    Ok(Loaded { config, translated, source: Source::Eve })
}

/// A domain thread panicked: say so in its status (and in what `domainctl list` shows); the
/// daemon and the domain carry on.
fn record_panic(paths: &Paths, registry: &crate::metrics::Registry, key: &str, panic: &(dyn std::any::Any + Send)) {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    log::error!("{key}: its thread failed: {what}; the domain is left as it is");
    let mut status =
        domain::read_status(paths, key).unwrap_or_else(|| domain::empty_status(key.parse().unwrap_or_default()));
    status.state = crate::eve::SwState::UNKNOWN;
    status.state_name = status.state.to_string();
    if let Ok(uuid) = key.parse::<Uuid>()
        && let Some(brief) = registry.write().get_mut(&uuid)
    {
        brief.state = status.state_name.clone();
    }
    status.error =
        crate::eve::ErrorDescription::now(format!("internal error in domainmgrd: {what}"), "restart domainmgrd");
    if let Ok(bytes) = serde_json::to_vec_pretty(&status) {
        let _ = files::write_atomic(&paths.status_file(key), &bytes);
    }
}
