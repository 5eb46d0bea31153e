//! evepubsub: EVE-OS's pubsub as its socketdriver speaks it, so this workspace's daemon can publish
//! topics to EVE agents and subscribe to theirs. This file owns the crate's surface: the limits, the
//! one error type, and the re-exports of [`Publication`] (`publication.rs`: a topic served on
//! `<agent_dir>/<Topic>.sock` with checkpoints in `<agent_dir>/<Topic>/`), [`Subscription`]
//! (`subscription.rs`: a thread that dials a publisher and passes on its [`Event`]s) and [`wire`]
//! (the messages). Checkpoint files live in `checkpoint.rs`, large fields in `large.rs`, the
//! SOCK_SEQPACKET plumbing in `sock.rs`.

#![forbid(unsafe_code)]

use std::path::PathBuf;

mod checkpoint;
mod large;
mod publication;
mod sock;
mod subscription;
pub mod wire;

#[cfg(test)]
mod pubsub_tests;

pub use publication::{Publication, PublicationOptions};
pub use subscription::{Event, Subscription, SubscriptionOptions};

/// A message must be shorter than this many bytes (EVE: `len(buf) >= 65535` is too large).
pub const MAX_MESSAGE: usize = 65535;

/// The largest file a `pubsub-large-X` field may travel in, in bytes (the file holds
/// `{"pubsub-large-X": value}`; EVE refuses one of this size or more).
pub const LARGE_FILE_MAX: usize = 1 << 20;

/// What can go wrong in this crate. Every variant names the topic, key, path or message it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A topic name that is empty, is `.` or `..`, or has a character other than printable ASCII
    /// without space and `/`.
    #[error("invalid topic {0:?}")]
    InvalidTopic(String),
    /// A key that cannot be published (it names a checkpoint file `<key>.json`).
    #[error("{topic}: invalid key {key:?}: {why}")]
    InvalidKey {
        /// The publication's topic.
        topic: String,
        /// The key refused.
        key: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A value that cannot be published (not JSON, or a large field that cannot travel).
    #[error("{topic}/{key}: invalid value: {why}")]
    InvalidValue {
        /// The publication's topic.
        topic: String,
        /// The key it was published under.
        key: String,
        /// What is wrong with it.
        why: String,
    },
    /// A message (or a large field's file) would be too large.
    #[error("{topic}/{key}: {size} bytes is too large (the limit is under {limit})")]
    TooLarge {
        /// The topic of the message.
        topic: String,
        /// The key of the message (empty for messages without one).
        key: String,
        /// Its size in bytes.
        size: usize,
        /// The size it must stay under.
        limit: usize,
    },
    /// Another publisher is live on this socket path.
    #[error("{0}: another publisher is serving this socket")]
    InUse(PathBuf),
    /// A file or socket operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file, directory or socket it was done to.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A message that does not follow the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl Error {
    /// An [`Error::Io`] for `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: impl Into<std::io::Error>) -> Error {
        Error::Io { op, path: path.into(), source: source.into() }
    }
}

/// Whether `topic` may name a topic: a non-empty word of printable ASCII without space or `/`, and
/// not `.` or `..` (it names a socket file and a directory).
pub(crate) fn check_topic(topic: &str) -> Result<(), Error> {
    let printable = topic.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    if topic.is_empty() || !printable || topic == "." || topic == ".." {
        return Err(Error::InvalidTopic(topic.to_owned()));
    }
    Ok(())
}
