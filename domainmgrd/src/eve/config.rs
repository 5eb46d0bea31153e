//! EVE's `DomainConfig`, the input: what zedmanager asks for one app (identity, whether it
//! runs, its VM settings, disks, vifs and adapters). Every field EVE writes is accepted; the
//! ones a Xen domain manager does not use are ignored.

use serde::{Deserialize, Deserializer, Serialize};

use super::{Format, IoAdapter, UuidAndVersion, VifConfig, VmConfig};

/// EVE's `DiskConfig`: a volume the domain gets as a disk, in order (xvda, xvdb, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskConfig {
    /// The volume's key.
    #[serde(rename = "VolumeKey")]
    pub volume_key: String,
    /// The image file or device in dom0.
    #[serde(rename = "FileLocation")]
    pub file_location: String,
    /// Read-only.
    #[serde(rename = "ReadOnly")]
    pub read_only: bool,
    /// Image format.
    #[serde(rename = "Format")]
    pub format: Format,
    /// Mount point (containers).
    #[serde(rename = "MountDir")]
    pub mount_dir: String,
    /// Volume name.
    #[serde(rename = "DisplayName")]
    pub display_name: String,
    /// World Wide Name (SCSI).
    #[serde(rename = "WWN")]
    pub wwn: String,
    /// Free-form metadata.
    #[serde(rename = "CustomMeta")]
    pub custom_meta: String,
}

/// EVE's `DomainConfig` (the parts a Xen domain manager uses; others are accepted and ignored).
/// It serializes to the same shape, with only those parts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DomainConfig {
    /// Identity; `UUID` must match the file name.
    #[serde(rename = "UUIDandVersion")]
    pub uuid_and_version: UuidAndVersion,
    /// The app's name.
    #[serde(rename = "DisplayName")]
    pub display_name: String,
    /// Run it (true) or only keep it ready (false).
    #[serde(rename = "Activate")]
    pub activate: bool,
    /// Small number unique on the device; names the generated xl config.
    #[serde(rename = "AppNum")]
    pub app_num: i64,
    /// Inlined VM settings.
    #[serde(flatten)]
    pub vm: VmConfig,
    /// Disks, in order.
    #[serde(rename = "DiskConfigList", deserialize_with = "null_as_empty")]
    pub disk_config_list: Vec<DiskConfig>,
    /// Network interfaces, in order.
    #[serde(rename = "VifList", deserialize_with = "null_as_empty")]
    pub vif_list: Vec<VifConfig>,
    /// Physical adapters to pass through.
    #[serde(rename = "IoAdapterList", deserialize_with = "null_as_empty")]
    pub io_adapter_list: Vec<IoAdapter>,
}

impl DomainConfig {
    /// The name of the Xen domain: EVE's task name, `<UUID>.<Version>.<AppNum>`.
    pub fn domain_name(&self) -> String {
        format!("{}.{}.{}", self.uuid_and_version.uuid, self.uuid_and_version.version, self.app_num)
    }
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DomainConfig as EVE's zedmanager writes it (pubsub JSON), with fields we ignore.
    const EVE_CONFIG: &str = r#"{
      "UUIDandVersion": {"UUID": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "Version": "2"},
      "DisplayName": "web", "Activate": true, "UserActivate": true, "AppNum": 3,
      "Kernel": "/k", "Ramdisk": "", "Memory": 131072, "MaxMem": 0, "VCpus": 2, "MaxCpus": 0,
      "RootDev": "/dev/xvda1", "ExtraArgs": "quiet", "BootLoader": "", "CPUs": null,
      "DeviceTree": "", "DtDev": null, "IRQs": null, "IOMem": null, "VirtualizationMode": 0,
      "EnableVnc": false, "VncDisplay": 0, "VncPasswd": "", "CPUsPinned": false, "VMMMaxMem": 0,
      "EnableVncShimVM": false, "BootOrder": 0, "DisableLogs": false, "GPUConfig": "",
      "DiskConfigList": [{"VolumeKey": "v#1", "FileLocation": "/persist/vault/volumes/v.img",
        "ReadOnly": false, "Format": 1, "MountDir": "", "DisplayName": "root", "WWN": "",
        "Target": 1, "CustomMeta": ""}],
      "VifList": [{"Bridge": "bn1", "Vif": "nbu1x3", "Mac": "AhY+AAAB", "MTU": 1500,
        "PodVif": {"GuestIfName": ""}, "VifOrder": 0}],
      "IoAdapterList": null, "KubeImageName": "", "PurgeCounter": 0, "IsDNidNode": false,
      "pubsub-large-CloudInitUserData": null, "MetaDataType": 0, "Service": false
    }"#;

    #[test]
    fn reads_evens_domain_config_and_ignores_the_rest() {
        let c: DomainConfig = serde_json::from_str(EVE_CONFIG).unwrap();
        assert_eq!(c.uuid_and_version.uuid.to_string(), "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
        assert_eq!((c.display_name.as_str(), c.activate, c.app_num), ("web", true, 3));
        assert_eq!((c.vm.memory, c.vm.vcpus, c.vm.root_dev.as_str()), (131072, 2, "/dev/xvda1"));
        assert_eq!(c.disk_config_list[0].format, Format::RAW);
        assert_eq!(c.vif_list[0].mac.0, Some([0x02, 0x16, 0x3e, 0, 0, 1]));
        assert_eq!(c.vif_list[0].mtu, 1500);
        assert!(c.io_adapter_list.is_empty());
        assert!(c.vm.cpus.0.is_empty());
        assert_eq!(c.domain_name(), "6ba7b810-9dad-11d1-80b4-00c04fd430c8.2.3");
    }

    #[test]
    fn older_shapes_are_accepted() {
        let c: DomainConfig = serde_json::from_str(
            r#"{"UUIDandVersion": {"UUID": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"},
                "CPUs": "1, 3", "VifList": [{"Bridge": "b", "Mac": "00:16:3e:00:00:02"}]}"#,
        )
        .unwrap();
        assert_eq!(c.vm.cpus.0, vec![1, 3]);
        assert_eq!(c.vif_list[0].mac.to_string(), "00:16:3e:00:00:02");
        assert!(serde_json::from_str::<DomainConfig>(r#"{"VifList": [{"Mac": "AAE="}]}"#).is_err());
    }
}
