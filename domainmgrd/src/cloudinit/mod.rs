//! An EVE app's cloud-init config disk, as EVE's domainmgr makes it (`configToStatus`,
//! `createCloudInitISO`): when the `DomainConfig` carries user data (clear, or encrypted:
//! `IsCipher`) and its `MetaDataType` is a drive (0, or 3 for multipart user data), the guest
//! gets an ISO 9660 image labelled `cidata` (NoCloud) holding `meta-data`
//! (`instance-id: <uuid>/<version>`, and `local-hostname: <uuid>` unless the cloud-config names
//! the host itself) and `user-data` (`juniper.conf` for a Junos config), or, for multipart user
//! data (type 3, or the host setting `process.cloud-init.multipart`), the files its parts name.
//! It is built with genisoimage (EVE's mkisofs: `-volid cidata -joliet -rock`) at
//! `<status-dir>/cloudinit/<uuid>.cidata` (EVE's `/run/domainmgr/cloudinit/`), mode 0600: it may
//! hold secrets. The guest sees it read-only as `xvdz`, raw (EVE's xl config line), and the
//! status lists it last, as EVE does (`Devtype` cdrom, `Format` RAW). This module owns deciding
//! that, the files, the image and its removal; the domain thread calls [`prepare`] at each boot
//! and [`remove`] when the domain is deleted. User data is never logged or put in an error.
//! It also names the SMBIOS product of `MetaDataType` 2 (OpenStack) guests
//! ([`smbios_product_name`]), EVE's other way of pointing cloud-init at its metadata.

mod cipher;
mod multipart;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use uuid::Uuid;
use xenctl::{DiskFormat, DiskSpec};

pub use cipher::{CipherKeys, DEFAULT_CONTROLLER_CERT_DIR, DEFAULT_DEVICE_KEY};

use crate::eve::{DiskStatus, DomainConfig, Format};

/// EVE's `MetaDataDrive`: a config disk with `meta-data` and `user-data`.
pub const META_DATA_DRIVE: u8 = 0;
/// EVE's `MetaDataNone`: no metadata from domainmgr.
pub const META_DATA_NONE: u8 = 1;
/// EVE's `MetaDataOpenStack`: metadata from zedrouter's server, no disk.
pub const META_DATA_OPENSTACK: u8 = 2;
/// EVE's `MetaDataDriveMultipart`: a config disk laid out from multipart user data.
pub const META_DATA_DRIVE_MULTIPART: u8 = 3;

/// The guest device of the config disk (EVE's; PV-only for HVM guests, as in EVE).
pub const VDEV: &str = "xvdz";
/// The ISO's volume label: cloud-init's NoCloud data source looks for it.
pub const VOLUME_LABEL: &str = "cidata";
/// The tool that builds the image (Debian's genisoimage is EVE's mkisofs).
pub const MKISOFS: &str = "genisoimage";

/// Why a config disk cannot be made. Messages name EVE's fields, never the user data.
#[derive(Debug, thiserror::Error)]
pub enum CloudInitError {
    /// The user data cannot be used.
    #[error("{field}: {reason}")]
    UserData {
        /// EVE's field (`pubsub-large-CloudInitUserData`, `IsCipher`).
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The image cannot be written.
    #[error("cloud-init config disk {path}: {reason}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

const USER_DATA_FIELD: &str = "pubsub-large-CloudInitUserData";

/// The files of a config disk, by path relative to its root (`/`-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree(BTreeMap<String, Vec<u8>>);

impl Tree {
    /// The files, in path order.
    pub fn files(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.0
    }
}

/// The config disk EVE would give this config's guest, or `None` when it gets none: no user
/// data, or a `MetaDataType` that is not a drive (1 none, 2 OpenStack, or a number EVE does not
/// know). `process_multipart` is the host setting `process.cloud-init.multipart`; `keys`
/// decrypt `IsCipher` user data.
///
/// Unlike EVE, user data is only read when a disk is made of it: EVE also decrypts and decodes
/// it for `MetaDataType` 1 and 2, for things a Xen host does not use (a container's
/// environment, an FML display resolution), and fails the domain when that fails.
pub fn tree(config: &DomainConfig, process_multipart: bool, keys: &CipherKeys) -> Result<Option<Tree>, CloudInitError> {
    if !matches!(config.meta_data_type, META_DATA_DRIVE | META_DATA_DRIVE_MULTIPART) {
        return Ok(None);
    }
    let Some(user_data) = user_data(config, keys)? else {
        return Ok(None);
    };
    if config.meta_data_type == META_DATA_DRIVE_MULTIPART || process_multipart {
        let laid_out = multipart::layout(&user_data).map_err(|reason| CloudInitError::UserData {
            field: USER_DATA_FIELD,
            reason: format!("multipart user data: {reason}"),
        })?;
        if let Some(files) = laid_out {
            return Ok(Some(Tree(files)));
        }
    }
    let uuid = config.uuid_and_version.uuid;
    let mut meta = format!("instance-id: {uuid}/{}\n", version(config));
    if !declares_hostname(&user_data) {
        meta.push_str(&format!("local-hostname: {uuid}\n"));
    }
    let user_file = if user_data.contains("#junos-config") { "juniper.conf" } else { "user-data" };
    let files =
        BTreeMap::from([("meta-data".to_string(), meta.into_bytes()), (user_file.to_string(), user_data.into_bytes())]);
    Ok(Some(Tree(files)))
}

/// The user data in clear, `None` when there is none (EVE's `fetchCloudInit`: base64 of the
/// text; encrypted, the cipher's clear text carries it, with the clear field as a fallback).
pub fn user_data(config: &DomainConfig, keys: &CipherKeys) -> Result<Option<String>, CloudInitError> {
    let base64_text = if config.is_cipher {
        match cipher::decrypt_user_data(config, keys) {
            Ok(text) => Some(text),
            Err(reason) => match &config.cloud_init_user_data {
                // EVE falls back to the clear user data when it has some.
                Some(clear) => {
                    log::warn!(
                        "{}: encrypted user data cannot be decrypted ({reason}); using the clear user data",
                        config.display_name
                    );
                    Some(clear.clone())
                }
                None => return Err(CloudInitError::UserData { field: "IsCipher", reason }),
            },
        }
    } else {
        config.cloud_init_user_data.clone()
    };
    let Some(text) = base64_text else {
        return Ok(None);
    };
    // Go's decoder skips line breaks anywhere.
    let text: String = text.chars().filter(|c| !matches!(c, '\n' | '\r')).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| CloudInitError::UserData { field: USER_DATA_FIELD, reason: format!("not base64 ({e})") })?;
    // Go keeps the bytes as they are in a string; cloud-init reads text.
    let text = String::from_utf8(bytes)
        .map_err(|_| CloudInitError::UserData { field: USER_DATA_FIELD, reason: "not UTF-8 text".into() })?;
    Ok(Some(text))
}

/// EVE's `getCloudInitVersion`: `CloudInitVersion` when set (it changes only when the user data
/// does, so the guest does not run cloud-init again at every config change), else the config's
/// version.
pub fn version(config: &DomainConfig) -> String {
    if config.cloud_init_version > 0 {
        config.cloud_init_version.to_string()
    } else {
        config.uuid_and_version.version.clone()
    }
}

/// Whether a cloud-config takes charge of the host name itself (`hostname`, `fqdn` or
/// `preserve_hostname: true`), as EVE's `cloudconfig.DeclaresHostname` reads it (YAML that does
/// not decode into those keys' types declares nothing).
fn declares_hostname(user_data: &str) -> bool {
    use yaml_rust2::Yaml;
    if !user_data.split('\n').next().is_some_and(|l| l.starts_with("#cloud-config")) {
        return false;
    }
    let Ok(docs) = yaml_rust2::YamlLoader::load_from_str(user_data) else {
        return false;
    };
    let Some(Yaml::Hash(map)) = docs.into_iter().next() else {
        return false;
    };
    let get = |key: &str| map.get(&Yaml::String(key.into()));
    // A string field takes any scalar (Go's yaml.v2); anything else fails the whole decode.
    let text = |v: Option<&Yaml>| -> Option<bool> {
        match v {
            None | Some(Yaml::Null) => Some(false),
            Some(Yaml::String(s)) => Some(!s.is_empty()),
            Some(Yaml::Integer(_) | Yaml::Real(_) | Yaml::Boolean(_)) => Some(true),
            Some(_) => None,
        }
    };
    let preserve = match get("preserve_hostname") {
        None | Some(Yaml::Null) => Some(false),
        Some(Yaml::Boolean(b)) => Some(*b),
        // yaml.v2 reads YAML 1.1 booleans.
        Some(Yaml::String(s)) => match s.as_str() {
            "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
            "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
            _ => None,
        },
        Some(_) => None,
    };
    match (text(get("hostname")), text(get("fqdn")), preserve) {
        (Some(h), Some(f), Some(p)) => h || f || p,
        _ => false,
    }
}

/// The SMBIOS product name EVE gives the guest, if any: "OpenStack Compute" for
/// `MetaDataType` 2 (EVE's xen-start writes it in xenstore while the domain is paused), so that
/// cloud-init in the guest looks for zedrouter's OpenStack metadata server, user data or not.
pub fn smbios_product_name(config: &DomainConfig) -> Option<&'static str> {
    (config.meta_data_type == META_DATA_OPENSTACK).then_some("OpenStack Compute")
}

/// Where a domain's config disk lives: `<status-dir>/cloudinit/<uuid>.cidata`.
pub fn iso_path(status_dir: &Path, uuid: Uuid) -> PathBuf {
    status_dir.join("cloudinit").join(format!("{uuid}.cidata"))
}

/// Writes `tree` as an ISO image at `path`, replacing any earlier one only once complete.
pub fn write_iso(tree: &Tree, path: &Path) -> Result<(), CloudInitError> {
    let fail = |reason: String| CloudInitError::Image { path: path.to_path_buf(), reason };
    let dir = path.parent().ok_or_else(|| fail("has no directory".into()))?;
    create_private_dir(dir).map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    // The files and the image are made beside it, in a directory only root can read.
    let stage = tempfile::Builder::new()
        .prefix(".cidata-")
        .tempdir_in(dir)
        .map_err(|e| fail(format!("cannot make a temporary directory: {e}")))?;
    let root = stage.path().join("root");
    std::fs::create_dir(&root).map_err(|e| fail(e.to_string()))?;
    for (name, content) in &tree.0 {
        let file = root.join(name);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(format!("{name}: {e}")))?;
        }
        let mut f = std::fs::File::create(&file).map_err(|e| fail(format!("{name}: {e}")))?;
        f.write_all(content).map_err(|e| fail(format!("{name}: {e}")))?;
    }
    let image = stage.path().join("image.iso");
    let output = Command::new(MKISOFS)
        .arg("-output")
        .arg(&image)
        .args(["-volid", VOLUME_LABEL, "-joliet", "-rock", "-quiet"])
        .arg(&root)
        .output()
        .map_err(|e| fail(format!("cannot run {MKISOFS}: {e}")))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        return Err(fail(format!("{MKISOFS} failed ({}): {}", output.status, said.trim())));
    }
    set_private(&image).map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&image, path).map_err(|e| fail(format!("cannot put it in place: {e}")))?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_private(file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
}

/// Builds (or rebuilds, from the config as it is now) the config disk of `config`'s domain
/// under `status_dir` and returns its path; `None`, with any earlier image removed, when the
/// guest gets none.
pub fn prepare(
    config: &DomainConfig,
    process_multipart: bool,
    keys: &CipherKeys,
    status_dir: &Path,
) -> Result<Option<PathBuf>, CloudInitError> {
    let path = iso_path(status_dir, config.uuid_and_version.uuid);
    let Some(tree) = tree(config, process_multipart, keys)? else {
        remove(status_dir, config.uuid_and_version.uuid);
        return Ok(None);
    };
    write_iso(&tree, &path)?;
    Ok(Some(path))
}

/// Removes a domain's config disk, if there is one.
pub fn remove(status_dir: &Path, uuid: Uuid) {
    let path = iso_path(status_dir, uuid);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        log::warn!("cannot remove the cloud-init config disk {}: {e}", path.display());
    }
}

/// The disk as the guest gets it: EVE's xl line `'<path>,raw,xvdz,ro'`.
pub fn disk_spec(path: &Path) -> DiskSpec {
    DiskSpec { format: DiskFormat::Raw, readonly: true, ..DiskSpec::new(path.display().to_string(), VDEV) }
}

/// The disk as the status lists it, after the config's disks (EVE's `createCloudInitISO`).
pub fn disk_status(path: &Path) -> DiskStatus {
    DiskStatus {
        read_only: true,
        file_location: path.display().to_string(),
        format: Format::RAW,
        devtype: "cdrom".into(),
        vdev: VDEV.into(),
        ..DiskStatus::default()
    }
}

#[cfg(test)]
mod tests;
