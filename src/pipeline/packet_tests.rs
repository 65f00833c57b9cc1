//! Unit tests of the engine's packet path: what a connection's later segments change, whether
//! they take the shortcut for known TCP connections (`peek::plain_tcp`) or the full decoder.

use std::net::IpAddr;
use std::sync::Arc;

use super::engine::{Engine, Options, Sink};
use crate::indicators::{plain, IndicatorSet, Provenance};
use crate::matcher::Matcher;
use crate::report::{Alert, FlowEvent};
use crate::source::capture::Packet;
use crate::synth::{addr, ethernet, ip, tcp, tls_client_hello, ACK, FIN, PSH, RST, SYN};
use crate::track::conn::Limits;

#[derive(Default)]
struct Events {
    alerts: Vec<Alert>,
    flows: Vec<FlowEvent>,
}

impl Sink for Events {
    fn alert(&mut self, a: Alert) {
        self.alerts.push(a);
    }
    fn flow(&mut self, f: FlowEvent) {
        self.flows.push(f);
    }
}

const T0: i64 = 1_700_000_000_000_000;

/// Frames of one address pair, in the order given, with what each direction should count.
struct Script {
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    vlan: Option<u16>,
    frames: Vec<(i64, Vec<u8>)>,
    now: i64,
}

impl Script {
    fn new(client: &str, server: &str, vlan: Option<u16>) -> Script {
        Script { client: (addr(client), 40001), server: (addr(server), 443), vlan, frames: Vec::new(), now: T0 }
    }

    /// A segment one second after the last; its frame length.
    fn seg(&mut self, to_server: bool, flags: u8, payload: &[u8]) -> u64 {
        let (from, to) = if to_server { (self.client, self.server) } else { (self.server, self.client) };
        let v6 = from.0.is_ipv6();
        let packet = ip(from.0, to.0, 6, tcp(from.1, to.1, 1, 1, flags, payload), Some(16));
        let frame = ethernet(self.vlan, if v6 { 0x86dd } else { 0x0800 }, &packet);
        self.now += 1_000_000;
        let len = frame.len() as u64;
        self.frames.push((self.now, frame));
        len
    }

    fn wait(&mut self, micros: i64) {
        self.now += micros;
    }

    fn run(&self, limits: Limits) -> (Events, u64) {
        let set = format!("{}\n", self.server.0);
        let mut indicators = IndicatorSet::new();
        plain::load(&set, &Arc::from("t"), Provenance::default(), &mut indicators);
        let m = Matcher::new(indicators);
        let mut e = Engine::new(&m, Options { limits, ..Options::default() }, Events::default());
        e.begin_file(Arc::from("t.pcap"));
        for (i, (ts, data)) in self.frames.iter().enumerate() {
            let number = i as u64 + 1;
            e.packet(&Packet { linktype: 1, ts_micros: *ts, data, wire_len: data.len() as u32, number });
        }
        let (stats, events, _) = e.finish();
        (events, stats.conns)
    }
}

/// Counters of one flow event: packets and bytes to the server, to the client, and why it ended.
fn counted(f: &FlowEvent) -> (u64, u64, u64, u64, &'static str) {
    let c = &f.flow;
    (c.pkts_toserver, c.bytes_toserver, c.pkts_toclient, c.bytes_toclient, c.reason)
}

#[test]
fn later_segments_count_close_and_restart_connections_as_the_full_path_does() {
    for (client, server, vlan) in [
        ("10.0.0.9", "198.51.100.23", None),
        ("10.0.0.9", "198.51.100.23", Some(7)),
        ("2001:db8::9", "2001:db8::23", None),
    ] {
        let mut s = Script::new(client, server, vlan);
        // 1. Handshake, a ClientHello (the client side's application bytes are then read), a
        //    reply, many acknowledgements and more data each way, then FIN from both sides.
        let (mut up, mut down) = ((0, 0), (0, 0));
        let add = |d: &mut (u64, u64), len| {
            d.0 += 1;
            d.1 += len;
        };
        add(&mut up, s.seg(true, SYN, &[]));
        add(&mut down, s.seg(false, SYN | ACK, &[]));
        add(&mut up, s.seg(true, ACK, &[]));
        add(&mut up, s.seg(true, PSH | ACK, &tls_client_hello(Some("example.org"))));
        for _ in 0..20 {
            add(&mut down, s.seg(false, ACK, &[]));
            add(&mut up, s.seg(true, PSH | ACK, &[0x17; 300]));
        }
        add(&mut up, s.seg(true, FIN | ACK, &[]));
        add(&mut down, s.seg(false, FIN | ACK, &[]));
        add(&mut up, s.seg(true, ACK, &[]));
        let first = (up.0, up.1, down.0, down.1, "closed");

        // 2. The same ports again at once (inside the closed connection's linger): a new
        //    connection, which the server resets after some data.
        let (mut up2, mut down2) = ((0, 0), (0, 0));
        add(&mut up2, s.seg(true, SYN, &[]));
        add(&mut down2, s.seg(false, SYN | ACK, &[]));
        add(&mut up2, s.seg(true, PSH | ACK, &tls_client_hello(Some("example.org"))));
        add(&mut up2, s.seg(true, ACK, &[]));
        add(&mut down2, s.seg(false, RST, &[]));
        let second = (up2.0, up2.1, down2.0, down2.1, "closed");

        // 3. Past the linger and past the idle timeout: an acknowledgement starts a third
        //    connection (its sender is the client), which is still open at the end.
        s.wait(30_000_000);
        let (mut up3, mut down3) = ((0, 0), (0, 0));
        add(&mut up3, s.seg(false, ACK, &[]));
        add(&mut down3, s.seg(true, ACK, &[]));
        add(&mut up3, s.seg(false, ACK, &[]));
        let third = (up3.0, up3.1, down3.0, down3.1, "end-of-input");

        let limits = Limits { tcp_idle_us: 20_000_000, ..Limits::default() };
        let (events, conns) = s.run(limits);
        assert_eq!(conns, 3, "{vlan:?} {server}");
        let flows: Vec<_> = events.flows.iter().map(counted).collect();
        assert_eq!(flows, vec![first, second, third], "{vlan:?} {server}");
        assert_eq!(events.flows[2].src_ip, addr(server), "an ACK seen first: its sender is taken as the client");
        assert_eq!(events.alerts.len(), 3, "one alert per connection, never repeated by later segments");
        if let Some(v) = vlan {
            assert!(events.flows.iter().all(|f| f.vlan == [v]));
        }
    }
}

/// A connection idle past its timeout ends as timed out when its next segment comes (no
/// sweep ran in between), and that segment starts a new connection.
#[test]
fn a_segment_after_the_idle_timeout_ends_the_connection_and_starts_another() {
    let mut s = Script::new("10.0.0.9", "198.51.100.23", None);
    let a = s.seg(true, SYN, &[]);
    let b = s.seg(false, SYN | ACK, &[]);
    let c = s.seg(true, ACK, &[]);
    s.wait(25_000_000);
    let d = s.seg(true, ACK, &[]);
    let limits = Limits { tcp_idle_us: 20_000_000, ..Limits::default() };
    let (events, conns) = s.run(limits);
    assert_eq!(conns, 2);
    let flows: Vec<_> = events.flows.iter().map(counted).collect();
    assert_eq!(flows, vec![(2, a + c, 1, b, "timeout"), (1, d, 0, 0, "end-of-input")]);
}

/// The look-ahead's reading of a frame is used only for that very frame: a reader that names
/// the wrong packet number changes the speed, never what is counted.
#[test]
fn a_hint_is_used_only_for_the_frame_it_read() {
    let mut a = Script::new("10.0.0.9", "198.51.100.23", None);
    a.seg(true, SYN, &[]);
    a.seg(false, SYN | ACK, &[]);
    a.seg(true, ACK, &[]);
    a.seg(true, ACK, &[]);
    let mut b = Script::new("10.0.0.10", "198.51.100.23", None);
    b.seg(true, SYN, &[]);
    let set = "198.51.100.23\n";
    let mut indicators = IndicatorSet::new();
    plain::load(set, &Arc::from("t"), Provenance::default(), &mut indicators);
    let m = Matcher::new(indicators);
    for (hinted, number) in [(3, 4), (3, 3)] {
        let mut e = Engine::new(&m, Options::default(), Events::default());
        e.begin_file(Arc::from("t.pcap"));
        let pkt = |(ts, data): &(i64, Vec<u8>), number: u64| {
            let (ts, data) = (*ts, data.clone());
            (ts, data, number)
        };
        let mut frames: Vec<(i64, Vec<u8>, u64)> = (0..3).map(|i| pkt(&a.frames[i], i as u64 + 1)).collect();
        // Packet 4 is B's SYN; the hint said packet `number` would be A's last ACK.
        frames.push(pkt(&b.frames[0], 4));
        for (ts, data, n) in &frames {
            if *n == hinted {
                e.hint(1, &a.frames[3].1, number);
            }
            e.packet(&Packet { linktype: 1, ts_micros: *ts, data, wire_len: data.len() as u32, number: *n });
        }
        let (stats, events, _) = e.finish();
        assert_eq!(stats.conns, 2, "B's SYN starts its own connection");
        let to_server: Vec<u64> = events.flows.iter().map(|f| f.flow.pkts_toserver).collect();
        assert_eq!(to_server, vec![2, 1], "A: SYN and ACK; B: its SYN");
    }
}

/// A request whose segments arrive out of order after the SYN: the SYN says where the stream
/// starts, so the earlier bytes, arriving second, go in front rather than being taken for a
/// retransmission, and the Host header they carry is read. (The SYN's sequence number is kept
/// on the connection until reassembly needs a buffer; this fails if it is lost on the way.)
#[test]
fn segments_reordered_after_the_syn_are_put_back_in_order() {
    use crate::report::alert::Field;
    let (client, server) = ((addr("10.0.0.5"), 40001), (addr("198.51.100.7"), 80));
    let first = b"GET / HTTP/1.1\r\nHost: evil.example\r\nX-A: ";
    let second = b"GET /x HTTP/1.1\r\nX-B: 1\r\n";
    let isn = 1000u32;
    let data = isn + 1;
    let frames: Vec<Vec<u8>> = [
        (true, isn, SYN, &b""[..]),
        (false, 5000, SYN | ACK, b""),
        (true, data, ACK, b""),
        (true, data + first.len() as u32, ACK | PSH, &second[..]),
        (true, data, ACK | PSH, &first[..]),
        (true, data + (first.len() + second.len()) as u32, ACK | PSH, b"\r\n"),
    ]
    .into_iter()
    .map(|(to_server, seq, flags, payload)| {
        let (from, to) = if to_server { (client, server) } else { (server, client) };
        ethernet(None, 0x0800, &ip(from.0, to.0, 6, tcp(from.1, to.1, seq, 1, flags, payload), Some(16)))
    })
    .collect();
    let mut indicators = IndicatorSet::new();
    plain::load("evil.example\n", &Arc::from("t"), Provenance::default(), &mut indicators);
    let m = Matcher::new(indicators);
    let mut e = Engine::new(&m, Options::default(), Events::default());
    e.begin_file(Arc::from("t.pcap"));
    for (i, data) in frames.iter().enumerate() {
        let number = i as u64 + 1;
        e.packet(&Packet { linktype: 1, ts_micros: T0 + i as i64, data, wire_len: data.len() as u32, number });
    }
    let (_, events, _) = e.finish();
    let hosts: Vec<_> = events.alerts.iter().filter(|a| a.matched.field == Field::HttpHost).collect();
    assert_eq!(hosts.len(), 1, "{:?}", events.alerts);
}

/// A client whose IPv6 header carries an IPv4 address mapped into IPv6: the connection reports
/// it as the IPv4 address, and the server's address is still its destination.
#[test]
fn a_mapped_client_address_keeps_the_server_as_the_destination() {
    let mut s = Script::new("::ffff:10.0.0.5", "2001:db8::9", None);
    s.seg(true, SYN, b"");
    s.seg(false, SYN | ACK, b"");
    let (events, _) = s.run(Limits::default());
    let a = events.alerts.first().expect("the server's address is flagged");
    assert_eq!((a.src_ip, a.dest_ip), (addr("10.0.0.5"), addr("2001:db8::9")));
    assert_eq!(a.matched.field.as_str(), "ip.dst", "{a:?}");
}
