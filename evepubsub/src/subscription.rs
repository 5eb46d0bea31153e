//! [`Subscription`]: a thread that dials `<agent_dir>/<Topic>.sock`, sends `request <Topic>`, and
//! passes on what the publisher says as [`Event`]s, in order; it redials while the publisher is
//! away and gets a full snapshot on each (re)connect. It never deletes keys on its own and never
//! trusts its input: a message that does not decode, is for another topic, or was truncated is
//! logged and skipped; a large field that cannot be read is logged and passed on as sent.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::wire::Message;
use crate::{MAX_MESSAGE, large, sock};

/// What a subscription passes on, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Connected, and the publisher said hello.
    Connected {
        /// Whether the publisher says its publication is persistent.
        persistent: bool,
    },
    /// A key was added or changed (large fields already read back in).
    Update {
        /// The key.
        key: String,
        /// Its value, JSON bytes as the publisher sent them.
        value: Vec<u8>,
    },
    /// A key was deleted.
    Delete {
        /// The key.
        key: String,
    },
    /// The publisher sent its whole snapshot (`complete`).
    Synchronized,
    /// The publisher's restart counter (`restarted`).
    Restarted(u64),
    /// The connection was lost (or could not be made after having been up); redialing.
    Disconnected,
}

/// Options of a subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionOptions {
    /// Wait between dials while the publisher is away (default 10 s).
    pub redial: Duration,
    /// Large-field files are read only if their path is inside this directory (after resolving
    /// `..`; the file opened with O_NOFOLLOW, regular files only); None: large fields are left as
    /// sent and logged.
    pub large_root: Option<PathBuf>,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions { redial: Duration::from_secs(10), large_root: None }
    }
}

#[derive(Debug, Default)]
struct Control {
    stopped: bool,
    /// The connection now up, shut down by `stop` to wake a blocked receive.
    sock: Option<Arc<OwnedFd>>,
}

#[derive(Debug, Default)]
struct Shared {
    control: Mutex<Control>,
    wake: Condvar,
}

/// A subscription to `<agent_dir>/<Topic>.sock`, on a thread of its own; Drop (or
/// [`stop`](Subscription::stop)) ends it promptly (closes the socket, wakes the redial wait) and
/// joins the thread. Send.
#[derive(Debug)]
pub struct Subscription {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Subscription {
    /// Starts subscribing to `topic` at `<agent_dir>/<topic>.sock`; `on_event` is called on the
    /// subscription's thread for every [`Event`].
    pub fn start(
        agent_dir: &Path,
        topic: &str,
        options: SubscriptionOptions,
        on_event: impl FnMut(Event) + Send + 'static,
    ) -> Subscription {
        let shared = Arc::new(Shared::default());
        let worker = Worker {
            shared: Arc::clone(&shared),
            sock_path: agent_dir.join(format!("{topic}.sock")),
            topic: topic.to_owned(),
            options,
        };
        let thread = std::thread::Builder::new().name(format!("sub-{topic}")).spawn(move || worker.run(on_event));
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(e) => {
                log::error!("{topic}: cannot start the subscription thread: {e}");
                None
            }
        };
        Subscription { shared, thread }
    }

    /// Ends the subscription (as dropping it does).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        {
            let mut control = self.shared.control.lock();
            control.stopped = true;
            if let Some(fd) = &control.sock {
                sock::shutdown(fd.as_ref());
            }
        }
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // Dropped from its own callback: the thread ends by itself once the callback returns.
            if thread.thread().id() != std::thread::current().id() && thread.join().is_err() {
                log::error!("subscription thread panicked");
            }
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    sock_path: PathBuf,
    topic: String,
    options: SubscriptionOptions,
}

impl Worker {
    fn run(self, mut on_event: impl FnMut(Event)) {
        let mut wait_first = false;
        loop {
            if wait_first && !self.wait(self.options.redial) {
                return;
            }
            if self.shared.control.lock().stopped {
                return;
            }
            let fd = match sock::connect(&self.sock_path) {
                Ok(fd) => Arc::new(fd),
                Err(e) => {
                    log::debug!("{}: dial: {e}", self.topic);
                    wait_first = true;
                    continue;
                }
            };
            {
                let mut control = self.shared.control.lock();
                if control.stopped {
                    return;
                }
                control.sock = Some(Arc::clone(&fd));
            }
            let request = Message::Request { topic: self.topic.clone() };
            let up = match request.encode().map(|bytes| sock::send(fd.as_ref(), &bytes)) {
                Ok(Ok(())) => self.read_loop(&fd, &mut on_event),
                Ok(Err(e)) => {
                    log::warn!("{}: sending the request failed: {e}", self.topic);
                    false
                }
                Err(e) => {
                    log::error!("{}: cannot make the request: {e}", self.topic);
                    false
                }
            };
            let stopped = {
                let mut control = self.shared.control.lock();
                control.sock = None;
                control.stopped
            };
            if stopped {
                return;
            }
            if up {
                on_event(Event::Disconnected);
            }
            // Redial at once after a connection that was up; wait after one that never said hello,
            // so a publisher that keeps closing us at once is not dialed in a busy loop.
            wait_first = !up;
        }
    }

    /// Waits `delay` or until stopped; false if stopped.
    fn wait(&self, delay: Duration) -> bool {
        let deadline = std::time::Instant::now() + delay;
        let mut control = self.shared.control.lock();
        while !control.stopped {
            if self.shared.wake.wait_until(&mut control, deadline).timed_out() {
                return !control.stopped;
            }
        }
        false
    }

    /// Reads messages until the connection fails or ends; true if the publisher said hello.
    fn read_loop(&self, fd: &OwnedFd, on_event: &mut impl FnMut(Event)) -> bool {
        let topic = self.topic.as_str();
        let mut buf = vec![0u8; MAX_MESSAGE + 2];
        let mut up = false;
        loop {
            let len = match sock::recv(fd, &mut buf) {
                Ok(sock::Received::Message(len)) => len,
                Ok(sock::Received::Truncated(len)) => {
                    log::error!("{topic}: skipping a message of {len} bytes: too large (truncated)");
                    continue;
                }
                Ok(sock::Received::Eof) => {
                    log::debug!("{topic}: publisher closed the connection");
                    return up;
                }
                Err(e) => {
                    log::debug!("{topic}: receive failed: {e}");
                    return up;
                }
            };
            let message = match Message::decode(&buf[..len]) {
                Ok(message) => message,
                Err(e) => {
                    log::error!("{topic}: skipping a bad message: {e}");
                    continue;
                }
            };
            if message.topic() != topic {
                log::error!("{topic}: skipping a message for topic {:?}", message.topic());
                continue;
            }
            let event = match message {
                Message::Hello { persistent, .. } if !up => {
                    up = true;
                    log::debug!("{topic}: connected (persistent: {persistent})");
                    Event::Connected { persistent }
                }
                Message::Hello { .. } => {
                    log::warn!("{topic}: skipping a second hello");
                    continue;
                }
                Message::Request { .. } => {
                    log::error!("{topic}: skipping a request sent by the publisher");
                    continue;
                }
                Message::Update { key, value, .. } => {
                    let value = large::read_back(topic, &key, value, self.options.large_root.as_deref());
                    Event::Update { key, value }
                }
                Message::Delete { key, .. } => Event::Delete { key },
                Message::Complete { .. } => Event::Synchronized,
                Message::Restarted { counter, .. } => Event::Restarted(counter),
            };
            on_event(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub_tests::subscribe;

    #[test]
    fn skips_what_it_cannot_trust() {
        let tmp = tempfile::tempdir().unwrap();
        let listener = sock::listen(&tmp.path().join("T.sock"), 4).unwrap();
        let options = SubscriptionOptions { redial: Duration::from_secs(3600), large_root: None };
        let (sub, log) = subscribe(tmp.path(), "T", options);
        let conn = sock::accept(&listener).unwrap();
        let mut buf = [0u8; 256];
        assert_eq!(sock::recv(&conn, &mut buf).unwrap(), sock::Received::Message(9));
        assert_eq!(&buf[..9], b"request T");
        let huge = format!("update T YQ== {}", "A".repeat(70_000));
        for message in [
            &b"hello Other true"[..],
            b"hello T false",
            b"update T !!!! MQ==",
            b"update T YQ== MQ",
            b"update T YQ==",
            huge.as_bytes(),
            b"update Other YQ== MQ==",
            b"request T",
            b"\xff\xfe",
            b"update T YQ== MQ==",
            b"hello T true",
            b"restarted T x",
            b"complete T",
            b"restarted T 3",
        ] {
            sock::send(&conn, message).unwrap();
        }
        let events = log.wait("restarted", |e| e.contains(&Event::Restarted(3)));
        assert_eq!(
            events,
            [
                Event::Connected { persistent: false },
                Event::Update { key: "a".into(), value: b"1".to_vec() },
                Event::Synchronized,
                Event::Restarted(3)
            ]
        );
        // The publisher goes: Disconnected, and the first redial is at once (not after an hour).
        drop(conn);
        let again = sock::accept(&listener).unwrap();
        log.wait("disconnected", |e| e.contains(&Event::Disconnected));
        assert_eq!(sock::recv(&again, &mut buf).unwrap(), sock::Received::Message(9));
        let started = std::time::Instant::now();
        sub.stop();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(log.wait("end", |_| true).len(), 5, "nothing passed on after Disconnected");
    }

    #[test]
    fn an_empty_message_ends_the_connection_as_in_eve() {
        // Go reads a zero-length SEQPACKET message as EOF; so do we (then redial, snapshot again).
        let tmp = tempfile::tempdir().unwrap();
        let listener = sock::listen(&tmp.path().join("T.sock"), 4).unwrap();
        let (_sub, log) = subscribe(tmp.path(), "T", SubscriptionOptions::default());
        let conn = sock::accept(&listener).unwrap();
        sock::send(&conn, b"hello T true").unwrap();
        sock::send(&conn, b"").unwrap();
        let events = log.wait("disconnected", |e| e.contains(&Event::Disconnected));
        assert_eq!(events, [Event::Connected { persistent: true }, Event::Disconnected]);
        let _again = sock::accept(&listener).unwrap();
    }
}
