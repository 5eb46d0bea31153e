//! The cost of one metrics sample (one hypervisor call for all domains, one for the host, and
//! the DomainMetric/HostMemory files written) at N simulated domains (default 1000).
//!
//! `cargo bench -p domainmgrd --bench metrics [-- DOMAINS]` prints a table.

// A benchmark that cannot set itself up should stop with a message; that is what expect does here.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use domainmgrd::eve::UuidAndVersion;
use domainmgrd::files::Paths;
use domainmgrd::metrics::{Brief, Registry, Sampler};
use domainmgrd::sim::SimHypervisor;
use xenctl::DomainSpec;

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = Arc::new(Paths::under(dir.path()));
    paths.create_all().expect("dirs");
    let sim = SimHypervisor::new();
    let registry: Registry = Arc::default();
    for i in 0..n {
        let spec = DomainSpec::pv(format!("app{i}")).kernel("/k").vcpus(2);
        let domid = sim.external_create(&spec);
        sim.set_cpu_time(domid, 1_000_000 * i as u64);
        registry.write().insert(
            spec.uuid,
            Brief {
                uuid_and_version: UuidAndVersion { uuid: spec.uuid, version: "1".into() },
                display_name: spec.name.clone(),
                domain_name: spec.name.clone(),
                state: "RUNNING".into(),
                domain_id: domid.get(),
                activated: true,
                vcpus: 2,
            },
        );
    }
    let outputs = domainmgrd::agent::Outputs::open(&paths.status_dir, None).expect("publications");
    let mut sampler = Sampler::new(Arc::new(sim), Arc::new(outputs), registry);
    sampler.sample_once().expect("first sample"); // creates the files
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            sampler.sample_once().expect("sample");
            t.elapsed()
        })
        .collect();
    times.sort();
    println!("metrics sample on SimHypervisor, {n} domains (+ dom0), 20 samples");
    println!("| measure | value |");
    println!("|---|---|");
    println!("| one sample: 1 list call + host info + {} files written (median) | {:.2?} |", n + 2, times[10]);
    println!("| min / max | {:.2?} / {:.2?} |", times[0], times[19]);
    println!("| per domain (median / {n}) | {:.2?} |", times[10] / n as u32);
}
