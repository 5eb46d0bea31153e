//! Config files that would crash, hang or exhaust a daemon that read and parsed them itself
//! (issue 11): NUL bytes in quoted strings (libxlutil aborts), `+=` list bombs, binary garbage,
//! oversize files, FIFOs. In the autostart directory, through `domainctl create` and
//! `restore`, and as EVE DomainConfig files, each is an error naming the file, and the daemon
//! keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod host_support;

use std::path::{Path, PathBuf};

use common::Env;
use domainmgrd::configfile::XlParser;
use domainmgrd::control::Request;
use domainmgrd::eve::SwState;
use domainmgrd::images;
use host_support::{in_background, report_of, reports, running};
use uuid::Uuid;

/// A list bomb under the 1 MiB cap: 20,000 `+=` lines (220 KB) would take libxlutil 1.6 GB.
fn bomb(name: &str) -> String {
    format!("name = '{name}'\nkernel = '/k'\n{}", "k += [\"a\"]\n".repeat(20_000))
}

/// Binary garbage without NUL bytes (so that libxlutil itself sees it), the same every run.
fn garbage() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..64 << 10)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 24) as u8).max(1)
        })
        .collect()
}

fn mkfifo(path: &Path) {
    rustix::fs::mkfifoat(rustix::fs::CWD, path, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
}

/// The hostile files, each a file of `dir`: name and what its error must say.
fn write_hostile_files(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    std::fs::create_dir_all(dir).unwrap();
    let nul = dir.join("nul.cfg");
    std::fs::write(&nul, b"name = 'nul'\nkernel = \"/k\0\"\n").unwrap();
    let bomb_file = dir.join("bomb.cfg");
    std::fs::write(&bomb_file, bomb("bomb")).unwrap();
    let garbage_file = dir.join("garbage.cfg");
    std::fs::write(&garbage_file, garbage()).unwrap();
    let huge = dir.join("huge.cfg");
    std::fs::write(&huge, format!("name = 'huge'\nkernel = '/k'\n{}", "#\n".repeat(600_000))).unwrap();
    vec![
        (nul, ":2: a NUL byte: xl.cfg files are text"),
        (bomb_file, ":4094: k: too many `+=`"),
        (garbage_file, ":1: config parsing error"),
        (huge, ": 1200028 bytes, more than the 1 MiB an xl.cfg file may have"),
    ]
}

#[test]
fn hostile_autostart_files_are_reported_and_the_daemon_keeps_serving() {
    let mut env = Env::new();
    env.write_host_config("");
    let hostile = write_hostile_files(&env.auto_dir());
    env.write_auto("good", "");
    // Autostart directories are symlink farms: a link to a file elsewhere is read.
    let elsewhere = env.dir.path().join("linked.cfg");
    std::fs::write(&elsewhere, "name = 'linked'\ntype = 'pv'\nkernel = '/k'\nmemory = 64\n").unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.auto_dir().join("linked.cfg")).unwrap();
    env.start();

    let r = env.control(&Request::HostStart);
    let rs = reports(&r);
    assert!(running(&env, "good") && running(&env, "linked"), "{rs:#?}");
    for (file, says) in &hostile {
        let report = report_of(&rs, &file.display().to_string());
        let want = format!("autostart file not used: {}{says}", file.display());
        assert!(report.outcome.starts_with(&want), "{}\nwanted: {want}", report.outcome);
    }

    // A FIFO renamed into the directory (the watcher reports it as a new file): reading it
    // would block until a writer came, which never does.
    let fifo = env.dir.path().join("fifo");
    mkfifo(&fifo);
    std::fs::rename(&fifo, env.auto_dir().join("fifo.cfg")).unwrap();
    env.wait_for("the FIFO to be refused", || {
        let r = env.control(&Request::HostStart);
        reports(&r).iter().any(|r| r.name.ends_with("fifo.cfg"))
    });
    let r = env.control(&Request::HostStart);
    let fifo_report = report_of(&reports(&r), &env.auto_dir().join("fifo.cfg").display().to_string()).clone();
    assert!(fifo_report.outcome.ends_with("fifo.cfg: not a regular file but a FIFO"), "{fifo_report:?}");

    // Still serving.
    assert!(env.daemon.as_ref().unwrap().is_running());
    assert!(env.control(&Request::List).ok);
    assert!(env.control(&Request::Status { domain: Some("good".into()) }).ok);
}

/// A stand-in helper that logs each file it is asked to parse, then parses it.
fn counting_helper(env: &Env) -> (PathBuf, PathBuf) {
    let log = env.dir.path().join("parses.log");
    let helper = env.dir.path().join("counting-xlparse");
    // Its stdin is the file's name, a NUL, the file; the daemon starts it ahead of the file.
    let script = format!(
        "#!/bin/sh\nin=$(mktemp)\ncat > \"$in\"\ntr '\\0' '\\n' < \"$in\" | head -n 1 >> {log}\nexec {real} \"$@\" < \"$in\"\n",
        log = log.display(),
        real = env!("CARGO_BIN_EXE_domainmgrd-xlparse"),
    );
    domainmgrd::testing::write_script(&helper, &script);
    (helper, log)
}

#[test]
fn an_unchanged_autostart_file_is_parsed_once() {
    let mut env = Env::new();
    env.write_host_config("");
    let good = env.write_auto("good", "");
    let bad = env.auto_dir().join("nul.cfg");
    std::fs::write(&bad, b"name = 'nul'\nkernel = \"/k\0\"\n").unwrap();
    let (helper, log) = counting_helper(&env);
    let mut options = env.options();
    options.xl_parser = XlParser::new(helper);
    env.start_with(options);
    // Each host-start rescans the directory, as the periodic rescan does.
    for _ in 0..3 {
        let r = env.control(&Request::HostStart);
        assert!(report_of(&reports(&r), &bad.display().to_string()).outcome.contains("a NUL byte"), "{r:?}");
    }
    let parses = |file: &Path| {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        log.lines().filter(|l| *l == file.display().to_string()).count()
    };
    assert_eq!((parses(&good), parses(&bad)), (1, 1));
    // A changed file is parsed again.
    std::fs::write(&good, "name = 'good'\ntype = 'pv'\nkernel = '/k'\nmemory = 256\n").unwrap();
    env.wait_for("the changed file to be parsed", || parses(&good) == 2);
    env.control(&Request::HostStart);
    assert_eq!((parses(&good), parses(&bad)), (2, 1));
}

#[test]
fn a_helper_failure_is_tried_again_at_the_next_rescan() {
    let mut env = Env::new();
    env.write_host_config("");
    let good = env.write_auto("good", "");
    // A helper that is broken until the test repairs it (as when it is missing during an upgrade).
    let repaired = env.dir.path().join("repaired");
    let helper = env.dir.path().join("broken-xlparse");
    let script = format!(
        "#!/bin/sh\n[ -e {repaired} ] || {{ echo 'not yet' >&2; exit 1; }}\nexec {real} \"$@\"\n",
        repaired = repaired.display(),
        real = env!("CARGO_BIN_EXE_domainmgrd-xlparse"),
    );
    domainmgrd::testing::write_script(&helper, &script);
    let mut options = env.options();
    options.xl_parser = XlParser::new(&helper);
    env.start_with(options);
    let r = env.control(&Request::HostStart);
    let report = report_of(&reports(&r), &good.display().to_string()).clone();
    assert!(report.outcome.contains("the xl.cfg parser failed (exit status: 1"), "{report:?}");
    assert!(report.outcome.ends_with(": not yet"), "{report:?}");

    std::fs::write(&repaired, "").unwrap();
    let r = env.control(&Request::HostStart);
    assert!(r.ok, "{r:?}");
    assert!(running(&env, "good"));
}

#[test]
fn domainctl_create_of_hostile_files_fails_at_once_and_the_daemon_keeps_serving() {
    let mut env = Env::new();
    env.write_host_config("");
    env.start();
    let dir = env.dir.path().join("files");
    for (file, says) in write_hostile_files(&dir) {
        let r = env.control(&Request::Create { file: file.clone() });
        let e = r.error.unwrap_or_default();
        assert!(e.starts_with(&format!("{}{says}", file.display())), "{e}\nwanted: {}{says}", file.display());
    }
    let fifo = dir.join("fifo.cfg");
    mkfifo(&fifo);
    let r = env.control(&Request::Create { file: fifo.clone() });
    assert_eq!(r.error.unwrap_or_default(), format!("{}: not a regular file but a FIFO", fifo.display()));
    let r = env.control(&Request::Create { file: dir.clone() });
    assert_eq!(r.error.unwrap_or_default(), format!("{}: not a regular file but a directory", dir.display()));
    // An EVE DomainConfig may be larger than an xl.cfg file, up to its own cap.
    let big = dir.join("big.json");
    std::fs::write(&big, vec![b' '; (8 << 20) + 1]).unwrap();
    let e = env.control(&Request::Create { file: big.clone() }).error.unwrap_or_default();
    assert_eq!(e, format!("{}: 8388609 bytes, more than the 8 MiB an EVE DomainConfig file may have", big.display()));

    let good = dir.join("good.cfg");
    std::fs::write(&good, "name = 'good'\ntype = 'pv'\nkernel = '/k'\nmemory = 64\n").unwrap();
    let r = env.control(&Request::Create { file: good });
    assert!(r.ok, "{r:?}");
    assert!(running(&env, "good"));
    assert!(env.daemon.as_ref().unwrap().is_running());
}

#[test]
fn a_slow_parse_never_blocks_the_supervisor() {
    let mut env = Env::new();
    env.write_host_config("");
    // A stand-in helper that waits for the test's word before it parses.
    let gate = env.dir.path().join("gate");
    let started = env.dir.path().join("parse-started");
    let helper = env.dir.path().join("gated-xlparse");
    let script = format!(
        "#!/bin/sh\nin=$(mktemp)\ncat > \"$in\"\ntouch {started}\nwhile [ ! -e {gate} ]; do sleep 0.01; done\nexec {real} \"$@\" < \"$in\"\n",
        started = started.display(),
        gate = gate.display(),
        real = env!("CARGO_BIN_EXE_domainmgrd-xlparse"),
    );
    domainmgrd::testing::write_script(&helper, &script);
    let mut options = env.options();
    options.xl_parser = XlParser::new(&helper).with_timeout(std::time::Duration::from_secs(60));
    env.start_with(options);

    let file = env.dir.path().join("slow.cfg");
    std::fs::write(&file, "name = 'slow'\ntype = 'pv'\nkernel = '/k'\nmemory = 64\n").unwrap();
    let create = in_background(&env, Request::Create { file });
    env.wait_for("the parse to start", || started.exists());
    // The supervisor answers while the create's parse waits.
    let (uuid, _) = env.run_domain("eve-app");
    assert!(env.control(&Request::List).ok);
    assert!(!create.is_finished());
    std::fs::write(&gate, "").unwrap();
    let r = create.join().unwrap();
    assert!(r.ok, "{r:?}");
    assert!(running(&env, "slow"));
    assert_eq!(env.status(uuid).unwrap().state, SwState::RUNNING);
}

#[test]
fn a_restore_whose_record_holds_a_nul_byte_is_refused() {
    let mut env = Env::new();
    env.write_host_config("");
    env.start();
    let image = env.dir.path().join("nul.save");
    std::fs::write(&image, "an image").unwrap();
    let record = images::ImageRecord {
        uuid: Uuid::new_v4(),
        name: "nul".into(),
        xl_config: "name = \"nul\0\"\ntype = 'pv'\nkernel = '/k'\n".into(),
        libxl_json: None,
        saved_at: chrono::Utc::now(),
        boot_id: None,
        kind: images::ImageKind::Transient,
    };
    images::write_record(&image, &record).unwrap();
    let r = env.control(&Request::Restore { file: image });
    assert_eq!(
        r.error.unwrap_or_default(),
        "its recorded config does not parse: nul:1: a NUL byte: xl.cfg files are text (libxlutil cannot read one)"
    );
    assert!(env.control(&Request::List).ok);
}

#[test]
fn an_unreadable_domain_config_is_an_error_in_its_status() {
    let mut env = Env::new();
    env.start();
    let dir = env.paths().domain_config_dir();
    std::fs::create_dir_all(&dir).unwrap();
    // Over the cap: a status error, as for any config that cannot be used.
    let uuid = Uuid::new_v4();
    let mut config = common::config(uuid, "big", true);
    config["SomeFieldFromANewerEve"] = "x".repeat(8 << 20).into();
    env.write_config(&config);
    let st = env.wait_status(uuid, "an error", |s| !s.error.error.is_empty());
    let want = format!("{}: ", env.config_path(uuid).display());
    assert!(st.error.error.starts_with(&want), "{}", st.error.error);
    assert!(st.error.error.ends_with("more than the 8 MiB an EVE DomainConfig file may have"), "{}", st.error.error);

    // A FIFO renamed into place.
    let uuid = Uuid::new_v4();
    let fifo = dir.join(".fifo");
    mkfifo(&fifo);
    std::fs::rename(&fifo, env.config_path(uuid)).unwrap();
    let st = env.wait_status(uuid, "an error", |s| !s.error.error.is_empty());
    assert_eq!(st.error.error, format!("{}: not a regular file but a FIFO", env.config_path(uuid).display()));
    assert!(env.control(&Request::List).ok);
}
