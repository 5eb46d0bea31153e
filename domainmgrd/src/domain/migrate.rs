//! Migrating one domain to another host (`domainctl migrate`, host-stop's `MIGRATE`), and
//! taking over one that migrated in.
//!
//! Out: the transport runs (`migration.rs`), xenctl streams the domain while the guest runs
//! (live) or suspended, and the target restores it, unpauses it and says so; only then is the
//! copy here destroyed. Until the point of no return a failure resumes the guest here as it
//! was; after it, a broken stream leaves our copy suspended and in doubt (xl's "domain state
//! is now undefined"), watched until an operator destroys or resumes it. A domain that left is
//! not booted here again on its own: its stop is recorded as an operator's (a transient one is
//! forgotten), until an operator starts it or it migrates back. The thread is busy for the
//! transfer, as for a save; the guest's suspend is its own doing, not someone else's save.
//!
//! In: the supervisor hands over the domain the receiver started (`supervisor/incoming.rs`);
//! it is adopted as if found running at the daemon's start, and its run goes on: a fresh run id
//! here (an image saved here before is stale), no operator stop.

use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use xenctl::{DomId, DomainEvent, DomainInfo, MigrateOutcome, ShutdownReason};

use super::operator::{Report, Waiter, Want};
use super::{AfterDeath, Domain, Phase};
use crate::eve::ErrorDescription;
use crate::migration::{self, MigrationStatus, Transport};
use crate::records::Step;

/// How long the transport gets to end after the migration, before it is killed.
const TRANSPORT_GRACE: Duration = Duration::from_secs(10);

/// A migration asked of a domain thread.
#[derive(Debug, Clone)]
pub struct MigrateTo {
    /// The target host (or, with an empty `ssh`, the whole transport command).
    pub host: String,
    /// The ssh command (xl's `-s`); `None`: [`migration::DEFAULT_SSH`].
    pub ssh: Option<String>,
    /// Pre-copy while the guest runs, or stop and copy.
    pub live: bool,
    /// Cut it short (before the point of no return) after this long.
    pub timeout: Option<Duration>,
}

/// How a migration out ended, for host-stop's fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Left {
    /// It runs there; ours is being destroyed.
    Migrated,
    /// Not migrated: it runs here as before.
    Stayed(String),
    /// It cannot be known, or it is stuck here: nothing more may be done with it.
    Stuck(String),
}

impl Domain {
    /// An operator's `domainctl migrate`: reported once the domain is gone from here, or at
    /// once when it stays.
    pub(super) fn migrate_for(&mut self, to: MigrateTo, reply: Sender<Report>, since: Instant) {
        let host = to.host.clone();
        match self.migrate_out(&to, None) {
            Left::Migrated => {
                self.waiters.push(Waiter::new(Want::Gone, reply, since, format!("migrated to {host}")));
            }
            Left::Stayed(e) => self.report(&reply, since, false, format!("not migrated, it runs here as before: {e}")),
            Left::Stuck(e) => self.report(&reply, since, false, e),
        }
    }

    /// Migrates the running domain to `to.host`; `deadline` (host-stop's watchdog) or
    /// `to.timeout` cut it short.
    pub(super) fn migrate_out(&mut self, to: &MigrateTo, deadline: Option<Instant>) -> Left {
        let Some(domid) = self.running_domid() else {
            return Left::Stayed("not running".into());
        };
        let started = Instant::now();
        let peer = to.host.clone();
        let args = ["--source", self.source.as_str()];
        let command = match migration::command_line(to.ssh.as_deref(), &to.host, &args) {
            Ok(c) => c,
            Err(e) => return Left::Stayed(e),
        };
        let mut transport = match Transport::spawn(&command, &self.name()) {
            Ok(t) => t,
            Err(e) => return Left::Stayed(format!("cannot run `{command}`: {e}")),
        };
        let Some(stream) = transport.stream() else {
            return Left::Stayed("the transport has no stdin or stdout".into());
        };
        // A daemon killed from here on finds the record and finishes it (adopt.rs).
        if let Err(e) = self.record(Step::Migrating { domid: domid.get(), to: peer.clone() }) {
            let _ = transport.finish(Duration::ZERO);
            return Left::Stayed(format!(
                "cannot record the migration in {}: {e}",
                self.shared.paths.run_dir.display()
            ));
        }
        self.status.migration = Some(MigrationStatus::out(&peer, "migrating"));
        self.publish();
        log::info!(
            "{}: migrating domain {domid} to {peer} ({})",
            self.name(),
            if to.live { "live" } else { "stop and copy" }
        );
        // The watchdog: the stream is cut when the time is up.
        let limit = [to.timeout.map(|t| started + t), deadline].into_iter().flatten().min();
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
        let watchdog = limit.map(|limit| {
            let killer = transport.killer();
            std::thread::spawn(move || {
                if done_rx.recv_deadline(limit).is_err() {
                    killer.kill();
                    true
                } else {
                    false
                }
            })
        });
        let outcome = self.shared.hv.migrate_send(domid, to.live, stream);
        drop(done_tx);
        let timed_out = watchdog.is_some_and(|w| w.join().unwrap_or(false));
        let how = transport.finish(TRANSPORT_GRACE);
        self.drop_own_suspend_events(domid);
        let secs = started.elapsed().as_secs_f64();
        let why = |e: &dyn std::fmt::Display| {
            if timed_out {
                format!("cut short after its time ran out ({e}); transport {how}")
            } else {
                format!("{e}; transport {how}")
            }
        };
        match outcome {
            Ok(MigrateOutcome::Migrated) => {
                log::info!("{}: migrated to {peer} in {secs:.1} s; destroying the copy here", self.name());
                self.status.migration =
                    Some(MigrationStatus { seconds: Some(secs), ..MigrationStatus::out(&peer, "migrated") });
                // Not booted here again on its own: it runs there.
                self.operator_stopped = true;
                if let Err(e) = self.shared.paths.set_operator_stopped(self.uuid, true) {
                    log::error!("{}: cannot record that it left: {e}", self.name());
                }
                self.set_active(false);
                self.destroy(domid, AfterDeath::MigratedAway);
                Left::Migrated
            }
            Err(e) => {
                let e = why(&e);
                log::warn!("{}: migration to {peer} failed; it runs here as before: {e}", self.name());
                self.status.migration =
                    Some(MigrationStatus { error: Some(e.clone()), ..MigrationStatus::out(&peer, "failed") });
                self.phase = Phase::Running { domid, paused: false };
                Left::Stayed(e)
            }
            Ok(MigrateOutcome::SourceSuspended { error, resume_error }) => {
                let e = format!(
                    "migration to {peer} failed ({}) and the guest could not be resumed here: {resume_error}",
                    why(&error)
                );
                self.stuck(domid, &peer, "failed", e)
            }
            Ok(MigrateOutcome::InDoubt { error }) => {
                let e = format!(
                    "migration to {peer} broke in its last step ({}): the domain may run there; its copy here is kept suspended \
                     (as {}--migratedaway): if it runs on {peer}, destroy this copy; if not, resume this one",
                    why(&error),
                    self.domain_name()
                );
                self.stuck(domid, &peer, "in-doubt", e)
            }
        }
    }

    /// A migration left the domain suspended here: watched until someone destroys or resumes it.
    fn stuck(&mut self, domid: DomId, peer: &str, state: &str, e: String) -> Left {
        log::error!("{}: {e}", self.name());
        self.status.migration = Some(MigrationStatus { error: Some(e.clone()), ..MigrationStatus::out(peer, state) });
        self.run_error = Some(ErrorDescription::now(e.clone(), "an operator destroys or resumes the copy here"));
        self.phase = Phase::Suspended { domid };
        Left::Stuck(e)
    }

    /// The guest's suspend for the migration reached our watch as a shutdown: it is ours, not
    /// someone else's save. Other events stay.
    fn drop_own_suspend_events(&mut self, domid: DomId) {
        let pending: Vec<DomainEvent> = self.events_rx.try_iter().collect();
        for ev in pending {
            let own = matches!(ev, DomainEvent::Shutdown { domid: d, reason: ShutdownReason::Suspend } if d == domid);
            if !own {
                let _ = self.events_tx.send(ev);
            }
        }
    }

    /// The daemon that drove this domain died while migrating it to `to` (`adopt.rs`). A copy
    /// still suspended under its own name never got the target's "go": it is resumed and runs on
    /// here. One renamed `NAME--migratedaway` may run on the target already: left suspended,
    /// in doubt, as xl leaves it. One that runs was still being copied live: it runs on.
    pub(super) fn finish_interrupted_migration(&mut self, info: DomainInfo, to: &str) {
        let domid = info.domid;
        let suspended = info.state == xenctl::DomainState::Shutdown(ShutdownReason::Suspend);
        let away = info.name.as_deref().is_some_and(|n| n.ends_with("--migratedaway"));
        if suspended && away {
            let e = format!(
                "a migration to {to} was cut short by a daemon restart in its last step: the domain may run on {to}; \
                 this copy (domain {domid}) is kept suspended: if it runs there, destroy this one"
            );
            self.stuck(domid, to, "in-doubt", e);
            return;
        }
        if suspended {
            match self.shared.hv.resume(domid) {
                Ok(()) => {
                    log::warn!(
                        "{}: domain {domid} was left suspended by a migration to {to} cut short; resumed it",
                        self.name()
                    );
                    // The watch reported the suspend it found: stale now.
                    self.watch = None;
                    while self.events_rx.try_recv().is_ok() {}
                    self.arm_watch(domid);
                }
                Err(e) => {
                    let e = format!(
                        "domain {domid} was left suspended by a migration to {to} cut short, and resuming it failed: {e}"
                    );
                    self.stuck(domid, to, "failed", e);
                    return;
                }
            }
        }
        let e = "cut short by a daemon restart; it runs here as before".to_string();
        self.status.migration = Some(MigrationStatus { error: Some(e), ..MigrationStatus::out(to, "failed") });
        self.record_or_log(Step::Running { domid: domid.get() });
        self.phase = Phase::Running { domid, paused: false };
    }

    /// A domain migrated in: `info` is it, running here; `from` the sender, if known.
    pub(super) fn migrated_in(&mut self, info: DomainInfo, from: Option<String>) {
        let domid = info.domid;
        match self.current_domid() {
            // Taken over already, by a thread started for it.
            Some(current) if current == domid => {}
            Some(current) => {
                log::error!(
                    "{}: domain {domid} migrated in, but domain {current} is ours already; not adopted",
                    self.name()
                );
                return;
            }
            None => {
                self.run_error = None;
                self.adopt(Some(info));
            }
        }
        if let Err(e) = self.record_fresh_boot() {
            log::error!("{}: {e}", self.name());
        }
        // The durable record was cleared by the receiver before this command (incoming.rs).
        self.operator_stopped = false;
        self.set_active(true);
        self.status.boot_time.get_or_insert_with(chrono::Utc::now);
        let peer = from.unwrap_or_else(|| "another host".into());
        self.status.migration = Some(MigrationStatus::received(&peer));
        log::info!("{}: migrated in from {peer}; managed here as domain {domid}", self.name());
    }
}
