//! What a simulated call passes through before and after its effect, as tests arranged it: a
//! killed client parks it for good (a kill point, [`SimHypervisor::kill_client_at`], kills
//! the client at its entry or return), a delay or a closed per-op gate
//! ([`SimHypervisor::hold`]) holds it in its middle, a per-guest [`Gate`] holds it just before
//! it returns, an injected [`Fault`](super::Fault) fails it, and an injected panic panics in
//! the caller's thread.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use xenctl::{DomId, Subject};

use super::{Op, Shared, SimHypervisor, State, failed, not_found};
use crate::hypervisor::HvResult;

/// Where in the chosen call [`SimHypervisor::kill_client_at`] kills its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KillMoment {
    /// Before the call does anything.
    Entry,
    /// In its middle: a save has suspended the guest (shut down with reason suspend, as its
    /// watches hear) and written part of its image beside the target (`<path>.partial`, as
    /// xenctl does), the state a crash inside `libxl_domain_suspend` leaves. A call without
    /// such a middle dies at its return.
    Middle,
    /// After its effect (or its failure), before it returns.
    Return,
}

/// A client's armed kill: at its `left`-th next call of `op`.
#[derive(Debug)]
pub(super) struct KillPoint {
    pub(super) op: Op,
    pub(super) left: u64,
    pub(super) moment: KillMoment,
}

impl SimHypervisor {
    /// Blocks forever if this client was killed; sleeps for the op's delay; counts the call.
    pub(super) fn enter(&self, op: Op) {
        {
            let mut st = self.shared.state.lock();
            self.park_if_killed(&mut st);
            *st.calls.entry(op).or_default() += 1;
            self.count_toward_kill(&mut st, op);
        }
        self.delay(op);
    }

    /// Counts a call of `op` toward this client's kill point. At the chosen call the client
    /// dies now ([`KillMoment::Entry`]), or its thread is marked to die when the call next
    /// passes [`park_if_killed`](Self::park_if_killed), just before it returns
    /// ([`KillMoment::Return`]).
    pub(super) fn count_toward_kill(&self, st: &mut parking_lot::MutexGuard<'_, State>, op: Op) {
        let Some(point) = st.kill_points.get_mut(&self.client).filter(|p| p.op == op) else { return };
        point.left -= 1;
        if point.left > 0 {
            return;
        }
        let moment = point.moment;
        st.kill_points.remove(&self.client);
        match moment {
            KillMoment::Entry => {
                st.killed.insert(self.client);
                self.park_if_killed(st);
            }
            KillMoment::Middle | KillMoment::Return => {
                st.doomed.insert((std::thread::current().id(), moment));
            }
        }
    }

    /// Whether this thread's call is the one a kill point chose to die in its middle: if so,
    /// the client is killed (the caller does the middle's work, then parks).
    pub(super) fn dies_midway(&self, st: &mut parking_lot::MutexGuard<'_, State>) -> bool {
        let mid = st.doomed.remove(&(std::thread::current().id(), KillMoment::Middle));
        if mid {
            st.killed.insert(self.client);
        }
        mid
    }

    /// Sleeps for the op's delay, if it has one, counting the calls that sleep at once; then
    /// blocks forever if this client was killed meanwhile.
    pub(super) fn delay(&self, op: Op) {
        self.pass_op_gate(op);
        // A call held at the gate when its client was killed never goes on.
        let mut st = self.shared.state.lock();
        if st.killed.contains(&self.client) {
            self.park_if_killed(&mut st);
        }
        drop(st);
        let delay = {
            let mut st = self.shared.state.lock();
            let delay = st.delays.get(&op).copied();
            if delay.is_some() {
                let now = {
                    let n = st.in_flight.entry(op).or_default();
                    *n += 1;
                    *n
                };
                let peak = st.peak.entry(op).or_default();
                *peak = (*peak).max(now);
            }
            delay
        };
        if let Some(delay) = delay {
            std::thread::sleep(delay);
            let mut st = self.shared.state.lock();
            *st.in_flight.entry(op).or_default() -= 1;
            self.park_if_killed(&mut st);
        }
    }

    /// Holds the call while `op`'s gate is closed and has no pass for it, counting it in flight.
    fn pass_op_gate(&self, op: Op) {
        self.wait_op_gate(op, &|| false);
    }

    /// [`pass_op_gate`](Self::pass_op_gate), giving up when `give_up` says so (it is asked
    /// whenever the gates change, and on [`Shared::gates`]' notifications).
    pub(super) fn wait_op_gate(&self, op: Op, give_up: &dyn Fn() -> bool) {
        let mut st = self.shared.state.lock();
        if !st.op_gates.get(&op).is_some_and(|g| g.closed) {
            return;
        }
        let now = {
            let n = st.in_flight.entry(op).or_default();
            *n += 1;
            *n
        };
        let peak = st.peak.entry(op).or_default();
        *peak = (*peak).max(now);
        st.op_gates.entry(op).or_default().held += 1;
        self.shared.gates.notify_all();
        while st.op_gates.get(&op).is_some_and(|g| g.closed && g.passes == 0) && !give_up() {
            self.shared.gates.wait(&mut st);
        }
        if let Some(gate) = st.op_gates.get_mut(&op) {
            gate.held -= 1;
            gate.passes = gate.passes.saturating_sub(1);
        }
        self.shared.gates.notify_all();
        *st.in_flight.entry(op).or_default() -= 1;
    }

    /// Blocks forever if this client was killed, or if this thread's call is the one a kill
    /// point chose to die at its return (or in a middle the call does not have).
    pub(super) fn park_if_killed(&self, st: &mut parking_lot::MutexGuard<'_, State>) {
        let thread = std::thread::current().id();
        if st.doomed.remove(&(thread, KillMoment::Return)) || st.doomed.remove(&(thread, KillMoment::Middle)) {
            st.killed.insert(self.client);
        }
        if !st.killed.contains(&self.client) {
            return;
        }
        log::debug!(
            "sim: a call of killed client {} parks for good in {:?}",
            self.client,
            std::thread::current().name()
        );
        st.parked += 1;
        while st.killed.contains(&self.client) {
            self.shared.parked.wait(st);
        }
    }

    /// Waits at the gate on `op` for `uuid`, if one is closed; then parks if killed meanwhile.
    pub(super) fn pass_gate(&self, st: &mut parking_lot::MutexGuard<'_, State>, uuid: Uuid, op: Op) {
        self.wait_gate(st, uuid, op, &|| false);
        self.park_if_killed(st);
    }

    /// Waits at the gate on `op` for `uuid`, if one is closed, until it opens or `give_up`
    /// says so.
    pub(super) fn wait_gate(
        &self,
        st: &mut parking_lot::MutexGuard<'_, State>,
        uuid: Uuid,
        op: Op,
        give_up: &dyn Fn() -> bool,
    ) {
        let key = (uuid, op);
        if st.gates.get(&key).is_some_and(|g| !g.open) {
            if let Some(g) = st.gates.get_mut(&key) {
                g.held += 1;
            }
            self.shared.gates.notify_all();
            while st.gates.get(&key).is_some_and(|g| !g.open) && !give_up() {
                self.shared.gates.wait(st);
            }
            if let Some(g) = st.gates.get_mut(&key) {
                g.held -= 1;
            }
            self.shared.gates.notify_all();
        }
    }

    /// [`target`], except that a call an injected fault fails waits at its gate too.
    pub(super) fn target_gated(
        &self,
        st: &mut parking_lot::MutexGuard<'_, State>,
        domid: DomId,
        op: Op,
        name: &'static str,
    ) -> HvResult<Uuid> {
        let uuid = st.domains.get(&domid.get()).map(|d| d.spec.uuid);
        let result = target(st, domid, op, name);
        if let (Err(_), Some(uuid)) = (&result, uuid) {
            self.pass_gate(st, uuid, op);
        }
        result
    }

    /// Panics if a panic was injected for this call.
    pub(super) fn maybe_panic(st: &mut State, uuid: Uuid, op: Op) {
        if st.panics.remove(&(uuid, op)) {
            panic!("injected panic in {op:?} of {uuid}");
        }
    }

    pub(super) fn take_fault(st: &mut State, uuid: Uuid, op: Op) -> bool {
        match st.faults.get_mut(&(uuid, op)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

/// The UUID of an existing domain that `op` is called on, after any injected fault.
pub(super) fn target(st: &mut State, domid: DomId, op: Op, name: &'static str) -> HvResult<Uuid> {
    let uuid = st.domains.get(&domid.get()).map(|d| d.spec.uuid).ok_or_else(|| not_found(name, domid))?;
    SimHypervisor::maybe_panic(st, uuid, op);
    if SimHypervisor::take_fault(st, uuid, op) {
        return Err(failed(name, Subject::Domain(domid)));
    }
    Ok(uuid)
}

/// A closed gate on one guest's calls of one kind (see [`SimHypervisor::gate`]); opens when
/// dropped.
pub struct Gate {
    pub(super) shared: Arc<Shared>,
    pub(super) key: (Uuid, Op),
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("uuid", &self.key.0).field("op", &self.key.1).finish()
    }
}

impl Gate {
    /// How many calls wait at the gate now.
    pub fn held(&self) -> usize {
        self.shared.state.lock().gates.get(&self.key).map_or(0, |g| g.held)
    }

    /// Waits until at least `n` calls wait at the gate; false if that did not happen within
    /// `timeout`.
    pub fn wait_held(&self, n: usize, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut st = self.shared.state.lock();
        while st.gates.get(&self.key).map_or(0, |g| g.held) < n {
            if self.shared.gates.wait_until(&mut st, deadline).timed_out() {
                return st.gates.get(&self.key).map_or(0, |g| g.held) >= n;
            }
        }
        true
    }

    /// Lets the held calls and all later ones through.
    pub fn open(&self) {
        if let Some(g) = self.shared.state.lock().gates.get_mut(&self.key) {
            g.open = true;
        }
        self.shared.gates.notify_all();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.shared.state.lock().gates.remove(&self.key);
        self.shared.gates.notify_all();
    }
}
