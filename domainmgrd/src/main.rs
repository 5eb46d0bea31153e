//! domainmgrd: the dom0 domain manager daemon.
//!
//! For now (the foundation step) it opens the libxl context, prints the host's CPUs and memory
//! and the domains that run, and exits. On a machine without Xen it exits with status 1 and one
//! sentence saying so.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use xenctl::Context;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("domainmgrd: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), xenctl::Error> {
    let ctx = Context::open()?;
    let host = ctx.host_info()?;
    println!(
        "host: Xen {}, {} CPUs at {} MHz, {} MiB memory, {} MiB free",
        host.xen_version,
        host.nr_cpus,
        host.cpu_khz / 1000,
        host.total_memory_bytes >> 20,
        host.free_memory_bytes >> 20
    );
    println!("{:<24} {:>5} {:>8} {:>5} {:>6} {:>10}", "Name", "ID", "Mem(MiB)", "VCPUs", "State", "Time(s)");
    for d in ctx.list()? {
        println!(
            "{:<24} {:>5} {:>8} {:>5} {:>6} {:>10.1}",
            d.name.as_deref().unwrap_or("(none)"),
            d.domid,
            d.current_memory_kib / 1024,
            d.vcpus_online,
            d.state.letter(),
            d.cpu_time_ns as f64 / 1e9
        );
    }
    Ok(())
}

/// "outer: inner: innermost", each message once.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
