//! Live migration's plumbing on both hosts, around xenctl's protocol (`xenctl::migrate`, which
//! speaks `xl migrate`'s): the transport the source spawns, and the hand-over of the receiving
//! end of that transport from `domainctl migrate-receive` to the target's daemon.
//!
//! - Source: [`Transport`] runs the command xl would (`ssh HOST domainctl migrate-receive`; any
//!   ssh command in its place, or with an empty one HOST as the whole command, as xl's `-s`),
//!   with its stdin and stdout as the migration stream and its stderr in the log. Killing its
//!   process group (a timeout, a host-stop watchdog) cuts the stream, and the migration fails
//!   before or after the point of no return as xenctl says.
//! - Target: ssh runs `domainctl migrate-receive`, whose stdin and stdout are the stream. It
//!   hands both fds to the daemon over `migrate.sock` (root only, beside the control socket) with
//!   SCM_RIGHTS, in one message with its [`ReceiveRequest`], and waits for the daemon's
//!   [`ReceiveAnswer`]: the daemon receives the domain itself, so that it owns it from its first
//!   moment. [`Listener`] is the daemon's end; what it does with a connection is the
//!   supervisor's (`supervisor/incoming.rs`).
//!
//! The transport is authenticated and encrypted by ssh; nothing here listens on the network.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};

/// The ssh command when none is given (xl's is plain `ssh`): never a prompt, which a daemon
/// could not answer.
pub const DEFAULT_SSH: &str = "ssh -o BatchMode=yes";
/// What the transport runs on the target.
pub const RECEIVER: &str = "domainctl migrate-receive";
/// The daemon's migration socket, in its run directory beside the control socket.
pub const SOCKET_NAME: &str = "migrate.sock";
/// Lines of the transport's stderr kept for the report.
const STDERR_LINES: usize = 8;
/// Receives at once at most (each holds a libxl context for its transfer).
const MAX_RECEIVES: usize = 8;

/// The shell command that reaches the target: `SSH HOST RECEIVER ARGS`, or with an empty ssh
/// command `HOST` itself, as xl's `-s ''`. A host must be a host name or address (IPv6 with
/// its `%zone` too), never an option or shell text.
pub fn command_line(ssh: Option<&str>, host: &str, receiver_args: &[&str]) -> Result<String, String> {
    if host.is_empty() || host.contains(['\0', '\n']) {
        return Err(format!("host {host:?}: empty or not one line"));
    }
    match ssh {
        Some("") => Ok(host.to_string()),
        ssh => {
            let ok = |c: char| c.is_ascii_alphanumeric() || "._:%@[]-".contains(c);
            if host.starts_with('-') || !host.chars().all(ok) {
                return Err(format!(
                    "host {host:?}: not a host name or address (letters, digits and . _ : % @ [ ] - only); \
                     give the whole command with an empty ssh command (-s '') instead"
                ));
            }
            let mut rune = format!("{} {host} {RECEIVER}", ssh.unwrap_or(DEFAULT_SSH));
            for a in receiver_args {
                rune.push(' ');
                rune.push_str(a);
            }
            Ok(rune)
        }
    }
}

/// The source's transport: a shell running the command line, its stdin and stdout the stream.
#[derive(Debug)]
pub struct Transport {
    child: Child,
    command: String,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

/// Kills a transport's process group (from a watchdog thread).
#[derive(Debug, Clone, Copy)]
pub struct Killer(i32);

impl Killer {
    /// SIGKILL to the transport's process group: the stream breaks at both ends.
    pub fn kill(self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

impl Transport {
    /// Starts `sh -c COMMAND` in a process group of its own; `label` names it in the log.
    pub fn spawn(command: &str, label: &str) -> std::io::Result<Transport> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let reader = child.stderr.take().map(|err| {
            let (tail, label) = (Arc::clone(&stderr), label.to_string());
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    log::warn!("{label}: transport: {line}");
                    let mut tail = tail.lock();
                    if tail.len() == STDERR_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            })
        });
        log::info!("{label}: transport: {command}");
        Ok(Transport { child, command: command.to_string(), stderr, stderr_reader: reader })
    }

    /// The stream: what the command prints, and its input.
    pub fn stream(&mut self) -> Option<xenctl::MigrationStream> {
        let (out, input) = (self.child.stdout.take()?, self.child.stdin.take()?);
        Some(xenctl::MigrationStream::new(out, input))
    }

    /// What kills it.
    pub fn killer(&self) -> Killer {
        Killer(i32::try_from(self.child.id()).unwrap_or(0))
    }

    /// Waits up to `grace` for the command to end (then kills it): how it ended, with the
    /// last lines of its stderr, for the report.
    pub fn finish(mut self, grace: Duration) -> String {
        let deadline = Instant::now() + grace;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    self.killer().kill();
                    break self.child.wait().ok();
                }
            }
        };
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let tail: Vec<String> = self.stderr.lock().iter().cloned().collect();
        let status = status.map_or_else(|| "did not end".into(), |s| s.to_string());
        if tail.is_empty() {
            format!("`{}`: {status}", self.command)
        } else {
            format!("`{}`: {status}: {}", self.command, tail.join(" / "))
        }
    }
}

/// A domain's last migration, in its status (`Migration`; not in EVE's struct).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MigrationStatus {
    /// `out` (to `Peer`) or `in` (from it).
    pub direction: String,
    /// The other host (the target as given, or the sender's address as ssh tells).
    pub peer: String,
    /// `migrating`, `migrated`, `failed` (it runs here as before, or is stuck suspended),
    /// `in-doubt` (it may run there; ours is kept suspended), or `received`.
    pub state: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it got to this state.
    pub time: chrono::DateTime<chrono::Utc>,
    /// How long it took, once it is over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

impl MigrationStatus {
    /// A migration out to `peer`, now in `state`.
    pub fn out(peer: &str, state: &str) -> MigrationStatus {
        MigrationStatus {
            direction: "out".into(),
            peer: peer.into(),
            state: state.into(),
            error: None,
            time: chrono::Utc::now(),
            seconds: None,
        }
    }

    /// A domain received from `peer`.
    pub fn received(peer: &str) -> MigrationStatus {
        MigrationStatus { direction: "in".into(), state: "received".into(), ..MigrationStatus::out(peer, "") }
    }
}

/// What `domainctl migrate-receive` asks with the two fds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiveRequest {
    /// Where the domain's config came from on the source (`eve`, `auto`, `transient`), when a
    /// domainmgrd sent it; `None` from xl.
    pub source: Option<String>,
    /// The sending host, as ssh tells (`SSH_CLIENT`'s address), for the status.
    pub peer: Option<String>,
}

/// The daemon's answer once the domain runs here (or will not).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiveAnswer {
    /// It runs here, managed.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Its name.
    pub name: Option<String>,
    /// Its domid here.
    pub domid: Option<u32>,
    /// How it is managed here: `eve`, `auto` or `transient`.
    pub managed: Option<String>,
}

/// Hands `reader` and `writer` (the stream from and to the sender) to the daemon whose
/// migration socket is `socket`, and waits for its answer (as long as the migration takes).
pub fn hand_over(
    socket: &Path,
    request: &ReceiveRequest,
    reader: BorrowedFd<'_>,
    writer: BorrowedFd<'_>,
) -> Result<ReceiveAnswer, String> {
    let conn = UnixStream::connect(socket)
        .map_err(|e| format!("cannot reach domainmgrd's migration socket {}: {e}", socket.display()))?;
    let mut line = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    line.push(b'\n');
    let fds = [reader, writer];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err("cannot attach the stream's descriptors".into());
    }
    let sent = rustix::net::sendmsg(&conn, &[IoSlice::new(&line)], &mut control, SendFlags::empty())
        .map_err(|e| format!("cannot hand the stream to domainmgrd: {e}"))?;
    if sent != line.len() {
        return Err("the request to domainmgrd was cut short".into());
    }
    let mut answer = String::new();
    BufReader::new(conn).read_line(&mut answer).map_err(|e| format!("reading domainmgrd's answer: {e}"))?;
    if answer.is_empty() {
        return Err("domainmgrd gave no answer (did it stop?)".into());
    }
    serde_json::from_str(&answer).map_err(|e| format!("domainmgrd's answer is not understood: {e}"))
}

/// One received hand-over: the request, the stream, and where the answer goes.
#[derive(Debug)]
pub struct Incoming {
    /// What was asked.
    pub request: ReceiveRequest,
    /// The stream from and to the sender.
    pub stream: xenctl::MigrationStream,
    /// Where the answer goes.
    pub responder: Responder,
}

/// The connection from `domainctl migrate-receive`, waiting for the answer.
#[derive(Debug)]
pub struct Responder {
    conn: UnixStream,
}

impl Responder {
    /// Tells `domainctl migrate-receive` how it ended.
    pub fn answer(mut self, answer: &ReceiveAnswer) {
        let mut line = serde_json::to_vec(answer).unwrap_or_default();
        line.push(b'\n');
        let _ = self.conn.write_all(&line);
    }
}

/// The daemon's migration socket: each hand-over goes to `handler` on a thread of its own.
#[derive(Debug)]
pub struct Listener {
    path: PathBuf,
    /// The listening socket, shared with the thread: Drop shuts it down to end its `accept`.
    socket: UnixListener,
    /// The socket file's device and inode: Drop removes the path only while it is still ours.
    file: Option<(u64, u64)>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    /// Listens on `path` (mode 0600, root and the daemon's own user only).
    pub fn start(path: &Path, handler: impl Fn(Incoming) + Send + Sync + 'static) -> std::io::Result<Listener> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let file = crate::files::file_id(path);
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let running = Arc::new(AtomicUsize::new(0));
        let socket = listener.try_clone()?;
        let thread = {
            let stop = Arc::clone(&stop);
            // Blocks in accept while idle; Drop wakes it by shutting the socket down.
            std::thread::Builder::new().name("migrate-listen".into()).spawn(move || {
                loop {
                    let accepted = listener.accept();
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match accepted {
                        Ok((conn, _)) => accept(conn, &handler, &running),
                        Err(e) => {
                            log::warn!("migration socket: accept: {e}");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })?
        };
        Ok(Listener { path: path.to_path_buf(), socket, file, stop, thread: Some(thread) })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Linux ends a blocked accept on a listening socket that is shut down (EINVAL), whatever
        // became of its path; if that ever fails, the thread is left, not waited for.
        let woken = rustix::net::shutdown(&self.socket, rustix::net::Shutdown::Both).is_ok();
        if let Some(t) = self.thread.take().filter(|_| woken) {
            let _ = t.join();
        }
        // Another daemon may have bound the path since: its socket stays.
        if self.file.is_some() && crate::files::file_id(&self.path) == self.file {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn refuse(mut conn: UnixStream, error: String) {
    log::warn!("migration socket: {error}");
    let answer = ReceiveAnswer { error: Some(error), ..ReceiveAnswer::default() };
    let mut line = serde_json::to_vec(&answer).unwrap_or_default();
    line.push(b'\n');
    let _ = conn.write_all(&line);
}

/// Checks the peer and hands the connection to a thread of its own, which reads the request
/// and runs `handler` (the listener goes back to accepting at once).
fn accept<H: Fn(Incoming) + Send + Sync + 'static>(conn: UnixStream, handler: &Arc<H>, running: &Arc<AtomicUsize>) {
    match rustix::net::sockopt::socket_peercred(&conn) {
        Ok(cred) if cred.uid.is_root() || cred.uid == rustix::process::geteuid() => {}
        Ok(cred) => return refuse(conn, format!("refused a hand-over from uid {}", cred.uid.as_raw())),
        Err(e) => return refuse(conn, format!("cannot read the peer's credentials: {e}")),
    }
    if running.fetch_add(1, Ordering::SeqCst) >= MAX_RECEIVES {
        running.fetch_sub(1, Ordering::SeqCst);
        return refuse(conn, format!("{MAX_RECEIVES} migrations are being received already; try again later"));
    }
    let (handler, count) = (Arc::clone(handler), Arc::clone(running));
    let spawned = std::thread::Builder::new().name("migrate-in".into()).spawn(move || {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        match read_hand_over(&conn) {
            Ok((request, stream)) => {
                let _ = conn.set_read_timeout(None);
                handler(Incoming { request, stream, responder: Responder { conn } });
            }
            Err(e) => refuse(conn, e),
        }
        count.fetch_sub(1, Ordering::SeqCst);
    });
    if let Err(e) = spawned {
        log::error!("migration socket: cannot start a thread: {e}");
        running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads the request line and its two fds.
fn read_hand_over(conn: &UnixStream) -> Result<(ReceiveRequest, xenctl::MigrationStream), String> {
    let mut buf = vec![0u8; 4096];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(conn, &mut [IoSliceMut::new(&mut buf)], &mut control, RecvFlags::CMSG_CLOEXEC)
        .map_err(|e| format!("reading a hand-over: {e}"))?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = msg {
            fds.extend(rights);
        }
    }
    let mut line = buf[..got.bytes].to_vec();
    // The rest of a long line (no fds ride on it).
    let mut rest = conn;
    while !line.contains(&b'\n') && line.len() < 65536 {
        let mut more = [0u8; 4096];
        match rest.read(&mut more) {
            Ok(0) | Err(_) => break,
            Ok(n) => line.extend_from_slice(&more[..n]),
        }
    }
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let request: ReceiveRequest =
        serde_json::from_slice(line).map_err(|e| format!("a hand-over that is not a request: {e}"))?;
    let [reader, writer]: [OwnedFd; 2] =
        fds.try_into().map_err(|fds: Vec<OwnedFd>| format!("a hand-over with {} descriptors, not 2", fds.len()))?;
    Ok((request, xenctl::MigrationStream::new(reader, writer)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn the_transport_command_is_xls() {
        assert_eq!(
            command_line(None, "fe80::2%xenbr0", &["--source", "auto"]).unwrap(),
            "ssh -o BatchMode=yes fe80::2%xenbr0 domainctl migrate-receive --source auto"
        );
        assert_eq!(
            command_line(Some("ssh -p 2222"), "h.example", &[]).unwrap(),
            "ssh -p 2222 h.example domainctl migrate-receive"
        );
        assert_eq!(
            command_line(Some(""), "ssh h xl migrate-receive", &["ignored"]).unwrap(),
            "ssh h xl migrate-receive"
        );
        for bad in ["-oProxyCommand=x", "h; rm -rf /", "a b", "", "h\nx", "$(x)"] {
            assert!(command_line(None, bad, &[]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dropping_the_listener_leaves_a_socket_another_daemon_bound_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_NAME);
        let (tx, rx) = crossbeam_channel::unbounded();
        let listener = Listener::start(&path, move |_| tx.send(()).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let other = UnixListener::bind(&path).unwrap();
        other.set_nonblocking(true).unwrap();
        let (dropped_tx, dropped) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            drop(listener);
            dropped_tx.send(()).unwrap();
        });
        dropped.recv_timeout(Duration::from_secs(10)).expect("dropping the listener did not return");
        assert!(path.exists(), "the other daemon's socket file was removed");
        let err = other.accept().map(drop).expect_err("the drop connected to the other daemon");
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        assert!(rx.try_recv().is_err());
        // Its own socket file goes with it.
        drop(other);
        std::fs::remove_file(&path).unwrap();
        drop(Listener::start(&path, |_| {}).unwrap());
        assert!(!path.exists());
    }

    #[test]
    fn a_hand_over_carries_the_request_and_both_fds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_NAME);
        let (tx, rx) = crossbeam_channel::unbounded();
        let _listener = Listener::start(&path, move |incoming: Incoming| {
            let Incoming { request, stream, responder } = incoming;
            let (mut r, mut w) = stream.into_files();
            let mut got = String::new();
            r.read_to_string(&mut got).unwrap();
            w.write_all(b"from the daemon").unwrap();
            drop(w);
            tx.send((request, got)).unwrap();
            responder.answer(&ReceiveAnswer {
                ok: true,
                name: Some("web".into()),
                domid: Some(7),
                ..Default::default()
            });
        })
        .unwrap();
        // The "ssh" side: a pipe each way.
        let (to_daemon_r, mut to_daemon_w) = std::io::pipe().unwrap();
        let (mut from_daemon_r, from_daemon_w) = std::io::pipe().unwrap();
        let request = ReceiveRequest { source: Some("auto".into()), peer: Some("fe80::1".into()) };
        let hand = std::thread::spawn({
            let path = path.clone();
            let request = request.clone();
            move || hand_over(&path, &request, to_daemon_r.as_fd(), from_daemon_w.as_fd())
        });
        to_daemon_w.write_all(b"stream bytes").unwrap();
        drop(to_daemon_w);
        let (got_request, got) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((got_request, got.as_str()), (request, "stream bytes"));
        let answer = hand.join().unwrap().unwrap();
        assert_eq!((answer.ok, answer.domid), (true, Some(7)));
        let mut back = String::new();
        from_daemon_r.read_to_string(&mut back).unwrap();
        assert_eq!(back, "from the daemon");
    }
}
