//! Socket plumbing for the peer: SOCK_SEQPACKET unix sockets through rustix's safe API (listen,
//! dial, one message per send and per receive, receives bounded by a socket timeout), and the raw
//! connection and listener that bad-peer tests drive byte by byte.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::sockopt::{Timeout, set_socket_timeout};
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType, accept, bind, connect, listen, recv,
    send, socket_with,
};

/// EVE's bound on one message: a message must be strictly shorter than this many bytes.
pub const MAX_MESSAGE: usize = 65535;

/// How big a receive buffer is: room for messages well over the bound, so an oversize message is
/// seen whole (and reported) rather than silently cut.
const RECV_BUFFER: usize = 4 * MAX_MESSAGE;

/// What one receive on a connection gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recv {
    /// One whole message.
    Msg(Vec<u8>),
    /// A message longer than the receive buffer: its full length.
    Oversize(usize),
    /// Nothing arrived within the timeout.
    Timeout,
    /// The other end closed the connection.
    Closed,
}

fn seqpacket() -> io::Result<OwnedFd> {
    Ok(socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)?)
}

/// Binds and listens on a SOCK_SEQPACKET socket at `path` (which must not exist).
pub(crate) fn listen_at(path: &Path) -> io::Result<OwnedFd> {
    let fd = seqpacket()?;
    bind(&fd, &SocketAddrUnix::new(path)?)?;
    listen(&fd, 128)?;
    Ok(fd)
}

/// Connects a SOCK_SEQPACKET socket to `path`.
pub(crate) fn dial(path: &Path) -> io::Result<OwnedFd> {
    let fd = seqpacket()?;
    connect(&fd, &SocketAddrUnix::new(path)?)?;
    Ok(fd)
}

/// Accepts one connection on `listener`, waiting at most `timeout`; `Ok(None)` when none came.
pub(crate) fn accept_within(listener: &OwnedFd, timeout: Duration) -> io::Result<Option<OwnedFd>> {
    // accept(2) on a unix socket honours SO_RCVTIMEO.
    set_socket_timeout(listener, Timeout::Recv, Some(timeout.max(Duration::from_millis(1))))?;
    loop {
        match accept(listener) {
            Ok(fd) => return Ok(Some(fd)),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sends `bytes` as one message (no SIGPIPE when the peer is gone).
pub(crate) fn send_msg(fd: &OwnedFd, bytes: &[u8]) -> io::Result<()> {
    loop {
        match send(fd, bytes, SendFlags::NOSIGNAL) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(n) => {
                return Err(io::Error::other(format!("short send: {n} of {} bytes", bytes.len())));
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message, waiting at most `timeout`.
pub(crate) fn recv_msg(fd: &OwnedFd, timeout: Duration) -> io::Result<Recv> {
    set_socket_timeout(fd, Timeout::Recv, Some(timeout.max(Duration::from_millis(1))))?;
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        match recv(fd, &mut buf[..], RecvFlags::TRUNC) {
            Ok((_, 0)) => return Ok(Recv::Closed),
            Ok((got, full)) if full > got => return Ok(Recv::Oversize(full)),
            Ok((got, _)) => {
                buf.truncate(got);
                return Ok(Recv::Msg(buf));
            }
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Ok(Recv::Timeout),
            Err(Errno::CONNRESET) => return Ok(Recv::Closed),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether the other end has closed `fd` (without waiting; pending messages are left unread).
pub(crate) fn peer_closed(fd: &OwnedFd) -> bool {
    let mut buf = [0u8; 1];
    match recv(fd, &mut buf[..], RecvFlags::PEEK | RecvFlags::DONTWAIT | RecvFlags::TRUNC) {
        Ok((_, 0)) => true,
        Ok(_) => false,
        Err(Errno::AGAIN | Errno::INTR) => false,
        Err(_) => true,
    }
}

/// One connection driven byte by byte: for tests of what happens with malformed or hostile
/// messages, in either direction.
#[derive(Debug)]
pub struct RawConn {
    fd: OwnedFd,
}

impl RawConn {
    /// Connects to the socket at `path` (a subscriber's side), sending nothing yet.
    pub fn dial(path: &Path) -> io::Result<RawConn> {
        Ok(RawConn { fd: dial(path)? })
    }

    /// The next message, or `None` when nothing came within `timeout` or the connection closed.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        match self.recv_full(timeout) {
            Recv::Msg(m) => Some(m),
            _ => None,
        }
    }

    /// The next receive, telling a timeout from a closed connection.
    pub fn recv_full(&self, timeout: Duration) -> Recv {
        recv_msg(&self.fd, timeout).unwrap_or(Recv::Closed)
    }

    /// Sends `bytes` as one message.
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        send_msg(&self.fd, bytes)
    }

    /// Reads (and drops) messages until the other end closes; whether it did within `timeout`.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.recv_full(left) {
                Recv::Closed => return true,
                Recv::Timeout => return false,
                Recv::Msg(_) | Recv::Oversize(_) => {}
            }
        }
    }
}

/// A listening socket at a topic's path that hands out [`RawConn`]s: a publisher under the
/// test's full control. Dropping it removes the socket file.
#[derive(Debug)]
pub struct RawListener {
    fd: OwnedFd,
    path: PathBuf,
}

impl RawListener {
    /// Listens at `path`, replacing a stale socket file there.
    pub fn listen(path: &Path) -> io::Result<RawListener> {
        remove_stale(path)?;
        Ok(RawListener { fd: listen_at(path)?, path: path.to_path_buf() })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next connection, or `None` when none came within `timeout`.
    pub fn accept(&self, timeout: Duration) -> Option<RawConn> {
        accept_within(&self.fd, timeout).ok().flatten().map(|fd| RawConn { fd })
    }
}

impl Drop for RawListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes a file left at a socket path (a dead publisher's socket).
pub(crate) fn remove_stale(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
