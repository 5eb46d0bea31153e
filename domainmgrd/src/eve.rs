//! EVE-OS's JSON objects, field for field as EVE's Go code writes them (pkg/pillar/types):
//! `DomainConfig` in, `DomainStatus` out, and the pieces they share.
//!
//! Go's `encoding/json` rules decide the shapes: field names are the Go names, embedded
//! structs (`VmConfig`, `ErrorAndTime`) are inlined, enums are numbers, `time.Time` is RFC 3339
//! with the zero time `0001-01-01T00:00:00Z`, nil slices are `null`, and a `net.HardwareAddr`
//! (a byte slice) is base64. Inputs accept every field EVE writes and ignore the ones we do not
//! use; outputs carry EVE's fields plus a readable `StateName`, which Go readers ignore.

use std::fmt;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// EVE's `UUIDandVersion`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UuidAndVersion {
    /// The app instance's UUID; also the key of its files.
    #[serde(rename = "UUID")]
    pub uuid: Uuid,
    /// The controller's version string for this config.
    #[serde(rename = "Version", default)]
    pub version: String,
}

/// EVE's `SwState` (a uint8 in JSON). Only the states a domain manager reports have names here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SwState(pub u8);

impl SwState {
    /// Available to be activated (config known, domain not running).
    pub const INSTALLED: SwState = SwState(111);
    /// Being created and started.
    pub const BOOTING: SwState = SwState(114);
    /// Running.
    pub const RUNNING: SwState = SwState(115);
    /// Being paused.
    pub const PAUSING: SwState = SwState(116);
    /// Paused (by an operator).
    pub const PAUSED: SwState = SwState(117);
    /// Being shut down.
    pub const HALTING: SwState = SwState(118);
    /// Not running (stopped, failed to boot, or crashed).
    pub const HALTED: SwState = SwState(119);
    /// The domain exists but cannot be managed (e.g. it will not die).
    pub const BROKEN: SwState = SwState(120);
    /// Its state cannot be determined.
    pub const UNKNOWN: SwState = SwState(121);

    /// EVE's name for the state.
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 25] = [
            "INITIAL",
            "RESOLVING_TAG",
            "RESOLVED_TAG",
            "DOWNLOADING",
            "DOWNLOADED",
            "VERIFYING",
            "VERIFIED",
            "LOADING",
            "LOADED",
            "CREATING_VOLUME",
            "CREATED_VOLUME",
            "INSTALLED",
            "AWAITNETWORKINSTANCE",
            "START_DELAYED",
            "BOOTING",
            "RUNNING",
            "PAUSING",
            "PAUSED",
            "HALTING",
            "HALTED",
            "BROKEN",
            "UNKNOWN",
            "PENDING",
            "SCHEDULING",
            "FAILED",
        ];
        self.0.checked_sub(100).and_then(|i| NAMES.get(usize::from(i))).copied().unwrap_or("UNKNOWN")
    }
}

impl fmt::Display for SwState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// EVE's `VmMode` (uint8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VmMode(pub u8);

impl VmMode {
    /// Paravirtualised (EVE's default).
    pub const PV: VmMode = VmMode(0);
    /// Fully virtualised.
    pub const HVM: VmMode = VmMode(1);
    /// "Filler": reserved, never valid.
    pub const FILLER: VmMode = VmMode(2);
    /// Full machine legacy (HVM with AHCI disks and permissive PCI).
    pub const FML: VmMode = VmMode(3);
    /// No hypervisor (a container on the host).
    pub const NOHYPER: VmMode = VmMode(4);
    /// Legacy HVM (AHCI disks, emulated NICs).
    pub const LEGACY: VmMode = VmMode(5);
}

/// EVE's volume `Format` (the eve-api protobuf enum, an int32 in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Format(pub i32);

impl Format {
    /// Not set; treated as raw.
    pub const UNKNOWN: Format = Format(0);
    /// Raw.
    pub const RAW: Format = Format(1);
    /// qcow.
    pub const QCOW: Format = Format(2);
    /// qcow2.
    pub const QCOW2: Format = Format(3);
    /// VHD.
    pub const VHD: Format = Format(4);
    /// VMDK.
    pub const VMDK: Format = Format(5);
    /// OVA.
    pub const OVA: Format = Format(6);
    /// VHDX.
    pub const VHDX: Format = Format(7);
    /// An OCI container.
    pub const CONTAINER: Format = Format(8);
    /// An ISO image (a CD-ROM).
    pub const ISO: Format = Format(9);
    /// A Kubernetes persistent volume claim.
    pub const PVC: Format = Format(10);

    /// EVE's name for the format.
    pub fn name(self) -> String {
        match self.0 {
            0 => "FmtUnknown".into(),
            1 => "RAW".into(),
            2 => "QCOW".into(),
            3 => "QCOW2".into(),
            4 => "VHD".into(),
            5 => "VMDK".into(),
            6 => "OVA".into(),
            7 => "VHDX".into(),
            8 => "CONTAINER".into(),
            9 => "ISO".into(),
            10 => "PVC".into(),
            n => format!("Format({n})"),
        }
    }
}

/// EVE's `IoType` (uint8): the kind of a physical I/O adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IoType(pub u8);

/// EVE's `IoAdapter`: an adapter a domain wants, by type and name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IoAdapter {
    /// Adapter kind.
    #[serde(rename = "Type")]
    pub io_type: IoType,
    /// Its name in the PhysicalIOAdapterList, e.g. `eth1`, `USB`.
    #[serde(rename = "Name")]
    pub name: String,
    /// Interface order across virtual and passthrough NICs.
    #[serde(rename = "IntfOrder")]
    pub intf_order: u32,
}

/// A MAC address as Go's `net.HardwareAddr` is JSON-encoded: base64 of its bytes. Reading
/// also accepts the `00:16:3e:..` text older EVE releases wrote, and `null` or `""` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GoMac(pub Option<[u8; 6]>);

impl Serialize for GoMac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(bytes) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for GoMac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            return Ok(GoMac(None));
        };
        if let Ok(mac) = text.parse::<xenctl::Mac>() {
            return Ok(GoMac(Some(mac.0)));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .map_err(|_| serde::de::Error::custom(format!("Mac {text:?} is neither base64 nor xx:xx:xx:xx:xx:xx")))?;
        let bytes: [u8; 6] =
            bytes.try_into().map_err(|_| serde::de::Error::custom(format!("Mac {text:?} is not 6 bytes long")))?;
        Ok(GoMac(Some(bytes)))
    }
}

impl fmt::Display for GoMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(bytes) => write!(f, "{}", xenctl::Mac(bytes)),
            None => f.write_str("(none)"),
        }
    }
}

/// `VmConfig.CPUs`: a list of CPU numbers today, a `"1,2"` string in older EVE releases.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct CpuList(pub Vec<u32>);

impl<'de> Deserialize<'de> for CpuList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            List(Option<Vec<u32>>),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::List(list) => Ok(CpuList(list.unwrap_or_default())),
            Either::Text(t) if t.trim().is_empty() => Ok(CpuList(Vec::new())),
            Either::Text(t) => t
                .split(',')
                .map(|p| p.trim().parse::<u32>())
                .collect::<Result<Vec<_>, _>>()
                .map(CpuList)
                .map_err(|_| serde::de::Error::custom(format!("CPUs {t:?} is not a list of CPU numbers"))),
        }
    }
}

/// EVE's `VmConfig`, inlined into `DomainConfig` and `DomainStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VmConfig {
    /// Guest kernel path in dom0.
    #[serde(rename = "Kernel")]
    pub kernel: String,
    /// Guest ramdisk path in dom0.
    #[serde(rename = "Ramdisk")]
    pub ramdisk: String,
    /// Memory, KiB (rounded up to MiB for Xen).
    #[serde(rename = "Memory")]
    pub memory: i64,
    /// Maximum memory, KiB; 0 means equal to `Memory`.
    #[serde(rename = "MaxMem")]
    pub max_mem: i64,
    /// vCPUs; 0 means 1.
    #[serde(rename = "VCpus")]
    pub vcpus: i64,
    /// Maximum vCPUs; 0 means `VCpus`.
    #[serde(rename = "MaxCpus")]
    pub max_cpus: i64,
    /// Root device for the kernel command line (`root=`).
    #[serde(rename = "RootDev")]
    pub root_dev: String,
    /// Extra kernel command line.
    #[serde(rename = "ExtraArgs")]
    pub extra_args: String,
    /// Bootloader program (e.g. `pygrub`).
    #[serde(rename = "BootLoader")]
    pub boot_loader: String,
    /// Physical CPUs the vCPUs may run on.
    #[serde(rename = "CPUs")]
    pub cpus: CpuList,
    /// Device tree (ARM).
    #[serde(rename = "DeviceTree")]
    pub device_tree: String,
    /// PV, HVM, FML, NOHYPER or LEGACY.
    #[serde(rename = "VirtualizationMode")]
    pub virtualization_mode: VmMode,
    /// A VNC console.
    #[serde(rename = "EnableVnc")]
    pub enable_vnc: bool,
    /// VNC display number.
    #[serde(rename = "VncDisplay")]
    pub vnc_display: u32,
    /// VNC password.
    #[serde(rename = "VncPasswd")]
    pub vnc_passwd: String,
}

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

/// EVE's `DiskStatus`: a disk as given to the domain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskStatus {
    /// From the config.
    #[serde(rename = "VolumeKey")]
    pub volume_key: String,
    /// From the config.
    #[serde(rename = "ReadOnly")]
    pub read_only: bool,
    /// From the config.
    #[serde(rename = "FileLocation")]
    pub file_location: String,
    /// From the config.
    #[serde(rename = "Format")]
    pub format: Format,
    /// From the config.
    #[serde(rename = "MountDir")]
    pub mount_dir: String,
    /// From the config.
    #[serde(rename = "DisplayName")]
    pub display_name: String,
    /// `cdrom` for ISO images, else empty.
    #[serde(rename = "Devtype")]
    pub devtype: String,
    /// The guest device name given to it (`xvda`...).
    #[serde(rename = "Vdev")]
    pub vdev: String,
    /// From the config.
    #[serde(rename = "WWN")]
    pub wwn: String,
    /// From the config.
    #[serde(rename = "CustomMeta")]
    pub custom_meta: String,
}

/// EVE's `VifConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VifConfig {
    /// dom0 bridge.
    #[serde(rename = "Bridge")]
    pub bridge: String,
    /// Backend interface name in dom0.
    #[serde(rename = "Vif")]
    pub vif: String,
    /// Guest MAC.
    #[serde(rename = "Mac")]
    pub mac: GoMac,
    /// MTU; 0 for the default.
    #[serde(rename = "MTU")]
    pub mtu: u16,
    /// Interface order.
    #[serde(rename = "VifOrder")]
    pub vif_order: u32,
}

/// EVE's `VifInfo`: the config plus the name actually used.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VifInfo {
    /// As configured.
    #[serde(flatten)]
    pub config: VifConfig,
    /// The backend interface's real name in dom0.
    #[serde(rename = "VifUsed")]
    pub vif_used: String,
}

/// EVE's `DomainConfig` (the parts a Xen domain manager uses; others are accepted and ignored).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
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

/// EVE's `DomainStatus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainStatus {
    /// From the config.
    #[serde(rename = "UUIDandVersion")]
    pub uuid_and_version: UuidAndVersion,
    /// From the config.
    #[serde(rename = "DisplayName")]
    pub display_name: String,
    /// Where the domain is in its life.
    #[serde(rename = "State")]
    pub state: SwState,
    /// `State`'s name (not in EVE's struct; Go readers ignore it).
    #[serde(rename = "StateName")]
    pub state_name: String,
    /// EVE's meaning: true from the end of a boot until the domain is gone (so still while
    /// HALTING, and when a halt fails, BROKEN); zedmanager waits for false before it tears
    /// down the domain's networks and volumes.
    #[serde(rename = "Activated")]
    pub activated: bool,
    /// From the config.
    #[serde(rename = "AppNum")]
    pub app_num: i64,
    /// EVE pubsub bookkeeping; always false here.
    #[serde(rename = "PendingAdd")]
    pub pending_add: bool,
    /// EVE pubsub bookkeeping; always false here.
    #[serde(rename = "PendingModify")]
    pub pending_modify: bool,
    /// EVE pubsub bookkeeping; always false here.
    #[serde(rename = "PendingDelete")]
    pub pending_delete: bool,
    /// The Xen domain's name.
    #[serde(rename = "DomainName")]
    pub domain_name: String,
    /// The Xen domain id; 0 when no domain exists.
    #[serde(rename = "DomainId")]
    pub domain_id: u32,
    /// When the domain was last started (unpaused).
    #[serde(rename = "BootTime", with = "go_time")]
    pub boot_time: Option<DateTime<Utc>>,
    /// The disks as given to the domain.
    #[serde(rename = "DiskStatusList")]
    pub disk_status_list: Vec<DiskStatus>,
    /// The vifs, with their real names.
    #[serde(rename = "VifList")]
    pub vif_list: Vec<VifInfo>,
    /// From the config.
    #[serde(rename = "IoAdapterList")]
    pub io_adapter_list: Vec<IoAdapter>,
    /// Boot attempts since the domain was last activated.
    #[serde(rename = "TriedCount")]
    pub tried_count: u32,
    /// The last error, inlined as EVE's `ErrorAndTime` is.
    #[serde(flatten)]
    pub error: ErrorDescription,
    /// The config could not be used.
    #[serde(rename = "ConfigFailed")]
    pub config_failed: bool,
    /// The last boot failed.
    #[serde(rename = "BootFailed")]
    pub boot_failed: bool,
    /// Adapter assignment failed.
    #[serde(rename = "AdaptersFailed")]
    pub adapters_failed: bool,
    /// From the config.
    #[serde(flatten)]
    pub vm: VmConfig,
}

/// EVE's `ErrorDescription` (inlined through `ErrorAndTime`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorDescription {
    /// The error text; empty when there is none.
    #[serde(rename = "Error")]
    pub error: String,
    /// When it happened; zero time when there is none.
    #[serde(rename = "ErrorTime", with = "go_time")]
    pub error_time: Option<DateTime<Utc>>,
    /// 0 unspecified, 1 notice, 2 warning, 3 error.
    #[serde(rename = "ErrorSeverity")]
    pub error_severity: i32,
    /// When a retry happens.
    #[serde(rename = "ErrorRetryCondition")]
    pub error_retry_condition: String,
    /// Always null here.
    #[serde(rename = "ErrorEntities")]
    pub error_entities: Option<Vec<serde_json::Value>>,
}

impl ErrorDescription {
    /// An error now, with EVE's "error" severity.
    pub fn now(text: impl Into<String>, retry: impl Into<String>) -> ErrorDescription {
        ErrorDescription {
            error: text.into(),
            error_time: Some(Utc::now()),
            error_severity: 3,
            error_retry_condition: retry.into(),
            error_entities: None,
        }
    }

    /// Whether there is an error.
    pub fn is_set(&self) -> bool {
        !self.error.is_empty()
    }
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Go's `time.Time` in JSON: RFC 3339; the zero time means "never" (`None`).
pub mod go_time {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    const ZERO: &str = "0001-01-01T00:00:00Z";

    /// Writes `None` as Go's zero time.
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => s.serialize_str(ZERO),
        }
    }

    /// Reads Go's zero time (or null) as `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text.as_deref() {
            None | Some("") => Ok(None),
            Some(t) if t.starts_with("0001-01-01T00:00:00") => Ok(None),
            Some(t) => DateTime::parse_from_rfc3339(t)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| serde::de::Error::custom(format!("time {t:?}: {e}"))),
        }
    }
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

    #[test]
    fn status_is_written_with_go_shapes() {
        let status = DomainStatus {
            uuid_and_version: UuidAndVersion { uuid: Uuid::nil(), version: "1".into() },
            display_name: "web".into(),
            state: SwState::RUNNING,
            state_name: SwState::RUNNING.to_string(),
            activated: true,
            app_num: 1,
            pending_add: false,
            pending_modify: false,
            pending_delete: false,
            domain_name: "x".into(),
            domain_id: 7,
            boot_time: None,
            disk_status_list: vec![],
            vif_list: vec![VifInfo {
                config: VifConfig { mac: GoMac(Some([0, 0x16, 0x3e, 1, 2, 3])), ..VifConfig::default() },
                vif_used: "vif7.0".into(),
            }],
            io_adapter_list: vec![],
            tried_count: 1,
            error: ErrorDescription::default(),
            config_failed: false,
            boot_failed: false,
            adapters_failed: false,
            vm: VmConfig::default(),
        };
        let v: serde_json::Value = serde_json::to_value(&status).unwrap();
        assert_eq!(v["State"], 115);
        assert_eq!(v["StateName"], "RUNNING");
        assert_eq!(v["DomainId"], 7);
        assert_eq!(v["BootTime"], "0001-01-01T00:00:00Z");
        assert_eq!(v["Error"], "");
        assert_eq!(v["ErrorTime"], "0001-01-01T00:00:00Z");
        assert_eq!(v["VifList"][0]["Mac"], "ABY+AQID");
        assert_eq!(v["VifList"][0]["VifUsed"], "vif7.0");
        assert_eq!(v["Kernel"], "", "VmConfig is inlined");
        let back: DomainStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back, status);
    }

    #[test]
    fn state_names_follow_eves_numbering() {
        assert_eq!(SwState::INSTALLED.name(), "INSTALLED");
        assert_eq!(SwState::HALTED.name(), "HALTED");
        assert_eq!(SwState::BROKEN.name(), "BROKEN");
        assert_eq!(SwState(100).name(), "INITIAL");
        assert_eq!(SwState(7).name(), "UNKNOWN");
        assert_eq!(Format(3).name(), "QCOW2");
    }
}
