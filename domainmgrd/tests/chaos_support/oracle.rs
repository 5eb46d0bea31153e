//! What the scenario asked of each domain up to the kill, and the judgement after the restart
//! (the rules are in chaos.rs's header).

use std::collections::HashMap;
use std::path::PathBuf;

use domainmgrd::control::Response;
use domainmgrd::domain::Report;
use domainmgrd::eve::{DomainStatus, SwState};
use domainmgrd::sim::SimDomain;
use uuid::Uuid;
use xenctl::DomainState;

use super::recorder::{Act, Call};
use super::scenario::{DomainPlan, Kind, Step};

/// The invariants, in the order the report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// Two domains with one UUID.
    Duplicate,
    /// A domain that ran at the kill and was not asked to stop is gone or replaced.
    Lost,
    /// The restarted daemon stopped a domain nobody asked it to stop.
    StoppedUnasked,
    /// A status that does not say what the hypervisor has.
    UntrueStatus,
    /// A save cut short left its partial image behind.
    PartialImage,
    /// A domain thread panicked (UNKNOWN, "internal error").
    Panic,
    /// The daemon did not start again.
    Restart,
}

impl Invariant {
    pub const ALL: [Invariant; 7] = [
        Invariant::Duplicate,
        Invariant::Lost,
        Invariant::StoppedUnasked,
        Invariant::UntrueStatus,
        Invariant::PartialImage,
        Invariant::Panic,
        Invariant::Restart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Invariant::Duplicate => "duplicate",
            Invariant::Lost => "lost",
            Invariant::StoppedUnasked => "stopped unasked",
            Invariant::UntrueStatus => "untrue status",
            Invariant::PartialImage => "partial image",
            Invariant::Panic => "panic",
            Invariant::Restart => "restart failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    pub text: String,
}

fn violation(invariant: Invariant, text: String) -> Violation {
    Violation { invariant, text }
}

/// What the scenario asked of one domain.
#[derive(Debug, Clone)]
pub struct Asked {
    pub plan: DomainPlan,
    /// EVE: the config file's `Activate`; `None` while there is no file.
    pub eve_activate: Option<bool>,
    /// EVE: the file is away only for a republish (it comes back).
    pub republishing: bool,
    /// An operator's stop, destroy, save or restart was asked since it last started.
    pub stopped: bool,
    /// Host-stop was asked since the last host-start.
    pub host_stopped: bool,
    /// Where an operator last saved it.
    pub image: Option<PathBuf>,
    /// Auto: its file cannot be read.
    pub unreadable: bool,
}

impl Asked {
    pub fn new(plan: DomainPlan) -> Asked {
        Asked {
            plan,
            eve_activate: None,
            republishing: false,
            stopped: false,
            host_stopped: false,
            image: None,
            unreadable: false,
        }
    }

    /// How it stands, for a violation's text: its kind and its config file.
    pub fn describe(&self) -> String {
        let file = match self.plan.kind {
            Kind::Eve if self.republishing => "its EVE config away for a republish".to_string(),
            Kind::Eve => format!("its EVE config Activate={:?}", self.eve_activate),
            Kind::Auto if self.unreadable => "its autostart file unreadable".into(),
            Kind::Auto => "its autostart file fine".into(),
            Kind::TransientXl => "transient, from an xl.cfg file".into(),
            Kind::TransientEve => "transient, from an EVE JSON file".into(),
        };
        format!("{} ({file})", self.plan.name)
    }

    /// Whether anything asked for this domain to stop (or made it fair game): its EVE config
    /// says Activate=false or is gone for good, an operator or host-stop asked, or a request
    /// about it was in flight at the kill (except a save: a save cut short leaves the guest
    /// running).
    pub fn stop_allowed(&self, in_flight: &[Step], index: usize) -> bool {
        self.stop_asked_besides_saves(in_flight, index) || self.host_stopped || in_flight.contains(&Step::HostStop)
    }

    /// [`stop_allowed`](Self::stop_allowed) without host-stop, whose saves may be cut short
    /// too: a guest suspended by a save when the daemon died must be resumed, not destroyed.
    pub fn stop_asked_besides_saves(&self, in_flight: &[Step], index: usize) -> bool {
        let eve_off = self.plan.kind == Kind::Eve && self.eve_activate != Some(true) && !self.republishing;
        let pending = in_flight.iter().any(|s| {
            s.domain().is_none_or(|d| d == index)
                && !matches!(s, Step::Save { .. } | Step::Create { .. } | Step::HostStop)
        });
        eve_off || self.stopped || pending
    }
}

/// The scenario's record of every domain.
#[derive(Debug, Clone)]
pub struct Oracle {
    pub domains: Vec<Asked>,
}

impl Oracle {
    pub fn new(plans: &[DomainPlan]) -> Oracle {
        Oracle { domains: plans.iter().cloned().map(Asked::new).collect() }
    }

    /// A request is sent: what it asks takes effect now, whether or not it is answered.
    pub fn sent(&mut self, step: Step) {
        match step {
            Step::Stop { d, .. } | Step::Restart { d } => self.domains[d].stopped = true,
            Step::HostStop => self.domains.iter_mut().for_each(|a| a.host_stopped = true),
            _ => {}
        }
    }

    /// A request was answered.
    pub fn answered(&mut self, step: Step, answer: &Response, file: Option<PathBuf>) {
        match step {
            Step::Start { d } | Step::Restart { d } | Step::Create { d } if answer.ok => {
                self.domains[d].stopped = false;
                self.domains[d].host_stopped = false;
            }
            Step::Save { d } if answer.ok => {
                self.domains[d].stopped = true;
                self.domains[d].image = file;
            }
            Step::Restore { d } if answer.ok => {
                self.domains[d].stopped = false;
                self.domains[d].host_stopped = false;
                self.domains[d].image = None;
            }
            Step::HostStart => {
                // Host-start ends the host stop, whatever became of each domain.
                self.domains.iter_mut().for_each(|a| a.host_stopped = false);
                let reports: Vec<Report> = serde_json::from_value(answer.data.clone()).unwrap_or_default();
                for r in reports.iter().filter(|r| r.ok) {
                    let started = ["started", "restored", "already running"].iter().any(|w| r.outcome.starts_with(w));
                    if let Some(a) = self.domains.iter_mut().find(|a| a.plan.uuid.to_string() == r.key)
                        && started
                    {
                        a.stopped = false;
                    }
                }
            }
            _ => {}
        }
    }

    fn index_of(&self, uuid: Uuid) -> Option<usize> {
        self.domains.iter().position(|a| a.plan.uuid == uuid)
    }

    fn name_of(&self, uuid: Uuid) -> String {
        self.index_of(uuid).map_or_else(|| uuid.to_string(), |i| self.domains[i].plan.name.clone())
    }
}

/// A domain that was running (or paused by us, after a boot) when looked at.
fn live(d: &SimDomain) -> bool {
    d.state.is_live() || (d.state == DomainState::Paused && d.ever_unpaused)
}

/// Suspended by a save that did not finish.
fn suspended(d: &SimDomain) -> bool {
    d.state == DomainState::Shutdown(xenctl::ShutdownReason::Suspend)
}

/// Created paused and never unpaused: its create (or restore) was in flight.
fn half_created(d: &SimDomain) -> bool {
    d.state == DomainState::Paused && !d.ever_unpaused
}

/// Invariant 1: no two domains share a UUID.
pub fn duplicates(oracle: &Oracle, domains: &[SimDomain]) -> Vec<Violation> {
    let mut by_uuid: HashMap<Uuid, Vec<&SimDomain>> = HashMap::new();
    for d in domains {
        by_uuid.entry(d.spec.uuid).or_default().push(d);
    }
    let mut out: Vec<Violation> = by_uuid
        .iter()
        .filter(|(_, ds)| ds.len() > 1)
        .map(|(uuid, ds)| {
            let ids: Vec<String> = ds.iter().map(|d| format!("{} ({})", d.domid, d.state)).collect();
            violation(
                Invariant::Duplicate,
                format!("{}: domains {} share its UUID", oracle.name_of(*uuid), ids.join(", ")),
            )
        })
        .collect();
    out.sort_by(|a, b| a.text.cmp(&b.text));
    out
}

/// What the judgement looks at after the restart.
pub struct After<'a> {
    /// The simulator's domains at the kill.
    pub at_kill: &'a [SimDomain],
    /// The requests unanswered at the kill.
    pub in_flight: &'a [Step],
    /// The simulator's domains now.
    pub now: &'a [SimDomain],
    /// What the restarted daemon asked of the hypervisor.
    pub calls: &'a [Call],
    /// The operators' saves in flight at the kill of a domain that ran when asked: the domain
    /// and its image's path.
    pub saves: &'a [(usize, PathBuf)],
    /// The domains with a whole image in place (the image beside its record, no partial one):
    /// a save that got that far before the kill is finished by the next daemon, not undone.
    pub committed: &'a [Uuid],
}

/// The UUIDs of the images in `dirs` that are in place: the image and its record, and no
/// partial image beside them.
pub fn committed_images(dirs: &[PathBuf]) -> Vec<Uuid> {
    dirs.iter()
        .flat_map(|dir| domainmgrd::images::list(dir))
        .filter(|image| !xenctl::partial_path(image).exists())
        .filter_map(|image| domainmgrd::images::read_record(&image).ok().map(|r| r.uuid))
        .collect()
}

/// Invariants 2 and 3: no domain lost, none stopped unasked.
pub fn lost_or_stopped(oracle: &Oracle, after: &After<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    for (i, asked) in oracle.domains.iter().enumerate() {
        let uuid = asked.plan.uuid;
        let name = asked.describe();
        let k = after.at_kill.iter().filter(|d| d.spec.uuid == uuid).max_by_key(|d| d.domid);
        let now: Vec<&SimDomain> = after.now.iter().filter(|d| d.spec.uuid == uuid).collect();
        // A save cut short in the middle, host-stop's too: the guest is resumed, same domid;
        // unless its image was in place, and then the save is finished (the domain gone).
        if let Some(k) = k.filter(|k| suspended(k))
            && !asked.stop_asked_besides_saves(after.in_flight, i)
        {
            let finished = after.committed.contains(&uuid) && !now.iter().any(|d| live(d));
            if !finished && !now.iter().any(|d| d.domid == k.domid && live(d)) {
                let what = now.first().map_or("gone".to_string(), |d| format!("domain {} ({})", d.domid, d.state));
                out.push(violation(
                    Invariant::Lost,
                    format!(
                        "{name}: domain {} was suspended by a save cut short at the kill; \
                         after the restart it is {what}, not resumed",
                        k.domid
                    ),
                ));
            }
            continue;
        }
        // An operator's save that the hypervisor finished: the image must be restorable.
        if let Some((_, file)) = after.saves.iter().find(|(d, _)| *d == i)
            && k.is_none()
            && !asked.stop_asked_besides_saves(after.in_flight, i)
            && !now.iter().any(|d| live(d))
            && !(file.exists() && domainmgrd::images::record_path(file).exists())
        {
            out.push(violation(
                Invariant::Lost,
                format!(
                    "{name}: its save to {} had finished at the hypervisor (domain gone) when the daemon died; \
                     the image {} and its record {}: nothing can restore it",
                    file.display(),
                    if file.exists() { "is there" } else { "is missing" },
                    if domainmgrd::images::record_path(file).exists() { "is there" } else { "is missing" },
                ),
            ));
        }
        if asked.stop_allowed(after.in_flight, i) {
            continue;
        }
        let Some(k) = k else { continue };
        if half_created(k) {
            let creates = after.calls.iter().filter(|c| c.act == Act::Create && c.uuid == Some(uuid)).count();
            let running = now.iter().filter(|d| live(d) && d.ever_unpaused).count();
            if running != 1 || creates > 1 {
                let states: Vec<String> = now.iter().map(|d| format!("{} {}", d.domid, d.state)).collect();
                out.push(violation(
                    Invariant::Lost,
                    format!(
                        "{name}: its create was in flight at the kill (domain {} paused); after the restart \
                         {running} running domain(s) [{}], created {creates} time(s)",
                        k.domid,
                        states.join(", ")
                    ),
                ));
            }
        } else if live(k) && !now.iter().any(|d| d.domid == k.domid && (live(d) || half_created(d))) {
            let what = match now.first() {
                Some(d) => format!("replaced by domain {} ({})", d.domid, d.state),
                None => "gone".to_string(),
            };
            let saving = after.in_flight.contains(&Step::Save { d: i });
            out.push(violation(
                Invariant::Lost,
                format!(
                    "{name}: domain {} ran at the kill{}; after the restart it is {what}",
                    k.domid,
                    if saving { " with its save in flight" } else { "" }
                ),
            ));
        }
    }
    // Invariant 3: each stop the new daemon made.
    for call in after.calls.iter().filter(|c| c.act.stops()) {
        let Some(domid) = call.domid else { continue };
        let at_kill = after.at_kill.iter().find(|d| d.domid == domid);
        // A domain made after the restart, left half-created, or already shutting down at the
        // kill may be ended; one suspended by a save cut short is to be resumed.
        let Some(at_kill) = at_kill.filter(|d| live(d) || suspended(d)) else { continue };
        let allowed = call.uuid.and_then(|u| oracle.index_of(u)).is_some_and(|i| {
            if suspended(at_kill) {
                oracle.domains[i].stop_asked_besides_saves(after.in_flight, i)
                    || (call.act == Act::Destroy && after.committed.contains(&oracle.domains[i].plan.uuid))
            } else {
                oracle.domains[i].stop_allowed(after.in_flight, i)
            }
        });
        if !allowed {
            let name = call
                .uuid
                .and_then(|u| oracle.index_of(u))
                .map_or_else(|| format!("{:?}", call.uuid), |i| oracle.domains[i].describe());
            out.push(violation(
                Invariant::StoppedUnasked,
                format!(
                    "{name}: the restarted daemon called {:?} on domain {domid}, which {} at the kill",
                    call.act,
                    if suspended(at_kill) { "a save cut short had suspended" } else { "ran" }
                ),
            ));
        }
    }
    out
}

/// Partial images (`<image>.partial`) left in `dirs` after the restart settled.
pub fn partial_images(dirs: &[PathBuf]) -> Vec<Violation> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".partial")) {
            out.push(violation(Invariant::PartialImage, format!("{} was left behind", e.path().display())));
        }
    }
    out.sort_by(|a, b| a.text.cmp(&b.text));
    out
}

/// Every status file: its key and what it says.
pub fn statuses(dir: &std::path::Path) -> Vec<(String, DomainStatus)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(String, DomainStatus)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let key = name.strip_suffix(".json").filter(|k| !k.starts_with('.'))?.to_string();
            let status = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            Some((key, status))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A status in the middle of a transition (the daemon is still at work).
pub fn transitional(status: &DomainStatus) -> bool {
    [SwState::BOOTING, SwState::HALTING, SwState::PAUSING].contains(&status.state)
}

/// Invariant 4 and panics: every status says what the hypervisor has; every domain of ours
/// that runs has a status.
pub fn untrue_statuses(oracle: &Oracle, statuses: &[(String, DomainStatus)], now: &[SimDomain]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (key, st) in statuses {
        let Ok(uuid) = key.parse::<Uuid>() else { continue };
        let name = oracle.name_of(uuid);
        let says = format!("{name}: its status says {} with DomainId {}", st.state, st.domain_id);
        if st.state == SwState::UNKNOWN && st.error.error.contains("internal error") {
            out.push(violation(Invariant::Panic, format!("{name}: {}", st.error.error)));
            continue;
        }
        let mine: Vec<&SimDomain> = now.iter().filter(|d| d.spec.uuid == uuid).collect();
        let by_id = now.iter().find(|d| d.domid.get() == st.domain_id && st.domain_id != 0);
        let problem = if st.domain_id == 0 {
            mine.first().map(|d| format!("but domain {} ({}) exists", d.domid, d.state))
        } else {
            match by_id {
                None => Some("but there is no such domain".to_string()),
                Some(d) if d.spec.uuid != uuid => Some(format!("but that domain is {}", oracle.name_of(d.spec.uuid))),
                Some(d) if st.state == SwState::RUNNING && !d.state.is_live() => Some(format!(
                    "but that domain is {}{}",
                    d.state,
                    if d.ever_unpaused { "" } else { ", never unpaused" }
                )),
                Some(_) => None,
            }
        };
        let problem = problem.or_else(|| {
            let gone = [SwState::HALTED, SwState::INSTALLED].contains(&st.state);
            (gone && !mine.is_empty()).then(|| format!("but domain {} ({}) exists", mine[0].domid, mine[0].state))
        });
        if let Some(p) = problem {
            out.push(violation(Invariant::UntrueStatus, format!("{says}, {p}")));
        } else if transitional(st) {
            out.push(violation(Invariant::UntrueStatus, format!("{says}, and stays so")));
        }
    }
    for asked in &oracle.domains {
        let key = asked.plan.uuid.to_string();
        if let Some(d) = now.iter().find(|d| d.spec.uuid == asked.plan.uuid && live(d))
            && !statuses.iter().any(|(k, _)| *k == key)
        {
            out.push(violation(
                Invariant::UntrueStatus,
                format!(
                    "{}: domain {} runs, but it has no status (the daemon does not manage it)",
                    asked.plan.name, d.domid
                ),
            ));
        }
    }
    out
}

/// The judgement on made-up outcomes: each invariant can fail, and what was asked excuses.
#[cfg(test)]
mod tests {
    use domainmgrd::domain::empty_status;
    use xenctl::{DomId, DomainSpec, ShutdownReason};

    use super::*;

    fn oracle() -> Oracle {
        let plan = DomainPlan { uuid: Uuid::from_u128(7), name: "eve0".into(), kind: Kind::Eve };
        let mut o = Oracle::new(&[plan]);
        o.domains[0].eve_activate = Some(true);
        o
    }

    fn dom(domid: u32, state: DomainState, ever_unpaused: bool) -> SimDomain {
        SimDomain {
            domid: DomId::new(domid),
            spec: DomainSpec::pv("eve0").uuid(Uuid::from_u128(7)).kernel("/k"),
            state,
            vif_offload_disabled: 0,
            cpu_time_ns: 0,
            ever_unpaused,
        }
    }

    fn judge(o: &Oracle, at_kill: &[SimDomain], now: &[SimDomain], calls: &[Call]) -> Vec<Invariant> {
        let after = After { at_kill, in_flight: &[], now, calls, saves: &[], committed: &[] };
        lost_or_stopped(o, &after).into_iter().map(|v| v.invariant).collect()
    }

    fn status(state: SwState, domain_id: u32, error: &str) -> (String, DomainStatus) {
        let mut st = empty_status(Uuid::from_u128(7));
        (st.state, st.domain_id) = (state, domain_id);
        st.error.error = error.into();
        (Uuid::from_u128(7).to_string(), st)
    }

    #[test]
    fn each_invariant_can_fail_and_what_was_asked_excuses_a_stop() {
        let o = oracle();
        let running = [dom(3, DomainState::Blocked, true)];
        let destroy = [Call { act: Act::Destroy, uuid: Some(Uuid::from_u128(7)), domid: Some(DomId::new(3)) }];
        let two = [running[0].clone(), dom(4, DomainState::Paused, false)];
        assert_eq!(duplicates(&o, &two).len(), 1);

        assert!(judge(&o, &running, &running, &[]).is_empty());
        assert_eq!(judge(&o, &running, &[], &destroy), [Invariant::Lost, Invariant::StoppedUnasked]);
        let replaced = [dom(5, DomainState::Blocked, true)];
        assert_eq!(judge(&o, &running, &replaced, &[]), [Invariant::Lost]);
        let mut deactivated = o.clone();
        deactivated.domains[0].eve_activate = Some(false);
        assert!(judge(&deactivated, &running, &[], &destroy).is_empty());

        // A create cut short: created again once is fine, not at all is lost.
        let half = [dom(3, DomainState::Paused, false)];
        let create = Call { act: Act::Create, uuid: Some(Uuid::from_u128(7)), domid: Some(DomId::new(5)) };
        assert!(judge(&o, &half, &replaced, &[destroy[0].clone(), create]).is_empty());
        assert_eq!(judge(&o, &half, &[], &destroy), [Invariant::Lost]);

        // A save cut short in its middle: resumed, never destroyed, even under host-stop.
        let suspended = [dom(3, DomainState::Shutdown(ShutdownReason::Suspend), true)];
        assert!(judge(&o, &suspended, &running, &[]).is_empty());
        let mut host_stopped = o.clone();
        host_stopped.domains[0].host_stopped = true;
        assert_eq!(judge(&host_stopped, &suspended, &[], &destroy), [Invariant::Lost, Invariant::StoppedUnasked]);

        let kinds = |statuses: &[(String, DomainStatus)], now: &[SimDomain]| -> Vec<Invariant> {
            untrue_statuses(&o, statuses, now).into_iter().map(|v| v.invariant).collect()
        };
        assert!(kinds(&[status(SwState::RUNNING, 3, "")], &running).is_empty());
        assert_eq!(kinds(&[status(SwState::RUNNING, 3, "")], &[]), [Invariant::UntrueStatus]);
        assert_eq!(kinds(&[status(SwState::RUNNING, 3, "")], &half), [Invariant::UntrueStatus]);
        assert_eq!(kinds(&[status(SwState::HALTED, 0, "")], &running), [Invariant::UntrueStatus]);
        assert_eq!(kinds(&[status(SwState::BOOTING, 0, "")], &[]), [Invariant::UntrueStatus]);
        assert_eq!(kinds(&[], &running), [Invariant::UntrueStatus], "a running domain of ours without a status");
        let panicked = status(SwState::UNKNOWN, 3, "internal error in domainmgrd: boom");
        assert_eq!(kinds(&[panicked], &running), [Invariant::Panic]);
    }
}
