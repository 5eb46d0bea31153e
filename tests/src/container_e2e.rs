//! End-to-end tests of containers as Xen guests (`domainctl run`, domainmgrd's `container/`,
//! xen-oci, xen-container-init) on real Xen, in the box: an OCI image built here from dom0's
//! static busybox runs as a guest (the box's guest kernel, dom0's modules in the initramfs, the
//! image over 9pfs), prints its arguments and environment on its console, exits 3, and the
//! daemon reads status 3 as the guest powers off; `domainctl stop` reaches the entrypoint as
//! SIGTERM (status 0 from its trap), and one that ignores SIGTERM is killed after
//! `--stop-timeout` (status 137); `domainctl status` says so once the domain is gone, and
//! `domainctl logs` prints its console, which the daemon collected, to the last line; with
//! `--bridge`, the container's init takes an address by DHCP (from busybox's udhcpd on the
//! bridge in dom0) before its entrypoint runs, and dom0 pings it there. An EVE DomainConfig
//! of Format CONTAINER (as zedmanager writes it, EVE's kernel and runx paths included) runs
//! its volume's image with its user data's variables, and its exit status is in DomainStatus.
//!
//! Needs the static init in the share: `$CONTAINER_INIT` (scripts/build-container-init.sh).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use xenctl::Context;

use crate::guests_e2e::gone;
use crate::*;

const BOOT: Duration = Duration::from_secs(240);

/// The tests of this module, for xen-e2e.
pub fn tests() -> Vec<(&'static str, E2eTest)> {
    vec![
        ("container_image_runs_prints_its_args_and_env_and_exits_3", runs_and_exits),
        ("container_stops_gracefully_and_one_ignoring_sigterm_is_killed", stops_gracefully_or_killed),
        ("container_with_a_vif_gets_an_address_by_dhcp_and_dom0_reaches_it", gets_its_network),
        (
            "eve_container_app_runs_its_volumes_containerd_snapshot_with_its_user_data_variables_and_exits_5",
            eve_container_app,
        ),
    ]
}

/// A one-layer image: dom0's static busybox as /bin/busybox and /bin/sh; its run config.
pub fn busybox_image(dir: &Path, entrypoint: &[&str], cmd: &[&str]) -> TestResult<PathBuf> {
    let busybox = std::fs::read("/bin/busybox").ctx("dom0's /bin/busybox")?;
    let mut layer = xen_oci::layout::Layer::new();
    for d in ["bin", "etc", "tmp", "srv"] {
        layer.dir(d, 0o755).ctx("tar")?;
    }
    layer.file("bin/busybox", &busybox, 0o755).ctx("tar")?.symlink("bin/sh", "busybox").ctx("tar")?;
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/srv:/bin/sh\n", 0o644).ctx("tar")?;
    layer.file("etc/group", b"root:x:0:\napp:x:1000:\n", 0o644).ctx("tar")?;
    let layer = layer.finish().ctx("tar")?;
    let run = xen_oci::RunConfig {
        entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        env: vec!["PATH=/bin".into(), "GREETING=from-the-image".into()],
        working_dir: "/srv".into(),
        user: "app".into(),
    };
    let path = dir.join("busybox.oci");
    let _ = std::fs::remove_dir_all(&path);
    xen_oci::layout::write_layout(&path, &[layer], &run).ctx("write the image")?;
    Ok(path)
}

/// A daemon that runs containers with the box's guest kernel (an ELF: PVH) and the init from
/// the share.
pub fn container_daemon(name: &str) -> TestResult<DaemonProcess> {
    container_daemon_with(name, &[])
}

/// [`container_daemon`] with more arguments.
fn container_daemon_with(name: &str, more: &[String]) -> TestResult<DaemonProcess> {
    let init = std::env::var("CONTAINER_INIT").map_err(|_| "CONTAINER_INIT is not set (the static init)")?;
    let kernel = std::env::var("XENBOX_GUEST_KERNEL").map_err(|_| "XENBOX_GUEST_KERNEL is not set")?;
    let mut d = DaemonProcess::new(name, &["timer.domain.shutdown:60"]);
    d.args = vec![format!("--container-init={init}"), format!("--container-kernel={kernel}")];
    d.args.extend(more.iter().cloned());
    d.start()?;
    d.wait_ready()?;
    Ok(d)
}

fn runs_and_exits(_ctx: &Context) -> TestResult {
    let name = unique_name("ctr");
    let _cleanup = Cleanup(vec![name.clone()]);
    let d = container_daemon("dm-container")?;
    let image = busybox_image(
        &d.root,
        &[
            "/bin/sh",
            "-c",
            "echo ARGS: \"$@\"; echo ENV: GREETING=$GREETING EXTRA=$EXTRA; echo ID: $(id -u):$(id -g) CWD: $(pwd); exit 3",
            "sh",
        ],
        &["default-arg"],
    )?;
    let out = d.domainctl_ok(&[
        "run",
        "--name",
        &name,
        "--env",
        "EXTRA=from-the-cli",
        &image.display().to_string(),
        "--",
        "one",
        "two",
    ])?;
    ensure(out.contains("started"), || format!("domainctl run said: {out}"))?;
    wait_until("the container's exit line", BOOT, || console_text(&name).contains("XENCONTAINER-EXIT").then_some(()))
        .map_err(|e| format!("{e}; console:\n{}", tail(&console_text(&name), 40)))?;
    let console = console_text(&name);
    for want in [
        "ARGS: one two",
        "ENV: GREETING=from-the-image EXTRA=from-the-cli",
        "ID: 1000:1000 CWD: /srv",
        "XENCONTAINER-EXIT 3",
    ] {
        ensure(console.contains(want), || format!("the console lacks {want:?}:\n{}", tail(&console, 40)))?;
    }
    wait_until("the container's domain to be gone", BOOT, || gone(&name))?;
    status_says(&d, &name, 3)?;
    // The daemon collected the same console, to the last line, and keeps it after the domain.
    let logs = d.domainctl_ok(&["logs", &name])?;
    for want in ["ARGS: one two", "ENV: GREETING=from-the-image EXTRA=from-the-cli", "XENCONTAINER-EXIT 3"] {
        ensure(logs.contains(want), || format!("domainctl logs {name} lacks {want:?}:\n{}", tail(&logs, 40)))?;
    }
    Ok(())
}

/// `domainctl status NAME` of a container whose domain is gone must say `exit status N`.
fn status_says(d: &DaemonProcess, name: &str, code: i32) -> TestResult {
    let out = d.domainctl(&["status", name])?;
    ensure(out.stdout.contains("EXITED") && out.stdout.contains(&format!("exit status {code}")), || {
        format!("domainctl status {name} (exit {}): {}{}", out.code, out.stdout, out.stderr)
    })
}

fn stops_gracefully_or_killed(_ctx: &Context) -> TestResult {
    let (polite, stubborn) = (unique_name("ctr-term"), unique_name("ctr-kill"));
    let _cleanup = Cleanup(vec![polite.clone(), stubborn.clone()]);
    let d = container_daemon("dm-container-stop")?;
    let image = busybox_image(&d.root, &["/bin/sh", "-c"], &[])?;
    let loop_with = |trap: &str| format!("trap {trap} TERM; echo READY; while :; do sleep 1; done");
    for (name, script, timeout, status) in
        [(&polite, loop_with("'echo GOT-TERM; exit 0'"), "10", 0), (&stubborn, loop_with("''"), "2", 137)]
    {
        let image = image.display().to_string();
        d.domainctl_ok(&["run", "--name", name, "--stop-timeout", timeout, &image, "--", &script])?;
        wait_until("the container to be ready", BOOT, || console_text(name).contains("READY").then_some(()))
            .map_err(|e| format!("{e}; console:\n{}", tail(&console_text(name), 40)))?;
        d.domainctl_ok(&["stop", name])?;
        let exit_line = format!("XENCONTAINER-EXIT {status}");
        wait_until("the container's exit line", BOOT, || console_text(name).contains(&exit_line).then_some(()))
            .map_err(|e| format!("{e}; console:\n{}", tail(&console_text(name), 40)))?;
        if status == 0 {
            ensure(console_text(name).contains("GOT-TERM"), || "the entrypoint never saw SIGTERM".into())?;
        }
        wait_until("the container's domain to be gone", BOOT, || gone(name))?;
        status_says(&d, name, status)?;
    }
    Ok(())
}

/// dom0's side of the container network test: an address on the bridge and a DHCP server
/// there, both gone when dropped.
struct DhcpServer {
    bridge: String,
    child: Child,
}

const DOM0_ADDRESS: &str = "10.99.0.1/24";

impl DhcpServer {
    fn start(dir: &Path) -> TestResult<DhcpServer> {
        let bridge = std::env::var("XENBOX_BRIDGE").unwrap_or_else(|_| "xenbr0".into());
        let conf = dir.join("udhcpd.conf");
        let leases = dir.join("udhcpd.leases");
        std::fs::write(&leases, b"").ctx("the lease file")?;
        std::fs::write(
            &conf,
            format!(
                "start 10.99.0.100\nend 10.99.0.150\ninterface {bridge}\nlease_file {}\nopt subnet 255.255.255.0\nopt router 10.99.0.1\nopt lease 600\n",
                leases.display()
            ),
        )
        .ctx("udhcpd.conf")?;
        run("ip", &["addr", "replace", DOM0_ADDRESS, "dev", &bridge])?;
        let child = Command::new("busybox")
            .args(["udhcpd", "-f"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ctx("busybox udhcpd")?;
        Ok(DhcpServer { bridge, child })
    }
}

impl Drop for DhcpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = run("ip", &["addr", "del", DOM0_ADDRESS, "dev", &self.bridge]);
    }
}

fn gets_its_network(_ctx: &Context) -> TestResult {
    let name = unique_name("ctr-net");
    let _cleanup = Cleanup(vec![name.clone()]);
    let d = container_daemon("dm-container-net")?;
    let _dhcp = DhcpServer::start(&d.root)?;
    let image = busybox_image(&d.root, &["/bin/sh", "-c"], &[])?;
    let script = "busybox ip -4 -o addr show dev eth0; echo READY; while :; do sleep 1; done";
    let bridge = std::env::var("XENBOX_BRIDGE").unwrap_or_else(|_| "xenbr0".into());
    d.domainctl_ok(&["run", "--name", &name, "--bridge", &bridge, &image.display().to_string(), "--", script])?;
    wait_until("the container to be ready", BOOT, || console_text(&name).contains("READY").then_some(()))
        .map_err(|e| format!("{e}; console:\n{}", tail(&console_text(&name), 40)))?;
    // `2: eth0    inet 10.99.0.100/24 brd ...`: the lease, on the container's eth0.
    let console = console_text(&name);
    let address = console
        .lines()
        .find_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
        .and_then(|a| a.split('/').next())
        .filter(|a| a.starts_with("10.99.0."))
        .map(str::to_string)
        .ok_or_else(|| format!("no DHCP address on the container's eth0; console:\n{}", tail(&console, 40)))?;
    wait_until(&format!("dom0 to ping the container at {address}"), Duration::from_secs(60), || {
        run("ping", &["-c", "1", "-W", "2", &address]).ok()
    })?;
    d.domainctl_ok(&["stop", &name])?;
    wait_until("the container's domain to be gone", BOOT, || gone(&name))?;
    Ok(())
}

/// An EVE container app: the volume as EVE's volume manager leaves it (the image's root
/// filesystem a containerd snapshot named after it, its OCI image configuration in
/// `image-config.json`), the config as
/// zedmanager writes it; the app's variables come from its user data (EVE's old syntax).
fn eve_container_app(_ctx: &Context) -> TestResult {
    // EVE's user containerd, with the image's layer and the volume's snapshot in it as EVE's
    // volume manager leaves them (containerd from the share: run.sh's --file).
    let ctrd = xen_ctrd::testing::PrivateContainerd::start()?;
    let snaps = ctrd.snapshots(xen_ctrd::DEFAULT_NAMESPACE);
    let d = container_daemon_with("dm-eve-ctr", &[format!("--containerd-socket={}", ctrd.socket().display())])?;
    let _dhcp = DhcpServer::start(&d.root)?;
    let uuid = xenctl::Uuid::new_v4().to_string();
    let script = "echo EVE-CTR GREETING=$GREETING; busybox ip -4 -o addr show dev eth0; \
                  echo EVE-VOL $(busybox grep ' /data ' /proc/mounts); exit 5";
    let image = busybox_image(&d.root, &["/bin/sh", "-c", script], &[])?;
    // A blank data volume with a MountDir, as EVE's volume manager makes one.
    let data = d.root.join("data.img");
    std::fs::File::create(&data).and_then(|f| f.set_len(64 << 20)).ctx("the data volume")?;
    let unpacked = d.root.join("unpacked");
    let _ = std::fs::remove_dir_all(&unpacked);
    xen_oci::Image::open(&image).and_then(|i| i.unpack(&unpacked)).map_err(|e| e.to_string())?;
    let chain = "sha256:5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
    xen_ctrd::testing::commit_layer(&snaps, chain, |root| {
        let cp = std::process::Command::new("cp").arg("-a").arg(unpacked.join(".")).arg(root).status()?;
        cp.success().then_some(()).ok_or_else(|| std::io::Error::other(format!("cp: {cp}")))
    })?;
    let volume = d.root.join(format!("persist/vault/volumes/{uuid}#0.container"));
    std::fs::create_dir_all(&volume).ctx("the volume")?;
    let key = format!("{uuid}#0.container");
    snaps.prepare(&key, chain, &[xen_ctrd::testing::GC_ROOT]).map_err(|e| e.to_string())?;
    let image_config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Entrypoint": ["/bin/sh", "-c", script], "Env": ["PATH=/bin"], "WorkingDir": "/srv", "User": "app"}
    });
    std::fs::write(volume.join("image-config.json"), image_config.to_string()).ctx("image-config.json")?;

    let mut config = eve_config(&uuid, "dm-eve-ctr", 125, true, "");
    config["Kernel"] = "/hostfs/boot/kernel".into();
    config["Ramdisk"] = "/usr/lib/xen/boot/runx-initrd".into();
    config["ExtraArgs"] = "console=hvc0 root=9p dhcp=1".into();
    config["DiskConfigList"] = serde_json::json!([
        {"FileLocation": volume, "ReadOnly": false, "Format": 8},
        {"FileLocation": data, "ReadOnly": false, "Format": 1, "MountDir": "/data"}
    ]);
    config["VifList"][0]["Mac"] = "ABY+XAAB".into(); // 00:16:3e:5c:00:01, Go's []byte in JSON
    config["pubsub-large-CloudInitUserData"] = "R1JFRVRJTkc9ZnJvbS1ldmUK".into(); // GREETING=from-eve
    d.write_config(&config)?;
    let st = d.wait_status(&uuid, "the container's exit status", BOOT, |s| s["ExitStatus"].as_i64() == Some(5))?;
    let name = st["DomainName"].as_str().unwrap_or_default().to_string();
    let _cleanup = Cleanup(vec![name.clone()]);
    let console = console_text(&name);
    ensure(console.contains("EVE-CTR GREETING=from-eve") && console.contains("inet 10.99.0."), || {
        format!("console of {name}:\n{}", tail(&console, 40))
    })?;
    // The blank volume got a file system in dom0 and is mounted at its MountDir, read-write.
    ensure(console.contains("EVE-VOL /dev/xvdb /data ext4 rw"), || {
        format!("the data volume is not mounted at /data; console of {name}:\n{}", tail(&console, 40))
    })?;
    ensure(st["OCIConfigDir"] == volume.display().to_string() && st["EnvVariables"]["GREETING"] == "from-eve", || {
        format!("status: {st}")
    })?;
    // Its domain gone, the snapshot is unmounted; the run spec the daemon wrote for it stays in
    // the volume beside it.
    let rootfs = volume.join("rootfs");
    wait_until("its root filesystem to be unmounted", BOOT, || {
        (!xen_ctrd::mounted(&rootfs).unwrap_or(true)).then_some(())
    })?;
    ensure(volume.join(xen_container_init::SPEC_FILE).exists(), || "no run spec in the volume".into())?;
    // Its Activate off: it stays down.
    config["Activate"] = false.into();
    d.write_config(&config)?;
    d.wait_status(&uuid, "HALTED", BOOT, state_is(HALTED)).map(drop)
}
