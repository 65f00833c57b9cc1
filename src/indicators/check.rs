//! Findings about a set before it is deployed: indicators that would flood analysts with false
//! positives, duplicates, and rows that contradict themselves.
//!
//! An advisory that lists `8.8.8.8` (a resolver the malware used), `10.0.0.0/8` (an internal
//! pivot) or `softether.net` (the dynamic-DNS service, not the actor's subdomain) would flag
//! half the network. Those are warnings, not errors: the operator decides.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{Diagnostic, IndicatorSet, Kind, Severity};
use crate::matcher::Matcher;

/// Well-known public resolvers: contacting them is normal.
const PUBLIC_RESOLVERS: &[&str] = &[
    "8.8.8.8",
    "8.8.4.4",
    "1.1.1.1",
    "1.0.0.1",
    "9.9.9.9",
    "149.112.112.112",
    "208.67.222.222",
    "208.67.220.220",
    "114.114.114.114",
    "223.5.5.5",
    "223.6.6.6",
    "119.29.29.29",
    "180.76.76.76",
    "94.140.14.14",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
    "2606:4700:4700::1111",
    "2606:4700:4700::1001",
    "2620:fe::fe",
];

/// Parents shared by many unrelated customers (dynamic DNS, hosting platforms). Many are in
/// the Public Suffix List's private section too; this list covers those that are not.
const SHARED_PARENTS: &[&str] = &[
    "softether.net",
    "ddns.net",
    "no-ip.com",
    "no-ip.org",
    "noip.com",
    "duckdns.org",
    "dyndns.org",
    "dynu.com",
    "changeip.com",
    "3322.org",
    "oray.com",
    "github.io",
    "githubusercontent.com",
    "herokuapp.com",
    "azurewebsites.net",
    "cloudfront.net",
    "amazonaws.com",
    "blogspot.com",
    "workers.dev",
    "pages.dev",
    "ngrok.io",
    "ngrok-free.app",
    "vercel.app",
    "netlify.app",
    "firebaseapp.com",
    "web.app",
    "appspot.com",
    "trycloudflare.com",
    "sharepoint.com",
    "onedrive.live.com",
    "dropbox.com",
    "googleusercontent.com",
];

/// Why an address would flag ordinary traffic, if it would.
pub fn risky_address(ip: IpAddr) -> Option<&'static str> {
    let s = ip.to_string();
    if PUBLIC_RESOLVERS.contains(&s.as_str()) {
        return Some("a well-known public DNS resolver");
    }
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            if a.is_private() {
                Some("a private (RFC 1918) address")
            } else if a.is_loopback() {
                Some("a loopback address")
            } else if a.is_link_local() {
                Some("a link-local address")
            } else if a.is_multicast() {
                Some("a multicast address")
            } else if a.is_documentation() {
                Some("a documentation address (RFC 5737)")
            } else if a.is_unspecified() || a.is_broadcast() || o[0] == 0 || o[0] >= 240 {
                Some("a reserved address")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("a carrier-grade NAT address (RFC 6598)")
            } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
                Some("a benchmarking address (RFC 2544)")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            let seg = a.segments();
            if a.is_loopback() || a.is_unspecified() {
                Some("a loopback or unspecified address")
            } else if a.is_multicast() {
                Some("a multicast address")
            } else if (seg[0] & 0xffc0) == 0xfe80 {
                Some("a link-local address")
            } else if (seg[0] & 0xfe00) == 0xfc00 {
                Some("a unique-local (private) address")
            } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
                Some("a documentation address (RFC 3849)")
            } else {
                None
            }
        }
    }
}

/// Why a domain would flag ordinary traffic, if it would.
pub fn risky_domain(name: &str) -> Option<String> {
    if SHARED_PARENTS.contains(&name) {
        return Some("a shared platform's parent domain: every customer's subdomain would match".into());
    }
    match psl::suffix(name.as_bytes()) {
        Some(sfx) if sfx.as_bytes() == name.as_bytes() => Some(if sfx.is_known() {
            "a public suffix: every domain under it would match".into()
        } else {
            "a top-level name with no registrable part".into()
        }),
        _ => None,
    }
}

/// Adds findings about `set` to its diagnostics. With an allowlist, indicators that it covers
/// are reported as never matching.
pub fn check(set: &mut IndicatorSet, allow: Option<&Matcher>) {
    let mut found: Vec<Diagnostic> = Vec::new();
    // Rows repeating a value with other dates or roles are facts worth keeping; only a row
    // identical in every fact is a duplicate.
    let mut seen: HashMap<(Kind, &str, Option<u16>, u32, u32), u32> = HashMap::new();
    let mut push = |ind: &super::Indicator, set: &IndicatorSet, severity: Severity, msg: String| {
        found.push(Diagnostic {
            severity,
            file: set.provenance(ind).file.as_str().into(),
            location: Some(ind.line.to_string()),
            message: msg,
        })
    };
    for ind in &set.indicators {
        let v = &*ind.value;
        if let Some(first) = seen.insert((ind.kind, v, ind.port, ind.source, ind.meta), ind.line) {
            push(ind, set, Severity::Warning, format!("{v} is listed again (first at line {first})"));
        }
        match ind.kind {
            Kind::Ipv4 | Kind::Ipv6 => {
                if let Some(why) = v.parse().ok().and_then(risky_address) {
                    push(ind, set, Severity::Warning, format!("{v} is {why}: it would flag ordinary traffic"));
                }
            }
            Kind::Cidr => {
                if let Ok(net) = v.parse::<IpNet>() {
                    let broad = match net {
                        IpNet::V4(n) => n.prefix_len() < 16,
                        IpNet::V6(n) => n.prefix_len() < 32,
                    };
                    if broad {
                        push(
                            ind,
                            set,
                            Severity::Warning,
                            format!(
                                "{v} is a very broad network ({} addresses or more)",
                                if net.addr().is_ipv4() { "65,536" } else { "2^96" }
                            ),
                        );
                    }
                    if let Some(why) = risky_address(net.network()).or_else(|| risky_address(net.broadcast())) {
                        push(
                            ind,
                            set,
                            Severity::Warning,
                            format!("{v} contains {why}: it would flag ordinary traffic"),
                        );
                    }
                }
            }
            Kind::Domain => {
                if let Some(why) = risky_domain(v) {
                    push(ind, set, Severity::Warning, format!("{v} is {why}"));
                }
            }
            _ => {}
        }
        let meta = set.meta(ind);
        if let (Some(f), Some(l)) = (meta.first_seen, meta.last_seen) {
            if f > l {
                push(ind, set, Severity::Warning, format!("{v}: first_seen is after last_seen (conflicting dates)"));
            }
        }
        if let Some(al) = allow {
            let mut allowed = false;
            match ind.kind {
                Kind::Ipv4 | Kind::Ipv6 => {
                    if let Ok(ip) = v.parse() {
                        al.lookup_ip(ip, ind.port.unwrap_or(0), &mut |_| allowed = true)
                    }
                }
                Kind::Cidr => {
                    if let Ok(net) = v.parse::<IpNet>() {
                        al.lookup_ip(net.network(), 0, &mut |_| allowed = true)
                    }
                }
                Kind::Domain => al.lookup_domain(v, &mut |_| allowed = true),
                _ => {}
            }
            if allowed {
                push(ind, set, Severity::Warning, format!("{v} is covered by the allowlist: it will not match"));
            }
        }
    }
    set.diagnostics.extend(found);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::{plain, Provenance};
    use std::sync::Arc;

    fn findings(text: &str) -> Vec<String> {
        let mut set = IndicatorSet::new();
        let prov = Provenance { file: "l.txt".into(), ..Default::default() };
        plain::load(text, &Arc::from("l.txt"), prov, &mut set);
        check(&mut set, None);
        set.diagnostics.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn flags_false_positive_magnets() {
        let f = findings("10.1.2.3\n8.8.8.8\n127.0.0.1\n224.0.0.1\n192.0.2.1\n0.0.0.0/0\nsoftether.net\nddns.net\ngithub.io\ncom.cn\nco.uk\nasljkdqhkhasdq.softether.net\n203.0.114.1\nfe80::1\n");
        let joined = f.join("\n");
        for needle in [
            "l.txt:1: 10.1.2.3 is a private",
            "l.txt:2: 8.8.8.8 is a well-known public DNS resolver",
            "l.txt:3: 127.0.0.1 is a loopback",
            "l.txt:4: 224.0.0.1 is a multicast",
            "l.txt:5: 192.0.2.1 is a documentation",
            "l.txt:6: 0.0.0.0/0 is a very broad network",
            "l.txt:7: softether.net is a shared platform",
            "l.txt:8: ddns.net is a shared platform",
            "l.txt:9: github.io is",
            "l.txt:10: com.cn is a public suffix",
            "l.txt:11: co.uk is a public suffix",
            "l.txt:14: fe80::1 is a link-local",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in\n{joined}");
        }
        assert!(!joined.contains("asljkdqhkhasdq"), "{joined}");
        assert!(!joined.contains("203.0.114.1"), "{joined}");
        assert!(f.iter().all(|l| l.starts_with("warning: ")));
    }

    #[test]
    fn duplicates_and_allowlisted() {
        let mut set = IndicatorSet::new();
        let prov = Provenance { file: "l.txt".into(), ..Default::default() };
        plain::load("5.6.7.8\n5.6.7.8\nevil.example\n", &Arc::from("l.txt"), prov, &mut set);
        let mut allow = IndicatorSet::new();
        plain::load("evil.example\n", &Arc::from("a"), Provenance::default(), &mut allow);
        let allow = Matcher::new(allow);
        check(&mut set, Some(&allow));
        let joined: Vec<String> = set.diagnostics.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            joined,
            [
                "warning: l.txt:2: 5.6.7.8 is listed again (first at line 1)",
                "warning: l.txt:3: evil.example is covered by the allowlist: it will not match"
            ]
        );
    }
}
