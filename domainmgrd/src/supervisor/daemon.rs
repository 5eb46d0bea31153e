//! The daemon's own life: how it is set up ([`Options`]), its start (the lock, settings, the
//! control socket, the adapters, the config watcher, the metrics sampler and server, then the
//! supervisor's take-over, ready once every domain found has written its status), and its
//! stop, which ends every thread and leaves every domain as it is. Nothing is touched before
//! the daemon holds its lock and its control socket: a start that fails leaves every domain
//! and file as it was.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};
use parking_lot::RwLock;

use super::Supervisor;
use crate::adapters::{Adapters, Sources};
use crate::agent::contract::AgentFiles;
use crate::agent::{Input, InputMode, Notice, Outputs, Subscribed};
use crate::configfile::XlParser;
use crate::control;
use crate::domain::Shared;
use crate::files::Paths;
use crate::hostcfg::HostConfig;
use crate::hypervisor::Hypervisor;
use crate::metrics::Sampler;
use crate::prometheus::{self, Listen};
use crate::settings::{Settings, SettingsError};
use crate::translate::PvBoot;
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
    /// xl's global settings file, read at each create and restore (see `xlconf.rs`); `None`:
    /// none, xl's defaults.
    pub xl_conf: Option<PathBuf>,
    /// Where the EVE inputs come from (files or EVE's pubsub), and the agent's files.
    pub eve: EveOptions,
    /// How an EVE app's disk images are checked against their formats before a boot (EVE's
    /// qemu-img check by default).
    pub disk_probe: crate::diskformat::Probe,
    /// The host console's getty, run while `debug.enable.console` is true (see getty.rs);
    /// `None`: none.
    pub getty_command: Option<String>,
    /// The keys that decrypt EVE apps' encrypted cloud-init user data.
    pub cipher_keys: crate::cloudinit::CipherKeys,
    /// The no-op hotplug script that hands a device's setup to the daemon (native.rs);
    /// `None`: Xen's hotplug scripts set up every device.
    pub native_hotplug: Option<PathBuf>,
    /// How `domainctl run` boots container images (see `container/`).
    pub containers: crate::container::Containers,
    /// The domains' own copies of shared images (see `diskcopies.rs`); `None`: every disk
    /// uses its image in place.
    pub disk_copies: Option<crate::diskcopies::DiskCopies>,
}

/// How the daemon meets EVE's other agents.
#[derive(Debug, Clone)]
pub struct EveOptions {
    /// Files (the watcher) or EVE's pubsub sockets. With pubsub, DomainConfig comes from
    /// `<config-dir>/DomainConfig.sock`, the adapter inputs from the agent directories their
    /// file paths name (`<zedagent>/PhysicalIOAdapterList/global.json` → the topic
    /// PhysicalIOAdapterList at `<zedagent>`), and the settings, unless a settings file is
    /// given, from zedagent's ConfigItemValueMap in that same directory.
    pub inputs: InputMode,
    /// Where the pid and touch files EVE's watchdog reads go (EVE: `/run`); `None`: none.
    pub agent_files: Option<PathBuf>,
    /// How PV apps boot; `as_pvh` is settled at the start from the host's capabilities.
    pub pv_boot: PvBoot,
    /// PV apps may run as PVH where the host runs HVM guests (EVE's rule); false: never.
    pub pv_as_pvh: bool,
}

impl Default for EveOptions {
    fn default() -> Self {
        EveOptions { inputs: InputMode::Files, agent_files: None, pv_boot: PvBoot::eve_default(), pv_as_pvh: true }
    }
}

impl Options {
    /// Options with EVE's default directories.
    pub fn new(paths: Paths) -> Options {
        Options {
            settings_file: None,
            config_flags: Vec::new(),
            rescan_interval: Duration::from_secs(60),
            removal_grace: Duration::from_secs(2),
            adapter_sources: Sources::eve_defaults(),
            metrics_listen: None,
            host_config: PathBuf::from("/etc/default/domainmgr"),
            xl_parser: XlParser::default(),
            xl_conf: None,
            eve: EveOptions::default(),
            disk_probe: crate::diskformat::Probe::default(),
            getty_command: None,
            cipher_keys: crate::cloudinit::CipherKeys::default(),
            native_hotplug: None,
            containers: crate::container::Containers::for_this_host(&paths.state_dir),
            disk_copies: None,
            paths,
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
    /// A publication cannot be opened.
    #[error(transparent)]
    Publish(#[from] crate::agent::outputs::OpenError),
}

/// A running daemon.
pub struct Daemon {
    stop_tx: Sender<()>,
    thread: Option<JoinHandle<()>>,
    metrics: Option<(Sender<()>, JoinHandle<()>)>,
    prometheus: Option<prometheus::Server>,
    control: Option<control::Server>,
    /// The migration socket (`domainctl migrate-receive` hands streams over there).
    migrate: Option<crate::migration::Listener>,
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
    pub fn start(mut options: Options, hv: Arc<dyn Hypervisor>) -> Result<Daemon, StartError> {
        // xl.cfg CPU lists such as `cpus = "all"` are read against this host, as xl reads them.
        match hv.host_cpus() {
            Ok(host) => options.xl_parser = options.xl_parser.with_host(Some(host)),
            Err(e) => {
                log::warn!("cannot read the host's CPUs ({e}); xl.cfg CPU lists naming all or NUMA nodes are refused")
            }
        }
        // A helper started ahead of each xl.cfg parse (see `configfile/xlchild.rs`).
        options.xl_parser = options.xl_parser.with_spare();
        // EVE's xen-start runs PV apps as PVH when `xl info` says the host runs HVM guests;
        // when the host cannot be read, it says nothing, and they run as PV.
        let cap_hvm = hv.host_info().map(|h| h.cap_hvm).unwrap_or_else(|e| {
            log::warn!("cannot read the host's capabilities ({e}); PV apps run as PV");
            false
        });
        let pv = &options.eve.pv_boot;
        options.eve.pv_boot =
            PvBoot::for_host(cap_hvm, options.eve.pv_as_pvh, pv.pvh_firmware.clone(), pv.pv_grub.clone());
        if !options.eve.pv_boot.as_pvh {
            log::info!("EVE's PV apps run as PV: {}", options.eve.pv_boot.why_not_pvh);
        }
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
        // What the previous daemon published is loaded first: subscribers reconnecting now see
        // the last statuses at once, and what is gone is unpublished once it is known gone.
        let outputs = Arc::new(Outputs::open(&paths.status_dir, None)?);
        let mut agent_files = options.eve.agent_files.as_deref().map(AgentFiles::new);
        if let Some(files) = &mut agent_files {
            if let Err(e) = files.write_pid() {
                log::error!("cannot write the pid file EVE's watchdog reads: {e}");
            }
            files.touch_if_due();
        }
        let (change_tx, change_rx) = crossbeam_channel::unbounded();
        let inputs = Inputs::subscribe(&options, &change_tx);
        let settings = match &inputs.settings {
            Some(input @ Input::Topic(_)) => Settings::load_input(input, &options.config_flags).unwrap_or_else(|e| {
                log::error!("{e}; using the defaults until zedagent publishes usable settings");
                Settings::load(None, &options.config_flags).unwrap_or_default()
            }),
            _ => Settings::load(options.settings_file.as_deref(), &options.config_flags)?,
        };
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
        let mut adapters =
            Adapters::new(Arc::clone(&hv), options.adapter_sources.clone(), Arc::clone(&outputs), settings.enable_usb)
                .with_enable_vga(settings.enable_vga);
        if let Some((list, network)) = &inputs.adapters {
            adapters.use_inputs(list.clone(), network.clone());
        }
        let adapters = adapters
            .start(&domains_now, &paths.domain_config_dir())
            .map_err(|source| StartError::Setup { path: PathBuf::from("adapters thread"), source })?;

        let config_dir = paths.domain_config_dir();
        let mut others = Vec::new();
        if inputs.adapters.is_none() {
            others.push((options.adapter_sources.adapter_list.clone(), Change::Adapters));
            others.push((options.adapter_sources.network_status.clone(), Change::Adapters));
        }
        if let Some(file) = &options.settings_file {
            others.push((file.clone(), Change::Settings));
        }
        let watched_configs = inputs.configs.is_none().then_some(config_dir.as_path());
        let watcher = match Watcher::start(
            watched_configs,
            Some(&host.auto_dir),
            &others,
            &paths.run_dir.join("wake"),
            change_tx,
        ) {
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
            outputs: Arc::clone(&outputs),
            // A host-stop holds until host-start, across daemon restarts (see hoststate.rs).
            host_stopped: Arc::new(crate::hoststate::host_stopped(paths).into()),
            xl_cfg_files: Arc::default(),
            xl_conf: options.xl_conf.clone(),
            disk_probe: options.disk_probe.clone(),
            cipher_keys: crate::cloudinit::CipherKeys {
                controller_topic: inputs.controller_certs.clone(),
                ..options.cipher_keys.clone()
            },
            native: open_native(options.native_hotplug.as_deref()),
            containers: Arc::new(options.containers.clone()),
            disk_copies: options.disk_copies.clone().map(Arc::new),
        };
        // Copies a killed daemon left half made: never used, removed.
        if let Some(copies) = &shared.disk_copies {
            copies.remove_partials();
        }
        if let Some(native) = &shared.native {
            shared.hv.set_private_script(native.script());
        }
        crate::xlconf::log_at_start(options.xl_conf.as_deref());
        publish_capabilities(shared.hv.as_ref(), &outputs);
        let sampler = Sampler::new(Arc::clone(&shared.hv), Arc::clone(&outputs), Arc::clone(&shared.registry));
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
        let options_getty = options.getty_command.clone();
        let console_access = shared.settings.read().enable_console;
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
            configs: inputs.configs.as_ref().map(|s| Arc::clone(&s.topic)),
            settings_input: inputs.settings.clone(),
            getty: crate::getty::Getty::new(options_getty, &crate::getty::Getty::host_cmdline()),
            configs_restarted: None,
            agent_files,
            statuses_swept: false,
            incoming: Default::default(),
        };
        sup.getty.apply(console_access);
        inputs.wait_for_configs(&sup.options.paths.config_dir, Duration::from_secs(2));
        sup.take_over(domains_now);
        // Ready only once every domain it found has a status: a `domainctl status` (or EVE's
        // zedmanager) asking right after the start gets the truth, not "unknown".
        let deadline = Instant::now() + Duration::from_secs(30);
        let pending = std::mem::take(&mut sup.first_statuses);
        let late = pending.iter().filter(|rx| rx.recv_deadline(deadline) == Err(RecvTimeoutError::Timeout)).count();
        if late > 0 {
            log::warn!("{late} domain(s) had not written their status 30 s into the start; going on");
        }

        // Migrations in, once the take-over is done; each hands its domain back to the supervisor.
        let migrate_socket = sup.options.paths.run_dir.join(crate::migration::SOCKET_NAME);
        let (hv_in, back) = (Arc::clone(&sup.shared.hv), sup.handback.0.clone());
        let migrate = crate::migration::Listener::start(&migrate_socket, move |incoming| {
            super::incoming::receive(incoming, &hv_in, &back)
        })
        .map_err(|source| StartError::Setup { path: migrate_socket.clone(), source })?;

        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || sup.run(change_rx, control_rx, stop_rx, watcher, inputs))
            .map_err(|source| StartError::Setup { path: PathBuf::from("supervisor thread"), source })?;
        Ok(Daemon {
            stop_tx,
            thread: Some(thread),
            metrics: Some((metrics_stop, metrics_thread)),
            prometheus,
            control: Some(control),
            migrate: Some(migrate),
            lock: Some(lock),
        })
    }

    /// Stops the daemon: every thread ends, every domain is left exactly as it is.
    pub fn stop(mut self) {
        drop(self.control.take());
        drop(self.migrate.take());
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
        drop(self.migrate.take());
        let _ = self.stop_tx.send(());
        if let Some((stop, _)) = self.metrics.take() {
            let _ = stop.send(());
        }
        drop(self.prometheus.take());
        drop(self.lock.take());
        drop(self.thread.take());
    }
}

/// Publishes what the host offers (EVE's `Capabilities`), from physinfo, before any domain
/// thread runs. If physinfo fails now, the metrics sampler publishes it at its first good
/// reading (EVE retries every 5 s; the sampler reads the host every `timer.metric.interval / 4`).
fn publish_capabilities(hv: &dyn Hypervisor, outputs: &Outputs) {
    match hv.host_info() {
        Ok(host) => {
            Outputs::publish(&outputs.capabilities, "global", &crate::agent::outputs::Capabilities::of(&host));
        }
        Err(e) => log::error!("cannot read the host's capabilities yet: {e}"),
    }
}

/// The EVE inputs the daemon subscribes to (pubsub mode), and the settings input.
pub(super) struct Inputs {
    /// zedmanager's DomainConfig (`None`: files).
    pub configs: Option<Subscribed>,
    /// zedagent's PhysicalIOAdapterList and nim's DeviceNetworkStatus (`None`: files).
    pub adapters: Option<(Input, Input)>,
    /// The settings: a file, zedagent's ConfigItemValueMap, or none (defaults and flags).
    pub settings: Option<Input>,
    /// zedagent's ControllerCert (`None`: files), for encrypted cloud-init user data.
    pub controller_certs: Option<Arc<crate::agent::Topic>>,
    subscriptions: Vec<Subscribed>,
}

impl Inputs {
    /// Subscribes to EVE's topics (pubsub mode); each change reaches the supervisor as a
    /// [`Change`] after the topic's content has it.
    fn subscribe(options: &Options, changes: &Sender<Change>) -> Inputs {
        let file_settings = options.settings_file.clone().map(Input::File);
        let InputMode::Pubsub { redial, large_root } = &options.eve.inputs else {
            return Inputs {
                configs: None,
                adapters: None,
                settings: file_settings,
                controller_certs: None,
                subscriptions: Vec::new(),
            };
        };
        let start = |agent_dir: &Path, topic: &str, to_change: fn(Notice) -> Option<Change>| {
            let tx = changes.clone();
            Subscribed::start(agent_dir, topic, *redial, large_root.clone(), move |notice| {
                if let Some(change) = to_change(notice) {
                    let _ = tx.send(change);
                }
            })
        };
        let configs = start(&options.paths.config_dir, "DomainConfig", |n| {
            Some(match n {
                Notice::Updated(key) => Change::Config(key),
                Notice::Deleted(key) => Change::ConfigGone(key),
                Notice::Synchronized => Change::ConfigsSynchronized,
                Notice::Restarted(n) => Change::ConfigsRestarted(n),
            })
        });
        let agent_dir_of =
            |file: &Path| -> PathBuf { file.parent().and_then(|p| p.parent()).map(PathBuf::from).unwrap_or_default() };
        let adapters_changed =
            |n: Notice| matches!(n, Notice::Updated(_) | Notice::Deleted(_)).then_some(Change::Adapters);
        let zedagent = agent_dir_of(&options.adapter_sources.adapter_list);
        let list = start(&zedagent, "PhysicalIOAdapterList", adapters_changed);
        let network =
            start(&agent_dir_of(&options.adapter_sources.network_status), "DeviceNetworkStatus", adapters_changed);
        let mut subscriptions = Vec::new();
        let settings = match file_settings {
            Some(file) => Some(file),
            None => {
                let s = start(&zedagent, "ConfigItemValueMap", |n| {
                    matches!(n, Notice::Updated(_) | Notice::Deleted(_)).then_some(Change::Settings)
                });
                let input = Input::Topic(Arc::clone(&s.topic));
                subscriptions.push(s);
                Some(input)
            }
        };
        let adapters = Some((Input::Topic(Arc::clone(&list.topic)), Input::Topic(Arc::clone(&network.topic))));
        subscriptions.push(list);
        subscriptions.push(network);
        // Read when a domain's encrypted user data is decrypted; nothing to tell anyone meanwhile.
        let certs = start(&zedagent, "ControllerCert", |_| None);
        let controller_certs = Some(Arc::clone(&certs.topic));
        subscriptions.push(certs);
        Inputs { configs: Some(configs), adapters, settings, controller_certs, subscriptions }
    }

    /// Waits up to `limit` for zedmanager's first snapshot if its socket is there, so that the
    /// domains found running are taken over with their configs.
    fn wait_for_configs(&self, config_dir: &Path, limit: Duration) {
        let Some(configs) = &self.configs else { return };
        if !config_dir.join("DomainConfig.sock").exists() {
            return;
        }
        let deadline = Instant::now() + limit;
        while !configs.topic.synchronized() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Ends every subscription.
    pub fn stop(self) {
        if let Some(c) = self.configs {
            c.stop();
        }
        for s in self.subscriptions {
            s.stop();
        }
    }
}

/// The daemon's own device setup with `script` as libxl's no-op, if it can be had: the script
/// must exist, and netlink must open. Otherwise, said in the log, Xen's scripts do it all.
fn open_native(script: Option<&Path>) -> Option<Arc<xen_hotplug::NativeDevices>> {
    let script = script?;
    if !script.is_file() {
        log::warn!("{} is missing: Xen's hotplug scripts set up every device", script.display());
        return None;
    }
    match xen_hotplug::NativeDevices::open(script) {
        Ok(n) => {
            log::info!("vifs and disks are set up natively (libxl runs {} for them)", script.display());
            Some(Arc::new(n))
        }
        Err(e) => {
            log::warn!("cannot open netlink ({e}): Xen's hotplug scripts set up every device");
            None
        }
    }
}
