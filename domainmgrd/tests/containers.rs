//! `domainctl run` on the simulated hypervisor: a container image becomes a transient domain
//! (its bundle, run spec and xl.cfg written by the daemon), the exit status its guest writes
//! into its own xenstore directory is read as it powers off, and `status NAME` still says it
//! once the transient domain is gone; a status that is not one is not believed. Its console
//! is collected into its bundle, and `domainctl logs` prints it, also after the domain went
//! (whose root filesystem goes with it). An EVE app whose first disk is of Format CONTAINER
//! runs its volume's image the same way, with the variables of its cloud-init user data and a
//! `#cloud-config`'s files written into its root filesystem.
//! (The guest side, on real Xen: tests/src/container_e2e.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::Env;
use domainmgrd::container::{Containers, RunRequest};
use domainmgrd::control::{Request, exit};

/// A one-layer image (`bin/app`).
fn image(dir: &Path) -> PathBuf {
    let mut layer = xen_oci::layout::Layer::new();
    layer.file("bin/app", b"hi\n", 0o755).unwrap();
    let run = xen_oci::RunConfig { entrypoint: vec!["/bin/app".into()], ..Default::default() };
    let path = dir.join("app.oci");
    xen_oci::layout::write_layout(&path, &[layer.finish().unwrap()], &run).unwrap();
    path
}

fn started(env: &mut Env) -> PathBuf {
    env.write_host_config("");
    let mut options = env.options();
    let dir = env.dir.path().to_path_buf();
    let dir = dir.as_path();
    std::fs::write(dir.join("vmlinux"), b"\x7fELF kernel").unwrap();
    std::fs::write(dir.join("init"), b"\x7fELF init").unwrap();
    options.containers = Containers {
        dir: domainmgrd::container::containers_dir(&env.paths().state_dir),
        init: dir.join("init"),
        kernel: dir.join("vmlinux"),
        modules_dir: None,
        snapshots: None,
    };
    env.start_with(options);
    image(dir)
}

/// Runs the image as `name`, ends it after its guest wrote `status` as its exit status (the
/// guest powers off, or with `stop` an operator stops it), and waits for the transient domain
/// to be gone: `domainctl status NAME`'s answer.
fn run_and_end(env: &Env, image: &Path, name: &str, status: &str, stop: bool) -> domainmgrd::control::Response {
    let run = RunRequest { image: image.to_path_buf(), name: Some(name.into()), ..Default::default() };
    let r = env.control(&Request::Run { container: run });
    assert!(r.ok, "{r:?}");
    let dom = env.sim_named(name).pop().expect("its domain");
    assert_eq!(dom.spec.p9s.len(), 1, "the bundle is shared over 9pfs");
    env.sim.guest_write(dom.domid, xen_container_init::EXIT_KEY, status);
    if stop {
        let r = env.control(&Request::Stop { domain: name.into(), force: false, timeout_secs: None });
        assert!(r.ok, "{r:?}");
    } else {
        env.sim.guest_poweroff(dom.domid);
    }
    env.wait_for("the container's transient domain to go", || {
        env.control(&Request::List).data.to_string().find(name).is_none()
    });
    env.control(&Request::Status { domain: Some(name.into()) })
}

#[test]
fn a_containers_exit_status_is_in_its_status_after_its_domain_is_gone() {
    let mut env = Env::new();
    let image = started(&mut env);
    let r = run_and_end(&env, &image, "app", "3", false);
    assert_eq!(r.exit, exit::NOT_RUNNING, "{r:?}");
    assert_eq!((r.data["StateName"].as_str(), r.data["ExitStatus"].as_i64()), (Some("EXITED"), Some(3)), "{r:?}");

    // What a guest writes is not believed unless it is a status: its run is over, with no
    // exit status.
    let r = run_and_end(&env, &image, "liar", "3; echo pwned", false);
    assert_eq!(r.exit, exit::NOT_RUNNING, "{r:?}");
    assert_eq!(r.data["StateName"].as_str(), Some("EXITED"), "{r:?}");
    assert!(r.data["ExitStatus"].is_null(), "{r:?}");

    // Stopped by an operator (its init stops the entrypoint, which exits 0): the same.
    let r = run_and_end(&env, &image, "svc", "0", true);
    assert_eq!((r.data["StateName"].as_str(), r.data["ExitStatus"].as_i64()), (Some("EXITED"), Some(0)), "{r:?}");
}

fn domainctl(env: &Env, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_domainctl"))
        .arg("--socket")
        .arg(env.paths().run_dir.join("domainmgrd.sock"))
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn a_containers_console_is_its_log_until_its_last_line_and_after_it_exited() {
    let mut env = Env::new();
    let image = started(&mut env);
    env.sim.real_consoles();
    let run = RunRequest { image, name: Some("talker".into()), ..Default::default() };
    let r = env.control(&Request::Run { container: run });
    assert!(r.ok, "{r:?}");
    let dom = env.sim_named("talker").pop().expect("its domain");
    let uuid = dom.spec.uuid;
    let bundle = domainmgrd::container::containers_dir(&env.paths().state_dir).join(uuid.to_string());
    // The daemon's hub holds the console once the domain runs (its socket is there).
    let socket = env.paths().run_dir.join("console").join(format!("{uuid}.sock"));
    env.wait_for("the console hub", || socket.exists());
    env.sim.guest_print(dom.domid, "one\r\ntwo\r\n");
    env.wait_for("the first lines in the log", || {
        std::fs::read_to_string(bundle.join("console.log")).unwrap_or_default().contains("two")
    });
    let (code, out, err) = domainctl(&env, &["logs", "talker"]);
    assert_eq!((code, out.as_str()), (0, "one\r\ntwo\r\n"), "{err}");
    let (code, out, _) = domainctl(&env, &["logs", "-n", "1", "talker"]);
    assert_eq!((code, out.as_str()), (0, "two\r\n"));

    // Its last words, written just before it powers off, are not lost.
    env.sim.guest_write(dom.domid, xen_container_init::EXIT_KEY, "0");
    env.sim.guest_print(dom.domid, "last words\r\n");
    env.sim.guest_poweroff(dom.domid);
    env.wait_for("the container's transient domain to go", || {
        env.control(&Request::List).data.to_string().find("talker").is_none()
    });
    let (code, out, err) = domainctl(&env, &["logs", "--follow", "talker"]);
    assert_eq!((code, out.as_str()), (0, "one\r\ntwo\r\nlast words\r\n"), "{err}");
    // The run is over: the root filesystem went, the record and the log stay.
    assert!(!bundle.join("rootfs").exists() && bundle.join("exit.json").exists());

    // Unknown names are an error.
    let (code, _, err) = domainctl(&env, &["logs", "nobody"]);
    assert_eq!(code, exit::UNKNOWN_DOMAIN, "{err}");
}

/// An EVE container app whose volume is a containerd snapshot, as EVE's volume manager leaves
/// it (a private containerd stands in for EVE's user containerd): the daemon mounts it at
/// `<volume>/rootfs` for the run, keeps it over a guest's reboot, unmounts it when the app is
/// deactivated and when its config is deleted; the app's writes stay in the snapshot.
#[test]
fn an_eve_container_apps_containerd_snapshot_is_mounted_for_its_runs_only() {
    let ctrd = match xen_ctrd::testing::PrivateContainerd::start() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIPPED an_eve_container_apps_containerd_snapshot_is_mounted_for_its_runs_only: {why}");
            return;
        }
    };
    let snaps = ctrd.snapshots(xen_ctrd::DEFAULT_NAMESPACE);
    let chain = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    xen_ctrd::testing::commit_layer(&snaps, chain, |root| {
        std::fs::create_dir(root.join("bin"))?;
        std::fs::write(root.join("bin/app"), "from the image")
    })
    .unwrap();
    let mut env = Env::new();
    env.write_host_config("");
    let mut options = env.options();
    std::fs::write(env.dir.path().join("vmlinux"), b"\x7fELF kernel").unwrap();
    std::fs::write(env.dir.path().join("init"), b"\x7fELF init").unwrap();
    options.containers = Containers {
        dir: domainmgrd::container::containers_dir(&env.paths().state_dir),
        init: env.dir.path().join("init"),
        kernel: env.dir.path().join("vmlinux"),
        modules_dir: None,
        snapshots: Some(snaps.clone()),
    };
    env.start_with(options.clone());
    // The volume: image-config.json, an empty rootfs/, and the snapshot of its name.
    let volume = eve_volume(env.dir.path(), false);
    let key = volume.file_name().unwrap().to_str().unwrap().to_string();
    snaps.prepare(&key, chain, &[xen_ctrd::testing::GC_ROOT]).unwrap();
    let rootfs = volume.join("rootfs");

    let uuid = uuid::Uuid::new_v4();
    let mut config = eve_container_config(
        uuid,
        &volume,
        "#cloud-config\nwrite_files:\n  - path: /etc/by-eve\n    content: written\n    permissions: '0644'\n",
    );
    env.write_config(&config);
    let st = env.wait_state(uuid, domainmgrd::eve::SwState::RUNNING);
    assert!(!st.boot_failed, "{:?}", st.error);
    assert!(xen_ctrd::mounted(&rootfs).unwrap(), "the snapshot is mounted for the run");
    assert_eq!(std::fs::read_to_string(rootfs.join("bin/app")).unwrap(), "from the image");
    assert_eq!(std::fs::read_to_string(rootfs.join("etc/by-eve")).unwrap(), "written");

    // The daemon restarts: the guest runs on, its root stays mounted, once.
    env.stop();
    env.start_with(options);
    env.wait_state(uuid, domainmgrd::eve::SwState::RUNNING);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(mounts.matches(rootfs.to_str().unwrap()).count(), 1, "mounted once after a restart");

    // The guest reboots itself: the same run, the mount stays (once).
    let domid = env.sim.domains().into_iter().find(|d| d.spec.uuid == uuid).unwrap().domid;
    env.sim.guest_reboot(domid);
    env.wait_for("the guest's new domain", || {
        env.sim.domains().iter().any(|d| d.spec.uuid == uuid && d.domid != domid)
    });
    env.wait_state(uuid, domainmgrd::eve::SwState::RUNNING);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(mounts.matches(rootfs.to_str().unwrap()).count(), 1, "mounted once");

    // Deactivated: halted and unmounted; what it wrote stays in the snapshot.
    config["Activate"] = false.into();
    env.write_config(&config);
    env.wait_for("the app to halt and its root to be unmounted", || !xen_ctrd::mounted(&rootfs).unwrap());
    assert!(env.sim.domains().iter().all(|d| d.spec.uuid != uuid));
    let probe = tempfile::tempdir().unwrap();
    snaps.mounts(&key).unwrap()[0].mount_at(probe.path()).unwrap();
    assert_eq!(std::fs::read_to_string(probe.path().join("etc/by-eve")).unwrap(), "written");
    xen_ctrd::unmount(probe.path()).unwrap();

    // Activated again, then deleted: mounted for the run, unmounted with the config.
    config["Activate"] = true.into();
    env.write_config(&config);
    env.wait_state(uuid, domainmgrd::eve::SwState::RUNNING);
    assert!(xen_ctrd::mounted(&rootfs).unwrap());
    env.delete_config(uuid);
    env.wait_for("the status to go", || env.status(uuid).is_none());
    assert!(!xen_ctrd::mounted(&rootfs).unwrap(), "unmounted with its config");

    // A volume that containerd has no snapshot for and that holds no root filesystem.
    let bare = eve_volume(env.dir.path(), false);
    let other = uuid::Uuid::new_v4();
    env.write_config(&eve_container_config(other, &bare, "A=1"));
    let st = env.wait_status(other, "the boot to fail", |s| s.boot_failed);
    let want = format!("no snapshot {:?}", bare.file_name().unwrap().to_str().unwrap());
    assert!(st.error.error.contains(&want), "{:?}", st.error);
    env.delete_config(other);
    env.wait_for("the status to go", || env.status(other).is_none());
    env.stop();
    snaps.remove(&key).unwrap();
}

/// An EVE container volume as EVE's volume manager leaves it (with its root filesystem in
/// place): `rootfs/` and `image-config.json`.
fn eve_volume(dir: &Path, with_root: bool) -> PathBuf {
    let v = dir.join(format!("{}#0.container", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(v.join("rootfs")).unwrap();
    if with_root {
        std::fs::create_dir_all(v.join("rootfs/bin")).unwrap();
        std::fs::write(v.join("rootfs/bin/app"), b"hi").unwrap();
    }
    let image = serde_json::json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Entrypoint": ["/bin/app"], "Cmd": ["--serve"], "Env": ["PATH=/bin"], "WorkingDir": "/srv"}
    });
    std::fs::write(v.join("image-config.json"), image.to_string()).unwrap();
    v
}

/// The DomainConfig zedmanager writes for a container app (its defaults for the kernel, the
/// ramdisk and the arguments), with `user_data` as its cloud-init user data.
fn eve_container_config(uuid: uuid::Uuid, volume: &Path, user_data: &str) -> serde_json::Value {
    use base64::Engine;
    let mut c = common::config(uuid, "ctr", true);
    c["Kernel"] = "/hostfs/boot/kernel".into();
    c["Ramdisk"] = "/usr/lib/xen/boot/runx-initrd".into();
    c["ExtraArgs"] = "console=hvc0 root=9p dhcp=1 mtu=1500".into();
    c["DiskConfigList"] = serde_json::json!([{"FileLocation": volume, "ReadOnly": false, "Format": 8}]);
    c["pubsub-large-CloudInitUserData"] = base64::engine::general_purpose::STANDARD.encode(user_data).into();
    c
}

#[test]
fn an_eve_container_app_runs_its_volumes_image_with_its_user_datas_variables() {
    let mut env = Env::new();
    started(&mut env);
    let volume = eve_volume(env.dir.path(), true);
    let uuid = uuid::Uuid::new_v4();
    env.write_config(&eve_container_config(uuid, &volume, "MODE=app\nEVE_ECO_CMD=/bin/app --once\n"));
    let st = env.wait_state(uuid, domainmgrd::eve::SwState::RUNNING);
    let dom = env.sim.domains().into_iter().find(|d| d.spec.uuid == uuid).expect("its domain");
    // No disk: the volume is shared over 9pfs, as EVE's xl config shares it; the container
    // kernel and initramfs in place of EVE's.
    assert!(dom.spec.disks.is_empty(), "{:?}", dom.spec.disks);
    assert_eq!(dom.spec.p9s.len(), 1);
    assert_eq!((dom.spec.p9s[0].tag.as_str(), dom.spec.p9s[0].path.as_str()), ("share_dir", volume.to_str().unwrap()));
    assert_eq!(dom.spec.kernel.as_deref(), Some(env.dir.path().join("vmlinux").to_str().unwrap()));
    assert!(dom.spec.ramdisk.as_deref().is_some_and(|r| r.contains("/containers/initrd-")), "{:?}", dom.spec.ramdisk);
    let spec =
        xen_container_init::RunSpec::from_json(&std::fs::read(volume.join(xen_container_init::SPEC_FILE)).unwrap())
            .unwrap();
    assert_eq!(spec.argv, ["/bin/app", "--once"]);
    assert_eq!(spec.env, ["PATH=/bin", "EVE_ECO_CMD=/bin/app --once", "MODE=app"]);
    assert_eq!(spec.cwd, "/srv");
    assert_eq!(spec.network.len(), 1, "the vif by its MAC");
    // The status says what EVE's says: the container disk, the 9P share, the volume, the variables.
    let devtypes: Vec<_> = st.disk_status_list.iter().map(|d| (d.devtype.as_str(), d.mount_dir.as_str())).collect();
    assert_eq!(devtypes, [("", "/"), ("9P", "")]);
    assert_eq!(st.oci_config_dir, volume.to_str().unwrap());
    assert_eq!(st.env_variables.as_ref().and_then(|e| e.get("MODE")).map(String::as_str), Some("app"));

    // A #cloud-config: its runcmd's variables, its write_files in the root filesystem.
    let volume2 = eve_volume(env.dir.path(), true);
    let cc = uuid::Uuid::new_v4();
    let user_data = "#cloud-config\nruncmd:\n  - MODE=cc\nwrite_files:\n  - path: /etc/app.conf\n    content: from-eve\n    permissions: '0644'\n";
    env.write_config(&eve_container_config(cc, &volume2, user_data));
    let st = env.wait_state(cc, domainmgrd::eve::SwState::RUNNING);
    assert_eq!(st.env_variables.as_ref().and_then(|e| e.get("MODE")).map(String::as_str), Some("cc"));
    assert_eq!(std::fs::read_to_string(volume2.join("rootfs/etc/app.conf")).unwrap(), "from-eve");
    assert_eq!(std::fs::read_to_string(volume2.join("rootfs/meta-data")).unwrap(), format!("instance-id: {cc}/1\n"));

    // A volume whose root filesystem is not there (EVE would mount its containerd snapshot
    // there): its boot fails, saying so.
    let empty = eve_volume(env.dir.path(), false);
    let other = uuid::Uuid::new_v4();
    env.write_config(&eve_container_config(other, &empty, "A=1"));
    let st = env.wait_status(other, "the boot to fail", |s| s.boot_failed);
    assert!(st.error.error.contains("no root filesystem"), "{:?}", st.error);
    // User data that is not variables: EVE's error.
    let bad = uuid::Uuid::new_v4();
    env.write_config(&eve_container_config(bad, &volume, "not a variable"));
    let st = env.wait_status(bad, "the boot to fail", |s| s.boot_failed);
    assert!(st.error.error.contains("Error processing environment variables"), "{:?}", st.error);
}
