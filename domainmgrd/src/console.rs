//! Each EVE app's console, collected as EVE collects it (its `xen-start` runs `xl console` for
//! the app's whole life, into EVE's logs). A hub per running app is the one reader of the
//! console's pty: what the guest prints goes to the app's console log
//! (`<run-dir>/console/<uuid>.log`, kept under [`LOG_LIMIT`] with one older file, `.log.1`),
//! line by line to the daemon's log (target `console`, which EVE's log collector takes from the
//! agent's output) unless the app's config says `DisableLogs`, and to every operator attached
//! through the hub's socket (`<run-dir>/console/<uuid>.sock`, root only, as many at once as
//! like: `domainctl console --attach` connects there), whose keystrokes go to the guest.
//!
//! The hub lives in its own thread and never blocks on anyone: a client that does not read
//! is dropped, a log that cannot be written is given up (said once). It ends when the
//! console does (the domain went), or when dropped. The guest never waits for it: xenconsoled
//! buffers its output whether anyone reads or not.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use rustix::event::{PollFd, PollFlags, Timespec, poll};

/// A console log is cut over to `.log.1` when it reaches this size.
pub const LOG_LIMIT: u64 = 1 << 20;

/// A line longer than this goes to the daemon's log in pieces.
const LINE_LIMIT: usize = 4096;

/// The most operators attached to one console at once.
const MAX_CLIENTS: usize = 8;

/// A running console hub; dropping it stops it.
#[derive(Debug)]
pub struct Hub {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    socket: PathBuf,
}

/// Where a hub reads and writes.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The app, for the daemon's log lines.
    pub name: String,
    /// The console's pty (xenstore's `console/tty`).
    pub tty: PathBuf,
    /// The app's console log.
    pub log: PathBuf,
    /// The socket operators attach through.
    pub socket: PathBuf,
    /// Whether lines also go to the daemon's log (not when the app says `DisableLogs`).
    pub to_daemon_log: bool,
}

impl Hub {
    /// Opens the console and the socket, and starts the hub's thread.
    pub fn start(config: HubConfig) -> std::io::Result<Hub> {
        let pty = OpenOptions::new().read(true).write(true).custom_flags(libc_flags()).open(&config.tty)?;
        // Raw, as `xl console` makes it: bytes pass as the guest sends them.
        if let Ok(mut t) = rustix::termios::tcgetattr(&pty) {
            t.make_raw();
            let _ = rustix::termios::tcsetattr(&pty, rustix::termios::OptionalActions::Now, &t);
        }
        if let Some(dir) = config.socket.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(&config.socket);
        let listener = UnixListener::bind(&config.socket)?;
        std::fs::set_permissions(&config.socket, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let socket = config.socket.clone();
        let thread = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || Pump::new(config, pty, listener).run(&flag))?;
        Ok(Hub { stop, thread: Some(thread), socket })
    }

    /// Whether its thread still runs (false once the console ended).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// O_NOCTTY | O_NONBLOCK: the daemon never gets a controlling terminal, and never blocks on
/// the pty.
fn libc_flags() -> i32 {
    (rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::NONBLOCK).bits() as i32
}

/// The hub's thread state.
struct Pump {
    config: HubConfig,
    pty: File,
    listener: UnixListener,
    clients: Vec<UnixStream>,
    log: Option<File>,
    log_size: u64,
    line: Vec<u8>,
    /// Keystrokes for the guest not yet taken by the pty.
    to_guest: VecDeque<u8>,
}

impl Pump {
    fn new(config: HubConfig, pty: File, listener: UnixListener) -> Pump {
        let mut pump = Pump {
            config,
            pty,
            listener,
            clients: Vec::new(),
            log: None,
            log_size: 0,
            line: Vec::new(),
            to_guest: VecDeque::new(),
        };
        pump.open_log();
        pump
    }

    fn open_log(&mut self) {
        if let Some(dir) = self.config.log.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match OpenOptions::new().create(true).append(true).mode(0o600).open(&self.config.log) {
            Ok(f) => {
                self.log_size = f.metadata().map(|m| m.len()).unwrap_or(0);
                self.log = Some(f);
            }
            Err(e) => {
                log::error!("{}: cannot write its console log {}: {e}", self.config.name, self.config.log.display());
                self.log = None;
            }
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        let tick = Timespec { tv_sec: 0, tv_nsec: 250_000_000 };
        while !stop.load(Ordering::Relaxed) {
            if !self.turn(tick) {
                return;
            }
        }
        // Stopped (the domain went, or the daemon stops): what the guest wrote last and the
        // pty still holds goes to the log first. A container's last lines are its exit. At
        // most 64 KiB: a guest writing without pause must not hold the stop up.
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            match self.pty.read(&mut buf) {
                Ok(n) if n > 0 => self.guest_wrote(&buf[..n]),
                _ => break,
            }
        }
    }

    /// One wait for the pty, the socket and the clients, and what they have; false when the
    /// hub is done.
    fn turn(&mut self, tick: Timespec) -> bool {
        let (pty_ready, listener_ready, ready_clients) = {
            let mut fds = Vec::with_capacity(2 + self.clients.len());
            let mut pty_events = PollFlags::IN;
            if !self.to_guest.is_empty() {
                pty_events |= PollFlags::OUT;
            }
            fds.push(PollFd::new(&self.pty, pty_events));
            fds.push(PollFd::new(&self.listener, PollFlags::IN));
            for c in &self.clients {
                fds.push(PollFd::from_borrowed_fd(c.as_fd(), PollFlags::IN));
            }
            if let Err(e) = poll(&mut fds, Some(&tick)) {
                if e == rustix::io::Errno::INTR {
                    return true;
                }
                log::error!("{}: console: poll: {e}", self.config.name);
                return false;
            }
            let ready: Vec<PollFlags> = fds.iter().map(PollFd::revents).collect();
            (ready[0], ready[1], ready[2..].to_vec())
        };
        if !pty_ready.is_empty() && !self.pump_pty(pty_ready) {
            return false; // the console ended: the domain went
        }
        if !listener_ready.is_empty() {
            self.accept();
        }
        let mut gone = Vec::new();
        for (i, r) in ready_clients.iter().enumerate() {
            if !r.is_empty() && !self.client_typed(i) {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            self.clients.remove(i);
        }
        true
    }

    /// Moves bytes between the pty and the rest; false when the console is gone.
    fn pump_pty(&mut self, ready: PollFlags) -> bool {
        if ready.contains(PollFlags::OUT) {
            let (a, _) = self.to_guest.as_slices();
            match self.pty.write(a) {
                Ok(n) => drop(self.to_guest.drain(..n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
        }
        if ready.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
            let mut buf = [0u8; 4096];
            match self.pty.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => self.guest_wrote(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false, // EIO: xenconsoled closed it
            }
        }
        true
    }

    fn guest_wrote(&mut self, bytes: &[u8]) {
        self.write_log(bytes);
        if self.config.to_daemon_log {
            for &b in bytes {
                if b == b'\n' || self.line.len() >= LINE_LIMIT {
                    let text = String::from_utf8_lossy(&self.line);
                    log::info!(target: "console", "{}: {}", self.config.name, text.trim_end_matches('\r'));
                    self.line.clear();
                    if b == b'\n' {
                        continue;
                    }
                }
                self.line.push(b);
            }
        }
        // A client that cannot take it now is dropped: the guest never waits for a reader.
        self.clients.retain_mut(|c| c.write_all(bytes).is_ok());
    }

    fn write_log(&mut self, bytes: &[u8]) {
        if self.log_size + bytes.len() as u64 > LOG_LIMIT {
            self.log = None;
            let old = self.config.log.with_extension("log.1");
            let _ = std::fs::rename(&self.config.log, old);
            self.open_log();
        }
        let Some(f) = self.log.as_mut() else { return };
        match f.write_all(bytes) {
            Ok(()) => self.log_size += bytes.len() as u64,
            Err(e) => {
                log::error!(
                    "{}: console log {}: {e}; no more console log",
                    self.config.name,
                    self.config.log.display()
                );
                self.log = None;
            }
        }
    }

    fn accept(&mut self) {
        while let Ok((conn, _)) = self.listener.accept() {
            let allowed = rustix::net::sockopt::socket_peercred(&conn)
                .is_ok_and(|c| c.uid.is_root() || c.uid == rustix::process::geteuid());
            if !allowed || self.clients.len() >= MAX_CLIENTS || conn.set_nonblocking(true).is_err() {
                continue;
            }
            self.clients.push(conn);
        }
    }

    /// Takes a client's keystrokes for the guest; false when it went.
    fn client_typed(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 1024];
        match self.clients[i].read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                // Bounded: a client typing into a console nobody drains cannot grow it.
                if self.to_guest.len() + n <= 64 * 1024 {
                    self.to_guest.extend(&buf[..n]);
                }
                true
            }
            Err(e) => e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted,
        }
    }
}

/// Where the daemon collects a domain's console: a container's in its bundle (it outlives the
/// domain), an EVE app's under `run_dir` (see [`paths`]).
pub fn log_path(run_dir: &Path, key: &str, container_bundle: Option<&Path>) -> PathBuf {
    match container_bundle {
        Some(bundle) => bundle.join(crate::container::CONSOLE_LOG),
        None => paths(run_dir, key).0,
    }
}

/// The console files of the app with key `key` under `run_dir`: its log and its socket.
pub fn paths(run_dir: &Path, key: &str) -> (PathBuf, PathBuf) {
    let dir = run_dir.join("console");
    (dir.join(format!("{key}.log")), dir.join(format!("{key}.sock")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_wait_for as wait_for;
    use std::time::Duration;

    /// A pty pair: the master (the guest's side, as xenconsoled holds it) and the slave's path.
    fn pty() -> (File, PathBuf) {
        let master = rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY).unwrap();
        rustix::pty::grantpt(&master).unwrap();
        rustix::pty::unlockpt(&master).unwrap();
        let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
        (File::from(master), PathBuf::from(name.to_string_lossy().into_owned()))
    }

    #[test]
    fn the_guests_output_goes_to_the_log_and_every_client_and_keystrokes_to_the_guest() {
        let dir = tempfile::tempdir().unwrap();
        let (mut guest, tty) = pty();
        let (log, socket) = paths(dir.path(), "app");
        let config =
            HubConfig { name: "app".into(), tty, log: log.clone(), socket: socket.clone(), to_daemon_log: true };
        let hub = Hub::start(config).unwrap();
        let mut a = UnixStream::connect(&socket).unwrap();
        let mut b = UnixStream::connect(&socket).unwrap();
        std::thread::sleep(Duration::from_millis(400)); // accepted
        guest.write_all(b"login: ").unwrap();
        for c in [&mut a, &mut b] {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = [0u8; 7];
            c.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"login: ");
        }
        wait_for("the log", || std::fs::read(&log).unwrap_or_default() == b"login: ");
        a.write_all(b"root\n").unwrap();
        let mut got = [0u8; 5];
        guest.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"root\n");
        // A client that goes is forgotten; the others stay.
        drop(a);
        guest.write_all(b"more\n").unwrap();
        let mut got = [0u8; 5];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"more\n");
        assert!(hub.is_running());
        // The guest's side closing (the domain went) ends the hub.
        drop(guest);
        wait_for("the hub to end", || !hub.is_running());
        drop(hub);
        assert!(!socket.exists());
    }

    #[test]
    fn the_log_is_cut_over_at_its_limit_keeping_one_older_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut guest, tty) = pty();
        let (log, socket) = paths(dir.path(), "app");
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        std::fs::write(&log, vec![b'x'; (LOG_LIMIT - 10) as usize]).unwrap();
        let config = HubConfig { name: "app".into(), tty, log: log.clone(), socket, to_daemon_log: false };
        let _hub = Hub::start(config).unwrap();
        guest.write_all(b"0123456789abcdef").unwrap();
        wait_for("the cut-over", || std::fs::read(&log).is_ok_and(|l| l == b"0123456789abcdef"));
        assert_eq!(std::fs::metadata(log.with_extension("log.1")).unwrap().len(), LOG_LIMIT - 10);
    }
}
