//! Which devices of a domain the daemon sets up itself (`xen-hotplug`) instead of Xen's hotplug
//! scripts, and the one place that decides it: [`prepare`] gives those devices the no-op
//! script before libxl sees the spec; the domain thread then calls
//! [`xen_hotplug::NativeDevices::attach`] before it unpauses.
//!
//! Taken over: every vif in dom0 with the default script and neither `ip=` nor `gatewaydev=`
//! (those ask for the scripts' iptables or routing), and, for PV and PVH guests without a
//! bootloader, every raw disk in dom0 with the default script that is not a CD-ROM (blkback on
//! a block device, or a file on a loop device). Left to libxl and the scripts: an HVM guest's
//! disks (QEMU opens an emulated disk's path while the domain is built, before the daemon could
//! give it one), a bootloader's disks (libxl attaches them to dom0 first), and any device whose
//! config names its own `script=`.

use std::path::Path;

use xenctl::{DiskBackend, DiskFormat, DomainKind, DomainSpec};

/// Gives the devices the daemon sets up itself the no-op `script`; how many it took.
pub fn prepare(spec: &mut DomainSpec, script: &Path) -> usize {
    let script = script.display().to_string();
    let mut taken = 0;
    for vif in &mut spec.vifs {
        if vif.script.is_none() && vif.backend_domain.is_none() && vif.ip.is_none() && vif.gatewaydev.is_none() {
            vif.script = Some(script.clone());
            taken += 1;
        }
    }
    if spec.kind == DomainKind::Hvm || spec.bootloader.is_some() {
        return taken;
    }
    for disk in &mut spec.disks {
        if disk.script.is_none()
            && disk.backend_domain.is_none()
            && disk.format == DiskFormat::Raw
            && matches!(disk.backend, DiskBackend::Auto | DiskBackend::Phy)
            && !disk.cdrom
            && disk.target.as_deref().is_some_and(|t| !t.is_empty())
        {
            disk.script = Some(script.clone());
            disk.backend = DiskBackend::Phy;
            taken += 1;
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use xenctl::{DiskSpec, VifSpec};

    use super::*;

    const NOOP: &str = "/usr/libexec/domainmgrd/native-hotplug";

    #[test]
    fn default_vifs_and_pv_raw_disks_are_taken_the_rest_left_to_the_scripts() {
        let mut spec = DomainSpec::pv("g");
        spec.vifs = vec![
            VifSpec { bridge: Some("xenbr0".into()), ..VifSpec::default() },
            VifSpec { script: Some("vif-route".into()), ..VifSpec::default() },
            VifSpec { ip: Some("10.0.0.2".into()), ..VifSpec::default() },
        ];
        spec.disks = vec![
            DiskSpec::new("/img/a.img", "xvda"),
            DiskSpec::new("/img/b.qcow2", "xvdb").format(DiskFormat::Qcow2),
            DiskSpec { script: Some("block-iscsi".into()), ..DiskSpec::new("iqn...", "xvdc") },
            DiskSpec { cdrom: true, ..DiskSpec::new("/img/c.iso", "xvdd") },
        ];
        assert_eq!(prepare(&mut spec, Path::new(NOOP)), 2);
        let scripts: Vec<_> = spec.vifs.iter().map(|v| v.script.as_deref()).collect();
        assert_eq!(scripts, [Some(NOOP), Some("vif-route"), None]);
        let scripts: Vec<_> = spec.disks.iter().map(|d| d.script.as_deref()).collect();
        assert_eq!(scripts, [Some(NOOP), None, Some("block-iscsi"), None]);
        assert_eq!(spec.disks[0].backend, DiskBackend::Phy);
    }

    #[test]
    fn hvm_and_bootloader_guests_keep_the_block_script() {
        for mut spec in [DomainSpec::hvm("h"), DomainSpec { bootloader: Some("pygrub".into()), ..DomainSpec::pv("p") }]
        {
            spec.vifs = vec![VifSpec::default()];
            spec.disks = vec![DiskSpec::new("/img/a.img", "xvda")];
            assert_eq!(prepare(&mut spec, Path::new(NOOP)), 1);
            assert_eq!(spec.disks[0].script, None);
        }
    }
}
