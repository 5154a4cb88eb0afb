//! The sensor as a process: start and stop events, its own output, errors.
use std::os::unix::process::CommandExt;
use std::process::Command;
use vigil_tests::{vigil_bin, Sensor};

const TESTOP: &str = env!("CARGO_BIN_EXE_vigil-testop");

/// Runs vigil-testop in `cwd`, requires success, returns its pid.
fn run_ok(cwd: &std::path::Path, args: &[&str]) -> u32 {
    let (pid, ok) = vigil_tests::run_in(TESTOP, cwd, args);
    assert!(ok, "vigil-testop {args:?} failed");
    pid
}

#[test]
fn own_output_in_a_watched_dir_does_not_feed_back_and_sigterm_stops_cleanly() {
    let probe = tempfile::Builder::new()
        .prefix("vigil-self-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let watched = probe.path().to_path_buf();
    let output = watched.join("events.ndjson");
    let mut s = Sensor::start(
        &["--watch", watched.to_str().unwrap()],
        Some(output.clone()),
    );
    let pid = run_ok(&watched, &["openat-creat", "x"]);
    s.wait_for(|e| e["process"]["pid"] == pid && e["action"] == "created");
    let status = s.stop();
    assert!(status.success(), "vigil exits 0 on SIGTERM, got {status}");
    let events = s.events();
    assert_eq!(
        events.last().unwrap()["action"],
        "stop",
        "last event is the stop event"
    );
    let me = output.display().to_string();
    let fed_back: Vec<_> = events.iter().filter(|e| e["path"] == me.as_str()).collect();
    assert!(
        fed_back.is_empty(),
        "the sensor reported its own writes: {fed_back:#?}"
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence numbers are contiguous: {seqs:?}"
    );
}

#[test]
fn start_event_lists_watches_and_hooks() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let mut s = Sensor::start(&["--watch", dir.path().to_str().unwrap()], None);
    let start = s.events().into_iter().next().unwrap();
    assert_eq!(start["kind"], "sensor");
    assert_eq!(start["watches"][0], dir.path().display().to_string());
    assert!(start["hooks_attached"].as_u64().unwrap() >= 90, "{start:#}");
    s.stop();
}

#[test]
fn config_check_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "[[watch]]\npath = \"/etc\"\nrecursive = \"yes\"\n").unwrap();
    let out = Command::new(vigil_bin())
        .args(["config", "check"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:13:", f.display())), "{err}");

    std::fs::write(&f, "[[watch]]\npath = \"/etc\"\n").unwrap();
    let out = Command::new(vigil_bin())
        .args(["config", "check"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn not_root_is_a_clear_error() {
    // A copy that nobody can execute, wherever the checkout lives.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("vigil");
    std::fs::copy(vigil_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(&bin)
        .args(["run", "--watch", "/tmp"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must run as root"), "{err}");
}

#[test]
fn a_watched_path_created_after_start_is_watched_from_then_on() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let pending = dir.path().join("authorized_keys");
    let s = Sensor::start(&["--watch", pending.to_str().unwrap()], None);
    let run = |args: &[&str]| run_ok(dir.path(), args);
    let pid = run(&["openat-creat", "authorized_keys"]);
    let e = s.wait_for(|e| e["process"]["pid"] == pid && e["action"] == "created");
    assert_eq!(e["path"], pending.display().to_string());
    // A sibling is not watched...
    let other = run(&["openat-creat", "other"]);
    // ... and writes to the new root are now decided on its inode.
    let pid = run(&["write", "authorized_keys"]);
    let e = s.wait_for(|e| e["process"]["pid"] == pid && e["action"] == "modified");
    assert_eq!(e["source"]["decided_by"], "inode");
    assert!(
        s.events().iter().all(|e| e["process"]["pid"] != other),
        "sibling reported"
    );
}

#[test]
fn events_the_kernel_cannot_deliver_are_reported_as_a_gap() {
    // A 1 MiB ring buffer holds a few hundred records; stop the sensor, make a
    // few thousand, resume it: the overflow must show up as a gap with a count.
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let policy = dir.path().join("policy.toml");
    let watched = dir.path().join("w");
    std::fs::create_dir(&watched).unwrap();
    std::fs::write(
        &policy,
        format!(
            "[sensor]\nring_buffer_mib = 1\n[[watch]]\npath = {:?}\n",
            watched
        ),
    )
    .unwrap();
    let s = Sensor::start(&["--raw", "--config", policy.to_str().unwrap()], None);
    let pid = s.child.id() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let churn = env!("CARGO_BIN_EXE_vigil-churn");
    let ok = Command::new(churn)
        .arg(&watched)
        .arg("2000")
        .output()
        .unwrap()
        .status
        .success();
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(ok);
    let gap = s.wait_for(|e| e["kind"] == "sensor" && e["action"] == "gap");
    assert_eq!(gap["lost_reason"], "ring_buffer_full");
    let lost = gap["lost"].as_u64().unwrap();
    let delivered = s.events().iter().filter(|e| e["kind"] == "file").count() as u64;
    assert!(lost > 0);
    // 4 file events per churn iteration; process records (exec, exit) that did
    // not fit are counted as lost too, hence >=.
    assert!(
        delivered + lost >= 8000,
        "every event is delivered or counted: {delivered} + {lost} < 8000"
    );
    assert!(delivered < 8000);
}

#[test]
fn a_deleted_root_stops_matching_its_old_inode_and_a_recreated_one_is_watched() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let root = dir.path().join("hosts");
    std::fs::write(&root, b"x").unwrap();
    let s = Sensor::start(&["--watch", root.to_str().unwrap()], None);
    let run = |args: &[&str]| run_ok(dir.path(), args);
    // The sed -i pattern: write a temp file, rename it over the root.
    std::fs::write(dir.path().join("tmp"), b"y").unwrap();
    let pid = run(&["rename", "tmp", "hosts"]);
    s.wait_for(|e| e["process"]["pid"] == pid && e["action"] == "renamed");
    // The root is now a new inode: writes to it are decided on that inode.
    let pid = run(&["write", "hosts"]);
    let e = s.wait_for(|e| e["process"]["pid"] == pid && e["action"] == "modified");
    assert_eq!(e["source"]["decided_by"], "inode");
    assert_eq!(e["path"], root.display().to_string());
}

#[test]
fn the_journal_tells_a_scan_which_changes_the_sensor_saw_and_which_it_did_not() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let watched = dir.path().join("w");
    std::fs::create_dir(&watched).unwrap();
    std::fs::write(watched.join("seen"), "1\n").unwrap();
    std::fs::write(watched.join("unseen"), "1\n").unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, format!("[[watch]]\npath = {watched:?}\n")).unwrap();
    let db = dir.path().join("vigil.db");
    let vigil = |args: &[&str]| {
        let out = Command::new(vigil_bin())
            .args(args)
            .args([
                "--config",
                policy.to_str().unwrap(),
                "--db",
                db.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "vigil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    vigil(&["baseline", "init"]);

    // The sensor journals what it sees into the same store.
    let mut s = Sensor::start(
        &[
            "--config",
            policy.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ],
        None,
    );
    let pid = run_ok(&watched, &["write", "seen"]);
    s.wait_for(|e| e["process"]["pid"] == pid && e["kind"] == "file");
    assert!(s.stop().success());
    // Changed while no sensor runs: only the scan can find it.
    std::fs::write(watched.join("unseen"), "2\n").unwrap();

    let findings = dir.path().join("scan.ndjson");
    vigil(&["scan", "--output", findings.to_str().unwrap()]);
    let text = std::fs::read_to_string(&findings).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finding = |name: &str| {
        let path = watched.join(name).display().to_string();
        events
            .iter()
            .find(|e| e["path"] == path.as_str())
            .unwrap_or_else(|| panic!("no finding for {path}: {text}"))
            .clone()
    };
    let seen = finding("seen");
    assert_eq!(seen["details"]["unattributed"], false, "{seen:#}");
    assert!(
        seen["details"]["realtime_seq"].as_u64().is_some(),
        "{seen:#}"
    );
    let unseen = finding("unseen");
    assert_eq!(unseen["details"]["unattributed"], true, "{unseen:#}");
    assert_eq!(unseen["severity"], "high");
}
