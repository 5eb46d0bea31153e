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
        .env(MEMORY_ENV, "16")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = [b"/etc/xen/auto/bomb.cfg\0", text.as_bytes()].concat();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &input).unwrap();
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

/// A stand-in helper that logs `started PID` when it starts and `parsed PID SOURCE` once it has
/// its input, then parses it with the real helper.
fn logging_helper(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let log = dir.join("helper.log");
    let helper = dir.join("logging-xlparse");
    let script = format!(
        "#!/bin/sh\necho started $$ >> {log}\nin=$(mktemp)\ncat > \"$in\"\necho parsed $$ $(tr '\\0' '\\n' < \"$in\" | head -n 1) >> {log}\nexec {real} \"$@\" < \"$in\"\n",
        log = log.display(),
        real = env!("CARGO_BIN_EXE_domainmgrd-xlparse"),
    );
    domainmgrd::testing::write_script(&helper, &script);
    (helper, log)
}

/// The helpers started (their PIDs, in order) and what each parsed (PID and source).
fn helper_log(log: &std::path::Path) -> (Vec<String>, Vec<(String, String)>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let (mut started, mut parsed) = (vec![], vec![]);
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        match words[..] {
            ["started", pid] => started.push(pid.to_string()),
            ["parsed", pid, source] => parsed.push((pid.to_string(), source.to_string())),
            _ => panic!("{line:?}"),
        }
    }
    (started, parsed)
}

fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

#[test]
fn with_a_spare_each_parse_uses_a_helper_started_ahead_and_starts_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (helper, log) = logging_helper(dir.path());
    let wait_for = |started: usize, parsed: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (s, p) = helper_log(&log);
            if (s.len(), p.len()) == (started, parsed) {
                return (s, p);
            }
            assert!(std::time::Instant::now() < deadline, "{s:?} {p:?}, wanted {started} started, {parsed} parsed");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    // Without a spare, a helper starts for each file, when it comes.
    let cold = XlParser::new(&helper);
    cold.parse("a.cfg", PV_KERNEL.as_bytes()).unwrap();
    wait_for(1, 1);
    std::fs::remove_file(&log).unwrap();

    // With one, a helper is waiting before the first file.
    let parser = XlParser::new(&helper).with_spare();
    let (first, _) = wait_for(1, 0);
    let child = parser.parse("a.cfg", PV_KERNEL.as_bytes()).unwrap();
    assert_eq!(child, parse_xl_config("a.cfg", PV_KERNEL.as_bytes()).unwrap());
    // The file went to the one started ahead, and the next is waiting already.
    let (started, parsed) = wait_for(2, 1);
    assert_eq!(parsed, [(first[0].clone(), "a.cfg".to_string())]);
    let spare = started[1].clone();
    assert!(alive(&spare));

    // A spare that died meanwhile is not used: a new helper parses, and a new spare waits.
    std::process::Command::new("kill").arg("-9").arg(&spare).status().unwrap();
    // kill(1) returns before the signal has ended it: wait until it has.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alive(&spare) {
        assert!(std::time::Instant::now() < deadline, "the spare {spare} survived SIGKILL");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    parser.parse("b.cfg", PV_KERNEL.as_bytes()).unwrap();
    let (started, parsed) = wait_for(4, 2);
    assert_eq!(parsed[1].1, "b.cfg");
    assert_ne!(parsed[1].0, spare);
    let spare =
        started.iter().find(|pid| !parsed.iter().any(|(p, _)| p == *pid) && **pid != started[1]).unwrap().clone();
    assert!(alive(&spare));

    // A clone shares the spare; dropping the last parser kills it.
    let clone = parser.clone();
    drop(parser);
    assert!(alive(&spare));
    drop(clone);
    assert!(!alive(&spare), "the spare {spare} outlived its parser");
}
