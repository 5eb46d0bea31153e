//! EVE's check of each disk image's real format before a boot (domainmgr's `doActivate`, with
//! pillar's `GetVolumeFormat`): a directory is a container, a device node raw, and a file is what
//! `qemu-img info` says it is; an image whose real format is not the one its config names is
//! not booted, with EVE's error. One difference: qemu-img calls VHD images `vpc`, a name EVE
//! does not know (it refuses every VHD image that way); here `vpc` is VHD.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::eve::{DiskStatus, Format};

/// How images are looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// With this qemu-img, as EVE does.
    QemuImg(PathBuf),
    /// Not at all (the configs' formats are believed).
    Off,
}

impl Default for Probe {
    fn default() -> Self {
        Probe::QemuImg(PathBuf::from("qemu-img"))
    }
}

/// How long one `qemu-img info` may take (EVE waits without a limit; an image on a hung
/// mount would hold the domain's thread for good).
const QEMU_IMG_TIMEOUT: Duration = Duration::from_secs(120);

/// Checks every disk in `disks` (as the status lists them) against its real format, as EVE
/// does before a boot: the first mismatch or unreadable image is the error.
pub fn check(probe: &Probe, disks: &[DiskStatus]) -> Result<(), String> {
    let Probe::QemuImg(program) = probe else { return Ok(()) };
    for d in disks.iter().filter(|d| !matches!(d.format, Format::UNKNOWN | Format::CONTAINER)) {
        let real = volume_format(program, Path::new(&d.file_location))?;
        if real != d.format {
            return Err(format!(
                "Disk format mismatch, format in config {} and output of qemu-img/zfs get {}\n\
                 Note: Format mismatch may be because of disk corruption also.",
                d.format.name(),
                real.name()
            ));
        }
    }
    Ok(())
}

/// The format of the volume at `path`, as EVE's `GetVolumeFormat` tells it.
pub fn volume_format(program: &Path, path: &Path) -> Result<Format, String> {
    use std::os::unix::fs::FileTypeExt;
    let fail = |why: String| format!("GetVolumeFormat failed for {}: {why}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    let kind = meta.file_type();
    if kind.is_dir() {
        return Ok(Format::CONTAINER);
    }
    if kind.is_block_device() || kind.is_char_device() {
        return Ok(Format::RAW);
    }
    let word = qemu_img_format(program, path)
        .map_err(|e| format!("GetVolumeFormat/GetImgInfo failed for {}: {e}", path.display()))?;
    match word.as_str() {
        "raw" => Ok(Format::RAW),
        "qcow" => Ok(Format::QCOW),
        "qcow2" => Ok(Format::QCOW2),
        "vpc" => Ok(Format::VHD),
        "vmdk" => Ok(Format::VMDK),
        "vhdx" => Ok(Format::VHDX),
        other => Err(fail(format!("unknown format {other}"))),
    }
}

/// `qemu-img info -U --output=json`'s `format`.
fn qemu_img_format(program: &Path, path: &Path) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(["info", "-U", "--output=json"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let deadline = Instant::now() + QEMU_IMG_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("qemu-img gave no answer in {} s", QEMU_IMG_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(format!("waiting for qemu-img: {e}")),
        }
    }
    let out = child.wait_with_output().map_err(|e| format!("reading qemu-img's output: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("qemu-img failed: {}, {}", out.status, err.trim()));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("qemu-img's JSON: {e}"))?;
    v["format"].as_str().map(str::to_string).ok_or_else(|| "qemu-img's JSON has no format".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_img(args: &[&str]) {
        let ok = Command::new("qemu-img").args(args).stdout(Stdio::null()).status().map(|s| s.success());
        assert!(matches!(ok, Ok(true)), "qemu-img {args:?} (setup.sh installs qemu-utils)");
    }

    fn disk(path: &Path, format: Format) -> DiskStatus {
        DiskStatus { file_location: path.display().to_string(), format, ..DiskStatus::default() }
    }

    #[test]
    fn each_image_is_what_qemu_img_says_and_a_mismatch_is_eves_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = |f: &str| dir.path().join(f);
        let q = Probe::default();
        for (file, fmt, want) in [
            ("a.qcow2", "qcow2", Format::QCOW2),
            ("a.vhd", "vpc", Format::VHD),
            ("a.vmdk", "vmdk", Format::VMDK),
            ("a.vhdx", "vhdx", Format::VHDX),
        ] {
            qemu_img(&["create", "-q", "-f", fmt, &p(file).display().to_string(), "1M"]);
            assert_eq!(volume_format(Path::new("qemu-img"), &p(file)), Ok(want), "{file}");
            assert_eq!(check(&q, &[disk(&p(file), want)]), Ok(()));
        }
        std::fs::write(p("a.img"), vec![0u8; 4096]).unwrap();
        assert_eq!(check(&q, &[disk(&p("a.img"), Format::RAW)]), Ok(()));
        let e = check(&q, &[disk(&p("a.img"), Format::RAW), disk(&p("a.qcow2"), Format::RAW)]).unwrap_err();
        assert!(
            e.starts_with("Disk format mismatch, format in config RAW and output of qemu-img/zfs get QCOW2\n"),
            "{e}"
        );
        // A directory is a container, a device raw; a missing image is an error naming it.
        assert_eq!(volume_format(Path::new("qemu-img"), dir.path()), Ok(Format::CONTAINER));
        assert_eq!(volume_format(Path::new("qemu-img"), Path::new("/dev/null")), Ok(Format::RAW));
        let e = check(&q, &[disk(&p("gone.img"), Format::RAW)]).unwrap_err();
        assert!(e.starts_with(&format!("GetVolumeFormat failed for {}: ", p("gone.img").display())), "{e}");
        // Formats the config leaves unknown, and containers, are not looked at; nor is anything when off.
        assert_eq!(check(&q, &[disk(&p("gone.img"), Format::UNKNOWN)]), Ok(()));
        assert_eq!(check(&Probe::Off, &[disk(&p("a.img"), Format::QCOW2)]), Ok(()));
    }
}
