//! Host boot and shutdown, what xendomains does, done through the domain threads:
//!
//! host-start: restore each saved image whose record matches its domain's current config and
//! latest run (a stale one is refused, reported and moved aside, never restored; one without a
//! record, e.g. xendomains' own, is reported once and moved aside too), transient domains
//! included (from their image's record, as `domainctl restore` does), then start every
//! autostart domain that is not running and that no operator stopped or saved elsewhere; at
//! most `START_PARALLEL` creates at once, no fixed sleeps. It refuses a settings file it
//! cannot read (exit 6): starting with wrong settings could boot afresh what waits saved.
//!
//! host-stop: for the selected domains (all managed ones, or only the autostart ones with
//! `AUTO_ONLY`; and the unmanaged ones too with `SHUTDOWN_ALL`), SysRq keys, then save (with
//! `SAVE`; unmanaged domains are shut down, host-start could not restore them) or a graceful
//! shutdown, all in parallel, each under the `STOP_MAXWAIT` watchdog, destroying what is left
//! (unless `DESTROY_LEFT=false`). With a settings file it cannot read it goes on with the
//! settings it last read (at host shutdown, refusing would leave the guests to be killed at
//! poweroff) and says so first in its report.
//!
//! Each ends with a report per domain. Only one of them runs at a time; while host stop is in
//! effect (recorded in the state directory, so across daemon restarts too) no domain boots or
//! restarts on its own, until host-start.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use xenctl::{DomId, DomainEvent};

use super::Supervisor;
use super::autostart::loaded_from_spec;
use crate::control::{Response, exit};
use crate::domain::{Command, Operator, Permits, Report, Source};
use crate::hostcfg::HostConfig;
use crate::hoststate;
use crate::hypervisor::Hypervisor;
use crate::images::{self, ImageKind, ImageRecord};

/// One domain's part of a host-start or host-stop: its thread, its key and name (for a report
/// if it never answers), and the request.
struct Job {
    domain: Sender<Command>,
    key: String,
    name: String,
    op: Operator,
}

/// Sends each job to its domain thread and collects the reports until `deadline`, in a helper
/// thread; answers `reply` with all reports (and `known`, the failures found before sending).
/// A domain that gives no report (its thread failed, or is stuck) is a failure in the report
/// and the exit status: it is never left out.
fn run_jobs(
    jobs: Vec<Job>,
    mut known: Vec<Report>,
    extra: Vec<std::thread::JoinHandle<Report>>,
    what: &'static str,
    deadline: Instant,
    done: Arc<std::sync::atomic::AtomicBool>,
    reply: Sender<Response>,
) {
    std::thread::spawn(move || {
        let started = Instant::now();
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut waiting: Vec<(String, String)> = Vec::new();
        for job in jobs {
            if job.domain.send(Command::Operator(job.op, tx.clone())).is_ok() {
                waiting.push((job.key, job.name));
            } else {
                known.push(failed(job.name, "its thread had ended; it was not asked"));
            }
        }
        drop(tx);
        while !waiting.is_empty() {
            match rx.recv_deadline(deadline) {
                Ok(r) => {
                    waiting.retain(|(key, _)| *key != r.key);
                    known.push(r);
                }
                Err(_) => break,
            }
        }
        for (_, name) in waiting {
            known.push(failed(
                name,
                "gave no report (its thread failed or is stuck); `domainctl status` says where it is",
            ));
        }
        for t in extra {
            match t.join() {
                Ok(r) => known.push(r),
                Err(_) => known.push(failed("(unmanaged domain)", "its stop failed inside domainmgrd")),
            }
        }
        known.sort_by(|a, b| a.name.cmp(&b.name));
        let ok = known.iter().all(|r| r.ok);
        log::info!(
            "{what}: {} domain(s) in {:.1?}, {}",
            known.len(),
            started.elapsed(),
            if ok { "all done" } else { "with failures" }
        );
        for r in &known {
            if r.ok {
                log::info!("{what}: {}: {}", r.name, r.outcome);
            } else {
                log::error!("{what}: {}: {}", r.name, r.outcome);
            }
        }
        done.store(false, Ordering::SeqCst);
        let _ = reply.send(Response {
            ok,
            error: (!ok).then(|| format!("{what}: some domains failed")),
            data: serde_json::to_value(&known).unwrap_or_default(),
            exit: if ok { 0 } else { 1 },
        });
    });
}

fn failed(name: impl Into<String>, outcome: impl Into<String>) -> Report {
    Report { name: name.into(), key: String::new(), ok: false, outcome: outcome.into(), seconds: 0.0 }
}

impl Supervisor {
    /// The name a report gives the domain of `key`.
    fn display_name(&self, key: &str) -> String {
        key.parse()
            .ok()
            .and_then(|u| self.shared.registry.read().get(&u).map(|b| b.display_name.clone()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| key.to_string())
    }

    /// A transient domain's thread, from an image's record (`domainctl restore`, and host-start
    /// for the transient domains host-stop saved); its key.
    pub(super) fn spawn_transient(&mut self, record: &ImageRecord) -> Result<String, String> {
        let key = record.uuid.to_string();
        if !self.domains.contains_key(&key) {
            self.refuse_if_running(record.uuid)?;
            let mut spec = match &record.libxl_json {
                // It came by migration, with libxl's JSON and no xl.cfg form.
                Some(json) => xenctl::DomainSpec::from_libxl_json(json).map_err(|e| {
                    format!("its recorded libxl JSON config cannot be used: {}", crate::error_chain(&e))
                })?,
                None => {
                    let parsed = self.options.xl_parser.parse(&record.name, record.xl_config.as_bytes());
                    parsed.map_err(|e| format!("its recorded config does not parse: {e}"))?.spec
                }
            };
            spec.uuid = record.uuid;
            self.spawn(key.clone(), record.uuid, Some(loaded_from_spec(spec, Source::Transient)), None);
        }
        Ok(key)
    }

    pub(super) fn host_start(&mut self, reply: Sender<Response>) {
        if !self.host_op_begin(&reply) {
            return;
        }
        let host = match HostConfig::load(&self.options.host_config) {
            Ok(c) => c,
            Err(e) => {
                // Restoring or starting with settings that may be wrong (another SAVE, another
                // AUTO) could boot afresh a domain whose image waits elsewhere: refuse, and
                // leave host stop in effect. The unit counts this exit as started, so that
                // host-stop still runs at shutdown.
                self.host_op.store(false, Ordering::SeqCst);
                let text = format!("{e}; host-start refused: fix the file and run it again");
                let _ = reply.send(Response::error_with_exit(text, exit::NOT_CONFIGURED));
                return;
            }
        };
        self.host = host.clone();
        self.shared.host_stopped.store(false, Ordering::SeqCst);
        if let Err(e) = hoststate::set_host_stopped(&self.shared.paths, false) {
            log::error!("host-start: cannot clear the host-stop record: {e}");
        }
        // A transient domain that host-stop just saved ended its thread: joined first, so that
        // its image finds no thread and is restored as a transient domain again.
        self.reap_finished();
        self.rescan_auto();
        let mut known: Vec<Report> = self
            .auto_errors
            .iter()
            .map(|(p, e)| failed(p.display().to_string(), format!("autostart file not used: {e}")))
            .collect();

        // Saved images, by the domain they belong to. With RESTORE=false only the managed
        // domains' own are looked at (an image goes stale when its domain boots afresh).
        let mut image_for = std::collections::HashMap::new();
        if let Some(dir) = &host.save_dir {
            for image in images::list(dir) {
                let record = images::read_record(&image);
                match record {
                    Ok(rec) if self.domains.contains_key(&rec.uuid.to_string()) => {
                        image_for.insert(rec.uuid.to_string(), image);
                    }
                    _ if !host.restore => {}
                    Ok(rec) if rec.kind == ImageKind::Transient => match self.spawn_transient(&rec) {
                        Ok(key) => {
                            image_for.insert(key, image);
                        }
                        Err(e) => known.push(failed(rec.name, format!("refused {}: {e}", image.display()))),
                    },
                    Ok(rec) => {
                        let moved = images::set_aside_noted(&image);
                        known.push(failed(
                            rec.name,
                            format!("refused {}: stale: no config for it any more ({moved})", image.display()),
                        ));
                    }
                    Err(e) => {
                        let moved = images::set_aside_noted(&image);
                        known.push(failed(
                            image.display().to_string(),
                            format!("refused: {e} ({moved}; an image saved by xl is restored with xl restore)"),
                        ));
                    }
                }
            }
        }
        let permits = Permits::new(host.start_parallel);
        let mut jobs = Vec::new();
        for (key, h) in &self.domains {
            let image = image_for.remove(key);
            if image.is_some() || matches!(h.source, Source::Auto(_)) {
                let op = Operator::HostStart { image, restore: host.restore, permits: Arc::clone(&permits) };
                jobs.push(Job { domain: h.tx.clone(), key: key.clone(), name: self.display_name(key), op });
            } else {
                // The others (EVE domains) follow their configs again now that host stop
                // is over; they are not part of the report.
                let _ = h.tx.send(Command::HostStarted);
            }
        }
        log::info!("host-start: {} domain(s) to restore or start, {} at a time", jobs.len(), host.start_parallel);
        // Restores and boots take what they take; an hour bounds a thread that is stuck.
        let deadline = crate::domain::after(Duration::from_secs(3600));
        run_jobs(jobs, known, Vec::new(), "host-start", deadline, Arc::clone(&self.host_op), reply);
    }

    pub(super) fn host_stop(&mut self, reply: Sender<Response>) {
        if !self.host_op_begin(&reply) {
            return;
        }
        let mut known = Vec::new();
        let host = match HostConfig::load(&self.options.host_config) {
            Ok(c) => {
                self.host = c.clone();
                c
            }
            Err(e) => {
                // At host shutdown a refusal would leave every guest to be killed at poweroff:
                // go on with the settings last read (at daemon start, or the last host-start).
                log::error!("host-stop: {e}; going on with the settings last read successfully");
                known.push(failed(
                    "(settings)",
                    format!(
                        "{e}; host-stop went on with the settings last read successfully: {}",
                        describe(&self.host)
                    ),
                ));
                self.host.clone()
            }
        };
        // From now on nothing boots or restarts on its own, across daemon restarts too.
        self.shared.host_stopped.store(true, Ordering::SeqCst);
        if let Err(e) = hoststate::set_host_stopped(&self.shared.paths, true) {
            log::error!("host-stop: cannot record it: {e}; a daemon restart before host-start would boot domains");
        }
        let op = Operator::HostStop {
            save_dir: host.save_dir.clone(),
            sysrq: host.sysrq.clone(),
            maxwait: host.stop_maxwait,
            destroy_left: host.destroy_left,
            migrate: host.migrate.clone().map(|to| {
                let to =
                    crate::domain::MigrateTo { host: to, ssh: host.migrate_ssh.clone(), live: true, timeout: None };
                Box::new((to, Permits::new(host.migrate_parallel)))
            }),
        };
        let jobs: Vec<Job> = self
            .domains
            .iter()
            .filter(|(_, h)| !host.auto_only || matches!(h.source, Source::Auto(_)))
            .map(|(key, h)| Job {
                domain: h.tx.clone(),
                key: key.clone(),
                name: self.display_name(key),
                op: op.clone(),
            })
            .collect();
        let mut extra = Vec::new();
        if host.shutdown_all {
            let managed: std::collections::HashSet<String> = self.domains.keys().cloned().collect();
            for d in self.shared.hv.list().unwrap_or_default() {
                if d.domid.is_dom0() || managed.contains(&d.uuid.to_string()) {
                    continue;
                }
                let hv = Arc::clone(&self.shared.hv);
                let host = host.clone();
                let name = d.name.clone().unwrap_or_else(|| format!("domain {}", d.domid));
                extra.push(std::thread::spawn(move || stop_unmanaged(hv.as_ref(), d.domid, name, &host)));
            }
        }
        log::info!(
            "host-stop: {} managed and {} unmanaged domain(s), watchdog {:?}",
            jobs.len(),
            extra.len(),
            host.stop_maxwait
        );
        // Every domain reports by the watchdog, plus the wait for a destroyed domain to go (an
        // aborted save waits that long too), plus a margin: a domain that has not reported by
        // then is reported as a failure.
        let destroy = self.shared.settings.read().destroy_timeout;
        let deadline =
            crate::domain::after(host.stop_maxwait.saturating_add(destroy.saturating_mul(2)) + Duration::from_secs(30));
        run_jobs(jobs, known, extra, "host-stop", deadline, Arc::clone(&self.host_op), reply);
    }
}

/// The settings host-stop uses, in a few words.
fn describe(h: &HostConfig) -> String {
    let save = h.save_dir.as_ref().map_or_else(|| "shut down".to_string(), |d| format!("save to {}", d.display()));
    let save = match &h.migrate {
        Some(to) => format!("migrate to {to}, else {save}"),
        None => save,
    };
    format!(
        "{save}, STOP_MAXWAIT={}, DESTROY_LEFT={}, AUTO_ONLY={}, SHUTDOWN_ALL={}",
        h.stop_maxwait.as_secs(),
        h.destroy_left,
        h.auto_only,
        h.shutdown_all
    )
}

/// SHUTDOWN_ALL: stops a domain domainmgrd does not manage as a managed one is stopped (SysRq
/// keys, then a graceful shutdown), under the watchdog. It is not saved: host-start restores
/// only what domainmgrd manages.
fn stop_unmanaged(hv: &dyn Hypervisor, domid: DomId, name: String, host: &HostConfig) -> Report {
    let (maxwait, destroy_left) = (host.stop_maxwait, host.destroy_left);
    let started = Instant::now();
    let report = |ok: bool, outcome: String| Report {
        name: name.clone(),
        key: String::new(),
        ok,
        outcome,
        seconds: started.elapsed().as_secs_f64(),
    };
    for &key in &host.sysrq {
        if let Err(e) = hv.sysrq(domid, key) {
            log::warn!("host-stop: {name}: sysrq {key}: {e}");
        }
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let _watch = match hv.watch(domid, tx) {
        Ok(w) => w,
        Err(e) => return report(false, format!("cannot watch it: {e}")),
    };
    let asked = match hv.shutdown(domid) {
        Err(xenctl::Error::NoPvDrivers { .. }) => hv.power_button(domid),
        other => other,
    };
    if let Err(e) = asked {
        log::warn!("host-stop: {name}: shutdown request failed: {e}");
    }
    let deadline = started.checked_add(maxwait).unwrap_or_else(|| crate::domain::after(maxwait));
    match rx.recv_deadline(deadline) {
        Ok(DomainEvent::Death { .. }) => report(true, "shut down (unmanaged)".into()),
        // A shut-down domain stays until someone destroys it; nobody else will.
        Ok(DomainEvent::Shutdown { .. }) => {
            let _ = hv.destroy(domid);
            report(true, "shut down (unmanaged)".into())
        }
        Err(_) if destroy_left => match hv.destroy(domid) {
            Ok(()) => {
                report(true, format!("destroyed: it did not shut down within {}s (unmanaged)", maxwait.as_secs()))
            }
            Err(e) => report(false, format!("did not shut down, and destroy failed: {e}")),
        },
        Err(_) => report(false, format!("still running after {}s (unmanaged); left running", maxwait.as_secs())),
    }
}
