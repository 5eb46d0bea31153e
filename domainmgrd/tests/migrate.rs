//! Migration between two daemons, each on its own simulated host, joined as on real hosts by
//! the transport command (`domainctl migrate-receive` of the target, here run without ssh:
//! `-s ''`): which copy runs after success and after every failure, how the target manages
//! what arrives (same source of config), and what both statuses say.

mod common;

use common::Env;
use domainmgrd::control::Request;
use domainmgrd::eve::SwState;
use domainmgrd::sim::{Fault, Op};
use uuid::Uuid;

/// The transport that reaches `target`'s daemon.
fn to(target: &Env, args: &str) -> String {
    format!(
        "{} --socket {} migrate-receive {args}",
        env!("CARGO_BIN_EXE_domainctl"),
        target.paths().run_dir.join("domainmgrd.sock").display()
    )
}

fn migrate(source: &Env, name: &str, host: String) -> domainmgrd::control::Response {
    source.control(&Request::Migrate {
        domain: name.into(),
        host,
        ssh: Some(String::new()),
        live: true,
        timeout_secs: None,
    })
}

fn live(state: xenctl::DomainState) -> bool {
    matches!(state, xenctl::DomainState::Running | xenctl::DomainState::Blocked)
}

/// How many copies of the domain run (not suspended, shut down or dying) on `env`'s host.
fn running(env: &Env, uuid: Uuid) -> usize {
    env.sim.domains_of(uuid).iter().filter(|d| live(d.state)).count()
}

#[test]
fn an_autostart_domain_moves_to_a_host_with_its_file_and_stays_stopped_here() {
    let mut a = Env::new();
    let (uuid, _, _) = a.started_autostart_domain("web", "");
    let mut b = Env::new();
    b.write_host_config("");
    b.write_auto("web", &format!("uuid = \"{uuid}\""));
    b.start();
    b.wait_state(uuid, SwState::INSTALLED);

    let r = migrate(&a, "web", to(&b, "--source auto"));
    assert!(r.ok, "{r:?}");
    assert!(r.data["outcome"].as_str().unwrap().starts_with("migrated to"), "{r:?}");

    let there = b.wait_state(uuid, SwState::RUNNING);
    let m = there.migration.expect("the target's status says it came in");
    assert_eq!((m.direction.as_str(), m.state.as_str()), ("in", "received"));
    assert_eq!(running(&b, uuid), 1);
    // Managed there by its autostart file.
    let list = b.control(&Request::List);
    let row = list.data.as_array().unwrap().iter().find(|r| r["name"] == "web").unwrap().clone();
    assert_eq!(row["source"], "auto", "{row}");

    let here = a.wait_state(uuid, SwState::HALTED);
    let m = here.migration.expect("the source's status says where it went");
    assert_eq!((m.direction.as_str(), m.state.as_str()), ("out", "migrated"));
    assert!(a.sim.domains_of(uuid).is_empty(), "the source's copy is destroyed");
    // Not booted here again, by a restart of the daemon either.
    a.stop();
    a.start();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(a.sim.domains_of(uuid).is_empty());
    let st = a.wait_status(uuid, "its status after the restart", |s| s.migration.is_some());
    assert_ne!(st.state, SwState::RUNNING);
    assert_eq!(st.migration.unwrap().state, "migrated");

    // And back: it runs on A again, and B keeps it stopped.
    let r = migrate(&b, "web", to(&a, "--source auto"));
    assert!(r.ok, "{r:?}");
    a.wait_state(uuid, SwState::RUNNING);
    b.wait_state(uuid, SwState::HALTED);
    assert_eq!((running(&a, uuid), b.sim.domains_of(uuid).len()), (1, 0));
}

#[test]
fn a_domain_without_a_config_there_arrives_transient_and_an_eve_app_without_one_is_refused() {
    let mut a = Env::new();
    let (web, _, _) = a.started_autostart_domain("web", "");
    let (app, _) = a.run_domain("eve-app");
    let mut b = Env::new();
    b.start();

    // An EVE app needs its config on the target: refused, and it runs here as before.
    let r = migrate(&a, "eve-app", to(&b, "--source eve"));
    assert!(!r.ok, "{r:?}");
    let e = r.error.unwrap();
    assert!(e.contains("no EVE config of app"), "{e}");
    let st = a.wait_status(app, "the failure in its status", |s| {
        s.migration.as_ref().is_some_and(|m| m.state != "migrating")
    });
    assert_eq!((st.state, st.migration.unwrap().state.as_str()), (SwState::RUNNING, "failed"));
    assert_eq!(running(&a, app), 1, "resumed here");
    assert!(b.sim.domains_of(app).is_empty());

    // An autostart domain whose file the target lacks arrives transient.
    let r = migrate(&a, "web", to(&b, "--source auto"));
    assert!(r.ok, "{r:?}");
    b.wait_state(web, SwState::RUNNING);
    let list = b.control(&Request::List);
    let row = list.data.as_array().unwrap().iter().find(|r| r["name"] == "web").unwrap().clone();
    assert_eq!(row["source"], "transient", "{row}");
    // Its config is the one that came with it: a reboot there creates it again from it.
    let d = &b.sim.domains_of(web)[0];
    assert!(d.spec.libxl_json.is_some());
    b.sim.guest_reboot(d.domid);
    b.wait_for("the rebooted guest to run again", || {
        b.sim.domains_of(web).iter().any(|x| x.domid != d.domid && live(x.state))
    });

    // Host-stop with SAVE there saves it with that config (it has no xl.cfg form), and
    // host-start restores it from the image, transient again.
    b.write_host_config(&format!("SAVE={}", b.save_dir().display()));
    let r = b.control(&Request::HostStop);
    assert!(r.ok, "{r:?}");
    assert!(r.data.to_string().contains("saved"), "{r:?}");
    let record = domainmgrd::images::read_record(&b.save_dir().join("web")).unwrap();
    assert!(record.libxl_json.is_some() && record.xl_config.is_empty(), "{record:?}");
    assert!(b.sim.domains_of(web).is_empty());
    let restores = b.sim.calls(Op::Restore);
    let r = b.control(&Request::HostStart);
    assert!(r.ok, "{r:?}");
    b.wait_state(web, SwState::RUNNING);
    assert_eq!((b.sim.calls(Op::Restore) - restores, running(&b, web)), (1, 1));
}

#[test]
fn failed_migrations_leave_the_guest_running_here() {
    let mut a = Env::new();
    let (uuid, _, _) = a.started_autostart_domain("web", "");
    let domid = a.sim.domains_of(uuid)[0].domid;

    // An unreachable host: the transport fails before a byte.
    let r = migrate(&a, "web", "echo 'ssh: connect to host fe80::9 port 22: No route to host' >&2; exit 255".into());
    assert!(!r.ok, "{r:?}");
    let e = r.error.unwrap();
    assert!(e.contains("No route to host") && e.contains("255"), "{e}");
    assert_eq!(a.wait_state(uuid, SwState::RUNNING).domain_id, domid.get());

    // A target whose daemon does not run.
    let r = migrate(
        &a,
        "web",
        format!("{} --socket /nonexistent/domainmgrd.sock migrate-receive", env!("CARGO_BIN_EXE_domainctl")),
    );
    assert!(!r.ok, "{r:?}");
    assert!(r.error.unwrap().contains("migration socket"));

    // A target that runs it already.
    let mut b = Env::new();
    b.start();
    b.sim.external_create(&a.sim.domains_of(uuid)[0].spec);
    let r = migrate(&a, "web", to(&b, ""));
    assert!(!r.ok, "{r:?}");
    assert!(r.error.unwrap().contains("runs here already"));

    // The hypervisor's send fails.
    a.sim.inject(uuid, Fault { op: Op::Migrate, count: 1 });
    let mut c = Env::new();
    c.start();
    let r = migrate(&a, "web", to(&c, ""));
    assert!(!r.ok, "{r:?}");

    // Each time the same domain runs on, never suspended or restarted; its suspends for the
    // migrations were not taken for someone else's save.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let st = a.wait_state(uuid, SwState::RUNNING);
    assert_eq!(st.domain_id, domid.get());
    assert_eq!(a.sim.domains_of(uuid).len(), 1);
    assert_eq!(running(&a, uuid), 1);
    assert!(c.sim.domains_of(uuid).is_empty());
}

#[test]
fn a_migration_that_overruns_its_timeout_is_cut_short_and_the_guest_runs_here() {
    let mut a = Env::new();
    let (uuid, _, _) = a.started_autostart_domain("web", "");
    // A "receiver" that never answers.
    let r = a.control(&Request::Migrate {
        domain: "web".into(),
        host: "sleep 60".into(),
        ssh: Some(String::new()),
        live: false,
        timeout_secs: Some(1),
    });
    assert!(!r.ok, "{r:?}");
    assert!(r.error.unwrap().contains("time ran out"));
    assert_eq!(running(&a, uuid), 1);
    a.wait_state(uuid, SwState::RUNNING);
}

#[test]
fn host_stop_with_migrate_moves_every_domain_and_shuts_down_what_cannot_go() {
    let mut b = Env::new();
    b.start();
    let mut a = Env::new();
    let db = Uuid::new_v4();
    a.write_auto("db", &format!("uuid = \"{db}\""));
    let (web, _, _) = a.started_autostart_domain("web", "");
    assert!(a.start_request("db").ok);
    a.wait_state(db, SwState::RUNNING);
    let (app, _) = a.run_domain("eve-app");
    // ssh as the daemon runs it: `SSH HOST domainctl migrate-receive ARGS`; here it reaches
    // B's socket without a network.
    let ssh = a.dir.path().join("fake-ssh");
    domainmgrd::testing::write_script(
        &ssh,
        &format!(
            "#!/bin/sh\n[ \"$1\" = hostb ] || {{ echo \"ssh: Could not resolve hostname $1\" >&2; exit 255; }}\nshift 2\nexec {} --socket {} \"$@\"\n",
            env!("CARGO_BIN_EXE_domainctl"),
            b.paths().run_dir.join("domainmgrd.sock").display()
        ),
    );
    a.write_host_config(&format!("MIGRATE=hostb\nMIGRATE_SSH={}\nSTOP_MAXWAIT=20", ssh.display()));
    let r = a.control(&Request::HostStop);
    let reports = r.data.as_array().unwrap();
    let outcome = |name: &str| {
        let rep = reports.iter().find(|x| x["name"] == name).unwrap_or_else(|| panic!("{name} in {r:?}"));
        (rep["ok"].as_bool().unwrap(), rep["outcome"].as_str().unwrap().to_string())
    };
    assert_eq!(outcome("web"), (true, "migrated to hostb".into()));
    assert_eq!(outcome("db"), (true, "migrated to hostb".into()));
    // The EVE app has no config on B: shut down here, and the report says why.
    let (ok, text) = outcome("eve-app");
    assert!(ok && text.starts_with("shut down (not migrated to hostb:") && text.contains("no EVE config"), "{text}");
    assert!(a.sim.domains().is_empty(), "the source is empty: {:?}", a.sim.domains());
    assert_eq!((running(&b, web), running(&b, db), running(&b, app)), (1, 1, 0));

    // An unreachable MIGRATE host: the domains are shut down as without it.
    a.control(&Request::HostStart);
    let mut c = Env::new();
    let (x, _, _) = c.started_autostart_domain("x", "");
    c.write_host_config(&format!("MIGRATE=nowhere\nMIGRATE_SSH={}\nSTOP_MAXWAIT=20", ssh.display()));
    let r = c.control(&Request::HostStop);
    let rep = r.data.as_array().unwrap()[0].clone();
    let text = rep["outcome"].as_str().unwrap();
    assert!(text.starts_with("shut down (not migrated to nowhere:") && text.contains("Could not resolve"), "{text}");
    assert!(c.sim.domains_of(x).is_empty());
}

#[test]
fn a_daemon_killed_mid_migration_leaves_a_guest_that_the_next_one_resumes() {
    let mut a = Env::new();
    let (uuid, _, _) = a.started_autostart_domain("web", "");
    let domid = a.sim.domains_of(uuid)[0].domid;
    a.sim.kill_client_at(a.sim.client_id(), Op::Migrate, 1, domainmgrd::sim::KillMoment::Middle);
    let socket = a.paths().run_dir.join("domainmgrd.sock");
    // Its answer never comes: the daemon dies with the guest suspended for the transfer.
    std::thread::spawn(move || {
        let request = Request::Migrate {
            domain: "web".into(),
            host: "sleep 5".into(),
            ssh: Some(String::new()),
            live: true,
            timeout_secs: None,
        };
        let _ = domainmgrd::control::call(&socket, &request);
    });
    a.wait_for("the guest to be suspended for the migration", || {
        a.sim.domains_of(uuid).iter().any(|d| d.state == xenctl::DomainState::Shutdown(xenctl::ShutdownReason::Suspend))
    });
    a.kill();
    a.start();
    let st = a.wait_status(uuid, "the migration's end in its status", |s| {
        s.migration.as_ref().is_some_and(|m| m.state == "failed")
    });
    assert_eq!((st.state, st.domain_id), (SwState::RUNNING, domid.get()));
    assert_eq!(running(&a, uuid), 1, "resumed: {:?}", a.sim.domains_of(uuid));
}

#[test]
fn a_domain_that_comes_back_to_a_host_it_left_runs_there_again() {
    let mut a = Env::new();
    let (web, _, _) = a.started_autostart_domain("web", "");
    let mut b = Env::new();
    b.start();
    // There (transient on B), back (adopted by its file on A), and there again: B's record that
    // it left (stopped as by an operator) must not stop it when it comes back.
    for (from, target, source) in [(&a, &b, "--source auto"), (&b, &a, "--source transient"), (&a, &b, "--source auto")]
    {
        let r = migrate(from, "web", to(target, source));
        assert!(r.ok, "{r:?}");
        target.wait_state(web, SwState::RUNNING);
        // A transient domain that left is forgotten (its thread ends) before it can come back.
        from.wait_for("the source to be done with it", || {
            let list = from.control(&Request::List);
            list.data.as_array().unwrap().iter().all(|r| r["name"] != "web" || r["source"] != "transient")
        });
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!((running(&b, web), b.sim.calls(Op::Shutdown)), (1, 0), "it runs on B, not shut down");
}
