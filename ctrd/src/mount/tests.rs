use super::*;

fn opts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Whether this test process may mount; a test that needs it says so when it cannot.
fn can_mount(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        eprintln!("SKIPPED {test}: mounting needs root");
    }
    root
}

#[test]
fn option_words_become_flags_propagation_or_data_as_containerd_splits_them() {
    let overlay = parse(&opts(&["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l2:/l1"]));
    assert_eq!(overlay.flags, MountFlags::empty());
    assert_eq!(overlay.data, opts(&["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l2:/l1"]));
    let view = parse(&opts(&["ro", "rbind"]));
    assert_eq!(view.flags, MountFlags::RDONLY | MountFlags::BIND | MountFlags::REC);
    assert!(view.data.is_empty());
    let p = parse(&opts(&["ro", "rw", "nosuid", "suid", "nodev", "rprivate", "userxattr"]));
    assert_eq!(p.flags, MountFlags::NODEV);
    assert_eq!(p.propagation, MountPropagationFlags::PRIVATE | MountPropagationFlags::REC);
    assert_eq!(p.data, opts(&["userxattr"]));
}

#[test]
fn mountinfo_escapes_are_undone() {
    assert_eq!(unescape(r"/a\040b\011c\134d"), "/a b\tc\\d");
    assert_eq!(unescape(r"/odd\04"), r"/odd\04");
    let info = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n";
    assert_eq!(mount_points(info).collect::<Vec<_>>(), vec![PathBuf::from("/mnt/with space")]);
}

/// `dir/layers/N` for each `n`, with file `n` in it, and `shared` saying which layer holds it.
fn layers(dir: &Path, names: &[String]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| {
            let l = dir.join("layers").join(n);
            std::fs::create_dir_all(&l).unwrap();
            std::fs::write(l.join("shared"), n).unwrap();
            std::fs::write(l.join(format!("only-{}", &n[..4.min(n.len())])), n).unwrap();
            l
        })
        .collect()
}

fn overlay(dir: &Path, lowers: &[PathBuf]) -> Mount {
    for d in ["upper", "work", "merged"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let lower: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    Mount {
        kind: "overlay".into(),
        source: "overlay".into(),
        target: String::new(),
        options: vec![
            "index=off".into(),
            format!("workdir={}", dir.join("work").display()),
            format!("upperdir={}", dir.join("upper").display()),
            format!("lowerdir={}", lower.join(":")),
        ],
    }
}

#[test]
fn an_overlay_mounts_its_layers_top_first_and_writes_go_to_its_upper_dir() {
    if !can_mount("an_overlay_mounts_its_layers_top_first_and_writes_go_to_its_upper_dir") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lowers = layers(dir.path(), &["top".into(), "mid".into(), "bottom".into()]);
    let merged = dir.path().join("merged");
    overlay(dir.path(), &lowers).mount_at(&merged).unwrap();
    assert!(mounted(&merged).unwrap());
    assert_eq!(std::fs::read_to_string(merged.join("shared")).unwrap(), "top");
    assert_eq!(std::fs::read_to_string(merged.join("only-bott")).unwrap(), "bottom");
    std::fs::write(merged.join("new"), "x").unwrap();
    assert!(unmount(&merged).unwrap());
    assert!(!mounted(&merged).unwrap());
    assert!(!unmount(&merged).unwrap(), "nothing left to unmount");
    assert_eq!(std::fs::read_to_string(dir.path().join("upper/new")).unwrap(), "x");
}

#[test]
fn an_overlay_whose_options_pass_a_page_still_mounts() {
    if !can_mount("an_overlay_whose_options_pass_a_page_still_mounts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // containerd's layer directories: .../io.containerd.snapshotter.v1.overlayfs/snapshots/N/fs
    let names: Vec<String> =
        (0..120).map(|n| format!("{n:03}-io.containerd.snapshotter.v1.overlayfs-snapshots-{n}-fs")).collect();
    let lowers = layers(dir.path(), &names);
    let m = overlay(dir.path(), &lowers);
    assert!(m.options.join(",").len() > DATA_LIMIT, "the test's options must pass a page");
    let merged = dir.path().join("merged");
    m.mount_at(&merged).unwrap();
    assert_eq!(std::fs::read_to_string(merged.join("shared")).unwrap(), names[0]);
    assert_eq!(std::fs::read_to_string(merged.join("only-119-")).unwrap(), names[119]);
    assert!(unmount(&merged).unwrap());
}

#[test]
fn a_read_only_view_is_read_only() {
    if !can_mount("a_read_only_view_is_read_only") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let target = dir.path().join("target");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(src.join("f"), "data").unwrap();
    let view = Mount {
        kind: "bind".into(),
        source: src.display().to_string(),
        target: String::new(),
        options: opts(&["ro", "rbind"]),
    };
    view.mount_at(&target).unwrap();
    assert_eq!(std::fs::read_to_string(target.join("f")).unwrap(), "data");
    let e = std::fs::write(target.join("g"), "x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(rustix::io::Errno::ROFS.raw_os_error()), "{e}");
    assert!(unmount(&target).unwrap());
}

#[test]
fn a_mount_that_fails_says_where_and_why() {
    if !can_mount("a_mount_that_fails_says_where_and_why") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = overlay(dir.path(), &[dir.path().join("no-such-layer")]);
    let e = m.mount_at(&dir.path().join("merged")).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("mount ") && text.contains("merged"), "{text}");
    assert!(!mounted(&dir.path().join("merged")).unwrap());
}
