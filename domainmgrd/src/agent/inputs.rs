//! The daemon's EVE inputs: each is either a file (the watcher's, for non-EVE use and tests)
//! or a topic another agent publishes over EVE's pubsub, which the daemon subscribes to as
//! EVE's agents do (a full snapshot on each connect, redials every 10 s while the publisher is
//! away, keys gone only when the publisher says so). A subscribed topic's current content is
//! kept here ([`Topic`]); the subscription thread updates it and then tells the supervisor
//! ([`Notice`]), which reads it like it reads files.
//!
//! A publisher is another root process on the node, but its content is still checked like any
//! input: at most [`MAX_KEYS`] keys are kept (more are refused with an error), and every value
//! is parsed and validated by whoever uses it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use evepubsub::{Event, Subscription, SubscriptionOptions};
use parking_lot::Mutex;

/// Most keys kept per subscribed topic (EVE runs tens of apps; this bounds memory, not use).
pub const MAX_KEYS: usize = 4096;

/// Where the EVE inputs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputMode {
    /// Files: `<config-dir>/DomainConfig/<uuid>.json`, the adapter inputs' `global.json`, the
    /// settings file (watched with inotify).
    Files,
    /// EVE's pubsub sockets (`<agent-dir>/<Topic>.sock`), as EVE's agents subscribe.
    Pubsub {
        /// Wait between dials while a publisher is away (EVE: 10 s).
        redial: Duration,
        /// Where large fields' files are (EVE: `/persist/pubsub-large`); only files there are read.
        large_root: Option<PathBuf>,
    },
}

/// A subscribed topic's current content.
#[derive(Debug)]
pub struct Topic {
    /// `<agent>/<Topic>`, for messages.
    name: String,
    /// Where the publisher's checkpoint files are, to name a key's origin in messages.
    checkpoint_dir: PathBuf,
    items: Mutex<BTreeMap<String, Vec<u8>>>,
    synchronized: AtomicBool,
    restarted: AtomicU64,
}

impl Topic {
    fn new(agent_dir: &Path, topic: &str) -> Topic {
        let agent = agent_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Topic {
            name: format!("{agent}/{topic}"),
            checkpoint_dir: agent_dir.join(topic),
            items: Mutex::default(),
            synchronized: AtomicBool::new(false),
            restarted: AtomicU64::new(0),
        }
    }

    /// Tests only: a topic as if its publisher had published `items`.
    #[cfg(test)]
    pub(crate) fn published(agent_dir: &Path, topic: &str, items: &[(&str, Vec<u8>)]) -> Topic {
        let t = Topic::new(agent_dir, topic);
        for (key, value) in items {
            t.apply(Event::Update { key: (*key).to_string(), value: value.clone() });
        }
        t
    }

    /// `<agent>/<Topic>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of `key`, if published.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.items.lock().get(key).cloned()
    }

    /// The keys published now, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.items.lock().keys().cloned().collect()
    }

    /// Whether the publisher has sent a whole snapshot at least once (until then, a key's
    /// absence means nothing).
    pub fn synchronized(&self) -> bool {
        self.synchronized.load(Ordering::SeqCst)
    }

    /// The publisher's restart counter as last sent (0: none).
    pub fn restarted(&self) -> u64 {
        self.restarted.load(Ordering::SeqCst)
    }

    /// A name for `key`'s value in messages: the publisher's checkpoint file of it, which
    /// holds the same content on an EVE node.
    pub fn origin(&self, key: &str) -> PathBuf {
        self.checkpoint_dir.join(format!("{key}.json"))
    }

    /// Applies a subscription event; returns what the daemon must hear of it.
    fn apply(&self, event: Event) -> Option<Notice> {
        match event {
            Event::Connected { .. } => {
                log::info!("{}: connected to its publisher", self.name);
                None
            }
            Event::Disconnected => {
                log::warn!("{}: its publisher went away; keeping what it published, redialing", self.name);
                None
            }
            Event::Update { key, value } => {
                let mut items = self.items.lock();
                if !items.contains_key(&key) && items.len() >= MAX_KEYS {
                    log::error!("{}: refusing key {key:?}: more than {MAX_KEYS} keys", self.name);
                    return None;
                }
                if items.get(&key) == Some(&value) {
                    return None;
                }
                items.insert(key.clone(), value);
                Some(Notice::Updated(key))
            }
            Event::Delete { key } => self.items.lock().remove(&key).map(|_| Notice::Deleted(key)),
            Event::Synchronized => {
                let first = !self.synchronized.swap(true, Ordering::SeqCst);
                if first {
                    log::info!("{}: synchronized ({} keys)", self.name, self.items.lock().len());
                }
                Some(Notice::Synchronized)
            }
            Event::Restarted(n) => {
                let before = self.restarted.swap(n, Ordering::SeqCst);
                (before != n).then_some(Notice::Restarted(n))
            }
        }
    }
}

/// What a subscription tells the daemon, after the topic's content changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A key was added or changed.
    Updated(String),
    /// A key was deleted by the publisher.
    Deleted(String),
    /// The publisher sent its whole snapshot.
    Synchronized,
    /// The publisher's restart counter changed.
    Restarted(u64),
}

/// A running subscription and the topic it keeps.
#[derive(Debug)]
pub struct Subscribed {
    /// The topic's content.
    pub topic: Arc<Topic>,
    subscription: Option<Subscription>,
}

impl Subscribed {
    /// Subscribes to `<agent_dir>/<topic>.sock`; `notify` hears of every change, after the
    /// topic's content has it.
    pub fn start(
        agent_dir: &Path,
        topic: &str,
        redial: Duration,
        large_root: Option<PathBuf>,
        notify: impl Fn(Notice) + Send + 'static,
    ) -> Subscribed {
        let state = Arc::new(Topic::new(agent_dir, topic));
        let for_thread = Arc::clone(&state);
        let options = SubscriptionOptions { redial, large_root };
        log::info!("subscribing to {} at {}", state.name, agent_dir.join(format!("{topic}.sock")).display());
        let subscription = Subscription::start(agent_dir, topic, options, move |event| {
            if let Some(notice) = for_thread.apply(event) {
                notify(notice);
            }
        });
        Subscribed { topic: state, subscription: Some(subscription) }
    }

    /// Ends the subscription (the topic keeps its last content).
    pub fn stop(mut self) {
        if let Some(s) = self.subscription.take() {
            s.stop();
        }
    }
}

/// A single-key input (`global`): a file, or a subscribed topic.
#[derive(Debug, Clone)]
pub enum Input {
    /// A file (absent: nothing published yet).
    File(PathBuf),
    /// The `global` key of a subscribed topic.
    Topic(Arc<Topic>),
}

impl Input {
    /// Its current bytes (`None`: nothing yet), or why they cannot be read.
    pub fn read(&self) -> Result<Option<Vec<u8>>, String> {
        match self {
            Input::File(path) => match std::fs::read(path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("{}: {e}", path.display())),
            },
            Input::Topic(topic) => Ok(topic.get("global")),
        }
    }

    /// Its name in messages: the file, or the publisher's checkpoint file of `global`.
    pub fn origin(&self) -> PathBuf {
        match self {
            Input::File(path) => path.clone(),
            Input::Topic(topic) => topic.origin("global"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_passes_on_changes_only() {
        let t = Topic::new(Path::new("/run/zedmanager"), "DomainConfig");
        assert_eq!(t.name(), "zedmanager/DomainConfig");
        assert_eq!(t.origin("k"), Path::new("/run/zedmanager/DomainConfig/k.json"));
        let update = |v: &str| Event::Update { key: "k".into(), value: v.as_bytes().to_vec() };
        assert_eq!(t.apply(update("1")), Some(Notice::Updated("k".into())));
        assert_eq!(t.apply(update("1")), None, "the same value again (a reconnect's snapshot)");
        assert!(!t.synchronized());
        assert_eq!(t.apply(Event::Synchronized), Some(Notice::Synchronized));
        assert!(t.synchronized());
        assert_eq!(t.apply(Event::Disconnected), None);
        assert_eq!(t.get("k").as_deref(), Some(&b"1"[..]), "a lost publisher's keys stay");
        assert_eq!(t.apply(Event::Restarted(2)), Some(Notice::Restarted(2)));
        assert_eq!(t.apply(Event::Restarted(2)), None);
        assert_eq!(t.apply(Event::Delete { key: "k".into() }), Some(Notice::Deleted("k".into())));
        assert_eq!(t.apply(Event::Delete { key: "k".into() }), None);
    }

    #[test]
    fn a_topic_keeps_at_most_max_keys() {
        let t = Topic::new(Path::new("/run/a"), "T");
        for i in 0..MAX_KEYS {
            assert!(t.apply(Event::Update { key: i.to_string(), value: b"{}".to_vec() }).is_some());
        }
        assert_eq!(t.apply(Event::Update { key: "one more".into(), value: b"{}".to_vec() }), None);
        assert_eq!(t.keys().len(), MAX_KEYS);
        assert!(t.apply(Event::Update { key: "0".into(), value: b"[]".to_vec() }).is_some(), "changes still pass");
    }
}
