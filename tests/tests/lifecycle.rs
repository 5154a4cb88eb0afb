//! The sensor as a process: start and stop events, its own output, errors.
use std::os::unix::process::CommandExt;
use std::process::Command;
use vigil_tests::{vigil_bin, Sensor, START_WAIT};

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
    // Each syscall's exit, the enters with work of their own (and, before
    // 5.15, every enter: they stash the arguments), the process-table hooks.
    assert!(start["hooks_attached"].as_u64().unwrap() >= 55, "{start:#}");
    // None refused, bar tracepoints of syscalls the kernel predates.
    let failed = start["hooks_failed"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        failed
            .iter()
            .all(|f| f.as_str().unwrap().contains("fchmodat2")),
        "{start:#}"
    );
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
    // Runs vigil on the test's policy and store; its stdout.
    let vigil = |args: &[&str]| -> String {
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
        String::from_utf8(out.stdout).unwrap()
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
    // Every line of the feed is in the journal, byte for byte (read back
    // from its compressed blocks).
    let feed = std::fs::read_to_string(&s.output).unwrap();
    let journal = vigil(&["query", "--json"]);
    let journaled: std::collections::HashSet<&str> = journal.lines().collect();
    assert!(feed.lines().count() >= 3, "{feed}");
    for line in feed.lines() {
        assert!(
            journaled.contains(line),
            "not in the journal: {line}\njournal:\n{journal}"
        );
    }
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

/// `vigil verify` on the feed of a real run, then on the same feed with one byte
/// of one event changed.
#[test]
fn the_feed_verifies_and_an_edited_byte_is_found_at_its_line() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let watched = dir.path().join("w");
    std::fs::create_dir(&watched).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!("[sensor]\nheartbeat_s = 1\n[[watch]]\npath = {watched:?}\n"),
    )
    .unwrap();
    let mut s = Sensor::start(&["--config", policy.to_str().unwrap()], None);
    // The harness puts the store, and so the host key, in the sensor's own directory.
    let key = s.dir.path().join("host.key");
    let pid = run_ok(&watched, &["openat-creat", "x"]);
    s.wait_for(|e| e["process"]["pid"] == pid && e["action"] == "created");
    let beat = s.wait_for(|e| e["kind"] == "sensor" && e["action"] == "heartbeat");
    assert!(beat["events_emitted"].as_u64().unwrap() >= 1, "{beat:#}");
    assert_eq!(beat["lost_total"], 0, "{beat:#}");
    assert!(s.stop().success());
    let events = s.events();
    let start = &events[0];
    assert_eq!(
        (&start["action"], &start["seq"]),
        (&"start".into(), &1.into())
    );
    assert_eq!(start["heartbeat_s"], 1);
    let stop = events.last().unwrap();
    assert_eq!(stop["action"], "stop");
    assert_eq!(stop["reason"], "SIGTERM");
    let key_id = start["key_id"].as_str().unwrap().to_string();
    assert!(events
        .iter()
        .all(|e| e["key_id"] == key_id.as_str() && e["chain"].as_str().unwrap().len() == 64));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);

    let verify = |feed: &std::path::Path| {
        let out = Command::new(vigil_bin())
            .arg("verify")
            .arg(feed)
            .arg("--key")
            .arg(&key)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = verify(&s.output);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(": OK: "), "{text}");
    assert!(text.contains(&format!("key id {key_id}")), "{text}");

    // One byte of the file event: the process id's last digit.
    let feed = std::fs::read_to_string(&s.output).unwrap();
    let mut lines: Vec<String> = feed.lines().map(String::from).collect();
    let at = lines
        .iter()
        .position(|l| l.contains(r#""action":"created""#))
        .unwrap();
    let needle = format!(r#""pid":{pid},"#);
    let i = lines[at].find(&needle).unwrap() + needle.len() - 2;
    let mut bytes = lines[at].clone().into_bytes();
    bytes[i] = if bytes[i] == b'9' { b'8' } else { bytes[i] + 1 };
    lines[at] = String::from_utf8(bytes).unwrap();
    let edited = dir.path().join("edited.ndjson");
    std::fs::write(&edited, lines.join("\n") + "\n").unwrap();
    let (code, text) = verify(&edited);
    assert_eq!(code, Some(1), "{text}");
    let seq = events[at]["seq"].as_u64().unwrap();
    let expect = format!(
        "{}:{}: BREAK [edited]: seq {seq}: chain mismatch",
        edited.display(),
        at + 1
    );
    assert!(text.contains(&expect), "wanted {expect:?} in:\n{text}");
    assert_eq!(text.matches("BREAK").count(), 1, "{text}");

    // A group-readable key is refused, with the fix.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = Command::new(vigil_bin())
        .arg("verify")
        .arg(&s.output)
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("chmod 600 {}", key.display())),
        "{err}"
    );
}

/// kill -9, then a restart appending to the same feed with the same key: the
/// feed still verifies, with a warning naming the run that has no stop event.
#[test]
fn a_killed_run_is_named_by_verify_and_the_restart_chains_anew() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let watched = dir.path().join("w");
    std::fs::create_dir(&watched).unwrap();
    let feed = dir.path().join("feed.ndjson");
    let db = dir.path().join("vigil.db");
    let args = [
        "--watch",
        watched.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ];
    let mut first = Sensor::start(&args, Some(feed.clone()));
    let pid = run_ok(&watched, &["openat-creat", "x"]);
    first.wait_for(|e| e["process"]["pid"] == pid && e["action"] == "created");
    unsafe { libc::kill(first.child.id() as i32, libc::SIGKILL) };
    first.child.wait().unwrap();
    let killed_lines = std::fs::read_to_string(&feed).unwrap().lines().count();

    let mut second = Sensor::start(&args, Some(feed.clone()));
    // The harness found the first run's start; wait for this one's.
    let me = second.child.id();
    second.wait_for_within(START_WAIT, |e| e["action"] == "start" && e["pid"] == me);
    assert!(second.stop().success());
    let out = Command::new(vigil_bin())
        .arg("verify")
        .arg(&feed)
        .args(["--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "{}:{killed_lines}: warning [no_stop]",
            feed.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("the next run starts at line {}", killed_lines + 1)),
        "{text}"
    );
    assert!(text.contains("2 runs (1 restarts), 0 breaks"), "{text}");
}

/// `vigil doctor --json` and `vigil run` agree on the tier of each VFS hook, and
/// every group left on the tracepoints has its blind spot listed. An io_uring
/// write (no write syscall) is then reported with the submitter's pid when the
/// write group is on a VFS tier, and not at all on the tracepoint tier (as on
/// the CI kernel: fentry EPERM, no kprobes).
#[test]
fn doctor_tiers_match_run_and_io_uring_follows_the_write_tier() {
    let out = Command::new(vigil_bin())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doctor: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hooks = doctor["hooks"].as_array().expect("hooks");
    assert_eq!(hooks.len(), 18, "{doctor:#}");
    assert_eq!(doctor["btf"], true);
    assert_eq!(doctor["ring_buffer"], true);
    let blind: Vec<&str> = doctor["blind_spots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b.as_str())
        .collect();
    assert!(blind.iter().any(|b| b.contains("mmap")), "{blind:?}");

    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let mut s = Sensor::start(&["--watch", dir.path().to_str().unwrap()], None);
    let start = s.events().into_iter().next().unwrap();
    for h in hooks {
        let group = h["group"].as_str().unwrap();
        assert_eq!(start["tiers"][group], h["tier"], "{group}: {start:#} {h:#}");
    }
    let write_tier = start["tiers"]["write"].as_str().unwrap().to_string();
    assert_eq!(
        write_tier == "tracepoint",
        blind
            .iter()
            .any(|b| b.contains("io_uring (IORING_OP_WRITE")),
        "{blind:?}"
    );

    std::fs::write(dir.path().join("f"), b"seed").unwrap();
    let pid = run_ok(dir.path(), &["io_uring-write", "f"]);
    let sentinel = run_ok(dir.path(), &["mkdir", "sentinel"]);
    s.wait_for(|e| e["process"]["pid"] == sentinel);
    let path = dir.path().join("f").display().to_string();
    let modified: Vec<_> = s
        .events()
        .into_iter()
        .filter(|e| e["action"] == "modified" && e["path"] == path.as_str())
        .collect();
    if write_tier == "tracepoint" {
        assert!(modified.is_empty(), "{modified:#?}");
        // Not silent: the ring's setup is reported as a blind spot.
        let b = s.wait_for(|e| e["action"] == "blind_spot" && e["subject_pid"] == pid);
        assert_eq!(b["kind"], "sensor");
        assert_eq!(b["blind_spot"], "io_uring");
        assert!(b["message"].as_str().unwrap().contains("unlink"), "{b:#}");
    } else {
        let e = s.wait_for(|e| e["action"] == "modified" && e["path"] == path.as_str());
        assert_eq!(e["process"]["pid"], pid, "{e:#}");
        assert_eq!(e["source"]["tier"], write_tier.as_str());
    }
    s.stop();
}

/// Writes that make no write(2)-family call, and stores through a shared
/// writable mapping, each as its tier reports them: sendfile, copy_file_range
/// and splice into a watched file are `modified` events (their own syscall on
/// the tracepoint tier, `rw_verify_area` on a VFS tier). The mapping is a
/// `blind_spot` (mmap) event on the tracepoint tier; on a VFS tier a
/// `mapped_writable` event whose release by munmap (`__fput`) gives the close
/// marker, hashed after the stores.
#[test]
fn sendfile_copy_file_range_splice_and_shared_mmap_follow_their_tier() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    // Raw: the mapping and its close marker are two events.
    let mut s = Sensor::start(&["--raw", "--watch", dir.path().to_str().unwrap()], None);
    let start = s.events().into_iter().next().unwrap();
    let tier = |g: &str| start["tiers"][g].as_str().unwrap().to_string();
    let (write_tier, mmap_tier) = (tier("write"), tier("mmap"));
    let p = |n: &str| dir.path().join(n).display().to_string();
    for (op, args) in [
        ("sendfile", ["sendfile", "src", "a"]),
        ("copy_file_range", ["copy_file_range", "src", "b"]),
        ("splice", ["splice", "c", ""]),
    ] {
        std::fs::write(dir.path().join("src"), b"source").unwrap();
        let target = if op == "splice" { "c" } else { args[2] };
        std::fs::write(dir.path().join(target), b"seed").unwrap();
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let pid = run_ok(dir.path(), &args);
        let e = s.wait_for(|e| {
            e["action"] == "modified"
                && e["path"] == p(target).as_str()
                && e["process"]["pid"] == pid
        });
        let want = if write_tier == "tracepoint" {
            op
        } else {
            "rw_verify_area"
        };
        assert_eq!(e["source"]["syscall"], want, "{e:#}");
        assert_eq!(e["source"]["tier"], write_tier.as_str(), "{e:#}");
    }

    std::fs::write(dir.path().join("m"), b"seed").unwrap();
    let pid = run_ok(dir.path(), &["mmap-write", "m"]);
    assert_eq!(std::fs::read(dir.path().join("m")).unwrap(), b"MMAP");
    let sentinel = run_ok(dir.path(), &["mkdir", "sentinel"]);
    s.wait_for(|e| e["process"]["pid"] == sentinel);
    let mapped: Vec<_> = s
        .events()
        .into_iter()
        .filter(|e| e["action"] == "mapped_writable" && e["path"] == p("m").as_str())
        .collect();
    if mmap_tier == "tracepoint" {
        assert!(mapped.is_empty(), "{mapped:#?}");
        let b = s.wait_for(|e| e["action"] == "blind_spot" && e["subject_pid"] == pid);
        assert_eq!(b["blind_spot"], "mmap", "{b:#}");
        assert!(b["message"].as_str().unwrap().contains(&p("m")), "{b:#}");
    } else {
        assert_eq!(mapped.len(), 1, "{mapped:#?}");
        assert_eq!(mapped[0]["process"]["pid"], pid);
        let c = s.wait_for(|e| {
            e["action"] == "closed_after_write"
                && e["path"] == p("m").as_str()
                && e["process"]["pid"] == pid
        });
        let want = blake3::hash(b"MMAP").to_hex().to_string();
        assert_eq!(c["after"]["hashes"]["blake3"], want.as_str(), "{c:#}");
    }

    // Mapped read-only, made writable by mprotect: on the tracepoint tier the
    // read-only shared mapping of a file open for writing is the blind spot
    // (mprotect names an address, not a file); on a VFS tier
    // security_file_mprotect gives mapped_writable.
    std::fs::write(dir.path().join("mp"), b"seed").unwrap();
    let pid = run_ok(dir.path(), &["mprotect-write", "mp"]);
    assert_eq!(std::fs::read(dir.path().join("mp")).unwrap(), b"MMAP");
    let sentinel = run_ok(dir.path(), &["mkdir", "sentinel2"]);
    s.wait_for(|e| e["process"]["pid"] == sentinel);
    if tier("mprotect") == "tracepoint" {
        let b = s.wait_for(|e| e["action"] == "blind_spot" && e["subject_pid"] == pid);
        assert_eq!(b["blind_spot"], "mmap", "{b:#}");
        let m = b["message"].as_str().unwrap();
        assert!(m.contains(&p("mp")) && m.contains("mprotect"), "{b:#}");
    } else {
        let e = s.wait_for(|e| e["action"] == "mapped_writable" && e["path"] == p("mp").as_str());
        assert_eq!(e["source"]["syscall"], "security_file_mprotect", "{e:#}");
        assert_eq!(e["process"]["pid"], pid, "{e:#}");
    }
    s.stop();
}
