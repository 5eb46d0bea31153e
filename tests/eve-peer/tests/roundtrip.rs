//! The peer's own tests: `PeerPublisher` against hand-made bytes and against `PeerSubscriber`
//! (snapshot, diffs, many subscribers, large fields, bad requests, close, checkpoints), and the
//! strict parser rejecting each kind of malformed message, so the peer can be trusted as a judge.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use eve_peer::codec::parse_strict;
use eve_peer::{Msg, PeerPublisher, PeerSubscriber, RawConn, wait_for};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(5);
const TOPIC: &str = "DomainStatus";

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn byte_exact_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let publisher = PeerPublisher::serve(&agent, TOPIC, false);
    publisher.set("k1", r#"{"a":1}"#);
    let c = RawConn::dial(&agent.join("DomainStatus.sock")).unwrap();
    c.send(b"request DomainStatus").unwrap();
    assert_eq!(c.recv(T).unwrap(), b"hello DomainStatus false");
    // base64("k1") = azE=, base64({"a":1}) = eyJhIjoxfQ== (computed by hand, outside this crate).
    assert_eq!(c.recv(T).unwrap(), b"update DomainStatus azE= eyJhIjoxfQ==");
    assert_eq!(c.recv(T).unwrap(), b"complete DomainStatus");
    publisher.set_restarted(3);
    assert_eq!(c.recv(T).unwrap(), b"restarted DomainStatus 3");
    publisher.set("dom-7", r#"{"State":2,"Name":"vm"}"#);
    assert_eq!(c.recv(T).unwrap(), b"update DomainStatus ZG9tLTc= eyJTdGF0ZSI6MiwiTmFtZSI6InZtIn0=");
    publisher.remove("k1");
    assert_eq!(c.recv(T).unwrap(), b"delete DomainStatus azE=");
    publisher.close();
    assert!(c.wait_closed(T), "close() ends the connection");
}

#[test]
fn snapshot_round_trip_with_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let publisher = PeerPublisher::serve(&agent, TOPIC, true);
    publisher.set("a", r#"{"x":1}"#);
    publisher.set("b", r#"{"x":[1,2]}"#);
    publisher.set_restarted(2);
    let mut s = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    let (persistent, items, restarted) = s.snapshot(T);
    assert!(persistent);
    let want: BTreeMap<String, Value> = [("a".into(), json!({"x":1})), ("b".into(), json!({"x":[1,2]}))].into();
    assert_eq!(items, want);
    assert_eq!(restarted, Some(2));
    let kinds: Vec<&str> = s
        .messages()
        .iter()
        .map(|m| match m {
            Msg::Hello { .. } => "hello",
            Msg::Update { .. } => "update",
            Msg::Complete => "complete",
            Msg::Restarted(_) => "restarted",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["hello", "update", "update", "complete", "restarted"]);
}

#[test]
fn snapshot_without_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("a1");
    let publisher = PeerPublisher::serve(&agent, TOPIC, false);
    let mut s = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    let (persistent, items, restarted) = s.snapshot(T);
    assert!(!persistent);
    assert!(items.is_empty());
    assert_eq!(restarted, None);
    drop(publisher);
}

#[test]
fn diffs_delete_then_update() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let publisher = PeerPublisher::serve(&agent, TOPIC, false);
    publisher.set("a", r#"{"v":1}"#);
    publisher.set("b", r#"{"v":1}"#);
    let mut s = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    s.snapshot(T);
    publisher.set("a", r#"{"v":2}"#);
    assert!(s.wait_for(T, |v| v.items["a"] == json!({"v":2})));
    publisher.remove("b");
    assert!(s.wait_for(T, |v| !v.items.contains_key("b")));
    assert_eq!(s.view().items.len(), 1);
}

#[test]
fn many_subscribers_each_with_their_view() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let publisher = PeerPublisher::serve(&agent, TOPIC, false);
    publisher.set("a", r#"{"v":1}"#);
    let mut subs: Vec<PeerSubscriber> = (0..8).map(|_| PeerSubscriber::connect(&agent, TOPIC).unwrap()).collect();
    for s in &mut subs {
        assert_eq!(s.snapshot(T).1.len(), 1);
    }
    assert!(wait_for(T, || publisher.connections() == 8));
    publisher.set("b", r#"{"v":2}"#);
    let mut late = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    let (_, items, _) = late.snapshot(T);
    assert_eq!(items.keys().collect::<Vec<_>>(), ["a", "b"]);
    for s in &mut subs {
        assert!(s.wait_for(T, |v| v.items.len() == 2));
    }
    drop(subs);
    assert!(wait_for(T, || publisher.connections() == 1), "connections() counts the ones left");
}

#[test]
fn large_fields_travel_as_files() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let large_root = tmp.path().join("large");
    let publisher = PeerPublisher::serve(&agent, TOPIC, false);
    let inline = r#"{"Name":"vm","pubsub-large-Config":"xxxxxxxx","Disks":[{"pubsub-large-Blob":{"k":[1]}}]}"#;
    publisher.set_large("k", inline, &large_root);
    let mut s = PeerSubscriber::connect(&agent, TOPIC).unwrap().expect_large_root(&large_root);
    let Some(Msg::Hello { .. }) = s.next(T) else { panic!("no hello") };
    let Some(Msg::Update { value, .. }) = s.next(T) else { panic!("no update") };
    let wire: Value = serde_json::from_slice(&value).unwrap();
    let literal = wire["pubsub-file-Config"].as_str().unwrap();
    let path: String = serde_json::from_str(literal).unwrap();
    assert!(Path::new(&path).starts_with(large_root.join("domainmgr").join(TOPIC)));
    assert!(wire.get("pubsub-large-Config").is_none());
    assert!(wire["Disks"][0]["pubsub-file-Blob"].is_string());
    let resolved = s.resolve_large(&value);
    assert_eq!(resolved, serde_json::from_str::<Value>(inline).unwrap());
    assert_eq!(s.large_files_read().len(), 2);
    assert!(!Path::new(&path).exists(), "the subscriber deletes the file it read");
    let checkpoint = fs::read_to_string(agent.join(TOPIC).join("k.json")).unwrap();
    assert_eq!(checkpoint, inline, "the checkpoint carries large fields inline");
}

#[test]
fn bad_request_closes_that_connection_only() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let publisher = PeerPublisher::serve(&agent, TOPIC, false);
    publisher.set("a", r#"{"v":1}"#);
    let mut good = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    good.snapshot(T);
    let bad = RawConn::dial(&agent.join("DomainStatus.sock")).unwrap();
    bad.send(b"request DomainConfig").unwrap();
    assert!(bad.wait_closed(T));
    publisher.set("b", r#"{"v":1}"#);
    assert!(good.wait_for(T, |v| v.items.len() == 2));
}

#[test]
fn close_and_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let publisher = PeerPublisher::serve(&agent, TOPIC, true);
    publisher.set("a", r#"{"v":1}"#);
    publisher.set_restarted(1);
    let dir = agent.join(TOPIC);
    assert_eq!(mode(&agent), 0o700);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(fs::read_to_string(dir.join("a.json")).unwrap(), r#"{"v":1}"#);
    assert_eq!(fs::read_to_string(dir.join("restarted")).unwrap(), "1");
    publisher.set_restarted(0);
    assert!(!dir.join("restarted").exists());
    publisher.remove("a");
    assert!(!dir.join("a.json").exists());
    let mut s = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    s.snapshot(T);
    publisher.close();
    assert!(s.wait_closed(T));
    assert!(!agent.join("DomainStatus.sock").exists());
    assert!(PeerSubscriber::connect(&agent, TOPIC).is_err());
}

#[test]
fn strict_parser_rejects_each_malformation() {
    let ok = parse_strict(b"update DomainStatus azE= eyJhIjoxfQ==", TOPIC).unwrap();
    assert_eq!(ok, Msg::Update { key: "k1".into(), value: br#"{"a":1}"#.to_vec() });
    let bad: &[&[u8]] = &[
        b"update DomainStatus  azE= eyJhIjoxfQ==", // double space
        b"update DomainStatus azE= eyJhIjoxfQ== ", // trailing space
        b"update DomainStatus azE eyJhIjoxfQ==",   // unpadded
        b"update DomainStatus azE= eyJhIjoxfQ",    // unpadded value
        b"update DomainStatus azF= eyJhIjoxfQ==",  // non-canonical trailing bits
        b"update DomainStatus azE= e30K",          // value "{}\n" ok JSON... kept below
        b"update DomainConfig azE= eyJhIjoxfQ==",  // wrong topic
        b"update DomainStatus azE=",               // too few words
        b"update DomainStatus azE= bm90IGpzb24=",  // value is not JSON
        b"hello DomainStatus yes",                 // bad persistence flag
        b"restarted DomainStatus 03",              // not plain decimal
        b"restarted DomainStatus -1",
        b"complete DomainStatus\n",
        "complete DomainStätus".as_bytes(),
        b"bogus DomainStatus",
        b"",
    ];
    for (i, m) in bad.iter().enumerate() {
        if i == 5 {
            // "{}\n" is valid JSON and canonical base64: accepted.
            assert!(parse_strict(m, TOPIC).is_ok());
            continue;
        }
        assert!(parse_strict(m, TOPIC).is_err(), "accepted {:?}", String::from_utf8_lossy(m));
    }
    let long = format!("update DomainStatus azE= {}", "A".repeat(70_000));
    assert!(parse_strict(long.as_bytes(), TOPIC).unwrap_err().contains("not under"));
}

#[test]
#[should_panic(expected = "bad message")]
fn subscriber_panics_on_garbage() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let raw = PeerPublisher::raw(&agent, TOPIC);
    let mut s = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    let c = raw.accept(T).unwrap();
    assert_eq!(c.recv(T).unwrap(), b"request DomainStatus");
    c.send(b"hello DomainStatus true").unwrap();
    c.send(b"update DomainStatus azE eyJhIjoxfQ==").unwrap();
    s.snapshot(T);
}

#[test]
#[should_panic(expected = "delete of \"a\" before complete")]
fn subscriber_panics_on_delete_before_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let raw = PeerPublisher::raw(&agent, TOPIC);
    let mut s = PeerSubscriber::connect(&agent, TOPIC).unwrap();
    let c = raw.accept(T).unwrap();
    c.recv(T).unwrap();
    c.send(b"hello DomainStatus true").unwrap();
    c.send(b"delete DomainStatus YQ==").unwrap();
    s.snapshot(T);
}

#[test]
#[should_panic(expected = "not a file in")]
fn subscriber_panics_on_large_file_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("domainmgr");
    let large_root = tmp.path().join("large");
    let elsewhere = tmp.path().join("elsewhere");
    let publisher = PeerPublisher::serve(&agent, TOPIC, false);
    publisher.set_large("k", r#"{"pubsub-large-X":1}"#, &elsewhere);
    let mut s = PeerSubscriber::connect(&agent, TOPIC).unwrap().expect_large_root(&large_root);
    s.snapshot(T);
}
