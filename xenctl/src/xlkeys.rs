//! Which xl.cfg keys [`DomainSpec::from_xl_config`](crate::DomainSpec::from_xl_config) reads,
//! for which guest types, and which keys xl knows that it refuses. The lists follow what
//! tools/xl/xl_parse.c (Xen 4.17) reads, and for which domain type it reads them.

use std::fmt;

use crate::types::DomainKind;

/// The guest types a key applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applies {
    pv: bool,
    pvh: bool,
    hvm: bool,
}

const ALL: Applies = Applies { pv: true, pvh: true, hvm: true };
const HVM: Applies = Applies { pv: false, pvh: false, hvm: true };
const PV: Applies = Applies { pv: true, pvh: false, hvm: false };
/// Top-level VNC/SDL keys: xl reads them for HVM guests, and for PV guests without a `vfb`
/// list; for PVH it would write them into the HVM part of its build info, so we refuse them.
const HVM_PV: Applies = Applies { pv: true, pvh: false, hvm: true };
/// Guests without a device model of their own.
const PV_PVH: Applies = Applies { pv: true, pvh: true, hvm: false };
/// Guests with emulated timers (xl refuses `timer_mode` for PV).
const HVM_PVH: Applies = Applies { pv: false, pvh: true, hvm: true };

impl Applies {
    pub(crate) fn contains(self, kind: DomainKind) -> bool {
        match kind {
            DomainKind::Pv => self.pv,
            DomainKind::Pvh => self.pvh,
            DomainKind::Hvm => self.hvm,
        }
    }
}

impl fmt::Display for Applies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = [(self.pv, "PV"), (self.pvh, "PVH"), (self.hvm, "HVM")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&kinds.join(" and "))
    }
}

/// What we know about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyClass {
    /// Read, for these guest types.
    Supported(Applies),
    /// An xl key this crate refuses.
    XlOnly,
    /// A key of xm, xl's predecessor, that xl 4.17 never reads: accepted with a warning, as
    /// old configs carry them and xl runs them without complaint.
    XmIgnored,
    /// Not an xl.cfg key at all (a typo, or from another tool).
    Unknown,
}

const SUPPORTED: &[(&str, Applies)] = &[
    ("name", ALL),
    ("uuid", ALL),
    ("type", ALL),
    ("builder", ALL),
    ("memory", ALL),
    ("maxmem", ALL),
    ("vcpus", ALL),
    ("maxvcpus", ALL),
    ("cpus", ALL),
    ("cpu_weight", ALL),
    ("cap", ALL),
    ("kernel", ALL),
    ("ramdisk", ALL),
    ("cmdline", ALL),
    ("root", ALL),
    ("extra", ALL),
    ("bootloader", PV_PVH),
    ("bootloader_args", PV_PVH),
    ("disk", ALL),
    ("vif", ALL),
    ("pci", ALL),
    ("pci_permissive", ALL),
    ("pci_msitranslate", ALL),
    ("pci_seize", ALL),
    ("pci_power_mgmt", ALL),
    ("channel", ALL),
    ("vtpm", ALL),
    ("p9", ALL),
    ("pvcalls", ALL),
    ("vkb", ALL),
    ("vdispl", ALL),
    ("vsnd", ALL),
    ("on_poweroff", ALL),
    ("on_reboot", ALL),
    ("on_crash", ALL),
    ("on_watchdog", ALL),
    ("on_soft_reset", ALL),
    ("tsc_mode", ALL),
    ("acpi", ALL),
    ("hap", ALL),
    ("nestedhvm", ALL),
    ("localtime", ALL),
    ("videoram", ALL),
    ("device_model_version", ALL),
    // xl ignores these two with a warning; so do we.
    ("device_model", ALL),
    ("vncviewer", ALL),
    ("vfb", PV_PVH),
    ("vnc", HVM_PV),
    ("vnclisten", HVM_PV),
    ("vncdisplay", HVM_PV),
    ("vncpasswd", HVM_PV),
    ("vncunused", HVM_PV),
    ("sdl", HVM_PV),
    ("opengl", HVM_PV),
    ("keymap", HVM_PV),
    ("serial", HVM),
    ("boot", HVM),
    ("usb", HVM),
    ("usbversion", HVM),
    ("usbdevice", HVM),
    ("soundhw", HVM),
    ("apic", HVM),
    ("pae", HVM),
    ("viridian", HVM),
    ("hpet", HVM),
    ("xen_platform_pci", HVM),
    ("bios", HVM),
    ("vga", HVM),
    ("stdvga", HVM),
    ("nographic", HVM),
    ("e820_host", PV),
    ("rtc_timeoffset", ALL),
    ("shadow_memory", ALL),
    ("nomigrate", ALL),
    ("max_grant_frames", ALL),
    ("timer_mode", HVM_PVH),
    ("acpi_s3", HVM),
    ("acpi_s4", HVM),
];

/// Keys xl 4.17 reads that this crate does not support (each would need fields DomainSpec
/// does not have: XSM labels, cpupools, NUMA, grant limits, device trees, I/O ranges,
/// SPICE, stub domains, CPUID policies, ...).
const XL_ONLY: &[&str] = &[
    "seclabel",
    "init_seclabel",
    "pool",
    "oos",
    "pvshim",
    "pvshim_path",
    "pvshim_cmdline",
    "pvshim_extra",
    "period",
    "slice",
    "latency",
    "extratime",
    "cpus_soft",
    "vuart",
    "vnuma",
    "max_maptrack_frames",
    "max_grant_version",
    "rdm",
    "dtdev",
    "passthrough",
    "max_event_channels",
    "device_tree",
    "driver_domain",
    "firmware_override",
    "bios_path_override",
    "acpi_laptop_slate",
    "nx",
    "vpt_align",
    "mmio_hole",
    "altp2mhvm",
    "altp2m",
    "smbios_firmware",
    "acpi_firmware",
    "ms_vm_genid",
    "rdm_mem_boundary",
    "mca_caps",
    "firmware",
    "vmtrace_buf_kb",
    "ioports",
    "irqs",
    "iomem",
    "vif2",
    "usbctrl",
    "usbdev",
    "cpuid",
    "device_model_override",
    "device_model_stubdomain_override",
    "device_model_stubdomain_seclabel",
    "device_model_user",
    "stubdomain_kernel",
    "stubdomain_cmdline",
    "stubdomain_ramdisk",
    "stubdomain_memory",
    "device_model_args",
    "device_model_args_pv",
    "device_model_args_hvm",
    "dm_restrict",
    "hdtype",
    "spice",
    "spiceport",
    "spicetls_port",
    "spicehost",
    "spicedisable_ticketing",
    "spicepasswd",
    "spiceagent_mouse",
    "spicevdagent",
    "spice_clipboard_sharing",
    "spiceusbredirection",
    "spice_image_compression",
    "spice_streaming_video",
    "gfx_passthru",
    "vkb_device",
    "vendor_device",
    "gic_version",
    "tee",
    "xend_suspend_evtchn_compat",
    "msr_relaxed",
    "vpmu",
    "display",
    "xauthority",
];

/// Keys xm (Xen 4.2's tools/python/xen/xm/create.py) read that xl 4.17's parse_config_data
/// never reads, nor mentions: xl silently ignores them. Keys nobody knows stay errors, so a
/// typo cannot pass.
const XM_IGNORED: &[&str] = &[
    "access_control",
    "blkif",
    "bootargs",
    "bootentry",
    "cpu",
    "cpu_cap",
    "cpuid_check",
    "description",
    "dhcp",
    "fda",
    "fdb",
    "features",
    "gateway",
    "guest_os_type",
    "hostname",
    "interface",
    "irq",
    "isa",
    "loader",
    "machine_address_size",
    "memory_sharing",
    "monitor",
    "monitor_path",
    "netif",
    "netmask",
    "nfs_root",
    "nfs_server",
    "nics",
    "on_xend_start",
    "on_xend_stop",
    "parallel",
    "s3_integrity",
    "superpages",
    "suppress_spurious_page_faults",
    "target",
    "tpmif",
    "vcpu_avail",
    "vhpt",
    "vncconsole",
    "vscsi",
    "vusb",
];

/// What we know about `key`.
pub(crate) fn classify(key: &str) -> KeyClass {
    if let Some((_, applies)) = SUPPORTED.iter().find(|(k, _)| *k == key) {
        KeyClass::Supported(*applies)
    } else if XL_ONLY.contains(&key) {
        KeyClass::XlOnly
    } else if XM_IGNORED.contains(&key) {
        KeyClass::XmIgnored
    } else {
        KeyClass::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified() {
        assert_eq!(classify("memory"), KeyClass::Supported(ALL));
        assert_eq!(classify("spice"), KeyClass::XlOnly);
        assert_eq!(classify("memroy"), KeyClass::Unknown);
        assert_eq!(classify("vncconsole"), KeyClass::XmIgnored);
        assert_eq!(classify("on_xend_stop"), KeyClass::XmIgnored);
        assert!(!HVM_PV.contains(DomainKind::Pvh));
        assert_eq!(HVM_PV.to_string(), "PV and HVM");
        assert_eq!(HVM.to_string(), "HVM");
        assert_eq!(classify("timer_mode"), KeyClass::Supported(HVM_PVH));
        assert!(!HVM_PVH.contains(DomainKind::Pv));
    }

    #[test]
    fn no_key_is_in_both_lists() {
        for (key, _) in SUPPORTED {
            assert!(!XL_ONLY.contains(key) && !XM_IGNORED.contains(key), "{key}");
        }
        for key in XL_ONLY {
            assert!(!XM_IGNORED.contains(key), "{key}");
        }
    }
}
