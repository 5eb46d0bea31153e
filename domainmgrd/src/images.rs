//! Save images and the record kept beside each (`<image>.domainmgr.json`): which domain it is
//! and the exact configuration (as xl.cfg text) the domain ran with when it was saved.
//!
//! At host start an image is restored only if its record names a managed domain whose current
//! configuration is that same text, that is not running and that has not booted afresh since
//! the save (the record holds the id of the run it was taken from, see `hoststate.rs`):
//! anything else is stale (its config changed, it has no config any more, or the domain was
//! started afresh, so its disks moved on from the memory in the image) and is refused, moved
//! to `<save-dir>/stale/` so it is reported once and never restored by accident. Nothing there
//! is ever overwritten or deleted: a second stale image of the same name gets a number.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{configfile, files};

/// What is recorded beside an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The domain's UUID.
    pub uuid: Uuid,
    /// Its name.
    pub name: String,
    /// Its configuration when saved, as xl.cfg text (empty when `libxl_json` holds it).
    pub xl_config: String,
    /// Its configuration as libxl JSON instead, for a domain known only by that: one that
    /// migrated in as transient has no xl.cfg form ([`xenctl::DomainSpec::from_libxl_json`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libxl_json: Option<String>,
    /// When it was saved.
    pub saved_at: DateTime<Utc>,
    /// The id of the run it was saved from (`None` from a domain whose fresh boot was never
    /// recorded, e.g. adopted from an older domainmgrd).
    #[serde(default)]
    pub boot_id: Option<Uuid>,
    /// What kind of domain it was saved from.
    #[serde(default)]
    pub kind: ImageKind,
}

/// Which domain an image was saved from, which says how host-start restores it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageKind {
    /// A domain with a config of its own (EVE or autostart): restored into it if it still
    /// matches.
    #[default]
    Managed,
    /// A transient domain (domainctl create or restore): restored as a transient domain again,
    /// from the config in the record, as `domainctl restore` does.
    Transient,
}

/// How `spec` is recorded: its xl.cfg text, or, for a spec known only by its libxl JSON, that
/// JSON (`xl_config` and `libxl_json` of [`ImageRecord`]).
pub fn recorded_config(spec: &xenctl::DomainSpec) -> Result<(String, Option<String>), String> {
    match &spec.libxl_json {
        Some(json) => Ok((String::new(), Some(json.clone()))),
        None => spec.to_xl_config().map(|text| (text, None)).map_err(|e| format!("it has no xl.cfg form: {e}")),
    }
}

/// The record file of `image`.
pub fn record_path(image: &Path) -> PathBuf {
    let mut name = image.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".domainmgr.json");
    image.with_file_name(name)
}

/// Writes the record of `image`, durably, mode 0600 (the config may hold a VNC password).
pub fn write_record(image: &Path, record: &ImageRecord) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    files::write_durable(&record_path(image), &bytes)
}

/// Reads the record of `image`.
pub fn read_record(image: &Path) -> Result<ImageRecord, String> {
    let path = record_path(image);
    // Capped, regular files only, never blocking: `domainctl restore` may name anything.
    let bytes = configfile::read(&path, &configfile::IMAGE_RECORD).map_err(|e| {
        if e.is_not_found() {
            format!("it has no domainmgr record ({} is missing)", path.display())
        } else {
            crate::error_chain(&e)
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Deletes an image and its record (the image first: a record alone is no image).
pub fn remove(image: &Path) {
    let _ = files::remove_durable(image);
    let _ = files::remove_durable(&record_path(image));
}

/// Moves `from` to `to` unless `to` exists, on one filesystem: `Ok(false)` when `to` is taken.
/// One atomic `renameat2(RENAME_NOREPLACE)`; on a filesystem without it, a hard link (which
/// cannot replace a file either) and an unlink.
fn move_no_clobber(from: &Path, to: &Path) -> std::io::Result<bool> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use rustix::io::Errno;
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => return Ok(true),
        Err(Errno::EXIST) => return Ok(false),
        Err(Errno::INVAL | Errno::NOSYS) => {} // not supported here
        Err(e) => return Err(e.into()),
    }
    match std::fs::hard_link(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    }
    std::fs::remove_file(from)?;
    Ok(true)
}

/// Moves a stale image (and its record) to `<dir>/stale/`, returning where it went. An earlier
/// stale image of the same name stays: this one becomes `<name>.1` (`.2`, ...).
pub fn set_aside(image: &Path) -> std::io::Result<PathBuf> {
    let dir = image.parent().unwrap_or(Path::new(".")).join("stale");
    std::fs::create_dir_all(&dir)?;
    let name = image.file_name().unwrap_or_default();
    let record = record_path(image);
    for n in 0u32.. {
        let mut candidate = name.to_os_string();
        if n > 0 {
            candidate.push(format!(".{n}"));
        }
        let to = dir.join(candidate);
        // The record's name must be free too, so an image never meets another's record.
        if record_path(&to).exists() || !move_no_clobber(image, &to)? {
            continue;
        }
        if record.exists() && !move_no_clobber(&record, &record_path(&to))? {
            log::warn!("{}: left in place; {} is taken", record.display(), record_path(&to).display());
        }
        // Both directories, so that after a power loss the image is not back where it was.
        files::sync_dir(&dir)?;
        files::sync_dir(image.parent().unwrap_or(Path::new(".")))?;
        return Ok(to);
    }
    Err(std::io::Error::other("no free name in the stale folder"))
}

/// [`set_aside`] for a report: `moved to <where>`, or `not moved: <why>`.
pub fn set_aside_noted(image: &Path) -> String {
    match set_aside(image) {
        Ok(to) => format!("moved to {}", to.display()),
        Err(e) => format!("not moved: {e}"),
    }
}

/// Removes what a save cut short left of `image`: its partial file (`<image>.partial`), and
/// the record beside the image when the image itself never got there.
pub fn discard_partial(image: &Path) {
    let partial = xenctl::partial_path(image);
    if partial.exists() {
        log::info!("removing {}, left by a save cut short", partial.display());
        let _ = files::remove_durable(&partial);
    }
    if !image.exists() {
        let _ = files::remove_durable(&record_path(image));
    }
}

/// Whether `name` can name an image in a save directory: one plain file name that [`list`]
/// sees (not empty, not `.` or `..`, no `/` or NUL, not hidden, not a record or a partial
/// image). A domain's name from xenstore or a config is checked before it becomes a path.
pub fn is_image_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\0'])
        && !name.ends_with(".domainmgr.json")
        && !name.ends_with(".partial")
        && name.len() <= 255
}

/// The images in `dir` (not their records, partial writes, hidden files or the stale folder).
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut images: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && !name.ends_with(".domainmgr.json") && !name.ends_with(".partial")
        })
        .collect();
    images.sort();
    images
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image file `web` in a new directory, and a record for it.
    fn image_and_record() -> (tempfile::TempDir, PathBuf, ImageRecord) {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("web");
        std::fs::write(&image, b"image").unwrap();
        let rec = ImageRecord {
            uuid: Uuid::new_v4(),
            name: "web".into(),
            xl_config: "name = \"web\"\n".into(),
            libxl_json: None,
            saved_at: Utc::now(),
            boot_id: Some(Uuid::new_v4()),
            kind: ImageKind::Transient,
        };
        (dir, image, rec)
    }

    #[test]
    fn records_sit_beside_images_and_stale_ones_move_aside() {
        let (dir, image, rec) = image_and_record();
        write_record(&image, &rec).unwrap();
        std::fs::write(dir.path().join("other.partial"), b"").unwrap();
        assert_eq!(list(dir.path()), vec![image.clone()]);
        assert_eq!(read_record(&image).unwrap(), rec);

        let moved = set_aside(&image).unwrap();
        assert_eq!(moved, dir.path().join("stale/web"));
        assert!(!image.exists() && moved.exists() && record_path(&moved).exists());
        assert!(list(dir.path()).is_empty());
        assert!(read_record(&image).unwrap_err().contains("has no domainmgr record"));
        remove(&moved);
        assert!(!moved.exists() && !record_path(&moved).exists());
    }

    #[test]
    fn records_and_moves_are_durable() {
        let (_dir, image, rec) = image_and_record();
        assert_eq!(files::dir_syncs_in(|| write_record(&image, &rec).unwrap()), 1);
        let mut moved = None;
        assert_eq!(files::dir_syncs_in(|| moved = Some(set_aside(&image).unwrap())), 2, "both directories");
        assert_eq!(files::dir_syncs_in(|| remove(&moved.unwrap())), 2, "image and record");
    }

    #[test]
    fn a_stale_image_never_overwrites_an_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("web");
        let mut moved = Vec::new();
        for round in 0..3 {
            std::fs::write(&image, format!("image {round}")).unwrap();
            if round != 1 {
                std::fs::write(record_path(&image), format!("record {round}")).unwrap();
            }
            moved.push(set_aside(&image).unwrap());
        }
        let stale = dir.path().join("stale");
        assert_eq!(moved, [stale.join("web"), stale.join("web.1"), stale.join("web.2")]);
        for (round, m) in moved.iter().enumerate() {
            assert_eq!(std::fs::read_to_string(m).unwrap(), format!("image {round}"));
        }
        assert_eq!(std::fs::read_to_string(record_path(&moved[2])).unwrap(), "record 2");
        assert!(!record_path(&moved[1]).exists(), "the image without a record got none");
        assert!(!image.exists() && !record_path(&image).exists());
    }

    #[test]
    fn a_record_that_is_a_fifo_or_too_big_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("web");
        rustix::fs::mkfifoat(rustix::fs::CWD, record_path(&image), rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        let e = read_record(&image).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_file(record_path(&image)).unwrap();
        std::fs::write(record_path(&image), vec![b' '; 5 << 20]).unwrap();
        assert!(read_record(&image).unwrap_err().contains("more than"));
    }

    #[test]
    fn only_plain_names_name_images() {
        for good in ["web", "web.example", "a b"] {
            assert!(is_image_name(good), "{good}");
        }
        for bad in ["", ".", "..", "../etc/x", "a/b", ".hidden", "x.partial", "x.domainmgr.json", "a\0b"] {
            assert!(!is_image_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn records_of_older_versions_read_as_managed_without_a_run_id() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("old");
        let text = r#"{"uuid":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","name":"old","xl_config":"","saved_at":"2026-01-01T00:00:00Z"}"#;
        std::fs::write(record_path(&image), text).unwrap();
        let rec = read_record(&image).unwrap();
        assert_eq!((rec.boot_id, rec.kind), (None, ImageKind::Managed));
    }
}
