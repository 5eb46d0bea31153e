//! `PeerPublisher`: a deliberately simple publisher of one topic, behaving as EVE's socketdriver
//! does: it serves `<agent_dir>/<Topic>.sock`, each connection in its own thread with its own view
//! (hello, snapshot, complete, restarted, then deletes and updates per change), and writes the
//! checkpoint files `<agent_dir>/<Topic>/<key>.json` and `restarted`. Also the entry point to a
//! raw publisher for bad-peer tests.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder};
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::codec::{self, Msg};
use crate::large;
use crate::wire::{self, RawListener, Recv};

/// How often idle threads look up from their waits (for a stop, or a subscriber gone).
const TICK: Duration = Duration::from_millis(20);

/// One published value: its JSON inline (the bytes given), and where its large fields go (if they
/// travel as files).
#[derive(Debug, Clone, PartialEq)]
struct Item {
    json: String,
    large_root: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct State {
    items: BTreeMap<String, Item>,
    restarted: u64,
    version: u64,
}

#[derive(Debug)]
struct Shared {
    agent: String,
    topic: String,
    persistent: bool,
    checkpoint_dir: PathBuf,
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    live: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A publisher of one topic, serving any number of subscribers. Dropping it closes it.
#[derive(Debug)]
pub struct PeerPublisher {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    sock_path: PathBuf,
}

/// Creates `dir` (and missing parents) with mode 0700.
pub(crate) fn make_dir(dir: &Path) {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .unwrap_or_else(|e| panic!("eve-peer: creating {}: {e}", dir.display()));
}

/// The agent's name: the last component of its directory.
pub(crate) fn agent_name(agent_dir: &Path) -> String {
    agent_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Writes `bytes` to `path` atomically (a temporary file renamed over it).
fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-eve-peer");
    fs::write(&tmp, bytes).unwrap_or_else(|e| panic!("eve-peer: writing {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("eve-peer: renaming to {}: {e}", path.display()));
}

impl PeerPublisher {
    /// Serves `topic` at `<agent_dir>/<topic>.sock` (creating `agent_dir` and the checkpoint
    /// directory `<agent_dir>/<topic>` mode 0700, replacing a stale socket file), announcing
    /// `persistent` in its hellos. Panics if it cannot.
    pub fn serve(agent_dir: &Path, topic: &str, persistent: bool) -> PeerPublisher {
        make_dir(agent_dir);
        let checkpoint_dir = agent_dir.join(topic);
        make_dir(&checkpoint_dir);
        let sock_path = agent_dir.join(format!("{topic}.sock"));
        wire::remove_stale(&sock_path).unwrap_or_else(|e| panic!("eve-peer: {}: {e}", sock_path.display()));
        let listener =
            wire::listen_at(&sock_path).unwrap_or_else(|e| panic!("eve-peer: listen {}: {e}", sock_path.display()));
        let shared = Arc::new(Shared {
            agent: agent_name(agent_dir),
            topic: topic.to_owned(),
            persistent,
            checkpoint_dir,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::spawn(move || accept_loop(&s, &listener));
        PeerPublisher { shared, accept: Some(accept), sock_path }
    }

    /// A raw publisher for `topic` at `<agent_dir>/<topic>.sock` (creating `agent_dir` 0700): the
    /// test accepts connections and speaks bytes itself.
    pub fn raw(agent_dir: &Path, topic: &str) -> RawListener {
        make_dir(agent_dir);
        let path = agent_dir.join(format!("{topic}.sock"));
        RawListener::listen(&path).unwrap_or_else(|e| panic!("eve-peer: listen {}: {e}", path.display()))
    }

    /// The socket's path.
    pub fn socket_path(&self) -> &Path {
        &self.sock_path
    }

    /// The checkpoint directory, `<agent_dir>/<topic>`.
    pub fn checkpoint_dir(&self) -> &Path {
        &self.shared.checkpoint_dir
    }

    /// Publishes `json` (which must be JSON) under `key`, as is.
    pub fn set(&self, key: &str, json: &str) {
        self.put(key, json, None);
    }

    /// Publishes `json` under `key`, its `pubsub-large-X` fields travelling as files under
    /// `<large_root>/<agent>/<topic>/` (one file per field per subscriber per send). The checkpoint
    /// carries them inline.
    pub fn set_large(&self, key: &str, json: &str, large_root: &Path) {
        self.put(key, json, Some(large_root.to_path_buf()));
    }

    fn put(&self, key: &str, json: &str, large_root: Option<PathBuf>) {
        if let Err(e) = serde_json::from_str::<Value>(json) {
            panic!("eve-peer: set({key:?}): not JSON: {e}: {json}");
        }
        write_atomic(&self.shared.checkpoint_dir.join(format!("{key}.json")), json.as_bytes());
        let mut st = self.shared.state();
        st.items.insert(key.to_owned(), Item { json: json.to_owned(), large_root });
        st.version += 1;
        self.shared.changed.notify_all();
    }

    /// Withdraws `key` (and its checkpoint file).
    pub fn remove(&self, key: &str) {
        let _ = fs::remove_file(self.shared.checkpoint_dir.join(format!("{key}.json")));
        let mut st = self.shared.state();
        st.items.remove(key);
        st.version += 1;
        self.shared.changed.notify_all();
    }

    /// Sets the restart counter: written to the `restarted` file (removed when 0) and sent to
    /// subscribers as `restarted <topic> <n>` when it changes.
    pub fn set_restarted(&self, n: u64) {
        let file = self.shared.checkpoint_dir.join("restarted");
        if n == 0 {
            let _ = fs::remove_file(&file);
        } else {
            write_atomic(&file, n.to_string().as_bytes());
        }
        let mut st = self.shared.state();
        st.restarted = n;
        st.version += 1;
        self.shared.changed.notify_all();
    }

    /// How many subscribers are being served now.
    pub fn connections(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }

    /// Stops serving: closes every connection and removes the socket file (checkpoints stay).
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
        let _ = fs::remove_file(&self.sock_path);
    }
}

impl Drop for PeerPublisher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &OwnedFd) {
    while !shared.stop.load(Ordering::SeqCst) {
        match wire::accept_within(listener, TICK) {
            Ok(Some(conn)) => {
                shared.live.fetch_add(1, Ordering::SeqCst);
                let s = Arc::clone(shared);
                let t = std::thread::spawn(move || {
                    serve_conn(&s, &conn);
                    s.live.fetch_sub(1, Ordering::SeqCst);
                });
                shared.threads.lock().unwrap_or_else(PoisonError::into_inner).push(t);
            }
            Ok(None) => {}
            Err(e) => panic!("eve-peer: accept on {}: {e}", shared.topic),
        }
    }
}

/// Serves one subscriber until it leaves, errs, or the publisher stops.
fn serve_conn(shared: &Shared, conn: &OwnedFd) {
    let topic = &shared.topic;
    let Ok(Recv::Msg(req)) = wire::recv_msg(conn, Duration::from_secs(10)) else { return };
    if codec::parse_strict(&req, topic) != Ok(Msg::Request) {
        return; // a bad request closes this connection only
    }
    if wire::send_msg(conn, codec::hello(topic, shared.persistent).as_bytes()).is_err() {
        return;
    }
    let large_dir = |root: &Path| large::large_dir(root, &shared.agent, topic);
    let mut view: BTreeMap<String, Item> = BTreeMap::new();
    let mut sent_restarted = 0u64;
    let mut sent_complete = false;
    let mut seen = None;
    loop {
        let (items, restarted) = {
            let mut st = shared.state();
            if seen == Some(st.version) {
                st = shared.changed.wait_timeout(st, TICK).unwrap_or_else(PoisonError::into_inner).0;
            }
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            if seen == Some(st.version) {
                drop(st);
                if wire::peer_closed(conn) {
                    return;
                }
                continue;
            }
            seen = Some(st.version);
            (st.items.clone(), st.restarted)
        };
        let gone: Vec<String> = view.keys().filter(|k| !items.contains_key(*k)).cloned().collect();
        for key in gone {
            view.remove(&key);
            if wire::send_msg(conn, codec::delete(topic, &key).as_bytes()).is_err() {
                return;
            }
        }
        for (key, item) in items {
            if view.get(&key) == Some(&item) {
                continue;
            }
            let bytes = match &item.large_root {
                Some(root) => {
                    let value: Value = serde_json::from_str(&item.json).unwrap_or_default();
                    let wire_value = large::to_wire(&value, &large_dir(root))
                        .unwrap_or_else(|e| panic!("eve-peer: writing large fields of {key:?}: {e}"));
                    serde_json::to_vec(&wire_value).unwrap_or_default()
                }
                None => item.json.clone().into_bytes(),
            };
            if wire::send_msg(conn, codec::update(topic, &key, &bytes).as_bytes()).is_err() {
                return;
            }
            view.insert(key, item);
        }
        if !sent_complete {
            if wire::send_msg(conn, codec::complete(topic).as_bytes()).is_err() {
                return;
            }
            sent_complete = true;
        }
        if restarted != sent_restarted {
            if wire::send_msg(conn, codec::restarted(topic, restarted).as_bytes()).is_err() {
                return;
            }
            sent_restarted = restarted;
        }
    }
}
