//! End-to-end tests of a [`Publication`] and its subscribers in one process: real sockets and
//! checkpoint files in tempfile dirs, raw peers that misbehave, and waits on conditions with
//! deadlines (never sleeps).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::wire::Message;
use crate::{Error, Event, Publication, PublicationOptions, Subscription, SubscriptionOptions, sock};

const DEADLINE: Duration = Duration::from_secs(10);

/// Events a subscription passed on, with a way to wait for them.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<(Mutex<Vec<Event>>, Condvar)>);

impl Log {
    fn push(&self, event: Event) {
        self.0.0.lock().push(event);
        self.0.1.notify_all();
    }

    fn events(&self) -> Vec<Event> {
        self.0.0.lock().clone()
    }

    /// Waits until `done` holds for the events so far; panics at the deadline.
    pub(crate) fn wait(&self, what: &str, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + DEADLINE;
        let mut events = self.0.0.lock();
        while !done(&events) {
            assert!(
                !self.0.1.wait_until(&mut events, deadline).timed_out(),
                "timed out waiting for {what}: {events:?}"
            );
        }
        events.clone()
    }

    fn wait_count(&self, what: &str, want: impl Fn(&Event) -> bool, n: usize) -> Vec<Event> {
        self.wait(what, |events| events.iter().filter(|e| want(e)).count() >= n)
    }
}

/// Waits until `done()` holds, polling; panics at the deadline.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

pub(crate) fn subscribe(dir: &Path, topic: &str, options: SubscriptionOptions) -> (Subscription, Log) {
    let log = Log::default();
    let sink = log.clone();
    (Subscription::start(dir, topic, options, move |e| sink.push(e)), log)
}

fn quick() -> SubscriptionOptions {
    SubscriptionOptions { redial: Duration::from_millis(20), large_root: None }
}

fn update(key: &str, value: &str) -> Event {
    Event::Update { key: key.into(), value: value.as_bytes().to_vec() }
}

fn synced(events: &[Event]) -> bool {
    events.contains(&Event::Synchronized)
}

/// The key → value map a subscriber would hold after `events`.
fn mirror(events: &[Event]) -> BTreeMap<String, Vec<u8>> {
    let mut map = BTreeMap::new();
    for e in events {
        match e {
            Event::Update { key, value } => {
                map.insert(key.clone(), value.clone());
            }
            Event::Delete { key } => {
                map.remove(key);
            }
            _ => {}
        }
    }
    map
}

fn contents(publication: &Publication) -> BTreeMap<String, Vec<u8>> {
    publication.keys().into_iter().map(|k| (k.clone(), publication.get(&k).unwrap())).collect()
}

/// A raw peer: connects and sends a request of its own making.
fn raw(dir: &Path, topic: &str, request: &[u8]) -> OwnedFd {
    let fd = sock::connect(&dir.join(format!("{topic}.sock"))).unwrap();
    match sock::send(&fd, request) {
        // The publisher may close a connection it refuses before our request is sent.
        Ok(()) | Err(rustix::io::Errno::PIPE | rustix::io::Errno::CONNRESET) => fd,
        Err(e) => panic!("send: {e}"),
    }
}

fn raw_recv(fd: &OwnedFd) -> Option<Message> {
    let mut buf = vec![0u8; 70_000];
    match sock::recv(fd, &mut buf) {
        Ok(sock::Received::Message(n)) => Some(Message::decode(&buf[..n]).unwrap()),
        // Closed, with or without our request unread.
        Ok(sock::Received::Eof) | Err(rustix::io::Errno::CONNRESET) => None,
        other => panic!("{other:?}"),
    }
}

#[test]
fn snapshot_then_complete_then_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Publication::open(tmp.path(), "DomainStatus", PublicationOptions::default()).unwrap();
    p.publish("b", br#"{"v":2}"#).unwrap();
    p.publish("a", br#"{"v":1}"#).unwrap();
    p.signal_restarted().unwrap();
    assert_eq!(p.keys(), ["a", "b"]);
    assert_eq!(std::fs::read(tmp.path().join("DomainStatus/a.json")).unwrap(), br#"{"v":1}"#);
    assert_eq!(std::fs::read(tmp.path().join("DomainStatus/restarted")).unwrap(), b"1");
    let (_sub, log) = subscribe(tmp.path(), "DomainStatus", quick());
    let events = log.wait("restarted", |e| e.contains(&Event::Restarted(1)));
    assert_eq!(
        events,
        [
            Event::Connected { persistent: false },
            update("a", r#"{"v":1}"#),
            update("b", r#"{"v":2}"#),
            Event::Synchronized,
            Event::Restarted(1)
        ]
    );
    wait_until("one subscriber", || p.subscribers() == 1);
    p.clear_restarted().unwrap();
    assert!(!tmp.path().join("DomainStatus/restarted").exists());
    p.clear_restarted().unwrap();
    p.signal_restarted().unwrap();
    log.wait_count("restarted again", |e| *e == Event::Restarted(1), 2);
    assert!(!log.events().contains(&Event::Restarted(0)), "nothing is sent for 0");
}

#[test]
fn diffs_follow_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Publication::open(tmp.path(), "T", PublicationOptions::default()).unwrap();
    p.publish("a", b"1").unwrap();
    p.publish("b", b"2").unwrap();
    let (_sub, log) = subscribe(tmp.path(), "T", quick());
    log.wait("sync", synced);
    p.publish("c", b"3").unwrap();
    p.publish("a", b"10").unwrap();
    p.publish("a", b"10").unwrap(); // unchanged: nothing sent
    p.unpublish("b").unwrap();
    p.unpublish("b").unwrap(); // absent: fine
    p.unpublish("never").unwrap();
    assert!(!tmp.path().join("T/b.json").exists());
    let events =
        log.wait("all changes", |e| e.contains(&Event::Delete { key: "b".into() }) && mirror(e) == contents(&p));
    assert_eq!(events.iter().filter(|e| **e == update("a", "10")).count(), 1, "{events:?}");
    assert!(!events.contains(&Event::Disconnected));
    p.publish("d", b"4").unwrap();
    log.wait("d", |e| e.contains(&update("d", "4")));
}

#[test]
fn publish_refuses_bad_keys_and_values() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Publication::open(tmp.path(), "T", PublicationOptions::default()).unwrap();
    for key in ["", "a/b", ".", "..", "a\0"] {
        assert!(matches!(p.publish(key, b"1"), Err(Error::InvalidKey { .. })), "{key:?}");
    }
    assert!(matches!(p.publish("k", b"{not json"), Err(Error::InvalidValue { .. })));
    assert!(matches!(p.publish("k", b""), Err(Error::InvalidValue { .. })));
    let big = format!("\"{}\"", "x".repeat(50_000));
    assert!(matches!(p.publish("k", big.as_bytes()), Err(Error::TooLarge { .. })));
    assert!(p.keys().is_empty());
    assert!(matches!(Publication::open(tmp.path(), "a b", PublicationOptions::default()), Err(Error::InvalidTopic(_))));
}

#[test]
fn two_subscribers_have_their_own_views() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Publication::open(tmp.path(), "T", PublicationOptions::default()).unwrap();
    let (_first, log1) = subscribe(tmp.path(), "T", quick());
    log1.wait("first sync", synced);
    p.publish("a", b"1").unwrap();
    p.publish("b", b"2").unwrap();
    log1.wait("a and b", |e| mirror(e).len() == 2);
    p.unpublish("a").unwrap();
    log1.wait("delete a", |e| e.contains(&Event::Delete { key: "a".into() }));
    let (_second, log2) = subscribe(tmp.path(), "T", quick());
    let events = log2.wait("second sync", synced);
    assert_eq!(events, [Event::Connected { persistent: false }, update("b", "2"), Event::Synchronized]);
    p.publish("c", b"3").unwrap();
    log1.wait("c", |e| e.contains(&update("c", "3")));
    log2.wait("c", |e| e.contains(&update("c", "3")));
    assert_eq!(mirror(&log1.events()), contents(&p));
    assert_eq!(mirror(&log2.events()), contents(&p));
    assert!(!log2.events().iter().any(|e| matches!(e, Event::Delete { .. })));
}

#[test]
fn reconnects_to_a_reopened_publication() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = PublicationOptions { persistent: true, ..PublicationOptions::default() };
    let p = Publication::open(tmp.path(), "T", opts.clone()).unwrap();
    p.publish("a", b"1").unwrap();
    p.publish("b", b"2").unwrap();
    p.signal_restarted().unwrap();
    p.signal_restarted().unwrap();
    let (_sub, log) = subscribe(tmp.path(), "T", quick());
    log.wait("restarted 2", |e| e.contains(&Event::Restarted(2)));
    p.close();
    assert!(!tmp.path().join("T.sock").exists());
    log.wait("disconnected", |e| e.contains(&Event::Disconnected));
    let p = Publication::open(tmp.path(), "T", opts).unwrap();
    assert_eq!(p.keys(), ["a", "b"]);
    assert_eq!(p.restart_counter(), 2);
    let events = log.wait("second restarted", |e| e.iter().filter(|e| **e == Event::Restarted(2)).count() == 2);
    let again = events.iter().position(|e| *e == Event::Disconnected).unwrap();
    assert_eq!(
        events[again..],
        [
            Event::Disconnected,
            Event::Connected { persistent: true },
            update("a", "1"),
            update("b", "2"),
            Event::Synchronized,
            Event::Restarted(2)
        ]
    );
    p.unpublish("b").unwrap();
    log.wait("delete b", |e| e.contains(&Event::Delete { key: "b".into() }));
}

#[test]
fn large_fields_travel_in_files() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("zedmanager");
    let root = tmp.path().join("large");
    let opts = PublicationOptions { large_root: Some(root.clone()), ..PublicationOptions::default() };
    let p = Publication::open(&agent, "T", opts).unwrap();
    let big = "y".repeat(200_000);
    let value = format!(r#"{{"n":1,"pubsub-large-Data":"{big}","l":[{{"pubsub-large-In":2}}]}}"#);
    p.publish("k", value.as_bytes()).unwrap();
    assert_eq!(std::fs::read(agent.join("T/k.json")).unwrap(), value.as_bytes(), "checkpoint inline");
    let want: serde_json::Value = serde_json::from_str(&value).unwrap();

    let options = SubscriptionOptions { large_root: Some(root.clone()), ..quick() };
    let (sub, log) = subscribe(&agent, "T", options);
    let events = log.wait("sync", synced);
    let got: serde_json::Value = serde_json::from_slice(&mirror(&events)["k"]).unwrap();
    assert_eq!(got, want);
    let files = root.join("zedmanager/T");
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 0, "files deleted after read");
    sub.stop();

    // A subscriber whose large root does not hold the path leaves the field as sent.
    let elsewhere = tmp.path().join("elsewhere");
    let options = SubscriptionOptions { large_root: Some(elsewhere), ..quick() };
    let (_sub, log) = subscribe(&agent, "T", options);
    let events = log.wait("sync", synced);
    let got: serde_json::Value = serde_json::from_slice(&mirror(&events)["k"]).unwrap();
    let path: String = serde_json::from_str(got["pubsub-file-Data"].as_str().unwrap()).unwrap();
    assert!(Path::new(&path).starts_with(&files), "{path}");
    assert!(Path::new(&path).exists(), "a refused file is not touched");
    assert!(got.get("pubsub-large-Data").is_none());
}

#[test]
fn bad_requests_close_only_their_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Publication::open(tmp.path(), "T", PublicationOptions::default()).unwrap();
    p.publish("a", b"1").unwrap();
    let (_sub, log) = subscribe(tmp.path(), "T", quick());
    log.wait("sync", synced);
    let long = format!("request T{}", " ".repeat(300));
    for bad in [&b"request Other"[..], b"request T T", b"garbage", b"hello T true", long.as_bytes(), b"request  T"] {
        let fd = raw(tmp.path(), "T", bad);
        assert_eq!(raw_recv(&fd), None, "{:?} closed", String::from_utf8_lossy(bad));
    }
    // A good raw peer is served.
    let fd = raw(tmp.path(), "T", b"request T");
    assert_eq!(raw_recv(&fd), Some(Message::Hello { topic: "T".into(), persistent: false }));
    assert!(matches!(raw_recv(&fd), Some(Message::Update { .. })));
    assert_eq!(raw_recv(&fd), Some(Message::Complete { topic: "T".into() }));
    p.publish("b", b"2").unwrap();
    log.wait("b", |e| e.contains(&update("b", "2")));
    assert!(!log.events().contains(&Event::Disconnected));
    // Hung-up peers do not pile up.
    drop(fd);
    wait_until("only the subscription left", || p.subscribers() == 1);
}

#[test]
fn a_stuck_subscriber_blocks_nobody() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Publication::open(tmp.path(), "T", PublicationOptions::default()).unwrap();
    let stuck = raw(tmp.path(), "T", b"request T");
    let silent = sock::connect(&tmp.path().join("T.sock")).unwrap(); // never even requests
    let (_sub, log) = subscribe(tmp.path(), "T", quick());
    log.wait("sync", synced);
    let value = format!("\"{}\"", "z".repeat(40_000));
    let started = Instant::now();
    for i in 0..60 {
        p.publish(&format!("k{i}"), value.as_bytes()).unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(5), "publish is not held up");
    log.wait("all keys", |e| mirror(e).len() == 60);
    wait_until("three connections", || p.subscribers() == 3);
    let started = Instant::now();
    p.close(); // the stuck connection is blocked in send; close must still be prompt
    assert!(started.elapsed() < Duration::from_secs(2), "close took {:?}", started.elapsed());
    drop((stuck, silent));
}

#[test]
fn max_subscribers_are_enforced() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = PublicationOptions { max_subscribers: 1, ..PublicationOptions::default() };
    let p = Publication::open(tmp.path(), "T", opts).unwrap();
    let first = raw(tmp.path(), "T", b"request T");
    assert!(matches!(raw_recv(&first), Some(Message::Hello { .. })));
    let second = raw(tmp.path(), "T", b"request T");
    assert_eq!(raw_recv(&second), None);
    assert_eq!(p.subscribers(), 1);
}

#[test]
fn socket_path_is_taken_over_unless_live() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Publication::open(tmp.path(), "T", PublicationOptions::default()).unwrap();
    assert!(matches!(Publication::open(tmp.path(), "T", PublicationOptions::default()), Err(Error::InUse(_))));
    drop(p);
    // A stale socket file (nobody listening) is replaced.
    let stale = sock::listen(&tmp.path().join("T.sock"), 1).unwrap();
    drop(stale);
    assert!(tmp.path().join("T.sock").exists());
    let p = Publication::open(tmp.path(), "T", PublicationOptions::default()).unwrap();
    let fd = raw(tmp.path(), "T", b"request T");
    assert!(matches!(raw_recv(&fd), Some(Message::Hello { .. })));
    drop(p);
}

#[test]
fn closing_leaves_a_socket_file_another_publisher_took_over() {
    let tmp = tempfile::tempdir().unwrap();
    let old = Publication::open(tmp.path(), "T", PublicationOptions::default()).unwrap();
    // A new publisher (its process holds the agent's lock) takes the path over.
    std::fs::remove_file(tmp.path().join("T.sock")).unwrap();
    let new = Publication::open(tmp.path(), "T", PublicationOptions::default()).unwrap();
    drop(old);
    let fd = raw(tmp.path(), "T", b"request T");
    assert!(matches!(raw_recv(&fd), Some(Message::Hello { .. })), "the new publisher's socket is still there");
    drop(new);
    assert!(!tmp.path().join("T.sock").exists(), "its own socket file goes with it");
}

#[test]
fn close_and_stop_are_prompt() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Publication::open(tmp.path(), "T", PublicationOptions::default()).unwrap();
    let slow = SubscriptionOptions { redial: Duration::from_secs(3600), large_root: None };
    let (connected, log) = subscribe(tmp.path(), "T", slow.clone());
    log.wait("sync", synced);
    let started = Instant::now();
    connected.stop(); // blocked in recv
    p.close(); // blocked in accept
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    let (waiting, _log) = subscribe(&tmp.path().join("nobody"), "T", slow);
    let started = Instant::now();
    drop(waiting); // in its hour-long redial wait
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
}

#[test]
fn handles_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Publication>();
    send_sync::<Subscription>();
    send_sync::<Error>();
}
