//! Save images across host boot and shutdown, on the simulated hypervisor: an image is never
//! restored over disks that moved on (a fresh boot since makes it stale), a saved domain stays
//! saved across daemon restarts, saves run under host-stop's watchdog, transient domains come
//! back, and what host-start cannot use is moved aside once, never overwritten.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod host_support;

use common::Env;
use domainmgrd::control::Request;
use domainmgrd::eve::SwState;
use domainmgrd::images::{self, ImageKind};
use domainmgrd::sim::{Behaviour, Op};
use host_support::{in_background, report_of, reports, running, settle, stop, wait_published};

/// The host goes down without a host-stop (power cut, or a reboot with the unit disabled) and
/// comes back: a new daemon on a hypervisor with no guests.
fn power_cycle(env: &mut Env) {
    env.stop();
    for d in env.sim.domains() {
        env.sim.external_destroy(d.domid);
    }
    env.start();
}

/// `domainctl save NAME`: into SAVE, named for the Xen domain (an autostart domain's name).
fn save(env: &Env, name: &str) {
    let r = env.control(&Request::Save { domain: name.into(), file: None });
    assert!(r.ok, "{r:?}");
    let outcome = r.data["outcome"].as_str().unwrap();
    let path = outcome.strip_prefix("saved to ").unwrap_or_else(|| panic!("{outcome}"));
    assert!(std::path::Path::new(path).starts_with(env.save_dir()) && std::path::Path::new(path).exists());
    assert!(!running(env, name));
}

#[test]
fn a_fresh_boot_after_a_save_makes_the_image_stale_for_good() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}", env.save_dir().display()));
    env.write_auto("web", "");
    env.start();
    assert!(env.control(&Request::HostStart).ok);

    // Saved, then started afresh by an operator: the guest writes its disks from now on.
    save(&env, "web");
    let r = env.control(&Request::Start { domain: "web".into() });
    assert!(r.ok && r.data["outcome"].as_str().unwrap().starts_with("started as domain"), "{r:?}");
    assert!(env.save_dir().join("web").exists(), "the image is still there");

    // The host goes down with it running; at the next boot the old memory must not come back.
    power_cycle(&mut env);
    let r = env.control(&Request::HostStart);
    let rs = reports(&r);
    assert!(!r.ok, "a stale image is a failure to report: {rs:#?}");
    let web = report_of(&rs, "web");
    assert!(web.outcome.contains("stale: the domain was booted afresh since the save"), "{web:?}");
    assert!(web.outcome.contains("started as domain"), "an autostart domain boots afresh instead: {web:?}");
    assert_eq!(env.sim.calls(Op::Restore), 0);
    assert!(env.save_dir().join("stale/web").exists(), "moved aside, never deleted");

    // The same with the operator's stop after the fresh boot: the stop holds, the image goes.
    save(&env, "web");
    assert!(env.control(&Request::Start { domain: "web".into() }).ok);
    assert!(env.control(&stop("web")).ok);
    let rs = reports(&env.control(&Request::HostStart));
    let web = report_of(&rs, "web");
    assert!(!web.ok && web.outcome.starts_with("left stopped (an operator stopped it); refused"), "{web:?}");
    assert!(web.outcome.contains("stale: the domain was booted afresh"), "{web:?}");
    assert!(env.save_dir().join("stale/web.1").exists() && env.save_dir().join("stale/web").exists());
    let r = env.control(&Request::Restore { file: env.save_dir().join("stale/web.1") });
    assert!(r.error.as_deref().is_some_and(|e| e.contains("stale: the domain was booted afresh")), "{r:?}");
    assert_eq!(env.sim.calls(Op::Restore), 0);
    assert!(!running(&env, "web"));
}

#[test]
fn an_operators_stop_keeps_a_good_image_for_them_and_an_operators_save_elsewhere_holds() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}", env.save_dir().display()));
    env.write_auto("kept", "");
    env.write_auto("elsewhere", "");
    env.start();
    assert!(env.control(&Request::HostStart).ok);
    save(&env, "kept");
    assert!(env.control(&stop("kept")).ok);
    let image = env.dir.path().join("by-hand.save");
    assert!(env.control(&Request::Save { domain: "elsewhere".into(), file: Some(image.clone()) }).ok);

    power_cycle(&mut env);
    let r = env.control(&Request::HostStart);
    let rs = reports(&r);
    assert!(r.ok, "{rs:#?}");
    let kept = report_of(&rs, "kept");
    assert!(kept.outcome.starts_with("left stopped (an operator stopped it); its image"), "{kept:?}");
    let elsewhere = report_of(&rs, "elsewhere");
    assert!(
        elsewhere.outcome.starts_with(&format!("left stopped: it was saved to {}", image.display())),
        "{elsewhere:?}"
    );
    assert_eq!((env.sim.calls(Op::Restore), running(&env, "kept"), running(&env, "elsewhere")), (0, false, false));

    // Both restore as they are.
    assert!(env.control(&Request::Restore { file: env.save_dir().join("kept") }).ok);
    assert!(env.control(&Request::Restore { file: image }).ok);
    assert!(running(&env, "kept") && running(&env, "elsewhere"));
}

#[test]
fn restore_false_boots_afresh_and_sets_the_image_aside_at_once() {
    let mut env = Env::new();
    let save_dir = env.save_dir();
    env.write_host_config(&format!("SAVE={}\nRESTORE=false", save_dir.display()));
    env.write_auto("web", "");
    env.start();
    assert!(env.control(&Request::HostStart).ok);
    assert!(report_of(&reports(&env.control(&Request::HostStop)), "web").outcome.starts_with("saved to"));

    env.stop();
    env.start();
    let rs = reports(&env.control(&Request::HostStart));
    let web = report_of(&rs, "web");
    assert!(web.ok && web.outcome.starts_with("started as domain"), "{web:?}");
    assert!(web.outcome.contains("not restored (RESTORE=false)"), "{web:?}");
    assert!(!save_dir.join("web").exists() && save_dir.join("stale/web").exists());

    // Put back by hand, with RESTORE=true at the next boot: still never restored.
    std::fs::rename(save_dir.join("stale/web"), save_dir.join("web")).unwrap();
    std::fs::rename(images::record_path(&save_dir.join("stale/web")), images::record_path(&save_dir.join("web")))
        .unwrap();
    env.write_host_config(&format!("SAVE={}", save_dir.display()));
    power_cycle(&mut env);
    let rs = reports(&env.control(&Request::HostStart));
    assert!(report_of(&rs, "web").outcome.contains("stale: the domain was booted afresh"), "{rs:#?}");
    assert_eq!(env.sim.calls(Op::Restore), 0);
}

#[test]
fn a_saved_domain_is_not_booted_afresh_by_a_daemon_restart() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}", env.save_dir().display()));
    env.start();
    let (uuid, _) = env.run_domain("app");
    save(&env, "app");

    // Its EVE config says Activate=true, but it waits for its image, across a restart too.
    env.stop();
    env.start();
    wait_published(&env, "app");
    settle(&env, "app");
    assert!(env.sim.domains_of(uuid).is_empty(), "a saved domain was booted afresh");
    let r = env.control(&Request::HostStart);
    assert!(report_of(&reports(&r), "app").outcome.starts_with("restored from"), "{r:?}");
    assert_eq!(env.wait_state(uuid, SwState::RUNNING).domain_id, env.sim.domains_of(uuid)[0].domid.get());
    assert_eq!(env.sim.calls(Op::Restore), 1);
}

#[test]
fn a_save_that_overruns_stop_maxwait_is_destroyed_and_reported() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}\nSTOP_MAXWAIT=1", env.save_dir().display()));
    env.write_auto("web", "");
    env.start();
    assert!(env.control(&Request::HostStart).ok);
    env.sim.hold(Op::Save);

    let r = env.control(&Request::HostStop);
    let rs = reports(&r);
    assert!(!r.ok, "{rs:#?}");
    let web = report_of(&rs, "web");
    let want = format!(
        "destroyed: its save to {} did not finish within 1 s (STOP_MAXWAIT); not saved",
        env.save_dir().join("web").display()
    );
    assert_eq!((web.ok, web.outcome.as_str()), (false, want.as_str()), "{web:?}");
    assert!(web.seconds >= 1.0, "the watchdog is STOP_MAXWAIT: {web:?}");
    assert!(!running(&env, "web") && images::list(&env.save_dir()).is_empty());
    env.sim.open(Op::Save);

    // Not saved: it boots afresh at the next host boot.
    power_cycle(&mut env);
    let rs = reports(&env.control(&Request::HostStart));
    assert!(report_of(&rs, "web").outcome.starts_with("started as domain"), "{rs:#?}");
}

#[test]
fn without_destroy_left_an_overrunning_save_is_left_to_finish() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}\nSTOP_MAXWAIT=1\nDESTROY_LEFT=false", env.save_dir().display()));
    env.write_auto("web", "");
    env.start();
    assert!(env.control(&Request::HostStart).ok);
    env.sim.hold(Op::Save);

    let rs = reports(&env.control(&Request::HostStop));
    let web = report_of(&rs, "web");
    assert!(
        !web.ok
            && web.outcome.ends_with("did not finish within 1 s (STOP_MAXWAIT); left to finish (DESTROY_LEFT=false)"),
        "{web:?}"
    );
    assert!(running(&env, "web"), "still saving");
    env.sim.open(Op::Save);
    env.wait_for("the save to finish", || !running(&env, "web") && images::list(&env.save_dir()).len() == 1);
    power_cycle(&mut env);
    let rs = reports(&env.control(&Request::HostStart));
    assert!(report_of(&rs, "web").outcome.starts_with("restored from"), "{rs:#?}");
}

#[test]
fn a_transient_domain_saved_at_host_stop_comes_back_at_host_start() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}", env.save_dir().display()));
    env.start();
    let file = env.dir.path().join("scratch.cfg");
    std::fs::write(&file, "name = 'scratch'\ntype = 'pv'\nkernel = '/k'\nmemory = 64\n").unwrap();
    assert!(env.control(&Request::Create { file }).ok);

    let rs = reports(&env.control(&Request::HostStop));
    assert!(report_of(&rs, "scratch").outcome.starts_with("saved to"), "{rs:#?}");
    let image = env.save_dir().join("scratch");
    assert_eq!(images::read_record(&image).unwrap().kind, ImageKind::Transient);

    power_cycle(&mut env);
    let r = env.control(&Request::HostStart);
    let rs = reports(&r);
    assert!(r.ok, "{rs:#?}");
    assert!(report_of(&rs, "scratch").outcome.starts_with("restored from"), "{rs:#?}");
    assert!(running(&env, "scratch") && !image.exists());
    let rows: Vec<domainmgrd::supervisor::ListRow> = serde_json::from_value(env.control(&Request::List).data).unwrap();
    let row = rows.iter().find(|r| r.name == "scratch").unwrap();
    assert_eq!(row.source.as_deref(), Some("transient"));
}

#[test]
fn destroy_left_false_holds_for_host_stops_halt_only() {
    let mut env = Env::new();
    env.write_host_config("STOP_MAXWAIT=5\nDESTROY_LEFT=false");
    env.write_auto("web", "");
    env.start();
    assert!(env.control(&Request::HostStart).ok);
    let (app, _) = env.run_domain("app");
    let rs = reports(&env.control(&Request::HostStop));
    assert_eq!(
        (report_of(&rs, "web").outcome.as_str(), report_of(&rs, "app").outcome.as_str()),
        ("shut down", "shut down")
    );
    assert!(env.control(&Request::HostStart).ok);
    env.wait_state(app, SwState::RUNNING);

    // Later they are stopped and do not listen: those halts destroy them in the end, as usual.
    for uuid in [env.sim_named("web")[0].spec.uuid, app] {
        env.sim.set_behaviour(uuid, Behaviour { honours_shutdown: false, ..Behaviour::default() });
    }
    let r = env.control(&Request::Stop { domain: "web".into(), force: false, timeout_secs: Some(1) });
    assert!(r.ok, "{r:?}");
    assert_eq!(r.data["outcome"], "stopped (destroyed: it did not shut down in time)");
    assert!(!running(&env, "web"));
    // Deactivated by its EVE config, with nobody waiting on the halt: one shutdown request,
    // then destroyed when timer.domain.shutdown runs out (not left running once first).
    let asked = env.sim.calls(Op::Shutdown);
    env.write_config(&common::config(app, "app", false));
    env.wait_state(app, SwState::HALTED);
    assert!(env.sim.domains_of(app).is_empty());
    assert_eq!(env.sim.calls(Op::Shutdown), asked + 1);
}

#[test]
fn the_watchdog_without_destroy_answers_host_stop_alone() {
    let mut env = Env::new();
    env.write_host_config("STOP_MAXWAIT=2\nDESTROY_LEFT=false");
    env.write_auto("web", "");
    env.start();
    assert!(env.control(&Request::HostStart).ok);
    let uuid = env.sim_named("web")[0].spec.uuid;
    env.sim.set_behaviour(uuid, Behaviour { honours_shutdown: false, ..Behaviour::default() });

    let host_stop = in_background(&env, Request::HostStop);
    env.wait_status(uuid, "HALTING", |s| s.state == SwState::HALTING);
    // An operator's stop while host-stop waits (had it come after the watchdog, it would end
    // the same way, after its own timeout).
    let op_stop = in_background(&env, Request::Stop { domain: "web".into(), force: false, timeout_secs: Some(2) });
    let rs = reports(&host_stop.join().unwrap());
    let web = report_of(&rs, "web");
    assert_eq!(
        (web.ok, web.outcome.as_str()),
        (false, "still running when the watchdog fired; left running (DESTROY_LEFT=false)")
    );
    let r = op_stop.join().unwrap();
    assert!(r.ok, "the operator's stop is not host-stop's: {r:?}");
    assert_eq!(r.data["outcome"], "stopped (destroyed: it did not shut down in time)");
    assert!(!running(&env, "web"));
}

#[test]
fn images_host_start_cannot_use_are_moved_aside_once_and_never_overwritten() {
    let mut env = Env::new();
    let save_dir = env.save_dir();
    env.write_host_config(&format!("SAVE={}", save_dir.display()));
    std::fs::create_dir_all(&save_dir).unwrap();
    let foreign = save_dir.join("by-xendomains");
    std::fs::write(&foreign, "an image saved by xl").unwrap();
    env.start();

    let r = env.control(&Request::HostStart);
    let rs = reports(&r);
    assert_eq!(r.exit, 1, "{rs:#?}");
    let rep = report_of(&rs, &foreign.display().to_string());
    assert!(rep.outcome.starts_with("refused: it has no domainmgr record"), "{rep:?}");
    assert!(rep.outcome.contains(&format!("moved to {}", save_dir.join("stale/by-xendomains").display())), "{rep:?}");
    let r = env.control(&Request::HostStart);
    assert_eq!((r.ok, r.exit), (true, 0), "reported once, not at every boot: {r:?}");

    // Another one of that name: the first stays as it was.
    std::fs::write(&foreign, "a second one").unwrap();
    assert_eq!(env.control(&Request::HostStart).exit, 1);
    assert_eq!(std::fs::read_to_string(save_dir.join("stale/by-xendomains")).unwrap(), "an image saved by xl");
    assert_eq!(std::fs::read_to_string(save_dir.join("stale/by-xendomains.1")).unwrap(), "a second one");
}

#[test]
fn an_eve_domain_deactivated_since_its_save_is_not_restored() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}", env.save_dir().display()));
    env.start();
    let (uuid, _) = env.run_domain("app");
    save(&env, "app");
    env.write_config(&common::config(uuid, "app", false));
    power_cycle(&mut env);
    let r = env.control(&Request::HostStart);
    let app = report_of(&reports(&r), "app").clone();
    assert!(app.ok && app.outcome.starts_with("not restored: its EVE config says Activate=false"), "{app:?}");
    assert_eq!((env.sim.calls(Op::Restore), images::list(&env.save_dir()).len()), (0, 1), "kept");
}

#[test]
fn a_restored_domain_reports_its_new_vif_names() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}", env.save_dir().display()));
    env.start();
    let uuid = uuid::Uuid::new_v4();
    let mut cfg = common::config(uuid, "app", true);
    cfg["VifList"][0]["Vif"] = "".into(); // no name given: Xen's vif<domid>.<n>
    env.write_config(&cfg);
    let first = env.wait_state(uuid, SwState::RUNNING);
    assert_eq!(first.vif_list[0].vif_used, format!("vif{}.0", first.domain_id));
    save(&env, "app");

    let r = env.control(&Request::HostStart);
    assert!(report_of(&reports(&r), "app").outcome.starts_with("restored from"), "{r:?}");
    let st = env.wait_state(uuid, SwState::RUNNING);
    assert!(st.domain_id > first.domain_id);
    assert_eq!(st.vif_list[0].vif_used, format!("vif{}.0", st.domain_id), "the saved run's names");
}
