//! The sinks against real receivers: files on a real (tiny) tmpfs, a real
//! rsyslogd, and an HTTP/1.1 receiver on loopback. The tmpfs tests need root.
// Linux: root, tmpfs, unix modes and rsyslogd; Windows is tested under Wine (xtask wine-test).
#![cfg(target_os = "linux")]
use serde_json::Value;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vigil::event::Severity;
use vigil::schema::Format;
use vigil::sink::{self, Facility, HealthState, HttpKind, Rendered, Sink, SinkConfig};

// ---------------------------------------------------------------- helpers

fn ev(seq: u64, len: usize) -> Rendered<'static> {
    let actions = ["write", "chmod", "delete", "rename"];
    let sevs = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    let mut line = format!(
        "{{\"schema\":\"vigil/0.2\",\"seq\":{seq},\"path\":\"/etc/a \\\"b\\\"\",\"pad\":\""
    );
    while line.len() + 2 < len {
        line.push('x');
    }
    line.push_str("\"}");
    Rendered {
        seq,
        epoch: 1_700_000_000.0 + seq as f64 / 8.0,
        host: "test-host",
        kind: "file",
        action: actions[seq as usize % 4],
        severity: sevs[seq as usize % 5],
        line: line.leak().as_bytes(),
    }
}

fn seq_of(json: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(json)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(json)));
    v["seq"].as_u64().expect("seq")
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn states(notes: &[vigil::sink::Health]) -> Vec<HealthState> {
    notes.iter().map(|n| n.state.clone()).collect()
}

fn lost(notes: &[vigil::sink::Health]) -> u64 {
    notes
        .iter()
        .map(|n| match n.state {
            HealthState::Gap { lost } => lost,
            _ => 0,
        })
        .sum()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn require_root(what: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{what} mounts a tmpfs: run the tests as root (sudo cargo xtask test)"
    );
}

// ---------------------------------------------------------------- file

fn file_cfg(path: &Path, max_size_mib: u64, keep: u32, queue_max_mib: u64) -> SinkConfig {
    SinkConfig::File {
        path: path.to_path_buf(),
        format: Format::Native,
        max_size_mib,
        rotate_every: None,
        keep,
        queue_max_mib,
    }
}

/// All lines of `path` and its rotated files, oldest first.
fn file_seqs(path: &Path, keep: u32) -> Vec<u64> {
    let mut files: Vec<PathBuf> = (1..=keep)
        .rev()
        .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
        .filter(|p| p.exists())
        .collect();
    files.push(path.to_path_buf());
    let mut out = Vec::new();
    for f in files {
        let data = std::fs::read(&f).unwrap();
        assert!(
            data.is_empty() || data.ends_with(b"\n"),
            "{} ends mid-line",
            f.display()
        );
        out.extend(
            data.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(seq_of),
        );
    }
    out
}

#[test]
fn file_rotates_by_size_keeping_lines_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vigil.json");
    let mut s = sink::open(&file_cfg(&path, 1, 3, 16), "h").unwrap();
    // 1000-byte lines, 3.5 MiB: the live file and three rotated ones.
    let n = 3600;
    for seq in 1..=n {
        s.send(&ev(seq, 999)).unwrap();
        if seq % 100 == 0 {
            s.flush().unwrap();
        }
    }
    s.flush().unwrap();
    assert!(s.take_health().is_empty());
    for i in 1..=3 {
        let p = PathBuf::from(format!("{}.{i}", path.display()));
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(
            len <= 1 << 20 && len > (1 << 20) - 1000,
            "{}: {len}",
            p.display()
        );
    }
    assert!(!PathBuf::from(format!("{}.4", path.display())).exists());
    assert_eq!(file_seqs(&path, 3), (1..=n).collect::<Vec<_>>());

    // 2 MiB more: the oldest files go, what is kept stays contiguous.
    for seq in n + 1..=n + 2000 {
        s.send(&ev(seq, 999)).unwrap();
    }
    s.close().unwrap();
    let seqs = file_seqs(&path, 3);
    assert!(!PathBuf::from(format!("{}.4", path.display())).exists());
    assert_eq!(*seqs.last().unwrap(), n + 2000);
    let first = seqs[0];
    assert!(
        first > 1000,
        "oldest files were not dropped: starts at {first}"
    );
    assert_eq!(seqs, (first..=n + 2000).collect::<Vec<_>>());
}

#[test]
fn file_rotates_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vigil.json");
    let cfg = SinkConfig::File {
        path: path.clone(),
        format: Format::Native,
        max_size_mib: 0,
        rotate_every: Some("1s".parse().unwrap()),
        keep: 5,
        queue_max_mib: 16,
    };
    let mut s = sink::open(&cfg, "h").unwrap();
    s.send(&ev(1, 100)).unwrap();
    s.send(&ev(2, 100)).unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    s.send(&ev(3, 100)).unwrap();
    s.close().unwrap();
    assert_eq!(
        file_seqs(&PathBuf::from(format!("{}.1", path.display())), 0),
        vec![1, 2]
    );
    assert_eq!(file_seqs(&path, 0), vec![3]);
}

/// A tmpfs mounted for one test, unmounted (lazily) when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs failed");
        Tmpfs(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// Fills the file system with one file until it is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![b'f'; 4096];
    while f.write_all(&chunk).is_ok() {}
    // Partial pages: fill byte by byte.
    while f.write_all(b"f").is_ok() {}
}

#[test]
fn file_on_a_full_disk_keeps_lines_and_recovers() {
    require_root("file_on_a_full_disk_keeps_lines_and_recovers");
    let fs = Tmpfs::mount("64k");
    let path = fs.path().join("vigil.json");
    let filler = fs.path().join("filler");
    let mut s = sink::open(&file_cfg(&path, 0, 0, 16), "h").unwrap();
    for seq in 1..=10 {
        s.send(&ev(seq, 500)).unwrap();
    }
    s.flush().unwrap();
    fill(&filler);
    for seq in 11..=100 {
        s.send(&ev(seq, 500)).unwrap();
        s.flush().unwrap();
    }
    let notes = s.take_health();
    assert_eq!(states(&notes), vec![HealthState::Degraded], "{notes:?}");
    assert!(notes[0].message.contains("No space left"), "{notes:?}");
    // Only whole lines made it; the rest wait in memory.
    let on_disk = file_seqs(&path, 0);
    assert_eq!(on_disk, (1..=on_disk.len() as u64).collect::<Vec<_>>());
    assert!(on_disk.len() < 100);

    std::fs::remove_file(&filler).unwrap();
    s.flush().unwrap();
    assert_eq!(states(&s.take_health()), vec![HealthState::Recovered]);
    s.send(&ev(101, 500)).unwrap();
    s.close().unwrap();
    assert_eq!(file_seqs(&path, 0), (1..=101).collect::<Vec<_>>());
}

#[test]
fn file_on_a_full_disk_counts_dropped_lines_exactly() {
    require_root("file_on_a_full_disk_counts_dropped_lines_exactly");
    let fs = Tmpfs::mount("4m");
    let path = fs.path().join("vigil.json");
    let filler = fs.path().join("filler");
    // A 1 MiB queue: about 262 lines of 4000 bytes.
    let mut s = sink::open(&file_cfg(&path, 0, 0, 1), "h").unwrap();
    fill(&filler);
    let n = 600;
    for seq in 1..=n {
        s.send(&ev(seq, 3999)).unwrap();
    }
    s.flush().unwrap();
    let notes = s.take_health();
    let dropped = lost(&notes);
    assert!(
        notes.iter().any(|n| n.state == HealthState::Degraded),
        "{notes:?}"
    );
    assert!(dropped > 300 && dropped < n, "lost {dropped}: {notes:?}");

    std::fs::remove_file(&filler).unwrap();
    s.flush().unwrap();
    assert_eq!(states(&s.take_health()), vec![HealthState::Recovered]);
    s.close().unwrap();
    // The oldest lines were kept; exactly the reported number are missing.
    let got = file_seqs(&path, 0);
    assert_eq!(got.len() as u64 + dropped, n);
    assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>());
}

// ---------------------------------------------------------------- syslog

/// A real rsyslogd listening on loopback UDP and TCP and on unix datagram and
/// stream sockets,
/// writing what it receives, field by field, to `out`.
struct Rsyslogd {
    child: Child,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Rsyslogd {
    fn start(dir: tempfile::TempDir, udp: u16, tcp: u16, sock: &Path) -> Rsyslogd {
        let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!(
                    "rsyslogd is not installed: the syslog sink tests need it. Install it with \
                     `apt-get install -y rsyslog` (`cargo xtask test` does)"
                )
            });
        let out = dir.path().join("out.log");
        // imptcp on a unix stream socket, next to imuxsock's datagram one.
        let stream = sock.with_file_name("stream.sock");
        let conf = dir.path().join("rsyslog.conf");
        let d = dir.path().display();
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{d}" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
module(load="imuxsock" SysSock.Use="off")
module(load="imptcp")
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="out")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="out")
input(type="imuxsock" Socket="{sock}" UseSpecialParser="off" ParseHostname="on" IgnoreTimestamp="off" ruleset="out")
input(type="imptcp" path="{stream}" unlink="on" ruleset="out")
template(name="fields" type="string"
  string="%inputname%|%pri%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
ruleset(name="out") {{
  action(type="omfile" file="{out}" template="fields")
}}
"#,
                sock = sock.display(),
                stream = stream.display(),
                out = out.display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning rsyslogd");
        let r = Rsyslogd {
            child,
            out,
            _dir: dir,
        };
        wait_until("rsyslogd to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", tcp)).is_ok() && sock.exists() && stream.exists()
        });
        r
    }

    /// Received messages: `[input, pri, time, host, app, procid, msgid, sd, msg]`.
    fn lines(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .map(|l| l.splitn(9, '|').map(String::from).collect())
            .collect()
    }

    fn received_via(&self, input: &str) -> Vec<Vec<String>> {
        self.lines().into_iter().filter(|f| f[0] == input).collect()
    }

    fn stop(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn syslog_cfg(address: String) -> SinkConfig {
    SinkConfig::Syslog {
        address,
        format: Format::Native,
        facility: Facility::Local3,
        queue_max_mib: 16,
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn syslog_over_udp_tcp_and_unix_reaches_rsyslogd_intact() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let (udp, tcp) = (free_udp_port(), free_port());
    let rs = Rsyslogd::start(dir, udp, tcp, &sock);
    let transports = [
        ("imudp", format!("udp://127.0.0.1:{udp}")),
        ("imtcp", format!("tcp://127.0.0.1:{tcp}")),
        ("imuxsock", format!("unix://{}", sock.display())),
        // unix:// on a stream socket: found to be one, octet-counted.
        (
            "imptcp",
            format!("unix://{}", sock.with_file_name("stream.sock").display()),
        ),
    ];
    for (input, address) in &transports {
        let mut s = sink::open(&syslog_cfg(address.clone()), "fallback-host").unwrap();
        let sent: Vec<Rendered> = (1..=20)
            .map(|seq| ev(seq, if seq == 20 { 30_000 } else { 300 }))
            .collect();
        for e in &sent {
            s.send(e).unwrap();
        }
        s.flush().unwrap();
        wait_until(
            &format!("20 messages via {input}"),
            Duration::from_secs(10),
            || rs.received_via(input).len() >= 20,
        );
        s.close().unwrap();
        let got = rs.received_via(input);
        assert_eq!(got.len(), 20, "{input}: duplicates?");
        for (f, e) in got.iter().zip(&sent) {
            let sev = match e.severity {
                Severity::Info => 6,
                Severity::Low => 5,
                Severity::Medium => 4,
                Severity::High => 3,
                Severity::Critical => 2,
            };
            assert_eq!(f[1], (19 * 8 + sev).to_string(), "{input}: PRI of {f:?}");
            assert!(
                f[2].starts_with("2023-11-14T22:13:"),
                "{input}: time {}",
                f[2]
            );
            assert_eq!(f[3], "test-host");
            assert_eq!(f[4], "vigil");
            assert_eq!(f[5], std::process::id().to_string());
            assert_eq!(f[6], e.action);
            assert_eq!(f[7], "-");
            assert_eq!(f[8].as_bytes(), e.line, "{input}: payload changed");
        }
    }
    rs.stop();
}

#[test]
fn syslog_tcp_queues_while_rsyslogd_is_down_and_delivers_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let (udp, tcp) = (free_udp_port(), free_port());
    let mut s = sink::open(&syslog_cfg(format!("tcp://127.0.0.1:{tcp}")), "h").unwrap();
    for seq in 1..=50 {
        s.send(&ev(seq, 200)).unwrap();
    }
    wait_until("Degraded", Duration::from_secs(5), || {
        states(&s.take_health()).contains(&HealthState::Degraded)
    });

    let rs = Rsyslogd::start(dir, udp, tcp, &sock);
    wait_until("50 queued messages", Duration::from_secs(20), || {
        rs.received_via("imtcp").len() >= 50
    });
    assert_eq!(states(&s.take_health()), vec![HealthState::Recovered]);

    // The receiver goes away while connected; later messages wait for it.
    let first: Vec<Vec<String>> = rs.received_via("imtcp");
    rs.stop();
    std::thread::sleep(Duration::from_millis(200));
    for seq in 51..=80 {
        s.send(&ev(seq, 200)).unwrap();
    }
    wait_until("Degraded again", Duration::from_secs(5), || {
        states(&s.take_health()).contains(&HealthState::Degraded)
    });
    let dir2 = tempfile::tempdir().unwrap();
    let sock2 = dir2.path().join("log.sock");
    let rs = Rsyslogd::start(dir2, free_udp_port(), tcp, &sock2);
    wait_until("30 more messages", Duration::from_secs(20), || {
        rs.received_via("imtcp").len() >= 30
    });
    s.close().unwrap();
    let seqs: Vec<u64> = first
        .iter()
        .chain(rs.received_via("imtcp").iter())
        .map(|f| seq_of(f[8].as_bytes()))
        .collect();
    assert_eq!(seqs, (1..=80).collect::<Vec<_>>());
    rs.stop();
}

// ---------------------------------------------------------------- http

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Up,
    /// 503 to everything.
    Busy,
    /// _bulk: 429 for items with an odd seq, the first time they come.
    RejectOddOnce,
}

#[derive(Debug)]
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    status: u16,
}

#[derive(Default)]
struct Recorded {
    requests: Vec<Request>,
    /// Events accepted, in arrival order (seq numbers).
    accepted: Vec<u64>,
    /// _bulk `_id`s created, and `create`s of an id that already existed.
    ids: HashSet<String>,
    duplicate_creates: u64,
    rejected_once: HashSet<u64>,
}

/// A small HTTP/1.1 receiver: HEC, `_bulk` and NDJSON, keep-alive, one thread
/// per connection. `stop` closes the listener and every connection.
struct Receiver {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    rec: Arc<Mutex<Recorded>>,
    stopped: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(addr: &str, rec: Arc<Mutex<Recorded>>) -> Receiver {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Mode::Up));
        let stopped = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (m, r, st, cs) = (mode.clone(), rec.clone(), stopped.clone(), conns.clone());
        let thread = std::thread::spawn(move || {
            for c in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(c) = c else { continue };
                cs.lock().unwrap().push(c.try_clone().unwrap());
                let (m, r) = (m.clone(), r.clone());
                std::thread::spawn(move || serve(c, m, r));
            }
        });
        Receiver {
            addr,
            mode,
            rec,
            stopped,
            conns,
            thread: Some(thread),
        }
    }

    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    fn accepted(&self) -> Vec<u64> {
        self.rec.lock().unwrap().accepted.clone()
    }

    fn stop(mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        self.thread.take().unwrap().join().unwrap();
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn serve(c: TcpStream, mode: Arc<Mutex<Mode>>, rec: Arc<Mutex<Recorded>>) {
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .expect("the sink sends Content-Length");
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        assert_eq!(method, "POST");
        let m = *mode.lock().unwrap();
        let (status, answer) = answer(m, &path, &body, &mut rec.lock().unwrap());
        rec.lock().unwrap().requests.push(Request {
            path,
            headers,
            body,
            status,
        });
        let reply = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// What a HEC, Elasticsearch or NDJSON receiver would answer.
fn answer(m: Mode, path: &str, body: &[u8], rec: &mut Recorded) -> (u16, String) {
    if m == Mode::Busy {
        return (503, r#"{"text":"Server is busy","code":9}"#.into());
    }
    if path.ends_with("/_bulk") {
        let lines: Vec<&[u8]> = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let mut items = Vec::new();
        let mut errors = false;
        for pair in lines.chunks(2) {
            let action: Value = serde_json::from_slice(pair[0]).unwrap();
            let id = action["create"]["_id"].as_str().unwrap().to_string();
            let seq = seq_of(pair[1]);
            let status =
                if m == Mode::RejectOddOnce && seq % 2 == 1 && rec.rejected_once.insert(seq) {
                    429
                } else if !rec.ids.insert(id) {
                    rec.duplicate_creates += 1;
                    409
                } else {
                    rec.accepted.push(seq);
                    201
                };
            errors |= status >= 300;
            items.push(serde_json::json!({"create": {"status": status}}));
        }
        return (
            200,
            serde_json::json!({"errors": errors, "items": items}).to_string(),
        );
    }
    if path == "/services/collector/event" {
        let objs = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
        for o in objs {
            let o = o.unwrap();
            rec.accepted.push(o["event"]["seq"].as_u64().unwrap());
        }
        return (200, r#"{"text":"Success","code":0}"#.into());
    }
    for l in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        rec.accepted.push(seq_of(l));
    }
    (200, "{}".into())
}

fn http_cfg(url: String, kind: HttpKind, spool: &Path) -> SinkConfig {
    SinkConfig::Http {
        url,
        kind,
        token: None,
        username: None,
        password: None,
        index: None,
        sourcetype: "vigil".into(),
        spool_dir: Some(spool.to_path_buf()),
        spool_max_mib: 64,
        batch_max_events: 10,
        batch_max_bytes: 1 << 20,
        batch_delay_ms: 50,
        timeout_ms: 2000,
        format: Format::Native,
    }
}

fn header<'a>(r: &'a Request, name: &str) -> &'a str {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header"))
}

fn spooled_records(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .map(|p| {
            std::fs::read(p)
                .unwrap()
                .iter()
                .filter(|b| **b == b'\n')
                .count()
        })
        .sum()
}

#[test]
fn http_hec_sends_batches_of_event_objects_with_the_token() {
    let rec = Arc::new(Mutex::new(Recorded::default()));
    let rx = Receiver::start("127.0.0.1:0", rec.clone());
    let spool = tempfile::tempdir().unwrap();
    let mut cfg = http_cfg(format!("http://{}", rx.addr), HttpKind::Hec, spool.path());
    if let SinkConfig::Http { token, index, .. } = &mut cfg {
        *token = Some("0000-abcd".into());
        *index = Some("fim".into());
    }
    let mut s = sink::open(&cfg, "sensor-7").unwrap();
    for seq in 1..=25 {
        s.send(&ev(seq, 300)).unwrap();
    }
    s.flush().unwrap();
    wait_until("25 events", Duration::from_secs(10), || {
        rx.accepted().len() >= 25
    });
    s.close().unwrap();
    assert_eq!(rx.accepted(), (1..=25).collect::<Vec<_>>());
    let r = rec.lock().unwrap();
    assert!(r.requests.len() >= 3, "batches of at most 10");
    for q in &r.requests {
        assert_eq!(q.path, "/services/collector/event");
        assert_eq!(header(q, "authorization"), "Splunk 0000-abcd");
        let objs: Vec<Value> = serde_json::Deserializer::from_slice(&q.body)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert!(objs.len() <= 10);
        for o in objs {
            let seq = o["event"]["seq"].as_u64().unwrap();
            assert_eq!(o["host"], "sensor-7");
            assert_eq!(o["sourcetype"], "vigil");
            assert_eq!(o["index"], "fim");
            let t = o["time"].as_f64().unwrap();
            assert!(
                (t - (1_700_000_000.0 + seq as f64 / 8.0)).abs() < 0.001,
                "{o}"
            );
            assert_eq!(o["event"]["path"], "/etc/a \"b\"");
        }
    }
    drop(r);
    rx.stop();
}

#[test]
fn http_elastic_bulk_retries_only_the_failed_items() {
    let rec = Arc::new(Mutex::new(Recorded::default()));
    let rx = Receiver::start("127.0.0.1:0", rec.clone());
    rx.set(Mode::RejectOddOnce);
    let spool = tempfile::tempdir().unwrap();
    let mut cfg = http_cfg(
        format!("http://{}", rx.addr),
        HttpKind::Elastic,
        spool.path(),
    );
    if let SinkConfig::Http {
        index,
        username,
        password,
        ..
    } = &mut cfg
    {
        *index = Some("vigil-fim".into());
        *username = Some("elastic".into());
        *password = Some("s3cret".into());
    }
    let mut s = sink::open(&cfg, "h").unwrap();
    for seq in 1..=20 {
        s.send(&ev(seq, 300)).unwrap();
    }
    s.flush().unwrap();
    wait_until("20 documents", Duration::from_secs(15), || {
        rx.accepted().len() >= 20
    });
    s.close().unwrap();
    let r = rec.lock().unwrap();
    let mut got = r.accepted.clone();
    got.sort();
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    assert_eq!(r.rejected_once.len(), 10);
    assert_eq!(
        r.duplicate_creates, 0,
        "successful documents were sent again"
    );
    for q in &r.requests {
        assert_eq!(q.path, "/_bulk");
        assert_eq!(header(q, "content-type"), "application/x-ndjson");
        assert_eq!(header(q, "authorization"), "Basic ZWxhc3RpYzpzM2NyZXQ=");
        let first: Value =
            serde_json::from_slice(q.body.split(|b| *b == b'\n').next().unwrap()).unwrap();
        assert_eq!(first["create"]["_index"], "vigil-fim");
    }
    drop(r);
    rx.stop();
}

#[test]
fn http_spools_while_the_receiver_is_down_and_delivers_exactly_once_in_order() {
    let rec = Arc::new(Mutex::new(Recorded::default()));
    let rx = Receiver::start("127.0.0.1:0", rec.clone());
    let addr = rx.addr;
    let spool = tempfile::tempdir().unwrap();
    let mut s = sink::open(
        &http_cfg(
            format!("http://{addr}/ingest"),
            HttpKind::Generic,
            spool.path(),
        ),
        "h",
    )
    .unwrap();
    let send = |s: &mut Box<dyn Sink>, seqs: std::ops::RangeInclusive<u64>| {
        for seq in seqs {
            s.send(&ev(seq, 300)).unwrap();
            if seq % 7 == 0 {
                s.flush().unwrap();
            }
        }
        s.flush().unwrap();
    };
    send(&mut s, 1..=10);
    wait_until("first 10", Duration::from_secs(10), || {
        rx.accepted().len() >= 10
    });

    // 503s: events go to the spool.
    rx.set(Mode::Busy);
    send(&mut s, 11..=40);
    wait_until("Degraded", Duration::from_secs(10), || {
        states(&s.take_health()).contains(&HealthState::Degraded)
    });
    wait_until("spooled events", Duration::from_secs(10), || {
        spooled_records(spool.path()) >= 20
    });

    // The receiver goes away altogether (connection refused), then returns.
    rx.stop();
    send(&mut s, 41..=60);
    std::thread::sleep(Duration::from_millis(500));
    let rx = Receiver::start(&addr.to_string(), rec.clone());
    send(&mut s, 61..=80);
    wait_until("all 80", Duration::from_secs(40), || {
        rx.accepted().len() >= 80
    });
    wait_until("Recovered", Duration::from_secs(5), || {
        states(&s.take_health()).contains(&HealthState::Recovered)
    });
    s.close().unwrap();
    assert_eq!(rx.accepted(), (1..=80).collect::<Vec<_>>());
    assert_eq!(spooled_records(spool.path()), 0);
    let r = rec.lock().unwrap();
    assert!(r.requests.iter().any(|q| q.status == 503));
    assert!(r.requests.iter().all(|q| q.path == "/ingest"));
    drop(r);
    rx.stop();
}

#[test]
fn http_spool_survives_a_restart_of_the_sink() {
    let port = free_port();
    let spool = tempfile::tempdir().unwrap();
    let cfg = http_cfg(
        format!("http://127.0.0.1:{port}"),
        HttpKind::Generic,
        spool.path(),
    );
    let mut s = sink::open(&cfg, "h").unwrap();
    for seq in 1..=30 {
        s.send(&ev(seq, 300)).unwrap();
    }
    s.flush().unwrap();
    wait_until("Degraded", Duration::from_secs(10), || {
        states(&s.take_health()).contains(&HealthState::Degraded)
    });
    // Dropped, not closed: as if the sensor were stopped abruptly.
    drop(s);
    assert_eq!(spooled_records(spool.path()), 30);

    let rec = Arc::new(Mutex::new(Recorded::default()));
    let rx = Receiver::start(&format!("127.0.0.1:{port}"), rec.clone());
    let mut s = sink::open(&cfg, "h").unwrap();
    for seq in 31..=40 {
        s.send(&ev(seq, 300)).unwrap();
    }
    s.flush().unwrap();
    wait_until("all 40", Duration::from_secs(20), || {
        rx.accepted().len() >= 40
    });
    s.close().unwrap();
    assert_eq!(rx.accepted(), (1..=40).collect::<Vec<_>>());
    assert_eq!(spooled_records(spool.path()), 0);
    rx.stop();
}

#[test]
fn http_spool_bound_counts_lost_events_exactly() {
    let port = free_port();
    let spool = tempfile::tempdir().unwrap();
    let mut cfg = http_cfg(
        format!("http://127.0.0.1:{port}"),
        HttpKind::Generic,
        spool.path(),
    );
    if let SinkConfig::Http { spool_max_mib, .. } = &mut cfg {
        *spool_max_mib = 1;
    }
    let mut s = sink::open(&cfg, "h").unwrap();
    // 10 KB events: about 100 fit in 1 MiB.
    let n = 300;
    let mut notes = Vec::new();
    for seq in 1..=n {
        s.send(&ev(seq, 10_000)).unwrap();
    }
    s.flush().unwrap();
    wait_until("a gap", Duration::from_secs(10), || {
        notes.extend(s.take_health());
        lost(&notes) > 0 && spooled_records(spool.path()) as u64 + lost(&notes) == n
    });
    let rec = Arc::new(Mutex::new(Recorded::default()));
    let rx = Receiver::start(&format!("127.0.0.1:{port}"), rec.clone());
    let spooled = n - lost(&notes);
    wait_until("spooled events", Duration::from_secs(40), || {
        rx.accepted().len() as u64 >= spooled
    });
    s.close().unwrap();
    let got = rx.accepted();
    assert_eq!(got, (1..=spooled).collect::<Vec<_>>());
    rx.stop();
}
