//! The domains' own copies of shared images (diskcopies.rs), through the daemon and the
//! simulated hypervisor: an EVE app whose writable disk is in the image store boots from its
//! copy, made once; the copy survives a daemon restart and a deactivation and is reused; it
//! goes when the config is deleted; a copy that cannot be made fails the boot, saying why;
//! read-only disks use the image in place.

// Test helpers below fail by panicking, which is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use common::*;
use domainmgrd::diskcopies::{Choice, DiskCopies};
use domainmgrd::eve::SwState;
use uuid::Uuid;

const SHA: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";

/// The store with one verified image (EVE's `<sha>/<file>`), and the options that use it.
fn with_store(env: &Env) -> (domainmgrd::supervisor::Options, PathBuf, DiskCopies) {
    let store = env.dir.path().join("verified");
    std::fs::create_dir_all(store.join(SHA)).unwrap();
    let image = store.join(SHA).join("app.img");
    std::fs::write(&image, vec![0x5a; 3 << 20]).unwrap();
    std::fs::create_dir_all(env.dir.path().join("persist")).unwrap();
    let copies = DiskCopies { store, dir: env.dir.path().join("persist/img"), choice: Choice::Auto, rate_mib: None };
    let mut options = env.options();
    options.disk_copies = Some(copies.clone());
    (options, image, copies)
}

fn disk_of(env: &Env, uuid: Uuid, vdev: &str) -> String {
    let dom = env.sim.domains().into_iter().find(|d| d.spec.uuid == uuid).expect("its domain");
    dom.spec.disks.iter().find(|d| d.vdev == vdev).and_then(|d| d.target.clone()).expect("the disk")
}

#[test]
fn an_app_boots_from_its_own_copy_kept_until_its_config_is_deleted() {
    let mut env = Env::new();
    let (options, image, copies) = with_store(&env);
    env.start_with(options.clone());
    let uuid = Uuid::new_v4();
    let mut config = config(uuid, "app", true);
    config["DiskConfigList"] = serde_json::json!([
        {"FileLocation": image, "ReadOnly": false, "Format": 1},
        {"FileLocation": image, "ReadOnly": true, "Format": 1}
    ]);
    env.write_config(&config);
    let st = env.wait_state(uuid, SwState::RUNNING);
    let copy = copies.dir.join(format!("{SHA}-{uuid}.img"));
    assert_eq!(disk_of(&env, uuid, "xvda"), copy.to_str().unwrap());
    assert_eq!(disk_of(&env, uuid, "xvdb"), image.to_str().unwrap(), "read-only: the image in place");
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&image).unwrap());
    // The status says which copy and how far it came; EVE's FileLocation stays the config's.
    assert_eq!(st.disk_copies.len(), 1);
    let c = &st.disk_copies[0];
    assert_eq!(
        (c.vdev.as_str(), c.copy.as_str(), c.done, c.total, c.reused),
        ("xvda", copy.to_str().unwrap(), 3 << 20, 3 << 20, false)
    );
    assert_eq!(st.disk_status_list[0].file_location, image.to_str().unwrap());

    // The guest writes to its copy; a daemon restart, then a deactivation and activation:
    // the same copy, untouched.
    std::fs::write(&copy, b"the guest's own data").unwrap();
    let inode = std::fs::metadata(&copy).unwrap().ino();
    env.stop();
    env.start_with(options.clone());
    env.wait_state(uuid, SwState::RUNNING);
    config["Activate"] = false.into();
    env.write_config(&config);
    env.wait_state(uuid, SwState::HALTED);
    assert!(copy.exists(), "a deactivated app keeps its copy");
    config["Activate"] = true.into();
    env.write_config(&config);
    let st = env.wait_state(uuid, SwState::RUNNING);
    assert!(st.disk_copies[0].reused, "{:?}", st.disk_copies);
    assert_eq!(std::fs::metadata(&copy).unwrap().ino(), inode);
    assert_eq!(std::fs::read(&copy).unwrap(), b"the guest's own data");
    assert_eq!(std::fs::read(&image).unwrap(), vec![0x5a; 3 << 20], "the shared image is unchanged");

    // `domainctl copies` lists it, with its domain and sizes.
    let rows: Vec<domainmgrd::supervisor::CopyRow> =
        serde_json::from_value(env.control(&domainmgrd::control::Request::DiskCopies).data).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].path.as_path(), rows[0].uuid, rows[0].domain.as_deref()),
        (copy.as_path(), Some(uuid), Some("app"))
    );
    assert_eq!(rows[0].size, "the guest's own data".len() as u64);

    // Deleted: the copy goes with it.
    env.delete_config(uuid);
    env.wait_for("the status to go", || env.status(uuid).is_none());
    assert!(!copy.exists());
}

#[test]
fn a_copy_that_cannot_be_made_fails_the_boot_saying_why_and_a_killed_copy_is_never_used() {
    let mut env = Env::new();
    let (mut options, image, copies) = with_store(&env);
    // What a killed daemon leaves: a partial copy. It is removed at the start.
    std::fs::create_dir_all(&copies.dir).unwrap();
    let uuid = Uuid::new_v4();
    let partial = copies.dir.join(format!("{SHA}-{uuid}.img.partial"));
    std::fs::write(&partial, b"half").unwrap();
    // Reflinks only: this file system cannot (a tmpfs or ext4 under the test).
    options.disk_copies = Some(DiskCopies { choice: Choice::Only(xen_diskcopy::Method::Reflink), ..copies.clone() });
    env.start_with(options);
    assert!(!partial.exists(), "the unfinished copy was removed at the start");
    let mut config = config(uuid, "app", true);
    config["DiskConfigList"] = serde_json::json!([{"FileLocation": image, "ReadOnly": false, "Format": 1}]);
    env.write_config(&config);
    let st = env.wait_status(uuid, "the boot to fail or run", |s| s.boot_failed || s.state == SwState::RUNNING);
    if st.state == SwState::RUNNING {
        eprintln!("SKIPPED the failing half: the test's file system can make reflinks");
        return;
    }
    assert!(st.error.error.starts_with("disk xvda (") && st.error.error.contains("reflink"), "{:?}", st.error);
    assert!(xen_diskcopy::list_copies(&copies.dir).unwrap().is_empty());
    assert!(env.sim.domains().iter().all(|d| d.spec.uuid != uuid));
}

#[test]
fn other_domains_boot_while_a_copy_is_made() {
    let mut env = Env::new();
    let (mut options, image, copies) = with_store(&env);
    // 3 MiB at 1 MiB/s: the copy takes three seconds at least.
    options.disk_copies = Some(DiskCopies { rate_mib: Some(1), ..copies });
    env.start_with(options);
    let slow = Uuid::new_v4();
    let mut config = config(slow, "copying", true);
    config["DiskConfigList"] = serde_json::json!([{"FileLocation": image, "ReadOnly": false, "Format": 1}]);
    env.write_config(&config);
    env.wait_status(slow, "its copy to start", |s| s.state == SwState::BOOTING);
    let quick = Uuid::new_v4();
    env.write_config(&common::config(quick, "quick", true));
    env.wait_state(quick, SwState::RUNNING);
    let st = env.status(slow).unwrap();
    assert_eq!(st.state, SwState::BOOTING, "the other domain ran before the copy was done");
    let st =
        env.wait_status_within(slow, "its boot", std::time::Duration::from_secs(30), |s| s.state == SwState::RUNNING);
    assert_eq!(st.disk_copies.len(), 1);
}

#[test]
fn a_config_deleted_during_its_copy_cuts_the_copy_short_and_never_boots() {
    let mut env = Env::new();
    let (mut options, image, copies) = with_store(&env);
    // 3 MiB at 1 MiB/s: three seconds at least, unless cut short.
    options.disk_copies = Some(DiskCopies { rate_mib: Some(1), ..copies.clone() });
    env.start_with(options);
    let uuid = Uuid::new_v4();
    let mut config = config(uuid, "copying", true);
    config["DiskConfigList"] = serde_json::json!([{"FileLocation": image, "ReadOnly": false, "Format": 1}]);
    env.write_config(&config);
    env.wait_status(uuid, "its copy under way", |s| !s.disk_copies.is_empty());
    let creates = env.sim.calls(domainmgrd::sim::Op::Create);
    env.delete_config(uuid);
    env.wait_for("the status to go", || env.status(uuid).is_none());
    assert_eq!(env.sim.calls(domainmgrd::sim::Op::Create), creates, "it was created after all");
    assert!(std::fs::read_dir(&copies.dir).unwrap().next().is_none(), "nothing of the copy is left");
}
