//! Conformance of `evepubsub` to EVE's socketdriver protocol, judged by the independent
//! `eve-peer`: a `Publication` seen by the strict `PeerSubscriber` (framing, handshake, snapshot,
//! diffs, many subscribers, bad requests, checkpoint files, restart, large fields, the size
//! bound), and a `Subscription` fed by `PeerPublisher` and by raw, misbehaving publishers
//! (snapshot events, diffs, reconnects, large fields, garbage, hostile large-field paths).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use eve_peer::{Msg, PeerPublisher, PeerSubscriber, RawConn, RawListener, wait_for};
use evepubsub::{Event, MAX_MESSAGE, Publication, PublicationOptions, Subscription, SubscriptionOptions};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(5);
const TOPIC: &str = "DomainStatus";
const REDIAL: Duration = Duration::from_millis(100);

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn open(agent: &Path, persistent: bool, large_root: Option<&Path>) -> Publication {
    let options = PublicationOptions { persistent, large_root: large_root.map(Path::to_path_buf), max_subscribers: 64 };
    Publication::open(agent, TOPIC, options).unwrap()
}

fn v(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Publication, seen by PeerSubscriber.
// ---------------------------------------------------------------------------------------------

#[test]
fn pub_byte_exact_handshake() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let p = open(&agent, false, None);
    assert_eq!(p.topic(), TOPIC);
    p.publish("k1", br#"{"a":1}"#).unwrap();
    let c = RawConn::dial(&agent.join("DomainStatus.sock")).unwrap();
    c.send(b"request DomainStatus").unwrap();
    assert_eq!(c.recv(T).unwrap(), b"hello DomainStatus false");
    // base64("k1") = azE=, base64({"a":1}) = eyJhIjoxfQ== (by hand).
    assert_eq!(c.recv(T).unwrap(), b"update DomainStatus azE= eyJhIjoxfQ==");
    assert_eq!(c.recv(T).unwrap(), b"complete DomainStatus");
    p.signal_restarted().unwrap();
    assert_eq!(c.recv(T).unwrap(), b"restarted DomainStatus 1");
    p.unpublish("k1").unwrap();
    assert_eq!(c.recv(T).unwrap(), b"delete DomainStatus azE=");
}

#[test]
fn pub_snapshot_persistent_hello_and_content() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let p = open(&agent, true, None);
    p.publish("dom-1", br#"{"State":2,"Name":"vm one"}"#).unwrap();
    p.publish("dom 2 é", br#"{"State":3}"#).unwrap();
    p.publish("dom-3", br#"{"List":[1,2,3],"Nested":{"x":null}}"#).unwrap();
    let mut s = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    let (persistent, items, restarted) = s.snapshot(T);
    assert!(persistent, "hello carries true for a persistent topic");
    assert_eq!(restarted, None, "no restarted message while the counter is 0");
    let mut want: BTreeMap<String, Value> = BTreeMap::new();
    for k in p.keys() {
        want.insert(k.clone(), serde_json::from_slice(&p.get(&k).unwrap()).unwrap());
    }
    assert_eq!(want.keys().collect::<Vec<_>>(), ["dom 2 é", "dom-1", "dom-3"]);
    assert_eq!(items, want);
    assert!(matches!(s.messages()[0], Msg::Hello { persistent: true }));
    assert_eq!(s.messages().last(), Some(&Msg::Complete));
    // The value travels byte for byte.
    let sent = s.messages().iter().find_map(|m| match m {
        Msg::Update { key, value } if key == "dom-1" => Some(value.clone()),
        _ => None,
    });
    assert_eq!(sent.unwrap(), br#"{"State":2,"Name":"vm one"}"#);
}

#[test]
fn pub_restarted_after_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let p = open(&agent, false, None);
    p.publish("a", br#"{"v":1}"#).unwrap();
    let mut early = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    assert_eq!(early.snapshot(T).2, None);
    p.signal_restarted().unwrap();
    assert_eq!(p.restart_counter(), 1);
    assert!(early.wait_for(T, |v| v.restarted == Some(1)), "a live subscriber gets restarted 1");
    let mut late = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    let (_, items, restarted) = late.snapshot(T);
    assert_eq!(items.len(), 1);
    assert_eq!(restarted, Some(1));
    let n = late.messages().len();
    assert_eq!(late.messages()[n - 2], Msg::Complete, "restarted comes right after complete");
    assert_eq!(late.messages()[n - 1], Msg::Restarted(1));
    p.signal_restarted().unwrap();
    assert_eq!(p.restart_counter(), 2);
    assert!(late.wait_for(T, |v| v.restarted == Some(2)));
    p.clear_restarted().unwrap();
    assert_eq!(p.restart_counter(), 0);
    let mut after_clear = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    assert_eq!(after_clear.snapshot(T).2, None, "no restarted once cleared");
}

#[test]
fn pub_diffs_change_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let p = open(&agent, false, None);
    p.publish("a", br#"{"v":1}"#).unwrap();
    p.publish("b", br#"{"v":1}"#).unwrap();
    let mut s = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    s.snapshot(T);
    let before = s.messages().len();
    p.publish("a", br#"{"v":2}"#).unwrap();
    let Some(Msg::Update { key, value }) = s.next(T) else { panic!("no update") };
    assert_eq!((key.as_str(), value.as_slice()), ("a", br#"{"v":2}"#.as_slice()));
    p.unpublish("b").unwrap();
    assert_eq!(s.next(T), Some(Msg::Delete { key: "b".into() }));
    // Unchanged is a no-op: the next message after a repeat is the sentinel's update.
    p.publish("a", br#"{"v":2}"#).unwrap();
    p.publish("sentinel", br#"{}"#).unwrap();
    let Some(Msg::Update { key, .. }) = s.next(T) else { panic!("no update") };
    assert_eq!(key, "sentinel", "re-publishing an unchanged value sent something");
    assert_eq!(s.messages().len(), before + 3);
}

#[test]
fn pub_burst_replays_to_the_same_state() {
    // Deletes and updates that pile up while a connection is busy must still replay, in the
    // order sent, to exactly the publication's state (a delete is never sent after a later
    // update of the same key, nor an update lost).
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let p = open(&agent, false, None);
    let mut subs: Vec<PeerSubscriber> = (0..3).map(|_| PeerSubscriber::connect(&agent, TOPIC).unwrap()).collect();
    for round in 0..5 {
        for i in 0..40 {
            p.publish(&format!("k{i}"), format!(r#"{{"round":{round},"i":{i}}}"#).as_bytes()).unwrap();
        }
        for i in (round..40).step_by(3) {
            p.unpublish(&format!("k{i}")).unwrap();
        }
    }
    p.publish("end", b"{}").unwrap();
    let want: BTreeMap<String, Value> =
        p.keys().into_iter().map(|k| (k.clone(), serde_json::from_slice(&p.get(&k).unwrap()).unwrap())).collect();
    for s in &mut subs {
        assert!(s.wait_for(T, |view| view.items == want), "view: {:?}", s.view().items.keys());
    }
}

#[test]
fn pub_twenty_subscribers_each_with_its_view() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let p = open(&agent, false, None);
    p.publish("a", br#"{"v":1}"#).unwrap();
    let mut subs: Vec<PeerSubscriber> = (0..20).map(|_| PeerSubscriber::connect(&agent, TOPIC).unwrap()).collect();
    for s in &mut subs {
        s.wait_for(T, |v| v.complete);
        assert_eq!(s.view().items.len(), 1);
    }
    assert!(wait_for(T, || p.subscribers() == 20), "subscribers() = {}", p.subscribers());
    p.publish("b", br#"{"v":2}"#).unwrap();
    p.publish("a", br#"{"v":3}"#).unwrap();
    let mut late = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    let (_, items, _) = late.snapshot(T);
    assert_eq!(items, BTreeMap::from([("a".into(), json!({"v":3})), ("b".into(), json!({"v":2}))]));
    assert!(late.messages().iter().all(|m| !matches!(m, Msg::Delete { .. })));
    p.unpublish("b").unwrap();
    for s in subs.iter_mut().chain(std::iter::once(&mut late)) {
        assert!(s.wait_for(T, |v| v.items.len() == 1 && v.items["a"] == json!({"v":3})));
    }
    drop(subs);
    drop(late);
    p.publish("c", b"{}").unwrap(); // a write finds the departed subscribers gone, at the latest
    assert!(wait_for(T, || p.subscribers() == 0), "subscribers() = {}", p.subscribers());
}

#[test]
fn pub_bad_requests_close_only_their_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let p = open(&agent, false, None);
    p.publish("a", br#"{"v":1}"#).unwrap();
    let mut good = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    good.snapshot(T);
    let sock = agent.join("DomainStatus.sock");
    let bad_requests: &[&[u8]] = &[
        b"request DomainConfig",
        b"request DomainStatus extra",
        b"request  DomainStatus",
        b"hello DomainStatus true",
        b"\xff\xfe\x00garbage",
        b"request",
    ];
    for req in bad_requests {
        let c = RawConn::dial(&sock).unwrap();
        c.send(req).unwrap();
        assert!(c.wait_closed(T), "still open after {:?}", String::from_utf8_lossy(req));
    }
    // One that connects and leaves without a word.
    drop(RawConn::dial(&sock).unwrap());
    p.publish("b", br#"{"v":2}"#).unwrap();
    assert!(good.wait_for(T, |v| v.items.len() == 2), "the good subscriber kept its connection");
    let mut fresh = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    assert_eq!(fresh.snapshot(T).1.len(), 2);
}

#[test]
fn pub_checkpoint_files() {
    for persistent in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let agent = tmp.path().join("domainmgr");
        let p = open(&agent, persistent, None);
        let dir = agent.join(TOPIC);
        assert_eq!(mode(&agent), 0o700, "agent directory mode");
        p.publish("a", br#"{"v":1}"#).unwrap();
        p.publish("b", br#"{"v":2}"#).unwrap();
        assert_eq!(mode(&dir), 0o700, "topic directory mode");
        assert_eq!(fs::read(dir.join("a.json")).unwrap(), br#"{"v":1}"#);
        p.publish("a", br#"{"v":3}"#).unwrap();
        assert_eq!(fs::read(dir.join("a.json")).unwrap(), br#"{"v":3}"#);
        p.unpublish("b").unwrap();
        assert!(!dir.join("b.json").exists(), "unpublish removes the checkpoint");
        assert!(!dir.join("restarted").exists());
        p.signal_restarted().unwrap();
        assert_eq!(fs::read_to_string(dir.join("restarted")).unwrap(), "1");
        p.signal_restarted().unwrap();
        assert_eq!(fs::read_to_string(dir.join("restarted")).unwrap(), "2");
        p.clear_restarted().unwrap();
        assert!(!dir.join("restarted").exists(), "clear removes the restarted file");
        let mut names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names.retain(|n| !n.ends_with(".bak")); // EVE keeps backups of persistent items
        assert_eq!(names, ["a.json"], "no stray files (temporaries) in the checkpoint directory");
        p.close();
        assert!(!agent.join("DomainStatus.sock").exists(), "close removes the socket");
        assert!(dir.join("a.json").exists(), "close keeps checkpoints");
    }
}

#[test]
fn pub_reopen_serves_checkpoints_first() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    {
        let p = open(&agent, true, None);
        p.publish("a", br#"{"v":1}"#).unwrap();
        p.publish("b", br#"{"v":2}"#).unwrap();
        p.signal_restarted().unwrap();
        drop(p); // Drop closes too
    }
    assert!(!agent.join("DomainStatus.sock").exists());
    let p = open(&agent, true, None);
    let mut keys = p.keys();
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(p.get("a").unwrap(), br#"{"v":1}"#);
    assert_eq!(p.restart_counter(), 1);
    let mut s = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    let (_, items, restarted) = s.snapshot(T);
    assert_eq!(items, BTreeMap::from([("a".into(), json!({"v":1})), ("b".into(), json!({"v":2}))]));
    assert_eq!(restarted, Some(1));
    // The restarted owner re-publishes what it still has, then deletes the rest.
    p.publish("a", br#"{"v":1}"#).unwrap();
    p.unpublish("b").unwrap();
    assert_eq!(s.next(T), Some(Msg::Delete { key: "b".into() }), "re-publishing an unchanged value is a no-op");
}

#[test]
fn pub_open_replaces_a_stale_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    fs::create_dir_all(&agent).unwrap();
    let sock = agent.join("DomainStatus.sock");
    // A dead publisher's socket file: bound, then its process gone (std leaves the file).
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let p = open(&agent, false, None);
    p.publish("a", b"{}").unwrap();
    let mut s = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    assert_eq!(s.snapshot(T).1.len(), 1);
}

#[test]
fn pub_large_fields_travel_as_files() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let large_root = tmp.path().join("pubsub-large");
    let p = open(&agent, false, Some(&large_root));
    let inline = r#"{"Name":"vm","pubsub-large-Config":"a b c","Inner":{"pubsub-large-Blob":[1,2]}}"#;
    p.publish("k", inline.as_bytes()).unwrap();
    let mut subs: Vec<PeerSubscriber> =
        (0..2).map(|_| PeerSubscriber::connect(&agent, TOPIC).unwrap().expect_large_root(&large_root)).collect();
    for s in &mut subs {
        assert!(matches!(s.next(T), Some(Msg::Hello { .. })));
        let Some(Msg::Update { key, value }) = s.next(T) else { panic!("no update") };
        assert_eq!(key, "k");
        let wire = v(std::str::from_utf8(&value).unwrap());
        assert!(wire.get("pubsub-large-Config").is_none(), "large field sent inline: {wire}");
        let literal = wire["pubsub-file-Config"].as_str().expect("pubsub-file-Config is a string");
        let path: String = serde_json::from_str(literal).expect("a JSON string literal of the path");
        assert!(Path::new(&path).exists());
        assert!(wire["Inner"]["pubsub-file-Blob"].is_string(), "nested large field: {wire}");
        let resolved = s.resolve_large(&value);
        assert_eq!(resolved, v(inline));
        assert!(!Path::new(&path).exists());
        assert_eq!(s.large_files_read().len(), 2);
    }
    let checkpoint = v(&fs::read_to_string(agent.join(TOPIC).join("k.json")).unwrap());
    assert_eq!(checkpoint, v(inline), "the checkpoint carries large fields inline");
    assert_eq!(v(std::str::from_utf8(&p.get("k").unwrap()).unwrap()), v(inline));
}

#[test]
fn pub_message_size_bound() {
    assert_eq!(MAX_MESSAGE, 65535);
    let tmp = tempfile::tempdir().unwrap();
    // `update <topic> <b64 key> <b64 value>`: with a 1-byte key (4 base64 chars) and a value of
    // 49,131 bytes (16,377 × 4 base64 chars), a 13-byte topic makes 65,534 bytes (fits) and a
    // 14-byte topic makes 65,535 bytes (does not).
    let value = format!("\"{}\"", "a".repeat(49_129));
    assert_eq!(value.len(), 49_131);
    for (topic, fits) in [("DomainStatusX", true), ("DomainStatusXY", false)] {
        let agent = tmp.path().join(topic);
        let p = Publication::open(&agent, topic, PublicationOptions::default()).unwrap();
        let mut s = PeerSubscriber::connect(&agent, topic).unwrap();
        s.snapshot(T);
        let r = p.publish("k", value.as_bytes());
        assert_eq!(r.is_ok(), fits, "topic {topic}: {r:?}");
        // A marker that sorts after "k": a subscriber's sender sends the keys changed since its
        // last send in key order, so once the marker is here "k" is too, if it was sent at all
        // (a marker "after" could come first, when both changes go out in one send).
        p.publish("zz-after", b"{}").unwrap();
        assert!(s.wait_for(T, |v| v.items.contains_key("zz-after")));
        assert_eq!(s.view().items.contains_key("k"), fits, "topic {topic}: keys {:?}", s.view().items.keys());
    }
}

#[test]
fn pub_max_subscribers_refuses_only_the_extra() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let options = PublicationOptions { max_subscribers: 2, ..PublicationOptions::default() };
    let p = Publication::open(&agent, TOPIC, options).unwrap();
    p.publish("a", b"{}").unwrap();
    let mut one = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    let mut two = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    one.snapshot(T);
    two.snapshot(T);
    // A third is hung up on: at once (its request finds the socket closed), or after its request.
    if let Ok(mut three) = PeerSubscriber::connect(&agent, TOPIC) {
        assert!(three.wait_closed(T), "a third subscriber over max_subscribers = 2 is hung up on");
    }
    p.publish("b", b"{}").unwrap();
    assert!(one.wait_for(T, |v| v.items.len() == 2));
    assert!(two.wait_for(T, |v| v.items.len() == 2));
    drop(one);
    p.publish("c", b"{}").unwrap();
    assert!(wait_for(T, || p.subscribers() == 1), "subscribers() = {}", p.subscribers());
    let mut four = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    assert_eq!(four.snapshot(T).1.len(), 3, "a slot freed is served again");
}

#[test]
fn pub_rejects_what_eve_rejects() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let p = open(&agent, false, None);
    assert!(p.publish("a/b", b"{}").is_err(), "a key with a slash (it names a file)");
    assert!(p.publish("a", b"").is_err(), "an empty value");
    let long = "k".repeat(251); // k….json is 256 bytes, over a file name's 255
    assert!(p.publish(&long, b"{}").is_err(), "a key too long for its checkpoint file name");
    assert!(p.publish(&"k".repeat(250), b"{}").is_ok());
    assert!(p.keys().len() == 1);
}

// ---------------------------------------------------------------------------------------------
// Subscription, fed by PeerPublisher and raw publishers.
// ---------------------------------------------------------------------------------------------

/// A running subscription and the events it reported.
struct Sub {
    sub: Option<Subscription>,
    rx: Receiver<Event>,
    seen: Vec<String>,
}

impl Sub {
    fn start(agent: &Path, large_root: Option<&Path>) -> Sub {
        let (tx, rx) = channel();
        let options = SubscriptionOptions { redial: REDIAL, large_root: large_root.map(Path::to_path_buf) };
        let sub = Subscription::start(agent, TOPIC, options, move |e| {
            let _ = tx.send(e);
        });
        Sub { sub: Some(sub), rx, seen: Vec::new() }
    }

    fn next(&mut self, timeout: Duration) -> Option<Event> {
        let e = self.rx.recv_timeout(timeout).ok()?;
        self.seen.push(format!("{e:?}"));
        Some(e)
    }

    /// Events up to and including the first that `pred` accepts; panics after `timeout`.
    fn until(&mut self, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(e) = self.next(left) else {
                panic!("the awaited event did not come within {timeout:?}; all events: {:#?}", self.seen)
            };
            let done = pred(&e);
            out.push(e);
            if done {
                return out;
            }
        }
    }

    fn stop(mut self) {
        if let Some(s) = self.sub.take() {
            s.stop();
        }
    }
}

fn is_update(e: &Event, k: &str) -> bool {
    matches!(e, Event::Update { key, .. } if key == k)
}

fn json_of(e: &Event) -> Value {
    match e {
        Event::Update { value, .. } => serde_json::from_slice(value).unwrap(),
        other => panic!("not an update: {other:?}"),
    }
}

#[test]
fn sub_snapshot_events_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let publisher = PeerPublisher::serve(&agent, TOPIC, true);
    publisher.set("a", r#"{"v":1}"#);
    publisher.set("b", r#"{"v":2, "s":"x y"}"#);
    publisher.set_restarted(2);
    let mut sub = Sub::start(&agent, None);
    let evs = sub.until(T, |e| matches!(e, Event::Restarted(_)));
    assert_eq!(evs.len(), 5, "{:#?}", sub.seen);
    assert!(matches!(evs[0], Event::Connected { persistent: true }), "{:?}", evs[0]);
    match &evs[1] {
        Event::Update { key, value } => assert_eq!((key.as_str(), value.as_slice()), ("a", br#"{"v":1}"#.as_slice())),
        other => panic!("{other:?}"),
    }
    match &evs[2] {
        Event::Update { key, value } => {
            assert_eq!((key.as_str(), value.as_slice()), ("b", br#"{"v":2, "s":"x y"}"#.as_slice()));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(evs[3], Event::Synchronized));
    assert!(matches!(evs[4], Event::Restarted(2)));
    sub.stop();
}

#[test]
fn sub_diffs() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let publisher = PeerPublisher::serve(&agent, TOPIC, false);
    publisher.set("a", r#"{"v":1}"#);
    publisher.set("b", r#"{"v":1}"#);
    let mut sub = Sub::start(&agent, None);
    let evs = sub.until(T, |e| matches!(e, Event::Synchronized));
    assert!(matches!(evs[0], Event::Connected { persistent: false }));
    publisher.set("a", r#"{"v":2}"#);
    let e = sub.until(T, |e| is_update(e, "a")).pop().unwrap();
    assert_eq!(json_of(&e), json!({"v":2}));
    publisher.remove("b");
    let evs = sub.until(T, |e| matches!(e, Event::Delete { .. }));
    assert!(matches!(&evs[..], [Event::Delete { key }] if key == "b"), "{evs:?}");
    publisher.set_restarted(5);
    let evs = sub.until(T, |e| matches!(e, Event::Restarted(_)));
    assert!(matches!(&evs[..], [Event::Restarted(5)]), "{evs:?}");
    sub.stop();
}

#[test]
fn sub_waits_for_a_publisher_then_reconnects_without_deleting() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    // The subscription starts first: it redials until the publisher appears.
    let mut sub = Sub::start(&agent, None);
    let first = PeerPublisher::serve(&agent, TOPIC, false);
    first.set("a", r#"{"v":1}"#);
    first.set("b", r#"{"v":1}"#);
    sub.until(T, |e| matches!(e, Event::Synchronized));
    first.close();
    let evs = sub.until(T, |e| matches!(e, Event::Disconnected));
    // The subscription may have dialled between `serve` and the `set`s: their updates may come
    // after the snapshot. Nothing else may, and no Delete.
    assert!(
        evs.iter().all(|e| matches!(e, Event::Update { .. } | Event::Disconnected)),
        "only late updates, then Disconnected, when the publisher goes: {evs:?}"
    );
    let second = PeerPublisher::serve(&agent, TOPIC, false);
    second.set("b", r#"{"v":2}"#);
    second.set("c", r#"{"v":3}"#);
    let evs = sub.until(T, |e| matches!(e, Event::Synchronized));
    assert!(matches!(evs[0], Event::Connected { persistent: false }), "{evs:?}");
    let keys: Vec<&str> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Update { key, .. } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(keys, ["b", "c"], "a full snapshot on reconnect");
    assert!(
        evs.iter().all(|e| !matches!(e, Event::Delete { .. })),
        "no Delete for keys the new publisher lacks: {evs:?}"
    );
    // The subscription still follows the new publisher, and only it says what goes.
    second.remove("c");
    let evs = sub.until(T, |e| matches!(e, Event::Delete { .. }));
    assert!(matches!(&evs[..], [Event::Delete { key }] if key == "c"), "{evs:?}");
    sub.stop();
}

#[test]
fn sub_large_fields_read_back_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let large_root = tmp.path().join("pubsub-large");
    let publisher = PeerPublisher::serve(&agent, TOPIC, false);
    let inline = r#"{"Name":"vm","pubsub-large-Config":"big","Disks":[{"pubsub-large-Blob":{"k":[1]}}]}"#;
    publisher.set_large("k", inline, &large_root);
    let mut sub = Sub::start(&agent, Some(&large_root));
    let e = sub.until(T, |e| is_update(e, "k")).pop().unwrap();
    assert_eq!(json_of(&e), v(inline));
    let dir = large_root.join("domainmgr").join(TOPIC);
    assert!(
        wait_for(T, || fs::read_dir(&dir).map(|d| d.count() == 0).unwrap_or(true)),
        "the subscriber deletes the large-field files it read"
    );
    sub.stop();
}

#[test]
fn sub_large_field_paths_outside_the_root_are_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let large_root = tmp.path().join("pubsub-large");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(large_root.join("domainmgr").join(TOPIC)).unwrap();
    let secret = outside.join("secret");
    fs::write(&secret, r#"{"pubsub-large-X":"SECRET"}"#).unwrap();
    let publisher = PeerPublisher::serve(&agent, TOPIC, false);
    let lit = |p: &Path| serde_json::to_string(&serde_json::to_string(&p.to_string_lossy()).unwrap()).unwrap();
    let traversal = large_root.join("domainmgr").join(TOPIC).join("../../../outside/secret");
    publisher.set("direct", &format!(r#"{{"pubsub-file-X":{}}}"#, lit(&secret)));
    publisher.set("traversal", &format!(r#"{{"pubsub-file-X":{}}}"#, lit(&traversal)));
    publisher.set("relative", r#"{"pubsub-file-X":"\"../outside/secret\""}"#);
    publisher.set("zz-good", r#"{"v":1}"#);
    let mut sub = Sub::start(&agent, Some(&large_root));
    let evs = sub.until(T, |e| matches!(e, Event::Synchronized));
    assert!(evs.iter().any(|e| is_update(e, "zz-good")), "{evs:?}");
    for e in &evs {
        if let Event::Update { value, .. } = e {
            assert!(!String::from_utf8_lossy(value).contains("SECRET"), "followed a path outside large_root: {e:?}");
        }
    }
    assert!(secret.exists(), "deleted a file outside large_root");
    publisher.set("after", r#"{"v":2}"#);
    sub.until(T, |e| is_update(e, "after"));
    sub.stop();
}

/// Serves one raw connection properly: hello, the given items, complete.
fn serve_good(c: &RawConn, items: &[(&str, &str)]) {
    assert_eq!(c.recv(T).unwrap(), b"request DomainStatus", "the subscriber's request, byte for byte");
    c.send(b"hello DomainStatus false").unwrap();
    for (k, val) in items {
        c.send(eve_peer::codec::update(TOPIC, k, val.as_bytes()).as_bytes()).unwrap();
    }
    c.send(b"complete DomainStatus").unwrap();
}

#[test]
fn sub_survives_garbage_from_the_publisher() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let raw: RawListener = PeerPublisher::raw(&agent, TOPIC);
    let mut sub = Sub::start(&agent, None);
    let c = raw.accept(T).expect("the subscription connects");
    serve_good(&c, &[("a", r#"{"v":1}"#)]);
    sub.until(T, |e| matches!(e, Event::Synchronized));
    let b64 = eve_peer::codec::b64;
    let garbage: Vec<Vec<u8>> = vec![
        b"\xff\xfe\x00\x01".to_vec(),
        b"update".to_vec(),
        b"update DomainStatus".to_vec(),
        b"update DomainStatus YQ==".to_vec(),
        b"update DomainStatus !!!! ####".to_vec(),
        format!("update DomainStatus {} {} extra", b64(b"x"), b64(b"{}")).into_bytes(),
        format!("update OtherTopic {} {}", b64(b"wrong-topic"), b64(b"{}")).into_bytes(),
        format!("update DomainStatus {} {}", b64(&[0xff, 0xfe]), b64(b"{}")).into_bytes(),
        b"delete DomainStatus ###".to_vec(),
        b"delete".to_vec(),
        b"restarted DomainStatus abc".to_vec(),
        b"restarted DomainStatus -1".to_vec(),
        b"restarted DomainStatus 99999999999999999999999".to_vec(),
        b"hello DomainStatus maybe".to_vec(),
        b"complete".to_vec(),
        b"frobnicate DomainStatus".to_vec(),
        "update DomainStatus ä ö".as_bytes().to_vec(),
        vec![b'x'; 70_000],
        format!("update DomainStatus {} {}", b64(b"huge"), "A".repeat(MAX_MESSAGE + 10)).into_bytes(),
    ];
    for g in &garbage {
        c.send(g).unwrap();
    }
    // As EVE's subscriber does, each bad message is dropped and the connection kept: a good
    // update after the garbage arrives on the same connection.
    c.send(eve_peer::codec::update(TOPIC, "good", br#"{"v":2}"#).as_bytes()).unwrap();
    let evs = sub.until(T, |e| is_update(e, "good"));
    assert!(evs.iter().all(|e| !matches!(e, Event::Disconnected)), "hung up on garbage: {evs:?}");
    assert_eq!(json_of(evs.last().unwrap()), json!({"v":2}));
    // An empty message reads as end-of-file on a SOCK_SEQPACKET socket: the subscription may hang
    // up, but then redials and follows the publisher again.
    c.send(b"").unwrap();
    let _ = c.send(eve_peer::codec::update(TOPIC, "after-empty", b"{}").as_bytes()); // may find it hung up
    let deadline = Instant::now() + T;
    let mut conn = c;
    let mut got = false;
    while !got && Instant::now() < deadline {
        if let Some(e) = sub.next(Duration::from_millis(50)) {
            got = is_update(&e, "after-empty");
        } else if let Some(c2) = raw.accept(Duration::from_millis(1)) {
            serve_good(&c2, &[("after-empty", "{}")]);
            conn = c2;
        }
    }
    assert!(got, "no update after an empty message; events: {:#?}", sub.seen);
    drop(conn);
    sub.stop();
}

#[test]
fn sub_survives_publishers_that_close_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let raw = PeerPublisher::raw(&agent, TOPIC);
    let mut sub = Sub::start(&agent, None);
    // Closes before reading anything.
    drop(raw.accept(T).expect("first dial"));
    // Reads the request, then closes.
    let c = raw.accept(T).expect("second dial");
    c.recv(T).unwrap();
    drop(c);
    // Says hello, then closes mid-snapshot.
    let c = raw.accept(T).expect("third dial");
    c.recv(T).unwrap();
    c.send(b"hello DomainStatus false").unwrap();
    c.send(eve_peer::codec::update(TOPIC, "half", b"{}").as_bytes()).unwrap();
    drop(c);
    drop(raw);
    let publisher = PeerPublisher::serve(&agent, TOPIC, false);
    publisher.set("ok", r#"{"v":1}"#);
    let evs = sub.until(T, |e| is_update(e, "ok"));
    assert!(
        evs.iter().all(|e| !matches!(e, Event::Delete { .. })),
        "no Delete of what a half-finished snapshot sent: {evs:?}"
    );
    sub.until(T, |e| matches!(e, Event::Synchronized));
    sub.stop();
}

#[test]
fn sub_stop_is_prompt_even_with_a_long_redial() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let raw = PeerPublisher::raw(&agent, TOPIC);
    let options = SubscriptionOptions { redial: Duration::from_secs(3600), large_root: None };
    let sub = Subscription::start(&agent, TOPIC, options, |_| {});
    // It dials, is hung up on, and (the socket gone) goes to wait out its hour before redialling.
    let c = raw.accept(T).expect("the subscription dials");
    assert_eq!(c.recv(T).unwrap(), b"request DomainStatus");
    drop(raw);
    drop(c);
    let t0 = Instant::now();
    sub.stop();
    assert!(t0.elapsed() < Duration::from_secs(3), "stop() took {:?}", t0.elapsed());
}

#[test]
fn sub_default_options_match_eve() {
    let o = SubscriptionOptions::default();
    assert_eq!(o.redial, Duration::from_secs(10));
    assert_eq!(o.large_root, None::<PathBuf>);
}
