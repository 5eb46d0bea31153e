//! What one chaos run does, drawn from its seed alone (so `CHAOS_SEED` replays it): the
//! domains, the steps an operator, EVE and the host take, the pauses between them, and where
//! the daemon is killed. The daemon's own timing is not drawn: a replayed run does the same
//! things, though the daemon may be at another point of its work when they happen.

use std::time::Duration;

use domainmgrd::sim::{KillMoment, Op};
use uuid::Uuid;

/// SplitMix64: a tiny, good-enough generator whose whole state is the seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True `percent` times in a hundred.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.range(0, 99) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() as u64 - 1) as usize]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.range(0, i as u64) as usize);
        }
    }
}

/// Where a domain's config comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An EVE DomainConfig in the config directory.
    Eve,
    /// An xl.cfg file in the autostart directory, started by host-start.
    Auto,
    /// `domainctl create` of an xl.cfg file.
    TransientXl,
    /// `domainctl create` of an EVE DomainConfig file.
    TransientEve,
}

#[derive(Debug, Clone)]
pub struct DomainPlan {
    pub uuid: Uuid,
    pub name: String,
    pub kind: Kind,
}

impl DomainPlan {
    pub fn transient(&self) -> bool {
        matches!(self.kind, Kind::TransientXl | Kind::TransientEve)
    }
}

/// One thing done to the daemon; `d` is an index into the scenario's domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Writes an EVE config (a temporary file renamed into place, as EVE's pubsub does).
    WriteEve {
        d: usize,
        activate: bool,
    },
    /// Removes an EVE config.
    DeleteEve {
        d: usize,
    },
    /// Writes an EVE config's bytes again: renamed over the file (`gap_ms` 0), or renamed into
    /// place `gap_ms` after the file was removed, as zedmanager republishing does.
    Republish {
        d: usize,
        gap_ms: u64,
    },
    /// Makes an autostart file unreadable.
    CorruptAuto {
        d: usize,
    },
    /// Writes an autostart file as it should be.
    FixAuto {
        d: usize,
    },
    /// Rewrites the host settings, with `SAVE` or without.
    SetSave(bool),
    HostStart,
    HostStop,
    /// `domainctl start`.
    Start {
        d: usize,
    },
    /// `domainctl stop` (`force`: `domainctl destroy`).
    Stop {
        d: usize,
        force: bool,
    },
    /// `domainctl restart`.
    Restart {
        d: usize,
    },
    /// `domainctl save` to a file of its own.
    Save {
        d: usize,
    },
    /// `domainctl restore` of the domain's latest image.
    Restore {
        d: usize,
    },
    /// `domainctl create` of a transient domain's file.
    Create {
        d: usize,
    },
    /// The domain's next create fails (its boot is retried after `timer.boot.retry`).
    BootFault {
        d: usize,
    },
}

impl Step {
    /// The domain it concerns; `None`: every domain.
    pub fn domain(self) -> Option<usize> {
        match self {
            Step::WriteEve { d, .. }
            | Step::DeleteEve { d }
            | Step::Republish { d, .. }
            | Step::CorruptAuto { d }
            | Step::FixAuto { d }
            | Step::Start { d }
            | Step::Stop { d, .. }
            | Step::Restart { d }
            | Step::Save { d }
            | Step::Restore { d }
            | Step::Create { d }
            | Step::BootFault { d } => Some(d),
            Step::SetSave(_) | Step::HostStart | Step::HostStop => None,
        }
    }
}

/// When the daemon is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillPlan {
    /// At its `nth` call of `op` counted from the start of step `step` (see
    /// `SimHypervisor::kill_client_at`); after the last step if it makes fewer.
    AtCall { step: usize, op: Op, nth: u64, moment: KillMoment },
    /// This long after it started; after the last step if they take less.
    AfterDelay(Duration),
    /// As step `n` begins (after the last one if there are fewer); in a republish's gap, while
    /// the file is away, when step `n` is one.
    AtStep(usize),
}

impl KillPlan {
    /// The kill point's name in the report.
    pub fn label(self) -> String {
        match self {
            KillPlan::AtCall { op, moment, .. } => format!("{op:?}/{moment:?}").to_lowercase(),
            KillPlan::AfterDelay(_) => "delay".into(),
            KillPlan::AtStep(_) => "between steps".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub domains: Vec<DomainPlan>,
    /// Whether the host settings have `SAVE` at first.
    pub save: bool,
    /// Each step with the pause after it.
    pub steps: Vec<(Step, Duration)>,
    pub kill: KillPlan,
}

/// The calls a step makes, at once or soon after (a config written boots or halts its domain):
/// what a kill point armed at the step picks from.
fn calls_of(step: Step, save: bool) -> &'static [Op] {
    const BOOT: &[Op] = &[Op::Create, Op::Create, Op::VifOffload, Op::Unpause];
    const HALT: &[Op] = &[Op::Shutdown, Op::Destroy];
    match step {
        Step::WriteEve { activate: true, .. } | Step::Start { .. } | Step::Create { .. } => BOOT,
        Step::HostStart if save => &[Op::Restore, Op::Create, Op::VifOffload, Op::Unpause],
        Step::HostStart => BOOT,
        Step::WriteEve { activate: false, .. } | Step::DeleteEve { .. } | Step::Stop { force: false, .. } => HALT,
        Step::Stop { force: true, .. } => &[Op::Destroy],
        Step::Restart { .. } => &[Op::Shutdown, Op::Destroy, Op::Create, Op::Unpause],
        Step::Save { .. } => &[Op::Save],
        Step::Restore { .. } => &[Op::Restore, Op::Restore, Op::VifOffload, Op::Unpause],
        Step::HostStop if save => &[Op::Save, Op::Save, Op::Shutdown, Op::Destroy],
        Step::HostStop => HALT,
        Step::Republish { .. }
        | Step::CorruptAuto { .. }
        | Step::FixAuto { .. }
        | Step::SetSave(_)
        | Step::BootFault { .. } => &[],
    }
}

impl Scenario {
    pub fn generate(seed: u64) -> Scenario {
        let mut rng = Rng::new(seed);
        let mut domains: Vec<DomainPlan> = Vec::new();
        for (kind, prefix, most) in [
            (Kind::Eve, "eve", 2),
            (Kind::Auto, "auto", 2),
            (Kind::TransientXl, "tx", 1),
            (Kind::TransientEve, "tj", 1),
        ] {
            for i in 0..rng.range(1, most) {
                // Distinct modulo 1000: the test configs take their AppNum and vif name from it.
                let uuid = loop {
                    let u = Uuid::from_u64_pair(rng.next_u64(), rng.next_u64());
                    if domains.iter().all(|d| d.uuid.as_u128() % 1000 != u.as_u128() % 1000) {
                        break u;
                    }
                };
                domains.push(DomainPlan { uuid, name: format!("{prefix}{i}"), kind });
            }
        }
        let save = rng.percent(50);

        // Bring them up, in a random order; then a random walk.
        let mut first: Vec<Step> = Vec::new();
        for (d, plan) in domains.iter().enumerate() {
            match plan.kind {
                Kind::Eve => first.push(Step::WriteEve { d, activate: rng.percent(85) }),
                Kind::Auto => {}
                Kind::TransientXl | Kind::TransientEve => first.push(Step::Create { d }),
            }
        }
        first.push(Step::HostStart);
        rng.shuffle(&mut first);
        let mut steps = first;
        // Host-start undoes a host stop only at its end: no Create before it either.
        let mut host_stopped = false;
        for _ in 0..rng.range(3, 9) {
            let step = random_step(&mut rng, &domains, host_stopped);
            match step {
                Step::HostStop => host_stopped = true,
                Step::HostStart => host_stopped = false,
                _ => {}
            }
            steps.push(step);
        }
        // Where SAVE stands as each step is taken (host-stop saves only with it).
        let mut saving = save;
        let mut armable = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            if let Step::SetSave(s) = step {
                saving = *s;
            }
            if !calls_of(*step, saving).is_empty() {
                armable.push((i, calls_of(*step, saving)));
            }
        }
        let gaps: Vec<usize> =
            (0..steps.len()).filter(|i| matches!(steps[*i], Step::Republish { gap_ms: 1.., .. })).collect();
        let kill = match rng.range(0, 99) {
            0..60 if !armable.is_empty() => {
                // Half the time at a save when there is one: a save cut short has the most
                // ways to go wrong.
                let saves: Vec<(usize, &[Op])> =
                    armable.iter().copied().filter(|(_, o)| o.contains(&Op::Save)).collect();
                let (step, ops) =
                    if !saves.is_empty() && rng.percent(50) { rng.pick(&saves) } else { rng.pick(&armable) };
                let op = rng.pick(ops);
                let moment = match op {
                    Op::Save => {
                        rng.pick(&[KillMoment::Entry, KillMoment::Middle, KillMoment::Middle, KillMoment::Return])
                    }
                    _ => rng.pick(&[KillMoment::Entry, KillMoment::Return]),
                };
                KillPlan::AtCall { step, op, nth: rng.range(1, 2), moment }
            }
            60..70 if !gaps.is_empty() => KillPlan::AtStep(rng.pick(&gaps)),
            0..90 => KillPlan::AfterDelay(Duration::from_millis(rng.range(0, 250))),
            _ => KillPlan::AtStep(rng.range(0, steps.len() as u64) as usize),
        };
        let steps = steps.into_iter().map(|s| (s, Duration::from_millis(rng.range(0, 15)))).collect();
        Scenario { seed, domains, save, steps, kill }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {}: SAVE {}, kill {:?}", self.seed, if self.save { "set" } else { "unset" }, self.kill)?;
        for (d, plan) in self.domains.iter().enumerate() {
            writeln!(f, "  domain {d}: {} {:?} {}", plan.name, plan.kind, plan.uuid)?;
        }
        for (i, (step, pause)) in self.steps.iter().enumerate() {
            writeln!(f, "  step {i}: {step:?}, then {pause:?}")?;
        }
        Ok(())
    }
}

/// A step for a random domain (or the host). Requests that wait for a boot are not made while
/// a host stop is in effect: no domain boots then, and they would wait for host-start.
fn random_step(rng: &mut Rng, domains: &[DomainPlan], host_stopped: bool) -> Step {
    if rng.percent(15) {
        return rng.pick(&[Step::HostStart, Step::HostStop, Step::SetSave(true), Step::SetSave(false)]);
    }
    let d = rng.range(0, domains.len() as u64 - 1) as usize;
    // Saves weigh more: a save cut short has the most ways to go wrong.
    let mut choices = vec![
        Step::Stop { d, force: rng.percent(30) },
        Step::Save { d },
        Step::Save { d },
        Step::Restore { d },
        Step::Restore { d },
    ];
    if !host_stopped {
        choices.extend([Step::Start { d }, Step::Restart { d }, Step::BootFault { d }]);
    }
    match domains[d].kind {
        Kind::Eve => choices.extend([
            Step::WriteEve { d, activate: true },
            Step::WriteEve { d, activate: false },
            Step::DeleteEve { d },
            Step::Republish { d, gap_ms: 0 },
            Step::Republish { d, gap_ms: rng.range(1, 20) },
            Step::Republish { d, gap_ms: rng.range(1, 20) },
        ]),
        Kind::Auto => choices.extend([Step::CorruptAuto { d }, Step::CorruptAuto { d }, Step::FixAuto { d }]),
        Kind::TransientXl | Kind::TransientEve if !host_stopped => choices.push(Step::Create { d }),
        Kind::TransientXl | Kind::TransientEve => {}
    }
    rng.pick(&choices)
}
