//! The init as PID 1, without a VM: `xen-container-init --test-root DIR` in a new PID and mount
//! namespace (`unshare --pid --fork --mount`), running a busybox root filesystem built here.
//! Needs root (it mounts and chroots) and `/bin/busybox` from Debian's `busybox-static`; without
//! root it says so and skips, without busybox it fails saying what to install.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use xen_container_init::{NetConfig, RunSpec, SPEC_FILE, parse_exit_status};

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &["sh", "echo", "env", "id", "pwd", "sleep", "sort", "grep", "wc", "cat", "seq", "true"];

/// Why the namespaced tests cannot run here, if they cannot.
fn cannot_run() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let euid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
    if euid != 0 {
        return Some(format!("needs root (mount, chroot, unshare); running as uid {euid}"));
    }
    match Command::new("unshare").args(["--pid", "--fork", "--mount", "true"]).status() {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("unshare --pid --fork --mount failed ({s}): no namespaces here")),
        Err(e) => Some(format!("unshare (util-linux) not runnable: {e}")),
    }
}

macro_rules! require_root {
    () => {
        if let Some(why) = cannot_run() {
            eprintln!("SKIPPED: {why}");
            return;
        }
        assert!(Path::new(BUSYBOX).exists(), "{BUSYBOX} is missing: apt-get install -y busybox-static");
    };
}

/// A test directory: `rootfs/` (busybox, passwd, group) and the spec.
fn bundle(spec: &RunSpec) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    for d in ["bin", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nextra:x:2000:nobody\nnogroup:x:65534:\n").unwrap();
    std::fs::write(dir.path().join(SPEC_FILE), spec.to_json().unwrap()).unwrap();
    dir
}

fn spec(script: &str) -> RunSpec {
    RunSpec { argv: vec!["sh".into(), "-c".into(), script.into()], ..Default::default() }
}

/// A running init: its process (unshare), its output lines as they come.
struct Init {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Init {
    fn start(dir: &Path) -> Init {
        let mut child = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "--mount", "--propagation", "private"])
            .arg(env!("CARGO_BIN_EXE_xen-container-init"))
            .arg("--test-root")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Init { child, lines, seen: Vec::new() }
    }

    /// Waits (up to 30 s) for a line starting with `prefix`.
    fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.starts_with(prefix)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no line {prefix:?} in time; got:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The init's PID in the host's namespace (unshare's child).
    fn pid1(&self) -> Pid {
        let parent = self.child.id().to_string();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let Some(after_comm) = stat.rsplit_once(") ").map(|(_, r)| r) else { continue };
            if after_comm.split_whitespace().nth(1) == Some(parent.as_str()) {
                let pid: i32 = entry.file_name().to_string_lossy().parse().unwrap();
                return Pid::from_raw(pid).unwrap();
            }
        }
        panic!("init process not found");
    }

    /// Waits (up to 60 s) for the init to end; returns all output.
    fn finish(mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "init still running:\n{}", self.seen.join("\n"));
            std::thread::sleep(Duration::from_millis(50));
        };
        // The readers end when the pipes close.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        let out = self.seen.join("\n");
        assert!(status.success(), "init failed ({status}):\n{out}");
        out
    }
}

impl Drop for Init {
    /// A failed test leaves no init behind: unshare's death kills it (`--kill-child`).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn exit_status(dir: &Path) -> Option<i32> {
    parse_exit_status(&std::fs::read_to_string(dir.join("exit-status")).ok()?)
}

#[test]
fn entrypoint_gets_argv_env_cwd_and_user_and_its_status_is_recorded() {
    require_root!();
    let mut s = spec(
        "echo argv:$0:$1; echo cwd:$(pwd); echo ids:$(id -u):$(id -g):$(id -G); \
         env | sort | while read -r l; do echo env:$l; done; exit 3",
    );
    s.argv.extend(["zero".into(), "one two".into()]);
    s.env = vec!["FOO=bar baz".into(), "PATH=/bin".into()];
    s.cwd = "/work/dir".into();
    s.user = "1000:1000".into();
    s.hostname = "box".into();
    let dir = bundle(&s);
    let out = Init::start(dir.path()).finish();
    assert_eq!(exit_status(dir.path()), Some(3), "{out}");
    for want in [
        "argv:zero:one two",
        "cwd:/work/dir",
        "ids:1000:1000:1000",
        "env:FOO=bar baz",
        "env:PATH=/bin",
        "env:HOME=/",
        "env:HOSTNAME=box",
        "XENCONTAINER-EXIT 3",
    ] {
        assert!(out.lines().any(|l| l == want), "no line {want:?} in:\n{out}");
    }
    // Exactly the spec's environment, plus HOME and HOSTNAME (and what sh itself sets).
    let env: Vec<&str> =
        out.lines().filter_map(|l| l.strip_prefix("env:")).map(|l| l.split('=').next().unwrap()).collect();
    for var in &env {
        assert!(
            ["FOO", "PATH", "HOME", "HOSTNAME", "PWD", "SHLVL", "OLDPWD", "_"].contains(var),
            "unexpected {var} in:\n{out}"
        );
    }
}

#[test]
fn named_user_gets_its_groups_and_home() {
    require_root!();
    let mut s = spec("echo ids:$(id -u):$(id -g):$(id -G); echo home:$HOME");
    s.user = "nobody".into();
    let dir = bundle(&s);
    let out = Init::start(dir.path()).finish();
    assert_eq!(exit_status(dir.path()), Some(0), "{out}");
    assert!(out.lines().any(|l| l == "ids:65534:65534:65534 2000"), "{out}");
    assert!(out.lines().any(|l| l == "home:/nonexistent"), "{out}");
}

#[test]
fn stop_request_sends_sigterm_to_the_entrypoint() {
    require_root!();
    for signal in [Signal::TERM, Signal::POWER] {
        let mut s = spec("trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 1 & wait $!; done");
        s.stop_timeout_secs = 600;
        let dir = bundle(&s);
        let mut init = Init::start(dir.path());
        init.wait_line("ready");
        rustix::process::kill_process(init.pid1(), signal).unwrap();
        let out = init.finish();
        assert!(out.lines().any(|l| l == "got-term"), "{out}");
        assert_eq!(exit_status(dir.path()), Some(0), "{signal:?}: {out}");
    }
}

#[test]
fn entrypoint_ignoring_sigterm_is_killed_after_the_timeout() {
    require_root!();
    let mut s = spec("trap '' TERM; echo ready; while true; do sleep 1; done");
    s.stop_timeout_secs = 1;
    let dir = bundle(&s);
    let mut init = Init::start(dir.path());
    init.wait_line("ready");
    rustix::process::kill_process(init.pid1(), Signal::TERM).unwrap();
    let out = init.finish();
    assert_eq!(exit_status(dir.path()), Some(137), "{out}");
    assert!(out.contains("XENCONTAINER-EXIT 137"), "{out}");
}

#[test]
fn forwarded_signals_reach_the_entrypoint() {
    require_root!();
    let s = spec("trap 'echo got-usr1; exit 5' USR1; echo ready; while true; do sleep 1 & wait $!; done");
    let dir = bundle(&s);
    let mut init = Init::start(dir.path());
    init.wait_line("ready");
    rustix::process::kill_process(init.pid1(), Signal::USR1).unwrap();
    let out = init.finish();
    assert!(out.lines().any(|l| l == "got-usr1"), "{out}");
    assert_eq!(exit_status(dir.path()), Some(5), "{out}");
}

#[test]
fn orphaned_grandchildren_are_reaped() {
    require_root!();
    // Each subshell starts a process and exits at once: the process is reparented to PID 1,
    // writes its marker and exits. Once all markers are there, any zombie left is PID 1's fault.
    let s = spec(
        "for i in 1 2 3 4 5; do (sh -c \"echo > /tmp/orphan-$i\" &); done; \
         for i in $(seq 200); do [ -e /tmp/orphan-5 ] && [ -e /tmp/orphan-1 ] && break; sleep 0.05; done; \
         for i in $(seq 200); do z=$(grep -l ') Z ' /proc/[0-9]*/stat 2>/dev/null | wc -l); [ $z = 0 ] && break; sleep 0.05; done; \
         echo zombies:$z; echo orphans:$(cat /tmp/orphan-* | wc -l)",
    );
    let dir = bundle(&s);
    let out = Init::start(dir.path()).finish();
    assert!(out.lines().any(|l| l == "orphans:5"), "{out}");
    assert!(out.lines().any(|l| l == "zombies:0"), "{out}");
    assert_eq!(exit_status(dir.path()), Some(0), "{out}");
}

#[test]
fn missing_program_is_127_and_dns_is_written() {
    require_root!();
    let mut s = RunSpec { argv: vec!["no-such-program".into()], ..Default::default() };
    s.dns = vec!["10.0.0.1".into()];
    s.network = vec![NetConfig { mac: "00:16:3e:00:00:01".into(), dhcp: true, ..Default::default() }];
    let dir = bundle(&s);
    let out = Init::start(dir.path()).finish();
    assert_eq!(exit_status(dir.path()), Some(127), "{out}");
    let resolv = std::fs::read_to_string(dir.path().join("rootfs/etc/resolv.conf")).unwrap();
    assert_eq!(resolv, "nameserver 10.0.0.1\n");
}

#[test]
fn invalid_spec_records_no_status() {
    require_root!();
    let dir = bundle(&spec("true"));
    std::fs::write(dir.path().join(SPEC_FILE), br#"{"argv": ["true"], "bogus": 1}"#).unwrap();
    let out = Init::start(dir.path()).finish();
    assert!(out.contains("unknown field"), "{out}");
    assert_eq!(exit_status(dir.path()), None);
}
