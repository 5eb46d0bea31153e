//! PV framebuffers: xl.cfg's `vfb = [ "vnc=1,vnclisten=0.0.0.0,keymap=de", "sdl=1,vnc=0" ]`.
//! Each item is a virtual framebuffer device with a virtual keyboard of its own, for a guest of
//! any type (QEMU in dom0 is the backend; an HVM guest gets them beside its emulated card).
//! This module owns [`VfbSpec`], how a list item reads (as xl 4.17's parse_config_data reads
//! it), how the framebuffers fill libxl's `vfbs` and `vkbs` arrays (numbered by position, with
//! the one a PV/PVH guest's [`DomainSpec::vnc`] brings first), and how they are written back as
//! xl.cfg text. A PV/PVH guest gives its framebuffer either as `vnc` (EVE's way, and the top-level
//! `vnc = 1` of an xl.cfg) or as this list, not both.

use serde::{Deserialize, Serialize};

use crate::devices::set_defbool;
use crate::error::{Error, Result};
use crate::raw;
use crate::spec::DomainSpec;
use crate::types::DomainKind;

/// One virtual framebuffer with its keyboard. Fields left `None` are libxl's to choose: VNC
/// on, on 127.0.0.1, the first free display from 0, no SDL window.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VfbSpec {
    /// A VNC server on it (`vnc=`); libxl's default is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnc: Option<bool>,
    /// Address the VNC server listens on (`vnclisten=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnc_listen: Option<String>,
    /// VNC display number (`vncdisplay=`); port 5900 + display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnc_display: Option<u32>,
    /// VNC password (`vncpasswd=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnc_password: Option<String>,
    /// Look for a free display from `vnc_display` on (`vncunused=`); libxl's default is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnc_find_unused: Option<bool>,
    /// Keyboard layout (`keymap=`, e.g. `de`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keymap: Option<String>,
    /// An SDL window in dom0 (`sdl=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdl: Option<bool>,
    /// OpenGL for the SDL window (`opengl=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opengl: Option<bool>,
    /// The X display the SDL window opens on (`display=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdl_display: Option<String>,
    /// The X authority file for that display (`xauthority=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xauthority: Option<String>,
}

impl VfbSpec {
    fn validate(&self, field: &str) -> Result<()> {
        if let Some(d) = self.vnc_display
            && i32::try_from(d).is_err()
        {
            return Err(Error::invalid(format!("{field}.vnc_display"), d.to_string(), "too large"));
        }
        Ok(())
    }

    fn fill_libxl(&self, field: &str, v: &mut xen_sys::libxl_device_vfb) -> Result<()> {
        set_defbool(&mut v.vnc.enable, self.vnc);
        v.vnc.listen = raw::strdup_opt(&format!("{field}.vnc_listen"), self.vnc_listen.as_deref())?;
        v.vnc.passwd = raw::strdup_opt(&format!("{field}.vnc_password"), self.vnc_password.as_deref())?;
        if let Some(d) = self.vnc_display {
            v.vnc.display = i32::try_from(d).unwrap_or(i32::MAX); // validate() bounds it
        }
        set_defbool(&mut v.vnc.findunused, self.vnc_find_unused);
        v.keymap = raw::strdup_opt(&format!("{field}.keymap"), self.keymap.as_deref())?;
        set_defbool(&mut v.sdl.enable, self.sdl);
        set_defbool(&mut v.sdl.opengl, self.opengl);
        v.sdl.display = raw::strdup_opt(&format!("{field}.sdl_display"), self.sdl_display.as_deref())?;
        v.sdl.xauthority = raw::strdup_opt(&format!("{field}.xauthority"), self.xauthority.as_deref())?;
        Ok(())
    }

    /// The xl.cfg list item (`vnc=1,vnclisten=...`). xl splits an item at commas and has no
    /// quoting, so a value with a comma cannot be written.
    pub(crate) fn to_xl(&self, field: &str) -> Result<String> {
        let flag = |key: &str, v: Option<bool>| v.map(|v| format!("{key}={}", u8::from(v)));
        let text = |key: &str, name: &str, v: &Option<String>| -> Result<Option<String>> {
            v.as_deref().map(|v| crate::xlcfg::item(&format!("{field}.{name}"), key, v)).transpose()
        };
        let parts = [
            flag("vnc", self.vnc),
            text("vnclisten", "vnc_listen", &self.vnc_listen)?,
            self.vnc_display.map(|d| format!("vncdisplay={d}")),
            text("vncpasswd", "vnc_password", &self.vnc_password)?,
            flag("vncunused", self.vnc_find_unused),
            text("keymap", "keymap", &self.keymap)?,
            flag("sdl", self.sdl),
            flag("opengl", self.opengl),
            text("display", "sdl_display", &self.sdl_display)?,
            text("xauthority", "xauthority", &self.xauthority)?,
        ];
        Ok(parts.into_iter().flatten().collect::<Vec<_>>().join(","))
    }
}

/// What one `vfb` list item of an xl.cfg file says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct VfbItem {
    pub spec: VfbSpec,
    /// xm's `type=vnc` or `type=sdl`, which xl ignores.
    pub xm_type: Option<String>,
    /// What xl skips without a word: unknown options, and everything from an option without
    /// `=` on (xl stops reading the item there).
    pub ignored: Vec<String>,
}

/// Reads a `vfb` list item as xl does: comma-separated `key=value` options, leading blanks
/// skipped, the last of a repeated option winning. xl reads the numbers with `atoi`, so a
/// value that is not a number is 0 there; here it is an error, as it is nowhere else in xl.
pub(crate) fn from_xl(item: &str) -> std::result::Result<VfbItem, String> {
    let mut out = VfbItem::default();
    let number = |key: &str, value: &str| -> std::result::Result<i64, String> {
        value.trim().parse().map_err(|_| format!("{key}={value}: not a number"))
    };
    let flag = |key: &str, value: &str| number(key, value).map(|v| v != 0);
    let s = &mut out.spec;
    let mut offset = 0;
    for piece in item.split(',') {
        let start = offset;
        offset += piece.len() + 1;
        let token = piece.trim_start_matches(' ');
        if token.is_empty() {
            continue;
        }
        let Some((key, value)) = token.split_once('=') else {
            let rest = item[start..].trim_start_matches(' ');
            out.ignored.push(format!("`{rest}': xl stops reading a vfb spec at an option without `='"));
            break;
        };
        match key {
            "vnc" => s.vnc = Some(flag(key, value)?),
            "vnclisten" => s.vnc_listen = Some(value.to_string()),
            "vncpasswd" => s.vnc_password = Some(value.to_string()),
            "vncdisplay" => {
                let d = number(key, value)?;
                s.vnc_display = Some(u32::try_from(d).map_err(|_| format!("vncdisplay={value}: out of range"))?);
            }
            "vncunused" => s.vnc_find_unused = Some(flag(key, value)?),
            "keymap" => s.keymap = Some(value.to_string()),
            "sdl" => s.sdl = Some(flag(key, value)?),
            "opengl" => s.opengl = Some(flag(key, value)?),
            "display" => s.sdl_display = Some(value.to_string()),
            "xauthority" => s.xauthority = Some(value.to_string()),
            // xm's framebuffer type: xl's vfb parser has no such key and skips it, so a
            // `type=sdl` framebuffer is a VNC one by libxl's default, without SDL.
            "type" if value == "vnc" || value == "sdl" => out.xm_type = Some(value.to_string()),
            _ => out.ignored.push(format!("unknown option `{token}', which xl skips")),
        }
    }
    Ok(out)
}

impl DomainSpec {
    /// A PV/PVH guest's only framebuffer, made its [`DomainSpec::vnc`] and display settings,
    /// which give libxl the same device: the one form the spec has for it, so that a spec
    /// written as xl.cfg reads back the same. Framebuffers without VNC, several of them, or
    /// an HVM guest's stay in `vfbs`.
    pub(crate) fn fold_single_vfb(&mut self) {
        let [only] = self.vfbs.as_slice() else { return };
        if self.kind == DomainKind::Hvm || self.vnc.is_some() || only.vnc == Some(false) {
            return;
        }
        let v = self.vfbs.remove(0);
        self.vnc = Some(crate::devices::VncSpec {
            listen: v.vnc_listen,
            display: v.vnc_display,
            password: v.vnc_password,
            find_unused: v.vnc_find_unused,
            enable_by_default: v.vnc.is_none(),
        });
        let d = &mut self.display;
        (d.keymap, d.sdl, d.opengl, d.sdl_display, d.xauthority) =
            (v.keymap, v.sdl, v.opengl, v.sdl_display, v.xauthority);
    }

    /// Adds a framebuffer (with its keyboard) to [`DomainSpec::vfbs`].
    pub fn vfb(mut self, vfb: VfbSpec) -> Self {
        self.vfbs.push(vfb);
        self
    }

    pub(crate) fn validate_vfbs(&self) -> Result<()> {
        if self.kind != DomainKind::Hvm && self.vnc.is_some() && !self.vfbs.is_empty() {
            return Err(Error::invalid(
                "vfbs",
                format!("{} framebuffers", self.vfbs.len()),
                "a PV or PVH guest's framebuffer is set by vnc or by vfbs, not both",
            ));
        }
        self.vfbs.iter().enumerate().try_for_each(|(i, v)| v.validate(&format!("vfbs[{i}]")))
    }

    /// Makes the config's framebuffers and their keyboards, numbered from 0 as xl numbers
    /// them: a PV/PVH guest's `vnc` framebuffer, or the `vfbs`. The `vnc` one is left with
    /// its VNC settings only; the display settings are filled later from `display`.
    pub(crate) fn fill_vfbs(&self, d: &mut xen_sys::libxl_domain_config) -> Result<()> {
        let from_vnc = self.kind != DomainKind::Hvm && self.vnc.is_some();
        let n = usize::from(from_vnc) + self.vfbs.len();
        if n == 0 {
            return Ok(());
        }
        // Both arrays zeroed (dispose accepts that), owned by the config from here on.
        d.vfbs = raw::calloc_array(n)?;
        d.num_vfbs = i32::try_from(n).unwrap_or(i32::MAX);
        d.vkbs = raw::calloc_array(n)?;
        d.num_vkbs = d.num_vfbs;
        for i in 0..n {
            // SAFETY: i < n, the length of both arrays just allocated; each element is
            // initialised once, here, before it is filled.
            let (vfb, vkb) = unsafe { (&mut *d.vfbs.add(i), &mut *d.vkbs.add(i)) };
            // SAFETY: valid elements of the arrays.
            unsafe {
                xen_sys::libxl_device_vfb_init(vfb);
                xen_sys::libxl_device_vkb_init(vkb);
            }
            // Numbered by position, as xl's ARRAY_EXTEND_INIT does.
            vfb.devid = i32::try_from(i).unwrap_or(i32::MAX);
            vkb.devid = vfb.devid;
            match (&self.vnc, i.checked_sub(usize::from(from_vnc))) {
                (Some(vnc), None) => vnc.fill_libxl("vnc", &mut vfb.vnc)?,
                (_, Some(j)) => self.vfbs[j].fill_libxl(&format!("vfbs[{j}]"), vfb)?,
                (None, None) => {} // from_vnc implies vnc
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::VncSpec;

    fn json(spec: &DomainSpec) -> serde_json::Value {
        serde_json::from_str(&spec.to_libxl_json().unwrap()).unwrap()
    }

    #[test]
    fn items_read_as_xl_reads_them() {
        let v = from_xl("vnc=0, sdl=1,opengl=1,display=:1,xauthority=/root/.Xauthority,keymap=de").unwrap();
        assert_eq!(
            v.spec,
            VfbSpec {
                vnc: Some(false),
                sdl: Some(true),
                opengl: Some(true),
                sdl_display: Some(":1".into()),
                xauthority: Some("/root/.Xauthority".into()),
                keymap: Some("de".into()),
                ..VfbSpec::default()
            }
        );
        let v = from_xl("vnclisten=0.0.0.0,vncdisplay=2,vncpasswd=s3,vncunused=0,vncdisplay=3").unwrap();
        assert_eq!(
            (v.spec.vnc_listen.as_deref(), v.spec.vnc_display, v.spec.vnc_password.as_deref()),
            (Some("0.0.0.0"), Some(3), Some("s3"))
        );
        assert_eq!((v.spec.vnc, v.spec.vnc_find_unused), (None, Some(false)));
        let v = from_xl("type=sdl,bogus=1,vnc=1,novalue,keymap=fr").unwrap();
        assert_eq!((v.xm_type.as_deref(), v.spec.vnc, v.spec.keymap), (Some("sdl"), Some(true), None));
        assert_eq!(v.ignored.len(), 2, "{:?}", v.ignored);
        assert!(v.ignored[1].contains("`novalue,keymap=fr'"), "{:?}", v.ignored);
        assert_eq!(from_xl("vncdisplay=x").unwrap_err(), "vncdisplay=x: not a number");
        assert_eq!(from_xl("vncdisplay=-1").unwrap_err(), "vncdisplay=-1: out of range");
    }

    #[test]
    fn every_framebuffer_gets_a_keyboard_numbered_by_position() {
        let spec = DomainSpec::hvm("h")
            .vnc(VncSpec::default())
            .vfb(VfbSpec { vnc: Some(false), sdl: Some(true), ..VfbSpec::default() })
            .vfb(VfbSpec { vnc_display: Some(4), keymap: Some("de".into()), ..VfbSpec::default() });
        let j = json(&spec);
        let vfbs = j["vfbs"].as_array().unwrap();
        assert_eq!(vfbs.len(), 2, "an HVM guest's own VNC is the device model's, not a vfb");
        assert_eq!((vfbs[0]["devid"].as_u64(), vfbs[1]["devid"].as_u64()), (Some(0), Some(1)));
        assert_eq!(
            (vfbs[0]["vnc"]["enable"].as_str(), vfbs[0]["sdl"]["enable"].as_str()),
            (Some("False"), Some("True"))
        );
        assert_eq!((vfbs[1]["vnc"]["display"].as_u64(), vfbs[1]["keymap"].as_str()), (Some(4), Some("de")));
        assert_eq!(j["vkbs"].as_array().map(Vec::len), Some(2));
        assert_eq!(j["b_info"]["type.hvm"]["vnc"]["enable"].as_str(), Some("True"));
    }

    #[test]
    fn a_pv_guest_sets_its_framebuffer_once() {
        let spec = DomainSpec::pv("p").kernel("/k").vnc(VncSpec::default()).vfb(VfbSpec::default());
        let e = spec.to_libxl().unwrap_err().to_string();
        assert!(e.contains("by vnc or by vfbs, not both"), "{e}");
        let spec = DomainSpec::pvh("p").kernel("/k").vfb(VfbSpec::default()).vfb(VfbSpec::default());
        let j = json(&spec);
        assert_eq!(j["vfbs"][1]["devid"].as_u64(), Some(1));
    }

    #[test]
    fn items_write_back_as_they_read() {
        let v = VfbSpec {
            vnc: Some(true),
            vnc_listen: Some("::1".into()),
            vnc_display: Some(7),
            vnc_password: Some("pw".into()),
            vnc_find_unused: Some(false),
            keymap: Some("en-gb".into()),
            sdl: Some(false),
            opengl: Some(true),
            sdl_display: Some(":0".into()),
            xauthority: Some("/x".into()),
        };
        let text = v.to_xl("vfbs[0]").unwrap();
        assert_eq!(from_xl(&text).unwrap().spec, v, "{text}");
        assert_eq!(VfbSpec::default().to_xl("f").unwrap(), "");
        let bad = VfbSpec { keymap: Some("a,b".into()), ..VfbSpec::default() };
        assert!(bad.to_xl("vfbs[2]").unwrap_err().to_string().contains("vfbs[2].keymap"));
    }
}
