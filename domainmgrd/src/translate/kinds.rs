//! What each EVE virtualization mode gives the guest beyond its type, as EVE's Xen backend
//! writes it: the emulated hardware of HVM, FML and LEGACY apps (AHCI disks, emulated NICs,
//! permissive PCI, the boot order, the serial ports), and the display rules of every mode (a
//! PV framebuffer or an HVM VNC server with a USB tablet when VNC is asked for; otherwise no
//! VNC, and no graphics card at all unless the app has a GPU config, which zedmanager sets to
//! "legacy" for every VM).

use xenctl::{DomainKind, DomainSpec, HdType, NicType, VgaKind, VncSpec};

use crate::eve::{VmConfig, VmMode};

/// The emulated hardware `mode` gives an HVM guest, and the type of every vif: EVE's FML and
/// LEGACY apps get AHCI disks and an emulated NIC beside each PV one (`type=ioemu`), FML apps
/// also permissive PCI (returned: it applies to the devices their adapters resolve to). Every
/// other app's vifs are PV only (`type=vif`), HVM ones included.
pub(super) fn hardware(spec: &mut DomainSpec, mode: VmMode) -> bool {
    let legacy = matches!(mode, VmMode::FML | VmMode::LEGACY);
    if legacy {
        spec.device_model.hdtype = Some(HdType::Ahci);
    }
    let nic_type = if legacy { NicType::Ioemu } else { NicType::Vif };
    for vif in &mut spec.vifs {
        vif.nic_type = Some(nic_type);
    }
    if spec.kind == DomainKind::Hvm {
        // EVE prefers a CD-ROM over the disk, and always gives a serial port on a pty (the
        // app's serial adapters follow it).
        spec.boot_order = Some("dc".into());
        spec.serial_ports = vec!["pty".into()];
    }
    // EVE's FML mode also hides Xen's CPUID signature from the guest (`spoof_xen`), which
    // needs EVE's patched Xen; upstream Xen has no such switch (see the README).
    mode == VmMode::FML
}

/// EVE's display rules: VNC as asked (a PV framebuffer for PV apps, the device model's VNC
/// server with a USB tablet for the others), else no VNC and, without a GPU config, no
/// graphics at all.
pub(super) fn display(spec: &mut DomainSpec, vm: &VmConfig, gpu_config: &str, pv_mode: bool) {
    let display = (vm.vnc_display != 0).then_some(vm.vnc_display);
    let password = (!vm.vnc_passwd.is_empty()).then(|| vm.vnc_passwd.clone());
    if vm.enable_vnc {
        // A PV app's `vfb = ['vnc=1, ...']`, its only framebuffer, is the same device as an
        // HVM app's `vnc = 1`: libxl's VNC settings, one form in the spec (see xenctl's vfb.rs).
        spec.vnc = Some(VncSpec {
            listen: Some("0.0.0.0".into()),
            display,
            password,
            find_unused: None,
            enable_by_default: false,
        });
        if !pv_mode {
            spec.usb = Some(true);
            spec.usb_devices = vec!["tablet".into()];
        }
    } else if spec.kind == DomainKind::Hvm {
        // (xl reads these for HVM guests only; EVE writes them for PV apps too.)
        if gpu_config.is_empty() {
            spec.display.nographic = Some(true);
            spec.display.vga = Some(VgaKind::Off);
        }
        spec.display.vnc_disabled = true;
    }
}
