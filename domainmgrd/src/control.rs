//! The control socket that `domainctl` talks to: a unix socket (mode 0600, in the run
//! directory) accepting one JSON request per connection, answered with one JSON response.
//! Only root may use it: the peer's credentials (SO_PEERCRED) are checked on every connection,
//! whatever the file mode says. (Precisely: the user the daemon runs as, and root; the daemon
//! runs as root, so that is root alone. A daemon on the simulator in tests runs as the tester.)
//!
//! A worker of the bounded server ([`crate::serve`]) reads each request (within a deadline) and
//! hands it to the supervisor, which owns the domains; the connection then waits for its answer
//! without holding a worker, as long operations (host-start, host-stop) answer when they are
//! done. The 0600 mode and the peer check back each other up: a user the mode keeps out never
//! reaches the check, and [`call`] tells that user what the check would (exit 4, not root).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};

use crate::serve;

/// A request from domainctl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// Every domain on the host, with our state for the managed ones.
    List,
    /// One managed domain's status, or all of them.
    Status {
        /// Name, UUID or domid; `None` for all.
        domain: Option<String>,
    },
    /// Start a managed domain (and forget an operator stop).
    Start {
        /// Name, UUID or domid.
        domain: String,
    },
    /// Stop a managed domain and keep it stopped (across reboots) until started.
    Stop {
        /// Name, UUID or domid.
        domain: String,
        /// Destroy at once instead of asking the guest.
        force: bool,
        /// Grace before destroy, seconds (default: timer.domain.shutdown).
        timeout_secs: Option<u64>,
    },
    /// Destroy a managed domain at once and keep it stopped.
    Destroy {
        /// Name, UUID or domid.
        domain: String,
    },
    /// Stop then start a managed domain.
    Restart {
        /// Name, UUID or domid.
        domain: String,
        /// Grace before destroy, seconds.
        timeout_secs: Option<u64>,
    },
    /// Create a transient domain from an xl.cfg or EVE DomainConfig file.
    Create {
        /// The file (read by the daemon).
        file: PathBuf,
    },
    /// Run a container image as a transient domain (see `container/`).
    Run {
        /// What to run, and how (its `cmd` field cannot sit beside the request's own tag).
        container: crate::container::RunRequest,
    },
    /// Save a managed domain to a file (default: the save directory) and stop it.
    Save {
        /// Name, UUID or domid.
        domain: String,
        /// Where to save it.
        file: Option<PathBuf>,
    },
    /// Migrate a managed domain to another host (`domainctl migrate`), as `xl migrate` does.
    Migrate {
        /// Name, UUID or domid.
        domain: String,
        /// The target host; with `ssh` empty, the whole transport command.
        host: String,
        /// The ssh command (xl's `-s`); `None`: `ssh -o BatchMode=yes`.
        #[serde(default)]
        ssh: Option<String>,
        /// Copy its memory while it runs (pre-copy), else stop it and copy.
        #[serde(default)]
        live: bool,
        /// Give up (before the point of no return) after this many seconds.
        #[serde(default)]
        timeout_secs: Option<u64>,
    },
    /// Restore a saved image (as a transient domain unless its config is managed).
    Restore {
        /// The image.
        file: PathBuf,
    },
    /// The console tty of a domain.
    Console {
        /// Name, UUID or domid.
        domain: String,
    },
    /// Where a domain's collected console log is (a container's, or an EVE app's), and
    /// whether the domain still runs; a container's outlives it.
    Logs {
        /// Name or UUID.
        domain: String,
    },
    /// The domains' own copies of shared images (diskcopies.rs), with their sizes.
    DiskCopies,
    /// PCI adapters: the published AssignableAdapters and the pciback list.
    PciList,
    /// Bind a PCI device (with the rest of its assignment group) to pciback by hand.
    PciAssign {
        /// `0000:03:00.0`.
        bdf: String,
        /// Even if the adapter policy keeps it in dom0 (a dom0 port, USB under debug.enable.usb).
        #[serde(default)]
        force: bool,
    },
    /// Give a PCI device (with the rest of its assignment group) back to dom0 (with rebind).
    PciRelease {
        /// `0000:03:00.0`.
        bdf: String,
    },
    /// The latest metrics sample.
    Metrics,
    /// Host boot: restore saved domains, start the autostart ones.
    HostStart,
    /// Host shutdown: save or shut down the selected domains.
    HostStop,
}

/// domainctl's exit statuses: those of LSB init scripts (Linux Standard Base, "Init Script
/// Actions"), which xendomains used. `status` has its own table there: 0 running, 3 not
/// running, 4 unknown. domainctl's `--help` shows both.
pub mod exit {
    /// Success (also: starting what runs, stopping what is stopped).
    pub const OK: i32 = 0;
    /// The action failed (for host-start and host-stop: some domain did).
    pub const FAILED: i32 = 1;
    /// Bad usage (arguments).
    pub const USAGE: i32 = 2;
    /// `status`: the domain (or every managed domain) is not running.
    pub const NOT_RUNNING: i32 = 3;
    /// `status`: its status cannot be known (no such managed domain, or no daemon to ask).
    pub const STATUS_UNKNOWN: i32 = 4;
    /// Not root.
    pub const NO_PRIVILEGE: i32 = 4;
    /// No managed domain has that name (LSB's "program is not installed").
    pub const UNKNOWN_DOMAIN: i32 = 5;
    /// The host settings file cannot be used (LSB's "program is not configured").
    pub const NOT_CONFIGURED: i32 = 6;
    /// domainmgrd is not running.
    pub const DAEMON_NOT_RUNNING: i32 = 7;
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Success.
    pub ok: bool,
    /// The error, for people (one line).
    pub error: Option<String>,
    /// The result, for scripts.
    pub data: serde_json::Value,
    /// The exit status domainctl should use (LSB codes for status).
    pub exit: i32,
}

impl Response {
    /// Success with data.
    pub fn data(data: impl Serialize) -> Response {
        Response { ok: true, error: None, data: serde_json::to_value(data).unwrap_or_default(), exit: exit::OK }
    }

    /// Success with data and a particular exit status.
    pub fn data_with_exit(data: impl Serialize, exit: i32) -> Response {
        Response { exit, ..Response::data(data) }
    }

    /// A failure (exit status 1 unless given).
    pub fn error(text: impl Into<String>) -> Response {
        Response { ok: false, error: Some(text.into()), data: serde_json::Value::Null, exit: exit::FAILED }
    }

    /// A failure with an exit status.
    pub fn error_with_exit(text: impl Into<String>, exit: i32) -> Response {
        Response { exit, ..Response::error(text) }
    }
}

/// A request as the supervisor receives it.
#[derive(Debug)]
pub struct ControlMsg {
    /// What was asked.
    pub request: Request,
    /// Where the answer goes.
    pub reply: Sender<Response>,
}

/// The listening socket; stops on drop.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    endpoint: serve::Server,
}

/// Longest a request may wait for its answer (host-stop's watchdog plus a margin is less).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3600);

/// The socket's bounds. domainctl writes its request at once and reads its answer at once, so
/// 5 s for either is generous. 4 workers (a trickler holds one for at most those 5 s) with 64
/// places in the queue (a descriptor each, no thread) take a script starting 64 domainctl at
/// once. Waiting for an answer is not the client's fault and takes no worker; 64 waiting
/// connections are far more than any operator, script or unit file runs at once.
const LIMITS: serve::Limits = serve::Limits {
    workers: 4,
    queue: 64,
    request_deadline: Duration::from_secs(5),
    max_request: 1 << 20,
    write_deadline: Duration::from_secs(5),
    max_waiting: 64,
    answer_deadline: ANSWER_TIMEOUT,
};

impl Server {
    /// Listens on `path` (replacing a stale socket), handing requests to `supervisor`.
    pub fn start(path: &Path, supervisor: Sender<ControlMsg>) -> std::io::Result<Server> {
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, format!("{} is in use", path.display())));
        }
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let endpoint = serve::Server::start("control", listener, LIMITS, Control { supervisor })?;
        Ok(Server { path: path.to_path_buf(), endpoint })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.endpoint.stop();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The control protocol: one JSON line each way.
struct Control {
    supervisor: Sender<ControlMsg>,
}

impl serve::Handler<UnixStream> for Control {
    type Later = Response;

    fn is_complete(&self, request: &[u8]) -> bool {
        request.contains(&b'\n')
    }

    fn answer(
        &self,
        conn: &UnixStream,
        request: Result<&[u8], serve::Incomplete>,
        waiting: &serve::WaitSlots,
    ) -> serve::Answer<Response> {
        // The request is read even when it is refused: a client still writing it to a socket
        // closed under it would see a broken pipe instead of the refusal.
        let response = match rustix::net::sockopt::socket_peercred(conn) {
            Ok(cred) if cred.uid.is_root() || cred.uid == rustix::process::geteuid() => match parse(request) {
                Ok(request) => match waiting.reserve() {
                    Some(slot) => match self.dispatch(request) {
                        Ok(answer) => return serve::Answer::Later(slot, answer),
                        Err(response) => response,
                    },
                    None => Response::error(format!(
                        "domainmgrd is busy: {} requests already wait for their answers; try again when one is done",
                        waiting.max()
                    )),
                },
                Err(e) => Response::error(e),
            },
            Ok(cred) => {
                log::warn!(
                    "control socket: refused a request from uid {} (pid {})",
                    cred.uid.as_raw(),
                    cred.pid.as_raw_nonzero()
                );
                Response::error_with_exit("only root may control domainmgrd", exit::NO_PRIVILEGE)
            }
            Err(e) => Response::error(format!("cannot read the peer's credentials: {e}")),
        };
        serve::Answer::Now(line(&response))
    }

    fn later(&self, answer: Option<Response>) -> Vec<u8> {
        line(&answer.unwrap_or_else(|| Response::error("domainmgrd gave no answer")))
    }

    fn busy(&self) -> Vec<u8> {
        line(&Response::error("domainmgrd is busy: every connection slot is taken; try again"))
    }
}

impl Control {
    /// Hands `request` to the supervisor; its answer comes on the receiver.
    fn dispatch(&self, request: Request) -> Result<Receiver<Response>, Response> {
        log::debug!("control: {request:?}");
        let (tx, rx) = crossbeam_channel::bounded(1);
        match self.supervisor.send(ControlMsg { request, reply: tx }) {
            Ok(()) => Ok(rx),
            Err(_) => Err(Response::error("domainmgrd is stopping")),
        }
    }
}

fn parse(request: Result<&[u8], serve::Incomplete>) -> Result<Request, String> {
    let bytes = match request {
        Ok(bytes) => bytes,
        Err(serve::Incomplete::TimedOut) => {
            return Err(format!("no whole request within {} s", LIMITS.request_deadline.as_secs()));
        }
        Err(serve::Incomplete::TooLong) => return Err(format!("a request longer than {} bytes", LIMITS.max_request)),
        Err(serve::Incomplete::Failed) => return Err("reading the request failed".into()),
    };
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    serde_json::from_slice(line).map_err(|e| format!("not a request: {e}"))
}

/// A response as the JSON line it is sent as.
fn line(response: &Response) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(response).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Why [`call`] got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nothing listens on the socket (or it is not there).
    #[error("domainmgrd is not running (cannot connect to {}: {source})", socket.display())]
    NotRunning {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The socket (mode 0600) or its directory refuses this user: only root gets that far.
    #[error("only root may control domainmgrd ({}: {source})", socket.display())]
    NoPrivilege {
        /// The socket.
        socket: PathBuf,
        /// EACCES or EPERM.
        source: std::io::Error,
    },
    /// Sending the request or reading the answer failed.
    #[error("{what} domainmgrd: {source}")]
    Io {
        /// "sending to", "reading the answer of".
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The request cannot be encoded (not expected of our own types).
    #[error("cannot encode the request: {0}")]
    Encode(serde_json::Error),
    /// The answer is not a response.
    #[error("domainmgrd's answer is not understood: {0}")]
    BadAnswer(serde_json::Error),
}

/// Sends one request to the daemon at `socket` and waits for its answer.
pub fn call(socket: &Path, request: &Request) -> Result<Response, CallError> {
    let mut conn = UnixStream::connect(socket).map_err(|source| {
        let socket = socket.to_path_buf();
        match rustix::io::Errno::from_io_error(&source) {
            Some(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => CallError::NoPrivilege { socket, source },
            _ => CallError::NotRunning { socket, source },
        }
    })?;
    let mut bytes = serde_json::to_vec(request).map_err(CallError::Encode)?;
    bytes.push(b'\n');
    if let Err(source) = conn.write_all(&bytes) {
        // It may have answered (refused) before reading: its answer is still there to read.
        if source.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(CallError::Io { what: "sending to", source });
        }
    }
    let mut line = String::new();
    BufReader::new(conn)
        .read_line(&mut line)
        .map_err(|source| CallError::Io { what: "reading the answer of", source })?;
    serde_json::from_str(&line).map_err(CallError::BadAnswer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_json_lines() {
        let r = Request::Stop { domain: "web".into(), force: true, timeout_secs: Some(5) };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"cmd":"stop","domain":"web","force":true,"timeout_secs":5}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
        assert_eq!(serde_json::to_string(&Request::HostStart).unwrap(), r#"{"cmd":"host-start"}"#);
        // A container's own `cmd` beside the request's tag.
        let run = crate::container::RunRequest {
            image: "/i.tar".into(),
            cmd: Some(vec!["sh".into()]),
            env: vec!["A=1".into()],
            ..Default::default()
        };
        let r = Request::Run { container: run };
        assert_eq!(serde_json::from_str::<Request>(&serde_json::to_string(&r).unwrap()).unwrap(), r);
    }

    #[test]
    fn a_request_reaches_the_supervisor_and_its_answer_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.sock");
        let (tx, rx) = crossbeam_channel::unbounded::<ControlMsg>();
        let server = Server::start(&path, tx).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let answerer = std::thread::spawn(move || {
            let msg = rx.recv().unwrap();
            assert_eq!(msg.request, Request::List);
            msg.reply.send(Response::data_with_exit(serde_json::json!(["x"]), 3)).unwrap();
        });
        // Our own user may (tests/domainctl.rs shows another one may not).
        let r = call(&path, &Request::List).unwrap();
        assert_eq!((r.ok, r.exit, r.data.clone()), (true, 3, serde_json::json!(["x"])));
        answerer.join().unwrap();
        assert!(Server::start(&path, crossbeam_channel::unbounded().0).is_err(), "one daemon per socket");
        drop(server);
        assert!(!path.exists());
        let err = call(&path, &Request::List).unwrap_err().to_string();
        assert!(err.starts_with("domainmgrd is not running"), "{err}");
    }
}
