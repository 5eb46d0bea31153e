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
/// list; for PVH it writes them into the HVM part of the build info, which a PVH guest has
/// not, so they do nothing there (a warning says so).
const HVM_PV: Applies = Applies { pv: true, pvh: false, hvm: true };
/// The PVH shim's keys.
const PVH: Applies = Applies { pv: false, pvh: true, hvm: false };
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
    ("bootloader", ALL),
    ("bootloader_args", ALL),
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
    ("vfb", ALL),
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
    ("cpuid", ALL),
    ("altp2m", ALL),
    ("msr_relaxed", ALL),
    ("firmware", ALL),
    ("device_model_override", ALL),
    ("device_model_stubdomain_override", ALL),
    ("device_model_stubdomain_seclabel", ALL),
    ("device_model_user", ALL),
    ("stubdomain_kernel", ALL),
    ("stubdomain_cmdline", ALL),
    ("stubdomain_ramdisk", ALL),
    ("stubdomain_memory", ALL),
    ("device_model_args", ALL),
    ("device_model_args_pv", ALL),
    ("device_model_args_hvm", ALL),
    ("dm_restrict", ALL),
    ("firmware_override", HVM),
    ("bios_path_override", HVM),
    ("acpi_laptop_slate", HVM),
    ("nx", HVM),
    ("vpt_align", HVM),
    ("mmio_hole", HVM),
    ("altp2mhvm", HVM),
    ("smbios_firmware", HVM),
    ("acpi_firmware", HVM),
    ("ms_vm_genid", HVM),
    ("mca_caps", HVM),
    ("hdtype", HVM),
    ("vendor_device", HVM),
    ("gfx_passthru", HVM),
    ("vkb_device", HVM),
    ("spice", HVM),
    ("spiceport", HVM),
    ("spicetls_port", HVM),
    ("spicehost", HVM),
    ("spicedisable_ticketing", HVM),
    ("spicepasswd", HVM),
    ("spiceagent_mouse", HVM),
    ("spicevdagent", HVM),
    ("spice_clipboard_sharing", HVM),
    ("spiceusbredirection", HVM),
    ("spice_image_compression", HVM),
    ("spice_streaming_video", HVM),
    ("display", HVM_PV),
    ("xauthority", HVM_PV),
    ("usbctrl", ALL),
    ("usbdev", ALL),
    ("ioports", ALL),
    ("irqs", ALL),
    ("iomem", ALL),
    // xl reads rdm for every guest type, and gives its policy to PCI devices of any.
    ("rdm", ALL),
    ("rdm_mem_boundary", HVM),
    // Arm's in effect, but xl reads them on x86 too, and libxl takes them.
    ("dtdev", ALL),
    ("device_tree", ALL),
    // tuning.rs; vif2 is only warned about, as xl does.
    ("pool", ALL),
    ("seclabel", ALL),
    ("init_seclabel", ALL),
    ("period", ALL),
    ("slice", ALL),
    ("latency", ALL),
    ("extratime", ALL),
    ("cpus_soft", ALL),
    ("vnuma", ALL),
    ("max_event_channels", ALL),
    ("max_maptrack_frames", ALL),
    ("max_grant_version", ALL),
    ("vmtrace_buf_kb", ALL),
    ("oos", ALL),
    ("vpmu", ALL),
    ("driver_domain", ALL),
    ("xend_suspend_evtchn_compat", ALL),
    ("passthrough", ALL),
    ("pvshim", PVH),
    ("pvshim_path", PVH),
    ("pvshim_cmdline", PVH),
    ("pvshim_extra", PVH),
    ("gic_version", ALL),
    ("vuart", ALL),
    ("tee", ALL),
    ("vif2", ALL),
];

/// Keys xl 4.17 reads that this crate does not support: none today. A key xl gains in a later
/// version goes here until it is read.
const XL_ONLY: &[&str] = &[];

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

/// Keys xl reads only inside its branch for one guest type (e.g. `pae` among the HVM keys,
/// `e820_host` for PV) and never looks at for the others: in another type's file they change
/// nothing, and xl says nothing. We accept them there with a warning. The top-level display
/// keys are here too: in a PVH file xl writes them into the HVM part of the build info, which a
/// PVH guest has not. Keys xl refuses for some type (`timer_mode` on PV) stay errors.
const XL_SKIPS_ELSEWHERE: &[&str] = &[
    "vnc",
    "vnclisten",
    "vncdisplay",
    "vncpasswd",
    "vncunused",
    "sdl",
    "opengl",
    "keymap",
    "display",
    "xauthority",
    "serial",
    "boot",
    "usb",
    "usbversion",
    "usbdevice",
    "soundhw",
    "apic",
    "pae",
    "viridian",
    "hpet",
    "xen_platform_pci",
    "bios",
    "vga",
    "stdvga",
    "nographic",
    "acpi_s3",
    "acpi_s4",
    "e820_host",
    "firmware_override",
    "bios_path_override",
    "acpi_laptop_slate",
    "nx",
    "vpt_align",
    "mmio_hole",
    "altp2mhvm",
    "smbios_firmware",
    "acpi_firmware",
    "ms_vm_genid",
    "mca_caps",
    "hdtype",
    "vendor_device",
    "gfx_passthru",
    "vkb_device",
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
    "rdm_mem_boundary",
    "pvshim",
    "pvshim_path",
    "pvshim_cmdline",
    "pvshim_extra",
];

/// Whether xl skips `key`, without a word, in a guest of a type the key is not read for.
pub(crate) fn xl_skips_elsewhere(key: &str) -> bool {
    XL_SKIPS_ELSEWHERE.contains(&key)
}

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
        assert_eq!(classify("seclabel"), KeyClass::Supported(ALL));
        // Every key xl 4.17's parse_config_data reads is read (checked against xl_parse.c when
        // the list was emptied).
        assert!(XL_ONLY.is_empty());
        assert_eq!(classify("spice"), KeyClass::Supported(HVM));
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
    fn keys_xl_skips_elsewhere_are_supported_for_some_types_only() {
        for key in XL_SKIPS_ELSEWHERE {
            match classify(key) {
                KeyClass::Supported(applies) => assert_ne!(applies, ALL, "{key}"),
                other => panic!("{key}: {other:?}"),
            }
        }
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
