//! [`DomainSpec::from_xl_config`]: an xl.cfg(5) file in, the same [`DomainSpec`] the rest of
//! the crate uses out, with xl's semantics (tools/xl/xl_parse.c) for every key it supports.
//!
//! libxlutil parses the file and reads every value (strings, numbers as `strtol` reads them,
//! lists, disk and PCI specs, vif rates), so the syntax and quoting are exactly xl's. Where xl
//! silently ignores a key (a typo, or a key meant for another guest type) this is stricter: an
//! unknown key, a key xl knows but this crate does not support, and a value that xl would
//! accept but we cannot represent are all errors naming the file, the line and the key. The
//! lines come from `xlscan.rs`, since libxlutil's API keeps none.

use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cpuset::HostCpus;
use crate::devices::{DiskSpec, VifSpec, VncSpec};
use crate::error::{Error, Result};
use crate::options::{BiosKind, DeviceModelVersion, TimerMode, VgaKind};
use crate::spec::{DomainSpec, TscMode};
use crate::types::{DomainKind, ShutdownAction};
use crate::vfb::{self, VfbItem};
use crate::xlkeys::{self, KeyClass};
use crate::xlread::{OneOrList, Reader};
use crate::xlspecs::{PciDefaults, pci_from_xl, reason_of};

/// An xl.cfg file as [`DomainSpec::read_xl_config_file`] reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XlConfigFile {
    /// What it configures.
    pub spec: DomainSpec,
    /// Whether the file sets `uuid`; if not, `spec.uuid` is a fresh random one, as xl gives.
    pub uuid_given: bool,
}

impl DomainSpec {
    /// Reads an xl.cfg(5) file as [`from_xl_config`](Self::from_xl_config) does, also telling
    /// whether the file gave the domain's UUID (as libxlutil reads it, wherever it is set).
    pub fn read_xl_config_file(path: &Path) -> Result<XlConfigFile> {
        let data =
            std::fs::read(path).map_err(|source| Error::Io { op: "read xl config", path: path.into(), source })?;
        parse_file(&path.display().to_string(), &data, None)
    }

    /// Reads an xl.cfg(5) file, as `xl create FILE` would, into a spec.
    ///
    /// Supported keys: see [`DomainSpec::from_xl_config_text`]. Errors name the file, the line
    /// and the key ([`Error::XlConfig`]); libxlutil's own syntax errors come through with its
    /// line and message.
    pub fn from_xl_config(path: &Path) -> Result<DomainSpec> {
        Self::read_xl_config_file(path).map(|f| f.spec)
    }

    /// Parses xl.cfg text as [`read_xl_config_file`](Self::read_xl_config_file) reads a file.
    pub fn read_xl_config_text(source: &str, text: &str) -> Result<XlConfigFile> {
        Self::read_xl_config_bytes(source, text.as_bytes())
    }

    /// Parses the bytes of an xl.cfg file as they are, as libxlutil reads them (a string in
    /// Latin-1 stays as written); `source` names it in errors.
    pub fn read_xl_config_bytes(source: &str, data: &[u8]) -> Result<XlConfigFile> {
        parse_file(source, data, None)
    }

    /// [`read_xl_config_bytes`](Self::read_xl_config_bytes) on a known host: CPU lists
    /// (`cpus`, `cpus_soft`) read as xl reads them there, `all` and `nodes:N` included (see
    /// [`HostCpus`] and [`Context::host_cpus`](crate::Context::host_cpus)). Without the host,
    /// `all` is no pinning and node lists are refused.
    pub fn read_xl_config_bytes_on(source: &str, data: &[u8], host: Option<&HostCpus>) -> Result<XlConfigFile> {
        parse_file(source, data, host.cloned())
    }

    /// Parses xl.cfg text; `source` names it in errors (a file name, or e.g. `"<stdin>"`).
    ///
    /// Supported keys, with xl's meaning: `name`, `uuid`, `type`, `builder` (legacy), `memory`,
    /// `maxmem`, `vcpus`, `maxvcpus`, `cpus` (one CPU list for all vCPUs, or one per vCPU),
    /// `cpu_weight`, `cap`,
    /// `kernel`, `ramdisk`, `cmdline`, `root`, `extra`, `bootloader`, `bootloader_args`, `disk`,
    /// `vif`, `pci` and `pci_permissive`/`pci_msitranslate`/`pci_seize`/`pci_power_mgmt`,
    /// the PV devices `channel`, `vtpm`, `p9`, `pvcalls`, `vkb`, `vdispl` and `vsnd`,
    /// `on_poweroff`, `on_reboot`, `on_crash`, `on_watchdog`, `on_soft_reset`, `tsc_mode`,
    /// `acpi`, `hap`, `nestedhvm`, `localtime`, `videoram`, `device_model_version`,
    /// `rtc_timeoffset`, `shadow_memory`, `nomigrate`, `max_grant_frames`, `timer_mode` (HVM
    /// and PVH); the display:
    /// `vfb` (any number of framebuffers, any type), and for HVM guests and PV guests without a
    /// `vfb` list `vnc`, `vnclisten`, `vncdisplay`, `vncpasswd`, `vncunused`, `sdl`, `opengl`,
    /// `keymap` (ignored with a warning in a PVH file, as xl has nowhere to put them); HVM
    /// only: `serial`, `boot`, `usb`, `usbversion`, `usbdevice`,
    /// `soundhw`, `apic`, `pae`, `viridian` (a boolean or a list), `hpet`, `xen_platform_pci`, `bios`,
    /// `vga`, `stdvga`, `nographic`, `acpi_s3`, `acpi_s4`; PV only: `e820_host`. Also `cpuid`
    /// (both forms), `altp2m`, `msr_relaxed`, `firmware`, the device model and stub domain
    /// keys (`device_model_override`, `device_model_user`, `device_model_args*`,
    /// `dm_restrict`, `device_model_stubdomain_*`, `stubdomain_*`), `display`, `xauthority`,
    /// and for HVM guests `hdtype`, `vendor_device`, `gfx_passthru`, `vkb_device`, the
    /// `spice*` keys, `firmware_override`, `bios_path_override`, `smbios_firmware`,
    /// `acpi_firmware`, `ms_vm_genid`, `acpi_laptop_slate`, `nx`, `vpt_align`, `mmio_hole`,
    /// `mca_caps`, `altp2mhvm` (see `extras.rs`) and `rdm_mem_boundary`; for every type `usbctrl`,
    /// `usbdev`, `ioports`, `irqs`, `iomem`, `rdm`, `dtdev` and `device_tree`. The tuning keys
    /// (see [`TuningSpec`](crate::TuningSpec)): `pool`, `seclabel`, `init_seclabel`, `period`,
    /// `slice`, `latency`, `extratime`, `cpus_soft`, `vnuma`, `max_event_channels`,
    /// `max_maptrack_frames`, `max_grant_version`, `vmtrace_buf_kb`, `oos`, `vpmu`,
    /// `driver_domain`, `xend_suspend_evtchn_compat`, `passthrough`, `gic_version`, `vuart`,
    /// `tee`; PVH only: `pvshim`, `pvshim_path`, `pvshim_cmdline`, `pvshim_extra`. `vif2` is
    /// ignored with a warning, as xl ignores it. `device_model` and `vncviewer`,
    /// which xl ignores with a warning, are ignored the same way; so are keys of xm (xl's
    /// predecessor) that xl never reads, such as `vncconsole` and `on_xend_start`.
    ///
    /// ```
    /// use xenctl::{DomainKind, DomainSpec};
    /// let text = "name = 'web'\nkernel = '/boot/vmlinuz'\nroot = '/dev/xvda1'\nmemory = 256\n\
    ///             disk = [ 'format=raw,vdev=xvda,target=/srv/web.img' ]\n";
    /// let spec = DomainSpec::from_xl_config_text("web.cfg", text)?;
    /// assert_eq!((spec.kind, spec.memory_mib), (DomainKind::Pv, 256));
    /// assert_eq!(spec.cmdline.as_deref(), Some("root=/dev/xvda1"));
    ///
    /// let err = DomainSpec::from_xl_config_text("web.cfg", "name = 'web'\nmemroy = 256\n").unwrap_err();
    /// assert_eq!(err.to_string(), "web.cfg:2: memroy: not an xl.cfg key");
    /// # Ok::<(), xenctl::Error>(())
    /// ```
    pub fn from_xl_config_text(source: &str, text: &str) -> Result<DomainSpec> {
        parse(source, text.as_bytes())
    }
}

fn parse(source: &str, data: &[u8]) -> Result<DomainSpec> {
    parse_file(source, data, None).map(|f| f.spec)
}

fn parse_file(source: &str, data: &[u8], host: Option<HostCpus>) -> Result<XlConfigFile> {
    let mut r = Reader::new(source, data, host)?;
    let kind = read_kind(&mut r)?;
    check_keys(&r, kind)?;
    let name = r.string("name")?.ok_or_else(|| r.err_missing("name", "xl needs a domain name"))?;
    let mut spec = DomainSpec::new(name, kind);
    let uuid = r.string("uuid")?;
    if let Some(text) = &uuid {
        // xl reads it with libuuid's uuid_parse, which takes only the 36-character hyphenated
        // form; the uuid crate would also take braces, a urn: prefix or bare hex.
        spec.uuid = Uuid::parse_str(text).ok().filter(|_| text.len() == 36).ok_or_else(|| {
            r.err(
                "uuid",
                format!("{text:?} is not a UUID (xl takes only the form 6ba7b810-9dad-11d1-80b4-00c04fd430c8)"),
            )
        })?;
    }
    read_sizes(&mut r, &mut spec)?;
    crate::xltuning::read_tuning(&mut r, &mut spec)?;
    read_boot(&mut r, &mut spec)?;
    read_actions(&mut r, &mut spec)?;
    read_platform(&mut r, &mut spec)?;
    crate::extras::read(&mut r, &mut spec)?;
    read_devices(&mut r, &mut spec)?;
    crate::pvdevices_xl::read_pv_devices(&mut r, &mut spec)?;
    read_display(&mut r, &mut spec)?;
    if kind == DomainKind::Hvm {
        read_hvm_devices(&mut r, &mut spec)?;
    }
    crate::usb::read_usb(&mut r, &mut spec)?;
    crate::resources::read_resources(&mut r, &mut spec)?;
    for key in ["device_model", "vncviewer"] {
        if r.has(key) {
            log::warn!("{}: {key}: ignored, as xl ignores it", r.at(key));
        }
    }
    spec.validate().map_err(|e| r.spec_error(e))?;
    Ok(XlConfigFile { spec, uuid_given: uuid.is_some() })
}

/// `type`, or the legacy `builder`; PV when neither is given (xl's default on x86).
fn read_kind(r: &mut Reader) -> Result<DomainKind> {
    let ty = match r.string("type")? {
        None => None,
        Some(t) => Some(match t.as_str() {
            "pv" => DomainKind::Pv,
            "pvh" => DomainKind::Pvh,
            "hvm" => DomainKind::Hvm,
            _ => return Err(r.err("type", format!("{t:?}: expected \"pv\", \"pvh\" or \"hvm\""))),
        }),
    };
    let builder = match r.string("builder")? {
        None => None,
        Some(b) => Some(match b.as_str() {
            "hvm" => DomainKind::Hvm,
            "generic" => DomainKind::Pv,
            _ => return Err(r.err("builder", format!("{b:?}: expected \"hvm\" or \"generic\" (or use type)"))),
        }),
    };
    match (ty, builder) {
        (Some(t), Some(b)) if t != b => Err(r.err("builder", format!("says {b} but type says {t}"))),
        (t, b) => Ok(t.or(b).unwrap_or(DomainKind::Pv)),
    }
}

/// Every key assigned in the file must be one we read, and meant for this kind of guest.
fn check_keys(r: &Reader, kind: DomainKind) -> Result<()> {
    for a in r.lines().assignments() {
        let problem = match xlkeys::classify(&a.key) {
            KeyClass::Supported(applies) if applies.contains(kind) => continue,
            KeyClass::Supported(applies) if xlkeys::xl_skips_elsewhere(&a.key) => {
                log::warn!(
                    "{}:{}: {}: xl reads it for {applies} guests only and skips it in a {kind} guest; ignored",
                    r.source(),
                    a.line,
                    a.key
                );
                continue;
            }
            KeyClass::Supported(applies) => format!("applies to {applies} guests only, and this is a {kind} guest"),
            KeyClass::XlOnly => "xl knows this key, but xenctl does not support it".to_string(),
            KeyClass::XmIgnored => {
                log::warn!("{}:{}: {}: an xm key that xl ignores; ignored", r.source(), a.line, a.key);
                continue;
            }
            KeyClass::Unknown => "not an xl.cfg key".to_string(),
        };
        return Err(Error::XlConfig {
            file: r.source().to_string(),
            line: Some(a.line),
            key: Some(a.key.clone()),
            reason: problem,
        });
    }
    Ok(())
}

fn read_sizes(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    let memory = r.number::<u64>("memory", 1)?;
    let maxmem = r.number::<u64>("maxmem", 1)?;
    // Without `memory` libxl starts the guest with its maximum: maxmem, or 32 MiB, and xl
    // states neither the start value nor, without maxmem, the maximum. With `memory`, a
    // maximum equal to the start value is the same as none (xl copies one to the other).
    spec.memory_unstated = memory.is_none();
    spec.memory_mib = memory.or(maxmem).unwrap_or(crate::spec::LIBXL_DEFAULT_MEMORY_MIB);
    spec.max_memory_mib = if memory.is_none() { maxmem } else { maxmem.filter(|&m| m != spec.memory_mib) };
    let vcpus = r.number::<u32>("vcpus", 1)?;
    // Without vcpus xl states no vCPU count at all (libxl's default is one); a maxvcpus it
    // states as given.
    spec.vcpus_unstated = vcpus.is_none();
    spec.vcpus = vcpus.unwrap_or(1);
    spec.max_vcpus = r.number::<u32>("maxvcpus", 1)?.filter(|&m| vcpus.is_none() || m != spec.vcpus);
    match r.string_or_list("cpus")? {
        None => {}
        // xl pins as many vCPUs as it states: none without vcpus and maxvcpus.
        Some(given) if spec.vcpus_unstated && spec.max_vcpus.is_none() => {
            // xl still parses the one-string form, and stops on a bad one.
            if let OneOrList::One(text) = &given {
                r.cpu_list("cpus", None, text)?;
            }
            log::warn!("{}: cpus: without vcpus or maxvcpus xl pins no vCPU; ignored", r.at("cpus"));
        }
        Some(OneOrList::One(text)) => spec.cpus = r.cpu_list("cpus", None, &text)?,
        // One CPU list per vCPU; xl ignores entries past the last vCPU (parse_vcpu_affinity).
        Some(OneOrList::List(items)) => {
            let max = spec.effective_max_vcpus() as usize;
            if items.len() > max {
                log::warn!(
                    "{}: cpus: {} entries for {max} vCPUs; the rest are ignored, as xl ignores them",
                    r.at("cpus"),
                    items.len()
                );
            }
            for (i, item) in items.iter().take(max).enumerate() {
                let set = r.cpu_list("cpus", Some(i), item)?;
                if set.is_empty() {
                    return Err(r.item_err("cpus", i, "`all' in a per-vCPU list needs the host's CPUs"));
                }
                spec.vcpu_cpus.push(set);
            }
        }
    }
    spec.cpu_weight = r.number::<u32>("cpu_weight", 1)?;
    spec.cpu_cap = r.number::<u32>("cap", 0)?;
    Ok(())
}

fn read_boot(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    spec.kernel = r.string("kernel")?;
    if spec.kind == DomainKind::Hvm
        && let Some(k) = &spec.kernel
        && Path::new(k).file_name().is_some_and(|n| n == "hvmloader")
    {
        // Old xm configs name the HVM firmware as the kernel; xl drops it, with a warning.
        log::warn!("{}: kernel: ignoring hvmloader as the kernel of an HVM guest, as xl does", r.at("kernel"));
        spec.kernel = None;
    }
    spec.ramdisk = r.string("ramdisk")?;
    let cmdline = r.string("cmdline")?;
    let root = r.string("root")?;
    let extra = r.string("extra")?;
    spec.cmdline = match (cmdline, root, extra) {
        (Some(c), root, extra) => {
            if root.is_some() || extra.is_some() {
                log::warn!("{}: cmdline: ignoring root and extra in favour of cmdline, as xl does", r.at("cmdline"));
            }
            Some(c)
        }
        (None, Some(root), Some(extra)) => Some(format!("root={root} {extra}")),
        (None, Some(root), None) => Some(format!("root={root}")),
        (None, None, extra) => extra,
    };
    spec.bootloader = r.string("bootloader")?;
    if spec.kind == DomainKind::Hvm && spec.bootloader.is_some() {
        // xl passes it to libxl, which runs no bootloader for an HVM guest.
        log::warn!("{}: bootloader: an HVM guest boots from its firmware; libxl ignores it", r.at("bootloader"));
    }
    match r.string_or_list("bootloader_args")? {
        None => {}
        Some(OneOrList::List(args)) => spec.bootloader_args = args,
        // The deprecated string form: xl splits it on blanks.
        Some(OneOrList::One(text)) => {
            spec.bootloader_args = text.split([' ', '\t', '\n']).filter(|a| !a.is_empty()).map(String::from).collect()
        }
    }
    if let Some(mode) = r.string_or_number("tsc_mode")? {
        spec.tsc_mode = match mode.as_str() {
            "0" => TscMode::Default,
            "1" => TscMode::AlwaysEmulate,
            "2" => TscMode::Native,
            "3" => TscMode::NativeParavirt,
            m if m.eq_ignore_ascii_case("default") => TscMode::Default,
            m if m.eq_ignore_ascii_case("always_emulate") => TscMode::AlwaysEmulate,
            m if m.eq_ignore_ascii_case("native") => TscMode::Native,
            m if m.eq_ignore_ascii_case("native_paravirt") => TscMode::NativeParavirt,
            m => {
                return Err(
                    r.err("tsc_mode", format!("{m:?}: expected default, always_emulate, native or native_paravirt"))
                );
            }
        };
    }
    Ok(())
}

fn read_actions(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    let slots: [(&str, &mut ShutdownAction); 5] = [
        ("on_poweroff", &mut spec.on_poweroff),
        ("on_reboot", &mut spec.on_reboot),
        ("on_crash", &mut spec.on_crash),
        ("on_watchdog", &mut spec.on_watchdog),
        ("on_soft_reset", &mut spec.on_soft_reset),
    ];
    for (key, slot) in slots {
        if let Some(word) = r.string(key)? {
            *slot = word.parse().map_err(|e| r.err(key, reason_of(e)))?;
        }
    }
    Ok(())
}

fn read_platform(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    let p = &mut spec.platform;
    p.acpi = r.flag("acpi")?;
    p.hap = r.flag("hap")?;
    p.nested_hvm = r.flag("nestedhvm")?;
    p.localtime = r.flag("localtime")?;
    if spec.kind == DomainKind::Pv {
        p.e820_host = r.flag("e820_host")?;
    }
    p.rtc_timeoffset = r.number::<i32>("rtc_timeoffset", i64::from(i32::MIN))?;
    p.shadow_memory_mib = r.number::<u64>("shadow_memory", 0)?;
    p.disable_migrate = r.flag("nomigrate")?;
    p.max_grant_frames = r.number::<u32>("max_grant_frames", 0)?;
    if let Some(mode) = r.string_or_number("timer_mode")? {
        p.timer_mode = Some(TimerMode::from_xl(&mode).ok_or_else(|| {
            r.err(
                "timer_mode",
                format!(
                    "{mode:?}: expected delay_for_missed_ticks, no_delay_for_missed_ticks, no_missed_ticks_pending or one_missed_tick_pending"
                ),
            )
        })?);
    }
    if let Some(v) = r.string("device_model_version")? {
        p.device_model_version = Some(DeviceModelVersion::from_xl(&v).ok_or_else(|| {
            r.err("device_model_version", format!("{v:?}: expected qemu-xen or qemu-xen-traditional"))
        })?);
    }
    if spec.kind == DomainKind::Hvm {
        p.apic = r.flag("apic")?;
        p.pae = r.flag("pae")?;
        p.hpet = r.flag("hpet")?;
        p.xen_platform_pci = r.flag("xen_platform_pci")?;
        p.acpi_s3 = r.flag("acpi_s3")?;
        p.acpi_s4 = r.flag("acpi_s4")?;
        match r.list_or_flag("viridian")? {
            Ok(flag) => p.viridian = flag,
            Err(items) => {
                if let Some(i) = crate::viridian::first_unknown(&items) {
                    return Err(r.item_err("viridian", i, format!("{:?}: {}", items[i], crate::viridian::UNKNOWN)));
                }
                p.viridian_enlightenments = items;
            }
        }
        if let Some(b) = r.string("bios")? {
            p.bios = Some(
                BiosKind::from_xl(&b)
                    .ok_or_else(|| r.err("bios", format!("{b:?}: expected rombios, seabios or ovmf")))?,
            );
        }
    }
    if let Some(mib) = r.number::<u64>("videoram", 0)? {
        spec.display.video_memory_mib = Some(mib);
    }
    Ok(())
}

fn read_devices(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    for (i, item) in r.list_or_ignore("disk")?.unwrap_or_default().into_iter().enumerate() {
        spec.disks.push(DiskSpec::from_xl(&item).map_err(|e| r.item_err("disk", i, spec_reason(e)))?);
    }
    let vifs = r.list_or_ignore("vif")?.unwrap_or_default();
    for (i, item) in vifs.iter().enumerate() {
        let mut warnings = Vec::new();
        spec.vifs.push(VifSpec::from_xl_noting(item, &mut warnings).map_err(|e| r.item_err("vif", i, spec_reason(e)))?);
        for w in warnings {
            log::warn!("{}: vif[{i}]: {w}", r.item_at("vif", i));
        }
    }
    // xl numbers vifs by position; libxl gives devid-less ones the next free id, which is the
    // same thing unless some vif names its own devid: then give the others theirs, as xl does.
    if spec.vifs.iter().any(|v| v.devid.is_some()) {
        for (i, vif) in spec.vifs.iter_mut().enumerate() {
            vif.devid = vif.devid.or(u32::try_from(i).ok());
        }
    }
    let defaults = PciDefaults {
        permissive: r.flag("pci_permissive")?.unwrap_or(false),
        msitranslate: r.flag("pci_msitranslate")?.unwrap_or(false),
        seize: r.flag("pci_seize")?.unwrap_or(false),
        power_mgmt: r.flag("pci_power_mgmt")?.unwrap_or(false),
    };
    for (i, item) in r.list_or_ignore("pci")?.unwrap_or_default().into_iter().enumerate() {
        spec.pcis.push(pci_from_xl(&item, defaults).map_err(|e| r.item_err("pci", i, format!("{item:?}: {e}")))?);
    }
    if spec.kind == DomainKind::Pv && !spec.pcis.is_empty() && spec.platform.e820_host == Some(false) {
        // xl turns e820_host on for PV guests with PCI devices whatever the file says.
        log::warn!("{}: e820_host: xl enables it anyway for a PV guest with PCI devices", r.at("e820_host"));
        spec.platform.e820_host = None;
    }
    Ok(())
}

/// A device spec's `InvalidSpec` as "SPEC": REASON, for an error that names the list item.
fn spec_reason(e: Error) -> String {
    match e {
        Error::InvalidSpec { value, reason, .. } => format!("{value:?}: {reason}"),
        other => other.to_string(),
    }
}

const VNC_KEYS: [&str; 5] = ["vnc", "vnclisten", "vncdisplay", "vncpasswd", "vncunused"];

fn read_display(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    let items = r.list_or_ignore("vfb")?.unwrap_or_default();
    let listed = !items.is_empty();
    for (i, item) in items.into_iter().enumerate() {
        let VfbItem { spec: vfb, xm_type, ignored } =
            vfb::from_xl(&item).map_err(|e| r.item_err("vfb", i, format!("{item:?}: {e}")))?;
        for what in ignored {
            log::warn!("{}: vfb[{i}]: {what}; ignored", r.item_at("vfb", i));
        }
        if let Some(t) = xm_type {
            let extra = if t == "sdl" { "; this framebuffer is VNC's, without SDL (give sdl=1)" } else { "" };
            log::warn!("{}: vfb[{i}]: type={t}: xm's framebuffer type, which xl ignores{extra}", r.item_at("vfb", i));
        }
        spec.vfbs.push(vfb);
    }
    spec.fold_single_vfb();
    let top_level = VNC_KEYS.iter().chain(&["sdl", "opengl", "keymap"]).find(|k| r.has(k)).copied();
    match spec.kind {
        // xl reads a PV guest's top-level display keys only when its vfb list gave none.
        DomainKind::Pv if listed => {
            let extras = ["sdl", "opengl", "keymap", "display", "xauthority"];
            for key in VNC_KEYS.iter().chain(&extras).filter(|k| r.has(k)) {
                log::warn!("{}: {key}: ignored, as xl ignores it beside a vfb list", r.at(key));
            }
            return Ok(());
        }
        // xl writes them into the HVM part of the build info, which a PVH guest has not:
        // check_keys warned about each.
        DomainKind::Pvh => return Ok(()),
        _ => crate::extras::read_sdl_display(r, spec)?,
    }
    let enabled = r.flag("vnc")?;
    if spec.kind == DomainKind::Pv && enabled == Some(false) {
        // xl reads a PV guest's top-level display keys only for vnc = 1.
        for key in VNC_KEYS[1..].iter().chain(&["sdl", "opengl", "keymap"]).filter(|k| r.has(k)) {
            log::warn!("{}: {key}: ignored with vnc = 0, as xl ignores it", r.at(key));
        }
        return Ok(());
    }
    if spec.kind == DomainKind::Pv && enabled != Some(true) {
        // xl gives a PV guest a framebuffer only for vnc = 1, and ignores the rest otherwise.
        return match top_level.filter(|k| *k != "vnc") {
            Some(key) => Err(r.err(key, "a PV guest's display needs vnc = 1 (or a vfb)")),
            None => Ok(()),
        };
    }
    let mut vnc = VncSpec {
        listen: r.string("vnclisten")?,
        password: r.string("vncpasswd")?,
        display: r.number::<u32>("vncdisplay", 0)?,
        // xl sets findunused only for vncunused; libxl's default for it is on.
        find_unused: r.flag("vncunused")?,
        enable_by_default: false,
    };
    if spec.kind == DomainKind::Hvm
        && vnc.display.is_some_and(|d| d != 0)
        && vnc.listen.as_deref().is_some_and(|l| l.contains(':'))
    {
        return Err(r.err("vncdisplay", "the display is also given in vnclisten (HOST:DISPLAY); give it once"));
    }
    let any_vnc_key = VNC_KEYS.iter().any(|k| r.has(k));
    match enabled {
        Some(false) => {
            // xl still hands an HVM guest's VNC settings to libxl, with the server off.
            if let Some(key) = VNC_KEYS[1..].iter().find(|k| r.has(k)) {
                log::warn!("{}: {key}: has no effect with vnc = 0", r.at(key));
                spec.vnc = Some(vnc);
            }
            spec.display.vnc_disabled = true;
        }
        // An HVM guest gets VNC from libxl unless told otherwise; its options apply to it.
        _ if any_vnc_key => {
            // Without vnc = 1 the server is on by libxl's default, and xl leaves it unstated.
            vnc.enable_by_default = enabled.is_none();
            spec.vnc = Some(vnc)
        }
        _ => {}
    }
    spec.display.sdl = r.flag("sdl")?;
    spec.display.opengl = r.flag("opengl")?;
    spec.display.keymap = r.string("keymap")?;
    Ok(())
}

fn read_hvm_devices(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    match r.string_or_list("serial")? {
        None => {}
        Some(OneOrList::One(s)) => spec.serial = Some(s),
        Some(OneOrList::List(list)) => spec.serial_ports = list,
    }
    spec.boot_order = r.string("boot")?;
    spec.usb = r.flag("usb")?;
    spec.usb_version = r.number::<u32>("usbversion", 1)?;
    match r.string_or_list("usbdevice")? {
        None => {}
        Some(OneOrList::One(s)) => spec.usb_device = Some(s),
        Some(OneOrList::List(list)) => spec.usb_devices = list,
    }
    spec.soundhw = r.string("soundhw")?;
    spec.display.nographic = r.flag("nographic")?;
    spec.display.vga = match r.string("vga")? {
        Some(v) => {
            if r.has("stdvga") {
                log::warn!("{}: stdvga: ignored in favour of vga, as xl does", r.at("stdvga"));
            }
            Some(
                VgaKind::from_xl(&v)
                    .ok_or_else(|| r.err("vga", format!("{v:?}: expected stdvga, cirrus, none or qxl")))?,
            )
        }
        None => r.flag("stdvga")?.map(|std| if std { VgaKind::Std } else { VgaKind::Cirrus }),
    };
    Ok(())
}

#[cfg(test)]
#[path = "xlparse_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "xlvalues_tests.rs"]
mod values_tests;
