//! What the adapter policy needs from dom0 itself: the PCI address behind a network interface
//! (from sysfs) and loading or unloading the USB input and storage modules (with modprobe). The
//! sysfs root and the modprobe program are settings, so tests use a fake tree and program.

use std::path::PathBuf;
use std::process::Command;

use xenctl::Bdf;

/// The USB modules EVE's domainmgr loads for dom0 when `debug.enable.usb` is on.
pub const USB_MODULES: [&str; 4] = ["usbhid", "usbkbd", "usbmouse", "usb_storage"];

/// dom0's sysfs and modprobe.
#[derive(Debug, Clone)]
pub struct Host {
    /// Where sysfs is mounted (`/sys`).
    pub sysfs: PathBuf,
    /// The modprobe program (`modprobe`).
    pub modprobe: PathBuf,
}

impl Default for Host {
    fn default() -> Self {
        Host { sysfs: PathBuf::from("/sys"), modprobe: PathBuf::from("modprobe") }
    }
}

impl Host {
    /// The PCI device behind network interface `ifname`, if it is a PCI device.
    pub fn pci_of_ifname(&self, ifname: &str) -> Option<Bdf> {
        if ifname.is_empty() || ifname.contains('/') {
            return None;
        }
        let link = std::fs::read_link(self.sysfs.join("class/net").join(ifname).join("device")).ok()?;
        link.file_name()?.to_str()?.parse().ok()
    }

    /// Whether dom0 has the network interface `ifname` (in sysfs, as netlink would say).
    pub fn has_interface(&self, ifname: &str) -> bool {
        !ifname.is_empty() && !ifname.contains('/') && self.sysfs.join("class/net").join(ifname).exists()
    }

    /// Loads (or, with `load == false`, unloads) the USB input and storage modules.
    pub fn usb_modules(&self, load: bool) -> Result<(), String> {
        let mut cmd = Command::new(&self.modprobe);
        if !load {
            cmd.arg("-r");
        }
        cmd.arg("-a").args(USB_MODULES);
        let what = if load { "load" } else { "unload" };
        let out = cmd.output().map_err(|e| format!("cannot run {}: {e}", self.modprobe.display()))?;
        if out.status.success() {
            log::info!("USB modules {what}ed ({})", USB_MODULES.join(", "));
            Ok(())
        } else {
            Err(format!(
                "{} failed to {what} the USB modules ({}): {}",
                self.modprobe.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn finds_the_pci_address_of_an_interface_in_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("class/net/eth0");
        std::fs::create_dir_all(&net).unwrap();
        let dev = dir.path().join("devices/pci0000:00/0000:00:02.0");
        std::fs::create_dir_all(&dev).unwrap();
        symlink("../../../devices/pci0000:00/0000:00:02.0", net.join("device")).unwrap();
        std::fs::create_dir_all(dir.path().join("class/net/lo")).unwrap();
        let host = Host { sysfs: dir.path().into(), ..Host::default() };
        assert_eq!(host.pci_of_ifname("eth0"), Some("0000:00:02.0".parse().unwrap()));
        assert_eq!(host.pci_of_ifname("lo"), None);
        assert_eq!(host.pci_of_ifname("../eth0"), None);
    }

    #[test]
    fn runs_modprobe_with_the_modules_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let fake = dir.path().join("modprobe");
        std::fs::write(&fake, format!("#!/bin/sh\necho \"$@\" >> {}\n[ \"$1\" != -r ]\n", log.display())).unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&fake).unwrap().permissions(), 0o755);
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let host = Host { modprobe: fake, ..Host::default() };
        host.usb_modules(true).unwrap();
        let err = host.usb_modules(false).unwrap_err();
        assert!(err.contains("failed to unload the USB modules"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "-a usbhid usbkbd usbmouse usb_storage\n-r -a usbhid usbkbd usbmouse usb_storage\n"
        );
    }
}
