//! [`Publication`]: one topic served at `<agent_dir>/<Topic>.sock` with its checkpoints in
//! `<agent_dir>/<Topic>/`. This file owns the publication's state (keys → JSON bytes, the restart
//! counter), its writes through to the checkpoint files, the accept thread, and one thread per
//! subscriber that keeps that subscriber's view (what it was sent) and sends it exactly the diffs:
//! deletes first, then updates, then `restarted` if the counter changed. `publish` never waits on
//! a subscriber; a subscriber that misbehaves only loses its own connection.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use serde_json::Value;

use crate::wire::{self, Message};
use crate::{Error, MAX_MESSAGE, check_topic, checkpoint, large, sock};

/// How long a new connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle connection checks that its peer is still there.
const HANGUP_CHECK: Duration = Duration::from_millis(200);
/// A request is shorter than this (EVE reads it into 256 bytes).
const REQUEST_MAX: usize = 256;
/// Subscribers served at once when the options say 0.
const DEFAULT_MAX_SUBSCRIBERS: usize = 64;

/// Options of a publication.
#[derive(Debug, Clone, Default)]
pub struct PublicationOptions {
    /// Advertised in `hello` (EVE's Persistent option); false for everything domainmgr publishes.
    pub persistent: bool,
    /// Where `pubsub-large-X` fields go for the socket: files are made in
    /// `<large_root>/<agent>/<Topic>/` (agent = the agent_dir's file name). None: such fields are
    /// sent inline.
    pub large_root: Option<PathBuf>,
    /// Most subscribers served at once (default when 0: 64); more are closed at once with a warning.
    pub max_subscribers: usize,
}

/// One published value.
#[derive(Debug, Clone)]
struct Item {
    bytes: Arc<Vec<u8>>,
    /// The parsed value, kept if it has large fields (they are moved out per connection).
    large: Option<Arc<Value>>,
}

impl Item {
    fn new(bytes: Vec<u8>) -> Item {
        let large = serde_json::from_slice::<Value>(&bytes).ok().filter(large::has_large).map(Arc::new);
        Item { bytes: Arc::new(bytes), large }
    }
}

#[derive(Debug, Default)]
struct State {
    items: BTreeMap<String, Item>,
    counter: u64,
    /// Bumped on every change; connections compare it to what they last sent from.
    generation: u64,
    closing: bool,
}

#[derive(Debug, Default)]
struct Connections {
    next: u64,
    fds: HashMap<u64, Arc<OwnedFd>>,
    closed: bool,
}

#[derive(Debug)]
struct Inner {
    topic: String,
    persistent: bool,
    dir: PathBuf,
    sock_path: PathBuf,
    /// The socket file we bound (device, inode), if it could be read back.
    sock_id: Option<(u64, u64)>,
    large_dir: Option<PathBuf>,
    max_subscribers: usize,
    listener: OwnedFd,
    /// Serializes checkpoint writes with the state changes they go with.
    writes: Mutex<()>,
    state: Mutex<State>,
    changed: Condvar,
    conns: Mutex<Connections>,
}

/// A topic published at `<agent_dir>/<Topic>.sock` with checkpoints in `<agent_dir>/<Topic>/`.
/// Send + Sync. Dropping it (or [`close`](Publication::close)) stops serving: the listener and
/// every connection close, threads are joined, the socket file is removed; the checkpoint files
/// stay (they are the checkpoint for the next start).
#[derive(Debug)]
pub struct Publication {
    inner: Arc<Inner>,
    acceptor: Option<JoinHandle<()>>,
}

impl Publication {
    /// Creates the directories (0700), takes over the socket path (if a socket file is there and a
    /// connect succeeds, another publisher is live: [`Error::InUse`]; else the stale file is
    /// removed), loads the checkpoints (every readable non-empty `<key>.json` whose key is valid,
    /// and the `restarted` counter; unreadable or empty files are skipped with a warning, left in
    /// place) and starts serving them.
    pub fn open(agent_dir: &Path, topic: &str, options: PublicationOptions) -> Result<Publication, Error> {
        check_topic(topic)?;
        let dir = agent_dir.join(topic);
        checkpoint::create_dir(&dir)?;
        let loaded = checkpoint::load(&dir, topic)?;
        let large_dir = options.large_root.as_ref().map(|root| {
            let agent = agent_dir.file_name().unwrap_or_default();
            root.join(agent).join(topic)
        });
        let sock_path = agent_dir.join(format!("{topic}.sock"));
        let max_subscribers = match options.max_subscribers {
            0 => DEFAULT_MAX_SUBSCRIBERS,
            n => n,
        };
        let listener = sock::listen(&sock_path, i32::try_from(max_subscribers).unwrap_or(i32::MAX))?;
        // What our socket file is, so that closing never removes another publisher's.
        let sock_id = std::fs::symlink_metadata(&sock_path).ok().map(|m| (m.dev(), m.ino()));
        log::debug!(
            "{topic}: serving {} keys (restart counter {}) on {}",
            loaded.items.len(),
            loaded.counter,
            sock_path.display()
        );
        let state = State {
            items: loaded.items.into_iter().map(|(k, v)| (k, Item::new(v))).collect(),
            counter: loaded.counter,
            ..State::default()
        };
        let inner = Arc::new(Inner {
            topic: topic.to_owned(),
            persistent: options.persistent,
            dir,
            sock_path,
            sock_id,
            large_dir,
            max_subscribers,
            listener,
            writes: Mutex::new(()),
            state: Mutex::new(state),
            changed: Condvar::new(),
            conns: Mutex::new(Connections::default()),
        });
        let for_thread = Arc::clone(&inner);
        let acceptor = std::thread::Builder::new()
            .name(format!("pub-{topic}"))
            .spawn(move || accept_loop(&for_thread))
            .map_err(|e| Error::io("spawn accept thread for", &inner.sock_path, e))?;
        Ok(Publication { inner, acceptor: Some(acceptor) })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.inner.topic
    }

    /// The keys loaded from checkpoints or published since; sorted.
    pub fn keys(&self) -> Vec<String> {
        self.inner.state.lock().items.keys().cloned().collect()
    }

    /// The value published under `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.state.lock().items.get(key).map(|item| item.bytes.as_ref().clone())
    }

    /// Publishes `value` (JSON bytes) under `key`: checks the key (non-empty, no '/', no NUL, not
    /// "." or "..", `key.json` at most 255 bytes) and that the value is a JSON value and its update
    /// message (large fields stripped) fits under [`MAX_MESSAGE`], writes the checkpoint
    /// atomically, then wakes every connection. An unchanged value is a no-op (no write, no message).
    pub fn publish(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        let inner = &self.inner;
        let topic = inner.topic.as_str();
        checkpoint::check_key(topic, key)?;
        let parsed: Value = serde_json::from_slice(value).map_err(|e| Error::InvalidValue {
            topic: topic.to_owned(),
            key: key.to_owned(),
            why: format!("not JSON: {e}"),
        })?;
        let travels = match &inner.large_dir {
            Some(dir) if large::has_large(&parsed) => large::estimate(topic, key, &parsed, dir)?.len(),
            _ => value.len(),
        };
        let size = wire::update_size(topic, key, travels);
        if size >= MAX_MESSAGE {
            return Err(Error::TooLarge { topic: topic.to_owned(), key: key.to_owned(), size, limit: MAX_MESSAGE });
        }
        let _writing = inner.writes.lock();
        if inner.state.lock().items.get(key).is_some_and(|item| item.bytes.as_slice() == value) {
            log::debug!("{topic}/{key}: unchanged");
            return Ok(());
        }
        checkpoint::write_atomic(&inner.dir, &format!("{key}.json"), value, inner.persistent)?;
        let item = Item { bytes: Arc::new(value.to_vec()), large: large::has_large(&parsed).then(|| Arc::new(parsed)) };
        self.change(|state| {
            state.items.insert(key.to_owned(), item);
        });
        log::debug!("{topic}/{key}: published");
        Ok(())
    }

    /// Removes the key and its checkpoint file (the directory fsynced); absent key: Ok.
    pub fn unpublish(&self, key: &str) -> Result<(), Error> {
        let inner = &self.inner;
        checkpoint::check_key(&inner.topic, key)?;
        let _writing = inner.writes.lock();
        if !inner.state.lock().items.contains_key(key) {
            return Ok(());
        }
        checkpoint::remove(&inner.dir, &format!("{key}.json"))?;
        self.change(|state| {
            state.items.remove(key);
        });
        log::debug!("{}/{key}: unpublished", inner.topic);
        Ok(())
    }

    /// The restart counter.
    pub fn restart_counter(&self) -> u64 {
        self.inner.state.lock().counter
    }

    /// Counter + 1, `restarted` file written, subscribers told.
    pub fn signal_restarted(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let _writing = inner.writes.lock();
        let counter = inner.state.lock().counter.saturating_add(1);
        checkpoint::write_atomic(&inner.dir, checkpoint::RESTARTED, counter.to_string().as_bytes(), true)?;
        self.change(|state| state.counter = counter);
        log::debug!("{}: restarted {counter}", inner.topic);
        Ok(())
    }

    /// Counter 0, `restarted` file removed (absent: fine), subscribers told nothing (EVE sends
    /// nothing for 0).
    pub fn clear_restarted(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let _writing = inner.writes.lock();
        checkpoint::remove(&inner.dir, checkpoint::RESTARTED)?;
        // Connections note the 0 (so a later 1 is sent again) but send nothing for it.
        self.change(|state| state.counter = 0);
        Ok(())
    }

    /// Subscribers connected now.
    pub fn subscribers(&self) -> usize {
        self.inner.conns.lock().fds.len()
    }

    /// Stops serving (as dropping it does).
    pub fn close(self) {
        drop(self);
    }

    fn change(&self, apply: impl FnOnce(&mut State)) {
        let mut state = self.inner.state.lock();
        apply(&mut state);
        state.generation += 1;
        drop(state);
        self.inner.changed.notify_all();
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        let inner = &self.inner;
        inner.state.lock().closing = true;
        inner.changed.notify_all();
        {
            let mut conns = inner.conns.lock();
            conns.closed = true;
            for fd in conns.fds.values() {
                sock::shutdown(fd.as_ref());
            }
        }
        // Linux makes a blocked accept() return EINVAL once the listener is shut down.
        sock::shutdown(&inner.listener);
        if let Some(acceptor) = self.acceptor.take()
            && acceptor.join().is_err()
        {
            log::error!("{}: accept thread panicked", inner.topic);
        }
        // Only our own socket file: a publisher that took the path over since keeps its own.
        let now = std::fs::symlink_metadata(&inner.sock_path).ok().map(|m| (m.dev(), m.ino()));
        if now.is_some()
            && now == inner.sock_id
            && let Err(e) = std::fs::remove_file(&inner.sock_path)
        {
            log::warn!("{}: cannot remove {}: {e}", inner.topic, inner.sock_path.display());
        }
        log::debug!("{}: closed", inner.topic);
    }
}

/// Accepts subscribers until the publication closes, one thread each; joins them all at the end.
fn accept_loop(inner: &Arc<Inner>) {
    let topic = inner.topic.as_str();
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let accepted = sock::accept(&inner.listener);
        if inner.state.lock().closing {
            break;
        }
        let fd = match accepted {
            Ok(fd) => Arc::new(fd),
            Err(e) => {
                log::error!("{topic}: accept: {e}");
                // Out of descriptors or the like: wait a little (or for close) and retry.
                let mut state = inner.state.lock();
                if !state.closing {
                    inner.changed.wait_for(&mut state, Duration::from_millis(100));
                }
                continue;
            }
        };
        threads.retain(|t| !t.is_finished());
        let id = {
            let mut conns = inner.conns.lock();
            if conns.closed {
                break;
            }
            if conns.fds.len() >= inner.max_subscribers {
                log::warn!("{topic}: already {} subscribers; closing a new one", conns.fds.len());
                continue;
            }
            conns.next += 1;
            let id = conns.next;
            conns.fds.insert(id, Arc::clone(&fd));
            id
        };
        let for_thread = Arc::clone(inner);
        let spawned = std::thread::Builder::new().name(format!("pub-{topic}-{id}")).spawn(move || {
            let who = format!("{}#{id}", for_thread.topic);
            serve(&for_thread, &fd, &who);
            for_thread.conns.lock().fds.remove(&id);
            log::debug!("{who}: connection closed");
        });
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                log::error!("{topic}: cannot start a connection thread: {e}");
                inner.conns.lock().fds.remove(&id);
            }
        }
    }
    for thread in threads {
        if thread.join().is_err() {
            log::error!("{topic}: a connection thread panicked");
        }
    }
}

/// Serves one subscriber: its request, hello, the snapshot and `complete`, then diffs until the
/// peer goes or the publication closes.
fn serve(inner: &Inner, fd: &OwnedFd, who: &str) {
    let topic = inner.topic.as_str();
    if !read_request(inner, fd, who) {
        return;
    }
    let hello = Message::Hello { topic: topic.to_owned(), persistent: inner.persistent };
    if !send(fd, &hello, who) {
        return;
    }
    let mut view: HashMap<String, Arc<Vec<u8>>> = HashMap::new();
    let mut sent_counter = 0u64;
    let mut first = true;
    loop {
        let (items, counter, generation) = {
            let state = inner.state.lock();
            if state.closing {
                return;
            }
            (state.items.clone(), state.counter, state.generation)
        };
        if !send_diff(topic, inner.large_dir.as_deref(), fd, who, &mut view, &items) {
            return;
        }
        if first {
            first = false;
            if !send(fd, &Message::Complete { topic: topic.to_owned() }, who) {
                return;
            }
        }
        if counter != sent_counter {
            if counter != 0 && !send(fd, &Message::Restarted { topic: topic.to_owned(), counter }, who) {
                return;
            }
            sent_counter = counter;
        }
        // Wait for the next change, noticing a peer that hung up meanwhile.
        let mut state = inner.state.lock();
        while state.generation == generation && !state.closing {
            if inner.changed.wait_for(&mut state, HANGUP_CHECK).timed_out() {
                drop(state);
                if sock::peer_gone(fd, who) {
                    log::debug!("{who}: subscriber hung up");
                    return;
                }
                state = inner.state.lock();
            }
        }
    }
}

/// Reads and checks the request (exactly `request <Topic>`, within [`REQUEST_TIMEOUT`]).
fn read_request(inner: &Inner, fd: &OwnedFd, who: &str) -> bool {
    if let Err(e) =
        rustix::net::sockopt::set_socket_timeout(fd, rustix::net::sockopt::Timeout::Recv, Some(REQUEST_TIMEOUT))
    {
        log::warn!("{who}: cannot set a request timeout: {e}");
    }
    let mut buf = [0u8; REQUEST_MAX];
    let len = match sock::recv(fd, &mut buf) {
        Ok(sock::Received::Message(len)) if len < REQUEST_MAX => len,
        Ok(sock::Received::Message(len) | sock::Received::Truncated(len)) => {
            log::warn!("{who}: request of {len} bytes is too long; closing");
            return false;
        }
        Ok(sock::Received::Eof) => {
            log::debug!("{who}: subscriber left before its request");
            return false;
        }
        Err(e) => {
            log::warn!("{who}: no request ({e}); closing");
            return false;
        }
    };
    match Message::decode(&buf[..len]) {
        Ok(Message::Request { topic }) if topic == inner.topic => {
            log::debug!("{who}: request");
            true
        }
        Ok(other) => {
            log::warn!("{who}: bad request ({:?} for {}); closing", kind(&other), other.topic());
            false
        }
        Err(e) => {
            log::warn!("{who}: bad request: {e}; closing");
            false
        }
    }
}

fn kind(message: &Message) -> &'static str {
    match message {
        Message::Request { .. } => "request",
        Message::Hello { .. } => "hello",
        Message::Update { .. } => "update",
        Message::Delete { .. } => "delete",
        Message::Complete { .. } => "complete",
        Message::Restarted { .. } => "restarted",
    }
}

/// Sends the deletes, then the updates, that bring `view` to `items`. A key whose update cannot be
/// made (too large, a large-field file that cannot be written) is logged and left out of the view,
/// so it is tried again on the next change. False if the connection failed.
fn send_diff(
    topic: &str,
    large_dir: Option<&Path>,
    fd: &OwnedFd,
    who: &str,
    view: &mut HashMap<String, Arc<Vec<u8>>>,
    items: &BTreeMap<String, Item>,
) -> bool {
    let mut gone: Vec<String> = view.keys().filter(|k| !items.contains_key(*k)).cloned().collect();
    gone.sort();
    for key in gone {
        view.remove(&key);
        if !send(fd, &Message::Delete { topic: topic.to_owned(), key }, who) {
            return false;
        }
    }
    for (key, item) in items {
        if view.get(key).is_some_and(|sent| Arc::ptr_eq(sent, &item.bytes) || sent == &item.bytes) {
            continue;
        }
        let value = match (&item.large, large_dir) {
            (Some(parsed), Some(dir)) => match large::write_out(topic, key, parsed, dir) {
                Ok(value) => value,
                Err(e) => {
                    log::error!("{who}: cannot send {key:?}: {e}");
                    continue;
                }
            },
            _ => item.bytes.as_ref().clone(),
        };
        let message = Message::Update { topic: topic.to_owned(), key: key.clone(), value };
        match message.encode() {
            Ok(bytes) => {
                if let Err(e) = sock::send(fd, &bytes) {
                    log::debug!("{who}: send failed: {e}");
                    return false;
                }
            }
            Err(e) => {
                log::error!("{who}: cannot send {key:?}: {e}");
                continue;
            }
        }
        view.insert(key.clone(), Arc::clone(&item.bytes));
    }
    true
}

/// Encodes and sends one message; false (logged) if that failed.
fn send(fd: &OwnedFd, message: &Message, who: &str) -> bool {
    let bytes = match message.encode() {
        Ok(bytes) => bytes,
        Err(e) => {
            log::error!("{who}: cannot encode {}: {e}", kind(message));
            return false;
        }
    };
    match sock::send(fd, &bytes) {
        Ok(()) => true,
        Err(e) => {
            log::debug!("{who}: send of {} failed: {e}", kind(message));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};

    use super::*;

    fn received(fd: &OwnedFd) -> Vec<Message> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; MAX_MESSAGE + 2];
        while let Ok((_, n)) = rustix::net::recv(fd, &mut buf[..], rustix::net::RecvFlags::DONTWAIT) {
            out.push(Message::decode(&buf[..n]).unwrap());
        }
        out
    }

    #[test]
    fn diff_sends_deletes_then_updates() {
        let (ours, theirs) =
            rustix::net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).unwrap();
        let item = |v: &str| Item::new(v.as_bytes().to_vec());
        let mut view = HashMap::new();
        let first: BTreeMap<String, Item> =
            [("a", "1"), ("b", "2"), ("z", "26")].map(|(k, v)| (k.into(), item(v))).into();
        assert!(send_diff("T", None, &ours, "test", &mut view, &first));
        assert_eq!(received(&theirs).len(), 3);
        // Same items again: nothing to send.
        assert!(send_diff("T", None, &ours, "test", &mut view, &first));
        assert!(received(&theirs).is_empty());
        let mut second = first.clone();
        second.remove("z");
        second.remove("a");
        second.insert("b".into(), item("20"));
        second.insert("c".into(), item("3"));
        assert!(send_diff("T", None, &ours, "test", &mut view, &second));
        let t = || "T".to_owned();
        assert_eq!(
            received(&theirs),
            [
                Message::Delete { topic: t(), key: "a".into() },
                Message::Delete { topic: t(), key: "z".into() },
                Message::Update { topic: t(), key: "b".into(), value: b"20".to_vec() },
                Message::Update { topic: t(), key: "c".into(), value: b"3".to_vec() },
            ]
        );
        assert_eq!(view.len(), 2);
        drop(theirs);
        assert!(!send_diff("T", None, &ours, "test", &mut view, &first), "a gone peer fails the diff");
    }
}
