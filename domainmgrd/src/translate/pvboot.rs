//! How an EVE app in PV mode boots, as EVE's Xen backend and its start script decide: an app
//! that brings no kernel boots firmware in its place (EVE's OVMF built for PVH), and where the
//! host runs HVM guests every PV app is created as PVH (`xen-start` adds `type="pvh"` when
//! `xl info`'s virt_caps say hvm). Where the host cannot, EVE would hand the PVH firmware to a
//! PV domain, which cannot boot it; we boot such an app as PV through GRUB's PV image instead,
//! which reads the same disk, and the status says so.

use xenctl::DomainKind;

/// What this host gives EVE's PV apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvBoot {
    /// PV apps run as PVH: the host runs HVM guests (libxl's `cap_hvm`, `xl info`'s virt_caps)
    /// and the operator has not turned it off.
    pub as_pvh: bool,
    /// Why they do not, when they do not (for the status).
    pub why_not_pvh: String,
    /// The firmware a PV app without a kernel boots as PVH (EVE's path by default).
    pub pvh_firmware: String,
    /// The GRUB image such an app boots as PV where PVH is not had.
    pub pv_grub: String,
}

impl PvBoot {
    /// EVE's PVH firmware (OVMF's Xen build), where EVE's xen-tools put it.
    pub const PVH_FIRMWARE: &str = "/usr/lib/xen/boot/ovmf-pvh.bin";
    /// GRUB's 64-bit PV image, where Debian's grub-xen-host puts it.
    pub const PV_GRUB: &str = "/usr/lib/grub-xen/grub-x86_64-xen.bin";

    /// EVE's choice on a host that runs HVM guests, with the default images.
    pub fn eve_default() -> PvBoot {
        PvBoot {
            as_pvh: true,
            why_not_pvh: String::new(),
            pvh_firmware: PvBoot::PVH_FIRMWARE.into(),
            pv_grub: PvBoot::PV_GRUB.into(),
        }
    }

    /// EVE's choice for a host that does (`cap_hvm`) or does not run HVM guests, unless the
    /// operator turned PVH off (`allow_pvh` false).
    pub fn for_host(cap_hvm: bool, allow_pvh: bool, pvh_firmware: String, pv_grub: String) -> PvBoot {
        let why_not_pvh = match (cap_hvm, allow_pvh) {
            (_, false) => "PVH is turned off (--pv-as-pvh=never)".to_string(),
            (false, true) => "the host cannot run HVM guests (no hvm in Xen's virt_caps)".to_string(),
            (true, true) => String::new(),
        };
        PvBoot { as_pvh: cap_hvm && allow_pvh, why_not_pvh, pvh_firmware, pv_grub }
    }

    /// The domain type, kernel and status note for a PV app that brings `kernel` (or none)
    /// and does or does not pass devices through. libxl 4.17 passes none through to a PVH
    /// guest ("passthrough not yet supported for x86 PVH guests"): such an app stays PV, where
    /// EVE's `type="pvh"` would make the create fail.
    pub(super) fn decide(&self, kernel: Option<String>, passthrough: bool) -> (DomainKind, String, Option<String>) {
        if self.as_pvh && passthrough {
            let why = "libxl passes no devices through to PVH guests";
            return match kernel {
                Some(k) => (DomainKind::Pv, k, Some(format!("PV app run as PV, not PVH: {why}"))),
                None => {
                    let note =
                        format!("PV app run as PV through GRUB {} instead of the PVH firmware: {why}", self.pv_grub);
                    (DomainKind::Pv, self.pv_grub.clone(), Some(note))
                }
            };
        }
        match (self.as_pvh, kernel) {
            (true, Some(k)) => {
                (DomainKind::Pvh, k, Some("PV app run as PVH, as EVE runs it on a host with HVM".into()))
            }
            (true, None) => {
                let note = format!("PV app run as PVH, booting the firmware {} (it has no kernel)", self.pvh_firmware);
                (DomainKind::Pvh, self.pvh_firmware.clone(), Some(note))
            }
            (false, Some(k)) => (DomainKind::Pv, k, None),
            (false, None) => {
                let note = format!(
                    "PV app run as PV through GRUB {} instead of the PVH firmware: {}",
                    self.pv_grub, self.why_not_pvh
                );
                (DomainKind::Pv, self.pv_grub.clone(), Some(note))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pv_apps_run_as_pvh_where_the_host_runs_hvm_and_through_grub_where_not() {
        let hvm = PvBoot::eve_default();
        let (kind, kernel, note) = hvm.decide(None, false);
        assert_eq!((kind, kernel.as_str()), (DomainKind::Pvh, PvBoot::PVH_FIRMWARE));
        assert!(note.unwrap().contains("booting the firmware /usr/lib/xen/boot/ovmf-pvh.bin"));
        assert_eq!(hvm.decide(Some("/k".into()), false).0, DomainKind::Pvh, "EVE's xen-start makes every PV app PVH");

        let no_hvm = PvBoot::for_host(false, true, "/fw".into(), "/grub".into());
        let (kind, kernel, note) = no_hvm.decide(None, false);
        assert_eq!((kind, kernel.as_str()), (DomainKind::Pv, "/grub"));
        assert_eq!(
            note.as_deref(),
            Some(
                "PV app run as PV through GRUB /grub instead of the PVH firmware: the host cannot run HVM guests (no hvm in Xen's virt_caps)"
            )
        );
        assert_eq!(no_hvm.decide(Some("/k".into()), false), (DomainKind::Pv, "/k".into(), None));

        // Passing devices through keeps an app PV (libxl refuses them to PVH guests).
        let (kind, kernel, note) = hvm.decide(None, true);
        assert_eq!((kind, kernel.as_str()), (DomainKind::Pv, PvBoot::PV_GRUB));
        assert!(note.unwrap().ends_with("libxl passes no devices through to PVH guests"));
        assert_eq!(hvm.decide(Some("/k".into()), true).0, DomainKind::Pv);
        assert_eq!(no_hvm.decide(Some("/k".into()), true), (DomainKind::Pv, "/k".into(), None));

        let off = PvBoot::for_host(true, false, "/fw".into(), "/grub".into());
        assert!(!off.as_pvh);
        assert!(off.decide(None, false).2.unwrap().ends_with("PVH is turned off (--pv-as-pvh=never)"));
    }
}
