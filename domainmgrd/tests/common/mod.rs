//! A daemon on a simulated hypervisor in a temporary directory, driven through its config
//! files and observed through its status files and the simulator.

// Test support: a failed step panics, which is how a test fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domainmgrd::adapters::Sources;
use domainmgrd::adapters::host::Host;
use domainmgrd::configfile::XlParser;
use domainmgrd::control::{self, Request, Response};
use domainmgrd::eve::{DomainStatus, SwState};
use domainmgrd::files::Paths;
use domainmgrd::hypervisor::Hypervisor;
use domainmgrd::sim::{SimDomain, SimHypervisor};
use domainmgrd::supervisor::{Daemon, Options, StartError};
use serde_json::{Value, json};
use uuid::Uuid;

/// Seconds of the test settings (small, so retries and timeouts happen within a test).
pub const BOOT_RETRY: u64 = 1;
pub const SHUTDOWN_TIMEOUT: u64 = 2;

/// The safety-net poll's interval in the tests: far longer than any test, so that everything a
/// test sees was driven by events. Tests of the poll itself set [`POLL_FOR_POLL_TESTS`].
pub const POLL: &str = "timer.domain.poll:3600";
/// The poll interval for the tests of the safety-net poll itself.
pub const POLL_FOR_POLL_TESTS: &str = "timer.domain.poll:1";
/// How long a removed config file must stay away before its domain is halted.
pub const REMOVAL_GRACE: Duration = Duration::from_millis(300);

pub struct Env {
    pub dir: tempfile::TempDir,
    pub sim: SimHypervisor,
    pub daemon: Option<Daemon>,
    pub flags: Vec<String>,
    /// The simulator client of the daemon started last (what [`Env::kill`] cuts off).
    client: u64,
}

impl Env {
    pub fn new() -> Env {
        let _ = env_logger::builder().is_test(true).try_init();
        Env {
            dir: tempfile::tempdir().unwrap(),
            sim: SimHypervisor::new(),
            daemon: None,
            client: 0,
            flags: vec![
                format!("timer.boot.retry:{BOOT_RETRY}"),
                format!("timer.domain.shutdown:{SHUTDOWN_TIMEOUT}"),
                "timer.domain.destroy:2".into(),
                POLL.into(),
            ],
        }
    }

    pub fn paths(&self) -> Paths {
        Paths::under(self.dir.path())
    }

    /// Where the adapter inputs, the fake sysfs and the fake modprobe's log are.
    pub fn adapter_sources(&self) -> Sources {
        let root = self.dir.path();
        let modprobe = root.join("modprobe");
        if !modprobe.exists() {
            let script = format!("#!/bin/sh\necho \"$@\" >> {}\n", root.join("modprobe.log").display());
            domainmgrd::testing::write_script(&modprobe, &script);
        }
        Sources {
            adapter_list: root.join("zedagent/PhysicalIOAdapterList/global.json"),
            network_status: root.join("nim/DeviceNetworkStatus/global.json"),
            host: Host { sysfs: root.join("sys"), modprobe, procfs: root.join("proc"), zpool: root.join("no-zpool") },
        }
    }

    pub fn options(&self) -> Options {
        let mut o = Options::new(self.paths());
        o.adapter_sources = self.adapter_sources();
        o.config_flags = self.flags.clone();
        o.removal_grace = REMOVAL_GRACE;
        o.rescan_interval = Duration::from_secs(2);
        o.host_config = self.dir.path().join("host.conf");
        o.xl_parser = XlParser::new(env!("CARGO_BIN_EXE_domainmgrd-xlparse"));
        // The simulated domains' disk images do not exist (a test that wants EVE's check of
        // real images turns it back on).
        o.disk_probe = domainmgrd::diskformat::Probe::Off;
        o
    }

    /// The autostart directory (the host config's AUTO).
    pub fn auto_dir(&self) -> PathBuf {
        self.dir.path().join("auto")
    }

    /// Where SAVE points when a test saves.
    pub fn save_dir(&self) -> PathBuf {
        self.dir.path().join("save")
    }

    /// Writes the host settings: `AUTO=<auto_dir>` and then `lines`.
    pub fn write_host_config(&self, lines: &str) {
        let text = format!("AUTO={}\n{lines}\n", self.auto_dir().display());
        std::fs::write(self.dir.path().join("host.conf"), text).unwrap();
    }

    /// Writes the autostart file `<name>.cfg` for a small PV guest called `name`, plus `extra`.
    pub fn write_auto(&self, name: &str, extra: &str) -> PathBuf {
        std::fs::create_dir_all(self.auto_dir()).unwrap();
        let path = self.auto_dir().join(format!("{name}.cfg"));
        let text = format!(
            "name = \"{name}\"\ntype = \"pv\"\nkernel = \"/persist/kernel\"\nmemory = 128\n\
             vif = [ 'bridge=xenbr0' ]\n{extra}\n"
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Starts the daemon with one autostart domain `name` (its file with a fresh uuid and
    /// `extra` lines), started by an operator and running: its uuid, status and file.
    pub fn started_autostart_domain(&mut self, name: &str, extra: &str) -> (Uuid, DomainStatus, PathBuf) {
        let uuid = Uuid::new_v4();
        self.write_host_config("");
        let file = self.write_auto(name, &format!("uuid = \"{uuid}\"\n{extra}"));
        self.start();
        let r = self.start_request(name);
        assert!(r.ok, "{r:?}");
        (uuid, self.wait_state(uuid, SwState::RUNNING), file)
    }

    /// Sends a request to the daemon's control socket.
    pub fn control(&self, request: &Request) -> Response {
        control::call(&self.paths().run_dir.join("domainmgrd.sock"), request).unwrap()
    }

    /// The simulated domains called `name`.
    pub fn sim_named(&self, name: &str) -> Vec<SimDomain> {
        self.sim.domains().into_iter().filter(|d| d.spec.name == name).collect()
    }

    /// Starts a daemon with `options` (made from [`Env::options`]) on a new connection to the
    /// simulator.
    pub fn try_start_with(&mut self, options: Options) -> Result<(), StartError> {
        self.try_start_on(options, |client| Arc::new(client)).map(drop)
    }

    /// Starts a daemon with `options` on a new connection to the simulator, which `wrap` may
    /// wrap (in a hypervisor that records the calls, say); [`Env::kill`] cuts that connection
    /// off. Its client id.
    pub fn try_start_on(
        &mut self,
        options: Options,
        wrap: impl FnOnce(SimHypervisor) -> Arc<dyn Hypervisor>,
    ) -> Result<u64, StartError> {
        let client = self.sim.client();
        self.client = client.client_id();
        self.daemon = Some(Daemon::start(options, wrap(client))?);
        Ok(self.client)
    }

    pub fn try_start(&mut self) -> Result<(), StartError> {
        self.try_start_with(self.options())
    }

    pub fn start(&mut self) {
        self.try_start().unwrap();
    }

    pub fn start_with(&mut self, options: Options) {
        self.try_start_with(options).unwrap();
    }

    /// Kills the daemon as SIGKILL would: its calls in flight and later never return.
    pub fn kill(&mut self) {
        self.sim.kill_client(self.client);
        if let Some(d) = self.daemon.take() {
            d.abandon();
        }
    }

    pub fn stop(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop();
        }
    }

    pub fn config_path(&self, uuid: Uuid) -> PathBuf {
        self.paths().domain_config_dir().join(format!("{uuid}.json"))
    }

    /// Writes a config file as EVE's pubsub does: a temp file renamed into place.
    pub fn write_config(&self, config: &Value) {
        let uuid: Uuid = config["UUIDandVersion"]["UUID"].as_str().unwrap().parse().unwrap();
        std::fs::create_dir_all(self.paths().domain_config_dir()).unwrap();
        let tmp = self.paths().domain_config_dir().join(format!(".tmp-{uuid}"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        std::fs::rename(&tmp, self.config_path(uuid)).unwrap();
    }

    pub fn delete_config(&self, uuid: Uuid) {
        std::fs::remove_file(self.config_path(uuid)).unwrap();
    }

    pub fn status(&self, uuid: Uuid) -> Option<DomainStatus> {
        let bytes = std::fs::read(self.paths().status_file(&uuid.to_string())).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Waits until the status satisfies `want`.
    pub fn wait_status(&self, uuid: Uuid, what: &str, want: impl Fn(&DomainStatus) -> bool) -> DomainStatus {
        self.wait_status_within(uuid, what, Duration::from_secs(20), want)
    }

    pub fn wait_status_within(
        &self,
        uuid: Uuid,
        what: &str,
        timeout: Duration,
        want: impl Fn(&DomainStatus) -> bool,
    ) -> DomainStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status(uuid);
            if let Some(s) = status.as_ref().filter(|s| want(s)) {
                return s.clone();
            }
            assert!(Instant::now() < deadline, "waited {timeout:?} for {uuid} to be {what}; status now: {status:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Writes an active config for a new domain called `name` and waits until it runs.
    pub fn run_domain(&self, name: &str) -> (Uuid, DomainStatus) {
        let uuid = Uuid::new_v4();
        self.write_config(&config(uuid, name, true));
        (uuid, self.wait_state(uuid, SwState::RUNNING))
    }

    /// Marks the (stopped) daemon's status checkpoint as stale and holds it open: a daemon
    /// started next loads it, and publishes only what differs, so its `StateName` is made one
    /// the daemon never writes. Every write replaces the file (a new one is renamed over it),
    /// so [`Env::wait_rewritten`] can tell a new write from the old file (the held file's inode
    /// cannot be reused meanwhile).
    pub fn hold_status(&self, uuid: Uuid) -> std::fs::File {
        let path = self.paths().status_file(&uuid.to_string());
        let mut status: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        status["StateName"] = json!("STALE");
        let tmp = path.with_extension("stale");
        std::fs::write(&tmp, serde_json::to_vec(&status).unwrap()).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        std::fs::File::open(path).unwrap()
    }

    /// Waits until the status file was written since `held` was taken; the new status.
    pub fn wait_rewritten(&self, uuid: Uuid, held: &std::fs::File) -> DomainStatus {
        use std::os::unix::fs::MetadataExt;
        let old = held.metadata().unwrap().ino();
        let path = self.paths().status_file(&uuid.to_string());
        self.wait_for("the status to be written again", || std::fs::metadata(&path).is_ok_and(|m| m.ino() != old));
        self.status(uuid).unwrap()
    }

    pub fn wait_state(&self, uuid: Uuid, state: SwState) -> DomainStatus {
        self.wait_status(uuid, state.name(), |s| s.state == state)
    }

    /// Waits until `check` holds.
    pub fn wait_for(&self, what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check() {
            assert!(Instant::now() < deadline, "waited 20s for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asks the domain thread of `domain` to start it, through the supervisor: a sync point.
    /// Both handle requests in order, so everything either was sent before has been handled
    /// when this returns.
    pub fn start_request(&self, domain: &str) -> Response {
        self.control(&Request::Start { domain: domain.into() })
    }

    /// A round trip through the supervisor's loop: when it returns, the supervisor has finished
    /// an iteration (its pending removals settled) that began after this was called.
    pub fn supervisor_round_trip(&self) {
        for _ in 0..2 {
            assert!(self.control(&Request::List).ok);
        }
    }
}

/// Waits until the gate holds `n` calls.
pub fn wait_held(gate: &domainmgrd::sim::Gate, n: usize) {
    assert!(gate.wait_held(n, Duration::from_secs(20)), "{gate:?} never held {n} call(s); it holds {}", gate.held());
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A DomainConfig for a small PV guest with one disk and one vif, as EVE writes it.
pub fn config(uuid: Uuid, name: &str, activate: bool) -> Value {
    json!({
        "UUIDandVersion": {"UUID": uuid.to_string(), "Version": "1"},
        "DisplayName": name,
        "Activate": activate,
        "AppNum": (uuid.as_u128() % 1000) as i64 + 1,
        "Kernel": "/persist/kernel", "Ramdisk": "", "Memory": 131072, "MaxMem": 0,
        "VCpus": 1, "MaxCpus": 0, "RootDev": "/dev/xvda", "ExtraArgs": "", "BootLoader": "",
        "CPUs": null, "VirtualizationMode": 0, "EnableVnc": false,
        "DiskConfigList": [{"FileLocation": "/persist/img/root.img", "ReadOnly": false, "Format": 1}],
        "VifList": [{"Bridge": "bn1", "Vif": format!("nbu{}", uuid.as_u128() % 1000), "Mac": "AhY+AAAB", "MTU": 1500}],
        "IoAdapterList": null,
        "SomeFieldFromANewerEve": {"ignored": true}
    })
}
