//! One chaos run: a fresh daemon on a fresh simulator, the scenario's steps until the kill,
//! the restart on a recording hypervisor, the wait for it to settle, and the judgement.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use domainmgrd::control::{self, Request, Response};
use domainmgrd::sim::{Fault, Op, SimDomain};

use super::oracle::{self, After, Invariant, Oracle, Violation};
use super::recorder::Recorder;
use super::scenario::{DomainPlan, KillPlan, Kind, Scenario, Step};
use crate::common::{Env, REMOVAL_GRACE, config};

/// How long a request may take before the run goes on without its answer (it stays in flight).
const ANSWER_WAIT: Duration = Duration::from_secs(4);
/// How long the restarted daemon may take to settle before it is judged as it is.
const SETTLE: Duration = Duration::from_secs(10);

/// What one run found.
#[derive(Debug)]
pub struct Outcome {
    pub seed: u64,
    /// Where the daemon was killed: `<op>/<moment>`, `call not reached` (then after the last
    /// step), `delay`, `between steps` or `republish gap`.
    pub kill_point: String,
    pub violations: Vec<Violation>,
    /// The killed daemon made a hypervisor call after its successor started: a thread of it
    /// was still going (see the header of chaos.rs), so this run's findings may be its doing.
    pub zombie: bool,
    /// How many times the run was made again because the old daemon acted after the restart.
    pub retries: u32,
    /// What happened, for a replay (`CHAOS_SEED`).
    pub trace: Vec<String>,
}

struct Pending {
    step: Step,
    answer: Receiver<Result<Response, String>>,
    file: Option<PathBuf>,
    /// Its domain ran when it was sent.
    ran: bool,
}

struct Run<'a> {
    scenario: &'a Scenario,
    env: Env,
    oracle: Oracle,
    pending: Vec<Pending>,
    kill_at: Option<Instant>,
    killed: Option<String>,
    saves: u32,
    /// The index of the step being taken.
    current: usize,
    trace: Vec<String>,
}

pub fn run(scenario: &Scenario) -> Outcome {
    let mut run = Run {
        scenario,
        env: Env::new(),
        oracle: Oracle::new(&scenario.domains),
        pending: Vec::new(),
        kill_at: None,
        killed: None,
        saves: 0,
        current: 0,
        trace: Vec::new(),
    };
    run.set_save(scenario.save);
    for d in scenario.domains.iter().filter(|d| d.kind == Kind::Auto) {
        run.write_auto(d);
    }
    let options = run.env.options();
    let client = run.env.try_start_on(options, |c| Arc::new(c)).expect("the daemon starts");
    if let KillPlan::AfterDelay(delay) = scenario.kill {
        run.kill_at = Some(Instant::now() + delay);
    }
    for (i, &(step, pause)) in scenario.steps.iter().enumerate() {
        match scenario.kill {
            KillPlan::AtCall { step: at, op, nth, moment } if at == i => {
                run.env.sim.kill_client_at(client, op, nth, moment)
            }
            KillPlan::AtStep(at) if at == i && !matches!(step, Step::Republish { gap_ms: 1.., .. }) => {
                run.kill("between steps")
            }
            _ => {}
        }
        if run.killed.is_some() {
            break;
        }
        run.current = i;
        run.step(step);
        run.watch(Instant::now() + pause, None);
    }
    if let Some(at) = run.kill_at {
        run.watch(at, None);
    }
    if run.killed.is_none() {
        let label = match scenario.kill {
            KillPlan::AtCall { .. } => "call not reached",
            KillPlan::AfterDelay(_) => "delay",
            KillPlan::AtStep(_) => "between steps",
        };
        run.kill(label);
    }
    run.restart_and_judge()
}

impl Run<'_> {
    fn plan(&self, d: usize) -> &DomainPlan {
        &self.scenario.domains[d]
    }

    fn note(&mut self, text: String) {
        self.trace.push(text);
    }

    /// Takes one step; a request is sent from another thread and waited for (up to
    /// [`ANSWER_WAIT`]) while watching for the kill.
    fn step(&mut self, step: Step) {
        let request = match step {
            Step::WriteEve { d, activate } => {
                self.write_eve(d, activate);
                self.oracle.domains[d].eve_activate = Some(activate);
                None
            }
            Step::DeleteEve { d } => {
                if std::fs::remove_file(self.env.config_path(self.plan(d).uuid)).is_ok() {
                    self.oracle.domains[d].eve_activate = None;
                }
                None
            }
            Step::Republish { d, gap_ms } => {
                if let Some(activate) = self.oracle.domains[d].eve_activate {
                    if gap_ms > 0 {
                        let _ = std::fs::remove_file(self.env.config_path(self.plan(d).uuid));
                        self.oracle.domains[d].republishing = true;
                        if self.scenario.kill == KillPlan::AtStep(self.current) {
                            self.kill("republish gap");
                        }
                        self.watch(Instant::now() + Duration::from_millis(gap_ms), None);
                        if self.killed.is_some() {
                            return self.note(format!("{step:?}: killed in the gap"));
                        }
                    }
                    self.write_eve(d, activate);
                    self.oracle.domains[d].republishing = false;
                }
                None
            }
            Step::CorruptAuto { d } => {
                let path = self.env.auto_dir().join(format!("{}.cfg", self.plan(d).name));
                std::fs::write(path, "name = \"broken\nthis is not an xl.cfg file\n").unwrap();
                self.oracle.domains[d].unreadable = true;
                None
            }
            Step::FixAuto { d } => {
                self.write_auto(&self.plan(d).clone());
                self.oracle.domains[d].unreadable = false;
                None
            }
            Step::SetSave(save) => {
                self.set_save(save);
                None
            }
            Step::BootFault { d } => {
                self.env.sim.inject(self.plan(d).uuid, Fault { op: Op::Create, count: 1 });
                None
            }
            Step::HostStart => Some((Request::HostStart, None)),
            Step::HostStop => Some((Request::HostStop, None)),
            Step::Start { d } => Some((Request::Start { domain: self.key(d) }, None)),
            Step::Stop { d, force: false } => {
                Some((Request::Stop { domain: self.key(d), force: false, timeout_secs: None }, None))
            }
            Step::Stop { d, force: true } => Some((Request::Destroy { domain: self.key(d) }, None)),
            Step::Restart { d } => Some((Request::Restart { domain: self.key(d), timeout_secs: None }, None)),
            Step::Save { d } => {
                self.saves += 1;
                let file = self.env.dir.path().join("images").join(format!("{}.{}", self.plan(d).name, self.saves));
                Some((Request::Save { domain: self.key(d), file: Some(file.clone()) }, Some(file)))
            }
            Step::Restore { d } => match self.oracle.domains[d].image.clone() {
                Some(file) => Some((Request::Restore { file: file.clone() }, Some(file))),
                None => return self.note(format!("{step:?}: no image to restore")),
            },
            Step::Create { d } => Some((Request::Create { file: self.transient_file(d) }, None)),
        };
        let Some((request, file)) = request else {
            return self.note(format!("{step:?}"));
        };
        self.oracle.sent(step);
        let socket = self.env.paths().run_dir.join("domainmgrd.sock");
        let (tx, answer) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || drop(tx.send(control::call(&socket, &request).map_err(|e| e.to_string()))));
        let ran =
            step.domain().is_some_and(|d| self.env.sim.domains_of(self.plan(d).uuid).iter().any(|x| x.state.is_live()));
        self.pending.push(Pending { step, answer, file, ran });
        self.watch(Instant::now() + ANSWER_WAIT, Some(step));
    }

    fn key(&self, d: usize) -> String {
        self.plan(d).uuid.to_string()
    }

    fn write_eve(&self, d: usize, activate: bool) {
        let plan = self.plan(d);
        self.env.write_config(&config(plan.uuid, &plan.name, activate));
    }

    fn write_auto(&self, plan: &DomainPlan) {
        self.env.write_auto(&plan.name, &format!("uuid = \"{}\"", plan.uuid));
    }

    fn set_save(&self, save: bool) {
        let save = if save { format!("SAVE={}", self.env.save_dir().display()) } else { String::new() };
        self.env.write_host_config(&save);
    }

    /// A transient domain's file for `domainctl create`: xl.cfg or EVE JSON.
    fn transient_file(&self, d: usize) -> PathBuf {
        let plan = self.plan(d);
        let (file, text) = match plan.kind {
            Kind::TransientEve => (
                self.env.dir.path().join(format!("{}.json", plan.name)),
                serde_json::to_string_pretty(&config(plan.uuid, &plan.name, true)).unwrap(),
            ),
            _ => (
                self.env.dir.path().join(format!("{}.cfg", plan.name)),
                format!("name = '{}'\nuuid = '{}'\ntype = 'pv'\nkernel = '/k'\nmemory = 64\n", plan.name, plan.uuid),
            ),
        };
        std::fs::write(&file, text).unwrap();
        file
    }

    /// Lets the daemon work until `until` (or until the answer to `step` comes), taking
    /// answers as they come and killing the daemon when the kill is due: its armed call was
    /// reached (the simulator parked it) or its delay ran out.
    fn watch(&mut self, until: Instant, step: Option<Step>) {
        while self.killed.is_none() {
            let answered = self.take_answers();
            if self.env.sim.parked_calls() > 0 {
                self.kill(&self.scenario.kill.label());
            } else if self.kill_at.is_some_and(|at| Instant::now() >= at) {
                self.kill("delay");
            } else if step.is_some_and(|s| answered.contains(&s)) || Instant::now() >= until {
                return;
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn take_answers(&mut self) -> Vec<Step> {
        let mut answered = Vec::new();
        let mut still = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            match p.answer.try_recv() {
                Ok(answer) => {
                    let answer = answer.unwrap_or_else(Response::error);
                    self.note(format!("{:?}: {}", p.step, brief(&answer)));
                    self.oracle.answered(p.step, &answer, p.file);
                    answered.push(p.step);
                }
                Err(_) => still.push(p),
            }
        }
        self.pending = still;
        answered
    }

    /// Kills the daemon as SIGKILL would, then lets its threads run into their next hypervisor
    /// call (where they park for good) or end, before anything is looked at: a state some real
    /// crash could leave (the other threads stopped a little later than the one killed). Done
    /// when no more calls park for three looks in a row (at most a second).
    fn kill(&mut self, label: &str) {
        self.env.kill();
        let mut parked = self.env.sim.parked_calls();
        let mut still = 0;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.env.sim.parked_calls();
            still = if now == parked { still + 1 } else { 0 };
            if still == 3 {
                break;
            }
            parked = now;
        }
        self.killed = Some(label.to_string());
    }

    fn restart_and_judge(mut self) -> Outcome {
        let in_flight: Vec<Step> = self.pending.iter().map(|p| p.step).collect();
        let at_kill = self.env.sim.domains();
        self.note(format!("killed at {}; in flight: {in_flight:?}", self.killed.clone().unwrap_or_default()));
        self.note(format!("at the kill: {}", describe(&at_kill)));
        let mut violations = oracle::duplicates(&self.oracle, &at_kill);
        let parked = self.env.sim.parked_calls();

        let mut recorder = None;
        let options = self.env.options();
        let started = self.env.try_start_on(options, |client| {
            let r = Recorder::new(client);
            recorder = Some(r.clone());
            Arc::new(r)
        });
        let (Ok(_), Some(recorder)) = (started.as_ref(), recorder) else {
            let text = started.err().map_or_else(|| "no recorder".to_string(), |e| e.to_string());
            violations.push(Violation { invariant: Invariant::Restart, text });
            return self.outcome(violations, false);
        };
        // zedmanager puts a republished config back at once.
        for d in 0..self.oracle.domains.len() {
            if self.oracle.domains[d].republishing
                && let Some(activate) = self.oracle.domains[d].eve_activate
            {
                self.write_eve(d, activate);
                self.oracle.domains[d].republishing = false;
            }
        }
        let statuses = self.settle(&mut violations);
        let now = self.env.sim.domains();
        self.note(format!("after the restart: {}", describe(&now)));
        let calls = recorder.calls();
        self.note(format!("the restarted daemon's calls: {calls:?}"));
        let saves: Vec<(usize, PathBuf)> = self
            .pending
            .iter()
            .filter_map(|p| match (p.step, &p.file) {
                (Step::Save { d }, Some(file)) if p.ran => Some((d, file.clone())),
                _ => None,
            })
            .collect();
        let images = self.env.dir.path().join("images");
        let committed = oracle::committed_images(&[images.clone(), self.env.save_dir()]);
        let after = After {
            at_kill: &at_kill,
            in_flight: &in_flight,
            now: &now,
            calls: &calls,
            saves: &saves,
            committed: &committed,
        };
        violations.extend(oracle::lost_or_stopped(&self.oracle, &after));
        violations.extend(oracle::partial_images(&[images, self.env.save_dir()]));
        violations.extend(oracle::untrue_statuses(&self.oracle, &statuses, &now));
        for (key, st) in &statuses {
            self.note(format!("status {key}: {} {} {:?}", st.state, st.domain_id, st.error.error));
        }
        violations.dedup();
        let zombie = self.env.sim.parked_calls() > parked;
        self.outcome(violations, zombie)
    }

    /// Waits until the restarted daemon is done with what it found: no status in a transition,
    /// every status true, the removal grace over and a round trip through the supervisor made
    /// after that (a removal it had pending is acted on by then). Duplicates are looked for
    /// all along. The statuses as they are at the end.
    fn settle(&mut self, violations: &mut Vec<Violation>) -> Vec<(String, domainmgrd::eve::DomainStatus)> {
        let since = Instant::now();
        let mut synced = false;
        loop {
            let now = self.env.sim.domains();
            for v in oracle::duplicates(&self.oracle, &now) {
                if !violations.contains(&v) {
                    violations.push(v);
                }
            }
            let statuses = oracle::statuses(&self.env.paths().domain_status_dir());
            let quiet = since.elapsed() >= REMOVAL_GRACE
                && oracle::untrue_statuses(&self.oracle, &statuses, &now).is_empty()
                && !statuses.iter().any(|(_, s)| oracle::transitional(s));
            if quiet && synced {
                return statuses;
            }
            if since.elapsed() >= SETTLE {
                self.note("did not settle".into());
                return statuses;
            }
            if quiet {
                self.env.supervisor_round_trip();
                synced = true;
            } else {
                synced = false;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn outcome(self, violations: Vec<Violation>, zombie: bool) -> Outcome {
        Outcome {
            seed: self.scenario.seed,
            kill_point: self.killed.clone().unwrap_or_default(),
            violations,
            zombie,
            retries: 0,
            trace: self.trace,
        }
    }
}

fn brief(r: &Response) -> String {
    match &r.error {
        Some(e) => format!("error: {e}"),
        None => format!("ok: {}", r.data),
    }
}

fn describe(domains: &[SimDomain]) -> String {
    let all: Vec<String> = domains
        .iter()
        .map(|d| {
            format!("{} {} {}{}", d.domid, d.spec.name, d.state, if d.ever_unpaused { "" } else { " (never unpaused)" })
        })
        .collect();
    format!("[{}]", all.join(", "))
}
