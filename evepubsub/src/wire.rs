//! The protocol's messages: one [`Message`] per SOCK_SEQPACKET message, ASCII words separated by
//! single spaces, keys and values in standard base64 with padding, every message shorter than
//! [`MAX_MESSAGE`]. This file owns their encoding and their strict decoding;
//! it knows nothing of sockets or files.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::{Error, MAX_MESSAGE, check_topic};

/// One protocol message, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Subscriber to publisher: `request <Topic>`.
    Request {
        /// The topic asked for.
        topic: String,
    },
    /// Publisher to subscriber, first: `hello <Topic> <true|false>`.
    Hello {
        /// The topic served.
        topic: String,
        /// Whether the publication is persistent (EVE's Persistent option).
        persistent: bool,
    },
    /// `update <Topic> <b64 key> <b64 json>`: a key added or changed.
    Update {
        /// The topic.
        topic: String,
        /// The key.
        key: String,
        /// The value (JSON bytes, large fields as they travel).
        value: Vec<u8>,
    },
    /// `delete <Topic> <b64 key>`: a key gone.
    Delete {
        /// The topic.
        topic: String,
        /// The key.
        key: String,
    },
    /// `complete <Topic>`: the first snapshot was sent in full.
    Complete {
        /// The topic.
        topic: String,
    },
    /// `restarted <Topic> <n>`: the publisher's restart counter.
    Restarted {
        /// The topic.
        topic: String,
        /// The counter, in decimal on the wire.
        counter: u64,
    },
}

impl Message {
    /// The topic the message is about.
    pub fn topic(&self) -> &str {
        match self {
            Message::Request { topic }
            | Message::Hello { topic, .. }
            | Message::Update { topic, .. }
            | Message::Delete { topic, .. }
            | Message::Complete { topic }
            | Message::Restarted { topic, .. } => topic,
        }
    }

    /// The message's bytes. Fails with [`Error::InvalidTopic`] for a topic that is not a non-empty
    /// word of printable ASCII, and with [`Error::TooLarge`] if it would be `MAX_MESSAGE` bytes or more.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let topic = self.topic();
        check_topic(topic)?;
        let (text, key) = match self {
            Message::Request { .. } => (format!("request {topic}"), ""),
            Message::Hello { persistent, .. } => (format!("hello {topic} {persistent}"), ""),
            Message::Update { key, value, .. } => {
                let size = update_size(topic, key, value.len());
                if size >= MAX_MESSAGE {
                    return Err(too_large(topic, key, size));
                }
                (format!("update {topic} {} {}", STANDARD.encode(key), STANDARD.encode(value)), key.as_str())
            }
            Message::Delete { key, .. } => (format!("delete {topic} {}", STANDARD.encode(key)), key.as_str()),
            Message::Complete { .. } => (format!("complete {topic}"), ""),
            Message::Restarted { counter, .. } => (format!("restarted {topic} {counter}"), ""),
        };
        if text.len() >= MAX_MESSAGE {
            return Err(too_large(topic, key, text.len()));
        }
        Ok(text.into_bytes())
    }

    /// Parses one message, strictly: the exact number of non-empty words for its kind, a valid
    /// topic, standard padded base64 for keys and values, UTF-8 keys, `true`/`false`, a decimal
    /// counter. Fails with [`Error::TooLarge`] for `MAX_MESSAGE` bytes or more, else [`Error::Protocol`].
    pub fn decode(bytes: &[u8]) -> Result<Message, Error> {
        if bytes.len() >= MAX_MESSAGE {
            return Err(Error::TooLarge {
                topic: String::new(),
                key: String::new(),
                size: bytes.len(),
                limit: MAX_MESSAGE,
            });
        }
        let text = std::str::from_utf8(bytes)
            .ok()
            .filter(|t| t.is_ascii())
            .ok_or_else(|| Error::Protocol(format!("a message of {} bytes that is not ASCII", bytes.len())))?;
        let words: Vec<&str> = text.split(' ').collect();
        let kind = words.first().copied().unwrap_or_default();
        if words.iter().any(|w| w.is_empty()) {
            return Err(Error::Protocol(format!("{} message with an empty word", printable(kind))));
        }
        let want = match kind {
            "request" | "complete" => 2,
            "hello" | "delete" | "restarted" => 3,
            "update" => 4,
            _ => return Err(Error::Protocol(format!("unknown message kind {:?}", printable(kind)))),
        };
        // EVE's publishers before the persistence flag say `hello <Topic>`: not persistent.
        let old_hello = kind == "hello" && words.len() == 2;
        if words.len() != want && !old_hello {
            return Err(Error::Protocol(format!("{kind} message of {} words, not {want}", words.len())));
        }
        let topic = words[1].to_owned();
        check_topic(&topic).map_err(|_| Error::Protocol(format!("{kind} message for an invalid topic")))?;
        Ok(match kind {
            "request" => Message::Request { topic },
            "complete" => Message::Complete { topic },
            "hello" if old_hello => Message::Hello { topic, persistent: false },
            "hello" => {
                let persistent = match words[2] {
                    "true" => true,
                    "false" => false,
                    _ => return Err(Error::Protocol(format!("hello {topic} with persistence not true/false"))),
                };
                Message::Hello { topic, persistent }
            }
            "delete" => {
                let key = decode_key(&topic, kind, words[2])?;
                Message::Delete { topic, key }
            }
            "restarted" => {
                let digits = words[2];
                let counter = Some(digits)
                    .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|d| d.parse::<u64>().ok())
                    .ok_or_else(|| Error::Protocol(format!("restarted {topic} with a counter not a decimal u64")))?;
                Message::Restarted { topic, counter }
            }
            _ => {
                let key = decode_key(&topic, kind, words[2])?;
                let value = STANDARD
                    .decode(words[3])
                    .map_err(|e| Error::Protocol(format!("update {topic} {key:?}: value is not base64: {e}")))?;
                Message::Update { topic, key, value }
            }
        })
    }
}

/// The size of `update <topic> <b64 key> <b64 value>` for a value of `value_len` bytes.
pub(crate) fn update_size(topic: &str, key: &str, value_len: usize) -> usize {
    "update ".len() + topic.len() + 1 + b64_len(key.len()) + 1 + b64_len(value_len)
}

/// Length of the padded base64 of `n` bytes.
fn b64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

fn too_large(topic: &str, key: &str, size: usize) -> Error {
    Error::TooLarge { topic: topic.to_owned(), key: key.to_owned(), size, limit: MAX_MESSAGE }
}

fn decode_key(topic: &str, kind: &str, word: &str) -> Result<String, Error> {
    let bytes =
        STANDARD.decode(word).map_err(|e| Error::Protocol(format!("{kind} {topic}: key is not base64: {e}")))?;
    String::from_utf8(bytes).map_err(|_| Error::Protocol(format!("{kind} {topic}: key is not UTF-8")))
}

/// A word from a peer, cut short for a log line.
fn printable(word: &str) -> String {
    word.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Message> {
        let t = || "DomainStatus".to_owned();
        vec![
            Message::Request { topic: t() },
            Message::Hello { topic: t(), persistent: true },
            Message::Hello { topic: t(), persistent: false },
            Message::Update { topic: t(), key: "k ey/é".into(), value: br#"{"a": 1}"#.to_vec() },
            Message::Update { topic: t(), key: "x".into(), value: b"1".to_vec() },
            Message::Delete { topic: t(), key: "a-b".into() },
            Message::Complete { topic: t() },
            Message::Restarted { topic: t(), counter: 0 },
            Message::Restarted { topic: t(), counter: u64::MAX },
        ]
    }

    #[test]
    fn round_trips() {
        for m in all() {
            let bytes = m.encode().unwrap();
            assert_eq!(Message::decode(&bytes).unwrap(), m, "{}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn encodes_eve_text() {
        let m = Message::Update { topic: "T".into(), key: "ab".into(), value: b"{}".to_vec() };
        assert_eq!(m.encode().unwrap(), b"update T YWI= e30=");
        let h = Message::Hello { topic: "T".into(), persistent: false };
        assert_eq!(h.encode().unwrap(), b"hello T false");
        assert_eq!(Message::Restarted { topic: "T".into(), counter: 12 }.encode().unwrap(), b"restarted T 12");
    }

    #[test]
    fn accepts_the_hello_of_eves_before_the_persistence_flag() {
        assert_eq!(Message::decode(b"hello T").unwrap(), Message::Hello { topic: "T".into(), persistent: false });
    }

    #[test]
    fn rejects_wrong_word_counts() {
        for bad in [
            "request",
            "request T x",
            "hello T true x",
            "update T YWI=",
            "update T YWI= e30= x",
            "delete T",
            "delete T YWI= x",
            "complete",
            "complete T x",
            "restarted T",
            "restarted T 1 2",
            "request  T",
            "request T ",
            "",
            "bogus T",
        ] {
            assert!(matches!(Message::decode(bad.as_bytes()), Err(Error::Protocol(_))), "{bad:?}");
        }
    }

    #[test]
    fn rejects_bad_base64() {
        for bad in [
            "update T YWI e30=",
            "update T YWI= e30",
            "delete T YW!=",
            "update T YWJ= e30=",
            "delete T ====",
            "delete T YQ",
        ] {
            assert!(matches!(Message::decode(bad.as_bytes()), Err(Error::Protocol(_))), "{bad:?}");
        }
        // Not UTF-8 key.
        let m = format!("delete T {}", STANDARD.encode([0xff, 0xfe]));
        assert!(Message::decode(m.as_bytes()).is_err());
    }

    #[test]
    fn rejects_bad_counter_and_flag() {
        for bad in
            ["restarted T -1", "restarted T +1", "restarted T 1.0", "restarted T 18446744073709551616", "hello T True"]
        {
            assert!(matches!(Message::decode(bad.as_bytes()), Err(Error::Protocol(_))), "{bad:?}");
        }
        assert_eq!(Message::decode(b"restarted T 007").unwrap(), Message::Restarted { topic: "T".into(), counter: 7 });
    }

    #[test]
    fn rejects_bad_topics() {
        assert!(Message::decode("complete Té".as_bytes()).is_err());
        assert!(Message::decode(b"complete T\x01").is_err());
        assert!(Message::decode(b"complete \xff").is_err());
        assert!(Message::decode(b"complete a/b").is_err());
        for topic in ["", "a b", "é", "..", "a/b"] {
            let m = Message::Complete { topic: topic.into() };
            assert!(matches!(m.encode(), Err(Error::InvalidTopic(_))), "{topic:?}");
        }
    }

    #[test]
    fn too_large_both_ways() {
        // Exactly at the limit: the value's base64 makes the message MAX_MESSAGE bytes.
        let fixed = update_size("T", "k", 0);
        let fits = (MAX_MESSAGE - 1 - fixed) / 4 * 3;
        let ok = Message::Update { topic: "T".into(), key: "k".into(), value: vec![b'1'; fits] };
        let bytes = ok.encode().unwrap();
        assert!(bytes.len() < MAX_MESSAGE);
        assert_eq!(bytes.len(), update_size("T", "k", fits));
        assert_eq!(Message::decode(&bytes).unwrap(), ok);
        let big = Message::Update { topic: "T".into(), key: "k".into(), value: vec![b'1'; fits + 3] };
        assert!(matches!(big.encode(), Err(Error::TooLarge { size, .. }) if size >= MAX_MESSAGE));
        let mut raw = b"complete T".to_vec();
        raw.resize(MAX_MESSAGE, b'x');
        assert!(matches!(Message::decode(&raw), Err(Error::TooLarge { .. })));
    }
}
