//! Tests of the PV device lists: xl.cfg in (pvdevices_xl.rs), libxl's config and JSON out,
//! and xl.cfg text back (pvdevices.rs).

use super::*;
use crate::pvdevices_xl::{channel_from_xl, vkb_from_xl};
use crate::raw::string_from_c;

const HEAD: &str = "name = 'g'\nkernel = '/k'\n";

/// `body` after a minimal PV config's name and kernel, parsed; panics on an error.
pub(crate) fn parse(body: &str) -> DomainSpec {
    DomainSpec::from_xl_config_text("g.cfg", &format!("{HEAD}{body}")).unwrap_or_else(|e| panic!("{body}: {e}"))
}

/// The error `body` after a minimal PV config's name and kernel gives; panics on success.
pub(crate) fn refusal(body: &str) -> String {
    match DomainSpec::from_xl_config_text("g.cfg", &format!("{HEAD}{body}")) {
        Ok(spec) => panic!("accepted {body}: {spec:?}"),
        Err(e) => e.to_string(),
    }
}

/// What to_xl_config writes reads back as the same spec.
fn round_trip(spec: &DomainSpec) -> String {
    let text = spec.to_xl_config().unwrap_or_else(|e| panic!("{e}"));
    let back = DomainSpec::from_xl_config_text("out.cfg", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&back, spec, "{text}");
    text
}

fn s(p: *const std::ffi::c_char) -> Option<String> {
    // SAFETY: test helper over strings owned by a live config.
    unsafe { string_from_c(p) }
}

#[test]
fn channels_are_read_as_xl_reads_them() {
    let spec = parse(
        "channel = [ 'name=org.a.1,connection=pty',\n    ' backend = stor , name = org.b.2 , connection = socket , path = /run/b.sock ' ]\n",
    );
    assert_eq!(
        spec.channels,
        [ChannelSpec::pty("org.a.1"), ChannelSpec::socket("org.b.2", "/run/b.sock").backend("stor")]
    );
    // Blanks are trimmed away, so one is how an empty value is written.
    assert_eq!(parse("channel = [ 'name= ,connection=pty' ]").channels[0].name, "");
    let mut warnings = Vec::new();
    let c = channel_from_xl("name=a,connection=pty,path=/x,colour=red", &mut warnings).unwrap();
    assert_eq!(c, ChannelSpec::pty("a"));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("`colour'") && warnings[1].contains("path="), "{warnings:?}");
}

#[test]
fn bad_channels_are_refused_at_their_item() {
    for (item, want) in [
        ("name=a", "needs connection=pty or connection=socket"),
        ("name=a,connection=PTY", "connection=PTY: expected pty or socket"),
        ("name=a,connection=socket", "connection=socket needs path="),
        ("connection=pty", "needs name="),
        ("", "an empty channel spec"),
        (",,", "an empty channel spec"),
        ("name=a,connection=pty,junk", "`junk' is not KEY=VALUE"),
        ("name=,connection=pty", "`name=' is not KEY=VALUE"),
        ("name=a,connection=socket,path=/tmp/a=b", "cannot hold `='"),
    ] {
        let e = refusal(&format!("memory = 64\nchannel = [ 'name=ok,connection=pty',\n  '{item}' ]\n"));
        assert!(e.starts_with("g.cfg:5: channel[1]: ") && e.contains(want), "{item}: {e}");
    }
}

#[test]
fn vtpms_need_a_backend_and_take_libuuids_uuids() {
    let spec =
        parse("vtpm = [ 'backend=vtpmmgr,uuid=B7A3C1D2-1E2F-4A5B-9C8D-7E6F5A4B3C2D', ' backend=0', 'backend=' ]");
    let uuid = Uuid::parse_str("b7a3c1d2-1e2f-4a5b-9c8d-7e6f5a4b3c2d").unwrap();
    assert_eq!(spec.vtpms, [VtpmSpec::new("vtpmmgr").uuid(uuid), VtpmSpec::new("0"), VtpmSpec::new("")]);
    // The nil UUID is libxl's "make one up".
    assert_eq!(parse("vtpm = [ 'backend=a,uuid=00000000-0000-0000-0000-000000000000' ]").vtpms[0].uuid, None);
    // xl stops reading at an option without `=': only harmless at the very end.
    assert_eq!(parse("vtpm = [ 'backend=a, ' ]").vtpms[0], VtpmSpec::new("a"));
    for (item, want) in [
        ("uuid=b7a3c1d2-1e2f-4a5b-9c8d-7e6f5a4b3c2d", "needs backend="),
        ("backend=a,uuid=b7a3c1d2-1e2f-4a5b-9c8d", "not a UUID"),
        ("backend=a,uuid={b7a3c1d2-1e2f-4a5b-9c8d-7e6f5a4b3c2d}", "not a UUID"),
        ("backend=a,colour=red", "unknown option `colour'"),
        ("backend=a,junk,uuid=bad", "`junk' is not KEY=VALUE (xl would ignore it and the rest"),
        ("", "needs backend="),
    ] {
        let e = refusal(&format!("vtpm = [ '{item}' ]"));
        assert!(e.starts_with("g.cfg:3: vtpm[0]: ") && e.contains(want), "{item}: {e}");
    }
}

#[test]
fn p9_items_take_what_they_lack_from_the_one_before_as_xl_does() {
    let spec = parse(
        "p9 = [ 'tag=share,path=/srv/share,security_model=none', 'tag=b, path=/b ,security_model=none,backend=fsd',\n\
         'tag=c,path=/c', 'path=/d' ]",
    );
    assert_eq!(
        spec.p9s,
        [
            P9Spec::new("share", "/srv/share", "none"),
            // Only leading blanks of an option go: the path keeps its trailing one.
            P9Spec::new("b", "/b ", "none").backend("fsd"),
            P9Spec::new("c", "/c", "none").backend("fsd"),
            P9Spec::new("c", "/d", "none").backend("fsd"),
        ]
    );
    assert_eq!(parse("p9 = [ 'tag=a,path=/a,security_model=mapped-xattr,tag=z' ]").p9s[0].tag, "z");
    for (item, want) in [
        ("tag=a,path=/a", "missing: security_model"),
        ("", "missing: tag, path, security_model"),
        ("tag=a,path=/a,security_model=none,ro=1", "unknown option `ro'"),
        ("tag=a,ro,path=/a,security_model=none", "`ro' is not KEY=VALUE"),
    ] {
        let e = refusal(&format!("p9 = [ '{item}' ]"));
        assert!(e.starts_with("g.cfg:3: p9[0]: ") && e.contains(want), "{item}: {e}");
    }
}

#[test]
fn pvcalls_and_a_list_key_given_one_string() {
    let spec = parse("pvcalls = [ '', 'backend=net', 'backend=' ]\nvkb = 'backend-type=qemu'\n");
    let named = |b: &str| PvcallsSpec { backend_domain: Some(b.into()) };
    assert_eq!(spec.pvcalls, [PvcallsSpec::default(), named("net"), named("")]);
    assert!(spec.vkbs.is_empty(), "a string where xl wants a list: ignored, as xl does");
    let e = refusal("pvcalls = [ 'backend=a,x=1' ]");
    assert!(e.starts_with("g.cfg:3: pvcalls[0]: ") && e.contains("unknown option `x'"), "{e}");
    let e = refusal("pvcalls = [ [ 'backend=a' ] ]");
    assert!(e.starts_with("g.cfg:3: pvcalls[0]: a nested list"), "{e}");
}

#[test]
fn vkbs_are_read_as_parse_vkb_config_reads_them() {
    let v = vkb_from_xl("backend-type=linux,unique-id=k0,feature-abs-pointer=1,width=0x400, height=768 ").unwrap();
    assert_eq!(
        v,
        VkbSpec {
            unique_id: Some("k0".into()),
            feature_abs_pointer: true,
            width: 1024,
            height: 768,
            ..VkbSpec::new(VkbBackend::Linux)
        }
    );
    // A size makes a multi-touch device whatever feature-multi-touch says.
    let v = vkb_from_xl("backend=drv,backend-type=QEMU,feature-multi-touch=0,multi-touch-width=010").unwrap();
    assert_eq!((v.backend_type, v.feature_multi_touch, v.multi_touch_width), (VkbBackend::Qemu, true, 8));
    assert_eq!(v.backend_domain.as_deref(), Some("drv"));
    assert_eq!(vkb_from_xl("backend-type=unknown,backend-type=linux").unwrap().backend_type, VkbBackend::Linux);
    for (item, want) in [
        ("unique-id=k0", "needs backend-type="),
        ("backend-type=unknown", "needs backend-type="),
        ("backend-type=x11", "backend-type=x11: expected qemu or linux"),
        ("backend-type=linux,feature-multi-touch=1", "multi-touch needs multi-touch-width"),
        ("backend-type=linux,colour=1", "unknown option `colour=1'"),
        ("backend-type=linux, ", "unknown option `'"),
        ("backend-type=linux,height=abc", "height=abc: not a number"),
        ("backend-type=linux,multi-touch-width=-1", "not a number"),
        ("backend-type=linux,width=4294967296", "more than 4294967295"),
        ("backend-type=linux,feature-raw-pointer=yes", "expected 0 or 1"),
    ] {
        let e = vkb_from_xl(item).unwrap_err();
        assert!(e.contains(want), "{item}: {e}");
    }
    let e = refusal("vkb = [ 'backend-type=linux',\n  'unique-id=k0' ]");
    assert!(e.starts_with("g.cfg:4: vkb[1]: ") && e.contains("needs backend-type="), "{e}");
}

/// A spec with every device and option of this module away from its default.
fn everything() -> DomainSpec {
    let uuid = Uuid::parse_str("b7a3c1d2-1e2f-4a5b-9c8d-7e6f5a4b3c2d").unwrap();
    DomainSpec::pv("devs")
        .kernel("/k")
        .channel(ChannelSpec::pty("org.a.1"))
        .channel(ChannelSpec::socket("org.b.2", "/run/b.sock").backend("stor"))
        .channel(ChannelSpec::pty(""))
        .vtpm(VtpmSpec::new("vtpm-web").uuid(uuid))
        .vtpm(VtpmSpec::new(""))
        .p9(P9Spec::new("root", "/srv/root", P9Spec::SECURITY_NONE))
        .p9(P9Spec::new("data", " /srv/data=x ", "mapped-xattr").backend("fsd"))
        .pvcalls(PvcallsSpec::default())
        .pvcalls(PvcallsSpec { backend_domain: Some("net".into()) })
        .vkb(VkbSpec::new(VkbBackend::Qemu))
        .vkb(VkbSpec {
            backend_domain: Some("inputdom".into()),
            unique_id: Some("k=1".into()),
            feature_disable_keyboard: true,
            feature_disable_pointer: true,
            feature_abs_pointer: true,
            feature_raw_pointer: true,
            feature_multi_touch: true,
            width: 1920,
            height: 1080,
            multi_touch_width: 10,
            multi_touch_height: 20,
            multi_touch_num_contacts: 5,
            ..VkbSpec::new(VkbBackend::Linux)
        })
}

#[test]
fn every_device_round_trips_through_xl_config_text() {
    let spec = everything();
    let text = round_trip(&spec);
    assert!(text.contains("channel = [ \"name=org.a.1,connection=pty\", "), "{text}");
    assert!(text.contains("\"name= ,connection=pty\""), "an empty name as a blank: {text}");
    assert!(text.contains("p9 = [ \"tag=root,path=/srv/root,security_model=none\", "), "{text}");
    // And through serde, as the daemon records it.
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<DomainSpec>(&json).unwrap(), spec);
    // A record saved before these fields existed still loads.
    let mut old = serde_json::to_value(DomainSpec::pv("old").kernel("/k")).unwrap();
    for key in ["channels", "vtpms", "p9s", "pvcalls", "vkbs"] {
        assert!(old.get(key).is_none(), "{key} written while empty");
        old.as_object_mut().unwrap().remove(key);
    }
    assert!(serde_json::from_value::<DomainSpec>(old).unwrap().channels.is_empty());
}

#[test]
fn what_xl_config_text_cannot_carry_is_refused() {
    let refused = |spec: DomainSpec, field: &str| {
        let e = spec.to_xl_config().unwrap_err().to_string();
        assert!(e.starts_with(&format!("invalid {field}")), "{field}: {e}");
    };
    let base = || DomainSpec::pv("x").kernel("/k");
    refused(base().channel(ChannelSpec::pty("a,b")), "channels[0].name");
    refused(base().channel(ChannelSpec::pty(" a")), "channels[0].name");
    refused(base().channel(ChannelSpec::socket("a", "/x=y")), "channels[0].connection.path");
    refused(base().channel(ChannelSpec::pty("a").backend("b\t")), "channels[0].backend_domain");
    refused(base().vtpm(VtpmSpec::new("a,b")), "vtpms[0].backend_domain");
    refused(base().p9(P9Spec::new("t", "/a,b", "none")), "p9s[0].path");
    refused(base().pvcalls(PvcallsSpec { backend_domain: Some(",".into()) }), "pvcalls[0].backend_domain");
    refused(
        base().vkb(VkbSpec { unique_id: Some("a,b".into()), ..VkbSpec::new(VkbBackend::Qemu) }),
        "vkbs[0].unique_id",
    );
    // xl would give the second share the first one's backend.
    let e = base().p9(P9Spec::new("a", "/a", "none").backend("fsd")).p9(P9Spec::new("b", "/b", "none"));
    refused(e, "p9s[1].backend_domain");
    let fine = base().p9(P9Spec::new("b", "/b", "none")).p9(P9Spec::new("a", "/a", "none").backend("fsd"));
    round_trip(&fine);
}

#[test]
fn multi_touch_without_a_size_and_a_size_without_multi_touch_are_invalid() {
    let base = || DomainSpec::pv("x").kernel("/k");
    let on = VkbSpec { feature_multi_touch: true, ..VkbSpec::new(VkbBackend::Linux) };
    let e = base().vkb(on).validate().unwrap_err().to_string();
    assert!(e.starts_with("invalid vkbs[0].feature_multi_touch") && e.contains("needs multi-touch-width"), "{e}");
    let sized = VkbSpec { multi_touch_num_contacts: 2, ..VkbSpec::new(VkbBackend::Linux) };
    let e = base().vkb(sized).validate().unwrap_err().to_string();
    assert!(e.contains("xl sets it for any size"), "{e}");
}

#[test]
fn the_libxl_config_numbers_devices_as_xl_does() {
    let mut spec = everything();
    spec.vnc = Some(crate::devices::VncSpec::default());
    let cfg = spec.to_libxl().unwrap();
    let d = cfg.as_raw();
    assert_eq!((d.num_channels, d.num_vtpms, d.num_p9s, d.num_pvcallsifs), (3, 2, 2, 2));
    // SAFETY: the counts above are the arrays' lengths, all initialised.
    let (channels, vtpms, p9s, pvcalls, vkbs) = unsafe {
        (
            std::slice::from_raw_parts(d.channels, 3),
            std::slice::from_raw_parts(d.vtpms, 2),
            std::slice::from_raw_parts(d.p9s, 2),
            std::slice::from_raw_parts(d.pvcallsifs, 2),
            std::slice::from_raw_parts(d.vkbs, 3),
        )
    };
    assert_eq!(channels.iter().map(|c| c.devid).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(channels[1].connection, xen_sys::LIBXL_CHANNEL_CONNECTION_SOCKET);
    // SAFETY: the second channel's key is SOCKET.
    assert_eq!(s(unsafe { channels[1].u.socket.path }).as_deref(), Some("/run/b.sock"));
    assert_eq!(s(channels[1].backend_domname).as_deref(), Some("stor"));
    assert_eq!(channels[0].connection, xen_sys::LIBXL_CHANNEL_CONNECTION_PTY);
    assert_eq!((vtpms[0].devid, vtpms[1].devid), (0, 1));
    assert_eq!(vtpms[0].uuid.uuid, *spec.vtpms[0].uuid.unwrap().as_bytes());
    assert_eq!(vtpms[1].uuid.uuid, [0; 16]);
    // xl initialises each 9pfs device twice, the second time after numbering it.
    assert_eq!((p9s[0].devid, p9s[1].devid), (-1, -1));
    assert_eq!(s(p9s[1].security_model).as_deref(), Some("mapped-xattr"));
    assert_eq!((pvcalls[0].devid, pvcalls[1].devid), (0, 1));
    assert!(pvcalls[0].backend_domname.is_null());
    // The framebuffer's own keyboard first, then the listed ones.
    assert_eq!(d.num_vkbs, 3);
    assert_eq!(vkbs.iter().map(|v| v.devid).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(vkbs[0].backend_type, xen_sys::LIBXL_VKB_BACKEND_UNKNOWN);
    assert_eq!(
        (vkbs[1].backend_type, vkbs[2].backend_type),
        (xen_sys::LIBXL_VKB_BACKEND_QEMU, xen_sys::LIBXL_VKB_BACKEND_LINUX)
    );
    assert_eq!((vkbs[2].multi_touch_num_contacts, vkbs[2].feature_raw_pointer), (5, true));
    assert_eq!(s(vkbs[2].unique_id).as_deref(), Some("k=1"));
    // Without a framebuffer the listed ones start at 0.
    let cfg = DomainSpec::hvm("h").vkb(VkbSpec::new(VkbBackend::Qemu)).to_libxl().unwrap();
    // SAFETY: one initialised vkb.
    assert_eq!((cfg.as_raw().num_vkbs, unsafe { (*cfg.as_raw().vkbs).devid }), (1, 0));
}

#[test]
fn the_json_is_what_xl_dry_run_prints() {
    // From `xl -N create` of the same devices on Xen 4.17 (tests/xlcfg/pvdev-*.cfg).
    let spec = parse(
        "vfb = [ 'vnc=1' ]\nvkb = [ 'backend-type=linux' ]\nchannel = [ 'name=x,connection=pty' ]\n\
         vtpm = [ 'backend=vt' ]\np9 = [ 'tag=r,path=/r,security_model=none' ]\npvcalls = [ '' ]\n",
    );
    let json: serde_json::Value = serde_json::from_str(&spec.to_libxl_json().unwrap()).unwrap();
    let want = serde_json::json!({
        "vkbs": [{"devid": 0}, {"devid": 1, "backend_type": "linux"}],
        "vtpms": [{"backend_domname": "vt", "devid": 0}],
        "p9s": [{"tag": "r", "path": "/r", "security_model": "none"}],
        "pvcallsifs": [{"devid": 0}],
        "channels": [{"devid": 0, "name": "x", "connection.pty": {}}]
    });
    for (key, value) in want.as_object().unwrap() {
        assert_eq!(&json[key], value, "{key}");
    }
}

#[test]
fn rust_built_specs_are_pleasant() {
    let share = P9Spec::new("rootfs", "/var/lib/c/rootfs", P9Spec::SECURITY_NONE).backend("fsdom");
    assert_eq!(
        (share.tag.as_str(), share.path.as_str(), share.security_model.as_str(), share.backend_domain.as_deref()),
        ("rootfs", "/var/lib/c/rootfs", "none", Some("fsdom"))
    );
    let json = serde_json::to_value(&share).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"tag": "rootfs", "path": "/var/lib/c/rootfs", "security_model": "none", "backend_domain": "fsdom"})
    );
    let c = serde_json::to_value(ChannelSpec::socket("n", "/s")).unwrap();
    assert_eq!(c, serde_json::json!({"name": "n", "connection": {"socket": {"path": "/s"}}}));
    assert_eq!(serde_json::to_value(ChannelSpec::pty("n")).unwrap()["connection"], "pty");
    let v = serde_json::to_value(VkbSpec::new(VkbBackend::Linux)).unwrap();
    assert_eq!(v, serde_json::json!({"backend_type": "linux"}), "defaults are left out");
}
