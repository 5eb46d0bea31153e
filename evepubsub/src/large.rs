//! Large fields, both ways. A JSON object key `pubsub-large-X` anywhere in a value (nested objects,
//! objects in arrays) travels on the socket as `"pubsub-file-X": "<JSON-encoded path>"`, the file
//! (fresh and unique under the publication's large directory) holding `{"pubsub-large-X": value}`,
//! under [`LARGE_FILE_MAX`]. This file owns finding such fields, moving them out to files for a
//! connection (or estimating the size that would take), and reading them back in for a subscriber
//! (only from inside its large root, O_NOFOLLOW, regular files, then deleting the file).

use std::io::Read as _;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};
use serde_json::{Map, Value};

use crate::{Error, LARGE_FILE_MAX, checkpoint};

const TAG_LARGE: &str = "pubsub-large-";
const TAG_FILE: &str = "pubsub-file-";

/// Whether `value` has a `pubsub-large-` key anywhere.
pub(crate) fn has_large(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| k.starts_with(TAG_LARGE) || has_large(v)),
        Value::Array(list) => list.iter().any(has_large),
        _ => false,
    }
}

/// Puts a large field's file content (`{"pubsub-large-X": value}`) somewhere for the field
/// `pubsub-file-X` (its first argument) and returns the path.
type Place<'a> = dyn FnMut(&str, &[u8]) -> Result<String, Error> + 'a;

/// Replaces every large field by its file field; `place(new_key, file_content)` returns the path.
fn strip(value: &Value, place: &mut Place<'_>) -> Result<Value, Error> {
    Ok(match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                if let Some(suffix) = k.strip_prefix(TAG_LARGE) {
                    let mut one = Map::new();
                    one.insert(k.clone(), v.clone());
                    let content = Value::Object(one).to_string();
                    let new_key = format!("{TAG_FILE}{suffix}");
                    let path = place(&new_key, content.as_bytes())?;
                    out.insert(new_key, Value::String(Value::String(path).to_string()));
                } else {
                    out.insert(k.clone(), strip(v, place)?);
                }
            }
            Value::Object(out)
        }
        Value::Array(list) => Value::Array(list.iter().map(|v| strip(v, place)).collect::<Result<_, _>>()?),
        other => other.clone(),
    })
}

fn check_size(topic: &str, key: &str, content: &[u8]) -> Result<(), Error> {
    if content.len() >= LARGE_FILE_MAX {
        return Err(Error::TooLarge {
            topic: topic.to_owned(),
            key: key.to_owned(),
            size: content.len(),
            limit: LARGE_FILE_MAX,
        });
    }
    Ok(())
}

/// The value as it would travel, with a made-up path as long as a real one would be in `large_dir`
/// (as EVE estimates); fails if a large field is too large for its file.
pub(crate) fn estimate(topic: &str, key: &str, value: &Value, large_dir: &Path) -> Result<Vec<u8>, Error> {
    let fake = format!("{}/{}", large_dir.display(), "0".repeat(100));
    let stripped = strip(value, &mut |_, content| {
        check_size(topic, key, content)?;
        Ok(fake.clone())
    })?;
    Ok(stripped.to_string().into_bytes())
}

/// The value as it travels: each large field written to a fresh file in `large_dir` (created 0700).
pub(crate) fn write_out(topic: &str, key: &str, value: &Value, large_dir: &Path) -> Result<Vec<u8>, Error> {
    checkpoint::create_dir(large_dir)?;
    let stripped = strip(value, &mut |new_key, content| {
        check_size(topic, key, content)?;
        // The field's name may hold anything; keep a safe, short part of it in the file name.
        let safe: String =
            new_key.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(100).collect();
        let (path, mut file) = checkpoint::create_unique(large_dir, &safe, 0o600)?;
        std::io::Write::write_all(&mut file, content).map_err(|e| Error::io("write large field", &path, e))?;
        log::debug!("{topic}/{key}: large field {new_key} in {}", path.display());
        path.to_str().map(str::to_owned).ok_or_else(|| Error::InvalidValue {
            topic: topic.to_owned(),
            key: key.to_owned(),
            why: format!("large-field path {} is not UTF-8", path.display()),
        })
    })?;
    Ok(stripped.to_string().into_bytes())
}

/// A subscriber's update value with its `pubsub-file-X` fields read back in as `pubsub-large-X`.
/// A field that cannot be read is logged and left as sent; without any such field (or without a
/// `large_root`) the bytes come back unchanged.
pub(crate) fn read_back(topic: &str, key: &str, bytes: Vec<u8>, large_root: Option<&Path>) -> Vec<u8> {
    if !bytes.windows(TAG_FILE.len()).any(|w| w == TAG_FILE.as_bytes()) {
        return bytes;
    }
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else { return bytes };
    let Some(root) = large_root else {
        log::warn!("{topic}/{key}: update has large fields but no large root is set; passing them on as sent");
        return bytes;
    };
    let root = normalize(&absolute(root));
    let mut changed = false;
    let value = restore(topic, key, value, &root, &mut changed);
    if changed { value.to_string().into_bytes() } else { bytes }
}

fn restore(topic: &str, key: &str, value: Value, root: &Path, changed: &mut bool) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                if let Some(suffix) = k.strip_prefix(TAG_FILE) {
                    match read_field(&v, root) {
                        Ok(inner) => {
                            out.insert(format!("{TAG_LARGE}{suffix}"), inner);
                            *changed = true;
                        }
                        Err(why) => {
                            log::error!("{topic}/{key}: large field {k}: {why}; left as sent");
                            out.insert(k, v);
                        }
                    }
                } else {
                    out.insert(k, restore(topic, key, v, root, changed));
                }
            }
            Value::Object(out)
        }
        Value::Array(list) => Value::Array(list.into_iter().map(|v| restore(topic, key, v, root, changed)).collect()),
        other => other,
    }
}

/// Reads one `pubsub-file-X` field's file; the file is deleted once read (even if its content is bad).
fn read_field(field: &Value, root: &Path) -> Result<Value, String> {
    let encoded = field.as_str().ok_or("value is not a string")?;
    let path: String = serde_json::from_str(encoded).map_err(|e| format!("path is not a JSON string: {e}"))?;
    let path = Path::new(&path);
    if !path.is_absolute() {
        return Err(format!("path {} is not absolute", path.display()));
    }
    let resolved = normalize(path);
    if resolved == root || !resolved.starts_with(root) {
        return Err(format!("path {} is outside {}", path.display(), root.display()));
    }
    let content = read_file(&resolved).map_err(|e| format!("{}: {e}", resolved.display()))?;
    if let Err(e) = std::fs::remove_file(&resolved) {
        log::warn!("cannot remove large-field file {}: {e}", resolved.display());
    }
    let content = content?;
    match serde_json::from_slice::<Value>(&content) {
        Ok(Value::Object(map)) if map.len() == 1 => Ok(map.into_iter().map(|(_, v)| v).next().unwrap_or_default()),
        _ => Err(format!("{} is not a JSON object of one key", resolved.display())),
    }
}

/// Opens (O_NOFOLLOW, regular files only) and reads at most `LARGE_FILE_MAX + 1` bytes. The outer
/// error means nothing was opened; the inner one, that the file was opened but is unusable.
fn read_file(path: &Path) -> Result<Result<Vec<u8>, String>, String> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| e.to_string())?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| e.to_string())?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err("not a regular file".to_owned());
    }
    let mut content = Vec::new();
    let file = std::fs::File::from(fd);
    if let Err(e) = file.take(LARGE_FILE_MAX as u64 + 1).read_to_end(&mut content) {
        return Ok(Err(e.to_string()));
    }
    if content.len() > LARGE_FILE_MAX {
        return Ok(Err(format!("larger than {LARGE_FILE_MAX} bytes")));
    }
    Ok(Ok(content))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// `path` with `.` and `..` resolved lexically (symlinks are not followed).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_large_fields_anywhere() {
        assert!(!has_large(&json!({"a": 1, "b": [{"c": "pubsub-large-x"}]})));
        assert!(has_large(&json!({"pubsub-large-A": 1})));
        assert!(has_large(&json!({"a": {"b": {"pubsub-large-A": "x"}}})));
        assert!(has_large(&json!({"a": [1, {"pubsub-large-A": null}]})));
    }

    #[test]
    fn out_and_back() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("large");
        let dir = root.join("agent/Topic");
        let value = json!({"n": 1, "pubsub-large-Top": "big", "list": [{"pubsub-large-In": {"x": [1, 2]}}, 3]});
        let sent = write_out("T", "k", &value, &dir).unwrap();
        let sent_value: Value = serde_json::from_slice(&sent).unwrap();
        assert!(!has_large(&sent_value));
        let path: String = serde_json::from_str(sent_value["pubsub-file-Top"].as_str().unwrap()).unwrap();
        assert!(path.starts_with(dir.to_str().unwrap()));
        assert_eq!(std::fs::read(&path).unwrap(), br#"{"pubsub-large-Top":"big"}"#);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        let estimate = estimate("T", "k", &value, &dir).unwrap();
        assert!(estimate.len() >= sent.len());

        let back = read_back("T", "k", sent, Some(&root));
        assert_eq!(serde_json::from_slice::<Value>(&back).unwrap(), value);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "files deleted once read");
    }

    #[test]
    fn bad_fields_are_left_as_sent() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("large");
        std::fs::create_dir_all(&root).unwrap();
        let outside = tmp.path().join("secret");
        std::fs::write(&outside, br#"{"pubsub-large-A": "secret"}"#).unwrap();
        let sneaky = format!("{}/../secret", root.display());
        let two_keys = root.join("two");
        std::fs::write(&two_keys, br#"{"a": 1, "b": 2}"#).unwrap();
        let big = root.join("big");
        std::fs::write(&big, vec![b' '; LARGE_FILE_MAX + 1]).unwrap();
        let link = root.join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        for path in [
            outside.display().to_string(),
            sneaky,
            root.join("missing").display().to_string(),
            two_keys.display().to_string(),
            big.display().to_string(),
            link.display().to_string(),
            root.display().to_string(),
            "relative/x".to_owned(),
        ] {
            let value = json!({"pubsub-file-A": Value::String(path.clone()).to_string(), "b": 1});
            let bytes = value.to_string().into_bytes();
            let back = read_back("T", "k", bytes.clone(), Some(&root));
            assert_eq!(back, bytes, "{path}");
        }
        assert!(outside.exists(), "a file outside the root is never touched");
        assert!(link.exists(), "a symlink is not followed nor removed");
        // Not a string, and no large root at all.
        let bytes = br#"{"pubsub-file-A": 3}"#.to_vec();
        assert_eq!(read_back("T", "k", bytes.clone(), Some(&root)), bytes);
        let ok = root.join("ok");
        std::fs::write(&ok, br#"{"pubsub-large-A": 5}"#).unwrap();
        let value = json!({"pubsub-file-A": Value::String(ok.display().to_string()).to_string()});
        let bytes = value.to_string().into_bytes();
        assert_eq!(read_back("T", "k", bytes.clone(), None), bytes);
        assert_eq!(read_back("T", "k", bytes, Some(&root)), br#"{"pubsub-large-A":5}"#);
    }

    #[test]
    fn too_large_field_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let value = json!({"pubsub-large-A": "x".repeat(LARGE_FILE_MAX)});
        assert!(matches!(estimate("T", "k", &value, tmp.path()), Err(Error::TooLarge { .. })));
        assert!(matches!(write_out("T", "k", &value, tmp.path()), Err(Error::TooLarge { .. })));
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
