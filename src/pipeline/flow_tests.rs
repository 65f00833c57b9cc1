//! Unit tests of the engine's flow-record paths (NetFlow/IPFIX datagrams, flow-log records).

use std::sync::Arc;

use super::engine::{Engine, Options, Sink};
use crate::indicators::{plain, IndicatorSet, Provenance};
use crate::matcher::Matcher;
use crate::report::{Alert, FlowEvent};
use crate::synth::flows;

#[derive(Default)]
struct Alerts(Vec<Alert>);

impl Sink for Alerts {
    fn alert(&mut self, a: Alert) {
        self.0.push(a);
    }
    fn flow(&mut self, _: FlowEvent) {}
}

fn matcher(csv: &str) -> Matcher {
    let lines: String = csv.lines().skip(1).filter_map(|l| l.split(',').next()).map(|v| format!("{v}\n")).collect();
    let mut set = IndicatorSet::new();
    plain::load(&lines, &Arc::from("t"), Provenance::default(), &mut set);
    assert_eq!(set.errors(), 0, "{:?}", set.diagnostics);
    Matcher::new(set)
}

#[test]
fn ipfix_data_sets_without_their_template_are_counted_as_skipped() {
    let s = flows::generate(200, 1);
    let all: Vec<usize> = (0..s.flows.len()).collect();
    let e = flows::ipfix(&s, &all);
    let m = matcher(&s.indicators_csv);
    let mut engine = Engine::new(&m, Options::default(), Alerts::default());
    engine.begin_file(Arc::from("udp"));
    let exporter = "192.0.2.1:4739".parse().unwrap();
    // Template message lost: every data set is dropped, reported once per template, and counted.
    for d in &e.datagrams[1..] {
        engine.export_datagram(exporter, d, flows::START_MICROS);
    }
    let st = engine.stats();
    assert_eq!(st.records, 0);
    assert!(st.records_skipped >= (e.datagrams.len() - 1) as u64, "{}", st.records_skipped);
    assert_eq!(st.input_errors.iter().filter(|w| w.contains("arrived before its template")).count(), 2);
    // Once the template arrives, the data decodes and nothing more is skipped.
    let skipped = st.records_skipped;
    for d in &e.datagrams {
        engine.export_datagram(exporter, d, flows::START_MICROS);
    }
    assert_eq!(engine.stats().records_skipped, skipped);
    assert_eq!(engine.stats().records, all.len() as u64);
    let (stats, sink, _) = engine.finish();
    assert!(!sink.0.is_empty());
    assert!(stats.render(1.0, 1).contains(&format!("{} flow-log records, {skipped} skipped", all.len())));
}

/// The live sensor's workers: the one that does not own a DNS answer learns from it through
/// `learn_packet`, and flags a later connection to the address it gave (without alerting on
/// the DNS packet itself).
#[test]
fn a_worker_that_only_learned_a_dns_answer_flags_the_resolved_address() {
    use crate::source::capture::Packet;
    use crate::synth::{addr, dns_response, ethernet, ip, tcp, udp, Rr, SYN};
    let m = matcher("indicator,type\nc2.hy92.com,domain\n");
    let answer = dns_response(7, "c2.hy92.com", 1, &[Rr::Addr("c2.hy92.com", addr("198.51.100.23"))]);
    let dns = ethernet(None, 0x0800, &ip(addr("10.0.0.53"), addr("10.0.0.9"), 17, udp(53, 40000, &answer), Some(6)));
    let syn = ethernet(
        None,
        0x0800,
        &ip(addr("10.0.0.9"), addr("198.51.100.23"), 6, tcp(40001, 443, 1, 0, SYN, &[]), Some(16)),
    );
    fn pkt(data: &[u8], number: u64) -> Packet<'_> {
        Packet { linktype: 1, ts_micros: 1_700_000_000_000_000, data, wire_len: data.len() as u32, number }
    }
    let mut other = Engine::new(&m, Options::default(), Alerts::default());
    other.begin_file(Arc::from("live"));
    other.learn_packet(&pkt(&dns, 1));
    other.packet(&pkt(&syn, 2));
    let (stats, alerts, _) = other.finish();
    assert_eq!(alerts.0.len(), 1, "{:?}", alerts.0);
    assert_eq!(alerts.0[0].matched.field.as_str(), "dns.resolved");
    assert_eq!(alerts.0[0].dest_ip.to_string(), "198.51.100.23");
    assert_eq!(stats.dns_messages, 0, "learning is not inspecting: the owner counts the message");
}

/// Records of one connection (both directions, as EVE's netflow events come) add up into one
/// flow with one alert; a record after the connection idled past its timeout starts a new one;
/// records that match nothing are counted as connections but kept nowhere.
#[test]
fn records_of_a_flagged_connection_add_up_and_idle_ones_start_again() {
    use crate::source::flowlog::Record;
    #[derive(Default)]
    struct Both(Vec<Alert>, Vec<FlowEvent>);
    impl Sink for Both {
        fn alert(&mut self, a: Alert) {
            self.0.push(a);
        }
        fn flow(&mut self, f: FlowEvent) {
            self.1.push(f);
        }
    }
    let m = matcher("indicator\n203.0.113.10\n");
    let mut engine = Engine::new(&m, Options::default(), Both::default());
    engine.begin_file(Arc::from("eve.json"));
    let rec = |src: &str, sport, dst: &str, dport, ts: i64, pkts| Record {
        ts_micros: ts,
        src: Some(src.parse().unwrap()),
        dst: Some(dst.parse().unwrap()),
        sport,
        dport,
        proto: 17,
        pkts: [pkts, 0],
        line: 1,
        ..Record::default()
    };
    let t0 = flows::START_MICROS;
    engine.record(&rec("10.0.0.5", 5000, "203.0.113.10", 53, t0, 3));
    engine.record(&rec("203.0.113.10", 53, "10.0.0.5", 5000, t0 + 1_000, 2));
    for i in 0..1000u16 {
        engine.record(&rec("10.0.0.5", 6000 + i, "198.51.100.1", 443, t0 + 2_000, 1));
    }
    // Past the UDP idle timeout (120 s): the same 5-tuple is a new connection.
    engine.record(&rec("10.0.0.5", 5000, "203.0.113.10", 53, t0 + 200_000_000, 1));
    let (stats, sink, _) = engine.finish();
    assert_eq!(sink.0.len(), 2, "one alert per connection: {:#?}", sink.0);
    assert_eq!(sink.1.len(), 2);
    let first = serde_json::to_value(&sink.1[0]).unwrap();
    assert_eq!(first["flow"]["pkts_toserver"], 3);
    assert_eq!(first["flow"]["pkts_toclient"], 2);
    assert_eq!(first["flow"]["reason"], "timeout");
    assert_eq!(stats.conns, 1002);
    assert_eq!(stats.records, 1003);

    // A connection idle past its timeout when the input ends ends as timed out, though no
    // sweep ran after it went idle (a sweep waits for 4096 events): the reason must not
    // depend on when sweeps happen, which differs with the number of workers.
    let mut engine = Engine::new(&m, Options::default(), Both::default());
    engine.begin_file(Arc::from("eve.json"));
    engine.record(&rec("10.0.0.5", 5000, "203.0.113.10", 53, t0, 3));
    engine.record(&rec("10.0.0.6", 5001, "203.0.113.10", 53, t0 + 200_000_000, 1));
    let (_, sink, _) = engine.finish();
    let reasons: Vec<String> =
        sink.1.iter().map(|f| serde_json::to_value(f).unwrap()["flow"]["reason"].to_string()).collect();
    assert_eq!(reasons.iter().filter(|r| r.contains("timeout")).count(), 1, "{reasons:?}");
    assert_eq!(reasons.iter().filter(|r| r.contains("end-of-input")).count(), 1, "{reasons:?}");
}
