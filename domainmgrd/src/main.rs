//! domainmgrd: runs Xen guest domains from EVE DomainConfig files and xl.cfg autostart files
//! through libxl; `domainctl` talks to it.
//!
//! It never stops a domain because it stops: SIGTERM and SIGINT end the daemon and leave every
//! domain running; the next start adopts them.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use domainmgrd::adapters::Sources;
use domainmgrd::adapters::host::Host;
use domainmgrd::agent::InputMode;
use domainmgrd::error_chain;
use domainmgrd::files::Paths;
use domainmgrd::hypervisor::{Hypervisor, LibxlHypervisor};
use domainmgrd::supervisor::{Daemon, Options};
use domainmgrd::translate::PvBoot;

/// Runs Xen guest domains from EVE's DomainConfig and xl.cfg files, through libxl, in-process.
///
/// As EVE's domainmgr agent: subscribes over EVE's pubsub to zedmanager's DomainConfig
/// (<CONFIG_DIR>/DomainConfig.sock), zedagent's ConfigItemValueMap and PhysicalIOAdapterList and
/// nim's DeviceNetworkStatus, and publishes DomainStatus, DomainMetric, HostMemory,
/// AssignableAdapters and Capabilities at <STATUS_DIR>/<Topic>.sock with their checkpoints in
/// <STATUS_DIR>/<Topic>/ (with --inputs=files it reads <CONFIG_DIR>/DomainConfig/<uuid>.json and
/// the inputs' global.json files instead). Also runs the xl.cfg files of the autostart directory,
/// and writes the xl config it asked libxl for in <STATUS_DIR>/xen/xen<AppNum>.cfg. Touches
/// <RUN_ROOT>/domainmgr.touch for EVE's watchdog. `domainctl` controls it through <RUN_DIR>/domainmgrd.sock
/// (root only). Stopping the daemon (SIGTERM, SIGINT, even SIGKILL) stops no domain; a restart
/// adopts what runs. Host boot and shutdown (`domainctl host-start`/`host-stop`) restore and
/// start, or save and stop, the domains as xendomains does.
#[derive(Debug, Parser)]
#[command(version, after_help = SETTINGS_HELP)]
struct Cli {
    /// EVE's run directory: the agents' directories and sockets, domainmgr.pid and .touch.
    #[arg(long, default_value = "/run", value_name = "DIR")]
    run_root: PathBuf,
    /// Where the EVE inputs come from: EVE's pubsub sockets, or files (watched).
    #[arg(long, default_value = "pubsub", value_name = "pubsub|files")]
    inputs: InputsArg,
    /// Where large pubsub fields' files are (only files there are read).
    #[arg(long, default_value = "/persist/pubsub-large", value_name = "DIR")]
    large_dir: PathBuf,
    /// zedmanager's directory, which publishes DomainConfig [default: <RUN_ROOT>/zedmanager].
    #[arg(long, value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// Our publications' directory (sockets, checkpoints) and xen/ [default: <RUN_ROOT>/domainmgr].
    #[arg(long, value_name = "DIR")]
    status_dir: Option<PathBuf>,
    /// Private state: the instance lock and lifecycle records (keep it on tmpfs).
    #[arg(long, default_value = "/run/domainmgrd", value_name = "DIR")]
    run_dir: PathBuf,
    /// Persistent state: operators' stops, kept across reboots.
    #[arg(long, default_value = "/var/lib/domainmgrd", value_name = "DIR")]
    state_dir: PathBuf,
    /// Settings file (instead of zedagent's ConfigItemValueMap): EVE's ConfigItemValueMap
    /// global.json, or {"key": value, ...}.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// A setting, overriding the file, e.g. --config=timer.boot.retry:600 (repeatable).
    #[arg(long = "config", value_name = "KEY:VALUE")]
    config_flags: Vec<String>,
    /// zedagent's directory: PhysicalIOAdapterList, and ConfigItemValueMap (the settings unless
    /// --settings is given) [default: <RUN_ROOT>/zedagent].
    #[arg(long, value_name = "DIR")]
    zedagent_dir: Option<PathBuf>,
    /// nim's directory: DeviceNetworkStatus (dom0's network ports) [default: <RUN_ROOT>/nim].
    #[arg(long, value_name = "DIR")]
    nim_dir: Option<PathBuf>,
    /// Where sysfs is mounted (to find the PCI address behind a network interface).
    #[arg(long, default_value = "/sys", value_name = "DIR")]
    sysfs_root: PathBuf,
    /// The program that loads and unloads the USB modules at start and when debug.enable.usb changes.
    #[arg(long, default_value = "modprobe", value_name = "PROGRAM")]
    modprobe: PathBuf,
    /// Host boot and shutdown settings, with /etc/default/xendomains' keys (SAVE, RESTORE, AUTO,
    /// AUTO_ONLY, SYSRQ, STOP_MAXWAIT, SHUTDOWN_ALL, ...); AUTO names the autostart directory of
    /// xl.cfg files (default /etc/xen/auto). A missing file means the defaults.
    #[arg(long, default_value = "/etc/default/domainmgr", value_name = "FILE")]
    host_config: PathBuf,
    /// xl's global settings (xl.conf(5)), read at each create and restore as xl reads them:
    /// run_hotplug_scripts, claim_mode, the grant limits, blkdev_start and the vif defaults
    /// go into every domain. A missing file means xl's defaults.
    #[arg(long, default_value = xenctl::XL_CONF_PATH, value_name = "FILE")]
    xl_conf: PathBuf,
    /// The device's ECDH private key (PEM), to decrypt EVE apps' encrypted cloud-init user
    /// data (IsCipher); EVE's soft key. Read when needed.
    #[arg(long, default_value = domainmgrd::cloudinit::DEFAULT_DEVICE_KEY, value_name = "FILE")]
    device_key: PathBuf,
    /// The controller certificates an encrypted user data's cipher context names by hash:
    /// zedagent's ControllerCert checkpoints (<hash>.json) or <hash>.pem files
    /// [default: <ZEDAGENT_DIR>/ControllerCert].
    #[arg(long, value_name = "DIR")]
    controller_certs: Option<PathBuf>,
    /// Serve Prometheus metrics (GET /metrics) on HOST:PORT or unix:PATH; off by default.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<domainmgrd::prometheus::Listen>,
    /// EVE's PV apps run as PVH where the host runs HVM guests, as EVE runs them (auto), or
    /// always as PV (never).
    #[arg(long, default_value = "auto", value_name = "auto|never")]
    pv_as_pvh: PvAsPvh,
    /// The firmware an EVE PV app without a kernel boots as PVH (EVE's OVMF build for PVH).
    #[arg(long, default_value = PvBoot::PVH_FIRMWARE, value_name = "FILE")]
    pvh_firmware: String,
    /// The GRUB image such an app boots as PV where it cannot run as PVH.
    #[arg(long, default_value = PvBoot::PV_GRUB, value_name = "FILE")]
    pv_grub: String,
    /// The host console's getty, run (with `sh -c`) while `debug.enable.console` is true and
    /// stopped with SIGUSR1 when it turns false, as EVE's domainmgr runs its rungetty.sh.
    #[arg(long, value_name = "COMMAND")]
    getty_command: Option<String>,
    /// The no-op hotplug script libxl runs for the vifs and disks the daemon sets up itself
    /// (in-process: netlink, loop devices; see the README), or `off` to leave every device to
    /// Xen's hotplug scripts. A missing script turns it off, with a warning.
    #[arg(long, default_value = "/usr/libexec/domainmgrd/native-hotplug", value_name = "FILE|off")]
    native_hotplug: String,
    /// How many creates, restores and destroys run at once, each on a libxl context of its own
    /// (libxl does one context's work under one lock); 0 runs them all on the shared context.
    #[arg(long, default_value_t = LibxlHypervisor::WORKERS, value_name = "N")]
    libxl_contexts: usize,
    /// The static init of container guests (`domainctl run`).
    #[arg(long, default_value = domainmgrd::container::PACKAGED_INIT, value_name = "FILE")]
    container_init: PathBuf,
    /// The kernel container guests boot (default: dom0's, /boot/vmlinuz-RELEASE). An ELF
    /// image (vmlinux) runs as PVH where the host runs HVM guests; a bzImage as PV.
    #[arg(long, value_name = "FILE")]
    container_kernel: Option<PathBuf>,
    /// That kernel's modules directory (default: dom0's, /lib/modules/RELEASE), or `none` for a
    /// kernel with 9pfs and the network front end built in.
    #[arg(long, value_name = "DIR|none")]
    container_modules: Option<String>,
    /// The containerd whose snapshots EVE's container volumes are (mounted at
    /// `<volume>/rootfs` before the app boots), or `off` to take volumes only with their root
    /// filesystem in place. Not running: volumes are taken as they are.
    #[arg(long, default_value = xen_ctrd::EVE_USER_SOCKET, value_name = "SOCKET|off")]
    containerd_socket: String,
    /// The containerd namespace of those snapshots.
    #[arg(long, default_value = xen_ctrd::DEFAULT_NAMESPACE, value_name = "NAMESPACE")]
    containerd_namespace: String,
    /// The shared, read-only image store: a writable disk whose image is a file under it gets
    /// the domain's own copy, `<persist-dir>/img/<image>-<uuid>.<ext>`, made once and kept until
    /// the domain's config is deleted; `off`: disks use their images in place.
    #[arg(long, default_value = domainmgrd::diskcopies::EVE_IMAGE_STORE, value_name = "DIR|off")]
    image_store: String,
    /// Where the copies go (in its `img/`).
    #[arg(long, default_value = domainmgrd::diskcopies::EVE_PERSIST, value_name = "DIR")]
    persist_dir: PathBuf,
    /// How copies are made: `auto` (a reflink where the file system can, an overlay on a qcow2
    /// image, else a sparse copy), or only `reflink`, `overlay`, `sparse` or `plain`.
    #[arg(long, default_value = "auto", value_name = "METHOD", value_parser = parse_copy_choice)]
    disk_copy: domainmgrd::diskcopies::Choice,
    /// At most this many MiB a second per copy (0: no limit), so that a large copy leaves the
    /// running guests some of the disk's bandwidth.
    #[arg(long, default_value_t = 0, value_name = "MIB")]
    disk_copy_rate: u64,
    /// Print the host's CPUs and memory and its domains, then exit.
    #[arg(long)]
    show: bool,
}

/// `--pv-as-pvh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PvAsPvh {
    /// Where the host runs HVM guests (EVE's rule).
    Auto,
    /// Never: PV apps run as PV.
    Never,
}

/// `--inputs`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum InputsArg {
    /// EVE's pubsub sockets, as EVE's agents subscribe.
    Pubsub,
    /// Files, watched with inotify.
    Files,
}

const SETTINGS_HELP: &str = "Settings (seconds unless noted):
  timer.boot.retry       wait before booting again a domain that failed or stopped (600)
  timer.domain.shutdown  grace for a graceful shutdown before destroy (60)
  timer.domain.destroy   wait for a destroyed domain to vanish before BROKEN (30)
  timer.domain.poll      safety-net check of each domain (60)
  timer.metric.interval  metrics interval (60)
  debug.enable.usb       keep USB controllers and USB input/storage in dom0 (true/false, true)
  debug.enable.console   run --getty-command on the host's console (true/false, true)
  debug.enable.vga       keep the boot VGA adapter in dom0 while no guest uses it (true/false, true)

Logging: RUST_LOG (default info; RUST_LOG=xen=debug shows libxl's own messages).";

/// `--disk-copy`.
fn parse_copy_choice(word: &str) -> Result<domainmgrd::diskcopies::Choice, String> {
    domainmgrd::diskcopies::Choice::from_word(word)
        .ok_or_else(|| format!("{word:?}: auto, reflink, overlay, sparse or plain"))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("domainmgrd: {}", error_chain(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let hv = LibxlHypervisor::open_with(cli.libxl_contexts)?;
    if cli.show {
        return show(&hv);
    }
    let agent_dir = |dir: Option<PathBuf>, agent: &str| dir.unwrap_or_else(|| cli.run_root.join(agent));
    let zedagent_dir = agent_dir(cli.zedagent_dir, "zedagent");
    let nim_dir = agent_dir(cli.nim_dir, "nim");
    let mut options = Options::new(Paths {
        config_dir: agent_dir(cli.config_dir, "zedmanager"),
        status_dir: agent_dir(cli.status_dir, "domainmgr"),
        run_dir: cli.run_dir,
        state_dir: cli.state_dir,
    });
    options.eve.inputs = match cli.inputs {
        InputsArg::Pubsub => InputMode::Pubsub { redial: Duration::from_secs(10), large_root: Some(cli.large_dir) },
        InputsArg::Files => InputMode::Files,
    };
    options.eve.agent_files = Some(cli.run_root.clone());
    options.eve.pv_as_pvh = cli.pv_as_pvh == PvAsPvh::Auto;
    options.eve.pv_boot.pvh_firmware = cli.pvh_firmware;
    options.eve.pv_boot.pv_grub = cli.pv_grub;
    options.settings_file = cli.settings;
    options.config_flags = cli.config_flags;
    options.adapter_sources = Sources {
        adapter_list: zedagent_dir.join("PhysicalIOAdapterList/global.json"),
        network_status: nim_dir.join("DeviceNetworkStatus/global.json"),
        host: Host { sysfs: cli.sysfs_root, modprobe: cli.modprobe, ..Host::default() },
    };
    options.metrics_listen = cli.metrics_listen;
    options.host_config = cli.host_config;
    options.xl_conf = Some(cli.xl_conf);
    options.getty_command = cli.getty_command;
    options.native_hotplug = (cli.native_hotplug != "off").then(|| PathBuf::from(cli.native_hotplug));
    options.containers.init = cli.container_init;
    if let Some(kernel) = cli.container_kernel {
        options.containers.kernel = kernel;
    }
    match cli.container_modules.as_deref() {
        Some("none") => options.containers.modules_dir = None,
        Some(dir) => options.containers.modules_dir = Some(PathBuf::from(dir)),
        None => {}
    }
    options.containers.snapshots = (cli.containerd_socket != "off").then(|| {
        xen_ctrd::Snapshots::new(&cli.containerd_socket, &cli.containerd_namespace, xen_ctrd::DEFAULT_SNAPSHOTTER)
    });
    options.disk_copies = (cli.image_store != "off").then(|| domainmgrd::diskcopies::DiskCopies {
        store: PathBuf::from(&cli.image_store),
        dir: cli.persist_dir.join("img"),
        choice: cli.disk_copy,
        rate_mib: (cli.disk_copy_rate > 0).then_some(cli.disk_copy_rate),
    });
    options.cipher_keys = domainmgrd::cloudinit::CipherKeys {
        device_key: cli.device_key,
        controller_certs: cli.controller_certs.unwrap_or_else(|| zedagent_dir.join("ControllerCert")),
        // Subscribed at the start, in pubsub mode.
        controller_topic: None,
    };
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?;
    let daemon = Daemon::start(options, Arc::new(hv))?;
    log::info!("domainmgrd {} running", env!("CARGO_PKG_VERSION"));
    let handle = signals.handle();
    let watchdog = std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            log::info!("signal {signal}: stopping; every domain keeps running");
        }
    });
    while !watchdog.is_finished() {
        if !daemon.is_running() {
            handle.close();
            return Err("the supervisor stopped unexpectedly".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    daemon.stop();
    Ok(())
}

fn show(hv: &LibxlHypervisor) -> Result<(), Box<dyn std::error::Error>> {
    let host = hv.host_info()?;
    println!(
        "host: Xen {}, {} CPUs at {} MHz, {} MiB memory, {} MiB free",
        host.xen_version,
        host.nr_cpus,
        host.cpu_khz / 1000,
        host.total_memory_bytes >> 20,
        host.free_memory_bytes >> 20
    );
    println!("{:<40} {:>5} {:>8} {:>5} {:>6} {:>10}", "Name", "ID", "Mem(MiB)", "VCPUs", "State", "Time(s)");
    for d in hv.list()? {
        println!(
            "{:<40} {:>5} {:>8} {:>5} {:>6} {:>10.1}",
            d.name.as_deref().unwrap_or("(none)"),
            d.domid,
            d.current_memory_kib / 1024,
            d.vcpus_online,
            d.state.letter(),
            d.cpu_time_ns as f64 / 1e9
        );
    }
    Ok(())
}
