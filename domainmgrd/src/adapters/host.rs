//! What the adapter policy needs from dom0 itself: the PCI address behind a network interface,
//! whether a display adapter is the boot VGA, whether an NVMe drive holds dom0's storage (from
//! sysfs, procfs and `zpool`), which USB device sits at a port (sysfs), and loading or
//! unloading the USB input and storage modules (with modprobe). The roots and programs are
//! settings, so tests use fake trees and programs.

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
    /// Where procfs is mounted (`/proc`): mounts and swaps.
    pub procfs: PathBuf,
    /// The zpool program (`zpool`); a host without it has no ZFS pool.
    pub zpool: PathBuf,
}

impl Default for Host {
    fn default() -> Self {
        Host {
            sysfs: PathBuf::from("/sys"),
            modprobe: PathBuf::from("modprobe"),
            procfs: PathBuf::from("/proc"),
            zpool: PathBuf::from("zpool"),
        }
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

    /// Whether the PCI display adapter `bdf` is the one the firmware booted on (its sysfs
    /// `boot_vga` is 1), as EVE's `PCIIsBootVga` reads it: dom0's console is there.
    pub fn is_boot_vga(&self, bdf: Bdf) -> bool {
        std::fs::read_to_string(self.pci_dir(bdf).join("boot_vga")).is_ok_and(|t| t.trim() == "1")
    }

    /// Why the NVMe controller `bdf` holds dom0's storage, if it does: one of its namespaces
    /// (or their partitions) is mounted, used for swap, under a device mapper or md device,
    /// or in a ZFS pool. EVE asks its ZFS manager and the mount table; without a ZFS manager
    /// here, `zpool list` says which disks pools use. A `zpool` that exists but fails counts
    /// as in use (EVE keeps the drive too while its ZFS manager has not started).
    pub fn nvme_in_use(&self, bdf: Bdf) -> Option<String> {
        let Ok(controllers) = std::fs::read_dir(self.pci_dir(bdf).join("nvme")) else {
            return None; // not an NVMe controller, or not bound to the nvme driver
        };
        let controllers: Vec<String> =
            controllers.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        // nvme0 -> nvme0n1, nvme0n1p2 (not nvme01...).
        let ours = |dev: &str| {
            let name = dev.rsplit('/').next().unwrap_or(dev);
            controllers.iter().any(|c| name.strip_prefix(c.as_str()).is_some_and(|rest| rest.starts_with('n')))
        };
        for table in ["mounts", "swaps"] {
            let text = std::fs::read_to_string(self.procfs.join(table)).unwrap_or_default();
            if let Some(dev) = text.lines().filter_map(|l| l.split_whitespace().next()).find(|d| ours(d)) {
                return Some(format!("{dev} is in {}", self.procfs.join(table).display()));
            }
        }
        let blocks = std::fs::read_dir(self.sysfs.join("class/block")).into_iter().flatten().flatten();
        for block in blocks {
            let name = block.file_name().to_string_lossy().into_owned();
            if !ours(&name) {
                continue;
            }
            let holders = std::fs::read_dir(block.path().join("holders")).into_iter().flatten().flatten();
            if let Some(h) = holders.into_iter().next() {
                return Some(format!("{name} is held by {}", h.file_name().to_string_lossy()));
            }
        }
        let mut zpool = Command::new(&self.zpool);
        zpool.args(["list", "-vHP"]).stdin(std::process::Stdio::null());
        zpool.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        match crate::spawn_when_not_busy(&mut zpool).and_then(std::process::Child::wait_with_output) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(format!("cannot run {} ({e}), so it may be in a ZFS pool", self.zpool.display())),
            Ok(out) if !out.status.success() => Some(format!(
                "{} failed ({}), so it may be in a ZFS pool",
                self.zpool.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Ok(out) => String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .find(|d| d.starts_with("/dev/") && ours(d))
                .map(|d| format!("{d} is in a ZFS pool")),
        }
    }

    /// The USB device at `bus`, port path `port` (EVE's `UsbAddr` `1:2.3` is bus 1, port 2.3):
    /// its bus and device numbers, which libxl names a host device by.
    pub fn usb_device_at(&self, bus: u16, port: &str) -> Result<(u8, u8), String> {
        if port.is_empty() || !port.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!("port {port:?} is not a USB port path like 2 or 2.3"));
        }
        let dir = self.sysfs.join("bus/usb/devices").join(format!("{bus}-{port}"));
        let read = |f: &str| -> Result<u8, String> {
            let text = std::fs::read_to_string(dir.join(f))
                .map_err(|e| format!("no USB device at bus {bus} port {port} ({}: {e})", dir.display()))?;
            text.trim()
                .parse()
                .map_err(|_| format!("{}/{f} is {:?}, not a number up to 255", dir.display(), text.trim()))
        };
        Ok((read("busnum")?, read("devnum")?))
    }

    fn pci_dir(&self, bdf: Bdf) -> PathBuf {
        self.sysfs.join("bus/pci/devices").join(bdf.to_string())
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

    fn fake_program(dir: &std::path::Path, name: &str, script: &str) -> PathBuf {
        let path = dir.join(name);
        crate::testing::write_script(&path, &format!("#!/bin/sh\n{script}\n"));
        path
    }

    #[test]
    fn the_boot_vga_is_the_one_sysfs_marks() {
        let dir = tempfile::tempdir().unwrap();
        for (bdf, flag) in [("0000:00:02.0", "1\n"), ("0000:01:00.0", "0\n")] {
            let d = dir.path().join("bus/pci/devices").join(bdf);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("boot_vga"), flag).unwrap();
        }
        let host = Host { sysfs: dir.path().into(), ..Host::default() };
        assert!(host.is_boot_vga("0000:00:02.0".parse().unwrap()));
        assert!(!host.is_boot_vga("0000:01:00.0".parse().unwrap()));
        assert!(!host.is_boot_vga("0000:05:00.0".parse().unwrap()), "no boot_vga file: not a VGA device");
    }

    #[test]
    fn an_nvme_drive_is_in_use_when_mounted_swapped_held_or_in_a_zfs_pool() {
        let dir = tempfile::tempdir().unwrap();
        let (sys, proc_) = (dir.path().join("sys"), dir.path().join("proc"));
        for (bdf, ctrl) in [("0000:04:00.0", "nvme0"), ("0000:05:00.0", "nvme1"), ("0000:06:00.0", "nvme10")] {
            std::fs::create_dir_all(sys.join("bus/pci/devices").join(bdf).join("nvme").join(ctrl)).unwrap();
        }
        std::fs::create_dir_all(&proc_).unwrap();
        std::fs::write(proc_.join("mounts"), "/dev/nvme0n1p1 /persist ext4 rw 0 0\nproc /proc proc rw 0 0\n").unwrap();
        std::fs::write(proc_.join("swaps"), "Filename Type Size Used Priority\n").unwrap();
        let no_zpool = dir.path().join("no-zpool");
        let mut host = Host { sysfs: sys.clone(), procfs: proc_.clone(), zpool: no_zpool, ..Host::default() };
        let bdf = |s: &str| s.parse::<Bdf>().unwrap();
        assert_eq!(
            host.nvme_in_use(bdf("0000:04:00.0")).as_deref(),
            Some(format!("/dev/nvme0n1p1 is in {}/mounts", proc_.display()).as_str())
        );
        assert_eq!(host.nvme_in_use(bdf("0000:05:00.0")), None, "nvme1 is not nvme10's prefix match either");
        assert_eq!(host.nvme_in_use(bdf("0000:07:00.0")), None, "not an NVMe controller");
        // Under LVM: its namespace has a holder.
        std::fs::create_dir_all(sys.join("class/block/nvme1n1/holders/dm-0")).unwrap();
        assert_eq!(host.nvme_in_use(bdf("0000:05:00.0")).as_deref(), Some("nvme1n1 is held by dm-0"));
        // In a ZFS pool, as zpool lists it; a zpool that fails keeps every drive.
        host.zpool = fake_program(dir.path(), "zpool", "echo 'persist\t1T'; echo '\t/dev/nvme10n1p9\t1T'");
        assert_eq!(host.nvme_in_use(bdf("0000:06:00.0")).as_deref(), Some("/dev/nvme10n1p9 is in a ZFS pool"));
        host.zpool = fake_program(dir.path(), "zpool2", "echo no pools >&2; exit 1");
        assert!(host.nvme_in_use(bdf("0000:06:00.0")).is_some_and(|w| w.contains("may be in a ZFS pool")));
    }

    #[test]
    fn a_usb_port_path_names_the_device_libxl_wants() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("bus/usb/devices/1-2.3");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("busnum"), "1\n").unwrap();
        std::fs::write(d.join("devnum"), "7\n").unwrap();
        let host = Host { sysfs: dir.path().into(), ..Host::default() };
        assert_eq!(host.usb_device_at(1, "2.3"), Ok((1, 7)));
        assert!(host.usb_device_at(1, "4").unwrap_err().contains("no USB device at bus 1 port 4"));
        assert!(host.usb_device_at(1, "../x").unwrap_err().contains("not a USB port path"));
    }

    #[test]
    fn runs_modprobe_with_the_modules_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let fake = dir.path().join("modprobe");
        crate::testing::write_script(
            &fake,
            &format!("#!/bin/sh\necho \"$@\" >> {}\n[ \"$1\" != -r ]\n", log.display()),
        );
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
