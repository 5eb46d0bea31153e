//! EVE apps' cloud-init config disks, driven through DomainConfig files against the simulated
//! hypervisor: the disk libxl is asked for (EVE's xvdz, raw, read-only), how DomainStatus lists
//! it, the image itself (read back with isoinfo), its rebuild from a changed config, its
//! removal with the config, encrypted user data without keys failing with an error that
//! names the field and shows nothing of the data, and OpenStack metadata's SMBIOS product name.

// Test helpers below fail by panicking, which is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use common::*;
use domainmgrd::cloudinit::CipherKeys;
use domainmgrd::eve::{Format, SwState};
use serde_json::json;
use uuid::Uuid;
use xenctl::DomId;

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A file of an ISO image, read with isoinfo (Rock Ridge names).
fn iso_file(image: &Path, name: &str) -> String {
    let out = Command::new("isoinfo")
        .arg("-i")
        .arg(image)
        .args(["-R", "-x", name])
        .output()
        .expect("isoinfo (Debian's genisoimage): run ./scripts/setup.sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn start(env: &mut Env) {
    let mut options = env.options();
    let root = env.paths().run_dir.parent().unwrap().to_path_buf();
    options.cipher_keys = CipherKeys {
        device_key: root.join("certs/ecdh.key.pem"),
        controller_certs: root.join("zedagent/ControllerCert"),
        controller_topic: None,
    };
    env.start_with(options);
}

#[test]
fn user_data_becomes_a_read_only_xvdz_listed_last_rebuilt_at_boot_and_removed_with_the_config() {
    let mut env = Env::new();
    start(&mut env);
    let uuid = Uuid::new_v4();
    let mut cfg = config(uuid, "ci", true);
    cfg["pubsub-large-CloudInitUserData"] = json!(b64("#cloud-config\nruncmd: [echo one]\n"));
    env.write_config(&cfg);
    let st = env.wait_state(uuid, SwState::RUNNING);
    let image: PathBuf = env.paths().status_dir.join(format!("cloudinit/{uuid}.cidata"));
    // DomainStatus: the config's disk, then the config disk, as EVE lists it.
    assert_eq!(st.disk_status_list.len(), 2, "{:#?}", st.disk_status_list);
    let ci = &st.disk_status_list[1];
    assert_eq!(
        (ci.vdev.as_str(), ci.devtype.as_str(), ci.format, ci.read_only, ci.file_location.as_str()),
        ("xvdz", "cdrom", Format::RAW, true, image.to_str().unwrap())
    );
    // What libxl was asked for.
    let spec = env.sim.domains_of(uuid)[0].spec.clone();
    let disk = spec.disks.iter().find(|d| d.vdev == "xvdz").expect("an xvdz disk");
    assert_eq!((disk.target.as_deref(), disk.readonly), (image.to_str(), true));
    assert_eq!(iso_file(&image, "/user-data"), "#cloud-config\nruncmd: [echo one]\n");
    assert_eq!(iso_file(&image, "/meta-data"), format!("instance-id: {uuid}/1\nlocal-hostname: {uuid}\n"));

    // New user data, and a new version: the next boot gets them.
    cfg["Activate"] = json!(false);
    env.write_config(&cfg);
    env.wait_state(uuid, SwState::HALTED);
    cfg["Activate"] = json!(true);
    cfg["UUIDandVersion"]["Version"] = json!("2");
    cfg["pubsub-large-CloudInitUserData"] = json!(b64("#cloud-config\nhostname: two\n"));
    env.write_config(&cfg);
    env.wait_status(uuid, "running version 2", |s| s.state == SwState::RUNNING && s.domain_name.contains(".2."));
    assert_eq!(iso_file(&image, "/user-data"), "#cloud-config\nhostname: two\n");
    assert_eq!(iso_file(&image, "/meta-data"), format!("instance-id: {uuid}/2\n"), "it names its host itself");

    env.delete_config(uuid);
    env.wait_for("the status to go", || env.status(uuid).is_none());
    assert!(!image.exists(), "the config disk goes with the config");
}

#[test]
fn encrypted_user_data_without_keys_fails_the_boot_naming_the_field_never_the_data() {
    let mut env = Env::new();
    start(&mut env);
    let uuid = Uuid::new_v4();
    let mut cfg = config(uuid, "secret", true);
    cfg["IsCipher"] = json!(true);
    cfg["pubsub-large-CipherData"] = json!(b64("c2VjcmV0IHN0dWZm"));
    cfg["InitialValue"] = json!(b64("0123456789abcdef"));
    cfg["ClearTextHash"] = json!(b64("x"));
    cfg["CipherContext"] = json!({"ContextID": "c", "KeyExchangeScheme": 1, "EncryptionScheme": 1,
        "ControllerCertHash": "yv4AAQ==", "DeviceCertHash": "AQ=="});
    env.write_config(&cfg);
    let st = env.wait_status(uuid, "boot failure", |s| s.boot_failed);
    assert!(st.error.error.starts_with("IsCipher: no controller certificate cafe0001 in "), "{}", st.error.error);
    assert!(!st.error.error.contains("c2VjcmV0"), "{}", st.error.error);
    assert!(env.sim.domains_of(uuid).is_empty(), "not created");
    // Other apps boot on; metadata types that are no drive never read the user data.
    let other = Uuid::new_v4();
    let mut cfg = config(other, "no-drive", true);
    cfg["MetaDataType"] = json!(1);
    cfg["IsCipher"] = json!(true);
    env.write_config(&cfg);
    let st = env.wait_state(other, SwState::RUNNING);
    assert_eq!(st.disk_status_list.len(), 1, "no config disk");
}

#[test]
fn openstack_metadata_names_the_smbios_product_before_unpause_and_gets_no_disk() {
    let mut env = Env::new();
    start(&mut env);
    let uuid = Uuid::new_v4();
    let mut cfg = config(uuid, "openstack", true);
    cfg["MetaDataType"] = json!(2);
    cfg["pubsub-large-CloudInitUserData"] = json!(b64("#cloud-config\n"));
    env.write_config(&cfg);
    let st = env.wait_state(uuid, SwState::RUNNING);
    assert_eq!(st.disk_status_list.len(), 1, "no config disk: zedrouter serves the metadata");
    let domid = DomId::new(st.domain_id);
    assert_eq!(env.sim.bios_strings(domid), [("system-product-name".to_string(), "OpenStack Compute".to_string())]);
    // A drive gets no product name.
    let other = Uuid::new_v4();
    let mut cfg = config(other, "drive", true);
    cfg["pubsub-large-CloudInitUserData"] = json!(b64("#cloud-config\n"));
    env.write_config(&cfg);
    let st = env.wait_state(other, SwState::RUNNING);
    assert!(env.sim.bios_strings(DomId::new(st.domain_id)).is_empty());
}

#[test]
fn twenty_six_disks_leave_no_room_for_the_config_disk_and_say_so() {
    let mut env = Env::new();
    start(&mut env);
    let uuid = Uuid::new_v4();
    let mut cfg = config(uuid, "full", true);
    let disks: Vec<_> =
        (0..26).map(|i| json!({"FileLocation": format!("/persist/img/d{i}.img"), "Format": 1})).collect();
    cfg["DiskConfigList"] = json!(disks);
    cfg["pubsub-large-CloudInitUserData"] = json!(b64("#cloud-config\n"));
    env.write_config(&cfg);
    let st = env.wait_status(uuid, "boot failure", |s| s.boot_failed);
    assert_eq!(st.error.error, "DiskConfigList: 26 disks leave no room for the cloud-init disk, xvdz");
    assert!(env.sim.domains_of(uuid).is_empty(), "not created");
}
