//! The run spec: what dom0 tells the guest's init to run, as [`SPEC_FILE`](crate::SPEC_FILE) in
//! the shared directory. It is written by the toolstack and read by the init, but it crosses a
//! trust boundary both ways (a guest could rewrite its share), so both ends validate it the same
//! way: [`RunSpec::from_json`] and [`RunSpec::to_json`] accept only what the init can apply.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The largest spec file accepted, in bytes.
pub const MAX_SPEC_BYTES: usize = 1 << 20;
const MAX_ARGS: usize = 4096;
const MAX_ENV: usize = 4096;
const MAX_STRING: usize = 128 << 10;
const MAX_NETWORKS: usize = 16;
const MAX_DNS: usize = 8;
const MAX_HOSTNAME: usize = 64;
const MAX_VOLUMES: usize = 26;

/// What to run in the guest and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSpec {
    /// The command line; `argv[0]` is looked up in `PATH` (inside the root filesystem) unless it
    /// contains a `/`. Never empty.
    pub argv: Vec<String>,
    /// The environment, `KEY=VALUE` each, exactly as the process gets it (the init adds only
    /// `PATH`, `HOME` and `HOSTNAME` when they are missing).
    pub env: Vec<String>,
    /// The working directory, absolute; created if missing. Default `/`.
    pub cwd: String,
    /// The user as in an OCI image config: `""` (root), `name`, `uid`, `name:group`, `uid:gid`.
    pub user: String,
    /// The guest's host name; empty leaves the kernel's.
    pub hostname: String,
    /// How long the entrypoint has between SIGTERM and SIGKILL when the guest is stopped.
    /// Default 10.
    pub stop_timeout_secs: u32,
    /// Network interfaces, matched by MAC. Empty: every `eth*` gets DHCP.
    pub network: Vec<NetConfig>,
    /// Name servers for `/etc/resolv.conf`; empty leaves the image's file alone (unless DHCP
    /// gives some).
    pub dns: Vec<String>,
    /// Block volumes mounted into the root filesystem before the entrypoint starts, as EVE's
    /// runx initrd mounts an app's volumes at their `MountDir`s.
    pub volumes: Vec<VolumeMount>,
}

/// A block device of the guest mounted at a directory of the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeMount {
    /// The guest's device name, `xvdb`.
    pub device: String,
    /// Where, absolute in the container (created if missing).
    pub target: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
}

impl VolumeMount {
    /// A device name of letters and digits, an absolute target with no `..`.
    pub fn validate(&self) -> Result<(), String> {
        if self.device.is_empty() || self.device.len() > 32 || !self.device.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("device: {:?} is not a device name", self.device));
        }
        check_string("target", &self.target)?;
        if !self.target.starts_with('/')
            || self.target.split('/').any(|c| c == "..")
            || self.target.trim_matches('/').is_empty()
        {
            return Err(format!("target: {:?} is not an absolute directory below /", self.target));
        }
        Ok(())
    }
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            argv: Vec::new(),
            env: Vec::new(),
            cwd: "/".to_string(),
            user: String::new(),
            hostname: String::new(),
            stop_timeout_secs: 10,
            network: Vec::new(),
            dns: Vec::new(),
            volumes: Vec::new(),
        }
    }
}

/// One network interface of the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// Its MAC address, `aa:bb:cc:dd:ee:ff`: how the init finds the interface.
    pub mac: String,
    /// Its MTU; the driver's default when absent.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// A static address with its prefix length, `10.0.0.5/24` or `fd00::5/64`.
    #[serde(default)]
    pub address: Option<String>,
    /// The default gateway (with a static address).
    #[serde(default)]
    pub gateway: Option<String>,
    /// Configure the interface with DHCP (IPv4) instead of a static address.
    #[serde(default)]
    pub dhcp: bool,
}

impl RunSpec {
    /// Parses and validates a spec file.
    pub fn from_json(bytes: &[u8]) -> Result<RunSpec, String> {
        if bytes.len() > MAX_SPEC_BYTES {
            return Err(format!("run spec is {} bytes, more than {MAX_SPEC_BYTES}", bytes.len()));
        }
        let spec: RunSpec = serde_json::from_slice(bytes).map_err(|e| format!("run spec: {e}"))?;
        spec.validate()?;
        Ok(spec)
    }

    /// The spec as JSON, after the same validation as [`RunSpec::from_json`].
    pub fn to_json(&self) -> Result<Vec<u8>, String> {
        self.validate()?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| format!("run spec: {e}"))?;
        if json.len() > MAX_SPEC_BYTES {
            return Err(format!("run spec is {} bytes, more than {MAX_SPEC_BYTES}", json.len()));
        }
        Ok(json)
    }

    /// Checks everything the init relies on; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err("argv: empty (nothing to run)".to_string());
        }
        check_list("argv", &self.argv, MAX_ARGS)?;
        check_list("env", &self.env, MAX_ENV)?;
        for (i, e) in self.env.iter().enumerate() {
            match e.split_once('=') {
                Some((key, _)) if !key.is_empty() => {}
                _ => return Err(format!("env[{i}]: {e:?} is not KEY=VALUE")),
            }
        }
        check_string("cwd", &self.cwd)?;
        if !self.cwd.starts_with('/') {
            return Err(format!("cwd: {:?} is not absolute", self.cwd));
        }
        check_string("user", &self.user)?;
        if self.user.len() > 256 {
            return Err("user: too long".to_string());
        }
        if self.hostname.len() > MAX_HOSTNAME
            || !self.hostname.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(format!("hostname: {:?} is not a host name", self.hostname));
        }
        if self.network.len() > MAX_NETWORKS {
            return Err(format!("network: more than {MAX_NETWORKS} interfaces"));
        }
        for (i, net) in self.network.iter().enumerate() {
            net.validate().map_err(|e| format!("network[{i}]: {e}"))?;
        }
        if self.dns.len() > MAX_DNS {
            return Err(format!("dns: more than {MAX_DNS} servers"));
        }
        for (i, d) in self.dns.iter().enumerate() {
            d.parse::<IpAddr>().map_err(|_| format!("dns[{i}]: {d:?} is not an IP address"))?;
        }
        if self.volumes.len() > MAX_VOLUMES {
            return Err(format!("volumes: more than {MAX_VOLUMES}"));
        }
        for (i, v) in self.volumes.iter().enumerate() {
            v.validate().map_err(|e| format!("volumes[{i}]: {e}"))?;
        }
        Ok(())
    }
}

impl NetConfig {
    /// Checks the MAC, the address, the gateway and that DHCP and a static address are not
    /// both asked for.
    pub fn validate(&self) -> Result<(), String> {
        self.mac_bytes()?;
        if let Some(mtu) = self.mtu
            && !(68..=65535).contains(&mtu)
        {
            return Err(format!("mtu: {mtu} is out of range (68 to 65535)"));
        }
        if self.dhcp && (self.address.is_some() || self.gateway.is_some()) {
            return Err("dhcp with a static address or gateway".to_string());
        }
        let address = match &self.address {
            Some(a) => Some(parse_cidr(a).map_err(|e| format!("address: {e}"))?),
            None => None,
        };
        if let Some(g) = &self.gateway {
            let gw = g.parse::<IpAddr>().map_err(|_| format!("gateway: {g:?} is not an IP address"))?;
            match address {
                Some((a, _)) if a.is_ipv4() == gw.is_ipv4() => {}
                Some(_) => return Err("gateway: not of the address's family".to_string()),
                None => return Err("gateway without an address".to_string()),
            }
        }
        Ok(())
    }

    /// The MAC address as bytes.
    pub fn mac_bytes(&self) -> Result<[u8; 6], String> {
        parse_mac(&self.mac).ok_or_else(|| format!("mac: {:?} is not aa:bb:cc:dd:ee:ff", self.mac))
    }
}

/// Parses a MAC address written as six `:`-separated hex pairs (either case).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Parses `address/prefix` (IPv4 or IPv6), checking the prefix length against the family.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, prefix) = s.split_once('/').ok_or_else(|| format!("{s:?} has no /prefix"))?;
    let addr: IpAddr = addr.parse().map_err(|_| format!("{addr:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match prefix.parse::<u8>() {
        Ok(p) if p <= max && !prefix.starts_with('+') => Ok((addr, p)),
        _ => Err(format!("{prefix:?} is not a prefix length (0 to {max})")),
    }
}

fn check_list(field: &str, list: &[String], max: usize) -> Result<(), String> {
    if list.len() > max {
        return Err(format!("{field}: more than {max} entries"));
    }
    for (i, s) in list.iter().enumerate() {
        check_string(&format!("{field}[{i}]"), s)?;
    }
    Ok(())
}

fn check_string(field: &str, s: &str) -> Result<(), String> {
    if s.contains('\0') {
        return Err(format!("{field}: contains a NUL byte"));
    }
    if s.len() > MAX_STRING {
        return Err(format!("{field}: longer than {MAX_STRING} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_spec_gets_defaults() {
        let spec = RunSpec::from_json(br#"{"argv": ["/bin/sh"]}"#).unwrap();
        assert_eq!(spec.cwd, "/");
        assert_eq!(spec.stop_timeout_secs, 10);
        assert!(spec.env.is_empty() && spec.network.is_empty() && spec.user.is_empty());
    }

    #[test]
    fn volumes_name_a_device_and_a_directory_below_the_root() {
        let spec = |device: &str, target: &str| RunSpec {
            argv: vec!["sh".into()],
            volumes: vec![VolumeMount { device: device.into(), target: target.into(), read_only: false }],
            ..RunSpec::default()
        };
        assert!(spec("xvdb", "/var/lib/data").validate().is_ok());
        for (device, target, want) in [
            ("../sda", "/data", "volumes[0]: device: \"../sda\" is not a device name"),
            ("", "/data", "volumes[0]: device: \"\" is not a device name"),
            ("xvdb", "data", "volumes[0]: target: \"data\" is not an absolute directory below /"),
            ("xvdb", "/data/../../etc", "volumes[0]: target: \"/data/../../etc\" is not an absolute directory below /"),
            ("xvdb", "/", "volumes[0]: target: \"/\" is not an absolute directory below /"),
        ] {
            assert_eq!(spec(device, target).validate().unwrap_err(), want);
        }
    }

    #[test]
    fn full_spec_round_trips() {
        let spec = RunSpec {
            argv: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
            env: vec!["A=1".into(), "EMPTY=".into()],
            cwd: "/srv".into(),
            user: "1000:1000".into(),
            hostname: "web-1".into(),
            stop_timeout_secs: 3,
            network: vec![
                NetConfig {
                    mac: "00:16:3E:00:00:01".into(),
                    mtu: Some(1400),
                    address: Some("10.0.0.5/24".into()),
                    gateway: Some("10.0.0.1".into()),
                    dhcp: false,
                },
                NetConfig { mac: "00:16:3e:00:00:02".into(), dhcp: true, ..Default::default() },
            ],
            dns: vec!["10.0.0.1".into(), "fd00::1".into()],
            volumes: vec![VolumeMount { device: "xvdb".into(), target: "/data".into(), read_only: true }],
        };
        let json = spec.to_json().unwrap();
        assert_eq!(RunSpec::from_json(&json).unwrap(), spec);
        assert_eq!(spec.network[0].mac_bytes().unwrap(), [0, 0x16, 0x3e, 0, 0, 1]);
    }

    #[test]
    fn rejects_bad_specs_naming_the_field() {
        let cases: &[(&str, &str)] = &[
            (r#"{}"#, "argv"),
            (r#"{"argv": []}"#, "argv"),
            (r#"{"argv": ["sh"], "bogus": 1}"#, "unknown field"),
            (r#"{"argv": ["sh"], "cwd": "srv"}"#, "cwd"),
            (r#"{"argv": ["sh"], "env": ["NOEQUALS"]}"#, "env[0]"),
            (r#"{"argv": ["sh"], "env": ["=x"]}"#, "env[0]"),
            (r#"{"argv": ["sh\u0000"]}"#, "argv[0]"),
            (r#"{"argv": ["sh"], "env": ["A=\u0000"]}"#, "env[0]"),
            (r#"{"argv": ["sh"], "hostname": "a b"}"#, "hostname"),
            (r#"{"argv": ["sh"], "network": [{"mac": "00:16:3e:00:00"}]}"#, "network[0]: mac"),
            (r#"{"argv": ["sh"], "network": [{"mac": "00:16:3e:00:00:01", "address": "10.0.0.5"}]}"#, "address"),
            (r#"{"argv": ["sh"], "network": [{"mac": "00:16:3e:00:00:01", "address": "10.0.0.5/33"}]}"#, "address"),
            (r#"{"argv": ["sh"], "network": [{"mac": "00:16:3e:00:00:01", "gateway": "10.0.0.1"}]}"#, "gateway"),
            (
                r#"{"argv": ["sh"], "network": [{"mac": "00:16:3e:00:00:01", "address": "10.0.0.5/24", "gateway": "fd00::1"}]}"#,
                "gateway",
            ),
            (
                r#"{"argv": ["sh"], "network": [{"mac": "00:16:3e:00:00:01", "dhcp": true, "address": "10.0.0.5/24"}]}"#,
                "dhcp",
            ),
            (r#"{"argv": ["sh"], "network": [{"mac": "00:16:3e:00:00:01", "mtu": 10}]}"#, "mtu"),
            (r#"{"argv": ["sh"], "network": [{"mac": "00:16:3e:00:00:01", "extra": 1}]}"#, "unknown field"),
            (r#"{"argv": ["sh"], "dns": ["dns.example"]}"#, "dns[0]"),
            (r#"{"argv": ["sh"], "stop_timeout_secs": -1}"#, "expected u32"),
            (r#"not json"#, "run spec"),
        ];
        for (json, want) in cases {
            let err = RunSpec::from_json(json.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{json}: {err:?} does not mention {want:?}");
        }
    }

    #[test]
    fn rejects_oversized_input() {
        let big = vec![b' '; MAX_SPEC_BYTES + 1];
        assert!(RunSpec::from_json(&big).unwrap_err().contains("bytes"));
        let many = RunSpec { argv: vec!["x".into(); MAX_ARGS + 1], ..Default::default() };
        assert!(many.to_json().unwrap_err().contains("argv"));
    }

    #[test]
    fn cidr_and_mac_parsing() {
        assert_eq!(parse_cidr("fd00::5/64").unwrap(), ("fd00::5".parse().unwrap(), 64));
        assert!(parse_cidr("fd00::5/129").is_err());
        assert!(parse_cidr("10.0.0.1/+8").is_err());
        assert_eq!(parse_mac("ff:FF:00:01:02:03"), Some([0xff, 0xff, 0, 1, 2, 3]));
        assert_eq!(parse_mac("ff:ff:00:01:02:03:04"), None);
        assert_eq!(parse_mac("f:ff:00:01:02:033"), None);
        assert_eq!(parse_mac("+f:ff:00:01:02:03"), None);
    }
}
