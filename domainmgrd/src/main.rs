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
use domainmgrd::error_chain;
use domainmgrd::files::Paths;
use domainmgrd::hypervisor::{Hypervisor, LibxlHypervisor};
use domainmgrd::supervisor::{Daemon, Options};

/// Runs Xen guest domains from EVE DomainConfig files and xl.cfg files, through libxl, in-process.
///
/// Reads <CONFIG_DIR>/DomainConfig/<uuid>.json and the xl.cfg files of the autostart directory,
/// writes <STATUS_DIR>/DomainStatus/<uuid>.json and the xl config it asked libxl for in
/// <STATUS_DIR>/xen/xen<AppNum>.cfg. `domainctl` controls it through <RUN_DIR>/domainmgrd.sock
/// (root only). Stopping the daemon (SIGTERM, SIGINT, even SIGKILL) stops no domain; a restart
/// adopts what runs. Host boot and shutdown (`domainctl host-start`/`host-stop`) restore and
/// start, or save and stop, the domains as xendomains does.
#[derive(Debug, Parser)]
#[command(version, after_help = SETTINGS_HELP)]
struct Cli {
    /// Where DomainConfig/ is read from (EVE's zedmanager output).
    #[arg(long, default_value = "/run/zedmanager", value_name = "DIR")]
    config_dir: PathBuf,
    /// Where DomainStatus/ and xen/ are written (EVE's domainmgr output).
    #[arg(long, default_value = "/run/domainmgr", value_name = "DIR")]
    status_dir: PathBuf,
    /// Private state: the instance lock and lifecycle records (keep it on tmpfs).
    #[arg(long, default_value = "/run/domainmgrd", value_name = "DIR")]
    run_dir: PathBuf,
    /// Persistent state: operators' stops, kept across reboots.
    #[arg(long, default_value = "/var/lib/domainmgrd", value_name = "DIR")]
    state_dir: PathBuf,
    /// Settings file: EVE's ConfigItemValueMap global.json, or {"key": value, ...}.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// A setting, overriding the file, e.g. --config=timer.boot.retry:600 (repeatable).
    #[arg(long = "config", value_name = "KEY:VALUE")]
    config_flags: Vec<String>,
    /// Where PhysicalIOAdapterList/global.json is read from (EVE's zedagent output).
    #[arg(long, default_value = "/run/zedagent", value_name = "DIR")]
    zedagent_dir: PathBuf,
    /// Where DeviceNetworkStatus/global.json (dom0's network ports) is read from (EVE's nim).
    #[arg(long, default_value = "/run/nim", value_name = "DIR")]
    nim_dir: PathBuf,
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
    /// Serve Prometheus metrics (GET /metrics) on HOST:PORT or unix:PATH; off by default.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<domainmgrd::prometheus::Listen>,
    /// Print the host's CPUs and memory and its domains, then exit.
    #[arg(long)]
    show: bool,
}

const SETTINGS_HELP: &str = "Settings (seconds unless noted):
  timer.boot.retry       wait before booting again a domain that failed or stopped (600)
  timer.domain.shutdown  grace for a graceful shutdown before destroy (60)
  timer.domain.destroy   wait for a destroyed domain to vanish before BROKEN (30)
  timer.domain.poll      safety-net check of each domain (60)
  timer.metric.interval  metrics interval (60)
  debug.enable.usb       keep USB controllers and USB input/storage in dom0 (true/false, true)

Logging: RUST_LOG (default info; RUST_LOG=xen=debug shows libxl's own messages).";

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
    let hv = LibxlHypervisor::open()?;
    if cli.show {
        return show(&hv);
    }
    let mut options = Options::new(Paths {
        config_dir: cli.config_dir,
        status_dir: cli.status_dir,
        run_dir: cli.run_dir,
        state_dir: cli.state_dir,
    });
    options.settings_file = cli.settings;
    options.config_flags = cli.config_flags;
    options.adapter_sources = Sources {
        adapter_list: cli.zedagent_dir.join("PhysicalIOAdapterList/global.json"),
        network_status: cli.nim_dir.join("DeviceNetworkStatus/global.json"),
        host: Host { sysfs: cli.sysfs_root, modprobe: cli.modprobe },
    };
    options.metrics_listen = cli.metrics_listen;
    options.host_config = cli.host_config;
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
