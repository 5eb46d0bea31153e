//! The config disk EVE's domainmgr would make, per `MetaDataType`, and the image read back.

use std::process::Command;

use base64::Engine;
use uuid::Uuid;

use super::*;
use crate::eve::UuidAndVersion;

const UUID: &str = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";

fn config(meta_data_type: u8, user_data: Option<&str>) -> DomainConfig {
    DomainConfig {
        uuid_and_version: UuidAndVersion { uuid: Uuid::parse_str(UUID).unwrap(), version: "4".into() },
        display_name: "web".into(),
        meta_data_type,
        cloud_init_user_data: user_data.map(|u| base64::engine::general_purpose::STANDARD.encode(u)),
        ..DomainConfig::default()
    }
}

fn no_keys() -> CipherKeys {
    CipherKeys {
        device_key: "/nonexistent/ecdh.key.pem".into(),
        controller_certs: "/nonexistent/certs".into(),
        controller_topic: None,
    }
}

fn files(t: &Tree) -> Vec<(&str, &str)> {
    t.files().iter().map(|(k, v)| (k.as_str(), std::str::from_utf8(v).unwrap())).collect()
}

const CLOUD_CONFIG: &str = "#cloud-config\nruncmd:\n  - echo hi\n";
const MULTIPART: &str = "Content-Type: multipart/mixed; boundary=\"==B==\"\nMIME-Version: 1.0\n\n\
    --==B==\nContent-Type: text/plain\nContent-Disposition: attachment; filename=\"meta-data\"\n\n\
    instance-id: mine\n\
    --==B==\nContent-Type: text/cloud-config\nContent-Disposition: attachment; filename=\"user-data\"\n\n\
    #cloud-config\nhostname: mp\n\
    --==B==--\n";

#[test]
fn metadata_drive_gets_meta_data_and_user_data_as_eve_writes_them() {
    let t = tree(&config(META_DATA_DRIVE, Some(CLOUD_CONFIG)), false, &no_keys()).unwrap().unwrap();
    let meta = format!("instance-id: {UUID}/4\nlocal-hostname: {UUID}\n");
    assert_eq!(files(&t), [("meta-data", meta.as_str()), ("user-data", CLOUD_CONFIG)]);
    // CloudInitVersion, when set, is the instance's version.
    let mut c = config(META_DATA_DRIVE, Some(CLOUD_CONFIG));
    c.cloud_init_version = 9;
    let t = tree(&c, false, &no_keys()).unwrap().unwrap();
    assert!(files(&t)[0].1.starts_with(&format!("instance-id: {UUID}/9\n")));
    // Multipart user data under type 0 is user data like any other...
    let t = tree(&config(META_DATA_DRIVE, Some(MULTIPART)), false, &no_keys()).unwrap().unwrap();
    assert_eq!(files(&t)[1], ("user-data", MULTIPART));
    // ...unless the host setting process.cloud-init.multipart asks for it to be laid out.
    let t = tree(&config(META_DATA_DRIVE, Some(MULTIPART)), true, &no_keys()).unwrap().unwrap();
    assert_eq!(files(&t), [("meta-data", "instance-id: mine"), ("user-data", "#cloud-config\nhostname: mp")]);
}

#[test]
fn a_cloud_config_that_names_the_host_gets_no_local_hostname() {
    for declared in
        ["#cloud-config\nhostname: h\n", "#cloud-config\nfqdn: h.example\n", "#cloud-config\npreserve_hostname: true\n"]
    {
        let t = tree(&config(META_DATA_DRIVE, Some(declared)), false, &no_keys()).unwrap().unwrap();
        assert_eq!(files(&t)[0].1, format!("instance-id: {UUID}/4\n"), "{declared:?}");
    }
    for not_declared in [
        "#cloud-config\npreserve_hostname: false\n",
        "#cloud-config\nhostname: ''\n",
        "#cloud-config\nhostname: [a, b]\n",
        "hostname: h\n",
        "#!/bin/sh\nhostname h\n",
        "#cloud-config\n: : bad yaml [\n",
    ] {
        let t = tree(&config(META_DATA_DRIVE, Some(not_declared)), false, &no_keys()).unwrap().unwrap();
        assert!(files(&t)[0].1.ends_with(&format!("local-hostname: {UUID}\n")), "{not_declared:?}");
    }
}

#[test]
fn junos_configs_are_juniper_conf() {
    let junos = "#junos-config\nsystem { host-name r1; }\n";
    let t = tree(&config(META_DATA_DRIVE, Some(junos)), false, &no_keys()).unwrap().unwrap();
    assert_eq!(files(&t).iter().map(|f| f.0).collect::<Vec<_>>(), ["juniper.conf", "meta-data"]);
}

#[test]
fn multipart_drive_lays_the_parts_out() {
    let t = tree(&config(META_DATA_DRIVE_MULTIPART, Some(MULTIPART)), false, &no_keys()).unwrap().unwrap();
    assert_eq!(files(&t), [("meta-data", "instance-id: mine"), ("user-data", "#cloud-config\nhostname: mp")]);
    // Not multipart after all: the usual files.
    let t = tree(&config(META_DATA_DRIVE_MULTIPART, Some(CLOUD_CONFIG)), false, &no_keys()).unwrap().unwrap();
    assert_eq!(files(&t).iter().map(|f| f.0).collect::<Vec<_>>(), ["meta-data", "user-data"]);
    // A part that would leave the disk fails the disk, naming the field.
    let escape = MULTIPART.replace("filename=\"user-data\"", "filename=\"../../etc/shadow\"");
    let e = tree(&config(META_DATA_DRIVE_MULTIPART, Some(&escape)), false, &no_keys()).unwrap_err().to_string();
    assert!(e.starts_with("pubsub-large-CloudInitUserData: multipart user data: part 2"), "{e}");
}

#[test]
fn no_disk_without_user_data_or_for_metadata_types_that_are_not_drives() {
    assert_eq!(tree(&config(META_DATA_DRIVE, None), false, &no_keys()).unwrap(), None);
    assert_eq!(tree(&config(META_DATA_DRIVE_MULTIPART, None), true, &no_keys()).unwrap(), None);
    for t in [META_DATA_NONE, META_DATA_OPENSTACK, 4, 255] {
        assert_eq!(tree(&config(t, Some(CLOUD_CONFIG)), true, &no_keys()).unwrap(), None, "type {t}");
        // Not read at all: neither bad base64 nor encryption without keys fails it.
        let mut c = config(t, None);
        c.cloud_init_user_data = Some("***".into());
        c.is_cipher = true;
        assert_eq!(tree(&c, false, &no_keys()).unwrap(), None, "type {t}");
    }
}

#[test]
fn unusable_user_data_is_an_error_naming_the_field_not_the_data() {
    let mut c = config(META_DATA_DRIVE, None);
    c.cloud_init_user_data = Some("c2VjcmV0!!".into());
    let e = tree(&c, false, &no_keys()).unwrap_err().to_string();
    assert!(e.starts_with("pubsub-large-CloudInitUserData: not base64"), "{e}");
    // Line breaks in base64 are fine (Go's decoder skips them).
    c.cloud_init_user_data = Some("I2Nsb3Vk\nLWNvbmZpZwo=\n".into());
    assert_eq!(files(&tree(&c, false, &no_keys()).unwrap().unwrap())[1].1, "#cloud-config\n");
    // Encrypted, without the keys, and no clear fallback: the error names IsCipher and the key.
    let mut c = config(META_DATA_DRIVE, None);
    c.is_cipher = true;
    c.cipher_data = Some("c2VjcmV0".into());
    c.initial_value = Some(base64::engine::general_purpose::STANDARD.encode([0u8; 16]));
    c.cipher_context = Some(crate::eve::CipherContext {
        key_exchange_scheme: 1,
        encryption_scheme: 1,
        controller_cert_hash: Some("AQI=".into()),
        ..Default::default()
    });
    let e = tree(&c, false, &no_keys()).unwrap_err().to_string();
    assert!(e.starts_with("IsCipher: ") && e.contains("/nonexistent/certs"), "{e}");
    assert!(!e.contains("c2VjcmV0") && !e.contains("secret"), "{e}");
    // With clear user data beside it, EVE's fallback: the clear data.
    c.cloud_init_user_data = Some(base64::engine::general_purpose::STANDARD.encode(CLOUD_CONFIG));
    assert_eq!(files(&tree(&c, false, &no_keys()).unwrap().unwrap())[1].1, CLOUD_CONFIG);
}

/// `isoinfo` (genisoimage's reader) on `image`, with `args`.
fn isoinfo(image: &Path, args: &[&str]) -> String {
    let out = Command::new("isoinfo")
        .arg("-i")
        .arg(image)
        .args(args)
        .output()
        .expect("isoinfo (Debian's genisoimage) is needed by these tests and the daemon: run ./scripts/setup.sh");
    assert!(out.status.success(), "isoinfo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_image_has_eves_label_rock_ridge_and_joliet_names_and_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(
        META_DATA_DRIVE_MULTIPART,
        Some(&MULTIPART.replace("\"meta-data\"", "\"openstack/latest/meta_data.json\"")),
    );
    let path = prepare(&c, false, &no_keys(), dir.path()).unwrap().unwrap();
    assert_eq!(path, dir.path().join(format!("cloudinit/{UUID}.cidata")));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "it may hold secrets");
    assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    let pvd = isoinfo(&path, &["-d"]);
    assert!(pvd.contains("Volume id: cidata"), "{pvd}");
    assert!(pvd.contains("Rock Ridge signatures version 1 found"), "{pvd}");
    assert!(pvd.contains("Joliet with UCS level 3 found"), "{pvd}");
    let listing = isoinfo(&path, &["-R", "-f"]);
    let mut names: Vec<&str> = listing.lines().collect();
    names.sort();
    assert_eq!(names, ["/openstack", "/openstack/latest", "/openstack/latest/meta_data.json", "/user-data"]);
    assert_eq!(isoinfo(&path, &["-R", "-x", "/user-data"]), "#cloud-config\nhostname: mp");
    assert_eq!(isoinfo(&path, &["-J", "-x", "/openstack/latest/meta_data.json"]), "instance-id: mine");
    // Rebuilt from the config as it is now; gone when the guest gets no disk any more.
    let path = prepare(&config(META_DATA_DRIVE, Some(CLOUD_CONFIG)), false, &no_keys(), dir.path()).unwrap().unwrap();
    assert_eq!(isoinfo(&path, &["-R", "-x", "/user-data"]), CLOUD_CONFIG);
    assert_eq!(isoinfo(&path, &["-R", "-x", "/meta-data"]), format!("instance-id: {UUID}/4\nlocal-hostname: {UUID}\n"));
    let leftovers: Vec<_> =
        std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "only the image: {leftovers:?}");
    assert_eq!(prepare(&config(META_DATA_NONE, Some(CLOUD_CONFIG)), false, &no_keys(), dir.path()).unwrap(), None);
    assert!(!path.exists());
    prepare(&config(META_DATA_DRIVE, Some(CLOUD_CONFIG)), false, &no_keys(), dir.path()).unwrap();
    remove(dir.path(), Uuid::parse_str(UUID).unwrap());
    assert!(!path.exists());
}

#[test]
fn the_disk_is_eves_xvdz_read_only_raw_cdrom() {
    let p = Path::new("/run/domainmgr/cloudinit/x.cidata");
    let spec = disk_spec(p);
    assert_eq!((spec.vdev.as_str(), spec.format, spec.readonly, spec.cdrom), ("xvdz", DiskFormat::Raw, true, false));
    assert_eq!(spec.target.as_deref(), Some("/run/domainmgr/cloudinit/x.cidata"));
    let s = disk_status(p);
    assert_eq!((s.vdev.as_str(), s.devtype.as_str(), s.format, s.read_only), ("xvdz", "cdrom", Format::RAW, true));
    assert_eq!(s.file_location, "/run/domainmgr/cloudinit/x.cidata");
}
