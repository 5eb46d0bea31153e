//! The guest's network: `lo` up, then each interface the spec names (found by MAC in
//! /sys/class/net) given its MTU and either a static address and default route or a DHCP
//! lease; with no network entries in the spec, every `eth*` gets DHCP. rtnetlink requests
//! (`netlink-packet-route` messages on a `netlink-sys` socket, one request and its
//! acknowledgement at a time), no `ip` or busybox. Failures are printed and the next interface
//! is tried: a container without its network still runs and says why.

use std::fs;
use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::console::say;
use crate::dhcp;
use xen_container_init::{NetConfig, RunSpec, parse_cidr, parse_mac};

/// An interface as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interface {
    name: String,
    index: u32,
    mac: Option<[u8; 6]>,
}

fn interfaces() -> Vec<Interface> {
    let Ok(dir) = fs::read_dir("/sys/class/net") else { return Vec::new() };
    let mut list: Vec<Interface> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let read = |f: &str| fs::read_to_string(e.path().join(f)).unwrap_or_default();
            let index = read("ifindex").trim().parse().ok()?;
            Some(Interface { mac: parse_mac(read("address").trim()), name, index })
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

/// Configures every interface; returns the name servers DHCP handed out.
pub fn configure(spec: &RunSpec) -> Vec<IpAddr> {
    let rtnl = match Rtnl::open() {
        Ok(r) => r,
        Err(e) => {
            say(format!("network: netlink: {e}"));
            return Vec::new();
        }
    };
    let all = interfaces();
    if let Some(lo) = all.iter().find(|i| i.name == "lo")
        && let Err(e) = rtnl.set_up(lo.index)
    {
        say(format!("network: lo up: {e}"));
    }
    let mut plan: Vec<(Interface, NetConfig)> = Vec::new();
    if spec.network.is_empty() {
        for i in all.iter().filter(|i| i.name.starts_with("eth")) {
            plan.push((i.clone(), NetConfig { dhcp: true, ..Default::default() }));
        }
    } else {
        for net in &spec.network {
            let mac = net.mac_bytes().ok();
            match all.iter().find(|i| i.mac.is_some() && i.mac == mac) {
                Some(i) => plan.push((i.clone(), net.clone())),
                None => say(format!("network: no interface with MAC {}", net.mac)),
            }
        }
    }
    let mut dns = Vec::new();
    for (iface, net) in plan {
        match configure_one(&rtnl, &iface, &net) {
            Ok(servers) => dns.extend(servers),
            Err(e) => say(format!("network: {}: {e}", iface.name)),
        }
    }
    dns
}

fn configure_one(rtnl: &Rtnl, iface: &Interface, net: &NetConfig) -> Result<Vec<IpAddr>, String> {
    if let Some(mtu) = net.mtu {
        rtnl.set_link(iface.index, vec![LinkAttribute::Mtu(mtu)], false).map_err(|e| format!("set MTU {mtu}: {e}"))?;
    }
    rtnl.set_up(iface.index).map_err(|e| format!("up: {e}"))?;
    if let Some(address) = &net.address {
        let (addr, prefix) = parse_cidr(address)?;
        rtnl.add_address(iface.index, addr, prefix).map_err(|e| format!("add {address}: {e}"))?;
        if let Some(gw) = &net.gateway {
            let gw: IpAddr = gw.parse().map_err(|_| format!("gateway {gw:?}"))?;
            rtnl.add_default_route(iface.index, gw).map_err(|e| format!("default route via {gw}: {e}"))?;
        }
        say(format!("{}: {address}", iface.name));
        return Ok(Vec::new());
    }
    if !net.dhcp {
        say(format!("{}: up, no address", iface.name));
        return Ok(Vec::new());
    }
    let mac = iface.mac.ok_or("no MAC address for DHCP")?;
    let lease = dhcp::obtain(&iface.name, mac)?;
    rtnl.add_address(iface.index, IpAddr::V4(lease.address), lease.prefix)
        .map_err(|e| format!("add {}/{}: {e}", lease.address, lease.prefix))?;
    if let Some(router) = lease.router {
        rtnl.add_default_route(iface.index, IpAddr::V4(router))
            .map_err(|e| format!("default route via {router}: {e}"))?;
    }
    say(format!("{}: {}/{} by DHCP", iface.name, lease.address, lease.prefix));
    Ok(lease.dns.into_iter().map(IpAddr::V4).collect())
}

/// A route netlink socket.
struct Rtnl {
    socket: Socket,
    seq: std::cell::Cell<u32>,
}

impl Rtnl {
    fn open() -> std::io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl { socket, seq: std::cell::Cell::new(0) })
    }

    /// Sends `msg` and waits for its acknowledgement.
    fn request(&self, msg: RouteNetlinkMessage, flags: u16) -> std::io::Result<()> {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        loop {
            let (data, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
                if reply.header.sequence_number == seq
                    && let NetlinkPayload::Error(e) = reply.payload
                {
                    return match e.code {
                        Some(_) => Err(e.to_io()),
                        None => Ok(()),
                    };
                }
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    fn set_link(&self, index: u32, attributes: Vec<LinkAttribute>, up: bool) -> std::io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        if up {
            msg.header.change_mask = LinkFlags::Up;
            msg.header.flags = LinkFlags::Up;
        }
        msg.attributes = attributes;
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
    }

    fn set_up(&self, index: u32) -> std::io::Result<()> {
        self.set_link(index, Vec::new(), true)
    }

    fn add_address(&self, index: u32, addr: IpAddr, prefix: u8) -> std::io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(addr);
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(addr));
        msg.attributes.push(AddressAttribute::Address(addr));
        if let IpAddr::V4(v4) = addr
            && prefix < 31
        {
            let host_bits = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            msg.attributes.push(AddressAttribute::Broadcast((u32::from(v4) | host_bits).into()));
        }
        self.request(RouteNetlinkMessage::NewAddress(msg), NLM_F_CREATE | NLM_F_EXCL)
    }

    fn add_default_route(&self, index: u32, gateway: IpAddr) -> std::io::Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(gateway);
        msg.header.destination_prefix_length = 0;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes.push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
        msg.attributes.push(RouteAttribute::Oif(index));
        self.request(RouteNetlinkMessage::NewRoute(msg), NLM_F_CREATE | NLM_F_EXCL)
    }
}

fn family(addr: IpAddr) -> AddressFamily {
    if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 }
}
