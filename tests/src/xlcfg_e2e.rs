//! End-to-end tests of xl.cfg parsing on real Xen: DomainSpec::from_xl_config against
//! `xl -N create FILE` for a corpus of configs.
//!
//! `xl -N` (dry run) parses the file exactly as `xl create` would and prints the libxl domain
//! config it would hand to libxl, as JSON, without creating anything or opening the files the
//! config names. For every config in tests/xlcfg/ (embedded in this binary and written to
//! /tmp in dom0, since the box's runner only copies the test program) the JSON of our
//! `DomainSpec` must be the same document, field for field, after the normalisations in
//! `normalise`, each of which is a difference in form and not in the domain libxl builds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use xenctl::{Context, DomainSpec, HostCpus, XlConf};

use crate::{Ctx, E2eTest, TestResult, xl};

/// The corpus: tests/xlcfg/*.cfg, compiled in.
pub const CORPUS: &[(&str, &str)] = include!("../xlcfg/corpus.rs");

/// Configs xl refuses (tests/xlcfg/rejected/*.cfg), with the key our error must name at its
/// line: ours must refuse each too, and say where.
pub const REJECTED: &[(&str, &str, &str)] = &[
    ("uuid-braces.cfg", include_str!("../xlcfg/rejected/uuid-braces.cfg"), "uuid"),
    ("hex-escape.cfg", include_str!("../xlcfg/rejected/hex-escape.cfg"), "extra"),
    ("timer-mode-pv.cfg", include_str!("../xlcfg/rejected/timer-mode-pv.cfg"), "timer_mode"),
    ("tuning-mmio-hole.cfg", include_str!("../xlcfg/rejected/tuning-mmio-hole.cfg"), "mmio_hole"),
    ("tuning-mca-caps.cfg", include_str!("../xlcfg/rejected/tuning-mca-caps.cfg"), "mca_caps"),
    ("tuning-ms-vm-genid.cfg", include_str!("../xlcfg/rejected/tuning-ms-vm-genid.cfg"), "ms_vm_genid"),
    ("tuning-hdtype.cfg", include_str!("../xlcfg/rejected/tuning-hdtype.cfg"), "hdtype"),
    ("tuning-vendor-device.cfg", include_str!("../xlcfg/rejected/tuning-vendor-device.cfg"), "vendor_device"),
    ("tuning-gfx-passthru.cfg", include_str!("../xlcfg/rejected/tuning-gfx-passthru.cfg"), "gfx_passthru"),
    ("tuning-altp2m.cfg", include_str!("../xlcfg/rejected/tuning-altp2m.cfg"), "altp2m"),
    (
        "tuning-device-model-args.cfg",
        include_str!("../xlcfg/rejected/tuning-device-model-args.cfg"),
        "device_model_args",
    ),
    ("tuning-pv-firmware.cfg", include_str!("../xlcfg/rejected/tuning-pv-firmware.cfg"), "firmware"),
    ("tuning-firmware-and-kernel.cfg", include_str!("../xlcfg/rejected/tuning-firmware-and-kernel.cfg"), "firmware"),
    ("usbres-usbctrl-ehci.cfg", include_str!("../xlcfg/rejected/usbres-usbctrl-ehci.cfg"), "usbctrl[0]"),
    ("usbres-usbdev-device.cfg", include_str!("../xlcfg/rejected/usbres-usbdev-device.cfg"), "usbdev[0]"),
    ("usbres-ioports-open.cfg", include_str!("../xlcfg/rejected/usbres-ioports-open.cfg"), "ioports[0]"),
    ("usbres-irqs-hex.cfg", include_str!("../xlcfg/rejected/usbres-irqs-hex.cfg"), "irqs[0]"),
    ("usbres-iomem-no-pages.cfg", include_str!("../xlcfg/rejected/usbres-iomem-no-pages.cfg"), "iomem[0]"),
    ("pvdev-vtpm-no-backend.cfg", include_str!("../xlcfg/rejected/pvdev-vtpm-no-backend.cfg"), "vtpm[0]"),
    ("pvdev-p9-no-security-model.cfg", include_str!("../xlcfg/rejected/pvdev-p9-no-security-model.cfg"), "p9[0]"),
    (
        "pvdev-channel-no-connection.cfg",
        include_str!("../xlcfg/rejected/pvdev-channel-no-connection.cfg"),
        "channel[0]",
    ),
    (
        "pvdev-channel-socket-no-path.cfg",
        include_str!("../xlcfg/rejected/pvdev-channel-socket-no-path.cfg"),
        "channel[1]",
    ),
    (
        "pvdev-channel-bad-connection.cfg",
        include_str!("../xlcfg/rejected/pvdev-channel-bad-connection.cfg"),
        "channel[0]",
    ),
    ("pvdev-vkb-no-backend-type.cfg", include_str!("../xlcfg/rejected/pvdev-vkb-no-backend-type.cfg"), "vkb[0]"),
    (
        "pvdev-vkb-multi-touch-no-size.cfg",
        include_str!("../xlcfg/rejected/pvdev-vkb-multi-touch-no-size.cfg"),
        "vkb[0]",
    ),
    ("pvdev-vtpm-bad-uuid.cfg", include_str!("../xlcfg/rejected/pvdev-vtpm-bad-uuid.cfg"), "vtpm[0]"),
    (
        "pvdev-pvcalls-unknown-option.cfg",
        include_str!("../xlcfg/rejected/pvdev-pvcalls-unknown-option.cfg"),
        "pvcalls[0]",
    ),
    ("pvdev-vsnd-doc-format.cfg", include_str!("../xlcfg/rejected/pvdev-vsnd-doc-format.cfg"), "vsnd[0]"),
    ("pvdev-vsnd-doc-stream-id.cfg", include_str!("../xlcfg/rejected/pvdev-vsnd-doc-stream-id.cfg"), "vsnd[0]"),
    ("pvdev-vdispl-no-connector.cfg", include_str!("../xlcfg/rejected/pvdev-vdispl-no-connector.cfg"), "vdispl[0]"),
    ("sched-passthrough-word.cfg", include_str!("../xlcfg/rejected/sched-passthrough-word.cfg"), "passthrough"),
    ("sched-vnuma-maxvcpus.cfg", include_str!("../xlcfg/rejected/sched-vnuma-maxvcpus.cfg"), "vnuma"),
    ("sched-grant-version-big.cfg", include_str!("../xlcfg/rejected/sched-grant-version-big.cfg"), "max_grant_version"),
    ("sched-gic-version.cfg", include_str!("../xlcfg/rejected/sched-gic-version.cfg"), "gic_version"),
    ("sched-vnuma-maxmem.cfg", include_str!("../xlcfg/rejected/sched-vnuma-maxmem.cfg"), "vnuma"),
];

/// The tests of this module, for xen-e2e.
pub fn tests() -> Vec<(&'static str, E2eTest)> {
    vec![
        ("xlcfg_corpus_parses_to_the_config_xl_dry_run_prints", corpus_matches_xl),
        ("xlcfg_rendered_to_xl_config_means_the_same_to_xl", rendered_matches_xl),
        ("xlcfg_a_different_spec_is_caught_with_its_paths", a_difference_is_caught),
        ("xlcfg_corpus_matches_xl_under_a_non_default_xl_conf", corpus_matches_xl_under_other_xl_conf),
        ("xlcfg_configs_xl_refuses_are_refused_naming_file_line_and_key", rejected_by_both),
    ]
}

/// A scratch directory in dom0, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> TestResult<Scratch> {
        let dir = std::env::temp_dir().join(format!("xlcfg-e2e-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ctx("create scratch dir")?;
        Ok(Scratch(dir))
    }

    fn write(&self, name: &str, text: &str) -> TestResult<PathBuf> {
        let path = self.0.join(name);
        std::fs::write(&path, text).ctx(&format!("write {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What `xl -N create FILE` prints, parsed.
fn xl_dry_run(path: &Path) -> TestResult<Value> {
    xl_dry_run_with(path, Path::new(xenctl::XL_CONF_PATH))
}

/// `xl -N create` as if `conf` were /etc/xen/xl.conf (xl has no option for it): `conf` is
/// bind-mounted there in a mount namespace of xl's own, so tests running meanwhile, and
/// their domains, keep dom0's real xl.conf.
fn xl_dry_run_with(path: &Path, conf: &Path) -> TestResult<Value> {
    let path = path.to_str().ok_or("scratch path is not UTF-8")?;
    let out = if conf == Path::new(xenctl::XL_CONF_PATH) {
        xl(&["-N", "create", path])?
    } else {
        let conf = conf.to_str().ok_or("xl.conf path is not UTF-8")?;
        let script = format!("mount --bind \"$1\" {} && exec xl -N create \"$2\"", xenctl::XL_CONF_PATH);
        crate::run("unshare", &["--mount", "--propagation", "private", "sh", "-c", &script, "sh", conf, path])?
    };
    serde_json::from_str(&out).ctx(&format!("xl -N create {path}: not JSON"))
}

/// dom0's xl.conf, the one `xl -N` reads, applied to `spec` as the daemon applies it.
fn with_xl_conf(spec: DomainSpec) -> TestResult<DomainSpec> {
    with_xl_conf_at(spec, Path::new(xenctl::XL_CONF_PATH))
}

/// The xl.conf `conf` applied to `spec` as the daemon applies it.
fn with_xl_conf_at(mut spec: DomainSpec, conf: &Path) -> TestResult<DomainSpec> {
    let conf = XlConf::read(conf).ctx("reading xl.conf")?;
    spec.apply_xl_conf(&conf);
    Ok(spec)
}

/// Our JSON for `spec`: through the live context (what create hands libxl), checked to be the
/// very same text as the context-free `to_libxl_json` (what `--dry-run` prints without Xen).
fn our_json(ctx: &Context, spec: &DomainSpec) -> TestResult<Value> {
    let with_ctx = ctx.spec_json(spec).ctx("spec_json")?;
    let without = spec.to_libxl_json().ctx("to_libxl_json")?;
    if with_ctx != without {
        return Err(format!("spec_json and to_libxl_json differ:\n{with_ctx}\n---\n{without}"));
    }
    serde_json::from_str(&with_ctx).ctx("our JSON")
}

fn corpus_matches_xl(ctx: &Context) -> TestResult {
    corpus_matches_xl_with(ctx, "corpus", Path::new(xenctl::XL_CONF_PATH))
}

/// The corpus against `xl -N create`, both reading `conf` as xl.conf.
fn corpus_matches_xl_with(ctx: &Context, scratch: &str, conf: &Path) -> TestResult {
    let scratch = Scratch::new(scratch)?;
    // Some CPU lists name `all` or a NUMA node: xl reads them against this host, and so do we.
    let host = ctx.host_cpus().ctx("host_cpus")?;
    let mut failures = Vec::new();
    for (name, text) in CORPUS {
        let path = scratch.write(name, text)?;
        let result = (|| {
            let spec = with_xl_conf_at(read_on(&host, &path.display().to_string(), text)?, conf)?;
            compare(xl_dry_run_with(&path, conf)?, our_json(ctx, &spec)?)
        })();
        if let Err(e) = result {
            failures.push(format!("{name}:\n{e}"));
        }
    }
    finish(failures)
}

/// A corpus file read as the daemon reads it on `host`; `source` names it in errors.
fn read_on(host: &HostCpus, source: &str, text: &str) -> TestResult<DomainSpec> {
    DomainSpec::read_xl_config_bytes_on(source, text.as_bytes(), Some(host)).map(|f| f.spec).ctx("parse")
}

fn rendered_matches_xl(ctx: &Context) -> TestResult {
    let scratch = Scratch::new("rendered")?;
    let host = ctx.host_cpus().ctx("host_cpus")?;
    let mut failures = Vec::new();
    for (name, text) in CORPUS {
        let result = (|| {
            let spec = with_xl_conf(read_on(&host, name, text)?)?;
            let rendered = spec.to_xl_config().ctx("to_xl_config")?;
            let path = scratch.write(name, &rendered)?;
            compare(xl_dry_run(&path)?, our_json(ctx, &spec)?).map_err(|e| format!("{e}\n{rendered}"))
        })();
        if let Err(e) = result {
            failures.push(format!("{name} (rendered by to_xl_config):\n{e}"));
        }
    }
    finish(failures)
}

/// The comparison is not vacuous: a spec that differs from the file in memory and a bridge
/// fails, naming exactly those paths.
fn a_difference_is_caught(ctx: &Context) -> TestResult {
    let scratch = Scratch::new("different")?;
    let (name, text) = CORPUS[0];
    let path = scratch.write(name, text)?;
    let mut spec = with_xl_conf(DomainSpec::from_xl_config(&path).ctx("from_xl_config")?)?;
    spec.memory_mib += 1;
    spec.vifs[0].bridge = Some("elsewhere".into());
    let Err(report) = compare(xl_dry_run(&path)?, our_json(ctx, &spec)?) else {
        return Err("a spec with other memory and bridge compared equal to xl's".into());
    };
    let paths: Vec<&str> = report.lines().filter_map(|l| l.trim().split(':').next()).collect();
    crate::ensure(paths == ["/b_info/max_memkb", "/b_info/target_memkb", "/nics[0]/bridge"], || {
        format!("unexpected differences:\n{report}")
    })
}

/// Every key xl copies into domains, away from its default: xl and we must agree on each.
fn corpus_matches_xl_under_other_xl_conf(ctx: &Context) -> TestResult {
    let scratch = Scratch::new("other-xl-conf")?;
    let conf = scratch.write(
        "xl.conf",
        "run_hotplug_scripts = 0\nclaim_mode = 0\nblkdev_start = \"xvdy\"\nmax_grant_frames = 48\n\
         max_maptrack_frames = 512\nmax_grant_version = 1\nvif.default.script = \"vif-route\"\n\
         vif.default.bridge = \"xenbr9\"\nvif.default.gatewaydev = \"eth9\"\nvif.default.backend = \"0\"\n",
    )?;
    corpus_matches_xl_with(ctx, "corpus-other-xl-conf", &conf)
}

fn rejected_by_both(_ctx: &Context) -> TestResult {
    let scratch = Scratch::new("rejected")?;
    let mut failures = Vec::new();
    for (name, text, key) in REJECTED {
        let path = scratch.write(name, text)?;
        let result = (|| {
            if let Ok(json) = xl_dry_run(&path) {
                return Err(format!("xl accepts it:\n{json}"));
            }
            let ours = match DomainSpec::from_xl_config(&path) {
                Ok(spec) => return Err(format!("ours accepts it: {spec:?}")),
                Err(e) => e.to_string(),
            };
            let line = rejected_line(text, key).ok_or("the config does not set its key")?;
            let want = format!("{}:{line}: {key}: ", path.display());
            crate::ensure(ours.starts_with(&want), || format!("our error does not start with {want:?}: {ours}"))
        })();
        if let Err(e) = result {
            failures.push(format!("{name}:\n{e}"));
        }
    }
    if failures.is_empty() { Ok(()) } else { Err(failures.join("\n")) }
}

/// The 1-based line where `key` is assigned in `text`. A key naming a list item (`vtpm[0]`)
/// is its list's line: the lists of the rejected configs are written on one line.
fn rejected_line(text: &str, key: &str) -> Option<usize> {
    let key = key.split('[').next().unwrap_or(key);
    text.lines().position(|l| l.split('=').next().is_some_and(|k| k.trim() == key)).map(|i| i + 1)
}

fn finish(failures: Vec<String>) -> TestResult {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} of {} configs differ from xl:\n{}", failures.len(), CORPUS.len(), failures.join("\n")))
    }
}

/// Fails listing every JSON path where the two documents differ. No normalisation: every field
/// is compared as it is (both sides read dom0's /etc/xen/xl.conf for the settings xl copies
/// into every domain).
/// The xl config a daemon wrote for a domain is one `xl -N create` reads, and `domainctl
/// create --dry-run` of it (the parse the daemon uses) gives the libxl JSON xl gives.
pub(crate) fn xl_reads_as_dry_run(d: &crate::DaemonProcess, cfg: &Path) -> TestResult {
    let path = cfg.to_str().ok_or("config path is not UTF-8")?;
    let ours = d.domainctl_ok(&["create", "--dry-run", path])?;
    let ours: Value = serde_json::from_str(&ours).ctx("domainctl create --dry-run: not JSON")?;
    let text = std::fs::read_to_string(cfg).unwrap_or_default();
    compare(xl_dry_run(cfg)?, ours).map_err(|e| format!("{}: xl and --dry-run differ:\n{e}\n{text}", cfg.display()))
}

fn compare(xl: Value, ours: Value) -> TestResult {
    let mut diffs = Vec::new();
    diff("", &xl, &ours, &mut diffs);
    if diffs.is_empty() { Ok(()) } else { Err(diffs.join("\n")) }
}

/// Every path where `a` (xl's) and `b` (ours) differ.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}/{k}");
                match (x.get(k), y.get(k)) {
                    (Some(v), None) => out.push(format!("  {p}: only in xl's: {v}")),
                    (None, Some(v)) => out.push(format!("  {p}: only in ours: {v}")),
                    (Some(v), Some(w)) => diff(&p, v, w, out),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), v, w, out);
            }
        }
        _ if a != b => out.push(format!("  {path}: xl's {a}, ours {b}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_embedded_corpus_is_the_whole_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("xlcfg");
        let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cfg"))
            .collect();
        let embedded: BTreeSet<String> = CORPUS.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(embedded, on_disk);
        assert!(CORPUS.len() >= 8);
        let on_disk: BTreeSet<String> = std::fs::read_dir(dir.join("rejected"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cfg"))
            .collect();
        let embedded: BTreeSet<String> = REJECTED.iter().map(|(n, ..)| n.to_string()).collect();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn every_rejected_config_is_refused_naming_its_line_and_key() {
        for (name, text, key) in REJECTED {
            let e = DomainSpec::from_xl_config_text(name, text).unwrap_err().to_string();
            let line = rejected_line(text, key).unwrap();
            assert!(e.starts_with(&format!("{name}:{line}: {key}: ")), "{name}: {e}");
        }
    }

    #[test]
    fn every_corpus_config_parses_and_has_a_uuid() {
        // One node of two CPUs, for the lists that name `all` or a node.
        let host = HostCpus { max_cpus: 2, max_nodes: 1, node_cpus: vec![vec![0, 1]] };
        for (name, text) in CORPUS {
            let spec = read_on(&host, name, text).unwrap_or_else(|e| panic!("{e}"));
            assert!(text.contains(&spec.uuid.to_string()), "{name}: give every corpus config a uuid");
        }
    }

    #[test]
    fn every_difference_counts_nothing_is_normalised() {
        let xl = json!({
            "c_info": {"name": "a", "run_hotplug_scripts": "True"},
            "b_info": {"claim_mode": "True", "type.hvm": {"vnc": {"enable": "True"}}},
            "nics": [{"devid": 0}, {"devid": 5}],
            "pcidevs": [{"dev": 3, "rdm_policy": "strict"}]
        });
        let ours = json!({
            "c_info": {"name": "a"},
            "b_info": {"type.hvm": {"vnc": {"enable": "True"}}},
            "nics": [{"devid": 0}, {}],
            "pcidevs": [{"dev": 3, "rdm_policy": "strict"}]
        });
        let report = compare(xl, ours).unwrap_err();
        assert_eq!(
            report.lines().collect::<Vec<_>>(),
            [
                "  /b_info/claim_mode: only in xl's: \"True\"",
                "  /c_info/run_hotplug_scripts: only in xl's: \"True\"",
                "  /nics[1]/devid: only in xl's: 5"
            ]
        );
    }
}
