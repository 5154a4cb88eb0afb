//! The scans `vigil run` makes by itself: the baseline at first start, the
//! catch-up scan after downtime, the rescan after kernel loss, the scheduled
//! comparison. Real sensor, real kernel, real store.
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};
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
        std::fs::write(
            &policy,
            format!("{policy_extra}\n[[watch]]\npath = {watched:?}\n"),
        )
        .unwrap();
        let db = dir.path().join("vigil.db");
        Env {
            dir,
            watched,
            policy,
            db,
        }
    }

    fn p(&self, name: &str) -> PathBuf {
        self.watched.join(name)
    }

    fn start(&self) -> Sensor {
        Sensor::start(
            &[
                "--config",
                self.policy.to_str().unwrap(),
                "--db",
                self.db.to_str().unwrap(),
            ],
            None,
        )
    }

    fn vigil(&self, args: &[&str]) {
        let out = Command::new(vigil_bin())
            .args(args)
            .args(["--config", self.policy.to_str().unwrap()])
            .args(["--db", self.db.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "vigil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
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

/// The scan findings of one scan, by path.
fn findings(s: &Sensor, scan_id: &Value) -> BTreeMap<String, Value> {
    s.events()
        .into_iter()
        .filter(|e| e["kind"] == "file" && e["details"]["scan_id"] == *scan_id)
        .map(|e| (e["path"].as_str().unwrap().to_string(), e))
        .collect()
}

fn fields(e: &Value) -> Vec<&str> {
    e["fields_changed"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap()).collect())
        .unwrap_or_default()
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn the_catch_up_scan_reports_what_changed_while_the_sensor_was_down() {
    let env = Env::new("");
    for name in ["modify", "chmod", "delete", "replace", "stomp", "same"] {
        std::fs::write(env.p(name), format!("{name} v1\n")).unwrap();
    }
    // First start: no baseline yet, the daemon records it.
    let mut s = env.start();
    let init = scan_finished(&s, "init");
    assert_eq!(
        init["scan"]["files_seen"], 7,
        "the root and six files: {init:#}"
    );
    // Created after the baseline and reported by the sensor; deleted while down.
    std::fs::write(env.p("ephemeral"), "tmp\n").unwrap();
    let ephemeral = env.p("ephemeral").display().to_string();
    s.wait_for(|e| e["path"] == ephemeral.as_str() && e["kind"] == "file");
    assert!(s.stop().success());
    std::fs::remove_file(env.p("ephemeral")).unwrap();

    // While no sensor runs.
    std::fs::OpenOptions::new()
        .append(true)
        .open(env.p("modify"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"more\n"))
        .unwrap();
    std::fs::set_permissions(
        env.p("chmod"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::remove_file(env.p("delete")).unwrap();
    std::fs::write(env.p("create"), "new\n").unwrap();
    std::fs::write(env.p("replace.tmp"), "replace v2\n").unwrap();
    std::fs::rename(env.p("replace.tmp"), env.p("replace")).unwrap();
    // Timestomp: new bytes of the same size, the old mtime put back.
    let old = mtime(&env.p("stomp"));
    std::fs::write(env.p("stomp"), "STOMP v1\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(env.p("stomp"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(mtime(&env.p("stomp")), old);

    let s = env.start();
    let down = s.wait_for(|e| e["kind"] == "sensor" && e["action"] == "downtime");
    assert_eq!(down["downtime"]["clean_stop"], true, "{down:#}");
    assert!(down["downtime"]["seconds"].as_f64().unwrap() > 0.0);
    let done = scan_finished(&s, "catch-up");
    assert_eq!(done["scan"]["against"], "last_reported");
    let found = findings(&s, &done["scan"]["id"]);
    let f = |name: &str| {
        let path = env.p(name).display().to_string();
        found
            .get(&path)
            .unwrap_or_else(|| panic!("no finding for {path}: {found:#?}"))
    };
    let modify = f("modify");
    assert_eq!(modify["action"], "modified");
    assert_eq!(fields(modify), ["size", "mtime", "ctime", "hashes"]);
    let chmod = f("chmod");
    assert_eq!(chmod["action"], "permissions_changed");
    assert_eq!(fields(chmod), ["mode", "ctime"]);
    assert_eq!(chmod["after"]["mode"], "0600");
    assert_eq!(f("delete")["action"], "deleted");
    let gone = f("ephemeral");
    assert_eq!(gone["action"], "deleted", "{gone:#}");
    assert!(gone["details"]["last_reported_seq"].as_u64().is_some());
    assert_eq!(f("create")["action"], "created");
    let replace = f("replace");
    assert_eq!(replace["action"], "modified");
    assert_eq!(replace["details"]["replaced"], true);
    assert!(fields(replace).contains(&"inode"), "{replace:#}");
    let stomp = f("stomp");
    assert_eq!(stomp["action"], "modified", "{stomp:#}");
    assert_eq!(fields(stomp), ["ctime", "hashes"], "mtime was put back");
    for e in found.values() {
        assert_eq!(e["source"]["tier"], "scan");
        assert_eq!(e["details"]["unattributed"], true, "{e:#}");
        assert_eq!(e["details"]["scan_kind"], "catch-up");
        assert_eq!(e["details"]["downtime"], down["downtime"], "{e:#}");
        assert!(
            ["high", "critical"].contains(&e["severity"].as_str().unwrap()),
            "{e:#}"
        );
    }
    let dir = env.watched.display().to_string();
    let files: Vec<&String> = found.keys().filter(|p| **p != dir).collect();
    assert_eq!(
        files.len(),
        7,
        "nothing else, not the unchanged file: {found:#?}"
    );
    assert_eq!(done["scan"]["changes"], found.len() as u64);

    // Killed, not stopped: the next run says the previous one ended badly,
    // and a catch-up against what the feed reported finds nothing new. (Kill
    // only once the journal holds the findings: a crash before its commit
    // would rightly have them found again.)
    let conn = rusqlite::Connection::open(&env.db).unwrap();
    let journaled = || -> i64 {
        conn.query_row(
            "SELECT count(*) FROM journal WHERE action = 'scan_finished'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let t0 = std::time::Instant::now();
    while journaled() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "catch-up not journaled"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(s);
    let s = env.start();
    let down = s.wait_for(|e| e["kind"] == "sensor" && e["action"] == "downtime");
    assert_eq!(down["downtime"]["clean_stop"], false, "{down:#}");
    let gap = s.wait_for(|e| e["kind"] == "sensor" && e["action"] == "gap");
    assert_eq!(gap["lost_reason"], "unclean_stop");
    assert_eq!(gap["severity"], "high");
    let done = scan_finished(&s, "catch-up");
    assert_eq!(done["scan"]["changes"], 0, "{:#?}", s.events());
}

#[test]
fn the_scheduled_scan_runs_when_due_and_counts_from_the_last_one() {
    let env = Env::new("[scan]\nschedule = \"weekly\"\ncatch_up = false\n");
    std::fs::write(env.p("a"), "1\n").unwrap();
    std::fs::write(env.p("b"), "1\n").unwrap();
    env.vigil(&["baseline", "init"]);
    // Instead of waiting a week: the baseline was recorded eight days ago.
    let conn = rusqlite::Connection::open(&env.db).unwrap();
    let eight_days_ago = (unix_now() - 8 * 86400).to_string();
    conn.execute(
        "UPDATE scans SET started = strftime('%Y-%m-%dT%H:%M:%fZ', ?1, 'unixepoch') WHERE kind = 'init'",
        [eight_days_ago],
    )
    .unwrap();
    drop(conn);
    std::fs::write(env.p("a"), "2\n").unwrap();

    let mut s = env.start();
    let done = scan_finished(&s, "scheduled");
    assert_eq!(done["scan"]["against"], "baseline");
    let found = findings(&s, &done["scan"]["id"]);
    let a = &found[&env.p("a").display().to_string()];
    assert_eq!(a["action"], "modified");
    assert_eq!(a["details"]["scan_kind"], "scheduled");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(s.stop().success());

    // Restarted a minute later: the next scheduled scan is a week away.
    let mut s = env.start();
    std::thread::sleep(Duration::from_secs(2));
    assert!(s.stop().success());
    let again = s
        .events()
        .into_iter()
        .filter(|e| e["action"] == "scan_started")
        .count();
    assert_eq!(again, 0, "{:#?}", s.events());
}

/// Seconds since the epoch.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn changes_lost_by_the_kernel_are_found_by_the_rescan_after_the_gap() {
    // A 1 MiB ring buffer; the sensor is stopped while 2000 churn iterations
    // and edits of 100 files happen: the buffer overflows, and every edited
    // file must still reach the feed, from the kernel or from the rescan.
    let env = Env::new("[sensor]\nring_buffer_mib = 1\n");
    let edited: Vec<PathBuf> = (0..100).map(|i| env.p(&format!("f{i:03}"))).collect();
    for p in &edited {
        std::fs::write(p, "v1\n").unwrap();
    }
    let s = env.start();
    scan_finished(&s, "init");
    let pid = s.child.id() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let churn = Command::new(env!("CARGO_BIN_EXE_vigil-churn"))
        .arg(&env.watched)
        .arg("2000")
        .stdout(std::process::Stdio::null())
        .status();
    for p in &edited {
        std::fs::write(p, "v2, longer\n").unwrap();
    }
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(churn.unwrap().success());
    let gap = s.wait_for(|e| e["kind"] == "sensor" && e["action"] == "gap");
    assert_eq!(gap["lost_reason"], "ring_buffer_full");
    let done = scan_finished(&s, "rescan");
    let found = findings(&s, &done["scan"]["id"]);
    let events = s.events();
    let (mut realtime, mut rescanned) = (0, 0);
    for p in &edited {
        let path = p.display().to_string();
        let seen = events.iter().any(|e| {
            e["kind"] == "file" && e["path"] == path.as_str() && e["source"]["tier"] != "scan"
        });
        match (seen, found.get(&path)) {
            (true, _) => realtime += 1,
            (false, Some(f)) => {
                assert_eq!(f["action"], "modified", "{f:#}");
                assert_eq!(f["details"]["unattributed"], true);
                assert_eq!(f["details"]["gap"]["reasons"][0], "ring_buffer_full");
                rescanned += 1;
            }
            (false, None) => panic!("{path}: neither reported nor found by the rescan"),
        }
    }
    eprintln!(
        "100 edited files: {realtime} reported by the kernel path, {rescanned} found by the rescan"
    );
    assert!(rescanned > 0, "the gap lost some of them");
}

#[test]
fn append_only_files_may_grow_but_never_be_rewritten() {
    let env = Env::new("append_only = [\"**/*.log\"]\n[diff]\npaths = []\n");
    let log = env.p("audit.log");
    std::fs::write(&log, "record 1\nrecord 2\n").unwrap();
    let append = |text: &str| {
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .unwrap();
    };
    let s = env.start();
    scan_finished(&s, "init");
    let path = log.display().to_string();
    let next = |after_seq: u64| {
        s.wait_for(|e| {
            e["kind"] == "file" && e["path"] == path.as_str() && e["seq"].as_u64() > Some(after_seq)
        })
    };
    // Wait until the start-up read of the log is in: the first change is
    // judged against it.
    std::thread::sleep(Duration::from_millis(500));
    append("record 3\n");
    let grown = next(0);
    assert_eq!(grown["details"]["append_only"], "appended", "{grown:#}");
    assert!(
        grown.get("alert").is_none(),
        "growth is not an alert: {grown:#}"
    );

    // An in-place edit of an old record, same size.
    let text = std::fs::read_to_string(&log)
        .unwrap()
        .replace("record 2", "RECORD 2");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .unwrap();
    let edited = next(grown["seq"].as_u64().unwrap());
    assert_eq!(edited["details"]["append_only"], "rewritten", "{edited:#}");
    assert_eq!(edited["severity"], "critical");
    assert_eq!(edited["alert"], true);
    assert!(edited["rules"]
        .as_array()
        .unwrap()
        .contains(&"append-only-rewritten".into()));

    // Truncation.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(4)
        .unwrap();
    let cut = next(edited["seq"].as_u64().unwrap());
    assert_eq!(cut["details"]["append_only"], "truncated", "{cut:#}");
    assert_eq!(cut["alert"], true);
    let mut s = s;
    assert!(s.stop().success());

    // The scan judges against the baseline the same way: growth since the
    // baseline is fine, an edit of what the baseline held is not.
    let other = env.p("other.log");
    std::fs::write(&log, "a\nb\n").unwrap();
    std::fs::write(&other, "x\ny\n").unwrap();
    env.vigil(&["baseline", "update"]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"c\n"))
        .unwrap();
    std::fs::write(&other, "X\ny\nz\n").unwrap();
    let out = env.dir.path().join("scan.ndjson");
    let status = Command::new(vigil_bin())
        .args(["scan", "--exit-code", "--output", out.to_str().unwrap()])
        .args(["--config", env.policy.to_str().unwrap()])
        .args(["--db", env.db.to_str().unwrap()])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3), "--exit-code: changes found");
    let events: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finding = |p: &Path| {
        events
            .iter()
            .find(|e| e["path"] == p.display().to_string().as_str())
            .unwrap_or_else(|| panic!("no finding for {}: {events:#?}", p.display()))
    };
    let grown = finding(&log);
    assert_eq!(grown["details"]["append_only"], "appended", "{grown:#}");
    assert!(grown.get("alert").is_none(), "{grown:#}");
    let edited = finding(&other);
    assert_eq!(edited["details"]["append_only"], "rewritten", "{edited:#}");
    assert_eq!(edited["alert"], true);
}

#[test]
fn a_root_the_policy_gains_is_recorded_not_reported_file_by_file() {
    let env = Env::new("");
    std::fs::write(env.p("a"), "1\n").unwrap();
    env.vigil(&["baseline", "init"]);
    // The policy gains a second root with files in it.
    let extra = env.dir.path().join("extra");
    std::fs::create_dir(&extra).unwrap();
    for i in 0..5 {
        std::fs::write(extra.join(format!("e{i}")), "x\n").unwrap();
    }
    let text = std::fs::read_to_string(&env.policy).unwrap();
    std::fs::write(&env.policy, format!("{text}[[watch]]\npath = {extra:?}\n")).unwrap();
    let s = env.start();
    let update = scan_finished(&s, "update");
    assert_eq!(update["scan"]["files_seen"], 6, "{update:#}");
    let done = scan_finished(&s, "catch-up");
    assert_eq!(done["scan"]["changes"], 0, "{:#?}", s.events());
}
