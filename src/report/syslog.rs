//! Alerts to syslog (`--syslog`): each output line (an EVE JSON event, or a line of the Zeek or
//! CSV format) becomes one RFC 5424 message, sent to a local syslog daemon's datagram socket (a
//! path, usually `/dev/log`), which then forwards it reliably; over UDP to a collector
//! (`HOST:PORT`); or over TCP (`tcp://HOST:PORT`), framed by octet counting (RFC 6587), as
//! rsyslog, syslog-ng and most SIEMs take it. This is how Suricata's EVE output and Maltrail
//! reach a SIEM.
//!
//! Facility local5 (Suricata's default for EVE over syslog), severity warning; the header's
//! timestamp is when the message was sent, the event's own time is in the message. A message
//! that cannot be delivered is counted and reported on standard error (the first, then every
//! thousandth), never fatal: a sensor must not stop because its syslog does.
//! - A local daemon that refuses a message (it is restarting) loses it.
//! - Over UDP nothing is refused: a collector that is down loses the messages, as UDP syslog does.
//! - Over TCP a connection that fails is made again, at once and then at most every
//!   [`RETRY`]; the messages until it is back are lost. A collector that stops reading holds a
//!   message at most [`TCP_TIMEOUT`], then the connection is dropped. As with any TCP syslog,
//!   what was written into a connection the collector had just closed is lost unseen.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Facility local5 (21) and severity warning (4).
const PRI: u32 = 21 * 8 + 4;

/// How long a TCP collector may take to accept a connection or a message.
const TCP_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a TCP connection that failed is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Where messages go.
enum To {
    Udp(UdpSocket, SocketAddr),
    Local(UnixDatagram, PathBuf),
    Tcp(Tcp),
}

/// A TCP collector: the connection when there is one, and when to try again when not.
struct Tcp {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    retry_at: Option<Instant>,
}

impl Tcp {
    /// Sends one framed message, connecting first if need be; a connection that fails is
    /// made again once at once (the collector restarted), then not before [`RETRY`].
    fn send(&mut self, framed: &[u8]) -> io::Result<()> {
        for _ in 0..2 {
            if self.stream.is_none() {
                if self.retry_at.is_some_and(|t| Instant::now() < t) {
                    return Err(io::Error::new(io::ErrorKind::NotConnected, "not connected"));
                }
                match TcpStream::connect_timeout(&self.addr, TCP_TIMEOUT) {
                    Ok(s) => {
                        s.set_write_timeout(Some(TCP_TIMEOUT))?;
                        let _ = s.set_nodelay(true);
                        self.stream = Some(s);
                        self.retry_at = None;
                    }
                    Err(e) => {
                        self.retry_at = Some(Instant::now() + RETRY);
                        return Err(e);
                    }
                }
            }
            let Some(stream) = self.stream.as_mut() else { continue };
            match stream.write_all(framed) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.stream = None;
                    if self.retry_at.is_some() {
                        return Err(e);
                    }
                    // Once more on a new connection, and not again before RETRY.
                    self.retry_at = Some(Instant::now());
                }
            }
        }
        self.retry_at = Some(Instant::now() + RETRY);
        Err(io::Error::new(io::ErrorKind::BrokenPipe, "the connection failed twice"))
    }
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
    /// A sender to `dest`: the path of a datagram socket, `HOST:PORT` (UDP) or
    /// `tcp://HOST:PORT`. A TCP collector that cannot be reached yet is said so on standard
    /// error, and tried again as messages come.
    pub fn open(dest: &str) -> Result<Syslog, String> {
        let resolve = |hostport: &str| {
            hostport
                .to_socket_addrs()
                .map_err(|e| {
                    format!(
                        "--syslog {dest}: {e} (give HOST:PORT for UDP, tcp://HOST:PORT for TCP, or a socket path \
                         such as /dev/log)"
                    )
                })?
                .next()
                .ok_or_else(|| format!("--syslog {dest}: no address"))
        };
        let to = if dest.starts_with('/') || dest.starts_with('.') {
            let sock = UnixDatagram::unbound().map_err(|e| format!("--syslog {dest}: {e}"))?;
            To::Local(sock, PathBuf::from(dest))
        } else if let Some(hostport) = dest.strip_prefix("tcp://") {
            let mut tcp = Tcp { addr: resolve(hostport)?, stream: None, retry_at: None };
            if let Err(e) = tcp.send(b"") {
                eprintln!("iocmatch: syslog {dest}: {e}; trying again as alerts come");
            }
            To::Tcp(tcp)
        } else {
            let addr = resolve(dest)?;
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
            let tcp = matches!(self.to, To::Tcp(_));
            let head = format!("<{PRI}>1 {stamp}{}", self.tail);
            if tcp {
                // Octet counting (RFC 6587 3.4.1): the message's length, a space, the message.
                write!(self.msg, "{} ", head.len() + text.len())?;
            }
            self.msg.extend_from_slice(head.as_bytes());
            self.msg.extend_from_slice(text);
            let sent = match &mut self.to {
                To::Udp(s, addr) => s.send_to(&self.msg, *addr).map(drop),
                To::Local(s, path) => s.send_to(&self.msg, &*path).map(drop),
                To::Tcp(t) => t.send(&self.msg),
            };
            match sent {
                Ok(()) => {}
                // No collector listening (yet), a local daemon restarting, a TCP collector down
                // or stuck: counted, not fatal.
                Err(e) if tcp || matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound) => {
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
        assert!(Syslog::open("tcp://127.0.0.1").is_err(), "a port is needed");
    }

    /// Reads one octet-counted message from a TCP syslog stream.
    fn framed(r: &mut impl io::BufRead) -> String {
        let mut len = Vec::new();
        r.read_until(b' ', &mut len).unwrap();
        let n: usize = std::str::from_utf8(&len).unwrap().trim().parse().unwrap();
        let mut msg = vec![0; n];
        r.read_exact(&mut msg).unwrap();
        String::from_utf8(msg).unwrap()
    }

    #[test]
    fn over_tcp_messages_are_octet_counted_and_the_connection_is_made_again() {
        use std::io::BufReader;
        use std::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let dest = format!("tcp://{}", l.local_addr().unwrap());
        let mut s = Syslog::open(&dest).unwrap();
        let (conn, _) = l.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"{\"event_type\":\"alert\"}\nsecond line\n").unwrap();
        let mut r = BufReader::new(conn);
        let m = framed(&mut r);
        assert!(m.starts_with("<172>1 ") && m.ends_with(" - - {\"event_type\":\"alert\"}"), "{m}");
        assert!(framed(&mut r).ends_with(" - - second line"));
        // The collector restarts: its end of the connection closes. The next messages go out on
        // a new connection (the first ones may go into the closed one, and are lost, as with
        // any TCP syslog).
        drop(r);
        l.set_nonblocking(true).unwrap();
        let t = Instant::now();
        let conn = loop {
            s.write_all(b"after\n").unwrap();
            if let Ok((c, _)) = l.accept() {
                break c;
            }
            assert!(t.elapsed() < Duration::from_secs(5), "no new connection");
            std::thread::sleep(Duration::from_millis(20));
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"last\n").unwrap();
        let mut r = BufReader::new(conn);
        let got: Vec<String> = (0..2).map(|_| framed(&mut r)).collect();
        assert!(got.iter().any(|m| m.ends_with(" - - last")), "{got:?}");
        // Nobody listening: messages are counted as lost, and the output goes on.
        drop((r, l));
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = Syslog::open(&format!("tcp://127.0.0.1:{port}")).unwrap();
        for _ in 0..3 {
            s.write_all(b"x\n").unwrap();
        }
        assert_eq!(s.refused, 3);
    }
}
