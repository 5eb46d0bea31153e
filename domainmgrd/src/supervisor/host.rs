//! Host boot and shutdown, what xendomains does, done through the domain threads:
//!
//! host-start: restore each saved image whose record matches its domain's current config (a
//! stale one is refused, reported and moved aside, never restored), then start every autostart
//! domain that is not running and that no operator stopped; at most `START_PARALLEL` creates at
//! once, no fixed sleeps. host-stop: for the selected domains (all managed ones, or only the
//! autostart ones with `AUTO_ONLY`; and the unmanaged ones too with `SHUTDOWN_ALL`), SysRq keys,
//! then save (with `SAVE`) or a graceful shutdown, all in parallel, each under the
//! `STOP_MAXWAIT` watchdog, destroying what is left (unless `DESTROY_LEFT=false`). Each ends
//! with a report per domain. Only one of them runs at a time; while host stop is in effect no
//! domain boots or restarts on its own, until host-start.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use xenctl::{DomId, DomainEvent};

use super::Supervisor;
use crate::control::Response;
use crate::domain::{Command, Operator, Permits, Report, Source};
use crate::hostcfg::HostConfig;
use crate::hypervisor::Hypervisor;
use crate::images;

/// Sends each job to its domain thread and collects the reports, in a helper thread; answers
/// `reply` with all reports (and `known`, the failures found before sending).
fn run_jobs(
    jobs: Vec<(Sender<Command>, Operator)>,
    mut known: Vec<Report>,
    extra: Vec<std::thread::JoinHandle<Report>>,
    what: &'static str,
    done: Arc<std::sync::atomic::AtomicBool>,
    reply: Sender<Response>,
) {
    std::thread::spawn(move || {
        let started = Instant::now();
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut expected = 0;
        for (domain, op) in jobs {
            if domain.send(Command::Operator(op, tx.clone())).is_ok() {
                expected += 1;
            }
        }
        drop(tx);
        for _ in 0..expected {
            match rx.recv_timeout(Duration::from_secs(3600)) {
                Ok(r) => known.push(r),
                Err(_) => break,
            }
        }
        for t in extra {
            if let Ok(r) = t.join() {
                known.push(r);
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
    fn load_host_config(&mut self, reply: &Sender<Response>) -> Option<HostConfig> {
        match HostConfig::load(&self.options.host_config) {
            Ok(c) => {
                self.host = c.clone();
                Some(c)
            }
            Err(e) => {
                self.host_op.store(false, Ordering::SeqCst);
                let _ = reply.send(Response::error(e.to_string()));
                None
            }
        }
    }

    pub(super) fn host_start(&mut self, reply: Sender<Response>) {
        if !self.host_op_begin(&reply) {
            return;
        }
        let Some(host) = self.load_host_config(&reply) else { return };
        self.shared.host_stopped.store(false, Ordering::SeqCst);
        self.rescan_auto();
        let mut known: Vec<Report> = self
            .auto_errors
            .iter()
            .map(|(p, e)| failed(p.display().to_string(), format!("autostart file not used: {e}")))
            .collect();

        // Saved images, by the domain they belong to.
        let mut restore_for = std::collections::HashMap::new();
        if let (true, Some(dir)) = (host.restore, &host.save_dir) {
            for image in images::list(dir) {
                match images::read_record(&image) {
                    Ok(rec) if self.domains.contains_key(&rec.uuid.to_string()) => {
                        restore_for.insert(rec.uuid.to_string(), image);
                    }
                    Ok(rec) => {
                        let moved = images::set_aside(&image)
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|e| e.to_string());
                        known.push(failed(
                            rec.name,
                            format!("refused {}: stale: no config for it any more (moved to {moved})", image.display()),
                        ));
                    }
                    Err(e) => known.push(failed(image.display().to_string(), format!("refused: {e}"))),
                }
            }
        }
        let permits = Permits::new(host.start_parallel);
        let mut jobs = Vec::new();
        for (key, h) in &self.domains {
            let restore = restore_for.remove(key);
            if restore.is_some() || matches!(h.source, Source::Auto(_)) {
                jobs.push((h.tx.clone(), Operator::HostStart { restore, permits: Arc::clone(&permits) }));
            }
        }
        log::info!("host-start: {} domain(s) to restore or start, {} at a time", jobs.len(), host.start_parallel);
        run_jobs(jobs, known, Vec::new(), "host-start", Arc::clone(&self.host_op), reply);
    }

    pub(super) fn host_stop(&mut self, reply: Sender<Response>) {
        if !self.host_op_begin(&reply) {
            return;
        }
        let Some(host) = self.load_host_config(&reply) else { return };
        // From now on nothing boots or restarts on its own.
        self.shared.host_stopped.store(true, Ordering::SeqCst);
        let op = Operator::HostStop {
            save_dir: host.save_dir.clone(),
            sysrq: host.sysrq.clone(),
            maxwait: host.stop_maxwait,
            destroy_left: host.destroy_left,
        };
        let jobs: Vec<_> = self
            .domains
            .values()
            .filter(|h| !host.auto_only || matches!(h.source, Source::Auto(_)))
            .map(|h| (h.tx.clone(), op.clone()))
            .collect();
        let mut extra = Vec::new();
        if host.shutdown_all {
            let managed: std::collections::HashSet<String> = self.domains.keys().cloned().collect();
            for d in self.shared.hv.list().unwrap_or_default() {
                if d.domid.is_dom0() || managed.contains(&d.uuid.to_string()) {
                    continue;
                }
                let hv = Arc::clone(&self.shared.hv);
                let (maxwait, destroy_left) = (host.stop_maxwait, host.destroy_left);
                let name = d.name.clone().unwrap_or_else(|| format!("domain {}", d.domid));
                extra.push(std::thread::spawn(move || {
                    stop_unmanaged(hv.as_ref(), d.domid, name, maxwait, destroy_left)
                }));
            }
        }
        log::info!(
            "host-stop: {} managed and {} unmanaged domain(s), watchdog {:?}",
            jobs.len(),
            extra.len(),
            host.stop_maxwait
        );
        run_jobs(jobs, Vec::new(), extra, "host-stop", Arc::clone(&self.host_op), reply);
    }
}

/// SHUTDOWN_ALL: shuts down a domain domainmgrd does not manage, under the watchdog.
fn stop_unmanaged(hv: &dyn Hypervisor, domid: DomId, name: String, maxwait: Duration, destroy_left: bool) -> Report {
    let started = Instant::now();
    let report = |ok: bool, outcome: String| Report {
        name: name.clone(),
        key: String::new(),
        ok,
        outcome,
        seconds: started.elapsed().as_secs_f64(),
    };
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
    let deadline = started + maxwait;
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
