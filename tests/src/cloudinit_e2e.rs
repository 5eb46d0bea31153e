//! EVE apps' cloud-init config disks on real Xen: a `domainmgrd` process in dom0 boots an EVE
//! app with user data; the box's PV test guest (`xenbox.cidata=1`) mounts every xvd disk that
//! is an ISO 9660 image and prints its label and its files, which is what the test reads: what
//! the guest itself saw. `xl list -l` is the oracle for the disk libxl was given, and
//! `xenstore-read` for the SMBIOS product name of an OpenStack (`MetaDataType` 2) app.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use xenctl::Context;

use crate::*;

const BOOT: Duration = Duration::from_secs(120);

/// The tests of this module, for xen-e2e.
pub fn tests() -> Vec<(&'static str, E2eTest)> {
    vec![("eve_app_cloud_init_config_disk_is_seen_by_the_guest", config_disk_seen_by_the_guest)]
}

/// What the guest reported of its config disk on `disk`: its label (`label=<volume id>`), then
/// each file's lines.
#[derive(Debug, Default)]
struct Seen {
    label: String,
    files: BTreeMap<String, Vec<String>>,
}

fn seen(console: &str, disk: &str) -> Seen {
    let mut s = Seen::default();
    for line in console.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(rest) = line.strip_prefix(&format!("XENBOX-GUEST-CIDATA {disk} ")) {
            s.label = rest.to_string();
        } else if let Some(rest) = line.strip_prefix(&format!("XENBOX-GUEST-CIDATA-FILE {disk} ")) {
            let file = rest.split(' ').next().unwrap_or_default();
            s.files.entry(file.to_string()).or_default();
        } else if let Some(rest) = line.strip_prefix(&format!("XENBOX-GUEST-CIDATA-LINE {disk} ")) {
            let (file, text) = rest.split_once(' ').unwrap_or((rest, ""));
            s.files.entry(file.to_string()).or_default().push(text.to_string());
        }
    }
    s
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// Boots the app (`config`), waits for its guest to be ready and returns its name and what it
/// saw on xvdz.
fn boot_and_look(daemon: &DaemonProcess, uuid: &str, config: &Value) -> TestResult<(String, Seen, Value)> {
    daemon.write_config(config)?;
    let version = config["UUIDandVersion"]["Version"].as_str().unwrap_or_default().to_string();
    let st = daemon.wait_status(uuid, "RUNNING", BOOT, |s| {
        s["State"].as_u64() == Some(RUNNING)
            && s["DomainName"].as_str().is_some_and(|n| n.contains(&format!(".{version}.")))
    })?;
    let name = st["DomainName"].as_str().unwrap_or_default().to_string();
    wait_console(&name, "XENBOX-GUEST-READY", BOOT)?;
    Ok((name.clone(), seen(&console_text(&name), "xvdz"), st))
}

fn halt(daemon: &DaemonProcess, uuid: &str, config: &mut Value) -> TestResult {
    config["Activate"] = false.into();
    daemon.write_config(config)?;
    daemon.wait_status(uuid, "HALTED", BOOT, state_is(HALTED)).map(drop)
}

fn config_disk_seen_by_the_guest(_ctx: &Context) -> TestResult {
    let mut daemon = DaemonProcess::new("dm-cidata", &["timer.domain.poll:3600"]);
    daemon.start()?;
    daemon.wait_ready()?;
    let uuid = xenctl::Uuid::new_v4().to_string();
    let image = daemon.root.join(format!("domainmgr/cloudinit/{uuid}.cidata"));
    let user_data = "#cloud-config\nruncmd:\n  - echo hello from eve\n";
    let mut config = eve_config(&uuid, "dm-cidata", 121, true, "xenbox.cidata=1");
    config["pubsub-large-CloudInitUserData"] = base64(user_data).into();
    config["MetaDataType"] = 0.into();

    // MetaDataType 0: NoCloud's cidata label, meta-data and user-data, as EVE writes them.
    let (name, seen, st) = boot_and_look(&daemon, &uuid, &config)?;
    let _cleanup = Cleanup(vec![name.clone()]);
    ensure(seen.label == "label=cidata", || {
        format!("the guest's xvdz: {seen:?}\nconsole tail:\n{}", tail(&console_text(&name), 30))
    })?;
    let want = BTreeMap::from([
        ("meta-data".to_string(), lines(&format!("instance-id: {uuid}/1\nlocal-hostname: {uuid}\n"))),
        ("user-data".to_string(), lines(user_data)),
    ]);
    ensure(seen.files == want, || format!("the guest saw {:#?}\nwanted {want:#?}", seen.files))?;
    // The status lists it after the app's disks, as EVE does; libxl got it read-only as xvdz.
    let disks = st["DiskStatusList"].as_array().cloned().unwrap_or_default();
    let last = disks.last().cloned().unwrap_or_default();
    ensure(
        last["Vdev"] == "xvdz"
            && last["Devtype"] == "cdrom"
            && last["ReadOnly"] == true
            && last["FileLocation"] == image.display().to_string(),
        || format!("DiskStatusList {disks:?}"),
    )?;
    let xl_disks = xl_config(&name)?["disks"].as_array().cloned().unwrap_or_default();
    let xvdz = xl_disks.iter().find(|d| d["vdev"] == "xvdz").cloned().unwrap_or_default();
    ensure(xvdz["pdev_path"] == image.display().to_string() && xvdz["readwrite"].as_u64().unwrap_or(0) == 0, || {
        format!("xl list -l disks: {xl_disks:?}")
    })?;
    halt(&daemon, &uuid, &mut config)?;

    // MetaDataType 3, a new version: the next boot gets the multipart user data laid out.
    let multipart = "Content-Type: multipart/mixed; boundary=\"B\"\nMIME-Version: 1.0\n\n\
        --B\nContent-Disposition: attachment; filename=\"meta-data\"\n\ninstance-id: multi\n\
        --B\nContent-Disposition: attachment; filename=\"openstack/latest/user_data\"\n\n#cloud-config\nhostname: mp\n\
        --B--\n";
    config["Activate"] = true.into();
    config["UUIDandVersion"]["Version"] = "2".into();
    config["MetaDataType"] = 3.into();
    config["pubsub-large-CloudInitUserData"] = base64(multipart).into();
    let (name2, seen, _) = boot_and_look(&daemon, &uuid, &config)?;
    let _cleanup2 = Cleanup(vec![name2.clone()]);
    let want = BTreeMap::from([
        ("meta-data".to_string(), lines("instance-id: multi")),
        ("openstack/latest/user_data".to_string(), lines("#cloud-config\nhostname: mp")),
    ]);
    ensure(seen.files == want, || format!("the guest saw {:#?}\nwanted {want:#?}", seen.files))?;
    halt(&daemon, &uuid, &mut config)?;

    // MetaDataType 2 (OpenStack): no disk, and EVE's SMBIOS product name in xenstore.
    config["Activate"] = true.into();
    config["UUIDandVersion"]["Version"] = "3".into();
    config["MetaDataType"] = 2.into();
    let (name3, seen, st) = boot_and_look(&daemon, &uuid, &config)?;
    let _cleanup3 = Cleanup(vec![name3.clone()]);
    ensure(seen.files.is_empty() && seen.label.is_empty(), || format!("the guest saw {seen:?}"))?;
    ensure(!image.exists(), || format!("{} is still there", image.display()))?;
    let domid = st["DomainId"].as_u64().unwrap_or_default();
    let product = xenstore_read(&format!("/local/domain/{domid}/bios-strings/system-product-name"))?;
    ensure(product == "OpenStack Compute", || format!("system-product-name {product:?}"))?;
    halt(&daemon, &uuid, &mut config)?;

    // Deleted with its config.
    std::fs::remove_file(daemon.root.join(format!("zedmanager/DomainConfig/{uuid}.json"))).ctx("delete config")?;
    wait_until("the status to go", BOOT, || daemon.status(&uuid).is_none().then_some(()))?;
    ensure(!image.exists(), || format!("{} is still there", image.display()))?;
    let exit = daemon.terminate()?;
    ensure(exit.success(), || format!("domainmgrd exited {exit} on SIGTERM"))
}

fn base64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
