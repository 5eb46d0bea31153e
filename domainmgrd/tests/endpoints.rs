//! The control socket and the metrics endpoint against slow and greedy clients: a client
//! trickling its request a byte at a time, many of them, clients that never read their answer,
//! more requests waiting for the supervisor than the bound; and `domainctl` run by a user the
//! socket's mode keeps out. Each test counts this process's threads (/proc/self/task), so they
//! run one at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use domainmgrd::control::{self, ControlMsg, Request, Response};
use domainmgrd::eve::UuidAndVersion;
use domainmgrd::metrics::{DomainMetric, Sample, SampledDomain};
use domainmgrd::prometheus::{self, Listen};
use parking_lot::Mutex;

/// One test at a time: they count the process's threads.
static SERIAL: Mutex<()> = Mutex::new(());

/// How long the endpoints' deadlines (5 s to read a request, 5 or 10 s to write an answer) may
/// take at most, with a wide margin: what "closed by its deadline" is checked against.
const WITHIN: Duration = Duration::from_secs(30);

/// "Not blocked": far less than the 5 s a trickler may hold a worker, far more than a request
/// served at once takes on a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(2);

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The process's threads once the count has settled (an earlier test's helper threads, e.g. a
/// caller that got its answer, may still be on their way out): the same count over 100 ms, or
/// the lowest seen within 2 s.
fn settled_threads() -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut last = threads();
    let mut lowest = last;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = threads();
        lowest = lowest.min(now);
        if now == last {
            return now;
        }
        last = now;
    }
    lowest
}

/// Waits until `check` holds, at most `within`; `check` also runs once more at the end.
fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "waited {within:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the server has closed `conn`, which does not read: a write, without waiting (the
/// server does not read either), fails then.
fn closed_by_the_server(conn: &mut UnixStream) -> bool {
    conn.set_nonblocking(true).unwrap();
    match conn.write_all(b" ") {
        Ok(()) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Connections that each write one byte every 100 ms and never finish their request, all from
/// one thread; a connection counts as closed when the server has closed it (a write fails).
struct Tricklers {
    closed: Arc<AtomicUsize>,
    sent: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    count: usize,
}

impl Tricklers {
    fn start<S: Write + Send + 'static>(conns: Vec<S>, head: &'static [u8], byte: u8) -> Tricklers {
        let closed = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let count = conns.len();
        let (c, s, st) = (Arc::clone(&closed), Arc::clone(&sent), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut open: Vec<Option<S>> = conns.into_iter().map(Some).collect();
            for conn in open.iter_mut() {
                if conn.as_mut().is_some_and(|w| w.write_all(head).is_err()) {
                    *conn = None;
                    c.fetch_add(1, Ordering::SeqCst);
                }
            }
            while !st.load(Ordering::SeqCst) {
                for conn in open.iter_mut() {
                    if let Some(w) = conn {
                        if w.write_all(&[byte]).is_ok() {
                            s.fetch_add(1, Ordering::SeqCst);
                        } else {
                            *conn = None;
                            c.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                // The trickle itself, not a wait for a condition.
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Tricklers { closed, sent, stop, thread: Some(thread), count }
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    /// Waits until every trickler has sent `n` bytes or been closed.
    fn wait_sent(&self, n: usize) {
        wait_until(WITHIN, "the tricklers to trickle", || self.sent.load(Ordering::SeqCst) >= n || self.closed() > 0);
    }
}

impl Drop for Tricklers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sample(domains: usize) -> Sample {
    let domain = |i: usize| SampledDomain {
        name: format!("domain-with-a-longish-name-{i}"),
        domid: i as u32 + 1,
        cpu_ns: Some(1_000_000_000),
        memory_bytes: 128 << 20,
        max_memory_bytes: 256 << 20,
        max_used_bytes: 128 << 20,
        vcpus: 1,
        metric: DomainMetric {
            uuid_and_version: UuidAndVersion { uuid: uuid::Uuid::from_u128(i as u128), version: String::new() },
            cpu_total_ns: 1_000_000_000,
            cpu_scaled: 1,
            allocated_mb: 128,
            used_memory: 128,
            max_used_memory: 128,
            available_memory: 128,
            used_memory_percent: 50.0,
            last_heard: None,
            activated: true,
            node_name: String::new(),
        },
    };
    Sample { domains: (0..domains).map(domain).collect(), ..Sample::default() }
}

fn tcp_metrics(domains: usize) -> (prometheus::Server, std::net::SocketAddr) {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = prometheus::Server::start(Listen::Tcp(addr), Arc::new(Mutex::new(sample(domains)))).unwrap();
    (server, addr)
}

/// A scrape; `Err` when no whole answer came within [`PROMPTLY`].
fn scrape<S: Read + Write>(mut conn: S) -> Result<String, String> {
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply).map_err(|e| format!("{e}; got {:?}", &reply[..reply.len().min(80)]))?;
    Ok(reply)
}

fn scrape_tcp(addr: std::net::SocketAddr) -> Result<String, String> {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(PROMPTLY)).unwrap();
    scrape(conn)
}

#[test]
fn a_trickling_client_does_not_delay_a_scrape() {
    let _serial = SERIAL.lock();
    let (_server, addr) = tcp_metrics(2);
    let trickler = Tricklers::start(vec![TcpStream::connect(addr).unwrap()], b"GET /metrics HTTP/1.1\r\nX: ", b'a');
    trickler.wait_sent(3);
    let reply = scrape_tcp(addr).expect("a scrape answered while a client trickles");
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert_eq!(trickler.closed(), 0, "the trickler is still within its deadline");
}

#[test]
fn many_trickling_metrics_clients_cost_no_threads_and_their_deadline_closes_them() {
    let _serial = SERIAL.lock();
    let (_server, addr) = tcp_metrics(2);
    let before = settled_threads();
    // More than the 4 workers and 4 places in the queue: the rest are answered 503 at once.
    let conns: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let tricklers = Tricklers::start(conns, b"GET /metrics HTTP/1.1\r\nX: ", b'a');
    let mut most = 0;
    wait_until(WITHIN, "the deadline to close every trickler", || {
        most = most.max(threads());
        tricklers.closed() == tricklers.count
    });
    assert!(most <= before + 1, "{before} threads before, {most} with 20 tricklers");
    let reply = scrape_tcp(addr).expect("served again once they are gone");
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
}

#[test]
fn a_connection_beyond_the_bound_is_answered_503_at_once() {
    let _serial = SERIAL.lock();
    let (_server, addr) = tcp_metrics(2);
    // 4 workers and 4 places in the queue, and 12 clients that send nothing: whatever order the
    // workers take them in, at least 4 find every place taken. Those are answered 503 and closed
    // at once; the others wait for their request until the 5 s deadline answers them 408.
    let mut conns: Vec<(TcpStream, Vec<u8>, bool)> = (0..12)
        .map(|_| {
            let c = TcpStream::connect(addr).unwrap();
            c.set_nonblocking(true).unwrap();
            (c, Vec::new(), false)
        })
        .collect();
    wait_until(WITHIN, "4 connections to be answered and closed", || {
        for (c, reply, done) in conns.iter_mut().filter(|(_, _, done)| !done) {
            let mut buf = [0u8; 512];
            loop {
                match c.read(&mut buf) {
                    Ok(0) => break *done = true,
                    Ok(n) => reply.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => break *done = true,
                }
            }
        }
        conns.iter().filter(|(_, _, done)| *done).count() >= 4
    });
    for (_, reply, _) in conns.iter().filter(|(_, _, done)| *done) {
        let reply = String::from_utf8_lossy(reply);
        assert!(reply.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{reply}");
    }
}

#[test]
fn clients_that_never_read_their_answer_do_not_delay_a_scrape() {
    let _serial = SERIAL.lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.sock");
    // Megabytes of metrics: far more than a unix socket's buffers hold.
    let _server = prometheus::Server::start(Listen::Unix(path.clone()), Arc::new(Mutex::new(sample(3000)))).unwrap();
    let mut stuck = Vec::new();
    for _ in 0..3 {
        let mut c = UnixStream::connect(&path).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        stuck.push(c);
    }
    let conn = UnixStream::connect(&path).unwrap();
    conn.set_read_timeout(Some(PROMPTLY)).unwrap();
    let reply = scrape(conn).expect("a scrape answered while 3 clients do not read theirs");
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n") && reply.len() > 1 << 20, "{}", &reply[..80]);
    wait_until(WITHIN, "the write deadline to close every connection that does not read", || {
        stuck.iter_mut().all(closed_by_the_server)
    });
}

/// A control socket whose "supervisor" answers each request with `answer` (none: never).
struct ControlSocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    server: Option<control::Server>,
    received: Arc<AtomicUsize>,
    held: Arc<Mutex<Vec<ControlMsg>>>,
}

impl ControlSocket {
    fn start(answer: Option<Response>) -> ControlSocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.sock");
        let (tx, rx) = crossbeam_channel::unbounded::<ControlMsg>();
        let server = control::Server::start(&path, tx).unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (r, h) = (Arc::clone(&received), Arc::clone(&held));
        std::thread::spawn(move || {
            for msg in rx {
                r.fetch_add(1, Ordering::SeqCst);
                match &answer {
                    Some(a) => drop(msg.reply.send(a.clone())),
                    None => h.lock().push(msg),
                }
            }
        });
        ControlSocket { _dir: dir, path, server: Some(server), received, held }
    }

    fn connect(&self) -> UnixStream {
        UnixStream::connect(&self.path).unwrap()
    }

    /// `call` on another thread: its answer, if it comes within `within`.
    fn call_within(&self, request: Request, within: Duration) -> Option<Response> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let path = self.path.clone();
        std::thread::spawn(move || drop(tx.send(control::call(&path, &request).map_err(|e| e.to_string()))));
        rx.recv_timeout(within).ok().map(|r| r.unwrap())
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        drop(self.server.take());
        self.held.lock().clear();
    }
}

fn list_answer() -> Response {
    Response::data(serde_json::json!(["web"]))
}

#[test]
fn a_trickling_control_client_takes_no_thread_and_delays_no_request() {
    let _serial = SERIAL.lock();
    let ctl = ControlSocket::start(Some(list_answer()));
    let before = settled_threads();
    let trickler = Tricklers::start(vec![ctl.connect()], b"{\"cmd\":", b' ');
    trickler.wait_sent(3);
    // The tricklers' own thread is the one more.
    assert!(threads() <= before + 1, "a trickler has a thread of its own");
    let r = ctl.call_within(Request::List, PROMPTLY).expect("a request answered while a client trickles");
    assert_eq!(r, list_answer());
    assert_eq!(trickler.closed(), 0, "the trickler is still within its deadline");
}

#[test]
fn many_trickling_control_clients_cost_no_threads_and_their_deadline_closes_them() {
    let _serial = SERIAL.lock();
    let ctl = ControlSocket::start(Some(list_answer()));
    let before = settled_threads();
    // More than the 4 workers and 64 places in the queue.
    let conns: Vec<UnixStream> = (0..100).map(|_| ctl.connect()).collect();
    let tricklers = Tricklers::start(conns, b"{\"cmd\":", b' ');
    let mut most = 0;
    wait_until(WITHIN, "the deadline to close every trickler", || {
        most = most.max(threads());
        tricklers.closed() == tricklers.count
    });
    // The tricklers' own thread is the one more.
    assert!(most <= before + 1, "{before} threads before, {most} with 100 tricklers");
    assert_eq!(ctl.received.load(Ordering::SeqCst), 0, "no trickler's request reached the supervisor");
    assert_eq!(ctl.call_within(Request::List, PROMPTLY), Some(list_answer()), "served again once they are gone");
}

/// A request not whole by its deadline is answered, with an error saying so.
#[test]
fn a_control_request_not_whole_within_the_deadline_is_answered_with_an_error() {
    let _serial = SERIAL.lock();
    let ctl = ControlSocket::start(Some(list_answer()));
    let mut slow = ctl.connect();
    slow.write_all(b"{\"cmd\":").unwrap();
    let mut line = String::new();
    let started = Instant::now();
    BufReader::new(&slow).read_line(&mut line).unwrap();
    let r: Response = serde_json::from_str(&line).unwrap();
    assert!(!r.ok && r.error.as_deref() == Some("no whole request within 5 s"), "{r:?}");
    assert!(started.elapsed() < WITHIN);
}

#[test]
fn a_control_client_that_never_reads_its_answer_is_closed_by_the_write_deadline() {
    let _serial = SERIAL.lock();
    // An answer far larger than a unix socket's buffers.
    let big = Response::data("x".repeat(8 << 20));
    let ctl = ControlSocket::start(Some(big));
    let before = settled_threads();
    let mut conns = Vec::new();
    for _ in 0..6 {
        let mut c = ctl.connect();
        c.write_all(b"{\"cmd\":\"list\"}\n").unwrap();
        conns.push(c);
    }
    wait_until(WITHIN, "every request to reach the supervisor", || ctl.received.load(Ordering::SeqCst) == 6);
    // Not reading: a write fails once the server has given up and closed its end.
    let mut most = 0;
    wait_until(WITHIN, "the write deadline to close every connection that does not read", || {
        most = most.max(threads());
        conns.iter_mut().all(closed_by_the_server)
    });
    assert!(most <= before, "{before} threads before, {most} with 6 clients not reading");
    for mut c in conns {
        c.set_nonblocking(false).unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        assert!(got.len() < 8 << 20, "not all of the answer was taken, so not all was sent");
    }
    assert_eq!(ctl.call_within(Request::Metrics, PROMPTLY).map(|r| r.ok), Some(true), "served again");
}

#[test]
fn requests_waiting_for_answers_are_bounded_and_the_next_one_is_told_so() {
    let _serial = SERIAL.lock();
    let ctl = ControlSocket::start(None);
    let before = settled_threads();
    let mut waiting = Vec::new();
    for _ in 0..64 {
        let mut c = ctl.connect();
        c.write_all(b"{\"cmd\":\"host-stop\"}\n").unwrap();
        waiting.push(c);
    }
    wait_until(WITHIN, "64 requests to reach the supervisor", || ctl.received.load(Ordering::SeqCst) == 64);
    assert!(threads() <= before, "waiting for an answer takes no thread");
    let r = ctl.call_within(Request::List, PROMPTLY).expect("the 65th is answered at once");
    assert_eq!(
        (r.ok, r.error.as_deref()),
        (false, Some("domainmgrd is busy: 64 requests already wait for their answers; try again when one is done"))
    );
    assert_eq!(ctl.received.load(Ordering::SeqCst), 64, "the 65th never reached the supervisor");

    // Answered, each waiting connection gets its own answer, and there is room again.
    for (i, msg) in ctl.held.lock().drain(..).enumerate() {
        msg.reply.send(Response::data(i)).unwrap();
    }
    let mut answers: Vec<u64> = waiting
        .into_iter()
        .map(|c| {
            let mut line = String::new();
            BufReader::new(c).read_line(&mut line).unwrap();
            serde_json::from_str::<Response>(&line).unwrap().data.as_u64().unwrap()
        })
        .collect();
    answers.sort_unstable();
    assert_eq!(answers, (0..64).collect::<Vec<u64>>());
    let held = Arc::clone(&ctl.held);
    std::thread::spawn(move || {
        wait_until(WITHIN, "the next request", || !held.lock().is_empty());
        let msg = held.lock().remove(0);
        msg.reply.send(list_answer()).unwrap();
    });
    assert_eq!(ctl.call_within(Request::List, PROMPTLY), Some(list_answer()));
}

/// Issue 11, item 17: a user the socket's mode (0600) refuses gets "not root" (4), as from the
/// daemon's own peer check, not "not running" (7).
#[test]
fn domainctl_as_a_user_the_socket_mode_refuses_exits_4() {
    let _serial = SERIAL.lock();
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: not root, so domainctl cannot run as another user");
        return;
    }
    let ctl = ControlSocket::start(Some(list_answer()));
    let dir = ctl.path.parent().unwrap();
    // The directory lets anyone through; only the socket's own mode refuses.
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    let mode = std::fs::metadata(&ctl.path).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600);
    let exe = dir.join("domainctl");
    // Copied by another process: a write descriptor of ours could leak into a child another
    // test forks at that moment and make the exec below fail with ETXTBSY.
    let cp = std::process::Command::new("cp").arg(env!("CARGO_BIN_EXE_domainctl")).arg(&exe).status().unwrap();
    assert!(cp.success());
    for (args, what) in [(&["list"][..], "an action"), (&["status", "web"][..], "status")] {
        let out = run_as_nobody(&exe, &ctl.path, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{what}: {stderr}");
        assert!(
            stderr.starts_with("domainctl: only root may control domainmgrd (") && stderr.contains("Permission denied"),
            "{what}: {stderr}"
        );
    }
    assert_eq!(ctl.received.load(Ordering::SeqCst), 0);
    // Root still gets through.
    assert_eq!(control::call(&ctl.path, &Request::List).unwrap(), list_answer());
}

fn run_as_nobody(exe: &Path, socket: &Path, args: &[&str]) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(exe).arg("--socket").arg(socket).args(args).uid(65534).gid(65534).output().unwrap()
}
