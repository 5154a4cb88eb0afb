//! Fault and load tests (issue 7): a burst that overflows the ring buffer,
//! `kill -9` under load, an output that cannot write, bad inputs. Real
//! sensor, real kernel, real store; root.
//!
//! The burst here is scaled down (20 000 changes over 2 000 files); the full
//! 1 000 000 / 10 000 runs with `cargo xtask soak` (the ignored test
//! `burst_soak`, sizes from `VIGIL_SOAK_CHANGES` / `VIGIL_SOAK_FILES`).
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Read, Seek};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vigil_tests::{vigil_bin, Sensor};

struct Env {
    dir: tempfile::TempDir,
    watched: PathBuf,
    policy: PathBuf,
    db: PathBuf,
}

impl Env {
    fn new(policy_extra: &str) -> Env {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let watched = dir.path().join("w");
        std::fs::create_dir(&watched).unwrap();
        let policy = dir.path().join("policy.toml");
        let db = dir.path().join("vigil.db");
        let env = Env {
            dir,
            watched,
            policy,
            db,
        };
        env.write_policy(policy_extra, "");
        env
    }

    fn write_policy(&self, extra: &str, tail: &str) {
        std::fs::write(
            &self.policy,
            format!("{extra}\n[[watch]]\npath = {:?}\n{tail}", self.watched),
        )
        .unwrap();
    }

    fn p(&self, name: &str) -> PathBuf {
        self.watched.join(name)
    }

    fn start(&self, output: Option<PathBuf>) -> Sensor {
        Sensor::start(
            &[
                "--config",
                self.policy.to_str().unwrap(),
                "--db",
                self.db.to_str().unwrap(),
            ],
            output,
        )
    }
}

fn vigil(args: &[&str]) -> std::process::Output {
    Command::new(vigil_bin()).args(args).output().unwrap()
}

fn scan_finished(s: &Sensor, kind: &str) -> Value {
    let e = s.wait_for(|e| {
        e["kind"] == "sensor"
            && (e["action"] == "scan_finished" || e["action"] == "scan_failed")
            && e["scan"]["kind"] == kind
    });
    assert_eq!(e["scan"]["status"], "ok", "{e:#}");
    e
}

/// Reads a growing NDJSON feed incrementally (the burst's feed is large:
/// parsing it again at every poll would dominate the test).
struct Tail {
    path: PathBuf,
    file: std::fs::File,
    pos: u64,
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            file: std::fs::File::open(path).unwrap(),
            pos: 0,
            partial: Vec::new(),
        }
    }

    /// The complete lines written since the last call, following the file
    /// output's rotation (`events.ndjson` renamed to `events.ndjson.1`).
    fn next(&mut self) -> Vec<Value> {
        use std::os::unix::fs::MetadataExt;
        loop {
            self.file.seek(std::io::SeekFrom::Start(self.pos)).unwrap();
            let mut buf = Vec::new();
            self.pos += self.file.read_to_end(&mut buf).unwrap() as u64;
            self.partial.extend_from_slice(&buf);
            let ours = self.file.metadata().unwrap().ino();
            match std::fs::metadata(&self.path) {
                Ok(m) if m.ino() != ours => {
                    // Rotated: what was left in the old file is read; go on
                    // with the new one.
                    self.file = std::fs::File::open(&self.path).unwrap();
                    self.pos = 0;
                }
                _ => break,
            }
        }
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(end + 1);
        let lines = std::mem::replace(&mut self.partial, rest);
        lines
            .lines()
            .map(|l| {
                let l = l.unwrap();
                serde_json::from_str(&l).unwrap_or_else(|e| panic!("invalid JSON line {l:?}: {e}"))
            })
            .collect()
    }
}

fn blake3_of(p: &Path) -> String {
    blake3::hash(&std::fs::read(p).unwrap())
        .to_hex()
        .to_string()
}

/// Peak resident set of a process, in KiB (VmHWM).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// What the burst test keeps of the feed: every sensor event, and per path
/// whether a realtime event or the rescan reported it, and the last state
/// reported (the feed of the full-size burst is gigabytes: not kept whole).
#[derive(Default)]
struct BurstFeed {
    sensor: Vec<Value>,
    file_events: u64,
    realtime: BTreeSet<String>,
    rescanned: BTreeSet<String>,
    /// Last reported BLAKE3 and whether the rescan reported it.
    last: BTreeMap<String, (String, bool)>,
    last_gap: Option<usize>,
    /// The last rescan started, and the last finished (indexes in `sensor`).
    last_rescan_started: Option<usize>,
    last_rescan: Option<usize>,
}

impl BurstFeed {
    fn add(&mut self, e: Value) {
        if e["kind"] == "sensor" {
            if e["action"] == "gap" {
                self.last_gap = Some(self.sensor.len());
            }
            if e["action"] == "scan_started" && e["scan"]["kind"] == "rescan" {
                self.last_rescan_started = Some(self.sensor.len());
            }
            if e["action"] == "scan_finished" && e["scan"]["kind"] == "rescan" {
                self.last_rescan = Some(self.sensor.len());
            }
            self.sensor.push(e);
            return;
        }
        if e["kind"] != "file" {
            return;
        }
        self.file_events += 1;
        let Some(path) = e["path"].as_str() else {
            return;
        };
        let by_scan = e["source"]["tier"] == "scan";
        if by_scan {
            assert_eq!(e["details"]["scan_kind"], "rescan", "{e:#}");
            self.rescanned.insert(path.to_string());
        } else {
            self.realtime.insert(path.to_string());
        }
        if let Some(h) = e["after"]["hashes"]["blake3"].as_str() {
            self.last.insert(path.to_string(), (h.to_string(), by_scan));
        }
    }
}

/// `changes` writes spread over `files` watched files, from 4 threads at
/// full speed, with a 1 MiB ring buffer (and, with `stall`, the sensor
/// stopped meanwhile): the kernel drops records, the sensor reports the gap
/// and rescans. Afterwards every changed file is in
/// the feed, and the last state the feed reports for it is the file's
/// final content.
fn burst(files: usize, changes: usize, timeout: Duration, stall: bool) {
    let env = Env::new("");
    // The feed read here does not rotate (the full-size one is gigabytes).
    let feed = env.dir.path().join("feed.ndjson");
    env.write_policy(
        "[sensor]\nring_buffer_mib = 1\nheartbeat_s = 5\n",
        &format!("[[output]]\ntype = \"file\"\npath = {feed:?}\nmax_size_mib = 0\n"),
    );
    let names: Vec<PathBuf> = (0..files).map(|i| env.p(&format!("f{i:05}"))).collect();
    for p in &names {
        std::fs::write(p, "v0\n").unwrap();
    }
    let mut s = env.start(None);
    // The baseline of 10 000 files takes longer than the usual wait.
    wait_until("the baseline", Duration::from_secs(600), || {
        s.events()
            .iter()
            .any(|e| e["action"] == "scan_finished" && e["scan"]["kind"] == "init")
    });
    let mut tail = Tail::new(&feed);
    let mut fed = BurstFeed::default();
    // The baseline's lines are not part of the burst.
    for e in tail.next() {
        if e["kind"] == "sensor" {
            fed.add(e);
        }
    }

    let threads = 4;
    let rounds = changes.div_ceil(files);
    // `stall`: the sensor is stopped while the burst is written, so the ring
    // buffer overflows however fast the sensor drains it (the scaled-down
    // burst once did by speed alone; the pipeline now keeps up with it).
    // The kernel side keeps running and counts what it cannot reserve.
    let pid = s.child.id() as i32;
    if stall {
        unsafe { libc::kill(pid, libc::SIGSTOP) };
    }
    let t0 = Instant::now();
    std::thread::scope(|sc| {
        for t in 0..threads {
            let names = &names;
            sc.spawn(move || {
                for round in 0..rounds {
                    for (i, p) in names.iter().enumerate().skip(t).step_by(threads) {
                        if round * files + i >= changes {
                            break;
                        }
                        std::fs::write(p, format!("{i} round {round}\n")).unwrap();
                    }
                }
            });
        }
    });
    let burst_s = t0.elapsed().as_secs_f64();
    if stall {
        unsafe { libc::kill(pid, libc::SIGCONT) };
    }
    eprintln!("burst: {changes} changes written in {burst_s:.1} s (sensor stopped: {stall})");
    let mut said = Instant::now();

    // Wait until the rescan after the last gap is done and the feed is quiet.
    let mut quiet_since = Instant::now();
    loop {
        let new = tail.next();
        if new.is_empty() {
            // A gap reported while a rescan runs needs a rescan that starts
            // after it (the daemon makes one 5 s after the last gap).
            if quiet_since.elapsed() > Duration::from_secs(3)
                && fed.last_gap.is_some()
                && fed.last_rescan_started > fed.last_gap
                && fed.last_rescan > fed.last_rescan_started
            {
                break;
            }
        } else {
            quiet_since = Instant::now();
        }
        for e in new {
            fed.add(e);
        }
        if said.elapsed() > Duration::from_secs(10) {
            said = Instant::now();
            eprintln!(
                "burst: {:.0} s: {} file events, gap at {:?}, rescan at {:?}",
                t0.elapsed().as_secs_f64(),
                fed.file_events,
                fed.last_gap,
                fed.last_rescan
            );
        }
        assert!(
            t0.elapsed() < timeout,
            "no rescan after the last gap within {timeout:?}; sensor events: {:#?}",
            fed.sensor
                .iter()
                .filter(|e| e["action"] != "gap")
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let settle_s = t0.elapsed().as_secs_f64() - burst_s;
    let rss = peak_rss_kib(s.child.id());
    assert!(s.stop().success());
    for e in tail.next() {
        fed.add(e);
    }

    let gaps: Vec<&Value> = fed.sensor.iter().filter(|e| e["action"] == "gap").collect();
    let lost: u64 = gaps.iter().filter_map(|g| g["lost"].as_u64()).sum();
    assert!(
        gaps.iter().any(|g| g["lost_reason"] == "ring_buffer_full"),
        "the burst did not overflow the ring buffer: {gaps:#?}"
    );
    let (mut rescans, mut superseded) = (0, 0);
    for e in &fed.sensor {
        if e["action"] == "scan_finished" {
            assert_eq!(e["scan"]["errors"], 0, "{e:#}");
            if e["scan"]["kind"] == "rescan" {
                rescans += 1;
                superseded += e["scan"]["superseded"].as_u64().unwrap_or(0);
            }
        }
    }
    // Which source reported each file's final state: a realtime event, or
    // the rescan because the kernel dropped the last change(s).
    let (mut final_realtime, mut final_rescan) = (0, 0);
    let (mut attributed, mut by_rescan) = (0, 0);
    let mut missing = Vec::new();
    let mut stale = Vec::new();
    for p in &names {
        let path = p.to_str().unwrap();
        if fed.realtime.contains(path) {
            attributed += 1;
        } else if fed.rescanned.contains(path) {
            by_rescan += 1;
        } else {
            missing.push(path);
            continue;
        }
        let want = blake3_of(p);
        match fed.last.get(path) {
            Some((h, by_scan)) if *h == want => {
                if *by_scan {
                    final_rescan += 1;
                } else {
                    final_realtime += 1;
                }
            }
            other => stale.push(format!(
                "{path}: final content {want}, last reported {other:?}"
            )),
        }
    }
    eprintln!(
        "burst: {changes} changes to {files} files in {burst_s:.1} s ({:.0}/s); \
         {} file events, {} gap events ({lost} records lost), {rescans} rescans \
         ({superseded} findings superseded by a newer realtime event); \
         {attributed} files attributed by a realtime event, {by_rescan} found only by the rescan, \
         {} missing; final state reported by a realtime event for {final_realtime} files, \
         by the rescan for {final_rescan}; settled {settle_s:.1} s after the burst; \
         vigil peak RSS {} MiB",
        changes as f64 / burst_s,
        fed.file_events,
        gaps.len(),
        missing.len(),
        rss / 1024
    );
    assert!(missing.is_empty(), "not in the feed: {missing:#?}");
    assert!(
        stale.is_empty(),
        "{} files whose last reported state is not their final content: {:#?}",
        stale.len(),
        &stale[..stale.len().min(20)]
    );
}

#[test]
fn a_burst_that_overflows_the_ring_buffer_loses_no_changed_file() {
    burst(2_000, 20_000, Duration::from_secs(120), true);
}

/// `cargo xtask soak`: the full-size burst.
#[test]
#[ignore = "long: run with cargo xtask soak"]
fn burst_soak() {
    let n = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    burst(
        n("VIGIL_SOAK_FILES", 10_000),
        n("VIGIL_SOAK_CHANGES", 1_000_000),
        Duration::from_secs(3600),
        false,
    );
}

/// The scan findings of one scan, by path.
fn findings(events: &[Value], scan_id: &Value) -> BTreeMap<String, Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "file" && e["details"]["scan_id"] == *scan_id)
        .map(|e| (e["path"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

/// Writes to `files` in a loop until `stop`.
fn busy_writer(
    files: Vec<PathBuf>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            for p in &files {
                std::fs::write(p, format!("busy {n}\n")).unwrap();
                n += 1;
            }
        }
        n
    })
}

#[test]
fn kill_9_under_load_leaves_an_intact_store_and_the_restart_catches_up() {
    let env = Env::new("[sensor]\nheartbeat_s = 1\n");
    for name in ["modify", "delete", "same"] {
        std::fs::write(env.p(name), format!("{name} v1\n")).unwrap();
    }
    let busy: Vec<PathBuf> = (0..50).map(|i| env.p(&format!("busy{i:02}"))).collect();
    for p in &busy {
        std::fs::write(p, "busy\n").unwrap();
    }
    let mut s = env.start(None);
    scan_finished(&s, "init");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = busy_writer(busy.clone(), stop.clone());
    // Busy for a while: the journal takes thousands of rows, in transactions.
    let t0 = Instant::now();
    while s.events().iter().filter(|e| e["kind"] == "file").count() < 2000 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the sensor reports nothing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe { libc::kill(s.child.id() as i32, libc::SIGKILL) };
    let killed = s.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&killed),
        Some(libc::SIGKILL)
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().unwrap();

    // While it is down.
    std::fs::write(env.p("modify"), "modify v2, longer\n").unwrap();
    std::fs::remove_file(env.p("delete")).unwrap();
    std::fs::write(env.p("create"), "new\n").unwrap();

    // The store survived the kill: SQLite's own check, and every journal row
    // is a whole event.
    let conn = rusqlite::Connection::open(&env.db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let rows: usize = conn
        .query_row("SELECT count(*) FROM journal", [], |r| r.get(0))
        .unwrap();
    // The events are read back as `vigil query` reads them: from the row,
    // or from its compressed block (docs/baseline.md).
    let out = vigil(&["query", "--json", "--db", env.db.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "vigil query: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = String::from_utf8(out.stdout).unwrap();
    for (i, line) in events.lines().enumerate() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("journal event {i} is not an event: {e}: {line}"));
    }
    assert_eq!(
        events.lines().count(),
        rows,
        "every journal row reads back as an event"
    );
    drop(conn);
    // The baseline's scan rows at least; events of the journal's open
    // transaction (up to 4 096, committed when the pipeline idles) die with
    // the process: the feed has them (docs/security.md).
    assert!(rows >= 3, "only {rows} journal rows");
    eprintln!("kill -9 after {writes} writes: the store passes integrity_check, {rows} journal rows intact");

    // Restart on the same feed and store.
    let feed = s.output.clone();
    let mut s2 = env.start(Some(feed.clone()));
    let gap = s2.wait_for(|e| {
        e["kind"] == "sensor" && e["action"] == "gap" && e["lost_reason"] == "unclean_stop"
    });
    assert_eq!(gap["severity"], "high");
    let done = scan_finished(&s2, "catch-up");
    let found = findings(&s2.events(), &done["scan"]["id"]);
    let f = |name: &str| {
        found
            .get(&env.p(name).display().to_string())
            .unwrap_or_else(|| panic!("{name} not found by the catch-up: {found:#?}"))
    };
    assert_eq!(f("modify")["action"], "modified");
    assert_eq!(f("delete")["action"], "deleted");
    assert_eq!(f("create")["action"], "created");
    for name in ["modify", "delete", "create"] {
        assert_eq!(f(name)["details"]["unattributed"], true);
    }
    assert!(!found.contains_key(&env.p("same").display().to_string()));
    assert!(s2.stop().success());

    // The feed: the killed run is named, the chain holds.
    let out = Command::new(vigil_bin())
        .args(["verify", "--key"])
        .arg(env.dir.path().join("host.key"))
        .arg(&feed)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("[no_stop]"), "{text}");
    assert!(text.contains("2 runs (1 restarts), 0 breaks"), "{text}");
}

/// Mounts a tmpfs of `size` at `dir`; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs on {}", dir.display());
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system holding `p` (writes `p` until ENOSPC).
fn fill(p: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(p).unwrap();
    let block = [0u8; 4096];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", p.display()),
        }
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_full_disk_under_a_file_output_is_reported_and_recovered_from() {
    let env = Env::new("");
    let mnt = Tmpfs::mount(env.dir.path().join("small"), "256k");
    let full_feed = mnt.0.join("events.ndjson");
    env.write_policy(
        "",
        &format!("[[output]]\ntype = \"file\"\npath = {full_feed:?}\n"),
    );
    let mut s = env.start(None);
    fill(&mnt.0.join("filler"));
    // Changes while the disk is full: the other output says the file output
    // is degraded, and the sensor goes on.
    for i in 0..20 {
        std::fs::write(env.p(&format!("while-full-{i}")), "x\n").unwrap();
    }
    let sink = format!("file:{}", full_feed.display());
    let degraded = s.wait_for(|e| {
        e["kind"] == "sensor"
            && e["action"] == "health"
            && e["sink"] == sink.as_str()
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("degraded"))
    });
    assert!(
        degraded["message"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{degraded:#}"
    );
    s.wait_for(|e| e["kind"] == "file" && e["path"] == env.p("while-full-19").to_str().unwrap());
    assert!(s.child.try_wait().unwrap().is_none(), "the sensor stopped");

    // Space comes back: the queued lines are written, in order, then new ones.
    std::fs::remove_file(mnt.0.join("filler")).unwrap();
    std::fs::write(env.p("after"), "x\n").unwrap();
    s.wait_for(|e| {
        e["kind"] == "sensor"
            && e["action"] == "health"
            && e["sink"] == sink.as_str()
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("recovered"))
    });
    let lines = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    wait_until(
        "the change after recovery in the file output",
        Duration::from_secs(20),
        || {
            lines(&full_feed)
                .iter()
                .any(|e| e["path"] == env.p("after").to_str().unwrap())
        },
    );
    let written = lines(&full_feed);
    for i in 0..20 {
        let p = env.p(&format!("while-full-{i}"));
        assert!(
            written.iter().any(|e| e["path"] == p.to_str().unwrap()),
            "{} queued while the disk was full and never written",
            p.display()
        );
    }
    let seqs: Vec<u64> = written.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order kept: {seqs:?}");
    assert!(s.stop().success());
}

/// A loopback HTTP receiver: answers 200 to every request and keeps the bodies.
fn receiver(listener: std::net::TcpListener) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = std::io::BufReader::new(conn);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
                    let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if std::io::Write::write_all(r.get_mut(), resp).is_err() {
                        return;
                    }
                }
            });
        }
    });
    rx
}

#[test]
fn events_for_a_receiver_that_is_down_are_spooled_and_delivered_when_it_comes_up() {
    // A port held but not listening: connections are refused, and no other
    // socket can take it before the receiver comes up on it.
    let (held, port) = bound_not_listening();
    let env = Env::new("");
    let spool = env.dir.path().join("spool");
    env.write_policy(
        "",
        &format!(
            "[[output]]\ntype = \"http\"\nurl = \"http://127.0.0.1:{port}/ingest\"\nspool_dir = {spool:?}\nbatch_delay_ms = 100\n"
        ),
    );
    let mut s = env.start(None);
    for i in 0..10 {
        std::fs::write(env.p(&format!("while-down-{i}")), "x\n").unwrap();
    }
    s.wait_for(|e| {
        e["kind"] == "sensor"
            && e["action"] == "health"
            && e["sink"].as_str().is_some_and(|k| k.contains("http"))
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("degraded"))
    });
    // The batch that failed, and every one after it, goes to the spool on
    // disk; the sink's own thread writes it, so it may lag the health event.
    let spooled = || -> u64 {
        std::fs::read_dir(&spool)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
            .map(|e| e.metadata().unwrap().len())
            .sum()
    };
    wait_until("events in the spool", Duration::from_secs(10), || {
        spooled() > 0
    });

    // The receiver comes up on that port: the spool is delivered.
    let bodies = receiver(listen(held));
    std::fs::write(env.p("after"), "x\n").unwrap();
    // Every event, whatever order the sensor settles them in (a session whose
    // close it did not see is emitted after coalesce.max_hold_ms).
    let expected: Vec<String> = (0..10)
        .map(|i| format!("while-down-{i}"))
        .chain(["after".to_string()])
        .map(|n| env.p(&n).to_str().unwrap().to_string())
        .collect();
    let mut got = String::new();
    let t0 = Instant::now();
    let missing = loop {
        let missing: Vec<String> = expected
            .iter()
            .filter(|p| !got.contains(p.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() || t0.elapsed() > Duration::from_secs(60) {
            break missing;
        }
        if let Ok(b) = bodies.recv_timeout(Duration::from_millis(200)) {
            got.push_str(&b);
        }
    };
    if !missing.is_empty() {
        // Short first (CI keeps only part of a long message): what the sensor
        // wrote to its own file about these paths and its sinks, then the
        // seqs the receiver got.
        let feed: Vec<String> = s
            .events()
            .into_iter()
            .filter(|e| e["kind"] == "sensor" || missing.iter().any(|p| e["path"] == p.as_str()))
            .map(|e| {
                format!(
                    "seq {} {} {} {} {}",
                    e["seq"], e["kind"], e["action"], e["path"], e["message"]
                )
            })
            .collect();
        let delivered: Vec<String> = got
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|e| format!("{} {}", e["seq"], e["path"]))
            .collect();
        panic!(
            "never delivered: {missing:?}\nthe sensor's own feed:\n{}\ndelivered (seq path):\n{}",
            feed.join("\n"),
            delivered.join("\n")
        );
    }
    // In order and none left out: the first delivery of each seq follows
    // that of seq - 1 (a batch whose answer timed out may come again).
    let mut seen = BTreeSet::new();
    let firsts: Vec<u64> = got
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["seq"].as_u64())
        .filter(|q| seen.insert(*q))
        .collect();
    assert_eq!(firsts, (1..=firsts.len() as u64).collect::<Vec<_>>());
    s.wait_for(|e| {
        e["kind"] == "sensor"
            && e["action"] == "health"
            && e["sink"].as_str().is_some_and(|k| k.contains("http"))
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("recovered"))
    });
    assert!(s.stop().success());
}

/// A loopback TCP socket bound to a free port without `listen`, and the port.
fn bound_not_listening() -> (std::os::fd::OwnedFd, u16) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a socket this function owns; the address
    // structs are zeroed and sized for the calls.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut a: libc::sockaddr_in = std::mem::zeroed();
        a.sin_family = libc::AF_INET as libc::sa_family_t;
        a.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        let rc = libc::bind(raw, &a as *const _ as *const libc::sockaddr, len);
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let mut got_len = len;
        let rc = libc::getsockname(raw, &mut a as *mut _ as *mut libc::sockaddr, &mut got_len);
        assert_eq!(rc, 0, "getsockname: {}", std::io::Error::last_os_error());
        (fd, u16::from_be(a.sin_port))
    }
}

/// Starts listening on a socket from [`bound_not_listening`].
fn listen(fd: std::os::fd::OwnedFd) -> std::net::TcpListener {
    // SAFETY: listen(2) on a bound socket this function owns.
    let rc = unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&fd), 128) };
    assert_eq!(rc, 0, "listen: {}", std::io::Error::last_os_error());
    std::net::TcpListener::from(fd)
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// No panic, no backtrace: a message and a failure status.
fn clear_failure(out: &std::process::Output) -> String {
    let err = stderr_of(out);
    assert!(!out.status.success(), "{err}");
    assert_ne!(out.status.code(), Some(101), "panicked: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn a_corrupt_config_or_rule_file_is_named_with_line_and_column() {
    let env = Env::new("");
    let db = env.db.to_str().unwrap().to_string();
    std::fs::write(
        &env.policy,
        format!("[[watch]]\npath = {:?}\nrecursive = maybe\n", env.watched),
    )
    .unwrap();
    let policy = env.policy.to_str().unwrap();
    for args in [
        vec!["run", "--config", policy, "--db", &db],
        vec!["scan", "--config", policy, "--db", &db],
    ] {
        let err = clear_failure(&vigil(&args));
        assert!(err.contains(&format!("{policy}:3:13:")), "{args:?}: {err}");
    }

    let rules = env.dir.path().join("local.rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nid = \"x\"\nseverity = \"high\"\n[rule.match]\npath = [\"/srv/[\"]\n",
    )
    .unwrap();
    std::fs::write(
        &env.policy,
        format!("rules = [{rules:?}]\n[[watch]]\npath = {:?}\n", env.watched),
    )
    .unwrap();
    for args in [
        vec!["run", "--config", policy, "--db", &db],
        vec!["config", "check", policy],
    ] {
        let err = clear_failure(&vigil(&args));
        assert!(
            err.contains(&format!("{}:5:", rules.display())) && err.contains("rule \"x\""),
            "{args:?}: {err}"
        );
    }
    // Binary garbage in the rule file.
    std::fs::write(&rules, [0xff, 0xfe, 0x00, 0x9c]).unwrap();
    let err = clear_failure(&vigil(&["config", "check", policy]));
    assert!(err.contains(&rules.display().to_string()), "{err}");
}

#[test]
fn a_corrupt_foreign_or_locked_store_is_a_clear_error_and_run_goes_on_without_it() {
    let env = Env::new("");
    let policy = env.policy.to_str().unwrap();
    std::fs::write(env.p("a"), "a\n").unwrap();
    let scan = |db: &Path| vigil(&["scan", "--config", policy, "--db", db.to_str().unwrap()]);

    // Not SQLite at all.
    let garbage = env.dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        "this is not a database, it is a text file\n".repeat(200),
    )
    .unwrap();
    let err = clear_failure(&scan(&garbage));
    assert!(
        err.contains(&garbage.display().to_string()) && err.contains("not a Vigil database"),
        "{err}"
    );

    // Another program's SQLite database.
    let foreign = env.dir.path().join("foreign.db");
    let c = rusqlite::Connection::open(&foreign).unwrap();
    c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(c);
    let err = clear_failure(&scan(&foreign));
    assert!(err.contains(&foreign.display().to_string()), "{err}");

    // A Vigil store with its pages damaged.
    let out = vigil(&[
        "baseline",
        "init",
        "--config",
        policy,
        "--db",
        env.db.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let mut bytes = std::fs::read(&env.db).unwrap();
    for b in bytes.iter_mut().skip(4096).take(4096) {
        *b = 0x5a;
    }
    let damaged = env.dir.path().join("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    let err = clear_failure(&scan(&damaged));
    assert!(err.contains(&damaged.display().to_string()), "{err}");

    // Locked by another process's write transaction.
    let holder = rusqlite::Connection::open(&env.db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let out = vigil(&[
        "baseline",
        "update",
        "--config",
        policy,
        "--db",
        env.db.to_str().unwrap(),
    ]);
    let err = clear_failure(&out);
    assert!(
        err.contains(&env.db.display().to_string()) && err.contains("locked"),
        "{err}"
    );
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);

    // `vigil run` on the garbage store: runs, says the journal is off, reports.
    let mut s = Sensor::start(
        &["--config", policy, "--db", garbage.to_str().unwrap()],
        None,
    );
    let health = s.wait_for(|e| e["kind"] == "sensor" && e["action"] == "health");
    let msg = health["message"].as_str().unwrap();
    assert!(
        msg.contains("not journaled") && msg.contains(&garbage.display().to_string()),
        "{health:#}"
    );
    std::fs::write(env.p("b"), "b\n").unwrap();
    s.wait_for(|e| e["kind"] == "file" && e["path"] == env.p("b").to_str().unwrap());
    assert!(s.stop().success());
}

#[test]
fn unreadable_and_missing_watched_paths_are_named_and_counted() {
    use std::os::unix::fs::PermissionsExt;
    // Everything in a directory the unprivileged user can use; the scan runs
    // as nobody, so a mode 000 directory really cannot be read.
    let env = Env::new("");
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let bin = env.dir.path().join("vigil");
    std::fs::copy(vigil_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(env.p("readable"), "r\n").unwrap();
    let locked = env.p("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::write(locked.join("secret"), "s\n").unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let missing = env.dir.path().join("missing");
    env.write_policy("", &format!("[[watch]]\npath = {missing:?}\n"));
    let run = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .args(["--config", env.policy.to_str().unwrap()])
            .args(["--db", env.db.to_str().unwrap()])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    use std::os::unix::process::CommandExt;
    let out = run(&["baseline", "init"]);
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(&format!("{}: Permission denied", locked.display())),
        "{err}"
    );
    assert!(err.contains("1 errors"), "{err}");
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("does not exist"),
        "{err}"
    );
    let out = run(&["scan"]);
    let err = stderr_of(&out);
    assert!(err.contains("1 errors"), "{err}");
    assert!(err.contains(&locked.display().to_string()), "{err}");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn an_edited_baseline_row_is_an_alert_naming_the_path() {
    let env = Env::new("");
    for name in ["passwd", "hosts", "other"] {
        std::fs::write(env.p(name), format!("{name}\n")).unwrap();
    }
    let (policy, db) = (env.policy.to_str().unwrap(), env.db.to_str().unwrap());
    let out = vigil(&["baseline", "init", "--config", policy, "--db", db]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = vigil(&["baseline", "verify", "--config", policy, "--db", db]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("all 4 baseline rows verify"),
        "{}",
        stderr_of(&out)
    );

    // An intruder changes /etc/passwd and makes the baseline agree: the new
    // hash in its row, so that a scan would find nothing.
    std::fs::write(env.p("passwd"), "passwd\nintruder:x:0:0::/:/bin/sh\n").unwrap();
    let passwd = env.p("passwd").display().to_string();
    let hosts = env.p("hosts").display().to_string();
    let conn = rusqlite::Connection::open(&env.db).unwrap();
    let new_hash = blake3_of(&env.p("passwd"));
    let size = std::fs::metadata(env.p("passwd")).unwrap().len() as i64;
    let n = conn
        .execute(
            "UPDATE files SET blake3 = ?1, size = ?2 WHERE path = ?3",
            rusqlite::params![new_hash, size, passwd],
        )
        .unwrap();
    assert_eq!(n, 1);
    conn.execute("UPDATE files SET mac = NULL WHERE path = ?1", [&hosts])
        .unwrap();
    drop(conn);

    let out = vigil(&["baseline", "verify", "--config", policy, "--db", db]);
    let err = clear_failure(&out);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(&format!("{passwd}: MAC mismatch")),
        "{listed}"
    );
    assert!(listed.contains(&format!("{hosts}: no MAC")), "{listed}");
    assert!(err.contains("2 of 4 baseline rows fail their MAC"), "{err}");

    let feed = env.dir.path().join("scan.ndjson");
    let out = vigil(&[
        "scan",
        "--config",
        policy,
        "--db",
        db,
        "--output",
        feed.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let events: Vec<Value> = std::fs::read_to_string(&feed)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let t = events
        .iter()
        .find(|e| e["action"] == "baseline_tampered")
        .unwrap_or_else(|| panic!("no baseline_tampered event: {events:#?}"));
    assert_eq!(t["severity"], "critical");
    assert_eq!(t["alert"], true);
    assert_eq!(t["rules"][0], "baseline-tampered");
    let msg = t["message"].as_str().unwrap();
    assert!(msg.contains(&format!("{passwd} (MAC mismatch)")), "{msg}");
    assert!(msg.contains(&format!("{hosts} (no MAC)")), "{msg}");
    assert!(!msg.contains("other"), "{msg}");

    // The sensor says so as soon as it opens the store.
    let mut s = env.start(None);
    let t = s.wait_for(|e| e["action"] == "baseline_tampered");
    assert_eq!(t["severity"], "critical");
    assert!(t["message"].as_str().unwrap().contains(&passwd), "{t:#}");
    assert!(s.stop().success());

    // Re-recording re-seals.
    let out = vigil(&["baseline", "update", "--config", policy, "--db", db]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("now re-sealed"),
        "{}",
        stderr_of(&out)
    );
    let out = vigil(&["baseline", "verify", "--config", policy, "--db", db]);
    assert!(out.status.success(), "{}", stderr_of(&out));
}

#[test]
fn systemd_readiness_and_watchdog_notifications() {
    // What systemd does for Type=notify with WatchdogSec=2: a datagram socket
    // in NOTIFY_SOCKET, the interval in WATCHDOG_USEC.
    vigil_tests::require_root();
    let env = Env::new("");
    let sock_path = env.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let output = env.dir.path().join("events.ndjson");
    let mut child = Command::new(vigil_bin())
        .args(["run", "--config", env.policy.to_str().unwrap()])
        .args(["--db", env.db.to_str().unwrap()])
        .arg("--output")
        .arg(&output)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "2000000")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    let t0 = Instant::now();
    while got
        .iter()
        .filter(|m: &&String| m.as_str() == "WATCHDOG=1")
        .count()
        < 2
    {
        assert!(t0.elapsed() < Duration::from_secs(30), "{got:?}");
        let n = sock.recv(&mut buf).expect("a notification");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let ready = got
        .iter()
        .position(|m| m.starts_with("READY=1\n"))
        .unwrap_or_else(|| panic!("no READY=1: {got:?}"));
    assert!(
        got[ready].contains(&format!("MAINPID={}", child.id())),
        "{got:?}"
    );
    // Ready means attached and the start event out: it is in the feed.
    let feed = std::fs::read_to_string(&output).unwrap();
    assert!(feed.contains("\"action\":\"start\""), "{feed}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let n = sock.recv(&mut buf).unwrap();
    let mut last = String::from_utf8_lossy(&buf[..n]).into_owned();
    while last == "WATCHDOG=1" {
        let n = sock.recv(&mut buf).unwrap();
        last = String::from_utf8_lossy(&buf[..n]).into_owned();
    }
    assert_eq!(last, "STOPPING=1");
}

#[test]
fn runs_with_the_units_capability_bounding_set() {
    // packaging/vigil.service's CapabilityBoundingSet, applied with setpriv:
    // the sensor loads, attaches, reports a change with its process, and
    // holds nothing else (CapEff); once attached, its effective and bounding
    // sets are what its start event says it kept.
    vigil_tests::require_root();
    let unit = include_str!("../../packaging/vigil.service");
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit has a CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect();
    let bounding = format!("-all,+{}", caps.join(",+"));
    let env = Env::new("");
    let output = env.dir.path().join("events.ndjson");
    let mut child = Command::new("setpriv")
        .args(["--bounding-set", &bounding])
        .arg(vigil_bin())
        .args(["run", "--config", env.policy.to_str().unwrap()])
        .args(["--db", env.db.to_str().unwrap()])
        .arg("--output")
        .arg(&output)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let s = Sensor {
        child: Command::new("true").spawn().unwrap(),
        output: output.clone(),
        dir: tempfile::tempdir().unwrap(),
    };
    wait_until("the start event", Duration::from_secs(60), || {
        s.events().iter().any(|e| e["action"] == "start")
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    let bit = |name: &str| -> u64 {
        let n = match name {
            "dac_read_search" => 2,
            "setpcap" => 8,
            "sys_ptrace" => 19,
            "sys_resource" => 24,
            "sys_admin" => 21,
            "perfmon" => 38,
            "bpf" => 39,
            other => panic!("unknown capability {other}"),
        };
        1 << n
    };
    let allowed: u64 = caps.iter().map(|c| bit(c)).sum();
    assert_eq!(eff & !allowed, 0, "CapEff {eff:#x} beyond the unit's set");
    assert_eq!(eff & bit("sys_admin"), 0);
    let start = s.wait_for(|e| e["action"] == "start");
    let kept: u64 = start["capabilities"]
        .as_array()
        .unwrap_or_else(|| panic!("{start:#}"))
        .iter()
        .map(|c| cap_bit(c.as_str().unwrap()))
        .sum();
    assert_eq!(
        eff, kept,
        "CapEff {eff:#x} is not what the start event lists"
    );
    assert_eq!(cap_set(&status, "CapBnd:"), kept, "{status}");
    let (pid, ok) = vigil_tests::run_in("sh", &env.watched, &["-c", "echo x > changed"]);
    assert!(ok);
    let e = s.wait_for(|e| e["kind"] == "file" && e["path"] == env.p("changed").to_str().unwrap());
    assert_eq!(e["process"]["pid"], pid, "{e:#}");
    assert!(
        e["process"]["exe"]
            .as_str()
            .is_some_and(|x| x.ends_with("sh")),
        "{e:#}"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

/// A capability set from a `/proc/PID/status` line (`CapEff:` ...).
fn cap_set(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

fn cap_bit(name: &str) -> u64 {
    let n = match name {
        "CAP_DAC_READ_SEARCH" => 2,
        "CAP_SETPCAP" => 8,
        "CAP_SYS_PTRACE" => 19,
        "CAP_SYS_ADMIN" => 21,
        "CAP_SYS_RESOURCE" => 24,
        "CAP_PERFMON" => 38,
        "CAP_BPF" => 39,
        other => panic!("unexpected capability {other}"),
    };
    1 << n
}

#[test]
fn privileges_are_dropped_after_attach_and_events_still_flow() {
    // Root with every capability starts the sensor. Once attached, every
    // thread holds only what the start event lists (CAP_DAC_READ_SEARCH,
    // CAP_SYS_PTRACE; CAP_BPF only on a kernel that refuses map operations
    // without it), in its effective, permitted and bounding sets, with
    // no_new_privs. Then: a root-owned 0600 file and another user's 0000
    // file are still hashed, attribution still has the exe (of a root
    // process holding every capability: /proc/PID/exe needs CAP_SYS_PTRACE),
    // and a root created after the drop is watched (map updates still work).
    let env = Env::new("");
    let later = env.dir.path().join("later");
    env.write_policy("", &format!("[[watch]]\npath = {later:?}\n"));
    let s = env.start(None);
    let start = s.wait_for(|e| e["action"] == "start");
    let kept: Vec<&str> = start["capabilities"]
        .as_array()
        .unwrap_or_else(|| panic!("no capabilities on the start event: {start:#}"))
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(kept.contains(&"CAP_DAC_READ_SEARCH"), "{kept:?}");
    assert!(kept.contains(&"CAP_SYS_PTRACE"), "{kept:?}");
    let allowed: u64 = kept.iter().map(|c| cap_bit(c)).sum();
    for gone in ["CAP_PERFMON", "CAP_SYS_RESOURCE", "CAP_SETPCAP"] {
        assert_eq!(allowed & cap_bit(gone), 0, "{gone} kept: {kept:?}");
    }
    let tasks = format!("/proc/{}/task", s.child.id());
    let mut threads = 0;
    for t in std::fs::read_dir(&tasks).unwrap() {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        let name = status.lines().next().unwrap_or_default().to_string();
        for field in ["CapEff:", "CapPrm:", "CapBnd:"] {
            assert_eq!(
                cap_set(&status, field),
                allowed,
                "{name}: {field} {:#x}, want {allowed:#x} ({kept:?})",
                cap_set(&status, field)
            );
        }
        assert_eq!(cap_set(&status, "CapInh:"), 0, "{name}");
        assert_eq!(cap_set(&status, "CapAmb:"), 0, "{name}");
        assert!(status.contains("NoNewPrivs:\t1"), "{name}: {status}");
        threads += 1;
    }
    // The pipeline, settle, hash and scan threads were checked too.
    assert!(threads >= 4, "{threads} threads");

    let secret = env.p("secret");
    std::fs::write(&secret, "old\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let foreign = env.p("foreign");
    std::fs::write(&foreign, "theirs\n").unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(
        &foreign,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let (pid, ok) = vigil_tests::run_in(
        "sh",
        &env.watched,
        &["-c", "echo new >> secret; echo more >> foreign"],
    );
    assert!(ok);
    for (p, content) in [(&secret, "old\nnew\n"), (&foreign, "theirs\nmore\n")] {
        let path = p.to_str().unwrap();
        let want = blake3::hash(content.as_bytes()).to_hex().to_string();
        let e = s.wait_for(|e| {
            e["kind"] == "file"
                && e["path"] == path
                && e["process"]["pid"] == pid
                && e["after"]["hashes"]["blake3"] == want.as_str()
        });
        assert!(
            e["process"]["exe"]
                .as_str()
                .is_some_and(|x| x.ends_with("sh")),
            "{e:#}"
        );
    }

    std::fs::create_dir(&later).unwrap();
    // The root's creation moves it to its inode in the kernel's map; a file
    // written there afterwards is decided on that inode.
    s.wait_for(|e| e["kind"] == "file" && e["path"] == later.to_str().unwrap());
    let inside = later.join("x");
    let (pid, ok) = vigil_tests::run_in("sh", &later, &["-c", "echo x > x"]);
    assert!(ok);
    s.wait_for(|e| {
        e["kind"] == "file" && e["path"] == inside.to_str().unwrap() && e["process"]["pid"] == pid
    });
}
