//! Parsing xl.cfg bytes in the helper process (`domainmgrd-xlparse`): what would abort or
//! exhaust libxlutil in the daemon is an error naming the file; good files parse as xenctl
//! parses them in-process, warnings included.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use domainmgrd::configfile::{MEMORY_ENV, XlParser, parse_xl_config};

fn parser() -> XlParser {
    XlParser::new(env!("CARGO_BIN_EXE_domainmgrd-xlparse"))
}

const PV_KERNEL: &str = include_str!("../../tests/xlcfg/pv-kernel.cfg");

#[test]
fn a_good_file_parses_as_in_process() {
    let child = parser().parse("pv-kernel.cfg", PV_KERNEL.as_bytes()).unwrap();
    let here = parse_xl_config("pv-kernel.cfg", PV_KERNEL.as_bytes()).unwrap();
    assert_eq!(child, here);
    assert!(child.uuid_given);
    assert_eq!(child.spec.name, "web01");
    // xenctl's warnings come back (and are logged by the parser); the result is unchanged.
    let text = "name = 'g'\nkernel = '/k'\ndevice_model = '/usr/bin/qemu'\n";
    assert_eq!(parser().parse("g.cfg", text.as_bytes()).unwrap().spec.name, "g");
}

/// The host's CPUs travel to the child: `all` and node lists read as xl reads them there.
#[test]
fn cpu_lists_are_read_on_the_host_the_parser_is_given() {
    use xenctl::HostCpus;
    // 6 CPU slots (one byte of bitmap) on two nodes.
    let host = HostCpus { max_cpus: 6, max_nodes: 2, node_cpus: vec![vec![0, 1, 2], vec![3, 4, 5]] };
    let text = b"name = 'g'\nkernel = '/k'\nvcpus = 2\ncpus = 'all,^0'\ncpus_soft = 'nodes:1'\n";
    let on_host = parser().with_host(Some(host.clone()));
    let spec = on_host.parse("g.cfg", text).unwrap().spec;
    assert_eq!(spec.cpus, [1, 2, 3, 4, 5, 6, 7], "every bit of the byte-rounded map, but CPU 0");
    assert_eq!(format!("{:?}", spec.tuning.soft_affinity), "Some(AllVcpus([3, 4, 5]))");
    let e = parser().parse("g.cfg", text).unwrap_err();
    assert!(e.starts_with("g.cfg:4: cpus: `all,^0': `all' stands alone"), "{e}");
    // The in-process fallback (a file over the size cap never reaches the child) agrees.
    let here = domainmgrd::configfile::parse_xl_config_on("g.cfg", text, Some(&host)).unwrap();
    assert_eq!(xenctl::DomainSpec { uuid: spec.uuid, ..here.spec }, spec);
}

#[test]
fn an_invalid_file_is_the_same_error_as_in_process() {
    let text = b"name = 'g'\nmemroy = 256\n";
    let e = parser().parse("/etc/xen/auto/g.cfg", text).unwrap_err();
    assert_eq!(e, "/etc/xen/auto/g.cfg:2: memroy: not an xl.cfg key");
    assert_eq!(parse_xl_config("/etc/xen/auto/g.cfg", text).unwrap_err(), e);
}

#[test]
fn a_nul_byte_in_a_quoted_string_is_an_error_naming_the_file() {
    // libxlutil asserts on this (xlu__cfgl_dequote): in-process it would abort the daemon.
    let e = parser().parse("/etc/xen/auto/nul.cfg", b"name = 'g'\nkernel = \"/k\0/vmlinuz\"\n").unwrap_err();
    assert_eq!(e, "/etc/xen/auto/nul.cfg:2: a NUL byte: xl.cfg files are text (libxlutil cannot read one)");
}

#[test]
fn a_list_bomb_under_the_size_cap_is_refused_before_libxlutil_sees_it() {
    // Each `+=` copies the list so far, and libxlutil keeps every copy: 20,000 lines (220 KB)
    // would take 1.6 GB. xenctl's reader counts the cost first.
    let text = format!("name = 'g'\nkernel = '/k'\n{}", "k += [\"a\"]\n".repeat(20_000));
    let e = parser().parse("/etc/xen/auto/bomb.cfg", text.as_bytes()).unwrap_err();
    assert!(e.starts_with("/etc/xen/auto/bomb.cfg:4094: k: too many `+=`"), "{e}");
}

#[test]
fn a_blow_up_no_filter_knows_is_stopped_by_the_childs_memory_limit() {
    // A bomb small enough for the reader's budget (2,000 lines) still takes libxlutil tens of
    // MiB: with the helper's limit lowered to 16 MiB, the limit is what stops it.
    let text = format!("name = 'g'\nkernel = '/k'\n{}", "k += [\"a\"]\n".repeat(2_000));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_domainmgrd-xlparse"))
        .arg("/etc/xen/auto/bomb.cfg")
        .env(MEMORY_ENV, "16")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        reply.contains("/etc/xen/auto/bomb.cfg: the xl.cfg parser ran out of memory (its limit is 16 MiB)"),
        "{reply}"
    );
    // Under the usual limit the same file parses (and is refused for its unknown key).
    let e = parser().parse("/etc/xen/auto/bomb.cfg", text.as_bytes()).unwrap_err();
    assert_eq!(e, "/etc/xen/auto/bomb.cfg:3: k: not an xl.cfg key");
}

/// Bytes from a fixed-seed xorshift generator, so the test is the same every run.
fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn garbage_binary_files_are_errors_naming_the_file() {
    for seed in 1..=20 {
        let bytes = garbage(64 << 10, seed);
        let e = parser().parse("/etc/xen/auto/garbage.cfg", &bytes).unwrap_err();
        assert!(e.starts_with("/etc/xen/auto/garbage.cfg:"), "{e}");
        // Without NUL bytes it reaches libxlutil, which must refuse it cleanly too.
        let no_nul: Vec<u8> = bytes.iter().map(|&b| b.max(1)).collect();
        let e = parser().parse("/etc/xen/auto/garbage.cfg", &no_nul).unwrap_err();
        assert!(e.starts_with("/etc/xen/auto/garbage.cfg"), "{e}");
        assert!(!e.contains("the xl.cfg parser was killed"), "{e}");
    }
    // A real binary, at most the cap of it.
    let exe = std::fs::read(env!("CARGO_BIN_EXE_domainmgrd-xlparse")).unwrap();
    let e = parser().parse("helper.cfg", &exe[..exe.len().min(1 << 20)]).unwrap_err();
    assert!(e.starts_with("helper.cfg:1: a NUL byte"), "{e}");
}

#[test]
fn deep_nesting_is_a_parse_error() {
    // Deeper than bison's stack (10,000): libxlutil says "memory exhausted", cleanly.
    let text = format!("name = 'g'\nkernel = '/k'\nk = {}'a'{}\n", "[".repeat(20_000), "]".repeat(20_000));
    let e = parser().parse("deep.cfg", text.as_bytes()).unwrap_err();
    assert!(e.starts_with("deep.cfg:3: "), "{e}");
}
