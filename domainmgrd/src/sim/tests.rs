//! The simulator's own tests: that it keeps libxl's semantics, and that what tests inject
//! (faults, gates, killed clients, lost events, panics) does what it says.

use std::time::Duration;

use xenctl::{DomId, DomainEvent, DomainSpec, DomainState, Error, ShutdownReason};

use super::*;
use crate::hypervisor::Hypervisor;

fn spec(name: &str) -> DomainSpec {
    DomainSpec::pv(name).kernel("/k")
}

#[test]
fn domids_grow_and_domains_start_paused() {
    let sim = SimHypervisor::new();
    let a = sim.create_paused(&spec("a")).unwrap();
    sim.destroy(a).unwrap();
    let b = sim.create_paused(&spec("a")).unwrap();
    assert!(b > a, "domids only grow");
    assert_eq!(sim.info(b).unwrap().unwrap().state, DomainState::Paused);
    sim.unpause(b).unwrap();
    assert!(sim.info(b).unwrap().unwrap().state.is_live());
    assert!(sim.create_paused(&spec("a")).is_err(), "names are unique");
}

#[test]
fn shutdown_is_a_request_and_events_follow() {
    let sim = SimHypervisor::new();
    let s = spec("g");
    let d = sim.create_paused(&s).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let _w = sim.watch(d, tx).unwrap();
    sim.shutdown(d).unwrap();
    assert_eq!(rx.try_recv(), Ok(DomainEvent::Shutdown { domid: d, reason: ShutdownReason::Poweroff }));
    assert!(sim.info(d).unwrap().is_some(), "a shut-down domain stays until destroyed");
    sim.destroy(d).unwrap();
    assert_eq!(rx.try_recv(), Ok(DomainEvent::Death { domid: d }));

    let s2 = spec("stubborn");
    sim.set_behaviour(s2.uuid, Behaviour { honours_shutdown: false, ..Behaviour::default() });
    let d2 = sim.create_paused(&s2).unwrap();
    sim.shutdown(d2).unwrap();
    assert!(sim.info(d2).unwrap().unwrap().state == DomainState::Paused);

    let s3 = spec("nopv");
    sim.set_behaviour(s3.uuid, Behaviour { pv_drivers: false, ..Behaviour::default() });
    let d3 = sim.create_paused(&s3).unwrap();
    assert!(matches!(sim.shutdown(d3), Err(Error::NoPvDrivers { .. })));
}

#[test]
fn watches_report_past_shutdowns_and_missing_domains() {
    let sim = SimHypervisor::new();
    let d = sim.create_paused(&spec("g")).unwrap();
    sim.guest_crash(d);
    let (tx, rx) = crossbeam_channel::unbounded();
    let _w = sim.watch(d, tx.clone()).unwrap();
    assert_eq!(rx.try_recv(), Ok(DomainEvent::Shutdown { domid: d, reason: ShutdownReason::Crash }));
    let _w2 = sim.watch(DomId::new(999), tx).unwrap();
    assert_eq!(rx.try_recv(), Ok(DomainEvent::Death { domid: DomId::new(999) }));
}

#[test]
fn faults_fail_the_named_calls_only() {
    let sim = SimHypervisor::new();
    let s = spec("f");
    sim.inject(s.uuid, Fault { op: Op::Create, count: 1 });
    assert!(sim.create_paused(&s).is_err());
    assert!(sim.create_paused(&s).is_ok());
    assert_eq!(sim.calls(Op::Create), 2);
}

#[test]
fn a_gate_holds_calls_until_released() {
    let sim = SimHypervisor::new();
    sim.hold(Op::Create);
    let calls: Vec<_> = ["g1", "g2", "g3"]
        .into_iter()
        .map(|n| {
            let sim = sim.clone();
            std::thread::spawn(move || sim.create_paused(&spec(n)))
        })
        .collect();
    assert!(sim.wait_held(Op::Create, 3, Duration::from_secs(10)), "held: {}", sim.held(Op::Create));
    assert_eq!(sim.domains().len(), 3, "a held create has made its paused domain");
    sim.release(Op::Create, 1);
    assert!(sim.wait_held(Op::Create, 2, Duration::from_secs(10)), "held: {}", sim.held(Op::Create));
    sim.open(Op::Create);
    for c in calls {
        assert!(c.join().unwrap().is_ok());
    }
    assert_eq!((sim.held(Op::Create), sim.peak(Op::Create)), (0, 3));
    assert!(sim.create_paused(&spec("g4")).is_ok(), "an open gate holds nothing");
}

#[test]
fn a_killed_client_never_returns_but_its_work_stays_done() {
    let sim = SimHypervisor::new();
    let client = sim.client();
    let s = spec("half");
    let gate = sim.gate(s.uuid, Op::Create);
    let (tx, rx) = crossbeam_channel::unbounded();
    let c = client.clone();
    let s2 = s.clone();
    std::thread::spawn(move || {
        let _ = tx.send(c.create_paused(&s2));
    });
    // The create is in flight: the domain exists, the call has not returned. Kill the
    // client, then let the call go on: it parks for good instead of returning.
    assert!(gate.wait_held(1, Duration::from_secs(20)));
    sim.kill_client(client.client_id());
    gate.open();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sim.parked_calls() == 0 {
        assert!(std::time::Instant::now() < deadline, "the killed call never parked");
        std::thread::yield_now();
    }
    assert!(rx.try_recv().is_err(), "the killed call must not return");
    let left = sim.domains_of(s.uuid);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].state, DomainState::Paused);
    assert!(!left[0].ever_unpaused);
}

#[test]
fn a_gate_holds_calls_after_their_effect_until_opened() {
    let sim = SimHypervisor::new();
    let s = spec("gated");
    let d = sim.create_paused(&s).unwrap();
    let gate = sim.gate(s.uuid, Op::Destroy);
    let (tx, rx) = crossbeam_channel::unbounded();
    let _w = sim.watch(d, tx).unwrap();
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    let s2 = sim.clone();
    std::thread::spawn(move || {
        let _ = done_tx.send(s2.destroy(d));
    });
    assert!(gate.wait_held(1, Duration::from_secs(20)));
    assert_eq!(gate.held(), 1);
    // Its work is done (the domain is gone and its death reported), the caller waits.
    assert!(sim.info_of(d.get()).is_none());
    assert_eq!(rx.try_recv(), Ok(DomainEvent::Death { domid: d }));
    assert!(done_rx.try_recv().is_err());
    gate.open();
    assert!(done_rx.recv_timeout(Duration::from_secs(20)).unwrap().is_ok());
    assert_eq!(gate.held(), 0);
}

#[test]
fn a_domain_stuck_dying_stays_until_a_later_destroy() {
    let sim = SimHypervisor::new();
    let s = spec("zombie");
    sim.set_behaviour(s.uuid, Behaviour { stuck_dying: true, ..Behaviour::default() });
    let d = sim.create_paused(&s).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let _w = sim.watch(d, tx).unwrap();
    sim.destroy(d).unwrap();
    assert_eq!(sim.info(d).unwrap().map(|i| i.state), Some(DomainState::Dying));
    assert!(rx.try_recv().is_err(), "no death event");
    sim.set_behaviour(s.uuid, Behaviour::default());
    sim.destroy(d).unwrap();
    assert_eq!(sim.info(d).unwrap(), None);
    assert_eq!(rx.try_recv(), Ok(DomainEvent::Death { domid: d }));
}

#[test]
fn lost_events_are_not_delivered_and_injected_panics_panic_once() {
    let sim = SimHypervisor::new();
    let s = spec("quiet");
    let d = sim.create_paused(&s).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let _w = sim.watch(d, tx).unwrap();
    sim.lose_events(d);
    sim.guest_poweroff(d);
    assert_eq!(sim.info(d).unwrap().map(|i| i.state), Some(DomainState::Shutdown(ShutdownReason::Poweroff)));
    assert!(rx.try_recv().is_err());

    sim.inject_panic(s.uuid, Op::Sysrq);
    let s2 = sim.clone();
    assert!(std::thread::spawn(move || s2.sysrq(d, 's')).join().is_err(), "the call panics");
    assert!(sim.sysrq(d, 's').is_ok(), "once");
}

/// Runs `call` in a thread of its own and waits until the simulator has parked `parked` calls
/// of killed clients in all; then checks that `call` did not return.
fn parks<T: Send + 'static>(sim: &SimHypervisor, parked: usize, call: impl FnOnce() -> T + Send + 'static) {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || drop(tx.send(call())));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sim.parked_calls() < parked {
        assert!(std::time::Instant::now() < deadline, "the call never parked");
        std::thread::yield_now();
    }
    assert!(rx.try_recv().is_err(), "a parked call must not return");
}

#[test]
fn a_kill_point_kills_the_client_at_its_nth_call_at_entry_or_at_return() {
    let sim = SimHypervisor::new();
    let (daemon, other) = (sim.client(), sim.client());
    let (tx, rx) = crossbeam_channel::unbounded();
    let da = daemon.create_paused(&spec("a")).unwrap();
    let _watch = daemon.watch(da, tx).unwrap();

    // At return: the second unpause does its work, and the daemon never hears of it.
    daemon.kill_client_at(daemon.client_id(), Op::Unpause, 2, KillMoment::Return);
    let db = daemon.create_paused(&spec("b")).unwrap();
    daemon.unpause(da).unwrap();
    let d = daemon.clone();
    parks(&sim, 1, move || d.unpause(db));
    assert!(sim.info_of(db.get()).unwrap().ever_unpaused, "its work is done");
    let d = daemon.clone();
    parks(&sim, 2, move || d.list());
    // Its watches hear nothing more; other clients go on.
    other.destroy(da).unwrap();
    assert!(rx.try_recv().is_err(), "a killed client gets no events");
    assert!(other.create_paused(&spec("c")).is_ok());

    // At entry: the chosen call does nothing.
    let restarted = sim.client();
    restarted.kill_client_at(restarted.client_id(), Op::Create, 1, KillMoment::Entry);
    let (r, s) = (restarted.clone(), spec("d"));
    let uuid = s.uuid;
    parks(&sim, 3, move || r.create_paused(&s));
    assert!(sim.domains_of(uuid).is_empty(), "killed before it made a domain");
}

#[test]
fn a_kill_in_the_middle_of_a_save_leaves_the_guest_suspended_and_half_its_image() {
    let sim = SimHypervisor::new();
    let daemon = sim.client();
    let d = daemon.create_paused(&spec("s")).unwrap();
    daemon.unpause(d).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    daemon.kill_client_at(daemon.client_id(), Op::Save, 1, KillMoment::Middle);
    let (c, p) = (daemon.clone(), xenctl::partial_path(&path));
    parks(&sim, 1, move || c.begin_save(d, &p).map(drop));
    let left = sim.info_of(d.get()).unwrap();
    assert_eq!(left.state, DomainState::Shutdown(ShutdownReason::Suspend), "suspended, not destroyed");
    assert!(dir.path().join("s.partial").exists() && !path.exists(), "half an image, beside the target");
}
