//! Containers as Xen guests: `domainctl run IMAGE` turns a container image into a transient
//! domain. [`Containers::prepare`] unpacks the image (xen-oci) into a bundle directory of its
//! own under the state directory (`containers/<uuid>/rootfs`, made once), writes the run spec
//! the guest's init reads (`xen-container.json`, xen-container-init's [`RunSpec`]) and an
//! xl.cfg for the domain (`domain.cfg`: the kernel, the cached initramfs of [`initrd`], the
//! bundle as a 9pfs share, the vif), which then goes the way of any `domainctl create FILE`:
//! the same parse, xl.conf, native devices and status. The guest's init writes the
//! entrypoint's exit status into its own xenstore directory; the daemon reads it as the guest
//! powers off (any domain's: [`read_exit_status`] takes it as untrusted input).

pub mod eve;
pub mod initrd;

use std::path::{Path, PathBuf};

use uuid::Uuid;
use xen_container_init::RunSpec;

pub use initrd::InitrdParts;

/// Where the container init is installed by the Debian package.
pub const PACKAGED_INIT: &str = "/usr/lib/domainmgrd/xen-container-init";

/// How the host boots containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containers {
    /// `<state>/containers`: a bundle per container, the initramfs cache.
    pub dir: PathBuf,
    /// The static init (`xen-container-init`).
    pub init: PathBuf,
    /// The guest kernel: dom0's by default.
    pub kernel: PathBuf,
    /// Its modules (`/lib/modules/<version>`), `None` for a kernel with all built in.
    pub modules_dir: Option<PathBuf>,
    /// The containerd whose snapshots EVE's container volumes are ([`eve::mount_root`]):
    /// EVE's user containerd by default, `None` to take volumes only with their root
    /// filesystem in place.
    pub snapshots: Option<xen_ctrd::Snapshots>,
}

impl Containers {
    /// Under `state_dir`, with dom0's running kernel and its modules, and the packaged init.
    pub fn for_this_host(state_dir: &Path) -> Containers {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
        Containers {
            dir: containers_dir(state_dir),
            init: PathBuf::from(PACKAGED_INIT),
            kernel: PathBuf::from(format!("/boot/vmlinuz-{release}")),
            modules_dir: Some(PathBuf::from(format!("/lib/modules/{release}"))).filter(|d| d.is_dir()),
            snapshots: Some(xen_ctrd::Snapshots::eve()),
        }
    }
}

/// What `domainctl run` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunRequest {
    /// The image: an OCI layout (directory or tar) or a `docker save` archive.
    pub image: PathBuf,
    /// The domain's name (default: the image's file name and a short id).
    pub name: Option<String>,
    /// MiB (default 128).
    pub memory_mib: Option<u64>,
    /// vCPUs (default 1).
    pub vcpus: Option<u32>,
    /// `K=V`, added to the image's environment (replacing a key it sets).
    pub env: Vec<String>,
    /// A vif on this bridge, configured by DHCP in the guest.
    pub bridge: Option<String>,
    /// Replaces the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's cmd.
    pub cmd: Option<Vec<String>>,
    /// Seconds between SIGTERM and SIGKILL at a graceful stop (default 10).
    pub stop_timeout_secs: Option<u32>,
}

/// A prepared container: its domain's xl.cfg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// `<bundle>/domain.cfg`.
    pub config: PathBuf,
    /// The domain's name.
    pub name: String,
}

/// A domain name from an image path: its file name without extensions, in xl's alphabet.
fn name_from(image: &Path, uuid: Uuid) -> String {
    let stem = image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or_default();
    let clean: String = stem.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).take(40).collect();
    let clean = if clean.is_empty() { "container".to_string() } else { clean };
    format!("{clean}-{}", &uuid.simple().to_string()[..8])
}

/// A string as an xl.cfg double-quoted value (refusing what it cannot hold).
fn quoted(what: &str, value: &str) -> Result<String, String> {
    if value.chars().any(|c| c == '"' || c == '\\' || c == '\'' || c.is_control()) {
        return Err(format!("{what} {value:?}: quotes, backslashes and control characters cannot go into an xl.cfg"));
    }
    Ok(format!("\"{value}\""))
}

impl Containers {
    /// The initramfs, built once per init and kernel modules directory (its name says which).
    fn initrd(&self) -> Result<PathBuf, String> {
        let stamp = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs())
        };
        let init_meta =
            std::fs::metadata(&self.init).map_err(|e| format!("the container init {}: {e}", self.init.display()))?;
        let kver = self.modules_dir.as_ref().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned());
        let name = format!(
            // v2: with modules.volumes.
            "initrd-v2-{}-{:x}-{:x}.cpio",
            kver.as_deref().unwrap_or("builtin"),
            init_meta.len(),
            stamp(&self.init) ^ self.modules_dir.as_deref().map_or(0, |d| stamp(&d.join("modules.dep")))
        );
        let path = self.dir.join(name);
        if !path.is_file() {
            std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
            let parts =
                InitrdParts { init: self.init.clone(), modules_dir: self.modules_dir.clone(), extra_modules: vec![] };
            initrd::build(&parts, &path)?;
            log::info!("built the container initramfs {}", path.display());
        }
        Ok(path)
    }

    /// Unpacks the image (once: a bundle's root filesystem is reused), writes the run spec and
    /// the domain's xl.cfg. Errors name the image and what failed.
    pub fn prepare(&self, req: &RunRequest, uuid: Uuid, cap_hvm: bool) -> Result<Prepared, String> {
        let image = &req.image;
        let name = req.name.clone().unwrap_or_else(|| name_from(image, uuid));
        let name_value = quoted("the name", &name)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let opened = xen_oci::Image::open(image).map_err(|e| e.to_string())?;
        let config = opened.config();
        let argv = config.argv(req.entrypoint.clone(), req.cmd.clone()).map_err(|e| e.to_string())?;
        let bundle = self.dir.join(uuid.to_string());
        std::fs::create_dir_all(&bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
        let rootfs = bundle.join("rootfs");
        if !rootfs.is_dir() {
            let done = opened.unpack(&rootfs).map_err(|e| e.to_string())?;
            for w in &done.warnings {
                log::warn!("{}: {w}", image.display());
            }
            log::info!(
                "{}: unpacked {} layers ({} entries, {} bytes) into {}",
                image.display(),
                done.layers,
                done.entries,
                done.bytes,
                rootfs.display()
            );
        }
        let mut env = config.env.clone();
        for kv in &req.env {
            let key = kv.split('=').next().unwrap_or_default();
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        let spec = RunSpec {
            argv,
            env,
            cwd: if config.working_dir.is_empty() { "/".into() } else { config.working_dir.clone() },
            user: config.user.clone(),
            hostname: name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(64).collect(),
            stop_timeout_secs: req.stop_timeout_secs.unwrap_or(10),
            // The vif's MAC is libxl's choice, unknown here: with no entry, the init configures
            // every eth* by DHCP.
            network: vec![],
            dns: vec![],
            volumes: vec![],
        };
        let json = spec.to_json()?;
        let spec_path = bundle.join(xen_container_init::SPEC_FILE);
        std::fs::write(&spec_path, json).map_err(|e| format!("{}: {e}", spec_path.display()))?;

        let initrd = self.initrd()?;
        // PVH where the host runs HVM guests and the kernel is an ELF image (Xen 4.17 boots no
        // bzImage as PVH); PV otherwise.
        let kind = if cap_hvm && is_elf(&self.kernel)? { "pvh" } else { "pv" };
        let mut cfg = format!(
            "# Written by domainmgrd for `domainctl run {image}`.\nname = {name}\nuuid = \"{uuid}\"\ntype = \"{kind}\"\nkernel = {kernel}\nramdisk = {initrd}\nextra = \"console=hvc0 quiet\"\nmemory = {memory}\nvcpus = {vcpus}\non_poweroff = \"destroy\"\non_reboot = \"restart\"\non_crash = \"destroy\"\np9 = [ \"tag={tag},security_model=none,path={bundle}\" ]\n",
            image = image.display(),
            name = name_value,
            kernel = quoted("the kernel", &self.kernel.to_string_lossy())?,
            initrd = quoted("the initramfs", &initrd.to_string_lossy())?,
            memory = req.memory_mib.unwrap_or(128),
            vcpus = req.vcpus.unwrap_or(1),
            tag = xen_container_init::SHARE_TAG,
            bundle = quoted("the bundle", &bundle.to_string_lossy())?.trim_matches('"'),
        );
        if let Some(bridge) = &req.bridge {
            cfg += &format!("vif = [ \"bridge={}\" ]\n", quoted("the bridge", bridge)?.trim_matches('"'));
        }
        let config_path = bundle.join("domain.cfg");
        std::fs::write(&config_path, cfg).map_err(|e| format!("{}: {e}", config_path.display()))?;
        Ok(Prepared { config: config_path, name })
    }
}

/// Whether the kernel at `path` is an ELF image (which Xen 4.17 boots as PVH; a bzImage only
/// as PV).
fn is_elf(path: &Path) -> Result<bool, String> {
    std::fs::File::open(path)
        .and_then(|mut f| {
            let mut magic = [0u8; 4];
            std::io::Read::read_exact(&mut f, &mut magic).map(|()| magic == *b"\x7fELF")
        })
        .map_err(|e| format!("the container kernel {}: {e}", path.display()))
}

/// `<state>/containers`: a bundle per container (`<uuid>/`), the initramfs cache.
pub fn containers_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("containers")
}

/// The console log in a container's bundle (`domainctl logs`): it outlives the domain, as its
/// exit record does. One older file, `console.log.1`, beside it.
pub const CONSOLE_LOG: &str = "console.log";

/// The bundle of the container whose domain has UUID `uuid`, if that domain is a container's.
pub fn bundle_of(containers: &Path, uuid: Uuid) -> Option<PathBuf> {
    let bundle = containers.join(uuid.to_string());
    bundle.join(xen_container_init::SPEC_FILE).is_file().then_some(bundle)
}

/// How many finished containers keep their bundle (exit record, console log): the oldest
/// beyond this go when another finishes.
pub const KEEP_EXITED: usize = 64;

/// Removes the bundles of finished containers (an exit record, no root filesystem) beyond the
/// newest `keep`; what it removed.
pub fn prune_exited(containers: &Path, keep: usize) -> Vec<PathBuf> {
    // A bundle whose root filesystem is still there is running, or waits to be restored.
    let mut done: Vec<(Exited, PathBuf)> =
        Exited::all(containers).filter(|(_, b)| !b.join("rootfs").exists()).collect();
    done.sort_by(|a, b| a.0.at.cmp(&b.0.at));
    let excess = done.len().saturating_sub(keep);
    done.into_iter().take(excess).filter_map(|(_, b)| std::fs::remove_dir_all(&b).is_ok().then_some(b)).collect()
}

/// A container's run is over (its transient domain is gone, and no saved image of it waits
/// to be restored): its root filesystem goes, its exit record and console log stay.
pub fn end_run(bundle: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(bundle.join("rootfs")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What is left of a container whose domain is gone: `<containers>/<uuid>/exit.json`, written
/// as its transient domain goes, read by `domainctl status NAME` afterwards.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Exited {
    /// The domain's name.
    pub name: String,
    /// The domain's (and the bundle's) UUID.
    pub uuid: Uuid,
    /// The entrypoint's exit status; `None` when the guest wrote none (it crashed, or was
    /// destroyed before its init could say).
    pub exit_status: Option<i32>,
    /// When its domain went, RFC 3339.
    pub at: String,
}

impl Exited {
    /// Writes the record into the container's bundle, if `uuid` is a container's.
    pub fn record(&self, containers: &Path) -> std::io::Result<()> {
        let bundle = containers.join(self.uuid.to_string());
        if !bundle.is_dir() {
            return Ok(());
        }
        let tmp = bundle.join(".exit.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, bundle.join("exit.json"))
    }

    /// The latest record of the container named (or with the UUID) `arg`; its bundle is
    /// [`bundle_of`] its `uuid`.
    pub fn find(containers: &Path, arg: &str) -> Option<Exited> {
        Exited::all(containers)
            .map(|(x, _)| x)
            .filter(|x| x.name == arg || x.uuid.to_string() == arg)
            .max_by(|a, b| a.at.cmp(&b.at))
    }

    /// Every readable record under `containers`, with its bundle.
    fn all(containers: &Path) -> impl Iterator<Item = (Exited, PathBuf)> {
        std::fs::read_dir(containers).into_iter().flatten().flatten().filter_map(|e| {
            let bundle = e.path();
            let x = serde_json::from_slice::<Exited>(&std::fs::read(bundle.join("exit.json")).ok()?).ok()?;
            Some((x, bundle))
        })
    }

    /// As `domainctl status` shows a domain's status (EVE's field names, our `ExitStatus`).
    pub fn status_json(&self) -> serde_json::Value {
        serde_json::json!({
            "DisplayName": self.name,
            "DomainName": self.name,
            "StateName": "EXITED",
            "DomainId": 0,
            "UUIDandVersion": {"UUID": self.uuid, "Version": ""},
            "ExitStatus": self.exit_status,
            "ExitTime": self.at,
        })
    }
}

/// A guest's exit status as its init wrote it (`data/container-exit-status`), or `None` if it
/// wrote none or something that is not a status (the guest owns the key: untrusted).
pub fn read_exit_status(value: Option<&str>) -> Option<i32> {
    value.and_then(xen_container_init::parse_exit_status)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image whose one layer holds `bin/app`; its run config.
    fn image(dir: &Path) -> PathBuf {
        let mut layer = xen_oci::layout::Layer::new();
        layer.file("bin/app", b"hi\n", 0o755).unwrap();
        let run = xen_oci::RunConfig {
            entrypoint: vec!["/bin/app".into()],
            cmd: vec!["--serve".into()],
            env: vec!["PATH=/bin".into(), "MODE=image".into()],
            working_dir: "/srv".into(),
            user: "1000".into(),
        };
        let path = dir.join("web.oci");
        xen_oci::layout::write_layout(&path, &[layer.finish().unwrap()], &run).unwrap();
        path
    }

    fn containers(dir: &Path, kernel: &[u8]) -> Containers {
        std::fs::write(dir.join("vmlinux"), kernel).unwrap();
        std::fs::write(dir.join("init"), b"\x7fELF init").unwrap();
        Containers {
            dir: dir.join("state/containers"),
            init: dir.join("init"),
            kernel: dir.join("vmlinux"),
            modules_dir: None,
            snapshots: None,
        }
    }

    #[test]
    fn an_image_becomes_a_bundle_a_run_spec_and_an_xl_cfg_xl_reads() {
        let dir = tempfile::tempdir().unwrap();
        let c = containers(dir.path(), b"\x7fELF kernel");
        let uuid = Uuid::from_u128(0x1234_5678_9abc_4def_8123_4567_89ab_cdef);
        let req = RunRequest {
            image: image(dir.path()),
            env: vec!["MODE=run".into(), "EXTRA=1".into()],
            bridge: Some("xenbr0".into()),
            cmd: Some(vec!["--once".into()]),
            memory_mib: Some(64),
            ..RunRequest::default()
        };
        let p = c.prepare(&req, uuid, true).unwrap();
        assert_eq!(p.name, "web-12345678");
        let bundle = c.dir.join(uuid.to_string());
        assert_eq!(std::fs::read(bundle.join("rootfs/bin/app")).unwrap(), b"hi\n");
        let spec = RunSpec::from_json(&std::fs::read(bundle.join(xen_container_init::SPEC_FILE)).unwrap()).unwrap();
        assert_eq!(spec.argv, ["/bin/app", "--once"]);
        assert_eq!(spec.env, ["PATH=/bin", "MODE=run", "EXTRA=1"]);
        assert_eq!((spec.cwd.as_str(), spec.user.as_str(), spec.stop_timeout_secs), ("/srv", "1000", 10));
        // The xl.cfg, read as the daemon reads any (libxlutil, in-process here).
        let text = std::fs::read(&p.config).unwrap();
        let parsed = crate::configfile::parse_xl_config("domain.cfg", &text).unwrap().spec;
        assert_eq!(parsed.name, "web-12345678");
        assert_eq!(parsed.p9s.len(), 1);
        assert_eq!((parsed.p9s[0].tag.as_str(), parsed.p9s[0].path.as_str()), ("share_dir", bundle.to_str().unwrap()));
        assert_eq!(parsed.vifs.len(), 1);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("type = \"pvh\"\n") && text.contains("memory = 64\n"), "{text}");
        assert!(c.dir.read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with("initrd-")));

        // Again (a restart): the root filesystem is reused, not unpacked over.
        std::fs::write(bundle.join("rootfs/kept"), b"state").unwrap();
        c.prepare(&req, uuid, true).unwrap();
        assert!(bundle.join("rootfs/kept").exists());
    }

    #[test]
    fn a_bzimage_or_a_host_without_hvm_runs_pv_and_bad_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = containers(dir.path(), b"MZ bzImage");
        let req = RunRequest { image: image(dir.path()), ..RunRequest::default() };
        let p = c.prepare(&req, Uuid::new_v4(), true).unwrap();
        assert!(std::fs::read_to_string(p.config).unwrap().contains("type = \"pv\"\n"));
        let bad = RunRequest { name: Some("a\"b".into()), ..req.clone() };
        let e = c.prepare(&bad, Uuid::new_v4(), true).unwrap_err();
        assert!(e.contains("cannot go into an xl.cfg"), "{e}");
        let missing = RunRequest { image: dir.path().join("nope"), ..req };
        assert!(c.prepare(&missing, Uuid::new_v4(), true).unwrap_err().contains("nope"));
    }

    #[test]
    fn an_exit_status_is_taken_only_when_it_is_one() {
        assert_eq!(read_exit_status(Some("3")), Some(3));
        assert_eq!(read_exit_status(Some("137\n")), Some(137));
        for bad in ["", "-1", "256", "3; rm -rf /", "x"] {
            assert_eq!(read_exit_status(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(read_exit_status(None), None);
    }

    #[test]
    fn only_the_newest_finished_containers_keep_their_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let finished = |n: u128, at: &str, running: bool| {
            let uuid = Uuid::from_u128(n);
            std::fs::create_dir_all(dir.path().join(uuid.to_string())).unwrap();
            if running {
                std::fs::create_dir_all(dir.path().join(uuid.to_string()).join("rootfs")).unwrap();
            }
            Exited { name: format!("c{n}"), uuid, exit_status: Some(0), at: at.into() }.record(dir.path()).unwrap();
            dir.path().join(uuid.to_string())
        };
        let old = finished(1, "2026-12-01T00:00:00Z", false);
        let mid = finished(2, "2026-12-02T00:00:00Z", false);
        let new = finished(3, "2026-12-03T00:00:00Z", false);
        let live = finished(4, "2026-11-01T00:00:00Z", true); // its root filesystem is there: kept
        assert_eq!(prune_exited(dir.path(), 2), vec![old.clone()]);
        assert!(!old.exists() && mid.exists() && new.exists() && live.exists());
        assert!(prune_exited(dir.path(), 2).is_empty());
    }
}
