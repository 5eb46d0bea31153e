//! The `domainctl` binary against a daemon on the simulated hypervisor: its output for people
//! and for scripts, its exit codes, its errors, and the dry run that needs neither daemon nor Xen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use common::Env;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn domainctl(socket: &Path, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_domainctl")).arg("--socket").arg(socket).args(args).output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn socket(env: &Env) -> std::path::PathBuf {
    env.paths().run_dir.join("domainmgrd.sock")
}

#[test]
fn list_status_stop_start_with_tables_json_and_lsb_exit_codes() {
    let mut env = Env::new();
    env.write_host_config("");
    env.write_auto("web", "");
    env.start();
    let s = socket(&env);

    let o = domainctl(&s, &["host-start"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.starts_with("web ") && o.stdout.contains(" ok ") && o.stdout.contains("started as domain"));

    let o = domainctl(&s, &["list"]);
    assert_eq!(o.code, 0);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].starts_with("Name") && lines[0].ends_with("Managed   Source"), "{}", o.stdout);
    let web = lines.iter().find(|l| l.starts_with("web ")).unwrap();
    assert!(web.contains("RUNNING") && web.ends_with("auto"), "{web}");

    let o = domainctl(&s, &["--json", "list"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(rows.iter().map(|r| r["name"].as_str().unwrap()).collect::<Vec<_>>(), ["Domain-0", "web"]);
    assert_eq!((&rows[0]["managed"], &rows[1]["managed"]), (&serde_json::Value::Null, &serde_json::json!("RUNNING")));

    assert_eq!(domainctl(&s, &["status", "web"]).code, 0);
    let o = domainctl(&s, &["stop", "web", "--timeout", "5"]);
    assert_eq!((o.code, o.stdout.split(" (").next()), (0, Some("web: stopped")), "{}", o.stderr);
    let o = domainctl(&s, &["status", "web"]);
    assert_eq!(o.code, 3, "LSB: not running");
    assert!(o.stdout.starts_with("web: HALTED"), "{}", o.stdout);
    assert_eq!(domainctl(&s, &["status"]).code, 3, "nothing runs");

    let o = domainctl(&s, &["start", "nosuch"]);
    assert_eq!(o.code, 5);
    assert!(o.stderr.starts_with("domainctl: no managed domain is called \"nosuch\""), "{}", o.stderr);
    let o = domainctl(&s, &["--json", "start", "nosuch"]);
    let err: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(err["exit"], 5);

    assert_eq!(domainctl(&s, &["start", "web"]).code, 0);
    assert_eq!(domainctl(&s, &["status", "web"]).code, 0);
}

#[test]
fn exit_statuses_follow_the_lsb_table_in_help() {
    let mut env = Env::new();
    env.write_host_config("");
    env.write_auto("web", "");
    env.start();
    let s = socket(&env);
    let code = |args: &[&str]| domainctl(&s, args).code;

    // status: 0 running, 3 not running, 4 unknown.
    assert_eq!(code(&["status", "web"]), 3);
    assert_eq!(code(&["status"]), 3);
    assert_eq!(code(&["status", "nosuch"]), 4);
    assert_eq!(code(&["host-start"]), 0);
    assert_eq!(code(&["status", "web"]), 0);
    // Actions: 0 done, also when there was nothing to do.
    assert_eq!(code(&["start", "web"]), 0, "starting what runs");
    assert_eq!(code(&["stop", "web"]), 0);
    assert_eq!(code(&["stop", "web"]), 0, "stopping what is stopped");
    // 1 failed, 2 usage, 5 no such domain, 6 not configured.
    let not_an_image = env.dir.path().join("host.conf");
    assert_eq!(code(&["restore", not_an_image.to_str().unwrap()]), 1);
    assert_eq!(code(&["restart", "web"]), 1, "restarting what does not run");
    assert_eq!(code(&["stop", "--timeout", "soon", "web"]), 2);
    for action in ["start", "stop", "destroy", "restart", "save", "console"] {
        assert_eq!(code(&[action, "nosuch"]), 5, "{action}");
    }
    std::fs::write(&not_an_image, "MIGRATE='elsewhere; reboot'\n").unwrap();
    assert_eq!(code(&["host-start"]), 6);
    // 4 not root: a_user_other_than_root_is_refused; 7: without_the_daemon_it_says_so_and_exits_7.

    let help = domainctl(&s, &["--help"]).stdout;
    for line in [
        "status     0 running; 3 not running (without a NAME: none runs); 4 unknown (no such",
        "4 not root; 5 no such managed domain; 6 the host settings file is invalid",
        "(host-start); 7 domainmgrd is not running",
    ] {
        assert!(help.contains(line), "{line:?} missing from:\n{help}");
    }
}

#[test]
fn without_the_daemon_it_says_so_and_exits_7() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("nobody.sock");
    let o = domainctl(&s, &["list"]);
    assert_eq!(o.code, 7);
    assert!(o.stderr.starts_with("domainctl: domainmgrd is not running"), "{}", o.stderr);
    assert_eq!(domainctl(&s, &["status", "web"]).code, 4, "LSB: status unknown");
    assert_eq!(domainctl(&s, &["frobnicate"]).code, 2, "bad usage");
}

#[test]
fn a_user_other_than_root_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: cannot run domainctl as another user; skipped");
        return;
    }
    let mut env = Env::new();
    env.write_host_config("");
    env.start();
    // The socket is 0600, and the peer check holds even if the mode were opened up.
    let s = socket(&env);
    std::fs::set_permissions(&s, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut dir = s.parent().unwrap().to_path_buf();
    while dir.parent().is_some() {
        let mode = std::fs::metadata(&dir).unwrap().permissions();
        let bits = std::os::unix::fs::PermissionsExt::mode(&mode) | 0o005;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(bits)).unwrap();
        if dir == env.dir.path() {
            break;
        }
        dir = dir.parent().unwrap().to_path_buf();
    }
    let exe = env.dir.path().join("domainctl");
    // Copied by another process: a write descriptor of ours could leak into a child another
    // test forks at that moment and make the exec below fail with ETXTBSY.
    assert!(Command::new("cp").arg(env!("CARGO_BIN_EXE_domainctl")).arg(&exe).status().unwrap().success());
    let out = Command::new(&exe).arg("--socket").arg(&s).arg("list").uid(65534).gid(65534).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert_eq!(stderr.trim(), "domainctl: only root may control domainmgrd");
}

#[test]
fn dry_run_prints_libxl_json_without_daemon_xen_or_the_files_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("web.cfg");
    std::fs::write(
        &cfg,
        "name = 'web'\ntype = 'pvh'\nkernel = '/nonexistent/vmlinuz'\nmemory = 512\nvcpus = 2\n\
         disk = [ '/nonexistent/web.img,raw,xvda,rw' ]\nvif = [ 'bridge=xenbr0,mac=00:16:3e:00:00:01' ]\n",
    )
    .unwrap();
    let o = domainctl(&dir.path().join("no.sock"), &["create", "--dry-run", cfg.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let json: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(json["c_info"]["name"], "web");
    assert_eq!(json["c_info"]["type"], "pvh");
    assert_eq!(json["b_info"]["max_memkb"], 512 * 1024);
    assert_eq!(json["disks"][0]["pdev_path"], "/nonexistent/web.img");
    assert_eq!(json["nics"][0]["mac"], "00:16:3e:00:00:01");

    // An EVE DomainConfig too.
    let eve = dir.path().join("app.json");
    let uuid = uuid::Uuid::new_v4();
    std::fs::write(&eve, serde_json::to_vec(&common::config(uuid, "app", true)).unwrap()).unwrap();
    let o = domainctl(&dir.path().join("no.sock"), &["create", "--dry-run", eve.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let json: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(json["c_info"]["uuid"], uuid.to_string());

    std::fs::write(&cfg, "name = 'web'\nkernel = '/k'\nvcpu = 2\n").unwrap();
    let o = domainctl(&dir.path().join("no.sock"), &["create", "--dry-run", cfg.to_str().unwrap()]);
    assert_eq!(o.code, 1);
    assert_eq!(o.stderr.trim(), format!("domainctl: {}:3: vcpu: not an xl.cfg key", cfg.display()));
}

#[test]
fn dry_run_applies_xl_conf_as_xl_does_for_xl_cfg_and_eve_configs() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("no.sock");
    let cfg = dir.path().join("web.cfg");
    std::fs::write(&cfg, "name = 'web'\nkernel = '/k'\nvif = [ 'mac=00:16:3e:00:00:01', 'bridge=mine' ]\n").unwrap();
    let conf = dir.path().join("xl.conf");
    std::fs::write(&conf, "claim_mode = 0\nvif.default.bridge = \"br9\"\nmax_maptrack_frames = 256\n").unwrap();
    let dry = |file: &Path, conf: &Path| {
        domainctl(&sock, &["create", "--dry-run", "--xl-conf", conf.to_str().unwrap(), file.to_str().unwrap()])
    };
    let o = dry(&cfg, &conf);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let json: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        (&json["c_info"]["run_hotplug_scripts"], &json["b_info"]["claim_mode"]),
        (&"True".into(), &"False".into())
    );
    assert_eq!(json["b_info"]["max_maptrack_frames"], 256);
    assert_eq!((&json["nics"][0]["bridge"], &json["nics"][1]["bridge"]), (&"br9".into(), &"mine".into()));
    // A missing xl.conf is xl's defaults.
    let o = dry(&cfg, &dir.path().join("absent.conf"));
    let json: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!((&json["b_info"]["claim_mode"], json["nics"][0].get("bridge")), (&"True".into(), None));
    // EVE configs get it too.
    let eve = dir.path().join("app.json");
    std::fs::write(&eve, serde_json::to_vec(&common::config(uuid::Uuid::new_v4(), "app", true)).unwrap()).unwrap();
    let o = dry(&eve, &conf);
    let json: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(json["b_info"]["claim_mode"], "False", "{}", o.stderr);
    // A broken one fails the dry run, naming file, line and key.
    std::fs::write(&conf, "claim_mode = 1\nmax_grant_frames = \"x\"\n").unwrap();
    let o = dry(&cfg, &conf);
    assert_eq!(o.code, 1);
    assert_eq!(o.stderr.trim(), format!("domainctl: {}:2: max_grant_frames: \"x\" is not a number", conf.display()));
}

#[test]
fn dry_run_parses_in_the_helper_and_survives_hostile_files() {
    // The same parse as the daemon's, in the helper beside domainctl: a file that would abort
    // libxlutil, or exhaust memory, is one line of error.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("web.cfg");
    std::fs::write(&cfg, b"name = 'web'\nkernel = \"/k\0\"\n").unwrap();
    let o = domainctl(&dir.path().join("no.sock"), &["create", "--dry-run", cfg.to_str().unwrap()]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.trim().starts_with(&format!("domainctl: {}:2: a NUL byte", cfg.display())), "{}", o.stderr);
    std::fs::write(&cfg, format!("name = 'web'\nkernel = '/k'\n{}", "k += [\"a\"]\n".repeat(20_000))).unwrap();
    let o = domainctl(&dir.path().join("no.sock"), &["create", "--dry-run", cfg.to_str().unwrap()]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains(":4094: k: too many `+=`"), "{}", o.stderr);
}

#[test]
fn domainctl_links_no_xen_library_so_every_command_starts_fast() {
    // Loading libxenlight and the ten Xen libraries under it was 0.4 s of every command in the
    // box's dom0; the dry run, their only user, runs in the helper instead.
    let out = Command::new("ldd").arg(env!("CARGO_BIN_EXE_domainctl")).output().unwrap();
    let libs = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && libs.contains("libc.so"), "ldd: {libs}");
    let xen: Vec<&str> = libs.lines().filter(|l| l.contains("libxen") || l.contains("libxl")).collect();
    assert!(xen.is_empty(), "domainctl links Xen libraries: {xen:?}");
    let helper = Command::new("ldd").arg(env!("CARGO_BIN_EXE_domainmgrd-xlparse")).output().unwrap();
    assert!(String::from_utf8_lossy(&helper.stdout).contains("libxenlight"), "the helper is the one that links libxl");
}

#[test]
fn help_lists_every_command_with_examples() {
    let o = domainctl(Path::new("/nonexistent"), &["--help"]);
    assert_eq!(o.code, 0);
    for cmd in [
        "list",
        "status",
        "start",
        "stop",
        "destroy",
        "restart",
        "create",
        "save",
        "restore",
        "console",
        "pci",
        "metrics",
        "host-start",
        "host-stop",
    ] {
        assert!(
            o.stdout.lines().any(|l| l.trim_start().starts_with(&format!("{cmd} "))),
            "{cmd} missing: {}",
            o.stdout
        );
    }
    assert!(o.stdout.contains("Examples:") && o.stdout.contains("3 not running") && o.stdout.contains("Exit status"));
    let o = domainctl(Path::new("/nonexistent"), &["stop", "--help"]);
    assert!(o.stdout.contains("--timeout <S>") && o.stdout.contains("keep it stopped, across reboots"));
}

#[test]
fn metrics_table_shows_a_running_domains_numbers_and_dashes_for_a_halted_one() {
    let mut env = Env::new();
    env.flags.push("timer.metric.interval:4".into()); // a sample a second
    env.write_host_config("");
    env.write_auto("web", "");
    env.start();
    let s = socket(&env);
    assert_eq!(domainctl(&s, &["host-start"]).code, 0);
    let row = |o: &Out| {
        o.stdout
            .lines()
            .find(|l| l.starts_with("web "))
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
    };

    let o = domainctl(&s, &["--json", "list"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&o.stdout).unwrap();
    let id = rows.iter().find(|r| r["name"] == "web").unwrap()["domid"].as_u64().unwrap() as u32;
    env.sim.set_cpu_time(xenctl::DomId::new(id), 2_500_000_000);
    env.wait_for("web's CPU time in the metrics table", || {
        row(&domainctl(&s, &["metrics"])).is_some_and(|r| r[2] == "2.5")
    });
    let o = domainctl(&s, &["metrics"]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.starts_with("Name") && o.stdout.contains("host: "), "{}", o.stdout);
    let r = row(&o).unwrap();
    assert_eq!(
        (r[1].as_str(), r[3].as_str(), r.last().unwrap().as_str()),
        (id.to_string().as_str(), "128", "yes"),
        "{r:?}"
    );

    assert_eq!(domainctl(&s, &["stop", "web", "--timeout", "5"]).code, 0);
    env.wait_for("web inactive in the metrics table", || {
        row(&domainctl(&s, &["metrics"])).is_some_and(|r| r.last().unwrap() == "no")
    });
    let r = row(&domainctl(&s, &["metrics"])).unwrap();
    assert_eq!(r[1..6], ["-", "-", "-", "-", "-"], "a halted domain has no domid, CPU time, memory or vCPUs");
}
