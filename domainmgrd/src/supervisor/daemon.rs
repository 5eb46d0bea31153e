//! The daemon's own life: how it is set up ([`Options`]), its start (the lock, settings, the
//! control socket, the adapters, the config watcher, the metrics sampler and server, then the
//! supervisor's take-over, ready once every domain found has written its status), and its
//! stop, which ends every thread and leaves every domain as it is. Nothing is touched before
//! the daemon holds its lock and its control socket: a start that fails leaves every domain
//! and file as it was.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};
use parking_lot::RwLock;

use super::Supervisor;
use crate::adapters::{Adapters, Sources};
use crate::configfile::XlParser;
use crate::control;
use crate::domain::Shared;
use crate::files::Paths;
use crate::hostcfg::HostConfig;
use crate::hypervisor::Hypervisor;
use crate::metrics::Sampler;
use crate::prometheus::{self, Listen};
use crate::settings::{Settings, SettingsError};
use crate::watcher::{Change, Watcher};

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
    /// How xl.cfg files are parsed: in a child, the `domainmgrd-xlparse` helper (by default
    /// the one beside this executable, else the packaged one).
    pub xl_parser: XlParser,
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
            xl_parser: XlParser::default(),
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
            xl_cfg_files: Arc::default(),
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
            auto_parsed: HashMap::new(),
            pending_auto_removals: HashMap::new(),
            latest: sampler_latest,
            host_op: Arc::default(),
            taken_over: false,
            first_statuses: Vec::new(),
            misspelt: Default::default(),
            handback: crossbeam_channel::unbounded(),
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
