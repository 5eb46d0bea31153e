//! Tests of `xlconf.rs`: xl's defaults, every key, warnings and errors with file, line and
//! key, hostile text, and what a spec and its libxl JSON get from xl.conf.

use super::*;
use crate::devices::VifSpec;

fn parse(text: &str) -> XlConf {
    XlConf::parse("xl.conf", text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &[u8]) -> String {
    XlConf::parse("xl.conf", text).unwrap_err().to_string()
}

/// Xen 4.17's tools/examples/xl.conf, which Debian installs: every key commented out.
const SHIPPED: &str = "## Global XL config file ##\n\n#domid_policy=\"xen\"\n#autoballoon=\"auto\"\n\
#lockfile=\"/var/lock/xl\"\n#output_format=\"json\"\n#blkdev_start=\"xvda\"\n#run_hotplug_scripts=1\n\
#vif.default.backend=\"0\"\n#vif.default.script=\"vif-bridge\"\n#claim_mode=1\n#vm.cpumask=\"0-7\"\n";

#[test]
fn an_absent_or_commented_file_gives_xls_defaults() {
    let d = XlConf::default();
    assert_eq!((d.run_hotplug_scripts, d.claim_mode, d.autoballoon), (true, true, AutoBalloon::Auto));
    assert_eq!((d.lockfile.as_str(), d.max_grant_frames, d.output_format), ("/var/lock/xl", None, OutputFormat::Json));
    assert_eq!(parse(""), d);
    assert_eq!(parse(SHIPPED), d);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(XlConf::read(&dir.path().join("none")).unwrap(), d);
}

#[test]
fn every_key_is_read() {
    let c = parse(
        "autoballoon = \"off\"\nrun_hotplug_scripts = 0\nlockfile = '/run/xl.lock'\n\
         vif.default.script = \"vif-route\"\nvif.default.bridge = \"br1\"; vif.default.backend = \"netdom\"\n\
         vif.default.gatewaydev = \"eth1\"\nremus.default.netbufscript = \"/r\"\ncolo.default.proxyscript = \"/c\"\n\
         output_format = \"sxp\"\nblkdev_start = \"xvdz\"\nclaim_mode = 0x0\nmax_grant_frames = 64\n\
         max_maptrack_frames = 010\nmax_grant_version = 1\nvm.cpumask = \"0-3\"\nvm.hvm.cpumask = \"1\"\n\
         vm.pv.cpumask = \"2\"\ndomid_policy = \"random\"",
    );
    let want = XlConf {
        autoballoon: AutoBalloon::Off,
        run_hotplug_scripts: false,
        lockfile: "/run/xl.lock".into(),
        vif_script: Some("vif-route".into()),
        vif_bridge: Some("br1".into()),
        vif_backend: Some("netdom".into()),
        vif_gatewaydev: Some("eth1".into()),
        remus_netbufscript: Some("/r".into()),
        colo_proxyscript: Some("/c".into()),
        output_format: OutputFormat::Sxp,
        blkdev_start: Some("xvdz".into()),
        claim_mode: false,
        max_grant_frames: Some(64),
        max_maptrack_frames: Some(8),
        max_grant_version: Some(1),
        vm_cpumask: Some("0-3".into()),
        vm_hvm_cpumask: Some("1".into()),
        vm_pv_cpumask: Some("2".into()),
        domid_policy: DomidPolicy::Random,
        warnings: vec![],
    };
    assert_eq!(c, want);
    assert_eq!(parse("autoballoon = 1\n").autoballoon, AutoBalloon::On);
    assert_eq!(parse("autoballoon = \"on\"\n").autoballoon, AutoBalloon::On);
    // xl's int: 2^32 truncates to 0, and any other non-zero is true.
    assert!(!parse("claim_mode = 4294967296\n").claim_mode);
    assert!(parse("run_hotplug_scripts = \"-2\"\n").run_hotplug_scripts);
}

#[test]
fn the_last_assignment_wins_and_strings_append() {
    let c = parse("vif.default.bridge = \"a\"\nvif.default.bridge = \"b\"\nlockfile = \"/x\"\nlockfile += \"/y\"\n");
    assert_eq!((c.vif_bridge.as_deref(), c.lockfile.as_str()), (Some("b"), "/x/y"));
    // The deprecated spellings are read, warned about, and lose to the new ones.
    let c = parse("vifscript = \"old\"\ndefaultbridge = \"br\"\nvif.default.script = \"new\"\n");
    assert_eq!((c.vif_script.as_deref(), c.vif_bridge.as_deref()), (Some("new"), Some("br")));
    assert_eq!(
        c.warnings,
        [
            "xl.conf:1: vifscript: deprecated, use vif.default.script",
            "xl.conf:2: defaultbridge: deprecated, use vif.default.bridge"
        ]
    );
    assert_eq!(parse("lockfile = \"a\\tb\\\"c\"\n").lockfile, "a\tb\"c");
}

#[test]
fn what_xl_ignores_is_a_warning_and_keeps_the_default() {
    let c = parse(
        "colour = \"blue\"\nautoballoon = \"maybe\"\nrun_hotplug_scripts = \"yes\"\nclaim_mode += 1\n\
         lockfile = [ \"a\" ]\noutput_format = \"xml\"\ndomid_policy = \"next\"\n",
    );
    let d = XlConf { warnings: c.warnings.clone(), ..XlConf::default() };
    assert_eq!(c, d);
    assert_eq!(
        c.warnings,
        [
            "xl.conf:1: colour: unknown key, ignored (as xl does)",
            "xl.conf:2: autoballoon: \"maybe\" is not on, off or auto; auto is kept",
            "xl.conf:3: run_hotplug_scripts: \"yes\" is not a number; ignored",
            "xl.conf:4: claim_mode: += cannot be used with numbers; ignored",
            "xl.conf:5: lockfile: a list where one value belongs; ignored",
            "xl.conf:6: output_format: \"xml\" is not json or sxp; json is kept",
            "xl.conf:7: domid_policy: \"next\" is not xen or random; xen is kept",
        ]
    );
}

#[test]
fn what_stops_xl_is_an_error_naming_file_line_and_key() {
    for (text, want) in [
        (
            &b"claim_mode = 1\nmax_grant_frames = \"-1\"\n"[..],
            "xl.conf:2: max_grant_frames: -1 is not between 0 and 2147483647",
        ),
        (b"\n\nmax_maptrack_frames = 2147483648\n", "xl.conf:3: max_maptrack_frames: 2147483648 is not between"),
        (b"max_grant_version = \"two\"\n", "xl.conf:1: max_grant_version: \"two\" is not a number"),
        (b"max_grant_frames = [ 1 ]\n", "xl.conf:1: max_grant_frames: a list where a number belongs"),
        (b"a = 1\nb = = 2\n", "xl.conf:2:"),
        (b"max_grant_frames = -1\n", "xl.conf:1: max_grant_frames: syntax error at \"-1\""),
        (b"autoballoon \"on\"\n", "xl.conf:1: autoballoon: expected = or +="),
        (b"a = 1 2\n", "xl.conf:1: a: syntax error at \"2\""),
        (b"Lockfile = 1\n", "xl.conf:1: syntax error at \"L"),
        (b"lockfile = \"a\0b\"\n", "xl.conf:1: lockfile: a NUL byte inside a string"),
        (b"lockfile = \"\\x41\"\n", "xl.conf:1: lockfile: the escape \\x is not supported"),
        (b"lockfile = \"\xff\"\n", "xl.conf:1: lockfile: \"\u{fffd}\" is not UTF-8"),
        (b"x = [ 1,\n 2\n", "xl.conf:2: x: a list without its ]"),
        (b"x = [ , ]\n", "xl.conf:1: x: syntax error in a list"),
        (b"x = [ 1 ]\nx += \"s\"\n", "xl.conf:2: x: can't add [list]"),
        (b"x = 'unterminated\n", "xl.conf:1: x: syntax error"),
    ] {
        let e = err(text);
        assert!(e.starts_with(want), "{:?}: {e}", String::from_utf8_lossy(text));
    }
    // Lists are read (and skipped) as libxlutil's grammar has them.
    assert_eq!(parse("x = [ \"a\", [ 1, 2 ],\n  3, ]\ny = []\n").warnings.len(), 2);
}

#[test]
fn files_that_are_not_regular_or_too_large_are_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let e = XlConf::read(dir.path()).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    assert!(XlConf::read(&fifo).unwrap_err().to_string().contains("not a regular file"));
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'\n'; MAX_XL_CONF_BYTES as usize + 1]).unwrap();
    assert!(XlConf::read(&big).unwrap_err().to_string().contains("larger than 1 MiB"));
    let ok = dir.path().join("xl.conf");
    std::fs::write(&ok, "claim_mode = 0\n").unwrap();
    assert!(!XlConf::read(&ok).unwrap().claim_mode);
}

#[test]
fn hostile_text_costs_linear_time_and_never_panics() {
    let start = std::time::Instant::now();
    // libxlutil copies the value at each `+=` and recurses into nested lists.
    let appends = "lockfile += \"xxxxxxxx\"\n".repeat(40_000);
    assert_eq!(parse(&appends).lockfile.len(), 320_000);
    let deep = format!("x = {}{}\n", "[".repeat(300_000), "]".repeat(300_000));
    assert_eq!(parse(&deep).warnings.len(), 1);
    assert!(err(&"[".repeat(300_000).into_bytes()).starts_with("xl.conf:1:"));
    let long_number = format!("claim_mode = {}\n", "9".repeat(500_000));
    assert!(parse(&long_number).claim_mode);
    // Arbitrary bytes: an answer, never a panic.
    const ALPHABET: &[u8] = b"ab.=+[],;\"'\\ \n#0x1\0\xff";
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        let len = (seed % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                ALPHABET[(seed % ALPHABET.len() as u64) as usize]
            })
            .collect();
        let _ = XlConf::parse("fuzz", &bytes);
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "took {:?}", start.elapsed());
}

fn conf_with_everything() -> XlConf {
    parse(
        "run_hotplug_scripts = 0\nclaim_mode = 1\nblkdev_start = \"xvdz\"\nmax_grant_frames = 40\n\
         max_maptrack_frames = 512\nmax_grant_version = 1\nvif.default.script = \"vif-route\"\n\
         vif.default.bridge = \"br9\"\nvif.default.backend = \"netdom\"\nvif.default.gatewaydev = \"eth9\"\n",
    )
}

#[test]
fn a_spec_gets_what_xl_puts_in_every_domain() {
    let mut spec = DomainSpec::pv("g")
        .kernel("/k")
        .vif(VifSpec::default())
        .vif(VifSpec { script: Some("vif-nat".into()), ..VifSpec::bridged("mine") });
    spec.platform.max_grant_frames = Some(8);
    spec.apply_xl_conf(&conf_with_everything());
    let h = &spec.host_defaults;
    assert_eq!((h.run_hotplug_scripts, h.claim_mode), (Some(false), Some(true)));
    assert_eq!(
        (h.max_maptrack_frames, h.max_grant_version, h.blkdev_start.as_deref()),
        (Some(512), Some(1), Some("xvdz"))
    );
    // The domain's own values win, as xl's config file overrides xl.conf.
    assert_eq!(spec.platform.max_grant_frames, Some(8));
    let v = &spec.vifs;
    assert_eq!((v[0].script.as_deref(), v[0].bridge.as_deref()), (Some("vif-route"), Some("br9")));
    assert_eq!((v[0].backend_domain.as_deref(), v[0].gatewaydev.as_deref()), (Some("netdom"), Some("eth9")));
    assert_eq!((v[1].script.as_deref(), v[1].bridge.as_deref()), (Some("vif-nat"), Some("mine")));
    let once = spec.clone();
    spec.apply_xl_conf(&conf_with_everything());
    assert_eq!(spec, once);
    let mut plain = DomainSpec::pv("g").kernel("/k");
    plain.apply_xl_conf(&XlConf::default());
    assert_eq!(
        plain.host_defaults,
        HostDefaults { run_hotplug_scripts: Some(true), claim_mode: Some(true), ..HostDefaults::default() }
    );
    assert_eq!(plain.platform.max_grant_frames, None);
}

#[test]
fn the_json_has_the_fields_as_xl_writes_them() {
    let mut spec = DomainSpec::pv("g").kernel("/k").vif(VifSpec::default());
    let json = |s: &DomainSpec| serde_json::from_str::<serde_json::Value>(&s.to_libxl_json().unwrap()).unwrap();
    let before = json(&spec);
    assert!(before["c_info"].get("run_hotplug_scripts").is_none() && before["b_info"].get("claim_mode").is_none());
    spec.apply_xl_conf(&XlConf::default());
    let j = json(&spec);
    assert_eq!((&j["c_info"]["run_hotplug_scripts"], &j["b_info"]["claim_mode"]), (&"True".into(), &"True".into()));
    // libxl leaves its defaults out (-1 grant limits), as xl -N does with a default xl.conf.
    assert!(j["b_info"].get("max_grant_frames").is_none() && j["b_info"].get("blkdev_start").is_none());
    spec.apply_xl_conf(&conf_with_everything());
    let j = json(&spec);
    let b = &j["b_info"];
    assert_eq!(j["c_info"]["run_hotplug_scripts"], "False");
    assert_eq!((b["max_grant_frames"].as_u64(), b["max_maptrack_frames"].as_u64()), (Some(40), Some(512)));
    assert_eq!((b["max_grant_version"].as_u64(), b["blkdev_start"].as_str()), (Some(1), Some("xvdz")));
    let nic = &j["nics"][0];
    assert_eq!((nic["script"].as_str(), nic["bridge"].as_str()), (Some("vif-route"), Some("br9")));
    assert_eq!((nic["backend_domname"].as_str(), nic["gatewaydev"].as_str()), (Some("netdom"), Some("eth9")));
    // A spec from before these fields still reads; one with them round-trips.
    let mut old = serde_json::to_value(DomainSpec::pv("g").kernel("/k")).unwrap();
    assert!(old.get("host_defaults").is_none());
    old["name"] = "h".into();
    assert!(serde_json::from_value::<DomainSpec>(old).is_ok());
    let back: DomainSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn out_of_range_host_defaults_are_refused() {
    let mut spec = DomainSpec::pv("g").kernel("/k");
    spec.host_defaults.max_grant_version = Some(u32::MAX);
    let e = spec.validate().unwrap_err().to_string();
    assert_eq!(e, "invalid host_defaults.max_grant_version \"4294967295\": more than 2147483647");
}
