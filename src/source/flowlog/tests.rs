use std::net::{IpAddr, SocketAddr};

use super::netflow::NetflowDecoder;
use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn run(format: Format, data: &[u8]) -> (Vec<Record>, Vec<(u64, String)>, TextStats) {
    let (mut recs, mut errs) = (Vec::new(), Vec::new());
    let st = parse_text_stats(format, data, |r| recs.push(r.clone()), |l, e| errs.push((l, e)));
    (recs, errs, st)
}

const CONN: &[u8] = include_bytes!("../../../tests/data/flowlogs/conn.log");
const EVE: &[u8] = include_bytes!("../../../tests/data/flowlogs/eve.json");
const VPC: &[u8] = include_bytes!("../../../tests/data/flowlogs/vpc.log");

#[test]
fn detects_formats() {
    assert_eq!(detect(CONN), Some(Format::ZeekTsv));
    assert_eq!(detect(b"### comment\n#separator \\x09\n#fields\tts\n"), Some(Format::ZeekTsv));
    assert_eq!(detect(EVE), Some(Format::EveJson));
    assert_eq!(detect(VPC), Some(Format::AwsVpc));
    assert_eq!(detect(br#"{"ts":1.5,"id.orig_h":"10.0.0.1"}"#), Some(Format::ZeekJson));
    assert_eq!(detect(GCP.as_bytes()), Some(Format::GcpVpcJson));
    assert_eq!(detect(AZURE.as_bytes()), Some(Format::AzureNsgJson));
    assert_eq!(detect(NFDUMP.as_bytes()), Some(Format::NfdumpCsv));
    assert_eq!(
        detect(b"2 123456789010 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1725451200 1725451260 ACCEPT OK\n"),
        Some(Format::AwsVpc)
    );
    assert_eq!(detect(b"Phony unsupported log format.\n"), None);
    assert_eq!(detect(b""), None);
    assert_eq!(detect(b"{\"foo\":1}\n"), None);
    assert_eq!(detect(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]), None);
}

#[test]
fn zeek_tsv_conn() {
    let (recs, errs, st) = run(Format::ZeekTsv, CONN);
    assert_eq!(recs.len(), 2, "{errs:?}");
    let r = &recs[0];
    assert_eq!(r.ts_micros, 1_725_451_200_060_000);
    assert_eq!(r.end_micros, Some(1_725_451_201_560_000));
    assert_eq!((r.src, r.dst), (Some(ip("10.20.30.40")), Some(ip("198.51.100.23"))));
    assert_eq!((r.sport, r.dport, r.proto), (51003, 443, 6));
    assert_eq!(r.pkts, [5, 4]);
    assert_eq!(r.bytes, [400, 500], "IP-level bytes preferred");
    assert_eq!(r.line, 9);
    // CRLF line, ICMP over IPv6, unset duration and bytes.
    let r = &recs[1];
    assert_eq!((r.proto, r.end_micros, r.bytes), (58, None, [84, 0]));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, 11);
    assert!(errs[0].1.contains("id.orig_p"), "{}", errs[0].1);
    assert_eq!(st.records, 2);
}

#[test]
fn zeek_tsv_dns_ssl_http_and_inference() {
    let dns = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n\
               #fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tquery\tanswers\tTTLs\n\
               1725451200.5\tC1\t10.0.0.1\t4000\t10.0.0.53\t53\tudp\tWWW.Example.COM.\tcdn.example.net,192.0.2.7,2001:db8::7,TXT 12 hello\t1,2,3,4\n\
               1725451201.5\tC2\t10.0.0.1\t4001\t10.0.0.53\t53\tudp\t-\t(empty)\t(empty)\n";
    let (recs, errs, st) = run(Format::ZeekTsv, dns.as_bytes());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(recs.len(), 1);
    assert_eq!(st.skipped, 1);
    let r = &recs[0];
    assert_eq!(r.names().dns_query.as_deref(), Some("www.example.com"));
    assert_eq!(r.names().dns_answers, vec![ip("192.0.2.7"), ip("2001:db8::7")]);
    assert_eq!(r.names().dns_cnames, vec!["cdn.example.net".to_string()]);
    assert_eq!(r.proto, 17);

    // No #path: the fields say ssl, then http.
    let ssl = "#separator \\x09\n#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tserver_name\n\
               1.0\t10.0.0.1\t1\t10.0.0.2\t443\tEvil.Example.\n\
               #fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\thost\turi\n\
               2.0\t10.0.0.1\t2\t10.0.0.3\t80\tbad.example:8080\t/x\\x20y\n";
    let (recs, errs, _) = run(Format::ZeekTsv, ssl.as_bytes());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(recs[0].names().tls_sni.as_deref(), Some("evil.example"));
    assert_eq!(recs[1].names().http_host.as_deref(), Some("bad.example:8080"));
    assert_eq!(recs[1].names().http_uri.as_deref(), Some("/x y"));
    assert_eq!(recs[1].ts_micros, 2_000_000);
}

#[test]
fn zeek_tsv_malformed() {
    let mut data = b"1.0\t10.0.0.1\n#separator \\x09\n#fields\tts\tid.orig_h\tid.resp_h\n".to_vec();
    data.extend_from_slice(b"1.0\t10.0.0.1\n"); // too few fields
    data.extend_from_slice(b"abc\t10.0.0.1\t10.0.0.2\n"); // bad ts
    data.extend_from_slice(b"1.0\t10.0.0.1\t10.0.0.2\xff\n"); // invalid UTF-8
    data.extend_from_slice(b"1.0\t300.0.0.1\t10.0.0.2\n"); // bad address
    data.extend_from_slice(b"1.0\t-\t-\n"); // no address at all
    let mut huge = b"1.0\t10.0.0.1\t".to_vec();
    huge.resize(MAX_LINE + 10, b'a');
    data.extend_from_slice(&huge);
    data.extend_from_slice(b"\n2.0\t10.0.0.1\t10.0.0.2\n");
    let (recs, errs, _) = run(Format::ZeekTsv, &data);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].line, 10);
    let lines: Vec<u64> = errs.iter().map(|e| e.0).collect();
    assert_eq!(lines, vec![1, 4, 5, 6, 7, 8, 9]);
    assert!(errs[3].1.contains("UTF-8"));
    assert!(errs[6].1.contains("longer than"));
}

/// The word-at-a-time split hands over exactly the fields a plain split gives at the wanted
/// positions, at every alignment, next to bytes that differ from the separator in one bit, and
/// counts the fields past the last one wanted.
#[test]
fn zeek_tsv_split_matches_a_plain_split() {
    use super::swar::split_wanted;
    let mut rng = crate::synth::XorShift(0x9e37_79b9_7f4a_7c15);
    let mut rand = |n: u64| rng.below(n);
    for len in 0..160 {
        for _ in 0..40 {
            let line: Vec<u8> = (0..len)
                .map(|_| [b'\t', b'\t' ^ 0x80, b'\t' ^ 1, b'\t' + 0x7f, 0, 0xff, b'a'][rand(7) as usize])
                .collect();
            let fields: Vec<&[u8]> = line.split(|&c| c == b'\t').collect();
            let wanted: Vec<(usize, usize)> = (0..fields.len() + 3).filter(|_| rand(3) == 0).map(|i| (i, i)).collect();
            let mut got = Vec::new();
            let n = split_wanted(&line, b'\t', &wanted, |i, v| {
                got.push((i, v));
                Ok(())
            })
            .unwrap();
            assert_eq!(n, fields.len());
            let want: Vec<(usize, &[u8])> =
                wanted.iter().filter(|(i, _)| *i < fields.len()).map(|&(i, _)| (i, fields[i])).collect();
            assert_eq!(got, want, "{line:?}");
        }
    }
}

/// Lines with a hundred fields and more are read all the same, and a field
/// count that differs from the header is reported either way.
#[test]
fn zeek_tsv_many_fields() {
    let mut header = "#fields\tts\tid.orig_h\tid.resp_h".to_string();
    let mut line = "1.0\t10.0.0.1\t10.0.0.2".to_string();
    for i in 0..100 {
        header.push_str(&format!("\textra{i}"));
        line.push_str("\tx");
    }
    header.push_str("\tid.resp_p");
    line.push_str("\t443");
    let data = format!("{header}\n{line}\n{line}\tone-too-many\n");
    let (recs, errs, _) = run(Format::ZeekTsv, data.as_bytes());
    assert_eq!(recs.len(), 1, "{errs:?}");
    assert_eq!((recs[0].dst, recs[0].dport), (Some(ip("10.0.0.2")), 443));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, 3);
    assert!(errs[0].1.contains("105 fields, the #fields header names 104"), "{errs:?}");
}

#[test]
fn zeek_json() {
    let data = br#"{"ts":1546981792.481978,"uid":"C1","id.orig_h":"192.168.86.167","id.orig_p":55010,"id.resp_h":"17.248.128.151","id.resp_p":443,"proto":"tcp","duration":20.5,"orig_bytes":6181,"resp_bytes":11658,"orig_pkts":22,"resp_pkts":17,"tunnel_parents":[]}
{"ts":"2021-03-01T10:00:00.250Z","id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.53","id.resp_p":53,"proto":"udp","query":"A.example","answers":["b.example","192.0.2.1"]}
{"ts":1.0,"id.orig_h":"10.0.0.1","id.resp_h":"10.0.0.2","server_name":"x.example"}
{"ts":1.0,"id.orig_h":"10.0.0.1","id.orig_p":"eighty","id.resp_h":"10.0.0.2"}
{"ts":1.0,"id.orig_h":"10.0.0.1","id.resp_h":
{"id.orig_h":"10.0.0.1","id.resp_h":"10.0.0.2"}
{"ts":1.0,"_path":"files","id.orig_h":"10.0.0.1","id.resp_h":"10.0.0.2"}
"#;
    let (recs, errs, st) = run(Format::ZeekJson, data);
    assert_eq!(recs.len(), 3, "{errs:?}");
    let r = &recs[0];
    assert_eq!(r.ts_micros, 1_546_981_792_481_978);
    assert_eq!(r.end_micros, Some(1_546_981_812_981_978));
    assert_eq!((r.pkts, r.bytes, r.proto), ([22, 17], [6181, 11658], 6));
    assert_eq!(recs[1].ts_micros, 1_614_592_800_250_000);
    assert_eq!(recs[1].names().dns_query.as_deref(), Some("a.example"));
    assert_eq!(recs[1].names().dns_answers, vec![ip("192.0.2.1")]);
    assert_eq!(recs[1].names().dns_cnames, vec!["b.example".to_string()]);
    assert_eq!(recs[2].names().tls_sni.as_deref(), Some("x.example"));
    assert_eq!(errs.iter().map(|e| e.0).collect::<Vec<_>>(), vec![4, 5, 6]);
    assert_eq!(st.skipped, 1);
}

#[test]
fn eve_events() {
    let (recs, errs, st) = run(Format::EveJson, EVE);
    assert_eq!(recs.len(), 5, "{errs:?}");
    let f = &recs[0];
    assert_eq!(f.ts_micros, 1_725_451_200_060_000);
    assert_eq!(f.end_micros, Some(1_725_451_201_560_000));
    assert_eq!((f.pkts, f.bytes, f.proto, f.sport, f.dport), ([5, 4], [400, 500], 6, 51003, 443));
    let d = &recs[1];
    assert_eq!(d.names().dns_query.as_deref(), Some("c2.hy92.com"));
    assert_eq!(d.names().dns_answers, vec![ip("198.51.100.23")]);
    assert_eq!(d.names().dns_cnames, vec!["edge.hy92.net".to_string()]);
    assert_eq!(recs[2].names().tls_sni.as_deref(), Some("c2.hy92.com"));
    assert_eq!(recs[3].names().http_host.as_deref(), Some("www.example.com"));
    assert_eq!(recs[3].names().http_uri.as_deref(), Some("/a?b=c"));
    assert_eq!(recs[3].proto, 6);
    let n = &recs[4];
    assert_eq!((n.src, n.pkts, n.bytes), (Some(ip("198.51.100.23")), [4, 0], [500, 0]));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, 7, "src_ip of the wrong type");
    assert_eq!(st.skipped, 1, "stats event");
}

#[test]
fn eve_dns_v1_v3_grouped_and_bad_lines() {
    let data = br#"{"timestamp":"2018-07-05T15:51:20.213418-0400","event_type":"dns","src_ip":"192.168.86.1","src_port":53,"dest_ip":"192.168.86.85","dest_port":39464,"proto":"UDP","dns":{"type":"answer","id":1,"rrname":"clients.l.google.com","rrtype":"A","ttl":299,"rdata":"172.217.13.110"}}
{"timestamp":"2024-01-01T00:00:00Z","event_type":"dns","src_ip":"10.0.0.1","dest_ip":"10.0.0.53","proto":"17","dns":{"version":3,"type":"request","queries":[{"rrname":"Q.Example.","rrtype":"A"}]}}
{"timestamp":"2024-01-01T00:00:00Z","event_type" : "dns","src_ip":"10.0.0.53","dest_ip":"10.0.0.1","proto":"UDP","dns":{"version":2,"type":"answer","rrname":"g.example","grouped":{"A":["192.0.2.9"],"CNAME":["h.example"],"SOA":[{"mname":"x"}]}}}
{"timestamp":"2024-01-01T00:00:00Z","event_type":"dns","src_ip":"10.0.0.53","dest_ip":"10.0.0.1","dns":{"type":"answer"}}
{"timestamp":"2024-01-01T00:00:00Zjunk","event_type":"tls","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","tls":{"sni":"a"}}
{"timestamp":"2024-01-01T00:00:00Z","event_type":"flow","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","proto":"IPv6-ICMP","flow":{"pkts_toserver":"many"}}
{"timestamp":"2024-01-01T00:00:00Z","event_type":"alert","alert":{"signature":1,"broken":
not json at all
{"timestamp":"2024-01-01T00:00:00Z","event_type":"flow","src_ip":"fe80:0000:0000:0000:fada:0cff:fedc:87f1","dest_ip":"ff02::1:2","proto":"IPv6-ICMP","flow":{"start":"2024-01-01T00:00:01.5+01:00"}}
"#;
    let (recs, errs, st) = run(Format::EveJson, data);
    assert_eq!(recs.len(), 4, "{errs:?}");
    assert_eq!(recs[0].names().dns_query.as_deref(), Some("clients.l.google.com"));
    assert_eq!(recs[0].names().dns_answers, vec![ip("172.217.13.110")]);
    assert_eq!(recs[0].ts_micros, 1_530_820_280_213_418);
    assert_eq!(recs[1].names().dns_query.as_deref(), Some("q.example"));
    assert_eq!(recs[1].proto, 17);
    assert_eq!(recs[2].names().dns_answers, vec![ip("192.0.2.9")]);
    assert_eq!(recs[2].names().dns_cnames, vec!["h.example".to_string()]);
    assert_eq!(recs[3].src, Some(ip("fe80::fada:cff:fedc:87f1")));
    assert_eq!((recs[3].proto, recs[3].ts_micros), (58, 1_704_063_601_500_000));
    assert_eq!(errs.iter().map(|e| e.0).collect::<Vec<_>>(), vec![5, 6, 8]);
    assert_eq!(st.skipped, 2, "empty dns event, alert");
}

#[test]
fn aws_vpc() {
    let (recs, errs, st) = run(Format::AwsVpc, VPC);
    assert_eq!(recs.len(), 2);
    let r = &recs[0];
    assert_eq!(
        (r.src, r.dst, r.sport, r.dport, r.proto),
        (Some(ip("172.31.16.139")), Some(ip("198.51.100.23")), 20641, 443, 6)
    );
    assert_eq!((r.pkts, r.bytes), ([20, 0], [4249, 0]));
    assert_eq!((r.ts_micros, r.end_micros), (1_725_451_200_000_000, Some(1_725_451_260_000_000)));
    assert_eq!(recs[1].src, Some(ip("2001:db8::1")));
    assert_eq!(st.skipped, 1, "NODATA");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, 5);
}

#[test]
fn aws_vpc_custom_and_headerless() {
    let custom = "instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr flow-direction\r\n\
                  - eni-1 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5 egress\r\n\
                  i-0 eni-2 10.0.1.5 203.0.113.5 - - ingress extra\r\n";
    let (recs, errs, _) = run(Format::AwsVpc, custom.as_bytes());
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].pkt_dst, Some(ip("203.0.113.5")));
    assert_eq!(recs[0].ts_micros, 0);
    assert_eq!(errs.len(), 1, "field count mismatch");
    let headerless = "2 123456789010 eni-1 10.0.0.1 10.0.0.2 1 2 17 3 4 1725451200 1725451260 ACCEPT OK\n\
                      2 123456789010 eni-1 - - - - - - - 1725451200 1725451260 - SKIPDATA\n";
    let (recs, errs, st) = run(Format::AwsVpc, headerless.as_bytes());
    assert_eq!((recs.len(), errs.len(), st.skipped), (1, 0, 1));
    assert_eq!(recs[0].proto, 17);
    let unknown = "3 eni-3 123 vpc-1 subnet-2 i-0 10.20.33.164 10.40.2.236 39812 80 6 3 IPv4 1 2 ACCEPT OK\n";
    let (recs, errs, _) = run(Format::AwsVpc, unknown.as_bytes());
    assert_eq!((recs.len(), errs.len()), (0, 1));
}

const GCP: &str = r#"{"insertId":"1","jsonPayload":{"connection":{"src_ip":"10.128.0.2","dest_ip":"198.51.100.23","src_port":40000,"dest_port":443,"protocol":6},"start_time":"2024-09-04T12:00:00.123456Z","end_time":"2024-09-04T12:00:05Z","bytes_sent":"1234","packets_sent":"12","reporter":"SRC"},"logName":"projects/p/logs/compute.googleapis.com%2Fvpc_flows","timestamp":"2024-09-04T12:00:06Z"}
{"insertId":"2","jsonPayload":{"connection":{"src_ip":"10.128.0.2","dest_ip":"not-an-ip","protocol":17}},"timestamp":"2024-09-04T12:00:06Z"}
{"insertId":"3","textPayload":"something else"}
"#;

#[test]
fn gcp_json_lines_and_array() {
    let (recs, errs, st) = run(Format::GcpVpcJson, GCP.as_bytes());
    assert_eq!((recs.len(), errs.len(), st.skipped), (1, 1, 1));
    let r = &recs[0];
    assert_eq!(r.ts_micros, 1_725_451_200_123_456);
    assert_eq!(r.end_micros, Some(1_725_451_205_000_000));
    assert_eq!((r.pkts, r.bytes, r.proto, r.dport), ([12, 0], [1234, 0], 6, 443));
    let array = format!("[\n{},\n{}\n]", GCP.lines().next().unwrap(), GCP.lines().nth(2).unwrap());
    let (recs, errs, _) = run(Format::GcpVpcJson, array.as_bytes());
    assert_eq!((recs.len(), errs.len()), (1, 0));
    let (recs, errs, _) = run(Format::GcpVpcJson, b"[{\"jsonPayload\":");
    assert_eq!((recs.len(), errs.len()), (0, 1));
}

const AZURE: &str = r#"{"records":[{"time":"2018-11-13T12:00:35.3899262Z","systemId":"a0fca5ce","category":"NetworkSecurityGroupFlowEvent","operationName":"NetworkSecurityGroupFlowEvents","properties":{"Version":2,"flows":[{"rule":"DefaultRule_DenyAllInBound","flows":[{"mac":"000D3AF87856","flowTuples":["1542110402,94.102.49.190,10.5.16.4,28746,443,U,I,D,B,,,,","1542110424,176.119.4.10,10.5.16.4,56509,59336,T,I,D,E,1,66,2,120","1542110432,167.99.86.8,10.5.16.4,48495,8088,T,I,D,B","bogus"]}]},{"rule":"UserRule_default-allow-rdp","flows":[{"mac":"000D3AF87856","flowTuples":["1542110377,185.170.185.105,10.5.16.4,46925,3389,T,I,A,B,,,,"]}]}]}}]}"#;

#[test]
fn azure_nsg() {
    let (recs, errs, _) = run(Format::AzureNsgJson, AZURE.as_bytes());
    assert_eq!(recs.len(), 4, "{errs:?}");
    assert_eq!(recs[0].proto, 17);
    assert_eq!(recs[0].ts_micros, 1_542_110_402_000_000);
    assert_eq!((recs[1].pkts, recs[1].bytes), ([1, 2], [66, 120]));
    assert_eq!(recs[2].dport, 8088, "v1 tuple");
    assert_eq!(recs[3].line, 5);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, 4);
    // One record per line, and a broken document.
    let lines = "{\"properties\":{\"flows\":[{\"flows\":[{\"flowTuples\":[\"1,10.0.0.1,10.0.0.2,1,2,T,O,A\"]}]}]}}\n{\"records\":[]}\n";
    let (recs, errs, _) = run(Format::AzureNsgJson, lines.as_bytes());
    assert_eq!((recs.len(), errs.len()), (1, 0));
    let (recs, errs, _) = run(Format::AzureNsgJson, &AZURE.as_bytes()[..200]);
    assert_eq!((recs.len(), errs.len()), (0, 1));
}

const NFDUMP: &str = "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,smk,dmk,dtos,dir,nh,nhb,svln,dvln,ismc,odmc,idmc,osmc,mpls1,mpls2,mpls3,mpls4,mpls5,mpls6,mpls7,mpls8,mpls9,mpls10,cl,sl,al,ra,eng,exid,tr
2019-05-07 13:57:02,2019-05-07 13:57:03,1.000,10.0.0.1,198.51.100.23,51000,443,TCP,.AP.SF,0,0,10,1000,8,2000,0,0,0,0,0,0,0,0,0.0.0.0,0.0.0.0,0,0,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0.000,0.000,0.000,0.0.0.0,0/0,1,1970-01-01 00:00:00.000
2019-05-07 13:57:04.250,2019-05-07 13:57:04.250,0.000,2001:db8::1,2001:db8::2,0,8.0,ICMP6,......,0,0,1,64,0,0,0,0,0,0,0,0,0,0,0.0.0.0,0.0.0.0,0,0,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0.000,0.000,0.000,0.0.0.0,0/0,1,1970-01-01 00:00:00.000
2019-05-07 13:57:05,bad
Summary
flows,bytes,packets,avg_bps,avg_pps,avg_bpp
2,1064,11,0,0,96
";

#[test]
fn nfdump_csv() {
    let (recs, errs, _) = run(Format::NfdumpCsv, NFDUMP.as_bytes());
    assert_eq!(recs.len(), 2);
    let r = &recs[0];
    assert_eq!((r.proto, r.pkts, r.bytes, r.sport, r.dport), (6, [10, 8], [1000, 2000], 51000, 443));
    assert_eq!(r.ts_micros, 1_557_237_422_000_000);
    assert_eq!((recs[1].proto, recs[1].dport, recs[1].ts_micros % 1_000_000), (58, 0, 250_000));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, 4);
}

#[test]
fn text_parsers_survive_garbage() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let samples: [&[u8]; 7] = [CONN, EVE, VPC, GCP.as_bytes(), AZURE.as_bytes(), NFDUMP.as_bytes(), b"{\"ts\":1}"];
    let formats = [
        Format::ZeekTsv,
        Format::ZeekJson,
        Format::EveJson,
        Format::AwsVpc,
        Format::GcpVpcJson,
        Format::AzureNsgJson,
        Format::NfdumpCsv,
    ];
    for round in 0..300 {
        let base = samples[round % samples.len()];
        let mut data = base.to_vec();
        for _ in 0..(rnd() % 12) {
            let len = data.len().max(1) as u64;
            let at = (rnd() % len) as usize;
            match rnd() % 3 {
                0 if at < data.len() => data[at] = rnd() as u8,
                1 => data.truncate(at),
                _ => data.insert(at.min(data.len()), b"\t,\n\"{}:-"[(rnd() % 8) as usize]),
            }
        }
        let _ = detect(&data);
        for f in formats {
            parse_text(f, &data, |_| {}, |_, _| {});
        }
    }
}

// ---- NetFlow / IPFIX ----

fn exporter() -> SocketAddr {
    "192.0.2.1:2055".parse().unwrap()
}

fn decode_all(dec: &mut NetflowDecoder, pkt: &[u8]) -> (Result<(), String>, Vec<Record>, Vec<String>) {
    let (mut recs, mut warns) = (Vec::new(), Vec::new());
    let res = dec.decode(exporter(), pkt, 1_700_000_000_000_000, |r| recs.push(r.clone()), |w| warns.push(w));
    (res, recs, warns)
}

fn v5_packet(n: u16) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&5u16.to_be_bytes());
    p.extend_from_slice(&n.to_be_bytes());
    p.extend_from_slice(&10_000u32.to_be_bytes()); // uptime ms
    p.extend_from_slice(&1_725_451_200u32.to_be_bytes());
    p.extend_from_slice(&500_000_000u32.to_be_bytes());
    p.extend_from_slice(&77u32.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    for i in 0..n {
        p.extend_from_slice(&[10, 0, 0, i as u8, 198, 51, 100, 23, 0, 0, 0, 0, 0, 1, 0, 2]);
        p.extend_from_slice(&3u32.to_be_bytes());
        p.extend_from_slice(&300u32.to_be_bytes());
        p.extend_from_slice(&9_000u32.to_be_bytes()); // first
        p.extend_from_slice(&9_500u32.to_be_bytes()); // last
        p.extend_from_slice(&40000u16.to_be_bytes());
        p.extend_from_slice(&443u16.to_be_bytes());
        p.extend_from_slice(&[0, 0x1b, 6, 0, 0, 0, 0, 0, 24, 24, 0, 0]);
    }
    p
}

#[test]
fn netflow_v5() {
    let p = v5_packet(2);
    assert!(NetflowDecoder::looks_like(&p));
    let mut dec = NetflowDecoder::new(16);
    let (res, recs, _) = decode_all(&mut dec, &p);
    res.unwrap();
    assert_eq!(recs.len(), 2);
    let r = &recs[1];
    assert_eq!((r.src, r.dst), (Some(ip("10.0.0.1")), Some(ip("198.51.100.23"))));
    assert_eq!((r.sport, r.dport, r.proto, r.pkts, r.bytes), (40000, 443, 6, [3, 0], [300, 0]));
    // Boot was at 1725451200.5 - 10 s; first = boot + 9 s.
    assert_eq!(r.ts_micros, 1_725_451_199_500_000);
    assert_eq!(r.end_micros, Some(1_725_451_200_000_000));
    assert_eq!((r.exporter, r.sequence), (Some(exporter()), Some(77)));
    // Truncated: the header announces more records than the packet holds.
    let (res, recs, _) = decode_all(&mut dec, &p[..p.len() - 1]);
    assert!(res.is_err());
    assert!(recs.is_empty());
    assert!(!NetflowDecoder::looks_like(&p[..p.len() - 1]));
    let st = dec.stats();
    assert_eq!((st.packets, st.records, st.malformed), (2, 2, 1));
}

/// Builds a v9 packet from flowsets.
fn v9_packet(source_id: u32, sets: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&9u16.to_be_bytes());
    p.extend_from_slice(&(sets.len() as u16).to_be_bytes());
    p.extend_from_slice(&60_000u32.to_be_bytes()); // uptime
    p.extend_from_slice(&1_725_451_200u32.to_be_bytes());
    p.extend_from_slice(&5u32.to_be_bytes());
    p.extend_from_slice(&source_id.to_be_bytes());
    for (id, body) in sets {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
        p.extend_from_slice(body);
    }
    p
}

fn template(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (t, l) in fields {
        b.extend_from_slice(&t.to_be_bytes());
        b.extend_from_slice(&l.to_be_bytes());
    }
    b
}

const V9_FIELDS: &[(u16, u16)] = &[(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4), (22, 4), (21, 4)];

fn v9_record(last_octet: u8) -> Vec<u8> {
    let mut b = vec![10, 0, 0, last_octet, 198, 51, 100, 23];
    b.extend_from_slice(&1234u16.to_be_bytes());
    b.extend_from_slice(&53u16.to_be_bytes());
    b.push(17);
    b.extend_from_slice(&100u32.to_be_bytes());
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&50_000u32.to_be_bytes()); // first: 10 s before export
    b.extend_from_slice(&55_000u32.to_be_bytes());
    b
}

#[test]
fn netflow_v9_templates() {
    let mut dec = NetflowDecoder::new(16);
    // Data before its template: counted and warned once.
    let data = v9_packet(7, &[(300, [v9_record(1), v9_record(2)].concat())]);
    assert!(NetflowDecoder::looks_like(&data));
    for _ in 0..2 {
        let (res, recs, _) = decode_all(&mut dec, &data);
        res.unwrap();
        assert!(recs.is_empty());
    }
    let (_, _, warns) = decode_all(&mut dec, &data);
    assert!(warns.is_empty(), "warned once per key");
    assert_eq!(dec.stats().missing_template_records, 3);
    // Template, options template and data in one packet; data padded to 4 bytes.
    let mut opt = Vec::new();
    opt.extend_from_slice(&400u16.to_be_bytes());
    opt.extend_from_slice(&4u16.to_be_bytes());
    opt.extend_from_slice(&8u16.to_be_bytes());
    opt.extend_from_slice(&[0, 1, 0, 4, 0, 34, 0, 4, 0, 36, 0, 2, 0, 0]);
    let mut body = [v9_record(1), v9_record(2)].concat();
    body.extend_from_slice(&[0, 0]);
    let p = v9_packet(
        7,
        &[(0, template(300, V9_FIELDS)), (1, opt), (300, body), (400, vec![0, 0, 0, 1, 0, 0, 0, 9, 0, 1])],
    );
    let (res, recs, warns) = decode_all(&mut dec, &p);
    res.unwrap();
    assert!(warns.is_empty());
    assert_eq!(recs.len(), 2);
    let r = &recs[0];
    assert_eq!((r.src, r.dport, r.proto, r.pkts, r.bytes), (Some(ip("10.0.0.1")), 53, 17, [1, 0], [100, 0]));
    assert_eq!(r.ts_micros, 1_725_451_190_000_000);
    assert_eq!(r.end_micros, Some(1_725_451_195_000_000));
    assert_eq!(dec.stats().options_records, 1);
    // Another source id does not see the template.
    let (_, recs, warns) = decode_all(&mut dec, &v9_packet(8, &[(300, v9_record(3))]));
    assert!(recs.is_empty());
    assert_eq!(warns.len(), 1);
    // Redefinition replaces: now only the source address (and a zero-length field).
    let p = v9_packet(7, &[(0, template(300, &[(8, 4), (99, 0)])), (300, vec![10, 9, 9, 9])]);
    let (res, recs, _) = decode_all(&mut dec, &p);
    res.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].src, recs[0].dst, recs[0].proto), (Some(ip("10.9.9.9")), None, 0));
    // Reduced-size counters (1 and 8 bytes).
    let p = v9_packet(
        7,
        &[(0, template(301, &[(8, 4), (1, 1), (2, 8)])), (301, vec![10, 0, 0, 1, 200, 0, 0, 0, 0, 0, 0, 1, 0])],
    );
    let (res, recs, _) = decode_all(&mut dec, &p);
    res.unwrap();
    assert_eq!((recs[0].bytes[0], recs[0].pkts[0]), (200, 256));
}

#[test]
fn netflow_v9_malformed() {
    let mut dec = NetflowDecoder::new(16);
    let good = v9_packet(1, &[(0, template(300, V9_FIELDS)), (300, v9_record(1))]);
    let cases: Vec<Vec<u8>> = vec![
        good[..10].to_vec(),             // header truncated
        good[..good.len() - 3].to_vec(), // flowset longer than the packet
        {
            let mut p = good.clone();
            p[22] = 0;
            p[23] = 2; // flowset length 2
            p
        },
        v9_packet(1, &[(0, template(302, &[(8, 4), (12, 4), (7, 2)])[..10].to_vec())]), // template truncated
    ];
    for (i, c) in cases.iter().enumerate() {
        let (res, _, _) = decode_all(&mut dec, c);
        assert!(res.is_err(), "case {i}");
    }
    assert_eq!(dec.stats().malformed, 4);
    // Zero padding after the last flowset is fine.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 64]);
    let (res, recs, _) = decode_all(&mut dec, &padded);
    res.unwrap();
    assert_eq!(recs.len(), 1);
    // A template of only zero-length fields cannot loop forever.
    let p = v9_packet(1, &[(0, template(303, &[(8, 0)])), (303, vec![0; 8])]);
    decode_all(&mut dec, &p).0.unwrap();
}

fn ipfix_packet(domain: u32, sets: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let body: Vec<u8> = sets
        .iter()
        .flat_map(|(id, b)| {
            let mut s = id.to_be_bytes().to_vec();
            s.extend_from_slice(&((b.len() + 4) as u16).to_be_bytes());
            s.extend_from_slice(b);
            s
        })
        .collect();
    let mut p = Vec::new();
    p.extend_from_slice(&10u16.to_be_bytes());
    p.extend_from_slice(&((body.len() + 16) as u16).to_be_bytes());
    p.extend_from_slice(&1_725_451_200u32.to_be_bytes());
    p.extend_from_slice(&9u32.to_be_bytes());
    p.extend_from_slice(&domain.to_be_bytes());
    p.extend_from_slice(&body);
    p
}

#[test]
fn ipfix_templates_varlen_enterprise_withdrawal() {
    let mut dec = NetflowDecoder::new(16);
    // Template 256: IPv6 src/dst, ports, proto, an enterprise field (4 bytes), a variable-length
    // field, octetTotalCount (8 bytes), flowStartMilliseconds, flowEndMilliseconds.
    let mut t = Vec::new();
    t.extend_from_slice(&256u16.to_be_bytes());
    t.extend_from_slice(&10u16.to_be_bytes());
    for (ie, len) in [(27u16, 16u16), (28, 16), (7, 2), (11, 2), (4, 1)] {
        t.extend_from_slice(&ie.to_be_bytes());
        t.extend_from_slice(&len.to_be_bytes());
    }
    t.extend_from_slice(&(0x8000u16 | 100).to_be_bytes());
    t.extend_from_slice(&4u16.to_be_bytes());
    t.extend_from_slice(&29305u32.to_be_bytes());
    t.extend_from_slice(&[0, 96, 0xff, 0xff]); // applicationName, variable
    t.extend_from_slice(&[0, 85, 0, 8, 0, 152, 0, 8, 0, 153, 0, 8]);
    let rec = |name: &[u8], long: bool| {
        let mut r = Vec::new();
        r.extend_from_slice(&ip6("2001:db8::1"));
        r.extend_from_slice(&ip6("2001:db8::2"));
        r.extend_from_slice(&[0x9c, 0x40, 1, 0xbb, 6, 1, 2, 3, 4]);
        if long {
            r.push(255);
            r.extend_from_slice(&(name.len() as u16).to_be_bytes());
        } else {
            r.push(name.len() as u8);
        }
        r.extend_from_slice(name);
        r.extend_from_slice(&5000u64.to_be_bytes());
        r.extend_from_slice(&1_725_451_100_250u64.to_be_bytes());
        r.extend_from_slice(&1_725_451_101_000u64.to_be_bytes());
        r
    };
    let data = [rec(b"https", false), rec(&[b'x'; 300], true), rec(b"", false)].concat();
    let p = ipfix_packet(3, &[(2, t.clone()), (256, data.clone())]);
    assert!(NetflowDecoder::looks_like(&p));
    let (res, recs, _) = decode_all(&mut dec, &p);
    res.unwrap();
    assert_eq!(recs.len(), 3);
    let r = &recs[1];
    assert_eq!((r.src, r.dst), (Some(ip("2001:db8::1")), Some(ip("2001:db8::2"))));
    assert_eq!((r.sport, r.dport, r.proto, r.bytes), (40000, 443, 6, [5000, 0]));
    assert_eq!((r.ts_micros, r.end_micros), (1_725_451_100_250_000, Some(1_725_451_101_000_000)));
    // Variable-length field running past the set: error, records before it delivered.
    let mut last = rec(b"https", false);
    last[41] = 255; // variable length 0xffff follows
    last.splice(42..42, [0xff, 0xff]);
    let bad = [rec(b"a", false), rec(b"b", false), last].concat();
    let (res, recs, _) = decode_all(&mut dec, &ipfix_packet(3, &[(256, bad)]));
    assert!(res.is_err());
    assert_eq!(recs.len(), 2);
    // Another observation domain does not share templates.
    let (_, recs, warns) = decode_all(&mut dec, &ipfix_packet(4, &[(256, data.clone())]));
    assert_eq!((recs.len(), warns.len()), (0, 1));
    // Withdrawal (field count 0), then data is missing its template again.
    let (res, _, _) = decode_all(&mut dec, &ipfix_packet(3, &[(2, vec![1, 0, 0, 0])]));
    res.unwrap();
    let (_, recs, warns) = decode_all(&mut dec, &ipfix_packet(3, &[(256, data.clone())]));
    assert_eq!((recs.len(), warns.len()), (0, 1));
    // Re-add, then withdraw all (template id 2).
    decode_all(&mut dec, &ipfix_packet(3, &[(2, t.clone())])).0.unwrap();
    assert_eq!(decode_all(&mut dec, &ipfix_packet(3, &[(256, data.clone())])).1.len(), 3);
    decode_all(&mut dec, &ipfix_packet(3, &[(2, vec![0, 2, 0, 0])])).0.unwrap();
    assert_eq!(decode_all(&mut dec, &ipfix_packet(3, &[(256, data)])).1.len(), 0);
    // Options template (set 3) with its data skipped.
    let opt = vec![1, 4, 0, 2, 0, 1, 0, 149, 0, 4, 0, 41, 0, 8];
    let p = ipfix_packet(3, &[(3, opt), (260, vec![0; 12])]);
    decode_all(&mut dec, &p).0.unwrap();
    assert_eq!(dec.stats().options_records, 1);
    // Message length beyond the packet, enterprise number truncated.
    let p = ipfix_packet(3, &[(2, t.clone())]);
    assert!(decode_all(&mut dec, &p[..p.len() - 4]).0.is_err());
    let mut q = ipfix_packet(3, &[(2, t[..26].to_vec())]);
    q.truncate(q.len());
    assert!(decode_all(&mut dec, &q).0.is_err());
}

fn ip6(s: &str) -> [u8; 16] {
    match ip(s) {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(_) => unreachable!(),
    }
}

#[test]
fn template_cache_is_bounded() {
    let mut dec = NetflowDecoder::new(4);
    for id in 256..266u16 {
        let p = v9_packet(1, &[(0, template(id, V9_FIELDS))]);
        decode_all(&mut dec, &p).0.unwrap();
    }
    let st = dec.stats();
    assert_eq!((st.templates, st.template_evictions), (4, 6));
    // The newest survive, the oldest are gone.
    assert_eq!(decode_all(&mut dec, &v9_packet(1, &[(265, v9_record(1))])).1.len(), 1);
    assert_eq!(decode_all(&mut dec, &v9_packet(1, &[(256, v9_record(1))])).1.len(), 0);
    // Refreshing the same template many times does not grow anything.
    for _ in 0..1000 {
        decode_all(&mut dec, &v9_packet(1, &[(0, template(265, V9_FIELDS))])).0.unwrap();
    }
    assert_eq!(dec.stats().templates, 4);
}

#[test]
fn netflow_random_bytes_never_panic() {
    let mut dec = NetflowDecoder::new(8);
    let mut seed = 0xdead_beef_cafe_f00du64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let seeds = [
        v5_packet(3),
        v9_packet(1, &[(0, template(300, V9_FIELDS)), (300, v9_record(1))]),
        ipfix_packet(
            1,
            &[(2, template(256, &[(8, 4), (96, 0xffff), (12, 4)])), (256, vec![1, 2, 3, 4, 2, b'a', b'b', 5, 6, 7, 8])],
        ),
    ];
    for i in 0..20_000 {
        let mut p = if i % 4 == 0 {
            (0..(rnd() % 200)).map(|_| rnd() as u8).collect::<Vec<u8>>()
        } else {
            seeds[i % seeds.len()].clone()
        };
        for _ in 0..(rnd() % 6) {
            if p.is_empty() {
                break;
            }
            let at = (rnd() % p.len() as u64) as usize;
            if rnd() % 5 == 0 {
                p.truncate(at);
            } else {
                p[at] = rnd() as u8;
            }
        }
        let _ = NetflowDecoder::looks_like(&p);
        let _ = dec.decode(exporter(), &p, 0, |_| {}, |_| {});
    }
    assert_eq!(dec.stats().packets, 20_000);
    assert!(dec.stats().templates <= 8);
}

/// The one-pass epoch parser agrees with the plain definition (split at the dot, whole seconds,
/// then up to six digits of fraction) on typical, odd and random values.
#[test]
fn epoch_micros_agrees_with_the_definition() {
    fn reference(s: &str) -> Option<i64> {
        let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let secs = if int.is_empty() && !frac.is_empty() { 0 } else { parse_u64(int)? };
        let mut micros: i64 = 0;
        let mut scale = 100_000;
        for c in frac.bytes() {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            micros += d as i64 * scale;
            scale /= 10;
        }
        let v = i64::try_from(secs).ok()?.checked_mul(1_000_000)?.checked_add(micros)?;
        Some(if neg { -v } else { v })
    }
    let fixed = [
        "1546981792.481978",
        "1546981792.4819789999",
        "-1.5",
        ".5",
        "5.",
        ".",
        "",
        "-",
        "-.",
        "1e9",
        "1.2.3",
        "9223372036854.775807",
        "9223372036854.775808",
        "18446744073709551615",
        "18446744073709551616",
        "000000000000000000001",
        "0.000001",
        "1.123456",
        "1.999999",
        ".000001",
        "1.12345x",
        "1.1234.6",
        "1.-23456",
        "1725451200.010000",
        " 1.0",
        "1.0 ",
        "+1",
    ];
    for s in fixed {
        assert_eq!(parse_epoch_micros(s), reference(s), "{s:?}");
    }
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut checked_random = 0;
    for _ in 0..200_000 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let len = (x >> 59) as usize;
        let s: String = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b"0123456789012345678.-e "[(x % 23) as usize] as char
            })
            .collect();
        assert_eq!(parse_epoch_micros(&s), reference(&s), "{s:?}");
        checked_random += usize::from(reference(&s).is_some());
    }
    assert!(checked_random > 10_000, "only {checked_random} random values were valid");
}

/// The fixed-shape reader of EVE times gives the general reader's answer wherever it gives
/// one, and gives one for every valid time of that shape.
#[test]
fn fixed_shape_times_agree_with_the_general_reader() {
    let mut rng = crate::synth::XorShift(0x5851_f42d_4c95_7f2d);
    let mut next = |n: u64| rng.below(n);
    let mut fixed = 0;
    for _ in 0..200_000 {
        let zone = match next(5) {
            0 => "Z".to_string(),
            1 => "+0000".to_string(),
            2 => String::new(),
            _ => format!("{}{:02}{:02}", if next(2) == 0 { '+' } else { '-' }, next(25), next(61)),
        };
        let sep = if next(2) == 0 { 'T' } else { ' ' };
        let frac = if next(2) == 0 { format!("{:06}", next(1_000_000)) } else { format!("{:03}", next(1_000)) };
        let mut t = format!(
            "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}.{frac}{zone}",
            1960 + next(100),
            next(14),
            next(33),
            next(25),
            next(61),
            next(62),
        );
        let changed = next(4) == 0;
        if changed {
            // One byte changed: a digit, a separator or a letter.
            let at = next(t.len() as u64) as usize;
            let c = b"09-:.TZ+ xt5"[next(12) as usize] as char;
            t.replace_range(at..at + 1, &c.to_string());
        }
        let general = parse_iso_micros_any(&t);
        match crate::time::parse_fixed_micros(t.as_bytes()) {
            Some(v) => {
                fixed += 1;
                assert_eq!(Some(v), general, "{t}");
            }
            None => assert!(changed || general.is_none(), "a valid time of the fixed shape was not read: {t}"),
        }
        assert_eq!(parse_iso_micros(&t), general, "{t}");
    }
    assert!(fixed > 50_000, "only {fixed} times took the fixed path");
}

/// Zeek TSV checks UTF-8 only in the columns it reads: a corrupt byte in an ignored column
/// does not cost the record, and one in a column it reads is reported as not UTF-8.
#[test]
fn zeek_tsv_checks_utf8_only_where_it_reads() {
    let mut data = b"#fields\tts\tid.orig_h\thistory\tid.resp_h\tproto\n".to_vec();
    data.extend_from_slice(b"1.0\t10.0.0.1\tSh\xffAD\t10.0.0.2\ttcp\n");
    data.extend_from_slice(b"2.0\t10.0.0.1\tShAD\t10.0.0.2\ttcp\xff\n");
    data.extend_from_slice(b"#path\tconn\xff\n");
    let (recs, errs, st) = run(Format::ZeekTsv, &data);
    assert_eq!(recs.len(), 1, "{errs:?}");
    assert_eq!(recs[0].line, 2);
    assert_eq!(errs.iter().map(|e| e.0).collect::<Vec<_>>(), vec![3, 4]);
    assert!(errs.iter().all(|e| e.1.contains("UTF-8")), "{errs:?}");
    assert_eq!(st.errors, 2);
}
