//! The initramfs a container guest boots with: the container init (`xen-container-init`, a
//! static executable) as `/init`, `/sbin/poweroff`, `/sbin/reboot` and `/sbin/halt` pointing at
//! it (Linux's Xen shutdown handler runs them), `/dev/console`, and the kernel modules the init
//! loads before it mounts its share: 9pfs over Xen and the network front end, with what they
//! depend on (from the kernel's `modules.dep`), decompressed, in load order in
//! `/lib/modules/modules.order`; those of block volumes ([`VOLUME_MODULES`]) in
//! `/lib/modules/modules.volumes`. A module the kernel has built in (`modules.builtin`) is left
//! out. The archive is cpio `newc` (the `cpio` crate), uncompressed: the kernel reads it as it
//! is, and under emulation decompressing would cost more than reading.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The modules a container guest needs; their dependencies come with them.
pub const GUEST_MODULES: &[&str] = &["9pnet_xen", "9p", "xen_netfront"];
/// The modules a container's block volumes need, listed apart (`modules.volumes`): the init
/// loads them only for a run spec with volumes.
pub const VOLUME_MODULES: &[&str] = &["xen_blkfront", "crc32c_generic", "ext4"];

/// What goes into the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitrdParts {
    /// The static init executable.
    pub init: PathBuf,
    /// The guest kernel's modules directory (`/lib/modules/<version>`), or `None` for a kernel
    /// with everything built in.
    pub modules_dir: Option<PathBuf>,
    /// Modules beyond [`GUEST_MODULES`] (a bundle on a disk needs `xen_blkfront` and `ext4`).
    pub extra_modules: Vec<String>,
}

/// A module's canonical name: `9pnet-xen.ko.xz` and `9pnet_xen` are both `9pnet_xen`.
fn module_name(file: &str) -> String {
    let base = file.rsplit('/').next().unwrap_or(file);
    let stem = base.split(".ko").next().unwrap_or(base);
    stem.replace('-', "_")
}

/// The files (relative to the modules directory) to load for `wanted`, dependencies first,
/// each once. A module in neither `modules.dep` nor `modules.builtin` is an error naming it.
pub fn load_order(modules_dep: &str, builtin: &str, wanted: &[&str]) -> Result<Vec<String>, String> {
    let mut deps: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in modules_dep.lines() {
        let Some((file, rest)) = line.split_once(':') else { continue };
        let file = file.trim();
        if file.is_empty() {
            continue;
        }
        let needs = rest.split_whitespace().map(str::to_string).collect();
        deps.insert(module_name(file), (file.to_string(), needs));
    }
    let builtin: HashSet<String> = builtin.lines().map(module_name).collect();
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    // Depth first, dependencies before the module; `modules.dep` has no cycles, but a bad
    // file must not recurse forever: the stack is bounded by the modules' number.
    fn visit(
        name: &str,
        deps: &BTreeMap<String, (String, Vec<String>)>,
        seen: &mut HashSet<String>,
        order: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > deps.len() + 1 {
            return Err(format!("modules.dep has a dependency cycle through {name}"));
        }
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        let Some((file, needs)) = deps.get(name) else { return Ok(()) };
        for need in needs {
            visit(&module_name(need), deps, seen, order, depth + 1)?;
        }
        order.push(file.clone());
        Ok(())
    }
    for want in wanted {
        let name = module_name(want);
        if deps.contains_key(&name) {
            visit(&name, &deps, &mut seen, &mut order, 0)?;
        } else if !builtin.contains(&name) {
            return Err(format!("the guest kernel has no module {name} (neither in modules.dep nor built in)"));
        }
    }
    Ok(order)
}

/// A module file's contents, decompressed by its suffix (`.xz`, `.zst`, `.gz`, or none).
fn read_module(path: &Path) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.to_string_lossy();
    let mut out = Vec::new();
    let done = if name.ends_with(".xz") {
        lzma_rs::xz_decompress(&mut raw.as_slice(), &mut out).map_err(|e| e.to_string())
    } else if name.ends_with(".zst") {
        zstd::stream::read::Decoder::new(raw.as_slice())
            .and_then(|mut d| d.read_to_end(&mut out))
            .map(drop)
            .map_err(|e| e.to_string())
    } else if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut out).map(drop).map_err(|e| e.to_string())
    } else {
        return Ok(raw);
    };
    done.map(|()| out).map_err(|e| format!("{}: cannot decompress: {e}", path.display()))
}

/// One archive entry.
enum Node {
    Dir,
    File(Vec<u8>, u32),
    Symlink(&'static str),
    CharDev(u32, u32),
}

/// Builds the initramfs into `out` (written aside and renamed into place, so a reader never
/// sees half of one).
pub fn build(parts: &InitrdParts, out: &Path) -> Result<(), String> {
    let init = std::fs::read(&parts.init).map_err(|e| format!("the container init {}: {e}", parts.init.display()))?;
    let mut nodes: Vec<(String, Node)> = ["dev", "proc", "sys", "mnt", "run", "sbin", "lib", "lib/modules"]
        .into_iter()
        .map(|d| (d.to_string(), Node::Dir))
        .collect();
    nodes.push(("dev/console".into(), Node::CharDev(5, 1)));
    nodes.push(("init".into(), Node::File(init, 0o755)));
    for name in ["poweroff", "reboot", "halt"] {
        nodes.push((format!("sbin/{name}"), Node::Symlink("/init")));
    }
    let mut order = String::new();
    let mut volumes = String::new();
    if let Some(dir) = &parts.modules_dir {
        let read =
            |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()));
        let builtin = read("modules.builtin").unwrap_or_default();
        let mut wanted: Vec<&str> = GUEST_MODULES.to_vec();
        wanted.extend(parts.extra_modules.iter().map(String::as_str));
        let dep = read("modules.dep")?;
        let main = load_order(&dep, &builtin, &wanted)?;
        for file in &main {
            let name = format!("{}.ko", module_name(file));
            nodes.push((format!("lib/modules/{name}"), Node::File(read_module(&dir.join(file))?, 0o644)));
            order.push_str(&name);
            order.push('\n');
        }
        // A kernel without them still runs containers, only not their volumes: the list says why.
        match load_order(&dep, &builtin, VOLUME_MODULES) {
            Ok(files) => {
                for file in files.iter().filter(|f| !main.contains(f)) {
                    let name = format!("{}.ko", module_name(file));
                    nodes.push((format!("lib/modules/{name}"), Node::File(read_module(&dir.join(file))?, 0o644)));
                    volumes.push_str(&name);
                    volumes.push('\n');
                }
            }
            Err(e) => volumes = format!("# {e}\n"),
        }
    }
    nodes.push(("lib/modules/modules.order".into(), Node::File(order.into_bytes(), 0o644)));
    nodes.push(("lib/modules/modules.volumes".into(), Node::File(volumes.into_bytes(), 0o644)));

    let partial = out.with_extension("partial");
    let written = write_cpio(&nodes, &partial).and_then(|()| std::fs::rename(&partial, out));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        format!("{}: {e}", out.display())
    })
}

fn write_cpio(nodes: &[(String, Node)], path: &Path) -> std::io::Result<()> {
    use cpio::newc::Builder;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (ino, (name, node)) in nodes.iter().enumerate() {
        let b = Builder::new(name).ino(ino as u32 + 1).nlink(1);
        let (b, data): (Builder, &[u8]) = match node {
            Node::Dir => (b.mode(0o040_755).nlink(2), &[]),
            Node::File(bytes, mode) => (b.mode(0o100_000 | mode), bytes),
            Node::Symlink(target) => (b.mode(0o120_777), target.as_bytes()),
            Node::CharDev(major, minor) => (b.mode(0o020_600).rdev_major(*major).rdev_minor(*minor), &[]),
        };
        let size = u32::try_from(data.len()).map_err(|_| std::io::Error::other(format!("{name} is over 4 GiB")))?;
        let mut entry = b.write(&mut w, size);
        entry.write_all(data)?;
        entry.finish()?;
    }
    cpio::newc::trailer(&mut w)?;
    w.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/net/9p/9pnet_xen.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz
kernel/net/9p/9pnet.ko.xz: kernel/fs/netfs/netfs.ko.xz
kernel/fs/netfs/netfs.ko.xz:
kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz kernel/fs/fscache/fscache.ko.xz
kernel/fs/fscache/fscache.ko.xz: kernel/fs/netfs/netfs.ko.xz
kernel/drivers/net/xen-netfront.ko.xz:
kernel/drivers/other.ko.xz:
kernel/drivers/block/xen-blkfront.ko.xz:
kernel/crypto/crc32c_generic.ko.xz:
kernel/fs/ext4/ext4.ko.xz: kernel/fs/netfs/netfs.ko.xz
";

    #[test]
    fn modules_come_with_their_dependencies_first_and_once() {
        let order = load_order(DEP, "", GUEST_MODULES).unwrap();
        let names: Vec<String> = order.iter().map(|f| module_name(f)).collect();
        assert_eq!(names, ["netfs", "9pnet", "9pnet_xen", "fscache", "9p", "xen_netfront"]);
    }

    #[test]
    fn a_built_in_module_is_left_out_and_a_missing_one_is_an_error() {
        let dep = DEP.lines().filter(|l| !l.contains("xen-netfront")).collect::<Vec<_>>().join("\n");
        let order = load_order(&dep, "kernel/drivers/net/xen-netfront.ko\n", GUEST_MODULES).unwrap();
        assert!(!order.iter().any(|f| f.contains("netfront")));
        let e = load_order(&dep, "", GUEST_MODULES).unwrap_err();
        assert_eq!(e, "the guest kernel has no module xen_netfront (neither in modules.dep nor built in)");
    }

    #[test]
    fn the_archive_holds_init_links_console_and_decompressed_modules_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("modules");
        for f in DEP.lines().filter_map(|l| l.split(':').next()) {
            let path = modules.join(f.trim_end_matches(".xz"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("ELF {}", module_name(f))).unwrap();
        }
        // One compressed for real: gzip, as some kernels ship them.
        let gz = modules.join("kernel/fs/netfs/netfs.ko.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"ELF netfs").unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        std::fs::remove_file(modules.join("kernel/fs/netfs/netfs.ko")).unwrap();
        let dep = DEP.replace(".ko.xz", ".ko").replace("netfs/netfs.ko", "netfs/netfs.ko.gz");
        std::fs::write(modules.join("modules.dep"), dep).unwrap();
        let init = dir.path().join("init-bin");
        std::fs::write(&init, b"\x7fELF init").unwrap();
        let out = dir.path().join("initrd.cpio");
        build(&InitrdParts { init, modules_dir: Some(modules), extra_modules: vec![] }, &out).unwrap();
        assert!(!out.with_extension("partial").exists());

        let mut entries = BTreeMap::new();
        let mut file = std::fs::File::open(&out).unwrap();
        loop {
            let mut r = cpio::newc::Reader::new(&mut file).unwrap();
            if r.entry().is_trailer() {
                break;
            }
            let (name, mode, rdev) =
                (r.entry().name().to_string(), r.entry().mode(), (r.entry().rdev_major(), r.entry().rdev_minor()));
            let mut data = Vec::new();
            r.read_to_end(&mut data).unwrap();
            entries.insert(name, (mode, rdev, data));
            r.finish().unwrap();
        }
        assert_eq!(entries["init"], (0o100_755, (0, 0), b"\x7fELF init".to_vec()));
        assert_eq!(entries["sbin/poweroff"].0, 0o120_777);
        assert_eq!(entries["sbin/poweroff"].2, b"/init");
        assert_eq!(entries["dev/console"].1, (5, 1));
        assert_eq!(entries["lib/modules/netfs.ko"].2, b"ELF netfs");
        let order = String::from_utf8(entries["lib/modules/modules.order"].2.clone()).unwrap();
        assert_eq!(order, "netfs.ko\n9pnet.ko\n9pnet_xen.ko\nfscache.ko\n9p.ko\nxen_netfront.ko\n");
        // The volumes' modules apart, without what the first list loads already.
        let volumes = String::from_utf8(entries["lib/modules/modules.volumes"].2.clone()).unwrap();
        assert_eq!(volumes, "xen_blkfront.ko\ncrc32c_generic.ko\next4.ko\n");
        assert_eq!(entries["lib/modules/ext4.ko"].2, b"ELF ext4");
    }

    #[test]
    fn a_kernel_without_the_volumes_modules_still_gets_an_initramfs_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("modules");
        std::fs::create_dir_all(modules.join("k")).unwrap();
        for m in ["9pnet_xen", "9p", "xen-netfront"] {
            std::fs::write(modules.join(format!("k/{m}.ko")), b"ELF").unwrap();
        }
        std::fs::write(modules.join("modules.dep"), "k/9pnet_xen.ko:\nk/9p.ko:\nk/xen-netfront.ko:\n").unwrap();
        let init = dir.path().join("init-bin");
        std::fs::write(&init, b"\x7fELF init").unwrap();
        let out = dir.path().join("initrd.cpio");
        build(&InitrdParts { init, modules_dir: Some(modules), extra_modules: vec![] }, &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("# the guest kernel has no module xen_blkfront"), "modules.volumes says why");
    }

    #[test]
    fn a_missing_init_or_module_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("initrd.cpio");
        let parts = InitrdParts { init: dir.path().join("nope"), modules_dir: None, extra_modules: vec![] };
        assert!(build(&parts, &out).unwrap_err().starts_with("the container init "));
        std::fs::write(dir.path().join("nope"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("m")).unwrap();
        let dep = "kernel/a/9pnet_xen.ko.xz:\nkernel/a/9p.ko.xz:\nkernel/a/xen-netfront.ko.xz:\n";
        std::fs::write(dir.path().join("m/modules.dep"), dep).unwrap();
        let parts = InitrdParts { modules_dir: Some(dir.path().join("m")), ..parts };
        let e = build(&parts, &out).unwrap_err();
        assert!(e.contains("kernel/a/9pnet_xen.ko.xz: No such file"), "{e}");
        assert!(!out.exists() && !out.with_extension("partial").exists());
    }
}
