//! Safe Rust over Xen 4.17's libxl, for dom0 tools that create, control and watch guest
//! domains in-process (no `xl` subprocesses).
//!
//! # Walkthrough
//! Open the process's [`Context`], describe a guest with a [`DomainSpec`], create it paused,
//! do pre-boot setup, let it run, then shut it down gracefully and destroy what is left:
//!
//! ```no_run
//! use std::time::Duration;
//! use xenctl::{Context, DomainEvent, DomainSpec, VifSpec};
//!
//! # fn main() -> Result<(), xenctl::Error> {
//! let ctx = Context::new()?; // fails with a clear error off dom0
//! let spec = DomainSpec::pv("demo")
//!     .memory_mib(128)
//!     .kernel("/var/lib/xen/images/vmlinux")
//!     .ramdisk("/var/lib/xen/images/initrd.gz")
//!     .cmdline("console=hvc0")
//!     .vif(VifSpec::bridged("xenbr0"));
//!
//! let domid = ctx.create_paused(&spec)?;
//! let watch = ctx.watch_domain(domid)?; // shutdown and death events, pushed, no polling
//! ctx.xenstore().disable_vif_offload(domid, spec.vifs.len())?;
//! ctx.unpause(domid)?;
//! println!("{} is {}", domid, ctx.info(domid)?.state);
//!
//! ctx.shutdown(domid)?; // ask the guest
//! match watch.recv_timeout(Duration::from_secs(30)) {
//!     Some(DomainEvent::Shutdown { reason, .. }) => println!("guest shut down: {reason}"),
//!     _ => println!("guest ignored the request"),
//! }
//! ctx.destroy(domid)?; // release it (Xen keeps shut-down domains until the toolstack does)
//! watch.wait_for(Duration::from_secs(10), |e| matches!(e, DomainEvent::Death { .. }));
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//! - One libxl context per process, shared by all threads ([`Context`] is `Send + Sync` and
//!   cheap to clone). libxl's log messages go to the `log` crate with their levels.
//! - SIGCHLD: libxl's "mainloop" mode with a forwarding thread, so libxl reaps only its own
//!   children and the application's `std::process` children keep working (see [`Context`]).
//! - Every `unsafe` is in this crate, each with its `SAFETY:` reason; libxl structs are
//!   `_init`ed and `_dispose`d exactly once by owning guards; no panic crosses into C.
//! - Errors ([`Error`]) name the operation, the domain and libxl's error code.
//! - xl.cfg files both ways: [`DomainSpec::from_xl_config`] reads one with xl's own parser
//!   (libxlutil) and semantics, errors naming file, line and key; [`DomainSpec::to_xl_config`]
//!   writes one that reads back to the same spec; [`DomainSpec::to_libxl_json`] gives the JSON
//!   `xl -N create` prints, without Xen (for dry runs).
//! - xl's global settings: [`XlConf`] reads /etc/xen/xl.conf as xl does, and
//!   [`DomainSpec::apply_xl_conf`] puts into a spec what xl puts into every domain from it.
//! - [`sys`] re-exports the raw bindings for the rare caller who needs them.

#![deny(missing_docs)]

mod cnum;
mod context;
mod convert;
mod cpuid;
mod cpuset;
mod devices;
mod devmodel;
mod error;
mod events;
mod extras;
mod info;
mod json;
mod lifecycle;
mod logger;
mod migrate;
mod migrate_wire;
mod options;
mod pci;
mod pvdevices;
mod pvdevices_xl;
mod pvmedia;
mod pvmedia_xl;
mod raw;
mod resources;
mod save;
mod savejob;
mod spec;
mod spice;
mod tuning;
mod types;
mod usb;
mod vfb;
mod viridian;
mod vnuma;
mod xenstore;
mod xlcfg;
mod xlconf;
mod xlconf_parse;
mod xlguard;
mod xlkeys;
mod xllex;
mod xlparse;
mod xlread;
mod xlscan;
mod xlspecs;
mod xltuning;
mod xlu;

pub use context::{Context, XenVersions};
pub use convert::LibxlDomainConfig;
pub use cpuid::CpuidPolicy;
pub use cpuset::HostCpus;
pub use devices::{DiskBackend, DiskFormat, DiskSpec, Mac, NicType, VifSpec, VncSpec};
pub use devmodel::{DeviceModelSpec, GfxPassthru, HdType, VendorDevice};
pub use error::{Error, LibxlErrorCode, Result, Subject};
pub use events::{DomainEvent, DomainWatch, WatchRegistration};
pub use extras::Altp2mMode;
pub use info::{DomainInfo, DomainState, HostInfo};
pub use migrate::{MigrateOutcome, MigrationStream, ReceivedDomain};
pub use options::{BiosKind, DeviceModelVersion, DisplaySpec, PlatformSpec, TimerMode, VgaKind};
pub use pci::{Bdf, PciSpec};
pub use pvdevices::{ChannelConnection, ChannelSpec, P9Spec, PvcallsSpec, VkbBackend, VkbSpec, VtpmSpec};
pub use pvmedia::{VdisplConnector, VdisplSpec, VsndParams, VsndPcm, VsndSpec, VsndStream, VsndStreamType};
pub use resources::{HostResources, IomemRange, IoportRange, RdmPolicy, RdmSpec, RdmStrategy};
pub use save::{SaveImageHeader, partial_path};
pub use savejob::SaveJob;
pub use spec::{DomainSpec, TscMode};
pub use spice::SpiceSpec;
pub use tuning::{
    ArmSpec, GicVersion, Passthrough, PvShimSpec, SchedParams, SoftAffinity, TeeType, TuningSpec, VuartType,
};
pub use types::{DomId, DomainKind, ShutdownAction, ShutdownReason};
pub use usb::{UsbCtrlKind, UsbCtrlSpec, UsbDevSpec};
pub use uuid::Uuid;
pub use vfb::VfbSpec;
pub use vnuma::VnumaNode;
pub use xenstore::{VIF_OFFLOAD_FEATURES, Xenstore, vif_backend_path};
pub use xlconf::{AutoBalloon, DomidPolicy, HostDefaults, MAX_XL_CONF_BYTES, OutputFormat, XL_CONF_PATH, XlConf};
pub use xlparse::XlConfigFile;

/// The raw bindings (`xen-sys`), for what this crate does not wrap.
pub use xen_sys as sys;
