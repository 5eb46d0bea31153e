//! `write_file_in_root`: a file written into a root filesystem as a process chrooted there
//! would write it; an image's symlinks, absolute or relative, never lead out of the root.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use xen_oci::write_file_in_root;

#[test]
fn files_are_written_through_the_images_symlinks_but_never_out_of_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(root.join("usr/lib")).unwrap();
    std::fs::create_dir_all(root.join("run")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // merged /usr, a link to a file, and links that would leave the root if followed on the host.
    symlink("usr/lib", root.join("lib")).unwrap();
    std::fs::create_dir(root.join("etc")).unwrap();
    symlink("../run/resolv.conf", root.join("etc/resolv.conf")).unwrap();
    symlink(&outside, root.join("escape")).unwrap();
    symlink("/etc/passwd-of-the-host", root.join("etc/passwd")).unwrap();

    write_file_in_root(&root, Path::new("lib/app.conf"), b"merged", 0o640).unwrap();
    assert_eq!(std::fs::read(root.join("usr/lib/app.conf")).unwrap(), b"merged");
    let mode = std::fs::metadata(root.join("usr/lib/app.conf")).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o640);

    write_file_in_root(&root, Path::new("etc/resolv.conf"), b"nameserver 10.0.0.1\n", 0o644).unwrap();
    assert_eq!(std::fs::read(root.join("run/resolv.conf")).unwrap(), b"nameserver 10.0.0.1\n");
    assert!(std::fs::symlink_metadata(root.join("etc/resolv.conf")).unwrap().file_type().is_symlink());

    // The absolute links resolve inside the root: nothing lands outside it (a link to a
    // directory the root lacks is an error; with it there, the file goes there).
    assert!(write_file_in_root(&root, Path::new("escape/x"), b"in", 0o644).is_err());
    assert!(!outside.join("x").exists());
    std::fs::create_dir_all(root.join(outside.strip_prefix("/").unwrap())).unwrap();
    write_file_in_root(&root, Path::new("escape/x"), b"in", 0o644).unwrap();
    assert_eq!(std::fs::read(root.join(outside.strip_prefix("/").unwrap()).join("x")).unwrap(), b"in");
    assert!(!outside.join("x").exists());
    write_file_in_root(&root, Path::new("etc/passwd"), b"root:x:0:0::/:/bin/sh\n", 0o644).unwrap();
    assert_eq!(std::fs::read(root.join("etc/passwd-of-the-host")).unwrap(), b"root:x:0:0::/:/bin/sh\n");

    // A plain file is replaced whole; a directory is not; `..` is refused.
    write_file_in_root(&root, Path::new("lib/app.conf"), b"second", 0o600).unwrap();
    assert_eq!(std::fs::read(root.join("usr/lib/app.conf")).unwrap(), b"second");
    assert!(write_file_in_root(&root, Path::new("usr"), b"x", 0o644).is_err());
    assert!(write_file_in_root(&root, Path::new("../outside/y"), b"x", 0o644).is_err());
    assert!(!outside.join("y").exists());
    let leftovers: Vec<_> = std::fs::read_dir(root.join("usr/lib"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .filter(|n| n.to_string_lossy().ends_with(".xen-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
