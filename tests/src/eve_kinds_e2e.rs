//! End-to-end tests of the kinds of app EVE runs, on real Xen in the box, each through a
//! `domainmgrd` process fed EVE `DomainConfig` files: a PV app without a kernel booting its
//! firmware as PVH (the box has no OVMF built for PVH, which Debian does not package, so GRUB's
//! PVH image stands in as the firmware: it reads the app's disk as OVMF would), the same app
//! through GRUB's PV image where PVH is not had (both with their consoles collected as EVE
//! collects them), and an FML app with EVE's emulated hardware.
//! Each is checked against `xl` (what libxl recorded) and the guest's console.

use std::path::Path;

use serde_json::Value;
use xenctl::Context;

use crate::guests_e2e::{BOOT, HVM_BOOT, gone, grub_disk, hvm_turn};
use crate::*;

/// The tests of this module that run in the suite's box, for xen-e2e.
pub fn tests() -> Vec<(&'static str, E2eTest)> {
    vec![
        ("guests_eve_pv_app_without_a_kernel_boots_its_firmware_as_pvh", pv_app_firmware_as_pvh),
        ("guests_eve_pv_app_without_a_kernel_boots_pv_grub_where_pvh_is_off", pv_app_through_pv_grub),
    ]
}

/// The HVM tests of this module (the HVM box).
pub fn hvm_tests() -> Vec<(&'static str, E2eTest)> {
    vec![("hvm_eve_fml_app_gets_ahci_disks_and_emulated_nics", fml_app)]
}

/// Debian's grub-xen-host: GRUB built for the PVH entry, and for PV.
const GRUB_PVH: &str = "/usr/lib/grub-xen/grub-i386-xen_pvh.bin";
const GRUB_PV: &str = "/usr/lib/grub-xen/grub-x86_64-xen.bin";

/// An EVE PV app with no kernel whose one disk is `image`; `DisableLogs` as `quiet` says.
fn kernelless_app(uuid: &str, name: &str, app_num: u32, activate: bool, image: &Path, quiet: bool) -> Value {
    let mut c = eve_config(uuid, name, app_num, activate, "");
    c["DisableLogs"] = quiet.into();
    c["Kernel"] = "".into();
    c["Ramdisk"] = "".into();
    c["Memory"] = 262144.into();
    c["DiskConfigList"] = serde_json::json!([{
        "VolumeKey": "root", "FileLocation": image.display().to_string(), "Format": 1, "ReadOnly": false,
        "DisplayName": "root", "Target": 1
    }]);
    c
}

/// Runs a kernel-less PV app through a daemon started with `args`; checks what libxl made of
/// it (`xen_type`, its kernel `kernel`), that its status's BootNote says `note`, that the
/// guest booted what GRUB found on its disk, that its console was collected into its console
/// log (and into the daemon's log unless `quiet`, its DisableLogs), and that deactivating it
/// is a clean shutdown.
fn kernelless(
    daemon_name: &str,
    app_num: u32,
    args: &[&str],
    (xen_type, kernel, note): (&str, &str, &str),
    quiet: bool,
) -> TestResult {
    let mut daemon = DaemonProcess::new(daemon_name, &["timer.domain.shutdown:120"]);
    daemon.args = args.iter().map(|a| a.to_string()).collect();
    daemon.pv_as_pvh = true;
    daemon.start()?;
    let uuid = xenctl::Uuid::new_v4().to_string();
    let marker = format!("EVE-FW-{app_num}");
    let image = grub_disk(&daemon.root, &marker)?;
    daemon.write_config(&kernelless_app(&uuid, daemon_name, app_num, true, &image, quiet))?;
    let st = daemon.wait_status(&uuid, "RUNNING", BOOT, state_is(RUNNING))?;
    let name = st["DomainName"].as_str().unwrap_or_default().to_string();
    let _cleanup = Cleanup(vec![name.clone()]);
    let said = st["BootNote"].as_str().unwrap_or_default();
    ensure(said.contains(note), || format!("status BootNote {said:?}, wanted {note:?}"))?;
    let config = xl_config(&name)?;
    ensure(config["c_info"]["type"] == xen_type, || format!("xl list -l: c_info {}", config["c_info"]))?;
    ensure(config["b_info"]["kernel"] == kernel, || format!("xl list -l: kernel {}", config["b_info"]["kernel"]))?;
    // The xl config it wrote is what xl reads, to the JSON its --dry-run gives.
    xlcfg_e2e::xl_reads_as_dry_run(&daemon, &daemon.root.join(format!("domainmgr/xen/xen{app_num}.cfg")))?;
    // The marker is on the kernel command line of the disk's grub.cfg only: the firmware read
    // the app's disk and booted what it found there.
    wait_console(&name, &format!("XENBOX-MARKER {marker}"), BOOT)?;
    wait_console(&name, "XENBOX-GUEST-READY", BOOT)?;
    // The app's console as EVE collects it: the daemon's hub read it into the app's console
    // log (what xenconsoled logged above is the same output), and into the daemon's own log
    // (EVE's log collector takes it from there) unless the app says DisableLogs.
    let console_log = daemon.root.join(format!("run/console/{uuid}.log"));
    wait_until("the app's console log to have the guest's READY", BOOT, || {
        std::fs::read_to_string(&console_log).ok().filter(|l| l.contains("XENBOX-GUEST-READY")).map(|_| ())
    })?;
    let daemon_log = std::fs::read_to_string(daemon.root.join("daemon.log")).ctx("daemon.log")?;
    let in_daemon_log = daemon_log.lines().any(|l| l.contains(" console] ") && l.contains("XENBOX-GUEST-READY"));
    ensure(in_daemon_log != quiet, || format!("console lines in daemon.log: {in_daemon_log}, DisableLogs {quiet}"))?;
    daemon.write_config(&kernelless_app(&uuid, daemon_name, app_num, false, &image, quiet))?;
    daemon.wait_status(&uuid, "HALTED", BOOT, state_is(HALTED))?;
    ensure(gone(&name).is_some(), || format!("{name} is still in xl list"))?;
    ensure(console_text(&name).contains("XENBOX-GUEST-POWEROFF"), || "the guest was not shut down gracefully".into())?;
    let status = daemon.terminate()?;
    ensure(status.success(), || format!("domainmgrd exited {status} on SIGTERM"))
}

/// EVE's rule on a host that runs HVM guests (the box does): PVH, the firmware as the kernel.
fn pv_app_firmware_as_pvh(_ctx: &Context) -> TestResult {
    let firmware = format!("--pvh-firmware={GRUB_PVH}");
    let note = format!("booting the firmware {GRUB_PVH}");
    kernelless("dm-eve-fw", 121, &[&firmware], ("pvh", GRUB_PVH, &note), false)
}

/// Where PVH is not had (here: turned off, as on a host without HVM), GRUB's PV image.
fn pv_app_through_pv_grub(_ctx: &Context) -> TestResult {
    let grub = format!("--pv-grub={GRUB_PV}");
    kernelless("dm-eve-pvgrub", 122, &["--pv-as-pvh=never", &grub], ("pv", GRUB_PV, "through GRUB"), true)
}

/// An FML app (`VirtualizationMode` 3) as zedmanager writes it (OVMF as its BootLoader, a
/// "legacy" GPU config): HVM with AHCI disks and an emulated NIC beside each PV one.
fn fml_app(_ctx: &Context) -> TestResult {
    let _turn = hvm_turn();
    let mut daemon = DaemonProcess::new("dm-fml", &["timer.domain.shutdown:120"]);
    daemon.start()?;
    let uuid = xenctl::Uuid::new_v4().to_string();
    let kernel = std::env::var("XENBOX_GUEST_KERNEL_COMPRESSED").unwrap_or_else(|_| "/var/lib/xenbox/vmlinuz".into());
    let image = daemon.root.join("data.img");
    std::fs::File::create(&image).and_then(|f| f.set_len(16 << 20)).ctx("data image")?;
    let config = |activate: bool| {
        let mut c = eve_config(&uuid, "dm-fml", 123, activate, "console=hvc0 xenbox.marker=EVE-FML");
        c["VirtualizationMode"] = 3.into();
        c["Kernel"] = kernel.clone().into();
        c["Memory"] = 262144.into();
        c["BootLoader"] = "/usr/lib/xen/boot/OVMF_CODE.fd".into();
        c["GPUConfig"] = "legacy".into();
        c["DiskConfigList"] = serde_json::json!([{
            "VolumeKey": "data", "FileLocation": image.display().to_string(), "Format": 1, "Target": 1
        }]);
        c
    };
    daemon.write_config(&config(true))?;
    let st = daemon.wait_status(&uuid, "RUNNING", HVM_BOOT, state_is(RUNNING))?;
    let name = st["DomainName"].as_str().unwrap_or_default().to_string();
    let _cleanup = Cleanup(vec![name.clone()]);
    let xl_cfg = xl_config(&name)?;
    let hvm = &xl_cfg["b_info"]["type.hvm"];
    ensure(xl_cfg["c_info"]["type"] == "hvm", || format!("xl list -l: c_info {}", xl_cfg["c_info"]))?;
    ensure(hvm["hdtype"] == "ahci", || format!("xl list -l: b_info.type.hvm {hvm}"))?;
    ensure(hvm["serial_list"] == serde_json::json!(["pty"]), || {
        format!("xl list -l: serial_list {}", hvm["serial_list"])
    })?;
    ensure(xl_cfg["nics"][0]["nictype"] == "vif_ioemu", || format!("xl list -l: nics {}", xl_cfg["nics"]))?;
    ensure(xl_cfg["b_info"]["bootloader"].is_null(), || format!("bootloader {}", xl_cfg["b_info"]["bootloader"]))?;
    xlcfg_e2e::xl_reads_as_dry_run(&daemon, &daemon.root.join("domainmgr/xen/xen123.cfg"))?;
    // The emulated NIC's tap beside the PV vif, which EVE reports as the one in use: it was
    // there when the domain started (the guest's PV drivers unplug the emulated NIC later,
    // and its tap goes with it).
    let vif_used = st["VifList"][0]["VifUsed"].as_str().unwrap_or_default().to_string();
    ensure(vif_used.ends_with("-emu"), || format!("status VifUsed {vif_used:?}: wanted the emulated NIC's tap"))?;
    wait_console(&name, "XENBOX-MARKER EVE-FML", HVM_BOOT)?;
    wait_console(&name, "XENBOX-GUEST-READY", HVM_BOOT)?;
    daemon.write_config(&config(false))?;
    daemon.wait_status(&uuid, "HALTED", HVM_BOOT, state_is(HALTED))?;
    ensure(gone(&name).is_some(), || format!("{name} is still in xl list"))?;
    let status = daemon.terminate()?;
    ensure(status.success(), || format!("domainmgrd exited {status} on SIGTERM"))
}
