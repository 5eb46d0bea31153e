//! Cross-crate and end-to-end tests.
//!
//! The end-to-end suite (`src/bin/xen-e2e.rs`) runs inside a real Xen 4.17 dom0 booted under
//! QEMU by `xen-box/run.sh`; `tests/xen_box.rs` is the `cargo test` entry that boots the box and
//! runs it. This library holds what the in-box tests share: the test guest's spec, waiting on
//! its console, `xl` as an oracle, and a guard that destroys a test domain whatever happens.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use xenctl::{Context, DomId, DomainSpec, ShutdownAction};

pub mod cloudinit_e2e;
pub mod container_e2e;
pub mod devices_e2e;
pub mod diskcopy_e2e;
pub mod eve_e2e;
pub mod eve_kinds_e2e;
pub mod guests_e2e;
pub mod host_e2e;
pub mod native_e2e;
pub mod twohost_e2e;
pub mod xlcfg_e2e;

/// An end-to-end test: it gets the shared context.
pub type E2eTest = fn(&Context) -> TestResult;

/// Held by every test that moves the box's passthrough NIC (tests run two at a time).
pub static PASSTHROUGH_NIC: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`PASSTHROUGH_NIC`] (a test that failed while holding it does not poison it for others).
pub fn lock_passthrough_nic() -> std::sync::MutexGuard<'static, ()> {
    PASSTHROUGH_NIC.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A test failure message.
pub type TestResult<T = ()> = Result<T, String>;

/// Adds context to any error: `ctx.unpause(d).ctx("unpause")?`.
pub trait Ctx<T> {
    /// Maps the error to "`what`: `error`".
    fn ctx(self, what: &str) -> TestResult<T>;
}

impl<T, E: Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: &str) -> TestResult<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// The domains Xen's log (`xl dmesg`) says died of a triple fault: "(XEN) d74v0 Triple fault -
/// invoking HVM shutdown action 1". Under QEMU's TCG emulation of SVM the box's PVH guests now
/// and then die so, on the way back from a VM exit (tests/xen-box/README.md); a triple fault is
/// a reboot to Xen (`HVM_PARAM_TRIPLE_FAULT_REASON`), not a crash. Domain ids are not reused
/// while the box is up, so the set only grows. Empty where `xl dmesg` cannot be read.
pub fn triple_faulted_domains() -> std::collections::BTreeSet<u32> {
    xl(&["dmesg"]).unwrap_or_default().lines().filter_map(triple_fault_domid).collect()
}

/// The domain id of a triple-fault line of Xen's log ("... d74v0 Triple fault ..."); None for
/// any other line.
fn triple_fault_domid(line: &str) -> Option<u32> {
    let (before, _) = line.split_once(" Triple fault")?;
    let vcpu = before.rsplit(' ').next()?;
    vcpu.strip_prefix('d')?.split_once('v')?.0.parse().ok()
}

/// Fails with `msg` unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> TestResult {
    if cond { Ok(()) } else { Err(msg()) }
}

fn env_path(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// The busybox PV test guest of the box: its init obeys `xenbox.*` words on the kernel command
/// line (see xen-box/files/guest-init): `ignore_shutdown=1`, `crash_after=N`, `reboot_after=N`,
/// `poweroff_after=N`, `marker=WORD`, `busy=1`.
pub fn test_guest(name: &str, xenbox_args: &str) -> DomainSpec {
    DomainSpec::pv(name)
        .memory_mib(128)
        .kernel(env_path("XENBOX_GUEST_KERNEL", "/var/lib/xenbox/vmlinux"))
        .ramdisk(env_path("XENBOX_GUEST_RAMDISK", "/var/lib/xenbox/domU-initrd.cpio.gz"))
        .cmdline(format!("console=hvc0 loglevel=4 {xenbox_args}").trim_end().to_string())
        .on_shutdown(ShutdownAction::Destroy, ShutdownAction::Restart, ShutdownAction::Preserve)
}

/// Destroys, on drop, whatever domains of these names still exist (with `xl`, whoever made them).
#[derive(Debug)]
pub struct Cleanup(pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for row in xl_list().unwrap_or_default() {
            if self.0.contains(&row.name) {
                let _ = xl(&["destroy", &row.name]);
            }
        }
    }
}

/// Whether `xl list` shows a domain called `name`.
pub fn running(name: &str) -> TestResult<bool> {
    Ok(xl_list()?.iter().any(|r| r.name == name))
}

/// A sparse 64 MiB raw image at `path` with words from dom0 1 MiB in (what the test guest's
/// `xenbox.disk_io=1` reads back as `XENBOX-GUEST-DISK-READ`); the words.
pub fn disk_image_with_words(path: &Path) -> TestResult<String> {
    let file = std::fs::File::create(path).ctx("create image")?;
    file.set_len(64 << 20).ctx("size image")?;
    let words = format!("FROM-DOM0-{}", std::process::id());
    std::os::unix::fs::FileExt::write_all_at(&file, words.as_bytes(), 1 << 20).ctx("write image")?;
    Ok(words)
}

thread_local! {
    /// Which run of its test this thread runs (1, or more in xen-e2e's runner after a guest's
    /// triple fault): see [`unique_name`].
    static RUN: std::cell::Cell<u32> = const { std::cell::Cell::new(1) };
    /// The console logs this thread read (see [`take_consoles_read`]).
    static CONSOLES_READ: std::cell::RefCell<std::collections::BTreeSet<PathBuf>> =
        const { std::cell::RefCell::new(std::collections::BTreeSet::new()) };
}

/// A name no other test (or earlier run) uses: `e2e-BASE-PID`, and `e2e-BASE-PID-runN` in a
/// test's Nth run, so that nothing an earlier run left (xenconsoled appends to a name's log,
/// here and on the peer host) is read as this run's.
pub fn unique_name(base: &str) -> String {
    match RUN.get() {
        1 => format!("e2e-{base}-{}", std::process::id()),
        n => format!("e2e-{base}-{}-run{n}", std::process::id()),
    }
}

/// Sets which run of its test this thread runs (1 for the first), for [`unique_name`].
pub fn set_run(run: u32) {
    RUN.set(run);
}

/// The console logs this thread read through [`console_text`] since the last call: the logs of
/// the guests of the test it runs (including those whose names are fixed, not unique).
pub fn take_consoles_read() -> std::collections::BTreeSet<PathBuf> {
    CONSOLES_READ.take()
}

/// Where xenconsoled logs the guest's console.
pub fn console_log(name: &str) -> PathBuf {
    Path::new(&env_path("XENBOX_CONSOLE_LOG_DIR", "/var/log/xen/console")).join(format!("guest-{name}.log"))
}

/// The guest's console output so far ("" if none).
pub fn console_text(name: &str) -> String {
    let path = console_log(name);
    let text = std::fs::read(&path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    CONSOLES_READ.with_borrow_mut(|read| read.insert(path));
    text
}

/// Waits until the guest's console shows a line containing `pattern`; returns that line.
pub fn wait_console(name: &str, pattern: &str, timeout: Duration) -> TestResult<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(line) = console_text(name).lines().find(|l| l.contains(pattern)) {
            return Ok(line.trim().to_string());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "guest {name}: no {pattern:?} on its console within {timeout:?}; console tail:\n{}",
                tail(&console_text(name), 15)
            ));
        }
        // The console is a file xenconsoled appends to; re-reading it is the only way to
        // see new lines, so a short sleep with a deadline is the condition wait here.
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `check` returns `Some`, up to `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> TestResult<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("{what}: not within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `xl ARGS`; its stdout, or an error with its stderr.
/// libxl's config of the running domain `name`, as `xl list -l` prints it.
pub fn xl_config(name: &str) -> TestResult<serde_json::Value> {
    let text = xl(&["list", "-l", name])?;
    let v: serde_json::Value = serde_json::from_str(&text).ctx("xl list -l JSON")?;
    Ok(v[0]["config"].clone())
}

/// A xenstore node's value, trimmed.
pub fn xenstore_read(path: &str) -> TestResult<String> {
    Ok(run("xenstore-read", &[path])?.trim().to_string())
}

pub fn xl(args: &[&str]) -> TestResult<String> {
    run("xl", args)
}

/// Runs a program; its stdout, or an error naming it with its stderr.
pub fn run(program: &str, args: &[&str]) -> TestResult<String> {
    let out = Command::new(program).args(args).output().ctx(&format!("run {program}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One row of `xl list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlListRow {
    /// Name.
    pub name: String,
    /// Domain id.
    pub domid: u32,
    /// Memory, MiB.
    pub mem_mib: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// State letters, e.g. `-b----`.
    pub state: String,
}

/// Parses `xl list`.
pub fn xl_list() -> TestResult<Vec<XlListRow>> {
    let text = xl(&["list"])?;
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            // The name may contain spaces in theory; ours do not. Split from the right.
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 {
                return Err(format!("unexpected xl list line {line:?}"));
            }
            let n = f.len();
            Ok(XlListRow {
                name: f[..n - 5].join(" "),
                domid: f[n - 5].parse().ctx("xl list domid")?,
                mem_mib: f[n - 4].parse().ctx("xl list mem")?,
                vcpus: f[n - 3].parse().ctx("xl list vcpus")?,
                state: f[n - 2].to_string(),
            })
        })
        .collect()
}

/// `key : value` pairs of `xl info`.
pub fn xl_info() -> TestResult<Vec<(String, String)>> {
    Ok(xl(&["info"])?
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect())
}

/// Destroys the domain when dropped unless disarmed, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct DomainGuard {
    ctx: Context,
    domid: Option<DomId>,
    name: String,
}

impl DomainGuard {
    /// Guards `domid`, named `name` (for messages).
    pub fn new(ctx: &Context, domid: DomId, name: &str) -> DomainGuard {
        DomainGuard { ctx: ctx.clone(), domid: Some(domid), name: name.to_string() }
    }

    /// The guarded domain.
    pub fn domid(&self) -> DomId {
        self.domid.unwrap_or(DomId::DOM0)
    }

    /// Replaces the guarded domain (after a restore gave it a new id).
    pub fn replace(&mut self, domid: DomId) {
        self.domid = Some(domid);
    }

    /// Stops guarding (the test destroyed it itself).
    pub fn disarm(&mut self) {
        self.domid = None;
    }
}

impl Drop for DomainGuard {
    fn drop(&mut self) {
        if let Some(domid) = self.domid.take()
            && self.ctx.info(domid).is_ok()
            && let Err(e) = self.ctx.destroy(domid)
        {
            eprintln!("cleanup: destroy of {} (domain {domid}) failed: {e}", self.name);
        }
    }
}

/// A domainmgrd process in dom0, with its own directories under `/tmp`.
#[derive(Debug)]
pub struct DaemonProcess {
    /// The process.
    pub child: Option<std::process::Child>,
    /// Its root: `zedmanager/`, `domainmgr/`, `run/`, `state/`, `host.conf`, `daemon.log`.
    pub root: PathBuf,
    /// Its extra `--config` flags.
    pub flags: Vec<String>,
    /// Other arguments.
    pub args: Vec<String>,
    /// Whether EVE's inputs come over EVE's pubsub sockets (else as files, `--inputs=files`).
    pub pubsub: bool,
    /// Whether EVE's PV apps run as PVH, as on an EVE host with HVM (else `--pv-as-pvh=never`).
    /// Off by default: the box's PVH guests die now and then of a triple fault right after a
    /// VM exit (an `rdtsc` or a hypercall) under QEMU's TCG emulation of SVM, and the suite's
    /// many EVE apps would make that a flake; the tests of PVH itself turn it on.
    pub pv_as_pvh: bool,
    /// Whether it sets up vifs and disks itself (`--native-hotplug=$NATIVE_HOTPLUG`, the
    /// no-op script beside the binaries in the box), else Xen's hotplug scripts do. On by
    /// default where `NATIVE_HOTPLUG` is set.
    pub native: bool,
    /// Its `RUST_LOG` (`info` by default).
    pub rust_log: String,
    /// Its run directory (its sockets): `<root>/run` unless set (the default one,
    /// `/run/domainmgrd`, is what `domainctl` and `ssh HOST domainctl migrate-receive` find).
    pub run_dir: Option<PathBuf>,
}

impl DaemonProcess {
    /// The binary: `$DOMAINMGRD`, else `domainmgrd` beside this test program.
    pub fn binary() -> PathBuf {
        std::env::var_os("DOMAINMGRD").map(PathBuf::from).unwrap_or_else(|| {
            std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join("domainmgrd"))).unwrap_or_default()
        })
    }

    /// A daemon rooted at `/tmp/<name>` (not started).
    pub fn new(name: &str, flags: &[&str]) -> DaemonProcess {
        let root = PathBuf::from(format!("/tmp/{name}"));
        let _ = std::fs::remove_dir_all(&root);
        DaemonProcess {
            child: None,
            root,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            args: Vec::new(),
            pubsub: false,
            pv_as_pvh: false,
            native: true,
            rust_log: "info".into(),
            run_dir: None,
        }
    }

    /// Its run directory.
    pub fn run_dir(&self) -> PathBuf {
        self.run_dir.clone().unwrap_or_else(|| self.root.join("run"))
    }

    /// Its arguments (after the binary).
    pub fn arguments(&self) -> Vec<String> {
        let mut args = vec![
            format!("--config-dir={}", self.root.join("zedmanager").display()),
            format!("--status-dir={}", self.root.join("domainmgr").display()),
            format!("--run-dir={}", self.run_dir().display()),
            format!("--state-dir={}", self.root.join("state").display()),
            format!("--host-config={}", self.root.join("host.conf").display()),
            format!("--run-root={}", self.root.display()),
            format!("--large-dir={}", self.root.join("persist/pubsub-large").display()),
            (if self.pubsub { "--inputs=pubsub" } else { "--inputs=files" }).to_string(),
        ];
        args.extend(self.flags.iter().map(|f| format!("--config={f}")));
        if !self.pv_as_pvh {
            args.push("--pv-as-pvh=never".into());
        }
        match std::env::var("NATIVE_HOTPLUG") {
            Ok(script) if self.native => args.push(format!("--native-hotplug={script}")),
            _ => args.push("--native-hotplug=off".into()),
        }
        args.extend(self.args.iter().cloned());
        args
    }

    /// Starts it (again).
    pub fn start(&mut self) -> TestResult {
        std::fs::create_dir_all(&self.root).ctx("create daemon root")?;
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.root.join("daemon.log")).ctx("log")?;
        let mut cmd = Command::new(Self::binary());
        cmd.args(self.arguments());
        let child = cmd
            .env("RUST_LOG", &self.rust_log)
            .stdout(log.try_clone().ctx("log")?)
            .stderr(log)
            .spawn()
            .ctx(&format!("start {}", Self::binary().display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills it with SIGKILL (as a crash would) and reaps it.
    pub fn kill9(&mut self) -> TestResult {
        if let Some(mut c) = self.child.take() {
            c.kill().ctx("kill -9")?;
            c.wait().ctx("wait")?;
        }
        Ok(())
    }

    /// Stops it with SIGTERM and waits for it to exit; its exit status.
    pub fn terminate(&mut self) -> TestResult<std::process::ExitStatus> {
        let mut c = self.child.take().ok_or("not running")?;
        run("kill", &["-TERM", &c.id().to_string()])?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = c.try_wait().ctx("wait")? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return Err("domainmgrd did not exit within 30 s of SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its control socket.
    pub fn socket(&self) -> PathBuf {
        self.run_dir().join("domainmgrd.sock")
    }

    /// Waits until it answers on its control socket.
    pub fn wait_ready(&self) -> TestResult {
        wait_until("domainmgrd's control socket", Duration::from_secs(60), || {
            std::os::unix::net::UnixStream::connect(self.socket()).ok()
        })
        .map(drop)
    }

    /// Runs `domainctl ARGS` against it: exit code, stdout, stderr.
    pub fn domainctl(&self, args: &[&str]) -> TestResult<CtlOutput> {
        let bin = std::env::var_os("DOMAINCTL")
            .map(PathBuf::from)
            .unwrap_or_else(|| Self::binary().with_file_name("domainctl"));
        let out = Command::new(&bin)
            .arg(format!("--socket={}", self.socket().display()))
            .args(args)
            .output()
            .ctx(&format!("run {}", bin.display()))?;
        Ok(CtlOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs `domainctl ARGS`, which must succeed; its stdout.
    pub fn domainctl_ok(&self, args: &[&str]) -> TestResult<String> {
        let o = self.domainctl(args)?;
        if o.code != 0 {
            let log = std::fs::read_to_string(self.root.join("daemon.log")).unwrap_or_default();
            return Err(format!(
                "domainctl {} exited {}: {}{}\ndaemon log tail:\n{}",
                args.join(" "),
                o.code,
                o.stdout,
                o.stderr.trim(),
                tail(&log, 20)
            ));
        }
        Ok(o.stdout)
    }

    /// Writes a DomainConfig as EVE does (temp file renamed into place).
    pub fn write_config(&self, config: &serde_json::Value) -> TestResult {
        let uuid = config["UUIDandVersion"]["UUID"].as_str().ok_or("config without UUID")?;
        let dir = self.root.join("zedmanager/DomainConfig");
        std::fs::create_dir_all(&dir).ctx("config dir")?;
        let tmp = dir.join(format!(".{uuid}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(config).ctx("json")?).ctx("write config")?;
        std::fs::rename(&tmp, dir.join(format!("{uuid}.json"))).ctx("rename config")
    }

    /// The status file of `uuid`, parsed.
    pub fn status(&self, uuid: &str) -> Option<serde_json::Value> {
        let bytes = std::fs::read(self.root.join(format!("domainmgr/DomainStatus/{uuid}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Waits until the status satisfies `want`, with the daemon's log tail on failure.
    pub fn wait_status(
        &self,
        uuid: &str,
        what: &str,
        timeout: Duration,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> TestResult<serde_json::Value> {
        wait_until(what, timeout, || self.status(uuid).filter(|s| want(s))).map_err(|e| {
            let log = std::fs::read_to_string(self.root.join("daemon.log")).unwrap_or_default();
            format!("{e}; status: {:?}\ndaemon log tail:\n{}\n{}", self.status(uuid), tail(&log, 20), self.threads())
        })
    }

    /// What the daemon's threads and child processes are doing now, from /proc: each thread's
    /// name, state, wait channel and kernel stack, and each child's command line. For the
    /// message of a test that timed out waiting for the daemon.
    pub fn threads(&self) -> String {
        let Some(pid) = self.child.as_ref().map(|c| c.id()) else { return "daemon: not running\n".into() };
        let read = |p: String| std::fs::read_to_string(p).unwrap_or_default().trim().to_string();
        let mut out = format!("daemon {pid}'s threads (tid name state wchan | kernel stack):\n");
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
        for task in tasks {
            let dir = task.path().display().to_string();
            let state = read(format!("{dir}/stat")).rsplit(") ").next().unwrap_or("?").chars().next().unwrap_or('?');
            let stack: Vec<String> = read(format!("{dir}/stack"))
                .lines()
                .take(6)
                .map(|l| l.split_whitespace().nth(1).unwrap_or(l).to_string())
                .collect();
            out += &format!(
                "  {} {} {state} {} | {}\n",
                task.file_name().to_string_lossy(),
                read(format!("{dir}/comm")),
                read(format!("{dir}/wchan")),
                stack.join(" < ")
            );
        }
        let procs = std::fs::read_dir("/proc").into_iter().flatten().flatten();
        for p in procs {
            let stat = read(format!("{}/stat", p.path().display()));
            let ppid = stat.rsplit(") ").next().and_then(|r| r.split_whitespace().nth(1)).unwrap_or("");
            if ppid == pid.to_string() {
                let cmd = read(format!("{}/cmdline", p.path().display())).replace('\0', " ");
                out += &format!("  child {}: {cmd}\n", p.file_name().to_string_lossy());
            }
        }
        out
    }
}

/// What a `domainctl` run printed.
#[derive(Debug, Clone)]
pub struct CtlOutput {
    /// Exit status.
    pub code: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// EVE's SwState of a running domain (`DomainStatus.State`).
pub const RUNNING: u64 = 115;
/// EVE's SwState of a halted domain.
pub const HALTED: u64 = 119;

/// A status check: the DomainStatus's `State` is `want`.
pub fn state_is(want: u64) -> impl Fn(&serde_json::Value) -> bool {
    move |s| s["State"].as_u64() == Some(want)
}

/// A DomainConfig (EVE JSON) for the box's test guest, with a vif on the box's bridge.
pub fn eve_config(uuid: &str, name: &str, app_num: u32, activate: bool, xenbox_args: &str) -> serde_json::Value {
    serde_json::json!({
        "UUIDandVersion": {"UUID": uuid, "Version": "1"},
        "DisplayName": name,
        "Activate": activate,
        "AppNum": app_num,
        "Kernel": env_path("XENBOX_GUEST_KERNEL", "/var/lib/xenbox/vmlinux"),
        "Ramdisk": env_path("XENBOX_GUEST_RAMDISK", "/var/lib/xenbox/domU-initrd.cpio.gz"),
        "Memory": 131072,
        "VCpus": 1,
        "ExtraArgs": format!("loglevel=4 {xenbox_args}"),
        "VirtualizationMode": 0,
        "DiskConfigList": null,
        "VifList": [{"Bridge": env_path("XENBOX_BRIDGE", "xenbr0"), "Vif": format!("nbu{app_num}"), "MTU": 1500}],
        "IoAdapterList": null
    })
}

#[cfg(test)]
mod tests {
    use super::triple_fault_domid;

    #[test]
    fn triple_fault_lines_give_their_domain() {
        // As `xl dmesg` prints them (the serial log adds a time stamp before "(XEN)").
        assert_eq!(triple_fault_domid("(XEN) d74v0 Triple fault - invoking HVM shutdown action 1"), Some(74));
        assert_eq!(
            triple_fault_domid("[ 191.467] (XEN) d24v1 Triple fault - invoking HVM shutdown action 1"),
            Some(24)
        );
        assert_eq!(triple_fault_domid("(XEN) d63v0: upcall vector f3"), None);
        assert_eq!(triple_fault_domid("(XEN) HVM d64v0 save: CPU"), None);
        assert_eq!(triple_fault_domid("(XEN) device Triple fault"), None);
        assert_eq!(triple_fault_domid("Triple fault"), None);
    }
}
