//! Writing a loaded set for the sensors a SOC already runs: our CSV, a Zeek intel file,
//! Suricata (IP reputation + datasets + rules), and a STIX 2.1 bundle.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use super::{Indicator, IndicatorSet, Kind};
use crate::time::format_compact;

/// The value as a user writes it: addresses with their port, `[v6]:port`.
pub fn display_value(ind: &Indicator) -> String {
    match (ind.kind, ind.port) {
        (Kind::Ipv6, Some(p)) => format!("[{}]:{p}", ind.value),
        (_, Some(p)) => format!("{}:{p}", ind.value),
        _ => ind.value.to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The project's CSV format, with every row fact and the set name.
pub fn to_csv(set: &IndicatorSet, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "indicator,type,first_seen,last_seen,role,confidence,valid_from,valid_until,tags,match,set")?;
    let d = |t: Option<i64>| t.map(format_compact).unwrap_or_default();
    for ind in &set.indicators {
        let m = set.meta(ind);
        let tags: Vec<&str> = m.tags.iter().map(|t| &**t).collect();
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&display_value(ind)),
            ind.kind,
            d(m.first_seen),
            d(m.last_seen),
            csv_field(m.role.as_deref().unwrap_or("")),
            csv_field(m.confidence.as_deref().unwrap_or("")),
            d(m.valid_from),
            d(m.valid_until),
            csv_field(&tags.join(";")),
            if ind.exact { "exact" } else { "" },
            csv_field(&set.provenance(ind).set),
        )?;
    }
    Ok(())
}

fn zeek_field(s: &str) -> String {
    if s.is_empty() {
        return "-".into();
    }
    s.replace(['\t', '\n'], " ")
}

/// A Zeek intel file. Zeek matches domains exactly (no subdomains) and has no JA3/JA4 or
/// SHA-256 certificate type: those rows are left out and counted in the return value.
pub fn to_zeek(set: &IndicatorSet, out: &mut dyn Write) -> io::Result<usize> {
    writeln!(out, "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url\tmeta.first_seen\tmeta.last_seen\tmeta.confidence")?;
    let mut left_out = 0;
    for ind in &set.indicators {
        let ty = match ind.kind {
            Kind::Ipv4 | Kind::Ipv6 => "Intel::ADDR",
            Kind::Cidr => "Intel::SUBNET",
            Kind::Domain => "Intel::DOMAIN",
            Kind::Url => "Intel::URL",
            Kind::Sha1Cert => "Intel::CERT_HASH",
            _ => {
                left_out += 1;
                continue;
            }
        };
        let p = set.provenance(ind);
        let m = set.meta(ind);
        let d = |t: Option<i64>| t.map(format_compact).unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{}\t{ty}\t{}\t{}\t{}\t{}\t{}\t{}",
            ind.value,
            zeek_field(&p.set),
            zeek_field(m.role.as_deref().unwrap_or(&p.title)),
            zeek_field(p.url.as_deref().unwrap_or("")),
            d(m.first_seen),
            d(m.last_seen),
            zeek_field(m.confidence.as_deref().unwrap_or("")),
        )?;
    }
    Ok(left_out)
}

fn confidence_score(c: Option<&str>) -> u8 {
    match c {
        Some("high") => 85,
        Some("medium") => 50,
        Some("low") => 15,
        Some(n) => n.parse().unwrap_or(50),
        None => 50,
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Suricata 7: `iocmatch.rules`, IP reputation (`iocmatch-categories.txt`, `iocmatch.iprep`)
/// and string datasets (`iocmatch-domains.lst`, `iocmatch-certs.lst`, `iocmatch-ja3.lst`)
/// written into `dir`. Suricata 7 datasets match names exactly: subdomains of a listed domain
/// are not flagged there (iocmatch flags them).
pub fn to_suricata(set: &IndicatorSet, dir: &Path) -> io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut iprep = String::new();
    let mut domains = String::new();
    let mut certs = String::new();
    let mut ja3 = String::new();
    let mut seen = std::collections::HashSet::new();
    for ind in &set.indicators {
        if !seen.insert((ind.kind, ind.value.clone())) {
            continue;
        }
        let score = confidence_score(set.meta(ind).confidence.as_deref()).clamp(1, 127);
        match ind.kind {
            Kind::Ipv4 | Kind::Ipv6 | Kind::Cidr => {
                let _ = writeln!(iprep, "{},1,{score}", ind.value);
            }
            Kind::Domain => {
                let _ = writeln!(domains, "{}", base64(ind.value.as_bytes()));
            }
            Kind::Sha1Cert => {
                let colon: Vec<String> =
                    ind.value.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
                let _ = writeln!(certs, "{}", base64(colon.join(":").as_bytes()));
            }
            Kind::Ja3 => {
                let _ = writeln!(ja3, "{}", ind.value);
            }
            _ => {}
        }
    }
    let rules = "\
# iocmatch export. Load with: reputation-categories-file: iocmatch-categories.txt,
# reputation-files: [iocmatch.iprep]; datasets are loaded by the rules themselves.
alert ip any any -> any any (msg:\"iocmatch: traffic to advisory address\"; iprep:dst,iocmatch,>,0; sid:9710001; rev:1;)
alert ip any any -> any any (msg:\"iocmatch: traffic from advisory address\"; iprep:src,iocmatch,>,0; sid:9710002; rev:1;)
alert dns any any -> any any (msg:\"iocmatch: DNS query for advisory domain\"; dns.query; dataset:isset,iocmatch-domains,type string,load iocmatch-domains.lst; sid:9710003; rev:1;)
alert tls any any -> any any (msg:\"iocmatch: TLS SNI of advisory domain\"; tls.sni; dataset:isset,iocmatch-domains,type string,load iocmatch-domains.lst; sid:9710004; rev:1;)
alert http any any -> any any (msg:\"iocmatch: HTTP Host of advisory domain\"; http.host; dataset:isset,iocmatch-domains,type string,load iocmatch-domains.lst; sid:9710005; rev:1;)
alert tls any any -> any any (msg:\"iocmatch: TLS certificate of advisory server\"; tls.cert_fingerprint; dataset:isset,iocmatch-certs,type string,load iocmatch-certs.lst; sid:9710006; rev:1;)
alert tls any any -> any any (msg:\"iocmatch: JA3 of advisory client\"; ja3.hash; dataset:isset,iocmatch-ja3,type md5,load iocmatch-ja3.lst; sid:9710007; rev:1;)
";
    let files = [
        ("iocmatch.rules", rules.to_string()),
        ("iocmatch-categories.txt", "1,iocmatch,Advisory infrastructure (iocmatch export)\n".to_string()),
        ("iocmatch.iprep", iprep),
        ("iocmatch-domains.lst", domains),
        ("iocmatch-certs.lst", certs),
        ("iocmatch-ja3.lst", ja3),
    ];
    let mut written = Vec::new();
    for (name, body) in files {
        std::fs::write(dir.join(name), body)?;
        written.push(dir.join(name).display().to_string());
    }
    Ok(written)
}

fn stix_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// A STIX 2.1 bundle: one `indicator` per row, ids derived from the content so repeated
/// exports of the same set are identical.
pub fn to_stix(set: &IndicatorSet, out: &mut dyn Write) -> io::Result<()> {
    use serde_json::json;
    let now = crate::time::now();
    let mut objects = Vec::new();
    for (n, ind) in set.indicators.iter().enumerate() {
        let v = stix_escape(&ind.value);
        let pattern = match ind.kind {
            Kind::Ipv4 if ind.port.is_some() => format!("[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '{v}' AND network-traffic:dst_port = {}]", ind.port.unwrap_or(0)),
            Kind::Ipv6 if ind.port.is_some() => format!("[network-traffic:dst_ref.type = 'ipv6-addr' AND network-traffic:dst_ref.value = '{v}' AND network-traffic:dst_port = {}]", ind.port.unwrap_or(0)),
            Kind::Ipv4 => format!("[ipv4-addr:value = '{v}']"),
            Kind::Ipv6 => format!("[ipv6-addr:value = '{v}']"),
            Kind::Cidr if ind.value.contains(':') => format!("[ipv6-addr:value ISSUBSET '{v}']"),
            Kind::Cidr => format!("[ipv4-addr:value ISSUBSET '{v}']"),
            Kind::Domain => format!("[domain-name:value = '{v}']"),
            Kind::Url => format!("[url:value = 'http://{v}']"),
            Kind::Sha1Cert => format!("[x509-certificate:hashes.'SHA-1' = '{v}']"),
            Kind::Sha256Cert => format!("[x509-certificate:hashes.'SHA-256' = '{v}']"),
            Kind::Ja3 | Kind::Ja4 => continue,
        };
        let p = set.provenance(ind);
        let m = set.meta(ind);
        let h = foldhash_id(&format!("{}|{}|{}|{}", p.set, ind.value, n, m.role.as_deref().unwrap_or("")));
        let ts = |t: i64| {
            let mut s = String::new();
            crate::time::format_micros(t, 0, &mut s);
            s.replace(".000000Z", "Z")
        };
        let mut o = json!({
            "type": "indicator",
            "spec_version": "2.1",
            "id": format!("indicator--{h}"),
            "created": ts(now),
            "modified": ts(now),
            "pattern": pattern,
            "pattern_type": "stix",
            "valid_from": ts(m.valid_from.or(m.first_seen).unwrap_or(0)),
            "indicator_types": ["malicious-activity"],
            "confidence": confidence_score(m.confidence.as_deref()),
        });
        if let Some(u) = m.valid_until {
            o["valid_until"] = json!(ts(u));
        }
        if let Some(r) = &m.role {
            o["name"] = json!(r.as_ref());
        }
        if !p.title.is_empty() {
            o["description"] =
                json!(format!("{} ({}, {})", p.title, p.publisher, p.date.as_deref().unwrap_or("undated")));
        }
        if let Some(url) = &p.url {
            o["external_references"] = json!([{"source_name": p.publisher, "url": url}]);
        }
        objects.push(o);
    }
    let bundle = json!({"type": "bundle", "id": format!("bundle--{}", foldhash_id(&format!("{}", objects.len()))), "objects": objects});
    serde_json::to_writer_pretty(&mut *out, &bundle)?;
    writeln!(out)
}

/// A deterministic UUID-shaped id from text.
fn foldhash_id(s: &str) -> String {
    use std::hash::BuildHasher;
    let a = foldhash::fast::FixedState::with_seed(1).hash_one(s);
    let b = foldhash::fast::FixedState::with_seed(2).hash_one(s);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::{csv, embedded, Provenance};
    use std::sync::Arc;

    fn rows(set: &IndicatorSet) -> Vec<String> {
        let mut v: Vec<String> = set
            .indicators
            .iter()
            .map(|i| {
                let m = set.meta(i);
                format!(
                    "{}|{}|{:?}|{:?}|{:?}|{:?}|{}",
                    display_value(i),
                    i.kind,
                    m.first_seen,
                    m.last_seen,
                    m.role,
                    m.confidence,
                    i.exact
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn csv_round_trip_keeps_every_fact() {
        let mut set = IndicatorSet::new();
        embedded::load_into(&mut set);
        csv::load(
            "indicator,type,match\n1.2.3.4:443,ipv4,\nexact.example,domain,exact\n",
            &Arc::from("x"),
            Provenance::default(),
            &mut set,
        );
        let mut out = Vec::new();
        to_csv(&set, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("indicator,type,"));
        let mut back = IndicatorSet::new();
        csv::load(&text, &Arc::from("y"), Provenance::default(), &mut back);
        assert_eq!(back.errors(), 0, "{:?}", back.diagnostics);
        assert_eq!(rows(&set), rows(&back));
    }

    #[test]
    fn zeek_and_suricata_exports_are_well_formed() {
        let mut set = IndicatorSet::new();
        embedded::load_into(&mut set);
        let mut out = Vec::new();
        let left = to_zeek(&set, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(left, 3, "three sha256 certificates have no Zeek type");
        assert!(text.lines().skip(1).all(|l| l.split('\t').count() == 8));
        assert!(text.contains("w8510.com\tIntel::DOMAIN\tprc-botnet-csa-2024-09-18\t"));
        let dir = tempfile::tempdir().unwrap();
        to_suricata(&set, dir.path()).unwrap();
        let iprep = std::fs::read_to_string(dir.path().join("iocmatch.iprep")).unwrap();
        assert!(iprep.contains("114.255.70.20,1,85"));
        let doms = std::fs::read_to_string(dir.path().join("iocmatch-domains.lst")).unwrap();
        assert!(doms.lines().any(|l| l == base64(b"w8510.com")));
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
