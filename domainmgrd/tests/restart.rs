//! Restart safety and independence of domains, against the simulated hypervisor: stopping or
//! killing the daemon stops no domain, a restart adopts what runs, a create cut short by a crash
//! ends with exactly one running domain, domains the daemon did not create are never touched,
//! and one domain's slow shutdown never delays another's boot.

mod common;

use std::time::Duration;

use common::*;
use domainmgrd::eve::SwState;
use domainmgrd::sim::{Behaviour, Op};
use domainmgrd::supervisor::StartError;
use uuid::Uuid;
use xenctl::{DomId, DomainSpec};

#[test]
fn stopping_the_daemon_stops_no_domain_and_a_restart_adopts_them() {
    let mut env = Env::new();
    env.start();
    let uuids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for (i, u) in uuids.iter().enumerate() {
        env.write_config(&config(*u, &format!("app{i}"), true));
    }
    let before: Vec<u32> = uuids.iter().map(|u| env.wait_state(*u, SwState::RUNNING).domain_id).collect();
    let (creates, shutdowns, destroys) =
        (env.sim.calls(Op::Create), env.sim.calls(Op::Shutdown), env.sim.calls(Op::Destroy));

    env.stop();
    for (u, domid) in uuids.iter().zip(&before) {
        let d = env.sim.domains_of(*u);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].domid.get(), *domid);
        assert!(d[0].state.is_live(), "still running after the daemon stopped");
    }

    env.start();
    for (u, domid) in uuids.iter().zip(&before) {
        let st = env.wait_state(*u, SwState::RUNNING);
        assert_eq!(st.domain_id, *domid, "adopted with the same domid");
    }
    // Prove the restarted daemon watches them: a guest poweroff is noticed.
    env.sim.guest_poweroff(DomId::new(before[0]));
    env.wait_status(uuids[0], "booted again", |s| s.state == SwState::RUNNING && s.domain_id > before[0]);
    assert_eq!(env.sim.calls(Op::Shutdown), shutdowns);
    assert_eq!(env.sim.calls(Op::Create), creates + 1, "only the powered-off guest was booted again");
    assert!(env.sim.calls(Op::Destroy) <= destroys + 1);
}

#[test]
fn a_daemon_killed_while_domains_run_leaves_them_running() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    env.write_config(&config(uuid, "web", true));
    let st = env.wait_state(uuid, SwState::RUNNING);
    env.daemon.take().unwrap().abandon(); // as SIGKILL: nothing runs after this
    assert!(env.sim.domains_of(uuid)[0].state.is_live());
    env.start();
    assert_eq!(env.wait_state(uuid, SwState::RUNNING).domain_id, st.domain_id);
    assert_eq!(env.sim.calls(Op::Create), 1);
}

#[test]
fn a_crash_in_the_middle_of_a_create_leaves_exactly_one_running_domain_after_restart() {
    let mut env = Env::new();
    env.sim.set_delay(Op::Create, Duration::from_millis(400));
    let first = env.sim.client();
    let daemon = domainmgrd::supervisor::Daemon::start(env.options(), std::sync::Arc::new(first.clone())).unwrap();
    let uuid = Uuid::new_v4();
    env.write_config(&config(uuid, "web", true));
    // The create is in flight: the domain exists, paused, not yet returned to the daemon.
    env.wait_for("the domain to exist", || !env.sim.domains_of(uuid).is_empty());
    env.sim.kill_client(first.client_id());
    daemon.abandon();
    let half = env.sim.domains_of(uuid);
    assert_eq!(half.len(), 1);
    assert!(!half[0].ever_unpaused, "left half-created");

    env.sim.set_delay(Op::Create, Duration::ZERO);
    env.start();
    let st = env.wait_state(uuid, SwState::RUNNING);
    let doms = env.sim.domains_of(uuid);
    assert_eq!(doms.len(), 1, "exactly one domain: {doms:#?}");
    assert_eq!(doms[0].domid.get(), st.domain_id);
    assert!(doms[0].ever_unpaused && doms[0].domid > half[0].domid);
    assert!(env.sim.info_of(half[0].domid.get()).is_none(), "the half-created one was destroyed");
}

#[test]
fn domains_the_daemon_did_not_create_are_never_touched() {
    let mut env = Env::new();
    let foreign = DomainSpec::pv("hand-made").kernel("/k");
    let foreign_id = env.sim.external_create(&foreign);
    let paused = DomainSpec::pv("paused-by-hand").kernel("/k");
    let paused_id = env.sim.external_create(&paused);
    env.sim.operator_pause(paused_id);
    env.start();
    let uuid = Uuid::new_v4();
    env.write_config(&config(uuid, "ours", true));
    env.wait_state(uuid, SwState::RUNNING);
    env.stop();
    env.start();
    env.wait_state(uuid, SwState::RUNNING);
    assert!(env.sim.info_of(foreign_id.get()).is_some_and(|d| d.state.is_live()));
    assert!(env.sim.info_of(paused_id.get()).is_some());
    assert_eq!((env.sim.calls(Op::Destroy), env.sim.calls(Op::Shutdown), env.sim.calls(Op::Unpause)), (0, 0, 1));
    let statuses = std::fs::read_dir(env.paths().domain_status_dir())
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.')))
        .count();
    assert_eq!(statuses, 1, "no status for domains that are not ours");
}

#[test]
fn only_one_daemon_runs_at_a_time() {
    let mut env = Env::new();
    env.start();
    let err = env.try_start().unwrap_err();
    assert!(matches!(err, StartError::Locked(_)), "{err}");
    assert!(err.to_string().starts_with("another domainmgrd is running"), "{err}");
    env.stop();
    env.start();
}

#[test]
fn a_config_deleted_while_the_daemon_was_down_halts_its_domain_at_start() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    env.write_config(&config(uuid, "web", true));
    env.wait_state(uuid, SwState::RUNNING);
    env.stop();
    env.delete_config(uuid);
    env.start();
    env.wait_for("the domain to be halted", || env.sim.domains_of(uuid).is_empty());
    env.wait_for("its status to be removed", || env.status(uuid).is_none());
}

#[test]
fn a_domain_that_shut_down_while_the_daemon_was_down_is_handled_at_start() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    env.write_config(&config(uuid, "web", true));
    let first = env.wait_state(uuid, SwState::RUNNING);
    env.stop();
    env.sim.guest_crash(DomId::new(first.domain_id));
    env.start();
    env.wait_status(uuid, "the crash reported", |s| s.error.error.contains("crashed"));
    env.wait_status(uuid, "booted again", |s| s.state == SwState::RUNNING && s.domain_id > first.domain_id);
}

#[test]
fn a_slow_shutdown_does_not_delay_another_domains_boot() {
    let mut env = Env::new();
    env.flags.push("timer.domain.shutdown:120".into());
    env.start();
    let (slow, other) = (Uuid::new_v4(), Uuid::new_v4());
    env.sim.set_behaviour(slow, Behaviour { shutdown_delay: Duration::from_secs(30), ..Behaviour::default() });
    env.write_config(&config(slow, "slow", true));
    env.wait_state(slow, SwState::RUNNING);
    env.write_config(&config(slow, "slow", false));
    env.wait_state(slow, SwState::HALTING);
    env.write_config(&config(other, "other", true));
    env.wait_state(other, SwState::RUNNING);
    assert_eq!(env.status(slow).unwrap().state, SwState::HALTING, "the slow one is still shutting down");
    // A slow create of one domain does not hold up another's either.
    let (slow_boot, quick) = (Uuid::new_v4(), Uuid::new_v4());
    env.sim.set_delay(Op::Create, Duration::from_secs(3));
    env.write_config(&config(slow_boot, "slow-boot", true));
    env.wait_state(slow_boot, SwState::BOOTING);
    env.sim.set_delay(Op::Create, Duration::ZERO);
    env.write_config(&config(quick, "quick", true));
    env.wait_state(quick, SwState::RUNNING);
    assert_eq!(env.status(slow_boot).unwrap().state, SwState::BOOTING);
}
