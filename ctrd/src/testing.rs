//! For tests of this crate and its users (feature `testing`): a containerd of a test's own,
//! with its root, state and sockets in a temporary directory (Debian's containerd, as
//! `scripts/setup.sh` installs it; `$CONTAINERD` names another), and an image layer committed
//! into it from a directory filled by the test, as EVE's volume manager's import leaves one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{DEFAULT_SNAPSHOTTER, Snapshots, unmount};

/// A private containerd, killed when dropped.
#[derive(Debug)]
pub struct PrivateContainerd {
    child: Child,
    dir: tempfile::TempDir,
}

/// The containerd binary: `$CONTAINERD`, else Debian's or a local one.
pub fn find_binary() -> Option<PathBuf> {
    std::env::var_os("CONTAINERD")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/bin/containerd", "/usr/local/bin/containerd"].map(PathBuf::from))
        .find(|p| p.exists())
}

impl PrivateContainerd {
    /// Starts one and waits (up to a minute) until its snapshot service answers; or says why
    /// it cannot (not root, no containerd).
    pub fn start() -> Result<PrivateContainerd, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("containerd's overlay snapshots need root".into());
        }
        let bin = find_binary().ok_or("containerd is not installed (scripts/setup.sh installs it)")?;
        let dir = tempfile::Builder::new().prefix("ctrd-").tempdir().map_err(|e| e.to_string())?;
        let d = dir.path().display();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/c.sock\"\n[ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n\
             [debug]\n  address = \"{d}/debug.sock\"\n"
        );
        std::fs::write(dir.path().join("config.toml"), config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.path().join("containerd.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let ctrd = PrivateContainerd { child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        // Ready when the snapshot service answers (an unknown key: NotFound).
        loop {
            match ctrd.snapshots("probe").stat("probe") {
                Err(e) if e.is_not_found() => return Ok(ctrd),
                r if Instant::now() > deadline => {
                    return Err(format!("containerd did not come up: {r:?}\n{}", ctrd.log()));
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Its gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("c.sock")
    }

    /// Its snapshot service for `namespace`, through the overlay snapshotter.
    pub fn snapshots(&self, namespace: &str) -> Snapshots {
        Snapshots::new(self.socket(), namespace, DEFAULT_SNAPSHOTTER)
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The label that keeps containerd's garbage collector off a snapshot (EVE's volume manager
/// puts it on each container snapshot; an image holds its layers by reference instead).
pub const GC_ROOT: (&str, &str) = ("containerd.io/gc.root", "2026-12-04T00:00:00Z");

/// Commits a layer named `chain` whose files `fill` writes into the directory it is given,
/// kept from the garbage collector by [`GC_ROOT`].
pub fn commit_layer(
    snapshots: &Snapshots,
    chain: &str,
    fill: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), String> {
    let key = format!("extract-{chain}");
    let mounts = snapshots.prepare(&key, "", &[GC_ROOT]).map_err(|e| e.to_string())?;
    let at = tempfile::tempdir().map_err(|e| e.to_string())?;
    let first = mounts.first().ok_or("no mounts for a new snapshot")?;
    first.mount_at(at.path()).map_err(|e| e.to_string())?;
    let filled = fill(at.path());
    unmount(at.path()).map_err(|e| e.to_string())?;
    filled.map_err(|e| format!("filling layer {chain}: {e}"))?;
    snapshots.commit(&key, chain, &[GC_ROOT]).map_err(|e| e.to_string())
}
