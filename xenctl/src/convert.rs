//! [`DomainSpec`] → `libxl_domain_config`, the way `xl` fills it from an xl.cfg file.
//!
//! The result is a [`LibxlDomainConfig`], an owning guard: the C struct is `_init`ed once when
//! made and `_dispose`d once when dropped. Every string and array libxl will free is allocated
//! with malloc and stored in the struct at once, so an error half-way leaks nothing.

use crate::error::Result;
use crate::raw::{self, Owned};
use crate::spec::DomainSpec;
use crate::types::DomainKind;
use crate::xlu::XluConfig;

/// A filled `libxl_domain_config`, owned (disposed on drop).
///
/// Made by [`DomainSpec::to_libxl`]; `xenctl`'s create and restore take a `DomainSpec` and do
/// this themselves, so most callers never see one. [`LibxlDomainConfig::as_raw`] exposes the C
/// struct for the rare caller that needs it.
pub struct LibxlDomainConfig {
    inner: Owned<xen_sys::libxl_domain_config>,
}

impl std::fmt::Debug for LibxlDomainConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibxlDomainConfig").finish_non_exhaustive()
    }
}

impl LibxlDomainConfig {
    /// An empty (just `_init`ed) config.
    pub(crate) fn empty() -> LibxlDomainConfig {
        LibxlDomainConfig { inner: Owned::new() }
    }

    /// The C struct, read-only.
    pub fn as_raw(&self) -> &xen_sys::libxl_domain_config {
        &self.inner
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut xen_sys::libxl_domain_config {
        self.inner.as_mut_ptr()
    }
}

impl DomainSpec {
    /// Validates the spec and converts it to libxl's domain config.
    ///
    /// Needs no Xen: the conversion only allocates and calls libxl's init helpers.
    pub fn to_libxl(&self) -> Result<LibxlDomainConfig> {
        self.validate()?;
        let mut cfg = LibxlDomainConfig::empty();
        let mut xlu = XluConfig::new(&self.name)?;
        let d: &mut xen_sys::libxl_domain_config = &mut cfg.inner;
        let kind = self.kind.to_libxl();

        d.c_info.type_ = kind;
        d.c_info.name = raw::strdup("name", &self.name)?;
        d.c_info.uuid.uuid = *self.uuid.as_bytes();

        let b = &mut d.b_info;
        // SAFETY: b_info was _init'ed with the config; init_type sets up the union for `kind`
        // (it may be called once, on a just-initialised build_info), as xl does.
        unsafe { xen_sys::libxl_domain_build_info_init_type(b, kind) };
        if self.memory_unstated {
            // As xl leaves them for a config without memory: libxl starts the guest with its
            // maximum, or its default.
            if let Some(max) = self.max_memory_mib {
                b.max_memkb = max * 1024;
            }
        } else {
            b.target_memkb = self.memory_mib * 1024;
            b.max_memkb = self.effective_max_memory_mib() * 1024;
        }
        // validate() bounds max_vcpus to 4096.
        if self.vcpus_unstated {
            // As xl leaves them for a config without vcpus: libxl then gives one vCPU online,
            // and a maximum of one unless maxvcpus says otherwise.
            b.max_vcpus = self.max_vcpus.map_or(0, |m| i32::try_from(m).unwrap_or(i32::MAX));
        } else {
            b.max_vcpus = i32::try_from(self.effective_max_vcpus()).unwrap_or(i32::MAX);
            fill_bitmap(&mut b.avail_vcpus, self.vcpus)?;
        }
        if !self.cpus.is_empty() {
            // Hard affinity for every vCPU, as xl does for `cpus = "..."`.
            let n = self.effective_max_vcpus() as usize;
            b.vcpu_hard_affinity = raw::calloc_array(n)?;
            b.num_vcpu_hard_affinity = count(n);
            for i in 0..n {
                // SAFETY: the array holds n zeroed (empty, disposable) bitmaps.
                let map = unsafe { &mut *b.vcpu_hard_affinity.add(i) };
                fill_bitmap_bits(map, &self.cpus)?;
            }
        } else if !self.vcpu_cpus.is_empty() {
            // vCPU i pinned to entry i, the rest unpinned, as xl's parse_vcpu_affinity does
            // for the list form; xl also turns NUMA placement off for it.
            let n = self.vcpu_cpus.len();
            b.vcpu_hard_affinity = raw::calloc_array(n)?;
            b.num_vcpu_hard_affinity = count(n);
            for (i, cpus) in self.vcpu_cpus.iter().enumerate() {
                // SAFETY: the array holds n zeroed (empty, disposable) bitmaps.
                let map = unsafe { &mut *b.vcpu_hard_affinity.add(i) };
                fill_bitmap_bits(map, cpus)?;
            }
            crate::devices::set_defbool(&mut b.numa_placement, Some(false));
        }
        b.kernel = raw::strdup_opt("kernel", self.kernel.as_deref())?;
        b.ramdisk = raw::strdup_opt("ramdisk", self.ramdisk.as_deref())?;
        b.cmdline = raw::strdup_opt("cmdline", self.cmdline.as_deref())?;
        b.bootloader = raw::strdup_opt("bootloader", self.bootloader.as_deref())?;
        fill_string_list(&mut b.bootloader_args, "bootloader_args", &self.bootloader_args)?;
        b.tsc_mode = self.tsc_mode.to_libxl();

        if self.kind == DomainKind::Hvm {
            // SAFETY: init_type(HVM) made `hvm` the active union member.
            let hvm = unsafe { &mut b.u.hvm };
            hvm.serial = raw::strdup_opt("serial", self.serial.as_deref())?;
            hvm.boot = raw::strdup_opt("boot", self.boot_order.as_deref())?;
            if let Some(vnc) = &self.vnc {
                vnc.fill_libxl("vnc", &mut hvm.vnc)?;
            }
        }
        self.fill_vfbs(d)?;

        d.disks = raw::calloc_array(self.disks.len())?;
        d.num_disks = count(self.disks.len());
        for (i, disk) in self.disks.iter().enumerate() {
            // SAFETY: disks has num_disks zeroed elements (zeroed is disposable); init each
            // once before filling it.
            let slot = unsafe { &mut *d.disks.add(i) };
            // SAFETY: slot is a valid element of the array.
            unsafe { xen_sys::libxl_device_disk_init(slot) };
            disk.fill_libxl(&format!("disks[{i}]"), slot)?;
        }

        d.nics = raw::calloc_array(self.vifs.len())?;
        d.num_nics = count(self.vifs.len());
        for (i, vif) in self.vifs.iter().enumerate() {
            // SAFETY: as for disks.
            let slot = unsafe { &mut *d.nics.add(i) };
            // SAFETY: slot is a valid element of the array.
            unsafe { xen_sys::libxl_device_nic_init(slot) };
            // xl numbers vifs by position (ARRAY_EXTEND_INIT in xl_parse.c) and lets a vif's
            // own `devid=` replace only its own number; libxl would give the same ids to a
            // new domain, but the config then says what the domain gets.
            slot.devid = count(i);
            vif.fill_libxl(&format!("vifs[{i}]"), &mut xlu, slot)?;
        }

        d.pcidevs = raw::calloc_array(self.pcis.len())?;
        d.num_pcidevs = count(self.pcis.len());
        for (i, pci) in self.pcis.iter().enumerate() {
            // SAFETY: as for disks.
            let slot = unsafe { &mut *d.pcidevs.add(i) };
            // SAFETY: slot is a valid element of the array.
            unsafe { xen_sys::libxl_device_pci_init(slot) };
            pci.bdf.to_libxl(slot);
            // One function (xl's parser sets this for every BDF without `.*`).
            slot.vfunc_mask = 1;
            slot.permissive = pci.permissive;
            slot.seize = pci.seize;
            slot.msitranslate = pci.msitranslate;
            slot.power_mgmt = pci.power_mgmt;
            if self.kind != DomainKind::Hvm {
                // xl copies `b_info.u.hvm.rdm.policy` into every PCI device whatever the
                // guest type; for a PV or PVH guest that reads the zeroed memory of the
                // union, STRICT (0). libxl ignores it outside HVM, but the config says it.
                slot.rdm_policy = xen_sys::LIBXL_RDM_RESERVE_POLICY_STRICT;
            }
            if let Some(policy) = pci.rdm_policy {
                // The device's own `rdm_policy=`, which xl reads over the guest's.
                slot.rdm_policy = crate::resources::RdmPolicy::to_libxl(Some(policy));
            }
        }
        self.fill_pv_devices(d)?;
        d.on_poweroff = self.on_poweroff.to_libxl();
        d.on_reboot = self.on_reboot.to_libxl();
        d.on_crash = self.on_crash.to_libxl();
        self.fill_options(d)?;
        self.fill_extras(d)?;
        self.host_defaults.fill_libxl(d)?;
        self.fill_usb(d)?;
        self.resources.fill_libxl(self.kind, d)?;
        self.fill_tuning(d)?;
        Ok(cfg)
    }
}

fn count(n: usize) -> i32 {
    // Device counts come from Vecs the caller built; anything near i32::MAX would have failed
    // to allocate long before.
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A bitmap with the first `bits` bits set, sized as libxl_cpu_bitmap_alloc(bits) would be.
fn fill_bitmap(map: &mut xen_sys::libxl_bitmap, bits: u32) -> Result<()> {
    let bytes = bits.div_ceil(8) as usize;
    let p = raw::calloc_array::<u8>(bytes)?;
    map.map = p;
    map.size = u32::try_from(bytes).unwrap_or(u32::MAX);
    for bit in 0..bits as usize {
        // SAFETY: bit / 8 < bytes, inside the allocation just made.
        unsafe { *p.add(bit / 8) |= 1 << (bit % 8) };
    }
    Ok(())
}

/// A bitmap with exactly `bits` set, sized to hold the highest.
pub(crate) fn fill_bitmap_bits(map: &mut xen_sys::libxl_bitmap, bits: &[u32]) -> Result<()> {
    let highest = bits.iter().copied().max().unwrap_or(0);
    let bytes = (highest / 8 + 1) as usize;
    let p = raw::calloc_array::<u8>(bytes)?;
    map.map = p;
    map.size = u32::try_from(bytes).unwrap_or(u32::MAX);
    for &bit in bits {
        let bit = bit as usize;
        // SAFETY: bit <= highest, so bit / 8 < bytes.
        unsafe { *p.add(bit / 8) |= 1 << (bit % 8) };
    }
    Ok(())
}

/// A NULL-terminated, malloc'd `char **` (libxl_string_list), or null when `items` is empty.
pub(crate) fn fill_string_list(list: &mut xen_sys::libxl_string_list, field: &str, items: &[String]) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let p = raw::calloc_array::<*mut std::ffi::c_char>(items.len() + 1)?;
    *list = p;
    for (i, item) in items.iter().enumerate() {
        let s = raw::strdup(&format!("{field}[{i}]"), item)?;
        // SAFETY: i < items.len(), inside the allocation; the last slot stays null.
        unsafe { *p.add(i) = s };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{DiskFormat, DiskSpec, Mac, VifSpec, VncSpec};
    use crate::pci::{Bdf, PciSpec};
    use crate::spec::TscMode;
    use crate::types::ShutdownAction;
    use uuid::Uuid;

    fn s(p: *const std::ffi::c_char) -> Option<String> {
        // SAFETY: test helper over strings owned by a live config.
        unsafe { raw::string_from_c(p) }
    }

    fn bits(map: &xen_sys::libxl_bitmap) -> Vec<usize> {
        // SAFETY: map.map has map.size bytes.
        let bytes = unsafe { std::slice::from_raw_parts(map.map, map.size as usize) };
        (0..bytes.len() * 8).filter(|b| bytes[b / 8] & (1 << (b % 8)) != 0).collect()
    }

    #[test]
    fn pv_spec_fills_every_field() {
        let uuid = Uuid::parse_str("6ba7b810-9dad-11d1-80b4-00c04fd430c8").unwrap();
        let mac: Mac = "00:16:3e:01:02:03".parse().unwrap();
        let spec = DomainSpec::pv("web")
            .uuid(uuid)
            .memory_mib(256)
            .max_memory_mib(512)
            .vcpus(2)
            .max_vcpus(4)
            .kernel("/boot/vmlinux")
            .ramdisk("/boot/initrd")
            .cmdline("console=hvc0 root=/dev/xvda")
            .disk(DiskSpec::new("/srv/web.img", "xvda"))
            .disk(DiskSpec::new("/srv/data.qcow2", "xvdb").format(DiskFormat::Qcow2).readonly())
            .vif(VifSpec {
                mac: Some(mac),
                vifname: Some("web0".into()),
                script: Some("vif-bridge".into()),
                rate: Some("1MB/s@20ms".into()),
                ..VifSpec::bridged("xenbr0")
            })
            .vif(VifSpec::bridged("xenbr1"))
            .pci(PciSpec { permissive: true, ..PciSpec::new("0000:03:00.0".parse::<Bdf>().unwrap()) })
            .on_shutdown(ShutdownAction::Destroy, ShutdownAction::Restart, ShutdownAction::Preserve)
            .tsc_mode(TscMode::Native);

        let cfg = spec.to_libxl().unwrap();
        let d = cfg.as_raw();
        assert_eq!(d.c_info.type_, xen_sys::LIBXL_DOMAIN_TYPE_PV);
        assert_eq!(s(d.c_info.name).as_deref(), Some("web"));
        assert_eq!(d.c_info.uuid.uuid, *uuid.as_bytes());

        let b = &d.b_info;
        assert_eq!(b.type_, xen_sys::LIBXL_DOMAIN_TYPE_PV);
        assert_eq!((b.target_memkb, b.max_memkb), (256 * 1024, 512 * 1024));
        assert_eq!(b.max_vcpus, 4);
        assert_eq!(bits(&b.avail_vcpus), vec![0, 1]);
        assert_eq!(s(b.kernel).as_deref(), Some("/boot/vmlinux"));
        assert_eq!(s(b.ramdisk).as_deref(), Some("/boot/initrd"));
        assert_eq!(s(b.cmdline).as_deref(), Some("console=hvc0 root=/dev/xvda"));
        assert!(b.bootloader.is_null() && b.bootloader_args.is_null());
        assert_eq!(b.tsc_mode, xen_sys::LIBXL_TSC_MODE_NATIVE);

        assert_eq!(d.num_disks, 2);
        // SAFETY: num_disks initialised elements.
        let disks = unsafe { std::slice::from_raw_parts(d.disks, 2) };
        assert_eq!(s(disks[0].pdev_path).as_deref(), Some("/srv/web.img"));
        assert_eq!(s(disks[0].vdev).as_deref(), Some("xvda"));
        assert_eq!((disks[0].format, disks[0].readwrite, disks[0].is_cdrom), (xen_sys::LIBXL_DISK_FORMAT_RAW, 1, 0));
        assert_eq!((disks[1].format, disks[1].readwrite), (xen_sys::LIBXL_DISK_FORMAT_QCOW2, 0));
        assert_eq!(disks[1].backend, xen_sys::LIBXL_DISK_BACKEND_UNKNOWN);

        assert_eq!(d.num_nics, 2);
        // SAFETY: num_nics initialised elements.
        let nics = unsafe { std::slice::from_raw_parts(d.nics, 2) };
        assert_eq!(s(nics[0].bridge).as_deref(), Some("xenbr0"));
        assert_eq!(nics[0].mac, mac.0);
        assert_eq!(s(nics[0].ifname).as_deref(), Some("web0"));
        assert_eq!(s(nics[0].script).as_deref(), Some("vif-bridge"));
        // xl's MB is 10^6 bytes: 1 MB/s over 20 ms is 20000 bytes.
        assert_eq!((nics[0].rate_bytes_per_interval, nics[0].rate_interval_usecs), (20000, 20000));
        assert_eq!((nics[0].devid, nics[1].devid), (0, 1), "numbered by position, as xl does");
        assert_eq!(s(nics[1].bridge).as_deref(), Some("xenbr1"));
        assert_eq!(nics[1].mac, [0; 6], "libxl picks a MAC");

        assert_eq!(d.num_pcidevs, 1);
        // SAFETY: one initialised element.
        let pci = unsafe { &*d.pcidevs };
        assert_eq!((pci.domain, pci.bus, pci.dev, pci.func, pci.permissive), (0, 3, 0, 0, true));
        assert_eq!(pci.rdm_policy, xen_sys::LIBXL_RDM_RESERVE_POLICY_STRICT, "as xl writes it for PV");

        assert_eq!(d.on_poweroff, xen_sys::LIBXL_ACTION_ON_SHUTDOWN_DESTROY);
        assert_eq!(d.on_reboot, xen_sys::LIBXL_ACTION_ON_SHUTDOWN_RESTART);
        assert_eq!(d.on_crash, xen_sys::LIBXL_ACTION_ON_SHUTDOWN_PRESERVE);
        assert_eq!((d.num_vfbs, d.num_vkbs), (0, 0));
    }

    #[test]
    fn bootloader_and_vnc_for_pv() {
        let spec = DomainSpec::pv("pyg").bootloader("pygrub", vec!["--entry=1".into(), "-q".into()]).vnc(VncSpec {
            listen: Some("0.0.0.0".into()),
            display: Some(3),
            ..VncSpec::default()
        });
        let cfg = spec.to_libxl().unwrap();
        let d = cfg.as_raw();
        assert_eq!(s(d.b_info.bootloader).as_deref(), Some("pygrub"));
        // SAFETY: a NULL-terminated list of two strings.
        let args = unsafe { std::slice::from_raw_parts(d.b_info.bootloader_args, 3) };
        assert_eq!(
            (s(args[0]).as_deref(), s(args[1]).as_deref(), args[2].is_null()),
            (Some("--entry=1"), Some("-q"), true)
        );
        assert_eq!((d.num_vfbs, d.num_vkbs), (1, 1));
        // SAFETY: one initialised vfb and vkb.
        let (vfb, vkb) = unsafe { (&*d.vfbs, &*d.vkbs) };
        assert_eq!((vfb.devid, vkb.devid), (0, 0));
        assert_eq!(vfb.vnc.enable.val, 1);
        assert_eq!(s(vfb.vnc.listen).as_deref(), Some("0.0.0.0"));
        assert_eq!(vfb.vnc.display, 3);
        assert_eq!(vfb.vnc.findunused.val, 0, "left to libxl");
    }

    #[test]
    fn hvm_spec_fills_the_hvm_union() {
        let spec = DomainSpec::hvm("win")
            .memory_mib(2048)
            .vcpus(4)
            .serial("pty")
            .vnc(VncSpec { password: Some("s3cret".into()), find_unused: Some(true), ..VncSpec::default() })
            .disk(DiskSpec::from_xl("vdev=hdc,devtype=cdrom,target=/srv/win.iso").unwrap());
        let mut spec = spec;
        spec.boot_order = Some("dc".into());
        let cfg = spec.to_libxl().unwrap();
        let d = cfg.as_raw();
        assert_eq!((d.c_info.type_, d.b_info.type_), (xen_sys::LIBXL_DOMAIN_TYPE_HVM, xen_sys::LIBXL_DOMAIN_TYPE_HVM));
        assert_eq!(bits(&d.b_info.avail_vcpus), vec![0, 1, 2, 3]);
        // SAFETY: HVM is the active member.
        let hvm = unsafe { &d.b_info.u.hvm };
        assert_eq!(s(hvm.serial).as_deref(), Some("pty"));
        assert_eq!(s(hvm.boot).as_deref(), Some("dc"));
        assert_eq!((hvm.vnc.enable.val, hvm.vnc.findunused.val), (1, 1));
        assert_eq!(s(hvm.vnc.passwd).as_deref(), Some("s3cret"));
        assert_eq!(d.num_vfbs, 0, "HVM VNC is the device model's, not a vfb");
        // SAFETY: one initialised disk.
        let cd = unsafe { &*d.disks };
        assert_eq!((cd.is_cdrom, cd.removable, cd.readwrite), (1, 1, 0));
    }

    #[test]
    fn cpu_pinning_applies_to_every_vcpu() {
        let cfg = DomainSpec::pv("p").kernel("/k").vcpus(2).max_vcpus(3).cpus(vec![1, 9]).to_libxl().unwrap();
        let b = &cfg.as_raw().b_info;
        assert_eq!(b.num_vcpu_hard_affinity, 3);
        // SAFETY: three initialised bitmaps.
        let maps = unsafe { std::slice::from_raw_parts(b.vcpu_hard_affinity, 3) };
        for m in maps {
            assert_eq!(bits(m), vec![1, 9]);
        }
        let mut per_vcpu = DomainSpec::pv("p").kernel("/k").vcpus(3);
        per_vcpu.vcpu_cpus = vec![vec![2], vec![3, 4]];
        let cfg = per_vcpu.to_libxl().unwrap();
        let b = &cfg.as_raw().b_info;
        assert_eq!((b.num_vcpu_hard_affinity, b.numa_placement.val), (2, -1), "the third vCPU unpinned");
        // SAFETY: two initialised bitmaps.
        let maps = unsafe { std::slice::from_raw_parts(b.vcpu_hard_affinity, 2) };
        assert_eq!((bits(&maps[0]), bits(&maps[1])), (vec![2], vec![3, 4]));
        per_vcpu.cpus = vec![1];
        assert!(per_vcpu.validate().unwrap_err().to_string().contains("not both"));
        let none = DomainSpec::pv("p").kernel("/k").to_libxl().unwrap();
        assert_eq!(none.as_raw().b_info.num_vcpu_hard_affinity, 0);
        assert!(DomainSpec::pv("p").kernel("/k").cpus(vec![5000]).validate().is_err());
    }

    #[test]
    fn an_explicit_vif_devid_changes_only_its_own_number() {
        let own = VifSpec { devid: Some(5), ..VifSpec::default() };
        let spec = DomainSpec::pv("n").kernel("/k").vif(VifSpec::default()).vif(own).vif(VifSpec::default());
        let cfg = spec.to_libxl().unwrap();
        // SAFETY: three initialised nics.
        let nics = unsafe { std::slice::from_raw_parts(cfg.as_raw().nics, 3) };
        assert_eq!(nics.iter().map(|n| n.devid).collect::<Vec<_>>(), [0, 5, 2], "xl's numbering");
    }

    #[test]
    fn pvh_spec() {
        let cfg = DomainSpec::pvh("p").kernel("/k").vcpus(9).to_libxl().unwrap();
        let d = cfg.as_raw();
        assert_eq!(d.b_info.type_, xen_sys::LIBXL_DOMAIN_TYPE_PVH);
        assert_eq!(d.b_info.avail_vcpus.size, 2);
        assert_eq!(bits(&d.b_info.avail_vcpus), (0..9).collect::<Vec<_>>());
    }

    #[test]
    fn invalid_specs_fail_before_allocating() {
        let err = DomainSpec::pv("x").to_libxl().unwrap_err();
        assert!(err.to_string().contains("needs a kernel"));
        let err = DomainSpec::pv("x").kernel("/k").cmdline("a\0b").to_libxl().unwrap_err();
        assert_eq!(err.to_string(), "invalid cmdline \"a\\0b\": contains a NUL byte");
        let bad_rate = VifSpec { rate: Some("lots".into()), ..VifSpec::default() };
        let err = DomainSpec::pv("x").kernel("/k").vif(bad_rate).to_libxl().unwrap_err();
        assert!(err.to_string().starts_with("invalid vifs[0].rate"), "{err}");
    }
}
