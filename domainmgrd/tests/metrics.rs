//! CPU and memory metrics of the daemon against the simulator's known numbers: EVE's
//! DomainMetric and HostMemory files, and the same numbers on the Prometheus endpoint.

// Test helpers below fail by panicking, which is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod probe;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use domainmgrd::eve::SwState;
use domainmgrd::supervisor::Daemon;
use serde_json::Value;
use uuid::Uuid;
use xenctl::DomId;

fn metric(env: &Env, uuid: Uuid) -> Option<Value> {
    let path = env.paths().status_dir.join(format!("DomainMetric/{uuid}.json"));
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn host_memory(env: &Env) -> Value {
    serde_json::from_slice(&std::fs::read(env.paths().status_dir.join("HostMemory/global.json")).unwrap()).unwrap()
}

fn scrape(addr: SocketAddr) -> String {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    s
}

#[test]
fn metrics_report_the_hypervisors_numbers_scaled_as_eve_does() {
    let mut env = Env::new();
    env.flags.push("timer.metric.interval:4".into()); // a sample a second
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut options = env.options();
    options.metrics_listen = Some(domainmgrd::prometheus::Listen::Tcp(addr));
    let probe = probe::Probe::new(&env.sim);
    env.daemon = Some(Daemon::start(options, Arc::new(probe.clone())).unwrap());
    let uuid = Uuid::new_v4();
    let mut cfg = config(uuid, "metered", true);
    cfg["VCpus"] = 2.into();
    cfg["Memory"] = 262144.into();
    cfg["MaxMem"] = 524288.into();
    env.write_config(&cfg);
    let st = env.wait_state(uuid, SwState::RUNNING);
    env.sim.set_cpu_time(DomId::new(st.domain_id), 8_000_000_000);
    env.sim.set_cpu_time(DomId::DOM0, 8_000_000_000);

    env.wait_for("a metric with the CPU time", || {
        metric(&env, uuid).is_some_and(|m| m["CPUTotalNs"] == 4_000_000_000u64)
    });
    let m = metric(&env, uuid).unwrap();
    assert_eq!(m["CPUScaled"], 2, "divided by the vCPUs, as EVE does");
    assert_eq!(
        (m["AllocatedMB"].as_u64(), m["UsedMemory"].as_u64(), m["AvailableMemory"].as_u64()),
        (Some(256), Some(256), Some(256))
    );
    assert_eq!(m["UsedMemoryPercent"], 50.0);
    assert_eq!((m["Activated"] == true, m["MaxUsedMemory"].as_u64()), (true, Some(256)));
    assert!(m["LastHeard"].as_str().is_some_and(|t| t.starts_with("20")));

    // dom0 stands for the whole device (EVE's xen.go): every domain's CPU time over 8 CPUs.
    env.wait_for("dom0's metric with both CPU times", || {
        metric(&env, Uuid::nil()).is_some_and(|m| m["CPUTotalNs"] == 2_000_000_000u64)
    });
    let dom0 = metric(&env, Uuid::nil()).unwrap();
    assert_eq!((dom0["Activated"] == true, dom0["CPUScaled"].as_u64()), (true, Some(8)));
    // HostMemory is written after the domains' files: wait for the one that counts our guest.
    let free = (1 << 20) - 1024 - 256;
    env.wait_for("HostMemory with the guest", || host_memory(&env)["FreeMemoryMB"] == free);
    let host = host_memory(&env);
    assert_eq!(
        (host["Ncpus"].as_u64(), host["TotalMemoryMB"].as_u64(), host["UsedEveMB"].as_u64()),
        (Some(8), Some(1 << 20), Some(1024))
    );

    // The same numbers on the Prometheus endpoint, by name and UUID (the domid is info only).
    let labels = format!("{{domain=\"metered\",uuid=\"{uuid}\"}}");
    env.wait_for("the endpoint to serve the CPU time", || {
        scrape(addr).contains(&format!("xen_domain_cpu_seconds_total{labels} 8\n"))
    });
    let text = scrape(addr);
    for line in [
        format!("xen_domain_memory_bytes{labels} 268435456\n"),
        format!("xen_domain_memory_max_bytes{labels} 536870912\n"),
        format!("xen_domain_memory_used_ratio{labels} 0.5\n"),
        format!("xen_domain_info{{domain=\"metered\",uuid=\"{uuid}\",domid=\"{}\"}} 1\n", st.domain_id),
        format!("xen_domain_cpu_seconds_total{{domain=\"Domain-0\",uuid=\"{}\"}} 8\n", Uuid::nil()),
        format!("xen_host_memory_bytes {}\n", 1u64 << 40),
        "xen_host_eve_memory_bytes 1073741824\n".to_string(),
    ] {
        assert!(text.contains(&line), "{line}in:\n{text}");
    }

    // physinfo fails: the domains' metrics go on; HostMemory is left as it was. Samples run one
    // after the other, and each writes HostMemory after the domains' files, so once the metric
    // of a later sample is there, the earlier sample's HostMemory write (if any) is done.
    probe.fail_host_info(true);
    let sampled_with = |ns: u64| {
        env.sim.set_cpu_time(DomId::new(st.domain_id), ns);
        env.wait_for("a metric without physinfo", || metric(&env, uuid).is_some_and(|m| m["CPUTotalNs"] == ns / 2));
    };
    let file = env.paths().status_dir.join("HostMemory/global.json");
    let inode = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&file).unwrap());
    sampled_with(10_000_000_000); // a sample without physinfo
    sampled_with(12_000_000_000); // another: the samples before the failure are all done
    let before = inode();
    sampled_with(14_000_000_000);
    assert_eq!(inode(), before, "HostMemory was not rewritten without physinfo");
    assert_eq!(host_memory(&env), host);
    probe.fail_host_info(false);

    // A halted domain's metric says so, keeping its last CPU time; Prometheus has no counter.
    cfg["Activate"] = false.into();
    env.write_config(&cfg);
    env.wait_state(uuid, SwState::HALTED);
    env.wait_for("an inactive metric", || metric(&env, uuid).is_some_and(|m| m["Activated"] == false));
    let m = metric(&env, uuid).unwrap();
    assert_eq!((m["UsedMemory"].as_u64(), m["CPUTotalNs"].as_u64()), (Some(0), Some(7_000_000_000)));
    env.wait_for("the endpoint to say it is not running", || {
        scrape(addr).contains(&format!("xen_domain_running{labels} 0\n"))
    });
    let text = scrape(addr);
    let halted: Vec<&str> = text.lines().filter(|l| l.contains(&format!("uuid=\"{uuid}\""))).collect();
    assert_eq!(halted, [format!("xen_domain_running{labels} 0")], "{text}");
    // A deleted domain's metric goes.
    env.delete_config(uuid);
    env.wait_for("the metric to be removed", || metric(&env, uuid).is_none());
}
