//! End-to-end tests of guests beyond the PV test guest, on real Xen in the box: PVH guests (with
//! a kernel, and booting a disk image through GRUB's PVH image) and a disk served by QEMU in dom0
//! (qcow2 through the qdisk backend). Each is created by `domainctl create` from an xl.cfg file,
//! through a `domainmgrd` process, and checked against `xl` (the domain's type and devices as
//! libxl recorded them) and the guest's console.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xenctl::Context;

use crate::*;

/// Boot to the guest's READY line: a PVH guest boots in 10-20 s in a quiet box, and GRUB reads
/// the kernel at a few hundred KiB/s; with the suite's other guests and the HVM box beside it,
/// several times that.
pub(crate) const BOOT: Duration = Duration::from_secs(300);

/// The tests of this module, for xen-e2e.
pub fn tests() -> Vec<(&'static str, E2eTest)> {
    vec![
        ("guests_pvh_with_a_kernel_runs_as_pvh_and_stops_gracefully", pvh_with_a_kernel),
        ("guests_pvh_boots_a_disk_image_through_grub", pvh_through_grub),
        ("guests_qcow2_disk_is_served_by_qemu_qdisk", qcow2_through_qdisk),
    ]
}

/// The HVM tests, which xen_box.rs runs in a box of their own: QEMU 7.2's TCG can die under an
/// HVM guest (see xen-box/README.md), and that must not take the other tests with it.
pub fn hvm_tests() -> Vec<(&'static str, E2eTest)> {
    vec![
        ("hvm_seabios_guest_with_emulated_disk_and_nic_stops_on_the_power_button", hvm_power_button),
        ("hvm_guest_ignoring_the_power_button_is_destroyed_after_the_timeout", hvm_ignores_power_button),
        ("hvm_eve_app_runs_through_domainmgrd_and_halts", hvm_eve_app),
        ("hvm_ovmf_guest_reaches_the_uefi_shell", hvm_ovmf),
    ]
}

/// Taken for reading by every HVM test and for writing by the OVMF one: QEMU 7.2's multi-threaded
/// TCG died once with an OVMF guest and a SeaBIOS one booting at the same time (see
/// xen-box/README.md); alone, OVMF boots.
static OVMF_ALONE: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub(crate) fn hvm_turn() -> std::sync::RwLockReadGuard<'static, ()> {
    OVMF_ALONE.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Boot to READY for an HVM guest: QEMU's option ROM copies the kernel in through fw_cfg and
/// every emulated I/O is a round trip through Xen and QEMU, all under TCG: 1-3 minutes.
pub(crate) const HVM_BOOT: Duration = Duration::from_secs(420);

/// The xl.cfg of an HVM test guest: SeaBIOS boots the test kernel (QEMU's direct kernel boot),
/// without PV drivers (no Xen platform device, and `xen_nopv`: Linux would otherwise reach
/// xenstore through Xen's vector callback and take shutdown requests there), its console the
/// emulated serial port, written to `serial`.
fn hvm_cfg(name: &str, serial: &Path, xenbox_args: &str, devices: &str) -> String {
    let (_, ramdisk) = guest_files();
    let kernel = std::env::var("XENBOX_GUEST_KERNEL_COMPRESSED").unwrap_or_else(|_| "/var/lib/xenbox/vmlinuz".into());
    format!(
        "name = \"{name}\"\ntype = \"hvm\"\nkernel = \"{kernel}\"\nramdisk = \"{ramdisk}\"\n\
         extra = \"console=ttyS0 loglevel=1 xen_nopv {xenbox_args}\"\nmemory = 256\nvnc = 0\nxen_platform_pci = 0\n\
         serial = \"file:{}\"\non_poweroff = \"destroy\"\n{devices}",
        serial.display()
    )
}

/// Waits for a line containing `pattern` in the serial log `path`; that line.
fn wait_serial(path: &Path, pattern: &str, timeout: Duration) -> TestResult<String> {
    let text = || std::fs::read(path).map(|b| String::from_utf8_lossy(&b).replace('\r', "")).unwrap_or_default();
    wait_until(&format!("{pattern:?} on {}", path.display()), timeout, || {
        text().lines().find(|l| l.contains(pattern)).map(|l| l.trim().to_string())
    })
    .map_err(|e| format!("{e}; serial tail:\n{}", tail(&text(), 15)))
}

/// `Some` once `xl list` no longer shows `name` (for `wait_until`).
pub(crate) fn gone(name: &str) -> Option<()> {
    (!running(name).ok()?).then_some(())
}

fn hvm_power_button(_ctx: &Context) -> TestResult {
    let _turn = hvm_turn();
    let name = unique_name("hvm");
    let _cleanup = Cleanup(vec![name.clone()]);
    let d = daemon("dm-hvm")?;
    let image = d.root.join("hda.img");
    let from_dom0 = disk_image_with_words(&image)?;
    let serial = d.root.join("serial.log");
    let mac = "00:16:3e:5a:00:01";
    let devices = format!(
        "disk = [ 'format=raw,vdev=hda,access=rw,target={}' ]\nvif = [ 'bridge={},model=e1000,mac={mac}' ]\n",
        image.display(),
        bridge()
    );
    create(&d, &name, &hvm_cfg(&name, &serial, "xenbox.disk_io=1", &devices))?;
    wait_serial(&serial, "XENBOX-GUEST-READY", HVM_BOOT)?;
    // The emulated devices, seen by the guest's own drivers (no PV drivers without the platform
    // device): the IDE disk with dom0's words on it, the e1000 with its MAC.
    let block = wait_serial(&serial, "XENBOX-GUEST-BLOCK sda", Duration::ZERO)?;
    ensure(block.ends_with(" 131072"), || format!("guest sees {block:?}, expected 131072 sectors"))?;
    let read = wait_serial(&serial, "XENBOX-GUEST-DISK-READ sda", Duration::ZERO)?;
    ensure(read.ends_with(&from_dom0), || format!("the guest read {read:?}, dom0 wrote {from_dom0}"))?;
    wait_serial(&serial, &format!("XENBOX-GUEST-NET eth0 {mac}"), Duration::ZERO)?;
    wait_serial(&serial, "8086:100e driver=e1000", Duration::ZERO)?;
    let config = xl_config(&name)?;
    ensure(config["c_info"]["type"] == "hvm", || format!("xl list -l: c_info {}", config["c_info"]))?;
    ensure(config["nics"][0]["model"] == "e1000", || format!("xl list -l: nics {}", config["nics"]))?;

    // No PV drivers: the daemon presses the ACPI power button, and the guest powers off.
    let started = Instant::now();
    d.domainctl_ok(&["stop", &name, "--timeout", "240"])?;
    wait_until("the HVM guest to be gone", HVM_BOOT, || gone(&name))?;
    let took = started.elapsed();
    wait_serial(&serial, "XENBOX-GUEST-POWER-BUTTON", Duration::ZERO)?;
    wait_serial(&serial, "XENBOX-GUEST-POWEROFF", Duration::ZERO)?;
    ensure(took < Duration::from_secs(240), || format!("stop took {took:?}: the guest was destroyed, not shut down"))?;
    // What the guest wrote through the emulated disk reached the image.
    let data = std::fs::read(&image).ctx("read image")?;
    ensure(data.starts_with(b"XENBOX-GUEST-WROTE-sda"), || "the guest's write is not in the image".into())
}

fn hvm_ignores_power_button(_ctx: &Context) -> TestResult {
    let _turn = hvm_turn();
    let name = unique_name("hvm-deaf");
    let _cleanup = Cleanup(vec![name.clone()]);
    let d = daemon("dm-hvm-deaf")?;
    let serial = d.root.join("serial.log");
    create(&d, &name, &hvm_cfg(&name, &serial, "xenbox.ignore_shutdown=1", ""))?;
    wait_serial(&serial, "XENBOX-GUEST-READY", HVM_BOOT)?;
    let started = Instant::now();
    d.domainctl_ok(&["stop", &name, "--timeout", "20"])?;
    wait_until("the HVM guest to be gone", HVM_BOOT, || gone(&name))?;
    let took = started.elapsed();
    wait_serial(&serial, "XENBOX-GUEST-POWER-BUTTON", Duration::ZERO)?;
    wait_serial(&serial, "XENBOX-GUEST-IGNORED-SHUTDOWN", Duration::ZERO)?;
    ensure(took >= Duration::from_secs(20), || format!("gone after {took:?}, before the 20 s timeout"))
}

/// A started daemon rooted at `/tmp/<name>`.
pub(crate) fn daemon(name: &str) -> TestResult<DaemonProcess> {
    let mut d = DaemonProcess::new(name, &["timer.domain.shutdown:60"]);
    d.start()?;
    d.wait_ready()?;
    Ok(d)
}

/// Writes `text` as `<name>.cfg` beside the daemon and runs `domainctl create` on it.
pub(crate) fn create(d: &DaemonProcess, name: &str, text: &str) -> TestResult {
    let cfg = d.root.join(format!("{name}.cfg"));
    std::fs::write(&cfg, text).ctx("write cfg")?;
    let out = d.domainctl_ok(&["create", &cfg.display().to_string()])?;
    ensure(out.starts_with(&format!("{name}: started as domain")), || out.clone())
}

/// The domain's configuration as libxl recorded it, from `xl list -l NAME`.
/// The kernel and initramfs of the box's test guest.
pub(crate) fn guest_files() -> (String, String) {
    let spec = test_guest("x", "");
    (spec.kernel.unwrap_or_default(), spec.ramdisk.unwrap_or_default())
}

fn bridge() -> String {
    std::env::var("XENBOX_BRIDGE").unwrap_or_else(|_| "xenbr0".into())
}

fn pvh_with_a_kernel(_ctx: &Context) -> TestResult {
    let name = unique_name("pvh");
    let _cleanup = Cleanup(vec![name.clone()]);
    let d = daemon("dm-pvh")?;
    let (kernel, ramdisk) = guest_files();
    let text = format!(
        "name = \"{name}\"\ntype = \"pvh\"\nkernel = \"{kernel}\"\nramdisk = \"{ramdisk}\"\n\
         extra = \"console=hvc0 loglevel=4 xenbox.marker=PVH-{name}\"\nmemory = 128\nvcpus = 2\n\
         vif = [ 'bridge={}' ]\n",
        bridge()
    );
    create(&d, &name, &text)?;
    wait_console(&name, "XENBOX-GUEST-READY", BOOT)?;
    wait_console(&name, &format!("XENBOX-MARKER PVH-{name}"), BOOT)?;
    wait_console(&name, "XENBOX-GUEST-NET eth0", BOOT)?;
    // What libxl built: a PVH domain with its vif, as xl would have made it.
    let config = xl_config(&name)?;
    ensure(config["c_info"]["type"] == "pvh", || format!("xl list -l: c_info {}", config["c_info"]))?;
    ensure(config["nics"].as_array().is_some_and(|n| n.len() == 1), || format!("nics {}", config["nics"]))?;
    let row = xl_list()?.into_iter().find(|r| r.name == name).ok_or("not in xl list")?;
    ensure(row.vcpus == 2, || format!("xl list: {} vCPUs", row.vcpus))?;

    // A PVH guest has PV drivers: stop is a clean shutdown, well before the destroy timeout.
    let started = Instant::now();
    d.domainctl_ok(&["stop", &name, "--timeout", "60"])?;
    wait_until("the PVH guest to be gone", BOOT, || gone(&name))?;
    wait_console(&name, "XENBOX-GUEST-POWEROFF", Duration::from_secs(5))?;
    ensure(started.elapsed() < Duration::from_secs(60), || format!("stop took {:?}", started.elapsed()))
}

/// A disk image with an ext2 filesystem holding GRUB's config, the test guest's kernel and its
/// initramfs, made with `mke2fs -d` (no mount, no loop device).
pub(crate) fn grub_disk(dir: &Path, marker: &str) -> TestResult<PathBuf> {
    let (_, ramdisk) = guest_files();
    let kernel = std::env::var("XENBOX_GUEST_KERNEL_COMPRESSED").unwrap_or_else(|_| "/var/lib/xenbox/vmlinuz".into());
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("boot/grub")).ctx("mkdir boot/grub")?;
    std::fs::copy(&kernel, tree.join("boot/vmlinuz")).ctx("copy kernel")?;
    std::fs::copy(&ramdisk, tree.join("boot/initrd")).ctx("copy initramfs")?;
    let grub_cfg = format!(
        "set timeout=0\nmenuentry \"xenbox\" {{\n  linux /boot/vmlinuz console=hvc0 loglevel=4 xenbox.marker={marker}\n  \
         initrd /boot/initrd\n}}\n"
    );
    std::fs::write(tree.join("boot/grub/grub.cfg"), grub_cfg).ctx("write grub.cfg")?;
    let image = dir.join("disk.img");
    run("mke2fs", &["-q", "-F", "-t", "ext2", "-d", &tree.display().to_string(), &image.display().to_string(), "32M"])?;
    Ok(image)
}

fn pvh_through_grub(_ctx: &Context) -> TestResult {
    let name = unique_name("pvh-grub");
    let _cleanup = Cleanup(vec![name.clone()]);
    let d = daemon("dm-pvh-grub")?;
    let image = grub_disk(&d.root, &format!("GRUB-{name}"))?;
    // Debian's grub-xen-host: GRUB built for the PVH entry, with a config that finds
    // /boot/grub/grub.cfg on the guest's disks.
    let text = format!(
        "name = \"{name}\"\ntype = \"pvh\"\nkernel = \"/usr/lib/grub-xen/grub-i386-xen_pvh.bin\"\nmemory = 256\n\
         disk = [ 'format=raw,vdev=xvda,access=rw,target={}' ]\n",
        image.display()
    );
    create(&d, &name, &text)?;
    // The marker is on the kernel command line of grub.cfg only: GRUB read the disk and booted it.
    wait_console(&name, &format!("XENBOX-MARKER GRUB-{name}"), BOOT)?;
    wait_console(&name, "XENBOX-GUEST-READY", BOOT)?;
    let config = xl_config(&name)?;
    ensure(config["c_info"]["type"] == "pvh", || format!("xl list -l: c_info {}", config["c_info"]))?;
    d.domainctl_ok(&["destroy", &name])?;
    Ok(())
}

fn qcow2_through_qdisk(_ctx: &Context) -> TestResult {
    let name = unique_name("qcow2");
    let _cleanup = Cleanup(vec![name.clone()]);
    let d = daemon("dm-qcow2")?;
    let image = d.root.join("disk.qcow2");
    run("qemu-img", &["create", "-q", "-f", "qcow2", &image.display().to_string(), "64M"])?;
    let (kernel, ramdisk) = guest_files();
    let text = format!(
        "name = \"{name}\"\nkernel = \"{kernel}\"\nramdisk = \"{ramdisk}\"\n\
         extra = \"console=hvc0 loglevel=4 xenbox.disk_io=1\"\nmemory = 128\n\
         disk = [ 'format=qcow2,vdev=xvda,access=rw,target={}' ]\n",
        image.display()
    );
    create(&d, &name, &text)?;
    let line = wait_console(&name, "XENBOX-GUEST-BLOCK xvda", BOOT)?;
    ensure(line.ends_with(" 131072"), || format!("guest sees {line:?}, expected 131072 sectors"))?;
    wait_console(&name, "XENBOX-GUEST-DISK-WROTE xvda", BOOT)?;
    // libxl chose QEMU's qdisk for the qcow2 image, as xl does.
    let config = xl_config(&name)?;
    ensure(config["disks"][0]["format"] == "qcow2", || format!("xl list -l: disks {}", config["disks"]))?;
    let domid = xl(&["domid", &name])?.trim().to_string();
    let backend = xl(&["block-list", &domid])?;
    ensure(backend.contains("/backend/qdisk/"), || format!("xl block-list: {backend}"))?;
    d.domainctl_ok(&["destroy", &name])?;
    // What the guest wrote is in the qcow2 image (read back through qemu-img).
    let raw = d.root.join("disk.raw");
    wait_until("the guest's write in the qcow2 image", BOOT, || {
        run("qemu-img", &["convert", "-O", "raw", &image.display().to_string(), &raw.display().to_string()]).ok()?;
        let data = std::fs::read(&raw).ok()?;
        data.starts_with(b"XENBOX-GUEST-WROTE-xvda").then_some(())
    })
}

/// An EVE app in HVM mode (`VirtualizationMode` 1) through domainmgrd's EVE path: the guest has
/// the Xen platform device, so its kernel runs PV drivers (its console is the PV one xenconsoled
/// logs), and deactivating it is a clean shutdown.
fn hvm_eve_app(_ctx: &Context) -> TestResult {
    let _turn = hvm_turn();
    let mut daemon = DaemonProcess::new("dm-hvm-eve", &["timer.domain.shutdown:120"]);
    daemon.start()?;
    let uuid = xenctl::Uuid::new_v4().to_string();
    let kernel = std::env::var("XENBOX_GUEST_KERNEL_COMPRESSED").unwrap_or_else(|_| "/var/lib/xenbox/vmlinuz".into());
    let config = |activate: bool| {
        let mut c = eve_config(&uuid, "dm-hvm-eve", 111, activate, "console=hvc0 xenbox.marker=EVE-HVM");
        c["VirtualizationMode"] = 1.into();
        c["Kernel"] = kernel.clone().into();
        c["Memory"] = 262144.into();
        c
    };
    daemon.write_config(&config(true))?;
    let st = daemon.wait_status(&uuid, "RUNNING", HVM_BOOT, state_is(RUNNING))?;
    let name = st["DomainName"].as_str().unwrap_or_default().to_string();
    let _cleanup = Cleanup(vec![name.clone()]);
    let domid = st["DomainId"].as_u64().unwrap_or_default();
    let oracle = xl(&["domid", &name])?;
    ensure(oracle.trim() == domid.to_string(), || format!("status DomainId {domid}, xl domid {name} says {oracle}"))?;
    wait_console(&name, "XENBOX-MARKER EVE-HVM", HVM_BOOT)?;
    wait_console(&name, "XENBOX-GUEST-READY", HVM_BOOT)?;
    let xl_cfg = xl_config(&name)?;
    ensure(xl_cfg["c_info"]["type"] == "hvm", || format!("xl list -l: c_info {}", xl_cfg["c_info"]))?;

    daemon.write_config(&config(false))?;
    daemon.wait_status(&uuid, "HALTED", HVM_BOOT, state_is(HALTED))?;
    ensure(gone(&name).is_some(), || format!("{name} is still in xl list"))?;
    ensure(console_text(&name).contains("XENBOX-GUEST-POWEROFF"), || "the guest was not shut down gracefully".into())?;
    let status = daemon.terminate()?;
    ensure(status.success(), || format!("domainmgrd exited {status} on SIGTERM"))
}

/// An HVM guest with `bios = "ovmf"`: Debian's OVMF (the `ovmf` package, where libxl looks for
/// it) boots, finds no disk and starts its UEFI shell, which it says on the serial console.
fn hvm_ovmf(_ctx: &Context) -> TestResult {
    let _alone = OVMF_ALONE.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    let name = unique_name("ovmf");
    let _cleanup = Cleanup(vec![name.clone()]);
    let d = daemon("dm-ovmf")?;
    let serial = d.root.join("serial.log");
    let text = format!(
        "name = \"{name}\"\ntype = \"hvm\"\nbios = \"ovmf\"\nmemory = 256\nvnc = 0\nserial = \"file:{}\"\n",
        serial.display()
    );
    create(&d, &name, &text)?;
    wait_serial(&serial, "UEFI Interactive Shell", HVM_BOOT)?;
    let config = xl_config(&name)?;
    let bios = &config["b_info"]["type.hvm"]["bios"];
    ensure(bios == "ovmf", || format!("xl list -l: b_info.type.hvm.bios {bios}"))?;
    d.domainctl_ok(&["destroy", &name])?;
    wait_until("the OVMF guest to be gone", HVM_BOOT, || gone(&name))
}
