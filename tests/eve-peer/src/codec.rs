//! The message words: building the publisher's messages, and parsing any message strictly against
//! the description of EVE's socketdriver (ASCII words separated by single spaces, under
//! [`MAX_MESSAGE`] bytes, standard padded base64 that re-encodes identically, the right topic, the
//! right number of words, JSON values). A parse failure is a sentence saying what is wrong.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::wire::MAX_MESSAGE;

/// One parsed message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// `request <Topic>`: a subscriber's opening.
    Request,
    /// `hello <Topic> <true|false>`: the publisher's opening, with its persistence.
    Hello {
        /// Whether the topic is persistent.
        persistent: bool,
    },
    /// `update <Topic> <b64 key> <b64 json>`.
    Update {
        /// The key, decoded.
        key: String,
        /// The JSON value as it travelled (large fields still as `pubsub-file-X` paths).
        value: Vec<u8>,
    },
    /// `delete <Topic> <b64 key>`.
    Delete {
        /// The key, decoded.
        key: String,
    },
    /// `complete <Topic>`: the end of the first snapshot.
    Complete,
    /// `restarted <Topic> <n>`.
    Restarted(u64),
}

/// Standard padded base64 of `bytes`.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The `hello` message.
pub fn hello(topic: &str, persistent: bool) -> String {
    format!("hello {topic} {persistent}")
}

/// The `update` message for `key` and the JSON `value` as it travels.
pub fn update(topic: &str, key: &str, value: &[u8]) -> String {
    format!("update {topic} {} {}", b64(key.as_bytes()), b64(value))
}

/// The `delete` message for `key`.
pub fn delete(topic: &str, key: &str) -> String {
    format!("delete {topic} {}", b64(key.as_bytes()))
}

/// The `complete` message.
pub fn complete(topic: &str) -> String {
    format!("complete {topic}")
}

/// The `restarted` message for counter `n`.
pub fn restarted(topic: &str, n: u64) -> String {
    format!("restarted {topic} {n}")
}

/// The `request` message.
pub fn request(topic: &str) -> String {
    format!("request {topic}")
}

/// Decodes one base64 word, insisting it is standard, padded and canonical (it re-encodes to the
/// same word).
pub fn b64_strict(word: &str, what: &str) -> Result<Vec<u8>, String> {
    let bytes = STANDARD.decode(word).map_err(|e| format!("{what} {word:?} is not standard padded base64: {e}"))?;
    if STANDARD.encode(&bytes) != word {
        return Err(format!("{what} {word:?} does not re-encode to itself (not canonical base64)"));
    }
    Ok(bytes)
}

/// Parses `bytes` as one message on `topic`, checking every rule of the framing.
pub fn parse_strict(bytes: &[u8], topic: &str) -> Result<Msg, String> {
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
    let err = |why: String| Err(format!("{why}; message (first 200 bytes): {shown:?}"));
    if bytes.len() >= MAX_MESSAGE {
        return err(format!("message of {} bytes, not under {MAX_MESSAGE}", bytes.len()));
    }
    if let Some(b) = bytes.iter().find(|b| !(b.is_ascii_graphic() || **b == b' ')) {
        return err(format!("byte {b:#04x} is not printable ASCII or a space"));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let words: Vec<&str> = text.split(' ').collect();
    if words.iter().any(|w| w.is_empty()) {
        return err("an empty word: words must be separated by single spaces, none leading or trailing".into());
    }
    let want = match words[0] {
        "request" | "complete" => 2,
        "hello" | "delete" | "restarted" => 3,
        "update" => 4,
        other => return err(format!("unknown message kind {other:?}")),
    };
    if words.len() != want {
        return err(format!("{} has {} words, not {want}", words[0], words.len()));
    }
    if words[1] != topic {
        return err(format!("topic {:?}, not {topic:?}", words[1]));
    }
    let key = |w: &str| -> Result<String, String> {
        String::from_utf8(b64_strict(w, "key")?).map_err(|e| format!("key is not UTF-8: {e}"))
    };
    let msg = match words[0] {
        "request" => Msg::Request,
        "complete" => Msg::Complete,
        "hello" => match words[2] {
            "true" => Msg::Hello { persistent: true },
            "false" => Msg::Hello { persistent: false },
            other => return err(format!("hello's persistence {other:?} is not true or false")),
        },
        "restarted" => {
            let n: u64 = match words[2].parse() {
                Ok(n) => n,
                Err(e) => return err(format!("restart counter {:?}: {e}", words[2])),
            };
            if n.to_string() != words[2] {
                return err(format!("restart counter {:?} is not plain decimal", words[2]));
            }
            Msg::Restarted(n)
        }
        "delete" => match key(words[2]) {
            Ok(key) => Msg::Delete { key },
            Err(e) => return err(e),
        },
        _ => {
            let key = match key(words[2]) {
                Ok(key) => key,
                Err(e) => return err(e),
            };
            let value = match b64_strict(words[3], "value") {
                Ok(v) => v,
                Err(e) => return err(e),
            };
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&value) {
                return err(format!("value of key {key:?} is not JSON: {e}"));
            }
            Msg::Update { key, value }
        }
    };
    Ok(msg)
}
