//! Alerts out: EVE JSON lines (default), a Zeek `intel.log`, or CSV; and the human summary.

pub mod alert;
mod eve;
pub mod evidence;
pub mod summary;
pub mod syslog;

use std::io::{self, Write};

pub use alert::{Alert, Field, FlowEvent};

/// Output formats of `scan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Suricata EVE-compatible JSON lines (alerts, and flow events for flagged connections).
    Eve,
    /// A Zeek intel.log (TSV with its header), for Zeek-based pipelines.
    Zeek,
    /// One CSV row per alert with the provenance columns.
    Csv,
}

/// Writes alerts in one format. Whole lines only reach the underlying writer, so an
/// interrupted run leaves complete records behind.
pub struct Writer {
    format: Format,
    out: Box<dyn Write + Send>,
    buf: Vec<u8>,
    header_done: bool,
}

const FLUSH_AT: usize = 1 << 16;

impl Writer {
    pub fn new(format: Format, out: Box<dyn Write + Send>) -> Writer {
        Writer { format, out, buf: Vec::with_capacity(FLUSH_AT * 2), header_done: false }
    }

    fn header(&mut self) {
        if self.header_done {
            return;
        }
        self.header_done = true;
        match self.format {
            Format::Eve => {}
            Format::Zeek => {
                let mut open = String::new();
                crate::time::format_micros(crate::time::now(), 0, &mut open);
                let _ = write!(
                    self.buf,
                    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tintel\n#open\t{}\n\
                     #fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tseen.indicator\tseen.indicator_type\tseen.where\tseen.node\tmatched\tsources\tfuid\tfile_mime_type\tfile_desc\n\
                     #types\ttime\tstring\taddr\tport\taddr\tport\tstring\tenum\tenum\tstring\tset[enum]\tset[string]\tstring\tstring\tstring\n",
                    &open[..19]
                );
            }
            Format::Csv => {
                self.buf.extend_from_slice(b"timestamp,src_ip,src_port,dest_ip,dest_port,proto,field,value,indicator,type,set,title,publisher,date,role,confidence,first_seen,last_seen,activity,resolved_from,file,packet\n");
            }
        }
    }

    /// Writes one alert.
    pub fn alert(&mut self, a: &Alert) -> io::Result<()> {
        self.header();
        match self.format {
            Format::Eve => {
                eve::alert(&mut self.buf, a);
                self.buf.push(b'\n');
            }
            Format::Zeek => {
                let m = &a.matched;
                let ty = match m.kind {
                    crate::indicators::Kind::Ipv4 | crate::indicators::Kind::Ipv6 | crate::indicators::Kind::Cidr => {
                        if matches!(m.field, Field::DnsQuery | Field::TlsSni | Field::HttpHost) {
                            "Intel::DOMAIN"
                        } else {
                            "Intel::ADDR"
                        }
                    }
                    crate::indicators::Kind::Domain => "Intel::DOMAIN",
                    crate::indicators::Kind::Url => "Intel::URL",
                    crate::indicators::Kind::Sha1Cert | crate::indicators::Kind::Sha256Cert => "Intel::CERT_HASH",
                    crate::indicators::Kind::Ja3 | crate::indicators::Kind::Ja4 => "Intel::JA3",
                };
                let ty = if m.field == Field::DnsResolved || matches!(m.field, Field::IpSrc | Field::IpDst) {
                    "Intel::ADDR"
                } else {
                    ty
                };
                let uid = conn_uid(a);
                let clean = |s: &str| s.replace(['\t', '\n'], " ");
                let _ = writeln!(
                    self.buf,
                    "{}.{:06}\t{uid}\t{}\t{}\t{}\t{}\t{}\t{ty}\t{}\tiocmatch\t{ty}\t{}\t-\t-\t-",
                    a.ts_micros.div_euclid(1_000_000),
                    a.ts_micros.rem_euclid(1_000_000),
                    a.src_ip,
                    a.src_port,
                    a.dest_ip,
                    a.dest_port,
                    clean(&m.value),
                    m.field.zeek_where(),
                    clean(&m.source.set),
                );
            }
            Format::Csv => {
                let m = &a.matched;
                let d = |t: Option<i64>| t.map(crate::time::format_compact).unwrap_or_default();
                let act = serde_json::to_value(m.activity)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                let cells = [
                    a.timestamp.clone(),
                    a.src_ip.to_string(),
                    a.src_port.to_string(),
                    a.dest_ip.to_string(),
                    a.dest_port.to_string(),
                    a.proto.to_string(),
                    m.field.as_str().to_string(),
                    m.value.clone(),
                    m.indicator.to_string(),
                    m.kind.as_str().to_string(),
                    m.source.set.clone(),
                    m.source.title.clone(),
                    m.source.publisher.clone(),
                    m.source.date.clone().unwrap_or_default(),
                    m.meta.role.as_deref().unwrap_or("").to_string(),
                    m.meta.confidence.as_deref().unwrap_or("").to_string(),
                    d(m.meta.first_seen),
                    d(m.meta.last_seen),
                    act,
                    m.resolved_from.as_deref().unwrap_or("").to_string(),
                    a.capture.file.to_string(),
                    a.capture.packet.or(a.capture.line).map(|n| n.to_string()).unwrap_or_default(),
                ];
                let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
                self.buf.extend_from_slice(row.join(",").as_bytes());
                self.buf.push(b'\n');
            }
        }
        self.maybe_flush()
    }

    /// Writes the flow summary of a flagged connection (EVE only; other formats have no place for it).
    pub fn flow(&mut self, f: &FlowEvent) -> io::Result<()> {
        if self.format != Format::Eve {
            return Ok(());
        }
        eve::flow(&mut self.buf, f);
        self.buf.push(b'\n');
        self.maybe_flush()
    }

    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes what is buffered, without closing anything (a live sensor calls it whenever its
    /// queue runs dry, so alerts are seen at once).
    pub fn flush(&mut self) -> io::Result<()> {
        self.header();
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()
    }

    /// Writes what is buffered (and the header of an empty Zeek/CSV file).
    pub fn finish(&mut self) -> io::Result<()> {
        self.header();
        if self.format == Format::Zeek {
            let mut close = String::new();
            crate::time::format_micros(crate::time::now(), 0, &mut close);
            let _ = writeln!(self.buf, "#close\t{}", &close[..19]);
        }
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A Zeek-style connection uid, stable for the same 5-tuple.
fn conn_uid(a: &Alert) -> String {
    use std::hash::BuildHasher;
    let h = foldhash::fast::FixedState::with_seed(7).hash_one((a.src_ip, a.src_port, a.dest_ip, a.dest_port, a.proto));
    const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut s = String::from("C");
    let mut x = h;
    for _ in 0..11 {
        s.push(B62[(x % 62) as usize] as char);
        x /= 62;
    }
    s
}
