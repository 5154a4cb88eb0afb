//! RFC 5424 syslog over UDP, TCP (RFC 6587 octet counting) or unix sockets.
//!
//! `send` formats the message on the caller's thread and hands it to a worker
//! thread over a bounded crossbeam channel; only the worker touches the
//! network. A plain thread rather than tokio: the sink API is synchronous, the
//! socket calls are blocking with timeouts, and one thread per sink keeps a
//! stalled receiver from holding up anything else. The worker keeps messages
//! it could not deliver in a bounded queue, reconnects with exponential
//! backoff, and delivers them in order.
//!
//! Message: `<PRI>1 TIMESTAMP HOSTNAME vigil PROCID MSGID - JSON`, where PRI is
//! facility * 8 + severity, MSGID is the event action and the JSON line is MSG
//! (no BOM). UDP carries one message per datagram; a message larger than a
//! datagram can be (65507 bytes) is not sent and is reported as a gap rather
//! than truncated, since a cut JSON line is of no use to anyone.
use super::{lock, Facility, HealthNotes, Rendered, Sink, SinkConfig};
use crate::event::Severity;
use crate::schema::Format;
use anyhow::{anyhow, bail, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use std::collections::VecDeque;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
#[cfg(unix)]
use std::os::fd::AsRawFd;
#[cfg(unix)]
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest UDP payload over IPv4.
pub const UDP_MAX: usize = 65_507;
/// Messages waiting for the worker; beyond this `send` drops and counts.
const CHANNEL: usize = 8192;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long `close` waits for queued messages to go out.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Where messages go, parsed from `address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Udp(String),
    Tcp(String),
    /// `unix://`: a datagram socket if the path is one, else a stream socket.
    Unix(PathBuf),
    UnixDgram(PathBuf),
    UnixStream(PathBuf),
}

impl Target {
    pub fn parse(address: &str) -> Result<Target> {
        let bad = |why: &str| {
            anyhow!(
                "sink syslog: address '{address}' {why}; use udp://HOST:PORT, tcp://HOST:PORT, \
                 unix:///dev/log, unixgram://PATH or unixstream://PATH"
            )
        };
        let (scheme, rest) = address
            .split_once("://")
            .ok_or_else(|| bad("has no scheme"))?;
        let host_port = |rest: &str| -> Result<String> {
            match rest.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => {
                    Ok(rest.to_string())
                }
                _ => Err(bad("needs HOST:PORT")),
            }
        };
        let path = |rest: &str| -> Result<PathBuf> {
            if rest.starts_with('/') {
                Ok(PathBuf::from(rest))
            } else {
                Err(bad("needs an absolute socket path"))
            }
        };
        if cfg!(not(unix)) && scheme.starts_with("unix") {
            bail!(bad("is a unix socket, which this platform does not have"));
        }
        Ok(match scheme {
            "udp" => Target::Udp(host_port(rest)?),
            "tcp" => Target::Tcp(host_port(rest)?),
            "unix" => Target::Unix(path(rest)?),
            "unixgram" => Target::UnixDgram(path(rest)?),
            "unixstream" => Target::UnixStream(path(rest)?),
            _ => bail!(bad("has an unknown scheme")),
        })
    }
}

/// Syslog severity (RFC 5424 §6.2.1) of an event severity.
pub fn severity_code(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2, // crit
        Severity::High => 3,     // err
        Severity::Medium => 4,   // warning
        Severity::Low => 5,      // notice
        Severity::Info => 6,     // info
    }
}

/// A header field: printable US-ASCII only (RFC 5424 PRINTUSASCII), at most
/// `max` characters, `-` (the NILVALUE) when nothing is left.
fn header_field(s: &str, max: usize) -> String {
    let f: String = s
        .chars()
        .filter(|c| ('!'..='~').contains(c))
        .take(max)
        .collect();
    if f.is_empty() {
        "-".into()
    } else {
        f
    }
}

/// One RFC 5424 message, without framing.
pub fn format_5424(facility: Facility, ev: &Rendered, host: &str, procid: u32) -> Vec<u8> {
    let pri = u16::from(facility.code()) * 8 + u16::from(severity_code(ev.severity));
    let time = if ev.epoch > 0.0 {
        let secs = ev.epoch.floor();
        let nanos = ((ev.epoch - secs) * 1e9) as u32;
        chrono::DateTime::from_timestamp(secs as i64, nanos.min(999_999_999))
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
            .unwrap_or_else(|| "-".into())
    } else {
        "-".into()
    };
    let host = header_field(if ev.host.is_empty() { host } else { ev.host }, 255);
    let msgid = header_field(ev.action, 32);
    let mut m = format!("<{pri}>1 {time} {host} vigil {procid} {msgid} - ").into_bytes();
    m.extend_from_slice(ev.line);
    m
}

/// RFC 6587 octet counting: `LEN SP MSG`.
pub fn octet_frame(msg: &[u8]) -> Vec<u8> {
    let mut f = format!("{} ", msg.len()).into_bytes();
    f.extend_from_slice(msg);
    f
}

enum Msg {
    Line(Vec<u8>),
    Close(Instant),
}

pub struct SyslogSink {
    name: String,
    format: Format,
    facility: Facility,
    host: String,
    procid: u32,
    datagram_max: Option<usize>,
    tx: Option<Sender<Msg>>,
    health: Arc<Mutex<HealthNotes>>,
    worker: Option<JoinHandle<usize>>,
}

impl SyslogSink {
    pub fn open(cfg: &SinkConfig, host: &str) -> Result<SyslogSink> {
        let SinkConfig::Syslog {
            address,
            format,
            facility,
            queue_max_mib,
        } = cfg
        else {
            bail!("sink syslog: not a syslog sink configuration");
        };
        let target = Target::parse(address)?;
        let name = format!("syslog:{address}");
        let health = Arc::new(Mutex::new(HealthNotes::new(&name)));
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL);
        let worker = Worker {
            name: name.clone(),
            target: target.clone(),
            conn: None,
            queue: VecDeque::new(),
            queued: 0,
            queue_max: queue_max_mib.saturating_mul(1 << 20) as usize,
            health: health.clone(),
            backoff: BACKOFF_MIN,
            next_try: Instant::now(),
        };
        let handle = std::thread::Builder::new()
            .name("vigil-syslog".into())
            .spawn(move || worker.run(rx))?;
        Ok(SyslogSink {
            name,
            format: *format,
            facility: *facility,
            host: host.to_string(),
            procid: std::process::id(),
            datagram_max: matches!(target, Target::Udp(_)).then_some(UDP_MAX),
            tx: Some(tx),
            health,
            worker: Some(handle),
        })
    }
}

impl Sink for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn format(&self) -> Format {
        self.format
    }

    fn send(&mut self, ev: &Rendered) -> Result<()> {
        let msg = format_5424(self.facility, ev, &self.host, self.procid);
        if let Some(max) = self.datagram_max {
            if msg.len() > max {
                lock(&self.health).lost(
                    1,
                    format!("message larger than a UDP datagram ({max} bytes), not sent"),
                );
                return Ok(());
            }
        }
        let tx = self.tx.as_ref().expect("open until close");
        match tx.try_send(Msg::Line(msg)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => lock(&self.health).lost(
                1,
                format!("send queue full ({CHANNEL} messages), messages dropped"),
            ),
            Err(TrySendError::Disconnected(_)) => {
                lock(&self.health).lost(1, "worker thread gone, messages dropped");
            }
        }
        Ok(())
    }

    /// Messages go out as soon as the worker has them: nothing to push.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn take_health(&mut self) -> Vec<super::Health> {
        lock(&self.health).take()
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        let deadline = Instant::now() + CLOSE_WAIT;
        if let Some(tx) = self.tx.take() {
            let _ = tx.send_timeout(Msg::Close(deadline), CLOSE_WAIT);
        }
        let left = match self.worker.take().map(|w| w.join()) {
            Some(Ok(left)) => left,
            _ => bail!("{}: worker thread panicked", self.name),
        };
        if left > 0 {
            bail!("{}: {left} messages not delivered before close", self.name);
        }
        Ok(())
    }
}

/// "Message too long" from a datagram send (WSAEMSGSIZE on Windows).
#[cfg(unix)]
const EMSGSIZE: i32 = libc::EMSGSIZE;
#[cfg(not(unix))]
const EMSGSIZE: i32 = 10040;

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    #[cfg(unix)]
    UnixDgram(UnixDatagram),
    #[cfg(unix)]
    UnixStream(UnixStream),
}

impl Conn {
    fn connect(target: &Target) -> std::io::Result<Conn> {
        #[cfg(unix)]
        let dgram = |path: &PathBuf| -> std::io::Result<Conn> {
            let s = UnixDatagram::unbound()?;
            s.connect(path)?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            Ok(Conn::UnixDgram(s))
        };
        #[cfg(unix)]
        let stream = |path: &PathBuf| -> std::io::Result<Conn> {
            let s = UnixStream::connect(path)?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            Ok(Conn::UnixStream(s))
        };
        match target {
            Target::Udp(addr) => {
                let to = addr
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| std::io::Error::other("no address"))?;
                let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                let s = UdpSocket::bind(bind)?;
                s.connect(to)?;
                Ok(Conn::Udp(s))
            }
            Target::Tcp(addr) => {
                let mut last = std::io::Error::other("no address");
                for a in addr.to_socket_addrs()? {
                    match TcpStream::connect_timeout(&a, IO_TIMEOUT) {
                        Ok(s) => {
                            s.set_write_timeout(Some(IO_TIMEOUT))?;
                            return Ok(Conn::Tcp(s));
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            #[cfg(unix)]
            Target::UnixDgram(p) => dgram(p),
            #[cfg(unix)]
            Target::UnixStream(p) => stream(p),
            #[cfg(unix)]
            Target::Unix(p) => match dgram(p) {
                Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => stream(p),
                other => other,
            },
            // Target::parse refuses these off Unix.
            #[cfg(not(unix))]
            Target::Unix(_) | Target::UnixDgram(_) | Target::UnixStream(_) => Err(
                std::io::Error::new(std::io::ErrorKind::Unsupported, "no unix sockets here"),
            ),
        }
    }

    /// A stream whose peer has closed reads as end-of-file. Checked before
    /// writing, because the first write to such a socket still "succeeds" and
    /// the message would be lost.
    #[cfg(unix)]
    fn peer_closed(&self) -> bool {
        let fd = match self {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::UnixStream(s) => s.as_raw_fd(),
            _ => return false,
        };
        let mut b = 0u8;
        // SAFETY: one byte into a valid buffer, on a socket we own.
        let n = unsafe {
            libc::recv(
                fd,
                (&mut b as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n == 0
            || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock)
    }

    /// As on Unix, with a non-blocking peek (Windows has no MSG_DONTWAIT).
    #[cfg(not(unix))]
    fn peer_closed(&self) -> bool {
        let Conn::Tcp(s) = self else {
            return false;
        };
        if s.set_nonblocking(true).is_err() {
            return false;
        }
        let mut b = [0u8; 1];
        let closed = match s.peek(&mut b) {
            Ok(n) => n == 0,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        let _ = s.set_nonblocking(false);
        closed
    }

    fn is_datagram(&self) -> bool {
        match self {
            Conn::Udp(_) => true,
            #[cfg(unix)]
            Conn::UnixDgram(_) => true,
            _ => false,
        }
    }

    fn send(&mut self, msg: &[u8]) -> std::io::Result<()> {
        let sent = match self {
            Conn::Udp(s) => s.send(msg)?,
            #[cfg(unix)]
            Conn::UnixDgram(s) => s.send(msg)?,
            Conn::Tcp(s) => return s.write_all(&octet_frame(msg)),
            #[cfg(unix)]
            Conn::UnixStream(s) => return s.write_all(&octet_frame(msg)),
        };
        if sent != msg.len() {
            return Err(std::io::Error::other("datagram truncated"));
        }
        Ok(())
    }
}

struct Worker {
    name: String,
    target: Target,
    conn: Option<Conn>,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    queue_max: usize,
    health: Arc<Mutex<HealthNotes>>,
    backoff: Duration,
    next_try: Instant,
}

impl Worker {
    /// Returns the number of messages left undelivered when it stops.
    fn run(mut self, rx: Receiver<Msg>) -> usize {
        let mut rx_open = true;
        let mut closing: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let mut wait = if self.queue.is_empty() {
                None
            } else {
                Some(self.next_try.saturating_duration_since(now))
            };
            if let Some(d) = closing {
                if self.queue.is_empty() || now >= d {
                    return self.queue.len();
                }
                wait = Some(wait.unwrap_or(Duration::MAX).min(d - now));
            }
            if rx_open {
                let first = match wait {
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    Some(d) => rx.recv_timeout(d),
                };
                match first {
                    Ok(m) => self.take(m, &mut closing),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        // Dropped without close: a last, short attempt.
                        rx_open = false;
                        closing.get_or_insert(Instant::now() + Duration::from_secs(1));
                    }
                }
                while let Ok(m) = rx.try_recv() {
                    self.take(m, &mut closing);
                }
            } else if let Some(d) = wait {
                std::thread::sleep(d);
            }
            if !self.queue.is_empty() && Instant::now() >= self.next_try {
                self.deliver();
            }
        }
    }

    fn take(&mut self, m: Msg, closing: &mut Option<Instant>) {
        match m {
            Msg::Close(deadline) => *closing = Some(deadline),
            Msg::Line(l) => {
                if self.queued + l.len() > self.queue_max {
                    lock(&self.health).lost(
                        1,
                        format!(
                            "{}: queue full ({} MiB), messages dropped",
                            self.name,
                            self.queue_max >> 20
                        ),
                    );
                } else {
                    self.queued += l.len();
                    self.queue.push_back(l);
                }
            }
        }
    }

    /// Sends queued messages in order until the queue is empty or sending
    /// fails; a failure drops the connection and schedules a retry.
    fn deliver(&mut self) {
        if self.conn.as_ref().is_some_and(Conn::peer_closed) {
            self.conn = None;
        }
        if self.conn.is_none() {
            match Conn::connect(&self.target) {
                Ok(c) => self.conn = Some(c),
                Err(e) => return self.failed(&format!("cannot connect: {e}")),
            }
        }
        let conn = self.conn.as_mut().expect("connected above");
        while let Some(m) = self.queue.front() {
            match conn.send(m) {
                Ok(()) => {}
                // Too large for this socket, now or ever: drop it, count it.
                Err(e) if e.raw_os_error() == Some(EMSGSIZE) && conn.is_datagram() => {
                    lock(&self.health).lost(
                        1,
                        format!("{}: message too large for the socket, not sent", self.name),
                    )
                }
                Err(e) => {
                    self.conn = None;
                    return self.failed(&format!("sending: {e}"));
                }
            }
            let m = self.queue.pop_front().expect("front exists");
            self.queued -= m.len();
        }
        self.backoff = BACKOFF_MIN;
        lock(&self.health).recovered(format!("{}: delivering again", self.name));
    }

    fn failed(&mut self, why: &str) {
        lock(&self.health).degraded(format!(
            "{}: {why}; {} messages queued, retrying",
            self.name,
            self.queue.len()
        ));
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev<'a>(sev: Severity, action: &'a str, host: &'a str) -> Rendered<'a> {
        Rendered {
            seq: 7,
            epoch: 1_700_000_000.25,
            host,
            kind: "file",
            action,
            severity: sev,
            line: b"{\"seq\":7,\"path\":\"/etc/a b\"}",
        }
    }

    #[test]
    fn rfc5424_message() {
        let m = format_5424(
            Facility::Local0,
            &ev(Severity::High, "write", "web-1"),
            "x",
            42,
        );
        assert_eq!(
            String::from_utf8(m).unwrap(),
            "<131>1 2023-11-14T22:13:20.250000Z web-1 vigil 42 write - {\"seq\":7,\"path\":\"/etc/a b\"}"
        );
        // auth (4) * 8 + info (6); the sink's host when the event has none;
        // header fields lose spaces and are cut to their RFC lengths.
        let long = "a b".repeat(20);
        let m = format_5424(Facility::Auth, &ev(Severity::Info, &long, ""), "h", 1);
        let m = String::from_utf8(m).unwrap();
        let f: Vec<_> = m.splitn(8, ' ').collect();
        assert_eq!(f[0], "<38>1");
        assert_eq!(f[2], "h");
        assert_eq!(f[5].len(), 32);
        assert_eq!(f[6], "-");
    }

    #[test]
    fn severities_map_to_syslog_levels() {
        let codes: Vec<u8> = [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .map(severity_code)
        .collect();
        assert_eq!(codes, vec![6, 5, 4, 3, 2]);
        assert_eq!(Facility::Local7.code(), 23);
        assert_eq!(Facility::Kern.code(), 0);
    }

    #[test]
    fn octet_counting() {
        assert_eq!(octet_frame(b"<1>1 - - - - - - x"), b"18 <1>1 - - - - - - x");
        assert_eq!(octet_frame("é".as_bytes()), "2 é".as_bytes());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            Target::parse("udp://127.0.0.1:514").unwrap(),
            Target::Udp("127.0.0.1:514".into())
        );
        assert_eq!(
            Target::parse("tcp://[::1]:6514").unwrap(),
            Target::Tcp("[::1]:6514".into())
        );
        #[cfg(unix)]
        assert_eq!(
            Target::parse("unix:///dev/log").unwrap(),
            Target::Unix("/dev/log".into())
        );
        #[cfg(not(unix))]
        assert!(Target::parse("unix:///dev/log")
            .unwrap_err()
            .to_string()
            .contains("unix socket"));
        for bad in [
            "127.0.0.1:514",
            "udp://host",
            "tcp://:514",
            "unix://dev/log",
            "tls://h:1",
        ] {
            let e = Target::parse(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("sink syslog: address '{bad}'")),
                "{e}"
            );
        }
    }
}
