//! How domains end, against the simulated hypervisor: `Activated` as EVE's domainmgr keeps it
//! (true until the domain is gone), domains that will not die (BROKEN, destroy retried), and
//! what a crash does under `on_crash=preserve` and `on_crash=restart`. Simulator gates hold the
//! hypervisor calls where a test must look, so nothing depends on timing.

mod common;

use common::*;
use domainmgrd::control::Request;
use domainmgrd::eve::SwState;
use domainmgrd::sim::{Behaviour, Fault, Op};
use uuid::Uuid;
use xenctl::{DomId, DomainState, ShutdownReason};

#[test]
fn activated_stays_true_while_halting_and_clears_once_the_domain_is_gone() {
    let mut env = Env::new();
    env.flags.push("timer.domain.shutdown:3600".into());
    env.start();
    let uuid = Uuid::new_v4();
    // A guest that takes its time: it powers off only when the test says so.
    env.sim.set_behaviour(uuid, Behaviour { honours_shutdown: false, ..Behaviour::default() });
    env.write_config(&config(uuid, "web", true));
    let running = env.wait_state(uuid, SwState::RUNNING);
    assert!(running.activated);
    let domid = DomId::new(running.domain_id);

    env.write_config(&config(uuid, "web", false));
    let st = env.wait_state(uuid, SwState::HALTING);
    assert!(st.activated, "zedmanager must not tear down networks and volumes yet: {st:#?}");
    assert_eq!(st.domain_id, running.domain_id);

    // It powers off; the destroy that releases it is held: still HALTING, still activated.
    let destroy = env.sim.gate(uuid, Op::Destroy);
    env.sim.guest_poweroff(domid);
    wait_held(&destroy, 1);
    let st = env.status(uuid).unwrap();
    assert_eq!((st.state, st.activated, st.domain_id), (SwState::HALTING, true, running.domain_id));

    destroy.open();
    let st = env.wait_state(uuid, SwState::HALTED);
    assert_eq!((st.activated, st.domain_id), (false, 0));
}

#[test]
fn a_guest_that_powered_off_is_halting_and_activated_until_released() {
    let mut env = Env::new();
    env.flags.push("timer.boot.retry:3600".into());
    env.start();
    let (uuid, running) = env.run_domain("web");
    let destroy = env.sim.gate(uuid, Op::Destroy);
    env.sim.guest_poweroff(DomId::new(running.domain_id));
    wait_held(&destroy, 1);
    // It still exists (shut down, being destroyed): never HALTED while it exists.
    let st = env.status(uuid).unwrap();
    assert_eq!((st.state, st.activated, st.domain_id), (SwState::HALTING, true, running.domain_id));
    destroy.open();
    let st = env.wait_status(uuid, "released", |s| s.domain_id == 0);
    assert_eq!((st.state, st.activated), (SwState::HALTED, false));
}

#[test]
fn a_domain_whose_destroy_fails_is_broken_and_activated_until_a_retry_destroys_it() {
    let mut env = Env::new();
    env.start();
    let (uuid, running) = env.run_domain("web");
    env.sim.inject(uuid, Fault { op: Op::Destroy, count: 1 });
    env.write_config(&config(uuid, "web", false));
    let st = env.wait_state(uuid, SwState::BROKEN);
    assert!(st.activated && st.domain_id == running.domain_id, "{st:#?}");
    assert!(st.error.error.contains(&format!("destroy of domain {} failed", running.domain_id)), "{}", st.error.error);
    assert_eq!(st.error.error_retry_condition, "destroy is retried");
    assert_eq!(env.sim.domains_of(uuid).len(), 1, "it still exists");

    // The retry (after timer.domain.destroy) works; until it has returned, still BROKEN.
    let destroy = env.sim.gate(uuid, Op::Destroy);
    wait_held(&destroy, 1);
    assert_eq!(env.status(uuid).unwrap().state, SwState::BROKEN);
    destroy.open();
    let st = env.wait_status(uuid, "HALTED and released", |s| s.state == SwState::HALTED && s.domain_id == 0);
    assert!(!st.activated && st.error.error.is_empty(), "{st:#?}");
    assert!(env.sim.domains_of(uuid).is_empty());
}

#[test]
fn a_domain_that_never_dies_stays_broken_until_it_is_gone() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    env.sim.set_behaviour(uuid, Behaviour { stuck_dying: true, ..Behaviour::default() });
    env.write_config(&config(uuid, "zombie", true));
    let running = env.wait_state(uuid, SwState::RUNNING);
    let domid = running.domain_id;

    env.write_config(&config(uuid, "zombie", false));
    let st = env.wait_state(uuid, SwState::BROKEN);
    assert!(st.activated && st.domain_id == domid, "{st:#?}");
    assert_eq!(st.error.error, format!("domain {domid} did not die after destroy"));
    // Destroy is retried, and it stays BROKEN however many tries it takes.
    let before = env.sim.calls(Op::Destroy);
    env.wait_for("destroy to be retried", || env.sim.calls(Op::Destroy) > before);
    let destroy = env.sim.gate(uuid, Op::Destroy);
    wait_held(&destroy, 1);
    assert_eq!(env.status(uuid).unwrap().state, SwState::BROKEN);
    assert_eq!(env.sim.info_of(domid).map(|d| d.state), Some(DomainState::Dying));

    // Xen lets go of it: the next try destroys it for good.
    env.sim.set_behaviour(uuid, Behaviour::default());
    destroy.open();
    let st = env.wait_status(uuid, "HALTED and released", |s| s.state == SwState::HALTED && s.domain_id == 0);
    assert!(!st.activated && st.error.error.is_empty(), "{st:#?}");
    assert!(env.sim.info_of(domid).is_none());
}

/// An autostart domain with `on_crash` as given, started by an operator.
fn started_autostart_domain(env: &mut Env, name: &str, on_crash: &str) -> (Uuid, u32) {
    let (uuid, st, _) = env.started_autostart_domain(name, &format!("on_crash = \"{on_crash}\""));
    (uuid, st.domain_id)
}

#[test]
fn on_crash_preserve_keeps_the_crashed_domain_until_it_is_stopped() {
    let mut env = Env::new();
    let (uuid, domid) = started_autostart_domain(&mut env, "keep", "preserve");
    env.sim.guest_crash(DomId::new(domid));
    let st = env.wait_status(uuid, "preserved", |s| s.state == SwState::HALTED && s.error.is_set());
    assert!(st.error.error.contains("kept for inspection"), "{}", st.error.error);
    assert_eq!((st.domain_id, st.activated), (domid, true), "it still exists");
    assert_eq!(env.sim.info_of(domid).map(|d| d.state), Some(DomainState::Shutdown(ShutdownReason::Crash)));
    assert_eq!(env.sim.calls(Op::Destroy), 0);

    let r = env.control(&Request::Stop { domain: "keep".into(), force: false, timeout_secs: None });
    assert!(r.ok, "{r:?}");
    let st = env.wait_status(uuid, "released", |s| s.domain_id == 0);
    assert_eq!((st.state, st.activated), (SwState::HALTED, false));
    assert!(env.sim.info_of(domid).is_none());
    assert_eq!(env.sim.calls(Op::Create), 1, "not restarted");
}

#[test]
fn on_crash_restart_creates_it_again_at_once() {
    let mut env = Env::new();
    // Not the boot retry timer: a restart is immediate.
    env.flags.push("timer.boot.retry:3600".into());
    let (uuid, domid) = started_autostart_domain(&mut env, "phoenix", "restart");
    env.sim.guest_crash(DomId::new(domid));
    let st = env.wait_status(uuid, "running again", |s| s.state == SwState::RUNNING && s.domain_id > domid);
    assert!(st.activated && st.error.error.is_empty(), "{st:#?}");
    assert!(env.sim.info_of(domid).is_none());
    assert_eq!(env.sim.domains_of(uuid).len(), 1);
}
