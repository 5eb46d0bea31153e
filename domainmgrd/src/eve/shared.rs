//! The pieces EVE's `DomainConfig` and `DomainStatus` both carry (the app's identity, the
//! inlined `VmConfig`, vifs, I/O adapters, volume formats), and the Go encodings they need: a
//! `net.HardwareAddr` as base64, a CPU list in either of its shapes, and `time.Time` with its
//! zero time.

use std::fmt;

use base64::Engine;
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

    /// The mode as EVE reads it (`VirtualizationModeOrDefault`): a number it does not know,
    /// FILLER included, is PV.
    pub fn or_default(self) -> VmMode {
        match self {
            VmMode::PV | VmMode::HVM | VmMode::FML | VmMode::NOHYPER | VmMode::LEGACY => self,
            _ => VmMode::PV,
        }
    }
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
    /// The SR-IOV virtual function's settings (VF adapters only).
    #[serde(rename = "EthVf", deserialize_with = "null_as_default")]
    pub eth_vf: EthVf,
}

/// EVE's `sriov.EthVF`: an SR-IOV virtual function's index, PCI address, MAC and VLAN. Go
/// writes it with every field `omitempty`, so an unset one is `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EthVf {
    /// The VF's index on its physical function.
    #[serde(rename = "Index", skip_serializing_if = "is_zero_u8")]
    pub index: u8,
    /// The VF's PCI address.
    #[serde(rename = "PciLong", skip_serializing_if = "String::is_empty")]
    pub pci_long: String,
    /// The MAC the VF is given.
    #[serde(rename = "Mac", skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// The VLAN the VF is put in.
    #[serde(rename = "VlanID", skip_serializing_if = "is_zero_u16")]
    pub vlan_id: u16,
}

impl EthVf {
    /// Whether it asks for anything (Go's zero value asks for nothing).
    pub fn is_set(&self) -> bool {
        *self != EthVf::default()
    }
}

fn is_zero_u8(n: &u8) -> bool {
    *n == 0
}

fn is_zero_u16(n: &u16) -> bool {
    *n == 0
}

/// Reads `null` as the type's default (Go's nil, or a zero struct another writer nulled).
pub(super) fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
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
    /// Device tree nodes passed through (ARM): `null` or a list of paths.
    #[serde(rename = "DtDev")]
    pub dt_dev: Option<Vec<String>>,
    /// Physical IRQs passed through: `null` or a list of numbers.
    #[serde(rename = "IRQs")]
    pub irqs: Option<Vec<i64>>,
    /// I/O memory ranges passed through: `null` or a list of `"0xf7020,1"`-like ranges.
    #[serde(rename = "IOMem")]
    pub io_mem: Option<Vec<String>>,
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
