//! The domain lifecycle, driven through DomainConfig files against the simulated hypervisor:
//! every transition of domain.rs's state machine and each injected fault. The safety-net poll
//! is off (an hour) except in the tests of the poll itself: events drive everything else.

// Test helpers below fail by panicking, which is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod edge;
mod probe;

use std::time::Instant;

use common::*;
use domainmgrd::eve::SwState;
use domainmgrd::sim::{Behaviour, Fault, Op};
use uuid::Uuid;
use xenctl::{DomId, DomainState};

#[test]
fn config_in_boots_the_domain_and_reports_it_running() {
    let mut env = Env::new();
    env.start();
    let (uuid, st) = env.run_domain("web");

    let doms = env.sim.domains_of(uuid);
    assert_eq!(doms.len(), 1);
    let d = &doms[0];
    assert_eq!(st.domain_id, d.domid.get());
    assert!(d.state.is_live() && d.ever_unpaused);
    assert_eq!(d.vif_offload_disabled, 1, "offloads are disabled on every vif before unpause");
    assert_eq!(st.domain_name, format!("{uuid}.1.{}", st.app_num));
    assert_eq!(d.spec.name, st.domain_name);
    assert_eq!(d.spec.memory_mib, 128);
    assert!(
        d.spec
            .cmdline
            .as_deref()
            .is_some_and(|c| c.starts_with(&format!("console=hvc0 appuuid={uuid} ")) && !c.contains("root="))
    );
    assert_eq!(st.vif_list[0].vif_used, format!("nbu{}", uuid.as_u128() % 1000));
    assert_eq!(st.disk_status_list[0].vdev, "xvda");
    assert!(st.activated && st.boot_time.is_some() && !st.boot_failed);
    assert_eq!((st.tried_count, st.error.error.as_str()), (1, ""));
    assert_eq!(st.state_name, "RUNNING");
    let cfg = std::fs::read_to_string(env.paths().xl_cfg_file(st.app_num)).unwrap();
    assert!(cfg.contains(&format!("uuid = \"{uuid}\"")) && cfg.contains("disk = [ \"format=raw,vdev=xvda"), "{cfg}");
}

#[test]
fn activate_false_is_installed_and_no_domain_is_made() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    env.write_config(&config(uuid, "idle", false));
    let st = env.wait_state(uuid, SwState::INSTALLED);
    assert!(!st.activated);
    assert!(env.sim.domains_of(uuid).is_empty());
    assert_eq!(env.sim.calls(Op::Create), 0);
}

#[test]
fn deactivate_shuts_down_gracefully_then_halted() {
    let mut env = Env::new();
    env.start();
    let (uuid, _) = env.run_domain("web");
    env.write_config(&config(uuid, "web", false));
    let st = env.wait_state(uuid, SwState::HALTED);
    assert_eq!((st.domain_id, st.activated, st.error.error.as_str()), (0, false, ""));
    assert!(env.sim.domains_of(uuid).is_empty());
    assert_eq!(env.sim.calls(Op::Shutdown), 1);
    assert_eq!(env.sim.calls(Op::Destroy), 1, "the shut-down domain is destroyed to release it");
}

#[test]
fn a_guest_ignoring_shutdown_is_destroyed_after_the_timeout() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    env.sim.set_behaviour(uuid, Behaviour { honours_shutdown: false, ..Behaviour::default() });
    env.write_config(&config(uuid, "stubborn", true));
    env.wait_state(uuid, SwState::RUNNING);
    env.write_config(&config(uuid, "stubborn", false));
    env.wait_state(uuid, SwState::HALTING);
    assert_eq!(env.sim.domains_of(uuid).len(), 1, "it gets timer.domain.shutdown to comply");
    env.wait_state(uuid, SwState::HALTED);
    assert!(env.sim.domains_of(uuid).is_empty());
}

#[test]
fn a_guest_without_pv_drivers_gets_the_acpi_power_button() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    env.sim.set_behaviour(uuid, Behaviour { pv_drivers: false, ..Behaviour::default() });
    let mut cfg = config(uuid, "hvm", true);
    cfg["VirtualizationMode"] = 1.into();
    env.write_config(&cfg);
    env.wait_state(uuid, SwState::RUNNING);
    cfg["Activate"] = false.into();
    env.write_config(&cfg);
    env.wait_state(uuid, SwState::HALTED);
    assert_eq!((env.sim.calls(Op::Shutdown), env.sim.calls(Op::PowerButton)), (1, 1));
}

#[test]
fn a_deleted_config_halts_the_domain_and_removes_everything() {
    let mut env = Env::new();
    env.start();
    let (uuid, st) = env.run_domain("web");
    env.delete_config(uuid);
    env.wait_for("the status file to go", || env.status(uuid).is_none());
    assert!(env.sim.domains_of(uuid).is_empty());
    assert!(!env.paths().xl_cfg_file(st.app_num).exists());
    assert!(domainmgrd::records::recorded(&env.paths()).is_empty());
}

#[test]
fn a_failed_create_is_halted_with_the_error_and_retried() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    env.sim.inject(uuid, Fault { op: Op::Create, count: 1 });
    env.write_config(&config(uuid, "flaky", true));
    let st = env.wait_status(uuid, "HALTED with BootFailed", |s| s.state == SwState::HALTED && s.boot_failed);
    assert!(st.error.error.contains("create of domain") && st.error.error.contains("ERROR_FAIL"), "{}", st.error.error);
    assert!(st.error.error_time.is_some());
    assert_eq!(st.error.error_retry_condition, format!("retry in {BOOT_RETRY} s"));
    assert_eq!(st.tried_count, 1);
    assert!(env.sim.domains_of(uuid).is_empty());
    let st = env.wait_state(uuid, SwState::RUNNING);
    assert_eq!((st.tried_count, st.boot_failed, st.error.error.as_str()), (2, false, ""));
}

#[test]
fn a_failure_after_create_destroys_the_domain() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    env.sim.inject(uuid, Fault { op: Op::Unpause, count: 1 });
    env.write_config(&config(uuid, "flaky", true));
    let st = env.wait_status(uuid, "boot failure", |s| s.boot_failed);
    assert!(st.error.error.contains("unpause"), "{}", st.error.error);
    assert!(env.sim.domains_of(uuid).is_empty(), "no half-created domain is left");
    env.wait_state(uuid, SwState::RUNNING);
    assert_eq!(env.sim.domains_of(uuid).len(), 1);
}

#[test]
fn guest_poweroff_is_halted_then_booted_again_after_the_retry_timer() {
    let mut env = Env::new();
    env.start();
    let (uuid, first) = env.run_domain("web");
    env.sim.guest_poweroff(DomId::new(first.domain_id));
    let halted = env.wait_status(uuid, "HALTED and released", |s| s.state == SwState::HALTED && s.domain_id == 0);
    assert_eq!(halted.error.error, "");
    let again =
        env.wait_status(uuid, "running again", |s| s.state == SwState::RUNNING && s.domain_id != first.domain_id);
    assert!(again.domain_id > first.domain_id);
}

#[test]
fn guest_reboot_recreates_it_with_a_new_domid() {
    let mut env = Env::new();
    // A reboot is not a stop: it must not wait for the boot retry timer.
    env.flags.push("timer.boot.retry:3600".into());
    env.start();
    let (uuid, first) = env.run_domain("web");
    env.sim.guest_reboot(DomId::new(first.domain_id));
    let again = env.wait_status(uuid, "rebooted", |s| s.state == SwState::RUNNING && s.domain_id > first.domain_id);
    assert_eq!(env.sim.domains_of(uuid).len(), 1);
    assert_eq!(again.error.error, "");
    assert!(env.sim.info_of(first.domain_id).is_none());
}

#[test]
fn guest_crash_is_halted_with_an_error_and_retried() {
    let mut env = Env::new();
    env.start();
    let (uuid, first) = env.run_domain("web");
    env.sim.guest_crash(DomId::new(first.domain_id));
    let st = env.wait_state(uuid, SwState::HALTED);
    assert_eq!(st.error.error, format!("domain {} crashed", first.domain_id));
    let again = env.wait_state(uuid, SwState::RUNNING);
    assert!(again.domain_id > first.domain_id);
    assert_eq!(again.error.error, "", "a successful boot clears the error");
}

#[test]
fn a_domain_destroyed_outside_the_daemon_is_reported_and_retried() {
    let mut env = Env::new();
    env.start();
    let (uuid, first) = env.run_domain("web");
    env.sim.external_destroy(DomId::new(first.domain_id));
    let st = env.wait_state(uuid, SwState::HALTED);
    assert!(st.error.error.contains("destroyed outside domainmgrd"), "{}", st.error.error);
    env.wait_status(uuid, "running again", |s| s.state == SwState::RUNNING && s.domain_id > first.domain_id);
}

#[test]
fn an_image_whose_real_format_is_not_its_configs_is_not_booted_with_eves_error() {
    let mut env = Env::new();
    let mut options = env.options();
    options.disk_probe = domainmgrd::diskformat::Probe::default();
    env.start_with(options);
    let image = env.dir.path().join("root.img");
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", &image.display().to_string(), "1M"])
        .status()
        .expect("qemu-img (setup.sh installs qemu-utils)");
    assert!(made.success());
    let uuid = Uuid::new_v4();
    let mut cfg = config(uuid, "mismatch", true);
    cfg["DiskConfigList"][0]["FileLocation"] = image.display().to_string().into();
    env.write_config(&cfg);
    let st = env.wait_status(uuid, "boot failure", |s| s.boot_failed);
    assert!(
        st.error.error.starts_with("Disk format mismatch, format in config RAW and output of qemu-img/zfs get QCOW2"),
        "{}",
        st.error.error
    );
    assert_eq!(env.sim.calls(Op::Create), 0);
    // Said as it is, it boots.
    cfg["DiskConfigList"][0]["Format"] = 3.into();
    env.write_config(&cfg);
    let st = env.wait_state(uuid, SwState::RUNNING);
    assert!(!st.boot_failed && st.error.error.is_empty(), "{:?}", st.error);
}

#[test]
fn invalid_values_are_an_error_in_the_status_naming_file_field_and_value() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    let mut cfg = config(uuid, "bad", true);
    cfg["DiskConfigList"][0]["Format"] = 5.into();
    env.write_config(&cfg);
    let st = env.wait_status(uuid, "config failure", |s| s.config_failed);
    let file = env.config_path(uuid);
    assert_eq!(
        st.error.error,
        format!("{}: DiskConfigList[0].Format = 5: VMDK images cannot be given to a Xen guest", file.display())
    );
    assert_eq!(st.state, SwState::INSTALLED);
    assert_eq!(env.sim.calls(Op::Create), 0);
    // Fixing the file clears the error and boots it.
    env.write_config(&config(uuid, "bad", true));
    let st = env.wait_state(uuid, SwState::RUNNING);
    assert!(!st.config_failed && st.error.error.is_empty());
}

#[test]
fn an_unreadable_file_keeps_the_running_domain_and_says_why() {
    let mut env = Env::new();
    env.start();
    let (uuid, first) = env.run_domain("web");
    // A writer that is not atomic, caught half-way (closed after the first part).
    std::fs::write(env.config_path(uuid), b"{\"UUIDandVersion\": {\"UUID\": ").unwrap();
    let st = env.wait_status(uuid, "an error", |s| !s.error.error.is_empty());
    assert!(st.error.error.contains("not a valid DomainConfig"), "{}", st.error.error);
    assert_eq!((st.state, st.domain_id), (SwState::RUNNING, first.domain_id));
    env.write_config(&config(uuid, "web", true));
    let st = env.wait_status(uuid, "the error cleared", |s| s.error.error.is_empty());
    assert_eq!(st.domain_id, first.domain_id, "the same config again does not restart it");
}

#[test]
fn a_file_whose_uuid_does_not_match_its_name_is_refused() {
    let mut env = Env::new();
    env.start();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let cfg = config(b, "liar", true);
    std::fs::create_dir_all(env.paths().domain_config_dir()).unwrap();
    std::fs::write(env.config_path(a), serde_json::to_vec(&cfg).unwrap()).unwrap();
    let st = env.wait_status(a, "an error", |s| !s.error.error.is_empty());
    assert!(st.error.error.contains("does not match the file name"), "{}", st.error.error);
    assert!(env.sim.domains().is_empty());
}

#[test]
fn editor_and_temp_files_are_never_read_and_an_editor_replace_is_not_a_delete() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    let dir = env.paths().domain_config_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for junk in [format!(".{uuid}.json.swp"), format!("{uuid}.json~"), "4913".into(), format!("{uuid}.json.tmp")] {
        std::fs::write(dir.join(junk), b"{ not json").unwrap();
    }
    env.write_config(&config(uuid, "web", true));
    let first = env.wait_state(uuid, SwState::RUNNING);
    assert_eq!(
        std::fs::read_dir(env.paths().domain_status_dir()).unwrap().count(),
        1,
        "only the real config has a status"
    );
    // vim-style save: move the file away, write the new one.
    std::fs::rename(env.config_path(uuid), dir.join(format!("{uuid}.json~"))).unwrap();
    env.write_config(&config(uuid, "web-renamed", true));
    let st = env.wait_status(uuid, "renamed", |s| s.display_name == "web-renamed");
    // The removal was reported before the new file (one queue), so its grace has run out by
    // this deadline; then a round trip makes sure the supervisor settled it.
    let settled_by = Instant::now() + REMOVAL_GRACE;
    env.wait_for("the removal grace to run out", || Instant::now() >= settled_by);
    env.supervisor_round_trip();
    // The domain thread handles its commands in order: a delete would come before this.
    let r = env.start_request(&uuid.to_string());
    assert_eq!(r.data["outcome"], format!("already running as domain {}", first.domain_id), "{r:?}");
    let st2 = env.status(uuid).unwrap();
    assert_eq!((st.domain_id, st2.domain_id, st2.state), (first.domain_id, first.domain_id, SwState::RUNNING));
}

#[test]
fn reactivation_after_halt_resets_the_tries() {
    let mut env = Env::new();
    env.start();
    let (uuid, _) = env.run_domain("web");
    env.write_config(&config(uuid, "web", false));
    env.wait_state(uuid, SwState::HALTED);
    env.write_config(&config(uuid, "web", true));
    let st = env.wait_state(uuid, SwState::RUNNING);
    assert_eq!(st.tried_count, 1);
}

#[test]
fn settings_come_from_a_file_and_flags_win() {
    let mut env = Env::new();
    let file = env.dir.path().join("global.json");
    std::fs::write(
        &file,
        r#"{"GlobalSettings": {"timer.boot.retry": {"IntValue": 3600}, "timer.domain.shutdown": {"IntValue": 9}}}"#,
    )
    .unwrap();
    let mut options = env.options();
    options.settings_file = Some(file.clone());
    options.config_flags = vec!["timer.domain.shutdown:1".into()];
    let daemon = domainmgrd::supervisor::Daemon::start(options.clone(), std::sync::Arc::new(env.sim.client())).unwrap();
    let uuid = Uuid::new_v4();
    env.sim.inject(uuid, Fault { op: Op::Create, count: 1 });
    env.write_config(&config(uuid, "slow-retry", true));
    let st = env.wait_status(uuid, "failed", |s| s.boot_failed);
    assert_eq!(st.error.error_retry_condition, "retry in 3600 s", "the file's retry timer");
    daemon.stop();
    // A bad settings file stops the start with a message naming it.
    std::fs::write(&file, r#"{"timer.boot.retry": "soon"}"#).unwrap();
    let err = domainmgrd::supervisor::Daemon::start(options, std::sync::Arc::new(env.sim.client())).unwrap_err();
    assert!(err.to_string().contains("global.json: timer.boot.retry = \"soon\""), "{err}");
    env.daemon = None;
}

/// The safety-net poll: a pause has no event, so the poll is what notices it.
#[test]
fn paused_domains_from_an_operator_are_reported_paused_by_the_poll() {
    let mut env = Env::new();
    env.flags.push(POLL_FOR_POLL_TESTS.into());
    env.start();
    let (uuid, st) = env.run_domain("web");
    env.sim.operator_pause(DomId::new(st.domain_id));
    env.wait_state(uuid, SwState::PAUSED);
    assert_eq!(env.sim.domains_of(uuid)[0].state, DomainState::Paused);
}

/// The safety-net poll: a poweroff whose events are lost is still noticed.
#[test]
fn a_poweroff_whose_events_are_lost_is_caught_by_the_poll() {
    let mut env = Env::new();
    env.flags.push(POLL_FOR_POLL_TESTS.into());
    env.flags.push("timer.boot.retry:3600".into());
    env.start();
    let (uuid, st) = env.run_domain("web");
    let domid = DomId::new(st.domain_id);
    env.sim.lose_events(domid);
    env.sim.guest_poweroff(domid);
    let st = env.wait_status(uuid, "HALTED and released", |s| s.state == SwState::HALTED && s.domain_id == 0);
    assert!(!st.activated && st.error.error.is_empty(), "{st:#?}");
    assert!(env.sim.info_of(domid.get()).is_none());
}

/// The safety-net poll: a requested shutdown whose events are lost ends without waiting for
/// the shutdown timeout.
#[test]
fn a_requested_shutdown_whose_events_are_lost_is_caught_by_the_poll() {
    let mut env = Env::new();
    env.flags.push(POLL_FOR_POLL_TESTS.into());
    env.flags.push("timer.domain.shutdown:3600".into());
    env.start();
    let (uuid, st) = env.run_domain("web");
    env.sim.lose_events(DomId::new(st.domain_id));
    env.write_config(&config(uuid, "web", false));
    let st = env.wait_status(uuid, "HALTED and released", |s| s.state == SwState::HALTED && s.domain_id == 0);
    assert!(!st.activated && st.error.error.is_empty(), "{st:#?}");
    assert_eq!((env.sim.calls(Op::Shutdown), env.sim.calls(Op::Destroy)), (1, 1));
}

/// The safety-net poll: a domain someone else is destroying is not reported running.
#[test]
fn a_domain_dying_by_someone_elses_hand_is_not_reported_running() {
    let mut env = Env::new();
    env.flags.push(POLL_FOR_POLL_TESTS.into());
    env.start();
    let uuid = Uuid::new_v4();
    // It lingers, dying, with no death event, until Xen lets go of it.
    env.sim.set_behaviour(uuid, Behaviour { stuck_dying: true, ..Behaviour::default() });
    env.write_config(&config(uuid, "web", true));
    let first = env.wait_state(uuid, SwState::RUNNING);
    env.sim.external_destroy(DomId::new(first.domain_id));
    let st = env.wait_status(uuid, "the outside destroy noticed", |s| s.error.is_set());
    assert!(st.error.error.contains("destroyed outside domainmgrd"), "{}", st.error.error);
    assert_ne!(st.state, SwState::RUNNING, "{st:#?}");
    env.sim.set_behaviour(uuid, Behaviour::default());
    env.wait_status(uuid, "running again", |s| s.state == SwState::RUNNING && s.domain_id > first.domain_id);
}

#[test]
fn a_config_that_becomes_invalid_leaves_the_running_domain_alone_until_activate_false() {
    let mut env = Env::new();
    env.start();
    let (uuid, first) = env.run_domain("web");
    let mut bad = config(uuid, "web", true);
    bad["DiskConfigList"][0]["Format"] = 5.into();
    env.write_config(&bad);
    let st = env.wait_status(uuid, "the config error", |s| s.config_failed);
    assert!(st.error.error.contains("DiskConfigList[0].Format = 5"), "{}", st.error.error);
    assert_eq!((st.state, st.domain_id, st.activated), (SwState::RUNNING, first.domain_id, true));
    // An explicit Activate=false halts it, invalid or not.
    bad["Activate"] = false.into();
    env.write_config(&bad);
    env.wait_status(uuid, "HALTED", |s| s.state == SwState::HALTED && s.domain_id == 0);
    assert!(env.sim.domains_of(uuid).is_empty());
    assert_eq!((env.sim.calls(Op::Shutdown), env.sim.calls(Op::Create)), (1, 1));
}

#[test]
fn the_generated_xl_config_is_what_libxl_was_asked_for_reserved_devices_included() {
    let mut env = Env::new();
    // One NIC for guests, in the simulator and the adapter list; nim has named dom0's ports
    // (eth0), without which no adapter moves.
    env.sim.add_pci_device(edge::bdf(edge::ETH1));
    edge::set_list(&env, &[edge::adapter(1, "eth1", edge::ETH1, "eth1", "eth1")]);
    edge::set_ports(&env, &["eth0"]);
    env.start();
    let uuid = Uuid::new_v4();
    env.write_config(&edge::domain_with_adapters(uuid, "router", &[(1, "eth1")]));
    let st = env.wait_state(uuid, SwState::RUNNING);
    let asked = env.sim.info_of(st.domain_id).unwrap().spec;
    assert_eq!(asked.pcis.len(), 1);
    let written = std::fs::read_to_string(env.paths().xl_cfg_file(st.app_num)).unwrap();
    let body: String = written.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    assert_eq!(body, asked.to_xl_config().unwrap(), "{written}");
    assert!(written.contains("pci = [ \"0000:00:03.0"), "{written}");
}

/// CPU ticks (user + system) the named thread of this process has used.
fn thread_ticks(comm: &str) -> u64 {
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if std::fs::read_to_string(task.path().join("comm")).unwrap_or_default().trim() != comm {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap();
        // Fields after the parenthesised name: state is the 3rd field, utime the 14th, stime the 15th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        return fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    panic!("no thread called {comm}");
}

/// A domain whose boot failed, then stopped by an operator while its retry is pending, waits
/// quietly: once the retry time has passed it must not wake its thread again and again (it
/// once spun a core until something else woke it).
#[test]
fn a_stopped_domain_whose_retry_time_passed_does_not_spin() {
    let mut env = Env::new();
    env.start();
    let uuid = Uuid::new_v4();
    env.sim.inject(uuid, Fault { op: Op::Create, count: 1000 });
    env.write_config(&config(uuid, "flaky", true));
    env.wait_status(uuid, "HALTED with BootFailed", |s| s.state == SwState::HALTED && s.boot_failed);
    let r =
        env.control(&domainmgrd::control::Request::Stop { domain: "flaky".into(), force: false, timeout_secs: None });
    assert!(r.ok, "{r:?}");
    let creates = env.sim.calls(Op::Create);
    // Past the pending retry (BOOT_RETRY), then a second of the thread's CPU time.
    std::thread::sleep(std::time::Duration::from_millis(BOOT_RETRY * 1000 + 500));
    let comm = format!("domain-{}", &uuid.to_string()[..8]);
    let before = thread_ticks(&comm);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let used = thread_ticks(&comm) - before;
    assert!(used < 20, "the stopped domain's thread used {used} of 100 ticks in a second: it spins");
    assert_eq!(env.sim.calls(Op::Create), creates, "a stopped domain was booted again");
}
