//! EVE's container apps: an app whose first disk is of Format CONTAINER runs its image the way
//! EVE runs one on Xen (pillar's domainmgr and `hypervisor/xen.go`, xen-tools' runx initrd),
//! with the daemon's container kernel and init. The volume EVE's volume manager prepared is
//! shared with the guest as it is: `<volume>/rootfs`, the image's root filesystem, and
//! `<volume>/image-config.json`, its OCI image configuration. EVE's volume manager leaves the
//! root filesystem as a containerd snapshot named after the volume; as EVE's domainmgr does,
//! the daemon mounts it at `rootfs` before the first boot ([`mount_root`], through xen-ctrd)
//! and unmounts it when the app is halted for good ([`unmount_root`]); a volume with its root
//! filesystem in place is taken as it is. At each boot the daemon writes
//! the run spec the guest's init reads into the volume ([`SPEC_FILE`]), as EVE writes
//! `cmdline`, `environment` and `ug` there: the image's entrypoint and cmd, env (a default
//! `PATH` when it has none), working directory and user; then the variables of the app's
//! cloud-init user data ([`env_variables`]: EVE's `EnvVariables`), of which `EVE_ECO_CMD`
//! replaces the command line; each vif by its MAC with its MTU, by DHCP (EVE's `dhcp=1`).
//! The kernel and ramdisk zedmanager fills in for a container ([`EVE_KERNEL`],
//! [`EVE_RAMDISK`], which live in EVE's xen-tools container) mean the host's container kernel
//! and the daemon's initramfs; an app that names its own gets them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use xen_container_init::{NetConfig, RunSpec, SPEC_FILE};
use xenctl::{DomainKind, DomainSpec};

use super::Containers;

/// The kernel zedmanager gives a container app that names none (the host's, in EVE's
/// xen-tools container).
pub const EVE_KERNEL: &str = "/hostfs/boot/kernel";
/// The ramdisk zedmanager gives a container app that names none (EVE's runx init).
pub const EVE_RAMDISK: &str = "/usr/lib/xen/boot/runx-initrd";
/// The variable whose value replaces a container's command line (split at white space).
pub const ECO_CMD: &str = "EVE_ECO_CMD";
/// The image configuration EVE's volume manager writes into a container volume.
pub const IMAGE_CONFIG: &str = "image-config.json";
/// The `PATH` a container gets when its image sets no environment (containerd's default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The variables a container app takes from its cloud-init user data, as EVE's domainmgr reads
/// them: a `#cloud-config` document's `runcmd` entries, or else every line, each `KEY=VALUE`
/// (spaces and double quotes around the key and the value trimmed), then parsed as an env file
/// (go-envparse: blank lines and `#` comments skipped, `export` allowed, escapes in the value).
/// Any line that is not a variable is an error naming it.
pub fn env_variables(user_data: &str) -> Result<BTreeMap<String, String>, String> {
    let lines: Vec<String> = if user_data.split('\n').next().is_some_and(|l| l.starts_with("#cloud-config")) {
        runcmd(user_data)?
    } else {
        user_data.split('\n').map(str::to_string).collect()
    };
    let mut vars = BTreeMap::new();
    for line in &lines {
        let text = match line.split_once('=') {
            Some((k, v)) => format!("{}=\"{}\"", k.trim_matches([' ', '"']), v.trim_matches([' ', '"'])),
            None => line.clone(),
        };
        if let Some((key, value)) =
            env_line(&text).map_err(|e| format!("Error processing environment variables: {e}"))?
        {
            vars.insert(key, value);
        }
    }
    Ok(vars)
}

/// A `#cloud-config` document's `runcmd` list (each entry a string, as EVE's `CloudConfig`
/// struct reads it).
fn runcmd(text: &str) -> Result<Vec<String>, String> {
    use yaml_rust2::{Yaml, YamlLoader};
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("failed to unmarshal cloud-init userdata: {e}"))?;
    let Some(doc) = docs.first() else { return Ok(Vec::new()) };
    match &doc["runcmd"] {
        Yaml::BadValue | Yaml::Null => Ok(Vec::new()),
        Yaml::Array(items) => items
            .iter()
            .map(|i| match i {
                Yaml::String(s) => Ok(s.clone()),
                Yaml::Integer(n) => Ok(n.to_string()),
                other => {
                    Err(format!("failed to unmarshal cloud-init userdata: runcmd entry {other:?} is not a string"))
                }
            })
            .collect(),
        other => Err(format!("failed to unmarshal cloud-init userdata: runcmd is {other:?}, not a list")),
    }
}

/// One line of an env file: `None` for a blank line or a comment.
fn env_line(line: &str) -> Result<Option<(String, String)>, String> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let body = trimmed.strip_prefix("export ").map_or(trimmed, str::trim_start);
    let Some((key, value)) = body.split_once('=') else {
        return Err(format!("line {trimmed:?}: not KEY=VALUE"));
    };
    let key_ok = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !key_ok {
        return Err(format!("line {trimmed:?}: {key:?} is not a variable name"));
    }
    Ok(Some((key.to_string(), unquote(value).map_err(|e| format!("line {trimmed:?}: {e}"))?)))
}

/// A value as an env file gives it: bare, `'single'` (as it is) or `"double"` quoted (with
/// backslash escapes); nothing may follow the closing quote but a comment.
fn unquote(value: &str) -> Result<String, String> {
    let value = value.trim();
    let Some(quote) = value.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        if value.contains(['"', '\'']) {
            return Err("a quote inside an unquoted value".into());
        }
        return Ok(value.split(" #").next().unwrap_or_default().trim_end().to_string());
    };
    let mut out = String::new();
    let mut chars = value[1..].chars();
    loop {
        match chars.next() {
            None => return Err("the quoted value does not end".into()),
            Some(c) if c == quote => break,
            Some('\\') if quote == '"' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(c @ ('\\' | '"' | '$' | '`' | '\'')) => out.push(c),
                Some(c) => return Err(format!("unknown escape \\{c}")),
                None => return Err("the quoted value does not end".into()),
            },
            Some(c) => out.push(c),
        }
    }
    let rest = chars.as_str().trim();
    if !rest.is_empty() && !rest.starts_with('#') {
        return Err(format!("{rest:?} after the closing quote"));
    }
    Ok(out)
}

/// The run spec of the container app in `volume`: its image's configuration, `env` added
/// (replacing what the image sets for the same name), `EVE_ECO_CMD` as its command line when
/// set, `vifs` (MAC and MTU) by DHCP. Errors name the volume and what is missing.
pub fn run_spec(
    volume: &Path,
    env: &BTreeMap<String, String>,
    vifs: &[(Option<String>, u32)],
    hostname: &str,
) -> Result<RunSpec, String> {
    let rootfs = volume.join("rootfs");
    let has_root = std::fs::read_dir(&rootfs).map(|mut d| d.next().is_some());
    match has_root {
        Ok(true) => {}
        Ok(false) | Err(_) => {
            return Err(format!(
                "{}: no root filesystem there (containerd has no snapshot {:?} to mount there, and the volume holds none in place)",
                rootfs.display(),
                snapshot_id(volume)
            ));
        }
    }
    let image = xen_oci::RunConfig::read_image_config(&volume.join(IMAGE_CONFIG)).map_err(|e| e.to_string())?;
    let mut vars = if image.env.is_empty() { vec![DEFAULT_PATH.to_string()] } else { image.env.clone() };
    for (k, v) in env {
        vars.retain(|e| e.split('=').next() != Some(k.as_str()));
        vars.push(format!("{k}={v}"));
    }
    let argv = match env.get(ECO_CMD).map(|c| c.trim_matches([' ', '"'])).filter(|c| !c.is_empty()) {
        Some(cmd) => cmd.split_whitespace().map(str::to_string).collect(),
        None => image.argv(None, None).map_err(|e| format!("{}: {e}", volume.join(IMAGE_CONFIG).display()))?,
    };
    // By MAC when every vif has one (zedmanager gives each one); else DHCP on every eth*.
    let network = if vifs.iter().all(|(mac, _)| mac.is_some()) {
        vifs.iter()
            .map(|(mac, mtu)| NetConfig {
                mac: mac.clone().unwrap_or_default(),
                mtu: (*mtu != 0).then_some(*mtu),
                dhcp: true,
                ..NetConfig::default()
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(RunSpec {
        argv,
        env: vars,
        cwd: if image.working_dir.is_empty() { "/".into() } else { image.working_dir.clone() },
        user: image.user.clone(),
        hostname: hostname.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(64).collect(),
        network,
        ..RunSpec::default()
    })
}

/// The block volumes of a container app that go into its root filesystem, as EVE's runx
/// initrd mounts them: each disk with a `MountDir` (its `Devtype` not the container's nor the
/// 9P share's), by the device name the guest gives it, read-only if the disk is. A `MountDir`
/// that is not an absolute directory below `/` is an error naming it.
pub fn volume_mounts(disks: &[crate::eve::DiskStatus]) -> Result<Vec<xen_container_init::VolumeMount>, String> {
    let mut mounts = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        if d.devtype.is_empty() || d.devtype == "9P" || d.mount_dir.is_empty() {
            continue;
        }
        let mount = xen_container_init::VolumeMount {
            device: d.vdev.clone(),
            target: d.mount_dir.clone(),
            read_only: d.read_only,
        };
        mount.validate().map_err(|e| format!("DiskConfigList[{i}].MountDir: {:?}: {e}", d.mount_dir))?;
        mounts.push(mount);
    }
    Ok(mounts)
}

/// How much of a volume must be zeros for it to be blank: where every file system and
/// partition table this kernel knows keeps its signature.
const BLANK_PROBE: usize = 1 << 20;

/// Gives a blank raw volume (`path`, a file or a block device, its first MiB all zeros) an ext4
/// file system, as EVE's runx initrd does in the guest (`mke2fs -t ext4` where `blkid` finds
/// none); here in dom0, with `mkfs.ext4`, before the guest boots. Whether it did.
pub fn format_if_blank(path: &Path) -> Result<bool, String> {
    use std::io::Read;
    let mut head = Vec::with_capacity(BLANK_PROBE);
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.take(BLANK_PROBE as u64).read_to_end(&mut head).map_err(|e| format!("{}: {e}", path.display()))?;
    if head.is_empty() || head.iter().any(|&b| b != 0) {
        return Ok(false);
    }
    let out = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(path)
        .output()
        .map_err(|e| format!("mkfs.ext4 {}: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!(
            "mkfs.ext4 {}: {}: {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(true)
}

/// The file in which EVE's upgrade converter left the snapshot name of a volume whose
/// directory name is not it.
pub const SNAPSHOT_ID_FILE: &str = "snapshotid.txt";

/// The containerd snapshot of container volume `volume`, as EVE's `GetSnapshotID` names it:
/// what `snapshotid.txt` in it says, else the volume directory's name (volumemgr's
/// `<uuid>#<generation>.container`).
pub fn snapshot_id(volume: &Path) -> String {
    match std::fs::read_to_string(volume.join(SNAPSHOT_ID_FILE)) {
        Ok(id) if !id.trim().is_empty() => id.trim_end_matches(['\n', '\r']).to_string(),
        _ => volume.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    }
}

/// How a container volume's root filesystem came to be there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// Already mounted (by an earlier boot, or by someone else).
    Mounted,
    /// Mounted now from containerd's snapshot of that name.
    MountedNow(String),
    /// In place in the volume (no containerd, or no snapshot of the volume's name).
    InPlace,
}

/// Before a container app boots, as EVE's domainmgr does: its volume's containerd snapshot
/// mounted at `<volume>/rootfs`, unless something is mounted there already. A volume that
/// containerd has no snapshot for (or no containerd) is taken with its root filesystem in
/// place; [`run_spec`] then checks there is one.
pub fn mount_root(snapshots: Option<&xen_ctrd::Snapshots>, volume: &Path) -> Result<Root, String> {
    let rootfs = volume.join("rootfs");
    if xen_ctrd::mounted(&rootfs).map_err(|e| e.to_string())? {
        return Ok(Root::Mounted);
    }
    let Some(snapshots) = snapshots.filter(|s| s.socket().exists()) else {
        return Ok(Root::InPlace);
    };
    let id = snapshot_id(volume);
    let failed =
        |e: &dyn std::fmt::Display| format!("{}: failed to mount containerd snapshot {id:?}: {e}", rootfs.display());
    match snapshots.mounts(&id) {
        Ok(mounts) => {
            let first = mounts.first().ok_or_else(|| failed(&"containerd returned no mounts"))?;
            std::fs::create_dir_all(&rootfs).map_err(|e| failed(&e))?;
            first.mount_at(&rootfs).map_err(|e| failed(&e))?;
            Ok(Root::MountedNow(id))
        }
        Err(e) if e.is_not_found() => Ok(Root::InPlace),
        Err(e) => Err(failed(&e)),
    }
}

/// After a container app's domain is gone for good (halted, deactivated, deleted; not for a
/// guest's own reboot): what is mounted at `<volume>/rootfs` unmounted, as EVE's domainmgr
/// does. Whether something was.
pub fn unmount_root(volume: &Path) -> Result<bool, String> {
    xen_ctrd::unmount(&volume.join("rootfs")).map_err(|e| e.to_string())
}

/// At boot: writes `run` into the volume and gives `spec` the container kernel and initramfs
/// where it has EVE's defaults (or none); an ELF kernel runs as PVH where `spec` asks for it,
/// any other (a bzImage, which Xen 4.17 boots only as PV) as PV.
pub fn prepare(containers: &Containers, volume: &Path, run: &RunSpec, spec: &mut DomainSpec) -> Result<(), String> {
    let json = run.to_json()?;
    let path = volume.join(SPEC_FILE);
    let tmp = volume.join(format!(".{SPEC_FILE}.tmp"));
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if spec.kernel.as_deref().is_none_or(|k| k == EVE_KERNEL) {
        spec.kernel = Some(containers.kernel.to_string_lossy().into_owned());
    }
    if spec.ramdisk.as_deref().is_none_or(|r| r == EVE_RAMDISK) {
        spec.ramdisk = Some(containers.initrd()?.to_string_lossy().into_owned());
    }
    let kernel = PathBuf::from(spec.kernel.clone().unwrap_or_default());
    if spec.kind == DomainKind::Pvh && !super::is_elf(&kernel)? {
        spec.kind = DomainKind::Pv;
    }
    Ok(())
}

/// A `#cloud-config`'s `write_files` entry, as EVE's `cloudconfig.WritableFile` reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WritableFile {
    /// Where, inside the root filesystem.
    pub path: String,
    /// The content, encoded as `encoding` says.
    pub content: String,
    /// Octal mode (EVE requires it: a file without is an error).
    pub permissions: String,
    /// `plain` (or empty), `b64`/`base64`, `gz`/`gzip`, `gz+b64` and the like.
    pub encoding: String,
    /// Not applied (EVE warns and leaves the owner).
    pub owner: String,
}

/// The largest file a `gzip` entry may decompress to (EVE's `MaxDecompressedContentSize`).
const MAX_DECOMPRESSED: u64 = 10 << 20;

/// The `write_files` of a `#cloud-config` user data (none for any other); `path` and `content`
/// are required, as EVE's validator requires them.
pub fn writable_files(user_data: &str) -> Result<Vec<WritableFile>, String> {
    use yaml_rust2::{Yaml, YamlLoader};
    if !user_data.split('\n').next().is_some_and(|l| l.starts_with("#cloud-config")) {
        return Ok(Vec::new());
    }
    let bad = |why: String| format!("failed to unmarshal cloud-init userdata: {why}");
    let docs = YamlLoader::load_from_str(user_data).map_err(|e| bad(e.to_string()))?;
    let Some(doc) = docs.first() else { return Ok(Vec::new()) };
    let items = match &doc["write_files"] {
        Yaml::BadValue | Yaml::Null => return Ok(Vec::new()),
        Yaml::Array(items) => items,
        other => return Err(bad(format!("write_files is {other:?}, not a list"))),
    };
    let field = |item: &Yaml, key: &str| -> Result<String, String> {
        match &item[key] {
            Yaml::BadValue | Yaml::Null => Ok(String::new()),
            Yaml::String(s) => Ok(s.clone()),
            Yaml::Integer(n) => Ok(n.to_string()),
            other => Err(bad(format!("write_files {key} {other:?} is not a string"))),
        }
    };
    let mut files = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let f = WritableFile {
            path: field(item, "path")?,
            content: field(item, "content")?,
            permissions: field(item, "permissions")?,
            encoding: field(item, "encoding")?,
            owner: field(item, "owner")?,
        };
        if f.path.is_empty() || f.content.is_empty() {
            return Err(format!("write_files[{i}]: path and content are required"));
        }
        files.push(f);
    }
    Ok(files)
}

/// EVE's `getVersionFromMetaFile`: the version after the `/` of `instance-id:`.
fn recorded_version(meta_data: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(meta_data).ok()?;
    let line = text.lines().find(|l| l.starts_with("instance-id:"))?;
    line.split('/').nth(1)?.trim().parse().ok()
}

/// Writes `files` into `rootfs` and records `version` in `rootfs/meta-data`
/// (`instance-id: <uuid>/<version>`) when `version` is newer than the one recorded there (a
/// version that is not a number always is, as in EVE); true when it did.
pub fn apply_write_files(
    rootfs: &Path,
    uuid: uuid::Uuid,
    version: &str,
    files: &[WritableFile],
) -> Result<bool, String> {
    let meta_data = rootfs.join("meta-data");
    let current = recorded_version(&meta_data).unwrap_or(0);
    let newer = version.parse::<u64>().map_or(true, |v| current < v);
    if !newer {
        return Ok(false);
    }
    // The files first (EVE records the version first): one that fails is tried again at the
    // next boot, not forgotten.
    for f in files {
        write_file(rootfs, f).map_err(|e| format!("Failed to apply cloud-init config. Error {e}"))?;
    }
    write_in_root(rootfs, "meta-data", format!("instance-id: {uuid}/{version}\n").as_bytes(), 0o644)
        .map_err(|e| format!("Failed to write cloud-init metadata file. Error {e}"))?;
    Ok(true)
}

/// One `write_files` entry, as EVE's `cloudconfig.WriteFile` writes it.
fn write_file(rootfs: &Path, f: &WritableFile) -> Result<(), String> {
    use base64::Engine;
    let mode = u32::from_str_radix(&f.permissions, 8)
        .map_err(|e| format!("{}: permissions {:?}: {e}", f.path, f.permissions))?;
    let b64 =
        |text: &str| base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("{}: {e}", f.path));
    let gunzip = |bytes: &[u8]| -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(flate2::read::GzDecoder::new(bytes), MAX_DECOMPRESSED + 1),
            &mut out,
        )
        .map_err(|e| format!("{}: {e}", f.path))?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(format!("{}: maximum decompressed content size exceeded", f.path));
        }
        Ok(out)
    };
    let content = match f.encoding.as_str() {
        "b64" | "base64" => b64(&f.content)?,
        "plain" | "" => f.content.clone().into_bytes(),
        "gz+base64" | "gzip+base64" | "gz+b64" | "gzip+b64" => gunzip(&b64(&f.content)?)?,
        "gzip" | "gz" => gunzip(f.content.as_bytes())?,
        _ => return Err("unsupported encoding type. Only base64, plain and gzip are supported".into()),
    };
    if !f.owner.is_empty() {
        log::warn!("Changing owner of files written by cloud-init is not supported yet ({})", f.path);
    }
    write_in_root(rootfs, &f.path, &content, mode)
}

/// Writes `content` at `path` inside `root` (created with its directories, replaced whole),
/// refusing a path that leaves the root, as EVE does; the image is untrusted, so its symlinks
/// are followed only inside the root, as the guest would see them (xen-oci's
/// `write_file_in_root`), never into dom0's own filesystem.
fn write_in_root(root: &Path, path: &str, content: &[u8], mode: u32) -> Result<(), String> {
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            std::path::Component::Normal(p) => parts.push(p),
            std::path::Component::ParentDir if parts.pop().is_some() => {}
            std::path::Component::ParentDir => {
                return Err(format!(
                    "detected possible attempt to write file outside of root path. invalid path {path}"
                ));
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        return Err(format!("invalid path {path:?}"));
    }
    let rel: PathBuf = parts.iter().collect();
    xen_oci::write_file_in_root(root, &rel, content, mode).map_err(|e| format!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_with_a_mount_dir_are_mounted_in_the_container_by_their_guest_device() {
        let disk = |devtype: &str, vdev: &str, mount_dir: &str, read_only: bool| crate::eve::DiskStatus {
            devtype: devtype.into(),
            vdev: vdev.into(),
            mount_dir: mount_dir.into(),
            read_only,
            ..Default::default()
        };
        let disks = [
            disk("", "xvda", "/", false),
            disk("hdd", "xvdb", "/data", false),
            disk("hdd", "xvdc", "", false),
            disk("AppCustom", "xvdd", "/opt/conf", true),
            disk("9P", "", "", false),
        ];
        let mounts = volume_mounts(&disks).unwrap();
        let got: Vec<_> = mounts.iter().map(|m| (m.device.as_str(), m.target.as_str(), m.read_only)).collect();
        assert_eq!(got, [("xvdb", "/data", false), ("xvdd", "/opt/conf", true)]);
        let e = volume_mounts(&[disk("", "xvda", "/", false), disk("hdd", "xvdb", "data/../..", false)]).unwrap_err();
        assert!(e.starts_with("DiskConfigList[1].MountDir: \"data/../..\""), "{e}");
    }

    #[test]
    fn only_a_blank_volume_is_given_a_file_system() {
        if std::process::Command::new("mkfs.ext4").arg("-V").output().is_err() {
            eprintln!("SKIPPED only_a_blank_volume_is_given_a_file_system: no mkfs.ext4 (e2fsprogs)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let blank = dir.path().join("blank.img");
        std::fs::File::create(&blank).unwrap().set_len(16 << 20).unwrap();
        assert!(format_if_blank(&blank).unwrap());
        let head = std::fs::read(&blank).unwrap();
        assert_eq!(&head[1024 + 56..1024 + 58], &[0x53, 0xef], "an ext superblock");
        // Now it has one: left alone, as is any volume with data in its first MiB.
        assert!(!format_if_blank(&blank).unwrap());
        let data = dir.path().join("data.img");
        let mut bytes = vec![0u8; 4 << 20];
        bytes[(1 << 20) - 1] = 1;
        std::fs::write(&data, &bytes).unwrap();
        assert!(!format_if_blank(&data).unwrap());
        assert_eq!(std::fs::read(&data).unwrap(), bytes);
        assert!(format_if_blank(&dir.path().join("missing")).unwrap_err().contains("missing"));
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn env_variables_are_read_as_eves_domainmgr_reads_them() {
        // The old syntax: a line each, quotes and spaces trimmed.
        let got = env_variables("A=1\n\"B\" = \"two words\"\nC=x=y\n\n# a comment\n").unwrap();
        assert_eq!(got, vars(&[("A", "1"), ("B", "two words"), ("C", "x=y")]));
        // A cloud-config's runcmd entries.
        let cc = "#cloud-config\nruncmd:\n  - EVE_ECO_CMD=/bin/sh -c 'echo hi'\n  - MODE=test\nwrite_files: []\n";
        assert_eq!(env_variables(cc).unwrap(), vars(&[("EVE_ECO_CMD", "/bin/sh -c 'echo hi'"), ("MODE", "test")]));
        assert_eq!(env_variables("#cloud-config\nhostname: x\n").unwrap(), BTreeMap::new());
        // What is not a variable fails, naming the line.
        for bad in ["just words", "1X=2", "A=x\"y", "#cloud-config\nruncmd: 3\n", "#cloud-config\nruncmd: [[a]]\n"] {
            let e = env_variables(bad).unwrap_err();
            assert!(e.contains("Error processing") || e.contains("unmarshal"), "{bad:?}: {e}");
        }
        assert!(env_variables("just words").unwrap_err().contains("just words"));
    }

    fn volume(dir: &Path, config: &str) -> PathBuf {
        let v = dir.join("vol.container");
        std::fs::create_dir_all(v.join("rootfs/bin")).unwrap();
        std::fs::write(v.join(IMAGE_CONFIG), config).unwrap();
        v
    }

    const IMAGE: &str = r#"{"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Entrypoint": ["/bin/app"], "Cmd": ["--serve"], "Env": ["PATH=/bin", "MODE=image"],
                   "WorkingDir": "/srv", "User": "app"}}"#;

    #[test]
    fn the_run_spec_is_the_images_with_the_apps_variables_and_eco_cmd() {
        let dir = tempfile::tempdir().unwrap();
        let v = volume(dir.path(), IMAGE);
        let vifs = [(Some("00:16:3e:00:00:01".to_string()), 1400), (Some("00:16:3e:00:00:02".to_string()), 0)];
        let spec = run_spec(&v, &vars(&[("MODE", "app"), ("X", "1")]), &vifs, "app.1.2").unwrap();
        assert_eq!(spec.argv, ["/bin/app", "--serve"]);
        assert_eq!(spec.env, ["PATH=/bin", "MODE=app", "X=1"]);
        assert_eq!((spec.cwd.as_str(), spec.user.as_str(), spec.hostname.as_str()), ("/srv", "app", "app12"));
        assert_eq!(spec.network.len(), 2);
        assert_eq!((spec.network[0].mtu, spec.network[1].mtu, spec.network[1].dhcp), (Some(1400), None, true));
        let spec = run_spec(&v, &vars(&[(ECO_CMD, " \"/bin/sh -c true\" ")]), &[(None, 0)], "a").unwrap();
        assert_eq!(spec.argv, ["/bin/sh", "-c", "true"]);
        assert!(spec.network.is_empty(), "a vif without a MAC: DHCP on every interface");
        // No environment in the image: containerd's PATH.
        let v2 = volume(
            &dir.path().join("2"),
            r#"{"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "config": {"Cmd": ["sh"]}}"#,
        );
        assert_eq!(run_spec(&v2, &BTreeMap::new(), &[], "a").unwrap().env, [DEFAULT_PATH]);
    }

    #[test]
    fn a_volume_without_its_root_filesystem_or_image_config_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let v = volume(dir.path(), IMAGE);
        std::fs::remove_dir_all(v.join("rootfs")).unwrap();
        std::fs::create_dir(v.join("rootfs")).unwrap();
        let e = run_spec(&v, &BTreeMap::new(), &[], "a").unwrap_err();
        assert!(e.contains("vol.container/rootfs") && e.contains("no root filesystem"), "{e}");
        let v = volume(&dir.path().join("b"), IMAGE);
        std::fs::write(v.join("rootfs/bin/sh"), b"").unwrap();
        std::fs::remove_file(v.join(IMAGE_CONFIG)).unwrap();
        let e = run_spec(&v, &BTreeMap::new(), &[], "a").unwrap_err();
        assert!(e.contains(IMAGE_CONFIG), "{e}");
    }

    #[test]
    fn write_files_are_written_once_per_cloud_init_version_and_never_outside_or_through_links() {
        use base64::Engine;
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut e, b"zipped").unwrap();
            base64::engine::general_purpose::STANDARD.encode(e.finish().unwrap())
        };
        let user_data = format!(
            "#cloud-config\nwrite_files:\n  - path: /etc/app/conf\n    content: hello\n    permissions: '0640'\n  - path: /data/z\n    content: {gz}\n    encoding: gz+b64\n    permissions: '0600'\n"
        );
        let files = writable_files(&user_data).unwrap();
        assert_eq!(files.len(), 2);
        let uuid = uuid::Uuid::from_u128(7);
        assert!(apply_write_files(&rootfs, uuid, "2", &files).unwrap());
        assert_eq!(std::fs::read(rootfs.join("etc/app/conf")).unwrap(), b"hello");
        assert_eq!(std::fs::read(rootfs.join("data/z")).unwrap(), b"zipped");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(rootfs.join("etc/app/conf")).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(std::fs::read_to_string(rootfs.join("meta-data")).unwrap(), format!("instance-id: {uuid}/2\n"));
        // The same version again: not rewritten (the guest's own changes stay).
        std::fs::write(rootfs.join("etc/app/conf"), b"changed in the guest").unwrap();
        assert!(!apply_write_files(&rootfs, uuid, "2", &files).unwrap());
        assert_eq!(std::fs::read(rootfs.join("etc/app/conf")).unwrap(), b"changed in the guest");
        assert!(apply_write_files(&rootfs, uuid, "3", &files).unwrap());
        assert_eq!(std::fs::read(rootfs.join("etc/app/conf")).unwrap(), b"hello");

        // A symlink the image planted is followed inside the root only.
        std::os::unix::fs::symlink("/outside", rootfs.join("evil")).unwrap();
        std::fs::create_dir(rootfs.join("outside")).unwrap();
        let through = WritableFile {
            path: "/evil/x".into(),
            content: "in the root".into(),
            permissions: "0644".into(),
            ..Default::default()
        };
        assert!(apply_write_files(&rootfs, uuid, "4", &[through]).unwrap());
        assert_eq!(std::fs::read(rootfs.join("outside/x")).unwrap(), b"in the root");
        assert!(!Path::new("/outside/x").exists());
        // Out of the root, or without permissions: refused.
        for (path, perms) in [("../../x", "0644"), ("/etc/y", "")] {
            let f = WritableFile {
                path: path.into(),
                content: "x".into(),
                permissions: perms.into(),
                ..Default::default()
            };
            assert!(apply_write_files(&rootfs, uuid, "9", &[f]).is_err(), "{path}");
        }
        assert!(writable_files("#cloud-config\nwrite_files:\n  - path: /a\n").unwrap_err().contains("required"));
        assert!(writable_files("KEY=1").unwrap().is_empty());
    }
}
