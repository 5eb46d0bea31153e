//! [`DomainSpec::to_xl_config`]: the spec as an xl.cfg(5) file, so an operator can read what a
//! tool asked libxl for, or hand it to `xl create` themselves. What it writes,
//! [`DomainSpec::from_xl_config`] reads back to an equal spec.

use std::fmt::Write;

use crate::devices::{DiskBackend, DiskSpec, VifSpec};
use crate::error::{Error, Result};
use crate::spec::{DomainSpec, TscMode};
use crate::types::DomainKind;
use crate::types::ShutdownAction;

/// A double-quoted xl.cfg string, with the escapes libxlutil reads back (`\"`, `\\` and the
/// C escapes of `\a \b \t \n \v \f \r`). libxlutil has no escape for the other control
/// characters (its `\x` and octal escapes drop the character): those are left raw here, and
/// [`DomainSpec::to_xl_config`] refuses text that carries one.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Refuses xl.cfg text with a control character left in a line (one that no escape carries,
/// or a NUL): `xl create` of it would fail or abort, and it would not read back.
fn refuse_control_characters(text: &str) -> Result<()> {
    for line in text.lines() {
        if let Some(c) = line.chars().find(|c| c.is_control()) {
            let (key, value) = line.split_once(" = ").unwrap_or((line, ""));
            return Err(Error::invalid(
                key.trim(),
                value.trim_matches('"').escape_debug().to_string(),
                format!("holds the control character {:?}, which xl.cfg cannot carry", c),
            ));
        }
    }
    Ok(())
}

/// A `key=value` item of a comma-separated device spec; commas cannot be escaped there.
/// `key=value` for an xl device spec; a comma in `value` cannot be written there.
pub(crate) fn item(field: &str, key: &str, value: &str) -> Result<String> {
    if value.contains(',') {
        return Err(Error::invalid(field, value, "a comma cannot be written in an xl device spec"));
    }
    Ok(format!("{key}={value}"))
}

fn disk_spec(i: usize, d: &DiskSpec) -> Result<String> {
    let field = format!("disks[{i}]");
    if let Some(trusted) = d.trusted {
        // Xen 4.17's disk syntax has no such key (libxlutil reads `trusted` as a target), and
        // text that silently dropped it would read back as another domain.
        return Err(Error::invalid(
            format!("{field}.trusted"),
            trusted.to_string(),
            "xl.cfg cannot say whether a disk's backend is trusted (xl takes it from LIBXL_DISK_BACKEND_UNTRUSTED)",
        ));
    }
    let mut parts = vec![format!("format={}", d.format.as_str()), item(&field, "vdev", &d.vdev)?];
    parts.push(if d.readonly || d.cdrom { "access=ro".into() } else { "access=rw".into() });
    if d.cdrom {
        parts.push("devtype=cdrom".into());
    }
    match d.backend {
        DiskBackend::Auto => {}
        DiskBackend::Phy => parts.push("backendtype=phy".into()),
        DiskBackend::Tap => parts.push("backendtype=tap".into()),
        DiskBackend::Qdisk => parts.push("backendtype=qdisk".into()),
        DiskBackend::Standalone => parts.push("backendtype=standalone".into()),
    }
    if let Some(script) = &d.script {
        parts.push(item(&field, "script", script)?);
    }
    if let Some(backend) = &d.backend_domain {
        parts.push(item(&field, "backend", backend)?);
    }
    if d.direct_io_safe {
        parts.push("direct-io-safe".into());
    }
    match d.discard {
        Some(true) => parts.push("discard".into()),
        Some(false) => parts.push("no-discard".into()),
        None => {}
    }
    // target= takes the rest of the spec, commas included, so it goes last. libxlutil drops one
    // trailing comma from it (its STRIP(',')), so a target ending in a comma gets one more.
    let target = d.target.as_deref().unwrap_or("");
    let keep = if target.ends_with(',') { "," } else { "" };
    parts.push(format!("target={target}{keep}"));
    Ok(parts.join(","))
}

fn vif_spec(i: usize, v: &VifSpec) -> Result<String> {
    let field = format!("vifs[{i}]");
    let mut parts = Vec::new();
    let mut add = |key: &str, value: &Option<String>| -> Result<()> {
        if let Some(value) = value {
            parts.push(item(&format!("{field}.{key}"), key, value)?);
        }
        Ok(())
    };
    add("bridge", &v.bridge)?;
    add("mac", &v.mac.map(|m| m.to_string()))?;
    add("vifname", &v.vifname)?;
    add("script", &v.script)?;
    add("rate", &v.rate)?;
    add("model", &v.model)?;
    add("ip", &v.ip)?;
    add("backend", &v.backend_domain)?;
    add("mtu", &v.mtu.map(|m| m.to_string()))?;
    add("type", &v.nic_type.map(|t| t.as_str().to_string()))?;
    add("gatewaydev", &v.gatewaydev)?;
    add("devid", &v.devid.map(|d| d.to_string()))?;
    match v.trusted {
        Some(true) => parts.push("trusted".into()),
        Some(false) => parts.push("untrusted".into()),
        None => {}
    }
    Ok(parts.join(","))
}

pub(crate) fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[ {} ]", quoted.join(", "))
}

impl DomainSpec {
    /// The spec as xl.cfg text. `xl create` of it builds the same domain this spec does.
    ///
    /// Fails only for what xl's syntax cannot carry (a comma inside a vif or disk option, a
    /// disk's `trusted`), rather than write text that would read back as another spec.
    pub fn to_xl_config(&self) -> Result<String> {
        self.validate()?;
        if self.libxl_json.is_some() {
            return Err(Error::invalid(
                "libxl_json",
                self.name.clone(),
                "a domain known only by its libxl JSON config (received by migration) has no xl.cfg form",
            ));
        }
        let mut out = String::new();
        let mut line = |key: &str, value: String| {
            let _ = writeln!(out, "{key} = {value}");
        };
        line("name", quote(&self.name));
        line("uuid", quote(&self.uuid.to_string()));
        line("type", quote(self.kind.as_str()));
        if self.memory_unstated {
            if let Some(m) = self.max_memory_mib {
                line("maxmem", m.to_string());
            }
        } else {
            line("memory", self.memory_mib.to_string());
            line("maxmem", self.effective_max_memory_mib().to_string());
        }
        if self.vcpus_unstated {
            if let Some(m) = self.max_vcpus {
                line("maxvcpus", m.to_string());
            }
        } else {
            line("vcpus", self.vcpus.to_string());
            line("maxvcpus", self.effective_max_vcpus().to_string());
        }
        if !self.cpus.is_empty() {
            // A set: xl reads a CPU list into a bitmap, so it reads back sorted, once each.
            let mut set = self.cpus.clone();
            set.sort_unstable();
            set.dedup();
            let cpus: Vec<String> = set.iter().map(u32::to_string).collect();
            line("cpus", quote(&cpus.join(",")));
        }
        if !self.vcpu_cpus.is_empty() {
            let per_vcpu: Vec<String> = self
                .vcpu_cpus
                .iter()
                .map(|set| {
                    let mut set = set.clone();
                    set.sort_unstable();
                    set.dedup();
                    set.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
                })
                .collect();
            line("cpus", list(&per_vcpu));
        }
        if let Some(k) = &self.kernel {
            line("kernel", quote(k));
        }
        if let Some(r) = &self.ramdisk {
            line("ramdisk", quote(r));
        }
        if let Some(c) = &self.cmdline {
            line("cmdline", quote(c));
        }
        if let Some(b) = &self.bootloader {
            line("bootloader", quote(b));
        }
        // Without a bootloader too: the file may give the arguments alone, and the spec keeps them.
        if !self.bootloader_args.is_empty() {
            line("bootloader_args", list(&self.bootloader_args));
        }
        if !self.disks.is_empty() {
            let disks = self.disks.iter().enumerate().map(|(i, d)| disk_spec(i, d)).collect::<Result<Vec<_>>>()?;
            line("disk", list(&disks));
        }
        if !self.vifs.is_empty() {
            let vifs = self.vifs.iter().enumerate().map(|(i, v)| vif_spec(i, v)).collect::<Result<Vec<_>>>()?;
            line("vif", list(&vifs));
        }
        if !self.pcis.is_empty() {
            let pcis: Vec<String> = self
                .pcis
                .iter()
                .map(|p| {
                    let mut s = p.bdf.to_string();
                    for (on, key) in [
                        (p.permissive, "permissive"),
                        (p.seize, "seize"),
                        (p.msitranslate, "msitranslate"),
                        (p.power_mgmt, "power_mgmt"),
                    ] {
                        if on {
                            let _ = write!(s, ",{key}=1");
                        }
                    }
                    match p.rdm_policy {
                        Some(crate::resources::RdmPolicy::Strict) => s.push_str(",rdm_policy=strict"),
                        Some(crate::resources::RdmPolicy::Relaxed) => s.push_str(",rdm_policy=relaxed"),
                        // xl has no word for it; the guest's own `rdm` line carries it.
                        Some(crate::resources::RdmPolicy::XlUndefined) | None => {}
                    }
                    s
                })
                .collect();
            line("pci", list(&pcis));
        }
        for (key, value) in self.pv_device_lines()? {
            line(key, value);
        }
        line("on_poweroff", quote(self.on_poweroff.as_str()));
        line("on_reboot", quote(self.on_reboot.as_str()));
        line("on_crash", quote(self.on_crash.as_str()));
        if let Some(s) = &self.serial {
            line("serial", quote(s));
        }
        if let Some(b) = &self.boot_order {
            line("boot", quote(b));
        }
        if let Some(vnc) = &self.vnc {
            if self.kind == DomainKind::Hvm {
                if self.display.vnc_disabled {
                    line("vnc", "0".into());
                } else if !vnc.enable_by_default {
                    line("vnc", "1".into());
                }
                if let Some(l) = &vnc.listen {
                    line("vnclisten", quote(l));
                }
                if let Some(d) = vnc.display {
                    line("vncdisplay", d.to_string());
                }
                if let Some(p) = &vnc.password {
                    line("vncpasswd", quote(p));
                }
                if let Some(unused) = vnc.find_unused {
                    line("vncunused", u8::from(unused).to_string());
                }
            } else {
                let mut parts = Vec::new();
                if !vnc.enable_by_default {
                    parts.push("vnc=1".to_string());
                }
                if let Some(l) = &vnc.listen {
                    parts.push(item("vnc.listen", "vnclisten", l)?);
                }
                if let Some(d) = vnc.display {
                    parts.push(format!("vncdisplay={d}"));
                }
                if let Some(p) = &vnc.password {
                    parts.push(item("vnc.password", "vncpasswd", p)?);
                }
                if let Some(unused) = vnc.find_unused {
                    parts.push(format!("vncunused={}", u8::from(unused)));
                }
                parts.extend(self.vfb_extras()?);
                line("vfb", list(&[parts.join(",")]));
            }
        }
        if !self.vfbs.is_empty() {
            let items = self.vfbs.iter().enumerate().map(|(i, v)| v.to_xl(&format!("vfbs[{i}]")));
            line("vfb", list(&items.collect::<Result<Vec<_>>>()?));
        }
        match self.tsc_mode {
            TscMode::Default => {}
            TscMode::AlwaysEmulate => line("tsc_mode", quote("always_emulate")),
            TscMode::Native => line("tsc_mode", quote("native")),
            TscMode::NativeParavirt => line("tsc_mode", quote("native_paravirt")),
        }
        for (key, value) in self.option_lines()? {
            line(key, value);
        }
        for (key, value) in self.usb_lines().into_iter().chain(self.resources.xl_lines()?).chain(self.tuning_lines()) {
            line(key, value);
        }
        refuse_control_characters(&out)?;
        Ok(out)
    }

    /// The xl.cfg lines of the fields beyond the basics (options.rs), in `key = value` form;
    /// fields at their default write nothing.
    fn option_lines(&self) -> Result<Vec<(&'static str, String)>> {
        let mut out = Vec::new();
        let hvm = self.kind == DomainKind::Hvm;
        if self.on_watchdog != ShutdownAction::Destroy {
            out.push(("on_watchdog", quote(self.on_watchdog.as_str())));
        }
        if self.on_soft_reset != ShutdownAction::SoftReset {
            out.push(("on_soft_reset", quote(self.on_soft_reset.as_str())));
        }
        let number = |key, n: Option<u64>| n.map(|n| (key, n.to_string()));
        out.extend(number("cpu_weight", self.cpu_weight.map(u64::from)));
        out.extend(number("cap", self.cpu_cap.map(u64::from)));
        let p = &self.platform;
        if self.kind == DomainKind::Pv && !self.pcis.is_empty() && p.e820_host == Some(false) {
            return Err(Error::invalid(
                "platform.e820_host",
                "false",
                "xl always enables e820_host for PV guests with PCI devices, so xl.cfg cannot say this",
            ));
        }
        if !p.viridian_enlightenments.is_empty() {
            out.push(("viridian", list(&p.viridian_enlightenments)));
        }
        let flags = [
            ("acpi", p.acpi),
            ("apic", p.apic),
            ("pae", p.pae),
            ("hap", p.hap),
            ("nestedhvm", p.nested_hvm),
            ("viridian", p.viridian),
            ("hpet", p.hpet),
            ("xen_platform_pci", p.xen_platform_pci),
            ("localtime", p.localtime),
            ("e820_host", p.e820_host),
            ("acpi_s3", p.acpi_s3),
            ("acpi_s4", p.acpi_s4),
            ("nomigrate", p.disable_migrate),
            ("usb", self.usb),
            ("nographic", self.display.nographic),
        ];
        out.extend(flags.into_iter().filter_map(|(key, v)| v.map(|v| (key, u8::from(v).to_string()))));
        if let Some(bios) = p.bios {
            out.push(("bios", quote(bios.as_str())));
        }
        if let Some(v) = p.device_model_version {
            out.push(("device_model_version", quote(v.as_str())));
        }
        // libxlutil reads a bare number as digits only: a negative one goes in quotes.
        out.extend(
            p.rtc_timeoffset.map(|s| ("rtc_timeoffset", if s < 0 { quote(&s.to_string()) } else { s.to_string() })),
        );
        out.extend(number("shadow_memory", p.shadow_memory_mib));
        out.extend(number("max_grant_frames", p.max_grant_frames.map(u64::from)));
        if let Some(t) = p.timer_mode {
            out.push(("timer_mode", quote(t.as_str())));
        }
        let d = &self.display;
        out.extend(number("videoram", d.video_memory_mib));
        if let Some(vga) = d.vga {
            out.push(("vga", quote(vga.as_str())));
        }
        // A PV/PVH guest's sdl/opengl/keymap are written inside its vfb spec (see vfb_extras).
        if hvm {
            if d.vnc_disabled && self.vnc.is_none() {
                out.push(("vnc", "0".into()));
            }
            out.extend(d.sdl.map(|v| ("sdl", u8::from(v).to_string())));
            out.extend(d.opengl.map(|v| ("opengl", u8::from(v).to_string())));
            out.extend(d.keymap.as_deref().map(|k| ("keymap", quote(k))));
        }
        if !self.serial_ports.is_empty() {
            out.push(("serial", list(&self.serial_ports)));
        }
        out.extend(number("usbversion", self.usb_version.map(u64::from)));
        if let Some(u) = &self.usb_device {
            out.push(("usbdevice", quote(u)));
        }
        if !self.usb_devices.is_empty() {
            out.push(("usbdevice", list(&self.usb_devices)));
        }
        if let Some(s) = &self.soundhw {
            out.push(("soundhw", quote(s)));
        }
        out.extend(self.extras_xl_lines());
        Ok(out)
    }

    /// The display extras of a PV/PVH framebuffer, as vfb spec options.
    fn vfb_extras(&self) -> Result<Vec<String>> {
        let d = &self.display;
        let mut parts = Vec::new();
        if let Some(k) = &d.keymap {
            parts.push(item("display.keymap", "keymap", k)?);
        }
        parts.extend(d.sdl.map(|v| format!("sdl={}", u8::from(v))));
        parts.extend(d.opengl.map(|v| format!("opengl={}", u8::from(v))));
        if let Some(x) = &d.sdl_display {
            parts.push(item("display.sdl_display", "display", x)?);
        }
        if let Some(x) = &d.xauthority {
            parts.push(item("display.xauthority", "xauthority", x)?);
        }
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{DiskFormat, VncSpec};
    use crate::pci::PciSpec;
    use uuid::Uuid;

    #[test]
    fn renders_every_field_in_xl_syntax() {
        let spec = DomainSpec::pv("web")
            .uuid(Uuid::nil())
            .memory_mib(256)
            .vcpus(2)
            .kernel("/k")
            .ramdisk("/r")
            .cmdline("console=hvc0 root=\"/dev/xvda\"")
            .disk(DiskSpec::new("/srv/a,b.img", "xvda").format(DiskFormat::Qcow2).readonly())
            .vif(VifSpec {
                mac: Some("00:16:3e:00:00:01".parse().unwrap()),
                mtu: Some(9000),
                ..VifSpec::bridged("br0")
            })
            .pci(PciSpec { permissive: true, ..PciSpec::new("0000:03:00.0".parse().unwrap()) })
            .vnc(VncSpec { listen: Some("0.0.0.0".into()), ..VncSpec::default() })
            .tsc_mode(TscMode::Native);
        let text = spec.to_xl_config().unwrap();
        let expected = r#"name = "web"
uuid = "00000000-0000-0000-0000-000000000000"
type = "pv"
memory = 256
maxmem = 256
vcpus = 2
maxvcpus = 2
kernel = "/k"
ramdisk = "/r"
cmdline = "console=hvc0 root=\"/dev/xvda\""
disk = [ "format=qcow2,vdev=xvda,access=ro,target=/srv/a,b.img" ]
vif = [ "bridge=br0,mac=00:16:3e:00:00:01,mtu=9000" ]
pci = [ "0000:03:00.0,permissive=1" ]
on_poweroff = "destroy"
on_reboot = "restart"
on_crash = "destroy"
vfb = [ "vnc=1,vnclisten=0.0.0.0" ]
tsc_mode = "native"
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn the_rendered_disk_spec_parses_back_to_the_same_disk() {
        let disks = [
            DiskSpec::new("/srv/a,b.img", "xvda"),
            // Found by fuzzing: libxlutil drops one trailing comma of a target.
            DiskSpec::new("/srv/odd,,", "xvdc"),
            DiskSpec { cdrom: true, target: None, ..DiskSpec::new("", "hdc") },
            DiskSpec {
                backend: DiskBackend::Qdisk,
                discard: Some(false),
                direct_io_safe: true,
                ..DiskSpec::new("/x", "xvdb")
            },
        ];
        for (i, d) in disks.iter().enumerate() {
            let text = disk_spec(i, d).unwrap();
            let back = DiskSpec::from_xl(&text).unwrap();
            let mut want = d.clone();
            want.readonly |= want.cdrom;
            if want.cdrom && want.target.is_none() {
                want.format = DiskFormat::Empty; // xl's rule for a drive with no medium
            }
            assert_eq!(back, want, "{text}");
        }
    }

    #[test]
    fn a_disk_either_round_trips_whole_or_is_refused() {
        let disks = [
            DiskSpec { trusted: Some(true), ..DiskSpec::new("/a", "xvda") },
            DiskSpec { trusted: Some(false), readonly: true, ..DiskSpec::new("/b", "xvdb") },
            DiskSpec { discard: Some(true), script: Some("block-iscsi".into()), ..DiskSpec::new("iqn.x", "xvdc") },
            DiskSpec {
                backend_domain: Some("stor".into()),
                backend: DiskBackend::Phy,
                ..DiskSpec::new("/dev/sdb", "xvdd")
            },
        ];
        for (i, d) in disks.iter().enumerate() {
            match disk_spec(i, d) {
                Ok(text) => assert_eq!(&DiskSpec::from_xl(&text).unwrap(), d, "{text}"),
                Err(e) => {
                    assert!(d.trusted.is_some(), "{d:?}: {e}");
                    assert!(e.to_string().starts_with(&format!("invalid disks[{i}].trusted")), "{e}");
                }
            }
        }
        // So a spec that says it is never rendered as one that does not (which would make a
        // saved domain's record match a config that differs from it).
        let spec = DomainSpec::pv("d").kernel("/k").disk(disks[1].clone());
        assert!(
            spec.to_xl_config().unwrap_err().to_string().contains("cannot say whether a disk's backend is trusted")
        );
        let plain = DomainSpec { disks: vec![DiskSpec { trusted: None, ..disks[1].clone() }], ..spec };
        assert!(plain.to_xl_config().is_ok());
    }

    /// What `from_xl_config_text` accepts, written back and read again, is the same spec.
    fn round_trip(text: &str) {
        let spec = DomainSpec::from_xl_config_text("in.cfg", text).unwrap();
        let written = spec.to_xl_config().unwrap();
        assert_eq!(DomainSpec::from_xl_config_text("out.cfg", &written).unwrap(), spec, "{written}");
    }

    #[test]
    fn bootloader_args_without_a_bootloader_are_written_too() {
        // Found with the xl_cfg fuzz target's round-trip check: they were dropped, so the text
        // read back as another spec.
        round_trip("name = 'a'\nkernel = '/k'\nbootloader_args = [ 'x' ]\n");
    }

    #[test]
    fn control_characters_are_escaped_or_refused() {
        let mut spec = DomainSpec::pv("ctl").kernel("/k").cmdline("a\tb\nc\rd\u{7}\u{8}\u{b}\u{c}e");
        let text = spec.to_xl_config().unwrap();
        assert!(!text.lines().any(|l| l.chars().any(char::is_control)), "{text}");
        assert_eq!(DomainSpec::from_xl_config_text("ctl.cfg", &text).unwrap().cmdline, spec.cmdline);
        spec.cmdline = Some("a\u{1}b".into());
        let e = spec.to_xl_config().unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid cmdline \"a\\\\u{1}b\": holds the control character '\\u{1}', which xl.cfg cannot carry"
        );
        spec.cmdline = Some("a\u{7f}b".into());
        assert!(spec.to_xl_config().is_err(), "DEL is a control character too");
    }

    #[test]
    fn a_cpu_list_is_written_as_the_set_xl_reads_back() {
        let mut spec = DomainSpec::pv("cpus").kernel("/k");
        spec.cpus = vec![3, 1, 1, 2];
        let text = spec.to_xl_config().unwrap();
        assert!(text.contains("cpus = \"1,2,3\""), "{text}");
        let again = DomainSpec::from_xl_config_text("cpus.cfg", &text).unwrap();
        assert_eq!(again.to_xl_config().unwrap(), text, "stable across a re-read");
    }

    #[test]
    fn commas_in_vif_values_are_refused() {
        let spec =
            DomainSpec::pv("w").kernel("/k").vif(VifSpec { ip: Some("1.2.3.4,5.6.7.8".into()), ..VifSpec::default() });
        let err = spec.to_xl_config().unwrap_err();
        assert!(err.to_string().starts_with("invalid vifs[0].ip"), "{err}");
    }

    #[test]
    fn hvm_vnc_and_serial_are_top_level_keys() {
        let mut spec = DomainSpec::hvm("h").serial("pty").vnc(VncSpec { display: Some(2), ..VncSpec::default() });
        spec.boot_order = Some("dc".into());
        let text = spec.to_xl_config().unwrap();
        for want in ["serial = \"pty\"\n", "boot = \"dc\"\n", "vnc = 1\n", "vncdisplay = 2\n", "type = \"hvm\"\n"] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
    }
}
