//! Link, network and tunnel decoding of one captured frame.
//!
//! This is the hot path of the tool: every captured frame goes through [`decode`]. The design
//! follows smoltcp's `wire` module and Suricata's decoders:
//!
//! * **Views, not copies.** [`Decoded`] borrows the frame; nothing is allocated or copied per
//!   packet, and the same `Decoded` is reused (overwritten) for the next frame.
//! * **Bounded, checked parsing.** Every read goes through [`be16`]/[`arr`] which return `None`
//!   past the end, offsets use checked or saturating arithmetic, and every loop over attacker
//!   controlled structure (VLAN tags, MPLS labels, IPv6 extension headers, GTP extension
//!   headers, tunnel nesting) has a hard cap. A capture is hostile input: a length field is a
//!   claim to be checked against the bytes actually present, never an index to trust.
//! * **Best effort for the caller's question.** The caller wants the innermost connection (who
//!   talked to whom). So a frame whose inner tunnel payload is malformed still yields the outer
//!   layer as the connection instead of being dropped (the tunnel attempt is rolled back), and
//!   a frame cut short by the snap length still yields its addresses (`truncated` is set).
//!
//! Decapsulation recursion is bounded by [`MAX_DEPTH`] because every recursive step first pushes
//! an IP layer; the one layer-2 loop that does not (MPLS pseudowire carrying Ethernet) is only
//! followed once.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Link types (pcap LINKTYPE_ numbers) we decode.
pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LOOP: u32 = 108;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
/// Linux netfilter NFLOG (`iptables -j NFLOG`, `tcpdump -i nflog`).
pub const LINKTYPE_NFLOG: u32 = 239;

/// Maximum number of IP layers kept (outer tunnel headers plus the innermost packet).
pub const MAX_DEPTH: usize = 4;

/// UDP destination port of VXLAN (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// UDP port of GTP-U (3GPP TS 29.281).
pub const GTPU_PORT: u16 = 2152;
/// UDP port of Teredo (RFC 4380).
pub const TEREDO_PORT: u16 = 3544;
/// UDP destination port of Geneve (RFC 8926): AWS Gateway Load Balancer, VMware NSX, OVN.
pub const GENEVE_PORT: u16 = 6081;
/// UDP destination port of MPLS in UDP (RFC 7510).
pub const MPLS_UDP_PORT: u16 = 6635;
/// UDP port of AYIYA (Anything In Anything, the tunnel of SixXS's IPv6 brokers).
pub const AYIYA_PORT: u16 = 5072;

/// More VLAN tags than this before the payload is treated as garbage (real QinQ uses 2).
const MAX_VLAN_TAGS: usize = 8;
/// More MPLS labels than this is treated as garbage (real stacks are a handful deep).
const MAX_MPLS_LABELS: usize = 16;
/// Cap on the IPv6 extension header chain, so a crafted endless chain cannot make us spin.
const MAX_IPV6_EXT: usize = 16;
/// Cap on the GTP-U extension header chain.
const MAX_GTP_EXT: usize = 16;

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_QINQ_OLD2: u16 = 0x9200;
const ETH_MPLS_UC: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const ETH_PPPOE_SESSION: u16 = 0x8864;
const ETH_TEB: u16 = 0x6558;
const ETH_ERSPAN2: u16 = 0x88be;
const ETH_ERSPAN3: u16 = 0x22eb;
const ETH_PPP: u16 = 0x880b;
/// Cisco MetaData (TrustSec SGT tag), in Ethernet and in GRE.
const ETH_CISCO_METADATA: u16 = 0x8909;
const ARPHRD_IPGRE: u16 = 778;

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_DCCP: u8 = 33;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_GRE: u8 = 47;
const IPPROTO_AH: u8 = 51;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;
const IPPROTO_UDPLITE: u8 = 136;

/// Kind of tunnel that carries the next IP layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelKind {
    /// GRE (RFC 2784/2890), including transparent Ethernet bridging and PPP (PPTP).
    Gre,
    /// Cisco ERSPAN type I/II/III (GRE protocol 0x88BE / 0x22EB).
    Erspan,
    /// VXLAN (UDP 4789).
    Vxlan,
    /// GTP-U (UDP 2152).
    GtpU,
    /// IPv4/IPv6 directly in IPv4/IPv6 (protocols 4 and 41).
    IpInIp,
    /// Teredo (IPv6 in UDP 3544).
    Teredo,
    /// Geneve (UDP 6081).
    Geneve,
    /// MPLS in UDP (UDP 6635).
    MplsUdp,
    /// AYIYA (UDP 5072).
    Ayiya,
}

/// One IP header of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpLayer {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Protocol / final next header (after IPv6 extension headers).
    pub proto: u8,
    /// tunnel that carries the NEXT layer (None for innermost)
    pub tunnel: Option<TunnelKind>,
    /// for a UDP-based tunnel: the outer UDP ports (0 otherwise)
    pub sport: u16,
    pub dport: u16,
}

/// IP fragment information of the innermost layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fragment {
    /// IPv4 identification (16 bits) or IPv6 fragment header identification (32 bits).
    pub id: u32,
    /// Fragment offset in bytes.
    pub offset: u16,
    /// More-fragments flag.
    pub more: bool,
}

/// TCP header fields the trackers need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tcp {
    pub seq: u32,
    pub ack: u32,
    /// The 8 flag bits (CWR ECE URG ACK PSH RST SYN FIN).
    pub flags: u8,
}

/// One decoded frame. Reused across packets (call `clear` / decode overwrites), no allocation per
/// packet. It is `Copy` (a couple hundred bytes) so that a tunnel attempt can be rolled back.
#[derive(Clone, Copy, Debug, Default)]
pub struct Decoded<'a> {
    /// VLAN ids, outermost first (802.1Q, 802.1ad QinQ), at most 2 kept (count all in `vlan_count`).
    pub vlans: [u16; 2],
    pub vlan_count: u8,
    /// Number of MPLS labels seen.
    pub mpls_labels: u8,
    /// IP layers, outermost first; the last one is the innermost (the connection). At most MAX_DEPTH.
    pub layers: [Option<IpLayer>; MAX_DEPTH],
    pub depth: u8,
    /// Set when another tunnel was found below the MAX_DEPTH-th layer: the layers kept are
    /// usable, the deepest one is treated as innermost.
    pub depth_exceeded: bool,
    /// innermost transport: ports (0 for non-port protocols; ICMP gives 0/0)
    pub sport: u16,
    pub dport: u16,
    pub tcp: Option<Tcp>,
    /// Innermost L4 payload (after TCP/UDP header; for ICMP/other protocols the IP payload). Empty if none.
    pub payload: &'a [u8],
    /// Set when the innermost IP packet is a fragment: then sport/dport/payload are only valid for
    /// offset 0 fragments with a complete L4 header; `ip_payload` holds the fragment's IP payload.
    pub fragment: Option<Fragment>,
    /// The innermost IP payload (after the IPv4 header / IPv6 extension headers), always set.
    pub ip_payload: &'a [u8],
    /// true if the packet was cut short (caplen < wire len) but addresses were read.
    pub truncated: bool,
}

impl<'a> Decoded<'a> {
    /// Resets every field, ready for the next frame.
    pub fn clear(&mut self) {
        *self = Decoded::default();
    }

    /// The innermost IP layer (the connection), if any.
    pub fn innermost(&self) -> Option<&IpLayer> {
        let i = usize::from(self.depth).checked_sub(1)?;
        self.layers.get(i)?.as_ref()
    }

    /// The outermost IP layer, if any.
    pub fn outermost(&self) -> Option<&IpLayer> {
        if self.depth == 0 {
            return None;
        }
        self.layers.first()?.as_ref()
    }

    /// The IP layers present, outermost first.
    pub fn ip_layers(&self) -> impl Iterator<Item = &IpLayer> {
        self.layers.iter().take(usize::from(self.depth)).flatten()
    }

    fn clear_transport(&mut self) {
        self.sport = 0;
        self.dport = 0;
        self.tcp = None;
        self.payload = &[];
        self.fragment = None;
        self.ip_payload = &[];
    }

    fn push_vlan(&mut self, vid: u16) {
        if let Some(slot) = self.vlans.get_mut(usize::from(self.vlan_count)) {
            *slot = vid;
        }
        self.vlan_count = self.vlan_count.saturating_add(1);
    }
}

/// Why a frame could not be decoded far enough to yield an IP layer. Stable `as_str()` names for counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The capture's link type is not one we decode.
    UnsupportedLinkType,
    /// A valid frame that does not carry IP (ARP, LLDP, STP...).
    NotIp,
    /// The frame ends before the first IP header is complete.
    Truncated,
    /// The IP header is malformed (bad version, IHL, lengths, endless extension headers).
    BadIpHeader,
    /// Too many encapsulation levels (VLAN tags, MPLS labels) before any IP layer.
    TooManyLayers,
    /// Zero-length frame.
    Empty,
}

impl Skip {
    /// Every variant, for pre-registering counters.
    pub const ALL: [Skip; 6] =
        [Skip::UnsupportedLinkType, Skip::NotIp, Skip::Truncated, Skip::BadIpHeader, Skip::TooManyLayers, Skip::Empty];

    /// Stable snake_case name, for counters and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::UnsupportedLinkType => "unsupported_link_type",
            Skip::NotIp => "not_ip",
            Skip::Truncated => "truncated",
            Skip::BadIpHeader => "bad_ip_header",
            Skip::TooManyLayers => "too_many_layers",
            Skip::Empty => "empty",
        }
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decodes a frame captured with `linktype`. On Ok, at least one IP layer is present.
/// If `decapsulate` is false, stop at the outermost IP layer.
pub fn decode<'a>(linktype: u32, frame: &'a [u8], decapsulate: bool, out: &mut Decoded<'a>) -> Result<(), Skip> {
    decode_with::<true>(linktype, frame, decapsulate, out)
}

/// [`decode`], with the short cut for the commonest frame (`COMMON`) or without it: the tests
/// and the fuzz harness hold the short cut to the general walk.
#[inline(always)]
fn decode_with<'a, const COMMON: bool>(
    linktype: u32,
    frame: &'a [u8],
    decapsulate: bool,
    out: &mut Decoded<'a>,
) -> Result<(), Skip> {
    out.clear();
    if frame.is_empty() {
        return Err(Skip::Empty);
    }
    match linktype {
        LINKTYPE_ETHERNET if COMMON && common_tcp(frame, out) => Ok(()),
        LINKTYPE_ETHERNET => ether(frame, decapsulate, out, true),
        LINKTYPE_RAW => ip(frame, decapsulate, out),
        LINKTYPE_IPV4 => ipv4(frame, decapsulate, out),
        LINKTYPE_IPV6 => ipv6(frame, decapsulate, out),
        LINKTYPE_NFLOG => nflog(frame, decapsulate, out),
        LINKTYPE_NULL => null(frame, false, decapsulate, out),
        LINKTYPE_LOOP => null(frame, true, decapsulate, out),
        LINKTYPE_LINUX_SLL => sll(frame, decapsulate, out),
        LINKTYPE_LINUX_SLL2 => sll2(frame, decapsulate, out),
        _ => Err(Skip::UnsupportedLinkType),
    }
}

/// The commonest frame, decoded without the walk over link layers, tags and tunnels: Ethernet
/// without a tag, IPv4 without options, not a fragment, TCP. Fills `out` (cleared) exactly as
/// `ether` -> `ipv4` -> `finish` do (TCP carries no tunnel) and returns true; false, `out`
/// untouched, for any other frame, and for one whose IPv4 length field is an error to report.
/// Most frames the engine decodes are such segments (the first ones of a TCP connection, and
/// those whose payload it reads): the walk cost them about 270 instructions, this about 100.
#[inline(always)]
fn common_tcp<'a>(frame: &'a [u8], out: &mut Decoded<'a>) -> bool {
    let Some(h) = frame.get(..34) else { return false };
    // EtherType IPv4, version 4 with a 20-byte header, TCP, neither more fragments nor an offset.
    if h[12..15] != [0x08, 0x00, 0x45] || h[23] != IPPROTO_TCP || h[20] & 0x3f != 0 || h[21] != 0 {
        return false;
    }
    let d = &frame[14..];
    let total = usize::from(u16::from_be_bytes([h[16], h[17]]));
    let (end, truncated) = match total {
        // TCP segmentation offload captures carry 0 here: use what is there.
        0 => (d.len(), false),
        // Shorter than its header: the walk reports it.
        1..20 => return false,
        _ if total > d.len() => (d.len(), true),
        _ => (total, false),
    };
    let src = IpAddr::V4(Ipv4Addr::new(h[26], h[27], h[28], h[29]));
    let dst = IpAddr::V4(Ipv4Addr::new(h[30], h[31], h[32], h[33]));
    let l4 = &d[20..end];
    out.truncated = truncated;
    out.layers[0] = Some(IpLayer { src, dst, proto: IPPROTO_TCP, tunnel: None, sport: 0, dport: 0 });
    out.depth = 1;
    out.ip_payload = l4;
    if !transport(IPPROTO_TCP, l4, out) {
        out.truncated = true;
    }
    true
}

/// Checks that [`decode`] reads `frame` as the general walk does (the fuzz harness runs it).
pub fn check_common(linktype: u32, frame: &[u8], decapsulate: bool) {
    let (mut fast, mut walk) = (Decoded::default(), Decoded::default());
    let a = decode_with::<true>(linktype, frame, decapsulate, &mut fast);
    let b = decode_with::<false>(linktype, frame, decapsulate, &mut walk);
    let same_slices = |x: &[u8], y: &[u8]| x.as_ptr() == y.as_ptr() && x.len() == y.len();
    assert!(
        a == b
            && format!("{fast:?}") == format!("{walk:?}")
            && same_slices(fast.payload, walk.payload)
            && same_slices(fast.ip_payload, walk.ip_payload),
        "decode's short cut read {a:?} {fast:?} where the walk read {b:?} {walk:?}"
    );
}

/// Decode starting from an IP header (used after reassembly and for raw IP). The version is
/// taken from the first nibble.
pub fn decode_ip<'a>(data: &'a [u8], decapsulate: bool, out: &mut Decoded<'a>) -> Result<(), Skip> {
    out.clear();
    if data.is_empty() {
        return Err(Skip::Empty);
    }
    ip(data, decapsulate, out)
}

/// Fills `sport`/`dport`/`tcp`/`payload` from a transport header of protocol `proto` (used
/// after reassembly, on the reassembled IP payload). Layers and fragment info are not touched;
/// an incomplete transport header sets `truncated` (ports are still filled when present).
pub fn parse_transport<'a>(proto: u8, l4: &'a [u8], out: &mut Decoded<'a>) {
    out.sport = 0;
    out.dport = 0;
    out.tcp = None;
    out.payload = &[];
    if !transport(proto, l4, out) {
        out.truncated = true;
    }
}

/// Like [`parse_transport`], and then, if `decapsulate`, looks for a tunnel in the reassembled
/// payload (e.g. a fragmented VXLAN or GRE packet) exactly as [`decode`] would. The innermost
/// existing layer of `out` is taken as the one carrying `l4`; `fragment` is cleared.
pub fn decode_transport<'a>(proto: u8, l4: &'a [u8], decapsulate: bool, out: &mut Decoded<'a>) {
    parse_transport(proto, l4, out);
    out.fragment = None;
    out.ip_payload = l4;
    if decapsulate && out.depth > 0 {
        tunnel(proto, l4, out);
    }
}

// ---------------------------------------------------------------------------------------------
// Bounded readers: the only way this module reads bytes.

#[inline]
fn arr<const N: usize>(d: &[u8], at: usize) -> Option<[u8; N]> {
    d.get(at..at.checked_add(N)?)?.try_into().ok()
}

#[inline]
fn be16(d: &[u8], at: usize) -> Option<u16> {
    arr::<2>(d, at).map(u16::from_be_bytes)
}

#[inline]
fn be32(d: &[u8], at: usize) -> Option<u32> {
    arr::<4>(d, at).map(u32::from_be_bytes)
}

#[inline]
fn tail(d: &[u8], from: usize) -> &[u8] {
    d.get(from..).unwrap_or(&[])
}

// ---------------------------------------------------------------------------------------------
// Link layers.

/// What a tunnel header (or a link layer) says comes next.
#[derive(Clone, Copy, Debug)]
enum Inner<'a> {
    /// An IP header, version from the first nibble.
    Ip(&'a [u8]),
    /// An Ethernet frame.
    Ether(&'a [u8]),
    /// A payload identified by an EtherType (IPv4, IPv6, VLAN, MPLS, PPPoE...).
    EtherType(u16, &'a [u8]),
}

fn run_inner<'a>(inner: Inner<'a>, decap: bool, out: &mut Decoded<'a>) -> Result<(), Skip> {
    match inner {
        Inner::Ip(d) => ip(d, decap, out),
        Inner::Ether(d) => ether(d, decap, out, true),
        Inner::EtherType(et, d) => l2(et, d, decap, out, true),
    }
}

/// Ethernet II. `allow_pw` is false inside an MPLS pseudowire, so that Ethernet-in-MPLS-in-
/// Ethernet cannot recurse without pushing an IP layer (which is what bounds recursion).
fn ether<'a>(d: &'a [u8], decap: bool, out: &mut Decoded<'a>, allow_pw: bool) -> Result<(), Skip> {
    let et = be16(d, 12).ok_or(Skip::Truncated)?;
    l2(et, tail(d, 14), decap, out, allow_pw)
}

/// Dispatch on an EtherType, popping VLAN tags first.
fn l2<'a>(mut et: u16, mut d: &'a [u8], decap: bool, out: &mut Decoded<'a>, allow_pw: bool) -> Result<(), Skip> {
    let mut tags = 0usize;
    while matches!(et, ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD | ETH_QINQ_OLD2 | ETH_CISCO_METADATA) {
        tags += 1;
        if tags > MAX_VLAN_TAGS {
            return Err(Skip::TooManyLayers);
        }
        if et == ETH_CISCO_METADATA {
            // Cisco MetaData: version, length, options (2), SGT (2), then the EtherType.
            et = be16(d, 6).ok_or(Skip::Truncated)?;
            d = tail(d, 8);
            continue;
        }
        let tci = be16(d, 0).ok_or(Skip::Truncated)?;
        et = be16(d, 2).ok_or(Skip::Truncated)?;
        out.push_vlan(tci & 0x0fff);
        d = tail(d, 4);
    }
    match et {
        ETH_IPV4 => ipv4(d, decap, out),
        ETH_IPV6 => ipv6(d, decap, out),
        ETH_MPLS_UC | ETH_MPLS_MC => mpls(d, decap, out, allow_pw),
        ETH_PPPOE_SESSION => pppoe(d, decap, out),
        _ => Err(Skip::NotIp),
    }
}

/// MPLS label stack: pop labels until bottom-of-stack, then guess the payload from its first
/// nibble (4/6 = IP; 0 = pseudowire control word followed by Ethernet), as Wireshark does.
fn mpls<'a>(d: &'a [u8], decap: bool, out: &mut Decoded<'a>, allow_pw: bool) -> Result<(), Skip> {
    let mut off = 0usize;
    let mut n = 0usize;
    loop {
        let label = arr::<4>(d, off).ok_or(Skip::Truncated)?;
        n += 1;
        if n > MAX_MPLS_LABELS {
            return Err(Skip::TooManyLayers);
        }
        out.mpls_labels = out.mpls_labels.saturating_add(1);
        off += 4;
        if label[2] & 1 != 0 {
            break;
        }
    }
    let rest = tail(d, off);
    match rest.first().map(|b| b >> 4) {
        Some(4) => ipv4(rest, decap, out),
        Some(6) => ipv6(rest, decap, out),
        Some(0) if allow_pw => ether(tail(rest, 4), decap, out, false),
        None => Err(Skip::Truncated),
        _ => Err(Skip::NotIp),
    }
}

/// PPPoE session stage (RFC 2516): 6-byte header, then a PPP protocol number.
fn pppoe<'a>(d: &'a [u8], decap: bool, out: &mut Decoded<'a>) -> Result<(), Skip> {
    let h = arr::<6>(d, 0).ok_or(Skip::Truncated)?;
    if h[0] != 0x11 || h[1] != 0 {
        return Err(Skip::NotIp);
    }
    let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let body = tail(d, 6);
    let body = body.get(..len).unwrap_or(body);
    match be16(body, 0).ok_or(Skip::Truncated)? {
        0x0021 => ipv4(tail(body, 2), decap, out),
        0x0057 => ipv6(tail(body, 2), decap, out),
        _ => Err(Skip::NotIp),
    }
}

/// A PPP frame (as carried by GRE / PPTP): optional address/control bytes, then a possibly
/// compressed (1-byte, odd) protocol field.
fn ppp(d: &[u8]) -> Result<Inner<'_>, Skip> {
    let d = if d.starts_with(&[0xff, 0x03]) { tail(d, 2) } else { d };
    let first = *d.first().ok_or(Skip::Truncated)?;
    let (proto, rest) =
        if first & 1 == 1 { (u16::from(first), tail(d, 1)) } else { (be16(d, 0).ok_or(Skip::Truncated)?, tail(d, 2)) };
    match proto {
        0x0021 => Ok(Inner::EtherType(ETH_IPV4, rest)),
        0x0057 => Ok(Inner::EtherType(ETH_IPV6, rest)),
        _ => Err(Skip::NotIp),
    }
}

/// Linux "cooked" capture v1: 16-byte header, protocol at 14..16, ARPHRD type at 2..4.
fn sll<'a>(d: &'a [u8], decap: bool, out: &mut Decoded<'a>) -> Result<(), Skip> {
    let h = arr::<16>(d, 0).ok_or(Skip::Truncated)?;
    let arphrd = u16::from_be_bytes([h[2], h[3]]);
    let proto = u16::from_be_bytes([h[14], h[15]]);
    cooked(arphrd, proto, tail(d, 16), decap, out)
}

/// Linux "cooked" capture v2: 20-byte header, protocol at 0..2, ARPHRD type at 8..10.
fn sll2<'a>(d: &'a [u8], decap: bool, out: &mut Decoded<'a>) -> Result<(), Skip> {
    let h = arr::<20>(d, 0).ok_or(Skip::Truncated)?;
    let proto = u16::from_be_bytes([h[0], h[1]]);
    let arphrd = u16::from_be_bytes([h[8], h[9]]);
    cooked(arphrd, proto, tail(d, 20), decap, out)
}

fn cooked<'a>(arphrd: u16, proto: u16, payload: &'a [u8], decap: bool, out: &mut Decoded<'a>) -> Result<(), Skip> {
    if arphrd == ARPHRD_IPGRE {
        // A capture on a GRE interface: the payload starts with the GRE header and there is
        // no outer IP layer to record, so the tunnel is decoded whatever `decap` says.
        let (_, inner) = gre(payload)?;
        return run_inner(inner, decap, out);
    }
    l2(proto, payload, decap, out, true)
}

/// Linux NFLOG: a 4-byte header (address family, version, resource id) and then TLVs (length
/// and type in host byte order, length including the 4-byte TLV header, padded to 4 bytes);
/// the packet is the NFULA_PAYLOAD (type 9) TLV, starting at its IP header.
fn nflog<'a>(d: &'a [u8], decap: bool, out: &mut Decoded<'a>) -> Result<(), Skip> {
    const NFULA_PAYLOAD: u16 = 9;
    let h = arr::<4>(d, 0).ok_or(Skip::Truncated)?;
    if h[1] != 0 {
        return Err(Skip::NotIp); // only version 0 exists
    }
    let mut off = 4usize;
    // Host byte order is not recorded: take little-endian unless it cannot be right.
    let le = {
        let t = arr::<4>(d, off).ok_or(Skip::Truncated)?;
        let l = usize::from(u16::from_le_bytes([t[0], t[1]]));
        l >= 4 && off + l <= d.len()
    };
    let rd = |x: [u8; 2]| if le { u16::from_le_bytes(x) } else { u16::from_be_bytes(x) };
    // Every TLV is at least 4 bytes, so this ends within d.len() / 4 rounds.
    while let Some(t) = arr::<4>(d, off) {
        let len = usize::from(rd([t[0], t[1]]));
        let ty = rd([t[2], t[3]]) & 0x7fff; // top bit: NLA_F_NESTED
        if len < 4 {
            return Err(Skip::NotIp);
        }
        if ty == NFULA_PAYLOAD {
            let end = (off + len).min(d.len());
            let payload = d.get(off + 4..end).ok_or(Skip::Truncated)?;
            return match h[0] {
                2 => ipv4(payload, decap, out),
                10 => ipv6(payload, decap, out),
                _ => ip(payload, decap, out),
            };
        }
        off = off.saturating_add((len + 3) & !3);
    }
    Err(Skip::Truncated)
}

/// BSD loopback: a 4-byte address family, host byte order for NULL (unknown to us, so both
/// orders are tried) and network order for LOOP.
fn null<'a>(d: &'a [u8], network_order: bool, decap: bool, out: &mut Decoded<'a>) -> Result<(), Skip> {
    let h = arr::<4>(d, 0).ok_or(Skip::Truncated)?;
    let be = u32::from_be_bytes(h);
    let family = if network_order {
        be
    } else {
        let le = u32::from_le_bytes(h);
        if le > 0xffff {
            be
        } else {
            le
        }
    };
    let rest = tail(d, 4);
    match family {
        2 => ipv4(rest, decap, out),
        24 | 28 | 30 => ipv6(rest, decap, out),
        _ => Err(Skip::NotIp),
    }
}

// ---------------------------------------------------------------------------------------------
// IP.

fn ip<'a>(d: &'a [u8], decap: bool, out: &mut Decoded<'a>) -> Result<(), Skip> {
    match d.first().map(|b| b >> 4) {
        Some(4) => ipv4(d, decap, out),
        Some(6) => ipv6(d, decap, out),
        None => Err(Skip::Truncated),
        _ => Err(Skip::BadIpHeader),
    }
}

fn ipv4<'a>(d: &'a [u8], decap: bool, out: &mut Decoded<'a>) -> Result<(), Skip> {
    let b0 = *d.first().ok_or(Skip::Truncated)?;
    if b0 >> 4 != 4 {
        return Err(Skip::BadIpHeader);
    }
    let h = arr::<20>(d, 0).ok_or(Skip::Truncated)?;
    let ihl = usize::from(b0 & 0x0f) * 4;
    if ihl < 20 || ihl > d.len() {
        return Err(Skip::BadIpHeader);
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let mut truncated = false;
    let end = if total == 0 {
        // TCP segmentation offload captures carry 0 here: use what is there.
        d.len()
    } else if total < ihl {
        return Err(Skip::BadIpHeader);
    } else if total > d.len() {
        truncated = true;
        d.len()
    } else {
        total // trims Ethernet padding
    };
    let frag = u16::from_be_bytes([h[6], h[7]]);
    let more = frag & 0x2000 != 0;
    let offset = (frag & 0x1fff) << 3;
    let fragment =
        (more || offset != 0).then_some(Fragment { id: u32::from(u16::from_be_bytes([h[4], h[5]])), offset, more });
    let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    let l4 = d.get(ihl..end).unwrap_or(&[]);
    out.truncated |= truncated;
    finish(src, dst, h[9], fragment, l4, decap, out)
}

fn ipv6<'a>(d: &'a [u8], decap: bool, out: &mut Decoded<'a>) -> Result<(), Skip> {
    let b0 = *d.first().ok_or(Skip::Truncated)?;
    if b0 >> 4 != 6 {
        return Err(Skip::BadIpHeader);
    }
    let h = arr::<40>(d, 0).ok_or(Skip::Truncated)?;
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let mut truncated = false;
    let end = if plen == 0 {
        // Jumbogram or segmentation offload: use what is there.
        d.len()
    } else if 40 + plen > d.len() {
        truncated = true;
        d.len()
    } else {
        40 + plen
    };
    let body = d.get(..end).unwrap_or(d);
    let src: [u8; 16] = arr(&h, 8).unwrap_or_default();
    let dst: [u8; 16] = arr(&h, 24).unwrap_or_default();

    let mut nh = h[6];
    let mut off = 40usize;
    let mut fragment = None;
    let mut count = 0usize;
    loop {
        let hlen = match nh {
            // hop-by-hop, routing, destination options, mobility, HIP, shim6, experimental
            0 | 43 | 60 | 135 | 139 | 140 | 253 | 254 => arr::<2>(body, off).map(|x| (usize::from(x[1]) + 1) * 8),
            IPPROTO_AH => arr::<2>(body, off).map(|x| (usize::from(x[1]) + 2) * 4),
            IPPROTO_FRAGMENT => Some(8),
            // ESP (50), no next header (59) and upper layers end the chain.
            _ => break,
        };
        count += 1;
        if count > MAX_IPV6_EXT {
            return Err(Skip::BadIpHeader);
        }
        let next_off = hlen.map(|l| off + l).filter(|&n| n <= body.len());
        let Some(next_off) = next_off else {
            if truncated {
                // Cut by the snap length: keep the addresses, no transport.
                off = body.len();
                break;
            }
            return Err(Skip::BadIpHeader);
        };
        let next = *body.get(off).ok_or(Skip::BadIpHeader)?;
        if nh == IPPROTO_FRAGMENT {
            let fo = be16(body, off + 2).ok_or(Skip::BadIpHeader)?;
            let id = be32(body, off + 4).ok_or(Skip::BadIpHeader)?;
            fragment = Some(Fragment { id, offset: fo & 0xfff8, more: fo & 1 != 0 });
            nh = next;
            off = next_off;
            // The rest is the fragmentable part: stop here so that every fragment of a
            // datagram reports the same protocol and the reassembled bytes start right here.
            break;
        }
        nh = next;
        off = next_off;
    }
    // A lone "atomic" fragment header (offset 0, no more) is not really a fragment.
    let fragment = fragment.filter(|f: &Fragment| f.more || f.offset != 0);
    let l4 = tail(body, off);
    out.truncated |= truncated;
    finish(IpAddr::V6(Ipv6Addr::from(src)), IpAddr::V6(Ipv6Addr::from(dst)), nh, fragment, l4, decap, out)
}

/// Pushes the layer, reads the transport header and, if asked, looks for a tunnel.
fn finish<'a>(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    fragment: Option<Fragment>,
    l4: &'a [u8],
    decap: bool,
    out: &mut Decoded<'a>,
) -> Result<(), Skip> {
    let slot = out.layers.get_mut(usize::from(out.depth)).ok_or(Skip::TooManyLayers)?;
    *slot = Some(IpLayer { src, dst, proto, tunnel: None, sport: 0, dport: 0 });
    out.depth += 1;
    out.ip_payload = l4;
    out.fragment = fragment;
    if let Some(f) = fragment {
        // Only the first fragment has a transport header, and maybe not all of it; a fragment
        // is never decapsulated (that needs reassembly, see `decode_transport`).
        if f.offset != 0 || !transport(proto, l4, out) {
            out.sport = 0;
            out.dport = 0;
            out.tcp = None;
            out.payload = &[];
        }
        return Ok(());
    }
    if !transport(proto, l4, out) {
        out.truncated = true;
    }
    if decap {
        tunnel(proto, l4, out);
    }
    Ok(())
}

/// Reads the transport header. Returns false if it is incomplete or malformed (ports are
/// still filled when the first 4 bytes are there).
fn transport<'a>(proto: u8, l4: &'a [u8], out: &mut Decoded<'a>) -> bool {
    let ports = |out: &mut Decoded<'a>| -> bool {
        match (be16(l4, 0), be16(l4, 2)) {
            (Some(s), Some(d)) => {
                out.sport = s;
                out.dport = d;
                true
            }
            _ => false,
        }
    };
    match proto {
        IPPROTO_TCP => {
            if !ports(out) {
                return false;
            }
            let Some(h) = arr::<20>(l4, 0) else {
                return false;
            };
            out.tcp = Some(Tcp {
                seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
                flags: h[13],
            });
            let doff = usize::from(h[12] >> 4) * 4;
            if doff < 20 {
                return false;
            }
            match l4.get(doff..) {
                Some(p) => {
                    out.payload = p;
                    true
                }
                None => false,
            }
        }
        IPPROTO_UDP | IPPROTO_UDPLITE => {
            if !ports(out) || l4.len() < 8 {
                return false;
            }
            let ulen = usize::from(be16(l4, 4).unwrap_or(0));
            // UDP-Lite's field is a checksum coverage, not a length.
            out.payload =
                if proto == IPPROTO_UDP && ulen >= 8 { l4.get(8..ulen).unwrap_or(tail(l4, 8)) } else { tail(l4, 8) };
            true
        }
        IPPROTO_SCTP => {
            if !ports(out) || l4.len() < 12 {
                return false;
            }
            out.payload = tail(l4, 12);
            true
        }
        IPPROTO_DCCP => {
            if !ports(out) {
                return false;
            }
            let doff = l4.get(4).map_or(0, |&b| usize::from(b) * 4);
            match l4.get(doff..) {
                Some(p) if doff >= 12 => {
                    out.payload = p;
                    true
                }
                _ => false,
            }
        }
        _ => {
            out.payload = l4;
            true
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tunnels.

/// If the transport just decoded is a tunnel, decode what it carries as further layers. On any
/// failure inside, the attempt is rolled back and the current layer stays the innermost.
fn tunnel<'a>(proto: u8, l4: &'a [u8], out: &mut Decoded<'a>) {
    let found = match proto {
        IPPROTO_IPIP => Some((TunnelKind::IpInIp, Inner::EtherType(ETH_IPV4, l4))),
        IPPROTO_IPV6 => Some((TunnelKind::IpInIp, Inner::EtherType(ETH_IPV6, l4))),
        IPPROTO_GRE => gre(l4).ok(),
        IPPROTO_UDP => udp_tunnel(out.sport, out.dport, out.payload),
        _ => None,
    };
    let Some((kind, inner)) = found else {
        return;
    };
    if usize::from(out.depth) >= MAX_DEPTH {
        out.depth_exceeded = true;
        return;
    }
    let saved = *out;
    let (sport, dport) = (out.sport, out.dport);
    if let Some(Some(layer)) = usize::from(out.depth).checked_sub(1).and_then(|i| out.layers.get_mut(i)) {
        layer.tunnel = Some(kind);
        layer.sport = sport;
        layer.dport = dport;
    }
    out.clear_transport();
    if run_inner(inner, true, out).is_err() {
        *out = saved;
    }
}

/// GRE header (RFC 2784 + RFC 2890 key/sequence, and the PPTP "enhanced GRE" version 1).
fn gre(d: &[u8]) -> Result<(TunnelKind, Inner<'_>), Skip> {
    let flags = be16(d, 0).ok_or(Skip::Truncated)?;
    let pt = be16(d, 2).ok_or(Skip::Truncated)?;
    let seq = flags & 0x1000 != 0;
    let mut off = 4usize;
    match flags & 7 {
        0 => {
            if flags & 0x4000 != 0 {
                // RFC 1701 source routing: obsolete, variable-length; not decoded.
                return Err(Skip::NotIp);
            }
            if flags & 0x8000 != 0 {
                off += 4; // checksum + reserved
            }
            if flags & 0x2000 != 0 {
                off += 4; // key
            }
            if seq {
                off += 4;
            }
        }
        1 => {
            if pt != ETH_PPP || flags & 0x2000 == 0 {
                return Err(Skip::NotIp);
            }
            off += 4; // payload length + call id
            if seq {
                off += 4;
            }
            if flags & 0x0080 != 0 {
                off += 4; // acknowledgment number
            }
        }
        _ => return Err(Skip::NotIp),
    }
    let body = d.get(off..).ok_or(Skip::Truncated)?;
    match pt {
        ETH_TEB => Ok((TunnelKind::Gre, Inner::Ether(body))),
        ETH_ERSPAN2 => {
            // Type II has the sequence bit and an 8-byte ERSPAN header; type I has neither.
            let frame = if seq { body.get(8..).ok_or(Skip::Truncated)? } else { body };
            Ok((TunnelKind::Erspan, Inner::Ether(frame)))
        }
        ETH_ERSPAN3 => {
            let h = arr::<12>(body, 0).ok_or(Skip::Truncated)?;
            let frame_type = (h[10] >> 2) & 0x1f;
            let sub = if h[11] & 1 != 0 { 8 } else { 0 }; // O bit: platform sub-header
            let frame = body.get(12 + sub..).ok_or(Skip::Truncated)?;
            match frame_type {
                0 => Ok((TunnelKind::Erspan, Inner::Ether(frame))),
                2 => Ok((TunnelKind::Erspan, Inner::Ip(frame))),
                _ => Err(Skip::NotIp),
            }
        }
        ETH_PPP => Ok((TunnelKind::Gre, ppp(body)?)),
        ETH_CISCO_METADATA => {
            // In GRE the MetaData header leads with the EtherType it carries, then version,
            // length, options and SGT (8 bytes in all), as Wireshark's `cmd_gre` reads it.
            let et = be16(body, 0).ok_or(Skip::Truncated)?;
            let rest = body.get(8..).ok_or(Skip::Truncated)?;
            Ok((TunnelKind::Gre, Inner::EtherType(et, rest)))
        }
        other => Ok((TunnelKind::Gre, Inner::EtherType(other, body))),
    }
}

/// Whether a UDP datagram from `sport` to `dport` whose payload starts with `head` may be a
/// tunnel that [`decode`] reads through: true for every one [`udp_tunnel`] takes, and for some
/// it does not (the sharding decodes those in full, and the decoder decides). Trailing bytes do
/// not change the answer: it looks at the ports and the first two bytes only.
pub fn udp_may_tunnel(sport: u16, dport: u16, head: &[u8]) -> bool {
    matches!(dport, VXLAN_PORT | GENEVE_PORT | MPLS_UDP_PORT)
        || [sport, dport].iter().any(|&p| matches!(p, GTPU_PORT | TEREDO_PORT | AYIYA_PORT))
        // Teredo on any port: an IPv6 header, or the authentication or origin header before it.
        || matches!(head, [b, ..] if b >> 4 == 6)
        || matches!(head, [0, 0 | 1, ..])
}

/// The tunnel a UDP datagram carries, if any. (Keep [`udp_may_tunnel`] a superset of it.)
fn udp_tunnel(sport: u16, dport: u16, payload: &[u8]) -> Option<(TunnelKind, Inner<'_>)> {
    if dport == VXLAN_PORT {
        let h = arr::<8>(payload, 0)?;
        if h[0] & 0x08 == 0 {
            return None;
        }
        return Some((TunnelKind::Vxlan, Inner::Ether(tail(payload, 8))));
    }
    if dport == GENEVE_PORT {
        return geneve(payload).map(|i| (TunnelKind::Geneve, i));
    }
    if dport == MPLS_UDP_PORT {
        // The label stack starts the payload; its bottom label says what follows, as in Ethernet.
        return Some((TunnelKind::MplsUdp, Inner::EtherType(ETH_MPLS_UC, payload)));
    }
    if dport == GTPU_PORT || sport == GTPU_PORT {
        return gtpu(payload).map(|i| (TunnelKind::GtpU, i));
    }
    if dport == TEREDO_PORT || sport == TEREDO_PORT {
        return teredo(payload).map(|i| (TunnelKind::Teredo, i));
    }
    if dport == AYIYA_PORT || sport == AYIYA_PORT {
        return ayiya(payload).map(|i| (TunnelKind::Ayiya, i));
    }
    // Teredo relays and clients also talk from and to arbitrary ports (a relay answers from
    // its own port, a client from its NAT mapping): only 3544 is fixed, on the server side.
    // Off that port, take the payload as Teredo only when it is an exact IPv6 packet AND one
    // end is a Teredo address (2001:0::/32), which every Teredo packet has (RFC 4380 4).
    let inner = teredo(payload)?;
    if let Inner::Ip(v6) = inner {
        let teredo_addr = |at: usize| arr::<4>(v6, at) == Some([0x20, 0x01, 0, 0]);
        if teredo_addr(8) || teredo_addr(24) {
            return Some((TunnelKind::Teredo, inner));
        }
    }
    None
}

/// Geneve (RFC 8926 3.4): version 0, options of the length the header gives (AWS Gateway Load
/// Balancer puts its flow cookie there), then the frame of the protocol type the header names:
/// Ethernet (0x6558) or what an EtherType says (IPv4, IPv6, MPLS...). Other versions are not
/// Geneve as this reader knows it: the datagram stays the connection.
fn geneve(d: &[u8]) -> Option<Inner<'_>> {
    let h = arr::<8>(d, 0)?;
    if h[0] >> 6 != 0 {
        return None;
    }
    let options = usize::from(h[0] & 0x3f) * 4;
    let body = d.get(8 + options..)?;
    match u16::from_be_bytes([h[2], h[3]]) {
        ETH_TEB => Some(Inner::Ether(body)),
        et => Some(Inner::EtherType(et, body)),
    }
}

/// GTPv1-U: only G-PDUs (message type 255) carry user IP packets.
fn gtpu(d: &[u8]) -> Option<Inner<'_>> {
    let h = arr::<8>(d, 0)?;
    if h[0] >> 5 != 1 || h[0] & 0x10 == 0 || h[1] != 255 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let end = (8 + len).min(d.len());
    let mut off = 8usize;
    if h[0] & 0x07 != 0 {
        // sequence number (2), N-PDU number (1), next extension header type (1)
        off = 12;
        let mut next = *d.get(11)?;
        let mut n = 0usize;
        while h[0] & 0x04 != 0 && next != 0 {
            n += 1;
            if n > MAX_GTP_EXT {
                return None;
            }
            let l = usize::from(*d.get(off)?) * 4;
            if l == 0 {
                return None;
            }
            next = *d.get(off + l - 1)?;
            off += l;
        }
    }
    let inner = d.get(off..end)?;
    match inner.first()? >> 4 {
        4 | 6 => Some(Inner::Ip(inner)),
        _ => None,
    }
}

/// AYIYA (draft-massar-v6ops-ayiya), as Zeek reads it: 8 bytes of header, an identity of 2^n
/// bytes and a signature of m words (n and m in the high nibbles of the first two bytes); then,
/// for a forwarded packet (opcode 1), the packet the next-header byte names: IPv4 (4) or IPv6
/// (41), and it must start as one. Anything else (a heartbeat, a query) is no tunnel: the
/// datagram stays the connection.
fn ayiya(d: &[u8]) -> Option<Inner<'_>> {
    let h = arr::<4>(d, 0)?;
    if h[2] & 0x0f != 1 {
        return None;
    }
    let header = 8 + (1usize << (h[0] >> 4)) + usize::from(h[1] >> 4) * 4;
    let inner = d.get(header..)?;
    let version = match h[3] {
        IPPROTO_IPIP => 4,
        IPPROTO_IPV6 => 6,
        _ => return None,
    };
    (inner.first()? >> 4 == version).then_some(Inner::Ip(inner))
}

/// Teredo: optional authentication and origin indication headers, then an IPv6 packet whose
/// payload length must match exactly (UDP 3544 is also used by other things).
fn teredo(mut d: &[u8]) -> Option<Inner<'_>> {
    for _ in 0..2 {
        match arr::<2>(d, 0) {
            Some([0, 1]) => {
                let h = arr::<4>(d, 0)?;
                let n = 4 + usize::from(h[2]) + usize::from(h[3]) + 8 + 1;
                d = d.get(n..)?;
            }
            Some([0, 0]) => d = d.get(8..)?,
            _ => break,
        }
    }
    if d.first()? >> 4 != 6 || d.len() < 40 {
        return None;
    }
    let plen = usize::from(be16(d, 4)?);
    (40 + plen == d.len()).then_some(Inner::Ip(d))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const A4: [u8; 4] = [10, 0, 0, 1];
    pub const B4: [u8; 4] = [192, 0, 2, 7];
    pub const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    pub const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    pub fn eth(et: u16, payload: &[u8]) -> Vec<u8> {
        eth_tagged(&[], et, payload)
    }

    pub fn eth_tagged(tags: &[(u16, u16)], et: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        for &(tpid, vid) in tags {
            v.extend_from_slice(&tpid.to_be_bytes());
            v.extend_from_slice(&vid.to_be_bytes());
        }
        v.extend_from_slice(&et.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    pub fn ipv4_frag(
        src: [u8; 4],
        dst: [u8; 4],
        proto: u8,
        id: u16,
        offset: u16,
        more: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let frag = (offset / 8) | if more { 0x2000 } else { 0 };
        let mut v = vec![0x45, 0];
        v.extend_from_slice(&total.to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&frag.to_be_bytes());
        v.extend_from_slice(&[64, proto, 0, 0]);
        v.extend_from_slice(&src);
        v.extend_from_slice(&dst);
        v.extend_from_slice(payload);
        v
    }

    pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
        ipv4_frag(src, dst, proto, 1, 0, false, payload)
    }

    pub fn ipv6(src: [u8; 16], dst: [u8; 16], nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        v.extend_from_slice(&[nh, 64]);
        v.extend_from_slice(&src);
        v.extend_from_slice(&dst);
        v.extend_from_slice(payload);
        v
    }

    pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(payload);
        v
    }

    pub fn tcp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&1000u32.to_be_bytes());
        v.extend_from_slice(&2000u32.to_be_bytes());
        v.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        v.extend_from_slice(payload);
        v
    }

    /// GRE with optional checksum/key/sequence and the given protocol type.
    pub fn gre(flags: u16, pt: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&flags.to_be_bytes());
        v.extend_from_slice(&pt.to_be_bytes());
        for bit in [0x8000u16, 0x2000, 0x1000] {
            if flags & bit != 0 {
                v.extend_from_slice(&[0xaa; 4]);
            }
        }
        v.extend_from_slice(payload);
        v
    }

    pub fn vxlan(inner_eth: &[u8]) -> Vec<u8> {
        let mut v = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        v.extend_from_slice(inner_eth);
        v
    }

    /// A Geneve header (version 0) with `options` bytes of options, carrying `protocol`.
    pub fn geneve(protocol: u16, options: &[u8], inner: &[u8]) -> Vec<u8> {
        let mut v = vec![(options.len() / 4) as u8, 0];
        v.extend_from_slice(&protocol.to_be_bytes());
        v.extend_from_slice(&[0, 0, 42, 0]);
        v.extend_from_slice(options);
        v.extend_from_slice(inner);
        v
    }

    fn inner_tcp4() -> Vec<u8> {
        ipv4(B4, A4, 6, &tcp(40000, 443, b"hello"))
    }

    fn dec(linktype: u32, frame: &[u8]) -> Result<Decoded<'_>, Skip> {
        let mut d = Decoded::default();
        decode(linktype, frame, true, &mut d).map(|()| d)
    }

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::from(a)
    }

    /// The short cut for untagged IPv4 TCP over Ethernet reads every frame, good or damaged, as
    /// the general walk does, and takes most of the good ones.
    #[test]
    fn the_common_frame_short_cut_reads_what_the_walk_reads() {
        use crate::synth::{addr, ethernet, ip, tcp, udp, XorShift};
        let (a, b) = (addr("10.0.0.1"), addr("192.0.2.9"));
        let seg = |p: &[u8]| tcp(40000, 443, 7, 9, 0x18, p);
        let v4 = ip(a, b, 6, seg(b"GET / HTTP/1.1\r\n"), Some(16));
        let mut padded = ethernet(None, 0x0800, &ip(a, b, 6, seg(b""), Some(16)));
        padded.extend_from_slice(&[0; 6]);
        let mut offload = ethernet(None, 0x0800, &v4);
        offload[16..18].copy_from_slice(&[0, 0]);
        let mut cut = ethernet(None, 0x0800, &v4);
        cut.truncate(cut.len() - 5);
        let mut options = v4.clone();
        options[0] = 0x46;
        options.splice(20..20, [1, 1, 1, 0]);
        let mut frag = v4.clone();
        frag[6] = 0x20;
        let mut dont_fragment = v4.clone();
        dont_fragment[6] = 0x40;
        let frames = [
            ethernet(None, 0x0800, &v4),
            padded,
            offload,
            cut,
            ethernet(None, 0x0800, &dont_fragment),
            ethernet(None, 0x0800, &options),
            ethernet(None, 0x0800, &frag),
            ethernet(Some(7), 0x0800, &v4),
            ethernet(None, 0x0800, &ip(a, b, 17, udp(53, 53, b"x"), Some(6))),
        ];
        let taken = |f: &[u8]| common_tcp(f, &mut Decoded::default());
        assert!(frames[..5].iter().all(|f| taken(f)));
        assert!(!frames[5..].iter().any(|f| taken(f)));
        let mut rng = XorShift(0xc0ffee);
        let mut common = 0;
        for f in &frames {
            for _ in 0..4000 {
                // The damage lands in the headers, where the two readings could differ.
                let g = rng.damage(f, 60);
                for decap in [false, true] {
                    check_common(LINKTYPE_ETHERNET, &g, decap);
                }
                common += usize::from(taken(&g));
            }
        }
        assert!(common > 5_000, "the damaged copies should often still be common segments: {common}");
    }

    #[test]
    fn ethernet_ipv4_tcp() {
        let mut f = eth(0x0800, &ipv4(A4, B4, 6, &tcp(1234, 80, b"GET /")));
        f.extend_from_slice(&[0; 6]); // Ethernet padding must be trimmed by total length
        let d = dec(LINKTYPE_ETHERNET, &f).unwrap();
        assert_eq!(d.depth, 1);
        let l = d.innermost().unwrap();
        assert_eq!((l.src, l.dst, l.proto), (v4(A4), v4(B4), 6));
        assert_eq!((d.sport, d.dport), (1234, 80));
        assert_eq!(d.payload, b"GET /");
        assert_eq!(d.tcp, Some(Tcp { seq: 1000, ack: 2000, flags: 0x18 }));
        assert!(!d.truncated && d.fragment.is_none());
    }

    #[test]
    fn vlan_and_qinq() {
        let ip = ipv4(A4, B4, 17, &udp(53, 5353, b"q"));
        let frame = eth_tagged(&[(0x8100, 0x2064)], 0x0800, &ip);
        let d = dec(LINKTYPE_ETHERNET, &frame).unwrap();
        assert_eq!((d.vlan_count, d.vlans[0]), (1, 100));
        let f = eth_tagged(&[(0x88a8, 10), (0x8100, 20)], 0x0800, &ip);
        let d = dec(LINKTYPE_ETHERNET, &f).unwrap();
        assert_eq!((d.vlan_count, d.vlans), (2, [10, 20]));
        assert_eq!((d.sport, d.dport, d.payload), (53, 5353, &b"q"[..]));
        let f = eth_tagged(&[(0x9100, 1), (0x88a8, 2), (0x8100, 3)], 0x0800, &ip);
        let d = dec(LINKTYPE_ETHERNET, &f).unwrap();
        assert_eq!((d.vlan_count, d.vlans), (3, [1, 2]));
        let many: Vec<_> = (0..20).map(|i| (0x8100, i)).collect();
        let f = eth_tagged(&many, 0x0800, &ip);
        assert_eq!(dec(LINKTYPE_ETHERNET, &f).err(), Some(Skip::TooManyLayers));
        assert_eq!(dec(LINKTYPE_ETHERNET, &eth(0x0806, &[0; 28])).err(), Some(Skip::NotIp));
    }

    #[test]
    fn ipv6_extension_headers() {
        // hop-by-hop (8 bytes) -> destination options (16 bytes) -> UDP
        let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[17, 1, 1, 12]);
        ext.extend_from_slice(&[0; 12]);
        ext.extend_from_slice(&udp(1000, 53, b"dns"));
        let frame = eth(0x86dd, &ipv6(A6, B6, 0, &ext));
        let d = dec(LINKTYPE_ETHERNET, &frame).unwrap();
        let l = d.innermost().unwrap();
        assert_eq!((l.src, l.dst, l.proto), (IpAddr::from(A6), IpAddr::from(B6), 17));
        assert_eq!((d.sport, d.dport, d.payload), (1000, 53, &b"dns"[..]));

        // endless chain of destination options headers
        let mut ext = Vec::new();
        for _ in 0..40 {
            ext.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        let f = ipv6(A6, B6, 60, &ext);
        assert_eq!(dec(LINKTYPE_RAW, &f).err(), Some(Skip::BadIpHeader));
        // an extension header claiming more than the packet holds
        let f = ipv6(A6, B6, 0, &[17, 200, 0, 0, 0, 0, 0, 0]);
        assert_eq!(dec(LINKTYPE_RAW, &f).err(), Some(Skip::BadIpHeader));
        // ESP ends the chain
        let frame = ipv6(A6, B6, 50, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!((d.innermost().unwrap().proto, d.sport), (50, 0));
        // IPv6 fragment header, offset 0 with the UDP header, then a later fragment
        let mut fr = vec![17, 0, 0, 1, 0, 0, 0x12, 0x34];
        fr.extend_from_slice(&udp(7, 9, b"xxxxxxxx"));
        let frame = ipv6(A6, B6, 44, &fr);
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!(d.fragment, Some(Fragment { id: 0x1234, offset: 0, more: true }));
        assert_eq!((d.innermost().unwrap().proto, d.sport, d.dport), (17, 7, 9));
        let frame = ipv6(A6, B6, 44, &[17, 0, 0, 16, 0, 0, 0x12, 0x34, 1]);
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!(d.fragment.unwrap().offset, 16);
        assert_eq!((d.sport, d.dport, d.ip_payload), (0, 0, &[1u8][..]));
    }

    #[test]
    fn bad_ipv4_headers() {
        let mut f = ipv4(A4, B4, 6, &tcp(1, 2, b""));
        f[0] = 0x44; // IHL 4
        assert_eq!(dec(LINKTYPE_RAW, &f).err(), Some(Skip::BadIpHeader));
        f[0] = 0x4f; // IHL 15 = 60 bytes > 40 available
        assert_eq!(dec(LINKTYPE_RAW, &f).err(), Some(Skip::BadIpHeader));
        assert_eq!(dec(LINKTYPE_RAW, &f[..10]).err(), Some(Skip::Truncated));
        assert_eq!(dec(LINKTYPE_IPV4, &[0x60; 40]).err(), Some(Skip::BadIpHeader));
        assert_eq!(dec(LINKTYPE_RAW, &[0x10; 40]).err(), Some(Skip::BadIpHeader));
        assert_eq!(dec(LINKTYPE_RAW, &[]).err(), Some(Skip::Empty));
        assert_eq!(dec(9999, &f).err(), Some(Skip::UnsupportedLinkType));
    }

    #[test]
    fn truncated_tcp() {
        let f = eth(0x0800, &ipv4(A4, B4, 6, &tcp(1111, 22, b"data")));
        let cut = &f[..14 + 20 + 10];
        let d = dec(LINKTYPE_ETHERNET, cut).unwrap();
        assert!(d.truncated);
        assert_eq!((d.sport, d.dport, d.payload), (1111, 22, &b""[..]));
        assert_eq!(d.innermost().unwrap().dst, v4(B4));
        // data offset < 5
        let mut seg = tcp(1111, 22, b"data");
        seg[12] = 0x30;
        let frame = ipv4(A4, B4, 6, &seg);
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert!(d.truncated && d.payload.is_empty());
        assert_eq!((d.sport, d.dport), (1111, 22));
        // data offset beyond the data
        seg[12] = 0xf0;
        let frame = ipv4(A4, B4, 6, &seg);
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert!(d.truncated && d.payload.is_empty());
        // UDP length trims the payload
        let mut u = udp(1, 2, b"abc");
        u.extend_from_slice(b"junk");
        let frame = ipv4(A4, B4, 17, &u);
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!(d.payload, b"abc");
        // ICMP
        let frame = ipv4(A4, B4, 1, &[8, 0, 0, 0, 1, 2, 3, 4]);
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!((d.sport, d.dport, d.payload.len()), (0, 0, 8));
    }

    #[test]
    fn cooked_raw_and_loopback() {
        let ip = inner_tcp4();
        let mut sll = vec![0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        let d = dec(LINKTYPE_LINUX_SLL, &sll).unwrap();
        assert_eq!((d.sport, d.dport), (40000, 443));

        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
        sll2.extend_from_slice(&ip);
        let d = dec(LINKTYPE_LINUX_SLL2, &sll2).unwrap();
        assert_eq!(d.payload, b"hello");
        assert_eq!(dec(LINKTYPE_LINUX_SLL2, &sll2[..19]).err(), Some(Skip::Truncated));

        for lt in [LINKTYPE_RAW, LINKTYPE_IPV4] {
            assert_eq!(dec(lt, &ip).unwrap().dport, 443);
        }
        let ip6 = ipv6(A6, B6, 17, &udp(5, 6, b"z"));
        for lt in [LINKTYPE_RAW, LINKTYPE_IPV6] {
            assert_eq!(dec(lt, &ip6).unwrap().dport, 6);
        }
        assert_eq!(dec(LINKTYPE_IPV6, &ip).err(), Some(Skip::BadIpHeader));

        let mut null_le = 2u32.to_le_bytes().to_vec();
        null_le.extend_from_slice(&ip);
        let mut null_be = 30u32.to_be_bytes().to_vec();
        null_be.extend_from_slice(&ip6);
        assert_eq!(dec(LINKTYPE_NULL, &null_le).unwrap().dport, 443);
        assert_eq!(dec(LINKTYPE_NULL, &null_be).unwrap().dport, 6);
        assert_eq!(dec(LINKTYPE_LOOP, &null_be).unwrap().dport, 6);
        assert_eq!(dec(LINKTYPE_LOOP, &null_le).err(), Some(Skip::NotIp));
    }

    #[test]
    fn mpls_and_pppoe() {
        let ip = inner_tcp4();
        let mut m = vec![0, 0x10, 0x00, 64, 0, 0x20, 0x01, 64]; // two labels, S on the second
        m.extend_from_slice(&ip);
        let frame = eth(0x8847, &m);
        let d = dec(LINKTYPE_ETHERNET, &frame).unwrap();
        assert_eq!((d.mpls_labels, d.dport), (2, 443));
        // pseudowire: control word then Ethernet
        let mut pw = vec![0, 0x10, 0x01, 64, 0, 0, 0, 0];
        pw.extend_from_slice(&eth(0x0800, &ip));
        let frame = eth(0x8847, &pw);
        let d = dec(LINKTYPE_ETHERNET, &frame).unwrap();
        assert_eq!((d.mpls_labels, d.dport), (1, 443));
        // never-ending label stack
        assert_eq!(dec(LINKTYPE_ETHERNET, &eth(0x8847, &[0u8; 200])).err(), Some(Skip::TooManyLayers));
        let mut p = vec![0x11, 0, 0, 1];
        p.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
        p.extend_from_slice(&[0x00, 0x21]);
        p.extend_from_slice(&ip);
        let frame = eth(0x8864, &p);
        let d = dec(LINKTYPE_ETHERNET, &frame).unwrap();
        assert_eq!(d.dport, 443);
    }

    #[test]
    fn gre_ipv4() {
        let g = gre(0x3000, 0x0800, &inner_tcp4()); // key + sequence
        let f = eth(0x0800, &ipv4(A4, [198, 51, 100, 1], 47, &g));
        let d = dec(LINKTYPE_ETHERNET, &f).unwrap();
        assert_eq!(d.depth, 2);
        assert_eq!(d.layers[0].unwrap().tunnel, Some(TunnelKind::Gre));
        assert_eq!(d.layers[0].unwrap().proto, 47);
        let l = d.innermost().unwrap();
        assert_eq!((l.src, l.dst, l.tunnel), (v4(B4), v4(A4), None));
        assert_eq!((d.sport, d.dport, d.payload), (40000, 443, &b"hello"[..]));
        // decapsulate = false stops at the outer layer
        let mut o = Decoded::default();
        decode(LINKTYPE_ETHERNET, &f, false, &mut o).unwrap();
        assert_eq!((o.depth, o.innermost().unwrap().proto), (1, 47));
        // transparent Ethernet bridging with a checksum
        let g = gre(0x8000, 0x6558, &eth(0x0800, &inner_tcp4()));
        let frame = ipv4(A4, A4, 47, &g);
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!((d.depth, d.dport), (2, 443));
        // SLL on a GRE interface (ARPHRD_IPGRE): no outer IP layer
        let mut sll = vec![0, 0, 0x03, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        sll.extend_from_slice(&gre(0, 0x0800, &inner_tcp4()));
        let d = dec(LINKTYPE_LINUX_SLL, &sll).unwrap();
        assert_eq!((d.depth, d.dport), (1, 443));
        // PPTP enhanced GRE carrying PPP/IPv4
        let mut pptp = vec![0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0x03, 0x00, 0x21];
        pptp.extend_from_slice(&inner_tcp4());
        let frame = ipv4(A4, A4, 47, &pptp);
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!((d.depth, d.dport), (2, 443));
    }

    #[test]
    fn erspan() {
        let mirrored = eth_tagged(&[(0x8100, 5)], 0x0800, &inner_tcp4());
        let mut e2 = vec![0x10, 0x05, 0, 1, 0, 0, 0, 0];
        e2.extend_from_slice(&mirrored);
        let f = eth(0x0800, &ipv4(A4, B4, 47, &gre(0x1000, 0x88be, &e2)));
        let d = dec(LINKTYPE_ETHERNET, &f).unwrap();
        assert_eq!(d.layers[0].unwrap().tunnel, Some(TunnelKind::Erspan));
        assert_eq!((d.depth, d.dport, d.vlan_count, d.vlans[0]), (2, 443, 1, 5));
        // type III with the optional 8-byte platform sub-header
        let mut e3 = vec![0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        e3.extend_from_slice(&[0; 8]);
        e3.extend_from_slice(&mirrored);
        let f = ipv4(A4, B4, 47, &gre(0x1000, 0x22eb, &e3));
        let d = dec(LINKTYPE_RAW, &f).unwrap();
        assert_eq!((d.depth, d.dport), (2, 443));
    }

    /// The sharding decodes in full only what [`udp_may_tunnel`] picks out: every datagram the
    /// decoder takes for a tunnel must be among them.
    #[test]
    fn udp_may_tunnel_holds_every_udp_tunnel() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let ports = [VXLAN_PORT, GENEVE_PORT, MPLS_UDP_PORT, GTPU_PORT, TEREDO_PORT, AYIYA_PORT, 53, 443, 40000];
        let teredo_v6 = {
            let mut v = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
            v.extend_from_slice(&[0x20, 0x01, 0, 0]);
            v.extend_from_slice(&[0; 28]);
            v.extend_from_slice(&[0; 8]);
            v
        };
        let mut taken = 0;
        for i in 0..200_000u32 {
            let r = next();
            let (sport, dport) = (ports[(r % 9) as usize], ports[((r >> 4) % 9) as usize]);
            let mut payload: Vec<u8> = (0..(r >> 8) % 80).map(|_| next() as u8).collect();
            match i % 4 {
                0 => payload = [&teredo_v6[..], &payload[..payload.len().min((r % 3) as usize)]].concat(),
                1 => payload = [&[0, 0, 1, 2, 3, 4, 5, 6][..], &teredo_v6].concat(),
                2 if !payload.is_empty() => payload[0] = 0x08,
                _ => {}
            }
            if udp_tunnel(sport, dport, &payload).is_some() {
                taken += 1;
                assert!(udp_may_tunnel(sport, dport, &payload), "{sport} -> {dport}: {payload:02x?}");
            }
        }
        assert!(taken > 10_000, "{taken}");
    }

    #[test]
    fn geneve_and_mpls_in_udp() {
        // Ethernet inside, as VMware NSX and OVN send it
        let f = ipv4(A4, B4, 17, &udp(50901, 6081, &geneve(0x6558, &[], &eth(0x0800, &inner_tcp4()))));
        let d = dec(LINKTYPE_RAW, &f).unwrap();
        assert_eq!(d.layers[0].unwrap().tunnel, Some(TunnelKind::Geneve));
        assert_eq!((d.depth, d.sport, d.dport, d.payload), (2, 40000, 443, &b"hello"[..]));
        // IP inside, after an option (AWS Gateway Load Balancer's flow cookie is one)
        let option = [0x01, 0x08, 0x03, 0x01, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
        let f = ipv4(A4, B4, 17, &udp(50901, 6081, &geneve(0x0800, &option, &inner_tcp4())));
        let d = dec(LINKTYPE_RAW, &f).unwrap();
        assert_eq!((d.depth, d.dport, d.innermost().unwrap().src), (2, 443, v4(B4)));
        // options longer than the datagram, or another version: the datagram is the connection
        let mut cut = geneve(0x0800, &[], &inner_tcp4());
        cut[0] = 63;
        for bad in [cut, [vec![0x40], geneve(0x0800, &[], &inner_tcp4())[1..].to_vec()].concat()] {
            let f = ipv4(A4, B4, 17, &udp(50901, 6081, &bad));
            let d = dec(LINKTYPE_RAW, &f).unwrap();
            assert_eq!((d.depth, d.dport, d.innermost().unwrap().tunnel), (1, 6081, None));
        }
        // MPLS in UDP: a label stack, then IP
        let mut m = vec![0, 0x10, 0x01, 64];
        m.extend_from_slice(&inner_tcp4());
        let f = ipv4(A4, B4, 17, &udp(51348, 6635, &m));
        let d = dec(LINKTYPE_RAW, &f).unwrap();
        assert_eq!(d.layers[0].unwrap().tunnel, Some(TunnelKind::MplsUdp));
        assert_eq!((d.depth, d.mpls_labels, d.dport), (2, 1, 443));
        // a stack that never ends is not decapsulated
        let f = ipv4(A4, B4, 17, &udp(51348, 6635, &[0; 200]));
        let d = dec(LINKTYPE_RAW, &f).unwrap();
        assert_eq!((d.depth, d.dport), (1, 6635));
    }

    #[test]
    fn ayiya() {
        // As a SixXS client sends to its broker: a 16-byte identity (its IPv6 address), a
        // 20-byte SHA-1 signature, a forwarded IPv6 packet.
        let ayiya = |head: [u8; 4], inner: &[u8]| [&head[..], &[0; 4], &[0x11; 16], &[0x22; 20], inner].concat();
        let tcp6 = ipv6(A6, B6, 6, &tcp(40000, 443, b"hello"));
        let f = ipv4(A4, B4, 17, &udp(5072, 5072, &ayiya([0x41, 0x52, 0x11, 41], &tcp6)));
        let d = dec(LINKTYPE_RAW, &f).unwrap();
        assert_eq!(d.layers[0].unwrap().tunnel, Some(TunnelKind::Ayiya));
        assert_eq!(
            (d.depth, d.innermost().unwrap().dst, d.dport, d.payload),
            (2, IpAddr::from(B6), 443, &b"hello"[..])
        );
        // IPv4 inside, from the broker's port to a client's
        let f = ipv4(A4, B4, 17, &udp(5072, 40001, &ayiya([0x41, 0x52, 0x11, 4], &inner_tcp4())));
        assert_eq!(dec(LINKTYPE_RAW, &f).unwrap().depth, 2);
        // A heartbeat (opcode 0), a next header that is not IP or not what follows, a header
        // longer than the datagram: the datagram is the connection.
        for bad in [
            ayiya([0x41, 0x52, 0x10, 41], &tcp6),
            ayiya([0x41, 0x52, 0x11, 17], &tcp6),
            ayiya([0x41, 0x52, 0x11, 4], &tcp6),
            ayiya([0xf1, 0x52, 0x11, 41], &tcp6),
        ] {
            let f = ipv4(A4, B4, 17, &udp(40001, 5072, &bad));
            let d = dec(LINKTYPE_RAW, &f).unwrap();
            assert_eq!((d.depth, d.dport, d.innermost().unwrap().tunnel), (1, 5072, None));
        }
    }

    #[test]
    fn vxlan_gtpu_teredo() {
        let inner = eth(0x0800, &inner_tcp4());
        let f = eth(0x0800, &ipv4(A4, B4, 17, &udp(55555, 4789, &vxlan(&inner))));
        let d = dec(LINKTYPE_ETHERNET, &f).unwrap();
        let outer = d.layers[0].unwrap();
        assert_eq!(outer.tunnel, Some(TunnelKind::Vxlan));
        assert_eq!((outer.sport, outer.dport), (55555, 4789));
        assert_eq!((d.depth, d.sport, d.dport, d.payload), (2, 40000, 443, &b"hello"[..]));
        // VXLAN carrying ARP: the outer UDP stays the connection
        let f = ipv4(A4, B4, 17, &udp(55555, 4789, &vxlan(&eth(0x0806, &[0; 28]))));
        let d = dec(LINKTYPE_RAW, &f).unwrap();
        assert_eq!((d.depth, d.dport, d.innermost().unwrap().tunnel), (1, 4789, None));

        // GTP-U with sequence number and one extension header (PDU session container)
        let ip = inner_tcp4();
        let mut g = vec![0x36, 0xff];
        g.extend_from_slice(&((4 + 4 + ip.len()) as u16).to_be_bytes());
        g.extend_from_slice(&[0, 0, 0, 1, 0, 7, 0, 0x85, 1, 0x10, 9, 0]);
        g.extend_from_slice(&ip);
        let f = ipv4(A4, B4, 17, &udp(2152, 2152, &g));
        let d = dec(LINKTYPE_RAW, &f).unwrap();
        assert_eq!(d.layers[0].unwrap().tunnel, Some(TunnelKind::GtpU));
        assert_eq!((d.depth, d.dport), (2, 443));
        // endless GTP extension chain: no decapsulation, no panic
        let mut g = vec![0x34, 0xff, 0, 200, 0, 0, 0, 1, 0, 0, 0, 0x85];
        for _ in 0..50 {
            g.extend_from_slice(&[1, 0, 0, 0x85]);
        }
        let frame = ipv4(A4, B4, 17, &udp(2152, 2152, &g));
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!(d.depth, 1);

        // Teredo with origin indication
        let mut t = vec![0, 0, 0, 0, 0, 0, 0, 0];
        t.extend_from_slice(&ipv6(A6, B6, 17, &udp(9, 10, b"t")));
        let frame = ipv4(A4, B4, 17, &udp(3544, 40000, &t));
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!(d.layers[0].unwrap().tunnel, Some(TunnelKind::Teredo));
        assert_eq!((d.depth, d.dport, d.innermost().unwrap().dst), (2, 10, IpAddr::from(B6)));
    }

    #[test]
    fn cisco_metadata_in_ethernet_and_gre() {
        // Ethernet: version 1, length 1, options 0x0001, SGT 2, then IPv4 (tcpdump's
        // various_gre.pcap carries it in GRE; Cisco switches send it on the wire too).
        let mut cmd = vec![1, 1, 0, 1, 0, 2, 0x08, 0x00];
        cmd.extend_from_slice(&inner_tcp4());
        let f = eth_tagged(&[(0x8100, 7)], 0x8909, &cmd);
        let d = dec(LINKTYPE_ETHERNET, &f).unwrap();
        assert_eq!((d.depth, d.dport, d.vlans[0]), (1, 443, 7));
        // GRE (key present): the carried EtherType comes first, then the rest of the header.
        let mut g = vec![0x08, 0x00, 1, 1, 0, 1, 0, 0];
        g.extend_from_slice(&inner_tcp4());
        let f = eth(0x0800, &ipv4(A4, B4, 47, &gre(0x2000, 0x8909, &g)));
        let d = dec(LINKTYPE_ETHERNET, &f).unwrap();
        assert_eq!(d.layers[0].unwrap().tunnel, Some(TunnelKind::Gre));
        assert_eq!((d.depth, d.dport, d.innermost().unwrap().src), (2, 443, v4(B4)));
        // cut short: no decapsulation, the GRE layer stays the connection
        let f = ipv4(A4, B4, 47, &gre(0, 0x8909, &[0x08, 0x00, 1]));
        assert_eq!(dec(LINKTYPE_RAW, &f).unwrap().depth, 1);
    }

    #[test]
    fn teredo_off_the_teredo_port() {
        // A relay on udp/32900 (zeek's tunnels/Teredo.pcap): decapsulated because one end of
        // the IPv6 packet is a Teredo address.
        let client = [0x20, 0x01, 0, 0, 0x41, 0x37, 0x9e, 0x50, 0x80, 0, 0xf1, 0x2a, 0xb9, 0xc8, 0x28, 0x15];
        let frame = ipv4(A4, B4, 17, &udp(3797, 32900, &ipv6(client, B6, 6, &tcp(1286, 80, b"GET"))));
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!(d.layers[0].unwrap().tunnel, Some(TunnelKind::Teredo));
        assert_eq!((d.depth, d.dport, d.payload), (2, 80, &b"GET"[..]));
        // the same packet without a Teredo address stays plain UDP
        let frame = ipv4(A4, B4, 17, &udp(3797, 32900, &ipv6(A6, B6, 6, &tcp(1286, 80, b"GET"))));
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!((d.depth, d.dport), (1, 32900));
        // and so does a Teredo address whose IPv6 length does not match the datagram
        let mut bad = ipv6(client, B6, 6, &tcp(1286, 80, b"GET"));
        bad.push(0);
        let frame = ipv4(A4, B4, 17, &udp(3797, 32900, &bad));
        assert_eq!(dec(LINKTYPE_RAW, &frame).unwrap().depth, 1);
    }

    #[test]
    fn nflog() {
        // zeek's nflog-http.pcap: family AF_INET, TLVs in little-endian, the packet in type 9.
        let ip = inner_tcp4();
        let mut f = vec![2, 0, 0, 42];
        f.extend_from_slice(&[8, 0, 1, 0, 0, 0, 3, 0]); // packet header TLV
        f.extend_from_slice(&[5, 0, 10, 0, 7, 0, 0, 0]); // 5-byte TLV padded to 8
        f.extend_from_slice(&((4 + ip.len()) as u16).to_le_bytes());
        f.extend_from_slice(&[9, 0]);
        f.extend_from_slice(&ip);
        let d = dec(LINKTYPE_NFLOG, &f).unwrap();
        assert_eq!((d.depth, d.dport, d.payload), (1, 443, &b"hello"[..]));
        // big-endian TLVs, IPv6 family
        let ip6 = ipv6(A6, B6, 17, &udp(5, 53, b"q"));
        let mut f = vec![10, 0, 0, 1, 0, 8, 0, 1, 0, 0, 3, 0];
        f.extend_from_slice(&((4 + ip6.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 9]);
        f.extend_from_slice(&ip6);
        assert_eq!(dec(LINKTYPE_NFLOG, &f).unwrap().dport, 53);
        // no payload TLV, a zero-length TLV, a cut header: skipped, no panic
        assert_eq!(dec(LINKTYPE_NFLOG, &[2, 0, 0, 1, 8, 0, 1, 0, 0, 0, 0, 0]).err(), Some(Skip::Truncated));
        assert_eq!(dec(LINKTYPE_NFLOG, &[2, 0, 0, 1, 0, 0, 9, 0, 0x45]).err(), Some(Skip::NotIp));
        assert_eq!(dec(LINKTYPE_NFLOG, &[2, 0]).err(), Some(Skip::Truncated));
    }

    #[test]
    fn ip_in_ip_and_6in4() {
        let f = ipv4(A4, A4, 4, &inner_tcp4());
        let d = dec(LINKTYPE_RAW, &f).unwrap();
        assert_eq!(d.layers[0].unwrap().tunnel, Some(TunnelKind::IpInIp));
        assert_eq!((d.depth, d.dport), (2, 443));
        let f = eth(0x0800, &ipv4(A4, B4, 41, &ipv6(A6, B6, 6, &tcp(1, 2, b""))));
        let d = dec(LINKTYPE_ETHERNET, &f).unwrap();
        assert_eq!((d.depth, d.innermost().unwrap().src), (2, IpAddr::from(A6)));
        assert_eq!(d.ip_layers().count(), 2);
        // 4in6 whose inner header is garbage: rolled back to the outer layer
        let frame = ipv6(A6, B6, 4, &[0x45, 0, 0]);
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!((d.depth, d.innermost().unwrap().proto), (1, 4));
    }

    #[test]
    fn nesting_beyond_max_depth() {
        let mut p = ipv4(B4, B4, 17, &udp(1, 2, b"deep"));
        for i in 0..6u8 {
            p = ipv4([10, 0, 0, i], B4, 4, &p);
        }
        let d = dec(LINKTYPE_RAW, &p).unwrap();
        assert_eq!(usize::from(d.depth), MAX_DEPTH);
        assert!(d.depth_exceeded);
        let l = d.innermost().unwrap();
        assert_eq!((l.src, l.proto, l.tunnel), (v4([10, 0, 0, 2]), 4, None));
        assert_eq!(d.layers[2].unwrap().tunnel, Some(TunnelKind::IpInIp));
        let mut p = ipv4(B4, B4, 17, &udp(1, 2, b"deep"));
        for i in 0..3u8 {
            p = ipv4([10, 0, 0, i], B4, 4, &p);
        }
        let d = dec(LINKTYPE_RAW, &p).unwrap();
        assert!(!d.depth_exceeded);
        assert_eq!((d.depth, d.dport, d.payload), (4, 2, &b"deep"[..]));
    }

    #[test]
    fn ipv4_fragment_fields() {
        let frame = ipv4_frag(A4, B4, 17, 77, 0, true, &udp(5, 6, b"ab"));
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!(d.fragment, Some(Fragment { id: 77, offset: 0, more: true }));
        assert_eq!((d.sport, d.dport), (5, 6));
        let frame = ipv4_frag(A4, B4, 17, 77, 24, false, b"tail");
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!(d.fragment.unwrap().offset, 24);
        assert_eq!((d.sport, d.dport, d.payload, d.ip_payload), (0, 0, &b""[..], &b"tail"[..]));
        // a fragmented GRE packet is not decapsulated
        let g = gre(0, 0x0800, &inner_tcp4());
        let frame = ipv4_frag(A4, B4, 47, 1, 0, true, &g);
        let d = dec(LINKTYPE_RAW, &frame).unwrap();
        assert_eq!(d.depth, 1);
    }

    use crate::synth::XorShift;

    #[test]
    fn never_panics() {
        let linktypes = [
            LINKTYPE_NULL,
            LINKTYPE_ETHERNET,
            LINKTYPE_RAW,
            LINKTYPE_LOOP,
            LINKTYPE_LINUX_SLL,
            LINKTYPE_LINUX_SLL2,
            LINKTYPE_IPV4,
            LINKTYPE_IPV6,
            LINKTYPE_NFLOG,
        ];
        let ip = inner_tcp4();
        let mut gtp = vec![0x34, 0xff, 0, 100, 0, 0, 0, 1, 0, 0, 0, 0x85, 1, 0, 0, 0];
        gtp.extend_from_slice(&ip);
        let valid = [
            eth(0x0800, &ipv4(A4, B4, 47, &gre(0xb000, 0x0800, &ip))),
            eth(0x0800, &ipv4(A4, B4, 17, &udp(1, 4789, &vxlan(&eth(0x0800, &ip))))),
            eth(0x86dd, &ipv6(A6, B6, 0, &[6, 0, 1, 4, 0, 0, 0, 0, 1, 2, 3, 4])),
            eth(0x0800, &ipv4(A4, B4, 47, &gre(0x1000, 0x22eb, &[0; 40]))),
            ipv4(A4, B4, 17, &udp(2152, 2152, &gtp)),
        ];
        let mut d = Decoded::default();
        for f in &valid {
            for n in 0..=f.len() {
                for &lt in &linktypes {
                    for decap in [true, false] {
                        let _ = decode(lt, &f[..n], decap, &mut d);
                        let _ = decode(lt, &f[n..], decap, &mut d);
                    }
                }
            }
        }
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut buf = Vec::new();
        for i in 0..4000 {
            buf.clear();
            let len = (rng.next_u64() % 200) as usize;
            for _ in 0..len {
                buf.push(rng.next_u64() as u8);
            }
            // bias towards plausible headers so the deeper parsers get exercised
            if i % 2 == 0 && buf.len() > 20 {
                buf[0] = 0x45;
                buf[9] = [4, 6, 17, 41, 47, 1][i % 6];
            }
            let mut d = Decoded::default();
            for &lt in &linktypes {
                if let Ok(()) = decode(lt, &buf, true, &mut d) {
                    assert!(d.depth >= 1 && usize::from(d.depth) <= MAX_DEPTH);
                    assert!(d.innermost().is_some());
                }
            }
            let _ = decode_ip(&buf, true, &mut d);
            parse_transport(6, &buf, &mut d);
        }
    }

    #[test]
    fn skip_names_are_stable() {
        let names: Vec<_> = Skip::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            ["unsupported_link_type", "not_ip", "truncated", "bad_ip_header", "too_many_layers", "empty"]
        );
    }
}
