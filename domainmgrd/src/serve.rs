//! The bounded connection server behind the control socket and the metrics endpoint: one accept
//! thread, a fixed pool of worker threads and a bounded queue between them, so that no client,
//! however slow, costs a thread of its own or holds up other clients beyond its deadlines. Each
//! connection has one whole-request deadline counted from its accept (a client trickling a byte
//! at a time cannot stretch it, as it would a per-read timeout), and each answer one whole-write
//! deadline (a client that never reads cannot keep a worker). A connection that finds every
//! worker busy and the queue full is told so by the handler's "busy" bytes, written without
//! waiting, and closed at once, with a warning at most every 10 s. A handler may also answer
//! later (the control socket's host-stop waits for the supervisor for minutes; that is not the
//! client's fault): such connections wait, at most `max_waiting` of them, on one more thread
//! that waits for all their answers at once and never for a client.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender, TrySendError};
use parking_lot::Mutex;

/// The bounds of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Worker threads, started with the server: at most this many connections are read or
    /// written at a time.
    pub workers: usize,
    /// Accepted connections that may wait for a worker; beyond that they are refused.
    pub queue: usize,
    /// From accept to the whole request, waiting in the queue included.
    pub request_deadline: Duration,
    /// The longest request; a longer one is not read further.
    pub max_request: usize,
    /// From the answer being ready to its last byte written.
    pub write_deadline: Duration,
    /// Connections whose answer comes later that may wait for it at once (0: none).
    pub max_waiting: usize,
    /// How long such a connection waits for its answer.
    pub answer_deadline: Duration,
}

/// A connected socket the server can bound in time.
pub trait Stream: Read + Write + Send + Sized + 'static {
    /// As the std method of that name.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// As the std method of that name.
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// As the std method of that name.
    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()>;
}

macro_rules! stream {
    ($t:ty) => {
        impl Stream for $t {
            fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
                <$t>::set_read_timeout(self, timeout)
            }
            fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
                <$t>::set_write_timeout(self, timeout)
            }
            fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
                <$t>::set_nonblocking(self, nonblocking)
            }
        }
    };
}
stream!(TcpStream);
stream!(UnixStream);

/// A listening socket.
pub trait Listener: Send + 'static {
    /// What it accepts.
    type Stream: Stream;
    /// The next connection.
    fn accept_stream(&self) -> io::Result<Self::Stream>;
    /// Where to connect to wake its accept loop.
    fn address(&self) -> io::Result<Address>;
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    fn accept_stream(&self) -> io::Result<TcpStream> {
        self.accept().map(|(s, _)| s)
    }
    fn address(&self) -> io::Result<Address> {
        self.local_addr().map(Address::Tcp)
    }
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    fn accept_stream(&self) -> io::Result<UnixStream> {
        self.accept().map(|(s, _)| s)
    }
    fn address(&self) -> io::Result<Address> {
        let addr = self.local_addr()?;
        let path = addr.as_pathname().ok_or_else(|| io::Error::other("the socket has no path"))?;
        Ok(Address::Unix(path.to_path_buf()))
    }
}

/// A listening socket's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// TCP.
    Tcp(SocketAddr),
    /// A unix socket's path.
    Unix(PathBuf),
}

impl Address {
    /// One connection, to wake the accept loop.
    fn knock(&self) {
        match self {
            Address::Tcp(addr) => drop(TcpStream::connect_timeout(addr, Duration::from_secs(1))),
            Address::Unix(path) => drop(UnixStream::connect(path)),
        }
    }
}

/// Why there is no whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incomplete {
    /// The request deadline passed first.
    TimedOut,
    /// It is longer than `max_request`.
    TooLong,
    /// Reading failed (the client reset the connection).
    Failed,
}

/// A handler's answer to a request.
#[derive(Debug)]
pub enum Answer<T> {
    /// These bytes, now.
    Now(Vec<u8>),
    /// The bytes of what the receiver gives (see [`Handler::later`]), within `answer_deadline`.
    Later(Slot, Receiver<T>),
}

/// What a server does with its connections' bytes.
pub trait Handler<S>: Send + Sync + 'static {
    /// What a later answer is made of.
    type Later: Send + 'static;
    /// Whether the bytes read so far are a whole request (the end of the stream is one too).
    fn is_complete(&self, request: &[u8]) -> bool;
    /// The answer to a request, or to a connection that gave none within the limits. A later
    /// answer needs one of the `waiting` slots.
    fn answer(&self, stream: &S, request: Result<&[u8], Incomplete>, waiting: &WaitSlots) -> Answer<Self::Later>;
    /// The bytes of a later answer; `None` when none came within `answer_deadline`.
    fn later(&self, answer: Option<Self::Later>) -> Vec<u8>;
    /// What a connection refused because every worker is busy is told.
    fn busy(&self) -> Vec<u8>;
}

/// The places for connections waiting for a later answer.
#[derive(Debug)]
pub struct WaitSlots {
    name: String,
    used: Arc<AtomicUsize>,
    max: usize,
    refusals: RateLimited,
}

impl WaitSlots {
    /// A place, if one is free; it is free again when the answer has been written (or not).
    pub fn reserve(&self) -> Option<Slot> {
        let max = self.max;
        if self.used.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1)).is_err() {
            self.refusals.warn(|n| format!("{}: {max} requests waiting for answers: refused {n} more", self.name));
            return None;
        }
        Some(Slot(Arc::clone(&self.used)))
    }

    /// How many there are.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// A reserved place for a connection waiting for its answer.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running server; stops accepting on drop (or [`Server::stop`]). Its workers end when they
/// have finished the connection in hand, which their deadlines bound.
#[derive(Debug)]
pub struct Server {
    stop: Arc<AtomicBool>,
    address: Address,
    accept: Option<JoinHandle<()>>,
}

/// A connection waiting for its later answer.
struct Pending<S, T> {
    stream: S,
    answer: Receiver<T>,
    deadline: Instant,
    slot: Slot,
}

/// An answer partly written, for a worker to finish.
struct Unsent<S> {
    stream: S,
    bytes: Vec<u8>,
    sent: usize,
    deadline: Instant,
}

/// What the workers share.
struct Work<H, S: Stream, T> {
    name: String,
    limits: Limits,
    handler: Arc<H>,
    slots: WaitSlots,
    pending: Option<Sender<Pending<S, T>>>,
}

impl Server {
    /// Serves `listener` with `handler` within `limits`; `name` names the threads and the logs.
    pub fn start<L, H>(name: &str, listener: L, limits: Limits, handler: H) -> io::Result<Server>
    where
        L: Listener,
        H: Handler<L::Stream>,
    {
        let address = listener.address()?;
        let handler = Arc::new(handler);
        let (queue_tx, queue_rx) = crossbeam_channel::bounded::<(L::Stream, Instant)>(limits.queue);
        let (unsent_tx, unsent_rx) = crossbeam_channel::unbounded::<Unsent<L::Stream>>();
        let pending = if limits.max_waiting > 0 {
            let (tx, rx) = crossbeam_channel::unbounded();
            let (handler, name) = (Arc::clone(&handler), name.to_string());
            std::thread::Builder::new()
                .name(format!("{name}-answers"))
                .spawn(move || wait_for_answers(&name, &*handler, &rx, &unsent_tx, limits))?;
            Some(tx)
        } else {
            None
        };
        let work = Arc::new(Work {
            name: name.to_string(),
            limits,
            handler: Arc::clone(&handler),
            slots: WaitSlots {
                name: name.to_string(),
                used: Arc::default(),
                max: limits.max_waiting,
                refusals: RateLimited::default(),
            },
            pending,
        });
        for _ in 0..limits.workers.max(1) {
            let (work, queue, unsent) = (Arc::clone(&work), queue_rx.clone(), unsent_rx.clone());
            std::thread::Builder::new().name(format!("{name}-work")).spawn(move || work.run(&queue, unsent))?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let accept_stop = Arc::clone(&stop);
        let accept = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || accept_loop(&listener, &accept_stop, &queue_tx, &work))?;
        Ok(Server { stop, address, accept: Some(accept) })
    }

    /// Stops accepting connections and waits for the accept thread to end.
    pub fn stop(&mut self) {
        if let Some(thread) = self.accept.take() {
            self.stop.store(true, Ordering::SeqCst);
            self.address.knock();
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop<L: Listener, H: Handler<L::Stream>>(
    listener: &L,
    stop: &AtomicBool,
    queue: &Sender<(L::Stream, Instant)>,
    work: &Work<H, L::Stream, H::Later>,
) {
    let (accept_errors, refusals) = (RateLimited::default(), RateLimited::default());
    loop {
        let accepted = listener.accept_stream();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                accept_errors.warn(|n| format!("{}: accepting a connection: {e} ({n} such errors)", work.name));
                // Out of descriptors or memory: give the workers a moment to free some
                // rather than spin on an error that will not go away by itself.
                let exhausted = [rustix::io::Errno::MFILE, rustix::io::Errno::NFILE, rustix::io::Errno::NOBUFS];
                if rustix::io::Errno::from_io_error(&e).is_some_and(|e| exhausted.contains(&e)) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                continue;
            }
        };
        match queue.try_send((stream, Instant::now())) {
            Ok(()) => {}
            Err(TrySendError::Full((mut stream, _))) => {
                write_now(&mut stream, &work.handler.busy());
                let (name, w, q) = (&work.name, work.limits.workers, work.limits.queue);
                refusals.warn(|n| format!("{name}: {w} workers busy, {q} connections waiting: refused {n} more"));
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

impl<H: Handler<S>, S: Stream> Work<H, S, H::Later> {
    fn run(&self, queue: &Receiver<(S, Instant)>, unsent: Receiver<Unsent<S>>) {
        let mut unsent = unsent;
        loop {
            let mut unsent_gone = false;
            crossbeam_channel::select! {
                recv(unsent) -> job => match job {
                    Ok(job) => self.finish(job),
                    Err(_) => unsent_gone = true,
                },
                recv(queue) -> conn => match conn {
                    Ok((stream, accepted)) => self.serve(stream, accepted),
                    Err(_) => return,
                },
            }
            if unsent_gone {
                unsent = crossbeam_channel::never();
            }
        }
    }

    fn serve(&self, mut stream: S, accepted: Instant) {
        let limits = &self.limits;
        let request = read_request(&mut stream, accepted + limits.request_deadline, limits.max_request, |r| {
            self.handler.is_complete(r)
        });
        if let Err(why) = &request {
            log::debug!("{}: no whole request: {why:?}", self.name);
        }
        match self.handler.answer(&stream, request.as_deref().map_err(|e| *e), &self.slots) {
            Answer::Now(bytes) => {
                if let Err(e) = write_all_by(&mut stream, &bytes, Instant::now() + limits.write_deadline) {
                    log::debug!("{}: writing the answer: {e}", self.name);
                }
            }
            Answer::Later(slot, answer) => {
                let pending = Pending { stream, answer, deadline: Instant::now() + limits.answer_deadline, slot };
                // Without the answers thread (max_waiting 0) no slot can be had: not reached.
                if let Some(tx) = &self.pending {
                    let _ = tx.send(pending);
                }
            }
        }
    }

    fn finish(&self, job: Unsent<S>) {
        let Unsent { mut stream, bytes, sent, deadline } = job;
        if let Err(e) = write_all_by(&mut stream, &bytes[sent..], deadline) {
            log::debug!("{}: writing a later answer: {e}", self.name);
        }
    }
}

/// The answers thread: waits for every pending answer at once, writes each without waiting
/// and leaves what the client has not taken yet to a worker.
fn wait_for_answers<S: Stream, H: Handler<S>>(
    name: &str,
    handler: &H,
    incoming: &Receiver<Pending<S, H::Later>>,
    unsent: &Sender<Unsent<S>>,
    limits: Limits,
) {
    let mut pending: Vec<Pending<S, H::Later>> = Vec::new();
    let mut open = true;
    while open || !pending.is_empty() {
        enum Event<P, T> {
            New(Result<P, crossbeam_channel::RecvError>),
            Answer(usize, Option<T>),
            Timeout,
        }
        let event = {
            let mut select = Select::new();
            let first = usize::from(open);
            if open {
                select.recv(incoming);
            }
            for p in &pending {
                select.recv(&p.answer);
            }
            let next = pending.iter().map(|p| p.deadline).min();
            let op = match next {
                Some(deadline) => select.select_deadline(deadline).ok(),
                None => Some(select.select()),
            };
            match op {
                None => Event::Timeout,
                Some(op) if op.index() < first => Event::New(op.recv(incoming)),
                Some(op) => {
                    let i = op.index() - first;
                    Event::Answer(i, op.recv(&pending[i].answer).ok())
                }
            }
        };
        match event {
            Event::New(Ok(p)) => pending.push(p),
            Event::New(Err(_)) => open = false,
            Event::Answer(i, answer) => {
                let p = pending.swap_remove(i);
                if answer.is_none() {
                    log::debug!("{name}: a request was dropped unanswered");
                }
                deliver(p, handler.later(answer), unsent, limits.write_deadline);
            }
            Event::Timeout => {
                let now = Instant::now();
                let (late, waiting): (Vec<_>, Vec<_>) = pending.into_iter().partition(|p| p.deadline <= now);
                pending = waiting;
                for p in late {
                    log::warn!("{name}: a request got no answer within {:?}", limits.answer_deadline);
                    deliver(p, handler.later(None), unsent, limits.write_deadline);
                }
            }
        }
    }
}

fn deliver<S: Stream, T>(p: Pending<S, T>, bytes: Vec<u8>, unsent: &Sender<Unsent<S>>, write_deadline: Duration) {
    let Pending { mut stream, slot, .. } = p;
    // Answered: it waits no more. The place is free before the client can read its answer,
    // so a client that reads it and asks again finds it free; the rest of a long answer is a
    // worker's, under the write deadline.
    drop(slot);
    let sent = write_now(&mut stream, &bytes);
    if sent < bytes.len() && stream.set_nonblocking(false).is_ok() {
        let deadline = Instant::now() + write_deadline;
        let _ = unsent.send(Unsent { stream, bytes, sent, deadline });
    }
}

/// Reads until `is_complete`, the end of the stream, `max` bytes or `deadline`, whichever
/// comes first.
fn read_request<S: Stream>(
    stream: &mut S,
    deadline: Instant,
    max: usize,
    is_complete: impl Fn(&[u8]) -> bool,
) -> Result<Vec<u8>, Incomplete> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Incomplete::TimedOut);
        }
        if request.len() >= max {
            return Err(Incomplete::TooLong);
        }
        stream.set_read_timeout(Some(left)).map_err(|_| Incomplete::Failed)?;
        let room = chunk.len().min(max - request.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return Ok(request),
            Ok(n) => {
                request.extend_from_slice(&chunk[..n]);
                if is_complete(&request) {
                    return Ok(request);
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Incomplete::Failed),
        }
    }
}

/// Writes `bytes` by `deadline`, however slowly the client takes them.
fn write_all_by<S: Stream>(stream: &mut S, bytes: &[u8], deadline: Instant) -> io::Result<()> {
    let mut sent = 0;
    while sent < bytes.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} bytes not taken in time", bytes.len() - sent),
            ));
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(&bytes[sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes what the socket takes without waiting; returns how much that was.
fn write_now<S: Stream>(stream: &mut S, bytes: &[u8]) -> usize {
    if stream.set_nonblocking(true).is_err() {
        return 0;
    }
    let mut sent = 0;
    while sent < bytes.len() {
        match stream.write(&bytes[sent..]) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    sent
}

/// A warning at most every 10 s, counting the occurrences in between.
#[derive(Debug, Default)]
struct RateLimited(Mutex<(Option<Instant>, u64)>);

impl RateLimited {
    const EVERY: Duration = Duration::from_secs(10);

    /// Counts one occurrence; warns with `text(occurrences since the last warning)` if it is time.
    fn warn(&self, text: impl FnOnce(u64) -> String) {
        let mut state = self.0.lock();
        let (last, count) = &mut *state;
        *count += 1;
        if last.is_none_or(|t| t.elapsed() >= Self::EVERY) {
            *last = Some(Instant::now());
            log::warn!("{}", text(std::mem::take(count)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufRead as _;

    use super::*;

    /// Lines in, lines out; "later" requests wait for the test to answer them.
    struct Lines {
        later: Sender<Sender<String>>,
    }

    impl Handler<UnixStream> for Lines {
        type Later = String;
        fn is_complete(&self, request: &[u8]) -> bool {
            request.ends_with(b"\n")
        }
        fn answer(&self, _: &UnixStream, request: Result<&[u8], Incomplete>, waiting: &WaitSlots) -> Answer<String> {
            match request {
                Ok(b"later\n") => match waiting.reserve() {
                    Some(slot) => {
                        let (tx, rx) = crossbeam_channel::bounded(1);
                        let _ = self.later.send(tx);
                        Answer::Later(slot, rx)
                    }
                    None => Answer::Now(b"full\n".to_vec()),
                },
                other => Answer::Now(format!("now {other:?}\n").into_bytes()),
            }
        }
        fn later(&self, answer: Option<String>) -> Vec<u8> {
            format!("{}\n", answer.as_deref().unwrap_or("none")).into_bytes()
        }
        fn busy(&self) -> Vec<u8> {
            b"busy\n".to_vec()
        }
    }

    /// A server of [`Lines`] that waits `answer_deadline` for later answers, and where they come from.
    fn lines(answer_deadline: Duration) -> (tempfile::TempDir, Server, Receiver<Sender<String>>) {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            workers: 1,
            queue: 1,
            request_deadline: Duration::from_secs(5),
            max_request: 100,
            write_deadline: Duration::from_secs(5),
            max_waiting: 1,
            answer_deadline,
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let listener = UnixListener::bind(dir.path().join("s.sock")).unwrap();
        (dir, Server::start("test", listener, limits, Lines { later: tx }).unwrap(), rx)
    }

    fn send(dir: &tempfile::TempDir, request: &str) -> UnixStream {
        let mut conn = UnixStream::connect(dir.path().join("s.sock")).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        conn.write_all(request.as_bytes()).unwrap();
        conn
    }

    fn answer(conn: UnixStream) -> String {
        let mut line = String::new();
        io::BufReader::new(conn).read_line(&mut line).unwrap();
        line
    }

    #[test]
    fn a_later_answer_not_given_in_time_is_answered_with_none_and_frees_its_place() {
        let (dir, _server, _answerers) = lines(Duration::from_millis(200));
        assert_eq!(answer(send(&dir, "now\n")), "now Ok([110, 111, 119, 10])\n");
        assert_eq!(answer(send(&dir, "later\n")), "none\n");
        assert_eq!(answer(send(&dir, "later\n")), "none\n", "its place was free again");
    }

    #[test]
    fn later_answers_wait_in_bounded_places() {
        let (dir, _server, answerers) = lines(Duration::from_secs(60));
        let first = send(&dir, "later\n");
        let answerer = answerers.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(answer(send(&dir, "later\n")), "full\n");
        answerer.send("done".into()).unwrap();
        assert_eq!(answer(first), "done\n");
    }
}
