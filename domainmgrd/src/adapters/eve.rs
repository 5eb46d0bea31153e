//! EVE's JSON for physical I/O adapters: `PhysicalIOAdapterList` (what the controller says the
//! device has), `DeviceNetworkStatus` (which interfaces dom0 uses as network ports), and
//! `AssignableAdapters` (what domainmgr publishes: each adapter's pciback state and user).
//! Shapes follow EVE's Go types (pkg/pillar/types), including `omitempty` on `IoBundle`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::eve::{IoType, go_time};

/// `PhysicalAddress`: where an adapter is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PhysicalAddress {
    /// PCI address, `0000:03:00.0`.
    #[serde(rename = "PciLong")]
    pub pci_long: String,
    /// Network interface name, `eth1`.
    #[serde(rename = "Ifname")]
    pub ifname: String,
    /// Serial device, `/dev/ttyS1`.
    #[serde(rename = "Serial")]
    pub serial: String,
    /// A physical IRQ, `3` (ISA devices such as serial ports; PV guests only).
    #[serde(rename = "Irq")]
    pub irq: String,
    /// An x86 I/O port range, `2f8-2ff` (hex; PV guests only).
    #[serde(rename = "Ioports")]
    pub ioports: String,
    /// USB address, `1:2.3`: bus number and port path.
    #[serde(rename = "UsbAddr")]
    pub usb_addr: String,
    /// USB vendor:product.
    #[serde(rename = "UsbProduct")]
    pub usb_product: String,
}

/// `PhysicalIOAdapter`: one adapter of the device model.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PhysicalIoAdapter {
    /// Kind (EVE's PhyIoType, numbered as IoType).
    #[serde(rename = "Ptype")]
    pub ptype: IoType,
    /// Label on the enclosure.
    #[serde(rename = "Phylabel")]
    pub phylabel: String,
    /// Address.
    #[serde(rename = "Phyaddr")]
    pub phyaddr: PhysicalAddress,
    /// Label from the device model.
    #[serde(rename = "Logicallabel")]
    pub logicallabel: String,
    /// Assignment group: members move to a domain (or stay in dom0) together. Empty: not
    /// assignable.
    #[serde(rename = "Assigngrp")]
    pub assigngrp: String,
    /// The group this one depends on: a USB device's names its controller's group.
    #[serde(rename = "Parentassigngrp")]
    pub parentassigngrp: String,
    /// Usage (EVE's PhyIoMemberUsage).
    #[serde(rename = "Usage")]
    pub usage: i32,
}

/// `PhysicalIOAdapterList` (key `global`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PhysicalIoAdapterList {
    /// Whether the controller has sent it.
    #[serde(rename = "Initialized")]
    pub initialized: bool,
    /// The adapters.
    #[serde(rename = "AdapterList", deserialize_with = "null_as_empty")]
    pub adapter_list: Vec<PhysicalIoAdapter>,
}

/// `NetworkPortStatus`: a network port dom0 uses (the fields we need).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkPortStatus {
    /// Its interface.
    #[serde(rename = "IfName")]
    pub if_name: String,
    /// Its PCI address, when EVE reports it.
    #[serde(rename = "PciLong")]
    pub pci_long: String,
}

/// `DeviceNetworkStatus` (key `global`): dom0's network ports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceNetworkStatus {
    /// The DevicePortConfig it reflects. nim publishes a status with an empty key before it
    /// has any config; EVE ignores that one, and so do we. Absent (not EVE's writer): accepted.
    #[serde(rename = "DPCKey", skip_serializing_if = "Option::is_none")]
    pub dpc_key: Option<String>,
    /// The ports.
    #[serde(rename = "Ports", deserialize_with = "null_as_empty")]
    pub ports: Vec<NetworkPortStatus>,
}

/// One entry of an `IoBundleError`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IoBundleErrorEntry {
    /// The message.
    #[serde(rename = "ErrStr", skip_serializing_if = "String::is_empty")]
    pub err_str: String,
}

/// `IOBundleError`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IoBundleError {
    /// The errors, if any.
    #[serde(rename = "Errors", skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<IoBundleErrorEntry>,
    /// When the last one happened.
    #[serde(rename = "TimeOfError", with = "go_time")]
    pub time_of_error: Option<DateTime<Utc>>,
}

impl IoBundleError {
    /// One error, now.
    pub fn now(text: impl Into<String>) -> IoBundleError {
        IoBundleError { errors: vec![IoBundleErrorEntry { err_str: text.into() }], time_of_error: Some(Utc::now()) }
    }

    /// The messages joined, or "" when there is none.
    pub fn text(&self) -> String {
        self.errors.iter().map(|e| e.err_str.as_str()).collect::<Vec<_>>().join("; ")
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero_io(t: &IoType) -> bool {
    t.0 == 0
}
fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// `IoBundle`: an adapter as domainmgr manages it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IoBundle {
    /// Kind.
    #[serde(rename = "Type", skip_serializing_if = "is_zero_io")]
    pub io_type: IoType,
    /// Label on the enclosure.
    #[serde(rename = "Phylabel", skip_serializing_if = "String::is_empty")]
    pub phylabel: String,
    /// Label from the device model.
    #[serde(rename = "Logicallabel", skip_serializing_if = "String::is_empty")]
    pub logicallabel: String,
    /// Assignment group.
    #[serde(rename = "AssignmentGroup", skip_serializing_if = "String::is_empty")]
    pub assignment_group: String,
    /// The group it depends on.
    #[serde(rename = "ParentAssignmentGroup", skip_serializing_if = "String::is_empty")]
    pub parent_assignment_group: String,
    /// Usage.
    #[serde(rename = "Usage", skip_serializing_if = "is_zero")]
    pub usage: i32,
    /// Network interface name.
    #[serde(rename = "Ifname", skip_serializing_if = "String::is_empty")]
    pub ifname: String,
    /// PCI address.
    #[serde(rename = "PciLong", skip_serializing_if = "String::is_empty")]
    pub pci_long: String,
    /// Physical IRQ.
    #[serde(rename = "Irq", skip_serializing_if = "String::is_empty")]
    pub irq: String,
    /// I/O port range.
    #[serde(rename = "Ioports", skip_serializing_if = "String::is_empty")]
    pub ioports: String,
    /// Serial device.
    #[serde(rename = "Serial", skip_serializing_if = "String::is_empty")]
    pub serial: String,
    /// USB address.
    #[serde(rename = "UsbAddr", skip_serializing_if = "String::is_empty")]
    pub usb_addr: String,
    /// USB vendor:product.
    #[serde(rename = "UsbProduct", skip_serializing_if = "String::is_empty")]
    pub usb_product: String,
    /// The domain that has it (the nil UUID when none; Go always writes it).
    #[serde(rename = "UsedByUUID")]
    pub used_by_uuid: Uuid,
    /// Bound to pciback (assignable to guests).
    #[serde(rename = "IsPCIBack", skip_serializing_if = "is_false")]
    pub is_pci_back: bool,
    /// Part of (the group of) a dom0 network port.
    #[serde(rename = "IsPort", skip_serializing_if = "is_false")]
    pub is_port: bool,
    /// Kept in dom0 while no domain uses it (EVE's keep-in-host rules, `policy.rs`).
    #[serde(rename = "KeepInHost", skip_serializing_if = "is_false")]
    pub keep_in_host: bool,
    /// What went wrong with it (Go always writes the struct).
    #[serde(rename = "Error")]
    pub error: IoBundleError,
}

/// `AssignableAdapters` (key `global`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AssignableAdapters {
    /// Whether it reflects a PhysicalIOAdapterList.
    #[serde(rename = "Initialized", skip_serializing_if = "is_false")]
    pub initialized: bool,
    /// The adapters.
    #[serde(rename = "IoBundleList", skip_serializing_if = "Vec::is_empty")]
    pub io_bundle_list: Vec<IoBundle>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_eves_adapter_list_and_ports() {
        let list: PhysicalIoAdapterList = serde_json::from_str(
            r#"{"Initialized": true, "AdapterList": [
                {"Ptype": 1, "Phylabel": "eth1", "Phyaddr": {"PciLong": "0000:03:00.0", "Ifname": "eth1", "Serial": "", "Irq": "", "Ioports": "", "UsbAddr": "", "UsbProduct": "", "UnknownType": ""},
                 "Logicallabel": "eth1", "Assigngrp": "eth1", "Parentassigngrp": "", "Usage": 1, "UsagePolicy": {"FreeUplink": false}, "Vfs": {"Count": 0, "Data": null}, "Cbattr": null}]}"#,
        )
        .unwrap();
        assert_eq!(list.adapter_list[0].phyaddr.pci_long, "0000:03:00.0");
        assert_eq!(list.adapter_list[0].ptype, IoType(1));
        let dns: DeviceNetworkStatus =
            serde_json::from_str(r#"{"DPCKey": "zedagent", "Ports": [{"IfName": "eth0", "IsMgmt": true, "Cost": 0}]}"#)
                .unwrap();
        assert_eq!(dns.ports[0].if_name, "eth0");
        assert_eq!(dns.dpc_key.as_deref(), Some("zedagent"));
        let bare: DeviceNetworkStatus = serde_json::from_str(r#"{"Ports": null}"#).unwrap();
        assert_eq!((bare.dpc_key, bare.ports.len()), (None, 0));
    }

    #[test]
    fn io_bundles_omit_empty_fields_as_go_does() {
        let b = IoBundle { io_type: IoType(1), phylabel: "eth1".into(), is_pci_back: true, ..IoBundle::default() };
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"Type": 1, "Phylabel": "eth1", "UsedByUUID": "00000000-0000-0000-0000-000000000000",
                "IsPCIBack": true, "Error": {"TimeOfError": "0001-01-01T00:00:00Z"}})
        );
    }
}
