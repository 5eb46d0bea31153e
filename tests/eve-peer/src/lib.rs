//! Test-only: an independent, deliberately simple peer for EVE-OS's pubsub (its socketdriver),
//! written from the protocol's description rather than from `evepubsub`, so that tests can check
//! that crate (and the daemon) against it. [`PeerPublisher`] serves a topic as EVE's publishers
//! do; [`PeerSubscriber`] subscribes and panics on any departure from the framing and ordering
//! rules; [`RawConn`] and [`RawListener`] let bad-peer tests speak arbitrary bytes.
//!
//! The protocol: a SOCK_SEQPACKET unix socket `<agent_dir>/<Topic>.sock`, one message per write,
//! ASCII words separated by single spaces, each message under 65,535 bytes, keys and JSON values
//! in standard padded base64. The subscriber sends `request <Topic>`; the publisher answers
//! `hello <Topic> <persistent>`, an `update` per key, `complete <Topic>`, `restarted <Topic> <n>`
//! when the counter is non-zero, then per change `delete`s and `update`s.

#![forbid(unsafe_code)]

pub mod codec;
pub mod large;
pub mod publisher;
pub mod subscriber;
pub mod wire;

pub use codec::Msg;
pub use publisher::PeerPublisher;
pub use subscriber::{Next, PeerSubscriber, View};
pub use wire::{MAX_MESSAGE, RawConn, RawListener, Recv};

use std::time::{Duration, Instant};

/// Polls `cond` until it holds or `timeout` passes; whether it held. For state that no message
/// announces (a file appearing, a connection count): each retry waits a short, fixed tick.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::park_timeout(Duration::from_millis(5));
    }
}
