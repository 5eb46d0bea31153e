//! The adapter worker: the one thread that moves devices (pciback binds and rebinds) and runs
//! modprobe, one job at a time, so policy passes, returns to dom0 and operator moves never
//! interleave. Each job plans under the adapters' lock (marking the devices it will move),
//! moves them with the lock released, and records the outcome under the lock again: a slow
//! sysfs bind never holds up a domain that reserves, releases or halts meanwhile.
//!
//! ```text
//!   Reconcile: [unload USB modules] -> policy pass -> [load USB modules]
//!   policy pass:   list pciback -> plan (lock) -> bind / rebind -> commit (lock) -> publish
//!   Rebind:        devices released by their domain that the policy wants in dom0 -> rebind
//!   Operator:      one unit to pciback or dom0, as asked -> reply
//! ```
//!
//! A unit goes to pciback whole or not at all: when one of its devices fails to bind, those
//! already bound are rebound to dom0 and every member reports the error.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};

use crossbeam_channel::Receiver;
use parking_lot::Mutex;
use xenctl::Bdf;

use super::eve::IoBundleError;
use super::policy::{self, Unit};
use super::{Adapters, Applied, Placement};
use crate::hypervisor::Hypervisor;

/// What an operator's move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorDone {
    /// The devices of the unit (all moved together).
    pub unit: Vec<Bdf>,
    /// Those that had to move (the rest were there already).
    pub moved: Vec<Bdf>,
    /// Where they are now: pciback (true) or dom0.
    pub assignable: bool,
}

/// Gets an operator's outcome, from the worker.
pub type OperatorReply = Box<dyn FnOnce(Result<OperatorDone, String>) + Send>;

/// The boot VGA adapters and the NVMe drives dom0 uses, as `policy::host_facts` finds them.
type HostFacts = (BTreeSet<Bdf>, std::collections::BTreeMap<Bdf, String>);

/// Work for the worker.
pub(super) enum Job {
    /// Inputs or `debug.enable.usb` changed: USB modules, then the policy.
    Reconcile,
    /// Domains released devices that the policy wants back in dom0.
    Rebind,
    /// An operator moves a device.
    Operator { bdf: Bdf, to: Placement, force: bool, reply: OperatorReply },
}

/// Devices that move together, to one place.
#[derive(Debug, Clone)]
struct Move {
    /// The devices to move.
    bdfs: Vec<Bdf>,
    /// Devices of the unit already in pciback, given back to dom0 too if the unit cannot go
    /// to pciback whole (a group never ends split).
    settled: Vec<Bdf>,
    to: Placement,
    /// The whole unit (for errors), and its name for messages.
    unit: BTreeSet<Bdf>,
    name: String,
}

/// Where each device of a move ended, and what went wrong.
#[derive(Debug)]
struct Outcome {
    in_pciback: Vec<(Bdf, bool)>,
    error: Option<String>,
}

/// Starts the worker. It ends when the adapters' state is dropped (the daemon stopped).
pub(super) fn spawn(shared: &Arc<Mutex<Adapters>>, rx: Receiver<Job>, hv: Arc<dyn Hypervisor>) -> std::io::Result<()> {
    let weak: Weak<Mutex<Adapters>> = Arc::downgrade(shared);
    std::thread::Builder::new().name("adapters".into()).spawn(move || {
        while let Ok(job) = rx.recv() {
            let Some(shared) = weak.upgrade() else { return };
            match job {
                Job::Reconcile => reconcile(&shared, hv.as_ref()),
                Job::Rebind => rebind(&shared, hv.as_ref()),
                Job::Operator { bdf, to, force, reply } => reply(operator(&shared, hv.as_ref(), bdf, to, force)),
            }
        }
    })?;
    Ok(())
}

/// USB modules as `debug.enable.usb` says (controllers back in dom0 before the modules load,
/// modules unloaded before the controllers leave), with a policy pass if an input changed.
pub(super) fn reconcile(shared: &Mutex<Adapters>, hv: &dyn Hypervisor) {
    let (usb, host) = {
        let a = shared.lock();
        ((a.usb_loaded != Some(a.enable_usb)).then_some(a.enable_usb), a.sources.host.clone())
    };
    if usb == Some(false) {
        if let Err(e) = host.usb_modules(false) {
            log::error!("{e}");
        }
        shared.lock().usb_loaded = Some(false);
    }
    policy_pass(shared, hv);
    if usb == Some(true) {
        if let Err(e) = host.usb_modules(true) {
            log::error!("{e}");
        }
        shared.lock().usb_loaded = Some(true);
    }
}

fn policy_pass(shared: &Mutex<Adapters>, hv: &dyn Hypervisor) {
    {
        let mut a = shared.lock();
        if !a.ready() {
            a.publish(); // AssignableAdapters, not initialized: nothing moved yet
            return;
        }
        if !a.stale {
            return;
        }
    }
    let listed = match hv.pci_assignable_list() {
        Ok(l) => Some(l),
        Err(e) => {
            log::error!("cannot list the assignable PCI devices ({e}); going by what was last seen");
            None
        }
    };
    // The host facts (sysfs, procfs, zpool) are read without the lock.
    let (list, host, enable_vga) = {
        let a = shared.lock();
        (a.list.clone(), a.sources.host.clone(), a.enable_vga)
    };
    let facts =
        list.map(|l| policy::host_facts(&l.adapter_list, enable_vga, |b| host.is_boot_vga(b), |b| host.nvme_in_use(b)));
    let moves = shared.lock().plan_policy(listed, facts.unwrap_or_default());
    let outcomes = execute(hv, &moves);
    shared.lock().commit(&moves, outcomes);
}

fn rebind(shared: &Mutex<Adapters>, hv: &dyn Hypervisor) {
    // Devices kept in dom0 that a domain had were seized by libxl at its create: pciback has
    // them now, whatever was last seen.
    let listed = match hv.pci_assignable_list() {
        Ok(l) => Some(l),
        Err(e) => {
            log::error!("cannot list the assignable PCI devices ({e}); going by what was last seen");
            None
        }
    };
    let moves = shared.lock().plan_rebind(listed);
    if moves.is_empty() {
        return;
    }
    let outcomes = execute(hv, &moves);
    shared.lock().commit(&moves, outcomes);
}

fn operator(
    shared: &Mutex<Adapters>,
    hv: &dyn Hypervisor,
    bdf: Bdf,
    to: Placement,
    force: bool,
) -> Result<OperatorDone, String> {
    let mv = shared.lock().plan_operator(bdf, to, force)?;
    let outcomes = execute(hv, std::slice::from_ref(&mv));
    let error = outcomes.first().and_then(|o| o.error.clone());
    let mut a = shared.lock();
    a.commit(std::slice::from_ref(&mv), outcomes);
    if let Some(e) = error {
        return Err(e);
    }
    a.record_override(&mv, force);
    log::info!("operator: {} ({}) now in {}", mv.name, list(&mv.unit), to.name());
    Ok(OperatorDone { unit: mv.unit.iter().copied().collect(), moved: mv.bdfs, assignable: to == Placement::Pciback })
}

fn list(bdfs: &BTreeSet<Bdf>) -> String {
    bdfs.iter().map(Bdf::to_string).collect::<Vec<_>>().join(", ")
}

/// Does the moves; the lock is not held.
fn execute(hv: &dyn Hypervisor, moves: &[Move]) -> Vec<Outcome> {
    moves
        .iter()
        .map(|mv| match mv.to {
            Placement::Pciback => {
                let mut bound: Vec<Bdf> = Vec::new();
                for &bdf in &mv.bdfs {
                    match hv.pci_assignable_add(bdf) {
                        Ok(()) => bound.push(bdf),
                        Err(e) => {
                            // The unit goes whole or not at all: give back what is bound.
                            let mut in_pciback: Vec<(Bdf, bool)> =
                                mv.bdfs.iter().chain(&mv.settled).map(|b| (*b, false)).collect();
                            for &b in bound.iter().chain(&mv.settled) {
                                if let Err(e) = hv.pci_assignable_remove(b, true) {
                                    log::error!("cannot give {b} back to dom0 after a failed group assign: {e}");
                                    in_pciback.retain(|(x, _)| *x != b);
                                    in_pciback.push((b, true));
                                }
                            }
                            let error = format!("cannot assign {bdf} to pciback: {e}; {} stays in dom0", mv.name);
                            log::error!("{error}");
                            return Outcome { in_pciback, error: Some(error) };
                        }
                    }
                }
                if !mv.bdfs.is_empty() {
                    log::info!("{} ({}) assigned to pciback", mv.name, list(&mv.bdfs.iter().copied().collect()));
                }
                Outcome { in_pciback: bound.into_iter().map(|b| (b, true)).collect(), error: None }
            }
            Placement::Dom0 => {
                let mut in_pciback = Vec::new();
                let mut errors = Vec::new();
                for &bdf in &mv.bdfs {
                    match hv.pci_assignable_remove(bdf, true) {
                        Ok(()) => in_pciback.push((bdf, false)),
                        Err(e) => {
                            errors.push(format!("cannot return {bdf} to dom0: {e}"));
                            in_pciback.push((bdf, true));
                        }
                    }
                }
                let error = (!errors.is_empty()).then(|| errors.join("; "));
                match &error {
                    Some(e) => log::error!("{}: {e}", mv.name),
                    None => log::info!("{} ({}) returned to dom0", mv.name, list(&mv.bdfs.iter().copied().collect())),
                }
                Outcome { in_pciback, error }
            }
        })
        .collect()
}

fn unit_name(applied: &Applied, unit: &Unit) -> String {
    let labels: Vec<&str> = unit
        .members
        .iter()
        .map(|&i| applied.list.adapter_list[i].phylabel.as_str())
        .filter(|l| !l.is_empty())
        .collect();
    if labels.is_empty() { list(&unit.bdfs) } else { labels.join("+") }
}

impl Adapters {
    /// A policy pass's plan: the verdict on the current inputs, published at once (so
    /// reservations follow it), and the moves that make the devices match it.
    fn plan_policy(&mut self, listed: Option<Vec<Bdf>>, host_facts: HostFacts) -> Vec<Move> {
        self.stale = false;
        if let Some(l) = listed {
            self.pciback = l.into_iter().collect();
        }
        let Some(list) = self.list.clone() else { return Vec::new() };
        let (boot_vga, nvme_in_use) = host_facts;
        let facts = policy::Facts {
            ports: self.ports(),
            enable_usb: self.enable_usb,
            enable_vga: self.enable_vga,
            boot_vga,
            nvme_in_use,
        };
        let verdict = policy::decide(&list.adapter_list, &facts);
        let previous: BTreeSet<Bdf> =
            self.verdict.iter().flat_map(|a| a.verdict.units.iter().flat_map(|u| u.bdfs.iter().copied())).collect();
        let bad_addresses = verdict
            .pcis
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.as_ref().err().map(|e| {
                    // Keep the first time of an error that persists, so republishing is quiet.
                    let old = self.verdict.as_ref().and_then(|a| a.bad_addresses.get(i).cloned().flatten());
                    old.filter(|o| o.text() == *e).unwrap_or_else(|| IoBundleError::now(e.clone()))
                })
            })
            .collect();
        let applied = Applied { list, verdict, bad_addresses };
        let current: BTreeSet<Bdf> = applied.verdict.units.iter().flat_map(|u| u.bdfs.iter().copied()).collect();
        self.overrides.retain(|b, _| current.contains(b));
        self.verdict = Some(applied.clone());
        self.resolve_claims();

        let mut notes = std::collections::BTreeMap::new();
        let mut moves = Vec::new();
        for unit in applied.verdict.units.iter().filter(|u| !u.bdfs.is_empty()) {
            let name = unit_name(&applied, unit);
            let decision = &unit.decision;
            let holder = unit.bdfs.iter().find_map(|b| self.held.get(b)).copied();
            match self.placement(&unit.bdfs, decision.keep_in_host) {
                Placement::Pciback => {
                    for b in &unit.bdfs {
                        self.pending_rebind.remove(b);
                    }
                    let (settled, missing): (Vec<Bdf>, Vec<Bdf>) =
                        unit.bdfs.iter().partition(|b| self.pciback.contains(b));
                    if !missing.is_empty() {
                        // What a domain holds stays with it, whatever happens to the rest.
                        let settled = settled.into_iter().filter(|b| !self.held.contains_key(b)).collect();
                        let unit = unit.bdfs.clone();
                        moves.push(Move { bdfs: missing, settled, to: Placement::Pciback, unit, name });
                    }
                }
                Placement::Dom0 => {
                    let back: Vec<Bdf> = unit.bdfs.iter().filter(|b| self.pciback.contains(b)).copied().collect();
                    if back.is_empty() {
                        continue;
                    }
                    match holder {
                        Some(uuid) => {
                            // A domain may have a device kept in dom0 (EVE's assignments take
                            // precedence); only a port it has is something to report.
                            let why = decision.reason.clone().unwrap_or_else(|| "it belongs in dom0".into());
                            let note = IoBundleError::now(format!(
                                "{why}, but domain {uuid} uses it; it returns to dom0 when that domain halts"
                            ));
                            for b in &back {
                                self.pending_rebind.insert(*b);
                                if decision.is_port || self.overrides.contains_key(b) {
                                    notes.insert(*b, note.clone());
                                }
                            }
                        }
                        None => {
                            let unit = unit.bdfs.clone();
                            moves.push(Move { bdfs: back, settled: Vec::new(), to: Placement::Dom0, unit, name })
                        }
                    }
                }
            }
        }
        // Devices that left the list go back to dom0, as in EVE (once their domain lets go).
        for bdf in previous.difference(&current).filter(|b| self.pciback.contains(b)) {
            if self.held.contains_key(bdf) {
                self.pending_rebind.insert(*bdf);
            } else {
                let unit = [*bdf].into_iter().collect();
                moves.push(Move {
                    bdfs: vec![*bdf],
                    settled: Vec::new(),
                    to: Placement::Dom0,
                    unit,
                    name: format!("{bdf} (no longer listed)"),
                });
            }
        }
        // Fresh notes: a failure that persists is reported again by the move that retries it.
        for (b, old) in &self.notes {
            if let Some(new) = notes.get_mut(b)
                && new.text() == old.text()
            {
                new.clone_from(old);
            }
        }
        self.notes = notes;
        for mv in &moves {
            for b in mv.bdfs.iter().chain(&mv.settled) {
                self.moving.insert(*b, mv.to);
            }
        }
        self.publish();
        moves
    }

    /// Devices released since the policy wanted them in dom0: back to dom0, nothing else.
    fn plan_rebind(&mut self, listed: Option<Vec<Bdf>>) -> Vec<Move> {
        if let Some(l) = listed {
            let moving = &self.moving;
            // What is being moved now is the mover's to record.
            let listed: BTreeSet<Bdf> = l.into_iter().filter(|b| !moving.contains_key(b)).collect();
            self.pciback.retain(|b| moving.contains_key(b) || listed.contains(b));
            self.pciback.extend(listed);
        }
        let due: Vec<Bdf> = self
            .pending_rebind
            .iter()
            .filter(|b| !self.held.contains_key(b) && !self.moving.contains_key(b))
            .copied()
            .collect();
        let mut moves = Vec::new();
        for bdf in due {
            self.pending_rebind.remove(&bdf);
            self.notes.remove(&bdf);
            if self.pciback.contains(&bdf) {
                self.moving.insert(bdf, Placement::Dom0);
                let name = self.name_of(bdf);
                let unit = [bdf].into_iter().collect();
                moves.push(Move { bdfs: vec![bdf], settled: Vec::new(), to: Placement::Dom0, unit, name });
            }
        }
        moves
    }

    /// An operator's move of the unit of `bdf`, checked against who holds it and the policy.
    fn plan_operator(&mut self, bdf: Bdf, to: Placement, force: bool) -> Result<Move, String> {
        let found = self.verdict.as_ref().and_then(|a| {
            let i = a.verdict.pcis.iter().position(|p| p.as_ref().ok().copied().flatten() == Some(bdf))?;
            let unit = &a.verdict.units[a.verdict.unit_of[i]];
            Some((unit.bdfs.clone(), unit.decision.clone(), unit_name(a, unit)))
        });
        let (unit, decision, name) = found.unwrap_or_else(|| {
            ([bdf].into_iter().collect(), policy::Decision::default(), format!("{bdf} (not in the adapter list)"))
        });
        if let Some((b, uuid)) = unit.iter().find_map(|b| self.held.get(b).map(|u| (b, u))) {
            return Err(format!("{b} ({name}) is used by domain {uuid}; it moves once that domain halts"));
        }
        if unit.iter().any(|b| self.moving.contains_key(b)) {
            return Err(format!("{name} is being moved; try again"));
        }
        if to == Placement::Pciback && decision.keep_in_host && !force {
            return Err(format!(
                "{bdf} ({name}) stays in dom0: {}; `domainctl pci assign --force {bdf}` assigns it anyway",
                decision.reason.as_deref().unwrap_or("the adapter policy keeps it there")
            ));
        }
        let (bdfs, settled): (Vec<Bdf>, Vec<Bdf>) =
            unit.iter().partition(|b| self.pciback.contains(b) == (to == Placement::Dom0));
        let settled = if to == Placement::Pciback { settled } else { Vec::new() };
        for b in bdfs.iter().chain(&settled) {
            self.moving.insert(*b, to);
        }
        if to == Placement::Pciback {
            for b in &unit {
                self.pending_rebind.remove(b);
            }
        }
        Ok(Move { bdfs, settled, to, unit, name })
    }

    /// After an operator's move: remember it where it goes against the policy.
    fn record_override(&mut self, mv: &Move, force: bool) {
        let keep = self.verdict.as_ref().and_then(|a| {
            a.verdict.units.iter().find(|u| u.bdfs.iter().any(|b| mv.unit.contains(b))).map(|u| u.decision.clone())
        });
        for b in &mv.unit {
            self.overrides.remove(b);
        }
        let Some(decision) = keep else {
            return self.publish(); // not a listed device: nothing to stand against
        };
        let against = (mv.to == Placement::Pciback) == decision.keep_in_host;
        if against {
            let why = decision.reason.unwrap_or_default();
            let note = IoBundleError::now(match mv.to {
                Placement::Pciback => format!(
                    "assigned to pciback by an operator{} though {why}",
                    if force { " (domainctl pci assign --force)" } else { "" }
                ),
                Placement::Dom0 => "returned to dom0 by an operator (domainctl pci release)".to_string(),
            });
            for b in &mv.unit {
                self.overrides.insert(*b, (mv.to, note.clone()));
            }
        }
        self.publish();
    }

    /// Records where the moved devices ended, and their errors; publishes.
    fn commit(&mut self, moves: &[Move], outcomes: Vec<Outcome>) {
        for (mv, out) in moves.iter().zip(outcomes) {
            for b in mv.bdfs.iter().chain(&mv.settled) {
                self.moving.remove(b);
            }
            for (b, in_pciback) in out.in_pciback {
                if in_pciback {
                    self.pciback.insert(b);
                } else {
                    self.pciback.remove(&b);
                }
            }
            match out.error {
                Some(e) => {
                    let note = IoBundleError::now(e);
                    for b in &mv.unit {
                        self.notes.insert(*b, note.clone());
                    }
                }
                None => {
                    for b in &mv.unit {
                        self.notes.remove(b);
                    }
                }
            }
        }
        self.publish();
    }

    fn name_of(&self, bdf: Bdf) -> String {
        self.verdict
            .as_ref()
            .and_then(|a| {
                let i = a.verdict.pcis.iter().position(|p| p.as_ref().ok().copied().flatten() == Some(bdf))?;
                Some(format!("{} ({bdf})", a.list.adapter_list[i].phylabel))
            })
            .unwrap_or_else(|| bdf.to_string())
    }
}
