//! EVE `DomainConfig` → xenctl `DomainSpec`, the way EVE's Xen backend builds its xl config
//! (pillar's `hypervisor/xen.go`, `CreateDomConfig`) and its start script (`xen-start`) creates
//! the domain from it: disks become xvda, xvdb, ... in order; PV apps get `console=hvc0
//! appuuid=<uuid>` before their own arguments, the PVH firmware as their kernel when they bring
//! none, and run as PVH where the host runs HVM guests (`pvboot.rs`); HVM, FML and LEGACY apps
//! get EVE's emulated hardware and display rules (`kinds.rs`); memory is KiB rounded up to MiB.
//! Fields EVE's Xen backend never reads (`RootDev`, `BootLoader`) are ignored as it ignores
//! them. Every value we cannot use is an error naming the file, the field and the value.
//!
//! `oracle.rs` (tests only) writes the xl config EVE's own code writes for a config; the tests
//! check that xl's reading of it (our xl parser, which agrees with `xl -N`) is our spec.

mod kinds;
#[cfg(test)]
mod oracle;
mod pvboot;

pub use pvboot::PvBoot;

use std::collections::BTreeSet;
use std::path::Path;

use xenctl::{DiskFormat, DiskSpec, DomainKind, DomainSpec, Mac, ShutdownAction, VifSpec};

use crate::eve::{DiskConfig, DiskStatus, DomainConfig, Format, VmMode};

/// A config value we cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field} = {value}: {reason}")]
pub struct ConfigError {
    /// The config file.
    pub file: String,
    /// The field, EVE's name (`DiskConfigList[1].Format`).
    pub field: String,
    /// The value, as JSON shows it.
    pub value: String,
    /// Why it cannot be used.
    pub reason: String,
}

/// A config turned into what the daemon runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// What libxl is asked to create.
    pub spec: DomainSpec,
    /// The disks as the status reports them.
    pub disks: Vec<DiskStatus>,
    /// Every passed-through PCI device may write its whole config space (EVE's FML mode:
    /// xl's `pci_permissive = 1`); applied to the devices its adapters resolve to at boot.
    pub pci_permissive: bool,
    /// What the status says about how the app boots when it is not what its mode says (a PV
    /// app run as PVH, or through GRUB), for the operator.
    pub boot_note: Option<String>,
    /// A container app's volume (its first disk is of Format CONTAINER): shared with the guest
    /// over 9pfs as `share_dir`, its run spec written there at boot (container/eve.rs).
    pub container_volume: Option<std::path::PathBuf>,
}

impl Translated {
    /// A spec as it is, with nothing else to say (an xl.cfg file's).
    pub fn of_spec(spec: DomainSpec) -> Translated {
        Translated { spec, disks: Vec::new(), pci_permissive: false, boot_note: None, container_volume: None }
    }
}

/// Translates `config`, read from `file`, for a host that boots PV apps as `pv` says.
pub fn translate(config: &DomainConfig, file: &Path, pv: &PvBoot) -> Result<Translated, ConfigError> {
    let err = |field: &str, value: String, reason: &str| ConfigError {
        file: file.display().to_string(),
        field: field.to_string(),
        value,
        reason: reason.to_string(),
    };
    let vm = &config.vm;
    let uuid = config.uuid_and_version.uuid;
    if uuid.is_nil() {
        return Err(err("UUIDandVersion.UUID", uuid.to_string(), "a domain needs a UUID"));
    }

    let kind = match vm.virtualization_mode {
        VmMode::HVM | VmMode::FML | VmMode::LEGACY => DomainKind::Hvm,
        VmMode::NOHYPER => {
            return Err(err(
                "VirtualizationMode",
                "4".into(),
                "NOHYPER apps run as containers beside EVE, not as Xen domains: not supported",
            ));
        }
        // PV, and any other number: EVE reads those as PV (VirtualizationModeOrDefault), and
        // its Xen backend gives them no device model (its xl config's default branch).
        _ => DomainKind::Pv,
    };
    not_supported_yet(config).map_err(|(field, value, reason)| err(&field, value, &reason))?;

    let kib_to_mib = |field: &str, kib: i64| -> Result<u64, ConfigError> {
        u64::try_from(kib).map(|k| k.div_ceil(1024)).map_err(|_| err(field, kib.to_string(), "cannot be negative"))
    };
    if vm.memory <= 0 {
        return Err(err("Memory", vm.memory.to_string(), "a domain needs memory (KiB)"));
    }
    let memory = kib_to_mib("Memory", vm.memory)?;
    let max_memory = match vm.max_mem {
        0 => None,
        m if m < vm.memory => return Err(err("MaxMem", m.to_string(), "is less than Memory")),
        m => Some(kib_to_mib("MaxMem", m)?),
    };
    // A maximum equal to the start value is none, as xl reads it: one spec for one domain,
    // so the xl.cfg written for it reads back to the same spec.
    let max_memory = max_memory.filter(|&m| m != memory);
    let count = |field: &str, n: i64| -> Result<u32, ConfigError> {
        u32::try_from(n).map_err(|_| err(field, n.to_string(), "must be 0 or more"))
    };
    let vcpus = count("VCpus", vm.vcpus)?.max(1);
    let max_vcpus = match count("MaxCpus", vm.max_cpus)? {
        0 => None,
        m if m < vcpus => return Err(err("MaxCpus", m.to_string(), "is less than VCpus")),
        m if m == vcpus => None,
        m => Some(m),
    };

    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let pv_mode = kind == DomainKind::Pv;
    // EVE writes `extra` as given, after its own words for PV apps; `root` and `bootloader`
    // never (RootDev and BootLoader are not read by its Xen backend: zedmanager sets
    // BootLoader to OVMF for FML apps, which boot their firmware all the same).
    let cmdline = if pv_mode {
        Some(format!("console=hvc0 appuuid={uuid} {}", vm.extra_args))
    } else {
        (!vm.extra_args.is_empty()).then(|| vm.extra_args.clone())
    };
    let (kind, kernel, boot_note) = if pv_mode {
        // Devices passed through: adapters (resolved to PCI devices, IRQs, ... at boot), or
        // the config's own IRQs, I/O memory and device tree nodes.
        let passthrough = !config.io_adapter_list.is_empty()
            || vm.irqs.as_ref().is_some_and(|v| !v.is_empty())
            || vm.io_mem.as_ref().is_some_and(|v| !v.is_empty())
            || vm.dt_dev.as_ref().is_some_and(|v| !v.is_empty());
        let (kind, kernel, note) = pv.decide(non_empty(&vm.kernel), passthrough);
        (kind, Some(kernel), note)
    } else {
        (kind, non_empty(&vm.kernel), None)
    };

    let mut spec = DomainSpec::new(config.domain_name(), kind).uuid(uuid).memory_mib(memory).vcpus(vcpus);
    spec.max_memory_mib = max_memory;
    spec.max_vcpus = max_vcpus;
    spec.kernel = kernel;
    spec.ramdisk = non_empty(&vm.ramdisk);
    spec.cmdline = cmdline;
    // A CPU set (libxl's cpumap): in order, each once, as xl reads a `cpus` list.
    spec.cpus = vm.cpus.0.iter().copied().collect::<BTreeSet<u32>>().into_iter().collect();
    spec.on_poweroff = ShutdownAction::Destroy;
    spec.on_reboot = ShutdownAction::Restart;
    spec.on_crash = ShutdownAction::Destroy;
    kinds::display(&mut spec, vm, &config.gpu_config, pv_mode);

    let mut disks = Vec::new();
    let mut container_volume = None;
    for (i, d) in config.disk_config_list.iter().enumerate() {
        let field = |f: &str| format!("DiskConfigList[{i}].{f}");
        if d.file_location.trim().is_empty() {
            return Err(err(&field("FileLocation"), "\"\"".into(), "a disk needs its image file"));
        }
        let letter = u8::try_from(i).ok().filter(|&i| i < 26).map(|i| char::from(b'a' + i));
        let Some(letter) = letter else {
            return Err(err("DiskConfigList", format!("{} disks", config.disk_config_list.len()), "at most 26 disks"));
        };
        let vdev = format!("xvd{letter}");
        // A container app's root: a directory (EVE's volume, `rootfs/` and `image-config.json`),
        // no disk; shared over 9pfs below (EVE's configToStatus: no Devtype, MountDir `/`).
        if d.format == Format::CONTAINER {
            if i != 0 {
                return Err(err(
                    &field("Format"),
                    "8".into(),
                    "a container volume other than the app's first disk (EVE mounts it into the first one's root filesystem) is not supported yet",
                ));
            }
            container_volume = Some(std::path::PathBuf::from(d.file_location.trim()));
            disks.push(DiskStatus {
                volume_key: d.volume_key.clone(),
                read_only: d.read_only,
                file_location: d.file_location.clone(),
                format: d.format,
                mount_dir: "/".into(),
                display_name: d.display_name.clone(),
                devtype: String::new(),
                vdev,
                wwn: d.wwn.clone(),
                custom_meta: d.custom_meta.clone(),
            });
            continue;
        }
        // An ISO image is a raw disk to EVE's Xen backend (its status says "cdrom", but the
        // xl config it writes gives the image as a disk like any other).
        let format = match d.format {
            Format::UNKNOWN | Format::RAW | Format::ISO => DiskFormat::Raw,
            Format::QCOW => DiskFormat::Qcow,
            Format::QCOW2 => DiskFormat::Qcow2,
            Format::VHD => DiskFormat::Vhd,
            other => {
                return Err(err(
                    &field("Format"),
                    other.0.to_string(),
                    &format!("{} images cannot be given to a Xen guest", other.name()),
                ));
            }
        };
        let disk = DiskSpec { format, readonly: d.read_only, ..DiskSpec::new(d.file_location.trim(), &vdev) };
        spec.disks.push(disk);
        // EVE's Devtype (configToStatus): an app's own volume is "AppCustom"; any other disk
        // "hdd", an ISO image "cdrom" with its format written RAW; under LEGACY all of
        // those are "legacy" (the format stays RAW).
        let (devtype, status_format) = if d.target == DiskConfig::TARGET_APP_CUSTOM {
            ("AppCustom", d.format)
        } else {
            let (devtype, format) = if d.format == Format::ISO { ("cdrom", Format::RAW) } else { ("hdd", d.format) };
            (if vm.virtualization_mode == VmMode::LEGACY { "legacy" } else { devtype }, format)
        };
        disks.push(DiskStatus {
            volume_key: d.volume_key.clone(),
            read_only: d.read_only,
            file_location: d.file_location.clone(),
            format: status_format,
            mount_dir: d.mount_dir.clone(),
            display_name: d.display_name.clone(),
            devtype: devtype.into(),
            vdev,
            wwn: d.wwn.clone(),
            custom_meta: d.custom_meta.clone(),
        });
    }

    // EVE's xen-tools container shares the volume as its `/mnt` (its status says so); the
    // daemon shares the volume itself.
    if let Some(volume) = &container_volume {
        let path = volume.to_string_lossy().into_owned();
        spec.p9s.push(xenctl::P9Spec {
            tag: xen_container_init::SHARE_TAG.into(),
            path: path.clone(),
            security_model: xenctl::P9Spec::SECURITY_NONE.into(),
            backend_domain: None,
        });
        disks.push(DiskStatus { file_location: path, devtype: "9P".into(), ..DiskStatus::default() });
    }

    for (i, v) in config.vif_list.iter().enumerate() {
        if let Some(mac) = v.mac.0.filter(|m| m[0] & 1 == 1) {
            let text = Mac(mac).to_string();
            return Err(err(&format!("VifList[{i}].Mac"), text, "a multicast address cannot name an interface"));
        }
        // 0 leaves it to the bridge; anything else is what libxl (and Linux) take for a NIC.
        if v.mtu != 0 && v.mtu < 68 {
            return Err(err(&format!("VifList[{i}].MTU"), v.mtu.to_string(), "must be 68 to 65535 (0: the bridge's)"));
        }
        spec.vifs.push(VifSpec {
            bridge: non_empty(&v.bridge),
            mac: v.mac.0.map(Mac),
            vifname: non_empty(&v.vif),
            mtu: (v.mtu != 0).then_some(u32::from(v.mtu)),
            ..VifSpec::default()
        });
    }

    let pci_permissive = kinds::hardware(&mut spec, vm.virtualization_mode);

    // Host hardware the config itself names, as EVE's xl config gives it: for every mode
    // (xl reads these for any guest type). The IRQs come first; the adapters' are added at
    // boot after them, each once.
    for (i, &irq) in vm.irqs.iter().flatten().enumerate() {
        let irq = u32::try_from(irq)
            .ok()
            .filter(|&n| n != u32::MAX)
            .ok_or_else(|| err(&format!("IRQs[{i}]"), irq.to_string(), "not an IRQ number"))?;
        if !spec.resources.irqs.contains(&irq) {
            spec.resources.irqs.push(irq);
        }
    }
    for (i, range) in vm.io_mem.iter().flatten().enumerate() {
        let parsed = xenctl::IomemRange::from_xl(range).map_err(|e| err(&format!("IOMem[{i}]"), as_json(range), &e))?;
        spec.resources.iomem.push(parsed);
    }
    spec.resources.dtdevs = vm.dt_dev.clone().unwrap_or_default();
    spec.resources.device_tree = non_empty(&vm.device_tree);

    // IoAdapterList is resolved when the domain boots (adapters/): which adapters are free
    // depends on the adapter list and the other domains at that moment.

    // The spec's own checks (names, sizes, kind rules), reported with EVE's field names.
    spec.validate().map_err(|e| match e {
        xenctl::Error::InvalidSpec { field, value, reason } => err(&eve_field(&field), format!("{value:?}"), &reason),
        other => err("(config)", String::new(), &other.to_string()),
    })?;
    Ok(Translated { spec, disks, pci_permissive, boot_note, container_volume })
}

/// The fields EVE honours and we do not yet: the first one set to something that changes
/// what the guest gets, as (field, value as JSON shows it, why). A field at its zero value asks
/// for nothing and passes, and so do the ones that never change what the guest gets.
fn not_supported_yet(config: &DomainConfig) -> Result<(), (String, String, String)> {
    let not_yet = |field: &str, value: String, what: &str| {
        Err((field.to_string(), value, format!("{what} is not supported yet")))
    };
    // User data (clear, or encrypted: IsCipher) becomes the guest's cloud-init config disk at
    // boot, and OpenStack metadata (MetaDataType 2) the guest's SMBIOS product name
    // (cloudinit.rs).
    for (i, a) in config.io_adapter_list.iter().enumerate() {
        if a.eth_vf.is_set() {
            return not_yet(
                &format!("IoAdapterList[{i}].EthVf"),
                as_json(&a.eth_vf),
                "SR-IOV virtual function settings",
            );
        }
    }
    // DisableLogs only keeps the guest's console out of EVE's logs; we log no guest console,
    // so there is nothing to disable: accepted whatever its value.
    Ok(())
}

/// A value as JSON shows it, for error messages.
fn as_json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Maps a DomainSpec field name back to the EVE field it came from.
fn eve_field(spec_field: &str) -> String {
    let (head, rest) = spec_field.split_once('[').map_or((spec_field, ""), |(h, r)| (h, r));
    let eve = match head {
        "name" => "DisplayName/AppNum",
        "memory" => "Memory",
        "maxmem" => "MaxMem",
        "vcpus" => "VCpus",
        "maxvcpus" => "MaxCpus",
        "kernel" => "Kernel",
        "ramdisk" => "Ramdisk",
        "bootloader" => "BootLoader",
        "cpus" => "CPUs",
        "disks" => "DiskConfigList",
        "vifs" => "VifList",
        "resources.irqs" => "IRQs",
        "resources.iomem" => "IOMem",
        "resources.dtdevs" => "DtDev",
        "resources.device_tree" => "DeviceTree",
        other => other,
    };
    // A disk's path is its FileLocation.
    let rest = if head == "disks" { rest.replace("].target", "].FileLocation") } else { rest.to_string() };
    if rest.is_empty() { eve.to_string() } else { format!("{eve}[{rest}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eve::{CpuList, DiskConfig, GoMac, UuidAndVersion, VifConfig, VmConfig};
    use uuid::Uuid;

    fn config() -> DomainConfig {
        DomainConfig {
            uuid_and_version: UuidAndVersion {
                uuid: Uuid::parse_str("6ba7b810-9dad-11d1-80b4-00c04fd430c8").unwrap(),
                version: "1".into(),
            },
            display_name: "web".into(),
            activate: true,
            app_num: 2,
            vm: VmConfig {
                kernel: "/k".into(),
                memory: 130_000,
                vcpus: 2,
                root_dev: "/dev/xvda1".into(),
                extra_args: "quiet".into(),
                ..VmConfig::default()
            },
            disk_config_list: vec![
                DiskConfig { file_location: "/v/root.qcow2".into(), format: Format::QCOW2, ..DiskConfig::default() },
                DiskConfig { file_location: "/v/cd.iso".into(), format: Format::ISO, ..DiskConfig::default() },
            ],
            vif_list: vec![VifConfig {
                bridge: "bn1".into(),
                vif: "nbu1x2".into(),
                mac: GoMac(Some([2, 0, 0, 0, 0, 1])),
                mtu: 1400,
                vif_order: 0,
            }],
            io_adapter_list: vec![],
            ..DomainConfig::default()
        }
    }

    fn t(c: &DomainConfig) -> Result<Translated, ConfigError> {
        translate(c, Path::new("/run/zedmanager/DomainConfig/x.json"), &PvBoot::eve_default())
    }

    #[test]
    fn maxima_and_cpus_are_canonical_as_xl_reads_them() {
        // Found by the eve_config fuzz target: the xl.cfg written for such a domain read back
        // as a spec with no maxima, so the two differed for the same domain.
        let mut c = config();
        (c.vm.memory, c.vm.max_mem, c.vm.vcpus, c.vm.max_cpus) = (2_097_000, 2_097_152, 2, 2);
        let spec = t(&c).unwrap().spec;
        assert_eq!((spec.memory_mib, spec.max_memory_mib, spec.vcpus, spec.max_vcpus), (2048, None, 2, None));
        let written = spec.to_xl_config().unwrap();
        assert_eq!(DomainSpec::from_xl_config_text("x.cfg", &written).unwrap(), spec);
        // And CPUs are a set: "1, 1" is CPU 1 (also found by the fuzz target).
        c.vm.cpus = CpuList(vec![3, 1, 1]);
        let spec = t(&c).unwrap().spec;
        assert_eq!(spec.cpus, [1, 3]);
        assert_eq!(DomainSpec::from_xl_config_text("x.cfg", &spec.to_xl_config().unwrap()).unwrap(), spec);
        (c.vm.max_mem, c.vm.max_cpus) = (4_194_304, 3);
        let spec = t(&c).unwrap().spec;
        assert_eq!((spec.max_memory_mib, spec.max_vcpus), (Some(4096), Some(3)));
    }

    #[test]
    fn translates_like_eves_xen_backend() {
        let tr = t(&config()).unwrap();
        let s = &tr.spec;
        assert_eq!(s.name, "6ba7b810-9dad-11d1-80b4-00c04fd430c8.1.2");
        // A PV app on a host that runs HVM guests is PVH, with EVE's words before its own
        // (RootDev is not used: EVE's Xen backend never writes `root`).
        assert_eq!((s.kind, s.memory_mib, s.vcpus, s.max_vcpus), (DomainKind::Pvh, 127, 2, None));
        assert_eq!(s.cmdline.as_deref(), Some("console=hvc0 appuuid=6ba7b810-9dad-11d1-80b4-00c04fd430c8 quiet"));
        assert_eq!(s.disks[0].vdev, "xvda");
        assert_eq!(s.disks[0].format, DiskFormat::Qcow2);
        // An ISO is a raw disk in EVE's xl config, read-only only if the config says so.
        assert!(!s.disks[1].cdrom && !s.disks[1].readonly && s.disks[1].format == DiskFormat::Raw);
        assert_eq!((tr.disks[0].devtype.as_str(), tr.disks[1].devtype.as_str()), ("hdd", "cdrom"));
        assert_eq!(tr.disks[1].vdev, "xvdb");
        assert_eq!(s.vifs[0].vifname.as_deref(), Some("nbu1x2"));
        assert_eq!(s.vifs[0].mtu, Some(1400));
        assert_eq!(s.vifs[0].mac.map(|m| m.to_string()).as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(
            (s.on_poweroff, s.on_reboot, s.on_crash),
            (ShutdownAction::Destroy, ShutdownAction::Restart, ShutdownAction::Destroy)
        );
    }

    #[test]
    fn hvm_modes_and_vnc() {
        let mut c = config();
        c.vm.virtualization_mode = VmMode::HVM;
        c.vm.kernel.clear();
        c.vm.enable_vnc = true;
        c.vm.vnc_display = 3;
        let s = t(&c).unwrap().spec;
        assert_eq!(
            (s.kind, s.serial_ports.as_slice(), s.cmdline.as_deref()),
            (DomainKind::Hvm, &["pty".to_string()][..], Some("quiet"))
        );
        assert_eq!(s.vnc.as_ref().and_then(|v| v.display), Some(3));
        assert_eq!((s.usb, s.usb_devices.as_slice()), (Some(true), &["tablet".to_string()][..]));
        assert_eq!(s.vifs[0].nic_type, Some(xenctl::NicType::Vif), "EVE gives HVM apps PV vifs only");
        c.vm.virtualization_mode = VmMode::FML;
        c.vm.boot_loader = "/usr/lib/xen/boot/OVMF_CODE.fd".into(); // zedmanager's, for FML
        let tr = t(&c).unwrap();
        assert_eq!((tr.spec.kind, tr.spec.bootloader.as_deref(), tr.pci_permissive), (DomainKind::Hvm, None, true));
        assert_eq!(tr.spec.device_model.hdtype, Some(xenctl::HdType::Ahci));
        assert_eq!(tr.spec.vifs[0].nic_type, Some(xenctl::NicType::Ioemu));
        // Without VNC: no VNC, and no graphics card unless the app has a GPU config.
        (c.vm.enable_vnc, c.gpu_config) = (false, "legacy".into());
        let s = t(&c).unwrap().spec;
        assert!(s.display.vnc_disabled && s.display.nographic.is_none() && s.display.vga.is_none());
        c.gpu_config.clear();
        let s = t(&c).unwrap().spec;
        assert_eq!((s.display.nographic, s.display.vga), (Some(true), Some(xenctl::VgaKind::Off)));
    }

    #[test]
    fn unknown_modes_run_as_pv_as_eve_reads_them() {
        let mut c = config();
        for mode in [VmMode::FILLER, VmMode(6), VmMode(255)] {
            c.vm.virtualization_mode = mode;
            let s = t(&c).unwrap().spec;
            assert_eq!(s.kind, DomainKind::Pvh, "{mode:?}: as a PV app, PVH on a host with HVM");
            assert!(s.cmdline.as_deref().is_some_and(|l| l.starts_with("console=hvc0 appuuid=")), "{mode:?}");
            assert_eq!(mode.or_default(), VmMode::PV);
        }
        assert_eq!(VmMode::LEGACY.or_default(), VmMode::LEGACY);
    }

    #[test]
    fn devtypes_are_eves() {
        let mut c = config();
        c.disk_config_list[0].format = Format::RAW;
        let disks = t(&c).unwrap().disks;
        assert_eq!((disks[0].devtype.as_str(), disks[0].format), ("hdd", Format::RAW));
        assert_eq!((disks[1].devtype.as_str(), disks[1].format), ("cdrom", Format::RAW), "an ISO is a RAW cdrom");
        assert!(!disks[1].read_only, "read-only only if the config says so");
        c.disk_config_list[0].target = DiskConfig::TARGET_APP_CUSTOM;
        c.vm.virtualization_mode = VmMode::LEGACY;
        c.vm.kernel.clear();
        let disks = t(&c).unwrap().disks;
        assert_eq!(disks[0].devtype, "AppCustom");
        assert_eq!((disks[1].devtype.as_str(), disks[1].format), ("legacy", Format::RAW));
    }

    #[test]
    fn fields_not_supported_yet_are_errors_only_when_they_ask_for_something() {
        type Mutation = Box<dyn Fn(&mut DomainConfig)>;
        let neutral: Vec<Mutation> = vec![
            Box::new(|c| c.vm.dt_dev = Some(vec![])),
            Box::new(|c| c.vm.irqs = Some(vec![])),
            Box::new(|c| c.vm.irqs = Some(vec![88, 86])),
            Box::new(|c| c.vm.device_tree = "guest.dtb".into()),
            Box::new(|c| c.disable_logs = true),
            Box::new(|c| (c.meta_data_type, c.cipher_data) = (3, Some("AAE=".into()))),
            Box::new(|c| (c.meta_data_type, c.cloud_init_user_data) = (1, Some("I2Nsb3VkLWNvbmZpZw==".into()))),
            Box::new(|c| (c.meta_data_type, c.is_cipher) = (1, true)),
            Box::new(|c| (c.meta_data_type, c.cloud_init_user_data) = (7, Some("eA==".into()))),
            // A cloud-init config disk or the OpenStack product name, at boot (cloudinit.rs).
            Box::new(|c| c.meta_data_type = 2),
            Box::new(|c| c.is_cipher = true),
            Box::new(|c| c.cloud_init_user_data = Some("I2Nsb3VkLWNvbmZpZw==".into())),
            Box::new(|c| (c.meta_data_type, c.cloud_init_user_data) = (3, Some("I2Nsb3VkLWNvbmZpZw==".into()))),
        ];
        for mutate in neutral {
            let mut c = config();
            mutate(&mut c);
            assert!(t(&c).is_ok(), "{c:?}");
        }
        let set: Vec<(Mutation, &str)> = vec![(
            Box::new(|c| {
                c.io_adapter_list = vec![crate::eve::IoAdapter {
                    name: "eth1vf0".into(),
                    eth_vf: crate::eve::EthVf { vlan_id: 5, ..Default::default() },
                    ..Default::default()
                }]
            }),
            "IoAdapterList[0].EthVf = {\"VlanID\":5}: SR-IOV",
        )];
        for (mutate, want) in set {
            let mut c = config();
            mutate(&mut c);
            let e = t(&c).unwrap_err().to_string();
            assert!(e.contains(want) && e.ends_with("is not supported yet"), "{e}\n  wanted: {want}");
        }
    }

    #[test]
    fn host_hardware_the_config_names_is_given_as_eves_xl_config_gives_it() {
        // As EVE's xl config says it: irqs = [88,86], iomem = ["f7020,1"], dtdev = [...],
        // device_tree = "...".
        let mut c = config();
        c.vm.irqs = Some(vec![88, 86, 88]);
        c.vm.io_mem = Some(vec!["0xf7020,1".into(), "fed00,2@fed00".into()]);
        c.vm.dt_dev = Some(vec!["/smb/gpio@f7020000".into()]);
        c.vm.device_tree = "/persist/guest.dtb".into();
        let s = t(&c).unwrap().spec;
        assert_eq!(s.resources.irqs, [88, 86]);
        assert_eq!(
            s.resources.iomem,
            [
                xenctl::IomemRange { start: 0xf7020, pages: 1, gfn: None },
                xenctl::IomemRange { start: 0xfed00, pages: 2, gfn: Some(0xfed00) }
            ]
        );
        assert_eq!(s.resources.dtdevs, ["/smb/gpio@f7020000"]);
        assert_eq!(s.resources.device_tree.as_deref(), Some("/persist/guest.dtb"));
        let text = s.to_xl_config().unwrap();
        for line in
            ["irqs = [ 88, 86 ]", "iomem = [ \"f7020,1\", \"fed00,2@fed00\" ]", "dtdev = [ \"/smb/gpio@f7020000\" ]"]
        {
            assert!(text.contains(line), "{line}\n{text}");
        }
        assert_eq!(DomainSpec::from_xl_config_text("x.cfg", &text).unwrap(), s);
    }

    #[test]
    fn bad_values_name_file_field_and_value() {
        type Mutation = Box<dyn Fn(&mut DomainConfig)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|c| c.vm.memory = 0), "x.json: Memory = 0: a domain needs memory"),
            (Box::new(|c| c.vm.max_mem = 1000), "x.json: MaxMem = 1000: is less than Memory"),
            (Box::new(|c| c.vm.vcpus = -1), "x.json: VCpus = -1: must be 0 or more"),
            (Box::new(|c| c.vm.max_cpus = 1), "x.json: MaxCpus = 1: is less than VCpus"),
            (Box::new(|c| c.vm.virtualization_mode = VmMode::NOHYPER), "VirtualizationMode = 4: NOHYPER"),
            (
                Box::new(|c| c.disk_config_list[1].format = Format::VMDK),
                "x.json: DiskConfigList[1].Format = 5: VMDK images",
            ),
            (Box::new(|c| c.disk_config_list[0].file_location.clear()), "DiskConfigList[0].FileLocation"),
            (
                Box::new(|c| c.disk_config_list[1].file_location = "/v/a\nb.img".into()),
                "x.json: DiskConfigList[1].FileLocation = \"/v/a\\\\nb.img\": a control character",
            ),
            (
                Box::new(|c| c.vif_list[0].mac = GoMac(Some([1, 0x8f, 0xa1, 0, 0, 1]))),
                "x.json: VifList[0].Mac = 01:8f:a1:00:00:01: a multicast address cannot name an interface",
            ),
            (Box::new(|c| c.vif_list[0].mtu = 1), "x.json: VifList[0].MTU = 1: must be 68 to 65535"),
            (Box::new(|c| c.vm.cpus.0 = vec![9999]), "x.json: CPUs = \"9999\""),
            (Box::new(|c| c.uuid_and_version.uuid = Uuid::nil()), "UUIDandVersion.UUID"),
            (Box::new(|c| c.vm.irqs = Some(vec![3, -1])), "x.json: IRQs[1] = -1: not an IRQ number"),
            (
                Box::new(|c| c.vm.io_mem = Some(vec!["fed00".into()])),
                "x.json: IOMem[0] = \"fed00\": not an I/O memory range",
            ),
            (
                Box::new(|c| c.vm.dt_dev = Some(vec![String::new()])),
                "x.json: DtDev[0] = \"\": an empty device-tree path",
            ),
        ];
        for (mutate, want) in cases {
            let mut c = config();
            mutate(&mut c);
            let e = t(&c).unwrap_err().to_string();
            assert!(e.starts_with("/run/zedmanager/DomainConfig/") && e.contains(want), "{e}\n  wanted: {want}");
        }
    }
}
