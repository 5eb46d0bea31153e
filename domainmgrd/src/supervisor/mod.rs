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
//!
//! This file holds the supervisor's state, the start-up take-over, its loop and the EVE config
//! files; `daemon.rs` the daemon's own start and stop, `threads.rs` the domain threads
//! (started, reaped, stopped), `autostart.rs` the xl.cfg files of the autostart directory,
//! `dispatch.rs` the control requests, and `host.rs` host boot and shutdown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use parking_lot::Mutex;
use uuid::Uuid;
use xenctl::{DomainInfo, XlConfigFile};

use crate::agent::contract::AgentFiles;
use crate::agent::{Input, Outputs, Topic};
use crate::configfile;
use crate::control::ControlMsg;
use crate::domain::{Command, Domain, Loaded, Shared, Source};
use crate::error_chain;
use crate::eve::DomainConfig;
use crate::hostcfg::HostConfig;
use crate::metrics::Sample;
use crate::settings::Settings;
use crate::watcher::{self, Change, Watcher};
use crate::{records, translate};

struct DomainHandle {
    tx: Sender<Command>,
    /// Set to cut short a disk copy the domain's thread is making (its config was deleted, or
    /// the daemon stops): a copy can take minutes, and the thread hears commands only after.
    cancel_copy: Arc<std::sync::atomic::AtomicBool>,
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
    /// Autostart files as last parsed: their bytes and what the parser made of them (not when
    /// the parser itself failed: that is tried again at the next rescan).
    auto_parsed: HashMap<PathBuf, (Vec<u8>, Result<XlConfigFile, String>)>,
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
    /// Config file names spelling a UUID otherwise than a config's name does, logged once.
    misspelt: std::collections::HashSet<std::ffi::OsString>,
    /// The host console's getty (`debug.enable.console`).
    getty: crate::getty::Getty,
    /// Work that helper threads hand back to the supervisor's thread (a `domainctl create`
    /// whose file was read and parsed elsewhere, so that a slow file never blocks this one).
    handback: (Sender<Handback>, Receiver<Handback>),
    /// zedmanager's DomainConfig topic (EVE's pubsub); `None`: the config directory's files.
    configs: Option<Arc<Topic>>,
    /// Where settings come from (a file, zedagent's topic), if anywhere.
    settings_input: Option<Input>,
    /// zedmanager said it restarted (this counter): DomainStatus says so too once every
    /// config it published has its status.
    configs_restarted: Option<(u64, Instant)>,
    /// The pid and touch files EVE's watchdog reads.
    agent_files: Option<AgentFiles>,
    /// The statuses of configs gone while the daemon was away have been unpublished.
    statuses_swept: bool,
    /// The UUIDs of domains being received by migration (incoming.rs).
    incoming: std::collections::HashSet<Uuid>,
}

/// How long DomainStatus's "restarted" waits for the statuses of zedmanager's configs.
const RESTARTED_WAIT: Duration = Duration::from_secs(10);

/// See [`Supervisor::handback`].
type Handback = Box<dyn FnOnce(&mut Supervisor) + Send>;

/// How a domain thread ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// It returned (deleted, forgotten, stopped, or a transient domain that stopped).
    Normally,
    /// It panicked (its status says so).
    Panicked,
}

mod autostart;
mod daemon;
pub use dispatch::{CopyRow, ListRow, MetricRow, dry_run_json, load_domain_file, xl_letters};
mod dispatch;
mod host;
mod incoming;
mod threads;

pub use daemon::{Daemon, Options, StartError};

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
        // The domains an earlier daemon ran whose config was not found above.
        for uuid in records::recorded(&self.shared.paths) {
            let key = uuid.to_string();
            if self.domains.contains_key(&key) {
                continue;
            }
            let Some(record) = records::read(&self.shared.paths, uuid) else { continue };
            match by_uuid.remove(&uuid) {
                Some(info) => self.adopt_recorded(key, uuid, record, info),
                None => {
                    let _ = records::forget_gone(&self.shared.paths, uuid, &record);
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
        if self.configs.as_ref().is_none_or(|t| t.synchronized()) {
            self.unpublish_stale_statuses();
        }
        self.taken_over = true;
    }

    /// Statuses an earlier daemon published for configs that are gone (and whose domains are
    /// gone) are stale: unpublished, once the configs are known (with EVE's pubsub, after
    /// zedmanager's first snapshot: a status is never deleted only to come back).
    fn unpublish_stale_statuses(&mut self) {
        let statuses = &self.shared.outputs.domain_status;
        for key in statuses.keys() {
            if !self.domains.contains_key(&key) {
                log::info!("DomainStatus {key}: no config and no domain; unpublished");
                Outputs::unpublish(statuses, &key);
            }
        }
    }

    /// A running domain an earlier daemon ran, whose config was not found at start: what its
    /// record says it came from decides. Never is a running domain stopped here: an EVE
    /// domain gets the removal grace of any removed config (zedmanager may be republishing it),
    /// an autostart domain whose file cannot be read is adopted with the error in its status,
    /// one whose file is gone (or names another domain now) is forgotten and left running, a
    /// transient domain is adopted from the config in its record.
    fn adopt_recorded(&mut self, key: String, uuid: Uuid, record: records::DomainRecord, info: DomainInfo) {
        let domid = info.domid;
        match record.origin {
            records::Origin::Eve => {
                let grace = self.options.removal_grace;
                self.spawn(key.clone(), uuid, None, Some(info));
                if self.configs.as_ref().is_none_or(|t| t.synchronized()) {
                    log::info!(
                        "domain {domid} ({uuid}): its EVE config is missing at start; it is halted if still missing in {grace:?}"
                    );
                    self.pending_removals.insert(key, Instant::now() + grace);
                } else {
                    log::info!(
                        "domain {domid} ({uuid}): adopted; it keeps running until zedmanager's snapshot says what to do with it"
                    );
                }
            }
            records::Origin::Auto { file } => {
                let reason = match self.auto_errors.get(&file) {
                    Some(e) => Some(e.clone()),
                    None if self.auto_keys.contains_key(&file) => None, // it names another domain now
                    None => std::fs::symlink_metadata(&file)
                        .ok()
                        .map(|_| format!("{}: not a regular file; cannot be used", file.display())),
                };
                let Some(reason) = reason else {
                    log::info!(
                        "domain {domid} ({uuid}): its autostart file {} is gone (or names another domain); it is no longer managed and keeps running",
                        file.display()
                    );
                    let _ = records::clear(&self.shared.paths, uuid);
                    return;
                };
                let mut domain = Domain::new(self.shared.clone(), key.clone(), uuid, None);
                domain.set_source(Source::Auto(file.clone()));
                domain.config_unreadable(reason);
                self.auto_keys.insert(file, key.clone());
                self.start_thread(key, domain, Some(info));
            }
            records::Origin::Transient => match record.spec {
                Some(spec) if spec.uuid == uuid => {
                    let loaded = autostart::loaded_from_spec(spec, Source::Transient);
                    self.spawn(key, uuid, Some(loaded), Some(info));
                }
                _ => log::error!("leaving domain {domid} ({uuid}) alone: its record holds no usable config"),
            },
            records::Origin::Unknown => log::warn!(
                "leaving domain {domid} ({uuid}) alone: an older domainmgrd created it, and no config names it now"
            ),
        }
    }

    fn run(
        mut self,
        changes: Receiver<Change>,
        control: Receiver<ControlMsg>,
        stop: Receiver<()>,
        watcher: Option<Watcher>,
        inputs: daemon::Inputs,
    ) {
        let tick = Duration::from_millis(250);
        let handback = self.handback.1.clone();
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
                recv(handback) -> work => {
                    if let Ok(work) = work {
                        work(&mut self);
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
            self.signal_restarted_when_done();
            if let Some(files) = &mut self.agent_files {
                files.touch_if_due();
            }
        }
        if let Some(w) = watcher {
            w.stop();
        }
        inputs.stop();
        self.stop_domains();
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
                // A file's removal waits out the grace (editors move a file away before
                // writing the new one); zedmanager's `delete` is its word, taken at once.
                let grace = if self.configs.is_some() { Duration::ZERO } else { self.options.removal_grace };
                self.pending_removals.insert(key, Instant::now() + grace);
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
            Change::ConfigsSynchronized => self.configs_synchronized(),
            Change::ConfigsRestarted(n) => {
                // EVE's domainmgr: a non-zero counter means zedmanager has published all it
                // had after its restart; zero means nothing.
                if n != 0 {
                    log::info!("zedmanager restarted ({n}); DomainStatus says so once every config has its status");
                    self.configs_restarted = Some((n, Instant::now()));
                }
            }
        }
    }

    /// zedmanager sent its whole snapshot: an EVE domain without a config in it is gone (after
    /// the removal grace, as for a removed file). Before the first snapshot nothing is
    /// believed gone: the domains found running keep running.
    fn configs_synchronized(&mut self) {
        let Some(topic) = &self.configs else { return };
        if !self.statuses_swept {
            self.statuses_swept = true;
            // Every config of the snapshot has its thread by now: the Config changes came first.
            for key in topic.keys() {
                self.on_config_file(&key, None);
            }
            self.unpublish_stale_statuses();
        }
        let Some(topic) = &self.configs else { return };
        let present = topic.keys();
        let now = Instant::now();
        let grace = self.options.removal_grace;
        for (key, h) in &self.domains {
            if h.source == Source::Eve && !present.contains(key) {
                self.pending_removals.entry(key.clone()).or_insert(now + grace);
            }
        }
    }

    /// Once zedmanager said it restarted and every config it published has a status for
    /// that config (its version), DomainStatus says "restarted" (EVE's domainmgr signals it
    /// when zedmanager's restart reaches it; its handlers have run by then, as ours have
    /// once the statuses are out).
    fn signal_restarted_when_done(&mut self) {
        let (Some((_, since)), Some(topic)) = (self.configs_restarted, &self.configs) else { return };
        let outputs = &self.shared.outputs;
        let version = |bytes: &[u8]| -> Option<String> {
            let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
            Some(v.get("UUIDandVersion")?.get("Version")?.as_str()?.to_string())
        };
        let waiting: Vec<String> = topic
            .keys()
            .into_iter()
            .filter(|key| match (topic.get(key), outputs.domain_status.get(key)) {
                (Some(config), Some(status)) => version(&config) != version(&status),
                (None, _) => false,
                (Some(_), None) => true,
            })
            .collect();
        // A config that cannot be used at all may never get a status of its version: it does
        // not hold up the others for long.
        let late = since.elapsed() >= RESTARTED_WAIT;
        if late && !waiting.is_empty() {
            log::warn!("DomainStatus: saying restarted without statuses for {}", waiting.join(", "));
        }
        if waiting.is_empty() || late {
            self.configs_restarted = None;
            match outputs.domain_status.signal_restarted() {
                Ok(()) => log::info!("DomainStatus: restarted ({})", outputs.domain_status.restart_counter()),
                Err(e) => log::error!("DomainStatus: cannot signal restarted: {e}"),
            }
        }
    }

    fn reload_settings(&mut self) {
        let loaded = match &self.settings_input {
            Some(input) => Settings::load_input(input, &self.options.config_flags),
            None => Settings::load(None, &self.options.config_flags),
        };
        match loaded {
            Ok(s) => {
                log::info!("settings reloaded: {s:?}");
                let (usb, vga, console) = (s.enable_usb, s.enable_vga, s.enable_console);
                *self.shared.settings.write() = s;
                let mut adapters = self.shared.adapters.lock();
                adapters.set_enable_usb(usb);
                adapters.set_enable_vga(vga);
                drop(adapters);
                self.getty.apply(console);
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
            if self.config_present(&key) {
                self.on_config_file(&key, None); // it was replaced, not removed
            } else if let Some(h) = self.domains.get_mut(&key) {
                h.last_bytes = None;
                h.cancel_copy.store(true, std::sync::atomic::Ordering::SeqCst);
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
        if self.configs.as_ref().is_some_and(|t| !t.synchronized()) {
            return; // nothing is believed gone before zedmanager's first snapshot
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

    fn list_config_keys(&mut self) -> Vec<String> {
        if let Some(topic) = &self.configs {
            let mut keys = Vec::new();
            for key in topic.keys() {
                if watcher::canonical_uuid(&key).is_some() {
                    keys.push(key);
                } else if self.misspelt.insert(key.clone().into()) {
                    log::warn!(
                        "{}: key {key:?} is not a config's: a key is its app's UUID in lower-case hex with hyphens",
                        topic.name()
                    );
                }
            }
            return keys;
        }
        let Ok(entries) = std::fs::read_dir(self.shared.paths.domain_config_dir()) else {
            return Vec::new();
        };
        let mut keys = Vec::new();
        for name in entries.flatten().map(|e| e.file_name()) {
            match watcher::config_key(&name) {
                Some(key) => keys.push(key),
                None if watcher::misspelt_config(&name) && self.misspelt.insert(name.clone()) => log::warn!(
                    "{}: not a config: a config's name is its UUID in lower-case hex with hyphens, then .json",
                    self.shared.paths.domain_config_dir().join(&name).display()
                ),
                None => {}
            }
        }
        keys.sort();
        keys
    }

    /// Where `key`'s config is: its file, or (EVE's pubsub) zedmanager's checkpoint of it,
    /// which names it in messages.
    fn config_path(&self, key: &str) -> PathBuf {
        match &self.configs {
            Some(topic) => topic.origin(key),
            None => self.shared.paths.domain_config_dir().join(format!("{key}.json")),
        }
    }

    /// Whether `key` has a config now.
    fn config_present(&self, key: &str) -> bool {
        match &self.configs {
            Some(topic) => topic.get(key).is_some(),
            None => self.config_path(key).exists(),
        }
    }

    /// `key`'s config bytes, `Ok(None)` if it has none.
    fn config_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        if let Some(topic) = &self.configs {
            return Ok(topic.get(key));
        }
        match configfile::read(&self.config_path(key), &configfile::DOMAIN_CONFIG) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(error_chain(&e)),
        }
    }

    /// The config file of `key` was written (or found): parse it and hand it to its thread.
    fn on_config_file(&mut self, key: &str, existing: Option<DomainInfo>) {
        // Only a UUID's one spelling names a config: two spellings would make two threads.
        let Some(uuid) = watcher::canonical_uuid(key) else {
            if let Some(topic) = &self.configs
                && self.misspelt.insert(key.into())
            {
                log::warn!(
                    "{}: key {key:?} is not a config's: a key is its app's UUID in lower-case hex with hyphens",
                    topic.name()
                );
            }
            return;
        };
        let path = self.config_path(key);
        let bytes = match self.config_bytes(key) {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                self.send_or_spawn(key, uuid, Command::ConfigUnreadable(e), existing);
                return;
            }
        };
        if self.domains.get(key).is_some_and(|h| h.last_bytes.as_deref() == Some(&bytes)) {
            return;
        }
        let command = match load(&path, uuid, &bytes, &self.options.eve.pv_boot) {
            Ok(loaded) => Command::Config(Box::new(loaded)),
            Err(reason) => Command::ConfigUnreadable(reason),
        };
        self.send_or_spawn(key, uuid, command, existing);
        if let Some(h) = self.domains.get_mut(key) {
            h.last_bytes = Some(bytes);
        }
    }
}

/// Parses and translates a config file's bytes.
fn load(path: &Path, uuid: Uuid, bytes: &[u8], pv: &translate::PvBoot) -> Result<Loaded, String> {
    let config: DomainConfig =
        serde_json::from_slice(bytes).map_err(|e| format!("{}: not a valid DomainConfig: {e}", path.display()))?;
    if config.uuid_and_version.uuid != uuid {
        return Err(format!(
            "{}: UUIDandVersion.UUID = {}: does not match the file name",
            path.display(),
            config.uuid_and_version.uuid
        ));
    }
    let translated = translate::translate(&config, path, pv);
    Ok(Loaded { config, translated, source: Source::Eve })
}
