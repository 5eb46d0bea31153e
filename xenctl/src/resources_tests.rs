//! Unit tests of `resources.rs`: xl's number syntax, each sub-syntax, the keys read from a
//! whole file (values, errors naming file/line/key, shapes xl ignores), libxl's config and
//! JSON, and round trips through `to_xl_config`.

use super::*;
use crate::pci::PciSpec;

fn parse(text: &str) -> Result<DomainSpec> {
    DomainSpec::from_xl_config_text("r.cfg", text)
}

fn pv(extra: &str) -> Result<DomainSpec> {
    parse(&format!("name = \"r\"\nkernel = \"/k\"\n{extra}\n"))
}

fn hvm(extra: &str) -> Result<DomainSpec> {
    parse(&format!("name = \"r\"\ntype = \"hvm\"\n{extra}\n"))
}

fn json(spec: &DomainSpec) -> serde_json::Value {
    serde_json::from_str(&spec.to_libxl_json().unwrap()).unwrap()
}

fn round_trip(spec: &DomainSpec) -> DomainSpec {
    let text = spec.to_xl_config().unwrap();
    DomainSpec::from_xl_config_text("back.cfg", &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn ioport_ranges() {
    let ok = |text: &str| ioport_from_xl(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(ok("2f8-2ff"), (IoportRange { first: 0x2f8, count: 8 }, None));
    assert_eq!(ok("3f8"), (IoportRange { first: 0x3f8, count: 1 }, None));
    assert_eq!(ok("0x2e8-0x2ef").0, IoportRange::new(0x2e8, 0x2ef));
    assert_eq!(ok("+10-+1f").0, IoportRange { first: 0x10, count: 16 });
    assert_eq!(ok("fffffffe").0, IoportRange { first: 0xffff_fffe, count: 1 });
    // xl complains about text after a lone port, and goes on with the port.
    let (range, note) = ok("2f8x");
    assert_eq!(
        (range, note.unwrap()),
        (IoportRange::new(0x2f8, 0x2f8), "xl reads the port 2f8 and skips \"x\"".into())
    );
    assert_eq!(ok(" 0x3f8 - 3ff").0, IoportRange::new(0x3f8, 0x3f8));
    for (text, want) in [
        ("xyz", "not an I/O port range"),
        ("", "not an I/O port range"),
        ("2f8-", "not an I/O port range"),
        ("2f8-2ffz", "not an I/O port range"),
        ("2f8-2ff ", "not an I/O port range"),
        ("ffffffff", "port ffffffff too big"),
        ("-1", "too big"),
        ("10-ffffffff", "port ffffffff too big"),
        ("300-2f8", "ends at 2f8, before it starts"),
    ] {
        let e = ioport_from_xl(text).unwrap_err();
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn irqs_and_iomem_ranges() {
    for (text, irq) in [("3", 3), (" 7", 7), ("+9", 9), ("-0", 0), ("4294967294", u32::MAX - 1)] {
        assert_eq!(irq_from_xl(text), Ok(irq), "{text:?}");
    }
    for (text, want) in [("-1", "too big"), ("4294967295", "too big"), ("7a", "not an IRQ"), ("", "not an IRQ")] {
        assert!(irq_from_xl(text).unwrap_err().contains(want), "{text:?}");
    }
    let range = |start, pages, gfn| IomemRange { start, pages, gfn };
    for (text, want) in [
        ("fed00,1", range(0xfed00, 1, None)),
        ("e0000,10@e0000", range(0xe0000, 0x10, Some(0xe0000))),
        ("0xfebf0,0x4@0xc0000", range(0xfebf0, 4, Some(0xc0000))),
        ("fed01, 2@0x100", range(0xfed01, 2, Some(0x100))),
        ("-1,1", range(u64::MAX, 1, None)),
        // libxl's "no GFN" is no GFN.
        ("fed03,1@ffffffffffffffff", range(0xfed03, 1, None)),
    ] {
        assert_eq!(iomem_from_xl(text), Ok(want), "{text:?}");
    }
    for text in ["zz,1", "fed00", "fed00,", "fed00,1@", " FED02 ,3", "fed00,1@5x", "fed00,1 ", "fed00,1#2"] {
        assert!(iomem_from_xl(text).unwrap_err().starts_with("not an I/O memory range"), "{text:?}");
    }
}

#[test]
fn rdm_is_what_libxlutil_makes_of_it() {
    let host = RdmSpec { strategy: RdmStrategy::Host, policy: Some(RdmPolicy::XlUndefined) };
    assert_eq!(rdm_from_xl("strategy=host").unwrap(), RdmOutcome::Applied(host, None));
    // An unknown policy: libxlutil complains, and xl applies the strategy all the same.
    assert_eq!(
        rdm_from_xl("strategy=host,policy=bogus").unwrap(),
        RdmOutcome::Applied(host, Some("Unknown RDM policy: bogus".into()))
    );
    // A valid policy makes xl 4.17's libxlutil give up on the whole setting.
    for text in ["strategy=host,policy=relaxed", "policy=strict,strategy=host", "strategy=host,policy=STRICT"] {
        assert!(matches!(rdm_from_xl(text).unwrap(), RdmOutcome::Ignored(_)), "{text}");
    }
    assert_eq!(
        rdm_from_xl("strategy=guest").unwrap(),
        RdmOutcome::Ignored("Unknown RDM strategy option: guest".into())
    );
    for text in ["", "strategy=host,", "host", "colour=red"] {
        assert!(matches!(rdm_from_xl(text).unwrap(), RdmOutcome::Ignored(_)), "{text:?}");
    }
    let e = rdm_from_xl("policy=bogus").unwrap_err().to_string();
    assert!(e.contains("uninitialised memory"), "{e}");
}

/// A realistic driver-domain config with every key of this module.
const ALL_KEYS: &str = "name = 'io'\ntype = 'hvm'\nmemory = 512\n\
    pci = [ '0000:03:00.0' ]\n\
    ioports = [ '2f8-2ff', '3f8' ]\n\
    irqs = [ 3, '4' ]\n\
    iomem = [ 'fed00,1', 'e0000,10@e0000' ]\n\
    rdm = 'strategy=host'\n\
    rdm_mem_boundary = 4096\n\
    dtdev = [ '/soc/serial@1c090000' ]\n\
    device_tree = '/boot/pass.dtb'\n";

#[test]
fn every_key_sets_its_field() {
    let spec = parse(ALL_KEYS).unwrap();
    let want = HostResources {
        ioports: vec![IoportRange::new(0x2f8, 0x2ff), IoportRange::new(0x3f8, 0x3f8)],
        irqs: vec![3, 4],
        iomem: vec![
            IomemRange { start: 0xfed00, pages: 1, gfn: None },
            IomemRange { start: 0xe0000, pages: 0x10, gfn: Some(0xe0000) },
        ],
        rdm: Some(RdmSpec { strategy: RdmStrategy::Host, policy: Some(RdmPolicy::XlUndefined) }),
        rdm_mem_boundary_mib: Some(4096),
        dtdevs: vec!["/soc/serial@1c090000".into()],
        device_tree: Some("/boot/pass.dtb".into()),
    };
    assert_eq!(spec.resources, want);
    assert_eq!(round_trip(&spec), spec);
    assert!(pv("").unwrap().resources.is_unset());
}

#[test]
fn libxl_gets_what_xl_gives() {
    let j = json(&parse(ALL_KEYS).unwrap());
    let b = &j["b_info"];
    assert_eq!(b["ioports"], serde_json::json!([{"first": 760, "number": 8}, {"first": 1016, "number": 1}]));
    assert_eq!(b["irqs"], serde_json::json!([3, 4]));
    assert_eq!(
        b["iomem"],
        serde_json::json!([{"start": 1043712, "number": 1}, {"start": 917504, "number": 16, "gfn": 917504}])
    );
    assert_eq!(b["device_tree"], "/boot/pass.dtb");
    assert_eq!(j["dtdevs"], serde_json::json!([{"path": "/soc/serial@1c090000"}]));
    let hvm = &b["type.hvm"];
    // xl's undefined policy is none of libxl's, so its JSON prints null, as it does for xl.
    assert_eq!(hvm["rdm"], serde_json::json!({"strategy": "host", "policy": null}));
    assert_eq!(hvm["rdm_mem_boundary_memkb"], 4096 * 1024);
    assert_eq!(j["pcidevs"][0]["rdm_policy"], serde_json::Value::Null);
    assert!(j["pcidevs"][0].as_object().unwrap().contains_key("rdm_policy"));
}

#[test]
fn rdm_reaches_the_pci_devices_of_any_guest() {
    // PV: xl writes the setting where a PV guest's build info has none, and copies its
    // policy into every PCI device.
    let j = json(&pv("pci = [ '03:00.0' ]\nrdm = 'strategy=host'").unwrap());
    assert_eq!(j["pcidevs"][0]["rdm_policy"], serde_json::Value::Null);
    assert!(j["pcidevs"][0].as_object().unwrap().contains_key("rdm_policy"));
    assert_eq!(json(&pv("pci = [ '03:00.0' ]").unwrap())["pcidevs"][0]["rdm_policy"], "strict");
    // Ignored (a valid policy): the devices keep what they had.
    let j = json(&hvm("pci = [ '03:00.0' ]\nrdm = 'strategy=host,policy=relaxed'").unwrap());
    assert_eq!(j["b_info"]["type.hvm"]["rdm"], serde_json::json!({}));
    assert!(!j["pcidevs"][0].as_object().unwrap().contains_key("rdm_policy"));
    // From Rust, with a real policy.
    let mut spec = DomainSpec::hvm("h").pci(PciSpec::new("0000:03:00.0".parse().unwrap()));
    spec.resources.rdm = Some(RdmSpec { strategy: RdmStrategy::Host, policy: Some(RdmPolicy::Strict) });
    let j = json(&spec);
    assert_eq!(j["b_info"]["type.hvm"]["rdm"], serde_json::json!({"strategy": "host", "policy": "strict"}));
    assert_eq!(j["pcidevs"][0]["rdm_policy"], "strict");
    let e = spec.to_xl_config().unwrap_err().to_string();
    assert!(e.starts_with("invalid resources.rdm") && e.contains("xl 4.17 cannot say this"), "{e}");
}

#[test]
fn values_of_the_wrong_shape_are_ignored_as_xl_ignores_them() {
    let spec = hvm("irqs = 5\nioports = '2f8'\niomem = 'fe,1'\ndtdev = '/soc/x'\n\
         rdm = [ 'strategy=host' ]\ndevice_tree = [ 'x' ]\nrdm_mem_boundary = 'abc'")
    .unwrap();
    assert!(spec.resources.is_unset(), "{:?}", spec.resources);
    assert_eq!(hvm("rdm_mem_boundary = [ 1 ]").unwrap().resources.rdm_mem_boundary_mib, None);
    assert_eq!(hvm("rdm_mem_boundary = '0x10'").unwrap().resources.rdm_mem_boundary_mib, Some(16));
    assert!(hvm("rdm = 'strategy=guest'").unwrap().resources.rdm.is_none());
}

#[test]
fn errors_name_file_line_and_key() {
    for (text, want) in [
        ("ioports = [ '2f8-2ff',\n  'xyz' ]", "r.cfg:4: ioports[1]: \"xyz\": not an I/O port range"),
        ("irqs = [ '7a' ]", "r.cfg:3: irqs[0]: \"7a\": not an IRQ number"),
        ("irqs = [ '4', [ '5' ] ]", "r.cfg:3: irqs[1]: a nested list"),
        ("iomem = [ 'fed00,1@' ]", "r.cfg:3: iomem[0]: \"fed00,1@\": not an I/O memory range"),
        ("dtdev = [ '' ]", "r.cfg:3: dtdev[0]: an empty device-tree path"),
        ("rdm = 'policy=bogus'", "r.cfg:3: rdm: rdm \"policy=bogus\": without strategy=host"),
    ] {
        let e = pv(text).unwrap_err().to_string();
        assert!(e.starts_with(want), "{text}: {e}");
    }
    // xl reads rdm_mem_boundary for HVM guests only, and skips it in others.
    assert_eq!(pv("rdm_mem_boundary = 1").unwrap().resources.rdm_mem_boundary_mib, None);
    let e = hvm("rdm_mem_boundary = '-1'").unwrap_err().to_string();
    assert!(e.starts_with("r.cfg:3: rdm_mem_boundary: -1: must be 0 to"), "{e}");
}

#[test]
fn specs_from_rust_are_checked() {
    let check = |res: HostResources, kind| res.validate(kind).unwrap_err().to_string();
    let ports =
        |first, count| HostResources { ioports: vec![IoportRange { first, count }], ..HostResources::default() };
    assert!(check(ports(0x2f8, 0), DomainKind::Pv).starts_with("invalid resources.ioports[0] \"2f8+0\""));
    assert!(check(ports(0xffff_fff0, 0x10), DomainKind::Pv).contains("below ffffffff"));
    assert!(ports(0xffff_fff0, 0xf).validate(DomainKind::Pv).is_ok());
    let irq = HostResources { irqs: vec![1, u32::MAX], ..HostResources::default() };
    assert!(check(irq, DomainKind::Pv).starts_with("invalid resources.irqs[1]"));
    let gfn =
        HostResources { iomem: vec![IomemRange { start: 1, pages: 1, gfn: Some(u64::MAX) }], ..Default::default() };
    assert!(check(gfn, DomainKind::Pv).contains("no GFN"));
    let boundary = HostResources { rdm_mem_boundary_mib: Some(2048), ..HostResources::default() };
    assert!(check(boundary.clone(), DomainKind::Pvh).contains("HVM guests only"));
    assert!(boundary.validate(DomainKind::Hvm).is_ok());
    // Reported under the xl key when it comes from a file.
    let mut spec = DomainSpec::pv("p").kernel("/k");
    spec.resources = ports(1, 0);
    let e = spec.validate().unwrap_err().to_string();
    assert!(e.starts_with("invalid resources.ioports[0]"), "{e}");
}

#[test]
fn serde_leaves_unset_resources_out() {
    let spec = DomainSpec::pv("p").kernel("/k");
    let value = serde_json::to_value(&spec).unwrap();
    assert!(value.get("resources").is_none());
    let spec = parse(ALL_KEYS).unwrap();
    let text = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<DomainSpec>(&text).unwrap(), spec);
    let value = serde_json::to_value(&spec).unwrap();
    assert_eq!(value["resources"]["rdm"], serde_json::json!({"strategy": "host", "policy": "xl_undefined"}));
}

#[test]
fn a_devices_own_rdm_policy_is_kept_written_and_read_back() {
    // EVE's xl config for a USB controller: `pci = [ '00:14.0,rdm_policy=relaxed' ]`.
    let j = json(&pv("pci = [ '00:14.0,rdm_policy=relaxed', '03:00.0' ]").unwrap());
    assert_eq!(j["pcidevs"][0]["rdm_policy"], "relaxed");
    assert_eq!(j["pcidevs"][1]["rdm_policy"], "strict", "the other device: as xl writes it for PV");
    let mut usb = PciSpec::new("0000:00:14.0".parse().unwrap());
    usb.rdm_policy = Some(RdmPolicy::Relaxed);
    let spec = DomainSpec::hvm("h").pci(usb);
    assert_eq!(json(&spec)["pcidevs"][0]["rdm_policy"], "relaxed");
    let text = spec.to_xl_config().unwrap();
    assert!(text.contains("0000:00:14.0,rdm_policy=relaxed"), "{text}");
    assert_eq!(DomainSpec::from_xl_config_text("h.cfg", &text).unwrap(), spec);
}
