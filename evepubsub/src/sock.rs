//! The SOCK_SEQPACKET unix-socket plumbing both sides share, on rustix's safe API: taking over a
//! publication's socket path and listening on it, dialing it, sending one message (MSG_NOSIGNAL,
//! so SIGPIPE never fires), receiving one message with truncation detected (MSG_TRUNC), and
//! checking whether an idle peer hung up.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

use crate::Error;

/// One received message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// A message of this many bytes is in the buffer.
    Message(usize),
    /// A message of this many bytes did not fit in the buffer (its start is there).
    Truncated(usize),
    /// The peer closed the connection.
    Eof,
}

fn new_socket() -> rustix::io::Result<OwnedFd> {
    rustix::net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
}

/// Dials the socket at `path`.
pub(crate) fn connect(path: &Path) -> Result<OwnedFd, Error> {
    let addr = SocketAddrUnix::new(path).map_err(|e| Error::io("socket address", path, e))?;
    let fd = new_socket().map_err(|e| Error::io("socket", path, e))?;
    loop {
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => return Ok(fd),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(Error::io("connect", path, e)),
        }
    }
}

/// Listens on `path`, taking it over: if a file is there and a connect to it succeeds, another
/// publisher is live ([`Error::InUse`]); else the stale file is removed first.
pub(crate) fn listen(path: &Path, backlog: i32) -> Result<OwnedFd, Error> {
    if std::fs::symlink_metadata(path).is_ok() {
        if connect(path).is_ok() {
            return Err(Error::InUse(path.to_owned()));
        }
        log::debug!("removing stale socket {}", path.display());
        // Its old publisher, closing as we look, may remove it first: gone either way.
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove stale socket", path, e));
            }
            _ => {}
        }
    }
    let addr = SocketAddrUnix::new(path).map_err(|e| Error::io("socket address", path, e))?;
    let fd = new_socket().map_err(|e| Error::io("socket", path, e))?;
    rustix::net::bind(&fd, &addr).map_err(|e| Error::io("bind", path, e))?;
    rustix::net::listen(&fd, backlog).map_err(|e| Error::io("listen", path, e))?;
    Ok(fd)
}

/// Accepts one connection (close-on-exec); retries on EINTR and ECONNABORTED.
pub(crate) fn accept(listener: impl AsFd) -> rustix::io::Result<OwnedFd> {
    loop {
        match rustix::net::accept_with(&listener, SocketFlags::CLOEXEC) {
            Err(Errno::INTR | Errno::CONNABORTED) => continue,
            other => return other,
        }
    }
}

/// Sends one message, all of it, with MSG_NOSIGNAL.
pub(crate) fn send(fd: impl AsFd, message: &[u8]) -> rustix::io::Result<()> {
    loop {
        match rustix::net::send(&fd, message, SendFlags::NOSIGNAL) {
            Ok(n) if n == message.len() => return Ok(()),
            // SEQPACKET sends are atomic; a short one should not happen, but never pass it as whole.
            Ok(_) => return Err(Errno::MSGSIZE),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Receives one message into `buf`, telling a truncated one (MSG_TRUNC) and end of file apart. A
/// zero-length message cannot be told from end of file; like Go (whose EVE peers read it as EOF),
/// it counts as end of file.
pub(crate) fn recv(fd: impl AsFd, buf: &mut [u8]) -> rustix::io::Result<Received> {
    loop {
        match rustix::net::recv(&fd, &mut *buf, RecvFlags::TRUNC) {
            Ok((_, 0)) => return Ok(Received::Eof),
            Ok((_, len)) if len > buf.len() => return Ok(Received::Truncated(len)),
            Ok((_, len)) => return Ok(Received::Message(len)),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Whether an idle connection's peer is gone: a non-blocking peek sees end of file or an error.
/// Anything the peer sent meanwhile is read and dropped (with a warning naming `who`).
pub(crate) fn peer_gone(fd: impl AsFd, who: &str) -> bool {
    let mut byte = [0u8; 1];
    loop {
        match rustix::net::recv(&fd, &mut byte[..], RecvFlags::PEEK | RecvFlags::DONTWAIT | RecvFlags::TRUNC) {
            Ok((_, 0)) => return true,
            Ok((_, len)) => {
                log::warn!("{who}: subscriber sent an unexpected message of {len} bytes; dropping it");
                if rustix::net::recv(&fd, &mut byte[..], RecvFlags::DONTWAIT).is_err() {
                    return true;
                }
            }
            Err(Errno::INTR) => continue,
            Err(Errno::WOULDBLOCK) => return false,
            Err(_) => return true,
        }
    }
}

/// Shuts a socket down both ways, waking any thread blocked on it; errors (already gone) are ignored.
pub(crate) fn shutdown(fd: impl AsFd) {
    if let Err(e) = rustix::net::shutdown(&fd, rustix::net::Shutdown::Both) {
        log::debug!("shutdown: {e}");
    }
}
