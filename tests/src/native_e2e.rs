//! End-to-end tests of the daemon's native device setup (`xen-hotplug`, `domainmgrd/src/native.rs`)
//! on real Xen, in the box: a guest created through `domainctl create` gets its vif (dom0
//! pings it) and its file disk (the guest reads dom0's words in it) without Xen's hotplug
//! scripts, and nothing is left after a destroy, the guest's own poweroff, or a daemon killed
//! and restarted in between; a read-write disk another domain (xl's) uses is refused; a
//! config's own `script=` still runs; a create that fails half-way (a disk's file missing after
//! another disk got its loop device) leaves nothing; two creates at once build their domains at
//! once (each on a libxl context of its own).

use std::path::Path;
use std::time::Duration;

use xenctl::Context;

use crate::guests_e2e::{create, daemon, gone, guest_files};
use crate::*;

const BOOT: Duration = Duration::from_secs(180);

/// The tests of this module, for xen-e2e.
pub fn tests() -> Vec<(&'static str, E2eTest)> {
    vec![
        ("native_vif_and_disk_work_and_destroy_and_poweroff_leave_nothing", vif_and_disk),
        ("native_teardown_after_a_daemon_restart", restart_in_between),
        ("native_read_write_disk_used_by_an_xl_domain_is_refused", shared_disk_refused),
        ("native_custom_script_runs_and_a_half_way_failure_cleans_up", custom_script_and_failure),
        ("native_two_creates_build_their_domains_at_once", two_creates_overlap),
        ("native_save_image_restores_under_xl_with_xens_scripts", saved_then_xl_restores),
        ("native_block_device_disk_is_used_as_it_is_and_left_attached", block_device_disk),
    ]
}

/// An xl.cfg of the test guest with `devices` (xl lines), and `args` on its command line.
fn cfg(name: &str, args: &str, devices: &str) -> String {
    let (kernel, ramdisk) = guest_files();
    format!(
        "name = \"{name}\"\nkernel = \"{kernel}\"\nramdisk = \"{ramdisk}\"\nmemory = 128\n\
         extra = \"console=hvc0 loglevel=4 {args}\"\non_poweroff = \"destroy\"\n{devices}"
    )
}

/// The loop devices attached to `file` (by inode, as the kernel's sysfs names them).
fn loops_of(file: &Path) -> Vec<String> {
    let Ok(want) = std::fs::metadata(file).map(|m| std::os::unix::fs::MetadataExt::ino(&m)) else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir("/sys/block") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let backing = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            let ino = std::fs::metadata(backing.trim()).ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m))?;
            (ino == want).then_some(name)
        })
        .collect()
}

fn interface_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Waits until the domain is gone, its loop devices on `image` and its vif `vif` with it.
fn wait_clean(name: &str, image: &Path, vif: &str) -> TestResult {
    wait_until("the domain to be gone", BOOT, || gone(name))?;
    wait_until("its loop devices and vif to be gone", Duration::from_secs(20), || {
        (loops_of(image).is_empty() && !interface_exists(vif)).then_some(())
    })
    .map_err(|e| format!("{e}: loop devices {:?}, {vif} exists: {}", loops_of(image), interface_exists(vif)))
}

/// A backend node of the domain's first device of `kind` (`vif`, `vbd`).
fn backend_node(name: &str, kind: &str, node: &str) -> TestResult<String> {
    let domid = xl(&["domid", name])?.trim().to_string();
    let base = format!("/local/domain/0/backend/{kind}/{domid}");
    let devid = run("xenstore-list", &[&base])?.lines().next().unwrap_or_default().to_string();
    xenstore_read(&format!("{base}/{devid}/{node}"))
}

/// `domainctl create` of `text` as `<name>.cfg`, which must fail: its output (stdout, stderr).
fn create_fails(d: &DaemonProcess, name: &str, text: &str) -> TestResult<(i32, String)> {
    let path = d.root.join(format!("{name}.cfg"));
    std::fs::write(&path, text).ctx("write cfg")?;
    let out = d.domainctl(&["create", &path.display().to_string()])?;
    Ok((out.code, format!("{}{}", out.stdout, out.stderr)))
}

/// `xl destroy NAME`, then waits for the loop devices on `image` to go.
fn xl_destroy_and_wait_loops(name: &str, image: &Path) -> TestResult {
    xl(&["destroy", name])?;
    wait_until("xl's loop device to go", Duration::from_secs(30), || loops_of(image).is_empty().then_some(())).map(drop)
}

/// dom0 pings the guest's IPv6 link-local address (its MAC's EUI-64) over the bridge.
fn ping_guest(mac_tail: &str) -> TestResult {
    let addr = format!("fe80::216:3eff:fe{mac_tail}%{}", std::env::var("XENBOX_BRIDGE").unwrap_or("xenbr0".into()));
    wait_until(&format!("dom0 to ping {addr}"), Duration::from_secs(60), || {
        run("ping", &["-6", "-c", "1", "-W", "2", &addr]).ok()
    })
    .map(drop)
}

fn vif_and_disk(_ctx: &Context) -> TestResult {
    let name = unique_name("native");
    let _cleanup = Cleanup(vec![name.clone()]);
    let d = daemon("dm-native")?;
    let image = d.root.join("disk.img");
    let words = disk_image_with_words(&image)?;
    let devices = format!(
        "vif = [ 'bridge=xenbr0,mac=00:16:3e:5a:00:01,vifname=nat{pid}' ]\n\
         disk = [ 'format=raw,vdev=xvda,access=rw,target={}' ]\n",
        image.display(),
        pid = std::process::id() % 10000
    );
    let vif = format!("nat{}", std::process::id() % 10000);
    create(&d, &name, &cfg(&name, "xenbox.disk_io=1", &devices))?;
    // No hotplug script did it: libxl ran the no-op, and the daemon wrote what the back ends wait for.
    let script = backend_node(&name, "vbd", "script")?;
    ensure(script.ends_with("/native-hotplug"), || format!("vbd script {script}"))?;
    ensure(backend_node(&name, "vif", "hotplug-status")? == "connected", || "vif hotplug-status".into())?;
    let device = backend_node(&name, "vbd", "physical-device-path")?;
    ensure(loops_of(&image) == [device.trim_start_matches("/dev/").to_string()], || {
        format!("loop devices on the image: {:?}, the back end's: {device}", loops_of(&image))
    })?;
    wait_console(&name, &format!("XENBOX-GUEST-DISK-READ xvda {words}"), BOOT)?;
    wait_console(&name, "XENBOX-GUEST-NET eth0 00:16:3e:5a:00:01", BOOT)?;
    ensure(Path::new("/sys/class/net").join(&vif).join("brport").exists(), || format!("{vif} is not a bridge port"))?;
    ping_guest("5a:1")?;
    d.domainctl_ok(&["destroy", &name])?;
    wait_clean(&name, &image, &vif)?;
    ensure(std::fs::read(&image).is_ok_and(|data| data.starts_with(b"XENBOX-GUEST-WROTE-xvda")), || {
        "the guest's write is not in the image".into()
    })?;

    // The guest's own poweroff: the same teardown.
    create(&d, &name, &cfg(&name, "xenbox.poweroff_after=5", &devices))?;
    wait_console(&name, "XENBOX-GUEST-READY", BOOT)?;
    wait_clean(&name, &image, &vif)
}

fn restart_in_between(_ctx: &Context) -> TestResult {
    let name = unique_name("native-rst");
    let _cleanup = Cleanup(vec![name.clone()]);
    let mut d = daemon("dm-native-rst")?;
    let image = d.root.join("disk.img");
    let words = disk_image_with_words(&image)?;
    let devices = format!("disk = [ 'format=raw,vdev=xvda,access=ro,target={}' ]\n", image.display());
    create(&d, &name, &cfg(&name, "xenbox.disk_io=1", &devices))?;
    // The guest reads the file through the loop device (kept open until blkback had it: one
    // attached with autoclear goes the moment its last opener closes it).
    wait_console(&name, &format!("XENBOX-GUEST-DISK-READ xvda {words}"), BOOT)?;
    ensure(loops_of(&image).len() == 1, || {
        format!(
            "loop devices: {:?}; xl block-list: {:?}; the daemon's log: {}",
            loops_of(&image),
            xl(&["block-list", &name]),
            std::fs::read_to_string(d.root.join("daemon.log")).unwrap_or_default()
        )
    })?;
    d.kill9()?;
    d.start()?;
    d.wait_ready()?;
    // The restarted daemon adopted it, re-found its loop device, and tears it down.
    wait_until("the restarted daemon to list it running", BOOT, || {
        d.domainctl_ok(&["list"]).ok().filter(|out| out.contains(&name)).map(drop)
    })?;
    d.domainctl_ok(&["destroy", &name])?;
    wait_clean(&name, &image, "no-vif")?;
    let log = std::fs::read_to_string(d.root.join("daemon.log")).unwrap_or_default();
    ensure(!log.contains("cannot detach"), || "the daemon could not detach a loop device".into())
}

fn shared_disk_refused(_ctx: &Context) -> TestResult {
    let xl_name = unique_name("native-xl");
    let name = unique_name("native-2nd");
    let _cleanup = Cleanup(vec![xl_name.clone(), name.clone()]);
    let d = daemon("dm-native-shared")?;
    let image = d.root.join("disk.img");
    disk_image_with_words(&image)?;
    let devices = format!("disk = [ 'format=raw,vdev=xvda,access=rw,target={}' ]\n", image.display());
    // xl's domain, with Xen's block script, has it read-write.
    let xl_cfg = d.root.join("xl.cfg");
    std::fs::write(&xl_cfg, cfg(&xl_name, "", &devices)).ctx("write xl.cfg")?;
    xl(&["create", &xl_cfg.display().to_string()])?;
    ensure(loops_of(&image).len() == 1, || format!("xl's loop devices: {:?}", loops_of(&image)))?;
    // Ours asks for it read-only: refused, naming xl's domain; nothing left behind.
    let ro = format!("disk = [ 'format=raw,vdev=xvda,access=ro,target={}' ]\n", image.display());
    let (code, text) = create_fails(&d, &name, &cfg(&name, "", &ro))?;
    ensure(code != 0 && text.contains("in use read-write by domain") && text.contains(&xl_name), || {
        format!("domainctl create: exit {code}: {text}")
    })?;
    ensure(!running(&name)?, || format!("{name} exists after its refused create"))?;
    ensure(loops_of(&image).len() == 1, || format!("loop devices after the refusal: {:?}", loops_of(&image)))?;
    xl_destroy_and_wait_loops(&xl_name, &image)
}

fn custom_script_and_failure(_ctx: &Context) -> TestResult {
    let name = unique_name("native-own");
    let _cleanup = Cleanup(vec![name.clone()]);
    let d = daemon("dm-native-own")?;
    // A config's own script= runs, as libxl runs it: here, one that leaves a mark and hands on
    // to Xen's vif-bridge.
    let mark = d.root.join("script-ran");
    let script = d.root.join("my-vif");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1 $XENBUS_PATH\" >> {}\nexec /etc/xen/scripts/vif-bridge \"$@\"\n", mark.display()),
    )
    .ctx("write script")?;
    run("chmod", &["755", &script.display().to_string()])?;
    let devices = format!("vif = [ 'bridge=xenbr0,script={}' ]\n", script.display());
    create(&d, &name, &cfg(&name, "", &devices))?;
    wait_console(&name, "XENBOX-GUEST-NET eth0", BOOT)?;
    let ran = std::fs::read_to_string(&mark).unwrap_or_default();
    ensure(ran.starts_with("online backend/vif/"), || format!("the script's mark: {ran:?}"))?;
    d.domainctl_ok(&["destroy", &name])?;
    wait_until("the domain to be gone", BOOT, || gone(&name))?;

    // A second disk whose file is missing, after the first got its loop device (and the vif
    // its bridge): the create fails naming it, the domain is destroyed, the loop released.
    let image = d.root.join("disk.img");
    disk_image_with_words(&image)?;
    let missing = d.root.join("missing.img");
    let devices = format!(
        "vif = [ 'bridge=xenbr0' ]\ndisk = [ 'format=raw,vdev=xvda,access=rw,target={}', \
         'format=raw,vdev=xvdb,access=rw,target={}' ]\n",
        image.display(),
        missing.display()
    );
    let (code, text) = create_fails(&d, &name, &cfg(&name, "", &devices))?;
    ensure(code != 0 && text.contains("device setup failed") && text.contains("missing.img"), || {
        format!("domainctl create: exit {code}: {text}")
    })?;
    wait_until("the failed domain to be gone", BOOT, || gone(&name))?;
    ensure(loops_of(&image).is_empty(), || format!("loop devices left: {:?}", loops_of(&image)))
}

/// Two creates at once, each with a 64 MiB ramdisk (the test guest's, padded with zeros, which
/// the kernel skips) so that each domain build, which libxl does under its ctx's lock, takes
/// seconds: libxl's domain builder logs `xc_dom_allocate` as a build starts and `xc_dom_release`
/// as it ends, and the second build must start before the first ends. On one shared context
/// the builds take turns, and the log shows allocate, release, allocate, release.
fn two_creates_overlap(_ctx: &Context) -> TestResult {
    let names = [unique_name("native-par-a"), unique_name("native-par-b")];
    let _cleanup = Cleanup(names.to_vec());
    let mut d = DaemonProcess::new("dm-native-par", &["timer.domain.shutdown:60"]);
    d.rust_log = "info,xen=debug".into();
    d.start()?;
    d.wait_ready()?;
    let (kernel, ramdisk) = guest_files();
    let big = d.root.join("big-initrd");
    std::fs::copy(&ramdisk, &big).ctx("copy the ramdisk")?;
    let f = std::fs::OpenOptions::new().append(true).open(&big).ctx("open the ramdisk")?;
    f.set_len(f.metadata().ctx("stat")?.len() + (64 << 20)).ctx("pad the ramdisk")?;
    let cfgs: Vec<String> = names
        .iter()
        .map(|n| {
            let path = d.root.join(format!("{n}.cfg"));
            let text = format!(
                "name = \"{n}\"\nkernel = \"{kernel}\"\nramdisk = \"{}\"\nmemory = 256\n\
                 extra = \"console=hvc0 loglevel=4\"\nvif = [ 'bridge=xenbr0' ]\n",
                big.display()
            );
            std::fs::write(&path, text).map(|()| path.display().to_string())
        })
        .collect::<Result<_, _>>()
        .ctx("write the configs")?;
    let results: Vec<TestResult<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = cfgs.iter().map(|c| s.spawn(|| d.domainctl_ok(&["create", c]))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into()))).collect()
    });
    for r in results {
        r?;
    }
    let log = std::fs::read_to_string(d.root.join("daemon.log")).ctx("read the daemon's log")?;
    let events: Vec<&str> = log
        .lines()
        .filter_map(|l| {
            if l.contains("xc_dom_allocate:") {
                Some("allocate")
            } else if l.contains("xc_dom_release:") {
                Some("release")
            } else {
                None
            }
        })
        .collect();
    ensure(events.len() >= 4 && events[..2] == ["allocate", "allocate"], || {
        format!("the domain builds took turns (libxl's builder log, in order: {events:?})")
    })?;
    for n in &names {
        d.domainctl_ok(&["destroy", n])?;
    }
    for n in &names {
        wait_until("the domain to be gone", BOOT, || gone(n))?;
    }
    std::fs::remove_file(&big).ctx("remove the big ramdisk")
}

/// A save image of a domain with native devices names none of the daemon's script: `xl
/// restore` gives its devices Xen's scripts, and they work.
fn saved_then_xl_restores(_ctx: &Context) -> TestResult {
    let name = unique_name("native-save");
    let _cleanup = Cleanup(vec![name.clone()]);
    let d = daemon("dm-native-save")?;
    let image = d.root.join("disk.img");
    disk_image_with_words(&image)?;
    let devices =
        format!("vif = [ 'bridge=xenbr0' ]\ndisk = [ 'format=raw,vdev=xvda,access=rw,target={}' ]\n", image.display());
    create(&d, &name, &cfg(&name, "", &devices))?;
    wait_console(&name, "XENBOX-GUEST-READY", BOOT)?;
    let saved = d.root.join("guest.save");
    d.domainctl_ok(&["save", &name, &saved.display().to_string()])?;
    let header = std::fs::read(&saved).ctx("read the image")?;
    let header = String::from_utf8_lossy(&header[..header.len().min(64 << 10)]).into_owned();
    ensure(!header.contains("native-hotplug"), || "the image's config names the daemon's script".into())?;
    xl(&["restore", &saved.display().to_string()])?;
    // The box's /tmp is memory: a 128 MiB image must not stay for the tests that follow.
    let _ = std::fs::remove_file(&saved);
    ensure(backend_node(&name, "vif", "script")?.ends_with("/vif-bridge"), || "vif script".into())?;
    ensure(backend_node(&name, "vbd", "script")?.ends_with("/block"), || "vbd script".into())?;
    ensure(backend_node(&name, "vif", "hotplug-status")? == "connected", || "vif-bridge did not connect it".into())?;
    ensure(loops_of(&image).len() == 1, || format!("loop devices: {:?}", loops_of(&image)))?;
    xl_destroy_and_wait_loops(&name, &image)
}

/// A `phy:` disk on a block device (here a loop device the test attached itself): blkback gets
/// the device as it is, and the daemon never detaches a device it did not attach.
fn block_device_disk(_ctx: &Context) -> TestResult {
    let name = unique_name("native-phy");
    let _cleanup = Cleanup(vec![name.clone()]);
    let d = daemon("dm-native-phy")?;
    let image = d.root.join("disk.img");
    let words = disk_image_with_words(&image)?;
    let dev = run("losetup", &["-f", "--show", &image.display().to_string()])?.trim().to_string();
    let result = (|| -> TestResult {
        let devices = format!("disk = [ 'phy:{dev},xvda,w' ]\n");
        create(&d, &name, &cfg(&name, "xenbox.disk_io=1", &devices))?;
        wait_console(&name, &format!("XENBOX-GUEST-DISK-READ xvda {words}"), BOOT)?;
        ensure(backend_node(&name, "vbd", "physical-device-path")? == dev, || "physical-device-path".into())?;
        // sysfs says major:minor in decimal; blkback's node wants hex.
        let dev_name = dev.trim_start_matches("/dev/").to_string();
        let numbers = std::fs::read_to_string(format!("/sys/class/block/{dev_name}/dev")).ctx("its numbers")?;
        let hex: Vec<String> =
            numbers.trim().split(':').map(|n| n.parse::<u32>().map(|n| format!("{n:x}")).unwrap_or_default()).collect();
        let want = hex.join(":");
        ensure(backend_node(&name, "vbd", "physical-device")? == want, || format!("physical-device, wanted {want}"))?;
        d.domainctl_ok(&["destroy", &name])?;
        wait_until("the domain to be gone", BOOT, || gone(&name))?;
        ensure(loops_of(&image) == [dev_name], || format!("{dev} was detached: {:?}", loops_of(&image)))
    })();
    let _ = run("losetup", &["-d", &dev]);
    result
}
