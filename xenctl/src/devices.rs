//! Guest devices in a [`DomainSpec`](crate::DomainSpec): disks ([`DiskSpec`], typed or parsed
//! from an xl disk-spec string by libxlutil), network interfaces ([`VifSpec`], [`Mac`]) and the
//! VNC console ([`VncSpec`]), and how each fills its libxl struct.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::raw::{self, Owned};
use crate::xlu::XluConfig;

/// The image format of a disk's backing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    /// A raw image or block device.
    Raw,
    /// QEMU copy-on-write v1.
    Qcow,
    /// QEMU copy-on-write v2.
    Qcow2,
    /// Virtual Hard Disk.
    Vhd,
    /// QEMU enhanced disk.
    Qed,
    /// No medium (an empty CD-ROM drive).
    Empty,
}

impl DiskFormat {
    fn to_libxl(self) -> xen_sys::libxl_disk_format {
        match self {
            DiskFormat::Raw => xen_sys::LIBXL_DISK_FORMAT_RAW,
            DiskFormat::Qcow => xen_sys::LIBXL_DISK_FORMAT_QCOW,
            DiskFormat::Qcow2 => xen_sys::LIBXL_DISK_FORMAT_QCOW2,
            DiskFormat::Vhd => xen_sys::LIBXL_DISK_FORMAT_VHD,
            DiskFormat::Qed => xen_sys::LIBXL_DISK_FORMAT_QED,
            DiskFormat::Empty => xen_sys::LIBXL_DISK_FORMAT_EMPTY,
        }
    }

    fn from_libxl(f: xen_sys::libxl_disk_format) -> Option<DiskFormat> {
        Some(match f {
            xen_sys::LIBXL_DISK_FORMAT_RAW | xen_sys::LIBXL_DISK_FORMAT_UNKNOWN => DiskFormat::Raw,
            xen_sys::LIBXL_DISK_FORMAT_QCOW => DiskFormat::Qcow,
            xen_sys::LIBXL_DISK_FORMAT_QCOW2 => DiskFormat::Qcow2,
            xen_sys::LIBXL_DISK_FORMAT_VHD => DiskFormat::Vhd,
            xen_sys::LIBXL_DISK_FORMAT_QED => DiskFormat::Qed,
            xen_sys::LIBXL_DISK_FORMAT_EMPTY => DiskFormat::Empty,
            _ => return None,
        })
    }

    /// The xl disk-spec word (`format=`).
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow => "qcow",
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vhd => "vhd",
            DiskFormat::Qed => "qed",
            DiskFormat::Empty => "empty",
        }
    }
}

/// Which dom0 backend serves a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskBackend {
    /// Let libxl choose (blkback for raw files and devices, qdisk for the rest).
    Auto,
    /// Kernel blkback on a block device (files go through a loop device).
    Phy,
    /// blktap.
    Tap,
    /// QEMU's qdisk.
    Qdisk,
    /// A standalone backend (e.g. virtio).
    Standalone,
}

impl DiskBackend {
    fn to_libxl(self) -> xen_sys::libxl_disk_backend {
        match self {
            DiskBackend::Auto => xen_sys::LIBXL_DISK_BACKEND_UNKNOWN,
            DiskBackend::Phy => xen_sys::LIBXL_DISK_BACKEND_PHY,
            DiskBackend::Tap => xen_sys::LIBXL_DISK_BACKEND_TAP,
            DiskBackend::Qdisk => xen_sys::LIBXL_DISK_BACKEND_QDISK,
            DiskBackend::Standalone => xen_sys::LIBXL_DISK_BACKEND_STANDALONE,
        }
    }

    fn from_libxl(b: xen_sys::libxl_disk_backend) -> Option<DiskBackend> {
        Some(match b {
            xen_sys::LIBXL_DISK_BACKEND_UNKNOWN => DiskBackend::Auto,
            xen_sys::LIBXL_DISK_BACKEND_PHY => DiskBackend::Phy,
            xen_sys::LIBXL_DISK_BACKEND_TAP => DiskBackend::Tap,
            xen_sys::LIBXL_DISK_BACKEND_QDISK => DiskBackend::Qdisk,
            xen_sys::LIBXL_DISK_BACKEND_STANDALONE => DiskBackend::Standalone,
            _ => return None,
        })
    }
}

/// A guest disk.
///
/// Build one field by field ([`DiskSpec::new`]) or from an xl disk-spec string
/// ([`DiskSpec::from_xl`], e.g. `"format=raw,vdev=xvda,access=rw,target=/srv/guest.img"`),
/// which libxlutil parses exactly as `xl` would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    /// The backing file or device in dom0; `None` only for an empty CD-ROM drive.
    pub target: Option<String>,
    /// The device name the guest sees, e.g. `xvda`, `hda`, `sdb`.
    pub vdev: String,
    /// The image format.
    pub format: DiskFormat,
    /// The dom0 backend.
    pub backend: DiskBackend,
    /// Read-only (`access=ro`).
    pub readonly: bool,
    /// A CD-ROM drive (`devtype=cdrom`): removable and read-only.
    pub cdrom: bool,
    /// A block hotplug script to use instead of the default.
    pub script: Option<String>,
    /// The backend domain's name, when not dom0 (`backend=`).
    pub backend_domain: Option<String>,
    /// The backing storage is safe for O_DIRECT (`direct-io-safe`).
    pub direct_io_safe: bool,
    /// Pass discard requests through (`discard` / `no-discard`); `None` leaves libxl's default.
    pub discard: Option<bool>,
    /// Whether the backend may trust the guest; `None` is the default. (Debian's libxlutil
    /// 4.17 does not parse the `trusted`/`untrusted` keywords, so only the typed path sets it.)
    pub trusted: Option<bool>,
}

impl DiskSpec {
    /// A read-write raw disk on `target`, seen by the guest as `vdev`.
    pub fn new(target: impl Into<String>, vdev: impl Into<String>) -> DiskSpec {
        DiskSpec {
            target: Some(target.into()),
            vdev: vdev.into(),
            format: DiskFormat::Raw,
            backend: DiskBackend::Auto,
            readonly: false,
            cdrom: false,
            script: None,
            backend_domain: None,
            direct_io_safe: false,
            discard: None,
            trusted: None,
        }
    }

    /// Sets the format.
    pub fn format(mut self, format: DiskFormat) -> DiskSpec {
        self.format = format;
        self
    }

    /// Makes the disk read-only.
    pub fn readonly(mut self) -> DiskSpec {
        self.readonly = true;
        self
    }

    /// Parses an xl disk-spec string (xl-disk-configuration(5)) with libxlutil's own parser.
    ///
    /// Errors carry libxlutil's message, e.g. `unknown value for access: near 'rx'`. COLO
    /// replication and virtio disks parse in xl but are not supported here and are refused.
    pub fn from_xl(spec: &str) -> Result<DiskSpec> {
        let field = "disk";
        let spec_c = raw::c_string(field, spec)?;
        let mut xlu = XluConfig::new("disk spec")?;
        let mut disk = Owned::<xen_sys::libxl_device_disk>::new();
        let specs = [spec_c.as_ptr()];
        // SAFETY: xlu and disk are live and initialised; specs holds one valid C string that
        // outlives the call. xlu_disk_parse stores malloc'd strings into disk, which disposes them.
        let rc = unsafe { xen_sys::xlu_disk_parse(xlu.as_ptr(), 1, specs.as_ptr(), disk.as_mut_ptr()) };
        let report = xlu.report_text();
        if rc != 0 {
            let reason =
                strip_report_prefix(&report).unwrap_or_else(|| std::io::Error::from_raw_os_error(rc).to_string());
            return Err(Error::invalid(field, spec, reason));
        }
        if !report.is_empty() {
            log::warn!("disk spec {spec:?}: {report}");
        }
        DiskSpec::from_libxl(&disk).map_err(|reason| Error::invalid(field, spec, reason))
    }

    /// Reads back a disk libxlutil filled, refusing what this type cannot represent.
    fn from_libxl(d: &xen_sys::libxl_device_disk) -> std::result::Result<DiskSpec, String> {
        // The struct is initialised, so each string member is null or a NUL-terminated
        // malloc'd string it owns.
        let string = |p| {
            // SAFETY: see above; p is one of d's string members, alive while d is.
            unsafe { raw::string_from_c(p) }
        };
        let target = string(d.pdev_path).filter(|t| !t.is_empty());
        let vdev = string(d.vdev).ok_or("no vdev")?;
        let script = string(d.script);
        let backend_domain = string(d.backend_domname);
        if defbool(d.colo_enable) == Some(true) || !d.colo_host.is_null() || !d.colo_export.is_null() {
            return Err("COLO disk replication is not supported".into());
        }
        if d.specification == xen_sys::LIBXL_DISK_SPECIFICATION_VIRTIO {
            return Err("virtio disks are not supported (Xen 4.17 has no virtio backend for x86)".into());
        }
        Ok(DiskSpec {
            target,
            vdev,
            format: DiskFormat::from_libxl(d.format).ok_or_else(|| format!("unknown disk format {}", d.format))?,
            backend: DiskBackend::from_libxl(d.backend).ok_or_else(|| format!("unknown backend {}", d.backend))?,
            readonly: d.readwrite == 0,
            cdrom: d.is_cdrom != 0,
            script,
            backend_domain,
            direct_io_safe: d.direct_io_safe,
            discard: defbool(d.discard_enable),
            trusted: defbool(d.trusted),
        })
    }

    /// Checks what libxl would otherwise reject late or misread.
    pub(crate) fn validate(&self, field: &str) -> Result<()> {
        if self.vdev.is_empty() {
            return Err(Error::invalid(format!("{field}.vdev"), "", "a disk needs a guest device name"));
        }
        if self.target.is_none() && !self.cdrom {
            return Err(Error::invalid(format!("{field}.target"), "", "only a CD-ROM drive may have no target"));
        }
        if let Some(t) = self.target.as_deref().filter(|t| t.chars().any(char::is_control)) {
            return Err(Error::invalid(
                format!("{field}.target"),
                t.escape_debug().to_string(),
                "a control character in a disk's path (a line break...) is not a path xl's disk parser reads",
            ));
        }
        Ok(())
    }

    /// Fills an initialised `libxl_device_disk` the way `xlu_disk_parse` would.
    pub(crate) fn fill_libxl(&self, field: &str, d: &mut xen_sys::libxl_device_disk) -> Result<()> {
        self.validate(field)?;
        // An empty CD-ROM drive has target "" in xl's output, not NULL; match it exactly.
        let target = self.target.as_deref().or(if self.cdrom { Some("") } else { None });
        d.pdev_path = raw::strdup_opt(&format!("{field}.target"), target)?;
        d.vdev = raw::strdup(&format!("{field}.vdev"), &self.vdev)?;
        d.script = raw::strdup_opt(&format!("{field}.script"), self.script.as_deref())?;
        d.backend_domname = raw::strdup_opt(&format!("{field}.backend"), self.backend_domain.as_deref())?;
        d.backend = self.backend.to_libxl();
        d.format = self.format.to_libxl();
        d.readwrite = i32::from(!self.readonly);
        d.direct_io_safe = self.direct_io_safe;
        set_defbool(&mut d.discard_enable, self.discard);
        set_defbool(&mut d.trusted, self.trusted);
        if self.cdrom {
            d.is_cdrom = 1;
            d.removable = 1;
            d.readwrite = 0;
            if self.target.as_deref().is_none_or(str::is_empty) {
                d.format = xen_sys::LIBXL_DISK_FORMAT_EMPTY;
            }
        }
        Ok(())
    }
}

/// libxlutil's report lines start with "<source>: config parsing error in disk specification: ".
fn strip_report_prefix(report: &str) -> Option<String> {
    let line = report.lines().rev().find(|l| !l.trim().is_empty())?;
    let msg = line.split_once("disk specification: ").map_or(line, |(_, rest)| rest);
    Some(msg.trim().to_string())
}

/// A MAC address, written `00:16:3e:12:34:56`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl FromStr for Mac {
    type Err = Error;
    fn from_str(s: &str) -> Result<Mac> {
        let bad = || Error::invalid("mac", s, "expected six hex pairs like 00:16:3e:12:34:56");
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        if out[0] & 1 == 1 {
            return Err(Error::invalid("mac", s, "a multicast address cannot name an interface"));
        }
        Ok(Mac(out))
    }
}

/// As its text, `00:16:3e:12:34:56`, checked as [`Mac::from_str`] checks it.
impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Mac, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A guest network interface.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VifSpec {
    /// The dom0 bridge to plug the backend interface into.
    pub bridge: Option<String>,
    /// The guest's MAC; libxl picks a random 00:16:3e:xx:xx:xx when `None`.
    pub mac: Option<Mac>,
    /// The backend interface's name in dom0 (`vifname=`); libxl uses `vif<domid>.<n>` otherwise.
    pub vifname: Option<String>,
    /// The hotplug script (`script=`), e.g. `vif-bridge`.
    pub script: Option<String>,
    /// Bandwidth limit in xl syntax (`rate=`), e.g. `10Mb/s` or `1MB/s@20ms`.
    pub rate: Option<String>,
    /// The emulated NIC model for HVM guests (`model=`), e.g. `e1000`.
    pub model: Option<String>,
    /// IP address(es) for the hotplug script (`ip=`).
    pub ip: Option<String>,
    /// MTU of the backend interface; libxl's default (1500) when `None`.
    pub mtu: Option<u32>,
    /// The backend domain's name, when not dom0 (`backend=`).
    pub backend_domain: Option<String>,
    /// PV only or also emulated for HVM guests (`type=`); libxl's default when `None`.
    pub nic_type: Option<NicType>,
    /// The dom0 device for routed setups' hotplug script (`gatewaydev=`).
    pub gatewaydev: Option<String>,
    /// The device id (`devid=`); libxl gives the next free id when `None`.
    pub devid: Option<u32>,
    /// Whether the backend may trust the guest (`trusted` / `untrusted`); default when `None`.
    pub trusted: Option<bool>,
}

/// What kind of interface a vif is (xl's vif `type=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NicType {
    /// A PV interface only (`type=vif`).
    Vif,
    /// A PV interface plus an emulated NIC for HVM guests (`type=ioemu`).
    Ioemu,
}

impl NicType {
    /// The xl vif-spec word.
    pub fn as_str(self) -> &'static str {
        match self {
            NicType::Vif => "vif",
            NicType::Ioemu => "ioemu",
        }
    }

    fn to_libxl(self) -> xen_sys::libxl_nic_type {
        match self {
            NicType::Vif => xen_sys::LIBXL_NIC_TYPE_VIF,
            NicType::Ioemu => xen_sys::LIBXL_NIC_TYPE_VIF_IOEMU,
        }
    }
}

impl VifSpec {
    /// A vif on `bridge` with everything else defaulted.
    pub fn bridged(bridge: impl Into<String>) -> VifSpec {
        VifSpec { bridge: Some(bridge.into()), ..VifSpec::default() }
    }

    /// Fills an initialised `libxl_device_nic`. `xlu` parses the rate with xl's own code.
    pub(crate) fn fill_libxl(&self, field: &str, xlu: &mut XluConfig, n: &mut xen_sys::libxl_device_nic) -> Result<()> {
        n.bridge = raw::strdup_opt(&format!("{field}.bridge"), self.bridge.as_deref())?;
        n.ifname = raw::strdup_opt(&format!("{field}.vifname"), self.vifname.as_deref())?;
        n.script = raw::strdup_opt(&format!("{field}.script"), self.script.as_deref())?;
        n.model = raw::strdup_opt(&format!("{field}.model"), self.model.as_deref())?;
        n.ip = raw::strdup_opt(&format!("{field}.ip"), self.ip.as_deref())?;
        n.backend_domname = raw::strdup_opt(&format!("{field}.backend"), self.backend_domain.as_deref())?;
        n.gatewaydev = raw::strdup_opt(&format!("{field}.gatewaydev"), self.gatewaydev.as_deref())?;
        if let Some(mac) = self.mac {
            n.mac = mac.0;
        }
        if let Some(t) = self.nic_type {
            n.nictype = t.to_libxl();
        }
        if let Some(devid) = self.devid {
            n.devid = i32::try_from(devid)
                .map_err(|_| Error::invalid(format!("{field}.devid"), devid.to_string(), "too large"))?;
        }
        set_defbool(&mut n.trusted, self.trusted);
        if let Some(mtu) = self.mtu {
            n.mtu = i32::try_from(mtu)
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| Error::invalid(format!("{field}.mtu"), mtu.to_string(), "must be 68 to 65535"))?;
        }
        if let Some(rate) = &self.rate {
            let rate_c = raw::c_string(&format!("{field}.rate"), rate)?;
            // SAFETY: xlu and n are live; rate_c is a valid C string for the call.
            let rc = unsafe { xen_sys::xlu_vif_parse_rate(xlu.as_ptr(), rate_c.as_ptr(), n) };
            if rc != 0 {
                let report = xlu.report_text();
                let reason =
                    report.lines().last().map_or("not an xl rate such as 10Mb/s".into(), |l| l.trim().to_string());
                return Err(Error::invalid(format!("{field}.rate"), rate, reason));
            }
        }
        Ok(())
    }
}

/// A VNC console: for HVM guests the device model's display, for PV/PVH guests a virtual
/// framebuffer (vfb) with a keyboard.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VncSpec {
    /// Address to listen on (`vnclisten=`); libxl's default is 127.0.0.1.
    pub listen: Option<String>,
    /// VNC display number (`vncdisplay=`); port 5900 + display.
    pub display: Option<u32>,
    /// Password (`vncpasswd=`).
    pub password: Option<String>,
    /// Use the first free display from `display` on (`vncunused=1`); `None` leaves it to
    /// libxl, which looks for a free display (xl sets it only when the config says).
    pub find_unused: Option<bool>,
    /// VNC is on only by libxl's default: the config gave VNC settings (HVM `vnclisten`, ...
    /// without `vnc = 1`; a vfb item without `vnc=`) and, like xl's, leaves `enable` unstated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_by_default: bool,
}

impl VncSpec {
    /// Whether it sets none of the server's settings.
    pub(crate) fn sets_nothing(&self) -> bool {
        self.listen.is_none() && self.display.is_none() && self.password.is_none() && self.find_unused.is_none()
    }

    pub(crate) fn fill_libxl(&self, field: &str, v: &mut xen_sys::libxl_vnc_info) -> Result<()> {
        if !self.enable_by_default {
            set_defbool(&mut v.enable, Some(true));
        }
        v.listen = raw::strdup_opt(&format!("{field}.listen"), self.listen.as_deref())?;
        v.passwd = raw::strdup_opt(&format!("{field}.password"), self.password.as_deref())?;
        if let Some(display) = self.display {
            v.display = i32::try_from(display)
                .map_err(|_| Error::invalid(format!("{field}.display"), display.to_string(), "too large"))?;
        }
        set_defbool(&mut v.findunused, self.find_unused);
        Ok(())
    }
}

/// Reads a libxl_defbool: `None` when left at its default.
pub(crate) fn defbool(b: xen_sys::libxl_defbool) -> Option<bool> {
    match b.val {
        0 => None,
        v => Some(v > 0),
    }
}

/// Sets a libxl_defbool, or leaves it at its default for `None`.
pub(crate) fn set_defbool(b: &mut xen_sys::libxl_defbool, value: Option<bool>) {
    if let Some(v) = value {
        // SAFETY: b is a valid, exclusive reference; libxl_defbool_set only writes b.val.
        unsafe { xen_sys::libxl_defbool_set(b, v) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `spec` with libxlutil into a raw struct (the reference), and again through
    /// DiskSpec, and checks the typed path fills libxl identically.
    fn assert_round_trip(spec: &str) -> DiskSpec {
        let typed = DiskSpec::from_xl(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));

        let mut reference = Owned::<xen_sys::libxl_device_disk>::new();
        let xlu = XluConfig::new("test").unwrap();
        let spec_c = std::ffi::CString::new(spec).unwrap();
        let specs = [spec_c.as_ptr()];
        // SAFETY: live xlu and initialised disk; one valid C string.
        let rc = unsafe { xen_sys::xlu_disk_parse(xlu.as_ptr(), 1, specs.as_ptr(), reference.as_mut_ptr()) };
        assert_eq!(rc, 0);

        let mut ours = Owned::<xen_sys::libxl_device_disk>::new();
        typed.fill_libxl("disk", &mut ours).unwrap();
        // SAFETY: p is a string member of a live, initialised disk.
        let s = |p| unsafe { raw::string_from_c(p) };
        assert_eq!(s(ours.pdev_path), s(reference.pdev_path), "{spec}: target");
        assert_eq!(s(ours.vdev), s(reference.vdev), "{spec}: vdev");
        assert_eq!(s(ours.script), s(reference.script), "{spec}: script");
        assert_eq!(s(ours.backend_domname), s(reference.backend_domname), "{spec}: backend");
        assert_eq!(ours.backend, reference.backend, "{spec}: backendtype");
        assert_eq!(ours.format, reference.format, "{spec}: format");
        assert_eq!(ours.readwrite, reference.readwrite, "{spec}: access");
        assert_eq!(ours.is_cdrom, reference.is_cdrom, "{spec}: devtype");
        assert_eq!(ours.removable, reference.removable, "{spec}: removable");
        assert_eq!(ours.direct_io_safe, reference.direct_io_safe, "{spec}: direct-io-safe");
        assert_eq!(ours.discard_enable.val, reference.discard_enable.val, "{spec}: discard");
        assert_eq!(ours.trusted.val, reference.trusted.val, "{spec}: trusted");
        typed
    }

    #[test]
    fn good_disk_specs_parse_like_xl() {
        let d = assert_round_trip("format=raw,vdev=xvda,access=rw,target=/srv/guest.img");
        assert_eq!(d, DiskSpec::new("/srv/guest.img", "xvda"));

        let d = assert_round_trip("vdev=xvdb,access=ro,format=qcow2,target=/srv/base.qcow2");
        assert_eq!((d.format, d.readonly), (DiskFormat::Qcow2, true));

        let d = assert_round_trip("/dev/vg/guest,raw,xvdc,rw");
        assert_eq!((d.target.as_deref(), d.vdev.as_str()), (Some("/dev/vg/guest"), "xvdc"));

        let d = assert_round_trip("phy:/dev/sdb,xvdd,w");
        assert_eq!(d.target.as_deref(), Some("/dev/sdb"));

        let d = assert_round_trip("vdev=hdc,devtype=cdrom,target=/srv/install.iso");
        assert!(d.cdrom && d.readonly);

        let d = assert_round_trip("vdev=hdd,devtype=cdrom,target=");
        assert_eq!((d.target, d.format), (None, DiskFormat::Empty));

        let d =
            assert_round_trip("vdev=xvde,backendtype=qdisk,no-discard,direct-io-safe,script=block-iscsi,target=iqn.x");
        assert_eq!(d.backend, DiskBackend::Qdisk);
        assert_eq!((d.discard, d.trusted, d.direct_io_safe), (Some(false), None, true));
        assert_eq!(d.script.as_deref(), Some("block-iscsi"));
    }

    #[test]
    fn bad_disk_specs_are_errors_with_libxlutils_reason() {
        let cases = [
            ("vdev=xvda,access=rx,target=/x", "unknown value for access"),
            ("vdev=xvda,format=vmdk,target=/x", "unknown value for format"),
            ("access=rw,target=/x", "no vdev specified"),
            ("vdev=xvda", "no target specified"),
            ("vdev=xvda,devtype=floppy,target=/x", "unknown value for type"),
            ("vdev=xvda,colo,colo-host=h,colo-port=1,colo-export=e,active-disk=a,hidden-disk=h,target=/x", "COLO"),
        ];
        for (spec, want) in cases {
            let err = DiskSpec::from_xl(spec).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with(&format!("invalid disk {spec:?}: ")), "{text}");
            assert!(text.contains(want), "{spec}: {text}");
        }
        assert!(matches!(DiskSpec::from_xl("vdev=xvda\0,target=/x"), Err(Error::InvalidSpec { .. })));
    }

    #[test]
    fn typed_disk_validation() {
        let mut d = DiskSpec::new("/x", "");
        assert!(d.validate("disks[0]").unwrap_err().to_string().starts_with("invalid disks[0].vdev"));
        d.vdev = "xvda".into();
        d.target = None;
        assert!(d.validate("disks[0]").is_err());
        d.cdrom = true;
        assert!(d.validate("disks[0]").is_ok());
        // Found by fuzzing an EVE DomainConfig: a FileLocation with a line break was written
        // into the xl config, which xl's disk parser then refused.
        let d = DiskSpec::new("/persist/v\nx.img", "xvda");
        let e = d.validate("disks[0]").unwrap_err().to_string();
        assert!(e.starts_with("invalid disks[0].target \"/persist/v\\\\nx.img\": a control character"), "{e}");
    }

    #[test]
    fn macs_parse_and_print() {
        let mac: Mac = "00:16:3E:0a:0b:0c".parse().unwrap();
        assert_eq!(mac.to_string(), "00:16:3e:0a:0b:0c");
        for bad in
            ["00:16:3e:0a:0b", "00:16:3e:0a:0b:0c:0d", "0:16:3e:0a:0b:0c", "zz:16:3e:0a:0b:0c", "01:00:5e:00:00:01"]
        {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn vif_rate_is_parsed_by_libxlutil() {
        let mut xlu = XluConfig::new("test").unwrap();
        let mut nic = Owned::<xen_sys::libxl_device_nic>::new();
        let vif = VifSpec { rate: Some("10Mb/s".into()), mtu: Some(9000), ..VifSpec::bridged("xenbr0") };
        vif.fill_libxl("vifs[0]", &mut xlu, &mut nic).unwrap();
        // 10 Mbit/s with xl's default 50 ms interval = 62500 bytes per interval.
        assert_eq!((nic.rate_bytes_per_interval, nic.rate_interval_usecs), (62500, 50000));
        assert_eq!(nic.mtu, 9000);
        // SAFETY: bridge is a string owned by nic.
        assert_eq!(unsafe { raw::string_from_c(nic.bridge) }.as_deref(), Some("xenbr0"));

        let mut nic = Owned::<xen_sys::libxl_device_nic>::new();
        let vif = VifSpec { rate: Some("fast".into()), ..VifSpec::default() };
        let err = vif.fill_libxl("vifs[1]", &mut xlu, &mut nic).unwrap_err();
        assert!(err.to_string().starts_with("invalid vifs[1].rate \"fast\""), "{err}");
    }
}
