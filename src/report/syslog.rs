//! Alerts to syslog (`--syslog`): each output line (an EVE JSON event, or a line of the Zeek or
//! CSV format) becomes one RFC 5424 message, sent over UDP to a collector (`HOST:PORT`) or to
//! a local syslog daemon's datagram socket (a path, usually `/dev/log`), which then forwards it
//! reliably. This is how Suricata's EVE output and Maltrail reach a SIEM.
//!
//! Facility local5 (Suricata's default for EVE over syslog), severity warning; the header's
//! timestamp is when the message was sent, the event's own time is in the message. A message
//! the local daemon refuses (it is restarting) is counted and reported on standard error (the
//! first, then every thousandth), not fatal: a sensor must not stop because its syslog does.
//! Over UDP nothing is refused: a collector that is down loses the messages, as UDP syslog does.

use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// Facility local5 (21) and severity warning (4).
const PRI: u32 = 21 * 8 + 4;

/// Where messages go.
enum To {
    Udp(UdpSocket, SocketAddr),
    Local(UnixDatagram, PathBuf),
}

/// A [`Write`] that sends every line written to it as one syslog message.
pub struct Syslog {
    to: To,
    /// The header up to the timestamp's end is rebuilt per message; the rest is fixed.
    tail: String,
    line: Vec<u8>,
    msg: Vec<u8>,
    dest: String,
    /// Messages refused.
    refused: u64,
}

impl Syslog {
    /// A sender to `dest`: `HOST:PORT` (UDP) or the path of a datagram socket.
    pub fn open(dest: &str) -> Result<Syslog, String> {
        let to = if dest.starts_with('/') || dest.starts_with('.') {
            let sock = UnixDatagram::unbound().map_err(|e| format!("--syslog {dest}: {e}"))?;
            To::Local(sock, PathBuf::from(dest))
        } else {
            let addr = dest
                .to_socket_addrs()
                .map_err(|e| {
                    format!("--syslog {dest}: {e} (give HOST:PORT for UDP, or a socket path such as /dev/log)")
                })?
                .next()
                .ok_or_else(|| format!("--syslog {dest}: no address"))?;
            let bind: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
            let sock = UdpSocket::bind(bind).map_err(|e| format!("--syslog {dest}: {e}"))?;
            To::Udp(sock, addr)
        };
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host = host.trim();
        let host = if host.is_empty() { "-" } else { host };
        let tail = format!(" {host} iocmatch {} - - ", std::process::id());
        Ok(Syslog { to, tail, line: Vec::new(), msg: Vec::new(), dest: dest.to_string(), refused: 0 })
    }

    fn send(&mut self) -> io::Result<()> {
        let line = std::mem::take(&mut self.line);
        let text = line.strip_suffix(b"\r").unwrap_or(&line);
        if !text.is_empty() {
            self.msg.clear();
            let now = crate::time::now_micros();
            let mut stamp = String::with_capacity(27);
            crate::time::format_micros(now.div_euclid(1_000_000), now.rem_euclid(1_000_000) as u32, &mut stamp);
            write!(self.msg, "<{PRI}>1 {stamp}{}", self.tail)?;
            self.msg.extend_from_slice(text);
            let sent = match &self.to {
                To::Udp(s, addr) => s.send_to(&self.msg, addr).map(drop),
                To::Local(s, path) => s.send_to(&self.msg, path).map(drop),
            };
            match sent {
                Ok(()) => {}
                // No collector listening (yet), or a local daemon restarting: counted, not fatal.
                Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound) => {
                    self.refused += 1;
                    if self.refused % 1000 == 1 {
                        eprintln!("iocmatch: syslog {}: {e} ({} messages lost so far)", self.dest, self.refused);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.line = line;
        self.line.clear();
        Ok(())
    }
}

impl Write for Syslog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..i]);
            self.send()?;
            rest = &rest[i + 1..];
        }
        self.line.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_one_rfc5424_message() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let mut s = Syslog::open(&rx.local_addr().unwrap().to_string()).unwrap();
        // Split anywhere: a line goes out when its newline is written.
        s.write_all(b"{\"event_type\":\"alert\"}\n{\"event_").unwrap();
        s.write_all(b"type\":\"flow\"}\n\n").unwrap();
        let mut buf = [0u8; 2048];
        for want in ["{\"event_type\":\"alert\"}", "{\"event_type\":\"flow\"}"] {
            let n = rx.recv(&mut buf).unwrap();
            let m = std::str::from_utf8(&buf[..n]).unwrap();
            assert!(m.starts_with("<172>1 "), "{m}");
            let parts: Vec<&str> = m.splitn(8, ' ').collect();
            assert_eq!(parts[1].len(), "2026-11-29T12:00:00.000000Z".len(), "{m}");
            assert_eq!((parts[3], parts[5], parts[6]), ("iocmatch", "-", "-"), "{m}");
            assert_eq!(parts[7], want);
        }
        // The empty line sent nothing.
        rx.set_read_timeout(Some(std::time::Duration::from_millis(100))).unwrap();
        assert!(rx.recv(&mut buf).is_err());
    }

    #[test]
    fn a_syslog_not_listening_does_not_stop_the_output() {
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = Syslog::open(&format!("127.0.0.1:{port}")).unwrap();
        for _ in 0..5 {
            s.write_all(b"x\n").unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("log");
        let mut s = Syslog::open(gone.to_str().unwrap()).unwrap();
        for _ in 0..5 {
            s.write_all(b"x\n").unwrap();
        }
        assert_eq!(s.refused, 5);
        // Once the daemon is there, its socket gets the next message.
        let rx = UnixDatagram::bind(&gone).unwrap();
        s.write_all(b"y\n").unwrap();
        let mut buf = [0u8; 256];
        let n = rx.recv(&mut buf).unwrap();
        assert!(buf[..n].ends_with(b" - - y"), "{:?}", String::from_utf8_lossy(&buf[..n]));
        assert!(Syslog::open("no-such-host.invalid:514").is_err());
        assert!(Syslog::open("127.0.0.1").is_err(), "a port is needed");
    }
}
