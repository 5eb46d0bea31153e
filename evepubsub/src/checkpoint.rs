//! A publication's checkpoint directory, `<agent_dir>/<Topic>/`: one `<key>.json` file per key
//! (0644, written atomically: a unique temp file in the same directory, fsync, rename) and the
//! `restarted` file holding the restart counter in decimal while it is non-zero. This file owns the
//! key rules, the directory's creation (0700), those writes and removals, and loading it all back.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;

/// Longest file name (`<key>.json`) a key may make.
const MAX_FILE_NAME: usize = 255;
/// Prefix of our temp files; never ends in `.json`, so a crash never leaves a key behind.
const TEMP_PREFIX: &str = ".pubsub-tmp-";
/// The file holding the restart counter.
pub(crate) const RESTARTED: &str = "restarted";
/// A checkpoint file larger than this is skipped on load (large fields are inline in them).
const LOAD_MAX: u64 = 64 << 20;

/// Checks that `key` can be published: non-empty, no `/` or NUL, not `.` or `..`, and
/// `<key>.json` at most 255 bytes.
pub(crate) fn check_key(topic: &str, key: &str) -> Result<(), Error> {
    let why = if key.is_empty() {
        "empty"
    } else if key.contains('/') {
        "contains '/'"
    } else if key.contains('\0') {
        "contains NUL"
    } else if key == "." || key == ".." {
        "is . or .."
    } else if key.len() + ".json".len() > MAX_FILE_NAME {
        "<key>.json is longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidKey { topic: topic.to_owned(), key: key.to_owned(), why })
}

/// Creates `dir` and its missing parents with mode 0700.
pub(crate) fn create_dir(dir: &Path) -> Result<(), Error> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| Error::io("create directory", dir, e))
}

/// Writes `bytes` to `dir/name` atomically (0644): a unique temp file in `dir`, written and fsynced,
/// renamed over `name`; then `dir` is fsynced if `sync_dir`.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8], sync_dir: bool) -> Result<(), Error> {
    let (temp, mut file) = create_unique(dir, TEMP_PREFIX, 0o644)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    let target = dir.join(name);
    let result = written
        .map_err(|e| Error::io("write", &temp, e))
        .and_then(|()| std::fs::rename(&temp, &target).map_err(|e| Error::io("rename into place", &target, e)));
    if result.is_err() {
        if let Err(e) = std::fs::remove_file(&temp) {
            log::warn!("cannot remove temp file {}: {e}", temp.display());
        }
        return result;
    }
    if sync_dir { sync(dir) } else { Ok(()) }
}

/// Removes `dir/name` (absent: fine) and fsyncs `dir`.
pub(crate) fn remove(dir: &Path, name: &str) -> Result<(), Error> {
    let path = dir.join(name);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove", path, e)),
    }
    sync(dir)
}

/// fsyncs a directory.
fn sync(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("fsync directory", dir, e))
}

/// Creates a new file `dir/<prefix><unique>` with `mode`, never reusing an existing name.
pub(crate) fn create_unique(dir: &Path, prefix: &str, mode: u32) -> Result<(PathBuf, File), Error> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    loop {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{prefix}{}{seq}{}", std::process::id(), nanos));
        match OpenOptions::new().write(true).create_new(true).mode(mode).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create", path, e)),
        }
    }
}

/// What a checkpoint directory held.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Key → the bytes of `<key>.json`.
    pub(crate) items: BTreeMap<String, Vec<u8>>,
    /// The `restarted` counter (0 without the file).
    pub(crate) counter: u64,
}

/// Loads `dir`: every readable non-empty regular `<key>.json` whose key is valid, and the
/// `restarted` counter (unparsable: 1, as EVE). Files it cannot use are skipped with a warning and
/// left in place; our own temp files left by a crash are removed.
pub(crate) fn load(dir: &Path, topic: &str) -> Result<Loaded, Error> {
    let mut loaded = Loaded::default();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            log::warn!("{topic}: skipping checkpoint file with a non-UTF-8 name {}", path.display());
            continue;
        };
        if name.starts_with(TEMP_PREFIX) {
            log::debug!("{topic}: removing stale temp file {}", path.display());
            if let Err(e) = std::fs::remove_file(&path) {
                log::warn!("{topic}: cannot remove stale temp file {}: {e}", path.display());
            }
            continue;
        }
        if name == RESTARTED {
            loaded.counter = match read_capped(&path) {
                Ok(bytes) => parse_counter(topic, &path, &bytes),
                Err(e) => {
                    log::warn!("{topic}: skipping unreadable {}: {e}", path.display());
                    0
                }
            };
            continue;
        }
        let Some(key) = name.strip_suffix(".json") else { continue };
        if let Err(e) = check_key(topic, key) {
            log::warn!("{topic}: skipping checkpoint file {}: {e}", path.display());
            continue;
        }
        match read_capped(&path) {
            Ok(bytes) if bytes.is_empty() => log::warn!("{topic}: skipping empty checkpoint {}", path.display()),
            Ok(bytes) => {
                log::debug!("{topic}: loaded key {key:?} from {}", path.display());
                loaded.items.insert(key.to_owned(), bytes);
            }
            Err(e) => log::warn!("{topic}: skipping unreadable checkpoint {}: {e}", path.display()),
        }
    }
    Ok(loaded)
}

/// Reads a regular file of at most [`LOAD_MAX`] bytes.
fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(ErrorKind::InvalidData, "not a regular file"));
    }
    let mut bytes = Vec::new();
    File::open(path)?.take(LOAD_MAX + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > LOAD_MAX {
        return Err(std::io::Error::new(ErrorKind::InvalidData, "larger than 64 MiB"));
    }
    Ok(bytes)
}

fn parse_counter(topic: &str, path: &Path, bytes: &[u8]) -> u64 {
    match std::str::from_utf8(bytes).ok().map(str::trim).filter(|t| t.bytes().all(|b| b.is_ascii_digit())) {
        Some(text) if !text.is_empty() => text.parse().unwrap_or_else(|_| {
            log::warn!("{topic}: restart counter in {} is out of range; treating it as 1", path.display());
            1
        }),
        _ => {
            log::warn!("{topic}: {} is not a decimal counter; treating it as 1 (as EVE does)", path.display());
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn key_rules() {
        for good in ["a", "0123-abc", "with space", "é", ".hidden", "...", &"k".repeat(250)] {
            assert!(check_key("T", good).is_ok(), "{good:?}");
        }
        for bad in ["", "a/b", "/", "a\0b", ".", "..", &"k".repeat(251)] {
            assert!(matches!(check_key("T", bad), Err(Error::InvalidKey { .. })), "{bad:?}");
        }
    }

    #[test]
    fn writes_loads_and_removes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("agent/Topic");
        create_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        write_atomic(&dir, "a.json", b"{\"x\":1}", false).unwrap();
        write_atomic(&dir, "a.json", b"{\"x\":2}", true).unwrap();
        write_atomic(&dir, "b c.json", b"2", false).unwrap();
        write_atomic(&dir, RESTARTED, b"3", true).unwrap();
        let mode = std::fs::metadata(dir.join("a.json")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o600, 0o600);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 3, "no temp files left: {names:?}");
        let loaded = load(&dir, "T").unwrap();
        assert_eq!(loaded.counter, 3);
        assert_eq!(loaded.items.keys().collect::<Vec<_>>(), ["a", "b c"]);
        assert_eq!(loaded.items["a"], b"{\"x\":2}");
        remove(&dir, "a.json").unwrap();
        remove(&dir, "a.json").unwrap();
        assert_eq!(load(&dir, "T").unwrap().items.len(), 1);
    }

    #[test]
    fn load_skips_what_it_cannot_use() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("empty.json"), b"").unwrap();
        std::fs::write(dir.join("..json"), b"1").unwrap();
        std::fs::write(dir.join("other.txt"), b"1").unwrap();
        std::fs::create_dir(dir.join("adir.json")).unwrap();
        std::fs::write(dir.join(format!("{TEMP_PREFIX}123")), b"1").unwrap();
        std::fs::write(dir.join("good.json"), b"{}").unwrap();
        std::fs::write(dir.join(RESTARTED), b"junk").unwrap();
        let loaded = load(dir, "T").unwrap();
        assert_eq!(loaded.items.keys().collect::<Vec<_>>(), ["good"]);
        assert_eq!(loaded.counter, 1, "unparsable counter counts as 1, as in EVE");
        assert!(dir.join("empty.json").exists(), "skipped files stay");
        assert!(!dir.join(format!("{TEMP_PREFIX}123")).exists(), "stale temp files go");
        std::fs::write(dir.join(RESTARTED), b"42").unwrap();
        assert_eq!(load(dir, "T").unwrap().counter, 42);
    }
}
