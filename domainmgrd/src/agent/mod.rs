//! The daemon as an EVE agent, at the process boundary: what EVE's `domainmgr` publishes
//! (`outputs.rs`: DomainStatus, DomainMetric, HostMemory, AssignableAdapters, Capabilities,
//! over EVE's pubsub sockets with their checkpoint files), what it subscribes to
//! (`inputs.rs`: zedmanager's DomainConfig, zedagent's ConfigItemValueMap and
//! PhysicalIOAdapterList, nim's DeviceNetworkStatus), and the agent's own files for EVE's
//! watchdog (`contract.rs`: the pid file and the touch file). The protocol itself is the
//! `evepubsub` crate; this module only decides which topics, where, and what they mean to the
//! daemon.

pub mod contract;
pub mod inputs;
pub mod outputs;

pub use inputs::{Input, InputMode, Notice, Subscribed, Topic};
pub use outputs::Outputs;
