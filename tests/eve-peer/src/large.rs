//! Large fields: a JSON field named `pubsub-large-X` travels on the socket as
//! `"pubsub-file-X": "<JSON string literal of a path>"`, the file holding `{"pubsub-large-X": value}`
//! under `<large_root>/<agent>/<Topic>/`. This module turns an inline value into its wire form
//! (writing the files) and back (reading, checking and deleting them), descending into nested
//! objects and arrays of objects as EVE does.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

/// The prefix of a large field inline.
pub const TAG_LARGE: &str = "pubsub-large-";
/// The prefix of a large field on the wire.
pub const TAG_FILE: &str = "pubsub-file-";

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The directory a publisher writes `agent`'s `topic`'s large-field files into.
pub fn large_dir(large_root: &Path, agent: &str, topic: &str) -> PathBuf {
    large_root.join(agent).join(topic)
}

/// `value` with each `pubsub-large-X` field replaced by `pubsub-file-X` naming a new file in `dir`
/// that holds `{"pubsub-large-X": value}`.
pub fn to_wire(value: &Value, dir: &Path) -> std::io::Result<Value> {
    Ok(match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                if let Some(x) = k.strip_prefix(TAG_LARGE) {
                    let nk = format!("{TAG_FILE}{x}");
                    fs::create_dir_all(dir)?;
                    let n = SEQ.fetch_add(1, Ordering::Relaxed);
                    let path = dir.join(format!("{nk}{}-{n}", std::process::id()));
                    let mut content = Map::new();
                    content.insert(k.clone(), v.clone());
                    fs::write(&path, serde_json::to_vec(&Value::Object(content))?)?;
                    let literal = serde_json::to_string(&path.to_string_lossy())?;
                    out.insert(nk, Value::String(literal));
                } else {
                    out.insert(k.clone(), descend(v, dir)?);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn descend(v: &Value, dir: &Path) -> std::io::Result<Value> {
    match v {
        Value::Object(_) => to_wire(v, dir),
        Value::Array(list) => list.iter().map(|e| descend(e, dir)).collect::<Result<_, _>>().map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// `value` with each `pubsub-file-X` field replaced by the `pubsub-large-X` its file holds; the
/// files are read, deleted and their paths appended to `read`. With `expect_dir`, each file must
/// lie directly in that directory. Any departure from the description is an `Err` sentence.
pub fn resolve(value: &Value, expect_dir: Option<&Path>, read: &mut Vec<PathBuf>) -> Result<Value, String> {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let Some(x) = k.strip_prefix(TAG_FILE) else {
                    out.insert(k.clone(), resolve_inner(v, expect_dir, read)?);
                    continue;
                };
                let nk = format!("{TAG_LARGE}{x}");
                let Value::String(literal) = v else {
                    return Err(format!("{k} is not a string but {v}"));
                };
                let path: String = serde_json::from_str(literal)
                    .map_err(|e| format!("{k}'s value {literal:?} is not a JSON string literal: {e}"))?;
                let path = PathBuf::from(path);
                if let Some(dir) = expect_dir
                    && path.parent() != Some(dir)
                {
                    return Err(format!("{k} names {}, not a file in {}", path.display(), dir.display()));
                }
                let bytes = fs::read(&path).map_err(|e| format!("{k}: reading {}: {e}", path.display()))?;
                fs::remove_file(&path).map_err(|e| format!("{k}: deleting {}: {e}", path.display()))?;
                read.push(path.clone());
                let content: Value =
                    serde_json::from_slice(&bytes).map_err(|e| format!("{k}: {} is not JSON: {e}", path.display()))?;
                let Value::Object(mut content) = content else {
                    return Err(format!("{k}: {} does not hold an object", path.display()));
                };
                if content.len() != 1 {
                    return Err(format!("{k}: {} holds {} keys, not just {nk}", path.display(), content.len()));
                }
                let Some(inner) = content.remove(&nk) else {
                    return Err(format!("{k}: {} does not hold {nk}", path.display()));
                };
                out.insert(nk, inner);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

fn resolve_inner(v: &Value, expect_dir: Option<&Path>, read: &mut Vec<PathBuf>) -> Result<Value, String> {
    match v {
        Value::Object(_) => resolve(v, expect_dir, read),
        Value::Array(list) => {
            list.iter().map(|e| resolve_inner(e, expect_dir, read)).collect::<Result<_, _>>().map(Value::Array)
        }
        other => Ok(other.clone()),
    }
}
