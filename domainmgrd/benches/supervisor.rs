//! The supervisor at scale, on the simulated hypervisor: N domains (default 1000) from config
//! files to RUNNING, memory, CPU while idle, stop, and a restart adopting them all.
//!
//! `cargo bench -p domainmgrd --bench supervisor [-- DOMAINS]` prints a table. The numbers are
//! the daemon's own work (threads, files, state machines): the simulator answers instantly.

// A benchmark that cannot set itself up should stop with a message; that is what expect does here.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use domainmgrd::files::Paths;
use domainmgrd::sim::{Op, SimHypervisor};
use domainmgrd::supervisor::{Daemon, Options};
use serde_json::json;

fn proc_status(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// This process's CPU time (user + system).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name; clock ticks of 10 ms.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn count_running(paths: &Paths) -> usize {
    let Ok(entries) = std::fs::read_dir(paths.domain_status_dir()) else { return 0 };
    entries
        .flatten()
        .filter(|e| {
            std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v["State"] == 115)
        })
        .count()
}

fn wait_all_running(paths: &Paths, n: usize) -> Duration {
    let start = Instant::now();
    while count_running(paths) < n {
        assert!(start.elapsed() < Duration::from_secs(600), "not all {n} domains RUNNING within 10 min");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = Paths::under(dir.path());
    paths.create_all().expect("dirs");
    let sim = SimHypervisor::new();
    let options = Options::new(paths.clone());
    let rss_before = proc_status("VmRSS:");

    let daemon = Daemon::start(options.clone(), Arc::new(sim.client())).expect("start");
    let t0 = Instant::now();
    for i in 0..n {
        let uuid = uuid::Uuid::new_v4();
        let cfg = json!({
            "UUIDandVersion": {"UUID": uuid.to_string(), "Version": "1"},
            "DisplayName": format!("app{i}"), "Activate": true, "AppNum": i + 1,
            "Kernel": "/k", "Memory": 131072, "VCpus": 1, "VirtualizationMode": 0,
            "VifList": [{"Bridge": "bn1", "Vif": format!("nbu{i}"), "MTU": 1500}],
        });
        let tmp = paths.domain_config_dir().join(format!(".{uuid}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(&cfg).expect("json")).expect("write");
        std::fs::rename(&tmp, paths.domain_config_dir().join(format!("{uuid}.json"))).expect("rename");
    }
    let written = t0.elapsed();
    wait_all_running(&paths, n);
    let all_running = t0.elapsed();
    let rss = proc_status("VmRSS:");
    let threads = proc_status("Threads:");

    std::thread::sleep(Duration::from_secs(2)); // let the last status writes settle
    let idle_window = Duration::from_secs(10);
    let cpu0 = cpu_time();
    std::thread::sleep(idle_window);
    let idle_cpu = cpu_time() - cpu0;

    let t1 = Instant::now();
    daemon.stop();
    let stop = t1.elapsed();
    let live = sim.domains().iter().filter(|d| d.state.is_live()).count();

    let creates = sim.calls(Op::Create);
    let t2 = Instant::now();
    let daemon = Daemon::start(options, Arc::new(sim.client())).expect("restart");
    let started = t2.elapsed();
    wait_all_running(&paths, n);
    let adopted = t2.elapsed();
    let recreated = sim.calls(Op::Create) - creates;
    daemon.stop();

    println!(
        "supervisor on SimHypervisor, {n} domains ({} CPUs)",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| config files written | {written:.2?} |");
    println!("| first config written -> all {n} RUNNING (status files) | {all_running:.2?} |");
    println!(
        "| RSS with {n} domains (daemon + simulator) | {} MiB (+{} MiB over the empty process) |",
        rss / 1024,
        rss.saturating_sub(rss_before) / 1024
    );
    println!("| threads | {threads} |");
    println!(
        "| CPU while idle | {:.2?} over {idle_window:?} ({:.3}%) |",
        idle_cpu,
        idle_cpu.as_secs_f64() / idle_window.as_secs_f64() * 100.0
    );
    println!("| stop (every thread joined) | {stop:.2?}; domains still running after stop: {live}/{n} |");
    println!("| restart: Daemon::start returned | {started:.2?} |");
    println!("| restart: all {n} RUNNING again (adopted) | {adopted:.2?}; domains re-created: {recreated} |");
}
