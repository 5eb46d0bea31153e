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
    /// What the volume is for (eve-api's `Target`; 5, `AppCustom`, is an app's own volume).
    #[serde(rename = "Target")]
    pub target: i32,
}

impl DiskConfig {
    /// eve-api's `Target_AppCustom`.
    pub const TARGET_APP_CUSTOM: i32 = 5;
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
    /// Keep the guest's console out of EVE's logs.
    #[serde(rename = "DisableLogs")]
    pub disable_logs: bool,
    /// A GPU for the guest (an emulated display instead of none).
    #[serde(rename = "GPUConfig")]
    pub gpu_config: String,
    /// Cloud-init user data, base64; `null` when there is none.
    #[serde(rename = "pubsub-large-CloudInitUserData")]
    pub cloud_init_user_data: Option<String>,
    /// How the guest gets its metadata (EVE's `MetaDataType`: 0 a cloud-init drive, 1 none,
    /// 2 OpenStack, 3 a drive with multipart user data).
    #[serde(rename = "MetaDataType")]
    pub meta_data_type: u8,
    /// The user data comes encrypted (inlined `CipherBlockStatus`).
    #[serde(rename = "IsCipher")]
    pub is_cipher: bool,
    /// The encrypted user data, base64 (Go's `[]byte`); `null` when there is none.
    #[serde(rename = "pubsub-large-CipherData")]
    pub cipher_data: Option<String>,
    /// The cipher's initial value, base64; `null` when there is none.
    #[serde(rename = "InitialValue")]
    pub initial_value: Option<String>,
    /// SHA-256 of the clear text, base64; `null` when there is none.
    #[serde(rename = "ClearTextHash")]
    pub clear_text_hash: Option<String>,
    /// How the user data was encrypted; `null` when it was not.
    #[serde(rename = "CipherContext")]
    pub cipher_context: Option<CipherContext>,
    /// Why zedagent could not ready the cipher block (the inlined `ErrorAndTime`'s `Error`).
    #[serde(rename = "Error")]
    pub cipher_error: String,
    /// The user data's own version (0: the config's `UUIDandVersion.Version` stands for it).
    #[serde(rename = "CloudInitVersion")]
    pub cloud_init_version: u32,
}

/// EVE's `CipherContext`: how a cipher block was made (eve-api's numeric schemes).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CipherContext {
    /// Its ID.
    #[serde(rename = "ContextID")]
    pub context_id: String,
    /// 1: ECDH.
    #[serde(rename = "KeyExchangeScheme")]
    pub key_exchange_scheme: i32,
    /// 1: AES-256-CFB.
    #[serde(rename = "EncryptionScheme")]
    pub encryption_scheme: i32,
    /// The controller certificate's hash, base64; `null` when there is none.
    #[serde(rename = "ControllerCertHash")]
    pub controller_cert_hash: Option<String>,
    /// The device certificate's hash, base64; `null` when there is none.
    #[serde(rename = "DeviceCertHash")]
    pub device_cert_hash: Option<String>,
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
    fn every_shape_eve_writes_for_the_fields_we_do_not_honour_yet_parses() {
        // Set, as Go writes them: []string/[]int as arrays, *string as a string, []byte as
        // base64, the inlined CipherBlockStatus with its pointer and ErrorAndTime, EthVf.
        let c: DomainConfig = serde_json::from_str(
            r#"{"UUIDandVersion": {"UUID": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "Version": "2"},
                "DeviceTree": "guest.dtb", "DtDev": ["/smb/gpio@f7020000"], "IRQs": [88, 86],
                "IOMem": ["0xf7020,1"], "GPUConfig": "x", "DisableLogs": true,
                "pubsub-large-CloudInitUserData": "I2Nsb3VkLWNvbmZpZw==", "MetaDataType": 3,
                "CipherBlockID": "b", "CipherContextID": "c", "InitialValue": "AAE=",
                "pubsub-large-CipherData": "AAEC", "ClearTextHash": "AAE=", "IsCipher": true,
                "CipherContext": {"ContextID": "c"}, "Error": "", "ErrorTime": "0001-01-01T00:00:00Z",
                "IoAdapterList": [{"Type": 9, "Name": "eth1vf0", "EthVf": {"Index": 1, "Mac": "02:00:00:00:00:01", "VlanID": 5}, "IntfOrder": 0}]}"#,
        )
        .unwrap();
        assert_eq!((c.vm.device_tree.as_str(), c.vm.irqs.as_deref()), ("guest.dtb", Some(&[88, 86][..])));
        assert_eq!(c.vm.dt_dev.as_deref().map(<[String]>::len), Some(1));
        assert_eq!(c.vm.io_mem.as_deref().map(<[String]>::len), Some(1));
        assert!(c.disable_logs && c.is_cipher && c.gpu_config == "x" && c.meta_data_type == 3);
        assert_eq!(c.cloud_init_user_data.as_deref(), Some("I2Nsb3VkLWNvbmZpZw=="));
        assert_eq!(c.cipher_data.as_deref(), Some("AAEC"));
        assert_eq!((c.initial_value.as_deref(), c.clear_text_hash.as_deref()), (Some("AAE="), Some("AAE=")));
        assert_eq!(c.cipher_context.as_ref().map(|x| x.context_id.as_str()), Some("c"));
        assert_eq!((c.io_adapter_list[0].eth_vf.vlan_id, c.io_adapter_list[0].eth_vf.index), (5, 1));
        // Unset, as Go writes them: nil slices and pointers as null, an empty EthVf as {}
        // (or null from another writer), a nil []byte as null.
        let c: DomainConfig = serde_json::from_str(
            r#"{"DtDev": null, "IRQs": null, "IOMem": null, "pubsub-large-CloudInitUserData": null,
                "pubsub-large-CipherData": null, "InitialValue": null, "CipherContext": null,
                "IoAdapterList": [{"Type": 1, "Name": "eth1", "EthVf": {}}, {"Name": "eth2", "EthVf": null}]}"#,
        )
        .unwrap();
        assert!(c.vm.dt_dev.is_none() && c.vm.irqs.is_none() && c.vm.io_mem.is_none());
        assert!(c.cloud_init_user_data.is_none() && c.cipher_data.is_none());
        assert!(c.io_adapter_list.iter().all(|a| !a.eth_vf.is_set()));
        // And an unset EthVf is written back as Go writes it.
        let back = serde_json::to_value(&c.io_adapter_list[0]).unwrap();
        assert_eq!(back["EthVf"], serde_json::json!({}));
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
