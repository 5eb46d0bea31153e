//! Domain threads started while the daemon runs, against the simulated hypervisor: a config
//! that appears for a domain that already runs, an autostart file that comes back, a thread
//! that panicked, a config written again while its delete finishes. Each must find the
//! running domain and adopt it (never a second domain for the UUID, never an orphan), and no
//! config may be lost waiting for the next rescan.

mod common;

use std::time::Duration;

use common::*;
use domainmgrd::control::Request;
use domainmgrd::eve::SwState;
use domainmgrd::sim::{Fault, Op};
use uuid::Uuid;
use xenctl::DomainSpec;

/// Options whose rescan never comes during a test: only events can bring a config in.
fn without_rescans(env: &Env) -> domainmgrd::supervisor::Options {
    let mut o = env.options();
    o.rescan_interval = Duration::from_secs(3600);
    o
}

#[test]
fn a_config_for_a_domain_that_already_runs_adopts_it() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    let cfg = config(uuid, "web", true);
    let name = format!("{uuid}.1.{}", cfg["AppNum"]);
    let domid = env.sim.external_create(&DomainSpec::pv(&name).uuid(uuid).kernel("/persist/kernel").memory_mib(128));
    env.write_config(&cfg);
    let st = env.wait_state(uuid, SwState::RUNNING);
    assert_eq!((st.domain_id, st.activated), (domid.get(), true));
    assert_eq!(env.sim.calls(Op::Create), 0, "no second domain");
    assert_eq!(env.sim.domains_of(uuid).len(), 1);
}

#[test]
fn an_autostart_file_that_comes_back_adopts_its_running_domain() {
    let mut env = Env::new();
    let (uuid, st, file) = env.started_autostart_domain("web", "");

    // Its file goes: the domain is no longer managed, and keeps running.
    let text = std::fs::read(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    env.wait_for("the domain to be forgotten", || env.status(uuid).is_none());
    assert!(env.sim.info_of(st.domain_id).is_some_and(|d| d.state.is_live()));

    // It comes back: managed again, the same domain.
    std::fs::write(&file, text).unwrap();
    let again = env.wait_state(uuid, SwState::RUNNING);
    assert_eq!((again.domain_id, again.activated), (st.domain_id, true));
    assert_eq!(env.sim.calls(Op::Create), 1);
}

#[test]
fn a_domain_thread_that_panics_is_started_again_and_adopts_its_domain() {
    let mut env = Env::new();
    env.start_with(without_rescans(&env));
    let (uuid, st) = env.run_domain("web");
    // A call the domain's own thread makes (a save runs in a helper thread, under its watchdog).
    env.sim.inject_panic(uuid, Op::Shutdown);
    let r = env.control(&Request::Restart { domain: "web".into(), timeout_secs: Some(60) });
    assert!(!r.ok, "{r:?}");
    let crashed = env.wait_state(uuid, SwState::UNKNOWN);
    assert!(crashed.error.error.contains("internal error in domainmgrd"), "{}", crashed.error.error);
    let listed = env.control(&Request::List).data;
    let row = listed.as_array().unwrap().iter().find(|r| r["uuid"] == uuid.to_string()).cloned();
    assert_eq!(row.map(|r| r["managed"].clone()), Some("UNKNOWN".into()), "domainctl list says so too: {listed}");
    // Once the supervisor has seen the thread end, it no longer manages the domain...
    env.wait_for("the thread to be gone", || {
        env.control(&Request::Status { domain: Some(uuid.to_string()) }).exit == 4
    });
    // ...until its config is next read: the new thread adopts the domain that still runs.
    env.write_config(&config(uuid, "web", true));
    let again = env.wait_state(uuid, SwState::RUNNING);
    assert_eq!((again.domain_id, again.activated), (st.domain_id, true));
    assert!(again.error.error.is_empty(), "{}", again.error.error);
    assert_eq!(env.sim.calls(Op::Create), 1, "no second domain");
    assert_eq!(env.sim.domains_of(uuid).len(), 1);
}

#[test]
fn a_config_written_again_while_its_delete_finishes_is_not_lost() {
    let mut env = Env::new();
    let mut options = without_rescans(&env);
    options.removal_grace = Duration::ZERO; // a removal is settled as soon as it is seen
    env.start_with(options);
    let uuid = Uuid::new_v4();
    // Its thread is busy in a create that will fail, held until the test lets it return.
    env.sim.inject(uuid, Fault { op: Op::Create, count: 1 });
    let create = env.sim.gate(uuid, Op::Create);
    env.write_config(&config(uuid, "web", true));
    wait_held(&create, 1);

    // Deleted: the thread is sent a delete it cannot read yet. Another config written after
    // the deletion is a sync point: the supervisor handles the changes in order.
    env.delete_config(uuid);
    env.run_domain("sync-1");
    // Written again: the thread is sent the config, behind the delete.
    env.write_config(&config(uuid, "web", true));
    env.run_domain("sync-2");

    // The create fails; the thread reads the delete, ends, and never reads the config.
    create.open();
    let st = env.wait_state(uuid, SwState::RUNNING);
    assert_eq!(env.sim.domains_of(uuid).len(), 1);
    assert_eq!(env.sim.domains_of(uuid)[0].domid.get(), st.domain_id);
}
