//! A one-shot DHCPv4 client for a container's interface: DISCOVER, OFFER, REQUEST, ACK, with
//! the broadcast flag set (the interface has no address to receive unicast on), over a UDP
//! socket on port 68 bound to the device (SO_BINDTODEVICE) with SO_BROADCAST. Packets are
//! `dhcproto` messages. The lease is taken once and never renewed: containers here live
//! shorter than leases, and the dom0 side can hand out static addresses when they do not.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

/// What the server gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
}

const ATTEMPTS: u32 = 4;

/// Runs the exchange on `ifname` (already up), a few attempts with growing timeouts.
pub fn obtain(ifname: &str, mac: [u8; 6]) -> Result<Lease, String> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 68)).map_err(|e| format!("DHCP socket: {e}"))?;
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::BindToDevice, &ifname.into())
        .map_err(|e| format!("DHCP socket: bind to {ifname}: {e}"))?;
    socket.set_broadcast(true).map_err(|e| format!("DHCP socket: {e}"))?;
    let server = (Ipv4Addr::BROADCAST, 67);
    for attempt in 0..ATTEMPTS {
        let wait = Duration::from_secs(2 << attempt);
        let xid = random_xid();
        socket.send_to(&encode(&discover(xid, mac))?, server).map_err(|e| format!("DHCP send: {e}"))?;
        let Some(offer) = receive(&socket, xid, mac, MessageType::Offer, wait) else { continue };
        let Some(server_id) = server_id(&offer) else { continue };
        socket
            .send_to(&encode(&request(xid, mac, offer.yiaddr(), server_id))?, server)
            .map_err(|e| format!("DHCP send: {e}"))?;
        match receive(&socket, xid, mac, MessageType::Ack, wait) {
            Some(ack) => return lease_of(&ack).ok_or_else(|| "DHCP ACK without an address".to_string()),
            None => continue,
        }
    }
    Err(format!("no DHCP lease after {ATTEMPTS} attempts"))
}

/// Waits until `deadline` for a reply of type `want` to our `xid`; NAKs and strangers' packets
/// are skipped (a NAK ends the wait: the attempt starts over).
fn receive(socket: &UdpSocket, xid: u32, mac: [u8; 6], want: MessageType, wait: Duration) -> Option<Message> {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
        socket.set_read_timeout(Some(left)).ok()?;
        let Ok((n, _)) = socket.recv_from(&mut buf) else { continue };
        match decode_reply(&buf[..n], xid, mac) {
            Some(m) if m.opts().msg_type() == Some(want) => return Some(m),
            Some(m) if m.opts().msg_type() == Some(MessageType::Nak) => return None,
            _ => {}
        }
    }
}

fn base(xid: u32, mac: [u8; 6], kind: MessageType) -> Message {
    let zero = Ipv4Addr::UNSPECIFIED;
    let mut msg = Message::new_with_id(xid, zero, zero, zero, zero, &mac);
    msg.set_flags(Flags::default().set_broadcast());
    msg.opts_mut().insert(DhcpOption::MessageType(kind));
    let mut client_id = vec![1u8];
    client_id.extend_from_slice(&mac);
    msg.opts_mut().insert(DhcpOption::ClientIdentifier(client_id));
    msg.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
    ]));
    msg
}

fn discover(xid: u32, mac: [u8; 6]) -> Message {
    base(xid, mac, MessageType::Discover)
}

fn request(xid: u32, mac: [u8; 6], offered: Ipv4Addr, server: Ipv4Addr) -> Message {
    let mut msg = base(xid, mac, MessageType::Request);
    msg.opts_mut().insert(DhcpOption::RequestedIpAddress(offered));
    msg.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    msg
}

fn encode(msg: &Message) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    msg.encode(&mut Encoder::new(&mut buf)).map_err(|e| format!("DHCP encode: {e}"))?;
    Ok(buf)
}

/// A server's reply to us: a BOOTREPLY with our transaction id and hardware address.
fn decode_reply(bytes: &[u8], xid: u32, mac: [u8; 6]) -> Option<Message> {
    let msg = Message::decode(&mut Decoder::new(bytes)).ok()?;
    (msg.opcode() == Opcode::BootReply && msg.xid() == xid && msg.chaddr().get(..6) == Some(&mac[..])).then_some(msg)
}

fn server_id(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    }
}

/// The lease in an ACK: `yiaddr`, the subnet mask as a prefix (the classful /24 if absent or
/// not contiguous), the first router, the name servers.
fn lease_of(msg: &Message) -> Option<Lease> {
    let address = msg.yiaddr();
    if address.is_unspecified() {
        return None;
    }
    let prefix = match msg.opts().get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => {
            let bits = u32::from(*mask);
            if bits.leading_ones() + bits.trailing_zeros() == 32 { bits.leading_ones() as u8 } else { 24 }
        }
        _ => 24,
    };
    let router = match msg.opts().get(OptionCode::Router) {
        Some(DhcpOption::Router(list)) => list.first().copied(),
        _ => None,
    };
    let dns = match msg.opts().get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(list)) => list.clone(),
        _ => Vec::new(),
    };
    Some(Lease { address, prefix, router, dns })
}

fn random_xid() -> u32 {
    let mut bytes = [0u8; 4];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes)).is_ok() {
        return u32::from_ne_bytes(bytes);
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0, 0x16, 0x3e, 1, 2, 3];

    fn reply(to: &Message, kind: MessageType) -> Message {
        let mut msg = to.clone();
        msg.set_opcode(Opcode::BootReply);
        msg.set_yiaddr(Ipv4Addr::new(10, 0, 0, 42));
        let mut opts = dhcproto::v4::DhcpOptions::new();
        opts.insert(DhcpOption::MessageType(kind));
        opts.insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 1)));
        opts.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 240, 0)));
        opts.insert(DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]));
        opts.insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(9, 9, 9, 9)]));
        msg.set_opts(opts);
        msg
    }

    #[test]
    fn discover_and_request_carry_what_servers_need() {
        let d = Message::decode(&mut Decoder::new(&encode(&discover(77, MAC)).unwrap())).unwrap();
        assert_eq!(d.opcode(), Opcode::BootRequest);
        assert_eq!(d.xid(), 77);
        assert!(d.flags().broadcast());
        assert_eq!(d.chaddr(), &MAC[..]);
        assert_eq!(d.opts().msg_type(), Some(MessageType::Discover));
        let r = request(77, MAC, Ipv4Addr::new(10, 0, 0, 42), Ipv4Addr::new(10, 0, 0, 1));
        let r = Message::decode(&mut Decoder::new(&encode(&r).unwrap())).unwrap();
        assert_eq!(r.opts().msg_type(), Some(MessageType::Request));
        assert_eq!(
            r.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 42)))
        );
        assert_eq!(server_id(&r), Some(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn ack_gives_the_lease() {
        let ack = reply(&discover(5, MAC), MessageType::Ack);
        let bytes = encode(&ack).unwrap();
        let got = decode_reply(&bytes, 5, MAC).unwrap();
        assert_eq!(
            lease_of(&got).unwrap(),
            Lease {
                address: Ipv4Addr::new(10, 0, 0, 42),
                prefix: 20,
                router: Some(Ipv4Addr::new(10, 0, 0, 1)),
                dns: vec![Ipv4Addr::new(9, 9, 9, 9)]
            }
        );
    }

    #[test]
    fn foreign_replies_are_ignored() {
        let ack = encode(&reply(&discover(5, MAC), MessageType::Ack)).unwrap();
        assert!(decode_reply(&ack, 6, MAC).is_none());
        assert!(decode_reply(&ack, 5, [1; 6]).is_none());
        assert!(decode_reply(&encode(&discover(5, MAC)).unwrap(), 5, MAC).is_none()); // a request
        assert!(decode_reply(b"garbage", 5, MAC).is_none());
    }
}
