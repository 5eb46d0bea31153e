//! Unit tests of the xl.cfg values read as xl reads them, where a plain reading would differ
//! from xl's (tools/xl/xl_parse.c, 4.17): xm-era keys, VNC settings with VNC off or on by
//! default, per-vCPU pinning, the viridian list and an unstated vCPU count. Each checks the
//! spec, the libxl JSON (`xl -N create`'s) and the round trip through `to_xl_config`.

use super::tests::{err, hvm, pv};
use crate::devices::VncSpec;
use crate::options::DisplaySpec;
use crate::spec::DomainSpec;

#[test]
fn xm_keys_that_xl_ignores_are_ignored_and_typos_still_refused() {
    let xm = "vncconsole = 1\non_xend_start = \"ignore\"\non_xend_stop = \"shutdown\"\nbootargs = \"-q\"";
    let mut with = pv(xm).unwrap();
    with.uuid = pv("").unwrap().uuid;
    let mut without = pv("").unwrap();
    without.uuid = with.uuid;
    assert_eq!(with, without, "xl builds the same domain without them");
    assert_eq!(err(pv("vncconsol = 1")), "g.cfg:3: vncconsol: not an xl.cfg key");
}

#[test]
fn vnc_settings_left_with_vnc_0_are_kept_off_for_hvm_and_ignored_for_pv() {
    let s = hvm("vnc = 0\nvnclisten = \"0.0.0.0\"\nvncpasswd = \"pw\"").unwrap();
    assert!(s.display.vnc_disabled);
    let want = VncSpec { listen: Some("0.0.0.0".into()), password: Some("pw".into()), ..VncSpec::default() };
    assert_eq!(s.vnc, Some(want));
    let json: serde_json::Value = serde_json::from_str(&s.to_libxl_json().unwrap()).unwrap();
    let vnc = &json["b_info"]["type.hvm"]["vnc"];
    assert_eq!(
        (vnc["enable"].as_str(), vnc["listen"].as_str(), vnc["passwd"].as_str()),
        (Some("False"), Some("0.0.0.0"), Some("pw"))
    );
    let back = DomainSpec::from_xl_config_text("h.cfg", &s.to_xl_config().unwrap()).unwrap();
    assert_eq!(back, s);
    let p = pv("vnc = 0\nvnclisten = \"0.0.0.0\"\nvncpasswd = \"pw\"\nkeymap = \"de\"").unwrap();
    assert_eq!((p.vnc, p.display), (None, DisplaySpec::default()), "xl reads them only for vnc = 1");
}

#[test]
fn vnc_on_by_libxls_default_leaves_enable_unstated_as_xl_does() {
    let json = |s: &DomainSpec| -> serde_json::Value { serde_json::from_str(&s.to_libxl_json().unwrap()).unwrap() };
    let h = hvm("vnclisten = \"0.0.0.0\"").unwrap();
    let vnc = &json(&h)["b_info"]["type.hvm"]["vnc"];
    assert_eq!((vnc.get("enable"), vnc["listen"].as_str()), (None, Some("0.0.0.0")));
    let p = pv("vfb = [ 'type=vnc,vncdisplay=1,vnclisten=0.0.0.0' ]").unwrap();
    let vfb = &json(&p)["vfbs"][0];
    assert_eq!(
        (vfb["vnc"].get("enable"), vfb["vnc"]["display"].as_u64(), vfb["devid"].as_u64()),
        (None, Some(1), Some(0))
    );
    for s in [h, p] {
        let text = s.to_xl_config().unwrap();
        assert!(!text.contains("vnc = 1") && !text.contains("vnc=1"), "{text}");
        assert_eq!(DomainSpec::from_xl_config_text("x.cfg", &text).unwrap(), s);
    }
}

#[test]
fn a_per_vcpu_cpus_list_pins_each_vcpu_as_xl_does() {
    let s = pv("vcpus = 3\ncpus = [ \"2\", \"3-4,^4,5\" ]").unwrap();
    assert_eq!((s.cpus.clone(), s.vcpu_cpus.clone()), (vec![], vec![vec![2], vec![3, 5]]));
    let json: serde_json::Value = serde_json::from_str(&s.to_libxl_json().unwrap()).unwrap();
    assert_eq!(json["b_info"]["vcpu_hard_affinity"], serde_json::json!([[2], [3, 5]]));
    assert_eq!(json["b_info"]["numa_placement"], "False");
    assert_eq!(DomainSpec::from_xl_config_text("g.cfg", &s.to_xl_config().unwrap()).unwrap(), s);
    // Entries past the last vCPU: xl ignores them.
    assert_eq!(pv("vcpus = 1\ncpus = [ \"2\", \"3\" ]").unwrap().vcpu_cpus, vec![vec![2]]);
}

#[test]
fn a_viridian_list_becomes_xls_enable_and_disable_sets() {
    let s = hvm("viridian = [ \"defaults\", \"freq\", \"!freq\", \"stimer\", \"!apic_assist\" ]").unwrap();
    assert_eq!(s.platform.viridian_enlightenments.len(), 5);
    let json: serde_json::Value = serde_json::from_str(&s.to_libxl_json().unwrap()).unwrap();
    let h = &json["b_info"]["type.hvm"];
    // freq (1) enabled then disabled; stimer is 8, apic_assist 5 (libxl_types.idl).
    assert_eq!(
        (h["viridian"].as_str(), h["viridian_enable"].clone(), h["viridian_disable"].clone()),
        (Some("True"), serde_json::json!([8]), serde_json::json!([1, 5]))
    );
    assert_eq!(DomainSpec::from_xl_config_text("h.cfg", &s.to_xl_config().unwrap()).unwrap(), s);
    let all = hvm("viridian = [ \"all\", \"!base\" ]").unwrap();
    let json: serde_json::Value = serde_json::from_str(&all.to_libxl_json().unwrap()).unwrap();
    assert_eq!(json["b_info"]["type.hvm"]["viridian_enable"], serde_json::json!((1..64).collect::<Vec<_>>()));
    assert_eq!(hvm("viridian = 1").unwrap().platform.viridian, Some(true), "the boolean form");
}

#[test]
fn without_vcpus_the_count_is_left_to_libxl_as_xl_leaves_it() {
    let json = |s: &DomainSpec| -> serde_json::Value { serde_json::from_str(&s.to_libxl_json().unwrap()).unwrap() };
    let s = pv("memory = 64").unwrap();
    assert_eq!((s.vcpus, s.vcpus_unstated, s.max_vcpus), (1, true, None));
    let b = json(&s)["b_info"].clone();
    assert_eq!((b.get("max_vcpus"), b.get("avail_vcpus")), (None, None));
    let m = pv("maxvcpus = 1").unwrap();
    let b = json(&m)["b_info"].clone();
    assert_eq!((b["max_vcpus"].as_i64(), b.get("avail_vcpus")), (Some(1), None), "xl states maxvcpus as given");
    let one = pv("vcpus = 1").unwrap();
    assert_eq!((json(&one)["b_info"]["max_vcpus"].as_i64(), one.vcpus_unstated), (Some(1), false));
    for spec in [s, m, one] {
        assert_eq!(DomainSpec::from_xl_config_text("g.cfg", &spec.to_xl_config().unwrap()).unwrap(), spec);
    }
}
