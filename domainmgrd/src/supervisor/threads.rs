//! The domain threads: one is started for a config or a domain found running (a panic in it
//! is caught and recorded in its status, the daemon and the domain carry on), commands are
//! routed to it or start it anew, ended ones are reaped (and their config read again), and all
//! are stopped with the daemon, leaving their domains as they are.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;
use xenctl::DomainInfo;

use super::{DomainHandle, Ended, Supervisor};
use crate::agent::Outputs;
use crate::domain::{self, Command, Domain, Loaded, Source};

impl Supervisor {
    /// Joins the domain threads that ended. A thread that ended on its own (a delete or a
    /// forget done) may have been sent a config it never read, written again just as it
    /// ended: its file, if there is one now, is read again at once. After a panic the next
    /// rescan starts it again, so a panic that repeats does not spin.
    pub(super) fn reap_finished(&mut self) {
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

    pub(super) fn send_or_spawn(&mut self, key: &str, uuid: Uuid, command: Command, existing: Option<DomainInfo>) {
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
    pub(super) fn running_domain(&self, uuid: Uuid) -> Option<DomainInfo> {
        match self.shared.hv.list() {
            Ok(domains) => domains.into_iter().filter(|d| !d.domid.is_dom0()).find(|d| d.uuid == uuid),
            Err(e) => {
                log::error!("cannot list the hypervisor's domains to find {uuid}'s: {e}");
                None
            }
        }
    }

    /// Refuses a new domain for `uuid` while a domain no thread manages runs with that UUID:
    /// booting would make a second one (libxl does not refuse a UUID in use), and a domain we
    /// did not create is never taken over by a create or a restore.
    pub(super) fn refuse_if_running(&self, uuid: Uuid) -> Result<(), String> {
        match self.running_domain(uuid) {
            Some(d) => Err(format!(
                "domain {} ({}) already runs with the UUID {uuid}; domainmgrd does not manage it",
                d.domid,
                d.name.as_deref().unwrap_or("no name")
            )),
            None => Ok(()),
        }
    }

    /// Starts the thread of a domain whose config is `loaded` (or not known yet), taking over
    /// `existing`.
    pub(super) fn spawn(&mut self, key: String, uuid: Uuid, loaded: Option<Loaded>, existing: Option<DomainInfo>) {
        let domain = Domain::new(self.shared.clone(), key.clone(), uuid, loaded);
        self.start_thread(key, domain, existing);
    }

    /// Runs `domain` in its own thread, which takes over `existing` first.
    pub(super) fn start_thread(&mut self, key: String, mut domain: Domain, existing: Option<DomainInfo>) {
        if !self.taken_over {
            let (tx, rx) = crossbeam_channel::bounded(1);
            domain.tell_first_status(tx);
            self.first_statuses.push(rx);
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let cancel_copy = domain.copy_cancel();
        let source = domain.source();
        let outputs = Arc::clone(&self.shared.outputs);
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
                        record_panic(&outputs, &registry, &thread_key, panic.as_ref());
                        Ended::Panicked
                    }
                }
                // `rx` closes only now, after the panic is recorded.
            });
        match spawned {
            Ok(thread) => {
                self.domains.insert(key, DomainHandle { tx, cancel_copy, thread, last_bytes: None, source });
            }
            Err(e) => log::error!("{key}: cannot start its thread: {e}"),
        }
    }

    /// Tells every domain thread to stop and waits (boundedly) for them: a thread in the middle
    /// of a slow hypervisor call finishes that call first; its domain is left as it is.
    pub(super) fn stop_domains(&mut self) {
        for h in self.domains.values() {
            h.cancel_copy.store(true, std::sync::atomic::Ordering::SeqCst);
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

/// A domain thread panicked: say so in its status (and in what `domainctl list` shows); the
/// daemon and the domain carry on.
fn record_panic(outputs: &Outputs, registry: &crate::metrics::Registry, key: &str, panic: &(dyn std::any::Any + Send)) {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    log::error!("{key}: its thread failed: {what}; the domain is left as it is");
    let mut status =
        domain::read_status(outputs, key).unwrap_or_else(|| domain::empty_status(key.parse().unwrap_or_default()));
    status.state = crate::eve::SwState::UNKNOWN;
    status.state_name = status.state.to_string();
    if let Ok(uuid) = key.parse::<Uuid>()
        && let Some(brief) = registry.write().get_mut(&uuid)
    {
        brief.state = status.state_name.clone();
    }
    status.error =
        crate::eve::ErrorDescription::now(format!("internal error in domainmgrd: {what}"), "restart domainmgrd");
    Outputs::publish(&outputs.domain_status, key, &status);
}
