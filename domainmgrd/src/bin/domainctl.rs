//! domainctl: control domainmgrd from the command line (people get tables, scripts `--json`).
//!
//! It talks to the daemon over its root-only unix socket. `create --dry-run` needs neither the
//! daemon nor Xen: it prints the libxl domain config a file would give, as `xl -N create` does.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use domainmgrd::configfile::DRY_RUN_ARG;
use domainmgrd::control::{self, CallError, Request, Response, exit};
use domainmgrd::domain::Report;
use domainmgrd::settings::MAX_SECONDS;
use domainmgrd::supervisor::{ListRow, MetricRow};

/// Control domainmgrd, the Xen domain manager: list, start, stop, save and restore domains, boot
/// and shut down the host's domains.
///
/// Domains are named by their name, UUID or domid. Exit statuses are those of LSB init scripts
/// (see the table below).
#[derive(Debug, Parser)]
#[command(name = "domainctl", version, after_help = AFTER_HELP)]
struct Cli {
    /// domainmgrd's control socket.
    #[arg(long, global = true, default_value = "/run/domainmgrd/domainmgrd.sock", value_name = "PATH")]
    socket: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

const AFTER_HELP: &str = "Examples:
  domainctl list                       every domain, with domainmgrd's state for its own
  domainctl stop web --timeout 30      shut web down (destroy after 30 s); it stays stopped
  domainctl start web                  start it again (and forget the stop)
  domainctl create /etc/xen/test.cfg   run a one-off domain from an xl.cfg (or EVE JSON) file
  domainctl create --dry-run web.cfg   print the libxl config xl -N create would, without Xen
  domainctl run --bridge xenbr0 img.tar -- sh -c 'echo hi'
                                       run a container image as a Xen guest
  domainctl save web /srv/web.save     save web and stop it; domainctl restore /srv/web.save
  domainctl migrate --live web host2   move web to host2 (ssh; its domainmgrd takes it over)
  domainctl host-stop                  what xendomains stop does, per /etc/default/domainmgr

Exit status (the LSB's init-script codes, as xendomains used):
  status     0 running; 3 not running (without a NAME: none runs); 4 unknown (no such
             domain, or domainmgrd is not running)
  the rest   0 done (also: starting what runs, stopping what is stopped); 1 failed (for
             host-start and host-stop: some domain did, the report says which); 2 bad usage;
             4 not root; 5 no such managed domain; 6 the host settings file is invalid
             (host-start); 7 domainmgrd is not running";

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Every domain on the host, like xl list, plus domainmgrd's state for the managed ones.
    List,
    /// A managed domain's status (exit 3 when it does not run), or all of them (exit 3 when
    /// none runs).
    Status {
        /// Name, UUID or domid.
        domain: Option<String>,
    },
    /// Start a managed domain (an operator's earlier stop is forgotten).
    Start {
        /// Name, UUID or domid.
        domain: String,
    },
    /// Shut a managed domain down and keep it stopped, across reboots, until `start`.
    Stop {
        /// Name, UUID or domid.
        domain: String,
        /// Destroy it at once instead of asking the guest.
        #[arg(long)]
        force: bool,
        /// Seconds the guest gets before it is destroyed (default: timer.domain.shutdown).
        #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS))]
        timeout: Option<u64>,
    },
    /// Destroy a managed domain at once (it stays stopped until `start`).
    Destroy {
        /// Name, UUID or domid.
        domain: String,
    },
    /// Shut a managed domain down and start it again.
    Restart {
        /// Name, UUID or domid.
        domain: String,
        /// Seconds the guest gets before it is destroyed.
        #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS))]
        timeout: Option<u64>,
    },
    /// Run a one-off (transient) domain from an xl.cfg or EVE DomainConfig JSON file.
    Create {
        /// Print the libxl domain config JSON it would use (as `xl -N create`), touching
        /// nothing; works without the daemon and without Xen.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: the xl.conf whose settings go into the domain, as xl's and the
        /// daemon's (which reads its own `--xl-conf`) do.
        #[arg(long, default_value = xenctl::XL_CONF_PATH, value_name = "FILE")]
        xl_conf: PathBuf,
        /// The file.
        file: PathBuf,
    },
    /// Run a container image (an OCI layout directory or tar, or a `docker save` archive) as a
    /// one-off Xen guest: its entrypoint runs in a small VM that boots the container kernel
    /// and mounts the unpacked image over 9pfs; the domain powers off when it exits, and its
    /// exit status is in `status`.
    Run {
        /// The domain's name (default: the image's file name and a short id).
        #[arg(long)]
        name: Option<String>,
        /// MiB of memory.
        #[arg(long, default_value_t = 128)]
        memory: u64,
        /// vCPUs.
        #[arg(long, default_value_t = 1)]
        vcpus: u32,
        /// K=V, added to the image's environment (repeatable).
        #[arg(long, value_name = "K=V")]
        env: Vec<String>,
        /// A network interface on this bridge, configured by DHCP in the guest.
        #[arg(long)]
        bridge: Option<String>,
        /// Replaces the image's entrypoint (one word; its arguments go after `--`).
        #[arg(long)]
        entrypoint: Option<String>,
        /// Seconds between SIGTERM and SIGKILL when the container is stopped.
        #[arg(long, value_name = "S")]
        stop_timeout: Option<u32>,
        /// The image.
        image: PathBuf,
        /// Replaces the image's cmd.
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Save a managed domain (it stops) to FILE, or to the SAVE directory.
    Save {
        /// Name, UUID or domid.
        domain: String,
        /// The image file.
        file: Option<PathBuf>,
    },
    /// Migrate a managed domain to another host, as `xl migrate` does: over ssh to HOST,
    /// whose `domainctl migrate-receive` hands the stream to its domainmgrd. The domain runs
    /// here until it runs there; any failure before that leaves it running here.
    Migrate {
        /// Name, UUID or domid.
        domain: String,
        /// The target host (a name or address; IPv6 with its %zone). With `-s ''`: the whole
        /// command that reaches the receiver, e.g. 'ssh host xl migrate-receive'.
        host: String,
        /// Copy its memory while it runs, then stop it for the last pages (shorter downtime);
        /// without it the guest is stopped for the whole copy (xl 4.17 always goes live).
        #[arg(long)]
        live: bool,
        /// Give up after S seconds (before the domain has moved; it then runs here as before).
        #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS))]
        timeout: Option<u64>,
        /// The ssh command instead of `ssh -o BatchMode=yes` (xl's -s); '' makes HOST the
        /// whole command.
        #[arg(short = 's', long = "ssh", value_name = "CMD")]
        ssh: Option<String>,
    },
    /// Receive a migrating domain on stdin and stdout (what `domainctl migrate` and
    /// `xl migrate -s '' NAME 'ssh HOST domainctl migrate-receive'` run here over ssh): the
    /// local domainmgrd receives and manages it.
    MigrateReceive {
        /// How the domain was managed on the source (`eve`, `auto`, `transient`); domainmgrd
        /// passes it. An EVE app is taken only if its config is here.
        #[arg(long, value_name = "KIND", value_parser = ["eve", "auto", "transient"])]
        source: Option<String>,
        /// (xl's: no monitoring process; domainmgrd monitors it anyway.)
        #[arg(short = 'e', hide = true)]
        no_monitor: bool,
        /// (xl's: stay in the foreground; ignored.)
        #[arg(short = 'F', hide = true)]
        foreground: bool,
        /// (xl's: debug output; ignored.)
        #[arg(short = 'd', hide = true)]
        debug: bool,
        /// (xl's: leave the domain paused; not offered.)
        #[arg(short = 'p', hide = true)]
        paused: bool,
        /// (xl's: Remus, checkpointed streams; not offered.)
        #[arg(short = 'r', hide = true)]
        remus: bool,
        /// (xl's: COLO; not offered.)
        #[arg(long, hide = true)]
        colo: bool,
    },
    /// Restore a domain from an image saved by domainctl or host-stop.
    Restore {
        /// The image file.
        file: PathBuf,
    },
    /// Print a domain's console tty, or attach to it (Ctrl-] detaches).
    Console {
        /// Name, UUID or domid.
        domain: String,
        /// Attach this terminal to the console.
        #[arg(long)]
        attach: bool,
    },
    /// Print a container's console log (also after it exited), or an EVE app's.
    Logs {
        /// Name or UUID.
        domain: String,
        /// Keep printing what the guest writes until its domain is gone.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines (then what follows, with --follow).
        #[arg(short = 'n', long, value_name = "N")]
        tail: Option<usize>,
    },
    /// List the domains' own copies of shared images (`<persist>/img`) and their sizes.
    Copies,
    /// PCI passthrough: list, or move a device to or from pciback by hand.
    Pci {
        #[command(subcommand)]
        action: PciCmd,
    },
    /// The latest CPU and memory sample.
    Metrics,
    /// Host boot: restore saved domains, start the autostart ones (xendomains start).
    HostStart,
    /// Host shutdown: save or shut down domains under a watchdog (xendomains stop).
    HostStop,
}

#[derive(Debug, Subcommand)]
enum PciCmd {
    /// The assignable devices and the published AssignableAdapters.
    List,
    /// Bind a device (and the rest of its assignment group) to pciback.
    Assign {
        /// `0000:03:00.0`.
        bdf: String,
        /// Even if the adapter policy keeps it in dom0 (a dom0 port, USB under debug.enable.usb).
        #[arg(long)]
        force: bool,
    },
    /// Give a device back to its dom0 driver.
    Release {
        /// `0000:03:00.0`.
        bdf: String,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let code = run(&cli);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run(cli: &Cli) -> i32 {
    let request = match &cli.command {
        Cmd::Create { dry_run: true, file, xl_conf } => return dry_run(file, xl_conf),
        Cmd::Console { domain, attach: true } => return attach(cli, domain),
        Cmd::Logs { domain, follow, tail } => return logs(cli, domain, *follow, *tail),
        Cmd::MigrateReceive { source, paused, remus, colo, .. } => {
            return migrate_receive(cli, source.clone(), *paused || *remus || *colo);
        }
        other => request_of(other),
    };
    let response = match control::call(&cli.socket, &request) {
        Ok(r) => r,
        Err(e) => return call_failed(&cli.command, &e),
    };
    if cli.json {
        let out = match (&response.data, &response.error) {
            (serde_json::Value::Null, Some(e)) => serde_json::json!({"error": e, "exit": response.exit}),
            (data, _) => data.clone(),
        };
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        show(&cli.command, &response);
    }
    if let Some(e) = &response.error {
        eprintln!("domainctl: {e}");
    }
    response.exit
}

/// Says why there is no answer; the exit status by the LSB's table.
fn call_failed(cmd: &Cmd, e: &CallError) -> i32 {
    eprintln!("domainctl: {e}");
    match e {
        // The socket's mode refused us before the daemon could: not root, as it would say.
        CallError::NoPrivilege { .. } => exit::NO_PRIVILEGE,
        // A status that cannot be known is 4; any other action: 7, not running.
        _ if matches!(cmd, Cmd::Status { .. }) => exit::STATUS_UNKNOWN,
        _ => exit::DAEMON_NOT_RUNNING,
    }
}

fn request_of(cmd: &Cmd) -> Request {
    match cmd {
        Cmd::List => Request::List,
        Cmd::Status { domain } => Request::Status { domain: domain.clone() },
        Cmd::Start { domain } => Request::Start { domain: domain.clone() },
        Cmd::Stop { domain, force, timeout } => {
            Request::Stop { domain: domain.clone(), force: *force, timeout_secs: *timeout }
        }
        Cmd::Destroy { domain } => Request::Destroy { domain: domain.clone() },
        Cmd::Restart { domain, timeout } => Request::Restart { domain: domain.clone(), timeout_secs: *timeout },
        Cmd::Create { file, .. } => Request::Create { file: absolute(file) },
        Cmd::Run { name, memory, vcpus, env, bridge, entrypoint, stop_timeout, image, cmd } => Request::Run {
            container: domainmgrd::container::RunRequest {
                image: absolute(image),
                name: name.clone(),
                memory_mib: Some(*memory),
                vcpus: Some(*vcpus),
                env: env.clone(),
                bridge: bridge.clone(),
                entrypoint: entrypoint.clone().map(|e| vec![e]),
                cmd: (!cmd.is_empty()).then(|| cmd.clone()),
                stop_timeout_secs: *stop_timeout,
            },
        },
        Cmd::Save { domain, file } => Request::Save { domain: domain.clone(), file: file.as_deref().map(absolute) },
        Cmd::Restore { file } => Request::Restore { file: absolute(file) },
        Cmd::Migrate { domain, host, live, timeout, ssh } => Request::Migrate {
            domain: domain.clone(),
            host: host.clone(),
            ssh: ssh.clone(),
            live: *live,
            timeout_secs: *timeout,
        },
        // Handled before any request is made.
        Cmd::MigrateReceive { .. } => Request::List,
        Cmd::Console { domain, .. } => Request::Console { domain: domain.clone() },
        Cmd::Logs { domain, .. } => Request::Logs { domain: domain.clone() },
        Cmd::Copies => Request::DiskCopies,
        Cmd::Pci { action: PciCmd::List } => Request::PciList,
        Cmd::Pci { action: PciCmd::Assign { bdf, force } } => Request::PciAssign { bdf: bdf.clone(), force: *force },
        Cmd::Pci { action: PciCmd::Release { bdf } } => Request::PciRelease { bdf: bdf.clone() },
        Cmd::Metrics => Request::Metrics,
        Cmd::HostStart => Request::HostStart,
        Cmd::HostStop => Request::HostStop,
    }
}

/// The daemon reads the file, possibly from another working directory.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn show(cmd: &Cmd, r: &Response) {
    match cmd {
        Cmd::List => {
            let rows: Vec<ListRow> = serde_json::from_value(r.data.clone()).unwrap_or_default();
            println!(
                "{:<32} {:>5} {:>6} {:>5} {:<6} {:>9}  {:<9} Source",
                "Name", "ID", "Mem", "VCPUs", "State", "Time(s)", "Managed"
            );
            let dash = || "-".to_string();
            for row in rows {
                println!(
                    "{:<32} {:>5} {:>6} {:>5} {:<6} {:>9}  {:<9} {}",
                    row.name,
                    row.domid.map_or_else(dash, |d| d.to_string()),
                    row.memory_mib.map_or_else(dash, |m| m.to_string()),
                    row.vcpus.map_or_else(dash, |v| v.to_string()),
                    if row.xl_state.is_empty() { "-".into() } else { row.xl_state },
                    row.cpu_seconds.map_or_else(dash, |t| format!("{t:.1}")),
                    row.managed.unwrap_or_else(dash),
                    row.source.unwrap_or_else(dash),
                );
            }
        }
        Cmd::Status { .. } => {
            let all: Vec<serde_json::Value> = match &r.data {
                serde_json::Value::Array(a) => a.clone(),
                serde_json::Value::Null => Vec::new(),
                one => vec![one.clone()],
            };
            for s in all {
                let field = |k: &str| s[k].as_str().map(str::to_string).unwrap_or_else(|| s[k].to_string());
                println!(
                    "{}: {} (domain {}, {})",
                    field("DisplayName"),
                    field("StateName"),
                    field("DomainId"),
                    field("DomainName")
                );
                println!(
                    "  uuid {}  booted {}  tries {}",
                    s["UUIDandVersion"]["UUID"].as_str().unwrap_or(""),
                    field("BootTime"),
                    field("TriedCount")
                );
                if !field("Error").is_empty() {
                    println!("  error: {} ({}; {})", field("Error"), field("ErrorTime"), field("ErrorRetryCondition"));
                }
                if let Some(code) = s["ExitStatus"].as_i64() {
                    println!("  exit status {code}");
                }
            }
        }
        Cmd::HostStart | Cmd::HostStop => {
            let reports: Vec<Report> = serde_json::from_value(r.data.clone()).unwrap_or_default();
            if reports.is_empty() {
                println!("nothing to do");
            }
            for rep in reports {
                println!(
                    "{:<32} {:<6} {:>6.1}s  {}",
                    rep.name,
                    if rep.ok { "ok" } else { "FAILED" },
                    rep.seconds,
                    rep.outcome
                );
            }
        }
        Cmd::Console { .. } => println!("{}", r.data["tty"].as_str().unwrap_or("")),
        Cmd::Copies => {
            let rows: Vec<domainmgrd::supervisor::CopyRow> = serde_json::from_value(r.data.clone()).unwrap_or_default();
            println!("{:<32} {:>9} {:>9} {:<8} Copy", "Domain", "Size(MiB)", "Disk(MiB)", "Method");
            for c in rows {
                let domain = c.domain.or_else(|| c.uuid.map(|u| u.to_string())).unwrap_or_else(|| "-".into());
                println!(
                    "{:<32} {:>9} {:>9} {:<8} {}{}",
                    domain,
                    c.size.div_ceil(1 << 20),
                    c.allocated.div_ceil(1 << 20),
                    c.method.as_deref().unwrap_or("-"),
                    c.path.display(),
                    c.backing.map(|b| format!(" (on {})", b.display())).unwrap_or_default()
                );
            }
        }
        Cmd::Metrics => {
            println!(
                "{:<32} {:>5} {:>10} {:>8} {:>8} {:>5}  Running",
                "Name", "ID", "CPU(s)", "Mem", "MaxMem", "VCPUs"
            );
            let rows: Vec<MetricRow> = serde_json::from_value(r.data["domains"].clone()).unwrap_or_default();
            // A halted domain has no domid and no CPU time: "-", not a made-up 0.
            let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
            for d in rows {
                println!(
                    "{:<32} {:>5} {:>10} {:>8} {:>8} {:>5}  {}",
                    d.name,
                    or_dash(d.domid.map(|v| v.to_string())),
                    or_dash(d.cpu_seconds.map(|t| format!("{t:.1}"))),
                    or_dash(d.memory_mib.map(|v| v.to_string())),
                    or_dash(d.max_memory_mib.map(|v| v.to_string())),
                    or_dash(d.vcpus.map(|v| v.to_string())),
                    if d.activated { "yes" } else { "no" }
                );
            }
            let h = &r.data["host"];
            if !h.is_null() {
                println!(
                    "host: {} CPUs, {} MiB, {} MiB free, dom0 {} MiB",
                    h["Ncpus"], h["TotalMemoryMB"], h["FreeMemoryMB"], h["UsedEveMB"]
                );
            }
        }
        Cmd::Pci { action: PciCmd::List } => {
            println!(
                "assignable (pciback): {}",
                r.data["assignable"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default()
            );
            for b in r.data["adapters"]["IoBundleList"].as_array().cloned().unwrap_or_default() {
                let used = b["UsedByUUID"].as_str().filter(|u| !u.starts_with("00000000")).unwrap_or("-");
                let flag = |k: &str| b[k] == true;
                println!(
                    "  {:<12} {:<14} pciback={:<5} port={:<5} keep-in-dom0={:<5} used-by={used} {}",
                    b["Phylabel"].as_str().unwrap_or(""),
                    b["PciLong"].as_str().unwrap_or("-"),
                    flag("IsPCIBack"),
                    flag("IsPort"),
                    flag("KeepInHost"),
                    b["Error"]["Errors"][0]["ErrStr"].as_str().unwrap_or("")
                );
            }
        }
        _ if r.ok => {
            if let Ok(rep) = serde_json::from_value::<Report>(r.data.clone()) {
                println!("{}: {} ({:.1} s)", rep.name, rep.outcome, rep.seconds);
            } else if !r.data.is_null() {
                println!("{}", r.data);
            }
        }
        _ => {}
    }
}

/// `migrate-receive`: hands stdin and stdout (the stream from and to the sender) to the local
/// domainmgrd, and waits until the domain runs here or is refused. Nothing goes to stdout: it
/// is the stream.
fn migrate_receive(cli: &Cli, source: Option<String>, unsupported: bool) -> i32 {
    use std::os::fd::AsFd;
    if unsupported {
        eprintln!("domainctl: migrate-receive: -p (paused), -r (Remus) and --colo are not offered");
        return exit::USAGE;
    }
    let socket = cli.socket.with_file_name(domainmgrd::migration::SOCKET_NAME);
    // ssh says who connected: "ADDRESS PORT LOCALPORT".
    let peer = std::env::var("SSH_CLIENT").ok().and_then(|s| s.split_whitespace().next().map(str::to_string));
    let request = domainmgrd::migration::ReceiveRequest { source, peer };
    let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
    match domainmgrd::migration::hand_over(&socket, &request, stdin.as_fd(), stdout.as_fd()) {
        Ok(a) if a.ok => {
            eprintln!(
                "domainctl: migrate-receive: {} runs here as domain {}, managed ({})",
                a.name.as_deref().unwrap_or("the domain"),
                a.domid.unwrap_or(0),
                a.managed.as_deref().unwrap_or("?")
            );
            exit::OK
        }
        Ok(a) => {
            eprintln!("domainctl: migrate-receive: {}", a.error.unwrap_or_else(|| "refused".into()));
            exit::FAILED
        }
        Err(e) => {
            eprintln!("domainctl: migrate-receive: {e}");
            exit::FAILED
        }
    }
}

/// `create --dry-run`: the libxl JSON for a file, as `xl -N create` prints it. The xl.cfg
/// helper does it (`domainmgrd-xlparse --dry-run`, see [`dry_run_json`](domainmgrd::supervisor::dry_run_json)):
/// it links libxl, and this binary then needs no Xen library, so it starts fast (every
/// `domainctl` command, in a dom0, under load).
fn dry_run(file: &Path, xl_conf: &Path) -> i32 {
    let helper = domainmgrd::configfile::default_helper();
    let status = std::process::Command::new(&helper).arg(DRY_RUN_ARG).arg(file).arg(xl_conf).status();
    match status {
        Ok(s) => s.code().unwrap_or(exit::FAILED),
        Err(e) => {
            eprintln!("domainctl: cannot run {}: {e}", helper.display());
            exit::FAILED
        }
    }
}

/// `logs NAME`: the console log the daemon collects, the older file first; with `follow`,
/// what comes next too (across a cut-over to the older file) until the domain is gone.
fn logs(cli: &Cli, domain: &str, follow: bool, tail: Option<usize>) -> i32 {
    let ask = || match control::call(&cli.socket, &Request::Logs { domain: domain.to_string() }) {
        Ok(r) if r.ok => Ok(r.data),
        Ok(r) => {
            eprintln!("domainctl: {}", r.error.unwrap_or_default());
            Err(r.exit)
        }
        Err(e) => Err(call_failed(&cli.command, &e)),
    };
    let data = match ask() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let Some(log) = data["log"].as_str().map(PathBuf::from) else {
        eprintln!("domainctl: the daemon named no log");
        return exit::FAILED;
    };
    let older = log.with_extension("log.1");
    let mut text = std::fs::read(&older).unwrap_or_default();
    let current = std::fs::read(&log).unwrap_or_default();
    let mut pos = current.len() as u64;
    text.extend(current);
    if let Some(n) = tail {
        text = last_lines(&text, n).to_vec();
    }
    let mut out = std::io::stdout();
    if out.write_all(&text).and_then(|()| out.flush()).is_err() {
        return exit::OK; // the reader went (a pipe into head)
    }
    if !follow {
        return exit::OK;
    }
    let mut running = data["running"].as_bool().unwrap_or(false);
    let mut turns = 0u32;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(250));
        let len = std::fs::metadata(&log).map_or(0, |m| m.len());
        let mut new = Vec::new();
        if len < pos {
            // Cut over: the rest of the old file, then the new one from its start.
            new.extend(read_from(&older, pos));
            pos = 0;
        }
        let more = read_from(&log, pos);
        pos += more.len() as u64;
        new.extend(more);
        if out.write_all(&new).and_then(|()| out.flush()).is_err() {
            return exit::OK;
        }
        if !running {
            break;
        }
        turns += 1;
        if turns.is_multiple_of(4) {
            running = match ask() {
                Ok(d) => d["running"].as_bool().unwrap_or(false),
                Err(code) => return code,
            };
        }
    }
    exit::OK
}

/// The last `n` lines of `text` (a last line without its newline counts).
fn last_lines(text: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    // The final newline ends the last line; it does not start another.
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let start = body.iter().enumerate().rev().filter(|(_, b)| **b == b'\n').nth(n - 1).map_or(0, |(i, _)| i + 1);
    &text[start..]
}

/// What `path` holds from byte `pos` on.
fn read_from(path: &Path, pos: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        use std::io::Seek;
        if f.seek(std::io::SeekFrom::Start(pos)).is_ok() {
            let _ = f.read_to_end(&mut bytes);
        }
    }
    bytes
}

/// `console --attach`: relays this terminal and the console's tty until Ctrl-].
fn attach(cli: &Cli, domain: &str) -> i32 {
    let r = match control::call(&cli.socket, &Request::Console { domain: domain.to_string() }) {
        Ok(r) if r.ok => r,
        Ok(r) => {
            eprintln!("domainctl: {}", r.error.unwrap_or_default());
            return r.exit;
        }
        Err(e) => return call_failed(&cli.command, &e),
    };
    // An EVE app's console is its daemon-side hub's, shared with its console log; any other
    // domain's is its tty, as `xl console` opens it.
    if let Some(socket) = r.data["socket"].as_str().map(PathBuf::from) {
        return match std::os::unix::net::UnixStream::connect(&socket) {
            Ok(conn) => match conn.try_clone() {
                Ok(reader) => relay(domain, &socket, reader, conn),
                Err(e) => failed(&socket, &e),
            },
            Err(e) => failed(&socket, &e),
        };
    }
    let Some(tty) = r.data["tty"].as_str().map(PathBuf::from) else {
        eprintln!("domainctl: no console tty");
        return exit::FAILED;
    };
    match std::fs::OpenOptions::new().read(true).write(true).open(&tty) {
        Ok(f) => match f.try_clone() {
            Ok(reader) => relay(domain, &tty, reader, f),
            Err(e) => failed(&tty, &e),
        },
        Err(e) => failed(&tty, &e),
    }
}

fn failed(path: &Path, e: &std::io::Error) -> i32 {
    eprintln!("domainctl: {}: {e}", path.display());
    exit::FAILED
}

/// Relays this terminal (raw) and a console until Ctrl-] or the console's end.
fn relay<R: Read + Send + 'static, W: Write>(domain: &str, path: &Path, mut from_console: R, mut to_console: W) -> i32 {
    eprintln!("attached to {} ({}); Ctrl-] detaches", domain, path.display());
    let stdin = std::io::stdin();
    let saved = rustix::termios::tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        raw.make_raw();
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw);
    }
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut out = std::io::stdout();
        while let Ok(n) = from_console.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    });
    let mut buf = [0u8; 1024];
    let mut input = stdin.lock();
    while let Ok(n) = input.read(&mut buf) {
        if n == 0 {
            break;
        }
        if let Some(pos) = buf[..n].iter().position(|&b| b == 0x1d) {
            let _ = to_console.write_all(&buf[..pos]);
            break;
        }
        if to_console.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    if let Some(t) = &saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, t);
    }
    eprintln!("\ndetached");
    0
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn tail_keeps_the_last_lines_whole() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"a\nb\n", 0), b"");
        assert_eq!(last_lines(b"", 3), b"");
    }
}
