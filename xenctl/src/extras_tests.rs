//! Unit tests of `extras.rs`, `devmodel.rs`, `spice.rs` and `cpuid.rs` through the xl.cfg
//! reader: each key's field, libxl's JSON (what `xl -N create` printed for the same text on
//! Xen 4.17), the errors (file, line, key), validation, and the round trip through
//! `to_xl_config`.

use serde_json::Value;

use crate::cpuid::CpuidPolicy;
use crate::devmodel::{DeviceModelSpec, GfxPassthru, HdType, VendorDevice};
use crate::extras::{Altp2mMode, XEN_FIRMWARE_DIR};
use crate::options::BiosKind;
use crate::spec::DomainSpec;
use crate::spice::SpiceSpec;

/// A PV config with the given extra lines.
fn pv(extra: &str) -> crate::Result<DomainSpec> {
    DomainSpec::from_xl_config_text("g.cfg", &format!("name = \"g\"\nkernel = \"/k\"\n{extra}\n"))
}

/// An HVM config with the given extra lines.
fn hvm(extra: &str) -> crate::Result<DomainSpec> {
    DomainSpec::from_xl_config_text("h.cfg", &format!("type = \"hvm\"\nname = \"h\"\n{extra}\n"))
}

fn err(r: crate::Result<DomainSpec>) -> String {
    r.unwrap_err().to_string()
}

fn json(s: &DomainSpec) -> Value {
    serde_json::from_str(&s.to_libxl_json().unwrap()).unwrap()
}

fn round_trips(s: &DomainSpec) {
    let text = s.to_xl_config().unwrap();
    assert_eq!(&DomainSpec::from_xl_config_text("back.cfg", &text).unwrap(), s, "{text}");
}

fn pvh(extra: &str) -> crate::Result<DomainSpec> {
    DomainSpec::from_xl_config_text("p.cfg", &format!("type = \"pvh\"\nname = \"p\"\n{extra}\n"))
}

const HVM_ALL: &str = "hdtype = \"AHCI\"\nvendor_device = \"xenserver\"\ngfx_passthru = \"igd\"\nvkb_device = 0\n\
    dm_restrict = 1\ndevice_model_user = \"qemu-dm\"\ndevice_model_version = \"qemu-xen\"\n\
    device_model_override = \"/usr/local/bin/qemu\"\ndevice_model_stubdomain_override = 1\n\
    device_model_stubdomain_seclabel = \"system_u:system_r:dm_dom_t\"\nstubdomain_kernel = \"/s/k\"\n\
    stubdomain_cmdline = \"console=hvc0\"\nstubdomain_ramdisk = \"/s/r\"\nstubdomain_memory = 128\n\
    device_model_args = [ \"-a\", \"b c\" ]\ndevice_model_args_pv = [ \"-pv\" ]\ndevice_model_args_hvm = [ \"-hvm\" ]\n\
    smbios_firmware = \"/s/smbios\"\nacpi_firmware = \"/s/acpi\"\nacpi_laptop_slate = 1\nnx = 0\nvpt_align = 1\n\
    mmio_hole = 1024\nmca_caps = [ \"lmce\" ]\naltp2m = \"external\"\naltp2mhvm = 1\nmsr_relaxed = 1\n\
    spice = 1\nspiceport = 6000\nspicetls_port = 6001\nspicehost = \"0.0.0.0\"\nspicedisable_ticketing = 0\n\
    spicepasswd = \"pw\"\nspiceagent_mouse = 1\nspicevdagent = 1\nspice_clipboard_sharing = 0\n\
    spiceusbredirection = 4\nspice_image_compression = \"auto_glz\"\nspice_streaming_video = \"filter\"\n\
    sdl = 1\ndisplay = \":0\"\nxauthority = \"/root/.Xauthority\"\nfirmware_override = \"/fw/hvmloader\"\n\
    bios_path_override = \"/fw/bios.bin\"\nbios = \"seabios\"\ncpuid = \"host,tm=0,sse3=0\"";

#[test]
fn every_key_of_an_hvm_guest_sets_its_field_and_libxls() {
    let s = hvm(HVM_ALL).unwrap();
    let dm = &s.device_model;
    assert_eq!(
        *dm,
        DeviceModelSpec {
            path: Some("/usr/local/bin/qemu".into()),
            user: Some("qemu-dm".into()),
            restrict: Some(true),
            args: vec!["-a".into(), "b c".into()],
            args_pv: vec!["-pv".into()],
            args_hvm: vec!["-hvm".into()],
            stubdomain: Some(true),
            stubdomain_seclabel: Some("system_u:system_r:dm_dom_t".into()),
            stubdomain_kernel: Some("/s/k".into()),
            stubdomain_cmdline: Some("console=hvc0".into()),
            stubdomain_ramdisk: Some("/s/r".into()),
            stubdomain_memory_mib: Some(128),
            hdtype: Some(HdType::Ahci),
            vendor_device: Some(VendorDevice::Xenserver),
            gfx_passthru: Some(GfxPassthru::Igd),
            vkb_device: Some(false),
        }
    );
    let p = &s.platform;
    assert_eq!((p.altp2m, p.altp2m_hvm, p.msr_relaxed), (Some(Altp2mMode::External), Some(true), Some(true)));
    assert_eq!((p.nx, p.acpi_laptop_slate, p.vpt_align), (Some(false), Some(true), Some(true)));
    assert_eq!((p.mmio_hole_mib, p.mca_lmce, p.generate_vm_genid), (Some(1024), true, false));
    assert_eq!(p.cpuid, Some(CpuidPolicy::Libxl("host,tm=0,sse3=0".into())));
    assert_eq!(s.display.spice.port, Some(6000));
    assert_eq!(
        (s.display.sdl_display.as_deref(), s.display.xauthority.as_deref()),
        (Some(":0"), Some("/root/.Xauthority"))
    );

    // What xl -N printed for the same keys (tests/xlcfg/tuning-hvm-devmodel.cfg has more).
    let j = json(&s);
    let b = &j["b_info"];
    assert_eq!((b["altp2m"].as_str(), b["arch_x86"]["msr_relaxed"].as_str()), (Some("external"), Some("True")));
    assert_eq!(
        (b["device_model"].as_str(), b["device_model_user"].as_str()),
        (Some("/usr/local/bin/qemu"), Some("qemu-dm"))
    );
    assert_eq!((b["device_model_stubdomain"].as_str(), b["dm_restrict"].as_str()), (Some("True"), Some("True")));
    assert_eq!(b["device_model_ssid_label"], "system_u:system_r:dm_dom_t");
    assert_eq!((b["stubdomain_memkb"].as_u64(), b["stubdomain_kernel"].as_str()), (Some(131072), Some("/s/k")));
    assert_eq!(
        (b["extra"][1].as_str(), b["extra_pv"][0].as_str(), b["extra_hvm"][0].as_str()),
        (Some("b c"), Some("-pv"), Some("-hvm"))
    );
    assert_eq!(b["cpuid"]["cpuid"][0]["ecx"], "x".repeat(31) + "0");
    let h = &b["type.hvm"];
    assert_eq!((h["hdtype"].as_str(), h["vendor_device"].as_str()), (Some("ahci"), Some("xenserver")));
    assert_eq!((h["gfx_passthru"].as_str(), h["gfx_passthru_kind"].as_str()), (Some("True"), Some("igd")));
    assert_eq!(
        (h["vkb_device"].as_str(), h["nx"].as_str(), h["altp2m"].as_str()),
        (Some("False"), Some("False"), Some("True"))
    );
    assert_eq!((h["acpi_laptop_slate"].as_str(), h["vpt_align"].as_str()), (Some("True"), Some("True")));
    assert_eq!((h["mmio_hole_memkb"].as_u64(), h["mca_caps"].as_u64()), (Some(1048576), Some(1)));
    assert_eq!((h["firmware"].as_str(), h["system_firmware"].as_str()), (Some("/fw/hvmloader"), Some("/fw/bios.bin")));
    assert_eq!((h["smbios_firmware"].as_str(), h["acpi_firmware"].as_str()), (Some("/s/smbios"), Some("/s/acpi")));
    assert_eq!(
        (h["sdl"]["display"].as_str(), h["sdl"]["xauthority"].as_str()),
        (Some(":0"), Some("/root/.Xauthority"))
    );
    let spice = &h["spice"];
    assert_eq!(
        (spice["enable"].as_str(), spice["port"].as_i64(), spice["tls_port"].as_i64()),
        (Some("True"), Some(6000), Some(6001))
    );
    assert_eq!((spice["usbredirection"].as_i64(), spice["streaming_video"].as_str()), (Some(4), Some("filter")));
    assert_eq!(h.get("ms_vm_genid"), None);
    round_trips(&s);
}

#[test]
fn the_device_model_keys_apply_to_pv_guests_too_and_the_hvm_ones_do_not() {
    let s = pv("device_model_args = [ \"-a\" ]\ndevice_model_args_hvm = [ \"-h\" ]\naltp2m = 2\nmsr_relaxed = 0\n\
                dm_restrict = 0\ndevice_model_user = \"u\"\nstubdomain_memory = 0\ncpuid = [ \"0x1:ecx=short\" ]")
    .unwrap();
    let b = &json(&s)["b_info"];
    assert_eq!((b["altp2m"].as_str(), b["arch_x86"]["msr_relaxed"].as_str()), (Some("external"), Some("False")));
    assert_eq!((b["stubdomain_memkb"].as_u64(), b["extra_hvm"][0].as_str()), (Some(0), Some("-h")));
    // The bad item is skipped, as xl skips it, after libxl made an entry for its leaf.
    assert_eq!(b["cpuid"]["cpuid"], serde_json::json!([{"leaf": 1}]));
    round_trips(&s);
    for key in [
        "hdtype = \"ide\"",
        "nx = 1",
        "spice = 1",
        "mmio_hole = 512",
        "ms_vm_genid = \"none\"",
        "firmware_override = \"/f\"",
    ] {
        // xl reads them in its HVM branch only, and skips them in a PV file.
        let s = pv(key).unwrap();
        assert_eq!(s, DomainSpec { uuid: s.uuid, ..pv("").unwrap() }, "{key}");
    }
    // xl writes a PVH guest's SDL keys into the build info's HVM part, where they do nothing.
    let s = pvh("kernel = \"/k\"\ndisplay = \":0\"").unwrap();
    assert_eq!((s.display.sdl_display, s.vnc, s.vfbs.len()), (None, None, 0));
}

#[test]
fn firmware_means_what_xl_makes_of_it_for_each_guest_type() {
    let s = pv("").unwrap();
    assert!(s.kernel.is_some());
    let s = DomainSpec::from_xl_config_text("g.cfg", "name = \"g\"\nfirmware = \"pvgrub64\"\n").unwrap();
    assert_eq!(s.kernel, Some(format!("{XEN_FIRMWARE_DIR}/pvgrub64.bin")));
    // xl compares only as much as is given: any start of a name is that name, even "pv".
    assert_eq!(pvh("firmware = \"pv\"").unwrap().kernel, Some(format!("{XEN_FIRMWARE_DIR}/pv.bin")));
    round_trips(&s);
    assert_eq!(err(pv("firmware = \"pvgrub32\"")), "g.cfg:3: firmware: the kernel is given too; give one of them");
    assert!(
        err(pvh("firmware = \"seabios\"")).starts_with("p.cfg:3: firmware: \"seabios\": only pvgrub32 or pvgrub64")
    );

    // HVM: a BIOS name, a start of "uefi" (the empty string too), a start of "bios", or a file.
    let bios_and_path = |extra: &str| {
        let s = hvm(extra).unwrap();
        round_trips(&s);
        (s.platform.bios, s.platform.firmware_path)
    };
    assert_eq!(bios_and_path("bios = \"seabios\"\nfirmware = \"uefi\""), (Some(BiosKind::Ovmf), None));
    assert_eq!(bios_and_path("firmware = \"\""), (Some(BiosKind::Ovmf), None));
    assert_eq!(bios_and_path("firmware = \"u\""), (Some(BiosKind::Ovmf), None));
    assert_eq!(bios_and_path("bios = \"ovmf\"\nfirmware = \"bi\""), (Some(BiosKind::Ovmf), None));
    assert_eq!(bios_and_path("bios = \"ovmf\"\nfirmware = \"SeaBIOS\""), (Some(BiosKind::Seabios), None));
    assert_eq!(bios_and_path("bios = \"ovmf\"\nfirmware = \"unknown\""), (None, None));
    assert_eq!(
        bios_and_path("firmware_override = \"/a\"\nfirmware = \"/c\""),
        (None, Some("/c".to_string())),
        "firmware replaces firmware_override"
    );
}

#[test]
fn values_are_read_as_xl_reads_them() {
    let s = hvm(
        "gfx_passthru = 7\nhdtype = \"IDE\"\nvendor_device = \"XenServer\"\naltp2m = \"0x3\"\nms_vm_genid = \"none\"",
    )
    .unwrap();
    assert_eq!(s.device_model.gfx_passthru, Some(GfxPassthru::On));
    assert_eq!(
        (s.device_model.hdtype, s.device_model.vendor_device),
        (Some(HdType::Ide), Some(VendorDevice::Xenserver))
    );
    assert_eq!((s.platform.altp2m, s.platform.generate_vm_genid), (Some(Altp2mMode::Limited), false));
    round_trips(&s);
    let s = hvm("gfx_passthru = \"default\"\nmmio_hole = 256\naltp2m = \"Mixed\"").unwrap();
    assert_eq!((s.device_model.gfx_passthru, s.platform.mmio_hole_mib), (Some(GfxPassthru::On), Some(256)));
    assert_eq!(s.platform.altp2m, Some(Altp2mMode::Mixed));
    let s = hvm("gfx_passthru = 0\nmmio_hole = 3840\nmca_caps = []\ndevice_model_args = []").unwrap();
    assert_eq!((s.device_model.gfx_passthru, s.platform.mca_lmce), (Some(GfxPassthru::Off), false));
    assert!(s.device_model.args.is_empty());
    round_trips(&s);
}

#[test]
fn what_xl_refuses_is_refused_naming_file_line_and_key() {
    let cases = [
        (hvm("mmio_hole = 255"), "h.cfg:3: mmio_hole: 255: must be 256 to 3840 (MiB)"),
        (hvm("\nmmio_hole = 3841"), "h.cfg:4: mmio_hole: 3841: must be 256 to 3840"),
        (hvm("mmio_hole = \"-1\""), "h.cfg:3: mmio_hole: -1: must be 256 to 3840"),
        (hvm("mca_caps = \"lmce\""), "h.cfg:3: mca_caps: a single value, where xl expects a list"),
        (hvm("mca_caps = [ \"lmce\",\n  \"cmci\" ]"), "h.cfg:4: mca_caps[1]: \"cmci\": not an MCA capability"),
        (hvm("ms_vm_genid = \"yes\""), "h.cfg:3: ms_vm_genid: \"yes\": expected generate or none"),
        (hvm("ms_vm_genid = 1"), "h.cfg:3: ms_vm_genid: \"1\": expected generate or none"),
        (hvm("hdtype = \"scsi\""), "h.cfg:3: hdtype: \"scsi\": expected ide or ahci"),
        (hvm("vendor_device = \"citrix\""), "h.cfg:3: vendor_device: \"citrix\": expected none or xenserver"),
        (hvm("gfx_passthru = \"nvidia\""), "h.cfg:3: gfx_passthru: \"nvidia\": expected 0, 1, default or igd"),
        (hvm("altp2m = 4"), "h.cfg:3: altp2m: \"4\": expected disabled, mixed"),
        (pv("altp2m = \"shared\""), "g.cfg:3: altp2m: \"shared\": expected disabled"),
        (pv("device_model_args_pv = \"-x\""), "g.cfg:3: device_model_args_pv: a single value, where xl expects a list"),
        (pv("stubdomain_memory = \"-1\""), "g.cfg:3: stubdomain_memory: -1: must be at least 0"),
        (pv("stubdomain_memory = 2000000"), "g.cfg:3: stubdomain_memory: 2000000: more than 1 TiB"),
        (hvm("spiceport = 4294967296"), "h.cfg:3: spiceport: 4294967296: too large"),
        (pv("display = \":0\""), "g.cfg:3: display: a PV guest's display needs vnc = 1"),
    ];
    for (result, want) in cases {
        let got = err(result);
        assert!(got.starts_with(want), "want {want:?}\n got {got:?}");
    }
    // Beside a vfb list xl ignores a PV guest's top-level display keys.
    let s = pv("vfb = [ \"vnc=1\" ]\nxauthority = \"/x\"").unwrap();
    assert_eq!((s.display.xauthority, s.vnc.is_some()), (None, true));
}

#[test]
fn cpuid_keeps_the_text_and_warns_about_what_libxl_refuses() {
    let s = hvm("cpuid = \"host,tm=0,bogus=1\"").unwrap();
    assert_eq!(s.platform.cpuid, Some(CpuidPolicy::Libxl("host,tm=0,bogus=1".into())));
    let ones = "1".repeat(32);
    let text = format!("cpuid = [ \"0x80000001,0:eax={ones}\",\n  \"zz\" ]");
    let s = pv(&text).unwrap();
    assert_eq!(s.platform.cpuid, Some(CpuidPolicy::Xend(vec![format!("0x80000001,0:eax={ones}"), "zz".into()])));
    let c = &json(&s)["b_info"]["cpuid"];
    assert_eq!(
        (c["cpuid"][0]["leaf"].as_u64(), c["cpuid"][0]["eax"].as_str()),
        (Some(0x8000_0001), Some(ones.as_str()))
    );
    assert_eq!(c["cpuid"].as_array().map(Vec::len), Some(1));
    round_trips(&s);
    let s = pv("cpuid = \"tm=0\"").unwrap();
    assert_eq!(json(&s)["b_info"].get("cpuid"), None, "xl ignores a string that does not start with host");
    round_trips(&s);
    round_trips(&pv("cpuid = []").unwrap());
}

#[test]
fn display_and_xauthority_go_where_xl_puts_them() {
    let s = pv("vnc = 1\nsdl = 1\ndisplay = \":1\"\nxauthority = \"/x\"").unwrap();
    let vfb = &json(&s)["vfbs"][0]["sdl"];
    assert_eq!(
        (vfb["display"].as_str(), vfb["xauthority"].as_str(), vfb["enable"].as_str()),
        (Some(":1"), Some("/x"), Some("True"))
    );
    round_trips(&s);
    let s = pv("vfb = [ \"vnc=1,display=:2,xauthority=/y,sdl=1\" ]").unwrap();
    assert_eq!((s.display.sdl_display.as_deref(), s.display.xauthority.as_deref()), (Some(":2"), Some("/y")));
    round_trips(&s);
    let s = pv("vnc = 0\ndisplay = \":1\"").unwrap();
    assert_eq!(s.display.sdl_display, None, "xl reads it only for vnc = 1");
}

#[test]
fn spice_negative_ports_round_trip_in_quotes() {
    let s = hvm("spice = 1\nspiceport = \"-1\"\nspiceusbredirection = \"-2\"").unwrap();
    assert_eq!((s.display.spice.port, s.display.spice.usb_redirection), (Some(-1), Some(-2)));
    round_trips(&s);
}

#[test]
fn a_vm_generation_id_is_made_afresh_for_each_config() {
    let s = hvm("ms_vm_genid = \"generate\"").unwrap();
    assert!(s.platform.generate_vm_genid);
    let id = |j: Value| -> Vec<u64> {
        j["b_info"]["type.hvm"]["ms_vm_genid"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap()).collect()
    };
    let (a, b) = (id(json(&s)), id(json(&s)));
    assert_eq!(a.len(), 16);
    assert!(a.iter().all(|&byte| byte < 256) && a.iter().any(|&byte| byte != 0));
    assert_ne!(a, b, "as `xl create` generates one each time");
    round_trips(&s);
}

#[test]
fn specs_from_elsewhere_are_validated() {
    let e = |s: DomainSpec| s.validate().unwrap_err().to_string();
    let mut s = DomainSpec::pv("p").kernel("/k");
    s.platform.nx = Some(true);
    assert_eq!(e(s), "invalid platform.nx \"\": applies to HVM guests only, not pv");
    let mut s = DomainSpec::pvh("p").kernel("/k");
    s.display.spice = SpiceSpec { enable: Some(true), ..SpiceSpec::default() };
    assert!(e(s).starts_with("invalid display.spice"));
    let mut s = DomainSpec::pv("p").kernel("/k");
    s.device_model.hdtype = Some(HdType::Ahci);
    assert!(e(s).starts_with("invalid device_model.hdtype"));
    let mut s = DomainSpec::hvm("h");
    s.platform.mmio_hole_mib = Some(4096);
    assert!(e(s).starts_with("invalid platform.mmio_hole_mib \"4096\""));
    let mut s = DomainSpec::pv("p").kernel("/k");
    s.display.xauthority = Some("/x".into());
    assert!(e(s).contains("set vnc too"));
    let mut s = DomainSpec::hvm("h");
    s.device_model.stubdomain_memory_mib = Some(u64::MAX);
    assert!(e(s).starts_with("invalid device_model.stubdomain_memory_mib"));
}

#[test]
fn records_without_the_new_fields_still_load_and_defaults_are_not_written() {
    let s = pv("").unwrap();
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json.get("device_model"), None);
    assert_eq!((json["platform"].get("cpuid"), json["display"].get("spice")), (None, None));
    assert_eq!(serde_json::from_value::<DomainSpec>(json).unwrap(), s);
    let all = hvm(HVM_ALL).unwrap();
    let back: DomainSpec = serde_json::from_value(serde_json::to_value(&all).unwrap()).unwrap();
    assert_eq!(back, all);
}
