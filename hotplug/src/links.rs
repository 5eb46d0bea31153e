//! [`Links`]: the network interface operations a vif needs (look up, rename, MTU, MAC, bridge,
//! up), and [`Rtnl`], their implementation over rtnetlink (`netlink-packet-route` messages on
//! a `netlink-sys` socket, one request and its acknowledgement at a time): no `ip` process.

use std::sync::Mutex;

use netlink_packet_core::{NLM_F_ACK, NLM_F_MULTIPART, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// What device setup needs to know of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its index.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// Its MTU.
    pub mtu: u32,
    /// The index of the bridge (or other controller) it is a port of.
    pub master: Option<u32>,
    /// Administratively up.
    pub up: bool,
    /// Its kind (`bridge`, `openvswitch`, `vif`...), when the kernel says.
    pub kind: Option<String>,
}

/// Network interface operations. Errors are messages for the operator.
pub trait Links {
    /// The interface called `name`, if there is one.
    fn get(&self, name: &str) -> Result<Option<Link>, String>;
    /// Renames the (down) interface `index`.
    fn rename(&self, index: u32, name: &str) -> Result<(), String>;
    /// Sets the MTU.
    fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), String>;
    /// Sets the MAC address.
    fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), String>;
    /// Makes the interface a port of `master` (a bridge's index).
    fn set_master(&self, index: u32, master: u32) -> Result<(), String>;
    /// Sets it up or down.
    fn set_up(&self, index: u32, up: bool) -> Result<(), String>;
}

/// rtnetlink on one socket; requests are serialised.
#[derive(Debug)]
pub struct Rtnl {
    socket: Mutex<(Socket, u32)>,
}

impl Rtnl {
    /// Opens and binds a route netlink socket.
    pub fn open() -> std::io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl { socket: Mutex::new((socket, 0)) })
    }

    /// Sends `msg` with `flags` and collects the answers until the acknowledgement (or the end
    /// of a dump).
    fn request(&self, msg: RouteNetlinkMessage, flags: u16) -> std::io::Result<Vec<RouteNetlinkMessage>> {
        let mut guard = self.socket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (socket, seq) = &mut *guard;
        *seq = seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = *seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        socket.send(&buf, 0)?;
        let mut answers = Vec::new();
        loop {
            let (data, _) = socket.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
                let len = reply.header.length as usize;
                if reply.header.sequence_number == *seq {
                    match reply.payload {
                        NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                        NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(answers),
                        NetlinkPayload::InnerMessage(m) => {
                            answers.push(m);
                            // A single answer without an acknowledgement asked for.
                            if flags & NLM_F_ACK == 0 && reply.header.flags & NLM_F_MULTIPART == 0 {
                                return Ok(answers);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    fn set(&self, index: u32, attributes: Vec<LinkAttribute>, flags: Option<(LinkFlags, bool)>) -> Result<(), String> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        if let Some((flag, on)) = flags {
            msg.header.change_mask = flag;
            msg.header.flags = if on { flag } else { LinkFlags::empty() };
        }
        msg.attributes = attributes;
        self.request(RouteNetlinkMessage::SetLink(msg), NLM_F_REQUEST | NLM_F_ACK).map(drop).map_err(|e| e.to_string())
    }
}

impl Links for Rtnl {
    fn get(&self, name: &str) -> Result<Option<Link>, String> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let answers = match self.request(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST) {
            Ok(a) => a,
            Err(e) if e.raw_os_error() == Some(libc_enodev()) => return Ok(None),
            Err(e) => return Err(format!("look up {name}: {e}")),
        };
        Ok(answers.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(link_of(&l)),
            _ => None,
        }))
    }
    fn rename(&self, index: u32, name: &str) -> Result<(), String> {
        self.set(index, vec![LinkAttribute::IfName(name.to_string())], None)
    }
    fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), String> {
        self.set(index, vec![LinkAttribute::Mtu(mtu)], None)
    }
    fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), String> {
        self.set(index, vec![LinkAttribute::Address(mac.to_vec())], None)
    }
    fn set_master(&self, index: u32, master: u32) -> Result<(), String> {
        self.set(index, vec![LinkAttribute::Controller(master)], None)
    }
    fn set_up(&self, index: u32, up: bool) -> Result<(), String> {
        self.set(index, Vec::new(), Some((LinkFlags::Up, up)))
    }
}

fn link_of(l: &LinkMessage) -> Link {
    let mut link = Link {
        index: l.header.index,
        name: String::new(),
        mtu: 0,
        master: None,
        up: l.header.flags.contains(LinkFlags::Up),
        kind: None,
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Controller(m) if *m != 0 => link.master = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        link.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

/// ENODEV, the kernel's answer for an interface name it does not know.
fn libc_enodev() -> i32 {
    rustix::io::Errno::NODEV.raw_os_error()
}
