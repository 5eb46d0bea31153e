//! Inputs that must not confuse the daemon, on the simulated hypervisor: another spelling of a
//! config's UUID, durations too long to add to a clock, a domain thread that fails during
//! host-stop, names that are not file names, two domains that claim one xl config file, a VNC
//! password, and a restored domain's name. Each of these once stopped a guest, panicked a
//! thread, made a report lie or wrote where it should not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod host_support;

use std::os::unix::fs::PermissionsExt;

use common::*;
use domainmgrd::control::{Request, exit};
use domainmgrd::eve::SwState;
use domainmgrd::images;
use domainmgrd::sim::Op;
use host_support::{in_background, report_of, reports, running};
use uuid::Uuid;
use xenctl::DomainSpec;

#[test]
fn another_spelling_of_a_configs_uuid_is_not_a_second_domain() {
    let mut env = Env::new();
    env.start();
    let (uuid, st) = env.run_domain("web");
    let bytes = std::fs::read(env.config_path(uuid)).unwrap();
    let dir = env.paths().domain_config_dir();
    let aliases = [
        format!("{}.json", uuid.to_string().to_uppercase()),
        format!("{{{uuid}}}.json"),
        format!("urn:uuid:{uuid}.json"),
        format!("{}.json", uuid.simple()),
    ];
    for alias in &aliases {
        std::fs::write(dir.join(alias), &bytes).unwrap();
    }
    env.supervisor_round_trip();
    let list = env.control(&Request::List);
    let rows = list.data.as_array().unwrap().iter().filter(|r| r["uuid"] == uuid.to_string()).count();
    assert_eq!(rows, 1, "one domain, one thread: {list:?}");
    // Removing the aliases removes nothing.
    for alias in &aliases {
        std::fs::remove_file(dir.join(alias)).unwrap();
    }
    std::thread::sleep(REMOVAL_GRACE * 2);
    env.supervisor_round_trip();
    assert_eq!(env.status(uuid).map(|s| (s.state, s.domain_id)), Some((SwState::RUNNING, st.domain_id)));
    assert_eq!((env.sim.calls(Op::Shutdown), env.sim.calls(Op::Destroy)), (0, 0));
}

#[test]
fn a_timeout_too_long_for_the_clock_is_refused_and_panics_no_thread() {
    let mut env = Env::new();
    env.start();
    let (uuid, _) = env.run_domain("web");
    for request in [
        Request::Stop { domain: "web".into(), force: false, timeout_secs: Some(u64::MAX) },
        Request::Restart { domain: "web".into(), timeout_secs: Some(u64::MAX) },
    ] {
        let answer = in_background(&env, request);
        env.wait_for("the answer", || answer.is_finished());
        let r = answer.join().unwrap();
        assert_eq!(r.exit, exit::USAGE, "{r:?}");
        assert!(r.error.unwrap().contains("between 1 second and a year"));
    }
    let st = env.status(uuid).unwrap();
    assert_eq!(st.state, SwState::RUNNING, "{st:#?}");
    assert!(st.error.error.is_empty(), "no internal error: {st:#?}");
}

#[test]
fn host_stop_reports_a_domain_whose_thread_failed_and_a_settings_file_it_cannot_use() {
    let mut env = Env::new();
    env.write_host_config("STOP_MAXWAIT=20");
    env.start();
    let (a, _) = env.run_domain("a");
    let (b, _) = env.run_domain("b");
    // A duration no clock can add: refused with the file, line and key; host-stop goes on with
    // the settings it last read.
    env.write_host_config("STOP_MAXWAIT=18446744073709551615");
    // b's thread fails when host-stop asks its guest to shut down.
    env.sim.inject_panic(b, Op::Shutdown);

    let r = env.control(&Request::HostStop);
    let rs = reports(&r);
    assert!(!r.ok && r.exit == 1, "{rs:#?}");
    let settings = report_of(&rs, "(settings)");
    assert!(settings.outcome.contains("STOP_MAXWAIT: must be between 1 second and a year"), "{settings:?}");
    assert!(settings.outcome.contains("STOP_MAXWAIT=20"), "it says which settings it used: {settings:?}");
    assert!(report_of(&rs, "a").ok, "{rs:#?}");
    let failed = report_of(&rs, "b");
    assert!(!failed.ok && failed.outcome.contains("gave no report"), "{failed:?}");
    assert!(env.sim.domains_of(a).is_empty(), "a was shut down");
}

#[test]
fn names_that_are_not_file_names_never_become_paths() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}", env.save_dir().display()));
    // A domain some other tool created with a name that is a path, whose UUID an EVE config
    // names: adopted as it is.
    let uuid = Uuid::new_v4();
    env.write_config(&config(uuid, "odd", true));
    let spec = DomainSpec::pv("../escape").uuid(uuid).kernel("/k");
    let domid = env.sim.external_create(&spec);
    env.start();
    assert_eq!(env.wait_state(uuid, SwState::RUNNING).domain_id, domid.get());

    let r = env.control(&Request::HostStop);
    let rs = reports(&r);
    assert!(r.ok, "{rs:#?}");
    let saved = env.save_dir().join(uuid.to_string());
    assert_eq!(report_of(&rs, "odd").outcome, format!("saved to {}", saved.display()));
    assert!(saved.exists() && !env.dir.path().join("escape").exists());

    // `.` and `..` are no domain names.
    for name in [".", ".."] {
        let file = env.dir.path().join("dots.cfg");
        std::fs::write(&file, format!("name = '{name}'\ntype = 'pv'\nkernel = '/k'\n")).unwrap();
        let r = env.control(&Request::Create { file });
        assert!(r.error.as_deref().unwrap_or("").contains("'.' or '..'"), "{r:?}");
    }
}

#[test]
fn two_domains_never_share_an_xl_config_file() {
    let mut env = Env::new();
    env.write_host_config("");
    env.start();
    // Two EVE configs with one AppNum (zedmanager would not, but a file can say anything).
    let (one, two) = (Uuid::new_v4(), Uuid::new_v4());
    for (u, name) in [(one, "one"), (two, "two")] {
        let mut c = config(u, name, true);
        c["AppNum"] = 7.into();
        env.write_config(&c);
        env.wait_state(u, SwState::RUNNING);
    }
    // And two autostart domains.
    env.write_auto("a1", "");
    env.write_auto("a2", "");
    for name in ["a1", "a2"] {
        env.wait_for("the file to be read", || env.start_request(name).ok);
    }
    let xen = env.paths().status_dir.join("xen");
    let files = |env: &Env| {
        let mut names: Vec<String> =
            std::fs::read_dir(&xen).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        let _ = env;
        names
    };
    let all = files(&env);
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(all.contains(&"xen7.cfg".to_string()) && all.contains(&"a1.cfg".to_string()), "{all:?}");
    // One domain going takes only its own file.
    env.delete_config(one);
    env.wait_for("one to be gone", || env.status(one).is_none());
    let left = files(&env);
    assert_eq!(left.len(), 3, "{left:?}");
    let two_cfg = std::fs::read_to_string(
        left.iter().map(|n| xen.join(n)).find(|p| p.to_string_lossy().contains("xen7")).unwrap(),
    )
    .unwrap();
    assert!(two_cfg.contains(&two.to_string()), "two's file stayed: {two_cfg}");
}

#[test]
fn the_vnc_password_stays_out_of_world_readable_files() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}", env.save_dir().display()));
    env.start();
    let uuid = Uuid::new_v4();
    let mut c = config(uuid, "desk", true);
    c["EnableVnc"] = true.into();
    c["VncPasswd"] = "s3cret-pw".into();
    env.write_config(&c);
    let st = env.wait_state(uuid, SwState::RUNNING);
    let status = std::fs::read_to_string(env.paths().status_file(&uuid.to_string())).unwrap();
    assert!(!status.contains("s3cret-pw"), "{status}");
    let cfg = env.paths().status_dir.join(format!("xen/xen{}.cfg", st.app_num));
    assert!(std::fs::read_to_string(&cfg).unwrap().contains("s3cret-pw"), "libxl is asked for it");
    assert_eq!(std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o077, 0, "the xl config is private");

    let r = env.control(&Request::Save { domain: "desk".into(), file: None });
    assert!(r.ok, "{r:?}");
    let image = env.save_dir().join(&st.domain_name);
    let record = images::record_path(&image);
    assert!(std::fs::read_to_string(&record).unwrap().contains("s3cret-pw"));
    assert_eq!(std::fs::metadata(&record).unwrap().permissions().mode() & 0o077, 0, "the record is private");
}

#[test]
fn a_restored_domain_keeps_its_name_for_its_next_save() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}", env.save_dir().display()));
    env.write_auto("web", "");
    env.start();
    assert!(env.control(&Request::HostStart).ok);
    let image = env.save_dir().join("web");
    for round in 0..2 {
        // Saved at host-stop, restored at host-start by a daemon that never booted it.
        let r = env.control(&Request::HostStop);
        assert_eq!(report_of(&reports(&r), "web").outcome, format!("saved to {}", image.display()), "round {round}");
        env.stop();
        env.start();
        let r = env.control(&Request::HostStart);
        assert!(report_of(&reports(&r), "web").outcome.starts_with("restored from"), "round {round}: {r:?}");
        assert!(running(&env, "web") && !image.exists());
    }
    let r = env.control(&Request::Save { domain: "web".into(), file: None });
    assert_eq!(r.data["outcome"].as_str(), Some(format!("saved to {}", image.display()).as_str()), "{r:?}");
}

#[test]
fn a_save_the_watchdog_cuts_short_leaves_no_image_and_no_record() {
    let mut env = Env::new();
    env.write_host_config(&format!("SAVE={}\nSTOP_MAXWAIT=1", env.save_dir().display()));
    env.start();
    let (uuid, _) = env.run_domain("app");
    env.sim.hold(Op::Save);
    let r = env.control(&Request::HostStop);
    let app = report_of(&reports(&r), "app").clone();
    assert!(!app.ok && app.outcome.ends_with("not saved"), "{app:?}");
    env.sim.open(Op::Save);
    assert!(env.sim.domains_of(uuid).is_empty(), "destroyed");
    let left: Vec<_> = std::fs::read_dir(env.save_dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "nothing in SAVE: {left:?}");
}
