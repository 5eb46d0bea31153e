//! `domainctl run` on the simulated hypervisor: a container image becomes a transient domain
//! (its bundle, run spec and xl.cfg written by the daemon), the exit status its guest writes
//! into its own xenstore directory is read as it powers off, and `status NAME` still says it
//! once the transient domain is gone; a status that is not one is not believed.
//! (The guest side, on real Xen: tests/src/container_e2e.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::Env;
use domainmgrd::container::{Containers, RunRequest};
use domainmgrd::control::{Request, exit};

/// A one-layer image (`bin/app`).
fn image(dir: &Path) -> PathBuf {
    let mut layer = xen_oci::layout::Layer::new();
    layer.file("bin/app", b"hi\n", 0o755).unwrap();
    let run = xen_oci::RunConfig { entrypoint: vec!["/bin/app".into()], ..Default::default() };
    let path = dir.join("app.oci");
    xen_oci::layout::write_layout(&path, &[layer.finish().unwrap()], &run).unwrap();
    path
}

fn started(env: &mut Env) -> PathBuf {
    env.write_host_config("");
    let mut options = env.options();
    let dir = env.dir.path().to_path_buf();
    let dir = dir.as_path();
    std::fs::write(dir.join("vmlinux"), b"\x7fELF kernel").unwrap();
    std::fs::write(dir.join("init"), b"\x7fELF init").unwrap();
    options.containers = Containers {
        dir: domainmgrd::container::containers_dir(&env.paths().state_dir),
        init: dir.join("init"),
        kernel: dir.join("vmlinux"),
        modules_dir: None,
    };
    env.start_with(options);
    image(dir)
}

/// Runs the image as `name`, ends it after its guest wrote `status` as its exit status (the
/// guest powers off, or with `stop` an operator stops it), and waits for the transient domain
/// to be gone: `domainctl status NAME`'s answer.
fn run_and_end(env: &Env, image: &Path, name: &str, status: &str, stop: bool) -> domainmgrd::control::Response {
    let run = RunRequest { image: image.to_path_buf(), name: Some(name.into()), ..Default::default() };
    let r = env.control(&Request::Run { container: run });
    assert!(r.ok, "{r:?}");
    let dom = env.sim_named(name).pop().expect("its domain");
    assert_eq!(dom.spec.p9s.len(), 1, "the bundle is shared over 9pfs");
    env.sim.guest_write(dom.domid, xen_container_init::EXIT_KEY, status);
    if stop {
        let r = env.control(&Request::Stop { domain: name.into(), force: false, timeout_secs: None });
        assert!(r.ok, "{r:?}");
    } else {
        env.sim.guest_poweroff(dom.domid);
    }
    env.wait_for("the container's transient domain to go", || {
        env.control(&Request::List).data.to_string().find(name).is_none()
    });
    env.control(&Request::Status { domain: Some(name.into()) })
}

#[test]
fn a_containers_exit_status_is_in_its_status_after_its_domain_is_gone() {
    let mut env = Env::new();
    let image = started(&mut env);
    let r = run_and_end(&env, &image, "app", "3", false);
    assert_eq!(r.exit, exit::NOT_RUNNING, "{r:?}");
    assert_eq!((r.data["StateName"].as_str(), r.data["ExitStatus"].as_i64()), (Some("EXITED"), Some(3)), "{r:?}");

    // What a guest writes is not believed unless it is a status.
    let r = run_and_end(&env, &image, "liar", "3; echo pwned", false);
    assert_eq!(r.exit, exit::STATUS_UNKNOWN, "{r:?}");
    assert!(r.data["ExitStatus"].is_null(), "{r:?}");

    // Stopped by an operator (its init stops the entrypoint, which exits 0): the same.
    let r = run_and_end(&env, &image, "svc", "0", true);
    assert_eq!((r.data["StateName"].as_str(), r.data["ExitStatus"].as_i64()), (Some("EXITED"), Some(0)), "{r:?}");
}
