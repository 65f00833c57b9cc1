//! Fuzz harness bodies, shared by the cargo-fuzz targets in `fuzz/` and by
//! `tests/fuzz_replay.rs`, which replays the committed corpus under `cargo test` so the targets
//! keep compiling and the inputs that once crashed keep passing without a fuzzer.
//!
//! Every function takes arbitrary bytes and must return without panicking, whatever they hold.
//! Not part of the API.

use std::hint::black_box;
use std::io::{Cursor, Read};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use crate::decode::defrag::Defrag;
use crate::decode::packet::{self, Decoded};
use crate::decode::{dns, http, tls};
use crate::indicators::load::{self, Format};
use crate::indicators::{csv, misp, normalize, plain, stix, zeek, IndicatorSet, Kind, Provenance};
use crate::matcher::Matcher;
use crate::pipeline::engine::{Engine, Options, Sink};
use crate::report::summary::Stats;
use crate::report::{Alert, FlowEvent};
use crate::source::capture;
use crate::track::conn::Limits;

/// Link types the `packet` target picks from with its first byte.
pub const LINKTYPES: [u32; 9] = [
    packet::LINKTYPE_ETHERNET,
    packet::LINKTYPE_RAW,
    packet::LINKTYPE_IPV4,
    packet::LINKTYPE_IPV6,
    packet::LINKTYPE_NFLOG,
    packet::LINKTYPE_NULL,
    packet::LINKTYPE_LOOP,
    packet::LINKTYPE_LINUX_SLL,
    packet::LINKTYPE_LINUX_SLL2,
];

/// A harness body.
pub type Harness = fn(&[u8]);

/// Every target by name, as the fuzz crate and the replay test know them.
pub const TARGETS: [(&str, Harness); 10] = [
    ("capture", capture),
    ("packet", packet),
    ("dns", dns),
    ("tls_client", tls_client),
    ("tls_server", tls_server),
    ("http", http),
    ("indicators", indicators),
    ("engine", engine),
    ("flowlog", flowlog),
    ("compiled", compiled),
];

/// A compiled set whose body is the input (header and checksum are written around it, so
/// mutations reach the checks behind the checksum), used in place as a scan uses a mapped one;
/// when it is accepted, every kind of lookup runs and the first indicators are read back.
/// Nothing may panic or loop: ids in its tables are followed without further checks.
pub fn compiled(data: &[u8]) {
    use crate::indicators::{compiled, Kind};
    let Ok(m) = crate::matcher::image::from_bytes(&compiled::seal(data)) else { return };
    let mut seen = 0usize;
    let mut f = |id: crate::matcher::Id| {
        let ind = m.indicator(id);
        seen += ind.value.len() + m.provenance(id).set.len() + m.meta(id).tags.len();
    };
    for ip in
        ["0.0.0.0", "1.2.3.4", "10.1.2.3", "203.0.113.10", "255.255.255.255", "2001:db8::1", "::", "::ffff:1.2.3.4"]
    {
        if let Ok(ip) = ip.parse() {
            m.lookup_ip(ip, 443, &mut f);
            m.prefetch_ip(ip);
        }
    }
    for name in ["evil.example", "a.b.w8510.com", "com", "x"] {
        m.lookup_domain(name, &mut f);
    }
    m.lookup_url("evil.example/gate.php?x=1", &mut f);
    m.lookup_hash(Kind::Sha1Cert, "da39a3ee5e6b4b0d3255bfef95601890afd80709", &mut f);
    for id in 0..m.len().min(64) as u32 {
        f(id);
    }
    let _ = (seen, m.has_names(), m.heap_bytes());
}

/// Every flow-log parser over the bytes (the first byte picks the text format), and the
/// NetFlow/IPFIX decoder over them as export datagrams (two in a row, so a template in the
/// first can shape the second).
pub fn flowlog(data: &[u8]) {
    use crate::source::flowlog::{self, netflow::NetflowDecoder, Format as F};
    const FORMATS: [F; 7] =
        [F::ZeekTsv, F::ZeekJson, F::EveJson, F::AwsVpc, F::GcpVpcJson, F::AzureNsgJson, F::NfdumpCsv];
    let Some((&sel, rest)) = data.split_first() else { return };
    let _ = black_box(flowlog::detect(rest));
    let mut n = 0u64;
    flowlog::parse_text(FORMATS[sel as usize % FORMATS.len()], rest, |r| n += r.line, |_, _| {});
    // The one-pass EVE flow reader must agree with the serde reader wherever it reads a line.
    if let Ok(text) = std::str::from_utf8(rest) {
        for line in text.lines().take(64) {
            flowlog::check_eve_fast_path(line);
        }
    }
    black_box(n);
    let mut nf = NetflowDecoder::new(8);
    let exporter = std::net::SocketAddr::from(([192, 0, 2, 1], 2055));
    let cut = rest.len() / 2;
    for part in [&rest[..cut], &rest[cut..], rest] {
        let _ = black_box(NetflowDecoder::looks_like(part));
        let _ = nf.decode(exporter, part, 0, |r| n += r.pkts[0], |_| {});
    }
    black_box((n, nf.stats()));
    // sFlow, and its sampled headers made into records as the engine makes them; also with the
    // version and agent type in front, so most inputs reach the samples.
    let sflow = [&[0, 0, 0, 5, 0, 0, 0, 1][..], rest].concat();
    for part in [rest, &sflow[..]] {
        let r = crate::pipeline::sampled::records(part, exporter, 0, |r| n += r.map_or(0, |r| r.bytes[0]));
        black_box(r.is_ok());
    }
    black_box(n);
}

/// Most bytes a (possibly compressed) capture may expand to: a 4 KiB zstd input can claim
/// hundreds of megabytes, which would only measure memcpy.
const MAX_DECOMPRESSED: u64 = 16 << 20;

/// Reader buffer of the capture harnesses: big enough for any frame a fuzz input holds, small
/// enough that allocating it per input is cheap.
const FUZZ_BUFFER: usize = 64 << 10;

/// `source::capture::read` over the bytes, after undoing gzip/zstd as `capture::open` does
/// (so a stream that breaks part way runs too); then both readers over the decompressed bytes
/// in memory: the in-place one (`read_slice`, what mapped files and workers use) must deliver
/// the same packets as the streaming one, and so must the chunks of `-j` and the windows one
/// engine reads a mapped file by.
pub fn capture(data: &[u8]) {
    let Ok(r) = capture::decompress(Box::new(Cursor::new(data.to_vec()))) else { return };
    let mut n = 0u64;
    let res = capture::read_buffered(r.take(MAX_DECOMPRESSED), FUZZ_BUFFER, |p| {
        // Wrapping: a timestamp may be anything, and this sum only keeps the fields alive.
        n = n
            .wrapping_add(p.data.len() as u64)
            .wrapping_add(u64::from(p.wire_len))
            .wrapping_add(p.ts_micros as u64)
            .wrapping_add(u64::from(p.linktype));
    });
    if let Err(e) = &res {
        black_box(e.to_string());
    }
    black_box((n, res.is_ok()));

    let Ok(r) = capture::decompress(Box::new(Cursor::new(data.to_vec()))) else { return };
    let mut whole = Vec::new();
    if r.take(MAX_DECOMPRESSED).read_to_end(&mut whole).is_err() {
        return;
    }
    let (mut streamed, mut in_place) = (Vec::new(), Vec::new());
    let a = capture::read_buffered(&whole[..], FUZZ_BUFFER, |p| {
        streamed.push((p.number, p.linktype, p.ts_micros, p.wire_len, p.data.len()))
    });
    let b =
        capture::read_slice(&whole, |p| in_place.push((p.number, p.linktype, p.ts_micros, p.wire_len, p.data.len())));
    // The streaming reader's buffer is smaller than the largest frame the in-place one takes,
    // so only runs where neither failed must match exactly.
    if a.is_ok() && b.is_ok() {
        assert_eq!(streamed, in_place, "the streaming and in-place readers disagree");
    }
    // Both go through our own record loops where they can; pcap-parser alone must read the
    // same packets and stop at the same place.
    let mut parsed = Vec::new();
    let c = capture::read_slice_by_parser(&whole, |p| {
        parsed.push((p.number, p.linktype, p.ts_micros, p.wire_len, p.data.len()))
    });
    assert_eq!(in_place, parsed, "our record loops and pcap-parser disagree");
    assert_eq!(
        b.as_ref().map(|s| s.packets).map_err(|e| (e.after_packet, e.offset)),
        c.as_ref().map(|s| s.packets).map_err(|e| (e.after_packet, e.offset)),
        "our record loops and pcap-parser stop differently"
    );
    // The chunks `-j` splits a classic pcap or a pcapng into, small enough that records cross
    // many of their boundaries: they must hand out what the in-place reader reads.
    let chunk = 16 + usize::from(data.first().copied().unwrap_or(0));
    crate::pipeline::workers::check_split(&whole, 2 + usize::from(data.last().copied().unwrap_or(0) % 2), chunk);
    // One engine's reader by windows, as small and mapped or copied as the input's ends say.
    capture::check_windows(&whole, 64 * chunk, data.get(1).copied().unwrap_or(0));
}

/// Splits the `packet` target's input: byte 0 picks the link type, then frames follow, each
/// prefixed with its length (u16, big-endian); the last frame takes whatever is left.
pub fn split_frames(data: &[u8]) -> (u32, Vec<&[u8]>) {
    let Some((&sel, mut rest)) = data.split_first() else { return (packet::LINKTYPE_ETHERNET, Vec::new()) };
    let linktype = LINKTYPES[usize::from(sel) % LINKTYPES.len()];
    let mut frames = Vec::new();
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let body = &rest[2..];
        if len > body.len() {
            frames.push(body);
            return (linktype, frames);
        }
        frames.push(&body[..len]);
        rest = &body[len..];
    }
    (linktype, frames)
}

/// The inverse of [`split_frames`], to turn captures into `packet` seeds.
pub fn join_frames(selector: u8, frames: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![selector];
    for f in frames {
        let len = f.len().min(usize::from(u16::MAX));
        v.extend_from_slice(&(len as u16).to_be_bytes());
        v.extend_from_slice(&f[..len]);
    }
    v
}

/// Frames through `decode::packet::decode` (with and without decapsulation; its short cut for
/// the commonest frame must agree with its general walk) and `decode::peek::plain_tcp` (which
/// must agree with it), fragments through one `Defrag`, and every payload through the DNS, TLS
/// and HTTP parsers.
pub fn packet(data: &[u8]) {
    let (linktype, frames) = split_frames(data);
    // Small caps so that eviction runs too.
    let mut defrag = Defrag::new(8, 256 * 1024, 30.0);
    for (i, frame) in frames.iter().enumerate() {
        let mut plain = Decoded::default();
        black_box(packet::decode(linktype, frame, false, &mut plain).is_ok());
        // The engine's shortcut for segments of known connections reads what the decoder reads.
        crate::decode::peek::check_plain_tcp(linktype, frame);
        // So does the decoder's own short cut for the commonest frame.
        packet::check_common(linktype, frame, true);
        let mut d = Decoded::default();
        if packet::decode(linktype, frame, true, &mut d).is_err() {
            continue;
        }
        black_box((d.innermost(), d.outermost(), d.ip_layers().count()));
        payload(d.payload);
        if let (Some(frag), Some(inner)) = (d.fragment, d.innermost().copied()) {
            if let Some((proto, whole)) = defrag.push(i as f64, inner.src, inner.dst, inner.proto, frag, d.ip_payload) {
                let mut w = d;
                w.fragment = None;
                packet::decode_transport(proto, &whole, true, &mut w);
                payload(w.payload);
            }
        }
    }
    defrag.expire(1e9);
    black_box((defrag.stats(), defrag.in_flight(), defrag.buffered_bytes()));
}

/// One application payload through every parser the engine may call on it.
fn payload(p: &[u8]) {
    if p.is_empty() {
        return;
    }
    dns(p);
    for msg in dns::tcp_messages(p) {
        dns(msg);
    }
    tls_client(p);
    tls_server(p);
    http(p);
}

/// `dns::parse` then `walk`, reading every field handed out.
pub fn dns(data: &[u8]) {
    let mut scratch = dns::NameBuf::default();
    let Ok(m) = dns::parse(data) else { return };
    let (mut n, mut k) = (0usize, 0usize);
    let r = m.walk(
        &mut scratch,
        |q| k += q.name.as_bytes().len() + q.name.as_str().map_or(0, str::len) + usize::from(q.qtype),
        |a| {
            n += a.name.as_bytes().len() + usize::from(a.rtype) + a.ttl as usize;
            if let dns::Rdata::Cname(t) | dns::Rdata::Ns(t) | dns::Rdata::Ptr(t) | dns::Rdata::Dname(t) = &a.data {
                n += t.as_bytes().len() + usize::from(t.is_root());
            }
        },
    );
    black_box((n, k, r.is_ok()));
}

/// `tls::parse_client_hello`, then JA3 of what it returns.
pub fn tls_client(data: &[u8]) {
    let mut scratch = Vec::new();
    if let Ok(ch) = tls::parse_client_hello(data, &mut scratch) {
        black_box(tls::ja3(&ch));
        black_box(&ch.sni);
    }
}

/// `tls::server_certificates`, fingerprinting every certificate handed out.
pub fn tls_server(data: &[u8]) {
    let mut scratch = Vec::new();
    let r = tls::server_certificates(data, &mut scratch, |der| {
        black_box(tls::cert_fingerprints(der));
    });
    black_box(r.ok());
}

/// `http::parse_request`, then host normalisation and the URL, as the engine does.
pub fn http(data: &[u8]) {
    let Ok(req) = http::parse_request(data) else { return };
    let mut host = String::new();
    if let Some(raw) = req.host {
        http::normalize_host(raw, &mut host);
        black_box(host.parse::<IpAddr>().ok());
    }
    let mut url = String::new();
    http::url_of(&req, &mut url);
    black_box((host, url));
}

/// Byte 0 picks the file name given to `detect` (it breaks ties on "misp") and the type hint
/// for `parse_value`; the rest is the file's text. The detected format's loader reads it, and
/// every line goes through `normalize::parse_value`.
pub fn indicators(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(body);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let name = if sel & 1 == 0 { "fuzz" } else { "misp-fuzz" };
    let file: Arc<str> = Arc::from(name);
    let mut set = IndicatorSet::new();
    let format = load::detect(name, text);
    let prov = Provenance { set: name.into(), file: name.into(), format: format.as_str(), ..Provenance::default() };
    match format {
        Format::Csv => csv::load(text, &file, prov, &mut set),
        Format::Plain => plain::load(text, &file, prov, &mut set),
        Format::ZeekIntel => zeek::load(text, &file, name, &mut set),
        Format::Stix => stix::load(text, &file, name, &mut set),
        Format::MispJson => misp::load_json(text, &file, name, &mut set),
        Format::MispCsv => misp::load_csv(text, &file, name, &mut set),
    }
    black_box(csv::Manifest::parse(text).is_ok());
    for d in &set.diagnostics {
        black_box(d.to_string());
    }
    black_box(set.counts_by_kind());
    let hint = match usize::from(sel >> 1) % (Kind::ALL.len() + 1) {
        0 => None,
        k => Some(Kind::ALL[k - 1]),
    };
    for line in text.lines().take(256) {
        black_box(normalize::parse_value(line, hint).ok());
        black_box(normalize::parse_value(line, None).ok());
        black_box(normalize::infer(line));
    }
}

/// Indicators of the `engine` target: the whole address space (so every connection is
/// flagged and every alert path runs), names the samples use, a URL, and certificate and
/// JA3 hashes (so the server certificate and JA3 paths are enabled).
const ENGINE_SET: &str = "indicator,type\n\
0.0.0.0/0,cidr\n\
::/0,cidr\n\
198.51.100.23,ipv4\n\
example.com,domain\n\
hy92.com,domain\n\
w8510.com,domain\n\
http://example.com/evil,url\n\
da39a3ee5e6b4b0d3255bfef95601890afd80709,sha1-cert\n\
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855,sha256-cert\n\
e7d705a3286e19ea42f587b344ee6865,ja3\n";

fn engine_matcher() -> &'static Matcher {
    static M: OnceLock<Matcher> = OnceLock::new();
    M.get_or_init(|| {
        let mut set = IndicatorSet::new();
        let file: Arc<str> = Arc::from("fuzz-engine.csv");
        csv::load(ENGINE_SET, &file, Provenance { set: "fuzz".into(), ..Provenance::default() }, &mut set);
        Matcher::new(set)
    })
}

/// Alerts and flow events as the report writes them, in order.
#[derive(Default)]
struct Recorded(Vec<String>);

impl Sink for Recorded {
    fn alert(&mut self, a: Alert) {
        self.0.push(serde_json::to_string(&a).unwrap_or_default());
    }
    fn flow(&mut self, f: FlowEvent) {
        self.0.push(serde_json::to_string(&f).unwrap_or_default());
    }
}

/// A whole capture through the engine, with small caps so eviction and sweeping run; twice,
/// the second time with every frame through the full decoder: the shortcut for segments of
/// known TCP connections must change nothing (events, counters, flagged connections).
pub fn engine(data: &[u8]) {
    let run = |decode_every_frame: bool| {
        let opts = Options {
            limits: Limits { max_conns: 32, ..Limits::default() },
            stream_cap: 4096,
            dns_cache_cap: 64,
            keep_flagged: true,
            decode_every_frame,
            ..Options::default()
        };
        let mut e = Engine::new(engine_matcher(), opts, Recorded::default());
        e.begin_file(Arc::from("fuzz.pcap"));
        let r = capture::decompress(Box::new(Cursor::new(data.to_vec()))).ok()?;
        let res = capture::read_buffered_ahead(r.take(MAX_DECOMPRESSED), FUZZ_BUFFER, |p, ahead| {
            // As `scan` does: the frame two ahead is hinted to the connection table first.
            if let Some(frame) = ahead {
                e.hint(p.linktype, frame, p.number + capture::LOOK_AHEAD as u64);
            }
            e.packet(&p)
        });
        black_box(res.is_ok());
        let (st, events, flagged) = e.finish();
        let counters = counters(&st);
        let spans: Vec<String> = flagged.iter().map(|s| format!("{s:?}")).collect();
        Some((counters, events.0, spans))
    };
    let (Some(short), Some(full)) = (run(false), run(true)) else { return };
    assert!(short.0 == full.0, "counters differ:\n{}\n{}", short.0, full.0);
    assert!(short.1 == full.1, "events differ:\n{:#?}\n{:#?}", short.1, full.1);
    assert!(short.2 == full.2, "flagged connections differ");
    // Shared out over three engines as `scan -j 3` and the live workers share traffic, with caps
    // no input here reaches: what one engine finds, in any order across connections. Not for
    // captures of flow exports (NetFlow, IPFIX, sFlow): the engine that owns an export
    // connection matches all its records, so a flow that several exporters report may be
    // tracked by several engines (the README says so).
    let (Some(alone), Some(three)) = (sharded(data, 1), sharded(data, 3)) else { return };
    if alone.3 > 0 {
        return;
    }
    assert!(alone.0 == three.0, "counters differ with 3 engines:\n{}\n{}", alone.0, three.0);
    if alone.1 != three.1 {
        let only = |a: &[String], b: &[String]| a.iter().filter(|x| !b.contains(x)).cloned().collect::<Vec<_>>();
        panic!(
            "events differ with 3 engines: only with one {:#?}, only with three {:#?}",
            only(&alone.1, &three.1),
            only(&three.1, &alone.1)
        );
    }
    assert!(alone.2 == three.2, "flagged connections differ with 3 engines");
}

/// The counters of a run, in a stable order.
fn counters(st: &Stats) -> String {
    let sorted = |m: &std::collections::HashMap<String, u64>| {
        let mut v: Vec<_> = m.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort();
        v
    };
    let mut by_indicator: Vec<_> = st.alerts_by_indicator.iter().map(|(k, m)| (k.clone(), sorted(m))).collect();
    by_indicator.sort();
    let mut hosts: Vec<_> = st.hosts.iter().collect();
    hosts.sort();
    // Engines report their inputs' errors each in its own order, as they report alerts.
    let mut errors = st.input_errors.clone();
    errors.sort();
    format!(
        "{:?}",
        (
            (
                st.packets,
                st.bytes,
                st.decoded,
                &st.skipped,
                &st.unknown_linktypes,
                st.fragments,
                st.reassembled,
                st.too_deep
            ),
            (st.conns, st.conns_flagged, st.conns_evicted, st.dns_messages, st.dns_errors, st.tls_client_hellos),
            (st.tls_errors, st.http_requests, st.certs_seen, st.resolved_derived, st.alerts, &st.alerts_by_set),
            (by_indicator, hosts, errors),
        )
    )
}

/// A whole capture through `n` engines sharing it as the workers do (`workers::route`, by
/// [`shard::owner`]: each frame to its owner, and to every other engine too when all read it):
/// the merged counters, the events sorted, the flagged connections sorted, and the flow records
/// read.
///
/// [`shard::owner`]: crate::pipeline::shard::owner
fn sharded(data: &[u8], n: usize) -> Option<(String, Vec<String>, Vec<String>, u64)> {
    let opts = Options { keep_flagged: true, ..Options::default() };
    let mut engines: Vec<_> = (0..n)
        .map(|i| {
            let mut e = Engine::new(engine_matcher(), opts.clone(), Recorded::default());
            e.set_share(i, n);
            e.begin_file(Arc::from("fuzz.pcap"));
            e
        })
        .collect();
    let r = capture::decompress(Box::new(Cursor::new(data.to_vec()))).ok()?;
    let res = capture::read_buffered_ahead(r.take(MAX_DECOMPRESSED), FUZZ_BUFFER, |p, _| {
        for (i, e) in engines.iter_mut().enumerate() {
            crate::pipeline::workers::route(e, &p, i, n);
        }
    });
    black_box(res.is_ok());
    let (mut stats, mut events, mut spans) = (Stats::default(), Vec::new(), Vec::new());
    for e in engines {
        let (st, recorded, flagged) = e.finish();
        stats.merge(st);
        events.extend(recorded.0);
        spans.extend(flagged.iter().map(|s| format!("{s:?}")));
    }
    events.sort();
    spans.sort();
    Some((counters(&stats), events, spans, stats.records))
}
