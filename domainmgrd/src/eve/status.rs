//! EVE's `DomainStatus`, the output: where the domain is in its life (`SwState`), its
//! disks and vifs as given to it, and the last error (`ErrorDescription`), written field for
//! field as EVE's Go readers expect, plus a readable `StateName`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Format, IoAdapter, UuidAndVersion, VifConfig, VmConfig, go_time};

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
    /// From the config: EVE's log collector (newlogd) keeps this app's console out of the logs
    /// it sends on.
    #[serde(rename = "DisableLogs", default)]
    pub disable_logs: bool,
    /// How the app boots when that is not what its mode says (a PV app run as PVH, or as
    /// PV through GRUB); not in EVE's struct, and not written when empty.
    #[serde(rename = "BootNote", default, skip_serializing_if = "String::is_empty")]
    pub boot_note: String,
    /// A container's entrypoint's exit status (0-255, or 128 + the signal), as its init wrote
    /// it when the guest powered off (`domainctl run`); not in EVE's struct, not written when
    /// there is none.
    #[serde(rename = "ExitStatus", default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// A container app's volume, holding its image configuration (EVE's "folder holding an OCI
    /// Image config for this domain"); empty for VMs.
    #[serde(rename = "OCIConfigDir", default)]
    pub oci_config_dir: String,
    /// The variables a container app gets from its cloud-init user data (EVE's map: no
    /// order).
    #[serde(rename = "EnvVariables", default)]
    pub env_variables: Option<std::collections::BTreeMap<String, String>>,
    /// The domain's own copies of shared images (diskcopies.rs), with how far each has come
    /// while it is being made; not in EVE's struct, not written when there are none.
    #[serde(rename = "DiskCopies", default, skip_serializing_if = "Vec::is_empty")]
    pub disk_copies: Vec<crate::diskcopies::DiskCopyStatus>,
    /// Its last migration to or from another host (migration.rs); not in EVE's struct, not
    /// written when there was none.
    #[serde(rename = "Migration", default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<crate::migration::MigrationStatus>,
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

#[cfg(test)]
mod tests {
    use super::*;

    use uuid::Uuid;

    use crate::eve::GoMac;

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
            boot_note: String::new(),
            exit_status: None,
            oci_config_dir: String::new(),
            env_variables: None,
            disk_copies: Vec::new(),
            migration: None,
            disable_logs: false,
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
