//! [`XlConf`]: xl's global settings, /etc/xen/xl.conf (xl.conf(5), Xen 4.17), read as xl's
//! `parse_global_config` (tools/xl/xl.c) reads them, and [`DomainSpec::apply_xl_conf`], which
//! puts into a spec what xl puts into every domain config it builds from them.
//!
//! The text is parsed here, in Rust, with the lexer of libxlutil's grammar (`xllex.rs`), not by
//! libxlutil: a daemon reads this file in its own process, where libxlutil's abort on a NUL
//! byte and its quadratic `+=` would take the daemon down. Nothing here recurses, copies a value
//! per line or reads past [`MAX_XL_CONF_BYTES`], so a hostile file costs linear time. What xl
//! refuses (a syntax error, a bad grant limit) is an [`Error::XlConfig`] naming file, line, key
//! and value; what xl only warns about (an unknown key, a value it ignores) is a warning kept in
//! [`XlConf::warnings`], and xl's default stays.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::DomainSpec;
use crate::xlconf_parse::Settings;

/// The file xl reads (XL_GLOBAL_CONFIG).
pub const XL_CONF_PATH: &str = "/etc/xen/xl.conf";
/// Larger files are refused unread (xl.conf is a few KiB).
pub const MAX_XL_CONF_BYTES: u64 = 1 << 20;
/// xl's lock file when xl.conf names none (XL_LOCK_FILE on Debian and upstream).
const DEFAULT_LOCKFILE: &str = "/var/lock/xl";

/// xl.conf's `autoballoon`: whether xl shrinks dom0 to make room for a new domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoBalloon {
    /// Balloon dom0 down when Xen lacks free memory.
    On,
    /// Never.
    Off,
    /// xl's default: on unless Xen's command line sets `dom0_mem`.
    #[default]
    Auto,
}

/// xl.conf's `output_format` (of `xl list -l` and `xl -N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// libxl's JSON (the default).
    #[default]
    Json,
    /// The old S-expressions.
    Sxp,
}

/// xl.conf's `domid_policy`: who picks a new domain's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomidPolicy {
    /// Xen (the default).
    #[default]
    Xen,
    /// A random id.
    Random,
}

/// Every key of xl.conf(5) in Xen 4.17, with xl's default where the file or the key is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XlConf {
    /// `autoballoon`.
    pub autoballoon: AutoBalloon,
    /// `run_hotplug_scripts` (default true): libxl runs the hotplug scripts, not udev.
    pub run_hotplug_scripts: bool,
    /// `lockfile` (default `/var/lock/xl`): xl holds it around a create that may balloon.
    pub lockfile: String,
    /// `vif.default.script` (or the deprecated `vifscript`).
    pub vif_script: Option<String>,
    /// `vif.default.bridge` (or the deprecated `defaultbridge`).
    pub vif_bridge: Option<String>,
    /// `vif.default.backend`.
    pub vif_backend: Option<String>,
    /// `vif.default.gatewaydev`.
    pub vif_gatewaydev: Option<String>,
    /// `remus.default.netbufscript` (Remus replication only).
    pub remus_netbufscript: Option<String>,
    /// `colo.default.proxyscript` (COLO replication only).
    pub colo_proxyscript: Option<String>,
    /// `output_format`.
    pub output_format: OutputFormat,
    /// `blkdev_start`: the first dom0 block device libxl may use to attach a guest disk
    /// locally (for a bootloader).
    pub blkdev_start: Option<String>,
    /// `claim_mode` (default true): claim the domain's memory from Xen before building it.
    pub claim_mode: bool,
    /// `max_grant_frames`; `None` for libxl's default.
    pub max_grant_frames: Option<u32>,
    /// `max_maptrack_frames`; `None` for libxl's default.
    pub max_maptrack_frames: Option<u32>,
    /// `max_grant_version`; `None` for libxl's default.
    pub max_grant_version: Option<u32>,
    /// `vm.cpumask`, as written.
    pub vm_cpumask: Option<String>,
    /// `vm.hvm.cpumask`, as written.
    pub vm_hvm_cpumask: Option<String>,
    /// `vm.pv.cpumask`, as written.
    pub vm_pv_cpumask: Option<String>,
    /// `domid_policy`.
    pub domid_policy: DomidPolicy,
    /// What xl would only warn about, each as `FILE:LINE: KEY: reason`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Default for XlConf {
    fn default() -> Self {
        XlConf {
            autoballoon: AutoBalloon::Auto,
            run_hotplug_scripts: true,
            lockfile: DEFAULT_LOCKFILE.into(),
            vif_script: None,
            vif_bridge: None,
            vif_backend: None,
            vif_gatewaydev: None,
            remus_netbufscript: None,
            colo_proxyscript: None,
            output_format: OutputFormat::Json,
            blkdev_start: None,
            claim_mode: true,
            max_grant_frames: None,
            max_maptrack_frames: None,
            max_grant_version: None,
            vm_cpumask: None,
            vm_hvm_cpumask: None,
            vm_pv_cpumask: None,
            domid_policy: DomidPolicy::Xen,
            warnings: Vec::new(),
        }
    }
}

/// The keys xl.conf documents; any other is ignored by xl, and warned about here.
const KNOWN_KEYS: &[&str] = &[
    "autoballoon",
    "run_hotplug_scripts",
    "lockfile",
    "vifscript",
    "vif.default.script",
    "defaultbridge",
    "vif.default.bridge",
    "vif.default.gatewaydev",
    "vif.default.backend",
    "output_format",
    "blkdev_start",
    "claim_mode",
    "remus.default.netbufscript",
    "colo.default.proxyscript",
    "max_grant_frames",
    "max_maptrack_frames",
    "max_grant_version",
    "vm.cpumask",
    "vm.hvm.cpumask",
    "vm.pv.cpumask",
    "domid_policy",
];

impl XlConf {
    /// Reads `path` as xl does at every command: a missing file means xl's defaults. The file
    /// is opened without blocking (a FIFO there cannot hang the caller) and must be a regular
    /// file of at most [`MAX_XL_CONF_BYTES`].
    pub fn read(path: &Path) -> Result<XlConf> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| Error::Io { op: "read xl.conf", path: path.into(), source };
        let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(XlConf::default()),
            Err(e) => return Err(io(e)),
        };
        let source = path.display().to_string();
        let whole =
            |reason: &str| Error::XlConfig { file: source.clone(), line: None, key: None, reason: reason.into() };
        if !file.metadata().map_err(io)?.is_file() {
            return Err(whole("not a regular file"));
        }
        let mut data = Vec::new();
        file.take(MAX_XL_CONF_BYTES + 1).read_to_end(&mut data).map_err(io)?;
        if data.len() as u64 > MAX_XL_CONF_BYTES {
            return Err(whole("larger than 1 MiB"));
        }
        XlConf::parse(&source, &data)
    }

    /// Parses xl.conf text; `source` names it in errors and warnings.
    pub fn parse(source: &str, data: &[u8]) -> Result<XlConf> {
        let settings = Settings::parse(source, data)?;
        let mut conf = XlConf::default();
        let mut w = Vec::new();
        for (key, s) in &settings.map {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                w.push(format!("{source}:{}: {key}: unknown key, ignored (as xl does)", s.line));
            }
        }
        let st = &settings;
        if let Some((line, v)) = st.string("autoballoon", &mut w) {
            match v.as_str() {
                "on" | "1" => conf.autoballoon = AutoBalloon::On,
                "off" | "0" => conf.autoballoon = AutoBalloon::Off,
                "auto" => conf.autoballoon = AutoBalloon::Auto,
                _ => w.push(format!("{source}:{line}: autoballoon: {v:?} is not on, off or auto; auto is kept")),
            }
        }
        if let Some(l) = st.long("run_hotplug_scripts", &mut w) {
            // xl keeps it in an int and libxl's defbool takes any non-zero int as true.
            conf.run_hotplug_scripts = l as i32 != 0;
        }
        if let Some((_, v)) = st.string("lockfile", &mut w) {
            conf.lockfile = v;
        }
        for (old, new, field) in [
            ("vifscript", "vif.default.script", &mut conf.vif_script),
            ("defaultbridge", "vif.default.bridge", &mut conf.vif_bridge),
        ] {
            if let Some((line, v)) = st.string(old, &mut w) {
                w.push(format!("{source}:{line}: {old}: deprecated, use {new}"));
                *field = Some(v);
            }
            if let Some((_, v)) = st.string(new, &mut w) {
                *field = Some(v);
            }
        }
        for (key, field) in [
            ("vif.default.gatewaydev", &mut conf.vif_gatewaydev),
            ("vif.default.backend", &mut conf.vif_backend),
            ("blkdev_start", &mut conf.blkdev_start),
            ("remus.default.netbufscript", &mut conf.remus_netbufscript),
            ("colo.default.proxyscript", &mut conf.colo_proxyscript),
            ("vm.cpumask", &mut conf.vm_cpumask),
            ("vm.hvm.cpumask", &mut conf.vm_hvm_cpumask),
            ("vm.pv.cpumask", &mut conf.vm_pv_cpumask),
        ] {
            if let Some((_, v)) = st.string(key, &mut w) {
                *field = Some(v);
            }
        }
        if let Some((line, v)) = st.string("output_format", &mut w) {
            match v.as_str() {
                "json" => conf.output_format = OutputFormat::Json,
                "sxp" => conf.output_format = OutputFormat::Sxp,
                _ => w.push(format!("{source}:{line}: output_format: {v:?} is not json or sxp; json is kept")),
            }
        }
        if let Some(l) = st.long("claim_mode", &mut w) {
            conf.claim_mode = l as i32 != 0;
        }
        conf.max_grant_frames = st.grant_limit("max_grant_frames")?;
        conf.max_maptrack_frames = st.grant_limit("max_maptrack_frames")?;
        conf.max_grant_version = st.grant_limit("max_grant_version")?;
        if let Some((line, v)) = st.string("domid_policy", &mut w) {
            match v.as_str() {
                "xen" => conf.domid_policy = DomidPolicy::Xen,
                "random" => conf.domid_policy = DomidPolicy::Random,
                _ => w.push(format!("{source}:{line}: domid_policy: {v:?} is not xen or random; xen is kept")),
            }
        }
        w.sort();
        conf.warnings = w;
        Ok(conf)
    }

    /// What this daemon-side reader records but does not apply to domains, one line each, for
    /// a log at start: settings of xl's own command-line behaviour.
    pub fn not_applied(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.autoballoon != AutoBalloon::Off {
            out.push(format!(
                "autoballoon is {:?}: dom0 is never ballooned down to make room for a domain (a create fails when Xen lacks free memory)",
                self.autoballoon
            ));
        }
        for (key, mask) in [
            ("vm.cpumask", &self.vm_cpumask),
            ("vm.hvm.cpumask", &self.vm_hvm_cpumask),
            ("vm.pv.cpumask", &self.vm_pv_cpumask),
        ] {
            if let Some(mask) = mask {
                out.push(format!("{key} {mask:?} is not applied: give each domain its cpus"));
            }
        }
        if self.domid_policy == DomidPolicy::Random {
            out.push("domid_policy \"random\" is not applied: Xen picks domain ids".into());
        }
        out
    }
}

/// What xl takes from xl.conf for every domain rather than from the domain's own file, in a
/// [`DomainSpec`]; `None` leaves libxl's default. [`DomainSpec::apply_xl_conf`] fills it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostDefaults {
    /// `c_info.run_hotplug_scripts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_hotplug_scripts: Option<bool>,
    /// `b_info.claim_mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_mode: Option<bool>,
    /// `b_info.max_maptrack_frames`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_maptrack_frames: Option<u32>,
    /// `b_info.max_grant_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_grant_version: Option<u32>,
    /// `b_info.blkdev_start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkdev_start: Option<String>,
}

impl HostDefaults {
    /// Whether nothing is set (then a spec's JSON leaves it out).
    pub fn is_unset(&self) -> bool {
        *self == HostDefaults::default()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        for (field, n) in [
            ("host_defaults.max_maptrack_frames", self.max_maptrack_frames),
            ("host_defaults.max_grant_version", self.max_grant_version),
        ] {
            if let Some(n) = n.filter(|&n| i32::try_from(n).is_err()) {
                return Err(Error::invalid(field, n.to_string(), "more than 2147483647"));
            }
        }
        if let Some(b) = &self.blkdev_start
            && b.contains('\0')
        {
            return Err(Error::invalid("host_defaults.blkdev_start", b, "contains a NUL byte"));
        }
        Ok(())
    }

    /// Sets the libxl fields, as xl's parse_config_data does.
    pub(crate) fn fill_libxl(&self, d: &mut xen_sys::libxl_domain_config) -> Result<()> {
        crate::devices::set_defbool(&mut d.c_info.run_hotplug_scripts, self.run_hotplug_scripts);
        crate::devices::set_defbool(&mut d.b_info.claim_mode, self.claim_mode);
        if let Some(n) = self.max_maptrack_frames {
            d.b_info.max_maptrack_frames = n;
        }
        if let Some(n) = self.max_grant_version {
            // validate() bounds it to i32.
            d.b_info.max_grant_version = i32::try_from(n).unwrap_or(i32::MAX);
        }
        d.b_info.blkdev_start = crate::raw::strdup_opt("blkdev_start", self.blkdev_start.as_deref())?;
        Ok(())
    }
}

impl DomainSpec {
    /// Puts into this spec what xl puts into every domain it creates from xl.conf
    /// (xl_parse.c's parse_config_data and set_default_nic_values): `run_hotplug_scripts` and
    /// `claim_mode` always; `blkdev_start` when set; the grant limits and each vif's script,
    /// bridge, backend and gateway device where the domain's own config gives none.
    /// Applying it twice changes nothing.
    pub fn apply_xl_conf(&mut self, conf: &XlConf) {
        let h = &mut self.host_defaults;
        h.run_hotplug_scripts = Some(conf.run_hotplug_scripts);
        h.claim_mode = Some(conf.claim_mode);
        if conf.blkdev_start.is_some() {
            h.blkdev_start.clone_from(&conf.blkdev_start);
        }
        h.max_maptrack_frames = h.max_maptrack_frames.or(conf.max_maptrack_frames);
        h.max_grant_version = h.max_grant_version.or(conf.max_grant_version);
        self.platform.max_grant_frames = self.platform.max_grant_frames.or(conf.max_grant_frames);
        for vif in &mut self.vifs {
            for (field, default) in [
                (&mut vif.script, &conf.vif_script),
                (&mut vif.bridge, &conf.vif_bridge),
                (&mut vif.backend_domain, &conf.vif_backend),
                (&mut vif.gatewaydev, &conf.vif_gatewaydev),
            ] {
                if field.is_none() {
                    field.clone_from(default);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "xlconf_tests.rs"]
mod tests;
