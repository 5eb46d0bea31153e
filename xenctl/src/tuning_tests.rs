//! Unit tests of the tuning keys (`tuning.rs`, `vnuma.rs`, `xltuning.rs`): reading each key
//! as xl does, the errors (file, line, key), libxl's config they make, and round trips
//! through `to_xl_config` and JSON.

use super::*;
use crate::xlconf::XlConf;

fn pv(extra: &str) -> Result<DomainSpec> {
    DomainSpec::from_xl_config_text("g.cfg", &format!("name = \"g\"\nkernel = \"/k\"\nmemory = 256\n{extra}\n"))
}

fn of_kind(kind: &str, extra: &str) -> Result<DomainSpec> {
    DomainSpec::from_xl_config_text("g.cfg", &format!("name = \"g\"\ntype = \"{kind}\"\nkernel = \"/k\"\n{extra}\n"))
}

fn err(r: Result<DomainSpec>) -> String {
    r.unwrap_err().to_string()
}

/// libxl's JSON of the spec, as `xl -N create` prints it.
fn json(spec: &DomainSpec) -> serde_json::Value {
    serde_json::from_str(&spec.to_libxl_json().unwrap()).unwrap()
}

/// The spec written as xl.cfg and read back is the same spec.
fn round_trips(spec: &DomainSpec) {
    let text = spec.to_xl_config().unwrap();
    let back = DomainSpec::from_xl_config_text("rendered.cfg", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&back, spec, "{text}");
    let json = serde_json::to_string(spec).unwrap();
    assert_eq!(&serde_json::from_str::<DomainSpec>(&json).unwrap(), spec, "{json}");
}

#[test]
fn every_key_is_read_into_libxls_fields_as_xl_fills_them() {
    let s = pv("vcpus = 2\npool = \"Pool-0\"\ninit_seclabel = \"a:b:build_t\"\nseclabel = \"a:b:run_t\"\noos = 0\n\
                period = 10000\nslice = 500\nlatency = 20\nextratime = 1\nmax_event_channels = 2047\n\
                max_maptrack_frames = 2048\nmax_grant_version = 1\nvpmu = 1\nvmtrace_buf_kb = 64\n\
                xend_suspend_evtchn_compat = 1\npassthrough = \"disabled\"\ndriver_domain = 1\n\
                vuart = \"sbsa_uart\"\ntee = \"optee\"\ngic_version = \"v3\"\ncpus_soft = \"0-1\"")
    .unwrap();
    let t = &s.tuning;
    assert_eq!((t.pool.as_deref(), t.init_seclabel.as_deref()), (Some("Pool-0"), Some("a:b:build_t")));
    assert_eq!(t.sched, SchedParams { period: Some(10000), slice: Some(500), latency: Some(20), extratime: Some(1) });
    assert_eq!(t.soft_affinity, Some(SoftAffinity::AllVcpus(vec![0, 1])));
    assert_eq!((t.vmtrace_buf_kb, t.passthrough), (Some(64), Some(Passthrough::Disabled)));
    assert_eq!(
        t.arm,
        ArmSpec { gic_version: Some(GicVersion::V3), vuart: Some(VuartType::SbsaUart), tee: Some(TeeType::Optee) }
    );
    // What `xl -N create` printed for this file on Xen 4.17 (c_info and b_info, in part).
    let j = json(&s);
    let (c, b) = (&j["c_info"], &j["b_info"]);
    for (key, want) in [
        ("oos", "False"),
        ("ssid_label", "a:b:build_t"),
        ("pool_name", "Pool-0"),
        ("driver_domain", "True"),
        ("passthrough", "disabled"),
        ("xend_suspend_evtchn_compat", "True"),
    ] {
        assert_eq!(c[key], want, "{key}");
    }
    assert_eq!(b["exec_ssid_label"], "a:b:run_t");
    assert_eq!(b["vcpu_soft_affinity"], serde_json::json!([[0, 1], [0, 1]]));
    assert_eq!(b["numa_placement"], "False");
    assert_eq!(b["sched_params"], serde_json::json!({"period": 10000, "extratime": 1, "slice": 500, "latency": 20}));
    assert_eq!((b["max_maptrack_frames"].as_u64(), b["max_grant_version"].as_u64()), (Some(2048), Some(1)));
    assert_eq!((b["event_channels"].as_u64(), b["vmtrace_buf_kb"].as_u64()), (Some(2047), Some(64)));
    assert_eq!((&b["tee"], &b["vpmu"]), (&serde_json::json!("optee"), &serde_json::json!("True")));
    assert_eq!(b["arch_arm"], serde_json::json!({"gic_version": "v3", "vuart": "sbsa_uart"}));
    round_trips(&s);
}

#[test]
fn seclabel_alone_is_the_domains_only_label() {
    let s = pv("seclabel = \"system_u:system_r:domU_t\"").unwrap();
    let j = json(&s);
    assert_eq!(j["c_info"]["ssid_label"], "system_u:system_r:domU_t");
    assert!(j["b_info"].get("exec_ssid_label").is_none());
    round_trips(&s);
}

#[test]
fn default_words_are_libxls_defaults_and_words_are_read_in_any_case() {
    let s = pv("passthrough = \"default\"\ngic_version = \"DEFAULT\"\ntee = \"None\"\nvuart = \"unknown\"").unwrap();
    assert!(s.tuning.is_default(), "{:?}", s.tuning);
    let s = pv("passthrough = \"ENABLED\"\ngic_version = \"V2\"\nvuart = \"SBSA_UART\"").unwrap();
    assert_eq!(s.tuning.passthrough, Some(Passthrough::Enabled));
    assert_eq!((s.tuning.arm.gic_version, s.tuning.arm.vuart), (Some(GicVersion::V2), Some(VuartType::SbsaUart)));
    let j = json(&s);
    assert_eq!(
        (&j["c_info"]["passthrough"], &j["b_info"]["arch_arm"]["gic_version"]),
        (&"enabled".into(), &"v2".into())
    );
}

#[test]
fn zero_values_xl_leaves_to_libxl_are_libxls_defaults() {
    let s = pv("vmtrace_buf_kb = 0\nmax_event_channels = 0\nperiod = \"-1\"\nextratime = 0").unwrap();
    assert_eq!((s.tuning.vmtrace_buf_kb, s.tuning.sched.period), (None, Some(-1)));
    // libxl's JSON leaves out what is at its default, as xl's output does.
    let j = json(&s);
    assert!(j["b_info"].get("vmtrace_buf_kb").is_none() && j["b_info"].get("event_channels").is_none());
    assert_eq!(j["b_info"]["sched_params"], serde_json::json!({"extratime": 0}));
    round_trips(&s);
}

#[test]
fn a_negative_event_channel_limit_wraps_as_in_xl() {
    // xl stores the C long in libxl's uint32_t (`xl -N` prints 4294967295).
    let s = pv("max_event_channels = \"-1\"").unwrap();
    assert_eq!(s.tuning.max_event_channels, Some(u32::MAX));
    assert_eq!(json(&s)["b_info"]["event_channels"].as_u64(), Some(u64::from(u32::MAX)));
    round_trips(&s);
    let e = err(pv("max_event_channels = 4294967296"));
    assert_eq!(e, "g.cfg:4: max_event_channels: 4294967296: too large");
}

#[test]
fn bad_values_are_refused_naming_file_line_and_key() {
    for (extra, want) in [
        (
            "passthrough = \"pt\"",
            "g.cfg:4: passthrough: \"pt\": expected default, disabled, enabled, sync_pt or share_pt",
        ),
        ("gic_version = \"v4\"", "g.cfg:4: gic_version: \"v4\": expected default, v2 or v3"),
        ("tee = \"sgx\"", "g.cfg:4: tee: \"sgx\": expected none or optee"),
        ("vuart = \"pl011\"", "g.cfg:4: vuart: \"pl011\": expected sbsa_uart"),
        ("max_grant_version = 2147483648", "g.cfg:4: max_grant_version: 2147483648: more than 2147483647"),
        ("max_maptrack_frames = \"lots\"", "g.cfg:4: max_maptrack_frames: parameter `max_maptrack_frames' is not"),
        ("vmtrace_buf_kb = \"-4\"", "g.cfg:4: vmtrace_buf_kb: -4: must be at least 0"),
        ("slice = 3000000000", "g.cfg:4: slice: 3000000000: too large"),
        ("pool = [ \"a\" ]", "g.cfg:4: pool: a list, where xl expects a single value"),
        ("oos = \"off\"", "g.cfg:4: oos: parameter `oos' is not a valid number"),
        ("vcpus = 2\ncpus_soft = \"all\"", "g.cfg:5: cpus_soft: `all' needs the host's CPUs"),
        (
            "vcpus = 2\ncpus_soft = \"nodes:0\"",
            "g.cfg:5: cpus_soft: `nodes:0': NUMA node lists need the host's topology",
        ),
        ("vcpus = 2\ncpus_soft = [ \"1\",\n  \"x\" ]", "g.cfg:6: cpus_soft[1]: `x' is not a CPU number"),
    ] {
        let e = err(pv(extra));
        assert!(e.starts_with(want), "{extra}: {e}");
    }
}

#[test]
fn the_pvh_shim_is_read_for_pvh_guests_only() {
    let keys = "pvshim = 1\npvshim_path = \"/shim\"\npvshim_cmdline = \"pv-shim\"\npvshim_extra = \"loglvl=all\"";
    let s = of_kind("pvh", keys).unwrap();
    let shim = PvShimSpec {
        enable: Some(true),
        path: Some("/shim".into()),
        cmdline: Some("pv-shim".into()),
        extra: Some("loglvl=all".into()),
    };
    assert_eq!(s.tuning.pvshim, shim);
    assert_eq!(
        json(&s)["b_info"]["type.pvh"],
        serde_json::json!({"pvshim": "True", "pvshim_path": "/shim", "pvshim_cmdline": "pv-shim", "pvshim_extra": "loglvl=all"})
    );
    round_trips(&s);
    // xl skips them for other guests without a word; we say they are ignored.
    for kind in ["pv", "hvm"] {
        assert!(of_kind(kind, keys).unwrap().tuning.is_default(), "{kind}");
    }
    let mut pv = of_kind("pv", "").unwrap();
    pv.tuning.pvshim.enable = Some(true);
    assert_eq!(
        pv.validate().unwrap_err().to_string(),
        "invalid tuning.pvshim \"\": applies to PVH guests only, not pv"
    );
}

#[test]
fn vif2_is_only_warned_about() {
    let uuid = "uuid = \"6ba7b810-9dad-11d1-80b4-00c04fd430c8\"";
    let plain = pv(uuid).unwrap();
    assert_eq!(pv(&format!("{uuid}\nvif2 = [ \"bridge=xenbr0\" ]")).unwrap(), plain);
    assert_eq!(pv(&format!("{uuid}\nvif2 = \"bridge=xenbr0\"")).unwrap(), plain);
}

#[test]
fn a_domains_own_grant_limits_win_over_xl_conf() {
    let conf = XlConf::parse("xl.conf", b"max_maptrack_frames = 512\nmax_grant_version = 2\n").unwrap();
    let mut s = pv("max_maptrack_frames = 2048").unwrap();
    s.apply_xl_conf(&conf);
    let cfg = s.to_libxl().unwrap();
    let b = &cfg.as_raw().b_info;
    assert_eq!((b.max_maptrack_frames, b.max_grant_version), (2048, 2));
}

#[test]
fn soft_affinity_is_sized_as_xl_sizes_it() {
    // The string form: one set per vCPU up to the maximum.
    let s = pv("vcpus = 2\nmaxvcpus = 3\ncpus_soft = \"0,3\"").unwrap();
    assert_eq!(json(&s)["b_info"]["vcpu_soft_affinity"], serde_json::json!([[0, 3], [0, 3], [0, 3]]));
    round_trips(&s);
    // Without vcpus or maxvcpus xl states no maximum: no sets, but NUMA placement still off.
    let s = pv("cpus_soft = \"1\"").unwrap();
    let b = &json(&s)["b_info"];
    assert_eq!((b.get("vcpu_soft_affinity"), &b["numa_placement"]), (None, &serde_json::json!("False")));
    round_trips(&s);
    // The list form: entry i for vCPU i; entries past the maximum are ignored.
    let s = pv("maxvcpus = 2\ncpus_soft = [ \"1\", \"2-3\", \"4\" ]").unwrap();
    assert_eq!(s.tuning.soft_affinity, Some(SoftAffinity::PerVcpu(vec![vec![1], vec![2, 3]])));
    assert_eq!(json(&s)["b_info"]["vcpu_soft_affinity"], serde_json::json!([[1], [2, 3]]));
    round_trips(&s);
    let s = pv("cpus_soft = [ \"1\" ]").unwrap();
    assert_eq!(s.tuning.soft_affinity, Some(SoftAffinity::PerVcpu(vec![])));
    assert_eq!(json(&s)["b_info"]["numa_placement"], "False");
    round_trips(&s);
    let mut s = pv("vcpus = 1").unwrap();
    s.tuning.soft_affinity = Some(SoftAffinity::PerVcpu(vec![vec![0], vec![1]]));
    assert!(s.validate().unwrap_err().to_string().starts_with("invalid tuning.soft_affinity \"2\": more entries"));
}

const TWO_NODES: &str = "vnuma = [ [ \"pnode=0\", \"size=512\", \"vcpus=0-1\", \"vdistances=10,20\" ],\n  \
                         [ \"pnode=0\", \"size=512\", \"vcpus=2,3\", \"vdistances=20,10\" ] ]";

#[test]
fn vnuma_nodes_are_read_and_set_the_maximum_memory_and_vcpus() {
    let s = of_kind("hvm", &format!("memory = 1024\nvcpus = 2\nmaxvcpus = 4\n{TWO_NODES}")).unwrap();
    let node = |pnode, vcpus: &[u32], distances: &[u32]| VnumaNode {
        size_mib: 512,
        pnode,
        vcpus: vcpus.to_vec(),
        distances: distances.to_vec(),
    };
    assert_eq!(s.tuning.vnuma, vec![node(Some(0), &[0, 1], &[10, 20]), node(Some(0), &[2, 3], &[20, 10])]);
    // As `xl -N create` printed it.
    let b = &json(&s)["b_info"];
    assert_eq!(
        b["vnuma_nodes"],
        serde_json::json!([
            {"memkb": 524288, "distances": [10, 20], "vcpus": [0, 1]},
            {"memkb": 524288, "distances": [20, 10], "vcpus": [2, 3]}
        ])
    );
    assert_eq!((b["max_vcpus"].as_u64(), &b["numa_placement"]), (Some(4), &serde_json::json!("False")));
    round_trips(&s);
    // Without maxvcpus and maxmem the nodes make them; blanks around names and values go.
    let s = pv("vcpus = 1\nvnuma = [ [ \" size = 128\", \"vcpus=0 \" ], [ \"size=128\", \"vcpus=1\", \"other=1\" ] ]")
        .unwrap();
    assert_eq!((s.max_vcpus, s.effective_max_memory_mib(), s.memory_mib), (Some(2), 256, 256));
    let b = &json(&s)["b_info"];
    assert_eq!(b["vnuma_nodes"][1], serde_json::json!({"memkb": 131072, "distances": [0, 0], "vcpus": [1]}));
    assert_eq!((b.get("numa_placement"), b["max_memkb"].as_u64()), (None, Some(262144)));
    round_trips(&s);
    // Without vcpus the nodes give the maximum, and libxl one vCPU online.
    let s = pv("vnuma = [ [ \"size=256\", \"vcpus=0-2\" ] ]").unwrap();
    assert_eq!((s.vcpus_unstated, s.max_vcpus), (true, Some(3)));
    let b = &json(&s)["b_info"];
    assert_eq!((b["max_vcpus"].as_u64(), b.get("avail_vcpus")), (Some(3), None));
    round_trips(&s);
    assert_eq!(pv("vnuma = [ ]").unwrap().tuning.vnuma, vec![]);
}

#[test]
fn vnuma_layouts_xl_or_libxl_refuse_are_refused() {
    for (extra, want) in [
        (
            "maxvcpus = 3\nvnuma = [ [ \"size=256\", \"vcpus=0-1\" ] ]",
            "g.cfg:5: vnuma: its nodes have 2 vCPUs, and maxvcpus is 3",
        ),
        (
            "maxmem = 512\nvnuma = [ [ \"size=256\", \"vcpus=0\" ] ]",
            "g.cfg:5: vnuma: its nodes have 256 MiB, and maxmem is 512 MiB",
        ),
        (
            "vnuma = [ [ \"size=128\", \"vcpus=0\" ] ]",
            "g.cfg:4: vnuma: its nodes have 128 MiB, less than memory (256 MiB)",
        ),
        (
            "vcpus = 2\nvnuma = [ [ \"size=256\", \"vcpus=0\" ] ]",
            "g.cfg:5: vnuma: its nodes have 1 vCPUs, fewer than vcpus (2)",
        ),
        ("vnuma = [ \"size=256,vcpus=0\" ]", "g.cfg:4: vnuma[0]: a string, where xl expects a node's list"),
        ("vnuma = [ [ \"size=256\", \"vcpus=0\", \"junk\" ] ]", "g.cfg:4: vnuma[0]: \"junk\": expected OPTION=VALUE"),
        ("vnuma = [ [ \"vcpus=0\" ] ]", "g.cfg:4: vnuma[0]: no size=: libxl needs the memory of every node"),
        ("vnuma = [ [ \"size=256\" ] ]", "g.cfg:4: vnuma: no node lists its vcpus="),
        ("vnuma = [ [ \"size=256\", \"size=256\", \"vcpus=0\" ] ]", "g.cfg:4: vnuma[0]: size: given twice"),
        ("vnuma = [ [ \"size=256\", \"vcpus=0,0\" ] ]", "g.cfg:4: vnuma[0]: \"vcpus=0,0\": vCPU 0 is listed twice"),
        ("vnuma = [ [ \"size=256\", \"vcpus=1-0\" ] ]", "g.cfg:4: vnuma[0]: \"vcpus=1-0\": `1-0' is not a vCPU number"),
        ("vnuma = [ [ \"size=-1\", \"vcpus=0\" ] ]", "g.cfg:4: vnuma[0]: \"size=-1\": not a size in MiB"),
        (
            "vnuma = [ [ \"size=256\", \"vcpus=0\", \"vdistances=10,20\" ] ]",
            "g.cfg:4: vnuma[0]: \"2\": more distances than nodes (1)",
        ),
        (
            "vcpus = 2\nvnuma = [ [ \"size=128\", \"vcpus=0\" ], [ \"size=128\", \"vcpus=0\" ] ]",
            "g.cfg:5: vnuma[1]: \"0\": in another node too",
        ),
        (
            "vcpus = 2\nvnuma = [ [ \"size=128\", \"vcpus=0\", \"vdistances=20,10\" ], [ \"size=128\", \"vcpus=1\" ] ]",
            "g.cfg:5: vnuma[0]: \"20,10\": node 1 is nearer than the node itself",
        ),
    ] {
        let e = err(pv(extra));
        assert!(e.starts_with(want), "{extra}:\n{e}");
    }
}

#[test]
fn fields_name_their_keys() {
    for (field, key) in [
        ("tuning.soft_affinity[2]", ("cpus_soft", Some(2))),
        ("tuning.vnuma[1].vcpus", ("vnuma", Some(1))),
        ("tuning.sched.latency", ("latency", None)),
        ("tuning.pvshim.cmdline", ("pvshim_cmdline", None)),
        ("tuning.pvshim", ("pvshim", None)),
        ("tuning.arm.tee", ("tee", None)),
        ("tuning.max_grant_version", ("max_grant_version", None)),
        ("tuning.seclabel", ("seclabel", None)),
    ] {
        assert_eq!(xl_key_of_field(field), Some(key), "{field}");
    }
    assert_eq!(xl_key_of_field("platform.pae"), None);
}

#[test]
fn a_spec_without_tuning_writes_none() {
    let json = serde_json::to_value(pv("").unwrap()).unwrap();
    assert!(json.get("tuning").is_none(), "{json}");
    let text = pv("").unwrap().to_xl_config().unwrap();
    assert!(!text.contains("pool") && !text.contains("cpus_soft"), "{text}");
}
