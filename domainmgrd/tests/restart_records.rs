//! What a restarted daemon makes of the domains an earlier one ran, on the simulated
//! hypervisor: a restart (stop or kill) never stops a domain. Transient domains (`domainctl
//! create`, `restore`) are adopted from their records; an autostart domain whose file broke or
//! went away while no daemon ran keeps running; an EVE domain whose config is away around the
//! start gets the removal grace; a save cut short by a crash leaves the guest running, and one
//! that was complete is finished. The safety-net poll is off: everything is driven by events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod host_support;

use std::time::Duration;

use common::*;
use domainmgrd::control::Request;
use domainmgrd::eve::SwState;
use domainmgrd::images;
use domainmgrd::records::{self, Origin, Step};
use domainmgrd::sim::Op;
use host_support::{in_background, stop};
use uuid::Uuid;
use xenctl::{DomainSpec, DomainState, ShutdownReason};

/// The calls that would stop a domain, so far.
fn stops(env: &Env) -> (u64, u64, u64) {
    (env.sim.calls(Op::Shutdown), env.sim.calls(Op::PowerButton), env.sim.calls(Op::Destroy))
}

/// The domid of the one live simulated domain called `name`.
fn domid_of(env: &Env, name: &str) -> u32 {
    let live: Vec<_> = env.sim_named(name).into_iter().filter(|d| d.state.is_live()).collect();
    assert_eq!(live.len(), 1, "{name}: {live:#?}");
    live[0].domid.get()
}

/// Whether the daemon manages a domain called `name` (its status is known).
fn managed(env: &Env, name: &str) -> bool {
    env.control(&Request::Status { domain: Some(name.into()) }).exit != 4
}

#[test]
fn transient_domains_survive_a_daemon_restart_and_a_kill() {
    let mut env = Env::new();
    env.write_host_config("");
    env.start();
    let file = env.dir.path().join("scratch.cfg");
    std::fs::write(&file, "name = 'scratch'\ntype = 'pv'\nkernel = '/k'\nmemory = 64\n").unwrap();
    assert!(env.control(&Request::Create { file }).ok);
    // One more, restored from an image: transient too.
    let other = env.dir.path().join("other.cfg");
    std::fs::write(&other, "name = 'other'\ntype = 'pv'\nkernel = '/k'\nmemory = 64\n").unwrap();
    assert!(env.control(&Request::Create { file: other }).ok);
    let image = env.dir.path().join("other.save");
    assert!(env.control(&Request::Save { domain: "other".into(), file: Some(image.clone()) }).ok);
    assert!(env.control(&Request::Restore { file: image }).ok);
    let before = [domid_of(&env, "scratch"), domid_of(&env, "other")];
    let uuids: Vec<Uuid> = ["scratch", "other"].iter().map(|n| env.sim_named(n)[0].spec.uuid).collect();
    for u in &uuids {
        let r = records::read(&env.paths(), *u).unwrap();
        assert_eq!(r.origin, Origin::Transient);
        assert!(r.spec.is_some(), "a transient domain's config is in its record");
    }
    let stopping = stops(&env);

    for kill in [false, true] {
        if kill {
            env.kill();
        } else {
            env.stop();
        }
        env.start();
        for (u, domid) in uuids.iter().zip(before) {
            let st = env.wait_state(*u, SwState::RUNNING);
            assert_eq!(st.domain_id, domid, "adopted, untouched");
        }
        assert_eq!(stops(&env), stopping, "the restart stopped nothing (kill: {kill})");
        let list = env.control(&Request::List);
        let sources: Vec<_> = list.data.as_array().unwrap().iter().filter_map(|r| r["source"].as_str()).collect();
        assert_eq!(sources, ["transient", "transient"], "{list:?}");
    }

    // Still theirs to stop: stopped, a transient domain is forgotten.
    assert!(env.control(&stop("scratch")).ok);
    env.wait_for("scratch to be forgotten", || !managed(&env, "scratch"));
    assert!(records::read(&env.paths(), uuids[0]).is_none());
}

#[test]
fn an_autostart_domain_whose_file_broke_or_went_while_no_daemon_ran_keeps_running() {
    let mut env = Env::new();
    let (web, st, web_file) = env.started_autostart_domain("web", "");
    let db_file = env.write_auto("db", "");
    env.wait_for("db's file to be read", || managed(&env, "db"));
    assert!(env.start_request("db").ok);
    let db_domid = domid_of(&env, "db");
    let stopping = stops(&env);
    env.stop();

    // While no daemon runs, web's file gets a typo and db's file is removed.
    let good = std::fs::read_to_string(&web_file).unwrap();
    std::fs::write(&web_file, format!("{good}memroy = 64\n")).unwrap();
    std::fs::remove_file(&db_file).unwrap();
    env.start();

    let broken = env.wait_status(web, "adopted with the error", |s| !s.error.error.is_empty());
    assert_eq!((broken.state, broken.domain_id), (SwState::RUNNING, st.domain_id), "{broken:#?}");
    assert!(broken.error.error.contains("memroy"), "the error names the key: {}", broken.error.error);
    assert!(broken.error.error.contains("web.cfg"), "and the file: {}", broken.error.error);
    assert_eq!(domid_of(&env, "db"), db_domid, "db keeps running");
    assert!(!managed(&env, "db"), "a domain whose file is gone is no longer managed");
    assert_eq!(stops(&env), stopping, "the restart stopped nothing");

    // Fixed: the error goes, the domain was never restarted.
    std::fs::write(&web_file, &good).unwrap();
    let fixed = env.wait_status(web, "the error cleared", |s| s.error.error.is_empty());
    assert_eq!((fixed.state, fixed.domain_id), (SwState::RUNNING, st.domain_id));
    // The same while the daemon runs: broken, it keeps running with the error in its status;
    // fixed back to the very bytes it had, the error goes.
    std::fs::write(&web_file, "name = = 'web'\n").unwrap();
    let broken = env.wait_status(web, "the error again", |s| !s.error.error.is_empty());
    assert_eq!((broken.state, broken.domain_id), (SwState::RUNNING, st.domain_id), "{broken:#?}");
    std::fs::write(&web_file, &good).unwrap();
    env.wait_status(web, "the error cleared again", |s| s.error.error.is_empty());
    // And it is still the autostart domain an operator stops.
    assert!(env.control(&stop("web")).ok);
    assert_eq!(env.wait_state(web, SwState::HALTED).domain_id, 0);
}

#[test]
fn an_eve_config_away_around_the_start_gets_the_removal_grace() {
    let mut env = Env::new();
    env.start();
    let (kept, st) = env.run_domain("kept");
    let (gone, _) = env.run_domain("gone");
    let config = std::fs::read(env.config_path(kept)).unwrap();
    let stopping = stops(&env);
    env.stop();
    // zedmanager republishes by rename: the file is away when the daemon starts. The other
    // config is removed for good.
    env.delete_config(kept);
    env.delete_config(gone);
    let mut options = env.options();
    options.removal_grace = Duration::from_secs(5);
    env.start_with(options);
    std::fs::write(env.config_path(kept), &config).unwrap();

    env.wait_for("the removed one to be halted", || env.sim.domains_of(gone).is_empty());
    env.wait_for("its status to go", || env.status(gone).is_none());
    assert_eq!(env.status(kept).map(|s| (s.state, s.domain_id)), Some((SwState::RUNNING, st.domain_id)));
    assert_eq!(env.sim.domains_of(kept).len(), 1);
    assert_eq!(stops(&env).0, stopping.0 + 1, "only the removed domain was asked to shut down");
}

#[test]
fn a_domain_of_an_older_daemon_that_no_config_names_is_left_alone() {
    let mut env = Env::new();
    env.start();
    env.stop();
    // An older domainmgrd created it and recorded it its way; its config is gone.
    let spec = DomainSpec::pv("old").uuid(Uuid::new_v4()).kernel("/k");
    let domid = env.sim.external_create(&spec);
    std::fs::write(env.paths().run_dir.join(format!("domains/{}", spec.uuid)), format!("running {domid}\n")).unwrap();
    env.start();
    env.supervisor_round_trip();
    assert!(env.sim.info_of(domid.get()).is_some_and(|d| d.state.is_live()));
    assert_eq!(stops(&env), (0, 0, 0));
}

#[test]
fn a_save_cut_short_by_a_crash_leaves_the_guest_running() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}", env.save_dir().display()));
    env.start();
    let (uuid, st) = env.run_domain("app");
    env.sim.hold(Op::Save);
    let _never = in_background(&env, Request::Save { domain: "app".into(), file: None });
    assert!(env.sim.wait_held(Op::Save, 1, Duration::from_secs(20)));
    // Being saved, the domain still exists: HALTING, not HALTED.
    let saving = env.wait_state(uuid, SwState::HALTING);
    assert_eq!((saving.domain_id, saving.activated), (st.domain_id, true));
    let image = env.save_dir().join(&saving.domain_name);
    let partial = xenctl::partial_path(&image);
    assert!(partial.exists());
    assert!(matches!(records::read(&env.paths(), uuid).unwrap().step, Step::Saving { .. }));

    env.kill();
    env.sim.open(Op::Save);
    assert_eq!(env.sim.domains_of(uuid)[0].state, DomainState::Shutdown(ShutdownReason::Suspend));
    env.start();
    let st2 = env.wait_state(uuid, SwState::RUNNING);
    assert_eq!(st2.domain_id, st.domain_id, "the same guest, resumed");
    assert!(env.sim.domains_of(uuid)[0].state.is_live());
    assert_eq!(env.sim.calls(Op::Resume), 1);
    assert_eq!(env.sim.calls(Op::Destroy), 0, "nothing was destroyed");
    assert!(!partial.exists() && !image.exists() && !images::record_path(&image).exists(), "no image left");
    assert_eq!(records::read(&env.paths(), uuid).unwrap().step, Step::Running { domid: st.domain_id });
}

#[test]
fn a_save_complete_when_the_daemon_died_is_finished_by_the_next() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}", env.save_dir().display()));
    env.start();
    let (uuid, st) = env.run_domain("app");
    // The image is in place; the daemon dies in the destroy that ends the save.
    env.sim.hold(Op::Destroy);
    let _never = in_background(&env, Request::Save { domain: "app".into(), file: None });
    assert!(env.sim.wait_held(Op::Destroy, 1, Duration::from_secs(20)));
    let image = env.save_dir().join(&st.domain_name);
    assert!(image.exists() && images::read_record(&image).is_ok());
    env.kill();
    env.sim.open(Op::Destroy);

    env.start();
    let halted = env.wait_status(uuid, "saved", |s| s.state == SwState::HALTED && s.domain_id == 0);
    assert!(halted.error.error.is_empty(), "{halted:#?}");
    assert!(env.sim.domains_of(uuid).is_empty(), "the save was finished: the domain is gone");
    assert!(image.exists() && images::read_record(&image).is_ok(), "with its image in place");
    assert_eq!(env.sim.calls(Op::Resume), 0);
    // It waits for its image (Activate=true does not boot it afresh) until host-start restores it.
    let r = env.control(&Request::HostStart);
    assert!(r.ok, "{r:?}");
    assert_eq!(env.wait_state(uuid, SwState::RUNNING).domain_id, env.sim.domains_of(uuid)[0].domid.get());
    assert_eq!(env.sim.calls(Op::Restore), 1);
}
