//! Save images and the record kept beside each (`<image>.domainmgr.json`): which domain it is
//! and the exact configuration (as xl.cfg text) the domain ran with when it was saved.
//!
//! At host start an image is restored only if its record names a managed domain whose current
//! configuration is that same text and that is not running: anything else is stale (its config
//! changed, it has no config any more, or the domain was started afresh) and is refused, moved
//! to `<save-dir>/stale/` so it is reported once and never restored by accident.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::files;

/// What is recorded beside an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The domain's UUID.
    pub uuid: Uuid,
    /// Its name.
    pub name: String,
    /// Its configuration when saved, as xl.cfg text.
    pub xl_config: String,
    /// When it was saved.
    pub saved_at: DateTime<Utc>,
}

/// The record file of `image`.
pub fn record_path(image: &Path) -> PathBuf {
    let mut name = image.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".domainmgr.json");
    image.with_file_name(name)
}

/// Writes the record of `image`.
pub fn write_record(image: &Path, record: &ImageRecord) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    files::write_atomic(&record_path(image), &bytes)
}

/// Reads the record of `image`.
pub fn read_record(image: &Path) -> Result<ImageRecord, String> {
    let path = record_path(image);
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("it has no domainmgr record ({} is missing)", path.display()),
        _ => format!("{}: {e}", path.display()),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Deletes an image and its record.
pub fn remove(image: &Path) {
    let _ = files::remove_if_exists(image);
    let _ = files::remove_if_exists(&record_path(image));
}

/// Moves a stale image (and its record) to `<dir>/stale/`, returning where it went.
pub fn set_aside(image: &Path) -> std::io::Result<PathBuf> {
    let dir = image.parent().unwrap_or(Path::new(".")).join("stale");
    std::fs::create_dir_all(&dir)?;
    let name = image.file_name().unwrap_or_default();
    let to = dir.join(name);
    std::fs::rename(image, &to)?;
    let record = record_path(image);
    if record.exists() {
        std::fs::rename(&record, record_path(&to))?;
    }
    Ok(to)
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

    #[test]
    fn records_sit_beside_images_and_stale_ones_move_aside() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("web");
        std::fs::write(&image, b"image").unwrap();
        let rec = ImageRecord {
            uuid: Uuid::new_v4(),
            name: "web".into(),
            xl_config: "name = \"web\"\n".into(),
            saved_at: Utc::now(),
        };
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
}
