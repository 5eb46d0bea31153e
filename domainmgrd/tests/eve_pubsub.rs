//! The daemon as EVE's agents see it: only through EVE's pubsub sockets. zedmanager, zedagent
//! and nim are `eve-peer` publishers (an implementation of the protocol written apart from
//! ours), the subscribers are `eve-peer`'s strict subscribers, the hypervisor is the simulator.
//! Nothing here reads or writes the daemon's files: configs go in over sockets, statuses,
//! metrics, host memory, capabilities and adapters come out over sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Env, config};
use domainmgrd::agent::InputMode;
use domainmgrd::supervisor::Options;
use eve_peer::{PeerPublisher, PeerSubscriber, View};
use serde_json::{Value, json};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);
const RUNNING: u64 = 115;
const HALTED: u64 = 119;

/// EVE's other agents, as publishers.
struct Agents {
    zedmanager: PeerPublisher,
    settings: PeerPublisher,
    adapters: PeerPublisher,
    network: PeerPublisher,
}

fn large_root(env: &Env) -> PathBuf {
    env.dir.path().join("persist/pubsub-large")
}

fn pubsub_options(env: &Env) -> Options {
    let mut o = env.options();
    o.eve.inputs = InputMode::Pubsub { redial: Duration::from_millis(100), large_root: Some(large_root(env)) };
    o.eve.agent_files = Some(env.dir.path().to_path_buf());
    o
}

fn agents(env: &Env) -> Agents {
    let root = env.dir.path();
    Agents {
        zedmanager: PeerPublisher::serve(&env.paths().config_dir, "DomainConfig", false),
        settings: PeerPublisher::serve(&root.join("zedagent"), "ConfigItemValueMap", false),
        adapters: PeerPublisher::serve(&root.join("zedagent"), "PhysicalIOAdapterList", false),
        network: PeerPublisher::serve(&root.join("nim"), "DeviceNetworkStatus", false),
    }
}

/// A daemon with EVE's inputs over pubsub, EVE's agents publishing (nothing yet), and a
/// DomainStatus subscriber that has had its first snapshot.
fn started() -> (Env, Agents, PeerSubscriber) {
    let mut env = Env::new();
    let agents = agents(&env);
    env.start_with(pubsub_options(&env));
    let mut status = subscribe(&env, "DomainStatus");
    status.snapshot(WAIT);
    (env, agents, status)
}

fn publish_config(zedmanager: &PeerPublisher, config: &Value) {
    let key = config["UUIDandVersion"]["UUID"].as_str().unwrap();
    zedmanager.set(key, &config.to_string());
}

fn subscribe(env: &Env, topic: &str) -> PeerSubscriber {
    PeerSubscriber::connect(&env.paths().status_dir, topic).unwrap_or_else(|e| panic!("domainmgr/{topic}: {e}"))
}

/// The simulated domains of `uuid` (EVE names a domain `<uuid>.<version>.<appnum>`).
fn domains_of(env: &Env, uuid: Uuid) -> usize {
    env.sim.domains().iter().filter(|d| d.spec.uuid == uuid).count()
}

fn state_of(view: &View, uuid: Uuid) -> Option<u64> {
    view.items.get(&uuid.to_string()).and_then(|s| s["State"].as_u64())
}

#[test]
fn eve_agents_drive_a_domain_and_see_every_topic_over_sockets_alone() {
    let mut env = Env::new();
    let agents = agents(&env);
    agents.settings.set("global", &json!({"GlobalSettings": {"timer.metric.interval": {"IntValue": 4}}}).to_string());
    env.start_with(pubsub_options(&env));

    let mut status = subscribe(&env, "DomainStatus");
    let (persistent, items, restarted) = status.snapshot(WAIT);
    assert!(!persistent && items.is_empty() && restarted.is_none(), "a fresh daemon publishes nothing yet");

    let uuid = Uuid::new_v4();
    publish_config(&agents.zedmanager, &config(uuid, "app", true));
    assert!(
        status.wait_for(WAIT, |v| state_of(v, uuid) == Some(RUNNING)),
        "RUNNING over the socket: {:?}",
        status.view()
    );
    let s = &status.view().items[&uuid.to_string()];
    assert_eq!(s["Activated"], true);
    assert!(s["DomainId"].as_u64().unwrap() > 0);
    assert_eq!(domains_of(&env, uuid), 1);

    let mut metric = subscribe(&env, "DomainMetric");
    assert!(metric.wait_for(WAIT, |v| v.items.contains_key(&uuid.to_string())), "its DomainMetric");
    assert!(metric.wait_for(WAIT, |v| v.items.contains_key(&Uuid::nil().to_string())), "dom0's DomainMetric");
    let mut memory = subscribe(&env, "HostMemory");
    assert!(memory.wait_for(WAIT, |v| v.items.get("global").is_some_and(|h| h["TotalMemoryMB"].as_u64() > Some(0))));
    let mut caps = subscribe(&env, "Capabilities");
    assert!(caps.wait_for(WAIT, |v| v.items.contains_key("global")));
    assert_eq!(
        caps.view().items["global"],
        json!({"HWAssistedVirtualization": true, "IOVirtualization": false, "CPUPinning": false, "UseVHost": false})
    );

    // Adapters: zedagent's list and nim's ports arrive over sockets; AssignableAdapters goes out.
    let mut assignable = subscribe(&env, "AssignableAdapters");
    agents.adapters.set("global", &json!({"Initialized": true, "AdapterList": []}).to_string());
    agents.network.set(
        "global",
        &json!({"DPCKey": "zedagent", "Ports": [{"IfName": "eth0", "Logicallabel": "eth0", "IsMgmt": true}]})
            .to_string(),
    );
    assert!(
        assignable.wait_for(WAIT, |v| v.items.get("global").is_some_and(|a| a["Initialized"] == true)),
        "AssignableAdapters: {:?}",
        assignable.view()
    );

    // Deactivate: HALTED, not activated; the domain is gone.
    publish_config(&agents.zedmanager, &config(uuid, "app", false));
    assert!(status.wait_for(WAIT, |v| state_of(v, uuid) == Some(HALTED)));
    assert_eq!(status.view().items[&uuid.to_string()]["Activated"], false);
    assert_eq!(domains_of(&env, uuid), 0);

    // Unpublish: the status is deleted (a `delete` message), and the metric with it.
    agents.zedmanager.remove(&uuid.to_string());
    assert!(status.wait_for(WAIT, |v| !v.items.contains_key(&uuid.to_string())), "DomainStatus deleted");
    assert!(metric.wait_for(WAIT, |v| !v.items.contains_key(&uuid.to_string())), "DomainMetric deleted");

    // EVE's agent directory is root's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.paths().status_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "domainmgr's directory: {mode:o}");

    // EVE's watchdog files.
    let pid = std::fs::read_to_string(env.dir.path().join("domainmgr.pid")).unwrap();
    assert_eq!(pid, std::process::id().to_string());
    assert!(env.dir.path().join("domainmgr.touch").exists());
    env.stop();
}

#[test]
fn checkpoint_files_are_not_inputs_with_pubsub() {
    let (mut env, agents, mut status) = started();
    // zedmanager's checkpoint file of a config it never published over its socket.
    let stray = Uuid::new_v4();
    env.write_config(&config(stray, "stray", true));
    let uuid = Uuid::new_v4();
    publish_config(&agents.zedmanager, &config(uuid, "app", true));
    assert!(status.wait_for(WAIT, |v| state_of(v, uuid) == Some(RUNNING)));
    assert!(!status.view().items.contains_key(&stray.to_string()), "a checkpoint file is not a config");
    assert_eq!(domains_of(&env, stray), 0);
    env.stop();
}

#[test]
fn after_a_kill_subscribers_converge_and_domainstatus_says_restarted() {
    let mut env = Env::new();
    let agents = agents(&env);
    env.start_with(pubsub_options(&env));
    let (kept, gone) = (Uuid::new_v4(), Uuid::new_v4());
    publish_config(&agents.zedmanager, &config(kept, "kept", true));
    publish_config(&agents.zedmanager, &config(gone, "gone", true));
    let mut status = subscribe(&env, "DomainStatus");
    assert!(status.wait_for(WAIT, |v| state_of(v, kept) == Some(RUNNING) && state_of(v, gone) == Some(RUNNING)));
    let domid = status.view().items[&kept.to_string()]["DomainId"].clone();

    env.kill();
    assert!(status.wait_closed(WAIT), "the killed daemon's socket closes");
    // While the daemon is away zedmanager deletes one app; the other keeps running.
    agents.zedmanager.remove(&gone.to_string());
    env.start_with(pubsub_options(&env));

    // A subscriber (re)connecting gets the checkpointed statuses at once, then the truth.
    let mut status = subscribe(&env, "DomainStatus");
    let (_, items, _) = status.snapshot(WAIT);
    assert!(items.contains_key(&kept.to_string()), "the last status is served at once: {items:?}");
    assert!(status.wait_for(WAIT, |v| !v.items.contains_key(&gone.to_string())), "what is gone is deleted");
    assert_eq!(status.view().items[&kept.to_string()]["DomainId"], domid, "same domain, untouched");
    assert_eq!(status.view().items[&kept.to_string()]["State"], RUNNING);
    assert_eq!(domains_of(&env, gone), 0, "its domain was halted");
    assert_eq!(domains_of(&env, kept), 1);

    // zedmanager restarted too and says so: DomainStatus follows once its statuses are out.
    agents.zedmanager.set_restarted(1);
    assert!(status.wait_for(WAIT, |v| v.restarted == Some(1)), "DomainStatus restarted: {:?}", status.view().restarted);
    env.stop();
}

#[test]
fn domains_running_at_start_wait_for_zedmanagers_snapshot() {
    let mut env = Env::new();
    let mut agents = agents(&env);
    env.start_with(pubsub_options(&env));
    let (uuid, idle) = (Uuid::new_v4(), Uuid::new_v4());
    publish_config(&agents.zedmanager, &config(uuid, "app", true));
    publish_config(&agents.zedmanager, &config(idle, "idle", false));
    let mut status = subscribe(&env, "DomainStatus");
    assert!(status.wait_for(WAIT, |v| state_of(v, uuid) == Some(RUNNING) && v.items.contains_key(&idle.to_string())));
    env.stop();
    // zedmanager is away when the daemon starts again: its domain keeps running, and the
    // statuses stay (a status deleted only to come back would confuse zedmanager).
    agents.zedmanager.close();
    env.start_with(pubsub_options(&env));
    let mut status = subscribe(&env, "DomainStatus");
    status.snapshot(WAIT);
    std::thread::sleep(common::REMOVAL_GRACE * 3); // a grace that must not start
    assert_eq!(domains_of(&env, uuid), 1, "not halted without zedmanager's word");
    assert_eq!(state_of(status.view(), uuid), Some(RUNNING));
    assert!(status.view().items.contains_key(&idle.to_string()), "{:?}", status.view().items.keys());
    // zedmanager comes back, with one config: that domain runs on; the other's status goes.
    agents.zedmanager = PeerPublisher::serve(&env.paths().config_dir, "DomainConfig", false);
    publish_config(&agents.zedmanager, &config(uuid, "app", true));
    let deadline = std::time::Instant::now() + common::REMOVAL_GRACE * 4;
    while std::time::Instant::now() < deadline {
        assert_eq!(domains_of(&env, uuid), 1);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(status.wait_for(WAIT, |v| !v.items.contains_key(&idle.to_string())), "the idle app's status is deleted");
    assert_eq!(state_of(status.view(), uuid), Some(RUNNING));
    env.stop();
}

#[test]
fn settings_come_from_zedagents_config_item_value_map() {
    let mut env = Env::new();
    let agents = agents(&env);
    env.start_with(pubsub_options(&env));
    agents.adapters.set("global", &json!({"Initialized": true, "AdapterList": []}).to_string());
    agents
        .network
        .set("global", &json!({"DPCKey": "zedagent", "Ports": [{"IfName": "eth0", "IsMgmt": true}]}).to_string());
    let log = env.dir.path().join("modprobe.log");
    let lines =
        || std::fs::read_to_string(&log).map(|l| l.lines().map(str::to_string).collect::<Vec<_>>()).unwrap_or_default();
    env.wait_for("the USB modules loaded (debug.enable.usb defaults to true)", || lines().len() == 1);
    agents.settings.set("global", &json!({"GlobalSettings": {"debug.enable.usb": {"BoolValue": false}}}).to_string());
    env.wait_for("the USB modules unloaded by zedagent's setting", || lines().len() == 2);
    assert!(lines()[1].starts_with("-r "), "{:?}", lines());
    env.stop();
}

#[test]
fn large_fields_arrive_through_their_files_and_the_files_are_removed() {
    let (mut env, agents, mut status) = started();
    let uuid = Uuid::new_v4();
    let mut c = config(uuid, "app", true);
    c["pubsub-large-CloudInitUserData"] = json!("I2Nsb3VkLWNvbmZpZwo=");
    agents.zedmanager.set_large(&uuid.to_string(), &c.to_string(), &large_root(&env));
    // Read through the file: the guest's cloud-init config disk holds the value, which it
    // could not without the file.
    assert!(
        status.wait_for(WAIT, |v| state_of(v, uuid) == Some(RUNNING)),
        "{:?}",
        status.view().items.get(&uuid.to_string())
    );
    let disks = status.view().items[&uuid.to_string()]["DiskStatusList"].clone();
    assert_eq!(disks[1]["Vdev"], "xvdz", "{disks}");
    let image = disks[1]["FileLocation"].as_str().unwrap_or_default().to_string();
    let out = std::process::Command::new("isoinfo")
        .args(["-R", "-x", "/user-data", "-i", &image])
        .output()
        .expect("isoinfo (Debian's genisoimage): run ./scripts/setup.sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "#cloud-config\n");
    let dir = large_root(&env).join("zedmanager/DomainConfig");
    let left: Vec<_> =
        std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "the subscriber deletes what it read: {left:?}");
    env.stop();
}

#[test]
fn a_config_key_spelling_a_uuid_otherwise_is_not_a_second_domain() {
    let (mut env, agents, mut status) = started();
    let uuid = Uuid::new_v4();
    let upper = uuid.to_string().to_uppercase();
    agents.zedmanager.set(&upper, &config(uuid, "app", true).to_string());
    agents.zedmanager.set("not-a-uuid", &json!({"garbage": true}).to_string());
    publish_config(&agents.zedmanager, &config(uuid, "app", true));
    assert!(status.wait_for(WAIT, |v| state_of(v, uuid) == Some(RUNNING)));
    env.supervisor_round_trip();
    assert_eq!(status.view().items.keys().collect::<Vec<_>>(), [&uuid.to_string()], "one status");
    assert_eq!(domains_of(&env, uuid), 1, "one domain");
    env.stop();
}
