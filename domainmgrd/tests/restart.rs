//! Restart safety and independence of domains, against the simulated hypervisor: stopping or
//! killing the daemon stops no domain, a restart adopts what runs, a create cut short by a crash
//! ends with exactly one running domain, domains the daemon did not create are never touched,
//! and one domain's slow shutdown never delays another's boot. The safety-net poll is off: an
//! adopted domain's life after a restart is driven by its re-armed events.

mod common;

use common::*;
use domainmgrd::eve::SwState;
use domainmgrd::records::{self, Step};
use domainmgrd::sim::{Behaviour, Fault, Op};
use domainmgrd::supervisor::StartError;
use uuid::Uuid;
use xenctl::{DomId, DomainSpec};

#[test]
fn stopping_the_daemon_stops_no_domain_and_a_restart_adopts_them() {
    let mut env = Env::new();
    env.flags.push("timer.boot.retry:3600".into());
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

    let held: Vec<_> = uuids.iter().map(|u| env.hold_status(*u)).collect();
    env.start();
    for ((u, domid), held) in uuids.iter().zip(&before).zip(&held) {
        let st = env.wait_rewritten(*u, held);
        assert_eq!((st.state, st.domain_id), (SwState::RUNNING, *domid), "adopted with the same domid");
    }
    // The restarted daemon watches them (it published after arming the watch, and the poll is
    // off): a guest's own poweroff reaches HALTED.
    env.sim.guest_poweroff(DomId::new(before[0]));
    let st = env.wait_status(uuids[0], "HALTED and released", |s| s.state == SwState::HALTED && s.domain_id == 0);
    assert!(!st.activated && st.error.error.is_empty(), "{st:#?}");
    assert!(env.sim.domains_of(uuids[0]).is_empty());
    assert_eq!(env.sim.calls(Op::Shutdown), shutdowns, "the daemon asked nothing of the guest");
    assert_eq!(env.sim.calls(Op::Destroy), destroys + 1, "only the powered-off domain was released");
    assert_eq!(env.sim.calls(Op::Create), creates, "nothing was created again");
    for (u, domid) in uuids.iter().zip(&before).skip(1) {
        assert_eq!(env.status(*u).unwrap().domain_id, *domid);
        assert!(env.sim.info_of(*domid).is_some_and(|d| d.state.is_live()));
    }
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
    env.start();
    let uuid = Uuid::new_v4();
    let create = env.sim.gate(uuid, Op::Create);
    env.write_config(&config(uuid, "web", true));
    // The create is in flight: the domain exists, paused, not yet returned to the daemon.
    wait_held(&create, 1);
    env.kill();
    drop(create); // the killed call goes on into its parking place, never to return
    let half = env.sim.domains_of(uuid);
    assert_eq!(half.len(), 1);
    assert!(!half[0].ever_unpaused, "left half-created");

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
fn a_slow_shutdown_or_a_slow_create_does_not_delay_another_domains_boot() {
    let mut env = Env::new();
    env.flags.push("timer.domain.shutdown:3600".into());
    env.start();
    let (slow, other) = (Uuid::new_v4(), Uuid::new_v4());
    // A guest slow to power off: it does when the test says so.
    env.sim.set_behaviour(slow, Behaviour { honours_shutdown: false, ..Behaviour::default() });
    env.write_config(&config(slow, "slow", true));
    let slow_st = env.wait_state(slow, SwState::RUNNING);
    env.write_config(&config(slow, "slow", false));
    env.wait_state(slow, SwState::HALTING);
    env.write_config(&config(other, "other", true));
    env.wait_state(other, SwState::RUNNING);
    assert_eq!(env.status(slow).unwrap().state, SwState::HALTING, "the slow one is still shutting down");

    // A thread stuck in a slow create does not hold up another's either.
    let (slow_boot, quick) = (Uuid::new_v4(), Uuid::new_v4());
    let create = env.sim.gate(slow_boot, Op::Create);
    env.write_config(&config(slow_boot, "slow-boot", true));
    wait_held(&create, 1);
    env.write_config(&config(quick, "quick", true));
    env.wait_state(quick, SwState::RUNNING);
    assert_eq!(env.status(slow_boot).unwrap().state, SwState::BOOTING, "its create has not returned");
    create.open();
    env.wait_state(slow_boot, SwState::RUNNING);
    env.sim.guest_poweroff(DomId::new(slow_st.domain_id));
    env.wait_status(slow, "HALTED and released", |s| s.state == SwState::HALTED && s.domain_id == 0);
}

#[test]
fn an_adopted_domain_keeps_its_vifs_disks_and_tries() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    env.sim.inject(uuid, Fault { op: Op::Create, count: 1 });
    env.write_config(&config(uuid, "web", true));
    let before = env.wait_state(uuid, SwState::RUNNING);
    assert_eq!(before.tried_count, 2);
    assert_eq!(before.vif_list[0].vif_used, format!("nbu{}", uuid.as_u128() % 1000));
    assert_eq!(before.disk_status_list[0].vdev, "xvda");

    env.stop();
    let held = env.hold_status(uuid);
    env.start();
    let after = env.wait_rewritten(uuid, &held);
    assert_eq!((after.state, after.domain_id), (SwState::RUNNING, before.domain_id));
    assert_eq!(after.tried_count, before.tried_count);
    assert_eq!(after.vif_list, before.vif_list);
    assert_eq!(after.disk_status_list, before.disk_status_list);
    assert_eq!((after.boot_time, after.activated), (before.boot_time, true));
}

#[test]
fn a_config_unreadable_at_start_leaves_its_running_domain_alone() {
    let mut env = Env::new();
    env.start();
    let (uuid, before) = env.run_domain("web");
    env.stop();
    std::fs::write(env.config_path(uuid), b"{\"UUIDandVersion\": {\"UUID\": ").unwrap();
    let held = env.hold_status(uuid);
    env.start();
    let st = env.wait_rewritten(uuid, &held);
    assert_eq!((st.state, st.domain_id, st.activated), (SwState::RUNNING, before.domain_id, true), "{st:#?}");
    assert!(st.error.error.contains("not a valid DomainConfig"), "{}", st.error.error);
    assert_eq!(st.vif_list, before.vif_list, "what the previous daemon reported stays");
    assert_eq!((env.sim.calls(Op::Shutdown), env.sim.calls(Op::Destroy)), (0, 0));

    // Fixed, the error clears and the same domain runs on.
    env.write_config(&config(uuid, "web", true));
    let st = env.wait_status(uuid, "the error cleared", |s| s.error.error.is_empty());
    assert_eq!((st.state, st.domain_id, st.tried_count), (SwState::RUNNING, before.domain_id, 1));
    assert_eq!(env.sim.calls(Op::Create), 1);
}

#[test]
fn a_domain_that_shut_down_while_the_daemon_was_down_is_never_published_running() {
    use inotify::{Inotify, WatchMask};
    let mut env = Env::new();
    env.start();
    let (uuid, first) = env.run_domain("web");
    env.stop();
    env.sim.guest_crash(DomId::new(first.domain_id));
    // Every status write renames a new file (its own temporary name) into place: count them.
    // Moves away are watched too, so that no two moves into place follow each other in the
    // queue (inotify merges identical events that do).
    let mut inotify = Inotify::init().unwrap();
    inotify.watches().add(env.paths().domain_status_dir(), WatchMask::MOVED_TO | WatchMask::MOVED_FROM).unwrap();
    let destroy = env.sim.gate(uuid, Op::Destroy);
    env.start();
    wait_held(&destroy, 1);
    let name = format!("{uuid}.json");
    let mut buffer = [0u8; 4096];
    let writes = match inotify.read_events(&mut buffer) {
        Ok(events) => events
            .filter(|e| e.mask.contains(inotify::EventMask::MOVED_TO) && e.name.is_some_and(|n| n == name.as_str()))
            .count(),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(e) => panic!("inotify: {e}"),
    };
    let st = env.status(uuid).unwrap();
    assert_eq!(writes, 1, "one status written before the crashed domain is released: {st:#?}");
    assert_eq!(st.state, SwState::HALTING, "it exists until released");
    assert_eq!(st.error.error, format!("domain {} crashed", first.domain_id));
    destroy.open();
    env.wait_status(uuid, "booted again", |s| s.state == SwState::RUNNING && s.domain_id > first.domain_id);
}

#[test]
fn an_operator_paused_domain_survives_a_restart_paused() {
    let mut env = Env::new();
    env.start();
    let (uuid, st) = env.run_domain("web");
    env.sim.operator_pause(DomId::new(st.domain_id));
    env.stop();
    let held = env.hold_status(uuid);
    env.start();
    let after = env.wait_rewritten(uuid, &held);
    assert_eq!((after.state, after.domain_id, after.activated), (SwState::PAUSED, st.domain_id, true));
    assert_eq!((env.sim.calls(Op::Destroy), env.sim.calls(Op::Create)), (0, 1), "not taken for half-created");
    assert_eq!(env.sim.domains_of(uuid)[0].state, xenctl::DomainState::Paused);
}

#[test]
fn a_daemon_killed_between_unpause_and_its_record_leaves_a_domain_the_next_one_keeps() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    let unpause = env.sim.gate(uuid, Op::Unpause);
    env.write_config(&config(uuid, "web", true));
    // Unpaused, but the daemon dies before it records that.
    wait_held(&unpause, 1);
    env.kill();
    drop(unpause);
    assert_eq!(records::read(&env.paths(), uuid).map(|r| r.step), Some(Step::Creating));
    let domid = env.sim.domains_of(uuid)[0].domid;

    env.start();
    let st = env.wait_state(uuid, SwState::RUNNING);
    assert_eq!(st.domain_id, domid.get());
    assert_eq!(
        records::read(&env.paths(), uuid).map(|r| r.step),
        Some(Step::Running { domid: domid.get() }),
        "recorded as running now"
    );
    // So an operator's pause later is not taken for a create cut short.
    env.sim.operator_pause(domid);
    env.stop();
    let held = env.hold_status(uuid);
    env.start();
    let st = env.wait_rewritten(uuid, &held);
    assert_eq!((st.state, st.domain_id), (SwState::PAUSED, domid.get()));
    assert_eq!((env.sim.calls(Op::Destroy), env.sim.calls(Op::Create)), (0, 1));
}

#[test]
fn a_start_that_fails_touches_no_domain_and_no_file() {
    let mut env = Env::new();
    env.start();
    let (uuid, st) = env.run_domain("web");
    env.stop();
    // Its config goes while the daemon is down: a start that got to the domains would halt it
    // and remove its status.
    env.delete_config(uuid);
    let socket = env.paths().run_dir.join("domainmgrd.sock");
    std::fs::create_dir(&socket).unwrap(); // the control socket cannot be made
    let err = env.try_start().unwrap_err();
    assert!(err.to_string().contains("domainmgrd.sock"), "{err}");
    assert!(env.status(uuid).is_some(), "the status was left alone");
    assert_eq!(records::read(&env.paths(), uuid).map(|r| r.step), Some(Step::Running { domid: st.domain_id }));
    assert!(env.sim.info_of(st.domain_id).is_some_and(|d| d.state.is_live()));

    std::fs::remove_dir(&socket).unwrap();
    env.start();
    env.wait_for("the domain to be halted", || env.sim.domains_of(uuid).is_empty());
    assert_eq!((env.sim.calls(Op::Shutdown), env.sim.calls(Op::Destroy)), (1, 1));
}
