//! domainmgrd on a machine without Xen: exit status 1 and one clear sentence, no panic.

use std::path::Path;
use std::process::Command;

#[test]
fn exits_with_one_sentence_when_xen_is_absent() {
    if Path::new("/sys/hypervisor/type").exists()
        && std::fs::read_to_string("/sys/hypervisor/type").is_ok_and(|t| t.trim() == "xen")
    {
        eprintln!("skipped: this machine runs Xen; the Xen box tests cover domainmgrd there");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_domainmgrd")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(stderr.starts_with("domainmgrd: Xen is not running on this machine"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
