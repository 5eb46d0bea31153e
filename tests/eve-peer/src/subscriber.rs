//! `PeerSubscriber`: a strict subscriber of one topic. It sends `request <Topic>`, then checks
//! every message it reads against the description (framing via [`crate::codec::parse_strict`], and
//! the order: hello first and once, complete once, no delete or restarted before complete). A
//! violation is a panic saying what was wrong. It keeps the view the messages build, resolving
//! large-field files itself (reading then deleting them) and recording which it read.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::codec::{self, Msg};
use crate::large;
use crate::publisher::agent_name;
use crate::wire::{self, Recv};

/// How long [`PeerSubscriber::snapshot`] waits after `complete` for a `restarted` that
/// immediately follows it.
pub const RESTARTED_GRACE: Duration = Duration::from_millis(250);

/// What one read gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A message that passed every check.
    Msg(Msg),
    /// Nothing within the timeout.
    Timeout,
    /// The publisher closed the connection.
    Closed,
}

/// The state the messages so far have built.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// The persistence the hello announced (`None` before the hello).
    pub persistent: Option<bool>,
    /// The items, with large fields resolved back inline.
    pub items: BTreeMap<String, Value>,
    /// Whether `complete` has come.
    pub complete: bool,
    /// The last restart counter received.
    pub restarted: Option<u64>,
}

/// A strict subscriber of one topic.
#[derive(Debug)]
pub struct PeerSubscriber {
    fd: OwnedFd,
    topic: String,
    agent: String,
    large_root: Option<PathBuf>,
    pending: VecDeque<Msg>,
    got_hello: bool,
    closed: bool,
    view: View,
    log: Vec<Msg>,
    large_read: Vec<PathBuf>,
}

impl PeerSubscriber {
    /// Connects to `<agent_dir>/<topic>.sock` and sends `request <topic>`.
    pub fn connect(agent_dir: &Path, topic: &str) -> io::Result<PeerSubscriber> {
        let fd = wire::dial(&agent_dir.join(format!("{topic}.sock")))?;
        wire::send_msg(&fd, codec::request(topic).as_bytes())?;
        Ok(PeerSubscriber {
            fd,
            topic: topic.to_owned(),
            agent: agent_name(agent_dir),
            large_root: None,
            pending: VecDeque::new(),
            got_hello: false,
            closed: false,
            view: View::default(),
            log: Vec::new(),
            large_read: Vec::new(),
        })
    }

    /// Insists that large-field files lie in `<large_root>/<agent>/<topic>/`.
    pub fn expect_large_root(mut self, large_root: &Path) -> PeerSubscriber {
        self.large_root = Some(large_root.to_path_buf());
        self
    }

    /// The next message, checked; `Timeout` or `Closed` otherwise. Panics on any violation.
    pub fn recv(&mut self, timeout: Duration) -> Next {
        if let Some(m) = self.pending.pop_front() {
            return Next::Msg(m);
        }
        if self.closed {
            return Next::Closed;
        }
        let bytes = match wire::recv_msg(&self.fd, timeout) {
            Ok(Recv::Msg(b)) => b,
            Ok(Recv::Oversize(n)) => {
                panic!("eve-peer: {}: message of {n} bytes, not under {}", self.topic, wire::MAX_MESSAGE)
            }
            Ok(Recv::Timeout) => return Next::Timeout,
            Ok(Recv::Closed) | Err(_) => {
                self.closed = true;
                return Next::Closed;
            }
        };
        let msg = codec::parse_strict(&bytes, &self.topic)
            .unwrap_or_else(|e| panic!("eve-peer: {}: bad message: {e}", self.topic));
        self.check_order(&msg);
        self.log.push(msg.clone());
        Next::Msg(msg)
    }

    fn check_order(&mut self, msg: &Msg) {
        let t = &self.topic;
        match msg {
            Msg::Request => panic!("eve-peer: {t}: a publisher sent a request"),
            Msg::Hello { .. } if self.got_hello => panic!("eve-peer: {t}: a second hello"),
            Msg::Hello { .. } => self.got_hello = true,
            _ if !self.got_hello => panic!("eve-peer: {t}: {msg:?} before hello"),
            Msg::Complete if self.seen_complete() => panic!("eve-peer: {t}: a second complete"),
            Msg::Delete { key } if !self.seen_complete() => {
                panic!("eve-peer: {t}: delete of {key:?} before complete")
            }
            Msg::Restarted(n) if !self.seen_complete() => panic!("eve-peer: {t}: restarted {n} before complete"),
            _ => {}
        }
    }

    fn seen_complete(&self) -> bool {
        self.log.contains(&Msg::Complete)
    }

    /// The next message, or `None` on timeout or a closed connection.
    pub fn next(&mut self, timeout: Duration) -> Option<Msg> {
        match self.recv(timeout) {
            Next::Msg(m) => Some(m),
            _ => None,
        }
    }

    /// Applies `msg` to the view (resolving large fields; a bad large field panics).
    pub fn apply(&mut self, msg: &Msg) {
        match msg {
            Msg::Hello { persistent } => self.view.persistent = Some(*persistent),
            Msg::Update { key, value } => {
                let value = self.resolve_large(value);
                self.view.items.insert(key.clone(), value);
            }
            Msg::Delete { key } => {
                self.view.items.remove(key);
            }
            Msg::Complete => self.view.complete = true,
            Msg::Restarted(n) => self.view.restarted = Some(*n),
            Msg::Request => {}
        }
    }

    /// Parses a wire value and resolves its `pubsub-file-X` fields (reading, checking and
    /// deleting the files). Panics on a departure from the description.
    pub fn resolve_large(&mut self, value: &[u8]) -> Value {
        let v: Value = serde_json::from_slice(value).unwrap_or_else(|e| panic!("eve-peer: value not JSON: {e}"));
        let dir = self.large_root.as_ref().map(|r| large::large_dir(r, &self.agent, &self.topic));
        large::resolve(&v, dir.as_deref(), &mut self.large_read)
            .unwrap_or_else(|e| panic!("eve-peer: {}: large field: {e}", self.topic))
    }

    /// Reads until `complete` (and a `restarted` immediately after it, waiting at most
    /// [`RESTARTED_GRACE`] for one): the hello's persistence, the items, and the restart counter.
    /// Panics if `complete` does not come within `timeout`.
    pub fn snapshot(&mut self, timeout: Duration) -> (bool, BTreeMap<String, Value>, Option<u64>) {
        let deadline = Instant::now() + timeout;
        while !self.view.complete {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Next::Msg(m) => self.apply(&m),
                other => panic!("eve-peer: {}: no complete within {timeout:?}: {other:?}", self.topic),
            }
        }
        match self.recv(RESTARTED_GRACE) {
            Next::Msg(m @ Msg::Restarted(_)) => self.apply(&m),
            Next::Msg(m) => self.pending.push_front(m),
            Next::Timeout | Next::Closed => {}
        }
        let persistent = self.view.persistent.unwrap_or_else(|| panic!("eve-peer: no hello"));
        (persistent, self.view.items.clone(), self.view.restarted)
    }

    /// Applies messages until `pred` holds of the view; whether it did within `timeout`.
    pub fn wait_for(&mut self, timeout: Duration, mut pred: impl FnMut(&View) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.view) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.recv(left) {
                Next::Msg(m) => self.apply(&m),
                Next::Timeout | Next::Closed => return pred(&self.view),
            }
        }
    }

    /// Reads (and applies) until the publisher closes the connection; whether it did within
    /// `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.recv(left) {
                Next::Msg(m) => self.apply(&m),
                Next::Closed => return true,
                Next::Timeout => return false,
            }
        }
    }

    /// The view so far.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> &[Msg] {
        &self.log
    }

    /// The large-field files read (and deleted) so far.
    pub fn large_files_read(&self) -> &[PathBuf] {
        &self.large_read
    }

    /// Whether the publisher has closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}
