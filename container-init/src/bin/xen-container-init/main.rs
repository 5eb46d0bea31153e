//! `xen-container-init`, the `/init` of a container guest's initramfs (see the library's
//! documentation for the whole picture). As PID 1 it boots the guest, runs the container's
//! entrypoint and powers off when that ends; it never exits or panics (either would panic the
//! kernel): every error is printed on the console and leads to the power off.
//!
//! Other ways to start it: as `poweroff` or `reboot` (the names the kernel's Xen shutdown
//! handler runs, symlinks to `/init`) it asks PID 1 to stop the container, with SIGPWR and
//! SIGRTMIN+5; with `--test-root DIR`, as PID 1 of a new PID and mount namespace, it runs the
//! container in `DIR/rootfs` from `DIR/xen-container.json` without the guest's modules, share,
//! network and power off, and writes the status to `DIR/exit-status`; `--exec-entrypoint` is its
//! own helper for starting the entrypoint.

#![forbid(unsafe_code)]

mod console;
mod dhcp;
mod exec;
mod net;
mod setup;
mod signals;
mod supervise;
mod volumes;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use console::{raw, say};
use signals::{Action, Signals};
use xen_container_init::{
    DEFAULT_PATH, EXIT_KEY, RunSpec, Termination, env_value, find_executable, resolve_user, xenstore,
};

/// How PID 1 was started.
#[derive(Debug, Clone)]
enum Mode {
    /// The guest's init.
    Guest,
    /// `--test-root DIR`.
    Test(PathBuf),
}

/// What PID 1 keeps open across the chroot.
#[derive(Debug)]
struct Kept {
    /// The real root, to leave the chroot at the end.
    root: OwnedFd,
    /// Guest: /dev/xen/xenbus; test: the test directory (for `exit-status`).
    status_sink: Option<OwnedFd>,
    /// The volumes mounted in the root filesystem, to unmount at the end.
    volumes: Vec<PathBuf>,
}

fn main() {
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let name = args.first().map(|a| a.rsplit('/').next().unwrap_or(a).to_string()).unwrap_or_default();
    match (name.as_str(), args.get(1).map(String::as_str)) {
        ("poweroff" | "halt", _) => std::process::exit(signals::request(Action::PowerOff)),
        ("reboot", _) => std::process::exit(signals::request(Action::Reboot)),
        (_, Some(exec::FLAG)) => exec::run(args.get(2).map_or("", String::as_str)),
        (_, Some("--test-root")) if args.len() == 3 => pid1(Mode::Test(PathBuf::from(&args[2]))),
        (_, None) if rustix::process::getpid().is_init() => pid1(Mode::Guest),
        _ => {
            eprintln!(
                "usage: xen-container-init (as PID 1 of a Xen guest)\n       \
                 xen-container-init --test-root DIR (as PID 1 of a new PID and mount namespace)"
            );
            std::process::exit(2)
        }
    }
}

/// PID 1: runs everything, catches what fails (panics included), and ends the guest.
fn pid1(mode: Mode) -> ! {
    if !rustix::process::getpid().is_init() {
        say("not PID 1: run it in a new PID namespace (unshare --pid --fork --mount)");
        std::process::exit(2);
    }
    let signals = Signals::install();
    let mut kept = None;
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &signals {
        Ok(signals) => run(&mode, signals, &mut kept),
        Err(e) => Err(format!("signal handlers: {e}")),
    }));
    let action = match run {
        Ok(Ok(outcome)) => {
            let status = outcome.termination.status();
            raw(format!("XENCONTAINER-EXIT {status}"));
            if let Err(e) = record_status(&mode, kept.as_ref(), status) {
                say(format!("record exit status: {e}"));
            }
            outcome.action
        }
        Ok(Err(e)) => {
            say(format!("error: {e}"));
            Action::PowerOff
        }
        Err(_) => {
            say("error: panic");
            Action::PowerOff
        }
    };
    if let Ok(signals) = &signals {
        supervise::kill_everything(signals, Duration::from_secs(2));
    }
    rustix::fs::sync();
    if let Some(kept) = &kept {
        let _ = setup::unchroot(&kept.root);
    }
    unmount_all(&mode, kept.as_ref().map_or(&[][..], |k| k.volumes.as_slice()));
    rustix::fs::sync();
    end(&mode, action)
}

/// Boot, chroot, network, entrypoint, supervision.
fn run(mode: &Mode, signals: &Signals, kept: &mut Option<Kept>) -> Result<supervise::Outcome, String> {
    let share = match mode {
        Mode::Guest => {
            setup::mount_pseudo_filesystems(Path::new("/"), false)?;
            if let Err(e) = setup::open_console() {
                say(e);
            }
            say("loading modules");
            setup::load_modules();
            setup::mount_share()?;
            PathBuf::from(setup::SHARE_MOUNT)
        }
        Mode::Test(dir) => {
            setup::make_mounts_private()?;
            dir.clone()
        }
    };
    let spec = setup::read_spec(&share)?;
    let rootfs = share.join("rootfs");
    setup::mount_pseudo_filesystems(&rootfs, matches!(mode, Mode::Test(_)))?;
    let status_sink = match mode {
        Mode::Guest => match std::fs::File::options().read(true).write(true).open("/dev/xen/xenbus") {
            Ok(f) => Some(OwnedFd::from(f)),
            Err(e) => {
                say(format!("/dev/xen/xenbus: {e} (the exit status will only be printed)"));
                None
            }
        },
        Mode::Test(dir) => Some(setup::open_dir(dir)?),
    };
    let volumes = if matches!(mode, Mode::Guest) && !spec.volumes.is_empty() {
        setup::load_modules_from(setup::VOLUME_MODULES_LIST);
        volumes::mount(&rootfs, &spec.volumes)
    } else {
        Vec::new()
    };
    *kept = Some(Kept { root: setup::open_dir(Path::new("/"))?, status_sink, volumes });
    if matches!(mode, Mode::Guest) {
        // PID 1 shares its root with the kernel (CLONE_FS from init_task): chrooted, the
        // kernel's usermode helpers would look for /sbin/poweroff in the image, and the
        // domain's shutdown would never reach the entrypoint. Its own copy first.
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS) {
            say(format!("unshare(CLONE_FS): {e} (a shutdown request may not reach the entrypoint)"));
        }
    }
    setup::chroot(&rootfs)?;
    say(format!("running in {}", rootfs.display()));

    let mut dns = spec.dns.clone();
    if matches!(mode, Mode::Guest) {
        let leased = net::configure(&spec);
        if dns.is_empty() {
            dns = leased.iter().map(ToString::to_string).collect();
        }
        if !spec.hostname.is_empty()
            && let Err(e) = rustix::system::sethostname(spec.hostname.as_bytes())
        {
            say(format!("sethostname: {e}"));
        }
    }
    if !dns.is_empty() {
        setup::write_resolv_conf(&dns)?;
    }
    let kept = kept.as_ref().ok_or("no root kept")?;
    start_and_supervise(mode, &spec, signals, kept, &rootfs)
}

/// Resolves the user, the environment and the program, starts the entrypoint, supervises it.
fn start_and_supervise(
    mode: &Mode,
    spec: &RunSpec,
    signals: &Signals,
    kept: &Kept,
    rootfs: &Path,
) -> Result<supervise::Outcome, String> {
    let passwd = read_small("/etc/passwd");
    let group = read_small("/etc/group");
    let user = resolve_user(&spec.user, &passwd, &group)?;
    let mut env = spec.env.clone();
    if env_value(&env, "PATH").is_none() {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if env_value(&env, "HOME").is_none() {
        env.push(format!("HOME={}", user.home));
    }
    if env_value(&env, "HOSTNAME").is_none() && !spec.hostname.is_empty() {
        env.push(format!("HOSTNAME={}", spec.hostname));
    }
    let path = match find_executable(Path::new("/"), &spec.argv[0], env_value(&env, "PATH").unwrap_or(DEFAULT_PATH)) {
        Ok(p) => p,
        Err(e) => {
            say(e);
            return Ok(supervise::Outcome { termination: Termination::Exited(127), action: Action::PowerOff });
        }
    };
    if let Err(e) = std::fs::create_dir_all(&spec.cwd) {
        say(format!("create {}: {e}", spec.cwd));
    }
    let plan = exec::ExecPlan {
        root: rootfs.to_string_lossy().into_owned(),
        path,
        argv: spec.argv.clone(),
        cwd: spec.cwd.clone(),
        uid: user.uid,
        gid: user.gid,
        groups: user.groups.clone(),
        console: matches!(mode, Mode::Guest),
    };
    let mut command = plan.command(&env)?;
    // Spawned from the real root (see exec.rs), PID 1 back in the chroot at once.
    setup::unchroot(&kept.root)?;
    let child = command.spawn();
    setup::chroot(rootfs)?;
    let child = child.map_err(|e| format!("start the entrypoint: {e}"))?;
    let pid = rustix::process::Pid::from_child(&child);
    say(format!("started {:?} as {}:{} (pid {})", spec.argv[0], user.uid, user.gid, pid.as_raw_nonzero()));
    Ok(supervise::supervise(signals, pid, Duration::from_secs(u64::from(spec.stop_timeout_secs))))
}

/// Reads a small text file, empty if it is missing or unreadable.
fn read_small(path: &str) -> String {
    let mut text = String::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(4 << 20).read_to_string(&mut text);
    }
    text
}

/// Writes the status: to xenstore in the guest, to `exit-status` in test mode.
fn record_status(mode: &Mode, kept: Option<&Kept>, status: i32) -> Result<(), String> {
    let sink = kept.and_then(|k| k.status_sink.as_ref()).ok_or("nowhere to write it")?;
    match mode {
        Mode::Guest => xenbus_write(sink, EXIT_KEY, &status.to_string()),
        Mode::Test(_) => {
            let fd = rustix::fs::openat(
                sink,
                "exit-status",
                rustix::fs::OFlags::WRONLY
                    | rustix::fs::OFlags::CREATE
                    | rustix::fs::OFlags::TRUNC
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::from_raw_mode(0o644),
            )
            .map_err(|e| format!("exit-status: {e}"))?;
            std::io::Write::write_all(&mut std::fs::File::from(fd), format!("{status}\n").as_bytes())
                .map_err(|e| format!("exit-status: {e}"))
        }
    }
}

/// One XS_WRITE on the xenbus device, its answer awaited for at most 5 seconds.
fn xenbus_write(dev: &OwnedFd, path: &str, value: &str) -> Result<(), String> {
    const REQ_ID: u32 = 1;
    let msg = xenstore::xs_write_message(REQ_ID, path, value)?;
    rustix::io::write(dev, &msg).map_err(|e| format!("xenbus write: {e}"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        if answer.len() >= xenstore::XS_HEADER_LEN {
            let mut header = [0u8; xenstore::XS_HEADER_LEN];
            header.copy_from_slice(&answer[..xenstore::XS_HEADER_LEN]);
            let header = xenstore::XsHeader::parse(&header);
            let end = xenstore::XS_HEADER_LEN + header.len as usize;
            if header.len as usize > xenstore::XS_PAYLOAD_MAX {
                return Err("xenbus: oversized answer".to_string());
            }
            if answer.len() >= end {
                return xenstore::check_write_reply(REQ_ID, &header, &answer[xenstore::XS_HEADER_LEN..end]);
            }
        }
        let left = deadline
            .checked_duration_since(std::time::Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or("xenbus: no answer")?;
        let ts = rustix::event::Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
        let mut fds = [rustix::event::PollFd::new(dev, rustix::event::PollFlags::IN)];
        rustix::event::poll(&mut fds, Some(&ts)).map_err(|e| format!("xenbus poll: {e}"))?;
        if fds[0].revents().is_empty() {
            continue;
        }
        let n = rustix::io::read(dev, &mut buf).map_err(|e| format!("xenbus read: {e}"))?;
        if n == 0 {
            return Err("xenbus: closed".to_string());
        }
        answer.extend_from_slice(&buf[..n]);
    }
}

/// Unmounts the container's volumes, its filesystems and the share (lazily when busy), best
/// effort.
fn unmount_all(mode: &Mode, volumes: &[PathBuf]) {
    let share = match mode {
        Mode::Guest => PathBuf::from(setup::SHARE_MOUNT),
        Mode::Test(dir) => dir.clone(),
    };
    let mut points: Vec<PathBuf> = volumes.iter().rev().cloned().collect();
    points.extend(setup::pseudo_mount_points(&share.join("rootfs")));
    if matches!(mode, Mode::Guest) {
        points.push(share);
    }
    for p in points {
        if rustix::mount::unmount(&p, rustix::mount::UnmountFlags::empty()).is_err() {
            let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// Powers off or reboots the guest; in test mode, exits (which ends the PID namespace).
fn end(mode: &Mode, action: Action) -> ! {
    if let Mode::Test(_) = mode {
        std::process::exit(0);
    }
    let cmd = match action {
        Action::PowerOff => rustix::system::RebootCommand::PowerOff,
        Action::Reboot => rustix::system::RebootCommand::Restart,
    };
    say(match action {
        Action::PowerOff => "powering off",
        Action::Reboot => "rebooting",
    });
    if let Err(e) = rustix::system::reboot(cmd) {
        say(format!("reboot: {e}"));
    }
    // PID 1 must not exit: wait for the hypervisor to tear the domain down.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
