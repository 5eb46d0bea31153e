//! What the host tests (host.rs, host_save.rs) share: reading host-start/host-stop reports,
//! and waiting on the daemon's own ordering instead of on time.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::thread::JoinHandle;

use domainmgrd::control::{Request, Response};
use domainmgrd::domain::Report;

use crate::common::Env;

pub fn reports(r: &Response) -> Vec<Report> {
    serde_json::from_value(r.data.clone()).unwrap_or_else(|e| panic!("not reports ({e}): {r:?}"))
}

pub fn report_of<'a>(reports: &'a [Report], name: &str) -> &'a Report {
    reports.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no report for {name}: {reports:#?}"))
}

pub fn stop(domain: &str) -> Request {
    Request::Stop { domain: domain.into(), force: false, timeout_secs: None }
}

pub fn running(env: &Env, name: &str) -> bool {
    env.sim_named(name).iter().any(|d| !matches!(d.state, xenctl::DomainState::Dying))
}

/// Waits until the thread of the domain called `name` has published its status, which it does
/// only after it first decided whether to boot it.
pub fn wait_published(env: &Env, name: &str) {
    env.wait_for(&format!("{name}'s first status"), || {
        env.control(&Request::Status { domain: Some(name.into()) }).exit != 4
    });
}

/// Two requests through the thread of the domain called `name`: the second is answered only
/// after the thread went once more through deciding whether to boot it, so a domain that was
/// going to come back on its own has by then. (A restart of a domain that does not run is
/// refused and changes nothing.)
pub fn settle(env: &Env, name: &str) {
    for _ in 0..2 {
        let r = env.control(&Request::Restart { domain: name.into(), timeout_secs: None });
        assert_eq!(r.error.as_deref(), Some(format!("{name}: not running").as_str()), "{r:?}");
    }
}

/// Sends `request` from another thread (for requests that wait on something the test does).
pub fn in_background(env: &Env, request: Request) -> JoinHandle<Response> {
    let socket = env.paths().run_dir.join("domainmgrd.sock");
    std::thread::spawn(move || domainmgrd::control::call(&socket, &request).unwrap())
}
