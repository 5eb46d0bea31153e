//! Host boot and shutdown (xendomains' work), operators' requests through the control socket,
//! and what the daemon remembers of them, on the simulated hypervisor.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod host_support;

use common::Env;
use domainmgrd::control::Request;
use domainmgrd::eve::SwState;
use domainmgrd::images;
use domainmgrd::sim::{Behaviour, Op};
use host_support::{in_background, report_of, reports, running, settle, stop, wait_published};
use uuid::Uuid;

#[test]
fn the_daemon_starting_boots_no_autostart_domain_host_start_does() {
    let mut env = Env::new();
    env.write_host_config("");
    env.write_auto("a", "");
    env.write_auto("b", "");
    env.start();
    // Only host-start boots autostart domains; a daemon (re)start never does (each thread
    // publishes its first status after it decided).
    wait_published(&env, "a");
    wait_published(&env, "b");
    assert_eq!(env.sim.calls(Op::Create), 0);

    let r = env.control(&Request::HostStart);
    assert!(r.ok, "{r:?}");
    let rs = reports(&r);
    assert!(report_of(&rs, "a").outcome.starts_with("started as domain"), "{rs:#?}");
    assert!(running(&env, "a") && running(&env, "b"));

    // A second host-start leaves them be.
    let r = env.control(&Request::HostStart);
    assert!(r.ok, "{r:?}");
    assert!(report_of(&reports(&r), "b").outcome.starts_with("already running"), "{r:?}");
    assert_eq!(env.sim.calls(Op::Create), 2);
}

#[test]
fn host_start_creates_at_most_start_parallel_domains_at_once() {
    let mut env = Env::new();
    env.write_host_config("START_PARALLEL=2");
    for name in ["p1", "p2", "p3", "p4", "p5"] {
        env.write_auto(name, "");
    }
    env.sim.hold(Op::Create);
    env.start();
    let run = in_background(&env, Request::HostStart);
    // Each create is held until the test lets one through: two are in flight, never more.
    for done in 0..5 {
        let in_flight = (5 - done).min(2);
        env.wait_for("the creates START_PARALLEL lets start", || {
            env.sim.calls(Op::Create) >= done + in_flight && env.sim.held(Op::Create) >= in_flight
        });
        assert_eq!(env.sim.held(Op::Create), in_flight, "START_PARALLEL=2 bounds the creates in flight");
        assert_eq!(env.sim.calls(Op::Create), done + in_flight);
        env.sim.release(Op::Create, 1);
    }
    let r = run.join().unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(reports(&r).len(), 5);
    assert_eq!(env.sim.calls(Op::Create), 5);
    assert_eq!(env.sim.peak(Op::Create), 2, "START_PARALLEL=2 bounds the creates in flight");
}

#[test]
fn host_start_runs_once_at_a_time() {
    let mut env = Env::new();
    env.write_host_config("");
    env.write_auto("slow", "");
    env.sim.hold(Op::Create);
    env.start();
    let first = in_background(&env, Request::HostStart);
    env.wait_for("the first host-start to create", || env.sim.held(Op::Create) == 1);
    let second = env.control(&Request::HostStart);
    assert!(!second.ok);
    assert_eq!(second.error.as_deref(), Some("a host-start or host-stop is already running"));
    let second = env.control(&Request::HostStop);
    assert!(!second.ok, "{second:?}");
    env.sim.open(Op::Create);
    assert!(first.join().unwrap().ok);
    assert!(env.control(&Request::HostStart).ok, "the lock is released when it ends");
}

#[test]
fn host_start_restores_a_matching_image_and_refuses_stale_ones() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}", env.save_dir().display()));
    env.write_auto("keep", "");
    let changes = env.write_auto("changes", "");
    env.write_auto("fresh", "");
    env.start();
    assert!(env.control(&Request::HostStart).ok);

    // Save two; change the config of one of them afterwards.
    for name in ["keep", "changes"] {
        let r = env.control(&Request::Save { domain: name.into(), file: None });
        assert!(r.ok, "{r:?}");
        assert!(env.save_dir().join(name).exists());
        assert!(images::record_path(&env.save_dir().join(name)).exists());
    }
    assert!(!running(&env, "keep") && !running(&env, "changes"));
    std::fs::write(&changes, std::fs::read_to_string(&changes).unwrap().replace("memory = 128", "memory = 256"))
        .unwrap();
    // And an image of a domain that has no config any more.
    let orphan = env.save_dir().join("orphan");
    std::fs::copy(env.save_dir().join("keep"), &orphan).unwrap();
    let mut record = images::read_record(&env.save_dir().join("keep")).unwrap();
    record.uuid = Uuid::new_v4();
    record.name = "orphan".into();
    images::write_record(&orphan, &record).unwrap();

    // The host reboots: the daemon starts anew and host-start runs.
    env.stop();
    env.start();
    let creates = env.sim.calls(Op::Create);
    let r = env.control(&Request::HostStart);
    let rs = reports(&r);
    assert!(!r.ok, "stale images are failures to report: {rs:#?}");

    let keep = report_of(&rs, "keep");
    assert!(keep.ok && keep.outcome.starts_with("restored from"), "{keep:?}");
    assert_eq!(env.sim.calls(Op::Restore), 1, "only the matching image is restored");
    assert!(!env.save_dir().join("keep").exists(), "a restored image is deleted");
    assert!(env.sim_named("keep")[0].ever_unpaused);

    let changed = report_of(&rs, "changes");
    assert!(!changed.ok && changed.outcome.contains("stale: its config changed"), "{changed:?}");
    assert!(changed.outcome.contains("started as domain"), "an autostart domain still starts afresh: {changed:?}");
    assert_eq!(env.sim_named("changes")[0].spec.memory_mib, 256);
    assert!(env.save_dir().join("stale/changes").exists(), "a stale image is moved aside, never deleted");

    let orphan = report_of(&rs, "orphan");
    assert!(!orphan.ok && orphan.outcome.contains("no config for it"), "{orphan:?}");
    assert!(env.save_dir().join("stale/orphan").exists());

    assert!(report_of(&rs, "fresh").outcome.starts_with("already running"));
    assert_eq!(env.sim.calls(Op::Create), creates + 1, "only the stale one is created");
}

#[test]
fn host_stop_shuts_down_all_in_parallel_and_destroys_what_ignores_it() {
    let mut env = Env::new();
    env.write_host_config("STOP_MAXWAIT=2\nSYSRQ=\"s\"");
    env.write_auto("polite", "");
    env.write_auto("stubborn", "");
    env.start();
    assert!(env.control(&Request::HostStart).ok);
    let stubborn = env.sim_named("stubborn")[0].spec.uuid;
    env.sim.set_behaviour(stubborn, Behaviour { honours_shutdown: false, ..Behaviour::default() });
    // An EVE domain is managed too, so it is stopped as well (AUTO_ONLY is off).
    let (eve, _) = env.run_domain("eve-app");

    let r = env.control(&Request::HostStop);
    let rs = reports(&r);
    assert!(r.ok, "{rs:#?}");
    assert_eq!(report_of(&rs, "polite").outcome, "shut down");
    let s = report_of(&rs, "stubborn");
    assert!(s.ok && s.outcome.contains("destroyed: it did not shut down in time"), "{s:?}");
    assert!(s.seconds >= 2.0, "the watchdog is STOP_MAXWAIT: {s:?}");
    assert_eq!(report_of(&rs, "eve-app").outcome, "shut down");
    assert!(env.sim.domains().is_empty());
    assert_eq!(env.sim.sysrqs().iter().filter(|(_, k)| *k == 's').count(), 3, "SYSRQ goes to each domain first");
    assert_eq!(env.sim.calls(Op::Save), 0, "no SAVE: shut down, not saved");

    // Nothing comes back on its own while the host is stopping, not even the EVE domain.
    for name in ["polite", "stubborn", "eve-app"] {
        settle(&env, name);
    }
    assert!(env.sim.domains().is_empty());
    assert_eq!(env.status(eve).unwrap().state, SwState::HALTED);

    // Nor when the daemon restarts (by hand, or systemd's Restart=on-failure) before host-start.
    env.stop();
    env.start();
    wait_published(&env, "eve-app");
    settle(&env, "eve-app");
    assert!(env.sim.domains().is_empty(), "host-stop holds across a daemon restart");
    assert!(env.control(&Request::HostStart).ok);
    env.wait_state(eve, SwState::RUNNING);
}

#[test]
fn host_stop_saves_when_save_is_set_and_the_next_boot_restores() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}\nAUTO_ONLY=true", env.save_dir().display()));
    env.write_auto("db", "");
    env.start();
    assert!(env.control(&Request::HostStart).ok);
    let (eve, _) = env.run_domain("eve-app");

    let r = env.control(&Request::HostStop);
    let rs = reports(&r);
    assert!(r.ok, "{rs:#?}");
    assert_eq!(rs.len(), 1, "AUTO_ONLY: only autostart domains: {rs:#?}");
    assert_eq!(report_of(&rs, "db").outcome, format!("saved to {}", env.save_dir().join("db").display()));
    assert_eq!(env.status(eve).unwrap().state, SwState::RUNNING, "AUTO_ONLY leaves the others running");

    // The host reboots.
    env.stop();
    for d in env.sim.domains() {
        env.sim.external_destroy(d.domid);
    }
    env.start();
    let r = env.control(&Request::HostStart);
    assert!(r.ok, "{r:?}");
    assert!(report_of(&reports(&r), "db").outcome.starts_with("restored from"));
    assert_eq!(env.sim.calls(Op::Restore), 1);
}

#[test]
fn host_stop_with_shutdown_all_stops_unmanaged_domains_and_destroy_left_off_leaves_them() {
    let mut env = Env::new();
    env.write_host_config("STOP_MAXWAIT=1\nSHUTDOWN_ALL=true\nDESTROY_LEFT=false\nSYSRQ=s");
    env.start();
    let mut spec = xenctl::DomainSpec::pv("by-hand").kernel("/k");
    spec.uuid = Uuid::new_v4();
    env.sim.external_create(&spec);
    let mut spec = xenctl::DomainSpec::pv("deaf").kernel("/k");
    spec.uuid = Uuid::new_v4();
    env.sim.external_create(&spec);
    env.sim.set_behaviour(spec.uuid, Behaviour { honours_shutdown: false, ..Behaviour::default() });

    let r = env.control(&Request::HostStop);
    let rs = reports(&r);
    assert!(!r.ok, "{rs:#?}");
    assert_eq!(report_of(&rs, "by-hand").outcome, "shut down (unmanaged)");
    let deaf = report_of(&rs, "deaf");
    assert!(!deaf.ok && deaf.outcome.contains("left running"), "{deaf:?}");
    assert_eq!(env.sim.domains().len(), 1);
    assert_eq!(env.sim.sysrqs().len(), 2, "SYSRQ goes to the unmanaged domains too");
}

#[test]
fn an_operator_stop_survives_a_daemon_restart_and_host_start() {
    let mut env = Env::new();
    env.write_host_config("");
    env.write_auto("web", "");
    env.start();
    assert!(env.control(&Request::HostStart).ok);
    let r = env.control(&stop("web"));
    assert!(r.ok, "{r:?}");
    assert!(!running(&env, "web"));

    env.stop();
    env.start();
    wait_published(&env, "web");
    let r = env.control(&Request::HostStart);
    assert!(r.ok, "{r:?}");
    assert_eq!(report_of(&reports(&r), "web").outcome, "left stopped (an operator stopped it)");
    assert!(!running(&env, "web"));
    let status = env.control(&Request::Status { domain: Some("web".into()) });
    assert_eq!(status.exit, 3, "LSB: not running: {status:?}");

    let r = env.control(&Request::Start { domain: "web".into() });
    assert!(r.ok && r.data["outcome"].as_str().unwrap().starts_with("started as domain"), "{r:?}");
    assert!(running(&env, "web"));
    assert_eq!(env.control(&Request::Status { domain: Some("web".into()) }).exit, 0);

    // Started again, it comes back at the next boot.
    env.stop();
    env.sim.external_destroy(env.sim_named("web")[0].domid);
    env.start();
    assert_eq!(
        report_of(&reports(&env.control(&Request::HostStart)), "web").outcome.split(' ').next(),
        Some("started")
    );
}

#[test]
fn operators_stop_start_restart_and_destroy_eve_domains() {
    let mut env = Env::new();
    env.write_host_config("");
    env.start();
    let (uuid, st) = env.run_domain("app");
    let first = st.domain_id;

    let r = env.control(&Request::Restart { domain: "app".into(), timeout_secs: Some(5) });
    assert!(r.ok, "{r:?}");
    let now = env.wait_state(uuid, SwState::RUNNING).domain_id;
    assert_ne!(now, first);

    let r = env.control(&Request::Destroy { domain: uuid.to_string() });
    assert!(r.ok, "{r:?}");
    assert!(env.sim.domains_of(uuid).is_empty());
    // Its config still says Activate=true, but the operator's stop holds.
    settle(&env, "app");
    assert!(env.sim.domains_of(uuid).is_empty());
    assert!(env.paths().state_dir.join("stopped").join(uuid.to_string()).exists());

    let r = env.control(&Request::Start { domain: now.to_string() });
    assert!(!r.ok, "a domid names a running domain only: {r:?}");
    assert_eq!(r.exit, 5, "LSB: not installed (no such domain)");
    let r = env.control(&Request::Start { domain: "app".into() });
    assert!(r.ok, "{r:?}");
    assert!(!env.paths().state_dir.join("stopped").join(uuid.to_string()).exists());
}

#[test]
fn list_shows_every_domain_and_status_uses_lsb_exit_codes() {
    let mut env = Env::new();
    env.write_host_config("");
    env.write_auto("idle", "");
    env.start();
    let (_, _) = env.run_domain("app");
    let mut spec = xenctl::DomainSpec::pv("unmanaged").kernel("/k");
    spec.uuid = Uuid::new_v4();
    env.sim.external_create(&spec);

    let r = env.control(&Request::List);
    let rows: Vec<domainmgrd::supervisor::ListRow> = serde_json::from_value(r.data).unwrap();
    let row = |n: &str| rows.iter().find(|r| r.name == n).unwrap_or_else(|| panic!("no {n}: {rows:#?}")).clone();
    assert_eq!((row("app").managed.as_deref(), row("app").source.as_deref()), (Some("RUNNING"), Some("eve")));
    assert_eq!((row("unmanaged").managed, row("unmanaged").domid.is_some()), (None, true));
    assert_eq!((row("idle").source.as_deref(), row("idle").domid), (Some("auto"), None));

    assert_eq!(env.control(&Request::Status { domain: Some("app".into()) }).exit, 0);
    let app = row("app").uuid.unwrap().to_string();
    assert_eq!(env.control(&Request::Status { domain: Some(app.to_uppercase()) }).exit, 0, "a UUID in any case");
    assert_eq!(env.control(&Request::Status { domain: Some("idle".into()) }).exit, 3);
    let unknown = env.control(&Request::Status { domain: Some("nope".into()) });
    assert_eq!(unknown.exit, 4);
    assert!(unknown.error.unwrap().starts_with("no managed domain is called \"nope\""));
    assert_eq!(env.control(&Request::Status { domain: None }).exit, 0);
}

#[test]
fn create_and_restore_make_transient_domains() {
    let mut env = Env::new();
    env.write_host_config("");
    env.start();
    let file = env.dir.path().join("scratch.cfg");
    std::fs::write(&file, "name = 'scratch'\ntype = 'pv'\nkernel = '/k'\nmemory = 64\n").unwrap();
    let r = env.control(&Request::Create { file: file.clone() });
    assert!(r.ok, "{r:?}");
    assert!(running(&env, "scratch"));

    let image = env.dir.path().join("scratch.save");
    let r = env.control(&Request::Save { domain: "scratch".into(), file: Some(image.clone()) });
    assert!(r.ok, "{r:?}");
    assert!(!running(&env, "scratch"));
    let r = env.control(&Request::Restore { file: image.clone() });
    assert!(r.ok, "{r:?}");
    assert!(running(&env, "scratch"));
    assert!(!image.exists());

    // A transient domain is forgotten once it stops.
    assert!(env.control(&stop("scratch")).ok);
    env.wait_for("the transient domain to be forgotten", || {
        env.control(&Request::Status { domain: Some("scratch".into()) }).exit == 4
    });

    let bad = env.dir.path().join("bad.cfg");
    std::fs::write(&bad, "name = 'bad'\nmemroy = 64\n").unwrap();
    let r = env.control(&Request::Create { file: bad.clone() });
    assert_eq!(r.error.unwrap(), format!("{}:2: memroy: not an xl.cfg key", bad.display()));
    let r = env.control(&Request::Restore { file: file.clone() });
    assert!(r.error.unwrap().contains("an image saved by xl is restored with xl restore"));
}

#[test]
fn a_bad_host_config_stops_host_start_but_host_stop_goes_on_with_the_last_good_settings() {
    let mut env = Env::new();
    env.write_host_config("SYSRQ=s");
    env.write_auto("web", "");
    env.start();
    assert!(env.control(&Request::HostStart).ok);
    let conf = env.dir.path().join("host.conf");
    let good = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("{good}XENDOMAINS_STOP_MAXWAIT=soon\n")).unwrap();

    let r = env.control(&Request::HostStart);
    let err = r.error.clone().unwrap();
    assert!(err.starts_with(&format!("{}:3: XENDOMAINS_STOP_MAXWAIT:", conf.display())), "{err}");
    assert!(err.contains("not a number of seconds") && err.contains("host-start refused"), "{err}");
    assert_eq!(r.exit, 6, "LSB: not configured");

    // At host shutdown a refusal would get every guest killed at poweroff: it goes on.
    let r = env.control(&Request::HostStop);
    let rs = reports(&r);
    assert_eq!((r.ok, r.exit), (false, 1), "{rs:#?}");
    let warning = report_of(&rs, "(settings)");
    assert!(warning.outcome.starts_with(&format!("{}:3: XENDOMAINS_STOP_MAXWAIT:", conf.display())), "{warning:?}");
    assert!(warning.outcome.contains("went on with the settings last read successfully: shut down"), "{warning:?}");
    assert_eq!(report_of(&rs, "web").outcome, "shut down");
    assert!(!running(&env, "web"));
    assert_eq!(env.sim.sysrqs().len(), 1, "the last good settings, SYSRQ included");
    let again = env.control(&Request::HostStop);
    assert!(again.error.as_deref() != Some("a host-start or host-stop is already running"), "{again:?}");
}

#[test]
fn create_and_restore_refuse_a_uuid_that_an_unmanaged_domain_runs_with() {
    let mut env = Env::new();
    env.write_host_config("");
    let uuid = Uuid::new_v4();
    let id = env.sim.external_create(&xenctl::DomainSpec::pv("hand-made").kernel("/k").uuid(uuid));
    env.start();
    let want = format!("domain {id} (hand-made) already runs with the UUID {uuid}; domainmgrd does not manage it");

    let file = env.dir.path().join("same.cfg");
    let xl_config = format!("name = 'same'\nuuid = '{uuid}'\ntype = 'pv'\nkernel = '/k'\nmemory = 64\n");
    std::fs::write(&file, &xl_config).unwrap();
    let r = env.control(&Request::Create { file });
    assert_eq!(r.error.as_deref(), Some(want.as_str()), "{r:?}");

    let image = env.dir.path().join("same.save");
    std::fs::write(&image, "an image").unwrap();
    let record = images::ImageRecord {
        uuid,
        name: "same".into(),
        xl_config,
        libxl_json: None,
        saved_at: chrono::Utc::now(),
        boot_id: None,
        kind: images::ImageKind::Transient,
    };
    images::write_record(&image, &record).unwrap();
    let r = env.control(&Request::Restore { file: image.clone() });
    assert!(r.error.as_deref().is_some_and(|e| e.contains(&want)), "{r:?}");
    assert!(image.exists(), "a refused image is kept");
    assert_eq!(env.sim.domains_of(uuid).len(), 1, "a second domain with the UUID");
    assert_eq!((env.sim.calls(Op::Create), env.sim.calls(Op::Restore)), (0, 0));
}
