//! The one xenstore request the init makes, a write of its exit status, in the wire protocol
//! of `xen/include/public/io/xs_wire.h`: a 16-byte header of four native-endian `u32`s (type,
//! request id, transaction id, payload length) and the payload, here `path\0value`. The init
//! writes it to `/dev/xen/xenbus`, which it opens before its chroot, and reads the answer with a
//! deadline. (`xenstore-rs` speaks the same protocol but opens the device itself by path, after
//! trying a `/run/xenstored/socket` that the container could have planted, and blocks without a
//! deadline.)

/// `XS_WRITE`.
pub const XS_WRITE: u32 = 11;
/// `XS_ERROR`: the answer to a failed request, its payload an errno name (`EACCES\0`).
pub const XS_ERROR: u32 = 16;
/// The header's size.
pub const XS_HEADER_LEN: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`.
pub const XS_PAYLOAD_MAX: usize = 4096;

/// A message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XsHeader {
    /// The message type (`XS_WRITE`, `XS_ERROR`...).
    pub msg_type: u32,
    /// The request id, echoed in the answer.
    pub req_id: u32,
    /// The transaction id, 0 for none.
    pub tx_id: u32,
    /// The payload's length.
    pub len: u32,
}

impl XsHeader {
    /// Decodes a header.
    pub fn parse(bytes: &[u8; XS_HEADER_LEN]) -> XsHeader {
        let word = |i: usize| u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        XsHeader { msg_type: word(0), req_id: word(4), tx_id: word(8), len: word(12) }
    }
}

/// The bytes of an `XS_WRITE` of `value` at `path` outside any transaction. A relative path is
/// relative to the writer's own `/local/domain/<domid>/`.
pub fn xs_write_message(req_id: u32, path: &str, value: &str) -> Result<Vec<u8>, String> {
    if path.is_empty() || path.contains('\0') || value.contains('\0') {
        return Err("xenstore path or value is empty or has a NUL byte".to_string());
    }
    let len = path.len() + 1 + value.len();
    if len > XS_PAYLOAD_MAX {
        return Err(format!("xenstore write of {len} bytes, more than {XS_PAYLOAD_MAX}"));
    }
    let mut msg = Vec::with_capacity(XS_HEADER_LEN + len);
    for word in [XS_WRITE, req_id, 0, len as u32] {
        msg.extend_from_slice(&word.to_ne_bytes());
    }
    msg.extend_from_slice(path.as_bytes());
    msg.push(0);
    msg.extend_from_slice(value.as_bytes());
    Ok(msg)
}

/// Whether the answer (`header` and its `payload`) acknowledges the write with `req_id`.
pub fn check_write_reply(req_id: u32, header: &XsHeader, payload: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(payload);
    let text = text.trim_end_matches('\0');
    match header.msg_type {
        _ if header.req_id != req_id => Err(format!("answer to request {}, not {req_id}", header.req_id)),
        XS_WRITE => Ok(()),
        XS_ERROR => Err(format!("xenstore refused the write: {text}")),
        other => Err(format!("unexpected xenstore answer type {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_message_layout() {
        let msg = xs_write_message(7, "data/container-exit-status", "137").unwrap();
        let mut header = [0u8; 16];
        header.copy_from_slice(&msg[..16]);
        let h = XsHeader::parse(&header);
        assert_eq!(h, XsHeader { msg_type: 11, req_id: 7, tx_id: 0, len: 30 });
        assert_eq!(&msg[16..], b"data/container-exit-status\x00137");
        // Little-endian on x86: the type is the first byte.
        if cfg!(target_endian = "little") {
            assert_eq!(&msg[..4], &[11, 0, 0, 0]);
        }
    }

    #[test]
    fn write_message_limits() {
        assert!(xs_write_message(1, "a\0b", "1").is_err());
        assert!(xs_write_message(1, "", "1").is_err());
        assert!(xs_write_message(1, "p", &"x".repeat(XS_PAYLOAD_MAX)).is_err());
        assert!(xs_write_message(1, "p", &"x".repeat(XS_PAYLOAD_MAX - 2)).is_ok());
    }

    #[test]
    fn replies() {
        let ok = XsHeader { msg_type: XS_WRITE, req_id: 3, tx_id: 0, len: 3 };
        assert!(check_write_reply(3, &ok, b"OK\0").is_ok());
        assert!(check_write_reply(4, &ok, b"OK\0").is_err());
        let err = XsHeader { msg_type: XS_ERROR, ..ok };
        assert!(check_write_reply(3, &err, b"EACCES\0").unwrap_err().contains("EACCES"));
        let odd = XsHeader { msg_type: 2, ..ok };
        assert!(check_write_reply(3, &odd, b"").is_err());
    }
}
