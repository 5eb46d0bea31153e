//! The domains' own copies of shared images on real Xen (domainmgrd's diskcopies.rs): a
//! `domainmgrd` in dom0 with an image store and a persist directory of its own boots the box's
//! test guest (`xenbox.disk_io=1`: it prints what dom0 put 1 MiB into each disk, then writes
//! its own words at the start) from its copy of a shared image; the guest's console and the
//! files in dom0 are the oracle. The copy is reused after a daemon restart and a halt, and goes
//! with the config; another domain boots while a (rate-limited, so long) copy is made.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use xenctl::Context;

use crate::*;

const BOOT: Duration = Duration::from_secs(180);
const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// The tests of this module, for xen-e2e.
pub fn tests() -> Vec<(&'static str, E2eTest)> {
    vec![
        ("disk_copy_guest_writes_its_own_copy_reused_after_restart_and_removed_with_its_config", own_copy),
        ("disk_copy_another_domain_boots_while_a_large_copy_is_made", boots_meanwhile),
    ]
}

/// A daemon whose image store and persist directory are under its root; the store's image
/// (EVE's `<sha>/<file>`, 64 MiB sparse with dom0's words 1 MiB in) and the words.
fn daemon_with_store(name: &str, more: &[&str]) -> TestResult<(DaemonProcess, PathBuf, String)> {
    let mut d = DaemonProcess::new(name, &["timer.domain.poll:3600"]);
    let store = d.root.join("verified");
    std::fs::create_dir_all(store.join(SHA)).ctx("the store")?;
    std::fs::create_dir_all(d.root.join("persist")).ctx("persist")?;
    let image = store.join(SHA).join("disk.img");
    let words = disk_image_with_words(&image)?;
    d.args = vec![
        format!("--image-store={}", store.display()),
        format!("--persist-dir={}", d.root.join("persist").display()),
    ];
    d.args.extend(more.iter().map(|s| s.to_string()));
    d.start()?;
    d.wait_ready()?;
    Ok((d, image, words))
}

fn app(uuid: &str, name: &str, app_num: u32, image: &Path) -> Value {
    let mut config = eve_config(uuid, name, app_num, true, "xenbox.disk_io=1");
    config["DiskConfigList"] = serde_json::json!([{"FileLocation": image, "ReadOnly": false, "Format": 1}]);
    config
}

/// The first `n` bytes of `path` at `offset`, as text.
fn text_at(path: &Path, offset: u64, n: usize) -> TestResult<String> {
    let mut buf = vec![0u8; n];
    std::fs::File::open(path).ctx("open")?.read_exact_at(&mut buf, offset).ctx("read")?;
    Ok(String::from_utf8_lossy(&buf).trim_end_matches('\0').to_string())
}

fn own_copy(_ctx: &Context) -> TestResult {
    let (mut d, image, words) = daemon_with_store("dm-diskcopy", &[])?;
    let uuid = xenctl::Uuid::new_v4().to_string();
    let mut config = app(&uuid, "dm-diskcopy", 131, &image);
    d.write_config(&config)?;
    let st = d.wait_status(&uuid, "RUNNING", BOOT, state_is(RUNNING))?;
    let name = st["DomainName"].as_str().unwrap_or_default().to_string();
    let _cleanup = Cleanup(vec![name.clone()]);
    let copy = d.root.join(format!("persist/img/{SHA}-{uuid}.img"));
    ensure(st["DiskCopies"][0]["Copy"] == copy.display().to_string(), || format!("status: {}", st["DiskCopies"]))?;
    // The guest read dom0's words through its copy and wrote its own into the copy only.
    wait_console(&name, "XENBOX-GUEST-DISK-WROTE xvda", BOOT)?;
    let console = console_text(&name);
    ensure(console.contains(&format!("XENBOX-GUEST-DISK-READ xvda {words}")), || tail(&console, 30))?;
    ensure(text_at(&copy, 0, 64)? == "XENBOX-GUEST-WROTE-xvda", || "the guest's words are not in its copy".into())?;
    ensure(text_at(&image, 0, 64)?.is_empty(), || "the shared image was written".into())?;
    ensure(text_at(&image, 1 << 20, 64)? == words, || "the shared image changed".into())?;
    let listed = d.domainctl_ok(&["copies"])?;
    ensure(listed.contains(&copy.display().to_string()) && listed.contains("dm-diskcopy"), || listed.clone())?;

    // The daemon restarts (the guest runs on); then the app is halted, dom0 leaves a mark in
    // the copy, and the app boots again: from the same copy (the guest reads the mark).
    let inode = std::fs::metadata(&copy).ctx("stat")?.ino();
    d.terminate()?;
    d.start()?;
    d.wait_ready()?;
    ensure(running(&name)?, || "the guest did not outlive the daemon".into())?;
    config["Activate"] = false.into();
    d.write_config(&config)?;
    d.wait_status(&uuid, "HALTED", BOOT, state_is(HALTED))?;
    let mark = format!("KEPT-{}", std::process::id());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&copy)
        .ctx("open copy")?
        .write_all_at(mark.as_bytes(), 1 << 20)
        .ctx("mark")?;
    config["Activate"] = true.into();
    d.write_config(&config)?;
    let st = d.wait_status(&uuid, "RUNNING again", BOOT, state_is(RUNNING))?;
    ensure(st["DiskCopies"][0]["Reused"] == true, || format!("status: {}", st["DiskCopies"]))?;
    wait_console(&name, &format!("XENBOX-GUEST-DISK-READ xvda {mark}"), BOOT)?;
    ensure(std::fs::metadata(&copy).ctx("stat")?.ino() == inode, || "the copy was made anew".into())?;

    // Deleted: the copy goes; the shared image stays.
    config["Activate"] = false.into();
    d.write_config(&config)?;
    d.wait_status(&uuid, "HALTED", BOOT, state_is(HALTED))?;
    std::fs::remove_file(d.root.join(format!("zedmanager/DomainConfig/{uuid}.json"))).ctx("delete config")?;
    wait_until("the status to go", BOOT, || d.status(&uuid).is_none().then_some(()))?;
    ensure(!copy.exists(), || format!("{} is still there", copy.display()))?;
    ensure(image.exists(), || "the shared image went".into())?;
    d.terminate().map(drop)
}

fn boots_meanwhile(_ctx: &Context) -> TestResult {
    // 4 MiB/s on a 256 MiB image: the copy takes a minute at least. The image is all holes
    // (dom0's /tmp is a tmpfs the other tests share): its copy is made at once and then waits
    // for its rate, on the domain's thread, before it is put in place and the domain boots.
    let (d, _, _) = daemon_with_store("dm-diskcopy-rate", &["--disk-copy-rate=4"])?;
    let big = d.root.join(format!("verified/{SHA}/big.img"));
    std::fs::File::create(&big).and_then(|f| f.set_len(256 << 20)).ctx("big image")?;
    let slow = xenctl::Uuid::new_v4().to_string();
    d.write_config(&app(&slow, "dm-diskcopy-slow", 132, &big))?;
    d.wait_status(&slow, "its copy to be under way", BOOT, |s| s["DiskCopies"][0]["Done"].as_u64().is_some())?;
    let quick = xenctl::Uuid::new_v4().to_string();
    d.write_config(&eve_config(&quick, "dm-diskcopy-quick", 133, true, ""))?;
    let st = d.wait_status(&quick, "the other domain RUNNING", BOOT, state_is(RUNNING))?;
    let quick_name = st["DomainName"].as_str().unwrap_or_default().to_string();
    let _cleanup = Cleanup(vec![quick_name]);
    let copying = d.status(&slow).ok_or("no status of the copying app")?;
    // Still copying: no domain, the copy not in place (its method is said when it is).
    let c = &copying["DiskCopies"][0];
    ensure(copying["DomainId"] == 0 && copying["State"] == 114 && c["Method"] == "", || {
        format!("the copying app was done before the other ran: {}", copying["DiskCopies"])
    })?;
    let st = d.wait_status(&slow, "RUNNING from its copy", BOOT, state_is(RUNNING))?;
    let _cleanup2 = Cleanup(vec![st["DomainName"].as_str().unwrap_or_default().to_string()]);
    Ok(())
}
