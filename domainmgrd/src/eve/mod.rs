//! EVE-OS's JSON objects, field for field as EVE's Go code writes them (pkg/pillar/types):
//! `DomainConfig` in, `DomainStatus` out, and the pieces they share.
//!
//! Go's `encoding/json` rules decide the shapes: field names are the Go names, embedded
//! structs (`VmConfig`, `ErrorAndTime`) are inlined, enums are numbers, `time.Time` is RFC 3339
//! with the zero time `0001-01-01T00:00:00Z`, nil slices are `null`, and a `net.HardwareAddr`
//! (a byte slice) is base64. Inputs accept every field EVE writes and ignore the ones we do not
//! use; outputs carry EVE's fields plus a readable `StateName`, which Go readers ignore.
//!
//! `config.rs` holds the input (`DomainConfig` and its disks), `status.rs` the output
//! (`DomainStatus`, its state, disks, vifs and error), and `shared.rs` the pieces both carry
//! (identity, `VmConfig`, vifs, adapters, formats) and Go's encodings (MAC, CPU list, time).
//! All are re-exported here: their path is `crate::eve::X` whichever file holds them.

mod config;
mod shared;
mod status;

pub use config::{CipherContext, DiskConfig, DomainConfig};
pub use shared::{
    CpuList, EthVf, Format, GoMac, IoAdapter, IoType, UuidAndVersion, VifConfig, VmConfig, VmMode, go_time,
};
pub use status::{DiskStatus, DomainStatus, ErrorDescription, SwState, VifInfo};
