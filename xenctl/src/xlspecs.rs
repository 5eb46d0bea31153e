//! The small languages inside xl.cfg values, read the way `xl` reads them (tools/xl/xl_parse.c):
//! vif specs ([`VifSpec::from_xl`]) and PCI specs (through libxlutil's own parser). Each
//! refuses what xl would accept but this crate cannot represent, instead of dropping it, and
//! says why.

use crate::cnum::strtoul;
use crate::devices::{Mac, NicType, VifSpec};
use crate::error::{Error, Result};
use crate::pci::{Bdf, PciSpec};
use crate::raw::{self, Owned};
use crate::xlu::XluConfig;

/// The vif options xl has for COLO replication, which this crate does not support.
const COLO_PREFIXES: [&str; 2] = ["colo_", "forwarddev"];

impl VifSpec {
    /// Parses an xl vif spec (xl-network-configuration(5)), e.g.
    /// `"bridge=xenbr0,mac=00:16:3e:00:00:01,rate=10Mb/s"`, as `xl` does: comma-separated
    /// `key=value` options, leading spaces ignored, a later option replacing an earlier one,
    /// `""` meaning all defaults.
    ///
    /// An unknown option is ignored with a warning, as xl ignores it ("unrecognized
    /// argument"); COLO options and a malformed MAC, rate, MTU or devid are errors.
    pub fn from_xl(spec: &str) -> Result<VifSpec> {
        let mut warnings = Vec::new();
        let vif = VifSpec::from_xl_noting(spec, &mut warnings)?;
        for w in warnings {
            log::warn!("vif {spec:?}: {w}");
        }
        Ok(vif)
    }

    /// [`VifSpec::from_xl`], with what xl would ignore pushed onto `warnings` (for the caller
    /// to log with the file and line).
    pub(crate) fn from_xl_noting(spec: &str, warnings: &mut Vec<String>) -> Result<VifSpec> {
        let bad = |reason: String| Error::invalid("vif", spec, reason);
        let mut vif = VifSpec::default();
        for token in spec.split(',').map(|t| t.trim_start_matches(' ')).filter(|t| !t.is_empty()) {
            let (key, value) = token.split_once('=').unwrap_or((token, ""));
            let text = || Some(value.to_string());
            match (key, token.contains('=')) {
                ("trusted", false) => vif.trusted = Some(true),
                ("untrusted", false) => vif.trusted = Some(false),
                ("type", true) => {
                    vif.nic_type = Some(match value {
                        "vif" => NicType::Vif,
                        "ioemu" => NicType::Ioemu,
                        _ => return Err(bad(format!("type={value}: expected vif or ioemu"))),
                    })
                }
                ("mac", true) => vif.mac = Some(mac_from_xl(value, warnings).map_err(|e| bad(reason_of(e)))?),
                ("bridge", true) => vif.bridge = text(),
                ("gatewaydev" | "netdev", true) => vif.gatewaydev = text(),
                ("ip", true) => vif.ip = text(),
                ("script", true) => vif.script = text(),
                ("backend", true) => vif.backend_domain = text(),
                ("vifname", true) => vif.vifname = text(),
                ("model", true) => vif.model = text(),
                ("rate", true) => vif.rate = text(),
                ("mtu", true) => {
                    vif.mtu = Some(decimal(value).ok_or_else(|| bad(format!("mtu={value}: not a number")))?)
                }
                ("devid", true) => {
                    vif.devid = Some(decimal(value).ok_or_else(|| bad(format!("devid={value}: not a number")))?)
                }
                (k, true) if COLO_PREFIXES.iter().any(|p| k.starts_with(p)) => {
                    return Err(bad(format!("{k}: COLO options are not supported")));
                }
                _ => warnings.push(format!("unknown option `{token}', which xl ignores; ignored")),
            }
        }
        // Let libxl's own code check what it will parse later (rate, MTU range, devid).
        let mut xlu = XluConfig::new("vif spec")?;
        let mut nic = Owned::<xen_sys::libxl_device_nic>::new();
        vif.fill_libxl("vif", &mut xlu, &mut nic).map_err(|e| bad(reason_of(e)))?;
        Ok(vif)
    }
}

/// A MAC as xl reads one (parse_nic_config): six bytes, each read by `strtoul(.., 16)` (so
/// leading blanks, a sign, a `0x` and any number of digits are taken) and followed by one
/// character of any kind: `00:16:3e:01:02:03`, `00-16-3E-01-02-03`, `0.16.3e.1.2.3`. What
/// follows the sixth byte xl ignores; so do we, with a warning. xl reads past the end of a
/// shorter MAC; we refuse one.
fn mac_from_xl(text: &str, warnings: &mut Vec<String>) -> Result<Mac> {
    let bad = || Error::invalid("mac", text, "expected six hex bytes like 00:16:3e:12:34:56");
    let mut bytes = [0u8; 6];
    let mut rest = text;
    for (i, byte) in bytes.iter_mut().enumerate() {
        let (value, used) = Some(strtoul(rest, 16)).filter(|&(_, n)| n > 0).ok_or_else(bad)?;
        *byte = u8::try_from(value).map_err(|_| bad())?;
        let after = &rest[used..];
        if i < 5 {
            // One separator, whatever it is, then the next byte.
            let mut chars = after.chars();
            chars.next().ok_or_else(bad)?;
            rest = chars.as_str();
        } else if !after.is_empty() {
            warnings.push(format!("mac {text:?}: `{after}' after the sixth byte, which xl ignores; ignored"));
        }
    }
    let canonical: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    canonical
        .join(":")
        .parse::<Mac>()
        .map_err(|_| Error::invalid("mac", text, "a multicast address cannot name an interface"))
}

/// An `InvalidSpec`'s "value: reason" (or any error's text), for wrapping in another error.
pub(crate) fn reason_of(e: Error) -> String {
    match e {
        Error::InvalidSpec { field, value, reason } if value.is_empty() => format!("{field}: {reason}"),
        Error::InvalidSpec { field, value, reason } => format!("{field} {value:?}: {reason}"),
        other => other.to_string(),
    }
}

/// A plain decimal number (xl reads these with `strtoul(.., 10)`).
fn decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The global `pci_*` defaults an xl.cfg sets for every device in its `pci` list.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PciDefaults {
    pub permissive: bool,
    pub msitranslate: bool,
    pub seize: bool,
    pub power_mgmt: bool,
}

/// Parses a PCI_SPEC_STRING (`[DDDD:]BB:DD.F[@VSLOT][,KEY=VALUE...]`) with libxlutil, starting
/// from the file's global defaults as xl does. Refuses virtual slots, multi-function (`.*`),
/// name-based devices and per-device RDM policies, which [`PciSpec`] cannot carry.
pub(crate) fn pci_from_xl(spec: &str, defaults: PciDefaults) -> std::result::Result<PciSpec, String> {
    crate::xlguard::check_pci_spec(spec)?;
    let spec_c = raw::c_string("pci", spec).map_err(reason_of)?;
    let mut xlu = XluConfig::new("pci spec").map_err(reason_of)?;
    let mut pci = Owned::<xen_sys::libxl_device_pci>::new();
    pci.permissive = defaults.permissive;
    pci.msitranslate = defaults.msitranslate;
    pci.seize = defaults.seize;
    pci.power_mgmt = defaults.power_mgmt;
    // SAFETY: xlu and pci are live and initialised; spec_c is a valid C string for the call.
    // The parser stores at most a malloc'd name into pci, which disposes it.
    let rc = unsafe { xen_sys::xlu_pci_parse_spec_string(xlu.as_ptr(), pci.as_mut_ptr(), spec_c.as_ptr()) };
    if rc != 0 {
        let report = xlu.take_report();
        let report = report.trim();
        return Err(if report.is_empty() {
            "not a PCI spec (expected [DDDD:]BB:DD.F[@VSLOT][,KEY=VALUE...])".into()
        } else {
            report.to_string()
        });
    }
    if !pci.name.is_null() {
        return Err("naming an assignable device (name=) is not supported; give its BDF".into());
    }
    // LIBXL_PCI_FUNC_ALL is ~0U in libxl.h; bindgen types the macro as i32 -1.
    if pci.vfunc_mask == xen_sys::LIBXL_PCI_FUNC_ALL as u32 {
        return Err("passing all functions (.*) is not supported; list each function".into());
    }
    if pci.vdevfn != 0 {
        return Err("a virtual slot (@VSLOT or vslot=) is not supported".into());
    }
    let rdm_policy = match pci.rdm_policy {
        xen_sys::LIBXL_RDM_RESERVE_POLICY_INVALID => None,
        xen_sys::LIBXL_RDM_RESERVE_POLICY_STRICT => Some(crate::resources::RdmPolicy::Strict),
        xen_sys::LIBXL_RDM_RESERVE_POLICY_RELAXED => Some(crate::resources::RdmPolicy::Relaxed),
        other => return Err(format!("rdm_policy: libxl's value {other} is not strict or relaxed")),
    };
    let bdf = Bdf::from_libxl(&pci).ok_or("not a valid PCI address")?;
    Ok(PciSpec {
        bdf,
        permissive: pci.permissive,
        seize: pci.seize,
        msitranslate: pci.msitranslate,
        power_mgmt: pci.power_mgmt,
        rdm_policy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vif_specs_parse_like_xl() {
        let v = VifSpec::from_xl(
            "bridge=xenbr0, mac=00:16:3E:01:02:03,vifname=web0,script=vif-bridge,rate=10Mb/s@20ms,model=e1000,\
             ip=10.0.0.2,backend=netdom,mtu=9000,type=ioemu,gatewaydev=eth0,devid=3,trusted",
        )
        .unwrap();
        assert_eq!(v.bridge.as_deref(), Some("xenbr0"));
        assert_eq!(v.mac, Some("00:16:3e:01:02:03".parse().unwrap()));
        assert_eq!((v.vifname.as_deref(), v.script.as_deref()), (Some("web0"), Some("vif-bridge")));
        assert_eq!((v.rate.as_deref(), v.model.as_deref()), (Some("10Mb/s@20ms"), Some("e1000")));
        assert_eq!(
            (v.ip.as_deref(), v.backend_domain.as_deref(), v.mtu),
            (Some("10.0.0.2"), Some("netdom"), Some(9000))
        );
        assert_eq!(
            (v.nic_type, v.gatewaydev.as_deref(), v.devid, v.trusted),
            (Some(NicType::Ioemu), Some("eth0"), Some(3), Some(true))
        );
        assert_eq!(VifSpec::from_xl("").unwrap(), VifSpec::default());
        assert_eq!(VifSpec::from_xl("bridge=a,,bridge=b").unwrap().bridge.as_deref(), Some("b"));
        assert_eq!(VifSpec::from_xl("netdev=eth1,untrusted").unwrap().trusted, Some(false));
        // xl reads each byte with strtoul: dashes and one-digit bytes are MACs too.
        let want = Some("00:16:3e:0a:02:03".parse().unwrap());
        assert_eq!(VifSpec::from_xl("mac=00-16-3E-0a-02-03").unwrap().mac, want);
        assert_eq!(VifSpec::from_xl("mac=0:16:3e:a:2:3").unwrap().mac, want);
    }

    /// xl reads a MAC byte with strtoul and skips one character after it, whatever it is,
    /// ignores what follows the sixth byte, and ignores options it does not know.
    #[test]
    fn vif_specs_take_what_xl_takes_and_note_what_it_ignores() {
        let want = Some("00:16:3e:0a:02:03".parse().unwrap());
        for mac in
            ["00.16.3e.0a.02.03", "00:16-3e.a 2:03", "0x0:+16:3E:00a:2:3", " 0:16:3e:a:2:3", "00:16:3e:0a:02:003"]
        {
            let mut notes = Vec::new();
            assert_eq!(VifSpec::from_xl_noting(&format!("mac={mac}"), &mut notes).unwrap().mac, want, "{mac}");
            assert!(notes.is_empty(), "{mac}: {notes:?}");
        }
        let mut notes = Vec::new();
        let v = VifSpec::from_xl_noting("mac=00:16:3e:0a:02:03:04,colour=red,bridge", &mut notes).unwrap();
        assert_eq!(v.mac, want);
        assert_eq!(
            notes,
            [
                "mac \"00:16:3e:0a:02:03:04\": `:04' after the sixth byte, which xl ignores; ignored",
                "unknown option `colour=red', which xl ignores; ignored",
                "unknown option `bridge', which xl ignores; ignored",
            ]
        );
    }

    #[test]
    fn bad_vif_specs_say_why() {
        for (spec, want) in [
            ("mac=00:16:3e:01:02", "expected six hex bytes"),
            ("mac=00:16:3e:01:02:", "expected six hex bytes"),
            ("mac=00:16:3e:01:100:02", "expected six hex bytes"),
            ("mac=00:16:3e:01:-1:02", "expected six hex bytes"),
            ("mac=00::3e:01:02:03", "expected six hex bytes"),
            ("mac=01:16:3e:01:02:03", "multicast"),
            ("type=pv", "expected vif or ioemu"),
            ("mtu=big", "mtu=big: not a number"),
            ("mtu=20", "must be 68 to 65535"),
            ("rate=fast", "vif.rate \"fast\""),
            ("colo_sock_mirror_id=1", "COLO"),
        ] {
            let err = VifSpec::from_xl(spec).unwrap_err().to_string();
            assert!(err.starts_with(&format!("invalid vif {spec:?}: ")) && err.contains(want), "{spec}: {err}");
        }
    }

    #[test]
    fn pci_specs_take_the_global_defaults_then_their_own() {
        let d = PciDefaults { permissive: true, ..PciDefaults::default() };
        let p = pci_from_xl("03:00.1", d).unwrap();
        assert_eq!((p.bdf.to_string(), p.permissive, p.seize), ("0000:03:00.1".into(), true, false));
        let p = pci_from_xl("0000:03:00.0,permissive=0,seize=1,msitranslate=1,power_mgmt=1", d).unwrap();
        assert_eq!((p.permissive, p.seize, p.msitranslate, p.power_mgmt), (false, true, true, true));
        let p = pci_from_xl("03:00.0,rdm_policy=relaxed", PciDefaults::default()).unwrap();
        assert_eq!(p.rdm_policy, Some(crate::resources::RdmPolicy::Relaxed), "EVE's USB controllers");
        let p = pci_from_xl("bdf=0001:82:1e.5", PciDefaults::default()).unwrap();
        assert_eq!(p.bdf.to_string(), "0001:82:1e.5");
        for (spec, want) in [
            ("03:00.0@4", "virtual slot"),
            ("03:00.*", "all functions"),
            ("name=nic0", "name="),
            ("03:00.0,colour=red", "Unknown PCI_SPEC_STRING option: colour"),
            ("03:20.0", "not a PCI spec"),
            ("zz", "not a PCI spec"),
        ] {
            let err = pci_from_xl(spec, PciDefaults::default()).unwrap_err();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }
}
